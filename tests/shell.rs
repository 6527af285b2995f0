//! The interactive shell in a real pseudo-terminal: a multi-line windowed query over the
//! Nexmark generator streams window rows, Ctrl-C cancels it and the shell stays up, a
//! background INSERT shows in `\jobs` and stops with `\stop`, an archive query answers, `\q`
//! quits, and a second start finds the history. Plus the non-interactive forms (a pipe and
//! `-f`), snapshotted.

use std::process::Command;
use std::time::Duration;

use std::io::Write;
use std::sync::{Arc, Mutex};

use expectrl::process::Healthcheck;
use expectrl::session::{OsProcess, OsStream};
use expectrl::stream::log::LogStream;
use expectrl::{Expect, Session};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

const DDL: &str = "CREATE TABLE datagen (
    event_type INT,
    person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    dateTime AS CASE WHEN event_type = 0 THEN person.dateTime WHEN event_type = 1 THEN auction.dateTime ELSE bid.dateTime END,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'first-event.rate' = '1000', 'base-time' = '2026-01-01 00:00:00');
CREATE TABLE sink WITH ('connector' = 'blackhole');
";

/// Everything read from and written to the terminal, shown when an expectation fails (a
/// bare `ExpectTimeout` says nothing about what the shell printed instead).
#[derive(Clone, Default)]
struct Transcript(Arc<Mutex<Vec<u8>>>);

