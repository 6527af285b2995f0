//! Sinks: where a standing query's rows leave it.
//!
//! A [`Sink`] is synchronous and runs on a blocking thread of its own ([`run_sink`]), so
//! slow I/O never stalls the async runtime; while it writes, its bounded input channel
//! fills and the query upstream waits (backpressure). `finish` is called only when the
//! input ended cleanly, and is where files are committed; a failed query leaves no
//! committed partial output.

pub mod blackhole;
pub mod collect;
pub mod conform;
pub mod filesystem;
pub mod kafka;
pub mod partitioned;
pub mod print;
pub mod terminal;

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::Receiver;

use crate::error::{Result, WeirError};
use crate::job::{Message, OperatorMetrics};

pub trait Sink: Send {
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// Sees the watermark; sinks that commit by event time use it.
    fn on_watermark(&mut self, _watermark: i64) -> Result<()> {
        Ok(())
    }
    /// Flushes and commits, once, after the last batch.
    fn finish(&mut self) -> Result<()>;
    /// True when the sink takes a changelog (rows that update earlier ones; see
    /// [`crate::changelog`]); the others take inserts only.
    fn accepts_changes(&self) -> bool {
        false
    }
    /// How often the sink wants [`Sink::on_tick`] while no message arrives (a time-based
    /// commit), if at all.
    fn tick(&self) -> Option<std::time::Duration> {
        None
    }
    fn on_tick(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Drains `rx` into `sink`. A broken pipe on the terminal ends the query quietly (the
/// reader went away, as with `weir run q.sql | head`).
pub fn run_sink(
    mut sink: Box<dyn Sink>,
    mut rx: Receiver<Message>,
    metrics: Arc<OperatorMetrics>,
) -> Result<()> {
    let tick = sink.tick();
    let handle = tokio::runtime::Handle::current();
    loop {
        let msg = match tick {
            Some(t) => match handle.block_on(tokio::time::timeout(t, rx.recv())) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => {
                    sink.on_tick()?;
                    continue;
                }
            },
            None => match rx.blocking_recv() {
                Some(m) => m,
                None => break,
            },
        };
        let r = match msg {
            Message::Batch(b) => {
                metrics.add_in(b.num_rows());
                let r = sink.write(&b);
                if r.is_ok() {
                    metrics.add_out(b.num_rows());
                }
                r
            }
            Message::Watermark(w) => sink.on_watermark(w),
            Message::End => return sink.finish(),
        };
        if let Err(e) = r {
            if is_broken_pipe(&e) {
                return Ok(());
            }
            return Err(e);
        }
    }
    Err(WeirError::internal(
        "the query stopped before its end reached the sink",
    ))
}

pub fn is_broken_pipe(e: &WeirError) -> bool {
    matches!(e, WeirError::External(m) if m.contains("Broken pipe") || m.contains("broken pipe"))
}
