//! Kafka against a real Kafka-protocol broker (tansu) started here on 127.0.0.1, with an
//! independent client (Python confluent-kafka, `tests/kafka_client.py`) on the other side:
//! what it writes Weir reads (every row once, metadata columns, every startup and bounded
//! mode, a windowed query equal to the same query over a file), what Weir writes it reads;
//! two Weir consumers in one group share the partitions across a rebalance without losing or
//! repeating a row; a broker restarted mid-stream is reconnected; a broker that is down at
//! start fails the query after a bounded retry; a slow sink keeps memory flat while a
//! million-row topic waits; a malformed message names its topic, partition and offset.
//!
//! The broker binary comes from `$WEIR_TANSU` or `tansu` on the PATH (`bash .ci/run`
//! builds it when missing); without it the tests are skipped locally and fail under CI=true.

mod common;
use common::rows;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{Int32Type, TimestampMillisecondType};
use weir::Session;
use weir::sink::Sink;
use weir::sql::parser::parse_script;

fn tansu() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WEIR_TANSU") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    })
}

/// A free TCP port of 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A broker on a free port of 127.0.0.1, stopped when dropped.
struct Broker {
    child: Child,
    port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Option<Broker> {
        let Some(bin) = tansu() else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must have the tansu broker (bash .ci/run builds it)"
            );
            eprintln!("skipped: no tansu broker ($WEIR_TANSU or PATH)");
            return None;
        };
        let port = free_port();
        let dir = tempfile::tempdir().expect("tmp");
        let child = Self::spawn(&bin, port, dir.path());
        Some(Broker {
            child,
            port,
            bin,
            dir,
        })
    }

    /// Starts the broker process on `port`, its data in `dir`, and waits until it listens.
    fn spawn(bin: &std::path::Path, port: u16, dir: &std::path::Path) -> Child {
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the broker did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Stops the broker (SIGTERM, as an operator would) and starts it again on the same
    /// port and data, `down` later.
    fn restart(&mut self, down: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = Self::spawn(&self.bin, self.port, self.dir.path());
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(&self.bin)
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--partitions",
                &partitions.to_string(),
                name,
            ])
            .output()
            .expect("tansu topic create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 2026-01-01T00:00:00Z: message i of `produce-seq` is stamped `BASE + i * 10` ms.
const BASE: i64 = 1767225600000;

/// Runs the independent client; returns what it printed.
fn client(args: &[&str]) -> String {
    client_with_input(args, "")
}

/// Runs the independent client with `input` on its stdin.
fn client_with_input(args: &[&str], input: &str) -> String {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("client stdin");
    }
    let out = child.wait_with_output().expect("the client ends");
    assert!(
        out.status.success(),
        "kafka_client.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn sum_of(batches: &[RecordBatch], col: usize) -> (usize, i64) {
    let values = ints(batches, col);
    (values.len(), values.iter().sum())
}

fn ints(batches: &[RecordBatch], col: usize) -> Vec<i64> {
    let mut out = vec![];
    for b in batches {
        let a = b
            .column(col)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("BIGINT");
        out.extend(a.iter().flatten());
    }
    out
}

async fn collect(script: &str) -> Vec<RecordBatch> {
    let mut s = Session::new();
    let mut r = tokio::time::timeout(Duration::from_secs(120), s.run_collect(script))
        .await
        .expect("the query ends in time")
        .expect("the query runs");
    r.pop().unwrap_or_default()
}

/// A sink that keeps the BIGINT values of its first column, shared with the test.
struct Keep(Arc<Mutex<Vec<i64>>>);

impl Sink for Keep {
    fn write(&mut self, batch: &RecordBatch) -> weir::Result<()> {
        let a = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("BIGINT");
        self.0.lock().expect("lock").extend(a.iter().flatten());
        Ok(())
    }
    fn finish(&mut self) -> weir::Result<()> {
        Ok(())
    }
}

/// Stops a standing query when the test ends, failed or not, so that its source thread
/// does not keep the test process alive.
struct StopOnDrop(weir::job::StopHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Starts `SELECT v FROM <table>` after the DDL, into a [`Keep`] sink.
async fn start_keeping(
    ddl: &str,
    table: &str,
) -> (StopOnDrop, weir::job::Job, Arc<Mutex<Vec<i64>>>) {
    let mut s = Session::new();
    s.run_collect(ddl).await.expect("ddl");
    let kept = Arc::new(Mutex::new(vec![]));
    let stmt = parse_script(&format!("SELECT v FROM {table}"))
        .expect("parse")
        .remove(0);
    let job = s
        .start_into(&stmt, Box::new(Keep(kept.clone())))
        .await
        .expect("the query starts");
    (StopOnDrop(job.stop_handle()), job, kept)
}

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A kafka table `name` over `topic` with the given startup and bounded options.
fn clicks_table(
    name: &str,
    topic: &str,
    servers: &str,
    modes: &str,
    extra_columns: &str,
) -> String {
    format!(
        "CREATE TABLE {name} (v BIGINT, user_id BIGINT, ts TIMESTAMP(3),{extra_columns} \
         WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'kafka', \
         'topic' = '{topic}', 'properties.bootstrap.servers' = '{servers}', 'format' = 'json', {modes});"
    )
}

/// `SELECT v` over the topic `clicks`, read with the given startup and bounded options.
async fn clicks_v(servers: &str, modes: &str) -> Vec<RecordBatch> {
    collect(&format!(
        "{}\nSELECT v FROM clicks;",
        clicks_table("clicks", "clicks", servers, modes, "")
    ))
    .await
}

const ALL: &str = "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_independent_client_writes_weir_reads() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("clicks", 4);
    let servers = broker.bootstrap();
    client(&["produce-seq", &servers, "clicks", "2000", "4", "0"]);

    // Every row once.
    let rows_read = clicks_v(&servers, ALL).await;
    assert_eq!(sum_of(&rows_read, 0), (2000, 2000 * 2001 / 2));

    // A windowed query over the 4 partitions equals the same query over the same rows in a
    // file (each partition has its own watermark, so their interleaving loses nothing).
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("clicks.json");
    let mut text = String::new();
    for i in 1..=2000i64 {
        let ms = i * 10;
        text.push_str(&format!(
            "{{\"v\": {i}, \"user_id\": {}, \"ts\": \"2026-01-01 00:00:{:02}.{:03}\"}}\n",
            i % 20,
            ms / 1000,
            ms % 1000
        ));
    }
    std::fs::write(&file, text).expect("write");
    let query = |t: &str| {
        format!(
            "SELECT user_id, COUNT(*) AS n, SUM(v) AS s, window_start, window_end FROM \
             TABLE(TUMBLE(TABLE {t}, DESCRIPTOR(ts), INTERVAL '3' SECOND)) \
             GROUP BY user_id, window_start, window_end;"
        )
    };
    let from_kafka = collect(&format!(
        "{}\n{}",
        clicks_table("clicks", "clicks", &servers, ALL, ""),
        query("clicks")
    ))
    .await;
    let from_file = collect(&format!(
        "CREATE TABLE f (v BIGINT, user_id BIGINT, ts TIMESTAMP(3), \
         WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'json');\n{}",
        file.display(),
        query("f")
    ))
    .await;
    assert_eq!(rows(&from_file).len(), 20 * 7);
    assert_eq!(rows(&from_kafka), rows(&from_file));

    // Metadata columns: partition, offset, key, timestamp and topic of every message.
    let meta = collect(&format!(
        "{}\nSELECT v, p, o, k, kts, topic FROM clicks;",
        clicks_table(
            "clicks",
            "clicks",
            &servers,
            ALL,
            " p INT METADATA FROM 'partition' VIRTUAL, o BIGINT METADATA FROM 'offset' VIRTUAL, \
             k STRING METADATA FROM 'key' VIRTUAL, kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL, \
             topic STRING METADATA VIRTUAL,"
        )
    ))
    .await;
    let mut n = 0;
    for b in &meta {
        let v = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("v");
        let p = b.column(1).as_primitive::<Int32Type>();
        let o = b
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("o");
        let k = b.column(3).as_string::<i32>();
        let kts = b.column(4).as_primitive::<TimestampMillisecondType>();
        let topic = b.column(5).as_string::<i32>();
        for r in 0..b.num_rows() {
            let i = v.value(r);
            assert_eq!(i64::from(p.value(r)), i % 4, "partition of {i}");
            assert_eq!(
                o.value(r),
                (i - 1 - (i64::from(p.value(r)) + 3) % 4) / 4,
                "offset of {i}"
            );
            assert_eq!(k.value(r), (i % 20).to_string(), "key of {i}");
            assert_eq!(kts.value(r), BASE + i * 10, "timestamp of {i}");
            assert_eq!(topic.value(r), "clicks");
            n += 1;
        }
    }
    assert_eq!(n, 2000);

    // specific-offsets, both ends: 100 rows from each of partitions 0-2 and 50 from 3.
    let some = clicks_v(
        &servers,
        "'scan.startup.mode' = 'specific-offsets', \
         'scan.startup.specific-offsets' = 'partition:0,offset:100;partition:1,offset:100;partition:2,offset:100;partition:3,offset:100', \
         'scan.bounded.mode' = 'specific-offsets', \
         'scan.bounded.specific-offsets' = 'partition:0,offset:200;partition:1,offset:200;partition:2,offset:200;partition:3,offset:150'",
    )
    .await;
    assert_eq!(sum_of(&some, 0).0, 350);

    // By message time: up to a bound (rows 1..=1000), and from a start (rows 1500..=2000).
    let until = clicks_v(
        &servers,
        &format!(
            "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'timestamp', \
             'scan.bounded.timestamp-millis' = '{}'",
            BASE + 10_001
        ),
    )
    .await;
    assert_eq!(sum_of(&until, 0), (1000, 1000 * 1001 / 2));
    let from = clicks_v(
        &servers,
        &format!(
            "'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{}', \
             'scan.bounded.mode' = 'latest-offset'",
            BASE + 15_000
        ),
    )
    .await;
    assert_eq!(sum_of(&from, 0), (501, (1500..=2000).sum()));

    // topic-pattern: every topic whose whole name matches.
    let by_pattern = collect(&format!(
        "{}\nSELECT v FROM clicks;",
        clicks_table("clicks", "clicks", &servers, ALL, "")
            .replace("'topic' = 'clicks'", "'topic-pattern' = 'cl[a-z]+'")
    ))
    .await;
    assert_eq!(sum_of(&by_pattern, 0).0, 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_weir_writes_an_independent_client_reads() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("out", 4);
    let servers = broker.bootstrap();
    collect(&format!(
        "CREATE TABLE src (v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '0', \
         'number-of-rows' = '300', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', \
         'fields.v.end' = '300');\n\
         CREATE TABLE out (v BIGINT, user_id BIGINT) WITH ('connector' = 'kafka', 'topic' = 'out', \
         'properties.bootstrap.servers' = '{servers}', 'format' = 'json', 'key.fields' = 'user_id');\n\
         INSERT INTO out SELECT v, v % 7 FROM src;"
    ))
    .await;
    let printed = client(&["consume", &servers, "out", "300"]);
    let mut seen = vec![];
    let mut partition_of_key = std::collections::HashMap::new();
    for line in printed.lines() {
        let m: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let (p, k, v) = (&m["p"], &m["k"], m["v"].as_str().expect("a value"));
        let value: serde_json::Value = serde_json::from_str(v).expect("a JSON value");
        let n = value["v"].as_i64().unwrap_or_else(|| panic!("no v in {v}"));
        assert_eq!(value["user_id"].as_i64(), Some(n % 7), "{v}");
        assert_eq!(
            k.as_str(),
            Some(format!("{{\"user_id\":{}}}", n % 7).as_str())
        );
        // One key, one partition.
        assert_eq!(*partition_of_key.entry(n % 7).or_insert(p.clone()), *p);
        seen.push(n);
    }
    seen.sort();
    assert_eq!(seen, (1..=300).collect::<Vec<_>>());
}

/// Flink's key-and-value form of a `kafka` table (its Kafka page's "Key and Value Formats"):
/// `key.format` with `key.json.*`, `key.fields`, `value.format` with `value.json.*` and
/// `'value.fields-include' = 'ALL'`. Each row's key and whole value are written, the
/// independent client reads them, and the table reads back every row; `value.json.*` is the
/// value format's option (`value.json.ignore-parse-errors` skips a malformed message that
/// would otherwise fail the read). Before, `value.format` was refused ("needs the option
/// 'format'").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_and_value_form_of_a_kafka_table_writes_and_reads() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("kv", 2);
    let servers = broker.bootstrap();
    let table = |extra: &str| {
        format!(
            "CREATE TABLE kv (user_id BIGINT, v BIGINT) WITH ('connector' = 'kafka', 'topic' = 'kv', \
             'properties.bootstrap.servers' = '{servers}', 'key.format' = 'json', \
             'key.json.ignore-parse-errors' = 'true', 'key.fields' = 'user_id', \
             'value.format' = 'json', 'value.fields-include' = 'ALL'{extra}, {ALL});\n"
        )
    };
    collect(&format!(
        "CREATE TABLE src (v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '0', \
         'number-of-rows' = '200', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', \
         'fields.v.end' = '200');\n{}INSERT INTO kv SELECT v % 5, v FROM src;",
        table("")
    ))
    .await;
    let printed = client(&["consume", &servers, "kv", "200"]);
    let mut seen = vec![];
    for line in printed.lines() {
        let m: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let v = m["v"].as_str().expect("a value");
        let value: serde_json::Value = serde_json::from_str(v).expect("a JSON value");
        let n = value["v"].as_i64().unwrap_or_else(|| panic!("no v in {v}"));
        // ALL: the value holds the key's column too.
        assert_eq!(value["user_id"].as_i64(), Some(n % 5), "{v}");
        assert_eq!(
            m["k"].as_str(),
            Some(format!("{{\"user_id\":{}}}", n % 5).as_str())
        );
        seen.push(n);
    }
    seen.sort();
    assert_eq!(seen, (1..=200).collect::<Vec<_>>());
    let read = collect(&format!("{}SELECT v FROM kv;", table(""))).await;
    assert_eq!(sum_of(&read, 0), (200, 200 * 201 / 2));

    // A malformed message: the read fails, unless the value format's own option skips it.
    client_with_input(&["produce", &servers, "kv"], "{\"v\": \"not json\"}\n");
    let mut s = Session::new();
    let err = s
        .run_collect(&format!("{}SELECT v FROM kv;", table("")))
        .await
        .expect_err("a malformed message fails the read");
    assert!(err.to_string().contains("kafka topic 'kv'"), "{err}");
    let read = collect(&format!(
        "{}SELECT v FROM kv;",
        table(", 'value.json.ignore-parse-errors' = 'true'")
    ))
    .await;
    assert_eq!(sum_of(&read, 0), (200, 200 * 201 / 2));
}

/// `'value.fields-include' = 'EXCEPT_KEY'` on a `kafka` table (Flink's Kafka page, "Key and
/// Value Formats"): Weir writes the `key.fields` columns into the key only, the independent
/// client sees values without them, and the table reads every column back, the key's from
/// the message key. Before, EXCEPT_KEY was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn except_key_writes_and_reads_the_key_columns_in_the_key_only() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("ek", 2);
    let servers = broker.bootstrap();
    let table = format!(
        "CREATE TABLE ek (user_id BIGINT, v BIGINT) WITH ('connector' = 'kafka', 'topic' = 'ek', \
         'properties.bootstrap.servers' = '{servers}', 'key.format' = 'json', \
         'key.fields' = 'user_id', 'value.format' = 'json', \
         'value.fields-include' = 'EXCEPT_KEY', {ALL});\n"
    );
    collect(&format!(
        "CREATE TABLE src (v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '0', \
         'number-of-rows' = '100', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', \
         'fields.v.end' = '100');\n{table}INSERT INTO ek SELECT v % 5, v FROM src;"
    ))
    .await;
    let printed = client(&["consume", &servers, "ek", "100"]);
    let mut seen = vec![];
    for line in printed.lines() {
        let m: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let v = m["v"].as_str().expect("a value");
        let value: serde_json::Value = serde_json::from_str(v).expect("a JSON value");
        let n = value["v"].as_i64().unwrap_or_else(|| panic!("no v in {v}"));
        assert_eq!(value.get("user_id"), None, "EXCEPT_KEY: {v}");
        assert_eq!(
            m["k"].as_str(),
            Some(format!("{{\"user_id\":{}}}", n % 5).as_str())
        );
        seen.push(n);
    }
    seen.sort();
    assert_eq!(seen, (1..=100).collect::<Vec<_>>());
    let read = collect(&format!("{table}SELECT user_id, v FROM ek;")).await;
    let (users, values) = (ints(&read, 0), ints(&read, 1));
    assert_eq!((users.len(), values.len()), (100, 100), "no NULL user_id");
    for (u, v) in users.iter().zip(&values) {
        assert_eq!(*u, v % 5, "user_id from the key");
    }
}

