//! `MIN` and `MAX` over results that update, as Flink's `MinWithRetractAggFunction` and
//! `MaxWithRetractAggFunction`: the accumulator keeps every value it holds with its count,
//! so a retracted value is taken out and the next smallest (largest) takes its place.
//! DataFusion's own accumulators keep one value (or, sliding, take back only their oldest
//! row), so the planner swaps these in for `MIN`/`MAX` over a changelog.
//!
//! Values are kept in Arrow's row format, whose bytes sort as the values do (NULLs are
//! skipped, as `MIN`/`MAX` skip them). The state — for checkpoints — is two lists: the
//! distinct values and their counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

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
        Ok(Box::new(ValueCounts::new(
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

/// Every value held, in the row format, with how many times.
#[derive(Debug)]
struct ValueCounts {
    max: bool,
    data_type: DataType,
    converter: RowConverter,
    values: BTreeMap<OwnedRow, i64>,
}

impl ValueCounts {
    fn new(data_type: DataType, max: bool) -> Result<Self> {
        Ok(ValueCounts {
            max,
            converter: RowConverter::new(vec![SortField::new(data_type.clone())])?,
            data_type,
            values: BTreeMap::new(),
        })
    }

    /// Adds `by` (negative: takes back) to each non-NULL value of `values`, `counts[i]`
    /// times for value `i` (once without counts). A value whose count reaches 0 is gone.
    fn add(&mut self, values: &ArrayRef, counts: Option<&Int64Array>, by: i64) -> Result<()> {
        let rows = self
            .converter
            .convert_columns(std::slice::from_ref(values))?;
        for i in 0..values.len() {
            if values.is_null(i) {
                continue;
            }
            let n = by * counts.map_or(1, |c| c.value(i));
            let row = rows.row(i).owned();
            let left = {
                let c = self.values.entry(row.clone()).or_insert(0);
                *c += n;
                *c
            };
            if left <= 0 {
                self.values.remove(&row);
            }
        }
        Ok(())
    }

    fn distinct_values(&self) -> Result<ArrayRef> {
        let arrays = self
            .converter
            .convert_rows(self.values.keys().map(|r| r.row()))?;
        arrays
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("no values column".into()))
    }
}

impl Accumulator for ValueCounts {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match values.first() {
            Some(v) => self.add(v, None, 1),
            None => Ok(()),
        }
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match values.first() {
            Some(v) => self.add(v, None, -1),
            None => Ok(()),
        }
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let held = if self.max {
            self.values.keys().next_back()
        } else {
            self.values.keys().next()
        };
        match held {
            Some(row) => {
                let arrays = self.converter.convert_rows([row.row()])?;
                match arrays.first() {
                    Some(a) => ScalarValue::try_from_array(a, 0),
                    None => ScalarValue::try_from(&self.data_type),
                }
            }
            None => ScalarValue::try_from(&self.data_type),
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
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = self.distinct_values()?;
        let counts: ArrayRef =
            Arc::new(Int64Array::from_iter_values(self.values.values().copied()));
        Ok(vec![
            ScalarValue::List(Arc::new(
                datafusion::common::utils::SingleRowListArrayBuilder::new(values)
                    .with_nullable(true)
                    .build_list_array(),
            )),
            ScalarValue::List(Arc::new(
                datafusion::common::utils::SingleRowListArrayBuilder::new(counts)
                    .with_nullable(true)
                    .build_list_array(),
            )),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (Some(values), Some(counts)) = (states.first(), states.get(1)) else {
            return Err(DataFusionError::Internal(
                "min/max with retract: a state of two lists".into(),
            ));
        };
        let (Some(values), Some(counts)) =
            (values.as_list_opt::<i32>(), counts.as_list_opt::<i32>())
        else {
            return Err(DataFusionError::Internal(
                "min/max with retract: its state's columns are not lists".into(),
            ));
        };
        for r in 0..values.len() {
            if values.is_null(r) || counts.is_null(r) {
                continue;
            }
            let v = values.value(r);
            let c = counts.value(r);
            let c = c
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| DataFusionError::Internal("counts are not BIGINT".into()))?;
            if v.len() != c.len() {
                return Err(DataFusionError::Internal(
                    "min/max with retract: values and counts differ in length".into(),
                ));
            }
            self.add(&v, Some(c), 1)?;
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
        let mut max = ValueCounts::new(DataType::Int32, true).expect("acc");
        let mut min = ValueCounts::new(DataType::Int32, false).expect("acc");
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
        let mut again = ValueCounts::new(DataType::Int32, true).expect("acc");
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
}
