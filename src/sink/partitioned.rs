//! The `filesystem` sink: Parquet archives and CSV / JSON files, in Hive-style partition
//! folders when the table is `PARTITIONED BY`.
//!
//! Rows go to `path/<col>=<value>/.../part-<job>-<run>-<subtask>-<n>.<parquet|csv|json>`,
//! one open file per partition: `<job>` is the job's identity (`pipeline.name`, else a hash
//! of the statement) and `<run>` is unique to each start, so a run never replaces a file it
//! did not write — running the same query again adds files beside the first run's. Each
//! file is written under a hidden name (`.part-….parquet.inprogress`) and becomes visible
//! only by an atomic rename. Without checkpoints the rename happens when the file reaches
//! `sink.rolling-policy.file-size`, when it has been open for
//! `sink.rolling-policy.rollover-interval` (checked every `sink.rolling-policy.check-interval`,
//! so a quiet stream still commits), and when the query ends cleanly. With checkpoints
//! (two-phase commit, as Flink's `FileSink`), files are closed at those times and at every
//! checkpoint barrier as *pending*, listed in the checkpoint's state, and renamed when the
//! checkpoint completes; a restart renames the pending files of the restored checkpoint and
//! removes the job's other hidden files. A run only ever removes hidden files of its own
//! job. Partition columns live in the folder names, not in the files (as Hive, Flink and
//! DataFusion expect); the Arrow schema is stored in each Parquet file so timestamps keep
//! their unit, and row groups carry min/max statistics.
//!
//! ## Partition commit
//!
//! As Flink's filesystem sink, a partition can be *committed* — its open file closed and,
//! with `'sink.partition-commit.policy.kind' = 'success-file'`, an empty `_SUCCESS` file
//! written in its folder — when `'sink.partition-commit.trigger'` says it is complete:
//! `partition-time` when the watermark reaches the time its values stand for
//! (`'partition.time-extractor.timestamp-pattern'`, such as `'$dt $hm:00'`) plus
//! `'sink.partition-commit.delay'`; `process-time` (the default) when that delay has
//! passed on the clock since the partition's first row. Rows that come after their
//! partition was committed go to a new file, and the partition is committed again. The end
//! of the input commits every partition.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, GzipLevel, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{Sink, SinkContext};
use crate::error::{Result, WeirError};
use crate::format::Format;
use crate::sql::options::Options;

/// A `Write` that counts the bytes through it, for size-based rolling of CSV and JSON.
struct Counting {
    inner: BufWriter<File>,
    written: Arc<AtomicU64>,
}

impl Counting {
    fn new(f: File) -> (Self, Arc<AtomicU64>) {
        let written = Arc::new(AtomicU64::new(0));
        (
            Counting {
                inner: BufWriter::with_capacity(1 << 20, f),
                written: written.clone(),
            },
            written,
        )
    }
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

enum FileWriter {
    Parquet(ArrowWriter<File>),
    Csv(
        Box<datafusion::arrow::csv::Writer<Counting>>,
        Arc<AtomicU64>,
    ),
    Json(
        datafusion::arrow::json::LineDelimitedWriter<Counting>,
        Arc<AtomicU64>,
    ),
}

impl FileWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            FileWriter::Parquet(w) => w.write(batch)?,
            FileWriter::Csv(w, _) => w.write(batch)?,
            FileWriter::Json(w, _) => w.write(batch)?,
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        match self {
            FileWriter::Parquet(w) => w.bytes_written() as u64 + w.in_progress_size() as u64,
            FileWriter::Csv(_, n) | FileWriter::Json(_, n) => n.load(Ordering::Relaxed),
        }
    }

    /// Flushes everything and gives the file back.
    fn close(self) -> Result<File> {
        let counting = match self {
            FileWriter::Parquet(w) => return Ok(w.into_inner()?),
            FileWriter::Csv(w, _) => w.into_inner(),
            FileWriter::Json(mut w, _) => {
                w.finish()?;
                w.into_inner()
            }
        };
        counting
            .inner
            .into_inner()
            .map_err(|e| WeirError::external(format!("cannot flush a sink file: {e}")))
    }
}

struct OpenFile {
    writer: FileWriter,
    tmp: PathBuf,
    target: PathBuf,
    opened: Instant,
    /// When rows were last written to it (`sink.rolling-policy.inactivity-interval`).
    written: Instant,
}

/// When partitions are committed (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
enum Trigger {
    ProcessTime,
    /// The partition's time from this pattern of `$column` references, read with this
    /// strftime format (None: `yyyy-MM-dd HH:mm:ss`, a date alone at midnight).
    PartitionTime(String, Option<String>),
}

struct Commit {
    trigger: Trigger,
    delay: Duration,
    /// `sink.partition-commit.watermark-time-zone` (Flink's; default UTC): the zone whose
    /// wall clock the watermark is read on before it meets a partition's time, which is
    /// wall-clock text — set it to the session zone when the rowtime is a `TIMESTAMP_LTZ`.
    watermark_zone: Option<datafusion::arrow::array::timezone::Tz>,
    /// The success file's name, when the policy writes one.
    success_file: Option<String>,
    /// `partition.time-extractor.timestamp-formatter` as written (for messages).
    formatter_text: Option<String>,
}

