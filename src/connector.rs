//! The connectors a table can name in `'connector' = '...'`, the options each accepts, and
//! how a table becomes a running source or sink.

use std::path::PathBuf;

use crate::error::{Result, WeirError, did_you_mean};
use crate::format::{Decoder, Format};
use crate::sink::Sink;
use crate::source::Source;
use crate::sql::catalog::TableDef;
use crate::sql::options::Options;

pub const SOURCES: &[&str] = &[
    "nexmark",
    "datagen",
    "filesystem",
    "stdin",
    "kafka",
    "upsert-kafka",
];
pub const SINKS: &[&str] = &["print", "blackhole", "filesystem", "kafka", "upsert-kafka"];
pub const ALL: &[&str] = &[
    "nexmark",
    "datagen",
    "filesystem",
    "stdin",
    "kafka",
    "upsert-kafka",
    "print",
    "blackhole",
];

/// The options `connector` accepts (with its format's), for validation and completion.
pub fn accepted_options(connector: &str, format: Option<Format>) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = vec!["connector"];
    match connector {
        "nexmark" => v.extend(crate::source::nexmark::OPTIONS),
        "datagen" => v.extend(crate::source::datagen::OPTIONS),
        "filesystem" => v.extend([
            "path",
            "format",
            "source.monitor-interval",
            "source.path.regex-pattern",
            "sink.rolling-policy.file-size",
            "sink.rolling-policy.rollover-interval",
            "sink.rolling-policy.inactivity-interval",
            "sink.rolling-policy.check-interval",
            "partition.default-name",
            "sink.partition-commit.trigger",
            "sink.partition-commit.delay",
            "sink.partition-commit.watermark-time-zone",
            "sink.partition-commit.policy.kind",
            "sink.partition-commit.success-file.name",
            "partition.time-extractor.timestamp-pattern",
            "partition.time-extractor.timestamp-formatter",
            "partition.time-extractor.kind",
            "partition.time-extractor.class",
        ]),
        "stdin" => v.extend(["format"]),
        "kafka" => {
            v.extend(crate::source::kafka::OPTIONS);
            // The key's format options (`key.json.*`, `key.csv.*`), as Flink names them; a
            // `kafka` table reads no key (its columns come from the value), and writes it
            // with the value's format options, as `upsert-kafka` does.
            v.extend(
                crate::sink::kafka::side_format_options()
                    .iter()
                    .filter(|o| o.starts_with("key.")),
            );
        }
        "upsert-kafka" => {
            v.extend(crate::sink::kafka::UPSERT_OPTIONS);
            v.extend(crate::sink::kafka::side_format_options());
        }
        "print" => v.extend(crate::sink::print::OPTIONS),
        "blackhole" => {}
        _ => {}
    }
    if let Some(f) = format {
        v.extend(f.options());
    }
    if SOURCES.contains(&connector) {
        // Where rows too late for their windows go and where records it cannot read go
        // (declared sink tables), and how long a silent source holds back a union's
        // watermark.
        v.extend([
            "late-data.sink",
            "dead-letter.sink",
            "scan.watermark.idle-timeout",
        ]);
    }
    v
}

fn format_of(def: &TableDef, options: &Options) -> Result<Option<Format>> {
    match def.connector.as_str() {
        "filesystem" | "stdin" => Format::parse(options, &def.name).map(Some),
        "kafka" if options.get("format") != Some("raw") => {
            Format::parse(options, &def.name).map(Some)
        }
        _ => Ok(None),
    }
}

