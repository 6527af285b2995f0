//! Tab completion by position in the statement, as psql and datafusion-cli complete:
//!
//! - after `FROM`, `JOIN`, `TABLE`, `INTO`, `DESCRIBE`, `DROP TABLE|VIEW` and `\d`: tables
//!   and views;
//! - after `alias.` (or `table.`): that relation's columns; after `alias.col.`: the fields
//!   of a `ROW` column;
//! - inside `DESCRIPTOR(`: the time attributes (a `WATERMARK` column or `PROCTIME()`) of the
//!   tables the statement reads;
//! - inside quotes after `'connector' =`: the connectors; inside a `WITH (…)` clause: the
//!   options of the statement's connector (every connector's when none is named yet); after
//!   `SET`: the settings; after `FROM` or `\i`: file paths;
//! - a word starting with `\`: the meta commands;
//! - the statement's own `WITH` queries and derived tables count as relations (see
//!   [`local_relations`]);
//! - anywhere else: the columns of the relations the statement reads, then functions, then
//!   keywords — only columns when nothing is typed yet; before the statement reads any
//!   relation (`SELECT ` typed first), every relation's columns, then functions.
//!
//! [`complete`] is a pure function of the text and a [`Catalog`] snapshot, so it is tested
//! without a terminal.

use std::collections::BTreeSet;

/// What completion knows of the session, refreshed after every statement.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub relations: Vec<Relation>,
    /// Scalar and aggregate functions, as the user types them (upper case).
    pub functions: Vec<String>,
    pub keywords: Vec<String>,
    pub connectors: Vec<String>,
    /// Per connector (`kafka`), the option keys it accepts; per connector and format it
    /// reads (`kafka/json`), those and the format's.
    pub options: Vec<(String, Vec<String>)>,
    pub settings: Vec<String>,
    pub meta: Vec<String>,
}

/// A table or view as completion sees it.
#[derive(Debug, Clone, Default)]
pub struct Relation {
    pub name: String,
    /// Columns with, for a `ROW` column, its fields.
    pub columns: Vec<(String, Vec<String>)>,
    /// The columns that are time attributes.
    pub time_columns: Vec<String>,
}

