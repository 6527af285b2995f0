//! `ALTER TABLE … ADD | MODIFY | DROP | RENAME a TO b`: changes of a table's columns,
//! watermark and primary key, in Flink's forms (FLIP-273, Flink 1.17's `ALTER TABLE`).
//!
//! A change is applied to the table's `CREATE TABLE` text ([`apply`]): its column list is cut
//! into components (columns, the watermark, the primary key) as written, the change adds,
//! replaces, moves, removes or renames components, and the new text is then declared as any
//! `CREATE TABLE` is — so an added computed column or watermark is checked exactly as in a
//! `CREATE TABLE`, and `SHOW CREATE TABLE` shows the table as it now is.
//!
//! Flink's rules ([`apply`]'s errors): an added column or watermark or primary key must not
//! exist yet, a modified or dropped one must; a column read by a computed column or the
//! watermark can be neither dropped nor renamed; a column of the primary key or a partition
//! key cannot be dropped; `FIRST` and `AFTER c` place a column.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{Pos, Result, WeirError};
use crate::sql::parser::{ColumnKind, CreateTable, Statement};

/// A change of `ALTER TABLE`.
#[derive(Debug, Clone)]
pub enum SchemaChange {
    /// `ADD c TYPE [FIRST | AFTER d]`, `ADD WATERMARK FOR …`, `ADD PRIMARY KEY (…) NOT
    /// ENFORCED`, or a parenthesised list of them.
    Add(Vec<Component>),
    /// `MODIFY …`: the same components, replacing those of the same name.
    Modify(Vec<Component>),
    /// `DROP c` or `DROP (c, d)`: the columns and where each is named.
    Drop(Vec<(String, Pos)>),
    /// `DROP WATERMARK`.
    DropWatermark,
    /// `DROP PRIMARY KEY` (or `DROP CONSTRAINT name`).
    DropPrimaryKey,
    /// `RENAME a TO b`: a column.
    RenameColumn {
        from: String,
        from_pos: Pos,
        to: String,
        to_pos: Pos,
    },
}

impl SchemaChange {
    /// The components of an `ADD` or `MODIFY` (none for the others).
    pub fn components_mut(&mut self) -> &mut [Component] {
        match self {
            SchemaChange::Add(c) | SchemaChange::Modify(c) => c,
            _ => &mut [],
        }
    }
}

/// One component of `ADD` or `MODIFY`, with its text as written.
#[derive(Debug, Clone)]
pub struct Component {
    pub kind: ComponentKind,
    /// Where it starts, and where the token after it starts.
    pub pos: Pos,
    pub end: Pos,
    /// `c BIGINT NOT NULL`, `WATERMARK FOR ts AS ts - INTERVAL '1' SECOND`, …
    pub text: String,
    /// A column's place: `FIRST` or `AFTER c`.
    pub order: Option<Order>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ComponentKind {
    Column(String),
    Watermark,
    /// The key's columns.
    PrimaryKey(Vec<String>),
}

/// Where an added or modified column goes.
#[derive(Debug, Clone)]
pub enum Order {
    First,
    After(String, Pos),
}

/// A component of the table as it is: what it is, and its text.
#[derive(Debug, Clone)]
struct Part {
    kind: ComponentKind,
    text: String,
    /// Where a component the change brought was written.
    written: Option<Pos>,
}

impl From<&Component> for Part {
    /// A component the change brought, as written in the `ALTER`.
    fn from(comp: &Component) -> Self {
        Part {
            kind: comp.kind.clone(),
            text: comp.text.clone(),
            written: Some(comp.pos),
        }
    }
}

/// The significant tokens of `text` (no white space or comments), each with its byte range.
fn tokens(text: &str) -> Result<Vec<(usize, usize, Token)>> {
    let lines: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, col: u64| -> usize {
        let Some(&start) = lines.get(line.saturating_sub(1) as usize) else {
            return text.len();
        };
        text[start..]
            .char_indices()
            .nth(col.saturating_sub(1) as usize)
            .map(|(i, _)| start + i)
            .unwrap_or(text.len())
    };
    let all = crate::sql::unicode_literals::tokenize(text)?;
    Ok(all
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| {
            (
                offset(t.span.start.line, t.span.start.column),
                offset(t.span.end.line, t.span.end.column),
                t.token,
            )
        })
        .collect())
}

