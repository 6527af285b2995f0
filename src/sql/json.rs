//! Flink's JSON functions over JSON text, in their plain forms: `JSON_VALUE(json, path)`,
//! `JSON_QUERY(json, path)`, `JSON_EXISTS(json, path)` and `JSON_STRING(value)`.
//!
//! Paths are SQL/JSON paths as Flink (Calcite) reads them: an optional `lax` or `strict`
//! mode, then `$` followed by `.key`, `."key"`, `["key"]`, `['key']`, `[n]` or `[*]`. With
//! the defaults Flink documents: `JSON_VALUE` returns the scalar at the path as a STRING
//! (NULL when it is absent, an object or an array, or when the text is not JSON);
//! `JSON_QUERY` returns the object or array at the path as JSON text (several matches of a
//! `[*]` become an array; NULL when absent or a scalar); `JSON_EXISTS` is TRUE when the
//! path matches (FALSE on an error).
//!
//! The clauses come as extra arguments ([`super::syntax`] writes them): `json_value(json,
//! path, on_empty, default, on_error, default)` (`'NULL'`, `'ERROR'` or `'DEFAULT'`, the
//! default as text), `json_query(json, path, wrapper, on_empty, on_error)` (`'WITHOUT'`,
//! `'CONDITIONAL'` or `'UNCONDITIONAL'`; `'NULL'`, `'ERROR'`, `'EMPTY ARRAY'` or
//! `'EMPTY OBJECT'`) and `json_exists(json, path, on_error)` (`'TRUE'`, `'FALSE'`,
//! `'UNKNOWN'` or `'ERROR'`). What is empty and what is an error follows Calcite's
//! `JsonFunctions`, which Flink runs: in `lax` mode (the default) a missing key or text that
//! is not JSON is empty; in `strict` mode both are errors, as are a non-scalar value for
//! `JSON_VALUE` and a scalar for `JSON_QUERY` (which `lax` mode treats as empty); a JSON
//! `null` at the path is empty.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

/// Parses a SQL/JSON path; None when it is not one.
fn parse_path(p: &str) -> Option<Vec<Step>> {
    let p = p.trim();
    let p = p
        .strip_prefix("lax ")
        .or_else(|| p.strip_prefix("strict "))
        .unwrap_or(p)
        .trim_start();
    let mut chars = p.strip_prefix('$')?.chars().peekable();
    let mut steps = vec![];
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    let key: String = chars.by_ref().take_while(|c| *c != '"').collect();
                    steps.push(Step::Key(key));
                } else if chars.peek() == Some(&'[') {
                    // `$.["a.b"]`: the dot before a bracket is optional.
                    continue;
                } else {
                    let mut key = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        key.push(c);
                        chars.next();
                    }
                    if key.is_empty() {
                        return None;
                    }
                    steps.push(Step::Key(key));
                }
            }
            '[' => {
                let inner: String = chars.by_ref().take_while(|c| *c != ']').collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Some(k) = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                {
                    steps.push(Step::Key(k.to_string()));
                } else {
                    steps.push(Step::Index(inner.parse().ok()?));
                }
            }
            c if c.is_whitespace() => {}
            _ => return None,
        }
    }
    Some(steps)
}

/// The values at `steps` in `v`, and whether a wildcard made it a sequence.
fn select<'a>(v: &'a Value, steps: &[Step], out: &mut Vec<&'a Value>, many: &mut bool) {
    let Some((first, rest)) = steps.split_first() else {
        out.push(v);
        return;
    };
    match (first, v) {
        (Step::Key(k), Value::Object(m)) => {
            if let Some(x) = m.get(k) {
                select(x, rest, out, many);
            }
        }
        (Step::Index(i), Value::Array(a)) => {
            if let Some(x) = a.get(*i) {
                select(x, rest, out, many);
            }
        }
        (Step::All, Value::Array(a)) => {
            *many = true;
            for x in a {
                select(x, rest, out, many);
            }
        }
        _ => {}
    }
}

