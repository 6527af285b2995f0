//! A running standing query: the tasks of its pipeline, the bounded channels between them,
//! its metrics and how it stops.
//!
//! ```text
//!  source task ──► [channel] ──► operator task ──► [channel] ──► sink task
//!  (blocking thread)            (tokio task)                    (blocking thread)
//! ```
//!
//! Every edge is a bounded `tokio::sync::mpsc` channel of [`Message`]s holding at most
//! [`CHANNEL_CAPACITY`] messages. A sink that cannot keep up leaves its channel full, the
//! operator before it waits in `send().await`, its own input fills, and finally the source
//! thread blocks in `blocking_send`: a slow sink slows the source and memory stays bounded
//! by (channels × capacity × batch size).
//!
//! Every task has a stable id from its place in the plan (`source-0`, `op-3`, `sink`): a
//! checkpoint's state files are named by it and restored into the task of the same id.

pub mod exporter;
pub mod message;
pub mod metrics;
pub mod runner;

pub use message::Message;
pub use metrics::{JobMetrics, OperatorMetrics, TaskMetrics};
pub use runner::{Job, JobHandle, JobState, StopHandle};

/// How many messages one channel holds before its sender waits. A batch is often preceded
/// by its (tiny) [`Message::Origin`], so between 4 and 8 batches.
pub const CHANNEL_CAPACITY: usize = 8;

/// Runs `f`, which blocks (file I/O), from inside a job's async task: on a multi-threaded
/// runtime through [`tokio::task::block_in_place`], so the worker's other tasks move to
/// another thread meanwhile; elsewhere (a current-thread runtime, no runtime) directly.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
