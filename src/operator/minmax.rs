//! `MIN` and `MAX` over results that update, as Flink's `MinWithRetractAggFunction` and
//! `MaxWithRetractAggFunction`: the accumulator keeps every value it holds with its count,
//! so a retracted value is taken out and the next smallest (largest) takes its place.
//! DataFusion's own accumulators keep one value (or, sliding, take back only their oldest
//! row), so the planner swaps these in for `MIN`/`MAX` over a changelog.
//!
//! Values are kept in Arrow's row format, whose bytes sort as the values do (NULLs are
//! skipped, as `MIN`/`MAX` skip them). The state — for checkpoints — is two lists: the
//! distinct values and their counts.
//!
//! The same value counts make `AGG(DISTINCT …)` take rows back
//! ([`distinct_with_retract`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

/// The aggregate function: `MIN` (`max` false) or `MAX` that takes rows back.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MinMaxWithRetract {
    max: bool,
    signature: Signature,
}

impl MinMaxWithRetract {
    pub fn new(max: bool) -> Self {
        MinMaxWithRetract {
            max,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for MinMaxWithRetract {
    fn name(&self) -> &str {
        if self.max {
            "max_with_retract"
        } else {
            "min_with_retract"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        arg_types
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Plan(format!("{}() takes one argument", self.name())))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ValueCounts::min_max(
            args.return_field.data_type().clone(),
            self.max,
        )?))
    }

    /// The distinct values (a list of the argument's type) and their counts (a list of
    /// BIGINT).
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = args.return_field.data_type().clone();
        Ok(vec![
            Arc::new(Field::new_list(
                format!("{}[values]", args.name),
                Field::new_list_field(t, true),
                true,
            )),
            Arc::new(Field::new_list(
                format!("{}[counts]", args.name),
                Field::new_list_field(DataType::Int64, true),
                true,
            )),
        ])
    }
}

/// What a [`ValueCounts`] gives from the values it holds.
#[derive(Debug)]
enum Pick {
    Min,
    Max,
    /// The aggregate (its plain, non-DISTINCT form) of the distinct values.
    Distinct(Arc<AggregateFunctionExpr>),
}

/// Every value held (a row of the arguments), in the row format, with how many times.
#[derive(Debug)]
struct ValueCounts {
    pick: Pick,
    data_types: Vec<DataType>,
    converter: RowConverter,
    values: BTreeMap<OwnedRow, i64>,
    /// For `Pick::Distinct` of an aggregate that takes rows back (SUM, AVG, STDDEV, …):
    /// that aggregate, kept over the distinct set — fed a value when its count leaves 0,
    /// and the value taken back when its count returns to 0 — so a result costs O(1),
    /// not O(distinct values). Not checkpointed: restoring adds the values again.
    live: Option<Box<dyn Accumulator>>,
}

/// An accumulator of `AGG(DISTINCT args)` that takes rows back, as Flink's distinct
/// aggregates over a changelog keep each distinct value with its count (a `MapView`): a
/// value is in the distinct set while its count is above 0, and the result is `inner` —
/// the same aggregate without DISTINCT — over that set, computed when asked. Rows with a
/// NULL argument are skipped, as the aggregates it is used for skip them. The state, for
/// checkpoints, is a list per argument of the distinct values and a list of their counts.
///
/// `arg_types` are the types of `inner`'s arguments. Errors: a type Arrow's row format
/// cannot encode.
pub fn distinct_with_retract(
    arg_types: Vec<DataType>,
    inner: Arc<AggregateFunctionExpr>,
) -> Result<Box<dyn Accumulator>> {
    Ok(Box::new(ValueCounts::new(
        arg_types,
        Pick::Distinct(inner),
    )?))
}

impl ValueCounts {
    fn new(data_types: Vec<DataType>, pick: Pick) -> Result<Self> {
        Ok(ValueCounts {
            pick,
            converter: RowConverter::new(
                data_types
                    .iter()
                    .map(|t| SortField::new(t.clone()))
                    .collect(),
            )?,
            data_types,
            values: BTreeMap::new(),
            live: None,
        })
    }

    fn min_max(data_type: DataType, max: bool) -> Result<Self> {
        Self::new(vec![data_type], if max { Pick::Max } else { Pick::Min })
    }

