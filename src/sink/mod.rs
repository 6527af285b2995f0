//! Sinks: where a standing query's rows leave it.
//!
//! A [`Sink`] is synchronous and runs on a blocking thread of its own ([`run_sink`]), so
//! slow I/O never stalls the async runtime; while it writes, its bounded input channel
//! fills and the query upstream waits (backpressure). `finish` is called only when the
//! input ended cleanly, and is where files are committed; a failed query leaves no
//! committed partial output. With checkpoints, sinks commit in two phases at every
//! checkpoint (see [`Sink`]). A sink touches the outside world only from [`Sink::open`],
//! when its job starts: planning and `EXPLAIN` create, delete and connect to nothing.

pub mod blackhole;
pub mod collect;
pub mod conform;
pub mod dead_letter;
pub mod kafka;
pub mod multi;
pub mod partitioned;
pub mod print;
pub mod terminal;

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::Receiver;

use crate::checkpoint::Checkpointer;
use crate::error::{Result, WeirError};
use crate::job::{JobMetrics, Message, OperatorMetrics};

/// What a sink learns when its job starts (see [`Sink::open`]).
pub struct SinkContext {
    /// The job's identity (`pipeline.name`, or a hash of the statement), sanitized for
    /// file names.
    pub job: String,
    /// This run's id, unique per start.
    pub run: String,
    /// The job's checkpoints, when it takes them: the sink then commits in two phases.
    pub checkpointer: Option<Arc<Checkpointer>>,
    /// The sink's state in the restored checkpoint, if any: what [`Sink::pre_commit`]
    /// returned for it, to finish committing.
    pub restored: Option<Vec<RecordBatch>>,
}

