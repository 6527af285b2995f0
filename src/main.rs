//! The `weir` command line: `weir run FILE.sql ...` runs standing queries.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use weir::format::encode::{OutputFormat, write_results};
use weir::job::Job;
use weir::sql::parser::parse_script;
use weir::{Outcome, Session, WeirError};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Weir: streaming SQL in Flink's dialect, on Arrow and DataFusion",
    after_help = "Examples:
  weir                                  the interactive shell (\\help inside)
  weir -f setup.sql                     run a file's statements and meta commands, then exit
  weir run queries/hot_items.sql        a standing query on the embedded Nexmark generator
  weir query \"SELECT * FROM 'archive/hot_items' LIMIT 10\"
  weir bench nexmark --events 1000000 --query q0,q5"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Run the statements (and meta commands) of a file, print their results, and exit.
    /// Without a command or -f, `weir` opens the interactive shell on a terminal and reads
    /// statements from a pipe otherwise.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// The most rows a bounded query's table shows in the shell (the count still counts
    /// them all); 0 shows all. Default: 40 on a terminal, as datafusion-cli; all for -f
    /// and piped input. `\maxrows N` changes it in the shell.
    #[arg(long, value_name = "N")]
    maxrows: Option<usize>,
    /// What to log on stderr: error, warn, info, debug or trace, or a filter such as
    /// `warn,weir::job=info` (tracing's EnvFilter syntax; `WEIR_LOG` overrides it). The
    /// default logs warnings and `weir run`'s progress lines.
    #[arg(
        long,
        global = true,
        value_name = "FILTER",
        default_value = "warn,weir::progress=info"
    )]
    log_level: String,
    /// Log lines as text, or as JSON objects (one per line) for a log collector.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the statements of SQL files in order; INSERT INTO and SELECT start standing
    /// queries, which run until their sources end or Ctrl-C / SIGTERM stops them.
    #[command(after_help = "Examples:
  weir run queries/nexmark/ddl.sql queries/nexmark/q5.sql --set events.num=1000000
  weir run ddl.sql job.sql --format csv --quiet > out.csv
  weir run job.sql --set execution.checkpointing.interval=10s --metrics-addr 127.0.0.1:9249
  weir run job.sql --from-scratch        ignore the job's saved checkpoints")]
    Run {
        /// SQL files (statements separated by `;`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A setting, as `SET 'key' = 'value'` before the first statement; a key that a
        /// table's connector accepts overrides that option (e.g. events.num=1000).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// How bare SELECT results print.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        /// Print no [INFO] lines, progress or job summaries on stderr; warnings and errors
        /// still show.
        #[arg(long, short)]
        quiet: bool,
        /// Ignore the jobs' saved checkpoints and start over (with checkpointing, a job
        /// otherwise resumes from its latest completed checkpoint).
        #[arg(long)]
        from_scratch: bool,
        /// Serve the jobs' metrics for Prometheus at http://ADDR/metrics (e.g.
        /// 127.0.0.1:9249; port 0 picks a free one). Without it, the setting
        /// 'metrics.reporter.prom.port' serves on 127.0.0.1.
        #[arg(long, value_name = "HOST:PORT")]
        metrics_addr: Option<String>,
        /// How often each job's progress (rows/s in and out, watermark, event-time lag,
        /// p99 latency) is logged when stderr is not a terminal (on a terminal it is a live
        /// line). Flink's duration syntax: 10s, 1min, 500ms; 0 turns it off.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = weir::sql::options::parse_duration)]
        progress_interval: Duration,
        /// How long a stop (Ctrl-C, SIGTERM) waits for the jobs to drain and take their
        /// savepoints before the process ends without them (a job then resumes from its
        /// last completed checkpoint). Flink's duration syntax.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = weir::sql::options::parse_duration)]
        stop_timeout: Duration,
    },
    /// Benchmarks: `weir bench nexmark` runs the Nexmark queries of `queries/nexmark/`, each
    /// in its own process, and prints events/s, events/s per core and peak memory.
    #[command(after_help = "Examples:
  weir bench nexmark --events 1000000
  weir bench nexmark --query q0,q5 --set execution.checkpointing.interval=10s")]
    Bench {
        #[command(subcommand)]
        suite: BenchSuite,
    },
    /// Run SQL in batch over archives and files: `FROM 'archive/hot_items'` reads a
    /// directory (Parquet, JSON or CSV; Hive partition folders become columns), and
    /// `filesystem` tables declared with CREATE TABLE read what they hold now.
    #[command(after_help = "Examples:
  weir query \"SELECT * FROM 'archive/hot_items' WHERE dt = '2026-01-01' ORDER BY window_start\"
  weir query --format csv \"SELECT dt, COUNT(*) FROM 'archive/hot_items' GROUP BY dt\"
  echo \"SELECT 1 + 1;\" | weir query -
  weir query --maxrows 0 \"SELECT * FROM 'archive/hot_items'\"")]
    Query {
        /// SQL statements separated by `;` (or `-` to read them from stdin).
        sql: String,
        /// How results print.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        /// Print no row count and time on stderr.
        #[arg(long, short)]
        quiet: bool,
        /// The most rows a table shows (the count still counts them all); 0 shows all.
        /// Default: 40 on a terminal, as datafusion-cli; all when piped.
        #[arg(long)]
        maxrows: Option<usize>,
        /// A setting, as `SET 'key' = 'value'` before the first statement (as `weir run
        /// --set`; e.g. table.local-time-zone=Asia/Shanghai).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BenchSuite {
    /// Each query in its own `weir run` over the same generated events: events/s, events/s
    /// per core (over the CPU time used) and peak RSS, as a Markdown table.
    #[command(after_help = "Examples:
  weir bench nexmark --events 1000000
  weir bench nexmark --query q0,q5 --dir queries/nexmark
  weir bench nexmark --query q16 --parallelism 1,2")]
    Nexmark {
        /// Queries to run (q0, q5, ...; repeat or separate by commas); default all.
        #[arg(long = "query", value_delimiter = ',')]
        queries: Vec<String>,
        /// Events generated per query.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// The folder with ddl.sql and q<N>.sql.
        #[arg(long, default_value = "queries/nexmark")]
        dir: PathBuf,
        /// A setting for every query, as `weir run --set` (e.g.
        /// execution.checkpointing.interval=10s).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Run each query at these parallelisms (`parallelism.default`; separate by
        /// commas), one row each, interleaved; default: the machine's cores.
        #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..))]
        parallelism: Vec<u16>,
    },
}

