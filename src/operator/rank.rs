//! Ranking over the rows of each fired window: `ROW_NUMBER()`, `RANK()` and `DENSE_RANK()`
//! `OVER (PARTITION BY window_start, window_end, ... ORDER BY ...)` — windowed Top-N, when a
//! filter on the rank follows.
//!
//! A window aggregate emits all rows of a window in one batch when the window fires, so a
//! partition that includes `window_start` and `window_end` is complete within one batch: the
//! ranks are computed per batch (sort by partition and order keys, then number the rows),
//! with no state and no update rows.
//!
//! Over a window table function without an aggregate (Flink's window Top-N and window
//! deduplication), a [`WindowBufferOperator`] first holds each window's rows until the
//! window fires, then hands them on in one batch: the result is append-only, as in Flink.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{SortColumn, SortOptions, cast, lexsort_to_indices, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::job::{Message, TaskMetrics};
use crate::operator::Operator;
use crate::source::watermark::to_epoch_millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankKind {
    RowNumber,
    Rank,
    DenseRank,
}

impl RankKind {
    pub fn from_name(name: &str) -> Option<RankKind> {
        match name {
            "row_number" => Some(RankKind::RowNumber),
            "rank" => Some(RankKind::Rank),
            "dense_rank" => Some(RankKind::DenseRank),
            _ => None,
        }
    }
}

/// One ranking call: its partition and order keys.
#[derive(Clone)]
pub struct RankCall {
    pub kind: RankKind,
    pub partition: Vec<Arc<dyn PhysicalExpr>>,
    pub order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    /// How rows equal in the order keys are numbered: in arrival order (false: the first
    /// to arrive is first, Flink's window Top-N) or newest first (true: Flink's window
    /// deduplication keeping the last row, `ORDER BY rowtime DESC` with `rn = 1`).
    pub newest_first: bool,
}

pub struct RankOperator {
    calls: Vec<RankCall>,
    schema: SchemaRef,
}

impl RankOperator {
    pub fn new(calls: Vec<RankCall>, schema: SchemaRef) -> Self {
        RankOperator { calls, schema }
    }
}

