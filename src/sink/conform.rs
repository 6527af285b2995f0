//! Rows cast by position to a declared table's columns on their way into its sink (for
//! side outputs such as late rows, which do not pass through `INSERT INTO`'s planning).

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::sink::Sink;

pub struct ConformSink {
    inner: Box<dyn Sink>,
    schema: Option<SchemaRef>,
}

impl ConformSink {
    pub fn new(inner: Box<dyn Sink>, schema: Option<SchemaRef>) -> Self {
        ConformSink { inner, schema }
    }
}

impl Sink for ConformSink {
    fn open(&mut self, ctx: &super::SinkContext) -> Result<()> {
        self.inner.open(ctx)
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<Vec<RecordBatch>>> {
        self.inner.pre_commit(checkpoint)
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        self.inner.commit(checkpoint)
    }

    fn discard(&mut self) -> Result<()> {
        self.inner.discard()
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some(schema) = &self.schema else {
            return self.inner.write(batch);
        };
        let cols = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| Ok(cast(c.as_ref(), f.data_type())?))
            .collect::<Result<Vec<_>>>()?;
        let b = RecordBatch::try_new(schema.clone(), cols)?;
        self.inner.write(&b)
    }

    fn on_watermark(&mut self, watermark: i64) -> Result<()> {
        self.inner.on_watermark(watermark)
    }

    fn finish(&mut self) -> Result<()> {
        self.inner.finish()
    }

    fn accepts_changes(&self) -> bool {
        self.inner.accepts_changes()
    }

    fn tick(&self) -> Option<std::time::Duration> {
        self.inner.tick()
    }

    fn on_tick(&mut self) -> Result<()> {
        self.inner.on_tick()
    }
}
