//! Event-time windows: assigning rows to windows and aggregating them incrementally.
//!
//! ## Slices
//!
//! TUMBLE, HOP and CUMULATE windows are cut into *slices* (panes): a tumbling window is one
//! slice; a hopping window of size 60 s and slide 10 s is six slices of gcd(size, slide) =
//! 10 s; a cumulating window of step 1 min is one slice per step. Each row updates exactly one
//! slice — one `GroupsAccumulator` update per batch and slice, whatever the slide — and a
//! window, when it fires, merges the partial states of its slices. A slice is freed when the
//! last window that needs it has fired, so state is (open slices × groups).
//!
//! ## Firing and lateness
//!
//! A window fires when the watermark reaches its last millisecond, `end - 1`, as in Flink
//! (see [`super::fired_through`]; on a zone's wall clock, that millisecond's instant:
//! [`WindowSpec::fires_at`]); `Watermark(i64::MAX)` (the end of a
//! bounded input) fires them all. A row counts in each of its windows that has not fired; a
//! row none of whose windows is still open is late: dropped and counted. Sources cut their
//! batches before every row that is behind the watermark of the rows before it (see
//! `source::watermark`), so the watermark an operator holds when it sees a row is the one
//! implied by the rows that arrived before it, and results do not depend on batch sizes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use crate::error::{Result, WeirError};
use crate::job::{Message, TaskMetrics};
use crate::operator::Operator;
use crate::source::watermark::to_epoch_millis;
use crate::sql::window::WindowKind;

/// The shape of a TUMBLE, HOP, CUMULATE or SESSION window, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// Window size (TUMBLE, HOP, CUMULATE's maximum size); the gap for SESSION.
    pub size: i64,
    /// HOP's slide, CUMULATE's step; equal to `size` for TUMBLE.
    pub slide: i64,
    /// Where the grid starts: windows start at `offset + k * slide` on the grid's clock.
    pub offset: i64,
    /// The clock the grid lies on: None for epoch milliseconds (a `TIMESTAMP`, or a
    /// `TIMESTAMP_LTZ` in a zone of one offset, folded into `offset`); a zone for a
    /// `TIMESTAMP_LTZ` in a zone whose offset changes (daylight saving time), whose
    /// windows lie on its wall clock as in Flink — a day window runs from midnight to
    /// midnight, 23 or 25 hours when the clocks change. Slices, window starts and ends
    /// inside the operators are then wall-clock milliseconds (see [`WindowSpec::grid_time`]);
    /// rows, watermarks and output columns stay instants.
    pub zone: Option<chrono_tz::Tz>,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The largest point of the grid `offset + k * step` at or below `t`.
pub fn floor_grid(t: i64, step: i64, offset: i64) -> i64 {
    t - (t - offset).rem_euclid(step)
}

impl WindowSpec {
    /// Event time `ts` (epoch ms) on the grid's clock: itself, or the zone's wall clock
    /// read as UTC (Flink's `toUtcTimestampMills`).
    pub fn grid_time(&self, ts: i64) -> i64 {
        match &self.zone {
            Some(z) => crate::sql::local_time::local_millis(ts, z),
            None => ts,
        }
    }

    /// The instant (epoch ms) of grid time `t`, for the `window_start` column (Java's
    /// `LocalDateTime.atZone` rules where the zone's clocks change: a repeated time is its
    /// earlier occurrence, so a window starting in the repeated hour starts at the first).
    pub fn instant(&self, t: i64) -> i64 {
        match &self.zone {
            Some(z) => crate::sql::local_time::instant_of_wall(t, z),
            None => t,
        }
    }

    /// The instant (epoch ms) of the window end at grid time `end`, for the `window_end`
    /// column: one past the instant the window fires ([`WindowSpec::fires_at`]), so that
    /// `window_end - 1` is its `window_time` and operators downstream (window joins, window
    /// Top-N) that fire a window when the watermark reaches `window_end - 1` fire it when
    /// its rows are all in. On a plain grid it is `end`; on a zone's wall clock it is
    /// `end`'s instant except where the clocks change (a repeated end is its later
    /// occurrence; an end whose last millisecond was skipped is the hour the clocks jumped
    /// to, plus 1 ms).
    pub fn end_instant(&self, end: i64) -> i64 {
        match &self.zone {
            Some(_) => self.fires_at(end).saturating_add(1),
            None => end,
        }
    }

    /// The watermark (epoch ms) at which the window or slice ending at grid time `end`
    /// fires, and its `window_time`: its last millisecond, `end - 1`, as an instant (on a
    /// zone's wall clock, Flink's `toEpochMillsForTimer`: a skipped time fires at the hour
    /// the clocks jumped to, a repeated one at its later occurrence). Non-decreasing in
    /// `end` where the zone's changes are whole hours, as that formula assumes (a zone
    /// changing by 30 minutes, `Australia/Lord_Howe`, can fire a window of its changing
    /// hour late).
    pub fn fires_at(&self, end: i64) -> i64 {
        let last = end.saturating_sub(1);
        match &self.zone {
            Some(z) => crate::sql::local_time::fire_instant_of_wall(last, z),
            None => last,
        }
    }

    /// The grid time of a window end given as an instant (a `window_end` column, from
    /// [`WindowSpec::end_instant`]): its last millisecond read on the wall clock, brought to
    /// the end of the slice holding the millisecond before it — which maps an end whose
    /// last millisecond the clocks skipped back to itself. Two window ends inside one
    /// skipped hour (a HOP or CUMULATE whose slices are shorter than the change) share
    /// one instant and cannot be told apart: they map to the later.
    pub fn grid_end(&self, end: i64) -> i64 {
        match &self.zone {
            Some(z) => {
                let last = crate::sql::local_time::local_millis(end.saturating_sub(1), z);
                let pane = self.pane();
                if pane > 1 {
                    floor_grid(last.saturating_sub(1), pane, self.offset).saturating_add(pane)
                } else {
                    last.saturating_add(1)
                }
            }
            None => end,
        }
    }

    /// The slice width.
    pub fn pane(&self) -> i64 {
        match self.kind {
            WindowKind::Tumble => self.size,
            WindowKind::Hop => gcd(self.size, self.slide),
            WindowKind::Cumulate => self.slide,
            WindowKind::Session => self.size,
        }
    }

    /// The end of the slice holding event time `ts`.
    pub fn slice_end(&self, ts: i64) -> i64 {
        let pane = self.pane();
        floor_grid(ts, pane, self.offset).saturating_add(pane)
    }

    /// The start of the window ending at `end`.
    pub fn window_start(&self, end: i64) -> i64 {
        match self.kind {
            WindowKind::Cumulate => floor_grid(end - 1, self.size, self.offset),
            _ => end - self.size,
        }
    }

