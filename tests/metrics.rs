//! Metrics as a user's monitoring sees them: a real Prometheus server (Debian's
//! `prometheus`, which `bash .ci/run` installs) scrapes `weir run --metrics-addr` every
//! second while a paced job runs, and the test asks Prometheus's own query API whether the
//! counters, the watermark and the end-to-end latency histogram it stored agree with the
//! job's pace and with the rows the job wrote.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The `prometheus` binary, if installed (CI must have it).
fn prometheus() -> Option<String> {
    let path = std::env::var("WEIR_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let ok = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have prometheus (bash .ci/run installs Debian's package)"
        );
        eprintln!("skipped: prometheus is not installed (apt-get install prometheus)");
        return None;
    }
    Some(path)
}

/// Kills the child when the test ends, however it ends.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One instant query through Prometheus's HTTP API: the first sample's value, if any.
fn query(prom: u16, q: &str) -> Option<f64> {
    let body = ureq::get(format!("http://127.0.0.1:{prom}/api/v1/query"))
        .query("query", q)
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn csv_lines(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|f| {
            let n = f.file_name().to_string_lossy().to_string();
            !n.starts_with('.') && n.ends_with(".csv")
        })
        .map(|f| {
            std::fs::read_to_string(f.path())
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum()
}

#[test]
fn prometheus_scrapes_rows_watermark_and_latency_of_a_running_job() {
    let Some(prometheus) = prometheus() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (weir_port, prom_port) = (free_port(), free_port());
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: weir\n    static_configs:\n      - targets: ['127.0.0.1:{weir_port}']\n"
        ),
    )
    .expect("config");
    let _prom = Kill(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    // 2 000 rows a second, event time 1 ms per row (so a 1 s window closes every half
    // second of wall time), no watermark delay, into CSV files.
    let out = tmp.path().join("out");
    let sql = tmp.path().join("job.sql");
    std::fs::write(
        &sql,
        format!(
            "SET 'pipeline.name' = 'paced_count';\n\
             CREATE TABLE src (i BIGINT, ts AS TO_TIMESTAMP_LTZ(i, 3), WATERMARK FOR ts AS ts) \
               WITH ('connector' = 'datagen', 'rows-per-second' = '2000', \
               'fields.i.kind' = 'sequence', 'fields.i.start' = '0', 'fields.i.end' = '100000000');\n\
             CREATE TABLE counts (window_start TIMESTAMP(3), n BIGINT) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'csv');\n\
             INSERT INTO counts SELECT window_start, COUNT(*) FROM \
               TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end;\n",
            out.display()
        ),
    )
    .expect("sql");
    let mut weir = Kill(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "--metrics-addr", &format!("127.0.0.1:{weir_port}")])
            .arg(&sql)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weir starts"),
    );
    // Wait until Prometheus has scraped the job for a while: a rate over 5 s needs it.
    let sink = r#"operator="sink""#;
    let source = r#"operator="source src""#;
    let started = Instant::now();
    let mut rate = None;
    while started.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(r) = query(
            prom_port,
            &format!("rate(weir_operator_records_out_total{{{source}}}[5s])"),
        ) && query(prom_port, "count_over_time(weir_job_uptime_seconds[10s])")
            .is_some_and(|n| n >= 6.0)
        {
            rate = Some(r);
            break;
        }
    }
    let rate = rate.expect("Prometheus scraped the job's source counter");
    // The source's pace, as Prometheus computed it from the counters it scraped.
    assert!(
        (1500.0..=2500.0).contains(&rate),
        "source rows/s {rate}, paced at 2000"
    );
    let sink_rows = query(
        prom_port,
        &format!("weir_operator_records_out_total{{{sink}}}"),
    )
    .expect("sink rows");
    assert!(sink_rows >= 5.0, "windows written: {sink_rows}");
    // Every row the sink wrote has its latency in the histogram: the two counters of one
    // scrape, compared in one query (two queries can straddle a scrape: 22 against 21).
    let unmeasured = query(
        prom_port,
        &format!(
            "sum(weir_operator_records_out_total{{{sink}}}) - sum(weir_job_end_to_end_latency_seconds_count)"
        ),
    )
    .expect("rows without a latency");
    assert_eq!(unmeasured, 0.0, "sink rows {sink_rows}");
    let p50 = query(
        prom_port,
        "histogram_quantile(0.5, weir_job_end_to_end_latency_seconds_bucket)",
    )
    .expect("p50");
    // A window fires as the batch carrying its watermark goes through: the time to pass
    // one batch through the job, well under a 100 ms batch interval, never zero.
    assert!(p50 > 0.0 && p50 < 0.1, "p50 end-to-end latency {p50} s");
    // The window aggregate's state: its open slice's group and COUNT accumulator (sampled
    // 4 times a second; right after a window fires it holds nothing, so over 10 s).
    let state = query(
        prom_port,
        r#"max_over_time(weir_operator_state_bytes{operator=~".*window aggregate.*"}[10s])"#,
    )
    .expect("the window aggregate's state size");
    assert!(state > 0.0, "state bytes {state}");
    // The window operator's processing latency per batch: a histogram Prometheus can
    // take a quantile of, and small (a 100-row batch of a COUNT).
    let p99_processing = query(
        prom_port,
        r#"histogram_quantile(0.99, weir_operator_processing_latency_seconds_bucket{operator=~".*window aggregate.*"})"#,
    )
    .expect("the window operator's processing latency");
    assert!(
        p99_processing > 0.0 && p99_processing < 0.25,
        "p99 processing {p99_processing} s"
    );
    let watermark = query(prom_port, "weir_job_watermark_seconds").expect("watermark");
    let source_rows = query(
        prom_port,
        &format!("weir_operator_records_out_total{{{source}}}"),
    )
    .expect("source rows");
    // Event time is 1 ms per row: the watermark trails the rows read by at most a batch.
    assert!(
        watermark <= source_rows / 1000.0 && watermark > source_rows / 1000.0 - 1.0,
        "watermark {watermark} s after {source_rows} rows"
    );
    eprintln!(
        "scraped: source {rate:.0} rows/s, {sink_rows} windows written, p50 latency {:.2} ms, watermark {watermark} s",
        p50 * 1000.0
    );
    // Stop the job (SIGTERM: it commits what it holds): the files hold at least the rows
    // Prometheus saw written.
    let pid = weir.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let (ok, err) = stderr_of(&mut weir.0);
    assert!(ok, "{err}");
    assert!(err.contains("end-to-end latency: p50"), "{err}");
    let written = csv_lines(&out) as f64;
    assert!(
        written >= sink_rows,
        "{written} rows in the files, {sink_rows} scraped"
    );
}

