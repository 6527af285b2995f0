//! The `blackhole` sink: discards rows (for benchmarks, as in Flink).

use datafusion::arrow::record_batch::RecordBatch;

use super::Sink;
use crate::error::Result;

pub struct BlackholeSink;

impl Sink for BlackholeSink {
    fn write(&mut self, _batch: &RecordBatch) -> Result<()> {
        Ok(())
    }
    fn accepts_changes(&self) -> bool {
        true
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
