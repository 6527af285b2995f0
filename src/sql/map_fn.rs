//! `MAP[k1, v1, k2, v2, …]` and `MAP_FROM_ARRAYS(keys, values)` as Flink builds them: a
//! key given twice keeps its last value (Flink puts the pairs into a map one after the
//! other), at the place of its first occurrence. DataFusion's `map` refuses a repeated key.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, UInt32Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{HashMap, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The name the planner's rewrite calls (see `super::rewrite`).
pub const NAME: &str = "weir_map";

/// `weir_map(keys, values)`: two lists of equal length per row into a `MAP`, a repeated key
/// keeping its last value; then as DataFusion's `map`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkMap {
    signature: Signature,
}

impl FlinkMap {
    /// The function, registered under [`NAME`].
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(FlinkMap {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for FlinkMap {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        datafusion::functions_nested::map::map_udf().return_type(args)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = crate::sql::functions::all_scalar(&args);
        let [keys, values] = args.args.as_slice() else {
            return exec_err!("{NAME} takes two lists");
        };
        let (keys, values) = (keys.to_array(rows)?, values.to_array(rows)?);
        let (DataType::List(_), DataType::List(_)) = (keys.data_type(), values.data_type()) else {
            return exec_err!("{NAME} takes two lists");
        };
        let (keys, values) = last_value_per_key(keys.as_list::<i32>(), values.as_list::<i32>())?;
        args.args = vec![ColumnarValue::Array(keys), ColumnarValue::Array(values)];
        let out = datafusion::functions_nested::map::map_udf().invoke_with_args(args)?;
        match out {
            ColumnarValue::Array(a) => crate::sql::functions::shaped(a, scalar),
            out => Ok(out),
        }
    }
}

/// Per row, the keys without repeats (each where it first occurs) and for each the value
/// of its last occurrence. Rows whose lists differ in length are left as they are (the map
/// refuses them).
fn last_value_per_key(keys: &ListArray, values: &ListArray) -> Result<(ArrayRef, ArrayRef)> {
    let converter = RowConverter::new(vec![SortField::new(keys.values().data_type().clone())])?;
    let encoded = converter.convert_columns(&[keys.values().clone()])?;
    let (mut key_idx, mut value_idx) = (vec![], vec![]);
    let (mut key_offsets, mut value_offsets) = (vec![0i32], vec![0i32]);
    for row in 0..keys.len() {
        let (ks, ke) = (
            keys.value_offsets()[row] as usize,
            keys.value_offsets()[row + 1] as usize,
        );
        let (vs, ve) = (
            values.value_offsets()[row] as usize,
            values.value_offsets()[row + 1] as usize,
        );
        if ke - ks != ve - vs || keys.is_null(row) || values.is_null(row) {
            key_idx.extend(ks as u32..ke as u32);
            value_idx.extend(vs as u32..ve as u32);
        } else {
            let mut at: HashMap<&[u8], usize> = HashMap::new();
            for (k, v) in (ks..ke).zip(vs..ve) {
                match at.get(encoded.row(k).data()) {
                    Some(&p) => value_idx[p] = v as u32,
                    None => {
                        at.insert(encoded.row(k).data(), key_idx.len());
                        key_idx.push(k as u32);
                        value_idx.push(v as u32);
                    }
                }
            }
        }
        key_offsets.push(key_idx.len() as i32);
        value_offsets.push(value_idx.len() as i32);
    }
    let rebuilt = |list: &ListArray, idx: Vec<u32>, offsets: Vec<i32>| -> Result<ArrayRef> {
        let DataType::List(field) = list.data_type() else {
            return exec_err!("{NAME} takes two lists");
        };
        let items = take(list.values().as_ref(), &UInt32Array::from(idx), None)?;
        Ok(Arc::new(ListArray::try_new(
            field.clone(),
            OffsetBuffer::new(offsets.into()),
            items,
            list.nulls().cloned(),
        )?))
    };
    Ok((
        rebuilt(keys, key_idx, key_offsets)?,
        rebuilt(values, value_idx, value_offsets)?,
    ))
}
