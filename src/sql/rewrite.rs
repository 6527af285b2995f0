//! Flink's built-in functions that DataFusion spells or defines differently, rewritten into
//! DataFusion expressions before planning.
//!
//! Each rule keeps Flink's documented semantics ("System (Built-in) Functions" of Flink's
//! Table API & SQL docs): `CONCAT`, `GREATEST` and `LEAST` are NULL when an argument is;
//! `LOG(x)` is the natural logarithm; `REGEXP_REPLACE` replaces every match; `LEFT`/`RIGHT`
//! of a negative length are `''`; `CHR` takes its code modulo 256; `ARRAY_POSITION` is 0
//! when absent and `ARRAY_REMOVE` removes every match; `FIRST_VALUE`/`LAST_VALUE` skip
//! NULLs (Flink's `FirstValueAggFunction`); `DAYOFWEEK`/`EXTRACT(DOW …)` count Sunday as 1;
//! `SHA2`/`SHA224`/`SHA256`… return lower-case hex strings. Functions that need code of their
//! own live in [`super::functions`].
//!
//! The rewrite works on the parsed statement, so a rewritten call's arguments keep their
//! positions in the script (an error in an argument of a query's call points at it; in a
//! computed column, positions are approximate once a call is rewritten). It
//! runs once per statement (from the parser) and once per computed column or watermark
//! expression (from the catalog).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CeilFloorKind, DateTimeField, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, NullTreatment, ObjectName, Query, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrites every Flink function call in `query` (and in queries nested in it).
pub fn rewrite_query(query: &mut Query) {
    let _ = query.visit(&mut Rewriter);
    nested_unnest_fields(query);
}

/// The precision of a `TIMESTAMP(p)` or `TIMESTAMP_LTZ(p)` type that Arrow has no unit for
/// (1, 2, 4, 5, 7 or 8).
fn odd_timestamp_precision(t: &datafusion::sql::sqlparser::ast::DataType) -> Option<u64> {
    use datafusion::sql::sqlparser::ast::{DataType as T, TimezoneInfo};
    let p = match t {
        T::Timestamp(Some(p), TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => *p,
        T::Custom(name, args) if args.len() == 1 => {
            let [part] = name.0.as_slice() else {
                return None;
            };
            let ident = part.as_ident()?;
            if ident.quote_style.is_some() || !ident.value.eq_ignore_ascii_case("TIMESTAMP_LTZ") {
                return None;
            }
            args[0].trim().parse().ok()?
        }
        _ => return None,
    };
    matches!(p, 1 | 2 | 4 | 5 | 7 | 8).then_some(p)
}

/// Rewrites every Flink function call in `expr`.
pub fn rewrite_expr(expr: &mut Expr) {
    let _ = expr.visit(&mut Rewriter);
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = ();

    /// `FETCH FIRST n ROWS ONLY` (standard SQL, which Flink takes as `LIMIT n`) is read as
    /// that `LIMIT`; DataFusion plans no FETCH. `WITH TIES` and `PERCENT` stay, and are
    /// refused.
    fn pre_visit_query(
        &mut self,
        q: &mut datafusion::sql::sqlparser::ast::Query,
    ) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{Fetch, LimitClause};
        if let Some(Fetch {
            with_ties: false,
            percent: false,
            quantity,
        }) = &q.fetch
        {
            let quantity = quantity.clone().unwrap_or(Expr::value(
                datafusion::sql::sqlparser::ast::Value::Number("1".into(), false),
            ));
            match &mut q.limit_clause {
                None => {
                    q.limit_clause = Some(LimitClause::LimitOffset {
                        limit: Some(quantity),
                        offset: None,
                        limit_by: vec![],
                    });
                    q.fetch = None;
                }
                Some(LimitClause::LimitOffset {
                    limit: l @ None, ..
                }) => {
                    *l = Some(quantity);
                    q.fetch = None;
                }
                _ => {}
            }
        }
        row_in_subquery_conditions(&mut q.body);
        ControlFlow::Continue(())
    }

    /// Forms whose parts must be seen before those parts are rewritten: OVERLAPS, whose
    /// operands are pairs, not rows.
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Some(new) = overlaps(e).or_else(|| row_comparison(e)) {
            *e = new;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Some(new) = rewrite(e) {
            *e = new;
        }
        ControlFlow::Continue(())
    }

    /// `UNNEST(a) WITH ORDINALITY AS t(x, n)` (Flink 1.19): the arrays, then each element's
    /// 1-based position as an INT — unnested beside them as an array of positions
    /// `1..=CARDINALITY(a)` (of the longest array when there are several, the shorter
    /// padded with NULL, as UNNEST of several arrays pads). A NULL or empty array gives no
    /// positions, as it gives no elements.
    fn post_visit_table_factor(
        &mut self,
        t: &mut datafusion::sql::sqlparser::ast::TableFactor,
    ) -> ControlFlow<()> {
        // `UNNEST(e) AS t (c1, …, cn)`, n > 1: a map's keys and values, or an array of rows'
        // fields, side by side (see `super::unnest_fields`).
        if let datafusion::sql::sqlparser::ast::TableFactor::UNNEST {
            array_exprs,
            with_ordinality,
            alias: Some(alias),
            ..
        } = t
            && array_exprs.len() == 1
        {
            let names =
                alias.columns.len() - usize::from(*with_ordinality && !alias.columns.is_empty());
            if names > 1 {
                let e = array_exprs[0].clone();
                *array_exprs = (1..=names)
                    .filter_map(|i| {
                        template(
                            &format!("{}(__0, {i}, {names})", super::unnest_fields::NAME),
                            std::slice::from_ref(&e),
                        )
                    })
                    .collect();
            }
        }
        if let datafusion::sql::sqlparser::ast::TableFactor::UNNEST {
            array_exprs,
            with_ordinality,
            ..
        } = t
            && *with_ordinality
            && !array_exprs.is_empty()
        {
            let lengths = slots(0..array_exprs.len(), ") AS BIGINT)", ", CAST(array_length(");
            let longest = if array_exprs.len() == 1 {
                format!("CAST(array_length({lengths}")
            } else {
                format!("GREATEST(CAST(array_length({lengths})")
            };
            if let Some(positions) = template(
                &format!("CAST(range(1, {longest} + 1) AS ARRAY<INT>)"),
                array_exprs,
            ) {
                array_exprs.push(positions);
                *with_ordinality = false;
            }
        }
        ControlFlow::Continue(())
    }
}

/// `… CROSS JOIN UNNEST(e.bid.tags)`: a nested field of the left side, which DataFusion
/// cannot take as an outer reference ("Nested identifiers are not yet supported"), is
/// read with `get_field` from the left side's column instead (`get_field(e.bid, 'tags')`),
/// so only the column is referred to across the join; `e.p.m['k']` and `e.p.arr[1]` keep
/// their subscripts after it. The first part is a table when it names a relation of the
/// statement (a table, view, derived table, UNNEST or join alias, as Calcite resolves a
/// qualifier first), else the column.
fn nested_unnest_fields(query: &mut Query) {
    use datafusion::sql::sqlparser::ast::{AccessExpr, TableFactor};
    struct Names(Vec<String>);
    impl VisitorMut for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
            let name = match t {
                TableFactor::Table { alias: Some(a), .. }
                | TableFactor::Derived { alias: Some(a), .. }
                | TableFactor::TableFunction { alias: Some(a), .. }
                | TableFactor::Function { alias: Some(a), .. }
                | TableFactor::UNNEST { alias: Some(a), .. }
                | TableFactor::NestedJoin { alias: Some(a), .. } => Some(a.name.value.clone()),
                TableFactor::Table { name, .. } => name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.clone()),
                _ => None,
            };
            self.0.extend(name);
            ControlFlow::Continue(())
        }
    }
    /// `parts` (`e.bid.tags`, or `bid.tags`) as `get_field` calls on the column; None when
    /// they name only a column.
    fn fields_of(parts: &[Ident], names: &[String]) -> Option<Expr> {
        let first = &parts.first()?.value;
        let column = if names.iter().any(|n| n == first) {
            2
        } else {
            1
        };
        if parts.len() <= column {
            return None;
        }
        let mut out = if column == 2 {
            Expr::CompoundIdentifier(parts[..2].to_vec())
        } else {
            Expr::Identifier(parts[0].clone())
        };
        for field in &parts[column..] {
            let name = field.value.replace('\'', "''");
            out = template(&format!("get_field(__0, '{name}')"), &[out])?;
        }
        Some(out)
    }
    struct Fields<'a>(&'a [String]);
    impl VisitorMut for Fields<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            match e {
                Expr::CompoundIdentifier(parts) => {
                    if let Some(out) = fields_of(parts, self.0) {
                        *e = out;
                    }
                }
                Expr::CompoundFieldAccess { root, access_chain } => {
                    let mut parts = match root.as_ref() {
                        Expr::Identifier(i) => vec![i.clone()],
                        Expr::CompoundIdentifier(p) => p.clone(),
                        _ => return ControlFlow::Continue(()),
                    };
                    let dots = access_chain
                        .iter()
                        .map_while(|a| match a {
                            AccessExpr::Dot(Expr::Identifier(i)) => Some(i.clone()),
                            _ => None,
                        })
                        .collect::<Vec<_>>();
                    let k = dots.len();
                    parts.extend(dots);
                    if let Some(out) = fields_of(&parts, self.0) {
                        let rest = access_chain[k..].to_vec();
                        *e = if rest.is_empty() {
                            out
                        } else {
                            Expr::CompoundFieldAccess {
                                root: Box::new(out),
                                access_chain: rest,
                            }
                        };
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    struct Unnests<'a>(&'a [String]);
    impl VisitorMut for Unnests<'_> {
        type Break = ();
        fn post_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::UNNEST { array_exprs, .. } = t {
                for a in array_exprs.iter_mut() {
                    let _ = a.visit(&mut Fields(self.0));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names(vec![]);
    let _ = query.visit(&mut names);
    let _ = query.visit(&mut Unnests(&names.0));
}

/// Whether `e` is a `TIMESTAMP` literal of precision 0 (no fraction written).
fn second_literal(e: &Expr) -> bool {
    matches!(e, Expr::TypedString(t) if matches!(
        t.data_type,
        datafusion::sql::sqlparser::ast::DataType::Timestamp(
            Some(0),
            datafusion::sql::sqlparser::ast::TimezoneInfo::None
        )
    ))
}

/// `sql` parsed as an expression, its identifiers `__0`, `__1`, … replaced by `args`.
fn template(sql: &str, args: &[Expr]) -> Option<Expr> {
    let mut e = Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()?;
    struct Fill<'a>(&'a [Expr]);
    impl VisitorMut for Fill<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            // The template's own calls were never written by the user: their spans (in
            // the template's text) go, so no error is placed by them.
            if let Expr::Function(f) = e {
                for part in f.name.0.iter_mut() {
                    if let datafusion::sql::sqlparser::ast::ObjectNamePart::Identifier(i) = part {
                        i.span = datafusion::sql::sqlparser::tokenizer::Span::empty();
                    }
                }
            }
            if let Expr::Identifier(i) = e
                && let Some(n) = i.value.strip_prefix("__")
                && let Ok(n) = n.parse::<usize>()
                && let Some(a) = self.0.get(n)
            {
                *e = Expr::Nested(Box::new(a.clone()));
            }
            ControlFlow::Continue(())
        }
    }
    let _ = e.visit(&mut Fill(args));
    Some(e)
}

