//! Joins of two streams: regular, interval and window joins.
//!
//! One operator serves the three; they differ in how long a row is kept and when results
//! are emitted ([`JoinTime`]):
//!
//! - **Regular** (`a JOIN b ON a.k = b.k`, append-only inputs): every row is kept for as
//!   long as the query runs (or for `table.exec.state.ttl`). A row is probed against the
//!   rows the other side has kept so far and then kept itself, so each matching pair is
//!   emitted exactly once, when the later of its two rows arrives. Once one side has ended
//!   (a bounded table, as in a lookup join), the other keeps nothing. Semi and anti joins
//!   (a subquery in `EXISTS`/`IN`, `NOT EXISTS`) emit only their output side's rows, once
//!   (see [`StreamJoin::selects`]). `LEFT`, `RIGHT` and
//!   `FULL OUTER` joins give a changelog, as Flink's streaming join does: a row of an outer
//!   side that meets nothing is emitted at once padded with NULLs (`+I`); when its first
//!   partner comes, that padded row is retracted (`-D`) before the pair is inserted. Each
//!   kept row of an outer side remembers whether it has met a partner.
//! - **Interval** (`... AND a.ts BETWEEN b.ts - INTERVAL '10' SECOND AND b.ts`): the same,
//!   but a row is dropped once the watermark makes a partner impossible. With
//!   `left.t - right.t ∈ [lo, hi]` and future rows at or after the watermark `W`, a left row
//!   can still meet a right row while `left.t - lo >= W`, a right row while
//!   `right.t + hi >= W`. The output watermark is held back by `max(hi, -lo)`, the most a
//!   joined row's times can trail the watermark.
//! - **Window** (equal `window_start`/`window_end` of two windowed inputs): rows wait in
//!   their window until the watermark passes its end, when the window's rows are joined at
//!   once (INNER, LEFT, RIGHT or FULL OUTER, semi or anti) and its state dropped. Rows for a
//!   window that has already been joined are late: dropped and counted.
//!
//! The equality keys are encoded with Arrow's row format, so any key types compare as SQL
//! does; a NULL key matches nothing. The whole ON condition beyond the keys (time bounds,
//! `>=` between columns) is DataFusion's compiled filter over the joined row, so what is
//! emitted is exactly what a batch join would give; the time bounds only decide what to
//! forget.
//!
//! Kept rows live in *segments*: a batch, its encoded keys and a hash index over them. New
//! rows are a new segment; neighbouring segments of similar size are merged (dropping rows
//! that have expired), so a side holds O(log n) segments and a probe looks at each once.
//! Interval joins stop merging at 64 Ki rows, so old rows leave in whole segments as the
//! watermark passes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int8Array, UInt32Array, new_null_array,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::HashMap;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::physical_expr::PhysicalExpr;

use crate::changelog::{ChangelogMode, RowKind};
use crate::error::{Result, WeirError};
use crate::job::{Message, TaskMetrics};
use crate::source::watermark::to_epoch_millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    /// The left rows that meet a right row (an `EXISTS`/`IN`, or an inner join of which
    /// only the left columns are used and the right is distinct).
    LeftSemi,
    RightSemi,
    /// The left rows that meet no right row.
    LeftAnti,
    RightAnti,
}

impl JoinKind {
    fn name(self) -> &'static str {
        match self {
            JoinKind::Inner => "inner",
            JoinKind::Left => "left outer",
            JoinKind::Right => "right outer",
            JoinKind::Full => "full outer",
            JoinKind::LeftSemi => "left semi",
            JoinKind::RightSemi => "right semi",
            JoinKind::LeftAnti => "left anti",
            JoinKind::RightAnti => "right anti",
        }
    }
}

/// How long rows are kept, and when results are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinTime {
    /// A regular join: rows are kept for as long as the query runs.
    Unbounded,
    /// `left.t - right.t` lies in `[lo, hi]` milliseconds; `left`/`right` are the time
    /// columns of each side.
    Interval {
        left: usize,
        right: usize,
        lo: i64,
        hi: i64,
    },
    /// Rows meet within a window: the `window_end` column of each side.
    Window { left: usize, right: usize },
}

/// One side's keys and schema.
pub struct JoinInput {
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    pub schema: SchemaRef,
}

const NONE: u32 = u32::MAX;

/// Rows kept by one side: a batch with a hash index over its keys.
struct Segment {
    batch: RecordBatch,
    rows: Rows,
    /// The last row of each key hash; `next` chains rows with the same hash.
    head: HashMap<u64, u32>,
    next: Vec<u32>,
    /// The latest event time of the segment's rows (interval joins), else i64::MAX.
    max_time: i64,
    /// The earliest (a NULL time counts as i64::MIN), else i64::MAX.
    min_time: i64,
    /// When its newest rows arrived (for `table.exec.state.ttl`).
    arrived: Instant,
    /// Per row: whether it has met a partner (outer joins' outer sides and the output side
    /// of a semi or anti join over whole streams; else all false).
    matched: Vec<bool>,
}

/// Encoded keys of a batch: rows, hashes, and which rows have no NULL key.
struct Keys {
    rows: Rows,
    hashes: Vec<u64>,
    valid: Option<BooleanArray>,
}

impl Keys {
    fn joinable(&self, i: usize) -> bool {
        self.valid.as_ref().is_none_or(|v| v.value(i))
    }
}

pub struct StreamJoin {
    kind: JoinKind,
    time: JoinTime,
    left: JoinInput,
    right: JoinInput,
    /// The rest of the ON condition, over the joined row (left columns, then right).
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Left columns then right columns, as the condition sees them.
    pair_schema: SchemaRef,
    /// The join's output: the pair's columns (nullable as outer joins make them), or one
    /// side's for semi and anti joins.
    schema: SchemaRef,
    converter: RowConverter,
    hasher: RandomState,
    kept: [Vec<Segment>; 2],
    /// Window joins: the rows of each open window, by window end.
    windows: BTreeMap<i64, [Vec<RecordBatch>; 2]>,
    watermark: i64,
    /// How long kept rows live without a watermark to end them (`table.exec.state.ttl`).
    ttl: Option<Duration>,
    /// Sides whose input has ended: the other side's rows no longer wait for them (a
    /// stream joined with a bounded table keeps only the table).
    ended: [bool; 2],
    /// Each input's own watermark.
    side_watermark: [i64; 2],
    metrics: Option<TaskMetrics>,
    /// `NOT IN (subquery)`: a null-aware anti join (see [`StreamJoin::null_aware`]), and
    /// whether the right side has sent a row, and a row with a NULL key.
    null_aware: bool,
    /// NULL keys meet NULL keys (`IS NOT DISTINCT FROM`, as DataFusion plans `INTERSECT`
    /// and `EXCEPT`).
    nulls_equal: bool,
    right_seen: bool,
    right_null: bool,
    /// A lookup join (see [`StreamJoin::lookup`]): the right side is a bounded table, read
    /// whole before any left row is joined.
    lookup: bool,
}

/// Interval joins merge segments up to this many rows, so that old rows leave in whole
/// segments as the watermark passes them rather than waiting inside a large one.
const INTERVAL_SEGMENT_ROWS: usize = 1 << 16;

