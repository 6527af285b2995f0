//! Flink functions DataFusion does not have, registered in every session.

use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `PROCTIME()`: the instant at which a batch is read, a `TIMESTAMP_LTZ(3)` (Flink's type;
/// shown in the session zone). A computed column `pt AS PROCTIME()` makes `pt` a
/// processing-time attribute that windows can use.
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
        Ok(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("UTC".into()),
        ))
    }

    /// `TIMESTAMP_LTZ(3) NOT NULL`, as Flink types it.
    fn return_field_from_args(
        &self,
        _args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> datafusion::error::Result<datafusion::arrow::datatypes::FieldRef> {
        Ok(std::sync::Arc::new(
            datafusion::arrow::datatypes::Field::new(
                self.name(),
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ))
    }

    fn invoke_with_args(
        &self,
        _args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(now_millis()),
            Some("UTC".into()),
        )))
    }
}

/// True when every argument of a call is a constant: its result is then one constant too.
pub(crate) fn all_scalar(args: &ScalarFunctionArgs) -> bool {
    args.args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)))
}

/// A function's result column, as a constant when its arguments all were (`scalar`).
pub(crate) fn shaped(
    out: datafusion::arrow::array::ArrayRef,
    scalar: bool,
) -> datafusion::error::Result<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}

/// Registers Weir's functions with a DataFusion context.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(Proctime::udf());
    ctx.register_udf(DateFormat::udf());
    ctx.register_udf(ToTimestampLtz::udf());
    ctx.register_udf(ToTimestampLtz::prefix_udf());
    ctx.register_udf(ToTimestamp::udf());
    ctx.register_udf(TypeOf::udf());
    ctx.register_udf(CutFraction::udf());
    ctx.register_udf(Cardinality::udf());
    ctx.register_udf(Substring::udf());
    ctx.register_udf(FloatText::udf());
    ctx.register_udf(crate::sql::decimal::DecimalDivide::udf());
    ctx.register_udf(crate::sql::map_fn::FlinkMap::udf());
    ctx.register_udf(crate::sql::unnest_fields::UnnestField::udf());
    ctx.register_udf(crate::sql::current_watermark::CurrentWatermark::udf());
    ctx.register_udf(crate::sql::local_time::LocalNow::udf());
    ctx.register_udf(crate::sql::local_time::LocalWall::udf());
    ctx.register_udf(crate::sql::local_time::LocalWall::reverse_udf());
    ctx.register_udf(crate::sql::local_time::EpochMillis::udf());
    ctx.register_udf(crate::sql::local_time::TimestampText::udf());
    ctx.register_udf(crate::sql::similar::Similar::udf());
    for f in crate::sql::json::JsonFn::udfs()
        .into_iter()
        .chain(crate::sql::json_build::JsonBuild::udfs())
        .chain(crate::sql::random::SeededRand::udfs())
        .chain(crate::sql::charset::CharsetFn::udfs())
        .chain(crate::sql::decimal::FlinkRounding::udfs())
        .chain(crate::sql::newer::Newer::udfs())
    {
        ctx.register_udf(f);
    }
    for f in crate::sql::json_build::JsonAgg::udafs() {
        ctx.register_udaf(f);
    }
    ctx.register_udaf(crate::sql::collect::Collect::udaf());
    ctx.register_udaf(crate::sql::group_id::GroupId::udaf());
    for f in [
        FlinkFn::SplitIndex,
        FlinkFn::RegexpExtract,
        FlinkFn::RegexpReplace,
        FlinkFn::Sqrt,
        FlinkFn::IntDivide,
        FlinkFn::IntervalTimes,
        FlinkFn::IntervalDivide,
        FlinkFn::IntervalText,
        FlinkFn::Hour,
        FlinkFn::Mod,
        FlinkFn::Bin,
        FlinkFn::Hex,
        FlinkFn::Sha1,
        FlinkFn::ParseUrl,
        FlinkFn::Element,
        FlinkFn::CurrentRowTimestamp,
        FlinkFn::ConvertTz,
        FlinkFn::StrToMap,
    ] {
        ctx.register_udf(FlinkScalar::udf(f));
    }
}

/// Flink's string and time functions that DataFusion spells differently or lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlinkFn {
    /// `SPLIT_INDEX(str, separator, index)`: the index-th (0-based) piece of `str` split
    /// at `separator`; NULL when the index is out of range or an argument is NULL.
    SplitIndex,
    /// `REGEXP_EXTRACT(str, regex[, index])`: group `index` (0, the default: the whole
    /// match) of the first match; NULL when nothing matches, an argument is NULL, the
    /// pattern lacks the group or is not a regular expression (Flink's
    /// `SqlFunctionUtils.regexpExtract` catches the error and returns null). Patterns are
    /// Java's, as in every regular-expression function ([`crate::sql::java_regex`]).
    RegexpExtract,
    /// `REGEXP_REPLACE(str, regex, replacement)` (as `weir_regexp_replace`): every match
    /// replaced by `replacement` taken as literal text, as Flink's `String.replaceAll` with
    /// `Matcher.quoteReplacement` does (`$1` and `\1` are not group references); NULL
    /// when an argument is NULL or the pattern is not a regular expression (Flink catches
    /// the error and returns null).
    RegexpReplace,
    /// `SQRT(numeric)` (as `weir_sqrt`): the square root as a DOUBLE, NaN for a negative
    /// number, as Java's `Math.sqrt` gives it (DataFusion's `sqrt` fails the query).
    Sqrt,
    /// `a / b` of two integers (as `weir_int_divide`), as Java divides them: truncated
    /// toward zero, in the wider of the two types, the smallest value over -1 wrapping to
    /// itself (Arrow's division fails on it). Errors: division by zero, as before.
    IntDivide,
    /// `interval * number` and `number * interval` (as `weir_interval_times(interval,
    /// number)`): a `YEAR TO MONTH` interval's months, or a `DAY TO SECOND` interval's
    /// milliseconds, times the number, cut toward zero to whole months or milliseconds, as
    /// Flink multiplies its intervals' internal values (months as an INT, milliseconds as a
    /// BIGINT). The result is an interval of the same kind; NULL when an argument is.
    /// Errors: a result past the range of a BIGINT of milliseconds or an INT of months.
    IntervalTimes,
    /// `interval / number` (as `weir_interval_divide(interval, number)`): the interval's
    /// months or milliseconds divided by the number, cut toward zero, as
    /// [`FlinkFn::IntervalTimes`] multiplies them. Errors: division by zero.
    IntervalDivide,
    /// `CAST(interval AS STRING)` (as `weir_interval_text(interval)`): Flink's text of an
    /// interval, `+0 00:20:00.000` or `+2-06` (see
    /// [`crate::sql::local_time::interval_text`]).
    IntervalText,
    /// `HOUR(timestamp)`: the hour of the day, 0-23.
    Hour,
    /// `MOD(a, b)`: the remainder of integer division, with the sign of `a`; NULL when `b`
    /// is 0.
    Mod,
    /// `BIN(INT)`: the integer in binary, as Java's `Long.toBinaryString` (a negative
    /// number as its 64-bit two's complement).
    Bin,
    /// `HEX(numeric)` / `HEX(string)`: an integer in upper-case hexadecimal (Java's
    /// `Long.toHexString`), or a string's UTF-8 bytes as upper-case hex pairs.
    Hex,
    /// `SHA1(string)`: the SHA-1 digest of the string's UTF-8 bytes, as 40 lower-case hex
    /// digits.
    Sha1,
    /// `PARSE_URL(url, part[, key])`: a part of a URL as Java's `java.net.URL` gives it
    /// (`HOST`, `PATH`, `QUERY`, `REF`, `PROTOCOL`, `AUTHORITY`, `FILE`, `USERINFO`), or
    /// with `key` the value of that key in the query; NULL for a malformed URL, a missing
    /// part or a NULL argument (Flink's `SqlFunctionUtils.parseUrl`).
    ParseUrl,
    /// `ELEMENT(array)`: the sole element of a one-element array; NULL for an empty or
    /// NULL array; an error for more elements.
    Element,
    /// `CURRENT_ROW_TIMESTAMP()`: the current time, evaluated for every row, as a
    /// `TIMESTAMP_LTZ(3)`.
    CurrentRowTimestamp,
    /// `CONVERT_TZ(string, from_zone, to_zone)`: a `yyyy-MM-dd HH:mm:ss` time read in one
    /// zone (an IANA name or `UTC`) and written in another; NULL for text that is not such
    /// a time, an unknown zone or a NULL argument.
    ConvertTz,
    /// `STR_TO_MAP(string[, pair_delimiter, key_value_delimiter])`: a `MAP<STRING,
    /// STRING>` from `k=v` pairs (delimiters are Java regular expressions, default `,` and
    /// `=`, split as Java's `String.split` does, which drops empty pairs at the end; an empty
    /// string is an empty map; a pair without the key-value delimiter maps its key to NULL;
    /// a repeated key keeps its last value, as Flink's Java map does).
    StrToMap,
    /// The Nexmark suite's `count_char(str, char)` (its class
    /// `com.github.nexmark.flink.udf.CountChar`, given by `CREATE FUNCTION`): how many times
    /// the first character of `char` occurs in `str`; 0 for a NULL `str`.
    CountChar,
}

/// The type of an integer division's quotient: the wider of its operands' integer types
/// (Calcite's least restrictive type; `INT / BIGINT` is a `BIGINT`), `BIGINT` for others.
fn int_quotient_type(args: &[DataType]) -> DataType {
    let width = |t: &DataType| match t {
        DataType::Int8 => 1,
        DataType::Int16 => 2,
        DataType::Int32 => 3,
        _ => 4,
    };
    match args.iter().map(width).max().unwrap_or(4) {
        1 => DataType::Int8,
        2 => DataType::Int16,
        3 => DataType::Int32,
        _ => DataType::Int64,
    }
}

/// Java functions of Flink scripts that Weir implements natively, by class name: what
/// `CREATE FUNCTION name AS 'class'` can name (Weir runs no Java).
pub const NATIVE_CLASSES: &[(&str, FlinkFn)] =
    &[("com.github.nexmark.flink.udf.CountChar", FlinkFn::CountChar)];

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkScalar {
    f: FlinkFn,
    names: Vec<String>,
    signature: Signature,
}

impl FlinkScalar {
    /// `f` under another name (what `CREATE FUNCTION` declares).
    pub fn udf_named(f: FlinkFn, name: &str) -> ScalarUDF {
        let (_, signature) = Self::spec(f);
        ScalarUDF::from(FlinkScalar {
            f,
            names: vec![name.to_lowercase(), name.to_uppercase()],
            signature,
        })
    }

    pub fn udf(f: FlinkFn) -> ScalarUDF {
        let (name, signature) = Self::spec(f);
        ScalarUDF::from(FlinkScalar {
            f,
            names: vec![name.to_string(), name.to_uppercase()],
            signature,
        })
    }

    fn spec(f: FlinkFn) -> (&'static str, Signature) {
        match f {
            FlinkFn::SplitIndex => ("split_index", Signature::any(3, Volatility::Immutable)),
            FlinkFn::RegexpExtract => (
                "regexp_extract",
                Signature::one_of(
                    vec![
                        datafusion::logical_expr::TypeSignature::Any(2),
                        datafusion::logical_expr::TypeSignature::Any(3),
                    ],
                    Volatility::Immutable,
                ),
            ),
            FlinkFn::RegexpReplace => (
                "weir_regexp_replace",
                Signature::any(3, Volatility::Immutable),
            ),
            FlinkFn::Sqrt => ("weir_sqrt", Signature::any(1, Volatility::Immutable)),
            FlinkFn::IntDivide => ("weir_int_divide", Signature::any(2, Volatility::Immutable)),
            FlinkFn::IntervalTimes => (
                "weir_interval_times",
                Signature::any(2, Volatility::Immutable),
            ),
            FlinkFn::IntervalDivide => (
                "weir_interval_divide",
                Signature::any(2, Volatility::Immutable),
            ),
            FlinkFn::IntervalText => (
                "weir_interval_text",
                Signature::any(1, Volatility::Immutable),
            ),
            FlinkFn::Hour => ("hour", Signature::any(1, Volatility::Immutable)),
            FlinkFn::Mod => ("mod", Signature::any(2, Volatility::Immutable)),
            FlinkFn::CountChar => ("count_char", Signature::any(2, Volatility::Immutable)),
            FlinkFn::Bin => ("bin", Signature::any(1, Volatility::Immutable)),
            FlinkFn::Hex => ("hex", Signature::any(1, Volatility::Immutable)),
            FlinkFn::Sha1 => ("sha1", Signature::any(1, Volatility::Immutable)),
            FlinkFn::ParseUrl => (
                "parse_url",
                Signature::one_of(
                    vec![
                        datafusion::logical_expr::TypeSignature::Any(2),
                        datafusion::logical_expr::TypeSignature::Any(3),
                    ],
                    Volatility::Immutable,
                ),
            ),
            FlinkFn::Element => ("element", Signature::any(1, Volatility::Immutable)),
            FlinkFn::CurrentRowTimestamp => (
                "current_row_timestamp",
                Signature::nullary(Volatility::Volatile),
            ),
            FlinkFn::ConvertTz => ("convert_tz", Signature::any(3, Volatility::Immutable)),
            FlinkFn::StrToMap => (
                "str_to_map",
                Signature::one_of(
                    vec![
                        datafusion::logical_expr::TypeSignature::Any(1),
                        datafusion::logical_expr::TypeSignature::Any(3),
                    ],
                    Volatility::Immutable,
                ),
            ),
        }
    }
}

