//! Spawning a streaming plan as tasks and waiting for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::{Receiver, channel};
use tokio::task::JoinHandle;

use super::{CHANNEL_CAPACITY, JobMetrics, Message};
use crate::error::{Result, WeirError};
use crate::operator::{Chain, Operator, run_operator};
use crate::plan::PlanNode;
use crate::sink::{Sink, run_sink};
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
}

pub type JobHandle = JoinHandle<Result<()>>;

/// Stops a job from elsewhere (see [`Job::stop_handle`]).
#[derive(Clone)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Job {
    /// Starts every task of `plan`, ending in `sink`.
    pub fn start(id: u64, name: String, plan: PlanNode, sink: Box<dyn Sink>) -> Job {
        let metrics = Arc::new(JobMetrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks: Vec<JoinHandle<Result<()>>> = vec![];
        let rx = spawn_node(plan, &metrics, &stop, &mut tasks);
        let sink_metrics = metrics.register("sink");
        tasks.push(tokio::task::spawn_blocking(move || {
            run_sink(sink, rx, sink_metrics)
        }));
        let stop2 = stop.clone();
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
                    let secondary = matches!(&e, WeirError::Internal(m) if m.contains("stopped before its end"));
                    match &first_err {
                        None => first_err = Some(e),
                        Some(WeirError::Internal(m))
                            if m.contains("stopped before its end") && !secondary =>
                        {
                            first_err = Some(e)
                        }
                        _ => {}
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(()),
            }
        });
        Job {
            id,
            name,
            metrics,
            stop,
            handle,
        }
    }

    /// A handle that stops this job, usable while something else waits for it.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Asks the sources to stop; the job then drains and ends cleanly.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
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

/// Starts the tasks of `node` and returns the channel its output arrives on.
fn spawn_node(
    node: PlanNode,
    metrics: &Arc<JobMetrics>,
    stop: &Arc<AtomicBool>,
    tasks: &mut Vec<JoinHandle<Result<()>>>,
) -> Receiver<Message> {
    let (tx, rx) = channel(CHANNEL_CAPACITY);
    match node {
        PlanNode::Source {
            table,
            mut source,
            stage,
        } => {
            let m = metrics.register(format!("source {}", table.name));
            let mut ctx = SourceContext::new(tx, stop.clone(), stage, m, metrics.clone());
            tasks.push(tokio::task::spawn_blocking(move || source.run(&mut ctx)));
        }
        PlanNode::Values { batches } => {
            let m = metrics.register("values");
            tasks.push(tokio::spawn(async move {
                for b in batches {
                    m.add_out(b.num_rows());
                    if tx.send(Message::Batch(b)).await.is_err() {
                        return Ok(());
                    }
                }
                let _ = tx.send(Message::Watermark(i64::MAX)).await;
                let _ = tx.send(Message::End).await;
                Ok(())
            }));
        }
        PlanNode::Operator { op, input } => {
            // Fuse a run of operators into one task.
            let mut ops: Vec<Box<dyn Operator>> = vec![op];
            let mut below = *input;
            while let PlanNode::Operator { op, input } = below {
                ops.push(op);
                below = *input;
            }
            ops.reverse();
            let input_rx = spawn_node(below, metrics, stop, tasks);
            let mut op: Box<dyn Operator> = if ops.len() == 1 {
                ops.remove(0)
            } else {
                Box::new(Chain::new(ops))
            };
            op.attach(metrics);
            let m = metrics.register(op.name());
            tasks.push(tokio::spawn(run_operator(op, input_rx, tx, m)));
        }
        PlanNode::Join {
            mut join,
            left,
            right,
            idle,
        } => {
            let l = spawn_node(*left, metrics, stop, tasks);
            let r = spawn_node(*right, metrics, stop, tasks);
            join.attach(metrics);
            let m = metrics.register(join.name());
            tasks.push(tokio::spawn(crate::operator::join::run_join(
                *join, l, r, idle, tx, m,
            )));
        }
        PlanNode::Union { inputs, idle } => {
            let rxs = inputs
                .into_iter()
                .map(|i| spawn_node(i, metrics, stop, tasks))
                .collect();
            let m = metrics.register("union");
            tasks.push(tokio::spawn(crate::operator::union::run_union(
                rxs, idle, tx, m,
            )));
        }
    }
    rx
}