impl StreamJoin {
    pub fn new(
        kind: JoinKind,
        time: JoinTime,
        left: JoinInput,
        right: JoinInput,
        filter: Option<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    ) -> Result<Self> {
        if left.keys.len() != right.keys.len() {
            return Err(WeirError::internal("join sides have different key counts"));
        }
        let mut fields = vec![];
        for (l, r) in left.keys.iter().zip(&right.keys) {
            let lt = l.data_type(&left.schema)?;
            let rt = r.data_type(&right.schema)?;
            if lt != rt {
                return Err(WeirError::sql(
                    format!("join keys of different types: {lt} and {rt}"),
                    None,
                )
                .with_hint("CAST one side so both keys have the same type"));
            }
            fields.push(SortField::new(lt));
        }
        let outer = matches!(kind, JoinKind::Left | JoinKind::Right | JoinKind::Full);
        let allowed = match time {
            JoinTime::Window { .. } | JoinTime::Unbounded => true,
            JoinTime::Interval { .. } => kind == JoinKind::Inner || outer,
        };
        if !allowed {
            return Err(WeirError::internal(format!(
                "a {} join of streams needs a window",
                kind.name()
            )));
        }
        let pair_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
            left.schema
                .fields()
                .iter()
                .chain(right.schema.fields().iter())
                .cloned()
                .collect::<Vec<_>>(),
        ));
        Ok(StreamJoin {
            pair_schema,
            kind,
            time,
            left,
            right,
            filter,
            schema,
            converter: RowConverter::new(fields)?,
            hasher: RandomState::default(),
            kept: [vec![], vec![]],
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            ttl: None,
            ended: [false; 2],
            side_watermark: [i64::MIN; 2],
            metrics: None,
            null_aware: false,
            nulls_equal: false,
            right_seen: false,
            right_null: false,
            lookup: false,
        })
    }

    /// Makes an INNER or LEFT regular join a lookup join (`JOIN t FOR SYSTEM_TIME AS OF
    /// s.proc_time`, with `t` a bounded table on the right), as Flink's
    /// `LookupJoinRunner`: each left row meets the table as it is when the row is joined,
    /// and a row it does not meet is padded at once (LEFT) — so the output is append-only,
    /// never taken back. Left rows that come while the table is still being read wait (and
    /// are saved by a checkpoint) until it has ended.
    pub fn lookup(mut self, on: bool) -> Self {
        self.lookup = on
            && self.time == JoinTime::Unbounded
            && matches!(self.kind, JoinKind::Inner | JoinKind::Left);
        self
    }

    /// Makes a left anti join null-aware, as SQL's `x NOT IN (SELECT y …)` is: a left row
    /// is in the result only while no right row equals it **and** no right `y` is NULL
    /// (`x <> NULL` is unknown); a row whose `x` is NULL only while the right side is
    /// empty. Over an append-only right side, as Flink's anti join with the condition
    /// `x = y OR x IS NULL OR y IS NULL`: a left row comes out at once (`+I`) when it
    /// qualifies and is taken back (`-D`) when its first partner, the right side's first
    /// NULL, or (for a NULL `x`) the right side's first row arrives. Its flags are global,
    /// so it runs as one subtask.
    pub fn null_aware(mut self, on: bool) -> Self {
        self.null_aware = on && self.kind == JoinKind::LeftAnti;
        self
    }

    /// Makes NULL keys meet NULL keys: the join's equalities are `IS NOT DISTINCT FROM`
    /// (`INTERSECT` and `EXCEPT`, which compare whole rows, NULLs alike).
    pub fn nulls_equal(mut self, on: bool) -> Self {
        self.nulls_equal = on;
        self
    }

    /// A null-aware anti join's left rows still out that the right side's first row (all
    /// with a NULL key) or first NULL (`all`: every one) now takes back.
    fn retract_left(&mut self, all: bool, out: &mut Vec<Message>) -> Result<()> {
        let mut taken = vec![];
        for g in 0..self.kept[0].len() {
            let keys = self.keys(Side::Left, &self.kept[0][g].batch)?;
            let seg = &mut self.kept[0][g];
            let idx: Vec<u32> = (0..seg.matched.len())
                .filter(|&i| !seg.matched[i] && (all || !keys.joinable(i)))
                .map(|i| i as u32)
                .collect();
            for &i in &idx {
                seg.matched[i as usize] = true;
            }
            if !idx.is_empty() {
                taken.push(datafusion::arrow::compute::take_record_batch(
                    &seg.batch,
                    &UInt32Array::from(idx),
                )?);
            }
        }
        for b in taken {
            let rows = self.output(b)?;
            out.push(self.changes(rows, RowKind::Delete)?);
        }
        if all {
            // A NULL in the subquery is there for good: no left row comes out again.
            self.kept[0].clear();
        }
        Ok(())
    }

    /// Forgets kept rows once they have been kept for `ttl` (processing time), as Flink's
    /// `table.exec.state.ttl` does; a regular join's state is otherwise never dropped.
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl.filter(|t| !t.is_zero());
        self
    }

    pub fn name(&self) -> String {
        let what = match self.time {
            JoinTime::Unbounded => "regular".to_string(),
            JoinTime::Interval { lo, hi, .. } => format!("interval [{lo} ms, {hi} ms]"),
            JoinTime::Window { .. } => "window".to_string(),
        };
        let null_aware = if self.null_aware { " null-aware" } else { "" };
        if self.lookup {
            return format!("lookup join {}", self.kind.name());
        }
        format!("join {}{null_aware} ({what})", self.kind.name())
    }

    pub fn attach(&mut self, metrics: &TaskMetrics) {
        self.metrics = Some(metrics.clone());
    }

    fn input(&self, side: Side) -> &JoinInput {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    fn keys(&self, side: Side, batch: &RecordBatch) -> Result<Keys> {
        let n = batch.num_rows();
        let arrays = self
            .input(side)
            .keys
            .iter()
            .map(|k| k.evaluate(batch)?.into_array(n))
            .collect::<datafusion::common::Result<Vec<ArrayRef>>>()?;
        let rows = self.converter.convert_columns(&arrays)?;
        let mut hashes = vec![0u64; n];
        create_hashes(&arrays, &self.hasher, &mut hashes)?;
        let valid = if !self.nulls_equal && arrays.iter().any(|a| a.null_count() > 0) {
            Some(
                (0..n)
                    .map(|i| Some(arrays.iter().all(|a| a.is_valid(i))))
                    .collect(),
            )
        } else {
            None
        };
        Ok(Keys {
            rows,
            hashes,
            valid,
        })
    }

    fn segment(&self, side: Side, batch: RecordBatch) -> Result<Segment> {
        let keys = self.keys(side, &batch)?;
        let n = batch.num_rows();
        let mut head: HashMap<u64, u32> = HashMap::with_capacity(n);
        let mut next = vec![NONE; n];
        for (i, h) in keys.hashes.iter().enumerate() {
            if !keys.joinable(i) {
                continue;
            }
            let prev = head.insert(*h, i as u32);
            next[i] = prev.unwrap_or(NONE);
        }
        let (min_time, max_time) = match self.time_col(side) {
            Some(c) => {
                let t = to_epoch_millis(batch.column(c).as_ref())?;
                let min = if t.null_count() > 0 {
                    i64::MIN
                } else {
                    datafusion::arrow::compute::min(&t).unwrap_or(i64::MIN)
                };
                (min, datafusion::arrow::compute::max(&t).unwrap_or(i64::MIN))
            }
            None => (i64::MAX, i64::MAX),
        };
        Ok(Segment {
            batch,
            rows: keys.rows,
            head,
            next,
            max_time,
            min_time,
            arrived: Instant::now(),
            matched: vec![false; n],
        })
    }

    fn time_col(&self, side: Side) -> Option<usize> {
        match (self.time, side) {
            (JoinTime::Interval { left, .. }, Side::Left) => Some(left),
            (JoinTime::Interval { right, .. }, Side::Right) => Some(right),
            _ => None,
        }
    }

    /// The earliest time a kept row of `side` may have and still meet a future row.
    fn horizon(&self, side: Side) -> i64 {
        match (self.time, side) {
            (JoinTime::Interval { lo, .. }, Side::Left) => self.watermark.saturating_add(lo),
            (JoinTime::Interval { hi, .. }, Side::Right) => self.watermark.saturating_sub(hi),
            _ => i64::MIN,
        }
    }

    /// Pairs of (probe row, kept row) with equal keys.
    fn probe(seg: &Segment, keys: &Keys, probe_idx: &mut Vec<u32>, kept_idx: &mut Vec<u32>) {
        for (j, h) in keys.hashes.iter().enumerate() {
            if !keys.joinable(j) {
                continue;
            }
            let Some(&first) = seg.head.get(h) else {
                continue;
            };
            let want = keys.rows.row(j);
            let mut i = first;
            while i != NONE {
                if seg.rows.row(i as usize) == want {
                    probe_idx.push(j as u32);
                    kept_idx.push(i);
                }
                i = seg.next[i as usize];
            }
        }
    }

    /// The joined rows of `(left row, right row)` pairs that pass the filter, and which
    /// pairs passed.
    fn joined(
        &self,
        left: &RecordBatch,
        left_idx: &[u32],
        right: &RecordBatch,
        right_idx: &[u32],
    ) -> Result<(RecordBatch, Option<BooleanArray>)> {
        let li = UInt32Array::from(left_idx.to_vec());
        let ri = UInt32Array::from(right_idx.to_vec());
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.pair_schema.fields().len());
        for c in left.columns() {
            cols.push(take(c.as_ref(), &li, None)?);
        }
        for c in right.columns() {
            cols.push(take(c.as_ref(), &ri, None)?);
        }
        let batch = RecordBatch::try_new_with_options(
            self.pair_schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(left_idx.len())),
        )?;
        let Some(f) = &self.filter else {
            return Ok((batch, None));
        };
        let mask = f.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = mask
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| WeirError::internal("join condition is not boolean"))?;
        // NULL is not a match.
        let mask = if mask.null_count() > 0 {
            datafusion::arrow::compute::prep_null_mask_filter(mask)
        } else {
            mask.clone()
        };
        Ok((filter_record_batch(&batch, &mask)?, Some(mask)))
    }

    pub fn process(
        &mut self,
        side: Side,
        batch: RecordBatch,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        match self.time {
            JoinTime::Window { left, right } => {
                let col = if side == Side::Left { left } else { right };
                self.keep_in_windows(side, col, batch)
            }
            JoinTime::Interval { .. } => {
                let batch = self.drop_late(side, batch)?;
                if batch.num_rows() == 0 {
                    return Ok(());
                }
                self.probe_and_keep(side, batch, out)
            }
            JoinTime::Unbounded if self.lookup && !self.ended[1] => {
                // The table is still being read: its rows and the waiting left rows are
                // kept, and nothing is joined yet.
                let seg = self.segment(side, batch)?;
                self.kept[side as usize].push(seg);
                self.compact(side)
            }
            JoinTime::Unbounded => self.probe_and_keep(side, batch, out),
        }
    }

    /// Notes the watermark one input has sent (its own, before the two are merged).
    pub fn side_watermark(&mut self, side: Side, w: i64) {
        let s = side as usize;
        self.side_watermark[s] = self.side_watermark[s].max(w);
    }

    /// An interval join's input rows behind their own side's watermark are late: dropped and
    /// counted, as a window drops them — so the result does not depend on how far the other
    /// side's state has been cleaned when they come.
    fn drop_late(&self, side: Side, batch: RecordBatch) -> Result<RecordBatch> {
        let before = batch.num_rows();
        let kept = self.rows_from(side, self.side_watermark[side as usize], batch)?;
        self.count_late(before - kept.num_rows());
        Ok(kept)
    }

    /// The rows of `batch` whose time on `side` is at or after `t` (all of them when the
    /// side has no time column or `t` is `i64::MIN`).
    fn rows_from(&self, side: Side, t: i64, batch: RecordBatch) -> Result<RecordBatch> {
        let Some(c) = self.time_col(side) else {
            return Ok(batch);
        };
        if t == i64::MIN {
            return Ok(batch);
        }
        let times = to_epoch_millis(batch.column(c).as_ref())?;
        let keep: BooleanArray = times
            .iter()
            .map(|v| Some(v.is_some_and(|v| v >= t)))
            .collect();
        if keep.true_count() == batch.num_rows() {
            return Ok(batch);
        }
        Ok(filter_record_batch(&batch, &keep)?)
    }

    /// Whether the join pads the unmatched rows of `side` (an outer regular join's
    /// outer sides), which makes its output a changelog.
    fn pads(&self, side: Side) -> bool {
        self.time == JoinTime::Unbounded
            && !self.lookup
            && match side {
                Side::Left => matches!(self.kind, JoinKind::Left | JoinKind::Full),
                Side::Right => matches!(self.kind, JoinKind::Right | JoinKind::Full),
            }
    }

    /// Whether an interval join pads the unmatched rows of `side` (its outer sides), once
    /// they can meet nothing more: when the watermark passes their last chance, as Flink's
    /// outer interval join emits them — so the output stays append-only.
    fn pads_on_expiry(&self, side: Side) -> bool {
        matches!(self.time, JoinTime::Interval { .. })
            && match side {
                Side::Left => matches!(self.kind, JoinKind::Left | JoinKind::Full),
                Side::Right => matches!(self.kind, JoinKind::Right | JoinKind::Full),
            }
    }

    /// Whether `side`'s kept rows remember if they have met a partner (and a checkpoint
    /// saves that).
    fn tracks_matches(&self, side: Side) -> bool {
        self.pads(side)
            || self.pads_on_expiry(side)
            || self.selects().is_some_and(|(s, _)| s == side)
    }

    /// A semi or anti join over whole streams (a subquery in `EXISTS`/`IN`, or `NOT
    /// EXISTS`): the side whose rows are the output, and whether it keeps the rows that
    /// meet a partner (semi) or those that meet none (anti). As Flink's
    /// `StreamingSemiAntiJoinOperator`: a semi join emits a row once, when its first
    /// partner is there (append-only); an anti join emits a row at once when it has no
    /// partner (`+I`) and takes it back (`-D`) when its first partner comes.
    fn selects(&self) -> Option<(Side, bool)> {
        if self.time != JoinTime::Unbounded {
            return None;
        }
        match self.kind {
            JoinKind::LeftSemi => Some((Side::Left, true)),
            JoinKind::RightSemi => Some((Side::Right, true)),
            JoinKind::LeftAnti => Some((Side::Left, false)),
            JoinKind::RightAnti => Some((Side::Right, false)),
            _ => None,
        }
    }

    /// An interval join's outer side: its kept rows that can meet nothing more at the
    /// current watermark and met nothing, padded with NULLs (and marked, so they come once).
    fn pad_expired(&mut self, side: Side, out: &mut Vec<Message>) -> Result<()> {
        if !self.pads_on_expiry(side) {
            return Ok(());
        }
        let horizon = self.horizon(side);
        let Some(c) = self.time_col(side) else {
            return Ok(());
        };
        let s = side as usize;
        let mut padded = vec![];
        for g in 0..self.kept[s].len() {
            if self.kept[s][g].min_time >= horizon {
                continue;
            }
            let times = to_epoch_millis(self.kept[s][g].batch.column(c).as_ref())?;
            let seg = &mut self.kept[s][g];
            let idx: Vec<u32> = (0..times.len())
                .filter(|&i| !seg.matched[i] && (times.is_null(i) || times.value(i) < horizon))
                .map(|i| i as u32)
                .collect();
            for &i in &idx {
                seg.matched[i as usize] = true;
            }
            if !idx.is_empty() {
                padded.push(self.padded(side, &self.kept[s][g].batch, idx)?);
            }
        }
        for b in padded {
            out.push(Message::Batch(b));
        }
        Ok(())
    }

    /// True for outer regular joins and anti joins over whole streams, whose output is a
    /// changelog.
    pub fn emits_changes(&self) -> bool {
        self.pads(Side::Left)
            || self.pads(Side::Right)
            || matches!(self.selects(), Some((_, false)))
    }

    /// `batch` of the output with every row of kind `kind` when the output is a changelog.
    fn changes(&self, batch: RecordBatch, kind: RowKind) -> Result<Message> {
        if !self.emits_changes() {
            return Ok(Message::Batch(batch));
        }
        let kinds = Int8Array::from(vec![kind as i8; batch.num_rows()]);
        Ok(Message::Batch(crate::changelog::attach(batch, kinds)?))
    }

    fn probe_and_keep(
        &mut self,
        side: Side,
        batch: RecordBatch,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let other = match side {
            Side::Left => 1,
            Side::Right => 0,
        };
        let other_side = side_of(other);
        if let Some(ttl) = self.ttl {
            let now = Instant::now();
            // A lookup join's table is kept whole (Flink's lookup join has no state TTL).
            let sides = if self.lookup { 1 } else { 2 };
            for kept in self.kept.iter_mut().take(sides) {
                kept.retain(|s| now.duration_since(s.arrived) < ttl);
            }
        }
        if self.null_aware && side == Side::Left && self.right_null {
            // Nothing comes out any more, and nothing needs keeping.
            return Ok(());
        }
        let keys = self.keys(side, &batch)?;
        if self.null_aware && side == Side::Right && batch.num_rows() > 0 {
            let first_row = !self.right_seen;
            let first_null = !self.right_null && (0..batch.num_rows()).any(|i| !keys.joinable(i));
            self.right_seen = true;
            self.right_null |= first_null;
            if first_row || first_null {
                self.retract_left(first_null, out)?;
            }
            if self.right_null {
                // The answer is empty for good: the right side's rows matter no more.
                self.kept[1].clear();
                return Ok(());
            }
        }
        let mut hit = vec![false; batch.num_rows()];
        if self.null_aware && side == Side::Left {
            // Rows that may never come out count as met: not emitted, never taken back.
            for (i, h) in hit.iter_mut().enumerate() {
                *h = self.right_null || (self.right_seen && !keys.joinable(i));
            }
        }
        for g in 0..self.kept[other].len() {
            let seg = &self.kept[other][g];
            let (mut p, mut k) = (vec![], vec![]);
            Self::probe(seg, &keys, &mut p, &mut k);
            if p.is_empty() {
                continue;
            }
            let (joined, mask) = match side {
                Side::Left => self.joined(&batch, &p, &seg.batch, &k)?,
                Side::Right => self.joined(&seg.batch, &k, &batch, &p)?,
            };
            // Partners met for the first time: their padded rows are retracted first.
            let mut first = vec![];
            let mut seen = vec![false; seg.matched.len()];
            for (n, (pi, ki)) in p.iter().zip(&k).enumerate() {
                let kr = *ki as usize;
                if mask.as_ref().is_none_or(|m| m.value(n)) {
                    hit[*pi as usize] = true;
                    if !seg.matched[kr] && !seen[kr] {
                        seen[kr] = true;
                        first.push(*ki);
                    }
                }
            }
            if self.pads(other_side) && !first.is_empty() {
                let padded = self.padded(other_side, &seg.batch, first.clone())?;
                out.push(self.changes(padded, RowKind::Delete)?);
            }
            // A kept row of a semi join's output side meeting its first partner comes
            // out now; of an anti join's, it is taken back.
            if let Some((out_side, semi)) = self.selects()
                && out_side == other_side
                && !first.is_empty()
            {
                let idx = UInt32Array::from(first.clone());
                let rows = self.output(datafusion::arrow::compute::take_record_batch(
                    &seg.batch, &idx,
                )?)?;
                let kind = if semi {
                    RowKind::Insert
                } else {
                    RowKind::Delete
                };
                out.push(self.changes(rows, kind)?);
            }
            let seg = &mut self.kept[other][g];
            for ki in first {
                seg.matched[ki as usize] = true;
            }
            if self.selects().is_some() {
                continue;
            }
            if joined.num_rows() > 0 {
                let joined = self.output(joined)?;
                out.push(self.changes(joined, RowKind::Insert)?);
            }
        }
        // The output side's new rows: a semi join's that met a partner, an anti join's
        // that met none.
        if let Some((out_side, semi)) = self.selects()
            && out_side == side
        {
            let mask: BooleanArray = hit.iter().map(|h| Some(*h == semi)).collect();
            if mask.true_count() > 0 {
                let rows = self.output(filter_record_batch(&batch, &mask)?)?;
                out.push(self.changes(rows, RowKind::Insert)?);
            }
        }
        if self.pads(side) || (self.lookup && side == Side::Left && self.kind == JoinKind::Left) {
            let missed: Vec<u32> = (0..hit.len() as u32)
                .filter(|i| !hit[*i as usize])
                .collect();
            if !missed.is_empty() {
                let padded = self.padded(side, &batch, missed)?;
                out.push(self.changes(padded, RowKind::Insert)?);
            }
        }
        if self.pads_on_expiry(side) {
            // An outer interval join's side: rows that can meet nothing more (the other
            // side has ended, or their time is behind the horizon) are padded now if they
            // met nothing; the others are kept with their flags.
            let keep: Vec<bool> = if self.ended[other] {
                vec![false; batch.num_rows()]
            } else {
                let c = self.time_col(side).ok_or_else(|| {
                    WeirError::internal("an interval join side without a time column")
                })?;
                let horizon = self.horizon(side);
                let times = to_epoch_millis(batch.column(c).as_ref())?;
                (0..times.len())
                    .map(|i| times.is_valid(i) && times.value(i) >= horizon)
                    .collect()
            };
            let gone: Vec<u32> = (0..keep.len() as u32)
                .filter(|&i| !keep[i as usize] && !hit[i as usize])
                .collect();
            if !gone.is_empty() {
                out.push(Message::Batch(self.padded(side, &batch, gone)?));
            }
            let mask: BooleanArray = keep.iter().map(|k| Some(*k)).collect();
            let flags: Vec<bool> = hit
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(h, _)| *h)
                .collect();
            let batch = filter_record_batch(&batch, &mask)?;
            if batch.num_rows() > 0 {
                let mut seg = self.segment(side, batch)?;
                seg.matched = flags;
                self.kept[side as usize].push(seg);
                self.compact(side)?;
            }
            return Ok(());
        }
        if self.ended[other] {
            return Ok(());
        }
        // Rows that are already too old to meet anything are not kept.
        let before = batch.num_rows();
        let batch = self.unexpired(side, batch)?;
        if batch.num_rows() > 0 {
            let mut seg = self.segment(side, batch)?;
            if seg.batch.num_rows() == before {
                seg.matched = hit;
            }
            self.kept[side as usize].push(seg);
            self.compact(side)?;
        }
        Ok(())
    }

    /// The rows of `batch` that can still meet a future row of the other side.
    fn unexpired(&self, side: Side, batch: RecordBatch) -> Result<RecordBatch> {
        self.rows_from(side, self.horizon(side), batch)
    }

    /// Merges the newest segments while the newer is at least half the size of the older,
    /// so sizes fall geometrically and a side has O(log n) segments.
    fn compact(&mut self, side: Side) -> Result<()> {
        let s = side as usize;
        while self.kept[s].len() >= 2 {
            let n = self.kept[s].len();
            let newer = self.kept[s][n - 1].batch.num_rows();
            let older = self.kept[s][n - 2].batch.num_rows();
            if newer * 2 < older {
                break;
            }
            if matches!(self.time, JoinTime::Interval { .. }) && older >= INTERVAL_SEGMENT_ROWS {
                break;
            }
            let (Some(b), Some(a)) = (self.kept[s].pop(), self.kept[s].pop()) else {
                break;
            };
            let merged = concat_batches(&a.batch.schema(), [&a.batch, &b.batch])?;
            let all = merged.num_rows();
            // An outer side's expired rows leave through `pad_expired`, which pads them.
            let merged = if self.pads_on_expiry(side) {
                merged
            } else {
                self.unexpired(side, merged)?
            };
            if merged.num_rows() > 0 {
                let mut seg = self.segment(side, merged)?;
                seg.arrived = b.arrived;
                // Only an interval join drops rows here, and it keeps no flags.
                if seg.batch.num_rows() == all {
                    seg.matched = [a.matched, b.matched].concat();
                }
                self.kept[s].push(seg);
            }
        }
        Ok(())
    }

    fn keep_in_windows(&mut self, side: Side, end_col: usize, batch: RecordBatch) -> Result<()> {
        let ends = to_epoch_millis(batch.column(end_col).as_ref())?;
        let s = side as usize;
        // Late: a window already joined, or one this side's own watermark has passed (which
        // its rows cannot come after, however the two sides' messages interleave).
        let done = super::fired_through(self.watermark.max(self.side_watermark[s]));
        // The usual case: one window per batch (a window aggregate fires one at a time).
        let first = (!ends.is_empty() && ends.is_valid(0)).then(|| ends.value(0));
        if let Some(e) = first
            && ends.null_count() == 0
            && ends.values().iter().all(|v| *v == e)
        {
            if e <= done {
                self.count_late(batch.num_rows());
            } else {
                self.windows.entry(e).or_default()[s].push(batch);
            }
            return Ok(());
        }
        let mut by_end: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut late = 0;
        for (i, e) in ends.iter().enumerate() {
            match e {
                Some(e) if e > done => by_end.entry(e).or_default().push(i as u32),
                _ => late += 1,
            }
        }
        self.count_late(late);
        for (e, idx) in by_end {
            let idx = UInt32Array::from(idx);
            let cols = batch
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let part = RecordBatch::try_new(batch.schema(), cols)?;
            self.windows.entry(e).or_default()[s].push(part);
        }
        Ok(())
    }

    fn count_late(&self, n: usize) {
        if n > 0
            && let Some(j) = &self.metrics
        {
            j.add_late(n as u64);
        }
    }

    /// Joins the rows of one window, with outer rows padded with NULLs as the kind asks.
    fn fire_window(&self, rows: [Vec<RecordBatch>; 2], out: &mut Vec<Message>) -> Result<()> {
        let [l, r] = rows;
        let left = concat_batches(&self.left.schema, &l)?;
        let right = concat_batches(&self.right.schema, &r)?;
        let mut left_hit = vec![false; left.num_rows()];
        let mut right_hit = vec![false; right.num_rows()];
        if left.num_rows() > 0 && right.num_rows() > 0 {
            let seg = self.segment(Side::Right, right.clone())?;
            let keys = self.keys(Side::Left, &left)?;
            let (mut p, mut k) = (vec![], vec![]);
            Self::probe(&seg, &keys, &mut p, &mut k);
            if !p.is_empty() {
                let (joined, mask) = self.joined(&left, &p, &right, &k)?;
                for (n, (li, ri)) in p.iter().zip(&k).enumerate() {
                    if mask.as_ref().is_none_or(|m| m.value(n)) {
                        left_hit[*li as usize] = true;
                        right_hit[*ri as usize] = true;
                    }
                }
                if joined.num_rows() > 0 && self.emits_pairs() {
                    out.push(Message::Batch(self.output(joined)?));
                }
            }
        }
        match self.kind {
            JoinKind::Inner => {}
            JoinKind::Left => self.pad(Side::Left, &left, &left_hit, out)?,
            JoinKind::Right => self.pad(Side::Right, &right, &right_hit, out)?,
            JoinKind::Full => {
                self.pad(Side::Left, &left, &left_hit, out)?;
                self.pad(Side::Right, &right, &right_hit, out)?;
            }
            JoinKind::LeftSemi => Self::select(&left, &left_hit, true, out)?,
            JoinKind::LeftAnti => Self::select(&left, &left_hit, false, out)?,
            JoinKind::RightSemi => Self::select(&right, &right_hit, true, out)?,
            JoinKind::RightAnti => Self::select(&right, &right_hit, false, out)?,
        }
        Ok(())
    }

    fn emits_pairs(&self) -> bool {
        matches!(
            self.kind,
            JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full
        )
    }

    /// Joined pairs in the output's schema (the same columns; outer joins make them
    /// nullable).
    fn output(&self, pairs: RecordBatch) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            pairs.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(pairs.num_rows())),
        )?)
    }

    /// The rows of one side that did (semi) or did not (anti) meet a row of the other.
    fn select(batch: &RecordBatch, hit: &[bool], met: bool, out: &mut Vec<Message>) -> Result<()> {
        let mask: BooleanArray = hit.iter().map(|h| Some(*h == met)).collect();
        if mask.true_count() > 0 {
            out.push(Message::Batch(filter_record_batch(batch, &mask)?));
        }
        Ok(())
    }

    /// The rows of `side` that met nothing, with NULLs for the other side's columns.
    fn pad(
        &self,
        side: Side,
        batch: &RecordBatch,
        hit: &[bool],
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let missed: Vec<u32> = (0..hit.len() as u32)
            .filter(|i| !hit[*i as usize])
            .collect();
        if !missed.is_empty() {
            out.push(Message::Batch(self.padded(side, batch, missed)?));
        }
        Ok(())
    }

    /// Rows `idx` of `batch` (of `side`) with NULLs for the other side's columns, in the
    /// output's schema.
    fn padded(&self, side: Side, batch: &RecordBatch, idx: Vec<u32>) -> Result<RecordBatch> {
        let idx = UInt32Array::from(idx);
        let n = idx.len();
        let own = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &idx, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let nulls = |schema: &SchemaRef| -> Vec<ArrayRef> {
            schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), n))
                .collect()
        };
        let cols = match side {
            Side::Left => own.into_iter().chain(nulls(&self.right.schema)).collect(),
            Side::Right => nulls(&self.left.schema).into_iter().chain(own).collect(),
        };
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }

    pub fn watermark(&mut self, w: i64, out: &mut Vec<Message>) -> Result<()> {
        if w <= self.watermark {
            return Ok(());
        }
        self.watermark = w;
        match self.time {
            JoinTime::Window { .. } => {
                let open = self
                    .windows
                    .split_off(&super::fired_through(w).saturating_add(1));
                let due = std::mem::replace(&mut self.windows, open);
                for (_, rows) in due {
                    self.fire_window(rows, out)?;
                }
                out.push(Message::Watermark(w));
            }
            JoinTime::Interval { lo, hi, .. } => {
                for side in [Side::Left, Side::Right] {
                    self.pad_expired(side, out)?;
                    let horizon = self.horizon(side);
                    self.kept[side as usize].retain(|s| s.max_time >= horizon);
                }
                let lag = hi.max(-lo).max(0);
                out.push(Message::Watermark(w.saturating_sub(lag)));
            }
            // A lookup join whose table is whole joins each stream row as it comes, so the
            // stream's watermark holds for its output (Flink's lookup join keeps the
            // stream's time attributes, and a window after it fires as the stream goes on).
            JoinTime::Unbounded if self.lookup && self.ended[1] => {
                out.push(Message::Watermark(w));
            }
            // A regular join's output rows can be arbitrarily older than the watermark, so
            // its output carries none until the end.
            JoinTime::Unbounded => {}
        }
        Ok(())
    }

    /// One input has ended: no row of it is to come, so the other side's kept rows (which
    /// wait only for those) are dropped, and its new rows are no longer kept.
    pub fn end_side(&mut self, side: Side, out: &mut Vec<Message>) -> Result<()> {
        self.ended[side as usize] = true;
        if self.lookup {
            // The table is whole: the left rows that waited for it are joined now. The
            // stream ending first leaves the table, which its waiting rows still need.
            if side == Side::Right {
                for seg in std::mem::take(&mut self.kept[0]) {
                    self.probe_and_keep(Side::Left, seg.batch, out)?;
                }
                // The watermark held while the rows waited goes out after them.
                if self.watermark > i64::MIN {
                    out.push(Message::Watermark(self.watermark));
                }
            }
            return Ok(());
        }
        let other = 1 - side as usize;
        // An outer side's unmatched rows still come out padded (at the watermark or the
        // end), so they stay.
        if !matches!(self.time, JoinTime::Window { .. }) && !self.pads_on_expiry(side_of(other)) {
            self.kept[other].clear();
        }
        Ok(())
    }

    pub fn finish(&mut self, out: &mut Vec<Message>) -> Result<()> {
        self.watermark(i64::MAX, out)?;
        if self.time == JoinTime::Unbounded {
            out.push(Message::Watermark(i64::MAX));
        }
        self.kept = [vec![], vec![]];
        Ok(())
    }

    /// The join's state for a checkpoint: every kept row and every open window's rows, as
    /// the input batches they came in (the schema's metadata says `part` = `kept` or
    /// `window`, the `side`, 0 or 1, and a window's `end`), then an empty batch whose
    /// metadata holds the watermarks and which sides have ended. Hash indexes are rebuilt
    /// at restore.
    pub fn snapshot(&self) -> Result<Option<Vec<RecordBatch>>> {
        use datafusion::arrow::datatypes::Schema;
        let tag = |b: &RecordBatch, meta: Vec<(&str, String)>| -> Result<RecordBatch> {
            let schema = Schema::new(b.schema().fields().clone())
                .with_metadata(meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
            Ok(RecordBatch::try_new(
                Arc::new(schema),
                b.columns().to_vec(),
            )?)
        };
        let mut out = vec![];
        for (s, segs) in self.kept.iter().enumerate() {
            for seg in segs {
                if self.tracks_matches(side_of(s)) {
                    // The rows, then whether each has met a partner.
                    let mut fields = seg.batch.schema().fields().to_vec();
                    fields.push(Arc::new(datafusion::arrow::datatypes::Field::new(
                        "__weir_matched",
                        datafusion::arrow::datatypes::DataType::Boolean,
                        false,
                    )));
                    let mut cols = seg.batch.columns().to_vec();
                    cols.push(Arc::new(BooleanArray::from(seg.matched.clone())));
                    let with_flags = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
                    out.push(tag(
                        &with_flags,
                        vec![
                            ("part", "kept".into()),
                            ("side", s.to_string()),
                            ("matched", "true".into()),
                        ],
                    )?);
                } else {
                    out.push(tag(
                        &seg.batch,
                        vec![("part", "kept".into()), ("side", s.to_string())],
                    )?);
                }
            }
        }
        for (end, sides) in &self.windows {
            for (s, batches) in sides.iter().enumerate() {
                for b in batches {
                    out.push(tag(
                        b,
                        vec![
                            ("part", "window".into()),
                            ("side", s.to_string()),
                            ("end", end.to_string()),
                        ],
                    )?);
                }
            }
        }
        let meta = [
            ("part", "meta".to_string()),
            ("watermark", self.watermark.to_string()),
            ("watermark0", self.side_watermark[0].to_string()),
            ("watermark1", self.side_watermark[1].to_string()),
            ("ended0", self.ended[0].to_string()),
            ("ended1", self.ended[1].to_string()),
            ("right_seen", self.right_seen.to_string()),
            ("right_null", self.right_null.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        out.push(RecordBatch::new_empty(Arc::new(
            Schema::empty().with_metadata(meta),
        )));
        Ok(Some(out))
    }

    /// Puts back what [`StreamJoin::snapshot`] saved.
    pub fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        let name = self.name();
        let bad = |what: &str| {
            WeirError::user(format!(
                "the checkpoint's state of {name} is malformed: {what}"
            ))
        };
        for b in state {
            let meta = b.schema_ref().metadata().clone();
            let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
            let side = match get("side").as_str() {
                "0" => Side::Left,
                "1" => Side::Right,
                _ => Side::Left,
            };
            let s = if side == Side::Left { 0 } else { 1 };
            let as_input = |b: &RecordBatch| -> Result<RecordBatch> {
                RecordBatch::try_new(self.input(side).schema.clone(), b.columns().to_vec())
                    .map_err(|e| bad(&e.to_string()))
            };
            match get("part").as_str() {
                "kept" if get("matched") == "true" => {
                    let n = b.num_columns();
                    if n == 0 {
                        return Err(bad("kept rows without their matched flags"));
                    }
                    let flags = b
                        .column(n - 1)
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .ok_or_else(|| bad("a kept row's matched flag"))?
                        .clone();
                    let mut seg = self.segment(
                        side,
                        as_input(&b.project(&(0..n - 1).collect::<Vec<_>>())?)?,
                    )?;
                    seg.matched = flags.iter().map(|f| f.unwrap_or(false)).collect();
                    self.kept[s].push(seg);
                }
                "kept" => {
                    let seg = self.segment(side, as_input(&b)?)?;
                    self.kept[s].push(seg);
                }
                "window" => {
                    let end: i64 = get("end").parse().map_err(|_| bad("a window's end"))?;
                    let rows = as_input(&b)?;
                    self.windows.entry(end).or_default()[s].push(rows);
                }
                "meta" => {
                    let num = |k: &str| -> Result<i64> { get(k).parse().map_err(|_| bad(k)) };
                    self.watermark = num("watermark")?;
                    self.side_watermark = [num("watermark0")?, num("watermark1")?];
                    self.ended = [get("ended0") == "true", get("ended1") == "true"];
                    self.right_seen |= get("right_seen") == "true";
                    self.right_null |= get("right_null") == "true";
                }
                other => return Err(bad(&format!("unknown part '{other}'"))),
            }
        }
        Ok(())
    }

    /// Rows kept, per side (for tests and metrics).
    pub fn kept_rows(&self) -> [usize; 2] {
        let count = |s: &Vec<Segment>| s.iter().map(|g| g.batch.num_rows()).sum::<usize>();
        let mut n = [count(&self.kept[0]), count(&self.kept[1])];
        for rows in self.windows.values() {
            for (i, side) in rows.iter().enumerate() {
                n[i] += side.iter().map(|b| b.num_rows()).sum::<usize>();
            }
        }
        n
    }
}

/// A join in the one operator model: input 0 is the left side, input 1 the right; the run
/// loop ([`super::run_task`]) merges the two watermarks (an input that has ended no longer
/// holds it back, nor does one silent for its idle timeout) and aligns barriers.
impl super::Operator for StreamJoin {
    /// Joins pair rows by key and time whatever their order: the rows out are the same —
    /// unless the output is a changelog (an outer or anti join over whole streams), whose
    /// padded rows and their retractions depend on which side's row came first.
    fn order_insensitive(&self) -> bool {
        !self.emits_changes()
    }

    fn distribution(&self) -> super::Distribution {
        if self.left.keys.is_empty() || self.null_aware {
            super::Distribution::Single
        } else {
            super::Distribution::Hash(vec![self.left.keys.clone(), self.right.keys.clone()])
        }
    }

    /// Rows kept on both sides (segments and open windows) and their batches' bytes, with
    /// the encoded keys and hash index of each segment.
    fn state_size(&self) -> Option<(u64, u64)> {
        let (mut rows, mut bytes) = (0u64, 0u64);
        for s in self.kept.iter().flatten() {
            rows += s.batch.num_rows() as u64;
            bytes += (s.batch.get_array_memory_size()
                + s.rows.size()
                + s.head.capacity() * 16
                + s.next.capacity() * 4) as u64;
        }
        for b in self.windows.values().flatten().flatten() {
            rows += b.num_rows() as u64;
            bytes += b.get_array_memory_size() as u64;
        }
        Some((rows, bytes))
    }

    fn name(&self) -> String {
        StreamJoin::name(self)
    }

    fn attach(&mut self, metrics: &TaskMetrics) {
        StreamJoin::attach(self, metrics);
    }

    fn emits_changes(&self) -> bool {
        StreamJoin::emits_changes(self)
    }

    /// Over append-only inputs (the only ones a join takes): inserts, and for an outer or
    /// anti join the deletes that take a padded or unmatched row back (`+I`/`-D`).
    fn changelog_mode(&self, _inputs: &[ChangelogMode]) -> ChangelogMode {
        use crate::changelog::RowKind::*;
        if StreamJoin::emits_changes(self) {
            ChangelogMode::of(&[Insert, Delete])
        } else {
            ChangelogMode::INSERT_ONLY
        }
    }

    /// A join's rows always come with their input's index ([`super::Operator::process_input_batch`]).
    fn process_batch(&mut self, _batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        Err(crate::error::WeirError::internal(
            "a join was given rows without their side",
        ))
    }

    fn process_input_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        self.process(side_of(input), batch, out)
    }

    fn input_watermark(
        &mut self,
        input: usize,
        watermark: i64,
        _out: &mut Vec<Message>,
    ) -> Result<()> {
        self.side_watermark(side_of(input), watermark);
        Ok(())
    }

    fn end_input(&mut self, input: usize, out: &mut Vec<Message>) -> Result<()> {
        self.end_side(side_of(input), out)
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        self.watermark(watermark, out)
    }

    fn finish(&mut self, out: &mut Vec<Message>) -> Result<()> {
        StreamJoin::finish(self, out)
    }

    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        StreamJoin::snapshot(self)
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        StreamJoin::restore(self, state)
    }

    /// Kept and windowed rows: their side's join keys evaluated anew (the matched flags
    /// left aside); the watermarks go to every subtask.
    fn state_keys(&self, batch: &RecordBatch) -> Result<Option<Vec<ArrayRef>>> {
        let meta = batch.schema_ref().metadata();
        if !matches!(
            meta.get("part").map(String::as_str),
            Some("kept" | "window")
        ) {
            return Ok(None);
        }
        let side = match meta.get("side").map(String::as_str) {
            Some("1") => Side::Right,
            _ => Side::Left,
        };
        let input = self.input(side);
        if input.keys.is_empty() {
            return Ok(None);
        }
        let n = input.schema.fields().len();
        if batch.num_columns() < n {
            return Err(WeirError::user(format!(
                "the checkpoint's state of {} is malformed: rows of {} columns, the input has {n}",
                self.name(),
                batch.num_columns()
            )));
        }
        let rows = RecordBatch::try_new(input.schema.clone(), batch.columns()[..n].to_vec())?;
        let keys = input
            .keys
            .iter()
            .map(|k| Ok(k.evaluate(&rows)?.into_array(rows.num_rows())?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(keys))
    }
}