impl Write for Transcript {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut t) = self.0.lock() {
            t.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

type Shell = Session<OsProcess, LogStream<OsStream, Transcript>>;

struct Term {
    s: Shell,
    log: Transcript,
}

impl Term {
    /// Waits for `needle` (a literal string); on a timeout, fails with `what` and the last
    /// 8 000 bytes of the transcript.
    fn want(&mut self, needle: &str, what: &str) {
        if let Err(e) = self.s.expect(needle) {
            let t = self.log.0.lock().map(|t| t.clone()).unwrap_or_default();
            let t = String::from_utf8_lossy(&t[t.len().saturating_sub(8000)..]).into_owned();
            panic!("{what}: waiting for {needle:?}: {e}\n--- the terminal's last bytes ---\n{t}");
        }
    }
    /// What was read and written so far, as the log's Rust debug text of it (an escape
    /// byte reads `\u{1b}`).
    fn transcript(&self) -> String {
        let t = self.log.0.lock().map(|t| t.clone()).unwrap_or_default();
        String::from_utf8_lossy(&t).into_owned()
    }
    fn line(&mut self, text: &str) {
        self.s.send_line(text).expect("send");
    }
    fn send(&mut self, text: &str) {
        self.s.send(text).expect("send");
    }
}

/// `cmd` started in a pseudo-terminal, everything it reads and writes logged.
fn spawn(cmd: Command) -> Term {
    let s = Session::spawn(cmd).expect("weir starts in a pty");
    let log = Transcript::default();
    let mut s = expectrl::session::log(s, log.clone()).expect("a logged session");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    Term { s, log }
}

/// The shell in a pseudo-terminal with its history in `history` and `env` set (a `None`
/// value removes the variable), once its first prompt is out.
fn start_with(history: &std::path::Path, env: &[(&str, Option<&str>)]) -> Term {
    let mut cmd = weir();
    // Output taller than the terminal is not held in a pager (one test sets its own).
    cmd.env("WEIR_HISTORY", history)
        .env("TERM", "xterm")
        .env("PAGER", "cat");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut t = spawn(cmd);
    t.want("weir> ", "a prompt");
    t
}

fn start(history: &std::path::Path) -> Term {
    start_with(history, &[])
}

#[test]
fn an_interactive_session() {
    let tmp = tempfile::tempdir().expect("tmp");
    let history = tmp.path().join("history");
    let ddl = tmp.path().join("ddl.sql");
    std::fs::write(&ddl, DDL).expect("ddl");
    let archive = tmp.path().join("arch");
    std::fs::create_dir_all(&archive).expect("archive dir");
    std::fs::write(
        archive.join("rows.json"),
        "{\"a\": 1}\n{\"a\": 2}\n{\"a\": 40}\n",
    )
    .expect("archive rows");

    let mut s = start(&history);
    s.line(&format!("\\i {}", ddl.display()));
    s.want("Table 'sink' created", "the DDL ran");

    // Tab completes a table name.
    s.send("DESCRIBE datag\t");
    s.line(";");
    s.want("event_type", "DESCRIBE datagen ran");

    // A windowed query typed over three lines streams its windows as they close.
    s.line("SELECT window_start, COUNT(*) AS n");
    s.line("FROM TABLE(TUMBLE(TABLE datagen, DESCRIPTOR(dateTime), INTERVAL '1' SECOND))");
    s.line("GROUP BY window_start, window_end;");
    s.want(
        "2026-01-01 00:00:01.000",
        "a window row, as Flink's sql-client shows it",
    );
    s.want("| 1000", "a full window: 1000 events a second");
    // Ctrl-C cancels the query, not the shell.
    s.send("\x03");
    s.want("query cancelled", "cancelled");
    s.want("weir> ", "the prompt again");

    // A background job, its metrics served for Prometheus, listed and stopped.
    s.line("SET 'metrics.reporter.prom.port' = '0';");
    // Its own output, not "weir> ": the shell redraws the prompt with each typed key, so
    // that would match the echo and the next line would be typed while SET runs (and be
    // lost when the terminal's mode is switched back).
    s.want("Execute statement succeeded", "SET done");
    s.line("INSERT INTO sink SELECT bid.price FROM datagen WHERE event_type = 2;");
    s.want("Metrics at http://127.0.0.1:", "the metrics endpoint");
    s.want("started in the background", "a job");
    // At 80 columns the table (eleven columns) would wrap: one field per line instead
    // (psql's `\\x auto`).
    s.s.get_process_mut()
        .set_window_size(80, 60)
        .expect("the terminal's size");
    s.line("\\jobs");
    s.want("-[ RECORD 1 ]-", "one field per line at 80 columns");
    // The cancelled SELECT is job 1, listed too: the ids run without gaps.
    s.want("CANCELED", "the cancelled SELECT listed");
    s.want("RUNNING", "listed as running");
    s.want("weir> ", "the prompt after \\jobs");
    // Its plan, with each task's live numbers.
    s.line("EXPLAIN JOB 2;");
    s.want("Sink   [in ", "the sink's live numbers");
    s.want("Source: datagen (connector 'nexmark'", "the plan's source");
    s.want("[out ", "the source's live numbers");
    s.want("weir> ", "the prompt after EXPLAIN JOB");
    s.line("\\stop 2");
    s.want("job 2 stopped", "stopped");
    s.line("SHOW JOBS;");
    s.want("STOPPED", "stopped");
    // The whole table, so that nothing in it (its lag in seconds, say) is taken for what
    // the next statement prints.
    s.want("weir> ", "the prompt after SHOW JOBS");
    s.line("\\metrics 2");
    // At 80 columns, one field per line.
    s.want("backpressured", "the metrics table");
    s.want("end-to-end latency: p50", "the job's latency");
    s.want("weir> ", "the prompt after \\metrics");

    // An archive query, in batch.
    s.line(&format!(
        "SELECT SUM(a) AS total_of_a FROM '{}';",
        archive.display()
    ));
    s.want("| total_of_a |", "the archive query's header");
    s.want("| 43 ", "the sum");
    s.want("weir> ", "the prompt after the archive query");

    // Errors show the caret and the shell goes on.
    s.line("SELECT nope FROM datagen;");
    s.want("No field named nope", "the error");
    s.want("^", "a caret");
    s.want("weir> ", "the prompt again");

    s.line("\\q");
    for _ in 0..100 {
        if !s.s.is_alive().unwrap_or(false) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!s.s.is_alive().unwrap_or(true), "\\q ends the shell");

    // A new start has the history: Ctrl-R finds the archive query.
    let mut s = start(&history);
    s.send("\x12");
    s.send("SUM(a)");
    s.want("total_of_a FROM", "found in the history");
    s.send("\x03");
    s.line("\\q");
    let text = std::fs::read_to_string(&history).expect("history file");
    assert!(
        text.contains("GROUP BY window_start, window_end;"),
        "{text}"
    );
}

const WINDOW_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/window_source.csv");

/// The statements that declare `src` over `tests/data/window_source.csv` and read it
/// `batch_size` rows at a time.
fn src_table(batch_size: usize) -> String {
    format!(
        "CREATE TABLE src (ts STRING, a_int INT, b DOUBLE, c FLOAT, d DECIMAL(10, 2), `comment` STRING, name STRING) \
         WITH ('connector' = 'filesystem', 'path' = '{WINDOW_SOURCE}', 'format' = 'csv', 'csv.null-literal' = '');\n\
         SET 'table.exec.batch-size' = '{batch_size}';\n"
    )
}

/// How many rows of `src` have each name (None: the empty field, NULL), read from the file.
fn rows_per_name() -> std::collections::BTreeMap<Option<String>, i64> {
    let text = std::fs::read_to_string(WINDOW_SOURCE).expect("data");
    let mut counts = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.rsplit(',').next().unwrap_or("");
        *counts
            .entry((!name.is_empty()).then(|| name.to_string()))
            .or_insert(0) += 1;
    }
    counts
}

