//! Checkpoints and exactly-once output, tried as a user would: `weir run` killed with
//! SIGKILL (and stopped with SIGTERM) at random moments and started again, the Parquet
//! archive read back by pyarrow (an independent reader) and compared, as a multiset, with an
//! uninterrupted run's. Also: a second run adds to an archive instead of replacing it,
//! EXPLAIN touches nothing, and a corrupt or foreign checkpoint is refused clearly.
//!
//! `WEIR_KILLS=50 cargo test --test checkpoint kill -- --nocapture` runs the harness longer
//! (10 interruptions by default) and prints its figures.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run(args: &[&str]) -> (i32, String) {
    let out = weir().args(args).output().expect("weir runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn has_pyarrow() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pyarrow.dataset"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have python3 with pyarrow (bash .ci/run installs it)"
        );
        eprintln!("skipped: python3 with pyarrow is not installed");
    }
    ok
}

/// Every row of a Parquet archive (Hive partitions as columns) read by pyarrow, counted.
fn pyarrow_rows(dir: &Path) -> BTreeMap<String, usize> {
    let script = r#"
import sys, os
import pyarrow.dataset as ds
if not os.path.isdir(sys.argv[1]):
    sys.exit(0)
t = ds.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table()
cols = sorted(t.column_names)
for r in t.select(cols).to_pylist():
    print("|".join(str(r[c]) for c in cols))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &dir.display().to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        *rows.entry(l.to_string()).or_insert(0) += 1;
    }
    rows
}

/// Hidden files (in-progress or pending) anywhere under `dir`.
fn hidden_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(hidden_files(&p));
        } else if e.file_name().to_string_lossy().starts_with('.') {
            out.push(p);
        }
    }
    out
}

/// A checkpointed [`nexmark_job`] of `events` events written to `dir/job{tag}.sql`, archiving
/// into `dir/archive{tag}` with checkpoints in `dir/checkpoints{tag}`: (archive, checkpoints,
/// script).
fn checkpointed_job(dir: &Path, tag: &str, events: u64) -> (PathBuf, PathBuf, PathBuf) {
    let archive = dir.join(format!("archive{tag}"));
    let checkpoints = dir.join(format!("checkpoints{tag}"));
    let sql = dir.join(format!("job{tag}.sql"));
    std::fs::write(&sql, nexmark_job(&archive, Some(&checkpoints), events)).expect("write");
    (archive, checkpoints, sql)
}

/// A HOP window aggregate, a windowed Top-N and a window join, over the Nexmark generator,
/// into a partitioned Parquet archive.
fn nexmark_job(archive: &Path, checkpoints: Option<&Path>, events: u64) -> String {
    let settings = match checkpoints {
        Some(dir) => format!(
            "SET 'pipeline.name' = 'kill9';\n\
             SET 'execution.checkpointing.interval' = '250ms';\n\
             SET 'state.checkpoints.dir' = '{}';\n",
            dir.display()
        ),
        None => String::new(),
    };
    format!(
        "{settings}\
CREATE TABLE datagen (
    event_type INT,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    dateTime AS bid.dateTime,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'first-event.rate' = '10000', 'events.num' = '{events}',
        'base-time' = '2026-01-01 00:00:00');
CREATE VIEW bid AS
SELECT bid.auction AS auction, bid.price AS price, dateTime FROM datagen WHERE event_type = 2;
CREATE VIEW top3 AS
SELECT window_start, window_end, auction, num, rn FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY num DESC, auction) AS rn
    FROM (
        SELECT window_start, window_end, auction, COUNT(*) AS num
        FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
        GROUP BY window_start, window_end, auction
    )
) WHERE rn <= 3;
CREATE VIEW maxprice AS
SELECT window_start, window_end, MAX(price) AS maxprice
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
CREATE TABLE archive (
    window_start TIMESTAMP(3), window_end TIMESTAMP(3), auction BIGINT, num BIGINT, rn BIGINT,
    maxprice BIGINT, dt STRING
) PARTITIONED BY (dt) WITH (
    'connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet',
    'sink.rolling-policy.file-size' = '4kb'
);
INSERT INTO archive
SELECT t.window_start, t.window_end, t.auction, t.num, t.rn, m.maxprice,
       DATE_FORMAT(t.window_start, 'yyyy-MM-dd')
FROM top3 t JOIN maxprice m
ON t.window_start = m.window_start AND t.window_end = m.window_end;
",
        archive.display()
    )
}

/// The rows of an uninterrupted run of [`nexmark_job`] over `events` events, without
/// checkpoints, as pyarrow reads its archive.
fn reference_rows(tmp: &Path, events: u64) -> BTreeMap<String, usize> {
    let reference = tmp.join("reference");
    let sql = tmp.join("ref.sql");
    std::fs::write(&sql, nexmark_job(&reference, None, events)).expect("write");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    pyarrow_rows(&reference)
}

