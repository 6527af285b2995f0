//! Sources: where rows enter a standing query.
//!
//! A [`Source`] runs on a blocking thread of its own and pushes Arrow batches of its table's
//! *physical* columns (those the connector supplies) into a [`SourceContext`]. The context
//! owns everything that is the same for every connector, in one place:
//!
//! 1. computed columns (`c AS expr`) are evaluated, giving the table's full schema;
//! 2. the watermark (`WATERMARK FOR c AS expr`) is advanced — see [`watermark`];
//! 3. the batch goes down the bounded channel, blocking when the query is behind
//!    (backpressure reaches the connector here).
//!
//! When `run` returns because the input is exhausted, the context sends a final
//! `Watermark(i64::MAX)` and `End`; when it returns because the job was stopped, only `End`.

pub mod datagen;
pub mod filesystem;
pub mod kafka;
pub mod memory;
pub mod nexmark;
pub mod parquet;
pub mod stdin;
pub mod watermark;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::Sender;

use crate::error::Result;
use crate::job::{JobMetrics, Message, OperatorMetrics};
use watermark::SourceStage;

pub trait Source: Send {
    /// Produces batches until the input ends, `ctx.emit` returns false, or an error.
    fn run(&mut self, ctx: &mut SourceContext) -> Result<()>;
}

pub struct SourceContext {
    tx: Sender<Message>,
    stop: Arc<AtomicBool>,
    stage: SourceStage,
    metrics: Arc<OperatorMetrics>,
    job: Arc<JobMetrics>,
    closed: bool,
}

impl SourceContext {
    pub fn new(
        tx: Sender<Message>,
        stop: Arc<AtomicBool>,
        stage: SourceStage,
        metrics: Arc<OperatorMetrics>,
        job: Arc<JobMetrics>,
    ) -> Self {
        SourceContext {
            tx,
            stop,
            stage,
            metrics,
            job,
            closed: false,
        }
    }

    /// True when the job was asked to stop or nobody reads the output any more.
    pub fn should_stop(&self) -> bool {
        self.closed || self.stop.load(Ordering::Relaxed)
    }

    /// Sends one batch of physical columns downstream (blocking while the channel is
    /// full). Returns false when the source should stop producing.
    pub fn emit(&mut self, batch: RecordBatch) -> Result<bool> {
        if batch.num_rows() == 0 {
            return Ok(!self.should_stop());
        }
        let rows = batch.num_rows();
        let messages = self.stage.apply(batch)?;
        self.metrics.add_in(rows);
        self.metrics.add_out(rows);
        for m in messages {
            if let Message::Watermark(w) = m {
                self.job.observe_watermark(w);
            }
            self.send(m);
        }
        Ok(!self.should_stop())
    }

    fn send(&mut self, m: Message) {
        if !self.closed && self.tx.blocking_send(m).is_err() {
            self.closed = true;
        }
    }

    /// Declares that the source reads `n` partitions, each with its own watermark; the
    /// source's watermark is their minimum (see [`SourceContext::emit_from`]).
    pub fn set_partitions(&mut self, n: usize) {
        self.stage.set_partitions(n);
    }

    /// Adds a partition after the start (a group rebalance assigned it); returns its index.
    pub fn add_partition(&mut self) -> usize {
        self.stage.add_partition()
    }

    /// Emits a batch of one partition's rows.
    pub fn emit_from(&mut self, partition: usize, batch: RecordBatch) -> Result<bool> {
        self.stage.set_partition(partition);
        self.emit(batch)
    }

    /// A partition reached its end, went idle or was taken away: it stops holding the
    /// watermark back until its next row.
    pub fn partition_ended(&mut self, partition: usize) {
        if let Some(w) = self.stage.partition_ended(partition) {
            self.job.observe_watermark(w);
            self.send(Message::Watermark(w));
        }
    }

    /// While held, batches go out without watermarks (see `FileSource`); releasing the hold
    /// starts the watermark afresh from the rows that follow.
    pub fn hold_watermark(&mut self, hold: bool) {
        self.stage.hold(hold);
    }

    /// Counts a record skipped by a decoder's `ignore-parse-errors` policy.
    pub fn bad_record(&self) {
        self.job
            .bad_records
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ends the stream: a final watermark when the input was exhausted, then `End`.
    pub fn finish(&mut self, exhausted: bool) {
        if exhausted && !self.stop.load(Ordering::Relaxed) {
            self.job.observe_watermark(i64::MAX);
            self.send(Message::Watermark(i64::MAX));
        }
        self.send(Message::End);
    }
}
