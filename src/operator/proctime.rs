//! Processing-time watermarks for windows over `PROCTIME()` computed in a query
//! (`FROM (SELECT *, PROCTIME() AS p_time FROM bid)`, Nexmark q12).
//!
//! Such a column holds the wall-clock time at which each batch passed the projection, so
//! the watermark of the rows below it follows that time: after each batch this operator
//! emits the highest `PROCTIME()` seen less 1 ms as the watermark (a later batch may be read
//! in the same millisecond), in place of the source's event-time watermarks, which say
//! nothing about processing time. A window then fires with the first batch at or after its
//! end (or at the end of a bounded input).

use datafusion::arrow::compute::max;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::job::Message;
use crate::operator::Operator;
use crate::source::watermark::to_epoch_millis;

pub struct ProcTimeWatermark {
    column: usize,
    watermark: i64,
}

impl ProcTimeWatermark {
    pub fn new(column: usize) -> Self {
        ProcTimeWatermark {
            column,
            watermark: i64::MIN,
        }
    }
}

impl Operator for ProcTimeWatermark {
    fn name(&self) -> String {
        "processing-time watermark".into()
    }

    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        super::numbers_state(&[("watermark", self.watermark)])
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        self.watermark = super::number_from(&state, "watermark", "processing-time watermark")?;
        Ok(())
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let times = to_epoch_millis(batch.column(self.column).as_ref())?;
        let latest = max(&times);
        out.push(Message::Batch(batch));
        // The clock only moves on: no row at or below `t - 1` is to come (a row at `t`
        // may, in the same millisecond), so that is the watermark.
        if let Some(t) = latest.map(|t| t.saturating_sub(1))
            && t > self.watermark
        {
            self.watermark = t;
            out.push(Message::Watermark(t));
        }
        Ok(())
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        // Event time says nothing about processing time; only the end of the input does.
        if watermark == i64::MAX {
            self.watermark = i64::MAX;
            out.push(Message::Watermark(watermark));
        }
        Ok(())
    }
}
