//! Flink's `CROSS JOIN UNNEST(t.arr) AS u(x)` and `LEFT JOIN UNNEST(t.arr) AS u(x) ON TRUE`:
//! one output row per element of each row's array, the row's other columns repeated.
//!
//! DataFusion plans `UNNEST(t.arr)` on the right of a join as a correlated subquery (a
//! `Subquery` whose leaf is a one-row `EmptyRelation` and whose expressions hold
//! `outer_ref(t.arr)`), which it cannot run. [`LateralUnnest`], an analyzer rule, turns that
//! join into a plain `Unnest` over the left input before the optimizer sees it, so batch
//! queries and standing queries both get a node they can run: the left side's columns are
//! carried through the subquery's projections, its outer references become those carried
//! columns, and a last projection gives the join's own column names back.
//!
//! Semantics (Flink's "Array Expansion", *Queries › Joins*): a row whose array is NULL or
//! empty gives no rows in a `CROSS JOIN`; in a `LEFT JOIN … ON TRUE` it gives one row with
//! NULL for the element.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, JoinType, NullHandling};
use datafusion::logical_expr::builder::unnest_with_options;
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, Projection};
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

/// The analyzer rule; see the module's documentation. Registered for every session.
#[derive(Debug, Default)]
pub struct LateralUnnest;

impl AnalyzerRule for LateralUnnest {
    fn name(&self) -> &str {
        "weir_lateral_unnest"
    }

    fn analyze(
        &self,
        plan: LogicalPlan,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<LogicalPlan> {
        Ok(plan.transform_up_with_subqueries(rewrite)?.data)
    }
}

/// The name the left side's column `i` is carried under through the unnesting.
fn carried(i: usize) -> String {
    format!("__weir_lateral_{i}")
}

fn rewrite(plan: LogicalPlan) -> datafusion::error::Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(j) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let outer = match j.join_type {
        JoinType::Inner => false,
        JoinType::Left => true,
        _ => return Ok(Transformed::no(plan)),
    };
    let on_true = match &j.filter {
        None => true,
        Some(Expr::Literal(ScalarValue::Boolean(Some(true)), _)) => true,
        Some(_) => false,
    };
    // Flink takes only `ON TRUE` for the outer form: any other condition would make the
    // unmatched rows depend on it.
    if !j.on.is_empty() || (outer && !on_true) {
        return Ok(Transformed::no(plan));
    }
    let Some(inner) = lateral_subquery(&j.right) else {
        return Ok(Transformed::no(plan));
    };
    let left_schema = j.left.schema();
    let n = left_schema.fields().len();
    let keep = (0..n)
        .map(|i| column_at(left_schema, i).alias(carried(i)))
        .collect::<Vec<_>>();
    let base = LogicalPlan::Projection(Projection::try_new(keep, Arc::clone(&j.left))?);
    let null_handling = if outer {
        NullHandling::PreserveAndExpandEmpty
    } else {
        NullHandling::Drop
    };
    let Some(threaded) = thread(inner, &base, left_schema, n, null_handling, outer)? else {
        return Ok(Transformed::no(plan));
    };
    if threaded.schema().fields().len() != j.schema.fields().len() {
        return Ok(Transformed::no(plan));
    }
    let names = (0..j.schema.fields().len())
        .map(|k| {
            let (q, f) = j.schema.qualified_field(k);
            column_at(threaded.schema(), k).alias_qualified(q.cloned(), f.name())
        })
        .collect::<Vec<_>>();
    let mut out = LogicalPlan::Projection(Projection::try_new(names, Arc::new(threaded))?);
    if let Some(f) = &j.filter
        && !on_true
    {
        out = LogicalPlan::Filter(Filter::try_new(f.clone(), Arc::new(out))?);
    }
    Ok(Transformed::yes(out))
}

/// Whether `plan` holds a subquery that refers to an enclosing query's columns (what is
/// left of a lateral join this rule did not take).
pub(crate) fn correlated(plan: &LogicalPlan) -> bool {
    plan.exists(|p| Ok(matches!(p, LogicalPlan::Subquery(s) if !s.outer_ref_columns.is_empty())))
        .unwrap_or(false)
}

/// The error for a lateral join this rule does not take and DataFusion cannot run (what
/// [`correlated`] finds), with the forms that run. Errors: always.
pub(crate) fn unsupported_lateral() -> crate::error::WeirError {
    crate::error::WeirError::sql(
        "not supported yet: this join with UNNEST or a LATERAL subquery",
        None,
    )
    .with_hint(
        "expand arrays with CROSS JOIN UNNEST(arr) AS t (x), or LEFT JOIN UNNEST(arr) AS t (x) ON TRUE to keep rows with empty arrays",
    )
}

