//! From DataFusion's logical plan to a streaming plan: a tree of sources, operators, joins
//! and unions that [`crate::job`] runs as tasks.
//!
//! DataFusion parses, resolves and optimises the query (names, types, every scalar
//! function, views); this module walks the optimised [`LogicalPlan`] and maps each node to
//! its streaming form, compiling expressions once into [`PhysicalExpr`]s. A subtree that
//! reads no stream (`VALUES`, `SELECT 1`) is run by DataFusion in batch and enters as a
//! bounded input. Aggregates become window aggregates or, without a window, changelog
//! aggregates; joins are planned in `join.rs`. What has no streaming form yet (a sort of an
//! unbounded stream, an outer join without a window, …) is refused with a clear message.

mod join;
mod narrow;
pub mod rank_limit;
pub mod window;
pub mod window_aggregate;

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{LogicalPlan, TableScan};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::operator::Operator;
use crate::operator::filter::FilterOperator;
use crate::operator::limit::LimitOperator;
use crate::operator::project::ProjectOperator;
use crate::operator::rank::{RankCall, RankKind, RankOperator};
use crate::operator::session::SessionAggregateOperator;
use crate::operator::window::{Aggregates, OutCol, WindowAggregateOperator, WindowAssignOperator};
use crate::source::Source;
use crate::source::watermark::{SourceStage, WatermarkExpr};
use crate::sql::catalog::{StreamTable, TableDef, logical_expr};
use crate::sql::window::WindowKind;
use window_aggregate::WindowAggregate;

/// An aggregate function compiled, with its FILTER.
type AggregateCall = (
    Arc<datafusion::physical_expr::aggregate::AggregateFunctionExpr>,
    Option<Arc<dyn PhysicalExpr>>,
);

/// Compiled ORDER BY keys with their directions.
type OrderKeys = Vec<(
    Arc<dyn PhysicalExpr>,
    datafusion::arrow::compute::SortOptions,
)>;

/// Flink's setting that lets a job read a table scanned twice with one source.
pub const REUSE_SOURCE_KEY: &str = "table.optimizer.reuse-source-enabled";
/// Flink's setting that source reuse needs as well.
pub const REUSE_SUB_PLAN_KEY: &str = "table.optimizer.reuse-sub-plan-enabled";

/// The aggregates whose `DISTINCT` form over an updating input Weir computes from counted
/// distinct values (each skips NULLs, so the distinct set holds no NULL): the rest of
/// Flink's aggregates keep their own rules there.
pub const NULL_SKIPPING_AGGREGATES: &[&str] = &[
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "stddev",
    "stddev_pop",
    "var",
    "var_pop",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
];

/// A node of a streaming plan.
pub enum PlanNode {
    Source {
        table: Arc<TableDef>,
        source: Box<dyn Source>,
        stage: SourceStage,
        /// Where the records it cannot read go (`'dead-letter.sink'`).
        dead_letter: Option<crate::sink::dead_letter::DeadLetterTable>,
        /// What the reads of one table in a job share (its name) when they share one
        /// source task, as Flink's `table.optimizer.reuse-source-enabled` (default true)
        /// reuses a table scanned twice; None when each read has its own.
        reuse: Option<String>,
    },
    /// Rows computed in batch (a subtree that reads no stream).
    Values { batches: Vec<RecordBatch> },
    Operator {
        op: Box<dyn Operator>,
        input: Box<PlanNode>,
    },
    /// Two inputs joined (see [`crate::operator::join`]).
    Join {
        join: Box<dyn Operator>,
        left: Box<PlanNode>,
        right: Box<PlanNode>,
        /// Per side, how long it may stay silent before it stops holding the watermark
        /// back (as for a union's inputs).
        idle: [Option<std::time::Duration>; 2],
    },
    Union {
        inputs: Vec<PlanNode>,
        /// Per input: how long it may stay silent before its watermark stops holding the
        /// union back (`scan.watermark.idle-timeout`, `table.exec.source.idle-timeout`).
        idle: Vec<Option<std::time::Duration>>,
        /// A statement set's union (input `i` is INSERT `i`): each input's watermark also
        /// goes on to its own sink (see [`crate::sink::multi`]).
        statement_set: bool,
    },
}

impl PlanNode {
    /// True when the plan's output is a changelog (rows that update earlier ones).
    pub fn updates(&self) -> bool {
        match self {
            PlanNode::Source { .. } | PlanNode::Values { .. } => false,
            PlanNode::Operator { op, input } => op.emits_changes() || input.updates(),
            PlanNode::Join {
                join, left, right, ..
            } => join.emits_changes() || left.updates() || right.updates(),
            PlanNode::Union { inputs, .. } => inputs.iter().any(|i| i.updates()),
        }
    }

    /// The row kinds the plan's output may hold (Flink's changelog mode). A source is
    /// append-only, except an `upsert-kafka` one, whose rows are upserts and deletes
    /// (Flink's `[UA,D]`) until its ChangelogNormalize.
    pub fn changelog_mode(&self) -> crate::changelog::ChangelogMode {
        use crate::changelog::{ChangelogMode, RowKind};
        match self {
            PlanNode::Source { table, .. } if table.connector == "upsert-kafka" => {
                ChangelogMode::of(&[RowKind::UpdateAfter, RowKind::Delete])
            }
            PlanNode::Source { .. } | PlanNode::Values { .. } => ChangelogMode::INSERT_ONLY,
            PlanNode::Operator { op, input } => op.changelog_mode(&[input.changelog_mode()]),
            PlanNode::Join {
                join, left, right, ..
            } => join.changelog_mode(&[left.changelog_mode(), right.changelog_mode()]),
            PlanNode::Union { inputs, .. } => ChangelogMode::merged(
                &inputs
                    .iter()
                    .map(|i| i.changelog_mode())
                    .collect::<Vec<_>>(),
            ),
        }
    }

    /// An indented description, as `EXPLAIN` prints it; with `changelog_mode`, each line
    /// ends in its node's changelog mode (`, changelogMode=[I,UB,UA]`), as Flink's
    /// `EXPLAIN CHANGELOG_MODE` shows it.
    pub fn explain(&self, changelog_mode: bool) -> String {
        let mut s = String::new();
        self.explain_into(&mut s, 0, changelog_mode);
        s
    }

    /// This node's own line of [`PlanNode::explain`], without its inputs.
    pub fn label(&self) -> String {
        match self {
            PlanNode::Source { table, .. } => {
                let wm = table
                    .watermark
                    .as_ref()
                    .map(|w| format!(", watermark {} AS {}", w.column, w.expr))
                    .unwrap_or_default();
                format!(
                    "Source: {} (connector '{}'{wm})",
                    table.name, table.connector
                )
            }
            PlanNode::Values { batches } => {
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                format!("Values: {rows} row(s)")
            }
            PlanNode::Operator { op, .. } => op.name(),
            PlanNode::Join { join, .. } => join.name(),
            PlanNode::Union { .. } => "Union".to_string(),
        }
    }

    fn explain_into(&self, s: &mut String, depth: usize, modes: bool) {
        let mode = match modes {
            true => format!(", changelogMode={}", self.changelog_mode()),
            false => String::new(),
        };
        let _ = writeln!(s, "{}{}{mode}", "  ".repeat(depth), self.label());
        match self {
            PlanNode::Source { .. } | PlanNode::Values { .. } => {}
            PlanNode::Operator { input, .. } => input.explain_into(s, depth + 1, modes),
            PlanNode::Join { left, right, .. } => {
                left.explain_into(s, depth + 1, modes);
                right.explain_into(s, depth + 1, modes);
            }
            PlanNode::Union { inputs, .. } => {
                for i in inputs {
                    i.explain_into(s, depth + 1, modes);
                }
            }
        }
    }
}

/// What a planner needs from the session: DataFusion's state, the SET overrides and the
/// batch size for sources.
pub struct Planner<'a> {
    pub state: &'a SessionState,
    pub settings: &'a [(String, String)],
    /// Where each setting came from (`--set k=v`, `SET 'k' = 'v'`), for errors.
    pub setting_origins: &'a std::collections::BTreeMap<String, String>,
    pub batch_size: usize,
    /// Window tables (by id) read in slice mode, because a window aggregate is above them.
    pub sliced: std::sync::Mutex<Vec<String>>,
    /// The catalog's tables, for `'late-data.sink'`.
    pub tables: &'a std::collections::BTreeMap<String, Arc<TableDef>>,
    /// Late-data sinks already given to a window of this query: two windows may not share
    /// one (their files would carry the same names).
    pub late_sinks: std::sync::Mutex<Vec<String>>,
    /// The source tables given a dead-letter sink so far in this query. A table read
    /// twice (a self-join) sends its dead letters from its first scan only.
    pub dead_letters: std::sync::Mutex<Vec<String>>,
    /// A name for files this query writes (`<job>-0`).
    pub part: String,
    /// The statement's `FOR SYSTEM_TIME AS OF` joins: those as of an event-time attribute
    /// are event-time temporal joins.
    pub lookups: &'a [crate::sql::parser::Lookup],
    /// Where those of them as of an event-time attribute start (see
    /// `Session::check_lookup_columns`).
    pub temporal: Vec<crate::error::Pos>,
    /// Set while the distinct of an `INTERSECT`/`EXCEPT` plans its join, which compares
    /// NULLs alike (see `Planner::join`).
    pub nulls_equal_join: std::sync::atomic::AtomicBool,
    /// Set while a projection that drops a Top-N's rank column plans its input.
    pub rank_unused: std::sync::atomic::AtomicBool,
}

/// True when `p` projects a Top-N (a rank limit, under filters) without its rank column.
fn rank_dropped(p: &datafusion::logical_expr::Projection) -> bool {
    let mut below = p.input.as_ref();
    let mut filters = vec![];
    while let LogicalPlan::Filter(f) = below {
        filters.push(&f.predicate);
        below = f.input.as_ref();
    }
    let Some(r) = rank_limit::RankLimit::of(below) else {
        return false;
    };
    let LogicalPlan::Window(w) = &r.input else {
        return false;
    };
    if w.window_expr.len() != 1 {
        return false;
    }
    let rank = w.schema.field(w.schema.fields().len() - 1).name();
    // Only upper bounds on the rank (`rn <= N`, `rn < N`): a lower bound (or `rn = k`) reads
    // ranks that, without the rank's updates, would be stale.
    use datafusion::logical_expr::{BinaryExpr, Expr, Operator as Op};
    let upper = |e: &Expr| match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(..)) if &c.name == rank => {
                matches!(op, Op::Lt | Op::LtEq)
            }
            (Expr::Literal(..), Expr::Column(c)) if &c.name == rank => {
                matches!(op, Op::Gt | Op::GtEq)
            }
            _ => false,
        },
        _ => false,
    };
    for f in filters {
        for c in datafusion::logical_expr::utils::split_conjunction(f) {
            if c.column_refs().iter().any(|col| &col.name == rank) && !upper(c) {
                return false;
            }
        }
    }
    !p.expr
        .iter()
        .any(|e| e.column_refs().iter().any(|c| &c.name == rank))
}

