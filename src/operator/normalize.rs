//! Changelog normalization: an upsert stream (an `upsert-kafka` source) into a changelog,
//! as Flink's `ChangelogNormalize` does.
//!
//! An upsert stream says only "this key's row is now R" (`+I`/`+U`) or "this key is gone"
//! (`-D`, whose row may hold nothing but the key, as a Kafka tombstone). Downstream
//! operators need the row that is replaced or deleted, so this operator keeps the last row
//! of every key and emits, per input row (Flink's
//! `DeduplicateFunctionHelper.processLastRowOnChangelog`):
//! - an upsert of a new key: `+I` of it;
//! - an upsert of a known key: `-U` of the kept row, then `+U` of the new one — nothing
//!   when the new row equals the kept one, unless state has a TTL (Flink then sends the
//!   repeat on, so that downstream state it refreshes does not expire early);
//! - a delete (or `-U`) of a known key: `-D` of the **kept** row, and the key is forgotten;
//!   of an unknown key: nothing.
//!
//! State: one row per live key, keys and rows in Arrow's row format; with
//! `table.exec.state.ttl`, a key that got no message for the TTL is forgotten (a later delete
//! of it then emits nothing, a later upsert `+I`), as Flink's state TTL does. Keyed by the
//! primary key, so it runs as several subtasks behind a hash exchange and restores at
//! another parallelism.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryBuilder, Int8Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::HashMap;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;

use crate::changelog::RowKind;
use crate::error::{Result, WeirError};
use crate::job::Message;
use crate::operator::Operator;

/// `schema` with every column but those named in `key` nullable: the rows of an upsert
/// stream before normalization, whose deletes (a tombstone) hold only the key, whatever
/// the table declares `NOT NULL`.
pub fn nullable_except(schema: &SchemaRef, key: &[String]) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| {
                if key.contains(f.name()) {
                    f.as_ref().clone()
                } else {
                    f.as_ref().clone().with_nullable(true)
                }
            })
            .collect::<Vec<Field>>(),
        schema.metadata().clone(),
    ))
}

/// A key's last row (row format) and when the key last got a message.
type Kept = (Box<[u8]>, std::time::Instant);

pub struct NormalizeOperator {
    /// The data columns (without the row kind).
    schema: SchemaRef,
    /// The primary key's column indices in `schema`, and their names (for EXPLAIN).
    key: Vec<usize>,
    key_names: Vec<String>,
    key_conv: RowConverter,
    row_conv: RowConverter,
    /// The last row of each live key, both in the row format, and when the key last got
    /// a message.
    rows: HashMap<Box<[u8]>, Kept>,
    ttl: Option<crate::operator::ttl::StateTtl>,
}

impl NormalizeOperator {
    /// Normalizes upserts of rows of `schema` (the data columns; the input carries the row
    /// kind after them) keyed by the columns `key` (indices into `schema`). Errors: a key
    /// index outside `schema`, a column type Arrow's row format cannot hold.
    pub fn new(schema: SchemaRef, key: Vec<usize>) -> Result<Self> {
        let field = |i: usize| {
            schema.fields().get(i).cloned().ok_or_else(|| {
                WeirError::internal(format!("primary key column {i} is not a column"))
            })
        };
        let key_fields = key.iter().map(|&i| field(i)).collect::<Result<Vec<_>>>()?;
        let key_conv = RowConverter::new(
            key_fields
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let row_conv = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(NormalizeOperator {
            key_names: key_fields.iter().map(|f| f.name().clone()).collect(),
            schema,
            key,
            key_conv,
            row_conv,
            rows: HashMap::new(),
            ttl: None,
        })
    }

    /// Forgets keys that got no message for `ttl` (`table.exec.state.ttl`).
    pub fn with_ttl(mut self, ttl: Option<std::time::Duration>) -> Self {
        self.ttl = crate::operator::ttl::StateTtl::new(ttl);
        self
    }

    fn state_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, false),
            Field::new("row", DataType::Binary, false),
        ]))
    }
}

impl Operator for NormalizeOperator {
    fn name(&self) -> String {
        format!("ChangelogNormalize(key=[{}])", self.key_names.join(", "))
    }