/// Fails with [`unsupported_lateral`] when `plan`, optimised, still holds a correlated
/// subquery (which DataFusion's physical planner would reject with an internal message).
pub(crate) fn check_runnable(plan: &LogicalPlan) -> crate::error::Result<()> {
    if correlated(plan) {
        return Err(unsupported_lateral());
    }
    Ok(())
}

/// The plan of a lateral subquery on a join's right (under its alias), if it refers to
/// the left side — or of an `UNNEST` of constants (`UNNEST(ARRAY[1, 2])`), which expands
/// the same way though DataFusion plans it as a plain cross join.
fn lateral_subquery(plan: &LogicalPlan) -> Option<&LogicalPlan> {
    let inner = match plan {
        LogicalPlan::SubqueryAlias(a) => a.input.as_ref(),
        other => other,
    };
    match inner {
        LogicalPlan::Subquery(s) if !s.outer_ref_columns.is_empty() => Some(&s.subquery),
        other if unnest_of_one_row(other) => Some(other),
        _ => None,
    }
}

/// Whether `plan` is projections and filters over an `Unnest` over one empty row.
fn unnest_of_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => unnest_of_one_row(&p.input),
        LogicalPlan::Filter(f) => unnest_of_one_row(&f.input),
        LogicalPlan::Unnest(u) => one_row(&u.input),
        _ => false,
    }
}

/// Whether `plan` is projections over one empty row.
fn one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => one_row(&p.input),
        LogicalPlan::EmptyRelation(e) => e.produce_one_row,
        _ => false,
    }
}

/// Column `i` of `schema` as an expression.
fn column_at(schema: &DFSchema, i: usize) -> Expr {
    let (q, f) = schema.qualified_field(i);
    Expr::Column(Column::new(q.cloned(), f.name()))
}

/// `plan` (a lateral subquery of projections, unnests and filters over one empty row)
/// rebuilt over `base` (the left side, its `n` columns renamed [`carried`]), each
/// projection carrying those columns first. None: a shape this rule does not handle.
fn thread(
    plan: &LogicalPlan,
    base: &LogicalPlan,
    left: &DFSchema,
    n: usize,
    nulls: NullHandling,
    outer: bool,
) -> datafusion::error::Result<Option<LogicalPlan>> {
    let out = match plan {
        LogicalPlan::EmptyRelation(e) if e.produce_one_row => base.clone(),
        LogicalPlan::Projection(p) => {
            let Some(input) = thread(&p.input, base, left, n, nulls, outer)? else {
                return Ok(None);
            };
            let mut exprs = (0..n)
                .map(|i| column_at(input.schema(), i))
                .collect::<Vec<_>>();
            for e in &p.expr {
                let Some(s) = strip(e, left)? else {
                    return Ok(None);
                };
                exprs.push(s);
            }
            LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(input))?)
        }
        LogicalPlan::Unnest(u) => {
            let Some(input) = thread(&u.input, base, left, n, nulls, outer)? else {
                return Ok(None);
            };
            let mut options = u.options.clone();
            options.null_handling = nulls;
            unnest_with_options(input, u.exec_columns.clone(), options)?
        }
        // A filter inside the subquery would turn an outer join's unmatched rows into
        // no rows; only the inner form takes one.
        LogicalPlan::Filter(f) if !outer => {
            let Some(input) = thread(&f.input, base, left, n, nulls, outer)? else {
                return Ok(None);
            };
            let Some(predicate) = strip(&f.predicate, left)? else {
                return Ok(None);
            };
            LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(input))?)
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// `e` with its references to the left side's columns turned into the carried columns,
/// under its old name. None: it refers to a column the left side does not have.
fn strip(e: &Expr, left: &DFSchema) -> datafusion::error::Result<Option<Expr>> {
    let foreign = e.exists(|x| {
        Ok(matches!(x, Expr::OuterReferenceColumn(_, c) if left.index_of_column(c).is_err()))
    })?;
    if foreign {
        return Ok(None);
    }
    let stripped = e.clone().transform(|x| match x {
        Expr::OuterReferenceColumn(_, c) => {
            let i = left.index_of_column(&c)?;
            Ok(Transformed::yes(Expr::Column(Column::from_name(carried(
                i,
            )))))
        }
        other => Ok(Transformed::no(other)),
    })?;
    if !stripped.transformed {
        return Ok(Some(e.clone()));
    }
    Ok(Some(match e {
        Expr::Alias(_) => stripped.data,
        _ => stripped.data.alias(e.schema_name().to_string()),
    }))
}
