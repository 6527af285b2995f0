//! UNION ALL: merges several inputs into one stream.
//!
//! The merged watermark is the minimum of the inputs' watermarks (an input that has ended
//! no longer holds it back, nor does one that has sent nothing for its idle timeout, until
//! it sends again), and the union ends when every input has ended.

use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::Receiver;

use crate::error::Result;
use crate::job::Message;

/// UNION ALL in the one operator model: rows of every input pass as they come; the run loop
/// ([`super::run_task`]) merges the watermarks and aligns barriers. When every input has
/// ended, the final watermark is the highest any of them reached.
pub struct UnionOperator {
    /// The highest watermark each input sent.
    watermarks: Vec<i64>,
    /// The last watermark passed on.
    emitted: i64,
    /// A statement set's union: each input's own watermark goes on as a watermark mark
    /// for its INSERT's sink (see [`crate::sink::multi`]).
    marks: bool,
}

impl UnionOperator {
    pub fn new(inputs: usize) -> Self {
        UnionOperator {
            watermarks: vec![i64::MIN; inputs],
            emitted: i64::MIN,
            marks: false,
        }
    }

    /// The union of a statement set's INSERTs, input `i` being INSERT `i`: it passes each
    /// INSERT's watermark (the least over that input's channels, as the run loop merges
    /// them) on as a watermark mark, so each sink commits by its own INSERT's watermark.
    pub fn statement_set(inputs: usize) -> Self {
        UnionOperator {
            marks: true,
            ..UnionOperator::new(inputs)
        }
    }
}

impl super::Operator for UnionOperator {
    fn name(&self) -> String {
        "union".to_string()
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        out.push(Message::Batch(batch));
        Ok(())
    }

    fn input_watermark(
        &mut self,
        input: usize,
        watermark: i64,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        if let Some(w) = self.watermarks.get_mut(input) {
            *w = (*w).max(watermark);
            if self.marks {
                out.push(Message::Batch(crate::sink::multi::mark(input, *w)?));
            }
        }
        Ok(())
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        self.emitted = self.emitted.max(watermark);
        out.push(Message::Watermark(watermark));
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Message>) -> Result<()> {
        let last = self.watermarks.iter().copied().max().unwrap_or(i64::MIN);
        if last > self.emitted {
            self.emitted = last;
            out.push(Message::Watermark(last));
        }
        Ok(())
    }
}

/// Every input's messages on one channel, each tagged with its input's index, with the
/// inputs aligned on checkpoint barriers (Flink's aligned checkpoints): after passing on
/// `Barrier(n)`, an input sends nothing more until [`Merged::release`] of `n`, which the
/// task calls once the barrier has come from every input that has not ended and it has
/// saved its state and passed the barrier on.
pub(crate) struct Merged {
    pub rx: Receiver<(usize, Message)>,
    release: tokio::sync::watch::Sender<u64>,
    /// The last barrier id from each input.
    seen: Vec<u64>,
}

impl Merged {
    /// Input `i` sent `Barrier(id)`: true when every input not ended has now sent it.
    pub fn barrier(&mut self, i: usize, id: u64, ended: &[bool]) -> bool {
        if let Some(s) = self.seen.get_mut(i) {
            *s = (*s).max(id);
        }
        self.aligned(id, ended)
    }

    fn aligned(&self, id: u64, ended: &[bool]) -> bool {
        self.seen
            .iter()
            .zip(ended)
            .all(|(seen, ended)| *ended || *seen >= id)
    }

    /// An input ended: the barrier that the other inputs now all wait at, if any.
    pub fn aligned_after_end(&self, ended: &[bool]) -> Option<u64> {
        let waiting = self
            .seen
            .iter()
            .zip(ended)
            .filter(|(_, e)| !**e)
            .map(|(s, _)| *s)
            .max()?;
        (waiting > *self.release.borrow() && self.aligned(waiting, ended)).then_some(waiting)
    }

    /// Lets the inputs go on past barrier `id`.
    pub fn release(&self, id: u64) {
        self.release.send_if_modified(|r| {
            let changed = id > *r;
            *r = (*r).max(id);
            changed
        });
    }
}

