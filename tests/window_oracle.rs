//! Windows, differentially: random bounded inputs (random keys including NULL, times out of
//! order within the watermark bound, random batch sizes, random sizes, slides, offsets and
//! gaps) run through Weir's standing window aggregates and through DataFusion batch SQL
//! over the same rows — tumble by `date_bin`, hop and cumulate by expanding each row to its
//! windows, session by a gaps-and-islands query. Every case must agree exactly.
//!
//! Half the TUMBLE, HOP and CUMULATE cases put rows out of order beyond the bound: the
//! oracle then expands each row to those of its windows that end after the watermark of the
//! rows before it (the lateness rule), and DataFusion aggregates that.
//!
//! Every case also runs in the three-run form: with checkpoints, stopped part-way with a
//! savepoint, and resumed from it; the rows of both runs together must be the same.
//!
//! `WEIR_WINDOW_CASES=n` changes the number of cases per window kind; a failure prints the
//! seed, and `WEIR_WINDOW_SEED=s` reruns just that case.

mod common;
use common::rows as rows_text;
use std::io::Write as _;
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

/// (row, window) pairs the late-row oracle dropped, to prove the late cases have late rows.
static LATE_PAIRS: [std::sync::atomic::AtomicUsize; 4] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; 4];

struct Row {
    k: Option<String>,
    v: Option<i64>,
    s: Option<String>,
    ts: i64,
}

fn ts_text(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let dt = chrono_like(secs);
    format!("{dt}.{milli:03}")
}

/// `YYYY-MM-DD HH:MM:SS` for epoch seconds (days from the civil-from-days algorithm).
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn generate(rng: &mut SmallRng, n: usize, bound: i64) -> Vec<Row> {
    let keys = ["a", "b", "c", "d", "e"];
    let mut base = BASE + rng.random_range(0..1000);
    (0..n)
        .map(|_| {
            // Strictly after the watermark of the rows before (`max - bound`) when the
            // disorder is the watermark's bound: a row at the watermark is late for a window
            // ending 1 ms after it (Flink's rule), which the plain batch oracle does not
            // model. The late cases (disorder beyond the bound) do have rows at and behind
            // the watermark, and `late_oracle` models the 1 ms edge exactly.
            base += rng.random_range(1..300);
            let jitter = if bound > 0 {
                rng.random_range(0..bound)
            } else {
                0
            };
            Row {
                k: (rng.random_range(0..10) > 0)
                    .then(|| keys[rng.random_range(0..keys.len())].to_string()),
                v: (rng.random_range(0..8) > 0).then(|| rng.random_range(-50..100)),
                s: (rng.random_range(0..5) > 0).then(|| format!("s{}", rng.random_range(0..6))),
                ts: base - jitter,
            }
        })
        .collect()
}

fn write_json(rows: &[Row], path: &std::path::Path) {
    let mut f = std::fs::File::create(path).expect("create data file");
    for r in rows {
        let q = |o: &Option<String>| {
            o.as_ref()
                .map(|s| format!("\"{s}\""))
                .unwrap_or("null".into())
        };
        let v = r.v.map(|v| v.to_string()).unwrap_or("null".into());
        writeln!(
            f,
            "{{\"k\": {}, \"v\": {v}, \"s\": {}, \"ts\": \"{}\"}}",
            q(&r.k),
            q(&r.s),
            ts_text(r.ts)
        )
        .expect("write row");
    }
}

fn batch_of(rows: &[Row]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.k.clone()).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.v).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|r| r.s.clone()).collect::<StringArray>()),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.ts),
        )),
    ];
    RecordBatch::try_new(schema, cols).expect("batch")
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tumble { size: i64, offset: i64 },
    Hop { slide: i64, size: i64, offset: i64 },
    Cumulate { step: i64, size: i64, offset: i64 },
    Session { gap: i64 },
}

impl Kind {
    fn index(self) -> usize {
        match self {
            Kind::Tumble { .. } => 0,
            Kind::Hop { .. } => 1,
            Kind::Cumulate { .. } => 2,
            Kind::Session { .. } => 3,
        }
    }
}

fn ms(v: i64) -> String {
    format!("INTERVAL '{v} milliseconds'")
}

