//! Weir's SQL front end: Flink's dialect on top of sqlparser.
//!
//! sqlparser parses queries and expressions; this module owns the statements it cannot
//! parse in Flink's form — `CREATE TABLE` with `WATERMARK FOR`, computed and metadata
//! columns, `ROW<...>` types and `WITH (...)` options — plus `CREATE VIEW`, `INSERT INTO`,
//! `SET`/`RESET` and `DROP`, so that a whole script becomes a list of [`Statement`]s, each
//! with its position for error messages. Every error carries `line:col`.

use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast::{Expr, Query};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{Pos, Result, WeirError};
use crate::sql::types::TypeParser;
use crate::sql::window::{WindowCall, rewrite_group_windows, rewrite_tokens};

/// One statement of a script, with where it starts and its text.
#[derive(Debug, Clone)]
pub struct Located {
    pub statement: Statement,
    pub pos: Pos,
    /// The statement's own text (without the `;`), for job names and messages.
    pub text: String,
    /// The window calls of the statement, each standing for a table named by its id.
    pub windows: Vec<WindowCall>,
    /// Tables joined `FOR SYSTEM_TIME AS OF` (lookup joins), with where.
    pub lookups: Vec<Lookup>,
}

/// A table joined `FOR SYSTEM_TIME AS OF <column>`: the table, where the clause starts, and
/// the column's parts (`o.proc_time`) and place.
///
/// The statement reads the table under a name of its own, [`Lookup::id`]
/// (`__weir_lookup_N`, aliased as the table or as written), which the session registers as
/// the table while the statement is planned: the planner knows each such join by it.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The table joined (its name as written, last part).
    pub table: String,
    /// The name the statement reads it under.
    pub id: String,
    /// Where the table's name is.
    pub table_pos: Pos,
    /// Where `FOR SYSTEM_TIME` starts.
    pub pos: Pos,
    /// The `AS OF` column's parts (`["o", "proc_time"]`).
    pub column: Vec<String>,
    /// Where the column starts.
    pub column_pos: Pos,
}

#[derive(Debug, Clone)]
pub enum Statement {
    /// `EXECUTE STATEMENT SET BEGIN … END;` (or the SQL client's `BEGIN STATEMENT SET; …
    /// END;`): its INSERTs, run as one job, as Flink runs them.
    StatementSet(Vec<Located>),
    CreateTable(Box<CreateTable>),
    /// `CREATE FUNCTION name AS 'class'`.
    CreateFunction {
        name: String,
        name_pos: Pos,
        class: String,
        class_pos: Pos,
    },
    CreateView {
        name: String,
        name_pos: Pos,
        if_not_exists: bool,
        or_replace: bool,
        query: Box<Query>,
    },
    /// `INSERT INTO sink SELECT ...`: starts a standing query.
    Insert {
        table: String,
        table_pos: Pos,
        columns: Vec<String>,
        query: Box<Query>,
    },
    /// A bare `SELECT`: a standing query whose rows go to the terminal.
    Query(Box<Query>),
    /// `SET 'k' = 'v'`, or `SET` alone to list.
    Set {
        key: Option<String>,
        value: Option<String>,
    },
    /// `RESET 'k'` or `RESET`.
    Reset(Option<String>),
    Drop {
        view: bool,
        name: String,
        name_pos: Pos,
        if_exists: bool,
    },
    /// `SHOW TABLES` (tables and views, as Flink lists them) or `SHOW VIEWS` (views only),
    /// `[FROM|IN db] [NOT] LIKE 'pattern'` as in Flink.
    ShowTables {
        views_only: bool,
        like: Option<Like>,
    },
    /// `SHOW [USER] FUNCTIONS [[NOT] LIKE 'pattern']`: the functions a query can call
    /// (`user`: only those of `CREATE FUNCTION`).
    ShowFunctions {
        user: bool,
        like: Option<Like>,
    },
    /// `SHOW CATALOGS`, `SHOW DATABASES`, `SHOW CURRENT CATALOG|DATABASE`, `SHOW [FULL]
    /// MODULES`, `SHOW JARS`: Weir's one catalog, as Flink's SQL client names it (`SHOW
    /// CATALOGS` and `SHOW DATABASES` with Flink's `[NOT] LIKE` filter).
    ShowCatalog(CatalogShow, Option<Like>),
    /// `USE CATALOG c`, `USE [c.]db`: only Flink's default names exist in Weir.
    Use {
        catalog: bool,
        name: String,
        name_pos: Pos,
    },
    /// `SHOW CREATE TABLE t` / `SHOW CREATE VIEW v`: the statement that made it.
    ShowCreate {
        view: bool,
        name: String,
        name_pos: Pos,
    },
    /// `DESCRIBE [EXTENDED] t` / `DESC t`, or `SHOW COLUMNS FROM|IN t [NOT] LIKE 'p'`.
    Describe {
        name: String,
        name_pos: Pos,
        like: Option<Like>,
    },
    /// `EXPLAIN [CHANGELOG_MODE] <query or insert>`: the plan, with each node's changelog
    /// mode (the row kinds its output may hold, `[I,UB,UA,D]`) when `changelog_mode`, as
    /// Flink's `EXPLAIN CHANGELOG_MODE` shows it.
    Explain {
        inner: Box<Located>,
        changelog_mode: bool,
    },
    /// `ALTER TABLE [IF EXISTS] t SET ('k' = 'v', …)` or `… RESET ('k', …)`: changes a
    /// table's options (Flink's forms; later jobs see them, running ones keep theirs).
    AlterTable {
        name: String,
        name_pos: Pos,
        if_exists: bool,
        /// Options to set; with `reset`, only their keys count.
        options: Vec<TableOption>,
        reset: bool,
    },
    /// `ALTER TABLE [IF EXISTS] t ADD … | MODIFY … | DROP … | RENAME a TO b`: a change of
    /// the table's columns, watermark or primary key (Flink's forms, FLIP-273).
    AlterSchema {
        name: String,
        name_pos: Pos,
        if_exists: bool,
        change: crate::sql::alter::SchemaChange,
        /// Where the change starts (`ADD`, `MODIFY`, …).
        pos: Pos,
    },
    /// `ALTER TABLE [IF EXISTS] t RENAME TO u` (Flink's form).
    RenameTable {
        name: String,
        name_pos: Pos,
        if_exists: bool,
        to: String,
        to_pos: Pos,
    },
}

#[derive(Debug, Clone)]
pub struct CreateTable {
    pub name: String,
    pub name_pos: Pos,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDef>,
    pub watermark: Option<WatermarkDef>,
    /// Where `WATERMARK FOR` starts.
    pub watermark_pos: Option<Pos>,
    pub primary_key: Vec<String>,
    /// Where a table-level `[CONSTRAINT n] PRIMARY KEY (…)` starts.
    pub primary_key_pos: Option<Pos>,
    pub partitioned_by: Vec<(String, Pos)>,
    pub options: Vec<TableOption>,
    /// `LIKE base [(options)]`: the table is derived from `base` (Flink's `CREATE TABLE …
    /// LIKE`, see [`crate::sql::alter::like`]).
    pub like: Option<LikeClause>,
    /// `CREATE TABLE t WITH (…) AS SELECT …` (Flink's CTAS): the table takes the query's
    /// columns, and the query is inserted into it.
    pub as_query: Option<Box<Query>>,
}

/// `LIKE base (INCLUDING ALL OVERWRITING OPTIONS …)` after a `CREATE TABLE`'s options.
#[derive(Debug, Clone)]
pub struct LikeClause {
    pub table: String,
    pub table_pos: Pos,
    /// The like options as written, in order: strategy, feature.
    pub options: Vec<(MergingStrategy, LikeFeature)>,
}

/// How a feature of the base table is merged into the derived one (Flink's
/// `MergingStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergingStrategy {
    Including,
    Excluding,
    Overwriting,
}

/// A feature a like option names (Flink's `FeatureOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeFeature {
    All,
    Constraints,
    Partitions,
    Generated,
    Options,
    Watermarks,
    Metadata,
}

#[derive(Debug, Clone)]
pub struct TableOption {
    pub key: String,
    pub value: String,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: String,
    pub pos: Pos,
    pub kind: ColumnKind,
    /// Declared `PRIMARY KEY [NOT ENFORCED]` on the column itself.
    pub primary_key: bool,
}

#[derive(Debug, Clone)]
pub enum ColumnKind {
    /// Read from the source (or written to the sink).
    Physical { data_type: DataType, nullable: bool },
    /// `name AS expr`, computed from the other columns.
    Computed(Box<Expr>),
    /// `name TYPE METADATA [FROM 'key'] [VIRTUAL]`, supplied by the connector.
    Metadata {
        data_type: DataType,
        /// False when declared `NOT NULL`.
        nullable: bool,
        key: Option<String>,
        is_virtual: bool,
    },
}

#[derive(Debug, Clone)]
pub struct WatermarkDef {
    pub column: String,
    pub column_pos: Pos,
    pub expr: Expr,
    pub expr_pos: Pos,
}

pub(crate) fn pos_of(t: &TokenWithSpan) -> Pos {
    Pos {
        line: t.span.start.line,
        col: t.span.start.column,
    }
}

pub(crate) fn sql_err(msg: impl Into<String>, t: &TokenWithSpan) -> WeirError {
    WeirError::sql(msg, Some(pos_of(t)))
}

/// Turns sqlparser's "... at Line: 3, Column: 7" into a positioned SQL error.
pub(crate) fn parser_error(e: ParserError) -> WeirError {
    let msg = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "the statement nests too deeply".to_string(),
    };
    match msg.rfind(" at Line: ") {
        Some(i) => {
            let tail = &msg[i + " at Line: ".len()..];
            let mut parts = tail.split(", Column: ");
            let line = parts.next().and_then(|l| l.trim().parse::<u64>().ok());
            let col = parts.next().and_then(|c| c.trim().parse::<u64>().ok());
            match (line, col) {
                (Some(line), Some(col)) => WeirError::sql(tidy(&msg[..i]), Some(Pos { line, col })),
                _ => WeirError::sql(tidy(&msg), None),
            }
        }
        None => WeirError::sql(tidy(&msg), None),
    }
}