/// The placeholders `__i` of a template for each `i` of `ixs`, each followed by `suffix`
/// (`" IS NULL"`), joined by `sep`.
fn slots(ixs: impl Iterator<Item = usize>, suffix: &str, sep: &str) -> String {
    ixs.map(|i| format!("__{i}{suffix}"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// The plain positional arguments of a call, or None when it has others (named, `*`, …).
fn plain_args(f: &Function) -> Option<Vec<Expr>> {
    match &f.args {
        FunctionArguments::None => Some(vec![]),
        FunctionArguments::List(l) if l.duplicate_treatment.is_none() && l.clauses.is_empty() => l
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// A time unit written as a bare word (`HOUR`) or a string (`'HOUR'`), upper-cased.
fn unit(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.to_ascii_uppercase()),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.to_ascii_uppercase()),
            _ => None,
        },
        _ => None,
    }
}

/// Seconds in a fixed-length unit.
fn unit_seconds(u: &str) -> Option<i64> {
    Some(match u {
        "SECOND" => 1,
        "MINUTE" => 60,
        "HOUR" => 3600,
        "DAY" => 86_400,
        "WEEK" => 604_800,
        _ => return None,
    })
}

/// Months in a calendar unit.
fn unit_months(u: &str) -> Option<i64> {
    Some(match u {
        "MONTH" => 1,
        "QUARTER" => 3,
        "YEAR" => 12,
        _ => return None,
    })
}

fn rename(f: &Function, name: &str) -> Expr {
    let mut f = f.clone();
    f.name = renamed(&f.name, name);
    Expr::Function(f)
}

/// `name` where `was` was written (its span kept, so errors about the call point at it).
fn renamed(was: &ObjectName, name: &str) -> ObjectName {
    let span = was
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.span)
        .unwrap_or(datafusion::sql::sqlparser::tokenizer::Span::empty());
    ObjectName::from(vec![Ident::with_span(span, name)])
}

/// The arguments of `e` when it is a plain call of `name` (as [`super::syntax`] writes
/// them).
fn call_of(e: &Expr, name: &str) -> Option<Vec<Expr>> {
    match e {
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case(name) => plain_args(f),
        _ => None,
    }
}

/// A new id for a call site of a seeded random function: each `RAND(seed)` of a query has
/// its own sequence, as each has its own `java.util.Random` in Flink.
fn rand_site() -> i64 {
    static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `(start, end or length) OVERLAPS (start, end or length)`, Calcite's rule — each pair
/// ordered, then each ends no earlier than the other starts; None for another expression.
/// Run before the pairs' own rewrite (a pair is a row constructor otherwise).
fn overlaps(e: &Expr) -> Option<Expr> {
    match e {
        Expr::BinaryOp {
            left,
            op: datafusion::sql::sqlparser::ast::BinaryOperator::Overlaps,
            right,
        } => {
            let pair = |e: &Expr| -> Option<(Expr, Expr)> {
                let Expr::Tuple(v) = e else { return None };
                let [s, x] = v.as_slice() else { return None };
                // A length: an interval literal, or one scaled (`INTERVAL '1' SECOND * 2`).
                let end = if is_interval(x) {
                    template("__0 + __1", &[s.clone(), x.clone()])?
                } else {
                    x.clone()
                };
                Some((s.clone(), end))
            };
            let ((s1, e1), (s2, e2)) = (pair(left)?, pair(right)?);
            // Ordered with CASE, not GREATEST/LEAST (which skip NULLs): a NULL bound makes
            // the answer NULL, as in Calcite's `convertOverlaps`.
            template(
                "(CASE WHEN __0 <= __1 THEN __1 ELSE __0 END) >= (CASE WHEN __2 <= __3 THEN __2 ELSE __3 END) \
                 AND (CASE WHEN __2 <= __3 THEN __3 ELSE __2 END) >= (CASE WHEN __0 <= __1 THEN __0 ELSE __1 END)",
                &[s1, e1, s2, e2],
            )
        }
        _ => None,
    }
}

/// `e` without the parentheses around it.
fn unnested(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => unnested(inner),
        e => e,
    }
}

/// `left op right`.
fn binary(left: Expr, op: BinaryOperator, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }
}

/// A row compared with rows, field by field, as Calcite expands it
/// (`SqlToRelConverter`'s row `=` and `IN`): `(a, b) = (1, 2)` is `a = 1 AND b = 2`, `<>` its
/// negation, and `(a, b) IN ((1, 2), (3, 4))` the OR of such equalities, so a NULL field
/// makes the answer NULL where no row is plainly unequal (comparing whole ROW values gave
/// FALSE). None for another expression, or rows of different lengths. Run before the rows'
/// own rewrite (each is a row constructor otherwise).
fn row_comparison(e: &Expr) -> Option<Expr> {
    fn fields(e: &Expr) -> Option<&[Expr]> {
        match unnested(e) {
            Expr::Tuple(items) => Some(items),
            _ => None,
        }
    }
    let not = |e: Expr| Expr::UnaryOp {
        op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
        expr: Box::new(Expr::Nested(Box::new(e))),
    };
    // `l1 = r1 AND l2 = r2 …`, in parentheses.
    let equal = |l: &[Expr], r: &[Expr]| -> Option<Expr> {
        if l.len() != r.len() || l.is_empty() {
            return None;
        }
        l.iter()
            .zip(r)
            .map(|(a, b)| binary(a.clone(), BinaryOperator::Eq, b.clone()))
            .reduce(|a, b| binary(a, BinaryOperator::And, b))
            .map(|e| Expr::Nested(Box::new(e)))
    };
    match e {
        // `NOT (row IN (…))` as `row NOT IN (…)` (see the CASE below).
        Expr::UnaryOp {
            op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
            expr,
        } => {
            let Expr::InList {
                expr,
                list,
                negated,
            } = unnested(expr)
            else {
                return None;
            };
            fields(expr)?;
            row_comparison(&Expr::InList {
                expr: expr.clone(),
                list: list.clone(),
                negated: !negated,
            })
        }
        Expr::BinaryOp {
            left,
            op: op @ (BinaryOperator::Eq | BinaryOperator::NotEq),
            right,
        } => {
            let eq = equal(fields(left)?, fields(right)?)?;
            Some(match op {
                BinaryOperator::Eq => eq,
                _ => not(eq),
            })
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let l = fields(expr)?;
            // A balanced tree of ORs, not a chain as deep as the list is long, so that a
            // list of thousands of rows does not run the planner's recursion out of stack.
            fn balanced(mut terms: Vec<Expr>) -> Option<Expr> {
                while terms.len() > 1 {
                    let mut next = Vec::with_capacity(terms.len().div_ceil(2));
                    let mut it = terms.into_iter();
                    while let Some(a) = it.next() {
                        next.push(match it.next() {
                            Some(b) => binary(a, BinaryOperator::Or, b),
                            None => a,
                        });
                    }
                    terms = next;
                }
                terms.pop()
            }
            let any = balanced(
                list.iter()
                    .map(|r| equal(l, fields(r)?))
                    .collect::<Option<Vec<_>>>()?,
            )?;
            let any = Expr::Nested(Box::new(any));
            // NOT IN as `CASE any WHEN TRUE THEN FALSE WHEN FALSE THEN TRUE END` (NULL stays
            // NULL), not `NOT (…)`: DataFusion's simplifier pushes a NOT into the ORs and
            // flattens them into one chain of ANDs, whose depth overflowed the stack for a
            // list of some thousand rows.
            Some(match negated {
                false => any,
                true => template(
                    "CASE __0 WHEN TRUE THEN FALSE WHEN FALSE THEN TRUE END",
                    &[any],
                )?,
            })
        }
        _ => None,
    }
}

/// `(a, b) [NOT] IN (SELECT x, y …)`, a row in a sub-query's rows (Flink takes it;
/// DataFusion takes one column), where it is a condition of a `WHERE` (a whole `AND` term of
/// it), as SQL reads it there, field by field: `IN` keeps a row when a sub-query row equals
/// it in every field (`EXISTS`); `NOT IN` when no sub-query row's equality is TRUE or NULL
/// (`NOT EXISTS … IS NOT FALSE`), so a row that compares as NULL keeps it out, as in SQL —
/// `NOT (row IN …)` too. In a `WHERE` only TRUE keeps a row, so the answers agree; elsewhere
/// (a `SELECT` list, under `OR`), where NULL and FALSE differ, the form is left to
/// DataFusion, which refuses it. The sub-query becomes a derived table (so it may not name
/// the outer query's columns: a correlated one is refused by DataFusion).
fn row_in_subquery_conditions(body: &mut datafusion::sql::sqlparser::ast::SetExpr) {
    use datafusion::sql::sqlparser::ast::SetExpr;
    match body {
        SetExpr::Select(select) => {
            if let Some(w) = select.selection.as_mut() {
                in_conjuncts(w);
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            row_in_subquery_conditions(left);
            row_in_subquery_conditions(right);
        }
        _ => {}
    }
}

/// Each `AND` term of `e` that is a row in a sub-query's rows, replaced (see
/// [`row_in_subquery_conditions`]).
fn in_conjuncts(e: &mut Expr) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            in_conjuncts(left);
            in_conjuncts(right);
        }
        Expr::Nested(inner) => in_conjuncts(inner),
        other => {
            if let Some(new) = row_in_subquery(other) {
                *other = new;
            }
        }
    }
}

/// One condition `(a, b) [NOT] IN (SELECT …)` as `[NOT] EXISTS`; None for another
/// expression.
fn row_in_subquery(e: &Expr) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::{Query, SetExpr};
    let (row, subquery, negated) = match e {
        Expr::InSubquery {
            expr,
            subquery,
            negated,
        } => (expr, subquery, *negated),
        Expr::UnaryOp {
            op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
            expr,
        } => match unnested(expr) {
            Expr::InSubquery {
                expr,
                subquery,
                negated,
            } => (expr, subquery, !*negated),
            _ => return None,
        },
        _ => return None,
    };
    let Expr::Tuple(fields) = unnested(row) else {
        return None;
    };
    if fields.len() < 2 {
        return None;
    }
    // `x1 = a1 AND x2 = a2 …` (or `(…) IS NOT FALSE` for NOT IN).
    let condition = |columns: Vec<Expr>| -> Expr {
        let all = columns
            .into_iter()
            .zip(fields.iter())
            .map(|(c, f)| binary(c, BinaryOperator::Eq, Expr::Nested(Box::new(f.clone()))))
            .reduce(|a, b| binary(a, BinaryOperator::And, b))
            .unwrap_or(Expr::value(Value::Boolean(true)));
        match negated {
            false => all,
            true => Expr::IsNotFalse(Box::new(Expr::Nested(Box::new(all)))),
        }
    };
    let exists = |q: Query| Expr::Exists {
        subquery: Box::new(q),
        negated,
    };
    // The sub-query as a derived table whose columns are named apart from the outer query's,
    // so the row's fields (the outer query's columns) are not read as the sub-query's.
    let names = (0..fields.len())
        .map(|i| format!("__weir_in_c{i}"))
        .collect::<Vec<_>>();
    let columns = names
        .iter()
        .map(|n| Expr::CompoundIdentifier(vec![Ident::new("__weir_in"), Ident::new(n)]))
        .collect();
    let sql = format!(
        "SELECT 1 FROM __weir_in_rows AS __weir_in ({})",
        names.join(", ")
    );
    let mut q = *Parser::new(&GenericDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_query())
        .ok()?;
    if let SetExpr::Select(sel) = q.body.as_mut() {
        sel.selection = Some(condition(columns));
        for t in &mut sel.from {
            if let datafusion::sql::sqlparser::ast::TableFactor::Table { alias, .. } =
                &mut t.relation
            {
                t.relation = datafusion::sql::sqlparser::ast::TableFactor::Derived {
                    lateral: false,
                    subquery: subquery.clone(),
                    alias: alias.take(),
                    sample: None,
                };
            }
        }
    }
    Some(exists(q))
}