fn pipe(input: &str, args: &[&str]) -> (i32, String, String) {
    let mut child = weir()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weir starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("weir ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn statements_from_a_pipe_print_results_without_prompts() {
    let (code, stdout, _) = pipe(
        "CREATE TABLE t (v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '0',\n\
           'number-of-rows' = '3', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', 'fields.v.end' = '3');\n\
         SELECT v, v * 10 AS w FROM t;\n\
         \\format csv\n\
         SELECT v FROM t WHERE v > 1;\n",
        &[],
    );
    assert_eq!(code, 0);
    insta::assert_snapshot!(stdout, @r"
    +---+----+
    | v | w  |
    +---+----+
    | 1 | 10 |
    | 2 | 20 |
    | 3 | 30 |
    +---+----+
    v
    2
    3
    ");
}

/// `\timing on` gives each statement one time, psql's `Time: …` after it; the result's
/// footer then gives only its count (regression: two different times for one SELECT).
/// Enter before a statement's `;` goes on to the next line, and the shell says so there
/// (a continuation hint, where Flink's SQL client and psql draw a continuation prompt).
#[test]
fn a_statement_left_open_says_it_goes_on() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = start(&tmp.path().join("history"));
    s.line("SELECT 41 + 1 AS answer");
    s.want(
        "the statement goes on: end it with ';'",
        "the continuation hint",
    );
    s.line(";");
    s.want("42", "the statement, ended, runs");
}

#[test]
fn timing_prints_one_time_per_statement() {
    let (code, _, stderr) = pipe("SELECT 1 AS a;\n\\timing on\nSELECT 2 AS b;\n", &[]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let footers: Vec<&&str> = lines.iter().filter(|l| l.contains("row(s)")).collect();
    assert_eq!(footers.len(), 2, "{stderr}");
    assert!(footers[0].starts_with("1 row(s) in "), "{stderr}");
    assert_eq!(*footers[1], "1 row(s)", "{stderr}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("Time: ")).count(),
        1,
        "{stderr}"
    );
}

/// `\jobs` draws its table as results are drawn: the statement cut to the column width
/// (`...`), and one field per line under `\x` (regression: the whole statement, the table
/// 200 columns wide).
#[test]
fn jobs_are_listed_within_the_column_width() {
    let (code, stdout, stderr) = pipe(
        "CREATE TABLE t (v BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\n\
         CREATE TABLE o (v BIGINT) WITH ('connector' = 'blackhole');\n\
         SET 'table.dml-sync' = 'true';\n\
         INSERT INTO o SELECT v FROM t WHERE v IS NOT NULL OR v IS NULL;\n\
         \\jobs\n\\x on\n\\jobs\n",
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("| INSERT INTO o SELECT v FROM... |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("query           | INSERT INTO o SELECT v FROM..."),
        "{stdout}"
    );
    assert!(stdout.contains("-[ RECORD 1 ]-"), "{stdout}");
    // A job that has ended writes nothing: its rate is 0 (regression: it faded slowly).
    assert!(stdout.contains("rows/s out      | 0\n"), "{stdout}");
}

/// Flink's `table.dml-sync`: an INSERT runs to its end before the next statement, so a
/// later statement reads all it wrote (at 1000 rows/s the job takes half a second; in the
/// background the SELECT would find none of it).
#[test]
fn dml_sync_waits_for_the_insert() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().display().to_string();
    let (code, stdout, stderr) = pipe(
        &format!(
            "CREATE TABLE t (v BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '500', \
               'rows-per-second' = '1000', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', 'fields.v.end' = '500');\n\
             CREATE TABLE o (v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{dir}', \
               'format' = 'csv');\n\
             SET 'table.dml-sync' = 'true';\n\
             INSERT INTO o SELECT v FROM t;\n\
             SELECT COUNT(*) AS n, SUM(v) AS s FROM o;\n"
        ),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("Complete execution of the SQL update statement."),
        "{stderr}"
    );
    assert!(stdout.contains("| 500 | 125250 |"), "{stdout}");
    let (code, _, stderr) = pipe("SET 'table.dml-sync' = 'yes';\n", &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("'table.dml-sync' is 'true' or 'false'"),
        "{stderr}"
    );
}

#[test]
fn a_file_with_an_error_reports_it_and_fails() {
    let tmp = tempfile::tempdir().expect("tmp");
    let f = tmp.path().join("s.sql");
    std::fs::write(&f, "SELECT 1 AS one;\nSELECT nope;\nSELECT 2 AS two;\n").expect("write");
    let (code, stdout, stderr) = pipe("", &["-f", &f.display().to_string()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.contains("| one |") && stdout.contains("| two |"),
        "{stdout}"
    );
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(stderr.contains('^'), "{stderr}");
    // At its place in the file: line 2, column 8, under the file's own line.
    assert!(
        stderr.contains(&format!("SQL error at {}:2:8: ", f.display())),
        "{stderr}"
    );
    assert!(stderr.contains("2 | SELECT nope;"), "{stderr}");
}

/// Piped statements: an error's line and column count from the start of the input, past
/// blank lines, indentation and earlier statements on its line.
/// Every outcome line has its tag: a statement that does nothing under `IF [NOT] EXISTS`
/// says so as `[INFO]`; `\\format` names formats as `--format` spells them; a failed job's
/// error is reported once, as an `[ERROR]`.
#[test]
fn outcomes_are_tagged_and_a_failed_job_is_reported_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"a\": 1}\n{\"a\":\n").expect("bad json");
    let (code, stdout, stderr) = pipe(
        &format!(
            "\\format\n\\format csv\n\\format table\n\
             DROP TABLE IF EXISTS nope;\n\
             CREATE VIEW v AS SELECT 1 AS a;\n\
             CREATE VIEW IF NOT EXISTS v AS SELECT 2 AS a;\n\
             CREATE TABLE t (a INT) WITH ('connector' = 'blackhole');\n\
             CREATE TABLE IF NOT EXISTS t (a INT) WITH ('connector' = 'blackhole');\n\
             CREATE TABLE src (a INT) WITH ('connector' = 'filesystem', 'format' = 'json', 'path' = '{}');\n\
             SELECT a FROM src;\n",
            bad.display()
        ),
        &[],
    );
    assert_eq!(code, 1, "the failed SELECT fails the run: {stderr}");
    let said = format!("{stdout}{stderr}");
    for line in [
        "[INFO] format: table",
        "[INFO] format: csv",
        "[INFO] No 'nope' to drop: nothing done (IF EXISTS).",
        "[INFO] 'v' already exists: nothing done (IF NOT EXISTS).",
        "[INFO] Table 't' already exists: nothing done (IF NOT EXISTS).",
    ] {
        assert!(said.lines().any(|l| l == line), "{line:?} in: {said}");
    }
    assert_eq!(
        stderr.matches("malformed JSON").count(),
        1,
        "the failure once: {stderr}"
    );
    assert!(
        stderr.contains("[ERROR] malformed JSON record at"),
        "{stderr}"
    );
    // `weir run` too: its `[ERROR] Job 1 failed` and the error, once.
    let job = tmp.path().join("job.sql");
    std::fs::write(
        &job,
        format!(
            "CREATE TABLE src (a INT) WITH ('connector' = 'filesystem', 'format' = 'json', 'path' = '{}');\n\
             SELECT a FROM src;\n",
            bad.display()
        ),
    )
    .expect("job file");
    let out = weir().arg("run").arg(&job).output().expect("weir run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[ERROR] Job 1 failed"), "{stderr}");
    assert_eq!(
        stderr.matches("malformed JSON").count(),
        1,
        "the failure once: {stderr}"
    );
}

