//! Top-N over a whole stream: `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` followed
//! by a filter `rank <= N` — and deduplication, its N = 1 case (Nexmark q18, q19, q9).
//!
//! Over an input that only appends, a row that is not among its partition's first N when it
//! arrives never will be: each partition keeps at most N rows, sorted. Over a changelog
//! ([`TopNOperator::retracting`]) every row is kept, as a row taken back lets another rise. A row that enters
//! at rank r pushes those from r on down one place; as in Flink, the output is a changelog
//! keyed by rank: for each rank that now holds another row, `-U` of the old row with that
//! rank and `+U` of the new one, and `+I` for a rank that was empty. Rows with equal order
//! keys rank in arrival order (a later row goes after the earlier ones, Flink's
//! `AppendOnlyTopNFunction`), except in a deduplication keeping the last row
//! ([`TopNOperator::newest_first`]), where the later row wins.
//!
//! Order keys are encoded with Arrow's row format with each key's sort options, so their
//! bytes compare in SQL order; kept rows are encoded whole in the row format and decoded
//! only when they are emitted, so state is N rows per partition and holds no batches.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int8Array, UInt64Array};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::HashMap;
use datafusion::physical_expr::PhysicalExpr;

use crate::changelog::{ChangelogMode, RowKind};
use crate::error::{Result, WeirError};
use crate::job::Message;
use crate::operator::Operator;

struct Kept {
    order: Box<[u8]>,
    row: Box<[u8]>,
}

pub struct TopNOperator {
    partition: Vec<Arc<dyn PhysicalExpr>>,
    order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    limit: usize,
    /// The input's columns then the rank (the window node's schema).
    schema: SchemaRef,
    part_conv: Option<RowConverter>,
    order_conv: RowConverter,
    row_conv: RowConverter,
    /// Each partition's kept rows and when a row last came for it.
    partitions: HashMap<Box<[u8]>, (Vec<Kept>, std::time::Instant)>,
    ttl: Option<crate::operator::ttl::StateTtl>,
    /// Whether a row goes before the kept rows whose order keys equal its own.
    newest_first: bool,
    /// The query drops the rank: only rows entering and leaving the top go out.
    without_rank: bool,
    /// Each partition keeps its first row to arrive and never replaces it (Flink's
    /// deduplication keeping the first row by processing time): the output is append-only.
    keeps_first_arrival: bool,
    /// The input is a changelog (see [`TopNOperator::retracting`]): every row is kept.
    retracting: bool,
}

impl TopNOperator {
    pub fn new(
        partition: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
        limit: usize,
        input: &SchemaRef,
        schema: SchemaRef,
    ) -> Result<Self> {
        let part_conv = if partition.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                partition
                    .iter()
                    .map(|e| Ok(SortField::new(e.data_type(input)?)))
                    .collect::<Result<Vec<_>>>()?,
            )?)
        };
        let order_conv = RowConverter::new(
            order
                .iter()
                .map(|(e, o)| Ok(SortField::new_with_options(e.data_type(input)?, *o)))
                .collect::<Result<Vec<_>>>()?,
        )?;
        let row_conv = RowConverter::new(
            input
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        if schema.fields().len() != input.fields().len() + 1 {
            return Err(WeirError::internal("Top-N output is its input and a rank"));
        }
        Ok(TopNOperator {
            partition,
            order,
            limit,
            schema,
            part_conv,
            order_conv,
            row_conv,
            partitions: HashMap::new(),
            ttl: None,
            newest_first: false,
            without_rank: false,
            keeps_first_arrival: false,
            retracting: false,
        })
    }

    /// Takes a changelog (an aggregate's result), as Flink's `RetractableTopNFunction`:
    /// each partition keeps every row it holds, sorted (a row taken back may bring one from
    /// below the top N into it); `+I`/`+U` rows go in as rows of an append-only input do,
    /// `-U`/`-D` take out a kept row equal to them (the earliest of equal ones; one not
    /// kept — forgotten by the state TTL — is ignored, as Flink's lenient default). Taking
    /// out the row at rank r moves each row below it up one rank: with the rank selected,
    /// `-U`/`+U` per rank from r, and `-D` of the last rank when fewer than N rows are left;
    /// without it, `-D` of the row and `+I` of the one entering the top N.
    pub fn retracting(mut self, on: bool) -> Self {
        self.retracting = on;
        self
    }

    /// The query does not read the rank (Flink's "no ranking output" Top-N): a row that
    /// enters the top N goes out as `+I`, one pushed out of it as `-D` (before), and rows
    /// that only move within it send nothing — as Flink's `AppendOnlyTopNFunction` does
    /// without a row number. The rank column is still filled (with the entering rank).
    pub fn without_rank(mut self, on: bool) -> Self {
        self.without_rank = on;
        self
    }

    /// Ranks a row before the kept rows whose order keys equal its own (else after them):
    /// Flink's deduplication keeping the last row (`ORDER BY` a time attribute `DESC`,
    /// `rn = 1`), where of rows with equal times the later one is kept — by event time,
    /// as Flink's `DeduplicateFunctionHelper` replaces the kept row when its time is at or
    /// below the new one's; by processing time, the latest row.
    pub fn newest_first(mut self, on: bool) -> Self {
        self.newest_first = on;
        self
    }

    /// Keeps each partition's first row to arrive for good (Flink's
    /// `ProcTimeDeduplicateKeepFirstRowFunction`: `ROW_NUMBER() OVER (… ORDER BY proctime
    /// ASC) = 1`): rows go out once as inserts, and the output is append-only.
    pub fn keeps_first_arrival(mut self, on: bool) -> Self {
        self.keeps_first_arrival = on;
        self
    }

    /// Forgets partitions that got no row for `ttl` (`table.exec.state.ttl`).
    pub fn with_ttl(mut self, ttl: Option<std::time::Duration>) -> Self {
        self.ttl = crate::operator::ttl::StateTtl::new(ttl);
        self
    }

    /// Rows kept (for tests and metrics).
    pub fn kept_rows(&self) -> usize {
        self.partitions.values().map(|(p, _)| p.len()).sum()
    }
}