/// Checks a table when it is created: a known connector, known options, usable metadata.
pub fn validate(def: &TableDef) -> Result<()> {
    if def.connector == "kafka" {
        let options = crate::source::kafka::value_format_options(&def.options)?;
        // A key read apart from the value: its fields and formats, checked now.
        crate::source::kafka::except_key_fields(def, &options)?;
        // Flink's `value.format` spelling of a `kafka` table's format, checked as `format`.
        if let std::borrow::Cow::Owned(options) = options {
            let mut d = def.clone();
            d.options = options;
            return validate(&d);
        }
    }
    if !ALL.contains(&def.connector.as_str()) {
        let mut e = WeirError::sql(
            format!("unknown connector '{}'", def.connector),
            def.options.pos("connector"),
        );
        e = match did_you_mean(&def.connector, ALL.iter().copied()) {
            Some(s) => e.with_hint(format!(
                "did you mean '{s}'? connectors: {}",
                ALL.join(", ")
            )),
            None => e.with_hint(format!("connectors: {}", ALL.join(", "))),
        };
        return Err(e);
    }
    let format = format_of(def, &def.options)?;
    def.options.validate(
        &def.name,
        &format!("connector '{}'", def.connector),
        &accepted_options(&def.connector, format),
    )?;
    if def.connector == "kafka" || def.connector == "upsert-kafka" {
        crate::source::kafka::check_metadata(def)?;
    } else if def.connector == "filesystem" {
        check_file_metadata(def)?;
    } else if let Some((col, key)) = def.metadata.first() {
        return Err(WeirError::sql(
            format!(
                "connector '{}' provides no metadata '{key}' (column '{col}')",
                def.connector
            ),
            Some(def.pos),
        ));
    }
    if def.connector == "filesystem" {
        def.options.require("path", &def.name)?;
        path_filter(def, &def.options)?;
        if monitor_interval(def, &def.options)?.is_some() && format == Some(Format::Parquet) {
            return Err(WeirError::sql(
                format!(
                    "table '{}': 'source.monitor-interval' is not supported for format 'parquet' yet",
                    def.name
                ),
                def.options.pos("source.monitor-interval"),
            )
            .with_hint("watch a folder of CSV or JSON lines, or read the Parquet files once"));
        }
    }
    // The format's options and the columns it can read, checked now rather than at the
    // first query (the decoder reads the columns that are not metadata).
    if let Some(f @ (Format::Csv | Format::Json)) = format {
        crate::format::Decoder::new(f, value_schema(def), &def.options)?;
        if f == Format::Json {
            crate::format::json_out::JsonWrite::from_options(&def.options)?;
            json_map_keys(def, &value_schema(def), "format")?;
        }
    }
    if let Some(name) = def.options.get("dead-letter.sink") {
        let pos = def.options.pos("dead-letter.sink");
        if name.trim().is_empty() {
            return Err(WeirError::sql(
                "'dead-letter.sink' is empty; it names the table that takes the records this source cannot read",
                pos,
            ));
        }
        // Only sources that decode text meet records they cannot read.
        if !matches!(format, Some(Format::Json | Format::Csv)) {
            return Err(WeirError::sql(
                format!(
                    "'dead-letter.sink' works with sources that decode JSON or CSV (filesystem, stdin, kafka); table '{}' reads {}",
                    def.name,
                    match format {
                        Some(f) => format!("format '{}'", f.prefix()),
                        None => format!("connector '{}'", def.connector),
                    }
                ),
                pos,
            ));
        }
    }
    if def.connector == "upsert-kafka" {
        for side in ["value.format", "key.format"] {
            if def.options.get(side) == Some("json") {
                json_map_keys(def, &def.physical, side)?;
            }
        }
        crate::sink::kafka::check_upsert_table(def)?;
        // Its key's and value's format options, checked now (nothing connects yet).
        crate::source::kafka::KafkaSource::new_upsert(def, &def.options, 1)?;
    }
    if def.connector == "nexmark" {
        crate::source::nexmark::NexmarkConfig::from_options(&def.options)?;
    }
    Ok(())
}

