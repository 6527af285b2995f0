//! SESSION windows: per key, rows closer than the gap form one session, which fires when
//! the watermark passes its last row's time plus the gap.
//!
//! Sessions merge as rows arrive (a row can bridge two sessions), so each session keeps its
//! own partial aggregate ([`Accumulator`]s, which can merge another session's state). A batch
//! is handled in two passes: first every row is assigned to a session, merging sessions
//! where it bridges them; then each touched session takes its rows in one `update_batch`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::{ArrayRef, BooleanArray, UInt32Array};
use datafusion::arrow::compute::{cast, filter, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::job::{JobMetrics, Message};
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
    key_ids: HashMap<OwnedRow, usize>,
    key_rows: Vec<Option<OwnedRow>>,
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
    job: Option<Arc<JobMetrics>>,
}

impl SessionAggregateOperator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gap: i64,
        time_col: usize,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        key_schema: SchemaRef,
        aggs: Aggregates,
        layout: Vec<OutCol>,
        schema: SchemaRef,
    ) -> Self {
        let converter = if key_schema.fields().is_empty() {
            None
        } else {
            RowConverter::new(
                key_schema
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )
            .ok()
        };
        SessionAggregateOperator {
            gap,
            time_col,
            keys,
            converter,
            key_ids: HashMap::new(),
            key_rows: vec![],
            sessions: vec![],
            slots: HashMap::new(),
            next_slot: 0,
            by_end: BTreeSet::new(),
            aggs,
            layout,
            schema,
            watermark: i64::MIN,
            job: None,
        }
    }

    fn count_late(&self, n: usize) {
        if let Some(j) = &self.job {
            j.late_rows.fetch_add(n as u64, Ordering::Relaxed);
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
            let id = match self.key_ids.get(&r.owned()) {
                Some(id) => *id,
                None => {
                    let id = self.sessions.len();
                    self.key_ids.insert(r.owned(), id);
                    self.key_rows.push(Some(r.owned()));
                    self.sessions.push(vec![]);
                    id
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }

    fn fire_until(&mut self, wm: i64, out: &mut Vec<Message>) -> Result<()> {
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
    fn name(&self) -> String {
        format!(
            "session window aggregate ({} key(s), {} aggregate(s))",
            self.keys.len(),
            self.aggs.exprs.len()
        )
    }

    fn attach(&mut self, job: &Arc<JobMetrics>) {
        self.job = Some(job.clone());
    }

    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        Err(WeirError::user(
            "SESSION window state cannot be snapshotted yet (only TUMBLE, HOP and CUMULATE)",
        ))
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
                        .is_some_and(|x| x.start < hi && x.end > lo)
                })
                .collect();
            if touching.is_empty() {
                if hi <= self.watermark {
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
        let mut by_root: Vec<(u64, Vec<u32>)> = vec![];
        for (i, s) in row_slot.iter().enumerate() {
            let Some(s) = s else { continue };
            let r = find(*s);
            match by_root.iter_mut().rev().find(|(x, _)| *x == r) {
                Some((_, v)) => v.push(i as u32),
                None => by_root.push((r, vec![i as u32])),
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