fn random_kind(rng: &mut SmallRng, which: usize) -> Kind {
    match which {
        0 => {
            let size = rng.random_range(1..40) * 50;
            Kind::Tumble {
                size,
                offset: rng.random_range(0..size),
            }
        }
        1 => {
            let slide = rng.random_range(1..20) * 50;
            let size = if rng.random_range(0..2) == 0 {
                slide * rng.random_range(1..6)
            } else {
                rng.random_range(1..60) * 50
            };
            Kind::Hop {
                slide,
                size,
                offset: rng.random_range(0..slide),
            }
        }
        2 => {
            let step = rng.random_range(1..20) * 50;
            let size = step * rng.random_range(1..6);
            Kind::Cumulate {
                step,
                size,
                offset: rng.random_range(0..size),
            }
        }
        _ => Kind::Session {
            gap: rng.random_range(1..30) * 50,
        },
    }
}

/// The measures, the same on both sides.
const MEASURES: &str = "COUNT(*) AS c, SUM(v) AS sv, MIN(s) AS mn, MAX(v) AS mx, \
    COUNT(DISTINCT s) AS ds, COUNT(*) FILTER (WHERE v > 10) AS big";

fn stream_sql(kind: Kind, keyed: bool) -> String {
    let tvf = match kind {
        Kind::Tumble { size, offset } => {
            format!(
                "TUMBLE(TABLE t, DESCRIPTOR(ts), {}, {})",
                ms(size),
                ms(offset)
            )
        }
        Kind::Hop {
            slide,
            size,
            offset,
        } => format!(
            "HOP(TABLE t, DESCRIPTOR(ts), {}, {}, {})",
            ms(slide),
            ms(size),
            ms(offset)
        ),
        Kind::Cumulate { step, size, offset } => format!(
            "CUMULATE(TABLE t, DESCRIPTOR(ts), {}, {}, {})",
            ms(step),
            ms(size),
            ms(offset)
        ),
        Kind::Session { gap } => {
            let part = if keyed { " PARTITION BY k" } else { "" };
            format!("SESSION(TABLE t{part}, DESCRIPTOR(ts), {})", ms(gap))
        }
    };
    let (sel, grp) = if keyed { ("k, ", ", k") } else { ("", "") };
    format!(
        "SELECT {sel}window_start, window_end, {MEASURES} FROM TABLE({tvf}) \
         GROUP BY window_start, window_end{grp}"
    )
}

fn batch_sql(kind: Kind, keyed: bool) -> String {
    let (sel, grp) = if keyed { ("k, ", ", k") } else { ("", "") };
    let tsm = "CAST(ts AS BIGINT)";
    if let Kind::Session { gap } = kind {
        let part = if keyed { "PARTITION BY k " } else { "" };
        return format!(
            "WITH o AS (SELECT *, CASE WHEN {tsm} - LAG({tsm}) OVER ({part}ORDER BY {tsm}) <= {gap} \
               THEN 0 ELSE 1 END AS brk FROM t), \
             g AS (SELECT *, SUM(brk) OVER ({part}ORDER BY {tsm}, brk DESC ROWS UNBOUNDED PRECEDING) AS sid FROM o) \
             SELECT {sel}to_timestamp_millis(MIN({tsm})) AS window_start, \
               to_timestamp_millis(MAX({tsm}) + {gap}) AS window_end, {MEASURES} \
             FROM g GROUP BY sid{grp}"
        );
    }
    format!(
        "SELECT {sel}to_timestamp_millis(ws) AS window_start, to_timestamp_millis(we) AS window_end, \
         {MEASURES} FROM ({}) w GROUP BY ws, we{grp}",
        batch_windows(kind)
    )
}

/// Each row of `t` once per window of its (`ws`, `we`: ms), in batch SQL (TUMBLE by
/// `date_bin`, HOP and CUMULATE by expanding each row to its windows); not SESSION.
fn batch_windows(kind: Kind) -> String {
    let tsm = "CAST(ts AS BIGINT)";
    let bin = |w: i64, off: i64| {
        format!(
            "CAST(arrow_cast(date_bin({}, ts, to_timestamp_millis({off})), 'Timestamp(Millisecond, None)') AS BIGINT)",
            ms(w)
        )
    };
    match kind {
        Kind::Tumble { size, offset } => format!(
            "SELECT *, {b} AS ws, {b} + {size} AS we FROM t",
            b = bin(size, offset)
        ),
        Kind::Hop {
            slide,
            size,
            offset,
        } => {
            let n = size / slide + 2;
            format!(
                "SELECT * FROM (SELECT t.*, {b} - i * {slide} AS ws, {b} - i * {slide} + {size} AS we \
                 FROM t CROSS JOIN (SELECT unnest(range(0, {n})) AS i) r) x \
                 WHERE ws <= {tsm} AND {tsm} < we",
                b = bin(slide, offset)
            )
        }
        Kind::Cumulate { step, size, offset } => {
            let n = size / step;
            format!(
                "SELECT * FROM (SELECT t.*, {b} AS ws, {b} + i * {step} AS we \
                 FROM t CROSS JOIN (SELECT unnest(range(1, {n} + 1)) AS i) r) x \
                 WHERE {tsm} < we",
                b = bin(size, offset)
            )
        }
        Kind::Session { .. } => unreachable!("SESSION windows are not expanded"),
    }
}

