//! Per-job and per-operator metrics. Counters are plain atomics, updated on the hot path
//! with relaxed ordering (per batch, never per row); the end-to-end latency is an HDR
//! histogram updated once per batch the sink writes. Read by whoever reports: the
//! end-of-run summary, the shell's job list, the Prometheus endpoint
//! ([`crate::job::exporter`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// One task's counters (a source, a chain of operators, a join or union, the sink).
#[derive(Debug)]
pub struct OperatorMetrics {
    pub name: String,
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    /// Batches taken in.
    pub batches_in: AtomicU64,
    /// Batches sent on (for the sink: written).
    pub batches_out: AtomicU64,
    /// Time spent processing messages, ns (Flink's `busyTimeMsPerSecond`, as a total).
    pub busy_ns: AtomicU64,
    /// Time spent waiting for room in the output channel, ns: the task was ready but its
    /// consumer was not (Flink's `backPressuredTimeMsPerSecond`, as a total).
    pub backpressured_ns: AtomicU64,
    /// The state a stateful task keeps, sampled a few times a second: rows (groups, kept
    /// join rows) and bytes; `u64::MAX` rows for a task that reports none.
    pub state_rows: AtomicU64,
    pub state_bytes: AtomicU64,
    /// Rows the task's operators dropped as late (or sent to a late-data sink): Flink's
    /// `numLateRecordsDropped`.
    pub late_rows: AtomicU64,
    /// Records a source's decoder skipped under `*.ignore-parse-errors`.
    pub bad_records: AtomicU64,
    /// Samples of (when, rows in, rows out), one a second over the last 10 s, for the
    /// current rates ([`OperatorMetrics::rates`]).
    samples: Mutex<std::collections::VecDeque<(Instant, u64, u64)>>,
    /// Processing latency, µs, one value per batch or watermark handled: from taking the
    /// message to having its output ready (waiting for room downstream not included).
    /// 1 µs to 1 h, 2 significant digits.
    processing: Mutex<Histogram<u64>>,
    /// Each subtask's last state sample, `(rows, bytes)` (see `set_subtask_state`).
    subtask_states: Mutex<Vec<(u64, u64)>>,
}

