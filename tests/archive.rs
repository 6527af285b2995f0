//! The Parquet archive: a standing query writes a Hive-partitioned archive; Weir's batch
//! `query` and an independent reader (the `parquet` crate's own Arrow reader, file by file)
//! read it back and agree with each other and with the rows the query produced.

mod common;
use common::rows;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir::Session;

const SOURCE: &str = "CREATE TABLE window_source_t (
  ts STRING, a_int INT, b_double DOUBLE, c_float FLOAT, d_bigdec DECIMAL(10, 2),
  `comment` STRING, name STRING,
  `rowtime` AS TO_TIMESTAMP(`ts`),
  WATERMARK FOR `rowtime` AS `rowtime` - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'tests/data/window_source.csv', 'format' = 'csv', 'csv.null-literal' = '');";

const WINDOWS: &str = "SELECT name, window_start, window_end, COUNT(*) AS c, SUM(a_int) AS s, \
    date_format(window_start, '%Y-%m-%d') AS dt, date_format(window_start, '%H') AS `hour` \
    FROM TABLE(TUMBLE(TABLE window_source_t, DESCRIPTOR(rowtime), INTERVAL '5' SECOND)) \
    GROUP BY name, window_start, window_end";

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

async fn write_archive(dir: &Path, extra: &str) -> Vec<String> {
    let mut s = Session::new();
    let script = format!(
        "{SOURCE}\n\
         CREATE TABLE archive (name STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), \
           c BIGINT, s BIGINT, dt STRING, `hour` STRING) PARTITIONED BY (dt, `hour`) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet', \
           'parquet.compression' = 'zstd'{extra});\n\
         INSERT INTO archive {WINDOWS};\n\
         {WINDOWS};",
        dir.display()
    );
    let mut results = s
        .run_collect(&script)
        .await
        .expect("the archive is written");
    rows(&results.pop().expect("the live rows"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_reads_back_the_same_with_weir_and_with_the_parquet_crate() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("hot");
    let live = write_archive(&dir, "").await;
    assert_eq!(live.len(), 9);

    // Weir's batch query: partition folders are columns.
    let mut s = Session::new();
    let mut got = s
        .batch(&format!(
            "SELECT name, window_start, window_end, c, s, dt, `hour` FROM '{}'",
            dir.display()
        ))
        .await
        .expect("weir query");
    assert_eq!(rows(&got.pop().expect("a result")), live);

    // A filter on a partition column.
    let mut got = s
        .batch(&format!(
            "SELECT COUNT(*) FROM '{}' WHERE dt = '2020-10-10' AND `hour` = '00'",
            dir.display()
        ))
        .await
        .expect("weir query");
    assert_eq!(rows(&got.pop().expect("a result")), vec!["9"]);

    // The parquet crate, file by file; the partition values come from the folder names.
    let mut all = vec![];
    files(&dir, &mut all);
    assert!(!all.is_empty());
    let mut independent = vec![];
    for f in &all {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(
            name.starts_with("part-") && name.ends_with(".parquet"),
            "only committed files remain: {}",
            f.display()
        );
        let rel = f.strip_prefix(&dir).expect("under the archive");
        let parts: Vec<String> = rel
            .parent()
            .expect("in a partition folder")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        assert_eq!(parts.len(), 2, "{}", rel.display());
        assert!(parts[0].starts_with("dt=") && parts[1].starts_with("hour="));
        let file = std::fs::File::open(f).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("a parquet file")
            .build()
            .expect("reader");
        for b in reader {
            let b = b.expect("batch");
            // The Arrow schema is stored: timestamps keep their millisecond unit.
            assert_eq!(b.schema().field(1).data_type().to_string(), "Timestamp(ms)");
            for r in rows(&[b]) {
                independent.push(format!(
                    "{r}|{}|{}",
                    &parts[0]["dt=".len()..],
                    &parts[1]["hour=".len()..]
                ));
            }
        }
    }
    independent.sort();
    assert_eq!(independent, live);
}

/// Read back as a stream, each row of the archive carries Flink's file metadata: the path
/// and size of the Parquet file it was read from, as the file system has them, and every
/// row of the query is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_read_as_a_stream_carries_each_files_metadata() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("meta");
    let live = write_archive(&dir, "").await;
    let mut s = Session::new();
    let script = format!(
        "CREATE TABLE back (name STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), \
           c BIGINT, s BIGINT, f STRING METADATA FROM 'file.path', n BIGINT METADATA FROM 'file.size', \
           dt STRING, `hour` STRING) PARTITIONED BY (dt, `hour`) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
         SELECT name, window_start, window_end, c, s, dt, `hour`, f, n FROM back;",
        dir.display()
    );
    let mut results = s.run_collect(&script).await.expect("read back");
    let got = rows(&results.pop().expect("the rows"));
    let mut all = vec![];
    files(&dir, &mut all);
    let mut plain = vec![];
    for r in &got {
        let cells: Vec<&str> = r.rsplitn(3, '|').collect();
        let (size, path, row) = (cells[0], cells[1], cells[2]);
        assert!(
            all.iter().any(|p| p.display().to_string() == path),
            "{path} is not a file of the archive"
        );
        let on_disk = std::fs::metadata(path).expect("the row's file").len();
        assert_eq!(size, on_disk.to_string(), "{r}");
        plain.push(row.to_string());
    }
    plain.sort();
    assert_eq!(plain, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_roll_and_every_row_is_kept_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("rolled");
    // A hidden file of another job (its file being written) is never touched.
    std::fs::create_dir_all(dir.join("dt=2020-10-10/hour=00")).expect("mkdir");
    let other = dir.join("dt=2020-10-10/hour=00/.part-other-lq3x1a2b3c-0-1-0.parquet.inprogress");
    std::fs::write(&other, b"x").expect("another job's file");
    let live = write_archive(&dir, ", 'sink.rolling-policy.file-size' = '1'").await;
    let mut all = vec![];
    files(&dir, &mut all);
    let names: BTreeSet<String> = all
        .iter()
        .map(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(std::fs::read(&other).expect("still there"), b"x");
    // The other job's hidden file stays while the archive is read back: `FROM '<dir>'` takes
    // its format from the first visible file (it once took it from whatever came first,
    // and a hidden `.inprogress` file made the folder "not found").
    let names: BTreeSet<String> = names.into_iter().filter(|n| !n.starts_with('.')).collect();
    assert!(names.iter().all(|n| n.starts_with("part-")), "{names:?}");
    // One file per fired window batch: several files in the one partition.
    assert!(all.len() >= 4, "{names:?}");
    let mut s = Session::new();
    let mut got = s
        .batch(&format!(
            "SELECT name, window_start, window_end, c, s, dt, `hour` FROM '{}'",
            dir.display()
        ))
        .await
        .expect("weir query");
    assert_eq!(rows(&got.pop().expect("a result")), live);
}

const NEXMARK: &str = "CREATE TABLE datagen (
    event_type INT,
    person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    dateTime AS CASE WHEN event_type = 0 THEN person.dateTime WHEN event_type = 1 THEN auction.dateTime ELSE bid.dateTime END,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events.num' = '30000', 'first-event.rate' = '1000',
        'seed' = '5', 'base-time' = '2026-01-01 00:00:00');
CREATE VIEW bid AS SELECT bid.auction AS auction, bid.bidder AS bidder, bid.price AS price,
    dateTime FROM datagen WHERE event_type = 2;";

fn hot(table: &str) -> String {
    format!(
        "SELECT auction, window_start, window_end, COUNT(*) AS n, MAX(price) AS top \
         FROM TABLE(HOP(TABLE {table}, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '6' SECOND)) \
         GROUP BY auction, window_start, window_end"
    )
}

/// Replay: the raw bids archived to Parquet (partitioned so that files are not in time
/// order across folders), then read back as the source of the same windowed query, give
/// exactly the rows the query gave live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_query_over_a_replayed_archive_gives_the_live_rows() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("bids");
    let mut s = Session::new();
    let script = format!(
        "{NEXMARK}\n\
         CREATE TABLE bids_archive (auction BIGINT, bidder BIGINT, price BIGINT, dateTime TIMESTAMP(3), p STRING) \
         PARTITIONED BY (p) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet', \
         'sink.rolling-policy.file-size' = '20kb');\n\
         INSERT INTO bids_archive SELECT auction, bidder, price, dateTime, CAST(auction % 3 AS STRING) FROM bid;\n\
         {};",
        dir.display(),
        hot("bid")
    );
    let mut results = s.run_collect(&script).await.expect("live run");
    let live = rows(&results.pop().expect("live rows"));
    assert!(live.len() > 100, "{}", live.len());
    let mut all = vec![];
    files(&dir, &mut all);
    assert!(all.len() > 3, "several files: {}", all.len());

    for batch_size in [7, 8192] {
        let mut s = Session::new();
        let script = format!(
            "SET 'table.exec.batch-size' = '{batch_size}';\n\
             CREATE TABLE replay (auction BIGINT, bidder BIGINT, price BIGINT, dateTime TIMESTAMP(3), p STRING, \
             WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND) PARTITIONED BY (p) \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             {};",
            dir.display(),
            hot("replay")
        );
        let mut results = s.run_collect(&script).await.expect("replay");
        assert_eq!(rows(&results.pop().expect("replayed rows")), live);
    }
}

/// A third reader: pyarrow's dataset API (Hive partitioning) reads the archive. It needs
/// `python3` with `pyarrow` (`.ci/run` installs it); without them the test is skipped
/// locally and fails under CI=true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_reads_the_archive_too() {
    let has_pyarrow = std::process::Command::new("python3")
        .args(["-c", "import pyarrow.dataset"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pyarrow {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have python3 with pyarrow (bash .ci/run installs it)"
        );
        eprintln!("skipped: python3 with pyarrow is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("hot");
    let live = write_archive(&dir, "").await;
    let script = r#"
import sys
import pyarrow as pa
import pyarrow.dataset as ds
part = ds.partitioning(pa.schema([("dt", pa.string()), ("hour", pa.string())]), flavor="hive")
t = ds.dataset(sys.argv[1], format="parquet", partitioning=part).to_table()
cols = ["name", "window_start", "window_end", "c", "s", "dt", "hour"]
rows = []
for r in t.select(cols).to_pylist():
    v = []
    for c in cols:
        x = r[c]
        if x is None:
            v.append("null")
        elif c.startswith("window_"):
            v.append(x.strftime("%Y-%m-%dT%H:%M:%S"))
        else:
            v.append(str(x))
    rows.append("|".join(v))
print("\n".join(sorted(rows)))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &dir.display().to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, live);
}

/// Mounts a tmpfs of `size` at `dir` (root only). Returns false where it cannot be mounted:
/// the test is then skipped locally, and fails under CI=true.
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must be able to mount a tmpfs (it runs as root)"
        );
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
    }
    ok
}

