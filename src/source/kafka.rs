//! The `kafka` source: topics read through librdkafka (rdkafka).
//!
//! Two ways to read, as Flink's options choose:
//! - **Group subscription** (`scan.startup.mode` = `group-offsets`, unbounded): the consumer
//!   joins `properties.group.id` and the group spreads the partitions over its members.
//!   When a rebalance takes partitions away, the positions reached in them are committed
//!   first, so their next owner continues exactly where this one stopped.
//! - **Assignment** (every other mode, and every bounded read): all partitions of the
//!   topics are read by this consumer from the startup position; a bounded read ends when
//!   every partition reaches its end offset.
//!
//! Each partition has its own watermark and the source's is their minimum. A partition
//! that has sent nothing for `scan.watermark.idle-timeout` (or the session's
//! `table.exec.source.idle-timeout`) stops holding it back until its next message.
//!
//! Backpressure: the channel downstream is bounded, so a slow query blocks this thread;
//! it then stops polling and librdkafka stops fetching once its queue
//! (`queued.max.messages.kbytes`, 16 MiB here unless set) is full. Consumed offsets are
//! committed to the group as Flink does without checkpoints. Transient broker errors are
//! logged and the client reconnects; only errors that cannot heal fail the query.
//!
//! The `upsert-kafka` source reads a topic as a changelog, as Flink's does: the message
//! key (`key.format`) holds the primary key's columns, a value (`value.format`) is an
//! upsert of that key (`+I` here; [`crate::operator::normalize`] makes `+I`/`-U`/`+U` of
//! it), and a tombstone (a message without a value) deletes the key (`-D`, the key's
//! columns set, the others NULL). It always starts at the earliest offset (Flink's
//! upsert-kafka takes no startup mode: the whole topic is the table).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message as _, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{Result, WeirError};
use crate::format::{Decoder, Format};
use crate::source::{Source, SourceContext};
use crate::sql::options::Options;

/// Options of the kafka connector besides `properties.*` and the format's.
pub const OPTIONS: &[&str] = &[
    "topic",
    "topic-pattern",
    "properties.bootstrap.servers",
    "properties.group.id",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.startup.specific-offsets",
    "scan.bounded.mode",
    "scan.bounded.timestamp-millis",
    "scan.bounded.specific-offsets",
    "format",
    "value.format",
    "value.fields-include",
    "key.format",
    "key.fields",
    "sink.partitioner",
    "sink.delivery-guarantee",
    "properties.",
];

/// The metadata a kafka table can declare (`col TYPE METADATA FROM 'key' VIRTUAL`).
pub const METADATA: &[&str] = &[
    "topic",
    "partition",
    "offset",
    "timestamp",
    "timestamp-type",
    "headers",
    "leader-epoch",
    "key",
];

/// One message's headers in order: key and value (None: a header without a value).
pub type HeaderList = Vec<(String, Option<Vec<u8>>)>;

/// The headers of a consumed message, copied. A key that is not UTF-8 is read with
/// replacement characters, as Flink decodes it (rdkafka's own `Headers::iter` panics on
/// one, so librdkafka is asked directly).
fn header_list(h: Option<&rdkafka::message::BorrowedHeaders>) -> HeaderList {
    use rdkafka::message::Headers;
    let Some(h) = h else {
        return vec![];
    };
    let native = h as *const rdkafka::message::BorrowedHeaders
        as *const rdkafka::bindings::rd_kafka_headers_t;
    (0..h.count())
        .filter_map(|idx| {
            let mut name: *const std::ffi::c_char = std::ptr::null();
            let mut value: *const std::ffi::c_void = std::ptr::null();
            let mut size = 0usize;
            // SAFETY: `native` is the librdkafka headers object `h` stands for (rdkafka's
            // `BorrowedHeaders` is that pointer, as its own methods cast it), alive while
            // the message is borrowed; `idx` is below its count. librdkafka then points
            // `name` at a NUL-terminated string and `value` at `size` bytes (or null), both
            // owned by the headers object, and they are copied before `h` goes.
            let err = unsafe {
                rdkafka::bindings::rd_kafka_header_get_all(
                    native, idx, &mut name, &mut value, &mut size,
                )
            };
            if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                || name.is_null()
            {
                return None;
            }
            // SAFETY: as above.
            let key = unsafe { std::ffi::CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned();
            let bytes = (!value.is_null())
                // SAFETY: as above: `size` bytes at `value`.
                .then(|| unsafe { std::slice::from_raw_parts(value as *const u8, size) }.to_vec());
            Some((key, bytes))
        })
        .collect()
}

/// Messages' headers as a `MAP<STRING, BYTES>` column of type `data_type` (Flink's
/// `headers` metadata): one entry per key, in order; of a key repeated the last value
/// counts, as Flink's map of the headers keeps it; a header without a value maps to NULL.
/// Errors: `data_type` is no such map.
pub fn headers_column(rows: &[&HeaderList], data_type: &DataType) -> Result<ArrayRef> {
    use datafusion::arrow::array::{BinaryBuilder, MapBuilder, MapFieldNames, StringBuilder};
    let DataType::Map(entries, _) = data_type else {
        return Err(WeirError::internal(format!(
            "headers are a map, not {data_type}"
        )));
    };
    let DataType::Struct(kv) = entries.data_type() else {
        return Err(WeirError::internal("a map's entries are a struct"));
    };
    let [k, v] = kv.iter().collect::<Vec<_>>()[..] else {
        return Err(WeirError::internal("a map's entries are a key and a value"));
    };
    let names = MapFieldNames {
        entry: entries.name().clone(),
        key: k.name().clone(),
        value: v.name().clone(),
    };
    let mut b = MapBuilder::new(Some(names), StringBuilder::new(), BinaryBuilder::new())
        .with_values_field(v.clone());
    for h in rows {
        for (i, (key, value)) in h.iter().enumerate() {
            if h[i + 1..].iter().any(|(later, _)| later == key) {
                continue;
            }
            b.keys().append_value(key);
            match value {
                Some(x) => b.values().append_value(x),
                None => b.values().append_null(),
            }
        }
        b.append(true)?;
    }
    let map: ArrayRef = Arc::new(b.finish());
    // The declared key field may differ in nullability only.
    if map.data_type() == data_type {
        Ok(map)
    } else {
        Ok(cast(&map, data_type)?)
    }
}

/// Where reading starts.
#[derive(Debug, Clone)]
enum Startup {
    Earliest,
    Latest,
    Group,
    Timestamp(i64),
    Specific(HashMap<i32, i64>),
}

/// Where a bounded read ends.
#[derive(Debug, Clone)]
enum Bound {
    Unbounded,
    Latest,
    Group,
    Timestamp(i64),
    Specific(HashMap<i32, i64>),
}

/// Which topics: a list, or every topic whose whole name matches a pattern.
#[derive(Debug, Clone)]
enum Topics {
    Names(Vec<String>),
    Pattern(String, regex::Regex),
}

/// A metadata column: its index in the physical schema, its key and its declared type.
#[derive(Debug, Clone)]
struct MetaColumn {
    index: usize,
    key: String,
    data_type: DataType,
}

pub struct KafkaSource {
    /// The source table's name (a label of the consumer-lag metric).
    table: String,
    config: ClientConfig,
    servers: String,
    topics: Topics,
    startup: Startup,
    bound: Bound,
    decoder: Option<Decoder>,
    /// The physical schema: value columns and metadata columns in declared order.
    schema: SchemaRef,
    /// The columns the message value holds (the physical ones that are not metadata).
    value_schema: SchemaRef,
    meta: Vec<MetaColumn>,
    batch_size: usize,
    idle_timeout: Option<Duration>,
    /// How long the broker may stay unreachable at start before the query fails.
    connect_timeout: Duration,
    /// With checkpoints: the next offset of each partition after the last emitted batch
    /// (what a checkpoint saves), the offsets restored, and the offsets of each checkpoint
    /// not yet committed to the group.
    positions: Vec<(String, i32, i64)>,
    restored: Option<HashMap<(String, i32), i64>>,
    uncommitted: BTreeMap<u64, Vec<(String, i32, i64)>>,
    /// `upsert-kafka`, and a `kafka` table whose value leaves the key's columns out: how
    /// keys are read and rows assembled.
    keyed: Option<KeyRead>,
}

/// How a source reads its message keys (Flink's `key.format`, `key.fields`,
/// `value.fields-include`): every `upsert-kafka` source, and a `kafka` source with
/// `'value.fields-include' = 'EXCEPT_KEY'`.
struct KeyRead {
    /// Decodes message keys into the key's columns, in key order.
    key_decoder: Decoder,
    /// The physical index of each key column, in key order.
    key_columns: Vec<usize>,
    /// `'value.fields-include' = 'EXCEPT_KEY'`: the value holds the other columns only
    /// and the key's come from the message key; `ALL`: the value holds every column.
    except_key: bool,
    /// `upsert-kafka`: the rows are a changelog (`+I` per value, `-D` per tombstone);
    /// `kafka`: plain rows, a tombstone skipped and counted.
    changelog: bool,
}

/// The options of a format read from an `upsert-kafka` table's `<side>.<format>.*`
/// options (`value.json.ignore-parse-errors`, Flink's names), keyed as the format reads
/// them (`json.ignore-parse-errors`), with `format` set to it.
pub(crate) fn side_options(options: &Options, side: &str, format: Format) -> Options {
    let mut o = Options::new();
    let prefix = format!("{side}.{}.", format.prefix());
    for (k, v) in options.iter() {
        if let Some(rest) = k.strip_prefix(&prefix) {
            o.insert(format!("{}.{rest}", format.prefix()), v, options.pos(k));
        }
    }
    o.insert(
        "format",
        format.prefix(),
        options.pos(&format!("{side}.format")),
    );
    o
}

/// A `kafka` table's options with Flink's other spelling of its value format read as the
/// first: `'value.format' = 'json'` and its `value.json.*` options become `format` and
/// `json.*` (Flink's Kafka connector: "either 'format' or 'value.format' is required", the
/// latter's options prefixed with `value.`), and `'value.fields-include' = 'ALL'` (Flink's
/// default: the value holds every column) is dropped. Options without either come back as
/// they are.
///
/// `'value.fields-include' = 'EXCEPT_KEY'` stays, for the source and the sink (see
/// [`except_key_fields`]).
///
/// Errors: both `format` and `value.format`; a `value.fields-include` other than `ALL`
/// and `EXCEPT_KEY`; a `key.json.*`/`key.csv.*` option that would change how the key is
/// written (the key follows the value's options).
pub fn value_format_options(options: &Options) -> Result<std::borrow::Cow<'_, Options>> {
    // The key's own format options: those for reading act where the key is read
    // (`EXCEPT_KEY`; with `ALL` the value's copy of the key's columns is read, as Flink's
    // source lets the value's win); the key is written with the value's format options,
    // so one that would change the key's text is refused rather than ignored.
    for (k, _) in options.iter() {
        let Some(option) = k
            .strip_prefix("key.json.")
            .or_else(|| k.strip_prefix("key.csv."))
        else {
            continue;
        };
        if ![
            "ignore-parse-errors",
            "fail-on-missing-field",
            "allow-comments",
        ]
        .contains(&option)
        {
            return Err(WeirError::sql(
                format!("'{k}' is not supported by connector 'kafka' yet: its key is written with the value's format options"),
                options.pos(k),
            )
            .with_hint("leave it out, or write the key in the value's format, whose options it follows"));
        }
    }
    if options.get("value.format").is_none() && options.get("value.fields-include").is_none() {
        return Ok(std::borrow::Cow::Borrowed(options));
    }
    let mut out = options.clone();
    let mut changed = false;
    if let Some(format) = options.get("value.format") {
        changed = true;
        if options.get("format").is_some() {
            return Err(WeirError::sql(
                "give 'format' or 'value.format' (the same option, as in Flink), not both",
                options.pos("value.format"),
            ));
        }
        // The format's own options only: another `value.…` key stays as written, so the
        // check of the table's options names it as the user wrote it.
        let known: &[&str] = match format {
            "json" => Format::Json.options(),
            "csv" => Format::Csv.options(),
            _ => &[],
        };
        let prefix = format!("value.{format}.");
        for (k, v) in options.iter() {
            if let Some(rest) = k.strip_prefix(&prefix)
                && let as_format = format!("{format}.{rest}")
                && known.contains(&as_format.as_str())
            {
                out.remove(k);
                out.insert(as_format, v, options.pos(k));
            }
        }
        out.remove("value.format");
        out.insert("format", format, options.pos("value.format"));
    }
    match options.get("value.fields-include") {
        None => {}
        Some(v) if v.trim().eq_ignore_ascii_case("ALL") => {
            out.remove("value.fields-include");
            changed = true;
        }
        // Kept: the source and the sink read it (see `except_key_fields`).
        Some(v) if v.trim().eq_ignore_ascii_case("EXCEPT_KEY") => {}
        Some(v) => {
            return Err(WeirError::sql(
                format!("'value.fields-include' = '{v}' is not a choice"),
                options.pos("value.fields-include"),
            )
            .with_hint("valid values: 'ALL' (the default), 'EXCEPT_KEY'"));
        }
    }
    Ok(match changed {
        true => std::borrow::Cow::Owned(out),
        false => std::borrow::Cow::Borrowed(options),
    })
}

