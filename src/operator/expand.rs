//! GROUPING SETS, ROLLUP and CUBE over a stream, as Flink runs them (its `Expand` node): each
//! input row is repeated once per grouping set, with the group keys the set leaves out set
//! to NULL and the set's grouping id beside them; the aggregate after it groups by the keys
//! and the id, so each set's groups stay apart (`GROUP BY GROUPING SETS ((a), ())` keeps the
//! group `a = NULL` of the first set apart from the total of the second).
//!
//! Output columns: the input's, then one per group key (its value, or NULL), then the
//! grouping id. The id is DataFusion's `__grouping_id`: one bit per key, the first key the
//! highest, set when the set leaves the key out; above those bits, the set's ordinal among
//! sets of the same keys (0 for the first), which `GROUP_ID()` reads.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt64Array, new_null_array};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::job::Message;
use crate::operator::Operator;

/// One grouping set: which keys it leaves out (NULL), and its grouping id.
#[derive(Debug, Clone)]
pub struct GroupingSetSpec {
    pub nulls: Vec<bool>,
    pub id: u64,
}

pub struct ExpandOperator {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    sets: Vec<GroupingSetSpec>,
    /// The input's columns, the keys, the grouping id.
    schema: SchemaRef,
}

impl ExpandOperator {
    /// `keys`: the group key expressions over the input; `sets`: one per grouping set, its
    /// `nulls` as long as `keys`; `schema`: the input's fields, one per key, the id.
    pub fn new(
        keys: Vec<Arc<dyn PhysicalExpr>>,
        sets: Vec<GroupingSetSpec>,
        schema: SchemaRef,
    ) -> Result<Self> {
        if sets.iter().any(|s| s.nulls.len() != keys.len()) || sets.is_empty() {
            return Err(WeirError::internal(
                "every grouping set names each key once",
            ));
        }
        Ok(ExpandOperator { keys, sets, schema })
    }
}

impl Operator for ExpandOperator {
    fn distribution(&self) -> super::Distribution {
        super::Distribution::Forward
    }

    fn name(&self) -> String {
        format!("expand ({} grouping sets)", self.sets.len())
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let inputs = batch.num_columns();
        let values = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let v = k.evaluate(&batch)?.into_array(n)?;
                let want = self.schema.field(inputs + i).data_type();
                Ok(if v.data_type() == want {
                    v
                } else {
                    cast(&v, want)?
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let id_type = self.schema.field(inputs + self.keys.len()).data_type();
        let mut parts = Vec::with_capacity(self.sets.len());
        for set in &self.sets {
            let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
            for (i, v) in values.iter().enumerate() {
                cols.push(if set.nulls[i] {
                    new_null_array(v.data_type(), n)
                } else {
                    v.clone()
                });
            }
            let id: ArrayRef = Arc::new(UInt64Array::from(vec![set.id; n]));
            // Checked at planning to fit; never a NULL in the non-null id.
            cols.push(datafusion::arrow::compute::cast_with_options(
                &id,
                id_type,
                &datafusion::arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )?);
            parts.push(RecordBatch::try_new(self.schema.clone(), cols)?);
        }
        out.push(Message::Batch(concat_batches(&self.schema, &parts)?));
        Ok(())
    }
}