/// Argument `i` of a call as an array of its `n` rows, cast to `t`.
pub(crate) fn arg_as(
    args: &ScalarFunctionArgs,
    i: usize,
    t: &DataType,
) -> datafusion::error::Result<datafusion::arrow::array::ArrayRef> {
    let a = args.args[i].to_array(args.number_rows)?;
    Ok(datafusion::arrow::compute::cast(&a, t)?)
}

impl ScalarUDFImpl for FlinkScalar {
    fn name(&self) -> &str {
        &self.names[0]
    }

    /// [`Self::return_type`]'s type; `SQRT` and an integer division are NOT NULL when their
    /// arguments are (Calcite's `*_NULLABLE` return types), the others nullable.
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> datafusion::error::Result<datafusion::arrow::datatypes::FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let nullable = match self.f {
            FlinkFn::Sqrt
            | FlinkFn::IntDivide
            | FlinkFn::IntervalTimes
            | FlinkFn::IntervalDivide
            | FlinkFn::IntervalText => args.arg_fields.iter().any(|f| f.is_nullable()),
            _ => true,
        };
        Ok(std::sync::Arc::new(
            datafusion::arrow::datatypes::Field::new(
                self.name(),
                self.return_type(&types)?,
                nullable,
            ),
        ))
    }

    fn aliases(&self) -> &[String] {
        &self.names[1..]
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(match self.f {
            // MOD has its divisor's type (Calcite's ReturnTypes.NULLABLE_MOD, ARG1_NULLABLE):
            // MOD(7, 2) is an INT, MOD(7, CAST(2 AS BIGINT)) a BIGINT.
            FlinkFn::Mod => match args.get(1) {
                Some(t @ (DataType::Int8 | DataType::Int16 | DataType::Int32)) => t.clone(),
                _ => DataType::Int64,
            },
            FlinkFn::Hour | FlinkFn::CountChar => DataType::Int64,
            FlinkFn::Sqrt => DataType::Float64,
            FlinkFn::IntDivide => int_quotient_type(args),
            FlinkFn::IntervalTimes | FlinkFn::IntervalDivide => match (args.first(), args.get(1)) {
                (Some(DataType::Interval(_) | DataType::Null), Some(n))
                    if n.is_numeric() || n.is_null() =>
                {
                    DataType::Interval(IntervalUnit::MonthDayNano)
                }
                (i, n) => {
                    let name = |t: Option<&DataType>| {
                        t.map_or("nothing".to_string(), crate::sql::types::flink_type_name)
                    };
                    return datafusion::common::plan_err!(
                        "an interval is multiplied or divided by a number, not {} by {}",
                        name(i),
                        name(n)
                    );
                }
            },
            FlinkFn::CurrentRowTimestamp => {
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
            }
            FlinkFn::StrToMap => string_map_type(),
            FlinkFn::Element => match args.first() {
                Some(
                    DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _),
                ) => f.data_type().clone(),
                Some(DataType::Null) => DataType::Null,
                other => {
                    return Err(datafusion::error::DataFusionError::Plan(format!(
                        "ELEMENT takes an ARRAY, not {}",
                        other.map_or("nothing".to_string(), |t| t.to_string())
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
        use datafusion::arrow::array::{Array, AsArray, Int64Array, StringArray};
        use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
        let n = args.number_rows;
        let scalar = all_scalar(&args);
        let out: datafusion::arrow::array::ArrayRef = match self.f {
            FlinkFn::SplitIndex => {
                let s = arg_as(&args, 0, &DataType::Utf8)?;
                let sep = arg_as(&args, 1, &DataType::Utf8)?;
                let idx = arg_as(&args, 2, &DataType::Int64)?;
                let (s, sep, idx) = (
                    s.as_string::<i32>(),
                    sep.as_string::<i32>(),
                    idx.as_primitive::<Int64Type>(),
                );
                std::sync::Arc::new(
                    (0..n)
                        .map(|i| {
                            if s.is_null(i) || sep.is_null(i) || idx.is_null(i) {
                                return None;
                            }
                            let k = usize::try_from(idx.value(i)).ok()?;
                            let sep = sep.value(i);
                            if sep.is_empty() {
                                return (k == 0).then(|| s.value(i).to_string());
                            }
                            s.value(i).split(sep).nth(k).map(str::to_string)
                        })
                        .collect::<StringArray>(),
                )
            }
            FlinkFn::RegexpExtract => {
                let s = arg_as(&args, 0, &DataType::Utf8)?;
                let re = arg_as(&args, 1, &DataType::Utf8)?;
                let idx = if args.args.len() > 2 {
                    arg_as(&args, 2, &DataType::Int64)?
                } else {
                    std::sync::Arc::new(Int64Array::from(vec![0; n]))
                };
                let (s, re, idx) = (
                    s.as_string::<i32>(),
                    re.as_string::<i32>(),
                    idx.as_primitive::<Int64Type>(),
                );
                let mut compiled = PatternCache::default();
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    if s.is_null(i) || re.is_null(i) || idx.is_null(i) {
                        values.push(None);
                        continue;
                    }
                    // Flink's `regexpExtract` catches every failure (a bad pattern, a
                    // group the pattern lacks) and gives NULL.
                    let Ok(r) = compiled.get(re.value(i)) else {
                        values.push(None);
                        continue;
                    };
                    let group = usize::try_from(idx.value(i)).ok();
                    let caps = r.on(s.value(i)).captures(s.value(i)).ok().flatten();
                    values.push(caps.and_then(|c| c.get(group?).map(|m| m.as_str().to_string())));
                }
                std::sync::Arc::new(values.into_iter().collect::<StringArray>())
            }
            FlinkFn::Sqrt => {
                let v = arg_as(&args, 0, &DataType::Float64)?;
                std::sync::Arc::new(
                    v.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                        .unary::<_, datafusion::arrow::datatypes::Float64Type>(f64::sqrt),
                )
            }
            FlinkFn::IntDivide => {
                use datafusion::arrow::datatypes::{Int8Type, Int16Type, Int32Type};
                let t =
                    int_quotient_type(&args.args.iter().map(|a| a.data_type()).collect::<Vec<_>>());
                let a = arg_as(&args, 0, &t)?;
                let b = arg_as(&args, 1, &t)?;
                use datafusion::arrow::compute::kernels::arity::try_binary;
                use datafusion::arrow::error::ArrowError;
                // Valid pairs only (a NULL side is NULL); a zero divisor fails, as before.
                macro_rules! divide {
                    ($t:ty) => {
                        std::sync::Arc::new(try_binary::<_, _, _, $t>(
                            a.as_primitive::<$t>(),
                            b.as_primitive::<$t>(),
                            |x, y| match y {
                                0 => Err(ArrowError::DivideByZero),
                                y => Ok(x.wrapping_div(y)),
                            },
                        )?) as datafusion::arrow::array::ArrayRef
                    };
                }
                match t {
                    DataType::Int8 => divide!(Int8Type),
                    DataType::Int16 => divide!(Int16Type),
                    DataType::Int32 => divide!(Int32Type),
                    _ => divide!(Int64Type),
                }
            }
            FlinkFn::RegexpReplace => {
                let s = arg_as(&args, 0, &DataType::Utf8)?;
                let re = arg_as(&args, 1, &DataType::Utf8)?;
                let with = arg_as(&args, 2, &DataType::Utf8)?;
                let (s, re, with) = (
                    s.as_string::<i32>(),
                    re.as_string::<i32>(),
                    with.as_string::<i32>(),
                );
                // A pattern that is not a regular expression gives NULL, as Flink's
                // `regexpReplace` catches the exception and returns null.
                let mut compiled = PatternCache::default();
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    if s.is_null(i) || re.is_null(i) || with.is_null(i) {
                        values.push(None);
                        continue;
                    }
                    values.push(
                        compiled
                            .get(re.value(i))
                            .ok()
                            .and_then(|r| r.replace_all(s.value(i), with.value(i)).ok()),
                    );
                }
                std::sync::Arc::new(values.into_iter().collect::<StringArray>())
            }
            FlinkFn::IntervalTimes | FlinkFn::IntervalDivide => {
                interval_times(&args, self.f == FlinkFn::IntervalDivide)?
            }
            FlinkFn::IntervalText => {
                crate::sql::local_time::interval_text(&args.args[0].to_array(n)?)?
            }
            FlinkFn::Mod => {
                let a = arg_as(&args, 0, &DataType::Int64)?;
                let b = arg_as(&args, 1, &DataType::Int64)?;
                let (a, b) = (a.as_primitive::<Int64Type>(), b.as_primitive::<Int64Type>());
                let rem: datafusion::arrow::array::ArrayRef = std::sync::Arc::new(
                    a.iter()
                        .zip(b.iter())
                        .map(|(a, b)| match (a, b) {
                            (Some(a), Some(b)) if b != 0 => Some(a.wrapping_rem(b)),
                            _ => None,
                        })
                        .collect::<Int64Array>(),
                );
                // In the divisor's type: a remainder is smaller than its divisor, so it fits.
                match args.args.get(1).map(|a| a.data_type()) {
                    Some(t @ (DataType::Int8 | DataType::Int16 | DataType::Int32)) => {
                        datafusion::arrow::compute::cast(&rem, &t)?
                    }
                    _ => rem,
                }
            }
            FlinkFn::CountChar => {
                let s = arg_as(&args, 0, &DataType::Utf8)?;
                let c = arg_as(&args, 1, &DataType::Utf8)?;
                let (s, c) = (s.as_string::<i32>(), c.as_string::<i32>());
                std::sync::Arc::new(
                    (0..n)
                        .map(|i| {
                            let ch = (!c.is_null(i)).then(|| c.value(i).chars().next()).flatten();
                            match (s.is_null(i), ch) {
                                (true, _) => 0,
                                (false, Some(ch)) => {
                                    s.value(i).chars().filter(|x| *x == ch).count() as i64
                                }
                                (false, None) => 0,
                            }
                        })
                        .collect::<Int64Array>(),
                )
            }
            FlinkFn::Bin
            | FlinkFn::Hex
            | FlinkFn::Sha1
            | FlinkFn::ParseUrl
            | FlinkFn::ConvertTz => {
                return flink_strings(self.f, &args);
            }
            FlinkFn::StrToMap => return str_to_map(&args),
            FlinkFn::Element => return element(&args),
            FlinkFn::CurrentRowTimestamp => {
                let now = now_millis();
                std::sync::Arc::new(
                    datafusion::arrow::array::TimestampMillisecondArray::from(vec![now; n])
                        .with_timezone("UTC"),
                )
            }
            FlinkFn::Hour => {
                let ts = arg_as(&args, 0, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
                let ts = ts.as_primitive::<TimestampMillisecondType>();
                std::sync::Arc::new(
                    ts.iter()
                        .map(|v| v.map(|ms| ms.rem_euclid(86_400_000) / 3_600_000))
                        .collect::<Int64Array>(),
                )
            }
        };
        shaped(out, scalar)
    }
}

/// `BIN`, `HEX`, `SHA1` and `PARSE_URL`: string results, NULL for a NULL argument.
fn flink_strings(
    f: FlinkFn,
    args: &ScalarFunctionArgs,
) -> datafusion::error::Result<ColumnarValue> {
    use datafusion::arrow::array::{Array, AsArray, StringArray};
    use datafusion::arrow::datatypes::Int64Type;
    use sha1::Digest;
    let n = args.number_rows;
    let scalar = all_scalar(args);
    let first = args.args[0].to_array(n)?;
    let out: StringArray = match f {
        FlinkFn::Bin => {
            let v = datafusion::arrow::compute::cast(&first, &DataType::Int64)?;
            v.as_primitive::<Int64Type>()
                .iter()
                .map(|x| x.map(|x| format!("{:b}", x as u64)))
                .collect()
        }
        FlinkFn::Hex if first.data_type().is_integer() || first.data_type().is_floating() => {
            let v = datafusion::arrow::compute::cast(&first, &DataType::Int64)?;
            v.as_primitive::<Int64Type>()
                .iter()
                .map(|x| x.map(|x| format!("{:X}", x as u64)))
                .collect()
        }
        FlinkFn::Hex | FlinkFn::Sha1 => {
            let v = datafusion::arrow::compute::cast(&first, &DataType::Utf8)?;
            v.as_string::<i32>()
                .iter()
                .map(|x| {
                    x.map(|x| {
                        if f == FlinkFn::Sha1 {
                            sha1::Sha1::digest(x.as_bytes())
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect()
                        } else {
                            x.bytes().map(|b| format!("{b:02X}")).collect::<String>()
                        }
                    })
                })
                .collect()
        }
        FlinkFn::ConvertTz => {
            let t = datafusion::arrow::compute::cast(&first, &DataType::Utf8)?;
            let from = arg_as(args, 1, &DataType::Utf8)?;
            let to = arg_as(args, 2, &DataType::Utf8)?;
            let (t, from, to) = (
                t.as_string::<i32>(),
                from.as_string::<i32>(),
                to.as_string::<i32>(),
            );
            (0..n)
                .map(|i| {
                    if t.is_null(i) || from.is_null(i) || to.is_null(i) {
                        return None;
                    }
                    convert_tz(t.value(i), from.value(i), to.value(i))
                })
                .collect()
        }
        _ => {
            let url = datafusion::arrow::compute::cast(&first, &DataType::Utf8)?;
            let part = arg_as(args, 1, &DataType::Utf8)?;
            let key = match args.args.get(2) {
                Some(_) => Some(arg_as(args, 2, &DataType::Utf8)?),
                None => None,
            };
            let (url, part) = (url.as_string::<i32>(), part.as_string::<i32>());
            let key = key.as_ref().map(|k| k.as_string::<i32>());
            (0..n)
                .map(|i| {
                    if url.is_null(i) || part.is_null(i) || key.is_some_and(|k| k.is_null(i)) {
                        return None;
                    }
                    let u = JavaUrl::parse(url.value(i))?;
                    match key {
                        Some(k) if part.value(i) == "QUERY" => u.query_value(k.value(i)),
                        Some(_) => None,
                        None => u.part(part.value(i)),
                    }
                })
                .collect()
        }
    };
    shaped(std::sync::Arc::new(out), scalar)
}

/// `time` (`yyyy-MM-dd HH:mm:ss`) read in zone `from` and written in zone `to`.
fn convert_tz(time: &str, from: &str, to: &str) -> Option<String> {
    let zone = |z: &str| -> Option<chrono_tz::Tz> {
        if z.eq_ignore_ascii_case("UTC") || z.eq_ignore_ascii_case("GMT") || z == "Z" {
            return Some(chrono_tz::UTC);
        }
        z.parse().ok()
    };
    let (from, to) = (zone(from)?, zone(to)?);
    let local = chrono::NaiveDateTime::parse_from_str(time.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    // A time a clock skips (a DST gap) does not exist; one it repeats is taken the first
    // time, as Java's `ZonedDateTime.of` does.
    let at = chrono::TimeZone::from_local_datetime(&from, &local).earliest()?;
    Some(
        at.with_timezone(&to)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
    )
}

/// Flink's `MAP<STRING, STRING>`, in the layout DataFusion's map functions use.
fn string_map_type() -> DataType {
    use datafusion::arrow::datatypes::{Field, Fields};
    DataType::Map(
        std::sync::Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    )
}

/// `interval * number` (or `/ number` when `divide`): see [`FlinkFn::IntervalTimes`].
/// Argument 0 is the interval, argument 1 the number; the result is an
/// `Interval(MonthDayNano)` whose day-time part is whole milliseconds: whole days, then the
/// rest of a day in nanoseconds.
fn interval_times(
    args: &ScalarFunctionArgs,
    divide: bool,
) -> datafusion::error::Result<datafusion::arrow::array::ArrayRef> {
    use datafusion::arrow::array::{Array, AsArray, IntervalMonthDayNanoArray};
    use datafusion::arrow::datatypes::{
        Float64Type, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType,
    };
    use datafusion::error::DataFusionError;
    const DAY_MS: i128 = 86_400_000;
    let interval = arg_as(args, 0, &DataType::Interval(IntervalUnit::MonthDayNano))?;
    let interval = interval.as_primitive::<IntervalMonthDayNanoType>();
    // An integer multiplies exactly (Java's long arithmetic); any other number as a double.
    // The cast gives a NULL literal a validity buffer, and an unsigned value past BIGINT's
    // range a NULL.
    let integer = {
        let t = args.args[1].data_type();
        t.is_integer() || t.is_null()
    };
    let number = match integer {
        true => arg_as(args, 1, &DataType::Int64)?,
        false => arg_as(args, 1, &DataType::Float64)?,
    };
    let (as_int, as_float) = (
        number.as_primitive_opt::<Int64Type>(),
        number.as_primitive_opt::<Float64Type>(),
    );
    let op = if divide { "/" } else { "*" };
    let too_big = |what: &str| {
        DataFusionError::Execution(format!(
            "an interval {op} a number is past the range of an interval's {what}"
        ))
    };
    // One part (months, or milliseconds) scaled, cut toward zero.
    let scale = |v: i128, i: usize| -> datafusion::error::Result<i128> {
        if let Some(as_int) = as_int {
            let n = i128::from(as_int.value(i));
            match (divide, n) {
                (true, 0) => Err(DataFusionError::Execution(
                    "an interval divided by zero".to_string(),
                )),
                (true, n) => Ok(v / n),
                (false, n) => Ok(v * n),
            }
        } else if let Some(as_float) = as_float {
            let n = as_float.value(i);
            if divide && n == 0.0 {
                return Err(DataFusionError::Execution(
                    "an interval divided by zero".to_string(),
                ));
            }
            let r = if divide { v as f64 / n } else { v as f64 * n }.trunc();
            if !r.is_finite() || r.abs() >= 9.2e18 {
                return Err(too_big("milliseconds"));
            }
            Ok(r as i128)
        } else {
            Err(DataFusionError::Internal(
                "an interval scaled by a number of no numeric type".to_string(),
            ))
        }
    };
    let mut out = Vec::with_capacity(interval.len());
    for i in 0..interval.len() {
        if interval.is_null(i) || number.is_null(i) {
            out.push(None);
            continue;
        }
        let v = interval.value(i);
        let months =
            i32::try_from(scale(i128::from(v.months), i)?).map_err(|_| too_big("months"))?;
        let ms = i128::from(v.days) * DAY_MS + i128::from(v.nanoseconds / 1_000_000);
        let ms = scale(ms, i)?;
        if i64::try_from(ms).is_err() {
            return Err(too_big("milliseconds"));
        }
        // Whole days, then the rest of a day in nanoseconds (both of the sign of `ms`).
        let days = i32::try_from(ms / DAY_MS).map_err(|_| too_big("days"))?;
        let nanoseconds =
            i64::try_from((ms % DAY_MS) * 1_000_000).map_err(|_| too_big("milliseconds"))?;
        out.push(Some(IntervalMonthDayNano::new(months, days, nanoseconds)));
    }
    Ok(std::sync::Arc::new(IntervalMonthDayNanoArray::from(out)))
}

/// The patterns one call of a regular-expression function compiles, by their text (which
/// the call's string array holds for as long as the cache lives); a pattern that is not a
/// regular expression is kept with why, so each text is compiled once.
#[derive(Default)]
pub(crate) struct PatternCache<'a> {
    compiled: std::collections::HashMap<
        &'a str,
        std::result::Result<crate::sql::java_regex::JavaRegex, String>,
    >,
}

impl<'a> PatternCache<'a> {
    /// `pattern`, a Java regular expression, compiled ([`crate::sql::java_regex::compile`]),
    /// or why it is not one (`'(' is not a regular expression: …`).
    pub(crate) fn get(
        &mut self,
        pattern: &'a str,
    ) -> std::result::Result<&crate::sql::java_regex::JavaRegex, String> {
        self.compiled
            .entry(pattern)
            .or_insert_with(|| crate::sql::java_regex::compile(pattern))
            .as_ref()
            .map_err(String::clone)
    }
}

/// `STR_TO_MAP`: see [`FlinkFn::StrToMap`].
fn str_to_map(args: &ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
    use datafusion::arrow::array::{Array, AsArray, MapBuilder, MapFieldNames, StringBuilder};
    let n = args.number_rows;
    let scalar = all_scalar(args);
    let text = arg_as(args, 0, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let delims = if args.args.len() == 3 {
        Some((
            arg_as(args, 1, &DataType::Utf8)?,
            arg_as(args, 2, &DataType::Utf8)?,
        ))
    } else {
        None
    };
    let names = MapFieldNames {
        entry: "entries".into(),
        key: "key".into(),
        value: "value".into(),
    };
    let mut b = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
    // Java's `String.split` on Java regular expressions; a bad pattern fails the query, as
    // Java's `PatternSyntaxException` fails Flink's.
    let delims = delims
        .as_ref()
        .map(|(p, k)| (p.as_string::<i32>(), k.as_string::<i32>()));
    let (mut pairs_cache, mut kv_cache) = (PatternCache::default(), PatternCache::default());
    let failed =
        |e: String| datafusion::error::DataFusionError::Execution(format!("STR_TO_MAP: {e}"));
    for i in 0..n {
        let (pair, kv) = match &delims {
            Some((p, k)) => {
                if p.is_null(i) || k.is_null(i) {
                    b.append(false)?;
                    continue;
                }
                (p.value(i), k.value(i))
            }
            None => (",", "="),
        };
        if text.is_null(i) {
            b.append(false)?;
            continue;
        }
        let pair = pairs_cache.get(pair).map_err(failed)?;
        let kv = kv_cache.get(kv).map_err(failed)?;
        let mut entries: Vec<(String, Option<String>)> = vec![];
        // Flink: an empty text is an empty map.
        let pairs = match text.value(i) {
            "" => vec![],
            t => crate::sql::java_regex::split(pair, t).map_err(failed)?,
        };
        for p in pairs {
            let (key, value) = crate::sql::java_regex::split_once(kv, p).map_err(failed)?;
            let (key, value) = (key.to_string(), value.map(str::to_string));
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(e) => e.1 = value,
                None => entries.push((key, value)),
            }
        }
        for (k, v) in entries {
            b.keys().append_value(k);
            b.values().append_option(v);
        }
        b.append(true)?;
    }
    let out: datafusion::arrow::array::ArrayRef = std::sync::Arc::new(b.finish());
    // The builder marks its entries nullable-free only by its field; match the declared type.
    let out = datafusion::arrow::compute::cast(&out, &string_map_type())?;
    shaped(out, scalar)
}

/// A URL split as `java.net.URL` splits it: `protocol://authority/path?query#ref`.
struct JavaUrl<'a> {
    protocol: &'a str,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    reference: Option<&'a str>,
}

impl<'a> JavaUrl<'a> {
    /// None when `s` has no `protocol://` prefix (Java's URL refuses it).
    fn parse(s: &'a str) -> Option<Self> {
        let (protocol, rest) = s.split_once("://")?;
        let mut chars = protocol.chars();
        if !chars.next()?.is_ascii_alphabetic()
            || !chars.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        {
            return None;
        }
        let (rest, reference) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        Some(JavaUrl {
            protocol,
            authority,
            path,
            query,
            reference,
        })
    }

    fn part(&self, name: &str) -> Option<String> {
        let userinfo = self.authority.rsplit_once('@').map(|(u, _)| u);
        let host_port = self
            .authority
            .rsplit_once('@')
            .map_or(self.authority, |(_, h)| h);
        let host = if host_port.starts_with('[') {
            host_port.split_inclusive(']').next().unwrap_or(host_port)
        } else {
            host_port.split(':').next().unwrap_or(host_port)
        };
        Some(match name {
            "HOST" => host.to_string(),
            "PATH" => self.path.to_string(),
            "QUERY" => self.query?.to_string(),
            "REF" => self.reference?.to_string(),
            "PROTOCOL" => self.protocol.to_string(),
            "AUTHORITY" => self.authority.to_string(),
            "FILE" => match self.query {
                Some(q) => format!("{}?{q}", self.path),
                None => self.path.to_string(),
            },
            "USERINFO" => userinfo?.to_string(),
            _ => return None,
        })
    }

    /// The value of `key` in the query: Flink matches `(&|^)key=([^&]*)`.
    fn query_value(&self, key: &str) -> Option<String> {
        self.query?
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    }
}

/// `ELEMENT(array)`: see [`FlinkFn::Element`].
fn element(args: &ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
    use datafusion::arrow::array::{Array, AsArray, new_null_array};
    let n = args.number_rows;
    let scalar = all_scalar(args);
    let a = args.args[0].to_array(n)?;
    if a.data_type() == &DataType::Null {
        return shaped(new_null_array(&DataType::Null, n), scalar);
    }
    let a = datafusion::arrow::compute::cast(
        &a,
        &DataType::List(match a.data_type() {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => f.clone(),
            t => {
                return Err(datafusion::error::DataFusionError::Execution(format!(
                    "ELEMENT takes an ARRAY, not {t}"
                )));
            }
        }),
    )?;
    let list = a.as_list::<i32>();
    let mut idx: Vec<Option<u32>> = Vec::with_capacity(n);
    for i in 0..n {
        if list.is_null(i) {
            idx.push(None);
            continue;
        }
        let (start, end) = (list.value_offsets()[i], list.value_offsets()[i + 1]);
        match end - start {
            0 => idx.push(None),
            1 => idx.push(Some(start as u32)),
            k => {
                return Err(datafusion::error::DataFusionError::Execution(format!(
                    "ELEMENT: the array has {k} elements; ELEMENT takes an array of at most one"
                )));
            }
        }
    }
    let idx = datafusion::arrow::array::UInt32Array::from(idx);
    let out = datafusion::arrow::compute::take(list.values().as_ref(), &idx, None)?;
    shaped(out, scalar)
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

/// A part of a Java `SimpleDateFormat` pattern: a field (its letter and width: `yyyy` is
/// `('y', 4)`) or literal text (quoted text unquoted, `''` a quote).
enum JavaPart {
    Field(char, usize),
    Text(String),
}

/// `pattern`'s parts, in order.
fn java_pattern_parts(pattern: &str) -> Vec<JavaPart> {
    let mut parts = vec![];
    let p: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        if c.is_ascii_alphabetic() {
            let n = p[i..].iter().take_while(|&&x| x == c).count();
            parts.push(JavaPart::Field(c, n));
            i += n;
        } else if c == '\'' {
            // Quoted text; '' is a quote.
            let mut lit = String::new();
            i += 1;
            while i < p.len() {
                if p[i] == '\'' {
                    if p.get(i + 1) == Some(&'\'') {
                        lit.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                lit.push(p[i]);
                i += 1;
            }
            if lit.is_empty() {
                lit.push('\'');
            }
            parts.push(JavaPart::Text(lit));
        } else {
            parts.push(JavaPart::Text(c.to_string()));
            i += 1;
        }
    }
    parts
}

/// A Java `SimpleDateFormat` pattern of numbers alone, read once, to read texts as its
/// lenient reading (the default, which Flink's `UNIX_TIMESTAMP` and `TO_DATE(string,
/// format)` use) reads them ([`LenientPattern::parse`]).
pub(crate) struct LenientPattern(Vec<JavaPart>);

impl LenientPattern {
    /// `pattern`, when every field is a number (year, month as digits, day, day of year,
    /// hours, minutes, seconds, milliseconds) and its year has three letters or more (Java
    /// guesses the century of a two-digit one); None for any other (`MMM`, `E`, `a`, a
    /// zone, `yy`).
    pub(crate) fn new(pattern: &str) -> Option<Self> {
        let parts = java_pattern_parts(pattern);
        let numbers = parts.iter().all(|p| match p {
            JavaPart::Text(_) => true,
            JavaPart::Field('y', n) => *n > 2,
            JavaPart::Field('M', n) => *n <= 2,
            JavaPart::Field(c, _) => {
                matches!(c, 'd' | 'D' | 'H' | 'k' | 'h' | 'K' | 'm' | 's' | 'S')
            }
        });
        numbers.then_some(LenientPattern(parts))
    }

    /// `text` as the lenient reading reads it: each field takes the digits there are
    /// (exactly its pattern's width where the next field follows without a separator), and
    /// a value past its field's range rolls over into the next, as `GregorianCalendar` does
    /// (`2024-13-01` is 2025-01-01, `24:00:00` the next day's midnight, `02-30` the 1st of
    /// March). The text after the last field is ignored. None for text that does not match
    /// or a date past years 0 to 9999.
    pub(crate) fn parse(&self, text: &str) -> Option<chrono::NaiveDateTime> {
        lenient_java_parse(text, &self.0)
    }
}

/// [`LenientPattern::parse`] over the pattern's parts.
fn lenient_java_parse(text: &str, parts: &[JavaPart]) -> Option<chrono::NaiveDateTime> {
    let (mut year, mut month, mut day, mut day_of_year) = (1970i64, 1i64, 1i64, None);
    let (mut hour, mut minute, mut second, mut milli) = (0i64, 0i64, 0i64, 0i64);
    let mut pm = None;
    let mut rest = text;
    for (k, part) in parts.iter().enumerate() {
        match part {
            JavaPart::Text(t) => rest = rest.strip_prefix(t.as_str())?,
            JavaPart::Field(c, n) => {
                let abutting = matches!(parts.get(k + 1), Some(JavaPart::Field(..)));
                let run = rest.bytes().take_while(u8::is_ascii_digit).count();
                let take = if abutting { (*n).min(run) } else { run };
                if take == 0 || take > 18 {
                    return None;
                }
                let v: i64 = rest[..take].parse().ok()?;
                rest = &rest[take..];
                match c {
                    'y' => year = v,
                    'M' => month = v,
                    'd' => day = v,
                    'D' => day_of_year = Some(v),
                    'H' => hour = v,
                    // `k` counts 1 to 24 and `h` 1 to 12: 24 and 12 are the hour 0 of the
                    // day or half-day (SimpleDateFormat's HOUR_OF_DAY1 and HOUR1).
                    'k' => hour = if v == 24 { 0 } else { v },
                    'h' => pm = Some(if v == 12 { 0 } else { v }),
                    'K' => pm = Some(v),
                    'm' => minute = v,
                    's' => second = v,
                    _ => milli = v,
                }
            }
        }
    }
    if let Some(h) = pm {
        // Without an AM/PM field the hour of a 12-hour clock is in the morning; a larger
        // one rolls on into the afternoon and beyond, as the lenient calendar adds it.
        hour = h;
    }
    let first = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, 1, 1)?;
    let date = match day_of_year {
        Some(d) => first.checked_add_signed(chrono::TimeDelta::try_days(d - 1)?)?,
        None => {
            let months = month - 1;
            let shifted = match months >= 0 {
                true => first.checked_add_months(chrono::Months::new(u32::try_from(months).ok()?)),
                false => {
                    first.checked_sub_months(chrono::Months::new(u32::try_from(-months).ok()?))
                }
            }?;
            shifted.checked_add_signed(chrono::TimeDelta::try_days(day - 1)?)?
        }
    };
    let time = chrono::TimeDelta::try_hours(hour)?
        .checked_add(&chrono::TimeDelta::try_minutes(minute)?)?
        .checked_add(&chrono::TimeDelta::try_seconds(second)?)?
        .checked_add(&chrono::TimeDelta::try_milliseconds(milli)?)?;
    let t = date.and_hms_opt(0, 0, 0)?.checked_add_signed(time)?;
    use chrono::Datelike as _;
    (0..=9999).contains(&t.year()).then_some(t)
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
            ('y' | 'u', 2) => "%y",
            ('y' | 'u', _) => "%Y",
            // One letter: no padding (Java's `M` writes 3, `MM` 03); reading takes one or
            // two digits either way.
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
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
        let fmt = fraction_for_formatting(&pattern, &java_to_strftime(&pattern));
        // Fractions to cut to fewer than nine digits (see `fraction_for_formatting`).
        let cuts = fmt.contains(CUT_MARK) && !pattern.contains(CUT_MARK);
        let values = args.args[0].to_array(n)?;
        // A TIMESTAMP_LTZ is written as the wall-clock time of the session zone.
        let zone = match values.data_type() {
            DataType::Timestamp(_, Some(_)) => {
                Some(crate::sql::local_time::zone_of(&args.config_options))
            }
            _ => None,
        };
        // Each instant as its millisecond (toward the past, as Flink's TimestampData
        // holds it) and the nanoseconds past that millisecond.
        let (ts, sub_ms): (TimestampMillisecondArray, Option<Vec<i64>>) = match values.data_type() {
            DataType::Timestamp(unit @ (TimeUnit::Microsecond | TimeUnit::Nanosecond), _) => {
                use datafusion::arrow::array::AsArray;
                let per_ms: i64 = match unit {
                    TimeUnit::Microsecond => 1_000,
                    _ => 1_000_000,
                };
                let raw = cast(&values, &DataType::Int64)?;
                let raw = raw.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let ms = raw
                    .iter()
                    .map(|v| v.map(|v| v.div_euclid(per_ms)))
                    .collect();
                let sub = raw
                    .iter()
                    .map(|v| v.map_or(0, |v| v.rem_euclid(per_ms) * (1_000_000 / per_ms)))
                    .collect();
                (ms, Some(sub))
            }
            _ => {
                let ts = cast(&values, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
                let ts = ts
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .ok_or_else(|| {
                        datafusion::error::DataFusionError::Internal("timestamp cast".into())
                    })?
                    .clone();
                (ts, None)
            }
        };
        let wall = |ms: i64| match &zone {
            Some(tz) => crate::sql::local_time::local_millis(ms, tz),
            None => ms,
        };
        // The pattern parsed once, not per row.
        let items: Vec<chrono::format::Item<'_>> =
            chrono::format::StrftimeItems::new(&fmt).collect();
        if items.contains(&chrono::format::Item::Error) {
            return datafusion::common::plan_err!(
                "DATE_FORMAT: '{pattern}' is not a valid date pattern"
            );
        }
        // A pattern without a fraction of a second writes the same text for every instant
        // of one second: rows of a stream mostly come in time order, so the text of the
        // row before is reused while the second does not change.
        let subsecond = items.iter().any(|i| {
            matches!(
                i,
                chrono::format::Item::Fixed(
                    chrono::format::Fixed::Nanosecond
                        | chrono::format::Fixed::Nanosecond3
                        | chrono::format::Fixed::Nanosecond6
                        | chrono::format::Fixed::Nanosecond9
                        | chrono::format::Fixed::Internal(_)
                ) | chrono::format::Item::Numeric(chrono::format::Numeric::Nanosecond, _)
            )
        });
        let mut b = StringBuilder::with_capacity(n, n * fmt.len());
        let mut text = String::new();
        let mut second: Option<i64> = None;
        for i in 0..ts.len() {
            if !ts.is_valid(i) {
                b.append_null();
                continue;
            }
            let ms = wall(ts.value(i));
            let this = (!subsecond).then(|| ms.div_euclid(1000));
            if this.is_none() || this != second {
                let Some(dt) =
                    datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
                else {
                    second = None;
                    b.append_null();
                    continue;
                };
                let dt = match &sub_ms {
                    Some(sub) => dt + chrono::Duration::nanoseconds(sub[i]),
                    None => dt,
                };
                use std::fmt::Write as _;
                text.clear();
                if write!(text, "{}", dt.format_with_items(items.iter())).is_err() {
                    return datafusion::common::plan_err!(
                        "DATE_FORMAT: '{pattern}' is not a valid date pattern"
                    );
                }
                if cuts {
                    cut_fractions(&mut text);
                }
                second = this;
            }
            b.append_value(&text);
        }
        let out = b.finish();
        shaped(
            std::sync::Arc::new(out),
            matches!(args.args[0], ColumnarValue::Scalar(_)),
        )
    }
}

/// `TO_TIMESTAMP_LTZ`, as Flink 2.3 defines it (FLINK-39244), into a `TIMESTAMP_LTZ(p)`:
///
/// - `TO_TIMESTAMP_LTZ(numeric[, precision])`: an epoch value in units of 10^-`precision`
///   seconds (0 seconds, 3 milliseconds, the default, 6 microseconds, 9 nanoseconds; every
///   precision 0 to 9). Precisions 0 to 3 give a `TIMESTAMP_LTZ(3)`, 4 to 9 a
///   `TIMESTAMP_LTZ(precision)`, held in Arrow's next unit (microseconds up to 6,
///   nanoseconds past). A fractional value is cut toward zero at the result's unit.
/// - `TO_TIMESTAMP_LTZ(string[, format[, timezone]])`: `string` parsed with the Java
///   pattern `format` (default `yyyy-MM-dd HH:mm:ss.SSS`) as a time in `timezone` (an IANA
///   name such as `Asia/Shanghai`, or an offset such as `+08:00`; default UTC, as Flink documents; not the
///   session time zone; an offset in the string itself, pattern `X` or `Z`, wins). A string
///   that does not match is NULL, as in Flink. A format with more than three fraction
///   digits (`ss.SSSSSS`) gives a `TIMESTAMP_LTZ` of that many (Flink 2.3), cut to them
///   (FLINK-41740); otherwise a `TIMESTAMP_LTZ(3)`.
///
/// Errors: a precision outside 0 to 9, a precision or format that is not a literal (at
/// planning: the type depends on it), a time zone that is not constant, or an unknown
/// time zone.
///
/// Registered a second time as `weir_parse_prefix(string, format, timezone)`, which reads
/// a string as Java's `SimpleDateFormat.parse` does for `UNIX_TIMESTAMP(string[, format])`
/// and `TO_DATE(string, format)` (Flink's `DateTimeUtils.internalParseTimestampMillis`):
/// the beginning of the string that matches the whole format, the rest ignored
/// (`'2024-01-01 10:00:01.000'` with `yyyy-MM-dd HH:mm:ss` is 10:00:01).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToTimestampLtz {
    signature: Signature,
    /// `weir_parse_prefix`: text after the format's match is ignored.
    prefix: bool,
}

impl ToTimestampLtz {
    /// The name of the form that reads a matching beginning (see [`ToTimestampLtz`]).
    pub const PREFIX_NAME: &'static str = "weir_parse_prefix";

    /// The function, to register with a DataFusion context.
    pub fn udf() -> ScalarUDF {
        Self::with_prefix(false)
    }

    /// `weir_parse_prefix` (see [`ToTimestampLtz`]), to register with a DataFusion context.
    pub fn prefix_udf() -> ScalarUDF {
        Self::with_prefix(true)
    }

    fn with_prefix(prefix: bool) -> ScalarUDF {
        use datafusion::logical_expr::TypeSignature::Any;
        ScalarUDF::from(ToTimestampLtz {
            signature: Signature::one_of(vec![Any(1), Any(2), Any(3)], Volatility::Immutable),
            prefix,
        })
    }
}

/// A constant string argument, or an error naming what it is for.
fn const_string(v: &ColumnarValue, what: &str) -> datafusion::error::Result<Option<String>> {
    match v {
        ColumnarValue::Scalar(s) if s.is_null() => Ok(None),
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(p))
            | ScalarValue::LargeUtf8(Some(p))
            | ScalarValue::Utf8View(Some(p)),
        ) => Ok(Some(p.clone())),
        _ => datafusion::common::plan_err!("TO_TIMESTAMP_LTZ takes a constant {what} string"),
    }
}

impl ScalarUDFImpl for ToTimestampLtz {
    fn name(&self) -> &str {
        match self.prefix {
            true => Self::PREFIX_NAME,
            false => "to_timestamp_ltz",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("UTC".into()),
        ))
    }

    /// `TIMESTAMP_LTZ(3)`, or `TIMESTAMP_LTZ(p)` for a constant precision or a format's
    /// fraction digits past 3 (see [`ToTimestampLtz`]).
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> datafusion::error::Result<datafusion::arrow::datatypes::FieldRef> {
        let constant = args.scalar_arguments.get(1).copied().flatten();
        // A NULL value with a format string is the string form (its result NULL).
        let string = args.arg_fields.first().is_some_and(|f| {
            f.data_type().is_string()
                || (f.data_type().is_null() && constant.is_some_and(|c| c.data_type().is_string()))
        });
        // A precision or format that is not a literal is refused here, at planning, so that
        // the error points at the call (DataFusion types a call from its literal arguments,
        // as `arrow_cast` does); the time zone, which the type does not depend on, is
        // checked when the call runs.
        if args.arg_fields.len() > 1 && constant.is_none() {
            return match string {
                true => datafusion::common::plan_err!(
                    "TO_TIMESTAMP_LTZ(string, format) takes a literal format"
                ),
                false => datafusion::common::plan_err!(
                    "TO_TIMESTAMP_LTZ(numeric, precision) takes a literal precision, 0 to 9"
                ),
            };
        }
        let precision = if string {
            match constant {
                Some(
                    ScalarValue::Utf8(Some(f))
                    | ScalarValue::LargeUtf8(Some(f))
                    | ScalarValue::Utf8View(Some(f)),
                ) => fraction_digits(f),
                Some(other) if !other.is_null() => {
                    return datafusion::common::plan_err!(
                        "TO_TIMESTAMP_LTZ(string, format) takes a format string such as 'yyyy-MM-dd HH:mm:ss', not {other}"
                    );
                }
                _ => 3,
            }
        } else {
            if args.arg_fields.len() > 2 {
                return datafusion::common::plan_err!(
                    "TO_TIMESTAMP_LTZ(numeric, precision) takes two arguments; a time zone goes with a string: TO_TIMESTAMP_LTZ(string, format, timezone)"
                );
            }
            match constant.filter(|p| !p.is_null()) {
                Some(p) if !p.data_type().is_integer() => {
                    return datafusion::common::plan_err!(
                        "TO_TIMESTAMP_LTZ(numeric, precision) takes an integer precision, 0 to 9, not {p}"
                    );
                }
                Some(p) => ltz_precision(p)?,
                None => 3,
            }
        };
        Ok(std::sync::Arc::new(
            datafusion::arrow::datatypes::Field::new(
                self.name(),
                DataType::Timestamp(unit_of(precision), Some("UTC".into())),
                true,
            ),
        ))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, Int64Array};
        use datafusion::arrow::compute::cast;
        use datafusion::arrow::datatypes::{Float64Type, Int64Type};
        let n = args.number_rows;
        let scalar = all_scalar(&args);
        let values = args.args[0].to_array(n)?;
        let out_type = args.return_field.data_type().clone();
        // Digits of fraction the result's unit holds: 3, 6 or 9.
        let unit_digits: u32 = match &out_type {
            DataType::Timestamp(unit, _) => crate::sql::types::unit_digits(unit),
            _ => 3,
        };
        let null = || -> datafusion::error::Result<ColumnarValue> {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from(&out_type)?))
        };
        let out: Int64Array = match values.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let format = match args.args.get(1) {
                    Some(f) => const_string(f, "format")?,
                    None => Some("yyyy-MM-dd HH:mm:ss.SSS".to_string()),
                };
                // UTC unless the call names a zone (Flink's documented default here).
                let zone = match args.args.get(2) {
                    Some(z) => const_string(z, "time zone")?,
                    None => Some("UTC".to_string()),
                };
                let (Some(format), Some(zone)) = (format, zone) else {
                    return null();
                };
                let tz: datafusion::arrow::array::timezone::Tz = zone.parse().map_err(|_| {
                    datafusion::error::DataFusionError::Plan(format!(
                        "TO_TIMESTAMP_LTZ: unknown time zone '{zone}' (write an IANA name such as 'Asia/Shanghai' or an offset such as '+08:00')"
                    ))
                })?;
                let digits = fraction_digits(&format);
                let fmt = fraction_for_parsing(&format, &java_to_strftime(&format));
                // A pattern of numbers alone, read once for every row.
                let lenient = self.prefix.then(|| LenientPattern::new(&format)).flatten();
                let at = |t: chrono::DateTime<chrono::Utc>| {
                    in_unit(
                        t.timestamp(),
                        t.timestamp_subsec_nanos(),
                        unit_digits,
                        digits,
                    )
                };
                let s = cast(&values, &DataType::Utf8)?;
                s.as_string::<i32>()
                    .iter()
                    .map(|v| {
                        let v = v?;
                        if fmt.contains("%z")
                            && let Ok(t) = match self.prefix {
                                true => {
                                    chrono::DateTime::parse_and_remainder(v, &fmt).map(|(t, _)| t)
                                }
                                false => chrono::DateTime::parse_from_str(v, &fmt),
                            }
                        {
                            return at(t.to_utc());
                        }
                        let local = match (&lenient, self.prefix) {
                            // A pattern of numbers alone, as SimpleDateFormat reads it
                            // (every digit of a field, values rolled over, no sign).
                            (Some(l), _) => l.parse(v),
                            (None, true) => chrono::NaiveDateTime::parse_and_remainder(v, &fmt)
                                .map(|(t, _)| t)
                                .ok()
                                .or_else(|| {
                                    chrono::NaiveDate::parse_and_remainder(v, &fmt)
                                        .ok()
                                        .and_then(|(d, _)| d.and_hms_opt(0, 0, 0))
                                }),
                            (None, false) => chrono::NaiveDateTime::parse_from_str(v, &fmt)
                                .ok()
                                .or_else(|| {
                                    chrono::NaiveDate::parse_from_str(v, &fmt)
                                        .ok()
                                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                                }),
                        }?;
                        use chrono::{Offset as _, TimeZone as _};
                        // A time the clocks show twice: its earlier instant, as
                        // `LocalDateTime.atZone` takes it, or for SimpleDateFormat's reading
                        // (`prefix`) the later, in standard time, as its calendar does.
                        let zoned = local.and_local_timezone(tz);
                        let instant = match self.prefix {
                            true => zoned.latest(),
                            false => zoned.earliest(),
                        };
                        match instant {
                            Some(t) => at(t.to_utc()),
                            // In a gap (clocks moved forward), Java moves the time later by
                            // the gap's length: the instant of the offset before the gap.
                            None => {
                                let before = local - chrono::Duration::hours(6);
                                let offset = tz.offset_from_local_datetime(&before).earliest()?;
                                let secs = offset.fix().local_minus_utc() as i64;
                                at(local.and_utc() - chrono::Duration::seconds(secs))
                            }
                        }
                    })
                    .collect()
            }
            t if t.is_numeric() => {
                let precision = match args.args.get(1) {
                    None => 3,
                    Some(ColumnarValue::Scalar(p)) if p.is_null() => return null(),
                    Some(ColumnarValue::Scalar(p)) => ltz_precision(p)?,
                    Some(_) => {
                        return datafusion::common::plan_err!(
                            "TO_TIMESTAMP_LTZ(numeric, precision) takes a constant precision, 0 to 9"
                        );
                    }
                };
                // The value is in 10^-precision seconds; the result's unit is at least as
                // fine (3 digits up to precision 3, else 6 or 9).
                let factor = 10i64.pow(unit_digits.saturating_sub(precision));
                if t.is_integer() {
                    cast(&values, &DataType::Int64)?
                        .as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.and_then(|v| v.checked_mul(factor)))
                        .collect()
                } else if let DataType::Decimal128(_, scale) = t {
                    // Exactly, as Flink's `BigDecimal` path: cut toward zero at the unit.
                    let scale = i32::from(*scale);
                    values
                        .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                        .iter()
                        .map(|v| {
                            let v = v?.checked_mul(i128::from(factor))?;
                            let v = match scale {
                                s if s >= 0 => v / 10i128.checked_pow(s as u32)?,
                                s => v.checked_mul(10i128.checked_pow(s.unsigned_abs())?)?,
                            };
                            i64::try_from(v).ok()
                        })
                        .collect()
                } else {
                    cast(&values, &DataType::Float64)?
                        .as_primitive::<Float64Type>()
                        .iter()
                        .map(|v| {
                            let v = (v? * factor as f64).trunc();
                            // Past i64's range (or NaN) there is no instant: NULL.
                            (v.is_finite() && v.abs() < 9.2e18).then_some(v as i64)
                        })
                        .collect()
                }
            }
            DataType::Null => Int64Array::new_null(n),
            other => {
                return datafusion::common::plan_err!(
                    "TO_TIMESTAMP_LTZ takes an epoch value (a number) or a string, not {other}"
                );
            }
        };
        // Past Flink's range, years 0000 to 9999 (DateTimeUtils' MIN_EPOCH_SECONDS and
        // MAX_EPOCH_SECONDS), the value is NULL, as in Flink.
        let scale = 10i128.pow(unit_digits);
        let (low, high) = (-62_167_219_200 * scale, 253_402_300_800 * scale);
        let out: Int64Array = out
            .iter()
            .map(|v| v.filter(|v| (low..high).contains(&i128::from(*v))))
            .collect();
        shaped(cast(&out, &out_type)?, scalar)
    }
}