/// Whether `e` is an interval literal (in parentheses too) or one scaled by a number:
/// `INTERVAL '1' SECOND * 2` as written, or the `weir_interval_*` call [`rewrite`] makes of
/// it (`n * INTERVAL '1' DAY / 2` is rewritten from the inside out).
fn is_interval(e: &Expr) -> bool {
    match e {
        Expr::Nested(inner) => is_interval(inner),
        Expr::Interval(_) => true,
        Expr::Function(f) => f.name.to_string().starts_with("weir_interval_"),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Multiply | BinaryOperator::Divide,
            right,
        } => is_interval(left) || is_interval(right),
        _ => false,
    }
}

/// Flink's row constructor `ROW(v1, v2, …)` or `(v1, v2, …)`: a ROW whose fields are named
/// `EXPR$0`, `EXPR$1`, … (Calcite's `SqlRowOperator`, `SqlUtil.deriveAliasFromOrdinal`);
/// DataFusion would name them `c0`, `c1`.
fn row_constructor(items: &[Expr]) -> Option<Expr> {
    if items.is_empty() {
        return None;
    }
    let fields = (0..items.len())
        .map(|i| format!("'EXPR${i}', __{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    template(&format!("named_struct({fields})"), items)
}

fn rewrite(e: &Expr) -> Option<Expr> {
    match e {
        Expr::Function(f) => rewrite_call(f),
        // A field of a value that is not a column: `items[2].qty`, `(CAST(… AS ROW<…>)).x`
        // (Calcite's DOT on any ROW expression); DataFusion takes `.field` only after a
        // column name.
        Expr::CompoundFieldAccess { root, access_chain } => field_after_value(root, access_chain),
        Expr::Tuple(items) => row_constructor(items),
        // `SUBSTRING(s FROM pos FOR len)`, `SUBSTR(s, pos, len)`: Flink's rule
        // (`super::functions::Substring`); DataFusion plans the syntax with its own
        // function, whose zero and negative positions differ.
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let from = substring_from
                .as_deref()
                .cloned()
                .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false)));
            let mut args = vec![expr.as_ref().clone(), from];
            args.extend(substring_for.as_deref().cloned());
            let list = slots(0..args.len(), "", ", ");
            template(
                &format!("{}({list})", super::functions::Substring::NAME),
                &args,
            )
        }
        // An interval times or divided by a number (`INTERVAL '10' MINUTE * 2`, `3 *
        // INTERVAL '1' DAY`, `INTERVAL '1' HOUR / 4`), which DataFusion's arithmetic
        // refuses: Flink's scaling of the interval's months or milliseconds (see
        // `FlinkFn::IntervalTimes`). An interval is known here by its literal (a column
        // or other expression of an interval type is not scaled).
        Expr::BinaryOp { left, op, right }
            if matches!(op, BinaryOperator::Multiply | BinaryOperator::Divide) =>
        {
            let (interval, number) = match (is_interval(left), is_interval(right)) {
                (true, false) => (left, right),
                (false, true) if matches!(op, BinaryOperator::Multiply) => (right, left),
                _ => return None,
            };
            let f = match op {
                BinaryOperator::Divide => "weir_interval_divide",
                _ => "weir_interval_times",
            };
            template(
                &format!("{f}(__0, __1)"),
                &[interval.as_ref().clone(), number.as_ref().clone()],
            )
        }
        // A Unicode string literal (`U&'\0041'`, Calcite's, as Flink reads it): its text,
        // whose escapes the parser has already turned into characters.
        Expr::Value(v) if matches!(&v.value, Value::UnicodeStringLiteral(_)) => {
            let Value::UnicodeStringLiteral(text) = &v.value else {
                return None;
            };
            Some(Expr::value(Value::SingleQuotedString(text.clone())))
        }
        // A literal with an exponent (`1.5E0`) is a DOUBLE; without one (`1.5`), a
        // DECIMAL (the session parses it so, as Flink's literals are).
        // From its text: parsed as a DECIMAL first, 1E200 or 1E-80 would not fit one.
        Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n.contains(['e', 'E'])) => {
            let Value::Number(n, _) = &v.value else {
                return None;
            };
            template(
                "CAST(__0 AS DOUBLE)",
                &[Expr::value(Value::SingleQuotedString(n.clone()))],
            )
        }
        // A `TIMESTAMP` literal has the precision of the fraction written (Calcite's
        // `SqlTimestampLiteral`, as in Flink): `TIMESTAMP '2024-03-10 00:30:00'` is a
        // TIMESTAMP(0), `… 00:30:00.5` a TIMESTAMP(1), held at the next Arrow unit (s, ms,
        // µs, ns); DataFusion would make every one a TIMESTAMP(9).
        Expr::TypedString(t)
            if matches!(
                t.data_type,
                datafusion::sql::sqlparser::ast::DataType::Timestamp(
                    None,
                    datafusion::sql::sqlparser::ast::TimezoneInfo::None
                )
            ) =>
        {
            let text = t.value.clone().into_string()?;
            let digits = text.trim().rsplit_once('.').map_or(0, |(_, f)| {
                f.chars().take_while(char::is_ascii_digit).count()
            });
            let precision = match digits {
                0 => 0,
                1..=3 => 3,
                4..=6 => 6,
                _ => 9,
            };
            let mut t = t.clone();
            t.data_type = datafusion::sql::sqlparser::ast::DataType::Timestamp(
                Some(precision),
                datafusion::sql::sqlparser::ast::TimezoneInfo::None,
            );
            Some(Expr::TypedString(t))
        }
        // A CAST to CHAR(n) pads with spaces to n characters and cuts what is longer, one
        // to VARCHAR(n) cuts (Flink 1.15's cast rules, FLINK-24413); DataFusion keeps the
        // whole string for both.
        Expr::Cast {
            kind,
            expr,
            data_type,
            ..
        } if matches!(
            kind,
            datafusion::sql::sqlparser::ast::CastKind::Cast
                | datafusion::sql::sqlparser::ast::CastKind::TryCast
                | datafusion::sql::sqlparser::ast::CastKind::SafeCast
        ) && matches!(
            data_type,
            datafusion::sql::sqlparser::ast::DataType::Char(_)
                | datafusion::sql::sqlparser::ast::DataType::Character(_)
                | datafusion::sql::sqlparser::ast::DataType::Varchar(Some(_))
                | datafusion::sql::sqlparser::ast::DataType::CharVarying(Some(_))
                | datafusion::sql::sqlparser::ast::DataType::CharacterVarying(Some(_))
        ) =>
        {
            use datafusion::sql::sqlparser::ast::{CharacterLength, DataType as T};
            let (fixed, n) = match data_type {
                // `CHAR` alone is CHAR(1) (Flink's type system; `VARCHAR` alone is STRING).
                T::Char(None) | T::Character(None) => (true, 1),
                T::Char(Some(CharacterLength::IntegerLength { length, .. }))
                | T::Character(Some(CharacterLength::IntegerLength { length, .. })) => {
                    (true, *length)
                }
                T::Varchar(Some(CharacterLength::IntegerLength { length, .. }))
                | T::CharVarying(Some(CharacterLength::IntegerLength { length, .. }))
                | T::CharacterVarying(Some(CharacterLength::IntegerLength { length, .. })) => {
                    (false, *length)
                }
                _ => return None,
            };
            let cast = if matches!(kind, datafusion::sql::sqlparser::ast::CastKind::Cast) {
                "CAST"
            } else {
                "TRY_CAST"
            };
            let f = if fixed { "rpad" } else { "substr" };
            let tail = if fixed {
                format!("{n})")
            } else {
                format!("1, {n})")
            };
            template(
                &format!("{f}({cast}(__0 AS STRING), {tail}"),
                std::slice::from_ref(expr.as_ref()),
            )
        }
        // A CAST to a TIMESTAMP(p) or TIMESTAMP_LTZ(p) of a precision Arrow has no unit for
        // (1, 2, 4, 5, 7, 8) is held at the next unit; Flink's cuts the fraction to p digits
        // (`DateTimeUtils.truncate`), which `weir_cut_fraction` does.
        Expr::Cast {
            kind, data_type, ..
        } if matches!(
            kind,
            datafusion::sql::sqlparser::ast::CastKind::Cast
                | datafusion::sql::sqlparser::ast::CastKind::TryCast
                | datafusion::sql::sqlparser::ast::CastKind::SafeCast
        ) && odd_timestamp_precision(data_type).is_some() =>
        {
            let p = odd_timestamp_precision(data_type)?;
            template(
                &format!("{}(__0, {p})", super::functions::CutFraction::NAME),
                std::slice::from_ref(e),
            )
        }
        // A CAST to TIME(p): a TIME (DataFusion has no precision for it) with its fraction
        // cut to p digits, as Flink's cast to a TIME(p) keeps p of them.
        Expr::Cast {
            kind,
            expr,
            data_type: datafusion::sql::sqlparser::ast::DataType::Time(Some(p), tz),
            ..
        } if matches!(
            kind,
            datafusion::sql::sqlparser::ast::CastKind::Cast
                | datafusion::sql::sqlparser::ast::CastKind::TryCast
                | datafusion::sql::sqlparser::ast::CastKind::SafeCast
        ) && *p <= 9
            && matches!(tz, datafusion::sql::sqlparser::ast::TimezoneInfo::None) =>
        {
            let cast = match kind {
                datafusion::sql::sqlparser::ast::CastKind::Cast => "CAST",
                _ => "TRY_CAST",
            };
            template(
                &format!(
                    "{}({cast}(__0 AS TIME), {p})",
                    super::functions::CutFraction::NAME
                ),
                std::slice::from_ref(expr.as_ref()),
            )
        }
        // A TIMESTAMP(0) literal moved by an interval keeps the interval's milliseconds, as
        // Flink's documented `TIMESTAMP '2020-01-01 00:00:00' + INTERVAL '10 00:00:00.004'
        // DAY TO SECOND` = `2020-01-11 00:00:00.004`: the literal is a TIMESTAMP(3) there.
        Expr::BinaryOp { left, op, right }
            if matches!(
                op,
                datafusion::sql::sqlparser::ast::BinaryOperator::Plus
                    | datafusion::sql::sqlparser::ast::BinaryOperator::Minus
            ) && (matches!(left.as_ref(), Expr::Interval(_)) && second_literal(right)
                || matches!(right.as_ref(), Expr::Interval(_)) && second_literal(left)) =>
        {
            let to_ms = |e: &Expr| match e {
                Expr::TypedString(t) if second_literal(e) => {
                    let mut t = t.clone();
                    t.data_type = datafusion::sql::sqlparser::ast::DataType::Timestamp(
                        Some(3),
                        datafusion::sql::sqlparser::ast::TimezoneInfo::None,
                    );
                    Expr::TypedString(t)
                }
                other => other.clone(),
            };
            Some(binary(to_ms(left), op.clone(), to_ms(right)))
        }
        // Flink's BYTES (VARBINARY) in a CAST, which DataFusion spells BYTEA.
        Expr::Cast {
            data_type: datafusion::sql::sqlparser::ast::DataType::Bytes(_),
            ..
        } => {
            let mut c = e.clone();
            if let Expr::Cast { data_type, .. } = &mut c {
                *data_type = datafusion::sql::sqlparser::ast::DataType::Bytea;
            }
            Some(c)
        }
        // x BETWEEN SYMMETRIC a AND b (see `super::syntax`).
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let l = call_of(low, "__weir_symmetric")?.pop()?;
            let sql = if *negated {
                "NOT ((__0 BETWEEN __1 AND __2) OR (__0 BETWEEN __2 AND __1))"
            } else {
                "(__0 BETWEEN __1 AND __2) OR (__0 BETWEEN __2 AND __1)"
            };
            template(sql, &[*expr.clone(), l, *high.clone()])
        }
        // x IS [NOT] JSON kind (see `super::syntax`).
        Expr::BinaryOp {
            left,
            op:
                op @ (datafusion::sql::sqlparser::ast::BinaryOperator::Eq
                | datafusion::sql::sqlparser::ast::BinaryOperator::NotEq),
            right,
        } => {
            let kind = call_of(right, "__weir_is_json")?.pop()?;
            let sql = if *op == datafusion::sql::sqlparser::ast::BinaryOperator::Eq {
                "weir_is_json(__0, __1)"
            } else {
                "NOT weir_is_json(__0, __1)"
            };
            template(sql, &[*left.clone(), kind])
        }
        // SIMILAR TO: the whole string, Flink's (Calcite's) SQL regular expressions.
        Expr::SimilarTo {
            negated,
            expr,
            pattern,
            escape_char,
        } => {
            let not = if *negated { "NOT " } else { "" };
            let mut args = vec![*expr.clone(), *pattern.clone()];
            if let Some(e) = escape_char {
                args.push(Expr::value(e.clone()));
            }
            let list = slots(0..args.len(), "", ", ");
            template(&format!("{not}weir_similar({list})"), &args)
        }
        // FLOOR(ts TO HOUR), CEIL(ts TO HOUR).
        Expr::Floor {
            expr,
            field: CeilFloorKind::DateTimeField(u),
        } if *u != DateTimeField::NoDateTime => {
            let u = date_unit(u)?;
            template(&floor_to(u, "__0"), &[*expr.clone()])
        }
        Expr::Ceil {
            expr,
            field: CeilFloorKind::DateTimeField(u),
        } if *u != DateTimeField::NoDateTime => {
            let u = date_unit(u)?;
            let f = floor_to(u, "__0");
            let step = if u == "WEEK" {
                "7 DAY".to_string()
            } else {
                format!("1 {u}")
            };
            template(
                &format!("CASE WHEN {f} = __0 THEN __0 ELSE {f} + INTERVAL '{step}' END"),
                &[*expr.clone()],
            )
        }
        // Flink counts the days of the week from Sunday = 1.
        Expr::Extract {
            field: DateTimeField::Dow,
            expr,
            ..
        } => template(
            "CAST(date_part('dow', __0) AS BIGINT) + 1",
            &[*expr.clone()],
        ),
        _ => None,
    }
}

