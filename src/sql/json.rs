//! Flink's JSON functions over JSON text, in their plain forms: `JSON_VALUE(json, path)`,
//! `JSON_QUERY(json, path)`, `JSON_EXISTS(json, path)` and `JSON_STRING(value)`.
//!
//! Paths are SQL/JSON paths as Flink (Calcite) reads them: an optional `lax` or `strict`
//! mode, then `$` followed by `.key`, `."key"`, `["key"]`, `['key']`, `[n]` or `[*]`. With
//! the defaults Flink documents: `JSON_VALUE` returns the scalar at the path as a STRING
//! (NULL when it is absent, an object or an array, or when the text is not JSON);
//! `JSON_QUERY` returns the object or array at the path as JSON text (several matches of a
//! `[*]` become an array; NULL when absent or a scalar); `JSON_EXISTS` is TRUE when the
//! path matches (FALSE on an error). The `RETURNING`, `ON EMPTY`, `ON ERROR` and `WRAPPER`
//! clauses are not supported yet.

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
                    signature: Signature::any(
                        if kind == Kind::String { 1 } else { 2 },
                        Volatility::Immutable,
                    ),
                })
            })
            .collect()
    }
}

/// A value as JSON (for `JSON_STRING`): numbers and booleans as themselves, strings quoted,
/// lists as arrays, NULL as NULL.
pub(crate) fn to_json(v: &ScalarValue) -> Option<Value> {
    if v.is_null() {
        return None;
    }
    Some(match v {
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
            let text =
                datafusion::arrow::compute::cast(&args.args[0].to_array(n)?, &DataType::Utf8)?;
            let path =
                datafusion::arrow::compute::cast(&args.args[1].to_array(n)?, &DataType::Utf8)?;
            let (text, path) = (text.as_string::<i32>(), path.as_string::<i32>());
            let found = (0..n).map(|i| {
                if text.is_null(i) || path.is_null(i) {
                    return None;
                }
                let steps = parse_path(path.value(i));
                let doc = serde_json::from_str::<Value>(text.value(i)).ok();
                Some((doc, steps))
            });
            match self.kind {
                Kind::Exists => Arc::new(
                    found
                        .map(|f| {
                            f.map(|(doc, steps)| match (doc, steps) {
                                (Some(d), Some(s)) => {
                                    let (mut out, mut many) = (vec![], false);
                                    select(&d, &s, &mut out, &mut many);
                                    !out.is_empty()
                                }
                                _ => false,
                            })
                        })
                        .collect::<BooleanArray>(),
                ),
                _ => Arc::new(
                    found
                        .map(|f| {
                            let (Some(d), Some(s)) = f? else { return None };
                            let (mut out, mut many) = (vec![], false);
                            select(&d, &s, &mut out, &mut many);
                            match self.kind {
                                Kind::Value => match out.as_slice() {
                                    [Value::String(s)] => Some(s.clone()),
                                    [v @ (Value::Number(_) | Value::Bool(_))] => {
                                        Some(v.to_string())
                                    }
                                    _ => None,
                                },
                                _ if many => Some(
                                    Value::Array(out.into_iter().cloned().collect()).to_string(),
                                ),
                                _ => match out.as_slice() {
                                    [v @ (Value::Object(_) | Value::Array(_))] => {
                                        Some(v.to_string())
                                    }
                                    _ => None,
                                },
                            }
                        })
                        .collect::<StringArray>(),
                ),
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
