//! Window table functions in Flink's spellings, turned into something sqlparser and
//! DataFusion can plan.
//!
//! sqlparser cannot parse `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '5' SECOND))`
//! (`TABLE t` and `DESCRIPTOR(..)` are not expressions), so the script's tokens are
//! rewritten before parsing: each window call becomes a single table name, `__weir_window_N`,
//! and its arguments are kept as a [`WindowCall`]. The session registers a table of that name
//! whose schema is the input's plus `window_start`, `window_end` and `window_time`, and the
//! streaming planner turns a scan of it into window assignment (and a `GROUP BY` over it into
//! a window aggregate). Three spellings are accepted:
//!
//! - the window TVF: `FROM TABLE(HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '5' SECOND,
//!   INTERVAL '10' SECOND))`, with named arguments (`SIZE => ...`) too, the input a table,
//!   a view or a parenthesised query, and `SESSION(TABLE t PARTITION BY k, ...)`;
//! - the short form: `FROM TUMBLE(bids, ts, INTERVAL '5' SECOND)`;
//! - group-window functions: `GROUP BY k, TUMBLE(ts, INTERVAL '5' SECOND)` with
//!   `TUMBLE_START(...)`, `TUMBLE_END`, `TUMBLE_ROWTIME` (and `HOP_*`, `SESSION_*`), rewritten
//!   on the parsed query into the TVF form.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, ObjectName, Query, SetExpr, TableAlias, TableFactor, TableWithJoins,
    VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{Pos, Result, WeirError};
use crate::sql::parser::{parser_error, pos_of, sql_err};

/// The name prefix of the tables that stand for window calls.
pub const WINDOW_TABLE_PREFIX: &str = "__weir_window_";

static NEXT_WINDOW: AtomicUsize = AtomicUsize::new(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumble,
    Hop,
    Cumulate,
    Session,
}

impl WindowKind {
    fn from_name(s: &str) -> Option<WindowKind> {
        match s.to_ascii_uppercase().as_str() {
            "TUMBLE" => Some(WindowKind::Tumble),
            "HOP" => Some(WindowKind::Hop),
            "CUMULATE" => Some(WindowKind::Cumulate),
            "SESSION" => Some(WindowKind::Session),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WindowKind::Tumble => "TUMBLE",
            WindowKind::Hop => "HOP",
            WindowKind::Cumulate => "CUMULATE",
            WindowKind::Session => "SESSION",
        }
    }

    /// The names of the time arguments after the descriptor, in positional order.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            WindowKind::Tumble => &["SIZE", "OFFSET"],
            WindowKind::Hop => &["SLIDE", "SIZE", "OFFSET"],
            WindowKind::Cumulate => &["STEP", "SIZE", "OFFSET"],
            WindowKind::Session => &["GAP"],
        }
    }

    /// How many of [`Self::parameters`] are required.
    fn required(self) -> usize {
        match self {
            WindowKind::Tumble | WindowKind::Session => 1,
            WindowKind::Hop | WindowKind::Cumulate => 2,
        }
    }

    fn usage(self) -> &'static str {
        match self {
            WindowKind::Tumble => {
                "TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE [, offset]))"
            }
            WindowKind::Hop => {
                "TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '5' SECOND /* slide */, INTERVAL '1' MINUTE /* size */ [, offset]))"
            }
            WindowKind::Cumulate => {
                "TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE /* step */, INTERVAL '1' HOUR /* size */ [, offset]))"
            }
            WindowKind::Session => {
                "TABLE(SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '5' MINUTE /* gap */))"
            }
        }
    }
}

/// The input of a window call.
#[derive(Debug, Clone)]
pub enum WindowInput {
    Table(String, Pos),
    Query(Box<Query>),
}

