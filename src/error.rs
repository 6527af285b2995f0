//! One error type for all of Weir.
//!
//! Errors fall into three domains, which decide the exit code and how the message reads:
//!
//! * [`WeirError::Sql`] — the user's SQL is wrong. It carries a position (`line:col`) so it
//!   can be rendered with the offending line and a caret, plus an optional hint
//!   ("did you mean …").
//! * [`WeirError::User`] — bad arguments, options or input data (a malformed record, a
//!   missing file). The message names the cause (file and line, option name).
//! * [`WeirError::External`] / [`WeirError::Internal`] — the world or Weir failed at run time.
//! * [`WeirError::OutputClosed`] — the reader of Weir's output went away (`weir … | head`).
//! * [`WeirError::Cancelled`] — a task stopped because another failed first.
//!
//! Code decides by the variant, never by the message's words.

use std::fmt;

use datafusion::error::DataFusionError;

/// A position in SQL text, 1-based, as sqlparser reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u64,
    pub col: u64,
}

#[derive(Debug, Clone)]
pub enum WeirError {
    /// Bad SQL, with where it is and how to fix it.
    Sql {
        message: String,
        pos: Option<Pos>,
        hint: Option<String>,
    },
    /// Bad arguments, options or data.
    User(String),
    /// A failure outside Weir (I/O, the network) while running.
    External(String),
    /// A bug in Weir.
    Internal(String),
    /// The reader of Weir's output went away (a closed pipe, as `weir … | head` closes
    /// it): the run ends without an error.
    OutputClosed(String),
    /// A task stopped because another task of its job failed first: never the cause a
    /// job reports when there is another.
    Cancelled(String),
}

pub type Result<T, E = WeirError> = std::result::Result<T, E>;

impl WeirError {
    pub fn sql(message: impl Into<String>, pos: Option<Pos>) -> Self {
        WeirError::Sql {
            message: message.into(),
            pos,
            hint: None,
        }
    }

    pub fn user(message: impl Into<String>) -> Self {
        WeirError::User(message.into())
    }

    pub fn external(message: impl Into<String>) -> Self {
        WeirError::External(message.into())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        WeirError::Internal(message.into())
    }

    /// Adds (or replaces) the hint of a SQL error; other errors get it appended.
    pub fn with_hint(self, h: impl Into<String>) -> Self {
        match self {
            WeirError::Sql { message, pos, .. } => WeirError::Sql {
                message,
                pos,
                hint: Some(h.into()),
            },
            WeirError::User(m) => WeirError::User(format!("{m}\n  help: {}", h.into())),
            WeirError::External(m) => WeirError::External(format!("{m}\n  help: {}", h.into())),
            other => other,
        }
    }

    /// Gives a SQL error a position when it has none yet.
    pub fn at(self, p: Option<Pos>) -> Self {
        match self {
            WeirError::Sql { message, pos, hint } => WeirError::Sql {
                message,
                pos: pos.or(p),
                hint,
            },
            other => other,
        }
    }

    /// Points a SQL error at `p`, whatever position it had: for errors from SQL text that
    /// Weir wrote itself (a window call's input, say), whose positions are in that text.
    pub fn moved_to(self, p: Pos) -> Self {
        match self {
            WeirError::Sql { message, hint, .. } => WeirError::Sql {
                message,
                pos: Some(p),
                hint,
            },
            other => other,
        }
    }

    /// A task that stopped because another failed (see [`WeirError::Cancelled`]).
    pub fn cancelled(message: impl Into<String>) -> Self {
        WeirError::Cancelled(message.into())
    }

    /// Moves a SQL error's position from a piece of a script to the whole script: the
    /// piece starts at line `line`, column `col` (1-based) of it.
    pub fn offset_by(self, line: u64, col: u64) -> Self {
        match self {
            WeirError::Sql {
                message,
                pos: Some(p),
                hint,
            } => WeirError::Sql {
                message,
                pos: Some(Pos {
                    line: p.line + line - 1,
                    col: if p.line == 1 { p.col + col - 1 } else { p.col },
                }),
                hint,
            },
            other => other,
        }
    }