fn tidy(m: &str) -> String {
    m.replace("Expected: ", "expected ")
        .replace(", found: ", ", found ")
}

/// Byte offsets of line starts, to cut statement text out of the script by position.
struct Lines(Vec<usize>);

impl Lines {
    fn new(src: &str) -> Self {
        let mut v = vec![0];
        v.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Lines(v)
    }
    fn offset(&self, src: &str, p: Pos) -> usize {
        let Some(&start) = self.0.get(p.line.saturating_sub(1) as usize) else {
            return src.len();
        };
        src[start..]
            .char_indices()
            .nth(p.col.saturating_sub(1) as usize)
            .map(|(i, _)| start + i)
            .unwrap_or(src.len())
    }
}

/// `ddl` (a `CREATE TABLE` statement) with its `WITH (…)` clause replaced by `options`,
/// one per line in key order; None when it has no such clause or does not tokenize.
pub fn with_options_replaced(ddl: &str, options: &[(&str, &str)]) -> Option<String> {
    let tokens = crate::sql::unicode_literals::tokenize(ddl).ok()?;
    let mut depth = 0i32;
    let mut with_at = None;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.keyword == Keyword::WITH => with_at = Some(i),
            _ => {}
        }
    }
    let at = with_at?;
    let open = crate::sql::window::next_sig(&tokens, at + 1)?;
    if tokens[open].token != Token::LParen {
        return None;
    }
    let close = crate::sql::syntax::closing(&tokens, open).ok()?;
    let lines = Lines::new(ddl);
    let (from, to) = (
        lines.offset(ddl, pos_of(&tokens[at])),
        lines.offset(ddl, pos_of(&tokens[close])) + 1,
    );
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let body = options
        .iter()
        .map(|(k, v)| format!("  {} = {}", quote(k), quote(v)))
        .collect::<Vec<_>>()
        .join(",\n");
    Some(format!(
        "{}WITH (\n{body}\n){}",
        &ddl[..from],
        &ddl[to.min(ddl.len())..]
    ))
}

/// `ddl` (a `CREATE TABLE`'s text) naming the table `name` instead: the name after `TABLE`
/// (and `IF NOT EXISTS`) is replaced, quoted with backticks unless it is a plain
/// identifier. None: no such name in the text.
pub fn with_name_replaced(ddl: &str, name: &str) -> Option<String> {
    let tokens = crate::sql::unicode_literals::tokenize(ddl).ok()?;
    let sig = |i: usize| crate::sql::window::next_sig(&tokens, i);
    let word = |i: usize, k: Keyword| matches!(&tokens[i].token, Token::Word(w) if w.keyword == k && w.quote_style.is_none());
    let mut at = sig(0)?;
    while !word(at, Keyword::TABLE) {
        at = sig(at + 1)?;
    }
    let mut first = sig(at + 1)?;
    if word(first, Keyword::IF) {
        first = sig(sig(sig(first + 1)? + 1)? + 1)?;
    }
    // A dotted name: its parts and the periods between them.
    let mut last = first;
    while let Some(dot) = sig(last + 1).filter(|&d| tokens[d].token == Token::Period) {
        last = sig(dot + 1)?;
    }
    let lines = Lines::new(ddl);
    let from = lines.offset(ddl, pos_of(&tokens[first]));
    let end = &tokens[last].span.end;
    let to = lines.offset(
        ddl,
        Pos {
            line: end.line,
            col: end.column,
        },
    );
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let written = if plain {
        name.to_string()
    } else {
        format!("`{}`", name.replace('`', "``"))
    };
    Some(format!(
        "{}{written}{}",
        &ddl[..from],
        &ddl[to.min(ddl.len())..]
    ))
}

/// `query` with its columns named `columns`: `SELECT * FROM (query) AS v (columns…)`.
/// Too few or too many names are DataFusion's error when the view is planned.
fn with_column_names(
    query: Box<Query>,
    columns: &[datafusion::sql::sqlparser::ast::Ident],
) -> Result<Box<Query>> {
    use datafusion::sql::sqlparser::ast::{SetExpr, TableFactor};
    let names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let template = format!("SELECT * FROM (SELECT 1) AS v ({})", names.join(", "));
    let mut outer = Parser::new(&GenericDialect {})
        .try_with_sql(&template)
        .and_then(|mut p| p.parse_query())
        .map_err(parser_error)?;
    let SetExpr::Select(select) = outer.body.as_mut() else {
        return Err(WeirError::internal("a view's column list"));
    };
    let Some(TableFactor::Derived { subquery, .. }) =
        select.from.first_mut().map(|t| &mut t.relation)
    else {
        return Err(WeirError::internal("a view's column list"));
    };
    *subquery = query;
    Ok(outer)
}

/// Flink's built-in catalog and database: the only ones Weir has.
const DEFAULT_CATALOG: &str = "default_catalog";
const DEFAULT_DATABASE: &str = "default_database";