/// One window call of a script, as written.
#[derive(Debug, Clone)]
pub struct WindowCall {
    /// The table name standing for this call in the rewritten query.
    pub id: String,
    pub kind: WindowKind,
    pub pos: Pos,
    pub input: WindowInput,
    pub time_col: String,
    pub time_pos: Pos,
    pub partition_by: Vec<(String, Pos)>,
    /// The time arguments by parameter name (`SIZE`, `SLIDE`, ...), with their positions.
    pub args: Vec<(&'static str, Expr, Pos)>,
}

impl WindowCall {
    pub fn arg(&self, name: &str) -> Option<&(&'static str, Expr, Pos)> {
        self.args.iter().find(|(n, _, _)| *n == name)
    }
}

fn next_id() -> String {
    format!(
        "{WINDOW_TABLE_PREFIX}{}",
        NEXT_WINDOW.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn is_ws(t: &TokenWithSpan) -> bool {
    matches!(t.token, Token::Whitespace(_))
}

/// The index of the next non-whitespace token at or after `i`.
pub(crate) fn next_sig(tokens: &[TokenWithSpan], i: usize) -> Option<usize> {
    (i..tokens.len()).find(|&j| !is_ws(&tokens[j]))
}

fn word_is_kind(t: &TokenWithSpan) -> Option<WindowKind> {
    match &t.token {
        Token::Word(w) if w.quote_style.is_none() => WindowKind::from_name(&w.value),
        _ => None,
    }
}

/// The index of the `)` matching the `(` at `open`.
fn matching_paren(tokens: &[TokenWithSpan], open: usize) -> Result<usize> {
    let mut depth = 0usize;
    for (j, t) in tokens.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
            _ => {}
        }
    }
    Err(sql_err("this '(' is never closed", &tokens[open]))
}

/// Rewrites every window call in `tokens` into a table name, collecting the calls (inner
/// calls first).
pub fn rewrite_tokens(
    tokens: Vec<TokenWithSpan>,
    calls: &mut Vec<WindowCall>,
) -> Result<Vec<TokenWithSpan>> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        // TABLE ( KIND ( ... ) )
        let tvf = matches!(&t.token, Token::Word(w) if w.keyword == Keyword::TABLE)
            .then(|| {
                let a = next_sig(&tokens, i + 1)?;
                (tokens[a].token == Token::LParen).then_some(())?;
                let k = next_sig(&tokens, a + 1)?;
                let kind = word_is_kind(&tokens[k])?;
                let b = next_sig(&tokens, k + 1)?;
                (tokens[b].token == Token::LParen).then_some((kind, a, b))
            })
            .flatten();
        // FROM|JOIN KIND ( ... )
        let short = if tvf.is_none() {
            let after_from = out.iter().rev().find(|t| !is_ws(t)).is_some_and(|p| {
                matches!(&p.token, Token::Word(w) if w.keyword == Keyword::FROM || w.keyword == Keyword::JOIN)
            });
            word_is_kind(t).filter(|_| after_from).and_then(|kind| {
                let b = next_sig(&tokens, i + 1)?;
                (tokens[b].token == Token::LParen).then_some((kind, b))
            })
        } else {
            None
        };
        let (kind, open, wrapper_open, is_short) = match (tvf, short) {
            (Some((kind, a, b)), _) => (kind, b, Some(a), false),
            (None, Some((kind, b))) => (kind, b, None, true),
            (None, None) => {
                out.push(t.clone());
                i += 1;
                continue;
            }
        };
        let close = matching_paren(&tokens, open)?;
        let end = match wrapper_open {
            Some(a) => {
                let wrapper_close = matching_paren(&tokens, a)?;
                if next_sig(&tokens, close + 1) != Some(wrapper_close) {
                    let at = next_sig(&tokens, close + 1).unwrap_or(close);
                    return Err(sql_err(
                        format!("expected ')' to close TABLE({}(...))", kind.name()),
                        &tokens[at],
                    ));
                }
                wrapper_close
            }
            None => close,
        };
        let inner = rewrite_tokens(tokens[open + 1..close].to_vec(), calls)?;
        let call = parse_call(kind, is_short, t, &tokens[close], inner)?;
        let mut name = t.clone();
        name.token = Token::make_word(&call.id, None);
        // Without an alias of its own, the window is known by its input table's name, so
        // `t.col` keeps working and result columns read `sum(t.col)`, not the internal name.
        let has_alias = next_sig(&tokens, end + 1).is_some_and(|j| {
            matches!(&tokens[j].token, Token::Word(w) if w.keyword == Keyword::AS || w.keyword == Keyword::NoKeyword)
        });
        let alias = match &call.input {
            WindowInput::Table(n, _) if !has_alias => n.rsplit('.').next().map(str::to_string),
            _ => None,
        };
        calls.push(call);
        out.push(name);
        if let Some(a) = alias {
            let mut ws = t.clone();
            ws.token = Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space);
            out.push(ws);
            let mut w = t.clone();
            w.token = Token::make_word(&a, Some('"'));
            out.push(w);
        }
        i = end + 1;
    }
    Ok(out)
}