/// Refuses a column of `schema` that is or holds a MAP whose keys are not strings, for a
/// table whose `option` names the `json` format: a JSON object's keys are strings, and
/// Flink's `json` format refuses other MAP keys, reading and writing (its
/// `JsonToRowDataConverters`). The error points at `option`.
fn json_map_keys(
    def: &TableDef,
    schema: &datafusion::arrow::datatypes::Schema,
    option: &str,
) -> Result<()> {
    let Some(field) = schema
        .fields()
        .iter()
        .find(|f| crate::format::nested::holds_non_string_map_key(f.data_type()))
    else {
        return Ok(());
    };
    Err(WeirError::sql(
        format!(
            "table '{}': the 'json' format does not support a MAP whose keys are not strings: column '{}' is {}",
            def.name,
            field.name(),
            crate::sql::types::flink_type_name(field.data_type())
        ),
        def.options.pos(option).or(Some(def.pos)),
    )
    .with_hint("declare it MAP<STRING, …> (a JSON object's keys are text)"))
}

/// Checks the option values the `datagen` generator parses, when a statement writes them
/// (`CREATE TABLE`, `ALTER TABLE … SET`), so an error points at that statement rather than
/// at a query reading the table, maybe in another file ([`validate`] checks `nexmark`'s).
/// Not after `ALTER TABLE` changes columns: Flink keeps a dropped or renamed column's
/// `fields.<name>.*` options, which fail the next query that reads the table. Errors: the
/// first bad option, at its position.
pub fn validate_generator(def: &TableDef) -> Result<()> {
    if def.connector == "datagen" && def.memory.is_none() {
        crate::source::datagen::DatagenSource::new(
            def.physical.clone(),
            &def.options,
            &def.name,
            1,
        )?;
    }
    Ok(())
}

/// The columns a table's records hold: its physical columns that are not metadata, nor
/// (for a `filesystem` table) partition columns, which its folders hold (the filesystem
/// sink writes the other columns into the files).
fn value_schema(def: &TableDef) -> datafusion::arrow::datatypes::SchemaRef {
    let in_folders =
        |name: &str| def.connector == "filesystem" && def.partitioned_by.iter().any(|p| p == name);
    std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(
        def.physical
            .fields()
            .iter()
            .filter(|f| !def.metadata.iter().any(|(c, _)| c == f.name()))
            .filter(|f| !in_folders(f.name()))
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ))
}

/// Checks a `filesystem` table's metadata columns: keys it supplies (Flink's
/// `file.path`, `file.name`, `file.size`, `file.modification-time`) and types they can be
/// cast to. Errors name the column and the key; a sink leaves metadata columns unwritten.
fn check_file_metadata(def: &TableDef) -> Result<()> {
    use crate::source::filesystem::{METADATA, metadata_type};
    for (col, key) in &def.metadata {
        let Some(native) = metadata_type(key) else {
            let e = WeirError::sql(
                format!("connector 'filesystem' provides no metadata '{key}' (column '{col}')"),
                Some(def.pos),
            );
            return Err(
                match crate::error::did_you_mean(key, METADATA.iter().copied()) {
                    Some(s) => e.with_hint(format!(
                        "did you mean '{s}'? metadata: {}",
                        METADATA.join(", ")
                    )),
                    None => e.with_hint(format!("metadata: {}", METADATA.join(", "))),
                },
            );
        };
        let declared = def
            .physical
            .field_with_name(col)
            .map(|f| f.data_type().clone())
            .map_err(|_| WeirError::internal(format!("no column '{col}'")))?;
        if !datafusion::arrow::compute::can_cast_types(&native, &declared) {
            return Err(WeirError::sql(
                format!("metadata '{key}' is {native}; column '{col}' is {declared}"),
                Some(def.pos),
            ));
        }
    }
    Ok(())
}

