//! The `print` sink: rows to stdout (or stderr) in Flink's form, `+I[v1, v2]`, prefixed by
//! `'print-identifier'> ` when set.

use std::io::Write;

use datafusion::arrow::record_batch::RecordBatch;

use super::Sink;
use crate::error::Result;
use crate::format::encode::write_print_rows;

pub const OPTIONS: &[&str] = &["print-identifier", "standard-error"];

pub struct PrintSink {
    prefix: String,
    stderr: bool,
}

impl PrintSink {
    pub fn new(identifier: Option<&str>, stderr: bool) -> Self {
        PrintSink {
            prefix: identifier.map(|i| format!("{i}> ")).unwrap_or_default(),
            stderr,
        }
    }
}

impl Sink for PrintSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.stderr {
            let mut w = std::io::stderr().lock();
            write_print_rows(&mut w, batch, &self.prefix)?;
            w.flush()?;
        } else {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            write_print_rows(&mut w, batch, &self.prefix)?;
            w.flush()?;
        }
        Ok(())
    }
    fn accepts_changes(&self) -> bool {
        true
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