/// `x` rounded down to a whole `unit`; weeks start on Sunday, as in Flink (its
/// `julianDateFloor`), where DataFusion's `date_trunc` starts them on Monday.
fn floor_to(unit: &str, x: &str) -> String {
    if unit == "WEEK" {
        format!("(date_trunc('week', {x} + INTERVAL '1' DAY) - INTERVAL '1' DAY)")
    } else {
        format!("date_trunc('{unit}', {x})")
    }
}

fn date_unit(u: &DateTimeField) -> Option<&'static str> {
    Some(match u {
        DateTimeField::Year | DateTimeField::Years => "YEAR",
        DateTimeField::Quarter => "QUARTER",
        DateTimeField::Month | DateTimeField::Months => "MONTH",
        DateTimeField::Week(_) | DateTimeField::Weeks => "WEEK",
        DateTimeField::Day | DateTimeField::Days => "DAY",
        DateTimeField::Hour | DateTimeField::Hours => "HOUR",
        DateTimeField::Minute | DateTimeField::Minutes => "MINUTE",
        DateTimeField::Second | DateTimeField::Seconds => "SECOND",
        _ => return None,
    })
}

/// The name, lowercase, a user wrote for a function Weir calls `internal` once rewritten
/// (`string_agg` is `LISTAGG`, `weir_json_arrayagg` and the token rewrite's
/// `__WEIR_JSON_ARRAYAGG` are `JSON_ARRAYAGG`): for errors that name the call.
pub fn user_function_name(internal: &str) -> String {
    let n = internal.to_ascii_lowercase();
    let n = n.trim_start_matches('_');
    let n = n.strip_prefix("weir_").unwrap_or(n);
    match n {
        "string_agg" => "listagg".to_string(),
        other => other.to_string(),
    }
}

