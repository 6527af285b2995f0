//! GROUP BY over a whole stream (no window): each group's aggregates are kept for as long
//! as the query runs, and the result is a changelog (see [`crate::changelog`]).
//!
//! After each input batch, every group the batch touched emits its new result: `+I` the
//! first time, then `-U` of the previous result and `+U` of the new one — unless the
//! result did not change, as in Flink, which emits nothing then. Per batch, not per row:
//! the rows in between are never seen downstream, and the result is the same. The groups
//! emit in the order of their last row in the batch, as Flink's final results of them
//! come row by row.
//!
//! The input may itself be a changelog (an aggregate of an aggregate, Nexmark q4): its
//! `-U`/`-D` rows are retracted from the accumulators, which the planner checks can
//! retract, and a group whose rows are all retracted is deleted (`-D`).
//!
//! Over an append-only input whose aggregates are all COUNT, COUNT(DISTINCT), SUM, AVG,
//! MIN or MAX of the common types, the state is one column per aggregate indexed by group
//! ([`crate::operator::group_columns`]), updated in one pass over each batch. Otherwise
//! each group holds one DataFusion [`Accumulator`] per aggregate (with `DISTINCT` and
//! `FILTER (WHERE ...)` as DataFusion gives them), fed the group's rows of each batch.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int8Array, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{HashMap, ScalarValue};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use crate::changelog::{ChangelogMode, RowKind};
use crate::error::{Result, WeirError};
use crate::job::Message;
use crate::operator::Operator;
use crate::operator::group_columns::GroupColumns;

/// One aggregate call: the function, its arguments and its FILTER.
pub struct AggCall {
    pub expr: Arc<AggregateFunctionExpr>,
    pub args: Vec<Arc<dyn PhysicalExpr>>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// Use the function's sliding accumulator, which takes rows back (`SUM` over an
    /// updating input), rather than its plain one.
    pub sliding: bool,
    /// For `AGG(DISTINCT …)` over an updating input: the types of its arguments and the
    /// call without DISTINCT, which [`crate::operator::minmax::distinct_with_retract`]
    /// evaluates over the distinct values it counts (so rows can be taken back).
    pub distinct_retract: Option<(Vec<DataType>, Arc<AggregateFunctionExpr>)>,
    /// For an aggregate that cannot take rows back, over an updating input: the types of
    /// its arguments, the call without DISTINCT and whether it had it, for
    /// [`crate::operator::arrival::with_retract`], which holds the rows in arrival order
    /// (Flink's retracting `FIRST_VALUE`, `LISTAGG`, JSON aggregates, …).
    pub arrival: Option<(Vec<DataType>, Arc<AggregateFunctionExpr>, bool)>,
}

impl AggCall {
    /// A fresh accumulator of the kind this call uses.
    pub(crate) fn accumulator(&self) -> Result<Box<dyn Accumulator>> {
        if let Some((types, inner)) = &self.distinct_retract {
            return Ok(crate::operator::minmax::distinct_with_retract(
                types.clone(),
                inner.clone(),
            )?);
        }
        if let Some((types, inner, distinct)) = &self.arrival {
            return Ok(crate::operator::arrival::with_retract(
                types.clone(),
                inner.clone(),
                *distinct,
            )?);
        }
        Ok(if self.sliding {
            self.expr.create_sliding_accumulator()?
        } else {
            self.expr.create_accumulator()?
        })
    }
}

struct Group {
    key: Box<[u8]>,
    accs: Vec<Box<dyn Accumulator>>,
    /// The result last emitted.
    last: Option<Vec<ScalarValue>>,
    /// Input rows counted in (inserts less retractions).
    rows: i64,
    /// When a row last came for the group (`table.exec.state.ttl`).
    touched: std::time::Instant,
}

pub struct GroupAggregateOperator {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    key_conv: Option<RowConverter>,
    aggs: Vec<AggCall>,
    /// The group keys, then the aggregates.
    schema: SchemaRef,
    index: HashMap<Box<[u8]>, usize>,
    groups: Vec<Option<Group>>,
    free: Vec<usize>,
    ttl: Option<crate::operator::ttl::StateTtl>,
    /// Scratch for [`Operator::process_batch`]: per group, its place among the groups a
    /// batch touched (usize::MAX between batches).
    slot_of: Vec<usize>,
    /// Over an append-only input where every aggregate has one: the aggregates' state as
    /// columns indexed by group (the groups then hold no accumulators).
    columns: Option<GroupColumns>,
}

