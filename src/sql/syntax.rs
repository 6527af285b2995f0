//! Flink's SQL syntax that sqlparser does not parse, turned into calls it does, token by
//! token, before parsing; [`super::rewrite`] then gives each call Flink's meaning:
//!
//! - `x BETWEEN ASYMMETRIC a AND b` is the plain `BETWEEN`; `x BETWEEN SYMMETRIC a AND b`
//!   becomes `x BETWEEN __weir_symmetric(a) AND b`, which the rewrite turns into
//!   `(x BETWEEN a AND b) OR (x BETWEEN b AND a)` (Flink's rule: "inclusively between
//!   value2 and value3" in either order).
//! - `x IS [NOT] JSON [VALUE | SCALAR | ARRAY | OBJECT]` becomes
//!   `x = __weir_is_json('KIND')` (`<>` for `NOT`: a comparison binds as tightly as `IS`
//!   does, so `x IS JSON AND y` stays a conjunction), rewritten into
//!   `weir_is_json(x, 'KIND')` or its negation.
//! - A simple `CASE x WHEN a, b THEN r … END` with several values in a `WHEN` becomes the
//!   searched `CASE WHEN (x) IN (a, b) THEN r … END` (each result written once).
//! - `MAP[k1, v1, k2, v2]` becomes `__weir_map(k1, v1, k2, v2)`; `ARRAY[a, b]` becomes
//!   `make_array(a, b)` (DataFusion's own array literal is the same call, but it loses
//!   the columns of an enclosing query, as in `CROSS JOIN UNNEST(ARRAY[t.a, t.b])`).
//! - `INTERVAL '10 00:00:00.004' DAY TO SECOND` and `INTERVAL '2-10' YEAR TO MONTH` (a
//!   range of units, each field after the first within its unit, as Calcite checks) become
//!   `INTERVAL '10 days 0 hours 0 minutes 0.004 seconds'`.
//! - `JSON_OBJECT([KEY] k VALUE v, … [NULL | ABSENT] ON NULL)`,
//!   `JSON_ARRAY(v, … [NULL | ABSENT] ON NULL)` and their aggregates become
//!   `__weir_json_object('NULL', k, v, …)` and so on: the `ON NULL` behaviour first (Flink's
//!   defaults: `NULL ON NULL` for objects, `ABSENT ON NULL` for arrays), then the arguments.
//!
//! - `JSON_VALUE(j, p [RETURNING type] [… ON EMPTY] [… ON ERROR])`, `JSON_QUERY(j, p
//!   [… WRAPPER] [… ON EMPTY] [… ON ERROR])` and `JSON_EXISTS(j, p [… ON ERROR])` with
//!   clauses pass them on as arguments: `json_value(j, p, 'NULL', NULL, 'DEFAULT', x)`,
//!   `json_query(j, p, 'CONDITIONAL', 'EMPTY ARRAY', 'NULL')`, `json_exists(j, p,
//!   'TRUE')`; `RETURNING type` becomes a `CAST(… AS type)` around the call.
//!
//! - `CAST(x AS MAP<STRING, BIGINT>)`, `CAST(x AS ROW<a INT, b STRING>)` and an `ARRAY<…>`
//!   holding either (Flink's type syntax, which sqlparser does not read in an expression)
//!   become `CAST(x AS "MAP<STRING, BIGINT>")`, a quoted type name that
//!   [`super::types::FlinkTypes`] reads as `CREATE TABLE` does.
//!
//! Each new token takes the span of the token it replaces, so errors still point into the
//! user's text.

use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

use crate::error::Result;
use crate::sql::parser::sql_err;
use crate::sql::window::{is_ws, next_sig};