    /// Adds `by` (negative: takes back) to each row of `values` none of whose columns is
    /// NULL, `counts[i]` times for row `i` (once without counts). A row whose count
    /// reaches 0 is gone.
    fn add(&mut self, values: &[ArrayRef], counts: Option<&Int64Array>, by: i64) -> Result<()> {
        let columns = values.get(..self.data_types.len()).ok_or_else(|| {
            DataFusionError::Internal(format!(
                "{} argument(s) where {} were expected",
                values.len(),
                self.data_types.len()
            ))
        })?;
        let rows = self.converter.convert_columns(columns)?;
        let n = columns.first().map_or(0, |c| c.len());
        // Rows whose value entered the set (its count left 0) or left it (back to 0),
        // for the live aggregate. Counts move one way within a call (all added, or all
        // taken back), so a value enters or leaves at most once per call.
        let (mut entered, mut left) = (vec![], vec![]);
        let track = self.live.is_some();
        for i in 0..n {
            if columns.iter().any(|c| c.is_null(i)) {
                continue;
            }
            let add = by * counts.map_or(1, |c| c.value(i));
            let row = rows.row(i).owned();
            let (before, after) = {
                let c = self.values.entry(row.clone()).or_insert(0);
                let before = *c;
                *c += add;
                (before, *c)
            };
            if after <= 0 {
                self.values.remove(&row);
            }
            if !track {
                continue;
            }
            if before <= 0 && after > 0 {
                entered.push(i as u32);
            } else if before > 0 && after <= 0 {
                left.push(i as u32);
            }
        }
        if let Some(live) = self.live.as_mut() {
            let rows_of = |idx: Vec<u32>| -> Result<Vec<ArrayRef>> {
                let idx = datafusion::arrow::array::UInt32Array::from(idx);
                Ok(columns
                    .iter()
                    .map(|c| datafusion::arrow::compute::take(c.as_ref(), &idx, None))
                    .collect::<std::result::Result<Vec<_>, _>>()?)
            };
            if !entered.is_empty() {
                live.update_batch(&rows_of(entered)?)?;
            }
            if !left.is_empty() {
                live.retract_batch(&rows_of(left)?)?;
            }
        }
        Ok(())
    }

    /// The distinct values, a column per argument.
    fn distinct_values(&self) -> Result<Vec<ArrayRef>> {
        Ok(self
            .converter
            .convert_rows(self.values.keys().map(|r| r.row()))?)
    }

    /// The value of a NULL result (no value held).
    fn null(&self) -> Result<ScalarValue> {
        match self.data_types.first() {
            Some(t) => ScalarValue::try_from(t),
            None => Ok(ScalarValue::Null),
        }
    }
}