impl OperatorMetrics {
    /// Counts a batch of `n` rows taken in.
    pub fn add_in(&self, n: usize) {
        self.rows_in.fetch_add(n as u64, Ordering::Relaxed);
        self.batches_in.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a batch of `n` rows sent on.
    pub fn add_out(&self, n: usize) {
        self.rows_out.fetch_add(n as u64, Ordering::Relaxed);
        self.batches_out.fetch_add(1, Ordering::Relaxed);
    }
    /// Notes the task's state size: `rows` rows, `bytes` bytes.
    pub fn set_state(&self, rows: u64, bytes: u64) {
        self.state_rows.store(rows, Ordering::Relaxed);
        self.state_bytes.store(bytes, Ordering::Relaxed);
    }
    /// Notes the state size of subtask `subtask` of a task run as several: the task's is
    /// the sum over its subtasks' last samples.
    pub fn set_subtask_state(&self, subtask: usize, rows: u64, bytes: u64) {
        let Ok(mut parts) = self.subtask_states.lock() else {
            return;
        };
        if parts.len() <= subtask {
            parts.resize(subtask + 1, (0, 0));
        }
        parts[subtask] = (rows, bytes);
        let (r, b) = parts
            .iter()
            .fold((0u64, 0u64), |a, p| (a.0 + p.0, a.1 + p.1));
        self.set_state(r, b);
    }
    /// The last sampled state size, `(rows, bytes)`, if the task reports one.
    pub fn state(&self) -> Option<(u64, u64)> {
        let rows = self.state_rows.load(Ordering::Relaxed);
        (rows != u64::MAX).then(|| (rows, self.state_bytes.load(Ordering::Relaxed)))
    }
    /// Records one message's processing latency.
    pub fn record_processing(&self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        if let Ok(mut h) = self.processing.lock() {
            let _ = h.record(us);
        }
    }

    /// The processing latency's percentiles and, under the same lock, how many messages
    /// took at most each bound (µs).
    pub fn processing_with_buckets(&self, bounds_us: &[u64]) -> (LatencySummary, Vec<u64>) {
        with_buckets(&self.processing, bounds_us)
    }

    /// Notes the counters now, for [`OperatorMetrics::rates`]; samples older than
    /// [`RATE_SPAN`] go.
    pub fn sample(&self, now: Instant) {
        if let Ok(mut s) = self.samples.lock() {
            s.push_back((now, self.rows_in(), self.rows_out()));
            while s.len() > 1 && s.front().is_some_and(|f| now - f.0 > RATE_SPAN) {
                s.pop_front();
            }
        }
    }

    /// Rows per second in and out over the last [`RATE_SPAN`] (from the oldest sample kept
    /// to now; Flink's `numRecordsInPerSecond` is the same kind of meter over 60 s). Before
    /// the first sample, the averages since the job started. Once the job has ended,
    /// sampling stops and the rates fall as 1/t (what came last over the time since its
    /// oldest sample), so a finished job shows a small, shrinking rate rather than 0.
    pub fn rates(&self, started: Instant) -> (f64, f64) {
        let now = Instant::now();
        let (at, rin, rout) = self
            .samples
            .lock()
            .ok()
            .and_then(|s| s.front().copied())
            .unwrap_or((started, 0, 0));
        let secs = (now - at).as_secs_f64().max(1e-3);
        (
            self.rows_in().saturating_sub(rin) as f64 / secs,
            self.rows_out().saturating_sub(rout) as f64 / secs,
        )
    }

    /// Time busy and time backpressured, each as a percentage of the time since `started`
    /// (the job's start): Flink's `busyTimeMsPerSecond` and `backPressuredTimeMsPerSecond`
    /// / 10, averaged over the run.
    pub fn shares(&self, started: Instant) -> (f64, f64) {
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let pct = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9 / secs * 100.0;
        (pct(&self.busy_ns), pct(&self.backpressured_ns))
    }

    /// Adds time spent processing.
    pub fn add_busy(&self, d: Duration) {
        self.busy_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
    /// Adds time spent waiting for room in the output channel.
    pub fn add_backpressured(&self, d: Duration) {
        self.backpressured_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
    pub fn rows_in(&self) -> u64 {
        self.rows_in.load(Ordering::Relaxed)
    }
    pub fn rows_out(&self) -> u64 {
        self.rows_out.load(Ordering::Relaxed)
    }
}

/// The span over which [`OperatorMetrics::rates`] measures the current rates.
pub const RATE_SPAN: Duration = Duration::from_secs(10);

/// What an operator inside a task counts into: its task's metrics and its job's. Given to
/// every operator of a chain by [`crate::operator::Operator::attach`].
#[derive(Debug, Clone)]
pub struct TaskMetrics {
    /// The job the task belongs to.
    pub job: Arc<JobMetrics>,
    /// The task's own counters (all operators of a fused chain share them).
    pub task: Arc<OperatorMetrics>,
}

impl TaskMetrics {
    /// Counts `n` late rows, for the task and the job (see [`JobMetrics::add_late`]).
    pub fn add_late(&self, n: u64) {
        if n > 0 {
            self.task.late_rows.fetch_add(n, Ordering::Relaxed);
            self.job.add_late(n);
        }
    }
}

#[derive(Debug)]
pub struct JobMetrics {
    pub started: Instant,
    operators: Mutex<Vec<Arc<OperatorMetrics>>>,
    /// Records the sources could not read and skipped (`*.ignore-parse-errors`,
    /// `'dead-letter.sink'`).
    pub bad_records: AtomicU64,
    /// Kafka messages without a value (tombstones) a source skipped: a `kafka` table has
    /// no row for them (Flink's JSON and CSV formats read a null message as no row).
    pub tombstones: AtomicU64,
    /// Kafka messages without a key a source skipped where the key holds columns
    /// (`upsert-kafka`, and `kafka` with `'value.fields-include' = 'EXCEPT_KEY'`): no key,
    /// no row (Flink's sources emit nothing for them).
    pub keyless: AtomicU64,
    /// Rows that arrived after their window had fired.
    pub late_rows: AtomicU64,
    /// The highest watermark a source has emitted (ms), `i64::MIN` before the first.
    pub watermark: AtomicI64,
    /// Late rows not logged yet, and when (ms since the start) the last late-rows line was.
    late_unlogged: AtomicU64,
    late_logged_at: AtomicU64,
    /// End-to-end latency, µs, one value per row the sink wrote: from the moment a source
    /// emitted the batch that made the row ready (for a window's row, the batch whose
    /// watermark fired it) to the moment the sink wrote it. 1 µs to 1 h, 3 significant
    /// digits.
    latency: Mutex<Histogram<u64>>,
    /// Kafka sources' consumer lag, messages: (table, topic, partition) → high-water offset
    /// minus position, as librdkafka's statistics last reported it (every second).
    consumer_lag: Mutex<std::collections::BTreeMap<(String, String, i32), i64>>,
    /// The job's tasks as a tree, set once its tasks are placed.
    plan: std::sync::OnceLock<TaskNode>,
}

/// Percentiles of [`JobMetrics::latency`], µs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// Rows measured.
    pub count: u64,
    /// Median, µs.
    pub p50: u64,
    /// 90th percentile, µs.
    pub p90: u64,
    /// 99th percentile, µs.
    pub p99: u64,
    /// 99.9th percentile, µs.
    pub p999: u64,
    /// The largest, µs.
    pub max: u64,
    /// Sum of every row's latency, µs (for Prometheus's `_sum`).
    pub sum: f64,
}

/// A running job's plan as tasks: each node the lines of the plan it runs (a fused chain's
/// operators, top first, as `EXPLAIN` prints them), its task's metrics, and its inputs.
/// Rendered with live numbers by [`JobMetrics::explain`].
#[derive(Debug)]
pub struct TaskNode {
    /// The plan lines the task runs: its operators' names, top first (one for a source, a
    /// join, a union or the sink).
    pub lines: Vec<String>,
    /// The task's counters (shared by its subtasks when it runs as several).
    pub metrics: Arc<OperatorMetrics>,
    /// How many subtasks run it (see `parallelism.default`); 1 for most.
    pub parallelism: usize,
    /// The tasks feeding it, in input order (a join: left, then right).
    pub inputs: Vec<TaskNode>,
}

impl TaskNode {
    /// This task and those feeding it as summary lines (see [`JobMetrics::report`]): the
    /// name drawn after `lead` (the tree's lines to it), the inputs under `rest`.
    fn summary_lines(
        &self,
        lead: &str,
        rest: &str,
        out: &mut Vec<(String, Option<u64>, Option<u64>)>,
    ) {
        let short: Vec<String> = self.lines.iter().map(|l| short_name(l)).collect();
        let mut kept: Vec<String> = short
            .iter()
            .filter(|n| n.as_str() != "project")
            .cloned()
            .collect();
        if kept.is_empty() {
            kept = short.into_iter().take(1).collect();
        }
        let m = &self.metrics;
        let source = m.name.starts_with("source") || m.name == "values";
        out.push((
            if self.parallelism > 1 {
                format!("{lead}{} ×{}", kept.join(" ← "), self.parallelism)
            } else {
                format!("{lead}{}", kept.join(" ← "))
            },
            (!source).then(|| m.rows_in()),
            (m.name != "sink").then(|| m.rows_out()),
        ));
        for (i, input) in self.inputs.iter().enumerate() {
            let last = i + 1 == self.inputs.len();
            let (branch, more) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            input.summary_lines(&format!("{rest}{branch}"), &format!("{rest}{more}"), out);
        }
    }

    fn render(&self, started: Instant, s: &mut String, depth: usize) {
        use std::fmt::Write;
        let m = &self.metrics;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (rate_in, rate_out) = m.rates(started);
        let mut facts = vec![];
        let source = m.name.starts_with("source") || m.name == "values";
        if !source {
            facts.push(format!("in {} rows ({:.0}/s)", m.rows_in(), rate_in));
        }
        if m.name != "sink" {
            facts.push(format!("out {} rows ({:.0}/s)", m.rows_out(), rate_out));
        }
        if let Some((rows, bytes)) = m.state() {
            facts.push(format!(
                "state {rows} rows, {}",
                indicatif::HumanBytes(bytes)
            ));
        }
        if load(&m.late_rows) > 0 {
            facts.push(format!("late {}", load(&m.late_rows)));
        }
        if load(&m.bad_records) > 0 {
            facts.push(format!("bad records {}", load(&m.bad_records)));
        }
        let (busy, backpressured) = m.shares(started);
        if !source {
            let (l, _) = m.processing_with_buckets(&[]);
            if l.count > 0 {
                facts.push(format!("p99 processing {}", fmt_us(l.p99)));
            }
            facts.push(format!("busy {busy:.0} %"));
        }
        if load(&m.backpressured_ns) > 0 {
            facts.push(format!("backpressured {backpressured:.0} %"));
        }
        if self.parallelism > 1 {
            // Busy and backpressured shares add up over the subtasks (200 %: two cores).
            facts.push(format!("{} subtasks", self.parallelism));
        }
        for (i, line) in self.lines.iter().enumerate() {
            let pad = "  ".repeat(depth + i);
            if i == 0 {
                let _ = writeln!(s, "{pad}{line}   [{}]", facts.join(" · "));
            } else {
                let _ = writeln!(s, "{pad}{line}   [same task]");
            }
        }
        for input in &self.inputs {
            input.render(started, s, depth + self.lines.len().max(1));
        }
    }
}

impl Default for JobMetrics {
    fn default() -> Self {
        JobMetrics {
            started: Instant::now(),
            operators: Mutex::new(vec![]),
            bad_records: AtomicU64::new(0),
            tombstones: AtomicU64::new(0),
            keyless: AtomicU64::new(0),
            late_rows: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            late_unlogged: AtomicU64::new(0),
            late_logged_at: AtomicU64::new(0),
            latency: Mutex::new(new_latency_histogram()),
            consumer_lag: Mutex::new(Default::default()),
            plan: std::sync::OnceLock::new(),
        }
    }
}

/// A histogram's percentiles and, under the same lock (so that they agree), how many values
/// were at or below each bound (µs).
fn with_buckets(h: &Mutex<Histogram<u64>>, bounds_us: &[u64]) -> (LatencySummary, Vec<u64>) {
    let Ok(h) = h.lock() else {
        return (LatencySummary::default(), vec![0; bounds_us.len()]);
    };
    let buckets = bounds_us
        .iter()
        .map(|b| h.count_between(0, *b).min(h.len()))
        .collect();
    (summary(&h), buckets)
}

/// `p50 840 µs, p90 1.2 ms, p99 2.1 ms, p99.9 2.1 ms, max 2.1 ms (10 rows)`.
impl std::fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {}, p90 {}, p99 {}, p99.9 {}, max {} ({} rows)",
            fmt_us(self.p50),
            fmt_us(self.p90),
            fmt_us(self.p99),
            fmt_us(self.p999),
            fmt_us(self.max),
            self.count
        )
    }
}

