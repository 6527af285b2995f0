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
//! (`TO_TIMESTAMP_LTZ(string)` reads UTC unless given a zone, as Flink documents; a `CAST`
//! of a string to a `TIMESTAMP_LTZ` reads it in the session zone, see [`LtzInSessionZone`]).
//!
//! The zone lives in DataFusion's `datafusion.execution.time_zone` option of the session,
//! where every function reads it at run time ([`zone_of`]); its default, as Flink's (the
//! JVM's zone), is the machine's ([`machine_zone`]).

use std::str::FromStr;
use std::sync::Arc;

use chrono::{Offset, TimeZone, Timelike};
use datafusion::arrow::array::ArrayRef;
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

/// A zone as Flink accepts it — a full name such as 'America/Los_Angeles', 'UTC', a
/// custom id 'GMT+08:00' / 'GMT-8', or 'default' (the machine's, [`machine_zone`]) — as the
/// text Arrow reads ('+08:00' for the custom
/// ids). Errors: anything else (Flink refuses abbreviations such as 'PST' too), naming the
/// option.
pub fn parse_zone(z: &str) -> Result<String> {
    let t = z.trim();
    if t.eq_ignore_ascii_case("default") {
        return Ok(machine_zone());
    }
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

/// The machine's time zone, Flink's default for `table.local-time-zone` (its `'default'`,
/// the JVM's zone): `TZ` when it names a zone (`Asia/Shanghai`, `:Asia/Shanghai`, `UTC`),
/// else the system's (`/etc/localtime`, read by `iana-time-zone`), else UTC.
pub fn machine_zone() -> String {
    let from_env = std::env::var("TZ").ok().and_then(|tz| {
        let tz = tz.trim_start_matches(':').trim();
        parse_zone(tz)
            .ok()
            .or_else(|| Tz::from_str(tz).ok().map(|_| tz.to_string()))
    });
    from_env
        .or_else(|| {
            iana_time_zone::get_timezone()
                .ok()
                .filter(|z| Tz::from_str(z).is_ok())
        })
        .map(|z| {
            // The names the system gives UTC (`Etc/UTC` on Debian) are UTC.
            const UTC: [&str; 14] = [
                "Etc/UTC",
                "Etc/UCT",
                "UCT",
                "Etc/Universal",
                "Universal",
                "Etc/Zulu",
                "Zulu",
                "Etc/GMT",
                "GMT",
                "Etc/GMT0",
                "GMT0",
                "Etc/Greenwich",
                "Greenwich",
                "Etc/GMT+0",
            ];
            if UTC.contains(&z.as_str()) {
                "UTC".to_string()
            } else {
                z
            }
        })
        .unwrap_or_else(|| "UTC".to_string())
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

/// The offset from UTC of zone `zone` (as the session keeps it: 'Asia/Shanghai',
/// '+08:00') in ms, when it keeps one offset all year — from this year to 2100, checked on
/// the first of every month (so 'Europe/Moscow', fixed since 2014, is one); None for a zone
/// with daylight saving time or an unknown zone.
pub fn fixed_offset_ms(zone: &str) -> Option<i64> {
    let tz = Tz::from_str(zone).ok()?;
    use chrono::Datelike;
    let this_year = chrono::Utc::now().year();
    let mut offsets = (this_year..=2100)
        .flat_map(|y| (1..=12).map(move |m| (y, m)))
        .map(|(y, m)| {
            chrono::NaiveDate::from_ymd_opt(y, m, 1)
                .and_then(|d| d.and_hms_opt(12, 0, 0))
                .map(|t| tz.offset_from_utc_datetime(&t).fix().local_minus_utc())
        });
    let first = offsets.next()??;
    offsets
        .all(|o| o == Some(first))
        .then_some(first as i64 * 1000)
}

/// Milliseconds since the epoch of the wall-clock time in `tz` at instant `ms` (the wall
/// clock read as if it were UTC: Flink's `TimeWindowUtil.toUtcTimestampMills`).
pub fn local_millis<T: TimeZone>(ms: i64, tz: &T) -> i64 {
    if chrono::DateTime::from_timestamp_millis(ms).is_none() {
        return ms;
    }
    ms + utc_offset_at(tz, ms.div_euclid(1000)) * 1000
}

/// The offset from UTC of `tz` at the instant `secs` (epoch seconds), in seconds.
fn utc_offset_at<T: TimeZone>(tz: &T, secs: i64) -> i64 {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| {
            tz.offset_from_utc_datetime(&d.naive_utc())
                .fix()
                .local_minus_utc() as i64
        })
        .unwrap_or(0)
}

/// The offset from UTC of `tz` in seconds at the wall-clock time `secs` (epoch seconds of
/// the wall clock read as UTC), as Java's `LocalDateTime.atZone` picks it: a time that
/// occurs twice (clocks going back) takes the earlier instant's offset; one that does not
/// occur (clocks going forward) takes the offset before the change, so it is read as the
/// same distance past the change.
fn wall_offset_at<T: TimeZone>(tz: &T, secs: i64) -> i64 {
    let Some(wall) = chrono::DateTime::from_timestamp(secs, 0).map(|d| d.naive_utc()) else {
        return 0;
    };
    let offset = match tz.offset_from_local_datetime(&wall) {
        chrono::LocalResult::Single(o) => o.fix().local_minus_utc(),
        chrono::LocalResult::Ambiguous(a, b) => {
            a.fix().local_minus_utc().max(b.fix().local_minus_utc())
        }
        chrono::LocalResult::None => tz
            .offset_from_utc_datetime(&(wall - chrono::Duration::days(1)))
            .fix()
            .local_minus_utc(),
    };
    offset as i64
}

/// The instant (epoch ms) of the wall-clock time `wall` of `tz` (ms since the epoch of the
/// wall clock read as UTC): the reverse of [`local_millis`], with Java's
/// `LocalDateTime.atZone` rules for times that occur twice or not at all (Flink's
/// `TimeWindowUtil.toEpochMills`).
pub fn instant_of_wall<T: TimeZone>(wall: i64, tz: &T) -> i64 {
    wall.saturating_sub(wall_offset_at(tz, wall.div_euclid(1000)) * 1000)
}

/// The watermark (epoch ms) at which a window of `tz`'s wall clock whose last millisecond
/// is the wall-clock time `last` fires, by Flink's `TimeWindowUtil.toEpochMillsForTimer`: the
/// instant of `last`, except that a time skipped when clocks go forward fires at the whole
/// hour the clocks jumped to, and one that occurs twice when they go back fires at its
/// later occurrence (so the rows of both occurrences are in). Non-decreasing in `last`.
pub fn fire_instant_of_wall<T: TimeZone>(last: i64, tz: &T) -> i64 {
    const HOUR: i64 = 3_600_000;
    let t1 = instant_of_wall(last, tz);
    let t2 = instant_of_wall(last.saturating_add(HOUR), tz);
    if t1 == t2 {
        t1 - t1.rem_euclid(HOUR)
    } else if t2 - t1 > HOUR {
        t1.saturating_add(HOUR)
    } else {
        t1
    }
}

/// Each value of `array` (Arrow timestamps of `unit`) moved by `offset(epoch seconds)`
/// seconds, as timestamps of `unit` in zone `zone` (None: without one).
fn moved(
    array: &ArrayRef,
    unit: TimeUnit,
    zone: Option<Arc<str>>,
    offset: impl Fn(i64) -> i64,
) -> Result<ArrayRef> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let raw = datafusion::arrow::compute::cast(array, &DataType::Int64)?;
    let out: datafusion::arrow::array::Int64Array = raw
        .as_primitive::<Int64Type>()
        .unary(|v| v.saturating_add(offset(v.div_euclid(per_second)) * per_second));
    let out: ArrayRef = Arc::new(out);
    Ok(datafusion::arrow::compute::cast(
        &out,
        &DataType::Timestamp(unit, zone),
    )?)
}