/// The precision of `TO_TIMESTAMP_LTZ(numeric, precision)`: 0 to 9 (Flink 2.3), or an
/// error naming the value.
fn ltz_precision(p: &ScalarValue) -> datafusion::error::Result<u32> {
    match p.cast_to(&DataType::Int64)? {
        ScalarValue::Int64(Some(p)) if (0..=9).contains(&p) => Ok(p as u32),
        other => datafusion::common::plan_err!(
            "TO_TIMESTAMP_LTZ(numeric, precision): precision {other} is not supported; write 0 to 9 (0 epoch seconds, 3 milliseconds, 6 microseconds, 9 nanoseconds)"
        ),
    }
}

/// The digits of fraction a Java date pattern reads: its longest run of `S` outside quotes,
/// and at least 3 (Flink's `TO_TIMESTAMP_LTZ` types a shorter one as `TIMESTAMP_LTZ(3)`).
fn fraction_digits(pattern: &str) -> u32 {
    let longest = fraction_runs(pattern).into_iter().max().unwrap_or(0);
    (longest as u32).clamp(3, 9)
}

/// `strftime`, the chrono pattern [`java_to_strftime`] made of the Java pattern `java`,
/// with each run of `S` (each a `%3f` there) read as the Java pattern reads it: `SSSSSS` and
/// `SSSSSSSSS` as six and nine digits, and a run of another length after a `.` as the
/// digits that follow it (chrono's `%.f`), so `ss.S` and `ss.SSSS` parse.
fn fraction_for_parsing(java: &str, strftime: &str) -> String {
    if java.contains('%') {
        return strftime.to_string();
    }
    let mut out = String::new();
    let mut rest = strftime;
    let mut runs = fraction_runs(java).into_iter();
    while let Some(at) = rest.find("%3f") {
        let (head, tail) = rest.split_at(at);
        let spec = match runs.next() {
            Some(6) => "%6f",
            Some(9) => "%9f",
            Some(3) | None => "%3f",
            Some(_) if head.ends_with('.') => {
                out.push_str(&head[..head.len() - 1]);
                out.push_str("%.f");
                rest = &tail[3..];
                continue;
            }
            Some(_) => "%3f",
        };
        out.push_str(head);
        out.push_str(spec);
        rest = &tail[3..];
    }
    out.push_str(rest);
    out
}

