//! Column names of a query's results, as Flink derives them.
//!
//! Flink's planner (Calcite) names an unaliased select item by its last identifier
//! (`bid.auction` is `auction`, `t.person.id` is `id`) and any other unaliased
//! expression `EXPR$n`, `n` its 0-based position in the select list; a name that repeats
//! an earlier one gets the smallest suffix `0`, `1`, … that makes it unique (`id`, `id0`).
//! Sources: Calcite's `SqlValidatorUtil.getAlias` and `SqlValidatorUtil.uniquify` with
//! `EXPR_SUGGESTER`, which Flink's `SqlValidatorImpl` applies to every select list.
//!
//! DataFusion names the same items differently (`datagen.bid[auction]`, `count(*)`), so
//! [`name_columns`] writes Flink's names into the query as aliases before it is planned.
//! It runs before group windows are rewritten, so `TUMBLE_START(ts, …)` is `EXPR$n` as in
//! Flink, not the `window_start` column it becomes.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, Select, SelectItem, SetExpr, TableAlias, TableAliasColumnDef, TableFactor,
    VisitMut, VisitorMut,
};

/// Gives every select item of `query`, and of every query nested in it (subqueries,
/// views' bodies, CTEs, set operations), the name Flink gives it.
///
/// A select list that holds `*` keeps DataFusion's names for the items after the star:
/// their positions depend on the star's width, which is known only once planned
/// ([`star_names`] names them then).
pub fn name_columns(query: &mut Query) {
    // `USING` joins first: their `*` and common columns are then named as Flink names them.
    super::using::rewrite(query);
    let _ = query.visit(&mut Namer {
        values: 0,
        in_from: false,
    });
}

/// A query that is a bare `VALUES …` (or a set operation that starts with one, whose names
/// are its first arm's, in parentheses or not; at the top, in a CTE or in a subquery) becomes `SELECT * FROM (VALUES …)`, which [`Namer`] then names as
/// Calcite names a `VALUES`: `EXPR$0`, `EXPR$1`, … (DataFusion: `column1`, …).
fn values_as_select(body: &mut SetExpr) {
    match body {
        SetExpr::SetOperation { left, .. } => values_as_select(left),
        SetExpr::Query(q) => values_as_select(&mut q.body),
        SetExpr::Values(_) => {
            let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
            let Ok(mut parsed) = datafusion::sql::sqlparser::parser::Parser::parse_sql(
                &dialect,
                "SELECT * FROM (VALUES (1))",
            ) else {
                return;
            };
            let Some(datafusion::sql::sqlparser::ast::Statement::Query(mut select)) = parsed.pop()
            else {
                return;
            };
            let swapped = match select.body.as_mut() {
                SetExpr::Select(s) => match s.from.first_mut().map(|f| &mut f.relation) {
                    Some(TableFactor::Derived { subquery, .. }) => {
                        std::mem::swap(subquery.body.as_mut(), body);
                        true
                    }
                    _ => false,
                },
                _ => false,
            };
            if swapped {
                *body = *select.body;
            }
        }
        _ => {}
    }
}

/// Names select lists; `values` counts the unaliased `(VALUES …)` named so far, each of
/// which gets an alias of its own (`__weir_values_1`, …) so that two in one FROM do not clash.
struct Namer {
    values: usize,
    /// The next query visited is the body of a `(VALUES …)` in FROM, which
    /// [`Namer::pre_visit_table_factor`] names: it stays as it is.
    in_from: bool,
}

