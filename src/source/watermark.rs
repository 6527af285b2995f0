//! Computed columns and watermark generation, shared by every source.
//!
//! The watermark of a table is `max(expr(row))` over the rows seen so far, where `expr` is
//! the `WATERMARK FOR col AS expr` of its DDL (typically `col - INTERVAL '5' SECOND`). It is
//! emitted after each batch that raises it — and before any row at or behind it — and
//! never goes backwards.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::job::Message;
use crate::operator::project::project_batch;

/// How a row's watermark value is computed.
pub enum WatermarkExpr {
    /// `col - INTERVAL 'n' ...` (or `col`): the time column minus a fixed number of
    /// milliseconds, computed on the integers.
    Delay(i64),
    /// Any other expression.
    Expr(Arc<dyn PhysicalExpr>),
}

pub struct SourceStage {
    /// Expressions producing the full schema from the physical columns; None when the
    /// table has no computed columns.
    computed: Option<(Vec<Arc<dyn PhysicalExpr>>, SchemaRef)>,
    /// The watermark expression and the index of its time column in the full schema.
    watermark: Option<(WatermarkExpr, usize)>,
    /// The highest watermark value seen.
    current: i64,
    /// The last watermark sent downstream.
    emitted: i64,
    /// True while watermarks are held back (files still to read).
    held: bool,
    /// Per partition (Kafka): each one's own watermark, and whether it has ended. The
    /// source's watermark is then the minimum over the partitions that have not ended.
    partitions: Vec<(i64, bool)>,
    /// The partition the next batch comes from.
    partition: usize,
}

impl SourceStage {
    pub fn new(
        computed: Option<(Vec<Arc<dyn PhysicalExpr>>, SchemaRef)>,
        watermark: Option<(WatermarkExpr, usize)>,
    ) -> Self {
        SourceStage {
            computed,
            watermark,
            current: i64::MIN,
            emitted: i64::MIN,
            held: false,
            partitions: vec![],
            partition: 0,
        }
    }

    /// The last watermark sent downstream.
    pub fn emitted(&self) -> i64 {
        self.emitted
    }

    /// Declares `n` partitions: from now on batches say which one they come from.
    pub fn set_partitions(&mut self, n: usize) {
        // Partitions restored from a checkpoint keep their watermarks.
        if self.partitions.len() != n {
            self.partitions = vec![(i64::MIN, false); n];
        }
    }

    /// Adds a partition (assigned after the start, as in a group rebalance) and returns its
    /// index. It holds the watermark back from its first row on, not before: a partition
    /// with nothing read yet starts at the source's current watermark.
    pub fn add_partition(&mut self) -> usize {
        self.partitions.push((self.current, false));
        self.partitions.len() - 1
    }

    /// The partition the following batches come from; a partition that was idle or gone
    /// holds the watermark again.
    pub fn set_partition(&mut self, p: usize) {
        self.partition = p;
        if let Some(e) = self.partitions.get_mut(p)
            && e.1
        {
            e.1 = false;
            e.0 = e.0.max(self.emitted);
        }
    }

    /// A partition that has ended (or is idle, or was taken away) no longer holds the
    /// watermark back.
    pub fn partition_ended(&mut self, p: usize) -> Option<i64> {
        if let Some(e) = self.partitions.get_mut(p) {
            e.1 = true;
        }
        self.current = self.current.max(self.partition_min());
        if self.current == i64::MAX && self.partitions.iter().all(|(_, ended)| *ended) {
            // Every partition is idle: nothing to advance to yet.
            self.current = self.emitted;
            return None;
        }
        (self.current > self.emitted).then(|| {
            self.emitted = self.current;
            self.current
        })
    }