    /// The ends of every window holding the slice that ends at `slice_end`, ascending.
    pub fn window_ends(&self, slice_end: i64) -> impl Iterator<Item = i64> + use<> {
        let pane = self.pane();
        let (first, last, step) = match self.kind {
            WindowKind::Tumble | WindowKind::Session => (slice_end, slice_end, self.size),
            WindowKind::Hop => {
                // Windows start on the grid `offset + k * slide` and hold the slice when
                // they start at or before it and end at or after it.
                let start = slice_end - pane;
                let first_start = floor_grid(
                    slice_end - self.size + self.slide - 1,
                    self.slide,
                    self.offset,
                );
                let last_start = floor_grid(start, self.slide, self.offset);
                (first_start + self.size, last_start + self.size, self.slide)
            }
            WindowKind::Cumulate => {
                let base = floor_grid(slice_end - pane, self.size, self.offset);
                (slice_end, base + self.size, self.slide)
            }
        };
        let step = step.max(1);
        (0..)
            .map(move |k: i64| first + k * step)
            .take_while(move |e| *e <= last)
    }

    /// The end of the last window holding the slice that ends at `slice_end`.
    pub fn last_window_end(&self, slice_end: i64) -> i64 {
        self.window_ends(slice_end).last().unwrap_or(slice_end)
    }

    /// The windows holding event time `ts`, as (start, end).
    pub fn windows_of(&self, ts: i64) -> Vec<(i64, i64)> {
        let s = self.slice_end(ts);
        self.window_ends(s)
            .map(|e| (self.window_start(e), e))
            .collect()
    }
}

