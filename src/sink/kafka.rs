//! The `kafka` sink: each row becomes one message, its value encoded by `format` (`json` or
//! `csv`), its key by `key.format` from `key.fields` (the value holds every column, or,
//! with `'value.fields-include' = 'EXCEPT_KEY'`, the others only). The producer is idempotent
//! (`enable.idempotence`), sends wait while librdkafka's queue is full (backpressure), and a
//! delivery error fails the query — never silently.
//!
//! The `upsert-kafka` sink takes a changelog, as Flink's does: the message key is the
//! table's `PRIMARY KEY (…) NOT ENFORCED` columns (`key.format`), `+I` and `+U` rows are
//! messages with the row as value (`value.format`; `'value.fields-include' = 'EXCEPT_KEY'`
//! leaves the key's columns out), a `-D` row is a tombstone (the key with a NULL value) and
//! a `-U` row is dropped — so the topic, read as "the last value per key", is the result.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::client::ClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::Sink;
use crate::error::{Result, WeirError};
use crate::format::Format;
use crate::sql::options::Options;

/// Delivery reports: the first failure (which fails the query at the next write or at
/// the end) and the count of messages delivered.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Option<String>>,
    delivered: AtomicU64,
    /// Sensitive property values, never logged.
    secrets: Vec<String>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        crate::source::kafka::log_scrubbed(&self.secrets, level, fac, message);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                if let Ok(mut f) = self.failed.lock()
                    && f.is_none()
                {
                    *f = Some(e.to_string());
                }
            }
        }
    }
}

/// The options of an `upsert-kafka` table (Flink's names): as a source it also takes a
/// bounded read's end; its key's and value's format options (`key.json.*`, `value.csv.*`,
/// …) are [`side_format_options`].
pub const UPSERT_OPTIONS: &[&str] = &[
    "topic",
    "properties.bootstrap.servers",
    "key.format",
    "value.format",
    "value.fields-include",
    "sink.delivery-guarantee",
    "scan.bounded.mode",
    "scan.bounded.timestamp-millis",
    "scan.bounded.specific-offsets",
    "properties.",
];

/// Each JSON and CSV format option prefixed by the side it applies to, as Flink's
/// upsert-kafka names them: `key.json.ignore-parse-errors`, `value.csv.field-delimiter`, ….
pub fn side_format_options() -> &'static [&'static str] {
    static OPTIONS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        let mut v: Vec<&'static str> = vec![];
        for side in ["key", "value"] {
            for f in [Format::Json, Format::Csv] {
                for o in f.options() {
                    v.push(Box::leak(format!("{side}.{o}").into_boxed_str()));
                }
            }
        }
        v
    });
    &OPTIONS
}

pub struct KafkaSink {
    /// CSV messages: the field delimiter (`csv.field-delimiter`) and how ARRAY elements
    /// are joined (`csv.array-element-delimiter`).
    delimiter: u8,
    array_delimiter: String,
    /// CSV messages: a NULL ARRAY element's text (`csv.null-literal`).
    csv_null: String,
    /// How JSON messages are written (Flink's `json.*` write options).
    json: crate::format::json_out::JsonWrite,
    /// Created by [`Sink::open`]: planning connects to nothing.
    producer: Option<BaseProducer<Deliveries>>,
    config: rdkafka::ClientConfig,
    /// `sink.delivery-guarantee`: true for `at-least-once` (flush at each checkpoint),
    /// false for `none`.
    at_least_once: bool,
    topic: String,
    format: Format,
    key_format: Format,
    key_fields: Vec<String>,
    /// `upsert-kafka`: a changelog in, tombstones for deletes.
    upsert: bool,
    /// The value leaves the key's columns out (`'value.fields-include' = 'EXCEPT_KEY'`),
    /// for `upsert-kafka` and `kafka` alike.
    except_key: bool,
    /// The column declared `METADATA FROM 'timestamp'` (not `VIRTUAL`): each message's
    /// timestamp (epoch ms) is its value, and the column is not encoded into the value,
    /// as Flink's Kafka sink writes it. A NULL leaves the timestamp to the producer.
    timestamp_column: Option<String>,
    /// The column declared `METADATA FROM 'headers'` (`MAP<STRING, BYTES>`, not
    /// `VIRTUAL`): each message's headers, one per entry, not encoded into the value.
    headers_column: Option<String>,
}