pub(crate) fn stream_table(scan: &TableScan) -> Option<Arc<TableDef>> {
    let provider = datafusion::datasource::source_as_provider(&scan.source).ok()?;
    provider.downcast_ref::<StreamTable>().map(|t| t.def())
}

/// The stream tables a plan reads, through window tables too.
/// Runs `plan` (a query that reads no stream) in batch: optimised once, refused when a
/// lateral join DataFusion cannot run is left in it (that error pointed at `pos`, not
/// DataFusion's internal one), then executed. Errors: planning and execution errors.
pub(crate) async fn batch_stream(
    state: &SessionState,
    plan: &LogicalPlan,
    pos: Option<crate::error::Pos>,
) -> Result<datafusion::execution::SendableRecordBatchStream> {
    let optimized = state.optimize(plan)?;
    crate::sql::lateral::check_runnable(&optimized).map_err(|e| e.at(pos))?;
    let physical = state
        .query_planner()
        .create_physical_plan(&optimized, state)
        .await?;
    Ok(datafusion::physical_plan::execute_stream(
        physical,
        state.task_ctx(),
    )?)
}

fn stream_sources(plan: &LogicalPlan, out: &mut Vec<Arc<TableDef>>) {
    if let LogicalPlan::TableScan(s) = plan {
        if let Some(t) = stream_table(s) {
            out.push(t);
        }
        if let Some(w) = window::window_table(s) {
            stream_sources(&w.input, out);
        }
    }
    for i in plan.inputs() {
        stream_sources(i, out);
    }
}

fn reads_stream(plan: &LogicalPlan) -> bool {
    if let LogicalPlan::TableScan(s) = plan {
        if stream_table(s).is_some() {
            return true;
        }
        if let Some(w) = window::window_table(s) {
            return reads_stream(&w.input);
        }
    }
    plan.inputs().iter().any(|p| reads_stream(p))
}

fn compile(
    state: &SessionState,
    e: &datafusion::logical_expr::Expr,
    schema: &DFSchema,
) -> Result<Arc<dyn PhysicalExpr>> {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::logical_expr::Expr;
    // A subquery the optimizer could not turn into a join stays inside the expression,
    // which no streaming operator evaluates.
    if e.exists(|x| {
        Ok(matches!(
            x,
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
        ))
    })? {
        return Err(WeirError::sql(
            format!(
                "not supported in a standing query yet: a subquery inside an expression ({})",
                e.human_display()
            ),
            None,
        )
        .with_hint("join the subquery's result instead (FROM s JOIN (SELECT …) AS a ON …)"));
    }
    let e = rewritten_calls(e.clone(), schema)?;
    Ok(state.create_physical_expr(e, schema)?)
}

/// The functions DataFusion evaluates only as the optimizer's simplifier rewrites them
/// (`COALESCE` as a `CASE`, `NVL2` likewise, `arrow_cast` as a cast); their own evaluation
/// is an error ("coalesce should have been simplified to case").
const REWRITTEN_CALLS: &[&str] = &[
    "coalesce",
    "nvl2",
    "arrow_cast",
    "arrow_try_cast",
    "cast_to_type",
    "try_cast_to_type",
];

/// `e` with each [`REWRITTEN_CALLS`] call rewritten as DataFusion's simplifier rewrites it.
/// An expression the optimizer has not seen (a table's computed column or watermark, a
/// lookup key) needs it: `c AS COALESCE(b, 0)` failed every query over its table. Only
/// those calls: the whole simplifier would also fold `CURRENT_TIMESTAMP` to one instant.
fn rewritten_calls(
    e: datafusion::logical_expr::Expr,
    schema: &DFSchema,
) -> Result<datafusion::logical_expr::Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::Expr;
    use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .build();
    Ok(e.transform_up(|x| match x {
        Expr::ScalarFunction(f) if REWRITTEN_CALLS.contains(&f.func.name()) => {
            match f.func.simplify(f.args.clone(), &context)? {
                ExprSimplifyResult::Simplified(s) => Ok(Transformed::yes(s)),
                ExprSimplifyResult::Original(_) => Ok(Transformed::no(Expr::ScalarFunction(f))),
            }
        }
        x => Ok(Transformed::no(x)),
    })?
    .data)
}

