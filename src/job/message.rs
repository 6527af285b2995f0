//! What flows between the tasks of a job.

use datafusion::arrow::record_batch::RecordBatch;

/// One message on a channel between two tasks of a job.
///
/// Watermarks are event-time milliseconds since the epoch: "rows with an event time below
/// this are late". A window whose end is at or before the watermark is complete and fires. A bounded source that runs to its end sends
/// `Watermark(i64::MAX)` before `End`, which fires every open window.
///
/// `Barrier(n)` is checkpoint `n` (see [`crate::checkpoint`]): every message before it is
/// part of the checkpoint's state, every message after it is not. A task saves its state
/// when the barrier has arrived on all its inputs, then passes it on.
///
/// `Origin(t)`: the messages that follow on this channel were caused by the batch a source
/// emitted at `t` (for rows a watermark fired, the batch that carried that watermark). The
/// sink measures end-to-end latency from it. Tasks forward it before the output it
/// caused; operators never see it. A monotonic clock reading of this process: it is never
/// saved in a checkpoint.
///
/// `DeadLetters(i, batch)`: records a source could not read, for the job's dead-letter
/// table `i` (see [`crate::sink::dead_letter`]). Tasks forward them as they come, so they
/// keep their place between barriers; only the sink task writes them.
#[derive(Debug, Clone)]
pub enum Message {
    Batch(RecordBatch),
    Watermark(i64),
    Barrier(u64),
    End,
    Origin(std::time::Instant),
    DeadLetters(usize, RecordBatch),
}