/// Whether a `kafka` table's value leaves the key's columns out
/// (`'value.fields-include' = 'EXCEPT_KEY'`, in any case).
pub fn value_excludes_key(options: &Options) -> bool {
    options
        .get("value.fields-include")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("EXCEPT_KEY"))
}

/// A key read apart from the value: the value's and the key's formats, and the physical
/// index of each key column, in `key.fields` order.
pub type KeyApart = ((Format, Format), Vec<usize>);

/// A `kafka` table's value and key formats and the physical indexes of its `key.fields`
/// columns (in their order) when `'value.fields-include' = 'EXCEPT_KEY'` (checked by
/// [`value_format_options`]) leaves them out of the value; None for `ALL`, the default.
/// Errors: EXCEPT_KEY without `key.format` or `key.fields`, a key format or a value
/// format other than json and csv, a key field that is not a physical column, and every
/// column a key field (the value would hold nothing).
pub fn except_key_fields(
    def: &crate::sql::catalog::TableDef,
    options: &Options,
) -> Result<Option<KeyApart>> {
    if !value_excludes_key(options) {
        return Ok(None);
    }
    let pos = options.pos("value.fields-include");
    let side = |key: &str| -> Result<Format> {
        match options.get(key) {
            Some(_) => crate::sink::kafka::message_format(options, key, &def.name),
            None => Err(WeirError::sql(
                format!("'value.fields-include' = 'EXCEPT_KEY' needs '{key}'"),
                pos,
            )
            .with_hint("the key's columns are read from the message key: give 'key.format' and 'key.fields' = 'col1;col2'")),
        }
    };
    let value_format = side("format")?;
    let key_format = side("key.format")?;
    let Some(fields) = options.get("key.fields") else {
        return Err(WeirError::sql(
            "'value.fields-include' = 'EXCEPT_KEY' needs 'key.fields'",
            pos,
        )
        .with_hint("name the columns the message key holds: 'key.fields' = 'col1;col2'"));
    };
    let mut columns = vec![];
    for name in fields.split(';').map(str::trim) {
        let Some(i) = def
            .physical
            .fields()
            .iter()
            .position(|f| f.name() == name && !def.metadata.iter().any(|(c, _)| c == name))
        else {
            return Err(WeirError::sql(
                format!(
                    "'key.fields' names '{name}', which is not a physical column of '{}'",
                    def.name
                ),
                options.pos("key.fields"),
            ));
        };
        columns.push(i);
    }
    let value_columns = def.physical.fields().len() - def.metadata.len();
    if columns.len() >= value_columns {
        return Err(WeirError::sql(
            "'value.fields-include' = 'EXCEPT_KEY' with every column in 'key.fields' leaves the value nothing to hold",
            pos,
        )
        .with_hint("use 'ALL', or leave a column out of 'key.fields'"));
    }
    Ok(Some(((value_format, key_format), columns)))
}

/// Per line of a decode: the row of `decoded`'s batch it gave, if any.
fn rows_by_line(lines: usize, decoded: &crate::format::decode::Decoded) -> Vec<Option<u32>> {
    let rows = decoded.batch.as_ref().map_or(0, |b| b.num_rows());
    let mut out = vec![None; lines];
    match &decoded.kept {
        Some(kept) => {
            for (row, &line) in kept.iter().enumerate() {
                if let Some(slot) = out.get_mut(line) {
                    *slot = u32::try_from(row).ok();
                }
            }
        }
        None => {
            for (row, slot) in out.iter_mut().enumerate().take(rows) {
                *slot = u32::try_from(row).ok();
            }
        }
    }
    out
}

/// The librdkafka configuration of a table: every `properties.*` option.
pub fn client_config(options: &Options) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in options.iter() {
        if let Some(p) = k.strip_prefix("properties.") {
            c.set(p, v);
        }
    }
    c
}

/// The values of `config`'s sensitive properties ([`crate::sql::options::is_sensitive`]),
/// to scrub from what the client says.
pub fn secrets(config: &ClientConfig) -> Vec<String> {
    let mut out: Vec<String> = config
        .config_map()
        .iter()
        .filter(|(k, v)| crate::sql::options::is_sensitive(k) && !v.is_empty())
        .map(|(_, v)| v.to_string())
        .collect();
    // Longest first: a secret that contains another (`admin123`, `admin`) goes whole.
    out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    out.dedup();
    out
}

/// `text` with every one of `secrets` replaced by `******`.
pub fn scrub(secrets: &[String], text: &str) -> String {
    let mut out = text.to_string();
    for s in secrets {
        out = out.replace(s.as_str(), "******");
    }
    out
}

/// `e` (a client error) as text, scrubbed of `config`'s secrets: librdkafka quotes the
/// values it rejects.
pub fn scrubbed(config: &ClientConfig, e: &dyn std::fmt::Display) -> String {
    scrub(&secrets(config), &e.to_string())
}

/// A librdkafka log line, scrubbed of `secrets` (its configuration warnings quote values),
/// at the level librdkafka gave it (as rdkafka's default `ClientContext::log`).
pub fn log_scrubbed(
    secrets: &[String],
    level: rdkafka::config::RDKafkaLogLevel,
    fac: &str,
    message: &str,
) {
    use rdkafka::config::RDKafkaLogLevel as L;
    let message = scrub(secrets, message);
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!(target: "librdkafka", "librdkafka: {fac} {message}")
        }
        L::Warning => tracing::warn!(target: "librdkafka", "librdkafka: {fac} {message}"),
        L::Notice | L::Info => tracing::info!(target: "librdkafka", "librdkafka: {fac} {message}"),
        L::Debug => tracing::debug!(target: "librdkafka", "librdkafka: {fac} {message}"),
    }
}

pub fn topics(options: &Options, table: &str) -> Result<Vec<String>> {
    Ok(options
        .require("topic", table)?
        .split(';')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect())
}

