//! Planning a join of two streams: which kind of stream join it is (window, interval or
//! regular; see [`crate::operator::join`]), its keys and the rest of its condition.

use std::sync::Arc;

use datafusion::common::tree_node::TreeNode;
use datafusion::common::{Column, JoinType, NullEquality};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Join, LogicalPlan, Operator as Op, SubqueryAlias, TableScan,
};

use super::{PlanNode, Planner, compile, reads_stream, window};
use crate::error::{Result, WeirError};
use crate::operator::join::{JoinInput, JoinKind, JoinTime, StreamJoin};
use crate::sql::catalog::TableDef;
use crate::sql::parser::Lookup;

fn unsupported(what: impl std::fmt::Display) -> WeirError {
    WeirError::sql(
        format!("not supported in a standing query yet: {what}"),
        None,
    )
}

impl Planner<'_> {
    pub(super) fn join(&self, j: &Join) -> Result<PlanNode> {
        // `INTERSECT` and `EXCEPT`: DataFusion's semi or anti join of the left side's
        // distinct rows, `IS NOT DISTINCT FROM` on every column. Over streams the distinct
        // goes after the join (the same rows: whether a row meets a partner depends only
        // on its value), so the join reads append-only rows and the distinct takes the
        // anti join's retractions.
        if matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
            && j.null_equality == NullEquality::NullEqualsNull
            && let Some(a) = super::window_aggregate::aggregate_of(j.left.as_ref())
            && a.aggr_expr.is_empty()
            && a.input.schema().fields().len() == a.schema.fields().len()
        {
            let inner = Join::try_new(
                a.input.clone(),
                j.right.clone(),
                j.on.clone(),
                j.filter.clone(),
                j.join_type,
                j.join_constraint,
                j.null_equality,
                j.null_aware,
            )?;
            let distinct = datafusion::logical_expr::Aggregate::try_new(
                Arc::new(LogicalPlan::Join(inner)),
                a.group_expr.clone(),
                vec![],
            )?;
            // The join under it compares NULLs alike (checked below).
            self.nulls_equal_join
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let planned = self.aggregate(&distinct);
            self.nulls_equal_join
                .store(false, std::sync::atomic::Ordering::Relaxed);
            return planned;
        }
        let mut lookup_join = false;
        match self.lookup_of(j) {
            Some((lookup, def, true)) => return self.temporal_join(j, &lookup, &def),
            Some((lookup, def, false)) if !def.is_bounded() => {
                return Err(WeirError::sql(
                    format!(
                        "not supported in a standing query yet: FOR SYSTEM_TIME AS OF table '{}' (connector '{}'); a lookup join reads a bounded table, connector 'filesystem' without 'source.monitor-interval'",
                        lookup.table, def.connector
                    ),
                    Some(lookup.pos),
                ));
            }
            Some((lookup, _, false)) => {
                // Flink's rule: a lookup join is INNER or LEFT.
                if !matches!(j.join_type, JoinType::Inner | JoinType::Left) {
                    return Err(WeirError::sql(
                        format!(
                            "a lookup join (FOR SYSTEM_TIME AS OF) is INNER or LEFT, not {}",
                            kind_name(j.join_type)
                        ),
                        Some(lookup.pos),
                    ));
                }
                lookup_join = true;
            }
            None => {}
        }
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
        if j.null_equality == NullEquality::NullEqualsNull
            && !self
                .nulls_equal_join
                .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            // DataFusion's INTERSECT ALL and EXCEPT ALL keep every copy of a left row that
            // meets (or misses) the right side, not the SQL counts (min(m, n), m - n)
            // Flink gives.
            return Err(unsupported(
                "INTERSECT ALL or EXCEPT ALL over streams, or IS NOT DISTINCT FROM as a join condition",
            )
            .with_hint("INTERSECT and EXCEPT (without ALL) run"));
        }
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
        if j.on.is_empty()
            && j.join_type == JoinType::LeftAnti
            && (matches!(j.filter, Some(Expr::IsNotFalse(_))) || holds_row_in_rows(&j.right))
        {
            // `(a, b) NOT IN (SELECT …)`, as `crate::sql::rewrite` words it: an anti join on
            // a condition that also holds for NULL fields (`… IS NOT FALSE`), no equality.
            return Err(unsupported("(a, b) NOT IN (a subquery of several columns) over streams")
                .with_hint(
                    "NOT EXISTS (SELECT … WHERE s.x = t.a AND s.y = t.b) gives the same rows where the columns are not NULL",
                ));
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
        .null_aware(j.null_aware)
        .nulls_equal(j.null_equality == NullEquality::NullEqualsNull)
        .lookup(lookup_join);
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

/// The table a join's right input scans, under an alias or not, with the predicates the
/// optimizer pushed onto it (from the ON clause or the WHERE): the scan, the alias and the
/// predicates over the right input's columns.
fn right_scan(plan: &LogicalPlan) -> Option<(&TableScan, Option<&SubqueryAlias>, Vec<Expr>)> {
    match plan {
        LogicalPlan::Filter(f) => {
            let (scan, alias, mut preds) = right_scan(&f.input)?;
            preds.extend(split_conjunction(&f.predicate).into_iter().cloned());
            Some((scan, alias, preds))
        }
        LogicalPlan::TableScan(s) => Some((s, None, s.filters.clone())),
        // Columns only (the optimizer narrows a scan so above a filter on a column the
        // query does not select): the scan is read whole anyway.
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            right_scan(&p.input)
        }
        LogicalPlan::SubqueryAlias(a) => {
            let (scan, None, preds) = right_scan(&a.input)? else {
                return None;
            };
            // The scan's own filters name the table; above the alias, the alias.
            let preds = preds
                .into_iter()
                .map(|p| {
                    p.transform(|e| match e {
                        Expr::Column(c) => Ok(datafusion::common::tree_node::Transformed::yes(
                            Expr::Column(Column::new(Some(a.alias.clone()), c.name)),
                        )),
                        e => Ok(datafusion::common::tree_node::Transformed::no(e)),
                    })
                    .map(|t| t.data)
                })
                .collect::<datafusion::error::Result<Vec<_>>>()
                .ok()?;
            Some((scan, Some(a), preds))
        }
        _ => None,
    }
}