fn rows_of(cols: &[ArrayRef]) -> Result<Option<datafusion::arrow::row::Rows>> {
    if cols.is_empty() {
        return Ok(None);
    }
    let conv = RowConverter::new(
        cols.iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    Ok(Some(conv.convert_columns(cols)?))
}

/// The ranks of one call, in the batch's row order, and the rows' ranked order.
fn ranks(call: &RankCall, batch: &RecordBatch) -> Result<(ArrayRef, Vec<u32>)> {
    let n = batch.num_rows();
    let eval =
        |e: &Arc<dyn PhysicalExpr>| -> Result<ArrayRef> { Ok(e.evaluate(batch)?.into_array(n)?) };
    let part = call
        .partition
        .iter()
        .map(eval)
        .collect::<Result<Vec<_>>>()?;
    let order = call
        .order
        .iter()
        .map(|(e, _)| eval(e))
        .collect::<Result<Vec<_>>>()?;
    let mut sort: Vec<SortColumn> = part
        .iter()
        .map(|c| SortColumn {
            values: c.clone(),
            options: None,
        })
        .collect();
    sort.extend(order.iter().zip(&call.order).map(|(c, (_, o))| SortColumn {
        values: c.clone(),
        options: Some(*o),
    }));
    // Ties in the order keys go by arrival (the row's position in the batch), so ranks do
    // not depend on the sort's stability.
    if !sort.is_empty() {
        sort.push(SortColumn {
            values: Arc::new(UInt32Array::from_iter_values(0..n as u32)),
            options: Some(SortOptions {
                descending: call.newest_first,
                nulls_first: false,
            }),
        });
    }
    let sorted = if sort.is_empty() {
        (0..n as u32).collect::<Vec<_>>()
    } else {
        lexsort_to_indices(&sort, None)?.values().to_vec()
    };
    let part_rows = rows_of(&part)?;
    let order_rows = rows_of(&order)?;
    let mut out = vec![0u64; n];
    let (mut number, mut rank, mut dense) = (0u64, 0u64, 0u64);
    for (pos, &i) in sorted.iter().enumerate() {
        let i = i as usize;
        let new_partition = pos == 0
            || part_rows
                .as_ref()
                .is_some_and(|r| r.row(i) != r.row(sorted[pos - 1] as usize));
        if new_partition {
            number = 0;
            rank = 0;
            dense = 0;
        }
        number += 1;
        let tie = !new_partition
            && order_rows
                .as_ref()
                .is_none_or(|r| r.row(i) == r.row(sorted[pos - 1] as usize));
        if !tie {
            rank = number;
            dense += 1;
        }
        out[i] = match call.kind {
            RankKind::RowNumber => number,
            RankKind::Rank => rank,
            RankKind::DenseRank => dense,
        };
    }
    Ok((Arc::new(UInt64Array::from(out)), sorted))
}

impl Operator for RankOperator {
    fn name(&self) -> String {
        "window rank".to_string()
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut cols = batch.columns().to_vec();
        let mut order = None;
        for c in &self.calls {
            let (r, sorted) = ranks(c, &batch)?;
            order.get_or_insert(sorted);
            let dt = self.schema.field(cols.len()).data_type();
            cols.push(if r.data_type() == dt {
                r
            } else {
                cast(&r, dt)?
            });
        }
        // Rows leave in the first call's ranked order.
        if let Some(order) = order {
            let idx = UInt32Array::from(order);
            cols = cols
                .iter()
                .map(|c| Ok(take(c.as_ref(), &idx, None)?))
                .collect::<Result<Vec<_>>>()?;
        }
        out.push(Message::Batch(RecordBatch::try_new(
            self.schema.clone(),
            cols,
        )?));
        Ok(())
    }
}

/// Holds the rows of each window of a window table function until the window fires (the
/// watermark reaches its end − 1 ms, [`super::fired_through`]), then releases every fired
/// window's rows, in arrival order, in one batch per window: the input of a window Top-N
/// or window deduplication over a window TVF with no aggregate (Flink's
/// `WindowRankOperator` and `WindowDeduplicateOperator` also wait for the window to fire).
/// A row whose window has fired is late: dropped and counted. State: the held rows.
pub struct WindowBufferOperator {
    /// The `window_end` column of the input.
    end_col: usize,
    /// The ranking a filter bounds (`rn <= N` above), when there is one: a window's held
    /// rows are then cut, as they grow, to those that can still rank (see
    /// [`WindowBufferOperator::with_limit`]).
    limit: Option<(RankCall, u64)>,
    /// Per window, with a limit: the rows held, and how many make the next cut (twice what
    /// the last cut kept). Counted from the held batches when a window is first met (new,
    /// or restored from a checkpoint), then kept up as rows come, so a push costs O(1).
    sizes: BTreeMap<i64, (usize, usize)>,
    schema: SchemaRef,
    /// Held rows by window end (ms since the epoch).
    windows: BTreeMap<i64, Vec<RecordBatch>>,
    watermark: i64,
    metrics: Option<TaskMetrics>,
}

const WINDOW_END: &str = "weir.window_end";
const WATERMARK: &str = "weir.watermark";

impl WindowBufferOperator {
    /// A buffer over rows of `schema` whose `window_end` (a TIMESTAMP) is column `end_col`.
    pub fn new(end_col: usize, schema: SchemaRef) -> Self {
        WindowBufferOperator {
            end_col,
            limit: None,
            sizes: BTreeMap::new(),
            schema,
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            metrics: None,
        }
    }

    fn count_late(&self, n: usize) {
        if let Some(j) = &self.metrics
            && n > 0
        {
            j.add_late(n as u64);
        }
    }

    /// Holds only the rows that can still rank within `limit` under `call` (the one
    /// ranking above, bounded by a filter `rank <= limit`), as Flink's window Top-N keeps
    /// only the top rows of each window: whenever a window's held rows double, they are
    /// ranked as the window's final ranking will rank them and those past the limit are
    /// dropped (in arrival order, which the ranking uses for ties). A row's rank only grows
    /// as rows come — for ROW_NUMBER, RANK and DENSE_RANK alike — so a dropped row could
    /// never have ranked; the fired result is the same as from every row.
    pub fn with_limit(mut self, call: RankCall, limit: u64) -> Self {
        self.limit = Some((call, limit));
        self
    }

    /// Cuts window `end`'s held rows (`added` of them just pushed) to those that can still
    /// rank, when they have grown past the window's mark.
    fn cut(&mut self, end: i64, added: usize) -> Result<()> {
        let Some((call, limit)) = &self.limit else {
            return Ok(());
        };
        let Some(batches) = self.windows.get_mut(&end) else {
            return Ok(());
        };
        let floor = (2 * *limit as usize).max(256);
        let (held, mark) = match self.sizes.entry(end) {
            std::collections::btree_map::Entry::Occupied(e) => {
                let s = e.into_mut();
                s.0 += added;
                s
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert((batches.iter().map(|b| b.num_rows()).sum(), floor))
            }
        };
        if *held <= *mark {
            return Ok(());
        }
        let Some(first) = batches.first() else {
            return Ok(());
        };
        let all = datafusion::arrow::compute::concat_batches(&first.schema(), batches.iter())?;
        let (ranks, _) = ranks(call, &all)?;
        let ranks = ranks
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| WeirError::internal("ranks are not UInt64"))?;
        let keep: datafusion::arrow::array::BooleanArray = ranks
            .iter()
            .map(|r| Some(r.is_some_and(|r| r <= *limit)))
            .collect();
        let kept = datafusion::arrow::compute::filter_record_batch(&all, &keep)?;
        *held = kept.num_rows();
        *mark = (2 * kept.num_rows()).max(floor);
        *batches = vec![kept];
        Ok(())
    }
}

