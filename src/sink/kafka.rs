//! The `kafka` sink: each row becomes one message, its value encoded by `format` (`json` or
//! `csv`), its key by `key.format` from `key.fields`. The producer is idempotent
//! (`enable.idempotence`), sends wait while librdkafka's queue is full (backpressure), and a
//! delivery error fails the query — never silently.

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
}

impl ClientContext for Deliveries {}

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

pub struct KafkaSink {
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
}

impl KafkaSink {
    pub fn create(table: &str, options: &Options) -> Result<Self> {
        options.require("properties.bootstrap.servers", table)?;
        let topics = crate::source::kafka::topics(options, table)?;
        let [topic] = topics.as_slice() else {
            return Err(WeirError::sql(
                "a kafka sink writes one topic",
                options.pos("topic"),
            ));
        };
        let format = Format::parse(options, table)?;
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
        let key_format = match options.get("key.format") {
            None => format,
            Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(other) => {
                return Err(WeirError::sql(
                    format!("key.format '{other}': use json or csv"),
                    options.pos("key.format"),
                ));
            }
        };
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
        let key_fields = options
            .get("key.fields")
            .map(|k| k.split(';').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        Ok(KafkaSink {
            producer: None,
            config,
            at_least_once,
            topic: topic.clone(),
            format,
            key_format,
            key_fields,
        })
    }

    fn encode(&self, batch: &RecordBatch, format: Format) -> Result<Vec<String>> {
        let mut buf = vec![];
        match format {
            Format::Csv => {
                let mut w = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .build(&mut buf);
                w.write(batch)?;
            }
            _ => {
                let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
                w.write(batch)?;
                w.finish()?;
            }
        }
        Ok(String::from_utf8_lossy(&buf)
            .lines()
            .map(str::to_string)
            .collect())
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
    fn connect(&mut self) -> Result<()> {
        let producer: BaseProducer<Deliveries> = self
            .config
            .create_with_context(Deliveries::default())
            .map_err(|e| WeirError::external(format!("kafka: cannot create a producer: {e}")))?;
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

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.producer.is_none() {
            // A late-data sink is not opened by a sink task: it connects at its first row.
            self.connect()?;
        }
        self.check_deliveries()?;
        let values = self.encode(batch, self.format)?;
        let keys = if self.key_fields.is_empty() {
            None
        } else {
            let idx = self
                .key_fields
                .iter()
                .map(|k| {
                    batch.schema().index_of(k).map_err(|_| {
                        WeirError::user(format!("key.fields names '{k}', not a column"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let keyed = batch.project(&idx)?;
            Some(self.encode(&keyed, self.key_format)?)
        };
        for (i, v) in values.iter().enumerate() {
            let key = keys.as_ref().and_then(|k| k.get(i));
            loop {
                let mut record = BaseRecord::<String, String>::to(&self.topic).payload(v);
                if let Some(k) = key {
                    record = record.key(k);
                }
                match self.producer()?.send(record) {
                    Ok(()) => break,
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
