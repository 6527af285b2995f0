//! Flink's `GROUP_ID()` (Calcite's, as Oracle defines it): which copy of a repeated grouping
//! set a row's group comes from — 0 for the first set of given keys, 1 for the second
//! `GROUPING SETS ((a), (a))` lists, and so on; 0 without grouping sets. A `BIGINT NOT NULL`.
//!
//! `GROUP_ID` is registered as an aggregate so that SQL names it in a select list or a
//! `HAVING`, but never runs as one: [`ResolveGroupId`], an analyzer rule, takes the calls
//! out of their `Aggregate` and computes them above it from the aggregate's grouping id
//! (`__grouping_id`), whose bits above one per distinct key hold the set's ordinal among
//! sets of the same keys (see [`crate::operator::expand`]). Batch and standing queries
//! both get the rewritten plan.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DataFusionError, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, Aggregate, AggregateUDF, AggregateUDFImpl, Expr, LogicalPlan, Operator,
    Projection, Signature, Volatility, binary_expr, cast, lit,
};
use datafusion::optimizer::analyzer::AnalyzerRule;

const NAME: &str = "group_id";

/// The `GROUP_ID()` aggregate as SQL sees it (see the module's documentation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GroupId {
    signature: Signature,
}

impl GroupId {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(GroupId {
            signature: Signature::nullary(Volatility::Immutable),
        })
    }
}

fn not_resolved() -> DataFusionError {
    DataFusionError::Plan("GROUP_ID() is computed from its GROUP BY and cannot run alone".into())
}

impl AggregateUDFImpl for GroupId {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Err(not_resolved())
    }

    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Err(not_resolved())
    }
}

/// The analyzer rule that computes `GROUP_ID()` calls; registered for every session.
#[derive(Debug, Default)]
pub struct ResolveGroupId;

impl AnalyzerRule for ResolveGroupId {
    fn name(&self) -> &str {
        "weir_resolve_group_id"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        Ok(plan.transform_up_with_subqueries(resolve)?.data)
    }
}

fn is_group_id(e: &Expr) -> bool {
    match e {
        Expr::Alias(a) => is_group_id(&a.expr),
        Expr::AggregateFunction(AggregateFunction { func, .. }) => func.name() == NAME,
        _ => false,
    }
}

fn resolve(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Aggregate(agg) = &plan else {
        return Ok(Transformed::no(plan));
    };
    if !agg.aggr_expr.iter().any(is_group_id) {
        return Ok(Transformed::no(plan));
    }
    // The ordinal sits above one bit per distinct key; without grouping sets it is 0.
    let ordinal = match agg.group_expr.as_slice() {
        [Expr::GroupingSet(set)] => {
            let keys = set.distinct_expr().len() as u64;
            let id = cast(
                Expr::Column(Column::from_name(Aggregate::INTERNAL_GROUPING_ID)),
                DataType::UInt64,
            );
            cast(
                binary_expr(
                    id,
                    Operator::BitwiseShiftRight,
                    lit(ScalarValue::UInt64(Some(keys))),
                ),
                DataType::Int64,
            )
        }
        _ => lit(0i64),
    };
    let old_schema = agg.schema.clone();
    let kept: Vec<Expr> = agg
        .aggr_expr
        .iter()
        .filter(|e| !is_group_id(e))
        .cloned()
        .collect();
    let mut kept = kept;
    if kept.is_empty() && agg.group_expr.is_empty() {
        // `SELECT GROUP_ID() FROM t`: still one group of every row, so still an aggregate.
        kept.push(datafusion::functions_aggregate::expr_fn::count(lit(1i64)).alias("__weir_rows"));
    }
    let first_aggr = old_schema.fields().len() - agg.aggr_expr.len();
    let inner = Aggregate::try_new(agg.input.clone(), agg.group_expr.clone(), kept)?;
    let exprs = old_schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let resolved = i
                .checked_sub(first_aggr)
                .and_then(|a| agg.aggr_expr.get(a))
                .is_some_and(is_group_id);
            if resolved {
                ordinal
                    .clone()
                    .alias_qualified(qualifier.cloned(), field.name())
            } else {
                Expr::Column(Column::from((qualifier, field)))
            }
        })
        .collect();
    let projection = Projection::try_new_with_schema(
        exprs,
        Arc::new(LogicalPlan::Aggregate(inner)),
        old_schema,
    )?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}
