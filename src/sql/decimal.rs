//! Flink's rules for `DECIMAL` results where DataFusion's differ: division, and `FLOOR`,
//! `CEIL`, `ROUND`, `TRUNCATE` and `SIGN` (of an integer too); and the literals that
//! feed them (see `super::rewrite`: `1.5` is a `DECIMAL(2, 1)`, `1.5E0` a `DOUBLE`).
//!
//! Division (`LogicalTypeMerging.findDivisionDecimalType`): `DECIMAL(p1, s1) /
//! DECIMAL(p2, s2)` is `DECIMAL(p1 - s1 + s2 + s, s)` with `s = max(6, s1 + p2 + 1)`, an
//! integer taken as `DECIMAL(3|5|10|19, 0)`; above 38 digits the scale gives way
//! (`adjustPrecisionScale`: 38 digits, scale `max(38 - integer digits, min(s, 6))`). The
//! quotient is rounded half-up to the scale (`DecimalData.divide`), and is NULL where it
//! does not fit the precision (`DecimalData.fromBigDecimal`). DataFusion's quotient has
//! scale `s1 + 4`, truncated (`7.0 / 2` is `3.50000`; Flink's `3.500000000000`).
//!
//! The others:
//!
//! - `SIGN(d)` has the type of `d` (Calcite's `ARG0`): `SIGN(-2.5)` is `-1.0`,
//!   `SIGN(-5)` is `-1`.
//! - `FLOOR(d)` and `CEIL(d)` of a `DECIMAL(p, s)` are `DECIMAL(p, 0)` (Calcite's
//!   `ReturnTypes.ARG0_OR_EXACT_NO_SCALE`, which Flink's `FlinkSqlOperatorTable.FLOOR`
//!   and `CEIL` use).
//! - `ROUND(d, r)` and `TRUNCATE(d, r)` with a literal `r` (0 when absent) are
//!   `LogicalTypeMerging.findRoundDecimalType(p, s, r)`: `DECIMAL(p, s)` when `r >= s`,
//!   `DECIMAL(min(38, 1 + p - s), 0)` when `r < 0`, else `DECIMAL(1 + p - s + r, r)`;
//!   with an `r` that is not a literal, `DECIMAL(p, s)`. `ROUND` rounds half away from
//!   zero (Java's `RoundingMode.HALF_UP`); `TRUNCATE` toward zero.
//!
//! DataFusion keeps the argument's scale instead (`FLOOR(-12.345)` is `-13.000`) and fails
//! where rounding up needs one more digit (`CEIL(CAST(0.99 AS DECIMAL(2, 2)))`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Int64Array};
use datafusion::arrow::compute::{CastOptions, cast, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type, i256};
use datafusion::common::types::{NativeType, logical_int32};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, TypeSignature, TypeSignatureClass,
};

/// Which of the five functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Floor,
    Ceil,
    Round,
    Truncate,
    Sign,
}

/// One of the five functions: DataFusion's own for every type but `Decimal128`, Flink's
/// for that.
#[derive(Debug)]
pub struct FlinkRounding {
    mode: Mode,
    inner: Arc<ScalarUDF>,
    /// DataFusion's signature with integers taken as they are (Flink's `FLOOR` of an `INT`
    /// is an `INT`; DataFusion's is a `DOUBLE`).
    signature: Signature,
}

impl PartialEq for FlinkRounding {
    fn eq(&self, other: &Self) -> bool {
        self.mode == other.mode
    }
}

impl Eq for FlinkRounding {}

impl std::hash::Hash for FlinkRounding {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.mode.hash(state);
    }
}

impl FlinkRounding {
    /// The five functions, named as DataFusion names them (`floor`, `ceil`, `round`,
    /// `trunc`, `signum`), so registering them replaces DataFusion's.
    pub fn udfs() -> Vec<ScalarUDF> {
        use datafusion::functions::math;
        [
            (Mode::Floor, math::floor()),
            (Mode::Ceil, math::ceil()),
            (Mode::Round, math::round()),
            (Mode::Truncate, math::trunc()),
            (Mode::Sign, math::signum()),
        ]
        .into_iter()
        .map(|(mode, inner)| {
            let integer = Coercion::new_exact(TypeSignatureClass::Integer);
            let places = Coercion::new_implicit(
                TypeSignatureClass::Native(logical_int32()),
                vec![TypeSignatureClass::Integer],
                NativeType::Int32,
            );
            let mut forms = vec![TypeSignature::Coercible(vec![integer.clone()])];
            if matches!(mode, Mode::Round | Mode::Truncate) {
                forms.push(TypeSignature::Coercible(vec![integer, places]));
            }
            // DataFusion's SIGNUM takes only floats: a DECIMAL keeps its type.
            if mode == Mode::Sign {
                forms.push(TypeSignature::Coercible(vec![Coercion::new_exact(
                    TypeSignatureClass::Decimal,
                )]));
            }
            match &inner.signature().type_signature {
                TypeSignature::OneOf(theirs) => forms.extend(theirs.iter().cloned()),
                theirs => forms.push(theirs.clone()),
            }
            let signature = Signature::one_of(forms, inner.signature().volatility);
            ScalarUDF::from(FlinkRounding {
                mode,
                inner,
                signature,
            })
        })
        .collect()
    }