/// A watermark (ms since the epoch) for people: `2026-01-01 00:00:04.415` (UTC).
pub fn fmt_watermark(ms: i64) -> String {
    datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// The watermark `watermark` (ms since the epoch; `i64::MIN` none yet, `i64::MAX` the
/// end) and how far it trails the clock `now_ms`, for people: `("2026-01-01 00:00:04.415",
/// "1.2 s")`, a lag past a minute in days, hours, minutes and seconds (`"333days 4h 5m
/// 38s"`, humantime's form); `"-"` for what there is none of.
pub fn watermark_and_lag(watermark: i64, now_ms: i64) -> (String, String) {
    match watermark {
        i64::MIN => ("-".into(), "-".into()),
        i64::MAX => ("end".into(), "-".into()),
        w => {
            let lag_ms = now_ms.saturating_sub(w);
            let lag = if lag_ms.abs() < 60_000 {
                format!("{:.1} s", lag_ms as f64 / 1000.0)
            } else {
                let secs = lag_ms.unsigned_abs() / 1000;
                let sign = if lag_ms < 0 { "-" } else { "" };
                format!(
                    "{sign}{}",
                    humantime::format_duration(std::time::Duration::from_secs(secs))
                )
            };
            (fmt_watermark(w), lag)
        }
    }
}

fn summary(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        sum: h.mean() * h.len() as f64,
    }
}

