//! OVER aggregates over a stream (Flink's "Over Aggregation"): each input row comes out
//! once, with aggregates over the rows of its partition in a frame ending at it.
//!
//! As Flink's event-time OVER (`RowTimeRangeBoundedPrecedingFunction`,
//! `RowTimeRowsBoundedPrecedingFunction` and their unbounded forms): the ORDER BY is a
//! time attribute, ascending; a row waits until the watermark reaches its time, then the
//! rows of each partition are taken in time order (rows of equal time in arrival order). A
//! row at or below the watermark when it arrives is late: dropped and counted. Frames:
//!
//! - `ROWS BETWEEN n PRECEDING AND CURRENT ROW`: the row and the n rows before it.
//! - `RANGE BETWEEN INTERVAL 'x' PRECEDING AND CURRENT ROW`: the rows whose time is at
//!   least the row's time less x, including every row of the same time (its peers, which
//!   all get the same values).
//! - `… UNBOUNDED PRECEDING …` (and no frame with an ORDER BY, SQL's default `RANGE`): all
//!   rows so far.
//!
//! A bounded frame's accumulators are DataFusion's sliding ones, which take the rows that
//! leave the frame back; the frame's rows (their time and each aggregate's arguments) are
//! kept for that. An aggregate without a sliding accumulator (`FIRST_VALUE`, `LAST_VALUE`,
//! `LISTAGG`, …; Flink has retracting versions) is built again from the kept rows after
//! rows leave. Rows of one time are added in the order they arrived. A RANGE frame's rows leave as the watermark passes them, and a partition
//! with none left is forgotten; ROWS and unbounded frames keep each partition's last rows
//! or accumulators for as long as the query runs (as Flink without a state TTL). The
//! output is append-only: the input's columns, then the aggregates.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{HashMap, ScalarValue};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::job::Message;
use crate::job::metrics::TaskMetrics;
use crate::operator::Operator;
use crate::operator::group::AggCall;

/// Which rows before the current one a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`.
    Rows(u64),
    /// `RANGE BETWEEN INTERVAL … PRECEDING AND CURRENT ROW`, the interval in ms.
    Range(i64),
    /// `UNBOUNDED PRECEDING`, as ROWS (`true`: each row its own value) or RANGE (peers
    /// share one).
    Unbounded { rows: bool },
}

impl Frame {
    /// Whether rows leave the frame (ROWS n or RANGE x), as opposed to UNBOUNDED PRECEDING.
    pub fn bounded(self) -> bool {
        !matches!(self, Frame::Unbounded { .. })
    }
}

/// A row in a bounded frame: its time and, per aggregate, its arguments (None when the
/// aggregate's FILTER left it out).
struct FrameRow {
    ts: i64,
    args: Vec<Option<Vec<ScalarValue>>>,
}

struct Partition {
    accs: Vec<Box<dyn Accumulator>>,
    frame: VecDeque<FrameRow>,
    /// A row left the frame since the aggregates that cannot take rows back were last
    /// built from it.
    stale: bool,
}

pub struct OverAggregateOperator {
    partition: Vec<Arc<dyn PhysicalExpr>>,
    key_conv: Option<RowConverter>,
    /// The time attribute's column in the input.
    time: usize,
    frame: Frame,
    aggs: Vec<AggCall>,
    /// Per aggregate: over a bounded frame, it cannot take rows back (`FIRST_VALUE`,
    /// `LISTAGG`, …), so it is built again from the frame's rows after rows leave.
    rebuild: Vec<bool>,
    input_schema: SchemaRef,
    /// The input's columns, then one per aggregate.
    schema: SchemaRef,
    watermark: Option<i64>,
    /// Rows waiting for the watermark to reach their time, in batches with the earliest
    /// time of each: a watermark touches only the batches it has reached.
    pending: Vec<(i64, RecordBatch)>,
    parts: HashMap<Box<[u8]>, Partition>,
    metrics: Option<TaskMetrics>,
}