fn word(t: &TokenWithSpan, w: &str) -> bool {
    matches!(&t.token, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
}

fn make(token: Token, like: &TokenWithSpan) -> TokenWithSpan {
    TokenWithSpan {
        token,
        span: like.span,
    }
}

fn name(s: &str, like: &TokenWithSpan) -> TokenWithSpan {
    make(Token::make_word(s, None), like)
}

fn space(like: &TokenWithSpan) -> TokenWithSpan {
    make(Token::Whitespace(Whitespace::Space), like)
}

/// How deep `t` nests: +1 for an opening parenthesis or bracket, −1 for a closing one.
fn nesting(t: &TokenWithSpan) -> i32 {
    match t.token {
        Token::LParen | Token::LBracket => 1,
        Token::RParen | Token::RBracket => -1,
        _ => 0,
    }
}

/// The index of the token closing the bracket or parenthesis opened at `open`. Errors: it
/// is never closed, or closed by the other kind (`MAP['a', 1)`).
pub(crate) fn closing(tokens: &[TokenWithSpan], open: usize) -> Result<usize> {
    let mut stack = vec![];
    for (j, t) in tokens.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => stack.push(Token::RParen),
            Token::LBracket => stack.push(Token::RBracket),
            Token::RParen | Token::RBracket => {
                if stack.pop().as_ref() != Some(&t.token) {
                    return Err(sql_err(
                        format!("'{}' does not close the bracket before it", t.token),
                        t,
                    ));
                }
                if stack.is_empty() {
                    return Ok(j);
                }
            }
            _ => {}
        }
    }
    Err(sql_err("this bracket is never closed", &tokens[open]))
}

/// The top-level pieces of `tokens[range]` between commas.
fn split_commas(
    tokens: &[TokenWithSpan],
    range: std::ops::Range<usize>,
) -> Vec<std::ops::Range<usize>> {
    let mut parts = vec![];
    let mut from = range.start;
    while let Some(c) = find_top(&tokens[..range.end], from, |t| t.token == Token::Comma) {
        parts.push(from..c);
        from = c + 1;
    }
    parts.push(from..range.end);
    parts
}

fn blank(tokens: &[TokenWithSpan]) -> bool {
    tokens.iter().all(is_ws)
}

/// How deep constructs may nest inside each other here (deeper statements get the
/// parser's own error, not a stack overflow).
const MAX_DEPTH: usize = 64;

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The first token from `from` on, outside brackets and nested `CASE … END`, for which
/// `stop` holds (it sees the token and whether it is at the top level).
fn find_top(
    tokens: &[TokenWithSpan],
    from: usize,
    stop: impl Fn(&TokenWithSpan) -> bool,
) -> Option<usize> {
    let (mut depth, mut cases) = (0, 0);
    for (j, t) in tokens.iter().enumerate().skip(from) {
        if depth == 0 && cases == 0 && stop(t) {
            return Some(j);
        }
        depth += nesting(t);
        if depth < 0 {
            return None;
        }
        if word(t, "CASE") {
            cases += 1;
        } else if word(t, "END") && cases > 0 {
            cases -= 1;
        }
    }
    None
}

/// Rewrites Flink's syntax in `tokens` (see the module's docs). Errors: a construct with
/// a missing or extra piece, or nesting deeper than the parser allows, at its token.
pub fn rewrite_tokens(tokens: Vec<TokenWithSpan>) -> Result<Vec<TokenWithSpan>> {
    let mut out = Vec::with_capacity(tokens.len());
    DEPTH.with(|d| d.set(0));
    rewrite_into(&tokens, &mut out)?;
    Ok(out)
}

fn rewrite_into(tokens: &[TokenWithSpan], out: &mut Vec<TokenWithSpan>) -> Result<()> {
    let Some(first) = tokens.first() else {
        return Ok(());
    };
    let depth = DEPTH.with(|d| d.get());
    if depth >= MAX_DEPTH {
        return Err(sql_err("the statement nests too deeply", first));
    }
    DEPTH.with(|d| d.set(depth + 1));
    let r = rewrite_level(tokens, out);
    DEPTH.with(|d| d.set(depth));
    r
}

/// The index of the `>` that closes the `<` at `open` (a `>>` closes two), if any.
fn closing_angle(tokens: &[TokenWithSpan], open: usize) -> Option<(usize, bool)> {
    let mut depth = 0usize;
    for (j, t) in tokens.iter().enumerate().skip(open) {
        match &t.token {
            Token::Lt => depth += 1,
            Token::Gt => depth = depth.checked_sub(1)?,
            Token::ShiftRight => depth = depth.checked_sub(2)?,
            Token::SemiColon => return None,
            _ => {}
        }
        if depth == 0 {
            return Some((j, matches!(t.token, Token::ShiftRight)));
        }
    }
    None
}

