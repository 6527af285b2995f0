//! Vectorised aggregate state for a GROUP BY over an append-only input: one column of
//! state per aggregate, indexed by group id, updated in one pass over a batch's rows,
//! instead of a boxed DataFusion [`Accumulator`](datafusion::logical_expr::Accumulator)
//! per group and aggregate fed a slice of the group's rows. For many small groups per
//! batch (Nexmark q16: thousands of channel × day groups, a handful of rows each) the
//! per-group slices, calls and `ScalarValue`s cost more than the aggregation itself.
//!
//! Covered: `COUNT(x)` and `COUNT(*)`, `COUNT(DISTINCT x)` of an integer or timestamp,
//! `SUM` of an integer into a `BIGINT`, `AVG` of a `DOUBLE` (integers are averaged as
//! one), and `MIN`/`MAX` of an integer, timestamp or string — each with or without
//! `FILTER (WHERE …)`. Any other aggregate, or an input that
//! takes rows back, keeps the accumulators of [`super::group`]. The results are
//! DataFusion's: the same types, NULL handling and wrapping integer sums, and a
//! checkpoint's state is laid out as DataFusion's accumulators lay it out
//! ([`GroupColumns::states`]), so either form restores the other's.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
    UInt64Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, SchemaRef, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::HashMap;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::operator::group::AggCall;

/// The state of a GROUP BY's aggregates for every group: one [`GroupColumn`] per
/// aggregate, and the distinct values of its `COUNT(DISTINCT …)` calls, one [`Share`] per
/// argument — calls over the same argument with different FILTERs share one set, each
/// call a bit of each value's mask, as Flink's distinct aggregates share one `MapView`
/// per argument (`DistinctInfo`; Nexmark q16's eight calls over two arguments keep two
/// sets, and a row costs two lookups rather than eight).
pub(crate) struct GroupColumns {
    cols: Vec<GroupColumn>,
    shares: Vec<Share>,
}

/// The distinct values of the `COUNT(DISTINCT x)` calls over one argument `x`.
struct Share {
    /// The calls (aggregate positions); call `members[b]` owns bit `b` of each mask.
    members: Vec<usize>,
    /// Each (group, value) with the bits of the calls that counted it.
    seen: HashMap<(u32, i64), u64>,
}

impl GroupColumns {
    /// The columnar form of `aggs` over rows of `input`, or None if any call needs the
    /// general accumulator.
    pub(crate) fn of(aggs: &[AggCall], input: &SchemaRef) -> Option<GroupColumns> {
        let mut cols = aggs
            .iter()
            .map(|a| GroupColumn::of(a, input))
            .collect::<Option<Vec<_>>>()?;
        let mut shares: Vec<Share> = vec![];
        for (j, col) in cols.iter_mut().enumerate() {
            let State::CountDistinct { share, bit, .. } = &mut col.state else {
                continue;
            };
            let arg: &dyn PhysicalExpr = aggs[j].args[0].as_ref();
            let found = shares
                .iter()
                .position(|s| s.members.len() < 64 && aggs[s.members[0]].args[0].as_ref() == arg);
            let k = match found {
                Some(k) => k,
                None => {
                    shares.push(Share {
                        members: vec![],
                        seen: HashMap::new(),
                    });
                    shares.len() - 1
                }
            };
            *share = k;
            *bit = shares[k].members.len() as u32;
            shares[k].members.push(j);
        }
        Some(GroupColumns { cols, shares })
    }

    /// Makes room for group ids below `groups`.
    pub(crate) fn grow(&mut self, groups: usize) {
        for c in &mut self.cols {
            c.grow(groups);
        }
    }

    /// Forgets the groups `dead` marks (by id), as new.
    pub(crate) fn forget(&mut self, dead: &[bool]) {
        for c in &mut self.cols {
            c.forget(dead);
        }
        for s in &mut self.shares {
            s.seen
                .retain(|(g, _), _| !dead.get(*g as usize).copied().unwrap_or(false));
        }
    }

