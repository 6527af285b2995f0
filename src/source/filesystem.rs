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
#[derive(Clone)]
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
    let meta = std::fs::metadata(path).map_err(|e| {
        let err = WeirError::user(format!("cannot read '{}': {e}", path.display()));
        // A relative path is read from the working directory, as in Flink.
        match std::env::current_dir() {
            Ok(here) if path.is_relative() => err.with_hint(format!(
                "a relative path is read from the working directory, here {}; run from the folder it is relative to, or give an absolute path",
                here.display()
            )),
            _ => err,
        }
    })?;
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

/// A file source's position as checkpoint state: one row of `file` (the file being read,
/// "" when every file was) and the named counters (bytes, lines, rows) read of it.
pub(crate) fn position_state(file: &str, numbers: &[(&str, u64)]) -> Result<Vec<RecordBatch>> {
    use datafusion::arrow::array::{ArrayRef, StringArray, UInt64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut fields = vec![Field::new("file", DataType::Utf8, false)];
    let mut columns: Vec<ArrayRef> = vec![std::sync::Arc::new(StringArray::from(vec![file]))];
    for (name, v) in numbers {
        fields.push(Field::new(*name, DataType::UInt64, false));
        columns.push(std::sync::Arc::new(UInt64Array::from(vec![*v])));
    }
    Ok(vec![RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
    )?])
}

/// Reads a [`position_state`] of the source at `path`: the file and the `numbers` named.
/// Errors: the state does not have that shape.
pub(crate) fn position_from(
    state: &[RecordBatch],
    path: &Path,
    numbers: &[&str],
) -> Result<(String, Vec<u64>)> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::UInt64Type;
    let bad = || {
        WeirError::user(format!(
            "the checkpoint's position in '{}' is malformed",
            path.display()
        ))
    };
    let b = state.first().ok_or_else(bad)?;
    let values = numbers
        .iter()
        .map(|name| {
            b.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .filter(|c| c.len() == 1)
                .map(|c| c.value(0))
                .ok_or_else(bad)
        })
        .collect::<Result<Vec<_>>>()?;
    let file = b
        .column_by_name("file")
        .and_then(|c| c.as_string_opt::<i32>())
        .filter(|c| c.len() == 1)
        .ok_or_else(bad)?
        .value(0)
        .to_string();
    Ok((file, values))
}

/// The index in `files` of the file a checkpoint was reading, found by name (files added
/// since do not shift it); `files.len()` for "" (every file was read). Errors: the file is
/// gone from the source at `path`.
pub(crate) fn resume_index(files: &[PathBuf], name: &str, path: &Path) -> Result<usize> {
    if name.is_empty() {
        return Ok(files.len());
    }
    files
        .iter()
        .position(|f| f.display().to_string() == name)
        .ok_or_else(|| {
            WeirError::user(format!(
                "the checkpoint was reading '{name}', which is no longer in '{}'",
                path.display()
            ))
            .with_hint("restore the file, or start over with --from-scratch")
        })
}

pub struct FileSource {
    path: PathBuf,
    decoder: Decoder,
    batch_size: usize,
    /// The position after the last batch emitted: the file's index among the folder's
    /// files (sorted by name), and the bytes and lines of it read.
    position: FilePosition,
    /// The file at `position.file` ("" past the last one), saved with the position.
    current: String,
    /// A restored position, by file name: found in the listing when the source starts.
    resume: Option<(String, u64, usize)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct FilePosition {
    file: usize,
    bytes: u64,
    lines: usize,
}

impl FileSource {
    pub fn new(path: PathBuf, decoder: Decoder, batch_size: usize) -> Self {
        FileSource {
            path,
            decoder,
            batch_size,
            position: FilePosition::default(),
            current: String::new(),
            resume: None,
        }
    }

    /// Reads one file from `self.position` on, line by line, decoding `batch_size` lines
    /// at a time into `ctx`, with a checkpoint chance after each batch. Returns false when
    /// the job asked to stop.
    fn pump(
        &mut self,
        reader: &mut dyn BufRead,
        origin: &str,
        ctx: &mut SourceContext,
    ) -> Result<bool> {
        let mut lines = Vec::with_capacity(self.batch_size);
        let mut line_no = self.position.lines;
        let mut bytes = self.position.bytes;
        let mut first_line = line_no + 1;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| WeirError::user(format!("cannot read {origin}: {e}")))?;
            bytes += n as u64;
            if n > 0 {
                line_no += 1;
                if line_no == 1 && self.decoder.header {
                    first_line = 2;
                    continue;
                }
                let line = super::line_body(&buf, line_no);
                let text = ctx.text_line(&self.decoder, line, &|| format!("{origin}:{line_no}"))?;
                lines.push(text);
            }
            if lines.len() >= self.batch_size || (n == 0 && !lines.is_empty()) {
                let d = self.decoder.decode(&lines, origin, first_line)?;
                ctx.bad_lines(&d, &lines, &|i| format!("{origin}:{}", first_line + i))?;
                first_line = line_no + 1;
                lines.clear();
                self.position.bytes = bytes;
                self.position.lines = line_no;
                if let Some(b) = d.batch
                    && !ctx.emit(b)?
                {
                    return Ok(false);
                }
                ctx.checkpoint(self)?;
            }
            if n == 0 {
                self.position.bytes = bytes;
                self.position.lines = line_no;
                return Ok(true);
            }
        }
    }
}

impl Source for FileSource {
    fn kind(&self) -> &'static str {
        "filesystem"
    }

    fn origin(&self) -> String {
        format!("filesystem '{}'", self.path.display())
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// One row: `file` (the file being read, "" when every file was), `bytes` and `lines`
    /// read of it.
    fn snapshot(&self) -> Result<Vec<RecordBatch>> {
        let p = self.position;
        position_state(
            &self.current,
            &[("bytes", p.bytes), ("lines", p.lines as u64)],
        )
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        let (file, n) = position_from(&state, &self.path, &["bytes", "lines"])?;
        self.resume = Some((file, n[0], n[1] as usize));
        Ok(())
    }

    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let files = list_files(&self.path)?;
        let n = files.len();
        if let Some((name, bytes, lines)) = self.resume.take() {
            // Resume in the file the checkpoint was reading, found by name: files added
            // since do not shift the position.
            let file = resume_index(&files, &name, &self.path)?;
            self.position = FilePosition { file, bytes, lines };
        }
        self.current = files
            .get(self.position.file)
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        while let Some(file) = files.get(self.position.file) {
            let i = self.position.file;
            self.current = file.display().to_string();
            // The watermark of a directory is the minimum over its files: a file not yet
            // read holds it back, and a file read to its end no longer does. Read one after
            // another, that means no watermark until the last file, whose own rows then
            // drive it (rows of one file are never late because of another's).
            ctx.hold_watermark(i + 1 < n);
            let mut f = std::fs::File::open(file)
                .map_err(|e| WeirError::user(format!("cannot open '{}': {e}", file.display())))?;
            if self.position.bytes > 0 {
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(self.position.bytes))
                    .map_err(|e| {
                        WeirError::user(format!("cannot read '{}': {e}", file.display()))
                    })?;
            }
            let mut r = std::io::BufReader::with_capacity(1 << 20, f);
            if !self.pump(&mut r, &file.display().to_string(), ctx)? {
                ctx.finish(self, false)?;
                return Ok(());
            }
            self.position = FilePosition {
                file: i + 1,
                bytes: 0,
                lines: 0,
            };
            self.current = files
                .get(i + 1)
                .map(|f| f.display().to_string())
                .unwrap_or_default();
        }
        ctx.finish(self, true)?;
        Ok(())
    }
}