/// Flink's `partition:0,offset:42;partition:1,offset:300`.
fn specific_offsets(options: &Options, key: &str) -> Result<HashMap<i32, i64>> {
    let text = options.get(key).ok_or_else(|| {
        WeirError::sql(
            format!("mode 'specific-offsets' needs '{key}'"),
            options.pos(key.replace("specific-offsets", "mode").as_str()),
        )
        .with_hint(format!(
            "'{key}' = 'partition:0,offset:42;partition:1,offset:300'"
        ))
    })?;
    let bad = |what: &str| {
        WeirError::sql(format!("option '{key}': {what}"), options.pos(key))
            .with_hint("write 'partition:0,offset:42;partition:1,offset:300'")
    };
    let mut out = HashMap::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for kv in part.split(',') {
            match kv.trim().split_once(':') {
                Some(("partition", v)) => {
                    partition = Some(
                        v.trim()
                            .parse::<i32>()
                            .map_err(|_| bad(&format!("'{v}' is not a partition number")))?,
                    )
                }
                Some(("offset", v)) => {
                    offset = Some(
                        v.trim()
                            .parse::<i64>()
                            .map_err(|_| bad(&format!("'{v}' is not an offset")))?,
                    )
                }
                _ => return Err(bad(&format!("cannot read '{}'", kv.trim()))),
            }
        }
        match (partition, offset) {
            (Some(p), Some(o)) => {
                out.insert(p, o);
            }
            _ => return Err(bad(&format!("'{part}' needs both partition and offset"))),
        }
    }
    Ok(out)
}

impl KafkaSource {
    pub fn new(
        table: &str,
        options: &Options,
        schema: SchemaRef,
        metadata: &[(String, String)],
        batch_size: usize,
    ) -> Result<Self> {
        let servers = options
            .require("properties.bootstrap.servers", table)?
            .to_string();
        let topics = match (options.get("topic"), options.get("topic-pattern")) {
            (Some(_), Some(_)) => {
                return Err(WeirError::sql(
                    "give 'topic' or 'topic-pattern', not both",
                    options.pos("topic-pattern"),
                ));
            }
            (None, Some(p)) => {
                let re = regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    WeirError::sql(
                        format!("'topic-pattern' is not a regular expression: {e}"),
                        options.pos("topic-pattern"),
                    )
                })?;
                Topics::Pattern(p.to_string(), re)
            }
            _ => Topics::Names(topics(options, table)?),
        };
        let startup = match options.get("scan.startup.mode").unwrap_or("group-offsets") {
            "earliest-offset" => Startup::Earliest,
            "latest-offset" => Startup::Latest,
            "group-offsets" => Startup::Group,
            "timestamp" => Startup::Timestamp(
                options
                    .parse_opt("scan.startup.timestamp-millis")?
                    .ok_or_else(|| {
                        WeirError::sql(
                            "scan.startup.mode 'timestamp' needs 'scan.startup.timestamp-millis'",
                            options.pos("scan.startup.mode"),
                        )
                    })?,
            ),
            "specific-offsets" => {
                Startup::Specific(specific_offsets(options, "scan.startup.specific-offsets")?)
            }
            other => {
                return Err(WeirError::sql(
                    format!("unknown scan.startup.mode '{other}'"),
                    options.pos("scan.startup.mode"),
                )
                .with_hint(
                    "earliest-offset, latest-offset, group-offsets, timestamp or specific-offsets",
                ));
            }
        };
        let bound = match options.get("scan.bounded.mode") {
            None | Some("unbounded") => Bound::Unbounded,
            Some("latest-offset") => Bound::Latest,
            Some("group-offsets") => Bound::Group,
            Some("timestamp") => Bound::Timestamp(
                options
                    .parse_opt("scan.bounded.timestamp-millis")?
                    .ok_or_else(|| {
                        WeirError::sql(
                            "scan.bounded.mode 'timestamp' needs 'scan.bounded.timestamp-millis'",
                            options.pos("scan.bounded.mode"),
                        )
                    })?,
            ),
            Some("specific-offsets") => {
                Bound::Specific(specific_offsets(options, "scan.bounded.specific-offsets")?)
            }
            Some(other) => {
                return Err(WeirError::sql(
                    format!("unknown scan.bounded.mode '{other}'"),
                    options.pos("scan.bounded.mode"),
                )
                .with_hint(
                    "unbounded, latest-offset, group-offsets, timestamp or specific-offsets",
                ));
            }
        };
        // Metadata columns come from the message; the rest from its value.
        let mut meta = vec![];
        for (col, key) in metadata {
            let index = schema.index_of(col).map_err(|_| {
                WeirError::internal(format!("metadata column '{col}' is not in the schema"))
            })?;
            meta.push(MetaColumn {
                index,
                key: key.clone(),
                data_type: schema.field(index).data_type().clone(),
            });
        }
        let value_schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(i, _)| !meta.iter().any(|m| m.index == *i))
                .map(|(_, f)| f.as_ref().clone())
                .collect::<Vec<Field>>(),
        ));
        let decoder = match options.get("format") {
            Some("raw") => None,
            _ => {
                let format = Format::parse(options, table)?;
                if format == Format::Parquet {
                    return Err(WeirError::sql(
                        "kafka messages are json, csv or raw, not parquet",
                        options.pos("format"),
                    ));
                }
                Some(Decoder::new(format, value_schema.clone(), options)?)
            }
        };
        if decoder.is_none()
            && (value_schema.fields().len() != 1
                || !matches!(
                    value_schema.field(0).data_type(),
                    DataType::Utf8 | DataType::Binary
                ))
        {
            return Err(WeirError::sql(
                "format 'raw' reads the message value into one STRING or BYTES column",
                options.pos("format"),
            ));
        }
        let mut config = client_config(options);
        config
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        if options.get("properties.group.id").is_none() {
            config.set("group.id", format!("weir-{table}"));
        }
        if options
            .get("properties.queued.max.messages.kbytes")
            .is_none()
        {
            config.set("queued.max.messages.kbytes", "16384");
        }
        // librdkafka's statistics carry each partition's high-water offset and position:
        // their difference is exported as `weir_kafka_consumer_lag`.
        if options.get("properties.statistics.interval.ms").is_none() {
            config.set("statistics.interval.ms", "1000");
        }
        let connect_timeout = match options.get("properties.socket.connection.setup.timeout.ms") {
            Some(v) => Duration::from_millis(v.parse().map_err(|_| {
                WeirError::sql(
                    format!("'properties.socket.connection.setup.timeout.ms' = '{v}' is not a number of milliseconds"),
                    options.pos("properties.socket.connection.setup.timeout.ms"),
                )
            })?),
            None => Duration::from_secs(30),
        };
        let idle_timeout = options
            .duration_opt("scan.watermark.idle-timeout")?
            .filter(|d| !d.is_zero());
        Ok(KafkaSource {
            table: table.to_string(),
            config,
            servers,
            topics,
            startup,
            bound,
            decoder,
            schema,
            value_schema,
            meta,
            batch_size,
            idle_timeout,
            connect_timeout,
            positions: vec![],
            restored: None,
            uncommitted: BTreeMap::new(),
            keyed: None,
        })
    }

    /// The source of a `kafka` table `def` (its effective `options`): as
    /// [`KafkaSource::new`] makes it, and with `'value.fields-include' = 'EXCEPT_KEY'`
    /// reading the `key.fields` columns from each message's key (by `key.format`, with the
    /// `key.json.*`/`key.csv.*` options) and the others from its value, as Flink's Kafka
    /// source does; a message without a key then gives no row and is counted, as Flink's
    /// gives none. Errors: those of [`KafkaSource::new`], and of the key's format and its
    /// options.
    pub fn for_table(
        def: &crate::sql::catalog::TableDef,
        options: &Options,
        batch_size: usize,
    ) -> Result<Self> {
        let mut source = Self::new(
            &def.name,
            options,
            def.physical.clone(),
            &def.metadata,
            batch_size,
        )?;
        if let Some((formats, key_columns)) = except_key_fields(def, options)? {
            source.read_keys_apart(def, options, options, formats, key_columns, true, false)?;
        }
        Ok(source)
    }

    /// Makes the source read `key_columns` from the message keys (by `key_format`, with
    /// `options`' `key.<format>.*` options) and, with `except_key`, the other columns
    /// alone from the values (by `value_format` and `value_options`); `changelog`: see
    /// [`KeyRead`]. Errors: the formats' options.
    #[allow(clippy::too_many_arguments)]
    fn read_keys_apart(
        &mut self,
        def: &crate::sql::catalog::TableDef,
        options: &Options,
        value_options: &Options,
        (value_format, key_format): (Format, Format),
        key_columns: Vec<usize>,
        except_key: bool,
        changelog: bool,
    ) -> Result<()> {
        let physical = &def.physical;
        if except_key {
            self.value_schema = Arc::new(Schema::new(
                physical
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| {
                        !key_columns.contains(i) && !self.meta.iter().any(|m| m.index == *i)
                    })
                    .map(|(_, f)| f.as_ref().clone())
                    .collect::<Vec<Field>>(),
            ));
            self.decoder = Some(Decoder::new(
                value_format,
                self.value_schema.clone(),
                value_options,
            )?);
        }
        let key_schema = Arc::new(Schema::new(
            key_columns
                .iter()
                .map(|&i| physical.field(i).clone())
                .collect::<Vec<Field>>(),
        ));
        self.keyed = Some(KeyRead {
            key_decoder: Decoder::new(
                key_format,
                key_schema,
                &side_options(options, "key", key_format),
            )?,
            key_columns,
            except_key,
            changelog,
        });
        Ok(())
    }

    /// An `upsert-kafka` source for `def` (see the module's docs). Errors: those of
    /// [`crate::sink::kafka::upsert_formats`] (no primary key, a missing or unknown key or
    /// value format, an unknown `value.fields-include`), the formats' options
    /// (`key.json.*`, `value.csv.*`, …) and what [`KafkaSource::new`] checks.
    pub fn new_upsert(
        def: &crate::sql::catalog::TableDef,
        options: &Options,
        batch_size: usize,
    ) -> Result<Self> {
        let (value_format, key_format, except_key) =
            crate::sink::kafka::upsert_formats(def, options)?;
        let physical = &def.physical;
        let key_columns = def
            .primary_key
            .iter()
            .map(|k| physical.index_of(k))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut value_options = options.clone();
        for (k, v) in side_options(options, "value", value_format).iter() {
            value_options.insert(k, v, None);
        }
        value_options.insert("scan.startup.mode", "earliest-offset", None);
        let mut source = Self::new(
            &def.name,
            &value_options,
            physical.clone(),
            &def.metadata,
            batch_size,
        )?;
        // A delete holds only the key: the other columns are NULL until normalization
        // puts the kept row in its place.
        source.schema = crate::operator::normalize::nullable_except(physical, &def.primary_key);
        source.read_keys_apart(
            def,
            options,
            &value_options,
            (value_format, key_format),
            key_columns,
            except_key,
            true,
        )?;
        Ok(source)
    }

    fn subscribes(&self) -> bool {
        matches!(self.startup, Startup::Group) && matches!(self.bound, Bound::Unbounded)
    }
}

