//! Window table functions in the catalog and in plans.
//!
//! Each window call of a statement (see [`crate::sql::window`]) is registered with
//! DataFusion as a [`WindowTable`] while the statement is planned: its schema is the
//! input's plus `window_start`, `window_end` and `window_time`, so DataFusion resolves and
//! types everything above it. The streaming planner recognises scans of it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, LogicalPlan, TableScan};
use datafusion::physical_plan::ExecutionPlan;

use crate::operator::window::WindowSpec;
use crate::plan::window_aggregate::WindowAggregate;
use crate::sql::catalog::StreamTable;
use crate::sql::window::WindowCall;

/// The table a window call stands for (a handle on its [`WindowInfo`]).
#[derive(Debug)]
pub struct WindowTable(pub Arc<WindowInfo>);

/// A window call, resolved: its input planned and its times in milliseconds.
#[derive(Debug)]
pub struct WindowInfo {
    pub call: WindowCall,
    pub spec: WindowSpec,
    /// The input (a table, view or query), planned.
    pub input: LogicalPlan,
    /// The index of the DESCRIPTOR column in the input.
    pub time_index: usize,
    /// The input's columns and the three window columns.
    pub schema: SchemaRef,
}

impl WindowInfo {
    pub fn new(call: WindowCall, spec: WindowSpec, input: LogicalPlan, time_index: usize) -> Self {
        let in_schema = input.schema().as_arrow().clone();
        let time_type = in_schema.field(time_index).data_type().clone();
        let tz = match &time_type {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let ts = DataType::Timestamp(TimeUnit::Millisecond, tz);
        let mut fields: Vec<Field> = in_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("window_start", ts.clone(), false));
        fields.push(Field::new("window_end", ts.clone(), false));
        fields.push(Field::new("window_time", ts, false));
        WindowInfo {
            call,
            spec,
            input,
            time_index,
            schema: Arc::new(Schema::new(fields)),
        }
    }
}

#[async_trait]
impl TableProvider for WindowTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Err(datafusion::error::DataFusionError::Plan(format!(
            "{} windows run in standing queries (weir run, or a SELECT in the shell)",
            self.0.call.kind.name()
        )))
    }
}

/// The window table a scan reads, if it reads one.
pub fn window_table(scan: &TableScan) -> Option<Arc<WindowInfo>> {
    let provider = datafusion::datasource::source_as_provider(&scan.source).ok()?;
    provider.downcast_ref::<WindowTable>().map(|t| t.0.clone())
}

pub(crate) fn position(schema: &DFSchema, name: &str) -> Option<usize> {
    schema.fields().iter().position(|f| f.name() == name)
}

pub(crate) fn column_of(e: &Expr) -> Option<&Column> {
    match e {
        Expr::Column(c) => Some(c),
        Expr::Alias(a) => column_of(&a.expr),
        _ => None,
    }
}

/// Which window column a name at the top of `plan` is, and of which window table; `exact`
/// becomes false when something between uses a window column in an expression (so the
/// rows must carry real windows, not slices).
pub struct WindowTrace {
    pub table: Arc<WindowInfo>,
    pub exact: bool,
}

/// Follows `name` down from `plan` through projections that pass it on, filters and
/// aliases, to a window table's `window_start`/`window_end`/`window_time`.
pub fn trace_window_column(plan: &LogicalPlan, name: &str) -> Option<(String, WindowTrace)> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let t = window_table(scan)?;
            let n = t.schema.fields().len();
            let idx = position(&scan.projected_schema, name)?;
            let orig = match &scan.projection {
                Some(p) => *p.get(idx)?,
                None => idx,
            };
            (orig >= n - 3).then(|| {
                (
                    t.schema.field(orig).name().clone(),
                    WindowTrace {
                        table: t,
                        exact: false,
                    },
                )
            })
        }
        LogicalPlan::Projection(p) => {
            let i = position(&p.schema, name)?;
            let e = p.expr.get(i)?;
            let c = column_of(e)?;
            let (col, mut tr) = trace_window_column(&p.input, &c.name)?;
            // Other expressions of this projection that compute from window columns need
            // real windows.
            if p.expr
                .iter()
                .any(|e| column_of(e).is_none() && uses_window_columns(e))
            {
                tr.exact = true;
            }
            Some((col, tr))
        }
        LogicalPlan::Filter(f) => {
            let (col, mut tr) = trace_window_column(&f.input, name)?;
            if uses_window_columns(&f.predicate) {
                tr.exact = true;
            }
            Some((col, tr))
        }
        LogicalPlan::SubqueryAlias(a) => trace_window_column(&a.input, name),
        _ => None,
    }
}