/// Unmounts the tmpfs when dropped, whatever the test's outcome.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The disk fills while the archive is written (a 1 MiB tmpfs): the job fails with an
/// error naming the file and the cause, the file being written is removed (no partial file
/// is ever visible, and it holds no space), and every file committed before is intact —
/// read whole by an independent reader (pyarrow), every row once.
#[test]
fn a_full_disk_fails_the_job_and_keeps_the_committed_files_intact() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    if !mount_tmpfs(&mnt, "1m") {
        return;
    }
    let _mounted = Mounted(mnt.clone());
    let archive = mnt.join("archive");
    let script = tmp.path().join("fill.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE gen (id BIGINT, pad STRING) WITH ('connector' = 'datagen', \
               'fields.id.kind' = 'sequence', 'fields.id.start' = '1', \
               'fields.id.end' = '2000000', 'fields.pad.length' = '40', 'seed' = '7');\n\
             CREATE TABLE archive (id BIGINT, pad STRING) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'parquet', \
               'sink.rolling-policy.file-size' = '100kb');\n\
             INSERT INTO archive SELECT id, pad FROM gen;\n",
            archive.display()
        ),
    )
    .expect("write script");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&script)
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot write '{}", archive.display())),
        "{stderr}"
    );
    let mut all = vec![];
    files(&archive, &mut all);
    let hidden: Vec<_> = all
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    assert!(hidden.is_empty(), "partial files left: {hidden:?}");
    assert!(
        all.len() >= 3,
        "files committed before the disk filled: {all:?}"
    );
    let has_pyarrow = std::process::Command::new("python3")
        .args(["-c", "import pyarrow.parquet"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pyarrow {
        assert!(std::env::var("CI").is_err(), "CI must have pyarrow");
        return;
    }
    // Each committed file read whole, file by file: ids never repeat, and the rows before
    // the first missing id are every id from 1 (the source writes them in order).
    let read = r#"
import sys, pyarrow.parquet as pq
ids = []
for f in sys.argv[1:]:
    t = pq.read_table(f)
    assert t.num_rows > 0, f
    ids += t.column("id").to_pylist()
print(len(ids), len(set(ids)), min(ids), max(ids))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", read])
        .args(&all)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect();
    let [rows, distinct, min, max] = stats[..] else {
        panic!("unexpected output {stats:?}");
    };
    assert_eq!(rows, distinct, "a row committed twice");
    assert_eq!(
        (min, max),
        (1, rows),
        "committed files hold ids 1..={rows} in order"
    );
}

/// The archive's folder becomes unusable mid-run (replaced by a file): the job fails with
/// an error naming the path and the cause, and exits non-zero — it never reports success.
#[test]
fn an_archive_path_that_breaks_mid_run_fails_the_job() {
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("archive");
    let script = tmp.path().join("run.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE gen (id BIGINT, pad STRING) WITH ('connector' = 'datagen', \
               'rows-per-second' = '20000', 'fields.pad.length' = '20');\n\
             CREATE TABLE archive (id BIGINT, pad STRING) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'csv', 'sink.rolling-policy.file-size' = '20kb');\n\
             INSERT INTO archive SELECT id, pad FROM gen;\n",
            archive.display()
        ),
    )
    .expect("write script");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(&script)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weir starts");
    let committed = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().ends_with(".csv"))
        })
    };
    let start = std::time::Instant::now();
    while !committed(&archive) {
        assert!(start.elapsed().as_secs() < 60, "no file committed in 60 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::rename(&archive, tmp.path().join("moved")).expect("move the archive away");
    std::fs::write(&archive, b"not a folder").expect("a file in its place");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed().as_secs() > 60 {
            let _ = child.kill();
            panic!("the job went on for 60 s with its archive path gone");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr reads");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&archive.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("File exists")
            || stderr.contains("Not a directory")
            || stderr.contains("No such file"),
        "{stderr}"
    );
}

/// Writes `rows` rows (`ts`: a shuffled sequence of distinct milliseconds; `pad`: 200
/// characters) as one Parquet file, row groups of 64 Ki rows.
fn write_shuffled_parquet(path: &Path, rows: usize) {
    use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("pad", DataType::Utf8, false),
    ]));
    let f = std::fs::File::create(path).expect("create the file");
    let mut w = ArrowWriter::try_new(f, schema.clone(), None).expect("writer");
    let base = 1_767_225_600_000_i64;
    // A permutation of 0..rows (multiplying by a number prime to it).
    let step = 7_919_usize;
    assert_ne!(rows % step, 0);
    let mut i = 0;
    while i < rows {
        let n = (rows - i).min(65_536);
        let ts: Vec<i64> = (i..i + n)
            .map(|k| base + ((k * step) % rows) as i64)
            .collect();
        let pad = StringArray::from_iter_values((i..i + n).map(|k| format!("{:0200}", k % 1000)));
        let cols: Vec<ArrayRef> =
            vec![Arc::new(TimestampMillisecondArray::from(ts)), Arc::new(pad)];
        w.write(&RecordBatch::try_new(schema.clone(), cols).expect("batch"))
            .expect("write");
        i += n;
    }
    w.close().expect("close");
}