impl GroupAggregateOperator {
    pub fn new(
        keys: Vec<Arc<dyn PhysicalExpr>>,
        input: &SchemaRef,
        aggs: Vec<AggCall>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let key_conv = if keys.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                keys.iter()
                    .map(|k| Ok(SortField::new(k.data_type(input)?)))
                    .collect::<Result<Vec<_>>>()?,
            )?)
        };
        if schema.fields().len() != keys.len() + aggs.len() {
            return Err(WeirError::internal(
                "group aggregate output is keys and aggregates",
            ));
        }
        Ok(GroupAggregateOperator {
            keys,
            key_conv,
            aggs,
            schema,
            index: HashMap::new(),
            groups: vec![],
            free: vec![],
            ttl: None,
            slot_of: vec![],
            columns: None,
        })
    }

    /// Keeps the aggregates' state in columns indexed by group
    /// ([`crate::operator::group_columns`]) when the input is append-only and every
    /// aggregate has a columnar form; otherwise one accumulator per group and aggregate.
    /// `input`: the schema the aggregates' arguments are evaluated over.
    pub fn vectorised(mut self, append_only: bool, input: &SchemaRef) -> Self {
        if append_only && self.groups.is_empty() {
            self.columns = GroupColumns::of(&self.aggs, input);
        }
        self
    }

    /// Forgets groups that got no row for `ttl` (`table.exec.state.ttl`), without
    /// emitting anything, as Flink does; a later row for one starts it again with `+I`.
    pub fn with_ttl(mut self, ttl: Option<std::time::Duration>) -> Self {
        self.ttl = crate::operator::ttl::StateTtl::new(ttl);
        self
    }

    fn expire(&mut self) {
        let Some(ttl) = &mut self.ttl else {
            return;
        };
        if !ttl.sweep_due() {
            return;
        }
        let mut dead = vec![false; self.groups.len()];
        for (id, slot) in self.groups.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|g| ttl.expired(g.touched))
                && let Some(g) = slot.take()
            {
                self.index.remove(&g.key);
                self.free.push(id);
                dead[id] = true;
            }
        }
        if let Some(columns) = &mut self.columns
            && dead.contains(&true)
        {
            columns.forget(&dead);
        }
    }

    /// Groups held (for tests and metrics).
    pub fn groups(&self) -> usize {
        self.index.len()
    }

    fn group_id(&mut self, key: &[u8]) -> Result<usize> {
        if let Some(g) = self.index.get(key) {
            return Ok(*g);
        }
        let accs = match self.columns {
            Some(_) => vec![],
            None => self
                .aggs
                .iter()
                .map(|a| a.accumulator())
                .collect::<Result<Vec<_>>>()?,
        };
        let group = Group {
            key: key.into(),
            accs,
            last: None,
            rows: 0,
            touched: std::time::Instant::now(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.groups[id] = Some(group);
                id
            }
            None => {
                self.groups.push(Some(group));
                self.groups.len() - 1
            }
        };
        self.index.insert(key.into(), id);
        if let Some(columns) = &mut self.columns {
            columns.grow(self.groups.len());
        }
        Ok(id)
    }
}