/// A sink's persisted `timestamp` metadata column is each message's timestamp, and not part
/// of its value, as Flink's Kafka sink writes it; a NULL leaves the producer's time. Read
/// by the independent client. Regression: the column was left unwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_metadata_column_is_the_messages_timestamp() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("stamped", 2);
    let servers = broker.bootstrap();
    collect(&format!(
        "CREATE TABLE src (v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '0', \
         'number-of-rows' = '50', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', \
         'fields.v.end' = '50');\n\
         CREATE TABLE stamped (v BIGINT, ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', \
         `offset` BIGINT METADATA VIRTUAL) WITH ('connector' = 'kafka', 'topic' = 'stamped', \
         'properties.bootstrap.servers' = '{servers}', 'format' = 'json');\n\
         INSERT INTO stamped SELECT v, CASE WHEN v = 50 THEN NULL ELSE TO_TIMESTAMP_LTZ({BASE} + v * 1000, 3) END FROM src;"
    ))
    .await;
    let printed = client(&["consume", &servers, "stamped", "50"]);
    let mut seen = vec![];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    for line in printed.lines() {
        let m: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let v = m["v"].as_str().expect("a value");
        assert!(
            !v.contains("ts"),
            "the timestamp column is in the value: {v}"
        );
        let value: serde_json::Value = serde_json::from_str(v).expect("a JSON value");
        let n = value["v"].as_i64().unwrap_or_else(|| panic!("no v in {v}"));
        let t = m["t"].as_i64().expect("a timestamp");
        if n == 50 {
            assert!(
                (now - 600_000..now + 600_000).contains(&t),
                "{t} is not now"
            );
        } else {
            assert_eq!(t, BASE + n * 1000, "{line}");
        }
        seen.push(n);
    }
    seen.sort();
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
    // A time before 1970 fails the job with the cause, as Kafka's producer refuses it.
    let mut s = Session::new();
    let r = tokio::time::timeout(
        Duration::from_secs(120),
        s.run_collect(&format!(
            "CREATE TABLE stamped (v BIGINT, ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp') WITH ( \
             'connector' = 'kafka', 'topic' = 'stamped', \
             'properties.bootstrap.servers' = '{servers}', 'format' = 'json');\n\
             INSERT INTO stamped SELECT 1, TO_TIMESTAMP_LTZ(-1000, 3);"
        )),
    )
    .await
    .expect("the query ends in time");
    let e = r
        .expect_err("a timestamp before 1970 is refused")
        .to_string();
    assert!(
        e.contains("a message timestamp of -1000 ms is before 1970"),
        "{e}"
    );
}