fn uses_window_columns(e: &Expr) -> bool {
    e.column_refs().iter().any(|c| {
        matches!(
            c.name.as_str(),
            "window_start" | "window_end" | "window_time"
        )
    })
}

/// True when `name` at the top of `plan` is a time attribute: a source's `WATERMARK FOR`
/// column, or the `window_time` of a window, passed on unchanged.
pub fn is_time_attribute(plan: &LogicalPlan, name: &str) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source) else {
                return false;
            };
            if let Some(t) = provider.downcast_ref::<StreamTable>() {
                let def = t.def();
                // A table may have both (Flink's rowtime and proctime attributes).
                return def.watermark.as_ref().is_some_and(|w| w.column == name)
                    || def.proctime_column() == Some(name);
            }
            if let Some(w) = provider.downcast_ref::<WindowTable>().map(|t| &t.0) {
                let time = w.input.schema().field(w.time_index).name();
                return name == "window_time"
                    || (name == time && is_time_attribute(&w.input, name));
            }
            false
        }
        LogicalPlan::Projection(p) => {
            let Some(i) = position(&p.schema, name) else {
                return false;
            };
            match p.expr.get(i) {
                Some(e) if is_proctime_call(e) => true,
                Some(e) => column_of(e).is_some_and(|c| is_time_attribute(&p.input, &c.name)),
                None => false,
            }
        }
        LogicalPlan::Aggregate(_) | LogicalPlan::Extension(_) => {
            let Some(w) = WindowAggregate::in_plan(plan) else {
                return false;
            };
            name == "window_time"
                && w.aggregate.group_expr.iter().any(|g| {
                    column_of(g).is_some_and(|c| {
                        w.column(&c.name)
                            .is_some_and(|wc| !wc.cascaded && wc.column == "window_time")
                    })
                })
        }
        LogicalPlan::Union(u) => u.inputs.iter().all(|i| is_time_attribute(i, name)),
        // A lookup or temporal join (`FOR SYSTEM_TIME AS OF`, its table read under a name
        // of its own) keeps the stream's time attributes, as Flink's: each row goes out
        // as its own time passes the watermark (or at once).
        LogicalPlan::Join(j)
            if matches!(
                j.join_type,
                datafusion::logical_expr::JoinType::Inner
                    | datafusion::logical_expr::JoinType::Left
            ) && reads_lookup(&j.right) =>
        {
            let left = j.left.schema().fields().len();
            matches!(position(&j.schema, name), Some(i) if i < left)
                && is_time_attribute(&j.left, name)
        }
        // An INNER interval join keeps both sides' time attributes, as Flink's: a joined
        // row is never behind the join's output watermark, which trails by the bounds.
        LogicalPlan::Join(j)
            if j.join_type == datafusion::logical_expr::JoinType::Inner
                && crate::plan::join::is_interval_join(j) =>
        {
            let left = j.left.schema().fields().len();
            match position(&j.schema, name) {
                Some(i) if i < left => is_time_attribute(&j.left, name),
                Some(_) => is_time_attribute(&j.right, name),
                None => false,
            }
        }
        // An OVER aggregate emits each row before the watermark passes its time (Flink keeps
        // the time attribute through it too).
        LogicalPlan::Window(w) if crate::plan::is_over_aggregate(w) => {
            position(&w.schema, name).is_some_and(|i| i < w.input.schema().fields().len())
                && is_time_attribute(&w.input, name)
        }
        // An unnest repeats the columns it does not expand.
        LogicalPlan::Unnest(u) => {
            !u.exec_columns.iter().any(|c| c.name == name) && is_time_attribute(&u.input, name)
        }
        LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) | LogicalPlan::Limit(_) => plan
            .inputs()
            .first()
            .is_some_and(|i| is_time_attribute(i, name)),
        _ => false,
    }
}

/// Which window column of a window aggregate's output `name` is (`window_start`,
/// `window_end` or `window_time`), following it up through projections, filters and aliases
/// — the rows of one window then arrive together, in the batch the window fired.
pub fn aggregated_window_column(plan: &LogicalPlan, name: &str) -> Option<String> {
    aggregated_window_trace(plan, name).map(|(col, _)| col)
}