    /// The digits kept after the point (`r`) when it is a literal; `Some(None)` when it is
    /// not, `None` for a NULL literal.
    fn digits(&self, scalar: Option<Option<&ScalarValue>>) -> Result<Option<Option<i64>>> {
        match (self.mode, scalar) {
            (_, None) => Ok(Some(Some(0))),
            (_, Some(None)) => Ok(Some(None)),
            (_, Some(Some(v))) => match v.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(r)) => Ok(Some(Some(r))),
                _ => Ok(None),
            },
        }
    }
}

/// Flink's result type of rounding a `DECIMAL(p, s)` to `r` digits (`None`: not a
/// literal), as `LogicalTypeMerging.findRoundDecimalType`.
fn round_type(p: u8, s: i8, r: Option<i64>) -> (u8, i8) {
    match r {
        None => (p, s),
        Some(r) if r >= s as i64 => (p, s),
        Some(r) if r < 0 => ((1 + p as i64 - s as i64).min(38) as u8, 0),
        Some(r) => ((1 + p as i64 - s as i64 + r).min(38) as u8, r as i8),
    }
}

impl ScalarUDFImpl for FlinkRounding {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        exec_err!("{} has its type from return_field_from_args", self.name())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        let t = match args.arg_fields.first().map(|f| f.data_type()) {
            Some(t) if t.is_integer() => t.clone(),
            Some(DataType::Decimal128(p, s)) => {
                let (p, s) = match self.mode {
                    Mode::Floor | Mode::Ceil => (*p, 0),
                    Mode::Sign => (*p, *s),
                    _ => match self.digits(args.scalar_arguments.get(1).copied())? {
                        Some(r) => round_type(*p, *s, r),
                        None => (*p, *s),
                    },
                };
                DataType::Decimal128(p, s)
            }
            _ => return self.inner.return_field_from_args(args),
        };
        Ok(Arc::new(Field::new(self.name(), t, nullable)))
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let t = args.arg_fields[0].data_type().clone();
        let (s, p_out, s_out) = match (&t, args.return_field.data_type()) {
            (DataType::Decimal128(_, s), DataType::Decimal128(p, s_out)) => (*s, *p, *s_out),
            (t, _) if t.is_integer() => (0, 38, 0),
            _ => return self.inner.invoke_with_args(args),
        };
        let rows = args.number_rows;
        let scalar = crate::sql::functions::all_scalar(&args);
        let value = cast(&args.args[0].to_array(rows)?, &DataType::Decimal128(38, s))?;
        let value = value.as_primitive::<Decimal128Type>();
        let digits: Int64Array = match args.args.get(1) {
            Some(r) if matches!(self.mode, Mode::Round | Mode::Truncate) => {
                cast(&r.to_array(rows)?, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone()
            }
            _ => Int64Array::from_value(0, rows),
        };
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if value.is_null(i) || digits.is_null(i) {
                out.push(None);
                continue;
            }
            let v = if self.mode == Mode::Sign {
                // ±1 may not fit the type (SIGN of a DECIMAL(1, 1)): NULL then, as Flink's
                // DecimalData.fromBigDecimal gives.
                let one = 10i128.pow(s_out.max(0) as u32);
                if one >= 10i128.pow(p_out as u32) && value.value(i) != 0 {
                    out.push(None);
                    continue;
                }
                Some(value.value(i).signum() * one)
            } else {
                round_unscaled(self.mode, value.value(i), s, digits.value(i), s_out)
            }
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Execution(format!(
                    "{} of {} overflows {}",
                    self.name().to_ascii_uppercase(),
                    value.value_as_string(i),
                    args.return_field.data_type()
                ))
            })?;
            out.push(Some(v));
        }
        let array = Decimal128Array::from(out).with_precision_and_scale(p_out, s_out)?;
        array.validate_decimal_precision(p_out)?;
        let mut array: ArrayRef = Arc::new(array);
        if t.is_integer() {
            array = wrap_to(&array, &t)?;
        }
        crate::sql::functions::shaped(array, scalar)
    }
}