/// Where in `node` (a query or an expression) the function an error `message` names is called: DataFusion's errors
/// about a call's arguments ("Function 'abs' expects 1 arguments but received 2", "No
/// function matches the given name and argument types 'octet_length(Int32)'") and the
/// planner's about a call ("sum() over results that update") carry no position, so the
/// first word of the message, quoted or before `(`, that names a function `node` calls
/// points at that call's name (its first call, when it is called more than once).
pub fn function_named_in<V: datafusion::sql::sqlparser::ast::Visit>(
    node: &V,
    message: &str,
) -> Option<crate::error::Pos> {
    // Each call the user wrote: its name, place and number of arguments (calls a rewrite
    // made from a template have no span, so none is taken for the user's).
    let mut calls: Vec<(String, crate::error::Pos, usize)> = vec![];
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(node, |e| {
        if let Expr::Function(f) = e
            && let Some(part) = f.name.0.last()
            && let Some(id) = part.as_ident()
            && id.span.start.line > 0
        {
            let args = match &f.args {
                FunctionArguments::List(l) => l.args.len(),
                _ => 0,
            };
            calls.push((
                user_function_name(&id.value),
                crate::error::Pos {
                    line: id.span.start.line,
                    col: id.span.start.column,
                },
                args,
            ));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    // "… but received 2": of several calls of the function, the one with 2 arguments.
    let received: Option<usize> = message
        .split_once("received ")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    let word = |c: char| c.is_alphanumeric() || c == '_';
    // Quoted words, in order ('abs' or 'abs(Utf8, Int64)'), then words before `(`.
    let quoted = message
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(|q| q.chars().take_while(|c| word(*c)).collect::<String>());
    let called = message.match_indices('(').map(|(i, _)| {
        let before: String = message[..i]
            .chars()
            .rev()
            .take_while(|c| word(*c))
            .collect();
        before.chars().rev().collect::<String>()
    });
    quoted.chain(called).find_map(|name| {
        let name = user_function_name(&name);
        let named = || {
            calls
                .iter()
                .filter(|(n, _, _)| !name.is_empty() && *n == name)
        };
        named()
            .filter(|(_, _, args)| received.is_some_and(|r| r == *args))
            .map(|(_, p, _)| *p)
            .min()
            .or_else(|| named().map(|(_, p, _)| *p).min())
    })
}

/// The Flink function names this module gives a meaning DataFusion lacks (for `SHOW
/// FUNCTIONS`).
pub const FLINK_NAMES: &[&str] = &[
    "ELT",
    "ARRAY_SLICE",
    "STARTSWITH",
    "ENDSWITH",
    "SPLIT",
    "VARIANCE",
    "LISTAGG",
    "CEILING",
    "TRUNCATE",
    "REGEXP",
    "SIGN",
    "MAP_FROM_ARRAYS",
    "E",
    "RAND_INTEGER",
    "IF",
    "CURRENT_DATABASE",
    "LOCALTIMESTAMP",
    "LOCALTIME",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "NOW",
    "CURRENT_DATE",
    "YEAR",
    "QUARTER",
    "MONTH",
    "WEEK",
    "MINUTE",
    "SECOND",
    "DAYOFYEAR",
    "DAYOFMONTH",
    "DAYOFWEEK",
    "LOCATE",
    "TO_BASE64",
    "FROM_BASE64",
    "SHA2",
    "IS_ALPHA",
    "IS_DIGIT",
    "IS_DECIMAL",
    "FROM_UNIXTIME",
    "UNIX_TIMESTAMP",
    "TIMESTAMPADD",
    "TIMESTAMPDIFF",
];

/// An aggregate whose argument is a `CAST`, with the cast wrapped in a `COALESCE` that
/// changes nothing — `COALESCE(CAST(i AS T), CAST(NULLIF('T', 'T') AS T))`, its second
/// argument a NULL whose name holds the type: DataFusion names a cast by its operand
/// alone, so `MAX(i)` beside `MAX(CAST(i AS BIGINT))`, or `MAX(CAST(i AS STRING))` beside
/// `MAX(CAST(i AS BIGINT))`, gave two aggregate columns one name and the query failed
/// ("duplicate unqualified field name"). Flink names both `EXPR$n`.
fn distinct_cast_names(f: &Function) -> Option<Function> {
    const AGGREGATES: &[&str] = &[
        "SUM",
        "MIN",
        "MAX",
        "AVG",
        "COUNT",
        "STDDEV_POP",
        "STDDEV_SAMP",
        "VAR_POP",
        "VAR_SAMP",
        "VARIANCE",
        "FIRST_VALUE",
        "LAST_VALUE",
        "LISTAGG",
        "COLLECT",
    ];
    let name = f.name.to_string().to_ascii_uppercase();
    if f.name.0.len() != 1 || !AGGREGATES.contains(&name.as_str()) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let is_cast = |a: &FunctionArg| {
        matches!(
            a,
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Cast { .. }))
        )
    };
    if !list.args.iter().any(is_cast) {
        return None;
    }
    let mut g = f.clone();
    if let FunctionArguments::List(list) = &mut g.args {
        for a in &mut list.args {
            if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a
                && let Expr::Cast { data_type, .. } = &*e
            {
                let t = data_type.to_string();
                let named = format!(
                    "COALESCE(__0, CAST(NULLIF('{q}', '{q}') AS {t}))",
                    q = t.replace('\'', "''")
                );
                *e = template(&named, std::slice::from_ref(e))?;
            }
        }
    }
    Some(g)
}

fn rewrite_call(f: &Function) -> Option<Expr> {
    match distinct_cast_names(f) {
        Some(g) => Some(flink_call(&g).unwrap_or(Expr::Function(g))),
        None => flink_call(f),
    }
}

/// `root` then `chain` with each `.field` that follows a subscript (or a root that is not
/// a column name) read by `get_field`; None when there is none.
fn field_after_value(
    root: &Expr,
    chain: &[datafusion::sql::sqlparser::ast::AccessExpr],
) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::AccessExpr;
    let named = matches!(root, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
    let j = chain.iter().enumerate().position(|(i, a)| {
        matches!(a, AccessExpr::Dot(Expr::Identifier(_)))
            && !(named && chain[..i].iter().all(|b| matches!(b, AccessExpr::Dot(_))))
    })?;
    let AccessExpr::Dot(Expr::Identifier(field)) = &chain[j] else {
        return None;
    };
    let base = if j == 0 {
        root.clone()
    } else {
        Expr::CompoundFieldAccess {
            root: Box::new(root.clone()),
            access_chain: chain[..j].to_vec(),
        }
    };
    let name = field.value.replace('\'', "''");
    let out = template(&format!("get_field(__0, '{name}')"), &[base])?;
    let rest = &chain[j + 1..];
    if rest.is_empty() {
        return Some(out);
    }
    Some(
        field_after_value(&out, rest).unwrap_or(Expr::CompoundFieldAccess {
            root: Box::new(out),
            access_chain: rest.to_vec(),
        }),
    )
}

/// A Flink function call as DataFusion can plan it, or None when it needs nothing.
fn flink_call(f: &Function) -> Option<Expr> {
    if f.name.0.len() != 1 {
        return None;
    }
    let name = f.name.to_string().to_ascii_uppercase();
    // Aggregates keep their DISTINCT, FILTER and OVER: only the name or the NULL rule
    // changes.
    match name.as_str() {
        "VARIANCE" => return Some(rename(f, "var_samp")),
        // Flink's GROUPING_ID(a, b) is GROUPING(a, b): the bits of the keys a set leaves out.
        "GROUPING_ID" => return Some(rename(f, "grouping")),
        "FIRST_VALUE" | "LAST_VALUE" if f.null_treatment.is_none() => {
            let mut g = f.clone();
            g.null_treatment = Some(NullTreatment::IgnoreNulls);
            return Some(Expr::Function(g));
        }
        "LISTAGG" => {
            let mut g = f.clone();
            g.name = renamed(&f.name, "string_agg");
            if let FunctionArguments::List(l) = &mut g.args
                && l.args.len() == 1
            {
                l.args
                    .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
                        Value::SingleQuotedString(",".into()),
                    ))));
            }
            return Some(Expr::Function(g));
        }
        _ => {}
    }
    // TYPEOF of an integer literal: Calcite types one that fits in an INT as `INT NOT NULL`
    // (DataFusion reads every integer literal as a BIGINT).
    if name == "TYPEOF"
        && let FunctionArguments::List(l) = &f.args
        && (l.args.len() == 1
            || (l.args.len() == 2
                && matches!(&l.args[1], FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(b)))
                    if matches!(b.value, Value::Boolean(_)))))
        && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))) = l.args.first()
        && let Value::Number(n, _) = &v.value
        && n.parse::<i32>().is_ok()
    {
        return Some(Expr::value(Value::SingleQuotedString(
            "INT NOT NULL".into(),
        )));
    }
    // COUNT(DISTINCT a, b): rows where no argument is NULL, distinct over all of them.
    if name == "COUNT"
        && let FunctionArguments::List(l) = &f.args
        && l.duplicate_treatment
            == Some(datafusion::sql::sqlparser::ast::DuplicateTreatment::Distinct)
        && l.args.len() > 1
    {
        let args: Vec<Expr> = l
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let n = args.len();
        let all = slots(0..n, " IS NOT NULL", " AND ");
        let fields = slots(0..n, "", ", ");
        let Expr::Function(mut g) = template(
            &format!("COUNT(DISTINCT CASE WHEN {all} THEN struct({fields}) END)"),
            &args,
        )?
        else {
            return None;
        };
        g.filter = f.filter.clone();
        g.over = f.over.clone();
        return Some(Expr::Function(g));
    }
    // JSON_OBJECTAGG / JSON_ARRAYAGG (see `super::syntax`): the ON NULL mode, whether the
    // value is itself JSON built by a JSON function, then the key and value.
    if matches!(
        name.as_str(),
        "__WEIR_JSON_OBJECTAGG" | "__WEIR_JSON_ARRAYAGG"
    ) {
        let mut g = f.clone();
        g.name = renamed(&f.name, &name.trim_start_matches('_').to_ascii_lowercase());
        // Its clauses (ORDER BY, FILTER, OVER) stay; the flag goes after the ON NULL mode.
        if let FunctionArguments::List(l) = &mut g.args {
            let raw = l.args.last().is_some_and(
                |a| matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) if is_json_built(e)),
            );
            l.args.insert(
                1.min(l.args.len()),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
                    Value::SingleQuotedString(raw_flag(raw).into()),
                ))),
            );
        }
        return Some(Expr::Function(g));
    }
    if f.over.is_some() || f.filter.is_some() {
        return None;
    }
    let a = plain_args(f)?;
    let t = |sql: &str| template(sql, &a);
    match (name.as_str(), a.len()) {
        ("CEILING", 1) => Some(rename(f, "ceil")),
        ("TRUNCATE", 1 | 2) => Some(rename(f, "trunc")),
        ("REGEXP", 2) => Some(rename(f, "weir_regexp")),
        ("SIGN", 1) => Some(rename(f, "signum")),
        ("MAP_FROM_ARRAYS", 2) => Some(rename(f, super::map_fn::NAME)),
        ("ARRAY_REMOVE", 2) => Some(rename(f, "array_remove_all")),
        ("LOG", 1) => Some(rename(f, "ln")),
        ("E", 0) => t("exp(1.0)"),
        ("RAND_INTEGER", 1) => t("CAST(floor(random() * __0) AS INT)"),
        ("RAND", 1) => t(&format!("weir_rand(__0, {})", rand_site())),
        ("RAND_INTEGER", 2) => t(&format!("weir_rand_integer(__0, __1, {})", rand_site())),
        ("ENCODE", 2) => t("weir_encode(__0, __1)"),
        ("DECODE", 2) => t("weir_decode(__0, __1)"),
        // Searching NULL finds a NULL element (Flink's `ArrayContainsFunction`).
        ("ARRAY_CONTAINS", 2) => t("CASE WHEN __0 IS NULL THEN NULL \
             WHEN __1 IS NULL THEN array_position(__0, __1) IS NOT NULL \
             ELSE array_has(__0, __1) END"),
        ("__WEIR_MAP", n) if n >= 2 && n % 2 == 0 => {
            let keys = slots((0..n).step_by(2), "", ", ");
            let values = slots((1..n).step_by(2), "", ", ");
            t(&format!(
                "{}(make_array({keys}), make_array({values}))",
                super::map_fn::NAME
            ))
        }
        ("__WEIR_JSON_OBJECT" | "__WEIR_JSON_ARRAY", n) if n >= 1 => {
            let object = name == "__WEIR_JSON_OBJECT";
            if object && n % 2 == 0 {
                return None;
            }
            // Which values are JSON built by a JSON function (inserted as JSON, not text).
            let flags: String = a[1..]
                .iter()
                .enumerate()
                .filter(|(i, _)| !object || i % 2 == 1)
                .map(|(_, e)| raw_flag(is_json_built(e)))
                .collect();
            let mut args = a.clone();
            args.insert(1, Expr::value(Value::SingleQuotedString(flags)));
            let list = slots(0..args.len(), "", ", ");
            let fname = if object {
                "weir_json_object"
            } else {
                "weir_json_array"
            };
            template(&format!("{fname}({list})"), &args)
        }
        // `TO_TIMESTAMP(string[, format])`: a TIMESTAMP(3) (Flink's operator table's
        // `explicit(TIMESTAMP, 3)`), read as Flink's `parseTimestampData` reads it (see
        // `ToTimestamp`); a string that does not match is NULL, as in Flink.
        ("TO_TIMESTAMP", 1) => t("weir_to_timestamp(__0)"),
        ("TO_TIMESTAMP", 2) => t("weir_to_timestamp(__0, __1)"),
        // Flink's `DateTimeUtils.parseDate(string)`, which a cast to DATE reads with too;
        // text that is no date is NULL.
        ("TO_DATE", 1) => t("TRY_CAST(__0 AS DATE)"),
        // The beginning of the text that matches the Java pattern, read on UTC's clock and
        // cut to its day (Flink's `DateTimeUtils.parseDate`, through `SimpleDateFormat`);
        // text that does not match is NULL (Flink makes a date of `Long.MIN_VALUE`
        // milliseconds of it).
        ("TO_DATE", 2) => t(&format!(
            "arrow_cast({}(__0, __1, 'UTC'), 'Date32')",
            super::functions::ToTimestampLtz::PREFIX_NAME
        )),
        ("IF", 3) => t("CASE WHEN __0 THEN __1 ELSE __2 END"),
        ("CURRENT_DATABASE", 0) => t("'default_database'"),
        // The current time, in the session zone (see `super::local_time`).
        ("LOCALTIMESTAMP", 0) => t("weir_now('TIMESTAMP')"),
        ("LOCALTIME" | "CURRENT_TIME", 0) => t("weir_now('TIME')"),
        ("CURRENT_TIMESTAMP" | "NOW", 0) => t("weir_now('INSTANT')"),
        ("CURRENT_DATE", 0) => t("weir_now('DATE')"),
        ("YEAR" | "QUARTER" | "MONTH" | "WEEK" | "MINUTE" | "SECOND", 1) => t(&format!(
            "CAST(date_part('{}', __0) AS BIGINT)",
            name.to_ascii_lowercase()
        )),
        ("DAYOFYEAR", 1) => t("CAST(date_part('doy', __0) AS BIGINT)"),
        ("DAYOFMONTH", 1) => t("CAST(date_part('day', __0) AS BIGINT)"),
        ("DAYOFWEEK", 1) => t("CAST(date_part('dow', __0) AS BIGINT) + 1"),
        // Flink's `s.indexOf(seek, from - 1) + 1` over its binary strings: a start below 1
        // is 1, and an empty search string is at 1 (`BinaryStringData.indexOf`).
        ("LOCATE", 2) => t("CASE WHEN __0 = '' THEN 1 ELSE strpos(__1, __0) END"),
        ("LOCATE", 3) => t("CASE WHEN __0 = '' THEN 1 \
             WHEN strpos(substr(__1, greatest(__2, 1)), __0) = 0 THEN 0 \
             ELSE strpos(substr(__1, greatest(__2, 1)), __0) + greatest(__2, 1) - 1 END"),
        ("TO_BASE64", 1) => t("encode(__0, 'base64pad')"),
        ("FROM_BASE64", 1) => t("CAST(decode(__0, 'base64pad') AS STRING)"),
        ("SHA224" | "SHA256" | "SHA384" | "SHA512", 1) => t(&format!(
            "encode(digest(__0, '{}'), 'hex')",
            name.to_ascii_lowercase()
        )),
        ("SHA2", 2) => {
            let bits = match &a[1] {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => n.clone(),
                    _ => return None,
                },
                _ => return None,
            };
            match bits.as_str() {
                "224" | "256" | "384" | "512" => {
                    t(&format!("encode(digest(__0, 'sha{bits}'), 'hex')"))
                }
                _ => t("CAST(NULL AS STRING)"),
            }
        }
        ("IS_ALPHA", 1) => t(r"coalesce(regexp_like(__0, '^\p{L}+$'), false)"),
        ("IS_DIGIT", 1) => t(r"coalesce(regexp_like(__0, '^\p{Nd}+$'), false)"),
        // What Java's `Double.parseDouble` takes (but hexadecimal forms).
        ("IS_DECIMAL", 1) => t(
            r"coalesce(regexp_like(__0, '^\s*[+-]?(NaN|Infinity|([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[fFdD]?)\s*$'), false)",
        ),
        ("CHR", 1) => t("CASE WHEN __0 < 0 THEN '' ELSE chr(__0 % 256) END"),
        ("LEFT", 2) => t("CASE WHEN __1 < 0 THEN '' ELSE left(__0, __1) END"),
        ("RIGHT", 2) => t("CASE WHEN __1 < 0 THEN '' ELSE right(__0, __1) END"),
        // The replacement is literal text, as Flink's `Matcher.quoteReplacement` makes it:
        // `$1` and `\1` are not group references.
        ("REGEXP_REPLACE", 3) => t("weir_regexp_replace(__0, __1, __2)"),
        // Flink's `SqlFunctionUtils.lpad`/`rpad`: NULL for a negative length or an empty pad
        // (a NULL length or pad is NULL); each argument evaluated once.
        ("LPAD" | "RPAD", 3) => t(&format!(
            "{}(__0, nullif(greatest(__1, -1), -1), nullif(__2, ''))",
            name.to_ascii_lowercase()
        )),
        // Java's `Math.sqrt`: NaN for a negative number (DataFusion's fails the query).
        ("SQRT", 1) => t("weir_sqrt(__0)"),
        // NULL when any array is NULL (Flink's `ARRAY_CONCAT`; DataFusion skips it).
        ("ARRAY_CONCAT", n) if n >= 1 => t(&format!(
            "CASE WHEN {} THEN NULL ELSE array_concat({}) END",
            slots(0..n, " IS NULL", " OR "),
            slots(0..n, "", ", ")
        )),
        // Flink's `ELT(index, expr, …)`: the index-th expression (1-based), NULL for a NULL
        // or out-of-range index (`EltFunction`); the index read once (a CASE operand).
        ("ELT", n) if n >= 2 => t(&format!(
            "CASE __0 {} END",
            (1..n)
                .map(|i| format!("WHEN {i} THEN __{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        // Flink's `ARRAY_SLICE` (`ArraySliceFunction`'s offsets; see `super::newer`).
        ("ARRAY_SLICE", 2) => t("weir_array_slice(__0, __1)"),
        ("ARRAY_SLICE", 3) => t("weir_array_slice(__0, __1, __2)"),
        // Flink's `ARRAY_SORT(array, ascending[, nulls_first])` (`ArraySortFunction`):
        // NULLs first when ascending and last when descending unless `nulls_first` says;
        // NULL for a NULL order. The orders are literals (DataFusion's take its words).
        ("ARRAY_SORT", 2 | 3) => {
            let flag = |e: &Expr| match e {
                Expr::Value(v) => match &v.value {
                    Value::Boolean(b) => Some(Some(*b)),
                    Value::Null => Some(None),
                    _ => None,
                },
                _ => None,
            };
            // An order that is not a literal: chosen per row (two-argument form).
            let Some(ascending) = flag(&a[1]) else {
                return match a.len() {
                    2 => t(
                        "CASE __1 WHEN TRUE THEN array_sort(__0, 'ASC', 'NULLS FIRST') WHEN FALSE THEN array_sort(__0, 'DESC', 'NULLS LAST') END",
                    ),
                    _ => None,
                };
            };
            let nulls_first = match a.get(2) {
                Some(e) => flag(e)?,
                None => ascending,
            };
            match (ascending, nulls_first) {
                (Some(asc), Some(first)) => t(&format!(
                    "array_sort(__0, '{}', '{}')",
                    if asc { "ASC" } else { "DESC" },
                    if first { "NULLS FIRST" } else { "NULLS LAST" }
                )),
                // A NULL order: a NULL of the array's type.
                _ => t("array_sort(CASE WHEN FALSE THEN __0 END)"),
            }
        }
        ("ROW", n) if n >= 1 => row_constructor(&a),
        ("STARTSWITH", 2) => t("starts_with(__0, __1)"),
        ("ENDSWITH", 2) => t("ends_with(__0, __1)"),
        // Flink's `SPLIT(string, delimiter)`: an empty delimiter splits every character;
        // NULL for a NULL argument.
        ("SPLIT", 2) => t(
            "CASE WHEN __1 = '' THEN string_to_array(__0, NULL) WHEN __1 IS NOT NULL THEN string_to_array(__0, __1) END",
        ),
        ("ARRAY_POSITION", 2) => {
            t("CASE WHEN __0 IS NULL THEN NULL ELSE coalesce(array_position(__0, __1), 0) END")
        }
        ("CONCAT", n) if n >= 1 => t(&slots(0..n, "", " || ")),
        ("GREATEST" | "LEAST", n) if n >= 1 => {
            let nulls = slots(0..n, " IS NULL", " OR ");
            let list = slots(0..n, "", ", ");
            t(&format!(
                "CASE WHEN {nulls} THEN NULL ELSE {}({list}) END",
                name.to_ascii_lowercase()
            ))
        }
        ("FROM_UNIXTIME", 1) => t("DATE_FORMAT(TO_TIMESTAMP_LTZ(__0, 0), 'yyyy-MM-dd HH:mm:ss')"),
        ("FROM_UNIXTIME", 2) => t("DATE_FORMAT(TO_TIMESTAMP_LTZ(__0, 0), __1)"),
        ("UNIX_TIMESTAMP", 0) => t("CAST(date_part('epoch', PROCTIME()) AS BIGINT)"),
        // Milliseconds / 1000, truncated, the text read in the session zone; a string that
        // does not parse is Long.MIN_VALUE (Flink's `DateTimeUtils.unixTimestamp`). The
        // text's beginning that matches the format counts, as `SimpleDateFormat` reads it. A format
        // with a finer fraction makes a finer TIMESTAMP_LTZ: milliseconds first.
        // NULL in, NULL out.
        ("UNIX_TIMESTAMP", 1) => t(
            "CASE WHEN __0 IS NOT NULL THEN coalesce(CAST(CAST(CAST(weir_parse_prefix(__0, 'yyyy-MM-dd HH:mm:ss', weir_now('ZONE')) AS TIMESTAMP_LTZ(3)) AS BIGINT) / 1000 AS BIGINT), -9223372036854775807 - 1) END",
        ),
        ("UNIX_TIMESTAMP", 2) => t(
            "CASE WHEN __0 IS NOT NULL AND __1 IS NOT NULL THEN coalesce(CAST(CAST(CAST(weir_parse_prefix(__0, __1, weir_now('ZONE')) AS TIMESTAMP_LTZ(3)) AS BIGINT) / 1000 AS BIGINT), -9223372036854775807 - 1) END",
        ),
        ("TIMESTAMPADD", 3) => {
            let u = unit(&a[0])?;
            if let Some(s) = unit_seconds(&u) {
                t(&format!(
                    "__2 + CAST(CAST(CAST(__1 AS BIGINT) * {s} AS STRING) || ' second' AS INTERVAL)"
                ))
            } else {
                let m = unit_months(&u)?;
                t(&format!(
                    "__2 + CAST(CAST(CAST(__1 AS BIGINT) * {m} AS STRING) || ' month' AS INTERVAL)"
                ))
            }
        }
        ("TIMESTAMPDIFF", 3) => {
            let u = unit(&a[0])?;
            if let Some(s) = unit_seconds(&u) {
                // Whole milliseconds, divided as integers (truncated toward zero).
                t(&format!(
                    "(weir_epoch_ms(__2) - weir_epoch_ms(__1)) / {}",
                    s * 1000
                ))
            } else {
                // Whole months between the two, as Calcite counts them: a month is not
                // complete until the day and time of the start come round again.
                let m = unit_months(&u)?;
                let months = "((CAST(date_part('year', __2) AS BIGINT) - CAST(date_part('year', __1) AS BIGINT)) * 12 \
                     + CAST(date_part('month', __2) AS BIGINT) - CAST(date_part('month', __1) AS BIGINT))";
                let shifted = format!(
                    "CAST(__1 AS TIMESTAMP) + CAST(CAST({months} AS STRING) || ' month' AS INTERVAL)"
                );
                t(&format!(
                    "CAST(trunc((CASE WHEN {months} > 0 AND CAST(__2 AS TIMESTAMP) < {shifted} THEN {months} - 1 \
                     WHEN {months} < 0 AND CAST(__2 AS TIMESTAMP) > {shifted} THEN {months} + 1 \
                     ELSE {months} END) / {m}) AS BIGINT)"
                ))
            }
        }
        _ => None,
    }
}

/// True for a call that builds JSON (`JSON_OBJECT`, `JSON_ARRAY`, rewritten already).
fn is_json_built(e: &Expr) -> bool {
    let e = match e {
        Expr::Nested(n) => n.as_ref(),
        e => e,
    };
    matches!(e, Expr::Function(f) if {
        let n = f.name.to_string().to_ascii_lowercase();
        n == "weir_json_object" || n == "weir_json_array"
    })
}

fn raw_flag(raw: bool) -> &'static str {
    if raw { "R" } else { "V" }
}

/// How an aggregate's result becomes Flink's type in the projection above it.
#[derive(Clone)]
enum Finish {
    /// An Arrow cast (a decimal cast rounds half-up).
    Cast(datafusion::arrow::datatypes::DataType),
    /// The 64-bit sum taken modulo the narrower integer type's range, as Java's `int`,
    /// `short` and `byte` additions overflow (Flink's `IntSumAggFunction` and friends).
    Wrap(datafusion::arrow::datatypes::DataType),
    /// The 64-bit sum divided by the count in column `count` (integer division, truncated
    /// toward zero; NULL when no row counted), cast to the integer type: Flink's `AVG` of
    /// an integer (`AvgAggFunction`: a `BIGINT` sum, wrapping as Java's `long` does, divided
    /// by a `BIGINT` count). The sum is the call's own column, or column `sum` when the
    /// node already had that sum among its calls.
    Divide {
        sum: Option<String>,
        count: String,
        to: datafusion::arrow::datatypes::DataType,
    },
}

impl Finish {
    fn apply(
        &self,
        col: datafusion::logical_expr::Expr,
        schema: &datafusion::common::DFSchema,
    ) -> datafusion::error::Result<datafusion::logical_expr::Expr> {
        use datafusion::arrow::datatypes::DataType;
        use datafusion::logical_expr::{ExprSchemable, Operator, binary_expr, lit, when};
        match self {
            Finish::Cast(t) => col.cast_to(t, schema),
            Finish::Wrap(t) => {
                let bits = match t {
                    DataType::Int8 => 8,
                    DataType::Int16 => 16,
                    _ => 32,
                };
                let full = 1i64 << bits;
                let low = binary_expr(
                    col.cast_to(&DataType::Int64, schema)?,
                    Operator::BitwiseAnd,
                    lit(full - 1),
                );
                when(low.clone().gt_eq(lit(full / 2)), low.clone() - lit(full))
                    .otherwise(low)?
                    .cast_to(t, schema)
            }
            Finish::Divide { sum, count, to } => {
                let named = |n: &String| {
                    datafusion::logical_expr::Expr::Column(
                        datafusion::common::Column::new_unqualified(n),
                    )
                };
                let sum = sum.as_ref().map(named).unwrap_or(col);
                (sum / named(count)).cast_to(to, schema)
            }
        }
    }
}

/// The argument of an `AVG` of a signed integer, cast to `BIGINT`, and the integer type,
/// when `name` and `args` are that (see [`Finish::Divide`]).
fn avg_of_integer(
    name: &str,
    args: &[datafusion::logical_expr::Expr],
    schema: &datafusion::common::DFSchema,
) -> datafusion::error::Result<
    Option<(
        datafusion::logical_expr::Expr,
        datafusion::arrow::datatypes::DataType,
    )>,
> {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::ExprSchemable;
    let [arg] = args else {
        return Ok(None);
    };
    if !name.eq_ignore_ascii_case("avg") {
        return Ok(None);
    }
    let t = arg.get_type(schema)?;
    Ok(match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            Some((arg.clone().cast_to(&DataType::Int64, schema)?, t))
        }
        _ => None,
    })
}

