//! Flink's JSON constructors and test: `JSON_OBJECT`, `JSON_ARRAY`, `JSON_OBJECTAGG`,
//! `JSON_ARRAYAGG` and `IS JSON`, as Flink's "JSON Functions" documentation defines them.
//!
//! [`super::syntax`] and [`super::rewrite`] turn the SQL forms into calls whose first
//! argument is the `ON NULL` behaviour (`'NULL'`: a NULL value is written as `null`;
//! `'ABSENT'`: it is left out) and whose second marks, per value, whether it is JSON built
//! by one of these functions (`R`: inserted as JSON) or a plain value (`V`: strings as JSON
//! strings, numbers and booleans as themselves, arrays as arrays):
//!
//! - `weir_json_object(on_null, flags, k1, v1, …)` — keys in the order given, compact
//!   (`{"K1":"V1","K2":"V2"}`); a NULL key is an error.
//! - `weir_json_array(on_null, flags, v1, …)` — `[1,"2"]`.
//! - `weir_json_objectagg(on_null, flag, key, value)` and `weir_json_arrayagg(on_null,
//!   flag, item)` — the same over a group's rows, in arrival order; a key that occurs twice
//!   is an error, as in Flink.
//! - `weir_is_json(text, kind)` — `kind` `VALUE` (any JSON), `SCALAR` (not an object or
//!   array), `ARRAY` or `OBJECT`; FALSE for NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

fn err(msg: String) -> DataFusionError {
    DataFusionError::Execution(msg)
}

/// One value as JSON text: `raw` JSON built by a JSON function as itself, anything else by
/// [`super::json::to_json`]. None for NULL.
fn json_text(v: &ScalarValue, raw: bool) -> Option<String> {
    if v.is_null() {
        return None;
    }
    if raw
        && let ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) = v
        && serde_json::from_str::<Value>(s).is_ok()
    {
        return Some(s.clone());
    }
    super::json::to_json(v).map(|j| j.to_string())
}

/// A value's JSON text under the ON NULL behaviour: None (leave it out) for a NULL with
/// `ABSENT ON NULL`, `null` for one with `NULL ON NULL`.
fn on_null(value: Option<String>, absent: bool) -> Option<String> {
    match value {
        None if absent => None,
        v => Some(v.unwrap_or_else(|| "null".into())),
    }
}

/// JSON text of `entries` (key, value as JSON text): an object, compact, keys in order; or
/// an array of the values.
fn compose(object: bool, entries: &[(String, String)]) -> String {
    if object {
        let parts: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
            .collect();
        format!("{{{}}}", parts.join(","))
    } else {
        let parts: Vec<&str> = entries.iter().map(|(_, v)| v.as_str()).collect();
        format!("[{}]", parts.join(","))
    }
}

/// Row `i` of `keys` as an object key (see [`super::json::key_text`]). Errors: it is NULL
/// (`what` names the function).
fn object_key(keys: &ArrayRef, i: usize, what: &str) -> datafusion::error::Result<String> {
    let key = ScalarValue::try_from_array(keys, i)?;
    if key.is_null() {
        return Err(err(format!("{what}: a key is NULL")));
    }
    Ok(super::json::key_text(key))
}

