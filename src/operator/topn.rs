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
    /// With [`TopNOperator::retracting`], each partition's rows by order key and arrival
    /// (a sequence number), and when a row last came for it: a tree, so that a row goes in
    /// or out in O(log rows) and its rank is counted to N at most.
    trees: HashMap<Box<[u8]>, (Tree, std::time::Instant)>,
    /// The next arrival's sequence number.
    seq: u64,
}

/// A kept row's place in a [`Tree`]: its order key (Arrow's row format) and arrival.
type TreeKey = (Box<[u8]>, u64);

/// A retracting Top-N's partition: its rows by (order key, arrival), in Arrow's row
/// format, and the arrivals of each (order key, row) still kept, oldest first — so that a
/// take-back finds its row at once, however many rows share its order key (a count's ties).
#[derive(Default)]
struct Tree {
    rows: std::collections::BTreeMap<TreeKey, Box<[u8]>>,
    arrivals: HashMap<Box<[u8]>, std::collections::VecDeque<u64>>,
}

impl Tree {
    fn new() -> Tree {
        Tree::default()
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The index key of a row: its order key's length, the order key, then the row.
    fn entry(order: &[u8], row: &[u8]) -> Box<[u8]> {
        let mut k = Vec::with_capacity(4 + order.len() + row.len());
        k.extend_from_slice(&(order.len() as u32).to_le_bytes());
        k.extend_from_slice(order);
        k.extend_from_slice(row);
        k.into()
    }

    fn insert(&mut self, key: (Box<[u8]>, u64), row: Box<[u8]>) {
        self.arrivals
            .entry(Tree::entry(&key.0, &row))
            .or_default()
            .push_back(key.1);
        self.rows.insert(key, row);
    }

    /// The key of the earliest kept row equal to `row` under order key `order`.
    fn earliest(&self, order: &[u8], row: &[u8]) -> Option<(Box<[u8]>, u64)> {
        let seq = self.arrivals.get(&Tree::entry(order, row))?.front()?;
        Some((order.into(), *seq))
    }

    fn remove(&mut self, key: &(Box<[u8]>, u64)) {
        if let Some(row) = self.rows.remove(key) {
            let entry = Tree::entry(&key.0, &row);
            if let Some(q) = self.arrivals.get_mut(&entry) {
                q.retain(|s| *s != key.1);
                if q.is_empty() {
                    self.arrivals.remove(&entry);
                }
            }
        }
    }
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
            trees: HashMap::new(),
            seq: 0,
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
        self.partitions
            .values()
            .map(|(p, _)| p.len())
            .sum::<usize>()
            + self.trees.values().map(|(t, _)| t.len()).sum::<usize>()
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
        for (key, (tree, _)) in &self.trees {
            for ((o, _), r) in &tree.rows {
                part.append_value(key);
                order.append_value(o);
                row.append_value(r);
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
                if self.retracting {
                    // In their saved order, which the sequence numbers keep.
                    self.seq += 1;
                    self.trees
                        .entry(part.value(i).into())
                        .or_insert_with(|| (Tree::new(), std::time::Instant::now()))
                        .0
                        .insert((order.value(i).into(), self.seq), row.value(i).into());
                    continue;
                }
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
        // A retracting partition may hold millions of rows: its bytes are measured over
        // its first 1 000 and scaled (the row and the order key twice, the tree's and the
        // index's, with their arrivals).
        for (key, (tree, _)) in self.trees.iter().take(1000) {
            n += 1;
            rows += tree.len() as u64;
            let sampled: Vec<usize> = tree
                .rows
                .iter()
                .take(1000)
                .map(|((o, _), r)| 2 * (o.len() + r.len()) + 16)
                .collect();
            let per_row = sampled.iter().sum::<usize>() as u64 / sampled.len().max(1) as u64;
            bytes += key.len() as u64 + per_row * tree.len() as u64;
        }
        let total = (self.partitions.len() + self.trees.len()) as u64;
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
            self.trees.retain(|_, (_, t)| !ttl.expired(*t));
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
            if self.retracting {
                let (tree, touched) = match self.trees.get_mut(key) {
                    Some(t) => t,
                    None => self
                        .trees
                        .entry(key.into())
                        .or_insert_with(|| (Tree::new(), now)),
                };
                *touched = now;
                let (order, row) = (order.data(), rows.row(i).data());
                if matches!(kind, RowKind::UpdateBefore | RowKind::Delete) {
                    tree_retract(tree, order, row, limit, self.without_rank, &mut changes);
                    if tree.is_empty() {
                        self.trees.remove(key);
                    }
                } else {
                    self.seq += 1;
                    tree_insert(
                        tree,
                        (order.into(), self.seq),
                        row,
                        limit,
                        self.without_rank,
                        &mut changes,
                    );
                }
                continue;
            }
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
            // After every kept row that sorts before it, and after (or, newest first,
            // before) those equal to it.
            let at = if self.newest_first {
                part.partition_point(|k| k.order.as_ref() < order.data())
            } else {
                part.partition_point(|k| k.order.as_ref() <= order.data())
            };
            if at >= limit {
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
            if self.without_rank {
                if part.len() > limit {
                    changes.push((part[limit].row.clone(), limit as u64, RowKind::Delete));
                }
                changes.push((part[at].row.clone(), at as u64 + 1, RowKind::Insert));
                part.truncate(limit);
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
            part.truncate(limit);
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

/// Puts `row` into `tree` (a retracting Top-N's partition) under `key` (its order key and
/// arrival), and adds to `changes` what that does to the partition's top `limit` (see
/// [`TopNOperator::retracting`]): the ranks from the row's down move one place, as in the
/// append-only case. Costs O(log rows + limit).
fn tree_insert(
    tree: &mut Tree,
    key: (Box<[u8]>, u64),
    row: &[u8],
    limit: usize,
    without_rank: bool,
    changes: &mut Vec<(Box<[u8]>, u64, RowKind)>,
) {
    // Its rank (0-based), counted only as far as the top.
    let at = tree.rows.range(..&key).take(limit).count();
    let before = tree.len();
    tree.insert(key.clone(), row.into());
    if at >= limit {
        return;
    }
    // The rows now at ranks at ..= limit (0-based), the new one first.
    let from: Vec<Box<[u8]>> = tree
        .rows
        .range(&key..)
        .take(limit - at + 1)
        .map(|(_, r)| r.clone())
        .collect();
    if without_rank {
        if let Some(out) = from.get(limit - at) {
            changes.push((out.clone(), limit as u64, RowKind::Delete));
        }
        changes.push((from[0].clone(), at as u64 + 1, RowKind::Insert));
        return;
    }
    for r in at..before.min(limit) {
        // Rank r + 1 held the row now one below, and now holds this one.
        changes.push((
            from[r - at + 1].clone(),
            r as u64 + 1,
            RowKind::UpdateBefore,
        ));
        changes.push((from[r - at].clone(), r as u64 + 1, RowKind::UpdateAfter));
    }
    if before < limit {
        changes.push((
            from[before - at].clone(),
            before as u64 + 1,
            RowKind::Insert,
        ));
    }
}

/// Takes out of `tree` (a retracting Top-N's partition) the earliest row equal to `row`
/// among those of order key `order`, and adds to `changes` what that does to its top
/// `limit` (see [`TopNOperator::retracting`]). A row not kept changes nothing. Costs
/// O(log rows + limit).
fn tree_retract(
    tree: &mut Tree,
    order: &[u8],
    row: &[u8],
    limit: usize,
    without_rank: bool,
    changes: &mut Vec<(Box<[u8]>, u64, RowKind)>,
) {
    let Some(key) = tree.earliest(order, row) else {
        return;
    };
    let at = tree.rows.range(..&key).take(limit).count();
    if at >= limit {
        tree.remove(&key);
        return;
    }
    // The rows at ranks at ..= limit (0-based) before it goes, itself first.
    let old: Vec<Box<[u8]>> = tree
        .rows
        .range(&key..)
        .take(limit - at + 1)
        .map(|(_, r)| r.clone())
        .collect();
    tree.remove(&key);
    let left = tree.len();
    if without_rank {
        changes.push((old[0].clone(), at as u64 + 1, RowKind::Delete));
        if let Some(up) = old.get(limit - at) {
            changes.push((up.clone(), limit as u64, RowKind::Insert));
        }
        return;
    }
    // Rank r + 1 held old[r] and now holds the row below it.
    for r in at..left.min(limit) {
        changes.push((old[r - at].clone(), r as u64 + 1, RowKind::UpdateBefore));
        changes.push((old[r - at + 1].clone(), r as u64 + 1, RowKind::UpdateAfter));
    }
    if left < limit {
        changes.push((old[left - at].clone(), left as u64 + 1, RowKind::Delete));
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

    /// A retracting partition against a plain reference: after every insert or take-back
    /// in a long random run (few order keys, so many ties), the changes applied so far —
    /// by rank, and without the rank as a multiset — give the reference's top 3.
    #[test]
    fn a_retracting_partition_keeps_its_top_as_a_sorted_list_would() {
        let limit = 3;
        for without_rank in [false, true] {
            let mut tree = Tree::new();
            // The reference: (order, arrival, row), sorted by order then arrival.
            let mut reference: Vec<(u8, u64, u8)> = vec![];
            let mut by_rank: std::collections::BTreeMap<u64, Box<[u8]>> = Default::default();
            let mut shown: Vec<Box<[u8]>> = vec![];
            let mut state = 7u64;
            for seq in 1..3000u64 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (order, row) = ((state >> 33) as u8 % 5, (state >> 40) as u8 % 7);
                let mut changes = vec![];
                let take_back = (state >> 50).is_multiple_of(3);
                if take_back {
                    let Some(i) = reference
                        .iter()
                        .position(|(o, _, r)| *o == order && *r == row)
                    else {
                        continue;
                    };
                    reference.remove(i);
                    tree_retract(
                        &mut tree,
                        &[order],
                        &[row],
                        limit,
                        without_rank,
                        &mut changes,
                    );
                } else {
                    let at = reference.partition_point(|(o, _, _)| *o <= order);
                    reference.insert(at, (order, seq, row));
                    tree_insert(
                        &mut tree,
                        (Box::new([order]), seq),
                        &[row],
                        limit,
                        without_rank,
                        &mut changes,
                    );
                }
                for (r, rank, kind) in changes {
                    match (without_rank, kind) {
                        (false, RowKind::Insert | RowKind::UpdateAfter) => {
                            by_rank.insert(rank, r);
                        }
                        (false, _) => {
                            assert_eq!(
                                by_rank.remove(&rank),
                                Some(r),
                                "rank {rank} held another row"
                            );
                        }
                        (true, RowKind::Insert) => shown.push(r),
                        (true, _) => {
                            let i = shown
                                .iter()
                                .position(|x| *x == r)
                                .expect("a shown row goes");
                            shown.remove(i);
                        }
                    }
                }
                let top: Vec<Box<[u8]>> = reference
                    .iter()
                    .take(limit)
                    .map(|(_, _, r)| Box::from([*r]))
                    .collect();
                if without_rank {
                    let (mut a, mut b) = (shown.clone(), top.clone());
                    a.sort();
                    b.sort();
                    assert_eq!(a, b, "after step {seq}");
                } else {
                    assert_eq!(
                        by_rank.values().cloned().collect::<Vec<_>>(),
                        top,
                        "after step {seq}"
                    );
                }
                assert_eq!(tree.len(), reference.len());
            }
        }
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