/// Killed (or stopped) at random moments, each restart at another parallelism, the job
/// ends with exactly the archive of an uninterrupted run.
#[test]
fn kill_9_anywhere_then_restart_loses_and_duplicates_nothing() {
    if !has_pyarrow() {
        return;
    }
    let kills: usize = std::env::var("WEIR_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let events: u64 = 2_000_000 + 400_000 * kills as u64;
    let tmp = tempfile::tempdir().expect("tmp");
    let expected = reference_rows(tmp.path(), events);
    assert!(expected.len() > 100, "{} rows", expected.len());

    let (archive, _, sql) = checkpointed_job(tmp.path(), "", events);
    let mut rng_state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let mut interrupted = 0;
    let mut resumed = 0;
    let mut finished = false;
    let started = Instant::now();
    while interrupted < kills && started.elapsed() < Duration::from_secs(240) {
        // Each start at another parallelism (1, 2, 3, 1, …): a restore splits the keyed
        // state anew by key group.
        let parallelism = format!("parallelism.default={}", interrupted % 3 + 1);
        let child = weir()
            .args([
                "run",
                "-q",
                "--set",
                &parallelism,
                &sql.display().to_string(),
            ])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("weir starts");
        let mut child = child;
        let pid = child.id();
        common::wait_until_it_catches_sigterm(pid);
        // Anywhere from before the first checkpoint to well after several.
        std::thread::sleep(Duration::from_millis(150 + next() % 1200));
        if child.try_wait().expect("try_wait").is_some() {
            // It ran to its end before the signal.
            let out = child.wait_with_output().expect("wait");
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            assert_eq!(out.status.code(), Some(0), "{stderr}");
            finished = true;
            break;
        }
        // Every fourth interruption is a stop (SIGTERM: a savepoint), the rest SIGKILL.
        let signal = if interrupted % 4 == 3 {
            "-TERM"
        } else {
            "-KILL"
        };
        let sent = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill {signal} {pid}");
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if stderr.contains("resumes from") {
            resumed += 1;
        }
        if signal == "-TERM" {
            assert_eq!(out.status.code(), Some(0), "a stop exits cleanly: {stderr}");
        }
        interrupted += 1;
    }
    assert!(
        interrupted >= kills.min(10),
        "the job must still be running at each interruption ({interrupted} of {kills}); raise events"
    );
    assert!(resumed > 0, "a restart says it resumed from a checkpoint");
    if !finished {
        let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("resumes from"), "{err}");
    }
    // Run to its end, a further run of the same job has nothing to do.
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already ran to the end"), "{err}");

    let got = pyarrow_rows(&archive);
    let lost: Vec<_> = expected
        .iter()
        .filter(|(r, n)| got.get(*r).copied().unwrap_or(0) < **n)
        .take(5)
        .collect();
    let duplicated: Vec<_> = got
        .iter()
        .filter(|(r, n)| expected.get(*r).copied().unwrap_or(0) < **n)
        .take(5)
        .collect();
    assert!(
        lost.is_empty() && duplicated.is_empty(),
        "after {interrupted} interruptions: lost {lost:?}, duplicated {duplicated:?}"
    );
    assert_eq!(got, expected);
    assert!(
        hidden_files(&archive).is_empty(),
        "{:?}",
        hidden_files(&archive)
    );
    eprintln!(
        "{interrupted} interruptions ({resumed} restarts resumed from a checkpoint): {} rows, 0 lost, 0 duplicated",
        got.values().sum::<usize>()
    );
}

/// A CSV source of `rows` (`id,v` lines) into an unpartitioned Parquet archive.
fn csv_into_archive(dir: &Path, input: &Path, archive: &Path, extra: &str) -> PathBuf {
    let sql = dir.join("copy.sql");
    std::fs::write(
        &sql,
        format!(
            "{extra}CREATE TABLE src (id BIGINT, v STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             CREATE TABLE archive (id BIGINT, v STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             INSERT INTO archive SELECT id, v FROM src;\n",
            input.display(),
            archive.display()
        ),
    )
    .expect("write");
    sql
}

#[test]
fn a_second_run_adds_to_the_archive_instead_of_replacing_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in.csv");
    let archive = tmp.path().join("archive");
    let sql = csv_into_archive(tmp.path(), &input, &archive, "");
    std::fs::write(&input, "1,a\n2,b\n3,c\n").expect("write");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&input, "4,d\n5,e\n6,f\n").expect("write");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let out = weir()
        .args([
            "query",
            "--format",
            "csv",
            &format!(
                "SELECT COUNT(*) AS n, SUM(id) AS s FROM '{}'",
                archive.display()
            ),
        ])
        .output()
        .expect("weir query");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "n,s\n6,21",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_job_never_deletes_another_jobs_in_progress_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in.csv");
    std::fs::write(&input, "1,a\n").expect("write");
    let archive = tmp.path().join("archive");
    std::fs::create_dir_all(&archive).expect("mkdir");
    // Another job's file being written, and a leftover of this job's own earlier run.
    let other = archive.join(".part-other-lq3x1a2b3c-0-1-0.parquet.inprogress");
    std::fs::write(&other, b"another job writes here").expect("write");
    let ckpt = tmp.path().join("ckpt");
    let extra = format!(
        "SET 'pipeline.name' = 'copy';\nSET 'execution.checkpointing.interval' = '1s';\nSET 'state.checkpoints.dir' = '{}';\n",
        ckpt.display()
    );
    let own = archive.join(".part-copy-lq3x1a2b3c-0-1-0.parquet.inprogress");
    std::fs::write(&own, b"a killed run of this job").expect("write");
    let sql = csv_into_archive(tmp.path(), &input, &archive, &extra);
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&other).expect("the other job's file is untouched"),
        b"another job writes here"
    );
    assert!(!own.exists(), "this job's own leftover is cleaned");
}

#[test]
fn explain_and_a_failed_plan_touch_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("not-yet");
    let sql = tmp.path().join("e.sql");
    std::fs::write(
        &sql,
        format!(
            "CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\n\
             CREATE TABLE archive (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             EXPLAIN INSERT INTO archive SELECT id FROM src;\n",
            archive.display()
        ),
    )
    .expect("write");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(!archive.exists(), "EXPLAIN created the sink's folder");
    std::fs::write(
        &sql,
        format!(
            "CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\n\
             CREATE TABLE archive (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n\
             INSERT INTO archive SELECT nope FROM src;\n",
            archive.display()
        ),
    )
    .expect("write");
    let (code, _) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 2);
    assert!(!archive.exists(), "a failed plan created the sink's folder");
}