/// Where the word being completed starts in `before` (the text up to the cursor), and the
/// candidates that replace it, in the order to show them.
pub fn complete(cat: &Catalog, before: &str, whole: &str) -> (usize, Vec<String>) {
    // Inside an open quote: a connector, an option key, a setting or a path.
    if let Some(q) = open_quote(before) {
        let word = &before[q + 1..];
        let lead = before[..q].trim_end();
        let upper = lead.to_ascii_uppercase();
        let candidates: Vec<String> = if lead.ends_with('=')
            && last_quoted(&lead[..lead.len() - 1]).as_deref() == Some("connector")
        {
            cat.connectors.clone()
        } else if upper.ends_with("FROM") || upper.ends_with("JOIN") {
            return (q + 1, paths(word));
        } else if upper.ends_with("SET") {
            cat.settings.clone()
        } else if in_with_clause(lead) && (lead.ends_with('(') || lead.ends_with(',')) {
            let keys = match option_of(whole, "connector") {
                Some(c) => {
                    let of = |name: &str| {
                        cat.options
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, o)| o.clone())
                    };
                    option_of(whole, "format")
                        .and_then(|f| of(&format!("{c}/{f}")))
                        .or_else(|| of(&c))
                        .unwrap_or_default()
                }
                None => {
                    let all: BTreeSet<String> =
                        cat.options.iter().flat_map(|(_, o)| o.clone()).collect();
                    all.into_iter().collect()
                }
            };
            // A key the clause has already is not offered again.
            keys.into_iter()
                .filter(|k| option_of(whole, k).is_none())
                .collect()
        } else {
            vec![]
        };
        let picked = matching(&candidates, word)
            .into_iter()
            .map(|c| format!("{c}'"))
            .collect();
        return (q + 1, picked);
    }
    let trimmed = before.trim_start();
    // `\i FILE`: a path; `\d NAME`: a relation; `\…`: a meta command.
    if let Some(rest) = trimmed.strip_prefix("\\i ") {
        let start = before.len() - rest.len();
        return (start, paths(rest));
    }
    let start = word_start(before, |c| c.is_alphanumeric() || "_.$\\".contains(c));
    let word = &before[start..];
    if word.starts_with('\\') {
        return (start, matching(&cat.meta, word));
    }
    // The statement's own relations: its `WITH` queries and its derived tables.
    let local = local_relations(whole, cat);
    let subqueries: Vec<String> = local
        .iter()
        .filter(|(_, derived)| *derived)
        .map(|(r, _)| r.name.clone())
        .collect();
    let extended;
    let cat = if local.is_empty() {
        cat
    } else {
        let mut c = cat.clone();
        // Ahead of the catalog's: a WITH query hides a table of its name.
        c.relations = local
            .into_iter()
            .map(|(r, _)| r)
            .chain(c.relations)
            .collect();
        extended = c;
        &extended
    };
    let names = || -> Vec<String> {
        let mut seen = BTreeSet::new();
        cat.relations
            .iter()
            .filter(|r| !subqueries.contains(&r.name) && seen.insert(r.name.clone()))
            .map(|r| r.name.clone())
            .collect()
    };
    if trimmed.starts_with("\\d ") {
        return (start, matching(&names(), word));
    }
    // `alias.col…`: the columns of the relation the alias names, or a ROW column's fields.
    if let Some(dot) = word.rfind('.') {
        let path: Vec<&str> = word[..dot].split('.').collect();
        let after = &word[dot + 1..];
        let scope = aliases(whole);
        // A derived table's alias names it, not the table its query reads last
        // (`(SELECT … FROM events) AS t`).
        let relation = match subqueries.iter().any(|n| n == path[0]) {
            true => path[0],
            false => scope
                .iter()
                .find(|(alias, _)| *alias == path[0])
                .map(|(_, r)| r.as_str())
                .unwrap_or(path[0]),
        };
        let Some(r) = cat.relations.iter().find(|r| r.name == relation) else {
            return (start + dot + 1, vec![]);
        };
        let candidates: Vec<String> = match path.as_slice() {
            [_] => r.columns.iter().map(|(c, _)| c.clone()).collect(),
            [_, col] => r
                .columns
                .iter()
                .find(|(c, _)| c == col)
                .map(|(_, f)| f.clone())
                .unwrap_or_default(),
            _ => vec![],
        };
        return (start + dot + 1, matching(&candidates, after));
    }
    let head = before[..start].trim_end();
    let previous = last_word(head).to_ascii_uppercase();
    let upper_head = head.to_ascii_uppercase();
    if matches!(
        previous.as_str(),
        "FROM" | "JOIN" | "TABLE" | "INTO" | "DESCRIBE" | "DESC" | "EXTENDED" | "VIEW" | "EXISTS"
    ) || upper_head.ends_with("SHOW CREATE TABLE")
    {
        return (start, matching(&names(), word));
    }
    let in_scope: Vec<&Relation> = {
        let scope = aliases(whole);
        let mut seen = BTreeSet::new();
        cat.relations
            .iter()
            .filter(|r| {
                (scope.iter().any(|(_, name)| *name == r.name) || subqueries.contains(&r.name))
                    && seen.insert(r.name.clone())
            })
            .collect()
    };
    if inside_call(head, "DESCRIPTOR") {
        let mut times: Vec<String> = in_scope
            .iter()
            .flat_map(|r| r.time_columns.clone())
            .collect();
        if times.is_empty() {
            times = cat
                .relations
                .iter()
                .flat_map(|r| r.time_columns.clone())
                .collect();
        }
        times.sort();
        times.dedup();
        return (start, matching(&times, word));
    }
    // Before a query names what it reads (`SELECT ` typed first), the columns of every
    // relation, and the functions.
    let nothing_read = in_scope.is_empty() && is_query(head);
    let read: Vec<&Relation> = match nothing_read {
        true => cat.relations.iter().collect(),
        false => in_scope,
    };
    let mut columns: Vec<String> = read
        .iter()
        .flat_map(|r| r.columns.iter().map(|(c, _)| c.clone()))
        .collect();
    let mut seen = BTreeSet::new();
    columns.retain(|c| seen.insert(c.clone()));
    let mut out = matching(&columns, word);
    if !word.is_empty() || nothing_read {
        out.extend(matching(&cat.functions, word));
    }
    if !word.is_empty() {
        out.extend(matching(&cat.keywords, word));
    }
    (start, out)
}

