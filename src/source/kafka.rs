//! The `kafka` source: a topic read through librdkafka (rdkafka).
//!
//! All partitions of the topic(s) are assigned to one consumer and read from the
//! `scan.startup.mode` position; with `scan.bounded.mode` = `latest-offset` the source ends
//! once every partition reaches the offset it had when the query started. Messages are
//! decoded by the table's format (`json`, `csv`, or `raw`: the whole value in one column).
//! The channel downstream is bounded, so a slow query stops this thread from polling and the
//! consumer stops fetching (librdkafka's queue stays bounded by `queued.max.messages.kbytes`).
//! Consumed offsets are committed to the group as Flink does without checkpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, BinaryArray, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::error::{Result, WeirError};
use crate::format::{Decoder, Format};
use crate::source::{Source, SourceContext};
use crate::sql::options::Options;

/// Options of the kafka connector besides `properties.*` and the format's.
pub const OPTIONS: &[&str] = &[
    "topic",
    "properties.bootstrap.servers",
    "properties.group.id",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.bounded.mode",
    "format",
    "key.format",
    "key.fields",
    "sink.partitioner",
    "properties.",
];

/// Where reading starts.
#[derive(Debug, Clone, Copy)]
enum Startup {
    Earliest,
    Latest,
    Group,
    Timestamp(i64),
}

pub struct KafkaSource {
    config: ClientConfig,
    topics: Vec<String>,
    startup: Startup,
    bounded: bool,
    decoder: Option<Decoder>,
    schema: SchemaRef,
    batch_size: usize,
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

pub fn topics(options: &Options, table: &str) -> Result<Vec<String>> {
    Ok(options
        .require("topic", table)?
        .split(';')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect())
}

impl KafkaSource {
    pub fn new(
        table: &str,
        options: &Options,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Result<Self> {
        options.require("properties.bootstrap.servers", table)?;
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
            other => {
                return Err(WeirError::sql(
                    format!("unknown scan.startup.mode '{other}'"),
                    options.pos("scan.startup.mode"),
                )
                .with_hint("earliest-offset, latest-offset, group-offsets or timestamp"));
            }
        };
        let bounded = match options.get("scan.bounded.mode") {
            None | Some("unbounded") => false,
            Some("latest-offset") => true,
            Some(other) => {
                return Err(WeirError::sql(
                    format!("unknown scan.bounded.mode '{other}'"),
                    options.pos("scan.bounded.mode"),
                )
                .with_hint("latest-offset or unbounded"));
            }
        };
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
                Some(Decoder::new(format, schema.clone(), options)?)
            }
        };
        if decoder.is_none()
            && (schema.fields().len() != 1
                || !matches!(
                    schema.field(0).data_type(),
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
        Ok(KafkaSource {
            config,
            topics: topics(options, table)?,
            startup,
            bounded,
            decoder,
            schema,
            batch_size,
        })
    }

    fn raw_batch(&self, values: &[Vec<u8>]) -> Result<RecordBatch> {
        let col: ArrayRef = match self.schema.field(0).data_type() {
            DataType::Binary => Arc::new(BinaryArray::from_iter_values(values.iter())),
            _ => Arc::new(StringArray::from_iter_values(
                values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).to_string()),
            )),
        };
        Ok(RecordBatch::try_new(self.schema.clone(), vec![col])?)
    }
}

fn kafka_err(what: &str, e: rdkafka::error::KafkaError) -> WeirError {
    WeirError::external(format!("kafka: {what}: {e}"))
}

