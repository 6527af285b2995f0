//! Flink's session time zone, `table.local-time-zone`, and the current-time functions that
//! read it (Flink's "Time Zone" page of its Table API & SQL docs):
//!
//! - `CURRENT_TIMESTAMP` and `NOW()`: the current instant, a `TIMESTAMP_LTZ(3)`;
//! - `LOCALTIMESTAMP`: the wall-clock time in the session zone, a `TIMESTAMP(3)`;
//! - `LOCALTIME` and `CURRENT_TIME`: its time of day, a `TIME(0)`;
//! - `CURRENT_DATE`: its date.
//!
//! Each is evaluated as the rows are (per batch of rows), not once when the query is
//! planned: Flink evaluates them per record in streaming mode. [`super::rewrite`] turns
//! them into `weir_now('<kind>')`. `DATE_FORMAT` and `FROM_UNIXTIME` of a `TIMESTAMP_LTZ`
//! write it in the session zone, and `UNIX_TIMESTAMP(string)` reads text in it
//! (`TO_TIMESTAMP_LTZ(string)` reads UTC unless given a zone, as Flink documents).
//!
//! The zone lives in DataFusion's `datafusion.execution.time_zone` option of the session,
//! where every function reads it at run time ([`zone_of`]); Weir's default, unlike
//! Flink's (the JVM's zone), is UTC.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{Result, WeirError};

/// Flink's option naming the session time zone.
pub const KEY: &str = "table.local-time-zone";

/// A zone as Flink accepts it — a full name such as 'America/Los_Angeles', 'UTC', or a
/// custom id 'GMT+08:00' / 'GMT-8' — as the text Arrow reads ('+08:00' for the custom
/// ids). Errors: anything else (Flink refuses abbreviations such as 'PST' too), naming the
/// option.
pub fn parse_zone(z: &str) -> Result<String> {
    let t = z.trim();
    let bad = || {
        WeirError::user(format!(
            "'{KEY}' = '{z}' is not a time zone: use a full name such as 'America/Los_Angeles' or 'Asia/Shanghai', 'UTC', or an offset such as 'GMT+08:00'"
        ))
    };
    let text = match t.strip_prefix("GMT").or_else(|| t.strip_prefix("UTC")) {
        Some("") => "UTC".to_string(),
        Some(off) => {
            let (sign, rest) = match off.chars().next() {
                Some(c @ ('+' | '-')) => (c, &off[1..]),
                _ => return Err(bad()),
            };
            let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
            let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if h > 18 || m > 59 {
                return Err(bad());
            }
            format!("{sign}{h:02}:{m:02}")
        }
        None if t.contains('/') => t.to_string(),
        None => return Err(bad()),
    };
    Tz::from_str(&text).map_err(|_| bad())?;
    Ok(text)
}

/// The session zone in `config` (UTC when unset).
pub fn zone_of(config: &ConfigOptions) -> Tz {
    config
        .execution
        .time_zone
        .as_deref()
        .and_then(|z| Tz::from_str(z).ok())
        .unwrap_or_else(|| Tz::from_str("UTC").expect("UTC is a zone"))
}

/// Milliseconds since the epoch of the wall-clock time in `tz` at instant `ms`.
pub fn local_millis(ms: i64, tz: &Tz) -> i64 {
    let Some(utc) = chrono::DateTime::from_timestamp_millis(ms) else {
        return ms;
    };
    let offset = tz.offset_from_utc_datetime(&utc.naive_utc()).fix();
    ms + offset.local_minus_utc() as i64 * 1000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `CURRENT_TIMESTAMP`, `NOW()`.
    Instant,
    /// `LOCALTIMESTAMP`.
    Timestamp,
    /// `LOCALTIME`, `CURRENT_TIME`.
    Time,
    /// `CURRENT_DATE`.
    Date,
    /// The session zone's name (for `UNIX_TIMESTAMP(string)`, which reads text in it).
    Zone,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "INSTANT" => Kind::Instant,
            "TIMESTAMP" => Kind::Timestamp,
            "TIME" => Kind::Time,
            "DATE" => Kind::Date,
            "ZONE" => Kind::Zone,
            _ => return None,
        })
    }
}

/// `weir_now('INSTANT' | 'TIMESTAMP' | 'TIME' | 'DATE' | 'ZONE')` (see the module's docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LocalNow {
    signature: Signature,
}

impl LocalNow {
    /// The function, to register with a DataFusion context.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(LocalNow {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
        })
    }
}

fn kind_of(args: &[ScalarValue]) -> Option<Kind> {
    match args.first() {
        Some(ScalarValue::Utf8(Some(s))) => Kind::parse(s),
        _ => None,
    }
}

impl ScalarUDFImpl for LocalNow {
    fn name(&self) -> &str {
        "weir_now"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Err(datafusion::error::DataFusionError::Internal(
            "weir_now's type comes from its argument".into(),
        ))
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> datafusion::error::Result<FieldRef> {
        let kind = args
            .scalar_arguments
            .first()
            .and_then(|a| *a)
            .and_then(|a| kind_of(std::slice::from_ref(a)))
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Plan(
                    "weir_now takes 'INSTANT', 'TIMESTAMP', 'TIME', 'DATE' or 'ZONE'".into(),
                )
            })?;
        let t = match kind {
            Kind::Instant => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            Kind::Time => DataType::Time32(TimeUnit::Second),
            Kind::Date => DataType::Date32,
            Kind::Zone => DataType::Utf8,
        };
        Ok(Arc::new(Field::new(self.name(), t, false)))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let kind = match &args.args[0] {
            ColumnarValue::Scalar(s) => kind_of(std::slice::from_ref(s)),
            _ => None,
        }
        .ok_or_else(|| {
            datafusion::error::DataFusionError::Execution("weir_now: a constant kind".into())
        })?;
        let now = crate::sql::functions::now_millis();
        let local = local_millis(now, &zone_of(&args.config_options));
        let value = match kind {
            Kind::Instant => ScalarValue::TimestampMillisecond(Some(now), Some("UTC".into())),
            Kind::Timestamp => ScalarValue::TimestampMillisecond(Some(local), None),
            Kind::Time => {
                let t = chrono::DateTime::from_timestamp_millis(local)
                    .map(|d| d.time().num_seconds_from_midnight() as i32)
                    .unwrap_or(0);
                ScalarValue::Time32Second(Some(t))
            }
            Kind::Date => ScalarValue::Date32(Some(local.div_euclid(86_400_000) as i32)),
            Kind::Zone => ScalarValue::Utf8(Some(
                args.config_options
                    .execution
                    .time_zone
                    .clone()
                    .unwrap_or_else(|| "UTC".to_string()),
            )),
        };
        Ok(ColumnarValue::Scalar(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones() {
        assert_eq!(
            parse_zone("Asia/Shanghai").ok().as_deref(),
            Some("Asia/Shanghai")
        );
        assert_eq!(parse_zone("GMT+08:00").ok().as_deref(), Some("+08:00"));
        assert_eq!(parse_zone("GMT-8").ok().as_deref(), Some("-08:00"));
        assert_eq!(parse_zone("UTC").ok().as_deref(), Some("UTC"));
        assert!(parse_zone("PST").is_err());
        assert!(parse_zone("Mars/Olympus").is_err());
        let tz = Tz::from_str("Asia/Shanghai").expect("zone");
        assert_eq!(local_millis(0, &tz), 8 * 3_600_000);
    }
}