/// True when `plan`, through nodes of one input, holds a SubqueryAlias named `name`.
fn aliased_as(plan: &LogicalPlan, name: &str) -> bool {
    match plan {
        LogicalPlan::SubqueryAlias(a) if a.alias.table() == name => true,
        p => match p.inputs().as_slice() {
            [one] => aliased_as(one, name),
            _ => false,
        },
    }
}

/// The table scanned at the bottom of `plan` through nodes of one input.
fn scanned(plan: &LogicalPlan) -> Option<&TableScan> {
    match plan {
        LogicalPlan::TableScan(s) => Some(s),
        p => match p.inputs().as_slice() {
            [one] => scanned(one),
            _ => None,
        },
    }
}

impl Planner<'_> {
    /// The `FOR SYSTEM_TIME AS OF` of `j` (the right input's table joined as of a time
    /// attribute of the left), with the table and whether it is an event-time attribute
    /// (an event-time temporal join) rather than the processing time (a lookup join).
    fn lookup_of(&self, j: &Join) -> Option<(Lookup, Arc<TableDef>, bool)> {
        let scan = scanned(&j.right)?;
        let def = super::stream_table(scan)?;
        // The table read under the lookup's name: a scan of it, or a view of that name
        // expanded (a SubqueryAlias of it over the view's plan).
        let lookup = self
            .lookups
            .iter()
            .find(|l| scan.table_name.table() == l.id || aliased_as(&j.right, &l.id))?;
        // The AS OF column's kind, read through what the optimizer pruned: a processing-
        // time attribute makes a lookup join, any other an event-time temporal join (a
        // timestamp that is no time attribute is refused there, or before).
        // Where the optimizer dropped the column with the expression that made it (a
        // `PROCTIME()` no one reads), the session's judgement over the unpruned query holds.
        let col = lookup_column(lookup);
        let event_time = match widen(&j.left, &col) {
            Ok(Some((plan, i))) => {
                let (q, f) = plan.schema().qualified_field(i);
                !window::is_proctime_attribute(&plan, &Column::new(q.cloned(), f.name()))
            }
            _ => self.temporal.contains(&lookup.pos),
        };
        Some((lookup.clone(), def, event_time))
    }

    /// An event-time temporal join (see [`crate::operator::temporal`]): `j`'s left input
    /// joined with the versions of `def`, its right input, as of the left's `lookup`
    /// column. Flink's rules: INNER or LEFT; the table has a primary key and an event-time
    /// attribute, and the join's equalities are on exactly its primary key.
    fn temporal_join(&self, j: &Join, lookup: &Lookup, def: &TableDef) -> Result<PlanNode> {
        let at = |e: WeirError| e.at(Some(lookup.pos));
        let left_outer = match j.join_type {
            JoinType::Inner => false,
            JoinType::Left => true,
            other => {
                return Err(at(unsupported(format!(
                    "{} as an event-time temporal join (Flink's are INNER or LEFT)",
                    kind_name(other)
                ))));
            }
        };
        if def.primary_key.is_empty() {
            return Err(at(WeirError::sql(
                format!(
                    "an event-time temporal join needs a primary key on the versioned table '{}' (PRIMARY KEY (…) NOT ENFORCED)",
                    def.name
                ),
                None,
            )));
        }
        let Some(wm) = &def.watermark else {
            return Err(at(WeirError::sql(
                format!(
                    "an event-time temporal join needs an event-time attribute on the versioned table '{}' (a WATERMARK FOR its version time)",
                    def.name
                ),
                None,
            )));
        };
        // The primary key's equalities are the join's keys (Flink: the key must be among
        // the join's equalities); any other equality is part of the condition on the
        // version chosen.
        let key_column = |e: &Expr| -> Option<String> {
            match e {
                Expr::Column(c) if def.primary_key.contains(&c.name) => Some(c.name.clone()),
                Expr::Cast(c) => match c.expr.as_ref() {
                    Expr::Column(col) if def.primary_key.contains(&col.name) => {
                        Some(col.name.clone())
                    }
                    _ => None,
                },
                _ => None,
            }
        };
        let mut key_pairs: Vec<(Expr, Expr)> = vec![];
        let mut other_equalities: Vec<Expr> = vec![];
        let mut covered: Vec<String> = vec![];
        for (l, r) in &j.on {
            match key_column(r) {
                Some(name) if !covered.contains(&name) => {
                    covered.push(name);
                    key_pairs.push((l.clone(), r.clone()));
                }
                _ => other_equalities.push(l.clone().eq(r.clone())),
            }
        }
        if def.primary_key.iter().any(|k| !covered.contains(k)) {
            return Err(at(WeirError::sql(
                format!(
                    "an event-time temporal join joins on the versioned table's primary key: ON equalities of [{}] of '{}'",
                    def.primary_key.join(", "),
                    def.name
                ),
                None,
            )));
        }
        // The right input reads the version time too (the optimizer drops it when the
        // query does not select it): added after the columns the join's schema has.
        // Predicates on the table's columns (from the ON clause or the WHERE) hold for the
        // version chosen, as Flink applies them: they join the condition rather than filter
        // the versions before the choice.
        let Some((scan, alias, preds)) = right_scan(&j.right) else {
            return Err(at(unsupported(format!(
                "an event-time temporal join whose versioned table '{}' is read through a view or a subquery",
                def.name
            ))
            .with_hint("join the table itself: JOIN t FOR SYSTEM_TIME AS OF s.time ON …")));
        };
        let time_in_table =
            scan.source.schema().index_of(&wm.column).map_err(|_| {
                WeirError::internal("the version time is not a column of its table")
            })?;
        let mut projection = scan
            .projection
            .clone()
            .unwrap_or_else(|| (0..scan.source.schema().fields().len()).collect());
        let right_time = match projection.iter().position(|i| *i == time_in_table) {
            Some(p) => p,
            None => {
                projection.push(time_in_table);
                projection.len() - 1
            }
        };
        let widened = LogicalPlan::TableScan(
            datafusion::logical_expr::TableScanBuilder::new(
                scan.table_name.clone(),
                scan.source.clone(),
            )
            .with_projection(Some(projection))
            .with_fetch(scan.fetch)
            .build()?,
        );
        let right_plan = match alias {
            Some(a) => LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                Arc::new(widened),
                a.alias.clone(),
            )?),
            None => widened,
        };
        // The stream's AS OF column, read too if the optimizer dropped it (at the end).
        let col = lookup_column(lookup);
        let (left_plan, left_time) = match j.left.schema().maybe_index_of_column(&col) {
            Some(i) => (j.left.as_ref().clone(), i),
            None => widen(&j.left, &col)?.ok_or_else(|| {
                at(unsupported(format!(
                    "an event-time temporal join as of {}, which the join's left input does not pass on",
                    lookup.column.join(".")
                ))
                .with_hint("select the time column in the subquery or view the stream is read through, or in the query"))
            })?,
        };
        {
            let (q, f) = left_plan.schema().qualified_field(left_time);
            // The join's own left input must pass the time attribute on (a regular join's
            // output has none: its rows can trail the watermark), as Flink requires.
            if !window::is_rowtime_attribute(&left_plan, &Column::new(q.cloned(), f.name()))
                || !window::is_time_attribute(&left_plan, f.name())
            {
                return Err(WeirError::sql(
                    format!(
                        "FOR SYSTEM_TIME AS OF {}: a timestamp but not a time attribute of the stream (its WATERMARK column or a PROCTIME() column)",
                        lookup.column.join(".")
                    ),
                    Some(lookup.column_pos),
                ));
            }
        }
        let (ls, rs) = (left_plan.schema(), right_plan.schema());
        // The output: the join's own columns of each side.
        let out_cols: Vec<usize> = (0..j.left.schema().fields().len())
            .chain((0..j.right.schema().fields().len()).map(|i| i + ls.fields().len()))
            .collect();
        let mut left_keys = vec![];
        let mut right_keys = vec![];
        for (l, r) in &key_pairs {
            left_keys.push(compile(self.state, l, ls)?);
            right_keys.push(compile(self.state, r, rs)?);
        }
        let condition = j
            .filter
            .iter()
            .cloned()
            .chain(other_equalities)
            .chain(preds)
            .reduce(Expr::and);
        let filter = match &condition {
            Some(f) => Some(compile(self.state, f, &ls.join(rs)?)?),
            None => None,
        };
        let join = crate::operator::temporal::TemporalJoin::new(
            left_outer,
            left_keys,
            right_keys,
            left_time,
            right_time,
            filter,
            Arc::new(ls.as_arrow().clone()),
            Arc::new(rs.as_arrow().clone()),
            Arc::new(j.schema.as_arrow().clone()),
            out_cols,
        )?;
        let left = self.node(&left_plan)?;
        let right = self.node(&right_plan)?;
        super::append_only(&left, "an event-time temporal join")?;
        Ok(PlanNode::Join {
            join: Box::new(join),
            left: Box::new(left),
            right: Box::new(right),
            idle: [
                self.idle_timeout(&left_plan)?,
                self.idle_timeout(&right_plan)?,
            ],
        })
    }
}

