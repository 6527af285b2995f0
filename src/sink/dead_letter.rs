//! Dead letters: the records a source could not read, kept with why and where.
//!
//! A source table with `'dead-letter.sink' = '<table>'` skips a record it cannot decode
//! (malformed JSON or CSV, a wrong type, invalid UTF-8) instead of failing the job, counts
//! it (`weir_operator_bad_records_total`), and sends it to that table as one row:
//!
//! | column | type | value |
//! |---|---|---|
//! | `raw` | `STRING` or `BYTES` | the record as read (invalid UTF-8 replaced by U+FFFD in a `STRING`) |
//! | `error` | `STRING` | why it could not be read |
//! | `source` | `STRING` | where: `<file>:<line>`, `stdin:<line>`, or `kafka topic '<t>' partition <p> offset <o>` |
//!
//! The table declares any of these columns, in any order (none: all three). Dead letters
//! travel down the job's channels beside its rows ([`crate::job::Message::DeadLetters`]) to
//! the sink task, which writes them with [`WithDeadLetters`]: they commit with the job's
//! checkpoints in the same two phases as its output, so across a kill and a restart every
//! bad record is in the table once, as every good row is in the output once.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Result, WeirError};
use crate::sink::{Sink, SinkContext};

/// The columns a dead-letter row has, in the order they travel in.
pub const COLUMNS: [&str; 3] = ["raw", "error", "source"];

/// The schema dead letters travel in: `raw` BYTES, `error` STRING, `source` STRING.
pub fn letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("raw", DataType::Binary, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
    ]))
}

/// Bad records a source collected since it last sent them: raw bytes, reason, place.
#[derive(Default)]
pub struct Letters {
    raw: Vec<Vec<u8>>,
    error: Vec<String>,
    source: Vec<String>,
}

impl Letters {
    pub fn push(&mut self, raw: &[u8], error: &str, source: String) {
        self.raw.push(raw.to_vec());
        self.error.push(error.to_string());
        self.source.push(source);
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The letters as one batch of [`letter_schema`], leaving this empty.
    pub fn take(&mut self) -> Result<RecordBatch> {
        let raw = BinaryArray::from_iter_values(self.raw.drain(..));
        let error = StringArray::from_iter_values(self.error.drain(..));
        let source = StringArray::from_iter_values(self.source.drain(..));
        Ok(RecordBatch::try_new(
            letter_schema(),
            vec![Arc::new(raw), Arc::new(error), Arc::new(source)],
        )?)
    }
}

/// Checks the table `name` that the `'dead-letter.sink'` of table `source` names
/// (`schema`: its declared columns, or None when it declares none) and returns the
/// columns its rows get. Errors: a column other than `raw`, `error` and `source`, `raw`
/// neither STRING nor BYTES, the others not STRING.
pub fn table_schema(name: &str, schema: Option<&SchemaRef>, source: &str) -> Result<SchemaRef> {
    let all = || {
        Arc::new(Schema::new(vec![
            Field::new("raw", DataType::Utf8, true),
            Field::new("error", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, true),
        ]))
    };
    let Some(schema) = schema.filter(|s| !s.fields().is_empty()) else {
        return Ok(all());
    };
    for f in schema.fields() {
        let ok = match f.name().as_str() {
            "raw" => matches!(
                f.data_type(),
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Binary
                    | DataType::LargeBinary
            ),
            "error" | "source" => matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
            other => {
                return Err(WeirError::user(format!(
                    "table '{source}': the dead-letter table '{name}' has a column '{other}'; a dead letter has the columns raw, error and source"
                ))
                .with_hint(format!(
                    "declare it as CREATE TABLE {name} (raw STRING, error STRING, source STRING) WITH (...)"
                )));
            }
        };
        if !ok {
            return Err(WeirError::user(format!(
                "table '{source}': column '{}' of the dead-letter table '{name}' is {}; it must be {}",
                f.name(),
                crate::sql::types::flink_type_name(f.data_type()),
                if f.name() == "raw" {
                    "STRING or BYTES"
                } else {
                    "STRING"
                }
            )));
        }
    }
    Ok(schema.clone())
}

/// One dead-letter table: its sink, and its columns (from [`table_schema`]) that letters
/// of [`letter_schema`] are projected onto.
pub struct DeadLetterTable {
    pub sink: Box<dyn Sink>,
    pub schema: SchemaRef,
}

impl DeadLetterTable {
    /// `letters` (of [`letter_schema`]) as rows of this table.
    fn project(&self, letters: &RecordBatch) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = vec![];
        for f in self.schema.fields() {
            let i = COLUMNS
                .iter()
                .position(|c| c == f.name())
                .ok_or_else(|| WeirError::internal(format!("dead-letter column {}", f.name())))?;
            let c = letters.column(i);
            let c: ArrayRef = match (i, f.data_type()) {
                // Raw bytes into a STRING: as read, with invalid UTF-8 replaced.
                (0, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
                    let b = c
                        .as_any()
                        .downcast_ref::<BinaryArray>()
                        .ok_or_else(|| WeirError::internal("dead-letter raw is not bytes"))?;
                    let s: StringArray = b
                        .iter()
                        .map(|v| v.map(|v| String::from_utf8_lossy(v).into_owned()))
                        .collect();
                    datafusion::arrow::compute::cast(&s, f.data_type())?
                }
                (_, t) if c.data_type() != t => datafusion::arrow::compute::cast(c, t)?,
                _ => c.clone(),
            };
            cols.push(c);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }
}

/// Schema metadata naming which dead-letter sink a piece of checkpoint state belongs to.
const STATE_KEY: &str = "weir.dead_letter";

/// The job's sink with its sources' dead-letter sinks beside it, all driven by the sink
/// task: a dead-letter sink's checkpoint state is kept in the sink task's, each batch of it
/// marked with the sink's index, so a restore hands each its own.
pub struct WithDeadLetters {
    main: Box<dyn Sink>,
    letters: Vec<DeadLetterTable>,
}

impl WithDeadLetters {
    /// `letters[i]` takes the dead letters of index `i` (see
    /// [`crate::source::SourceContext::with_dead_letters`]).
    pub fn new(main: Box<dyn Sink>, letters: Vec<DeadLetterTable>) -> Self {
        WithDeadLetters { main, letters }
    }

