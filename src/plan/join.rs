//! Planning a join of two streams: which kind of stream join it is (window, interval or
//! regular; see [`crate::operator::join`]), its keys and the rest of its condition.

use datafusion::common::{Column, JoinType, NullEquality};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Join, LogicalPlan, Operator as Op};

use super::{PlanNode, Planner, compile, reads_stream, window};
use crate::error::{Result, WeirError};
use crate::operator::join::{JoinInput, JoinKind, JoinTime, StreamJoin};

fn unsupported(what: impl std::fmt::Display) -> WeirError {
    WeirError::sql(
        format!("not supported in a standing query yet: {what}"),
        None,
    )
}

impl Planner<'_> {
    pub(super) fn join(&self, j: &Join) -> Result<PlanNode> {
        let kind = match j.join_type {
            JoinType::Inner => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            JoinType::Right => JoinKind::Right,
            JoinType::Full => JoinKind::Full,
            JoinType::LeftSemi => JoinKind::LeftSemi,
            JoinType::RightSemi => JoinKind::RightSemi,
            JoinType::LeftAnti if j.null_aware && (j.filter.is_some() || j.on.len() != 1) => {
                return Err(unsupported(
                    "NOT IN (a subquery) over streams correlated with the outer query or with a condition on other columns",
                )
                .with_hint(
                    "NOT EXISTS (SELECT … WHERE s.k = t.k AND …) gives the same rows where the keys are not NULL",
                ));
            }
            JoinType::LeftAnti => JoinKind::LeftAnti,
            JoinType::RightAnti => JoinKind::RightAnti,
            other => return Err(unsupported(format!("{other} joins of streams"))),
        };
        if crate::sql::lateral::correlated(&j.right) {
            return Err(crate::sql::lateral::unsupported_lateral());
        }
        if !reads_stream(&j.left) || !reads_stream(&j.right) {
            // A subquery in an expression is planned as a semi or anti join.
            if matches!(
                j.join_type,
                JoinType::LeftSemi | JoinType::RightSemi | JoinType::LeftAnti | JoinType::RightAnti
            ) {
                return Err(unsupported(format!(
                    "a subquery in an expression, {}, whose subquery reads no stream",
                    kind_name(j.join_type)
                ))
                .with_hint("a list of values is written IN (1, 2); batch queries (weir query) take any subquery"));
            }
            return Err(unsupported(
                "joining a stream with a table that is not a stream",
            )
            .with_hint("both sides of a join must be streams (CREATE TABLE ... WITH ('connector' = ...))"));
        }
        if j.null_equality == NullEquality::NullEqualsNull {
            return Err(unsupported("IS NOT DISTINCT FROM as a join condition"));
        }
        if j.on.is_empty() {
            return Err(
                unsupported("a join of streams without an equality between the two sides")
                    .with_hint("join on equal columns, such as ON a.id = b.id"),
            );
        }
        let (ls, rs) = (j.left.schema(), j.right.schema());
        let mut left_keys = vec![];
        let mut right_keys = vec![];
        let mut window_end: Option<(usize, usize)> = None;
        for (l, r) in &j.on {
            if let (Expr::Column(lc), Expr::Column(rc)) = (l, r)
                && window_column(&j.left, &lc.name).as_deref() == Some("window_end")
                && window_column(&j.right, &rc.name).as_deref() == Some("window_end")
            {
                window_end = Some((ls.index_of_column(lc)?, rs.index_of_column(rc)?));
            }
            left_keys.push(compile(self.state, l, ls)?);
            right_keys.push(compile(self.state, r, rs)?);
        }
        let time = match window_end {
            Some((left, right)) => JoinTime::Window { left, right },
            None => match interval(j)? {
                Some(t) => {
                    if !matches!(
                        kind,
                        JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full
                    ) {
                        return Err(unsupported(format!(
                            "{} with time bounds (interval joins are INNER, LEFT, RIGHT or FULL)",
                            kind_name(j.join_type)
                        )));
                    }
                    t
                }
                None => JoinTime::Unbounded,
            },
        };
        let filter = match &j.filter {
            Some(f) => Some(compile(self.state, f, &ls.join(rs)?)?),
            None => None,
        };
        let join = StreamJoin::new(
            kind,
            time,
            JoinInput {
                keys: left_keys,
                schema: std::sync::Arc::new(ls.as_arrow().clone()),
            },
            JoinInput {
                keys: right_keys,
                schema: std::sync::Arc::new(rs.as_arrow().clone()),
            },
            filter,
            std::sync::Arc::new(j.schema.as_arrow().clone()),
        )?
        .with_ttl(self.state_ttl()?)
        .null_aware(j.null_aware);
        let left = self.node(&j.left)?;
        let right = self.node(&j.right)?;
        super::append_only(&left, "a join")?;
        super::append_only(&right, "a join")?;
        Ok(PlanNode::Join {
            join: Box::new(join),
            left: Box::new(left),
            right: Box::new(right),
            idle: [self.idle_timeout(&j.left)?, self.idle_timeout(&j.right)?],
        })
    }
}