    /// Adds the rows of `batch` to their groups (`groups[i]`: row i's group), each call
    /// its argument's rows where its FILTER holds. Every group id must be below the size
    /// given to [`GroupColumns::grow`].
    pub(crate) fn update(
        &mut self,
        aggs: &[AggCall],
        batch: &RecordBatch,
        groups: &[u32],
    ) -> Result<()> {
        let n = batch.num_rows();
        let mask_of = |a: &AggCall| -> Result<Option<BooleanArray>> {
            match &a.filter {
                Some(f) => Ok(Some(
                    f.evaluate(batch)?
                        .into_array(n)?
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .cloned()
                        .ok_or_else(|| WeirError::internal("FILTER is not boolean"))?,
                )),
                None => Ok(None),
            }
        };
        // Every argument and FILTER evaluated before any state changes, so an error
        // leaves the state as it was.
        let mut inputs = vec![];
        for (c, a) in self.cols.iter().zip(aggs) {
            if let State::CountDistinct { .. } = c.state {
                inputs.push(None);
                continue;
            }
            let arg = a.args[0].evaluate(batch)?.into_array(n)?;
            inputs.push(Some((arg, mask_of(a)?)));
        }
        let mut shared = vec![];
        for share in &self.shares {
            let values = aggs[share.members[0]].args[0]
                .evaluate(batch)?
                .into_array(n)?;
            let masks = share
                .members
                .iter()
                .map(|j| mask_of(&aggs[*j]))
                .collect::<Result<Vec<_>>>()?;
            shared.push((as_i64(&values)?, masks));
        }
        for (c, input) in self.cols.iter_mut().zip(&inputs) {
            if let Some((arg, mask)) = input {
                c.update(arg, groups, mask.as_ref())?;
            }
        }
        for (share, (ints, masks)) in self.shares.iter_mut().zip(&shared) {
            let mut counts: Vec<&mut Vec<i64>> = vec![];
            let mut wanted: Vec<usize> = share.members.clone();
            wanted.sort_unstable();
            for (j, c) in self.cols.iter_mut().enumerate() {
                if wanted.binary_search(&j).is_ok()
                    && let State::CountDistinct { counts: v, .. } = &mut c.state
                {
                    counts.push(v);
                }
            }
            // `counts` is in aggregate order; bit b belongs to members[b].
            let order: Vec<usize> = share
                .members
                .iter()
                .map(|j| wanted.binary_search(j).unwrap_or(0))
                .collect();
            for (i, g) in groups.iter().enumerate() {
                if !ints.is_valid(i) {
                    continue;
                }
                let mut bits = 0u64;
                for (b, m) in masks.iter().enumerate() {
                    if m.as_ref().is_none_or(|m| m.is_valid(i) && m.value(i)) {
                        bits |= 1 << b;
                    }
                }
                if bits == 0 {
                    continue;
                }
                let seen = share.seen.entry((*g, ints.value(i))).or_insert(0);
                let mut new = bits & !*seen;
                *seen |= new;
                while new != 0 {
                    let b = new.trailing_zeros() as usize;
                    new &= new - 1;
                    counts[order[b]][*g as usize] += 1;
                }
            }
        }
        Ok(())
    }

    /// The results of aggregate `j` for the groups `ids`, one row each, in DataFusion's
    /// result type of the call (`BIGINT` for the counts and the sum, `DOUBLE` for an
    /// average, the argument's type for `MIN`/`MAX`).
    pub(crate) fn evaluate(&self, j: usize, ids: &[u32]) -> Result<ArrayRef> {
        self.column(j)?.evaluate(ids)
    }

    /// The aggregates, as many as [`GroupColumns::evaluate`] takes.
    pub(crate) fn len(&self) -> usize {
        self.cols.len()
    }

    fn column(&self, j: usize) -> Result<&GroupColumn> {
        self.cols
            .get(j)
            .ok_or_else(|| WeirError::internal("no such aggregate column"))
    }