impl GroupAggregateOperator {
    /// [`Operator::process_batch`] with the aggregates' state in columns (an append-only
    /// input): each row's group found once, every aggregate updated in one pass over the
    /// rows, and the touched groups' results before and after read as arrays; a group
    /// emits `+I` the first time, then `-U`/`+U` where a result changed, in the order of
    /// its last row in the batch, as the general path does.
    fn process_columns(
        &mut self,
        batch: &RecordBatch,
        kinds: Option<&Int8Array>,
        key_rows: Option<&datafusion::arrow::row::Rows>,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        use datafusion::arrow::compute::{interleave, kernels::cmp::distinct};
        let n = batch.num_rows();
        if let Some(k) = kinds
            && k.values()
                .iter()
                .any(|k| !RowKind::from_i8(*k).is_some_and(RowKind::adds))
        {
            return Err(WeirError::internal(
                "a row taken back reached a group aggregate planned for an append-only input",
            ));
        }
        // Each row's group; per touched group (in order of first touch): its id, its last
        // row, its rows in the batch, and whether it emitted before.
        let mut gids: Vec<u32> = Vec::with_capacity(n);
        let mut touched: Vec<(u32, u32, i64, bool)> = vec![];
        let mut slot = std::mem::take(&mut self.slot_of);
        for i in 0..n {
            let key: &[u8] = match key_rows {
                Some(r) => r.row(i).data(),
                None => &[],
            };
            let g = self.group_id(key)?;
            if slot.len() <= g {
                slot.resize(self.groups.len().max(g + 1), usize::MAX);
            }
            if slot[g] == usize::MAX {
                let seen = self.groups[g].as_ref().is_some_and(|gr| gr.rows > 0);
                slot[g] = touched.len();
                touched.push((g as u32, i as u32, 1, seen));
            } else {
                let t = &mut touched[slot[g]];
                t.1 = i as u32;
                t.2 += 1;
            }
            gids.push(g as u32);
        }
        for t in &touched {
            slot[t.0 as usize] = usize::MAX;
        }
        self.slot_of = slot;
        // Emitted in the order of each group's last row in the batch.
        touched.sort_unstable_by_key(|t| t.1);
        let now = std::time::Instant::now();
        for (g, _, rows, _) in &touched {
            let Some(group) = self.groups[*g as usize].as_mut() else {
                return Err(WeirError::internal("group vanished"));
            };
            group.rows += rows;
            group.touched = now;
        }
        let Some(columns) = self.columns.as_mut() else {
            return Err(WeirError::internal("group aggregate without columns"));
        };
        let old_ids: Vec<u32> = touched.iter().filter(|t| t.3).map(|t| t.0).collect();
        let old = (0..columns.len())
            .map(|j| columns.evaluate(j, &old_ids))
            .collect::<Result<Vec<_>>>()?;
        columns.update(&self.aggs, batch, &gids)?;
        let ids: Vec<u32> = touched.iter().map(|t| t.0).collect();
        let new = (0..columns.len())
            .map(|j| columns.evaluate(j, &ids))
            .collect::<Result<Vec<_>>>()?;
        // Which of the groups that emitted before have a changed result.
        let old_at = UInt32Array::from_iter_values(
            touched
                .iter()
                .enumerate()
                .filter(|(_, t)| t.3)
                .map(|(k, _)| k as u32),
        );
        let mut changed = vec![false; old_ids.len()];
        for (before, after) in old.iter().zip(&new) {
            let after = take(after.as_ref(), &old_at, None)?;
            let differs = distinct(before, &after)?;
            for (k, c) in changed.iter_mut().enumerate() {
                *c |= differs.value(k);
            }
        }
        // Per emitted row: (0 = the old results, 1 = the new; its index there), its
        // group and its kind.
        let mut picks: Vec<(usize, usize)> = vec![];
        let mut emitted: Vec<(u32, RowKind)> = vec![];
        let mut k_old = 0;
        for (pos, (g, _, _, seen)) in touched.iter().enumerate() {
            if !seen {
                picks.push((1, pos));
                emitted.push((*g, RowKind::Insert));
                continue;
            }
            let k = k_old;
            k_old += 1;
            if changed[k] {
                picks.push((0, k));
                emitted.push((*g, RowKind::UpdateBefore));
                picks.push((1, pos));
                emitted.push((*g, RowKind::UpdateAfter));
            }
        }
        if emitted.is_empty() {
            return Ok(());
        }
        let values = old
            .iter()
            .zip(&new)
            .map(|(before, after)| interleave(&[before.as_ref(), after.as_ref()], &picks))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut keys: Vec<&[u8]> = Vec::with_capacity(emitted.len());
        for (g, _) in &emitted {
            match self.groups.get(*g as usize) {
                Some(Some(group)) => keys.push(&group.key),
                _ => return Err(WeirError::internal("emitted group vanished")),
            }
        }
        let kinds = Int8Array::from_iter_values(emitted.iter().map(|(_, k)| *k as i8));
        self.send(keys, values, kinds, out)
    }

    /// Sends one changelog batch: per row its group's key (Arrow row format) and its kind
    /// (`kinds`), and per aggregate its values (`values[a]`, one per row, cast to the
    /// output column's type where DataFusion's result type differs).
    fn send(
        &self,
        keys: Vec<&[u8]>,
        values: Vec<ArrayRef>,
        kinds: Int8Array,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let mut cols: Vec<ArrayRef> = match &self.key_conv {
            Some(c) => {
                let parser = c.parser();
                c.convert_rows(keys.into_iter().map(|k| parser.parse(k)))?
            }
            None => vec![],
        };
        for (a, arr) in values.into_iter().enumerate() {
            let field = self.schema.field(self.keys.len() + a);
            cols.push(if arr.data_type() == field.data_type() {
                arr
            } else {
                datafusion::arrow::compute::cast(&arr, field.data_type())?
            });
        }
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(kinds.len())),
        )?;
        out.push(Message::Batch(crate::changelog::attach(data, kinds)?));
        Ok(())
    }
}

/// Where an emitted row's group key is: in its group, still held (not copied per row),
/// or copied out of a group deleted in the same batch.
enum Key {
    Group(usize),
    Owned(Box<[u8]>),
}

/// Where a group's rows are among an aggregate's gathered arguments.
enum Ranges {
    /// (start, length) of the added rows, then of the retracted ones.
    AddsThenRetractions([(usize, usize); 2]),
    /// (start, length, retracted) of each run of one kind, in row order.
    Runs(Vec<(usize, usize, bool)>),
}