fn rewrite_level(tokens: &[TokenWithSpan], out: &mut Vec<TokenWithSpan>) -> Result<()> {
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let next = next_sig(tokens, i + 1);
        // AS MAP<…> / ROW<…> / ARRAY<… ROW or MAP …>: one quoted type name.
        if word(t, "AS")
            && let Some(j) = next
            && (word(&tokens[j], "MAP") || word(&tokens[j], "ROW") || word(&tokens[j], "ARRAY"))
            && let Some(lt) = next_sig(tokens, j + 1)
            && tokens[lt].token == Token::Lt
            && let Some((close, _)) = closing_angle(tokens, lt)
            && (!word(&tokens[j], "ARRAY")
                || tokens[lt..close]
                    .iter()
                    .any(|t| word(t, "ROW") || word(t, "MAP")))
        {
            let text: String = tokens[j..=close]
                .iter()
                .map(|t| t.token.to_string())
                .collect();
            out.push(t.clone());
            out.push(make(
                Token::Word(datafusion::sql::sqlparser::tokenizer::Word {
                    value: text,
                    quote_style: Some('"'),
                    keyword: datafusion::sql::sqlparser::keywords::Keyword::NoKeyword,
                }),
                &tokens[j],
            ));
            i = close + 1;
            continue;
        }
        // BETWEEN [ASYMMETRIC | SYMMETRIC]
        if word(t, "BETWEEN")
            && let Some(j) = next
        {
            if word(&tokens[j], "ASYMMETRIC") {
                out.push(t.clone());
                i = j + 1;
                continue;
            }
            if word(&tokens[j], "SYMMETRIC") {
                let and = find_top(tokens, j + 1, |t| word(t, "AND"))
                    .filter(|&and| !blank(&tokens[j + 1..and]))
                    .ok_or_else(|| {
                        sql_err("BETWEEN SYMMETRIC needs 'value AND value'", &tokens[j])
                    })?;
                out.push(t.clone());
                out.push(space(t));
                out.push(name("__weir_symmetric", &tokens[j]));
                out.push(make(Token::LParen, &tokens[j]));
                rewrite_into(&tokens[j + 1..and], out)?;
                out.push(make(Token::RParen, &tokens[j]));
                out.push(space(t));
                i = and;
                continue;
            }
        }
        // IS [NOT] JSON [kind]
        if word(t, "IS")
            && let Some(j) = next
        {
            let negated = word(&tokens[j], "NOT");
            let j = if negated {
                next_sig(tokens, j + 1)
            } else {
                Some(j)
            };
            if let Some(j) = j.filter(|&j| word(&tokens[j], "JSON")) {
                let (kind, end) = match next_sig(tokens, j + 1) {
                    Some(k)
                        if ["VALUE", "SCALAR", "ARRAY", "OBJECT"]
                            .iter()
                            .any(|w| word(&tokens[k], w)) =>
                    {
                        (tokens[k].token.to_string().to_ascii_uppercase(), k + 1)
                    }
                    _ => ("VALUE".to_string(), j + 1),
                };
                out.push(make(if negated { Token::Neq } else { Token::Eq }, t));
                out.push(space(t));
                out.push(name("__weir_is_json", &tokens[j]));
                out.push(make(Token::LParen, &tokens[j]));
                out.push(make(Token::SingleQuotedString(kind), &tokens[j]));
                out.push(make(Token::RParen, &tokens[j]));
                i = end;
                continue;
            }
        }
        // CASE x WHEN a, b THEN r … END (a simple CASE with several values in a WHEN)
        if word(t, "CASE")
            && let Some(n) = simple_case(tokens, i, out)?
        {
            i = n;
            continue;
        }
        // INTERVAL 'text' UNIT TO UNIT
        if word(t, "INTERVAL")
            && let Some((text, end)) = interval_range(tokens, i)?
        {
            out.push(t.clone());
            out.push(space(t));
            out.push(make(Token::SingleQuotedString(text), t));
            i = end;
            continue;
        }
        // MAP[…] and ARRAY[…]
        let constructor = ["MAP", "ARRAY"].into_iter().find(|c| word(t, c));
        if let Some(c) = constructor
            && let Some(j) = next
            && tokens[j].token == Token::LBracket
        {
            let close = closing(tokens, j)?;
            if c == "MAP" {
                let parts = split_commas(tokens, j + 1..close);
                if parts.len() % 2 == 1 || parts.iter().any(|p| blank(&tokens[p.clone()])) {
                    return Err(sql_err(
                        "MAP[…] takes keys and values in pairs: MAP['a', 1, 'b', 2]",
                        t,
                    ));
                }
            }
            let f = if c == "MAP" {
                "__weir_map"
            } else {
                "make_array"
            };
            out.push(name(f, t));
            out.push(make(Token::LParen, &tokens[j]));
            rewrite_into(&tokens[j + 1..close], out)?;
            out.push(make(Token::RParen, &tokens[close]));
            i = close + 1;
            continue;
        }
        // JSON_VALUE / JSON_QUERY / JSON_EXISTS with clauses.
        let query_fn = ["JSON_VALUE", "JSON_QUERY", "JSON_EXISTS"]
            .into_iter()
            .find(|f| word(t, f));
        if let Some(f) = query_fn
            && let Some(open) = next
            && tokens[open].token == Token::LParen
            && let Some(n) = json_clauses(tokens, f, i, open, out)?
        {
            i = n;
            continue;
        }
        // JSON_OBJECT(…), JSON_ARRAY(…), JSON_OBJECTAGG(…), JSON_ARRAYAGG(…)
        let json = [
            "JSON_OBJECT",
            "JSON_ARRAY",
            "JSON_OBJECTAGG",
            "JSON_ARRAYAGG",
        ]
        .into_iter()
        .find(|f| word(t, f));
        if let Some(f) = json
            && let Some(open) = next
            && tokens[open].token == Token::LParen
        {
            let close = closing(tokens, open)?;
            let object = f.starts_with("JSON_OBJECT");
            let aggregate = f.ends_with("AGG");
            // The ON NULL clause, last inside the parentheses.
            let sig: Vec<usize> = (open + 1..close).filter(|&k| !is_ws(&tokens[k])).collect();
            let (mode, body_end) = match sig.as_slice() {
                [.., a, b, c] if word(&tokens[*b], "ON") && word(&tokens[*c], "NULL") => {
                    if word(&tokens[*a], "NULL") {
                        ("NULL", *a)
                    } else if word(&tokens[*a], "ABSENT") {
                        ("ABSENT", *a)
                    } else {
                        return Err(sql_err(
                            format!("{f}: expected NULL ON NULL or ABSENT ON NULL"),
                            &tokens[*a],
                        ));
                    }
                }
                _ => (if object { "NULL" } else { "ABSENT" }, close),
            };
            out.push(name(&format!("__weir_{}", f.to_ascii_lowercase()), t));
            out.push(make(Token::LParen, &tokens[open]));
            out.push(make(Token::SingleQuotedString(mode.into()), &tokens[open]));
            let body = &tokens[open + 1..body_end];
            let entries: Vec<_> = split_commas(tokens, open + 1..body_end)
                .into_iter()
                .filter(|p| !blank(&tokens[p.clone()]))
                .collect();
            let bad_entry = object
                && entries
                    .iter()
                    .any(|p| find_top(&tokens[..p.end], p.start, |t| word(t, "VALUE")).is_none());
            if bad_entry {
                return Err(sql_err(
                    format!(
                        "{f} takes [KEY] key VALUE value entries, such as {f}(KEY 'a' VALUE 1)"
                    ),
                    t,
                ));
            }
            if aggregate && find_top(&tokens[..body_end], open + 1, |t| word(t, "ORDER")).is_some()
            {
                return Err(sql_err(
                    format!(
                        "{f} takes no ORDER BY (nor does Flink's): rows are aggregated as they arrive"
                    ),
                    t,
                ));
            }
            if aggregate && entries.len() != 1 {
                return Err(sql_err(
                    format!(
                        "{f} takes one {}",
                        if object {
                            "KEY key VALUE value entry"
                        } else {
                            "value"
                        }
                    ),
                    t,
                ));
            }
            if body.iter().any(|t| !is_ws(t)) {
                out.push(make(Token::Comma, &tokens[open]));
            }
            if object {
                // [KEY] k VALUE v: KEY goes, VALUE becomes a comma; keys and values are
                // rewritten whole (they may hold constructs of their own).
                let mut at_start = true;
                let mut k = 0;
                while k < body.len() {
                    let b = &body[k];
                    if is_ws(b) || b.token == Token::Comma {
                        at_start = at_start || b.token == Token::Comma;
                        out.push(b.clone());
                        k += 1;
                    } else if at_start && word(b, "KEY") {
                        at_start = false;
                        k += 1;
                    } else if word(b, "VALUE") {
                        out.push(make(Token::Comma, b));
                        at_start = false;
                        k += 1;
                    } else {
                        let end =
                            find_top(body, k, |t| t.token == Token::Comma || word(t, "VALUE"))
                                .unwrap_or(body.len());
                        rewrite_into(&body[k..end], out)?;
                        at_start = false;
                        k = end;
                    }
                }
            } else {
                rewrite_into(body, out)?;
            }
            out.push(make(Token::RParen, &tokens[close]));
            i = close + 1;
            continue;
        }
        out.push(t.clone());
        i += 1;
    }
    Ok(())
}

