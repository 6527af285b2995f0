//! Rows held in memory, replayed as a bounded stream: tables registered from Rust with
//! `Session::register_batches` (benchmarks, tests, embedding applications).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Result, WeirError};
use crate::source::{Source, SourceContext};

pub struct MemorySource {
    batches: Arc<Vec<RecordBatch>>,
    /// The next batch to emit.
    next: usize,
}

impl MemorySource {
    pub fn new(batches: Arc<Vec<RecordBatch>>) -> Self {
        MemorySource { batches, next: 0 }
    }
}

impl Source for MemorySource {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// One row: the index of the next batch (UInt64).
    fn snapshot(&self) -> Result<Vec<RecordBatch>> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "next_batch",
            DataType::UInt64,
            false,
        )]));
        Ok(vec![RecordBatch::try_new(
            schema,
            vec![Arc::new(UInt64Array::from(vec![self.next as u64]))],
        )?])
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        let bad = || WeirError::user("a memory source's state in the checkpoint is malformed");
        let b = state.first().ok_or_else(bad)?;
        let n = b
            .column(0)
            .as_primitive_opt::<UInt64Type>()
            .filter(|a| a.len() == 1)
            .ok_or_else(bad)?
            .value(0);
        self.next = (n as usize).min(self.batches.len());
        Ok(())
    }

    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        while let Some(b) = self.batches.get(self.next).cloned() {
            self.next += 1;
            if !ctx.emit(b)? {
                ctx.finish(self, false)?;
                return Ok(());
            }
            ctx.checkpoint(self)?;
        }
        ctx.finish(self, true)?;
        Ok(())
    }
}