/// Replaying a Parquet file sorts it by event time with bounded memory (an external sort
/// that spills): a file of 1 000 000 rows in shuffled time order (about 230 MB as Arrow
/// arrays) replays through a window aggregate whose watermark has no delay — every row
/// counted, none late, so the order was right — and the process's peak resident memory
/// stays under 400 MB (reading the file whole and sorting it took about three copies).
/// Peak memory is the child's `ru_maxrss`, measured by Python's `resource`.
#[test]
fn a_large_shuffled_parquet_file_replays_in_order_with_bounded_memory() {
    let has_python = std::process::Command::new("python3")
        .args(["-c", "import resource"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python {
        assert!(std::env::var("CI").is_err(), "CI must have python3");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("shuffled.parquet");
    let rows = 1_000_000;
    write_shuffled_parquet(&file, rows);
    let script = tmp.path().join("replay.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE r (ts TIMESTAMP(3), pad STRING, WATERMARK FOR ts AS ts) \
               WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             CREATE TABLE out (c BIGINT, l INT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO out SELECT COUNT(*), MAX(CHAR_LENGTH(pad)) \
               FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
               GROUP BY window_start, window_end;\n",
            file.display()
        ),
    )
    .expect("script");
    let measure = r#"
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(p.stderr)
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", measure, env!("CARGO_BIN_EXE_weir"), "run"])
        .arg(&script)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let [code, kib] = stdout
        .split_whitespace()
        .map(|v| v.parse::<i64>().expect("a number"))
        .collect::<Vec<_>>()[..]
    else {
        panic!("{stdout}\n{stderr}");
    };
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains("late rows dropped"),
        "rows came out of order:\n{stderr}"
    );
    // Every row in, and 1 000 windows of 1 000 rows out (the times are 0..1 000 000 ms).
    // The run's summary: a tree line per task with its rows in and out (a source has only
    // rows out, the sink only rows in).
    let counts = |name: &str| -> Vec<u64> {
        stderr
            .lines()
            .find(|l| l.starts_with("  ") && l.contains(name))
            .map(|l| {
                l.split_whitespace()
                    .rev()
                    .take(2)
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(counts("Source: r"), [rows as u64], "{stderr}");
    assert_eq!(counts("Sink"), [1000], "{stderr}");
    let mib = kib / 1024;
    eprintln!("peak resident memory: {mib} MiB");
    assert!(mib < 400, "peak resident memory {mib} MiB:\n{stderr}");
}

/// A replayed file in a folder whose name holds glob characters (`tag=[eu]`) is read as
/// that file, and its rows are sorted by the time as the table reads it: the stored text
/// `2026-01-01T11:30:00+02:00` is 09:30 UTC, before `…T10:00:00+00:00`, though it sorts
/// after it as text. With a watermark of no delay, a wrong order would make it late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_sorts_by_the_tables_time_and_reads_paths_with_glob_characters() {
    use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;
    use std::sync::Arc;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("r").join("tag=[eu]");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Utf8, false),
        Field::new("v", DataType::Int32, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![
            "2026-01-01T10:00:00+00:00",
            "2026-01-01T11:30:00+02:00",
            "2026-01-01T10:10:00+00:00",
        ])),
        Arc::new(Int32Array::from(vec![1, 2, 3])),
    ];
    let f = std::fs::File::create(dir.join("part-0.parquet")).expect("create");
    let mut w = ArrowWriter::try_new(f, schema.clone(), None).expect("writer");
    w.write(&RecordBatch::try_new(schema, cols).expect("batch"))
        .expect("write");
    w.close().expect("close");
    let mut s = Session::new();
    let script = format!(
        "CREATE TABLE r (ts TIMESTAMP(3), v INT, tag STRING, WATERMARK FOR ts AS ts) \
           PARTITIONED BY (tag) \
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
         SELECT tag, window_start, COUNT(*), SUM(v) \
           FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(ts), INTERVAL '1' HOUR)) \
           GROUP BY tag, window_start, window_end;",
        tmp.path().join("r").display()
    );
    let mut results = s.run_collect(&script).await.expect("the replay runs");
    assert_eq!(
        rows(&results.pop().expect("rows")),
        [
            "[eu]|2026-01-01T09:00:00|1|2",
            "[eu]|2026-01-01T10:00:00|2|4",
        ]
    );
}