/// The units of an interval range, in order.
const UNITS: [&str; 6] = ["YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"];

/// After a unit word at `k`, its optional precision `(n)`: the index after it.
fn skip_precision(tokens: &[TokenWithSpan], k: usize) -> usize {
    if let Some(open) = next_sig(tokens, k + 1)
        && tokens[open].token == Token::LParen
        && let Some(n) = next_sig(tokens, open + 1)
        && matches!(tokens[n].token, Token::Number(..))
        && let Some(close) = next_sig(tokens, n + 1)
        && tokens[close].token == Token::RParen
    {
        return close + 1;
    }
    k + 1
}

/// `INTERVAL 'text' FROM TO TO` at `at`: the text DataFusion reads and the index after it,
/// or None for an interval that is not a range. Errors: a range Flink does not have, or
/// text that does not fit it.
fn interval_range(tokens: &[TokenWithSpan], at: usize) -> Result<Option<(String, usize)>> {
    let Some(j) = next_sig(tokens, at + 1) else {
        return Ok(None);
    };
    let Token::SingleQuotedString(text) = &tokens[j].token else {
        return Ok(None);
    };
    let unit = |k: usize| UNITS.iter().position(|u| word(&tokens[k], u));
    let Some(k) = next_sig(tokens, j + 1) else {
        return Ok(None);
    };
    let Some(a) = unit(k) else {
        return Ok(None);
    };
    let Some(to) =
        next_sig(tokens, skip_precision(tokens, k)).filter(|&to| word(&tokens[to], "TO"))
    else {
        return Ok(None);
    };
    let m = next_sig(tokens, to + 1)
        .ok_or_else(|| sql_err("INTERVAL … TO needs a unit", &tokens[to]))?;
    let b = unit(m).ok_or_else(|| sql_err("INTERVAL … TO needs a unit", &tokens[m]))?;
    if a >= b || (a < 2 && b >= 2) {
        return Err(sql_err(
            format!(
                "INTERVAL {} TO {} is not a range: use YEAR TO MONTH, or one within DAY TO SECOND",
                UNITS[a], UNITS[b]
            ),
            &tokens[k],
        ));
    }
    let shape = match (a, b) {
        (0, 1) => "'y-m'",
        (2, 3) => "'d hh'",
        (2, 4) => "'d hh:mm'",
        (2, 5) => "'d hh:mm:ss.fff'",
        (3, 4) => "'hh:mm'",
        (3, 5) => "'hh:mm:ss.fff'",
        _ => "'mm:ss.fff'",
    };
    let bad = || {
        sql_err(
            format!(
                "'{text}' is not an INTERVAL {} TO {}: write it as {shape}",
                UNITS[a], UNITS[b]
            ),
            &tokens[j],
        )
    };
    let names = ["years", "months", "days", "hours", "minutes", "seconds"];
    let body = text.trim();
    let (sign, body) = match body.strip_prefix('-') {
        Some(t) => ("-", t),
        None => ("", body.strip_prefix('+').unwrap_or(body)),
    };
    let parts: Vec<&str> = if a < 2 {
        body.split('-').collect()
    } else {
        body.split([' ', ':']).filter(|p| !p.is_empty()).collect()
    };
    if parts.len() != b - a + 1 {
        return Err(bad());
    }
    let mut out = vec![];
    for (n, p) in parts.iter().enumerate() {
        let u = a + n;
        // Fields after the first stay within their unit.
        let limit = match u {
            _ if n == 0 => f64::INFINITY,
            1 => 12.0,
            3 => 24.0,
            _ => 60.0,
        };
        let digits = p
            .chars()
            .all(|c| c.is_ascii_digit() || (u == 5 && c == '.'));
        if p.is_empty() || !digits || !p.parse::<f64>().is_ok_and(|v| v < limit) {
            return Err(bad());
        }
        out.push(format!("{sign}{p} {}", names[u]));
    }
    Ok(Some((out.join(" "), skip_precision(tokens, m))))
}