impl Source for KafkaSource {
    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let consumer: BaseConsumer = self
            .config
            .create()
            .map_err(|e| kafka_err("cannot create a consumer", e))?;
        let timeout = Duration::from_secs(10);
        // Every partition of every topic, at its starting offset; and, when bounded, the
        // offset where it ends.
        let mut tpl = TopicPartitionList::new();
        let mut end: HashMap<(String, i32), i64> = HashMap::new();
        for topic in &self.topics {
            let md = consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|e| kafka_err(&format!("cannot reach the broker for '{topic}'"), e))?;
            let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
                return Err(WeirError::user(format!("kafka: no topic '{topic}'")));
            };
            if t.partitions().is_empty() {
                return Err(WeirError::user(format!(
                    "kafka: topic '{topic}' does not exist (create it first)"
                )));
            }
            for p in t.partitions() {
                let offset = match self.startup {
                    Startup::Earliest | Startup::Timestamp(_) => Offset::Beginning,
                    Startup::Latest => Offset::End,
                    Startup::Group => Offset::Stored,
                };
                tpl.add_partition_offset(topic, p.id(), offset)
                    .map_err(|e| kafka_err("cannot assign", e))?;
                if self.bounded {
                    let (_, high) = consumer
                        .fetch_watermarks(topic, p.id(), timeout)
                        .map_err(|e| kafka_err("cannot read the end offsets", e))?;
                    end.insert((topic.clone(), p.id()), high);
                }
            }
        }
        if let Startup::Timestamp(ms) = self.startup {
            let mut times = TopicPartitionList::new();
            for e in tpl.elements() {
                times
                    .add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms))
                    .map_err(|e| kafka_err("cannot assign", e))?;
            }
            tpl = consumer
                .offsets_for_times(times, timeout)
                .map_err(|e| kafka_err("cannot look up offsets by time", e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_err("cannot assign partitions", e))?;
        // Each partition has its own watermark; the source's is their minimum.
        let index: HashMap<(String, i32), usize> = tpl
            .elements()
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.topic().to_string(), e.partition()), i))
            .collect();
        ctx.set_partitions(index.len());
        let mut ended = vec![false; index.len()];
        // Positions reached (the next offset to read), per partition.
        let mut pos: HashMap<(String, i32), i64> = HashMap::new();
        let done = |pos: &HashMap<(String, i32), i64>| {
            end.iter()
                .all(|(k, high)| *high <= 0 || pos.get(k).is_some_and(|p| p >= high))
        };
        if self.bounded && done(&pos) && end.values().all(|h| *h <= 0) {
            ctx.finish(true);
            return Ok(());
        }
        // Per partition: values not yet emitted and where they came from.
        let mut values: Vec<Vec<Vec<u8>>> = vec![vec![]; index.len()];
        let mut origins: Vec<Vec<(String, i32, i64)>> = vec![vec![]; index.len()];
        let mut buffered = 0usize;
        let mut last_commit = Instant::now();
        let mut last_flush = Instant::now();
        loop {
            if ctx.should_stop() {
                for p in 0..values.len() {
                    self.flush(p, &mut values[p], &mut origins[p], ctx)?;
                }
                let _ = consumer.commit_consumer_state(CommitMode::Sync);
                ctx.finish(false);
                return Ok(());
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let key = (m.topic().to_string(), m.partition());
                    let p = index.get(&key).copied().unwrap_or(0);
                    if !(self.bounded && end.get(&key).is_some_and(|h| m.offset() >= *h)) {
                        values[p].push(m.payload().unwrap_or_default().to_vec());
                        origins[p].push((key.0.clone(), key.1, m.offset()));
                        buffered += 1;
                    }
                    pos.insert(key, m.offset() + 1);
                }
                Some(Err(e)) => return Err(kafka_err("consume", e)),
                None => {}
            }
            let finished = self.bounded && done(&pos);
            if buffered >= self.batch_size
                || (buffered > 0 && (finished || last_flush.elapsed() > Duration::from_millis(200)))
            {
                for p in 0..values.len() {
                    if !self.flush(p, &mut values[p], &mut origins[p], ctx)? {
                        ctx.finish(false);
                        return Ok(());
                    }
                }
                buffered = 0;
                last_flush = Instant::now();
                if last_commit.elapsed() > Duration::from_secs(1) {
                    let _ = consumer.commit_consumer_state(CommitMode::Async);
                    last_commit = Instant::now();
                }
            }
            if self.bounded {
                // A partition read to its end stops holding the watermark back.
                for (k, high) in &end {
                    if let Some(&p) = index.get(k)
                        && !ended[p]
                        && (*high <= 0 || pos.get(k).is_some_and(|x| x >= high))
                        && values[p].is_empty()
                    {
                        ended[p] = true;
                        ctx.partition_ended(p);
                    }
                }
            }
            if finished {
                let _ = consumer.commit_consumer_state(CommitMode::Sync);
                ctx.finish(true);
                return Ok(());
            }
        }
    }
}

impl KafkaSource {
    /// Decodes and emits the collected values. Returns false when the source should stop.
    fn flush(
        &self,
        partition: usize,
        values: &mut Vec<Vec<u8>>,
        origins: &mut Vec<(String, i32, i64)>,
        ctx: &mut SourceContext,
    ) -> Result<bool> {
        if values.is_empty() {
            return Ok(true);
        }
        let batch = match &self.decoder {
            None => Some(self.raw_batch(values)?),
            Some(d) => {
                let lines: Vec<String> = values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).trim_end().to_string())
                    .collect();
                let decoded = match d.decode(&lines, "kafka", 1) {
                    Ok(d) => d,
                    Err(e) => {
                        // Name the message: topic, partition and offset.
                        for (i, l) in lines.iter().enumerate() {
                            if d.decode(std::slice::from_ref(l), "kafka", 1).is_err()
                                && let Some((t, p, o)) = origins.get(i)
                            {
                                return Err(WeirError::user(format!(
                                    "kafka topic '{t}' partition {p} offset {o}: a malformed record ({e})"
                                )));
                            }
                        }
                        return Err(e);
                    }
                };
                for _ in 0..decoded.skipped {
                    ctx.bad_record();
                }
                decoded.batch
            }
        };
        values.clear();
        origins.clear();
        match batch {
            Some(b) => ctx.emit_from(partition, b),
            None => Ok(true),
        }
    }
}