/// A timestamp array of `n` copies of `ms`, typed as `dt`.
fn timestamp_column(ms: i64, n: usize, dt: &DataType) -> Result<ArrayRef> {
    let tz = match dt {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let a = ScalarValue::TimestampMillisecond(Some(ms), tz).to_array_of_size(n)?;
    if a.data_type() == dt {
        Ok(a)
    } else {
        Ok(cast(&a, dt)?)
    }
}

fn timestamp_array(ms: Vec<i64>, dt: &DataType) -> Result<ArrayRef> {
    let tz = match dt {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let a: ArrayRef = Arc::new(TimestampMillisecondArray::from(ms).with_timezone_opt(tz));
    if a.data_type() == dt {
        Ok(a)
    } else {
        Ok(cast(&a, dt)?)
    }
}

/// Appends `window_start`, `window_end` and `window_time` to each row, one output row per
/// (row, window): what a window TVF yields when it is not aggregated. In *slice* mode (under
/// a window aggregate) it appends the row's slice instead, and rows are not multiplied.
pub struct WindowAssignOperator {
    spec: WindowSpec,
    time_col: usize,
    schema: SchemaRef,
    slices: bool,
    /// Where rows too late for all their windows go, when the source names a table.
    late_sink: Option<Box<dyn crate::sink::Sink>>,
    /// With checkpoints: the late sink commits in two phases, as the job's sink does, but
    /// from this operator (prepared at each barrier, committed when the checkpoint
    /// completes).
    checkpointer: Option<Arc<crate::checkpoint::Checkpointer>>,
    /// The late sink's pending files as of the last barrier, part of the snapshot.
    late_state: Option<Vec<RecordBatch>>,
    /// The late sink's pending files in the restored checkpoint, committed at `open`.
    late_restored: Option<Vec<RecordBatch>>,
    /// The checkpoint the late sink's last files were prepared for at the end of the input:
    /// the sink completes (success files) only once it has completed.
    final_prepared: Option<u64>,
    watermark: i64,
    metrics: Option<TaskMetrics>,
}

impl WindowAssignOperator {
    pub fn new(spec: WindowSpec, time_col: usize, schema: SchemaRef, slices: bool) -> Self {
        WindowAssignOperator {
            spec,
            time_col,
            schema,
            slices,
            late_sink: None,
            checkpointer: None,
            late_state: None,
            late_restored: None,
            final_prepared: None,
            watermark: i64::MIN,
            metrics: None,
        }
    }

    pub fn with_late_sink(mut self, sink: Option<Box<dyn crate::sink::Sink>>) -> Self {
        self.late_sink = sink;
        self
    }

    /// Sends the rows of `batch` that are too late for every window of theirs to the late
    /// sink, and returns the others.
    fn divert_late(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let Some(sink) = &mut self.late_sink else {
            return Ok(batch);
        };
        let ts = to_epoch_millis(batch.column(self.time_col).as_ref())?;
        let wm = self.watermark;
        let spec = self.spec;
        let late: BooleanArray = (0..ts.len())
            .map(|i| {
                Some(
                    ts.is_null(i)
                        || spec.fires_at(
                            spec.last_window_end(spec.slice_end(spec.grid_time(ts.value(i)))),
                        ) <= wm,
                )
            })
            .collect();
        let n = late.true_count();
        if n == 0 {
            return Ok(batch);
        }
        let late_rows = datafusion::arrow::compute::filter_record_batch(&batch, &late)?;
        crate::job::blocking(|| sink.write(&late_rows))?;
        if let Some(j) = &self.metrics {
            j.add_late(n as u64);
        }
        let keep = datafusion::arrow::compute::not(&late)?;
        Ok(datafusion::arrow::compute::filter_record_batch(
            &batch, &keep,
        )?)
    }
}

impl Operator for WindowAssignOperator {
    /// Row by row, unless rows too late go to a late-data table (one writer).
    fn distribution(&self) -> super::Distribution {
        if self.late_sink.is_some() {
            super::Distribution::Single
        } else {
            super::Distribution::Forward
        }
    }

    fn name(&self) -> String {
        format!(
            "window {}{}",
            self.spec.kind.name(),
            if self.slices { " (slices)" } else { "" }
        )
    }

    fn attach(&mut self, metrics: &TaskMetrics) {
        self.metrics = Some(metrics.clone());
    }

    /// With checkpoints, opens the late-data sink as the job's sink is opened: it first
    /// commits the late files the restored checkpoint had prepared, then removes the
    /// in-progress files earlier runs of this job left (their rows come again from the
    /// restored positions).
    fn open(&mut self, checkpointer: Option<&Arc<crate::checkpoint::Checkpointer>>) -> Result<()> {
        let (Some(sink), Some(cp)) = (&mut self.late_sink, checkpointer) else {
            return Ok(());
        };
        let ctx = crate::sink::SinkContext {
            job: cp.config.job.clone(),
            run: cp.run.clone(),
            checkpointer: Some(cp.clone()),
            restored: self.late_restored.take(),
        };
        crate::job::blocking(|| sink.open(&ctx))?;
        self.checkpointer = Some(cp.clone());
        Ok(())
    }

    /// Phase one for the late-data sink: its files so far become pending, named in this
    /// checkpoint's state.
    fn prepare_snapshot(&mut self, checkpoint: u64) -> Result<()> {
        if let (Some(s), Some(_)) = (&mut self.late_sink, &self.checkpointer) {
            self.late_state = crate::job::blocking(|| s.pre_commit(checkpoint))?;
        }
        Ok(())
    }

    /// The watermark (a one-row batch), then the late-data sink's pending files (a batch
    /// of `kind`, `from`, `to` paths), if it has any.
    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        let mut state = super::numbers_state(&[("watermark", self.watermark)])?.unwrap_or_default();
        state.extend(self.late_state.iter().flatten().cloned());
        Ok(Some(state))
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        self.watermark = super::number_from(&state, "watermark", "window")?;
        let late: Vec<RecordBatch> = state.into_iter().skip(1).collect();
        self.late_restored = (!late.is_empty()).then_some(late);
        Ok(())
    }

    /// Phase two for the late-data sink: its files of checkpoints up to `checkpoint`
    /// become visible. Late rows thus appear once each checkpoint completes, exactly once
    /// across restarts.
    fn notify_checkpoint_complete(&mut self, checkpoint: u64) -> Result<()> {
        if let (Some(s), Some(_)) = (&mut self.late_sink, &self.checkpointer) {
            crate::job::blocking(|| s.commit(checkpoint))?;
        }
        Ok(())
    }

    fn awaits_final_checkpoint(&self) -> bool {
        self.late_sink.is_some() && self.checkpointer.is_some()
    }

    /// After the job's sink has ended: what no completed checkpoint covers is thrown away
    /// (a stopped job's rows after its savepoint, which the next run diverts again); a job
    /// that ran to its end then completes the late sink (its partitions' success files).
    fn close(&mut self, completed: u64) -> Result<()> {
        let (Some(s), Some(cp)) = (&mut self.late_sink, &self.checkpointer) else {
            return Ok(());
        };
        let finish = !cp.is_stopping() && self.final_prepared.is_some_and(|f| completed >= f);
        crate::job::blocking(|| {
            s.discard()?;
            if finish { s.finish() } else { Ok(()) }
        })?;
        Ok(())
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        if let Some(s) = &mut self.late_sink {
            crate::job::blocking(|| s.on_watermark(watermark))?;
        }
        out.push(Message::Watermark(watermark));
        Ok(())
    }

    /// Without checkpoints, the late-data sink commits now. With them, its last files are
    /// prepared for the job's final checkpoint and committed when it completes (see
    /// [`Operator::close`]); a stopping job's go nowhere.
    fn finish(&mut self, _out: &mut Vec<Message>) -> Result<()> {
        let Some(s) = &mut self.late_sink else {
            return Ok(());
        };
        match &self.checkpointer {
            None => crate::job::blocking(|| s.finish()),
            Some(cp) if cp.is_stopping() => Ok(()),
            Some(cp) => {
                let id = cp.next_checkpoint();
                self.late_state = crate::job::blocking(|| s.pre_commit(id))?;
                self.final_prepared = Some(id);
                Ok(())
            }
        }
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let batch = self.divert_late(batch)?;
        let ts = to_epoch_millis(batch.column(self.time_col).as_ref())?;
        let mut idx: Vec<u32> = Vec::with_capacity(batch.num_rows());
        let (mut starts, mut ends) = (
            Vec::with_capacity(batch.num_rows()),
            Vec::with_capacity(batch.num_rows()),
        );
        for i in 0..ts.len() {
            if ts.is_null(i) {
                continue;
            }
            let t = self.spec.grid_time(ts.value(i));
            if self.slices {
                // Slices stay on the grid's clock: only the window aggregate reads them.
                let e = self.spec.slice_end(t);
                idx.push(i as u32);
                starts.push(e - self.spec.pane());
                ends.push(e);
            } else {
                for (s, e) in self.spec.windows_of(t) {
                    idx.push(i as u32);
                    starts.push(s);
                    ends.push(e);
                }
            }
        }
        let n = batch.num_columns();
        let indices = UInt32Array::from(idx);
        let mut cols = Vec::with_capacity(n + 3);
        let identity = indices.len() == batch.num_rows();
        for c in batch.columns() {
            cols.push(if identity {
                c.clone()
            } else {
                take(c.as_ref(), &indices, None)?
            });
        }
        let times: Vec<i64> = ends.iter().map(|e| self.spec.fires_at(*e)).collect();
        if !self.slices && self.spec.zone.is_some() {
            for t in starts.iter_mut() {
                *t = self.spec.instant(*t);
            }
            for t in ends.iter_mut() {
                *t = self.spec.end_instant(*t);
            }
        }
        cols.push(timestamp_array(starts, self.schema.field(n).data_type())?);
        cols.push(timestamp_array(ends, self.schema.field(n + 1).data_type())?);
        cols.push(timestamp_array(
            times,
            self.schema.field(n + 2).data_type(),
        )?);
        out.push(Message::Batch(RecordBatch::try_new(
            self.schema.clone(),
            cols,
        )?));
        Ok(())
    }
}

/// Each aggregate call's evaluated arguments.
pub type ArgColumns = Vec<Vec<ArrayRef>>;
/// Each aggregate call's evaluated `FILTER (WHERE ...)`, if it has one.
pub type FilterColumns = Vec<Option<ArrayRef>>;

/// The aggregate calls of a window aggregate, compiled.
pub struct Aggregates {
    pub exprs: Vec<Arc<AggregateFunctionExpr>>,
    /// Each call's argument expressions, over the aggregate's input.
    pub args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Each call's `FILTER (WHERE ...)`.
    pub filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
}

impl Aggregates {
    /// The calls, as `max(price): Int64`, for [`Operator::signature`].
    pub fn signature(&self) -> String {
        self.exprs
            .iter()
            .map(|e| format!("{}: {}", e.name(), e.field().data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.exprs
            .iter()
            .map(|e| -> Result<Box<dyn GroupsAccumulator>> {
                if e.groups_accumulator_supported() {
                    Ok(e.create_groups_accumulator()?)
                } else {
                    let e = e.clone();
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
                        e.create_accumulator()
                    })))
                }
            })
            .collect()
    }

    /// Arguments and filters of every call, evaluated over `batch`.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<(ArgColumns, FilterColumns)> {
        let n = batch.num_rows();
        let args = self
            .args
            .iter()
            .map(|a| {
                a.iter()
                    .map(|e| Ok(e.evaluate(batch)?.into_array(n)?))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let filters = self
            .filters
            .iter()
            .map(|f| match f {
                Some(f) => Ok(Some(f.evaluate(batch)?.into_array(n)?)),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((args, filters))
    }
}

/// Where each output column of a window aggregate comes from.
#[derive(Debug, Clone, Copy)]
pub enum OutCol {
    Key(usize),
    WindowStart,
    WindowEnd,
    WindowTime,
    Agg(usize),
}

/// The group keys of one slice or window, and a map from key to group index.
struct Groups {
    /// None when the aggregate has no keys besides the window: one group.
    values: Option<Box<dyn GroupValues>>,
    len: usize,
}

impl Groups {
    fn new(key_schema: &SchemaRef) -> Result<Groups> {
        let values = if key_schema.fields().is_empty() {
            None
        } else {
            Some(new_group_values(key_schema.clone(), &GroupOrdering::None)?)
        };
        Ok(Groups { values, len: 0 })
    }

    fn intern(&mut self, keys: &[ArrayRef], rows: usize, ids: &mut Vec<usize>) -> Result<()> {
        match &mut self.values {
            Some(v) => {
                v.intern(keys, ids)?;
                self.len = v.len();
            }
            None => {
                ids.clear();
                ids.resize(rows, 0);
                self.len = 1;
            }
        }
        Ok(())
    }

    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        match &mut self.values {
            Some(v) => Ok(v.emit(EmitTo::All)?),
            None => Ok(vec![]),
        }
    }
}

enum SliceState {
    /// Taking rows.
    Live {
        groups: Groups,
        accs: Vec<Box<dyn GroupsAccumulator>>,
    },
    /// Read by a window that fired; its keys and partial states, for the windows after.
    Frozen(Arc<Frozen>),
}

/// A partial aggregate at rest: group keys and each accumulator's state, as Arrow arrays.
pub struct Frozen {
    keys: Vec<ArrayRef>,
    len: usize,
    states: Vec<Vec<ArrayRef>>,
}

/// The slices of consecutive sliding windows, as a FIFO with two stacks: `front` holds the
/// oldest slices each with the merged state of itself and every later front slice, `back`
/// the newer slices with one merged state for all of them. A window is then two partial
/// states however many slices it spans, and each slice is merged a bounded number of times
/// — which keeps HOP's cost independent of size / slide.
#[derive(Default)]
struct SlideCache {
    front: std::collections::VecDeque<(i64, Arc<Frozen>)>,
    back: Vec<(i64, Arc<Frozen>)>,
    /// The back slices merged, as live accumulators (each slice is merged in once).
    back_state: Option<(Groups, Vec<Box<dyn GroupsAccumulator>>)>,
    /// The end of the newest slice taken in.
    last: Option<i64>,
}

impl SlideCache {
    fn clear(&mut self) {
        *self = SlideCache::default();
    }

    fn holds(&self, slice_end: i64) -> bool {
        self.last.is_some_and(|l| slice_end <= l)
            && (self.front.front().is_some_and(|(e, _)| *e <= slice_end)
                || self.back.first().is_some_and(|(e, _)| *e <= slice_end))
    }
}

/// A window aggregate over TUMBLE, HOP or CUMULATE windows.
pub struct WindowAggregateOperator {
    spec: WindowSpec,
    /// True when the input carries slices (from a slice-mode assign); false when it carries
    /// whole windows (each row already expanded to its windows).
    sliced: bool,
    /// The input column holding each row's slice (or window) end.
    end_col: usize,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    key_schema: SchemaRef,
    aggs: Aggregates,
    layout: Vec<OutCol>,
    schema: SchemaRef,
    slices: BTreeMap<i64, SliceState>,
    /// Ends of windows with rows, not yet fired.
    pending: BTreeSet<i64>,
    watermark: i64,
    /// A watermark whose windows are still being fired, a chunk at a time (see
    /// [`Operator::resume`]); it goes downstream after the last of them.
    firing: Option<i64>,
    metrics: Option<TaskMetrics>,
    late: u64,
    ids: Vec<usize>,
    cache: SlideCache,
}

impl WindowAggregateOperator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: WindowSpec,
        sliced: bool,
        end_col: usize,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        key_schema: SchemaRef,
        aggs: Aggregates,
        layout: Vec<OutCol>,
        schema: SchemaRef,
    ) -> Self {
        WindowAggregateOperator {
            spec,
            sliced,
            end_col,
            keys,
            key_schema,
            aggs,
            layout,
            schema,
            slices: BTreeMap::new(),
            pending: BTreeSet::new(),
            firing: None,
            watermark: i64::MIN,
            metrics: None,
            late: 0,
            ids: vec![],
            cache: SlideCache::default(),
        }
    }

    /// Rows dropped as late so far.
    pub fn late_rows(&self) -> u64 {
        self.late
    }

    fn window_ends(&self, slice_end: i64) -> Vec<i64> {
        if self.sliced {
            self.spec.window_ends(slice_end).collect()
        } else {
            vec![slice_end]
        }
    }

    fn count_late(&mut self, n: usize) {
        self.late += n as u64;
        if let Some(j) = &self.metrics {
            j.add_late(n as u64);
        }
    }

    fn live_slice(&mut self, end: i64) -> Result<&mut SliceState> {
        let new = !self.slices.contains_key(&end);
        if new {
            if self.cache.last.is_some_and(|l| end <= l) {
                // A slice that windows already taken in should have held.
                self.cache.clear();
            }
            for e in self.window_ends(end) {
                if self.spec.fires_at(e) > self.watermark {
                    self.pending.insert(e);
                }
            }
            self.slices.insert(
                end,
                SliceState::Live {
                    groups: Groups::new(&self.key_schema)?,
                    accs: self.aggs.accumulators()?,
                },
            );
        }
        let Some(slice) = self.slices.get_mut(&end) else {
            return Err(WeirError::internal("window slice vanished"));
        };
        if let SliceState::Frozen(f) = slice {
            // A row late for some of this slice's windows but not all: thaw it, and forget
            // merged states that hold its old contents.
            let mut groups = Groups::new(&self.key_schema)?;
            let mut ids = vec![];
            groups.intern(&f.keys, f.len, &mut ids)?;
            let mut accs = self.aggs.accumulators()?;
            for (acc, st) in accs.iter_mut().zip(f.states.iter()) {
                acc.merge_batch(st, &ids, groups.len)?;
            }
            *slice = SliceState::Live { groups, accs };
            if self.cache.holds(end) {
                self.cache.clear();
            }
        }
        let Some(slice) = self.slices.get_mut(&end) else {
            return Err(WeirError::internal("window slice vanished"));
        };
        Ok(slice)
    }

    fn update(
        &mut self,
        end: i64,
        keys: &[ArrayRef],
        args: &[Vec<ArrayRef>],
        filters: &[Option<ArrayRef>],
        rows: usize,
    ) -> Result<()> {
        let mut ids = std::mem::take(&mut self.ids);
        let slice = self.live_slice(end)?;
        let SliceState::Live { groups, accs } = slice else {
            return Err(WeirError::internal("window slice is not live"));
        };
        groups.intern(keys, rows, &mut ids)?;
        for ((acc, a), f) in accs.iter_mut().zip(args).zip(filters) {
            let f = f
                .as_ref()
                .and_then(|f| f.as_any().downcast_ref::<BooleanArray>());
            acc.update_batch(a, &ids, f, groups.len)?;
        }
        self.ids = ids;
        Ok(())
    }

    /// Fires the windows that watermark `wm` completes, stopping once a step has produced
    /// [`FIRE_CHUNK_ROWS`] rows while more are due; returns true when every due window has
    /// fired. The run loop sends each chunk on before the next (see
    /// [`Operator::resume`]), so a watermark that completes a million windows (the end of
    /// the input) never holds all their rows at once.
    fn fire_until(&mut self, wm: i64, out: &mut Vec<Message>) -> Result<bool> {
        let mut rows = 0;
        while let Some(&e) = self.pending.first() {
            if self.spec.fires_at(e) > wm {
                break;
            }
            if rows >= FIRE_CHUNK_ROWS {
                return Ok(false);
            }
            self.pending.pop_first();
            if let Some(b) = self.fire(e)? {
                rows += b.num_rows();
                out.push(Message::Batch(b));
            }
        }
        // Free the slices whose last window has fired.
        let done: Vec<i64> = self
            .slices
            .keys()
            .copied()
            .take_while(|s| self.spec.fires_at(*s) <= wm)
            .filter(|s| self.spec.fires_at(self.last_window_end(*s)) <= wm)
            .collect();
        for s in done {
            self.slices.remove(&s);
        }
        Ok(true)
    }

    fn last_window_end(&self, slice_end: i64) -> i64 {
        if self.sliced {
            self.spec.last_window_end(slice_end)
        } else {
            slice_end
        }
    }

    /// Emits the window ending at `end`.
    fn fire(&mut self, end: i64) -> Result<Option<RecordBatch>> {
        let start = self.spec.window_start(end);
        let members: Vec<i64> = if self.sliced {
            self.slices
                .range(start + 1..=end)
                .map(|(k, _)| *k)
                .collect()
        } else {
            self.slices
                .contains_key(&end)
                .then_some(end)
                .into_iter()
                .collect()
        };
        if members.is_empty() {
            return Ok(None);
        }
        // One live slice used by no later window: evaluate it in place.
        if members.len() == 1
            && self.last_window_end(members[0]) == end
            && matches!(self.slices.get(&members[0]), Some(SliceState::Live { .. }))
            && let Some(SliceState::Live {
                mut groups,
                mut accs,
            }) = self.slices.remove(&members[0])
        {
            let n = groups.len;
            let keys = groups.emit()?;
            let values = accs
                .iter_mut()
                .map(|a| Ok(a.evaluate(EmitTo::All)?))
                .collect::<Result<Vec<_>>>()?;
            return self.output(start, end, keys, values, n).map(Some);
        }
        if !self.sliced {
            let parts: Vec<Arc<Frozen>> = members
                .iter()
                .map(|m| self.freeze(*m))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect();
            return self.emit_parts(start, end, &parts);
        }
        let parts = self.slide(start, end)?;
        self.emit_parts(start, end, &parts)
    }

    /// The slice ending at `end` in frozen form (freezing it if it is live).
    fn freeze(&mut self, end: i64) -> Result<Option<Arc<Frozen>>> {
        let Some(slice) = self.slices.get_mut(&end) else {
            return Ok(None);
        };
        if let SliceState::Live { groups, accs } = slice {
            let len = groups.len;
            let keys = groups.emit()?;
            let states = accs
                .iter_mut()
                .map(|a| Ok(a.state(EmitTo::All)?))
                .collect::<Result<Vec<_>>>()?;
            *slice = SliceState::Frozen(Arc::new(Frozen { keys, len, states }));
        }
        match slice {
            SliceState::Frozen(f) => Ok(Some(f.clone())),
            SliceState::Live { .. } => Ok(None),
        }
    }

    /// Merges partial states into one.
    fn merge(&self, parts: &[Arc<Frozen>]) -> Result<Arc<Frozen>> {
        let (mut groups, mut accs) = self.combine(parts)?;
        let len = groups.len;
        let keys = groups.emit()?;
        let states = accs
            .iter_mut()
            .map(|a| Ok(a.state(EmitTo::All)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Frozen { keys, len, states }))
    }

    fn combine(&self, parts: &[Arc<Frozen>]) -> Result<(Groups, Vec<Box<dyn GroupsAccumulator>>)> {
        let mut groups = Groups::new(&self.key_schema)?;
        let mut accs = self.aggs.accumulators()?;
        let mut ids = vec![];
        for p in parts {
            if p.len == 0 {
                continue;
            }
            groups.intern(&p.keys, p.len, &mut ids)?;
            for (acc, st) in accs.iter_mut().zip(&p.states) {
                acc.merge_batch(st, &ids, groups.len)?;
            }
        }
        Ok((groups, accs))
    }

    fn emit_parts(
        &self,
        start: i64,
        end: i64,
        parts: &[Arc<Frozen>],
    ) -> Result<Option<RecordBatch>> {
        let (mut groups, mut accs) = self.combine(parts)?;
        let n = groups.len;
        if n == 0 {
            return Ok(None);
        }
        let keys = groups.emit()?;
        let values = accs
            .iter_mut()
            .map(|a| Ok(a.evaluate(EmitTo::All)?))
            .collect::<Result<Vec<_>>>()?;
        self.output(start, end, keys, values, n).map(Some)
    }

    /// The partial states that make up the window (start, end]: at most two, from the
    /// sliding cache.
    fn slide(&mut self, start: i64, end: i64) -> Result<Vec<Arc<Frozen>>> {
        // Take in the slices up to `end`.
        let from = self.cache.last.map(|l| l + 1).unwrap_or(i64::MIN);
        let new: Vec<i64> = self.slices.range(from..=end).map(|(k, _)| *k).collect();
        for s in new {
            if let Some(f) = self.freeze(s)? {
                let (groups, accs) = match &mut self.cache.back_state {
                    Some(b) => b,
                    None => self
                        .cache
                        .back_state
                        .insert((Groups::new(&self.key_schema)?, self.aggs.accumulators()?)),
                };
                if f.len > 0 {
                    let mut ids = std::mem::take(&mut self.ids);
                    groups.intern(&f.keys, f.len, &mut ids)?;
                    for (acc, st) in accs.iter_mut().zip(&f.states) {
                        acc.merge_batch(st, &ids, groups.len)?;
                    }
                    self.ids = ids;
                }
                self.cache.back.push((s, f));
            }
        }
        self.cache.last = Some(self.cache.last.map_or(end, |l| l.max(end)));
        // Drop the slices at or before `start`.
        loop {
            if self.cache.front.is_empty() {
                if self.cache.back.first().is_none_or(|(e, _)| *e > start) {
                    break;
                }
                // Flip: the back slices become the front, each with its suffix state.
                let back = std::mem::take(&mut self.cache.back);
                self.cache.back_state = None;
                let mut suffix: Option<Arc<Frozen>> = None;
                for (e, f) in back.into_iter().rev() {
                    let st = match &suffix {
                        Some(sfx) => self.merge(&[f, sfx.clone()])?,
                        None => f,
                    };
                    suffix = Some(st.clone());
                    self.cache.front.push_front((e, st));
                }
            }
            match self.cache.front.front() {
                Some((e, _)) if *e <= start => {
                    self.cache.front.pop_front();
                }
                _ => break,
            }
        }
        let mut parts = vec![];
        if let Some((_, f)) = self.cache.front.front() {
            parts.push(f.clone());
        }
        if let Some((mut groups, mut accs)) = self.cache.back_state.take() {
            // Read the back state out, then put it back for the windows after.
            let len = groups.len;
            let keys = groups.emit()?;
            let states = accs
                .iter_mut()
                .map(|a| Ok(a.state(EmitTo::All)?))
                .collect::<Result<Vec<_>>>()?;
            let f = Arc::new(Frozen { keys, len, states });
            let (g, a) = self.combine(std::slice::from_ref(&f))?;
            self.cache.back_state = Some((g, a));
            parts.push(f);
        }
        Ok(parts)
    }

    fn output(
        &self,
        start: i64,
        end: i64,
        keys: Vec<ArrayRef>,
        values: Vec<ArrayRef>,
        n: usize,
    ) -> Result<RecordBatch> {
        let mut cols = Vec::with_capacity(self.layout.len());
        for (i, c) in self.layout.iter().enumerate() {
            let dt = self.schema.field(i).data_type();
            let a = match c {
                OutCol::Key(k) => keys
                    .get(*k)
                    .cloned()
                    .ok_or_else(|| WeirError::internal("window aggregate key missing"))?,
                OutCol::WindowStart => timestamp_column(self.spec.instant(start), n, dt)?,
                OutCol::WindowEnd => timestamp_column(self.spec.end_instant(end), n, dt)?,
                OutCol::WindowTime => timestamp_column(self.spec.fires_at(end), n, dt)?,
                OutCol::Agg(j) => values
                    .get(*j)
                    .cloned()
                    .ok_or_else(|| WeirError::internal("window aggregate value missing"))?,
            };
            cols.push(if a.data_type() == dt {
                a
            } else {
                cast(&a, dt)?
            });
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }
}