/// Flink's `headers` metadata (`MAP<STRING, BYTES>`): read from what the independent
/// client wrote (a header without a value is a NULL entry; of a repeated key the last
/// value counts, as in Flink's map), and written back as the headers of each message Weir
/// sends (not into its value), which the client reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_metadata_is_read_and_written() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("with_headers", 1);
    broker.create_topic("headers_out", 1);
    let servers = broker.bootstrap();
    client_with_input(
        &["produce", &servers, "with_headers"],
        "{\"v\": \"{\\\"id\\\": 1}\", \"h\": [[\"trace\", \"t-1\"], [\"empty\", null]]}\n\
         {\"v\": \"{\\\"id\\\": 2}\"}\n\
         {\"v\": \"{\\\"id\\\": 3}\", \"h\": [[\"trace\", \"old\"], [\"trace\", \"t-3\"]]}\n",
    );
    let rows = collect(&format!(
        "CREATE TABLE src (id BIGINT, h MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL) WITH ( \
           'connector' = 'kafka', 'topic' = 'with_headers', 'properties.bootstrap.servers' = '{servers}', \
           'format' = 'json', 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');\n\
         SELECT id, CARDINALITY(h), CAST(h['trace'] AS STRING), h['empty'] IS NULL FROM src;"
    ))
    .await;
    let mut got: Vec<String> = vec![];
    for b in &rows {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| {
                    datafusion::arrow::util::display::array_value_to_string(b.column(c), r)
                        .expect("shown")
                })
                .collect();
            got.push(cells.join(" "));
        }
    }
    got.sort();
    assert_eq!(got, ["1 2 t-1 true", "2 0  true", "3 1 t-3 true"]);
    collect(&format!(
        "CREATE TABLE src (id BIGINT, h MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL) WITH ( \
           'connector' = 'kafka', 'topic' = 'with_headers', 'properties.bootstrap.servers' = '{servers}', \
           'format' = 'json', 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');\n\
         CREATE TABLE headers_out (id BIGINT, hs MAP<STRING, BYTES> METADATA FROM 'headers') WITH ( \
           'connector' = 'kafka', 'topic' = 'headers_out', 'properties.bootstrap.servers' = '{servers}', \
           'format' = 'json');\n\
         INSERT INTO headers_out SELECT id, h FROM src;"
    ))
    .await;
    let printed = client(&["consume", &servers, "headers_out", "3"]);
    let mut seen: Vec<(String, serde_json::Value)> = printed
        .lines()
        .map(|line| {
            let m: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            (
                m["v"].as_str().expect("a value").to_string(),
                m["h"].clone(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            (
                "{\"id\":1}".to_string(),
                serde_json::json!([["trace", "t-1"], ["empty", null]])
            ),
            ("{\"id\":2}".to_string(), serde_json::json!([])),
            (
                "{\"id\":3}".to_string(),
                serde_json::json!([["trace", "t-3"]])
            ),
        ]
    );
}

/// A CSV value holding line breaks is still one message, under its own row's key (the
/// encoded batch is not split on lines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_value_with_line_breaks_keeps_its_own_key() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("lines", 1);
    let servers = broker.bootstrap();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.json");
    std::fs::write(
        &input,
        "{\"id\": 1, \"s\": \"a\\nb\"}\n{\"id\": 2, \"s\": \"c\"}\n{\"id\": 3, \"s\": \"d\\ne\\r\\nf\"}\n",
    )
    .expect("write");
    collect(&format!(
        "CREATE TABLE src (id BIGINT, s STRING) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'json');\n\
         CREATE TABLE out (id BIGINT, s STRING) WITH ('connector' = 'kafka', 'topic' = 'lines', \
         'properties.bootstrap.servers' = '{servers}', 'format' = 'csv', 'key.fields' = 'id', \
         'key.format' = 'json');\n\
         INSERT INTO out SELECT id, s FROM src;",
        input.display()
    ))
    .await;
    let printed = client(&["consume", &servers, "lines", "3"]);
    let got: Vec<(String, String)> = printed
        .lines()
        .map(|l| {
            let m: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            (
                m["k"].as_str().expect("a key").to_string(),
                m["v"].as_str().expect("a value").to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("{\"id\":1}".to_string(), "1,\"a\nb\"".to_string()),
            ("{\"id\":2}".to_string(), "2,c".to_string()),
            ("{\"id\":3}".to_string(), "3,\"d\ne\r\nf\"".to_string()),
        ]
    );
}

/// An updating result into `upsert-kafka`: keyed by the primary key, `+I`/`+U` as values,
/// `-D` as tombstones, `-U` dropped — so the topic read as "the last value per key" (what
/// a compacted topic keeps) is the result. Counts of counts over v = 1..300 by v % 7: six
/// keys end with 43 rows and one with 42, so only c = 42 (n = 1) and c = 43 (n = 6) stay;
/// every smaller c was passed through and deleted. The job runs at the default parallelism
/// (the machine's cores): the inner groups' subtasks then interleave, so how often a c
/// empties and fills again varies from run to run (Flink orders changes per key only), but
/// the message count and the last value per key do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updating_result_into_upsert_kafka_reads_back_as_the_result() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("counts", 3);
    let servers = broker.bootstrap();
    collect(&format!(
        "SET 'table.exec.batch-size' = '1';\n\
         CREATE TABLE src (v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '0', \
         'number-of-rows' = '300', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', \
         'fields.v.end' = '300');\n\
         CREATE TABLE counts (c BIGINT, n BIGINT, PRIMARY KEY (c) NOT ENFORCED) WITH ( \
         'connector' = 'upsert-kafka', 'topic' = 'counts', \
         'properties.bootstrap.servers' = '{servers}', 'key.format' = 'json', \
         'value.format' = 'json');\n\
         INSERT INTO counts SELECT c, COUNT(*) FROM \
           (SELECT v % 7 AS k, COUNT(*) AS c FROM src GROUP BY v % 7) GROUP BY c;"
    ))
    .await;
    // Messages: the first row of each of the 7 keys moves one group (c = 1: +I, then +U);
    // each later row moves two (its key leaves group c, which is updated or deleted, and
    // enters c + 1, inserted or updated); -U rows are not sent. 7 + 293 * 2 = 593.
    let mut last: std::collections::BTreeMap<i64, Option<i64>> = Default::default();
    let mut tombstones = 0;
    let mut n = 0;
    let printed = client(&["consume", &servers, "counts", "593"]);
    for line in printed.lines() {
        let m: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let key: serde_json::Value =
            serde_json::from_str(m["k"].as_str().expect("a key")).expect("a JSON key");
        let c = key["c"].as_i64().unwrap_or_else(|| panic!("no c in {key}"));
        let value = m["v"].as_str().map(|v| {
            let v: serde_json::Value = serde_json::from_str(v).expect("a JSON value");
            assert_eq!(
                v["c"].as_i64(),
                Some(c),
                "the value holds the key's columns too"
            );
            v["n"].as_i64().unwrap_or_else(|| panic!("no n in {v}"))
        });
        tombstones += usize::from(value.is_none());
        // A key is deleted only while it is live: never two tombstones in a row.
        assert!(
            value.is_some() || last.get(&c).is_some_and(|v| v.is_some()),
            "c = {c} deleted while not live: {printed}"
        );
        last.insert(c, value);
        n += 1;
    }
    assert_eq!(n, 593);
    let live: Vec<(i64, i64)> = last
        .iter()
        .filter_map(|(c, v)| v.map(|v| (*c, v)))
        .collect();
    assert_eq!(live, vec![(42, 1), (43, 6)], "{printed}");
    let deleted: Vec<i64> = last
        .iter()
        .filter_map(|(c, v)| v.is_none().then_some(*c))
        .collect();
    assert_eq!(
        deleted,
        (1..=41).collect::<Vec<_>>(),
        "c = 1..41 end deleted: {printed}"
    );
    // Each of c = 1..41 emptied at least once (exactly once when one subtask counts the
    // keys in turn).
    assert!(tombstones >= 41, "{tombstones} tombstones: {printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_in_a_group_share_the_partitions() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("shared", 4);
    let servers = broker.bootstrap();
    client(&["produce-seq", &servers, "shared", "2000", "4", "0"]);
    let ddl = clicks_table(
        "shared",
        "shared",
        &servers,
        "'scan.startup.mode' = 'group-offsets', 'properties.group.id' = 'weir-group', \
         'properties.auto.offset.reset' = 'earliest', 'properties.session.timeout.ms' = '6000', \
         'properties.heartbeat.interval.ms' = '500'",
        "",
    );
    // One consumer takes all four partitions and reads the first 2000 rows.
    let (_a_guard, a, a_rows) = start_keeping(&ddl, "shared").await;
    wait_for("the first consumer's rows", 60, || {
        a_rows.lock().expect("lock").len() >= 2000
    })
    .await;
    // A second joins the group: the partitions are split between the two.
    let (_b_guard, b, b_rows) = start_keeping(&ddl, "shared").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    client(&["produce-seq", &servers, "shared", "2000", "4", "0", "2001"]);
    wait_for("all 4000 rows", 90, || {
        a_rows.lock().expect("lock").len() + b_rows.lock().expect("lock").len() >= 4000
    })
    .await;
    // Time for a duplicate to show, were there one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.stop();
    b.stop();
    a.wait_timeout(Duration::from_secs(30))
        .await
        .map_err(|_| "the first consumer did not stop")
        .expect("stops")
        .expect("the first consumer ran cleanly");
    b.wait_timeout(Duration::from_secs(30))
        .await
        .map_err(|_| "the second consumer did not stop")
        .expect("stops")
        .expect("the second consumer ran cleanly");
    let from_b = b_rows.lock().expect("lock").len();
    let mut all: Vec<i64> = a_rows.lock().expect("lock").clone();
    all.extend(b_rows.lock().expect("lock").iter());
    all.sort();
    assert_eq!(
        all,
        (1..=4000).collect::<Vec<_>>(),
        "every row exactly once"
    );
    assert!(from_b > 0, "the second consumer got no partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_mid_stream_is_reconnected() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    broker.create_topic("steady", 1);
    let servers = broker.bootstrap();
    client(&["produce-seq", &servers, "steady", "1000", "1", "0"]);
    // Reads up to offset 2000: the first 1000 rows are there, the rest come after the
    // broker's restart.
    let ddl = clicks_table(
        "steady",
        "steady",
        &servers,
        "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'specific-offsets', \
         'scan.bounded.specific-offsets' = 'partition:0,offset:2000'",
        "",
    );
    let (_guard, job, kept) = start_keeping(&ddl, "steady").await;
    wait_for("the rows before the restart", 60, || {
        kept.lock().expect("lock").len() >= 1000
    })
    .await;
    broker.restart(Duration::from_secs(2));
    client(&["produce-seq", &servers, "steady", "1000", "1", "0", "1001"]);
    job.wait_timeout(Duration::from_secs(120))
        .await
        .map_err(|_| "the query did not end after the restart")
        .expect("ends")
        .expect("the query goes on after the restart");
    let mut all = kept.lock().expect("lock").clone();
    all.sort();
    assert_eq!(
        all.len(),
        2000,
        "rows {} (first {:?}, last {:?})",
        all.len(),
        all.first(),
        all.last()
    );
    assert_eq!(all, (1..=2000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_at_start_fails_after_a_bounded_retry() {
    // Nothing listens on this port.
    let port = free_port();
    let started = Instant::now();
    let mut s = Session::new();
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        s.run_collect(&format!(
            "CREATE TABLE t (v BIGINT) WITH ('connector' = 'kafka', 'topic' = 't', \
             'properties.bootstrap.servers' = '127.0.0.1:{port}', 'format' = 'json', \
             'properties.socket.connection.setup.timeout.ms' = '2000', \
             'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');\n\
             SELECT v FROM t;"
        )),
    )
    .await
    .expect("the retry is bounded")
    .expect_err("no broker, no query");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("cannot reach the broker at '127.0.0.1:{port}'")),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Resident and peak memory of a process, in KiB (VmRSS, VmHWM).
fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((kib("VmRSS:")?, kib("VmHWM:")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_keeps_memory_flat_over_a_million_rows() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("big", 4);
    let servers = broker.bootstrap();
    // A million messages of ~250 bytes: ~250 MB on the topic.
    client(&["produce-seq", &servers, "big", "1000000", "4", "200"]);
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("slow.sql");
    std::fs::write(
        &script,
        format!(
            "{}\nCREATE TABLE out (v BIGINT, pad STRING) WITH ('connector' = 'print');\n\
             INSERT INTO out SELECT v, pad FROM big;\n",
            clicks_table("big", "big", &servers, ALL, " pad STRING,")
        ),
    )
    .expect("write");
    // The sink is a pipe this test reads at ~1000 rows/s, a few % of what the topic gives.
    let metrics_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--quiet", "--metrics-addr"])
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir starts");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = {
        let read = read.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(45) {
                if lines.next().is_none() {
                    break;
                }
                let n = read.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if n.is_multiple_of(10) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        })
    };
    let mut samples = vec![];
    let mut exposition = String::new();
    for second in 0..40 {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(m) = memory_of(pid) {
            samples.push(m);
        }
        if second == 20 {
            exposition = ureq::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .unwrap_or_default();
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let rows = read.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("rows written by the slow sink: {rows}; (rss, peak) KiB per second: {samples:?}");
    assert!(rows > 1000, "the sink wrote {rows} rows");
    assert!(rows < 100_000, "the sink was not slow: {rows} rows");
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let early = samples.get(24).map(|s| s.0).unwrap_or(0);
    let late = samples.last().map(|s| s.0).unwrap_or(0);
    // The topic holds ~250 MB and the broker gives ~8 MB/s to a consumer that keeps asking:
    // what the process holds (a debug build) stays below the topic and stops growing once
    // the channels and librdkafka's 16 MiB queue are full. On a busy machine that took 17 s
    // (CI: 142 MiB at 15 s, 165 MiB at 17 s, 168 MiB from then to 30 s; another run reached
    // 165 MiB only at 22 s), so the last fifteen seconds, from the 25th to the 40th, are the
    // ones held flat: a source that ignored the slow sink would add the broker's ~8 MB/s,
    // ~120 MB in those fifteen seconds.
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
    // The metrics say why: the consumer is far behind the topic (its lag, per partition,
    // from librdkafka's statistics) and the tasks before the sink spend their time waiting
    // for room downstream (backpressured), after 20 s of a sink that takes a few % of the
    // input. Which of them waits is timing: the task right before the sink when the source
    // is slower to fetch than the channels are to fill (CI: source 2.6 s, project 6.0 s),
    // else the source.
    let value = |line: &str| {
        line.rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let lag: f64 = exposition
        .lines()
        .filter(|l| l.starts_with("weir_kafka_consumer_lag{"))
        .map(value)
        .sum();
    let partitions = exposition
        .lines()
        .filter(|l| l.starts_with("weir_kafka_consumer_lag{"))
        .count();
    assert_eq!(partitions, 4, "{exposition}");
    assert!(lag > 500_000.0, "consumer lag {lag}: {exposition}");
    let waited: f64 = exposition
        .lines()
        .filter(|l| {
            l.starts_with("weir_operator_backpressured_seconds_total{")
                && !l.contains(r#"operator="sink""#)
        })
        .map(value)
        .sum();
    // A quarter of those 20 s at least (a sink keeping up gives ~0): the rest goes to
    // fetching and decoding in a debug build, more of it on a busy machine (8.6 s seen).
    assert!(
        waited > 5.0,
        "the tasks before the sink waited {waited} s: {exposition}"
    );
    assert!(
        late < early + 16 * 1024,
        "RSS grew from {early} KiB to {late} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_names_its_topic_partition_and_offset() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("mixed", 1);
    let servers = broker.bootstrap();
    // Written as CSV, read as JSON: the first message is malformed.
    collect(&format!(
        "CREATE TABLE src (v BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '0', \
         'number-of-rows' = '3', 'fields.v.kind' = 'sequence', 'fields.v.start' = '1', 'fields.v.end' = '3');\n\
         CREATE TABLE out (v BIGINT) WITH ('connector' = 'kafka', 'topic' = 'mixed', \
         'properties.bootstrap.servers' = '{servers}', 'format' = 'csv');\n\
         INSERT INTO out SELECT v FROM src;"
    ))
    .await;
    let mut s = Session::new();
    let err = s
        .run_collect(&format!(
            "CREATE TABLE mixed (v BIGINT) WITH ('connector' = 'kafka', 'topic' = 'mixed', \
             'properties.bootstrap.servers' = '{servers}', 'format' = 'json', \
             'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');\n\
             SELECT v FROM mixed;"
        ))
        .await
        .expect_err("a malformed record fails the query");
    let msg = err.to_string();
    assert!(
        msg.contains("kafka topic 'mixed' partition 0 offset 0"),
        "{msg}"
    );

    // With json.ignore-parse-errors the bad records are skipped and counted instead.
    let rows = collect(&format!(
        "CREATE TABLE mixed (v BIGINT) WITH ('connector' = 'kafka', 'topic' = 'mixed', \
         'properties.bootstrap.servers' = '{servers}', 'format' = 'json', 'json.ignore-parse-errors' = 'true', \
         'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');\n\
         SELECT v FROM mixed;"
    ))
    .await;
    assert_eq!(sum_of(&rows, 0).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_partition_stops_holding_the_watermark_back() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("lopsided", 2);
    let servers = broker.bootstrap();
    // Every message goes to partition 0; partition 1 stays empty.
    client(&["produce-seq", &servers, "lopsided", "1000", "1", "0"]);
    let ddl = clicks_table(
        "lopsided",
        "lopsided",
        &servers,
        "'scan.startup.mode' = 'earliest-offset', 'scan.watermark.idle-timeout' = '1 s'",
        "",
    );
    let mut s = Session::new();
    s.run_collect(&ddl).await.expect("ddl");
    let kept = Arc::new(Mutex::new(vec![]));
    let stmt = parse_script(
        "SELECT COUNT(*) AS n FROM TABLE(TUMBLE(TABLE lopsided, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
         GROUP BY window_start, window_end",
    )
    .expect("parse")
    .remove(0);
    let job = s
        .start_into(&stmt, Box::new(Keep(kept.clone())))
        .await
        .expect("starts");
    let _guard = StopOnDrop(job.stop_handle());
    // Rows span 10 s; with the empty partition idle, the watermark (last row − 5 s) closes
    // the first four windows: rows 1..=399 (ts 0.01 s .. 3.99 s).
    wait_for("windows to fire", 30, || {
        kept.lock().expect("lock").iter().sum::<i64>() >= 399
    })
    .await;
    job.stop();
    job.wait_timeout(Duration::from_secs(30))
        .await
        .map_err(|_| "the query did not stop")
        .expect("stops")
        .expect("runs cleanly");
    let counts = kept.lock().expect("lock").clone();
    assert_eq!(counts.iter().take(4).sum::<i64>(), 399, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_example_query_archives_clicks_per_minute() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("clicks", 4);
    let servers = broker.bootstrap();
    // 600 clicks over 5 minutes, 5 users, 3 urls, spread over the 4 partitions.
    let mut input = String::new();
    for i in 0..600i64 {
        let ms = i * 500;
        let value = serde_json::json!({
            "user_id": i % 5,
            "url": format!("/p/{}", i % 3),
            "ts": format!("2026-01-01 00:{:02}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000),
        });
        let message = serde_json::json!({"v": value.to_string(), "p": i % 4});
        input.push_str(&format!("{message}\n"));
    }
    client_with_input(&["produce", &servers, "clicks"], &input);
    let dir = tempfile::tempdir().expect("tmp");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/queries/kafka/clicks_per_minute.sql"
    ))
    .expect("the example query");
    let script = dir.path().join("clicks_per_minute.sql");
    std::fs::write(&script, text.replace("127.0.0.1:9092", &servers)).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--quiet"])
        .arg(&script)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir starts");
    // The watermark reaches 4:55, closing the first four minutes; the archive commits
    // within its 10 s rollover interval.
    let archive = dir.path().join("archive/clicks_per_minute");
    let started = Instant::now();
    // The archive's visible files, Hive partition folders included (what a reader sees).
    let committed = || {
        weir::source::filesystem::list_files(&archive)
            .unwrap_or_default()
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "parquet"))
    };
    while !committed() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing archived"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("weir ends");
    assert!(status.success(), "weir run exited with {status}");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "query",
            "--format",
            "csv",
            "SELECT COUNT(*) AS w, SUM(clicks) AS c, MIN(clicks) AS lo, MAX(clicks) AS hi, \
             MAX(urls) AS u FROM 'archive/clicks_per_minute'",
        ])
        .current_dir(dir.path())
        .output()
        .expect("weir query");
    let printed = String::from_utf8_lossy(&out.stdout);
    // 4 closed minutes x 5 users, 24 clicks each on all 3 urls.
    assert!(printed.contains("20,480,24,24,3"), "{printed}");
}

/// Every `v` in the committed JSON files of `dir` (hidden files are not read).
fn committed_values(dir: &std::path::Path) -> Vec<i64> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            out.push(v["v"].as_i64().expect("v"));
        }
    }
    out.sort();
    out
}

/// The design-for-failure case that lost 3 447 of 6 000 messages before checkpoints: a
/// 4-partition topic fed at 1 000 messages/s, copied to JSON files through a consumer group
/// by `weir run` with checkpoints every 200 ms; SIGKILL at random moments while the producer
/// runs, each time started again; at the end a SIGTERM stop. Every message is in the files
/// exactly once, and the group's committed offsets are those of a completed checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_a_topic_is_fed_loses_and_duplicates_nothing() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let servers = broker.bootstrap();
    broker.create_topic("fed", 4);
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let sql = tmp.path().join("copy.sql");
    std::fs::write(
        &sql,
        format!(
            "SET 'pipeline.name' = 'copy';\n\
             SET 'execution.checkpointing.interval' = '200ms';\n\
             SET 'state.checkpoints.dir' = '{}';\n\
             CREATE TABLE fed (v BIGINT, user_id BIGINT) WITH ('connector' = 'kafka', 'topic' = 'fed', \
               'properties.bootstrap.servers' = '{servers}', 'properties.group.id' = 'copier', \
               'scan.startup.mode' = 'group-offsets', 'properties.auto.offset.reset' = 'earliest', \
               'format' = 'json');\n\
             CREATE TABLE out (v BIGINT, user_id BIGINT) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'json');\n\
             INSERT INTO out SELECT v, user_id FROM fed;\n",
            tmp.path().join("ckpt").display(),
            out.display()
        ),
    )
    .expect("write");
    let n = 6000;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_client.py");
    let mut producer = Command::new("python3")
        .args([
            script,
            "produce-paced",
            &servers,
            "fed",
            &n.to_string(),
            "4",
            "1000",
        ])
        .spawn()
        .expect("the producer starts");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "-q", &sql.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weir starts")
    };
    let mut kills = 0;
    let mut resumed = 0;
    let mut delays = [1700u64, 900, 1300, 600, 2100, 800, 1100].iter().cycle();
    while producer.try_wait().expect("try_wait").is_none() {
        let child = start();
        std::thread::sleep(Duration::from_millis(*delays.next().unwrap_or(&1000)));
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        let o = child.wait_with_output().expect("wait");
        if String::from_utf8_lossy(&o.stderr).contains("resumes from") {
            resumed += 1;
        }
        kills += 1;
    }
    assert!(producer.wait().expect("producer").success());
    assert!(kills >= 3, "{kills} kills while the producer ran");
    assert!(resumed >= 2, "{resumed} restarts resumed from a checkpoint");
    // The last run reads to the end of the topic, then is stopped (with a savepoint).
    let child = start();
    common::wait_until_it_catches_sigterm(child.id());
    wait_for("every message in the files", 60, || {
        committed_values(&out).len() >= n
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let o = child.wait_with_output().expect("wait");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = committed_values(&out);
    let expected: Vec<i64> = (1..=n as i64).collect();
    let missing = expected
        .iter()
        .filter(|v| got.binary_search(v).is_err())
        .count();
    assert_eq!(
        (got.len(), missing),
        (n, 0),
        "after {kills} kills: {} rows, {missing} missing (duplicates: {})",
        got.len(),
        got.windows(2).filter(|w| w[0] == w[1]).count()
    );
    assert_eq!(got, expected);
    eprintln!(
        "{kills} kills ({resumed} restarts resumed from a checkpoint): {n} messages, each once"
    );
}

/// `group-offsets` for a group with no committed offset starts at the end of each partition
/// (`auto.offset.reset`'s default): a checkpoint taken before the first message must still
/// record that position. Before, it recorded none, and a run killed then restarted at the
/// new end — the messages produced meanwhile were never read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_without_offsets_checkpoints_its_starting_position() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let servers = broker.bootstrap();
    broker.create_topic("fresh", 2);
    let produce = |n: u32, first: u32| produce_seq(&servers, "fresh", n, first);
    // Before the job: not to be read (the job starts at the end).
    produce(100, 1);
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let checkpoints = tmp.path().join("ckpt");
    let sql = tmp.path().join("fresh.sql");
    std::fs::write(
        &sql,
        format!(
            "SET 'pipeline.name' = 'fresh';\n\
             SET 'execution.checkpointing.interval' = '100ms';\n\
             SET 'state.checkpoints.dir' = '{}';\n\
             CREATE TABLE fresh (v BIGINT, user_id BIGINT) WITH ('connector' = 'kafka', \
               'topic' = 'fresh', 'properties.bootstrap.servers' = '{servers}', \
               'properties.group.id' = 'fresh-group', 'scan.startup.mode' = 'group-offsets', \
               'format' = 'json');\n\
             CREATE TABLE out (v BIGINT, user_id BIGINT) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'json');\n\
             INSERT INTO out SELECT v, user_id FROM fresh;\n",
            checkpoints.display(),
            out.display()
        ),
    )
    .expect("write");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "-q", &sql.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weir starts")
    };
    let child = start();
    let job = checkpoints.join("fresh");
    wait_for("a completed checkpoint", 60, || {
        std::fs::read_dir(&job)
            .is_ok_and(|d| d.flatten().any(|e| e.path().join("_metadata").is_file()))
    })
    .await;
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();
    // While no job runs: these are the job's to read.
    produce(50, 101);
    let child = start();
    common::wait_until_it_catches_sigterm(child.id());
    let read_all = Instant::now() + Duration::from_secs(30);
    while Instant::now() < read_all && committed_values(&out).len() < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let o = child.wait_with_output().expect("wait");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let expected: Vec<i64> = (101..=150).collect();
    assert_eq!(committed_values(&out), expected);
}

