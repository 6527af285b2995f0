//! The `weir` binary as a user runs it: example queries, exit codes, error rendering,
//! stdin, files written by the filesystem sink, and a clean stop on SIGTERM.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// `weir ARGS` with `COLUMNS=80` (the width the end-of-run summary fits when stderr is not a
/// terminal), ending with 0: its stdout and stderr.
fn run_at_80(args: &[&str]) -> (String, String) {
    let out = weir()
        .env("COLUMNS", "80")
        .args(args)
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
}

/// Writes `sql` to a file `name` in a new temporary directory (kept while the guard lives).
fn script(name: &str, sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join(name);
    std::fs::write(&f, sql).expect("write");
    (dir, f)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = weir().args(args).output().expect("weir runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `weir run <script>` with `input` on its stdin: exit code, stdout, stderr.
fn run_with_stdin(script: &std::path::Path, input: &[u8]) -> (i32, String, String) {
    let mut child = weir()
        .args(["run", &script.display().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn every_example_query_runs_bounded() {
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/queries"))
        .expect("queries/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let path = f.display().to_string();
        let (code, stdout, stderr) = run(&["run", &path, "--set", "events.num=1000"]);
        assert_eq!(code, 0, "{path}: {stderr}");
        assert!(stderr.contains("finished"), "{path}: {stderr}");
        assert!(!stdout.is_empty(), "{path} printed nothing");
    }
}

#[test]
fn passthrough_prints_every_bid_in_flinks_form() {
    let (code, stdout, stderr) = run(&[
        "run",
        "queries/nexmark_passthrough.sql",
        "--set",
        "events.num=1000",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    // 46 of every 50 events are bids.
    assert_eq!(lines.len(), 920);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("q0> +I[") && l.ends_with(']'))
    );
    assert!(stderr.contains("Source: datagen"), "{stderr}");
}

#[test]
fn bad_sql_exits_2_with_a_caret() {
    let (dir, f) = script(
        "bad.sql",
        "CREATE TABLE t (a BIGINT) WITH ('connector' = 'datagen');\nSELECT a, b FROM t;\n",
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2);
    let err = stderr
        .lines()
        .skip_while(|l| !l.starts_with("[ERROR] SQL error"))
        .collect::<Vec<_>>()
        .join("\n");
    let err = err.replace(&dir.path().display().to_string(), "DIR");
    insta::assert_snapshot!(err, @r"
    [ERROR] SQL error at DIR/bad.sql:2:11: No field named b.
    Valid fields are t.a.
      |
    2 | SELECT a, b FROM t;
      |           ^
    ");
}

/// A generator's bad option value is reported at its CREATE TABLE, in the DDL's own file.
/// Regression: it was found when the query in the next file planned, and reported at the
/// DDL's line and column in the query's file.
#[test]
fn a_bad_option_value_points_at_its_create_table_file() {
    let (dir, ddl) = script(
        "ddl.sql",
        "CREATE TABLE a1 (x INT)\n  WITH ('connector' = 'datagen', 'rows-per-second' = 'x');\n",
    );
    let query = dir.path().join("use.sql");
    std::fs::write(&query, "SELECT * FROM a1;\n").expect("write");
    let (code, stdout, stderr) = run(&[
        "run",
        &ddl.display().to_string(),
        &query.display().to_string(),
    ]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "a query ran: {stdout}");
    assert!(
        stderr.contains("ddl.sql:2:34: option 'rows-per-second' = 'x' is not a valid u64"),
        "{stderr}"
    );
    assert!(!stderr.contains("use.sql"), "{stderr}");
}

#[test]
fn a_syntax_error_starts_nothing() {
    let (_dir, f) = script(
        "bad.sql",
        "CREATE TABLE t WITH ('connector' = 'nexmark');\nSELECT * FROM t;\nSELEC 1;\n",
    );
    let (code, stdout, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "a query ran: {stdout}");
    assert!(
        stderr.contains("bad.sql:3:1: unexpected 'SELEC'"),
        "{stderr}"
    );
}

#[test]
fn malformed_record_fails_with_file_and_line() {
    let (_dir, f) = script(
        "q.sql",
        "CREATE TABLE bad (user_id BIGINT, url STRING) WITH ('connector' = 'filesystem', \
         'path' = 'tests/data/bad_clicks.json', 'format' = 'json');\nSELECT * FROM bad;",
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("malformed JSON record at tests/data/bad_clicks.json:3"),
        "{stderr}"
    );
    assert!(stderr.contains("json.ignore-parse-errors"), "{stderr}");
}

#[test]
fn stdin_source_reads_a_pipe() {
    let (_dir, f) = script(
        "q.sql",
        "CREATE TABLE input (name STRING, n INT) WITH ('connector' = 'stdin', 'format' = 'csv');\n\
         CREATE TABLE out (name STRING, doubled INT) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT upper(name), n * 2 FROM input WHERE n > 1;",
    );
    let (code, stdout, stderr) = run_with_stdin(&f, b"a,1\nb,2\nc,3\n");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "+I[B, 4]\n+I[C, 6]\n");
}

/// A TIMESTAMP_LTZ is shown in a table as the session zone's wall clock, and a timestamp
/// as a CAST to STRING writes it, as Flink's sql-client shows them; CSV keeps the instant,
/// for programs.
#[test]
fn a_timestamp_ltz_is_shown_in_the_session_zone() {
    let (_dir, f) = script(
        "q.sql",
        "SET 'table.local-time-zone' = 'Asia/Shanghai';\n\
         SELECT TO_TIMESTAMP_LTZ(0, 3) AS l, CAST(TO_TIMESTAMP_LTZ(0, 3) AS TIMESTAMP(3)) AS t;\n\
         SELECT ARRAY[TO_TIMESTAMP_LTZ(0, 3)] AS a, MAP['k', TO_TIMESTAMP_LTZ(0, 3)] AS m;",
    );
    let (code, stdout, stderr) = run(&["run", "-q", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("| 1970-01-01 08:00:00.000 | 1970-01-01 08:00:00.000 |"),
        "{stdout}"
    );
    // Nested in an ARRAY or a MAP too (regression: those showed the UTC instant), as
    // Flink's CAST to STRING writes them (its sql-client's form).
    assert!(
        stdout.contains("| [1970-01-01 08:00:00.000] | {k=1970-01-01 08:00:00.000} |"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&["run", "-q", "--format", "csv", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("l,t\n1970-01-01T00:00:00Z,1970-01-01T08:00:00\n"),
        "{stdout}"
    );
}

/// A table read twice in one job is read once, by one source whose rows both reads get
/// (Flink's `table.optimizer.reuse-source-enabled`, default true): every line of stdin
/// reaches both sides of the UNION ALL. With reuse off, each read has its own source, and
/// two readers of one pipe share its lines between them.
#[test]
fn a_table_read_twice_is_read_by_one_source() {
    let query = "CREATE TABLE s (x INT) WITH ('connector' = 'stdin', 'format' = 'csv');\n\
                 CREATE TABLE out (x INT) WITH ('connector' = 'print');\n\
                 INSERT INTO out SELECT x FROM s UNION ALL SELECT x * 10 FROM s;";
    let input: String = (1..=500).map(|i| format!("{i}\n")).collect();
    let rows = |stdout: &str| {
        let mut v: Vec<i64> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("+I[")?.strip_suffix(']')?.parse().ok())
            .collect();
        v.sort();
        v
    };
    let (_dir, f) = script("q.sql", query);
    let (code, stdout, stderr) = run_with_stdin(&f, input.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    let mut expected: Vec<i64> = (1..=500).chain((1..=500).map(|i| i * 10)).collect();
    expected.sort();
    assert_eq!(rows(&stdout), expected);

    let (_dir, f) = script(
        "q.sql",
        &format!("SET 'table.optimizer.reuse-source-enabled' = 'false';\n{query}"),
    );
    let (code, stdout, stderr) = run_with_stdin(&f, input.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        rows(&stdout).len(),
        500,
        "each line read by one of the two sources"
    );

    let (_dir, f) = script(
        "q.sql",
        &format!("SET 'table.optimizer.reuse-source-enabled' = 'yes';\n{query}"),
    );
    let (code, _, stderr) = run_with_stdin(&f, input.as_bytes());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("'table.optimizer.reuse-source-enabled' is 'true' or 'false', not 'yes'"),
        "{stderr}"
    );
}

/// Bad records on stdin — invalid UTF-8 among them (it failed the whole job before) — go
/// to the dead-letter table, numbered from the first line, and the good rows go on; a BOM
/// before the first record is skipped.
#[test]
fn stdin_bad_records_go_to_the_dead_letter_table() {
    let (_dir, f) = script(
        "q.sql",
        "CREATE TABLE input (id BIGINT, v STRING) WITH ('connector' = 'stdin', 'format' = 'json', \
           'dead-letter.sink' = 'bad');\n\
         CREATE TABLE bad (source STRING, raw BYTES) WITH ('connector' = 'print', 'print-identifier' = 'bad');\n\
         CREATE TABLE out (id BIGINT, v STRING) WITH ('connector' = 'print', 'print-identifier' = 'out');\n\
         INSERT INTO out SELECT id, v FROM input;",
    );
    let (code, stdout, stderr) = run_with_stdin(
        &f,
        b"\xEF\xBB\xBF{\"id\":1,\"v\":\"a\"}\n\xff\xfe\n{\"id\":2,\n{\"id\":3,\"v\":\"c\"}\n",
    );
    assert_eq!(code, 0, "{stderr}");
    let mut lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "bad> +I[stdin:2, fffe]",
            "bad> +I[stdin:3, 7b226964223a322c]",
            "out> +I[1, a]",
            "out> +I[3, c]"
        ],
        "{stderr}"
    );
    assert!(stderr.contains("bad records skipped: 2"), "{stderr}");
}

/// Read twice (one source for both reads), a table's bad records reach its dead-letter
/// table once, even when the read that carries them ends early (a LIMIT): they go on
/// through the other read.
#[test]
fn a_shared_source_sends_each_dead_letter_once() {
    let (_dir, f) = script(
        "q.sql",
        "CREATE TABLE input (id BIGINT) WITH ('connector' = 'stdin', 'format' = 'json', \
           'dead-letter.sink' = 'bad');\n\
         CREATE TABLE bad (source STRING) WITH ('connector' = 'print', 'print-identifier' = 'bad');\n\
         CREATE TABLE out (id BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'out');\n\
         INSERT INTO out SELECT id FROM (SELECT id FROM input LIMIT 1) UNION ALL SELECT id * 10 FROM input;",
    );
    let mut input = String::new();
    for i in 1..=3000 {
        input.push_str(&format!("{{\"id\":{i}}}\n"));
        if i % 1000 == 0 {
            input.push_str("{oops\n");
        }
    }
    let (code, stdout, stderr) = run_with_stdin(&f, input.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    let bad: Vec<&str> = stdout.lines().filter(|l| l.starts_with("bad>")).collect();
    assert_eq!(
        bad,
        [
            "bad> +I[stdin:1001]",
            "bad> +I[stdin:2002]",
            "bad> +I[stdin:3003]"
        ],
        "{stderr}"
    );
    let out = stdout.lines().filter(|l| l.starts_with("out>")).count();
    assert_eq!(
        out, 3001,
        "one row through the LIMIT, all 3000 through the other read"
    );
}

/// `'dead-letter.sink'` is refused where no record can be bad, and when empty.
#[test]
fn a_dead_letter_sink_on_a_source_that_decodes_nothing_is_refused() {
    let (_dir, f) = script(
        "q.sql",
        "CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'dead-letter.sink' = 'bad');",
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("works with sources that decode JSON or CSV")
            && stderr.contains("connector 'datagen'"),
        "{stderr}"
    );
    let (_dir, f) = script(
        "q.sql",
        "CREATE TABLE s (id BIGINT) WITH ('connector' = 'stdin', 'format' = 'json', 'dead-letter.sink' = '');",
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("'dead-letter.sink' is empty"), "{stderr}");
}

/// An event-time temporal join with an `upsert-kafka` versioned table (Flink's usual
/// one): EXPLAIN shows the join the query runs — the versions through ChangelogNormalize —
/// (regression: EXPLAIN showed a regular join), planned without a broker.
#[test]
fn explain_shows_an_event_time_temporal_join_over_an_upsert_kafka_table() {
    let dir = tempfile::tempdir().expect("tmp");
    let orders = dir.path().join("orders.csv");
    std::fs::write(&orders, "o1,EUR,2020-04-15 12:00:00\n").expect("csv");
    let sql = format!(
        "CREATE TABLE rates (currency STRING, rate DECIMAL(10, 4), update_time TIMESTAMP(3), \
         WATERMARK FOR update_time AS update_time - INTERVAL '15' SECOND, \
         PRIMARY KEY (currency) NOT ENFORCED) WITH ('connector' = 'upsert-kafka', 'topic' = 'rates', \
         'properties.bootstrap.servers' = '127.0.0.1:9', 'key.format' = 'json', 'value.format' = 'json');\n\
         CREATE TABLE orders (id STRING, currency STRING, order_time TIMESTAMP(3), \
         WATERMARK FOR order_time AS order_time - INTERVAL '15' SECOND) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         EXPLAIN SELECT o.id, r.rate FROM orders AS o \
         LEFT JOIN rates FOR SYSTEM_TIME AS OF o.order_time AS r ON o.currency = r.currency;",
        orders.display()
    );
    let f = dir.path().join("q.sql");
    std::fs::write(&f, sql).expect("write");
    let (code, stdout, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let join = stdout.find("temporal join left (event time)");
    let normalize = stdout.find("ChangelogNormalize(key=[currency])");
    assert!(join.is_some() && join < normalize, "{stdout}");
    assert!(!stdout.contains("regular"), "{stdout}");
}

/// Read, an `upsert-kafka` table is a changelog: its upserts and tombstones pass Flink's
/// ChangelogNormalize, keyed by the primary key, before anything else (planning connects
/// to no broker); a SELECT of it into an append-only table is refused as an updating one.
#[test]
fn an_upsert_kafka_table_is_read_through_changelog_normalize() {
    let ddl = "CREATE TABLE u (c BIGINT, n BIGINT, PRIMARY KEY (c) NOT ENFORCED) WITH (\
        'connector' = 'upsert-kafka', 'topic' = 'counts', \
        'properties.bootstrap.servers' = '127.0.0.1:9', 'key.format' = 'json', \
        'value.format' = 'json');\n";
    let (_dir, f) = script(
        "q.sql",
        &format!("{ddl}EXPLAIN SELECT c, n FROM u WHERE n > 1;"),
    );
    let (code, stdout, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let normalize = stdout.find("ChangelogNormalize(key=[c])");
    let source = stdout.find("Source: u (connector 'upsert-kafka')");
    let filter = stdout.find("filter");
    assert!(
        filter < normalize && normalize < source && filter.is_some(),
        "{stdout}"
    );
    let (_dir, f) = script(
        "q.sql",
        &format!(
            "{ddl}CREATE TABLE out (c BIGINT, n BIGINT) WITH ('connector' = 'filesystem', \
               'path' = '/tmp/never', 'format' = 'csv');\nINSERT INTO out SELECT c, n FROM u;"
        ),
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("takes appended rows only"), "{stderr}");
}

/// `EXPLAIN CHANGELOG_MODE` ends each node's line with the row kinds its output may hold,
/// in Flink's spelling (`changelogMode=[I,UB,UA]`): a source and a filter append; an
/// aggregate of appended rows inserts and updates, of an upsert table's rows (through
/// ChangelogNormalize, all kinds) deletes too; a Top-N without its rank enters and leaves
/// (`[I,D]`); an outer join takes padded rows back (`[I,D]`). Other explain details are
/// refused by name.
#[test]
fn explain_changelog_mode_shows_each_nodes_row_kinds() {
    let ddl = "CREATE TABLE orders (order_id INT, customer STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3)) \
        WITH ('connector' = 'filesystem', 'path' = 'tests/data/orders.csv', 'format' = 'csv', 'csv.header' = 'true');\n\
        CREATE TABLE u (c BIGINT, n BIGINT, PRIMARY KEY (c) NOT ENFORCED) WITH (\
        'connector' = 'upsert-kafka', 'topic' = 'counts', \
        'properties.bootstrap.servers' = '127.0.0.1:9', 'key.format' = 'json', \
        'value.format' = 'json');\n";
    let explain = |q: &str| {
        let (_dir, f) = script("q.sql", &format!("{ddl}{q}"));
        let (code, stdout, stderr) = run(&["run", &f.display().to_string()]);
        assert_eq!(code, 0, "{q}: {stderr}");
        stdout
    };
    let line = |out: &str, what: &str| -> String {
        out.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what} in {out}"))
            .trim_matches(|c: char| c == '|' || c.is_whitespace())
            .to_string()
    };
    // The plan's first line: its top node.
    let top = |out: &str| line(out, "changelogMode");
    let out = explain(
        "EXPLAIN CHANGELOG_MODE SELECT customer, COUNT(*) FROM orders WHERE amount > 1 GROUP BY customer;",
    );
    assert!(
        line(&out, "Source: orders").ends_with("changelogMode=[I]"),
        "{out}"
    );
    assert!(line(&out, "filter").ends_with("changelogMode=[I]"), "{out}");
    assert!(
        line(&out, "aggregate").ends_with("changelogMode=[I,UB,UA]"),
        "{out}"
    );
    let out = explain("EXPLAIN CHANGELOG_MODE SELECT n, COUNT(*) FROM u GROUP BY n;");
    assert!(
        line(&out, "Source: u").ends_with("changelogMode=[UA,D]"),
        "{out}"
    );
    assert!(
        line(&out, "ChangelogNormalize").ends_with("changelogMode=[I,UB,UA,D]"),
        "{out}"
    );
    assert!(
        line(&out, "aggregate").ends_with("changelogMode=[I,UB,UA,D]"),
        "{out}"
    );
    let out = explain(
        "EXPLAIN CHANGELOG_MODE SELECT customer, amount FROM (SELECT *, ROW_NUMBER() OVER \
         (PARTITION BY customer ORDER BY amount DESC) AS rn FROM orders) WHERE rn <= 2;",
    );
    assert!(top(&out).ends_with("changelogMode=[I,D]"), "{out}");
    let out = explain(
        "EXPLAIN CHANGELOG_MODE SELECT a.order_id, b.order_id FROM orders AS a LEFT JOIN orders AS b ON a.customer = b.customer AND b.amount > 100;",
    );
    assert!(top(&out).ends_with("changelogMode=[I,D]"), "{out}");
    // Without the detail, no modes.
    let out = explain("EXPLAIN SELECT customer FROM orders;");
    assert!(!out.contains("changelogMode"), "{out}");
    // Deduplication keeping the first row by processing time appends (Flink's
    // ProcTimeDeduplicateKeepFirstRowFunction); a Top-N selecting its rank updates ranks.
    let out = explain(
        "EXPLAIN CHANGELOG_MODE SELECT customer, amount FROM (SELECT *, ROW_NUMBER() OVER \
         (PARTITION BY customer ORDER BY pt) AS rn FROM (SELECT *, PROCTIME() AS pt FROM orders)) WHERE rn = 1;",
    );
    assert!(top(&out).ends_with("changelogMode=[I]"), "{out}");
    let out = explain(
        "EXPLAIN CHANGELOG_MODE SELECT customer, amount, rn FROM (SELECT *, ROW_NUMBER() OVER \
         (PARTITION BY customer ORDER BY amount DESC) AS rn FROM orders) WHERE rn <= 2;",
    );
    assert!(top(&out).ends_with("changelogMode=[I,UB,UA]"), "{out}");
    // A statement set takes the detail too.
    let out = explain(
        "CREATE TABLE s (customer STRING) WITH ('connector' = 'blackhole');\n\
         EXPLAIN CHANGELOG_MODE STATEMENT SET BEGIN INSERT INTO s SELECT customer FROM orders; END;",
    );
    assert!(
        line(&out, "Source: orders").ends_with("changelogMode=[I]"),
        "{out}"
    );
    assert!(
        line(&out, "statement 1").ends_with("INSERT INTO s, changelogMode=[I]"),
        "{out}"
    );
    // An INSERT's tree is headed by its sink, whose mode is Flink's `[NONE]` (it sends no
    // rows on); the query's nodes hang under it.
    let out = explain(
        "CREATE TABLE s (customer STRING, n BIGINT) WITH ('connector' = 'blackhole');\n\
         EXPLAIN CHANGELOG_MODE INSERT INTO s SELECT customer, COUNT(*) FROM orders GROUP BY customer;",
    );
    assert_eq!(
        top(&out),
        "Sink: s (connector 'blackhole'), changelogMode=[NONE]",
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("|   ") && l.contains("aggregate")),
        "{out}"
    );
    let out = explain(
        "CREATE TABLE s (customer STRING) WITH ('connector' = 'blackhole');\n\
         EXPLAIN INSERT INTO s SELECT customer FROM orders;",
    );
    assert_eq!(
        line(&out, "Sink"),
        "Sink: s (connector 'blackhole')",
        "{out}"
    );
    for (q, error) in [
        (
            "EXPLAIN CHANGELOG_MODE, ESTIMATED_COST SELECT customer FROM orders;",
            "EXPLAIN ESTIMATED_COST is not supported",
        ),
        (
            "EXPLAIN CHANGELOG_MODE, SELECT customer FROM orders;",
            "expected an explain detail after ','",
        ),
        (
            "EXPLAIN CHANGELOG_MODE, CHANGELOG_MODE SELECT customer FROM orders;",
            "EXPLAIN CHANGELOG_MODE is given twice",
        ),
    ] {
        let (_dir, f) = script("q.sql", &format!("{ddl}{q}"));
        let (code, _, stderr) = run(&["run", &f.display().to_string()]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(error), "{stderr}");
    }
}

#[test]
fn filesystem_sink_commits_one_complete_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let out_dir = dir.path().join("out");
    let f = dir.path().join("q.sql");
    std::fs::write(
        &f,
        format!(
            "CREATE TABLE orders (order_id INT, customer STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3)) \
             WITH ('connector' = 'filesystem', 'path' = 'tests/data/orders.csv', 'format' = 'csv', 'csv.header' = 'true');\n\
             CREATE TABLE big (customer STRING, amount DECIMAL(10, 2)) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'json');\n\
             INSERT INTO big SELECT customer, amount FROM orders WHERE amount > 5;",
            out_dir.display()
        ),
    )
    .expect("write");
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("out dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .collect();
    // One committed file, named by the query (`part-<query id>-0.json`), no hidden ones.
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].starts_with("part-") && names[0].ends_with("-0.json"),
        "no in-progress files may remain: {names:?}"
    );
    let text = std::fs::read_to_string(out_dir.join(&names[0])).expect("read");
    assert_eq!(
        text,
        "{\"customer\":\"alice\",\"amount\":10.50}\n{\"customer\":\"alice\",\"amount\":7.00}\n{\"customer\":\"carol, jr\",\"amount\":100.00}\n"
    );
}

/// An INSERT casts to the sink's column types as the same CAST in a query does: a
/// TIMESTAMP into a STRING column is Flink's text, a TIMESTAMP_LTZ the session zone's wall
/// clock (regression: ISO-8601, and the LTZ's UTC instant with a `Z`). The CSV format
/// writes TIMESTAMP and TIMESTAMP_LTZ columns as Flink's CSV format does (regression: a `T`
/// between date and time).
#[test]
fn an_insert_writes_timestamps_into_string_columns_as_cast_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let out_dir = dir.path().join("out");
    let f = dir.path().join("q.sql");
    std::fs::write(
        &f,
        format!(
            "SET 'table.local-time-zone' = 'Asia/Shanghai';\n\
             CREATE TABLE src (ms BIGINT, ts AS TO_TIMESTAMP_LTZ(ms, 3)) WITH ('connector' = 'datagen', \
             'number-of-rows' = '1', 'fields.ms.min' = '0', 'fields.ms.max' = '0');\n\
             CREATE TABLE out (a STRING, b STRING, c VARCHAR(40), d TIMESTAMP(3), e TIMESTAMP_LTZ(3)) \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             INSERT INTO out SELECT ts, TIMESTAMP '2024-01-01 00:00:00', CAST(ts AS TIMESTAMP(3)), \
             CAST(ts AS TIMESTAMP(3)) + INTERVAL '0.25' SECOND, ts FROM src;",
            out_dir.display()
        ),
    )
    .expect("write");
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let text: String = std::fs::read_dir(&out_dir)
        .expect("out dir")
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).expect("read"))
        .collect();
    assert_eq!(
        text,
        "1970-01-01 08:00:00.000,2024-01-01 00:00:00,1970-01-01 08:00:00.000,\
         1970-01-01 08:00:00.25,1970-01-01 00:00:00Z\n"
    );
}

/// A ROW written into a ROW column whose fields are named otherwise is cast by position,
/// taking the column's names, as Flink's implicit cast of rows (Arrow matches by name and
/// refused it); so is each ROW of an ARRAY.
#[test]
fn an_insert_casts_a_row_by_position() {
    let (_dir, f) = script(
        "q.sql",
        "CREATE TABLE g (n BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '2', \
         'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '2');\n\
         CREATE TABLE o (r ROW<a INT, b STRING>, l ARRAY<ROW<c BIGINT>>) WITH ('connector' = 'print');\n\
         INSERT INTO o SELECT ROW(n, 'x'), ARRAY[ROW(n * 10)] FROM g;",
    );
    let (code, stdout, stderr) = run(&["run", "-q", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "+I[{a: 1, b: x}, [{c: 10}]]\n+I[{a: 2, b: x}, [{c: 20}]]\n"
    );
}

/// One clause must not ask for unbounded work: a HOP that puts each row into 86.4 M
/// windows (a 1 ms slide over a day) is refused at planning, naming the setting that
/// allows it; allowed, a stop request still ends the process within a second though the
/// window operator is busy in one long step (it ran on for minutes before).
#[test]
fn a_huge_hop_is_refused_and_a_busy_job_stops_within_a_second() {
    let query = |setting: &str| {
        format!(
            "{setting}CREATE TABLE t (ts TIMESTAMP(3), v BIGINT, WATERMARK FOR ts AS ts) WITH (\
               'connector' = 'datagen', 'rows-per-second' = '10', 'fields.v.kind' = 'sequence', \
               'fields.v.start' = '1', 'fields.v.end' = '1000');\n\
             SELECT window_start, SUM(v) FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), \
               INTERVAL '0.001' SECOND, INTERVAL '1' DAY)) GROUP BY window_start, window_end;"
        )
    };
    let (_dir, f) = script("q.sql", &query(""));
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("puts every row into 86400000 windows")
            && stderr.contains("table.exec.window.max-windows-per-row"),
        "{stderr}"
    );
    let (_dir, f) = script(
        "q.sql",
        &query("SET 'table.exec.window.max-windows-per-row' = '100000000';\n"),
    );
    let child = weir()
        .args(["run", &f.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The first rows' watermark starts the firing of millions of windows.
    std::thread::sleep(Duration::from_millis(2500));
    let pid = child.id().to_string();
    let sent = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    let took = sent.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One second of grace, and slack for a loaded machine.
    assert!(
        took < Duration::from_millis(2500),
        "stopped after {took:?}: {stderr}"
    );
    assert!(stderr.contains("ends without draining"), "{stderr}");
    assert_eq!(out.status.code(), Some(130), "{stderr}");
}

/// An unbounded job printing 1, 2, 3, … (1 000 rows a second) as `+I[n]` lines.
const COUNTING_TO_PRINT: &str = "CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '1000', \
     'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000000000');\n\
     CREATE TABLE out (id BIGINT) WITH ('connector' = 'print');\n\
     INSERT INTO out SELECT id FROM g;";

#[test]
fn sigterm_stops_an_unbounded_query_cleanly() {
    let (_dir, f) = script("q.sql", COUNTING_TO_PRINT);
    let child = weir()
        .args(["run", &f.display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    // Every row the source produced reached the sink, in order, none twice.
    let ids: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.trim_start_matches("+I[")
                .trim_end_matches(']')
                .parse()
                .expect("id")
        })
        .collect();
    assert!(ids.len() > 100, "only {} rows", ids.len());
    assert!(ids.iter().enumerate().all(|(i, id)| *id == i as u64 + 1));
}

/// A `filesystem` table with `source.monitor-interval` is a stream: the files there are
/// read, then each file that appears later (written under a hidden name and renamed, as
/// writers do) is read once, and the query runs until stopped.
#[test]
fn a_monitored_folder_reads_files_that_appear_later() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    std::fs::write(input.join("f1.csv"), "1,a\n2,b\n").expect("write");
    let (_d, f) = script(
        "m.sql",
        &format!(
            "CREATE TABLE src (k BIGINT, v STRING) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'csv', 'source.monitor-interval' = '100 ms');\n\
             SELECT k, v FROM src;\n",
            input.display()
        ),
    );
    let mut child = weir()
        .args(["run", "--format", "csv", &f.display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = vec![];
    let wait_for = |want: &str, seen: &mut Vec<String>| {
        while !seen.iter().any(|l| l == want) {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("no row {want} in {seen:?}"),
            }
        }
    };
    wait_for("2,b", &mut seen);
    std::fs::write(input.join(".f2.tmp"), "3,c\n").expect("write");
    std::fs::rename(input.join(".f2.tmp"), input.join("f2.csv")).expect("rename");
    wait_for("3,c", &mut seen);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push(l);
    }
    assert_eq!(seen, ["k,v", "1,a", "2,b", "3,c"], "each row once");
}

/// Flink's `source.path.regex-pattern`: a `filesystem` table reads the files under its
/// path whose whole absolute path the pattern matches; a pattern that is no regular
/// expression is refused at the option.
#[test]
fn the_path_regex_pattern_picks_the_files_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (folder, file, text) in [
        ("2025", "a.csv", "a,1\n"),
        ("2026", "b.csv", "b,2\n"),
        ("2026", "c.txt", "c,3\n"),
        ("2026x", "d.csv", "d,4\n"),
    ] {
        std::fs::create_dir_all(dir.path().join(folder)).expect("mkdir");
        std::fs::write(dir.path().join(folder).join(file), text).expect("write");
    }
    let (_d, f) = script(
        "rx.sql",
        &format!(
            "CREATE TABLE f (s STRING, n INT) WITH ('connector' = 'filesystem', 'path' = '{}', \
               'format' = 'csv', 'source.path.regex-pattern' = '.*/2026/[^/]*\\.csv');\n\
             SELECT * FROM f;\n",
            dir.path().display()
        ),
    );
    let (code, out, err) = run(&["run", "-q", "--format", "csv", &f.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "s,n\nb,2\n");
    let (_d, f) = script(
        "bad.sql",
        &format!(
            "CREATE TABLE f (s STRING) WITH ('connector' = 'filesystem', 'path' = '{}', \
               'format' = 'csv', 'source.path.regex-pattern' = '(?<=x).*');\n",
            dir.path().display()
        ),
    );
    let (code, _, err) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("option 'source.path.regex-pattern' is not a regular expression")
            && err.contains("look-around"),
        "{err}"
    );
}

/// `weir query` over a declared Parquet `filesystem` table reads the files at any depth
/// (regression: files in plain subfolders were not read, `COUNT(*)` was 0), and only those
/// `source.path.regex-pattern` keeps (regression: the pattern was ignored in batch).
#[test]
fn a_batch_parquet_read_takes_subfolders_and_the_path_pattern() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_d, f) = script(
        "write.sql",
        &format!(
            "CREATE TABLE a (n INT) WITH ('connector' = 'filesystem', 'path' = '{0}/x', 'format' = 'parquet');\n\
             CREATE TABLE b (n INT) WITH ('connector' = 'filesystem', 'path' = '{0}/y', 'format' = 'parquet');\n\
             INSERT INTO a VALUES (1), (2);\nINSERT INTO b VALUES (3);\n",
            dir.path().display()
        ),
    );
    let (code, _, err) = run(&["run", "-q", &f.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let query = |pattern: &str| {
        let sql = format!(
            "CREATE TABLE p (n INT) WITH ('connector' = 'filesystem', 'path' = '{}', \
             'format' = 'parquet'{pattern}); SELECT COUNT(*) AS c, SUM(n) AS s FROM p;",
            dir.path().display()
        );
        let (code, out, err) = run(&["query", "-q", "--format", "csv", &sql]);
        assert_eq!(code, 0, "{err}");
        out
    };
    assert_eq!(query(""), "c,s\n3,6\n");
    assert_eq!(
        query(", 'source.path.regex-pattern' = '.*/x/[^/]*'"),
        "c,s\n2,3\n"
    );
    assert_eq!(
        query(", 'source.path.regex-pattern' = 'nothing'"),
        "c,s\n0,\n"
    );
}

/// `weir run q.sql | head -n 3`: the reader closes the pipe and the unbounded job ends at
/// once, quietly and with success (a closed output is `WeirError::OutputClosed`, not a
/// failure).
#[test]
fn a_closed_output_pipe_ends_the_run_quietly() {
    use std::io::{BufRead, BufReader};
    let (_dir, f) = script("q.sql", COUNTING_TO_PRINT);
    let mut child = weir()
        .args(["run", &f.display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for want in ["+I[1]", "+I[2]", "+I[3]"] {
        assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some(want));
    }
    drop(lines);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still running after its output closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.to_lowercase().contains("error"), "{stderr}");
}

#[test]
fn help_names_the_commands() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("run"));
    let (code, stdout, _) = run(&["run", "--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--set"));
}