fn byte_offset(text: &str, p: Pos) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(p.line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    text[start..]
        .char_indices()
        .nth(p.col.saturating_sub(1) as usize)
        .map(|(i, _)| start + i)
        .unwrap_or(text.len())
}

/// `name` quoted as Flink prints identifiers.
fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The identifiers an expression's text reads (words not followed by `(`).
fn reads(expr: &str) -> Vec<String> {
    let Ok(t) = tokens(expr) else {
        return vec![];
    };
    t.iter()
        .enumerate()
        .filter_map(|(i, (_, _, tok))| match tok {
            Token::Word(w) if !matches!(t.get(i + 1), Some((_, _, Token::LParen))) => {
                Some(w.value.clone())
            }
            _ => None,
        })
        .collect()
}

/// `text` without a column's own `PRIMARY KEY [NOT ENFORCED]`.
fn without_inline_key(text: &str) -> Result<String> {
    let t = tokens(text)?;
    let is =
        |i: usize, k: Keyword| matches!(t.get(i), Some((_, _, Token::Word(w))) if w.keyword == k);
    for i in 0..t.len() {
        if is(i, Keyword::PRIMARY) && is(i + 1, Keyword::KEY) {
            let mut last = i + 1;
            if is(i + 2, Keyword::NOT) && is(i + 3, Keyword::ENFORCED) {
                last = i + 3;
            }
            return Ok(format!(
                "{} {}",
                text[..t[i].0].trim_end(),
                text[t[last].1..].trim_start()
            )
            .trim()
            .to_string());
        }
    }
    Ok(text.to_string())
}

/// The text of an altered table, and where the components the change brought are in it.
pub struct Altered {
    pub text: String,
    /// Per component added or modified: its byte range in `text`, and where it was written.
    spans: Vec<(usize, usize, Pos)>,
}

impl Altered {
    /// `e`, an error in declaring [`Altered::text`], pointed at the change: at the same
    /// token of the component written in `ALTER TABLE` when it is in one, else at `at`.
    pub fn moved(&self, e: WeirError, at: Pos) -> WeirError {
        let WeirError::Sql { pos: Some(p), .. } = &e else {
            return e.moved_to(at);
        };
        let off = byte_offset(&self.text, *p);
        let Some((start, _, written)) = self.spans.iter().find(|(a, b, _)| off >= *a && off < *b)
        else {
            return e.moved_to(at);
        };
        let before = &self.text[*start..off];
        let newlines = before.matches('\n').count() as u64;
        let col = match before.rfind('\n') {
            Some(i) => before[i + 1..].chars().count() as u64 + 1,
            None => written.col + before.chars().count() as u64,
        };
        e.moved_to(Pos {
            line: written.line + newlines,
            col,
        })
    }
}