#[test]
fn piped_errors_point_at_their_line_of_the_input() {
    let (code, _, stderr) = pipe(
        "SELECT 1;\n\n  SELECT 2,\n   nope;\nSELECT 3; SELECT nope2;\n",
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("SQL error at 4:4: No field named nope."),
        "{stderr}"
    );
    assert!(
        stderr.contains("SQL error at 5:18: No field named nope2."),
        "{stderr}"
    );
    // A meta command's error too (regression: 1:4, under a line of its own).
    let (_, _, stderr) = pipe("SELECT 1;\n\n  \\d nope\n", &[]);
    assert!(
        stderr.contains("SQL error at 3:6: no table or view named 'nope'"),
        "{stderr}"
    );
    assert!(stderr.contains("3 |   \\d nope"), "{stderr}");
}

/// `\format json` over a changelog (a GROUP BY over a stream, its rows in chunks of three):
/// one JSON array over the whole run — every change, NULL keys written as `null` — that a
/// JSON reader takes, whose last value per key is the batch count; an empty result is `[]`.
#[test]
fn json_results_are_one_array_over_the_whole_run() {
    let input = format!(
        "\\format json\n{}\
         SELECT name, COUNT(*) AS c FROM src GROUP BY name;\n\
         SELECT name FROM src WHERE false;\n",
        src_table(3)
    );
    let (code, stdout, stderr) = pipe(&input, &[]);
    assert_eq!(code, 0, "{stderr}");
    let mut values = serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>();
    let changes = values.next().expect("one array").expect("valid JSON");
    let changes = changes.as_array().expect("an array");
    assert!(changes.len() > 5, "{stdout}");
    let mut last = std::collections::BTreeMap::new();
    for c in changes {
        if c["op"] != "-U" {
            last.insert(c["name"].to_string(), c["c"].as_i64().expect("count"));
        }
    }
    // JSON's text of each name: `"a"`, or `null`.
    let want: std::collections::BTreeMap<String, i64> = rows_per_name()
        .into_iter()
        .map(|(name, n)| (name.map_or("null".into(), |n| format!("\"{n}\"")), n))
        .collect();
    assert_eq!(last, want, "{stdout}");
    let empty = values.next().expect("a second array").expect("valid JSON");
    assert_eq!(empty, serde_json::json!([]));
    assert!(values.next().is_none(), "{stdout}");
}

/// Colour only where it is wanted: the shell's dimmed hint (`\? help`) is drawn with an
/// ANSI code on a terminal, and without one when `NO_COLOR` is set (https://no-color.org);
/// so is a message's `[ERROR]` tag.
#[test]
fn no_color_turns_the_colours_off() {
    let tmp = tempfile::tempdir().expect("tmp");
    for no_color in [false, true] {
        let mut t = start_with(
            &tmp.path().join("history"),
            &[("NO_COLOR", no_color.then_some("1"))],
        );
        t.want("\\q quit", "the hint");
        let seen = t.transcript();
        let dim = seen.contains("\\u{1b}[2m");
        assert_eq!(dim, !no_color, "NO_COLOR={no_color}: {seen}");
        // A message's tag is coloured too (one style: `[ERROR] …`), and plain without.
        t.line("\\stop 9");
        t.want("no job 9", "the error");
        let seen = t.transcript();
        let plain = seen.contains("[ERROR] no job 9");
        assert_eq!(plain, no_color, "NO_COLOR={no_color}: {seen}");
        t.line("\\q");
    }
}