fn literal(args: &[ColumnarValue], i: usize, what: &str) -> datafusion::error::Result<String> {
    match args.get(i) {
        Some(ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        )) => Ok(s.clone()),
        _ => Err(err(format!(
            "{what}: internal call without its ON NULL flags"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Build {
    Object,
    Array,
    IsJson,
}

/// `weir_json_object`, `weir_json_array` and `weir_is_json` (see the module's docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuild {
    kind: Build,
    signature: Signature,
}

impl JsonBuild {
    /// The scalar functions, to register with a DataFusion context.
    pub fn udfs() -> Vec<ScalarUDF> {
        [Build::Object, Build::Array, Build::IsJson]
            .into_iter()
            .map(|kind| {
                ScalarUDF::from(JsonBuild {
                    kind,
                    signature: match kind {
                        Build::IsJson => Signature::any(2, Volatility::Immutable),
                        _ => Signature::variadic_any(Volatility::Immutable),
                    },
                })
            })
            .collect()
    }
}

impl ScalarUDFImpl for JsonBuild {
    fn name(&self) -> &str {
        match self.kind {
            Build::Object => "weir_json_object",
            Build::Array => "weir_json_array",
            Build::IsJson => "weir_is_json",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(match self.kind {
            Build::IsJson => match args.first() {
                Some(
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null,
                ) => DataType::Boolean,
                other => {
                    return Err(DataFusionError::Plan(format!(
                        "IS JSON takes a STRING, not {}",
                        other.map_or("nothing".to_string(), |t| {
                            crate::sql::types::flink_type_name(t)
                        })
                    )));
                }
            },
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let n = args.number_rows;
        let scalar = super::functions::all_scalar(&args);
        if self.kind == Build::IsJson {
            let text = super::functions::arg_as(&args, 0, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            let kind = literal(&args.args, 1, "IS JSON")?;
            let out: BooleanArray = (0..n)
                .map(|i| {
                    if text.is_null(i) {
                        return Some(false);
                    }
                    let v = serde_json::from_str::<Value>(text.value(i)).ok();
                    Some(match (v, kind.as_str()) {
                        (None, _) => false,
                        (Some(_), "VALUE") => true,
                        (Some(Value::Object(_)), "OBJECT") => true,
                        (Some(Value::Array(_)), "ARRAY") => true,
                        (Some(Value::Object(_) | Value::Array(_)), "SCALAR") => false,
                        (Some(_), "SCALAR") => true,
                        _ => false,
                    })
                })
                .collect();
            return super::functions::shaped(Arc::new(out), scalar);
        }
        let what = if self.kind == Build::Object {
            "JSON_OBJECT"
        } else {
            "JSON_ARRAY"
        };
        let absent = literal(&args.args, 0, what)? == "ABSENT";
        let flags: Vec<bool> = literal(&args.args, 1, what)?
            .chars()
            .map(|c| c == 'R')
            .collect();
        let cols: Vec<ArrayRef> = args.args[2..]
            .iter()
            .map(|a| a.to_array(n))
            .collect::<datafusion::error::Result<_>>()?;
        let object = self.kind == Build::Object;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let mut entries = vec![];
            // (key, value) columns for an object, value columns for an array.
            let per = if object { 2 } else { 1 };
            for (p, kv) in cols.chunks(per).enumerate() {
                let (key, v) = match (object, kv) {
                    (true, [k, v]) => (object_key(k, i, "JSON_OBJECT")?, v),
                    (false, [v]) => (String::new(), v),
                    _ => continue,
                };
                let raw = flags.get(p).copied().unwrap_or(false);
                if let Some(v) =
                    on_null(json_text(&ScalarValue::try_from_array(v, i)?, raw), absent)
                {
                    entries.push((key, v));
                }
            }
            out.push(compose(object, &entries));
        }
        super::functions::shaped(Arc::new(StringArray::from(out)), scalar)
    }
}

/// `weir_json_objectagg` and `weir_json_arrayagg` (see the module's docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonAgg {
    object: bool,
    signature: Signature,
}

impl JsonAgg {
    /// The two aggregates, to register with a DataFusion context.
    pub fn udafs() -> Vec<AggregateUDF> {
        [true, false]
            .into_iter()
            .map(|object| {
                AggregateUDF::from(JsonAgg {
                    object,
                    signature: Signature::any(if object { 4 } else { 3 }, Volatility::Immutable),
                })
            })
            .collect()
    }
}

impl AggregateUDFImpl for JsonAgg {
    fn name(&self) -> &str {
        if self.object {
            "weir_json_objectagg"
        } else {
            "weir_json_arrayagg"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> datafusion::error::Result<Box<dyn Accumulator>> {
        Ok(Box::new(JsonAccumulator {
            object: self.object,
            entries: vec![],
        }))
    }

    /// One column: the entries so far, as a JSON array of `[key, json]` pairs (objects) or
    /// of JSON texts (arrays).
    fn state_fields(&self, _args: StateFieldsArgs) -> datafusion::error::Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new("entries", DataType::Utf8, true))])
    }
}

#[derive(Debug)]
struct JsonAccumulator {
    object: bool,
    /// (key, value as JSON text) in arrival order; the key is empty for arrays.
    entries: Vec<(String, String)>,
}

impl JsonAccumulator {
    fn add(&mut self, key: String, value: String) -> datafusion::error::Result<()> {
        if self.object && self.entries.iter().any(|(k, _)| *k == key) {
            return Err(err(format!(
                "JSON_OBJECTAGG: the key '{key}' occurs more than once"
            )));
        }
        self.entries.push((key, value));
        Ok(())
    }
}

impl Accumulator for JsonAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        let what = if self.object {
            "JSON_OBJECTAGG"
        } else {
            "JSON_ARRAYAGG"
        };
        let (Some(mode), Some(flag)) = (values.first(), values.get(1)) else {
            return Err(err(format!("{what}: internal call without its flags")));
        };
        for i in 0..mode.len() {
            let absent = ScalarValue::try_from_array(mode, i)?.to_string() == "ABSENT";
            let raw = ScalarValue::try_from_array(flag, i)?.to_string() == "R";
            let (key, value) = if self.object {
                let key = object_key(&values[2], i, "JSON_OBJECTAGG")?;
                (key, ScalarValue::try_from_array(&values[3], i)?)
            } else {
                (String::new(), ScalarValue::try_from_array(&values[2], i)?)
            };
            if let Some(v) = on_null(json_text(&value, raw), absent) {
                self.add(key, v)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> datafusion::error::Result<ScalarValue> {
        Ok(ScalarValue::Utf8(Some(compose(self.object, &self.entries))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .entries
                .iter()
                .map(|(k, v)| k.capacity() + v.capacity() + 48)
                .sum::<usize>()
    }

    fn state(&mut self) -> datafusion::error::Result<Vec<ScalarValue>> {
        let v = serde_json::to_string(&self.entries)
            .map_err(|e| err(format!("JSON aggregate state: {e}")))?;
        Ok(vec![ScalarValue::Utf8(Some(v))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::error::Result<()> {
        let Some(s) = states.first() else {
            return Ok(());
        };
        let s = datafusion::arrow::compute::cast(s, &DataType::Utf8)?;
        let s = s.as_string::<i32>();
        for i in 0..s.len() {
            if s.is_null(i) {
                continue;
            }
            let entries: Vec<(String, String)> = serde_json::from_str(s.value(i))
                .map_err(|e| err(format!("JSON aggregate state: {e}")))?;
            for (k, v) in entries {
                self.add(k, v)?;
            }
        }
        Ok(())
    }
}
