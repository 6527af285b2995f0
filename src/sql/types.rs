//! Flink SQL data types, parsed from tokens into Arrow types.
//!
//! sqlparser cannot parse Flink's `ROW<name TYPE, ...>` (nor `ARRAY<...>`/`MAP<...>` nested
//! inside it), so column types in `CREATE TABLE` are parsed here. The mapping:
//!
//! | Flink | Arrow |
//! |---|---|
//! | `BOOLEAN` | Boolean |
//! | `TINYINT` / `SMALLINT` / `INT` / `BIGINT` | Int8 / Int16 / Int32 / Int64 |
//! | `FLOAT` / `DOUBLE` | Float32 / Float64 |
//! | `DECIMAL(p, s)` | Decimal128(p, s) |
//! | `CHAR`, `VARCHAR`, `STRING` | Utf8 |
//! | `BINARY`, `VARBINARY`, `BYTES` | Binary |
//! | `DATE` / `TIME(p)` | Date32 / Time64(µs) |
//! | `TIMESTAMP(p)` | Timestamp(ms for p ≤ 3, µs for p ≤ 6, else ns) |
//! | `TIMESTAMP_LTZ(p)`, `TIMESTAMP(p) WITH LOCAL TIME ZONE` | the same, in UTC |
//! | `ARRAY<T>`, `MAP<K, V>`, `ROW<n T, ...>` / `ROW(n T, ...)` | List, Map, Struct |

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{Result, WeirError};
use crate::sql::parser::{pos_of, sql_err};

/// Parses types, remembering a `>>` token that closed two nested types at once.
pub struct TypeParser<'a, 'b> {
    pub parser: &'a mut Parser<'b>,
    pending_gt: usize,
}

impl<'a, 'b> TypeParser<'a, 'b> {
    pub fn new(parser: &'a mut Parser<'b>) -> Self {
        TypeParser {
            parser,
            pending_gt: 0,
        }
    }

    /// Parses one type and its `NOT NULL` / `NULL`; returns (type, nullable).
    pub fn parse_type_with_nullability(&mut self) -> Result<(DataType, bool)> {
        let dt = self.parse_type()?;
        let nullable = self.parse_nullability();
        Ok((dt, nullable))
    }