/// A batch's Kafka metadata per row (see [`KafkaSink::take_metadata`]).
#[derive(Default)]
struct Metadata {
    times: Option<Vec<Option<i64>>>,
    headers: Option<Vec<Option<rdkafka::message::OwnedHeaders>>>,
}

/// `json` or `csv` from option `key` (required).
pub(crate) fn message_format(options: &Options, key: &str, table: &str) -> Result<Format> {
    match options.require(key, table)? {
        "json" => Ok(Format::Json),
        "csv" => Ok(Format::Csv),
        other => Err(WeirError::sql(
            format!("{key} '{other}': use json or csv"),
            options.pos(key),
        )),
    }
}

impl KafkaSink {
    /// An `upsert-kafka` sink for `def`: its key is the table's primary key. Errors: no
    /// primary key, a missing or unknown `key.format`/`value.format`, an unknown
    /// `value.fields-include`, and what [`KafkaSink::create`] checks.
    pub fn create_upsert(def: &crate::sql::catalog::TableDef, options: &Options) -> Result<Self> {
        let table = def.name.as_str();
        let (format, key_format, except_key) = upsert_formats(def, options)?;
        // The value's format options (`value.json.*`, `value.csv.*`) as the writer reads them.
        let mut merged = options.clone();
        for (k, v) in crate::source::kafka::side_options(options, "value", format).iter() {
            if k != "format" {
                merged.insert(k, v, None);
            }
        }
        let mut sink = Self::with_formats(table, &merged, format, key_format)?;
        sink.key_fields = def.primary_key.clone();
        sink.upsert = true;
        sink.except_key = except_key;
        Ok(sink)
    }