/// `array` as the wall-clock times of `tz`: a `TIMESTAMP_LTZ` (Arrow timestamps with a
/// zone) becomes timestamps without one, in the same unit, each moved by `tz`'s offset at
/// that instant (so daylight saving is followed); any other array is returned as it is.
/// Errors: none in practice (the casts between timestamps and Int64 are exact).
pub fn local_wall(array: &ArrayRef, tz: &Tz) -> Result<ArrayRef> {
    let DataType::Timestamp(unit, Some(_)) = array.data_type() else {
        return Ok(array.clone());
    };
    moved(array, *unit, None, |secs| utc_offset_at(tz, secs))
}

/// `array` (timestamps without a zone, read as wall-clock times of `tz`) as the instants
/// they are there: a `TIMESTAMP_LTZ` (zone "UTC") of the same unit. A time that occurs twice
/// (when clocks go back) is its earlier instant; one that does not occur (when they go
/// forward) is read with the offset before the change — both as Java's
/// `LocalDateTime.atZone`, which Flink uses. Errors: none in practice.
pub fn from_local_wall(array: &ArrayRef, tz: &Tz) -> Result<ArrayRef> {
    let DataType::Timestamp(unit, None) = array.data_type() else {
        return Ok(array.clone());
    };
    moved(array, *unit, Some("UTC".into()), |secs| {
        -wall_offset_at(tz, secs)
    })
}

/// `weir_local_wall(ltz)`: a `TIMESTAMP_LTZ` as the wall-clock time of the session zone, a
/// `TIMESTAMP` of the same precision (see [`local_wall`]); `weir_from_local_wall(ts)`: the
/// reverse, a `TIMESTAMP` read in the session zone as a `TIMESTAMP_LTZ` (see
/// [`from_local_wall`]). [`LtzInSessionZone`] puts them where Flink converts between the
/// two in the session zone.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LocalWall {
    signature: Signature,
    /// True for `weir_local_wall`, false for `weir_from_local_wall`.
    to_local: bool,
}

impl LocalWall {
    /// `weir_local_wall`, to register with a DataFusion context.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(LocalWall {
            signature: Signature::any(1, Volatility::Stable),
            to_local: true,
        })
    }

    /// `weir_from_local_wall`, to register with a DataFusion context.
    pub fn reverse_udf() -> ScalarUDF {
        ScalarUDF::from(LocalWall {
            signature: Signature::any(1, Volatility::Stable),
            to_local: false,
        })
    }
}