/// A simple `CASE x WHEN a, b THEN r … END` (its `CASE` at `at`) with several values in
/// some `WHEN`, written into `out` in the searched form `CASE WHEN (x) IN (a, b) THEN r …
/// END`; returns the index after its `END`, or None (nothing written) for any other CASE.
fn simple_case(
    tokens: &[TokenWithSpan],
    at: usize,
    out: &mut Vec<TokenWithSpan>,
) -> Result<Option<usize>> {
    let Some(end) = find_top(tokens, at + 1, |t| word(t, "END")) else {
        return Ok(None);
    };
    let inner = &tokens[..end];
    let Some(first) = find_top(inner, at + 1, |t| word(t, "WHEN")) else {
        return Ok(None);
    };
    if blank(&tokens[at + 1..first]) {
        return Ok(None);
    }
    type Arm = (
        usize,
        Vec<std::ops::Range<usize>>,
        usize,
        std::ops::Range<usize>,
    );
    let mut arms: Vec<Arm> = vec![];
    let mut otherwise = None;
    let mut k = first;
    loop {
        let then = find_top(inner, k + 1, |t| word(t, "THEN"))
            .ok_or_else(|| sql_err("this WHEN has no THEN", &tokens[k]))?;
        let next = find_top(inner, then + 1, |t| word(t, "WHEN") || word(t, "ELSE")).unwrap_or(end);
        arms.push((k, split_commas(tokens, k + 1..then), then, then + 1..next));
        if next == end {
            break;
        }
        if word(&tokens[next], "ELSE") {
            otherwise = Some((next, next + 1..end));
            break;
        }
        k = next;
    }
    if arms.iter().all(|a| a.1.len() == 1) {
        return Ok(None);
    }
    let t = &tokens[at];
    out.push(t.clone());
    for (when, values, then, result) in arms {
        if values.iter().any(|v| blank(&tokens[v.clone()])) {
            return Err(sql_err("a value of this WHEN is missing", &tokens[when]));
        }
        out.push(space(t));
        out.push(tokens[when].clone());
        out.push(space(t));
        out.push(make(Token::LParen, t));
        rewrite_into(&tokens[at + 1..first], out)?;
        out.push(make(Token::RParen, t));
        out.push(space(t));
        out.push(name("IN", &tokens[when]));
        out.push(make(Token::LParen, &tokens[when]));
        for (n, v) in values.into_iter().enumerate() {
            if n > 0 {
                out.push(make(Token::Comma, &tokens[when]));
            }
            rewrite_into(&tokens[v], out)?;
        }
        out.push(make(Token::RParen, &tokens[when]));
        out.push(space(t));
        out.push(tokens[then].clone());
        rewrite_into(&tokens[result], out)?;
    }
    if let Some((at_else, rest)) = otherwise {
        out.push(space(t));
        out.push(tokens[at_else].clone());
        rewrite_into(&tokens[rest], out)?;
    }
    out.push(space(t));
    out.push(tokens[end].clone());
    Ok(Some(end + 1))
}

