//! Spawning a streaming plan as tasks and waiting for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::{Receiver, channel};
use tokio::task::JoinHandle;

use super::metrics::TaskNode;
use super::{CHANNEL_CAPACITY, JobMetrics, Message, OperatorMetrics, TaskMetrics};
use crate::checkpoint::{CheckpointConfig, Checkpointer};
use crate::error::{Result, WeirError};
use crate::operator::exchange::{Exchange, Output};
use crate::operator::{Chain, Operator, TaskCheckpoint, TaskInputs, run_task};
use crate::plan::PlanNode;
use crate::sink::{Sink, SinkContext, run_sink};
use crate::source::watermark::SourceStage;
use crate::source::{Source, SourceContext};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Finished,
    Stopped,
    Failed,
}

/// A standing query that has been started.
pub struct Job {
    pub id: u64,
    /// The statement that started it.
    pub name: String,
    pub metrics: Arc<JobMetrics>,
    stop: Arc<AtomicBool>,
    handle: JobHandle,
    checkpointer: Option<Arc<Checkpointer>>,
}

pub type JobHandle = JoinHandle<Result<()>>;

/// Stops a job from elsewhere (see [`Job::stop_handle`]).
#[derive(Clone)]
pub struct StopHandle(Arc<AtomicBool>, Option<Arc<Checkpointer>>);

impl StopHandle {
    /// As [`Job::stop`].
    pub fn stop(&self) {
        stop_job(&self.0, self.1.as_ref());
    }
}

/// With checkpoints, a stop takes a savepoint first: the sources send its barrier before
/// they end, and the sink commits exactly what the savepoint holds.
fn stop_job(stop: &AtomicBool, checkpointer: Option<&Arc<Checkpointer>>) {
    if stop.load(Ordering::SeqCst) {
        return;
    }
    if let Some(cp) = checkpointer {
        cp.stop_with_savepoint();
    }
    stop.store(true, Ordering::SeqCst);
}

fn fmt_age(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 7_200_000 {
        format!("{:.1} min", ms as f64 / 60_000.0)
    } else {
        format!("{:.1} h", ms as f64 / 3_600_000.0)
    }
}