/// A bounded memory-free job whose checkpoints can be tampered with: the Nexmark job, killed
/// once after its first checkpoints.
fn killed_once(tmp: &Path) -> (PathBuf, PathBuf) {
    let archive = tmp.join("archive");
    let checkpoints = tmp.join("checkpoints");
    let sql = tmp.join("job.sql");
    std::fs::write(&sql, nexmark_job(&archive, Some(&checkpoints), 5_000_000)).expect("write");
    let mut child = weir()
        .args(["run", "-q", &sql.display().to_string()])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("weir starts");
    let job = checkpoints.join("kill9");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && !std::fs::read_dir(&job)
            .is_ok_and(|d| d.flatten().any(|e| e.path().join("_metadata").is_file()))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    (sql, job)
}

#[test]
fn a_corrupt_state_file_is_refused_with_its_path() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (sql, job) = killed_once(tmp.path());
    let chk = std::fs::read_dir(&job)
        .expect("job dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("_metadata").is_file())
        .expect("a completed checkpoint");
    let state = std::fs::read_dir(&chk)
        .expect("chk dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "arrows"))
        .expect("a state file");
    let mut bytes = std::fs::read(&state).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&state, bytes).expect("write");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is corrupt") && err.contains(&state.display().to_string()),
        "{err}"
    );
    // A given checkpoint is restored instead of the latest: here one that does not exist,
    // then the newest one again by its path.
    let (code, err) = run(&[
        "run",
        "-q",
        "--set",
        "execution.savepoint.path=/nonexistent/chk-9",
        &sql.display().to_string(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'execution.savepoint.path'") && err.contains("not a completed checkpoint"),
        "{err}"
    );
    // Starting over ignores it.
    let (code, err) = run(&[
        "run",
        "-q",
        "--from-scratch",
        "--set",
        "events.num=20000",
        &sql.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_changed_query_is_refused_naming_the_operator() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (sql, _) = killed_once(tmp.path());
    let text = std::fs::read_to_string(&sql).expect("read");
    std::fs::write(
        &sql,
        text.replace("MAX(price) AS maxprice", "MIN(price) AS maxprice"),
    )
    .expect("write");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the query changed") && err.contains("window aggregate"),
        "{err}"
    );
}

/// The completed checkpoints in a job's folder (those with a `_metadata`), each with its
/// files' names, sorted.
fn completed_checkpoints(job: &Path) -> Vec<(std::ffi::OsString, Vec<std::ffi::OsString>)> {
    let mut out: Vec<_> = std::fs::read_dir(job)
        .expect("job folder")
        .flatten()
        .filter(|e| e.path().join("_metadata").is_file())
        .map(|e| {
            let mut files: Vec<_> = std::fs::read_dir(e.path())
                .expect("checkpoint folder")
                .flatten()
                .map(|f| f.file_name())
                .collect();
            files.sort();
            (e.file_name(), files)
        })
        .collect();
    out.sort();
    out
}

/// A checkpoint's keyed state is split into `pipeline.max-parallelism` key groups: a
/// restore with another number is refused, naming both and the setting to use; the
/// completed checkpoints stay as they were. (An incomplete one the kill left behind may be
/// cleared away first, as every run clears them.) (Another parallelism is fine: see the
/// kill -9 test.)
#[test]
fn a_checkpoint_of_other_key_groups_is_refused_with_both() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (sql, job) = killed_once(tmp.path());
    let before = completed_checkpoints(&job);
    assert!(!before.is_empty(), "no completed checkpoint");
    let (code, err) = run(&[
        "run",
        "-q",
        "--set",
        "pipeline.max-parallelism=64",
        &sql.display().to_string(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("splits its keyed state into 128 key groups, and this run has 64")
            && err.contains("SET 'pipeline.max-parallelism' = '128'"),
        "{err}"
    );
    assert_eq!(before, completed_checkpoints(&job));
}

#[test]
fn a_source_that_cannot_replay_refuses_checkpointing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sql = tmp.path().join("s.sql");
    std::fs::write(
        &sql,
        format!(
            "SET 'execution.checkpointing.interval' = '1s';\nSET 'state.checkpoints.dir' = '{}';\n\
             CREATE TABLE src (id BIGINT) WITH ('connector' = 'stdin', 'format' = 'csv');\n\
             CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO out SELECT id FROM src;\n",
            tmp.path().join("ckpt").display()
        ),
    )
    .expect("write");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'stdin' source cannot take part in checkpoints"),
        "{err}"
    );
}

/// The updating operators in the three-run form: GROUP BY (with DISTINCT) and a Top-N over
/// a whole stream, checkpointed every 10 ms, stopped with a savepoint part-way and resumed
/// at another parallelism (1 → 2, 2 → 3, 3 → 1: the keyed state split anew by key group),
/// give exactly the changelog of a straight run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_and_top_n_resume_to_the_same_changelog() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in.csv");
    let mut text = String::new();
    let mut x: u64 = 7;
    for i in 0..3000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.push_str(&format!("k{},{},{i}\n", (x >> 33) % 13, (x >> 40) % 1000));
    }
    std::fs::write(&input, text).expect("write");
    let ddl = format!(
        "SET 'table.exec.batch-size' = '7';\n\
         CREATE TABLE t (k STRING, v BIGINT, i BIGINT) WITH ('connector' = 'filesystem', \
           'path' = '{}', 'format' = 'csv');\n",
        input.display()
    );
    let queries = [
        "SELECT k, COUNT(*) AS n, SUM(v) AS s, COUNT(DISTINCT v) AS d, MAX(i) AS m, \
         COUNT(DISTINCT v) FILTER (WHERE i % 3 = 0) AS e, MIN(k) AS mk, AVG(v) AS a FROM t GROUP BY k",
        // The same with an aggregate kept as an accumulator per group (not in columns).
        "SELECT k, COUNT(DISTINCT v) FILTER (WHERE i % 3 = 0) AS e, COUNT(DISTINCT CAST(v AS STRING)) AS ds FROM t GROUP BY k",
        "SELECT k, v, i, rn FROM (SELECT k, v, i, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC, i) AS rn FROM t) WHERE rn <= 3",
    ];
    let mut resumed_runs = 0;
    for (q, sql) in queries.iter().enumerate() {
        let mut s = weir::Session::new();
        let mut straight = s
            .run_collect(&format!("{ddl}{sql};"))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let expected = common::rows(&straight.pop().expect("a result"));
        assert!(expected.len() > 100, "{sql}: {} changes", expected.len());
        for (n, (ms, p)) in [(2u64, (1, 2)), (9, (2, 3)), (25, (3, 1))]
            .into_iter()
            .enumerate()
        {
            let checkpoints = tmp.path().join(format!("ckpt-{q}-{n}"));
            let (got, resumed) =
                common::rescaled(&ddl, sql, &checkpoints, Duration::from_millis(ms), p).await;
            resumed_runs += usize::from(resumed);
            assert_eq!(
                got.len(),
                expected.len(),
                "{sql}: stopped after {ms} ms at parallelism {} and resumed at {}",
                p.0,
                p.1
            );
            assert!(
                got == expected,
                "{sql}: stopped after {ms} ms at parallelism {} and resumed at {}",
                p.0,
                p.1
            );
        }
    }
    assert!(resumed_runs > 0, "no run was stopped part-way");
}