impl Planner<'_> {
    pub async fn plan(&self, plan: &LogicalPlan) -> Result<PlanNode> {
        if !reads_stream(plan) {
            let stream = batch_stream(self.state, plan, None).await?;
            let batches = datafusion::physical_plan::common::collect(stream).await?;
            return Ok(PlanNode::Values { batches });
        }
        // Rank limits (`WHERE rn <= N`) and window aggregates become nodes of the plan
        // (see `rank_limit` and `window_aggregate`).
        let plan = rank_limit::lift(plan)?;
        let plan = window_aggregate::lift(&plan)?;
        self.node(&plan)
    }

    fn node(&self, plan: &LogicalPlan) -> Result<PlanNode> {
        match plan {
            LogicalPlan::TableScan(scan) if window::window_table(scan).is_some() => {
                self.window_scan(scan)
            }
            LogicalPlan::TableScan(scan) => {
                let Some(table) = stream_table(scan) else {
                    return Err(WeirError::sql(
                        format!("'{}' cannot be read in a standing query", scan.table_name),
                        None,
                    ));
                };
                let table_schema = table.schema.clone();
                let mut node = self.source(table.clone())?;
                if table.connector == "upsert-kafka" {
                    // Upserts and tombstones become a changelog before anything reads them
                    // (Flink's ChangelogNormalize), keyed by the primary key.
                    let key = table
                        .primary_key
                        .iter()
                        .map(|k| table_schema.index_of(k))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    node = PlanNode::Operator {
                        op: Box::new(
                            crate::operator::normalize::NormalizeOperator::new(
                                table_schema.clone(),
                                key,
                            )?
                            .with_ttl(self.state_ttl()?),
                        ),
                        input: Box::new(node),
                    };
                }
                self.scan_tail(node, scan, &table_schema)
            }
            LogicalPlan::Projection(p) => {
                // A Top-N whose rank this projection drops sends only the rows that enter
                // and leave (see `TopNOperator::without_rank`).
                self.rank_unused
                    .store(rank_dropped(p), std::sync::atomic::Ordering::Relaxed);
                let input = self.node(&p.input);
                self.rank_unused
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                let input = input?;
                let exprs = p
                    .expr
                    .iter()
                    .map(|e| compile(self.state, e, p.input.schema()))
                    .collect::<Result<Vec<_>>>()?;
                Ok(PlanNode::Operator {
                    op: Box::new(ProjectOperator::new(
                        exprs,
                        Arc::new(p.schema.as_arrow().clone()),
                    )),
                    input: Box::new(input),
                })
            }
            LogicalPlan::Filter(f) => {
                let input = self.node(&f.input)?;
                let pred = compile(self.state, &f.predicate, f.input.schema())?;
                Ok(PlanNode::Operator {
                    op: Box::new(FilterOperator::new(pred)),
                    input: Box::new(input),
                })
            }
            LogicalPlan::SubqueryAlias(a) => self.node(&a.input),
            LogicalPlan::Union(u) => {
                let mut inputs = vec![];
                let mut idle = vec![];
                for i in &u.inputs {
                    if reads_stream(i) {
                        idle.push(self.idle_timeout(i)?);
                        inputs.push(self.node(i)?);
                    } else {
                        return Err(WeirError::sql(
                            "UNION ALL of a stream with a constant query is not supported",
                            None,
                        ));
                    }
                }
                Ok(PlanNode::Union {
                    inputs,
                    idle,
                    statement_set: false,
                })
            }
            LogicalPlan::Limit(l) => {
                use datafusion::logical_expr::{FetchType, SkipType};
                let skip = match l.get_skip_type()? {
                    SkipType::Literal(n) => n,
                    SkipType::UnsupportedExpr => {
                        return Err(WeirError::sql("OFFSET must be a constant", None));
                    }
                };
                let fetch = match l.get_fetch_type()? {
                    FetchType::Literal(n) => n,
                    FetchType::UnsupportedExpr => {
                        return Err(WeirError::sql("LIMIT must be a constant", None));
                    }
                };
                if let LogicalPlan::Sort(s) = l.input.as_ref()
                    && self.sort_time_column(s).is_none()
                {
                    // `ORDER BY x LIMIT n [OFFSET m]` over a stream: Flink's Top-N (its
                    // SortLimit, ranks m + 1 to m + n).
                    // The sort's own fetch (the optimizer's push-down) counts the
                    // offset's rows too.
                    let fetch = match (fetch, s.fetch.map(|f| f.saturating_sub(skip))) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    return match fetch {
                        Some(n) => self.sort_limit(s, n, skip),
                        None if skip > 0 => Err(WeirError::sql(
                            "not supported in a standing query: OFFSET without LIMIT after ORDER BY over a stream (every row past the offset would be kept)",
                            None,
                        )
                        .with_hint("add a LIMIT")),
                        None => self.sort(s),
                    };
                }
                let input = self.node(&l.input)?;
                if input.updates() {
                    // Over a changelog a LIMIT counts rows, not changes: Flink's rank with
                    // no order, the first rows still there in the order they came.
                    let Some(n) = fetch else {
                        return Err(WeirError::sql(
                            "not supported in a standing query: OFFSET without LIMIT over results that update",
                            None,
                        )
                        .with_hint("add a LIMIT"));
                    };
                    let arrival = vec![(
                        Arc::new(datafusion::physical_expr::expressions::Literal::new(
                            datafusion::common::ScalarValue::Int32(Some(0)),
                        )) as Arc<dyn PhysicalExpr>,
                        datafusion::arrow::compute::SortOptions::default(),
                    )];
                    return self.top_rows(input, l.input.schema(), arrival, n, skip);
                }
                Ok(PlanNode::Operator {
                    op: Box::new(LimitOperator::new(skip, fetch)),
                    input: Box::new(input),
                })
            }
            LogicalPlan::Aggregate(agg) => self.aggregate(agg),
            LogicalPlan::Join(j) => self.join(j),
            LogicalPlan::Sort(s) => self.sort(s),
            LogicalPlan::Window(w) if is_over_aggregate(w) => self.over(w),
            LogicalPlan::Window(w) => self.rank(w, None),
            LogicalPlan::Extension(_) if let Some(w) = WindowAggregate::of(plan) => {
                self.window_aggregate(w)
            }
            LogicalPlan::Extension(_) => match rank_limit::RankLimit::of(plan) {
                Some(r) => match &r.input {
                    LogicalPlan::Window(w) => self.rank(w, Some(r)),
                    other => Err(WeirError::sql(
                        format!(
                            "not supported in a standing query: a rank limit over {}",
                            other.display()
                        ),
                        None,
                    )),
                },
                None => Err(WeirError::sql(
                    format!("not supported in a standing query: {}", plan.display()),
                    None,
                )),
            },
            LogicalPlan::Unnest(u) => {
                let input = self.node(&u.input)?;
                append_only(&input, "UNNEST")?;
                let lists = u
                    .list_type_columns
                    .iter()
                    .map(|(index, l)| datafusion::physical_plan::unnest::ListUnnest {
                        index_in_input_schema: *index,
                        depth: l.depth,
                    })
                    .collect();
                Ok(PlanNode::Operator {
                    op: Box::new(crate::operator::unnest::UnnestOperator::new(
                        Arc::new(u.input.schema().as_arrow().clone()),
                        lists,
                        u.struct_type_columns.clone(),
                        Arc::new(u.schema.as_arrow().clone()),
                        u.options.clone(),
                    )),
                    input: Box::new(input),
                })
            }
            LogicalPlan::Distinct(_) => Err(WeirError::sql(
                "not supported in a standing query yet: DISTINCT over a stream",
                None,
            )),
            other => Err(WeirError::sql(
                format!("not supported in a standing query: {}", other.display()),
                None,
            )),
        }
    }

    /// A scan's projection, pushed-down filters and limit, over the table's full rows.
    fn scan_tail(
        &self,
        mut node: PlanNode,
        scan: &TableScan,
        table_schema: &datafusion::arrow::datatypes::SchemaRef,
    ) -> Result<PlanNode> {
        if let Some(proj) = &scan.projection {
            let exprs = proj
                .iter()
                .map(|i| {
                    Arc::new(datafusion::physical_expr::expressions::Column::new(
                        table_schema.field(*i).name(),
                        *i,
                    )) as Arc<dyn PhysicalExpr>
                })
                .collect();
            let schema = Arc::new(scan.projected_schema.as_arrow().clone());
            node = PlanNode::Operator {
                op: Box::new(ProjectOperator::new(exprs, schema)),
                input: Box::new(node),
            };
        }
        for f in &scan.filters {
            let pred = compile(self.state, f, &scan.projected_schema)?;
            node = PlanNode::Operator {
                op: Box::new(FilterOperator::new(pred)),
                input: Box::new(node),
            };
        }
        if let Some(fetch) = scan.fetch {
            node = PlanNode::Operator {
                op: Box::new(LimitOperator::new(0, Some(fetch))),
                input: Box::new(node),
            };
        }
        Ok(node)
    }

    /// A scan of a window table: its input, then window assignment.
    fn window_scan(&self, scan: &TableScan) -> Result<PlanNode> {
        let Some(w) = window::window_table(scan) else {
            return Err(WeirError::internal("not a window table"));
        };
        let sliced = self.sliced.lock().is_ok_and(|s| s.contains(&w.call.id));
        let late = self.late_sink(&w)?;
        let mut input = self.node(&w.input)?;
        append_only(&input, "a window table function")?;
        let time_name = w.input.schema().field(w.time_index).name().clone();
        if window::is_query_proctime(&w.input, &time_name) {
            input = PlanNode::Operator {
                op: Box::new(crate::operator::proctime::ProcTimeWatermark::new(
                    w.time_index,
                )),
                input: Box::new(input),
            };
        }
        let node = if w.spec.kind == WindowKind::Session && !sliced {
            session_rows(&w, input)?
        } else if w.spec.kind == WindowKind::Session {
            // The session aggregate assigns rows to sessions itself.
            PlanNode::Operator {
                op: Box::new(ProjectOperator::new(session_columns(&w)?, w.schema.clone())),
                input: Box::new(input),
            }
        } else {
            PlanNode::Operator {
                op: Box::new(
                    WindowAssignOperator::new(w.spec, w.time_index, w.schema.clone(), sliced)
                        .with_late_sink(late),
                ),
                input: Box::new(input),
            }
        };
        self.scan_tail(node, scan, &w.schema)
    }

    /// The idle timeout of an input: the shortest of its sources' `scan.watermark.idle-timeout`
    /// (or `table.exec.source.idle-timeout` when a source has none).
    fn idle_timeout(&self, plan: &LogicalPlan) -> Result<Option<std::time::Duration>> {
        let mut defs = vec![];
        stream_sources(plan, &mut defs);
        let mut best: Option<std::time::Duration> = None;
        for d in defs {
            let Some((text, pos)) = self.idle_setting(&d) else {
                continue;
            };
            let t = crate::sql::options::parse_duration(&text)
                .map_err(|m| WeirError::sql(format!("idle timeout: {m}"), pos))?;
            if t.is_zero() {
                continue; // 0 turns idleness detection off, as in Flink
            }
            best = Some(best.map_or(t, |b: std::time::Duration| b.min(t)));
        }
        Ok(best)
    }

    /// The session's `table.exec.state.ttl` (0, the default, keeps state for as long as the
    /// query runs).
    fn state_ttl(&self) -> Result<Option<std::time::Duration>> {
        match self.setting("table.exec.state.ttl") {
            Some(v) => crate::sql::options::parse_duration(v)
                .map(Some)
                .map_err(|m| WeirError::sql(format!("'table.exec.state.ttl': {m}"), None)),
            None => Ok(None),
        }
    }

    /// A source's idle timeout as written: its `scan.watermark.idle-timeout`, else the
    /// session's `table.exec.source.idle-timeout` (with no position).
    fn idle_setting(&self, def: &TableDef) -> Option<(String, Option<crate::error::Pos>)> {
        match def.options.get("scan.watermark.idle-timeout") {
            Some(v) => Some((
                v.to_string(),
                def.options.pos("scan.watermark.idle-timeout"),
            )),
            None => self
                .setting("table.exec.source.idle-timeout")
                .map(|v| (v.to_string(), None)),
        }
    }

    /// Flink's `table.optimizer.reuse-source-enabled` (and the
    /// `table.optimizer.reuse-sub-plan-enabled` it needs), both true by default: a table read
    /// more than once in a job is read by one source task, whose rows every read gets.
    fn reuses_sources(&self) -> bool {
        [REUSE_SOURCE_KEY, REUSE_SUB_PLAN_KEY].iter().all(|k| {
            !self
                .setting(k)
                .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        })
    }

    /// The value of a `SET` key in this session.
    fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The sink for rows too late for their windows, when a source under the window names
    /// one with `'late-data.sink'`.
    fn late_sink(&self, w: &window::WindowInfo) -> Result<Option<Box<dyn crate::sink::Sink>>> {
        let mut defs = vec![];
        stream_sources(&w.input, &mut defs);
        let Some(def) = defs
            .iter()
            .find(|d| d.options.get("late-data.sink").is_some())
        else {
            return Ok(None);
        };
        let name = def.options.get("late-data.sink").unwrap_or_default();
        let pos = def.options.pos("late-data.sink");
        if w.spec.kind == WindowKind::Session {
            return Err(WeirError::sql(
                "'late-data.sink' works with TUMBLE, HOP and CUMULATE windows, not SESSION yet",
                pos,
            ));
        }
        if let Ok(mut used) = self.late_sinks.lock() {
            if used.iter().any(|u| u == name) {
                return Err(WeirError::sql(
                    format!(
                        "'late-data.sink' = '{name}' serves two windows of this query; one window per late-data table"
                    ),
                    pos,
                )
                .with_hint("declare a second late-data table, or a second source table naming it"));
            }
            used.push(name.to_string());
        }
        let Some(target) = self.tables.get(name) else {
            return Err(WeirError::sql(
                format!("'late-data.sink' names '{name}', which is not a table"),
                pos,
            )
            .with_hint("declare it with CREATE TABLE ... WITH ('connector' = 'print' | 'filesystem' | ...)"));
        };
        let in_cols = w.input.schema().fields().len();
        // The columns its sink writes: not VIRTUAL metadata (and persisted metadata only
        // where the connector writes it), as an INSERT into it.
        let written = target.sink_schema().map_err(|e| e.at(pos))?;
        if target.has_columns && written.fields().len() != in_cols {
            return Err(WeirError::sql(
                format!(
                    "late rows have the {in_cols} column(s) of the window's input, but '{name}' takes {}",
                    written.fields().len()
                ),
                pos,
            ));
        }
        let options =
            crate::connector::effective_options(target, self.settings, self.setting_origins)?;
        let sink = crate::connector::build_sink(target, &options, &format!("late-{}", self.part))?;
        Ok(Some(Box::new(crate::sink::conform::ConformSink::new(
            sink,
            target.has_columns.then_some(written),
        ))))
    }

    /// An aggregate: a window aggregate when its GROUP BY holds window columns (one not
    /// lifted into a [`WindowAggregate`] node yet), else a GROUP BY over the whole stream.
    fn aggregate(&self, agg: &datafusion::logical_expr::Aggregate) -> Result<PlanNode> {
        match WindowAggregate::resolve(agg)? {
            Some(w) => self.window_aggregate(&w),
            None => {
                let grouping = self.grouping_sets(agg)?;
                self.group_aggregate(agg, grouping)
            }
        }
    }

    /// A window aggregate: a window (or session) aggregate operator over its input.
    fn window_aggregate(&self, w: &WindowAggregate) -> Result<PlanNode> {
        use datafusion::logical_expr::{Expr, ExprSchemable};
        let agg = &w.aggregate;
        let grouping = self.grouping_sets(agg)?;
        let group_exprs: Vec<Expr> = match &grouping {
            Some(g) => g.exprs.clone(),
            None => agg.group_expr.clone(),
        };
        let is_window_col = |g: &Expr| w.is_window_column(g);
        if let Some(g) = &grouping
            && group_exprs
                .iter()
                .enumerate()
                .any(|(i, e)| is_window_col(e) && g.sets.iter().any(|s| s.nulls[i]))
        {
            return Err(WeirError::sql(
                "every grouping set of a window aggregate keeps window_start and window_end",
                None,
            )
            .with_hint("GROUP BY window_start, window_end, GROUPING SETS ((a), ())"));
        }
        let input_schema = agg.input.schema();
        let mut layout = vec![];
        let mut keys = vec![];
        let mut key_fields = vec![];
        let mut trace: Option<window::WindowTrace> = None;
        let mut end_col = None;
        // Grouping by the window columns of a window aggregate below (Nexmark q5's maximum
        // of per-auction counts): each of its windows arrives whole, when it fires.
        let mut cascaded = false;
        for (gi, g) in group_exprs.iter().enumerate() {
            let traced = match g {
                Expr::Column(c) => w.column(&c.name),
                _ => None,
            };
            if let (Expr::Column(c), Some(wc)) = (g, traced) {
                cascaded |= wc.cascaded;
                match wc.column.as_str() {
                    "window_start" => layout.push(OutCol::WindowStart),
                    "window_end" => {
                        end_col = Some(input_schema.index_of_column(c)?);
                        layout.push(OutCol::WindowEnd)
                    }
                    _ => layout.push(OutCol::WindowTime),
                }
                trace = Some(w.trace(wc));
                continue;
            }
            layout.push(OutCol::Key(keys.len()));
            let dt = g.get_type(input_schema)?;
            key_fields.push(datafusion::arrow::datatypes::Field::new(
                format!("k{}", keys.len()),
                dt,
                true,
            ));
            keys.push(match &grouping {
                // The key's value (or NULL) as the expansion put it.
                Some(gs) => gs.key_column(gi),
                None => compile(self.state, g, input_schema)?,
            });
        }
        if let Some(gs) = &grouping {
            layout.push(OutCol::Key(keys.len()));
            key_fields.push(gs.id_field());
            keys.push(gs.id_column());
        }
        let (Some(trace), Some(end_col)) = (trace, end_col) else {
            return Err(WeirError::sql(
                "a window aggregate groups by both window_start and window_end",
                None,
            )
            .with_hint("add window_end to the GROUP BY"));
        };
        if !layout.iter().any(|c| matches!(c, OutCol::WindowStart)) {
            return Err(WeirError::sql(
                "a window aggregate groups by both window_start and window_end",
                None,
            )
            .with_hint("add window_start to the GROUP BY"));
        }
        let physical_input = Arc::new(input_schema.as_arrow().clone());
        let mut aggs = Aggregates {
            exprs: vec![],
            args: vec![],
            filters: vec![],
        };
        for e in &agg.aggr_expr {
            let (expr, filter) = self.aggregate_call(e, input_schema, &physical_input)?;
            layout.push(OutCol::Agg(aggs.exprs.len()));
            aggs.args.push(expr.expressions());
            aggs.exprs.push(expr);
            aggs.filters.push(filter);
        }
        let table = trace.table.clone();
        // Keys and aggregate arguments computed from window columns need real windows on the
        // rows, not slices.
        let uses_window = agg
            .aggr_expr
            .iter()
            .chain(group_exprs.iter().filter(|g| !matches!(g, Expr::Column(_))))
            .any(|e| {
                e.column_refs()
                    .iter()
                    .any(|c| w.column(&c.name).is_some_and(|wc| !wc.cascaded))
            });
        if cascaded && table.spec.kind == WindowKind::Session {
            return Err(WeirError::sql(
                "not supported in a standing query yet: an aggregate over the SESSION windows of another aggregate",
                None,
            ));
        }
        if uses_window && table.spec.kind == WindowKind::Session {
            return Err(WeirError::sql(
                "not supported yet: SESSION window columns inside aggregate arguments or key expressions",
                None,
            ));
        }
        let sliced = !trace.exact && !uses_window && !cascaded;
        if !cascaded
            && (sliced || table.spec.kind == WindowKind::Session)
            && let Ok(mut s) = self.sliced.lock()
        {
            s.push(table.call.id.clone());
        }
        let mut input = self.node(&agg.input)?;
        append_only(&input, "a window aggregate")?;
        if let Some(gs) = grouping {
            input = gs.expand(input)?;
        }
        let schema = Arc::new(agg.schema.as_arrow().clone());
        let key_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(key_fields));
        let op: Box<dyn Operator> = if table.spec.kind == WindowKind::Session {
            Box::new(SessionAggregateOperator::new(
                table.spec.size,
                end_col,
                keys,
                key_schema,
                aggs,
                layout,
                schema,
            )?)
        } else {
            Box::new(WindowAggregateOperator::new(
                table.spec, sliced, end_col, keys, key_schema, aggs, layout, schema,
            ))
        };
        Ok(PlanNode::Operator {
            op,
            input: Box::new(input),
        })
    }

    /// An aggregate call compiled: the function and its FILTER (ordering within the
    /// aggregate is not used by the streaming aggregates).
    fn aggregate_call(
        &self,
        e: &datafusion::logical_expr::Expr,
        input_schema: &DFSchema,
        physical_input: &datafusion::arrow::datatypes::SchemaRef,
    ) -> Result<AggregateCall> {
        #[allow(deprecated)]
        let (expr, filter, _order) =
            datafusion::physical_planner::create_aggregate_expr_and_maybe_filter(
                e,
                input_schema,
                physical_input,
                self.state.execution_props(),
            )?;
        Ok((expr, filter))
    }

    /// For an aggregate over `GROUPING SETS`, `ROLLUP` or `CUBE` (DataFusion gives one
    /// grouping-set expression, window columns crossed in): its distinct keys, each set as
    /// the keys it leaves out with its grouping id (DataFusion's `__grouping_id` encoding),
    /// and the expanded input's schema. None for a plain GROUP BY.
    fn grouping_sets(&self, agg: &datafusion::logical_expr::Aggregate) -> Result<Option<Grouping>> {
        use datafusion::logical_expr::{Expr, ExprSchemable, GroupingSet};
        let [Expr::GroupingSet(gs)] = agg.group_expr.as_slice() else {
            return Ok(None);
        };
        let exprs: Vec<Expr> = gs.distinct_expr().into_iter().cloned().collect();
        let sets: Vec<Vec<Expr>> = match gs {
            GroupingSet::Rollup(e) => (0..=e.len()).rev().map(|i| e[..i].to_vec()).collect(),
            GroupingSet::Cube(e) => {
                if e.len() > 12 {
                    return Err(WeirError::sql(
                        format!(
                            "CUBE of {} keys makes {} grouping sets; at most 12 keys",
                            e.len(),
                            1u64 << e.len().min(63)
                        ),
                        None,
                    ));
                }
                (0..1usize << e.len())
                    .map(|mask| {
                        e.iter()
                            .enumerate()
                            .filter(|(i, _)| mask & (1 << i) != 0)
                            .map(|(_, x)| x.clone())
                            .collect()
                    })
                    .collect()
            }
            GroupingSet::GroupingSets(s) => s.clone(),
        };
        let n = exprs.len();
        // DataFusion's grouping id: a bit per key (set when the set leaves it out), and
        // above those the set's ordinal among sets that leave out the same keys.
        let mut ordinals: std::collections::HashMap<Vec<bool>, u64> = Default::default();
        let mut specs = vec![];
        for set in &sets {
            let nulls: Vec<bool> = exprs.iter().map(|d| !set.contains(d)).collect();
            let ordinal = ordinals.entry(nulls.clone()).or_insert(0);
            specs.push((nulls, *ordinal));
            *ordinal += 1;
        }
        let max_ordinal = specs.iter().map(|(_, o)| *o).max().unwrap_or(0);
        let ordinal_bits = (u64::BITS - max_ordinal.leading_zeros()) as usize;
        if n + ordinal_bits > 64 {
            return Err(WeirError::sql(
                format!(
                    "GROUPING SETS over {n} distinct keys: at most {} (each key takes a bit of the grouping id)",
                    64 - ordinal_bits
                ),
                None,
            ));
        }
        let id_type = agg.schema.field(n).data_type().clone();
        let id_bits: usize = match id_type {
            datafusion::arrow::datatypes::DataType::UInt8 => 8,
            datafusion::arrow::datatypes::DataType::UInt16 => 16,
            datafusion::arrow::datatypes::DataType::UInt32 => 32,
            _ => 64,
        };
        if n + ordinal_bits > id_bits {
            return Err(WeirError::sql(
                "not supported in a standing query yet: grouping sets repeated so often that their ids outgrow the grouping id's type",
                None,
            )
            .with_hint("list each grouping set once"));
        }
        let specs: Vec<crate::operator::expand::GroupingSetSpec> = specs
            .into_iter()
            .map(|(nulls, ordinal)| {
                let semantic = nulls
                    .iter()
                    .fold(0u64, |acc, &null| (acc << 1) | u64::from(null));
                crate::operator::expand::GroupingSetSpec {
                    id: semantic | ordinal.checked_shl(n as u32).unwrap_or(0),
                    nulls,
                }
            })
            .collect();
        let input_schema = agg.input.schema();
        let mut fields: Vec<datafusion::arrow::datatypes::Field> = input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let inputs = fields.len();
        let mut keys = vec![];
        for (i, e) in exprs.iter().enumerate() {
            fields.push(datafusion::arrow::datatypes::Field::new(
                format!("__weir_key{i}"),
                e.get_type(input_schema)?,
                true,
            ));
            keys.push(compile(self.state, e, input_schema)?);
        }
        fields.push(datafusion::arrow::datatypes::Field::new(
            datafusion::logical_expr::Aggregate::INTERNAL_GROUPING_ID,
            id_type,
            false,
        ));
        Ok(Some(Grouping {
            exprs,
            sets: specs,
            keys,
            inputs,
            schema: Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        }))
    }

    /// OVER aggregates over a stream (Flink's "Over Aggregation"; see
    /// [`crate::operator::over`]): every call shares one PARTITION BY, an ORDER BY of one
    /// time attribute ascending, and a frame ending at the current row, as Flink requires.
    fn over(&self, w: &datafusion::logical_expr::Window) -> Result<PlanNode> {
        use crate::operator::over::{Frame, OverAggregateOperator};
        use datafusion::logical_expr::{
            Expr, WindowFrameBound, WindowFrameUnits, expr::WindowFunction,
        };
        let refuse =
            |what: &str| WeirError::sql(format!("OVER aggregates over a stream: {what}"), None);
        let input_schema = w.input.schema();
        let physical_input = Arc::new(input_schema.as_arrow().clone());
        let calls: Vec<&WindowFunction> = w
            .window_expr
            .iter()
            .filter_map(|e| match e {
                Expr::Alias(a) => match a.expr.as_ref() {
                    Expr::WindowFunction(f) => Some(f.as_ref()),
                    _ => None,
                },
                Expr::WindowFunction(f) => Some(f.as_ref()),
                _ => None,
            })
            .collect();
        let Some(first) = calls.first() else {
            return Err(WeirError::internal("an OVER aggregate without calls"));
        };
        let p = &first.params;
        if calls.iter().any(|c| {
            c.params.partition_by != p.partition_by
                || c.params.order_by != p.order_by
                || c.params.window_frame != p.window_frame
        }) {
            // DataFusion gives calls of one PARTITION BY and ORDER BY one node; Flink asks
            // for one window per query.
            return Err(refuse(
                "the aggregates of one PARTITION BY and ORDER BY must share one frame, as Flink requires",
            )
            .with_hint("compute the other frame in a query over this one's result"));
        }
        let time = match p.order_by.as_slice() {
            [s] if s.asc => match &s.expr {
                Expr::Column(c) if window::is_time_attribute(&w.input, &c.name) => {
                    input_schema.index_of_column(c)?
                }
                _ => {
                    return Err(refuse(&format!(
                        "ORDER BY {} is not a time attribute (an event-time column with a WATERMARK)",
                        s.expr
                    )));
                }
            },
            [_] => return Err(refuse("the ORDER BY time attribute must be ascending")),
            _ => {
                return Err(refuse("they need ORDER BY one time attribute, ascending")
                    .with_hint("OVER (PARTITION BY k ORDER BY rowtime RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW)"));
            }
        };
        let f = &p.window_frame;
        if f.end_bound != WindowFrameBound::CurrentRow {
            return Err(refuse(
                "the frame must end at CURRENT ROW (rows after it have not come yet)",
            ));
        }
        let frame = match (&f.units, &f.start_bound) {
            (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) if v.is_null() => {
                Frame::Unbounded { rows: true }
            }
            (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) if v.is_null() => {
                Frame::Unbounded { rows: false }
            }
            (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) => {
                let n = match v {
                    datafusion::common::ScalarValue::UInt64(Some(n)) => *n,
                    other => {
                        return Err(refuse(&format!("ROWS {other} PRECEDING is not a row count")));
                    }
                };
                Frame::Rows(n)
            }
            (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) => {
                match interval_ms(v) {
                    Some(ms) if ms >= 0 => Frame::Range(ms),
                    Some(_) => return Err(refuse("a RANGE frame's INTERVAL … PRECEDING must not be negative")),
                    None => return Err(refuse(
                        "a RANGE frame's offset is an INTERVAL of days, hours, minutes, seconds or milliseconds (months and years have no fixed length)",
                    )
                    .with_hint("RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW")),
                }
            }
            (WindowFrameUnits::Rows | WindowFrameUnits::Range, WindowFrameBound::CurrentRow) => {
                Frame::Rows(0)
            }
            _ => return Err(refuse("the frame must start at UNBOUNDED PRECEDING, n PRECEDING or an INTERVAL PRECEDING")),
        };
        let frame = match (frame, &f.units) {
            (Frame::Rows(0), WindowFrameUnits::Range) => Frame::Range(0),
            (fr, _) => fr,
        };
        let mut input = self.node(&w.input)?;
        append_only(&input, "an OVER aggregate")?;
        // Over `PROCTIME()` computed in the query, the processing time is the watermark.
        if window::is_query_proctime(&w.input, input_schema.field(time).name()) {
            input = PlanNode::Operator {
                op: Box::new(crate::operator::proctime::ProcTimeWatermark::new(time)),
                input: Box::new(input),
            };
        }
        let partition = p
            .partition_by
            .iter()
            .map(|e| compile(self.state, e, input_schema))
            .collect::<Result<Vec<_>>>()?;
        let mut aggs = vec![];
        for c in &calls {
            let udf = match &c.fun {
                datafusion::logical_expr::WindowFunctionDefinition::AggregateUDF(udf) => {
                    udf.clone()
                }
                datafusion::logical_expr::WindowFunctionDefinition::WindowUDF(w) => {
                    match w.name() {
                        // Flink's LagAggFunction: the rows so far, peers added together.
                        "lag" if frame.bounded() => {
                            return Err(refuse(
                                "LAG takes no frame (it looks back over the rows so far)",
                            )
                            .with_hint("LAG(v) OVER (PARTITION BY k ORDER BY rowtime)"));
                        }
                        "lag"
                            if c.params.null_treatment
                                == Some(
                                    datafusion::logical_expr::expr::NullTreatment::IgnoreNulls,
                                ) =>
                        {
                            return Err(refuse(
                                "LAG … IGNORE NULLS (Flink's LAG counts NULL values as rows)",
                            ));
                        }
                        "lag" => Arc::new(datafusion::logical_expr::AggregateUDF::new_from_impl(
                            crate::operator::lag::Lag::default(),
                        )),
                        "lead" => {
                            return Err(refuse(
                                "LEAD needs rows that have not come yet; Flink refuses it in stream mode too",
                            )
                            .with_hint("LAG looks back: LAG(v) OVER (ORDER BY rowtime)"));
                        }
                        // FIRST_VALUE and LAST_VALUE as the aggregates of the same name
                        // (the rows come in time order).
                        name => match self.state.aggregate_functions().get(name) {
                            Some(f) => f.clone(),
                            None => {
                                return Err(refuse(&format!(
                                    "{}() is not supported there yet",
                                    name.to_uppercase()
                                )));
                            }
                        },
                    }
                }
            };
            let call = Expr::AggregateFunction(
                datafusion::logical_expr::expr::AggregateFunction::new_udf(
                    udf.clone(),
                    c.params.args.clone(),
                    c.params.distinct,
                    c.params.filter.clone(),
                    vec![],
                    c.params.null_treatment,
                ),
            );
            let (expr, filter) = self.aggregate_call(&call, input_schema, &physical_input)?;
            aggs.push(crate::operator::group::AggCall {
                args: expr.expressions(),
                expr,
                filter,
                sliding: frame != (Frame::Unbounded { rows: true })
                    && frame != (Frame::Unbounded { rows: false }),
                distinct_retract: None,
                arrival: None,
            });
        }
        let op = OverAggregateOperator::new(
            partition,
            physical_input,
            time,
            frame,
            aggs,
            Arc::new(w.schema.as_arrow().clone()),
        )?;
        Ok(PlanNode::Operator {
            op: Box::new(op),
            input: Box::new(input),
        })
    }

    /// A GROUP BY without a window: an aggregate over the whole stream, whose results
    /// update (a changelog). Over an updating input, MIN and MAX keep every value with
    /// its count, SUM uses its sliding accumulator, and `AGG(DISTINCT …)` of one of
    /// [`NULL_SKIPPING_AGGREGATES`] counts its distinct values, and any other aggregate
    /// that cannot take rows back holds its rows in arrival order
    /// ([`crate::operator::arrival`]), with `DISTINCT` each distinct row once; their
    /// `ORDER BY` forms are refused.
    fn group_aggregate(
        &self,
        agg: &datafusion::logical_expr::Aggregate,
        grouping: Option<Grouping>,
    ) -> Result<PlanNode> {
        let input_schema = agg.input.schema();
        let physical_input = Arc::new(input_schema.as_arrow().clone());
        let mut input = self.node(&agg.input)?;
        let retracting = input.updates();
        let (keys, key_input) = match &grouping {
            Some(gs) => {
                append_only(&input, "GROUPING SETS, ROLLUP or CUBE")?;
                let mut keys: Vec<_> = (0..gs.exprs.len()).map(|i| gs.key_column(i)).collect();
                keys.push(gs.id_column());
                (keys, gs.schema.clone())
            }
            None => (
                agg.group_expr
                    .iter()
                    .map(|g| compile(self.state, g, input_schema))
                    .collect::<Result<Vec<_>>>()?,
                physical_input.clone(),
            ),
        };
        if let Some(gs) = grouping {
            input = gs.expand(input)?;
        }
        let mut calls = vec![];
        for e in &agg.aggr_expr {
            let (mut expr, filter) = self.aggregate_call(e, input_schema, &physical_input)?;
            // MIN and MAX over a changelog keep every value with its count (Flink's
            // Min/MaxWithRetractAggFunction): DataFusion's keep one value, and their
            // sliding ones drop only their oldest row.
            let fun = expr.fun().name().to_string();
            if retracting && (fun == "min" || fun == "max") {
                use datafusion::physical_expr::aggregate::AggregateExprBuilder;
                let udaf = datafusion::logical_expr::AggregateUDF::new_from_impl(
                    crate::operator::minmax::MinMaxWithRetract::new(fun == "max"),
                );
                expr = Arc::new(
                    AggregateExprBuilder::new(Arc::new(udaf), expr.expressions())
                        .schema(physical_input.clone())
                        .alias(expr.name())
                        .build()?,
                );
            }
            // Whether the accumulator takes a row back by its value. ARRAY_AGG's plain one
            // takes back its oldest rows, whatever they hold (for window frames), and
            // ARRAY_AGG(DISTINCT)'s counts its state does not carry through a checkpoint.
            let takes_back =
                expr.create_accumulator()?.supports_retract_batch() && fun != "array_agg";
            // SUM's plain accumulator cannot take rows back; its sliding one can (a sum
            // less the value).
            // (Not for SUM(DISTINCT): its sliding accumulator keeps counts its state does
            // not carry through a checkpoint; the distinct values' counts below do.)
            let sliding = retracting
                && !takes_back
                && expr.fun().name() == "sum"
                && !expr.is_distinct()
                && expr
                    .create_sliding_accumulator()
                    .ok()
                    .is_some_and(|a| a.supports_retract_batch());
            // AGG(DISTINCT …) of an aggregate that skips NULLs: the distinct values are
            // counted, so a value leaves the set when its last row is taken back (Flink's
            // distinct aggregates over a changelog), and the plain aggregate runs over them.
            let distinct_retract = if retracting
                && expr.is_distinct()
                && !takes_back
                && NULL_SKIPPING_AGGREGATES.contains(&fun.as_str())
            {
                use datafusion::physical_expr::aggregate::AggregateExprBuilder;
                let inner =
                    AggregateExprBuilder::new(expr.fun().clone().into(), expr.expressions())
                        .schema(physical_input.clone())
                        .alias(expr.name())
                        .build()?;
                let types = expr
                    .expressions()
                    .iter()
                    .map(|e| Ok(e.data_type(&physical_input)?))
                    .collect::<Result<Vec<_>>>()?;
                Some((types, Arc::new(inner)))
            } else {
                None
            };
            // Any other aggregate that cannot take rows back (FIRST_VALUE, LISTAGG, the
            // JSON aggregates, …) holds its rows in arrival order, as Flink's retracting
            // versions do, and takes the earliest equal one back.
            let arrival = if retracting
                && !sliding
                && distinct_retract.is_none()
                && expr.order_bys().is_empty()
                && !takes_back
            {
                use datafusion::physical_expr::aggregate::AggregateExprBuilder;
                let types = expr
                    .expressions()
                    .iter()
                    .map(|e| Ok(e.data_type(&physical_input)?))
                    .collect::<Result<Vec<_>>>()?;
                let inner = if expr.is_distinct() {
                    Arc::new(
                        AggregateExprBuilder::new(expr.fun().clone().into(), expr.expressions())
                            .schema(physical_input.clone())
                            .alias(expr.name())
                            .with_ignore_nulls(expr.ignore_nulls())
                            .build()?,
                    )
                } else {
                    expr.clone()
                };
                let distinct = expr.is_distinct();
                // Arrow's row format must hold every argument (it has no MAP).
                crate::operator::arrival::with_retract(types.clone(), inner.clone(), distinct)
                    .ok()
                    .map(|_| (types, inner, distinct))
            } else {
                None
            };
            if retracting
                && !sliding
                && distinct_retract.is_none()
                && arrival.is_none()
                && !takes_back
            {
                let name = crate::sql::rewrite::user_function_name(expr.fun().name());
                let why = if expr.order_bys().is_empty() {
                    format!("{name}() over results that update (it cannot take rows back)")
                } else {
                    format!("{name}(… ORDER BY …) over results that update")
                };
                return Err(WeirError::sql(
                    format!("not supported in a standing query yet: {why}"),
                    None,
                ));
            }
            calls.push(crate::operator::group::AggCall {
                args: expr.expressions(),
                expr,
                filter,
                sliding,
                distinct_retract,
                arrival,
            });
        }
        let op = crate::operator::group::GroupAggregateOperator::new(
            keys,
            &key_input,
            calls,
            Arc::new(agg.schema.as_arrow().clone()),
        )?
        .vectorised(!retracting, &physical_input)
        .with_ttl(self.state_ttl()?);
        Ok(PlanNode::Operator {
            op: Box::new(op),
            input: Box::new(input),
        })
    }

    /// `ROW_NUMBER()`, `RANK()` or `DENSE_RANK()` over the rows of each fired window.
    /// Ranking calls over a stream (`limits`: the bounds filters above put on them).
    fn rank(
        &self,
        w: &datafusion::logical_expr::Window,
        limits: Option<&rank_limit::RankLimit>,
    ) -> Result<PlanNode> {
        use datafusion::logical_expr::Expr;
        let unsupported = |what: String| {
            WeirError::sql(
                format!("not supported in a standing query yet: {what}"),
                None,
            )
            .with_hint(
                "rank the rows of a window aggregate: ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY ...)",
            )
        };
        let input_schema = w.input.schema();
        let mut calls = vec![];
        // The input's `window_end` column when the windows come straight from a window table
        // function (no aggregate): their rows are held until each window fires.
        let mut buffer_end: Option<usize> = None;
        for (index, e) in w.window_expr.iter().enumerate() {
            let e = match e {
                Expr::Alias(a) => a.expr.as_ref(),
                e => e,
            };
            let Expr::WindowFunction(f) = e else {
                return Err(unsupported(format!("the OVER expression {e}")));
            };
            let name = f.fun.name().to_ascii_lowercase();
            let Some(kind) = RankKind::from_name(&name) else {
                return Err(WeirError::sql(
                    format!("not supported in a standing query yet: {name}() OVER (...) over a stream"),
                    None,
                )
                .with_hint(
                    "OVER over a stream takes aggregate functions (SUM, COUNT, MIN, MAX, AVG, …) ordered by a time attribute, and ROW_NUMBER, RANK or DENSE_RANK for Top-N",
                ));
            };
            let mut window_cols = vec![];
            for p in &f.params.partition_by {
                let Expr::Column(c) = p else { continue };
                if let Some(col) = window::aggregated_window_column(&w.input, &c.name) {
                    // A window aggregate sends each window's rows at once — from each of
                    // its subtasks: in a parallel job they are gathered until it fires.
                    // Gathered at every parallelism, so that the plan (and a checkpoint of
                    // it) does not depend on the number of subtasks.
                    if col == "window_end" {
                        buffer_end = window::position(input_schema, &c.name);
                    }
                    window_cols.push(col);
                } else if let Some((col, _)) = window::trace_window_column(&w.input, &c.name) {
                    if col == "window_end" {
                        buffer_end = window::position(input_schema, &c.name);
                    }
                    window_cols.push(col);
                }
            }
            if !(window_cols.iter().any(|c| c == "window_start")
                && window_cols.iter().any(|c| c == "window_end"))
            {
                let limit = limits.and_then(|l| l.limit(index));
                return match limit {
                    Some(n) if kind == RankKind::RowNumber && w.window_expr.len() == 1 => {
                        self.top_n(w, f, n)
                    }
                    _ => Err(WeirError::sql(
                        format!(
                            "not supported in a standing query yet: {name}() OVER a whole stream without a rank limit"
                        ),
                        None,
                    )
                    .with_hint(
                        "keep the first N of each partition: SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY t DESC) AS rn FROM s) WHERE rn <= N; or rank within windows: PARTITION BY window_start, window_end",
                    )),
                };
            }
            let (partition, order) = self.rank_keys(f, input_schema)?;
            // Flink's window deduplication: ROW_NUMBER() ordered by the time attribute
            // descending, `rn = 1`, keeps the last row among equal times.
            let limit_one = limits.and_then(|l| l.limit(index)) == Some(1);
            let newest_first = kind == RankKind::RowNumber
                && limit_one
                && matches!(f.params.order_by.as_slice(), [s] if !s.asc
                    && matches!(&s.expr, Expr::Column(c) if window::is_time_attribute(&w.input, &c.name)));
            calls.push(RankCall {
                kind,
                partition,
                order,
                newest_first,
            });
        }
        let mut input = self.node(&w.input)?;
        if let Some(end) = buffer_end {
            append_only(&input, "a window Top-N")?;
            let mut buffer = crate::operator::rank::WindowBufferOperator::new(
                end,
                Arc::new(input_schema.as_arrow().clone()),
            );
            // One ranking bounded by a filter above: only the rows that can still rank
            // are held.
            let limit = limits.and_then(|l| l.limit(0)).map(|n| n as u64);
            if let ([call], Some(n)) = (calls.as_slice(), limit) {
                buffer = buffer.with_limit(call.clone(), n);
            }
            input = PlanNode::Operator {
                op: Box::new(buffer),
                input: Box::new(input),
            };
        }
        Ok(PlanNode::Operator {
            op: Box::new(RankOperator::new(
                calls,
                Arc::new(w.schema.as_arrow().clone()),
            )),
            input: Box::new(input),
        })
    }

    /// A ranking call's partition keys and order keys, compiled.
    fn rank_keys(
        &self,
        f: &datafusion::logical_expr::expr::WindowFunction,
        input_schema: &DFSchema,
    ) -> Result<(Vec<Arc<dyn PhysicalExpr>>, OrderKeys)> {
        let partition = f
            .params
            .partition_by
            .iter()
            .map(|p| compile(self.state, p, input_schema))
            .collect::<Result<Vec<_>>>()?;
        let order = f
            .params
            .order_by
            .iter()
            .map(|s| {
                Ok((
                    compile(self.state, &s.expr, input_schema)?,
                    datafusion::arrow::compute::SortOptions {
                        descending: !s.asc,
                        nulls_first: s.nulls_first,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((partition, order))
    }

    /// `ORDER BY` over a stream: sorted first on an ascending event-time attribute (Flink's
    /// rule for streaming sorts), rows go out in order as the watermark passes them (see
    /// [`crate::operator::sort`]); a `LIMIT` keeps the first rows so ordered.
    fn sort(&self, s: &datafusion::logical_expr::Sort) -> Result<PlanNode> {
        let schema = s.input.schema();
        let time = self.sort_time_column(s);
        let Some(time) = time else {
            if let Some(n) = s.fetch {
                return self.sort_limit(s, n, 0);
            }
            return Err(WeirError::sql(
                "not supported in a standing query: ORDER BY over an unbounded stream other than first on an ascending event-time attribute",
                None,
            )
            .with_hint(
                "sort first on the stream's time attribute (ORDER BY rowtime, …), as Flink requires; or read the archived output with a batch query",
            ));
        };
        let order = s
            .expr
            .iter()
            .map(|e| {
                Ok((
                    compile(self.state, &e.expr, schema)?,
                    datafusion::arrow::compute::SortOptions {
                        descending: !e.asc,
                        nulls_first: e.nulls_first,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let input = self.node(&s.input)?;
        append_only(&input, "ORDER BY")?;
        let mut node = PlanNode::Operator {
            op: Box::new(crate::operator::sort::TemporalSortOperator::new(
                Arc::new(schema.as_arrow().clone()),
                time,
                order,
            )),
            input: Box::new(input),
        };
        if let Some(fetch) = s.fetch {
            node = PlanNode::Operator {
                op: Box::new(LimitOperator::new(0, Some(fetch))),
                input: Box::new(node),
            };
        }
        Ok(node)
    }

    /// The index of the event-time attribute a sort orders by first, ascending (the streaming
    /// sort Flink runs as rows in order); None for any other order.
    fn sort_time_column(&self, s: &datafusion::logical_expr::Sort) -> Option<usize> {
        match s.expr.first() {
            Some(first) if first.asc => match &first.expr {
                datafusion::logical_expr::Expr::Column(c)
                    if window::is_time_attribute(&s.input, &c.name)
                        && !window::is_proctime_attribute(&s.input, c) =>
                {
                    s.input.schema().index_of_column(c).ok()
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// `ORDER BY keys LIMIT n` over a stream, ordered by anything but its event time: as
    /// Flink plans it (its `StreamPhysicalSortLimit`, a rank without the rank number), a
    /// Top-N over the whole stream — the first `n` rows so far by the order, as a changelog:
    /// a row entering them `+I`, one pushed out `-D` (see [`TopNOperator::without_rank`]).
    /// One subtask. With `OFFSET m` (`skip`), ranks m + 1 to m + n: the Top-N keeps m + n
    /// rows and sends its rank's updates, and only those of ranks past m go on (a row leaving
    /// them `-U`, one entering `+U`, as Flink's rank with a start sends them).
    fn sort_limit(
        &self,
        s: &datafusion::logical_expr::Sort,
        n: usize,
        skip: usize,
    ) -> Result<PlanNode> {
        let schema = s.input.schema();
        let order = s
            .expr
            .iter()
            .map(|e| {
                Ok((
                    compile(self.state, &e.expr, schema)?,
                    datafusion::arrow::compute::SortOptions {
                        descending: !e.asc,
                        nulls_first: e.nulls_first,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let input = self.node(&s.input)?;
        self.top_rows(input, schema, order, n, skip)
    }

    /// The first `n` rows after `skip` of `input` (whose columns are `schema`) by `order`,
    /// as a Top-N over the whole stream (see [`Self::sort_limit`]); over a changelog, as
    /// Flink's retracting rank.
    fn top_rows(
        &self,
        input: PlanNode,
        schema: &DFSchema,
        order: Vec<(
            Arc<dyn PhysicalExpr>,
            datafusion::arrow::compute::SortOptions,
        )>,
        n: usize,
        skip: usize,
    ) -> Result<PlanNode> {
        let retracting = input.updates();
        let columns = Arc::new(schema.as_arrow().clone());
        let mut fields: Vec<Arc<datafusion::arrow::datatypes::Field>> =
            columns.fields().iter().cloned().collect();
        fields.push(Arc::new(datafusion::arrow::datatypes::Field::new(
            "__weir_rank",
            datafusion::arrow::datatypes::DataType::UInt64,
            false,
        )));
        let ranked = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        let top = crate::operator::topn::TopNOperator::new(
            vec![],
            order,
            n.saturating_add(skip),
            &columns,
            ranked,
        )?
        .without_rank(skip == 0)
        .retracting(retracting)
        .with_ttl(self.state_ttl()?);
        let mut top = PlanNode::Operator {
            op: Box::new(top),
            input: Box::new(input),
        };
        if skip > 0 {
            use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
            let rank = columns.fields().len();
            let past_offset = Arc::new(BinaryExpr::new(
                Arc::new(Column::new("__weir_rank", rank)),
                datafusion::logical_expr::Operator::Gt,
                Arc::new(Literal::new(datafusion::common::ScalarValue::UInt64(Some(
                    skip as u64,
                )))),
            ));
            top = PlanNode::Operator {
                op: Box::new(FilterOperator::new(past_offset)),
                input: Box::new(top),
            };
        }
        let keep: Vec<Arc<dyn PhysicalExpr>> = columns
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Arc::new(datafusion::physical_expr::expressions::Column::new(
                    f.name(),
                    i,
                )) as Arc<dyn PhysicalExpr>
            })
            .collect();
        Ok(PlanNode::Operator {
            op: Box::new(crate::operator::project::ProjectOperator::new(
                keep, columns,
            )),
            input: Box::new(top),
        })
    }

    /// Top-N over a whole stream (a changelog): `ROW_NUMBER()` with a limit from the filter
    /// above.
    fn top_n(
        &self,
        w: &datafusion::logical_expr::Window,
        f: &datafusion::logical_expr::expr::WindowFunction,
        limit: usize,
    ) -> Result<PlanNode> {
        let input_schema = w.input.schema();
        let (partition, order) = self.rank_keys(f, input_schema)?;
        // Flink's deduplication keeping the last row: `ROW_NUMBER()` ordered by a time
        // attribute descending, `rn = 1`; of rows with equal times the later one wins
        // (Flink's `DeduplicateFunctionHelper` replaces the kept row when its time is <=
        // the new one's; with processing time, always).
        let keep_last = limit == 1
            && matches!(f.params.order_by.as_slice(), [s] if !s.asc
                && matches!(&s.expr, datafusion::logical_expr::Expr::Column(c) if window::is_time_attribute(&w.input, &c.name)));
        // Flink's deduplication keeping the first row by processing time: the first row to
        // arrive stays, and the result is append-only (Flink's
        // `ProcTimeDeduplicateKeepFirstRowFunction`).
        let keep_first_arrival = limit == 1
            && matches!(f.params.order_by.as_slice(), [s] if s.asc
                && matches!(&s.expr, datafusion::logical_expr::Expr::Column(c) if window::is_proctime_attribute(&w.input, c)));
        // Flink's deduplication (N = 1 ordered by a time attribute) sends updates of the
        // row kept; its Top-N without the rank column only the rows that enter and leave.
        let dedup = limit == 1
            && matches!(f.params.order_by.as_slice(), [s]
                if matches!(&s.expr, datafusion::logical_expr::Expr::Column(c) if window::is_time_attribute(&w.input, &c.name)));
        let without_rank = !dedup
            && self
                .rank_unused
                .swap(false, std::sync::atomic::Ordering::Relaxed);
        let input = self.node(&w.input)?;
        // Over a changelog, a Top-N keeps every row (Flink's `RetractableTopNFunction`);
        // deduplication by a time attribute needs appended rows (a changelog has none).
        let retracting = input.updates();
        if dedup || keep_first_arrival {
            append_only(&input, "deduplication")?;
        }
        let op = crate::operator::topn::TopNOperator::new(
            partition,
            order,
            limit,
            &Arc::new(input_schema.as_arrow().clone()),
            Arc::new(w.schema.as_arrow().clone()),
        )?
        .newest_first(keep_last)
        .keeps_first_arrival(keep_first_arrival)
        .without_rank(without_rank)
        .retracting(retracting)
        .with_ttl(self.state_ttl()?);
        Ok(PlanNode::Operator {
            op: Box::new(op),
            input: Box::new(input),
        })
    }

    fn source(&self, table: Arc<TableDef>) -> Result<PlanNode> {
        let mut options =
            crate::connector::effective_options(&table, self.settings, self.setting_origins)?;
        if options.get("scan.watermark.idle-timeout").is_none()
            && let Some((v, _)) = self.idle_setting(&table)
        {
            // A source with partitions (Kafka) applies the session's idle timeout to each.
            options.insert("scan.watermark.idle-timeout", v, None);
        }
        let source = crate::connector::build_source(&table, &options, self.batch_size)?;
        let physical_df = DFSchema::try_from(table.physical.as_ref().clone())?;
        let computed = if table.computed.is_empty() || !table.has_columns {
            None
        } else {
            let mut exprs = vec![];
            let mut pi = 0;
            for (i, f) in table.schema.fields().iter().enumerate() {
                match table.computed.iter().find(|(ci, _, _)| *ci == i) {
                    Some((_, e, pos)) => {
                        let l = logical_expr(self.state, e, &physical_df)
                            .map_err(|err| err.at(Some(*pos)))?;
                        exprs.push(narrow::narrow(self.state, &l, &physical_df)?);
                    }
                    None => {
                        let _ = f;
                        exprs.push(
                            Arc::new(datafusion::physical_expr::expressions::Column::new(
                                table.physical.field(pi).name(),
                                pi,
                            )) as Arc<dyn PhysicalExpr>,
                        );
                        pi += 1;
                    }
                }
            }
            // An upsert table's deletes hold only the key until normalization.
            let schema = if table.connector == "upsert-kafka" {
                crate::operator::normalize::nullable_except(&table.schema, &table.primary_key)
            } else {
                table.schema.clone()
            };
            Some((exprs, schema))
        };
        let watermark = match &table.watermark {
            Some(w) => {
                let full_df = DFSchema::try_from(table.schema.as_ref().clone())?;
                let l = logical_expr(self.state, &w.expr, &full_df)
                    .map_err(|e| e.at(Some(w.expr_pos)))?;
                let time_col = table.schema.index_of(&w.column).map_err(|_| {
                    WeirError::sql(
                        format!("watermark column '{}' is not a column", w.column),
                        Some(w.column_pos),
                    )
                })?;
                Some((
                    watermark_expr(self.state, &l, &full_df, &w.column)?,
                    time_col,
                ))
            }
            // Without an event-time watermark, a `PROCTIME()` column drives the windows:
            // its values (the time each batch is read) less 1 ms are the watermark — the
            // clock only moves on, so no row at or below it comes (a batch read in the
            // same millisecond as the last is not late for a window it fired).
            None => match table.proctime_column() {
                Some(c) => Some((WatermarkExpr::Delay(1), table.schema.index_of(c)?)),
                None => None,
            },
        };
        let dead_letter = self.dead_letter_sink(&table, &options)?;
        let reuse = self.reuses_sources().then(|| table.name.clone());
        Ok(PlanNode::Source {
            table,
            source,
            stage: SourceStage::new(computed, watermark),
            dead_letter,
            reuse,
        })
    }

    /// The sink for the records `table` cannot read, when it names one with
    /// `'dead-letter.sink'`: the named table's sink, its rows projected onto its columns
    /// (see [`crate::sink::dead_letter`]). Errors: no such table, a column a dead letter
    /// does not have, the table itself.
    fn dead_letter_sink(
        &self,
        table: &TableDef,
        options: &crate::sql::options::Options,
    ) -> Result<Option<crate::sink::dead_letter::DeadLetterTable>> {
        let Some(name) = options.get("dead-letter.sink") else {
            return Ok(None);
        };
        // The option sits in another statement (the source's CREATE TABLE): errors name
        // the table rather than point into this one.
        let source = &table.name;
        if name == source {
            return Err(WeirError::user(format!(
                "table '{source}': 'dead-letter.sink' names the table itself"
            )));
        }
        let Some(target) = self.tables.get(name) else {
            return Err(WeirError::user(format!(
                "table '{source}': 'dead-letter.sink' names '{name}', which is not a table"
            ))
            .with_hint(format!(
                "declare it with CREATE TABLE {} (raw STRING, error STRING, source STRING) WITH ('connector' = 'filesystem' | 'kafka' | 'print', ...)",
                if name.is_empty() { "bad_records" } else { name }
            )));
        };
        let schema = crate::sink::dead_letter::table_schema(
            name,
            target.has_columns.then_some(&target.physical),
            source,
        )?;
        match self.dead_letters.lock() {
            Ok(mut seen) => {
                if seen.iter().any(|t| t == source) {
                    return Ok(None);
                }
                seen.push(source.clone());
            }
            Err(_) => return Err(WeirError::internal("dead-letter tables poisoned")),
        }
        let target_options =
            crate::connector::effective_options(target, self.settings, self.setting_origins)?;
        // The name its files carry is given when the job opens it (see
        // `WithDeadLetters`).
        let sink = crate::connector::build_sink(target, &target_options, &self.part)?;
        Ok(Some(crate::sink::dead_letter::DeadLetterTable {
            sink,
            schema,
        }))
    }
}

/// A SESSION window table function whose rows are not aggregated (Flink 1.19's session
/// window TVF on its own): each row goes out with its session's `window_start`,
/// `window_end` and `window_time` once the session closes — when the watermark reaches
/// its last millisecond — so the output is append-only and its `window_time` a time
/// attribute. Sessions are per `PARTITION BY` key and merge as in a session aggregate.
///
/// Planned as the session aggregate of `ARRAY_AGG` of every column (each list holds the
/// session's rows in one order, so the lists line up), unnested and put back in the
/// window table's column order: sessions, their merging, late rows, checkpoints and
/// rescaling are the session aggregate's. Errors: a `PARTITION BY` column the input lacks.
fn session_rows(w: &window::WindowInfo, input: PlanNode) -> Result<PlanNode> {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::Column;
    let in_schema = Arc::new(w.input.schema().as_arrow().clone());
    let n = in_schema.fields().len();
    let column =
        |i: usize| -> Arc<dyn PhysicalExpr> { Arc::new(Column::new(in_schema.field(i).name(), i)) };
    let mut keys = vec![];
    let mut key_fields = vec![];
    for (name, pos) in &w.call.partition_by {
        let i = in_schema.index_of(name).map_err(|_| {
            WeirError::sql(
                format!("PARTITION BY {name}: no such column in the SESSION window's input"),
                Some(*pos),
            )
        })?;
        keys.push(column(i));
        key_fields.push(in_schema.field(i).as_ref().clone());
    }
    let array_agg = datafusion::functions_aggregate::array_agg::array_agg_udaf();
    let mut exprs = vec![];
    let mut args = vec![];
    for i in 0..n {
        exprs.push(Arc::new(
            AggregateExprBuilder::new(array_agg.clone(), vec![column(i)])
                .schema(in_schema.clone())
                .alias(format!("rows{i}"))
                .build()?,
        ));
        args.push(vec![column(i)]);
    }
    let times: Vec<Field> = w.schema.fields()[n..]
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut agg_fields = times.clone();
    let mut layout = vec![OutCol::WindowStart, OutCol::WindowEnd, OutCol::WindowTime];
    for (i, e) in exprs.iter().enumerate() {
        agg_fields.push(e.field().as_ref().clone().with_name(format!("rows{i}")));
        layout.push(OutCol::Agg(i));
    }
    let agg_schema = Arc::new(Schema::new(agg_fields));
    let aggs = Aggregates {
        filters: vec![None; n],
        exprs,
        args,
    };
    let sessions = SessionAggregateOperator::new(
        w.spec.size,
        w.time_index,
        keys,
        Arc::new(Schema::new(key_fields)),
        aggs,
        layout,
        agg_schema.clone(),
    )?
    .collecting_rows();
    // One row per element of the lists, in place: the three times, then the columns.
    let mut unnested = times.clone();
    for f in in_schema.fields() {
        unnested.push(Field::new(f.name(), f.data_type().clone(), true));
    }
    let unnest = crate::operator::unnest::UnnestOperator::new(
        agg_schema,
        (0..n)
            .map(|i| datafusion::physical_plan::unnest::ListUnnest {
                index_in_input_schema: 3 + i,
                depth: 1,
            })
            .collect(),
        vec![],
        Arc::new(Schema::new(unnested.clone())),
        datafusion::common::UnnestOptions::new().with_preserve_nulls(true),
    );
    let reorder: Vec<Arc<dyn PhysicalExpr>> = (0..n)
        .map(|i| 3 + i)
        .chain(0..3)
        .map(|i| Arc::new(Column::new(unnested[i].name(), i)) as Arc<dyn PhysicalExpr>)
        .collect();
    let node = node_of(Box::new(sessions), input);
    let node = node_of(Box::new(unnest), node);
    Ok(node_of(
        Box::new(ProjectOperator::new(reorder, w.schema.clone())),
        node,
    ))
}

/// `op` over `input`.
fn node_of(op: Box<dyn Operator>, input: PlanNode) -> PlanNode {
    PlanNode::Operator {
        op,
        input: Box::new(input),
    }
}

/// For a SESSION window's rows: the input columns, and the event time in each of the three
/// window columns (the session aggregate reads `window_end` as the row's time).
fn session_columns(w: &window::WindowInfo) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
    use datafusion::physical_expr::expressions::Column;
    let in_schema = w.input.schema().as_arrow().clone();
    let mut exprs: Vec<Arc<dyn PhysicalExpr>> = in_schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>)
        .collect();
    let time = Arc::new(Column::new(
        in_schema.field(w.time_index).name(),
        w.time_index,
    ));
    let target = w.schema.field(in_schema.fields().len()).data_type().clone();
    for _ in 0..3 {
        exprs.push(Arc::new(
            datafusion::physical_expr::expressions::CastExpr::new(
                time.clone(),
                target.clone(),
                None,
            ),
        ));
    }
    Ok(exprs)
}

/// `col - INTERVAL '5' SECOND` (and `col`) become a fixed delay on the time column's
/// milliseconds; anything else is evaluated as an expression.
fn watermark_expr(
    state: &SessionState,
    l: &datafusion::logical_expr::Expr,
    schema: &DFSchema,
    column: &str,
) -> Result<WatermarkExpr> {
    use datafusion::logical_expr::{BinaryExpr, Expr, Operator as Op};
    let is_time_col = |e: &Expr| matches!(e, Expr::Column(c) if c.name == column);
    let time_is_ms = schema
        .field_with_unqualified_name(column)
        .map(|f| {
            matches!(
                f.data_type(),
                datafusion::arrow::datatypes::DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Millisecond,
                    _
                )
            )
        })
        .unwrap_or(false);
    if time_is_ms {
        if is_time_col(l) {
            return Ok(WatermarkExpr::Delay(0));
        }
        if let Expr::BinaryExpr(BinaryExpr { left, op, right }) = l
            && is_time_col(left)
            && matches!(op, Op::Minus | Op::Plus)
            && let Expr::Literal(v, _) = right.as_ref()
            && let Some(ms) = interval_ms(v)
        {
            return Ok(WatermarkExpr::Delay(if *op == Op::Minus {
                ms
            } else {
                -ms
            }));
        }
    }
    Ok(WatermarkExpr::Expr(compile(state, l, schema)?))
}

/// An INTERVAL literal of days, hours, minutes, seconds and milliseconds, in milliseconds
/// (None for months, which have no fixed length, and for sub-millisecond parts).
fn interval_ms(v: &datafusion::common::ScalarValue) -> Option<i64> {
    use datafusion::common::ScalarValue;
    match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            Some(i.days as i64 * 86_400_000 + i.nanoseconds / 1_000_000)
                .filter(|_| i.nanoseconds % 1_000_000 == 0)
        }
        ScalarValue::IntervalDayTime(Some(i)) => {
            Some(i.days as i64 * 86_400_000 + i.milliseconds as i64)
        }
        _ => None,
    }
}

/// The window node and ranking call that column `name` at the top of `plan` comes from
/// (through a [`rank_limit::RankLimit`] too).
pub(crate) fn ranking_call<'a>(
    plan: &'a LogicalPlan,
    name: &str,
) -> Option<(&'a datafusion::logical_expr::Window, usize)> {
    match plan {
        LogicalPlan::Window(w) => {
            let i = window::position(&w.schema, name)?;
            let inputs = w.input.schema().fields().len();
            // `then`, not `then_some`: an input column (i < inputs) must not subtract.
            (i >= inputs).then(|| (w, i - inputs))
        }
        LogicalPlan::Projection(p) => {
            let i = window::position(&p.schema, name)?;
            let c = window::column_of(p.expr.get(i)?)?;
            ranking_call(&p.input, &c.name)
        }
        LogicalPlan::SubqueryAlias(a) => ranking_call(&a.input, name),
        LogicalPlan::Filter(f) => ranking_call(&f.input, name),
        LogicalPlan::Extension(_) => ranking_call(&rank_limit::RankLimit::of(plan)?.input, name),
        _ => None,
    }
}

/// Refuses a stateful operator over a changelog input (which it would read as inserts).
fn append_only(input: &PlanNode, what: &str) -> Result<()> {
    if input.updates() {
        return Err(WeirError::sql(
            format!(
                "not supported in a standing query yet: {what} over results that update (a changelog)"
            ),
            None,
        ));
    }
    Ok(())
}

/// True when every call of a window node is an OVER aggregate over a stream: an aggregate
/// function (`SUM(x) OVER (…)`), `FIRST_VALUE`, `LAST_VALUE` or `LAG` (and `LEAD`, which
/// the planner refuses with Flink's reason) — not a ranking function (Top-N).
pub(crate) fn is_over_aggregate(w: &datafusion::logical_expr::Window) -> bool {
    use datafusion::logical_expr::{Expr, WindowFunctionDefinition};
    !w.window_expr.is_empty()
        && w.window_expr.iter().all(|e| {
            let e = match e {
                Expr::Alias(a) => a.expr.as_ref(),
                e => e,
            };
            matches!(e, Expr::WindowFunction(f) if match &f.fun {
                WindowFunctionDefinition::AggregateUDF(_) => true,
                WindowFunctionDefinition::WindowUDF(w) => {
                    matches!(w.name(), "first_value" | "last_value" | "lag" | "lead")
                }
            })
        })
}

/// An aggregate's grouping sets, planned (see `Planner::grouping_sets`).
struct Grouping {
    /// The distinct group keys, in DataFusion's order.
    exprs: Vec<datafusion::logical_expr::Expr>,
    sets: Vec<crate::operator::expand::GroupingSetSpec>,
    /// The keys compiled over the aggregate's input.
    keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Columns of the aggregate's input (the expansion's keys follow them).
    inputs: usize,
    /// The expansion's output: the input's columns, the keys, the grouping id.
    schema: datafusion::arrow::datatypes::SchemaRef,
}

impl Grouping {
    /// Key `i` as the expansion gives it (its value or NULL).
    fn key_column(&self, i: usize) -> Arc<dyn PhysicalExpr> {
        let at = self.inputs + i;
        Arc::new(datafusion::physical_expr::expressions::Column::new(
            self.schema.field(at).name(),
            at,
        ))
    }

    /// The grouping id as the expansion gives it.
    fn id_column(&self) -> Arc<dyn PhysicalExpr> {
        self.key_column(self.exprs.len())
    }

    fn id_field(&self) -> datafusion::arrow::datatypes::Field {
        self.schema.field(self.inputs + self.exprs.len()).clone()
    }

    /// `input`, each row repeated once per grouping set.
    fn expand(self, input: PlanNode) -> Result<PlanNode> {
        Ok(PlanNode::Operator {
            op: Box::new(crate::operator::expand::ExpandOperator::new(
                self.keys,
                self.sets,
                self.schema,
            )?),
            input: Box::new(input),
        })
    }
}