/// The options that say what a table is — its connector, format and where its data is —
/// which a session `SET` never changes (a table's own `WITH` clause, or `ALTER TABLE …
/// SET`, does): [`crate::session::Session::set`] refuses them.
pub const TABLE_IDENTITY_OPTIONS: &[&str] = &[
    "connector",
    "format",
    "key.format",
    "value.format",
    "path",
    "topic",
    "topic-pattern",
    // Whether a filesystem table is a stream is the table's own (the planner decides by
    // it whether a lookup join can read it whole).
    "source.monitor-interval",
];

/// The table's options with session `SET` overrides applied: a session key that the
/// table's connector accepts replaces the table's value (so `weir run --set
/// 'events.num=1000'` bounds every Nexmark source of a script), except the
/// [`TABLE_IDENTITY_OPTIONS`].
pub fn effective_options(
    def: &TableDef,
    settings: &[(String, String)],
    origins: &std::collections::BTreeMap<String, String>,
) -> Result<Options> {
    // A `kafka` table's `value.format` read as its `format` (Flink's two names of it).
    let mut o = match def.connector.as_str() {
        "kafka" => crate::source::kafka::value_format_options(&def.options)?.into_owned(),
        _ => def.options.clone(),
    };
    let format = format_of(def, &o)?;
    let accepted = accepted_options(&def.connector, format);
    for (k, v) in settings {
        if !TABLE_IDENTITY_OPTIONS.contains(&k.as_str()) && accepted.contains(&k.as_str()) {
            let origin = origins
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("SET '{k}' = '{v}'"));
            o.insert_setting(k, v, &origin);
        }
    }
    Ok(o)
}

/// A `filesystem` table's `source.monitor-interval` (Flink's option: how often the path is
/// listed again for new files, which makes the table a stream); None when unset. Errors: a
/// value that is no duration, or zero.
pub(crate) fn monitor_interval(
    def: &TableDef,
    options: &Options,
) -> Result<Option<std::time::Duration>> {
    let key = "source.monitor-interval";
    match options.duration_opt(key)? {
        Some(d) if d.is_zero() => Err(WeirError::user(format!(
            "table '{}': option '{key}' must be greater than 0",
            def.name
        ))
        .with_hint("'source.monitor-interval' = '10 s' lists the path again every 10 seconds")),
        d => Ok(d),
    }
}

/// A `filesystem` table's `source.path.regex-pattern` (Flink's option): the files under
/// its path it reads, those whose absolute path the pattern matches whole. Errors: a
/// pattern that is no regular expression (at the option).
pub(crate) fn path_filter(
    def: &TableDef,
    options: &Options,
) -> Result<crate::source::filesystem::PathFilter> {
    let key = "source.path.regex-pattern";
    crate::source::filesystem::PathFilter::new(options.get(key)).map_err(|e| {
        WeirError::sql(
            format!("table '{}': option '{key}' is not a regular expression: {e}", def.name),
            options.pos(key),
        )
        .with_hint("the pattern is matched against each file's whole absolute path, such as '.*/2026-.*\\.csv'")
    })
}

/// The source of a `filesystem` table of CSV or JSON lines (`options`: the table's,
/// with session overrides), `batch_size` lines a batch; its metadata columns and partition
/// folders filled in.
pub(crate) fn file_source(
    def: &TableDef,
    options: &Options,
    batch_size: usize,
) -> Result<crate::source::filesystem::FileSource> {
    let format = Format::parse(options, &def.name)?;
    let path = local_path(options.require("path", &def.name)?);
    crate::source::filesystem::list_files(&path)?;
    let decoder = Decoder::new(format, value_schema(def), options)?;
    Ok(
        crate::source::filesystem::FileSource::new(path, decoder, batch_size)
            .with_columns(
                def.physical.clone(),
                def.metadata.clone(),
                def.partitioned_by.clone(),
            )
            .monitor(monitor_interval(def, options)?)
            .matching(path_filter(def, options)?),
    )
}