impl Operator for TopNOperator {
    fn distribution(&self) -> super::Distribution {
        if self.partition.is_empty() {
            super::Distribution::Single
        } else {
            super::Distribution::Hash(vec![self.partition.clone()])
        }
    }

    /// Its name and its output's column types: rows are saved in Arrow's row format, which
    /// only the same types decode.
    fn signature(&self) -> String {
        format!("{} [{}]", self.name(), super::column_types(&self.schema))
    }

    /// The kept rows of every partition, best first: one batch of `partition`, `order` and
    /// `row` (Binary, in Arrow's row format of this Weir version).
    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        use datafusion::arrow::array::BinaryBuilder;
        use datafusion::arrow::datatypes::{Field, Schema};
        let (mut part, mut order, mut row) = (
            BinaryBuilder::new(),
            BinaryBuilder::new(),
            BinaryBuilder::new(),
        );
        for (key, (kept, _)) in &self.partitions {
            for k in kept {
                part.append_value(key);
                order.append_value(&k.order);
                row.append_value(&k.row);
            }
        }
        let schema = Schema::new(vec![
            Field::new("partition", DataType::Binary, false),
            Field::new("order", DataType::Binary, false),
            Field::new("row", DataType::Binary, false),
        ]);
        Ok(Some(vec![RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(part.finish()),
                Arc::new(order.finish()),
                Arc::new(row.finish()),
            ],
        )?]))
    }

    /// The partition keys of the batch's `partition` column.
    fn state_keys(&self, batch: &RecordBatch) -> Result<Option<Vec<ArrayRef>>> {
        match &self.part_conv {
            Some(conv) => super::keys_of_rows(conv, batch, "partition").map(Some),
            None => Ok(None),
        }
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        use datafusion::arrow::array::AsArray;
        let bad = || WeirError::user("the checkpoint's state of a Top-N is malformed");
        for b in &state {
            if b.num_columns() != 3 {
                return Err(bad());
            }
            let col = |i: usize| b.column(i).as_binary_opt::<i32>().ok_or_else(bad);
            let (part, order, row) = (col(0)?, col(1)?, col(2)?);
            for i in 0..b.num_rows() {
                let entry = self
                    .partitions
                    .entry(part.value(i).into())
                    .or_insert_with(|| (vec![], std::time::Instant::now()));
                entry.0.push(Kept {
                    order: order.value(i).into(),
                    row: row.value(i).into(),
                });
            }
        }
        Ok(())
    }

    fn name(&self) -> String {
        if self.keeps_first_arrival {
            return "top-1 (first row by processing time)".to_string();
        }
        format!("top-{} (changelog)", self.limit)
    }

    /// Kept rows over all partitions and their bytes (row format, with the sort keys):
    /// measured over the first 1 000 partitions and scaled.
    fn state_size(&self) -> Option<(u64, u64)> {
        let (mut n, mut rows, mut bytes) = (0u64, 0u64, 0u64);
        for (key, (kept, _)) in self.partitions.iter().take(1000) {
            n += 1;
            rows += kept.len() as u64;
            bytes += (key.len()
                + kept
                    .iter()
                    .map(|k| k.order.len() + k.row.len())
                    .sum::<usize>()) as u64;
        }
        let total = self.partitions.len() as u64;
        Some((rows * total / n.max(1), bytes * total / n.max(1)))
    }

    fn emits_changes(&self) -> bool {
        !self.keeps_first_arrival
    }

    /// Rows entering and leaving the top (`+I`/`-D`), or, with the rank selected, rows
    /// inserted at a rank not held before (`+I`) and the rows whose rank changes
    /// (`-U`/`+U`; a row pushed out of the top is the old row of its rank's update);
    /// inserts only when each partition keeps its first row.
    fn changelog_mode(&self, _inputs: &[ChangelogMode]) -> ChangelogMode {
        use crate::changelog::RowKind::*;
        if self.keeps_first_arrival {
            ChangelogMode::INSERT_ONLY
        } else if self.without_rank {
            ChangelogMode::of(&[Insert, Delete])
        } else if self.retracting {
            ChangelogMode::of(&[Insert, UpdateBefore, UpdateAfter, Delete])
        } else {
            ChangelogMode::of(&[Insert, UpdateBefore, UpdateAfter])
        }
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let (batch, kinds) = crate::changelog::split(&batch);
        let eval = |e: &Arc<dyn PhysicalExpr>| -> Result<ArrayRef> {
            Ok(e.evaluate(&batch)?.into_array(n)?)
        };
        let parts = match &self.part_conv {
            Some(c) => Some(
                c.convert_columns(
                    &self
                        .partition
                        .iter()
                        .map(eval)
                        .collect::<Result<Vec<_>>>()?,
                )?,
            ),
            None => None,
        };
        let orders = self.order_conv.convert_columns(
            &self
                .order
                .iter()
                .map(|(e, _)| eval(e))
                .collect::<Result<Vec<_>>>()?,
        )?;
        let rows = self.row_conv.convert_columns(batch.columns())?;
        if let Some(ttl) = &mut self.ttl
            && ttl.sweep_due()
        {
            self.partitions.retain(|_, (_, t)| !ttl.expired(*t));
        }
        // The changes: (encoded row, rank, kind), in order.
        let mut changes: Vec<(Box<[u8]>, u64, RowKind)> = vec![];
        let limit = self.limit;
        for i in 0..n {
            let key: &[u8] = match &parts {
                Some(p) => p.row(i).data(),
                None => &[],
            };
            let order = orders.row(i);
            let kind = kinds
                .as_ref()
                .and_then(|k| RowKind::from_i8(k.value(i)))
                .unwrap_or(RowKind::Insert);
            let now = std::time::Instant::now();
            let (part, touched) = match self.partitions.get_mut(key) {
                Some(p) => p,
                None => self
                    .partitions
                    .entry(key.into())
                    .or_insert_with(|| (vec![], now)),
            };
            // A row the partition ignores (it keeps its first) is no write: it does not
            // keep the partition from expiring, as Flink's state TTL counts writes.
            if self.keeps_first_arrival && !part.is_empty() {
                continue;
            }
            *touched = now;
            if matches!(kind, RowKind::UpdateBefore | RowKind::Delete) {
                retract(
                    part,
                    order.data(),
                    rows.row(i).data(),
                    limit,
                    self.without_rank,
                    &mut changes,
                );
                if part.is_empty() {
                    self.partitions.remove(key);
                }
                continue;
            }
            // After every kept row that sorts before it, and after (or, newest first,
            // before) those equal to it.
            let at = if self.newest_first {
                part.partition_point(|k| k.order.as_ref() < order.data())
            } else {
                part.partition_point(|k| k.order.as_ref() <= order.data())
            };
            if at >= limit && !self.retracting {
                continue;
            }
            let before = part.len();
            part.insert(
                at,
                Kept {
                    order: order.data().into(),
                    row: rows.row(i).data().into(),
                },
            );
            if at >= limit {
                // Kept below the top (a changelog's row may rise into it later).
                continue;
            }
            // A changelog's Top-N keeps the rows below the top N.
            let keep = if self.retracting { usize::MAX } else { limit };
            if self.without_rank {
                if part.len() > limit {
                    changes.push((part[limit].row.clone(), limit as u64, RowKind::Delete));
                }
                changes.push((part[at].row.clone(), at as u64 + 1, RowKind::Insert));
                part.truncate(keep);
                continue;
            }
            for r in at..before.min(limit) {
                // Rank r+1 held part[r+1] (now shifted), and now holds part[r].
                changes.push((part[r + 1].row.clone(), r as u64 + 1, RowKind::UpdateBefore));
                changes.push((part[r].row.clone(), r as u64 + 1, RowKind::UpdateAfter));
            }
            if before < limit {
                changes.push((part[before].row.clone(), before as u64 + 1, RowKind::Insert));
            }
            part.truncate(keep);
        }
        if changes.is_empty() {
            return Ok(());
        }
        let parser = self.row_conv.parser();
        let encoded: Vec<_> = changes.iter().map(|(r, _, _)| parser.parse(r)).collect();
        let mut cols = self.row_conv.convert_rows(encoded)?;
        let ranks = UInt64Array::from_iter_values(changes.iter().map(|(_, r, _)| *r));
        let rank_type = self
            .schema
            .field(self.schema.fields().len() - 1)
            .data_type();
        let ranks: ArrayRef = if rank_type == &DataType::UInt64 {
            Arc::new(ranks)
        } else {
            datafusion::arrow::compute::cast(&ranks, rank_type)?
        };
        cols.push(ranks);
        let data = RecordBatch::try_new(self.schema.clone(), cols)?;
        let kinds = Int8Array::from_iter_values(changes.iter().map(|(_, _, k)| *k as i8));
        if self.keeps_first_arrival {
            // Inserts only: an append-only stream carries no row kinds.
            out.push(Message::Batch(data));
            return Ok(());
        }
        out.push(Message::Batch(crate::changelog::attach(data, kinds)?));
        Ok(())
    }
}