/// What the sink knows of a partition: its values, when its first row came, and whether
/// it has rows since its last commit.
struct PartitionState {
    values: Vec<(String, String)>,
    first_row: Instant,
    dirty: bool,
}

pub struct PartitionedSink {
    format: Format,
    csv_header: bool,
    delimiter: u8,
    /// CSV: how ARRAY elements are joined (`csv.array-element-delimiter`), and a NULL
    /// element's text (`csv.null-literal`).
    array_delimiter: String,
    csv_null: String,
    /// How JSON rows are written (Flink's `json.*` write options).
    json: crate::format::json_out::JsonWrite,
    commit: Commit,
    partitions: HashMap<String, PartitionState>,
    base: PathBuf,
    /// Indices of the partition columns in the incoming batches.
    partition_cols: Vec<(usize, String)>,
    /// Indices of the columns that go into the files.
    data_cols: Vec<usize>,
    data_schema: Option<SchemaRef>,
    props: WriterProperties,
    file_size: u64,
    rollover: Duration,
    /// A file that took no rows for this long is closed (Flink's
    /// `sink.rolling-policy.inactivity-interval`), so idle partitions keep no writer.
    inactivity: Duration,
    check: Duration,
    last_check: Instant,
    default_partition: String,
    /// The job's identity, naming its files (see [`SinkContext`]).
    job: String,
    /// This run's id, naming its files.
    run: String,
    /// The checkpoint the files opened now will be committed with (0 without checkpoints),
    /// naming them too.
    checkpoint: u64,
    /// True once [`Sink::open`] has run.
    opened: bool,
    /// Commits in two phases, at checkpoints.
    checkpointing: bool,
    /// Closed files not yet visible: (the checkpoint that commits it, hidden name, final
    /// name). Renamed when that checkpoint completes.
    pending: Vec<(u64, PathBuf, PathBuf)>,
    /// Success files to write when the pending files are committed: (checkpoint, path).
    pending_success: Vec<(u64, PathBuf)>,
    open: HashMap<String, OpenFile>,
    /// The sequence number of the next file this run opens, over all partitions (one per
    /// partition kept an entry for every partition ever written); with the run id in every
    /// name, no two files of a job share one.
    next: u64,
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

/// The job a hidden in-progress file belongs to:
/// `.part-<job>-<run>-<subtask>-<checkpoint>-<seq>.<ext>.inprogress` (a job name may itself
/// contain `-`).
fn in_progress_job(name: &str) -> Option<&str> {
    let body = name.strip_prefix(".part-")?.strip_suffix(".inprogress")?;
    let body = &body[..body.rfind('.')?];
    let mut parts = body.rsplitn(5, '-');
    let (seq, checkpoint, subtask, _run) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Numbers where numbers belong: a name of another layout is no job's of this one.
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(numeric(seq) && numeric(checkpoint) && numeric(subtask)) {
        return None;
    }
    parts.next()
}

/// Removes the hidden in-progress files that earlier runs of job `job` left anywhere under
/// `dir` (never another job's).
fn clean_in_progress(dir: &Path, job: &str) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            clean_in_progress(&p, job)?;
            continue;
        }
        let n = e.file_name().to_string_lossy().to_string();
        if in_progress_job(&n) == Some(job) {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

fn commit_options(options: &Options) -> Result<Commit> {
    // Flink's `partition.time-extractor.kind`: 'default' (the pattern and formatter below)
    // or 'custom', a Java class Weir has no way to run.
    match options.get("partition.time-extractor.kind") {
        None | Some("default") => {}
        Some("custom") => {
            return Err(WeirError::sql(
                "'partition.time-extractor.kind' = 'custom' runs a Java class \
                 ('partition.time-extractor.class'), which Weir cannot load",
                options.pos("partition.time-extractor.kind"),
            )
            .with_hint(
                "use 'default' with 'partition.time-extractor.timestamp-pattern' and \
                 'partition.time-extractor.timestamp-formatter'",
            ));
        }
        Some(other) => {
            return Err(WeirError::sql(
                format!("unknown 'partition.time-extractor.kind' = '{other}'"),
                options.pos("partition.time-extractor.kind"),
            )
            .with_hint("use 'default' or 'custom'"));
        }
    }
    let trigger = match options.get("sink.partition-commit.trigger") {
        None | Some("process-time") => Trigger::ProcessTime,
        Some("partition-time") => Trigger::PartitionTime(
            options
                .get("partition.time-extractor.timestamp-pattern")
                .unwrap_or("")
                .to_string(),
            match options.get("partition.time-extractor.timestamp-formatter") {
                None => None,
                Some(f) => {
                    let strftime = crate::sql::functions::java_to_strftime(f);
                    use chrono::format::{Item, StrftimeItems};
                    // Java's `DateTimeFormatter.ofPattern` refuses an unknown letter and
                    // the reserved `{`, `}`, `#` (outside quotes); a date needs its year.
                    let mut quoted = false;
                    let unknown = f.chars().any(|c| {
                        if c == '\'' {
                            quoted = !quoted;
                        }
                        !quoted
                            && ((c.is_ascii_alphabetic()
                                && !"GuyDMLdQqYwWEecFahKkHmsSAnNVzOXxZp".contains(c))
                                || "{}#".contains(c))
                    });
                    let year = strftime.contains("%Y") || strftime.contains("%y");
                    if unknown
                        || !year
                        || StrftimeItems::new(&strftime).any(|i| matches!(i, Item::Error))
                    {
                        return Err(WeirError::sql(
                            format!(
                                "'partition.time-extractor.timestamp-formatter' = '{f}' is not a date pattern Weir can read"
                            ),
                            options.pos("partition.time-extractor.timestamp-formatter"),
                        )
                        .with_hint("use Java's letters: yyyy MM dd HH mm ss, such as 'yyyyMMdd HH'"));
                    }
                    Some(strftime)
                }
            },
        ),
        Some(other) => {
            return Err(WeirError::sql(
                format!("unknown 'sink.partition-commit.trigger' = '{other}'"),
                options.pos("sink.partition-commit.trigger"),
            )
            .with_hint("use 'process-time' or 'partition-time'"));
        }
    };
    let success_file = match options.get("sink.partition-commit.policy.kind") {
        None => None,
        Some(kinds) => {
            let mut file = None;
            for k in kinds.split(',').map(str::trim) {
                match k {
                    "success-file" => {
                        file = Some(
                            options
                                .get("sink.partition-commit.success-file.name")
                                .unwrap_or("_SUCCESS")
                                .to_string(),
                        )
                    }
                    other => {
                        return Err(WeirError::sql(
                            format!("not supported: partition commit policy '{other}'"),
                            options.pos("sink.partition-commit.policy.kind"),
                        )
                        .with_hint("Weir writes 'success-file'; there is no metastore"));
                    }
                }
            }
            file
        }
    };
    let watermark_zone = match options.get("sink.partition-commit.watermark-time-zone") {
        None => None,
        Some(z) => {
            let text = crate::sql::local_time::parse_zone(z).map_err(|_| {
                WeirError::sql(
                    format!("'sink.partition-commit.watermark-time-zone' = '{z}' is not a time zone"),
                    options.pos("sink.partition-commit.watermark-time-zone"),
                )
                .with_hint("use a full name such as 'Asia/Shanghai', 'UTC', or an offset such as 'GMT+08:00'")
            })?;
            text.parse().ok()
        }
    };
    Ok(Commit {
        trigger,
        delay: duration(options, "sink.partition-commit.delay", Duration::ZERO)?,
        success_file,
        watermark_zone,
        formatter_text: options
            .get("partition.time-extractor.timestamp-formatter")
            .map(str::to_string),
    })
}

/// The epoch milliseconds a partition stands for: `pattern` with each `$column` replaced by
/// the partition's value (the first partition value when there is no pattern), read as
/// `yyyy-MM-dd HH:mm:ss` (or a date).
fn partition_time(
    pattern: &str,
    formatter: Option<&str>,
    values: &[(String, String)],
) -> Option<i64> {
    let mut text = if pattern.is_empty() {
        values.first()?.1.clone()
    } else {
        pattern.to_string()
    };
    // Longer names first, so `$dt` does not eat the start of `$dtx`.
    let mut by_len: Vec<&(String, String)> = values.iter().collect();
    by_len.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, value) in by_len {
        text = text.replace(&format!("${name}"), value);
    }
    // Flink's DefaultPartTimeExtractor: the formatter's date and time, or its date alone at
    // midnight; an hour alone is that hour's start (as Java's resolver reads `HH`).
    if let Some(f) = formatter {
        let mut parsed = chrono::format::Parsed::new();
        chrono::format::parse(&mut parsed, &text, chrono::format::StrftimeItems::new(f)).ok()?;
        let date = parsed.to_naive_date().ok()?;
        if parsed.hour_mod_12().is_some() && parsed.minute().is_none() {
            parsed.set_minute(0).ok()?;
        }
        let time = parsed.to_naive_time().unwrap_or(chrono::NaiveTime::MIN);
        return Some(date.and_time(time).and_utc().timestamp_millis());
    }
    let text = if text.len() == 10 {
        format!("{text} 00:00:00")
    } else {
        text
    };
    datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(&text)
        .ok()
        .map(|ns| ns.div_euclid(1_000_000))
}