    /// Runs `f` on every dead-letter sink, then on the job's sink.
    fn each(&mut self, mut f: impl FnMut(&mut dyn Sink) -> Result<()>) -> Result<()> {
        for l in &mut self.letters {
            f(l.sink.as_mut())?;
        }
        f(self.main.as_mut())
    }
}

/// `batch` with its schema's metadata marking it as dead-letter sink `i`'s state (None:
/// unmarked, the job's sink's).
fn mark(batch: RecordBatch, i: Option<usize>) -> Result<RecordBatch> {
    let mut meta = batch.schema().metadata().clone();
    match i {
        Some(i) => meta.insert(STATE_KEY.to_string(), i.to_string()),
        None => meta.remove(STATE_KEY),
    };
    let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(meta));
    Ok(RecordBatch::try_new(schema, batch.columns().to_vec())?)
}

/// True when a sink task's checkpoint state holds dead-letter sinks' state: a query
/// restored from it must still have them.
pub fn holds_letter_state(state: &[RecordBatch]) -> bool {
    state
        .iter()
        .any(|b| b.schema().metadata().contains_key(STATE_KEY))
}

impl Sink for WithDeadLetters {
    fn open(&mut self, ctx: &SinkContext) -> Result<()> {
        let mut main = vec![];
        let mut letters: Vec<Vec<RecordBatch>> = vec![vec![]; self.letters.len()];
        for b in ctx.restored.iter().flatten() {
            match b.schema().metadata().get(STATE_KEY) {
                Some(i) => {
                    let i: usize = i.parse().map_err(|_| {
                        WeirError::user(format!(
                            "the checkpoint's sink state names dead-letter sink '{i}'"
                        ))
                    })?;
                    let Some(l) = letters.get_mut(i) else {
                        return Err(WeirError::user(format!(
                            "the checkpoint has state of dead-letter sink {i}, which this query does not have"
                        ))
                        .with_hint("start over with --from-scratch"));
                    };
                    l.push(mark(b.clone(), None)?);
                }
                None => main.push(b.clone()),
            }
        }
        // Each dead-letter sink writes under a name of its own (`<job>-dead-letters-<i>`),
        // so that its files never take the name of the job's own output, nor does a
        // restart clean up another sink's files in progress.
        let with = |job: String, restored: Vec<RecordBatch>| SinkContext {
            job,
            run: ctx.run.clone(),
            checkpointer: ctx.checkpointer.clone(),
            restored: (!restored.is_empty()).then_some(restored),
        };
        for (i, (l, r)) in self.letters.iter_mut().zip(letters).enumerate() {
            l.sink
                .open(&with(format!("{}-dead-letters-{i}", ctx.job), r))?;
        }
        self.main.open(&with(ctx.job.clone(), main))
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.main.write(batch)
    }

    fn write_dead_letters(&mut self, table: usize, batch: &RecordBatch) -> Result<()> {
        match self.letters.get_mut(table) {
            Some(l) => {
                let rows = l.project(batch)?;
                l.sink.write(&rows)
            }
            None => Err(WeirError::internal(format!("no dead-letter sink {table}"))),
        }
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<Vec<RecordBatch>>> {
        let mut state = self.main.pre_commit(checkpoint)?;
        for (i, t) in self.letters.iter_mut().enumerate() {
            if let Some(l) = t.sink.pre_commit(checkpoint)? {
                let l = l
                    .into_iter()
                    .map(|b| mark(b, Some(i)))
                    .collect::<Result<Vec<_>>>()?;
                state.get_or_insert_with(Vec::new).extend(l);
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

    fn on_watermark(&mut self, watermark: i64) -> Result<()> {
        self.each(|s| s.on_watermark(watermark))
    }

    fn finish(&mut self) -> Result<()> {
        self.each(|s| s.finish())
    }

    fn accepts_changes(&self) -> bool {
        self.main.accepts_changes()
    }

    /// The shortest of the sinks' ticks; each sink keeps its own clock in `on_tick`.
    fn tick(&self) -> Option<std::time::Duration> {
        std::iter::once(&self.main)
            .chain(self.letters.iter().map(|l| &l.sink))
            .filter_map(|s| s.tick())
            .min()
    }

    fn on_tick(&mut self) -> Result<()> {
        self.each(|s| match s.tick() {
            Some(_) => s.on_tick(),
            None => Ok(()),
        })
    }
}