impl Job {
    /// Starts every task of `plan`, ending in `sink`. With checkpointing (`checkpoint`
    /// enabled), the job's checkpoint folder is opened first: its lock taken, the checkpoint
    /// to restore read and checked against this plan. Errors: the job is already running,
    /// the folder cannot be written, the saved state does not fit the plan, or a source or
    /// operator cannot take part in checkpoints.
    pub fn start(
        id: u64,
        name: String,
        plans: Vec<PlanNode>,
        sink: Box<dyn Sink>,
        checkpoint: CheckpointConfig,
        max_parallelism: usize,
    ) -> Result<Job> {
        let Some(plan) = plans.first() else {
            return Err(WeirError::internal("a job without a plan"));
        };
        let checkpointer = if checkpoint.enabled() {
            check_checkpointable(plan)?;
            let cp = Checkpointer::open(checkpoint.clone())?;
            if let Some(r) = cp.restored()
                && r.manifest.finished
            {
                return Err(WeirError::user(format!(
                    "job '{}' already ran to the end of its input (checkpoint {} in '{}'): its output is complete",
                    checkpoint.job,
                    r.manifest.checkpoint,
                    r.path.display()
                ))
                .with_hint("run it again with --from-scratch, or SET 'pipeline.name' to a new name"));
            }
            Some(cp)
        } else {
            None
        };
        let metrics = Arc::new(JobMetrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut spawner = Spawner {
            metrics: &metrics,
            stop: &stop,
            checkpointer: checkpointer.clone(),
            next_id: 0,
            starts: vec![],
            dead_letters: vec![],
            parallelism: plans.len(),
            max_parallelism,
            reads: reads_per_table(plan),
            split_reads: split_reads(plan, plans.len()),
            shared: Default::default(),
            feeds_keyed: false,
            ordered_above: false,
        };
        let (rx, tree) = spawner.node(plans, Want::Single);
        let rx = spawner.merge(rx)?;
        let has_letters = !spawner.dead_letters.is_empty();
        let sink: Box<dyn Sink> = if !has_letters {
            sink
        } else {
            Box::new(crate::sink::dead_letter::WithDeadLetters::new(
                sink,
                std::mem::take(&mut spawner.dead_letters),
            ))
        };
        if let Some(cp) = &checkpointer {
            cp.register("sink", "sink");
            cp.check_plan(max_parallelism)?;
            if let Some(r) = cp.restored() {
                let age = r.manifest.time_ms.abs_diff(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0),
                );
                let bytes: u64 = r.manifest.tasks.iter().map(|t| t.bytes).sum();
                crate::message::say(format!(
                    "[INFO] Job '{}' resumes from {} {} ({} ago, {bytes} bytes of state): {}",
                    cp.config.job,
                    if r.manifest.savepoint {
                        "savepoint"
                    } else {
                        "checkpoint"
                    },
                    r.manifest.checkpoint,
                    fmt_age(age),
                    r.path.display()
                ));
            }
        }
        let mut tasks: Vec<JoinHandle<Result<()>>> = vec![];
        for start in spawner.starts {
            tasks.push(start());
        }
        let sink_metrics = metrics.register("sink");
        metrics.set_plan(TaskNode {
            lines: vec!["Sink".to_string()],
            metrics: sink_metrics.clone(),
            parallelism: 1,
            inputs: vec![tree],
        });
        let sink_ctx = SinkContext {
            job: checkpoint.job.clone(),
            run: checkpointer
                .as_ref()
                .map(|c| c.run.clone())
                .unwrap_or_else(crate::checkpoint::run_id),
            checkpointer: checkpointer.clone(),
            restored: checkpointer
                .as_ref()
                .and_then(|c| c.restored())
                .and_then(|r| r.take("sink")),
        };
        if let Some(r) = &sink_ctx.restored
            && !has_letters
            && crate::sink::dead_letter::holds_letter_state(r)
        {
            return Err(WeirError::user(format!(
                "job '{}': its checkpoint holds dead letters not yet committed, but the query no longer names a 'dead-letter.sink'",
                checkpoint.job
            ))
            .with_hint("restore the option, or start over with --from-scratch"));
        }
        let job_metrics = metrics.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            // Operators that wait for the final checkpoint learn here that none comes
            // after, however the sink ended (a guard: a panic too).
            struct Done(Option<Arc<crate::checkpoint::Checkpointer>>);
            impl Drop for Done {
                fn drop(&mut self) {
                    if let Some(cp) = &self.0 {
                        cp.mark_sink_done();
                    }
                }
            }
            let _done = Done(sink_ctx.checkpointer.clone());
            run_sink(sink, rx, sink_metrics, job_metrics, sink_ctx)
        }));
        let done = Arc::new(AtomicBool::new(false));
        if let (Some(cp), Some(every)) = (&checkpointer, checkpoint.interval) {
            let cp = cp.clone();
            let stop = stop.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if stop.load(Ordering::Relaxed) || done.load(Ordering::Relaxed) {
                        return;
                    }
                    cp.trigger();
                }
            });
        }
        {
            let metrics = metrics.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !done.load(Ordering::Relaxed) {
                    tick.tick().await;
                    metrics.sample_rates();
                }
            });
        }
        let stop2 = stop.clone();
        let release = checkpointer.clone();
        let job_name = checkpoint.job.clone();
        let job_metrics = metrics.clone();
        tracing::info!(target: "weir::job", job = %job_name, job_id = id, "job started");
        let handle = tokio::spawn(async move {
            let mut first_err: Option<WeirError> = None;
            for t in tasks {
                let r = match t.await {
                    Ok(r) => r,
                    Err(e) => Err(WeirError::internal(format!("a task panicked: {e}"))),
                };
                if let Err(e) = r {
                    // Once a task fails, the others are told to stop; keep the first cause.
                    stop2.store(true, Ordering::Relaxed);
                    let secondary = matches!(&e, WeirError::Cancelled(_));
                    match &first_err {
                        None => first_err = Some(e),
                        Some(WeirError::Cancelled(_)) if !secondary => first_err = Some(e),
                        _ => {}
                    }
                }
            }
            done.store(true, Ordering::Relaxed);
            if let Some(cp) = &release {
                cp.release();
            }
            let secs = job_metrics.started.elapsed().as_secs_f64();
            let l = job_metrics.latency();
            // The failure itself reaches the user as the job's error (the shell's and
            // `weir run`'s `[ERROR] Job N failed`); this is its line for a log collector, at
            // the level of "job ended" (Flink logs a job's switch to FAILED at INFO).
            match &first_err {
                Some(e) => tracing::info!(
                    target: "weir::job", job = %job_name, job_id = id, seconds = secs,
                    error = %e.render_body(None, None), "job failed"
                ),
                None => tracing::info!(
                    target: "weir::job", job = %job_name, job_id = id, seconds = secs,
                    stopped = stop2.load(Ordering::Relaxed),
                    latency_p50_us = l.p50, latency_p99_us = l.p99, "job ended"
                ),
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(()),
            }
        });
        Ok(Job {
            id,
            name,
            metrics,
            stop,
            handle,
            checkpointer,
        })
    }

    /// The job's checkpoints, when it takes them.
    pub fn checkpointer(&self) -> Option<&Arc<Checkpointer>> {
        self.checkpointer.as_ref()
    }

    /// A handle that stops this job, usable while something else waits for it.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone(), self.checkpointer.clone())
    }

    /// Asks the sources to stop; the job then drains and ends cleanly. With checkpoints it
    /// stops with a savepoint, from which the next run of the job continues.
    pub fn stop(&self) {
        stop_job(&self.stop, self.checkpointer.as_ref());
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the job to end.
    pub async fn wait(self) -> Result<()> {
        match self.handle.await {
            Ok(r) => r,
            Err(e) => Err(WeirError::internal(format!("job task failed: {e}"))),
        }
    }

    /// Waits up to `d` for the job to end; gives the job back if it is still running.
    pub async fn wait_timeout(self, d: Duration) -> std::result::Result<Result<()>, Job> {
        if tokio::time::timeout(d, async {
            while !self.handle.is_finished() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .is_ok()
        {
            Ok(self.wait().await)
        } else {
            Err(self)
        }
    }
}

/// Refuses checkpointing for a plan with a source or operator that cannot save its state.
fn check_checkpointable(node: &PlanNode) -> Result<()> {
    match node {
        PlanNode::Source { table, source, .. } => {
            if !source.checkpointable() {
                return Err(WeirError::user(format!(
                    "table '{}': a '{}' source cannot take part in checkpoints yet (it cannot replay from a saved position)",
                    table.name,
                    source.kind()
                ))
                .with_hint("checkpointing ('execution.checkpointing.interval') works with nexmark, datagen, filesystem (CSV, JSON, Parquet), kafka and memory sources; RESET it for this job"));
            }
            Ok(())
        }
        PlanNode::Values { .. } => Ok(()),
        PlanNode::Operator { op, input } => {
            if !op.checkpointable() {
                return Err(WeirError::user(format!(
                    "operator '{}' cannot save its state in a checkpoint yet",
                    op.name()
                ))
                .with_hint("RESET 'execution.checkpointing.interval' for this job"));
            }
            check_checkpointable(input)
        }
        PlanNode::Join { left, right, .. } => {
            check_checkpointable(left)?;
            check_checkpointable(right)
        }
        PlanNode::Union { inputs, .. } => inputs.iter().try_for_each(check_checkpointable),
    }
}

type Start = Box<dyn FnOnce() -> JoinHandle<Result<()>> + Send>;

/// How a task wants its input delivered (see [`crate::operator::Distribution`]).
enum Want {
    /// As its input runs: one channel from each of the input's subtasks, one each.
    Forward,
    /// Every subtask of the input into one reader.
    Single,
    /// Split by these keys over the job's parallelism.
    Hash(Vec<Arc<dyn datafusion::physical_plan::PhysicalExpr>>),
}

impl Want {
    fn of(d: &crate::operator::Distribution, input: usize) -> Want {
        use crate::operator::Distribution;
        match d {
            Distribution::Forward => Want::Forward,
            Distribution::Single => Want::Single,
            Distribution::Hash(keys) => match keys.get(input) {
                Some(k) if !k.is_empty() => Want::Hash(k.clone()),
                _ => Want::Single,
            },
        }
    }
}

/// The channels a task reads, per subtask of the reader: `[subtask][channel]`.
type Inputs = Vec<Vec<Receiver<Message>>>;

/// A shared source's channels, per read of it and, within, per subtask: `[read][subtask]`.
type Reads = Vec<Vec<Receiver<Message>>>;

/// Walks a plan, giving each task its channel and its stable id (`source-<n>`, `op-<n>`, in
/// plan order; `op-<n>.<subtask>` for each subtask of a parallel operator), and collects
/// the tasks to start once every id is registered (so that a restored checkpoint is
/// checked against the whole plan before anything runs).
///
/// With a parallelism `p` above 1 the walk gets `p` copies of the plan (planned alike), and
/// runs each keyed operator as `p` subtasks, subtask `k` with copy `k`'s operator, behind a
/// hash exchange ([`crate::operator::exchange`]); stateless operators run beside their input
/// and the rest, as sources, as one task (copy 0's).
struct Spawner<'a> {
    metrics: &'a Arc<JobMetrics>,
    stop: &'a Arc<AtomicBool>,
    checkpointer: Option<Arc<Checkpointer>>,
    next_id: usize,
    starts: Vec<Start>,
    /// The sources' dead-letter sinks, driven by the sink task; a source's index here
    /// tags its dead letters.
    dead_letters: Vec<crate::sink::dead_letter::DeadLetterTable>,
    parallelism: usize,
    max_parallelism: usize,
    /// How often the plan reads each table it reads through a shared source (see
    /// `PlanNode::Source::reuse`).
    reads: std::collections::HashMap<String, usize>,
    /// A shared source's channels not yet taken by one of its reads, and its metrics.
    /// True while walking below a run of stateless operators whose rows go next to a keyed
    /// operator (re-split by key anyway): a source there may be split (see
    /// [`crate::source::Source::split`]). Elsewhere a source reads on one task, so that the
    /// order of its rows reaches an operator that needs all rows (a LIMIT, the sink) as read.
    feeds_keyed: bool,
    /// True while walking below an operator that depends on the order of its rows per key
    /// (see [`orders_below`]), through joins and stateless runs up to it: a join there
    /// passes its inputs' order on, so its sources stay on one task each.
    ordered_above: bool,
    /// Per table read through a shared source: whether every read of it may be split (see
    /// [`split_reads`]).
    split_reads: std::collections::HashMap<String, bool>,
    /// Per read, the channels of each of its subtasks.
    shared: std::collections::HashMap<String, (Reads, Arc<OperatorMetrics>)>,
}

/// How many times `plan` reads each table whose reads may share a source.
fn reads_per_table(plan: &PlanNode) -> std::collections::HashMap<String, usize> {
    fn walk(n: &PlanNode, out: &mut std::collections::HashMap<String, usize>) {
        match n {
            PlanNode::Source {
                reuse: Some(key), ..
            } => *out.entry(key.clone()).or_default() += 1,
            PlanNode::Source { .. } | PlanNode::Values { .. } => {}
            PlanNode::Operator { input, .. } => walk(input, out),
            PlanNode::Join { left, right, .. } => {
                walk(left, out);
                walk(right, out);
            }
            PlanNode::Union { inputs, .. } => inputs.iter().for_each(|i| walk(i, out)),
        }
    }
    let mut out = Default::default();
    walk(plan, &mut out);
    out
}

/// Whether the rows of a run of operators `ops` (bottom first) may come from a split source:
/// at parallelism above 1, the first operator that is not stateless is keyed and takes its
/// rows in any order ([`Operator::order_insensitive`]); `above` when all are stateless
/// (whether what reads the run may).
fn feeds_keyed<'a>(
    mut ops: impl Iterator<Item = &'a dyn Operator>,
    parallelism: usize,
    above: bool,
) -> bool {
    use crate::operator::Distribution;
    if parallelism <= 1 {
        return false;
    }
    match ops.find(|o| !matches!(o.distribution(), Distribution::Forward)) {
        Some(o) => matches!(Want::of(&o.distribution(), 0), Want::Hash(_)) && o.order_insensitive(),
        None => above,
    }
}