fn side_of(input: usize) -> Side {
    if input == 0 { Side::Left } else { Side::Right }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::Column;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]))
    }

    fn batch(k: &[i64], ts: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(k.to_vec())),
                Arc::new(TimestampMillisecondArray::from(ts.to_vec())),
            ],
        )
        .expect("batch")
    }

    fn join(time: JoinTime, kind: JoinKind) -> StreamJoin {
        let input = || JoinInput {
            keys: vec![Arc::new(Column::new("k", 0)) as Arc<dyn PhysicalExpr>],
            schema: schema(),
        };
        let fields: Vec<Field> = schema()
            .fields()
            .iter()
            .chain(schema().fields().iter())
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        StreamJoin::new(
            kind,
            time,
            input(),
            input(),
            None,
            Arc::new(Schema::new(fields)),
        )
        .expect("join")
    }

    fn rows(out: &[Message]) -> usize {
        out.iter()
            .map(|m| match m {
                Message::Batch(b) => b.num_rows(),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn interval_state_stays_bounded_as_the_watermark_moves() {
        // left.t - right.t in [-1000, 0]: a left row waits at most 1 s for its right rows.
        let mut j = join(
            JoinTime::Interval {
                left: 1,
                right: 1,
                lo: -1000,
                hi: 0,
            },
            JoinKind::Inner,
        );
        let mut out = vec![];
        let mut most = 0;
        for step in 0..1000i64 {
            let t = step * 100;
            let keys: Vec<i64> = (0..10).map(|i| (step + i) % 7).collect();
            j.process(Side::Left, batch(&keys, &[t; 10]), &mut out)
                .expect("left");
            j.process(Side::Right, batch(&keys, &[t + 500; 10]), &mut out)
                .expect("right");
            j.watermark(t, &mut out).expect("watermark");
            let [l, r] = j.kept_rows();
            most = most.max(l + r);
        }
        // 100 000 s of rows went through; only about 1.5 s of them may be kept.
        assert!(most <= 400, "kept up to {most} rows");
        assert!(rows(&out) > 0);
        // The output watermark trails by the interval's width.
        assert!(
            out.iter()
                .any(|m| matches!(m, Message::Watermark(w) if *w == 99_900 - 1000))
        );
    }

    #[test]
    fn a_window_is_joined_once_its_end_passes_and_then_forgotten() {
        let mut j = join(JoinTime::Window { left: 1, right: 1 }, JoinKind::Full);
        let mut out = vec![];
        // Window end 10: keys 1, 2 on the left, 2, 3 on the right.
        j.process(Side::Left, batch(&[1, 2], &[10, 10]), &mut out)
            .expect("left");
        j.process(Side::Right, batch(&[2, 3], &[10, 10]), &mut out)
            .expect("right");
        j.process(Side::Right, batch(&[2], &[20]), &mut out)
            .expect("right");
        assert_eq!(rows(&out), 0, "nothing before the window's end");
        j.watermark(10, &mut out).expect("watermark");
        // 2 met 2; 1 and 3 padded.
        assert_eq!(rows(&out), 3);
        assert_eq!(j.kept_rows(), [0, 1], "window 10 forgotten, window 20 open");
        // A row for a window already joined is late.
        out.clear();
        j.process(Side::Left, batch(&[2], &[10]), &mut out)
            .expect("late");
        assert_eq!(j.kept_rows(), [0, 1]);
        j.finish(&mut out).expect("finish");
        assert_eq!(rows(&out), 1, "window 20's right row, padded");
    }

    /// The changes as text, `+I 1 1970-01-01T00:00:00.010 null null`, in order.
    fn changes(out: &[Message]) -> Vec<String> {
        let batches: Vec<RecordBatch> = out
            .iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(crate::changelog::for_display(b).expect("display")),
                _ => None,
            })
            .collect();
        crate::format::encode::row_texts(&batches, " ").expect("format")
    }

    #[test]
    fn an_outer_regular_join_retracts_a_padded_row_when_its_first_partner_comes() {
        // Flink's streaming join: an unmatched row of an outer side is emitted padded at
        // once; its first partner retracts that row (-D) before the pair goes in (+I); a
        // later partner only adds its pair.
        let mut j = join(JoinTime::Unbounded, JoinKind::Full);
        assert!(j.emits_changes());
        let mut out = vec![];
        j.process(Side::Left, batch(&[1, 2], &[10, 20]), &mut out)
            .expect("left");
        j.process(Side::Right, batch(&[1, 3], &[30, 40]), &mut out)
            .expect("right");
        j.process(Side::Right, batch(&[1], &[50]), &mut out)
            .expect("right");
        j.process(Side::Left, batch(&[3], &[60]), &mut out)
            .expect("left");
        let t = |ms: i64| format!("1970-01-01T00:00:00.{ms:03}");
        assert_eq!(
            changes(&out),
            vec![
                format!("+I 1 {} null null", t(10)),
                format!("+I 2 {} null null", t(20)),
                format!("-D 1 {} null null", t(10)),
                format!("+I 1 {} 1 {}", t(10), t(30)),
                format!("+I null null 3 {}", t(40)),
                format!("+I 1 {} 1 {}", t(10), t(50)),
                format!("-D null null 3 {}", t(40)),
                format!("+I 3 {} 3 {}", t(60), t(40)),
            ]
        );
        // A checkpoint keeps which rows have met a partner: a restored join does not
        // retract the padded row of key 1 again.
        let state = j.snapshot().expect("snapshot").expect("state");
        let mut restored = join(JoinTime::Unbounded, JoinKind::Full);
        restored.restore(state).expect("restore");
        let mut out = vec![];
        restored
            .process(Side::Right, batch(&[1, 2], &[70, 80]), &mut out)
            .expect("right");
        assert_eq!(
            changes(&out),
            vec![
                format!("-D 2 {} null null", t(20)),
                format!("+I 1 {} 1 {}", t(10), t(70)),
                format!("+I 2 {} 2 {}", t(20), t(80)),
            ]
        );
    }

    #[test]
    fn a_regular_join_forgets_rows_after_the_state_ttl() {
        let mut j =
            join(JoinTime::Unbounded, JoinKind::Inner).with_ttl(Some(Duration::from_millis(50)));
        let mut out = vec![];
        j.process(Side::Left, batch(&[1, 2], &[0, 0]), &mut out)
            .expect("left");
        j.process(Side::Right, batch(&[1], &[0]), &mut out)
            .expect("right");
        assert_eq!(rows(&out), 1, "a match within the TTL");
        std::thread::sleep(Duration::from_millis(80));
        out.clear();
        j.process(Side::Right, batch(&[2], &[0]), &mut out)
            .expect("right");
        assert_eq!(rows(&out), 0, "the left rows have expired");
        assert_eq!(j.kept_rows(), [0, 1]);
    }

    #[test]
    fn a_lookup_join_holds_early_rows_until_its_table_is_whole_and_pads_once() {
        let mut j = join(JoinTime::Unbounded, JoinKind::Left).lookup(true);
        assert!(!j.emits_changes(), "a LEFT lookup join is append-only");
        let mut out = vec![];
        j.process(Side::Left, batch(&[1, 5], &[0, 0]), &mut out)
            .expect("early left rows");
        j.process(Side::Right, batch(&[1], &[0]), &mut out)
            .expect("the table's first row");
        assert_eq!(rows(&out), 0, "nothing is joined while the table is read");
        j.process(Side::Right, batch(&[5, 5], &[0, 0]), &mut out)
            .expect("the table's last rows");
        j.end_side(Side::Right, &mut out).expect("the table ends");
        // 1 meets one row, 5 meets two: three rows, none padded, none taken back.
        assert_eq!(rows(&out), 3);
        j.process(Side::Left, batch(&[7, 1], &[0, 0]), &mut out)
            .expect("later rows");
        // 7 meets nothing: padded once; 1 meets its row.
        assert_eq!(rows(&out), 5);
        let padded = out
            .iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(b.column(2).null_count()),
                _ => None,
            })
            .sum::<usize>();
        assert_eq!(padded, 1, "only 7 is padded");
        assert_eq!(j.kept_rows(), [0, 3], "only the table is kept");
    }

    #[test]
    fn a_lookup_join_passes_the_streams_watermark_once_its_table_is_whole() {
        let watermarks = |out: &[Message]| {
            out.iter()
                .filter_map(|m| match m {
                    Message::Watermark(w) => Some(*w),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let mut j = join(JoinTime::Unbounded, JoinKind::Left).lookup(true);
        let mut out = vec![];
        j.process(Side::Left, batch(&[1], &[100]), &mut out)
            .expect("an early row");
        j.watermark(100, &mut out).expect("watermark");
        assert!(
            watermarks(&out).is_empty(),
            "held while rows wait for the table"
        );
        j.end_side(Side::Right, &mut out).expect("the table ends");
        // The watermark held while the row waited goes out after it.
        assert_eq!(rows(&out), 1);
        assert_eq!(watermarks(&out), [100]);
        j.watermark(200, &mut out).expect("watermark");
        assert_eq!(watermarks(&out), [100, 200]);
        // The waiting row went out before the watermark that passes it.
        assert!(matches!(out.last(), Some(Message::Watermark(200))));
        // A regular join passes none.
        let mut regular = join(JoinTime::Unbounded, JoinKind::Left);
        let mut out = vec![];
        regular.end_side(Side::Right, &mut out).expect("end");
        regular.watermark(200, &mut out).expect("watermark");
        assert!(watermarks(&out).is_empty());
    }

    #[test]
    fn a_lookup_join_keeps_its_table_past_the_state_ttl() {
        let mut j = join(JoinTime::Unbounded, JoinKind::Inner)
            .lookup(true)
            .with_ttl(Some(Duration::from_millis(1)));
        let mut out = vec![];
        j.process(Side::Right, batch(&[1], &[0]), &mut out)
            .expect("the table");
        j.end_side(Side::Right, &mut out).expect("the table ends");
        std::thread::sleep(Duration::from_millis(20));
        j.process(Side::Left, batch(&[1], &[0]), &mut out)
            .expect("a row after the TTL");
        assert_eq!(rows(&out), 1, "the table is still there");
    }

    #[test]
    fn once_a_side_has_ended_the_other_side_keeps_nothing() {
        // A stream joined with a bounded table: the table (right) ends first.
        let mut j = join(JoinTime::Unbounded, JoinKind::Inner);
        let mut out = vec![];
        j.process(Side::Left, batch(&[1], &[0]), &mut out)
            .expect("early left row");
        j.process(Side::Right, batch(&[1, 2], &[0, 0]), &mut out)
            .expect("table");
        assert_eq!(rows(&out), 1, "the early row met the table");
        j.end_side(Side::Right, &mut out).expect("end");
        j.process(Side::Left, batch(&[2, 3], &[0, 0]), &mut out)
            .expect("later rows");
        assert_eq!(rows(&out), 2);
        assert_eq!(j.kept_rows(), [0, 2], "only the table is kept");
    }
}
