//! Ranking over the rows of each fired window: `ROW_NUMBER()`, `RANK()` and `DENSE_RANK()`
//! `OVER (PARTITION BY window_start, window_end, ... ORDER BY ...)` — windowed Top-N, when a
//! filter on the rank follows.
//!
//! A window aggregate emits all rows of a window in one batch when the window fires, so a
//! partition that includes `window_start` and `window_end` is complete within one batch: the
//! ranks are computed per batch (sort by partition and order keys, then number the rows),
//! with no state and no update rows.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{SortColumn, SortOptions, cast, lexsort_to_indices, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;
use crate::job::Message;
use crate::operator::Operator;

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
pub struct RankCall {
    pub kind: RankKind,
    pub partition: Vec<Arc<dyn PhysicalExpr>>,
    pub order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
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