#[test]
fn a_window_query_prints_each_window_and_counts_the_late_row() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/window_source.csv");
    let (_dir, f) = script(
        "w.sql",
        &format!(
            "CREATE TABLE src (ts STRING, a_int INT, b DOUBLE, c FLOAT, d DECIMAL(10, 2), \
             `comment` STRING, name STRING, rowtime AS TO_TIMESTAMP(ts), \
             WATERMARK FOR rowtime AS rowtime - INTERVAL '1' SECOND) \
             WITH ('connector' = 'filesystem', 'path' = '{data}', 'format' = 'csv', \
             'csv.null-literal' = '');\n\
             CREATE TABLE out WITH ('connector' = 'print');\n\
             INSERT INTO out SELECT name, window_start, COUNT(*) AS c \
             FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(rowtime), INTERVAL '5' SECOND)) \
             WHERE name = 'a' GROUP BY name, window_start, window_end;\n"
        ),
    );
    let (code, stdout, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec![
            "+I[a, 2020-10-10T00:00:00, 4]",
            "+I[a, 2020-10-10T00:00:05, 1]",
            "+I[a, 2020-10-10T00:00:40, 1]",
        ]
    );
    assert!(stderr.contains("late rows dropped: 1"), "{stderr}");
}

#[test]
fn late_rows_go_to_the_table_the_source_names() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/window_source.csv");
    let (_dir, f) = script(
        "late.sql",
        &format!(
            "CREATE TABLE src (ts STRING, a_int INT, b DOUBLE, c FLOAT, d DECIMAL(10, 2), \
             `comment` STRING, name STRING, rowtime AS TO_TIMESTAMP(ts), \
             WATERMARK FOR rowtime AS rowtime - INTERVAL '1' SECOND) \
             WITH ('connector' = 'filesystem', 'path' = '{data}', 'format' = 'csv', \
             'csv.null-literal' = '', 'late-data.sink' = 'late_rows');\n\
             CREATE TABLE late_rows WITH ('connector' = 'print', 'print-identifier' = 'late');\n\
             CREATE TABLE out WITH ('connector' = 'print', 'print-identifier' = 'out');\n\
             INSERT INTO out SELECT name, window_start, COUNT(*) AS c \
             FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(rowtime), INTERVAL '5' SECOND)) \
             WHERE name = 'a' GROUP BY name, window_start, window_end;\n"
        ),
    );
    let (code, stdout, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let late: Vec<&str> = stdout.lines().filter(|l| l.starts_with("late>")).collect();
    assert_eq!(
        late,
        vec!["late> +I[2020-10-10 00:00:04, 5, 5.0, null, 5.55, Hi, a, 2020-10-10T00:00:04]"]
    );
    assert!(
        stdout.contains("out> +I[a, 2020-10-10T00:00:00, 4]"),
        "{stdout}"
    );
    assert!(stderr.contains("late rows dropped: 1"), "{stderr}");
}

