//! A slow sink slows the source: with an unbounded generator and a sink that takes 20 ms
//! per batch, the rows produced but not yet written stay within what the bounded channels
//! can hold, however long the query runs.

use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use weir::Session;
use weir::job::CHANNEL_CAPACITY;
use weir::sink::Sink;
use weir::sql::parser::parse_script;

struct SlowSink;

impl Sink for SlowSink {
    fn write(&mut self, _batch: &RecordBatch) -> weir::Result<()> {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }
    fn finish(&mut self) -> weir::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sink_bounds_rows_in_flight() {
    const BATCH: u64 = 1000;
    let mut s = Session::new();
    s.run_collect(&format!(
        "SET 'table.exec.batch-size' = '{BATCH}';\n\
         CREATE TABLE events WITH ('connector' = 'nexmark', 'base-time' = '0');"
    ))
    .await
    .expect("ddl");
    let stmt = parse_script("SELECT event_type, bid.price FROM events")
        .expect("parse")
        .remove(0);
    let job = s
        .start_into(&stmt, Box::new(SlowSink))
        .await
        .expect("start");
    let metrics = job.metrics.clone();
    let mut max_in_flight = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let produced = metrics
            .operator("source")
            .map(|m| m.rows_out())
            .unwrap_or(0);
        let consumed = metrics.operator("sink").map(|m| m.rows_in()).unwrap_or(0);
        max_in_flight = max_in_flight.max(produced.saturating_sub(consumed));
    }
    let written = metrics.operator("sink").map(|m| m.rows_in()).unwrap_or(0);
    job.stop();
    job.wait().await.expect("stops cleanly");
    // Two channels (source → operator → sink) of CHANNEL_CAPACITY messages, plus one batch
    // in each task's hands; a generator unchecked would be millions of rows ahead.
    let bound = (2 * CHANNEL_CAPACITY as u64 + 3) * BATCH;
    assert!(written > 0, "the sink wrote nothing");
    assert!(
        max_in_flight <= bound,
        "{max_in_flight} rows in flight, more than the channels hold ({bound})"
    );
}
