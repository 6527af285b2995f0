//! Changelogs: results that update what was emitted before.
//!
//! Most standing queries only append rows. A few — an aggregate without a window, a Top-N
//! or deduplication by `ROW_NUMBER()` over a whole stream — revise earlier results, and
//! emit a changelog as Flink does: each row has a kind, `+I` (insert), `-U` (the row as it
//! was before an update), `+U` (the row after it) or `-D` (delete). Applying the rows in
//! order (`+I`/`+U` add a row, `-U`/`-D` remove one) gives the current result.
//!
//! The kind travels as one more column at the end of the batch, `op` (Int8), marked by
//! field metadata so no user column is mistaken for it. Stateless operators carry it along;
//! sinks that understand changelogs show it (`print` writes `-U[...]`, the terminal an `op`
//! column) and the others refuse such queries when they are planned.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Int8Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Result, WeirError};

/// The row kinds a stream may hold — Flink's changelog mode, which `EXPLAIN
/// CHANGELOG_MODE` prints per node in Flink's spelling and order: `[I,UB,UA,D]` (insert,
/// update-before, update-after, delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangelogMode(u8);

impl ChangelogMode {
    /// Only inserts: an append-only stream.
    pub const INSERT_ONLY: ChangelogMode = ChangelogMode(1 << RowKind::Insert as u8);
    /// Every kind: a retracting changelog.
    pub const ALL: ChangelogMode = ChangelogMode(0b1111);

    /// The mode holding exactly `kinds`.
    pub fn of(kinds: &[RowKind]) -> ChangelogMode {
        ChangelogMode(kinds.iter().fold(0, |m, k| m | 1 << *k as u8))
    }

    /// True when the stream may hold rows of `kind`.
    pub fn contains(self, kind: RowKind) -> bool {
        self.0 & (1 << kind as u8) != 0
    }

    /// The kinds of either mode.
    pub fn union(self, other: ChangelogMode) -> ChangelogMode {
        ChangelogMode(self.0 | other.0)
    }

    /// True when the stream may take back rows (`-U` or `-D`).
    pub fn retracts(self) -> bool {
        self.contains(RowKind::UpdateBefore) || self.contains(RowKind::Delete)
    }

    /// The mode of a stream merging streams of `modes` (insert-only when there are none).
    pub fn merged(modes: &[ChangelogMode]) -> ChangelogMode {
        modes
            .iter()
            .fold(ChangelogMode(0), |a, b| a.union(*b))
            .or_insert_only()
    }

    fn or_insert_only(self) -> ChangelogMode {
        if self.0 == 0 { Self::INSERT_ONLY } else { self }
    }
}

impl std::fmt::Display for ChangelogMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (RowKind::Insert, "I"),
            (RowKind::UpdateBefore, "UB"),
            (RowKind::UpdateAfter, "UA"),
            (RowKind::Delete, "D"),
        ];
        let held: Vec<&str> = names
            .iter()
            .filter(|(k, _)| self.contains(*k))
            .map(|(_, n)| *n)
            .collect();
        write!(f, "[{}]", held.join(","))
    }
}

/// The name of the row-kind column.
pub const OP: &str = "op";
const MARK: &str = "weir.row_kind";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum RowKind {
    Insert = 0,
    UpdateBefore = 1,
    UpdateAfter = 2,
    Delete = 3,
}

