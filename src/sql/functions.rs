//! Flink functions DataFusion does not have, registered in every session.

use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `PROCTIME()`: the wall-clock time (UTC, milliseconds) at which a batch is read. A computed
/// column `pt AS PROCTIME()` makes `pt` a processing-time attribute that windows can use.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Proctime {
    signature: Signature,
}

impl Proctime {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(Proctime {
            signature: Signature::nullary(Volatility::Volatile),
        })
    }
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl ScalarUDFImpl for Proctime {
    fn name(&self) -> &str {
        "proctime"
    }

    fn aliases(&self) -> &[String] {
        static ALIASES: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["PROCTIME".to_string()]);
        &ALIASES
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }

    fn invoke_with_args(
        &self,
        _args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(now_millis()),
            None,
        )))
    }
}

/// Registers Weir's functions with a DataFusion context.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(Proctime::udf());
    ctx.register_udf(DateFormat::udf());
}

/// Flink's `DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm:ss')`: Java date patterns (a pattern holding
/// `%` is taken as a strftime pattern, as DataFusion's `date_format` takes it).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateFormat {
    signature: Signature,
}

impl DateFormat {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(DateFormat {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

/// Translates a Java `SimpleDateFormat` pattern into a strftime one.
pub fn java_to_strftime(p: &str) -> String {
    if p.contains('%') {
        return p.to_string();
    }
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // A quoted literal; '' is a quote.
            let mut j = i + 1;
            if j < chars.len() && chars[j] == '\'' {
                out.push('\'');
                i += 2;
                continue;
            }
            while j < chars.len() && chars[j] != '\'' {
                out.push(chars[j]);
                j += 1;
            }
            i = j + 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let spec = match (c, n) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) | ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', _) => "%d",
            ('H', _) => "%H",
            ('h', _) => "%I",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', _) => "%3f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('D', _) => "%j",
            ('X', _) | ('Z', _) => "%z",
            _ => "",
        };
        if spec.is_empty() {
            for _ in 0..n {
                out.push(c);
            }
        } else {
            out.push_str(spec);
        }
        i += n;
    }
    out
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }

    fn aliases(&self) -> &[String] {
        static ALIASES: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["DATE_FORMAT".to_string()]);
        &ALIASES
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, StringBuilder, TimestampMillisecondArray};
        use datafusion::arrow::compute::cast;
        let n = args.number_rows;
        let pattern: String = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(p)))
            | ColumnarValue::Scalar(ScalarValue::LargeUtf8(Some(p)))
            | ColumnarValue::Scalar(ScalarValue::Utf8View(Some(p))) => p.clone(),
            _ => {
                return datafusion::common::plan_err!(
                    "DATE_FORMAT takes a constant pattern string, such as 'yyyy-MM-dd'"
                );
            }
        };
        let fmt = java_to_strftime(&pattern);
        let values = args.args[0].to_array(n)?;
        let ts = cast(&values, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let ts = ts
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("timestamp cast".into()))?;
        let mut b = StringBuilder::with_capacity(n, n * fmt.len());
        for i in 0..ts.len() {
            match (ts.is_valid(i))
                .then(|| {
                    datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ts.value(i))
                })
                .flatten()
            {
                Some(dt) => {
                    use std::fmt::Write as _;
                    let mut s = String::new();
                    if write!(s, "{}", dt.format(&fmt)).is_err() {
                        return datafusion::common::plan_err!(
                            "DATE_FORMAT: '{pattern}' is not a valid date pattern"
                        );
                    }
                    b.append_value(s);
                }
                None => b.append_null(),
            }
        }
        let out = b.finish();
        Ok(if matches!(args.args[0], ColumnarValue::Scalar(_)) {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(std::sync::Arc::new(out))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::java_to_strftime;

    #[test]
    fn java_patterns() {
        assert_eq!(java_to_strftime("yyyy-MM-dd"), "%Y-%m-%d");
        assert_eq!(java_to_strftime("HH"), "%H");
        assert_eq!(
            java_to_strftime("yyyy-MM-dd'T'HH:mm:ss.SSS"),
            "%Y-%m-%dT%H:%M:%S.%3f"
        );
        assert_eq!(java_to_strftime("%Y"), "%Y");
    }
}