impl PartitionedSink {
    pub fn create(
        base: &Path,
        part_name: &str,
        partitioned_by: &[String],
        options: &Options,
    ) -> Result<Self> {
        let format = Format::parse(options, "sink")?;
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
        Ok(PartitionedSink {
            format,
            csv_header: options.bool_or("csv.header", false)?,
            delimiter: options.char_or("csv.field-delimiter", b',')?,
            array_delimiter: options
                .get("csv.array-element-delimiter")
                .unwrap_or(crate::format::encode::CSV_ARRAY_DELIMITER)
                .to_string(),
            csv_null: options.get("csv.null-literal").unwrap_or("").to_string(),
            json: crate::format::json_out::JsonWrite::from_options(options)?,
            commit: commit_options(options)?,
            partitions: HashMap::new(),
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
            inactivity: duration(
                options,
                "sink.rolling-policy.inactivity-interval",
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
            job: part_name.to_string(),
            run: String::new(),
            checkpoint: 0,
            opened: false,
            checkpointing: false,
            pending: vec![],
            pending_success: vec![],
            open: HashMap::new(),
            next: 0,
        })
    }

    /// Opens the sink outside a job's sink task (a late-data sink): no checkpoints.
    fn ensure_open(&mut self) -> Result<()> {
        if self.opened {
            return Ok(());
        }
        let ctx = SinkContext {
            job: self.job.clone(),
            run: crate::checkpoint::run_id(),
            checkpointer: None,
            restored: None,
        };
        self.open(&ctx)
    }

    /// The sink's pending files and success files as a checkpoint state: one batch of
    /// (`kind`: `file` or `success`, `from`, `to`) paths.
    fn pending_state(&self) -> Result<RecordBatch> {
        use datafusion::arrow::array::StringArray;
        use datafusion::arrow::datatypes::{DataType, Field};
        let mut kind = vec![];
        let mut from = vec![];
        let mut to = vec![];
        for (_, tmp, target) in &self.pending {
            kind.push("file");
            from.push(tmp.display().to_string());
            to.push(target.display().to_string());
        }
        for (_, f) in &self.pending_success {
            kind.push("success");
            from.push(f.display().to_string());
            to.push(String::new());
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("kind", DataType::Utf8, false),
                Field::new("from", DataType::Utf8, false),
                Field::new("to", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(StringArray::from(kind)),
                Arc::new(StringArray::from(from)),
                Arc::new(StringArray::from(to)),
            ],
        )?)
    }