/// Whether the rows below a run of operators `ops` (bottom first) reach an operator that
/// depends on their order per key: the first operator that is not stateless is not
/// [`Operator::order_insensitive`] (a Top-N, `FIRST_VALUE`, `LISTAGG`, a LIMIT); `above` when
/// all are stateless. An order-insensitive aggregate gives the same rows per key whatever
/// its input's order, so below it this is false again — but a join passes its inputs' order
/// on to its output (the pairs of one key come out in the order their rows came in), so it
/// keeps `above` (see [`split_reads`] and [`Spawner`]).
fn orders_below<'a>(mut ops: impl Iterator<Item = &'a dyn Operator>, above: bool) -> bool {
    use crate::operator::Distribution;
    match ops.find(|o| !matches!(o.distribution(), Distribution::Forward)) {
        Some(o) => !o.order_insensitive(),
        None => above,
    }
}

/// Whether a join may take its inputs from split sources: keyed at parallelism above 1,
/// order-insensitive, and with no operator above it that depends on the order of its
/// output (`ordered_above`, see [`orders_below`]).
fn join_feeds_keyed(join: &dyn Operator, parallelism: usize, ordered_above: bool) -> bool {
    parallelism > 1
        && matches!(Want::of(&join.distribution(), 0), Want::Hash(_))
        && join.order_insensitive()
        && !ordered_above
}