/// 1 µs .. 1 h at 3 significant digits: about 190 KB per job.
fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

impl JobMetrics {
    pub fn register(&self, name: impl Into<String>) -> Arc<OperatorMetrics> {
        let m = Arc::new(OperatorMetrics {
            name: name.into(),
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            batches_in: AtomicU64::new(0),
            batches_out: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            backpressured_ns: AtomicU64::new(0),
            state_rows: AtomicU64::new(u64::MAX),
            state_bytes: AtomicU64::new(0),
            late_rows: AtomicU64::new(0),
            bad_records: AtomicU64::new(0),
            samples: Mutex::new(std::collections::VecDeque::new()),
            subtask_states: Mutex::new(vec![]),
            processing: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("constant bounds are valid"),
            ),
        });
        if let Ok(mut ops) = self.operators.lock() {
            ops.push(m.clone());
        }
        m
    }

    /// Samples every operator's counters for their current rates; the job's runner calls
    /// it every second while the job runs.
    pub fn sample_rates(&self) {
        let now = Instant::now();
        for o in self.operators() {
            o.sample(now);
        }
    }

    pub fn operators(&self) -> Vec<Arc<OperatorMetrics>> {
        self.operators.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The operator registered under `name` first (e.g. a source or the sink).
    pub fn operator(&self, prefix: &str) -> Option<Arc<OperatorMetrics>> {
        self.operators()
            .into_iter()
            .find(|o| o.name.starts_with(prefix))
    }

    /// Counts `n` late rows (dropped, or sent to a late-data sink) and logs them
    /// (`weir::job`, at most one line per 10 s: how many came since the last line).
    pub fn add_late(&self, n: u64) {
        self.late_rows.fetch_add(n, Ordering::Relaxed);
        self.late_unlogged.fetch_add(n, Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.late_logged_at.load(Ordering::Relaxed);
        if (now.saturating_sub(last) >= 10_000 || last == 0)
            && self
                .late_logged_at
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let rows = self.late_unlogged.swap(0, Ordering::Relaxed);
            tracing::info!(target: "weir::job", late_rows = rows, "late rows");
        }
    }

    pub fn observe_watermark(&self, wm: i64) {
        self.watermark.fetch_max(wm, Ordering::Relaxed);
    }

    /// Notes a Kafka partition's consumer lag (messages).
    pub fn set_consumer_lag(&self, table: &str, topic: &str, partition: i32, lag: i64) {
        if let Ok(mut m) = self.consumer_lag.lock() {
            m.insert((table.to_string(), topic.to_string(), partition), lag);
        }
    }

    /// Forgets the consumer lag of table `table`'s partitions (before new statistics).
    pub fn clear_consumer_lag(&self, table: &str) {
        if let Ok(mut m) = self.consumer_lag.lock() {
            m.retain(|(t, _, _), _| t != table);
        }
    }

    /// Every Kafka partition's last known consumer lag: (table, topic, partition, messages).
    pub fn consumer_lags(&self) -> Vec<(String, String, i32, i64)> {
        self.consumer_lag
            .lock()
            .map(|m| {
                m.iter()
                    .map(|((t, topic, p), l)| (t.clone(), topic.clone(), *p, *l))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records that `rows` rows were written `latency` after the batch that made them
    /// ready left its source.
    pub fn record_latency(&self, latency: Duration, rows: usize) {
        if rows == 0 {
            return;
        }
        let us = (latency.as_micros() as u64).clamp(1, 3_600_000_000);
        if let Ok(mut h) = self.latency.lock() {
            let _ = h.record_n(us, rows as u64);
        }
    }

    /// The end-to-end latency's percentiles so far (all zero before the first row).
    pub fn latency(&self) -> LatencySummary {
        with_buckets(&self.latency, &[]).0
    }

    /// The percentiles and, taken under the same lock (so that they agree), how many rows
    /// had a latency at or below each bound (µs), for Prometheus buckets.
    pub fn latency_with_buckets(&self, bounds_us: &[u64]) -> (LatencySummary, Vec<u64>) {
        with_buckets(&self.latency, bounds_us)
    }

    /// Rows the job's sources read and rows its sink wrote so far.
    pub fn rows_read_written(&self) -> (u64, u64) {
        let ops = self.operators();
        let read = ops
            .iter()
            .filter(|o| o.name.starts_with("source"))
            .map(|o| o.rows_out())
            .sum();
        let written = ops
            .iter()
            .filter(|o| o.name == "sink")
            .map(|o| o.rows_in())
            .sum();
        (read, written)
    }

    /// Notes the job's tasks as a tree (once; later calls are ignored).
    pub fn set_plan(&self, plan: TaskNode) {
        let _ = self.plan.set(plan);
    }

    /// The job's plan, the sink first, with each task's live numbers beside its first line:
    /// rows in and out with their rates over the last 10 s, state, late rows, bad records,
    /// p99 processing latency, busy and backpressured shares of the run; then the
    /// end-to-end latency. None before the job's tasks are placed.
    pub fn explain(&self) -> Option<String> {
        let plan = self.plan.get()?;
        let mut s = String::new();
        plan.render(self.started, &mut s, 0);
        let l = self.latency();
        if l.count > 0 {
            s.push_str(&format!("end-to-end latency: {l}\n"));
        }
        Some(s)
    }

    /// Rows per second the sources read and the sink wrote, over the last [`RATE_SPAN`]
    /// (see [`OperatorMetrics::rates`]).
    pub fn rates_read_written(&self) -> (f64, f64) {
        let (mut read, mut written) = (0.0, 0.0);
        for o in self.operators() {
            if o.name.starts_with("source") {
                read += o.rates(self.started).1;
            } else if o.name == "sink" {
                written += o.rates(self.started).0;
            }
        }
        (read, written)
    }

    /// The end-of-run summary, fitting `width` columns: the plan as a tree, the sink first
    /// as `EXPLAIN` prints it, one line per task — its operators top first, joined by `←`
    /// (fed by), projections left out unless the task has nothing else, details with
    /// numbers dropped — with its rows in and out beside it; then bad records, late rows
    /// and the end-to-end latency. Before the tasks are placed, one line per operator.
    pub fn report(&self, width: usize) -> String {
        let mut lines: Vec<(String, Option<u64>, Option<u64>)> = vec![];
        match self.plan.get() {
            Some(plan) => plan.summary_lines("", "", &mut lines),
            None => {
                for o in self.operators() {
                    lines.push((o.name.clone(), Some(o.rows_in()), Some(o.rows_out())));
                }
            }
        }
        let numbers = 2 * 12;
        let longest = lines
            .iter()
            .map(|(n, _, _)| n.chars().count())
            .max()
            .unwrap_or(8)
            .max(8);
        let name_width = longest.min(width.saturating_sub(2 + numbers).max(20));
        let cell = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut s = format!(
            "  {:<name_width$}  {:>10}  {:>10}\n",
            "operator", "rows in", "rows out"
        );
        for (name, rows_in, rows_out) in &lines {
            let shown: String = if name.chars().count() > name_width {
                let mut t: String = name.chars().take(name_width.saturating_sub(1)).collect();
                t.push('…');
                t
            } else {
                name.clone()
            };
            let pad = name_width.saturating_sub(shown.chars().count());
            let line = format!(
                "  {shown}{}  {:>10}  {:>10}",
                " ".repeat(pad),
                cell(*rows_in),
                cell(*rows_out)
            );
            s.push_str(line.trim_end());
            s.push('\n');
        }
        let bad = self.bad_records.load(Ordering::Relaxed);
        let late = self.late_rows.load(Ordering::Relaxed);
        if bad > 0 {
            s.push_str(&format!("  bad records skipped: {bad}\n"));
        }
        let tombstones = self.tombstones.load(Ordering::Relaxed);
        if tombstones > 0 {
            s.push_str(&format!("  Kafka tombstones skipped: {tombstones}\n"));
        }
        let keyless = self.keyless.load(Ordering::Relaxed);
        if keyless > 0 {
            s.push_str(&format!(
                "  Kafka messages without a key skipped: {keyless}\n"
            ));
        }
        if late > 0 {
            s.push_str(&format!("  late rows dropped: {late}\n"));
        }
        let l = self.latency();
        if l.count > 0 {
            let line = format!("  end-to-end latency: {l}");
            if line.chars().count() <= width {
                s.push_str(&line);
                s.push('\n');
            } else {
                // Too wide: the figures on lines of their own, broken between figures.
                s.push_str("  end-to-end latency:\n");
                let figures = l.to_string();
                let mut line = String::from("   ");
                for (i, f) in figures.split(", ").enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    // One character kept for the comma a break leaves.
                    if line.len() > 3
                        && line.chars().count() + sep.len() + f.chars().count() + 1 > width
                    {
                        s.push_str(&line);
                        s.push_str(",\n");
                        line = format!("    {f}");
                    } else {
                        line.push_str(sep);
                        line.push_str(f);
                    }
                }
                s.push_str(&line);
                s.push('\n');
            }
        }
        s
    }
}

/// An operator's name without the details in parentheses that hold numbers (`window
/// aggregate HOP (1 key(s), 1 aggregate(s))` is `window aggregate HOP`) or say how it works
/// inside (`(slices)`); `join left semi (window)` keeps its kind.
fn short_name(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(open) = rest.find(" (") {
        // The parenthesis that closes this one (details nest: `key(s)`).
        let mut depth = 0;
        let mut close = None;
        for (i, c) in rest[open + 1..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(open + 1 + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            break;
        };
        let inner = &rest[open + 2..close];
        out.push_str(&rest[..open]);
        if !(inner.chars().any(|c| c.is_ascii_digit()) || inner == "slices") {
            out.push_str(&rest[open..=close]);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A latency for people: `840 µs`, `12.3 ms`, `2.41 s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2} s", us as f64 / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end-to-end latency line of the summary stays within the width: on its own
    /// line when the label does not fit, broken between figures when they do not either
    /// (regression: an 83-character line at 80 columns).
    #[test]
    fn the_latency_line_fits_the_width() {
        let m = JobMetrics::default();
        for ms in [262_400u64, 262_700, 262_710, 262_720, 262_730] {
            m.record_latency(Duration::from_micros(ms), 1);
        }
        for width in [120, 80, 60, 40] {
            let report = m.report(width);
            let lines: Vec<&str> = report.lines().filter(|l| !l.is_empty()).collect();
            assert!(
                lines.iter().all(|l| l.chars().count() <= width),
                "{width}: {report}"
            );
            let text = lines.join(" ");
            for figure in ["p50 ", "p90 ", "p99 ", "p99.9 ", "max ", "(5 rows)"] {
                assert!(text.contains(figure), "{width}: {report}");
            }
        }
    }

    #[test]
    fn short_names_drop_numbered_details() {
        assert_eq!(
            short_name("window aggregate HOP (1 key(s), 1 aggregate(s))"),
            "window aggregate HOP"
        );
        assert_eq!(short_name("window HOP (slices)"), "window HOP");
        assert_eq!(
            short_name("join left semi (window)"),
            "join left semi (window)"
        );
        assert_eq!(short_name("Source: datagen"), "Source: datagen");
    }

    #[test]
    fn lag_reads_in_seconds_then_in_days_hours_minutes() {
        let w = 1_767_225_600_000; // 2026-01-01 00:00:00 UTC
        assert_eq!(
            watermark_and_lag(w, w + 1_234),
            ("2026-01-01 00:00:00.000".to_string(), "1.2 s".to_string())
        );
        assert_eq!(
            watermark_and_lag(w, w + (2 * 86_400 + 3 * 3_600 + 4 * 60 + 5) * 1000 + 999).1,
            "2days 3h 4m 5s"
        );
        assert_eq!(watermark_and_lag(i64::MIN, w), ("-".into(), "-".into()));
        assert_eq!(watermark_and_lag(i64::MAX, w), ("end".into(), "-".into()));
    }
}