/// Takes out of `part` (a partition's kept rows, sorted) the earliest kept row equal to
/// `row` (whose order key is `order`), and adds to `changes` what that does to its top
/// `limit` (see [`TopNOperator::retracting`]). A row not kept changes nothing.
fn retract(
    part: &mut Vec<Kept>,
    order: &[u8],
    row: &[u8],
    limit: usize,
    without_rank: bool,
    changes: &mut Vec<(Box<[u8]>, u64, RowKind)>,
) {
    let lo = part.partition_point(|k| k.order.as_ref() < order);
    let hi = part.partition_point(|k| k.order.as_ref() <= order);
    let Some(at) = (lo..hi).find(|&j| part[j].row.as_ref() == row) else {
        return;
    };
    let removed = part.remove(at);
    if at >= limit {
        return;
    }
    let left = part.len();
    if without_rank {
        changes.push((removed.row, at as u64 + 1, RowKind::Delete));
        if left >= limit {
            changes.push((part[limit - 1].row.clone(), limit as u64, RowKind::Insert));
        }
        return;
    }
    // Rank r + 1 held `old` and now holds part[r], the row below it before.
    let mut old = removed.row;
    for (r, kept) in part.iter().enumerate().take(left.min(limit)).skip(at) {
        changes.push((old, r as u64 + 1, RowKind::UpdateBefore));
        changes.push((kept.row.clone(), r as u64 + 1, RowKind::UpdateAfter));
        old = kept.row.clone();
    }
    if left < limit {
        changes.push((old, left as u64 + 1, RowKind::Delete));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::Column;

    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    #[test]
    fn top_two_per_key_as_a_changelog() {
        let out_schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
            Field::new("rn", DataType::UInt64, false),
        ]));
        let mut op = TopNOperator::new(
            vec![Arc::new(Column::new("k", 0))],
            vec![(
                Arc::new(Column::new("v", 1)),
                SortOptions {
                    descending: true,
                    nulls_first: false,
                },
            )],
            2,
            &input(),
            out_schema,
        )
        .expect("top-n");
        let batch = RecordBatch::try_new(
            input(),
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 1, 1, 2])),
                Arc::new(Int64Array::from(vec![5, 7, 3, 9, 1])),
            ],
        )
        .expect("batch");
        let mut out = vec![];
        op.process_batch(batch, &mut out).expect("process");
        let Some(Message::Batch(b)) = out.first() else {
            panic!("no output");
        };
        let text = crate::format::encode::row_texts(
            &[crate::changelog::for_display(b).expect("display")],
            " ",
        )
        .expect("format");
        assert_eq!(
            text,
            vec![
                "+I 1 5 1", // 5 alone
                "-U 1 5 1", // 7 takes rank 1
                "+U 1 7 1", "+I 1 5 2", // 5 moves to rank 2
                // 3 ranks third: nothing
                "-U 1 7 1", // 9 takes rank 1, 7 rank 2, 5 drops out
                "+U 1 9 1", "-U 1 5 2", "+U 1 7 2", "+I 2 1 1",
            ]
        );
        assert_eq!(op.kept_rows(), 3);
        let result = crate::changelog::apply(
            &out.iter()
                .filter_map(|m| match m {
                    Message::Batch(b) => Some(b.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )
        .expect("apply");
        assert_eq!(result.len(), 3, "{result:?}");
    }
}