const SLICE_END: &str = "weir.slice_end";
/// Rows a window aggregate fires in one step before it lets the run loop send them on.
pub const FIRE_CHUNK_ROWS: usize = 64 * 1024;
const WATERMARK: &str = "weir.watermark";

impl WindowAggregateOperator {
    /// State layout: one batch per slice (its group keys `k0..`, then every accumulator's
    /// state columns `a<j>_<i>`; the slice end in the schema metadata), then one batch of
    /// the pending window ends with the watermark in its metadata.
    fn take_snapshot(&mut self) -> Result<Vec<RecordBatch>> {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{Field, Schema};
        use datafusion::arrow::record_batch::RecordBatchOptions;
        let ends: Vec<i64> = self.slices.keys().copied().collect();
        let mut out = vec![];
        for end in ends {
            let Some(f) = self.freeze(end)? else { continue };
            let mut fields = vec![];
            let mut cols: Vec<ArrayRef> = vec![];
            for (i, k) in f.keys.iter().enumerate() {
                fields.push(Field::new(format!("k{i}"), k.data_type().clone(), true));
                cols.push(k.clone());
            }
            for (j, st) in f.states.iter().enumerate() {
                for (i, c) in st.iter().enumerate() {
                    fields.push(Field::new(format!("a{j}_{i}"), c.data_type().clone(), true));
                    cols.push(c.clone());
                }
            }
            let schema = Schema::new(fields).with_metadata(
                [(SLICE_END.to_string(), end.to_string())]
                    .into_iter()
                    .collect(),
            );
            out.push(RecordBatch::try_new_with_options(
                Arc::new(schema),
                cols,
                &RecordBatchOptions::new().with_row_count(Some(f.len)),
            )?);
        }
        let pending: Vec<i64> = self.pending.iter().copied().collect();
        let schema = Schema::new(vec![Field::new("pending", DataType::Int64, false)])
            .with_metadata(
                [(WATERMARK.to_string(), self.watermark.to_string())]
                    .into_iter()
                    .collect(),
            );
        out.push(RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from(pending))],
        )?);
        Ok(out)
    }

    fn put_back(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        let bad = |m: &str| WeirError::internal(format!("window state does not fit: {m}"));
        self.slices.clear();
        self.pending.clear();
        self.cache.clear();
        let widths: Vec<usize> = self
            .aggs
            .exprs
            .iter()
            .map(|e| Ok(e.state_fields()?.len()))
            .collect::<Result<Vec<_>>>()?;
        let nkeys = self.key_schema.fields().len();
        for b in state {
            let meta = b.schema().metadata().clone();
            if let Some(wm) = meta.get(WATERMARK) {
                self.watermark = wm.parse().map_err(|_| bad("watermark"))?;
                let ends = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .ok_or_else(|| bad("pending window ends"))?;
                self.pending.extend(ends.values().iter().copied());
                continue;
            }
            let end: i64 = meta
                .get(SLICE_END)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad("a slice without its end"))?;
            if b.num_columns() != nkeys + widths.iter().sum::<usize>() {
                return Err(bad("column count"));
            }
            let keys = b.columns()[..nkeys].to_vec();
            let mut at = nkeys;
            let mut states = vec![];
            for w in &widths {
                states.push(b.columns()[at..at + w].to_vec());
                at += w;
            }
            let mut frozen = Frozen {
                keys,
                len: b.num_rows(),
                states,
            };
            // After a change of parallelism a slice comes in parts, one per old subtask
            // (their keys are disjoint).
            if let Some(SliceState::Frozen(had)) = self.slices.get(&end) {
                let concat = |a: &[ArrayRef], b: &[ArrayRef]| -> Result<Vec<ArrayRef>> {
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| {
                            Ok(datafusion::arrow::compute::concat(&[
                                x.as_ref(),
                                y.as_ref(),
                            ])?)
                        })
                        .collect()
                };
                frozen = Frozen {
                    keys: concat(&had.keys, &frozen.keys)?,
                    len: had.len + frozen.len,
                    states: had
                        .states
                        .iter()
                        .zip(&frozen.states)
                        .map(|(x, y)| concat(x, y))
                        .collect::<Result<Vec<_>>>()?,
                };
            }
            self.slices
                .insert(end, SliceState::Frozen(Arc::new(frozen)));
        }
        Ok(())
    }
}