/// Appends the rows of `adds` and `retracts` (each ascending) that `mask` keeps to `out`
/// in row order, and gives the runs of one kind: (start in `out`, length, retracted).
fn in_row_order(
    out: &mut Vec<u32>,
    adds: &[u32],
    retracts: &[u32],
    mask: Option<&BooleanArray>,
) -> Vec<(usize, usize, bool)> {
    let kept = |i: u32| mask.is_none_or(|m| m.is_valid(i as usize) && m.value(i as usize));
    let mut runs: Vec<(usize, usize, bool)> = vec![];
    let (mut a, mut r) = (0, 0);
    loop {
        let (row, retract) = match (adds.get(a), retracts.get(r)) {
            (Some(x), Some(y)) if x < y => (*x, false),
            (Some(x), None) => (*x, false),
            (_, Some(y)) => (*y, true),
            (None, None) => break,
        };
        if retract {
            r += 1;
        } else {
            a += 1;
        }
        if !kept(row) {
            continue;
        }
        match runs.last_mut() {
            Some(last) if last.2 == retract => last.1 += 1,
            _ => runs.push((out.len(), 1, retract)),
        }
        out.push(row);
    }
    runs
}

/// Appends to `out` the rows of `rows` where `mask` (a FILTER) holds.
fn extend_masked(out: &mut Vec<u32>, rows: &[u32], mask: Option<&BooleanArray>) {
    match mask {
        None => out.extend_from_slice(rows),
        Some(m) => out.extend(
            rows.iter()
                .copied()
                .filter(|i| m.is_valid(*i as usize) && m.value(*i as usize)),
        ),
    }
}

impl Operator for GroupAggregateOperator {
    /// False: the final values do not depend on the order rows come in, but the updates
    /// on the way do (`+U` of the sum after the first row of a key depends on which row
    /// came first), so a source feeding it stays on one task and the changelog is the same
    /// at every parallelism.
    fn order_insensitive(&self) -> bool {
        false
    }

    fn distribution(&self) -> super::Distribution {
        if self.keys.is_empty() {
            super::Distribution::Single
        } else {
            super::Distribution::Hash(vec![self.keys.clone()])
        }
    }

    /// Groups, and their keys' and accumulators' bytes: measured over the first 1 000
    /// groups and scaled (walking a million groups four times a second would cost more
    /// than the metric is worth).
    fn state_size(&self) -> Option<(u64, u64)> {
        let rows = self.index.len() as u64;
        let (mut n, mut bytes) = (0u64, 0u64);
        for g in self.groups.iter().flatten().take(1000) {
            n += 1;
            bytes += (g.key.len() + g.accs.iter().map(|a| a.size()).sum::<usize>()) as u64;
        }
        let per = bytes.checked_div(n).unwrap_or(0);
        let columns = self.columns.as_ref().map_or(0, |c| c.size() as u64);
        Some((rows, per * rows + columns))
    }

