//! The Prometheus endpoint: `GET /metrics` in the OpenMetrics text format (which
//! Prometheus scrapes natively), served by `weir run --metrics-addr ADDR` and by the shell
//! once `SET 'metrics.reporter.prom.port' = '9249'` (Flink's option) is set.
//!
//! Every value is read from the jobs' own counters at scrape time (a
//! [`prometheus_client::collector::Collector`]); nothing is copied on the hot path. Names
//! follow Prometheus's conventions: `weir_` prefix, base units (`_seconds`, `_bytes`),
//! `_total` on counters. Labels: `job` (the job's `pipeline.name`, or the name derived from
//! its statement), `job_id` (its number in this process), and for operator metrics
//! `operator_id` (the task's position in the plan) and `operator` (its name, as in the
//! end-of-run summary). No label holds an option value, so no secret can leak through one.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::checkpoint::Checkpointer;
use crate::error::{Result, WeirError};
use crate::job::JobMetrics;

/// Upper bounds of the end-to-end latency histogram's buckets, seconds (`le`).
pub const LATENCY_BUCKETS_S: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Upper bounds of the processing-latency histogram's buckets, seconds (`le`).
pub const PROCESSING_BUCKETS_S: [f64; 12] = [
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// Each bucket's own count from cumulative counts at `bounds` (the encoder sums them back
/// into Prometheus's cumulative `le` counts), with `+Inf` taking the rest of `count`.
fn per_bucket(bounds: &[f64], cumulative: &[u64], count: u64) -> Vec<(f64, u64)> {
    let mut below = 0;
    let mut buckets: Vec<(f64, u64)> = vec![];
    for (bound, c) in bounds.iter().zip(cumulative) {
        buckets.push((*bound, c.saturating_sub(below)));
        below = below.max(*c);
    }
    buckets.push((f64::INFINITY, count.saturating_sub(below)));
    buckets
}

/// A job as the endpoint sees it.
struct Entry {
    job: String,
    job_id: u64,
    metrics: Arc<JobMetrics>,
    checkpointer: Option<Arc<Checkpointer>>,
}

#[derive(Default)]
struct Jobs(Mutex<Vec<Entry>>);

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jobs")
    }
}

/// A running `/metrics` endpoint. Jobs are added as they start and stay listed (with
/// their final values) until the process ends.
pub struct MetricsServer {
    jobs: Arc<Jobs>,
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
}