/// Result tables stay readable: a cell is cut to `table.display.max-column-width` (Flink's,
/// default 30) with `...`; a later row wider than the columns drawn so far closes the box
/// and opens a wider one (every row line as wide as the border above it); `\x` draws each
/// row one field per line; `\x` again switches back.
#[test]
fn wide_cells_are_cut_boxes_hold_and_x_expands_rows() {
    let input = format!(
        "{}SELECT REPEAT('ab', 20) AS t FROM src LIMIT 1;\n\
         SELECT name, REPEAT('x', a_int) AS grows FROM src WHERE a_int IS NOT NULL;\n\
         \\x\n\
         SELECT name, a_int FROM src LIMIT 2;\n\
         \\x\n\
         SET 'table.display.max-column-width' = '0';\n\
         SELECT REPEAT('ab', 20) AS t FROM src LIMIT 1;\n",
        src_table(1)
    );
    let (code, stdout, stderr) = pipe(&input, &[]);
    assert_eq!(code, 0, "{stderr}");
    // Cut to 30 characters: 27 of the text, then `...`; whole once the limit is 0.
    let cut = format!("| {}... |", "ab".repeat(14).get(..27).unwrap_or_default());
    assert!(stdout.contains(&cut), "{stdout}");
    assert!(
        stdout.contains(&format!("| {} |", "ab".repeat(20))),
        "{stdout}"
    );
    // No row line breaks its box.
    let mut border = 0;
    let mut boxes = 0;
    for line in stdout.lines() {
        if line.starts_with("+-") {
            border = line.chars().count();
            boxes += 1;
        } else if line.starts_with("| ") {
            assert_eq!(line.chars().count(), border, "{line}\n{stdout}");
        }
    }
    // The growing column reopened its box at least once (3 borders per box, 4 tables).
    assert!(boxes > 12, "{stdout}");
    assert!(
        stdout.contains(
            "-[ RECORD 1 ]-\nname  | a\na_int | 1\n-[ RECORD 2 ]-\nname  | a\na_int | 2\n"
        ),
        "{stdout}"
    );
}

/// `\q` (and Ctrl-D) with a job still running stops it cleanly and says how it ended, with
/// its rows in and out; a stopped job in `\jobs` shows no lag (it would grow with the clock).
#[test]
fn quitting_stops_running_jobs_and_says_how_they_ended() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ddl = tmp.path().join("ddl.sql");
    std::fs::write(&ddl, DDL).expect("ddl");
    for quit in ["\\q", "\x04"] {
        let mut s = start(&tmp.path().join("history"));
        s.line(&format!("\\i {}", ddl.display()));
        s.want("Table 'sink' created", "the DDL ran");
        s.line("INSERT INTO sink SELECT bid.price FROM datagen WHERE event_type = 2;");
        s.want("started in the background", "a job");
        s.line("INSERT INTO sink SELECT bid.price FROM datagen WHERE event_type = 2;");
        s.want("started in the background", "a second job");
        s.line("\\stop 2");
        s.want("job 2 stopped", "stopped");
        s.line("\\jobs");
        s.want("STOPPED", "the stopped job");
        s.want("weir> ", "the prompt after \\jobs");
        if quit == "\\q" {
            s.line(quit);
        } else {
            s.send(quit);
        }
        s.want("stopping job 1", "the running job is stopped");
        s.want("job 1 stopped (", "how it ended");
        s.want("rows out): INSERT INTO sink", "its rows and query");
    }
}

/// Tab completes by position: after FROM only relations (`FROM s` is `sink`, not a type or
/// a function), after `alias.` that relation's columns (a second Tab lists them all), in
/// `DESCRIPTOR(` the time attribute.
#[test]
fn tab_completes_by_position_in_the_statement() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ddl = tmp.path().join("ddl.sql");
    std::fs::write(&ddl, DDL).expect("ddl");
    let mut s = start(&tmp.path().join("history"));
    s.line(&format!("\\i {}", ddl.display()));
    s.want("Table 'sink' created", "the DDL ran");
    s.send("DESCRIBE s\t");
    s.want("DESCRIBE sink", "FROM-like position: the relation");
    s.send("\x03");
    // The empty line's hint, not "weir> " (the line being cancelled is redrawn with the
    // prompt too, and text typed before the new line is ready is lost).
    s.want("\\q quit", "a fresh, empty line");
    s.send("SELECT * FROM datagen g WHERE g.ev\t");
    s.want("g.event_type", "the alias's column");
    s.send("\x03");
    // The empty line's hint, not "weir> " (the line being cancelled is redrawn with the
    // prompt too, and text typed before the new line is ready is lost).
    s.want("\\q quit", "a fresh, empty line");
    s.send("SELECT * FROM datagen g WHERE g.\t\t");
    s.want("event_type", "the listed columns");
    s.want("auction", "the listed columns");
    s.want("dateTime", "the listed columns");
    s.send("\x03");
    // The empty line's hint, not "weir> " (the line being cancelled is redrawn with the
    // prompt too, and text typed before the new line is ready is lost).
    s.want("\\q quit", "a fresh, empty line");
    s.send("SELECT * FROM TABLE(TUMBLE(TABLE datagen, DESCRIPTOR(d\t");
    s.want("DESCRIPTOR(dateTime", "the time attribute");
    s.send("\x03");
    s.want("\\q quit", "a fresh, empty line");
    s.send("WITH w AS (SELECT event_type AS kind FROM datagen) SELECT * FROM w WHERE ki\t");
    s.want("WHERE kind", "a WITH query's column");
    s.send("\x03");
    s.line("\\q");
}