    fn parse_nullability(&mut self) -> bool {
        if self.pending_gt > 0 {
            return true;
        }
        use datafusion::sql::sqlparser::keywords::Keyword;
        if self.parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
            false
        } else {
            let _ = self.parser.parse_keyword(Keyword::NULL);
            true
        }
    }

    fn word(&mut self) -> Result<(String, crate::error::Pos)> {
        let t = self.parser.next_token();
        let pos = pos_of(&t);
        match &t.token {
            Token::Word(w) => Ok((w.value.to_ascii_uppercase(), pos)),
            other => Err(sql_err(
                format!("expected a data type, found '{other}'"),
                &t,
            )),
        }
    }

    fn opt_params(&mut self) -> Result<Vec<u64>> {
        let mut out = vec![];
        if self.parser.consume_token(&Token::LParen) {
            loop {
                let t = self.parser.next_token();
                match &t.token {
                    Token::Number(n, _) => out.push(n.parse::<u64>().map_err(|_| {
                        sql_err(format!("expected a whole number, found '{n}'"), &t)
                    })?),
                    other => {
                        return Err(sql_err(format!("expected a number, found '{other}'"), &t));
                    }
                }
                if self.parser.consume_token(&Token::RParen) {
                    break;
                }
                self.expect(Token::Comma)?;
            }
        }
        Ok(out)
    }

    fn expect(&mut self, tok: Token) -> Result<()> {
        let t = self.parser.next_token();
        if t.token == tok {
            Ok(())
        } else {
            Err(sql_err(
                format!("expected '{tok}', found '{}'", t.token),
                &t,
            ))
        }
    }

    fn expect_lt(&mut self) -> Result<()> {
        self.expect(Token::Lt)
    }

    fn expect_gt(&mut self) -> Result<()> {
        if self.pending_gt > 0 {
            self.pending_gt -= 1;
            return Ok(());
        }
        let t = self.parser.next_token();
        match &t.token {
            Token::Gt => Ok(()),
            Token::ShiftRight => {
                self.pending_gt += 1;
                Ok(())
            }
            other => Err(sql_err(format!("expected '>', found '{other}'"), &t)),
        }
    }

    /// Parses a Flink data type.
    pub fn parse_type(&mut self) -> Result<DataType> {
        let (name, pos) = self.word()?;
        let unsupported =
            |what: &str| WeirError::sql(format!("data type {what} is not supported"), Some(pos));
        let dt = match name.as_str() {
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "TINYINT" => DataType::Int8,
            "SMALLINT" => DataType::Int16,
            "INT" | "INTEGER" => DataType::Int32,
            "BIGINT" => DataType::Int64,
            "FLOAT" | "REAL" => DataType::Float32,
            "DOUBLE" => {
                use datafusion::sql::sqlparser::keywords::Keyword;
                let _ = self.parser.parse_keyword(Keyword::PRECISION);
                DataType::Float64
            }
            "DECIMAL" | "DEC" | "NUMERIC" => {
                let p = self.opt_params()?;
                let precision = p.first().copied().unwrap_or(10);
                let scale = p.get(1).copied().unwrap_or(0);
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(WeirError::sql(
                        format!("DECIMAL({precision}, {scale}) is out of range"),
                        Some(pos),
                    )
                    .with_hint("precision is 1..=38 and scale at most the precision"));
                }
                DataType::Decimal128(precision as u8, scale as i8)
            }
            "CHAR" | "VARCHAR" | "STRING" | "TEXT" => {
                self.opt_params()?;
                DataType::Utf8
            }
            "BINARY" | "VARBINARY" | "BYTES" => {
                self.opt_params()?;
                DataType::Binary
            }
            "DATE" => DataType::Date32,
            "TIME" => {
                self.opt_params()?;
                DataType::Time64(TimeUnit::Microsecond)
            }
            "TIMESTAMP" | "TIMESTAMP_LTZ" => {
                let p = self.opt_params()?;
                let unit = match p.first().copied().unwrap_or(6) {
                    0..=3 => TimeUnit::Millisecond,
                    4..=6 => TimeUnit::Microsecond,
                    7..=9 => TimeUnit::Nanosecond,
                    n => {
                        return Err(WeirError::sql(
                            format!("TIMESTAMP precision {n} is out of range 0..=9"),
                            Some(pos),
                        ));
                    }
                };
                let mut tz = name == "TIMESTAMP_LTZ";
                use datafusion::sql::sqlparser::keywords::Keyword;
                if self
                    .parser
                    .parse_keywords(&[Keyword::WITHOUT, Keyword::TIME, Keyword::ZONE])
                {
                    // the default
                } else if self.parser.parse_keywords(&[
                    Keyword::WITH,
                    Keyword::LOCAL,
                    Keyword::TIME,
                    Keyword::ZONE,
                ]) {
                    tz = true;
                } else if self
                    .parser
                    .parse_keywords(&[Keyword::WITH, Keyword::TIME, Keyword::ZONE])
                {
                    return Err(unsupported("TIMESTAMP WITH TIME ZONE")
                        .with_hint("use TIMESTAMP_LTZ (WITH LOCAL TIME ZONE), as in Flink"));
                }
                DataType::Timestamp(unit, tz.then(|| Arc::from("UTC")))
            }
            "ARRAY" => {
                self.expect_lt()?;
                let (inner, nullable) = self.parse_type_with_nullability()?;
                self.expect_gt()?;
                DataType::List(Arc::new(Field::new("element", inner, nullable)))
            }
            "MAP" => {
                self.expect_lt()?;
                let (k, _) = self.parse_type_with_nullability()?;
                self.expect(Token::Comma)?;
                let (v, vn) = self.parse_type_with_nullability()?;
                self.expect_gt()?;
                DataType::Map(
                    Arc::new(Field::new(
                        "entries",
                        DataType::Struct(Fields::from(vec![
                            Field::new("key", k, false),
                            Field::new("value", v, vn),
                        ])),
                        false,
                    )),
                    false,
                )
            }
            "ROW" | "STRUCT" => {
                let angle = if self.parser.consume_token(&Token::Lt) {
                    true
                } else {
                    self.expect(Token::LParen)?;
                    false
                };
                let mut fields = vec![];
                let closed = |tp: &mut Self| -> Result<bool> {
                    if angle {
                        if tp.pending_gt > 0 {
                            return Ok(false);
                        }
                        let t = tp.parser.peek_token();
                        Ok(matches!(t.token, Token::Gt | Token::ShiftRight))
                    } else {
                        Ok(tp.parser.peek_token().token == Token::RParen)
                    }
                };
                if !closed(self)? {
                    loop {
                        let ident = self.parser.parse_identifier().map_err(|e| {
                            crate::sql::parser::parser_error(e)
                                .with_hint("a ROW field is `name TYPE`")
                        })?;
                        let (dt, nullable) = self.parse_type_with_nullability()?;
                        // Flink allows a description after a field: ROW<a INT 'the a'>.
                        if let Token::SingleQuotedString(_) = self.parser.peek_token().token {
                            self.parser.next_token();
                        }
                        fields.push(Field::new(ident.value, dt, nullable));
                        if self.pending_gt > 0 || !self.parser.consume_token(&Token::Comma) {
                            break;
                        }
                    }
                }
                if angle {
                    self.expect_gt()?;
                } else {
                    self.expect(Token::RParen)?;
                }
                DataType::Struct(Fields::from(fields))
            }
            "MULTISET" | "RAW" | "INTERVAL" => return Err(unsupported(&name)),
            other => {
                const KNOWN: [&str; 20] = [
                    "BOOLEAN",
                    "TINYINT",
                    "SMALLINT",
                    "INT",
                    "INTEGER",
                    "BIGINT",
                    "FLOAT",
                    "DOUBLE",
                    "DECIMAL",
                    "CHAR",
                    "VARCHAR",
                    "STRING",
                    "BINARY",
                    "BYTES",
                    "DATE",
                    "TIME",
                    "TIMESTAMP",
                    "TIMESTAMP_LTZ",
                    "ARRAY",
                    "ROW",
                ];
                let mut e = WeirError::sql(format!("unknown data type '{other}'"), Some(pos));
                if let Some(s) = crate::error::did_you_mean(other, KNOWN) {
                    e = e.with_hint(format!("did you mean {s}?"));
                }
                return Err(e);
            }
        };
        Ok(dt)
    }
}

