//! Flink's `CURRENT_WATERMARK(rowtime)`: the watermark the operator evaluating it has
//! received, as a timestamp of the rowtime column's type at millisecond precision, or NULL
//! when none has arrived yet (and in batch queries, which have no watermark). The usual use
//! is keeping late rows out: `WHERE CURRENT_WATERMARK(ts) IS NULL OR ts > CURRENT_WATERMARK(ts)`.
//!
//! A task's run loop notes its current watermark in a thread-local while it hands a
//! message to its operators ([`Scope`]), and clears it before it waits for anything; the
//! function reads it while the rows are evaluated on that same thread.

use std::cell::Cell;

use datafusion::arrow::array::new_null_array;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

thread_local! {
    static CURRENT: Cell<i64> = const { Cell::new(i64::MIN) };
}

/// Notes the watermark (ms since the epoch; `i64::MIN` for none) of the batch about to be
/// evaluated on this thread.
pub fn set(watermark: i64) {
    CURRENT.with(|c| c.set(watermark));
}

/// The watermark noted for this thread while alive (see [`set`]); back to none when
/// dropped, on every path out (an error too), so that no other task or batch query on the
/// thread reads it.
pub struct Scope(());

impl Scope {
    /// Notes `watermark` (ms) until the scope is dropped.
    pub fn enter(watermark: i64) -> Scope {
        set(watermark);
        Scope(())
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        set(i64::MIN);
    }
}

/// `CURRENT_WATERMARK(rowtime)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CurrentWatermark {
    signature: Signature,
}

impl CurrentWatermark {
    /// The function, to register with a DataFusion context.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(CurrentWatermark {
            signature: Signature::any(1, Volatility::Volatile),
        })
    }
}

impl ScalarUDFImpl for CurrentWatermark {
    fn name(&self) -> &str {
        "current_watermark"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args.first() {
            Some(DataType::Timestamp(_, tz)) => {
                Ok(DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))
            }
            other => Err(datafusion::error::DataFusionError::Plan(format!(
                "CURRENT_WATERMARK takes the table's time attribute (a TIMESTAMP or TIMESTAMP_LTZ column), not {}",
                other.map_or("nothing".to_string(), |t| t.to_string())
            ))),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let t = args.return_type().clone();
        let w = CURRENT.with(Cell::get);
        let tz = match &t {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let value = (w != i64::MIN && w != i64::MAX).then_some(w);
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(value, tz))
            }
            ColumnarValue::Array(a) => ColumnarValue::Array(match value {
                None => new_null_array(&t, a.len()),
                Some(_) => {
                    ScalarValue::TimestampMillisecond(value, tz).to_array_of_size(a.len())?
                }
            }),
        })
    }
}