    fn partition_min(&self) -> i64 {
        self.partitions
            .iter()
            .filter(|(_, ended)| !ended)
            .map(|(w, _)| *w)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Holds watermarks back, or releases them; on release the watermark restarts from the
    /// rows that follow (it never goes below what was already sent).
    /// True when the table declares a watermark (`WATERMARK FOR …`).
    pub fn has_watermark(&self) -> bool {
        self.watermark.is_some()
    }

    pub fn hold(&mut self, hold: bool) {
        if self.held && !hold {
            self.current = self.emitted;
        }
        self.held = hold;
    }

    /// The generator's state for a checkpoint: one row per partition (its watermark and
    /// whether it has ended; none for a source without partitions), the source's current
    /// and emitted watermarks, whether it is held and whether the source's input was
    /// exhausted (`finished`) in the schema's metadata.
    pub fn snapshot(&self, finished: bool) -> Result<RecordBatch> {
        use datafusion::arrow::array::BooleanArray;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let meta = [
            ("current", self.current.to_string()),
            ("emitted", self.emitted.to_string()),
            ("held", self.held.to_string()),
            ("finished", finished.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let schema = Schema::new(vec![
            Field::new("watermark", DataType::Int64, false),
            Field::new("ended", DataType::Boolean, false),
        ])
        .with_metadata(meta);
        Ok(RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    self.partitions.iter().map(|p| p.0),
                )),
                Arc::new(BooleanArray::from_iter(
                    self.partitions.iter().map(|p| Some(p.1)),
                )),
            ],
        )?)
    }

    /// Puts back what [`SourceStage::snapshot`] saved; returns its `finished` flag.
    pub fn restore(&mut self, b: &RecordBatch) -> Result<bool> {
        use datafusion::arrow::array::AsArray;
        let bad = || WeirError::user("a source's watermark state in the checkpoint is malformed");
        let meta = b.schema_ref().metadata().clone();
        let num =
            |k: &str| -> Result<i64> { meta.get(k).and_then(|v| v.parse().ok()).ok_or_else(bad) };
        let flag = |k: &str| meta.get(k).is_some_and(|v| v == "true");
        self.current = num("current")?;
        self.emitted = num("emitted")?;
        self.held = flag("held");
        if b.num_columns() != 2 {
            return Err(bad());
        }
        let w = b
            .column(0)
            .as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>()
            .ok_or_else(bad)?;
        let e = b.column(1).as_boolean_opt().ok_or_else(bad)?;
        self.partitions = (0..b.num_rows())
            .map(|i| (w.value(i), e.value(i)))
            .collect();
        Ok(flag("finished"))
    }

    /// Completes a batch of physical columns and interleaves it with watermarks.
    ///
    /// The batch is cut before every row whose time is at or behind the watermark of the
    /// rows before it (a watermark `W` promises no rows at or below `W`; such a row is late
    /// for a window ending at `W + 1` ms), and that watermark goes out first: operators then
    /// judge each such row against exactly the watermark its predecessors imply, whatever
    /// the batch size. Rows in order (or within the watermark's bound) cause no cut.
    pub fn apply(&mut self, batch: RecordBatch) -> Result<Vec<Message>> {
        let full = match &self.computed {
            // An upsert source's row kinds go along past the computed columns.
            Some((exprs, schema)) => match crate::changelog::split(&batch) {
                (data, Some(kinds)) => {
                    crate::changelog::attach(project_batch(&data, exprs, schema)?, kinds)?
                }
                _ => project_batch(&batch, exprs, schema)?,
            },
            None => batch,
        };
        let Some((expr, time_col)) = &self.watermark else {
            return Ok(vec![Message::Batch(full)]);
        };
        if self.held {
            return Ok(vec![Message::Batch(full)]);
        }
        let ts = to_epoch_millis(full.column(*time_col).as_ref())?;
        let wm = match expr {
            WatermarkExpr::Delay(d) => datafusion::arrow::compute::kernels::numeric::sub_wrapping(
                &ts,
                &Int64Array::new_scalar(*d),
            )?,
            WatermarkExpr::Expr(e) => {
                let values = e.evaluate(&full)?.into_array(full.num_rows())?;
                Arc::new(to_epoch_millis(values.as_ref())?)
            }
        };
        let Some(wm) = wm.as_any().downcast_ref::<Int64Array>() else {
            return Err(WeirError::internal("watermark values are not Int64"));
        };
        let mut out = vec![];
        let mut start = 0;
        for i in 0..full.num_rows() {
            if self.current > self.emitted && ts.is_valid(i) && ts.value(i) <= self.current {
                if i > start {
                    out.push(Message::Batch(full.slice(start, i - start)));
                }
                out.push(Message::Watermark(self.current));
                self.emitted = self.current;
                start = i;
            }
            if wm.is_valid(i) {
                if self.partitions.is_empty() {
                    if wm.value(i) > self.current {
                        self.current = wm.value(i);
                    }
                } else if let Some(e) = self.partitions.get_mut(self.partition)
                    && wm.value(i) > e.0
                {
                    e.0 = wm.value(i);
                    self.current = self.current.max(self.partition_min());
                }
            }
        }
        if start == 0 {
            out.push(Message::Batch(full));
        } else if start < full.num_rows() {
            out.push(Message::Batch(full.slice(start, full.num_rows() - start)));
        }
        if self.current > self.emitted {
            out.push(Message::Watermark(self.current));
            self.emitted = self.current;
        }
        Ok(out)
    }
}

