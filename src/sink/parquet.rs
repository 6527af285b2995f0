//! The `filesystem` sink for `parquet`: a Hive-style partitioned archive.
//!
//! Rows go to `path/<col>=<value>/.../part-<query>-<n>.parquet`, one open file per
//! partition. Each file is written under a hidden name (`.part-<query>-<n>.parquet.inprogress`) and
//! becomes visible only by an atomic rename when it is committed: when it reaches
//! `sink.rolling-policy.file-size`, when it has been open for
//! `sink.rolling-policy.rollover-interval` (checked every `sink.rolling-policy.check-interval`,
//! so a quiet stream still commits), and when the query ends cleanly. A reader never sees a
//! partial file; a crash leaves only hidden files, which the next start removes. Names are
//! deterministic per (query, partition, sequence): the same query over the same input
//! rewrites the same files (an atomic replace), so a re-run adds no copies. Partition columns live in the folder names,
//! not in the files (as Hive, Flink and DataFusion expect); the Arrow schema is stored in
//! each file so timestamps keep their unit, and row groups carry min/max statistics.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, GzipLevel, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::Sink;
use crate::error::{Result, WeirError};
use crate::sql::options::Options;

struct OpenFile {
    writer: ArrowWriter<File>,
    tmp: PathBuf,
    target: PathBuf,
    opened: Instant,
}

pub struct ParquetSink {
    base: PathBuf,
    /// Indices of the partition columns in the incoming batches.
    partition_cols: Vec<(usize, String)>,
    /// Indices of the columns that go into the files.
    data_cols: Vec<usize>,
    data_schema: Option<SchemaRef>,
    props: WriterProperties,
    file_size: u64,
    rollover: Duration,
    check: Duration,
    last_check: Instant,
    default_partition: String,
    /// The query's id, naming its files.
    run: String,
    open: HashMap<String, OpenFile>,
    next: HashMap<String, u64>,
}

/// Parses `parquet.compression` (Flink's values, case-insensitive).
fn compression(options: &Options) -> Result<Compression> {
    let v = options.get("parquet.compression").unwrap_or("snappy");
    Ok(match v.to_ascii_lowercase().as_str() {
        "snappy" => Compression::SNAPPY,
        "zstd" => Compression::ZSTD(ZstdLevel::default()),
        "gzip" => Compression::GZIP(GzipLevel::default()),
        "lz4" | "lz4_raw" => Compression::LZ4_RAW,
        "uncompressed" | "none" => Compression::UNCOMPRESSED,
        other => {
            return Err(WeirError::sql(
                format!("unknown parquet.compression '{other}'"),
                options.pos("parquet.compression"),
            )
            .with_hint("use snappy, zstd, gzip, lz4 or uncompressed"));
        }
    })
}

fn duration(options: &Options, key: &str, default: Duration) -> Result<Duration> {
    match options.get(key) {
        Some(v) => crate::sql::options::parse_duration(v)
            .map_err(|m| WeirError::sql(format!("option '{key}': {m}"), options.pos(key))),
        None => Ok(default),
    }
}