/// Marks where a fraction written with nine digits is cut to fewer (see
/// [`fraction_for_formatting`]): this character, then the digits to keep (1 to 8).
const CUT_MARK: char = '\u{E000}';

/// `strftime`, the chrono pattern [`java_to_strftime`] made of the Java pattern `java`,
/// with each run of n `S` (each a `%3f` there) written with n digits, as Java writes it:
/// `%6f` and `%9f` for six and nine, and for other lengths but three nine digits followed by
/// [`CUT_MARK`] and n, which [`cut_fractions`] cuts to n.
fn fraction_for_formatting(java: &str, strftime: &str) -> String {
    if java.contains('%') {
        return strftime.to_string();
    }
    // A pattern holding the mark itself writes six or nine digits instead of cutting.
    let marks = !java.contains(CUT_MARK);
    let mut runs = fraction_runs(java).into_iter();
    let mut out = String::new();
    let mut rest = strftime;
    while let Some(at) = rest.find("%3f") {
        out.push_str(&rest[..at]);
        match runs.next() {
            Some(6) => out.push_str("%6f"),
            Some(9) => out.push_str("%9f"),
            Some(n @ (1 | 2 | 4 | 5 | 7 | 8)) if marks => {
                out.push_str("%9f");
                out.push(CUT_MARK);
                out.push(char::from(b'0' + n as u8));
            }
            Some(4 | 5) => out.push_str("%6f"),
            Some(7 | 8) => out.push_str("%9f"),
            _ => out.push_str("%3f"),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out
}

/// Cuts each nine-digit fraction that a [`CUT_MARK`] follows to the digits the mark names,
/// and drops the mark.
fn cut_fractions(text: &mut String) {
    while let Some(at) = text.find(CUT_MARK) {
        let mark_end = at + CUT_MARK.len_utf8();
        let keep = text
            .get(mark_end..)
            .and_then(|r| r.chars().next())
            .and_then(|c| c.to_digit(10));
        let nine = at.checked_sub(9).filter(|&start| {
            text.get(start..at)
                .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
        });
        match (keep, nine) {
            // The nine digits before the mark, cut to `keep`, and the mark and its digit.
            (Some(keep), Some(start)) => {
                text.replace_range(start + (keep as usize).min(9)..mark_end + 1, "")
            }
            // Not one of ours (never so: the pattern has no mark); the mark goes alone.
            _ => text.replace_range(at..mark_end, ""),
        }
    }
}

/// The lengths of the runs of `S` outside quotes in a Java pattern, in order.
fn fraction_runs(java: &str) -> Vec<usize> {
    let (mut runs, mut run, mut quoted) = (Vec::new(), 0usize, false);
    for c in java.chars().chain(std::iter::once(' ')) {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == 'S' && !quoted {
            run += 1;
        } else if run > 0 {
            runs.push(run);
            run = 0;
        }
    }
    runs
}

/// Arrow's unit for a `TIMESTAMP_LTZ(precision)`: the next of milliseconds, microseconds
/// and nanoseconds.
fn unit_of(precision: u32) -> TimeUnit {
    match precision {
        0..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

/// An instant (`secs` since the epoch and `nanos` past it) in units of 10^-`unit_digits`
/// seconds, its fraction cut to `keep` digits; `None` past i64's range.
fn in_unit(secs: i64, nanos: u32, unit_digits: u32, keep: u32) -> Option<i64> {
    let nanos = i64::from(nanos);
    let kept = nanos - nanos % 10i64.pow(9 - keep.min(9));
    secs.checked_mul(10i64.pow(unit_digits))?
        .checked_add(kept / 10i64.pow(9 - unit_digits))
}

/// `weir_cut_fraction(ts, p)`: a timestamp's fraction cut to `p` digits, for a `CAST` to a
/// `TIMESTAMP(p)` or `TIMESTAMP_LTZ(p)` whose precision Arrow has no unit for (1, 2, 4, 5,
/// 7, 8; see `super::rewrite`), and a time's for a `CAST` to `TIME(p)` (a time of day is
/// never negative, so both cuts agree). As Flink's `DateTimeUtils.truncate`, which its timestamp
/// casts call: up to 3 digits the epoch milliseconds lose their last `3 - p` digits (toward
/// zero, Java's division), past 3 the nanoseconds of the millisecond lose theirs (toward the
/// past). The type is the argument's (held at Arrow's next unit). With a third argument
/// `true`, every cut is toward the past: a narrowing cast from microseconds or nanoseconds,
/// whose milliseconds Flink's `TimestampData` holds floored (Arrow's cast divides toward
/// zero, so -1 µs would become 0 ms, 1970-01-01 00:00:00.000, instead of 23:59:59.999).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CutFraction {
    signature: Signature,
}

impl CutFraction {
    /// The function's name, as `super::rewrite` calls it.
    pub const NAME: &'static str = "weir_cut_fraction";

    /// The function, to register with a DataFusion context.
    pub fn udf() -> ScalarUDF {
        use datafusion::logical_expr::TypeSignature::Any;
        ScalarUDF::from(CutFraction {
            signature: Signature::one_of(vec![Any(2), Any(3)], Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for CutFraction {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args.first() {
            Some(t @ (DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_))) => {
                Ok(t.clone())
            }
            Some(DataType::Null) => Ok(DataType::Null),
            other => datafusion::common::plan_err!(
                "{} takes a timestamp or a time, not {other:?}",
                Self::NAME
            ),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, Int64Array};
        use datafusion::arrow::compute::cast;
        use datafusion::arrow::datatypes::Int64Type;
        let scalar = all_scalar(&args);
        let values = args.args[0].to_array(args.number_rows)?;
        let (DataType::Timestamp(unit, _) | DataType::Time32(unit) | DataType::Time64(unit)) =
            values.data_type().clone()
        else {
            return Ok(args.args[0].clone());
        };
        let digits = crate::sql::types::unit_digits(&unit);
        let p = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(p))) => (*p).clamp(0, 9) as u32,
            _ => return datafusion::common::plan_err!("{} takes a literal precision", Self::NAME),
        };
        if p >= digits {
            return Ok(args.args[0].clone());
        }
        let floor = matches!(
            args.args.get(2),
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
        );
        let factor = 10i64.pow(digits - p);
        let ints = cast(&values, &DataType::Int64)?;
        let out: Int64Array = ints
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| {
                v.map(|v| match p <= 3 && !floor {
                    true => v / factor * factor,
                    false => v.div_euclid(factor) * factor,
                })
            })
            .collect();
        shaped(cast(&out, values.data_type())?, scalar)
    }
}

/// `TO_TIMESTAMP(string[, format])` as Flink's `DateTimeUtils.parseTimestampData` reads it,
/// into a `TIMESTAMP(3)` (milliseconds, no zone): the wall clock as written.
///
/// - Without a format, `yyyy-M-d` or `yyyy-M-d H:m:s[.fffffffff]` (one or two digits for
///   month, day and time fields; Flink's `DEFAULT_TIMESTAMP_FORMATTER`) — a `T` between date
///   and time, or a zone offset after it, does not match.
/// - With one, the Java pattern; an offset it reads (`X`, `Z`) is left out: the time is the
///   wall clock written. When the pattern does not match, Flink's fallback: the trimmed
///   string as `java.sql.Timestamp.valueOf` (`yyyy-M-d HH:mm:ss[.f]`) or, without a space,
///   `java.sql.Date.valueOf` (`yyyy-M-d`, at midnight).
///
/// A string that matches neither is NULL. Fractions past milliseconds are cut (Flink's
/// precision 3, FLINK-14925). Errors: a format that is not a constant string.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToTimestamp {
    signature: Signature,
}

impl ToTimestamp {
    /// The function, to register with a DataFusion context.
    pub fn udf() -> ScalarUDF {
        use datafusion::logical_expr::TypeSignature::Any;
        ScalarUDF::from(ToTimestamp {
            signature: Signature::one_of(vec![Any(1), Any(2)], Volatility::Immutable),
        })
    }
}

/// `yyyy-M-d[ H:m:s[.f]]` (`with_time` false: the date alone), as a date and time.
fn flink_default_timestamp(s: &str, with_time: bool) -> Option<chrono::NaiveDateTime> {
    static DATE: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^(\d{4})-(\d{1,2})-(\d{1,2})(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{0,9}))?)?$",
        )
        .ok()
    });
    let c = DATE.as_ref()?.captures(s)?;
    if !with_time && c.get(4).is_some() {
        return None;
    }
    let n = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
    let date = chrono::NaiveDate::from_ymd_opt(c.get(1)?.as_str().parse().ok()?, n(2)?, n(3)?)?;
    let millis = c.get(7).map_or(0, |f| {
        let digits: String = f
            .as_str()
            .chars()
            .chain(std::iter::repeat('0'))
            .take(3)
            .collect();
        digits.parse::<u32>().unwrap_or(0)
    });
    date.and_hms_milli_opt(
        n(4).unwrap_or(0),
        n(5).unwrap_or(0),
        n(6).unwrap_or(0),
        millis,
    )
}

