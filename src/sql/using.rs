//! `JOIN … USING (k)` as Flink (Calcite) reads it: the query sees one `k`, the common
//! column, `COALESCE(l.k, r.k)` — so a `FULL` or `RIGHT` join's row that met nothing on the
//! left still has its key — and `SELECT *` lists the common columns first, then the left
//! side's other columns, then the right's (Calcite's `SqlValidatorImpl` expands the star
//! so). DataFusion keeps the left side's `k` in its place, NULL for such a row.
//!
//! The rewrite, before planning: `USING (k)` becomes `ON l.k = r.k`; in that select, `*`
//! becomes `COALESCE(l.k, r.k) AS k, l.* EXCLUDE (k), r.* EXCLUDE (k)` and an unqualified
//! `k` becomes `COALESCE(l.k, r.k)` (named `k` in the select list). Only a FROM clause of
//! two named relations joined `USING` is rewritten (in any select: nested, or a branch of a
//! UNION); three or more relations keep DataFusion's reading. A qualified `l.k` keeps its
//! side.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, ExcludeSelectItem, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, JoinConstraint, JoinOperator, ObjectName,
    Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, TableFactor, VisitMut,
    VisitorMut, WildcardAdditionalOptions,
};

/// Rewrites every select of `query` (nested ones too) whose FROM joins two named relations
/// `USING` (see the module's docs).
pub fn rewrite(query: &mut Query) {
    let _ = query.visit(&mut Using);
}

struct Using;

impl VisitorMut for Using {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        // The query's own ORDER BY sees the keys of a lone select.
        if let SetExpr::Select(select) = query.body.as_mut() {
            if let Some(cols) = rewrite_select(select)
                && let Some(order) = query.order_by.as_mut()
                && let datafusion::sql::sqlparser::ast::OrderByKind::Expressions(exprs) =
                    &mut order.kind
            {
                for e in exprs {
                    replace_keys(&mut e.expr, &cols);
                }
            }
        } else {
            set_operands(query.body.as_mut());
        }
        ControlFlow::Continue(())
    }
}

/// The selects of a UNION, INTERSECT or EXCEPT, each rewritten (a parenthesized query is
/// a query of its own, which the visitor reaches).
fn set_operands(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            rewrite_select(select);
        }
        SetExpr::SetOperation { left, right, .. } => {
            set_operands(left);
            set_operands(right);
        }
        _ => {}
    }
}

/// The name a relation goes by: its alias, else (a table) its name's last part; `None`
/// for a relation without either.
pub(crate) fn relation_name(t: &TableFactor) -> Option<Ident> {
    match t {
        TableFactor::Table { name, alias, .. } => match alias {
            Some(a) => Some(a.name.clone()),
            None => name.0.last().and_then(|p| p.as_ident()).cloned(),
        },
        TableFactor::Derived { alias, .. }
        | TableFactor::UNNEST { alias, .. }
        | TableFactor::Function { alias, .. }
        | TableFactor::TableFunction { alias, .. }
        | TableFactor::NestedJoin { alias, .. } => alias.as_ref().map(|a| a.name.clone()),
        _ => None,
    }
}

/// A common column: its name and `COALESCE(l.k, r.k)`.
struct Key {
    name: Ident,
    coalesced: Expr,
}