/// Flink's result type for a call of aggregate `name` over `args`, where DataFusion's
/// differs: the new argument (None: as it is) and how the result is finished. Flink's
/// rules (`LogicalTypeMerging.findAvgAggType`, `findSumAggType`, `AvgAggFunction`,
/// `SumAggFunction`):
///
/// - `AVG` of an integer has the integer's type (the sum divided by the count, truncated
///   toward zero, as Java's integer division); of a `DECIMAL(p, s)`, `DECIMAL(38, max(6,
///   s))` rounded half-up. DataFusion averages integers as DOUBLE and truncates decimals
///   at scale `s + 4`, so the average is computed at one more digit than the result needs.
/// - `SUM` of a `TINYINT`, `SMALLINT` or `INT` has that type (overflowing as Java does);
///   of a `DECIMAL(p, s)`, `DECIMAL(38, s)`.
fn flink_aggregate_type(
    name: &str,
    args: &[datafusion::logical_expr::Expr],
    schema: &datafusion::common::DFSchema,
) -> datafusion::error::Result<Option<(Option<datafusion::logical_expr::Expr>, Finish)>> {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::ExprSchemable;
    let [arg] = args else {
        return Ok(None);
    };
    let t = arg.get_type(schema)?;
    Ok(match (name.to_ascii_lowercase().as_str(), &t) {
        ("avg", t) if t.is_integer() => Some((None, Finish::Cast(t.clone()))),
        ("avg", DataType::Decimal128(p, s)) if *s >= 0 => {
            let target = (*s).max(6);
            // DataFusion's average has scale s' + 4: at least target + 1.
            let scale = (*s).max(target - 3);
            let precision = (*p as i8 + (scale - *s)).min(38) as u8;
            Some((
                Some(
                    arg.clone()
                        .cast_to(&DataType::Decimal128(precision, scale), schema)?,
                ),
                Finish::Cast(DataType::Decimal128(38, target)),
            ))
        }
        ("sum", DataType::Int8 | DataType::Int16 | DataType::Int32) => {
            Some((None, Finish::Wrap(t.clone())))
        }
        ("sum", DataType::Decimal128(_, s)) => {
            Some((None, Finish::Cast(DataType::Decimal128(38, *s))))
        }
        _ => None,
    })
}

