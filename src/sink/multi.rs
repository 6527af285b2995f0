//! A statement set's sinks as one: the INSERTs of `EXECUTE STATEMENT SET` run as one job,
//! as Flink runs them, so that the tables they read are read once (see source reuse in
//! [`crate::job::runner`]) and one checkpoint covers every sink.
//!
//! Each INSERT's plan ends in a [`Tag`] that marks its batches with the INSERT's index
//! (schema metadata [`TAG`]); the plans meet in a union, and [`MultiSink`] hands each batch
//! to its INSERT's sink, the tag taken off. Ticks, checkpoints and the end go to every sink.
//!
//! Each sink gets its own INSERT's watermark, as Flink gives each sink of a statement set
//! the watermark of its own pipeline: the set's union
//! ([`crate::operator::union::UnionOperator::statement_set`]) knows each input's watermark
//! (the least over its channels, as the run loop merges them) and passes it on, whenever it
//! rises, as a *watermark mark* — a batch of no rows and no columns whose metadata names
//! the INSERT and the watermark ([`MARK`]) — which the [`MultiSink`] gives to that INSERT's
//! sink alone. So one INSERT's late or idle input does not hold back the partition commits
//! of another. The union's own watermark (the least over every INSERT) reaches each sink
//! too, where it is never ahead of the sink's own.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;

use super::{Sink, SinkContext};
use crate::error::{Result, WeirError};
use crate::job::Message;

/// The schema metadata key that says which INSERT of a statement set a batch (or a sink's
/// checkpoint state) belongs to: its index, from 0.
pub const TAG: &str = "weir.statement";

/// The schema metadata key of a watermark mark (see the module): the watermark, in epoch
/// milliseconds.
pub const MARK: &str = "weir.statement.watermark";

/// A watermark mark: INSERT `index`'s watermark is `watermark` (see the module).
pub fn mark(index: usize, watermark: i64) -> Result<RecordBatch> {
    let meta = HashMap::from([
        (TAG.to_string(), index.to_string()),
        (MARK.to_string(), watermark.to_string()),
    ]);
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::empty().with_metadata(meta)),
        vec![],
        &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(0)),
    )?)
}

/// The watermark of a watermark mark; None for a batch of rows.
fn mark_of(batch: &RecordBatch) -> Option<i64> {
    batch.schema_ref().metadata().get(MARK)?.parse().ok()
}

fn tagged(batch: &RecordBatch, index: usize) -> Result<RecordBatch> {
    let mut meta: HashMap<String, String> = batch.schema().metadata().clone();
    meta.insert(TAG.to_string(), index.to_string());
    let schema = Schema::new(batch.schema().fields().clone()).with_metadata(meta);
    Ok(batch.clone().with_schema(Arc::new(schema))?)
}

/// The index a batch is tagged with, and the batch without the tag.
fn untagged(batch: &RecordBatch) -> Result<(Option<usize>, RecordBatch)> {
    let mut meta = batch.schema().metadata().clone();
    let Some(index) = meta.remove(TAG) else {
        return Ok((None, batch.clone()));
    };
    let schema = Schema::new(batch.schema().fields().clone()).with_metadata(meta);
    Ok((
        index.parse().ok(),
        RecordBatch::try_new_with_options(
            Arc::new(schema),
            batch.columns().to_vec(),
            &datafusion::arrow::record_batch::RecordBatchOptions::new()
                .with_row_count(Some(batch.num_rows())),
        )?,
    ))
}

/// Marks every batch of one INSERT of a statement set with its index (see the module).
pub struct Tag {
    index: usize,
    /// The INSERT's target table, named in `EXPLAIN`.
    table: String,
}

impl Tag {
    /// Tags the rows of the set's statement `index` (from 0), an INSERT into `table`.
    pub fn new(index: usize, table: &str) -> Self {
        Tag {
            index,
            table: table.to_string(),
        }
    }
}

impl crate::operator::Operator for Tag {
    fn name(&self) -> String {
        format!("statement {}: INSERT INTO {}", self.index + 1, self.table)
    }

    /// The statement's place alone, as before the table was named: a job's tasks are
    /// identified by their operators' signatures, so its checkpoints keep fitting.
    fn signature(&self) -> String {
        format!("statement {}", self.index + 1)
    }

