//! Processing-time windows: a `PROCTIME()` column is a time attribute; windows over it close
//! as the wall clock passes their end (and at the end of a bounded input), and every row is
//! counted exactly once.

use datafusion::arrow::array::{Array, Int64Array, TimestampMillisecondArray};
use weir::Session;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumbling_over_proctime_counts_every_row_once() {
    let mut s = Session::new();
    let results = s
        .run_collect(
            "CREATE TABLE t (v BIGINT, pt AS PROCTIME()) WITH ('connector' = 'datagen', \
               'number-of-rows' = '20000', 'rows-per-second' = '40000', 'fields.v.kind' = 'sequence', \
               'fields.v.start' = '1', 'fields.v.end' = '20000');\n\
             SET 'table.exec.batch-size' = '500';\n\
             SELECT window_start, window_end, COUNT(*) AS c, SUM(v) AS s \
             FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(pt), INTERVAL '100' MILLISECOND)) \
             GROUP BY window_start, window_end;",
        )
        .await
        .expect("runs");
    let batches = results.last().expect("a result");
    let (mut rows, mut sum, mut windows) = (0i64, 0i64, vec![]);
    for b in batches {
        let c = b
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("count");
        let v = b
            .column(3)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("sum");
        let start = b
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("start");
        for i in 0..b.num_rows() {
            rows += c.value(i);
            sum += v.value(i);
            windows.push(start.value(i));
        }
    }
    assert_eq!(rows, 20_000);
    assert_eq!(sum, 20_000 * 20_001 / 2);
    // Half a second of wall clock at 40 000 rows/s: several 100 ms windows, each once.
    windows.sort();
    let n = windows.len();
    windows.dedup();
    assert_eq!(windows.len(), n, "a window fired twice");
    assert!(n >= 3, "{windows:?}");
    assert!(windows.iter().all(|w| w % 100 == 0));
}
