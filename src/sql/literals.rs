//! Integer literals typed as Flink types them.
//!
//! Calcite (and so Flink) gives an integer literal the type `INT` when it fits in 32 bits
//! and `BIGINT` otherwise (`SqlLiteral.createExactNumeric`); DataFusion makes every one a
//! `BIGINT`. Where the literal's type becomes the result's type, that changes the answer:
//! `a + 1` over an `INT` column is an `INT` in Flink (and wraps past 2³¹ − 1, as Java's
//! `int` does) but a `BIGINT` in DataFusion; `CASE WHEN … THEN 1 ELSE 0 END` and
//! `COALESCE(a, 0)` are `INT`s in Flink; `SELECT 1` is an `INT` column.
//!
//! [`flink_int_literals`] retypes the literals in those places — an operand of `+`, `-`,
//! `*`, `/`, `%` beside another number, a branch of `CASE`, an argument of `COALESCE`,
//! `NULLIF`, `IFNULL`, `GREATEST`, `LEAST`, `ABS`, `FLOOR`, `CEIL`, `SIGN`, `SUM`, `MIN`,
//! `MAX`, `AVG`, `FIRST_VALUE` and `LAST_VALUE` (grouped or OVER), a `VALUES` column of them,
//! a key expression of `GROUPING SETS`/`ROLLUP`/`CUBE` (whose output columns take the new
//! expression's name, which the nodes above then follow), and a literal projected as it is —
//! before DataFusion's type coercion runs, so coercion then widens an `INT` literal to
//! its partner's type exactly as Flink's does (`b + 1` with `b` a `BIGINT` stays a
//! `BIGINT`). Elsewhere a literal keeps DataFusion's `BIGINT`: arguments whose type does
//! not reach the result (`SUBSTRING(s, 1, 2)`, `ROUND(x, 2)`, a window's sizes), limits and
//! comparisons, where the type changes nothing.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, HashMap, ScalarValue};
use datafusion::logical_expr::expr::{Alias, Case, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, WindowFunctionDefinition,
};

use crate::error::Result;

/// An integer literal as Flink types it: an `INT` where it fits (a negated one too), else
/// the expression unchanged.
pub fn int_literal(e: Expr) -> Expr {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), m) if i32::try_from(v).is_ok() => {
            Expr::Literal(ScalarValue::Int32(Some(v as i32)), m)
        }
        Expr::Negative(inner) => match *inner {
            Expr::Literal(ScalarValue::Int64(Some(v)), m) => {
                match v.checked_neg().and_then(|n| i32::try_from(n).ok()) {
                    // -2147483648 is an INT though 2147483648 is not.
                    Some(n) => Expr::Literal(ScalarValue::Int32(Some(n)), m),
                    None => Expr::Negative(Box::new(Expr::Literal(ScalarValue::Int64(Some(v)), m))),
                }
            }
            inner => Expr::Negative(Box::new(inner)),
        },
        e => e,
    }
}

/// Whether `e` is an integer literal [`int_literal`] would retype.
fn is_int_literal(e: &Expr) -> bool {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => i32::try_from(*v).is_ok(),
        Expr::Negative(inner) => match inner.as_ref() {
            Expr::Literal(ScalarValue::Int64(Some(v)), _) => {
                v.checked_neg().is_some_and(|n| i32::try_from(n).is_ok())
            }
            _ => false,
        },
        _ => false,
    }
}

/// The functions whose result type is their arguments' common type in Flink, so an integer
/// literal argument makes an `INT` of them (`COALESCE(a, 0)` over an `INT` column), and the
/// value constructors, whose elements and fields have their arguments' types (`ARRAY[1, 2]`
/// is an `ARRAY<INT>`, `ROW(1, 'a')` a `ROW<INT, STRING>`, `MAP['a', 1]` a
/// `MAP<STRING, INT>`; an element past INT's range keeps its `BIGINT`, and the array's type
/// is then the wider one, as Calcite's least restrictive type), and `PRINTF`, whose `%x` of
/// `-1` is that of an INT.
const FOLLOW_ARGUMENTS: &[&str] = &[
    "coalesce",
    "nullif",
    "nvl",
    "ifnull",
    "greatest",
    "least",
    "abs",
    "floor",
    "ceil",
    "signum",
    "mod",
    "make_array",
    "__weir_map",
    "struct",
    "named_struct",
    "printf",
];

/// The aggregates whose result type follows their argument's in Flink (`SUM(1)` is an
/// `INT`).
const FOLLOW_ARGUMENTS_AGG: &[&str] = &["sum", "min", "max", "avg", "first_value", "last_value"];