/// The projection above a rebuilt aggregate or window node: its columns before `first` as
/// they are, then each of the original node's calls (named as in `out_schema`, from column
/// `first` on), read from the node's column of that name or, where `sources` names one,
/// from that column instead (a call the node now computes once, see
/// [`coerced_duplicate`]), and finished as `finals` says. The hidden counts of
/// [`Finish::Divide`] are left out. Names and qualifiers are kept, so nothing above
/// notices.
fn finish_projection(
    node: datafusion::logical_expr::LogicalPlan,
    first: usize,
    out_schema: &datafusion::common::DFSchema,
    finals: &[Option<Finish>],
    sources: &[Option<String>],
) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::logical_expr::{Expr as E, LogicalPlan, Projection};
    let schema = node.schema().clone();
    // The grouping id of GROUPING SETS stays below: nothing above reads it, and when the
    // query calls GROUPING() the analyzer's projection of the aggregate drops it.
    let mut cols = schema
        .iter()
        .take(first)
        .filter(|(_, f)| f.name() != datafusion::logical_expr::Aggregate::INTERNAL_GROUPING_ID)
        .map(|(q, f)| E::Column(datafusion::common::Column::new(q.cloned(), f.name())))
        .collect::<Vec<_>>();
    for (j, fin) in finals.iter().enumerate() {
        let (q, f) = out_schema.qualified_field(first + j);
        let read = sources
            .get(j)
            .cloned()
            .flatten()
            .unwrap_or_else(|| f.name().clone());
        let (rq, rf) = schema
            .iter()
            .skip(first)
            .find(|(_, g)| *g.name() == read)
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(format!(
                    "no column {read} below the aggregate's projection"
                ))
            })?;
        let col = E::Column(datafusion::common::Column::new(rq.cloned(), rf.name()));
        cols.push(match fin {
            Some(fin) => fin
                .apply(col, &schema)?
                .alias_qualified(q.cloned(), f.name()),
            None if read != *f.name() => col.alias_qualified(q.cloned(), f.name()),
            None => col,
        });
    }
    Ok(LogicalPlan::Projection(Projection::try_new(
        cols,
        std::sync::Arc::new(node),
    )?))
}

/// A window call as DataFusion's type coercion will make it: the argument of a `SUM` of a
/// `TINYINT`, `SMALLINT` or `INT` cast to `BIGINT` (the type its sum is taken in).
fn coerced_window_call(
    e: &datafusion::logical_expr::Expr,
    schema: &datafusion::common::DFSchema,
) -> datafusion::logical_expr::Expr {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{Expr as E, ExprSchemable, WindowFunctionDefinition};
    let inner = match e {
        E::Alias(a) => a.expr.as_ref(),
        e => e,
    };
    if let E::WindowFunction(f) = inner
        && let WindowFunctionDefinition::AggregateUDF(u) = &f.fun
        && u.name().eq_ignore_ascii_case("sum")
        && let [arg] = f.params.args.as_slice()
        && let Ok(DataType::Int8 | DataType::Int16 | DataType::Int32) = arg.get_type(schema)
        && let Ok(arg64) = arg.clone().cast_to(&DataType::Int64, schema)
    {
        let mut g = f.as_ref().clone();
        g.params.args = vec![arg64];
        return E::WindowFunction(Box::new(g));
    }
    inner.clone()
}

/// The name of an earlier call of `kept` (a window node's calls so far, each with its
/// name) that computes the same as `call` once DataFusion has coerced both: `SUM(i)` of an
/// `INT` beside the user's `SUM(CAST(i AS BIGINT))`. DataFusion's window planner refuses
/// two equal calls in one node, so the later one reads the earlier's column.
fn coerced_duplicate(
    call: &datafusion::logical_expr::Expr,
    kept: &[(datafusion::logical_expr::Expr, String)],
    schema: &datafusion::common::DFSchema,
) -> Option<String> {
    let want = coerced_window_call(call, schema);
    kept.iter()
        .find(|(k, _)| same_call(&coerced_window_call(k, schema), &want))
        .map(|(_, n)| n.clone())
}

/// The name of the column of `calls` (a node's aggregate or window calls, the first at
/// output column `first` of `schema`) that computes `call`, aliases aside.
fn reuse(
    call: &datafusion::logical_expr::Expr,
    calls: &[datafusion::logical_expr::Expr],
    first: usize,
    schema: &datafusion::common::DFSchema,
) -> Option<String> {
    use datafusion::logical_expr::Expr as E;
    let bare = |e: &E| match e {
        E::Alias(a) => a.expr.as_ref().clone(),
        e => e.clone(),
    };
    let want = bare(call);
    calls
        .iter()
        .position(|c| same_call(&bare(c), &want))
        .map(|k| schema.field(first + k).name().clone())
}

/// True when two aggregate or window calls compute the same: equal but for how a cast in
/// their arguments was written (the user's `CAST(i AS BIGINT)` beside this rewrite's, and
/// the `COALESCE` that names an aggregate's cast argument, see `distinct_cast_names`),
/// which DataFusion's simplifier makes one call — and its window planner refuses twice.
fn same_call(a: &datafusion::logical_expr::Expr, b: &datafusion::logical_expr::Expr) -> bool {
    use datafusion::logical_expr::Expr as E;
    fn value(e: &E) -> (E, Option<datafusion::arrow::datatypes::DataType>) {
        let e = match e {
            // COALESCE(x, CAST(NULLIF('T', 'T') AS T)) is x.
            E::ScalarFunction(f)
                if f.name() == "coalesce"
                    && f.args.len() == 2
                    && matches!(&f.args[1], E::Cast(c)
                        if matches!(c.expr.as_ref(), E::ScalarFunction(n) if n.name() == "nullif")) =>
            {
                &f.args[0]
            }
            e => e,
        };
        match e {
            E::Cast(c) => (c.expr.as_ref().clone(), Some(c.field.data_type().clone())),
            e => (e.clone(), None),
        }
    }
    let args = |e: &E| -> Option<Vec<E>> {
        match e {
            E::AggregateFunction(f) => Some(f.params.args.clone()),
            E::WindowFunction(f) => Some(f.params.args.clone()),
            _ => None,
        }
    };
    let with_args = |e: &E, new: Vec<E>| -> E {
        let mut e = e.clone();
        match &mut e {
            E::AggregateFunction(f) => f.params.args = new,
            E::WindowFunction(f) => f.params.args = new,
            _ => {}
        }
        e
    };
    match (args(a), args(b)) {
        (Some(x), Some(y)) if x.len() == y.len() => {
            let (vx, vy): (Vec<_>, Vec<_>) =
                (x.iter().map(value).collect(), y.iter().map(value).collect());
            vx == vy
                && with_args(a, vx.iter().map(|(e, _)| e.clone()).collect())
                    == with_args(b, vy.iter().map(|(e, _)| e.clone()).collect())
        }
        _ => a == b,
    }
}