/// Drops Flink's default qualifiers from object names — `default_catalog.default_database.t`
/// and `default_database.t` are `t` — so that every statement (DDL, DESCRIBE, INSERT INTO,
/// window TVFs, joins, `FOR SYSTEM_TIME AS OF`) finds the object as Flink does, and a
/// created object is named `t`. Names are matched as written (case-sensitively, quoted or
/// not); `default_database` after another qualifier (`c.default_database.t`) is left for
/// the planner to refuse.
///
/// A statement that uses `default_database` alone (a table alias, `FROM t AS
/// default_database`) keeps its `default_database.x`, which then names the alias's column,
/// as Calcite resolves a name in scope before a schema.
fn default_qualifiers(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let is = |t: Option<&TokenWithSpan>, name: &str| matches!(t.map(|t| &t.token), Some(Token::Word(w)) if w.value == name);
    let dot = |t: Option<&TokenWithSpan>| matches!(t.map(|t| &t.token), Some(Token::Period));
    let word = |t: Option<&TokenWithSpan>| matches!(t.map(|t| &t.token), Some(Token::Word(_)));
    // Per token, its statement's ordinal (statements end at `;`), and the statements that
    // use `default_database` alone.
    let statement: Vec<usize> = tokens
        .iter()
        .scan(0, |n, t| {
            let this = *n;
            if matches!(t.token, Token::SemiColon) {
                *n += 1;
            }
            Some(this)
        })
        .collect();
    let aliased: std::collections::HashSet<usize> = (0..tokens.len())
        .filter(|&i| {
            is(tokens.get(i), DEFAULT_DATABASE)
                && !dot(tokens.get(i + 1))
                && !(i > 0 && dot(tokens.get(i - 1)))
        })
        .map(|i| statement[i])
        .collect();
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let after_dot = dot(out.last());
        if !after_dot
            && is(tokens.get(i), DEFAULT_CATALOG)
            && dot(tokens.get(i + 1))
            && is(tokens.get(i + 2), DEFAULT_DATABASE)
            && dot(tokens.get(i + 3))
            && word(tokens.get(i + 4))
        {
            i += 4;
            continue;
        }
        if !after_dot
            && !aliased.contains(&statement[i])
            && is(tokens.get(i), DEFAULT_DATABASE)
            && dot(tokens.get(i + 1))
            && word(tokens.get(i + 2))
        {
            i += 2;
            continue;
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    out
}

/// Refuses a reserved word that stands for a value (`USER`, `CURRENT_DATE`, …) used
/// unquoted as a qualifier (`user.id`, after `FROM t AS user`): the parser reads it as the
/// function, and Flink (Calcite) reserves these words too. The error points at the word and
/// says how to quote it.
fn reserved_qualifiers(tokens: &[TokenWithSpan]) -> Result<()> {
    use crate::sql::window::next_sig;
    const VALUE_WORDS: [Keyword; 10] = [
        Keyword::USER,
        Keyword::CURRENT_USER,
        Keyword::SESSION_USER,
        Keyword::CURRENT_DATE,
        Keyword::CURRENT_TIME,
        Keyword::CURRENT_TIMESTAMP,
        Keyword::LOCALTIME,
        Keyword::LOCALTIMESTAMP,
        Keyword::CURRENT_ROLE,
        Keyword::CURRENT_CATALOG,
    ];
    for (i, t) in tokens.iter().enumerate() {
        let Token::Word(w) = &t.token else { continue };
        if w.quote_style.is_some() || !VALUE_WORDS.contains(&w.keyword) {
            continue;
        }
        let qualifies =
            next_sig(tokens, i + 1).is_some_and(|k| matches!(tokens[k].token, Token::Period));
        let qualified = (0..i)
            .rev()
            .find(|&k| !crate::sql::window::is_ws(&tokens[k]))
            .is_some_and(|k| matches!(tokens[k].token, Token::Period));
        if qualifies {
            return Err(sql_err(
                format!(
                    "'{}' is a reserved word (the function {}), so it cannot {} unquoted",
                    w.value,
                    w.value.to_uppercase(),
                    if qualified {
                        "name a field of a nested name"
                    } else {
                        "qualify a name"
                    }
                ),
                t,
            )
            .with_hint(format!(
                "quote it where it names a table, alias or field: `{}`",
                w.value
            )));
        }
    }
    Ok(())
}

static NEXT_LOOKUP: AtomicUsize = AtomicUsize::new(1);

/// Takes `FOR SYSTEM_TIME AS OF <column>` out of the tokens (the parser does not know it),
/// noting the table before it: Flink's lookup join of a stream with a table.
fn strip_system_time(tokens: Vec<TokenWithSpan>) -> Result<(Vec<TokenWithSpan>, Vec<Lookup>)> {
    use crate::sql::window::{is_ws, next_sig};
    let word = |t: &TokenWithSpan, w: &str| matches!(&t.token, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut lookups = vec![];
    let mut i = 0;
    while i < tokens.len() {
        let seq = (|| {
            let a = next_sig(&tokens, i + 1)?;
            let b = next_sig(&tokens, a + 1)?;
            let c = next_sig(&tokens, b + 1)?;
            (word(&tokens[i], "FOR")
                && word(&tokens[a], "SYSTEM_TIME")
                && word(&tokens[b], "AS")
                && word(&tokens[c], "OF"))
            .then_some(c)
        })();
        let Some(of) = seq else {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        };
        // The table's name (`t`, `db.t`), or `t AS a` / `t a` with the alias before.
        let sig: Vec<usize> = (0..out.len()).filter(|&k| !is_ws(&out[k])).collect();
        let is_word = |k: usize| matches!(&out[k].token, Token::Word(_));
        let last = sig.last().copied().filter(|&k| is_word(k));
        let Some(last) = last else {
            return Err(sql_err(
                "FOR SYSTEM_TIME AS OF follows a table name",
                &tokens[i],
            ));
        };
        let before = |k: usize| sig.iter().rev().find(|&&j| j < k).copied();
        let (table_at, aliased) = match before(last) {
            Some(b) if word(&out[b], "AS") => match before(b) {
                Some(t) if is_word(t) => (t, true),
                _ => (last, false),
            },
            Some(b)
                if is_word(b)
                    && !["JOIN", "FROM", "LATERAL", "ON", "AND", "OR"]
                        .iter()
                        .any(|k| word(&out[b], k)) =>
            {
                (b, true)
            }
            _ => (last, false),
        };
        let Token::Word(table_word) = out[table_at].token.clone() else {
            return Err(sql_err(
                "FOR SYSTEM_TIME AS OF follows a table name",
                &tokens[i],
            ));
        };
        let table_pos = pos_of(&out[table_at]);
        // The time column: `name` or `alias.name` (spaces and comments may stand between
        // the parts, as anywhere in SQL).
        let mut j = next_sig(&tokens, of + 1);
        let mut parts = 0;
        // Just past the column's last part.
        let mut past = of + 1;
        while let Some(k) = j {
            match &tokens[k].token {
                Token::Word(_) if parts % 2 == 0 => {}
                Token::Period if parts % 2 == 1 => {}
                _ => break,
            }
            parts += 1;
            past = k + 1;
            j = next_sig(&tokens, k + 1);
        }
        if parts == 0 || parts % 2 == 0 {
            let at = next_sig(&tokens, of + 1).unwrap_or(of);
            return Err(sql_err(
                "FOR SYSTEM_TIME AS OF takes the processing-time column of the stream, as in FOR SYSTEM_TIME AS OF s.proc_time",
                &tokens[at],
            ));
        }
        // Only a column: Flink refuses an expression there ("Temporal table join currently
        // only supports 'FOR SYSTEM_TIME AS OF' left table's time attribute field").
        if let Some(k) = next_sig(&tokens, past)
            && !matches!(
                tokens[k].token,
                Token::Word(_) | Token::Comma | Token::RParen | Token::SemiColon | Token::EOF
            )
        {
            return Err(sql_err(
                "FOR SYSTEM_TIME AS OF takes a time attribute column of the stream as it is (FOR SYSTEM_TIME AS OF o.order_time), not an expression",
                &tokens[k],
            )
            .with_hint("declare the time you mean as a column of the stream (with its WATERMARK, for an event-time join) and name that column"));
        }
        let first = next_sig(&tokens, of + 1).unwrap_or(of);
        let end = past;
        let column = tokens[first..end]
            .iter()
            .filter_map(|t| match &t.token {
                Token::Word(w) => Some(w.value.clone()),
                _ => None,
            })
            .collect();
        // The table is read under a name of its own, aliased as it was written (`db.t`
        // loses its qualifier, which the alias does not need).
        let id = format!(
            "__weir_lookup_{}",
            NEXT_LOOKUP.fetch_add(1, Ordering::Relaxed)
        );
        let mut start = table_at;
        while start >= 2 && matches!(out[start - 1].token, Token::Period) && is_word(start - 2) {
            start -= 2;
        }
        // The table as written, qualifier and all (`db.t`), so it is looked up where named.
        let table = out[start..=table_at]
            .iter()
            .filter_map(|t| match &t.token {
                Token::Word(w) => Some(w.value.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(".");
        let span = out[table_at].span;
        let renamed = TokenWithSpan::new(
            Token::Word(datafusion::sql::sqlparser::tokenizer::Word {
                value: id.clone(),
                quote_style: None,
                keyword: Keyword::NoKeyword,
            }),
            span,
        );
        // An alias after the clause (`… AS OF o.ts AS r`, `… AS OF o.ts r`): any word the
        // parser takes as a table alias there, keywords such as `value` included.
        let alias_after = !aliased
            && next_sig(&tokens, end).is_some_and(|k| {
                matches!(&tokens[k].token, Token::Word(w)
                    if w.quote_style.is_some()
                        || w.keyword == Keyword::AS
                        || !datafusion::sql::sqlparser::keywords::RESERVED_FOR_TABLE_ALIAS
                            .contains(&w.keyword))
            });
        let mut replacement = vec![renamed];
        if !aliased && !alias_after {
            let ws = TokenWithSpan::new(
                Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space),
                span,
            );
            replacement.push(ws.clone());
            replacement.push(TokenWithSpan::new(
                Token::Word(datafusion::sql::sqlparser::tokenizer::Word {
                    value: "AS".into(),
                    quote_style: None,
                    keyword: Keyword::AS,
                }),
                span,
            ));
            replacement.push(ws);
            replacement.push(TokenWithSpan::new(Token::Word(table_word), span));
        }
        out.splice(start..=table_at, replacement);
        lookups.push(Lookup {
            table,
            id,
            table_pos,
            pos: pos_of(&tokens[i]),
            column,
            column_pos: pos_of(&tokens[first]),
        });
        i = end;
    }
    Ok((out, lookups))
}

/// Where a statement set starts (its first word), where its `END` is, and whether it is
/// explained (`EXPLAIN STATEMENT SET`) rather than run: `Some(changelog_mode)` then, true
/// for `EXPLAIN CHANGELOG_MODE STATEMENT SET`.
type SetSpan = (Pos, Pos, Option<bool>);

/// Takes Flink's statement-set wrappers out of the tokens — `EXECUTE STATEMENT SET BEGIN
/// … END;` and the SQL client's `BEGIN STATEMENT SET; … END;` — leaving the INSERTs inside,
/// and returns where each set was, so that [`parse_script`] makes its INSERTs one
/// [`Statement::StatementSet`] (one job, as Flink runs them). As in Flink, a set holds only
/// INSERT statements and must be closed.
fn strip_statement_sets(tokens: Vec<TokenWithSpan>) -> Result<(Vec<TokenWithSpan>, Vec<SetSpan>)> {
    use crate::sql::window::next_sig;
    let word = |t: &TokenWithSpan, w: &str| matches!(&t.token, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut open: Option<usize> = None;
    // Where each set starts (its first word) and ends (its END), and whether it is
    // explained (`EXPLAIN STATEMENT SET BEGIN … END;`) rather than run.
    let mut sets = vec![];
    let mut explain = None;
    // At the start of a statement (after `;` or the set's opening).
    let mut at_start = true;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if crate::sql::window::is_ws(t) || t.token == Token::EOF {
            out.push(t.clone());
            i += 1;
            continue;
        }
        if at_start {
            let sig = |from: usize, n: usize| -> Option<Vec<usize>> {
                let mut v = vec![];
                let mut at = from;
                for _ in 0..n {
                    let k = next_sig(&tokens, at)?;
                    v.push(k);
                    at = k + 1;
                }
                Some(v)
            };
            if open.is_none() {
                // `EXPLAIN CHANGELOG_MODE[, …] STATEMENT SET`: the details come first.
                let mut from = i;
                let mut details = None;
                if let Some(e) = next_sig(&tokens, i)
                    && word(&tokens[e], "EXPLAIN")
                {
                    let mut at = e + 1;
                    let mut changelog = false;
                    while let Some(d) = next_sig(&tokens, at)
                        && word(&tokens[d], "CHANGELOG_MODE")
                    {
                        changelog = true;
                        at = d + 1;
                        match next_sig(&tokens, at) {
                            Some(c) if tokens[c].token == Token::Comma => at = c + 1,
                            _ => break,
                        }
                    }
                    if changelog {
                        from = at;
                        details = Some(true);
                    }
                }
                if let Some(v) = sig(from, 3)
                    && details.is_some()
                    && word(&tokens[v[0]], "STATEMENT")
                    && word(&tokens[v[1]], "SET")
                    && word(&tokens[v[2]], "BEGIN")
                {
                    open = Some(i);
                    explain = details;
                    i = v[2] + 1;
                    continue;
                }
                if let Some(v) = sig(i, 4)
                    && (word(&tokens[v[0]], "EXECUTE") || word(&tokens[v[0]], "EXPLAIN"))
                    && word(&tokens[v[1]], "STATEMENT")
                    && word(&tokens[v[2]], "SET")
                    && word(&tokens[v[3]], "BEGIN")
                {
                    open = Some(i);
                    explain = word(&tokens[v[0]], "EXPLAIN").then_some(false);
                    i = v[3] + 1;
                    continue;
                }
                if let Some(v) = sig(i, 4)
                    && word(&tokens[v[0]], "BEGIN")
                    && word(&tokens[v[1]], "STATEMENT")
                    && word(&tokens[v[2]], "SET")
                    && tokens[v[3]].token == Token::SemiColon
                {
                    open = Some(i);
                    i = v[3] + 1;
                    continue;
                }
            } else if word(t, "END") {
                if let Some(start) = open.take() {
                    sets.push((pos_of(&tokens[start]), pos_of(t), explain));
                }
                explain = None;
                i += 1;
                continue;
            } else if t.token != Token::SemiColon && !word(t, "INSERT") {
                return Err(
                    sql_err("a statement set holds only INSERT statements", t).with_hint(
                        "run other statements before EXECUTE STATEMENT SET BEGIN or after its END;",
                    ),
                );
            }
        }
        at_start = t.token == Token::SemiColon;
        out.push(t.clone());
        i += 1;
    }
    if let Some(at) = open {
        return Err(sql_err(
            "the statement set is not closed: END; is missing",
            &tokens[at],
        ));
    }
    Ok((out, sets))
}

/// Flink's long spelling `TIMESTAMP[(p)] WITH LOCAL TIME ZONE` as its short one,
/// `TIMESTAMP_LTZ[(p)]`, which a query's `CAST` and a table's column both read.
fn local_time_zone_types(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    use crate::sql::window::next_sig;
    let word = |t: &TokenWithSpan, w: &str| matches!(&t.token, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if word(t, "TIMESTAMP") {
            // After the optional precision: the index of the token that may start WITH.
            let mut after = i + 1;
            if let Some(open) = next_sig(&tokens, i + 1)
                && tokens[open].token == Token::LParen
                && let Some(n) = next_sig(&tokens, open + 1)
                && matches!(tokens[n].token, Token::Number(..))
                && let Some(close) = next_sig(&tokens, n + 1)
                && tokens[close].token == Token::RParen
            {
                after = close + 1;
            }
            let mut at = after;
            let mut matched = true;
            for w in ["WITH", "LOCAL", "TIME", "ZONE"] {
                match next_sig(&tokens, at) {
                    Some(k) if word(&tokens[k], w) => at = k + 1,
                    _ => {
                        matched = false;
                        break;
                    }
                }
            }
            if matched {
                let mut ltz = t.clone();
                ltz.token = Token::make_word("TIMESTAMP_LTZ", None);
                out.push(ltz);
                out.extend(tokens[i + 1..after].iter().cloned());
                i = at;
                continue;
            }
        }
        out.push(t.clone());
        i += 1;
    }
    out
}

/// String literals continued as Calcite continues them: `'ab'` written as `'a'` and, on a
/// later line, `'b'` (only blanks and comments between) is one literal; on the same line it
/// is an error, Calcite's "String literal continued on same line" (sqlparser would read the
/// second as the first's alias).
fn continued_strings(tokens: Vec<TokenWithSpan>) -> Result<Vec<TokenWithSpan>> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    // Inside a `WITH ('key' = 'value', …)` list (the depth of parentheses it opened), where
    // two strings side by side are a missing `=`, which the options' parser reports.
    let mut depth = 0i32;
    let mut options_at: Option<i32> = None;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        match &t.token {
            Token::LParen => {
                depth += 1;
                let after_with = out
                    .iter()
                    .rev()
                    .find(|o| !matches!(o.token, Token::Whitespace(_)))
                    .is_some_and(
                        |o| matches!(&o.token, Token::Word(w) if w.keyword == Keyword::WITH),
                    );
                if after_with && options_at.is_none() {
                    options_at = Some(depth);
                }
            }
            Token::RParen => {
                if options_at == Some(depth) {
                    options_at = None;
                }
                depth -= 1;
            }
            _ => {}
        }
        if options_at.is_none()
            && let Token::SingleQuotedString(_) = &t.token
            && let Some(last) = out
                .iter()
                .rposition(|o| !matches!(o.token, Token::Whitespace(_)))
            && let Token::SingleQuotedString(before) = &out[last].token
        {
            if out[last].span.end.line == t.span.start.line {
                return Err(sql_err("String literal continued on same line", t));
            }
            let mut joined = before.clone();
            if let Token::SingleQuotedString(more) = &t.token {
                joined.push_str(more);
            }
            let end = t.span.end;
            out.truncate(last + 1);
            out[last].token = Token::SingleQuotedString(joined);
            out[last].span.end = end;
            i += 1;
            continue;
        }
        out.push(t.clone());
        i += 1;
    }
    Ok(out)
}

/// Parses a script of `;`-separated statements.
pub fn parse_script(sql: &str) -> Result<Vec<Located>> {
    let dialect = GenericDialect {};
    // Unicode literals (`U&'…' UESCAPE '#'`) read first: the tokenizer knows only some.
    let tokens = crate::sql::unicode_literals::tokenize(sql)?;
    let tokens = continued_strings(tokens)?;
    let mut calls = vec![];
    reserved_qualifiers(&tokens)?;
    let tokens = default_qualifiers(tokens);
    let (tokens, sets) = strip_statement_sets(tokens)?;
    let tokens = local_time_zone_types(tokens);
    let (tokens, mut lookups) = strip_system_time(tokens)?;
    let tokens = crate::sql::syntax::rewrite_tokens(tokens)?;
    let tokens = rewrite_tokens(tokens, &mut calls)?;
    let lines = Lines::new(sql);
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut out = vec![];
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let first = parser.peek_token();
        if first.token == Token::EOF {
            break;
        }
        let pos = pos_of(&first);
        let mut statement = parse_statement(&mut parser)?;
        let end = parser.peek_token();
        match end.token {
            Token::SemiColon | Token::EOF => {}
            ref other => {
                return Err(sql_err(
                    format!("expected ';' after the statement, found '{other}'"),
                    &end,
                ));
            }
        }
        let text = if end.token == Token::EOF {
            &sql[lines.offset(sql, pos)..]
        } else {
            &sql[lines.offset(sql, pos)..lines.offset(sql, pos_of(&end))]
        };
        let mut windows = vec![];
        let mut i = 0;
        while i < calls.len() {
            if calls[i].pos >= pos && (end.token == Token::EOF || calls[i].pos < pos_of(&end)) {
                windows.push(calls.remove(i));
            } else {
                i += 1;
            }
        }
        if let Statement::AlterSchema { change, .. } = &mut statement {
            for c in change.components_mut() {
                let (a, b) = (lines.offset(sql, c.pos), lines.offset(sql, c.end));
                c.text = sql.get(a..b.max(a)).unwrap_or_default().trim().to_string();
            }
        }
        statement_windows(&mut statement, &mut windows)?;
        let in_statement = |p: &Pos| *p >= pos && (end.token == Token::EOF || *p < pos_of(&end));
        let (mine, rest): (Vec<_>, Vec<_>) =
            lookups.into_iter().partition(|l| in_statement(&l.pos));
        lookups = rest;
        // EXPLAIN's statement reads the same tables.
        if let Statement::Explain { inner, .. } = &mut statement {
            inner.lookups = mine.clone();
        }
        out.push(Located {
            statement,
            pos,
            text: text.trim().to_string(),
            windows,
            lookups: mine,
        });
    }
    Ok(group_statement_sets(sql, &lines, out, &sets))
}

/// The statements inside each statement set (`sets`: where each starts and where its END
/// is) as one [`Statement::StatementSet`], at the set's start, its text the whole set.
fn group_statement_sets(
    sql: &str,
    lines: &Lines,
    statements: Vec<Located>,
    sets: &[SetSpan],
) -> Vec<Located> {
    let mut out: Vec<Located> = vec![];
    let mut current: Option<(usize, Vec<Located>)> = None;
    for stmt in statements {
        let set = sets
            .iter()
            .position(|(start, end, _)| stmt.pos >= *start && stmt.pos < *end);
        if let Some((at, members)) = current.take() {
            if set == Some(at) {
                let mut members = members;
                members.push(stmt);
                current = Some((at, members));
                continue;
            }
            out.push(statement_set(sql, lines, sets[at], members));
        }
        match set {
            Some(at) => current = Some((at, vec![stmt])),
            None => out.push(stmt),
        }
    }
    if let Some((at, members)) = current {
        out.push(statement_set(sql, lines, sets[at], members));
    }
    out
}

fn statement_set(
    sql: &str,
    lines: &Lines,
    (start, end, explain): SetSpan,
    members: Vec<Located>,
) -> Located {
    let from = lines.offset(sql, start);
    let to = (lines.offset(sql, end) + 3).min(sql.len());
    let set = Located {
        statement: Statement::StatementSet(members),
        pos: start,
        text: sql.get(from..to).unwrap_or_default().trim().to_string(),
        windows: vec![],
        lookups: vec![],
    };
    let Some(changelog_mode) = explain else {
        return set;
    };
    Located {
        text: set.text.clone(),
        statement: Statement::Explain {
            inner: Box::new(set),
            changelog_mode,
        },
        pos: start,
        windows: vec![],
        lookups: vec![],
    }
}

/// Rewrites group-window functions in the statement's query and hands an EXPLAIN's inner
/// statement its window calls.
fn statement_windows(s: &mut Statement, windows: &mut Vec<WindowCall>) -> Result<()> {
    match s {
        Statement::Query(q) => {
            crate::sql::names::name_columns(q);
            crate::sql::rewrite::rewrite_query(q);
            rewrite_group_windows(q, windows)
        }
        Statement::CreateTable(c) if c.as_query.is_some() => {
            if let Some(query) = c.as_query.as_mut() {
                crate::sql::names::name_columns(query);
                crate::sql::rewrite::rewrite_query(query);
                rewrite_group_windows(query, windows)?;
            }
            Ok(())
        }
        Statement::Insert { query, .. } | Statement::CreateView { query, .. } => {
            crate::sql::names::name_columns(query);
            crate::sql::rewrite::rewrite_query(query);
            rewrite_group_windows(query, windows)
        }
        Statement::Explain { inner, .. } => {
            statement_windows(&mut inner.statement, windows)?;
            inner.windows = windows.clone();
            Ok(())
        }
        _ => Ok(()),
    }
}

fn parse_statement(p: &mut Parser) -> Result<Statement> {
    let t = p.peek_token();
    let kw = match &t.token {
        Token::Word(w) => w.keyword,
        Token::LParen => return Ok(Statement::Query(p.parse_query().map_err(parser_error)?)),
        _ => Keyword::NoKeyword,
    };
    match kw {
        Keyword::SELECT | Keyword::WITH | Keyword::VALUES => {
            Ok(Statement::Query(p.parse_query().map_err(parser_error)?))
        }
        Keyword::CREATE => {
            p.next_token();
            let or_replace = p.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
            let _ = p.parse_keyword(Keyword::TEMPORARY);
            if p.parse_keyword(Keyword::TABLE) {
                if or_replace {
                    return Err(sql_err("CREATE OR REPLACE TABLE is not supported", &t)
                        .with_hint("DROP TABLE first, then CREATE TABLE"));
                }
                return parse_create_table(p).map(|c| Statement::CreateTable(Box::new(c)));
            }
            if p.parse_keyword(Keyword::VIEW) {
                let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
                let (name, name_pos) = parse_name(p)?;
                // `CREATE VIEW v (a, b) AS …` names the view's columns (Flink's syntax).
                let columns = if p.consume_token(&Token::LParen) {
                    let cols = p
                        .parse_comma_separated(|p| p.parse_identifier())
                        .map_err(parser_error)?;
                    p.expect_token(&Token::RParen).map_err(parser_error)?;
                    cols
                } else {
                    vec![]
                };
                p.expect_keyword_is(Keyword::AS).map_err(parser_error)?;
                let mut query = p.parse_query().map_err(parser_error)?;
                if !columns.is_empty() {
                    query = with_column_names(query, &columns)?;
                }
                return Ok(Statement::CreateView {
                    name,
                    name_pos,
                    if_not_exists,
                    or_replace,
                    query,
                });
            }
            let _ = p.parse_keyword(Keyword::SYSTEM);
            if p.parse_keyword(Keyword::FUNCTION) {
                let _ = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
                let (name, name_pos) = parse_name(p)?;
                p.expect_keyword_is(Keyword::AS).map_err(parser_error)?;
                let c = p.next_token();
                let Token::SingleQuotedString(class) = &c.token else {
                    return Err(sql_err(
                        "CREATE FUNCTION ... AS takes a class name in quotes",
                        &c,
                    ));
                };
                if p.parse_keyword(Keyword::LANGUAGE) {
                    p.next_token();
                }
                return Ok(Statement::CreateFunction {
                    name,
                    name_pos,
                    class: class.clone(),
                    class_pos: pos_of(&c),
                });
            }
            let next = p.peek_token();
            Err(sql_err(
                format!(
                    "expected TABLE, VIEW or FUNCTION after CREATE, found '{}'",
                    next.token
                ),
                &next,
            ))
        }
        Keyword::INSERT => {
            p.next_token();
            if p.parse_keyword(Keyword::OVERWRITE) {
                return Err(sql_err(
                    "INSERT OVERWRITE is not supported by standing queries",
                    &t,
                ));
            }
            p.expect_keyword_is(Keyword::INTO).map_err(parser_error)?;
            let (table, table_pos) = parse_name(p)?;
            let mut columns = vec![];
            if p.peek_token().token == Token::LParen
                && !matches!(p.peek_nth_token(1).token, Token::Word(ref w) if w.keyword == Keyword::SELECT || w.keyword == Keyword::WITH)
            {
                p.next_token();
                columns = p
                    .parse_comma_separated(|p| p.parse_identifier())
                    .map_err(parser_error)?
                    .into_iter()
                    .map(|i| i.value)
                    .collect();
                p.expect_token(&Token::RParen).map_err(parser_error)?;
            }
            let query = p.parse_query().map_err(parser_error)?;
            Ok(Statement::Insert {
                table,
                table_pos,
                columns,
                query,
            })
        }
        Keyword::SET => {
            p.next_token();
            if matches!(p.peek_token().token, Token::SemiColon | Token::EOF) {
                return Ok(Statement::Set {
                    key: None,
                    value: None,
                });
            }
            let key = parse_setting_word(p, true)?;
            let eq = p.next_token();
            if eq.token != Token::Eq {
                return Err(sql_err(
                    format!("expected '=' after the key, found '{}'", eq.token),
                    &eq,
                )
                .with_hint("SET 'key' = 'value'"));
            }
            let value = parse_setting_word(p, false)?;
            Ok(Statement::Set {
                key: Some(key),
                value: Some(value),
            })
        }
        Keyword::RESET => {
            p.next_token();
            if matches!(p.peek_token().token, Token::SemiColon | Token::EOF) {
                return Ok(Statement::Reset(None));
            }
            Ok(Statement::Reset(Some(parse_setting_word(p, true)?)))
        }
        Keyword::ALTER => {
            p.next_token();
            p.expect_keyword_is(Keyword::TABLE).map_err(parser_error)?;
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let (name, name_pos) = parse_name(p)?;
            let t = p.peek_token();
            if p.parse_keyword(Keyword::RENAME) {
                if !p.parse_keyword(Keyword::TO) {
                    // `RENAME a TO b`: a column.
                    let (from, from_pos) = parse_ident(p)?;
                    p.expect_keyword_is(Keyword::TO).map_err(parser_error)?;
                    let (to, to_pos) = parse_ident(p)?;
                    return Ok(Statement::AlterSchema {
                        name,
                        name_pos,
                        if_exists,
                        change: crate::sql::alter::SchemaChange::RenameColumn {
                            from,
                            from_pos,
                            to,
                            to_pos,
                        },
                        pos: pos_of(&t),
                    });
                }
                let (to, to_pos) = parse_name(p)?;
                return Ok(Statement::RenameTable {
                    name,
                    name_pos,
                    if_exists,
                    to,
                    to_pos,
                });
            }
            if let Some(change) = parse_schema_change(p)? {
                return Ok(Statement::AlterSchema {
                    name,
                    name_pos,
                    if_exists,
                    change,
                    pos: pos_of(&t),
                });
            }
            let reset = if p.parse_keyword(Keyword::SET) {
                false
            } else if p.parse_keyword(Keyword::RESET) {
                true
            } else {
                return Err(sql_err(
                    format!("expected ADD, MODIFY, DROP, RENAME, SET or RESET after ALTER TABLE {name}, found '{}'", t.token),
                    &t,
                )
                .with_hint("ALTER TABLE t ADD c INT, MODIFY c BIGINT, DROP c, RENAME c TO d, RENAME TO u, SET ('k' = 'v') or RESET ('k')"));
            };
            p.expect_token(&Token::LParen).map_err(parser_error)?;
            let mut options: Vec<TableOption> = vec![];
            loop {
                let kt = p.next_token();
                let Token::SingleQuotedString(key) = &kt.token else {
                    return Err(sql_err(
                        format!("expected a quoted option key, found '{}'", kt.token),
                        &kt,
                    ));
                };
                let value = if reset {
                    String::new()
                } else {
                    p.expect_token(&Token::Eq).map_err(parser_error)?;
                    let vt = p.next_token();
                    match &vt.token {
                        Token::SingleQuotedString(v) => v.clone(),
                        other => {
                            return Err(sql_err(
                                format!("expected a quoted value for '{key}', found '{other}'"),
                                &vt,
                            ));
                        }
                    }
                };
                if options.iter().any(|o| o.key == *key) {
                    return Err(sql_err(format!("option '{key}' is given twice"), &kt));
                }
                options.push(TableOption {
                    key: key.clone(),
                    value,
                    pos: pos_of(&kt),
                });
                if !p.consume_token(&Token::Comma) {
                    break;
                }
            }
            p.expect_token(&Token::RParen).map_err(parser_error)?;
            Ok(Statement::AlterTable {
                name,
                name_pos,
                if_exists,
                options,
                reset,
            })
        }
        Keyword::DROP => {
            p.next_token();
            let _ = p.parse_keyword(Keyword::TEMPORARY);
            let view = if p.parse_keyword(Keyword::TABLE) {
                false
            } else if p.parse_keyword(Keyword::VIEW) {
                true
            } else {
                let n = p.peek_token();
                return Err(sql_err(
                    format!("expected TABLE or VIEW after DROP, found '{}'", n.token),
                    &n,
                ));
            };
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let (name, name_pos) = parse_name(p)?;
            Ok(Statement::Drop {
                view,
                name,
                name_pos,
                if_exists,
            })
        }
        Keyword::SHOW => {
            p.next_token();
            if p.parse_keyword(Keyword::TABLES) {
                skip_database(p)?;
                let like = parse_like(p)?;
                return Ok(Statement::ShowTables {
                    views_only: false,
                    like,
                });
            }
            if p.parse_keyword(Keyword::VIEWS) {
                skip_database(p)?;
                let like = parse_like(p)?;
                return Ok(Statement::ShowTables {
                    views_only: true,
                    like,
                });
            }
            if word(p, "CATALOGS") {
                let like = parse_like(p)?;
                return Ok(Statement::ShowCatalog(CatalogShow::Catalogs, like));
            }
            if word(p, "DATABASES") {
                if word(p, "FROM") || word(p, "IN") {
                    let t = p.peek_token();
                    let (name, _) = parse_name(p)?;
                    if name != "default_catalog" {
                        return Err(sql_err(format!("no catalog named '{name}'"), &t)
                            .with_hint("Weir has one catalog, default_catalog"));
                    }
                }
                let like = parse_like(p)?;
                return Ok(Statement::ShowCatalog(CatalogShow::Databases, like));
            }
            if word(p, "CURRENT") {
                if word(p, "CATALOG") {
                    return Ok(Statement::ShowCatalog(CatalogShow::CurrentCatalog, None));
                }
                if word(p, "DATABASE") {
                    return Ok(Statement::ShowCatalog(CatalogShow::CurrentDatabase, None));
                }
                let n = p.peek_token();
                return Err(sql_err(
                    format!(
                        "expected CATALOG or DATABASE after SHOW CURRENT, found '{}'",
                        n.token
                    ),
                    &n,
                ));
            }
            if word(p, "JARS") {
                return Ok(Statement::ShowCatalog(CatalogShow::Jars, None));
            }
            let full = word(p, "FULL");
            if word(p, "MODULES") {
                return Ok(Statement::ShowCatalog(CatalogShow::Modules { full }, None));
            }
            if full {
                let n = p.peek_token();
                return Err(sql_err(
                    format!("expected MODULES after SHOW FULL, found '{}'", n.token),
                    &n,
                ));
            }
            if word(p, "COLUMNS") {
                if !word(p, "FROM") && !word(p, "IN") {
                    let n = p.peek_token();
                    return Err(sql_err(
                        format!(
                            "expected FROM or IN after SHOW COLUMNS, found '{}'",
                            n.token
                        ),
                        &n,
                    ));
                }
                let (name, name_pos) = parse_name(p)?;
                let like = parse_like(p)?;
                return Ok(Statement::Describe {
                    name,
                    name_pos,
                    like,
                });
            }
            let user = p.parse_keyword(Keyword::USER);
            if p.parse_keyword(Keyword::FUNCTIONS) {
                skip_database(p)?;
                let like = parse_like(p)?;
                return Ok(Statement::ShowFunctions { user, like });
            }
            if !user && p.parse_keyword(Keyword::CREATE) {
                let view = if p.parse_keyword(Keyword::VIEW) {
                    true
                } else {
                    p.expect_keyword_is(Keyword::TABLE).map_err(parser_error)?;
                    false
                };
                let (name, name_pos) = parse_name(p)?;
                return Ok(Statement::ShowCreate {
                    view,
                    name,
                    name_pos,
                });
            }
            let n = p.peek_token();
            Err(
                sql_err(format!("SHOW {} is not supported", n.token), &n).with_hint(
                    "SHOW TABLES, VIEWS, [USER] FUNCTIONS, COLUMNS FROM t, CREATE TABLE t, \
                     CREATE VIEW v, CATALOGS, DATABASES, CURRENT CATALOG, CURRENT DATABASE, \
                     [FULL] MODULES and JARS work",
                ),
            )
        }
        Keyword::DESCRIBE | Keyword::DESC => {
            p.next_token();
            // Flink's `DESCRIBE EXTENDED t` shows a table as `DESCRIBE t` does.
            if matches!(&p.peek_token().token, Token::Word(w)
                if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("EXTENDED"))
                && !matches!(p.peek_nth_token(1).token, Token::SemiColon | Token::EOF)
            {
                p.next_token();
            }
            let (name, name_pos) = parse_name(p)?;
            Ok(Statement::Describe {
                name,
                name_pos,
                like: None,
            })
        }
        Keyword::USE => {
            p.next_token();
            let catalog = word(p, "CATALOG");
            if !catalog && word(p, "MODULES") {
                let n = p.peek_token();
                loop {
                    let m = p.peek_token();
                    let module = p.parse_identifier().map_err(parser_error)?;
                    if module.value != "core" {
                        return Err(sql_err(format!("no module named '{}'", module.value), &m)
                            .with_hint("Weir has one module, core (SHOW FULL MODULES)"));
                    }
                    if !p.consume_token(&Token::Comma) {
                        break;
                    }
                }
                return Ok(Statement::Use {
                    catalog: false,
                    name: String::new(),
                    name_pos: pos_of(&n),
                });
            }
            let (name, name_pos) = parse_name(p)?;
            Ok(Statement::Use {
                catalog,
                name,
                name_pos,
            })
        }
        Keyword::EXPLAIN => {
            p.next_token();
            let _ = p.parse_keyword(Keyword::PLAN);
            let _ = p.parse_keyword(Keyword::FOR);
            // Flink's explain details: `EXPLAIN CHANGELOG_MODE, ESTIMATED_COST … <query>`.
            let mut changelog_mode = false;
            loop {
                let d = p.peek_token();
                let Token::Word(w) = &d.token else { break };
                if w.quote_style.is_some() {
                    break;
                }
                match w.value.to_ascii_uppercase().as_str() {
                    "CHANGELOG_MODE" if changelog_mode => {
                        return Err(sql_err("EXPLAIN CHANGELOG_MODE is given twice", &d));
                    }
                    "CHANGELOG_MODE" => changelog_mode = true,
                    "ESTIMATED_COST" | "JSON_EXECUTION_PLAN" | "PLAN_ADVICE" => {
                        return Err(sql_err(
                            format!("EXPLAIN {} is not supported", w.value.to_ascii_uppercase()),
                            &d,
                        )
                        .with_hint("EXPLAIN and EXPLAIN CHANGELOG_MODE work"));
                    }
                    _ => break,
                }
                p.next_token();
                if !p.consume_token(&Token::Comma) {
                    break;
                }
                let next = p.peek_token();
                let detail = matches!(&next.token, Token::Word(w) if w.quote_style.is_none()
                    && ["CHANGELOG_MODE", "ESTIMATED_COST", "JSON_EXECUTION_PLAN", "PLAN_ADVICE"]
                        .contains(&w.value.to_ascii_uppercase().as_str()));
                if !detail {
                    return Err(sql_err(
                        format!(
                            "expected an explain detail after ',', found '{}'",
                            next.token
                        ),
                        &next,
                    )
                    .with_hint("EXPLAIN CHANGELOG_MODE <query>"));
                }
            }
            let inner_tok = p.peek_token();
            let inner = parse_statement(p)?;
            if !matches!(inner, Statement::Query(_) | Statement::Insert { .. }) {
                return Err(sql_err(
                    "EXPLAIN takes a SELECT or an INSERT INTO",
                    &inner_tok,
                ));
            }
            Ok(Statement::Explain {
                inner: Box::new(Located {
                    statement: inner,
                    pos: pos_of(&inner_tok),
                    text: String::new(),
                    windows: vec![],
                    lookups: vec![],
                }),
                changelog_mode,
            })
        }
        _ => {
            const STARTS: [&str; 12] = [
                "SELECT", "WITH", "CREATE", "INSERT", "SET", "RESET", "DROP", "SHOW", "DESCRIBE",
                "EXPLAIN", "ALTER", "USE",
            ];
            let word = t.token.to_string();
            let mut e = sql_err(
                format!("unexpected '{word}' at the start of a statement"),
                &t,
            );
            e = match crate::error::did_you_mean(&word, STARTS) {
                Some(s) => e.with_hint(format!("did you mean {s}?")),
                None => e.with_hint(format!(
                    "a statement starts with one of {}",
                    STARTS.join(", ")
                )),
            };
            Err(e)
        }
    }
}

/// What `SHOW` lists of Weir's one catalog (Flink's `default_catalog`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogShow {
    /// `SHOW CATALOGS`.
    Catalogs,
    /// `SHOW DATABASES`.
    Databases,
    /// `SHOW CURRENT CATALOG`.
    CurrentCatalog,
    /// `SHOW CURRENT DATABASE`.
    CurrentDatabase,
    /// `SHOW [FULL] MODULES`.
    Modules { full: bool },
    /// `SHOW JARS`.
    Jars,
}

