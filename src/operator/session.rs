//! SESSION windows: per key, rows at most the gap apart form one session `[first row,
//! last row + gap)`, which fires when the watermark reaches its last millisecond.
//!
//! As in Flink, each row opens the window `[t, t + gap)` and windows that overlap *or
//! touch* merge (Flink's `TimeWindow.intersects`: `start <= other.end && end >=
//! other.start`), so two rows exactly one gap apart are one session. A row whose own window
//! has fired and that touches no open session is late.
//!
//! Sessions merge as rows arrive (a row can bridge two sessions), so each session keeps its
//! own partial aggregate ([`Accumulator`]s, which can merge another session's state). A batch
//! is handled in two passes: first every row is assigned to a session, merging sessions
//! where it bridges them; then each touched session takes its rows in one `update_batch`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, UInt32Array};
use datafusion::arrow::compute::{cast, filter, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::job::{Message, TaskMetrics};
use crate::operator::Operator;
use crate::operator::window::{Aggregates, OutCol};
use crate::source::watermark::to_epoch_millis;

struct Slot {
    key: usize,
    start: i64,
    end: i64,
    accs: Option<Vec<Box<dyn Accumulator>>>,
}

pub struct SessionAggregateOperator {
    gap: i64,
    time_col: usize,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    converter: Option<RowConverter>,
    /// Keys with open sessions, by their encoded row; a key's id indexes `key_rows` and
    /// `sessions`. A key whose last session fired is forgotten (its row dropped) and its
    /// id reused: the map holds the keys with open sessions, and the two vectors stay at
    /// the most keys ever open at once, not every key ever seen.
    key_ids: HashMap<OwnedRow, usize>,
    key_rows: Vec<Option<OwnedRow>>,
    /// Ids of forgotten keys, to reuse.
    free_ids: Vec<usize>,
    /// Open sessions (slot ids) per key id.
    sessions: Vec<Vec<u64>>,
    slots: HashMap<u64, Slot>,
    next_slot: u64,
    /// (end, slot) of every open session, to fire in order.
    by_end: BTreeSet<(i64, u64)>,
    aggs: Aggregates,
    layout: Vec<OutCol>,
    schema: SchemaRef,
    watermark: i64,
    metrics: Option<TaskMetrics>,
    /// Its aggregates collect the sessions' rows (a SESSION window without an aggregate):
    /// only its name differs.
    collects_rows: bool,
}

impl SessionAggregateOperator {
    /// Marks the operator as collecting each session's rows (`ARRAY_AGG` of every column,
    /// unnested after it), for [`Operator::name`].
    pub fn collecting_rows(mut self) -> Self {
        self.collects_rows = true;
        self
    }

    /// Puts back one batch of saved sessions (see [`Operator::snapshot`]).
    fn restore_batch(&mut self, b: RecordBatch) -> Result<()> {
        use datafusion::arrow::array::Int64Array;
        let bad = |m: &str| WeirError::internal(format!("session state does not fit: {m}"));
        self.watermark = b
            .schema()
            .metadata()
            .get("weir.watermark")
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| bad("no watermark"))?;
        let nkeys = if self.converter.is_some() {
            self.keys.len()
        } else {
            0
        };
        let key_cols = b.columns()[..nkeys].to_vec();
        let col_i64 = |i: usize| {
            b.column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .ok_or_else(|| bad("start/end"))
        };
        let starts = col_i64(nkeys)?;
        let ends = col_i64(nkeys + 1)?;
        let converted = match &self.converter {
            Some(conv) => Some(conv.convert_columns(&key_cols)?),
            None => None,
        };
        for r in 0..b.num_rows() {
            let k = match &converted {
                Some(rows) => self.intern(rows.row(r).owned()),
                None => {
                    if self.sessions.is_empty() {
                        self.sessions.push(vec![]);
                        self.key_rows.push(None);
                    }
                    0
                }
            };
            let mut at = nkeys + 2;
            let mut accs = vec![];
            for e in &self.aggs.exprs {
                let w = e.state_fields()?.len();
                let cols: Vec<ArrayRef> = b.columns()[at..at + w]
                    .iter()
                    .map(|c| c.slice(r, 1))
                    .collect();
                at += w;
                let mut a = e.create_accumulator()?;
                a.merge_batch(&cols)?;
                accs.push(a);
            }
            let id = self.next_slot;
            self.next_slot += 1;
            let (start, end) = (starts.value(r), ends.value(r));
            self.slots.insert(
                id,
                Slot {
                    key: k,
                    start,
                    end,
                    accs: Some(accs),
                },
            );
            self.by_end.insert((end, id));
            self.sessions[k].push(id);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gap: i64,
        time_col: usize,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        key_schema: SchemaRef,
        aggs: Aggregates,
        layout: Vec<OutCol>,
        schema: SchemaRef,
    ) -> Result<Self> {
        // Errors: a key type the row format cannot encode (it used to fall back to one
        // key for every row — wrong results without a word).
        let converter = if key_schema.fields().is_empty() {
            None
        } else {
            Some(RowConverter::new(
                key_schema
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?)
        };
        Ok(SessionAggregateOperator {
            gap,
            time_col,
            keys,
            converter,
            key_ids: HashMap::new(),
            key_rows: vec![],
            free_ids: vec![],
            sessions: vec![],
            slots: HashMap::new(),
            next_slot: 0,
            by_end: BTreeSet::new(),
            aggs,
            layout,
            schema,
            watermark: i64::MIN,
            metrics: None,
            collects_rows: false,
        })
    }

    /// The id of key `row`, given one (a forgotten key's, or a new one) if it has none.
    fn intern(&mut self, row: OwnedRow) -> usize {
        if let Some(id) = self.key_ids.get(&row) {
            return *id;
        }
        let id = match self.free_ids.pop() {
            Some(id) => {
                self.key_rows[id] = Some(row.clone());
                id
            }
            None => {
                self.key_rows.push(Some(row.clone()));
                self.sessions.push(vec![]);
                self.key_rows.len() - 1
            }
        };
        self.key_ids.insert(row, id);
        id
    }

    /// Forgets key `k` if it has no open session left (its id goes to reuse). The one
    /// key of a session window without PARTITION BY stays.
    fn release_if_idle(&mut self, k: usize) {
        if self.converter.is_none() || !self.sessions.get(k).is_some_and(|s| s.is_empty()) {
            return;
        }
        if let Some(row) = self.key_rows.get_mut(k).and_then(Option::take) {
            self.key_ids.remove(&row);
            self.free_ids.push(k);
        }
    }

    fn count_late(&self, n: usize) {
        if let Some(j) = &self.metrics {
            j.add_late(n as u64);
        }
    }

    fn new_accs(&self) -> Result<Vec<Box<dyn Accumulator>>> {
        self.aggs
            .exprs
            .iter()
            .map(|e| Ok(e.create_accumulator()?))
            .collect()
    }

    /// Key ids of the batch's rows.
    fn key_ids(&mut self, batch: &RecordBatch) -> Result<Vec<usize>> {
        let rows = batch.num_rows();
        let Some(conv) = &self.converter else {
            if self.sessions.is_empty() {
                self.sessions.push(vec![]);
                self.key_rows.push(None);
            }
            return Ok(vec![0; rows]);
        };
        let cols = self
            .keys
            .iter()
            .map(|k| Ok(k.evaluate(batch)?.into_array(rows)?))
            .collect::<Result<Vec<_>>>()?;
        let converted = conv.convert_columns(&cols)?;
        let mut ids = Vec::with_capacity(rows);
        for r in converted.iter() {
            ids.push(self.intern(r.owned()));
        }
        Ok(ids)
    }

    fn fire_until(&mut self, wm: i64, out: &mut Vec<Message>) -> Result<()> {
        let wm = super::fired_through(wm);
        let mut fired = vec![];
        while let Some(&(end, slot)) = self.by_end.first() {
            if end > wm {
                break;
            }
            self.by_end.pop_first();
            if let Some(s) = self.slots.remove(&slot) {
                if let Some(list) = self.sessions.get_mut(s.key) {
                    list.retain(|x| *x != slot);
                }
                fired.push(s);
            }
        }
        if fired.is_empty() {
            return Ok(());
        }
        let n = fired.len();
        let key_cols = match &self.converter {
            Some(conv) => {
                let rows: Vec<_> = fired
                    .iter()
                    .filter_map(|s| self.key_rows.get(s.key).and_then(|r| r.clone()))
                    .collect();
                conv.convert_rows(rows.iter().map(|r| r.row()))?
            }
            None => vec![],
        };
        for s in &fired {
            self.release_if_idle(s.key);
        }
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(n); self.aggs.exprs.len()];
        for s in &mut fired {
            match &mut s.accs {
                Some(accs) => {
                    for (j, a) in accs.iter_mut().enumerate() {
                        values[j].push(a.evaluate()?);
                    }
                }
                None => {
                    for (j, a) in self.new_accs()?.iter_mut().enumerate() {
                        values[j].push(a.evaluate()?);
                    }
                }
            }
        }
        let mut cols = Vec::with_capacity(self.layout.len());
        for (i, c) in self.layout.iter().enumerate() {
            let dt = self.schema.field(i).data_type();
            let a: ArrayRef = match c {
                OutCol::Key(k) => key_cols
                    .get(*k)
                    .cloned()
                    .ok_or_else(|| WeirError::internal("session key missing"))?,
                OutCol::WindowStart => ts_array(fired.iter().map(|s| s.start), dt)?,
                OutCol::WindowEnd => ts_array(fired.iter().map(|s| s.end), dt)?,
                OutCol::WindowTime => ts_array(fired.iter().map(|s| s.end - 1), dt)?,
                OutCol::Agg(j) => ScalarValue::iter_to_array(std::mem::take(&mut values[*j]))?,
            };
            cols.push(if a.data_type() == dt {
                a
            } else {
                cast(&a, dt)?
            });
        }
        out.push(Message::Batch(RecordBatch::try_new(
            self.schema.clone(),
            cols,
        )?));
        Ok(())
    }
}

fn ts_array(ms: impl Iterator<Item = i64>, dt: &DataType) -> Result<ArrayRef> {
    let a: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from_iter_values(ms));
    let tz = match dt {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let a = cast(&a, &DataType::Timestamp(TimeUnit::Millisecond, tz))?;
    Ok(if a.data_type() == dt {
        a
    } else {
        cast(&a, dt)?
    })
}

impl Operator for SessionAggregateOperator {
    fn order_insensitive(&self) -> bool {
        self.aggs.exprs.iter().all(|e| super::commutative(e))
    }

    fn distribution(&self) -> super::Distribution {
        if self.keys.is_empty() {
            super::Distribution::Single
        } else {
            super::Distribution::Hash(vec![self.keys.clone()])
        }
    }

    fn signature(&self) -> String {
        format!("{} [{}]", self.name(), self.aggs.signature())
    }

    fn name(&self) -> String {
        if self.collects_rows {
            return format!("session window rows ({} key(s))", self.keys.len());
        }
        format!(
            "session window aggregate ({} key(s), {} aggregate(s))",
            self.keys.len(),
            self.aggs.exprs.len()
        )
    }

    fn attach(&mut self, metrics: &TaskMetrics) {
        self.metrics = Some(metrics.clone());
    }

    /// Open sessions, and the bytes of their accumulators and of the key index: measured
    /// over the first 1 000 of each and scaled (it is called a few times a second).
    fn state_size(&self) -> Option<(u64, u64)> {
        fn scaled(total: usize, sample: impl Iterator<Item = usize>) -> u64 {
            let (mut n, mut bytes) = (0u64, 0u64);
            for b in sample.take(1000) {
                n += 1;
                bytes += b as u64;
            }
            bytes.checked_div(n).unwrap_or(0) * total as u64
        }
        let accs = scaled(
            self.slots.len(),
            self.slots
                .values()
                .map(|s| s.accs.iter().flatten().map(|a| a.size()).sum::<usize>()),
        );
        let keys = scaled(
            self.key_ids.len(),
            self.key_ids.keys().map(|k| 2 * k.as_ref().as_ref().len()),
        );
        Some((self.slots.len() as u64, accs + keys))
    }

    /// One batch: a row per open session — its key columns `k0..`, `start`, `end`, then each
    /// accumulator's state columns `a<j>_<i>` — with the watermark in the schema metadata.
    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{Field, Schema};
        use datafusion::arrow::record_batch::RecordBatchOptions;
        let ids: Vec<u64> = self.by_end.iter().map(|(_, id)| *id).collect();
        let mut keys = vec![];
        let (mut starts, mut ends) = (vec![], vec![]);
        let mut states: Vec<Vec<Vec<ScalarValue>>> = vec![];
        for id in &ids {
            let Some(slot) = self.slots.get_mut(id) else {
                continue;
            };
            if slot.accs.is_none() {
                slot.accs = Some(
                    self.aggs
                        .exprs
                        .iter()
                        .map(|e| Ok(e.create_accumulator()?))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
            let Some(accs) = slot.accs.as_mut() else {
                continue;
            };
            let mut per_acc = vec![];
            for a in accs.iter_mut() {
                let st = a.state()?;
                // Reading a state may consume it: put it back.
                let arrays = st
                    .iter()
                    .map(|v| v.to_array())
                    .collect::<datafusion::error::Result<Vec<_>>>()?;
                per_acc.push(st);
                *a = {
                    let mut fresh = self.aggs.exprs[per_acc.len() - 1].create_accumulator()?;
                    fresh.merge_batch(&arrays)?;
                    fresh
                };
            }
            states.push(per_acc);
            starts.push(slot.start);
            ends.push(slot.end);
            keys.push(slot.key);
        }
        let n = starts.len();
        let mut fields = vec![];
        let mut cols: Vec<ArrayRef> = vec![];
        if let Some(conv) = &self.converter {
            let rows: Vec<_> = keys
                .iter()
                .filter_map(|k| self.key_rows.get(*k).and_then(|r| r.clone()))
                .collect();
            for (i, c) in conv
                .convert_rows(rows.iter().map(|r| r.row()))?
                .into_iter()
                .enumerate()
            {
                fields.push(Field::new(format!("k{i}"), c.data_type().clone(), true));
                cols.push(c);
            }
        }
        fields.push(Field::new("start", DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from(starts)));
        fields.push(Field::new("end", DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from(ends)));
        for (j, e) in self.aggs.exprs.iter().enumerate() {
            for i in 0..e.state_fields()?.len() {
                let values: Vec<ScalarValue> = states.iter().map(|s| s[j][i].clone()).collect();
                let a = if values.is_empty() {
                    datafusion::arrow::array::new_empty_array(e.state_fields()?[i].data_type())
                } else {
                    ScalarValue::iter_to_array(values)?
                };
                fields.push(Field::new(format!("a{j}_{i}"), a.data_type().clone(), true));
                cols.push(a);
            }
        }
        let schema = Schema::new(fields).with_metadata(
            [("weir.watermark".to_string(), self.watermark.to_string())]
                .into_iter()
                .collect(),
        );
        Ok(Some(vec![RecordBatch::try_new_with_options(
            Arc::new(schema),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?]))
    }

    /// The key columns `k0..` of the open sessions.
    fn state_keys(&self, batch: &RecordBatch) -> Result<Option<Vec<ArrayRef>>> {
        if self.converter.is_none() || batch.num_columns() < self.keys.len() {
            return Ok(None);
        }
        Ok(Some(batch.columns()[..self.keys.len()].to_vec()))
    }

    /// Puts back one batch of [`Operator::snapshot`], or several after a change of
    /// parallelism (one per old subtask, their keys disjoint).
    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        for b in state {
            self.restore_batch(b)?;
        }
        Ok(())
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let ts = to_epoch_millis(batch.column(self.time_col).as_ref())?;
        let kids = self.key_ids(&batch)?;
        let (args, filters) = self.aggs.evaluate(&batch)?;
        // Pass 1: a session per row, merging the sessions a row bridges.
        let mut row_slot: Vec<Option<u64>> = vec![None; rows];
        let mut merged_into: HashMap<u64, u64> = HashMap::new();
        let mut late = 0;
        for i in 0..rows {
            if datafusion::arrow::array::Array::is_null(&ts, i) {
                late += 1;
                continue;
            }
            let t = ts.value(i);
            let (lo, hi) = (t, t.saturating_add(self.gap));
            let k = kids[i];
            let touching: Vec<u64> = self.sessions[k]
                .iter()
                .copied()
                .filter(|s| {
                    self.slots
                        .get(s)
                        .is_some_and(|x| x.start <= hi && x.end >= lo)
                })
                .collect();
            if touching.is_empty() {
                if hi <= super::fired_through(self.watermark) {
                    late += 1;
                    continue;
                }
                let id = self.next_slot;
                self.next_slot += 1;
                self.slots.insert(
                    id,
                    Slot {
                        key: k,
                        start: lo,
                        end: hi,
                        accs: None,
                    },
                );
                self.by_end.insert((hi, id));
                self.sessions[k].push(id);
                row_slot[i] = Some(id);
                continue;
            }
            let root = touching[0];
            let (mut start, mut end) = (lo, hi);
            for s in &touching {
                if let Some(x) = self.slots.get(s) {
                    start = start.min(x.start);
                    end = end.max(x.end);
                }
            }
            for s in &touching[1..] {
                merged_into.insert(*s, root);
                self.sessions[k].retain(|x| x != s);
                if let Some(x) = self.slots.get(s) {
                    self.by_end.remove(&(x.end, *s));
                }
            }
            if let Some(r) = self.slots.get_mut(&root) {
                self.by_end.remove(&(r.end, root));
                r.start = start;
                r.end = end;
                self.by_end.insert((end, root));
            }
            row_slot[i] = Some(root);
        }
        if late > 0 {
            self.count_late(late);
        }
        let find = |mut s: u64| {
            while let Some(n) = merged_into.get(&s) {
                s = *n;
            }
            s
        };
        // Pass 2a: fold merged sessions' states into their roots.
        let mut merges: Vec<(u64, u64)> = merged_into.keys().map(|s| (*s, find(*s))).collect();
        merges.sort_unstable();
        for (from, into) in merges {
            let Some(src) = self.slots.remove(&from) else {
                continue;
            };
            let Some(mut src_accs) = src.accs else {
                continue;
            };
            let Some(dst) = self.slots.get_mut(&into) else {
                continue;
            };
            match &mut dst.accs {
                None => dst.accs = Some(src_accs),
                Some(d) => {
                    for (a, b) in d.iter_mut().zip(src_accs.iter_mut()) {
                        let st = b
                            .state()?
                            .into_iter()
                            .map(|v| v.to_array())
                            .collect::<datafusion::error::Result<Vec<_>>>()?;
                        a.merge_batch(&st)?;
                    }
                }
            }
        }
        // Pass 2b: each session takes its rows.
        // Sessions in the order of their first row; an index finds a session's entry (a
        // linear search was quadratic in a batch of many keys).
        let mut by_root: Vec<(u64, Vec<u32>)> = vec![];
        let mut root_at: HashMap<u64, usize> = HashMap::new();
        for (i, s) in row_slot.iter().enumerate() {
            let Some(s) = s else { continue };
            let r = find(*s);
            match root_at.get(&r) {
                Some(&at) => by_root[at].1.push(i as u32),
                None => {
                    root_at.insert(r, by_root.len());
                    by_root.push((r, vec![i as u32]));
                }
            }
        }
        for (root, idx) in by_root {
            let indices = UInt32Array::from(idx);
            if self.slots.get(&root).is_some_and(|s| s.accs.is_none()) {
                let accs = self.new_accs()?;
                if let Some(s) = self.slots.get_mut(&root) {
                    s.accs = Some(accs);
                }
            }
            let Some(Some(accs)) = self.slots.get_mut(&root).map(|s| s.accs.as_mut()) else {
                continue;
            };
            for (j, acc) in accs.iter_mut().enumerate() {
                let mut a = args[j]
                    .iter()
                    .map(|c| Ok(take(c.as_ref(), &indices, None)?))
                    .collect::<Result<Vec<_>>>()?;
                if let Some(f) = &filters[j] {
                    let f = take(f.as_ref(), &indices, None)?;
                    if let Some(mask) = f.as_any().downcast_ref::<BooleanArray>() {
                        a = a
                            .iter()
                            .map(|c| Ok(filter(c.as_ref(), mask)?))
                            .collect::<Result<Vec<_>>>()?;
                    }
                }
                acc.update_batch(&a)?;
            }
        }
        // Keys whose rows were all late opened no session.
        for k in kids {
            self.release_if_idle(k);
        }
        Ok(())
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        self.fire_until(watermark, out)?;
        out.push(Message::Watermark(watermark));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::col;

    fn operator() -> (SessionAggregateOperator, SchemaRef) {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let input = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("a", DataType::Int64, true),
            Field::new("ts", ts.clone(), false),
        ]));
        let a = col("a", &input).expect("a");
        let count = AggregateExprBuilder::new(count_udaf(), vec![a.clone()])
            .schema(input.clone())
            .alias("c")
            .build()
            .expect("count");
        let sum = AggregateExprBuilder::new(sum_udaf(), vec![a.clone()])
            .schema(input.clone())
            .alias("s")
            .build()
            .expect("sum");
        let out = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("c", DataType::Int64, false),
            Field::new("s", DataType::Int64, true),
        ]));
        let op = SessionAggregateOperator::new(
            5_000,
            2,
            vec![col("name", &input).expect("name")],
            Arc::new(Schema::new(vec![Field::new("k0", DataType::Utf8, true)])),
            Aggregates {
                exprs: vec![Arc::new(count), Arc::new(sum)],
                args: vec![vec![a.clone()], vec![a]],
                filters: vec![None, None],
            },
            vec![
                OutCol::Key(0),
                OutCol::WindowStart,
                OutCol::WindowEnd,
                OutCol::Agg(0),
                OutCol::Agg(1),
            ],
            out,
        )
        .expect("operator");
        (op, input)
    }

    const ROWS: &[(i64, i64, Option<&str>)] = &[
        (1, 1, Some("a")),
        (2, 2, Some("a")),
        (7, 3, Some("b")),
        (6, 6, Some("b")),
        (8, 3, Some("a")),
        (16, 4, Some("b")),
        (32, 7, None),
        (34, 1, Some("b")),
        (40, 10, Some("a")),
        (42, 11, Some("d")),
        (44, 13, Some("d")),
    ];

    fn feed(
        op: &mut SessionAggregateOperator,
        input: &SchemaRef,
        rows: &[(i64, i64, Option<&str>)],
        wm: &mut i64,
        out: &mut Vec<Message>,
    ) {
        for (t, a, name) in rows {
            let b = RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(StringArray::from(vec![*name])),
                    Arc::new(Int64Array::from(vec![*a])),
                    Arc::new(TimestampMillisecondArray::from(vec![t * 1000])),
                ],
            )
            .expect("batch");
            op.process_batch(b, out).expect("batch in");
            *wm = (*wm).max(t * 1000 - 1000);
            op.process_watermark(*wm, out).expect("watermark");
        }
    }

    fn text(out: &[Message]) -> Vec<String> {
        let mut v = vec![];
        for m in out {
            if let Message::Batch(b) = m {
                let s =
                    datafusion::arrow::util::pretty::pretty_format_batches(std::slice::from_ref(b))
                        .expect("format")
                        .to_string();
                v.extend(
                    s.lines()
                        .filter(|l| l.starts_with("| ") && !l.contains("window_start"))
                        .map(String::from),
                );
            }
        }
        v.sort();
        v
    }

    /// A key is forgotten once its last session fires: a million keys, each seen once, a
    /// millisecond apart, keep only the keys of the last few seconds (the gap is 5 s) in
    /// the index — it held every key ever seen before — and every row is counted once.
    #[test]
    fn a_million_keys_keep_only_the_open_ones() {
        let (mut op, input) = operator();
        let mut out = vec![];
        let (n, per_batch) = (1_000_000i64, 10_000i64);
        let mut most_keys = 0;
        for b in 0..n / per_batch {
            let range = b * per_batch..(b + 1) * per_batch;
            let names: Vec<String> = range.clone().map(|i| format!("k{i}")).collect();
            let batch = RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(Int64Array::from_iter_values(range.clone().map(|_| 1))),
                    Arc::new(TimestampMillisecondArray::from_iter_values(range.clone())),
                ],
            )
            .expect("batch");
            op.process_batch(batch, &mut out).expect("batch in");
            op.process_watermark(range.end - 1_000, &mut out)
                .expect("watermark");
            most_keys = most_keys.max(op.key_ids.len());
        }
        assert!(most_keys <= 16_000, "{most_keys} keys held at once");
        assert!(
            op.key_rows.len() <= 16_000,
            "{} key slots",
            op.key_rows.len()
        );
        op.process_watermark(i64::MAX, &mut out).expect("end");
        assert!(op.key_ids.is_empty() && op.slots.is_empty());
        let counted: i64 = out
            .iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(b),
                _ => None,
            })
            .map(|b| {
                let c = b
                    .column(3)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("c");
                c.iter().flatten().sum::<i64>()
            })
            .sum();
        assert_eq!(counted, n);
    }

    #[test]
    fn open_sessions_survive_a_snapshot() {
        let (mut whole, input) = operator();
        let (mut wm, mut expected) = (i64::MIN, vec![]);
        feed(&mut whole, &input, ROWS, &mut wm, &mut expected);
        whole
            .process_watermark(i64::MAX, &mut expected)
            .expect("end");

        let (mut first, _) = operator();
        let (mut wm, mut got) = (i64::MIN, vec![]);
        feed(&mut first, &input, &ROWS[..8], &mut wm, &mut got);
        let state = first.snapshot().expect("snapshot").expect("state");
        let (mut second, _) = operator();
        second.restore(state).expect("restore");
        feed(&mut second, &input, &ROWS[8..], &mut wm, &mut got);
        second.process_watermark(i64::MAX, &mut got).expect("end");
        assert_eq!(text(&got), text(&expected));
        assert_eq!(text(&expected).len(), 8);
    }
}