    /// Where a SQL error points, if it does.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            WeirError::Sql { pos, .. } => *pos,
            _ => None,
        }
    }

    /// True when the cause is the user's input (SQL, options, arguments): exit code 2.
    pub fn is_user_error(&self) -> bool {
        matches!(self, WeirError::Sql { .. } | WeirError::User(_))
    }

    /// Renders the error for a terminal; SQL errors show the line of `source` with a caret.
    pub fn render(&self, source: Option<&str>, file: Option<&str>) -> String {
        format!("[ERROR] {}", self.render_body(source, file))
    }

    /// [`WeirError::render`] without the `[ERROR]` tag, for a message that quotes the error
    /// (`[WARNING] checkpoint 3 … failed: <this>`).
    pub fn render_body(&self, source: Option<&str>, file: Option<&str>) -> String {
        match self {
            WeirError::Sql { message, pos, hint } => {
                let mut out = String::from("SQL error");
                if let Some(p) = pos {
                    out.push_str(&format!(
                        " at {}{}:{}",
                        file.map(|f| format!("{f}:")).unwrap_or_default(),
                        p.line,
                        p.col
                    ));
                }
                out.push_str(&format!(": {message}"));
                // Secrets in the quoted statement are starred out, length kept (the whole
                // statement first: a key and its value may be on different lines).
                let source = source.map(crate::sql::options::scrub_sql);
                if let (Some(p), Some(src)) = (pos, source.as_deref())
                    && let Some(line) = src.lines().nth(p.line.saturating_sub(1) as usize)
                {
                    let num = p.line.to_string();
                    let pad = " ".repeat(num.len());
                    // Columns count characters; keep tabs so the caret lines up.
                    let lead: String = line
                        .chars()
                        .take(p.col.saturating_sub(1) as usize)
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    out.push_str(&format!("\n{pad} |\n{num} | {line}\n{pad} | {lead}^"));
                }
                if let Some(h) = hint {
                    out.push_str(&format!("\n  help: {h}"));
                }
                out
            }
            WeirError::User(m) => m.clone(),
            WeirError::External(m) | WeirError::OutputClosed(m) | WeirError::Cancelled(m) => {
                m.clone()
            }
            WeirError::Internal(m) => format!("internal error (a bug in Weir): {m}"),
        }
    }
}

impl fmt::Display for WeirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeirError::Sql { message, pos, hint } => {
                if let Some(p) = pos {
                    write!(f, "{}:{}: ", p.line, p.col)?;
                }
                write!(f, "{message}")?;
                if let Some(h) = hint {
                    write!(f, " (help: {h})")?;
                }
                Ok(())
            }
            WeirError::User(m)
            | WeirError::External(m)
            | WeirError::OutputClosed(m)
            | WeirError::Cancelled(m) => write!(f, "{m}"),
            WeirError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for WeirError {}

impl From<std::io::Error> for WeirError {
    fn from(e: std::io::Error) -> Self {
        if closed_pipe(&e) {
            return WeirError::OutputClosed(e.to_string());
        }
        WeirError::External(e.to_string())
    }
}

impl From<datafusion::parquet::errors::ParquetError> for WeirError {
    fn from(e: datafusion::parquet::errors::ParquetError) -> Self {
        WeirError::External(format!("parquet: {e}"))
    }
}

/// True when `e` is, or wraps, a write to a pipe whose reader has gone.
fn closed_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    use datafusion::arrow::error::ArrowError;
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return io.kind() == std::io::ErrorKind::BrokenPipe;
    }
    match e.downcast_ref::<ArrowError>() {
        Some(ArrowError::IoError(_, io)) => io.kind() == std::io::ErrorKind::BrokenPipe,
        Some(ArrowError::ExternalError(x)) => closed_pipe(x.as_ref()),
        _ => false,
    }
}

impl From<datafusion::arrow::error::ArrowError> for WeirError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        if closed_pipe(&e) {
            return WeirError::OutputClosed(e.to_string());
        }
        WeirError::External(e.to_string())
    }
}