/// The Flink SQL name of an Arrow type, for DESCRIBE and messages.
pub fn flink_type_name(dt: &DataType) -> String {
    match dt {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Time64(_) | DataType::Time32(_) => "TIME".into(),
        DataType::Timestamp(u, tz) => {
            let p = match u {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            };
            if tz.is_some() {
                format!("TIMESTAMP_LTZ({p})")
            } else {
                format!("TIMESTAMP({p})")
            }
        }
        // A nested type's NOT NULL is part of its name, as in Flink (`ARRAY<INT NOT NULL>`);
        // a map's key is never NULL in Arrow, so only its value says so.
        DataType::List(f) | DataType::LargeList(f) => format!("ARRAY<{}>", nested(f)),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "MAP<{}, {}>",
                flink_type_name(kv[0].data_type()),
                nested(&kv[1])
            ),
            other => other.to_string(),
        },
        DataType::Struct(fields) => format!(
            "ROW<{}>",
            fields
                .iter()
                .map(|f| format!("`{}` {}", f.name(), nested(f)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// A nested field's type as Flink names it: its type, then `NOT NULL` when it is not
/// nullable.
fn nested(f: &datafusion::arrow::datatypes::Field) -> String {
    if f.is_nullable() {
        flink_type_name(f.data_type())
    } else {
        format!("{} NOT NULL", flink_type_name(f.data_type()))
    }
}

/// Flink's type names that DataFusion's SQL planner does not know, in a query
/// (`CAST(x AS TIMESTAMP_LTZ(3))`): sqlparser reads them as custom types, and this planner
/// maps them as `CREATE TABLE` does (see the module's table). Other types are DataFusion's.
#[derive(Debug, Default)]
pub struct FlinkTypes;

impl datafusion::logical_expr::planner::TypePlanner for FlinkTypes {
    fn plan_type_field(
        &self,
        sql_type: &datafusion::sql::sqlparser::ast::DataType,
    ) -> datafusion::error::Result<Option<datafusion::arrow::datatypes::FieldRef>> {
        use datafusion::arrow::datatypes::DataType as Arrow;
        use datafusion::sql::sqlparser::ast::{DataType as Sql, TimezoneInfo};
        // `TIMESTAMP` alone is Flink's TIMESTAMP(6); a precision DataFusion has no unit
        // for (1, 2, 4, 5, 7, 8) is held at the next one, as in `CREATE TABLE`. A
        // TIMESTAMP(0) (and DataFusion's 3, 6, 9) stays DataFusion's (seconds, …).
        if let Sql::Timestamp(precision, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) =
            sql_type
        {
            use datafusion::arrow::datatypes::TimeUnit;
            let unit = match precision {
                None => TimeUnit::Microsecond,
                Some(1 | 2) => TimeUnit::Millisecond,
                Some(4 | 5) => TimeUnit::Microsecond,
                Some(7 | 8) => TimeUnit::Nanosecond,
                Some(_) => return Ok(None),
            };
            return Ok(Some(Arc::new(Field::new(
                "",
                Arrow::Timestamp(unit, None),
                true,
            ))));
        }
        let Sql::Custom(name, args) = sql_type else {
            return Ok(None);
        };
        // `CAST(x AS MAP<…>)` and `ROW<…>` arrive as one quoted name (see
        // `super::syntax`): the type is its text.
        let text = match (name.0.as_slice(), args.is_empty()) {
            ([part], true) => match part.as_ident() {
                Some(i) if i.quote_style == Some('"') => i.value.clone(),
                _ => sql_type.to_string(),
            },
            _ => sql_type.to_string(),
        };
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        let Ok(mut parser) = Parser::new(&dialect).try_with_sql(&text) else {
            return Ok(None);
        };
        Ok(match TypeParser::new(&mut parser).parse_type() {
            Ok(t) if parser.peek_token().token == Token::EOF => {
                Some(Arc::new(Field::new("", t, true)))
            }
            Ok(_) | Err(_) => None,
        }
        .filter(|f| !matches!(f.data_type(), Arrow::Null)))
    }
}

/// Digits of fraction a timestamp unit holds: 0, 3, 6 or 9.
pub(crate) fn unit_digits(u: &TimeUnit) -> u32 {
    match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// Flink casts a `ROW` to a `ROW` type field by field, by position (its `RowToRowCastRule`:
/// the target's names, each field cast to its target type); Arrow's cast matches fields by
/// name and refuses `CAST(ROW(1, 'x') AS ROW<a INT, b STRING>)`. This analyzer rule writes
/// such a cast as `named_struct` of the cast fields (a NULL row stays NULL), nested rows too.
#[derive(Debug, Default)]
pub struct PositionalRowCasts;

impl datafusion::optimizer::analyzer::AnalyzerRule for PositionalRowCasts {
    fn name(&self) -> &str {
        "weir_positional_row_casts"
    }

    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
        use datafusion::common::tree_node::Transformed;
        use datafusion::logical_expr::{Cast, Expr, ExprSchemable, TryCast};
        crate::sql::local_time::each_expression(plan, |e, schema| {
            let (expr, field, safe) = match e {
                Expr::Cast(Cast { expr, field }) => (expr, field, false),
                Expr::TryCast(TryCast { expr, field }) => (expr, field, true),
                e => return Ok(Transformed::no(e)),
            };
            let from = expr.get_type(schema).ok();
            if let Some((a, b)) = from
                .as_ref()
                .and_then(|from| arity_mismatch(from, field.data_type()))
            {
                return datafusion::common::plan_err!(
                    "cannot cast a ROW of {a} field(s) to a ROW of {b}: a CAST of rows goes field by field, by position"
                );
            }
            // A cast to a coarser unit from microseconds or nanoseconds floors first, as
            // Flink's does (see `CutFraction`).
            if let (Some(DataType::Timestamp(from_unit, _)), DataType::Timestamp(to_unit, _)) =
                (&from, field.data_type())
                && matches!(from_unit, TimeUnit::Microsecond | TimeUnit::Nanosecond)
                && unit_digits(to_unit) < unit_digits(from_unit)
                && !matches!(expr.as_ref(), Expr::ScalarFunction(f)
                    if f.name() == crate::sql::functions::CutFraction::NAME
                        && matches!(f.args.get(2), Some(Expr::Literal(datafusion::common::ScalarValue::Boolean(Some(true)), _))))
            {
                // To seconds: the millisecond floored, then Arrow's cut toward zero, as
                // Flink's `truncate` of a floored millisecond (-1 µs is 00:00:00, -999 999 µs
                // is 23:59:59).
                let digits = unit_digits(to_unit).max(3);
                let floored =
                    Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
                        Arc::new(crate::sql::functions::CutFraction::udf()),
                        vec![
                            *expr,
                            datafusion::logical_expr::lit(i64::from(digits)),
                            datafusion::logical_expr::lit(true),
                        ],
                    ));
                let expr = Box::new(floored);
                return Ok(Transformed::yes(match safe {
                    true => Expr::TryCast(TryCast { expr, field }),
                    false => Expr::Cast(Cast { expr, field }),
                }));
            }
            match from {
                Some(from) if renames(Some(&from), field.data_type()) => Ok(Transformed::yes(
                    positional(*expr, &from, field.data_type(), safe)?,
                )),
                _ if safe => Ok(Transformed::no(Expr::TryCast(TryCast { expr, field }))),
                _ => Ok(Transformed::no(Expr::Cast(Cast { expr, field }))),
            }
        })
    }
}

/// A cast of a DOUBLE or FLOAT to a string (written, or put in by type coercion, as for
/// `x || ''`) writes it as Flink does, Java's `Double.toString` (`1.0E20`, `1.0E-5`,
/// `Infinity`), by [`crate::sql::functions::FloatText`]; DataFusion's cast writes `1e20`,
/// `0.00001` and `inf`. A BOOLEAN cast to a string is `TRUE` or `FALSE`, as Flink's
/// `BooleanToStringCastRule` writes it since 1.15 (DataFusion: `true`).
#[derive(Debug)]
pub struct JavaFloatCasts;

impl datafusion::optimizer::analyzer::AnalyzerRule for JavaFloatCasts {
    fn name(&self) -> &str {
        "weir_java_float_casts"
    }

    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
        crate::sql::local_time::each_expression(plan, java_float_cast)
    }
}