/// Waits until the job folder holds a completed checkpoint.
fn wait_for_checkpoint(job: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && !std::fs::read_dir(job)
            .is_ok_and(|d| d.flatten().any(|e| e.path().join("_metadata").is_file()))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes the job's checkpoint folder unwritable for `down` (a file stands where the folder
/// was; root ignores permissions), then puts it back.
fn break_checkpoints_for(job: &Path, down: Duration) {
    let aside = job.with_extension("aside");
    std::fs::rename(job, &aside).expect("move the folder aside");
    std::fs::write(job, b"not a folder").expect("a file in its place");
    std::thread::sleep(down);
    std::fs::remove_file(job).expect("remove the file");
    std::fs::rename(&aside, job).expect("put the folder back");
}

/// Runs `sql` (with `args`), breaks its checkpoint folder for 800 ms once a checkpoint
/// completed, and waits for the run to end: its exit code and stderr.
fn run_with_checkpoints_broken(sql: &Path, job: &Path, args: &[&str]) -> (Option<i32>, String) {
    let child = weir()
        .arg("run")
        .arg("-q")
        .args(args)
        .arg(sql)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("weir starts");
    wait_for_checkpoint(job);
    break_checkpoints_for(job, Duration::from_millis(800));
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn failed_checkpoints_are_reported_tolerated_and_never_restored() {
    if !has_pyarrow() {
        return;
    }
    let events = 2_500_000;
    let tmp = tempfile::tempdir().expect("tmp");
    let expected = reference_rows(tmp.path(), events);

    // Tolerated: the job goes on, says which checkpoints failed, and loses nothing.
    let (archive, checkpoints, sql) = checkpointed_job(tmp.path(), "", events);
    let job = checkpoints.join("kill9");
    let (code, stderr) = run_with_checkpoints_broken(
        &sql,
        &job,
        &[
            "--set",
            "execution.checkpointing.tolerable-failed-checkpoints=1000",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("[WARNING] checkpoint") && stderr.contains("failed"),
        "{stderr}"
    );
    assert_eq!(pyarrow_rows(&archive), expected);

    // Not tolerated (the default): the job fails naming the setting; no folder of a failed
    // checkpoint is left to restore, and the next run resumes from the last good one.
    let (archive, checkpoints, sql) = checkpointed_job(tmp.path(), "2", events);
    let job = checkpoints.join("kill9");
    let (code, stderr) = run_with_checkpoints_broken(&sql, &job, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("tolerable-failed-checkpoints"), "{stderr}");
    for e in std::fs::read_dir(&job).expect("job dir").flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("chk-") {
            assert!(
                e.path().join("_metadata").is_file(),
                "{name}: a checkpoint folder without its manifest"
            );
        }
    }
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resumes from"), "{err}");
    assert_eq!(pyarrow_rows(&archive), expected);
}

/// The worst moments, hit on purpose (`WEIR_CRASH_AT`): the process aborts with every state
/// file of checkpoint 3 written but no manifest, and, in another run, right after the
/// manifest of checkpoint 3 and before the sink's commit. The restarts restore checkpoint 2
/// (the first case; checkpoint 3 never existed) and re-commit checkpoint 3's pending files
/// (the second), and the archive equals an uninterrupted run's.
#[test]
fn a_crash_around_the_manifest_loses_and_duplicates_nothing() {
    if !has_pyarrow() {
        return;
    }
    let events = 1_500_000;
    let tmp = tempfile::tempdir().expect("tmp");
    let expected = reference_rows(tmp.path(), events);
    for (n, point) in ["before-manifest", "after-manifest"]
        .into_iter()
        .enumerate()
    {
        let (archive, _, sql) = checkpointed_job(tmp.path(), &n.to_string(), events);
        let out = weir()
            .args(["run", "-q", &sql.display().to_string()])
            .env("WEIR_CRASH_AT", format!("{point}:3"))
            .output()
            .expect("weir runs");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(stderr.contains("aborting"), "{point}: {stderr}");
        assert_ne!(out.status.code(), Some(0), "{point}: {stderr}");
        let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
        assert_eq!(code, 0, "{point}: {err}");
        let restored = if point == "before-manifest" { 2 } else { 3 };
        assert!(
            err.contains(&format!("resumes from checkpoint {restored} ")),
            "{point}: {err}"
        );
        assert_eq!(pyarrow_rows(&archive), expected, "{point}");
        assert!(hidden_files(&archive).is_empty(), "{point}");
    }
}

/// A file source resumes in the file it was reading, found by name: a file added meanwhile
/// that sorts before it does not shift the position (it is not read: the folder was past
/// it), and every row of the other files comes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_resumes_by_file_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let mut expected = vec![];
    for (f, base) in [("b.csv", 0), ("c.csv", 100_000)] {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("{}\n", base + i));
            expected.push((base + i).to_string());
        }
        std::fs::write(input.join(f), text).expect("write");
    }
    expected.sort();
    let ddl = format!(
        "SET 'table.exec.batch-size' = '2';\n\
         CREATE TABLE t (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n",
        input.display()
    );
    let (got, resumed) = common::resumed_with(
        &ddl,
        "SELECT id FROM t",
        &tmp.path().join("ckpt"),
        Duration::from_millis(30),
        || std::fs::write(input.join("a.csv"), "-1\n-2\n").expect("an earlier file"),
    )
    .await;
    assert!(resumed, "the first run read everything");
    assert_eq!(got, expected);
}

