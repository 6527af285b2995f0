//! Where a bare `SELECT` goes: the terminal, as tables (one per emitted chunk), CSV, JSON
//! or NDJSON. Rows are shown as soon as they are emitted.

use std::io::Write;

use datafusion::arrow::record_batch::RecordBatch;

use super::Sink;
use crate::error::Result;
use crate::format::encode::{OutputFormat, write_results};

pub struct TerminalSink {
    format: OutputFormat,
    first: bool,
    rows: usize,
    quiet: bool,
}

impl TerminalSink {
    pub fn new(format: OutputFormat, quiet: bool) -> Self {
        TerminalSink {
            format,
            first: true,
            rows: 0,
            quiet,
        }
    }
}

impl Sink for TerminalSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut w = std::io::BufWriter::new(std::io::stdout().lock());
        write_results(&mut w, self.format, std::slice::from_ref(batch), self.first)?;
        w.flush()?;
        self.first = false;
        self.rows += batch.num_rows();
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if !self.quiet && self.format == OutputFormat::Table {
            eprintln!("{} row(s)", self.rows);
        }
        Ok(())
    }
}
