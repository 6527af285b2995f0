//! Flink's `COLLECT([ALL | DISTINCT] x)`: the multiset of the values, each with how often
//! it came, NULLs left out (an empty multiset when only NULLs came). Flink's `MULTISET<T>`
//! is, in Weir, a `MAP<T, INT>` from each distinct value to its count (the same content;
//! displayed `{a: 2, b: 1}`, in order of each value's first arrival). Rows taken back
//! lower their value's count (Flink's `CollectAggFunction` retracts too).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int64Array, ListArray, MapArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{HashMap, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// `COLLECT(x)` as an aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Collect {
    signature: Signature,
}

impl Collect {
    /// The aggregate function, registered as `collect`.
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(Collect {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

/// The map type of a multiset of `element`s: `MAP<element, INT>`.
fn multiset_type(element: &DataType) -> DataType {
    let entries = Fields::from(vec![
        Field::new("key", element.clone(), false),
        Field::new("value", DataType::Int32, false),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

impl AggregateUDFImpl for Collect {
    fn name(&self) -> &str {
        "collect"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [element] => Ok(multiset_type(element)),
            _ => Err(datafusion::error::DataFusionError::Plan(
                "COLLECT takes one argument".into(),
            )),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let element = args
            .exprs
            .first()
            .map(|e| e.data_type(args.schema))
            .transpose()?
            .unwrap_or(DataType::Null);
        Ok(Box::new(CollectAccumulator {
            element,
            distinct: args.is_distinct,
            counts: vec![],
            at: HashMap::new(),
            zeros: 0,
        }))
    }

    /// The distinct values so far and their counts, as two lists.
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let element = args
            .input_fields
            .first()
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Null);
        Ok(vec![
            Arc::new(Field::new(
                "values",
                DataType::List(Arc::new(Field::new_list_field(element, true))),
                true,
            )),
            Arc::new(Field::new(
                "counts",
                DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
                true,
            )),
        ])
    }
}

#[derive(Debug)]
struct CollectAccumulator {
    element: DataType,
    distinct: bool,
    /// Each distinct value and its count, in order of first arrival; a count may fall to 0
    /// when rows are taken back (such values are left out of the result).
    counts: Vec<(ScalarValue, i64)>,
    at: HashMap<ScalarValue, usize>,
    /// How many of `counts` are at 0.
    zeros: usize,
}

impl CollectAccumulator {
    fn add(&mut self, v: ScalarValue, n: i64) {
        if v.is_null() || n == 0 {
            return;
        }
        let i = match self.at.get(&v) {
            Some(&i) => i,
            None => {
                self.at.insert(v.clone(), self.counts.len());
                self.counts.push((v, 0));
                self.counts.len() - 1
            }
        };
        self.counts[i].1 += n;
        if self.counts[i].1 == 0 {
            self.zeros += 1;
            // Values taken back to nothing leave once they are half of what is kept, so
            // the state follows the live multiset (order of first arrival kept).
            if self.zeros * 2 > self.counts.len() {
                self.counts.retain(|(_, n)| *n != 0);
                self.at = self
                    .counts
                    .iter()
                    .enumerate()
                    .map(|(i, (v, _))| (v.clone(), i))
                    .collect();
                self.zeros = 0;
            }
        }
    }
}

impl Accumulator for CollectAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(a) = values.first() else {
            return Ok(());
        };
        for i in 0..a.len() {
            self.add(ScalarValue::try_from_array(a, i)?, 1);
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(a) = values.first() else {
            return Ok(());
        };
        for i in 0..a.len() {
            self.add(ScalarValue::try_from_array(a, i)?, -1);
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let live: Vec<&(ScalarValue, i64)> = self.counts.iter().filter(|(_, n)| *n > 0).collect();
        let keys = if live.is_empty() {
            datafusion::arrow::array::new_empty_array(&self.element)
        } else {
            ScalarValue::iter_to_array(live.iter().map(|(v, _)| v.clone()))?
        };
        let counts: Int32Array = live
            .iter()
            .map(|(_, n)| Some(if self.distinct { 1 } else { *n as i32 }))
            .collect();
        let DataType::Map(entries_field, _) = multiset_type(&self.element) else {
            return Err(datafusion::error::DataFusionError::Internal(
                "COLLECT's type is a map".into(),
            ));
        };
        let DataType::Struct(fields) = entries_field.data_type().clone() else {
            return Err(datafusion::error::DataFusionError::Internal(
                "COLLECT's entries are a struct".into(),
            ));
        };
        let entries = StructArray::try_new(fields, vec![keys, Arc::new(counts)], None)?;
        let map = MapArray::try_new(
            entries_field,
            OffsetBuffer::new(vec![0i32, entries.len() as i32].into()),
            entries,
            None,
            false,
        )?;
        ScalarValue::try_from_array(&map, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .counts
                .iter()
                .map(|(v, _)| 2 * v.size() + 16)
                .sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = if self.counts.is_empty() {
            datafusion::arrow::array::new_empty_array(&self.element)
        } else {
            ScalarValue::iter_to_array(self.counts.iter().map(|(v, _)| v.clone()))?
        };
        let counts = Int64Array::from_iter_values(self.counts.iter().map(|(_, n)| *n));
        let list = |a: ArrayRef| -> Result<ScalarValue> {
            let field = Arc::new(Field::new_list_field(a.data_type().clone(), true));
            let l = ListArray::try_new(
                field,
                OffsetBuffer::new(vec![0i32, a.len() as i32].into()),
                a,
                None,
            )?;
            ScalarValue::try_from_array(&l, 0)
        };
        Ok(vec![list(values)?, list(Arc::new(counts))?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (Some(values), Some(counts)) = (states.first(), states.get(1)) else {
            return Ok(());
        };
        let (values, counts) = (values.as_list::<i32>(), counts.as_list::<i32>());
        for row in 0..values.len() {
            if values.is_null(row) || counts.is_null(row) {
                continue;
            }
            let (v, c) = (values.value(row), counts.value(row));
            let c = datafusion::arrow::compute::cast(&c, &DataType::Int64)?;
            let c = c.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for i in 0..v.len().min(c.len()) {
                self.add(ScalarValue::try_from_array(&v, i)?, c.value(i));
            }
        }
        Ok(())
    }
}
