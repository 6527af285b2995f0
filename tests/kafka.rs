//! Kafka against a real Kafka-protocol broker (tansu) started here on 127.0.0.1: a standing
//! query writes a topic of four partitions, a bounded read of the topic gives every row
//! back once, a windowed query over the topic equals the same query over the original rows,
//! and a malformed message fails the query naming its topic, partition and offset.
//!
//! The broker binary comes from `$WEIR_TANSU` or `tansu` on the PATH (`bash .ci/run`
//! builds it when missing); without it the tests are skipped locally and fail under CI=true.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use weir::Session;

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

/// A broker on a free port of 127.0.0.1, stopped when dropped.
struct Broker {
    child: Child,
    port: u16,
    bin: PathBuf,
    _dir: tempfile::TempDir,
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(dir.path())
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
        Some(Broker {
            child,
            port,
            bin,
            _dir: dir,
        })
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

fn sum_of(batches: &[RecordBatch], col: usize) -> (usize, i64) {
    let mut rows = 0;
    let mut sum = 0;
    for b in batches {
        let a = b
            .column(col)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("BIGINT");
        rows += a.len();
        sum += a.iter().flatten().sum::<i64>();
    }
    (rows, sum)
}

async fn collect(script: &str) -> Vec<RecordBatch> {
    let mut s = Session::new();
    let mut r = tokio::time::timeout(Duration::from_secs(120), s.run_collect(script))
        .await
        .expect("the query ends in time")
        .expect("the query runs");
    r.pop().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_written_and_read_back() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("clicks", 4);
    let servers = broker.bootstrap();
    let kafka = |extra: &str| {
        format!(
            "'connector' = 'kafka', 'topic' = 'clicks', 'properties.bootstrap.servers' = '{servers}', \
             'format' = 'json'{extra}"
        )
    };
    // Write 2000 rows, keyed by user, through the sink.
    collect(&format!(
        "CREATE TABLE src (v BIGINT, user_id BIGINT, ts AS to_timestamp_millis(1767225600000 + v * 10)) \
         WITH ('connector' = 'datagen', 'rows-per-second' = '0', 'number-of-rows' = '2000', \
         'fields.v.kind' = 'sequence', 'fields.v.start' = '1', 'fields.v.end' = '2000', \
         'fields.user_id.min' = '1', 'fields.user_id.max' = '20');\n\
         CREATE TABLE out (v BIGINT, user_id BIGINT, ts TIMESTAMP(3)) WITH ({}, 'key.fields' = 'user_id');\n\
         INSERT INTO out SELECT v, user_id, ts FROM src;",
        kafka("")
    ))
    .await;

    // A bounded read from the earliest offsets: every row once.
    let source = format!(
        "CREATE TABLE clicks (v BIGINT, user_id BIGINT, ts TIMESTAMP(3), \
         WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ({});",
        kafka(
            ", 'properties.group.id' = 'weir-test', 'scan.startup.mode' = 'earliest-offset', \
             'scan.bounded.mode' = 'latest-offset'"
        )
    );
    let rows = collect(&format!("{source}\nSELECT v FROM clicks;")).await;
    assert_eq!(sum_of(&rows, 0), (2000, 2000 * 2001 / 2));

    // A windowed query over the topic: 10 s windows of 1000 rows each (the partitions'
    // interleaving stays within the 5 s watermark bound).
    let rows = collect(&format!(
        "{source}\nSELECT COUNT(*) AS n, window_start FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), \
         INTERVAL '10' SECOND)) GROUP BY window_start, window_end;"
    ))
    .await;
    let (windows, total) = sum_of(&rows, 0);
    assert_eq!(total, 2000);
    assert!((2..=3).contains(&windows), "{windows} windows");
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
