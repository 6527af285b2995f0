//! Replay: Parquet files (a Weir archive or any other) as the source of a standing query.
//!
//! Files are read one after another in path order, each **in event-time order** (sorted by
//! the table's `WATERMARK FOR` column when it is a stored column), with the watermark held
//! until the last file as for any directory (see [`super::filesystem`]): a windowed query
//! over the replay of an archive gives the rows it gave live. Hive partition folders
//! (`dt=2026-01-01/hour=00`) fill the table's PARTITIONED BY columns.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt64Array, new_null_array};
use datafusion::arrow::compute::{
    SortColumn, SortOptions, cast, concat_batches, lexsort_to_indices, take,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchReader};
use datafusion::common::ScalarValue;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Result, WeirError};
use crate::source::filesystem::{list_files, position_from, position_state, resume_index};
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
    current: String,
    rows: u64,
    /// A restored position, found by file name when the source starts.
    resume: Option<(String, u64)>,
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
            current: String::new(),
            rows: 0,
            resume: None,
        }
    }

    /// `k=v` pairs of the folders between the table's path and `file`.
    fn partition_values(&self, file: &Path) -> Vec<(String, String)> {
        let rel = file.strip_prefix(&self.path).unwrap_or(file);
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

    /// One file, as the table's rows, sorted by event time.
    fn read(&self, file: &Path) -> Result<Option<RecordBatch>> {
        let what = |e: &dyn std::fmt::Display| {
            WeirError::user(format!("cannot read '{}': {e}", file.display()))
        };
        let f = std::fs::File::open(file).map_err(|e| what(&e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| what(&e))?
            .with_batch_size(64 * 1024)
            .build()
            .map_err(|e| what(&e))?;
        let file_schema = reader.schema();
        let mut batches = vec![];
        for b in reader {
            batches.push(b.map_err(|e| what(&e))?);
        }
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            return Ok(None);
        }
        let all = concat_batches(&file_schema, &batches)?;
        let parts = self.partition_values(file);
        let mut cols: Vec<ArrayRef> = vec![];
        for field in self.schema.fields() {
            let name = field.name();
            let col = if self.partitioned_by.contains(name) {
                match parts.iter().find(|(k, _)| k == name) {
                    Some((_, v)) if v != "__DEFAULT_PARTITION__" => {
                        let s = ScalarValue::Utf8(Some(v.clone())).to_array_of_size(rows)?;
                        cast(&s, field.data_type())?
                    }
                    _ => new_null_array(field.data_type(), rows),
                }
            } else {
                match file_schema.index_of(name) {
                    Ok(i) => cast(all.column(i), field.data_type())?,
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
        let mut batch = RecordBatch::try_new(self.schema.clone(), cols)?;
        if let Some(t) = &self.time_col
            && let Ok(i) = self.schema.index_of(t)
        {
            // Stable (ties keep the file's order), so that a restored job finds the rows
            // of a file in the order an uninterrupted one emitted them.
            let order: ArrayRef = Arc::new(UInt64Array::from_iter_values(0..rows as u64));
            let idx = lexsort_to_indices(
                &[
                    SortColumn {
                        values: batch.column(i).clone(),
                        options: Some(SortOptions {
                            descending: false,
                            nulls_first: true,
                        }),
                    },
                    SortColumn {
                        values: order,
                        options: None,
                    },
                ],
                None,
            )?;
            let cols = batch
                .columns()
                .iter()
                .map(|c| Ok(take(c.as_ref(), &idx, None)?))
                .collect::<Result<Vec<_>>>()?;
            batch = RecordBatch::try_new(self.schema.clone(), cols)?;
        }
        Ok(Some(batch))
    }
}

/// Undoes the `%XX` escapes of partition folder names.
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16)
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

    /// One row: `file` (the file being read, "" when every file was) and `rows` of it
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
        let files: Vec<PathBuf> = list_files(&self.path)?
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
            self.current = file.display().to_string();
            ctx.hold_watermark(i + 1 < n);
            if let Some(batch) = self.read(file)? {
                if self.rows as usize > batch.num_rows() {
                    return Err(WeirError::user(format!(
                        "the checkpoint had read {} rows of '{}', which now has {}: the file changed",
                        self.rows,
                        file.display(),
                        batch.num_rows()
                    ))
                    .with_hint("restore the file, or start over with --from-scratch"));
                }
                let mut at = self.rows as usize;
                while at < batch.num_rows() {
                    let len = self.batch_size.min(batch.num_rows() - at);
                    let go_on = ctx.emit(batch.slice(at, len))?;
                    at += len;
                    self.rows = at as u64;
                    if !go_on {
                        ctx.finish(self, false)?;
                        return Ok(());
                    }
                    ctx.checkpoint(self)?;
                }
            }
            self.rows = 0;
        }
        self.current = String::new();
        ctx.finish(self, true)?;
        Ok(())
    }
}