/// Whether `text` (a statement up to the cursor) is a query so far: a `SELECT` or `WITH`, or
/// an `INSERT` that has come to its `SELECT` — not a `CREATE TABLE`'s column list, say.
fn is_query(text: &str) -> bool {
    let upper = text.trim_start().to_ascii_uppercase();
    upper.starts_with("WITH")
        || upper
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .any(|w| w == "SELECT")
}

/// The candidates that start with `word` (ignoring case), not `word` itself, in order.
fn matching(candidates: &[String], word: &str) -> Vec<String> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .filter(|c| c.to_ascii_lowercase().starts_with(&lower) && c.as_str() != word)
        .cloned()
        .collect()
}

/// The byte position of the quote that opens the string the cursor is in, if it is in one
/// (`''` inside a string is a quote, as SQL writes it).
fn open_quote(text: &str) -> Option<usize> {
    let mut open = None;
    for (i, c) in text.char_indices() {
        if c == '\'' {
            open = match open {
                None => Some(i),
                Some(_) => None,
            };
        }
    }
    open
}

/// The last quoted string in `text` (`'connector'` → `connector`).
fn last_quoted(text: &str) -> Option<String> {
    let t = text.trim_end();
    let inner = t.strip_suffix('\'')?;
    let open = inner.rfind('\'')?;
    Some(inner[open + 1..].to_string())
}

/// The last word of `text` (letters, digits and `_`, or `\d`-like commands).
fn last_word(text: &str) -> &str {
    let t = text.trim_end();
    &t[word_start(t, |c| c.is_alphanumeric() || c == '_' || c == '\\')..]
}

