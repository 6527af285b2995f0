//! Joins, differentially: two random bounded streams (keys including NULL, times out of
//! order within the watermark bound, random batch sizes) are joined by Weir's standing
//! joins and by DataFusion batch SQL over the same rows, and every case must agree exactly:
//! window joins (INNER, LEFT, RIGHT, FULL, and a semi join), interval joins and regular
//! joins (INNER, LEFT, RIGHT, FULL: a changelog, applied), each with a non-equality
//! condition too.
//!
//! `WEIR_JOIN_CASES=n` changes the number of random cases; a failure prints the seed.

mod common;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use weir::Session;

const BASE: i64 = 1_767_225_600_000; // 2026-01-01
/// How far a row's time may trail the latest before it (the watermark's delay).
const BOUND: i64 = 2_000;

/// Random rows (k, v, ts): a handful of keys and NULL, times moving forward with jitter
/// that stays within the watermark's bound, so no row is late.
fn generate(rng: &mut SmallRng, n: usize) -> RecordBatch {
    generate_with_late(rng, n, false).0
}

/// As [`generate`], and with `late` about one row in eight is further behind than the
/// bound; also the rows that are on time (those at or after the watermark of the rows
/// before them), which are what a standing query keeps.
fn generate_with_late(rng: &mut SmallRng, n: usize, late: bool) -> (RecordBatch, RecordBatch) {
    let keys = ["a", "b", "c", "d"];
    let mut now = BASE + rng.random_range(0..3_000);
    let mut k = vec![];
    let mut v = vec![];
    let mut ts = vec![];
    let mut on_time = vec![];
    let mut max = i64::MIN;
    for _ in 0..n {
        // The watermark is the latest time so far less BOUND; `now` only grows.
        now += rng.random_range(0..800);
        k.push((rng.random_range(0..10) > 0).then(|| keys[rng.random_range(0..keys.len())]));
        v.push(Some(rng.random_range(0..20i64)));
        let t = if late && rng.random_range(0..8) == 0 {
            now - BOUND - rng.random_range(1..4_000)
        } else {
            now - rng.random_range(0..BOUND)
        };
        // A watermark `W` promises no rows at or below it (Flink's rule): a row at `W` is late.
        on_time.push(max == i64::MIN || t > max - BOUND);
        max = max.max(t);
        ts.push(t);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(k.into_iter().collect::<StringArray>()),
        Arc::new(v.into_iter().collect::<Int64Array>()),
        Arc::new(TimestampMillisecondArray::from(ts)),
    ];
    let all = RecordBatch::try_new(schema, cols).expect("batch");
    let kept = datafusion::arrow::compute::filter_record_batch(
        &all,
        &datafusion::arrow::array::BooleanArray::from(on_time),
    )
    .expect("filter");
    (all, kept)
}

fn write_json(batch: &RecordBatch, path: &std::path::Path) {
    let f = std::fs::File::create(path).expect("create data file");
    let mut w = datafusion::arrow::json::LineDelimitedWriter::new(f);
    w.write(batch).expect("write rows");
    w.finish().expect("finish");
}

/// A window aggregate of one side, in Weir's SQL and in DataFusion's.
fn stream_side(t: &str) -> String {
    format!(
        "SELECT k, count(*) AS n, sum(v) AS s, window_start, window_end \
         FROM TABLE(TUMBLE(TABLE {t}, DESCRIPTOR(ts), INTERVAL '5' SECOND)) \
         GROUP BY k, window_start, window_end"
    )
}

fn batch_side(t: &str) -> String {
    format!(
        "SELECT k, count(*) AS n, sum(v) AS s, date_bin(INTERVAL '5 seconds', ts) AS window_start, \
           date_bin(INTERVAL '5 seconds', ts) + INTERVAL '5 seconds' AS window_end \
         FROM {t} GROUP BY k, 4, 5"
    )
}

