//! Window aggregates as plan nodes: an `Aggregate` whose GROUP BY holds a window's
//! `window_start`/`window_end` (from a window TVF, or from a window aggregate below it, as
//! in Nexmark q5) becomes one [`WindowAggregate`] node (DataFusion's
//! `LogicalPlan::Extension`) before the streaming planner reads the plan. The node carries
//! what the planner needs, resolved once: the window the columns come from, and which
//! input columns are which window column. [`lift`] is the one rewrite; the streaming
//! planner plans the node as a window (or session) aggregate, and the traces of window
//! columns and time attributes through aggregates read it.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::common::DFSchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::utils::grouping_set_to_exprlist;
use datafusion::logical_expr::{
    Aggregate, Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore,
};

use crate::error::{Result, WeirError};
use crate::plan::window::{WindowInfo, WindowTrace, aggregated_window_trace, trace_window_column};

/// The window a window aggregate's columns come from; nodes compare by the window call's
/// id (the name standing for it in the statement).
#[derive(Debug, Clone)]
pub struct WindowRef(pub Arc<WindowInfo>);

impl PartialEq for WindowRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.call.id == other.0.call.id
    }
}

impl Eq for WindowRef {}

impl Hash for WindowRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.call.id.hash(state)
    }
}

impl PartialOrd for WindowRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.0.call.id.partial_cmp(&other.0.call.id)
    }
}

/// An input column of a window aggregate that is a window column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct WindowColumn {
    /// The column's name in the aggregate's input.
    pub name: String,
    /// Which window column it is: `window_start`, `window_end` or `window_time`.
    pub column: String,
    /// True when it comes out of a window aggregate below (its windows then arrive whole,
    /// each when it fires), false when straight from a window TVF.
    pub cascaded: bool,
    /// True when something between the TVF and here computes from window columns, so the
    /// rows must carry real windows rather than slices (see [`WindowTrace::exact`]).
    pub exact: bool,
}

/// An aggregate grouped by a window: DataFusion's `Aggregate`, the window its window
/// columns come from, and every input column it reads that is a window column. Its schema
/// is the aggregate's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct WindowAggregate {
    /// DataFusion's aggregate, as planned: its input, keys, aggregates and schema.
    pub aggregate: Aggregate,
    /// The window the GROUP BY's window columns come from.
    pub window: WindowRef,
    /// Every input column the aggregate reads that is a window column.
    pub columns: Vec<WindowColumn>,
}

impl WindowAggregate {
    /// The node in `plan`, when `plan` is one.
    pub fn of(plan: &LogicalPlan) -> Option<&WindowAggregate> {
        match plan {
            LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<WindowAggregate>(),
            _ => None,
        }
    }