impl ScalarUDFImpl for LocalWall {
    fn name(&self) -> &str {
        if self.to_local {
            LOCAL_WALL
        } else {
            FROM_LOCAL_WALL
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match (args.first(), self.to_local) {
            (Some(DataType::Timestamp(unit, Some(_))), true) => {
                Ok(DataType::Timestamp(*unit, None))
            }
            (Some(DataType::Timestamp(unit, None)), false) => {
                Ok(DataType::Timestamp(*unit, Some("UTC".into())))
            }
            (other, _) => datafusion::common::plan_err!(
                "{} takes a {}, not {other:?}",
                self.name(),
                if self.to_local {
                    "TIMESTAMP_LTZ"
                } else {
                    "TIMESTAMP"
                }
            ),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let tz = zone_of(&args.config_options);
        let Some(arg) = args.args.first() else {
            return datafusion::common::exec_err!("{} takes one argument", self.name());
        };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array = arg.to_array(args.number_rows.max(1))?;
        let out = if self.to_local {
            local_wall(&array, &tz)
        } else {
            from_local_wall(&array, &tz)
        }
        .map_err(|e| {
            datafusion::error::DataFusionError::Execution(format!("{}: {e}", self.name()))
        })?;
        crate::sql::functions::shaped(out, scalar)
    }
}

/// `weir_epoch_ms(t)`: milliseconds since the epoch of a `TIMESTAMP` (its wall clock read
/// as UTC), a `TIMESTAMP_LTZ` (its instant, whatever the session zone) or a `DATE`, as a
/// `BIGINT` — what `TIMESTAMPDIFF` subtracts, so that a difference of instants stays one
/// across a daylight-saving change (a `CAST` to `TIMESTAMP` would read them in the zone).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EpochMillis {
    signature: Signature,
}

impl EpochMillis {
    /// The function, to register with a DataFusion context.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(EpochMillis {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for EpochMillis {
    fn name(&self) -> &str {
        "weir_epoch_ms"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return datafusion::common::exec_err!("weir_epoch_ms takes one argument");
        };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array = arg.to_array(args.number_rows.max(1))?;
        let tz = match array.data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let ms = datafusion::arrow::compute::cast(
            &array,
            &DataType::Timestamp(TimeUnit::Millisecond, tz),
        )?;
        let out = datafusion::arrow::compute::cast(&ms, &DataType::Int64)?;
        crate::sql::functions::shaped(out, scalar)
    }
}

/// `weir_timestamp_text(ts)`: a `TIMESTAMP` as Flink's `CAST(ts AS STRING)` writes it —
/// `yyyy-MM-dd HH:mm:ss`, then the fraction to the type's precision (Flink's
/// `DateTimeUtils.formatTimestamp`: `2024-03-10 00:30:00.000` for a TIMESTAMP(3), no
/// fraction for a TIMESTAMP(0)). Precision is read from the Arrow unit: seconds 0,
/// milliseconds 3, microseconds 6, nanoseconds 9. [`LtzInSessionZone`] puts it where a
/// `TIMESTAMP` (or a `TIMESTAMP_LTZ`, on the session zone's wall clock) becomes a string;
/// DataFusion's own cast writes ISO-8601 (`2024-03-10T00:30:00`). A NULL stays NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimestampText {
    signature: Signature,
}

impl TimestampText {
    /// The function, to register with a DataFusion context.
    pub fn udf() -> ScalarUDF {
        // Stable: an LTZ element is read in the session zone.
        ScalarUDF::from(TimestampText {
            signature: Signature::any(1, Volatility::Stable),
        })
    }
}

impl ScalarUDFImpl for TimestampText {
    fn name(&self) -> &str {
        TIMESTAMP_TEXT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        fn texted(t: &DataType, top: bool) -> Option<DataType> {
            Some(match t {
                DataType::Timestamp(_, None) => DataType::Utf8,
                DataType::Timestamp(_, Some(_)) if !top => DataType::Utf8,
                DataType::List(f) => DataType::List(Arc::new(
                    f.as_ref()
                        .clone()
                        .with_data_type(texted(f.data_type(), false)?),
                )),
                DataType::LargeList(f) => DataType::LargeList(Arc::new(
                    f.as_ref()
                        .clone()
                        .with_data_type(texted(f.data_type(), false)?),
                )),
                _ => return None,
            })
        }
        match args.first().and_then(|t| texted(t, true)) {
            Some(t) => Ok(t),
            None => datafusion::common::plan_err!(
                "{TIMESTAMP_TEXT} takes a TIMESTAMP or an ARRAY of timestamps, not {:?}",
                args.first()
            ),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return datafusion::common::exec_err!("{TIMESTAMP_TEXT} takes one argument");
        };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array = arg.to_array(args.number_rows.max(1))?;
        let tz = zone_of(&args.config_options);
        crate::sql::functions::shaped(nested_text(&array, &tz)?, scalar)
    }
}

/// `weir_collection_text(x)`: an `ARRAY`, `MAP` or `ROW` as one string, as Flink's
/// `ArrayToStringCastRule`, `MapToStringCastRule` and `RowToStringCastRule` write it:
/// `[1, NULL, 3]`, `{a=1, b=NULL}`, `(1, x)` — elements joined by `, `, a NULL element
/// `NULL`, nested collections likewise, timestamps as a `CAST` of each writes them (a
/// `TIMESTAMP_LTZ` on the session zone's wall clock), other values as their `CAST` to
/// `STRING`. A NULL collection stays NULL. [`LtzInSessionZone`] puts it where a collection
/// is cast to a string.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CollectionText {
    signature: Signature,
}

impl CollectionText {
    /// The function, to register with a DataFusion context.
    pub fn udf() -> ScalarUDF {
        // Stable: an LTZ element is read in the session zone.
        ScalarUDF::from(CollectionText {
            signature: Signature::any(1, Volatility::Stable),
        })
    }
}