impl Operator for WindowAggregateOperator {
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

    /// Groups per slice (or window) summed over the slices kept, and their keys' and
    /// accumulators' bytes (live slices) or arrays' (frozen ones).
    fn state_size(&self) -> Option<(u64, u64)> {
        let (mut rows, mut bytes) = (0u64, 0u64);
        for s in self.slices.values() {
            match s {
                SliceState::Live { groups, accs } => {
                    rows += groups.len as u64;
                    bytes += groups.values.as_ref().map_or(0, |v| v.size()) as u64;
                    bytes += accs.iter().map(|a| a.size() as u64).sum::<u64>();
                }
                SliceState::Frozen(f) => {
                    rows += f.len as u64;
                    bytes += f
                        .keys
                        .iter()
                        .chain(f.states.iter().flatten())
                        .map(|a| a.get_array_memory_size() as u64)
                        .sum::<u64>();
                }
            }
        }
        Some((rows, bytes))
    }

    /// Keys, aggregates and, when the windows are not on the plain grid, its offset (a
    /// window `OFFSET`, or a session zone's over a `TIMESTAMP_LTZ`): a checkpoint whose
    /// slices lie on another grid is refused rather than mixed in.
    fn signature(&self) -> String {
        format!(
            "{} [keys: {}] [{}]{}{}",
            self.name(),
            self.key_schema
                .fields()
                .iter()
                .map(|f| f.data_type().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            self.aggs.signature(),
            if self.spec.offset == 0 {
                String::new()
            } else {
                format!(" [grid offset {} ms]", self.spec.offset)
            },
            match &self.spec.zone {
                Some(z) => format!(" [wall clock {z}]"),
                None => String::new(),
            }
        )
    }

    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        self.take_snapshot().map(Some)
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        self.put_back(state)
    }