impl OverAggregateOperator {
    /// `partition`: the PARTITION BY expressions; `time`: the ORDER BY time attribute's
    /// column in `input`; `schema`: the input's fields then one per call. An aggregate
    /// over a bounded frame that cannot take rows back (Flink has retracting versions of
    /// `FIRST_VALUE`, `LAST_VALUE`, `LISTAGG`) is built again from the frame's kept rows
    /// whenever rows have left it: O(frame rows) per result instead of O(1).
    pub fn new(
        partition: Vec<Arc<dyn PhysicalExpr>>,
        input: SchemaRef,
        time: usize,
        frame: Frame,
        aggs: Vec<AggCall>,
        schema: SchemaRef,
    ) -> Result<Self> {
        if schema.fields().len() != input.fields().len() + aggs.len() {
            return Err(WeirError::internal(
                "an OVER aggregate's output is its input and the aggregates",
            ));
        }
        let key_conv = if partition.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                partition
                    .iter()
                    .map(|k| Ok(SortField::new(k.data_type(&input)?)))
                    .collect::<Result<Vec<_>>>()?,
            )?)
        };
        let rebuild = aggs
            .iter()
            .map(|a| {
                frame.bounded()
                    && !a
                        .expr
                        .create_sliding_accumulator()
                        .is_ok_and(|acc| acc.supports_retract_batch())
            })
            .collect();
        let op = OverAggregateOperator {
            partition,
            key_conv,
            time,
            frame,
            aggs,
            rebuild,
            input_schema: input,
            schema,
            watermark: None,
            pending: vec![],
            parts: HashMap::new(),
            metrics: None,
        };
        // Each call's accumulator is made once here, so a frame that needs rows taken
        // back fails at planning, not at the first row.
        op.accumulators()?;
        Ok(op)
    }

    /// A fresh accumulator per call (see [`accumulators`]).
    fn accumulators(&self) -> Result<Vec<Box<dyn Accumulator>>> {
        accumulators(&self.aggs, &self.rebuild, self.frame)
    }

    /// The time attribute of `batch`'s rows, ms since the epoch (NULL: `i64::MIN`, late).
    fn times(&self, batch: &RecordBatch) -> Result<Vec<i64>> {
        let col = batch.column(self.time);
        let ms = cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let ms = cast(&ms, &DataType::Int64)?;
        let ms = ms.as_primitive::<Int64Type>();
        Ok((0..ms.len())
            .map(|i| if ms.is_null(i) { i64::MIN } else { ms.value(i) })
            .collect())
    }

    /// The partition keys of `batch`'s rows, in Arrow's row format (empty without
    /// PARTITION BY).
    fn keys(&self, batch: &RecordBatch) -> Result<Vec<Box<[u8]>>> {
        let Some(conv) = &self.key_conv else {
            return Ok(vec![Box::from(&[][..]); batch.num_rows()]);
        };
        let cols = self
            .partition
            .iter()
            .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
            .collect::<Result<Vec<_>>>()?;
        let rows = conv.convert_columns(&cols)?;
        Ok((0..batch.num_rows())
            .map(|i| Box::from(rows.row(i).as_ref()))
            .collect())
    }

    /// Each call's argument arrays and FILTER mask over `batch`.
    #[allow(clippy::type_complexity)]
    fn arguments(&self, batch: &RecordBatch) -> Result<Vec<(Vec<ArrayRef>, Option<BooleanArray>)>> {
        let n = batch.num_rows();
        self.aggs
            .iter()
            .map(|a| {
                let args = a
                    .args
                    .iter()
                    .map(|e| Ok(e.evaluate(batch)?.into_array(n)?))
                    .collect::<Result<Vec<_>>>()?;
                let mask = match &a.filter {
                    Some(f) => Some(f.evaluate(batch)?.into_array(n)?.as_boolean().clone()),
                    None => None,
                };
                Ok((args, mask))
            })
            .collect()
    }

    /// Takes the rows at or below `watermark` out of the pending ones and emits them with
    /// their aggregates.
    fn fire(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        // The waiting batches stay in arrival order — a batch the watermark has reached in
        // part keeps its other rows where it was — so the rows taken out, and the ones
        // left, are in the order they came (rows of one time are added in that order: it
        // decides LAG, FIRST_VALUE and LAST_VALUE among peers).
        let mut ready_parts = vec![];
        let mut waiting = Vec::with_capacity(self.pending.len());
        for (min, b) in std::mem::take(&mut self.pending) {
            if min > watermark {
                waiting.push((min, b));
                continue;
            }
            let times = self.times(&b)?;
            let ready_mask: BooleanArray = times.iter().map(|t| Some(*t <= watermark)).collect();
            let rest = filter_record_batch(&b, &datafusion::arrow::compute::not(&ready_mask)?)?;
            if rest.num_rows() > 0 {
                let min = self.times(&rest)?.into_iter().min().unwrap_or(i64::MIN);
                waiting.push((min, rest));
            }
            ready_parts.push(filter_record_batch(&b, &ready_mask)?);
        }
        self.pending = waiting;
        if ready_parts.is_empty() {
            return Ok(());
        }
        let ready = concat_batches(&self.input_schema, &ready_parts)?;
        if ready.num_rows() == 0 {
            return Ok(());
        }
        let times = self.times(&ready)?;
        let keys = self.keys(&ready)?;
        let args = self.arguments(&ready)?;
        // By partition, then time, then arrival.
        let mut order: Vec<u32> = (0..ready.num_rows() as u32).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            keys[a]
                .cmp(&keys[b])
                .then(times[a].cmp(&times[b]))
                .then(a.cmp(&b))
        });
        let mut values: Vec<Vec<ScalarValue>> =
            vec![Vec::with_capacity(order.len()); self.aggs.len()];
        let mut i = 0;
        while i < order.len() {
            let key = &keys[order[i] as usize];
            let mut end = i;
            while end < order.len() && keys[order[end] as usize] == *key {
                end += 1;
            }
            let part = partition(&mut self.parts, key, &self.aggs, &self.rebuild, self.frame)?;
            // Runs of rows that share one result: each row alone for ROWS frames, rows of
            // one time (peers) for RANGE frames.
            let mut r = i;
            while r < end {
                let t = times[order[r] as usize];
                let mut run_end = r + 1;
                if matches!(
                    self.frame,
                    Frame::Range(_) | Frame::Unbounded { rows: false }
                ) {
                    while run_end < end && times[order[run_end] as usize] == t {
                        run_end += 1;
                    }
                }
                for &row in &order[r..run_end] {
                    add(
                        part,
                        &self.aggs,
                        &args,
                        row as usize,
                        t,
                        self.frame.bounded(),
                    )?;
                }
                match self.frame {
                    Frame::Rows(n) => {
                        while part.frame.len() as u64 > n.saturating_add(1) {
                            retract_front(part, &self.rebuild)?;
                        }
                    }
                    Frame::Range(x) => {
                        while part
                            .frame
                            .front()
                            .is_some_and(|f| f.ts < t.saturating_sub(x))
                        {
                            retract_front(part, &self.rebuild)?;
                        }
                    }
                    Frame::Unbounded { .. } => {}
                }
                refresh(part, &self.aggs, &self.rebuild)?;
                let result = part
                    .accs
                    .iter_mut()
                    .map(|a| Ok(a.evaluate()?))
                    .collect::<Result<Vec<_>>>()?;
                for _ in r..run_end {
                    for (j, v) in result.iter().enumerate() {
                        values[j].push(v.clone());
                    }
                }
                r = run_end;
            }
            i = end;
        }
        let idx = UInt32Array::from(order);
        let mut cols: Vec<ArrayRef> = ready
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &idx, None))
            .collect::<std::result::Result<_, _>>()?;
        for (j, v) in values.into_iter().enumerate() {
            let arr = ScalarValue::iter_to_array(v)?;
            let want = self
                .schema
                .field(self.input_schema.fields().len() + j)
                .data_type();
            cols.push(if arr.data_type() == want {
                arr
            } else {
                cast(&arr, want)?
            });
        }
        out.push(Message::Batch(RecordBatch::try_new(
            self.schema.clone(),
            cols,
        )?));
        Ok(())
    }
}