fn kafka_err(what: &str, e: KafkaError) -> WeirError {
    WeirError::external(format!("kafka: {what}: {e}"))
}

/// Errors after which the client cannot go on by itself; every other consume error
/// (a broker gone, a connection reset, a leader moving) heals when librdkafka reconnects.
fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::InvalidGroupId
                | RDKafkaErrorCode::Authentication
        )
    )
}

/// A rebalance seen by the consumer: partitions assigned or taken away.
enum Change {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// The consumer's context: records rebalances for the read loop and, before partitions
/// are taken away, commits the positions reached in them; keeps the consumer lag that
/// librdkafka's statistics report, per partition, in the job's metrics.
#[derive(Default)]
struct GroupContext {
    changes: Mutex<Vec<Change>>,
    /// The job's metrics and the source table's name, for the consumer lag.
    lag: Option<(Arc<crate::job::JobMetrics>, String)>,
    /// Sensitive property values, never logged.
    secrets: Vec<String>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        log_scrubbed(&self.secrets, level, fac, message);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some((job, table)) = &self.lag else {
            return;
        };
        // Only the partitions this consumer fetches now: a revoked one's figure would
        // go stale (and count twice beside the member that took it over).
        job.clear_consumer_lag(table);
        for (topic, t) in &statistics.topics {
            for (p, s) in &t.partitions {
                // Partition -1 is librdkafka's internal unassigned one. The position is the offset the source consumes next (librdkafka's
                // `app_offset`); its own `consumer_lag` counts from the committed offset,
                // which a checkpointing or not-yet-committing source does not keep
                // current. Before the source's first message of a partition, the fetch
                // position stands in (its start, until librdkafka prefetches).
                let position = if s.app_offset >= 0 {
                    s.app_offset
                } else {
                    s.next_offset
                };
                if *p >= 0 && s.fetch_state == "active" && s.hi_offset >= 0 && position >= 0 {
                    job.set_consumer_lag(table, topic, *p, (s.hi_offset - position).max(0));
                }
            }
        }
    }
}

fn members(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = members(tpl);
            let position = consumer.position();
            if let Err(e) = &position {
                tracing::warn!(
                    "kafka: the positions of revoked partitions are unknown ({e}); the group's offsets for them stay where they were"
                );
            }
            if let Ok(pos) = position {
                let mut commit = TopicPartitionList::new();
                for e in pos.elements() {
                    if let Offset::Offset(o) = e.offset()
                        && revoked
                            .iter()
                            .any(|(t, p)| t == e.topic() && *p == e.partition())
                    {
                        let _ = commit.add_partition_offset(
                            e.topic(),
                            e.partition(),
                            Offset::Offset(o),
                        );
                    }
                }
                if commit.count() > 0
                    && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
                {
                    tracing::warn!("kafka: committing revoked partitions failed: {e}");
                }
            }
            if let Ok(mut c) = self.changes.lock() {
                c.push(Change::Revoked(revoked));
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance
            && let Ok(mut c) = self.changes.lock()
        {
            c.push(Change::Assigned(members(tpl)));
        }
    }
}

/// Messages of one partition read but not yet emitted.
#[derive(Default)]
struct Pending {
    values: Vec<Vec<u8>>,
    /// Per message: a tombstone (`upsert-kafka` only; its value is empty).
    deleted: Vec<bool>,
    offsets: Vec<i64>,
    timestamps: Vec<Option<i64>>,
    timestamp_types: Vec<&'static str>,
    /// Per message, its leader epoch (None: the broker gave none).
    leader_epochs: Vec<Option<i32>>,
    keys: Vec<Option<Vec<u8>>>,
    /// Per message, its headers (kept only when a `headers` metadata column reads them).
    headers: Vec<HeaderList>,
}

impl Pending {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn clear(&mut self) {
        *self = Pending::default();
    }
}

/// One topic-partition this consumer reads.
struct Part {
    topic: String,
    partition: i32,
    /// Its index among the source's watermark partitions.
    index: usize,
    /// A bounded read stops before this offset.
    end: Option<i64>,
    /// The next offset to read, once a message was seen.
    next: Option<i64>,
    pending: Pending,
    last_message: Instant,
    /// Not holding the watermark: ended, idle, or taken away by a rebalance.
    released: bool,
    assigned: bool,
}

impl Part {
    fn finished(&self) -> bool {
        match self.end {
            Some(end) => end <= 0 || self.next.is_some_and(|n| n >= end),
            None => false,
        }
    }
}

