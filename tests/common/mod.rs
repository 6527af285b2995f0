//! Helpers shared by the integration tests (each test file is its own crate and includes
//! this module with `mod common;`, using what it needs).

#![allow(dead_code)]

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use weir::format::encode::row_texts;
use weir::source::nexmark::{NexmarkConfig, NexmarkGenerator, schema};

/// Every row as one `|`-separated line, sorted: results compared as multisets (a
/// changelog's rows with their kinds).
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = row_texts(batches, "|").expect("format");
    out.sort();
    out
}

/// The rows a result stands for, as [`rows`] gives them: a changelog is applied first
/// (a retraction of a row that is not there fails the test).
pub fn applied_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out: Vec<String> = weir::changelog::apply(batches)
        .expect("a valid changelog")
        .into_iter()
        .map(|r| r.join("|"))
        .collect();
    out.sort();
    out
}

/// A DataFusion context for batch SQL in Weir's dialect: case-sensitive identifiers and
/// plain (not view) strings.
pub fn batch_context() -> SessionContext {
    let mut config = SessionConfig::new();
    config.options_mut().sql_parser.enable_ident_normalization = false;
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    config.options_mut().sql_parser.default_null_ordering = "nulls_min".to_string();
    // Flink's literals, as Weir's: `0.908` is a DECIMAL, not a DOUBLE.
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    SessionContext::new_with_config(config)
}

/// Runs `sql` in `ctx` to its end: its rows as [`rows`] gives them (none for DDL).
pub async fn query(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("batch SQL plans {sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("batch SQL runs {sql}: {e}"));
    rows(&batches)
}

/// A [`batch_context`] holding `events`: the Nexmark generator's events for `events` events at `rate`
/// events per second of event time, from `seed`, starting at `base` (epoch ms).
pub fn nexmark_batch_context(events: u64, rate: f64, seed: u64, base: i64) -> SessionContext {
    let mut generator = NexmarkGenerator::new(NexmarkConfig {
        events: Some(events),
        first_event_rate: rate,
        person_proportion: 1,
        auction_proportion: 3,
        bid_proportion: 46,
        seed,
        base_time: base,
    });
    let mut batches = vec![];
    while let Some(b) = generator.next_batch(1000).expect("generate") {
        batches.push(b);
    }
    let ctx = batch_context();
    let table = MemTable::try_new(schema(), vec![batches]).expect("mem table");
    ctx.register_table("events", Arc::new(table))
        .expect("register");
    ctx
}

/// Cases whose checkpointed run was stopped part-way and resumed from its savepoint.
pub static RESUMED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The three-run form of a streaming query: after `ddl`, `sql` runs with checkpoints every
/// 10 ms, is stopped with a savepoint `stop_after` into its run, then starts again in a new
/// session, which restores the savepoint and finishes; both runs write into one collecting
/// sink (which commits in two phases). Returns the sorted rows ([`rows`]) and whether the
/// second run resumed (false when the first had already reached the end of its input).
pub async fn resumed(
    ddl: &str,
    sql: &str,
    checkpoints: &std::path::Path,
    stop_after: std::time::Duration,
) -> (Vec<String>, bool) {
    resumed_with(ddl, sql, checkpoints, stop_after, || {}).await
}

/// [`resumed`], giving the batches both runs wrote.
pub async fn resumed_batches(
    ddl: &str,
    sql: &str,
    checkpoints: &std::path::Path,
    stop_after: std::time::Duration,
) -> (Vec<RecordBatch>, bool) {
    resumed_batches_with(ddl, sql, checkpoints, stop_after, || {}, None).await
}

/// [`resumed`] across a change of parallelism: the first run has its keyed operators at
/// `parallelism.0` subtasks, the second restores its savepoint at `parallelism.1`, each
/// subtask taking the key groups it now owns.
#[allow(dead_code)]
pub async fn rescaled(
    ddl: &str,
    sql: &str,
    checkpoints: &std::path::Path,
    stop_after: std::time::Duration,
    parallelism: (usize, usize),
) -> (Vec<String>, bool) {
    let (batches, resumed) =
        resumed_batches_with(ddl, sql, checkpoints, stop_after, || {}, Some(parallelism)).await;
    (rows(&batches), resumed)
}

/// [`resumed`], with `between` run after the first run has stopped and before the second
/// starts (to change the input meanwhile).
pub async fn resumed_with(
    ddl: &str,
    sql: &str,
    checkpoints: &std::path::Path,
    stop_after: std::time::Duration,
    between: impl FnOnce(),
) -> (Vec<String>, bool) {
    let (batches, resumed) =
        resumed_batches_with(ddl, sql, checkpoints, stop_after, between, None).await;
    (rows(&batches), resumed)
}

async fn resumed_batches_with(
    ddl: &str,
    sql: &str,
    checkpoints: &std::path::Path,
    stop_after: std::time::Duration,
    between: impl FnOnce(),
    parallelism: Option<(usize, usize)>,
) -> (Vec<RecordBatch>, bool) {
    let at = |p: Option<usize>| {
        p.map(|p| format!("SET 'parallelism.default' = '{p}';\n"))
            .unwrap_or_default()
    };
    let ddl = format!(
        "SET 'pipeline.name' = 'resumed';\n\
         SET 'execution.checkpointing.interval' = '10ms';\n\
         SET 'state.checkpoints.dir' = '{}';\n{ddl}",
        checkpoints.display()
    );
    let query = weir::sql::parser::parse_script(sql)
        .expect("parses")
        .pop()
        .expect("one statement");
    let sink = weir::sink::collect::CollectSink::new();
    let mut first = weir::Session::new();
    first
        .run_collect(&format!("{ddl}{}", at(parallelism.map(|p| p.0))))
        .await
        .expect("ddl");
    let job = first
        .start_into(&query, Box::new(sink.clone()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    tokio::time::sleep(stop_after).await;
    job.stop();
    job.wait().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    between();
    let mut second = weir::Session::new();
    second
        .run_collect(&format!("{ddl}{}", at(parallelism.map(|p| p.1))))
        .await
        .expect("ddl");
    let resumed = match second.start_into(&query, Box::new(sink.clone())).await {
        Ok(job) => {
            job.wait().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            RESUMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            true
        }
        Err(e) if e.to_string().contains("already ran to the end") => false,
        Err(e) => panic!("{sql}: {e}"),
    };
    (sink.batches(), resumed)
}

/// Waits (up to 30 s) until process `pid` catches SIGTERM (its `SigCgt` mask in /proc, bit
/// 15): a SIGTERM sent earlier is the default handler's, which kills the process.
pub fn wait_until_it_catches_sigterm(pid: u32) {
    let status = format!("/proc/{pid}/status");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let caught = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("SigCgt:"))
                    .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            })
            .is_some_and(|mask| mask & (1 << 14) != 0);
        if caught {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The parallelism (`parallelism.default`) a differential test runs a query at, chosen by
/// its source batch size so that the sizes a test tries cover parallelism 1, 2 and 3: 1 for
/// one row per batch, 2 for other odd sizes, 3 for even ones.
#[allow(dead_code)]
pub fn parallelism_for(batch_size: usize) -> usize {
    match batch_size {
        1 => 1,
        n if n % 2 == 1 => 2,
        _ => 3,
    }
}