/// Rounded integers (a `DECIMAL(38, 0)`) back in their type `t`, wrapping as Java's
/// narrowing casts do where rounding left its range (`ROUND(CAST(127 AS TINYINT), -1)` is
/// -126 in Flink, whose `sround` casts the rounded `long` back to a `byte`).
fn wrap_to(array: &ArrayRef, t: &DataType) -> Result<ArrayRef> {
    use datafusion::arrow::datatypes as dt;
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let wide = cast_with_options(array, &DataType::Int64, &options)?;
    let wide = wide.as_primitive::<Int64Type>();
    Ok(match t {
        DataType::Int8 => Arc::new(wide.unary::<_, dt::Int8Type>(|v| v as i8)),
        DataType::Int16 => Arc::new(wide.unary::<_, dt::Int16Type>(|v| v as i16)),
        DataType::Int32 => Arc::new(wide.unary::<_, dt::Int32Type>(|v| v as i32)),
        DataType::UInt8 => Arc::new(wide.unary::<_, dt::UInt8Type>(|v| v as u8)),
        DataType::UInt16 => Arc::new(wide.unary::<_, dt::UInt16Type>(|v| v as u16)),
        DataType::UInt32 => Arc::new(wide.unary::<_, dt::UInt32Type>(|v| v as u32)),
        DataType::UInt64 => Arc::new(wide.unary::<_, dt::UInt64Type>(|v| v as u64)),
        _ => Arc::new(wide.clone()),
    })
}

/// `v` (unscaled, at scale `s`) rounded to `r` digits after the point as `mode` says, and
/// given back unscaled at scale `s_out`; `None` on overflow.
fn round_unscaled(mode: Mode, v: i128, s: i8, r: i64, s_out: i8) -> Option<i128> {
    let s = s as i64;
    let s_out = s_out as i64;
    if r >= s {
        return v.checked_mul(10i128.checked_pow(u32::try_from(s_out - s).ok()?)?);
    }
    // Digits dropped: beyond 38 every value of a DECIMAL(38) is smaller than the divisor.
    let dropped = u32::try_from(s - r).ok()?;
    let (q, rem, d) = match 10i128.checked_pow(dropped) {
        Some(d) => (v / d, v % d, d),
        None => (0, v, i128::MAX),
    };
    let q = match mode {
        Mode::Truncate => q,
        Mode::Floor if rem < 0 => q - 1,
        Mode::Ceil if rem > 0 => q + 1,
        Mode::Round if rem.unsigned_abs() >= d.unsigned_abs().div_ceil(2) => q + v.signum(),
        _ => q,
    };
    if q == 0 {
        return Some(0);
    }
    q.checked_mul(10i128.checked_pow(u32::try_from(s_out - r).ok()?)?)
}

/// Flink's `adjustPrecisionScale`: a type of more than 38 digits keeps its integer
/// digits and gives up scale, down to `min(scale, 6)`.
fn adjust(precision: i64, scale: i64) -> (u8, i8) {
    if precision <= 38 {
        return (precision as u8, scale as i8);
    }
    let integer = precision - scale;
    (38, (38 - integer).max(scale.min(6)) as i8)
}

/// The `DECIMAL(p, s)` Flink takes an exact number of type `t` as (`None`: not one).
fn as_decimal(t: &DataType) -> Option<(i64, i64)> {
    Some(match t {
        DataType::Decimal128(p, s) => (*p as i64, *s as i64),
        DataType::Int8 | DataType::UInt8 => (3, 0),
        DataType::Int16 | DataType::UInt16 => (5, 0),
        DataType::Int32 | DataType::UInt32 => (10, 0),
        DataType::Int64 => (19, 0),
        DataType::UInt64 => (20, 0),
        _ => return None,
    })
}

/// The type of `l / r` by Flink's rule, when one side is a `DECIMAL` and the other a
/// `DECIMAL` or an integer.
fn division_type(l: &DataType, r: &DataType) -> Option<(u8, i8)> {
    if !matches!(l, DataType::Decimal128(..)) && !matches!(r, DataType::Decimal128(..)) {
        return None;
    }
    let ((p1, s1), (p2, s2)) = (as_decimal(l)?, as_decimal(r)?);
    let scale = 6.max(s1 + p2 + 1);
    Some(adjust(p1 - s1 + s2 + scale, scale))
}

/// `l / r` of decimals by Flink's rule (see the module's docs); the planner puts it where
/// a `/` has a `DECIMAL` side (see [`flink_division`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DecimalDivide {
    signature: Signature,
}

/// The name of [`DecimalDivide`].
pub const DIVIDE: &str = "weir_decimal_divide";