    /// A slice's keys are its first columns; the windows pending and the watermark go to
    /// every subtask.
    fn state_keys(&self, batch: &RecordBatch) -> Result<Option<Vec<ArrayRef>>> {
        let nkeys = self.key_schema.fields().len();
        if nkeys == 0
            || !batch.schema().metadata().contains_key(SLICE_END)
            || batch.num_columns() < nkeys
        {
            return Ok(None);
        }
        Ok(Some(batch.columns()[..nkeys].to_vec()))
    }

    fn name(&self) -> String {
        format!(
            "window aggregate {} ({} key(s), {} aggregate(s))",
            self.spec.kind.name(),
            self.keys.len(),
            self.aggs.exprs.len()
        )
    }

    fn attach(&mut self, metrics: &TaskMetrics) {
        self.metrics = Some(metrics.clone());
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let ends = to_epoch_millis(batch.column(self.end_col).as_ref())?;
        let keys = self
            .keys
            .iter()
            .map(|k| Ok(k.evaluate(&batch)?.into_array(rows)?))
            .collect::<Result<Vec<_>>>()?;
        let (args, filters) = self.aggs.evaluate(&batch)?;
        // Rows by slice; a batch usually spans one or two.
        let mut by_slice: Vec<(i64, Vec<u32>)> = vec![];
        let mut nulls = 0;
        for i in 0..rows {
            if ends.is_null(i) {
                nulls += 1;
                continue;
            }
            let e = if self.sliced {
                ends.value(i)
            } else {
                // A window end from a window table's column: an instant.
                self.spec.grid_end(ends.value(i))
            };
            match by_slice.iter_mut().rev().find(|(s, _)| *s == e) {
                Some((_, v)) => v.push(i as u32),
                None => by_slice.push((e, vec![i as u32])),
            }
        }
        if nulls > 0 {
            self.count_late(nulls);
        }
        let whole = by_slice.len() == 1 && nulls == 0;
        for (end, idx) in by_slice {
            if self.spec.fires_at(self.last_window_end(end)) <= self.watermark {
                self.count_late(idx.len());
                continue;
            }
            if whole {
                self.update(end, &keys, &args, &filters, rows)?;
                continue;
            }
            let indices = UInt32Array::from(idx);
            let pick = |a: &ArrayRef| -> Result<ArrayRef> { Ok(take(a.as_ref(), &indices, None)?) };
            let k = keys.iter().map(pick).collect::<Result<Vec<_>>>()?;
            let a = args
                .iter()
                .map(|v| v.iter().map(pick).collect::<Result<Vec<_>>>())
                .collect::<Result<Vec<_>>>()?;
            let f = filters
                .iter()
                .map(|f| f.as_ref().map(pick).transpose())
                .collect::<Result<Vec<_>>>()?;
            self.update(end, &k, &a, &f, indices.len())?;
        }
        Ok(())
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        if self.fire_until(watermark, out)? {
            out.push(Message::Watermark(watermark));
        } else {
            self.firing = Some(watermark);
        }
        Ok(())
    }

