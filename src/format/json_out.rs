//! Rows written as Flink's `json` format writes them (`JsonRowDataSerializationSchema`):
//! every column present, a NULL as `null`; `TIMESTAMP` as `2020-10-10 00:00:01.5` (or
//! `2020-10-10T00:00:01.5` with `'json.timestamp-format.standard' = 'ISO-8601'`), a
//! `TIMESTAMP_LTZ` the same with a `Z` — the fraction with as many digits as it needs, none
//! when it is zero (Java's `appendFraction(NANO_OF_SECOND, 0, 9, true)`); `TIME` as
//! `00:00:01`, whole seconds (Flink's converter takes `LocalTime.ofSecondOfDay(ms /
//! 1000)`); a `DECIMAL` as a JSON number in Java's `BigDecimal.toString()` form
//! (`2.7E-8`), or plain (`0.000000027`) with `'json.encode.decimal-as-plain-number' =
//! 'true'`; `BYTES` as Base64 (Jackson's binary node); a `DOUBLE` or `FLOAT` as Java's
//! `Double.toString` writes it (`1.0E20`; see [`java_float_text`]).

use std::io::Write;
use std::sync::Arc;

use base64::Engine;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{
    Encoder, EncoderFactory, EncoderOptions, LineDelimited, NullableEncoder,
};
use datafusion::arrow::json::{Writer, WriterBuilder};

use crate::error::{Result, WeirError};
use crate::sql::options::Options;

/// The write options of Flink's `json` format that change what is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonWrite {
    /// `json.timestamp-format.standard` = `ISO-8601` (default `SQL`).
    pub iso8601: bool,
    /// `json.encode.decimal-as-plain-number` (default false).
    pub plain_decimals: bool,
}

impl JsonWrite {
    /// The options of a table's `json` format.
    ///
    /// Errors: a value Flink does not accept, naming the option. `json.map-null-key.mode`
    /// (`FAIL`, `DROP` or `LITERAL`) and `json.map-null-key.literal` are checked and
    /// accepted; a Weir `MAP` never holds a NULL key (`MAP[NULL, 1]` is refused at
    /// planning), so they have nothing to act on.
    pub fn from_options(options: &Options) -> Result<JsonWrite> {
        let iso8601 = match options.get("json.timestamp-format.standard") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("SQL") => false,
            Some(v) if v.eq_ignore_ascii_case("ISO-8601") => true,
            Some(v) => {
                return Err(WeirError::sql(
                    format!("option 'json.timestamp-format.standard': '{v}' is not a standard"),
                    options.pos("json.timestamp-format.standard"),
                )
                .with_hint("valid values: 'SQL' (the default), 'ISO-8601'"));
            }
        };
        if let Some(v) = options.get("json.map-null-key.mode")
            && !["FAIL", "DROP", "LITERAL"]
                .iter()
                .any(|m| v.eq_ignore_ascii_case(m))
        {
            return Err(WeirError::sql(
                format!("option 'json.map-null-key.mode': '{v}' is not a mode"),
                options.pos("json.map-null-key.mode"),
            )
            .with_hint("valid values: 'FAIL' (the default), 'DROP', 'LITERAL'"));
        }
        Ok(JsonWrite {
            iso8601,
            plain_decimals: options.bool_or("json.encode.decimal-as-plain-number", false)?,
        })
    }

    /// A JSON-lines writer into `w` that writes as Flink does (see the module's docs).
    pub fn writer<W: Write>(self, w: W) -> Writer<W, LineDelimited> {
        WriterBuilder::new()
            .with_explicit_nulls(true)
            .with_encoder_factory(Arc::new(FlinkJson(self)))
            .build::<_, LineDelimited>(w)
    }
}

/// The arrow-json encoders for the types Flink writes differently from arrow's defaults.
#[derive(Debug)]
struct FlinkJson(JsonWrite);

impl EncoderFactory for FlinkJson {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> std::result::Result<Option<NullableEncoder<'a>>, ArrowError> {
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Decimal128(_, scale) if !self.0.plain_decimals => Box::new(DecimalText {
                array: array.as_primitive(),
                scale: *scale,
            }),
            DataType::Timestamp(unit, tz) => Box::new(TimestampText {
                nanos: Nanos::of(array, *unit)?,
                separator: if self.0.iso8601 { 'T' } else { ' ' },
                zone: tz.is_some(),
            }),
            DataType::Time32(unit) | DataType::Time64(unit) => Box::new(TimeText {
                nanos: Nanos::of(array, *unit)?,
            }),
            DataType::Float64 | DataType::Float32 => Box::new(FloatText {
                values: datafusion::arrow::compute::cast(array, &DataType::Float64)?
                    .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                    .clone(),
                single: matches!(array.data_type(), DataType::Float32),
            }),
            DataType::Binary => Box::new(Base64Text(array.as_binary::<i32>())),
            DataType::LargeBinary => Box::new(Base64Text(array.as_binary::<i64>())),
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, array.nulls().cloned())))
    }
}

