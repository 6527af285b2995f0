//! UNION ALL: merges several inputs into one stream.
//!
//! The merged watermark is the minimum of the inputs' watermarks (an input that has ended
//! no longer holds it back), and the union ends when every input has ended.

use std::sync::Arc;

use tokio::sync::mpsc::{Receiver, Sender};

use crate::error::Result;
use crate::job::{Message, OperatorMetrics};

pub async fn run_union(
    inputs: Vec<Receiver<Message>>,
    tx: Sender<Message>,
    metrics: Arc<OperatorMetrics>,
) -> Result<()> {
    let n = inputs.len();
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
    while let Some((i, m)) = mrx.recv().await {
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
        let min = (0..n)
            .filter(|j| !ended[*j])
            .map(|j| watermarks[j])
            .min()
            .unwrap_or(i64::MIN);
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