    pub fn create(table: &str, options: &Options) -> Result<Self> {
        let format = Format::parse(options, table)?;
        let key_format = match options.get("key.format") {
            None => format,
            Some(_) => message_format(options, "key.format", table)?,
        };
        let mut sink = Self::with_formats(table, options, format, key_format)?;
        sink.key_fields = options
            .get("key.fields")
            .map(|k| k.split(';').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        // Checked at CREATE TABLE (`except_key_fields`): a key format and key fields.
        sink.except_key = crate::source::kafka::value_excludes_key(options);
        Ok(sink)
    }

    /// The topic, the producer's configuration and the delivery guarantee, checked.
    fn with_formats(
        table: &str,
        options: &Options,
        format: Format,
        key_format: Format,
    ) -> Result<Self> {
        options.require("properties.bootstrap.servers", table)?;
        let topics = crate::source::kafka::topics(options, table)?;
        let [topic] = topics.as_slice() else {
            return Err(WeirError::sql(
                "a kafka sink writes one topic",
                options.pos("topic"),
            ));
        };
        if format == Format::Parquet {
            return Err(WeirError::sql(
                "kafka messages are json or csv, not parquet",
                options.pos("format"),
            ));
        }
        match options.get("sink.partitioner") {
            None | Some("default") => {}
            Some(other) => {
                return Err(WeirError::sql(
                    format!("sink.partitioner '{other}' is not supported yet"),
                    options.pos("sink.partitioner"),
                )
                .with_hint("'default': by key hash when key.fields is set, sticky otherwise"));
            }
        }
        let mut config = crate::source::kafka::client_config(options);
        config.set("enable.idempotence", "true");
        let at_least_once = match options.get("sink.delivery-guarantee") {
            None | Some("at-least-once") => true,
            Some("none") => false,
            Some("exactly-once") => {
                return Err(WeirError::sql(
                    "'sink.delivery-guarantee' = 'exactly-once' needs Kafka transactions, which Weir's Kafka sink does not use yet",
                    options.pos("sink.delivery-guarantee"),
                )
                .with_hint("use 'at-least-once' (the producer is flushed at every checkpoint), and an idempotent consumer"));
            }
            Some(other) => {
                return Err(WeirError::sql(
                    format!("unknown 'sink.delivery-guarantee' = '{other}'"),
                    options.pos("sink.delivery-guarantee"),
                )
                .with_hint("use 'at-least-once', 'none' or 'exactly-once'"));
            }
        };
        Ok(KafkaSink {
            delimiter: options.char_or("csv.field-delimiter", b',')?,
            array_delimiter: options
                .get("csv.array-element-delimiter")
                .unwrap_or(crate::format::encode::CSV_ARRAY_DELIMITER)
                .to_string(),
            csv_null: options.get("csv.null-literal").unwrap_or("").to_string(),
            json: crate::format::json_out::JsonWrite::from_options(options)?,
            producer: None,
            config,
            at_least_once,
            topic: topic.clone(),
            format,
            key_format,
            key_fields: vec![],
            upsert: false,
            except_key: false,
            timestamp_column: None,
            headers_column: None,
        })
    }

    /// The sink writing `def`'s persisted `timestamp` and `headers` metadata columns, if it
    /// has them, as each message's timestamp and headers.
    pub fn with_metadata(mut self, def: &crate::sql::catalog::TableDef) -> Self {
        let persisted = |key: &str| {
            def.metadata_declared
                .iter()
                .find(|m| !m.is_virtual && m.key == key)
                .map(|m| m.name.clone())
        };
        self.timestamp_column = persisted("timestamp");
        self.headers_column = persisted("headers");
        self
    }

    /// `data` without its metadata columns, and their values per row: the timestamp in
    /// epoch milliseconds and the headers (each None when the batch has no such column).
    fn take_metadata(&self, data: RecordBatch) -> Result<(RecordBatch, Metadata)> {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
        let at = |c: &Option<String>| c.as_ref().and_then(|c| data.schema().index_of(c).ok());
        let (ts_at, headers_at) = (at(&self.timestamp_column), at(&self.headers_column));
        let mut meta = Metadata::default();
        if let Some(i) = ts_at {
            let ms = datafusion::arrow::compute::cast(
                data.column(i),
                &DataType::Timestamp(TimeUnit::Millisecond, None),
            )?;
            let ms = ms.as_primitive::<TimestampMillisecondType>();
            meta.times = Some(
                (0..ms.len())
                    .map(|r| ms.is_valid(r).then(|| ms.value(r)))
                    .collect(),
            );
        }
        if let Some(i) = headers_at {
            let map = data
                .column(i)
                .as_map_opt()
                .ok_or_else(|| WeirError::internal("a kafka sink's headers column is not a map"))?;
            let mut rows = Vec::with_capacity(map.len());
            for r in 0..map.len() {
                if map.is_null(r) {
                    rows.push(None);
                    continue;
                }
                let entries = map.value(r);
                let keys = datafusion::arrow::compute::cast(entries.column(0), &DataType::Utf8)?;
                let values =
                    datafusion::arrow::compute::cast(entries.column(1), &DataType::Binary)?;
                let (keys, values) = (keys.as_string::<i32>(), values.as_binary::<i32>());
                let mut h = rdkafka::message::OwnedHeaders::new_with_capacity(keys.len());
                for e in 0..keys.len() {
                    h = h.insert(rdkafka::message::Header {
                        key: keys.value(e),
                        value: values.is_valid(e).then(|| values.value(e)),
                    });
                }
                rows.push(Some(h));
            }
            meta.headers = Some(rows);
        }
        let rest: Vec<usize> = (0..data.num_columns())
            .filter(|&c| Some(c) != ts_at && Some(c) != headers_at)
            .collect();
        Ok((data.project(&rest)?, meta))
    }

    /// One encoded message per row of `batch`.
    fn encode(&self, batch: &RecordBatch, format: Format) -> Result<Vec<String>> {
        let text = |buf: Vec<u8>| {
            String::from_utf8(buf)
                .map_err(|e| WeirError::internal(format!("an encoded message is not UTF-8: {e}")))
        };
        match format {
            Format::Csv => {
                // Row by row: a quoted CSV value may hold a line break, so the lines of
                // the whole batch are not its rows.
                let batch =
                    crate::format::encode::csv_ready(batch, &self.array_delimiter, &self.csv_null)?;
                (0..batch.num_rows())
                    .map(|i| {
                        let mut buf = vec![];
                        crate::format::encode::csv_writer(&mut buf, self.delimiter, false)
                            .write(&batch.slice(i, 1))?;
                        let line = text(buf)?;
                        Ok(line.strip_suffix('\n').unwrap_or(&line).to_string())
                    })
                    .collect()
            }
            _ => {
                // JSON escapes line breaks inside strings: one line per row.
                let mut buf = vec![];
                let mut w = self.json.writer(&mut buf);
                w.write(batch)?;
                w.finish()?;
                Ok(text(buf)?.lines().map(str::to_string).collect())
            }
        }
    }
}

impl KafkaSink {
    fn producer(&self) -> Result<&BaseProducer<Deliveries>> {
        self.producer
            .as_ref()
            .ok_or_else(|| WeirError::internal("the kafka sink was not opened"))
    }