    /// Reads back [`PartitionedSink::pending_state`].
    fn restore_pending(&mut self, state: &[RecordBatch]) -> Result<()> {
        use datafusion::arrow::array::AsArray;
        let bad = || WeirError::user("the sink's state in the checkpoint is malformed");
        for b in state {
            if b.num_columns() != 3 {
                return Err(bad());
            }
            let col = |i: usize| b.column(i).as_string_opt::<i32>().ok_or_else(bad);
            let (kind, from, to) = (col(0)?, col(1)?, col(2)?);
            for i in 0..b.num_rows() {
                match kind.value(i) {
                    "file" => self.pending.push((
                        0,
                        PathBuf::from(from.value(i)),
                        PathBuf::from(to.value(i)),
                    )),
                    "success" => self.pending_success.push((0, PathBuf::from(from.value(i)))),
                    _ => return Err(bad()),
                }
            }
        }
        Ok(())
    }

    /// Makes every pending file visible; see [`PartitionedSink::commit_through`].
    fn commit_pending(&mut self) -> Result<()> {
        self.commit_through(u64::MAX)
    }

    /// Makes the pending files of checkpoints up to `checkpoint` visible (an atomic rename
    /// each) and writes their success files; later ones stay pending. A pending file
    /// already renamed (a restart after the commit) is fine; one that is gone entirely is
    /// an error: its rows would be lost.
    fn commit_through(&mut self, checkpoint: u64) -> Result<()> {
        let (due, later) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(id, _, _)| *id <= checkpoint);
        self.pending = later;
        let (due_success, later) = std::mem::take(&mut self.pending_success)
            .into_iter()
            .partition(|(id, _)| *id <= checkpoint);
        self.pending_success = later;
        let due: Vec<(u64, PathBuf, PathBuf)> = due;
        let due_success: Vec<(u64, PathBuf)> = due_success;
        if !due.is_empty() {
            tracing::info!(
                target: "weir::sink",
                path = %self.base.display(),
                checkpoint = (checkpoint != u64::MAX).then_some(checkpoint),
                files = due.len(),
                "files committed"
            );
        }
        for (_, tmp, target) in due {
            match std::fs::rename(&tmp, &target) {
                Ok(()) => {}
                Err(_) if target.is_file() && !tmp.exists() => {}
                Err(e) => {
                    return Err(WeirError::external(format!(
                        "cannot commit '{}': {e}",
                        target.display()
                    )));
                }
            }
        }
        for (_, f) in due_success {
            std::fs::write(&f, b"")
                .map_err(|e| WeirError::external(format!("cannot write '{}': {e}", f.display())))?;
        }
        Ok(())
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
            let seq = &mut self.next;
            // Job, run, subtask, checkpoint and sequence: no run ever writes a name that
            // another run (or job) wrote.
            let name = format!(
                "part-{}-{}-0-{}-{seq}.{}",
                self.job,
                self.run,
                self.checkpoint,
                self.format.prefix()
            );
            *seq += 1;
            let tmp = dir.join(format!(".{name}.inprogress"));
            let target = dir.join(&name);
            let f = File::create(&tmp).map_err(|e| {
                WeirError::user(format!("cannot write to '{}': {e}", tmp.display()))
            })?;
            let schema = self
                .data_schema
                .clone()
                .ok_or_else(|| WeirError::internal("sink not bound"))?;
            let writer = match self.format {
                Format::Parquet => {
                    FileWriter::Parquet(ArrowWriter::try_new(f, schema, Some(self.props.clone()))?)
                }
                Format::Csv => {
                    let (out, n) = Counting::new(f);
                    FileWriter::Csv(
                        Box::new(crate::format::encode::csv_writer(
                            out,
                            self.delimiter,
                            self.csv_header,
                        )),
                        n,
                    )
                }
                Format::Json => {
                    let (out, n) = Counting::new(f);
                    FileWriter::Json(self.json.writer(out), n)
                }
            };
            self.open.insert(
                partition.to_string(),
                OpenFile {
                    writer,
                    tmp,
                    target,
                    opened: Instant::now(),
                    written: Instant::now(),
                },
            );
        }
        self.open
            .get_mut(partition)
            .ok_or_else(|| WeirError::internal("sink file vanished"))
    }

    /// Commits partition `p`: closes its open file and writes its success file (with
    /// checkpoints, both wait for the next completed checkpoint).
    fn commit_partition(&mut self, p: &str) -> Result<()> {
        self.close_file(p)?;
        if let Some(name) = &self.commit.success_file {
            let dir = if p.is_empty() {
                self.base.clone()
            } else {
                self.base.join(p)
            };
            if self.checkpointing {
                self.pending_success.push((self.checkpoint, dir.join(name)));
            } else {
                std::fs::write(dir.join(name), b"").map_err(|e| {
                    WeirError::external(format!("cannot write '{}': {e}", dir.join(name).display()))
                })?;
            }
        }
        // Committed: the partition is forgotten until its next row.
        self.partitions.remove(p);
        Ok(())
    }

    /// Commits the partitions the trigger says are complete at `watermark` (or, for the
    /// processing-time trigger, now).
    fn commit_due(&mut self, watermark: Option<i64>) -> Result<()> {
        let delay = self.commit.delay;
        // Partition times are wall-clock text: the watermark meets them on the wall clock
        // of the watermark zone (UTC unless set).
        let watermark = match (watermark, &self.commit.watermark_zone) {
            (Some(w), Some(tz)) if w != i64::MAX && w != i64::MIN => {
                Some(crate::sql::local_time::local_millis(w, tz))
            }
            (w, _) => w,
        };
        let mut due: Vec<String> = vec![];
        for (key, st) in self.partitions.iter().filter(|(_, st)| st.dirty) {
            let ready = match (&self.commit.trigger, watermark) {
                (Trigger::ProcessTime, _) => {
                    self.commit.success_file.is_some() && st.first_row.elapsed() >= delay
                }
                (Trigger::PartitionTime(pattern, formatter), Some(w)) => {
                    // As Flink's extractor fails the job on a value it cannot read: the
                    // partition would never be committed.
                    let Some(t) = partition_time(pattern, formatter.as_deref(), &st.values) else {
                        let pattern = match pattern.as_str() {
                            "" => {
                                "its first value (no 'partition.time-extractor.timestamp-pattern')"
                                    .to_string()
                            }
                            p => format!("'partition.time-extractor.timestamp-pattern' = '{p}'"),
                        };
                        let format = match &self.commit.formatter_text {
                            Some(f) => {
                                format!("'partition.time-extractor.timestamp-formatter' = '{f}'")
                            }
                            None => "yyyy-MM-dd HH:mm:ss (or a date)".to_string(),
                        };
                        return Err(WeirError::user(format!(
                            "partition '{key}' gives no time: {pattern}, read by {format}, does not match"
                        ))
                        .with_hint(
                            "make the pattern of '$column's and the formatter match the partition values",
                        ));
                    };
                    // Flink's PartitionTimeCommitPredicate: the watermark past the time and
                    // the delay.
                    t.saturating_add(delay.as_millis() as i64) < w
                }
                (Trigger::PartitionTime(..), None) => false,
            };
            if ready {
                due.push(key.clone());
            }
        }
        for p in due {
            self.commit_partition(&p)?;
        }
        Ok(())
    }

    /// Closes partition `partition`'s open file: it is renamed into place now, or, with
    /// checkpoints, when the next checkpoint completes.
    fn close_file(&mut self, partition: &str) -> Result<()> {
        let Some(f) = self.open.remove(partition) else {
            return Ok(());
        };
        // Without a success file to write for it, a partition has nothing left to commit
        // once its file is closed: it is forgotten until its next row.
        if self.commit.success_file.is_none() {
            self.partitions.remove(partition);
        }
        let closed = f.writer.close().and_then(|file| {
            file.sync_all()
                .map_err(|e| WeirError::external(e.to_string()))
        });
        if let Err(e) = closed {
            // Never renamed into place: readers see no part of it, and it takes no space.
            let _ = std::fs::remove_file(&f.tmp);
            return Err(WeirError::external(format!(
                "cannot write '{}': {}",
                f.tmp.display(),
                e
            )));
        }
        if self.checkpointing {
            self.pending.push((self.checkpoint, f.tmp, f.target));
            return Ok(());
        }
        std::fs::rename(&f.tmp, &f.target).map_err(|e| {
            WeirError::external(format!("cannot commit '{}': {e}", f.target.display()))
        })?;
        Ok(())
    }

    /// How often the open files are checked against the rolling policy's times.
    fn tick_every(&self) -> Duration {
        self.check.min(self.rollover).min(self.inactivity)
    }

    /// Commits the files that have been open for the rollover interval or took no rows
    /// for the inactivity interval.
    fn roll_by_time(&mut self) -> Result<()> {
        if self.last_check.elapsed() < self.tick_every() {
            return Ok(());
        }
        self.last_check = Instant::now();
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| {
                f.opened.elapsed() >= self.rollover || f.written.elapsed() >= self.inactivity
            })
            .map(|(k, _)| k.clone())
            .collect();
        for p in due {
            self.close_file(&p)?;
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

impl Sink for PartitionedSink {
    /// Creates the folder. With checkpoints, first finishes the commit of the restored
    /// checkpoint (its pending files renamed, its success files written), then removes the
    /// in-progress files earlier runs of this job left (their rows come again from the
    /// restored positions).
    fn open(&mut self, ctx: &SinkContext) -> Result<()> {
        self.job = ctx.job.clone();
        self.run = ctx.run.clone();
        self.checkpointing = ctx.checkpointer.is_some();
        self.checkpoint = ctx.checkpointer.as_ref().map_or(0, |c| c.start_id() + 1);
        self.opened = true;
        std::fs::create_dir_all(&self.base).map_err(|e| {
            WeirError::user(format!(
                "cannot create the sink directory '{}': {e}",
                self.base.display()
            ))
        })?;
        if self.checkpointing {
            if let Some(state) = &ctx.restored {
                self.restore_pending(state)?;
                self.commit_pending()?;
            }
            clean_in_progress(&self.base, &self.job)?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<Vec<RecordBatch>>> {
        let open: Vec<String> = self.open.keys().cloned().collect();
        for p in open {
            self.close_file(&p)?;
        }
        // Everything closed since the last checkpoint is this one's.
        for (id, _, _) in &mut self.pending {
            *id = (*id).min(checkpoint);
        }
        for (id, _) in &mut self.pending_success {
            *id = (*id).min(checkpoint);
        }
        if self.checkpointing {
            self.checkpoint = self.checkpoint.max(checkpoint + 1);
        }
        Ok(Some(vec![self.pending_state()?]))
    }

    /// Commits what checkpoints up to `checkpoint` prepared: a late-data sink learns of
    /// completed checkpoints after the next may have been prepared.
    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        self.commit_through(checkpoint)
    }

    fn discard(&mut self) -> Result<()> {
        for (_, f) in self.open.drain() {
            drop(f.writer);
            let _ = std::fs::remove_file(&f.tmp);
        }
        for (_, tmp, _) in self.pending.drain(..) {
            let _ = std::fs::remove_file(&tmp);
        }
        self.pending_success.clear();
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.ensure_open()?;
        if batch.num_rows() == 0 {
            return self.roll_by_time();
        }
        self.bind(&batch.schema())?;
        let paths = self.partition_paths(batch)?;
        // Rows by partition, in the order of each partition's first row; an index finds a
        // partition's entry (a linear search was quadratic in a batch of many partitions).
        let mut groups: Vec<(String, Vec<u32>)> = vec![];
        let mut at: HashMap<String, usize> = HashMap::new();
        for (i, p) in paths.into_iter().enumerate() {
            match at.get(&p) {
                Some(&g) => groups[g].1.push(i as u32),
                None => {
                    at.insert(p.clone(), groups.len());
                    groups.push((p, vec![i as u32]));
                }
            }
        }
        for (p, idx) in &groups {
            let st = self
                .partitions
                .entry(p.clone())
                .or_insert_with(|| PartitionState {
                    values: vec![],
                    first_row: Instant::now(),
                    dirty: false,
                });
            if !st.dirty && st.values.is_empty() {
                st.values = self
                    .partition_cols
                    .iter()
                    .map(|(c, name)| {
                        let col = batch.column(*c);
                        let i = idx[0] as usize;
                        let v = if col.is_null(i) {
                            self.default_partition.clone()
                        } else {
                            ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())
                                .map(|f| f.value(i).to_string())
                                .unwrap_or_default()
                        };
                        (name.clone(), v)
                    })
                    .collect();
            }
            st.dirty = true;
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
                .ok_or_else(|| WeirError::internal("sink not bound"))?;
            let mut part = RecordBatch::try_new(schema, cols)?;
            if self.format == Format::Csv {
                part =
                    crate::format::encode::csv_ready(&part, &self.array_delimiter, &self.csv_null)?;
            }
            let size = self.file_size;
            let f = self.file_for(&p)?;
            if let Err(e) = f.writer.write(&part) {
                // A file that failed part-way (a full disk) is removed, not left to fill it.
                let tmp = f.tmp.clone();
                self.open.remove(&p);
                let _ = std::fs::remove_file(&tmp);
                return Err(WeirError::external(format!(
                    "cannot write '{}': {}",
                    tmp.display(),
                    e
                )));
            }
            f.written = Instant::now();
            if f.writer.size() >= size {
                self.close_file(&p)?;
            }
        }
        self.roll_by_time()?;
        self.commit_due(None)
    }

    fn on_watermark(&mut self, watermark: i64) -> Result<()> {
        self.roll_by_time()?;
        self.commit_due(Some(watermark))
    }

    fn on_tick(&mut self) -> Result<()> {
        self.roll_by_time()?;
        self.commit_due(None)
    }

    fn tick(&self) -> Option<Duration> {
        Some(self.tick_every())
    }

    fn finish(&mut self) -> Result<()> {
        self.ensure_open()?;
        let open: Vec<String> = self.open.keys().cloned().collect();
        for p in open {
            self.close_file(&p)?;
        }
        // The end of the input completes every partition.
        let dirty: Vec<String> = self
            .partitions
            .iter()
            .filter(|(_, st)| st.dirty)
            .map(|(k, _)| k.clone())
            .collect();
        for p in dirty {
            self.commit_partition(&p)?;
        }
        if self.checkpointing {
            // After the final checkpoint: the success files its commit queued.
            self.commit_pending()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};

    fn rows(v: &[i64], dt: &str, hm: &[&str]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("v", DataType::Int64, false),
                Field::new("dt", DataType::Utf8, false),
                Field::new("hm", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from(v.to_vec())),
                Arc::new(StringArray::from(vec![dt; v.len()])),
                Arc::new(StringArray::from(hm.to_vec())),
            ],
        )
        .expect("batch")
    }

    /// The committed CSV files and the success file of one partition folder.
    fn listing(dir: &Path) -> (usize, bool) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return (0, false);
        };
        let names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        (
            names.iter().filter(|n| n.starts_with("part-")).count(),
            names.iter().any(|n| n == "_SUCCESS"),
        )
    }

    /// Idle partitions keep no writer and no state: 10 000 partitions, 500 new ones a
    /// batch, with `sink.rolling-policy.inactivity-interval` of 20 ms, hold only
    /// the recent batches' files open (one writer per partition ever written stayed open
    /// before), and every row is in a committed file.
    #[test]
    fn idle_partitions_are_closed_and_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = Options::new();
        for (k, v) in [
            ("format", "csv"),
            ("sink.rolling-policy.inactivity-interval", "20ms"),
        ] {
            o.insert(k, v, None);
        }
        let mut sink =
            PartitionedSink::create(dir.path(), "q", &["p".to_string()], &o).expect("sink");
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("p", DataType::Utf8, false),
        ]));
        let mut most = 0;
        for b in 0..20i64 {
            let v: Vec<i64> = (b * 500..(b + 1) * 500).collect();
            let p: Vec<String> = v.iter().map(|i| format!("p{i}")).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(v)),
                    Arc::new(StringArray::from(p)),
                ],
            )
            .expect("batch");
            sink.write(&batch).expect("write");
            most = most.max(sink.open.len()).max(sink.partitions.len());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(most <= 5_000, "{most} partitions held at once");
        sink.finish().expect("finish");
        assert!(sink.open.is_empty() && sink.partitions.is_empty());
        let mut files = 0;
        for e in std::fs::read_dir(dir.path()).expect("dir").flatten() {
            let (n, _) = listing(&e.path());
            files += n;
        }
        assert_eq!(files, 10_000, "one committed file per partition");
    }

    #[test]
    fn partitions_commit_when_the_watermark_passes_their_time_and_delay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = Options::new();
        for (k, v) in [
            ("format", "csv"),
            ("sink.partition-commit.trigger", "partition-time"),
            ("sink.partition-commit.delay", "1 min"),
            ("sink.partition-commit.policy.kind", "success-file"),
            ("partition.time-extractor.timestamp-pattern", "$dt $hm:00"),
        ] {
            o.insert(k, v, None);
        }
        let mut sink =
            PartitionedSink::create(dir.path(), "q", &["dt".to_string(), "hm".to_string()], &o)
                .expect("sink");
        sink.write(&rows(
            &[1, 2, 3],
            "2026-01-01",
            &["00:01", "00:01", "00:02"],
        ))
        .expect("write");
        let one = dir.path().join("dt=2026-01-01/hm=00%3A01");
        let two = dir.path().join("dt=2026-01-01/hm=00%3A02");
        let at = |s: &str| {
            partition_time(
                "$dt $hm:00",
                None,
                &[("dt".into(), "2026-01-01".into()), ("hm".into(), s.into())],
            )
            .expect("time")
        };
        // 00:01 stands for 00:01:00; with the delay it is complete at 00:02:00.
        sink.on_watermark(at("00:01") + 59_999).expect("watermark");
        assert_eq!(listing(&one), (0, false), "not before its time");
        // Flink's predicate: the watermark past the time and the delay.
        sink.on_watermark(at("00:02")).expect("watermark");
        assert_eq!(listing(&one), (0, false), "not at its time plus the delay");
        sink.on_watermark(at("00:02") + 1).expect("watermark");
        assert_eq!(
            listing(&one),
            (1, true),
            "committed at its time plus the delay"
        );
        assert_eq!(listing(&two), (0, false), "the next minute is still open");
        // A late row reopens its partition in a new file, committed again at the end.
        sink.write(&rows(&[4], "2026-01-01", &["00:01"]))
            .expect("late row");
        sink.finish().expect("finish");
        assert_eq!(listing(&one), (2, true));
        assert_eq!(listing(&two), (1, true));
    }

    /// Flink's `partition.time-extractor.timestamp-formatter` (a Java pattern): the
    /// partition's values read with it, a date alone at midnight (DefaultPartTimeExtractor);
    /// `partition.time-extractor.kind` is 'default' or refused.
    #[test]
    fn the_partition_time_formatter_reads_the_values() {
        let day = |v: &str, f: &str| {
            partition_time(
                "$dt",
                Some(&crate::sql::functions::java_to_strftime(f)),
                &[("dt".into(), v.into())],
            )
        };
        let midnight = partition_time("$dt", None, &[("dt".into(), "2026-01-02".into())]);
        assert_eq!(day("20260102", "yyyyMMdd"), midnight);
        let at = partition_time(
            "$dt $h",
            Some(&crate::sql::functions::java_to_strftime("yyyyMMdd HH")),
            &[("dt".into(), "20260102".into()), ("h".into(), "05".into())],
        );
        assert_eq!(at, midnight.map(|m| m + 5 * 3_600_000));
        assert_eq!(day("2026-01-02", "yyyyMMdd"), None);
        let mut o = Options::new();
        o.insert("partition.time-extractor.kind", "custom", None);
        let err = commit_options(&o).err().expect("refused");
        assert!(err.to_string().contains("Java class"), "{err}");
        let mut o = Options::new();
        o.insert("partition.time-extractor.kind", "default", None);
        assert!(commit_options(&o).is_ok());
        let mut o = Options::new();
        o.insert("sink.partition-commit.trigger", "partition-time", None);
        o.insert(
            "partition.time-extractor.timestamp-formatter",
            "bogus{",
            None,
        );
        let err = commit_options(&o).err().expect("refused");
        assert!(err.to_string().contains("not a date pattern"), "{err}");
    }

    /// Flink's `sink.partition-commit.watermark-time-zone`: partition times are wall-clock
    /// text, so with a `TIMESTAMP_LTZ` rowtime in Shanghai the watermark (an instant) is
    /// read on Shanghai's clock — the 00:01 partition is complete when the watermark reaches
    /// 00:02 there, 16:02 UTC the day before; without the option, 8 hours later.
    #[test]
    fn the_watermark_time_zone_reads_the_watermark_on_the_partitions_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = Options::new();
        for (k, v) in [
            ("format", "csv"),
            ("sink.partition-commit.trigger", "partition-time"),
            ("sink.partition-commit.delay", "1 min"),
            ("sink.partition-commit.policy.kind", "success-file"),
            ("sink.partition-commit.watermark-time-zone", "Asia/Shanghai"),
            ("partition.time-extractor.timestamp-pattern", "$dt $hm:00"),
        ] {
            o.insert(k, v, None);
        }
        let mut sink =
            PartitionedSink::create(dir.path(), "q", &["dt".to_string(), "hm".to_string()], &o)
                .expect("sink");
        sink.write(&rows(&[1], "2026-01-01", &["00:01"]))
            .expect("write");
        let one = dir.path().join("dt=2026-01-01/hm=00%3A01");
        let local = partition_time(
            "$dt $hm:00",
            None,
            &[
                ("dt".into(), "2026-01-01".into()),
                ("hm".into(), "00:02".into()),
            ],
        )
        .expect("time");
        let eight_hours = 8 * 3_600_000;
        sink.on_watermark(local - eight_hours - 1)
            .expect("watermark");
        assert_eq!(listing(&one), (0, false), "not before 00:02 in Shanghai");
        sink.on_watermark(local - eight_hours + 1)
            .expect("watermark");
        assert_eq!(listing(&one), (1, true), "complete at 00:02 in Shanghai");

        let mut bad = Options::new();
        bad.insert("sink.partition-commit.watermark-time-zone", "PST", None);
        let err = commit_options(&bad).err().expect("refused");
        assert!(err.to_string().contains("is not a time zone"), "{err}");
    }
}