impl ScalarUDFImpl for CollectionText {
    fn name(&self) -> &str {
        COLLECTION_TEXT
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
        use datafusion::arrow::array::{Array, StringArray};
        let Some(arg) = args.args.first() else {
            return datafusion::common::exec_err!("{COLLECTION_TEXT} takes one argument");
        };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array = arg.to_array(args.number_rows.max(1))?;
        let tz = zone_of(&args.config_options);
        let texts = element_texts(&array, &tz)?;
        let out: StringArray = (0..array.len())
            .map(|i| (!array.is_null(i)).then(|| texts[i].clone()))
            .collect();
        crate::sql::functions::shaped(Arc::new(out), scalar)
    }
}

/// Each value of `array` as Flink's `CAST(… AS STRING)` writes it — a ROW as `(1, a)`, a
/// MAP as `{k=1}`, an ARRAY as `[1, 2]`, nested ones alike, a `TIMESTAMP_LTZ` on `tz`'s wall
/// clock, a DOUBLE as Java writes it (`1.0E20`) — as a Utf8 array of the same length; a
/// NULL stays NULL (a NULL inside is `NULL`). Flink's sql-client shows a value so.
/// Errors: a timestamp outside chrono's range of dates.
pub(crate) fn flink_text(array: &ArrayRef, tz: &Tz) -> datafusion::error::Result<ArrayRef> {
    use datafusion::arrow::array::{Array, StringArray};
    let texts = element_texts(array, tz)?;
    let out: StringArray = texts
        .into_iter()
        .enumerate()
        .map(|(i, t)| (!array.is_null(i)).then_some(t))
        .collect();
    Ok(Arc::new(out))
}

/// Each value of `array` as Flink's `CAST(… AS STRING)` writes it, `NULL` for a NULL (the
/// text an element gets inside a collection).
fn element_texts(array: &ArrayRef, tz: &Tz) -> datafusion::error::Result<Vec<String>> {
    use datafusion::arrow::array::{Array, AsArray};
    let n = array.len();
    let joined = |texts: &[String],
                  ranges: &mut dyn Iterator<Item = (usize, usize)>,
                  open: &str,
                  close: &str| {
        ranges
            .enumerate()
            .map(|(i, (a, b))| {
                if array.is_null(i) {
                    "NULL".to_string()
                } else {
                    format!("{open}{}{close}", texts[a..b].join(", "))
                }
            })
            .collect::<Vec<_>>()
    };
    Ok(match array.data_type() {
        DataType::List(_) => {
            let l = array.as_list::<i32>();
            let texts = element_texts(l.values(), tz)?;
            let o = l.value_offsets();
            joined(
                &texts,
                &mut (0..n).map(|i| (o[i] as usize, o[i + 1] as usize)),
                "[",
                "]",
            )
        }
        DataType::LargeList(_) => {
            let l = array.as_list::<i64>();
            let texts = element_texts(l.values(), tz)?;
            let o = l.value_offsets();
            joined(
                &texts,
                &mut (0..n).map(|i| (o[i] as usize, o[i + 1] as usize)),
                "[",
                "]",
            )
        }
        DataType::Map(_, _) => {
            let m = array.as_map();
            let keys = element_texts(m.keys(), tz)?;
            let values = element_texts(m.values(), tz)?;
            let pairs: Vec<String> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let o = m.value_offsets();
            joined(
                &pairs,
                &mut (0..n).map(|i| (o[i] as usize, o[i + 1] as usize)),
                "{",
                "}",
            )
        }
        DataType::Struct(_) => {
            let st = array.as_struct();
            let columns = st
                .columns()
                .iter()
                .map(|c| element_texts(c, tz))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            (0..n)
                .map(|i| {
                    if array.is_null(i) {
                        "NULL".to_string()
                    } else {
                        let fields: Vec<&str> = columns.iter().map(|c| c[i].as_str()).collect();
                        format!("({})", fields.join(", "))
                    }
                })
                .collect()
        }
        // Flink's `BooleanToStringCastRule`: `TRUE`, `FALSE`.
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| match v {
                Some(true) => "TRUE".to_string(),
                Some(false) => "FALSE".to_string(),
                None => "NULL".to_string(),
            })
            .collect(),
        // Java's Double.toString / Float.toString (`1.0E20`), as a DOUBLE alone is cast.
        DataType::Float64 | DataType::Float32 => {
            let single = matches!(array.data_type(), DataType::Float32);
            let v = datafusion::arrow::compute::cast(array, &DataType::Float64)?;
            v.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .iter()
                .map(|v| match v {
                    Some(v) => crate::format::json_out::java_float_text(v, single),
                    None => "NULL".to_string(),
                })
                .collect()
        }
        _ => {
            let text = match array.data_type() {
                DataType::Timestamp(..) => nested_text(array, tz)?,
                DataType::Interval(_) => interval_text(array)?,
                // A type Arrow's cast cannot write (a fixed-size list, say): as Arrow
                // prints it.
                _ => match datafusion::arrow::compute::cast(array, &DataType::Utf8) {
                    Ok(text) => text,
                    Err(_) => {
                        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
                        let options = FormatOptions::default().with_null("NULL");
                        let f = ArrayFormatter::try_new(array.as_ref(), &options)?;
                        Arc::new(
                            (0..n)
                                .map(|i| (!array.is_null(i)).then(|| f.value(i).to_string()))
                                .collect::<datafusion::arrow::array::StringArray>(),
                        )
                    }
                },
            };
            let text = text.as_string::<i32>();
            (0..n)
                .map(|i| {
                    if text.is_null(i) {
                        "NULL".to_string()
                    } else {
                        text.value(i).to_string()
                    }
                })
                .collect()
        }
    })
}