/// Removes the hidden in-progress files a crashed run left anywhere under `dir`.
fn clean_in_progress(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            clean_in_progress(&p)?;
            continue;
        }
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with(".part-") && n.ends_with(".inprogress") {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

impl ParquetSink {
    pub fn create(
        base: &Path,
        part_name: &str,
        partitioned_by: &[String],
        options: &Options,
    ) -> Result<Self> {
        std::fs::create_dir_all(base).map_err(|e| {
            WeirError::user(format!(
                "cannot create the sink directory '{}': {e}",
                base.display()
            ))
        })?;
        clean_in_progress(base)?;
        let file_size = match options.get("sink.rolling-policy.file-size") {
            Some(v) => crate::sql::options::parse_size(v).map_err(|m| {
                WeirError::sql(
                    format!("option 'sink.rolling-policy.file-size': {m}"),
                    options.pos("sink.rolling-policy.file-size"),
                )
            })?,
            None => 128 << 20,
        };
        let block = match options.get("parquet.block.size") {
            Some(v) => crate::sql::options::parse_size(v).map_err(|m| {
                WeirError::sql(
                    format!("option 'parquet.block.size': {m}"),
                    options.pos("parquet.block.size"),
                )
            })?,
            None => 128 << 20,
        };
        let props = WriterProperties::builder()
            .set_compression(compression(options)?)
            .set_statistics_enabled(EnabledStatistics::Page)
            // Rows per row group: about `parquet.block.size` of data at ~100 bytes a row,
            // at most a million.
            .set_max_row_group_row_count(Some(((block / 100) as usize).clamp(1024, 1 << 20)))
            .build();
        Ok(ParquetSink {
            base: base.to_path_buf(),
            partition_cols: partitioned_by
                .iter()
                .map(|p| (usize::MAX, p.clone()))
                .collect(),
            data_cols: vec![],
            data_schema: None,
            props,
            file_size,
            rollover: duration(
                options,
                "sink.rolling-policy.rollover-interval",
                Duration::from_secs(30 * 60),
            )?,
            check: duration(
                options,
                "sink.rolling-policy.check-interval",
                Duration::from_secs(60),
            )?,
            last_check: Instant::now(),
            default_partition: options
                .get("partition.default-name")
                .unwrap_or("__DEFAULT_PARTITION__")
                .to_string(),
            run: part_name.to_string(),
            open: HashMap::new(),
            next: HashMap::new(),
        })
    }

    /// Finds the partition columns in the first batch's schema.
    fn bind(&mut self, schema: &Schema) -> Result<()> {
        if self.data_schema.is_some() {
            return Ok(());
        }
        for (idx, name) in &mut self.partition_cols {
            *idx = schema.index_of(name).map_err(|_| {
                WeirError::user(format!(
                    "partition column '{name}' is not among the sink's columns"
                ))
            })?;
        }
        self.data_cols = (0..schema.fields().len())
            .filter(|i| !self.partition_cols.iter().any(|(p, _)| p == i))
            .collect();
        self.data_schema = Some(Arc::new(schema.project(&self.data_cols)?));
        Ok(())
    }

    /// The partition folder of every row (`dt=2026-11-24/hour=10`), or "" unpartitioned.
    fn partition_paths(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        let n = batch.num_rows();
        if self.partition_cols.is_empty() {
            return Ok(vec![String::new(); n]);
        }
        let opts = FormatOptions::default();
        let mut paths = vec![String::new(); n];
        for (k, (idx, name)) in self.partition_cols.iter().enumerate() {
            let col = batch.column(*idx);
            let f = ArrayFormatter::try_new(col.as_ref(), &opts)?;
            for (i, p) in paths.iter_mut().enumerate() {
                let v = if col.is_null(i) {
                    self.default_partition.clone()
                } else {
                    escape(&f.value(i).to_string())
                };
                if k > 0 {
                    p.push('/');
                }
                p.push_str(name);
                p.push('=');
                p.push_str(&v);
            }
        }
        Ok(paths)
    }

    fn file_for(&mut self, partition: &str) -> Result<&mut OpenFile> {
        if !self.open.contains_key(partition) {
            let dir = if partition.is_empty() {
                self.base.clone()
            } else {
                self.base.join(partition)
            };
            std::fs::create_dir_all(&dir)
                .map_err(|e| WeirError::user(format!("cannot create '{}': {e}", dir.display())))?;
            let seq = self.next.entry(partition.to_string()).or_insert(0);
            let name = format!("part-{}-{seq}.parquet", self.run);
            *seq += 1;
            let tmp = dir.join(format!(".{name}.inprogress"));
            let target = dir.join(&name);
            let f = File::create(&tmp).map_err(|e| {
                WeirError::user(format!("cannot write to '{}': {e}", tmp.display()))
            })?;
            let schema = self
                .data_schema
                .clone()
                .ok_or_else(|| WeirError::internal("parquet sink not bound"))?;
            let writer = ArrowWriter::try_new(f, schema, Some(self.props.clone()))?;
            self.open.insert(
                partition.to_string(),
                OpenFile {
                    writer,
                    tmp,
                    target,
                    opened: Instant::now(),
                },
            );
        }
        self.open
            .get_mut(partition)
            .ok_or_else(|| WeirError::internal("parquet file vanished"))
    }

    fn commit(&mut self, partition: &str) -> Result<()> {
        let Some(f) = self.open.remove(partition) else {
            return Ok(());
        };
        let file = f.writer.into_inner()?;
        file.sync_all()?;
        std::fs::rename(&f.tmp, &f.target).map_err(|e| {
            WeirError::external(format!("cannot commit '{}': {e}", f.target.display()))
        })?;
        Ok(())
    }

    /// Commits the files that have been open for the rollover interval.
    fn roll_by_time(&mut self) -> Result<()> {
        if self.last_check.elapsed() < self.check.min(self.rollover) {
            return Ok(());
        }
        self.last_check = Instant::now();
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= self.rollover)
            .map(|(k, _)| k.clone())
            .collect();
        for p in due {
            self.commit(&p)?;
        }
        Ok(())
    }
}

/// Escapes a partition value for a folder name, as Hive does.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        if c.is_control() || "\"#%'*/:=?\\\u{7f}{[]^".contains(c) {
            s.push_str(&format!("%{:02X}", c as u32));
        } else {
            s.push(c);
        }
    }
    s
}

impl Sink for ParquetSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return self.roll_by_time();
        }
        self.bind(&batch.schema())?;
        let paths = self.partition_paths(batch)?;
        let mut groups: Vec<(String, Vec<u32>)> = vec![];
        for (i, p) in paths.into_iter().enumerate() {
            match groups.iter_mut().rev().find(|(q, _)| *q == p) {
                Some((_, v)) => v.push(i as u32),
                None => groups.push((p, vec![i as u32])),
            }
        }
        let whole = groups.len() == 1;
        for (p, idx) in groups {
            let cols: Vec<_> = if whole {
                self.data_cols
                    .iter()
                    .map(|c| batch.column(*c).clone())
                    .collect()
            } else {
                let idx = UInt32Array::from(idx);
                self.data_cols
                    .iter()
                    .map(|c| take(batch.column(*c).as_ref(), &idx, None))
                    .collect::<std::result::Result<_, _>>()?
            };
            let schema = self
                .data_schema
                .clone()
                .ok_or_else(|| WeirError::internal("parquet sink not bound"))?;
            let part = RecordBatch::try_new(schema, cols)?;
            let size = self.file_size;
            let f = self.file_for(&p)?;
            f.writer.write(&part)?;
            if f.writer.bytes_written() as u64 + f.writer.in_progress_size() as u64 >= size {
                self.commit(&p)?;
            }
        }
        self.roll_by_time()
    }

    fn on_watermark(&mut self, _watermark: i64) -> Result<()> {
        self.roll_by_time()
    }

    fn on_tick(&mut self) -> Result<()> {
        self.roll_by_time()
    }

    fn tick(&self) -> Option<Duration> {
        Some(self.check.min(self.rollover))
    }

    fn finish(&mut self) -> Result<()> {
        let open: Vec<String> = self.open.keys().cloned().collect();
        for p in open {
            self.commit(&p)?;
        }
        Ok(())
    }
}