/// `[NOT] LIKE 'pattern'` (or `ILIKE`, case-insensitive) after a `SHOW`, as Flink's: `%` any
/// run of characters, `_` one character, `\` before either (or itself) that character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Like {
    /// The pattern as written.
    pub pattern: String,
    /// `NOT LIKE`.
    pub not: bool,
    /// `ILIKE`: letters match whatever their case.
    pub case_insensitive: bool,
}

impl Like {
    /// Whether `name` is listed under this filter.
    pub fn admits(&self, name: &str) -> bool {
        // Character by character, so that `_` still stands for one character of the name
        // (a character whose lower case is longer, `İ`, keeps its first).
        let lower = |s: &str| -> Vec<char> {
            s.chars()
                .map(|c| c.to_lowercase().next().unwrap_or(c))
                .collect()
        };
        let (n, p): (Vec<char>, Vec<char>) = if self.case_insensitive {
            (lower(name), lower(&self.pattern))
        } else {
            (name.chars().collect(), self.pattern.chars().collect())
        };
        // The pattern's parts: None for `%`, Some(None) for `_`, Some(Some(c)) for `c`.
        let mut parts: Vec<Option<Option<char>>> = vec![];
        let mut chars = p.into_iter();
        while let Some(c) = chars.next() {
            parts.push(match c {
                '\\' => Some(Some(chars.next().unwrap_or('\\'))),
                '%' => None,
                '_' => Some(None),
                c => Some(Some(c)),
            });
        }
        like_matches(&n, &parts) != self.not
    }
}