/// Applies `change` to `ddl`, the `CREATE TABLE` text of table `table`, and gives the new
/// text. Errors (SQL errors at the change's own tokens): a component added that exists, one
/// modified, dropped or renamed that does not, a column dropped or renamed that a computed
/// column or the watermark reads, a column of the primary key or a partition key dropped,
/// the last column dropped, `AFTER` a column that does not exist.
pub fn apply(ddl: &str, table: &str, change: &SchemaChange, at: Pos) -> Result<Altered> {
    let located = crate::sql::parser::parse_script(ddl)?;
    let Some(Statement::CreateTable(c)) = located.first().map(|l| &l.statement) else {
        return Err(WeirError::sql(
            format!("table '{table}' was not declared by CREATE TABLE"),
            Some(at),
        ));
    };
    let toks = tokens(ddl)?;
    // The column list: the first parenthesis after the name, before WITH and the rest.
    let mut list = None;
    let mut insert_at = ddl.len();
    let mut seen_table = false;
    for (i, (a, _, t)) in toks.iter().enumerate() {
        match t {
            Token::Word(w) if !seen_table && w.keyword == Keyword::TABLE => seen_table = true,
            Token::LParen if seen_table => {
                let mut depth = 0i32;
                for (j, (_, _, u)) in toks.iter().enumerate().skip(i) {
                    match u {
                        Token::LParen => depth += 1,
                        Token::RParen => {
                            depth -= 1;
                            if depth == 0 {
                                list = Some((toks[i].0, toks[j].0, toks[j].1));
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                break;
            }
            Token::Word(w)
                if seen_table
                    && matches!(
                        w.keyword,
                        Keyword::WITH | Keyword::PARTITIONED | Keyword::COMMENT | Keyword::AS
                    ) =>
            {
                insert_at = *a;
                break;
            }
            _ => {}
        }
    }
    let mut parts = parts_of(ddl, c, &toks, list.map(|(_, close, _)| close))?;
    change_parts(&mut parts, c, table, change, at)?;
    let (head, tail) = match list {
        Some((open, _, close_end)) => (ddl[..open].to_string(), ddl[close_end..].to_string()),
        None => (
            format!("{} ", ddl[..insert_at].trim_end()),
            format!(" {}", &ddl[insert_at..]),
        ),
    };
    let mut text = format!("{head}(\n");
    let mut spans = vec![];
    for (i, p) in parts.iter().enumerate() {
        text.push_str("  ");
        if let Some(w) = p.written {
            spans.push((text.len(), text.len() + p.text.len(), w));
        }
        text.push_str(&p.text);
        text.push_str(if i + 1 < parts.len() { ",\n" } else { "\n" });
    }
    text.push(')');
    text.push_str(&tail);
    Ok(Altered { text, spans })
}

/// The table's components in written order, each with its text (trailing comma and comments
/// left out). `close`: where the column list's `)` is.
fn parts_of(
    ddl: &str,
    c: &CreateTable,
    toks: &[(usize, usize, Token)],
    close: Option<usize>,
) -> Result<Vec<Part>> {
    let mut starts: Vec<(usize, ComponentKind)> = c
        .columns
        .iter()
        .map(|col| {
            (
                byte_offset(ddl, col.pos),
                ComponentKind::Column(col.name.clone()),
            )
        })
        .collect();
    if let Some(p) = c.watermark_pos {
        starts.push((byte_offset(ddl, p), ComponentKind::Watermark));
    }
    if let Some(p) = c.primary_key_pos {
        starts.push((
            byte_offset(ddl, p),
            ComponentKind::PrimaryKey(c.primary_key.clone()),
        ));
    }
    starts.sort_by_key(|(a, _)| *a);
    let Some(close) = close else {
        return Ok(vec![]);
    };
    let mut out = vec![];
    for (i, (a, kind)) in starts.iter().enumerate() {
        let bound = starts.get(i + 1).map_or(close, |(b, _)| *b);
        // Up to its last token: the comma before the next component is the list's, and
        // comments after it are left out.
        let mut mine: Vec<&(usize, usize, Token)> = toks
            .iter()
            .filter(|(s, _, _)| *s >= *a && *s < bound)
            .collect();
        while mine.last().is_some_and(|(_, _, t)| *t == Token::Comma) {
            mine.pop();
        }
        let end = mine.last().map_or(*a, |(_, e, _)| *e);
        let text = ddl[*a..end].trim().to_string();
        out.push(Part {
            kind: kind.clone(),
            text,
            written: None,
        });
    }
    Ok(out)
}

fn change_parts(
    parts: &mut Vec<Part>,
    c: &CreateTable,
    table: &str,
    change: &SchemaChange,
    at: Pos,
) -> Result<()> {
    let column_at = |parts: &[Part], n: &str| {
        parts
            .iter()
            .position(|p| p.kind == ComponentKind::Column(n.to_string()))
    };
    let no_column = |n: &str, pos: Pos| {
        WeirError::sql(format!("table '{table}' has no column '{n}'"), Some(pos))
    };
    let inline_key = c
        .columns
        .iter()
        .find(|col| col.primary_key)
        .map(|col| col.name.clone());
    // Who reads a column: computed columns (by name) and the watermark.
    let readers = |n: &str| -> Vec<String> {
        let mut out: Vec<String> = c
            .columns
            .iter()
            .filter_map(|col| match &col.kind {
                ColumnKind::Computed(e)
                    if col.name != n && reads(&e.to_string()).iter().any(|r| r == n) =>
                {
                    Some(format!("computed column '{}'", col.name))
                }
                _ => None,
            })
            .collect();
        if let Some(w) = &c.watermark
            && (w.column == n || reads(&w.expr.to_string()).iter().any(|r| r == n))
        {
            out.push("the watermark".to_string());
        }
        out
    };
    let place = |parts: &[Part], order: &Option<Order>| -> Result<usize> {
        Ok(match order {
            Some(Order::First) => 0,
            Some(Order::After(d, pos)) => {
                column_at(parts, d).ok_or_else(|| no_column(d, *pos))? + 1
            }
            None => parts
                .iter()
                .rposition(|p| matches!(p.kind, ComponentKind::Column(_)))
                .map_or(0, |i| i + 1),
        })
    };
    let watermark_at = |parts: &[Part]| {
        parts
            .iter()
            .position(|p| p.kind == ComponentKind::Watermark)
    };
    let key_at = |parts: &[Part]| {
        parts
            .iter()
            .position(|p| matches!(p.kind, ComponentKind::PrimaryKey(_)))
    };
    let strip_inline = |parts: &mut Vec<Part>| -> Result<bool> {
        let Some(k) = &inline_key else {
            return Ok(false);
        };
        let Some(i) = column_at(parts, k) else {
            return Ok(false);
        };
        parts[i].text = without_inline_key(&parts[i].text)?;
        Ok(true)
    };
    match change {
        SchemaChange::Add(list) => {
            for comp in list {
                let part = Part::from(comp);
                match &comp.kind {
                    ComponentKind::Column(n) => {
                        if column_at(parts, n).is_some() {
                            return Err(WeirError::sql(
                                format!("column '{n}' already exists in table '{table}'"),
                                Some(comp.pos),
                            )
                            .with_hint(format!("ALTER TABLE {table} MODIFY {}", comp.text)));
                        }
                        let i = place(parts, &comp.order)?;
                        parts.insert(i, part);
                    }
                    ComponentKind::Watermark => {
                        if watermark_at(parts).is_some() {
                            return Err(WeirError::sql(
                                format!("table '{table}' has a watermark already"),
                                Some(comp.pos),
                            )
                            .with_hint(format!("ALTER TABLE {table} MODIFY {}", comp.text)));
                        }
                        let i = key_at(parts).unwrap_or(parts.len());
                        parts.insert(i, part);
                    }
                    ComponentKind::PrimaryKey(_) => {
                        if key_at(parts).is_some() || inline_key.is_some() {
                            return Err(WeirError::sql(
                                format!("table '{table}' has a primary key already"),
                                Some(comp.pos),
                            )
                            .with_hint(format!("ALTER TABLE {table} MODIFY {}", comp.text)));
                        }
                        parts.push(part);
                    }
                }
            }
        }
        SchemaChange::Modify(list) => {
            for comp in list {
                let part = Part::from(comp);
                match &comp.kind {
                    ComponentKind::Column(n) => {
                        let i = column_at(parts, n).ok_or_else(|| {
                            no_column(n, comp.pos)
                                .with_hint(format!("ALTER TABLE {table} ADD {}", comp.text))
                        })?;
                        if comp.order.is_some() {
                            parts.remove(i);
                            let j = place(parts, &comp.order)?;
                            parts.insert(j, part);
                        } else {
                            parts[i] = part;
                        }
                    }
                    ComponentKind::Watermark => {
                        let i = watermark_at(parts).ok_or_else(|| {
                            WeirError::sql(
                                format!("table '{table}' has no watermark"),
                                Some(comp.pos),
                            )
                            .with_hint(format!("ALTER TABLE {table} ADD {}", comp.text))
                        })?;
                        parts[i] = part;
                    }
                    ComponentKind::PrimaryKey(_) => {
                        if let Some(i) = key_at(parts) {
                            parts[i] = part;
                        } else if strip_inline(parts)? {
                            parts.push(part);
                        } else {
                            return Err(WeirError::sql(
                                format!("table '{table}' has no primary key"),
                                Some(comp.pos),
                            )
                            .with_hint(format!("ALTER TABLE {table} ADD {}", comp.text)));
                        }
                    }
                }
            }
        }
        SchemaChange::Drop(columns) => {
            let dropped: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            for (n, pos) in columns {
                let i = column_at(parts, n).ok_or_else(|| no_column(n, *pos))?;
                let users: Vec<String> = readers(n)
                    .into_iter()
                    .filter(|u| {
                        !dropped
                            .iter()
                            .any(|d| *u == format!("computed column '{d}'"))
                    })
                    .collect();
                if let Some(u) = users.first() {
                    return Err(
                        WeirError::sql(format!("column '{n}' is read by {u}"), Some(*pos))
                            .with_hint("drop or modify what reads it first"),
                    );
                }
                if c.primary_key.iter().any(|k| k == n) {
                    return Err(WeirError::sql(
                        format!("column '{n}' is in the primary key of '{table}'"),
                        Some(*pos),
                    )
                    .with_hint(format!("ALTER TABLE {table} DROP PRIMARY KEY first")));
                }
                if c.partitioned_by.iter().any(|(k, _)| k == n) {
                    return Err(WeirError::sql(
                        format!("column '{n}' is a partition key of '{table}'"),
                        Some(*pos),
                    ));
                }
                parts.remove(i);
            }
            if !parts
                .iter()
                .any(|p| matches!(p.kind, ComponentKind::Column(_)))
            {
                return Err(WeirError::sql(
                    format!("table '{table}' would have no column left"),
                    Some(at),
                )
                .with_hint("drop the table instead"));
            }
        }
        SchemaChange::DropWatermark => {
            let i = watermark_at(parts).ok_or_else(|| {
                WeirError::sql(format!("table '{table}' has no watermark"), Some(at))
            })?;
            parts.remove(i);
        }
        SchemaChange::DropPrimaryKey => {
            if let Some(i) = key_at(parts) {
                parts.remove(i);
            } else if !strip_inline(parts)? {
                return Err(WeirError::sql(
                    format!("table '{table}' has no primary key"),
                    Some(at),
                ));
            }
        }
        SchemaChange::RenameColumn {
            from,
            from_pos,
            to,
            to_pos,
        } => {
            let i = column_at(parts, from).ok_or_else(|| no_column(from, *from_pos))?;
            if column_at(parts, to).is_some() {
                return Err(WeirError::sql(
                    format!("column '{to}' already exists in table '{table}'"),
                    Some(*to_pos),
                ));
            }
            // Flink refuses to rename what a computed column or the watermark reads.
            if let Some(u) = readers(from).first() {
                return Err(WeirError::sql(
                    format!("column '{from}' is read by {u}"),
                    Some(*from_pos),
                )
                .with_hint("drop or modify what reads it first"));
            }
            if c.partitioned_by.iter().any(|(k, _)| k == from) {
                return Err(WeirError::sql(
                    format!("column '{from}' is a partition key of '{table}'"),
                    Some(*from_pos),
                ));
            }
            let t = tokens(&parts[i].text)?;
            let name_end = t.first().map_or(0, |(_, e, _)| *e);
            parts[i] = Part {
                kind: ComponentKind::Column(to.clone()),
                text: format!("{}{}", quoted(to), &parts[i].text[name_end..]),
                written: None,
            };
            if let Some(k) = key_at(parts)
                && let ComponentKind::PrimaryKey(cols) = &parts[k].kind
                && cols.iter().any(|c| c == from)
            {
                let cols: Vec<String> = cols
                    .iter()
                    .map(|c| if c == from { to.clone() } else { c.clone() })
                    .collect();
                parts[k] = Part {
                    text: format!(
                        "PRIMARY KEY ({}) NOT ENFORCED",
                        cols.iter()
                            .map(|c| quoted(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    kind: ComponentKind::PrimaryKey(cols),
                    written: None,
                };
            }
        }
    }
    Ok(())
}

/// Where a `CREATE TABLE` text's column list is: its `(`, its `)` and the byte after it;
/// None when it has none.
fn column_list(toks: &[(usize, usize, Token)]) -> Option<(usize, usize, usize)> {
    // The table's name comes after `TABLE [IF NOT EXISTS]`, and may be a keyword
    // (`comment`): it and its dotted parts are passed over first.
    let at = toks
        .iter()
        .position(|(_, _, t)| matches!(t, Token::Word(w) if w.keyword == Keyword::TABLE))?;
    let mut i = at + 1;
    let word = |i: usize, k: Keyword| matches!(toks.get(i), Some((_, _, Token::Word(w))) if w.keyword == k);
    if word(i, Keyword::IF) && word(i + 1, Keyword::NOT) && word(i + 2, Keyword::EXISTS) {
        i += 3;
    }
    i += 1;
    while matches!(toks.get(i), Some((_, _, Token::Period))) {
        i += 2;
    }
    for (i, (_, _, t)) in toks.iter().enumerate().skip(i) {
        match t {
            Token::LParen => {
                let mut depth = 0i32;
                for (j, (_, _, u)) in toks.iter().enumerate().skip(i) {
                    match u {
                        Token::LParen => depth += 1,
                        Token::RParen => {
                            depth -= 1;
                            if depth == 0 {
                                return Some((toks[i].0, toks[j].0, toks[j].1));
                            }
                        }
                        _ => {}
                    }
                }
                return None;
            }
            Token::Word(w)
                if matches!(
                    w.keyword,
                    Keyword::WITH
                        | Keyword::PARTITIONED
                        | Keyword::COMMENT
                        | Keyword::AS
                        | Keyword::LIKE
                ) =>
            {
                return None;
            }
            _ => {}
        }
    }
    None
}

/// A `CREATE TABLE` text, parsed, and its components as written.
fn components_of(ddl: &str) -> Result<(CreateTable, Vec<Part>)> {
    let located = crate::sql::parser::parse_script(ddl)?;
    let Some(Statement::CreateTable(c)) = located.into_iter().next().map(|l| l.statement) else {
        return Err(WeirError::internal("a table's text is no CREATE TABLE"));
    };
    let toks = tokens(ddl)?;
    let close = column_list(&toks).map(|(_, close, _)| close);
    let parts = parts_of(ddl, &c, &toks, close)?;
    Ok((*c, parts))
}

/// `'text'` as a SQL string literal.
fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Flink's `CREATE TABLE derived (…) WITH (…) LIKE base (options)`: the text of the table
/// it declares, `base_ddl` (the base table's `CREATE TABLE`) merged with the derived
/// statement (`derived_text`, parsed as `derived` with positions in the script), by
/// Flink's rules (`MergeTableLikeUtil`; defaults `INCLUDING ALL OVERWRITING OPTIONS`):
///
/// - physical columns: the base's, then the derived's; a name in both is an error;
/// - computed (`GENERATED`) and metadata (`METADATA`) columns: the base's unless
///   `EXCLUDING`; a derived one of a base one's name replaces it in its place only with
///   `OVERWRITING`, and only a column of its own kind;
/// - the watermark (`WATERMARKS`): the base's unless `EXCLUDING`; a derived one for the
///   same column replaces it only with `OVERWRITING`;
/// - the primary key (`CONSTRAINTS`) and partition keys (`PARTITIONS`): the base's with
///   `INCLUDING`, and declaring them in both is an error;
/// - options (`OPTIONS`): the base's unless `EXCLUDING`; a key in both is the derived's
///   value with `OVERWRITING`, an error with `INCLUDING`.
///
/// Errors point at the derived component that conflicts, or at the base's name.
pub fn like(base_ddl: &str, derived_text: &str, derived: &CreateTable) -> Result<Altered> {
    use crate::sql::parser::{LikeFeature as F, MergingStrategy as M};
    let Some(clause) = &derived.like else {
        return Err(WeirError::internal("a CREATE TABLE without LIKE"));
    };
    let at = clause.table_pos;
    let strategy = |f: F| {
        let default = match f {
            F::Options => M::Overwriting,
            _ => M::Including,
        };
        let all = clause
            .options
            .iter()
            .find(|(_, g)| *g == F::All)
            .map(|(s, _)| *s);
        clause
            .options
            .iter()
            .rev()
            .find(|(_, g)| *g == f)
            .map(|(s, _)| *s)
            .or(all)
            .unwrap_or(default)
    };
    let (generated, metadata, watermarks, constraints, partitions, options) = (
        strategy(F::Generated),
        strategy(F::Metadata),
        strategy(F::Watermarks),
        strategy(F::Constraints),
        strategy(F::Partitions),
        strategy(F::Options),
    );
    let (base, base_parts) = components_of(base_ddl)?;
    let (local, derived_parts) = components_of(derived_text)?;
    // Each column's kind: 0 physical, 1 computed, 2 metadata.
    let kind_of = |c: &CreateTable, name: &str| {
        c.columns
            .iter()
            .find(|col| col.name == name)
            .map_or(0, |col| match col.kind {
                ColumnKind::Physical { .. } => 0,
                ColumnKind::Computed(_) => 1,
                ColumnKind::Metadata { .. } => 2,
            })
    };
    let written = |kind: &ComponentKind| match kind {
        ComponentKind::Column(n) => derived.columns.iter().find(|c| c.name == *n).map(|c| c.pos),
        ComponentKind::Watermark => derived.watermark_pos,
        ComponentKind::PrimaryKey(_) => derived.primary_key_pos,
    };
    let err = |msg: String, p: Option<Pos>| WeirError::sql(msg, Some(p.unwrap_or(at)));
    let mut columns: Vec<Part> = vec![];
    let mut watermark: Option<Part> = None;
    for p in base_parts {
        match &p.kind {
            ComponentKind::Column(n) => {
                let keep = match kind_of(&base, n) {
                    1 => generated != M::Excluding,
                    2 => metadata != M::Excluding,
                    _ => true,
                };
                if keep {
                    columns.push(Part {
                        text: without_inline_key(&p.text)?,
                        ..p
                    });
                }
            }
            ComponentKind::Watermark if watermarks != M::Excluding => watermark = Some(p),
            _ => {}
        }
    }
    let mut key: Option<Part> = None;
    if constraints == M::Including && !base.primary_key.is_empty() {
        let cols: Vec<String> = base.primary_key.iter().map(|c| quoted(c)).collect();
        key = Some(Part {
            kind: ComponentKind::PrimaryKey(base.primary_key.clone()),
            text: format!("PRIMARY KEY ({}) NOT ENFORCED", cols.join(", ")),
            written: None,
        });
    }
    for p in derived_parts {
        let pos = written(&p.kind);
        match &p.kind {
            ComponentKind::Column(n) => {
                let part = Part {
                    text: without_inline_key(&p.text)?,
                    written: pos,
                    kind: p.kind.clone(),
                };
                let Some(i) = columns
                    .iter()
                    .position(|c| c.kind == ComponentKind::Column(n.clone()))
                else {
                    columns.push(part);
                    continue;
                };
                let (mine, theirs) = (kind_of(&local, n), kind_of(&base, n));
                let (what, strategy, feature) = match mine {
                    1 => ("generated", generated, "GENERATED"),
                    2 => ("metadata", metadata, "METADATA"),
                    _ => ("physical", M::Including, ""),
                };
                if mine == 0 || mine != theirs {
                    return Err(err(
                        format!(
                            "a column named '{n}' already exists in the base table '{}'; only a computed column can overwrite a computed one, a metadata column a metadata one",
                            clause.table
                        ),
                        pos,
                    ));
                }
                if strategy != M::Overwriting {
                    return Err(err(
                        format!(
                            "a {what} column named '{n}' already exists in the base table '{}'",
                            clause.table
                        ),
                        pos,
                    )
                    .with_hint(format!(
                        "LIKE {} (EXCLUDING {feature}) or (OVERWRITING {feature})",
                        clause.table
                    )));
                }
                columns[i] = part;
            }
            ComponentKind::Watermark => {
                if let Some(w) = &watermark {
                    // Flink keys watermarks by their column: one for the base's column is
                    // replaced with OVERWRITING; one for another column is a second
                    // watermark, which a table cannot have.
                    let same = base.watermark.as_ref().map(|b| &b.column)
                        == local.watermark.as_ref().map(|d| &d.column);
                    if !same {
                        return Err(err(
                            format!(
                                "the base table '{}' has a watermark already ({}), and a table has at most one",
                                clause.table, w.text
                            ),
                            pos,
                        )
                        .with_hint(format!("LIKE {} (EXCLUDING WATERMARKS)", clause.table)));
                    }
                    if watermarks != M::Overwriting {
                        return Err(err(
                            format!(
                                "there already is a watermark for column '{}' in the base table '{}'",
                                local.watermark.as_ref().map_or("", |d| d.column.as_str()),
                                clause.table
                            ),
                            pos,
                        )
                        .with_hint(format!(
                            "LIKE {} (EXCLUDING WATERMARKS) or (OVERWRITING WATERMARKS)",
                            clause.table
                        )));
                    }
                }
                watermark = Some(Part { written: pos, ..p });
            }
            ComponentKind::PrimaryKey(_) => {}
        }
    }
    if !local.primary_key.is_empty() {
        let pos = derived.primary_key_pos.or_else(|| {
            derived
                .columns
                .iter()
                .find(|c| c.primary_key)
                .map(|c| c.pos)
        });
        if key.is_some() {
            return Err(err(
                format!(
                    "the base table '{}' already has a primary key",
                    clause.table
                ),
                pos,
            )
            .with_hint(format!("LIKE {} (EXCLUDING CONSTRAINTS)", clause.table)));
        }
        let cols: Vec<String> = local.primary_key.iter().map(|c| quoted(c)).collect();
        key = Some(Part {
            kind: ComponentKind::PrimaryKey(local.primary_key.clone()),
            text: format!("PRIMARY KEY ({}) NOT ENFORCED", cols.join(", ")),
            written: pos,
        });
    }
    let partition_keys: Vec<String> = if !local.partitioned_by.is_empty() {
        if !base.partitioned_by.is_empty() && partitions != M::Excluding {
            return Err(err(
                format!("the base table '{}' already has partitions", clause.table),
                derived.partitioned_by.first().map(|(_, p)| *p),
            )
            .with_hint(format!("LIKE {} (EXCLUDING PARTITIONS)", clause.table)));
        }
        local
            .partitioned_by
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    } else if partitions == M::Including {
        base.partitioned_by.iter().map(|(n, _)| n.clone()).collect()
    } else {
        vec![]
    };
    let mut merged: Vec<(String, String)> = if options == M::Excluding {
        vec![]
    } else {
        base.options
            .iter()
            .map(|o| (o.key.clone(), o.value.clone()))
            .collect()
    };
    for (o, written_o) in local.options.iter().zip(&derived.options) {
        match merged.iter_mut().find(|(k, _)| *k == o.key) {
            Some(_) if options == M::Including => {
                return Err(err(
                    format!(
                        "the base table '{}' already has the option '{}'",
                        clause.table, o.key
                    ),
                    Some(written_o.pos),
                )
                .with_hint(format!(
                    "LIKE {} (EXCLUDING OPTIONS) or (OVERWRITING OPTIONS)",
                    clause.table
                )));
            }
            Some(kv) => kv.1 = o.value.clone(),
            None => merged.push((o.key.clone(), o.value.clone())),
        }
    }
    let mut parts = columns;
    parts.extend(watermark);
    parts.extend(key);
    let mut text = format!("CREATE TABLE {}", quoted(&derived.name));
    let mut spans = vec![];
    // A base declared without columns (a `nexmark` table, a sink that takes its query's
    // columns) gives none.
    if !parts.is_empty() {
        text.push_str(" (\n");
        for (i, p) in parts.iter().enumerate() {
            text.push_str("  ");
            if let Some(w) = p.written {
                spans.push((text.len(), text.len() + p.text.len(), w));
            }
            text.push_str(&p.text);
            text.push_str(if i + 1 < parts.len() { ",\n" } else { "\n" });
        }
        text.push(')');
    }
    if !partition_keys.is_empty() {
        let keys: Vec<String> = partition_keys.iter().map(|k| quoted(k)).collect();
        text.push_str(&format!(" PARTITIONED BY ({})", keys.join(", ")));
    }
    if !merged.is_empty() {
        text.push_str(" WITH (\n");
        let opts: Vec<String> = merged
            .iter()
            .map(|(k, v)| format!("  {} = {}", string_literal(k), string_literal(v)))
            .collect();
        text.push_str(&opts.join(",\n"));
        text.push_str("\n)");
    }
    Ok(Altered { text, spans })
}