/// The windows (start, end) of `ts`, enumerated the plain way.
fn windows_of(kind: Kind, ts: i64) -> Vec<(i64, i64)> {
    let floor = |t: i64, step: i64, off: i64| (t - off).div_euclid(step) * step + off;
    match kind {
        Kind::Tumble { size, offset } => {
            let s = floor(ts, size, offset);
            vec![(s, s + size)]
        }
        Kind::Hop {
            slide,
            size,
            offset,
        } => {
            let mut out = vec![];
            let mut st = floor(ts, slide, offset);
            while st + size > ts {
                out.push((st, st + size));
                st -= slide;
            }
            out.reverse();
            out
        }
        Kind::Cumulate { step, size, offset } => {
            let base = floor(ts, size, offset);
            (1..=size / step)
                .map(|i| (base, base + i * step))
                .filter(|(_, e)| *e > ts)
                .collect()
        }
        Kind::Session { .. } => vec![],
    }
}

/// With late rows: each row counts in the windows that end after the watermark of the rows
/// before it (`max(ts) - bound`); the aggregation is DataFusion's over that expansion.
async fn late_oracle(rows: &[Row], kind: Kind, keyed: bool, bound: i64) -> Vec<String> {
    let mut wm = i64::MIN;
    let mut expanded: Vec<(usize, i64, i64)> = vec![];
    for (i, r) in rows.iter().enumerate() {
        for (s, e) in windows_of(kind, r.ts) {
            // Flink fires a window when the watermark reaches `end - 1`.
            if e - 1 > wm {
                expanded.push((i, s, e));
            } else {
                LATE_PAIRS[kind.index()].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        wm = wm.max(r.ts - bound);
    }
    let base = batch_of(rows);
    let idx = datafusion::arrow::array::UInt32Array::from_iter_values(
        expanded.iter().map(|x| x.0 as u32),
    );
    let mut cols: Vec<ArrayRef> = base
        .columns()
        .iter()
        .map(|c| datafusion::arrow::compute::take(c.as_ref(), &idx, None).expect("take"))
        .collect();
    cols.push(Arc::new(Int64Array::from_iter_values(
        expanded.iter().map(|x| x.1),
    )));
    cols.push(Arc::new(Int64Array::from_iter_values(
        expanded.iter().map(|x| x.2),
    )));
    let mut fields: Vec<Field> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("ws", DataType::Int64, false));
    fields.push(Field::new("we", DataType::Int64, false));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("expanded");
    let ctx = common::batch_context();
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("mem table");
    ctx.register_table("w", Arc::new(table)).expect("register");
    let (sel, grp) = if keyed { ("k, ", ", k") } else { ("", "") };
    let sql = format!(
        "SELECT {sel}to_timestamp_millis(ws) AS window_start, to_timestamp_millis(we) AS window_end, \
         {MEASURES} FROM w GROUP BY ws, we{grp}"
    );
    common::query(&ctx, &sql).await
}

async fn oracle(rows: &[Row], sql: &str) -> Vec<String> {
    let ctx = common::batch_context();
    let table =
        MemTable::try_new(batch_of(rows).schema(), vec![vec![batch_of(rows)]]).expect("mem table");
    ctx.register_table("t", Arc::new(table)).expect("register");
    common::query(&ctx, sql).await
}

async fn weir(path: &std::path::Path, bound: i64, batch_size: usize, sql: &str) -> Vec<String> {
    let script = format!(
        "SET 'table.exec.batch-size' = '{batch_size}';\n\
         SET 'parallelism.default' = '{}';\n\
         CREATE TABLE t (k STRING, v BIGINT, s STRING, ts TIMESTAMP(3), \
           WATERMARK FOR ts AS ts - {}) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n{sql};",
        common::parallelism_for(batch_size),
        ms(bound),
        path.display()
    );
    let mut s = Session::new();
    let mut results = s
        .run_collect(&script)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows_text(&results.pop().expect("one result"))
}

/// Cases whose checkpointed run was stopped part-way and resumed from its savepoint.
static RESUMED: [std::sync::atomic::AtomicUsize; 4] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; 4];