/// Java's `BigDecimal.toString()` of `unscaled × 10^-scale`: plain when the scale is not
/// negative and the exponent of the leading digit is at least -6, else scientific
/// (`2.7E-8`, `0E-9`, `1.2E+3`).
pub fn java_decimal_text(unscaled: i128, scale: i8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    let scale = scale as i64;
    let adjusted = digits.len() as i64 - 1 - scale;
    if scale >= 0 && adjusted >= -6 {
        let s = scale as usize;
        return if s == 0 {
            format!("{sign}{digits}")
        } else if digits.len() > s {
            let (int, frac) = digits.split_at(digits.len() - s);
            format!("{sign}{int}.{frac}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat(s - digits.len()))
        };
    }
    let (first, rest) = digits.split_at(1);
    let point = if rest.is_empty() { "" } else { "." };
    let exp_sign = if adjusted >= 0 { "+" } else { "" };
    format!("{sign}{first}{point}{rest}E{exp_sign}{adjusted}")
}

/// Java's `Double.toString(v)` (and `Float.toString` for a FLOAT, given `digits` of the
/// shortest form of the `f32`), as Flink writes a DOUBLE or FLOAT as text (a `CAST` to
/// STRING, the CSV and JSON formats through Jackson): the shortest digits that read back
/// as the same value (Java's rule since JDK 19), plain with at least one digit after the
/// point when 10^-3 ≤ |v| < 10^7 (`100.0`, `0.001`), else `d.dddE±n` with at least one
/// digit after the point (`1.0E20`, `1.0E-5`); `NaN`, `Infinity`, `-Infinity`, `-0.0`.
pub fn java_float_text(v: f64, single: bool) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        return format!("{sign}0.0");
    }
    // The shortest digits and the exponent of the first: `1.2345e-5`.
    let sci = if single {
        format!("{:e}", (v as f32).abs())
    } else {
        format!("{:e}", v.abs())
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-3..7).contains(&exp) {
        let point = exp + 1;
        let (int, frac) = if point <= 0 {
            (
                "0".to_string(),
                format!("{}{digits}", "0".repeat((-point) as usize)),
            )
        } else if (point as usize) >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            let (i, f) = digits.split_at(point as usize);
            (i.to_string(), f.to_string())
        };
        let frac = if frac.is_empty() { "0".into() } else { frac };
        return format!("{sign}{int}.{frac}");
    }
    let (first, rest) = digits.split_at(1);
    let rest = if rest.is_empty() { "0" } else { rest };
    format!("{sign}{first}.{rest}E{exp}")
}

/// A DOUBLE or FLOAT column's values as Jackson writes them: [`java_float_text`], a NaN or
/// an infinity as a JSON string (Jackson's `QUOTE_NON_NUMERIC_NUMBERS`, on by default).
struct FloatText {
    values: datafusion::arrow::array::Float64Array,
    single: bool,
}

impl Encoder for FloatText {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = self.values.value(idx);
        let text = java_float_text(v, self.single);
        if v.is_finite() {
            out.extend_from_slice(text.as_bytes());
        } else {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
    }
}

struct DecimalText<'a> {
    array: &'a datafusion::arrow::array::Decimal128Array,
    scale: i8,
}

impl Encoder for DecimalText<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(java_decimal_text(self.array.value(idx), self.scale).as_bytes());
    }
}

/// A temporal column's values as nanoseconds (since the epoch, or since midnight).
struct Nanos {
    values: datafusion::arrow::array::Int64Array,
    per_unit: i128,
}

impl Nanos {
    fn of(array: &dyn Array, unit: TimeUnit) -> std::result::Result<Self, ArrowError> {
        use datafusion::arrow::compute::cast;
        let per_unit = match unit {
            TimeUnit::Second => 1_000_000_000,
            TimeUnit::Millisecond => 1_000_000,
            TimeUnit::Microsecond => 1_000,
            TimeUnit::Nanosecond => 1,
        };
        // The stored integers, as they are (a TIME(0..3) is 32 bits).
        let raw = match array.data_type() {
            DataType::Time32(_) => cast(array, &DataType::Int32)?,
            _ => cast(array, &DataType::Int64)?,
        };
        let values = cast(&raw, &DataType::Int64)?
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .clone();
        Ok(Nanos { values, per_unit })
    }