    /// The state of every aggregate for the groups `ids`, one row each, laid out as
    /// DataFusion's accumulator of the call lays out its state: the count; the distinct
    /// values as a list of the argument's type (ascending); the sum; the minimum or
    /// maximum; the count (`UBIGINT`) and sum of an average. Each shared set is read once.
    pub(crate) fn states(&self, ids: &[u32]) -> Result<Vec<Vec<ArrayRef>>> {
        // Each group's row, by group id.
        let mut row = vec![usize::MAX; ids.iter().max().map_or(0, |m| *m as usize + 1)];
        for (k, g) in ids.iter().enumerate() {
            row[*g as usize] = k;
        }
        // Per share, per call (bit), per row: its distinct values.
        let mut values: Vec<Vec<Vec<Vec<i64>>>> = vec![];
        for share in &self.shares {
            let mut per = vec![vec![vec![]; ids.len()]; share.members.len()];
            for ((g, v), bits) in &share.seen {
                let Some(&k) = row.get(*g as usize).filter(|k| **k != usize::MAX) else {
                    continue;
                };
                let mut b = *bits;
                while b != 0 {
                    let bit = b.trailing_zeros() as usize;
                    b &= b - 1;
                    if let Some(p) = per.get_mut(bit) {
                        p[k].push(*v);
                    }
                }
            }
            values.push(per);
        }
        let mut out = vec![];
        for col in &self.cols {
            let State::CountDistinct { share, bit, .. } = &col.state else {
                out.push(col.state(ids)?);
                continue;
            };
            let per = std::mem::take(&mut values[*share][*bit as usize]);
            let mut lengths = Vec::with_capacity(ids.len());
            let mut flat = vec![];
            for mut p in per {
                p.sort_unstable();
                lengths.push(p.len());
                flat.extend(p);
            }
            let flat = Int64Array::from(flat);
            let field = Arc::new(Field::new_list_field(col.arg_type.clone(), true));
            out.push(vec![Arc::new(ListArray::try_new(
                field,
                OffsetBuffer::<i32>::from_lengths(lengths),
                cast(&flat, &col.arg_type)?,
                None,
            )?)]);
        }
        Ok(out)
    }

    /// Adds a state laid out as [`GroupColumns::states`] lays it out (row `row` of
    /// `state`) to aggregate `j` of group `g`: a checkpoint restored, from this form or
    /// DataFusion's accumulators. Errors: a state of other types than this call's (a
    /// checkpoint of another table definition) or a count past 2^63.
    pub(crate) fn merge(
        &mut self,
        j: usize,
        g: usize,
        state: &[ArrayRef],
        row: usize,
    ) -> Result<()> {
        let bad = || WeirError::user("the checkpoint's state of a group aggregate is malformed");
        let col = self.cols.get_mut(j).ok_or_else(bad)?;
        col.check_state(state)?;
        let State::CountDistinct { counts, share, bit } = &mut col.state else {
            return col.merge(g, state, row);
        };
        let list = state
            .first()
            .and_then(|s| s.as_list_opt::<i32>())
            .ok_or_else(bad)?;
        if row >= list.len() {
            return Err(bad());
        }
        if list.is_valid(row) {
            let values = as_i64(&list.value(row))?;
            let seen = &mut self.shares[*share].seen;
            for v in values.iter().flatten() {
                let mask = seen.entry((g as u32, v)).or_insert(0);
                if *mask & (1 << *bit) == 0 {
                    *mask |= 1 << *bit;
                    counts[g] = counts[g].checked_add(1).ok_or_else(bad)?;
                }
            }
        }
        Ok(())
    }

    /// Bytes held, about.
    pub(crate) fn size(&self) -> usize {
        self.cols.iter().map(GroupColumn::size).sum::<usize>()
            + self
                .shares
                .iter()
                .map(|s| s.seen.capacity() * 24)
                .sum::<usize>()
    }
}

/// One aggregate's state for every group, indexed by group id.
struct GroupColumn {
    /// The argument's type (what `MIN`/`MAX` give back, and `COUNT(DISTINCT)`'s state
    /// holds).
    arg_type: DataType,
    state: State,
}

enum State {
    /// `COUNT(x)`: the rows whose `x` is not NULL.
    Count(Vec<i64>),
    /// `COUNT(DISTINCT x)`: the count per group; the values are in [`Share`] `share`,
    /// under bit `bit`.
    CountDistinct {
        counts: Vec<i64>,
        share: usize,
        bit: u32,
    },
    /// `SUM(x)` into a `BIGINT`, wrapping as DataFusion's does; NULL until a value comes.
    Sum(Vec<Option<i64>>),
    /// `AVG(x)` of a `DOUBLE` (DataFusion averages integers as one): the rows counted and
    /// their sum, added row by row (Flink's order; DataFusion sums a batch by lanes, which
    /// can differ in the last bit for values past 2^53).
    Avg {
        counts: Vec<u64>,
        sums: Vec<Option<f64>>,
    },
    /// `MIN(x)`/`MAX(x)` of an integer or timestamp (as i64).
    IntExtreme { max: bool, values: Vec<Option<i64>> },
    /// `MIN(x)`/`MAX(x)` of a string.
    StrExtreme {
        max: bool,
        values: Vec<Option<String>>,
    },
}