impl OverAggregateOperator {
    /// Keeps `batch`'s rows until the watermark reaches them.
    fn wait(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let min = self.times(&batch)?.into_iter().min().unwrap_or(i64::MIN);
        self.pending.push((min, batch));
        Ok(())
    }

    /// A RANGE frame's rows no future row can reach once the watermark is at `watermark`
    /// (a future row's frame starts after `watermark - x`): taken back out, and a partition
    /// left with none forgotten — so the state holds only what future frames can see.
    /// ROWS and unbounded frames keep theirs (a partition's next row needs them however
    /// late it comes), as in Flink.
    fn forget(&mut self, watermark: i64) -> Result<()> {
        let Frame::Range(x) = self.frame else {
            return Ok(());
        };
        let horizon = watermark.saturating_sub(x);
        let mut empty = vec![];
        for (key, part) in self.parts.iter_mut() {
            while part.frame.front().is_some_and(|f| f.ts <= horizon) {
                retract_front(part, &self.rebuild)?;
            }
            if part.frame.is_empty() {
                empty.push(key.clone());
            }
        }
        for k in empty {
            self.parts.remove(&k);
        }
        Ok(())
    }
}

/// Adds row `row` (of time `ts`) to `part`'s accumulators, and with a bounded frame to
/// its frame.
fn add(
    part: &mut Partition,
    aggs: &[AggCall],
    args: &[(Vec<ArrayRef>, Option<BooleanArray>)],
    row: usize,
    ts: i64,
    bounded: bool,
) -> Result<()> {
    let mut kept = Vec::with_capacity(aggs.len());
    for (j, (cols, mask)) in args.iter().enumerate() {
        if mask
            .as_ref()
            .is_some_and(|m| !(m.is_valid(row) && m.value(row)))
        {
            kept.push(None);
            continue;
        }
        let one: Vec<ArrayRef> = cols.iter().map(|c| c.slice(row, 1)).collect();
        part.accs[j].update_batch(&one)?;
        if bounded {
            kept.push(Some(
                cols.iter()
                    .map(|c| ScalarValue::try_from_array(c, row))
                    .collect::<std::result::Result<Vec<_>, _>>()?,
            ));
        }
    }
    if bounded {
        part.frame.push_back(FrameRow { ts, args: kept });
    }
    Ok(())
}