    /// Fails when a message could not be delivered.
    fn check_deliveries(&self) -> Result<()> {
        let failed = self
            .producer()?
            .context()
            .failed
            .lock()
            .ok()
            .and_then(|f| f.clone());
        match failed {
            Some(e) => Err(WeirError::external(format!(
                "kafka: a message to '{}' was not delivered: {e}",
                self.topic
            ))),
            None => Ok(()),
        }
    }
}

impl KafkaSink {
    /// Sends one message (no value: a tombstone), with its timestamp (epoch ms; None: the
    /// producer's) and headers, waiting while the producer's queue is full (backpressure).
    fn send(
        &self,
        key: Option<&String>,
        value: Option<&String>,
        time: Option<i64>,
        headers: Option<rdkafka::message::OwnedHeaders>,
    ) -> Result<()> {
        loop {
            let mut record = BaseRecord::<String, String>::to(&self.topic);
            if let Some(t) = time {
                record = record.timestamp(t);
            }
            if let Some(h) = &headers {
                record = record.headers(h.clone());
            }
            if let Some(v) = value {
                record = record.payload(v);
            }
            if let Some(k) = key {
                record = record.key(k);
            }
            match self.producer()?.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    // Backpressure: wait for deliveries to free the queue.
                    self.producer()?.poll(Duration::from_millis(50));
                }
                Err((e, _)) => {
                    return Err(WeirError::external(format!(
                        "kafka: cannot send to '{}': {e}",
                        self.topic
                    )));
                }
            }
        }
    }

    fn connect(&mut self) -> Result<()> {
        let producer: BaseProducer<Deliveries> = self
            .config
            .create_with_context(Deliveries {
                secrets: crate::source::kafka::secrets(&self.config),
                ..Deliveries::default()
            })
            .map_err(|e| {
                WeirError::external(format!(
                    "kafka: cannot create a producer: {}",
                    crate::source::kafka::scrubbed(&self.config, &e)
                ))
            })?;
        self.producer = Some(producer);
        Ok(())
    }
}

impl Sink for KafkaSink {
    fn open(&mut self, _ctx: &super::SinkContext) -> Result<()> {
        self.connect()
    }

    /// At-least-once: every message sent before the barrier is acknowledged by the broker
    /// before the checkpoint completes. A sink that sent nothing yet (a late-data sink
    /// connects at its first row) has nothing to wait for.
    fn pre_commit(&mut self, _checkpoint: u64) -> Result<Option<Vec<RecordBatch>>> {
        if self.at_least_once && self.producer.is_some() {
            self.producer()?
                .flush(Duration::from_secs(60))
                .map_err(|e| WeirError::external(format!("kafka: delivery failed: {e}")))?;
            self.check_deliveries()?;
        }
        Ok(None)
    }

