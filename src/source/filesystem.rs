//! The `filesystem` source: JSON-lines or CSV files, one file or every file of a directory
//! (sorted by name, hidden files skipped), read once — a bounded input.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::{can_cast_types, cast};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::{Source, SourceContext};
use crate::error::{Result, WeirError};
use crate::format::Decoder;

/// Selects a table's declared columns by name from a connector's native batches, casting
/// where the declared type differs.
pub struct SchemaAdapter {
    indices: Vec<usize>,
    target: SchemaRef,
    identity: bool,
}

impl SchemaAdapter {
    pub fn new(native: &SchemaRef, target: SchemaRef, connector: &str) -> Result<Self> {
        let mut indices = vec![];
        for f in target.fields() {
            let Some((i, nf)) = native.column_with_name(f.name()) else {
                let names: Vec<&str> = native.fields().iter().map(|f| f.name().as_str()).collect();
                let mut e = WeirError::user(format!(
                    "connector '{connector}' has no column '{}'",
                    f.name()
                ));
                e = match crate::error::did_you_mean(f.name(), names.iter().copied()) {
                    Some(s) => e.with_hint(format!(
                        "did you mean '{s}'? it provides: {}",
                        names.join(", ")
                    )),
                    None => e.with_hint(format!("it provides: {}", names.join(", "))),
                };
                return Err(e);
            };
            if nf.data_type() != f.data_type() && !can_cast_types(nf.data_type(), f.data_type()) {
                return Err(WeirError::user(format!(
                    "column '{}' is declared {} but connector '{connector}' produces {}",
                    f.name(),
                    f.data_type(),
                    nf.data_type()
                )));
            }
            indices.push(i);
        }
        let identity = indices.len() == native.fields().len()
            && indices.iter().enumerate().all(|(a, b)| a == *b)
            && native
                .fields()
                .iter()
                .zip(target.fields())
                .all(|(a, b)| a.data_type() == b.data_type());
        Ok(SchemaAdapter {
            indices,
            target,
            identity,
        })
    }

    pub fn adapt(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.identity {
            return Ok(RecordBatch::try_new(
                self.target.clone(),
                batch.columns().to_vec(),
            )?);
        }
        let cols = self
            .indices
            .iter()
            .zip(self.target.fields())
            .map(|(i, f)| {
                let c = batch.column(*i);
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    cast(c, f.data_type())
                }
            })
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        Ok(RecordBatch::try_new(self.target.clone(), cols)?)
    }
}

/// The files a path names: itself, or the visible files of a directory in name order.
pub fn list_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| WeirError::user(format!("cannot read '{}': {e}", path.display())))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = vec![];
    for entry in std::fs::read_dir(path)
        .map_err(|e| WeirError::user(format!("cannot list '{}': {e}", path.display())))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let hidden = name.to_string_lossy().starts_with(['.', '_']);
        if hidden {
            continue;
        }
        let ft = entry.file_type()?;
        if ft.is_file() {
            files.push(entry.path());
        } else if ft.is_dir() && name.to_string_lossy().contains('=') {
            // A Hive partition folder (`dt=2026-01-01`): its files belong to the table.
            files.extend(list_files(&entry.path())?);
        }
    }
    files.sort();
    Ok(files)
}

pub struct FileSource {
    path: PathBuf,
    decoder: Decoder,
    batch_size: usize,
}

impl FileSource {
    pub fn new(path: PathBuf, decoder: Decoder, batch_size: usize) -> Self {
        FileSource {
            path,
            decoder,
            batch_size,
        }
    }
}

/// Reads `reader` line by line, decoding `batch_size` lines at a time into `ctx`.
/// Returns false when the job asked to stop.
pub fn pump_lines(
    reader: &mut dyn BufRead,
    origin: &str,
    decoder: &Decoder,
    batch_size: usize,
    ctx: &mut SourceContext,
) -> Result<bool> {
    let mut lines = Vec::with_capacity(batch_size);
    let mut first_line = 1;
    let mut line_no = 0usize;
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = reader
            .read_line(&mut buf)
            .map_err(|e| WeirError::user(format!("cannot read {origin}: {e}")))?;
        if n > 0 {
            line_no += 1;
            if line_no == 1 && decoder.header {
                first_line = 2;
                continue;
            }
            lines.push(buf.trim_end_matches(['\n', '\r']).to_string());
        }
        if lines.len() >= batch_size || (n == 0 && !lines.is_empty()) {
            let d = decoder.decode(&lines, origin, first_line)?;
            for _ in 0..d.skipped {
                ctx.bad_record();
            }
            first_line = line_no + 1;
            lines.clear();
            if let Some(b) = d.batch
                && !ctx.emit(b)?
            {
                return Ok(false);
            }
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

impl Source for FileSource {
    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let files = list_files(&self.path)?;
        let n = files.len();
        for (i, file) in files.into_iter().enumerate() {
            // The watermark of a directory is the minimum over its files: a file not yet
            // read holds it back, and a file read to its end no longer does. Read one after
            // another, that means no watermark until the last file, whose own rows then
            // drive it (rows of one file are never late because of another's).
            ctx.hold_watermark(i + 1 < n);
            let f = std::fs::File::open(&file)
                .map_err(|e| WeirError::user(format!("cannot open '{}': {e}", file.display())))?;
            let mut r = std::io::BufReader::with_capacity(1 << 20, f);
            if !pump_lines(
                &mut r,
                &file.display().to_string(),
                &self.decoder,
                self.batch_size,
                ctx,
            )? {
                ctx.finish(false);
                return Ok(());
            }
        }
        ctx.finish(true);
        Ok(())
    }
}