/// A fresh accumulator per call: sliding ones (which take rows back) for a bounded frame,
/// but for the calls marked in `rebuild` (they have none, and are built again from the
/// frame's rows instead).
fn accumulators(
    aggs: &[AggCall],
    rebuild: &[bool],
    frame: Frame,
) -> Result<Vec<Box<dyn Accumulator>>> {
    aggs.iter()
        .zip(rebuild)
        .map(|(a, &rebuild)| {
            if !frame.bounded() || rebuild {
                return Ok(a.expr.create_accumulator()?);
            }
            Ok(a.expr.create_sliding_accumulator()?)
        })
        .collect()
}

/// Partition `key`'s state in `parts`, begun with fresh accumulators if it has none yet.
fn partition<'a>(
    parts: &'a mut HashMap<Box<[u8]>, Partition>,
    key: &[u8],
    aggs: &[AggCall],
    rebuild: &[bool],
    frame: Frame,
) -> Result<&'a mut Partition> {
    if !parts.contains_key(key) {
        parts.insert(
            Box::from(key),
            Partition {
                accs: accumulators(aggs, rebuild, frame)?,
                frame: VecDeque::new(),
                stale: false,
            },
        );
    }
    parts
        .get_mut(key)
        .ok_or_else(|| WeirError::internal("an OVER partition vanished"))
}

/// Builds the aggregates marked in `rebuild` (those that cannot take rows back) again
/// from `part`'s frame, if rows have left it since they were last built.
fn refresh(part: &mut Partition, aggs: &[AggCall], rebuild: &[bool]) -> Result<()> {
    if !part.stale {
        return Ok(());
    }
    part.stale = false;
    for (j, a) in aggs.iter().enumerate() {
        if !rebuild.get(j).copied().unwrap_or(false) {
            continue;
        }
        let mut acc = a.expr.create_accumulator()?;
        for row in &part.frame {
            if let Some(Some(args)) = row.args.get(j) {
                let arrays = args
                    .iter()
                    .map(|v| v.to_array())
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                acc.update_batch(&arrays)?;
            }
        }
        part.accs[j] = acc;
    }
    Ok(())
}

/// Takes the oldest row of `part`'s frame back out of its accumulators (the ones in
/// `rebuild` are marked stale instead: see [`refresh`]).
fn retract_front(part: &mut Partition, rebuild: &[bool]) -> Result<()> {
    let Some(old) = part.frame.pop_front() else {
        return Ok(());
    };
    for (j, args) in old.args.into_iter().enumerate() {
        if rebuild.get(j).copied().unwrap_or(false) {
            part.stale = true;
            continue;
        }
        if let Some(args) = args {
            let arrays = args
                .iter()
                .map(|v| v.to_array())
                .collect::<std::result::Result<Vec<_>, _>>()?;
            part.accs[j].retract_batch(&arrays)?;
        }
    }
    Ok(())
}