/// Produces `n` JSON messages `{"v": first…}` into the 2 partitions of `topic` with the
/// independent client.
fn produce_seq(servers: &str, topic: &str, n: u32, first: u32) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_client.py");
    let ok = Command::new("python3")
        .args([
            script,
            "produce-seq",
            servers,
            topic,
            &n.to_string(),
            "2",
            "0",
            &first.to_string(),
        ])
        .status()
        .expect("the producer runs")
        .success();
    assert!(ok, "produced");
}

/// A bounded read (`scan.bounded.mode` = `latest-offset`) from the group's offsets starts
/// where the group's last read ended: two runs read the first 50 messages, then the next 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_read_from_group_offsets_starts_at_the_groups_offsets() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let servers = broker.bootstrap();
    broker.create_topic("again", 2);
    produce_seq(&servers, "again", 50, 1);
    let script = format!(
        "CREATE TABLE a (v BIGINT, user_id BIGINT) WITH ('connector' = 'kafka', 'topic' = 'again', \
           'properties.bootstrap.servers' = '{servers}', 'properties.group.id' = 'again-group', \
           'scan.startup.mode' = 'group-offsets', 'properties.auto.offset.reset' = 'earliest', \
           'scan.bounded.mode' = 'latest-offset', 'format' = 'json');\n\
         SELECT v FROM a;"
    );
    let mut first = ints(&collect(&script).await, 0);
    first.sort();
    assert_eq!(first, (1..=50).collect::<Vec<i64>>());
    produce_seq(&servers, "again", 50, 51);
    let mut second = ints(&collect(&script).await, 0);
    second.sort();
    assert_eq!(second, (51..=100).collect::<Vec<i64>>());
}