impl DecimalDivide {
    /// The function, as the planner's pass and the session register it.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(DecimalDivide {
            signature: Signature::any(2, datafusion::logical_expr::Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for DecimalDivide {
    fn name(&self) -> &str {
        DIVIDE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [l, r] => match division_type(l, r) {
                Some((p, s)) => Ok(DataType::Decimal128(p, s)),
                None => exec_err!("{DIVIDE} takes a DECIMAL and a DECIMAL or an integer"),
            },
            _ => exec_err!("{DIVIDE} takes two arguments"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Decimal128(p, s) = args.return_field.data_type().clone() else {
            return exec_err!("{DIVIDE} gives a DECIMAL");
        };
        let rows = args.number_rows;
        let scalar = crate::sql::functions::all_scalar(&args);
        let side = |i: usize| -> Result<(ArrayRef, i64)> {
            let a = args.args[i].to_array(rows)?;
            let scale = as_decimal(a.data_type()).map_or(0, |(_, s)| s);
            Ok((cast(&a, &DataType::Decimal128(38, scale as i8))?, scale))
        };
        let ((l, s1), (r, s2)) = (side(0)?, side(1)?);
        let (l, r) = (
            l.as_primitive::<Decimal128Type>(),
            r.as_primitive::<Decimal128Type>(),
        );
        // l / r at scale s: (l · 10^(s − s1 + s2)) / r, in 256 bits.
        let shift = s as i64 - s1 + s2;
        let ten = |n: i64| i256::from_i128(10).checked_pow(n.unsigned_abs() as u32);
        let (num_mul, den_mul) = match (shift >= 0, ten(shift)) {
            (true, Some(t)) => (t, i256::ONE),
            (false, Some(t)) => (i256::ONE, t),
            _ => return exec_err!("{DIVIDE}: scale {s} out of range"),
        };
        let limit = ten(p as i64).unwrap_or(i256::MAX);
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if l.is_null(i) || r.is_null(i) {
                out.push(None);
                continue;
            }
            let den = i256::from_i128(r.value(i)).wrapping_mul(den_mul);
            if den == i256::ZERO {
                return Err(datafusion::error::DataFusionError::ArrowError(
                    Box::new(datafusion::arrow::error::ArrowError::DivideByZero),
                    None,
                ));
            }
            let Some(num) = i256::from_i128(l.value(i)).checked_mul(num_mul) else {
                out.push(None);
                continue;
            };
            let (q, rem) = (num.wrapping_div(den), num.wrapping_rem(den));
            let half = rem.wrapping_abs().wrapping_mul(i256::from_i128(2)) >= den.wrapping_abs();
            let q = if half {
                let away = if (num < i256::ZERO) == (den < i256::ZERO) {
                    i256::ONE
                } else {
                    i256::MINUS_ONE
                };
                q.wrapping_add(away)
            } else {
                q
            };
            // Past the precision: NULL, as Flink's DecimalData.fromBigDecimal.
            out.push((q.wrapping_abs() < limit).then(|| q.as_i128()));
        }
        let array: ArrayRef = Arc::new(Decimal128Array::from(out).with_precision_and_scale(p, s)?);
        crate::sql::functions::shaped(array, scalar)
    }
}

/// Puts [`DecimalDivide`] in place of every `/` with a `DECIMAL` side (the other a
/// `DECIMAL` or an integer) in a planned (not yet analysed) query, keeping every column's
/// name.
///
/// Errors: DataFusion's, when an operand's type cannot be found.
pub fn flink_division(
    plan: datafusion::logical_expr::LogicalPlan,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::expr::ScalarFunction;
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    use datafusion::logical_expr::utils::merge_schema;
    use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator};
    let divide = Arc::new(DecimalDivide::udf());
    let int_divide = Arc::new(crate::sql::functions::FlinkScalar::udf(
        crate::sql::functions::FlinkFn::IntDivide,
    ));
    plan.transform_up_with_subqueries(|node| {
        let schema = merge_schema(&node.inputs());
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let saved = names.save(&e);
            let t = e.transform_up(|x| match x {
                Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Divide,
                    right,
                }) => {
                    // Integer literals as Flink types them, in a DECIMAL division only (an
                    // integer one keeps DataFusion's operands, and so its names).
                    let (l, r) = (
                        super::literals::int_literal((*left).clone()),
                        super::literals::int_literal((*right).clone()),
                    );
                    let types = l
                        .get_type(&schema)
                        .and_then(|lt| Ok((lt, r.get_type(&schema)?)));
                    match types {
                        Ok((lt, rt)) if division_type(&lt, &rt).is_some() => {
                            Ok(Transformed::yes(Expr::ScalarFunction(
                                ScalarFunction::new_udf(divide.clone(), vec![l, r]),
                            )))
                        }
                        // Integers divide as Java's do: the smallest value over -1 wraps to
                        // itself (`Integer.MIN_VALUE / -1`), where Arrow's division fails
                        // the query with an overflow; each operand evaluated once.
                        Ok((lt, rt)) if lt.is_integer() && rt.is_integer() => {
                            Ok(Transformed::yes(Expr::ScalarFunction(
                                ScalarFunction::new_udf(int_divide.clone(), vec![*left, *right]),
                            )))
                        }
                        _ => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                            left,
                            op: Operator::Divide,
                            right,
                        }))),
                    }
                }
                x => Ok(Transformed::no(x)),
            })?;
            Ok(if t.transformed {
                t.update_data(|e| saved.restore(e))
            } else {
                t
            })
        })
    })
    .map(|t| t.data)
}