impl KafkaSource {
    /// The topics to read, resolved against the broker's metadata (retrying while the
    /// broker cannot be reached, up to the connect timeout).
    fn resolve(&self, consumer: &BaseConsumer<GroupContext>) -> Result<Vec<(String, Vec<i32>)>> {
        let started = Instant::now();
        let md = loop {
            let wanted = match &self.topics {
                Topics::Names(n) if n.len() == 1 => Some(n[0].as_str()),
                _ => None,
            };
            match consumer.fetch_metadata(wanted, Duration::from_secs(5)) {
                Ok(md) => break md,
                Err(e) => {
                    if started.elapsed() >= self.connect_timeout {
                        return Err(WeirError::external(format!(
                            "kafka: cannot reach the broker at '{}' (tried for {} s): {e}",
                            self.servers,
                            started.elapsed().as_secs()
                        ))
                        .with_hint(
                            "is the broker running and is 'properties.bootstrap.servers' right?",
                        ));
                    }
                    tracing::warn!("kafka: broker at '{}' not reachable yet: {e}", self.servers);
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        let mut out = vec![];
        match &self.topics {
            Topics::Names(names) => {
                for topic in names {
                    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
                        return Err(WeirError::user(format!(
                            "kafka: no topic '{topic}' (create it first)"
                        )));
                    };
                    if t.partitions().is_empty() {
                        return Err(WeirError::user(format!(
                            "kafka: topic '{topic}' does not exist (create it first)"
                        )));
                    }
                    out.push((
                        topic.clone(),
                        t.partitions().iter().map(|p| p.id()).collect(),
                    ));
                }
            }
            Topics::Pattern(text, re) => {
                for t in md.topics() {
                    if re.is_match(t.name()) && !t.partitions().is_empty() {
                        out.push((
                            t.name().to_string(),
                            t.partitions().iter().map(|p| p.id()).collect(),
                        ));
                    }
                }
                if out.is_empty() && !self.subscribes() {
                    return Err(WeirError::user(format!(
                        "kafka: no topic matches topic-pattern '{text}'"
                    )));
                }
                out.sort();
            }
        }
        Ok(out)
    }

    /// Assignment mode: every partition from its startup offset, with its end offset when
    /// the read is bounded.
    fn assign_all(
        &self,
        consumer: &BaseConsumer<GroupContext>,
        topics: &[(String, Vec<i32>)],
        ctx: &mut SourceContext,
    ) -> Result<Vec<Part>> {
        let timeout = Duration::from_secs(10);
        let by_time = |ms: i64| -> Result<TopicPartitionList> {
            let mut times = TopicPartitionList::new();
            for (topic, ps) in topics {
                for p in ps {
                    times
                        .add_partition_offset(topic, *p, Offset::Offset(ms))
                        .map_err(|e| kafka_err("cannot assign", e))?;
                }
            }
            consumer
                .offsets_for_times(times, timeout)
                .map_err(|e| kafka_err("cannot look up offsets by time", e))
        };
        let start_times = match self.startup {
            Startup::Timestamp(ms) => Some(by_time(ms)?),
            _ => None,
        };
        let end_times = match self.bound {
            Bound::Timestamp(ms) => Some(by_time(ms)?),
            _ => None,
        };
        // The group's offsets: a bounded read up to them, and where a `group-offsets`
        // start begins whenever the start must be known before the first message (a
        // bounded read compares it with the end; a checkpoint records it).
        let bounded = !matches!(self.bound, Bound::Unbounded);
        let committed = if matches!(self.bound, Bound::Group)
            || (matches!(self.startup, Startup::Group) && (bounded || ctx.checkpointing()))
        {
            let mut tpl = TopicPartitionList::new();
            for (topic, ps) in topics {
                for p in ps {
                    tpl.add_partition(topic, *p);
                }
            }
            Some(
                consumer
                    .committed_offsets(tpl, timeout)
                    .map_err(|e| kafka_err("cannot read the group's offsets", e))?,
            )
        } else {
            None
        };
        let offset_in = |tpl: &TopicPartitionList, topic: &str, p: i32| {
            tpl.find_partition(topic, p).map(|e| e.offset())
        };
        let mut tpl = TopicPartitionList::new();
        let mut parts = vec![];
        let total: usize = topics.iter().map(|(_, ps)| ps.len()).sum();
        ctx.set_partitions(total);
        for (topic, ps) in topics {
            for &p in ps {
                let restored = self
                    .restored
                    .as_ref()
                    .and_then(|r| r.get(&(topic.clone(), p)).copied());
                let start = match (restored, &self.startup) {
                    (Some(o), _) => Offset::Offset(o),
                    (None, Startup::Earliest) => Offset::Beginning,
                    (None, Startup::Latest) => Offset::End,
                    (None, Startup::Group) => Offset::Stored,
                    (None, Startup::Timestamp(_)) => start_times
                        .as_ref()
                        .and_then(|t| offset_in(t, topic, p))
                        .unwrap_or(Offset::End),
                    (None, Startup::Specific(m)) => m
                        .get(&p)
                        .map(|o| Offset::Offset(*o))
                        .unwrap_or(Offset::Beginning),
                };
                let mut next = match start {
                    Offset::Offset(s) => Some(s),
                    _ => None,
                };
                // A bounded read needs the end offsets; a checkpoint records where each
                // partition started, read or not.
                let (low, high) = if bounded || ctx.checkpointing() {
                    let (low, high) = consumer
                        .fetch_watermarks(topic, p, timeout)
                        .map_err(|e| kafka_err("cannot read the end offsets", e))?;
                    next = match start {
                        Offset::Beginning => Some(low),
                        Offset::End => Some(high),
                        Offset::Offset(s) => Some(s.max(low)),
                        // The group's offset, or where `auto.offset.reset` sends a
                        // partition the group has none for (librdkafka's default: the end).
                        Offset::Stored => {
                            match committed.as_ref().and_then(|t| offset_in(t, topic, p)) {
                                Some(Offset::Offset(o)) => Some(o.max(low)),
                                _ => Some(match self.config.get("auto.offset.reset") {
                                    Some("earliest" | "smallest" | "beginning") => low,
                                    _ => high,
                                }),
                            }
                        }
                        _ => next,
                    };
                    (low, high)
                } else {
                    (0, 0)
                };
                // Where the group's offset was resolved, the consumer starts exactly there:
                // the position recorded and the one read from cannot differ.
                let start = match (start, next) {
                    (Offset::Stored, Some(o)) => Offset::Offset(o),
                    _ => start,
                };
                tpl.add_partition_offset(topic, p, start)
                    .map_err(|e| kafka_err("cannot assign", e))?;
                let end = if !bounded {
                    None
                } else {
                    Some(match &self.bound {
                        Bound::Timestamp(_) => {
                            match end_times.as_ref().and_then(|t| offset_in(t, topic, p)) {
                                Some(Offset::Offset(o)) => o,
                                _ => high,
                            }
                        }
                        Bound::Group => {
                            match committed.as_ref().and_then(|t| offset_in(t, topic, p)) {
                                Some(Offset::Offset(o)) => o,
                                _ => high,
                            }
                        }
                        // A partition not listed has nothing to read.
                        Bound::Specific(m) => m.get(&p).copied().unwrap_or(low),
                        _ => high,
                    })
                };
                parts.push(Part {
                    topic: topic.clone(),
                    partition: p,
                    index: parts.len(),
                    end,
                    next,
                    pending: Pending::default(),
                    last_message: Instant::now(),
                    released: false,
                    assigned: true,
                });
            }
        }
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_err("cannot assign partitions", e))?;
        Ok(parts)
    }
}

impl Source for KafkaSource {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    /// The topics (the servers may change: a cluster keeps its topics and offsets).
    fn origin(&self) -> String {
        match &self.topics {
            Topics::Names(n) => format!("kafka topics '{}'", n.join(",")),
            Topics::Pattern(p, _) => format!("kafka topic-pattern '{p}'"),
        }
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// One row per partition read: `topic`, `partition` and `offset`, the next offset to
    /// read after the last batch emitted.
    fn snapshot(&self) -> Result<Vec<RecordBatch>> {
        use datafusion::arrow::array::{Int32Array, Int64Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = Schema::new(vec![
            Field::new("topic", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
        ]);
        Ok(vec![RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    self.positions.iter().map(|p| p.0.clone()),
                )),
                Arc::new(Int32Array::from_iter_values(
                    self.positions.iter().map(|p| p.1),
                )),
                Arc::new(Int64Array::from_iter_values(
                    self.positions.iter().map(|p| p.2),
                )),
            ],
        )?])
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{Int32Type, Int64Type};
        let bad = || WeirError::user("the kafka source's offsets in the checkpoint are malformed");
        let mut offsets = HashMap::new();
        for b in &state {
            if b.num_columns() != 3 {
                return Err(bad());
            }
            let topic = b.column(0).as_string_opt::<i32>().ok_or_else(bad)?;
            let part = b
                .column(1)
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(bad)?;
            let off = b
                .column(2)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(bad)?;
            for i in 0..b.num_rows() {
                offsets.insert((topic.value(i).to_string(), part.value(i)), off.value(i));
            }
        }
        self.positions = offsets
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect();
        self.restored = Some(offsets);
        Ok(())
    }

    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let consumer: BaseConsumer<GroupContext> = self
            .config
            .create_with_context(GroupContext {
                lag: Some((ctx.job_metrics(), self.table.clone())),
                secrets: secrets(&self.config),
                ..GroupContext::default()
            })
            .map_err(|e| {
                WeirError::external(format!(
                    "kafka: cannot create a consumer: {}",
                    scrubbed(&self.config, &e)
                ))
            })?;
        let topics = self.resolve(&consumer)?;
        let checkpointing = ctx.checkpointing();
        // With checkpoints, partitions are assigned, not subscribed through the group (as
        // Flink's Kafka source does): the checkpoint, not the group, owns the positions.
        let mut parts: Vec<Part> = if self.subscribes() && !checkpointing {
            let names: Vec<String> = match &self.topics {
                Topics::Names(n) => n.clone(),
                Topics::Pattern(p, _) => vec![format!("^(?:{p})$")],
            };
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            consumer
                .subscribe(&refs)
                .map_err(|e| kafka_err("cannot subscribe", e))?;
            ctx.set_partitions(0);
            vec![]
        } else {
            self.assign_all(&consumer, &topics, ctx)?
        };
        let bounded = !matches!(self.bound, Bound::Unbounded);
        let mut buffered = 0usize;
        let mut last_commit = Instant::now();
        let mut last_flush = Instant::now();
        let mut last_warning: Option<Instant> = None;
        // The part the last message came from: messages come in runs per partition.
        let mut hint = 0;
        let mut last_check = Instant::now();
        loop {
            if ctx.should_stop() {
                for part in parts.iter_mut() {
                    self.flush(part, ctx)?;
                }
                if checkpointing {
                    // The savepoint's barrier follows the last batch; its offsets go to the
                    // group when it completes, or from the savepoint at the next start.
                    self.note_positions(&parts);
                } else {
                    commit_group(&consumer, CommitMode::Sync);
                }
                ctx.finish(self, false)?;
                return Ok(());
            }
            let polled = consumer.poll(Duration::from_millis(100));
            let got_message = matches!(polled, Some(Ok(_)));
            match polled {
                Some(Ok(m)) => {
                    let mut at = find_part(&parts, hint, m.topic(), m.partition());
                    if at.is_none() {
                        // A partition assigned by the rebalance this poll served: take the
                        // assignment in before its first message.
                        self.apply_rebalances(&consumer, &mut parts, ctx)?;
                        at = find_part(&parts, hint, m.topic(), m.partition());
                    }
                    let Some(i) = at else {
                        return Err(WeirError::internal(format!(
                            "kafka: a message from {}/{} at offset {}, a partition not assigned here",
                            m.topic(),
                            m.partition(),
                            m.offset()
                        )));
                    };
                    hint = i;
                    let headers = self.reads_headers().then(|| header_list(m.headers()));
                    // rdkafka does not expose it; librdkafka gives -1 for none.
                    // SAFETY: `m` holds the message for the call.
                    let epoch =
                        unsafe { rdkafka::bindings::rd_kafka_message_leader_epoch(m.ptr()) };
                    if take_message(
                        &mut parts[i],
                        m.payload(),
                        m.key(),
                        headers,
                        m.timestamp(),
                        (epoch >= 0).then_some(epoch),
                        m.offset(),
                        &ctx.job_metrics(),
                        self.keyed.as_ref().is_some_and(|k| k.changelog),
                    ) {
                        buffered += 1;
                    }
                }
                Some(Err(e)) if is_fatal(&e) => return Err(kafka_err("consume", e)),
                // The client reconnects by itself; say so now and then.
                Some(Err(e))
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) =>
                {
                    tracing::warn!("kafka: {e} (reconnecting)");
                    last_warning = Some(Instant::now());
                }
                Some(Err(_)) => {}
                None => {}
            }
            // While messages stream in, the rest (rebalances, flushing on time, idleness,
            // the bounded end) is looked at every few milliseconds, not per message.
            if got_message
                && buffered < self.batch_size
                && last_check.elapsed() < Duration::from_millis(20)
            {
                continue;
            }
            last_check = Instant::now();
            self.apply_rebalances(&consumer, &mut parts, ctx)?;
            let finished = bounded && parts.iter().all(Part::finished);
            if buffered >= self.batch_size
                || (buffered > 0 && (finished || last_flush.elapsed() > Duration::from_millis(200)))
            {
                if !self.flush_all(&mut parts, ctx)? {
                    ctx.finish(self, false)?;
                    return Ok(());
                }
                buffered = 0;
                last_flush = Instant::now();
                if !checkpointing && last_commit.elapsed() > Duration::from_secs(1) {
                    commit_group(&consumer, CommitMode::Async);
                    last_commit = Instant::now();
                }
            }
            if checkpointing {
                if ctx.checkpoint_due() {
                    if !self.flush_all(&mut parts, ctx)? {
                        ctx.finish(self, false)?;
                        return Ok(());
                    }
                    buffered = 0;
                    let id = ctx.checkpoint_requested();
                    self.uncommitted.insert(id, self.positions.clone());
                    ctx.checkpoint(self)?;
                }
                self.commit_completed(&consumer, ctx)?;
            }
            for part in parts.iter_mut() {
                if part.released || !part.assigned || part.pending.len() > 0 {
                    continue;
                }
                // A partition read to its end, or silent for the idle timeout, stops
                // holding the watermark back (until its next message).
                let idle = self
                    .idle_timeout
                    .is_some_and(|t| part.last_message.elapsed() >= t);
                if (bounded && part.finished()) || idle {
                    part.released = true;
                    if idle && !(bounded && part.finished()) {
                        tracing::info!(
                            target: "weir::source",
                            topic = %part.topic,
                            partition = part.partition,
                            "partition idle: it no longer holds the watermark back"
                        );
                    }
                    ctx.partition_ended(part.index);
                }
            }
            if finished {
                if checkpointing {
                    self.note_positions(&parts);
                } else {
                    commit_group(&consumer, CommitMode::Sync);
                }
                ctx.finish(self, true)?;
                return Ok(());
            }
        }
    }
}