pub fn build_source(
    def: &TableDef,
    options: &Options,
    batch_size: usize,
) -> Result<Box<dyn Source>> {
    if let Some(batches) = &def.memory {
        return Ok(Box::new(crate::source::memory::MemorySource::new(
            batches.clone(),
        )));
    }
    match def.connector.as_str() {
        "nexmark" => {
            let cfg = crate::source::nexmark::NexmarkConfig::from_options(options)?;
            Ok(Box::new(crate::source::nexmark::NexmarkSource::new(
                cfg,
                def.physical.clone(),
                batch_size,
            )?))
        }
        "datagen" => Ok(Box::new(crate::source::datagen::DatagenSource::new(
            def.physical.clone(),
            options,
            &def.name,
            batch_size,
        )?)),
        "filesystem" => {
            let format = Format::parse(options, &def.name)?;
            let path = local_path(options.require("path", &def.name)?);
            crate::source::filesystem::list_files(&path)?;
            if format == Format::Parquet && monitor_interval(def, options)?.is_some() {
                return Err(WeirError::user(format!(
                    "table '{}': 'source.monitor-interval' is not supported for format 'parquet' yet",
                    def.name
                ))
                .with_hint("watch a folder of CSV or JSON lines, or read the Parquet files once"));
            }
            if format == Format::Parquet {
                let time_col = def
                    .watermark
                    .as_ref()
                    .map(|w| w.column.clone())
                    .filter(|c| def.physical.index_of(c).is_ok());
                return Ok(Box::new(
                    crate::source::parquet::ParquetSource::new(
                        path,
                        def.physical.clone(),
                        def.partitioned_by.clone(),
                        time_col,
                        batch_size,
                    )
                    .with_metadata(def.metadata.clone())
                    .matching(path_filter(def, options)?),
                ));
            }
            Ok(Box::new(file_source(def, options, batch_size)?))
        }
        "kafka" => Ok(Box::new(crate::source::kafka::KafkaSource::for_table(
            def, options, batch_size,
        )?)),
        "upsert-kafka" => Ok(Box::new(crate::source::kafka::KafkaSource::new_upsert(
            def, options, batch_size,
        )?)),
        "stdin" => {
            let format = Format::parse(options, &def.name)?;
            let decoder = Decoder::new(format, def.physical.clone(), options)?;
            Ok(Box::new(crate::source::stdin::StdinSource::new(
                decoder, batch_size,
            )))
        }
        other => Err(WeirError::user(format!(
            "table '{}' (connector '{other}') cannot be read; source connectors: {}",
            def.name,
            SOURCES.join(", ")
        ))),
    }
}

pub fn build_sink(def: &TableDef, options: &Options, part_name: &str) -> Result<Box<dyn Sink>> {
    match def.connector.as_str() {
        "print" => Ok(Box::new(crate::sink::print::PrintSink::new(
            options.get("print-identifier"),
            options.bool_or("standard-error", false)?,
        ))),
        "blackhole" => Ok(Box::new(crate::sink::blackhole::BlackholeSink)),
        "kafka" => Ok(Box::new(
            crate::sink::kafka::KafkaSink::create(&def.name, options)?.with_metadata(def),
        )),
        "upsert-kafka" => Ok(Box::new(
            crate::sink::kafka::KafkaSink::create_upsert(def, options)?.with_metadata(def),
        )),
        "filesystem" => {
            let path = local_path(options.require("path", &def.name)?);
            Ok(Box::new(crate::sink::partitioned::PartitionedSink::create(
                &path,
                part_name,
                &def.partitioned_by,
                options,
            )?))
        }
        other => Err(WeirError::user(format!(
            "table '{}' (connector '{other}') cannot be written; sink connectors: {}",
            def.name,
            SINKS.join(", ")
        ))),
    }
}

/// A `filesystem` table's path on this machine: a plain path, or a `file://` URL as Flink
/// writes them.
pub fn local_path(path: &str) -> PathBuf {
    PathBuf::from(path.strip_prefix("file://").unwrap_or(path))
}