/// The value at `path` in `text`, as Calcite's `jsonApiCommonSyntax` finds it: whether the
/// path is strict, and the value (several matches of a `[*]` as an array), None when empty
/// (nothing there, a JSON `null`, or — in lax mode — text that is not JSON). Errors: a path
/// that is not one, and in strict mode text that is not JSON or nothing at the path.
fn evaluate(text: &str, path: &str) -> std::result::Result<(bool, Option<Value>), String> {
    let strict = path.trim_start().starts_with("strict ");
    let steps = parse_path(path).ok_or_else(|| format!("'{path}' is not a JSON path"))?;
    let doc = match serde_json::from_str::<Value>(text) {
        Ok(d) => d,
        Err(_) if strict => return Err(format!("'{text}' is not JSON")),
        Err(_) => return Ok((false, None)),
    };
    let (mut out, mut many) = (vec![], false);
    select(&doc, &steps, &mut out, &mut many);
    let value = if many {
        Some(Value::Array(out.into_iter().cloned().collect()))
    } else {
        out.first().map(|v| (*v).clone())
    };
    match value {
        None if strict => Err(format!("nothing at '{path}'")),
        Some(Value::Null) | None => Ok((strict, None)),
        v => Ok((strict, v)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Value,
    Query,
    Exists,
    String,
}

/// One of the JSON functions (see the module's docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonFn {
    kind: Kind,
    signature: Signature,
}

impl JsonFn {
    /// The four functions, to register with a DataFusion context.
    pub fn udfs() -> Vec<ScalarUDF> {
        [Kind::Value, Kind::Query, Kind::Exists, Kind::String]
            .into_iter()
            .map(|kind| {
                ScalarUDF::from(JsonFn {
                    kind,
                    signature: if kind == Kind::String {
                        Signature::any(1, Volatility::Immutable)
                    } else {
                        Signature::variadic_any(Volatility::Immutable)
                    },
                })
            })
            .collect()
    }
}

/// A value as the key of a JSON object: a string as itself, anything else as it prints.
pub(crate) fn key_text(v: ScalarValue) -> String {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s,
        other => other.to_string(),
    }
}

/// A value as JSON (for `JSON_STRING` and the JSON constructors), as Flink's
/// `JsonGenerateUtils` writes it: numbers and booleans as themselves, strings quoted, lists
/// as arrays, maps and rows as objects, bytes in base64, a `TIMESTAMP` as ISO-8601 local
/// date-time text (`2020-01-01T00:00:00`, the fraction only when there is one) and a
/// `TIMESTAMP_LTZ` as an instant (`…Z`); NULL as NULL.
pub(crate) fn to_json(v: &ScalarValue) -> Option<Value> {
    if v.is_null() {
        return None;
    }
    let element = |a: &ArrayRef, i: usize| {
        ScalarValue::try_from_array(a, i)
            .ok()
            .and_then(|s| to_json(&s))
            .unwrap_or(Value::Null)
    };
    let key = |a: &ArrayRef, i: usize| {
        ScalarValue::try_from_array(a, i)
            .map(key_text)
            .unwrap_or_default()
    };
    let timestamp = |nanos: i64, zoned: bool| -> Value {
        let Some(t) = chrono::DateTime::from_timestamp_nanos(nanos)
            .naive_utc()
            .into()
        else {
            return Value::Null;
        };
        let t: chrono::NaiveDateTime = t;
        let mut text = t.format("%Y-%m-%dT%H:%M:%S").to_string();
        let frac = t.and_utc().timestamp_subsec_nanos();
        if frac > 0 {
            let digits = format!("{frac:09}");
            text.push('.');
            text.push_str(digits.trim_end_matches('0'));
        }
        if zoned {
            text.push('Z');
        }
        Value::String(text)
    };
    Some(match v {
        ScalarValue::TimestampSecond(Some(x), tz) => {
            timestamp(x.saturating_mul(1_000_000_000), tz.is_some())
        }
        ScalarValue::TimestampMillisecond(Some(x), tz) => {
            timestamp(x.saturating_mul(1_000_000), tz.is_some())
        }
        ScalarValue::TimestampMicrosecond(Some(x), tz) => {
            timestamp(x.saturating_mul(1_000), tz.is_some())
        }
        ScalarValue::TimestampNanosecond(Some(x), tz) => timestamp(*x, tz.is_some()),
        ScalarValue::Binary(Some(b))
        | ScalarValue::LargeBinary(Some(b))
        | ScalarValue::BinaryView(Some(b)) => {
            use base64::Engine;
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        ScalarValue::Map(m) => {
            let Some(entries) = (m.len() == 1).then(|| m.value(0)) else {
                return Some(Value::Null);
            };
            let (keys, values) = (entries.column(0).clone(), entries.column(1).clone());
            Value::Object(
                (0..entries.len())
                    .map(|i| (key(&keys, i), element(&values, i)))
                    .collect(),
            )
        }
        ScalarValue::Struct(st) => Value::Object(
            st.fields()
                .iter()
                .zip(st.columns())
                .map(|(f, c)| (f.name().clone(), element(c, 0)))
                .collect(),
        ),
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Value::String(s.clone()),
        ScalarValue::List(l) => {
            let a = l.value(0);
            Value::Array(
                (0..a.len())
                    .map(|i| {
                        ScalarValue::try_from_array(&a, i)
                            .ok()
                            .and_then(|s| to_json(&s))
                            .unwrap_or(Value::Null)
                    })
                    .collect(),
            )
        }
        other => {
            let text = other.to_string();
            serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text))
        }
    })
}