/// Whether `t` is a `DOUBLE` or a `FLOAT`.
fn approximate(t: &DataType) -> bool {
    matches!(t, DataType::Float64 | DataType::Float32)
}

/// `exprs`, values that meet in one type (the sides of a comparison, the branches of a
/// `CASE`, the arguments of `COALESCE`), with each `DECIMAL` cast to `DOUBLE` when another
/// is a `DOUBLE` or a `FLOAT`, as Calcite's `leastRestrictive` (and so Flink) types such a
/// mix; None when there is no such mix, or a type cannot be found in `schema`.
fn doubles(
    exprs: &[&datafusion::logical_expr::Expr],
    schema: &datafusion::common::DFSchema,
) -> Option<Vec<datafusion::logical_expr::Expr>> {
    use datafusion::logical_expr::{Cast, Expr, ExprSchemable};
    let types = exprs
        .iter()
        .map(|e| e.get_type(schema).ok())
        .collect::<Option<Vec<_>>>()?;
    if !types.iter().any(approximate) || !types.iter().any(DataType::is_decimal) {
        return None;
    }
    Some(
        exprs
            .iter()
            .zip(&types)
            .map(|(e, t)| match t.is_decimal() {
                true => Expr::Cast(Cast::new(Box::new((*e).clone()), DataType::Float64)),
                false => (*e).clone(),
            })
            .collect(),
    )
}

/// The functions whose arguments meet in one type, the result's (`GREATEST(x, 0.5)`).
const COMMON_TYPE_ARGUMENTS: &[&str] = &[
    "coalesce",
    "nvl",
    "ifnull",
    "greatest",
    "least",
    "make_array",
];