/// SQL `LIKE` of `n` against a pattern's parts (None any run, `Some(None)` one character,
/// `Some(Some(c))` the character `c`), by the usual backtracking over the last `%`; linear
/// in practice, at worst `n × p` steps.
fn like_matches(n: &[char], p: &[Option<Option<char>>]) -> bool {
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < n.len() {
        match p.get(j) {
            Some(Some(one)) if one.is_none_or(|c| c == n[i]) => {
                i += 1;
                j += 1;
            }
            Some(None) => {
                star = Some((j, i));
                j += 1;
            }
            _ => match star {
                Some((sj, si)) => {
                    j = sj + 1;
                    i = si + 1;
                    star = Some((sj, si + 1));
                }
                None => return false,
            },
        }
    }
    p[j..].iter().all(Option::is_none)
}

/// Consumes the unquoted word `w` (any case) when it comes next.
fn word(p: &mut Parser, w: &str) -> bool {
    let next = p.peek_token();
    match &next.token {
        Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w) => {
            p.next_token();
            true
        }
        _ => false,
    }
}

/// `[FROM|IN [catalog.]database]` after `SHOW TABLES/VIEWS/FUNCTIONS`: Weir has Flink's one
/// `default_catalog.default_database`, so any other name is an error.
fn skip_database(p: &mut Parser) -> Result<()> {
    if !word(p, "FROM") && !word(p, "IN") {
        return Ok(());
    }
    let t = p.peek_token();
    let (name, _) = parse_name(p)?;
    let db = name.strip_prefix("default_catalog.").unwrap_or(&name);
    if db != "default_database" {
        return Err(sql_err(format!("no database named '{name}'"), &t)
            .with_hint("Weir has one catalog and database: default_catalog.default_database"));
    }
    Ok(())
}