fn bench(suite: BenchSuite) -> ExitCode {
    let BenchSuite::Nexmark {
        queries,
        events,
        dir,
        set,
        parallelism,
    } = suite;
    let ddl = dir.join("ddl.sql");
    if !ddl.is_file() {
        weir::message::error(format!("no '{}'", ddl.display()));
        return ExitCode::from(2);
    }
    let list = match weir::bench::queries(&dir, &queries) {
        Ok(l) if !l.is_empty() => l,
        Ok(_) => {
            weir::message::error(format!(
                "no query q<N>.sql in '{}' matches {queries:?}",
                dir.display()
            ));
            return ExitCode::from(2);
        }
        Err(e) => {
            weir::message::error(format!("cannot read '{}': {e}", dir.display()));
            return ExitCode::from(2);
        }
    };
    let weir = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            weir::message::error(format!("cannot find the weir binary: {e}"));
            return ExitCode::from(1);
        }
    };
    let mut results = vec![];
    let parallelism: Vec<Option<u16>> = if parallelism.is_empty() {
        vec![None]
    } else {
        parallelism.into_iter().map(Some).collect()
    };
    for (name, path) in list {
        for p in &parallelism {
            let mut set = set.clone();
            let label = match p {
                Some(p) => {
                    set.push(format!("parallelism.default={p}"));
                    format!("{name} p{p}")
                }
                None => name.clone(),
            };
            eprintln!("{label} ...");
            let m = weir::bench::measure(&weir, &ddl, &label, &path, events, &set);
            results.push(m);
        }
    }
    print!("{}", weir::bench::table(&results));
    // A query that failed is in the table with its error, and the run fails.
    let failed: Vec<&str> = results
        .iter()
        .filter(|m| m.error.is_some())
        .map(|m| m.query.as_str())
        .collect();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        weir::message::error(format!("{} failed: {}", failed.len(), failed.join(", ")));
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG") {
        Ok(f) => f,
        Err(_) => match tracing_subscriber::EnvFilter::try_new(&cli.log_level) {
            Ok(f) => f,
            Err(e) => {
                weir::message::error(format!("--log-level '{}': {e}", cli.log_level));
                return ExitCode::from(2);
            }
        },
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs
            .with_ansi(weir::colour_stderr())
            .event_format(weir::message::Tagged {
                colour: weir::colour_stderr(),
            })
            .init(),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            weir::message::error(format!("cannot start the runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    match cli.command {
        None => {
            if let Some(f) = cli.file {
                return match std::fs::read_to_string(&f) {
                    Ok(text) => exit(weir::shell::script(
                        &rt,
                        &text,
                        Some(&f.display().to_string()),
                        cli.maxrows,
                    )),
                    Err(e) => {
                        weir::message::error(format!("cannot read '{}': {e}", f.display()));
                        ExitCode::from(2)
                    }
                };
            }
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                match weir::shell::interactive(&rt, cli.maxrows) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        weir::message::say(e.render(None, None));
                        ExitCode::from(1)
                    }
                }
            } else {
                let mut text = String::new();
                if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                    weir::message::error(format!("cannot read stdin: {e}"));
                    return ExitCode::from(2);
                }
                exit(weir::shell::script(&rt, &text, None, cli.maxrows))
            }
        }
        Some(Command::Run {
            files,
            set,
            format,
            quiet,
            from_scratch,
            metrics_addr,
            progress_interval,
            stop_timeout,
        }) => rt.block_on(run(
            files,
            set,
            format,
            quiet,
            from_scratch,
            metrics_addr,
            progress_interval,
            stop_timeout,
        )),
        Some(Command::Query {
            sql,
            format,
            quiet,
            maxrows,
            set,
        }) => {
            let maxrows =
                maxrows.unwrap_or(if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    40
                } else {
                    0
                });
            rt.block_on(query(sql, set, format, quiet, maxrows))
        }
        Some(Command::Bench { suite }) => bench(suite),
    }
}