    fn has_more(&self) -> bool {
        self.firing.is_some()
    }

    fn resume(&mut self, out: &mut Vec<Message>) -> Result<()> {
        if let Some(w) = self.firing
            && self.fire_until(w, out)?
        {
            self.firing = None;
            out.push(Message::Watermark(w));
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Message>) -> Result<()> {
        // A stopped (not exhausted) input leaves open windows unfired, as Flink does; their
        // rows come back from the checkpoint once checkpoints exist.
        let _ = out;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::col;

    /// A HOP (5 s slide, 10 s size) COUNT/SUM by name over the reference rows of
    /// shared/testdata/flink_window_aggregate.md, fed in slice mode.
    fn hop_operator() -> (WindowAggregateOperator, SchemaRef) {
        let input = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("a", DataType::Int64, true),
            Field::new(
                "slice_end",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
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
            Field::new(
                "window_start",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("c", DataType::Int64, false),
            Field::new("s", DataType::Int64, true),
        ]));
        let op = WindowAggregateOperator::new(
            spec(WindowKind::Hop, 10_000, 5_000, 0),
            true,
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
                OutCol::Agg(0),
                OutCol::Agg(1),
            ],
            out,
        );
        (op, input)
    }

    /// (seconds, a, name) in arrival order; the watermark is max - 1 s.
    const ROWS: &[(i64, i64, Option<&str>)] = &[
        (1, 1, Some("a")),
        (2, 2, Some("a")),
        (3, 2, Some("a")),
        (4, 5, Some("a")),
        (7, 3, Some("b")),
        (6, 6, Some("b")),
        (8, 3, Some("a")),
        (4, 5, Some("a")),
        (16, 4, Some("b")),
        (32, 7, None),
        (34, 1, Some("b")),
        (40, 10, Some("a")),
        (42, 11, Some("d")),
        (43, 12, Some("c")),
        (44, 13, Some("d")),
    ];

