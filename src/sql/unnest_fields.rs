//! Flink's UNNEST of a `MAP` (a key and a value column) and of an array of `ROW`s (one
//! column per field): `CROSS JOIN UNNEST(m) AS t (k, v)`.
//!
//! DataFusion unnests arrays only, one column each. The parser's rewrite
//! ([`super::rewrite`]) turns `UNNEST(e) AS t (c1, …, cn)` — one expression, n > 1 names —
//! into `UNNEST(__weir_unnest_field(e, 1), …, __weir_unnest_field(e, n)) AS t (c1, …, cn)`:
//! n arrays of one length, unnested side by side (zipped), which gives each entry or row
//! as one output row. [`UnnestField`] is that function: the `i`-th (1-based) component of
//! every entry of a map (1: keys, 2: values) or field of every row of an array of rows, as
//! an array; a NULL row gives NULL fields, a NULL map or array stays NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// The name the rewrite calls.
pub const NAME: &str = "__weir_unnest_field";

/// See the module's documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UnnestField {
    signature: Signature,
}

impl UnnestField {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(UnnestField {
            signature: Signature::any(3, Volatility::Immutable),
        })
    }
}

/// The components of each element of `dt`: a map's key and value, an array of rows' fields.
fn components(dt: &DataType) -> Option<Vec<FieldRef>> {
    match dt {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => Some(kv.iter().cloned().collect()),
            _ => None,
        },
        DataType::List(f) => match f.data_type() {
            DataType::Struct(fields) => Some(fields.iter().cloned().collect()),
            _ => None,
        },
        _ => None,
    }
}

/// The 1-based component index and the number of names the alias gives.
fn index_and_names(args: &[Option<&ScalarValue>]) -> Option<(usize, usize)> {
    let int = |v: Option<&ScalarValue>| match v? {
        ScalarValue::Int64(Some(i)) => usize::try_from(*i).ok(),
        _ => None,
    };
    Some((int(*args.get(1)?)?, int(*args.get(2)?)?))
}

impl ScalarUDFImpl for UnnestField {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Err(DataFusionError::Internal(format!(
            "{NAME}'s type comes from its arguments"
        )))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let input = args
            .arg_fields
            .first()
            .ok_or_else(|| DataFusionError::Internal(format!("{NAME} takes an argument")))?;
        let (i, names) = index_and_names(args.scalar_arguments).ok_or_else(|| {
            DataFusionError::Internal(format!("{NAME}: a constant index and count"))
        })?;
        let dt = input.data_type();
        let Some(parts) = components(dt) else {
            return Err(DataFusionError::Plan(format!(
                "UNNEST of {} gives one column, but its alias names {names}: only a MAP (key, value) or an ARRAY of ROWs (its fields) gives several",
                crate::sql::types::flink_type_name(dt)
            )));
        };
        if parts.len() != names {
            return Err(DataFusionError::Plan(format!(
                "UNNEST of {} gives {} columns, but its alias names {names}",
                crate::sql::types::flink_type_name(dt),
                parts.len()
            )));
        }
        let part = parts
            .get(i.wrapping_sub(1))
            .ok_or_else(|| DataFusionError::Internal(format!("{NAME}: index {i}")))?;
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::List(Arc::new(Field::new(
                "element",
                part.data_type().clone(),
                true,
            ))),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let i = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(i)))) => *i as usize,
            _ => {
                return Err(DataFusionError::Internal(format!(
                    "{NAME}: a constant index"
                )));
            }
        };
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(args.number_rows)?;
        let element = match args.return_field.data_type() {
            DataType::List(f) => f.clone(),
            other => {
                return Err(DataFusionError::Internal(format!("{NAME} returns {other}")));
            }
        };
        let (offsets, entries, nulls) = match input.data_type() {
            DataType::Map(..) => {
                let m = input.as_map();
                (m.offsets().clone(), m.entries().clone(), m.nulls().cloned())
            }
            DataType::List(_) => {
                let l = input.as_list::<i32>();
                let rows = l.values().as_struct().clone();
                (l.offsets().clone(), rows, l.nulls().cloned())
            }
            other => {
                return Err(DataFusionError::Plan(format!(
                    "UNNEST cannot split a {}",
                    crate::sql::types::flink_type_name(other)
                )));
            }
        };
        let column = entries
            .columns()
            .get(i.wrapping_sub(1))
            .ok_or_else(|| DataFusionError::Internal(format!("{NAME}: index {i}")))?;
        // A NULL row's fields are NULL.
        let values: ArrayRef = match NullBuffer::union(entries.nulls(), column.nulls()) {
            Some(n) if n.null_count() > 0 => datafusion::arrow::array::make_array(
                column.to_data().into_builder().nulls(Some(n)).build()?,
            ),
            _ => column.clone(),
        };
        let values = if values.data_type() == element.data_type() {
            values
        } else {
            datafusion::arrow::compute::cast(&values, element.data_type())?
        };
        let out: ArrayRef = Arc::new(ListArray::try_new(element, offsets, values, nulls)?);
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}