    fn signature(&self) -> String {
        format!(
            "{} [keys: {}] [{}]",
            self.name(),
            self.schema.fields()[..self.keys.len()]
                .iter()
                .map(|f| f.data_type().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            self.aggs
                .iter()
                .map(|a| format!("{}: {}", a.expr.name(), a.expr.field().data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// Every group: its key (`key`, Arrow row format), `rows` counted in, the result last
    /// emitted (`last<j>` per aggregate) and each accumulator's state (`s<j>_<i>`, its
    /// state fields), one row per group.
    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        use datafusion::arrow::array::{BinaryArray, Int64Array};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        if let Some(columns) = &self.columns {
            // The same layout from the columns: each group's result is the one it last
            // emitted (every touched group emits what changed).
            let (mut ids, mut keys, mut rows) = (vec![], vec![], vec![]);
            for (id, group) in self.groups.iter().enumerate() {
                if let Some(g) = group {
                    ids.push(id as u32);
                    keys.push(&g.key[..]);
                    rows.push(g.rows);
                }
            }
            if keys.is_empty() {
                return Ok(Some(vec![]));
            }
            let mut fields = vec![
                Field::new("key", DataType::Binary, false),
                Field::new("rows", DataType::Int64, false),
            ];
            let mut cols: Vec<ArrayRef> = vec![
                Arc::new(BinaryArray::from_iter_values(keys)),
                Arc::new(Int64Array::from(rows)),
            ];
            for j in 0..columns.len() {
                let arr = columns.evaluate(j, &ids)?;
                fields.push(Field::new(
                    format!("last{j}"),
                    arr.data_type().clone(),
                    true,
                ));
                cols.push(arr);
            }
            for (j, state) in columns.states(&ids)?.into_iter().enumerate() {
                for (i, arr) in state.into_iter().enumerate() {
                    fields.push(Field::new(
                        format!("s{j}_{i}"),
                        arr.data_type().clone(),
                        true,
                    ));
                    cols.push(arr);
                }
            }
            return Ok(Some(vec![RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                cols,
            )?]));
        }
        let mut keys: Vec<Box<[u8]>> = vec![];
        let mut rows = vec![];
        let mut lasts: Vec<Vec<ScalarValue>> = vec![vec![]; self.aggs.len()];
        let mut states: Vec<Vec<Vec<ScalarValue>>> = vec![vec![]; self.aggs.len()];
        for group in self.groups.iter_mut().flatten() {
            keys.push(group.key.clone());
            rows.push(group.rows);
            for (j, acc) in group.accs.iter_mut().enumerate() {
                let st = acc.state()?;
                // `state` may consume what it reports: carry on from a copy of it.
                let mut fresh = self.aggs[j].accumulator()?;
                let arrays = st
                    .iter()
                    .map(|v| v.to_array())
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                fresh.merge_batch(&arrays)?;
                *acc = fresh;
                let last = match &group.last {
                    Some(l) => l[j].clone(),
                    None => acc.evaluate()?,
                };
                lasts[j].push(last);
                states[j].push(st);
            }
        }
        if keys.is_empty() {
            return Ok(Some(vec![]));
        }
        let mut fields = vec![
            Field::new("key", DataType::Binary, false),
            Field::new("rows", DataType::Int64, false),
        ];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(BinaryArray::from_iter_values(keys.iter())),
            Arc::new(Int64Array::from(rows)),
        ];
        for (j, values) in lasts.into_iter().enumerate() {
            let arr = ScalarValue::iter_to_array(values)?;
            fields.push(Field::new(
                format!("last{j}"),
                arr.data_type().clone(),
                true,
            ));
            cols.push(arr);
        }
        for (j, per_group) in states.into_iter().enumerate() {
            let width = per_group.first().map_or(0, Vec::len);
            let mut by_field: Vec<Vec<ScalarValue>> = vec![vec![]; width];
            for st in per_group {
                for (i, v) in st.into_iter().enumerate() {
                    if let Some(f) = by_field.get_mut(i) {
                        f.push(v);
                    }
                }
            }
            for (i, values) in by_field.into_iter().enumerate() {
                let arr = ScalarValue::iter_to_array(values)?;
                fields.push(Field::new(
                    format!("s{j}_{i}"),
                    arr.data_type().clone(),
                    true,
                ));
                cols.push(arr);
            }
        }
        Ok(Some(vec![RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            cols,
        )?]))
    }

    /// The group keys of the batch's `key` column.
    fn state_keys(&self, batch: &RecordBatch) -> Result<Option<Vec<ArrayRef>>> {
        match &self.key_conv {
            Some(conv) => super::keys_of_rows(conv, batch, "key").map(Some),
            None => Ok(None),
        }
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Int64Type;
        let bad = |what: &str| {
            WeirError::user(format!(
                "the checkpoint's state of a group aggregate is malformed: {what}"
            ))
        };
        for b in &state {
            let keys = b
                .column_by_name("key")
                .and_then(|c| c.as_binary_opt::<i32>())
                .ok_or_else(|| bad("key"))?;
            let rows = b
                .column_by_name("rows")
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| bad("rows"))?;
            // Each aggregate's state columns, `s<j>_0`, `s<j>_1`, …
            let states: Vec<Vec<ArrayRef>> = (0..self.aggs.len())
                .map(|j| {
                    (0..)
                        .map_while(|i| b.column_by_name(&format!("s{j}_{i}")).cloned())
                        .collect()
                })
                .collect();
            for r in 0..b.num_rows() {
                let g = self.group_id(keys.value(r))?;
                let group = self.groups[g]
                    .as_mut()
                    .ok_or_else(|| WeirError::internal("group vanished"))?;
                group.rows = rows.value(r);
                if let Some(columns) = &mut self.columns {
                    for (j, cols) in states.iter().enumerate() {
                        columns.merge(j, g, cols, r)?;
                    }
                    continue;
                }
                let mut last = vec![];
                for (j, acc) in group.accs.iter_mut().enumerate() {
                    let l = b
                        .column_by_name(&format!("last{j}"))
                        .ok_or_else(|| bad("last"))?;
                    last.push(ScalarValue::try_from_array(l, r)?);
                    let mut cols = vec![];
                    let mut i = 0;
                    while let Some(c) = b.column_by_name(&format!("s{j}_{i}")) {
                        cols.push(c.slice(r, 1));
                        i += 1;
                    }
                    acc.merge_batch(&cols)?;
                }
                group.last = Some(last);
            }
        }
        Ok(())
    }

    fn name(&self) -> String {
        format!(
            "group aggregate ({} key(s), {} aggregate(s), changelog)",
            self.keys.len(),
            self.aggs.len()
        )
    }

    fn emits_changes(&self) -> bool {
        true
    }