/// (name, Weir's query, DataFusion's query).
fn queries() -> Vec<(String, String, String)> {
    let mut out = vec![];
    for kind in ["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"] {
        for extra in ["", " AND L.s >= R.s"] {
            let select = "SELECT L.k, L.n, L.s, R.k, R.n, R.s, \
                COALESCE(L.window_start, R.window_start) AS ws";
            let on = format!(
                "ON L.k = R.k AND L.window_start = R.window_start AND L.window_end = R.window_end{extra}"
            );
            out.push((
                format!("window {kind}{extra}"),
                format!(
                    "{select} FROM ({}) L {kind} ({}) R {on}",
                    stream_side("a"),
                    stream_side("b")
                ),
                format!(
                    "{select} FROM ({}) L {kind} ({}) R {on}",
                    batch_side("a"),
                    batch_side("b")
                ),
            ));
        }
    }
    // Only one side's columns, and the other side distinct: planned as a semi join.
    let semi = |side: &dyn Fn(&str) -> String| {
        format!(
            "SELECT L.k, L.n, L.window_start FROM ({}) L JOIN \
             (SELECT DISTINCT k, window_start, window_end FROM ({}) x) R \
             ON L.k = R.k AND L.window_start = R.window_start AND L.window_end = R.window_end",
            side("a"),
            side("b")
        )
    };
    out.push(("window semi".into(), semi(&stream_side), semi(&batch_side)));
    // Not a join, but two inputs all the same: a union of two keyed window aggregates, which
    // run as several subtasks each in a parallel job and meet in one union.
    let union = |side: &dyn Fn(&str) -> String| {
        format!(
            "SELECT k, n, s, window_start FROM ({}) UNION ALL SELECT k, n, s, window_start FROM ({})",
            side("a"),
            side("b")
        )
    };
    out.push((
        "union of window aggregates".into(),
        union(&stream_side),
        union(&batch_side),
    ));
    let interval = "SELECT a.k, a.v, a.ts, b.v, b.ts FROM a JOIN b ON a.k = b.k \
        AND a.ts BETWEEN b.ts - INTERVAL '3' SECOND AND b.ts + INTERVAL '1' SECOND";
    out.push(("interval".into(), interval.into(), interval.into()));
    let interval2 = "SELECT a.k, a.v, b.v FROM a, b WHERE a.k = b.k AND a.v < b.v \
        AND b.ts >= a.ts AND b.ts < a.ts + INTERVAL '4' SECOND";
    out.push((
        "interval, written in WHERE".into(),
        interval2.into(),
        interval2.into(),
    ));
    // A window over an INNER interval join's output, which keeps the time attributes: no
    // joined row may be late there (the join's watermark trails by its bounds).
    let joined = "SELECT a.k, a.v AS av, b.v AS bv, a.ts FROM a JOIN b ON a.k = b.k \
        AND a.ts BETWEEN b.ts - INTERVAL '3' SECOND AND b.ts + INTERVAL '1' SECOND";
    out.push((
        "interval, then a window".into(),
        format!(
            "SELECT k, window_start, COUNT(*), SUM(av), MAX(bv) FROM TABLE(TUMBLE(TABLE ({joined}), \
             DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY k, window_start, window_end"
        ),
        format!(
            "SELECT k, date_bin(INTERVAL '1 second', ts, TIMESTAMP '1970-01-01T00:00:00') AS window_start, \
             COUNT(*), SUM(av), MAX(bv) FROM ({joined}) j GROUP BY k, 2"
        ),
    ));
    for kind in ["LEFT JOIN", "RIGHT JOIN", "FULL JOIN"] {
        // Outer interval joins: a row that met nothing comes padded once the watermark
        // passes its last chance (append-only, as Flink's).
        let outer = format!(
            "SELECT a.k, a.v, a.ts, b.v, b.ts FROM a {kind} b ON a.k = b.k \
             AND a.ts BETWEEN b.ts - INTERVAL '3' SECOND AND b.ts + INTERVAL '1' SECOND"
        );
        out.push((format!("outer interval {kind}"), outer.clone(), outer));
    }
    let outer_where = "SELECT a.k, a.v, b.v FROM a LEFT JOIN b ON a.k = b.k AND a.v < b.v \
        AND b.ts >= a.ts AND b.ts < a.ts + INTERVAL '4' SECOND";
    out.push((
        "outer interval LEFT JOIN with a condition".into(),
        outer_where.into(),
        outer_where.into(),
    ));
    for kind in ["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"] {
        // Outer joins give a changelog (a padded row is retracted when its first partner
        // comes), applied before the rows are compared.
        let regular = format!(
            "SELECT a.k, a.v, a.ts, b.v, b.ts FROM a {kind} b ON a.k = b.k AND a.v + 3 < b.v"
        );
        out.push((format!("regular {kind}"), regular.clone(), regular));
    }
    // USING: one common column, COALESCE(a.k, b.k), first in `*` (Calcite's expansion);
    // DataFusion's batch join is given the same in its explicit form.
    out.push((
        "regular FULL JOIN USING".into(),
        "SELECT * FROM a FULL JOIN b USING (k)".into(),
        "SELECT COALESCE(a.k, b.k) AS k, a.v, a.ts, b.v, b.ts FROM a FULL JOIN b ON a.k = b.k"
            .into(),
    ));
    // Subqueries in expressions over whole streams, planned as semi and anti joins: a
    // row of `a` comes once its first partner is there (EXISTS, IN); under NOT EXISTS and
    // NOT IN it comes at once and is taken back when its first partner comes.
    for (name, sql) in [
        (
            "EXISTS, correlated with a condition",
            "SELECT a.k, a.v, a.ts FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k AND b.v > a.v)",
        ),
        (
            "IN (a subquery)",
            "SELECT a.k, a.v FROM a WHERE a.k IN (SELECT b.k FROM b WHERE b.v > 12)",
        ),
        (
            "NOT EXISTS",
            "SELECT a.k, a.v FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.k = a.k AND b.v < a.v)",
        ),
        // NOT IN's NULL rule: a NULL among the subquery's values takes every row back; a
        // row with a NULL key stays only while the subquery is empty.
        (
            "NOT IN (a subquery that may hold NULL)",
            "SELECT a.k, a.v FROM a WHERE a.k NOT IN (SELECT b.k FROM b WHERE b.v = 19)",
        ),
        (
            "NOT IN (a subquery without NULL)",
            "SELECT a.k, a.v FROM a WHERE a.k NOT IN (SELECT b.k FROM b WHERE b.k IN ('a', 'b') AND b.v > 12)",
        ),
    ] {
        out.push((name.into(), sql.into(), sql.into()));
    }
    // An aggregate over an outer join's changelog: SUM and COUNT take the retracted
    // padded rows back (SUM(a.v) takes back real values: the left side of each).
    let summed = "SELECT a.k, COUNT(*), SUM(a.v), SUM(b.v), COUNT(b.v) \
        FROM a LEFT JOIN b ON a.k = b.k GROUP BY a.k";
    out.push(("SUM over a LEFT JOIN".into(), summed.into(), summed.into()));
    // MIN and MAX over it keep every value with its count: a retracted padded row's NULL
    // is skipped, and a retracted value makes way for the next.
    let extremes = "SELECT a.k, MIN(b.v), MAX(b.v), MIN(a.v), MAX(b.ts) \
        FROM a LEFT JOIN b ON a.k = b.k AND a.v + 3 < b.v GROUP BY a.k";
    out.push((
        "MIN/MAX over a LEFT JOIN".into(),
        extremes.into(),
        extremes.into(),
    ));
    out
}