/// Where the run of characters `in_word` accepts that ends `text` starts (a byte offset on
/// a character boundary: the character before it may be several bytes, as `≥`).
fn word_start(text: &str, in_word: impl Fn(char) -> bool) -> usize {
    text.char_indices()
        .rev()
        .find(|(_, c)| !in_word(*c))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// True when the text ends inside the parentheses of a `WITH (` clause.
fn in_with_clause(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    let Some(at) = upper.rfind("WITH") else {
        return false;
    };
    let after = &text[at + 4..];
    let opens = after.matches('(').count();
    let closes = after.matches(')').count();
    after.trim_start().starts_with('(') && opens > closes
}

/// True when the text ends inside the parentheses of a call of `name` (`DESCRIPTOR(`).
fn inside_call(text: &str, name: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    let Some(at) = upper.rfind(&format!("{name}(")) else {
        return false;
    };
    !text[at..].contains(')')
}

/// The value a statement gives option `key` (`'connector' = 'kafka'` for `connector`), if
/// it gives one.
fn option_of(statement: &str, key: &str) -> Option<String> {
    let lower = statement.to_ascii_lowercase();
    let quoted = format!("'{}'", key.to_ascii_lowercase());
    let mut from = 0;
    while let Some(found) = lower[from..].find(&quoted) {
        let at = from + found;
        from = at + quoted.len();
        let rest = statement[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('\'') else {
            continue;
        };
        let end = rest.find('\'')?;
        return Some(rest[..end].to_string());
    }
    None
}

/// The relations a statement reads, with the name each goes by (`FROM bid B` gives
/// `(B, bid)` and `(bid, bid)`; `TABLE(TUMBLE(TABLE bid, …))` gives `(bid, bid)`).
fn aliases(statement: &str) -> Vec<(String, String)> {
    let words: Vec<&str> = statement
        .split(|c: char| c.is_whitespace() || "(),;".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = vec![];
    for (i, w) in words.iter().enumerate() {
        if !matches!(
            w.to_ascii_uppercase().as_str(),
            "FROM" | "JOIN" | "TABLE" | "INTO"
        ) {
            continue;
        }
        let Some(name) = words.get(i + 1) else {
            continue;
        };
        let name = name.trim_matches('`').to_string();
        out.push((name.clone(), name.clone()));
        let mut next = i + 2;
        if words
            .get(next)
            .is_some_and(|w| w.eq_ignore_ascii_case("AS"))
        {
            next += 1;
        }
        if let Some(alias) = words.get(next)
            && !is_reserved(alias)
            && is_identifier(alias)
        {
            out.push((alias.to_string(), name));
        }
    }
    out
}

/// The relations a statement defines itself, as `(relation, derived)`: each `WITH name AS
/// (SELECT …)` query (`derived` false: it is read by name after `FROM`) and each derived
/// table `(SELECT …) AS x` (`derived` true: in scope where it stands). Their columns are
/// the inner select list's names, as Flink (Calcite) names them: an alias, a column's
/// last field, the columns `*` and `t.*` stand for, `EXPR$n` for another expression.
fn local_relations(statement: &str, cat: &Catalog) -> Vec<(Relation, bool)> {
    let mut out: Vec<(Relation, bool)> = vec![];
    for (open, _) in statement.match_indices('(') {
        let inner_start = open + 1;
        let rest = statement[inner_start..].trim_start();
        if !rest
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"))
        {
            continue;
        }
        let close = closing_paren(statement, open);
        let inner = &statement[inner_start..close.unwrap_or(statement.len())];
        // Where the cursor's half-typed text still leaves the query open, it has columns
        // as far as they are typed.
        let columns = select_columns(inner, &out, cat);
        // `name AS (` after WITH or a comma: a WITH query.
        let before = statement[..open].trim_end();
        let words: Vec<&str> = before.split_whitespace().rev().take(3).collect();
        if let [as_kw, name, ..] = words.as_slice()
            && as_kw.eq_ignore_ascii_case("AS")
        {
            let lead = words.get(2).copied().unwrap_or("");
            let name_is_led =
                lead.eq_ignore_ascii_case("WITH") || lead.ends_with(',') || name.contains(',');
            if name_is_led {
                let name = name.rsplit(',').next().unwrap_or(name).trim_matches('`');
                if is_identifier(name) {
                    out.push((relation(name, columns), false));
                }
                continue;
            }
        }
        // `(SELECT …) [AS] x`: a derived table.
        let Some(close) = close else {
            continue;
        };
        let mut after = statement[close + 1..]
            .split(|c: char| c.is_whitespace() || "(),;".contains(c))
            .filter(|w| !w.is_empty());
        let mut alias = after.next();
        if alias.is_some_and(|a| a.eq_ignore_ascii_case("AS")) {
            alias = after.next();
        }
        if let Some(a) = alias.map(|a| a.trim_matches('`'))
            && is_identifier(a)
            && !is_reserved(a)
        {
            out.push((relation(a, columns), true));
        }
    }
    out
}

fn relation(name: &str, columns: Vec<String>) -> Relation {
    Relation {
        name: name.to_string(),
        columns: columns.into_iter().map(|c| (c, vec![])).collect(),
        time_columns: vec![],
    }
}

fn is_identifier(w: &str) -> bool {
    !w.is_empty()
        && w.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !w.starts_with(|c: char| c.is_ascii_digit())
}

/// Words that follow a relation and so are no alias of it.
fn is_reserved(w: &str) -> bool {
    [
        "WHERE",
        "JOIN",
        "LEFT",
        "RIGHT",
        "FULL",
        "INNER",
        "ON",
        "GROUP",
        "ORDER",
        "LIMIT",
        "UNION",
        "FOR",
        "CROSS",
        "WINDOW",
        "HAVING",
        "SELECT",
        "END",
        "FROM",
        "AND",
        "OR",
        "AS",
        "EXCEPT",
        "INTERSECT",
    ]
    .contains(&w.to_ascii_uppercase().as_str())
}

/// Each character of `text` with its byte position and the parenthesis depth after it, or
/// None for a quote and what it encloses (`'…'`, where `''` closes and reopens).
fn depths(text: &str) -> impl Iterator<Item = (usize, char, Option<usize>)> + '_ {
    let (mut depth, mut quoted) = (0usize, false);
    text.char_indices().map(move |(i, c)| {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
        let outside = !quoted && c != '\'';
        (i, c, outside.then_some(depth))
    })
}

/// The byte position of the `)` that closes the `(` at `open`, outside quotes; None while
/// it is still open.
fn closing_paren(text: &str, open: usize) -> Option<usize> {
    depths(&text[open..])
        .find(|&(_, c, d)| c == ')' && d == Some(0))
        .map(|(i, _, _)| open + i)
}

/// `text` split at the commas outside parentheses and quotes.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut from = 0;
    let mut parts = vec![];
    for (i, c, d) in depths(text) {
        if c == ',' && d == Some(0) {
            parts.push(&text[from..i]);
            from = i + 1;
        }
    }
    parts.push(&text[from..]);
    parts
}

/// The names of a `SELECT`'s columns (`query` starts at SELECT), as Flink names them; `*`
/// reads the relations in `local` (the statement's own, found so far) ahead of `cat`'s.
fn select_columns(query: &str, local: &[(Relation, bool)], cat: &Catalog) -> Vec<String> {
    let q = query.trim_start();
    let body = &q[6.min(q.len())..];
    // The select list ends at the first FROM outside parentheses and quotes.
    let upper = body.to_ascii_uppercase();
    let end = depths(body)
        .find(|&(i, _, d)| {
            d == Some(0)
                && upper[i..].starts_with("FROM")
                && body[..i].ends_with(char::is_whitespace)
                && !upper[i + 4..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
        .map_or(body.len(), |(i, _, _)| i);
    let list = body[..end].trim_start();
    let list = match list.get(..8) {
        Some(w) if w.eq_ignore_ascii_case("DISTINCT") => &list[8..],
        _ => list,
    };
    let scope = aliases(q);
    let mut names = vec![];
    for (i, item) in split_top_level(list).into_iter().enumerate() {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let words = split_top_level_words(item);
        let last = words.last().copied().unwrap_or("").trim_matches('`');
        if words.len() >= 3 && words[words.len() - 2].eq_ignore_ascii_case("AS") {
            names.push(last.to_string());
        } else if let Some(prefix) = item.strip_suffix('*') {
            // `*` or `t.*`: the columns of the relations it stands for.
            let alias = prefix.trim_end_matches('.').trim_matches('`');
            for (a, name) in &scope {
                if !alias.is_empty() && a != alias {
                    continue;
                }
                let mut known = local.iter().map(|(r, _)| r).chain(&cat.relations);
                if let Some(r) = known.find(|r| r.name == *name) {
                    names.extend(r.columns.iter().map(|(c, _)| c.clone()));
                }
            }
        } else if words.len() == 1 && item.split('.').all(|p| is_identifier(p.trim_matches('`'))) {
            names.push(
                last.rsplit('.')
                    .next()
                    .unwrap_or(last)
                    .trim_matches('`')
                    .to_string(),
            );
        } else if words.len() >= 2
            && is_identifier(last)
            && !is_reserved(last)
            && !words[words.len() - 2].ends_with(|c: char| "+-*/%=<>|".contains(c))
        {
            names.push(last.to_string());
        } else {
            names.push(format!("EXPR${i}"));
        }
    }
    let mut seen = BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// `text` split at the whitespace outside parentheses and quotes.
fn split_top_level_words(text: &str) -> Vec<&str> {
    let mut from = None;
    let mut words = vec![];
    for (i, c, d) in depths(text) {
        if c.is_whitespace() && d == Some(0) {
            if let Some(f) = from.take() {
                words.push(&text[f..i]);
            }
        } else if from.is_none() {
            from = Some(i);
        }
    }
    if let Some(f) = from {
        words.push(&text[f..]);
    }
    words
}

/// Files and folders whose path starts with `typed` (a folder gets a trailing `/`).
fn paths(typed: &str) -> Vec<String> {
    let (dir, prefix) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed),
    };
    let read = if dir.is_empty() { "." } else { dir };
    let Ok(entries) = std::fs::read_dir(read) else {
        return vec![];
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with(prefix) || (name.starts_with('.') && !prefix.starts_with('.')) {
                return None;
            }
            let slash = if e.path().is_dir() { "/" } else { "" };
            Some(format!("{dir}{name}{slash}"))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            relations: vec![
                Relation {
                    name: "bid".into(),
                    columns: vec![
                        ("auction".into(), vec![]),
                        ("bidder".into(), vec![]),
                        ("price".into(), vec![]),
                        ("dateTime".into(), vec![]),
                    ],
                    time_columns: vec!["dateTime".into()],
                },
                Relation {
                    name: "datagen".into(),
                    columns: vec![
                        ("event_type".into(), vec![]),
                        (
                            "person".into(),
                            vec!["id".into(), "name".into(), "city".into()],
                        ),
                    ],
                    time_columns: vec![],
                },
            ],
            functions: vec!["BIT_AND".into(), "COUNT".into(), "SUM".into()],
            keywords: vec!["BETWEEN".into(), "FROM".into(), "SELECT".into()],
            connectors: vec!["kafka".into(), "nexmark".into()],
            options: vec![
                ("kafka".into(), vec!["connector".into(), "topic".into()]),
                (
                    "nexmark".into(),
                    vec!["connector".into(), "events.num".into()],
                ),
                (
                    "filesystem".into(),
                    vec!["connector".into(), "format".into(), "path".into()],
                ),
                (
                    "filesystem/csv".into(),
                    vec![
                        "connector".into(),
                        "csv.header".into(),
                        "format".into(),
                        "path".into(),
                    ],
                ),
                (
                    "filesystem/json".into(),
                    vec![
                        "connector".into(),
                        "format".into(),
                        "json.fail-on-missing-field".into(),
                        "path".into(),
                    ],
                ),
            ],
            settings: vec!["table.exec.batch-size".into()],
            meta: vec!["\\d".into(), "\\jobs".into(), "\\x".into()],
        }
    }

    fn done(text: &str) -> Vec<String> {
        complete(&catalog(), text, text).1
    }

    #[test]
    fn after_from_only_relations() {
        assert_eq!(done("SELECT * FROM b"), ["bid"]);
        assert_eq!(done("SELECT * FROM "), ["bid", "datagen"]);
        assert_eq!(done("SELECT * FROM bid JOIN d"), ["datagen"]);
        assert_eq!(done("\\d "), ["bid", "datagen"]);
    }

    #[test]
    fn columns_of_the_relations_read_come_first() {
        // No relation read yet: every relation's columns, functions, then keywords; with
        // nothing typed, the columns and functions.
        assert_eq!(done("SELECT b"), ["bidder", "BIT_AND", "BETWEEN"]);
        assert_eq!(
            done("SELECT "),
            [
                "auction",
                "bidder",
                "price",
                "dateTime",
                "event_type",
                "person",
                "BIT_AND",
                "COUNT",
                "SUM"
            ]
        );
        // Not in a column list of CREATE TABLE.
        assert_eq!(done("CREATE TABLE t (a INT, b "), Vec::<String>::new());
        let text = "SELECT b";
        let whole = "SELECT b FROM bid";
        assert_eq!(
            complete(&catalog(), text, whole).1,
            ["bidder", "BIT_AND", "BETWEEN"]
        );
        // Nothing typed: the columns alone.
        assert_eq!(
            complete(&catalog(), "SELECT ", "SELECT  FROM bid").1,
            ["auction", "bidder", "price", "dateTime"]
        );
    }

    #[test]
    fn an_alias_dot_gives_its_columns_and_a_row_its_fields() {
        assert_eq!(
            done("SELECT B.p"),
            Vec::<String>::new(),
            "no alias B in scope yet"
        );
        let whole = "SELECT B.p FROM bid AS B";
        assert_eq!(
            complete(&catalog(), "SELECT B.p", whole),
            (9, vec!["price".into()])
        );
        let whole = "SELECT g.person.c FROM datagen g";
        assert_eq!(
            complete(&catalog(), "SELECT g.person.c", whole),
            (16, vec!["city".into()])
        );
    }

    #[test]
    fn descriptor_offers_time_attributes() {
        assert_eq!(
            done("SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR("),
            ["dateTime"]
        );
    }

    #[test]
    fn quoted_connectors_options_and_settings() {
        assert_eq!(
            done("CREATE TABLE t (a INT) WITH ('connector' = 'k"),
            ["kafka'"]
        );
        // The connector's own options, less those the clause has already.
        assert_eq!(
            done("CREATE TABLE t (a INT) WITH ('connector' = 'nexmark', '"),
            ["events.num'"]
        );
        // With a format, that format's options and no other's.
        assert_eq!(
            done("CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', '"),
            ["format'", "path'"]
        );
        assert_eq!(
            done("CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'format' = 'csv', '"),
            ["csv.header'", "path'"]
        );
        assert_eq!(
            done(
                "CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'format' = 'json', 'path' = 'x', '"
            ),
            ["json.fail-on-missing-field'"]
        );
        assert_eq!(done("SET 'table"), ["table.exec.batch-size'"]);
    }

    #[test]
    fn a_word_after_a_character_of_several_bytes() {
        let whole = "SELECT * FROM bid WHERE price≥ pr";
        assert_eq!(
            complete(&catalog(), whole, whole),
            (whole.len() - 2, vec!["price".to_string()])
        );
        assert_eq!(
            done("SELECT * FROM bid WHERE price≥"),
            ["auction", "bidder", "price", "dateTime"]
        );
        assert_eq!(done("SELECT 'é' FROM b"), ["bid"]);
    }

    #[test]
    fn with_queries_and_derived_tables_are_in_scope() {
        // A WITH query is offered after FROM and its columns in its reader.
        let with = "WITH cheap AS (SELECT auction, price * 2 AS doubled, bidder b, price + 1 FROM bid WHERE price < 10), \
            late AS (SELECT * FROM bid) ";
        assert_eq!(done(&format!("{with}SELECT * FROM ch")), ["cheap"]);
        let text = format!("{with}SELECT c.");
        let whole = format!("{text} FROM cheap c");
        assert_eq!(
            complete(&catalog(), &text, &whole).1,
            ["auction", "doubled", "b", "EXPR$3"]
        );
        let text = format!("{with}SELECT d");
        let whole = format!("{text} FROM late");
        assert_eq!(complete(&catalog(), &text, &whole).1, ["dateTime"]);
        // A derived table's alias, with or without AS, and its columns where it is read.
        let text = "SELECT x.";
        let whole = "SELECT x. FROM (SELECT auction, B.price AS p FROM bid B) AS x";
        assert_eq!(complete(&catalog(), text, whole).1, ["auction", "p"]);
        let whole = "SELECT t. FROM (SELECT bid.price, B.bidder AS ch, price * 2 FROM bid) AS t";
        assert_eq!(
            complete(&catalog(), "SELECT t.", whole).1,
            ["price", "ch", "EXPR$2"]
        );
        let text = "SELECT pr";
        let whole = "SELECT pr FROM (SELECT DISTINCT price FROM bid) y WHERE y.price > 1";
        assert_eq!(complete(&catalog(), text, whole).1, ["price"]);
        // Not a table name after FROM.
        assert_eq!(
            complete(
                &catalog(),
                "SELECT * FROM ",
                "SELECT * FROM (SELECT 1 AS one) z"
            )
            .1,
            ["bid", "datagen"]
        );
    }

    #[test]
    fn meta_commands() {
        assert_eq!(done("\\j"), ["\\jobs"]);
    }
}