impl RowKind {
    pub fn short(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    pub fn from_i8(v: i8) -> Option<RowKind> {
        match v {
            0 => Some(RowKind::Insert),
            1 => Some(RowKind::UpdateBefore),
            2 => Some(RowKind::UpdateAfter),
            3 => Some(RowKind::Delete),
            _ => None,
        }
    }

    /// True for the kinds that add a row to the result (`+I`, `+U`).
    pub fn adds(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

/// The row-kind field.
pub fn kind_field() -> Field {
    Field::new(OP, DataType::Int8, false).with_metadata(
        [(MARK.to_string(), "true".to_string())]
            .into_iter()
            .collect(),
    )
}

fn is_kind_field(f: &Field) -> bool {
    f.metadata().contains_key(MARK)
}

/// The row kinds of a changelog batch; None for a batch of inserts.
pub fn kinds(batch: &RecordBatch) -> Option<&Int8Array> {
    let schema = batch.schema_ref();
    let last = schema.fields().len().checked_sub(1)?;
    if !is_kind_field(schema.field(last)) {
        return None;
    }
    batch.column(last).as_any().downcast_ref::<Int8Array>()
}

/// A batch without its row kinds, and the kinds.
pub fn split(batch: &RecordBatch) -> (RecordBatch, Option<Int8Array>) {
    match kinds(batch).cloned() {
        Some(k) => {
            let mut data = batch.clone();
            data.remove_column(batch.num_columns() - 1);
            (data, Some(k))
        }
        None => (batch.clone(), None),
    }
}

/// `batch` with `kinds` as its last column.
pub fn attach(batch: RecordBatch, kinds: Int8Array) -> Result<RecordBatch> {
    if kinds.len() != batch.num_rows() {
        return Err(WeirError::internal("row kinds and rows differ in number"));
    }
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(kind_field()));
    let mut cols = batch.columns().to_vec();
    cols.push(Arc::new(kinds));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// For display: the row kinds as `+I`/`-U`/`+U`/`-D` in an `op` column first, then the
/// data; a batch of inserts is returned as it is.
pub fn for_display(batch: &RecordBatch) -> Result<RecordBatch> {
    let (data, Some(k)) = split(batch) else {
        return Ok(batch.clone());
    };
    let texts: StringArray = k
        .iter()
        .map(|v| v.and_then(RowKind::from_i8).map(RowKind::short))
        .collect();
    let mut fields = vec![Arc::new(Field::new(OP, DataType::Utf8, false))];
    fields.extend(data.schema().fields().iter().cloned());
    let mut cols: Vec<Arc<dyn Array>> = vec![Arc::new(texts)];
    cols.extend(data.columns().iter().cloned());
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// The result a changelog stands for: its rows applied in order. Rows are compared by
/// their formatted text; a `-U`/`-D` of a row that is not there is an error.
pub fn apply(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    let mut live: Vec<Option<Vec<String>>> = vec![];
    let mut index: std::collections::HashMap<Vec<String>, Vec<usize>> = Default::default();
    let opts = crate::format::encode::format_options();
    for b in batches {
        let (data, k) = split(b);
        let rows = crate::format::encode::cell_texts(&data, &opts)?;
        for (i, row) in rows.into_iter().enumerate() {
            let kind = match &k {
                Some(k) => RowKind::from_i8(k.value(i))
                    .ok_or_else(|| WeirError::internal("unknown row kind"))?,
                None => RowKind::Insert,
            };
            if kind.adds() {
                index.entry(row.clone()).or_default().push(live.len());
                live.push(Some(row));
            } else {
                let at = index.get_mut(&row).and_then(|v| v.pop()).ok_or_else(|| {
                    WeirError::internal(format!(
                        "{} of a row that is not in the result: {}",
                        kind.short(),
                        row.join(", ")
                    ))
                })?;
                live[at] = None;
            }
        }
    }
    Ok(live.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn changes() -> RecordBatch {
        let data = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![1, 1, 2, 7, 7]))],
        )
        .expect("batch");
        let kinds = Int8Array::from(vec![0, 1, 2, 0, 3]);
        attach(data, kinds).expect("attach")
    }

    #[test]
    fn print_writes_each_row_kind_as_flink_does() {
        let mut out = vec![];
        crate::format::encode::write_print_rows(&mut out, &changes(), "q> ").expect("print");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "q> +I[1]\nq> -U[1]\nq> +U[2]\nq> +I[7]\nq> -D[7]\n"
        );
    }

    #[test]
    fn a_changelog_applied_is_its_final_rows() {
        assert_eq!(
            apply(&[changes()]).expect("apply"),
            vec![vec!["2".to_string()]]
        );
        let bad = attach(
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)])),
                vec![Arc::new(Int64Array::from(vec![5]))],
            )
            .expect("batch"),
            Int8Array::from(vec![1]),
        )
        .expect("attach");
        assert!(apply(&[bad]).is_err(), "-U of a row never inserted");
    }

    #[test]
    fn a_user_column_named_op_is_not_a_row_kind() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(OP, DataType::Int8, false)])),
            vec![Arc::new(Int8Array::from(vec![1]))],
        )
        .expect("batch");
        assert!(kinds(&b).is_none());
    }
}