    /// The window aggregate `plan` is: the node itself, or an `Aggregate` not lifted yet
    /// (statements are also checked before they are planned) resolved now. None when
    /// `plan` is neither, or its GROUP BY holds no window column, or it cannot be resolved.
    pub fn in_plan(plan: &LogicalPlan) -> Option<Cow<'_, WindowAggregate>> {
        match plan {
            LogicalPlan::Aggregate(a) => Self::resolve(a).ok().flatten().map(Cow::Owned),
            _ => Self::of(plan).map(Cow::Borrowed),
        }
    }

    /// `agg` as a window aggregate: None when no key of its GROUP BY (or of its grouping
    /// sets) is a window column. Errors when the keys hold the columns of two windows.
    pub fn resolve(agg: &Aggregate) -> Result<Option<WindowAggregate>> {
        let keys = grouping_set_to_exprlist(&agg.group_expr)?;
        let mut names: Vec<&str> = vec![];
        for e in keys.iter().copied().chain(agg.aggr_expr.iter()) {
            for c in e.column_refs() {
                if !names.contains(&c.name.as_str()) {
                    names.push(c.name.as_str());
                }
            }
        }
        let mut columns = vec![];
        let mut tables: Vec<(String, WindowTrace)> = vec![];
        for name in names {
            let traced = trace_window_column(&agg.input, name)
                .map(|t| (t, false))
                .or_else(|| aggregated_window_trace(&agg.input, name).map(|t| (t, true)));
            if let Some(((column, trace), cascaded)) = traced {
                columns.push(WindowColumn {
                    name: name.to_string(),
                    column: column.clone(),
                    cascaded,
                    exact: trace.exact,
                });
                tables.push((name.to_string(), trace));
            }
        }
        // The window of the GROUP BY's window columns.
        let mut window: Option<Arc<WindowInfo>> = None;
        for k in &keys {
            let Expr::Column(c) = k else { continue };
            let Some((_, t)) = tables.iter().find(|(n, _)| *n == c.name) else {
                continue;
            };
            if let Some(w) = &window
                && w.call.id != t.table.call.id
            {
                return Err(WeirError::sql(
                    "GROUP BY has the columns of two different windows",
                    None,
                ));
            }
            window = Some(t.table.clone());
        }
        Ok(window.map(|w| WindowAggregate {
            aggregate: agg.clone(),
            window: WindowRef(w),
            columns,
        }))
    }

    /// The window column input column `name` is, if it is one.
    pub fn column(&self, name: &str) -> Option<&WindowColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// True when `e` is a column of the input that is a window column.
    pub fn is_window_column(&self, e: &Expr) -> bool {
        matches!(e, Expr::Column(c) if self.column(&c.name).is_some())
    }

    /// The trace of window column `c` as [`trace_window_column`] gives it.
    pub fn trace(&self, c: &WindowColumn) -> WindowTrace {
        WindowTrace {
            table: self.window.0.clone(),
            exact: c.exact,
        }
    }
}

impl UserDefinedLogicalNodeCore for WindowAggregate {
    fn name(&self) -> &str {
        "WindowAggregate"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![self.aggregate.input.as_ref()]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.aggregate.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        self.aggregate
            .group_expr
            .iter()
            .chain(self.aggregate.aggr_expr.iter())
            .cloned()
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self
            .aggregate
            .group_expr
            .iter()
            .map(|e| e.to_string())
            .collect();
        let aggs: Vec<String> = self
            .aggregate
            .aggr_expr
            .iter()
            .map(|e| e.to_string())
            .collect();
        write!(
            f,
            "WindowAggregate: {} {}, groupBy=[{}], aggr=[{}]",
            self.window.0.call.kind.name(),
            self.window.0.call.id,
            keys.join(", "),
            aggs.join(", ")
        )
    }

    fn with_exprs_and_inputs(
        &self,
        mut exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> datafusion::error::Result<Self> {
        let groups = self.aggregate.group_expr.len();
        if inputs.len() != 1 || exprs.len() != groups + self.aggregate.aggr_expr.len() {
            return datafusion::common::internal_err!(
                "WindowAggregate takes one input and its keys and aggregates"
            );
        }
        let aggr = exprs.split_off(groups);
        let agg = Aggregate::try_new(Arc::new(inputs.swap_remove(0)), exprs, aggr)?;
        match WindowAggregate::resolve(&agg) {
            Ok(Some(w)) => Ok(w),
            Ok(None) => datafusion::common::internal_err!(
                "a window aggregate's new input has no window columns"
            ),
            Err(e) => datafusion::common::plan_err!("{e}"),
        }
    }
}

/// `plan` with every aggregate grouped by a window lifted into a [`WindowAggregate`] node,
/// innermost first (so an aggregate over a window aggregate's windows finds them).
pub fn lift(plan: &LogicalPlan) -> Result<LogicalPlan> {
    let mut failed = None;
    let lifted = plan.clone().transform_up(|node| {
        let LogicalPlan::Aggregate(a) = &node else {
            return Ok(Transformed::no(node));
        };
        match WindowAggregate::resolve(a) {
            Ok(Some(w)) => Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                node: Arc::new(w),
            }))),
            Ok(None) => Ok(Transformed::no(node)),
            Err(e) => {
                failed = Some(e);
                Ok(Transformed::no(node))
            }
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(lifted.data),
    }
}