    fn distribution(&self) -> crate::operator::Distribution {
        crate::operator::Distribution::Forward
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        out.push(Message::Batch(tagged(&batch, self.index)?));
        Ok(())
    }
}

/// The sinks of a statement set's INSERTs, in order, as one sink (see the module).
pub struct MultiSink {
    sinks: Vec<Box<dyn Sink>>,
    /// Per INSERT, the watermark its sink was last given.
    given: Vec<i64>,
}

impl MultiSink {
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        let n = sinks.len();
        MultiSink {
            sinks,
            given: vec![i64::MIN; n],
        }
    }

    /// Gives INSERT `index`'s sink watermark `w` when it is ahead of the last it got.
    fn give(&mut self, index: usize, w: i64) -> Result<()> {
        let (Some(sink), Some(given)) = (self.sinks.get_mut(index), self.given.get_mut(index))
        else {
            return Err(WeirError::internal("a watermark for no INSERT of the set"));
        };
        if w > *given {
            *given = w;
            sink.on_watermark(w)?;
        }
        Ok(())
    }

    /// Calls `f` on every sink, all of them even after one fails; the first error.
    fn each(&mut self, mut f: impl FnMut(&mut Box<dyn Sink>) -> Result<()>) -> Result<()> {
        let mut first = None;
        for s in &mut self.sinks {
            if let Err(e) = f(s) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Sink for MultiSink {
    fn open(&mut self, ctx: &SinkContext) -> Result<()> {
        // Each sink gets the part of the restored state tagged with its index.
        let mut restored: Vec<Option<Vec<RecordBatch>>> = vec![None; self.sinks.len()];
        for b in ctx.restored.iter().flatten() {
            let (index, b) = untagged(b)?;
            let slot = index.and_then(|i| restored.get_mut(i)).ok_or_else(|| {
                WeirError::user(
                    "the checkpoint's sink state is not a statement set's: the job changed since it was taken",
                )
            })?;
            slot.get_or_insert_with(Vec::new).push(b);
        }
        // Each sink names its files by a job name of its own (`<job>-<index>`), so two
        // INSERTs into one table never write the same name, nor clean up each other's.
        for (i, (sink, restored)) in self.sinks.iter_mut().zip(restored).enumerate() {
            sink.open(&SinkContext {
                job: format!("{}-{i}", ctx.job),
                run: ctx.run.clone(),
                checkpointer: ctx.checkpointer.clone(),
                restored,
            })?;
        }
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if let Some(w) = mark_of(batch) {
            let (index, _) = untagged(batch)?;
            let index =
                index.ok_or_else(|| WeirError::internal("a watermark mark for no INSERT"))?;
            return self.give(index, w);
        }
        let (index, batch) = untagged(batch)?;
        let sink = index
            .and_then(|i| self.sinks.get_mut(i))
            .ok_or_else(|| WeirError::internal("a statement set's batch without its INSERT"))?;
        sink.write(&batch)
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<Vec<RecordBatch>>> {
        let mut state: Option<Vec<RecordBatch>> = None;
        for (i, sink) in self.sinks.iter_mut().enumerate() {
            if let Some(batches) = sink.pre_commit(checkpoint)? {
                let mine = batches
                    .iter()
                    .map(|b| tagged(b, i))
                    .collect::<Result<Vec<_>>>()?;
                state.get_or_insert_with(Vec::new).extend(mine);
            }
        }
        Ok(state)
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        self.each(|s| s.commit(checkpoint))
    }

    fn discard(&mut self) -> Result<()> {
        self.each(|s| s.discard())
    }

    /// The union's watermark, the least over every INSERT: each sink's own (from the marks)
    /// is never behind it, so it reaches a sink only when that sink's marks have not.
    fn on_watermark(&mut self, watermark: i64) -> Result<()> {
        let mut first = None;
        for i in 0..self.sinks.len() {
            if let Err(e) = self.give(i, watermark) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn finish(&mut self) -> Result<()> {
        self.each(|s| s.finish())
    }

    fn accepts_changes(&self) -> bool {
        self.sinks.iter().all(|s| s.accepts_changes())
    }

    fn tick(&self) -> Option<std::time::Duration> {
        self.sinks.iter().filter_map(|s| s.tick()).min()
    }

    fn on_tick(&mut self) -> Result<()> {
        self.each(|s| s.on_tick())
    }
}