    /// A group's first result is inserted, its later ones update it (`-U`/`+U`); a group
    /// whose rows are all taken back is deleted, which only a retracting input can cause.
    fn changelog_mode(&self, inputs: &[ChangelogMode]) -> ChangelogMode {
        use crate::changelog::RowKind::*;
        let updates = ChangelogMode::of(&[Insert, UpdateBefore, UpdateAfter]);
        if ChangelogMode::merged(inputs).retracts() {
            updates.union(ChangelogMode::of(&[Delete]))
        } else {
            updates
        }
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let (batch, kinds) = crate::changelog::split(&batch);
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        self.expire();
        let key_rows = match &self.key_conv {
            Some(c) => Some(
                c.convert_columns(
                    &self
                        .keys
                        .iter()
                        .map(|k| Ok(k.evaluate(&batch)?.into_array(n)?))
                        .collect::<Result<Vec<ArrayRef>>>()?,
                )?,
            ),
            None => None,
        };
        if self.columns.is_some() {
            return self.process_columns(&batch, kinds.as_ref(), key_rows.as_ref(), out);
        }
        // Rows per touched group, in order of first touch: (group, added rows, retracted).
        let mut touched: Vec<(usize, Vec<u32>, Vec<u32>)> = vec![];
        // Each group's place in `touched` (indexed by group, usize::MAX for none), reset
        // for the touched groups after the loop.
        let mut slot = std::mem::take(&mut self.slot_of);
        for i in 0..n {
            let key: &[u8] = match &key_rows {
                Some(r) => r.row(i).data(),
                None => &[],
            };
            let g = self.group_id(key)?;
            if slot.len() <= g {
                slot.resize(self.groups.len().max(g + 1), usize::MAX);
            }
            let s = if slot[g] == usize::MAX {
                touched.push((g, vec![], vec![]));
                slot[g] = touched.len() - 1;
                slot[g]
            } else {
                slot[g]
            };
            let adds = kinds
                .as_ref()
                .is_none_or(|k| RowKind::from_i8(k.value(i)).is_some_and(RowKind::adds));
            if adds {
                touched[s].1.push(i as u32);
            } else {
                touched[s].2.push(i as u32);
            }
        }
        for (g, _, _) in &touched {
            slot[*g] = usize::MAX;
        }
        self.slot_of = slot;
        let args = self
            .aggs
            .iter()
            .map(|a| {
                a.args
                    .iter()
                    .map(|e| Ok(e.evaluate(&batch)?.into_array(n)?))
                    .collect::<Result<Vec<ArrayRef>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let masks = self
            .aggs
            .iter()
            .map(|a| match &a.filter {
                Some(f) => {
                    let m = f.evaluate(&batch)?.into_array(n)?;
                    Ok(Some(
                        m.as_any()
                            .downcast_ref::<BooleanArray>()
                            .cloned()
                            .ok_or_else(|| WeirError::internal("FILTER is not boolean"))?,
                    ))
                }
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        // Per aggregate, its argument rows (those its FILTER keeps) gathered once, group
        // after group, adds before retractions; each group then reads zero-copy slices.
        // An aggregate of arrival order (`arrival`) gets each group's rows in the batch's
        // order instead, as runs of adds and retractions: a DISTINCT value taken back
        // and added again moves to the end, as it does row by row.
        let mut gathered: Vec<(Vec<ArrayRef>, Vec<Ranges>)> = vec![];
        for a in 0..self.aggs.len() {
            let in_order = self.aggs[a].arrival.is_some();
            let mask = masks[a].as_ref();
            let mut perm: Vec<u32> = Vec::with_capacity(n);
            let mut ranges = Vec::with_capacity(touched.len());
            for (_, adds, retracts) in &touched {
                if in_order && !adds.is_empty() && !retracts.is_empty() {
                    ranges.push(Ranges::Runs(in_row_order(&mut perm, adds, retracts, mask)));
                    continue;
                }
                let mut r = [(0, 0); 2];
                for (k, rows) in [adds, retracts].into_iter().enumerate() {
                    let start = perm.len();
                    extend_masked(&mut perm, rows, mask);
                    r[k] = (start, perm.len() - start);
                }
                ranges.push(Ranges::AddsThenRetractions(r));
            }
            let idx = UInt32Array::from(perm);
            let values = args[a]
                .iter()
                .map(|c| take(c.as_ref(), &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            gathered.push((values, ranges));
        }
        // Emitted rows: their group's key (`Key::Group` while the group lives, so it is not
        // copied), values and kind.
        let mut emitted: Vec<(Key, Vec<ScalarValue>, RowKind)> = vec![];
        let mut part: Vec<ArrayRef> = vec![];
        // Groups emit in the order of their last row in the batch: where Flink, row by
        // row, emits a group's final result of the batch (at that row), so an aggregate
        // of arrival order downstream (LISTAGG, LAST_VALUE over this changelog) gives
        // Flink's answer whatever the batch size.
        let mut order: Vec<usize> = (0..touched.len()).collect();
        if touched.len() > 1 {
            let last = |(_, adds, retracts): &(usize, Vec<u32>, Vec<u32>)| {
                adds.last().max(retracts.last()).copied().unwrap_or(0)
            };
            order.sort_unstable_by_key(|s| last(&touched[*s]));
        }
        for slot in order {
            let (g, adds, retracts) = (
                touched[slot].0,
                std::mem::take(&mut touched[slot].1),
                std::mem::take(&mut touched[slot].2),
            );
            let Some(group) = self.groups[g].as_mut() else {
                return Err(WeirError::internal("group vanished"));
            };
            group.touched = std::time::Instant::now();
            if group.rows == 0 && adds.is_empty() {
                // Retractions for a group with no rows (its state expired with
                // `table.exec.state.ttl`): ignored, as Flink's GroupAggFunction ignores a
                // retraction with no accumulator (an accumulator would go below empty).
                let key = group.key.clone();
                self.groups[g] = None;
                self.index.remove(&key);
                self.free.push(g);
                continue;
            }
            for (a, acc) in group.accs.iter_mut().enumerate() {
                let (values, ranges) = &gathered[a];
                let runs = match &ranges[slot] {
                    Ranges::AddsThenRetractions([adds, retracts]) => {
                        &[(adds.0, adds.1, false), (retracts.0, retracts.1, true)][..]
                    }
                    Ranges::Runs(runs) => &runs[..],
                };
                for (start, len, retract) in runs {
                    if *len == 0 {
                        continue;
                    }
                    part.clear();
                    part.extend(values.iter().map(|v| v.slice(*start, *len)));
                    if *retract {
                        acc.retract_batch(&part)?;
                    } else {
                        acc.update_batch(&part)?;
                    }
                }
            }
            group.rows += adds.len() as i64 - retracts.len() as i64;
            if group.rows <= 0 {
                // Every row of the group was retracted: the group is gone.
                if let Some(last) = group.last.take() {
                    emitted.push((Key::Owned(group.key.clone()), last, RowKind::Delete));
                }
                let key = group.key.clone();
                self.groups[g] = None;
                self.index.remove(&key);
                self.free.push(g);
                continue;
            }
            let now = group
                .accs
                .iter_mut()
                .map(|a| Ok(a.evaluate()?))
                .collect::<Result<Vec<_>>>()?;
            match group.last.take() {
                None => emitted.push((Key::Group(g), now.clone(), RowKind::Insert)),
                Some(old) if old == now => {
                    group.last = Some(old);
                    continue;
                }
                Some(old) => {
                    emitted.push((Key::Group(g), old, RowKind::UpdateBefore));
                    emitted.push((Key::Group(g), now.clone(), RowKind::UpdateAfter));
                }
            }
            group.last = Some(now);
        }
        if emitted.is_empty() {
            return Ok(());
        }
        let values = (0..self.aggs.len())
            .map(|a| {
                // Moved out, not cloned: the values are not needed after this.
                ScalarValue::iter_to_array(
                    emitted
                        .iter_mut()
                        .map(|(_, v, _)| std::mem::replace(&mut v[a], ScalarValue::Null)),
                )
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut keys: Vec<&[u8]> = Vec::with_capacity(emitted.len());
        for (k, _, _) in &emitted {
            keys.push(match k {
                Key::Owned(k) => k,
                Key::Group(g) => match self.groups.get(*g) {
                    Some(Some(group)) => &group.key,
                    _ => return Err(WeirError::internal("emitted group vanished")),
                },
            });
        }
        let kinds = Int8Array::from_iter_values(emitted.iter().map(|(_, _, k)| *k as i8));
        self.send(keys, values, kinds, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::functions_aggregate::{average, count, min_max, sum};
    use datafusion::logical_expr::{AggregateUDF, Operator as BinaryOp};
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::{Column, binary, cast, lit};

    /// (k STRING, v BIGINT, s STRING, t TIMESTAMP_LTZ(3)), each but k with NULLs.
    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Millisecond, Some("+01:00".into())),
                true,
            ),
        ]))
    }

    /// `SELECT k, COUNT(*), COUNT(s) FILTER (WHERE v > 50), COUNT(DISTINCT v),
    /// COUNT(DISTINCT v) FILTER (WHERE v > 50), SUM(v), AVG(v), MIN(t), MAX(s) FILTER (WHERE
    /// v > 50), COUNT(NULL) … GROUP BY k`, its state in columns or in accumulators.
    fn operator(columns: bool) -> GroupAggregateOperator {
        let schema = input();
        let column = |name: &str| -> Arc<dyn PhysicalExpr> {
            Arc::new(Column::new_with_schema(name, &schema).expect("column"))
        };
        let big = binary(column("v"), BinaryOp::Gt, lit(50i64), &schema).expect("filter");
        let avg_arg = cast(column("v"), &schema, DataType::Float64).expect("cast");
        // (function, argument, DISTINCT, FILTER (WHERE v > 50))
        type Spec = (Arc<AggregateUDF>, Arc<dyn PhysicalExpr>, bool, bool);
        let specs: Vec<Spec> = vec![
            (count::count_udaf(), lit(1i64), false, false),
            (count::count_udaf(), column("s"), false, true),
            (count::count_udaf(), column("v"), true, false),
            (count::count_udaf(), column("v"), true, true),
            (sum::sum_udaf(), column("v"), false, false),
            (average::avg_udaf(), avg_arg, false, false),
            (min_max::min_udaf(), column("t"), false, false),
            (min_max::max_udaf(), column("s"), false, true),
            // COUNT(NULL): a NULL-typed argument has no null buffer, and counts nothing.
            (count::count_udaf(), lit(ScalarValue::Null), false, false),
        ];
        let mut fields = vec![Field::new("k", DataType::Utf8, false)];
        let mut calls = vec![];
        for (j, (udaf, arg, distinct, filtered)) in specs.into_iter().enumerate() {
            let expr = AggregateExprBuilder::new(udaf, vec![arg.clone()])
                .schema(schema.clone())
                .alias(format!("a{j}"))
                .with_distinct(distinct)
                .build()
                .expect("aggregate");
            fields.push(expr.field().as_ref().clone());
            calls.push(AggCall {
                expr: Arc::new(expr),
                args: vec![arg],
                filter: filtered.then(|| big.clone()),
                sliding: false,
                distinct_retract: None,
                arrival: None,
            });
        }
        GroupAggregateOperator::new(
            vec![column("k")],
            &schema,
            calls,
            Arc::new(Schema::new(fields)),
        )
        .expect("operator")
        .vectorised(columns, &schema)
    }

    /// 40 rows starting at row `from`, over 5 keys, with NULLs now and then.
    fn batch(from: u64) -> RecordBatch {
        let mut x = from.wrapping_mul(2654435761).wrapping_add(7);
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let (mut k, mut v, mut s, mut t) = (vec![], vec![], vec![], vec![]);
        for _ in 0..40 {
            let r = next();
            k.push(format!("k{}", r % 5));
            v.push((r % 11 != 0).then_some((r % 97) as i64));
            s.push((r % 7 != 0).then(|| format!("s{}", r % 23)));
            t.push((r % 13 != 0).then_some((r % 1000) as i64 * 1000));
        }
        RecordBatch::try_new(
            input(),
            vec![
                Arc::new(StringArray::from(k)),
                Arc::new(Int64Array::from(v)),
                Arc::new(StringArray::from(s)),
                Arc::new(TimestampMillisecondArray::from(t).with_timezone("+01:00")),
            ],
        )
        .expect("batch")
    }

    fn feed(op: &mut GroupAggregateOperator, batches: std::ops::Range<u64>) -> Vec<RecordBatch> {
        let mut out = vec![];
        for b in batches {
            op.process_batch(batch(b * 40), &mut out).expect("process");
        }
        out.into_iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    fn text(batches: &[RecordBatch]) -> String {
        datafusion::arrow::util::pretty::pretty_format_batches(batches)
            .expect("format")
            .to_string()
    }

    /// Both forms give the same changelog, and a checkpoint of either restores into the
    /// other: stopped after three batches and resumed in the other form, the changelog is
    /// the straight run's.
    #[test]
    fn columns_and_accumulators_agree_and_restore_each_other() {
        assert!(operator(true).columns.is_some());
        assert!(operator(false).columns.is_none());
        let straight = feed(&mut operator(false), 0..6);
        // Five groups, updated: more rows than groups.
        assert!(straight.iter().map(RecordBatch::num_rows).sum::<usize>() > 20);
        let straight = text(&straight);
        let in_columns = feed(&mut operator(true), 0..6);
        for b in &in_columns {
            let nulls = b.column_by_name("a8").expect("COUNT(NULL)");
            let nulls = nulls.as_any().downcast_ref::<Int64Array>().expect("BIGINT");
            assert!(nulls.values().iter().all(|c| *c == 0), "{nulls:?}");
        }
        assert_eq!(text(&in_columns), straight);
        for (first, then) in [(false, true), (true, false)] {
            let mut a = operator(first);
            let mut out = feed(&mut a, 0..3);
            let state = a.snapshot().expect("snapshot").expect("state");
            let mut b = operator(then);
            b.restore(state).expect("restore");
            out.extend(feed(&mut b, 3..6));
            assert_eq!(text(&out), straight, "columns {first} then {then}");
        }
    }

    /// A checkpoint whose state has other types (the table's column changed type since)
    /// is refused with both types, not converted.
    #[test]
    fn a_state_of_another_type_is_refused() {
        let mut a = operator(true);
        feed(&mut a, 0..2);
        let mut state = a.snapshot().expect("snapshot").expect("state");
        let b = state.pop().expect("a batch");
        let (schema, mut cols, _) = b.into_parts();
        let at = schema.index_of("s4_0").expect("the sum's state");
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        cols[at] = datafusion::arrow::compute::cast(&cols[at], &DataType::Float64).expect("cast");
        fields[at] = Field::new("s4_0", DataType::Float64, true);
        let changed =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("changed state");
        let err = operator(true)
            .restore(vec![changed])
            .expect_err("refused")
            .to_string();
        assert!(err.contains("Float64") && err.contains("Int64"), "{err}");
    }
}