/// Per table whose reads may share one source: whether every read of it goes to a keyed,
/// order-insensitive operator (see [`feeds_keyed`]), as [`Spawner`] walks the plan — only
/// then is the shared source split, so no read gets the stream out of order.
fn split_reads(plan: &PlanNode, parallelism: usize) -> std::collections::HashMap<String, bool> {
    fn walk(
        n: &PlanNode,
        keyed: bool,
        ordered_above: bool,
        parallelism: usize,
        out: &mut std::collections::HashMap<String, bool>,
    ) {
        match n {
            PlanNode::Source {
                reuse: Some(key), ..
            } => {
                let every = out.entry(key.clone()).or_insert(true);
                *every = *every && keyed;
            }
            PlanNode::Source { .. } | PlanNode::Values { .. } => {}
            PlanNode::Operator { .. } => {
                let mut ops: Vec<&dyn Operator> = vec![];
                let mut below = n;
                while let PlanNode::Operator { op, input } = below {
                    ops.push(op.as_ref());
                    below = input;
                }
                ops.reverse();
                let ordered = orders_below(ops.iter().copied(), ordered_above);
                let keyed = feeds_keyed(ops.into_iter(), parallelism, keyed);
                walk(below, keyed, ordered, parallelism, out);
            }
            PlanNode::Join {
                join, left, right, ..
            } => {
                let keyed = join_feeds_keyed(join.as_ref(), parallelism, ordered_above);
                walk(left, keyed, ordered_above, parallelism, out);
                walk(right, keyed, ordered_above, parallelism, out);
            }
            PlanNode::Union { inputs, .. } => inputs
                .iter()
                .for_each(|i| walk(i, false, ordered_above, parallelism, out)),
        }
    }
    let mut out = Default::default();
    walk(plan, false, false, parallelism, &mut out);
    out
}

