//! A sink that keeps the rows in memory, for callers that want them back (tests, the
//! benchmark harness, embedding Weir as a library).
//!
//! With checkpoints it commits in two phases like the file sinks: rows written since the
//! last checkpoint are pending, become visible in [`CollectSink::batches`] when the next
//! checkpoint completes (or the input ends), and are dropped when the job is stopped after
//! its savepoint — so a job restored from a checkpoint into the same `CollectSink` gives
//! every row once.

use std::sync::{Arc, Mutex};

use datafusion::arrow::record_batch::RecordBatch;

use super::{Sink, SinkContext};
use crate::error::{Result, WeirError};

#[derive(Clone, Default)]
pub struct CollectSink {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
    pending: Vec<RecordBatch>,
    checkpointing: bool,
}

impl CollectSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// The rows committed so far.
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }

    fn publish(&mut self) -> Result<()> {
        self.batches
            .lock()
            .map_err(|_| WeirError::internal("collect sink poisoned"))?
            .append(&mut self.pending);
        Ok(())
    }
}

impl Sink for CollectSink {
    fn open(&mut self, ctx: &SinkContext) -> Result<()> {
        self.checkpointing = ctx.checkpointer.is_some();
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.pending.push(batch.clone());
        if !self.checkpointing {
            self.publish()?;
        }
        Ok(())
    }

    fn commit(&mut self, _checkpoint: u64) -> Result<()> {
        self.publish()
    }

    fn discard(&mut self) -> Result<()> {
        self.pending.clear();
        Ok(())
    }

    fn accepts_changes(&self) -> bool {
        true
    }

    fn finish(&mut self) -> Result<()> {
        self.publish()
    }
}