/// With checkpoints, a silent input of a union still goes idle: its barriers (a silent
/// source sends them too) are not data, and do not keep it from its idle timeout. Before,
/// each barrier made it "seen", and the union's watermark waited for it for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_union_input_goes_idle_while_checkpointing() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("busy", 1);
    broker.create_topic("quiet", 1);
    let servers = broker.bootstrap();
    client(&["produce-seq", &servers, "busy", "1000", "1", "0"]);
    let tmp = tempfile::tempdir().expect("tmp");
    let modes = "'scan.startup.mode' = 'earliest-offset', 'scan.watermark.idle-timeout' = '1 s'";
    let ddl = format!(
        "SET 'execution.checkpointing.interval' = '100ms';\n\
         SET 'state.checkpoints.dir' = '{}';\n{}\n{}",
        tmp.path().display(),
        clicks_table("busy", "busy", &servers, modes, ""),
        clicks_table("quiet", "quiet", &servers, modes, "")
    ) + "\nCREATE VIEW both_topics AS SELECT * FROM busy UNION ALL SELECT * FROM quiet;";
    let mut s = Session::new();
    s.run_collect(&ddl).await.expect("ddl");
    let kept = Arc::new(Mutex::new(vec![]));
    let stmt = parse_script(
        "SELECT COUNT(*) AS n FROM TABLE(TUMBLE(TABLE both_topics, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
         GROUP BY window_start, window_end",
    )
    .expect("parse")
    .remove(0);
    let job = s
        .start_into(&stmt, Box::new(Keep(kept.clone())))
        .await
        .expect("starts");
    let _guard = StopOnDrop(job.stop_handle());
    // As with an idle partition: the first four windows close, rows 1..=399.
    wait_for("windows to fire", 30, || {
        kept.lock().expect("lock").iter().sum::<i64>() >= 399
    })
    .await;
    job.stop();
    job.wait_timeout(Duration::from_secs(30))
        .await
        .map_err(|_| "the query did not stop")
        .expect("stops")
        .expect("runs cleanly");
}