/// Whether a type is held as an i64 without loss (and cast back exactly).
fn is_integer_like(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::Timestamp(_, _)
    )
}

impl GroupColumn {
    /// The vectorised form of `call` over rows of `input`, or None where the call needs
    /// the general accumulator (another function, an argument type not covered, an
    /// `ORDER BY` within the call, a sliding or retracting form).
    fn of(call: &AggCall, input: &SchemaRef) -> Option<GroupColumn> {
        if call.sliding
            || call.distinct_retract.is_some()
            || call.arrival.is_some()
            || call.args.len() != 1
            || !call.expr.order_bys().is_empty()
        {
            return None;
        }
        let arg_type = call.args[0].data_type(input).ok()?;
        let out_type = call.expr.field().data_type().clone();
        let distinct = call.expr.is_distinct();
        let state = match call.expr.fun().name() {
            "count" if !distinct && out_type == DataType::Int64 => State::Count(vec![]),
            "count" if distinct && out_type == DataType::Int64 && is_integer_like(&arg_type) => {
                State::CountDistinct {
                    counts: vec![],
                    share: usize::MAX,
                    bit: 0,
                }
            }
            "sum"
                if !distinct
                    && out_type == DataType::Int64
                    && matches!(
                        arg_type,
                        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
                    ) =>
            {
                State::Sum(vec![])
            }
            "avg"
                if !distinct && out_type == DataType::Float64 && arg_type == DataType::Float64 =>
            {
                State::Avg {
                    counts: vec![],
                    sums: vec![],
                }
            }
            f @ ("min" | "max") if out_type == arg_type && is_integer_like(&arg_type) => {
                State::IntExtreme {
                    max: f == "max",
                    values: vec![],
                }
            }
            f @ ("min" | "max") if out_type == arg_type && arg_type == DataType::Utf8 => {
                State::StrExtreme {
                    max: f == "max",
                    values: vec![],
                }
            }
            _ => return None,
        };
        Some(GroupColumn { arg_type, state })
    }

    /// Makes room for group ids below `groups`.
    fn grow(&mut self, groups: usize) {
        match &mut self.state {
            State::Count(v) => grow(v, groups, 0),
            State::CountDistinct { counts, .. } => grow(counts, groups, 0),
            State::Sum(v) | State::IntExtreme { values: v, .. } => grow(v, groups, None),
            State::StrExtreme { values, .. } => grow(values, groups, None),
            State::Avg { counts, sums } => {
                grow(counts, groups, 0);
                grow(sums, groups, None);
            }
        }
    }

    /// Forgets the groups `dead` marks (by id), as new.
    fn forget(&mut self, dead: &[bool]) {
        match &mut self.state {
            State::Count(v) => clear(v, dead, 0),
            State::CountDistinct { counts, .. } => clear(counts, dead, 0),
            State::Sum(v) | State::IntExtreme { values: v, .. } => clear(v, dead, None),
            State::StrExtreme { values, .. } => clear(values, dead, None),
            State::Avg { counts, sums } => {
                clear(counts, dead, 0);
                clear(sums, dead, None);
            }
        }
    }