/// A late-data table may have metadata columns as a sink may: a `VIRTUAL` one is read-only
/// and not among the columns late rows fill (regression: counted, so the table was refused
/// as having one column too many), and a persisted one its connector cannot write is
/// refused at the option.
#[test]
fn a_late_data_table_takes_its_writable_columns() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/window_source.csv");
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("late");
    let sql = |meta: &str| {
        format!(
            "CREATE TABLE src (ts STRING, a_int INT, b DOUBLE, c FLOAT, d DECIMAL(10, 2), \
             `comment` STRING, name STRING, rowtime AS TO_TIMESTAMP(ts), \
             WATERMARK FOR rowtime AS rowtime - INTERVAL '1' SECOND) \
             WITH ('connector' = 'filesystem', 'path' = '{data}', 'format' = 'csv', \
             'csv.null-literal' = '', 'late-data.sink' = 'late_rows');\n\
             CREATE TABLE late_rows (ts STRING, a_int INT, b DOUBLE, c FLOAT, d DECIMAL(10, 2), \
             `comment` STRING, name STRING, rowtime TIMESTAMP(3), \
             path STRING METADATA FROM 'file.path'{meta}) \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             CREATE TABLE out WITH ('connector' = 'blackhole');\n\
             INSERT INTO out SELECT name, window_start, COUNT(*) AS c \
             FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(rowtime), INTERVAL '5' SECOND)) \
             WHERE name = 'a' GROUP BY name, window_start, window_end;\n",
            out.display()
        )
    };
    let f = dir.path().join("late.sql");
    std::fs::write(&f, sql(" VIRTUAL")).expect("write");
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let mut written = String::new();
    for e in std::fs::read_dir(&out).expect("the late rows' folder") {
        let p = e.expect("entry").path();
        if !p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            written.push_str(&std::fs::read_to_string(&p).expect("read"));
        }
    }
    let rows: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    assert_eq!(rows.len(), 1, "{written}");
    assert_eq!(rows[0]["a_int"], 5, "{written}");
    assert!(rows[0].get("path").is_none(), "{written}");
    std::fs::write(&f, sql("")).expect("write");
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("sink table 'late_rows' cannot write metadata column 'path'"),
        "{stderr}"
    );
}

#[test]
fn a_late_data_sink_that_is_not_a_table_is_an_error_at_its_option() {
    let (_dir, f) = script(
        "late_bad.sql",
        "CREATE TABLE src (ts TIMESTAMP(3), v INT, WATERMARK FOR ts AS ts) \
         WITH ('connector' = 'datagen', 'number-of-rows' = '10', 'late-data.sink' = 'nowhere');\n\
         SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
         GROUP BY window_start, window_end;\n",
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("'late-data.sink' names 'nowhere', which is not a table"),
        "{stderr}"
    );
    assert!(stderr.contains("1:"), "{stderr}");
}

/// Two windows of one query sending late rows to one table would write files of the same
/// names: refused at planning, at the option.
#[test]
fn two_windows_sharing_a_late_data_table_are_refused() {
    let (_dir, f) = script(
        "late_shared.sql",
        "CREATE TABLE src (ts TIMESTAMP(3), v INT, WATERMARK FOR ts AS ts) \
         WITH ('connector' = 'datagen', 'number-of-rows' = '10', 'late-data.sink' = 'late_rows');\n\
         CREATE TABLE late_rows WITH ('connector' = 'blackhole');\n\
         SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
         GROUP BY window_start, window_end \
         UNION ALL \
         SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '2' SECOND)) \
         GROUP BY window_start, window_end;\n",
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("'late-data.sink' = 'late_rows' serves two windows of this query"),
        "{stderr}"
    );
}