/// Consumes `NAME =>` if present and returns the name.
fn named_arg(p: &mut Parser) -> Option<String> {
    if let Token::Word(w) = &p.peek_token().token
        && p.peek_nth_token(1).token == Token::RArrow
    {
        let name = w.value.to_ascii_uppercase();
        p.next_token();
        p.next_token();
        return Some(name);
    }
    None
}

/// A window call's arguments in its parameters' order (`DATA`, `TIMECOL`, then
/// [`WindowKind::parameters`]) when every one is named: Flink (Calcite) takes named
/// arguments in any order (`SESSION(TIMECOL => …, GAP => …, DATA => …)`). Positional or
/// mixed arguments are left as written, for the parser to judge.
fn in_parameter_order(kind: WindowKind, inner: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    // The arguments: runs of tokens between commas outside parentheses.
    let mut pieces: Vec<Vec<TokenWithSpan>> = vec![vec![]];
    let mut commas = vec![];
    let mut depth = 0i32;
    for t in inner.iter().cloned() {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                commas.push(t);
                pieces.push(vec![]);
                continue;
            }
            _ => {}
        }
        if let Some(last) = pieces.last_mut() {
            last.push(t);
        }
    }
    let name_of = |piece: &[TokenWithSpan]| {
        let a = next_sig(piece, 0)?;
        let b = next_sig(piece, a + 1)?;
        match (&piece[a].token, &piece[b].token) {
            (Token::Word(w), Token::RArrow) => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    };
    let order: Vec<&str> = ["DATA", "TIMECOL"]
        .into_iter()
        .chain(kind.parameters().iter().copied())
        .collect();
    let mut ranked = vec![];
    for piece in pieces {
        let Some(rank) = name_of(&piece).and_then(|n| order.iter().position(|o| *o == n)) else {
            return inner;
        };
        ranked.push((rank, piece));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    let mut out = vec![];
    for (i, (_, piece)) in ranked.into_iter().enumerate() {
        if i > 0
            && let Some(c) = commas.get(i - 1)
        {
            out.push(c.clone());
        }
        out.extend(piece);
    }
    out
}

fn parse_call(
    kind: WindowKind,
    short: bool,
    at: &TokenWithSpan,
    close: &TokenWithSpan,
    inner: Vec<TokenWithSpan>,
) -> Result<WindowCall> {
    let mut inner = in_parameter_order(kind, inner);
    inner.push(TokenWithSpan::new(Token::EOF, close.span));
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect).with_tokens_with_locations(inner);
    let usage = |e: WeirError| e.with_hint(format!("write {}", kind.usage()));

    let _ = named_arg(&mut p);
    let first = p.peek_token();
    let input = if short {
        let name = p.parse_object_name(false).map_err(parser_error)?;
        WindowInput::Table(object_name(&name), pos_of(&first))
    } else {
        let explicit = p.parse_keyword(Keyword::TABLE);
        if p.peek_token().token == Token::LParen {
            p.next_token();
            let mut q = p.parse_query().map_err(parser_error)?;
            p.expect_token(&Token::RParen).map_err(parser_error)?;
            crate::sql::names::name_columns(&mut q);
            crate::sql::rewrite::rewrite_query(&mut q);
            WindowInput::Query(q)
        } else if explicit {
            let t = p.peek_token();
            let name = p.parse_object_name(false).map_err(parser_error)?;
            WindowInput::Table(object_name(&name), pos_of(&t))
        } else {
            return Err(usage(sql_err(
                format!(
                    "the first argument of {} is the input: TABLE <name> or a (query)",
                    kind.name()
                ),
                &first,
            )));
        }
    };
    let mut partition_by = vec![];
    if p.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        if kind != WindowKind::Session {
            return Err(sql_err(
                format!("PARTITION BY is for SESSION windows, not {}", kind.name()),
                &first,
            ));
        }
        // `PARTITION BY k` or `PARTITION BY (k1, k2)`.
        let parens = p.consume_token(&Token::LParen);
        loop {
            let t = p.peek_token();
            let id = p.parse_identifier().map_err(parser_error)?;
            partition_by.push((id.value, pos_of(&t)));
            if !parens || !p.consume_token(&Token::Comma) {
                break;
            }
        }
        if parens {
            p.expect_token(&Token::RParen).map_err(parser_error)?;
        }
    }
    let t = p.peek_token();
    if !p.consume_token(&Token::Comma) {
        return Err(usage(sql_err(
            format!(
                "expected ',' and the time column after the input of {}, found '{}'",
                kind.name(),
                t.token
            ),
            &t,
        )));
    }
    let _ = named_arg(&mut p);
    let t = p.peek_token();
    let (time_col, time_pos) = if short {
        let id = p.parse_identifier().map_err(parser_error)?;
        (id.value, pos_of(&t))
    } else {
        let is_descriptor = matches!(&p.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("DESCRIPTOR"));
        if is_descriptor {
            p.next_token();
        } else {
            return Err(usage(sql_err(
                format!(
                    "the second argument of {} is DESCRIPTOR(time_column), found '{}'",
                    kind.name(),
                    t.token
                ),
                &t,
            )));
        }
        p.expect_token(&Token::LParen).map_err(parser_error)?;
        let c = p.peek_token();
        let id = p.parse_identifier().map_err(parser_error)?;
        p.expect_token(&Token::RParen).map_err(parser_error)?;
        (id.value, pos_of(&c))
    };
    let params = kind.parameters();
    let mut args: Vec<(&'static str, Expr, Pos)> = vec![];
    while p.consume_token(&Token::Comma) {
        let t = p.peek_token();
        let name = match named_arg(&mut p) {
            Some(n) => match params.iter().find(|p| **p == n) {
                Some(p) => *p,
                None => {
                    return Err(usage(sql_err(
                        format!(
                            "{} has no parameter '{n}'; its parameters are {}",
                            kind.name(),
                            params.join(", ")
                        ),
                        &t,
                    )));
                }
            },
            None => match params.get(args.len()) {
                Some(p) => *p,
                None => {
                    return Err(usage(sql_err(
                        format!("too many arguments for {}", kind.name()),
                        &t,
                    )));
                }
            },
        };
        if args.iter().any(|(n, _, _)| *n == name) {
            return Err(sql_err(format!("{name} is given twice"), &t));
        }
        let at = p.peek_token();
        let mut e = p.parse_expr().map_err(parser_error)?;
        // Flink's forms inside (`INTERVAL '10' SECOND * 2`), as in the rest of the query.
        crate::sql::rewrite::rewrite_expr(&mut e);
        args.push((name, e, pos_of(&at)));
    }
    let t = p.peek_token();
    if t.token != Token::EOF {
        return Err(usage(sql_err(
            format!("unexpected '{}' in {}(...)", t.token, kind.name()),
            &t,
        )));
    }
    for need in &params[..kind.required()] {
        if !args.iter().any(|(n, _, _)| n == need) {
            return Err(usage(sql_err(
                format!("{} needs its {need} argument", kind.name()),
                close,
            )));
        }
    }
    Ok(WindowCall {
        id: next_id(),
        kind,
        pos: pos_of(at),
        input,
        time_col,
        time_pos,
        partition_by,
        args,
    })
}

