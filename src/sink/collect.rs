//! A sink that keeps the rows in memory, for callers that want them back (tests, the
//! benchmark harness, embedding Weir as a library).

use std::sync::{Arc, Mutex};

use datafusion::arrow::record_batch::RecordBatch;

use super::Sink;
use crate::error::{Result, WeirError};

#[derive(Clone, Default)]
pub struct CollectSink {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
}

impl CollectSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// The rows collected so far.
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl Sink for CollectSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.batches
            .lock()
            .map_err(|_| WeirError::internal("collect sink poisoned"))?
            .push(batch.clone());
        Ok(())
    }
    fn accepts_changes(&self) -> bool {
        true
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