/// One expression as [`JavaFloatCasts`] rewrites it, over `schema`, its input's.
pub fn java_float_cast(
    e: datafusion::logical_expr::Expr,
    schema: &datafusion::common::DFSchema,
) -> datafusion::error::Result<
    datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>,
> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::{Cast, Expr, ExprSchemable, TryCast};
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let (inner, to) = match &e {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
            if text(field.data_type()) =>
        {
            (expr.as_ref(), field.data_type().clone())
        }
        _ => return Ok(Transformed::no(e)),
    };
    let call = match inner.get_type(schema) {
        Ok(DataType::Float64 | DataType::Float32) => {
            crate::sql::functions::FloatText::udf().call(vec![inner.clone()])
        }
        // Flink's text of an interval (`+0 00:20:00.000`, `+2-06`).
        Ok(DataType::Interval(_)) => {
            crate::sql::functions::FlinkScalar::udf(crate::sql::functions::FlinkFn::IntervalText)
                .call(vec![inner.clone()])
        }
        // Flink's `BooleanToStringCastRule` (since 1.15): `TRUE`/`FALSE`, NULL stays NULL.
        // The operand form evaluates `inner` once (it may be `RAND() > 0.5`).
        Ok(DataType::Boolean) => Expr::Case(datafusion::logical_expr::Case::new(
            Some(Box::new(inner.clone())),
            vec![
                (
                    Box::new(datafusion::logical_expr::lit(true)),
                    Box::new(datafusion::logical_expr::lit("TRUE")),
                ),
                (
                    Box::new(datafusion::logical_expr::lit(false)),
                    Box::new(datafusion::logical_expr::lit("FALSE")),
                ),
            ],
            None,
        )),
        _ => return Ok(Transformed::no(e)),
    };
    Ok(Transformed::yes(match to {
        DataType::Utf8 => call,
        other => Expr::Cast(Cast::new(Box::new(call), other)),
    }))
}