/// One expression with a `DOUBLE` (or `FLOAT`) meeting a `DECIMAL` typed `DOUBLE`, as Flink
/// types it (Calcite's `leastRestrictive`: an approximate type wins over an exact one):
/// the sides of a comparison, `BETWEEN` and `IN`, the branches of a `CASE` (and its operand
/// beside its `WHEN` values), the arguments of `COALESCE`, `IFNULL`, `GREATEST`, `LEAST`
/// and an `ARRAY[…]`; `NULLIF(a, b)` compares them as DOUBLEs and keeps `a`'s type. DataFusion's coercion makes such a mix a `DECIMAL(30, 15)`
/// instead, where a `DOUBLE` of 10¹⁵ or more does not fit: `x > 1.5` was NULL for `x` =
/// 1e20, and `COALESCE(x, 0.5)` gave 0.5. Arithmetic is left alone (DataFusion's is a
/// `DOUBLE` already). For a query's expressions before its analysis, over `schema`, its
/// node's inputs.
pub fn float_over_decimal(
    x: datafusion::logical_expr::Expr,
    schema: &datafusion::common::DFSchema,
) -> Result<datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::expr::{Between, Case, InList, ScalarFunction};
    use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator};
    Ok(match x {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom
            ) =>
        {
            match doubles(&[&left, &right], schema) {
                Some(mut v) => {
                    let right = v.pop().map(Box::new).unwrap_or(right);
                    let left = v.pop().map(Box::new).unwrap_or(left);
                    Transformed::yes(Expr::BinaryExpr(BinaryExpr { left, op, right }))
                }
                None => Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
            }
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => match doubles(&[&expr, &low, &high], schema) {
            Some(v) => {
                let mut v = v.into_iter().map(Box::new);
                match (v.next(), v.next(), v.next()) {
                    (Some(expr), Some(low), Some(high)) => {
                        Transformed::yes(Expr::Between(Between::new(expr, negated, low, high)))
                    }
                    _ => Transformed::no(Expr::Between(Between::new(expr, negated, low, high))),
                }
            }
            None => Transformed::no(Expr::Between(Between::new(expr, negated, low, high))),
        },
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let all: Vec<&Expr> = std::iter::once(expr.as_ref()).chain(&list).collect();
            match doubles(&all, schema) {
                Some(mut v) => {
                    let first = v.remove(0);
                    Transformed::yes(Expr::InList(InList::new(Box::new(first), v, negated)))
                }
                None => Transformed::no(Expr::InList(InList::new(expr, list, negated))),
            }
        }
        Expr::Case(Case {
            expr,
            when_then_expr,
            else_expr,
        }) => {
            let mut changed = false;
            // The operand beside the WHEN values it is compared with.
            let (expr, whens) = match &expr {
                Some(operand) => {
                    let all: Vec<&Expr> = std::iter::once(operand.as_ref())
                        .chain(when_then_expr.iter().map(|(w, _)| w.as_ref()))
                        .collect();
                    match doubles(&all, schema) {
                        Some(mut v) => {
                            changed = true;
                            let first = v.remove(0);
                            (Some(Box::new(first)), v)
                        }
                        None => (
                            expr,
                            when_then_expr.iter().map(|(w, _)| (**w).clone()).collect(),
                        ),
                    }
                }
                None => (
                    expr,
                    when_then_expr.iter().map(|(w, _)| (**w).clone()).collect(),
                ),
            };
            // The results, THEN and ELSE.
            let results: Vec<&Expr> = when_then_expr
                .iter()
                .map(|(_, t)| t.as_ref())
                .chain(else_expr.as_deref())
                .collect();
            let mut thens = match doubles(&results, schema) {
                Some(v) => {
                    changed = true;
                    v
                }
                None => results.into_iter().cloned().collect(),
            };
            let else_expr = match else_expr {
                Some(_) => thens.pop().map(Box::new),
                None => None,
            };
            let case = Expr::Case(Case {
                expr,
                when_then_expr: whens
                    .into_iter()
                    .zip(thens)
                    .map(|(w, t)| (Box::new(w), Box::new(t)))
                    .collect(),
                else_expr,
            });
            match changed {
                true => Transformed::yes(case),
                false => Transformed::no(case),
            }
        }
        // `NULLIF(a, b)` is Calcite's `CASE WHEN a = b THEN NULL ELSE a END`: the two are
        // compared as DOUBLEs, and the result keeps `a`'s type.
        Expr::ScalarFunction(ScalarFunction { func, args })
            if func.name() == "nullif" && args.len() == 2 =>
        {
            let Some(compared) = doubles(&[&args[0], &args[1]], schema) else {
                return Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction {
                    func,
                    args,
                })));
            };
            let first = args[0].get_type(schema)?;
            if approximate(&first) {
                return Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                    func,
                    args: compared,
                })));
            }
            let mut compared = compared.into_iter();
            let (Some(a), Some(b)) = (compared.next(), compared.next()) else {
                return Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction {
                    func,
                    args,
                })));
            };
            let null = Expr::Literal(ScalarValue::try_from(&first)?, None);
            Transformed::yes(Expr::Case(Case {
                expr: None,
                when_then_expr: vec![(Box::new(a.eq(b)), Box::new(null))],
                else_expr: args.into_iter().next().map(Box::new),
            }))
        }
        Expr::ScalarFunction(ScalarFunction { func, args })
            if COMMON_TYPE_ARGUMENTS.contains(&func.name()) =>
        {
            let all: Vec<&Expr> = args.iter().collect();
            match doubles(&all, schema) {
                Some(args) => Transformed::yes(Expr::ScalarFunction(ScalarFunction { func, args })),
                None => Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args })),
            }
        }
        x => Transformed::no(x),
    })
}