/// `s` read with the strftime pattern `fmt` (from a Java one) as the wall clock it writes,
/// the fields it lacks taken as Flink's `fromTemporalAccessor` does (a date without a time
/// at midnight, a time without a date on 1970-01-01).
fn wall_clock(s: &str, fmt: &str) -> Option<chrono::NaiveDateTime> {
    if fmt.contains("%z")
        && let Ok(t) = chrono::DateTime::parse_from_str(s, fmt)
    {
        return Some(t.naive_local());
    }
    chrono::NaiveDateTime::parse_from_str(s, fmt)
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, fmt)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .or_else(|| {
            let t = chrono::NaiveTime::parse_from_str(s, fmt).ok()?;
            Some(chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?.and_time(t))
        })
}

impl ScalarUDFImpl for ToTimestamp {
    fn name(&self) -> &str {
        "weir_to_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, TimestampMillisecondArray};
        use datafusion::arrow::compute::cast;
        let n = args.number_rows;
        let scalar = all_scalar(&args);
        let format = match args.args.get(1) {
            Some(f) => match const_string(f, "format")? {
                Some(f) => Some(java_to_strftime(&f)),
                None => {
                    return Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
                        None, None,
                    )));
                }
            },
            None => None,
        };
        let values = cast(&args.args[0].to_array(n)?, &DataType::Utf8)?;
        let out: TimestampMillisecondArray = values
            .as_string::<i32>()
            .iter()
            .map(|v| {
                let v = v?;
                let t = match &format {
                    None => flink_default_timestamp(v, true),
                    Some(fmt) => wall_clock(v, fmt).or_else(|| {
                        let v = v.trim();
                        flink_default_timestamp(v, v.contains(' '))
                    }),
                }?;
                Some(t.and_utc().timestamp_millis())
            })
            .collect();
        shaped(std::sync::Arc::new(out), scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::java_to_strftime;

    #[test]
    fn lenient_reading_rolls_fields_over_as_javas_calendar() {
        use super::LenientPattern;
        let t = |text: &str, p: &str| {
            LenientPattern::new(p)
                .and_then(|l| l.parse(text))
                .map(|t| t.to_string())
        };
        assert_eq!(
            t("2024-13-01", "yyyy-MM-dd"),
            Some("2025-01-01 00:00:00".into())
        );
        assert_eq!(
            t("2024-00-10", "yyyy-MM-dd"),
            Some("2023-12-10 00:00:00".into())
        );
        assert_eq!(
            t("2024-03-00", "yyyy-MM-dd"),
            Some("2024-02-29 00:00:00".into())
        );
        assert_eq!(
            t("2024-01-01 23:59:60", "yyyy-MM-dd HH:mm:ss"),
            Some("2024-01-02 00:00:00".into())
        );
        assert_eq!(t("2024060", "yyyyDDD"), Some("2024-02-29 00:00:00".into()));
        // `k` 24 is the same day's midnight, `h` 12 the morning's; `K` 13 the afternoon.
        assert_eq!(
            t("2024-01-01 24", "yyyy-MM-dd kk"),
            Some("2024-01-01 00:00:00".into())
        );
        assert_eq!(
            t("2024-01-01 12", "yyyy-MM-dd hh"),
            Some("2024-01-01 00:00:00".into())
        );
        assert_eq!(
            t("2024-01-01 13", "yyyy-MM-dd KK"),
            Some("2024-01-01 13:00:00".into())
        );
        assert_eq!(t("2024'1", "yyyy''M"), Some("2024-01-01 00:00:00".into()));
        assert_eq!(t("2024T2", "yyyy'T'M"), Some("2024-02-01 00:00:00".into()));
        // Fields that are not numbers, a two-digit year, text that does not match: None.
        assert_eq!(t("2024-Jan-01", "yyyy-MMM-dd"), None);
        assert_eq!(t("24-01-01", "yy-MM-dd"), None);
        assert_eq!(t("2024/01", "yyyy-MM"), None);
        assert_eq!(t("2024-", "yyyy-MM"), None);
        assert_eq!(t("99999-01-01", "yyyy-MM-dd"), None);
    }

    #[test]
    fn java_patterns() {
        assert_eq!(java_to_strftime("yyyy-MM-dd"), "%Y-%m-%d");
        assert_eq!(java_to_strftime("HH"), "%H");
        assert_eq!(
            java_to_strftime("yyyy-MM-dd'T'HH:mm:ss.SSS"),
            "%Y-%m-%dT%H:%M:%S.%3f"
        );
        assert_eq!(java_to_strftime("%Y"), "%Y");
        // `u` is the year too.
        assert_eq!(java_to_strftime("uuuuMMdd"), "%Y%m%d");
    }
}

