//! Unnest: one output row per element of a list column (`CROSS JOIN UNNEST(t.arr) AS
//! u(x)`, planned by [`crate::sql::lateral`]), the row's other columns repeated. Stateless;
//! each batch is expanded by DataFusion's own `UnnestExec`, so NULL and empty lists, several
//! lists at once (zipped, the shorter padded with NULL) and nested depths follow its rules.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::UnnestOptions;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::unnest::{ListUnnest, UnnestExec};

use super::Operator;
use crate::error::Result;
use crate::job::Message;

/// Expands the list columns of each batch (see the module's documentation); stateless.
pub struct UnnestOperator {
    input_schema: SchemaRef,
    lists: Vec<ListUnnest>,
    structs: Vec<usize>,
    schema: SchemaRef,
    options: UnnestOptions,
    context: Arc<TaskContext>,
}

impl UnnestOperator {
    /// Unnests, in batches of `input_schema`, the list columns `lists` (input index and
    /// depth) and the struct columns `structs` (input indices) into batches of `schema`,
    /// as DataFusion's logical `Unnest` node with `options` describes.
    pub fn new(
        input_schema: SchemaRef,
        lists: Vec<ListUnnest>,
        structs: Vec<usize>,
        schema: SchemaRef,
        options: UnnestOptions,
    ) -> Self {
        UnnestOperator {
            input_schema,
            lists,
            structs,
            schema,
            options,
            context: Arc::new(TaskContext::default()),
        }
    }
}

impl Operator for UnnestOperator {
    fn distribution(&self) -> super::Distribution {
        super::Distribution::Forward
    }

    fn name(&self) -> String {
        "unnest".into()
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let input =
            MemorySourceConfig::try_new_exec(&[vec![batch]], self.input_schema.clone(), None)?;
        let exec = UnnestExec::new(
            input,
            self.lists.clone(),
            self.structs.clone(),
            self.schema.clone(),
            self.options.clone(),
        )?;
        let stream = exec.execute(0, self.context.clone())?;
        // A one-batch in-memory input: the stream never waits on I/O, so it is polled to
        // its end at once. Unconstrained, as DataFusion's streams take from tokio's
        // cooperative budget, which only a yield to tokio refills; were it ever pending,
        // that is an error rather than a blocked worker.
        use futures::FutureExt;
        let batches =
            tokio::task::unconstrained(datafusion::physical_plan::common::collect(stream))
                .now_or_never()
                .ok_or_else(|| {
                    crate::error::WeirError::internal("an unnest of one batch had to wait")
                })??;
        out.extend(
            batches
                .into_iter()
                .filter(|b| b.num_rows() > 0)
                .map(Message::Batch),
        );
        Ok(())
    }
}