    fn distribution(&self) -> super::Distribution {
        super::Distribution::Hash(vec![
            self.key
                .iter()
                .map(|&i| {
                    Arc::new(Column::new(self.schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>
                })
                .collect(),
        ])
    }

    fn emits_changes(&self) -> bool {
        true
    }

    /// Its name and its columns' types: rows are saved in Arrow's row format, which only
    /// the same types decode.
    fn signature(&self) -> String {
        format!("{} [{}]", self.name(), super::column_types(&self.schema))
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let (data, kinds) = crate::changelog::split(&batch);
        if data.num_columns() != self.schema.fields().len() {
            return Err(WeirError::internal(format!(
                "ChangelogNormalize: {} columns in, {} expected",
                data.num_columns(),
                self.schema.fields().len()
            )));
        }
        let keys = self.key_conv.convert_columns(
            &self
                .key
                .iter()
                .map(|&i| data.column(i).clone())
                .collect::<Vec<_>>(),
        )?;
        let rows = self.row_conv.convert_columns(data.columns())?;
        if let Some(ttl) = &mut self.ttl
            && ttl.sweep_due()
        {
            self.rows.retain(|_, (_, t)| !ttl.expired(*t));
        }
        let now = std::time::Instant::now();
        let repeats_go_on = self.ttl.is_some();
        // What goes out, in order: each row's bytes and kind.
        let mut emitted: Vec<(Box<[u8]>, RowKind)> = vec![];
        for i in 0..data.num_rows() {
            let kind = match &kinds {
                Some(k) if k.is_valid(i) => RowKind::from_i8(k.value(i)).ok_or_else(|| {
                    WeirError::internal(format!("unknown row kind {}", k.value(i)))
                })?,
                _ => RowKind::Insert,
            };
            let key: Box<[u8]> = keys.row(i).as_ref().into();
            if kind.adds() {
                let row: Box<[u8]> = rows.row(i).as_ref().into();
                match self.rows.get_mut(&key) {
                    None => {
                        emitted.push((row.clone(), RowKind::Insert));
                        self.rows.insert(key, (row, now));
                    }
                    Some((kept, touched)) if *kept == row && !repeats_go_on => *touched = now,
                    Some((kept, touched)) => {
                        let before = std::mem::replace(kept, row.clone());
                        *touched = now;
                        emitted.push((before, RowKind::UpdateBefore));
                        emitted.push((row, RowKind::UpdateAfter));
                    }
                }
            } else if let Some((kept, _)) = self.rows.remove(&key) {
                // The kept row, not the input's: a tombstone holds only the key.
                emitted.push((kept, RowKind::Delete));
            }
        }
        if emitted.is_empty() {
            return Ok(());
        }
        let parser = self.row_conv.parser();
        let columns = self
            .row_conv
            .convert_rows(emitted.iter().map(|(r, _)| parser.parse(r)))?;
        let kinds = Int8Array::from_iter_values(emitted.iter().map(|(_, k)| *k as i8));
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        out.push(Message::Batch(crate::changelog::attach(batch, kinds)?));
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        let (mut keys, mut rows) = (BinaryBuilder::new(), BinaryBuilder::new());
        for (k, (r, _)) in &self.rows {
            keys.append_value(k);
            rows.append_value(r);
        }
        let columns: Vec<ArrayRef> = vec![Arc::new(keys.finish()), Arc::new(rows.finish())];
        Ok(Some(vec![RecordBatch::try_new(
            Self::state_schema(),
            columns,
        )?]))
    }

    fn state_keys(&self, batch: &RecordBatch) -> Result<Option<Vec<ArrayRef>>> {
        super::keys_of_rows(&self.key_conv, batch, "key").map(Some)
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        use datafusion::arrow::array::AsArray;
        let bad = || WeirError::user("the checkpoint's state of a ChangelogNormalize is malformed");
        for b in &state {
            let col = |name: &str| {
                b.column_by_name(name)
                    .and_then(|c| c.as_binary_opt::<i32>())
                    .ok_or_else(bad)
            };
            let (keys, rows) = (col("key")?, col("row")?);
            for i in 0..b.num_rows() {
                self.rows.insert(
                    keys.value(i).into(),
                    (rows.value(i).into(), std::time::Instant::now()),
                );
            }
        }
        Ok(())
    }

    fn state_size(&self) -> Option<(u64, u64)> {
        let bytes: usize = self.rows.iter().map(|(k, (r, _))| k.len() + r.len()).sum();
        Some((self.rows.len() as u64, bytes as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    fn upserts(rows: &[(i64, Option<&str>, RowKind)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
            ],
        )
        .expect("batch");
        let kinds = Int8Array::from_iter_values(rows.iter().map(|r| r.2 as i8));
        crate::changelog::attach(batch, kinds).expect("attach")
    }

    fn changes(out: &[Message]) -> Vec<String> {
        let mut v = vec![];
        for m in out {
            if let Message::Batch(b) = m {
                let (data, kinds) = crate::changelog::split(b);
                let kinds = kinds.expect("a changelog");
                let ids = data
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("ids");
                let names = data
                    .column(1)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("names");
                for i in 0..data.num_rows() {
                    let kind = RowKind::from_i8(kinds.value(i)).expect("kind");
                    let name = if names.is_null(i) {
                        "NULL"
                    } else {
                        names.value(i)
                    };
                    v.push(format!("{}[{}, {name}]", kind.short(), ids.value(i)));
                }
            }
        }
        v
    }

    /// Flink's rules: new key +I, changed key -U/+U, repeat dropped, tombstone -D of the
    /// kept row, tombstone of an unknown key dropped; and the same after a snapshot.
    #[test]
    fn upserts_and_tombstones_become_a_changelog_and_survive_a_checkpoint() {
        let schema = upserts(&[]).schema();
        let data = Arc::new(Schema::new(schema.fields()[..2].to_vec()));
        let mut op = NormalizeOperator::new(data.clone(), vec![0]).expect("op");
        let mut out = vec![];
        op.process_batch(
            upserts(&[
                (1, Some("a"), RowKind::Insert),
                (2, Some("b"), RowKind::Insert),
                (1, Some("c"), RowKind::Insert),
                (1, Some("c"), RowKind::Insert),
                (2, None, RowKind::Delete),
                (3, None, RowKind::Delete),
            ]),
            &mut out,
        )
        .expect("process");
        assert_eq!(
            changes(&out),
            ["+I[1, a]", "+I[2, b]", "-U[1, a]", "+U[1, c]", "-D[2, b]"]
        );
        let state = op.snapshot().expect("snapshot").expect("state");
        let mut restored = NormalizeOperator::new(data, vec![0]).expect("op");
        restored.restore(state).expect("restore");
        let mut out = vec![];
        restored
            .process_batch(
                upserts(&[(1, None, RowKind::Delete), (2, Some("d"), RowKind::Insert)]),
                &mut out,
            )
            .expect("process");
        assert_eq!(changes(&out), ["-D[1, c]", "+I[2, d]"]);
    }

    /// With `table.exec.state.ttl`: a repeat goes on (as Flink's, to refresh downstream
    /// state), and a key idle for the TTL is forgotten — its delete then emits nothing.
    #[test]
    fn a_state_ttl_forgets_idle_keys_and_sends_repeats_on() {
        let schema = upserts(&[]).schema();
        let data = Arc::new(Schema::new(schema.fields()[..2].to_vec()));
        let mut op = NormalizeOperator::new(data, vec![0])
            .expect("op")
            .with_ttl(Some(std::time::Duration::from_millis(20)));
        let mut out = vec![];
        op.process_batch(
            upserts(&[
                (1, Some("a"), RowKind::Insert),
                (1, Some("a"), RowKind::Insert),
            ]),
            &mut out,
        )
        .expect("process");
        assert_eq!(changes(&out), ["+I[1, a]", "-U[1, a]", "+U[1, a]"]);
        std::thread::sleep(std::time::Duration::from_millis(40));
        let mut out = vec![];
        op.process_batch(
            upserts(&[(1, None, RowKind::Delete), (1, Some("b"), RowKind::Insert)]),
            &mut out,
        )
        .expect("process");
        assert_eq!(changes(&out), ["+I[1, b]"]);
    }
}