/// A SIGTERM that comes while the statements are still being planned stops the job cleanly
/// with a savepoint (it used to kill the process: the signal came before the handler).
#[test]
fn a_sigterm_during_start_up_stops_cleanly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sql = tmp.path().join("job.sql");
    std::fs::write(
        &sql,
        nexmark_job(
            &tmp.path().join("archive"),
            Some(&tmp.path().join("checkpoints")),
            5_000_000,
        ),
    )
    .expect("write");
    let child = weir()
        .args(["run", "-q", &sql.display().to_string()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("weir starts");
    // As soon as it catches SIGTERM, which is before it plans the statements.
    common::wait_until_it_catches_sigterm(child.id());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Parquet replay source resumes at the file and row it stopped at (rows of a file go
/// out in event-time order, ties in the file's order), and the datagen source at its
/// sequences' next values with its random generator's state: stopped with a savepoint
/// part-way and resumed, each gives exactly the rows of a straight run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_and_datagen_sources_resume_where_they_stopped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let ctx = datafusion::prelude::SessionContext::new();
    for (file, base) in [("a.parquet", 0), ("b.parquet", 100_000)] {
        // Times out of order and with ties (i % 97 / 3), so the replay sorts each file.
        let sql = format!(
            "COPY (SELECT {base} + value AS id, \
               to_timestamp_millis(((value * 37) % 97 / 3) * 1000) AS ts \
             FROM generate_series(0, 19999)) TO '{}' STORED AS PARQUET",
            input.join(file).display()
        );
        ctx.sql(&sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("write");
    }
    let sources = [
        format!(
            "SET 'table.exec.batch-size' = '3';\n\
             CREATE TABLE t (id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH (\
               'connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet');\n",
            input.display()
        ),
        "SET 'table.exec.batch-size' = '7';\n\
         CREATE TABLE t (id BIGINT, v INT, s STRING) WITH ('connector' = 'datagen', \
           'rows-per-second' = '100000', 'number-of-rows' = '30000', 'seed' = '11', \
           'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000000', \
           'fields.v.min' = '0', 'fields.v.max' = '1000', 'fields.s.length' = '4');\n"
            .to_string(),
        // Slow: the stop comes while the source waits for its next batch's time.
        "CREATE TABLE t (id BIGINT, v INT) WITH ('connector' = 'datagen', \
           'rows-per-second' = '40', 'number-of-rows' = '40', 'seed' = '5', \
           'fields.v.min' = '0', 'fields.v.max' = '1000');\n"
            .to_string(),
    ];
    for (n, ddl) in sources.iter().enumerate() {
        let least = if n == 2 { 40 } else { 30_000 };
        let sql = "SELECT * FROM t";
        let mut s = weir::Session::new();
        let mut straight = s
            .run_collect(&format!("{ddl}{sql};"))
            .await
            .unwrap_or_else(|e| panic!("{ddl}: {e}"));
        let expected = common::rows(&straight.pop().expect("a result"));
        assert!(expected.len() >= least, "{ddl}: {} rows", expected.len());
        let checkpoints = tmp.path().join(format!("ckpt-{n}"));
        let (got, resumed) =
            common::resumed(ddl, sql, &checkpoints, Duration::from_millis(60)).await;
        assert!(resumed, "{ddl}: the first run read everything");
        assert_eq!(got.len(), expected.len(), "{ddl}");
        assert!(got == expected, "{ddl}: resumed rows differ");
    }
}

/// A checkpoint remembers what each source read: restoring it into a source that reads
/// another path is refused, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_reading_something_else_is_refused_at_restore() {
    let tmp = tempfile::tempdir().expect("tmp");
    let text: String = (0..50_000).map(|i| format!("{i}\n")).collect();
    for f in ["a.csv", "b.csv"] {
        std::fs::write(tmp.path().join(f), &text).expect("write");
    }
    let ddl = |f: &str| {
        format!(
            "SET 'table.exec.batch-size' = '2';\n\
             CREATE TABLE t (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n",
            tmp.path().join(f).display()
        )
    };
    let settings = format!(
        "SET 'pipeline.name' = 'moved';\nSET 'execution.checkpointing.interval' = '10ms';\n\
         SET 'state.checkpoints.dir' = '{}';\n",
        tmp.path().join("ckpt").display()
    );
    let query = weir::sql::parser::parse_script("SELECT id FROM t")
        .expect("parses")
        .pop()
        .expect("one statement");
    let mut first = weir::Session::new();
    first
        .run_collect(&format!("{settings}{}", ddl("a.csv")))
        .await
        .expect("ddl");
    let job = first
        .start_into(&query, Box::new(weir::sink::collect::CollectSink::new()))
        .await
        .expect("starts");
    tokio::time::sleep(Duration::from_millis(30)).await;
    job.stop();
    job.wait().await.expect("stops with a savepoint");
    let mut second = weir::Session::new();
    let err = second
        .run_collect(&format!("{settings}{}SELECT id FROM t;", ddl("b.csv")))
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("the query changed") && msg.contains("b.csv") && msg.contains("a.csv"),
        "{msg}"
    );
}

/// Every late-row file under `dir` that is visible (not hidden), as lines.
fn visible_lines(dir: &Path) -> Vec<String> {
    let mut lines = vec![];
    for f in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        if !name.starts_with('.') && name.ends_with(".csv") {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            lines.extend(text.lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}

/// A window's `late-data.sink` takes part in checkpoints: the late rows it holds become
/// visible when a checkpoint completes, while the job runs, so a kill -9 after it loses
/// none of them; the restarted job resumes after them and every late row is there once.
#[test]
fn late_rows_survive_a_kill_after_a_checkpoint() {
    let tmp = tempfile::tempdir().expect("tmp");
    let late_dir = tmp.path().join("late");
    // Rows 1 000, 2 000 and 3 000 are 100 s behind: late for every window. 2 000 rows a
    // second: they come within 1.5 s, and the input would end after 20 s (the restarted
    // run reads the rest as fast as it can).
    let late: Vec<String> = ["1000", "2000", "3000"].map(String::from).to_vec();
    let checkpoints = tmp.path().join("checkpoints");
    let sql = tmp.path().join("late.sql");
    let text = format!(
        "SET 'pipeline.name' = 'late';\n\
             SET 'execution.checkpointing.interval' = '50ms';\n\
             SET 'state.checkpoints.dir' = '{}';\n\
             CREATE TABLE src (i BIGINT, rowtime AS TO_TIMESTAMP_LTZ(CASE WHEN i IN (1000, 2000, 3000) \
               THEN i * 10 - 100000 ELSE i * 10 + 200000 END, 3), \
               WATERMARK FOR rowtime AS rowtime) WITH ('connector' = 'datagen', \
               'rows-per-second' = '2000', 'fields.i.kind' = 'sequence', 'fields.i.start' = '0', \
               'fields.i.end' = '39999', 'late-data.sink' = 'late_rows');\n\
             CREATE TABLE late_rows (i BIGINT, rowtime TIMESTAMP_LTZ(3)) WITH (\
               'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             CREATE TABLE out (window_start TIMESTAMP(3), c BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO out SELECT window_start, COUNT(*) FROM \
               TABLE(TUMBLE(TABLE src, DESCRIPTOR(rowtime), INTERVAL '1' SECOND)) \
               GROUP BY window_start, window_end;\n",
        checkpoints.display(),
        late_dir.display()
    );
    std::fs::write(&sql, &text).expect("write");
    let ids = |dir: &Path| -> Vec<String> {
        visible_lines(dir)
            .iter()
            .map(|l| l.split(',').next().unwrap_or_default().to_string())
            .collect()
    };
    let mut child = weir()
        .args(["run", "-q", &sql.display().to_string()])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("weir starts");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) && ids(&late_dir).len() < late.len() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let visible_after = started.elapsed();
    let running = child.try_wait().expect("status").is_none();
    let _ = child.kill();
    let _ = child.wait();
    // The input lasts 20 s: rows visible only at its end did not come with a checkpoint.
    assert!(
        running && visible_after < Duration::from_secs(12),
        "the late rows became visible after {visible_after:?}, when the job ended"
    );
    assert_eq!(ids(&late_dir), late, "visible at a checkpoint");
    let text = text.replace("'rows-per-second' = '2000'", "'rows-per-second' = '0'");
    std::fs::write(&sql, &text).expect("write");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resumes from checkpoint"), "{err}");
    assert_eq!(ids(&late_dir), late, "every late row, once");
}

/// The late-data sink commits in two phases with the job's checkpoints: a crash with every
/// state file of checkpoint 10 written but no manifest (the late files prepared for it are
/// not yet visible) restarts from checkpoint 9, whose sources' positions come before those
/// rows; they are diverted again and committed once. One row in a hundred is late, so
/// nearly every checkpoint has some.
#[test]
fn late_rows_are_committed_once_across_a_crash_before_the_manifest() {
    let tmp = tempfile::tempdir().expect("tmp");
    let late_dir = tmp.path().join("late");
    let checkpoints = tmp.path().join("checkpoints");
    let sql = tmp.path().join("late.sql");
    let text = |rate: u32| {
        format!(
            "SET 'pipeline.name' = 'late_once';\n\
             SET 'execution.checkpointing.interval' = '50ms';\n\
             SET 'state.checkpoints.dir' = '{}';\n\
             CREATE TABLE src (i BIGINT, rowtime AS TO_TIMESTAMP_LTZ(CASE WHEN MOD(i, 100) = 50 \
               THEN i * 10 - 100000 ELSE i * 10 + 200000 END, 3), \
               WATERMARK FOR rowtime AS rowtime) WITH ('connector' = 'datagen', \
               'rows-per-second' = '{rate}', 'fields.i.kind' = 'sequence', 'fields.i.start' = '0', \
               'fields.i.end' = '19999', 'late-data.sink' = 'late_rows');\n\
             CREATE TABLE late_rows (i BIGINT, rowtime TIMESTAMP_LTZ(3)) WITH (\
               'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             CREATE TABLE out (window_start TIMESTAMP(3), c BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO out SELECT window_start, COUNT(*) FROM \
               TABLE(TUMBLE(TABLE src, DESCRIPTOR(rowtime), INTERVAL '1' SECOND)) \
               GROUP BY window_start, window_end;\n",
            checkpoints.display(),
            late_dir.display()
        )
    };
    std::fs::write(&sql, text(2000)).expect("write");
    let out = weir()
        .args(["run", "-q", &sql.display().to_string()])
        .env("WEIR_CRASH_AT", "before-manifest:10")
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("aborting"), "{stderr}");
    let before = visible_lines(&late_dir).len();
    assert!(before > 0, "late rows were visible before the crash");
    std::fs::write(&sql, text(0)).expect("write");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resumes from checkpoint 9 "), "{err}");
    let mut got: Vec<u64> = visible_lines(&late_dir)
        .iter()
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect();
    got.sort_unstable();
    let want: Vec<u64> = (0..20_000).filter(|i| i % 100 == 50).collect();
    assert_eq!(
        got, want,
        "every late row once ({before} were visible at the crash)"
    );
    assert!(hidden_files(&late_dir).is_empty());
}

/// Writes `good` JSON records `{"id":i,"v":"s<i>"}` to `dir/in/input.json` with one bad
/// record after every `every` good ones, of five kinds (truncated JSON, not an object, a
/// wrong type, invalid UTF-8, trailing garbage). Returns the bad records' line numbers and
/// bytes.
fn mixed_input(dir: &Path, good: u64, every: u64) -> Vec<(usize, Vec<u8>)> {
    use std::io::Write;
    let input = dir.join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(input.join("input.json")).expect("create"));
    let mut bad = vec![];
    let mut line = 0;
    for i in 0..good {
        line += 1;
        writeln!(f, "{{\"id\":{i},\"v\":\"s{i}\"}}").expect("write");
        if (i + 1) % every == 0 {
            line += 1;
            let n = bad.len();
            let raw: Vec<u8> = match n % 5 {
                0 => format!("{{\"id\":{i},\"v\":").into_bytes(),
                1 => format!("[{i}]").into_bytes(),
                2 => format!("{{\"id\":\"x{i}\",\"v\":\"b\"}}").into_bytes(),
                3 => [
                    &b"{\"id\":1,\"v\":\"\xff\xfe"[..],
                    format!("{i}\"}}").as_bytes(),
                ]
                .concat(),
                _ => format!("{{\"id\":{i},\"v\":\"t\"}} trailing").into_bytes(),
            };
            f.write_all(&raw).expect("write");
            f.write_all(b"\n").expect("write");
            bad.push((line, raw));
        }
    }
    f.flush().expect("flush");
    bad
}