/// Parses a latency as the summary prints it: `840 µs`, `12.3 ms`, `2.41 s`.
fn parse_latency(text: &str) -> Option<Duration> {
    let (n, unit) = text.trim().split_once(' ')?;
    let n: f64 = n.parse().ok()?;
    let secs = match unit.trim_end_matches([',', ')']) {
        "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// The latency Weir measures is the one a reader of its output sees. The test paces rows
/// into stdin itself, 100 a second, event time 10 ms per row, so event time follows the
/// wall clock; with a 2 s watermark delay, the window ending at `E` ms can fire once the
/// row with event time `E + 2000 − 1` is written, at `start + E + 2000` ms of wall time. The
/// test timestamps each window row as it reads it from stdout: that delay beyond the
/// watermark is what a user waits for. Weir's p50 must not exceed it, and may fall short of
/// it only by what happens before the source emits (stdin batches lines for up to 100 ms).
#[test]
fn measured_latency_agrees_with_what_a_reader_of_the_output_sees() {
    use std::io::{BufRead, Write};
    let tmp = tempfile::tempdir().expect("tmp");
    let sql = tmp.path().join("paced.sql");
    std::fs::write(
        &sql,
        "CREATE TABLE src (k BIGINT, ts AS TO_TIMESTAMP_LTZ(k * 10, 3), \
           WATERMARK FOR ts AS ts - INTERVAL '2' SECOND) \
           WITH ('connector' = 'stdin', 'format' = 'json');\n\
         SELECT window_end AS e, COUNT(*) AS n FROM \
           TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
           GROUP BY window_start, window_end;\n",
    )
    .expect("sql");
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "--format", "ndjson"])
            .arg(&sql)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weir starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut seen = vec![];
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            seen.push((Instant::now(), line));
        }
        seen
    });
    let mut stdin = child.0.stdin.take().expect("stdin");
    // Let the job start before the clock starts.
    std::thread::sleep(Duration::from_millis(1500));
    let start = Instant::now();
    let rows = 800;
    for k in 0..rows {
        let due = start + Duration::from_millis(k * 10);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        writeln!(stdin, "{{\"k\": {k}}}").expect("write");
        stdin.flush().expect("flush");
    }
    drop(stdin);
    let seen = reader.join().expect("reader");
    let (ok, out) = stderr_of(&mut child.0);
    assert!(ok, "{out}");
    // Windows that fired while rows were still coming: end + 2 s within the input.
    let mut observed: Vec<Duration> = vec![];
    for (at, line) in &seen {
        let v: serde_json::Value = serde_json::from_str(line).expect("ndjson");
        // `1970-01-01T00:00:04Z`: event time starts at the epoch.
        let clock = v["e"]
            .as_str()
            .and_then(|e| e.split('T').nth(1))
            .unwrap_or_else(|| panic!("a window end: {line}"));
        let end_ms: u64 = clock
            .trim_end_matches('Z')
            .split(':')
            .map(|p| p.parse::<f64>().expect("a clock time"))
            .fold(0.0, |acc, p| acc * 60.0 + p) as u64
            * 1000;
        let due_ms = end_ms + 2000;
        if due_ms >= rows * 10 {
            continue;
        }
        let due = start + Duration::from_millis(due_ms);
        observed.push(at.saturating_duration_since(due));
    }
    observed.sort();
    assert!(
        observed.len() >= 4,
        "windows fired during the run: {seen:?}"
    );
    let seen_p50 = observed[observed.len() / 2];
    let p50 = out
        .split("end-to-end latency: p50 ")
        .nth(1)
        .and_then(|t| parse_latency(t.split(',').next()?))
        .unwrap_or_else(|| panic!("no latency in the summary: {out}"));
    eprintln!("measured p50 {p50:?}; a reader saw p50 {seen_p50:?} beyond the watermark delay");
    assert!(p50 > Duration::ZERO);
    assert!(
        p50 <= seen_p50 + Duration::from_millis(5),
        "measured {p50:?} exceeds what the reader saw ({seen_p50:?})"
    );
    assert!(
        seen_p50 <= p50 + Duration::from_millis(160),
        "the reader waited {seen_p50:?}, measured {p50:?}: more than stdin's 100 ms batching apart"
    );
}