fn kind_name(t: JoinType) -> &'static str {
    match t {
        JoinType::Left => "LEFT JOIN",
        JoinType::Right => "RIGHT JOIN",
        JoinType::Full => "FULL JOIN",
        JoinType::LeftSemi | JoinType::RightSemi => "EXISTS / IN (a semi join)",
        JoinType::LeftAnti | JoinType::RightAnti => "NOT EXISTS / NOT IN (an anti join)",
        _ => "JOIN",
    }
}

/// The window column (`window_start`, `window_end`, `window_time`) `name` is, coming from
/// a window aggregate or a window table function below.
fn window_column(plan: &LogicalPlan, name: &str) -> Option<String> {
    window::aggregated_window_column(plan, name)
        .or_else(|| window::trace_window_column(plan, name).map(|(c, _)| c))
}

/// True when the rows still to come on this input have `name` at or after the watermark:
/// a time attribute, or the end of windows that fire in order.
fn is_event_time(plan: &LogicalPlan, name: &str) -> bool {
    window::is_time_attribute(plan, name)
        || matches!(
            window::aggregated_window_column(plan, name).as_deref(),
            Some("window_end" | "window_time")
        )
}

/// `column`, `column + INTERVAL ...` or `column - INTERVAL ...`: the column and the
/// milliseconds added.
fn time_term(e: &Expr) -> Option<(&Column, i64)> {
    match e {
        Expr::Column(c) => Some((c, 0)),
        Expr::Cast(c) => time_term(&c.expr),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if matches!(op, Op::Plus | Op::Minus) => {
            let (c, base) = time_term(left)?;
            let Expr::Literal(v, _) = right.as_ref() else {
                return None;
            };
            let ms = super::interval_ms(v)?;
            Some((
                c,
                if *op == Op::Plus {
                    base + ms
                } else {
                    base - ms
                },
            ))
        }
        _ => None,
    }
}

type ColumnPair = (Column, Column);

/// True when `j` joins by time bounds (an interval join), not by equal windows.
pub(crate) fn is_interval_join(j: &Join) -> bool {
    let window_keys = j.on.iter().any(|(l, r)| {
        matches!((l, r), (Expr::Column(lc), Expr::Column(rc))
            if window_column(&j.left, &lc.name).as_deref() == Some("window_end")
                && window_column(&j.right, &rc.name).as_deref() == Some("window_end"))
    });
    !window_keys && matches!(interval(j), Ok(Some(JoinTime::Interval { .. })))
}

/// Time bounds between the two sides in the join's condition, as an interval join: both a
/// lower and an upper bound on `left.t - right.t` for one pair of event-time columns.
fn interval(j: &Join) -> Result<Option<JoinTime>> {
    let Some(filter) = &j.filter else {
        return Ok(None);
    };
    // Per (left column, right column): the bounds found on left - right.
    let mut bounds: Vec<(ColumnPair, Option<i64>, Option<i64>)> = vec![];
    let mut add = |a: &Expr, op: Op, b: &Expr| {
        let (Some((ca, oa)), Some((cb, ob))) = (time_term(a), time_term(b)) else {
            return;
        };
        let side = |c: &Column| {
            if j.left.schema().has_column(c) && is_event_time(&j.left, &c.name) {
                Some(true)
            } else if j.right.schema().has_column(c) && is_event_time(&j.right, &c.name) {
                Some(false)
            } else {
                None
            }
        };
        // Normalise to `l + ol OP r + or`, then `l - r OP or - ol`.
        let (l, ol, r, or, op) = match (side(ca), side(cb)) {
            (Some(true), Some(false)) => (ca, oa, cb, ob, op),
            (Some(false), Some(true)) => match op.swap() {
                Some(swapped) => (cb, ob, ca, oa, swapped),
                None => return,
            },
            _ => return,
        };
        let d = or - ol;
        let key = (l.clone(), r.clone());
        let i = match bounds.iter().position(|(k, _, _)| *k == key) {
            Some(i) => i,
            None => {
                bounds.push((key, None, None));
                bounds.len() - 1
            }
        };
        let entry = &mut bounds[i];
        match op {
            // Strict bounds are kept as the non-strict ones: only what to forget depends on
            // them, and forgetting a millisecond later is safe.
            Op::Gt | Op::GtEq => entry.1 = Some(entry.1.map_or(d, |x: i64| x.max(d))),
            Op::Lt | Op::LtEq => entry.2 = Some(entry.2.map_or(d, |x: i64| x.min(d))),
            Op::Eq => {
                entry.1 = Some(entry.1.map_or(d, |x: i64| x.max(d)));
                entry.2 = Some(entry.2.map_or(d, |x: i64| x.min(d)));
            }
            _ => {}
        }
    };
    for c in split_conjunction(filter) {
        match c {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => add(left, *op, right),
            Expr::Between(b) if !b.negated => {
                add(&b.expr, Op::GtEq, &b.low);
                add(&b.expr, Op::LtEq, &b.high);
            }
            _ => {}
        }
    }
    for ((l, r), lo, hi) in bounds {
        if let (Some(lo), Some(hi)) = (lo, hi) {
            return Ok(Some(JoinTime::Interval {
                left: j.left.schema().index_of_column(&l)?,
                right: j.right.schema().index_of_column(&r)?,
                lo,
                hi,
            }));
        }
    }
    Ok(None)
}