/// `e`, a lone expression (a computed column, a watermark, an INSERT's cast to its sink's
/// types), with its casts as a query's analyzer makes them ([`JavaFloatCasts`],
/// [`JavaNumericCasts`]), which does not run on such expressions.
pub fn flink_casts(
    e: datafusion::logical_expr::Expr,
    schema: &datafusion::common::DFSchema,
) -> datafusion::error::Result<datafusion::logical_expr::Expr> {
    use datafusion::common::tree_node::TreeNode;
    Ok(e.transform_up(|e| java_float_cast(e, schema))?
        .data
        .transform_up(|e| java_numeric_cast(e, schema))?
        .data)
}

/// Casts between numbers as Flink's cast rules make them (Java's primitive casts, and
/// `DecimalData.fromBigDecimal`): to a narrower integer type, the value's low bits (see
/// [`crate::sql::functions::JavaNarrow`]); from a string to an integer type, Flink's
/// reading of it (a fraction dropped: `CAST('1.5' AS INT)` is 1); from a number to a `DECIMAL` too small for it,
/// NULL (`CAST(123.4 AS DECIMAL(3, 1))`), where DataFusion's cast fails the query.
#[derive(Debug)]
pub struct JavaNumericCasts;

impl datafusion::optimizer::analyzer::AnalyzerRule for JavaNumericCasts {
    fn name(&self) -> &str {
        "weir_java_numeric_casts"
    }

    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
        crate::sql::local_time::each_expression(plan, java_numeric_cast)
    }
}

/// One expression as [`JavaNumericCasts`] rewrites it (a cast it takes, replaced; any
/// other, as it is), over `schema`, its input's.
pub fn java_numeric_cast(
    e: datafusion::logical_expr::Expr,
    schema: &datafusion::common::DFSchema,
) -> datafusion::error::Result<
    datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>,
> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::{Cast, Expr, ExprSchemable, TryCast};
    // Bits of an integer type; None for others.
    let bits = |t: &DataType| match t {
        DataType::Int8 => Some(8),
        DataType::Int16 => Some(16),
        DataType::Int32 => Some(32),
        DataType::Int64 => Some(64),
        _ => None,
    };
    let (inner, to) = match &e {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            (expr.as_ref(), field.data_type().clone())
        }
        _ => return Ok(Transformed::no(e)),
    };
    let Ok(from) = inner.get_type(schema) else {
        return Ok(Transformed::no(e));
    };
    if let Some(to_bits) = bits(&to) {
        let narrowing = match bits(&from) {
            Some(b) => b > to_bits,
            None => matches!(
                from,
                DataType::Float64
                    | DataType::Float32
                    | DataType::Decimal128(..)
                    | DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
            ),
        };
        if !narrowing {
            return Ok(Transformed::no(e));
        }
        let safe = matches!(e, Expr::TryCast(_));
        let call = crate::sql::functions::JavaNarrow::udf(to, safe).call(vec![inner.clone()]);
        return Ok(Transformed::yes(call));
    }
    // A string read as a TIMESTAMP (without a zone) or a DATE, as Flink reads it.
    let string = matches!(
        from,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if string && matches!(to, DataType::Decimal128(..)) {
        let safe = matches!(e, Expr::TryCast(_));
        let call = crate::sql::functions::StringToDecimal::udf(to, safe).call(vec![inner.clone()]);
        return Ok(Transformed::yes(call));
    }
    if string && matches!(to, DataType::Timestamp(_, None) | DataType::Date32) {
        let safe = matches!(e, Expr::TryCast(_));
        let call = crate::sql::functions::FlinkTimeCast::udf(to, safe).call(vec![inner.clone()]);
        return Ok(Transformed::yes(call));
    }
    let numeric = bits(&from).is_some()
        || matches!(
            from,
            DataType::Float64 | DataType::Float32 | DataType::Decimal128(..)
        );
    if matches!(to, DataType::Decimal128(..)) && numeric && matches!(e, Expr::Cast(_)) {
        return Ok(Transformed::yes(Expr::TryCast(TryCast::new(
            Box::new(inner.clone()),
            to,
        ))));
    }
    Ok(Transformed::no(e))
}

/// `m[k]` on a MAP reads the entry whose key equals `k`, in the map's key type: the key is
/// cast to it (`m[1]` of a `MAP<INT, STRING>`, whose literal is a BIGINT before this; Flink
/// types it INT). DataFusion's `get_field` compares the keys as they come and fails at run
/// time on a mismatch ("Invalid comparison operation: Int64 == Int32").
#[derive(Debug)]
pub struct MapKeyCasts;

impl datafusion::optimizer::analyzer::AnalyzerRule for MapKeyCasts {
    fn name(&self) -> &str {
        "weir_map_key_casts"
    }

    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
        use datafusion::common::tree_node::Transformed;
        use datafusion::logical_expr::{Expr, ExprSchemable};
        crate::sql::local_time::each_expression(plan, |e, schema| {
            let Expr::ScalarFunction(mut f) = e else {
                return Ok(Transformed::no(e));
            };
            if f.name() != "get_field" || f.args.len() != 2 {
                return Ok(Transformed::no(Expr::ScalarFunction(f)));
            }
            let key_type = match f.args[0].get_type(schema) {
                Ok(DataType::Map(entries, _)) => match entries.data_type() {
                    DataType::Struct(kv) if kv.len() == 2 => kv[0].data_type().clone(),
                    _ => return Ok(Transformed::no(Expr::ScalarFunction(f))),
                },
                _ => return Ok(Transformed::no(Expr::ScalarFunction(f))),
            };
            match f.args[1].get_type(schema) {
                Ok(t) if t != key_type => {}
                _ => return Ok(Transformed::no(Expr::ScalarFunction(f))),
            }
            let key = f.args.remove(1);
            let key = match key {
                // A literal stays one (`get_field` reads a map key from a literal).
                Expr::Literal(v, meta) => Expr::Literal(v.cast_to(&key_type)?, meta),
                other => other.cast_to(&key_type, schema)?,
            };
            f.args.push(key);
            Ok(Transformed::yes(Expr::ScalarFunction(f)))
        })
    }
}