    fn accepts_changes(&self) -> bool {
        self.upsert
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.producer.is_none() {
            // A late-data sink is not opened by a sink task: it connects at its first row.
            self.connect()?;
        }
        self.check_deliveries()?;
        let (data, kinds) = crate::changelog::split(batch);
        let (data, mut meta) = self.take_metadata(data)?;
        let key_idx = self
            .key_fields
            .iter()
            .map(|k| {
                data.schema()
                    .index_of(k)
                    .map_err(|_| WeirError::user(format!("key.fields names '{k}', not a column")))
            })
            .collect::<Result<Vec<_>>>()?;
        let values = match self.except_key {
            true => {
                let rest: Vec<usize> = (0..data.num_columns())
                    .filter(|i| !key_idx.contains(i))
                    .collect();
                self.encode(&data.project(&rest)?, self.format)?
            }
            false => self.encode(&data, self.format)?,
        };
        if self.upsert
            && let Some(&c) = key_idx.iter().find(|&&c| data.column(c).null_count() > 0)
        {
            // Flink enforces a primary key's NOT NULL at the sink
            // (`table.exec.sink.not-null-enforcer` = ERROR): a NULL key has no message key.
            return Err(WeirError::user(format!(
                "upsert-kafka '{}': a row with a NULL primary key column '{}'",
                self.topic,
                data.schema().field(c).name()
            )));
        }
        let keys = if key_idx.is_empty() {
            None
        } else {
            Some(self.encode(&data.project(&key_idx)?, self.key_format)?)
        };
        for (i, v) in values.iter().enumerate() {
            let kind = match &kinds {
                Some(k) => crate::changelog::RowKind::from_i8(k.value(i))
                    .ok_or_else(|| WeirError::internal("unknown row kind"))?,
                None => crate::changelog::RowKind::Insert,
            };
            let value = match kind {
                crate::changelog::RowKind::UpdateBefore => continue,
                // A tombstone: the key with no value.
                crate::changelog::RowKind::Delete => None,
                _ => Some(v),
            };
            let time = meta
                .times
                .as_ref()
                .and_then(|t| t.get(i).copied().flatten());
            if let Some(t) = time.filter(|t| *t < 0) {
                // Kafka's producer refuses it (Flink's too: "Invalid timestamp").
                return Err(WeirError::user(format!(
                    "kafka '{}': a message timestamp of {t} ms is before 1970, which Kafka cannot hold",
                    self.topic
                )));
            }
            let headers = meta
                .headers
                .as_mut()
                .and_then(|h| h.get_mut(i).and_then(Option::take));
            self.send(keys.as_ref().and_then(|k| k.get(i)), value, time, headers)?;
        }
        self.producer()?.poll(Duration::ZERO);
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.producer.is_none() {
            return Ok(());
        }
        self.producer()?
            .flush(Duration::from_secs(60))
            .map_err(|e| WeirError::external(format!("kafka: delivery failed: {e}")))?;
        self.check_deliveries()
    }
}

/// An `upsert-kafka` table's value format, key format, and whether the value leaves the
/// key's columns out; errors as [`KafkaSink::create_upsert`] says.
pub(crate) fn upsert_formats(
    def: &crate::sql::catalog::TableDef,
    options: &Options,
) -> Result<(Format, Format, bool)> {
    check_upsert(def)?;
    let format = message_format(options, "value.format", &def.name)?;
    let key_format = message_format(options, "key.format", &def.name)?;
    let except_key = match options.get("value.fields-include") {
        None | Some("ALL") => false,
        Some("EXCEPT_KEY") => true,
        Some(other) => {
            return Err(WeirError::sql(
                format!("unknown 'value.fields-include' = '{other}'"),
                options.pos("value.fields-include"),
            )
            .with_hint("use 'ALL' or 'EXCEPT_KEY'"));
        }
    };
    Ok((format, key_format, except_key))
}

/// Checks an `upsert-kafka` table at `CREATE TABLE`: a primary key of its own columns,
/// `key.format` and `value.format` (`json` or `csv`), a known `value.fields-include`.
pub fn check_upsert_table(def: &crate::sql::catalog::TableDef) -> Result<()> {
    upsert_formats(def, &def.options).map(|_| ())
}

/// An `upsert-kafka` table needs a primary key of its own columns.
fn check_upsert(def: &crate::sql::catalog::TableDef) -> Result<()> {
    if def.primary_key.is_empty() {
        return Err(WeirError::sql(
            format!(
                "table '{}' (connector 'upsert-kafka') needs a primary key: its columns are the message key",
                def.name
            ),
            Some(def.pos),
        )
        .with_hint("declare it with the columns: PRIMARY KEY (id) NOT ENFORCED"));
    }
    if let Some(k) = def
        .primary_key
        .iter()
        .find(|k| def.physical.index_of(k).is_err())
    {
        return Err(WeirError::sql(
            format!(
                "the primary key of table '{}' names '{k}', not a column",
                def.name
            ),
            Some(def.pos),
        ));
    }
    Ok(())
}