impl ScalarUDFImpl for JsonFn {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Value => "json_value",
            Kind::Query => "json_query",
            Kind::Exists => "json_exists",
            Kind::String => "json_string",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(match self.kind {
            Kind::Exists => DataType::Boolean,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let n = args.number_rows;
        let scalar = super::functions::all_scalar(&args);
        let out: ArrayRef = if self.kind == Kind::String {
            let a = args.args[0].to_array(n)?;
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                let s = ScalarValue::try_from_array(&a, i)?;
                v.push(to_json(&s).map(|j| j.to_string()));
            }
            Arc::new(StringArray::from(v))
        } else {
            let utf8 = |i: usize| super::functions::arg_as(&args, i, &DataType::Utf8);
            let (text, path) = (utf8(0)?, utf8(1)?);
            let (text, path) = (text.as_string::<i32>(), path.as_string::<i32>());
            // The clauses' arguments (see the module's docs), as text.
            let extra = (2..args.args.len())
                .map(utf8)
                .collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
            let text_at = |k: usize, i: usize| -> Option<String> {
                extra
                    .get(k)
                    .filter(|a| !a.is_null(i))
                    .map(|a| a.as_string::<i32>().value(i).to_string())
            };
            let word = |k: usize, i: usize, default: &str| -> String {
                text_at(k, i).unwrap_or_else(|| default.to_string())
            };
            let name = self.name().to_ascii_uppercase();
            let fail =
                |e: &str| datafusion::error::DataFusionError::Execution(format!("{name}: {e}"));
            match self.kind {
                Kind::Exists => {
                    let mut out = Vec::with_capacity(n);
                    for i in 0..n {
                        if text.is_null(i) || path.is_null(i) {
                            out.push(None);
                            continue;
                        }
                        out.push(match evaluate(text.value(i), path.value(i)) {
                            Err(e) => match word(0, i, "FALSE").as_str() {
                                "TRUE" => Some(true),
                                "UNKNOWN" => None,
                                "ERROR" => return Err(fail(&e)),
                                _ => Some(false),
                            },
                            Ok((_, v)) => Some(v.is_some()),
                        });
                    }
                    Arc::new(BooleanArray::from(out))
                }
                Kind::Value => {
                    let mut out = Vec::with_capacity(n);
                    for i in 0..n {
                        if text.is_null(i) || path.is_null(i) {
                            out.push(None);
                            continue;
                        }
                        let on_error = |e: String| -> datafusion::error::Result<Option<String>> {
                            match word(2, i, "NULL").as_str() {
                                "ERROR" => Err(fail(&e)),
                                "DEFAULT" => Ok(text_at(3, i)),
                                _ => Ok(None),
                            }
                        };
                        let on_empty = || -> datafusion::error::Result<Option<String>> {
                            match word(0, i, "NULL").as_str() {
                                "ERROR" => Err(fail("empty result (ERROR ON EMPTY)")),
                                "DEFAULT" => Ok(text_at(1, i)),
                                _ => Ok(None),
                            }
                        };
                        out.push(match evaluate(text.value(i), path.value(i)) {
                            Err(e) => on_error(e)?,
                            Ok((_, None)) => on_empty()?,
                            Ok((strict, Some(v))) => match v {
                                Value::String(s) => Some(s),
                                v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
                                v if !strict => {
                                    let _ = v;
                                    on_empty()?
                                }
                                v => {
                                    on_error(format!("strict mode needs a scalar value, not {v}"))?
                                }
                            },
                        });
                    }
                    Arc::new(StringArray::from(out))
                }
                _ => {
                    let mut out = Vec::with_capacity(n);
                    for i in 0..n {
                        if text.is_null(i) || path.is_null(i) {
                            out.push(None);
                            continue;
                        }
                        let behave =
                            |k: usize, e: String| -> datafusion::error::Result<Option<String>> {
                                match word(k, i, "NULL").as_str() {
                                    "ERROR" => Err(fail(&e)),
                                    "EMPTY ARRAY" => Ok(Some("[]".into())),
                                    "EMPTY OBJECT" => Ok(Some("{}".into())),
                                    _ => Ok(None),
                                }
                            };
                        out.push(match evaluate(text.value(i), path.value(i)) {
                            Err(e) => behave(2, e)?,
                            Ok((_, None)) => behave(1, "empty result (ERROR ON EMPTY)".into())?,
                            Ok((strict, Some(v))) => {
                                let v = match word(0, i, "WITHOUT").as_str() {
                                    "UNCONDITIONAL" => Value::Array(vec![v]),
                                    "CONDITIONAL" if !v.is_array() => Value::Array(vec![v]),
                                    _ => v,
                                };
                                match v {
                                    v @ (Value::Object(_) | Value::Array(_)) => Some(v.to_string()),
                                    _ if !strict => {
                                        behave(1, "empty result (ERROR ON EMPTY)".into())?
                                    }
                                    v => behave(
                                        2,
                                        format!("strict mode needs an array or object, not {v}"),
                                    )?,
                                }
                            }
                        });
                    }
                    Arc::new(StringArray::from(out))
                }
            }
        };
        super::functions::shaped(out, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("lax $.a[0].b"),
            Some(vec![
                Step::Key("a".into()),
                Step::Index(0),
                Step::Key("b".into())
            ])
        );
        assert_eq!(
            parse_path("$.[\"a.b\"][*]"),
            Some(vec![Step::Key("a.b".into()), Step::All])
        );
        assert_eq!(parse_path("a.b"), None);
    }
}