impl MetricsServer {
    /// Listens on `addr` (`host:port`; port 0 picks a free one) and serves `/metrics` from
    /// a thread of its own. Errors: the address does not parse or cannot be bound (in use,
    /// not an address of this machine).
    pub fn start(addr: &str) -> Result<MetricsServer> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| WeirError::user(format!("cannot serve metrics on '{addr}': {e}")))?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| WeirError::user(format!("'{addr}' is not an IP address and port")))?;
        let server = Arc::new(server);
        let jobs = Arc::new(Jobs::default());
        let (s, j) = (server.clone(), jobs.clone());
        std::thread::Builder::new()
            .name("weir-metrics".into())
            .spawn(move || serve(&s, &j))
            .map_err(|e| WeirError::external(format!("cannot start a thread: {e}")))?;
        Ok(MetricsServer {
            jobs,
            addr: bound,
            server,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Lists a job: `job` names it (its `pipeline.name` or derived name), `job_id` is its
    /// number in this process.
    pub fn add_job(
        &self,
        job: &str,
        job_id: u64,
        metrics: Arc<JobMetrics>,
        checkpointer: Option<Arc<Checkpointer>>,
    ) {
        if let Ok(mut j) = self.jobs.0.lock() {
            j.push(Entry {
                job: job.to_string(),
                job_id,
                metrics,
                checkpointer,
            });
        }
    }

    /// The exposition as a scrape would get it (OpenMetrics text, ending in `# EOF`).
    pub fn render(&self) -> String {
        render(&self.jobs)
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn render(jobs: &Arc<Jobs>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(jobs.clone()));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

fn serve(server: &tiny_http::Server, jobs: &Arc<Jobs>) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or_default();
        let response = if path == "/metrics" {
            let body = render(jobs);
            let ct = tiny_http::Header::from_bytes(
                &b"Content-Type"[..],
                &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
            );
            let mut r = tiny_http::Response::from_string(body);
            if let Ok(h) = ct {
                r.add_header(h);
            }
            r
        } else {
            tiny_http::Response::from_string("Weir serves its metrics at /metrics\n")
                .with_status_code(404)
        };
        // A scraper that hung up is not our error.
        let _ = request.respond(response);
    }
}

/// One metric family: its name (without `_total` and unit), help, unit and type, and a
/// value per label set.
struct Family<V> {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    rows: Vec<(Vec<(&'static str, String)>, V)>,
}

impl<V> Family<V> {
    fn new(name: &'static str, help: &'static str, unit: Option<Unit>) -> Self {
        Family {
            name,
            help,
            unit,
            rows: vec![],
        }
    }
}

fn counters(enc: &mut DescriptorEncoder, f: Family<f64>) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(f.name, f.help, f.unit.as_ref(), MetricType::Counter)?;
    for (labels, v) in &f.rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauges(enc: &mut DescriptorEncoder, f: Family<f64>) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(f.name, f.help, f.unit.as_ref(), MetricType::Gauge)?;
    for (labels, v) in &f.rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Jobs {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let Ok(jobs) = self.0.lock() else {
            return Ok(());
        };
        let now_ms = crate::sql::functions::now_millis();
        let mut rin = Family::new(
            "weir_operator_records_in",
            "Rows an operator (task) took in.",
            None,
        );
        let mut rout = Family::new(
            "weir_operator_records_out",
            "Rows an operator (task) sent on (for the sink: wrote).",
            None,
        );
        let mut bin = Family::new(
            "weir_operator_batches_in",
            "Arrow record batches an operator took in.",
            None,
        );
        let mut bout = Family::new(
            "weir_operator_batches_out",
            "Arrow record batches an operator sent on.",
            None,
        );
        let mut busy = Family::new(
            "weir_operator_busy",
            "Time an operator spent processing (rate(): the busy fraction, as Flink's busyTimeMsPerSecond / 1000).",
            Some(Unit::Seconds),
        );
        let mut bp = Family::new(
            "weir_operator_backpressured",
            "Time an operator waited for room in its output channel (rate(): Flink's backPressuredTimeMsPerSecond / 1000).",
            Some(Unit::Seconds),
        );
        let mut state_rows = Family::new(
            "weir_operator_state_rows",
            "Rows of state a stateful operator keeps (groups, kept join rows), sampled every 250 ms.",
            None,
        );
        let mut state_bytes = Family::new(
            "weir_operator_state",
            "Bytes of state a stateful operator keeps, as Arrow and DataFusion account them, sampled every 250 ms.",
            Some(Unit::Bytes),
        );
        let mut op_late = Family::new(
            "weir_operator_late_records",
            "Rows an operator dropped (or sent to its late-data sink) because their windows had fired (Flink's numLateRecordsDropped).",
            None,
        );
        let mut op_bad = Family::new(
            "weir_operator_bad_records",
            "Records a source could not read and skipped ('*.ignore-parse-errors'), or sent to its 'dead-letter.sink' table.",
            None,
        );
        let mut late = Family::new(
            "weir_job_late_records",
            "Rows that came after all their windows had fired.",
            None,
        );
        let mut bad = Family::new(
            "weir_job_bad_records",
            "Records the job's sources could not read and skipped ('*.ignore-parse-errors', 'dead-letter.sink').",
            None,
        );
        let mut tombstones = Family::new(
            "weir_job_kafka_tombstones_skipped",
            "Kafka messages without a value the job's sources skipped (no row for them).",
            None,
        );
        let mut keyless = Family::new(
            "weir_job_kafka_keyless_skipped",
            "Kafka messages without a key the job's sources skipped where the key holds columns (upsert-kafka; kafka with value.fields-include EXCEPT_KEY): no row for them.",
            None,
        );
        let mut wm = Family::new(
            "weir_job_watermark",
            "The job's current watermark, seconds since the epoch (absent before the first).",
            Some(Unit::Seconds),
        );
        let mut lag = Family::new(
            "weir_job_event_time_lag",
            "Now minus the watermark (absent before the first watermark and after the last).",
            Some(Unit::Seconds),
        );
        let mut uptime = Family::new(
            "weir_job_uptime",
            "Time since the job started.",
            Some(Unit::Seconds),
        );
        let mut kafka_lag = Family::new(
            "weir_kafka_consumer_lag",
            "A Kafka source partition's high-water offset minus the source's position, messages (librdkafka's statistics, every second).",
            None,
        );
        let mut cp_done = Family::new(
            "weir_job_checkpoints_completed",
            "Checkpoints completed in this run.",
            None,
        );
        let mut cp_failed = Family::new(
            "weir_job_checkpoints_failed",
            "Checkpoints that failed in this run.",
            None,
        );
        let mut cp_dur = Family::new(
            "weir_job_last_checkpoint_duration",
            "The last completed checkpoint's duration, from trigger to manifest.",
            Some(Unit::Seconds),
        );
        let mut cp_size = Family::new(
            "weir_job_last_checkpoint_size",
            "The last completed checkpoint's state size.",
            Some(Unit::Bytes),
        );
        for e in jobs.iter() {
            let job = vec![("job", e.job.clone()), ("job_id", e.job_id.to_string())];
            for (i, o) in e.metrics.operators().iter().enumerate() {
                let mut l = job.clone();
                l.push(("operator_id", i.to_string()));
                l.push(("operator", o.name.clone()));
                let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
                rin.rows.push((l.clone(), get(&o.rows_in)));
                rout.rows.push((l.clone(), get(&o.rows_out)));
                bin.rows.push((l.clone(), get(&o.batches_in)));
                bout.rows.push((l.clone(), get(&o.batches_out)));
                // A source's time is spent reading and decoding, outside the run loop
                // that measures busy time: not reported.
                if !o.name.starts_with("source") {
                    busy.rows.push((l.clone(), get(&o.busy_ns) / 1e9));
                }
                if let Some((rows, bytes)) = o.state() {
                    state_rows.rows.push((l.clone(), rows as f64));
                    state_bytes.rows.push((l.clone(), bytes as f64));
                }
                if o.name.starts_with("source") {
                    op_bad.rows.push((l.clone(), get(&o.bad_records)));
                } else if o.name != "sink" {
                    op_late.rows.push((l.clone(), get(&o.late_rows)));
                }
                bp.rows.push((l, get(&o.backpressured_ns) / 1e9));
            }
            late.rows.push((
                job.clone(),
                e.metrics.late_rows.load(Ordering::Relaxed) as f64,
            ));
            bad.rows.push((
                job.clone(),
                e.metrics.bad_records.load(Ordering::Relaxed) as f64,
            ));
            tombstones.rows.push((
                job.clone(),
                e.metrics.tombstones.load(Ordering::Relaxed) as f64,
            ));
            keyless.rows.push((
                job.clone(),
                e.metrics.keyless.load(Ordering::Relaxed) as f64,
            ));
            let w = e.metrics.watermark.load(Ordering::Relaxed);
            if w != i64::MIN && w != i64::MAX {
                wm.rows.push((job.clone(), w as f64 / 1000.0));
                lag.rows.push((job.clone(), (now_ms - w) as f64 / 1000.0));
            }
            for (table, topic, partition, lag) in e.metrics.consumer_lags() {
                let mut l = job.clone();
                l.push(("table", table));
                l.push(("topic", topic));
                l.push(("partition", partition.to_string()));
                kafka_lag.rows.push((l, lag as f64));
            }
            uptime
                .rows
                .push((job.clone(), e.metrics.started.elapsed().as_secs_f64()));
            if let Some(cp) = &e.checkpointer {
                cp_done.rows.push((job.clone(), cp.completed() as f64));
                cp_failed.rows.push((job.clone(), cp.failed() as f64));
                if let Some(last) = cp.last() {
                    cp_dur.rows.push((job.clone(), last.duration.as_secs_f64()));
                    cp_size.rows.push((job.clone(), last.bytes as f64));
                }
            }
        }
        for f in [
            rin, rout, bin, bout, busy, bp, op_late, op_bad, late, bad, tombstones, keyless,
            cp_done, cp_failed,
        ] {
            counters(&mut enc, f)?;
        }
        for f in [
            wm,
            lag,
            kafka_lag,
            state_rows,
            state_bytes,
            uptime,
            cp_dur,
            cp_size,
        ] {
            gauges(&mut enc, f)?;
        }
        // Processing latency per operator (not sources: their work happens outside the run
        // loop), a histogram with fixed buckets.
        {
            let mut m = enc.encode_descriptor(
                "weir_operator_processing_latency",
                "Per batch or watermark an operator handled: from taking it to having its output ready (waiting for room downstream not included).",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            let bounds_us: Vec<u64> = PROCESSING_BUCKETS_S
                .iter()
                .map(|s| (s * 1e6) as u64)
                .collect();
            for e in jobs.iter() {
                for (i, o) in e.metrics.operators().iter().enumerate() {
                    if o.name.starts_with("source") {
                        continue;
                    }
                    let labels = vec![
                        ("job", e.job.clone()),
                        ("job_id", e.job_id.to_string()),
                        ("operator_id", i.to_string()),
                        ("operator", o.name.clone()),
                    ];
                    let (l, cumulative) = o.processing_with_buckets(&bounds_us);
                    let buckets = per_bucket(&PROCESSING_BUCKETS_S, &cumulative, l.count);
                    m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                        l.sum / 1e6,
                        l.count,
                        &buckets,
                        None,
                    )?;
                }
            }
        }
        // End-to-end latency, a histogram per job with fixed buckets, from the HDR
        // histogram's counts.
        let mut m = enc.encode_descriptor(
            "weir_job_end_to_end_latency",
            "Per output row: from the source emitting the batch that made the row ready (for a window, the batch whose watermark fired it) to the sink writing it.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        let bounds_us: Vec<u64> = LATENCY_BUCKETS_S.iter().map(|s| (s * 1e6) as u64).collect();
        for e in jobs.iter() {
            let job = vec![("job", e.job.clone()), ("job_id", e.job_id.to_string())];
            let (l, cumulative) = e.metrics.latency_with_buckets(&bounds_us);
            let buckets = per_bucket(&LATENCY_BUCKETS_S, &cumulative, l.count);
            m.encode_family(&job)?.encode_histogram::<NoLabelSet>(
                l.sum / 1e6,
                l.count,
                &buckets,
                None,
            )?;
        }
        Ok(())
    }
}