/// The dead-letter script: the mixed input into CSV `out`, its bad records into the JSON
/// table `bad`; with `checkpoints`, checkpointed every 50 ms.
fn dead_letter_job(dir: &Path, checkpoints: bool) -> PathBuf {
    let sql = dir.join("dl.sql");
    let settings = if checkpoints {
        format!(
            "SET 'pipeline.name' = 'dl';\n\
             SET 'execution.checkpointing.interval' = '50ms';\n\
             SET 'state.checkpoints.dir' = '{}';\n",
            dir.join("checkpoints").display()
        )
    } else {
        String::new()
    };
    std::fs::write(
        &sql,
        format!(
            "{settings}\
             CREATE TABLE src (id BIGINT, v STRING) WITH ('connector' = 'filesystem', \
               'path' = '{in}', 'format' = 'json', 'dead-letter.sink' = 'bad');\n\
             CREATE TABLE bad (source STRING, raw STRING, error STRING) WITH (\
               'connector' = 'filesystem', 'path' = '{bad}', 'format' = 'json');\n\
             CREATE TABLE out (id BIGINT, v STRING) WITH ('connector' = 'filesystem', \
               'path' = '{out}', 'format' = 'csv');\n\
             INSERT INTO out SELECT id, v FROM src;\n",
            in = dir.join("in").display(),
            bad = dir.join("bad").display(),
            out = dir.join("out").display(),
        ),
    )
    .expect("write");
    sql
}