/// [`aggregated_window_column`] with the window it comes from, through any number of window
/// aggregates of window aggregates.
pub fn aggregated_window_trace(plan: &LogicalPlan, name: &str) -> Option<(String, WindowTrace)> {
    match plan {
        LogicalPlan::Aggregate(_) | LogicalPlan::Extension(_) => {
            let w = WindowAggregate::in_plan(plan)?;
            let a = &w.aggregate;
            let i = position(&a.schema, name)?;
            let c = w.column(&column_of(a.group_expr.get(i)?)?.name)?;
            Some((c.column.clone(), w.trace(c)))
        }
        LogicalPlan::Projection(p) => {
            let i = position(&p.schema, name)?;
            let c = column_of(p.expr.get(i)?)?;
            aggregated_window_trace(&p.input, &c.name)
        }
        LogicalPlan::Filter(f) => aggregated_window_trace(&f.input, name),
        LogicalPlan::SubqueryAlias(a) => aggregated_window_trace(&a.input, name),
        _ => None,
    }
}

fn is_proctime_call(e: &Expr) -> bool {
    match e {
        Expr::Alias(a) => is_proctime_call(&a.expr),
        Expr::ScalarFunction(f) => f.name() == "proctime",
        _ => false,
    }
}

/// True when `plan` (a join's right input) scans a `FOR SYSTEM_TIME AS OF` table, read
/// under its statement's own name for it (`__weir_lookup_N`).
fn reads_lookup(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(s) => s.table_name.table().starts_with("__weir_lookup_"),
        p => match p.inputs().as_slice() {
            [one] => reads_lookup(one),
            _ => false,
        },
    }
}

/// True when column `col` at the top of `plan` is an event-time attribute of a table it
/// reads (its `WATERMARK FOR` column), passed on unchanged through projections, filters,
/// aliases and joins — or one [`is_time_attribute`] finds (a window's `window_time`).
pub fn is_rowtime_attribute(plan: &LogicalPlan, col: &Column) -> bool {
    if is_time_attribute(plan, &col.name) && !is_proctime_attribute(plan, col) {
        return true;
    }
    traces_to(
        plan,
        col,
        &|def, name| def.watermark.as_ref().is_some_and(|w| w.column == name),
        &|_| false,
    )
}

/// True when column `col` at the top of `plan` is a processing-time attribute: a table's
/// `PROCTIME()` column or `PROCTIME()` computed in a query, passed on unchanged through
/// projections, filters, aliases and joins (followed by its qualified name, so a self-join's
/// two sides stay apart).
pub fn is_proctime_attribute(plan: &LogicalPlan, col: &Column) -> bool {
    traces_to(
        plan,
        col,
        &|def, name| def.proctime_column() == Some(name),
        &is_proctime_call,
    )
}

/// Follows column `col` of `plan` down through projections, filters, aliases, limits, sorts
/// and joins (by qualified name) to where it is made: true when that is a table column
/// `at_scan(table, column name)` accepts, or a projected expression `made` accepts.
fn traces_to(
    plan: &LogicalPlan,
    col: &Column,
    at_scan: &dyn Fn(&crate::sql::catalog::TableDef, &str) -> bool,
    made: &dyn Fn(&Expr) -> bool,
) -> bool {
    let Some(i) = plan.schema().maybe_index_of_column(col) else {
        return false;
    };
    let below = |input: &LogicalPlan, i: usize| {
        let (q, f) = input.schema().qualified_field(i);
        traces_to(input, &Column::new(q.cloned(), f.name()), at_scan, made)
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source) else {
                return false;
            };
            provider
                .downcast_ref::<StreamTable>()
                .is_some_and(|t| at_scan(&t.def(), scan.projected_schema.field(i).name()))
        }
        LogicalPlan::Projection(p) => match p.expr.get(i) {
            Some(e) if made(e) => true,
            Some(e) => column_of(e).is_some_and(|c| traces_to(&p.input, c, at_scan, made)),
            None => false,
        },
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            if i < left {
                below(&j.left, i)
            } else {
                below(&j.right, i - left)
            }
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Sort(_) => plan.inputs().first().is_some_and(|input| below(input, i)),
        _ => false,
    }
}

/// True when `name` at the top of `plan` is `PROCTIME()` computed in a query (not a table's
/// `pt AS PROCTIME()` column), passed on unchanged: windows over it need the processing
/// time as their watermark, whatever the source's event-time watermark is.
pub fn is_query_proctime(plan: &LogicalPlan, name: &str) -> bool {
    match plan {
        LogicalPlan::Projection(p) => {
            let Some(e) = position(&p.schema, name).and_then(|i| p.expr.get(i)) else {
                return false;
            };
            is_proctime_call(e)
                || column_of(e).is_some_and(|c| is_query_proctime(&p.input, &c.name))
        }
        LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => plan
            .inputs()
            .first()
            .is_some_and(|i| is_query_proctime(i, name)),
        _ => false,
    }
}