/// `TYPEOF(input)` / `TYPEOF(input, force_serializable)` (Flink's conversion functions):
/// the input's type as a string — the summary form (`INT NOT NULL`, `STRING`,
/// `TIMESTAMP_LTZ(3)`, `ARRAY<BIGINT>`), or with `force_serializable` TRUE the full form a
/// catalog stores (`VARCHAR(2147483647)`, `TIMESTAMP(3) WITH LOCAL TIME ZONE`). `NOT NULL`
/// follows the expression's nullability as the planner knows it. A string literal is a
/// `STRING` here (Flink types it `CHAR(n)`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TypeOf {
    signature: Signature,
}

impl TypeOf {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(TypeOf {
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }
}

/// A type as Flink writes it: [`crate::sql::types::flink_type_name`]'s summary, or the
/// serializable form; nested types name their elements' and fields' nullability too.
fn flink_type_string(dt: &DataType, nullable: bool, serializable: bool) -> String {
    let base = match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if serializable => {
            "VARCHAR(2147483647)".to_string()
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView if serializable => {
            "VARBINARY(2147483647)".to_string()
        }
        DataType::Timestamp(_, Some(_)) if serializable => {
            let p = match crate::sql::types::flink_type_name(dt).as_str() {
                "TIMESTAMP_LTZ(0)" => 0,
                "TIMESTAMP_LTZ(6)" => 6,
                "TIMESTAMP_LTZ(9)" => 9,
                _ => 3,
            };
            format!("TIMESTAMP({p}) WITH LOCAL TIME ZONE")
        }
        DataType::List(f) | DataType::LargeList(f) => format!(
            "ARRAY<{}>",
            flink_type_string(f.data_type(), f.is_nullable(), serializable)
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "MAP<{}, {}>",
                // Arrow's map keys are never NULL; Flink's MAP<K, V> keys are nullable.
                flink_type_string(kv[0].data_type(), true, serializable),
                flink_type_string(kv[1].data_type(), kv[1].is_nullable(), serializable)
            ),
            _ => crate::sql::types::flink_type_name(dt),
        },
        DataType::Struct(fields) => format!(
            "ROW<{}>",
            fields
                .iter()
                .map(|f| format!(
                    "`{}` {}",
                    f.name(),
                    flink_type_string(f.data_type(), f.is_nullable(), serializable)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Null => return "NULL".to_string(),
        other => crate::sql::types::flink_type_name(other),
    };
    if nullable {
        base
    } else {
        format!("{base} NOT NULL")
    }
}

/// The result field's metadata key under which [`TypeOf`] notes the type of a literal
/// argument whose Arrow type does not tell it (a string literal is a `CHAR(n)`).
const LITERAL_TYPE: &str = "weir.typeof.literal";

impl ScalarUDFImpl for TypeOf {
    fn name(&self) -> &str {
        "typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    /// Checks the call at planning: one expression, then at most a BOOLEAN literal.
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> datafusion::error::Result<datafusion::arrow::datatypes::FieldRef> {
        let usage = || {
            datafusion::error::DataFusionError::Plan(
                "TYPEOF takes an expression and, optionally, force_serializable: a BOOLEAN literal (TYPEOF(x) or TYPEOF(x, TRUE))".into(),
            )
        };
        match args.scalar_arguments {
            [_] => {}
            [_, Some(ScalarValue::Boolean(_))] => {}
            _ => return Err(usage()),
        }
        let field = datafusion::arrow::datatypes::Field::new(self.name(), DataType::Utf8, false);
        // A string literal is a CHAR of its length in Flink (Calcite types 'abc' CHAR(3)),
        // which the value alone no longer shows: noted on the result's field.
        let field = match args.scalar_arguments.first() {
            Some(Some(
                ScalarValue::Utf8(Some(text))
                | ScalarValue::LargeUtf8(Some(text))
                | ScalarValue::Utf8View(Some(text)),
            )) => field.with_metadata(std::collections::HashMap::from([(
                LITERAL_TYPE.to_string(),
                format!("CHAR({}) NOT NULL", text.chars().count()),
            )])),
            _ => field,
        };
        Ok(std::sync::Arc::new(field))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let serializable = match args.args.get(1) {
            None => false,
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(b))) => b.unwrap_or(false),
            Some(_) => {
                return Err(datafusion::error::DataFusionError::Plan(
                    "TYPEOF's force_serializable must be a BOOLEAN literal".into(),
                ));
            }
        };
        if let Some(t) = args.return_field.metadata().get(LITERAL_TYPE) {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(t.clone()))));
        }
        let field = args.arg_fields.first().ok_or_else(|| {
            datafusion::error::DataFusionError::Plan("TYPEOF takes an expression".into())
        })?;
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            flink_type_string(field.data_type(), field.is_nullable(), serializable),
        ))))
    }
}