/// Where the clauses of a JSON query function start: the first top-level word of
/// `tokens[from..]` that begins one.
fn clause_start(tokens: &[TokenWithSpan], from: usize) -> Option<usize> {
    let (mut depth, mut k) = (0, from);
    while k < tokens.len() {
        let t = &tokens[k];
        if depth == 0 {
            let on_next = next_sig(tokens, k + 1).is_some_and(|n| word(&tokens[n], "ON"));
            if ["RETURNING", "DEFAULT", "WITH", "WITHOUT", "EMPTY"]
                .iter()
                .any(|w| word(t, w))
                || (["NULL", "ERROR", "TRUE", "FALSE", "UNKNOWN"]
                    .iter()
                    .any(|w| word(t, w))
                    && on_next)
            {
                return Some(k);
            }
        }
        depth += nesting(t);
        if depth < 0 {
            return None;
        }
        k += 1;
    }
    None
}

/// Rewrites `f(json, path <clauses>)` (`f` one of JSON_VALUE, JSON_QUERY, JSON_EXISTS,
/// its name at `at_name` and its `(` at `open`) into `out`; returns the index after its `)`, or None (nothing
/// written) when the call has no clauses.
fn json_clauses(
    tokens: &[TokenWithSpan],
    f: &str,
    at_name: usize,
    open: usize,
    out: &mut Vec<TokenWithSpan>,
) -> Result<Option<usize>> {
    let close = closing(tokens, open)?;
    let inner = &tokens[..close];
    let Some(comma) = find_top(inner, open + 1, |t| t.token == Token::Comma) else {
        return Ok(None);
    };
    let Some(start) = clause_start(inner, comma + 1) else {
        return Ok(None);
    };
    let t = &tokens[open];
    let sig: Vec<usize> = (start..close).filter(|&k| !is_ws(&tokens[k])).collect();
    let at = |k: usize| &tokens[sig[k]];
    let is = |k: usize, w: &str| k < sig.len() && word(at(k), w);
    let bad = |k: usize, what: &str| {
        sql_err(
            format!("{f}: expected {what}"),
            if k < sig.len() { at(k) } else { &tokens[close] },
        )
    };
    // (mode, default tokens) for ON EMPTY and ON ERROR; the wrapper; RETURNING's type.
    let mut on_empty: (String, Option<std::ops::Range<usize>>) = ("NULL".into(), None);
    let mut on_error: (String, Option<std::ops::Range<usize>>) = (
        if f == "JSON_EXISTS" { "FALSE" } else { "NULL" }.into(),
        None,
    );
    let mut wrapper = "WITHOUT".to_string();
    let mut returning: Option<std::ops::Range<usize>> = None;
    let mut k = 0;
    while k < sig.len() {
        if is(k, "RETURNING") && f == "JSON_VALUE" {
            // The type runs to the next clause.
            let from = sig[k] + 1;
            let end = clause_start(inner, from).unwrap_or(close);
            returning = Some(from..end);
            k = sig.iter().position(|&x| x >= end).unwrap_or(sig.len());
            continue;
        }
        if (is(k, "WITH") || is(k, "WITHOUT")) && f == "JSON_QUERY" {
            let mut kind = if is(k, "WITH") {
                "UNCONDITIONAL"
            } else {
                "WITHOUT"
            };
            k += 1;
            if kind != "WITHOUT" && (is(k, "CONDITIONAL") || is(k, "UNCONDITIONAL")) {
                if is(k, "CONDITIONAL") {
                    kind = "CONDITIONAL";
                }
                k += 1;
            }
            if is(k, "ARRAY") {
                k += 1;
            }
            if !is(k, "WRAPPER") {
                return Err(bad(k, "WRAPPER"));
            }
            wrapper = kind.to_string();
            k += 1;
            continue;
        }
        // <behaviour> ON EMPTY | ON ERROR
        let (mode, default, after) = if is(k, "DEFAULT") && f == "JSON_VALUE" {
            let from = sig[k] + 1;
            let on = find_top(inner, from, |t| word(t, "ON"))
                .ok_or_else(|| bad(k, "ON EMPTY or ON ERROR after DEFAULT"))?;
            let next = sig.iter().position(|&x| x == on).unwrap_or(sig.len());
            ("DEFAULT".to_string(), Some(from..on), next)
        } else if is(k, "EMPTY") && f == "JSON_QUERY" && (is(k + 1, "ARRAY") || is(k + 1, "OBJECT"))
        {
            (
                format!("EMPTY {}", at(k + 1).token.to_string().to_ascii_uppercase()),
                None,
                k + 2,
            )
        } else if ["NULL", "ERROR"].iter().any(|w| is(k, w))
            || (f == "JSON_EXISTS" && ["TRUE", "FALSE", "UNKNOWN"].iter().any(|w| is(k, w)))
        {
            (at(k).token.to_string().to_ascii_uppercase(), None, k + 1)
        } else {
            return Err(bad(
                k,
                "a clause (RETURNING, WRAPPER, … ON EMPTY, … ON ERROR)",
            ));
        };
        if !is(after, "ON") {
            return Err(bad(after, "ON EMPTY or ON ERROR"));
        }
        if is(after + 1, "EMPTY") && f != "JSON_EXISTS" {
            on_empty = (mode, default);
        } else if is(after + 1, "ERROR") {
            on_error = (mode, default);
        } else {
            return Err(bad(after + 1, "EMPTY or ERROR after ON"));
        }
        k = after + 2;
    }
    let quoted = |s: &str| make(Token::SingleQuotedString(s.to_string()), t);
    if returning.is_some() {
        out.push(name("CAST", &tokens[at_name]));
        out.push(make(Token::LParen, t));
    }
    out.push(name(&f.to_ascii_lowercase(), &tokens[at_name]));
    out.push(make(Token::LParen, t));
    rewrite_into(&tokens[open + 1..start], out)?;
    let behaviour = |b: &(String, Option<std::ops::Range<usize>>),
                     out: &mut Vec<TokenWithSpan>|
     -> Result<()> {
        out.push(make(Token::Comma, t));
        out.push(quoted(&b.0));
        if f == "JSON_VALUE" {
            out.push(make(Token::Comma, t));
            match &b.1 {
                // The default as text, as the value would be (RETURNING casts both).
                Some(r) => {
                    out.push(name("CAST", t));
                    out.push(make(Token::LParen, t));
                    rewrite_into(&tokens[r.clone()], out)?;
                    out.push(space(t));
                    out.push(name("AS", t));
                    out.push(space(t));
                    out.push(name("STRING", t));
                    out.push(make(Token::RParen, t));
                }
                None => out.push(name("NULL", t)),
            }
        }
        Ok(())
    };
    match f {
        "JSON_VALUE" => {
            behaviour(&on_empty, out)?;
            behaviour(&on_error, out)?;
        }
        "JSON_QUERY" => {
            out.push(make(Token::Comma, t));
            out.push(quoted(&wrapper));
            behaviour(&on_empty, out)?;
            behaviour(&on_error, out)?;
        }
        _ => behaviour(&on_error, out)?,
    }
    out.push(make(Token::RParen, &tokens[close]));
    if let Some(r) = returning {
        out.push(space(t));
        out.push(name("AS", t));
        out.push(space(t));
        out.extend(tokens[r].iter().cloned());
        out.push(make(Token::RParen, &tokens[close]));
    }
    Ok(Some(close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    fn rewritten(sql: &str) -> String {
        let tokens = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .expect("tokens");
        rewrite_tokens(tokens)
            .expect("rewrite")
            .iter()
            .map(|t| t.token.to_string())
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn forms() {
        assert_eq!(
            rewritten("x BETWEEN SYMMETRIC f(1, 2) AND 3"),
            "x BETWEEN __weir_symmetric( f(1, 2) ) AND 3"
        );
        assert_eq!(
            rewritten("x BETWEEN ASYMMETRIC 1 AND 3"),
            "x BETWEEN 1 AND 3"
        );
        assert_eq!(
            rewritten("'1' IS NOT JSON SCALAR"),
            "'1' <> __weir_is_json('SCALAR')"
        );
        assert_eq!(
            rewritten("a IS JSON AND b"),
            "a = __weir_is_json('VALUE') AND b"
        );
        assert_eq!(
            rewritten("CASE x WHEN 1, 2 THEN 'a' WHEN 3 THEN 'b' ELSE 'c' END"),
            "CASE WHEN ( x ) IN( 1, 2 ) THEN 'a' WHEN ( x ) IN( 3 ) THEN 'b' ELSE 'c' END"
        );
        assert_eq!(
            rewritten("INTERVAL '2-10' YEAR TO MONTH"),
            "INTERVAL '2 years 10 months'"
        );
        assert_eq!(
            rewritten("CASE WHEN f(a, b) THEN 1 END"),
            "CASE WHEN f(a, b) THEN 1 END"
        );
        assert_eq!(rewritten("MAP['a', 1]"), "__weir_map('a', 1)");
        assert_eq!(rewritten("ARRAY[t.a, 2]"), "make_array(t.a, 2)");
        assert_eq!(
            rewritten("JSON_OBJECT(KEY 'K1' VALUE JSON_ARRAY(1) ABSENT ON NULL)"),
            "__weir_json_object('ABSENT', 'K1' , __weir_json_array('ABSENT',1) )"
        );
        assert_eq!(rewritten("JSON_ARRAY()"), "__weir_json_array('ABSENT')");
        assert_eq!(
            rewritten("JSON_VALUE(j, 'strict $.b' RETURNING INT DEFAULT f(1, 2) ON ERROR)"),
            "CAST(json_value(j, 'strict $.b' ,'NULL',NULL,'DEFAULT',CAST( f(1, 2) AS STRING)) AS INT )"
        );
        assert_eq!(
            rewritten("JSON_QUERY('{}', '$' WITH CONDITIONAL ARRAY WRAPPER EMPTY OBJECT ON EMPTY)"),
            "json_query('{}', '$' ,'CONDITIONAL','EMPTY OBJECT','NULL')"
        );
        assert_eq!(
            rewritten("JSON_EXISTS('{}', 'strict $.b' TRUE ON ERROR)"),
            "json_exists('{}', 'strict $.b' ,'TRUE')"
        );
        assert_eq!(rewritten("JSON_VALUE(j, '$.a')"), "JSON_VALUE(j, '$.a')");
        assert_eq!(
            rewritten("JSON_OBJECTAGG(KEY k VALUE v)"),
            "__weir_json_objectagg('NULL', k , v)"
        );
    }
}