/// Schema metadata naming what a state batch holds.
const STATE: &str = "weir.over";

impl Operator for OverAggregateOperator {
    fn distribution(&self) -> super::Distribution {
        if self.partition.is_empty() {
            super::Distribution::Single
        } else {
            super::Distribution::Hash(vec![self.partition.clone()])
        }
    }

    fn name(&self) -> String {
        "over aggregate".into()
    }

    fn signature(&self) -> String {
        format!(
            "{} [{:?}] [{}]",
            self.name(),
            self.frame,
            self.aggs
                .iter()
                .map(|a| format!("{}: {}", a.expr.name(), a.expr.field().data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn attach(&mut self, metrics: &TaskMetrics) {
        self.metrics = Some(metrics.clone());
    }

    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // A row without a time is late, as one at or below the watermark (Flink's OVER
        // operators drop both).
        let w = self.watermark.unwrap_or(i64::MIN);
        let times = self.times(&batch)?;
        let on_time: BooleanArray = times.iter().map(|t| Some(*t > w)).collect();
        if on_time.true_count() == batch.num_rows() {
            return self.wait(batch);
        }
        let kept = filter_record_batch(&batch, &on_time)?;
        let late = batch.num_rows() - kept.num_rows();
        if let Some(m) = &self.metrics {
            m.add_late(late as u64);
        }
        self.wait(kept)
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        if self.watermark.is_some_and(|w| watermark <= w) {
            return Ok(());
        }
        self.watermark = Some(watermark);
        self.fire(watermark, out)?;
        self.forget(watermark)?;
        out.push(Message::Watermark(watermark));
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Message>) -> Result<()> {
        // The end of a bounded input: every row waiting is complete.
        self.fire(i64::MAX, out)
    }

    /// Rows waiting plus rows in frames, and the waiting rows' and accumulators' bytes
    /// (the accumulators of the first 1 000 partitions, scaled).
    fn state_size(&self) -> Option<(u64, u64)> {
        let pending: usize = self.pending.iter().map(|(_, b)| b.num_rows()).sum();
        let framed: usize = self.parts.values().map(|p| p.frame.len()).sum();
        let (mut n, mut acc_bytes) = (0usize, 0usize);
        for p in self.parts.values().take(1000) {
            n += 1;
            acc_bytes += p.accs.iter().map(|a| a.size()).sum::<usize>();
        }
        let per = acc_bytes.checked_div(n).unwrap_or(0);
        let bytes = self
            .pending
            .iter()
            .map(|(_, b)| b.get_array_memory_size())
            .sum::<usize>()
            + per * self.parts.len();
        Some(((pending + framed) as u64, bytes as u64))
    }

    /// The rows waiting for the watermark (the input's columns, tagged `pending`), and the
    /// partitions: with a bounded frame, the frame's rows (`key`, `ts`, each call's
    /// arguments `a<j>_<i>` and whether its FILTER kept the row `f<j>`), from which the
    /// accumulators are rebuilt; unbounded, each accumulator's state (`s<j>_<i>`).
    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        let mut out = vec![];
        let tagged = |fields: Vec<Field>, what: &str| {
            Arc::new(Schema::new_with_metadata(
                fields,
                [(STATE.to_string(), what.to_string())].into(),
            ))
        };
        let mut w = super::numbers_state(&[("watermark", self.watermark.unwrap_or(i64::MIN))])?
            .unwrap_or_default();
        if let Some(b) = w.pop() {
            let fields = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            out.push(RecordBatch::try_new(
                tagged(fields, "watermark"),
                b.columns().to_vec(),
            )?);
        }
        if !self.pending.is_empty() {
            let batches: Vec<RecordBatch> = self.pending.iter().map(|(_, b)| b.clone()).collect();
            let all = concat_batches(&self.input_schema, &batches)?;
            let fields = self
                .input_schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            out.push(RecordBatch::try_new(
                tagged(fields, "pending"),
                all.columns().to_vec(),
            )?);
        }
        if self.parts.is_empty() {
            return Ok(Some(out));
        }
        let mut keys: Vec<&[u8]> = vec![];
        let mut fields = vec![Field::new("key", DataType::Binary, false)];
        let mut cols: Vec<ArrayRef> = vec![];
        if self.frame.bounded() {
            let mut ts = vec![];
            let mut flags: Vec<Vec<bool>> = vec![vec![]; self.aggs.len()];
            let mut values: Vec<Vec<Vec<ScalarValue>>> = self
                .aggs
                .iter()
                .map(|a| vec![vec![]; a.args.len()])
                .collect();
            for (key, part) in &self.parts {
                for row in &part.frame {
                    keys.push(key);
                    ts.push(row.ts);
                    for (j, a) in row.args.iter().enumerate() {
                        flags[j].push(a.is_some());
                        for (i, v) in values[j].iter_mut().enumerate() {
                            let dt = self.aggs[j].args[i].data_type(&self.input_schema)?;
                            v.push(match a {
                                Some(args) => args[i].clone(),
                                None => ScalarValue::try_from(&dt)?,
                            });
                        }
                    }
                }
            }
            fields.push(Field::new("ts", DataType::Int64, false));
            cols.push(Arc::new(datafusion::arrow::array::Int64Array::from(ts)));
            for (j, f) in flags.into_iter().enumerate() {
                fields.push(Field::new(format!("f{j}"), DataType::Boolean, false));
                cols.push(Arc::new(BooleanArray::from(f)));
                for (i, v) in std::mem::take(&mut values[j]).into_iter().enumerate() {
                    let dt = self.aggs[j].args[i].data_type(&self.input_schema)?;
                    let arr = if v.is_empty() {
                        datafusion::arrow::array::new_empty_array(&dt)
                    } else {
                        ScalarValue::iter_to_array(v)?
                    };
                    fields.push(Field::new(
                        format!("a{j}_{i}"),
                        arr.data_type().clone(),
                        true,
                    ));
                    cols.push(arr);
                }
            }
        } else {
            let mut states: Vec<Vec<Vec<ScalarValue>>> = vec![vec![]; self.aggs.len()];
            let mut rebuilt = vec![];
            for (key, part) in self.parts.iter_mut() {
                keys.push(key);
                for (j, acc) in part.accs.iter_mut().enumerate() {
                    let st = acc.state()?;
                    // `state` may consume what it reports: carry on from a copy of it.
                    let arrays = st
                        .iter()
                        .map(|v| v.to_array())
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    rebuilt.push((key.clone(), j, arrays));
                    states[j].push(st);
                }
            }
            for (j, per_part) in states.into_iter().enumerate() {
                let width = per_part.first().map_or(0, Vec::len);
                let mut by_field: Vec<Vec<ScalarValue>> = vec![vec![]; width];
                for st in per_part {
                    for (i, v) in st.into_iter().enumerate() {
                        if let Some(f) = by_field.get_mut(i) {
                            f.push(v);
                        }
                    }
                }
                for (i, v) in by_field.into_iter().enumerate() {
                    let arr = ScalarValue::iter_to_array(v)?;
                    fields.push(Field::new(
                        format!("s{j}_{i}"),
                        arr.data_type().clone(),
                        true,
                    ));
                    cols.push(arr);
                }
            }
            let keys_owned: Vec<Box<[u8]>> = keys.iter().map(|k| Box::from(*k)).collect();
            cols.insert(
                0,
                Arc::new(BinaryArray::from_iter_values(keys_owned.iter())),
            );
            let batch = RecordBatch::try_new(tagged(fields, "accumulators"), cols)?;
            for (key, j, arrays) in rebuilt {
                let mut acc = self.accumulators()?.swap_remove(j);
                acc.merge_batch(&arrays)?;
                if let Some(p) = self.parts.get_mut(&key) {
                    p.accs[j] = acc;
                }
            }
            out.push(batch);
            return Ok(Some(out));
        }
        cols.insert(0, Arc::new(BinaryArray::from_iter_values(keys.iter())));
        out.push(RecordBatch::try_new(tagged(fields, "frame"), cols)?);
        Ok(Some(out))
    }

    /// Rows waiting: their partition keys evaluated anew; partitions: their `key`
    /// column; the watermark goes to every subtask.
    fn state_keys(&self, batch: &RecordBatch) -> Result<Option<Vec<ArrayRef>>> {
        let Some(conv) = &self.key_conv else {
            return Ok(None);
        };
        match batch.schema().metadata().get(STATE).map(String::as_str) {
            Some("pending") => {
                let rows =
                    RecordBatch::try_new(self.input_schema.clone(), batch.columns().to_vec())?;
                let keys = self
                    .partition
                    .iter()
                    .map(|k| Ok(k.evaluate(&rows)?.into_array(rows.num_rows())?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Some(keys))
            }
            Some("frame" | "accumulators") => super::keys_of_rows(conv, batch, "key").map(Some),
            _ => Ok(None),
        }
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        let bad = |what: &str| {
            WeirError::user(format!(
                "the checkpoint's state of an OVER aggregate is malformed: {what}"
            ))
        };
        for b in state {
            let what = b
                .schema()
                .metadata()
                .get(STATE)
                .cloned()
                .unwrap_or_default();
            match what.as_str() {
                "pending" => {
                    let b = RecordBatch::try_new(self.input_schema.clone(), b.columns().to_vec())?;
                    self.wait(b)?;
                }
                "watermark" => {
                    let w = super::number_from(
                        std::slice::from_ref(&b),
                        "watermark",
                        "over aggregate",
                    )?;
                    self.watermark = (w != i64::MIN).then_some(w);
                }
                "frame" | "accumulators" => {
                    let keys = b
                        .column_by_name("key")
                        .and_then(|c| c.as_binary_opt::<i32>())
                        .ok_or_else(|| bad("key"))?;
                    let ts = b
                        .column_by_name("ts")
                        .and_then(|c| c.as_primitive_opt::<Int64Type>());
                    for r in 0..b.num_rows() {
                        let key: Box<[u8]> = Box::from(keys.value(r));
                        let part = partition(
                            &mut self.parts,
                            &key,
                            &self.aggs,
                            &self.rebuild,
                            self.frame,
                        )?;
                        if what == "accumulators" {
                            for (j, acc) in part.accs.iter_mut().enumerate() {
                                let mut cols = vec![];
                                let mut i = 0;
                                while let Some(c) = b.column_by_name(&format!("s{j}_{i}")) {
                                    cols.push(c.slice(r, 1));
                                    i += 1;
                                }
                                acc.merge_batch(&cols)?;
                            }
                            continue;
                        }
                        let t = ts.ok_or_else(|| bad("ts"))?.value(r);
                        let mut args = vec![];
                        for (j, a) in self.aggs.iter().enumerate() {
                            let kept = b
                                .column_by_name(&format!("f{j}"))
                                .and_then(|c| c.as_boolean_opt())
                                .map(|c| c.value(r))
                                .ok_or_else(|| bad("f"))?;
                            if !kept {
                                args.push(None);
                                continue;
                            }
                            let mut values = vec![];
                            let mut arrays = vec![];
                            for i in 0..a.args.len() {
                                let c = b
                                    .column_by_name(&format!("a{j}_{i}"))
                                    .ok_or_else(|| bad("arguments"))?;
                                values.push(ScalarValue::try_from_array(c, r)?);
                                arrays.push(c.slice(r, 1));
                            }
                            part.accs[j].update_batch(&arrays)?;
                            args.push(Some(values));
                        }
                        part.frame.push_back(FrameRow { ts: t, args });
                    }
                }
                other => return Err(bad(&format!("unknown part '{other}'"))),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::Column;

    /// COUNT(v) OVER (PARTITION BY k ORDER BY ts `frame`) over (k BIGINT, v BIGINT, ts).
    fn operator(frame: Frame) -> OverAggregateOperator {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]));
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("v", 1));
        let expr = AggregateExprBuilder::new(
            datafusion::functions_aggregate::count::count_udaf(),
            vec![v.clone()],
        )
        .schema(input.clone())
        .alias("c")
        .build()
        .expect("count");
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("c", DataType::Int64, false));
        OverAggregateOperator::new(
            vec![Arc::new(Column::new("k", 0))],
            input,
            2,
            frame,
            vec![AggCall {
                expr: Arc::new(expr),
                args: vec![v],
                filter: None,
                sliding: true,
                distinct_retract: None,
                arrival: None,
            }],
            Arc::new(Schema::new(fields)),
        )
        .expect("operator")
    }

    fn batch(op: &OverAggregateOperator, keys: std::ops::Range<i64>, ts: i64) -> RecordBatch {
        let n = keys.end - keys.start;
        RecordBatch::try_new(
            op.input_schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(keys)),
                Arc::new(Int64Array::from(vec![1; n as usize])),
                Arc::new(TimestampMillisecondArray::from(vec![ts; n as usize])),
            ],
        )
        .expect("batch")
    }

    /// Rows of one time come out in the order they arrived, even when the first of them
    /// waited in a batch the watermark had reached in part: LAG over the default RANGE
    /// frame gives the peers the value before the last of them to arrive.
    #[test]
    fn peers_keep_their_arrival_order_across_partly_fired_batches() {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]));
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("v", 1));
        let lag = datafusion::logical_expr::AggregateUDF::new_from_impl(
            crate::operator::lag::Lag::default(),
        );
        let expr = AggregateExprBuilder::new(Arc::new(lag), vec![v.clone()])
            .schema(input.clone())
            .alias("l")
            .build()
            .expect("lag");
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("l", DataType::Int64, true));
        let mut op = OverAggregateOperator::new(
            vec![Arc::new(Column::new("k", 0))],
            input.clone(),
            2,
            Frame::Unbounded { rows: false },
            vec![AggCall {
                expr: Arc::new(expr),
                args: vec![v],
                filter: None,
                sliding: false,
                distinct_retract: None,
                arrival: None,
            }],
            Arc::new(Schema::new(fields)),
        )
        .expect("operator");
        let rows = |vs: Vec<i64>, ts: Vec<i64>| {
            RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(Int64Array::from(vec![1; vs.len()])),
                    Arc::new(Int64Array::from(vs)),
                    Arc::new(TimestampMillisecondArray::from(ts)),
                ],
            )
            .expect("batch")
        };
        let mut out = vec![];
        // Row 2 (at 10) waits in the first batch after the watermark at 5 has taken row 1
        // out of it; row 3 (at 10, too) came later, in a batch of its own.
        op.process_batch(rows(vec![1, 2], vec![5, 10]), &mut out)
            .expect("batch");
        op.process_batch(rows(vec![3], vec![10]), &mut out)
            .expect("batch");
        op.process_watermark(5, &mut out).expect("watermark");
        op.process_watermark(10, &mut out).expect("watermark");
        let mut got = vec![];
        for m in &out {
            if let Message::Batch(b) = m {
                let v = b.column(1).as_primitive::<Int64Type>();
                let l = b.column(3).as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    got.push((v.value(i), l.is_valid(i).then(|| l.value(i))));
                }
            }
        }
        assert_eq!(got, [(1, None), (2, Some(2)), (3, Some(2))]);
    }

    /// A RANGE frame forgets a partition once the watermark has passed its rows by the
    /// frame's width: 10 000 keys seen once each leave nothing behind.
    #[test]
    fn a_range_frame_forgets_partitions_the_watermark_has_passed() {
        let mut op = operator(Frame::Range(1_000));
        let mut out = vec![];
        for i in 0..10 {
            let b = batch(&op, i * 1_000..(i + 1) * 1_000, i * 100);
            op.process_batch(b, &mut out).expect("batch");
            op.process_watermark(i * 100, &mut out).expect("watermark");
        }
        assert!(op.parts.len() <= 10_000);
        op.process_watermark(10_000, &mut out).expect("watermark");
        assert_eq!(op.parts.len(), 0, "partitions left");
        let rows: usize = out
            .iter()
            .map(|m| match m {
                Message::Batch(b) => b.num_rows(),
                _ => 0,
            })
            .sum();
        assert_eq!(rows, 10_000);
        // A ROWS frame keeps each partition's last rows (its next row needs them).
        let mut op = operator(Frame::Rows(2));
        let b = batch(&op, 0..100, 5);
        op.process_batch(b, &mut out).expect("batch");
        op.process_watermark(1_000_000, &mut out)
            .expect("watermark");
        assert_eq!(op.parts.len(), 100);
    }
}