/// `plan` passing on the column `col` of a table it reads too, at the end of its columns
/// when it did not (the optimizer drops columns no one above reads): the plan and the
/// column's index. `None` when `plan` does not read it through scans, aliases, filters,
/// projections and joins.
fn widen(plan: &LogicalPlan, col: &Column) -> Result<Option<(LogicalPlan, usize)>> {
    if let Some(i) = plan.schema().maybe_index_of_column(col) {
        return Ok(Some((plan.clone(), i)));
    }
    Ok(match plan {
        LogicalPlan::TableScan(s) => {
            if col.relation.as_ref().is_some_and(|r| r != &s.table_name) {
                return Ok(None);
            }
            let Ok(t) = s.source.schema().index_of(&col.name) else {
                return Ok(None);
            };
            let mut projection = s
                .projection
                .clone()
                .unwrap_or_else(|| (0..s.source.schema().fields().len()).collect());
            projection.push(t);
            let at = projection.len() - 1;
            let scan = datafusion::logical_expr::TableScanBuilder::new(
                s.table_name.clone(),
                s.source.clone(),
            )
            .with_projection(Some(projection))
            .with_filters(s.filters.clone())
            .with_fetch(s.fetch)
            .build()?;
            Some((LogicalPlan::TableScan(scan), at))
        }
        LogicalPlan::SubqueryAlias(a) => {
            if col.relation.as_ref().is_some_and(|r| r != &a.alias) {
                return Ok(None);
            }
            match widen(&a.input, &Column::new_unqualified(&col.name))? {
                Some((input, i)) => Some((
                    LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                        Arc::new(input),
                        a.alias.clone(),
                    )?),
                    i,
                )),
                None => None,
            }
        }
        LogicalPlan::Filter(f) => match widen(&f.input, col)? {
            Some((input, i)) => Some((
                LogicalPlan::Filter(datafusion::logical_expr::Filter::try_new(
                    f.predicate.clone(),
                    Arc::new(input),
                )?),
                i,
            )),
            None => None,
        },
        LogicalPlan::Projection(p) => match widen(&p.input, col)? {
            Some((input, i)) => {
                let (q, f) = input.schema().qualified_field(i);
                let mut exprs = p.expr.clone();
                exprs.push(Expr::Column(Column::new(q.cloned(), f.name())));
                let at = exprs.len() - 1;
                Some((
                    LogicalPlan::Projection(datafusion::logical_expr::Projection::try_new(
                        exprs,
                        Arc::new(input),
                    )?),
                    at,
                ))
            }
            None => None,
        },
        LogicalPlan::Join(j) => {
            let (left, right) = if let Some((l, _)) = widen(&j.left, col)? {
                (Arc::new(l), j.right.clone())
            } else if let Some((r, _)) = widen(&j.right, col)? {
                (j.left.clone(), Arc::new(r))
            } else {
                return Ok(None);
            };
            let joined = LogicalPlan::Join(Join::try_new(
                left,
                right,
                j.on.clone(),
                j.filter.clone(),
                j.join_type,
                j.join_constraint,
                j.null_equality,
                j.null_aware,
            )?);
            // The join's own columns in their places, then the one read for the caller.
            let Some(at) = joined.schema().maybe_index_of_column(col) else {
                return Ok(None);
            };
            let (q, f) = joined.schema().qualified_field(at);
            let mut exprs: Vec<Expr> = j
                .schema
                .iter()
                .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
                .collect();
            exprs.push(Expr::Column(Column::new(q.cloned(), f.name())));
            let n = exprs.len() - 1;
            Some((
                LogicalPlan::Projection(datafusion::logical_expr::Projection::try_new(
                    exprs,
                    Arc::new(joined),
                )?),
                n,
            ))
        }
        _ => None,
    })
}

/// The `AS OF` column of `l` (`o.t` or `t`).
fn lookup_column(l: &Lookup) -> Column {
    match l.column.as_slice() {
        [.., q, name] => Column::new(Some(q.as_str()), name),
        [name] => Column::new_unqualified(name),
        [] => Column::new_unqualified(""),
    }
}

/// Whether `plan` holds the rows of a sub-query that a row is compared with, field by field,
/// in `(a, b) [NOT] IN (SELECT …)` (named `__weir_in` by `crate::sql::rewrite`).
fn holds_row_in_rows(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = plan.apply(|p| {
        if let LogicalPlan::SubqueryAlias(a) = p
            && a.alias.table() == "__weir_in"
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}
