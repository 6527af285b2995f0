//! The `filesystem` source: JSON-lines or CSV files, one file or every file of a directory
//! and its folders (sorted by path, hidden files skipped), read once — a bounded input. Its position is
//! kept as the byte ranges read of each file (see [`FileSource`]).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::{can_cast_types, cast};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::{Source, SourceContext, UTF8_BOM};
use crate::error::{Result, WeirError};
use crate::format::Decoder;

/// The metadata the `filesystem` connector supplies (`col TYPE METADATA FROM 'file.path'`),
/// as Flink's filesystem connector documents them: the file's full path and name
/// (`STRING NOT NULL`), its size in bytes (`BIGINT NOT NULL`) and its modification time
/// (`TIMESTAMP_LTZ(3) NOT NULL`).
pub const METADATA: &[&str] = &[
    "file.path",
    "file.name",
    "file.size",
    "file.modification-time",
];

/// What a file is, for its metadata columns: its absolute path, size (bytes) and
/// modification time (epoch ms), taken when its reading starts.
#[derive(Debug, Clone)]
pub(crate) struct FileFacts {
    /// The file as listed.
    file: PathBuf,
    path: String,
    name: String,
    size: i64,
    modified_ms: i64,
}

impl FileFacts {
    /// Errors: the file cannot be stat'ed.
    pub(crate) fn of(file: &Path) -> Result<FileFacts> {
        let meta = std::fs::metadata(file)
            .map_err(|e| WeirError::user(format!("cannot read '{}': {e}", file.display())))?;
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        Ok(FileFacts {
            file: file.to_path_buf(),
            path: abs.to_string_lossy().into_owned(),
            name: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: meta.len() as i64,
            modified_ms,
        })
    }

    /// The column of metadata `key` for `rows` rows, cast to `to` (the declared type).
    /// Errors: an unknown key (checked when the table is created) or a failing cast.
    pub(crate) fn column(
        &self,
        key: &str,
        rows: usize,
        to: &datafusion::arrow::datatypes::DataType,
    ) -> Result<ArrayRef> {
        use datafusion::common::ScalarValue;
        let value = match key {
            "file.path" => ScalarValue::Utf8(Some(self.path.clone())),
            "file.name" => ScalarValue::Utf8(Some(self.name.clone())),
            "file.size" => ScalarValue::Int64(Some(self.size)),
            "file.modification-time" => {
                ScalarValue::TimestampMillisecond(Some(self.modified_ms), Some("UTC".into()))
            }
            other => {
                return Err(WeirError::internal(format!(
                    "connector 'filesystem' provides no metadata '{other}'"
                )));
            }
        };
        let options = datafusion::arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        };
        datafusion::arrow::compute::cast_with_options(&value.to_array_of_size(rows)?, to, &options)
            .map_err(|e| {
                WeirError::user(format!(
                    "metadata '{key}' of '{}' does not fit the column's type {to}: {e}",
                    self.path
                ))
            })
    }
}