async fn oracle(a: &RecordBatch, b: &RecordBatch, sql: &str) -> Vec<String> {
    let ctx = common::batch_context();
    for (name, batch) in [("a", a), ("b", b)] {
        let t = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).expect("mem table");
        ctx.register_table(name, Arc::new(t)).expect("register");
    }
    common::query(&ctx, sql).await
}

fn ddl(dir: &std::path::Path, batch_size: usize) -> String {
    let mut script = format!(
        "SET 'table.exec.batch-size' = '{batch_size}';\nSET 'parallelism.default' = '{}';\n",
        common::parallelism_for(batch_size)
    );
    for t in ["a", "b"] {
        script.push_str(&format!(
            "CREATE TABLE {t} (k STRING, v BIGINT, ts TIMESTAMP(3), \
               WATERMARK FOR ts AS ts - INTERVAL '{BOUND}' MILLISECOND) \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
            dir.join(format!("{t}.json")).display()
        ));
    }
    script
}

async fn weir(dir: &std::path::Path, batch_size: usize, sql: &str) -> Vec<String> {
    let mut script = ddl(dir, batch_size);
    script.push_str(sql);
    script.push(';');
    let mut s = Session::new();
    let mut results = s
        .run_collect(&script)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    common::applied_rows(&results.pop().expect("one result"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_joins_equal_batch_joins() {
    let cases: u64 = std::env::var("WEIR_JOIN_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nonempty = std::collections::BTreeMap::<String, usize>::new();
    for seed in 0..cases {
        let mut rng = SmallRng::seed_from_u64(seed);
        let (na, nb) = (rng.random_range(1..300), rng.random_range(1..300));
        let a = generate(&mut rng, na);
        let b = generate(&mut rng, nb);
        write_json(&a, &dir.path().join("a.json"));
        write_json(&b, &dir.path().join("b.json"));
        let batch_size = [1, 7, 64, 8192][rng.random_range(0..4)];
        for (name, stream_sql, batch_sql) in queries() {
            let expected = oracle(&a, &b, &batch_sql).await;
            let got = weir(dir.path(), batch_size, &stream_sql).await;
            assert_eq!(
                got,
                expected,
                "{name} differs (seed {seed}, batch size {batch_size}, {} and {} rows)",
                a.num_rows(),
                b.num_rows()
            );
            // The three-run form: checkpointed, stopped part-way, resumed.
            let checkpoints = dir.path().join(format!("checkpoints-{seed}-{name}"));
            let stop_after = std::time::Duration::from_millis(rng.random_range(0..25));
            let (resumed, _) = common::resumed_batches(
                &ddl(dir.path(), batch_size),
                &stream_sql,
                &checkpoints,
                stop_after,
            )
            .await;
            let resumed = common::applied_rows(&resumed);
            assert_eq!(
                resumed, expected,
                "{name} stopped with a savepoint after {stop_after:?} and resumed differs (seed {seed}, batch size {batch_size})"
            );
            *nonempty.entry(name).or_default() += usize::from(!expected.is_empty());
        }
    }
    assert!(
        common::RESUMED.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no checkpointed run was stopped part-way and resumed"
    );
    // Every query must have had something to compare.
    for (name, n) in nonempty {
        assert!(n > 0, "{name} gave no rows in any case");
    }
}

/// Interval joins over inputs with late rows: each side drops the rows behind its own
/// watermark (as a window does), so the result is the batch join of the on-time rows,
/// whatever the interleaving of the two sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_joins_drop_late_rows_as_the_batch_join_of_on_time_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dropped = 0;
    for seed in 0..6u64 {
        let mut rng = SmallRng::seed_from_u64(1000 + seed);
        let (na, nb) = (rng.random_range(50..300), rng.random_range(50..300));
        let (a, a_on) = generate_with_late(&mut rng, na, true);
        let (b, b_on) = generate_with_late(&mut rng, nb, true);
        dropped += a.num_rows() - a_on.num_rows() + b.num_rows() - b_on.num_rows();
        write_json(&a, &dir.path().join("a.json"));
        write_json(&b, &dir.path().join("b.json"));
        let batch_size = [1, 7, 64, 8192][rng.random_range(0..4)];
        for (name, stream_sql, batch_sql) in queries() {
            if !name.starts_with("interval") {
                continue;
            }
            let expected = oracle(&a_on, &b_on, &batch_sql).await;
            let got = weir(dir.path(), batch_size, &stream_sql).await;
            assert_eq!(
                got, expected,
                "{name} differs (seed {seed}, batch size {batch_size})"
            );
        }
    }
    assert!(dropped > 0, "some rows were late");
}

/// Event-time temporal joins (`FOR SYSTEM_TIME AS OF a.ts`) equal their batch meaning: each
/// row of `a` with the version of `b` (keyed by `k`) of the latest time at or before its own
/// — as a LEFT JOIN (padded where there is none) and an INNER JOIN with a condition on the
/// version — over out-of-order inputs of random batch sizes, at parallelism 1 and 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_joins_meet_the_version_valid_at_each_rows_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut met = 0;
    for seed in 0..6u64 {
        let mut rng = SmallRng::seed_from_u64(2000 + seed);
        let (na, nb) = (rng.random_range(20..300), rng.random_range(5..100));
        let a = generate(&mut rng, na);
        // A versioned table: a key per row (its primary key), one version per key and time.
        let b = generate(&mut rng, nb);
        let mut seen = std::collections::HashSet::new();
        let keys = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("k");
        let times = b
            .column(2)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("ts");
        let keep: datafusion::arrow::array::BooleanArray = (0..b.num_rows())
            .map(|i| {
                Some(
                    datafusion::arrow::array::Array::is_valid(keys, i)
                        && seen.insert((keys.value(i).to_string(), times.value(i))),
                )
            })
            .collect();
        let b = datafusion::arrow::compute::filter_record_batch(&b, &keep).expect("filter");
        write_json(&a, &dir.path().join("a.json"));
        write_json(&b, &dir.path().join("b.json"));
        let batch_size = [1, 7, 64, 8192][rng.random_range(0..4)];
        let mut script = format!(
            "SET 'table.exec.batch-size' = '{batch_size}';\nSET 'parallelism.default' = '{}';\n",
            common::parallelism_for(batch_size)
        );
        for (t, key) in [("a", ""), ("b", ", PRIMARY KEY (k) NOT ENFORCED")] {
            script.push_str(&format!(
                "CREATE TABLE {t} (k STRING, v BIGINT, ts TIMESTAMP(3), \
                   WATERMARK FOR ts AS ts - INTERVAL '{BOUND}' MILLISECOND{key}) \
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
                dir.path().join(format!("{t}.json")).display()
            ));
        }
        // The version of each row of `a`: the latest time of its key at or before its own.
        let latest = "WITH a2 AS (SELECT ROW_NUMBER() OVER () AS id, k, v, ts FROM a), \
            m AS (SELECT a2.id, MAX(b.ts) AS bts FROM a2 LEFT JOIN b ON a2.k = b.k AND b.ts <= a2.ts GROUP BY a2.id), \
            j AS (SELECT a2.k, a2.v, a2.ts, b.v AS bv, b.ts AS bts FROM a2 JOIN m ON a2.id = m.id \
                  LEFT JOIN b ON b.k = a2.k AND b.ts = m.bts) ";
        let cases = [
            (
                "SELECT a.k, a.v, a.ts, b.v, b.ts FROM a LEFT JOIN b FOR SYSTEM_TIME AS OF a.ts ON a.k = b.k",
                format!("{latest} SELECT k, v, ts, bv, bts FROM j"),
            ),
            (
                "SELECT a.k, a.v, b.v, b.ts FROM a JOIN b FOR SYSTEM_TIME AS OF a.ts ON a.k = b.k AND b.v > a.v",
                format!("{latest} SELECT k, v, bv, bts FROM j WHERE bv > v"),
            ),
        ];
        for (stream_sql, batch_sql) in cases {
            let expected = oracle(&a, &b, &batch_sql).await;
            let mut run = script.clone();
            run.push_str(stream_sql);
            run.push(';');
            let mut session = Session::new();
            let mut results = session
                .run_collect(&run)
                .await
                .unwrap_or_else(|e| panic!("{stream_sql}: {e}"));
            let got = common::applied_rows(&results.pop().expect("one result"));
            assert_eq!(
                got,
                expected,
                "{stream_sql} differs (seed {seed}, batch size {batch_size}, {na} and {} rows)",
                b.num_rows()
            );
            met += expected.iter().filter(|r| !r.ends_with("NULL")).count();
        }
    }
    assert!(met > 0, "no row met a version");
}