/// Interval values (any Arrow interval type) as Flink's SQL client and its `CAST` to
/// `STRING` write them (Calcite's `DateTimeUtils.intervalYearMonthToString` and
/// `intervalDayTimeToString` at millisecond scale, which Flink's value printer calls): a
/// year-month interval as `+Y-MM` (`+2-06`), a day-time one as `+D HH:MM:SS.mmm` (`+0
/// 00:20:00.000`, `-1 12:00:00.000`), nanoseconds below a millisecond rounded up when more than
/// half of one, as Calcite's `roundUp` does. One holding both months and a day-time part (no Flink type
/// holds both) is the two texts apart by a space. NULL stays NULL. Errors: `array` is not
/// an interval.
pub fn interval_text(array: &ArrayRef) -> datafusion::error::Result<ArrayRef> {
    use datafusion::arrow::array::{AsArray, StringArray};
    use datafusion::arrow::datatypes::{IntervalMonthDayNanoType, IntervalUnit};
    let mdn =
        datafusion::arrow::compute::cast(array, &DataType::Interval(IntervalUnit::MonthDayNano))?;
    let mdn = mdn.as_primitive::<IntervalMonthDayNanoType>();
    let year_month = |months: i32| {
        let sign = if months < 0 { '-' } else { '+' };
        let m = i64::from(months).abs();
        format!("{sign}{}-{:02}", m / 12, m % 12)
    };
    let day_time = |ms: i128| {
        let sign = if ms < 0 { '-' } else { '+' };
        let v = ms.abs();
        let (millis, v) = (v % 1000, v / 1000);
        let (s, v) = (v % 60, v / 60);
        let (m, v) = (v % 60, v / 60);
        let (h, d) = (v % 24, v / 24);
        format!("{sign}{d} {h:02}:{m:02}:{s:02}.{millis:03}")
    };
    let out: StringArray = mdn
        .iter()
        .map(|v| {
            let v = v?;
            // Milliseconds, a remainder of more than half a millisecond rounded up.
            let nanos = i128::from(v.nanoseconds);
            let ms = i128::from(v.days) * 86_400_000
                + nanos / 1_000_000
                + match nanos % 1_000_000 {
                    r if r * 2 > 1_000_000 => 1,
                    r if r * 2 < -1_000_000 => -1,
                    _ => 0,
                };
            Some(match (v.months, ms) {
                (0, ms) => day_time(ms),
                (months, 0) => year_month(months),
                (months, ms) => format!("{} {}", year_month(months), day_time(ms)),
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// `array` as [`timestamp_text`] writes it, each element of an ARRAY of timestamps too (a
/// `TIMESTAMP_LTZ` element on `tz`'s wall clock, as a `CAST` of it alone reads).
fn nested_text(array: &ArrayRef, tz: &Tz) -> datafusion::error::Result<ArrayRef> {
    Ok(match array.data_type() {
        DataType::Timestamp(_, Some(_)) => {
            let wall = local_wall(array, tz).map_err(|e| {
                datafusion::error::DataFusionError::Execution(format!("{TIMESTAMP_TEXT}: {e}"))
            })?;
            timestamp_text(&wall)?
        }
        DataType::List(_) | DataType::LargeList(_) => {
            list_values(array, |values| nested_text(values, tz))
                .unwrap_or_else(|| Ok(array.clone()))?
        }
        _ => timestamp_text(array)?,
    })
}

/// `array` (timestamps without a zone) as Flink's text of them, a Utf8 array (see
/// [`TimestampText`]); NULLs stay NULL. Errors: a timestamp outside chrono's range of
/// dates (a `TRY_CAST` fails on it too).
pub fn timestamp_text(array: &ArrayRef) -> datafusion::error::Result<ArrayRef> {
    let format = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => "%Y-%m-%d %H:%M:%S",
        DataType::Timestamp(TimeUnit::Millisecond, _) => "%Y-%m-%d %H:%M:%S%.3f",
        DataType::Timestamp(TimeUnit::Microsecond, _) => "%Y-%m-%d %H:%M:%S%.6f",
        _ => "%Y-%m-%d %H:%M:%S%.9f",
    };
    let options = datafusion::arrow::compute::CastOptions {
        safe: false,
        format_options: datafusion::arrow::util::display::FormatOptions::default()
            .with_timestamp_format(Some(format)),
    };
    Ok(datafusion::arrow::compute::cast_with_options(
        array,
        &DataType::Utf8,
        &options,
    )?)
}

/// `array` (an ARRAY, `List` or `LargeList`) with its values replaced by `f` of them, the
/// element type following; None for any other array. Errors: `f`'s, or values that do not
/// fit the offsets (`f` must keep their number).
pub(crate) fn list_values<E: From<datafusion::arrow::error::ArrowError>>(
    array: &ArrayRef,
    f: impl FnOnce(&ArrayRef) -> std::result::Result<ArrayRef, E>,
) -> Option<std::result::Result<ArrayRef, E>> {
    use datafusion::arrow::array::{Array, AsArray, LargeListArray, ListArray};
    let retyped = |f: &FieldRef, values: &ArrayRef| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(values.data_type().clone()),
        )
    };
    Some(match array.data_type() {
        DataType::List(field) => {
            let l = array.as_list::<i32>();
            f(l.values()).and_then(|values| {
                Ok(Arc::new(ListArray::try_new(
                    retyped(field, &values),
                    l.offsets().clone(),
                    values,
                    l.nulls().cloned(),
                )?) as ArrayRef)
            })
        }
        DataType::LargeList(field) => {
            let l = array.as_list::<i64>();
            f(l.values()).and_then(|values| {
                Ok(Arc::new(LargeListArray::try_new(
                    retyped(field, &values),
                    l.offsets().clone(),
                    values,
                    l.nulls().cloned(),
                )?) as ArrayRef)
            })
        }
        _ => return None,
    })
}

const TIMESTAMP_TEXT: &str = "weir_timestamp_text";
const LOCAL_WALL: &str = "weir_local_wall";
const COLLECTION_TEXT: &str = "weir_collection_text";
/// A date-time string that ends in a zone offset after its time of day (`…:00Z`,
/// `… 08:00:00+08:00`, `…T08:00-0500`).
const OFFSET_AT_END: &str = r"\d:\d{2}(:\d{2}(\.\d*)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)$";
const FROM_LOCAL_WALL: &str = "weir_from_local_wall";

/// Flink reads a `TIMESTAMP_LTZ` in the session zone wherever it becomes a wall-clock
/// value (Flink's "Time Zone" page: `TIMESTAMP_LTZ` "is interpreted using the session time
/// zone" when converted to `TIMESTAMP`, `DATE`, `TIME` or a string, and its fields, as
/// `HOUR(ltz)` or `EXTRACT(DAY FROM ltz)`, are the session zone's). An analyzer rule: a
/// `CAST`/`TRY_CAST` of a `TIMESTAMP_LTZ` to one of those types, `HOUR` of one, and
/// `date_part` (which `DAYOFMONTH`, `EXTRACT`, … become) of one read it through
/// `weir_local_wall`, and a `TIMESTAMP`, `DATE` or string (one without a zone offset) cast
/// to a `TIMESTAMP_LTZ` goes through `weir_from_local_wall`; `date_trunc` of one (`FLOOR`,
/// `CEIL`) truncates its wall clock. A `TIMESTAMP` (and so a `TIMESTAMP_LTZ`'s wall clock)
/// made a string is Flink's text, through `weir_timestamp_text` ([`TimestampText`]): in a UTC
/// session `1970-01-01 00:00:00.000`, no `Z`, as Flink writes it.
#[derive(Debug, Default)]
pub struct LtzInSessionZone;

impl datafusion::optimizer::analyzer::AnalyzerRule for LtzInSessionZone {
    fn name(&self) -> &str {
        "ltz_in_session_zone"
    }

    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
        let wall = (
            Arc::new(LocalWall::udf()),
            Arc::new(LocalWall::reverse_udf()),
            Arc::new(TimestampText::udf()),
            Arc::new(CollectionText::udf()),
        );
        each_expression(plan, |e, schema| to_wall(e, schema, &wall))
    }
}

/// `plan` with `f` applied bottom-up to every expression of every node (subqueries too),
/// over the node's input schema (its own for a node of several inputs), each top-level
/// expression keeping its name: the walk Weir's analyzer rules share.
pub(crate) fn each_expression(
    plan: datafusion::logical_expr::LogicalPlan,
    f: impl Fn(
        datafusion::logical_expr::Expr,
        &datafusion::common::DFSchema,
    ) -> datafusion::error::Result<
        datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>,
    >,
) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    Ok(plan
        .transform_up_with_subqueries(|p| {
            let schema = match p.inputs().as_slice() {
                [one] => one.schema().clone(),
                _ => p.schema().clone(),
            };
            let names = NamePreserver::new(&p);
            p.map_expressions(|e| {
                let name = names.save(&e);
                e.transform_up(|e| f(e, &schema))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        })?
        .data)
}

/// What [`LtzInSessionZone`] does to a plan, for one expression over `schema` (a table's
/// computed column or watermark, which the analyzer does not see).
pub fn in_session_zone(
    e: datafusion::logical_expr::Expr,
    schema: &datafusion::common::DFSchema,
) -> datafusion::error::Result<datafusion::logical_expr::Expr> {
    use datafusion::common::tree_node::TreeNode;
    let wall = (
        Arc::new(LocalWall::udf()),
        Arc::new(LocalWall::reverse_udf()),
        Arc::new(TimestampText::udf()),
        Arc::new(CollectionText::udf()),
    );
    Ok(e.transform_up(|e| to_wall(e, schema, &wall))?.data)
}

/// [`LtzInSessionZone`]'s functions: `weir_local_wall`, `weir_from_local_wall`,
/// `weir_timestamp_text`, `weir_collection_text`.
type Udfs = (
    Arc<ScalarUDF>,
    Arc<ScalarUDF>,
    Arc<ScalarUDF>,
    Arc<ScalarUDF>,
);

fn is_ltz(e: &datafusion::logical_expr::Expr, schema: &datafusion::common::DFSchema) -> bool {
    use datafusion::logical_expr::ExprSchemable;
    matches!(e.get_type(schema), Ok(DataType::Timestamp(_, Some(_))))
}

fn to_wall(
    e: datafusion::logical_expr::Expr,
    schema: &datafusion::common::DFSchema,
    wall: &Udfs,
) -> datafusion::error::Result<
    datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>,
> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::expr::ScalarFunction;
    use datafusion::logical_expr::{Cast, Expr, TryCast};
    let wall_of = |x: Expr| Expr::ScalarFunction(ScalarFunction::new_udf(wall.0.clone(), vec![x]));
    // A wall-clock value (a TIMESTAMP or a DATE) as a TIMESTAMP_LTZ of `unit`: read as a
    // TIMESTAMP, then in the session zone.
    let instant_of = |x: Expr, unit: TimeUnit| {
        Expr::ScalarFunction(ScalarFunction::new_udf(
            wall.1.clone(),
            vec![Expr::Cast(Cast::new(
                Box::new(x),
                DataType::Timestamp(unit, None),
            ))],
        ))
    };
    let wall_clock_source = |x: &Expr| {
        use datafusion::logical_expr::ExprSchemable;
        matches!(
            x.get_type(schema),
            Ok(DataType::Timestamp(_, None) | DataType::Date32 | DataType::Date64)
        )
    };
    let wall_clock_type = |t: &DataType| {
        matches!(
            t,
            DataType::Timestamp(_, None)
                | DataType::Date32
                | DataType::Date64
                | DataType::Time32(_)
                | DataType::Time64(_)
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
        )
    };
    let string_source = |x: &Expr| {
        use datafusion::logical_expr::ExprSchemable;
        matches!(
            x.get_type(schema),
            Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        )
    };
    // A string as a TIMESTAMP_LTZ of `unit` (Flink's `StringToTimestampCastRule` reads it
    // in the session zone): a time that names its offset (`…Z`, `…+08:00`) is that
    // instant; any other is a wall-clock time of the session zone. The instant's cast goes
    // through the zone `+00:00`, which this rule leaves alone, so a second analysis of the
    // plan changes nothing.
    let string_instant = |x: Expr, unit: TimeUnit, try_cast: bool| {
        let cast = |x: Expr, t: DataType| {
            if try_cast {
                Expr::TryCast(TryCast::new(Box::new(x), t))
            } else {
                Expr::Cast(Cast::new(Box::new(x), t))
            }
        };
        let names_offset = Expr::ScalarFunction(ScalarFunction::new_udf(
            datafusion::functions::regex::regexp_like(),
            vec![
                x.clone(),
                Expr::Literal(ScalarValue::Utf8(Some(OFFSET_AT_END.into())), None),
            ],
        ));
        let instant = cast(
            cast(x.clone(), DataType::Timestamp(unit, Some("+00:00".into()))),
            DataType::Timestamp(unit, Some("UTC".into())),
        );
        let wall = Expr::ScalarFunction(ScalarFunction::new_udf(
            wall.1.clone(),
            vec![cast(x, DataType::Timestamp(unit, None))],
        ));
        Expr::Case(datafusion::logical_expr::Case::new(
            None,
            vec![(Box::new(names_offset), Box::new(instant))],
            Some(Box::new(wall)),
        ))
    };
    // The operand a cast to `target` reads instead of `expr`, or `expr` back.
    let operand = |expr: Expr,
                   target: &DataType,
                   try_cast: bool|
     -> std::result::Result<Expr, Expr> {
        match target {
            t if wall_clock_type(t) && is_ltz(&expr, schema) => Ok(wall_of(expr)),
            DataType::Timestamp(unit, Some(_)) if wall_clock_source(&expr) => {
                Ok(instant_of(expr, *unit))
            }
            DataType::Timestamp(unit, Some(tz)) if tz.as_ref() == "UTC" && string_source(&expr) => {
                Ok(string_instant(expr, *unit, try_cast))
            }
            _ => Err(expr),
        }
    };
    // A TIMESTAMP (an LTZ already on the wall clock) made a string: Flink's text, cast on
    // to the string type asked for when it is not Utf8.
    let text = |x: Expr, field: FieldRef, try_cast: bool| -> Option<Expr> {
        use datafusion::logical_expr::ExprSchemable;
        let string = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        );
        let wall_clock = matches!(x.get_type(schema), Ok(DataType::Timestamp(_, None)))
            || matches!(&x, Expr::ScalarFunction(f) if f.func.name() == LOCAL_WALL);
        // An ARRAY, MAP or ROW made one string: Flink's text of it.
        if string
            && matches!(
                x.get_type(schema),
                Ok(DataType::List(_)
                    | DataType::LargeList(_)
                    | DataType::Map(..)
                    | DataType::Struct(_))
            )
        {
            let t = Expr::ScalarFunction(ScalarFunction::new_udf(wall.3.clone(), vec![x]));
            return Some(match field.data_type() {
                DataType::Utf8 => t,
                _ => Expr::Cast(Cast::new_from_field(Box::new(t), field)),
            });
        }
        // An ARRAY of timestamps (or of such ARRAYs) into one of strings: each element so.
        fn texts(from: &DataType, to: &DataType) -> bool {
            let elements = |t: &DataType| match t {
                DataType::List(f) | DataType::LargeList(f) => Some(f.data_type().clone()),
                _ => None,
            };
            match (elements(from), elements(to)) {
                (Some(a), Some(b)) => texts(&a, &b),
                (None, None) => {
                    matches!(from, DataType::Timestamp(..))
                        && matches!(
                            to,
                            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                        )
                }
                _ => false,
            }
        }
        let array_of_text = x.get_type(schema).is_ok_and(|from| {
            matches!(from, DataType::List(_) | DataType::LargeList(_))
                && texts(&from, field.data_type())
        });
        if !(array_of_text || string && wall_clock) {
            return None;
        }
        let t = Expr::ScalarFunction(ScalarFunction::new_udf(wall.2.clone(), vec![x]));
        Some(match field.data_type() {
            DataType::Utf8 => t,
            _ if try_cast => Expr::TryCast(TryCast {
                expr: Box::new(t),
                field,
            }),
            _ => Expr::Cast(Cast::new_from_field(Box::new(t), field)),
        })
    };
    Ok(match e {
        Expr::Cast(Cast { expr, field }) => {
            let (x, changed) = match operand(*expr, field.data_type(), false) {
                Ok(x) => (x, true),
                Err(x) => (x, false),
            };
            match text(x.clone(), field.clone(), false) {
                Some(t) => Transformed::yes(t),
                None => Transformed::new_transformed(
                    Expr::Cast(Cast::new_from_field(Box::new(x), field)),
                    changed,
                ),
            }
        }
        Expr::TryCast(TryCast { expr, field }) => {
            let (x, changed) = match operand(*expr, field.data_type(), true) {
                Ok(x) => (x, true),
                Err(x) => (x, false),
            };
            match text(x.clone(), field.clone(), true) {
                Some(t) => Transformed::yes(t),
                None => Transformed::new_transformed(
                    Expr::TryCast(TryCast {
                        expr: Box::new(x),
                        field,
                    }),
                    changed,
                ),
            }
        }
        // `date_part(unit, ts)` (`EXTRACT`, `DAYOFMONTH`, …) and Flink's `HOUR(ts)`.
        Expr::ScalarFunction(mut f)
            if matches!(
                (f.func.name(), f.args.len()),
                ("date_part", 2) | ("hour", 1)
            ) && f.args.last().is_some_and(|a| is_ltz(a, schema))
                // The epoch is an instant's, in every zone.
                && !matches!(
                    f.args.first(),
                    Some(Expr::Literal(ScalarValue::Utf8(Some(u)), _)) if u.eq_ignore_ascii_case("epoch")
                ) =>
        {
            if let Some(arg) = f.args.pop() {
                f.args.push(wall_of(arg));
            }
            Transformed::yes(Expr::ScalarFunction(f))
        }
        // `date_trunc(unit, ltz)` (`FLOOR`/`CEIL(ltz TO unit)`): truncated on the session
        // zone's wall clock and read back in it, as Flink's `DateTimeUtils.timestampFloor(range,
        // ts, tz)` floors a `TIMESTAMP_LTZ` (a day starts at the zone's midnight).
        Expr::ScalarFunction(mut f)
            if f.func.name() == "date_trunc"
                && f.args.len() == 2
                && f.args.last().is_some_and(|a| {
                    use datafusion::logical_expr::ExprSchemable;
                    matches!(a.get_type(schema), Ok(DataType::Timestamp(_, Some(tz))) if tz.as_ref() == "UTC")
                }) =>
        {
            if let Some(arg) = f.args.pop() {
                f.args.push(wall_of(arg));
            }
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                wall.1.clone(),
                vec![Expr::ScalarFunction(f)],
            )))
        }
        e => Transformed::no(e),
    })
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

    /// Flink's `TimeWindowUtil.toEpochMillsForTimer`, with the Los Angeles instants its
    /// source documents: 2021-03-14 00:00 PST is 1615708800000, 03:00 PDT (02:00 skipped)
    /// 1615716000000; 2021-11-07 01:00 PDT is 1636272000000 and 01:00 PST 1636275600000.
    #[test]
    fn window_timers_across_daylight_saving() {
        let la: chrono_tz::Tz = "America/Los_Angeles".parse().expect("zone");
        const H: i64 = 3_600_000;
        // Wall-clock milliseconds (read as UTC) of 2021-03-14 00:00 and 2021-11-07 00:00.
        let spring = 1615680000000;
        let autumn = 1636243200000;
        assert_eq!(local_millis(1615708800000, &la), spring);
        assert_eq!(instant_of_wall(spring, &la), 1615708800000);
        // 02:00 and 02:59:59 do not occur: both fire at 03:00 PDT.
        assert_eq!(fire_instant_of_wall(spring + 2 * H, &la), 1615716000000);
        assert_eq!(
            fire_instant_of_wall(spring + 3 * H - 1000, &la),
            1615716000000
        );
        // 01:59:59.999 PST is an hour and a millisecond before that.
        assert_eq!(
            fire_instant_of_wall(spring + 2 * H - 1, &la),
            1615716000000 - 1
        );
        // 01:00 occurs twice: its window fires at the second, 01:00 PST.
        assert_eq!(instant_of_wall(autumn + H, &la), 1636272000000);
        assert_eq!(fire_instant_of_wall(autumn + H, &la), 1636275600000);
        assert_eq!(
            fire_instant_of_wall(autumn + 2 * H - 1, &la),
            1636275600000 + H - 1
        );
        assert_eq!(local_millis(1636275600000, &la), autumn + H);
        // Monotone through both changes, minute by minute.
        for base in [spring, autumn] {
            let mut last = i64::MIN;
            for m in 0..(4 * 60) {
                let t = fire_instant_of_wall(base + m * 60_000, &la);
                assert!(t >= last, "{base} + {m} min");
                last = t;
            }
        }
    }

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
        assert_eq!(fixed_offset_ms("Asia/Shanghai"), Some(8 * 3_600_000));
        assert_eq!(fixed_offset_ms("+05:30"), Some(19_800_000));
        assert_eq!(fixed_offset_ms("UTC"), Some(0));
        assert_eq!(fixed_offset_ms("Europe/Berlin"), None);
        assert_eq!(fixed_offset_ms("Europe/Moscow"), Some(3 * 3_600_000));
    }
}
