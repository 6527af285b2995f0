//! What flows between the tasks of a job.

use datafusion::arrow::record_batch::RecordBatch;

/// One message on a channel between two tasks of a job.
///
/// Watermarks are event-time milliseconds since the epoch: "no row with an event time at or
/// below this will follow". A bounded source that runs to its end sends
/// `Watermark(i64::MAX)` before `End`, which fires every open window. Checkpoint barriers
/// will travel as a further variant.
#[derive(Debug, Clone)]
pub enum Message {
    Batch(RecordBatch),
    Watermark(i64),
    End,
}