    fn feed(
        op: &mut WindowAggregateOperator,
        input: &SchemaRef,
        rows: &[(i64, i64, Option<&str>)],
        wm: &mut i64,
        out: &mut Vec<Message>,
    ) {
        let pane = 5_000;
        for (t, a, name) in rows {
            let ms = t * 1000;
            if ms < *wm {
                op.process_watermark(*wm, out).expect("watermark");
            }
            let b = RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(StringArray::from(vec![*name])),
                    Arc::new(Int64Array::from(vec![*a])),
                    Arc::new(TimestampMillisecondArray::from(vec![
                        floor_grid(ms, pane, 0) + pane,
                    ])),
                ],
            )
            .expect("batch");
            op.process_batch(b, out).expect("batch in");
            *wm = (*wm).max(ms - 1000);
            op.process_watermark(*wm, out).expect("watermark");
        }
    }

    fn rows_of(out: &[Message]) -> Vec<String> {
        let mut v = vec![];
        for m in out {
            if let Message::Batch(b) = m {
                let s =
                    datafusion::arrow::util::pretty::pretty_format_batches(std::slice::from_ref(b))
                        .expect("format")
                        .to_string();
                v.extend(s.lines().filter(|l| l.starts_with("| ")).map(String::from));
            }
        }
        v.retain(|l| !l.contains("window_start"));
        v.sort();
        v
    }

    /// The end of the input fires every open window; it comes in chunks of about
    /// [`FIRE_CHUNK_ROWS`] rows, the watermark after the last, and nothing is lost: 40 000
    /// names in each of 10 panes of a HOP (5 s slide, 10 s size) give 11 windows of 40 000
    /// rows, all fired by the final watermark.
    #[test]
    fn the_end_of_the_input_fires_in_chunks() {
        let (mut op, input) = hop_operator();
        let names: Vec<String> = (0..40_000).map(|i| format!("n{i}")).collect();
        let mut out = vec![];
        for pane in 1..=10i64 {
            let b = RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(StringArray::from(names.clone())),
                    Arc::new(Int64Array::from_iter_values((0..40_000).map(|_| 1))),
                    Arc::new(TimestampMillisecondArray::from_iter_values(
                        (0..40_000).map(|_| pane * 5_000),
                    )),
                ],
            )
            .expect("batch");
            op.process_batch(b, &mut out).expect("rows");
        }
        assert!(out.is_empty());
        let rows = |out: &[Message]| -> usize {
            out.iter()
                .map(|m| match m {
                    Message::Batch(b) => b.num_rows(),
                    _ => 0,
                })
                .sum()
        };
        op.process_watermark(i64::MAX, &mut out).expect("end");
        let mut chunks = 0;
        let mut total = 0;
        loop {
            let n = rows(&out);
            assert!(n < FIRE_CHUNK_ROWS + 40_000, "a chunk of {n} rows");
            total += n;
            chunks += 1;
            let last = matches!(out.last(), Some(Message::Watermark(i64::MAX)));
            assert_eq!(
                last,
                !op.has_more(),
                "the watermark comes after the last chunk"
            );
            out.clear();
            if !op.has_more() {
                break;
            }
            op.resume(&mut out).expect("resume");
        }
        // Each pane is in two windows: 11 windows, each with all 40 000 names.
        assert_eq!(total, 11 * 40_000);
        assert!(chunks >= 5, "{chunks} chunks");
    }

    #[test]
    fn state_survives_a_snapshot_through_arrow_ipc() {
        let (mut whole, input) = hop_operator();
        let mut wm = i64::MIN;
        let mut expected = vec![];
        feed(&mut whole, &input, ROWS, &mut wm, &mut expected);
        whole
            .process_watermark(i64::MAX, &mut expected)
            .expect("end");

        // Stop after the 11th row (where Flink's test takes its savepoint), snapshot, write
        // the state as Arrow IPC, read it into a fresh operator, and go on.
        let (mut first, _) = hop_operator();
        let mut wm = i64::MIN;
        let mut got = vec![];
        feed(&mut first, &input, &ROWS[..11], &mut wm, &mut got);
        let state = first.snapshot().expect("snapshot").expect("some state");
        let mut restored_batches = vec![];
        for b in &state {
            let mut buf = vec![];
            {
                let mut w =
                    datafusion::arrow::ipc::writer::FileWriter::try_new(&mut buf, &b.schema())
                        .expect("ipc writer");
                w.write(b).expect("write");
                w.finish().expect("finish");
            }
            let r = datafusion::arrow::ipc::reader::FileReader::try_new(
                std::io::Cursor::new(buf),
                None,
            )
            .expect("ipc reader");
            for rb in r {
                restored_batches.push(rb.expect("read"));
            }
        }
        let (mut second, _) = hop_operator();
        second.restore(restored_batches).expect("restore");
        feed(&mut second, &input, &ROWS[11..], &mut wm, &mut got);
        second.process_watermark(i64::MAX, &mut got).expect("end");
        assert_eq!(rows_of(&got), rows_of(&expected));
        assert_eq!(rows_of(&expected).len(), 17);
    }

    fn spec(kind: WindowKind, size: i64, slide: i64, offset: i64) -> WindowSpec {
        WindowSpec {
            kind,
            size,
            slide,
            offset,
            zone: None,
        }
    }

    #[test]
    fn tumble_windows() {
        let s = spec(WindowKind::Tumble, 5, 5, 0);
        assert_eq!(s.windows_of(4), vec![(0, 5)]);
        assert_eq!(s.windows_of(5), vec![(5, 10)]);
        assert_eq!(s.windows_of(-1), vec![(-5, 0)]);
        let s = spec(WindowKind::Tumble, 5, 5, 1);
        assert_eq!(s.windows_of(0), vec![(-4, 1)]);
        assert_eq!(s.windows_of(1), vec![(1, 6)]);
    }

    #[test]
    fn hop_windows() {
        let s = spec(WindowKind::Hop, 10, 5, 0);
        assert_eq!(s.windows_of(4), vec![(-5, 5), (0, 10)]);
        assert_eq!(s.pane(), 5);
        let s = spec(WindowKind::Hop, 10, 4, 0);
        // windows start on multiples of 4 and are 10 long
        assert_eq!(s.windows_of(7), vec![(0, 10), (4, 14)]);
        assert_eq!(s.pane(), 2);
        assert_eq!(s.last_window_end(8), 14);
        assert_eq!(s.windows_of(8), vec![(0, 10), (4, 14), (8, 18)]);
    }

    #[test]
    fn cumulate_windows() {
        let s = spec(WindowKind::Cumulate, 10, 2, 0);
        assert_eq!(s.windows_of(3), vec![(0, 4), (0, 6), (0, 8), (0, 10)]);
        assert_eq!(s.windows_of(9), vec![(0, 10)]);
        assert_eq!(
            s.windows_of(10),
            vec![(10, 12), (10, 14), (10, 16), (10, 18), (10, 20)]
        );
        assert_eq!(s.window_start(20), 10);
    }
}