impl VisitorMut for Namer {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if !std::mem::take(&mut self.in_from) {
            values_as_select(&mut query.body);
        }
        name_body(&mut query.body);
        ControlFlow::Continue(())
    }

    /// `(VALUES …)` in FROM without column names: Calcite names its columns `EXPR$0`,
    /// `EXPR$1`, … (DataFusion: `column1`, …).
    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Derived { subquery, .. } = factor
            && matches!(subquery.body.as_ref(), SetExpr::Values(_))
        {
            self.in_from = true;
        }
        if let TableFactor::Derived {
            subquery, alias, ..
        } = factor
            && let SetExpr::Values(v) = subquery.body.as_ref()
            && alias.as_ref().is_none_or(|a| a.columns.is_empty())
        {
            let width = v.rows.first().map_or(0, |r| r.content.len());
            let columns = (0..width)
                .map(|i| TableAliasColumnDef {
                    name: Ident::with_quote('"', format!("EXPR${i}")),
                    data_type: None,
                })
                .collect();
            match alias {
                Some(a) => a.columns = columns,
                None => {
                    self.values += 1;
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: Ident::new(format!("__weir_values_{}", self.values)),
                        columns,
                        at: None,
                    })
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Names the selects of a query body; a nested `Query` is named when the visitor gets
/// to it.
fn name_body(body: &mut SetExpr) {
    match body {
        SetExpr::Select(s) => name_select(s),
        SetExpr::SetOperation { left, right, .. } => {
            name_body(left);
            name_body(right);
        }
        _ => {}
    }
}

/// The names a select's FROM clause brings into scope as qualifiers: aliases, and the
/// parts of unaliased table names.
fn relations(select: &Select) -> HashSet<String> {
    fn add(f: &TableFactor, out: &mut HashSet<String>) {
        match f {
            TableFactor::Table { name, alias, .. } => match alias {
                Some(a) => {
                    out.insert(a.name.value.clone());
                }
                None => {
                    for p in &name.0 {
                        if let Some(i) = p.as_ident() {
                            out.insert(i.value.clone());
                        }
                    }
                }
            },
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                add(&table_with_joins.relation, out);
                for j in &table_with_joins.joins {
                    add(&j.relation, out);
                }
                if let Some(a) = alias {
                    out.insert(a.name.value.clone());
                }
            }
            TableFactor::Derived { alias: Some(a), .. }
            | TableFactor::TableFunction { alias: Some(a), .. }
            | TableFactor::Function { alias: Some(a), .. }
            | TableFactor::UNNEST { alias: Some(a), .. } => {
                out.insert(a.name.value.clone());
            }
            _ => {}
        }
    }
    let mut out = HashSet::new();
    for t in &select.from {
        add(&t.relation, &mut out);
        for j in &t.joins {
            add(&j.relation, &mut out);
        }
    }
    out
}

/// Flink's name for an unaliased item at `ordinal`, and whether DataFusion already
/// names it so (then no alias is written, which keeps a column's table qualifier).
fn derived(e: &Expr, ordinal: usize, relations: &HashSet<String>) -> (String, bool) {
    match e {
        Expr::Nested(inner) => derived(inner, ordinal, relations),
        Expr::Identifier(i) => (i.value.clone(), true),
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(last) => {
                // `t.col` is a column; `col.field` and `t.col.field` are nested fields.
                let column = parts.len() == 2 && relations.contains(&parts[0].value);
                (last.value.clone(), column)
            }
            None => (format!("EXPR${ordinal}"), false),
        },
        _ => (format!("EXPR${ordinal}"), false),
    }
}

fn name_select(select: &mut Select) {
    let relations = relations(select);
    let mut used: HashSet<String> = HashSet::new();
    let mut after_star = false;
    for (ordinal, item) in select.projection.iter_mut().enumerate() {
        match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => after_star = true,
            SelectItem::ExprWithAlias { alias, .. } => {
                let unique = uniquify(&alias.value, &mut used);
                if unique != alias.value {
                    alias.value = unique;
                }
            }
            SelectItem::ExprWithAliases { .. } => {}
            SelectItem::UnnamedExpr(e) => {
                let (name, already) = derived(e, ordinal, &relations);
                if after_star && name.starts_with("EXPR$") {
                    continue;
                }
                let unique = uniquify(&name, &mut used);
                if already && unique == name {
                    continue;
                }
                let expr =
                    std::mem::replace(e, Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
                *item = SelectItem::ExprWithAlias {
                    expr,
                    alias: Ident::with_quote('"', unique),
                };
            }
        }
    }
}

