//! Where a task's output goes: one channel, or — in front of a keyed operator that runs as
//! several parallel subtasks — a hash exchange that routes each row to the subtask owning
//! its key.
//!
//! Keys are assigned as Flink assigns them (`KeyGroupRangeAssignment`): a row's key hashes
//! to one of `pipeline.max-parallelism` **key groups** (`hash % max_parallelism`), and key
//! group `g` belongs to subtask `g * parallelism / max_parallelism`, so each subtask owns
//! one contiguous range of key groups. The hash is DataFusion's `create_hashes` under a
//! fixed seed: the same key lands in the same key group in every run of the same binary.
//!
//! Rows go to one subtask; everything else on the channel — watermarks, barriers, `End`,
//! latency origins — goes to every subtask, in its place among the rows, so that each
//! subtask sees the whole stream's progress. Dead letters go to the first subtask only (the
//! sink writes each once).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::physical_plan::PhysicalExpr;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use crate::error::Result;
use crate::job::{Message, OperatorMetrics};

/// Flink's default `pipeline.max-parallelism` for jobs of parallelism up to 128.
pub const DEFAULT_MAX_PARALLELISM: usize = 128;

/// The hash seed of key groups; fixed, so a key's group does not change between runs.
const SEED: u64 = 0x5745_4952;

/// The key group (`0..max_parallelism`) of a key hash.
pub fn key_group(hash: u64, max_parallelism: usize) -> usize {
    (hash % max_parallelism.max(1) as u64) as usize
}

/// The subtask (`0..parallelism`) owning key group `group`, as Flink's
/// `computeOperatorIndexForKeyGroup`: `group * parallelism / max_parallelism`.
pub fn subtask_of(group: usize, max_parallelism: usize, parallelism: usize) -> usize {
    group * parallelism / max_parallelism.max(1)
}

/// The key hash of every row of `batch` under `keys` (expressions over its schema).
/// Errors: a key expression fails to evaluate.
pub fn key_hashes(keys: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<u64>> {
    let columns = keys
        .iter()
        .map(|k| k.evaluate(batch)?.into_array(batch.num_rows()))
        .collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
    hash_columns(&columns, batch.num_rows())
}

/// The key hash of each of `rows` rows whose key is `columns` (already evaluated).
fn hash_columns(columns: &[ArrayRef], rows: usize) -> Result<Vec<u64>> {
    let mut hashes = vec![0u64; rows];
    create_hashes(columns, &RandomState::with_seed(SEED), &mut hashes)?;
    Ok(hashes)
}

/// The rows of `batch` (a piece of saved state) whose key — `keys`, one array per key
/// column, as the exchange evaluates them — belongs to `subtask` of `parallelism`: how a
/// checkpoint taken at one parallelism is split between the subtasks of another, key
/// group by key group (Flink's rescaling by `KeyGroupRange`). The schema and its metadata
/// are kept. Errors: `keys` are not as long as the batch.
pub fn rows_of_subtask(
    batch: &RecordBatch,
    keys: &[ArrayRef],
    subtask: usize,
    parallelism: usize,
    max_parallelism: usize,
) -> Result<RecordBatch> {
    if keys.iter().any(|k| k.len() != batch.num_rows()) {
        return Err(crate::error::WeirError::internal(
            "a saved state's keys do not match its rows",
        ));
    }
    let hashes = hash_columns(keys, batch.num_rows())?;
    let rows: Vec<u32> = hashes
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            subtask_of(
                key_group(**h, max_parallelism),
                max_parallelism,
                parallelism,
            ) == subtask
        })
        .map(|(i, _)| i as u32)
        .collect();
    if rows.len() == batch.num_rows() {
        return Ok(batch.clone());
    }
    Ok(take_record_batch(batch, &UInt32Array::from(rows))?)
}

/// A hash exchange: one task's output split over the channels of `senders.len()` subtasks
/// by the key groups of `keys`.
pub struct Exchange {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    senders: Vec<Sender<Message>>,
    /// False once a subtask has stopped reading (it ended early, as a satisfied LIMIT).
    open: Vec<bool>,
    max_parallelism: usize,
}

impl Exchange {
    pub fn new(
        keys: Vec<Arc<dyn PhysicalExpr>>,
        senders: Vec<Sender<Message>>,
        max_parallelism: usize,
    ) -> Self {
        let open = vec![true; senders.len()];
        Exchange {
            keys,
            senders,
            open,
            max_parallelism,
        }
    }