/// A sink: where rows leave a job.
///
/// With checkpoints, a sink commits in two phases, as Flink's `TwoPhaseCommitSinkFunction`:
/// at a barrier, [`Sink::pre_commit`] makes everything written so far durable but not yet
/// visible and returns what the commit will do; the checkpoint's manifest is written; then
/// [`Sink::commit`] makes it visible. A restart re-commits what the restored checkpoint's
/// state names (in [`Sink::open`]) and throws away the rest. Sinks that cannot hide rows
/// (print, terminal, Kafka without transactions) flush at the barrier: at-least-once.
pub trait Sink: Send {
    /// Called once before the first message, when the job starts: the place where a sink
    /// touches the outside world (creates folders, connects). Planning (and `EXPLAIN`)
    /// never calls it.
    fn open(&mut self, _ctx: &SinkContext) -> Result<()> {
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Writes dead letters (of [`dead_letter::letter_schema`]) to dead-letter table
    /// `table` of the job; only the sink task's [`dead_letter::WithDeadLetters`] has any.
    fn write_dead_letters(&mut self, table: usize, _batch: &RecordBatch) -> Result<()> {
        Err(WeirError::internal(format!(
            "dead letters for table {table} reached a sink without dead-letter tables"
        )))
    }

    /// Phase one of checkpoint `checkpoint`: flush, close what is open as pending, and
    /// return the state that lets a restart finish the commit (None: nothing to commit).
    fn pre_commit(&mut self, _checkpoint: u64) -> Result<Option<Vec<RecordBatch>>> {
        Ok(None)
    }

    /// Phase two: the checkpoint is complete; make what [`Sink::pre_commit`] prepared
    /// visible.
    fn commit(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// The job was stopped after its last savepoint: throw away what was written since
    /// (the next run writes it again).
    fn discard(&mut self) -> Result<()> {
        Ok(())
    }

    /// Sees the watermark; sinks that commit by event time use it.
    fn on_watermark(&mut self, _watermark: i64) -> Result<()> {
        Ok(())
    }
    /// Flushes and commits, once, after the last batch.
    fn finish(&mut self) -> Result<()>;
    /// True when the sink takes a changelog (rows that update earlier ones; see
    /// [`crate::changelog`]); the others take inserts only.
    fn accepts_changes(&self) -> bool {
        false
    }
    /// How often the sink wants [`Sink::on_tick`] while no message arrives (a time-based
    /// commit), if at all.
    fn tick(&self) -> Option<std::time::Duration> {
        None
    }
    fn on_tick(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Drains `rx` into `sink`. A broken pipe on the terminal ends the query quietly (the
/// reader went away, as with `weir run q.sql | head`). With checkpoints, a barrier
/// completes its checkpoint here (see [`Sink`]), and the end of the input takes a final one.
/// Each batch written records its rows' end-to-end latency in `job` (from the last
/// [`Message::Origin`] to the end of the write).
pub fn run_sink(
    mut sink: Box<dyn Sink>,
    mut rx: Receiver<Message>,
    metrics: Arc<OperatorMetrics>,
    job: Arc<JobMetrics>,
    ctx: SinkContext,
) -> Result<()> {
    let mut origin: Option<std::time::Instant> = None;
    sink.open(&ctx)?;
    let checkpointer = ctx.checkpointer;
    let tick = sink.tick();
    let handle = tokio::runtime::Handle::current();
    loop {
        let msg = match tick {
            Some(t) => match handle.block_on(tokio::time::timeout(t, rx.recv())) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => {
                    sink.on_tick()?;
                    continue;
                }
            },
            None => match rx.blocking_recv() {
                Some(m) => m,
                None => break,
            },
        };
        let r = match msg {
            // A statement set's watermark mark (no columns): a watermark, not a batch of
            // rows, so neither counted nor timed (see `crate::sink::multi`).
            Message::Batch(b) if b.num_columns() == 0 => sink.write(&b),
            Message::Batch(b) => {
                metrics.add_in(b.num_rows());
                let from = std::time::Instant::now();
                let r = sink.write(&b);
                let now = std::time::Instant::now();
                metrics.add_busy(now - from);
                if r.is_ok() {
                    metrics.add_out(b.num_rows());
                    if let Some(t) = origin {
                        job.record_latency(now.saturating_duration_since(t), b.num_rows());
                    }
                }
                r
            }
            Message::Origin(t) => {
                origin = Some(t);
                Ok(())
            }
            Message::DeadLetters(table, b) => sink.write_dead_letters(table, &b),
            Message::Watermark(w) => sink.on_watermark(w),
            Message::Barrier(id) => match &checkpointer {
                Some(cp) => checkpoint(sink.as_mut(), cp, id, false).map(|_| ()),
                None => Ok(()),
            },
            Message::End => {
                if let Some(cp) = &checkpointer {
                    if cp.is_stopping() {
                        // Stopped: the savepoint holds everything committed; what came
                        // after it is written again by the next run.
                        return sink.discard();
                    }
                    let id = cp.final_id();
                    if !checkpoint(sink.as_mut(), cp, id, true)? {
                        return Err(WeirError::external(format!(
                            "the final checkpoint ({id}) failed: rows after the last completed checkpoint were not committed"
                        )));
                    }
                }
                return sink.finish();
            }
        };
        if let Err(e) = r {
            if matches!(e, WeirError::OutputClosed(_)) {
                return Ok(());
            }
            return Err(e);
        }
    }
    Err(WeirError::cancelled(
        "the query stopped before its end reached the sink",
    ))
}

/// Completes checkpoint `id` at the sink: pre-commit, manifest, commit. Returns false when
/// the checkpoint failed and the job tolerates it (its pending files wait for the next).
fn checkpoint(sink: &mut dyn Sink, cp: &Checkpointer, id: u64, finished: bool) -> Result<bool> {
    let state = sink.pre_commit(id)?;
    match cp.complete(id, state, finished)? {
        Some(_) => {
            crate::checkpoint::crash_point("after-manifest", id);
            sink.commit(id)?;
            Ok(true)
        }
        None => Ok(false),
    }
}