/// `'dead-letter.sink'` on a Kafka source: 10 000 malformed messages (truncated JSON, not
/// an object, a wrong type, invalid UTF-8) mixed into 1 000 000 good ones on four
/// partitions. The job keeps running to the end of the topic, every good row arrives once,
/// every bad message is in the dead-letter table once with its topic, partition and
/// offset, and the run counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_go_to_the_dead_letter_table() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("mixed_dl", 4);
    let servers = broker.bootstrap();
    let hex = client(&["produce-mixed", &servers, "mixed_dl", "1000000", "4", "100"]);
    let mut want: Vec<String> = hex
        .lines()
        .map(|h| {
            let bytes: Vec<u8> = (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
                .collect();
            String::from_utf8_lossy(&bytes).to_string()
        })
        .collect();
    want.sort();
    assert_eq!(want.len(), 10_000);
    let dir = tempfile::tempdir().expect("tmp");
    let (out, bad) = (dir.path().join("out"), dir.path().join("bad"));
    let script = dir.path().join("dl.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE mixed (v BIGINT, user_id BIGINT, ts TIMESTAMP(3)) WITH (\
               'connector' = 'kafka', 'topic' = 'mixed_dl', 'properties.bootstrap.servers' = '{servers}', \
               'format' = 'json', {ALL}, 'dead-letter.sink' = 'bad');\n\
             CREATE TABLE bad (raw STRING, error STRING, source STRING) WITH (\
               'connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             CREATE TABLE out (v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             INSERT INTO out SELECT v FROM mixed;\n",
            bad.display(),
            out.display()
        ),
    )
    .expect("write");
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run"])
        .arg(&script)
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("bad records skipped: 10000"), "{stderr}");
    let read = |d: &std::path::Path| -> Vec<String> {
        let mut lines = vec![];
        for f in std::fs::read_dir(d).expect("dir").flatten() {
            if !f.file_name().to_string_lossy().starts_with('.') {
                let text = std::fs::read_to_string(f.path()).expect("read");
                lines.extend(text.lines().map(str::to_string));
            }
        }
        lines
    };
    let mut vs: Vec<i64> = read(&out)
        .iter()
        .map(|l| l.parse().expect("a number"))
        .collect();
    vs.sort_unstable();
    assert_eq!(
        vs,
        (1..=1_000_000).collect::<Vec<i64>>(),
        "every good row once"
    );
    let mut raws = vec![];
    let mut sources = std::collections::BTreeSet::new();
    for l in read(&bad) {
        let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON row");
        let raw = v["raw"].as_str().expect("raw").to_string();
        let source = v["source"].as_str().expect("source").to_string();
        assert!(
            source.starts_with("kafka topic 'mixed_dl' partition "),
            "{source}"
        );
        assert!(!v["error"].as_str().unwrap_or_default().is_empty(), "{l}");
        raws.push(raw);
        sources.insert(source);
    }
    raws.sort();
    assert_eq!(raws, want, "every bad message once");
    assert_eq!(sources.len(), 10_000, "each at its own offset");
}