/// Checks the dead-letter job's output: every good record once in `out`, every bad one
/// once in `bad`, with its bytes (invalid UTF-8 replaced), a reason and its file and line.
fn check_dead_letters(dir: &Path, good: u64, bad: &[(usize, Vec<u8>)]) {
    let mut ids: Vec<u64> = visible_lines(&dir.join("out"))
        .iter()
        .map(|l| {
            let (id, v) = l.split_once(',').expect("two columns");
            assert_eq!(v, format!("s{id}"));
            id.parse().expect("an id")
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids.len() as u64, good, "every good record, once");
    assert!(ids.iter().enumerate().all(|(i, id)| i as u64 == *id));
    let mut letters = vec![];
    for f in std::fs::read_dir(dir.join("bad")).expect("bad").flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        if !name.starts_with('.') {
            let text = std::fs::read_to_string(f.path()).expect("read");
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON row");
                letters.push((
                    v["source"].as_str().expect("source").to_string(),
                    v["raw"].as_str().expect("raw").to_string(),
                    v["error"].as_str().expect("error").to_string(),
                ));
            }
        }
    }
    letters.sort();
    let input = dir.join("in").join("input.json");
    let mut want: Vec<(String, String)> = bad
        .iter()
        .map(|(line, raw)| {
            (
                format!("{}:{line}", input.display()),
                String::from_utf8_lossy(raw).to_string(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(letters.len(), want.len(), "every bad record, once");
    for ((source, raw, error), (want_source, want_raw)) in letters.iter().zip(&want) {
        assert_eq!((source, raw), (want_source, want_raw));
        assert!(!error.is_empty(), "{source}: a reason");
    }
    assert!(hidden_files(&dir.join("bad")).is_empty());
}

/// `'dead-letter.sink'`: 10 000 malformed records mixed into 1 000 000 good ones. The job
/// runs to its end, every good row arrives once, every bad record is in the dead-letter
/// table once with its reason and place, and the run counts them.
#[test]
fn bad_records_go_to_the_dead_letter_table_and_good_ones_arrive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = mixed_input(tmp.path(), 1_000_000, 100);
    assert_eq!(bad.len(), 10_000);
    let sql = dead_letter_job(tmp.path(), false);
    let (code, err) = run(&["run", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("bad records skipped: 10000"), "{err}");
    check_dead_letters(tmp.path(), 1_000_000, &bad);
}

/// Dead letters commit with the job's checkpoints: a crash with checkpoint 5's state
/// written but no manifest restarts from checkpoint 4, and still every bad record is in the
/// dead-letter table once and every good one in the output once.
#[test]
fn dead_letters_are_written_once_across_a_crash() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = mixed_input(tmp.path(), 1_000_000, 100);
    let sql = dead_letter_job(tmp.path(), true);
    let out = weir()
        .args(["run", "-q", &sql.display().to_string()])
        .env("WEIR_CRASH_AT", "before-manifest:5")
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("aborting"), "{stderr}");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resumes from checkpoint 4 "), "{err}");
    check_dead_letters(tmp.path(), 1_000_000, &bad);
}

/// A dead-letter table must be a table with the columns of a dead letter.
#[test]
fn a_dead_letter_table_with_other_columns_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    mixed_input(tmp.path(), 10, 5);
    let sql = tmp.path().join("q.sql");
    let script = |bad: &str| {
        format!(
            "CREATE TABLE src (id BIGINT, v STRING) WITH ('connector' = 'filesystem', \
               'path' = '{}', 'format' = 'json', 'dead-letter.sink' = 'bad');\n\
             {bad}\n\
             INSERT INTO bad2 SELECT CAST(id AS STRING), v, v FROM src;\n",
            tmp.path().join("in").display()
        )
    };
    std::fs::write(
        &sql,
        script(
            "CREATE TABLE bad (raw STRING, line BIGINT) WITH ('connector' = 'print');\n\
             CREATE TABLE bad2 (raw STRING, error STRING, source STRING) WITH ('connector' = 'blackhole');",
        ),
    )
    .expect("write");
    let (code, err) = run(&["run", &sql.display().to_string()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("the dead-letter table 'bad' has a column 'line'"),
        "{err}"
    );
    std::fs::write(
        &sql,
        script("CREATE TABLE bad2 (raw STRING, error STRING, source STRING) WITH ('connector' = 'blackhole');"),
    )
    .expect("write");
    let (code, err) = run(&["run", &sql.display().to_string()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("'dead-letter.sink' names 'bad', which is not a table"),
        "{err}"
    );
}

/// A statement set is one job with one checkpoint over all its sinks: killed with -9 at
/// random moments and restarted, its two file sinks end with exactly an uninterrupted
/// run's rows, none lost, none twice.
#[test]
fn a_statement_set_killed_and_restarted_writes_each_row_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let job = |dir: &Path, checkpoints: Option<&Path>| {
        let settings = checkpoints
            .map(|c| {
                format!(
                    "SET 'pipeline.name' = 'set';\n\
                     SET 'execution.checkpointing.interval' = '200ms';\n\
                     SET 'state.checkpoints.dir' = '{}';\n",
                    c.display()
                )
            })
            .unwrap_or_default();
        format!(
            "{settings}\
CREATE TABLE datagen (
    event_type INT,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    dateTime AS bid.dateTime,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'first-event.rate' = '10000', 'events.num' = '1500000',
        'base-time' = '2026-01-01 00:00:00');
CREATE TABLE even_prices (auction BIGINT, price BIGINT) WITH (
    'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
CREATE TABLE counts (window_start TIMESTAMP(3), bids BIGINT) WITH (
    'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
EXECUTE STATEMENT SET BEGIN
INSERT INTO even_prices SELECT bid.auction, bid.price FROM datagen WHERE event_type = 2 AND bid.price % 2 = 0;
INSERT INTO counts SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE datagen, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) WHERE event_type = 2 GROUP BY window_start, window_end;
END;
",
            dir.join("even").display(),
            dir.join("counts").display()
        )
    };
    let reference = tmp.path().join("reference");
    let sql = tmp.path().join("ref.sql");
    std::fs::write(&sql, job(&reference, None)).expect("write");
    let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let (even, counts) = (
        visible_lines(&reference.join("even")),
        visible_lines(&reference.join("counts")),
    );
    assert!(
        even.len() > 10_000 && counts.len() > 10,
        "{} {}",
        even.len(),
        counts.len()
    );

    let out = tmp.path().join("out");
    let sql = tmp.path().join("set.sql");
    std::fs::write(&sql, job(&out, Some(&tmp.path().join("checkpoints")))).expect("write");
    let mut finished = false;
    let mut kills = 0;
    for round in 0..8 {
        let mut child = weir()
            .args(["run", "-q", &sql.display().to_string()])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("weir starts");
        let pid = child.id();
        common::wait_until_it_catches_sigterm(pid);
        std::thread::sleep(Duration::from_millis(400 + 150 * round));
        if child.try_wait().expect("try_wait").is_some() {
            let out = child.wait_with_output().expect("wait");
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            // A start after the end of the input says so, with exit code 2.
            assert!(
                out.status.code() == Some(0) || stderr.contains("already ran to the end"),
                "{stderr}"
            );
            finished = true;
            break;
        }
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let _ = child.wait();
        kills += 1;
    }
    assert!(kills > 0, "the job ended before the first kill");
    if !finished {
        let (code, err) = run(&["run", "-q", &sql.display().to_string()]);
        assert!(code == 0 || err.contains("already ran to the end"), "{err}");
    }
    assert_eq!(visible_lines(&out.join("even")), even);
    assert_eq!(visible_lines(&out.join("counts")), counts);
}