impl Accumulator for ValueCounts {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(values, None, 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(values, None, -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let held = match &self.pick {
            Pick::Max => self.values.keys().next_back(),
            Pick::Min => self.values.keys().next(),
            // COUNT(DISTINCT …): the number of distinct values (NULLs are never held).
            Pick::Distinct(inner) if inner.fun().name() == "count" => {
                return Ok(ScalarValue::Int64(Some(self.values.len() as i64)));
            }
            Pick::Distinct(_) if self.live.is_some() => {
                return match self.live.as_mut() {
                    Some(live) => live.evaluate(),
                    None => self.null(),
                };
            }
            Pick::Distinct(inner) => {
                let mut acc = inner.create_accumulator()?;
                if !self.values.is_empty() {
                    acc.update_batch(&self.distinct_values()?)?;
                }
                return acc.evaluate();
            }
        };
        match held {
            Some(row) => {
                let arrays = self.converter.convert_rows([row.row()])?;
                match arrays.first() {
                    Some(a) => ScalarValue::try_from_array(a, 0),
                    None => self.null(),
                }
            }
            None => self.null(),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.converter.size()
            + self
                .values
                .keys()
                .map(|r| r.as_ref().len() + std::mem::size_of::<OwnedRow>() + 8)
                .sum::<usize>()
            + self.live.as_ref().map_or(0, |a| a.size())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |a: ArrayRef| {
            ScalarValue::List(Arc::new(
                datafusion::common::utils::SingleRowListArrayBuilder::new(a)
                    .with_nullable(true)
                    .build_list_array(),
            ))
        };
        let mut out: Vec<ScalarValue> = self.distinct_values()?.into_iter().map(list).collect();
        out.push(list(Arc::new(Int64Array::from_iter_values(
            self.values.values().copied(),
        ))));
        Ok(out)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let width = self.data_types.len();
        let malformed =
            |what: &str| DataFusionError::Internal(format!("a value-count state: {what}"));
        if states.len() != width + 1 {
            return Err(malformed("a list per argument and a list of counts"));
        }
        let lists = states
            .iter()
            .map(|s| s.as_list_opt::<i32>())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("its columns are not lists"))?;
        for r in 0..states[0].len() {
            if lists.iter().any(|l| l.is_null(r)) {
                continue;
            }
            let values: Vec<ArrayRef> = lists[..width].iter().map(|l| l.value(r)).collect();
            let c = lists[width].value(r);
            let c = c
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| malformed("counts are not BIGINT"))?;
            if values.iter().any(|v| v.len() != c.len()) {
                return Err(malformed("values and counts differ in length"));
            }
            self.add(&values, Some(c), 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;

    /// Values come and go in any order; MIN and MAX follow, through a state round trip.
    #[test]
    fn retracted_values_make_way_for_the_next() {
        let mut max = ValueCounts::min_max(DataType::Int32, true).expect("acc");
        let mut min = ValueCounts::min_max(DataType::Int32, false).expect("acc");
        let a: ArrayRef = Arc::new(Int32Array::from(vec![
            Some(5),
            None,
            Some(9),
            Some(9),
            Some(1),
        ]));
        for acc in [&mut max, &mut min] {
            acc.update_batch(std::slice::from_ref(&a)).expect("update");
        }
        assert_eq!(max.evaluate().expect("max"), ScalarValue::Int32(Some(9)));
        assert_eq!(min.evaluate().expect("min"), ScalarValue::Int32(Some(1)));
        let back: ArrayRef = Arc::new(Int32Array::from(vec![9, 1]));
        for acc in [&mut max, &mut min] {
            acc.retract_batch(std::slice::from_ref(&back))
                .expect("retract");
        }
        // One 9 is left.
        assert_eq!(max.evaluate().expect("max"), ScalarValue::Int32(Some(9)));
        assert_eq!(min.evaluate().expect("min"), ScalarValue::Int32(Some(5)));
        let st = max.state().expect("state");
        let arrays: Vec<ArrayRef> = st.iter().map(|v| v.to_array().expect("array")).collect();
        let mut again = ValueCounts::min_max(DataType::Int32, true).expect("acc");
        again.merge_batch(&arrays).expect("merge");
        let nine: ArrayRef = Arc::new(Int32Array::from(vec![9]));
        again
            .retract_batch(std::slice::from_ref(&nine))
            .expect("retract");
        assert_eq!(again.evaluate().expect("max"), ScalarValue::Int32(Some(5)));
        again
            .retract_batch(&[Arc::new(Int32Array::from(vec![5])) as ArrayRef])
            .expect("retract");
        assert_eq!(again.evaluate().expect("max"), ScalarValue::Int32(None));
    }

    /// SUM(DISTINCT): a value counts while any of its rows is held, and the counts go
    /// through a checkpoint's state; rows with a NULL argument are skipped.
    #[test]
    fn distinct_values_leave_with_their_last_row() {
        use datafusion::arrow::array::Int64Array as I64;
        use datafusion::arrow::datatypes::Schema;
        use datafusion::physical_expr::aggregate::AggregateExprBuilder;
        use datafusion::physical_expr::expressions::col;
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let sum = AggregateExprBuilder::new(
            datafusion::functions_aggregate::sum::sum_udaf(),
            vec![col("x", &schema).expect("column")],
        )
        .schema(schema)
        .alias("s")
        .build()
        .expect("sum");
        let sum = Arc::new(sum);
        let mut acc = distinct_with_retract(vec![DataType::Int64], sum.clone()).expect("acc");
        let rows: ArrayRef = Arc::new(I64::from(vec![Some(5), Some(5), Some(7), None]));
        acc.update_batch(std::slice::from_ref(&rows))
            .expect("update");
        assert_eq!(acc.evaluate().expect("sum"), ScalarValue::Int64(Some(12)));
        let five: ArrayRef = Arc::new(I64::from(vec![5]));
        acc.retract_batch(std::slice::from_ref(&five))
            .expect("retract");
        assert_eq!(acc.evaluate().expect("sum"), ScalarValue::Int64(Some(12)));
        acc.retract_batch(std::slice::from_ref(&five))
            .expect("retract");
        assert_eq!(acc.evaluate().expect("sum"), ScalarValue::Int64(Some(7)));
        let st = acc.state().expect("state");
        let arrays: Vec<ArrayRef> = st.iter().map(|v| v.to_array().expect("array")).collect();
        let mut again = distinct_with_retract(vec![DataType::Int64], sum).expect("acc");
        again.merge_batch(&arrays).expect("merge");
        assert_eq!(again.evaluate().expect("sum"), ScalarValue::Int64(Some(7)));
        // A value never held, taken back, changes nothing.
        let nine: ArrayRef = Arc::new(I64::from(vec![9]));
        again
            .retract_batch(std::slice::from_ref(&nine))
            .expect("retract");
        assert_eq!(again.evaluate().expect("sum"), ScalarValue::Int64(Some(7)));
        let seven: ArrayRef = Arc::new(I64::from(vec![7]));
        again
            .retract_batch(std::slice::from_ref(&seven))
            .expect("retract");
        assert_eq!(again.evaluate().expect("sum"), ScalarValue::Int64(None));
        // The set fills again: each value counts once, however many rows bring it.
        let threes: ArrayRef = Arc::new(I64::from(vec![3, 3, 4]));
        again
            .update_batch(std::slice::from_ref(&threes))
            .expect("update");
        assert_eq!(again.evaluate().expect("sum"), ScalarValue::Int64(Some(7)));
    }
}