/// Merges `inputs` into one tagged channel. With `aligned` (checkpointing mode
/// `EXACTLY_ONCE`), an input that passed on a barrier waits for [`Merged::release`]; without
/// it (`AT_LEAST_ONCE`, Flink's mode that skips alignment), it goes on at once, so
/// that rows after the barrier may be in the state saved for it and come again after a
/// restore — never lost, possibly repeated.
pub(crate) fn merge_inputs(inputs: Vec<Receiver<Message>>, aligned: bool) -> Merged {
    let (mtx, mrx) = tokio::sync::mpsc::channel::<(usize, Message)>(crate::job::CHANNEL_CAPACITY);
    let (release, _) = tokio::sync::watch::channel(0u64);
    let n = inputs.len();
    for (i, mut rx) in inputs.into_iter().enumerate() {
        let mtx = mtx.clone();
        let mut released = release.subscribe();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let end = matches!(m, Message::End);
                let barrier = match m {
                    Message::Barrier(id) => Some(id),
                    _ => None,
                };
                if mtx.send((i, m)).await.is_err() || end {
                    break;
                }
                if let Some(id) = barrier
                    && aligned
                    && released.wait_for(|r| *r >= id).await.is_err()
                {
                    break;
                }
            }
        });
    }
    Merged {
        rx: mrx,
        release,
        seen: vec![0; n],
    }
}

/// How often to look for inputs gone idle: a quarter of the shortest idle timeout.
pub(crate) fn idle_tick(idle: &[Option<Duration>]) -> Option<Duration> {
    idle.iter()
        .flatten()
        .min()
        .map(|d| (*d / 4).max(Duration::from_millis(5)))
}

/// The next tagged message, or `Some(None)` when `tick` passes without one; None when every
/// input is gone.
pub(crate) async fn next_or_tick(
    rx: &mut Receiver<(usize, Message)>,
    tick: Option<Duration>,
) -> Option<Option<(usize, Message)>> {
    match tick {
        Some(t) => match tokio::time::timeout(t, rx.recv()).await {
            Ok(m) => m.map(Some),
            Err(_) => Some(None),
        },
        None => rx.recv().await.map(Some),
    }
}

/// The minimum watermark of the inputs that are neither ended nor idle; None when every
/// live input is idle (the watermark then waits, as in Flink).
pub(crate) fn merged(
    watermarks: &[i64],
    ended: &[bool],
    idle: &[Option<Duration>],
    last_seen: &[Instant],
) -> Option<i64> {
    if let ([w], [false], [None]) = (watermarks, ended, idle) {
        // One input that is never idle: its own watermark (the common, hot case).
        return Some(*w);
    }
    let now = Instant::now();
    let live: Vec<usize> = (0..watermarks.len()).filter(|j| !ended[*j]).collect();
    let active: Vec<usize> = live
        .iter()
        .copied()
        .filter(|j| idle[*j].is_none_or(|t| now.duration_since(last_seen[*j]) < t))
        .collect();
    if active.is_empty() {
        return if live.is_empty() {
            Some(i64::MIN)
        } else {
            None
        };
    }
    active.iter().map(|j| watermarks[*j]).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    fn batch(v: i64) -> Message {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let b =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).expect("batch");
        Message::Batch(b)
    }

    /// Input 0 sends `Barrier(1)` and then a row while input 1 has not sent its barrier:
    /// aligned (EXACTLY_ONCE), the row waits for the release; unaligned (AT_LEAST_ONCE), it
    /// comes through at once.
    async fn row_after_barrier_passes(aligned: bool) -> bool {
        let (tx0, rx0) = tokio::sync::mpsc::channel(8);
        let (_tx1, rx1) = tokio::sync::mpsc::channel::<Message>(8);
        let mut merge = merge_inputs(vec![rx0, rx1], aligned);
        tx0.send(Message::Barrier(1)).await.expect("send");
        tx0.send(batch(7)).await.expect("send");
        let first = merge.rx.recv().await;
        assert!(matches!(first, Some((0, Message::Barrier(1)))));
        assert!(
            !merge.barrier(0, 1, &[false, false]),
            "input 1 has not sent it"
        );
        let next = tokio::time::timeout(Duration::from_millis(200), merge.rx.recv()).await;
        let passed = matches!(next, Ok(Some((0, Message::Batch(_)))));
        if !passed {
            merge.release(1);
            let after = merge.rx.recv().await;
            assert!(matches!(after, Some((0, Message::Batch(_)))), "released");
        }
        passed
    }

    #[tokio::test]
    async fn exactly_once_holds_an_input_at_its_barrier_and_at_least_once_does_not() {
        assert!(!row_after_barrier_passes(true).await);
        assert!(row_after_barrier_passes(false).await);
    }
}