fn object_name(n: &ObjectName) -> String {
    n.0.iter()
        .map(|p| match p.as_ident() {
            Some(i) => i.value.clone(),
            None => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn span_pos(e: &Expr) -> Pos {
    use datafusion::sql::sqlparser::ast::Spanned;
    let s = e.span().start;
    Pos {
        line: s.line,
        col: s.column,
    }
}

/// Rewrites group-window functions (`GROUP BY TUMBLE(ts, size)` with `TUMBLE_START(...)`
/// and friends) in `query` into the window TVF form, collecting the calls.
pub fn rewrite_group_windows(query: &mut Query, calls: &mut Vec<WindowCall>) -> Result<()> {
    let mut v = GroupWindows { calls, error: None };
    let _ = query.visit(&mut v);
    match v.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct GroupWindows<'a> {
    calls: &'a mut Vec<WindowCall>,
    error: Option<WeirError>,
}

impl VisitorMut for GroupWindows<'_> {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut()
            && let Err(e) = rewrite_select(select, self.calls)
        {
            self.error = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

fn function_parts(e: &Expr) -> Option<(String, Vec<Expr>)> {
    let Expr::Function(f) = e else { return None };
    let name = f.name.to_string().to_ascii_uppercase();
    let datafusion::sql::sqlparser::ast::FunctionArguments::List(list) = &f.args else {
        return Some((name, vec![]));
    };
    let args = list
        .args
        .iter()
        .filter_map(|a| match a {
            datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
                datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(e),
            ) => Some(e.clone()),
            _ => None,
        })
        .collect();
    Some((name, args))
}

fn rewrite_select(
    select: &mut datafusion::sql::sqlparser::ast::Select,
    calls: &mut Vec<WindowCall>,
) -> Result<()> {
    let GroupByExpr::Expressions(exprs, _) = &mut select.group_by else {
        return Ok(());
    };
    let Some(idx) = exprs
        .iter()
        .position(|e| function_parts(e).is_some_and(|(n, _)| WindowKind::from_name(&n).is_some()))
    else {
        return Ok(());
    };
    let group_call = exprs[idx].clone();
    let Some((name, fargs)) = function_parts(&group_call) else {
        return Ok(());
    };
    let Some(kind) = WindowKind::from_name(&name) else {
        return Ok(());
    };
    let pos = span_pos(&group_call);
    if kind == WindowKind::Cumulate {
        return Err(
            WeirError::sql("CUMULATE has no group-window form", Some(pos))
                .with_hint(format!("write {}", kind.usage())),
        );
    }
    let params = kind.parameters();
    // The time column, plain or qualified by the table's alias (`B.dateTime`).
    let first = fargs.split_first().and_then(|(f, rest)| match f {
        Expr::Identifier(i) => Some((i.clone(), rest)),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| (i.clone(), rest)),
        _ => None,
    });
    let Some((time, rest)) = first else {
        return Err(WeirError::sql(
            format!("{name}(...) in GROUP BY takes the time column first"),
            Some(pos),
        )
        .with_hint(format!("write GROUP BY {name}(ts, INTERVAL '1' MINUTE)")));
    };
    if rest.len() < kind.required() || rest.len() > params.len() {
        return Err(WeirError::sql(
            format!("wrong number of arguments for {name} in GROUP BY"),
            Some(pos),
        ));
    }
    if select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return Err(WeirError::sql(
            format!("GROUP BY {name}(...) needs a single table in FROM"),
            Some(pos),
        ));
    }
    let relation = select.from[0].relation.clone();
    let (input, alias) = match relation {
        TableFactor::Table {
            name: tname, alias, ..
        } => {
            let n = object_name(&tname);
            let alias = alias.unwrap_or_else(|| TableAlias {
                explicit: true,
                name: Ident::new(n.rsplit('.').next().unwrap_or(&n)),
                columns: vec![],
                at: None,
            });
            (WindowInput::Table(n, pos), Some(alias))
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => (WindowInput::Query(subquery), alias),
        other => {
            return Err(WeirError::sql(
                format!("GROUP BY {name}(...) cannot read from {other}"),
                Some(pos),
            ));
        }
    };
    let call = WindowCall {
        id: next_id(),
        kind,
        pos,
        input,
        time_col: time.value.clone(),
        time_pos: span_pos(&fargs[0]),
        partition_by: vec![],
        args: rest
            .iter()
            .zip(params.iter())
            .map(|(e, p)| (*p, e.clone(), span_pos(e)))
            .collect(),
    };
    select.from = vec![TableWithJoins {
        relation: TableFactor::Table {
            name: ObjectName::from(vec![Ident::new(&call.id)]),
            alias,
            args: None,
            with_hints: vec![],
            version: None,
            with_ordinality: false,
            partitions: vec![],
            json_path: None,
            sample: None,
            index_hints: vec![],
        },
        joins: vec![],
    }];
    exprs.splice(
        idx..=idx,
        ["window_start", "window_end", "window_time"].map(|c| Expr::Identifier(Ident::new(c))),
    );
    if kind == WindowKind::Session {
        // A session is per key: the other GROUP BY columns are its partition.
        let mut parts = vec![];
        for e in exprs.iter() {
            match e {
                Expr::Identifier(i) if !i.value.starts_with("window_") => {
                    parts.push((i.value.clone(), span_pos(e)))
                }
                Expr::CompoundIdentifier(ids) => {
                    if let Some(i) = ids.last() {
                        parts.push((i.value.clone(), span_pos(e)))
                    }
                }
                Expr::Identifier(_) => {}
                other => {
                    return Err(WeirError::sql(
                        "GROUP BY SESSION(...) groups by columns only",
                        Some(span_pos(other)),
                    ));
                }
            }
        }
        let mut call = call;
        call.partition_by = parts;
        calls.push(call);
    } else {
        calls.push(call);
    }
    // TUMBLE_START(ts, size) -> window_start, and so on, wherever they appear.
    let prefix = format!("{name}_");
    let mut fix = AuxFunctions {
        prefix: &prefix,
        error: None,
    };
    let _ = select.projection.visit(&mut fix);
    let _ = select.having.visit(&mut fix);
    match fix.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct AuxFunctions<'a> {
    prefix: &'a str,
    error: Option<WeirError>,
}

impl VisitorMut for AuxFunctions<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let Some((name, _)) = function_parts(e) else {
            return ControlFlow::Continue(());
        };
        let Some(suffix) = name.strip_prefix(self.prefix) else {
            return ControlFlow::Continue(());
        };
        let col = match suffix {
            "START" => "window_start",
            "END" => "window_end",
            "ROWTIME" => "window_time",
            "PROCTIME" => {
                self.error = Some(WeirError::sql(
                    format!(
                        "{name} is not supported: processing-time windows use PROCTIME() columns"
                    ),
                    Some(span_pos(e)),
                ));
                return ControlFlow::Break(());
            }
            _ => return ControlFlow::Continue(()),
        };
        *e = Expr::Identifier(Ident::new(col));
        ControlFlow::Continue(())
    }
}
