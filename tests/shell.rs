//! The interactive shell in a real pseudo-terminal: a multi-line windowed query over the
//! Nexmark generator streams window rows, Ctrl-C cancels it and the shell stays up, a
//! background INSERT shows in `\jobs` and stops with `\stop`, an archive query answers, `\q`
//! quits, and a second start finds the history. Plus the non-interactive forms (a pipe and
//! `-f`), snapshotted.

use std::process::Command;
use std::time::Duration;

use expectrl::process::Healthcheck;
use expectrl::session::OsSession;
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

fn start(history: &std::path::Path) -> OsSession {
    let mut cmd = weir();
    cmd.env("WEIR_HISTORY", history).env("TERM", "xterm");
    let mut s = Session::spawn(cmd).expect("weir starts in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s.expect("weir> ").expect("a prompt");
    s
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
    s.send_line(format!("\\i {}", ddl.display())).expect("send");
    s.expect("Table 'sink' created").expect("the DDL ran");

    // Tab completes a table name.
    s.send("DESCRIBE datag\t").expect("tab");
    s.send_line(";").expect("send");
    s.expect("event_type").expect("DESCRIBE datagen ran");

    // A windowed query typed over three lines streams its windows as they close.
    s.send_line("SELECT window_start, COUNT(*) AS n")
        .expect("send");
    s.send_line("FROM TABLE(TUMBLE(TABLE datagen, DESCRIPTOR(dateTime), INTERVAL '1' SECOND))")
        .expect("send");
    s.send_line("GROUP BY window_start, window_end;")
        .expect("send");
    s.expect("2026-01-01T00:00:01").expect("a window row");
    s.expect("| 1000")
        .expect("a full window: 1000 events a second");
    // Ctrl-C cancels the query, not the shell.
    s.send("\x03").expect("ctrl-c");
    s.expect("query cancelled").expect("cancelled");
    s.expect("weir> ").expect("the prompt again");

    // A background job, listed and stopped.
    s.send_line("INSERT INTO sink SELECT bid.price FROM datagen WHERE event_type = 2;")
        .expect("send");
    s.expect("started in the background").expect("a job");
    s.send_line("\\jobs").expect("send");
    s.expect("RUNNING").expect("listed as running");
    s.send_line("\\stop 2").expect("send");
    s.expect("job 2 stopped").expect("stopped");
    s.send_line("SHOW JOBS;").expect("send");
    s.expect("STOPPED").expect("stopped");

    // An archive query, in batch.
    s.send_line(format!(
        "SELECT SUM(a) AS total FROM '{}';",
        archive.display()
    ))
    .expect("send");
    s.expect("43").expect("the sum");

    // Errors show the caret and the shell goes on.
    s.send_line("SELECT nope FROM datagen;").expect("send");
    s.expect("^").expect("a caret");
    s.expect("weir> ").expect("the prompt again");

    s.send_line("\\q").expect("send");
    for _ in 0..100 {
        if !s.is_alive().unwrap_or(false) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!s.is_alive().unwrap_or(true), "\\q ends the shell");

    // A new start has the history: Ctrl-R finds the archive query.
    let mut s = start(&history);
    s.send("\x12").expect("ctrl-r");
    s.send("SUM(a)").expect("search");
    s.expect("total FROM").expect("found in the history");
    s.send("\x03").expect("ctrl-c");
    s.send_line("\\q").expect("send");
    let text = std::fs::read_to_string(&history).expect("history file");
    assert!(
        text.contains("GROUP BY window_start, window_end;"),
        "{text}"
    );
}

fn pipe(input: &str, args: &[&str]) -> (i32, String, String) {
    use std::io::Write;
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
}