/// Retypes the integer literals of a planned (not yet analysed) query where Flink's type
/// reaches the result (see the module's documentation), keeping every column's name.
///
/// Errors: DataFusion's, when a node cannot be rebuilt.
pub fn flink_int_literals(plan: LogicalPlan) -> Result<LogicalPlan> {
    // Columns whose names changed below (a grouping set's expressions, which cannot keep
    // their names under an alias): old name → new name, for the nodes above to follow.
    let mut renamed: HashMap<String, String> = HashMap::new();
    Ok(plan
        .transform_up_with_subqueries(|node| {
            let (node, followed) = follow_renames(node, &renamed)?;
            // Types retyped below reach this node's schema (a `VALUES` of INTs under an
            // alias, an aggregate over it).
            let node = match node {
                // A union's schema is its first input's, which `recompute_schema` keeps as
                // it was: derived again (the analyzer coerces the inputs to one type later).
                LogicalPlan::Union(u) => LogicalPlan::Union(
                    datafusion::logical_expr::Union::try_new_with_loose_types(u.inputs)?,
                ),
                node if node.inputs().is_empty() => node,
                node => node.recompute_schema()?,
            };
            let schema = merge_schema(&node.inputs());
            if let LogicalPlan::Values(v) = &node {
                // `VALUES (1), (2)` is a column of INTs: a column whose values are all
                // such literals is retyped and the node rebuilt, so its schema has their
                // types. `VALUES (1), (2147483648)` stays a BIGINT, as its widest value is.
                let width = v.values.first().map_or(0, Vec::len);
                let ints: Vec<bool> = (0..width)
                    .map(|c| {
                        v.values
                            .iter()
                            .all(|row| row.get(c).is_some_and(is_int_literal))
                    })
                    .collect();
                if !ints.contains(&true) {
                    return Ok(Transformed::no(node));
                }
                let rows = v
                    .values
                    .iter()
                    .map(|row| {
                        row.iter()
                            .zip(&ints)
                            .map(|(e, int)| {
                                if *int {
                                    int_literal(e.clone())
                                } else {
                                    e.clone()
                                }
                            })
                            .collect()
                    })
                    .collect();
                return Ok(Transformed::yes(
                    datafusion::logical_expr::LogicalPlanBuilder::values(rows)?.build()?,
                ));
            }
            let projects = matches!(node, LogicalPlan::Projection(_));
            let names = NamePreserver::new(&node);
            let before: Vec<String> = node
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let mut sets = false;
            let t = node.map_expressions(|e| {
                if let Expr::GroupingSet(_) = e {
                    // Its columns are named by its expressions, and an alias cannot keep
                    // those names inside it: the set's expressions are retyped and renamed,
                    // and the nodes above follow the new names (`follow_renames`).
                    let t = e.transform_up(|x| retype(x, &schema))?;
                    sets |= t.transformed;
                    return Ok(t);
                }
                let saved = names.save(&e);
                let e = if projects { projected(e) } else { e };
                let t = e.transform_up(|x| retype(x, &schema))?;
                Ok(if t.transformed {
                    t.update_data(|e| saved.restore(e))
                } else {
                    t
                })
            })?;
            if !sets && !followed {
                return Ok(t);
            }
            let node = t.data.recompute_schema()?;
            for (old, f) in before.into_iter().zip(node.schema().fields()) {
                if &old != f.name() {
                    renamed.insert(old, f.name().clone());
                }
            }
            Ok(Transformed::yes(node))
        })?
        .data)
}

/// `node` with its references to columns renamed below (`renamed`: old name → new name)
/// following the new names, and whether any did (its schema is then to be recomputed). A
/// projection keeps its output names (the renamed column under its old name).
fn follow_renames(
    node: LogicalPlan,
    renamed: &HashMap<String, String>,
) -> datafusion::error::Result<(LogicalPlan, bool)> {
    if renamed.is_empty() {
        return Ok((node, false));
    }
    let schema = merge_schema(&node.inputs());
    let projects = matches!(node, LogicalPlan::Projection(_));
    let t = node.map_expressions(|e| {
        let top = e.clone();
        let t = e.transform_up(|x| match x {
            Expr::Column(c) if !schema.has_column(&c) => {
                let Some(new) = renamed.get(&c.name) else {
                    return Ok(Transformed::no(Expr::Column(c)));
                };
                let to = Column::new(c.relation.clone(), new);
                if schema.has_column(&to) {
                    Ok(Transformed::yes(Expr::Column(to)))
                } else {
                    Ok(Transformed::no(Expr::Column(c)))
                }
            }
            x => Ok(Transformed::no(x)),
        })?;
        if projects && t.transformed && !matches!(top, Expr::Alias(_)) {
            let (relation, name) = top.qualified_name();
            return Ok(t.update_data(|e| e.alias_qualified(relation, name)));
        }
        Ok(t)
    })?;
    // Every node above a rename is rebuilt, so its schema has the new names and types.
    Ok((t.data, true))
}

