//! Rows held in memory, replayed as a bounded stream: tables registered from Rust with
//! `Session::register_batches` (benchmarks, tests, embedding applications).

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::source::{Source, SourceContext};

pub struct MemorySource {
    batches: Arc<Vec<RecordBatch>>,
}

impl MemorySource {
    pub fn new(batches: Arc<Vec<RecordBatch>>) -> Self {
        MemorySource { batches }
    }
}

impl Source for MemorySource {
    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        for b in self.batches.iter() {
            if !ctx.emit(b.clone())? {
                ctx.finish(false);
                return Ok(());
            }
        }
        ctx.finish(true);
        Ok(())
    }
}