/// The columns of the terminal on stderr (where summaries go); 100 when it is not one and
/// `COLUMNS` does not say.
fn terminal_width() -> usize {
    console::Term::stderr()
        .size_checked()
        .map(|(_, cols)| cols as usize)
        .or_else(|| std::env::var("COLUMNS").ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// Applies `--set KEY=VALUE` flags to `session`, warning on unknown keys. Errors: a flag
/// without `=` or a value its setting refuses, reported at the flag (exit code 2).
fn apply_set_flags(session: &mut Session, set: &[String]) -> Result<(), ExitCode> {
    for kv in set {
        match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                if let Err(e) = session.set_from_flag(k.trim(), v.trim()) {
                    weir::message::error(format!("--set {kv}: {}", e.render_body(None, None)));
                    return Err(ExitCode::from(2));
                }
                if let Some(w) = weir::session::unknown_setting(k.trim()) {
                    weir::message::warning(format!("--set {kv}: {w}"));
                }
            }
            _ => {
                weir::message::error(format!("--set takes KEY=VALUE, got '{kv}'"));
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(())
}

/// `weir query`: `set` holds `--set` flags; `maxrows` is the most rows a table shows (0:
/// all).
async fn query(
    sql: String,
    set: Vec<String>,
    format: OutputFormat,
    quiet: bool,
    maxrows: usize,
) -> ExitCode {
    let sql = if sql == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
            weir::message::error(format!("cannot read stdin: {e}"));
            return ExitCode::from(2);
        }
        s
    } else {
        sql
    };
    let mut session = Session::new();
    session.progress = !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if let Err(code) = apply_set_flags(&mut session, &set) {
        return code;
    }
    let started = std::time::Instant::now();
    match session.batch(&sql).await {
        Ok(results) => {
            let mut out = std::io::stdout().lock();
            for batches in &results {
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                let mut shown = if format == OutputFormat::Table && maxrows > 0 && rows > maxrows {
                    weir::format::encode::first_rows(batches, maxrows)
                } else {
                    batches.clone()
                };
                // A table shows a TIMESTAMP_LTZ on the session zone's clock, as the shell's do.
                if format == OutputFormat::Table {
                    let localized = session.display().and_then(|d| {
                        shown
                            .iter()
                            .map(|b| d.localize(b))
                            .collect::<weir::error::Result<Vec<_>>>()
                    });
                    match localized {
                        Ok(l) => shown = l,
                        Err(e) => {
                            weir::message::say(e.render(None, None));
                            return ExitCode::from(1);
                        }
                    }
                }
                match write_results(&mut out, format, &shown, true) {
                    Ok(()) => {}
                    // The reader went away (`weir query … | head`): nothing more to say.
                    Err(WeirError::OutputClosed(_)) => return ExitCode::SUCCESS,
                    Err(e) => {
                        weir::message::say(e.render(None, None));
                        return ExitCode::from(1);
                    }
                }
                let _ = std::io::Write::flush(&mut out);
                if !quiet {
                    let more = if shown.iter().map(|b| b.num_rows()).sum::<usize>() < rows {
                        format!(" (the first {maxrows} shown; --maxrows 0 shows all)")
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "{rows} row(s) in {:.3}s{more}",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            weir::message::say(e.render(Some(&sql), None));
            if e.is_user_error() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    files: Vec<PathBuf>,
    set: Vec<String>,
    format: OutputFormat,
    quiet: bool,
    from_scratch: bool,
    metrics_addr: Option<String>,
    progress_interval: Duration,
    stop_timeout: Duration,
) -> ExitCode {
    let signals = StopSignals::install();
    let mut session = Session::new();
    session.metrics_addr = metrics_addr;
    session.output = format;
    session.quiet = quiet;
    session.from_scratch = from_scratch;
    if let Err(code) = apply_set_flags(&mut session, &set) {
        return code;
    }
    // Parse every file first: a typo in the last file must not leave queries half-started.
    let mut scripts = vec![];
    for f in &files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                weir::message::error(format!("cannot read '{}': {e}", f.display()));
                return ExitCode::from(2);
            }
        };
        match parse_script(&text) {
            Ok(stmts) => scripts.push((f.display().to_string(), text, stmts)),
            Err(e) => {
                weir::message::say(e.render(Some(&text), Some(&f.display().to_string())));
                return ExitCode::from(2);
            }
        }
    }
    let mut jobs: Vec<Job> = vec![];
    for (file, text, stmts) in &scripts {
        for stmt in stmts {
            match session.execute(stmt).await {
                Ok(Outcome::Done(msg)) => {
                    if !quiet {
                        weir::message::say(msg);
                    }
                }
                // A warning is not chatter: --quiet keeps it.
                Ok(Outcome::Warning(msg)) => weir::message::say(msg),
                Ok(Outcome::Text(t)) if format == OutputFormat::Table => println!("{t}"),
                Ok(Outcome::Text(t)) => {
                    let mut out = std::io::stdout().lock();
                    let written = Outcome::text_rows(&t)
                        .and_then(|b| write_results(&mut out, format, &b, true));
                    if let Err(e) = written {
                        weir::message::say(e.render(None, None));
                    }
                }
                Ok(Outcome::Rows(batches)) => {
                    let mut out = std::io::stdout().lock();
                    if let Err(e) = write_results(&mut out, format, &batches, true) {
                        weir::message::say(e.render(None, None));
                    }
                }
                Ok(Outcome::Started(job)) => {
                    if !quiet {
                        weir::message::say(job_line(
                            &format!("[INFO] Job {} started: ", job.id),
                            &job.name,
                        ));
                    }
                    jobs.push(job);
                }
                Err(e) => {
                    weir::message::say(e.render(Some(text), Some(file)));
                    for j in &jobs {
                        j.stop();
                    }
                    for j in jobs {
                        let _ = j.wait().await;
                    }
                    return ExitCode::from(if e.is_user_error() { 2 } else { 1 });
                }
            }
        }
    }
    wait_for_jobs(jobs, quiet, signals, progress_interval, stop_timeout).await
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `prefix` then a job's statement on one line, the whole within the terminal's width (the
/// statement cut with `…`, though never to fewer than 20 characters).
fn job_line(prefix: &str, name: &str) -> String {
    let room = terminal_width()
        .saturating_sub(prefix.chars().count())
        .max(20);
    format!("{prefix}{}", weir::message::one_line(name, room))
}

/// Waits for every job; the first Ctrl-C or SIGTERM stops them cleanly, a second exits now.
/// SIGTERM and SIGINT (Ctrl-C), taken over when `weir run` starts: one that comes while
/// the statements are still being planned stops the jobs cleanly once they run, instead of
/// killing the process.
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Waits for the next stop signal (forever when none could be installed).
    async fn next(&mut self) {
        let term = async {
            match self.term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let int = async {
            match self.int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => {},
            _ = int => {},
        }
    }
}

/// Each running job's progress: a live line per job on a terminal (indicatif), else a log
/// line (`weir::progress`, through `tracing`) every `interval`.
struct ProgressLines {
    bars: Option<indicatif::MultiProgress>,
    lines: Vec<(u64, indicatif::ProgressBar)>,
    interval: Duration,
    last: std::time::Instant,
    /// Per job: (when, source rows, sink rows) at the last update, for rates.
    seen: std::collections::HashMap<u64, (std::time::Instant, u64, u64)>,
}

impl ProgressLines {
    fn new(quiet: bool, interval: Duration) -> ProgressLines {
        use std::io::IsTerminal;
        let live = !quiet && std::io::stderr().is_terminal();
        ProgressLines {
            bars: live.then(indicatif::MultiProgress::new),
            lines: vec![],
            interval: if quiet { Duration::ZERO } else { interval },
            last: std::time::Instant::now(),
            seen: Default::default(),
        }
    }

    /// One job's status: `rows/s in 2 000, out 3 · watermark 2026-01-01 00:00:21 · lag
    /// 1.2 s · p99 1.7 ms`.
    fn status(&mut self, j: &Job) -> String {
        let m = &j.metrics;
        let (rows_in, rows_out) = m.rows_read_written();
        let now = std::time::Instant::now();
        let (t, i0, o0) = self
            .seen
            .insert(j.id, (now, rows_in, rows_out))
            .unwrap_or((m.started, 0, 0));
        let secs = now.duration_since(t).as_secs_f64().max(1e-3);
        let (wm, lag) = weir::job::metrics::watermark_and_lag(
            m.watermark.load(std::sync::atomic::Ordering::Relaxed),
            weir::sql::functions::now_millis(),
        );
        let l = m.latency();
        let p99 = if l.count > 0 {
            weir::job::metrics::fmt_us(l.p99)
        } else {
            "-".to_string()
        };
        format!(
            "job {}: rows/s in {:.0}, out {:.0} · watermark {wm} · lag {lag} · p99 latency {p99}",
            j.id,
            (rows_in - i0.min(rows_in)) as f64 / secs,
            (rows_out - o0.min(rows_out)) as f64 / secs,
        )
    }

    fn update(&mut self, jobs: &[Job]) {
        if let Some(bars) = &self.bars {
            if self.last.elapsed() < Duration::from_millis(500) {
                return;
            }
            self.last = std::time::Instant::now();
            for j in jobs {
                if !self.lines.iter().any(|(id, _)| *id == j.id) {
                    let bar = bars.add(indicatif::ProgressBar::new_spinner());
                    self.lines.push((j.id, bar));
                }
            }
            let lines: Vec<(u64, String)> = jobs.iter().map(|j| (j.id, self.status(j))).collect();
            for (id, msg) in lines {
                if let Some((_, bar)) = self.lines.iter().find(|(i, _)| *i == id) {
                    bar.set_message(msg);
                    bar.tick();
                }
            }
            return;
        }
        if self.interval.is_zero() || self.last.elapsed() < self.interval {
            return;
        }
        self.last = std::time::Instant::now();
        for j in jobs {
            let line = self.status(j);
            tracing::info!(target: "weir::progress", "{line}");
        }
    }

    /// Prints a line on stderr above the live lines.
    fn say(&self, text: &str) {
        match &self.bars {
            Some(b) => b.suspend(|| weir::message::say(text)),
            None => weir::message::say(text),
        }
    }

    /// A job ended: its live line goes away (its summary follows).
    fn remove(&mut self, id: u64) {
        if let Some(i) = self.lines.iter().position(|(j, _)| *j == id) {
            let (_, bar) = self.lines.remove(i);
            bar.finish_and_clear();
        }
    }
}

/// Ends the process at once with `code`: the runtime's orderly shutdown would wait for
/// tasks that are busy in a long synchronous step.
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

async fn wait_for_jobs(
    mut jobs: Vec<Job>,
    quiet: bool,
    mut signals: StopSignals,
    progress_interval: Duration,
    stop_timeout: Duration,
) -> ExitCode {
    let mut failed = false;
    let mut stopping: Option<std::time::Instant> = None;
    let mut progress = ProgressLines::new(quiet, progress_interval);
    while !jobs.is_empty() {
        progress.update(&jobs);
        if let Some(since) = stopping
            && since.elapsed() >= stop_timeout
        {
            // An operator busy in one long step (or a sink that blocks) holds the stop
            // up: the process ends now. Jobs with checkpoints resume from their last one;
            // without, their uncommitted output is left hidden.
            let safe = jobs.iter().all(|j| j.checkpointer().is_some());
            for j in &jobs {
                weir::message::say(format!(
                    "[WARNING] Job {} was still busy {:.1} s after the stop request (--stop-timeout); it ends without draining{}",
                    j.id,
                    stop_timeout.as_secs_f64(),
                    if j.checkpointer().is_some() {
                        " (its next run resumes from its last completed checkpoint)"
                    } else {
                        " (its uncommitted output is discarded)"
                    }
                ));
            }
            exit_now(if failed {
                1
            } else if safe {
                0
            } else {
                130
            });
        }
        let signal = signals.next();
        tokio::select! {
            _ = signal => {
                if stopping.is_some() {
                    weir::message::warning("stopped without draining");
                    exit_now(130);
                }
                stopping = Some(std::time::Instant::now());
                if !quiet {
                    progress.say(&format!("[INFO] stopping {} job(s)…", jobs.len()));
                }
                for j in &jobs {
                    j.stop();
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        let mut still = vec![];
        for j in jobs {
            if j.is_finished() {
                progress.remove(j.id);
                let (id, name, metrics) = (j.id, j.name.clone(), j.metrics.clone());
                let checkpoints = j.checkpointer().map(|c| c.summary());
                let stopped = j.is_stopping();
                match j.wait().await {
                    Ok(()) => {
                        if !quiet {
                            let secs = metrics.started.elapsed().as_secs_f64();
                            let how = if stopped { "stopped" } else { "finished" };
                            progress.say(&format!(
                                "{}\n{}{}",
                                job_line(
                                    &format!("[INFO] Job {id} {how} after {secs:.2}s: "),
                                    &name
                                ),
                                metrics.report(terminal_width()),
                                checkpoints.map(|c| format!("  {c}\n")).unwrap_or_default()
                            ));
                        }
                    }
                    Err(e) => {
                        failed = true;
                        progress.say(&format!(
                            "{}\n{}",
                            job_line(&format!("[ERROR] Job {id} failed: "), &name),
                            e.render_body(None, None)
                        ));
                    }
                }
            } else {
                still.push(j);
            }
        }
        jobs = still;
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