/// The column that computes `call`: one of the node's `calls` (see [`reuse`]), one of the
/// hidden calls added so far, or a new hidden call `__weir_avg_count_N` pushed on `hidden`.
fn reuse_or_add(
    call: datafusion::logical_expr::Expr,
    calls: &[datafusion::logical_expr::Expr],
    first: usize,
    schema: &datafusion::common::DFSchema,
    hidden: &mut Vec<datafusion::logical_expr::Expr>,
) -> String {
    use datafusion::logical_expr::Expr as E;
    if let Some(name) = reuse(&call, calls, first, schema) {
        return name;
    }
    for h in hidden.iter() {
        if let E::Alias(a) = h
            && same_call(&a.expr, &call)
        {
            return a.name.clone();
        }
    }
    let name = format!("__weir_avg_count_{}", hidden.len());
    hidden.push(call.alias(&name));
    name
}

/// Gives `AVG` and `SUM` Flink's result types (see [`flink_aggregate_type`]), on a
/// planned query, in GROUP BY aggregates and OVER windows: each such call is computed as
/// DataFusion does (at the argument's new type, if any) and finished to Flink's type in a
/// projection above its node.
///
/// Errors: only DataFusion's, when rebuilding a node.
pub fn flink_avg(
    plan: datafusion::logical_expr::LogicalPlan,
) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::{
        Aggregate, Expr as E, LogicalPlan, Window, WindowFunctionDefinition,
    };
    plan.transform_up_with_subqueries(|p| {
        // An average rewritten below changes its column's type (a DOUBLE becomes an INT):
        // the nodes above take it before their own calls are judged (`AVG` of an `AVG`).
        let p = match p.inputs().is_empty() {
            true => p,
            false => p.recompute_schema()?,
        };
        let (calls, input, first, out_schema) = match &p {
            // The aggregates follow the group columns (with GROUPING SETS: every key, then
            // the grouping id).
            LogicalPlan::Aggregate(a) => (
                &a.aggr_expr,
                &a.input,
                a.schema.fields().len() - a.aggr_expr.len(),
                &a.schema,
            ),
            LogicalPlan::Window(w) => (
                &w.window_expr,
                &w.input,
                w.input.schema().fields().len(),
                &w.schema,
            ),
            _ => return Ok(Transformed::no(p)),
        };
        let input_schema = input.schema();
        let mut finals: Vec<Option<Finish>> = vec![];
        let mut exprs = vec![];
        // The counts the averages of integers divide by, after every call.
        let mut counts = vec![];
        // The calls the rebuilt node computes, each with its column's name, and the calls
        // left out as another's duplicate (their name, and the column they read).
        let mut kept: Vec<(E, String)> = vec![];
        let mut sources: Vec<Option<String>> = vec![];
        let mut removed = std::collections::HashMap::new();
        for (j, e) in calls.iter().enumerate() {
            let inner = match e {
                E::Alias(al) => al.expr.as_ref(),
                e => e,
            };
            // The name the node gave this column, kept for what reads it.
            let name = out_schema.field(first + j).name().clone();
            let changed = match inner {
                E::AggregateFunction(f) => {
                    match avg_of_integer(f.func.name(), &f.params.args, input_schema)? {
                        Some((arg64, to)) => {
                            let (mut sum, mut n) = (f.clone(), f.clone());
                            sum.func = datafusion::functions_aggregate::sum::sum_udaf();
                            sum.params.args = vec![arg64];
                            n.func = datafusion::functions_aggregate::count::count_udaf();
                            let count = reuse_or_add(
                                E::AggregateFunction(n),
                                calls,
                                first,
                                out_schema,
                                &mut counts,
                            );
                            Some((
                                E::AggregateFunction(sum).alias(name.clone()),
                                Finish::Divide {
                                    sum: None,
                                    count,
                                    to,
                                },
                            ))
                        }
                        None => flink_aggregate_type(f.func.name(), &f.params.args, input_schema)?
                            .map(|(arg, fin)| {
                                let mut g = f.clone();
                                if let Some(arg) = arg {
                                    g.params.args = vec![arg];
                                }
                                (E::AggregateFunction(g).alias(name.clone()), fin)
                            }),
                    }
                }
                // In an OVER window the sum and the count reuse a call of the query's own
                // (`COUNT(x) OVER w` beside `AVG(x) OVER w`) or an earlier average's: DataFusion's
                // window planner refuses two equal calls in one node.
                E::WindowFunction(f) => match &f.fun {
                    WindowFunctionDefinition::AggregateUDF(u) => {
                        match avg_of_integer(u.name(), &f.params.args, input_schema)? {
                            Some((arg64, to)) => {
                                let (mut sum, mut n) = (f.as_ref().clone(), f.as_ref().clone());
                                sum.fun = WindowFunctionDefinition::AggregateUDF(
                                    datafusion::functions_aggregate::sum::sum_udaf(),
                                );
                                sum.params.args = vec![arg64];
                                n.fun = WindowFunctionDefinition::AggregateUDF(
                                    datafusion::functions_aggregate::count::count_udaf(),
                                );
                                // The query's own SUM of the column is the same call once
                                // DataFusion's coercion has cast its argument to BIGINT.
                                let mut own = sum.clone();
                                own.params.args = f.params.args.clone();
                                let own = E::WindowFunction(Box::new(own));
                                let sum = E::WindowFunction(Box::new(sum));
                                let count = reuse_or_add(
                                    E::WindowFunction(Box::new(n)),
                                    calls,
                                    first,
                                    out_schema,
                                    &mut counts,
                                );
                                // Or an earlier average's sum of the same column, made
                                // in this node already (`AVG(i)` beside `AVG(CAST(i AS
                                // BIGINT))`).
                                let earlier = exprs.iter().find_map(|x: &E| match x {
                                    E::Alias(a) if same_call(&a.expr, &sum) => Some(a.name.clone()),
                                    _ => None,
                                });
                                match reuse(&sum, calls, first, out_schema)
                                    .or_else(|| reuse(&own, calls, first, out_schema))
                                    .or(earlier)
                                {
                                    // The average's own column is left as it was (unread).
                                    Some(s) => Some((
                                        e.clone(),
                                        Finish::Divide {
                                            sum: Some(s),
                                            count,
                                            to,
                                        },
                                    )),
                                    None => Some((
                                        sum.alias(name.clone()),
                                        Finish::Divide {
                                            sum: None,
                                            count,
                                            to,
                                        },
                                    )),
                                }
                            }
                            None => None,
                        }
                    }
                    _ => None,
                },
                _ => None,
            };
            let changed = match (changed, inner) {
                (Some(c), _) => Some(c),
                (None, E::WindowFunction(f)) => match &f.fun {
                    WindowFunctionDefinition::AggregateUDF(u) => {
                        flink_aggregate_type(u.name(), &f.params.args, input_schema)?.map(
                            |(arg, fin)| {
                                let mut g = f.as_ref().clone();
                                if let Some(arg) = arg {
                                    g.params.args = vec![arg];
                                }
                                (E::WindowFunction(Box::new(g)).alias(name.clone()), fin)
                            },
                        )
                    }
                    _ => None,
                },
                _ => None,
            };
            let (e, fin) = match changed {
                Some((e, fin)) => (e, Some(fin)),
                None => (e.clone(), None),
            };
            finals.push(fin);
            let dup = match &p {
                LogicalPlan::Window(_) => coerced_duplicate(&e, &kept, input_schema),
                _ => None,
            };
            match dup {
                Some(earlier) => {
                    removed.insert(name, earlier.clone());
                    sources.push(Some(earlier));
                }
                None => {
                    kept.push((e.clone(), name));
                    exprs.push(e);
                    sources.push(None);
                }
            }
        }
        if finals.iter().all(Option::is_none) && removed.is_empty() {
            return Ok(Transformed::no(p));
        }
        // An average's sum read from a call the node now computes once reads the kept one.
        for fin in finals.iter_mut() {
            if let Some(Finish::Divide { sum: Some(s), .. }) = fin
                && let Some(earlier) = removed.get(s)
            {
                *s = earlier.clone();
            }
        }
        exprs.extend(counts);
        let node = match &p {
            LogicalPlan::Aggregate(a) => LogicalPlan::Aggregate(Aggregate::try_new(
                a.input.clone(),
                a.group_expr.clone(),
                exprs,
            )?),
            _ => LogicalPlan::Window(Window::try_new(exprs, input.clone())?),
        };
        Ok(Transformed::yes(finish_projection(
            node, first, out_schema, &finals, &sources,
        )?))
    })
    .map(|t| t.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Flink name a rule handles is rewritten away (so each template parses).
    #[test]
    fn every_rule_rewrites_its_call() {
        let calls = [
            "ELT(a, b, c)",
            "ARRAY_SLICE(a, 1)",
            "ARRAY_SLICE(a, 1, 2)",
            "STARTSWITH(a, b)",
            "ENDSWITH(a, b)",
            "SPLIT(a, b)",
            "VARIANCE(a)",
            "LISTAGG(a)",
            "CEILING(a)",
            "TRUNCATE(a, 1)",
            "REGEXP(a, b)",
            "SIGN(a)",
            "MAP_FROM_ARRAYS(a, b)",
            "E()",
            "RAND_INTEGER(a)",
            "IF(a, b, c)",
            "CURRENT_DATABASE()",
            "YEAR(a)",
            "QUARTER(a)",
            "MONTH(a)",
            "WEEK(a)",
            "MINUTE(a)",
            "SECOND(a)",
            "DAYOFYEAR(a)",
            "DAYOFMONTH(a)",
            "DAYOFWEEK(a)",
            "LOCATE(a, b)",
            "LOCATE(a, b, 2)",
            "TO_BASE64(a)",
            "FROM_BASE64(a)",
            "SHA2(a, 256)",
            "IS_ALPHA(a)",
            "IS_DIGIT(a)",
            "IS_DECIMAL(a)",
            "FROM_UNIXTIME(a)",
            "FROM_UNIXTIME(a, b)",
            "UNIX_TIMESTAMP()",
            "UNIX_TIMESTAMP(a)",
            "UNIX_TIMESTAMP(a, b)",
            "TIMESTAMPADD(HOUR, a, b)",
            "TIMESTAMPADD(QUARTER, a, b)",
            "TIMESTAMPDIFF(SECOND, a, b)",
            "TIMESTAMPDIFF(YEAR, a, b)",
        ];
        for c in calls {
            let mut e = Parser::new(&GenericDialect {})
                .try_with_sql(c)
                .and_then(|mut p| p.parse_expr())
                .expect("test SQL parses");
            rewrite_expr(&mut e);
            let name = c.split('(').next().unwrap_or(c);
            let text = e.to_string();
            assert!(
                !text.to_ascii_uppercase().starts_with(&format!("{name}(")),
                "{c} was not rewritten: {text}"
            );
            assert!(
                FLINK_NAMES.contains(&name),
                "{name} missing from FLINK_NAMES"
            );
        }
    }
}