/// Converts a timestamp array of any unit to epoch milliseconds.
pub fn to_epoch_millis(values: &dyn Array) -> Result<Int64Array> {
    let ms = match values.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, None) => cast(values, &DataType::Int64)?,
        DataType::Timestamp(_, tz) => cast(
            &cast(
                values,
                &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
            )?,
            &DataType::Int64,
        )?,
        other => {
            return Err(WeirError::internal(format!(
                "event time is {other}, not a timestamp"
            )));
        }
    };
    ms.as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| WeirError::internal("cast to Int64 did not give Int64"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampMillisecondArray;
    use datafusion::arrow::datatypes::{Field, Schema};

    fn batch(ts: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        )]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(TimestampMillisecondArray::from(ts.to_vec()))],
        )
        .expect("batch")
    }

    fn watermarks(messages: &[Message]) -> Vec<i64> {
        messages
            .iter()
            .filter_map(|m| match m {
                Message::Watermark(w) => Some(*w),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn partitions_hold_the_watermark_until_idle_and_again_when_they_wake() {
        let mut s = SourceStage::new(None, Some((WatermarkExpr::Delay(0), 0)));
        s.set_partitions(2);
        s.set_partition(0);
        // Partition 1 has sent nothing: partition 0 alone cannot advance the watermark.
        assert!(watermarks(&s.apply(batch(&[100, 200])).expect("apply")).is_empty());
        // Partition 1 idle: the watermark is partition 0's.
        assert_eq!(s.partition_ended(1), Some(200));
        s.set_partition(0);
        assert_eq!(
            watermarks(&s.apply(batch(&[300])).expect("apply")),
            vec![300]
        );
        // Partition 1 wakes up behind: it holds the watermark again, from where it was.
        s.set_partition(1);
        assert!(watermarks(&s.apply(batch(&[250])).expect("apply")).is_empty());
        s.set_partition(0);
        assert!(watermarks(&s.apply(batch(&[400])).expect("apply")).is_empty());
        s.set_partition(1);
        assert_eq!(
            watermarks(&s.apply(batch(&[350])).expect("apply")),
            vec![350]
        );
        // Every partition idle: nothing to advance to.
        assert_eq!(s.partition_ended(0), None);
        assert_eq!(s.partition_ended(1), None);
        // A partition added by a rebalance starts at the current watermark.
        let p = s.add_partition();
        s.set_partition(p);
        assert_eq!(
            watermarks(&s.apply(batch(&[500])).expect("apply")),
            vec![500]
        );
    }
}
