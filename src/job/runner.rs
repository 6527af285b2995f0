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
use crate::operator::{Chain, Operator, TaskCheckpoint, TaskInputs, run_task};
use crate::plan::PlanNode;
use crate::sink::{Sink, SinkContext, run_sink};
use crate::source::SourceContext;

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
        plan: PlanNode,
        sink: Box<dyn Sink>,
        checkpoint: CheckpointConfig,
    ) -> Result<Job> {
        let checkpointer = if checkpoint.enabled() {
            check_checkpointable(&plan)?;
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
        };
        let (rx, tree) = spawner.node(plan);
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
            cp.check_plan()?;
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
            match &first_err {
                Some(e) => tracing::error!(
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

/// Walks a plan, giving each task its channel and its stable id (`source-<n>`, `op-<n>`, in
/// plan order), and collects the tasks to start once every id is registered (so that a
/// restored checkpoint is checked against the whole plan before anything runs).
struct Spawner<'a> {
    metrics: &'a Arc<JobMetrics>,
    stop: &'a Arc<AtomicBool>,
    checkpointer: Option<Arc<Checkpointer>>,
    next_id: usize,
    starts: Vec<Start>,
    /// The sources' dead-letter sinks, driven by the sink task; a source's index here
    /// tags its dead letters.
    dead_letters: Vec<crate::sink::dead_letter::DeadLetterTable>,
}

impl Spawner<'_> {
    fn id(&mut self, kind: &str, name: &str) -> String {
        let id = format!("{kind}-{}", self.next_id);
        self.next_id += 1;
        if let Some(cp) = &self.checkpointer {
            cp.register(&id, name);
        }
        id
    }

    /// Prepares the task of an operator with several inputs (a join, a union), run by the
    /// same loop as every other ([`run_task`]).
    fn spawn_task(
        &mut self,
        op: Box<dyn Operator>,
        receivers: Vec<Receiver<Message>>,
        idle: Vec<Option<std::time::Duration>>,
        tx: tokio::sync::mpsc::Sender<Message>,
    ) -> Arc<OperatorMetrics> {
        let mut chain = Chain::new(vec![op]);
        let name = chain.name();
        let task = self.id("op", &name);
        let m = self.metrics.register(name);
        chain.attach(&TaskMetrics {
            job: self.metrics.clone(),
            task: m.clone(),
        });
        let aligned = self
            .checkpointer
            .as_ref()
            .is_none_or(|c| c.config.exactly_once);
        let cp = self
            .checkpointer
            .clone()
            .map(|checkpointer| TaskCheckpoint {
                checkpointer,
                tasks: vec![task],
            });
        let inputs = TaskInputs {
            receivers,
            idle,
            aligned,
        };
        let metrics = m.clone();
        self.starts.push(Box::new(move || {
            tokio::spawn(run_task(chain, inputs, tx, m, cp))
        }));
        metrics
    }

    /// Prepares the tasks of `node`; returns the channel its output arrives on, and its
    /// tasks as a tree (for a running job's `EXPLAIN`).
    fn node(&mut self, node: PlanNode) -> (Receiver<Message>, TaskNode) {
        let (tx, rx) = channel(CHANNEL_CAPACITY);
        let label = node.label();
        let leaf = |metrics: &Arc<OperatorMetrics>| TaskNode {
            lines: vec![label.clone()],
            metrics: metrics.clone(),
            inputs: vec![],
        };
        let tree = match node {
            PlanNode::Source {
                table,
                mut source,
                stage,
                dead_letter,
            } => {
                let name = format!("source {}", table.name);
                // The manifest names what the source reads, so that a restore into a source
                // reading another path or topic is refused.
                let task = self.id("source", &format!("{name} ({})", source.origin()));
                let m = self.metrics.register(name);
                let tree = leaf(&m);
                let mut ctx =
                    SourceContext::new(tx, self.stop.clone(), stage, m, self.metrics.clone());
                if let Some(d) = dead_letter {
                    ctx.with_dead_letters(self.dead_letters.len());
                    self.dead_letters.push(d);
                }
                let cp = self.checkpointer.clone();
                self.starts.push(Box::new(move || {
                    tokio::task::spawn_blocking(move || {
                        if let Some(cp) = cp
                            && ctx.attach_checkpoints(cp, task, source.as_mut())?
                        {
                            // Read to its end before the checkpoint: nothing more to send.
                            ctx.end(true);
                            return Ok(());
                        }
                        source.run(&mut ctx)
                    })
                }));
                tree
            }
            PlanNode::Values { batches } => {
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
                tree
            }
            PlanNode::Operator { op, input } => {
                // Fuse a run of operators into one task.
                let mut ops: Vec<Box<dyn Operator>> = vec![op];
                let mut below = *input;
                while let PlanNode::Operator { op, input } = below {
                    ops.push(op);
                    below = *input;
                }
                let lines: Vec<String> = ops.iter().map(|o| o.name()).collect();
                ops.reverse();
                let (input_rx, input) = self.node(below);
                let task_ids: Vec<String> = ops
                    .iter()
                    .map(|o| o.signature())
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|n| self.id("op", n))
                    .collect();
                let mut chain = Chain::new(ops);
                let m = self.metrics.register(chain.name());
                chain.attach(&TaskMetrics {
                    job: self.metrics.clone(),
                    task: m.clone(),
                });
                let cp = self
                    .checkpointer
                    .clone()
                    .map(|checkpointer| TaskCheckpoint {
                        checkpointer,
                        tasks: task_ids,
                    });
                let tree = TaskNode {
                    lines,
                    metrics: m.clone(),
                    inputs: vec![input],
                };
                self.starts.push(Box::new(move || {
                    tokio::spawn(run_task(chain, TaskInputs::one(input_rx), tx, m, cp))
                }));
                tree
            }
            PlanNode::Join {
                join,
                left,
                right,
                idle,
            } => {
                let (l, lt) = self.node(*left);
                let (r, rt) = self.node(*right);
                let op: Box<dyn Operator> = join;
                let m = self.spawn_task(op, vec![l, r], idle.to_vec(), tx);
                TaskNode {
                    inputs: vec![lt, rt],
                    ..leaf(&m)
                }
            }
            PlanNode::Union { inputs, idle } => {
                let (rxs, trees): (Vec<_>, Vec<_>) =
                    inputs.into_iter().map(|i| self.node(i)).unzip();
                let op = Box::new(crate::operator::union::UnionOperator::new(rxs.len()));
                let m = self.spawn_task(op, rxs, idle, tx);
                TaskNode {
                    inputs: trees,
                    ..leaf(&m)
                }
            }
        };
        (rx, tree)
    }
}