    /// Splits `batch` by subtask: `(subtask, its rows)`, only subtasks that get rows, each
    /// keeping the rows' order. Errors: a key fails to evaluate.
    pub fn route(&self, batch: &RecordBatch) -> Result<Vec<(usize, RecordBatch)>> {
        let n = self.senders.len();
        if n <= 1 {
            return Ok(vec![(0, batch.clone())]);
        }
        let hashes = key_hashes(&self.keys, batch)?;
        let mut rows: Vec<Vec<u32>> = vec![vec![]; n];
        for (i, h) in hashes.iter().enumerate() {
            let s = subtask_of(key_group(*h, self.max_parallelism), self.max_parallelism, n);
            rows[s.min(n - 1)].push(i as u32);
        }
        let mut out = Vec::with_capacity(n);
        for (s, r) in rows.into_iter().enumerate() {
            if r.is_empty() {
                continue;
            }
            if r.len() == batch.num_rows() {
                out.push((s, batch.clone()));
            } else {
                out.push((s, take_record_batch(batch, &UInt32Array::from(r))?));
            }
        }
        Ok(out)
    }
}

/// Where a task sends what it produces.
pub enum Output {
    One(Sender<Message>),
    Hash(Exchange),
    /// Every message to every reader still open: one source read by several parts of a
    /// plan (Flink's source reuse). Dead letters go to the first open reader only, so that
    /// each is written once.
    All {
        senders: Vec<Sender<Message>>,
        open: Vec<bool>,
    },
}

impl Output {
    /// Sends `m` on (its rows split by key for an exchange), counting time spent waiting
    /// for room as backpressure. Ok(false) when nobody reads on any more. Errors: a key
    /// of the exchange fails to evaluate.
    pub async fn send(&mut self, m: Message, metrics: &OperatorMetrics) -> Result<bool> {
        match self {
            Output::One(tx) => Ok(send_one(tx, m, metrics).await),
            Output::Hash(x) => {
                match m {
                    Message::Batch(b) => {
                        for (s, part) in x.route(&b)? {
                            if x.open[s] {
                                x.open[s] =
                                    send_one(&x.senders[s], Message::Batch(part), metrics).await;
                            }
                        }
                    }
                    m @ Message::DeadLetters(..) => {
                        if let Some(s) = x.open.iter().position(|o| *o) {
                            x.open[s] = send_one(&x.senders[s], m, metrics).await;
                        }
                    }
                    m => {
                        for s in 0..x.senders.len() {
                            if x.open[s] {
                                x.open[s] = send_one(&x.senders[s], m.clone(), metrics).await;
                            }
                        }
                    }
                }
                Ok(x.open.iter().any(|o| *o))
            }
            Output::All { senders, open } => {
                if matches!(m, Message::DeadLetters(..)) {
                    // To the first reader still open; one that has gone hands them on.
                    let mut m = Some(m);
                    for (tx, o) in senders.iter().zip(open.iter_mut()) {
                        if !*o {
                            continue;
                        }
                        let Some(letters) = m.take() else {
                            break;
                        };
                        match tx.try_send(letters) {
                            Ok(()) => break,
                            Err(TrySendError::Closed(back)) => {
                                *o = false;
                                m = Some(back);
                            }
                            Err(TrySendError::Full(back)) => {
                                let from = std::time::Instant::now();
                                match tx.send(back).await {
                                    Ok(()) => {
                                        metrics.add_backpressured(from.elapsed());
                                        break;
                                    }
                                    Err(e) => {
                                        *o = false;
                                        m = Some(e.0);
                                    }
                                }
                            }
                        }
                    }
                } else {
                    for (tx, o) in senders.iter().zip(open.iter_mut()) {
                        if *o {
                            *o = send_one(tx, m.clone(), metrics).await;
                        }
                    }
                }
                Ok(open.iter().any(|o| *o))
            }
        }
    }
}

