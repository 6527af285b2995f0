//! The interactive shell: `weir` with no arguments.
//!
//! rustyline reads statements (a [`Validator`] waits for the `;`, so they may span lines),
//! keeps the history in `~/.weir_history` (or `$WEIR_HISTORY`), completes by position in the
//! statement ([`complete`]), and searches history with Ctrl-R. A bare
//! `SELECT` streams its rows until its source ends or Ctrl-C cancels it — the shell stays
//! up; `INSERT INTO` starts a background job, listed by `\jobs` / `SHOW JOBS` and stopped by
//! `\stop ID` / `STOP JOB 'ID'`. The same loop serves scripts and pipes (`weir -f file.sql`,
//! `echo "SELECT 1;" | weir`) without prompts.

mod complete;
mod keys;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::array::{StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use crate::error::{Result, WeirError};
use crate::format::encode::{OutputFormat, write_results};
use crate::job::{Job, JobMetrics};
use crate::session::{Outcome, Session};
use crate::sql::parser::{Statement, parse_script};

/// A meta command: `\` and a word.
#[derive(Debug, PartialEq)]
pub enum Meta {
    Help,
    Quit,
    Describe(Option<String>),
    Jobs,
    Metrics(Option<u64>),
    /// `\explain ID`: a running job's plan with live numbers.
    Explain(u64),
    Stop(u64),
    /// `\\format F`; None: show the current one.
    Format(Option<OutputFormat>),
    /// `\\timing on|off`; None: switch it over (as psql's `\\timing`).
    Timing(Option<bool>),
    /// `\\x on|off`: expanded display; None: switch it over (as psql's `\\x`).
    Expanded(Option<bool>),
    /// `\\maxrows N`: the most rows a batch result's table shows (0: all, as
    /// datafusion-cli's `--maxrows`); None: show the current limit.
    MaxRows(Option<usize>),
    Include(PathBuf),
}

const META_HELP: &[(&str, &str)] = &[
    ("\\?", "this help"),
    ("\\q", "quit (running jobs are stopped cleanly)"),
    ("\\d", "list tables and views"),
    (
        "\\d NAME",
        "a table's columns, connector and options (secrets masked)",
    ),
    (
        "\\jobs",
        "the jobs: status, rows in/out, rows/s, late rows, watermark, lag, p99 latency, last checkpoint",
    ),
    (
        "\\metrics [ID]",
        "per operator of each job (or job ID): rows, rows/s, late rows, bad records, batches, busy and backpressured time, state, latency (also SHOW METRICS)",
    ),
    (
        "\\explain ID",
        "a job's plan with each task's live rows, rates, state and latency (also EXPLAIN JOB 'ID')",
    ),
    (
        "\\stop ID",
        "stop a job cleanly, with a savepoint when it checkpoints (also STOP JOB 'ID' [WITH SAVEPOINT])",
    ),
    (
        "\\format [F]",
        "table | csv | json | ndjson (alone: the current one)",
    ),
    (
        "\\timing [on|off]",
        "print how long each statement took (alone: switch it over)",
    ),
    (
        "\\x [on|off]",
        "expanded display: each result row one field per line (alone: switch it over); cells are cut to SET 'table.display.max-column-width' (default 30, 0 for none)",
    ),
    (
        "\\maxrows [N]",
        "the most rows a bounded query's table (an archive's, a file's) shows, the count still counting them all (0: all; default 40 on a terminal, --maxrows)",
    ),
    ("\\i FILE", "run the statements of a file"),
];

/// The meta commands' help, as psql's `\\?` lays it out: each command, then its
/// description wrapped to `width` columns (at least 40) under a common indent; then how SQL
/// statements are entered.
fn help_text(width: usize) -> String {
    let indent = META_HELP.iter().map(|(c, _)| c.len()).max().unwrap_or(0) + 4;
    let width = width.max(40);
    let mut out = String::from("Meta commands:\n");
    for (cmd, what) in META_HELP {
        let first = format!("  {cmd:<w$}", w = indent - 2);
        let rest = " ".repeat(indent);
        let opts = textwrap::Options::new(width.saturating_sub(1))
            .initial_indent(&first)
            .subsequent_indent(&rest);
        for line in textwrap::wrap(what, opts) {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push_str(&textwrap::fill(
        "SQL statements end with ';' and may span lines; Ctrl-C cancels a running SELECT.",
        width.saturating_sub(1),
    ));
    out.push('\n');
    out
}

impl Meta {
    pub fn parse(line: &str) -> std::result::Result<Meta, String> {
        let line = line.trim().trim_end_matches(';').trim();
        let mut parts = line.splitn(2, char::is_whitespace);
        let cmd = parts.next().unwrap_or_default();
        let arg = parts.next().map(str::trim).filter(|a| !a.is_empty());
        match (cmd, arg) {
            ("\\?" | "\\h" | "\\help", _) => Ok(Meta::Help),
            ("\\q" | "\\quit", _) => Ok(Meta::Quit),
            ("\\d", a) => Ok(Meta::Describe(a.map(str::to_string))),
            ("\\jobs", _) => Ok(Meta::Jobs),
            ("\\metrics", None) => Ok(Meta::Metrics(None)),
            ("\\metrics", Some(a)) => a
                .trim_matches('\'')
                .parse()
                .map(|id| Meta::Metrics(Some(id)))
                .map_err(|_| format!("\\metrics takes a job id, not '{a}'")),
            ("\\explain", Some(a)) => a
                .trim_matches('\'')
                .parse()
                .map(Meta::Explain)
                .map_err(|_| format!("\\explain takes a job id, not '{a}'")),
            ("\\stop", Some(a)) => a
                .trim_matches('\'')
                .parse()
                .map(Meta::Stop)
                .map_err(|_| format!("\\stop takes a job id, not '{a}'")),
            ("\\format", None) => Ok(Meta::Format(None)),
            ("\\format", Some(a)) => clap::ValueEnum::from_str(a, true)
                .map(|f| Meta::Format(Some(f)))
                .map_err(|_| format!("unknown format '{a}': table, csv, json or ndjson")),
            ("\\timing" | "\\x", a) => {
                let on = match a {
                    None => None,
                    Some("on") => Some(true),
                    Some("off") => Some(false),
                    Some(other) => return Err(format!("{cmd} takes on or off, not '{other}'")),
                };
                Ok(if cmd == "\\x" {
                    Meta::Expanded(on)
                } else {
                    Meta::Timing(on)
                })
            }
            ("\\maxrows", None) => Ok(Meta::MaxRows(None)),
            ("\\maxrows", Some(a)) => a
                .parse()
                .map(|n| Meta::MaxRows(Some(n)))
                .map_err(|_| format!("\\maxrows takes a number of rows (0: all), not '{a}'")),
            ("\\i", Some(a)) => Ok(Meta::Include(PathBuf::from(a))),
            ("\\explain" | "\\stop", None) => Err(format!(
                "{cmd} takes a job id: {cmd} ID (\\jobs lists them)"
            )),
            ("\\i", None) => Err("\\i takes a file: \\i FILE".to_string()),
            _ => Err(format!("unknown command '{line}'; \\? lists the commands")),
        }
    }
}

/// A job the shell started, and how it ended.
struct JobEntry {
    id: u64,
    name: String,
    metrics: Arc<JobMetrics>,
    /// Its checkpoints, when it takes them.
    checkpointer: Option<Arc<crate::checkpoint::Checkpointer>>,
    job: Option<Job>,
    status: String,
}

pub struct Shell {
    session: Session,
    jobs: Vec<JobEntry>,
    format: OutputFormat,
    interactive: bool,
    /// The SELECT just followed was cancelled with Ctrl-C.
    cancelled: bool,
    words: Arc<Mutex<complete::Catalog>>,
    /// The INSERTs of a statement set opened with `BEGIN STATEMENT SET;` and not yet
    /// closed by `END;` (Flink's SQL client collects them the same way).
    statement_set: Option<Vec<String>>,
    /// While a script's meta command runs: the script (`-f` file or piped input), its
    /// file's name, and the line and column (from 1) the command starts at, so that its
    /// error points there.
    script_place: Option<(Arc<str>, Option<String>, usize, usize)>,
    /// Set when a meta command fails; a script reads and clears it after each command
    /// (the script then exits 1, as for a failed statement).
    meta_failed: std::cell::Cell<bool>,
}

/// What the shell does with a statement while statement sets are collected.
enum SetStep {
    /// Not part of a statement set: run it as it is.
    Pass,
    /// Taken into the open statement set (or opened one).
    Collected,
    /// `END;` closed the set: run this script (the whole set as one statement).
    Run(String),
}

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT",
    "INSERT INTO",
    "CREATE TABLE",
    "CREATE VIEW",
    "DROP TABLE",
    "DROP VIEW",
    "SHOW TABLES",
    "SHOW VIEWS",
    "SHOW FUNCTIONS",
    "SHOW COLUMNS FROM",
    "SHOW CATALOGS",
    "SHOW DATABASES",
    "SHOW CURRENT CATALOG",
    "SHOW CURRENT DATABASE",
    "SHOW MODULES",
    "USE",
    "SHOW JOBS",
    "SHOW METRICS",
    "STOP JOB",
    "EXPLAIN JOB",
    "DESCRIBE",
    "EXPLAIN",
    "SET",
    "RESET",
    "WITH",
    "AS",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "INTERVAL",
    "SECOND",
    "MINUTE",
    "HOUR",
    "DAY",
    "TABLE",
    "DESCRIPTOR",
    "TUMBLE",
    "HOP",
    "CUMULATE",
    "SESSION",
    "WATERMARK FOR",
    "PARTITIONED BY",
    "PARTITION BY",
    "UNION ALL",
    "DISTINCT",
    "OVER",
    "ROW_NUMBER",
    "window_start",
    "window_end",
    "window_time",
    "TIMESTAMP(3)",
    "BIGINT",
    "INT",
    "STRING",
    "DOUBLE",
    "BOOLEAN",
    "DECIMAL",
    "ROW",
    "ARRAY",
    "MAP",
];

impl Shell {
    pub fn new(interactive: bool) -> Shell {
        let mut session = Session::new();
        session.output = OutputFormat::Table;
        session.progress = interactive;
        // As datafusion-cli and `weir query`: 40 rows on a terminal, all otherwise.
        session.max_rows = if interactive { 40 } else { 0 };
        let shell = Shell {
            session,
            jobs: vec![],
            format: OutputFormat::Table,
            interactive,
            cancelled: false,
            words: Arc::new(Mutex::new(complete::Catalog::default())),
            statement_set: None,
            script_place: None,
            meta_failed: std::cell::Cell::new(false),
        };
        shell.refresh_words();
        shell
    }

    /// Recomputes what tab completes (see [`complete`]): relations with their columns,
    /// ROW fields and time attributes; functions; keywords; connectors and their options;
    /// settings; meta commands.
    fn refresh_words(&self) {
        use crate::format::Format;
        let state = self.session.context().state();
        let mut functions: BTreeSet<String> = state
            .scalar_functions()
            .keys()
            .chain(state.aggregate_functions().keys())
            .filter(|f| !f.starts_with("__") && !f.starts_with("weir_"))
            .map(|f| f.to_ascii_uppercase())
            .collect();
        functions.retain(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let relations = self
            .session
            .relation_names()
            .into_iter()
            .map(|name| {
                let columns = self
                    .session
                    .schema_of(&name)
                    .map(|schema| {
                        schema
                            .fields()
                            .iter()
                            .map(|f| {
                                let fields = match f.data_type() {
                                    DataType::Struct(fs) => {
                                        fs.iter().map(|x| x.name().clone()).collect()
                                    }
                                    _ => vec![],
                                };
                                (f.name().clone(), fields)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let time_columns = self
                    .session
                    .table_def(&name)
                    .map(|d| {
                        d.watermark
                            .iter()
                            .map(|w| w.column.clone())
                            .chain(d.proctime_column().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                complete::Relation {
                    name,
                    columns,
                    time_columns,
                }
            })
            .collect();
        // Per connector its own options, and per format it reads (`filesystem/csv`) those
        // with the format's, as a table is checked against them.
        let keys = |c: &str, f: Option<Format>| -> Vec<String> {
            let o: BTreeSet<String> = crate::connector::accepted_options(c, f)
                .into_iter()
                .filter(|k| !k.ends_with('.') && !k.ends_with('#'))
                .map(str::to_string)
                .collect();
            o.into_iter().collect()
        };
        let mut options: Vec<(String, Vec<String>)> = vec![];
        for c in crate::connector::ALL {
            options.push((c.to_string(), keys(c, None)));
            if matches!(*c, "filesystem" | "stdin" | "kafka") {
                for (name, f) in [
                    ("json", Format::Json),
                    ("csv", Format::Csv),
                    ("parquet", Format::Parquet),
                ] {
                    options.push((format!("{c}/{name}"), keys(c, Some(f))));
                }
            }
        }
        let mut meta: Vec<String> = META_HELP
            .iter()
            .filter_map(|(c, _)| c.split_whitespace().next().map(str::to_string))
            .collect();
        meta.dedup();
        let catalog = complete::Catalog {
            relations,
            functions: functions.into_iter().collect(),
            keywords: KEYWORDS.iter().map(|k| k.to_string()).collect(),
            connectors: crate::connector::ALL
                .iter()
                .map(|c| c.to_string())
                .collect(),
            options,
            settings: crate::session::SETTINGS
                .iter()
                .map(|k| k.to_string())
                .collect(),
            meta,
        };
        if let Ok(mut words) = self.words.lock() {
            *words = catalog;
        }
    }

    /// Prints a statement's rows (`SET;`, `SHOW …`, `DESCRIBE`). At a terminal, output
    /// taller than the screen goes through the pager, as psql's does, and a table wider than
    /// the screen has its widest cells wrapped to fit it (see
    /// [`crate::format::encode::wrapped_table`]).
    fn out(&self, batches: &[RecordBatch]) {
        let mut text = Vec::new();
        if let Err(e) = write_results(&mut text, self.format, batches, true) {
            crate::message::say(e.render(None, None));
            return;
        }
        if self.interactive
            && self.format == OutputFormat::Table
            && let Some((_, cols)) = console::Term::stdout().size_checked()
            && text
                .split(|b| *b == b'\n')
                .any(|l| String::from_utf8_lossy(l).chars().count() > cols as usize)
        {
            match crate::format::encode::wrapped_table(batches, cols) {
                Ok(t) => text = t.into_bytes(),
                Err(e) => crate::message::say(e.render(None, None)),
            }
        }
        if self.interactive && page(&text) {
            return;
        }
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(&text);
        let _ = o.flush();
    }

    /// A status table (`\\jobs`, `\\metrics`) as results are drawn: cells cut to
    /// `table.display.max-column-width`, or one field per line under `\\x` — and so too
    /// when the table would be wider than the terminal (psql's `\\x auto`; not when
    /// output goes to a pipe), so that it never wraps.
    fn out_status(&self, b: RecordBatch) {
        if self.format != OutputFormat::Table {
            return self.out(&[b]);
        }
        let width = console::Term::stdout()
            .size_checked()
            .map(|(_, cols)| cols as usize);
        let text = self.session.display().and_then(|d| {
            let t = crate::format::encode::display_table(std::slice::from_ref(&b), &d)?;
            let widest = t.lines().map(|l| l.chars().count()).max().unwrap_or(0);
            match width {
                Some(w) if !d.expanded && widest > w => {
                    let d = crate::format::encode::Display {
                        expanded: true,
                        ..d
                    };
                    crate::format::encode::display_table(&[b], &d)
                }
                _ => Ok(t),
            }
        });
        match text {
            Ok(t) => {
                if self.interactive && page(t.as_bytes()) {
                    return;
                }
                print!("{t}");
            }
            Err(e) => crate::message::say(e.render(None, None)),
        }
    }

    /// Runs one entry: a meta command, or SQL text of one or more statements. Returns
    /// false when the shell should end.
    pub async fn handle(&mut self, input: &str) -> bool {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return true;
        }
        self.reap().await;
        if let Some(m) = word_command(trimmed) {
            return self.meta(m).await;
        }
        if trimmed.starts_with('\\') {
            return match Meta::parse(trimmed) {
                Ok(m) => self.meta(m).await,
                Err(e) => {
                    self.meta_error(e);
                    true
                }
            };
        }
        let started = Instant::now();
        if let Err(e) = self.sql(trimmed).await {
            crate::message::say(e.render(Some(trimmed), None));
        }
        if self.session.timing {
            eprintln!("Time: {:.3}s", started.elapsed().as_secs_f64());
        }
        self.refresh_words();
        true
    }

    async fn meta(&mut self, m: Meta) -> bool {
        match m {
            Meta::Help => {
                let width = console::Term::stdout()
                    .size_checked()
                    .map_or(80, |(_, cols)| cols as usize);
                print!("{}", help_text(width));
            }
            Meta::Quit => return false,
            Meta::Describe(None) => {
                if let Err(e) = self.sql("SHOW TABLES;").await {
                    self.meta_error(e.render_body(None, None));
                }
            }
            Meta::Describe(Some(name)) => {
                if let Err(e) = self.sql(&format!("DESCRIBE {name};")).await {
                    self.meta_failed.set(true);
                    // Shown under what was typed: `\\d NAME`, the name 6 columns to the
                    // left of where it is in `DESCRIBE NAME`.
                    let e = match e.pos() {
                        Some(p) if p.line == 1 && p.col > 6 => e.moved_to(crate::error::Pos {
                            line: 1,
                            col: p.col - 6,
                        }),
                        _ => e,
                    };
                    match self.script_place.clone() {
                        Some((whole, file, line, col)) => crate::message::say(
                            e.offset_by(line as u64, col as u64)
                                .render(Some(&whole), file.as_deref()),
                        ),
                        None => crate::message::say(e.render(Some(&format!("\\d {name}")), None)),
                    }
                } else if let Some(def) = self.session.table_def(&name) {
                    println!("connector: {}", def.connector);
                    if !def.partitioned_by.is_empty() {
                        println!("partitioned by: {}", def.partitioned_by.join(", "));
                    }
                    for (k, v) in def.options.iter() {
                        println!("  '{k}' = '{}'", crate::sql::options::shown(k, v));
                    }
                }
            }
            Meta::Jobs => self.show_jobs(),
            Meta::Metrics(id) => self.show_metrics(id),
            Meta::Explain(id) => {
                if let Err(e) = self.explain_job(id) {
                    self.meta_error(e.render_body(None, None));
                }
            }
            Meta::Stop(id) => self.stop(id).await,
            Meta::Format(None) => {
                crate::message::say(format!("[INFO] format: {}", format_name(self.format)));
            }
            Meta::Format(Some(f)) => {
                self.format = f;
                self.session.output = f;
                crate::message::say(format!("[INFO] format: {}", format_name(f)));
            }
            Meta::Timing(t) => {
                self.session.timing = t.unwrap_or(!self.session.timing);
                crate::message::say(format!(
                    "[INFO] timing {}",
                    if self.session.timing { "on" } else { "off" }
                ));
            }
            Meta::MaxRows(n) => {
                if let Some(n) = n {
                    self.session.max_rows = n;
                }
                crate::message::say(match self.session.max_rows {
                    0 => "[INFO] maxrows: all rows shown".to_string(),
                    n => format!("[INFO] maxrows: {n}"),
                });
            }
            Meta::Expanded(x) => {
                self.session.expanded = x.unwrap_or(!self.session.expanded);
                crate::message::say(format!(
                    "[INFO] expanded display {}",
                    if self.session.expanded { "on" } else { "off" }
                ));
            }
            Meta::Include(path) => match std::fs::read_to_string(&path) {
                Ok(text) => {
                    if let Err(e) = self.sql(&text).await {
                        self.meta_failed.set(true);
                        crate::message::say(
                            e.render(Some(&text), Some(&path.display().to_string())),
                        );
                    }
                    self.refresh_words();
                }
                Err(e) => self.meta_error(format!("cannot read '{}': {e}", path.display())),
            },
        }
        true
    }

    /// Reports a meta command's error: in a script at the command's place (`file:line:col`),
    /// and the script then counts as failed; at the prompt as it is.
    fn meta_error(&self, message: impl std::fmt::Display) {
        self.meta_failed.set(true);
        match &self.script_place {
            Some((_, file, line, col)) => crate::message::error(format!(
                "at {}{line}:{col}: {message}",
                file.as_deref().map(|f| format!("{f}:")).unwrap_or_default()
            )),
            None => crate::message::error(message),
        }
    }

    /// Stops a job cleanly: its sources stop, what is in flight drains to the sink, and the
    /// sink commits; returns when it has ended.
    async fn stop(&mut self, id: u64) {
        match self.jobs.iter().find(|j| j.id == id) {
            Some(JobEntry { job: Some(job), .. }) => {
                job.stop();
                crate::message::say(format!("[INFO] stopping job {id}…"));
                for _ in 0..600 {
                    if job.is_finished() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                self.reap().await;
                if let Some(j) = self.jobs.iter().find(|j| j.id == id) {
                    crate::message::say(format!("[INFO] job {id} {}", j.status.to_lowercase()));
                }
            }
            Some(_) => crate::message::info(format!("job {id} has already ended")),
            None => self.meta_error(format!("no job {id}; \\jobs lists them")),
        }
    }

    /// Collects the outcome of jobs that have ended.
    async fn reap(&mut self) {
        for j in &mut self.jobs {
            if j.job.as_ref().is_some_and(|job| job.is_finished())
                && let Some(job) = j.job.take()
            {
                let stopped = job.is_stopping();
                j.status = match job.wait().await {
                    Ok(()) if stopped => "STOPPED".into(),
                    Ok(()) => "FINISHED".into(),
                    Err(e) => format!("FAILED: {e}"),
                };
            }
        }
    }

    /// `\metrics [id]`: a table per job of its operators' counters, their rates over the
    /// last 10 s, busy and backpressured time as shares of the job's run so far, then its
    /// end-to-end latency.
    fn show_metrics(&self, id: Option<u64>) {
        let jobs: Vec<&JobEntry> = self
            .jobs
            .iter()
            .filter(|j| id.is_none_or(|id| j.id == id))
            .collect();
        if jobs.is_empty() {
            match id {
                Some(id) => self.meta_error(format!("no job {id}; \\jobs lists them")),
                None => println!("no jobs"),
            }
            return;
        }
        for j in jobs {
            let secs = j.metrics.started.elapsed().as_secs_f64().max(1e-3);
            let ops = j.metrics.operators();
            let load =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            let rates: Vec<(f64, f64)> = ops.iter().map(|o| o.rates(j.metrics.started)).collect();
            let b = RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("id", DataType::UInt64, false),
                    Field::new("operator", DataType::Utf8, false),
                    Field::new("rows in", DataType::UInt64, false),
                    Field::new("rows out", DataType::UInt64, false),
                    Field::new("rows/s in", DataType::UInt64, false),
                    Field::new("rows/s out", DataType::UInt64, false),
                    Field::new("late rows", DataType::UInt64, false),
                    Field::new("bad records", DataType::UInt64, false),
                    Field::new("batches in", DataType::UInt64, false),
                    Field::new("batches out", DataType::UInt64, false),
                    Field::new("busy", DataType::Utf8, false),
                    Field::new("backpressured", DataType::Utf8, false),
                    Field::new("state", DataType::Utf8, false),
                    Field::new("p99 processing", DataType::Utf8, false),
                ])),
                vec![
                    Arc::new(UInt64Array::from_iter_values(0..ops.len() as u64)),
                    Arc::new(StringArray::from_iter_values(
                        ops.iter().map(|o| o.name.clone()),
                    )),
                    Arc::new(UInt64Array::from_iter_values(
                        ops.iter().map(|o| o.rows_in()),
                    )),
                    Arc::new(UInt64Array::from_iter_values(
                        ops.iter().map(|o| o.rows_out()),
                    )),
                    Arc::new(UInt64Array::from_iter_values(
                        rates.iter().map(|r| r.0.round() as u64),
                    )),
                    Arc::new(UInt64Array::from_iter_values(
                        rates.iter().map(|r| r.1.round() as u64),
                    )),
                    Arc::new(UInt64Array::from_iter_values(
                        ops.iter().map(|o| load(&o.late_rows)),
                    )),
                    Arc::new(UInt64Array::from_iter_values(
                        ops.iter().map(|o| load(&o.bad_records)),
                    )),
                    Arc::new(UInt64Array::from_iter_values(
                        ops.iter().map(|o| load(&o.batches_in)),
                    )),
                    Arc::new(UInt64Array::from_iter_values(
                        ops.iter().map(|o| load(&o.batches_out)),
                    )),
                    Arc::new(StringArray::from_iter_values(ops.iter().map(|o| {
                        if o.name.starts_with("source") {
                            "-".to_string()
                        } else {
                            format!("{:.1} %", o.shares(j.metrics.started).0)
                        }
                    }))),
                    Arc::new(StringArray::from_iter_values(
                        ops.iter()
                            .map(|o| format!("{:.1} %", o.shares(j.metrics.started).1)),
                    )),
                    Arc::new(StringArray::from_iter_values(ops.iter().map(
                        |o| match o.state() {
                            Some((rows, bytes)) => format!("{rows} rows, {bytes} bytes"),
                            None => "-".to_string(),
                        },
                    ))),
                    Arc::new(StringArray::from_iter_values(ops.iter().map(|o| {
                        let (l, _) = o.processing_with_buckets(&[]);
                        if o.name.starts_with("source") || l.count == 0 {
                            "-".to_string()
                        } else {
                            crate::job::metrics::fmt_us(l.p99)
                        }
                    }))),
                ],
            );
            println!("job {} ({:.1} s): {}", j.id, secs, one_line(&j.name));
            match b {
                Ok(b) => self.out_status(b),
                Err(e) => crate::message::error(e),
            }
            let l = j.metrics.latency();
            if l.count > 0 {
                println!("end-to-end latency: {l}");
            }
        }
    }

    /// `EXPLAIN JOB 'id'` / `\explain id`: the job's plan, sink first, each task's live
    /// numbers beside it (see [`JobMetrics::explain`]).
    /// Errors: no job has that id.
    fn explain_job(&self, id: u64) -> Result<()> {
        match self.jobs.iter().find(|j| j.id == id) {
            None => {
                return Err(
                    WeirError::user(format!("no job {id}")).with_hint("\\jobs lists the jobs")
                );
            }
            Some(j) => match j.metrics.explain() {
                Some(text) => {
                    println!(
                        "job {} ({:.1} s): {}",
                        j.id,
                        j.metrics.started.elapsed().as_secs_f64(),
                        one_line(&j.name)
                    );
                    print!("{text}");
                }
                None => crate::message::info(format!("job {id} has not placed its tasks yet")),
            },
        }
        Ok(())
    }

    fn show_jobs(&self) {
        let now = crate::sql::functions::now_millis();
        let mut ids = vec![];
        let mut status = vec![];
        let mut rows_in = vec![];
        let mut rows_out = vec![];
        let mut late = vec![];
        let mut wm = vec![];
        let mut lag = vec![];
        let mut checkpoint = vec![];
        let mut names = vec![];
        let mut rate = vec![];
        let mut p99 = vec![];
        for j in &self.jobs {
            checkpoint.push(match &j.checkpointer {
                None => "-".to_string(),
                Some(cp) => match cp.last() {
                    None => format!("none yet ({} failed)", cp.failed()),
                    Some(c) => {
                        let ms = c
                            .completed
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_millis() as i64)
                            .unwrap_or(0);
                        let at =
                            datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
                                .map(|d| d.format("%H:%M:%S").to_string())
                                .unwrap_or_default();
                        format!(
                            "#{} at {at} UTC, {} ms, {} bytes",
                            c.id,
                            c.duration.as_millis(),
                            c.bytes
                        )
                    }
                },
            });
            ids.push(j.id);
            status.push(match &j.job {
                Some(job) if job.is_stopping() => "STOPPING".to_string(),
                Some(_) => "RUNNING".to_string(),
                None => j.status.clone(),
            });
            let (read, written) = j.metrics.rows_read_written();
            rows_in.push(read);
            rows_out.push(written);
            late.push(
                j.metrics
                    .late_rows
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            let (ws, ls) = crate::job::metrics::watermark_and_lag(
                j.metrics
                    .watermark
                    .load(std::sync::atomic::Ordering::Relaxed),
                now,
            );
            wm.push(ws);
            // A job that no longer runs has no lag (it would grow with the clock).
            lag.push(if j.job.is_some() { ls } else { "-".into() });
            names.push(one_line(&j.name));
            // Nor a rate: it writes nothing any more (the 10 s average would fade slowly).
            rate.push(if j.job.is_some() {
                j.metrics.rates_read_written().1.round() as u64
            } else {
                0
            });
            let l = j.metrics.latency();
            p99.push(if l.count > 0 {
                crate::job::metrics::fmt_us(l.p99)
            } else {
                "-".to_string()
            });
        }
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::UInt64, false),
                Field::new("status", DataType::Utf8, false),
                Field::new("rows in", DataType::UInt64, false),
                Field::new("rows out", DataType::UInt64, false),
                Field::new("rows/s out", DataType::UInt64, false),
                Field::new("late rows", DataType::UInt64, false),
                Field::new("watermark", DataType::Utf8, false),
                Field::new("lag", DataType::Utf8, false),
                Field::new("p99 latency", DataType::Utf8, false),
                Field::new("last checkpoint", DataType::Utf8, false),
                Field::new("query", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(UInt64Array::from(ids)),
                Arc::new(StringArray::from(status)),
                Arc::new(UInt64Array::from(rows_in)),
                Arc::new(UInt64Array::from(rows_out)),
                Arc::new(UInt64Array::from(rate)),
                Arc::new(UInt64Array::from(late)),
                Arc::new(StringArray::from(wm)),
                Arc::new(StringArray::from(lag)),
                Arc::new(StringArray::from(p99)),
                Arc::new(StringArray::from(checkpoint)),
                Arc::new(StringArray::from(names)),
            ],
        );
        match b {
            Ok(b) if b.num_rows() > 0 => self.out_status(b),
            Ok(_) => println!("no jobs"),
            Err(e) => crate::message::error(e),
        }
    }

    /// Flink's SQL-client statement sets, typed a statement at a time: `BEGIN STATEMENT SET;`
    /// opens one (so does `EXECUTE STATEMENT SET BEGIN` with the first INSERT after it, as
    /// a pasted set arrives), each INSERT is checked and collected, and `END;` runs them as
    /// one job. Errors: anything but an INSERT or END while a set is open (the set stays
    /// open), an INSERT that does not parse, END with nothing collected.
    fn statement_set_step(&mut self, text: &str) -> Result<SetStep> {
        let body = text.trim().trim_end_matches(';').trim();
        let words: Vec<String> = body
            .split_whitespace()
            .take(4)
            .map(|w| w.to_ascii_uppercase())
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        if self.statement_set.is_none() {
            if words == ["BEGIN", "STATEMENT", "SET"] {
                self.statement_set = Some(vec![]);
                crate::message::say("[INFO] Begin a statement set.");
                return Ok(SetStep::Collected);
            }
            // A pasted `EXECUTE STATEMENT SET BEGIN INSERT …;` that ends before its END.
            if words == ["EXECUTE", "STATEMENT", "SET", "BEGIN"] && parse_script(text).is_err() {
                let mut rest = body;
                for _ in 0..4 {
                    rest = rest.trim_start();
                    rest = rest.find(char::is_whitespace).map_or("", |at| &rest[at..]);
                }
                self.statement_set = Some(vec![]);
                crate::message::say("[INFO] Begin a statement set.");
                if !rest.trim().is_empty() {
                    self.collect_insert(rest.trim())?;
                }
                return Ok(SetStep::Collected);
            }
            return Ok(SetStep::Pass);
        }
        if words == ["END"] {
            let inserts = self.statement_set.take().unwrap_or_default();
            if inserts.is_empty() {
                return Err(
                    WeirError::user("the statement set is empty: nothing to run")
                        .with_hint("add INSERT statements between BEGIN STATEMENT SET; and END;"),
                );
            }
            return Ok(SetStep::Run(format!(
                "BEGIN STATEMENT SET;\n{}\nEND;",
                inserts.join(";\n") + ";"
            )));
        }
        self.collect_insert(body)?;
        Ok(SetStep::Collected)
    }

    /// Checks one statement of an open statement set and keeps it.
    fn collect_insert(&mut self, body: &str) -> Result<()> {
        let parsed = parse_script(body)?;
        if !matches!(parsed.as_slice(), [one] if matches!(one.statement, Statement::Insert { .. }))
        {
            return Err(WeirError::user(
                "a statement set holds only INSERT statements; END; runs it",
            ));
        }
        if let Some(set) = &mut self.statement_set {
            set.push(body.to_string());
        }
        crate::message::say("[INFO] Add SQL update statement to the statement set.");
        Ok(())
    }

    /// SQL text: the shell's own forms (`SHOW JOBS`, `STOP JOB 'id'`), or statements.
    async fn sql(&mut self, text: &str) -> Result<()> {
        let script;
        let text = match self.statement_set_step(text)? {
            SetStep::Collected => return Ok(()),
            SetStep::Run(t) => {
                script = t;
                script.as_str()
            }
            SetStep::Pass => text,
        };
        let upper = text
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase();
        if upper == "SHOW JOBS" {
            self.show_jobs();
            return Ok(());
        }
        if upper == "SHOW METRICS" {
            self.show_metrics(None);
            return Ok(());
        }
        if let Some(id) = upper.strip_prefix("EXPLAIN JOB ") {
            return match id.trim().trim_matches('\'').parse() {
                Ok(id) => self.explain_job(id),
                Err(_) => Err(WeirError::user(format!(
                    "EXPLAIN JOB takes a job id, not {}",
                    id.trim()
                ))
                .with_hint("EXPLAIN JOB '3'")),
            };
        }
        if let Some(id) = upper.strip_prefix("STOP JOB ") {
            // Flink's `STOP JOB 'id' WITH SAVEPOINT`: with checkpoints every stop takes one.
            let id = id.trim();
            let id = id.strip_suffix(" WITH SAVEPOINT").unwrap_or(id);
            match id.trim().trim_matches('\'').parse() {
                Ok(id) => self.stop(id).await,
                Err(_) => self.meta_error("STOP JOB takes a job id: STOP JOB '3'"),
            }
            return Ok(());
        }
        for stmt in parse_script(text)? {
            let bare_select = matches!(stmt.statement, Statement::Query(_));
            match self.session.execute(&stmt).await? {
                Outcome::Done(msg) | Outcome::Warning(msg) => crate::message::say(msg),
                Outcome::Rows(r) => self.out(&r),
                Outcome::Text(t) if self.format == OutputFormat::Table => {
                    let mut o = std::io::stdout().lock();
                    let _ = writeln!(o, "{t}");
                    let _ = o.flush();
                }
                Outcome::Text(t) => match Outcome::text_rows(&t) {
                    Ok(r) => self.out(&r),
                    Err(e) => crate::message::say(e.render(None, None)),
                },
                Outcome::Started(job) if bare_select || self.dml_sync() => {
                    // Listed by `\\jobs` once it has ended, as Flink lists a SELECT's job,
                    // so the ids there run without gaps. An INSERT waits here too under
                    // Flink's `table.dml-sync`.
                    let mut entry = JobEntry {
                        id: job.id,
                        name: job.name.clone(),
                        metrics: job.metrics.clone(),
                        checkpointer: job.checkpointer().cloned(),
                        job: None,
                        status: String::new(),
                    };
                    let r = self.follow(job).await;
                    entry.status = match (&r, self.cancelled) {
                        (Ok(()), true) => "CANCELED".into(),
                        (Ok(()), false) => "FINISHED".into(),
                        (Err(e), _) => format!("FAILED: {e}"),
                    };
                    self.cancelled = false;
                    self.jobs.push(entry);
                    r?;
                    if !bare_select {
                        crate::message::info("Complete execution of the SQL update statement.");
                    }
                }
                Outcome::Started(job) => {
                    crate::message::say(format!(
                        "[INFO] Job {} started in the background: {} (\\jobs lists it)",
                        job.id,
                        one_line(&job.name)
                    ));
                    self.jobs.push(JobEntry {
                        id: job.id,
                        name: job.name.clone(),
                        metrics: job.metrics.clone(),
                        checkpointer: job.checkpointer().cloned(),
                        job: Some(job),
                        status: String::new(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether an INSERT runs to its end before the next statement (Flink's
    /// `table.dml-sync`, default false: it starts in the background).
    fn dml_sync(&self) -> bool {
        self.session
            .setting(crate::session::DML_SYNC_KEY)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Streams a bare SELECT's rows until it ends; Ctrl-C cancels it (interactively).
    async fn follow(&mut self, job: Job) -> Result<()> {
        if !self.interactive {
            return job.wait().await;
        }
        let stop = job.stop_handle();
        // A `table` result on a terminal turns its pages by keys, as Flink's table view.
        let table_mode = self.session.output == crate::format::encode::OutputFormat::Table
            && self
                .session
                .display()
                .is_ok_and(|d| d.mode == crate::format::encode::ResultMode::Table)
            && std::io::IsTerminal::is_terminal(&std::io::stdout());
        let keys = match table_mode {
            true => {
                let quit = job.stop_handle();
                keys::PageKeys::start(move || quit.stop())
            }
            false => None,
        };
        let mut wait = std::pin::pin!(job.wait());
        let r = tokio::select! {
            r = &mut wait => r,
            _ = tokio::signal::ctrl_c() => {
                stop.stop();
                let r = wait.await;
                self.cancelled = true;
                r
            }
        };
        // The terminal's mode is back before anything more is printed.
        let quit = keys.as_ref().is_some_and(keys::PageKeys::quit);
        drop(keys);
        if self.cancelled || quit {
            crate::message::info("query cancelled");
            self.cancelled = true;
        }
        r
    }

    /// Stops the jobs still running (cleanly: sources stop, rows in flight drain, sinks
    /// commit) and says how each ended, with its rows in and out.
    pub async fn shutdown(&mut self) {
        for j in &self.jobs {
            if let Some(job) = &j.job {
                crate::message::say(format!("[INFO] stopping job {}…", j.id));
                job.stop();
            }
        }
        for j in &mut self.jobs {
            if let Some(job) = j.job.take() {
                let end = match job.wait().await {
                    Ok(()) => "stopped".to_string(),
                    Err(e) => format!("failed: {e}"),
                };
                let (read, written) = j.metrics.rows_read_written();
                crate::message::say(format!(
                    "[INFO] job {} {end} ({read} rows in, {written} rows out): {}",
                    j.id,
                    one_line(&j.name)
                ));
            }
        }
    }
}

/// An output format as `\\format` and `--format` spell it (`table`, `csv`, `json`,
/// `ndjson`).
fn format_name(f: OutputFormat) -> String {
    use clap::ValueEnum;
    f.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{f:?}").to_ascii_lowercase())
}

/// Shows `text` through the pager when stdout is a terminal and `text` is taller than it:
/// `$PAGER` (empty: none), else `less -FRSX` (which quits by itself when the text fits).
/// Returns false when nothing was paged (the caller prints `text`).
fn page(text: &[u8]) -> bool {
    let term = console::Term::stdout();
    let Some((rows, _)) = term.size_checked() else {
        return false;
    };
    if text.iter().filter(|b| **b == b'\n').count() < rows as usize {
        return false;
    }
    let pager = std::env::var("PAGER").unwrap_or_else(|_| "less -FRSX".into());
    let mut words = pager.split_whitespace();
    let Some(program) = words.next() else {
        return false;
    };
    let child = std::process::Command::new(program)
        .args(words)
        .stdin(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    if let Some(mut input) = child.stdin.take() {
        // A pager quit early closes its input: not an error.
        let _ = input.write_all(text);
    }
    let _ = child.wait();
    true
}

/// A job's statement on one line of at most 61 characters.
fn one_line(s: &str) -> String {
    crate::message::one_line(s, 61)
}

/// Flink sql-client's word commands, with or without `;`: `HELP` is `\?`, `QUIT` and
/// `EXIT` are `\q` (any case).
fn word_command(input: &str) -> Option<Meta> {
    match input
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "help" => Some(Meta::Help),
        "quit" | "exit" => Some(Meta::Quit),
        _ => None,
    }
}

/// True when `input` is a complete entry: a meta command (also `help`, `quit`, `exit`), or
/// SQL ending in `;` outside quotes and comments.
pub fn complete_entry(input: &str) -> bool {
    let t = input.trim();
    if t.is_empty() || t.starts_with('\\') || word_command(t).is_some() {
        return true;
    }
    let mut in_str: Option<char> = None;
    let mut last = None;
    let mut chars = t.chars().peekable();
    let mut in_block = false;
    while let Some(c) = chars.next() {
        if in_block {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                in_block = false;
            }
            continue;
        }
        match in_str {
            Some(q) => {
                if c == q {
                    in_str = None;
                }
                last = Some(c);
            }
            None => match c {
                '\'' | '"' | '`' => {
                    in_str = Some(c);
                    last = Some(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    in_block = true;
                }
                c if c.is_whitespace() => {}
                c => last = Some(c),
            },
        }
    }
    in_str.is_none() && last == Some(';')
}

struct WeirHelper {
    words: Arc<Mutex<complete::Catalog>>,
}

impl Completer for WeirHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let catalog = self.words.lock().map(|w| w.clone()).unwrap_or_default();
        let (start, candidates) = complete::complete(&catalog, &line[..pos], line);
        Ok((
            start,
            candidates
                .into_iter()
                .map(|c| Pair {
                    display: c.clone(),
                    replacement: c,
                })
                .collect(),
        ))
    }
}

impl Hinter for WeirHelper {
    type Hint = String;

    /// On an empty entry, the keys to know; on the empty line a statement left open goes on
    /// to (Enter before its `;`), that it continues — as a continuation prompt says it in
    /// Flink's SQL client and psql (rustyline draws no prompt of its own there).
    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<String> {
        if line.is_empty() {
            return Some("  end statements with ';'  ·  \\? help  ·  \\q quit".to_string());
        }
        (pos == line.len() && line.ends_with('\n') && !line.trim().is_empty())
            .then(|| "  … the statement goes on: end it with ';'".to_string())
    }
}

impl Highlighter for WeirHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if !crate::colour_stderr() {
            return Cow::Borrowed(hint);
        }
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }
}

impl Validator for WeirHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if complete_entry(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for WeirHelper {}

fn history_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WEIR_HISTORY") {
        return Some(PathBuf::from(p));
    }
    std::env::var("HOME")
        .ok()
        .map(|h| PathBuf::from(h).join(".weir_history"))
}

/// The interactive loop, on a terminal; `maxrows` (`--maxrows`) overrides the 40 rows a
/// bounded query's table shows (0 shows all).
pub fn interactive(rt: &tokio::runtime::Runtime, maxrows: Option<usize>) -> Result<()> {
    let mut shell = Shell::new(true);
    if let Some(n) = maxrows {
        shell.session.max_rows = n;
    }
    keys::restore_terminal_on_termination(rt);
    // Tab completes what the candidates share and lists them all, as bash and psql do.
    let config = rustyline::Config::builder()
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor: Editor<WeirHelper, DefaultHistory> =
        Editor::with_config(config).map_err(|e| WeirError::external(e.to_string()))?;
    editor.set_helper(Some(WeirHelper {
        words: shell.words.clone(),
    }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!(
        "Weir {} — streaming SQL in Flink's dialect. \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        match editor.readline("weir> ") {
            Ok(line) => {
                // The history file keeps no secret (an option's value starred out).
                let _ = editor.add_history_entry(crate::sql::options::scrub_sql(&line).as_str());
                if let Some(h) = &history {
                    let _ = editor.save_history(h);
                }
                if !rt.block_on(shell.handle(&line)) {
                    break;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(WeirError::external(e.to_string())),
        }
    }
    rt.block_on(shell.shutdown());
    Ok(())
}

/// Statements from a file or a pipe, without prompts: each complete entry in turn.
/// Errors point at their line and column in `text`, and name `file` when there is one.
/// Returns false when one failed.
/// `maxrows` (`--maxrows`) limits the rows a batch query's table shows (all without it).
pub fn script(
    rt: &tokio::runtime::Runtime,
    text: &str,
    file: Option<&str>,
    maxrows: Option<usize>,
) -> bool {
    let mut shell = Shell::new(false);
    if let Some(n) = maxrows {
        shell.session.max_rows = n;
    }
    let whole: Arc<str> = Arc::from(text);
    let mut ok = true;
    let mut entry = String::new();
    // The 1-based line of `text` where the entry began.
    let mut first_line = 1;
    for (i, line) in text.lines().enumerate() {
        if entry.trim().is_empty() {
            entry.clear();
            first_line = i + 1;
            if line.trim().starts_with('\\') || word_command(line).is_some() {
                let col = line.chars().count() - line.trim_start().chars().count() + 1;
                shell.script_place = Some((whole.clone(), file.map(str::to_string), i + 1, col));
                let go_on = rt.block_on(shell.handle(line));
                shell.script_place = None;
                if shell.meta_failed.take() {
                    ok = false;
                }
                if !go_on {
                    break;
                }
                continue;
            }
        }
        entry.push_str(line);
        entry.push('\n');
        if complete_entry(&entry) {
            let e = std::mem::take(&mut entry);
            ok &= rt.block_on(shell.run_checked(&e, first_line, &whole, file));
        }
    }
    if !entry.trim().is_empty() {
        ok &= rt.block_on(shell.run_checked(&entry, first_line, &whole, file));
    }
    rt.block_on(async {
        // Background jobs of a script run to their end.
        for j in &mut shell.jobs {
            if let Some(job) = j.job.take()
                && let Err(e) = job.wait().await
            {
                crate::message::say(format!(
                    "[ERROR] Job {} failed:\n{}",
                    j.id,
                    e.render_body(None, None)
                ));
                ok = false;
            }
        }
    });
    ok
}

impl Shell {
    /// Runs `entry`, which begins at line `first_line` of `whole` (a script, `file` if
    /// it has a name); an error is shown at its place in `whole`.
    async fn run_checked(
        &mut self,
        entry: &str,
        first_line: usize,
        whole: &Arc<str>,
        file: Option<&str>,
    ) -> bool {
        let trimmed = entry.trim();
        if trimmed.is_empty() {
            return true;
        }
        // Where `trimmed` starts in `whole`: after the entry's leading blank lines and
        // spaces.
        let lead = &entry[..entry.len() - entry.trim_start().len()];
        let line = first_line + lead.matches('\n').count();
        let col = lead.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let started = Instant::now();
        // Where an error without a place of its own (`STOP JOB '99'`) is shown.
        self.script_place = Some((whole.clone(), file.map(str::to_string), line, col));
        let ran = self.sql(trimmed).await;
        self.script_place = None;
        let ok = match ran {
            // A statement the shell handles itself (`STOP JOB`) may have failed too.
            Ok(()) => {
                self.refresh_words();
                !self.meta_failed.take()
            }
            Err(e) => {
                let e = e.offset_by(line as u64, col as u64);
                crate::message::say(e.render(Some(whole), file));
                false
            }
        };
        if self.session.timing {
            eprintln!("Time: {:.3}s", started.elapsed().as_secs_f64());
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help fits the terminal: at 80 and 60 columns no line is wider, and every
    /// command is listed with its description.
    #[test]
    fn help_fits_the_terminal() {
        for width in [80, 60] {
            let text = help_text(width);
            for line in text.lines() {
                assert!(line.chars().count() < width, "{width}: {line:?}");
            }
            for (cmd, what) in META_HELP {
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("  {cmd} "))),
                    "{cmd}"
                );
                let first_word = what.split_whitespace().next().unwrap_or_default();
                assert!(text.contains(first_word), "{what}");
            }
        }
    }

    #[test]
    fn entries_end_with_a_semicolon_outside_quotes() {
        assert!(complete_entry("SELECT 1;"));
        assert!(complete_entry("SELECT 1; -- done"));
        assert!(!complete_entry("SELECT 1"));
        assert!(!complete_entry("SELECT ';"));
        assert!(complete_entry("SELECT ';';"));
        assert!(!complete_entry("SELECT 1 /* ; */"));
        assert!(complete_entry("\\jobs"));
        // Flink's word commands end an entry without a `;`.
        assert!(complete_entry("quit"));
        assert!(complete_entry("EXIT;"));
        assert!(complete_entry(" help "));
        assert!(!complete_entry("helpme"));
        assert!(matches!(word_command("Quit;"), Some(Meta::Quit)));
        assert!(matches!(word_command("HELP"), Some(Meta::Help)));
    }

    #[test]
    fn meta_commands() {
        assert_eq!(Meta::parse("\\q"), Ok(Meta::Quit));
        assert_eq!(Meta::parse("\\d t"), Ok(Meta::Describe(Some("t".into()))));
        assert_eq!(Meta::parse("\\stop 3"), Ok(Meta::Stop(3)));
        assert_eq!(
            Meta::parse("\\format csv"),
            Ok(Meta::Format(Some(OutputFormat::Csv)))
        );
        assert_eq!(Meta::parse("\\timing on"), Ok(Meta::Timing(Some(true))));
        assert_eq!(Meta::parse("\\timing"), Ok(Meta::Timing(None)));
        assert_eq!(Meta::parse("\\x"), Ok(Meta::Expanded(None)));
        assert_eq!(Meta::parse("\\x off"), Ok(Meta::Expanded(Some(false))));
        assert_eq!(Meta::parse("\\format"), Ok(Meta::Format(None)));
        assert!(Meta::parse("\\stop").is_err_and(|e| e.contains("takes a job id")));
        assert!(Meta::parse("\\nope").is_err());
    }
}