/// The three-run form of [`weir`] across a change of parallelism: the first run at
/// [`common::parallelism_for`] `batch_size`, the second at the next of 1, 2, 3 (see
/// [`common::rescaled`]).
async fn weir_resumed(
    path: &std::path::Path,
    bound: i64,
    batch_size: usize,
    sql: &str,
    checkpoints: &std::path::Path,
    stop_after: std::time::Duration,
) -> (Vec<String>, bool) {
    let ddl = format!(
        "SET 'table.exec.batch-size' = '{batch_size}';\n\
         CREATE TABLE t (k STRING, v BIGINT, s STRING, ts TIMESTAMP(3), \
           WATERMARK FOR ts AS ts - {}) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
        ms(bound),
        path.display()
    );
    let before = common::parallelism_for(batch_size);
    common::rescaled(&ddl, sql, checkpoints, stop_after, (before, before % 3 + 1)).await
}

async fn run_case(seed: u64, which: usize, dir: &std::path::Path) {
    let mut rng = SmallRng::seed_from_u64(seed * 4 + which as u64);
    let n = rng.random_range(1..400);
    let bound = [0, 100, 1000, 3000][rng.random_range(0..4)];
    // Half the cases (not SESSION) have rows out of order beyond the watermark's bound:
    // late for some or all of their windows.
    let late = which != 3 && rng.random_range(0..2) == 0;
    let disorder = if late { bound * 2 + 1500 } else { bound };
    let rows = generate(&mut rng, n, disorder);
    let kind = random_kind(&mut rng, which);
    let keyed = rng.random_range(0..4) > 0;
    let batch_size = [1, 3, 17, 100, 8192][rng.random_range(0..5)];
    let path = dir.join(format!("case-{seed}-{which}.json"));
    write_json(&rows, &path);
    let expected = if late {
        late_oracle(&rows, kind, keyed, bound).await
    } else {
        oracle(&rows, &batch_sql(kind, keyed)).await
    };
    let got = weir(&path, bound, batch_size, &stream_sql(kind, keyed)).await;
    assert!(!expected.is_empty(), "seed {seed}: the oracle gave no rows");
    let checkpoints = dir.join(format!("checkpoints-{seed}-{which}"));
    let (resumed_rows, resumed) = weir_resumed(
        &path,
        bound,
        batch_size,
        &stream_sql(kind, keyed),
        &checkpoints,
        std::time::Duration::from_millis(rng.random_range(0..25)),
    )
    .await;
    if resumed {
        RESUMED[which].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    assert!(
        resumed_rows == expected,
        "WEIR_WINDOW_SEED={seed}: {kind:?}, stopped with a savepoint and resumed: {} rows expected, {} got",
        expected.len(),
        resumed_rows.len()
    );
    if got != expected {
        let missing: Vec<_> = expected
            .iter()
            .filter(|r| !got.contains(r))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|r| !expected.contains(r))
            .take(5)
            .collect();
        panic!(
            "WEIR_WINDOW_SEED={seed}: {kind:?}, keyed {keyed}, {n} rows, bound {bound} ms, late rows {late}, batch size {batch_size}\n\
             {} rows expected, {} got\nmissing: {missing:#?}\nextra: {extra:#?}",
            expected.len(),
            got.len()
        );
    }
}

