//! `ORDER BY` over a stream, sorted first on an ascending event-time attribute (Flink's
//! temporal sort, its `RowTimeSortOperator`): rows wait until the watermark reaches their
//! time, then go out in the order of the `ORDER BY` — time first, then the other keys. A
//! row at or below the watermark when it arrives is late: dropped and counted, as Flink
//! drops it. The output is append-only and keeps the time attribute.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, UInt32Array};
use datafusion::arrow::compute::{
    SortColumn, SortOptions, concat_batches, filter_record_batch, lexsort_to_indices,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::job::{Message, TaskMetrics};
use crate::operator::Operator;
use crate::source::watermark::to_epoch_millis;

/// The temporal sort: rows of one input, held until the watermark passes them (see the
/// module's documentation).
pub struct TemporalSortOperator {
    schema: SchemaRef,
    /// The event-time column (the first sort key, ascending).
    time: usize,
    /// Every sort key with its order, the time first.
    order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    waiting: Vec<RecordBatch>,
    watermark: i64,
    metrics: Option<TaskMetrics>,
}

impl TemporalSortOperator {
    /// Sorts rows of `schema` by `order` (its first key the time column `time`, ascending)
    /// as the watermark passes them.
    pub fn new(
        schema: SchemaRef,
        time: usize,
        order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    ) -> Self {
        TemporalSortOperator {
            schema,
            time,
            order,
            waiting: vec![],
            watermark: i64::MIN,
            metrics: None,
        }
    }

    /// The waiting rows at or below `w`, sorted, out; the others wait on.
    fn fire(&mut self, w: i64, out: &mut Vec<Message>) -> Result<()> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        let all = concat_batches(&self.schema, &self.waiting)?;
        self.waiting.clear();
        let times = to_epoch_millis(all.column(self.time).as_ref())?;
        let due: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some_and(|t| t <= w)))
            .collect();
        if due.true_count() < all.num_rows() {
            let rest = datafusion::arrow::compute::not(&due)?;
            self.waiting.push(filter_record_batch(&all, &rest)?);
        }
        if due.true_count() == 0 {
            return Ok(());
        }
        let ready = filter_record_batch(&all, &due)?;
        let n = ready.num_rows();
        let columns = self
            .order
            .iter()
            .map(|(e, o)| {
                Ok(SortColumn {
                    values: e.evaluate(&ready)?.into_array(n)?,
                    options: Some(*o),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let idx: UInt32Array = lexsort_to_indices(&columns, None)?;
        out.push(Message::Batch(
            datafusion::arrow::compute::take_record_batch(&ready, &idx)?,
        ));
        Ok(())
    }
}

impl Operator for TemporalSortOperator {
    fn name(&self) -> String {
        "sort (event time)".to_string()
    }

    fn attach(&mut self, metrics: &TaskMetrics) {
        self.metrics = Some(metrics.clone());
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // A row without a time, or at or below the watermark, is late.
        let w = self.watermark;
        let times = to_epoch_millis(batch.column(self.time).as_ref())?;
        let on_time: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some_and(|t| t > w)))
            .collect();
        let kept = if on_time.true_count() == batch.num_rows() {
            batch
        } else {
            if let Some(m) = &self.metrics {
                m.add_late((batch.num_rows() - on_time.true_count()) as u64);
            }
            filter_record_batch(&batch, &on_time)?
        };
        if kept.num_rows() > 0 {
            self.waiting.push(kept);
        }
        Ok(())
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        self.fire(watermark, out)?;
        out.push(Message::Watermark(watermark));
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Message>) -> Result<()> {
        self.fire(i64::MAX, out)
    }

    fn state_size(&self) -> Option<(u64, u64)> {
        Some((
            self.waiting.iter().map(|b| b.num_rows() as u64).sum(),
            self.waiting
                .iter()
                .map(|b| b.get_array_memory_size() as u64)
                .sum(),
        ))
    }

    /// The rows still waiting, as they came, and a zero-row batch whose metadata holds the
    /// watermark (`watermark`), which decides what is late after a restore.
    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        let mut out = self.waiting.clone();
        let meta = datafusion::arrow::datatypes::Schema::empty().with_metadata(
            [("watermark".to_string(), self.watermark.to_string())]
                .into_iter()
                .collect(),
        );
        out.push(RecordBatch::try_new_with_options(
            Arc::new(meta),
            vec![],
            &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(0)),
        )?);
        Ok(Some(out))
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        for b in state {
            if let Some(w) = b.schema().metadata().get("watermark") {
                let w: i64 = w.parse().map_err(|_| {
                    WeirError::user("the checkpoint's state of a sort is malformed")
                })?;
                self.watermark = self.watermark.max(w);
                continue;
            }
            let b = RecordBatch::try_new(self.schema.clone(), b.columns().to_vec())
                .map_err(|_| WeirError::user("the checkpoint's state of a sort is malformed"))?;
            self.waiting.push(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::Column;

    #[test]
    fn rows_go_out_in_time_then_key_order_as_the_watermark_passes() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("k", DataType::Int64, false),
        ]));
        let batch = |ts: &[i64], k: &[i64]| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(TimestampMillisecondArray::from(ts.to_vec())),
                    Arc::new(Int64Array::from(k.to_vec())),
                ],
            )
            .expect("batch")
        };
        let asc = SortOptions {
            descending: false,
            nulls_first: true,
        };
        let desc = SortOptions {
            descending: true,
            nulls_first: false,
        };
        let mut op = TemporalSortOperator::new(
            schema.clone(),
            0,
            vec![
                (Arc::new(Column::new("ts", 0)), asc),
                (Arc::new(Column::new("k", 1)), desc),
            ],
        );
        let mut out = vec![];
        op.process_batch(batch(&[30, 10, 20, 10], &[1, 1, 2, 5]), &mut out)
            .expect("rows");
        op.process_watermark(20, &mut out).expect("watermark");
        // A row at 20 (at the watermark) is late now.
        op.process_batch(batch(&[20, 40], &[9, 3]), &mut out)
            .expect("rows");
        op.finish(&mut out).expect("finish");
        let rows: Vec<(i64, i64)> = out
            .iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(b.clone()),
                _ => None,
            })
            .flat_map(|b| {
                let ts = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .expect("ts")
                    .clone();
                let k = b
                    .column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("k")
                    .clone();
                (0..b.num_rows()).map(move |i| (ts.value(i), k.value(i)))
            })
            .collect();
        assert_eq!(rows, vec![(10, 5), (10, 1), (20, 2), (30, 1), (40, 3)]);
    }
}