/// `[NOT] LIKE 'pattern'` or `[NOT] ILIKE 'pattern'`, if it comes next.
fn parse_like(p: &mut Parser) -> Result<Option<Like>> {
    let not = p.parse_keyword(Keyword::NOT);
    let case_insensitive = if p.parse_keyword(Keyword::LIKE) {
        false
    } else if p.parse_keyword(Keyword::ILIKE) {
        true
    } else if not {
        let n = p.peek_token();
        return Err(sql_err(
            format!("expected LIKE or ILIKE after NOT, found '{}'", n.token),
            &n,
        ));
    } else {
        return Ok(None);
    };
    let t = p.peek_token();
    let pattern = match p.next_token().token {
        Token::SingleQuotedString(s) => s,
        other => {
            return Err(sql_err(
                format!("expected a quoted pattern after LIKE, found '{other}'"),
                &t,
            )
            .with_hint("SHOW TABLES LIKE 'bid%'"));
        }
    };
    Ok(Some(Like {
        pattern,
        not,
        case_insensitive,
    }))
}

/// A table or view name: one identifier, or a dotted name kept as written.
fn parse_name(p: &mut Parser) -> Result<(String, Pos)> {
    let t = p.peek_token();
    let name = p.parse_object_name(false).map_err(parser_error)?;
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part.as_ident() {
            Some(i) => i.value.clone(),
            None => part.to_string(),
        })
        .collect();
    Ok((parts.join("."), pos_of(&t)))
}

/// One identifier (a column's name) and where it is.
fn parse_ident(p: &mut Parser) -> Result<(String, Pos)> {
    let t = p.peek_token();
    let i = p.parse_identifier().map_err(parser_error)?;
    Ok((i.value, pos_of(&t)))
}