/// Sends `m` on one channel. False when the receiver has gone.
async fn send_one(tx: &Sender<Message>, m: Message, metrics: &OperatorMetrics) -> bool {
    match tx.try_send(m) {
        Ok(()) => true,
        Err(TrySendError::Closed(_)) => false,
        Err(TrySendError::Full(m)) => {
            let from = std::time::Instant::now();
            let ok = tx.send(m).await.is_ok();
            metrics.add_backpressured(from.elapsed());
            ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fan-out gives rows to every read, and dead letters once, to the first read still
    /// open (regression: letters were dropped once the first read had ended).
    #[tokio::test]
    async fn a_fan_out_copies_rows_and_hands_dead_letters_on() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        let metrics = crate::job::JobMetrics::default().register("fan-out");
        let (txs, mut rxs): (Vec<_>, Vec<_>) =
            (0..3).map(|_| tokio::sync::mpsc::channel(8)).unzip();
        let mut out = Output::All {
            open: vec![true; 3],
            senders: txs,
        };
        assert!(
            out.send(Message::Batch(batch.clone()), &metrics)
                .await
                .unwrap()
        );
        for rx in rxs.iter_mut() {
            assert!(matches!(rx.try_recv(), Ok(Message::Batch(b)) if b.num_rows() == 2));
        }
        assert!(
            out.send(Message::DeadLetters(0, batch.clone()), &metrics)
                .await
                .unwrap()
        );
        assert!(matches!(rxs[0].try_recv(), Ok(Message::DeadLetters(..))));
        assert!(rxs[1].try_recv().is_err() && rxs[2].try_recv().is_err());
        // The first read ends: rows go to the others, and so do the letters, every time.
        drop(rxs.remove(0));
        assert!(
            out.send(Message::Batch(batch.clone()), &metrics)
                .await
                .unwrap()
        );
        for _ in 0..2 {
            assert!(
                out.send(Message::DeadLetters(0, batch.clone()), &metrics)
                    .await
                    .unwrap()
            );
        }
        assert!(matches!(rxs[0].try_recv(), Ok(Message::Batch(_))));
        assert!(matches!(rxs[0].try_recv(), Ok(Message::DeadLetters(..))));
        assert!(matches!(rxs[0].try_recv(), Ok(Message::DeadLetters(..))));
        assert!(matches!(rxs[1].try_recv(), Ok(Message::Batch(_))));
        assert!(rxs[1].try_recv().is_err());
    }

    #[test]
    fn key_groups_split_into_contiguous_ranges() {
        // Flink: with max parallelism 128 and parallelism 3, subtask 0 owns groups 0..=42,
        // 1 owns 43..=85, 2 owns 86..=127.
        let owner: Vec<usize> = (0..128).map(|g| subtask_of(g, 128, 3)).collect();
        assert_eq!(owner.iter().filter(|s| **s == 0).count(), 43);
        assert_eq!(owner.iter().filter(|s| **s == 1).count(), 43);
        assert_eq!(owner.iter().filter(|s| **s == 2).count(), 42);
        assert!(owner.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(subtask_of(127, 128, 2), 1);
        assert_eq!(subtask_of(63, 128, 2), 0);
        assert_eq!(subtask_of(64, 128, 2), 1);
    }

    #[test]
    fn equal_keys_meet_in_one_subtask() {
        use datafusion::arrow::array::{Array, Int64Array};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::physical_expr::expressions::Column;
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, false),
        ]));
        let keys: Vec<Arc<dyn PhysicalExpr>> = vec![Arc::new(Column::new("k", 0))];
        let k: Vec<Option<i64>> = (0..1000).map(|i| (i % 7 != 0).then_some(i % 50)).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(k)),
                Arc::new(Int64Array::from_iter_values(0..1000)),
            ],
        )
        .unwrap();
        let (txs, _rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| tokio::sync::mpsc::channel(1)).unzip();
        let x = Exchange::new(keys, txs, DEFAULT_MAX_PARALLELISM);
        let parts = x.route(&batch).unwrap();
        assert!(parts.len() > 1, "50 keys over 3 subtasks use more than one");
        let mut owner = std::collections::HashMap::new();
        let mut rows = 0;
        for (s, b) in &parts {
            rows += b.num_rows();
            let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let v = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            // Rows keep their order within a subtask.
            assert!(v.values().windows(2).all(|w| w[0] < w[1]));
            for i in 0..b.num_rows() {
                let key = k.is_valid(i).then(|| k.value(i));
                assert_eq!(*owner.entry(key).or_insert(*s), *s, "key {key:?}");
            }
        }
        assert_eq!(rows, 1000);
    }
}