/// Two event-time sources: `fast` (2 000 rows in a second, 20 s of event time) and `slow` (a
/// row every half second, three in all, its times in the first window); `slow_opt` adds to
/// `slow`'s options.
fn fast_and_slow(slow_opt: &str) -> String {
    format!(
        "CREATE TABLE fast (v BIGINT, ts AS to_timestamp_millis(v * 10), WATERMARK FOR ts AS ts) \
         WITH ('connector' = 'datagen', 'rows-per-second' = '2000', 'number-of-rows' = '2000', \
         'fields.v.kind' = 'sequence', 'fields.v.start' = '1', 'fields.v.end' = '2000');\n\
         CREATE TABLE slow (v BIGINT, ts AS to_timestamp_millis(v * 10), WATERMARK FOR ts AS ts) \
         WITH ('connector' = 'datagen', 'rows-per-second' = '2', 'number-of-rows' = '3', \
         'fields.v.kind' = 'sequence', 'fields.v.start' = '1', 'fields.v.end' = '3'{slow_opt});\n"
    )
}

/// Two sources into one window: `slow` sends a row every half second. Without an idle
/// timeout its watermark holds the union back, so no window closes before it ends and none
/// of its rows is late; with one, the union goes on without it while it is silent, windows
/// close on `fast`'s watermark, and `slow`'s later rows arrive late.
#[test]
fn an_idle_source_stops_holding_back_a_union_after_its_timeout() {
    let sql = |idle: &str, slow_opt: &str| {
        format!(
            "{idle}\
             {}\
             CREATE TABLE out WITH ('connector' = 'blackhole');\n\
             INSERT INTO out SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(\
             (SELECT v, ts FROM fast UNION ALL SELECT v, ts FROM slow), DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
             GROUP BY window_start, window_end;\n",
            fast_and_slow(slow_opt)
        )
    };
    let (_d1, held) = script("held.sql", &sql("", ""));
    let (code, _, stderr) = run(&["run", &held.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("late rows dropped"), "{stderr}");

    let (_d2, idle) = script(
        "idle.sql",
        &sql("SET 'table.exec.source.idle-timeout' = '100 ms';\n", ""),
    );
    let (code, _, stderr) = run(&["run", &idle.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("late rows dropped: 2"), "{stderr}");

    // The same, set on the table.
    let (_d3, option) = script(
        "option.sql",
        &sql("", ", 'scan.watermark.idle-timeout' = '100 ms'"),
    );
    let (code, _, stderr) = run(&["run", &option.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("late rows dropped: 2"), "{stderr}");
}

/// The same for a join: `slow`'s window aggregate holds the join back until it ends, unless
/// its input goes idle, when the join's windows close on `fast`'s watermark alone and the
/// row `slow` finally emits for the first window comes too late for it.
#[test]
fn an_idle_input_stops_holding_back_a_window_join_after_its_timeout() {
    let sql = |idle: &str| {
        let side = |t: &str| {
            format!(
                "(SELECT window_start, window_end, COUNT(*) AS c FROM TABLE(TUMBLE(TABLE {t}, \
                 DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end)"
            )
        };
        format!(
            "{idle}\
             {}\
             CREATE TABLE out WITH ('connector' = 'blackhole');\n\
             INSERT INTO out SELECT f.window_start, f.c, s.c FROM {} AS f LEFT JOIN {} AS s \
             ON f.window_start = s.window_start AND f.window_end = s.window_end;\n",
            fast_and_slow(""),
            side("fast"),
            side("slow")
        )
    };
    let (_d1, held) = script("held.sql", &sql(""));
    let (code, _, stderr) = run(&["run", &held.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("late rows dropped"), "{stderr}");

    let (_d2, idle) = script(
        "idle.sql",
        &sql("SET 'table.exec.source.idle-timeout' = '100 ms';\n"),
    );
    let (code, _, stderr) = run(&["run", &idle.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("late rows dropped: 1"), "{stderr}");
}

/// `table.exec.state.ttl` forgets a group (and a Top-N partition) that got no row for the
/// TTL: rows 200 ms apart with a 50 ms TTL each start their key afresh (`+I`), where without
/// it every row after the first updates it.
#[test]
fn state_ttl_forgets_idle_groups_and_partitions() {
    let sql = |ttl: &str| {
        format!(
            "{ttl}CREATE TABLE src (v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '5', \
             'number-of-rows' = '4', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', \
             'fields.v.end' = '4');\n\
             CREATE TABLE out (k STRING, n BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'agg');\n\
             INSERT INTO out SELECT k, COUNT(*) FROM (SELECT 'x' AS k, v FROM src) GROUP BY k;\n\
             CREATE TABLE top (v BIGINT, rn BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'top');\n\
             INSERT INTO top SELECT v, rn FROM (SELECT v, ROW_NUMBER() OVER (PARTITION BY v % 1 ORDER BY v DESC) AS rn FROM src) WHERE rn <= 1;\n"
        )
    };
    let count = |out: &str, prefix: &str| out.lines().filter(|l| l.starts_with(prefix)).count();
    let (_d1, kept) = script("kept.sql", &sql(""));
    let (code, stdout, stderr) = run(&["run", &kept.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&stdout, "agg> +I[x, "), 1, "{stdout}");
    assert_eq!(count(&stdout, "agg> +U[x, "), 3, "{stdout}");
    assert_eq!(count(&stdout, "top> +I["), 1, "{stdout}");

    let (_d2, ttl) = script("ttl.sql", &sql("SET 'table.exec.state.ttl' = '50 ms';\n"));
    let (code, stdout, stderr) = run(&["run", &ttl.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&stdout, "agg> +I[x, 1]"), 4, "{stdout}");
    assert_eq!(count(&stdout, "agg> +U["), 0, "{stdout}");
    assert_eq!(count(&stdout, "top> +I["), 4, "{stdout}");
}

fn committed_parquet(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            n += committed_parquet(&p);
        } else if p
            .file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| f.starts_with("part-") && f.ends_with(".parquet"))
        {
            n += 1;
        }
    }
    n
}

/// A quiet stream still commits: with a 200 ms rollover interval, a committed Parquet file
/// appears while the query is still running (its source sends a row every 250 ms).
#[test]
fn a_quiet_stream_commits_within_the_rollover_interval() {
    let tmp = tempfile::tempdir().expect("tmp");
    let arch = tmp.path().join("arch");
    let (_dir, f) = script(
        "roll.sql",
        &format!(
            "CREATE TABLE src (v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '4', \
             'number-of-rows' = '16', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', \
             'fields.v.end' = '16');\n\
             CREATE TABLE arch (v BIGINT, p STRING) PARTITIONED BY (p) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'parquet', 'sink.rolling-policy.rollover-interval' = '200 ms', \
             'sink.rolling-policy.check-interval' = '50 ms');\n\
             INSERT INTO arch SELECT v, 'x' FROM src;\n",
            arch.display()
        ),
    );
    let mut child = weir()
        .args(["run", &f.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("weir starts");
    let started = std::time::Instant::now();
    let mut seen_while_running = false;
    while started.elapsed() < std::time::Duration::from_secs(10) {
        if child.try_wait().expect("poll").is_some() {
            break;
        }
        if committed_parquet(&arch) > 0 {
            seen_while_running = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = child.wait().expect("weir ends");
    assert!(status.success());
    assert!(
        seen_while_running,
        "no file was committed before the query ended"
    );
    // Every row is in the archive once, across the rolled files.
    let (code, stdout, stderr) = run(&[
        "query",
        &format!(
            "SELECT COUNT(*) AS n, SUM(v) AS s FROM '{}'",
            arch.display()
        ),
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "n,s\n16,136\n");
    assert!(committed_parquet(&arch) >= 2);
}

#[test]
fn weir_query_reads_a_declared_table_in_every_format() {
    let tmp = tempfile::tempdir().expect("tmp");
    let arch = tmp.path().join("t");
    let (_dir, f) = script(
        "w.sql",
        &format!(
            "CREATE TABLE src (v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '0', \
             'number-of-rows' = '4', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', \
             'fields.v.end' = '4');\n\
             CREATE TABLE t (v BIGINT, even BOOLEAN) PARTITIONED BY (even) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'parquet');\n\
             INSERT INTO t SELECT v, v % 2 = 0 FROM src;\n",
            arch.display()
        ),
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let ddl = format!(
        "CREATE TABLE t (v BIGINT, even BOOLEAN) PARTITIONED BY (even) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');",
        arch.display()
    );
    let q = format!("{ddl} SELECT v, even FROM t WHERE even ORDER BY v");
    let out = |fmt: &str| {
        let (code, stdout, stderr) = run(&["query", &q, "--format", fmt, "--quiet"]);
        assert_eq!(code, 0, "{stderr}");
        stdout
    };
    assert_eq!(out("csv"), "v,even\n2,true\n4,true\n");
    assert_eq!(
        out("ndjson"),
        "{\"v\":2,\"even\":true}\n{\"v\":4,\"even\":true}\n"
    );
    assert_eq!(
        out("json"),
        "[{\"v\":2,\"even\":true},{\"v\":4,\"even\":true}]\n"
    );
    // A table shows a BOOLEAN as Flink's SQL client does; CSV and JSON keep `true`.
    assert!(out("table").contains("| 2 | TRUE |"));
    // Reading a stream in batch is a clear error.
    let (code, _, stderr) = run(&[
        "query",
        "CREATE TABLE g WITH ('connector' = 'nexmark'); SELECT * FROM g",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is a stream"), "{stderr}");
}

#[test]
fn bench_nexmark_measures_what_runs_and_names_what_does_not() {
    // The suite's DDL and three of its queries, and a query Weir refuses (an ORDER BY over
    // a stream).
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/nexmark");
    for f in ["ddl.sql", "q0.sql", "q11.sql", "q22.sql"] {
        std::fs::copy(suite.join(f), dir.path().join(f)).expect("copy");
    }
    std::fs::write(
        dir.path().join("q90.sql"),
        "CREATE TABLE s (a BIGINT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO s SELECT B.auction FROM bid B ORDER BY B.price;\n",
    )
    .expect("write");
    let d = dir.path().display().to_string();
    let (code, stdout, stderr) = run(&[
        "bench",
        "nexmark",
        "--events",
        "20000",
        "--dir",
        &d,
        "--query",
        "q0,q11,q22,q90",
    ]);
    // The table holds every query; the run fails, naming the one that did.
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("[ERROR] 1 failed: q90"), "{stderr}");
    let row = |q: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {q} |")))
            .unwrap_or_else(|| panic!("no row for {q}: {stdout}"))
            .to_string()
    };
    for q in ["q0", "q11", "q22"] {
        let r = row(q);
        let cells: Vec<&str> = r.split('|').map(str::trim).collect();
        // | q | events | seconds | events/s | per core | peak RSS | note |
        assert_eq!(cells[2], "20000", "{r}");
        assert!(cells[3].parse::<f64>().is_ok_and(|s| s > 0.0), "{r}");
        assert!(cells[6].ends_with("MiB") && cells[7].is_empty(), "{r}");
    }
    assert!(row("q90").contains("not supported"), "{}", row("q90"));
}

#[test]
fn a_statement_set_runs_its_inserts_and_holds_only_inserts() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/window_dedup.csv");
    let (_dir, f) = script(
        "set.sql",
        &format!(
            "CREATE TABLE bids (ts STRING, item STRING, price INT) \
             WITH ('connector' = 'filesystem', 'path' = '{data}', 'format' = 'csv');\n\
             CREATE TABLE cheap WITH ('connector' = 'print', 'print-identifier' = 'cheap');\n\
             CREATE TABLE dear WITH ('connector' = 'print', 'print-identifier' = 'dear');\n\
             EXECUTE STATEMENT SET\n\
             BEGIN\n\
             INSERT INTO cheap SELECT item, price FROM bids WHERE price < 6;\n\
             INSERT INTO dear SELECT item, price FROM bids WHERE price >= 20;\n\
             END;\n"
        ),
    );
    let (code, stdout, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "cheap> +I[A, 5]",
            "cheap> +I[E, 1]",
            "dear> +I[B, 30]",
            "dear> +I[C, 20]",
        ]
    );
    // One job, as Flink runs a statement set.
    assert!(
        stderr.contains("Job 1 started: EXECUTE STATEMENT SET"),
        "{stderr}"
    );
    assert!(!stderr.contains("Job 2 started"), "{stderr}");
    // EXPLAIN STATEMENT SET shows the one plan, each INSERT under it; nothing runs.
    let explain = std::fs::read_to_string(&f)
        .expect("read")
        .replace("EXECUTE STATEMENT SET", "EXPLAIN STATEMENT SET");
    let (_dir2, g) = script("explain.sql", &explain);
    let (code, stdout, stderr) = run(&["run", "-q", &g.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Union")
            && stdout.contains("statement 1")
            && stdout.contains("statement 2")
            && stdout.matches("Source: bids").count() == 2,
        "{stdout}"
    );
    assert!(!stdout.contains("+I["), "{stdout}");
    let (_dir, f) = script("bad_set.sql", "BEGIN STATEMENT SET;\nSELECT 1;\nEND;\n");
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("2:1") && stderr.contains("a statement set holds only INSERT statements"),
        "{stderr}"
    );
}

/// A statement set is one job whose INSERTs share what they read: every line of stdin
/// reaches both INSERTs (as separate jobs, two readers of one pipe shared its lines); and
/// with checkpoints, one checkpoint covers both sinks, each committing its own files.
#[test]
fn a_statement_set_reads_its_tables_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("out");
    let sql = dir.path().join("set.sql");
    std::fs::write(
        &sql,
        format!(
            "CREATE TABLE s (x INT) WITH ('connector' = 'stdin', 'format' = 'csv');\n\
             CREATE TABLE small (x INT) WITH ('connector' = 'print', 'print-identifier' = 'small');\n\
             CREATE TABLE archive (x INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             BEGIN STATEMENT SET;\n\
             INSERT INTO small SELECT x FROM s WHERE x <= 3;\n\
             INSERT INTO archive SELECT x * 10 FROM s;\n\
             END;\n",
            out.display()
        ),
    )
    .expect("write");
    let input: String = (1..=2000).map(|i| format!("{i}\n")).collect();
    let (code, stdout, stderr) = run_with_stdin(&sql, input.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    let mut small: Vec<&str> = stdout.lines().filter(|l| l.starts_with("small>")).collect();
    small.sort();
    assert_eq!(
        small,
        ["small> +I[1]", "small> +I[2]", "small> +I[3]"],
        "{stderr}"
    );
    let visible = |dir: &std::path::Path| {
        let mut v: Vec<i64> = vec![];
        for e in std::fs::read_dir(dir).expect("folder") {
            let p = e.expect("entry").path();
            if p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
            {
                let text = std::fs::read_to_string(&p).expect("read");
                v.extend(text.lines().filter_map(|l| l.trim().parse::<i64>().ok()));
            }
        }
        v.sort();
        v
    };
    assert_eq!(
        visible(&out),
        (1..=2000).map(|i| i * 10).collect::<Vec<_>>()
    );

    // Checkpointed: a file read once into three file sinks (two of one table), all complete.
    let input_file = dir.path().join("in.csv");
    std::fs::write(&input_file, &input).expect("write");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(
        &sql,
        format!(
            "SET 'execution.checkpointing.interval' = '50ms';\n\
             SET 'state.checkpoints.dir' = '{}';\n\
             CREATE TABLE s (x INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             CREATE TABLE a (x INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             CREATE TABLE b (x INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             EXECUTE STATEMENT SET BEGIN\n\
             INSERT INTO a SELECT x FROM s WHERE x % 2 = 0;\n\
             INSERT INTO b SELECT x FROM s WHERE x % 2 = 1;\n\
             INSERT INTO a SELECT x + 10000 FROM s WHERE x <= 10;\n\
             END;\n",
            dir.path().join("checkpoints").display(),
            input_file.display(),
            a.display(),
            b.display()
        ),
    )
    .expect("write");
    let (code, _, stderr) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    // Two INSERTs into `a`: neither overwrites the other's files.
    let mut expected_a: Vec<i64> = (1..=1000).map(|i| i * 2).collect();
    expected_a.extend(10001..=10010);
    expected_a.sort();
    assert_eq!(visible(&a), expected_a);
    assert_eq!(
        visible(&b),
        (1..=1000).map(|i| i * 2 - 1).collect::<Vec<_>>()
    );
}

/// Each sink of a statement set commits by its own INSERT's watermark, as Flink gives each
/// sink its own: the partitions of an INSERT from a finished file commit (`_SUCCESS`) while
/// another INSERT of the set, reading an endless source without a watermark, keeps the job
/// running. With one watermark for the set (the least over its INSERTs) they would wait
/// for the endless one.
#[test]
fn each_sink_of_a_statement_set_commits_by_its_own_watermark() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "2026-01-01 10:00:00,a\n2026-01-01 11:00:00,b\n2026-01-02 09:00:00,c\n",
    )
    .expect("write");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let sql = dir.path().join("set.sql");
    std::fs::write(
        &sql,
        format!(
            "CREATE TABLE s (ts TIMESTAMP(3), name STRING, WATERMARK FOR ts AS ts) \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             CREATE TABLE endless (x BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '10');\n\
             CREATE TABLE a (name STRING, dt STRING) PARTITIONED BY (dt) WITH (\
             'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', \
             'sink.partition-commit.trigger' = 'partition-time', \
             'sink.partition-commit.delay' = '1 d', \
             'sink.partition-commit.policy.kind' = 'success-file');\n\
             CREATE TABLE b (x BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             EXECUTE STATEMENT SET BEGIN\n\
             INSERT INTO a SELECT name, DATE_FORMAT(ts, 'yyyy-MM-dd') FROM s;\n\
             INSERT INTO b SELECT x FROM endless;\n\
             END;\n",
            input.display(),
            a.display(),
            b.display()
        ),
    )
    .expect("write");
    let mut child = weir()
        .args(["run", "-q", &sql.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir starts");
    let success = |dt: &str| a.join(format!("dt={dt}")).join("_SUCCESS").exists();
    let started = std::time::Instant::now();
    while !(success("2026-01-01") && success("2026-01-02"))
        && started.elapsed() < std::time::Duration::from_secs(60)
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let running = child.try_wait().ok().flatten().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().expect("weir ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(running, "the job ended: {stderr}");
    assert!(
        success("2026-01-01") && success("2026-01-02"),
        "partitions not committed while the other INSERT runs: {stderr}"
    );
}

#[test]
fn show_functions_and_show_create_table() {
    let (_dir, f) = script(
        "show.sql",
        "CREATE TABLE t (a INT, b STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1');\n\
         CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar';\n\
         SHOW FUNCTIONS;\n\
         SHOW USER FUNCTIONS;\n\
         SHOW CREATE TABLE t;\n\
         ALTER TABLE t SET ('number-of-rows' = '7', 'rows-per-second' = '5');\n\
         ALTER TABLE t RESET ('rows-per-second');\n\
         SHOW CREATE TABLE t;\n\
         ALTER TABLE t ADD (c AS a + 1 AFTER a, PRIMARY KEY (a) NOT ENFORCED);\n\
         ALTER TABLE t RENAME b TO `b b`;\n\
         SHOW CREATE TABLE t;\n",
    );
    let (code, stdout, stderr) = run(&["run", "--format", "csv", &f.display().to_string()]);
    // After ALTER TABLE, SHOW CREATE TABLE gives the options as they are now.
    assert!(
        stdout.contains("'number-of-rows' = '7'") && !stdout.contains("'rows-per-second'"),
        "{stdout}"
    );
    assert_eq!(code, 0, "{stderr}");
    for name in [
        "to_timestamp_ltz",
        "listagg",
        "timestampdiff",
        "count_char",
        "upper",
    ] {
        assert!(
            stdout.lines().any(|l| l == name),
            "{name} missing: {stdout}"
        );
    }
    // SHOW USER FUNCTIONS: the header and count_char only.
    let user: Vec<&str> = stdout
        .split("function name")
        .nth(2)
        .unwrap_or("")
        .lines()
        .filter(|l| !l.is_empty())
        .take_while(|l| *l != "result")
        .collect();
    assert_eq!(user, vec!["count_char"], "{stdout}");
    assert!(
        stdout.contains(
            "CREATE TABLE t (a INT, b STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1')"
        ),
        "{stdout}"
    );
    // After ADD and RENAME, the columns as they are now, one per line, the options kept.
    assert!(
        stdout.contains(
            "CREATE TABLE t (\n  a INT,\n  c AS a + 1,\n  `b b` STRING,\n  PRIMARY KEY (a) NOT ENFORCED\n) WITH ("
        ),
        "{stdout}"
    );
}

/// A secret option's value never shows: not in an error's quoted line, `SET`, `SHOW CREATE
/// TABLE`, `EXPLAIN`, nor in an error from the Kafka client (which quotes values it
/// rejects).
#[test]
fn secrets_never_show() {
    let secret = "hunter2-secret";
    let table = |extra: &str| {
        format!(
            "CREATE TABLE k (v BIGINT) WITH ('connector' = 'kafka', 'topic' = 't', \
             'properties.bootstrap.servers' = '127.0.0.1:9', \
             'properties.sasl.password' = '{secret}', 'format' = 'json'{extra});\n"
        )
    };
    // An error whose quoted line holds the secret.
    let (_d, f) = script("bad.sql", &table(", 'bogus' = '1'"));
    let (code, out, err) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown option 'bogus'"), "{err}");
    assert!(
        err.contains("'properties.sasl.password' = '**************'"),
        "{err}"
    );
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    // SET, SHOW CREATE TABLE and EXPLAIN.
    let (_d, f) = script(
        "show.sql",
        &format!(
            "{}SET 'properties.sasl.password' = '{secret}';\nSET;\nSHOW CREATE TABLE k;\n\
             EXPLAIN SELECT * FROM k;\n\
             ALTER TABLE k SET ('properties.sasl.jaas.config' = '{secret}-jaas');\n\
             SHOW CREATE TABLE k;\n",
            table("")
        ),
    );
    let (code, out, err) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CREATE TABLE k"), "{out}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    // A value the Kafka client rejects and quotes.
    let (_d, f) = script(
        "client.sql",
        &format!(
            "{}SELECT * FROM k;\n",
            table(
                ", 'properties.security.protocol' = 'SASL_PLAINTEXT', \
                 'properties.sasl.mechanism' = 'hunter2-secret'"
            )
        ),
    );
    let (code, out, err) = run(&["run", &f.display().to_string()]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("kafka"), "{err}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
}

/// Every command's help has its own description and examples.
#[test]
fn every_help_screen_describes_its_command_with_examples() {
    for (args, about) in [
        (vec!["--help"], "streaming SQL in Flink's dialect"),
        (vec!["run", "--help"], "Run the statements of SQL files"),
        (vec!["query", "--help"], "Run SQL in batch over archives"),
        (vec!["bench", "--help"], "Benchmarks"),
        (
            vec!["bench", "nexmark", "--help"],
            "Each query in its own `weir run`",
        ),
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(about), "{args:?}: {out}");
        assert!(out.contains("Examples:\n  weir"), "{args:?}: {out}");
    }
    let (_, bench, _) = run(&["bench", "--help"]);
    assert!(!bench.contains("batch over archives"), "{bench}");
}

/// Every help screen, whole, as a snapshot (`tests/snapshots/`): a change to one shows in
/// review (`cargo insta review`).
#[test]
fn help_screens_snapshot() {
    for (name, args) in [
        ("help", vec!["--help"]),
        ("help_run", vec!["run", "--help"]),
        ("help_query", vec!["query", "--help"]),
        ("help_bench", vec!["bench", "--help"]),
        ("help_bench_nexmark", vec!["bench", "nexmark", "--help"]),
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        insta::assert_snapshot!(name, out);
    }
}

/// The end-of-run summary of Nexmark q5 at parallelism 1 (a join tree, its counts
/// deterministic), as a snapshot, without the latency figures, which vary by run.
#[test]
fn the_q5_summary_snapshot() {
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/queries/nexmark");
    let (_, stderr) = run_at_80(&[
        "run",
        "--set",
        "parallelism.default=1",
        "--set",
        "events.num=20000",
        &format!("{suite}/ddl.sql"),
        &format!("{suite}/q5.sql"),
    ]);
    let summary: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.contains(" finished after "))
        .skip(1)
        .take_while(|l| !l.contains("end-to-end latency"))
        .collect();
    insta::assert_snapshot!("summary_q5", summary.join("\n"));
}

/// An empty result still shows its columns: a table's header box, a CSV header line, `[]`.
#[test]
fn an_empty_query_result_keeps_its_columns() {
    let sql = "SELECT 1 AS a, 'x' AS b WHERE false";
    let (code, out, err) = run(&["query", "-q", sql]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "+---+---+\n| a | b |\n+---+---+\n+---+---+\n");
    let (_, out, _) = run(&["query", "-q", "--format", "csv", sql]);
    assert_eq!(out, "a,b\n");
    let (_, out, _) = run(&["query", "-q", "--format", "json", sql]);
    assert_eq!(out, "[]\n");
}

/// A table prints a top-level NULL as `<NULL>` and a BOOLEAN as `TRUE`/`FALSE`, as Flink's
/// SQL client does (its `PrintStyle.NULL_VALUE`, its cast of a boolean to a string); a NULL
/// inside a collection is `NULL`, as in its text. `weir query` and a standing query's table
/// alike; CSV keeps an empty field and `true`.
#[test]
fn tables_print_null_and_booleans_as_flinks_client() {
    let sql = "SELECT CAST(NULL AS INT) AS a, 1 > 0 AS b, ARRAY[1, NULL] AS c";
    let (code, out, err) = run(&["query", "-q", sql]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("| <NULL> | TRUE | [1, NULL] |"), "{out}");
    let (_, out, _) = run(&["query", "-q", "--format", "csv", sql]);
    assert_eq!(out, "a,b,c\n,true,\"[1, NULL]\"\n");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("t.sql");
    std::fs::write(
        &file,
        "CREATE TABLE t (k INT) WITH ('connector' = 'datagen', 'number-of-rows' = '2', \
         'fields.k.kind' = 'sequence', 'fields.k.start' = '1', 'fields.k.end' = '2');\n\
         SELECT k, NULLIF(k, 1) AS n, k > 1 AS big FROM t;\n",
    )
    .expect("write");
    let (code, out, err) = run(&["run", "-q", file.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("| 1 | <NULL> | FALSE |"), "{out}");
    assert!(out.contains("| 2 | 2      | TRUE  |"), "{out}");
}

/// `weir query`'s tables show times and intervals as the shell's and Flink's client do: a
/// TIMESTAMP as its `CAST` to STRING writes it (no `T`), a TIMESTAMP_LTZ on the session
/// zone's clock, an interval as `+0 00:20:00.000` or `+2-06`; CSV keeps ISO-8601. Before,
/// `weir query` printed `2024-01-01T10:00:00.500`, the LTZ on UTC and `20 mins`.
#[test]
fn weir_query_tables_show_times_and_intervals_as_flinks_client() {
    let sql = "SELECT TIMESTAMP '2024-01-01 10:00:00.500' AS ts, TO_TIMESTAMP_LTZ(0, 3) AS lt, \
               INTERVAL '10' MINUTE * 2 AS i, INTERVAL '2-6' YEAR TO MONTH AS ym";
    let zone = "table.local-time-zone=Asia/Shanghai";
    let (code, out, err) = run(&["query", "-q", "--set", zone, sql]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "| 2024-01-01 10:00:00.500 | 1970-01-01 08:00:00.000 | +0 00:20:00.000 | +2-06 |"
        ),
        "{out}"
    );
    let (code, out, err) = run(&[
        "query",
        "-q",
        "--format",
        "csv",
        "SELECT TIMESTAMP '2024-01-01 10:00:00.500' AS ts, TO_TIMESTAMP_LTZ(0, 3) AS lt",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ts,lt\n2024-01-01T10:00:00.500,1970-01-01T00:00:00Z\n");
}

/// A MAP whose keys are not strings is written by `--format json` and `ndjson` with its
/// keys as their text (a JSON object's keys are strings), nested maps too; before, the
/// whole result failed with "Only UTF8 keys supported". A `json`-format table with such a
/// column is refused when it is created, as Flink's `json` format refuses it.
#[test]
fn json_output_writes_non_string_map_keys_as_text() {
    let sql = "SELECT MAP[1, 'a', 2, 'b'] AS m, ARRAY[MAP[true, 1.5]] AS l, \
               MAP['x', MAP[ROW(1, 'y'), 3]] AS n";
    let (code, out, err) = run(&["query", "-q", "--format", "json", sql]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "[{\"m\":{\"1\":\"a\",\"2\":\"b\"},\"l\":[{\"TRUE\":1.5}],\"n\":{\"x\":{\"(1, y)\":3}}}]\n"
    );
    let (code, out, err) = run(&[
        "query",
        "-q",
        "--format",
        "ndjson",
        "SELECT MAP[1, 'a'] AS m",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "{\"m\":{\"1\":\"a\"}}\n");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("t.sql");
    std::fs::write(
        &file,
        "CREATE TABLE o (id INT, m MAP<INT, STRING>)\n  WITH ('connector' = 'filesystem', 'path' = '/tmp/o', 'format' = 'json');\n",
    )
    .expect("write");
    let (code, _, err) = run(&["run", file.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("t.sql:2:56: table 'o': the 'json' format does not support a MAP whose keys are not strings: column 'm' is MAP<INT, STRING>"),
        "{err}"
    );
    // An upsert-kafka table's JSON value or key too.
    std::fs::write(
        &file,
        "CREATE TABLE u (a INT, m MAP<INT, STRING>, PRIMARY KEY (a) NOT ENFORCED) WITH (\n  'connector' = 'upsert-kafka', 'topic' = 't', 'properties.bootstrap.servers' = '127.0.0.1:9', 'value.format' = 'json', 'key.format' = 'json');\n",
    )
    .expect("write");
    let (code, _, err) = run(&["run", file.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("t.sql:2:96: table 'u': the 'json' format does not support a MAP"),
        "{err}"
    );
}

/// A `kafka` table's key format options that would change how the key is written are
/// refused (the key follows the value's format options), not silently ignored; those for
/// reading are accepted, as the table reads no key.
#[test]
fn kafka_key_format_options_that_cannot_apply_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("k.sql");
    let table = |option: &str| {
        format!(
            "CREATE TABLE k (a INT, b INT) WITH ('connector' = 'kafka', 'topic' = 't',\n  \
             'properties.bootstrap.servers' = '127.0.0.1:9', 'key.format' = 'csv', 'key.fields' = 'a',\n  \
             {option}, 'value.format' = 'csv');\n"
        )
    };
    std::fs::write(&file, table("'key.csv.field-delimiter' = '|'")).expect("write");
    let (code, _, err) = run(&["run", file.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("k.sql:3:3: 'key.csv.field-delimiter' is not supported by connector 'kafka' yet: its key is written with the value's format options"),
        "{err}"
    );
    std::fs::write(&file, table("'key.csv.ignore-parse-errors' = 'true'")).expect("write");
    let (code, _, err) = run(&["run", file.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
}

/// `weir query --set` is a SET before the first statement, as `weir run --set`: the session
/// zone it names reads a TIMESTAMP_LTZ, and an option that says what a table is is refused
/// at the flag (exit code 2).
#[test]
fn weir_query_takes_set_flags() {
    let sql = "SELECT CAST(CAST(TO_TIMESTAMP_LTZ(0, 3) AS TIMESTAMP(3)) AS STRING) AS t";
    let (code, out, err) = run(&[
        "query",
        "-q",
        "--format",
        "csv",
        "--set",
        "table.local-time-zone=Asia/Shanghai",
        sql,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "t\n1970-01-01 08:00:00.000\n");
    let (code, _, err) = run(&["query", "--set", "path=/tmp/elsewhere", "SELECT 1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--set path=/tmp/elsewhere: 'path' says what a table is"),
        "{err}"
    );
}

/// CSV output takes nested values as the text the table shows (a CSV writer takes only
/// scalars; it failed with "Nested type … is not supported in CSV"): Flink's CAST to
/// STRING of them, as its sql-client shows them.
#[test]
fn csv_output_writes_nested_values_as_text() {
    let sql = "SELECT ARRAY[1, 2] AS a, MAP['k', 1] AS m, named_struct('x', 1) AS r, \
               CAST(NULL AS ARRAY<INT>) AS n";
    let (code, out, err) = run(&["query", "-q", "--format", "csv", sql]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "a,m,r,n\n\"[1, 2]\",{k=1},(1),\n");
}

/// A ROW, a MAP and an ARRAY are shown in a table as Flink's sql-client shows them (its
/// CAST to STRING): `(1, a)`, `{k=1}`, a DOUBLE inside as Java writes it; they showed as
/// Arrow prints them (`{c0: 1, c1: a}`, `{k: 1}`, `1e20`).
#[test]
fn nested_values_are_shown_as_flink_shows_them() {
    let sql = "SELECT ROW(1, 'a') AS r, MAP['k', 1] AS m, ARRAY[ROW(2, 'x')] AS a, \
               ARRAY[CAST(1e20 AS DOUBLE), CAST(NULL AS DOUBLE)] AS d";
    let want = "| (1, a) | {k=1} | [(2, x)] | [1.0E20, NULL] |";
    let (code, out, err) = run(&["query", "-q", sql]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(want), "{out}");
    let (_dir, f) = script("q.sql", &format!("{sql};"));
    let (code, out, err) = run(&["run", "-q", &f.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(want), "{out}");
}

/// A setting nothing reads (a typo) is named with the nearest known one, from `--set` and
/// from `SET`; a bad value of a known setting fails at the flag.
#[test]
fn a_mistyped_setting_is_named_with_a_suggestion() {
    let (_d, f) = script(
        "s.sql",
        "SET 'table.exec.stat.ttl' = '1 h';\nSELECT 1 AS x;\n",
    );
    let (code, out, err) = run(&["run", "--set", "events.nmu=100", &f.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("[WARNING] --set events.nmu=100: 'events.nmu' is not a setting Weir reads (did you mean 'events.num'?)"),
        "{err}"
    );
    assert!(
        err.contains("[WARNING] 'table.exec.stat.ttl' is not a setting Weir reads (did you mean 'table.exec.state.ttl'?)"),
        "{err}"
    );
    assert!(out.contains("| 1 |"), "{out}");
    // --quiet hides the [INFO] lines, not the warnings.
    let (code, _, err) = run(&[
        "run",
        "-q",
        "--set",
        "events.nmu=100",
        &f.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("'events.nmu' is not a setting Weir reads")
            && err.contains("'table.exec.stat.ttl' is not a setting Weir reads"),
        "{err}"
    );
    assert!(!err.contains("[INFO]"), "{err}");
    // `weir query` warns too, and its rows still come.
    let (code, out, err) = run(&[
        "query",
        "-q",
        "SET 'table.exec.stat.ttl' = '1 h'; SELECT 1 AS x",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("'table.exec.stat.ttl' is not a setting Weir reads (did you mean 'table.exec.state.ttl'?)"),
        "{err}"
    );
    assert!(out.contains("| 1 |"), "{out}");
    let (code, _, err) = run(&[
        "run",
        "--set",
        "table.exec.state.ttl=ten",
        &f.display().to_string(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--set table.exec.state.ttl=ten"), "{err}");
    // A connector's option given by the flag, which a table reads only when a query runs:
    // its bad value is reported at the flag, not at the INSERT (regression); one given by
    // SET, at that SET.
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/queries/nexmark");
    let (ddl, q0) = (format!("{suite}/ddl.sql"), format!("{suite}/q0.sql"));
    let (code, _, err) = run(&["run", "--set", "events.num=abc", &ddl, &q0]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "[ERROR] --set events.num=abc: option 'events.num' = 'abc' is not a valid u64"
        ),
        "{err}"
    );
    assert!(!err.contains("INSERT"), "{err}");
    let (_d2, set) = script("set.sql", "SET 'events.num' = 'x';\n");
    let (code, _, err) = run(&["run", &ddl, &set.display().to_string(), &q0]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "[ERROR] SET 'events.num' = 'x': option 'events.num' = 'x' is not a valid u64"
        ),
        "{err}"
    );
}

/// CSV ARRAY columns, as Flink's CSV format: elements joined by
/// `csv.array-element-delimiter` (default `;`), read with each element trimmed (strings
/// kept as written), an empty field an empty array, an empty number element NULL; written
/// the same way, with the table's own delimiter, a NULL element empty; a bad element is a
/// malformed record naming the column; a ROW column is refused at its table.
#[test]
fn csv_arrays_read_and_write_with_the_element_delimiter() {
    let out = tempfile::tempdir().expect("tmp");
    let (_d, f) = script(
        "arrays.sql",
        &format!(
            "CREATE TABLE t (id INT, tags ARRAY<STRING>, nums ARRAY<INT>) WITH ('connector' = 'filesystem', \
               'path' = '{}/tests/data/csv_arrays.csv', 'format' = 'csv');\n\
             SELECT id, tags, nums, CARDINALITY(tags) FROM t;\n\
             CREATE TABLE o (id INT, tags ARRAY<STRING>, nums ARRAY<INT>) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'csv', 'csv.array-element-delimiter' = '|');\n\
             INSERT INTO o SELECT * FROM t;\n",
            env!("CARGO_MANIFEST_DIR"),
            out.path().display()
        ),
    );
    let (code, stdout, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    for row in [
        "| 1  | [a, b, c] | [1, 2]       | 3 ",
        "| 2  | []        | []           | 0 ",
        "| 3  | [x|y]     | [7]          | 1 ",
        "| 4  | [a, , b]  | [1, NULL, 3] | 3 ",
    ] {
        assert!(stdout.contains(row), "{row}\n{stdout}");
    }
    let mut written = String::new();
    for e in std::fs::read_dir(out.path()).expect("output folder") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "csv") {
            written.push_str(&std::fs::read_to_string(p).expect("read"));
        }
    }
    let mut lines: Vec<&str> = written.lines().collect();
    lines.sort();
    // An element holding the delimiter is written as it is: read back, it splits.
    // A NULL element is written empty (the default null literal) and read back NULL.
    assert_eq!(
        lines,
        ["1,a|b|c,1|2", "2,,", "3,x|y,7", "4,a||b,1||3"],
        "{written}"
    );

    let (_d, f) = script(
        "bad.sql",
        &format!(
            "CREATE TABLE t (id INT, tags ARRAY<STRING>, nums ARRAY<INT>) WITH ('connector' = 'filesystem', \
               'path' = '{}/tests/data/csv_arrays.csv', 'format' = 'csv', 'csv.array-element-delimiter' = '+');\n\
             SELECT * FROM t;\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("csv_arrays.csv:1: column 'nums': an element is not of type INT"),
        "{stderr}"
    );
    let (_d, f) = script(
        "row.sql",
        "CREATE TABLE t (id INT, r ROW<a INT>) WITH ('connector' = 'filesystem', \
           'path' = 'x.csv', 'format' = 'csv');\n",
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("the CSV format cannot read column 'r' of type ROW<`a` INT>"),
        "{stderr}"
    );
}

/// `weir query --maxrows N` shows a table's first N rows and says how many there were;
/// piped, with no flag, every row is shown (the default of 40 is for a terminal).
#[test]
fn maxrows_limits_a_shown_table_not_the_count() {
    let sql = "SELECT x FROM (VALUES (1), (2), (3), (4), (5)) AS t(x) ORDER BY x";
    let (code, out, err) = run(&["query", "--maxrows", "2", sql]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "+---+\n| x |\n+---+\n| 1 |\n| 2 |\n+---+\n");
    assert!(
        err.contains("5 row(s) in") && err.contains("the first 2 shown"),
        "{err}"
    );
    let (_, out, err) = run(&["query", sql]);
    assert_eq!(out.matches("| 5 |").count(), 1, "{out}");
    assert!(!err.contains("shown"), "{err}");
    // Other formats are data, never cut.
    let (_, out, _) = run(&["query", "--maxrows", "2", "--format", "csv", sql]);
    assert_eq!(out, "x\n1\n2\n3\n4\n5\n");
}

/// `SET;` lists every setting Weir reads with its value — the default when unset — and the
/// other keys set, a secret's value masked, as Flink's sql-client lists its properties.
#[test]
fn set_alone_lists_every_setting_with_its_value() {
    let (code, out, err) = run(&[
        "query",
        "--format",
        "csv",
        "SET 'table.exec.batch-size' = '5'; SET 'kafka.sasl.password' = 'hunter2'; SET",
    ]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "table.exec.batch-size,5",
        "table.display.max-column-width,30",
        "table.local-time-zone,UTC",
        "execution.checkpointing.mode,EXACTLY_ONCE",
        "execution.checkpointing.interval,",
        "kafka.sasl.password,******",
    ] {
        assert!(out.lines().any(|l| l == line), "{line}: {out}");
    }
    assert!(!out.contains("hunter2"), "{out}");
}

/// The end-of-run summary is the plan as a tree, the sink first, a line per task with
/// short operator names and its rows beside it, within the terminal's width (`COLUMNS`
/// when stderr is not a terminal): Nexmark q5 at 80 columns.
#[test]
fn the_run_summary_is_a_tree_that_fits_the_terminal() {
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/queries/nexmark");
    let (_, stderr) = run_at_80(&[
        "run",
        "--set",
        "parallelism.default=1",
        "--set",
        "events.num=20000",
        &format!("{suite}/ddl.sql"),
        &format!("{suite}/q5.sql"),
    ]);
    let summary: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  ")).collect();
    // Every line: the summary's, and the job's started and finished lines, its statement
    // cut with `…` (regression: 123 and 136 characters).
    assert!(stderr.lines().all(|l| l.chars().count() <= 80), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("[INFO] Job 1 started: ") && l.ends_with('…')),
        "{stderr}"
    );
    let at = |needle: &str| {
        summary
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?}: {summary:#?}"))
    };
    // Sink, then the join under it, then both of its inputs, each fed by a source.
    assert!(at("Sink") < at("└─ project"));
    assert!(at("└─ project") < at("join left semi (window)"));
    assert!(
        summary
            .iter()
            .filter(|l| l.contains("Source: datagen"))
            .count()
            == 2
    );
    assert!(
        summary
            .iter()
            .any(|l| l.contains("├─ window aggregate HOP ← window HOP"))
    );
    // The join's 5 rows out, and no project ← project noise.
    let join = summary[at("join left semi (window)")];
    assert!(join.trim_end().ends_with(" 5"), "{join}");
    assert!(!stderr.contains("project ← project"), "{stderr}");

    // In parallel, a task run as several subtasks says how many: the generator is split in
    // two (its rows go to keyed operators), the window assignment (stateless) runs beside
    // each half, the keyed aggregates and the join run as two.
    let (_, stderr) = run_at_80(&[
        "run",
        "--set",
        "parallelism.default=2",
        "--set",
        "events.num=20000",
        &format!("{suite}/ddl.sql"),
        &format!("{suite}/q5.sql"),
    ]);
    let summary: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(
        summary.iter().all(|l| l.chars().count() <= 80),
        "{summary:#?}"
    );
    let join = summary
        .iter()
        .find(|l| l.contains("join left semi (window) ×2"))
        .unwrap_or_else(|| panic!("{summary:#?}"));
    assert!(join.trim_end().ends_with(" 5"), "{join}");
    assert_eq!(
        summary
            .iter()
            .filter(|l| l.contains("─ window aggregate HOP ×2"))
            .count(),
        2,
        "{summary:#?}"
    );
    assert!(
        summary
            .iter()
            .any(|l| l.contains("└─ window HOP ← filter ×2")),
        "{summary:#?}"
    );
    assert!(
        summary
            .iter()
            .any(|l| l.contains("Source: datagen") && l.contains("×2")),
        "{summary:#?}"
    );
}

/// A float sum's last digits depend on the order of its terms: over the generator at
/// parallelism 2, a window `SUM` of a `DOUBLE` keeps the source on one task (rows of one
/// key in the stream's order, the same answer each run), a `SUM` of a `BIGINT` splits it.
#[test]
fn a_float_sum_keeps_its_source_on_one_task() {
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/queries/nexmark");
    let source_line = |sum: &str| {
        let (_dir, f) = script(
            "q.sql",
            &format!(
                "CREATE TABLE o (auction BIGINT, s {sum}) WITH ('connector' = 'blackhole');\n\
                 INSERT INTO o SELECT auction, SUM(CAST(price AS {sum}) / 7) \
                 FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) \
                 GROUP BY auction, window_start, window_end;"
            ),
        );
        let (_, stderr) = run_at_80(&[
            "run",
            "--set",
            "parallelism.default=2",
            "--set",
            "events.num=20000",
            &format!("{suite}/ddl.sql"),
            &f.display().to_string(),
        ]);
        stderr
            .lines()
            .find(|l| l.contains("Source: datagen"))
            .unwrap_or_else(|| panic!("{stderr}"))
            .to_string()
    };
    assert!(!source_line("DOUBLE").contains('×'));
    assert!(source_line("BIGINT").contains("×2"));
}

/// `SHOW CREATE TABLE` prints the statement as text in a table-format run (as Flink's
/// sql-client does), not as one wide cell.
#[test]
fn show_create_table_prints_text() {
    let (_dir, f) = script(
        "sc.sql",
        "CREATE TABLE s (k BIGINT, v STRING) WITH ('connector' = 'blackhole');\n\
         ALTER TABLE s ADD w INT;\n\
         SHOW CREATE TABLE s;\n",
    );
    let (code, stdout, stderr) = run(&["-f", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "CREATE TABLE s (\n  k BIGINT,\n  v STRING,\n  w INT\n) WITH ('connector' = 'blackhole')\n"
    );
}

/// Flink's catalog statements, over Weir's one catalog and database (Flink's default
/// names): `SHOW CATALOGS/DATABASES/CURRENT …/[FULL] MODULES/JARS`, `USE`, `SHOW TABLES …
/// LIKE`, `SHOW COLUMNS FROM t LIKE`, `DESCRIBE EXTENDED`; an unknown catalog is an error
/// that names it.
#[test]
fn catalog_statements_answer_as_flinks_default_catalog() {
    let (_dir, f) = script(
        "cat.sql",
        "CREATE TABLE bids (auction BIGINT, bidder BIGINT, price BIGINT) \
           WITH ('connector' = 'blackhole');\n\
         CREATE TABLE people (id BIGINT, name STRING) WITH ('connector' = 'blackhole');\n\
         CREATE VIEW big_bids AS SELECT * FROM bids WHERE price > 10;\n\
         SHOW CATALOGS;\n\
         SHOW CURRENT CATALOG;\n\
         SHOW DATABASES;\n\
         SHOW CURRENT DATABASE;\n\
         USE CATALOG default_catalog;\n\
         USE default_database;\n\
         SHOW FULL MODULES;\n\
         SHOW TABLES FROM default_database LIKE 'b%';\n\
         SHOW TABLES NOT LIKE '%bids';\n\
         SHOW VIEWS ILIKE 'BIG%';\n\
         SHOW COLUMNS FROM bids LIKE '%er';\n\
         DESCRIBE EXTENDED people;\n\
         SHOW FUNCTIONS LIKE 'json_q%';\n\
         SHOW DATABASES LIKE 'default%';\n\
         SHOW CATALOGS NOT LIKE 'default%';\n\
         CREATE TABLE orders_2 (a INT) WITH ('connector' = 'blackhole');\n\
         CREATE TABLE orders22 (a INT) WITH ('connector' = 'blackhole');\n\
         SHOW TABLES LIKE 'orders\\_2';\n",
    );
    let (code, stdout, stderr) = run(&["run", "--format", "csv", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let want = [
        "catalog name\ndefault_catalog\n",
        "current catalog name\ndefault_catalog\n",
        "database name\ndefault_database\n",
        "current database name\ndefault_database\n",
        "module name,used\ncore,true\n",
        "name,kind\nbids,table (blackhole)\nbig_bids,view\n",
        "name,kind\npeople,table (blackhole)\n",
        "name,kind\nbig_bids,view\n",
        "name,type,null,key,extras,watermark\nbidder,BIGINT,true,,,\n",
        "name,type,null,key,extras,watermark\nid,BIGINT,true,,,\nname,STRING,true,,,\n",
        "function name\njson_query\n",
        "database name\ndefault_database\n",
        // An empty result, then only `orders_2`: `\_` is a literal `_`.
        "catalog name\n",
        "name,kind\norders_2,table (blackhole)\n",
    ];
    let mut rest = stdout.as_str();
    for w in want {
        let at = rest
            .find(w)
            .unwrap_or_else(|| panic!("{w:?} not next in:\n{stdout}"));
        rest = &rest[at + w.len()..];
    }
    let (_dir2, bad) = script("bad.sql", "USE CATALOG hive;\n");
    let (code, _, stderr) = run(&["run", &bad.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no catalog named 'hive'") && stderr.contains("1:13"),
        "{stderr}"
    );
}

/// `CREATE TABLE t WITH (…) AS SELECT …` (Flink's CTAS): the table takes the query's
/// columns (Flink's names: `EXPR$1` for an unaliased expression) and the query's rows are
/// written into it (with IF NOT EXISTS, into the table that exists); a CTAS whose insert
/// cannot run leaves no table behind.
#[test]
fn create_table_as_select_declares_the_table_and_fills_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let (_d, f) = script(
        "ctas.sql",
        &format!(
            "CREATE TABLE s (k BIGINT, v STRING) WITH ('connector' = 'datagen', \
               'number-of-rows' = '5', 'fields.k.kind' = 'sequence', 'fields.k.start' = '1', \
               'fields.k.end' = '5');\n\
             CREATE TABLE t WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv') \
               AS SELECT k, k * 2 FROM s WHERE k > 2;\n\
             DESCRIBE t;\n\
             CREATE TABLE IF NOT EXISTS t WITH ('connector' = 'filesystem', 'path' = '{}', \
               'format' = 'csv') AS SELECT k * 10, k FROM s WHERE k = 1;\n\
             CREATE TABLE counts WITH ('connector' = 'filesystem', 'path' = '{}', \
               'format' = 'csv') AS SELECT k, COUNT(*) AS n FROM s GROUP BY k;\n",
            out.display(),
            out.display(),
            dir.path().join("counts").display()
        ),
    );
    let (code, stdout, stderr) = run(&["run", "--format", "csv", &f.display().to_string()]);
    // The second CTAS is an updating query into an append-only table: refused.
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stdout.contains(
            "name,type,null,key,extras,watermark\nk,BIGINT,true,,,\nEXPR$1,BIGINT,true,,,\n"
        ),
        "{stdout}"
    );
    assert!(stderr.contains("takes appended rows only"), "{stderr}");
    let mut rows: Vec<String> = std::fs::read_dir(&out)
        .expect("the CTAS wrote its directory")
        .flat_map(|e| {
            let text = std::fs::read_to_string(e.expect("entry").path()).expect("read");
            text.lines().map(str::to_string).collect::<Vec<_>>()
        })
        .collect();
    rows.sort();
    // The CTAS with IF NOT EXISTS over the existing `t` inserted its rows into it, as
    // Flink's does.
    assert_eq!(rows, ["10,1", "3,6", "4,8", "5,10"]);
}

/// A CTAS whose insert is refused (an updating query into an append-only table) leaves no
/// table behind: the session goes on without it.
#[tokio::test]
async fn a_refused_ctas_leaves_no_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut session = weir::session::Session::new();
    session
        .run_collect(
            "CREATE TABLE s (k BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');",
        )
        .await
        .expect("source");
    let refused = session
        .run_collect(&format!(
            "CREATE TABLE counts WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv') \
             AS SELECT k, COUNT(*) AS n FROM s GROUP BY k;",
            dir.path().display()
        ))
        .await;
    let e = refused.expect_err("an updating query into a filesystem table");
    assert!(e.to_string().contains("takes appended rows only"), "{e}");
    let tables = session.run_collect("SHOW TABLES;").await.expect("show");
    let listed = weir::format::encode::row_texts(&tables[0], ",").expect("text");
    assert_eq!(listed, ["s,table (datagen)"]);
}

/// The session zone defaults to the machine's, as Flink's `table.local-time-zone` defaults
/// to the JVM's: `TZ` names it here. `SET` overrides it, and `'default'` brings it back.
#[test]
fn the_session_zone_defaults_to_the_machines() {
    let (_dir, f) = script(
        "zone.sql",
        "SELECT CAST(TO_TIMESTAMP_LTZ(0, 3) AS STRING) AS t;\n\
         SET 'table.local-time-zone' = 'UTC';\n\
         SELECT CAST(TO_TIMESTAMP_LTZ(0, 3) AS STRING) AS t;\n\
         SET 'table.local-time-zone' = 'default';\n\
         SELECT CAST(TO_TIMESTAMP_LTZ(0, 3) AS STRING) AS t;\n",
    );
    let out = weir()
        .env("TZ", "Asia/Shanghai")
        .args(["run", "--format", "csv", &f.display().to_string()])
        .output()
        .expect("weir runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let times: Vec<&str> = stdout.lines().filter(|l| l.starts_with("1970")).collect();
    assert_eq!(
        times,
        [
            "1970-01-01 08:00:00.000",
            "1970-01-01 00:00:00.000",
            "1970-01-01 08:00:00.000"
        ],
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The last value per key of a changelog printed as `+I[k, v]` / `+U[k, v]` / `-D[k, …]`.
fn last_per_key(printed: &str) -> std::collections::BTreeMap<String, String> {
    let mut last = std::collections::BTreeMap::new();
    for line in printed.lines() {
        let Some((kind, row)) = line.split_once('[') else {
            continue;
        };
        let row = row.trim_end_matches(']');
        let (key, value) = row.split_once(", ").unwrap_or((row, ""));
        match kind {
            "+I" | "+U" => {
                last.insert(key.to_string(), value.to_string());
            }
            "-D" => {
                last.remove(key);
            }
            _ => {}
        }
    }
    last
}

/// An inner join passes the order of its inputs on to its output: under an operator that
/// depends on that order (a `LISTAGG` per key) the generator is not split at parallelism
/// 2, and every key's list holds parallelism 1's elements. (Their order also depends on
/// whether a bid or its auction reaches the join first — two channels, as in Flink — so
/// only the elements are compared.) Into a sink that takes rows in any order the same
/// join's generator is split. Regression: the generator was split under any
/// order-insensitive join.
#[test]
fn an_order_sensitive_aggregate_over_a_join_keeps_its_source_on_one_task() {
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/queries/nexmark");
    let run_at = |parallelism: &str, sql: &str| {
        let (_dir, f) = script("q.sql", sql);
        run_at_80(&[
            "run",
            "--set",
            &format!("parallelism.default={parallelism}"),
            "--set",
            "events.num=20000",
            &format!("{suite}/ddl.sql"),
            &f.display().to_string(),
        ])
    };
    let listagg = "CREATE TABLE o (auction BIGINT, prices STRING) WITH ('connector' = 'print');\n\
                   INSERT INTO o SELECT B.auction, LISTAGG(CAST(B.price AS STRING)) \
                   FROM bid B JOIN auction A ON B.auction = A.id GROUP BY B.auction;";
    let (one, _) = run_at("1", listagg);
    let (two, stderr) = run_at("2", listagg);
    let sources: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("Source: datagen"))
        .collect();
    assert_eq!(sources.len(), 2, "{stderr}");
    assert!(sources.iter().all(|l| !l.contains('×')), "{stderr}");
    let elements = |printed: &str| {
        last_per_key(printed)
            .into_iter()
            .map(|(k, v)| {
                let mut e: Vec<String> = v.split(',').map(str::to_string).collect();
                e.sort();
                (k, e)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (one, two) = (elements(&one), elements(&two));
    assert!(one.len() > 1000, "{}", one.len());
    let differing = one.iter().filter(|(k, v)| two.get(*k) != Some(*v)).count();
    assert_eq!((differing, one.len()), (0, two.len()));

    let plain = "CREATE TABLE o (auction BIGINT, price BIGINT, seller BIGINT) \
                 WITH ('connector' = 'blackhole');\n\
                 INSERT INTO o SELECT B.auction, B.price, A.seller \
                 FROM bid B JOIN auction A ON B.auction = A.id;";
    let (_, stderr) = run_at("2", plain);
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains("Source: datagen"))
            .all(|l| l.contains("×2")),
        "{stderr}"
    );
}

/// A join over file sources gives the rows of parallelism 1 at parallelism 2, with or
/// without a watermark (the files are read on one task; the join runs as two).
#[test]
fn a_join_of_files_gives_the_same_rows_at_parallelism_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let (orders, customers) = (dir.path().join("orders"), dir.path().join("customers.csv"));
    std::fs::create_dir_all(&orders).expect("mkdir");
    for f in 0..2 {
        let text: String = (0..3000)
            .map(|i| {
                format!(
                    "{},{},{}\n",
                    f * 3000 + i,
                    (i * 7) % 101,
                    "x".repeat(i % 40)
                )
            })
            .collect();
        std::fs::write(orders.join(format!("part-{f}.csv")), text).expect("write");
    }
    let text: String = (0..100).map(|i| format!("{i},name{i}\n")).collect();
    std::fs::write(&customers, text).expect("write");
    let run_at = |parallelism: &str, watermark: &str| {
        let (_d, f) = script(
            "j.sql",
            &format!(
                "CREATE TABLE o (id BIGINT, cid BIGINT, pad STRING{watermark}) \
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
                 CREATE TABLE c (id BIGINT, name STRING) \
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
                 CREATE TABLE out WITH ('connector' = 'print');\n\
                 INSERT INTO out SELECT o.id, c.name FROM o JOIN c ON o.cid = c.id;\n",
                orders.display(),
                customers.display()
            ),
        );
        let (stdout, stderr) = run_at_80(&[
            "run",
            "--set",
            &format!("parallelism.default={parallelism}"),
            &f.display().to_string(),
        ]);
        let mut rows: Vec<String> = stdout.lines().map(str::to_string).collect();
        rows.sort();
        let source = stderr
            .lines()
            .find(|l| l.contains("Source: o"))
            .unwrap_or_else(|| panic!("{stderr}"))
            .to_string();
        (rows, source)
    };
    let (one, _) = run_at("1", "");
    assert_eq!(one.len(), 5942, "orders whose customer exists");
    let (two, source) = run_at("2", "");
    assert!(!source.contains('×'), "{source}");
    assert_eq!(two, one);
    let time = ", ts AS TO_TIMESTAMP_LTZ(id, 3), WATERMARK FOR ts AS ts";
    let (timed, source) = run_at("2", time);
    assert!(!source.contains('×'), "{source}");
    assert_eq!(timed, one);
}

/// `weir query … | head -n 2`: the reader goes away mid-result and the query ends with 0,
/// saying nothing (a closed output is no failure).
#[test]
fn weir_query_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let mut child = weir()
        .args([
            "query",
            "--format",
            "csv",
            "SELECT * FROM generate_series(1, 2000000)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("value"));
    assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("1"));
    drop(lines);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.to_lowercase().contains("error"), "{stderr}");
}

/// A relative path is read from the working directory, as in Flink: run from elsewhere, a
/// query naming one says so, with the folder it looked in.
#[test]
fn a_relative_path_outside_its_folder_says_where_it_looked() {
    let elsewhere = tempfile::tempdir().expect("tmp");
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/queries/nexmark");
    let out = weir()
        .current_dir(elsewhere.path())
        .args([
            "run",
            "--set",
            "events.num=2000",
            &format!("{suite}/ddl.sql"),
            &format!("{suite}/q13.sql"),
        ])
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("cannot read 'queries/nexmark/side_input.txt'"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "read from the working directory, here {}",
            elsewhere.path().display()
        )),
        "{stderr}"
    );
}

/// The filesystem sink writes JSON rows as Flink's JSON format does: every column, NULL as
/// `null`, timestamps in the SQL (or ISO-8601) form with the fraction they need, a
/// TIMESTAMP_LTZ with `Z`, a TIME in whole seconds, decimals as Java's `BigDecimal.toString()` (or plain), BYTES
/// in Base64 — and a JSON source reads all of it back to the same values.
#[test]
fn json_rows_are_written_as_flinks_json_format_and_read_back() {
    let out = tempfile::tempdir().expect("tmp");
    let columns = "a INT, s STRING, d DECIMAL(10, 9), ts TIMESTAMP(3), lt TIMESTAMP_LTZ(3), \
                   t TIME(3), b BYTES, m MAP<STRING, INT>";
    let row = "SELECT 1, CAST(NULL AS STRING), CAST(0.000000027 AS DECIMAL(10, 9)), \
               TIMESTAMP '2020-10-10 00:00:01.5', TO_TIMESTAMP_LTZ(1602288000000, 3), \
               TIME '12:30:00.5', CAST('hi' AS BYTES), MAP['k', 1]";
    let table = |name: &str, extra: &str| {
        format!(
            "CREATE TABLE {name} ({columns}) WITH ('connector' = 'filesystem', \
             'path' = '{}/{name}', 'format' = 'json'{extra});\n",
            out.path().display()
        )
    };
    let (_d, f) = script(
        "json.sql",
        &format!(
            "{}{}INSERT INTO sql_form {row};\nINSERT INTO iso_form {row};\n",
            table("sql_form", ""),
            table(
                "iso_form",
                ", 'json.timestamp-format.standard' = 'ISO-8601', \
                 'json.encode.decimal-as-plain-number' = 'true'"
            ),
        ),
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let written = |name: &str| {
        let mut text = String::new();
        for e in std::fs::read_dir(out.path().join(name)).expect("output folder") {
            text.push_str(&std::fs::read_to_string(e.expect("entry").path()).expect("read"));
        }
        text
    };
    assert_eq!(
        written("sql_form"),
        "{\"a\":1,\"s\":null,\"d\":2.7E-8,\"ts\":\"2020-10-10 00:00:01.5\",\
         \"lt\":\"2020-10-10 00:00:00Z\",\"t\":\"12:30:00\",\"b\":\"aGk=\",\"m\":{\"k\":1}}\n"
    );
    assert_eq!(
        written("iso_form"),
        "{\"a\":1,\"s\":null,\"d\":0.000000027,\"ts\":\"2020-10-10T00:00:01.5\",\
         \"lt\":\"2020-10-10T00:00:00Z\",\"t\":\"12:30:00\",\"b\":\"aGk=\",\"m\":{\"k\":1}}\n"
    );
    // Read back: the same values from both forms.
    let (_d, f) = script(
        "read.sql",
        &format!(
            "{}{}SELECT a, s, d, ts, t, CAST(b AS STRING), m['k'] FROM sql_form \
             UNION ALL SELECT a, s, d, ts, t, CAST(b AS STRING), m['k'] FROM iso_form;\n",
            table("sql_form", ""),
            table(
                "iso_form",
                ", 'json.timestamp-format.standard' = 'ISO-8601'"
            ),
        ),
    );
    let (code, stdout, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let rows = stdout
        .lines()
        .filter(|l| {
            l.contains("0.000000027 ")
                && l.contains("2020-10-10 00:00:01.500 ")
                && l.contains(" hi ")
        })
        .count();
    assert_eq!(rows, 2, "{stdout}");

    // A value Flink does not accept is refused at its option.
    let (_d, f) = script(
        "bad.sql",
        &table("o", ", 'json.map-null-key.mode' = 'KEEP'"),
    );
    let (code, _, stderr) = run(&["run", &f.display().to_string()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("option 'json.map-null-key.mode': 'KEEP' is not a mode"),
        "{stderr}"
    );
}

/// A meta command that fails in a `-f` script or piped input is reported at its line and
/// column and makes the run exit 1, as a failed statement does; the statements around it
/// still run. Regression: reported with no place, and the run exited 0 (also for
/// `STOP JOB`, which the shell handles itself).
#[test]
fn a_failed_meta_command_in_a_script_exits_1_at_its_line() {
    let (_dir, f) = script(
        "m.sql",
        "\\format csv\nSELECT 1 AS a;\n  \\x maybe\n\\stop 99\nSELECT 2 AS b;\nSTOP JOB '98';\n",
    );
    let (code, stdout, stderr) = run(&["-f", &f.display().to_string()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("m.sql:3:3: \\x takes on or off, not 'maybe'"),
        "{stderr}"
    );
    assert!(stderr.contains("m.sql:4:1: no job 99"), "{stderr}");
    // Flink's statement form of the same, handled by the shell.
    assert!(stderr.contains("m.sql:6:1: no job 98"), "{stderr}");
    assert_eq!(stdout, "a\n1\nb\n2\n");
    // The same from a pipe (no file name).
    let mut child = weir()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"SELECT 1 AS a;\n\\bogus\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("at 2:1: unknown command '\\bogus'"),
        "{stderr}"
    );
}

/// `--maxrows` and `\maxrows` (datafusion-cli's row limit): a bounded query's table shows
/// its first rows and the footer counts them all; a stream's rows are never cut, and
/// `\maxrows 0` shows all again. A bad value is an error at its line.
#[test]
fn maxrows_cuts_a_bounded_tables_rows_and_counts_them_all() {
    let (dir, path) = script(
        "rows.sql",
        "CREATE TABLE t (name STRING, v INT) WITH ('connector' = 'filesystem', 'path' = 'rows.csv', 'format' = 'csv');\n\
         SELECT v FROM t;\n\
         \\maxrows 0\n\
         SELECT v FROM t WHERE v > 7;\n\
         CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '5', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '5');\n\
         \\maxrows 2\n\
         SELECT id FROM g;\n\
         \\maxrows two\n",
    );
    let rows: String = (0..10).map(|i| format!("n{i},{i}\n")).collect();
    std::fs::write(dir.path().join("rows.csv"), rows).expect("write");
    let out = weir()
        .current_dir(dir.path())
        .args(["--maxrows", "3", "-f", &path.display().to_string()])
        .output()
        .expect("weir runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let cells: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.contains("| v") && !l.contains("| id"))
        .map(|l| l.trim_matches(|c| c == '|' || c == ' '))
        .collect();
    // The first 3 of 10, then both rows over 7, then the stream's 5 whole.
    assert_eq!(
        cells,
        ["0", "1", "2", "8", "9", "1", "2", "3", "4", "5"],
        "{stdout}"
    );
    assert!(
        stderr.contains("10 row(s)")
            && stderr.contains("(the first 3 shown; \\maxrows 0 shows all)"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("shown;").count(), 1, "{stderr}");
    assert!(
        stderr.contains("rows.sql:8:1: \\maxrows takes a number of rows (0: all), not 'two'"),
        "{stderr}"
    );
}