    fn at(&self, idx: usize) -> i128 {
        self.values.value(idx) as i128 * self.per_unit
    }
}

/// `.5`, `.123`, or nothing: the fraction of a second with as many digits as it needs.
pub(crate) fn fraction(nanos: u32, out: &mut String) {
    if nanos > 0 {
        let text = format!(".{nanos:09}");
        out.push_str(text.trim_end_matches('0'));
    }
}

struct TimestampText {
    nanos: Nanos,
    separator: char,
    zone: bool,
}

impl Encoder for TimestampText {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let n = self.nanos.at(idx);
        let secs = n.div_euclid(1_000_000_000) as i64;
        let sub = n.rem_euclid(1_000_000_000) as u32;
        let mut text = String::from("\"");
        match chrono::DateTime::from_timestamp(secs, 0) {
            Some(t) => {
                let t = t.naive_utc();
                text.push_str(&t.format("%Y-%m-%d").to_string());
                text.push(self.separator);
                text.push_str(&t.format("%H:%M:%S").to_string());
                fraction(sub, &mut text);
                if self.zone {
                    text.push('Z');
                }
            }
            None => text.push_str(&secs.to_string()),
        }
        text.push('"');
        out.extend_from_slice(text.as_bytes());
    }
}

struct TimeText {
    nanos: Nanos,
}

impl Encoder for TimeText {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let n = self.nanos.at(idx).rem_euclid(86_400 * 1_000_000_000);
        let secs = (n / 1_000_000_000) as u32;
        let text = format!(
            "\"{:02}:{:02}:{:02}\"",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        out.extend_from_slice(text.as_bytes());
    }
}

struct Base64Text<'a, O: datafusion::arrow::array::OffsetSizeTrait>(
    &'a datafusion::arrow::array::GenericBinaryArray<O>,
);

impl<O: datafusion::arrow::array::OffsetSizeTrait> Encoder for Base64Text<'_, O> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(self.0.value(idx))
                .as_bytes(),
        );
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Java's `Double.toString` and `Float.toString` (JDK 19 and later: the shortest
    /// digits): plain from 10^-3 up to below 10^7, scientific outside, always a digit after
    /// the point.
    #[test]
    fn floats_as_java_writes_them() {
        let d = |v: f64| java_float_text(v, false);
        assert_eq!(d(1e20), "1.0E20");
        assert_eq!(d(0.00001), "1.0E-5");
        assert_eq!(d(1e7), "1.0E7");
        assert_eq!(d(9999999.0), "9999999.0");
        assert_eq!(d(0.001), "0.001");
        assert_eq!(d(0.0001), "1.0E-4");
        assert_eq!(d(100.0), "100.0");
        assert_eq!(d(1.5), "1.5");
        assert_eq!(d(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(d(-2.5e-10), "-2.5E-10");
        assert_eq!(d(12345678.9), "1.23456789E7");
        assert_eq!(d(f64::MAX), "1.7976931348623157E308");
        assert_eq!(d(f64::MIN_POSITIVE), "2.2250738585072014E-308");
        assert_eq!(d(0.0), "0.0");
        assert_eq!(d(-0.0), "-0.0");
        assert_eq!(d(f64::NAN), "NaN");
        assert_eq!(d(f64::INFINITY), "Infinity");
        assert_eq!(d(f64::NEG_INFINITY), "-Infinity");
        let f = |v: f32| java_float_text(v as f64, true);
        assert_eq!(f(123456789.0), "1.2345679E8");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(1.0e10), "1.0E10");
        assert_eq!(f(3.4028235e38), "3.4028235E38");
    }

    #[test]
    fn decimals_as_java_writes_them() {
        // java.math.BigDecimal's documented examples of toString().
        assert_eq!(java_decimal_text(123, 0), "123");
        assert_eq!(java_decimal_text(-123, 0), "-123");
        assert_eq!(java_decimal_text(123, -1), "1.23E+3");
        assert_eq!(java_decimal_text(123, 3), "0.123");
        assert_eq!(java_decimal_text(123, 10), "1.23E-8");
        assert_eq!(java_decimal_text(-123, 12), "-1.23E-10");
        assert_eq!(java_decimal_text(0, 9), "0E-9");
        assert_eq!(java_decimal_text(27, 9), "2.7E-8");
        assert_eq!(java_decimal_text(5, 6), "0.000005");
        assert_eq!(java_decimal_text(5, 7), "5E-7");
        assert_eq!(java_decimal_text(12345, 2), "123.45");
    }
}
