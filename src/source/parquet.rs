//! Replay: Parquet files (a Weir archive or any other) as the source of a standing query.
//!
//! Files are read one after another in path order, each **in event-time order** (sorted by
//! the table's `WATERMARK FOR` column when it is a stored column, by an external sort that
//! spills to disk past [`SORT_MEMORY`]), with the watermark held
//! until the last file as for any directory (see [`super::filesystem`]): a windowed query
//! over the replay of an archive gives the rows it gave live. Hive partition folders
//! (`dt=2026-01-01/hour=00`) fill the table's PARTITIONED BY columns.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{ArrayRef, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Result, WeirError};
use crate::source::filesystem::{FileFacts, position_from, position_state, resume_index};
use crate::source::{Source, SourceContext};

pub struct ParquetSource {
    path: PathBuf,
    /// The table's physical columns, as the source must produce them.
    schema: SchemaRef,
    partitioned_by: Vec<String>,
    /// The stored column rows are sorted by within a file.
    time_col: Option<String>,
    batch_size: usize,
    /// The file being read ("" when every file was) and the rows of it emitted: the
    /// position a checkpoint saves.
    current: PathBuf,
    rows: u64,
    /// A restored position, found by file name when the source starts.
    resume: Option<(PathBuf, u64)>,
    /// The metadata columns (`file.path`, …): names and keys.
    metadata: Vec<(String, String)>,
    /// `source.path.regex-pattern`: the listed files read.
    filter: crate::source::filesystem::PathFilter,
}

impl ParquetSource {
    pub fn new(
        path: PathBuf,
        schema: SchemaRef,
        partitioned_by: Vec<String>,
        time_col: Option<String>,
        batch_size: usize,
    ) -> Self {
        ParquetSource {
            path,
            schema,
            partitioned_by,
            time_col,
            batch_size,
            current: PathBuf::new(),
            rows: 0,
            resume: None,
            metadata: vec![],
            filter: Default::default(),
        }
    }

    /// Adds metadata columns (names and keys, see
    /// [`crate::source::filesystem::METADATA`]), filled from each file read.
    pub fn with_metadata(mut self, metadata: Vec<(String, String)>) -> Self {
        self.metadata = metadata;
        self
    }

    /// Reads only the listed files `filter` keeps (`source.path.regex-pattern`).
    pub fn matching(mut self, filter: crate::source::filesystem::PathFilter) -> Self {
        self.filter = filter;
        self
    }

    /// `k=v` pairs of the folders between the table's path and `file`.
    fn partition_values(&self, file: &Path) -> Vec<(String, String)> {
        crate::source::filesystem::partition_values(&self.path, file)
    }

    /// The table's columns of `batch`, read from `file` (`file_schema`): stored columns
    /// cast to the table's types, partition columns from the folder names, missing
    /// nullable columns NULL.
    fn conform(
        &self,
        file: &Path,
        batch: &RecordBatch,
        parts: &[(String, String)],
        facts: Option<&FileFacts>,
    ) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let file_schema = batch.schema();
        let mut cols: Vec<ArrayRef> = vec![];
        for field in self.schema.fields() {
            let name = field.name();
            let meta = self.metadata.iter().find(|(c, _)| c == name);
            let col = if let (Some((_, key)), Some(facts)) = (meta, facts) {
                facts.column(key, rows, field.data_type())?
            } else if self.partitioned_by.contains(name) {
                match parts.iter().find(|(k, _)| k == name) {
                    Some((_, v)) if v != "__DEFAULT_PARTITION__" => {
                        let s = ScalarValue::Utf8(Some(v.clone())).to_array_of_size(rows)?;
                        cast(&s, field.data_type())?
                    }
                    _ => new_null_array(field.data_type(), rows),
                }
            } else {
                match file_schema.index_of(name) {
                    Ok(i) => cast(batch.column(i), field.data_type())?,
                    Err(_) if field.is_nullable() => new_null_array(field.data_type(), rows),
                    Err(_) => {
                        return Err(WeirError::user(format!(
                            "'{}' has no column '{name}', which is NOT NULL",
                            file.display()
                        )));
                    }
                }
            };
            cols.push(col);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }

    /// One file's rows in event-time order (ties in the file's order, so a restored job
    /// finds them as an uninterrupted one emitted them), and how many there are. A file
    /// larger than [`SORT_MEMORY`] is sorted by DataFusion's external sort, which spills
    /// sorted runs to temporary files and merges them: memory stays bounded whatever the
    /// file's size. A file whose rows need no sort (no time column stored in it) streams
    /// as it is.
    fn open(&self, file: &Path) -> Result<(u64, FileRows)> {
        let what = |e: &dyn std::fmt::Display| {
            WeirError::user(format!("cannot read '{}': {e}", file.display()))
        };
        let f = std::fs::File::open(file).map_err(|e| what(&e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| what(&e))?;
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let sort_by = self
            .time_col
            .as_ref()
            .filter(|t| builder.schema().index_of(t).is_ok());
        let Some(time) = sort_by else {
            let reader = builder
                .with_batch_size(self.batch_size.clamp(1, 64 * 1024))
                .build()
                .map_err(|e| what(&e))?;
            return Ok((rows, FileRows::Plain(reader)));
        };
        use datafusion::execution::disk_manager::DiskManagerBuilder;
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext, col};
        let env = RuntimeEnvBuilder::new()
            .with_memory_limit(SORT_MEMORY, 1.0)
            .with_disk_manager_builder(DiskManagerBuilder::default())
            .build_arc()?;
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(self.batch_size.clamp(1, 64 * 1024));
        let ctx = SessionContext::new_with_config_rt(config, env);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| WeirError::external(format!("a runtime for sorting: {e}")))?;
        // A `file://` URL: a path DataFusion would otherwise read as a glob (`[`, `*`, `?`
        // in a Hive folder or a file name) names just this file.
        let abs = std::fs::canonicalize(file).map_err(|e| what(&e))?;
        let path = file_url(&abs);
        let time_type = self
            .schema
            .field_with_name(time)
            .map(|f| f.data_type().clone())
            .map_err(|e| what(&e))?;
        let stream = rt
            .block_on(async {
                let df = ctx
                    .read_parquet(path.as_str(), ParquetReadOptions::default())
                    .await?;
                let names: Vec<String> = df
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                // The file's order, to break ties (one partition: the scan is in order).
                let df = df.window(vec![
                    datafusion::functions_window::expr_fn::row_number().alias(ROW),
                ])?;
                // By the time as the table reads it (a stored STRING parsed as a TIMESTAMP
                // sorts by instant, not by text).
                let df = df.sort(vec![
                    datafusion::prelude::cast(datafusion::prelude::ident(time), time_type)
                        .sort(true, true),
                    col(ROW).sort(true, false),
                ])?;
                let df =
                    df.select_columns(&names.iter().map(String::as_str).collect::<Vec<_>>())?;
                df.execute_stream().await
            })
            .map_err(|e| what(&e))?;
        Ok((rows, FileRows::Sorted { stream, rt }))
    }
}

/// `path` (absolute) as a `file://` URL, each byte but unreserved ones and `/`
/// percent-encoded.
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for b in path.as_os_str().as_encoded_bytes() {
        match *b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                url.push(*b as char)
            }
            other => url.push_str(&format!("%{other:02X}")),
        }
    }
    url
}

/// The column that numbers a file's rows while it is sorted.
const ROW: &str = "__weir_file_row";

/// Memory one file's sort may hold before it spills to disk: 128 MiB.
pub const SORT_MEMORY: usize = 128 << 20;

/// A file's rows as [`ParquetSource::open`] reads them.
enum FileRows {
    Plain(datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader),
    /// The stream before its runtime: fields drop in order, and DataFusion's tasks must go
    /// while their runtime still exists.
    Sorted {
        stream: datafusion::physical_plan::SendableRecordBatchStream,
        rt: tokio::runtime::Runtime,
    },
}

impl FileRows {
    fn next(&mut self) -> Option<Result<RecordBatch>> {
        match self {
            FileRows::Plain(r) => r.next().map(|b| Ok(b?)),
            FileRows::Sorted { stream, rt } => {
                use futures::StreamExt;
                rt.block_on(stream.next()).map(|b| Ok(b?))
            }
        }
    }
}

impl Source for ParquetSource {
    fn kind(&self) -> &'static str {
        "filesystem (parquet)"
    }

    fn origin(&self) -> String {
        format!("filesystem (parquet) '{}'", self.path.display())
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// One row: `file` (the file being read, empty when every file was) and `rows` of it
    /// emitted, in the file's event-time order.
    fn snapshot(&self) -> Result<Vec<RecordBatch>> {
        position_state(&self.current, &[("rows", self.rows)])
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        let (file, n) = position_from(&state, &self.path, &["rows"])?;
        self.resume = Some((file, n[0]));
        Ok(())
    }

    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let files: Vec<PathBuf> = self
            .filter
            .list(&self.path)?
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
            .collect();
        let n = files.len();
        let mut first = 0;
        if let Some((name, rows)) = self.resume.take() {
            first = resume_index(&files, &name, &self.path)?;
            self.rows = rows;
        }
        for (i, file) in files.iter().enumerate().skip(first) {
            self.current = file.clone();
            ctx.hold_watermark(i + 1 < n);
            let (total, mut rows) = self.open(file)?;
            if self.rows > total {
                return Err(WeirError::user(format!(
                    "the checkpoint had read {} rows of '{}', which now has {total}: the file changed",
                    self.rows,
                    file.display(),
                ))
                .with_hint("restore the file, or start over with --from-scratch"));
            }
            let parts = self.partition_values(file);
            let facts = match self.metadata.is_empty() {
                true => None,
                false => Some(FileFacts::of(file)?),
            };
            // Rows a restored checkpoint had emitted already.
            let mut skip = self.rows as usize;
            let mut at = self.rows;
            while let Some(batch) = rows.next() {
                let batch = batch.map_err(|e| {
                    WeirError::user(format!("cannot read '{}': {e}", file.display()))
                })?;
                let batch = if skip >= batch.num_rows() {
                    skip -= batch.num_rows();
                    continue;
                } else {
                    let b = batch.slice(skip, batch.num_rows() - skip);
                    skip = 0;
                    b
                };
                let batch = self.conform(file, &batch, &parts, facts.as_ref())?;
                let mut off = 0;
                while off < batch.num_rows() {
                    let len = self.batch_size.max(1).min(batch.num_rows() - off);
                    let go_on = ctx.emit(batch.slice(off, len))?;
                    off += len;
                    at += len as u64;
                    self.rows = at;
                    if !go_on {
                        ctx.finish(self, false)?;
                        return Ok(());
                    }
                    ctx.checkpoint(self)?;
                }
            }
            self.rows = 0;
        }
        self.current = PathBuf::new();
        ctx.finish(self, true)?;
        Ok(())
    }
}