impl KafkaSource {
    /// Emits what every partition has read, then records each partition's next offset:
    /// whatever happens next (a checkpoint, a stop's savepoint), the position saved is
    /// exactly after the rows sent. Returns false when the job asked to stop.
    fn flush_all(&mut self, parts: &mut [Part], ctx: &mut SourceContext) -> Result<bool> {
        let mut go_on = true;
        for part in parts.iter_mut() {
            // Every partition is flushed even after a stop request: the rows read are sent
            // before the savepoint's barrier, and the positions cover them.
            go_on &= self.flush(part, ctx)?;
        }
        self.note_positions(parts);
        Ok(go_on)
    }

    /// Records each partition's next offset (every read message has been emitted).
    fn note_positions(&mut self, parts: &[Part]) {
        for p in parts {
            let Some(next) = p.next else { continue };
            match self
                .positions
                .iter_mut()
                .find(|(t, n, _)| *t == p.topic && *n == p.partition)
            {
                Some(e) => e.2 = next,
                None => self.positions.push((p.topic.clone(), p.partition, next)),
            }
        }
    }

    /// Commits to the group the offsets of the newest checkpoint that has completed (as
    /// Flink: the group's offsets show progress; the checkpoint is what a restart reads).
    fn commit_completed(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        ctx: &SourceContext,
    ) -> Result<()> {
        let Some(done) = ctx.last_completed() else {
            return Ok(());
        };
        let mut newest = None;
        while let Some(entry) = self.uncommitted.first_entry() {
            if *entry.key() > done {
                break;
            }
            newest = Some(entry.remove());
        }
        let Some(offsets) = newest else {
            return Ok(());
        };
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in &offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                .map_err(|e| kafka_err("cannot commit offsets", e))?;
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            // The checkpoint holds the positions; the group's are for monitoring. Said,
            // not fatal (Flink does the same).
            tracing::warn!("kafka: cannot commit the offsets of checkpoint {done}: {e}");
        }
        Ok(())
    }
}

impl KafkaSource {
    /// Takes in the rebalances the consumer saw: new partitions are read (each with its own
    /// watermark); partitions taken away have their read rows sent and stop holding the
    /// watermark back.
    fn apply_rebalances(
        &self,
        consumer: &BaseConsumer<GroupContext>,
        parts: &mut Vec<Part>,
        ctx: &mut SourceContext,
    ) -> Result<()> {
        let changes: Vec<Change> = match consumer.context().changes.lock() {
            Ok(mut c) => std::mem::take(&mut *c),
            Err(_) => return Err(WeirError::internal("kafka rebalance state poisoned")),
        };
        for change in changes {
            match change {
                Change::Assigned(list) => {
                    for (topic, partition) in list {
                        tracing::info!("kafka: assigned {topic}/{partition}");
                        match parts
                            .iter_mut()
                            .find(|p| p.topic == topic && p.partition == partition)
                        {
                            Some(p) => {
                                p.assigned = true;
                                p.last_message = Instant::now();
                            }
                            None => {
                                let index = ctx.add_partition();
                                parts.push(Part {
                                    topic,
                                    partition,
                                    index,
                                    end: None,
                                    next: None,
                                    pending: Pending::default(),
                                    last_message: Instant::now(),
                                    released: false,
                                    assigned: true,
                                });
                            }
                        }
                    }
                }
                Change::Revoked(list) => {
                    for (topic, partition) in list {
                        tracing::info!("kafka: revoked {topic}/{partition}");
                        if let Some(p) = parts
                            .iter_mut()
                            .find(|p| p.topic == topic && p.partition == partition)
                        {
                            self.flush(p, ctx)?;
                            p.assigned = false;
                            if !p.released {
                                p.released = true;
                                ctx.partition_ended(p.index);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The message values as the value columns (`raw`: one column holding the value).
    fn raw_batch(&self, values: &[Vec<u8>]) -> Result<RecordBatch> {
        let col: ArrayRef = match self.value_schema.field(0).data_type() {
            DataType::Binary => Arc::new(BinaryArray::from_iter_values(values.iter())),
            _ => Arc::new(StringArray::from_iter_values(
                values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).to_string()),
            )),
        };
        Ok(RecordBatch::try_new(self.value_schema.clone(), vec![col])?)
    }

    /// One metadata column for the given messages of a partition.
    fn meta_column(&self, m: &MetaColumn, part: &Part, rows: &[usize]) -> Result<ArrayRef> {
        let p = &part.pending;
        let native: ArrayRef = match m.key.as_str() {
            "topic" => Arc::new(StringArray::from_iter_values(
                rows.iter().map(|_| part.topic.as_str()),
            )),
            "partition" => Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|_| part.partition),
            )),
            "offset" => Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|&i| p.offsets[i]),
            )),
            "timestamp" => Arc::new(TimestampMillisecondArray::from_iter(
                rows.iter().map(|&i| p.timestamps[i]),
            )),
            "timestamp-type" => Arc::new(StringArray::from_iter_values(
                rows.iter().map(|&i| p.timestamp_types[i]),
            )),
            "leader-epoch" => Arc::new(Int32Array::from_iter(
                rows.iter().map(|&i| p.leader_epochs[i]),
            )),
            "headers" => {
                let none = HeaderList::new();
                let lists: Vec<&HeaderList> = rows
                    .iter()
                    .map(|&i| p.headers.get(i).unwrap_or(&none))
                    .collect();
                return headers_column(&lists, &m.data_type);
            }
            "key" => match m.data_type {
                DataType::Binary => Arc::new(BinaryArray::from_iter(
                    rows.iter().map(|&i| p.keys[i].as_deref()),
                )),
                _ => Arc::new(StringArray::from_iter(rows.iter().map(|&i| {
                    p.keys[i]
                        .as_deref()
                        .map(|k| String::from_utf8_lossy(k).to_string())
                }))),
            },
            other => {
                return Err(WeirError::internal(format!(
                    "kafka metadata '{other}' is not supplied"
                )));
            }
        };
        if native.data_type() == &m.data_type {
            Ok(native)
        } else {
            Ok(cast(&native, &m.data_type)?)
        }
    }

    /// Decodes and emits a partition's messages. Returns false when the source should stop.
    fn flush(&self, part: &mut Part, ctx: &mut SourceContext) -> Result<bool> {
        if part.pending.len() == 0 {
            return Ok(true);
        }
        if let Some(u) = &self.keyed {
            let batch = self.keyed_batch(u, part, ctx);
            part.pending.clear();
            return match batch? {
                Some(b) => ctx.emit_from(part.index, b),
                None => Ok(true),
            };
        }
        let (values, kept): (Option<RecordBatch>, Option<Vec<usize>>) = match &self.decoder {
            None => (Some(self.raw_batch(&part.pending.values)?), None),
            Some(d) => {
                let pending = &part.pending;
                let place = |i: usize| {
                    format!(
                        "kafka topic '{}' partition {} offset {}",
                        part.topic, part.partition, pending.offsets[i]
                    )
                };
                let mut lines: Vec<String> = Vec::with_capacity(pending.values.len());
                for (i, v) in pending.values.iter().enumerate() {
                    let text = ctx.text_line(d, v.trim_ascii_end(), &|| place(i))?;
                    lines.push(text);
                }
                let decoded = d.decode_at(&lines, &place)?;
                ctx.bad_lines(&decoded, &lines, &place)?;
                (decoded.batch, decoded.kept)
            }
        };
        let batch = match values {
            Some(v) if !self.meta.is_empty() => {
                let rows: Vec<usize> = kept.unwrap_or_else(|| (0..v.num_rows()).collect());
                let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
                let mut vi = 0;
                for i in 0..self.schema.fields().len() {
                    match self.meta.iter().find(|m| m.index == i) {
                        Some(m) => columns.push(self.meta_column(m, part, &rows)?),
                        None => {
                            columns.push(v.column(vi).clone());
                            vi += 1;
                        }
                    }
                }
                Some(RecordBatch::try_new(self.schema.clone(), columns)?)
            }
            other => other,
        };
        part.pending.clear();
        match batch {
            Some(b) => ctx.emit_from(part.index, b),
            None => Ok(true),
        }
    }
}