impl Spawner<'_> {
    fn id(&mut self, kind: &str, name: &str) -> String {
        let id = format!("{kind}-{}", self.next_id);
        self.next_id += 1;
        self.register(&id, name);
        id
    }

    fn register(&self, id: &str, name: &str) {
        if let Some(cp) = &self.checkpointer {
            cp.register(id, name);
        }
    }

    fn aligned(&self) -> bool {
        self.checkpointer
            .as_ref()
            .is_none_or(|c| c.config.exactly_once)
    }

    /// The outputs of `p` subtasks and what their reader gets, as `want` asks.
    fn connect(&self, p: usize, want: &Want) -> (Vec<Output>, Inputs) {
        match want {
            Want::Hash(keys) if self.parallelism > 1 => {
                let n = self.parallelism;
                let mut readers: Inputs = (0..n).map(|_| vec![]).collect();
                let mut outs = vec![];
                for _ in 0..p {
                    let mut txs = vec![];
                    for r in readers.iter_mut() {
                        let (tx, rx) = channel(CHANNEL_CAPACITY);
                        txs.push(tx);
                        r.push(rx);
                    }
                    outs.push(Output::Hash(Exchange::new(
                        keys.clone(),
                        txs,
                        self.max_parallelism,
                    )));
                }
                (outs, readers)
            }
            Want::Forward => {
                let (outs, readers): (Vec<_>, Vec<_>) = (0..p)
                    .map(|_| {
                        let (tx, rx) = channel(CHANNEL_CAPACITY);
                        (Output::One(tx), vec![rx])
                    })
                    .unzip();
                (outs, readers)
            }
            _ => {
                let (outs, rxs): (Vec<_>, Vec<_>) = (0..p)
                    .map(|_| {
                        let (tx, rx) = channel(CHANNEL_CAPACITY);
                        (Output::One(tx), rx)
                    })
                    .unzip();
                (outs, vec![rxs])
            }
        }
    }

    /// Delivers the output of a one-task producer (a source, rows computed in batch) as
    /// `want` asks; a hash exchange takes a task of its own.
    fn deliver_one(&mut self, rx: Receiver<Message>, want: &Want) -> Inputs {
        if !matches!(want, Want::Hash(_)) || self.parallelism <= 1 {
            return vec![vec![rx]];
        }
        let (mut outs, readers) = self.connect(1, want);
        let m = self.metrics.register("exchange");
        let chain = Chain::new(vec![]);
        let inputs = TaskInputs::one(rx);
        let cp = self.stateless_checkpoint();
        if let Some(out) = outs.pop() {
            self.starts.push(Box::new(move || {
                tokio::spawn(run_task(chain, inputs, out, m, cp))
            }));
        }
        readers
    }

    /// Delivers the outputs of a producer's subtasks (a split source's) as `want` asks: each
    /// to its own reader (`Forward`), all to one, or each through a hash exchange task.
    fn deliver(&mut self, mut rxs: Vec<Receiver<Message>>, want: &Want) -> Inputs {
        if rxs.len() == 1
            && let Some(rx) = rxs.pop()
        {
            return self.deliver_one(rx, want);
        }
        match want {
            Want::Hash(_) if self.parallelism > 1 => {
                let (outs, readers) = self.connect(rxs.len(), want);
                let m = self.metrics.register("exchange");
                for (rx, out) in rxs.into_iter().zip(outs) {
                    let chain = Chain::new(vec![]);
                    let inputs = TaskInputs::one(rx);
                    let cp = self.stateless_checkpoint();
                    let m = m.clone();
                    self.starts.push(Box::new(move || {
                        tokio::spawn(run_task(chain, inputs, out, m, cp))
                    }));
                }
                readers
            }
            Want::Forward => rxs.into_iter().map(|rx| vec![rx]).collect(),
            _ => vec![rxs],
        }
    }

    /// What a task of no operators (an exchange, a fan-out) needs of the job's checkpoints:
    /// it passes barriers on and saves nothing.
    fn stateless_checkpoint(&self) -> Option<TaskCheckpoint> {
        self.checkpointer
            .clone()
            .map(|checkpointer| TaskCheckpoint {
                checkpointer,
                tasks: vec![],
                subtask: 0,
                parallelism: 1,
                max_parallelism: self.max_parallelism,
            })
    }

    /// Copies everything `rx` carries to `n` channels (one source, several reads of it), on
    /// a task of its own; returns the channels.
    fn fan_out(&mut self, rx: Receiver<Message>, n: usize) -> Vec<Receiver<Message>> {
        let (senders, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| channel(CHANNEL_CAPACITY)).unzip();
        let out = Output::All {
            open: vec![true; n],
            senders,
        };
        let m = self.metrics.register("fan-out");
        let inputs = TaskInputs::one(rx);
        let cp = self.stateless_checkpoint();
        self.starts.push(Box::new(move || {
            tokio::spawn(run_task(Chain::new(vec![]), inputs, out, m, cp))
        }));
        rxs
    }

    /// Prepares the subtasks of one stage: subtask `k` runs `chains[k]` over `inputs[k]`
    /// (channel `i` carrying logical input `input_of[k][i]`, idle after `idle[k][i]`), its
    /// operators checkpointed under `ids` (suffixed `.<k>` when there are several
    /// subtasks). Returns the stage's metrics (shared by its subtasks) and what its reader
    /// gets.
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &mut self,
        chains: Vec<Chain>,
        inputs: Inputs,
        input_of: Vec<Vec<usize>>,
        idle: Vec<Vec<Option<Duration>>>,
        ids: Vec<String>,
        want: &Want,
    ) -> (Arc<OperatorMetrics>, Inputs) {
        let p = chains.len();
        debug_assert_eq!(p, inputs.len(), "a subtask without its input channels");
        let name = chains.first().map(|c| c.name()).unwrap_or_default();
        let m = self
            .metrics
            .register(if p > 1 { format!("{name} ×{p}") } else { name });
        let (outs, readers) = self.connect(p, want);
        let aligned = self.aligned();
        let parts = chains
            .into_iter()
            .zip(inputs)
            .zip(input_of)
            .zip(idle)
            .zip(outs)
            .enumerate();
        for (k, ((((mut chain, receivers), input_of), idle), out)) in parts {
            chain.attach(&TaskMetrics {
                job: self.metrics.clone(),
                task: m.clone(),
            });
            let tasks: Vec<String> = if p > 1 {
                ids.iter().map(|id| format!("{id}.{k}")).collect()
            } else {
                ids.clone()
            };
            if p > 1 {
                for (t, c) in tasks.iter().zip(chain.ops()) {
                    self.register(t, &c.signature());
                }
            }
            let cp = self
                .checkpointer
                .clone()
                .map(|checkpointer| TaskCheckpoint {
                    checkpointer,
                    tasks,
                    subtask: k,
                    parallelism: p,
                    max_parallelism: self.max_parallelism,
                });
            let inputs = TaskInputs {
                receivers,
                idle,
                aligned,
                input_of,
                subtask: k,
            };
            let m = m.clone();
            self.starts.push(Box::new(move || {
                tokio::spawn(run_task(chain, inputs, out, m, cp))
            }));
        }
        (m, readers)
    }

    /// One channel for the job's sink: several subtasks' outputs are merged by a task of
    /// their own (watermarks merged, barriers aligned, as any task's inputs).
    fn merge(&mut self, mut readers: Inputs) -> Result<Receiver<Message>> {
        let Some(channels) = readers.pop().filter(|_| readers.is_empty()) else {
            return Err(WeirError::internal("a job's output is not one stream"));
        };
        if channels.len() == 1 {
            return channels
                .into_iter()
                .next()
                .ok_or_else(|| WeirError::internal("a job without output"));
        }
        let n = channels.len();
        let (_, mut out) = self.stage(
            vec![Chain::new(vec![])],
            vec![channels],
            vec![vec![0; n]],
            vec![vec![None; n]],
            vec![],
            &Want::Single,
        );
        out.pop()
            .and_then(|c| c.into_iter().next())
            .ok_or_else(|| WeirError::internal("a job without output"))
    }

    /// Ids for the operators `names` of a stage of `p` subtasks: registered as they are
    /// for one subtask; for several, each subtask registers its own (see [`Self::stage`]).
    fn ids(&mut self, names: &[String], p: usize) -> Vec<String> {
        names
            .iter()
            .map(|n| {
                if p > 1 {
                    let id = format!("op-{}", self.next_id);
                    self.next_id += 1;
                    id
                } else {
                    self.id("op", n)
                }
            })
            .collect()
    }

    /// Prepares the tasks of `nodes` (the job's copies of one plan node, one per unit of
    /// parallelism); returns the channels its output arrives on, per subtask of its reader
    /// as `want` asks, and its tasks as a tree (for a running job's `EXPLAIN`).
    fn node(&mut self, mut nodes: Vec<PlanNode>, want: Want) -> (Inputs, TaskNode) {
        let label = nodes.first().map(|n| n.label()).unwrap_or_default();
        let leaf = |metrics: &Arc<OperatorMetrics>| TaskNode {
            lines: vec![label.clone()],
            metrics: metrics.clone(),
            parallelism: 1,
            inputs: vec![],
        };
        if nodes.is_empty() {
            // Never: a job has at least one copy of its plan.
            let m = self.metrics.register("empty");
            return (vec![], leaf(&m));
        }
        let first = nodes.remove(0);
        match first {
            PlanNode::Source {
                table,
                source,
                stage,
                mut dead_letter,
                reuse,
            } => {
                // A later read of a table the job reads through one source: channels of
                // that source's (this read's own source never starts).
                let taken = reuse
                    .as_ref()
                    .and_then(|k| self.shared.get_mut(k))
                    .and_then(|(reads, m)| Some((reads.pop()?, m.clone())));
                if let Some((rxs, m)) = taken {
                    // Its number is kept, so that the ids of the tasks after it do not
                    // depend on which reads share a source.
                    self.next_id += 1;
                    let tree = TaskNode {
                        parallelism: rxs.len(),
                        ..leaf(&m)
                    };
                    return (self.deliver(rxs, &want), tree);
                }
                // Split over the job's parallelism where the source can be (not with a
                // dead-letter table: one writer); subtask `k` with copy `k`'s watermarks.
                let mut stages = vec![stage];
                stages.extend(nodes.into_iter().filter_map(|n| match n {
                    PlanNode::Source { stage, .. } => Some(stage),
                    _ => None,
                }));
                let keyed = match reuse.as_ref().and_then(|k| self.split_reads.get(k)) {
                    Some(every_read) => *every_read,
                    None => !matches!(want, Want::Single) && self.feeds_keyed,
                };
                // With a watermark, only where every subtask's rows keep the stream's time
                // order: elsewhere which rows are late would depend on the cut and on how
                // the subtasks' watermarks interleave.
                let in_time = !stages[0].has_watermark() || source.split_keeps_time_order();
                let split = if self.parallelism > 1 && keyed && in_time && dead_letter.is_none() {
                    source
                        .split(self.parallelism)
                        .filter(|parts| parts.len() > 1 && parts.len() <= stages.len())
                } else {
                    None
                };
                let parts: Vec<(Box<dyn Source>, SourceStage)> = match split {
                    Some(parts) => parts.into_iter().zip(stages).collect(),
                    None => vec![(source, stages.swap_remove(0))],
                };
                let p = parts.len();
                let name = format!("source {}", table.name);
                // The manifest names what the source reads, so that a restore into a source
                // reading another path or topic is refused.
                let label = format!("{name} ({})", parts[0].0.origin());
                let base = format!("source-{}", self.next_id);
                self.next_id += 1;
                let m = self.metrics.register(name);
                let tree = TaskNode {
                    parallelism: p,
                    ..leaf(&m)
                };
                let mut rxs = vec![];
                for (k, (mut source, stage)) in parts.into_iter().enumerate() {
                    let task = if p > 1 {
                        format!("{base}.{k}")
                    } else {
                        base.clone()
                    };
                    self.register(&task, &label);
                    let (tx, rx) = channel(CHANNEL_CAPACITY);
                    rxs.push(rx);
                    let mut ctx = SourceContext::new(
                        tx,
                        self.stop.clone(),
                        stage,
                        m.clone(),
                        self.metrics.clone(),
                    );
                    if let Some(d) = dead_letter.take() {
                        ctx.with_dead_letters(self.dead_letters.len());
                        self.dead_letters.push(d);
                    }
                    let cp = self.checkpointer.clone();
                    self.starts.push(Box::new(move || {
                        tokio::task::spawn_blocking(move || {
                            if let Some(cp) = cp
                                && ctx.attach_checkpoints(cp, task, source.as_mut())?
                            {
                                // Read to its end before the checkpoint: nothing more to
                                // send.
                                ctx.end(true);
                                return Ok(());
                            }
                            source.run(&mut ctx)
                        })
                    }));
                }
                let reads = reuse.as_ref().and_then(|k| self.reads.get(k)).copied();
                let rxs = match (reuse, reads) {
                    (Some(key), Some(n)) if n > 1 => {
                        // Each subtask's channel copied to every read. This read (the
                        // first) takes channels 0, which carry the dead letters; the later
                        // reads pop the rest in order.
                        let mut per_read: Vec<Vec<Receiver<Message>>> =
                            (0..n).map(|_| vec![]).collect();
                        for rx in rxs {
                            for (read, copy) in per_read.iter_mut().zip(self.fan_out(rx, n)) {
                                read.push(copy);
                            }
                        }
                        per_read.reverse();
                        let first = per_read.pop();
                        self.shared.insert(key, (per_read, tree.metrics.clone()));
                        match first {
                            Some(rxs) => rxs,
                            None => return (vec![], tree),
                        }
                    }
                    _ => rxs,
                };
                (self.deliver(rxs, &want), tree)
            }
            PlanNode::Values { batches } => {
                let (tx, rx) = channel(CHANNEL_CAPACITY);
                let m = self.metrics.register("values");
                let tree = leaf(&m);
                // Rows computed in batch are sent before any barrier can be aligned past
                // them (their input ends first), so every checkpoint holds them all: a
                // restored job sends them no more.
                let batches = match &self.checkpointer {
                    Some(cp) if cp.restored().is_some() => vec![],
                    _ => batches,
                };
                self.starts.push(Box::new(move || {
                    tokio::spawn(async move {
                        for b in batches {
                            m.add_out(b.num_rows());
                            let origin = Message::Origin(std::time::Instant::now());
                            if tx.send(origin).await.is_err()
                                || tx.send(Message::Batch(b)).await.is_err()
                            {
                                return Ok(());
                            }
                        }
                        let _ = tx.send(Message::Origin(std::time::Instant::now())).await;
                        let _ = tx.send(Message::Watermark(i64::MAX)).await;
                        let _ = tx.send(Message::End).await;
                        Ok(())
                    })
                }));
                (self.deliver_one(rx, &want), tree)
            }
            PlanNode::Operator { op, input } => {
                nodes.insert(0, PlanNode::Operator { op, input });
                self.chain(nodes, want)
            }
            PlanNode::Join {
                join,
                left,
                right,
                idle,
            } => {
                let others: Vec<(Box<dyn crate::operator::Operator>, PlanNode, PlanNode)> = nodes
                    .into_iter()
                    .filter_map(|n| match n {
                        PlanNode::Join {
                            join, left, right, ..
                        } => Some((join, *left, *right)),
                        _ => None,
                    })
                    .collect();
                let dist = if self.parallelism > 1 {
                    join.distribution()
                } else {
                    crate::operator::Distribution::Single
                };
                let keyed = matches!(dist, crate::operator::Distribution::Hash(_));
                let mut joins = vec![join];
                let (mut lefts, mut rights) = (vec![*left], vec![*right]);
                for (j, l, r) in others {
                    joins.push(j);
                    lefts.push(l);
                    rights.push(r);
                }
                let outer = std::mem::replace(
                    &mut self.feeds_keyed,
                    join_feeds_keyed(joins[0].as_ref(), self.parallelism, self.ordered_above),
                );
                let (ls, lt) = self.node(lefts, Want::of(&dist, 0));
                let (rs, rt) = self.node(rights, Want::of(&dist, 1));
                self.feeds_keyed = outer;
                let p = if keyed { self.parallelism } else { 1 };
                let mut chains = vec![];
                let mut inputs = vec![];
                let mut input_of = vec![];
                let mut idles = vec![];
                let mut ls = ls.into_iter();
                let mut rs = rs.into_iter();
                for j in joins.into_iter().take(p) {
                    let (l, r) = (ls.next().unwrap_or_default(), rs.next().unwrap_or_default());
                    input_of.push(
                        std::iter::repeat_n(0, l.len())
                            .chain(std::iter::repeat_n(1, r.len()))
                            .collect(),
                    );
                    idles.push(
                        std::iter::repeat_n(idle[0], l.len())
                            .chain(std::iter::repeat_n(idle[1], r.len()))
                            .collect(),
                    );
                    inputs.push(l.into_iter().chain(r).collect());
                    let op: Box<dyn Operator> = j;
                    chains.push(Chain::new(vec![op]));
                }
                let names: Vec<String> = chains.iter().map(|c| c.name()).collect();
                let ids = self.ids(&names[..1.min(names.len())], p);
                let (m, readers) = self.stage(chains, inputs, input_of, idles, ids, &want);
                (
                    readers,
                    TaskNode {
                        inputs: vec![lt, rt],
                        parallelism: p,
                        ..leaf(&m)
                    },
                )
            }
            PlanNode::Union {
                inputs,
                idle,
                statement_set,
            } => {
                // One union task (copy 0's), reading every subtask of each input; each
                // input is walked with all its copies, as its keyed operators need them.
                let count = inputs.len();
                let mut per_input: Vec<Vec<PlanNode>> =
                    inputs.into_iter().map(|i| vec![i]).collect();
                for other in nodes {
                    if let PlanNode::Union { inputs, .. } = other {
                        for (copies, input) in per_input.iter_mut().zip(inputs) {
                            copies.push(input);
                        }
                    }
                }
                let mut channels = vec![];
                let mut input_of = vec![];
                let mut idles = vec![];
                let mut trees = vec![];
                let outer = std::mem::replace(&mut self.feeds_keyed, false);
                for (i, copies) in per_input.into_iter().enumerate() {
                    let (rxs, tree) = self.node(copies, Want::Single);
                    for rx in rxs.into_iter().flatten() {
                        channels.push(rx);
                        input_of.push(i);
                        idles.push(idle.get(i).copied().flatten());
                    }
                    trees.push(tree);
                }
                self.feeds_keyed = outer;
                let op = Box::new(if statement_set {
                    crate::operator::union::UnionOperator::statement_set(count)
                } else {
                    crate::operator::union::UnionOperator::new(count)
                });
                let chain = Chain::new(vec![op]);
                let ids = self.ids(&[chain.name()], 1);
                let (m, readers) = self.stage(
                    vec![chain],
                    vec![channels],
                    vec![input_of],
                    vec![idles],
                    ids,
                    &want,
                );
                (
                    readers,
                    TaskNode {
                        inputs: trees,
                        ..leaf(&m)
                    },
                )
            }
        }
    }

    /// A run of single-input operators (the copies of it, one per unit of parallelism),
    /// fused into as few tasks as their distributions allow: one task when the job runs
    /// with parallelism 1; else a new stage wherever a keyed operator needs its input
    /// re-split, or an operator that needs all rows follows parallel ones.
    fn chain(&mut self, nodes: Vec<PlanNode>, want: Want) -> (Inputs, TaskNode) {
        // Each copy's operators, first (bottom) to last, and what lies below them.
        let mut copies: Vec<Vec<Option<Box<dyn Operator>>>> = vec![];
        let mut belows = vec![];
        for node in nodes {
            let mut ops: Vec<Option<Box<dyn Operator>>> = vec![];
            let mut below = node;
            while let PlanNode::Operator { op, input } = below {
                ops.push(Some(op));
                below = *input;
            }
            ops.reverse();
            copies.push(ops);
            belows.push(below);
        }
        let Some(ops0) = copies.first() else {
            let m = self.metrics.register("empty");
            return (
                vec![],
                TaskNode {
                    lines: vec![],
                    metrics: m,
                    parallelism: 1,
                    inputs: vec![],
                },
            );
        };
        let dists: Vec<crate::operator::Distribution> = ops0
            .iter()
            .map(|o| match (o, self.parallelism) {
                (Some(o), p) if p > 1 => o.distribution(),
                _ => crate::operator::Distribution::Single,
            })
            .collect();
        let count = dists.len();
        let keyed = feeds_keyed(
            ops0.iter().flatten().map(|o| o.as_ref()),
            self.parallelism,
            matches!(want, Want::Hash(_)) && self.feeds_keyed,
        );
        let ordered = orders_below(
            ops0.iter().flatten().map(|o| o.as_ref()),
            self.ordered_above,
        );
        let outer = std::mem::replace(&mut self.feeds_keyed, keyed);
        let outer_ordered = std::mem::replace(&mut self.ordered_above, ordered);
        let (mut readers, mut tree) = self.node(belows, Want::of(&dists[0], 0));
        self.feeds_keyed = outer;
        self.ordered_above = outer_ordered;
        let mut at = 0;
        while at < count {
            let p = readers.len();
            // This stage: operators from `at` up to (not including) `end`.
            let mut end = at + 1;
            while end < count {
                use crate::operator::Distribution;
                let joins = match &dists[end] {
                    Distribution::Forward => true,
                    Distribution::Single => p == 1,
                    Distribution::Hash(_) => self.parallelism <= 1,
                };
                if !joins {
                    break;
                }
                end += 1;
            }
            let mut chains = vec![];
            for ops in copies.iter_mut().take(p) {
                let stage: Vec<Box<dyn Operator>> =
                    ops[at..end].iter_mut().filter_map(|o| o.take()).collect();
                chains.push(Chain::new(stage));
            }
            let Some(c0) = chains.first() else {
                break;
            };
            let lines: Vec<String> = c0.ops().iter().rev().map(|o| o.name()).collect();
            let names: Vec<String> = c0.ops().iter().map(|o| o.signature()).collect();
            let ids = self.ids(&names, p);
            let next = if end < count {
                Want::of(&dists[end], 0)
            } else {
                match &want {
                    Want::Forward => Want::Forward,
                    Want::Single => Want::Single,
                    Want::Hash(k) => Want::Hash(k.clone()),
                }
            };
            let input_of = readers.iter().map(|r| vec![0; r.len()]).collect();
            let idle = readers.iter().map(|r| vec![None; r.len()]).collect();
            let (m, out) = self.stage(chains, readers, input_of, idle, ids, &next);
            readers = out;
            tree = TaskNode {
                lines,
                metrics: m,
                parallelism: p,
                inputs: vec![tree],
            };
            at = end;
        }
        (readers, tree)
    }
}