/// Whether a cast from `from` to `to` is a row cast Arrow would match by name: two structs
/// of one arity whose names differ somewhere (at any depth, in an ARRAY's elements and a
/// MAP's keys and values too).
pub(crate) fn renames(from: Option<&DataType>, to: &DataType) -> bool {
    match (from, to) {
        (Some(DataType::Struct(a)), DataType::Struct(b)) if a.len() == b.len() => a
            .iter()
            .zip(b.iter())
            .any(|(x, y)| x.name() != y.name() || renames(Some(x.data_type()), y.data_type())),
        (Some(DataType::List(a)), DataType::List(b))
        | (Some(DataType::LargeList(a)), DataType::LargeList(b))
        | (Some(DataType::Map(a, _)), DataType::Map(b, _)) => {
            renames(Some(a.data_type()), b.data_type())
        }
        _ => false,
    }
}

/// The first pair of ROWs, at any depth of a cast from `from` to `to`, whose numbers of
/// fields differ: `(from's, to's)`.
fn arity_mismatch(from: &DataType, to: &DataType) -> Option<(usize, usize)> {
    match (from, to) {
        (DataType::Struct(a), DataType::Struct(b)) if a.len() != b.len() => {
            Some((a.len(), b.len()))
        }
        (DataType::Struct(a), DataType::Struct(b)) => a
            .iter()
            .zip(b.iter())
            .find_map(|(x, y)| arity_mismatch(x.data_type(), y.data_type())),
        (
            DataType::List(a) | DataType::LargeList(a) | DataType::FixedSizeList(a, _),
            DataType::List(b) | DataType::LargeList(b) | DataType::FixedSizeList(b, _),
        )
        | (DataType::Map(a, _), DataType::Map(b, _)) => {
            arity_mismatch(a.data_type(), b.data_type())
        }
        _ => None,
    }
}

/// The name of [`PositionalCast`]; of its `TRY_CAST` form, [`POSITIONAL_TRY_CAST`].
pub const POSITIONAL_CAST: &str = "weir_positional_cast";
/// `weir_positional_try_cast(x, t)`: as [`POSITIONAL_CAST`], a value that cannot be cast
/// becoming NULL (`TRY_CAST`).
pub const POSITIONAL_TRY_CAST: &str = "weir_positional_try_cast";

/// `weir_positional_cast(x, t)`: `x` cast to the type of `t` (a typed NULL) with every ROW
/// in it — in an ARRAY's elements, a MAP's keys or values, a ROW's fields — cast field by
/// field by position, taking the target's names, as Flink's `RowToRowCastRule` casts
/// (Arrow's cast matches fields by name). Used for rows inside arrays and maps, which an
/// expression cannot reach field by field; a ROW alone is cast by [`positional`]'s
/// expressions. Errors: rows of another arity, or a value Arrow cannot cast.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PositionalCast {
    signature: datafusion::logical_expr::Signature,
    /// `TRY_CAST`: a value that cannot be cast becomes NULL.
    safe: bool,
}

