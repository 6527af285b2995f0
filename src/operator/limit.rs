//! LIMIT over a stream: passes the first `fetch` rows (after `skip`), then asks to end.

use datafusion::arrow::record_batch::RecordBatch;

use super::Operator;
use crate::error::Result;
use crate::job::Message;

pub struct LimitOperator {
    skip: usize,
    remaining: usize,
}

impl LimitOperator {
    pub fn new(skip: usize, fetch: Option<usize>) -> Self {
        LimitOperator {
            skip,
            remaining: fetch.unwrap_or(usize::MAX),
        }
    }
}

impl Operator for LimitOperator {
    fn name(&self) -> String {
        "limit".into()
    }

    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        super::numbers_state(&[
            ("skip", self.skip as i64),
            ("remaining", self.remaining.min(i64::MAX as usize) as i64),
        ])
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        self.skip = super::number_from(&state, "skip", "limit")?.max(0) as usize;
        self.remaining = super::number_from(&state, "remaining", "limit")?.max(0) as usize;
        Ok(())
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let mut b = batch;
        if self.skip > 0 {
            let s = self.skip.min(b.num_rows());
            self.skip -= s;
            b = b.slice(s, b.num_rows() - s);
        }
        let n = b.num_rows().min(self.remaining);
        if n > 0 {
            self.remaining -= n;
            out.push(Message::Batch(b.slice(0, n)));
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.remaining == 0
    }
}