/// A message without a value (a tombstone) gives no row, and is counted: it was dropped
/// without a word before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_are_skipped_and_counted() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("with_tombstones", 1);
    let servers = broker.bootstrap();
    client_with_input(
        &["produce", &servers, "with_tombstones"],
        "{\"v\": \"{\\\"v\\\": 1}\", \"k\": \"a\"}\n{\"v\": null, \"k\": \"a\"}\n{\"v\": \"{\\\"v\\\": 2}\", \"k\": \"b\"}\n",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("t.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE t (v BIGINT) WITH ('connector' = 'kafka', 'topic' = 'with_tombstones', \
               'properties.bootstrap.servers' = '{servers}', 'format' = 'json', {ALL});\n\
             CREATE TABLE out (v BIGINT) WITH ('connector' = 'print');\n\
             INSERT INTO out SELECT v FROM t;\n"
        ),
    )
    .expect("write");
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&script)
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "+I[1]\n+I[2]\n");
    assert!(stderr.contains("Kafka tombstones skipped: 1"), "{stderr}");
}

/// An `upsert-kafka` message without a key gives no row and is counted, as Flink's
/// upsert-kafka source emits nothing for it (regression: it failed the job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_messages_without_a_key_are_skipped_and_counted() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("keyless", 1);
    let servers = broker.bootstrap();
    client_with_input(
        &["produce", &servers, "keyless"],
        "{\"v\": \"{\\\"id\\\": 1, \\\"v\\\": 10}\", \"k\": \"{\\\"id\\\": 1}\"}\n\
         {\"v\": \"{\\\"id\\\": 2, \\\"v\\\": 20}\"}\n\
         {\"v\": \"{\\\"id\\\": 3, \\\"v\\\": 30}\", \"k\": \"{\\\"id\\\": 3}\"}\n",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("t.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE t (id BIGINT, v BIGINT, PRIMARY KEY (id) NOT ENFORCED) WITH ( \
               'connector' = 'upsert-kafka', 'topic' = 'keyless', \
               'properties.bootstrap.servers' = '{servers}', 'key.format' = 'json', \
               'value.format' = 'json', 'scan.bounded.mode' = 'latest-offset');\n\
             CREATE TABLE out (id BIGINT, v BIGINT) WITH ('connector' = 'print');\n\
             INSERT INTO out SELECT id, v FROM t;\n"
        ),
    )
    .expect("write");
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&script)
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "+I[1, 10]\n+I[3, 30]\n"
    );
    assert!(
        stderr.contains("Kafka messages without a key skipped: 1"),
        "{stderr}"
    );
}