impl PositionalCast {
    /// The function (`safe`: the `TRY_CAST` form), to put into a plan.
    pub fn udf(safe: bool) -> datafusion::logical_expr::ScalarUDF {
        datafusion::logical_expr::ScalarUDF::from(PositionalCast {
            signature: datafusion::logical_expr::Signature::any(
                2,
                datafusion::logical_expr::Volatility::Immutable,
            ),
            safe,
        })
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for PositionalCast {
    fn name(&self) -> &str {
        if self.safe {
            POSITIONAL_TRY_CAST
        } else {
            POSITIONAL_CAST
        }
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [_, to] => Ok(to.clone()),
            _ => datafusion::common::plan_err!("{POSITIONAL_CAST} takes a value and a type"),
        }
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> {
        let [x, _] = args.args.as_slice() else {
            return datafusion::common::exec_err!("{POSITIONAL_CAST} takes a value and a type");
        };
        let scalar = matches!(x, datafusion::logical_expr::ColumnarValue::Scalar(_));
        let array = x.to_array(args.number_rows.max(1))?;
        let cast = by_position(&array, args.return_field.data_type(), self.safe)?;
        crate::sql::functions::shaped(cast, scalar)
    }
}

/// A list `array` (offsets `O`) cast to a list of `item`s, its elements by [`by_position`].
fn list_by_position<O: datafusion::arrow::array::OffsetSizeTrait>(
    array: &datafusion::arrow::array::ArrayRef,
    item: &datafusion::arrow::datatypes::FieldRef,
    safe: bool,
) -> datafusion::error::Result<datafusion::arrow::array::ArrayRef> {
    use datafusion::arrow::array::{Array, AsArray, GenericListArray};
    let l = array.as_list::<O>();
    Ok(Arc::new(GenericListArray::<O>::try_new(
        item.clone(),
        l.offsets().clone(),
        by_position(l.values(), item.data_type(), safe)?,
        l.nulls().cloned(),
    )?))
}

/// `array` cast to `to`, rows by position (see [`PositionalCast`]); other values as CAST
/// casts them (an overflow is an error), or with `safe` as TRY_CAST does (NULL).
fn by_position(
    array: &datafusion::arrow::array::ArrayRef,
    to: &DataType,
    safe: bool,
) -> datafusion::error::Result<datafusion::arrow::array::ArrayRef> {
    use datafusion::arrow::array::{Array, AsArray, MapArray, StructArray};
    use datafusion::arrow::compute::{CastOptions, cast_with_options};
    Ok(match (array.data_type(), to) {
        (DataType::Struct(a), DataType::Struct(b)) => {
            if a.len() != b.len() {
                return datafusion::common::exec_err!(
                    "cannot cast a ROW of {} fields to a ROW of {}",
                    a.len(),
                    b.len()
                );
            }
            let s = array.as_struct();
            let columns = s
                .columns()
                .iter()
                .zip(b.iter())
                .map(|(c, f)| by_position(c, f.data_type(), safe))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            Arc::new(StructArray::try_new(
                b.clone(),
                columns,
                s.nulls().cloned(),
            )?)
        }
        (DataType::List(_), DataType::List(f)) => list_by_position::<i32>(array, f, safe)?,
        (DataType::LargeList(_), DataType::LargeList(f)) => {
            list_by_position::<i64>(array, f, safe)?
        }
        (DataType::Map(_, _), DataType::Map(f, sorted)) => {
            let m = array.as_map();
            let entries: datafusion::arrow::array::ArrayRef = Arc::new(m.entries().clone());
            let entries = by_position(&entries, f.data_type(), safe)?;
            Arc::new(MapArray::try_new(
                f.clone(),
                m.offsets().clone(),
                entries.as_struct().clone(),
                m.nulls().cloned(),
                *sorted,
            )?)
        }
        _ => cast_with_options(
            array,
            to,
            &CastOptions {
                safe,
                ..Default::default()
            },
        )?,
    })
}

/// `e` cast to `to` by a plain CAST, or TRY_CAST when `safe`.
fn leaf(
    e: datafusion::logical_expr::Expr,
    to: &DataType,
    safe: bool,
) -> datafusion::logical_expr::Expr {
    use datafusion::logical_expr::{Cast, Expr, TryCast};
    if safe {
        Expr::TryCast(TryCast::new(Box::new(e), to.clone()))
    } else {
        Expr::Cast(Cast::new(Box::new(e), to.clone()))
    }
}

/// `e` (of row type `from`) cast to the row type `to` field by field, by position (leaf
/// values by TRY_CAST when `safe`); an
/// ARRAY or MAP holding rows through [`PositionalCast`].
pub(crate) fn positional(
    e: datafusion::logical_expr::Expr,
    from: &DataType,
    to: &DataType,
    safe: bool,
) -> datafusion::error::Result<datafusion::logical_expr::Expr> {
    use datafusion::functions::core::expr_fn::{get_field, named_struct};
    use datafusion::logical_expr::{Expr, lit, when};
    let (DataType::Struct(a), DataType::Struct(b)) = (from, to) else {
        if renames(Some(from), to) {
            // Rows inside an ARRAY or a MAP: cast by the function, element by element.
            return Ok(Expr::ScalarFunction(
                datafusion::logical_expr::expr::ScalarFunction::new_udf(
                    Arc::new(PositionalCast::udf(safe)),
                    vec![
                        e,
                        Expr::Literal(datafusion::common::ScalarValue::try_from(to)?, None),
                    ],
                ),
            ));
        }
        return Ok(leaf(e, to, safe));
    };
    let mut args = Vec::with_capacity(2 * b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        let part = get_field(e.clone(), x.name().as_str());
        let cast = if renames(Some(x.data_type()), y.data_type()) {
            positional(part, x.data_type(), y.data_type(), safe)?
        } else if x.data_type() == y.data_type() {
            part
        } else {
            leaf(part, y.data_type(), safe)
        };
        args.push(lit(y.name().as_str()));
        args.push(cast);
    }
    when(
        e.is_null(),
        Expr::Literal(datafusion::common::ScalarValue::try_from(to)?, None),
    )
    .otherwise(named_struct(args))
}