/// A CSV or JSON `filesystem` table reads in batch with its format options, metadata
/// columns and partition folders applied as a standing query reads them (Weir's own
/// decoder; DataFusion's CSV reader applied none of `csv.null-literal`, the quote, escape
/// and comment options, and its JSON reader refused `"true"` for a BOOLEAN), and a bad
/// record fails the query at its file and line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_or_json_table_reads_in_batch_with_its_format_options() {
    let tmp = tempfile::tempdir().expect("tmp");
    let folder = tmp.path().join("t").join("dt=2026-01-01");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(
        folder.join("a.csv"),
        "id|name|note\n1|''|x\n2|NULL|'a|b'\n# a comment\n3|\\'q|z\n",
    )
    .expect("write");
    let ddl = format!(
        "CREATE TABLE t (id INT, name STRING, note STRING, dt STRING, \
           f STRING METADATA FROM 'file.name' VIRTUAL) PARTITIONED BY (dt) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', \
           'csv.header' = 'true', 'csv.field-delimiter' = '|', 'csv.quote-character' = '''', \
           'csv.null-literal' = 'NULL', 'csv.allow-comments' = 'true', \
           'csv.escape-character' = '\\');",
        tmp.path().join("t").display()
    );
    let mut s = Session::new();
    let mut got = s
        .batch(&format!(
            "{ddl} SELECT id, name IS NULL, name, note, dt, f FROM t"
        ))
        .await
        .expect("the CSV table reads");
    // Flink: a quoted empty field is the empty string; only the null literal is NULL.
    assert_eq!(
        rows(&got.pop().expect("a result")),
        [
            "1|false||x|2026-01-01|a.csv",
            "2|true|null|a|b|2026-01-01|a.csv",
            "3|false|'q|z|2026-01-01|a.csv",
        ]
    );

    let json = tmp.path().join("j.json");
    std::fs::write(
        &json,
        "{\"b\": \"true\", \"n\": 1}\n{\"b\": false, \"n\": 2}\n",
    )
    .expect("write");
    let mut got = s
        .batch(&format!(
            "CREATE TABLE j (b BOOLEAN, n INT) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'json'); SELECT b, n FROM j",
            json.display()
        ))
        .await
        .expect("the JSON table reads");
    assert_eq!(rows(&got.pop().expect("a result")), ["false|2", "true|1"]);

    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "1,x\nbad,y\n3,z\n").expect("write");
    let table = |extra: &str| {
        format!(
            "CREATE TABLE b{} (n INT, s STRING) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'csv'{extra});",
            extra.len(),
            bad.display()
        )
    };
    let err = s
        .batch(&format!("{} SELECT * FROM b0", table("")))
        .await
        .expect_err("a bad record fails the query");
    let text = err.to_string();
    assert!(
        text.contains(&format!("malformed CSV record at {}:2", bad.display())),
        "{text}"
    );
    let skip = table(", 'csv.ignore-parse-errors' = 'true'");
    let name = format!("b{}", ", 'csv.ignore-parse-errors' = 'true'".len());
    let mut got = s
        .batch(&format!("{skip} SELECT n, s FROM {name}"))
        .await
        .expect("bad records are skipped");
    assert_eq!(rows(&got.pop().expect("a result")), ["1|x", "3|z"]);

    // A session SET of a format option applies to a batch read as to a standing query's,
    // and RESET takes it back.
    let mut got = s
        .batch("SET 'csv.ignore-parse-errors' = 'true'; SELECT n, s FROM b0")
        .await
        .expect("the SET skips bad records");
    assert_eq!(rows(&got.pop().expect("a result")), ["1|x", "3|z"]);
    let err = s
        .batch("RESET 'csv.ignore-parse-errors'; SELECT n, s FROM b0")
        .await
        .expect_err("without the SET the bad record fails the query");
    assert!(err.to_string().contains("malformed CSV record"), "{err}");
}

/// A large CSV table is read by several partitions at once, each a byte range of its
/// files: every line is read exactly once and the header of each file is skipped once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_table_read_in_parallel_ranges_reads_every_line_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut want = vec![];
    for (f, ids) in [("a.csv", 1..=1700), ("b.csv", 1701..=3000)] {
        let mut text = String::from("id,pad\n");
        for i in ids {
            text.push_str(&format!("{i},{}\n", "x".repeat(i % 37)));
            want.push(i.to_string());
        }
        std::fs::write(tmp.path().join(f), text).expect("write");
    }
    want.sort();
    let mut s = Session::new();
    {
        let state = s.context().state_ref();
        let mut state = state.write();
        let o = state.config_mut().options_mut();
        o.execution.target_partitions = 3;
        o.optimizer.repartition_file_min_size = 0;
    }
    let mut got = s
        .batch(&format!(
            "CREATE TABLE r (id INT, pad STRING) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'csv', 'csv.header' = 'true'); SELECT id FROM r",
            tmp.path().display()
        ))
        .await
        .expect("the ranges read");
    assert_eq!(rows(&got.pop().expect("a result")), want);
}
