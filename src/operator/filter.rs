//! Filter: keeps the rows for which a compiled predicate is true (NULL counts as false).

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::{filter_record_batch, prep_null_mask_filter};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use super::Operator;
use crate::error::{Result, WeirError};
use crate::job::Message;

pub struct FilterOperator {
    predicate: Arc<dyn PhysicalExpr>,
}

impl FilterOperator {
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        FilterOperator { predicate }
    }
}

impl Operator for FilterOperator {
    fn distribution(&self) -> super::Distribution {
        super::Distribution::Forward
    }

    fn name(&self) -> String {
        "filter".into()
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let mask = self
            .predicate
            .evaluate(&batch)?
            .into_array(batch.num_rows())?;
        let mask = mask
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| WeirError::internal("filter predicate is not boolean"))?;
        let mask = if mask.null_count() > 0 {
            prep_null_mask_filter(mask)
        } else {
            mask.clone()
        };
        if mask.true_count() == batch.num_rows() {
            out.push(Message::Batch(batch));
        } else if mask.true_count() > 0 {
            out.push(Message::Batch(filter_record_batch(&batch, &mask)?));
        }
        Ok(())
    }
}