/// A `VALUES` column whose rows mix a `DOUBLE` (or `FLOAT`) and a `DECIMAL` as a `DOUBLE`
/// column, as Flink types it; None when no column does. DataFusion's planner has already
/// cast every row to the column's type; a row's own type is read under that cast. A
/// `VALUES` typed by something else (an `INSERT`'s columns) is left alone: its column type
/// is not the rows' common type.
fn values_as_doubles(
    v: &datafusion::logical_expr::Values,
) -> Result<Option<datafusion::logical_expr::LogicalPlan>> {
    use datafusion::logical_expr::{Cast, Expr, ExprSchemable};
    let empty = datafusion::common::DFSchema::empty();
    let mut rows = v.values.clone();
    let mut changed = false;
    for (c, field) in v.schema.fields().iter().enumerate() {
        if !field.data_type().is_decimal() {
            continue;
        }
        // Each row's value under the planner's cast to the column type.
        let own: Vec<Expr> = rows
            .iter()
            .filter_map(|r| r.get(c))
            .map(|e| match e {
                Expr::Cast(Cast { expr, field: to }) if to.data_type() == field.data_type() => {
                    (**expr).clone()
                }
                e => e.clone(),
            })
            .collect();
        let Some(types) = own
            .iter()
            .map(|e| e.get_type(&empty).ok())
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let common = datafusion::logical_expr::type_coercion::binary::type_union_resolution(
            &types
                .iter()
                .filter(|t| !t.is_null())
                .cloned()
                .collect::<Vec<_>>(),
        );
        if !types.iter().any(approximate) || common.as_ref() != Some(field.data_type()) {
            continue;
        }
        for (row, e) in rows.iter_mut().zip(own) {
            if let Some(slot) = row.get_mut(c) {
                *slot = match e {
                    Expr::Literal(ScalarValue::Null, m) => {
                        Expr::Literal(ScalarValue::Float64(None), m)
                    }
                    e => Expr::Cast(Cast::new(Box::new(e), DataType::Float64)),
                };
            }
        }
        changed = true;
    }
    if !changed {
        return Ok(None);
    }
    Ok(Some(
        datafusion::logical_expr::LogicalPlanBuilder::values(rows)?.build()?,
    ))
}

/// A union whose inputs meet a `DOUBLE` (or `FLOAT`) column with a `DECIMAL` one: the
/// `DECIMAL` inputs projected as `DOUBLE`, as Flink types the union's column; None when no
/// column mixes them.
fn union_as_doubles(
    u: &datafusion::logical_expr::Union,
) -> Result<Option<datafusion::logical_expr::LogicalPlan>> {
    use datafusion::logical_expr::{Cast, Expr, LogicalPlan, Projection};
    let width = u.schema.fields().len();
    let mixed: Vec<bool> = (0..width)
        .map(|c| {
            let types: Vec<&DataType> = u
                .inputs
                .iter()
                .filter_map(|i| i.schema().fields().get(c).map(|f| f.data_type()))
                .collect();
            types.iter().any(|t| approximate(t)) && types.iter().any(|t| t.is_decimal())
        })
        .collect();
    if !mixed.contains(&true) {
        return Ok(None);
    }
    let inputs = u
        .inputs
        .iter()
        .map(|input| {
            let schema = input.schema();
            if !schema
                .fields()
                .iter()
                .zip(&mixed)
                .any(|(f, m)| *m && f.data_type().is_decimal())
            {
                return Ok(input.clone());
            }
            let exprs = schema
                .iter()
                .zip(&mixed)
                .map(|((q, f), m)| {
                    let col = Expr::Column(datafusion::common::Column::new(q.cloned(), f.name()));
                    match *m && f.data_type().is_decimal() {
                        true => Expr::Cast(Cast::new(Box::new(col), DataType::Float64))
                            .alias_qualified(q.cloned(), f.name()),
                        false => col,
                    }
                })
                .collect();
            Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(
                exprs,
                input.clone(),
            )?)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(LogicalPlan::Union(
        datafusion::logical_expr::Union::try_new_with_loose_types(inputs)?,
    )))
}