impl From<DataFusionError> for WeirError {
    /// Planning errors become SQL errors, positioned when DataFusion's diagnostic has a span.
    fn from(e: DataFusionError) -> Self {
        let pos = e.diagnostic().and_then(|d| d.span).map(|s| Pos {
            line: s.start.line,
            col: s.start.column,
        });
        let hint = e.diagnostic().and_then(|d| {
            d.helps
                .first()
                .map(|h| h.message.clone())
                .or_else(|| d.notes.first().map(|n| n.message.clone()))
        });
        // Names Weir gives internally (an unaliased VALUES, a lookup table) mean nothing to
        // the user: such a hint says what to write instead, or goes.
        let hint = match hint {
            Some(h) if h.contains("__weir_values_") => Some(
                "give the VALUES an alias, as in (VALUES (1)) AS t(x), and qualify the column with it"
                    .to_string(),
            ),
            Some(h) if h.contains("__weir_") => None,
            h => h,
        };
        let inner = e.find_root();
        match inner {
            DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::SQL(..)
            | DataFusionError::NotImplemented(_) => WeirError::Sql {
                message: clean_df_message(&inner.to_string()),
                pos,
                hint,
            },
            DataFusionError::ArrowError(a, _) if closed_pipe(a.as_ref()) => {
                WeirError::OutputClosed(a.to_string())
            }
            DataFusionError::ArrowError(a, _) => WeirError::External(a.to_string()),
            DataFusionError::IoError(io) if closed_pipe(io) => {
                WeirError::OutputClosed(io.to_string())
            }
            DataFusionError::IoError(io) => WeirError::External(io.to_string()),
            DataFusionError::Internal(m) => WeirError::Internal(m.clone()),
            DataFusionError::External(x) => match x.downcast_ref::<WeirError>() {
                Some(w) => w.clone(),
                None if closed_pipe(x.as_ref()) => WeirError::OutputClosed(x.to_string()),
                None => WeirError::External(x.to_string()),
            },
            other => WeirError::External(clean_df_message(&other.to_string())),
        }
    }
}

/// DataFusion prefixes messages with their category ("Error during planning: "); the
/// category is already in how Weir renders the error.
fn clean_df_message(m: &str) -> String {
    // A call with a number of arguments no signature takes: DataFusion reports it as an
    // internal error (a bug in its code), listing what each signature expected.
    if m.contains("failed to match any signature")
        && let Some(name) = m
            .split("Function '")
            .nth(1)
            .and_then(|r| r.split('\'').next())
    {
        // "expected 2 arguments" (exact counts) or "expects 2 arguments" (coercible ones).
        let mut expected: Vec<usize> = m
            .split(" expect")
            .skip(1)
            .filter_map(|r| {
                let r = r.strip_prefix("ed ").or_else(|| r.strip_prefix("s "))?;
                let (n, rest) = r.split_once(' ')?;
                rest.starts_with("argument").then_some(())?;
                n.parse().ok()
            })
            .collect();
        let received = m.split("but received ").nth(1).and_then(|r| {
            r.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        });
        expected.sort_unstable();
        expected.dedup();
        if let (Some(received), false) = (received, expected.is_empty()) {
            let list: Vec<String> = expected.iter().map(|n| n.to_string()).collect();
            let list = match list.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                _ => list.join(""),
            };
            return format!(
                "function '{name}' takes {list} argument{}, not {received}",
                if expected == [1] { "" } else { "s" }
            );
        }
    }
    let mut s = m.trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "This feature is not implemented: ",
        "SQL error: ",
        "Execution error: ",
        "External error: ",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
        }
    }
    s.to_string()
}

/// The option (or name) among `valid` closest to `wrong`, for "did you mean" hints.
pub fn did_you_mean<'a>(wrong: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let w = wrong.to_ascii_lowercase();
    valid
        .into_iter()
        .map(|v| (strsim::levenshtein(&w, &v.to_ascii_lowercase()), v))
        .filter(|(d, v)| *d <= (v.len().max(3) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_column() {
        let e = WeirError::sql("unknown column 'x'", Some(Pos { line: 2, col: 8 }))
            .with_hint("did you mean 'y'?");
        let src = "SELECT 1;\nSELECT x FROM t;";
        let r = e.render(Some(src), Some("q.sql"));
        assert_eq!(
            r,
            "[ERROR] SQL error at q.sql:2:8: unknown column 'x'\n  |\n2 | SELECT x FROM t;\n  |        ^\n  help: did you mean 'y'?"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("event.num", ["events.num", "seed"]).as_deref(),
            Some("events.num")
        );
        assert_eq!(did_you_mean("zzzzzz", ["events.num", "seed"]), None);
    }
}