/// Gives a planned query whose (leftmost) select list holds `*` Flink's names, which
/// [`name_columns`] could not write before the star's width was known: the star's
/// columns, then the items after it — an unaliased expression there is `EXPR$n`, `n` its
/// position in the expanded list — and a name that repeats an earlier one gets Calcite's
/// suffix (`SELECT *` over a join of two tables with an `id` column gives `id`, `id0`).
/// With more than one star only the repeats are renamed. Errors: DataFusion's, building
/// the renaming projection.
pub fn star_names(
    plan: datafusion::logical_expr::LogicalPlan,
    query: &Query,
) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::logical_expr::{Expr as E, LogicalPlan, Projection};
    let mut body = query.body.as_ref();
    let select = loop {
        match body {
            SetExpr::Select(s) => break s,
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(q) => body = q.body.as_ref(),
            _ => return Ok(plan),
        }
    };
    let is_star = |i: &SelectItem| {
        matches!(
            i,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    };
    let stars = select.projection.iter().filter(|i| is_star(i)).count();
    if stars == 0 {
        return Ok(plan);
    }
    let schema = plan.schema().clone();
    let mut names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if stars == 1 {
        let relations = relations(select);
        let at = select.projection.iter().position(is_star).unwrap_or(0);
        let after = select.projection.len() - at - 1;
        let width = names.len().saturating_sub(at + after);
        for (k, item) in select.projection[at + 1..].iter().enumerate() {
            let ordinal = at + width + k;
            if let (SelectItem::UnnamedExpr(e), Some(name)) = (item, names.get_mut(ordinal)) {
                let (flink, _) = derived(e, ordinal, &relations);
                if flink.starts_with("EXPR$") {
                    *name = flink;
                }
            }
        }
    }
    let mut used = HashSet::new();
    let names: Vec<String> = names.iter().map(|n| uniquify(n, &mut used)).collect();
    if names
        .iter()
        .zip(schema.fields())
        .all(|(n, f)| n == f.name())
    {
        return Ok(plan);
    }
    let exprs = schema
        .iter()
        .zip(names)
        .map(|((q, f), name)| {
            let col = E::Column(datafusion::common::Column::new(q.cloned(), f.name()));
            if name == *f.name() {
                col
            } else {
                col.alias(name)
            }
        })
        .collect::<Vec<_>>();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        std::sync::Arc::new(plan),
    )?))
}

/// `name`, or `name` with the smallest suffix `0`, `1`, … not in `used`; the result is
/// added to `used` (Calcite's `SqlValidatorUtil.uniquify`).
fn uniquify(name: &str, used: &mut HashSet<String>) -> String {
    if used.insert(name.to_string()) {
        return name.to_string();
    }
    let mut n = 0usize;
    loop {
        let candidate = format!("{name}{n}");
        if used.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn named(sql: &str) -> String {
        let mut q = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_query())
            .expect("test SQL parses");
        name_columns(&mut q);
        q.to_string()
    }

    #[test]
    fn nested_fields_take_their_last_name() {
        assert_eq!(
            named("SELECT bid.auction, bid.price, dateTime FROM datagen"),
            "SELECT bid.auction AS \"auction\", bid.price AS \"price\", dateTime FROM datagen"
        );
    }

    #[test]
    fn table_qualified_columns_keep_their_qualifier() {
        assert_eq!(
            named("SELECT B.price, t.person.id FROM B, datagen AS t"),
            "SELECT B.price, t.person.id AS \"id\" FROM B, datagen AS t"
        );
    }

    #[test]
    fn other_expressions_are_expr_n_by_position() {
        assert_eq!(
            named("SELECT a, COUNT(*), a + 1 AS b, (c) FROM t GROUP BY a"),
            "SELECT a, COUNT(*) AS \"EXPR$1\", a + 1 AS b, (c) FROM t GROUP BY a"
        );
    }

    #[test]
    fn repeated_names_get_a_suffix() {
        assert_eq!(
            named("SELECT a.id, b.id, b.id AS id FROM a JOIN b ON a.x = b.x"),
            "SELECT a.id, b.id AS \"id0\", b.id AS id1 FROM a JOIN b ON a.x = b.x"
        );
    }

    #[test]
    fn subqueries_and_unions_are_named_too() {
        assert_eq!(
            named("SELECT x FROM (SELECT r.f AS x, SUM(y) FROM t) UNION ALL SELECT 1, 2"),
            "SELECT x FROM (SELECT r.f AS x, SUM(y) AS \"EXPR$1\" FROM t) \
             UNION ALL SELECT 1 AS \"EXPR$0\", 2 AS \"EXPR$1\""
        );
    }

    #[test]
    fn items_after_a_star_keep_their_names() {
        assert_eq!(named("SELECT *, a + 1 FROM t"), "SELECT *, a + 1 FROM t");
    }
}