/// How many random cases a test runs: `WEIR_WINDOW_CASES`, or `default`.
fn case_count(default: u64) -> u64 {
    std::env::var("WEIR_WINDOW_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run_kind(which: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    if let Ok(seed) = std::env::var("WEIR_WINDOW_SEED") {
        let seed: u64 = seed.parse().expect("WEIR_WINDOW_SEED is a number");
        run_case(seed, which, dir.path()).await;
        return;
    }
    let cases = case_count(60);
    for seed in 0..cases {
        run_case(seed, which, dir.path()).await;
    }
    if which != 3 && cases >= 20 {
        assert!(
            LATE_PAIRS[which].load(std::sync::atomic::Ordering::Relaxed) > 0,
            "no case had a late row"
        );
    }
    let resumed = RESUMED[which].load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{resumed} of {cases} cases stopped part-way and resumed from a savepoint");
    if cases >= 20 {
        assert!(
            resumed as u64 >= cases / 10,
            "only {resumed} of {cases} cases were stopped before their end and resumed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumble_equals_batch() {
    run_kind(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_equals_batch() {
    run_kind(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulate_equals_batch() {
    run_kind(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_equals_batch() {
    run_kind(3).await;
}

/// The frame of an OVER case: (Weir's frame clause, DataFusion's), which differ only in
/// DataFusion's tie-break by arrival (`seq`) for ROWS frames — Weir, as Flink, takes rows
/// of equal time in arrival order.
fn over_frame(rng: &mut SmallRng) -> (String, String, bool) {
    match rng.random_range(0..5) {
        0 => {
            let n = rng.random_range(0..6);
            let f = format!("ROWS BETWEEN {n} PRECEDING AND CURRENT ROW");
            (f.clone(), f, true)
        }
        1 => {
            let f = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW".to_string();
            (f.clone(), f, true)
        }
        2 => (String::new(), String::new(), false),
        3 => {
            let f = "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW".to_string();
            (f.clone(), f, false)
        }
        _ => {
            let x = rng.random_range(0..3000);
            let f = format!("RANGE BETWEEN INTERVAL '{x}' MILLISECOND PRECEDING AND CURRENT ROW");
            (f.clone(), f, false)
        }
    }
}

/// A batch context whose table `t` holds the rows that are on time for a stream with
/// watermark `max(ts) - bound` (a row at or below the watermark of the rows before it is
/// late), in arrival order, with a column `seq` numbering them; and how many were late.
fn on_time_table(rows: &[Row], bound: i64) -> (datafusion::prelude::SessionContext, usize) {
    let mut wm = i64::MIN;
    let on_time: Vec<usize> = (0..rows.len())
        .filter(|&i| {
            let keep = rows[i].ts > wm;
            wm = wm.max(rows[i].ts - bound);
            keep
        })
        .collect();
    let late = rows.len() - on_time.len();
    let ctx = common::batch_context();
    let b = batch_of(rows);
    let take =
        datafusion::arrow::array::UInt32Array::from_iter_values(on_time.iter().map(|&i| i as u32));
    let b = RecordBatch::try_new(
        b.schema(),
        b.columns()
            .iter()
            .map(|c| datafusion::arrow::compute::take(c.as_ref(), &take, None).expect("take"))
            .collect(),
    )
    .expect("on-time rows");
    let seq: ArrayRef = Arc::new(Int64Array::from_iter_values(0..b.num_rows() as i64));
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("seq", DataType::Int64, false));
    let mut cols = b.columns().to_vec();
    cols.push(seq);
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("batch");
    let table = MemTable::try_new(b.schema(), vec![vec![b]]).expect("mem table");
    ctx.register_table("t", Arc::new(table)).expect("register");
    (ctx, late)
}

/// Rows for an OVER case (drawing from `rng` in this order: how many, the watermark's bound,
/// whether rows come late, the rows, then which times repeat): half the cases put rows out
/// of order beyond the bound — those at or below the watermark of the rows before them
/// (`max(ts) - bound`) are late and dropped — and about one row in `tie_one_in` repeats
/// the time of the row before it (peers for RANGE frames, ties broken by arrival for ROWS).
/// Returns the rows and the bound (ms).
fn rows_with_late_and_peers(rng: &mut SmallRng, tie_one_in: u32) -> (Vec<Row>, i64) {
    let n = rng.random_range(1..300);
    let bound = [0, 100, 1000][rng.random_range(0..3)];
    let late = rng.random_range(0..2) == 0;
    let mut rows = generate(rng, n, if late { bound * 2 + 1500 } else { bound });
    for i in 1..rows.len() {
        if rng.random_range(0..tie_one_in) == 0 && rows[i - 1].ts > rows[i].ts - bound.max(1) {
            rows[i].ts = rows[i - 1].ts;
        }
    }
    (rows, bound)
}

/// Runs `stream` over `rows` (written to `dir/<name>.json`) at a random batch size and
/// asserts it equals `batch` over the on-time rows; then again checkpointed, stopped after
/// a random moment and resumed, equal too. Returns how many rows were late and whether the
/// second run was stopped part-way and resumed.
async fn straight_and_resumed(
    dir: &std::path::Path,
    name: &str,
    rng: &mut SmallRng,
    rows: &[Row],
    bound: i64,
    stream: &str,
    batch: &str,
) -> (usize, bool) {
    let path = dir.join(format!("{name}.json"));
    write_json(rows, &path);
    let (ctx, late) = on_time_table(rows, bound);
    let expected = common::query(&ctx, batch).await;
    let batch_size = [1, 7, 100, 8192][rng.random_range(0..4)];
    let got = weir(&path, bound, batch_size, stream).await;
    assert!(
        got == expected,
        "{name}: {stream}\n{} rows, bound {bound}, batch size {batch_size}\n\
         expected {:#?}\ngot {:#?}",
        rows.len(),
        &expected[..expected.len().min(10)],
        &got[..got.len().min(10)]
    );
    let (again, resumed) = weir_resumed(
        &path,
        bound,
        batch_size,
        stream,
        &dir.join(format!("{name}-cp")),
        std::time::Duration::from_millis(rng.random_range(0..25)),
    )
    .await;
    assert!(again == expected, "{name}: resumed: {stream}");
    (late, resumed)
}

/// OVER aggregates over a stream equal DataFusion's OVER over the same rows in batch: random
/// rows (out of order within the watermark's bound, times repeating), random frames —
/// ROWS n / UNBOUNDED, RANGE INTERVAL / UNBOUNDED, the default — with and without
/// PARTITION BY and a FILTER; straight, and stopped part-way with a savepoint and resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_aggregates_equal_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = case_count(40);
    let mut resumed_cases = 0;
    let mut late_rows = 0;
    for seed in 0..cases {
        let mut rng = SmallRng::seed_from_u64(seed + 9_000);
        let (rows, bound) = rows_with_late_and_peers(&mut rng, 4);
        let (frame, batch_frame, by_rows) = over_frame(&mut rng);
        let keyed = rng.random_range(0..4) > 0;
        let partition = if keyed { "PARTITION BY k " } else { "" };
        let window = |order: &str, frame: &str| format!("({partition}ORDER BY {order} {frame})");
        let calls = |w: &str| {
            format!(
                "SUM(v) OVER {w} AS sv, COUNT(*) OVER {w} AS c, COUNT(v) OVER {w} AS cv, \
                 MIN(v) OVER {w} AS mn, MAX(s) OVER {w} AS mx, \
                 SUM(v) FILTER (WHERE v > 10) OVER {w} AS big"
            )
        };
        // Over ROWS frames (where arrival breaks ties, so the batch order is exact):
        // aggregates that cannot take rows back, rebuilt from a bounded frame's rows.
        let firsts = |w: &str, ignore: &str| {
            if by_rows {
                format!(
                    ", FIRST_VALUE(v){ignore} OVER {w} AS fv, LAST_VALUE(s){ignore} OVER {w} AS ls"
                )
            } else {
                String::new()
            }
        };
        let w = window("ts", &frame);
        let stream = format!("SELECT k, v, s, ts, {}{} FROM t", calls(&w), firsts(&w, ""));
        let order = if by_rows { "ts, seq" } else { "ts" };
        let w = window(order, &batch_frame);
        let batch = format!(
            "SELECT k, v, s, ts, {}{} FROM t",
            calls(&w),
            firsts(&w, " IGNORE NULLS")
        );
        let (late, resumed) = straight_and_resumed(
            dir.path(),
            &format!("over-{seed}"),
            &mut rng,
            &rows,
            bound,
            &stream,
            &batch,
        )
        .await;
        late_rows += late;
        resumed_cases += usize::from(resumed);
    }
    eprintln!(
        "{resumed_cases} of {cases} OVER cases stopped part-way and resumed; {late_rows} late rows"
    );
    if cases >= 20 {
        assert!(late_rows > 0, "no case had a late row");
    }
    if cases >= 20 {
        assert!(resumed_cases as u64 >= cases / 10, "too few cases resumed");
    }
}

/// `LAG` over a stream equals DataFusion's batch `LAG` under Flink's peer rule: random rows
/// (NULL values, times repeating, half the cases with late rows), random offsets and
/// defaults, with and without PARTITION BY; rows of one time share the lag of the last of
/// them to arrive (in batch: the row lags in arrival order, then each (key, time) group
/// takes its last row's value). Straight, and stopped part-way and resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_equals_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = case_count(30);
    let (mut resumed_cases, mut late_rows) = (0, 0);
    for seed in 0..cases {
        let mut rng = SmallRng::seed_from_u64(seed + 11_000);
        let (rows, bound) = rows_with_late_and_peers(&mut rng, 3);
        let keyed = rng.random_range(0..4) > 0;
        let (partition, group) = if keyed {
            ("PARTITION BY k ", "k, ")
        } else {
            ("", "")
        };
        let offset = rng.random_range(0..4);
        let default = rng.random_range(-5..5);
        let calls = |order: &str| {
            format!(
                "LAG(v) OVER ({partition}ORDER BY {order}) AS l1, \
                 LAG(v, {offset}) OVER ({partition}ORDER BY {order}) AS ln, \
                 LAG(v, {offset}, CAST({default} AS BIGINT)) OVER ({partition}ORDER BY {order}) AS ld, \
                 LAG(s, 2) OVER ({partition}ORDER BY {order}) AS ls"
            )
        };
        let stream = format!("SELECT k, v, s, ts, {} FROM t", calls("ts"));
        let last = |c: &str| {
            format!(
                "FIRST_VALUE({c}) OVER (PARTITION BY {group}ts ORDER BY seq DESC \
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS {c}"
            )
        };
        let batch = format!(
            "SELECT k, v, s, ts, {}, {}, {}, {} FROM (SELECT k, v, s, ts, seq, {} FROM t) l",
            last("l1"),
            last("ln"),
            last("ld"),
            last("ls"),
            calls("ts, seq")
        );
        let (late, resumed) = straight_and_resumed(
            dir.path(),
            &format!("lag-{seed}"),
            &mut rng,
            &rows,
            bound,
            &stream,
            &batch,
        )
        .await;
        late_rows += late;
        resumed_cases += usize::from(resumed);
    }
    eprintln!(
        "{resumed_cases} of {cases} LAG cases stopped part-way and resumed; {late_rows} late rows"
    );
    if cases >= 20 {
        assert!(late_rows > 0, "no case had a late row");
        assert!(resumed_cases as u64 >= cases / 10, "too few cases resumed");
    }
}

/// GROUPING SETS, ROLLUP and CUBE over TUMBLE, HOP and CUMULATE windows equal DataFusion's
/// batch GROUP BY of the same sets over the rows expanded to their windows: random rows
/// (NULL keys among them, so a set's NULL and a NULL key must stay apart), random windows
/// and batch sizes; straight and stopped/resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_sets_equal_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = case_count(30);
    for seed in 0..cases {
        let mut rng = SmallRng::seed_from_u64(seed + 7_000);
        let n = rng.random_range(1..300);
        let bound = [0, 100, 1000][rng.random_range(0..3)];
        let rows = generate(&mut rng, n, bound);
        let which = rng.random_range(0..3);
        let kind = random_kind(&mut rng, which);
        let sets = [
            "CUBE (k, s)",
            "ROLLUP (k, s)",
            "GROUPING SETS ((k), (s), ())",
            "GROUPING SETS ((k, s), (k), (k))",
        ][rng.random_range(0..4)];
        let measures = "COUNT(*) AS c, SUM(v) AS sv, MAX(v) AS mx, GROUPING(k, s) AS g";
        let stream = stream_sql(kind, false).replace(
            &format!("SELECT window_start, window_end, {MEASURES} FROM"),
            &format!("SELECT k, s, window_start, window_end, {measures} FROM"),
        );
        let stream = format!("{stream}, {sets}");
        let batch = format!(
            "SELECT k, s, to_timestamp_millis(ws) AS window_start, to_timestamp_millis(we) AS window_end, \
             {measures} FROM ({}) w GROUP BY ws, we, {sets}",
            batch_windows(kind)
        );
        let path = dir.path().join(format!("gs-{seed}.json"));
        write_json(&rows, &path);
        let expected = oracle(&rows, &batch).await;
        let batch_size = [1, 7, 100, 8192][rng.random_range(0..4)];
        let got = weir(&path, bound, batch_size, &stream).await;
        assert!(
            got == expected,
            "seed {seed}: {stream}\nexpected {:#?}\ngot {:#?}",
            &expected[..expected.len().min(10)],
            &got[..got.len().min(10)]
        );
        let (again, _) = weir_resumed(
            &path,
            bound,
            batch_size,
            &stream,
            &dir.path().join(format!("gs-cp-{seed}")),
            std::time::Duration::from_millis(rng.random_range(0..25)),
        )
        .await;
        assert!(again == expected, "seed {seed}: resumed: {stream}");
    }
}

/// Window Top-N over a window TVF (RANK and DENSE_RANK, limits 1 to 3, a partition key)
/// equals DataFusion's batch ranking of the same rows in `date_bin` windows: thousands of
/// rows per window, so the buffer's cut to the rows that can still rank (see
/// `WindowBufferOperator::with_limit`) happens many times; straight and resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_top_n_equals_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: u64 = std::env::var("WEIR_WINDOW_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        / 5;
    for seed in 0..cases.max(2) {
        let mut rng = SmallRng::seed_from_u64(seed + 9_000);
        let n = rng.random_range(1500..4000);
        let rows = generate(&mut rng, n, 0);
        let f = ["RANK", "DENSE_RANK"][rng.random_range(0..2)];
        let limit = rng.random_range(1..4);
        let size = ["1' MINUTE", "10' MINUTE"][rng.random_range(0..2)];
        let stream = format!(
            "SELECT * FROM (SELECT k, v, window_start, window_end, \
               {f}() OVER (PARTITION BY window_start, window_end, k ORDER BY v DESC) AS rn \
             FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '{size}))) WHERE rn <= {limit}"
        );
        let bin = format!(
            "date_bin(INTERVAL '{}', ts, TIMESTAMP '1970-01-01 00:00:00')",
            size.replace("' MINUTE", " minutes")
        );
        let batch = format!(
            "SELECT * FROM (SELECT k, v, {bin} AS window_start, \
               {bin} + INTERVAL '{}' AS window_end, \
               {f}() OVER (PARTITION BY {bin}, k ORDER BY v DESC) AS rn FROM t) WHERE rn <= {limit}",
            size.replace("' MINUTE", " minutes")
        );
        assert!(
            !oracle(&rows, &batch).await.is_empty(),
            "seed {seed}: nothing ranks"
        );
        straight_and_resumed(
            dir.path(),
            &format!("topn-{seed}"),
            &mut rng,
            &rows,
            0,
            &stream,
            &batch,
        )
        .await;
    }
}

/// SESSION without an aggregate: every row with its session's bounds, against the batch
/// oracle's sessions (a gap-break running sum, joined back to each row), over random
/// on-time rows, keyed or not, at several batch sizes and parallelisms, straight and
/// stopped part-way and resumed from a savepoint at another parallelism.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_rows_equal_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = case_count(30);
    let mut resumed_cases = 0;
    for seed in 0..cases {
        let mut rng = SmallRng::seed_from_u64(9000 + seed);
        let n = rng.random_range(1..300);
        let bound = [0, 100, 1000][rng.random_range(0..3)];
        let rows = generate(&mut rng, n, bound);
        let gap = rng.random_range(1..1500);
        let keyed = rng.random_range(0..3) > 0;
        let part = if keyed { " PARTITION BY k" } else { "" };
        let stream = format!(
            "SELECT k, v, s, ts, window_start, window_end, window_time \
             FROM TABLE(SESSION(TABLE t{part}, DESCRIPTOR(ts), {}))",
            ms(gap)
        );
        let tsm = "CAST(ts AS BIGINT)";
        let (p, on) = if keyed {
            ("PARTITION BY k ", " AND g.k IS NOT DISTINCT FROM b.k")
        } else {
            ("", "")
        };
        let kcol = if keyed { "k, " } else { "" };
        let batch = format!(
            "WITH o AS (SELECT *, CASE WHEN {tsm} - LAG({tsm}) OVER ({p}ORDER BY {tsm}) <= {gap} \
               THEN 0 ELSE 1 END AS brk FROM t), \
             g AS (SELECT *, SUM(brk) OVER ({p}ORDER BY {tsm}, brk DESC ROWS UNBOUNDED PRECEDING) AS sid FROM o), \
             b AS (SELECT {kcol}sid, MIN({tsm}) AS ws, MAX({tsm}) + {gap} AS we FROM g GROUP BY {kcol}sid) \
             SELECT g.k, g.v, g.s, g.ts, to_timestamp_millis(b.ws), to_timestamp_millis(b.we), \
               to_timestamp_millis(b.we - 1) \
             FROM g JOIN b ON g.sid = b.sid{on}"
        );
        assert_eq!(
            oracle(&rows, &batch).await.len(),
            rows.len(),
            "seed {seed}: every row once"
        );
        let (late, resumed) = straight_and_resumed(
            dir.path(),
            &format!("rows-{seed}"),
            &mut rng,
            &rows,
            bound,
            &stream,
            &batch,
        )
        .await;
        assert_eq!(late, 0, "seed {seed}: the rows are on time");
        resumed_cases += resumed as u64;
    }
    eprintln!("{resumed_cases} of {cases} cases stopped part-way and resumed");
    assert!(
        cases < 20 || resumed_cases >= cases / 10,
        "only {resumed_cases} of {cases} cases were stopped before their end and resumed"
    );
}