/// A key or value of `SET`: a quoted string, or a bare word/number as a convenience.
fn parse_setting_word(p: &mut Parser, key: bool) -> Result<String> {
    let t = p.next_token();
    match &t.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Ok(s.clone()),
        Token::Number(n, _) if !key => Ok(n.clone()),
        Token::Word(w) => {
            // Unquoted dotted keys: table.exec.source.idle-timeout is tokenised in pieces.
            let mut s = w.value.clone();
            loop {
                let next = p.peek_token();
                match &next.token {
                    Token::Period => {
                        p.next_token();
                        s.push('.');
                    }
                    Token::Minus if key => {
                        p.next_token();
                        s.push('-');
                    }
                    Token::Word(w2) if s.ends_with('.') || s.ends_with('-') => {
                        p.next_token();
                        s.push_str(&w2.value);
                    }
                    _ => break,
                }
            }
            Ok(s)
        }
        other => Err(sql_err(
            format!(
                "expected a quoted {}, found '{other}'",
                if key { "key" } else { "value" }
            ),
            &t,
        )
        .with_hint("SET 'key' = 'value'")),
    }
}

fn parse_create_table(p: &mut Parser) -> Result<CreateTable> {
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let (name, name_pos) = parse_name(p)?;
    let mut columns = vec![];
    let mut watermark = None;
    let mut watermark_pos = None;
    let mut primary_key = vec![];
    let mut primary_key_pos = None;
    if p.consume_token(&Token::LParen) {
        loop {
            let t = p.peek_token();
            if let Token::Word(w) = &t.token
                && w.quote_style.is_none()
            {
                let upper = w.value.to_ascii_uppercase();
                if upper == "WATERMARK" {
                    if watermark.is_some() {
                        return Err(sql_err("a table has at most one WATERMARK", &t));
                    }
                    watermark = Some(parse_watermark(p)?);
                    watermark_pos = Some(pos_of(&t));
                    if !p.consume_token(&Token::Comma) {
                        break;
                    }
                    continue;
                }
                if w.keyword == Keyword::PRIMARY || w.keyword == Keyword::CONSTRAINT {
                    primary_key = parse_primary_key(p)?;
                    primary_key_pos = Some(pos_of(&t));
                    if !p.consume_token(&Token::Comma) {
                        break;
                    }
                    continue;
                }
            }
            columns.push(parse_column(p)?);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        let close = p.next_token();
        if close.token != Token::RParen {
            return Err(sql_err(
                format!(
                    "expected ',' or ')' in the column list, found '{}'",
                    close.token
                ),
                &close,
            ));
        }
    }
    if p.parse_keyword(Keyword::COMMENT) {
        p.parse_literal_string().map_err(parser_error)?;
    }
    let mut partitioned_by = vec![];
    if p.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
        p.expect_token(&Token::LParen).map_err(parser_error)?;
        loop {
            let t = p.peek_token();
            let id = p.parse_identifier().map_err(parser_error)?;
            partitioned_by.push((id.value, pos_of(&t)));
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(parser_error)?;
    }
    let mut options = vec![];
    if p.parse_keyword(Keyword::WITH) {
        p.expect_token(&Token::LParen).map_err(parser_error)?;
        loop {
            let kt = p.next_token();
            let key = match &kt.token {
                Token::SingleQuotedString(s) => s.clone(),
                other => {
                    return Err(sql_err(
                        format!("expected a quoted option key, found '{other}'"),
                        &kt,
                    )
                    .with_hint("options are written 'key' = 'value'"));
                }
            };
            if !p.consume_token(&Token::Eq) {
                // Not sqlparser's message: it would quote the next token, a secret maybe.
                let next = p.peek_token();
                return Err(sql_err(format!("expected = after option '{key}'"), &next)
                    .with_hint("options are written 'key' = 'value'"));
            }
            let vt = p.next_token();
            let value = match &vt.token {
                Token::SingleQuotedString(s) => s.clone(),
                other => {
                    let found = if crate::sql::options::is_sensitive(&key) {
                        "an unquoted value".to_string()
                    } else {
                        format!("'{other}'")
                    };
                    return Err(sql_err(
                        format!("expected a quoted value for '{key}', found {found}"),
                        &vt,
                    )
                    .with_hint("option values are strings: 'key' = '10'"));
                }
            };
            if options.iter().any(|o: &TableOption| o.key == key) {
                return Err(sql_err(format!("option '{key}' is given twice"), &kt));
            }
            options.push(TableOption {
                key,
                value,
                pos: pos_of(&kt),
            });
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(parser_error)?;
    }
    let like = if p.parse_keyword(Keyword::LIKE) {
        Some(parse_like_clause(p)?)
    } else {
        None
    };
    let as_token = p.peek_token();
    let as_query = if p.parse_keyword(Keyword::AS) {
        if like.is_some() {
            return Err(sql_err(
                "CREATE TABLE … LIKE … AS SELECT is not supported: a table takes its columns from a base table or from a query",
                &as_token,
            ));
        }
        if !columns.is_empty() || watermark.is_some() || !primary_key.is_empty() {
            return Err(sql_err(
                "CREATE TABLE … AS SELECT takes its columns from the query, as in Flink: leave out the column list",
                &as_token,
            )
            .with_hint("CREATE TABLE t WITH ('connector' = …) AS SELECT …"));
        }
        Some(p.parse_query().map_err(parser_error)?)
    } else {
        None
    };
    // `id BIGINT PRIMARY KEY NOT ENFORCED` on a column, as Flink also takes it.
    let on_columns: Vec<&ColumnDef> = columns.iter().filter(|c| c.primary_key).collect();
    if let Some(c) = on_columns.first() {
        if !primary_key.is_empty() || on_columns.len() > 1 {
            return Err(WeirError::sql(
                "a table has one primary key: declare it once, as PRIMARY KEY (a, b) NOT ENFORCED",
                Some(c.pos),
            ));
        }
        primary_key = vec![c.name.clone()];
    }
    Ok(CreateTable {
        name,
        name_pos,
        if_not_exists,
        columns,
        watermark,
        watermark_pos,
        primary_key,
        primary_key_pos,
        partitioned_by,
        options,
        like,
        as_query,
    })
}

/// After `LIKE`: the base table and its like options, as Flink's grammar has them
/// (`{INCLUDING | EXCLUDING} {ALL | CONSTRAINTS | PARTITIONS}`, `{INCLUDING | EXCLUDING |
/// OVERWRITING} {GENERATED | OPTIONS | WATERMARKS | METADATA}`), separated by spaces or
/// commas.
fn parse_like_clause(p: &mut Parser) -> Result<LikeClause> {
    let (table, table_pos) = parse_name(p)?;
    let mut options = vec![];
    if p.consume_token(&Token::LParen) {
        loop {
            if p.consume_token(&Token::RParen) {
                break;
            }
            let st = p.next_token();
            let strategy = match &st.token {
                Token::Word(w) if w.value.eq_ignore_ascii_case("INCLUDING") => {
                    MergingStrategy::Including
                }
                Token::Word(w) if w.value.eq_ignore_ascii_case("EXCLUDING") => {
                    MergingStrategy::Excluding
                }
                Token::Word(w) if w.value.eq_ignore_ascii_case("OVERWRITING") => {
                    MergingStrategy::Overwriting
                }
                other => {
                    return Err(sql_err(
                        format!("expected INCLUDING, EXCLUDING or OVERWRITING, found '{other}'"),
                        &st,
                    )
                    .with_hint("LIKE base (EXCLUDING ALL INCLUDING GENERATED)"));
                }
            };
            let ft = p.next_token();
            let feature = match &ft.token {
                Token::Word(w) => match w.value.to_ascii_uppercase().as_str() {
                    "ALL" => LikeFeature::All,
                    "CONSTRAINTS" => LikeFeature::Constraints,
                    "PARTITIONS" => LikeFeature::Partitions,
                    "GENERATED" => LikeFeature::Generated,
                    "OPTIONS" => LikeFeature::Options,
                    "WATERMARKS" => LikeFeature::Watermarks,
                    "METADATA" => LikeFeature::Metadata,
                    _ => {
                        return Err(sql_err(
                            format!("unknown like option '{}'", w.value),
                            &ft,
                        )
                        .with_hint(
                            "ALL, CONSTRAINTS, PARTITIONS, GENERATED, OPTIONS, WATERMARKS or METADATA",
                        ));
                    }
                },
                other => {
                    return Err(sql_err(
                        format!("expected a like option, found '{other}'"),
                        &ft,
                    ));
                }
            };
            if strategy == MergingStrategy::Overwriting
                && matches!(
                    feature,
                    LikeFeature::All | LikeFeature::Constraints | LikeFeature::Partitions
                )
            {
                return Err(sql_err(
                    format!(
                        "illegal merging strategy 'OVERWRITING' for '{}'",
                        ft.token.to_string().to_ascii_uppercase()
                    ),
                    &st,
                )
                .with_hint("ALL, CONSTRAINTS and PARTITIONS are INCLUDING or EXCLUDING"));
            }
            if options.iter().any(|(_, f)| *f == feature) {
                return Err(sql_err(
                    format!(
                        "the like option {} is given twice: each feature is declared once, as in Flink",
                        ft.token.to_string().to_ascii_uppercase()
                    ),
                    &st,
                ));
            }
            options.push((strategy, feature));
            let _ = p.consume_token(&Token::Comma);
        }
    }
    Ok(LikeClause {
        table,
        table_pos,
        options,
    })
}

/// After `ALTER TABLE t`: `ADD …`, `MODIFY …` or `DROP …` (Flink's forms); None when the
/// next word is none of them.
fn parse_schema_change(p: &mut Parser) -> Result<Option<crate::sql::alter::SchemaChange>> {
    use crate::sql::alter::SchemaChange;
    if p.parse_keyword(Keyword::ADD) {
        return Ok(Some(SchemaChange::Add(parse_components(p)?)));
    }
    if p.parse_keyword(Keyword::MODIFY) {
        return Ok(Some(SchemaChange::Modify(parse_components(p)?)));
    }
    if !p.parse_keyword(Keyword::DROP) {
        return Ok(None);
    }
    let t = p.peek_token();
    if let Token::Word(w) = &t.token
        && w.quote_style.is_none()
    {
        if w.value.eq_ignore_ascii_case("WATERMARK") {
            p.next_token();
            return Ok(Some(SchemaChange::DropWatermark));
        }
        if w.keyword == Keyword::PRIMARY {
            p.next_token();
            p.expect_keyword_is(Keyword::KEY).map_err(parser_error)?;
            return Ok(Some(SchemaChange::DropPrimaryKey));
        }
        if w.keyword == Keyword::CONSTRAINT {
            p.next_token();
            p.parse_identifier().map_err(parser_error)?;
            return Ok(Some(SchemaChange::DropPrimaryKey));
        }
    }
    let mut columns = vec![];
    if p.consume_token(&Token::LParen) {
        loop {
            columns.push(parse_ident(p)?);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(parser_error)?;
    } else {
        // `DROP c`, or `DROP COLUMN c` as other dialects write it.
        let _ = p.parse_keyword(Keyword::COLUMN);
        columns.push(parse_ident(p)?);
    }
    Ok(Some(SchemaChange::Drop(columns)))
}

/// `WATERMARK FOR col AS expr`, from the `WATERMARK` word on.
fn parse_watermark(p: &mut Parser) -> Result<WatermarkDef> {
    p.next_token();
    p.expect_keyword_is(Keyword::FOR).map_err(parser_error)?;
    let col_tok = p.peek_token();
    let column = p.parse_identifier().map_err(parser_error)?.value;
    p.expect_keyword_is(Keyword::AS).map_err(parser_error)?;
    let expr_tok = p.peek_token();
    let expr = p.parse_expr().map_err(parser_error)?;
    Ok(WatermarkDef {
        column,
        column_pos: pos_of(&col_tok),
        expr,
        expr_pos: pos_of(&expr_tok),
    })
}

/// `[CONSTRAINT name] PRIMARY KEY (a, …) [NOT ENFORCED]`: the key's columns.
fn parse_primary_key(p: &mut Parser) -> Result<Vec<String>> {
    if p.parse_keyword(Keyword::CONSTRAINT) {
        p.parse_identifier().map_err(parser_error)?;
    }
    p.expect_keyword_is(Keyword::PRIMARY)
        .map_err(parser_error)?;
    p.expect_keyword_is(Keyword::KEY).map_err(parser_error)?;
    p.expect_token(&Token::LParen).map_err(parser_error)?;
    let key = p
        .parse_comma_separated(|p| p.parse_identifier())
        .map_err(parser_error)?
        .into_iter()
        .map(|i| i.value)
        .collect();
    p.expect_token(&Token::RParen).map_err(parser_error)?;
    let _ = p.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]);
    Ok(key)
}

/// One schema component of `ALTER TABLE … ADD` or `MODIFY`: a column (with `FIRST` or
/// `AFTER c` for its place), a watermark or a primary key. Its text is filled in by
/// [`parse_script`].
fn parse_component(p: &mut Parser) -> Result<crate::sql::alter::Component> {
    use crate::sql::alter::{Component, ComponentKind, Order};
    let t = p.peek_token();
    let word = match &t.token {
        Token::Word(w) if w.quote_style.is_none() => {
            Some((w.value.to_ascii_uppercase(), w.keyword))
        }
        _ => None,
    };
    let kind = match word {
        Some((upper, _)) if upper == "WATERMARK" => {
            parse_watermark(p)?;
            ComponentKind::Watermark
        }
        Some((_, Keyword::PRIMARY | Keyword::CONSTRAINT)) => {
            ComponentKind::PrimaryKey(parse_primary_key(p)?)
        }
        _ => {
            let c = parse_column(p)?;
            ComponentKind::Column(c.name)
        }
    };
    let next = p.peek_token();
    // At the end of the script, the component runs to its end.
    let end = if next.token == Token::EOF {
        Pos {
            line: u64::MAX,
            col: 1,
        }
    } else {
        pos_of(&next)
    };
    let order = if p.parse_keyword(Keyword::FIRST) {
        Some(Order::First)
    } else if p.parse_keyword(Keyword::AFTER) {
        let at = p.peek_token();
        let c = p.parse_identifier().map_err(parser_error)?.value;
        Some(Order::After(c, pos_of(&at)))
    } else {
        None
    };
    if order.is_some() && !matches!(kind, ComponentKind::Column(_)) {
        return Err(sql_err("only a column takes FIRST or AFTER", &t));
    }
    Ok(Component {
        kind,
        pos: pos_of(&t),
        end,
        text: String::new(),
        order,
    })
}

/// The components of `ADD`/`MODIFY`: one, or a parenthesised list.
fn parse_components(p: &mut Parser) -> Result<Vec<crate::sql::alter::Component>> {
    if p.consume_token(&Token::LParen) {
        let mut out = vec![];
        loop {
            out.push(parse_component(p)?);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(parser_error)?;
        Ok(out)
    } else {
        Ok(vec![parse_component(p)?])
    }
}

fn parse_column(p: &mut Parser) -> Result<ColumnDef> {
    let t = p.peek_token();
    let name = p
        .parse_identifier()
        .map_err(|e| {
            parser_error(e)
                .with_hint("a column is `name TYPE`, `name AS expr` or WATERMARK FOR ...")
        })?
        .value;
    let pos = pos_of(&t);
    if p.parse_keyword(Keyword::AS) {
        let expr = p.parse_expr().map_err(parser_error)?;
        if p.parse_keyword(Keyword::COMMENT) {
            p.parse_literal_string().map_err(parser_error)?;
        }
        return Ok(ColumnDef {
            name,
            pos,
            kind: ColumnKind::Computed(Box::new(expr)),
            primary_key: false,
        });
    }
    let (data_type, nullable) = TypeParser::new(p).parse_type_with_nullability()?;
    let mut kind = ColumnKind::Physical {
        data_type: data_type.clone(),
        nullable,
    };
    if p.parse_keyword(Keyword::METADATA) {
        let key = if p.parse_keyword(Keyword::FROM) {
            Some(p.parse_literal_string().map_err(parser_error)?)
        } else {
            None
        };
        let is_virtual = p.parse_keyword(Keyword::VIRTUAL);
        kind = ColumnKind::Metadata {
            data_type,
            nullable,
            key,
            is_virtual,
        };
    }
    let primary_key = p.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]);
    if primary_key {
        let _ = p.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]);
    }
    if p.parse_keyword(Keyword::COMMENT) {
        p.parse_literal_string().map_err(parser_error)?;
    }
    Ok(ColumnDef {
        name,
        pos,
        kind,
        primary_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn show_like_patterns_match_as_flinks() {
        let like = |p: &str, not: bool, ci: bool| Like {
            pattern: p.to_string(),
            not,
            case_insensitive: ci,
        };
        let l = like("orders\\_2", false, false);
        assert!(l.admits("orders_2") && !l.admits("orders22"));
        let l = like("b%d_", false, false);
        assert!(l.admits("bids") && l.admits("bdx") && !l.admits("bidsx") && !l.admits("abdx"));
        assert!(like("%", false, false).admits(""));
        assert!(!like("b%", true, false).admits("bids"));
        assert!(like("BI%", false, true).admits("bids"));
        // One character for `_`, whatever its lower case.
        assert!(like("_x", false, true).admits("İx"));
    }

    fn one(sql: &str) -> Statement {
        let mut v = parse_script(sql).expect("parses");
        assert_eq!(v.len(), 1);
        v.remove(0).statement
    }

    #[test]
    fn flink_create_table() {
        let s = one("CREATE TABLE IF NOT EXISTS `bids` (
               auction BIGINT NOT NULL,
               bid ROW<price BIGINT, tags ARRAY<ROW<k STRING>>>,
               `ts` TIMESTAMP(3),
               ts2 AS ts + INTERVAL '1' SECOND,
               off BIGINT METADATA FROM 'offset' VIRTUAL,
               WATERMARK FOR ts AS ts - INTERVAL '5' SECOND,
               PRIMARY KEY (auction) NOT ENFORCED
             ) PARTITIONED BY (auction) WITH ('connector' = 'nexmark', 'events.num' = '10')");
        let Statement::CreateTable(c) = s else {
            panic!("not a create table")
        };
        assert_eq!(c.name, "bids");
        assert!(c.if_not_exists);
        assert_eq!(c.columns.len(), 5);
        assert!(matches!(
            &c.columns[2].kind,
            ColumnKind::Physical {
                data_type: DataType::Timestamp(TimeUnit::Millisecond, None),
                ..
            }
        ));
        match &c.columns[1].kind {
            ColumnKind::Physical {
                data_type: DataType::Struct(f),
                ..
            } => {
                assert_eq!(f.len(), 2);
                assert!(matches!(f[1].data_type(), DataType::List(_)));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(c.columns[3].kind, ColumnKind::Computed(_)));
        assert!(matches!(
            c.columns[4].kind,
            ColumnKind::Metadata {
                is_virtual: true,
                ..
            }
        ));
        assert_eq!(c.watermark.as_ref().map(|w| w.column.as_str()), Some("ts"));
        assert_eq!(c.primary_key, vec!["auction"]);
        assert_eq!(c.partitioned_by.len(), 1);
        assert_eq!(c.options.len(), 2);
    }

    #[test]
    fn several_statements_and_comments() {
        let v = parse_script(
            "-- a comment\nSET 'a.b' = '1';\n/* block */ CREATE VIEW v AS SELECT 1;\nINSERT INTO s SELECT * FROM v;\nSELECT 2",
        )
        .expect("parses");
        assert_eq!(v.len(), 4);
        assert_eq!(v[3].text, "SELECT 2");
        assert_eq!(v[2].pos, Pos { line: 4, col: 1 });
    }

    #[test]
    fn errors_have_positions() {
        let e = parse_script("SELECT 1;\nCREATE TABLE t (a BIGINTT)").expect_err("fails");
        match e {
            WeirError::Sql { pos, hint, .. } => {
                assert_eq!(pos, Some(Pos { line: 2, col: 19 }));
                assert_eq!(hint.as_deref(), Some("did you mean BIGINT?"));
            }
            other => panic!("{other:?}"),
        }
        let e = parse_script("SELEC 1").expect_err("fails");
        assert!(e.to_string().contains("did you mean SELECT"), "{e}");
    }
}
