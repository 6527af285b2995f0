//! UNION ALL: merges several inputs into one stream.
//!
//! The merged watermark is the minimum of the inputs' watermarks (an input that has ended
//! no longer holds it back, nor does one that has sent nothing for its idle timeout, until
//! it sends again), and the union ends when every input has ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{Receiver, Sender};

use crate::error::Result;
use crate::job::{Message, OperatorMetrics};

pub async fn run_union(
    inputs: Vec<Receiver<Message>>,
    idle: Vec<Option<Duration>>,
    tx: Sender<Message>,
    metrics: Arc<OperatorMetrics>,
) -> Result<()> {
    let n = inputs.len();
    let tick = idle
        .iter()
        .flatten()
        .min()
        .map(|d| (*d / 4).max(Duration::from_millis(5)));
    let mut last_seen = vec![Instant::now(); n];
    let (mtx, mut mrx) =
        tokio::sync::mpsc::channel::<(usize, Message)>(crate::job::CHANNEL_CAPACITY);
    for (i, mut rx) in inputs.into_iter().enumerate() {
        let mtx = mtx.clone();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let end = matches!(m, Message::End);
                if mtx.send((i, m)).await.is_err() || end {
                    break;
                }
            }
        });
    }
    drop(mtx);
    let mut watermarks = vec![i64::MIN; n];
    let mut ended = vec![false; n];
    let mut emitted = i64::MIN;
    loop {
        let next = match tick {
            Some(t) => match tokio::time::timeout(t, mrx.recv()).await {
                Ok(m) => m.map(Some),
                Err(_) => Some(None),
            },
            None => mrx.recv().await.map(Some),
        };
        let Some(next) = next else { break };
        let Some((i, m)) = next else {
            // A tick: an input may have become idle.
            if let Some(w) = merged(&watermarks, &ended, &idle, &last_seen)
                && w > emitted
            {
                emitted = w;
                if tx.send(Message::Watermark(w)).await.is_err() {
                    return Ok(());
                }
            }
            continue;
        };
        last_seen[i] = Instant::now();
        match m {
            Message::Batch(b) => {
                metrics.add_in(b.num_rows());
                metrics.add_out(b.num_rows());
                if tx.send(Message::Batch(b)).await.is_err() {
                    return Ok(());
                }
                continue;
            }
            Message::Watermark(w) => watermarks[i] = watermarks[i].max(w),
            Message::End => ended[i] = true,
        }
        if ended.iter().all(|e| *e) {
            break;
        }
        let Some(min) = merged(&watermarks, &ended, &idle, &last_seen) else {
            continue;
        };
        if min > emitted {
            emitted = min;
            if tx.send(Message::Watermark(min)).await.is_err() {
                return Ok(());
            }
        }
    }
    // Every input ended: the final watermark is the highest any of them reached.
    let last = watermarks.iter().copied().max().unwrap_or(i64::MIN);
    if last > emitted {
        let _ = tx.send(Message::Watermark(last)).await;
    }
    let _ = tx.send(Message::End).await;
    Ok(())
}

/// The minimum watermark of the inputs that are neither ended nor idle; None when every
/// live input is idle (the watermark then waits, as in Flink).
fn merged(
    watermarks: &[i64],
    ended: &[bool],
    idle: &[Option<Duration>],
    last_seen: &[Instant],
) -> Option<i64> {
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