/// `CARDINALITY(array)` / `CARDINALITY(map)` as Flink counts: an array's elements (of an
/// array of arrays, the outer ones — DataFusion's counts every nested element), a map's
/// entries; NULL for NULL. Registered under DataFusion's name, in its place.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Cardinality {
    signature: Signature,
}

impl Cardinality {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(Cardinality {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for Cardinality {
    fn name(&self) -> &str {
        "cardinality"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args.first() {
            Some(DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..))
            | Some(DataType::Map(..))
            | Some(DataType::Null) => Ok(DataType::Int32),
            Some(other) => Err(datafusion::error::DataFusionError::Plan(format!(
                "CARDINALITY takes an ARRAY or a MAP, not {}",
                crate::sql::types::flink_type_name(other)
            ))),
            None => Err(datafusion::error::DataFusionError::Plan(
                "CARDINALITY takes an ARRAY or a MAP".into(),
            )),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, Int32Array};
        let scalar = all_scalar(&args);
        let a = args.args[0].to_array(args.number_rows)?;
        let out: Int32Array = match a.data_type() {
            DataType::List(_) => {
                let l = a.as_list::<i32>();
                (0..l.len())
                    .map(|i| l.is_valid(i).then(|| l.value_length(i)))
                    .collect()
            }
            DataType::LargeList(_) => {
                let l = a.as_list::<i64>();
                (0..l.len())
                    .map(|i| l.is_valid(i).then(|| l.value_length(i) as i32))
                    .collect()
            }
            DataType::FixedSizeList(_, n) => {
                let l = a.as_fixed_size_list();
                (0..l.len()).map(|i| l.is_valid(i).then_some(*n)).collect()
            }
            DataType::Map(..) => {
                let m = a.as_map();
                let o = m.value_offsets();
                (0..m.len())
                    .map(|i| m.is_valid(i).then(|| o[i + 1] - o[i]))
                    .collect()
            }
            _ => (0..a.len()).map(|_| None).collect(),
        };
        shaped(std::sync::Arc::new(out), scalar)
    }
}

/// `SUBSTRING(s FROM pos [FOR len])`, `SUBSTRING(s, pos[, len])`, `SUBSTR(s, pos[, len])`
/// by Flink's rule (`BinaryStringDataUtil.substringSQL`, which its code generator calls
/// for both names): `len` characters (or all to the end) from character `pos`, counted from
/// 1; a `pos` of 0 is taken as 1 and a negative one counts from the end (-3: the third
/// character from the end). The empty string when `pos` lies past either end; NULL for a
/// negative `len` or a NULL argument. `s` is cast to a string; the result has its string
/// type. The SQL parser reads both names as its own syntax, which `sql::rewrite` turns
/// into a call of [`Substring::NAME`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Substring {
    signature: Signature,
}

impl Substring {
    pub const NAME: &str = "weir_substring";

    pub fn udf() -> ScalarUDF {
        use datafusion::logical_expr::TypeSignature;
        ScalarUDF::from(Substring {
            signature: Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Immutable,
            ),
        })
    }
}

/// Flink's `substringSQL(s, pos, len)` (see [`Substring`]); `len` None: to the end.
/// None for a negative `len`.
pub(crate) fn flink_substring(s: &str, pos: i64, len: Option<i64>) -> Option<&str> {
    let len = match len {
        Some(l) if l < 0 => return None,
        Some(l) => l,
        None => i64::MAX,
    };
    let chars = s.chars().count() as i64;
    let start = match pos {
        p if p > 0 => p - 1,
        p if p < 0 => chars + p,
        _ => 0,
    };
    if start < 0 || start >= chars {
        return Some("");
    }
    let end = if chars - start < len {
        chars
    } else {
        start + len
    };
    let at = |c: i64| s.char_indices().nth(c as usize).map_or(s.len(), |(i, _)| i);
    Some(&s[at(start)..at(end)])
}

impl ScalarUDFImpl for Substring {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(match args.first() {
            Some(t @ (DataType::Utf8View | DataType::LargeUtf8)) => t.clone(),
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, StringArray};
        use datafusion::arrow::datatypes::Int64Type;
        let scalar = all_scalar(&args);
        let s = arg_as(&args, 0, &DataType::Utf8)?;
        let pos = arg_as(&args, 1, &DataType::Int64)?;
        let len = match args.args.len() {
            3 => Some(arg_as(&args, 2, &DataType::Int64)?),
            _ => None,
        };
        let (s, pos) = (s.as_string::<i32>(), pos.as_primitive::<Int64Type>());
        let len = len.as_ref().map(|l| l.as_primitive::<Int64Type>());
        let out: StringArray = (0..s.len())
            .map(|i| {
                if s.is_null(i) || pos.is_null(i) || len.is_some_and(|l| l.is_null(i)) {
                    return None;
                }
                flink_substring(s.value(i), pos.value(i), len.map(|l| l.value(i)))
            })
            .collect();
        let out = datafusion::arrow::compute::cast(&out, &args.return_field.data_type().clone())?;
        shaped(out, scalar)
    }
}

/// A DOUBLE or FLOAT as Flink's `CAST(… AS STRING)` writes it, Java's `Double.toString`
/// (`Float.toString`): see [`crate::format::json_out::java_float_text`]. Put in place of
/// such casts by [`crate::sql::types::JavaFloatCasts`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FloatText {
    signature: Signature,
}

impl FloatText {
    pub const NAME: &str = "weir_float_text";

    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(FloatText {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for FloatText {
    fn name(&self) -> &str {
        Self::NAME
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
        use datafusion::arrow::array::{AsArray, StringArray};
        use datafusion::arrow::datatypes::Float64Type;
        let scalar = all_scalar(&args);
        let single = matches!(args.arg_fields[0].data_type(), DataType::Float32);
        let v = arg_as(&args, 0, &DataType::Float64)?;
        let out: StringArray = v
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| crate::format::json_out::java_float_text(v, single)))
            .collect();
        shaped(std::sync::Arc::new(out), scalar)
    }
}

/// A number cast to a narrower integer type as Flink's cast rules do it, with Java's
/// primitive casts (`NumericPrimitiveCastRule`: `(int) x`; `DecimalToNumericPrimitiveCastRule`:
/// the decimal truncated toward zero, its low 64 bits, then narrowed): an integer keeps its
/// low bits (`CAST(3000000000 AS INT)` is -1294967296, `CAST(300 AS TINYINT)` 44), a
/// DOUBLE or FLOAT is cut toward zero and held at the range of an INT or BIGINT (NaN is 0;
/// a TINYINT or SMALLINT takes the INT's low bits, as Java's `(byte) d` does). Put in
/// place of such casts by [`crate::sql::types::JavaNumericCasts`]; DataFusion's cast fails
/// where the value does not fit.
///
/// A string is read as Flink's `BinaryStringDataUtil.toInt`/`toLong` read it (its
/// `StringToNumericPrimitiveCastRule`): spaces around it ignored, an optional sign, digits,
/// and an optional point followed by digits that are dropped (`CAST('1.9' AS INT)` is 1,
/// `CAST(' -7 ' AS BIGINT)` -7); a string that is not such a number, or is out of the
/// type's range, fails the query (`CAST`) or gives NULL (`TRY_CAST`, `safe`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JavaNarrow {
    signature: Signature,
    to: DataType,
    safe: bool,
    name: String,
}

impl JavaNarrow {
    /// The cast to `to` (TINYINT, SMALLINT, INT or BIGINT); `safe` for `TRY_CAST`.
    pub fn udf(to: DataType, safe: bool) -> ScalarUDF {
        ScalarUDF::from(JavaNarrow {
            signature: Signature::any(1, Volatility::Immutable),
            name: format!(
                "weir_java_{}cast_{}",
                if safe { "try_" } else { "" },
                to.to_string().to_lowercase()
            ),
            to,
            safe,
        })
    }
}

/// `s` as Flink's `BinaryStringDataUtil.toLong` reads it, after trimming spaces: an optional
/// sign, decimal digits, optionally `.` and more digits (dropped; either side of the point may
/// be empty); None when it is not such a
/// number or lies outside `[min, max]`.
fn java_parse_integral(s: &str, min: i64, max: i64) -> Option<i64> {
    let s = s.trim_matches(' ');
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    // As Flink: "" and a lone sign are no number, "." and "-." are 0.
    if whole.is_empty() && fraction.is_none() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.unwrap_or("").bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // Accumulated negative, as Flink does, so that the minimum itself is reachable.
    let mut v: i64 = 0;
    for b in whole.bytes() {
        v = v.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    let v = if negative { v } else { v.checked_neg()? };
    (min..=max).contains(&v).then_some(v)
}

/// `v` as a Java `long` would be cast to `to` (`(int) v`, `(short) v`, `(byte) v`).
fn narrow_long(v: i64, to: &DataType) -> i64 {
    match to {
        DataType::Int32 => v as i32 as i64,
        DataType::Int16 => v as i16 as i64,
        DataType::Int8 => v as i8 as i64,
        _ => v,
    }
}

impl ScalarUDFImpl for JavaNarrow {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(self.to.clone())
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, Int64Array};
        use datafusion::arrow::datatypes::{Decimal128Type, Float64Type, Int64Type};
        let scalar = all_scalar(&args);
        let a = args.args[0].to_array(args.number_rows)?;
        let to = &self.to;
        let longs: Int64Array = match a.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let (min, max) = match to {
                    DataType::Int8 => (i64::from(i8::MIN), i64::from(i8::MAX)),
                    DataType::Int16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
                    DataType::Int32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                let texts = datafusion::arrow::compute::cast(&a, &DataType::Utf8)?;
                let mut out = datafusion::arrow::array::Int64Builder::with_capacity(a.len());
                for t in texts.as_string::<i32>().iter() {
                    match t.map(|t| (t, java_parse_integral(t, min, max))) {
                        None => out.append_null(),
                        Some((_, Some(v))) => out.append_value(v),
                        Some((_, None)) if self.safe => out.append_null(),
                        Some((t, None)) => {
                            return Err(datafusion::error::DataFusionError::Execution(format!(
                                "Cast error: cannot cast string '{t}' to {}: not an integer \
                                 in its range (use TRY_CAST for NULL instead)",
                                crate::sql::types::flink_type_name(to)
                            )));
                        }
                    }
                }
                out.finish()
            }
            DataType::Float64 | DataType::Float32 => {
                let d = datafusion::arrow::compute::cast(&a, &DataType::Float64)?;
                d.as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| {
                        // Java's d2l, or d2i and then the narrowing of the int.
                        v.map(|v| match to {
                            DataType::Int64 => v as i64,
                            _ => narrow_long(v as i32 as i64, to),
                        })
                    })
                    .collect()
            }
            DataType::Decimal128(_, scale) => {
                let div = 10i128
                    .checked_pow(u32::from(scale.unsigned_abs()))
                    .unwrap_or(1);
                let neg = *scale < 0;
                a.as_primitive::<Decimal128Type>()
                    .iter()
                    .map(|v| {
                        v.map(|v| {
                            let whole = if neg { v.wrapping_mul(div) } else { v / div };
                            narrow_long(whole as i64, to)
                        })
                    })
                    .collect()
            }
            _ => {
                let l = datafusion::arrow::compute::cast(&a, &DataType::Int64)?;
                l.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.map(|v| narrow_long(v, to)))
                    .collect()
            }
        };
        shaped(datafusion::arrow::compute::cast(&longs, to)?, scalar)
    }
}