impl KafkaSource {
    /// A partition's pending messages whose keys are read apart ([`KeyRead`]) as one batch
    /// in message order: for `upsert-kafka` a changelog, `+I` for each value, `-D` for each
    /// tombstone (its key's columns set, the others NULL); for `kafka` plain rows. A
    /// message whose key or value cannot be read is a bad record (counted and skipped, or
    /// the error, as the format's `ignore-parse-errors` says), and so is one with an empty
    /// key; a message without a key gives no row and is counted in
    /// [`JobMetrics::keyless`](crate::job::metrics::JobMetrics). None: no rows.
    fn keyed_batch(
        &self,
        u: &KeyRead,
        part: &Part,
        ctx: &mut SourceContext,
    ) -> Result<Option<RecordBatch>> {
        use datafusion::arrow::array::{Int8Array, UInt32Array, new_null_array};
        use datafusion::arrow::compute::{interleave, take};
        let Some(d) = &self.decoder else {
            return Err(WeirError::internal(
                "a kafka source reading keys apart without a format",
            ));
        };
        let pending = &part.pending;
        let n = pending.len();
        let place = |i: usize| {
            format!(
                "kafka topic '{}' partition {} offset {}",
                part.topic,
                part.partition,
                pending.offsets.get(i).copied().unwrap_or(-1)
            )
        };
        // A message without a key gives no row and is counted (Flink's upsert-kafka
        // source collects no key row for a null key, so it emits nothing for the message).
        // An empty key or value is malformed, as for Flink's formats (it would otherwise
        // be skipped as a blank line, silently).
        let mut key_lines = Vec::with_capacity(n);
        for (i, k) in pending.keys.iter().enumerate() {
            match k.as_deref().map(<[u8]>::trim_ascii) {
                Some(k) if !k.is_empty() => {
                    key_lines.push(ctx.text_line(&u.key_decoder, k, &|| place(i))?)
                }
                None => {
                    ctx.job_metrics()
                        .keyless
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    key_lines.push(String::new());
                }
                Some(_) => {
                    let reason = "a kafka message with an empty key";
                    ctx.bad_input(&u.key_decoder, &pending.values[i], reason, place(i))?;
                    key_lines.push(String::new());
                }
            }
        }
        let keys = u.key_decoder.decode_at(&key_lines, &place)?;
        ctx.bad_lines(&keys, &key_lines, &place)?;
        let key_row = rows_by_line(n, &keys);
        // The values of messages whose key was read (a bad key already counted the
        // message).
        let with_value: Vec<usize> = (0..n)
            .filter(|&i| !pending.deleted[i] && key_row[i].is_some())
            .collect();
        let mut value_lines = Vec::with_capacity(with_value.len());
        for &i in &with_value {
            let v = pending.values[i].trim_ascii();
            if v.is_empty() {
                ctx.bad_input(d, v, "an empty kafka message value", place(i))?;
                value_lines.push(String::new());
            } else {
                value_lines.push(ctx.text_line(d, v, &|| place(i))?);
            }
        }
        let value_place = |j: usize| place(with_value.get(j).copied().unwrap_or(usize::MAX));
        let values = d.decode_at(&value_lines, &value_place)?;
        ctx.bad_lines(&values, &value_lines, &value_place)?;
        let value_row = rows_by_line(value_lines.len(), &values);
        // Each message that gives a row: its key's row and its value's (None: a delete).
        let mut rows: Vec<(u32, Option<u32>)> = Vec::with_capacity(n);
        // ... and the message's place among the pending ones (for metadata columns).
        let mut messages: Vec<usize> = Vec::with_capacity(n);
        let mut next_value = 0;
        for (i, key) in key_row.iter().enumerate() {
            let value = if pending.deleted[i] {
                None
            } else if key.is_none() {
                continue;
            } else {
                next_value += 1;
                match value_row.get(next_value - 1).copied().flatten() {
                    Some(r) => Some(r),
                    None => continue,
                }
            };
            if let Some(k) = *key {
                rows.push((k, value));
                messages.push(i);
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let (Some(key_batch), value_batch) = (keys.batch, values.batch) else {
            return Ok(None);
        };
        let key_take = UInt32Array::from_iter_values(rows.iter().map(|r| r.0));
        let value_take = UInt32Array::from_iter(rows.iter().map(|r| r.1));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (c, field) in self.schema.fields().iter().enumerate() {
            // A metadata column: from the message (a delete's from its tombstone), as
            // Flink's upsert-kafka source reads it.
            if let Some(m) = self.meta.iter().find(|m| m.index == c) {
                columns.push(self.meta_column(m, part, &messages)?);
                continue;
            }
            let value_col = match &value_batch {
                Some(b) => b
                    .schema()
                    .index_of(field.name())
                    .ok()
                    .map(|i| b.column(i).clone()),
                None => None,
            };
            let key_pos = u.key_columns.iter().position(|&k| k == c);
            let column = match (key_pos, value_col) {
                // ALL: the value's copy of a key column for upserts, the key's for deletes
                // (a tombstone has no value).
                (Some(k), Some(v)) if !u.except_key => {
                    let key_col = key_batch.column(k);
                    let picks: Vec<(usize, usize)> = rows
                        .iter()
                        .map(|&(kr, vr)| match vr {
                            Some(vr) => (0, vr as usize),
                            None => (1, kr as usize),
                        })
                        .collect();
                    interleave(&[v.as_ref(), key_col.as_ref()], &picks)?
                }
                (Some(k), _) => take(key_batch.column(k).as_ref(), &key_take, None)?,
                (None, Some(v)) => take(v.as_ref(), &value_take, None)?,
                (None, None) => new_null_array(field.data_type(), rows.len()),
            };
            columns.push(column);
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        if !u.changelog {
            return Ok(Some(batch));
        }
        let kinds = Int8Array::from_iter_values(rows.iter().map(|r| {
            if r.1.is_some() {
                crate::changelog::RowKind::Insert as i8
            } else {
                crate::changelog::RowKind::Delete as i8
            }
        }));
        Ok(Some(crate::changelog::attach(batch, kinds)?))
    }
}

/// Takes one message of partition `part` in: its value, key and timestamp are buffered
/// for the next flush, unless it lies past the bounded read's end. A message without a
/// value (a tombstone) gives no row and is counted, except in an `upsert` source, where it
/// is buffered as the delete of its key. Returns true when it was buffered.
#[allow(clippy::too_many_arguments)]
fn take_message(
    part: &mut Part,
    value: Option<&[u8]>,
    key: Option<&[u8]>,
    headers: Option<HeaderList>,
    timestamp: Timestamp,
    leader_epoch: Option<i32>,
    offset: i64,
    job: &crate::job::metrics::JobMetrics,
    upsert: bool,
) -> bool {
    let wanted = part.end.is_none_or(|end| offset < end);
    let buffered = match value {
        _ if !wanted => false,
        None if !upsert => {
            job.tombstones
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false
        }
        v => {
            let pending = &mut part.pending;
            pending.deleted.push(v.is_none());
            pending
                .values
                .push(v.map(<[u8]>::to_vec).unwrap_or_default());
            pending.offsets.push(offset);
            let (ts, kind) = match timestamp {
                Timestamp::CreateTime(t) => (Some(t), "CreateTime"),
                Timestamp::LogAppendTime(t) => (Some(t), "LogAppendTime"),
                Timestamp::NotAvailable => (None, "NoTimestampType"),
            };
            pending.timestamps.push(ts);
            pending.timestamp_types.push(kind);
            pending.leader_epochs.push(leader_epoch);
            pending.keys.push(key.map(<[u8]>::to_vec));
            if let Some(h) = headers {
                pending.headers.push(h);
            }
            true
        }
    };
    part.next = Some(offset + 1);
    part.last_message = Instant::now();
    // Its rows hold the watermark again (the stage takes it back when they are emitted);
    // it may go idle again later.
    part.released = false;
    buffered
}

/// One Kafka message as the consumer hands it over: what [`KafkaSource::replay`] takes.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub value: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    /// Milliseconds since the epoch, with Kafka's timestamp type; None: no timestamp.
    pub timestamp: Option<(i64, bool)>,
    pub offset: i64,
    /// Its headers, in order.
    pub headers: HeaderList,
    /// The partition leader's epoch when it was written (None: not known).
    pub leader_epoch: Option<i32>,
}

impl KafkaSource {
    /// True when a `headers` metadata column reads the messages' headers.
    fn reads_headers(&self) -> bool {
        self.meta.iter().any(|m| m.key == "headers")
    }

    /// Puts `messages` of partition 0 of `topic` through the path a consumed message
    /// takes (buffering, tombstones, decoding, metadata columns, bad records) and emits
    /// the rows into `ctx`, without a broker: for the fuzzer and tests of the record
    /// path. `timestamp`'s flag: true for `LogAppendTime`, false for `CreateTime`.
    /// Errors: those of decoding (a malformed record when bad records fail the query).
    pub fn replay(
        &self,
        topic: &str,
        messages: &[RawMessage],
        ctx: &mut SourceContext,
    ) -> Result<()> {
        let mut part = Part {
            topic: topic.to_string(),
            partition: 0,
            index: 0,
            end: None,
            next: None,
            pending: Pending::default(),
            last_message: Instant::now(),
            released: false,
            assigned: true,
        };
        for m in messages {
            let ts = match m.timestamp {
                Some((t, true)) => Timestamp::LogAppendTime(t),
                Some((t, false)) => Timestamp::CreateTime(t),
                None => Timestamp::NotAvailable,
            };
            let job = ctx.job_metrics();
            take_message(
                &mut part,
                m.value.as_deref(),
                m.key.as_deref(),
                self.reads_headers().then(|| m.headers.clone()),
                ts,
                m.leader_epoch,
                m.offset,
                &job,
                self.keyed.as_ref().is_some_and(|k| k.changelog),
            );
            if part.pending.len() >= self.batch_size {
                self.flush(&mut part, ctx)?;
            }
        }
        self.flush(&mut part, ctx)?;
        Ok(())
    }
}

/// Commits the consumer's positions to its group (without checkpoints: the group's
/// offsets are where the next run starts). A failure is logged with its cause — the next
/// run then reads again from the group's older offsets — except "no offset stored"
/// (nothing consumed yet), which is no failure.
fn commit_group<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    mode: CommitMode,
) {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    match consumer.commit_consumer_state(mode) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(
            "kafka: cannot commit the consumer's offsets to its group ({e}); a later run re-reads from the group's last committed offsets"
        ),
    }
}

