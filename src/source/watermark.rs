//! Computed columns and watermark generation, shared by every source.
//!
//! The watermark of a table is `max(expr(row))` over the rows seen so far, where `expr` is
//! the `WATERMARK FOR col AS expr` of its DDL (typically `col - INTERVAL '5' SECOND`). It is
//! emitted after each batch that raises it and never goes backwards.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::compute::{cast, max};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::operator::project::project_batch;

pub struct SourceStage {
    /// Expressions producing the full schema from the physical columns; None when the
    /// table has no computed columns.
    computed: Option<(Vec<Arc<dyn PhysicalExpr>>, SchemaRef)>,
    watermark: Option<Arc<dyn PhysicalExpr>>,
    current: i64,
}

impl SourceStage {
    pub fn new(
        computed: Option<(Vec<Arc<dyn PhysicalExpr>>, SchemaRef)>,
        watermark: Option<Arc<dyn PhysicalExpr>>,
    ) -> Self {
        SourceStage {
            computed,
            watermark,
            current: i64::MIN,
        }
    }

    /// Completes a batch of physical columns; returns it with the new watermark, if raised.
    pub fn apply(&mut self, batch: RecordBatch) -> Result<(RecordBatch, Option<i64>)> {
        let full = match &self.computed {
            Some((exprs, schema)) => project_batch(&batch, exprs, schema)?,
            None => batch,
        };
        let Some(expr) = &self.watermark else {
            return Ok((full, None));
        };
        let values = expr.evaluate(&full)?.into_array(full.num_rows())?;
        let ms = to_epoch_millis(values.as_ref())?;
        match max(&ms) {
            Some(m) if m > self.current => {
                self.current = m;
                Ok((full, Some(m)))
            }
            _ => Ok((full, None)),
        }
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