impl Operator for WindowBufferOperator {
    fn name(&self) -> String {
        "window buffer".to_string()
    }

    /// The held rows and their Arrow buffers' bytes.
    fn state_size(&self) -> Option<(u64, u64)> {
        let batches = self.windows.values().flatten();
        Some(batches.fold((0, 0), |(r, b), batch| {
            (
                r + batch.num_rows() as u64,
                b + batch.get_array_memory_size() as u64,
            )
        }))
    }

    fn attach(&mut self, metrics: &TaskMetrics) {
        self.metrics = Some(metrics.clone());
    }

    fn signature(&self) -> String {
        format!("window buffer ({})", super::column_types(&self.schema))
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let ends = to_epoch_millis(batch.column(self.end_col).as_ref())?;
        let fired = super::fired_through(self.watermark);
        let mut by_end: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut late = 0;
        for (i, e) in ends.iter().enumerate() {
            match e {
                Some(e) if e > fired => by_end.entry(e).or_default().push(i as u32),
                _ => late += 1,
            }
        }
        self.count_late(late);
        if by_end.len() == 1 && late == 0 {
            if let Some((e, _)) = by_end.pop_first() {
                let added = batch.num_rows();
                self.windows.entry(e).or_default().push(batch);
                self.cut(e, added)?;
            }
            return Ok(());
        }
        for (e, idx) in by_end {
            let idx = UInt32Array::from(idx);
            let cols = batch
                .columns()
                .iter()
                .map(|c| Ok(take(c.as_ref(), &idx, None)?))
                .collect::<Result<Vec<_>>>()?;
            self.windows
                .entry(e)
                .or_default()
                .push(RecordBatch::try_new(batch.schema(), cols)?);
            self.cut(e, idx.len())?;
        }
        Ok(())
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let open = self
            .windows
            .split_off(&super::fired_through(self.watermark).saturating_add(1));
        let due = std::mem::replace(&mut self.windows, open);
        for e in due.keys() {
            self.sizes.remove(e);
        }
        for (_, batches) in due {
            let schema = batches
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(|| self.schema.clone());
            out.push(Message::Batch(datafusion::arrow::compute::concat_batches(
                &schema, &batches,
            )?));
        }
        out.push(Message::Watermark(watermark));
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        let tag = |b: &RecordBatch, end: Option<i64>| -> Result<RecordBatch> {
            let mut meta = std::collections::HashMap::from([(
                WATERMARK.to_string(),
                self.watermark.to_string(),
            )]);
            if let Some(e) = end {
                meta.insert(WINDOW_END.to_string(), e.to_string());
            }
            let schema = Arc::new(b.schema().as_ref().clone().with_metadata(meta));
            Ok(RecordBatch::try_new(schema, b.columns().to_vec())?)
        };
        let mut out = vec![tag(&RecordBatch::new_empty(self.schema.clone()), None)?];
        for (e, batches) in &self.windows {
            for b in batches {
                out.push(tag(b, Some(*e))?);
            }
        }
        Ok(Some(out))
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        let bad = |what: &str| {
            WeirError::user(format!("checkpoint: window buffer state has a bad {what}"))
        };
        self.windows.clear();
        for b in state {
            let meta = b.schema().metadata().clone();
            let wm = meta.get(WATERMARK).ok_or_else(|| bad("watermark"))?;
            self.watermark = wm.parse().map_err(|_| bad("watermark"))?;
            if let Some(e) = meta.get(WINDOW_END) {
                let e: i64 = e.parse().map_err(|_| bad("window end"))?;
                // The batch's own fields (their nullability is what the rows had), without
                // the checkpoint's metadata.
                let fields = b.schema().fields().clone();
                let plain = RecordBatch::try_new(
                    Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
                    b.columns().to_vec(),
                )
                .map_err(|_| bad("schema"))?;
                self.windows.entry(e).or_default().push(plain);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod buffer_tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn batch(ends: &[i64], ids: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "window_end",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(TimestampMillisecondArray::from(ends.to_vec())),
            ],
        )
        .expect("test batch")
    }

    fn ids(out: &[Message]) -> Vec<Vec<i64>> {
        out.iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(
                    b.column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("ids")
                        .values()
                        .to_vec(),
                ),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn windows_are_released_when_they_fire_and_survive_a_checkpoint() {
        let schema = batch(&[], &[]).schema();
        let mut op = WindowBufferOperator::new(1, schema.clone());
        let mut out = vec![];
        op.process_batch(batch(&[10, 20, 10], &[1, 2, 3]), &mut out)
            .expect("rows");
        // The window ending at 10 fires at watermark 9 (end - 1 ms), not before.
        op.process_watermark(8, &mut out).expect("watermark");
        assert!(ids(&out).is_empty());
        let state = op.snapshot().expect("snapshot").expect("state");
        let mut back = WindowBufferOperator::new(1, schema);
        back.restore(state).expect("restore");
        let mut got = vec![];
        back.process_watermark(9, &mut got).expect("watermark");
        assert_eq!(ids(&got), vec![vec![1, 3]]);
        // A row for the fired window is late and dropped.
        back.process_batch(batch(&[10, 20], &[4, 5]), &mut got)
            .expect("rows");
        back.process_watermark(i64::MAX, &mut got).expect("end");
        assert_eq!(ids(&got), vec![vec![1, 3], vec![2, 5]]);
    }

    /// With a rank limit the buffer holds a bounded number of rows, and what it releases
    /// ranks to the same top rows as every row would: ROW_NUMBER, RANK and DENSE_RANK by
    /// `id % 50` descending, with many ties, for limits 1 and 3.
    #[test]
    fn a_rank_limit_bounds_the_held_rows_and_keeps_the_same_top() {
        use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
        let schema = batch(&[], &[]).schema();
        let key: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("id", 0)),
            datafusion::logical_expr::Operator::Modulo,
            Arc::new(Literal::new(datafusion::common::ScalarValue::Int64(Some(
                50,
            )))),
        ));
        for kind in [RankKind::RowNumber, RankKind::Rank, RankKind::DenseRank] {
            for limit in [1u64, 3] {
                let call = RankCall {
                    kind,
                    partition: vec![],
                    order: vec![(
                        key.clone(),
                        SortOptions {
                            descending: true,
                            nulls_first: false,
                        },
                    )],
                    newest_first: false,
                };
                let top = |op: &mut WindowBufferOperator| -> (Vec<i64>, u64) {
                    let mut most = 0;
                    for chunk in 0..100 {
                        // A scrambled order of 0..10000, 100 rows at a time.
                        let ids: Vec<i64> = (0..100)
                            .map(|i| (chunk * 100 + i) * 7919 % 10_000)
                            .collect();
                        op.process_batch(batch(&vec![1000; ids.len()], &ids), &mut vec![])
                            .expect("rows");
                        most = most.max(op.state_size().map_or(0, |(rows, _)| rows));
                    }
                    let mut out = vec![];
                    op.process_watermark(i64::MAX, &mut out).expect("fire");
                    let Some(Message::Batch(fired)) = out.first() else {
                        panic!("no window fired");
                    };
                    let (ranks, _) = ranks(&call, fired).expect("ranks");
                    let ranks = ranks.as_any().downcast_ref::<UInt64Array>().expect("u64");
                    let ids = fired
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("ids");
                    let mut top: Vec<i64> = (0..fired.num_rows())
                        .filter(|&i| ranks.value(i) <= limit)
                        .map(|i| ids.value(i))
                        .collect();
                    top.sort();
                    (top, most)
                };
                let (all, _) = top(&mut WindowBufferOperator::new(1, schema.clone()));
                let (cut, most) = top(&mut WindowBufferOperator::new(1, schema.clone())
                    .with_limit(call.clone(), limit));
                assert_eq!(cut, all, "{kind:?} <= {limit}");
                assert!(!all.is_empty());
                // At most twice what ranks (ties included), or the first mark, and a batch.
                let bound = 2 * (all.len() as u64).max(256) + 100;
                assert!(most <= bound, "{kind:?} <= {limit}: held {most} rows");
            }
        }
    }
}