/// Waits for the process: whether it exited 0, and its stderr.
fn stderr_of(child: &mut Child) -> (bool, String) {
    use std::io::Read;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    (ok, err)
}

/// Swallows what it is given.
struct Discard;

impl weir::sink::Sink for Discard {
    fn write(&mut self, _batch: &datafusion::arrow::record_batch::RecordBatch) -> weir::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> weir::Result<()> {
        Ok(())
    }
}

/// A running job's plan with live numbers (the shell's `EXPLAIN JOB`): a session window's
/// open sessions as its state, the source's current rate, and the late rows the session
/// operator dropped, counted for its task as well as for the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_jobs_plan_shows_its_state_rates_and_late_rows() {
    let mut s = weir::Session::new();
    // 16 000 rows at 4 000 a second, event time 1 ms per row, 10 keys. From row 4 000 on,
    // every row with i % 100 = 99 is 3 s behind and has a key of its own (10), with no
    // open session it could join: its session would end 2 s before the watermark (which
    // trails the rows by at most one 500-row batch), so it is late — 120 rows.
    s.run_collect(
        "SET 'table.exec.batch-size' = '500';\n\
         CREATE TABLE src (i BIGINT, \
           k AS CASE WHEN i % 100 = 99 AND i >= 4000 THEN 10 ELSE i % 10 END, \
           ts AS TO_TIMESTAMP_LTZ(CASE WHEN i % 100 = 99 AND i >= 4000 THEN i - 3000 ELSE i END, 3), \
           WATERMARK FOR ts AS ts) \
         WITH ('connector' = 'datagen', 'rows-per-second' = '4000', \
           'fields.i.kind' = 'sequence', 'fields.i.start' = '0', 'fields.i.end' = '15999');",
    )
    .await
    .expect("ddl");
    let stmt = weir::sql::parser::parse_script(
        "SELECT k, window_start, window_end, COUNT(*) AS n \
         FROM TABLE(SESSION(TABLE src PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
         GROUP BY k, window_start, window_end",
    )
    .expect("parse")
    .remove(0);
    let job = s.start_into(&stmt, Box::new(Discard)).await.expect("start");
    let metrics = job.metrics.clone();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let live = metrics.explain().expect("the plan of a running job");
    let session_line = task_line(&live, "session window aggregate");
    // Each key's rows are 10 ms apart in event time: one open session per key.
    assert!(
        session_line.contains("state 10 rows"),
        "ten open sessions:\n{live}"
    );
    let source = metrics.operator("source").expect("the source's metrics");
    let (_, rate) = source.rates(metrics.started);
    assert!(
        (2500.0..=5500.0).contains(&rate),
        "source rows/s {rate}, paced at 4000:\n{live}"
    );
    let source_line = live
        .lines()
        .find(|l| l.contains("Source: src"))
        .unwrap_or_else(|| panic!("no source in\n{live}"));
    assert!(source_line.contains("/s)"), "{source_line}");
    job.wait().await.expect("runs to its end");
    let task = metrics
        .operators()
        .into_iter()
        .find(|o| o.name.contains("session window aggregate"))
        .expect("the session task");
    let late = task.late_rows.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(late, 120);
    assert_eq!(
        metrics.late_rows.load(std::sync::atomic::Ordering::Relaxed),
        120
    );
    let done = metrics.explain().expect("the plan of an ended job");
    let session_line = task_line(&done, "session window aggregate");
    assert!(session_line.contains("late 120"), "{done}");
    assert!(session_line.contains("in 16000 rows"), "{done}");
}

/// The line of `plan` (from `JobMetrics::explain`) that carries the numbers of the task
/// running the operator named by `needle`: the first line of its chain.
fn task_line<'a>(plan: &'a str, needle: &str) -> &'a str {
    let lines: Vec<&str> = plan.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle} in\n{plan}"));
    lines[..=at]
        .iter()
        .rev()
        .find(|l| !l.ends_with("[same task]"))
        .copied()
        .unwrap_or_else(|| panic!("no task line above {needle} in\n{plan}"))
}