/// The aggregate `plan` is, lifted or not.
pub fn aggregate_of(plan: &LogicalPlan) -> Option<&Aggregate> {
    match plan {
        LogicalPlan::Aggregate(a) => Some(a),
        _ => WindowAggregate::of(plan).map(|w| &w.aggregate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::SessionContext;

    use crate::error::Pos;
    use crate::operator::window::WindowSpec;
    use crate::plan::window::WindowTable;
    use crate::sql::window::{WindowCall, WindowInput, WindowKind};

    /// A context with table `t (k BIGINT, ts TIMESTAMP(3))` and a 10 ms TUMBLE over it
    /// registered as `w` (as a statement's window call is while it is planned).
    async fn context() -> SessionContext {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(TimestampMillisecondArray::from(vec![3, 14])),
            ],
        )
        .expect("batch");
        ctx.register_batch("t", b).expect("table");
        let input = ctx.table("t").await.expect("t").into_unoptimized_plan();
        let pos = Pos { line: 1, col: 1 };
        let call = WindowCall {
            id: "w".into(),
            kind: WindowKind::Tumble,
            pos,
            input: WindowInput::Table("t".into(), pos),
            time_col: "ts".into(),
            time_pos: pos,
            partition_by: vec![],
            args: vec![],
        };
        let spec = WindowSpec {
            kind: WindowKind::Tumble,
            size: 10,
            slide: 10,
            offset: 0,
            zone: None,
        };
        let table = WindowTable(Arc::new(WindowInfo::new(call, spec, input, 1)));
        ctx.register_table("w", Arc::new(table)).expect("window");
        ctx
    }

    /// The window aggregate nodes of `plan`, outermost first: per node, its window
    /// columns as (input column, window column, cascaded).
    fn nodes(plan: &LogicalPlan) -> Vec<Vec<(String, String, bool)>> {
        let mut out = vec![];
        plan.apply(|n| {
            if let Some(w) = WindowAggregate::of(n) {
                out.push(
                    w.columns
                        .iter()
                        .map(|c| (c.name.clone(), c.column.clone(), c.cascaded))
                        .collect(),
                );
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .expect("walk");
        out
    }

    async fn lifted(ctx: &SessionContext, sql: &str) -> LogicalPlan {
        let plan = ctx.sql(sql).await.expect("plans").into_unoptimized_plan();
        lift(&plan).expect("lift")
    }

    /// An aggregate grouped by a window becomes one node, with the window columns it reads
    /// resolved; an aggregate over its windows (Nexmark q5) becomes a second node whose
    /// columns are cascaded; a GROUP BY of no window column stays DataFusion's aggregate.
    #[tokio::test]
    async fn aggregates_grouped_by_a_window_become_window_aggregate_nodes() {
        let ctx = context().await;
        let inner = "SELECT window_start AS s, window_end AS e, k, COUNT(*) AS c \
                     FROM w GROUP BY window_start, window_end, k";
        let p = lifted(&ctx, inner).await;
        assert_eq!(
            nodes(&p),
            vec![vec![
                ("window_start".into(), "window_start".into(), false),
                ("window_end".into(), "window_end".into(), false),
            ]]
        );
        let p = lifted(
            &ctx,
            &format!("SELECT s, e, MAX(c) AS m FROM ({inner}) GROUP BY s, e"),
        )
        .await;
        assert_eq!(
            nodes(&p),
            vec![
                vec![
                    ("s".into(), "window_start".into(), true),
                    ("e".into(), "window_end".into(), true),
                ],
                vec![
                    ("window_start".into(), "window_start".into(), false),
                    ("window_end".into(), "window_end".into(), false),
                ],
            ]
        );
        // Both nodes know the window; a window aggregate's window_time stays a time
        // attribute.
        let mut windows = vec![];
        p.apply(|n| {
            if let Some(w) = WindowAggregate::of(n) {
                windows.push(w.window.0.call.id.clone());
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .expect("walk");
        assert_eq!(windows, ["w", "w"]);
        assert!(
            crate::plan::window::is_time_attribute(
                &lifted(&ctx, "SELECT window_time, COUNT(*) AS c FROM w GROUP BY window_start, window_end, window_time").await,
                "window_time"
            )
        );
        let p = lifted(&ctx, "SELECT k, COUNT(*) AS c FROM t GROUP BY k").await;
        assert!(nodes(&p).is_empty());
        assert!(matches!(
            p,
            LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_)
        ));
    }
}