/// Rewrites one select; the common columns when it did.
fn rewrite_select(select: &mut Select) -> Option<Vec<Key>> {
    let [from] = select.from.as_mut_slice() else {
        return None;
    };
    let [join] = from.joins.as_mut_slice() else {
        return None;
    };
    let left = relation_name(&from.relation)?;
    let right = relation_name(&join.relation)?;
    let constraint = match &mut join.join_operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c) => c,
        _ => return None,
    };
    let JoinConstraint::Using(names) = constraint else {
        return None;
    };
    let names: Vec<Ident> = names
        .iter()
        .map(|n| n.0.last().and_then(|p| p.as_ident()).cloned())
        .collect::<Option<_>>()?;
    let side = |rel: &Ident, k: &Ident| Expr::CompoundIdentifier(vec![rel.clone(), k.clone()]);
    let on = names
        .iter()
        .map(|k| Expr::BinaryOp {
            left: Box::new(side(&left, k)),
            op: BinaryOperator::Eq,
            right: Box::new(side(&right, k)),
        })
        .reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        })?;
    *constraint = JoinConstraint::On(on);
    let keys: Vec<Key> = names
        .iter()
        .map(|k| Key {
            name: k.clone(),
            coalesced: coalesce(side(&left, k), side(&right, k)),
        })
        .collect();
    let mut items = Vec::with_capacity(select.projection.len());
    for item in std::mem::take(&mut select.projection) {
        match item {
            SelectItem::Wildcard(opts) if plain(&opts) => {
                for k in &keys {
                    items.push(SelectItem::ExprWithAlias {
                        expr: k.coalesced.clone(),
                        alias: k.name.clone(),
                    });
                }
                for rel in [&left, &right] {
                    let mut opts = opts.clone();
                    opts.opt_exclude = Some(ExcludeSelectItem::Multiple(
                        names
                            .iter()
                            .map(|k| ObjectName::from(vec![k.clone()]))
                            .collect(),
                    ));
                    items.push(SelectItem::QualifiedWildcard(
                        SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(vec![
                            rel.clone(),
                        ])),
                        opts,
                    ));
                }
            }
            SelectItem::UnnamedExpr(Expr::Identifier(id))
                if keys.iter().any(|k| k.name.value == id.value) =>
            {
                let k = keys.iter().find(|k| k.name.value == id.value)?;
                items.push(SelectItem::ExprWithAlias {
                    expr: k.coalesced.clone(),
                    alias: id,
                });
            }
            SelectItem::UnnamedExpr(mut e) => {
                replace_keys(&mut e, &keys);
                items.push(SelectItem::UnnamedExpr(e));
            }
            SelectItem::ExprWithAlias { mut expr, alias } => {
                replace_keys(&mut expr, &keys);
                items.push(SelectItem::ExprWithAlias { expr, alias });
            }
            other => items.push(other),
        }
    }
    select.projection = items;
    if let Some(e) = select.selection.as_mut() {
        replace_keys(e, &keys);
    }
    if let Some(e) = select.having.as_mut() {
        replace_keys(e, &keys);
    }
    if let datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(exprs, _) =
        &mut select.group_by
    {
        for e in exprs {
            replace_keys(e, &keys);
        }
    }
    Some(keys)
}

/// A `*` with no EXCLUDE, EXCEPT, REPLACE or other option.
fn plain(o: &WildcardAdditionalOptions) -> bool {
    o.opt_ilike.is_none()
        && o.opt_exclude.is_none()
        && o.opt_except.is_none()
        && o.opt_replace.is_none()
        && o.opt_rename.is_none()
        && o.opt_alias.is_none()
}

fn coalesce(a: Expr, b: Expr) -> Expr {
    let arg = |e: Expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(e));
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new("COALESCE")]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![arg(a), arg(b)],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// Every unqualified `k` of a common column in `e` (not inside a subquery, which has
/// its own scope) as `COALESCE(l.k, r.k)`.
fn replace_keys(e: &mut Expr, keys: &[Key]) {
    /// The keys, and how many queries deep the visit is.
    struct Replace<'a>(&'a [Key], usize);
    impl VisitorMut for Replace<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
            self.1 += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
            self.1 -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.1 == 0
                && let Expr::Identifier(id) = e
                && let Some(k) = self.0.iter().find(|k| k.name.value == id.value)
            {
                *e = k.coalesced.clone();
            }
            ControlFlow::Continue(())
        }
    }
    let _ = e.visit(&mut Replace(keys, 0));
}
