//! Projection: computes the output columns of each batch with DataFusion physical
//! expressions compiled once when the query is planned.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;

use super::Operator;
use crate::error::Result;
use crate::job::Message;

pub struct ProjectOperator {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl ProjectOperator {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        ProjectOperator { exprs, schema }
    }
}

/// Evaluates `exprs` over `batch` into a batch of `schema`.
pub fn project_batch(
    batch: &RecordBatch,
    exprs: &[Arc<dyn PhysicalExpr>],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let columns = exprs
        .iter()
        .map(|e| {
            e.evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &opts,
    )?)
}

impl Operator for ProjectOperator {
    fn distribution(&self) -> super::Distribution {
        super::Distribution::Forward
    }

    fn name(&self) -> String {
        "project".into()
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let projected = project_batch(&batch, &self.exprs, &self.schema)?;
        // The row kinds of a changelog go along.
        let projected = match crate::changelog::kinds(&batch) {
            Some(k) => crate::changelog::attach(projected, k.clone())?,
            None => projected,
        };
        out.push(Message::Batch(projected));
        Ok(())
    }
}