/// Flink's result modes for a changelog (a GROUP BY over a stream, rows in chunks of
/// three): `table` shows the current result — every key once, with its batch count, no
/// `-U` row — `changelog` every change in Flink's print form, and `tableau` (the default)
/// every change as a row with its `op`.
#[test]
fn result_modes_table_changelog_and_tableau() {
    let ddl = src_table(3);
    let query = "SELECT name, COUNT(*) AS c FROM src WHERE name IS NOT NULL GROUP BY name;\n";
    let want: std::collections::BTreeMap<String, i64> = rows_per_name()
        .into_iter()
        .filter_map(|(name, n)| Some((name?, n)))
        .collect();
    let run = |mode: &str| {
        let set = if mode.is_empty() {
            String::new()
        } else {
            format!("SET 'sql-client.execution.result-mode' = '{mode}';\n")
        };
        let (code, stdout, stderr) = pipe(&format!("{ddl}{set}{query}"), &[]);
        assert_eq!(code, 0, "{stderr}");
        stdout
    };
    let table = run("table");
    let mut got = std::collections::BTreeMap::new();
    for line in table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.contains("| name"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(
            got.insert(
                cells[1].to_string(),
                cells[2].parse::<i64>().expect("count")
            )
            .is_none(),
            "a key twice: {table}"
        );
    }
    assert_eq!(got, want, "{table}");
    assert!(!table.contains("-U") && !table.contains("| op"), "{table}");
    let changelog = run("changelog");
    assert!(
        changelog.lines().any(|l| l.starts_with("-U[")),
        "{changelog}"
    );
    assert!(
        changelog
            .lines()
            .all(|l| l.starts_with('+') || l.starts_with('-')),
        "{changelog}"
    );
    let tableau = run("");
    assert!(
        tableau.contains("| op ") && tableau.contains("| -U "),
        "{tableau}"
    );
    // The table keeps at most `sql-client.execution.max-table-result.rows` rows, the
    // oldest going first, as Flink's: of ten rows inserted in order, the last three.
    let (code, stdout, stderr) = pipe(
        "SET 'sql-client.execution.result-mode' = 'table';\n\
         SET 'sql-client.execution.max-table-result.rows' = '3';\n\
         SELECT x FROM (VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10)) AS t(x);\n",
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let kept: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.contains("| x"))
        .map(|l| l.trim_matches(|c| c == '|' || c == ' '))
        .collect();
    assert_eq!(kept, ["8", "9", "10"], "{stdout}");
    let (code, _, stderr) = pipe(
        "SET 'sql-client.execution.max-table-result.rows' = '0';\n",
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr
            .contains("'sql-client.execution.max-table-result.rows': '0' is not a number of rows"),
        "{stderr}"
    );
    // A mode Flink does not have is refused with the three it has.
    let (code, _, stderr) = pipe("SET 'sql-client.execution.result-mode' = 'grid';\n", &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("table, changelog or tableau"), "{stderr}");
}

/// `s` (a shell at its prompt) with [`DDL`]'s tables made from a file in `dir`, in the `table`
/// result mode, and its terminal `size` (columns, lines) when given.
fn table_mode_shell(mut s: Term, dir: &std::path::Path, size: Option<(u16, u16)>) -> Term {
    if let Some((cols, rows)) = size {
        s.s.get_process_mut()
            .set_window_size(cols, rows)
            .expect("the terminal's size");
    }
    let ddl = dir.join("ddl.sql");
    std::fs::write(&ddl, DDL).expect("ddl");
    s.line(&format!("\\i {}", ddl.display()));
    s.want("Table 'sink' created", "the DDL ran");
    s.line("SET 'sql-client.execution.result-mode' = 'table';");
    s.want("Execute statement succeeded", "SET done");
    s
}

/// In the `table` result mode on a terminal, an updating result is redrawn in place (the
/// cursor goes back up over the last drawing and clears it) instead of scrolling a row per
/// change; Ctrl-C still cancels it.
#[test]
fn table_mode_redraws_the_result_in_place() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = table_mode_shell(start(&tmp.path().join("history")), tmp.path(), None);
    s.line("SELECT event_type, COUNT(*) AS n FROM datagen GROUP BY event_type;");
    s.want("| event_type |", "the result's header");
    s.want("A\r\x1b[J", "a redraw over the last drawing");
    s.want("| event_type |", "the header drawn again");
    s.send("\x03");
    s.want("query cancelled", "cancelled");
    s.line("\\q");
}

/// A `table` result taller than the terminal is paged, with Flink's table-view keys: it
/// starts on the last page and follows it, `P` goes back a page, `G` and a number to that
/// page, `L` to the last again, and `Q` quits (cancels) the query; the terminal then reads
/// lines as before.
#[test]
fn table_mode_pages_a_tall_result_by_keys() {
    let tmp = tempfile::tempdir().expect("tmp");
    // 24 lines: 18 rows a page, so the 40 groups below take three pages.
    let mut s = table_mode_shell(
        start(&tmp.path().join("history")),
        tmp.path(),
        Some((80, 24)),
    );
    s.line("SELECT MOD(bid.price, 40) AS k, COUNT(*) AS n FROM datagen WHERE event_type = 2 GROUP BY MOD(bid.price, 40);");
    s.want("| k  | n", "the result's header");
    s.want(
        "page 3 of 3 (last) · N next · P previous · L last · G go to · Q quit",
        "the last page, and the keys",
    );
    s.send("p");
    s.want("page 2 of 3 · N next", "a page back");
    s.send("g");
    s.want("go to page: _", "G asks for a page");
    s.send("1\r");
    s.want("page 1 of 3 · N next", "page 1");
    s.send("n");
    s.want("page 2 of 3 · N next", "the next page");
    s.send("l");
    s.want("page 3 of 3 (last) · N next", "the last page again");
    s.send("q");
    s.want("query cancelled", "Q cancels the query");
    s.want("weir> ", "the prompt again");
    s.line("SELECT 40 + 2 AS answer;");
    s.want("| 42", "a line read and run as before");
    s.line("\\q");
}