/// A lone expression (a table's computed column, `b AS a + 1`) with its integer literals
/// typed as Flink types them, as [`flink_int_literals`] types a projection's (`a + 1` over
/// an `INT` column `a` is an `INT`), then coerced as DataFusion's analyzer coerces a
/// query's expressions — which does not run on a lone expression — so that the type it
/// reports is the type it computes (`CASE WHEN … THEN 10 ELSE big END` is a `BIGINT`).
/// Errors when an operand's type cannot be found in `schema`, or the types do not meet.
pub fn flink_int_literals_expr(
    e: Expr,
    schema: &datafusion::common::DFSchema,
) -> datafusion::error::Result<Expr> {
    use datafusion::common::tree_node::TreeNode as _;
    let typed = projected(e).transform_up(|x| retype(x, schema))?.data;
    let typed = typed
        .transform_up(|x| crate::sql::decimal::float_over_decimal(x, schema))?
        .data;
    let mut coerce =
        datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter::new(schema);
    Ok(typed.rewrite(&mut coerce)?.data)
}

/// A projected literal (under its alias, if any) as an `INT`.
fn projected(e: Expr) -> Expr {
    match e {
        Expr::Alias(Alias {
            expr,
            relation,
            name,
            metadata,
        }) => Expr::Alias(Alias {
            expr: Box::new(int_literal(*expr)),
            relation,
            name,
            metadata,
        }),
        e => int_literal(e),
    }
}

/// One expression's integer literals retyped where their type reaches its result.
fn retype(
    x: Expr,
    schema: &datafusion::common::DFSchema,
) -> datafusion::error::Result<Transformed<Expr>> {
    let numeric = |e: &Expr| is_int_literal(e) || e.get_type(schema).is_ok_and(|t| t.is_numeric());
    Ok(match x {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(
                op,
                Operator::Plus
                    | Operator::Minus
                    | Operator::Multiply
                    | Operator::Divide
                    | Operator::Modulo
            ) && (is_int_literal(&left) || is_int_literal(&right))
                && numeric(&left)
                && numeric(&right) =>
        {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                left: Box::new(int_literal(*left)),
                op,
                right: Box::new(int_literal(*right)),
            }))
        }
        Expr::Case(Case {
            expr,
            when_then_expr,
            else_expr,
        }) if when_then_expr.iter().any(|(_, t)| is_int_literal(t))
            || else_expr.as_deref().is_some_and(is_int_literal) =>
        {
            Transformed::yes(Expr::Case(Case {
                expr,
                when_then_expr: when_then_expr
                    .into_iter()
                    .map(|(w, t)| (w, Box::new(int_literal(*t))))
                    .collect(),
                else_expr: else_expr.map(|e| Box::new(int_literal(*e))),
            }))
        }
        Expr::ScalarFunction(ScalarFunction { func, args })
            if FOLLOW_ARGUMENTS.contains(&func.name()) && args.iter().any(is_int_literal) =>
        {
            Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                func,
                args: args.into_iter().map(int_literal).collect(),
            }))
        }
        Expr::AggregateFunction(mut f)
            if FOLLOW_ARGUMENTS_AGG.contains(&f.func.name())
                && f.params.args.iter().any(is_int_literal) =>
        {
            f.params.args = std::mem::take(&mut f.params.args)
                .into_iter()
                .map(int_literal)
                .collect();
            Transformed::yes(Expr::AggregateFunction(f))
        }
        Expr::WindowFunction(mut w)
            if matches!(
                &w.fun,
                WindowFunctionDefinition::AggregateUDF(f)
                    if FOLLOW_ARGUMENTS_AGG.contains(&f.name())
            ) && w.params.args.iter().any(is_int_literal) =>
        {
            // An OVER aggregate: `SUM(1) OVER w` is an INT too.
            w.params.args = std::mem::take(&mut w.params.args)
                .into_iter()
                .map(int_literal)
                .collect();
            Transformed::yes(Expr::WindowFunction(w))
        }
        x => Transformed::no(x),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::lit;

    #[test]
    fn literals_that_fit_an_int_are_ints() {
        assert_eq!(int_literal(lit(7i64)), lit(7i32));
        assert_eq!(int_literal(lit(i64::from(i32::MAX))), lit(i32::MAX));
        assert_eq!(
            int_literal(lit(i64::from(i32::MAX) + 1)),
            lit(2147483648i64)
        );
        assert_eq!(int_literal(-lit(2147483648i64)), lit(i32::MIN));
        assert_eq!(int_literal(lit(1.5f64)), lit(1.5f64));
    }
}