/// The index of a topic-partition among `parts`, trying `hint` first.
fn find_part(parts: &[Part], hint: usize, topic: &str, partition: i32) -> Option<usize> {
    let is = |p: &Part| p.partition == partition && p.topic == topic;
    if parts.get(hint).is_some_and(is) {
        return Some(hint);
    }
    parts.iter().position(is)
}

/// Checks a kafka table's metadata columns: known keys of types they can be cast to.
pub fn check_metadata(def: &crate::sql::catalog::TableDef) -> Result<()> {
    for (col, key) in &def.metadata {
        if def.primary_key.contains(col) {
            // Flink: "A PRIMARY KEY constraint must be declared on physical columns."
            return Err(WeirError::sql(
                format!(
                    "the primary key of table '{}' names '{col}', a metadata column: a primary key is of physical columns",
                    def.name
                ),
                Some(def.pos),
            ));
        }
        if !METADATA.contains(&key.as_str()) {
            let mut e = WeirError::sql(
                format!(
                    "connector '{}' provides no metadata '{key}' (column '{col}')",
                    def.connector
                ),
                Some(def.pos),
            );
            e = match crate::error::did_you_mean(key, METADATA.iter().copied()) {
                Some(s) => e.with_hint(format!(
                    "did you mean '{s}'? metadata: {}",
                    METADATA.join(", ")
                )),
                None => e.with_hint(format!("metadata: {}", METADATA.join(", "))),
            };
            return Err(e);
        }
        let native = match key.as_str() {
            "topic" | "timestamp-type" => DataType::Utf8,
            "partition" | "leader-epoch" => DataType::Int32,
            "offset" => DataType::Int64,
            "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
            "headers" => DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(
                        vec![
                            Field::new("key", DataType::Utf8, false),
                            Field::new("value", DataType::Binary, true),
                        ]
                        .into(),
                    ),
                    false,
                )),
                false,
            ),
            _ => DataType::Binary,
        };
        let declared = def
            .physical
            .field_with_name(col)
            .map(|f| f.data_type().clone())
            .map_err(|_| WeirError::internal(format!("no column '{col}'")))?;
        let ok = match key.as_str() {
            "key" => matches!(declared, DataType::Utf8 | DataType::Binary),
            // Flink's MAP<STRING, BYTES>.
            "headers" => matches!(&declared, DataType::Map(e, _)
                if matches!(e.data_type(), DataType::Struct(kv)
                    if kv.len() == 2
                        && kv[0].data_type() == &DataType::Utf8
                        && kv[1].data_type() == &DataType::Binary
                        // A header may have no value: a NOT NULL value cannot hold it.
                        && kv[1].is_nullable())),
            _ => datafusion::arrow::compute::can_cast_types(&native, &declared),
        };
        if !ok {
            let flink = |t: &DataType| crate::sql::types::flink_type_name(t);
            return Err(WeirError::sql(
                format!(
                    "metadata '{key}' is {}; column '{col}' is {}",
                    flink(&native),
                    flink(&declared)
                ),
                Some(def.pos),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::metrics::JobMetrics;
    use crate::source::watermark::SourceStage;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int32Type;

    /// A context to replay messages into: it, the receiving end of its batches, and the
    /// job's metrics.
    fn replay_context() -> (
        SourceContext,
        tokio::sync::mpsc::Receiver<crate::job::message::Message>,
        Arc<JobMetrics>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let job = Arc::new(JobMetrics::default());
        let ctx = SourceContext::new(
            tx,
            Arc::new(std::sync::atomic::AtomicBool::new(false)),
            SourceStage::new(None, None),
            job.register("source"),
            job.clone(),
        );
        (ctx, rx, job)
    }

    /// `leader-epoch` (Flink's `INT NULL`): the message's epoch, NULL where the broker
    /// gave none (librdkafka's -1; the test broker gives none, so the Kafka test sees
    /// only NULL).
    #[test]
    fn leader_epoch_metadata_is_the_messages_or_null() {
        let mut options = Options::default();
        for (k, v) in [
            ("connector", "kafka"),
            ("topic", "t"),
            ("properties.bootstrap.servers", "127.0.0.1:9"),
            ("format", "json"),
        ] {
            options.insert(k, v, None);
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, true),
            Field::new("le", DataType::Int32, true),
        ]));
        let meta = [("le".to_string(), "leader-epoch".to_string())];
        let source = KafkaSource::new("t", &options, schema, &meta, 64).expect("a source");
        let message = |offset: i64, epoch: Option<i32>| RawMessage {
            value: Some(format!("{{\"v\": {offset}}}").into_bytes()),
            key: None,
            timestamp: None,
            offset,
            headers: vec![],
            leader_epoch: epoch,
        };
        let (mut ctx, mut rx, _job) = replay_context();
        source
            .replay("t", &[message(0, Some(5)), message(1, None)], &mut ctx)
            .expect("replayed");
        let mut epochs: Vec<Option<i32>> = vec![];
        while let Ok(m) = rx.try_recv() {
            if let crate::job::message::Message::Batch(b) = m {
                let col = b.column(1).as_primitive::<Int32Type>();
                epochs.extend(col.iter());
            }
        }
        assert_eq!(epochs, [Some(5), None]);
    }

    /// `'value.fields-include' = 'EXCEPT_KEY'` on a `kafka` table (Flink's Kafka page,
    /// "Key and Value Formats"): the `key.fields` columns come from the message key, the
    /// others from the value; a message without a key gives no row and is counted, a key
    /// that does not decode is a bad record (here skipped by `key.json.ignore-parse-errors`).
    /// Before, EXCEPT_KEY was refused.
    #[tokio::test]
    async fn except_key_reads_the_key_columns_from_the_message_key() {
        let mut session = crate::session::Session::new();
        session
            .run_collect(
                "CREATE TABLE kv (user_id BIGINT, v BIGINT, k2 STRING) WITH ('connector' = 'kafka', \
                 'topic' = 'kv', 'properties.bootstrap.servers' = '127.0.0.1:9', \
                 'key.format' = 'json', 'key.fields' = 'k2;user_id', \
                 'key.json.ignore-parse-errors' = 'true', 'value.format' = 'json', \
                 'value.fields-include' = 'EXCEPT_KEY')",
            )
            .await
            .expect("created");
        let def = session.table_def("kv").expect("the table");
        let options =
            crate::connector::effective_options(&def, &[], &Default::default()).expect("options");
        let source = KafkaSource::for_table(&def, &options, 64).expect("a source");
        let message = |offset: i64, key: Option<&str>, value: &str| RawMessage {
            value: Some(value.as_bytes().to_vec()),
            key: key.map(|k| k.as_bytes().to_vec()),
            timestamp: None,
            offset,
            headers: vec![],
            leader_epoch: None,
        };
        let (mut ctx, mut rx, job) = replay_context();
        let messages = [
            message(
                0,
                Some(r#"{"user_id": 7, "k2": "a"}"#),
                r#"{"v": 1, "user_id": 99}"#,
            ),
            message(1, None, r#"{"v": 2}"#),
            message(2, Some("not json"), r#"{"v": 3}"#),
            message(3, Some(r#"{"user_id": 8, "k2": "b"}"#), r#"{"v": 4}"#),
        ];
        source.replay("kv", &messages, &mut ctx).expect("replayed");
        let mut rows = vec![];
        while let Ok(m) = rx.try_recv() {
            if let crate::job::message::Message::Batch(b) = m {
                assert!(crate::changelog::kinds(&b).is_none(), "plain rows");
                let u = b
                    .column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let v = b
                    .column(1)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let k2 = b.column(2).as_string::<i32>();
                for i in 0..b.num_rows() {
                    rows.push((u.value(i), v.value(i), k2.value(i).to_string()));
                }
            }
        }
        // The key's user_id wins over the value's stray copy; keyless and bad keys: no row.
        assert_eq!(rows, [(7, 1, "a".to_string()), (8, 4, "b".to_string())]);
        assert_eq!(job.keyless.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(
            job.bad_records.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    /// EXCEPT_KEY needs the key's format and fields, each a physical column; it is checked
    /// at CREATE TABLE with the option's name.
    #[tokio::test]
    async fn except_key_without_its_key_options_is_refused_at_create() {
        let create = |extra: &str| {
            format!(
                "CREATE TABLE kv (user_id BIGINT, v BIGINT) WITH ('connector' = 'kafka', \
                 'topic' = 'kv', 'properties.bootstrap.servers' = '127.0.0.1:9', \
                 'format' = 'json', 'value.fields-include' = 'EXCEPT_KEY'{extra})"
            )
        };
        for (extra, expected) in [
            ("", "needs 'key.format'"),
            (", 'key.format' = 'json'", "needs 'key.fields'"),
            (
                ", 'key.format' = 'json', 'key.fields' = 'nope'",
                "'key.fields' names 'nope'",
            ),
            (
                ", 'key.format' = 'json', 'key.fields' = 'user_id;v'",
                "leaves the value nothing to hold",
            ),
        ] {
            let err = crate::session::Session::new()
                .run_collect(&create(extra))
                .await
                .expect_err("refused");
            assert!(err.to_string().contains(expected), "{extra}: {err}");
        }
    }
}