/// A planned (not yet analysed) query with every `DOUBLE` (or `FLOAT`) meeting a `DECIMAL`
/// typed `DOUBLE`, as Flink types them: in expressions ([`float_over_decimal`]), `VALUES`
/// columns and `UNION` columns (`SELECT 1e20 UNION ALL SELECT 0.001` is a `DOUBLE`). Column
/// names are kept. Errors: DataFusion's, when a node cannot be rebuilt.
pub fn flink_float_decimal(
    plan: datafusion::logical_expr::LogicalPlan,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::LogicalPlan;
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    use datafusion::logical_expr::utils::merge_schema;
    plan.transform_up_with_subqueries(|node| {
        // Types changed below reach this node's schema.
        let node = match node {
            LogicalPlan::Union(u) => {
                let u = datafusion::logical_expr::Union::try_new_with_loose_types(u.inputs)?;
                match union_as_doubles(&u)? {
                    Some(plan) => return Ok(Transformed::yes(plan)),
                    None => LogicalPlan::Union(u),
                }
            }
            LogicalPlan::Values(mut v) => {
                // Each row's expressions first (`VALUES (GREATEST(1e20, 0.5))`), then the
                // columns the rows mix.
                let empty = datafusion::common::DFSchema::empty();
                let mut changed = false;
                for row in &mut v.values {
                    for e in row.iter_mut() {
                        let t =
                            std::mem::take(e).transform_up(|x| float_over_decimal(x, &empty))?;
                        changed |= t.transformed;
                        *e = t.data;
                    }
                }
                if changed {
                    let rows = std::mem::take(&mut v.values);
                    let rebuilt =
                        datafusion::logical_expr::LogicalPlanBuilder::values(rows)?.build()?;
                    let LogicalPlan::Values(r) = rebuilt else {
                        return Err(datafusion::error::DataFusionError::Internal(
                            "VALUES rebuilt as another node".to_string(),
                        ));
                    };
                    v = r;
                }
                return Ok(match values_as_doubles(&v)? {
                    Some(plan) => Transformed::yes(plan),
                    None if changed => Transformed::yes(LogicalPlan::Values(v)),
                    None => Transformed::no(LogicalPlan::Values(v)),
                });
            }
            node if node.inputs().is_empty() => node,
            node => node.recompute_schema()?,
        };
        let schema = merge_schema(&node.inputs());
        let names = NamePreserver::new(&node);
        let leaf = node.inputs().is_empty();
        let t = node.map_expressions(|e| {
            let saved = names.save(&e);
            let t = e.transform_up(|x| float_over_decimal(x, &schema))?;
            Ok(if t.transformed {
                t.update_data(|e| saved.restore(e))
            } else {
                t
            })
        })?;
        // The node's own types as its rewritten expressions give them, for the nodes above
        // (`SELECT c > 1.5 FROM (SELECT COALESCE(x, 0.5) AS c …)`).
        match (t.transformed, leaf) {
            (true, false) => t.map_data(|p| p.recompute_schema()),
            _ => Ok(t),
        }
    })
    .map(|t| t.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_find_round_decimal_type() {
        // LogicalTypeMergingTest.testFindRoundingDecimalType's cases.
        assert_eq!(round_type(32, 8, Some(5)), (30, 5));
        assert_eq!(round_type(32, 8, Some(10)), (32, 8));
        assert_eq!(round_type(30, 20, Some(18)), (29, 18));
        assert_eq!(round_type(10, 10, Some(2)), (3, 2));
        assert_eq!(round_type(10, 3, Some(-1)), (8, 0));
        assert_eq!(round_type(10, 3, None), (10, 3));
    }

    #[test]
    fn division_types_follow_flink() {
        // DECIMAL(2, 1) / INT: scale max(6, 1 + 10 + 1) = 12, precision 2 - 1 + 12 = 13.
        assert_eq!(
            division_type(&DataType::Decimal128(2, 1), &DataType::Int32),
            Some((13, 12))
        );
        // Past 38 digits the scale gives way (findAvgAggType's DECIMAL(38, 2) / BIGINT →
        // DECIMAL(38, 6), LogicalTypeMergingTest.testFindAvgAggType).
        assert_eq!(
            division_type(&DataType::Decimal128(38, 2), &DataType::Decimal128(20, 0)),
            Some((38, 6))
        );
        assert_eq!(division_type(&DataType::Int32, &DataType::Int32), None);
        assert_eq!(
            division_type(&DataType::Decimal128(5, 2), &DataType::Float64),
            None
        );
    }

    #[test]
    fn rounding_modes() {
        // -12.345 at scale 3.
        let v = -12345;
        assert_eq!(round_unscaled(Mode::Floor, v, 3, 0, 0), Some(-13));
        assert_eq!(round_unscaled(Mode::Ceil, v, 3, 0, 0), Some(-12));
        assert_eq!(round_unscaled(Mode::Truncate, v, 3, 1, 1), Some(-123));
        assert_eq!(round_unscaled(Mode::Round, v, 3, 2, 2), Some(-1235));
        assert_eq!(round_unscaled(Mode::Round, v, 3, -1, 0), Some(-10));
        // Half away from zero.
        assert_eq!(round_unscaled(Mode::Round, 25, 1, 0, 0), Some(3));
        assert_eq!(round_unscaled(Mode::Round, -25, 1, 0, 0), Some(-3));
        assert_eq!(round_unscaled(Mode::Round, 24, 1, 0, 0), Some(2));
        // A non-literal r keeps the scale: 12.345 to 1 digit is 12.300.
        assert_eq!(round_unscaled(Mode::Round, 12345, 3, 1, 3), Some(12300));
        // More digits than there are: the value itself.
        assert_eq!(round_unscaled(Mode::Round, 12345, 3, 5, 3), Some(12345));
        // Dropping more than 38 digits.
        assert_eq!(round_unscaled(Mode::Truncate, 12345, 3, -40, 0), Some(0));
        assert_eq!(round_unscaled(Mode::Round, 12345, 3, -40, 0), Some(0));
    }
}