/// The `k=v` pairs of the Hive partition folders between a table's `root` and `file`
/// (`dt=2026-01-01/h=1/part-0.csv` gives `dt` and `h`), values `%XX`-unescaped as the
/// filesystem sink escapes them.
pub(crate) fn partition_values(root: &Path, file: &Path) -> Vec<(String, String)> {
    let rel = file.strip_prefix(root).unwrap_or(file);
    rel.parent()
        .map(|p| {
            p.components()
                .filter_map(|c| {
                    let s = c.as_os_str().to_string_lossy().to_string();
                    s.split_once('=').map(|(k, v)| (k.to_string(), unescape(v)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A partition folder's value with its `%XX` escapes decoded (a `%` not followed by two
/// hex digits stays as it is).
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if b[i] == b'%'
            && let Some(x) = hex
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

/// Partition column `column`'s value for `rows` rows of `file`, cast to `to`: NULL for a
/// file outside any folder of it, or in Flink's `__DEFAULT_PARTITION__` (the folder of
/// NULL values). Errors: the folder's value does not cast to the column's type.
pub(crate) fn partition_column(
    column: &str,
    file: &Path,
    value: Option<&str>,
    rows: usize,
    to: &datafusion::arrow::datatypes::DataType,
) -> Result<ArrayRef> {
    use datafusion::common::ScalarValue;
    match value {
        Some(v) if v != "__DEFAULT_PARTITION__" => {
            let options = datafusion::arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            let s = ScalarValue::Utf8(Some(v.to_string())).to_array_of_size(rows)?;
            datafusion::arrow::compute::cast_with_options(&s, to, &options)
                .map_err(|e| {
                    WeirError::user(format!(
                        "the folder {column}={v} of '{}' does not fit partition column '{column}' ({}): {e}",
                        file.display(),
                        crate::sql::types::flink_type_name(to)
                    ))
                })
        }
        _ => Ok(datafusion::arrow::array::new_null_array(to, rows)),
    }
}

/// The native type of a `filesystem` metadata key (see [`METADATA`]), None for an unknown
/// one.
pub fn metadata_type(key: &str) -> Option<datafusion::arrow::datatypes::DataType> {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    Some(match key {
        "file.path" | "file.name" => DataType::Utf8,
        "file.size" => DataType::Int64,
        "file.modification-time" => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        _ => return None,
    })
}

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

/// The files a path names: itself, or the visible files of a directory and of its visible
/// folders, at any depth (as Flink's recursive enumerator), in path order. Names starting
/// with `.` or `_` are hidden (files being written, success files).
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
        } else if ft.is_dir() {
            // Nested folders too, as Flink's recursive file enumerator reads them (Hive
            // partition folders, `dt=2026-01-01`, among them).
            files.extend(list_files(&entry.path())?);
        }
    }
    files.sort();
    Ok(files)
}

/// Flink's `source.path.regex-pattern`: which of the listed files a table reads — those
/// whose absolute path the whole pattern matches (Java's `Matcher.matches`). None: all.
#[derive(Debug, Clone, Default)]
pub struct PathFilter(Option<regex::Regex>);

impl PathFilter {
    /// The filter of `pattern` (None: every file). Errors: a pattern Rust's `regex` crate
    /// does not take (look-around and back-references among them), with its reason.
    pub fn new(pattern: Option<&str>) -> std::result::Result<Self, String> {
        match pattern {
            None => Ok(PathFilter(None)),
            Some(p) => {
                // The pattern alone first, so an error quotes what was written.
                regex::Regex::new(p).map_err(|e| e.to_string())?;
                regex::Regex::new(&format!("^(?:{p})$"))
                    .map(|r| PathFilter(Some(r)))
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Whether `file` is read: its absolute path (from the working directory when it is
    /// relative) matches.
    pub fn keeps(&self, file: &Path) -> bool {
        let Some(r) = &self.0 else {
            return true;
        };
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        r.is_match(&absolute.to_string_lossy())
    }

    /// [`list_files`] of `path`, those this filter keeps.
    pub fn list(&self, path: &Path) -> Result<Vec<PathBuf>> {
        let mut files = list_files(path)?;
        files.retain(|f| self.keeps(f));
        Ok(files)
    }
}

/// A listed file's name as checkpoint state: the bytes of its path, whole. A name that is
/// not UTF-8 stays itself (its `display()` text would replace the bad bytes, so two such
/// names could share one position).
pub(crate) fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_encoded_bytes()
}

/// The path whose [`path_bytes`] are `bytes` (on a system other than Unix, a name that is
/// not UTF-8 is read with its bad bytes replaced).
pub(crate) fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// The `file` column of a position: Binary ([`path_bytes`]), or Utf8 as earlier versions
/// wrote it. None when it is neither.
pub(crate) fn file_column(b: &RecordBatch) -> Option<Vec<PathBuf>> {
    use datafusion::arrow::array::{Array, AsArray};
    let c = b.column_by_name("file")?;
    if let Some(c) = c.as_binary_opt::<i32>() {
        return Some(
            c.iter()
                .map(|v| path_from_bytes(v.unwrap_or_default()))
                .collect(),
        );
    }
    let c = c.as_string_opt::<i32>()?;
    Some((0..c.len()).map(|i| PathBuf::from(c.value(i))).collect())
}

/// A file source's position as checkpoint state: one row of `file` (Binary, the
/// [`path_bytes`] of the file being read; empty when every file was) and the named
/// counters (bytes, lines, rows) read of it.
pub(crate) fn position_state(file: &Path, numbers: &[(&str, u64)]) -> Result<Vec<RecordBatch>> {
    use datafusion::arrow::array::{ArrayRef, BinaryArray, UInt64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut fields = vec![Field::new("file", DataType::Binary, false)];
    let mut columns: Vec<ArrayRef> =
        vec![std::sync::Arc::new(BinaryArray::from(vec![path_bytes(
            file,
        )]))];
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
) -> Result<(PathBuf, Vec<u64>)> {
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
    let file = file_column(b)
        .filter(|f| f.len() == 1)
        .and_then(|f| f.into_iter().next())
        .ok_or_else(bad)?;
    Ok((file, values))
}

/// The index in `files` of the file a checkpoint was reading, found by name (files added
/// since do not shift it); `files.len()` for an empty name (every file was read). Errors:
/// the file is gone from the source at `path`.
pub(crate) fn resume_index(files: &[PathBuf], name: &Path, path: &Path) -> Result<usize> {
    if name.as_os_str().is_empty() {
        return Ok(files.len());
    }
    files.iter().position(|f| f == name).ok_or_else(|| {
        WeirError::user(format!(
            "the checkpoint was reading '{}', which is no longer in '{}'",
            name.display(),
            path.display()
        ))
        .with_hint("restore the file, or start over with --from-scratch")
    })
}

/// Byte ranges `[start, end)` of one file whose lines (those that start in them) have been
/// read: sorted, disjoint, not touching.
type Spans = Vec<(u64, u64)>;

/// Adds `[a, b)` to `spans`, merging what overlaps or touches.
fn add_span(spans: &mut Spans, a: u64, b: u64) {
    if a >= b {
        return;
    }
    spans.push((a, b));
    spans.sort_unstable();
    let mut merged: Spans = Vec::with_capacity(spans.len());
    for &(a, b) in spans.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *spans = merged;
}

/// The parts of `[lo, hi)` that `spans` does not cover, in order.
fn gaps(spans: &[(u64, u64)], lo: u64, hi: u64) -> Spans {
    let mut out = vec![];
    let mut at = lo;
    for &(a, b) in spans {
        if b <= at {
            continue;
        }
        if a >= hi {
            break;
        }
        if a > at {
            out.push((at, a));
        }
        at = at.max(b);
    }
    if at < hi {
        out.push((at, hi));
    }
    out
}

/// The `filesystem` source over JSON-lines or CSV files, as subtask `k` of `n` (Flink's
/// file splits, cut by bytes): of every file it reads the lines that *start* in the `k`-th
/// of `n` equal byte ranges (the last range runs to the end of the file, whatever it has
/// grown to), so the `n` subtasks read every line exactly once between them. A range that
/// starts inside a line skips it: the line belongs to the range its first byte is in.
/// A job reads it as one subtask (`(0, 1)`): it does not offer [`Source::split`] yet, as
/// subtasks that each list and measure the files cut a file growing meanwhile differently
/// (rows lost), and restored at the same parallelism recompute their ranges from the new
/// sizes (rows repeated).
///
/// Its position is the set of byte ranges read, by file (a file read to its end is read
/// to `u64::MAX`); a checkpoint holds those within the subtask's own ranges and names every
/// file listed when the job started, so a restore at any parallelism takes the union of the
/// old subtasks' and reads what is left of its new ranges of those files — as Flink's
/// bounded file source keeps its splits, a file added since is not read.
pub struct FileSource {
    path: PathBuf,
    decoder: Decoder,
    batch_size: usize,
    /// This source as subtask `.0` of `.1`.
    subtask: (u64, u64),
    /// What has been read, by file: restored, then grown as batches are emitted.
    done: BTreeMap<PathBuf, Spans>,
    /// This subtask's range of each file listed when it started, in name order.
    ranges: Vec<(PathBuf, u64, u64)>,
    /// A restored position of an unsplit source of an earlier version (the file being
    /// read, empty when every file was, and its bytes read): earlier files were read whole.
    legacy: Option<(PathBuf, u64)>,
    /// After a restore, the files the job listed when it started: only they are read.
    known: Option<std::collections::BTreeSet<PathBuf>>,
    /// With metadata or partition columns: the table's physical columns (decoded,
    /// metadata and partition columns, in declared order), the metadata columns' names and
    /// keys, and the partition columns' names; the decoder reads the others.
    extra: Option<ExtraColumns>,
    /// `source.monitor-interval`: how often the path is listed again once every file
    /// listed has been read (None: the source ends there).
    monitor: Option<std::time::Duration>,
    /// `source.path.regex-pattern`: the listed files read.
    filter: PathFilter,
}

/// The columns of a file table that its files' lines do not hold (see [`FileSource`]).
struct ExtraColumns {
    physical: SchemaRef,
    metadata: Vec<(String, String)>,
    partitioned_by: Vec<String>,
}

impl FileSource {
    pub fn new(path: PathBuf, decoder: Decoder, batch_size: usize) -> Self {
        FileSource {
            path,
            decoder,
            batch_size,
            subtask: (0, 1),
            done: BTreeMap::new(),
            ranges: vec![],
            legacy: None,
            known: None,
            extra: None,
            monitor: None,
            filter: PathFilter::default(),
        }
    }

    /// Watches the path for new files, as Flink's `source.monitor-interval` does: once the
    /// files listed are read, the path is listed again every `interval`, and each file not
    /// seen before is read once, as it is when found (so a file should appear whole: one
    /// written in place under a hidden name, `.` or `_` first, and renamed is). The source
    /// then never ends by itself; a checkpoint names every file seen, so a restore reads
    /// the rest of those and any file new since. None: read the files once and end.
    pub fn monitor(mut self, interval: Option<std::time::Duration>) -> Self {
        self.monitor = interval;
        self
    }

    /// Reads only the listed files `filter` keeps (`source.path.regex-pattern`).
    pub fn matching(mut self, filter: PathFilter) -> Self {
        self.filter = filter;
        self
    }

    /// The source as subtask `k` of `n` (from 0): it reads the lines that start in its
    /// `k`-th of `n` equal byte ranges of each file.
    pub fn range(mut self, k: u64, n: u64) -> Self {
        self.subtask = (k.min(n.saturating_sub(1)), n.max(1));
        self
    }

    /// Adds metadata columns (`file.path`, …; see [`METADATA`]) and Hive partition
    /// columns (from the `k=v` folders under the table's path, as Flink's filesystem
    /// source reads them): `physical` is every column the table reads, in declared order,
    /// `metadata` the metadata columns' names and keys, `partitioned_by` the partition
    /// columns; the decoder reads the other columns.
    pub fn with_columns(
        mut self,
        physical: SchemaRef,
        metadata: Vec<(String, String)>,
        partitioned_by: Vec<String>,
    ) -> Self {
        if !metadata.is_empty() || !partitioned_by.is_empty() {
            self.extra = Some(ExtraColumns {
                physical,
                metadata,
                partitioned_by,
            });
        }
        self
    }

    /// The table's row of a decoded batch from `facts`' file: the decoded columns with
    /// the metadata and partition columns in their places.
    fn with_facts(&self, batch: RecordBatch, facts: Option<&FileFacts>) -> Result<RecordBatch> {
        let (Some(extra), Some(facts)) = (&self.extra, facts) else {
            return Ok(batch);
        };
        let schema = &extra.physical;
        let parts = partition_values(&self.path, &facts.file);
        let rows = batch.num_rows();
        let mut cols = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let name = f.name();
            let col = if let Some((_, key)) = extra.metadata.iter().find(|(c, _)| c == name) {
                facts.column(key, rows, f.data_type())?
            } else if extra.partitioned_by.contains(name) {
                let value = parts
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str());
                partition_column(name, &facts.file, value, rows, f.data_type())?
            } else {
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| WeirError::internal(format!("no column '{name}'")))?
            };
            cols.push(col);
        }
        let options =
            datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            cols,
            &options,
        )?)
    }

    /// This subtask's byte range of a file of `size` bytes.
    fn range_of(&self, size: u64) -> (u64, u64) {
        let (k, n) = self.subtask;
        let cut = |i: u64| ((size as u128 * i as u128) / n as u128) as u64;
        let end = if k + 1 == n { u64::MAX } else { cut(k + 1) };
        (cut(k), end)
    }

    /// Reads the lines of `file` that start in `[from, to)`, decoding `batch_size` lines at
    /// a time into `ctx`, with a checkpoint chance after each batch. Returns false when the
    /// job asked to stop.
    fn read_piece(
        &mut self,
        file: &Path,
        from: u64,
        to: u64,
        ctx: &mut SourceContext,
    ) -> Result<bool> {
        use std::io::{Read, Seek, SeekFrom};
        let origin = file.display().to_string();
        let cannot = |e: std::io::Error| WeirError::user(format!("cannot read {origin}: {e}"));
        let mut f = std::fs::File::open(file)
            .map_err(|e| WeirError::user(format!("cannot open '{origin}': {e}")))?;
        // Where the first whole line at or after `from` starts: a range that begins inside
        // a line leaves that line to the range before.
        let mut bytes = from;
        let mut r = std::io::BufReader::with_capacity(1 << 20, &mut f);
        let mut buf = Vec::new();
        if from > 0 {
            r.seek(SeekFrom::Start(from - 1)).map_err(cannot)?;
            let n = r.read_until(b'\n', &mut buf).map_err(cannot)?;
            bytes = from - 1 + n as u64;
        }
        let start = bytes;
        // The line number of the first line, for messages: the line ends before it.
        let mut line_no = 0usize;
        if start > 0 {
            let mut head = std::fs::File::open(file)
                .map_err(|e| WeirError::user(format!("cannot open '{origin}': {e}")))?
                .take(start);
            let mut chunk = vec![0u8; 1 << 20];
            loop {
                let n = head.read(&mut chunk).map_err(cannot)?;
                if n == 0 {
                    break;
                }
                line_no += memchr::memchr_iter(b'\n', &chunk[..n]).count();
            }
        }
        let key = file.to_path_buf();
        let facts = match self.extra {
            Some(_) => Some(FileFacts::of(file)?),
            None => None,
        };
        // A batch's lines, taken as they lie in the file: read whole lines at a time out
        // of the reader's buffer, then, when they need nothing of their own (valid UTF-8,
        // no carriage return, no header or byte-order mark), kept as one text and given
        // to `Decoder::decode_csv_text` without a copy; others are taken line by line.
        let mut raw: Vec<u8> = Vec::new();
        loop {
            raw.clear();
            let (count, end) =
                take_lines(&mut r, &mut raw, self.batch_size, bytes, to).map_err(cannot)?;
            bytes = end;
            if count == 0 {
                // At the end of the file, it is read to its end, whatever it grows to.
                let end = if bytes < to { u64::MAX } else { bytes };
                add_span(self.done.entry(key).or_default(), from, end);
                return Ok(true);
            }
            let first = line_no + 1;
            line_no += count;
            let plain = (first > 1 || !(self.decoder.header || raw.starts_with(UTF8_BOM)))
                && memchr::memchr(b'\r', &raw).is_none();
            if plain && raw.last() != Some(&b'\n') {
                raw.push(b'\n');
            }
            let slow: String;
            let whole = match plain {
                true => std::str::from_utf8(&raw).ok(),
                false => None,
            };
            let (text, first_line, count) = match whole {
                Some(t) => (t, first, count),
                None => {
                    // Line by line, as each line needs: the header skipped, a carriage
                    // return before the line feed dropped, bad UTF-8 counted or sent to
                    // the dead letters (a blank line in its place).
                    let (mut t, mut first_line, mut n) = (String::new(), first, 0);
                    for (i, l) in raw.split_inclusive(|&b| b == b'\n').enumerate() {
                        let no = first + i;
                        if no == 1 && self.decoder.header {
                            first_line = 2;
                            continue;
                        }
                        let line = super::line_body(l, no);
                        match std::str::from_utf8(line) {
                            Ok(s) => t.push_str(s),
                            Err(_) => {
                                ctx.text_line(&self.decoder, line, &|| format!("{origin}:{no}"))?;
                            }
                        }
                        t.push('\n');
                        n += 1;
                    }
                    slow = t;
                    (slow.as_str(), first_line, n)
                }
            };
            let d = match self.decoder.decode_csv_text(text, count) {
                Some(b) => crate::format::decode::Decoded {
                    batch: Some(b),
                    bad: vec![],
                    kept: None,
                },
                None if count == 0 => continue,
                None => {
                    let lines: Vec<String> =
                        text.split_terminator('\n').map(str::to_string).collect();
                    let d = self.decoder.decode(&lines, &origin, first_line)?;
                    ctx.bad_lines(&d, &lines, &|i| format!("{origin}:{}", first_line + i))?;
                    d
                }
            };
            // Marked before the batch goes: a batch emitted is a batch read. From
            // `from`: the bytes skipped before `start` hold no line start.
            add_span(self.done.entry(key.clone()).or_default(), from, bytes);
            if let Some(b) = d.batch
                && !ctx.emit(self.with_facts(b, facts.as_ref())?)?
            {
                return Ok(false);
            }
            ctx.checkpoint(self)?;
        }
    }
}

/// Appends to `out` up to `max` whole lines from `r`, each that starts before byte `to` of
/// the file, `at` being the file offset `r` is at; a line is taken whole (with its line
/// feed; the file's last line may have none) even where it runs past `to`. Returns the
/// lines taken and the offset after them. Errors: the file cannot be read.
fn take_lines(
    r: &mut impl BufRead,
    out: &mut Vec<u8>,
    max: usize,
    mut at: u64,
    to: u64,
) -> std::io::Result<(usize, u64)> {
    let (mut count, mut in_line) = (0usize, false);
    loop {
        if !in_line && (count >= max || at >= to) {
            return Ok((count, at));
        }
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok((count + usize::from(in_line), at));
        }
        let mut used = 0;
        loop {
            if !in_line {
                if count >= max || at + used as u64 >= to {
                    break;
                }
                in_line = true;
            }
            match memchr::memchr(b'\n', &avail[used..]) {
                Some(i) => {
                    used += i + 1;
                    in_line = false;
                    count += 1;
                }
                None => {
                    used = avail.len();
                    break;
                }
            }
        }
        out.extend_from_slice(&avail[..used]);
        r.consume(used);
        at += used as u64;
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

    /// Rows of `file` (Binary, see [`path_bytes`]), `start` and `end` (UInt64): the byte ranges of this
    /// subtask's own ranges whose lines have been read (a line counts where it starts), and
    /// an empty range `[0, 0)` for each file listed with none read.
    fn snapshot(&self) -> Result<Vec<RecordBatch>> {
        use datafusion::arrow::array::{BinaryArray, UInt64Array};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let (mut files, mut starts, mut ends) = (vec![], vec![], vec![]);
        for (file, lo, hi) in &self.ranges {
            let spans = self.done.get(file).map_or(&[][..], |s| s.as_slice());
            if !spans.iter().any(|&(a, b)| a.max(*lo) < b.min(*hi)) {
                files.push(path_bytes(file));
                starts.push(0);
                ends.push(0);
                continue;
            }
            for &(a, b) in spans {
                let (a, b) = (a.max(*lo), b.min(*hi));
                if a < b {
                    files.push(path_bytes(file));
                    starts.push(a);
                    ends.push(b);
                }
            }
        }
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("file", DataType::Binary, false),
            Field::new("start", DataType::UInt64, false),
            Field::new("end", DataType::UInt64, false),
        ]));
        Ok(vec![RecordBatch::try_new(
            schema,
            vec![
                std::sync::Arc::new(BinaryArray::from(files)),
                std::sync::Arc::new(UInt64Array::from(starts)),
                std::sync::Arc::new(UInt64Array::from(ends)),
            ],
        )?])
    }

    /// Takes the ranges read of every state given (its own, or every old subtask's after a
    /// restore at another parallelism). A state of an earlier version's unsplit source (the
    /// file being read and the `bytes` and `lines` read of it) is taken too.
    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::UInt64Type;
        let bad = || {
            WeirError::user(format!(
                "the checkpoint's position in '{}' is malformed",
                self.path.display()
            ))
        };
        for b in &state {
            if b.column_by_name("start").is_none() {
                let (file, n) = position_from(std::slice::from_ref(b), &self.path, &["bytes"])?;
                self.legacy = Some((file, n[0]));
                continue;
            }
            let files = file_column(b).ok_or_else(bad)?;
            let number = |name: &str| {
                b.column_by_name(name)
                    .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                    .ok_or_else(bad)
            };
            let (starts, ends) = (number("start")?, number("end")?);
            let known = self.known.get_or_insert_default();
            for (r, file) in files.into_iter().enumerate() {
                known.insert(file.clone());
                let spans = self.done.entry(file).or_default();
                add_span(spans, starts.value(r), ends.value(r));
            }
        }
        Ok(())
    }

    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let mut files = self.filter.list(&self.path)?;
        if let Some(known) = &self.known {
            // A file the checkpoint still had to read must be there.
            for name in known {
                let read = self.done.get(name).is_some_and(|s| s == &[(0, u64::MAX)]);
                if !read && !files.contains(name) {
                    return Err(WeirError::user(format!(
                        "the checkpoint was to read '{}', which is no longer in '{}'",
                        name.display(),
                        self.path.display()
                    ))
                    .with_hint("restore the file, or start over with --from-scratch"));
                }
            }
            // Watching the path, a file new since the checkpoint is read too.
            if self.monitor.is_none() {
                files.retain(|f| known.contains(f));
            }
        }
        let size = |f: &Path| {
            std::fs::metadata(f)
                .map(|m| m.len())
                .map_err(|e| WeirError::user(format!("cannot read '{}': {e}", f.display())))
        };
        if let Some((name, bytes)) = self.legacy.take() {
            // Resume in the file the checkpoint was reading, found by name: files added
            // since do not shift the position; the files before it were read whole.
            let at = resume_index(&files, &name, &self.path)?;
            for (i, f) in files.iter().enumerate().take((at + 1).min(files.len())) {
                let end = if i == at { bytes } else { size(f)? };
                add_span(self.done.entry(f.clone()).or_default(), 0, end);
            }
        }
        let mut pieces = vec![];
        self.ranges.clear();
        for f in &files {
            let name = f.clone();
            let (lo, hi) = self.range_of(size(f)?);
            let spans = self.done.get(&name).map_or(&[][..], |s| s.as_slice());
            for (a, b) in gaps(spans, lo, hi) {
                pieces.push((f.clone(), a, b));
            }
            self.ranges.push((name, lo, hi));
        }
        for (i, (file, a, b)) in pieces.iter().enumerate() {
            // The watermark of a directory is the minimum over its files: a file not yet
            // read holds it back, and a file read to its end no longer does. Read one after
            // another, that means no watermark until the last piece, whose own rows then
            // drive it (rows of one file are never late because of another's).
            ctx.hold_watermark(i + 1 < pieces.len());
            if !self.read_piece(file, *a, *b, ctx)? {
                ctx.finish(self, false)?;
                return Ok(());
            }
        }
        let Some(interval) = self.monitor else {
            ctx.finish(self, true)?;
            return Ok(());
        };
        ctx.hold_watermark(false);
        loop {
            // Wait out the interval, taking checkpoints and heeding a stop meanwhile.
            let next = std::time::Instant::now() + interval;
            loop {
                if ctx.should_stop() {
                    ctx.finish(self, false)?;
                    return Ok(());
                }
                ctx.checkpoint(self)?;
                let left = next.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(std::time::Duration::from_millis(50)));
            }
            let seen: std::collections::BTreeSet<PathBuf> =
                self.ranges.iter().map(|(f, _, _)| f.clone()).collect();
            let new: Vec<PathBuf> = self
                .filter
                .list(&self.path)?
                .into_iter()
                .filter(|f| !seen.contains(f))
                .collect();
            for (i, f) in new.iter().enumerate() {
                // As at the start: the files found together hold the watermark until the
                // last of them, so rows of one are never late because of another's.
                ctx.hold_watermark(i + 1 < new.len());
                let f = f.clone();
                let (lo, hi) = self.range_of(size(&f)?);
                self.ranges.push((f.clone(), lo, hi));
                let spans = self.done.get(&f).map_or(vec![], |s| gaps(s, lo, hi));
                let todo = if self.done.contains_key(&f) {
                    spans
                } else {
                    vec![(lo, hi)]
                };
                for (a, b) in todo {
                    if !self.read_piece(&f, a, b, ctx)? {
                        ctx.finish(self, false)?;
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobMetrics, Message};
    use crate::source::watermark::SourceStage;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn spans_merge_and_leave_gaps() {
        let mut s = vec![];
        add_span(&mut s, 10, 20);
        add_span(&mut s, 30, 40);
        add_span(&mut s, 20, 25);
        add_span(&mut s, 5, 5);
        assert_eq!(s, vec![(10, 25), (30, 40)]);
        assert_eq!(gaps(&s, 0, 50), vec![(0, 10), (25, 30), (40, 50)]);
        assert_eq!(gaps(&s, 12, 35), vec![(25, 30)]);
        assert_eq!(gaps(&s, 10, 25), vec![]);
        assert_eq!(gaps(&[], 3, 9), vec![(3, 9)]);
    }

    fn source(dir: &Path, batch: usize) -> FileSource {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
        ]));
        let options = crate::sql::options::Options::new();
        let decoder = Decoder::new(crate::format::Format::Csv, schema, &options).expect("decoder");
        FileSource::new(dir.to_path_buf(), decoder, batch)
    }

    /// Runs `s` to its end, or until `stop_after` batches came, and gives the ids it sent.
    fn run(mut s: Box<dyn Source>, stop_after: Option<usize>) -> (Vec<i64>, Box<dyn Source>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let job = Arc::new(JobMetrics::default());
        let mut ctx = SourceContext::new(
            tx,
            stop.clone(),
            SourceStage::new(None, None),
            job.register("source"),
            job,
        );
        let t = std::thread::spawn(move || {
            s.run(&mut ctx).expect("run");
            s
        });
        let (mut ids, mut batches) = (vec![], 0);
        while let Some(m) = rx.blocking_recv() {
            match m {
                Message::Batch(b) => {
                    ids.extend(b.column(0).as_primitive::<Int64Type>().values().iter());
                    batches += 1;
                    if stop_after.is_some_and(|n| batches >= n) {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Message::End => break,
                _ => {}
            }
        }
        (ids, t.join().expect("source thread"))
    }

    /// Two files of lines of different lengths (some long enough that a range boundary
    /// falls inside them), 1 to 3000.
    fn files() -> (tempfile::TempDir, Vec<i64>) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut all = vec![];
        for (f, ids) in [("a.csv", 1..=1700), ("b.csv", 1701..=3000)] {
            let mut text = String::new();
            for i in ids {
                text.push_str(&format!("{i},{}\n", "x".repeat((i % 37) as usize)));
                all.push(i);
            }
            std::fs::write(dir.path().join(f), text).expect("write");
        }
        (dir, all)
    }

    fn sorted(mut v: Vec<i64>) -> Vec<i64> {
        v.sort_unstable();
        v
    }

    #[test]
    fn subtasks_read_every_line_once_between_them() {
        let (dir, all) = files();
        for n in [1u64, 2, 3, 7] {
            let (mut ids, mut state) = (vec![], vec![]);
            for k in 0..n {
                let mut p = source(dir.path(), 100);
                p.subtask = (k, n);
                let (got, p) = run(Box::new(p), None);
                ids.extend(got);
                state.extend(p.snapshot().expect("snapshot"));
            }
            assert_eq!(sorted(ids), all, "parallelism {n}");
            // Between them, their positions say each file was read to its end.
            let mut s = source(dir.path(), 100);
            s.restore(state).expect("restore");
            assert_eq!(s.done.len(), 2);
            assert!(
                s.done.values().all(|d| d == &[(0, u64::MAX)]),
                "{:?}",
                s.done
            );
        }
    }

    #[test]
    fn only_the_first_range_skips_a_header() {
        let dir = tempfile::tempdir().expect("tmp");
        let text: String = std::iter::once("id,v\n".to_string())
            .chain((1..=500).map(|i| format!("{i},v{i}\n")))
            .collect();
        std::fs::write(dir.path().join("h.csv"), text).expect("write");
        let mut ids = vec![];
        for k in 0..3 {
            let mut s = source(dir.path(), 64);
            s.decoder.header = true;
            s.subtask = (k, 3);
            ids.extend(run(Box::new(s), None).0);
        }
        assert_eq!(sorted(ids), (1..=500).collect::<Vec<_>>());
    }

    #[test]
    fn a_restore_at_another_parallelism_reads_the_rest_once() {
        let (dir, all) = files();
        // 3 subtasks, each stopped after its first batches; then 2, then 1.
        let mut sent = vec![];
        let mut state = vec![];
        for k in 0..3 {
            let mut s = source(dir.path(), 50);
            s.subtask = (k, 3);
            let (ids, s) = run(Box::new(s), Some(2 + k as usize));
            sent.extend(ids);
            state.extend(s.snapshot().expect("snapshot"));
        }
        assert!(sent.len() < all.len());
        let mut next = vec![];
        for k in 0..2 {
            let mut s = source(dir.path(), 50);
            s.subtask = (k, 2);
            s.restore(state.clone()).expect("restore");
            let (ids, s) = run(Box::new(s), Some(3));
            sent.extend(ids);
            next.extend(s.snapshot().expect("snapshot"));
        }
        let mut s = source(dir.path(), 50);
        s.restore(next).expect("restore");
        sent.extend(run(Box::new(s), None).0);
        assert_eq!(sorted(sent), all);
    }

    /// Whole lines are taken across the reader's buffer ends, at most `max` at a time, each
    /// that starts before `to` (and runs past it if it must), the last without a line feed.
    #[test]
    fn lines_are_taken_whole_up_to_the_range_end() {
        use std::io::{BufReader, Cursor};
        let take = |text: &str, cap: usize, max: usize, to: u64| {
            let mut r = BufReader::with_capacity(cap, Cursor::new(text.as_bytes().to_vec()));
            let (mut at, mut got) = (0u64, vec![]);
            loop {
                let mut out = vec![];
                let (n, end) = take_lines(&mut r, &mut out, max, at, to).expect("read");
                if n == 0 {
                    return (got, at);
                }
                got.push((n, String::from_utf8(out).expect("utf8")));
                at = end;
            }
        };
        for cap in [1, 2, 4, 64] {
            let all = u64::MAX;
            assert_eq!(
                take("ab\ncd\nef", cap, 2, all),
                (vec![(2, "ab\ncd\n".into()), (1, "ef".into())], 8)
            );
            // "cd" starts at byte 3, before 4: taken whole; nothing starts before 3 but "ab".
            assert_eq!(
                take("ab\ncd\nef", cap, 9, 4),
                (vec![(2, "ab\ncd\n".into())], 6)
            );
            assert_eq!(take("ab\ncd\nef", cap, 9, 3), (vec![(1, "ab\n".into())], 3));
            assert_eq!(
                take("\n\nx\n", cap, 1, all),
                (
                    vec![(1, "\n".into()), (1, "\n".into()), (1, "x\n".into())],
                    4
                )
            );
            assert_eq!(take("", cap, 3, all), (vec![], 0));
        }
    }

    /// Two files whose names are not UTF-8 and differ only in the bad byte keep positions of
    /// their own: stopped in the first and resumed, every line is read once. Regression:
    /// both were keyed by their `display()` text (`a\u{FFFD}.csv`), so the second was taken
    /// for the first and its rows were lost.
    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_keep_their_own_positions() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tmp");
        let mut all = vec![];
        for (name, ids) in [(&b"a\xfe.csv"[..], 1..=400), (&b"a\xff.csv"[..], 401..=800)] {
            let text: String = ids
                .inspect(|i| all.push(*i))
                .map(|i| format!("{i},x\n"))
                .collect();
            let f = dir.path().join(std::ffi::OsStr::from_bytes(name));
            std::fs::write(f, text).expect("write");
        }
        let (mut sent, s) = run(Box::new(source(dir.path(), 100)), Some(2));
        assert!(sent.len() < 400, "{}", sent.len());
        let state = s.snapshot().expect("snapshot");
        let mut s = source(dir.path(), 100);
        s.restore(state).expect("restore");
        sent.extend(run(Box::new(s), None).0);
        assert_eq!(sorted(sent), all);
    }

    #[test]
    fn a_position_of_the_unsplit_source_of_an_earlier_version_is_taken() {
        let (dir, all) = files();
        // Read all of a.csv and the first 5 lines of b.csv.
        let b = std::fs::read(dir.path().join("b.csv")).expect("read");
        let five: usize = b
            .split_inclusive(|c| *c == b'\n')
            .take(5)
            .map(|l| l.len())
            .sum();
        // As earlier versions wrote it: the file's name as text.
        let name = dir.path().join("b.csv").display().to_string();
        let schema = Arc::new(Schema::new(vec![
            Field::new("file", DataType::Utf8, false),
            Field::new("bytes", DataType::UInt64, false),
            Field::new("lines", DataType::UInt64, false),
        ]));
        let state = vec![
            RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(datafusion::arrow::array::StringArray::from(vec![name])),
                    Arc::new(datafusion::arrow::array::UInt64Array::from(vec![
                        five as u64,
                    ])),
                    Arc::new(datafusion::arrow::array::UInt64Array::from(vec![5u64])),
                ],
            )
            .expect("state"),
        ];
        let mut s = source(dir.path(), 100);
        s.restore(state).expect("restore");
        let (ids, _) = run(Box::new(s), None);
        assert_eq!(ids, all[1705..].to_vec());
    }
}