    /// Adds the rows of `values` (the call's one argument, a batch's rows) to their
    /// groups, `groups[i]` being row i's group; a `mask` (the call's FILTER) keeps the
    /// rows where it is true. Every group id must be below the size given to
    /// [`GroupColumn::grow`].
    fn update(
        &mut self,
        values: &ArrayRef,
        groups: &[u32],
        mask: Option<&BooleanArray>,
    ) -> Result<()> {
        // Logical nulls: a NULL-typed argument (`COUNT(NULL)`) has no null buffer.
        let nulls = values.logical_nulls();
        let kept = |i: usize| {
            nulls.as_ref().is_none_or(|n| n.is_valid(i))
                && mask.is_none_or(|m| m.is_valid(i) && m.value(i))
        };
        match &mut self.state {
            State::Count(counts) => {
                for (i, g) in groups.iter().enumerate() {
                    if kept(i) {
                        counts[*g as usize] += 1;
                    }
                }
            }
            State::CountDistinct { .. } => {
                return Err(WeirError::internal(
                    "COUNT(DISTINCT) is updated through its share",
                ));
            }
            State::Sum(sums) => {
                let ints = as_i64(values)?;
                let ints = ints.values();
                for (i, g) in groups.iter().enumerate() {
                    if kept(i) {
                        let s = &mut sums[*g as usize];
                        *s = Some(s.unwrap_or(0).wrapping_add(ints[i]));
                    }
                }
            }
            State::Avg { counts, sums } => {
                let doubles = values
                    .as_primitive_opt::<Float64Type>()
                    .ok_or_else(|| WeirError::internal("AVG argument is not a DOUBLE"))?
                    .values();
                for (i, g) in groups.iter().enumerate() {
                    if kept(i) {
                        counts[*g as usize] += 1;
                        let s = &mut sums[*g as usize];
                        *s = Some(s.unwrap_or(0.0) + doubles[i]);
                    }
                }
            }
            State::IntExtreme { max, values: best } => {
                let ints = as_i64(values)?;
                let ints = ints.values();
                for (i, g) in groups.iter().enumerate() {
                    if kept(i) {
                        let v = ints[i];
                        let b = &mut best[*g as usize];
                        if b.is_none_or(|b| if *max { v > b } else { v < b }) {
                            *b = Some(v);
                        }
                    }
                }
            }
            State::StrExtreme { max, values: best } => {
                let strings = values
                    .as_string_opt::<i32>()
                    .ok_or_else(|| WeirError::internal("MIN/MAX argument is not a string"))?;
                for (i, g) in groups.iter().enumerate() {
                    if kept(i) {
                        let v = strings.value(i);
                        let b = &mut best[*g as usize];
                        match b {
                            Some(b) if (*max && v > b.as_str()) || (!*max && v < b.as_str()) => {
                                b.clear();
                                b.push_str(v);
                            }
                            Some(_) => {}
                            None => *b = Some(v.to_string()),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The results of the groups `ids`, one row each, in DataFusion's result type of the
    /// call (`BIGINT` for the counts and the sum, the argument's type for `MIN`/`MAX`).
    pub(crate) fn evaluate(&self, ids: &[u32]) -> Result<ArrayRef> {
        Ok(match &self.state {
            State::Count(v) | State::CountDistinct { counts: v, .. } => Arc::new(
                Int64Array::from_iter_values(ids.iter().map(|g| v[*g as usize])),
            ),
            State::Sum(v) => Arc::new(Int64Array::from_iter(ids.iter().map(|g| v[*g as usize]))),
            State::Avg { counts, sums } => Arc::new(Float64Array::from_iter(ids.iter().map(|g| {
                let (c, s) = (counts[*g as usize], sums[*g as usize]);
                if c == 0 {
                    None
                } else {
                    s.map(|s| s / c as f64)
                }
            }))),
            State::IntExtreme { values, .. } => {
                let ints = Int64Array::from_iter(ids.iter().map(|g| values[*g as usize]));
                cast(&ints, &self.arg_type)?
            }
            State::StrExtreme { values, .. } => Arc::new(StringArray::from_iter(
                ids.iter().map(|g| values[*g as usize].as_deref()),
            )),
        })
    }

    /// The state of the groups `ids`, one row each, laid out as DataFusion's accumulator
    /// of the call lays out its state: the count; the distinct values as a list of the
    /// argument's type; the sum; the minimum or maximum; the count (`UBIGINT`) and sum of
    /// an average.
    fn state(&self, ids: &[u32]) -> Result<Vec<ArrayRef>> {
        Ok(match &self.state {
            State::Avg { counts, sums } => vec![
                Arc::new(UInt64Array::from_iter_values(
                    ids.iter().map(|g| counts[*g as usize]),
                )),
                Arc::new(Float64Array::from_iter(
                    ids.iter().map(|g| sums[*g as usize]),
                )),
            ],
            _ => vec![self.evaluate(ids)?],
        })
    }

    /// Adds a state laid out as [`GroupColumn::state`] lays it out (row `row` of
    /// `state`) to group `g`: a checkpoint restored, from this form or DataFusion's
    /// accumulators. Errors: a state of another shape.
    fn merge(&mut self, g: usize, state: &[ArrayRef], row: usize) -> Result<()> {
        let bad = || WeirError::user("the checkpoint's state of a group aggregate is malformed");
        let first = state.first().ok_or_else(bad)?;
        if row >= first.len() {
            return Err(bad());
        }
        if let State::Avg { counts, sums } = &mut self.state {
            let c = first.as_primitive_opt::<UInt64Type>().ok_or_else(bad)?;
            let s = state
                .get(1)
                .and_then(|s| s.as_primitive_opt::<Float64Type>())
                .ok_or_else(bad)?;
            if c.is_valid(row) {
                counts[g] = counts[g].checked_add(c.value(row)).ok_or_else(bad)?;
            }
            if s.is_valid(row) {
                sums[g] = Some(sums[g].unwrap_or(0.0) + s.value(row));
            }
            return Ok(());
        }
        if let State::Count(counts) = &mut self.state {
            let c = as_i64(first)?;
            if c.is_valid(row) {
                counts[g] = counts[g].checked_add(c.value(row)).ok_or_else(bad)?;
            }
            return Ok(());
        }
        self.update(&first.slice(row, 1), &[g as u32], None)
    }

    /// Errors unless `state` has the types [`GroupColumn::state`] gives (DataFusion's
    /// accumulator of the call gives the same): a checkpoint of a table whose column
    /// changed type is refused, not converted.
    fn check_state(&self, state: &[ArrayRef]) -> Result<()> {
        let int = DataType::Int64;
        let expected: Vec<DataType> = match &self.state {
            State::Count(_) | State::Sum(_) => vec![int],
            State::CountDistinct { .. } => vec![DataType::List(Arc::new(Field::new_list_field(
                self.arg_type.clone(),
                true,
            )))],
            State::Avg { .. } => vec![DataType::UInt64, DataType::Float64],
            State::IntExtreme { .. } | State::StrExtreme { .. } => vec![self.arg_type.clone()],
        };
        let matches = state.len() == expected.len()
            && state
                .iter()
                .zip(&expected)
                .all(|(s, e)| match (s.data_type(), e) {
                    // A list's field name and nullability are not part of its values' type.
                    (DataType::List(a), DataType::List(b)) => a.data_type() == b.data_type(),
                    (a, b) => a == b,
                });
        if matches {
            return Ok(());
        }
        Err(WeirError::user(format!(
            "the checkpoint's state of a group aggregate has types ({}) where this query keeps ({}): was the table's definition changed since? Start the job from scratch (--from-scratch)",
            state
                .iter()
                .map(|s| s.data_type().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            expected
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// Bytes held, about.
    fn size(&self) -> usize {
        match &self.state {
            State::Count(v) => v.capacity() * 8,
            State::CountDistinct { counts, .. } => counts.capacity() * 8,
            State::Sum(v) | State::IntExtreme { values: v, .. } => v.capacity() * 16,
            State::Avg { counts, sums } => counts.capacity() * 8 + sums.capacity() * 16,
            State::StrExtreme { values, .. } => {
                // The strings' bytes measured over the first 1 000 groups and scaled.
                let sample = &values[..values.len().min(1000)];
                let bytes: usize = sample
                    .iter()
                    .map(|v| v.as_ref().map_or(0, String::capacity))
                    .sum();
                values.capacity() * 24 + bytes.checked_div(sample.len()).unwrap_or(0) * values.len()
            }
        }
    }
}

fn grow<T: Clone>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() < n {
        v.resize(n, fill);
    }
}

fn clear<T: Clone>(v: &mut [T], dead: &[bool], fill: T) {
    for (g, d) in dead.iter().enumerate() {
        if *d && let Some(x) = v.get_mut(g) {
            *x = fill.clone();
        }
    }
}

/// An integer or timestamp array as i64 values (nulls stay nulls).
fn as_i64(values: &ArrayRef) -> Result<datafusion::arrow::array::PrimitiveArray<Int64Type>> {
    let c = cast(values, &DataType::Int64)?;
    c.as_primitive_opt::<Int64Type>()
        .cloned()
        .ok_or_else(|| WeirError::internal("an integer argument did not cast to BIGINT"))
}