/// An `upsert-kafka` table read as a source, as Flink reads one: messages written by an
/// independent client — keyed JSON upserts of 40 ids over two partitions, repeats of the
/// same value, tombstones of live and of unknown ids — become a changelog (`+I`, `-U`/`+U`
/// of the kept row, `-D` of the kept row for a tombstone) whose every retraction finds its
/// row, and which applied is the last value of each live id; an aggregate and a filter
/// over it give the same answer as over that table. With `'value.fields-include' =
/// 'EXCEPT_KEY'` the id comes from the key. At the default parallelism (the
/// normalization runs as a keyed operator).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_kafka_topic_reads_as_the_table_of_each_keys_last_value() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("users", 2);
    broker.create_topic("users_v", 2);
    let servers = broker.bootstrap();
    let (mut all, mut except_key) = (String::new(), String::new());
    let mut last: std::collections::BTreeMap<i64, Option<(String, i64)>> = Default::default();
    let (mut x, mut tombstones) = (11u64, 0);
    for _ in 0..3000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let id = ((x >> 33) % 40) as i64;
        let key = serde_json::json!({ "id": id }).to_string();
        let value = if (x >> 20) % 7 == 0 {
            tombstones += 1;
            None
        } else {
            Some((format!("n{id}-{}", (x >> 40) % 3), ((x >> 45) % 4) as i64))
        };
        let (v_all, v_except) = match &value {
            Some((name, score)) => (
                serde_json::json!({ "id": id, "name": name, "score": score }).to_string(),
                serde_json::json!({ "name": name, "score": score }).to_string(),
            ),
            None => (String::new(), String::new()),
        };
        for (text, v) in [(&mut all, v_all), (&mut except_key, v_except)] {
            let v = if value.is_some() {
                serde_json::Value::String(v)
            } else {
                serde_json::Value::Null
            };
            let m = serde_json::json!({ "v": v, "k": key, "p": id % 2 });
            text.push_str(&format!("{m}\n"));
        }
        last.insert(id, value);
    }
    assert!(tombstones > 300, "{tombstones} tombstones");
    // Malformed messages, skipped and counted where the table says so: an empty value, a
    // message without a key (skipped and counted in any table), a key that is not JSON.
    except_key.push_str(
        "{\"v\": \"\", \"k\": \"{\\\"id\\\": 1}\", \"p\": 1}\n\
         {\"v\": \"{\\\"name\\\": \\\"x\\\", \\\"score\\\": 1}\", \"p\": 0}\n\
         {\"v\": \"{\\\"name\\\": \\\"x\\\", \\\"score\\\": 1}\", \"k\": \"id=1\", \"p\": 1}\n",
    );
    client_with_input(&["produce", &servers, "users"], &all);
    client_with_input(&["produce", &servers, "users_v"], &except_key);
    let live: Vec<(i64, String, i64)> = last
        .iter()
        .filter_map(|(id, v)| v.clone().map(|(n, s)| (*id, n, s)))
        .collect();
    assert!(
        live.len() > 10 && live.len() < 40,
        "{} live ids",
        live.len()
    );
    // `name` is NOT NULL: a tombstone's row holds only the key until normalization.
    let table = |name: &str, topic: &str, include: &str, more: &str| {
        format!(
            "CREATE TABLE {name} (id BIGINT, name STRING NOT NULL, score BIGINT, \
               PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'upsert-kafka', \
               'topic' = '{topic}', 'properties.bootstrap.servers' = '{servers}', \
               'key.format' = 'json', 'value.format' = 'json', \
               'value.fields-include' = '{include}', 'scan.bounded.mode' = 'latest-offset'{more});\n"
        )
    };
    let ddl = format!(
        "{}{}",
        table("users", "users", "ALL", ""),
        table(
            "users_v",
            "users_v",
            "EXCEPT_KEY",
            ", 'key.json.ignore-parse-errors' = 'true', 'value.json.ignore-parse-errors' = 'true'"
        )
    );
    let expected: Vec<String> = {
        let mut v: Vec<String> = live
            .iter()
            .map(|(i, n, s)| format!("{i}|{n}|{s}"))
            .collect();
        v.sort();
        v
    };
    for t in ["users", "users_v"] {
        let changes = collect(&format!("{ddl}SELECT id, name, score FROM {t};")).await;
        let got = common::applied_rows(&changes);
        assert_eq!(got, expected, "{t}: the table of each id's last value");
        let kinds = changes
            .iter()
            .filter_map(weir::changelog::kinds)
            .flat_map(|k| k.values().iter().copied().collect::<Vec<_>>())
            .collect::<Vec<i8>>();
        assert!(
            kinds.contains(&(weir::changelog::RowKind::Delete as i8))
                && kinds.contains(&(weir::changelog::RowKind::UpdateBefore as i8)),
            "{t}: deletes and updates come through"
        );
    }
    let count = live.len();
    let sum: i64 = live.iter().map(|l| l.2).sum();
    let totals = collect(&format!(
        "{ddl}SELECT COUNT(*) AS n, SUM(score) AS s FROM users;"
    ))
    .await;
    assert_eq!(
        common::applied_rows(&totals),
        vec![format!("{count}|{sum}")],
        "COUNT and SUM over the upsert table"
    );
    let high = collect(&format!(
        "{ddl}SELECT id, score FROM users_v WHERE score >= 2;"
    ))
    .await;
    let mut expected_high: Vec<String> = live
        .iter()
        .filter(|l| l.2 >= 2)
        .map(|(i, _, s)| format!("{i}|{s}"))
        .collect();
    expected_high.sort();
    assert_eq!(
        common::applied_rows(&high),
        expected_high,
        "a filter over it"
    );
}

/// An `upsert-kafka` table's metadata columns, as Flink's: read from each message (the
/// `offset` and `headers` of the message that gave a key's row), and its persisted
/// `timestamp` and `headers` written as each message's, a delete's tombstone included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_kafka_metadata_is_read_and_written() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("up_in", 1);
    broker.create_topic("up_out", 1);
    let servers = broker.bootstrap();
    client_with_input(
        &["produce", &servers, "up_in"],
        "{\"k\": \"{\\\"id\\\": 1}\", \"v\": \"{\\\"id\\\": 1, \\\"n\\\": 10}\", \"h\": [[\"src\", \"a\"]]}\n\
         {\"k\": \"{\\\"id\\\": 2}\", \"v\": \"{\\\"id\\\": 2, \\\"n\\\": 20}\", \"h\": [[\"src\", \"b\"]]}\n\
         {\"k\": \"{\\\"id\\\": 1}\", \"v\": \"{\\\"id\\\": 1, \\\"n\\\": 11}\", \"h\": [[\"src\", \"c\"]]}\n\
         {\"k\": \"{\\\"id\\\": 2}\", \"v\": null}\n",
    );
    let source = format!(
        "CREATE TABLE up (id BIGINT, n BIGINT, `offset` BIGINT METADATA VIRTUAL, \
           h MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL, \
           le INT METADATA FROM 'leader-epoch' VIRTUAL, PRIMARY KEY (id) NOT ENFORCED) \
         WITH ('connector' = 'upsert-kafka', 'topic' = 'up_in', \
           'properties.bootstrap.servers' = '{servers}', 'key.format' = 'json', \
           'value.format' = 'json', 'scan.bounded.mode' = 'latest-offset');\n"
    );
    let rows = collect(&format!(
        "{source}SELECT id, n, `offset`, CAST(h['src'] AS STRING), le FROM up;"
    ))
    .await;
    // The test broker stamps no leader epoch on a batch (librdkafka's -1): NULL, as
    // Flink's `leader-epoch` is then (`src/source/kafka.rs` tests a given one).
    assert_eq!(common::applied_rows(&rows), ["1|11|2|c|null"]);
    collect(&format!(
        "{source}CREATE TABLE up_out (id BIGINT, n BIGINT, ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', \
           hs MAP<STRING, BYTES> METADATA FROM 'headers', PRIMARY KEY (id) NOT ENFORCED) \
         WITH ('connector' = 'upsert-kafka', 'topic' = 'up_out', \
           'properties.bootstrap.servers' = '{servers}', 'key.format' = 'json', \
           'value.format' = 'json');\n\
         INSERT INTO up_out SELECT id, n, TO_TIMESTAMP_LTZ({BASE} + n * 1000, 3), h FROM up;"
    ))
    .await;
    let printed = client(&["consume", &servers, "up_out", "4"]);
    let mut seen: Vec<(String, serde_json::Value, i64, serde_json::Value)> = printed
        .lines()
        .map(|line| {
            let m: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            (
                m["k"].as_str().expect("a key").to_string(),
                m["v"].clone(),
                m["t"].as_i64().expect("a timestamp"),
                m["h"].clone(),
            )
        })
        .collect();
    // Each key's messages in their order (a stable sort by key).
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(seen.len(), 4, "{printed}");
    let value = |id: i64, n: i64| serde_json::json!(format!("{{\"id\":{id},\"n\":{n}}}"));
    let header = |s: &str| serde_json::json!([["src", s]]);
    assert_eq!(
        seen[..3],
        [
            (
                "{\"id\":1}".to_string(),
                value(1, 10),
                BASE + 10_000,
                header("a")
            ),
            (
                "{\"id\":1}".to_string(),
                value(1, 11),
                BASE + 11_000,
                header("c")
            ),
            (
                "{\"id\":2}".to_string(),
                value(2, 20),
                BASE + 20_000,
                header("b")
            ),
        ]
    );
    // id 2's delete: a tombstone under its key, after its value.
    assert_eq!(
        (seen[3].0.as_str(), &seen[3].1),
        ("{\"id\":2}", &serde_json::Value::Null),
        "{printed}"
    );
    // A primary key is of physical columns, as Flink requires.
    let mut s = Session::new();
    let e = s
        .run_collect(&format!(
            "CREATE TABLE bad (id BIGINT, o BIGINT METADATA FROM 'offset', \
               PRIMARY KEY (o) NOT ENFORCED) WITH ('connector' = 'upsert-kafka', 'topic' = 'up_in', \
               'properties.bootstrap.servers' = '{servers}', 'key.format' = 'json', \
               'value.format' = 'json');"
        ))
        .await
        .expect_err("a primary key on a metadata column is refused")
        .to_string();
    assert!(e.contains("'o', a metadata column"), "{e}");
}