/// Page keys pressed fast while the result keeps changing never stop the shell: the sink
/// drawing a batch and a key's redraw take the view and the terminal in one order (in the
/// other, a key pressed while a batch was drawn deadlocked the shell, as a CI run found).
#[test]
fn page_keys_pressed_while_the_result_changes_never_hang_the_shell() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = table_mode_shell(
        start(&tmp.path().join("history")),
        tmp.path(),
        Some((80, 24)),
    );
    s.line("SELECT MOD(bid.price, 40) AS k, COUNT(*) AS n FROM datagen WHERE event_type = 2 GROUP BY MOD(bid.price, 40);");
    s.want("page 3 of 3 (last) · N next", "the last page, and the keys");
    for _ in 0..150 {
        s.send("p");
        std::thread::sleep(Duration::from_millis(3));
        s.send("n");
        std::thread::sleep(Duration::from_millis(3));
    }
    s.send("g");
    s.want("go to page: _", "G still asks for a page");
    s.send("2\r");
    s.want("page 2 of 3 · N next", "page 2");
    s.send("q");
    s.want("query cancelled", "Q cancels the query");
    s.line("SELECT 40 + 2 AS answer;");
    s.want("| 42", "a line read and run as before");
    s.line("\\q");
}

/// A statement's table wider than the terminal (`SET;` with a long value) has its widest
/// cells wrapped onto more lines, so no line is wider than the terminal and nothing is cut.
#[test]
fn a_table_wider_than_the_terminal_is_wrapped_to_fit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = start(&tmp.path().join("history"));
    s.s.get_process_mut()
        .set_window_size(80, 60)
        .expect("the terminal's size");
    let dir = "/tmp/a-checkpoint-directory/with-a-rather-long-name/0123456789/abcdefghij";
    s.line(&format!("SET 'state.checkpoints.dir' = '{dir}';"));
    s.want("Execute statement succeeded", "SET done");
    s.line("SET;");
    s.want("table.optimizer.reuse-sub-plan-enabled", "the last setting");
    s.want("weir> ", "the prompt again");
    // What the shell printed after `SET;`: the log's `read: "…"` entries, unescaped.
    let seen = printed(&s);
    let after = seen.rsplit("SET;").next().unwrap_or_default();
    let table: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with('|') || l.starts_with('+'))
        .collect();
    assert!(table.len() > 20, "the settings: {seen}");
    for l in &table {
        assert!(
            l.chars().count() <= 80,
            "a line wider than 80 columns: {l:?}"
        );
    }
    // The whole value is there, in pieces.
    let cells: String = table
        .iter()
        .filter_map(|l| l.split('|').nth(2))
        .map(str::trim)
        .collect();
    assert!(cells.contains(dir), "the value, whole: {cells}");
    s.line("\\q");
}

/// Output taller than the terminal goes through `$PAGER` (here one that marks its lines),
/// shorter output straight to the screen.
#[test]
fn long_output_goes_through_the_pager() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut t = start_with(
        &tmp.path().join("history"),
        &[("PAGER", Some("sed s/^/PAGED:/"))],
    );
    t.want("\\q quit", "the prompt");
    t.line("SHOW FUNCTIONS;");
    t.want("PAGED:| function name", "the functions through the pager");
    t.want("PAGED:| CONVERT_TZ", "the list");
    t.want("\\q quit", "the prompt again");
    t.line("SET 'a.b' = 'c';");
    t.want("not a setting", "SET done");
    t.line("SHOW TABLES;");
    t.want("| name", "a short table");
    t.want("\\q quit", "the prompt again");
    let seen = t.transcript();
    let after = seen.rsplit("SHOW TABLES").next().unwrap_or_default();
    assert!(
        !after.contains("PAGED:"),
        "a short table was paged: {after}"
    );
    t.line("\\q");
}

/// Flink's SQL-client statement set, a statement at a time: `BEGIN STATEMENT SET;` opens
/// it, each INSERT is collected (anything else is refused and the set stays open), and
/// `END;` runs them as one job.
#[test]
fn a_statement_set_typed_a_statement_at_a_time_runs_as_one_job() {
    let (code, stdout, stderr) = pipe(
        "CREATE TABLE t (v BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3',\n\
           'fields.v.kind' = 'sequence', 'fields.v.start' = '1', 'fields.v.end' = '3');\n\
         CREATE TABLE a (v BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'a');\n\
         CREATE TABLE b (v BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'b');\n\
         BEGIN STATEMENT SET;\n\
         INSERT INTO a SELECT v FROM t;\n\
         SELECT 1;\n\
         INSERT INTO b\n  SELECT v * 10 FROM t;\n\
         END;\n",
        &[],
    );
    assert_eq!(code, 1, "the refused SELECT fails the piped run: {stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "a> +I[1]",
            "a> +I[2]",
            "a> +I[3]",
            "b> +I[10]",
            "b> +I[20]",
            "b> +I[30]"
        ],
        "{stderr}"
    );
    assert!(stderr.contains("[INFO] Begin a statement set."), "{stderr}");
    assert_eq!(
        stderr
            .matches("[INFO] Add SQL update statement to the statement set.")
            .count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("a statement set holds only INSERT statements"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Job 1 started") && !stderr.contains("Job 2"),
        "{stderr}"
    );
}

