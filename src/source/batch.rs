//! A `filesystem` table of CSV or JSON files read in batch (`weir query`, a bounded
//! `SELECT`): the same [`FileSource`](super::filesystem::FileSource) and decoder a standing
//! query reads it with, so every format option (`csv.null-literal`, the quote, escape and
//! comment options, JSON's leniency), metadata column and partition folder reads alike in
//! both — DataFusion's own CSV and JSON readers take few of Flink's options.
//!
//! The files are cut into `n` byte ranges, one DataFusion partition each
//! ([`FileSource::range`](super::filesystem::FileSource::range)); each partition reads its
//! range on a thread of its own and hands the batches to the plan through a bounded
//! channel.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use super::Source;
use super::SourceContext;
use super::watermark::SourceStage;
use crate::error::{Result, WeirError};
use crate::job::{JobMetrics, Message};
use crate::sql::catalog::TableDef;
use crate::sql::options::Options;

/// Rows per decoded batch.
const BATCH_ROWS: usize = 8192;

/// Part `part` of `parts` of a CSV or JSON `filesystem` table, as a DataFusion partition
/// whose batches have the table's full schema ([`TableDef::schema`]; the table has no
/// computed columns).
#[derive(Debug)]
pub struct FilePart {
    def: Arc<TableDef>,
    options: Arc<Options>,
    part: usize,
    parts: usize,
}

impl FilePart {
    /// Every part of `def` read by `parts` partitions (at least one), with `options` (the
    /// table's, with the session's `SET`s applied: [`crate::connector::effective_options`]).
    pub fn all(
        def: Arc<TableDef>,
        options: Options,
        parts: usize,
    ) -> Vec<Arc<dyn PartitionStream>> {
        let parts = parts.max(1);
        let options = Arc::new(options);
        (0..parts)
            .map(|part| {
                Arc::new(FilePart {
                    def: def.clone(),
                    options: options.clone(),
                    part,
                    parts,
                }) as Arc<dyn PartitionStream>
            })
            .collect()
    }

    /// This part's source: the table's file source, reading its part's byte range. A
    /// table with a `'dead-letter.sink'` fails on a malformed record in batch (no job
    /// writes the dead-letter table there); `*.ignore-parse-errors` skips it.
    fn source(&self) -> Result<Box<dyn Source>> {
        let mut options = self.options.as_ref().clone();
        options.remove("dead-letter.sink");
        let source = crate::connector::file_source(&self.def, &options, BATCH_ROWS)?;
        Ok(Box::new(source.range(self.part as u64, self.parts as u64)))
    }
}

impl PartitionStream for FilePart {
    fn schema(&self) -> &SchemaRef {
        &self.def.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.def.schema.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Message>(2);
        let source = self.source();
        // Dropped with the stream (a LIMIT met): the source sees the channel closed and
        // stops at its next batch.
        let (done_tx, done) = tokio::sync::oneshot::channel::<Result<()>>();
        let read = move || -> Result<()> {
            let mut source = source?;
            let job = Arc::new(JobMetrics::default());
            let mut ctx = SourceContext::new(
                tx,
                Arc::new(AtomicBool::new(false)),
                SourceStage::new(None, None),
                job.register("source"),
                job,
            );
            source.run(&mut ctx)
        };
        // A thread of its own (the reads block), which says how it ended after its last
        // batch; a thread that cannot start is an error of the stream.
        let spawned = std::thread::Builder::new()
            .name("weir-file-read".into())
            .spawn(move || {
                let _ = done_tx.send(read());
            });
        let reader = match spawned {
            Ok(_) => Some(done),
            Err(e) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = tx.send(Err(WeirError::internal(format!(
                    "cannot start a thread to read '{}': {e}",
                    self.def.name
                ))));
                Some(rx)
            }
        };
        let state = (rx, reader, schema.clone());
        let stream = futures::stream::unfold(state, |(mut rx, mut reader, schema)| async move {
            loop {
                match rx.recv().await {
                    Some(Message::Batch(b)) => {
                        let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                            .map_err(DataFusionError::from);
                        return Some((b, (rx, reader, schema)));
                    }
                    Some(_) => continue,
                    None => {
                        // The source ended: its error, if any, ends the stream.
                        let done = reader.take()?.await;
                        let err = match done {
                            Ok(Ok(())) => return None,
                            Ok(Err(e)) => DataFusionError::External(Box::new(e)),
                            Err(_) => DataFusionError::Internal(
                                "the thread reading the table's files panicked".into(),
                            ),
                        };
                        return Some((Err(err), (rx, reader, schema)));
                    }
                }
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }
}

/// The bytes of the files a `filesystem` table (`def`, with `options`) reads now.
pub fn bytes_of(def: &TableDef, options: &Options) -> Result<u64> {
    let path = crate::connector::local_path(options.require("path", &def.name)?);
    let mut total = 0u64;
    for f in crate::connector::path_filter(def, options)?.list(&path)? {
        let len = std::fs::metadata(&f)
            .map_err(|e| WeirError::user(format!("cannot read '{}': {e}", f.display())))?
            .len();
        total = total.saturating_add(len);
    }
    Ok(total)
}