/// A string read as Flink's `CAST(s AS TIMESTAMP(p))` or `CAST(s AS DATE)` reads it. A
/// TIMESTAMP: its `DateTimeUtils.DEFAULT_TIMESTAMP_FORMATTER`, `yyyy-[MM][M]-[dd][d]`
/// optionally followed by ` [HH][H]:[mm][m]:[ss][s]` and a fraction of up to 9 digits — so a
/// one-digit month, day, hour, minute or second is read (`'2020-1-5 1:2:3'`); strings Arrow's
/// cast reads (`2020-01-05T10:00:00`) are read as it reads them. A DATE: by
/// `DateTimeUtils.parseDate` ([`flink_date`]: `'2024'` is 2024-01-01). Any other string
/// fails the query (`CAST`) or is NULL (`TRY_CAST`, `safe`, and `TO_DATE(string)`). Put in
/// place of such casts by [`crate::sql::types::JavaNumericCasts`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkTimeCast {
    signature: Signature,
    to: DataType,
    safe: bool,
    name: String,
}

impl FlinkTimeCast {
    /// The cast to `to` (a TIMESTAMP without a zone, or DATE); `safe` for `TRY_CAST`.
    pub fn udf(to: DataType, safe: bool) -> ScalarUDF {
        ScalarUDF::from(FlinkTimeCast {
            signature: Signature::any(1, Volatility::Immutable),
            name: format!(
                "weir_flink_{}cast_{}",
                if safe { "try_" } else { "" },
                crate::sql::types::flink_type_name(&to).to_lowercase()
            ),
            to,
            safe,
        })
    }
}

/// `s` read as a date by Flink's `DateTimeUtils.parseDate` (which `CAST(s AS DATE)` and
/// `TO_DATE(s)` call): the text before its first space (when that is not the first
/// character), then a year, `year-month` or `year-month-day` of ASCII digits, each part
/// trimmed as Java's `String.trim` does (`'2024'` is 2024-01-01, `'2024-3'` 2024-03-01,
/// `'2024-03-05 10:00'` 2024-03-05); None for anything else, a year outside 0 to 9999 or a
/// day the month lacks.
pub(crate) fn flink_date(s: &str) -> Option<chrono::NaiveDate> {
    let s = match s.find(' ') {
        Some(i) if i > 0 => &s[..i],
        _ => s,
    };
    let int = |x: &str| -> Option<u32> {
        let x = x.trim_matches(|c: char| c <= ' ');
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        x.parse().ok()
    };
    let (y, m, d) = match s.split_once('-') {
        None => (int(s)?, 1, 1),
        Some((y, rest)) => match rest.split_once('-') {
            None => (int(y)?, int(rest)?, 1),
            Some((m, d)) => (int(y)?, int(m)?, int(d)?),
        },
    };
    if y > 9999 {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)
}

/// `s` by Flink's `DEFAULT_TIMESTAMP_FORMATTER` (see [`FlinkTimeCast`]); None when it does
/// not match or names no real date or time.
pub(crate) fn flink_timestamp(s: &str) -> Option<chrono::NaiveDateTime> {
    fn digits(s: &str, min: usize, max: usize) -> Option<(u32, &str)> {
        let n = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
        if n < min {
            return None;
        }
        Some((s[..n].parse().ok()?, &s[n..]))
    }
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if !(4..=9).contains(&n) {
        return None;
    }
    let year: i32 = s[..n].parse().ok()?;
    let rest = s[n..].strip_prefix('-')?;
    let (month, rest) = digits(rest, 1, 2)?;
    let rest = rest.strip_prefix('-')?;
    let (day, rest) = digits(rest, 1, 2)?;
    let date = chrono::NaiveDate::from_ymd_opt(year, month, day)?;
    if rest.is_empty() {
        return date.and_hms_opt(0, 0, 0);
    }
    let rest = rest.strip_prefix(' ')?;
    let (h, rest) = digits(rest, 1, 2)?;
    let (m, rest) = digits(rest.strip_prefix(':')?, 1, 2)?;
    let (sec, rest) = digits(rest.strip_prefix(':')?, 1, 2)?;
    let nanos = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        None => return None,
        Some(f) => {
            if f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let padded = format!("{f:0<9}");
            padded.parse::<u32>().ok()?
        }
    };
    date.and_hms_nano_opt(h, m, sec, nanos)
}

impl ScalarUDFImpl for FlinkTimeCast {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(self.to.clone())
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray};
        let scalar = all_scalar(&args);
        let a = args.args[0].to_array(args.number_rows)?;
        let texts = datafusion::arrow::compute::cast(&a, &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        // A DATE: Flink's reading alone (Arrow's takes `+2024-01-05` and refuses `2024`).
        if self.to == DataType::Date32 {
            let epoch = chrono::NaiveDate::default();
            let mut days = Vec::with_capacity(a.len());
            for t in texts.iter() {
                let Some(t) = t else {
                    days.push(None);
                    continue;
                };
                let day = flink_date(t).and_then(|d| i32::try_from((d - epoch).num_days()).ok());
                if day.is_none() && !self.safe {
                    return Err(datafusion::error::DataFusionError::Execution(format!(
                        "Cast error: cannot cast string '{t}' to DATE: not a date as Flink \
                         reads one (yyyy[-M[-d]], years 0 to 9999)"
                    )));
                }
                days.push(day);
            }
            let out: datafusion::arrow::array::ArrayRef =
                std::sync::Arc::new(datafusion::arrow::array::Date32Array::from(days));
            return shaped(out, scalar);
        }
        // Arrow's reading first; Flink's for what it leaves NULL.
        let safe = datafusion::arrow::compute::CastOptions {
            safe: true,
            ..Default::default()
        };
        let read = datafusion::arrow::compute::cast_with_options(&a, &self.to, &safe)?;
        let missed: Vec<usize> = (0..a.len())
            .filter(|&i| read.is_null(i) && !texts.is_null(i))
            .collect();
        if missed.is_empty() {
            return shaped(read, scalar);
        }
        // The missed rows as Flink reads them, in the target's unit (days for a DATE); a
        // time the unit cannot hold (nanoseconds past 2262) is out of range.
        let mut fixed: Vec<Option<i64>> = vec![None; a.len()];
        for &i in &missed {
            let t = texts.value(i);
            let value = flink_timestamp(t).and_then(|v| match &self.to {
                DataType::Date32 => {
                    i32::try_from((v.date() - chrono::NaiveDate::default()).num_days())
                        .ok()
                        .map(i64::from)
                }
                DataType::Timestamp(TimeUnit::Second, _) => Some(v.and_utc().timestamp()),
                DataType::Timestamp(TimeUnit::Millisecond, _) => {
                    Some(v.and_utc().timestamp_millis())
                }
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    Some(v.and_utc().timestamp_micros())
                }
                _ => v.and_utc().timestamp_nanos_opt(),
            });
            match value {
                Some(v) => fixed[i] = Some(v),
                None if self.safe => {}
                None => {
                    return Err(datafusion::error::DataFusionError::Execution(format!(
                        "Cast error: cannot cast string '{t}' to {}: not a date and time as \
                         Flink reads them (yyyy-M-d [H:m:s[.fraction]]) within the type's range",
                        crate::sql::types::flink_type_name(&self.to)
                    )));
                }
            }
        }
        // Merge: Arrow's values, then the fixed ones, in the target type.
        let out: datafusion::arrow::array::ArrayRef = match &self.to {
            DataType::Date32 => {
                let r = read.as_primitive::<datafusion::arrow::datatypes::Date32Type>();
                std::sync::Arc::new(
                    (0..a.len())
                        .map(|i| {
                            fixed[i]
                                .map(|d| d as i32)
                                .or_else(|| (!r.is_null(i)).then(|| r.value(i)))
                        })
                        .collect::<datafusion::arrow::array::Date32Array>(),
                )
            }
            DataType::Timestamp(..) => {
                let as_i64 = datafusion::arrow::compute::cast(&read, &DataType::Int64)?;
                let r = as_i64.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let values: datafusion::arrow::array::Int64Array = (0..a.len())
                    .map(|i| fixed[i].or_else(|| (!r.is_null(i)).then(|| r.value(i))))
                    .collect();
                datafusion::arrow::compute::cast(&values, &self.to)?
            }
            _ => read,
        };
        shaped(out, scalar)
    }
}

/// A string cast to a `DECIMAL(p, s)` as Flink's `BinaryStringDataUtil.toDecimal` reads it:
/// a number (spaces around it ignored) rounded half-up to `s` digits; one too large for
/// `p` digits is NULL (`DecimalData.fromBigDecimal`), as a number cast so is. A string that
/// is no number fails the query (`CAST`) or is NULL (`TRY_CAST`, `safe`). Put in place of
/// such casts by [`crate::sql::types::JavaNumericCasts`]; DataFusion's cast failed the query
/// on a number too large.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StringToDecimal {
    signature: Signature,
    to: DataType,
    safe: bool,
    name: String,
}

impl StringToDecimal {
    /// The cast to `to` (a `Decimal128`); `safe` for `TRY_CAST`.
    pub fn udf(to: DataType, safe: bool) -> ScalarUDF {
        ScalarUDF::from(StringToDecimal {
            signature: Signature::any(1, Volatility::Immutable),
            name: format!(
                "weir_string_{}cast_{}",
                if safe { "try_" } else { "" },
                crate::sql::types::flink_type_name(&to).to_lowercase()
            ),
            to,
            safe,
        })
    }
}

impl ScalarUDFImpl for StringToDecimal {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(self.to.clone())
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray};
        let scalar = all_scalar(&args);
        let a = args.args[0].to_array(args.number_rows)?;
        let texts = datafusion::arrow::compute::cast(&a, &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let trimmed: datafusion::arrow::array::StringArray = texts
            .iter()
            .map(|t| t.map(|t| t.trim_matches(' ')))
            .collect();
        let safe = datafusion::arrow::compute::CastOptions {
            safe: true,
            ..Default::default()
        };
        let read = datafusion::arrow::compute::cast_with_options(&trimmed, &self.to, &safe)?;
        // Java's BigDecimal reads an exponent (`1.5e1`), which Arrow's cast does not: those
        // are read through a DOUBLE.
        let exponent: datafusion::arrow::array::BooleanArray = (0..a.len())
            .map(|i| {
                Some(
                    read.is_null(i) && !trimmed.is_null(i) && trimmed.value(i).contains(['e', 'E']),
                )
            })
            .collect();
        let read = if exponent.true_count() > 0 {
            let double =
                datafusion::arrow::compute::cast_with_options(&trimmed, &DataType::Float64, &safe)?;
            let alt = datafusion::arrow::compute::cast_with_options(&double, &self.to, &safe)?;
            datafusion::arrow::compute::kernels::zip::zip(&exponent, &alt, &read)?
        } else {
            read
        };
        if !self.safe {
            // NULL from a string that is a number is an overflow (NULL, as in Flink); from
            // one that is no number, an error.
            for i in 0..a.len() {
                if read.is_null(i) && !trimmed.is_null(i) {
                    let t = trimmed.value(i);
                    let number = !t.is_empty()
                        && t.parse::<f64>().is_ok()
                        && !t.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E');
                    if !number {
                        return Err(datafusion::error::DataFusionError::Execution(format!(
                            "Cast error: cannot cast string '{}' to {}: not a number \
                             (use TRY_CAST for NULL instead)",
                            texts.value(i),
                            crate::sql::types::flink_type_name(&self.to)
                        )));
                    }
                }
            }
        }
        shaped(read, scalar)
    }
}