/// On a terminal a bounded query's table shows its first 40 rows, as datafusion-cli's,
/// and the footer counts them all; `\maxrows 0` shows every row.
#[test]
fn a_bounded_result_shows_its_first_40_rows_on_a_terminal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let csv = tmp.path().join("rows.csv");
    let rows: String = (0..100).map(|i| format!("{i}\n")).collect();
    std::fs::write(&csv, rows).expect("write");
    let ddl = tmp.path().join("ddl.sql");
    std::fs::write(
        &ddl,
        format!(
            "CREATE TABLE r (v INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');",
            csv.display()
        ),
    )
    .expect("ddl");
    let mut t = start(&tmp.path().join("history"));
    t.line(&format!("\\i {}", ddl.display()));
    t.want("Table 'r' created", "the table");
    t.line("SELECT v FROM r;");
    t.want("| 39 |", "the 40th row");
    t.want("100 row(s)", "the count of all rows");
    t.want(
        "(the first 40 shown; \\maxrows 0 shows all)",
        "what was cut",
    );
    let seen = t.transcript();
    assert!(!seen.contains("| 40 |"), "a 41st row was drawn: {seen}");
    t.want("weir> ", "the prompt");
    t.line("\\maxrows 0");
    t.want("maxrows: all rows shown", "the limit lifted");
    t.line("SELECT v FROM r WHERE v > 90;");
    t.want("| 99 |", "the last row");
    t.want("9 row(s)", "the count");
    t.line("\\q");
}

/// What the terminal showed so far: the transcript's `read: "…"` entries joined and
/// unescaped (carriage returns dropped).
fn printed(t: &Term) -> String {
    t.transcript()
        .lines()
        .filter_map(|l| l.strip_prefix("read: \"")?.strip_suffix('"'))
        .collect::<String>()
        .replace("\\r", "")
        .replace("\\n", "\n")
        .replace("\\\"", "\"")
        .replace("\\\\", "\\")
}

/// The status lines a `table` result drew (`page 2 of 3 · N next …`), in order.
fn status_lines(t: &Term) -> Vec<String> {
    printed(t)
        .lines()
        .filter(|l| l.starts_with("page "))
        .map(str::to_string)
        .collect()
}

/// A `table` result whose query fails (a division by zero at its 50th row) is drawn one last
/// time without the page keys, which turn it no more, and the error follows it.
#[test]
fn a_failed_table_result_is_left_without_its_keys() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = table_mode_shell(
        start(&tmp.path().join("history")),
        tmp.path(),
        Some((80, 24)),
    );
    s.line(
        "CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '100', \
         'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000');",
    );
    s.want("Table 'g' created", "the table");
    s.line("SELECT id, 100 / (id - 50) AS q FROM g;");
    s.want("N next · P previous", "the keys while it runs");
    s.want("Divide by zero", "the query's error");
    s.want("weir> ", "the prompt again");
    let status = status_lines(&s);
    // Up to 49 rows (those of the batches before the one that failed), 18 a page: the
    // last drawing names its page and no keys.
    let last = status.last().map(String::as_str).unwrap_or_default();
    assert!(
        last.ends_with("(last)") && !last.contains('·'),
        "{status:?}"
    );
    assert!(status.iter().any(|l| l.contains("N next")), "{status:?}");
    s.line("\\q");
}

/// A shell ended by SIGTERM while a `table` result reads its page keys (the terminal without
/// echo and line editing) gives the terminal back the mode it had, and exits with 143 as the
/// signal would: `stty -a` run in the same terminal before and after it lists the same modes.
#[test]
fn a_terminated_shell_gives_the_terminal_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "stty -a; echo 'modes above'; \"$0\"; echo \"weir exited: $?\"; stty -a; echo 'modes above'",
        env!("CARGO_BIN_EXE_weir"),
    ])
    .env("WEIR_HISTORY", tmp.path().join("history"))
    .env("TERM", "xterm")
    .env("PAGER", "cat");
    let mut s = spawn(cmd);
    s.want("weir> ", "a prompt");
    let mut s = table_mode_shell(s, tmp.path(), None);
    s.line("SELECT event_type, COUNT(*) AS n FROM datagen GROUP BY event_type;");
    s.want("N next · P previous", "the page keys are read");
    let sh = s.s.get_process().pid().to_string();
    let children = Command::new("pgrep")
        .args(["-P", &sh])
        .output()
        .expect("pgrep");
    let weir_pid = String::from_utf8_lossy(&children.stdout).trim().to_string();
    assert!(!weir_pid.is_empty(), "the shell's process under sh {sh}");
    let killed = Command::new("kill")
        .args(["-TERM", &weir_pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    s.want("weir exited: 143", "the exit status of a SIGTERM");
    s.want("modes above", "stty's listing after");
    // The local modes (`isig icanon iexten echo …`) and the input modes, before and after.
    let text = printed(&s);
    let listings: Vec<Vec<&str>> = text
        .split("modes above")
        .take(2)
        .map(|l| {
            l.lines()
                .filter(|l| l.contains("icanon") || l.contains("icrnl") || l.contains("echoctl"))
                .collect()
        })
        .collect();
    assert_eq!(listings.len(), 2, "{text}");
    assert!(!listings[0].is_empty(), "{text}");
    assert_eq!(listings[0], listings[1], "the modes changed: {text}");
}
