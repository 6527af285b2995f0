//! The `filesystem` sink for `json` and `csv`: rows go to a part file in the table's
//! directory, written under a hidden in-progress name and renamed into place when the
//! query ends cleanly — a reader never sees a partial file, and a failed query leaves only
//! a hidden `.inprogress` file, removed at the next start.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use datafusion::arrow::record_batch::RecordBatch;

use super::Sink;
use crate::error::{Result, WeirError};
use crate::format::Format;

enum Writer {
    Json(datafusion::arrow::json::LineDelimitedWriter<BufWriter<File>>),
    Csv(Box<datafusion::arrow::csv::Writer<BufWriter<File>>>),
}

pub struct FileSink {
    writer: Option<Writer>,
    tmp: PathBuf,
    target: PathBuf,
}

impl FileSink {
    /// Opens `dir/.part-<name>.<ext>.inprogress`, to become `dir/part-<name>.<ext>`.
    pub fn create(
        dir: &Path,
        name: &str,
        format: Format,
        csv_header: bool,
        delimiter: u8,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            WeirError::user(format!(
                "cannot create the sink directory '{}': {e}",
                dir.display()
            ))
        })?;
        clean_in_progress(dir)?;
        let ext = format.prefix();
        let target = dir.join(format!("part-{name}.{ext}"));
        let tmp = dir.join(format!(".part-{name}.{ext}.inprogress"));
        let f = File::create(&tmp)
            .map_err(|e| WeirError::user(format!("cannot write to '{}': {e}", tmp.display())))?;
        let w = BufWriter::with_capacity(1 << 20, f);
        let writer = match format {
            Format::Json => Writer::Json(datafusion::arrow::json::LineDelimitedWriter::new(w)),
            Format::Csv => Writer::Csv(Box::new(
                datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(csv_header)
                    .with_delimiter(delimiter)
                    .build(w),
            )),
            Format::Parquet => {
                return Err(WeirError::internal("parquet goes through the parquet sink"));
            }
        };
        Ok(FileSink {
            writer: Some(writer),
            tmp,
            target,
        })
    }
}

/// Removes in-progress files a crashed run left behind.
fn clean_in_progress(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with(".part-") && n.ends_with(".inprogress") {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

impl Sink for FileSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self.writer.as_mut() {
            Some(Writer::Json(w)) => w.write(batch)?,
            Some(Writer::Csv(w)) => w.write(batch)?,
            None => return Err(WeirError::internal("write after finish")),
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let inner = match self.writer.take() {
            Some(Writer::Json(mut w)) => {
                w.finish()?;
                w.into_inner()
            }
            Some(Writer::Csv(w)) => w.into_inner(),
            None => return Ok(()),
        };
        let f = inner.into_inner().map_err(|e| {
            WeirError::external(format!("cannot flush '{}': {e}", self.tmp.display()))
        })?;
        f.sync_all()?;
        std::fs::rename(&self.tmp, &self.target)?;
        Ok(())
    }
}
