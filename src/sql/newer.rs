//! Functions Flink's documentation added in its 1.19 to 2.x releases, by Flink's rules (each
//! from its runtime class, named below): `JSON_QUOTE`, `JSON_UNQUOTE`, `REGEXP_EXTRACT_ALL`,
//! `REGEXP_SUBSTR`, `REGEXP_COUNT`, `REGEXP_INSTR`, `REGEXP`, `UNHEX`, `URL_ENCODE`, `URL_DECODE`, `MAP_UNION` and `PRINTF`. `ELT`,
//! `ARRAY_SLICE` without its end and `ARRAY_SORT` with its order are rewritten onto other
//! functions in [`super::rewrite`]. NULL in gives NULL out unless a function says otherwise.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, MapArray, StringArray, StructArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use super::functions::{PatternCache, all_scalar, arg_as, shaped};

/// The functions of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NewerFn {
    /// `JSON_QUOTE(string)`: the string as a JSON string literal, in double quotes, with `"`,
    /// `\`, `/`, backspace, form feed, newline, carriage return and tab escaped and every
    /// character past ASCII written `\uXXXX` (Flink's `JsonQuoteFunction`, which writes a
    /// character outside the Basic Multilingual Plane as its code point, then its low
    /// surrogate).
    JsonQuote,
    /// `JSON_UNQUOTE(string)`: a string that is a valid JSON value and a quoted JSON string
    /// unescaped (`"a\"b"` gives `a"b`); any other string (invalid JSON, an object, a
    /// number) as it is (Flink's `JsonUnquoteFunction`).
    JsonUnquote,
    /// `REGEXP_EXTRACT_ALL(str, regex[, extractIndex])`: an `ARRAY<STRING>` of group
    /// `extractIndex` (default 1; 0 is the whole match) of every match, in order (Flink's
    /// `RegexpExtractAllFunction`); NULL for a pattern that is not a regular expression or
    /// an index outside 0 to the pattern's group count. A group that did not take part in
    /// a match is a NULL element.
    RegexpExtractAll,
    /// `REGEXP_SUBSTR(str, regex)`: the first match; NULL when nothing matches or the
    /// pattern is not a regular expression (Flink's `RegexpSubstrFunction`).
    RegexpSubstr,
    /// `REGEXP(str, regex)` (as `weir_regexp`): TRUE when a part of `str` matches `regex`;
    /// FALSE for an empty pattern and for one that is not a regular expression (Flink's
    /// `SqlFunctionUtils.regExp` catches the error and returns false).
    Regexp,
    /// `REGEXP_COUNT(str, regex)`: how many times `regex` matches in `str`, as an INT;
    /// NULL when the pattern is not a regular expression (Flink's `RegexpCountFunction`).
    RegexpCount,
    /// `REGEXP_INSTR(str, regex)`: the 1-based position (in UTF-16 units, as Java counts) of the first match,
    /// 0 when none, as an INT; NULL when the pattern is not a regular expression (Flink's
    /// `RegexpInstrFunction`).
    RegexpInstr,
    /// `UNHEX(string)`: the BYTES the hexadecimal digits spell, two digits a byte (either
    /// case); of an odd count the first digit is dropped and a zero byte put in front
    /// (`'ABC'` is `X'00BC'`, Flink's `UnhexFunction`); NULL when a character is not a
    /// hexadecimal digit.
    Unhex,
    /// `URL_ENCODE(string)`: the string in `application/x-www-form-urlencoded` form, UTF-8
    /// (Java's `URLEncoder.encode(s, "UTF-8")`: letters, digits and `.-*_` stay, a space is
    /// `+`, every other byte `%XX`).
    UrlEncode,
    /// `URL_DECODE(string)`: the reverse (Java's `URLDecoder.decode(s, "UTF-8")`: `+` is a
    /// space, `%XX` a byte, bytes that are not UTF-8 the replacement character); NULL for
    /// an illegal escape (`%`, `%G1`), as Flink's `UrlDecodeFunction` catches it.
    UrlDecode,
    /// `MAP_UNION(map1, map2, …)`: one map with the entries of all, a later map's value
    /// winning for a key in both; the later map's entries first, then the earlier's other
    /// keys (Flink's `MapUnionFunction`); NULL when any map is NULL. Errors: an argument
    /// that is not a MAP of the first one's type.
    MapUnion,
    /// `ARRAY_SLICE(array, start[, end])` (as `weir_array_slice`): the elements from
    /// `start` to `end` (1-based, inclusive; negative counts from the end; `end` defaults
    /// to the array's length), by Flink's `ArraySliceFunction`: a negative offset has the
    /// length + 1 added, `start` is at least 1, an `end` of 0 is 1 and one past the end is
    /// the end, and an `end` before `start` gives an empty array. NULL for a NULL argument.
    ArraySlice,
    /// `PRINTF(format, obj, …)`: Java's `String.format(Locale.US, format, obj…)` — see
    /// [`java_format`] for the conversions taken. NULL for a NULL format, and for a format
    /// the formatter refuses (a specifier without its argument, a conversion the
    /// argument's type does not take, flags that do not go together, a conversion
    /// [`java_format`] does not take: `%t`, `%h`, `%a`), as Flink's `PrintfFunction`
    /// returns NULL when Java's formatter throws.
    Printf,
}

impl NewerFn {
    const ALL: [NewerFn; 13] = [
        NewerFn::Regexp,
        NewerFn::RegexpCount,
        NewerFn::RegexpInstr,
        NewerFn::ArraySlice,
        NewerFn::JsonQuote,
        NewerFn::JsonUnquote,
        NewerFn::RegexpExtractAll,
        NewerFn::RegexpSubstr,
        NewerFn::Unhex,
        NewerFn::UrlEncode,
        NewerFn::UrlDecode,
        NewerFn::MapUnion,
        NewerFn::Printf,
    ];

    fn name(self) -> &'static str {
        match self {
            NewerFn::JsonQuote => "json_quote",
            NewerFn::JsonUnquote => "json_unquote",
            NewerFn::RegexpExtractAll => "regexp_extract_all",
            NewerFn::RegexpSubstr => "regexp_substr",
            NewerFn::Regexp => "weir_regexp",
            NewerFn::RegexpCount => "regexp_count",
            NewerFn::RegexpInstr => "regexp_instr",
            NewerFn::Unhex => "unhex",
            NewerFn::UrlEncode => "url_encode",
            NewerFn::UrlDecode => "url_decode",
            NewerFn::MapUnion => "map_union",
            NewerFn::ArraySlice => "weir_array_slice",
            NewerFn::Printf => "printf",
        }
    }

    fn signature(self) -> Signature {
        let v = Volatility::Immutable;
        match self {
            NewerFn::RegexpExtractAll | NewerFn::ArraySlice => {
                Signature::one_of(vec![TypeSignature::Any(2), TypeSignature::Any(3)], v)
            }
            NewerFn::RegexpSubstr
            | NewerFn::Regexp
            | NewerFn::RegexpCount
            | NewerFn::RegexpInstr => Signature::any(2, v),
            NewerFn::MapUnion | NewerFn::Printf => Signature::variadic_any(v),
            _ => Signature::any(1, v),
        }
    }
}

/// One function of [`NewerFn`] as a DataFusion UDF, by its Flink name (either case).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Newer {
    f: NewerFn,
    aliases: Vec<String>,
    signature: Signature,
}

impl Newer {
    /// Every function of the module, to register with a DataFusion context.
    pub fn udfs() -> Vec<ScalarUDF> {
        NewerFn::ALL
            .into_iter()
            .map(|f| {
                ScalarUDF::from(Newer {
                    f,
                    aliases: vec![f.name().to_uppercase()],
                    signature: f.signature(),
                })
            })
            .collect()
    }
}

fn exec_err(message: String) -> DataFusionError {
    DataFusionError::Execution(message)
}

impl ScalarUDFImpl for Newer {
    fn name(&self) -> &str {
        self.f.name()
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(match self.f {
            NewerFn::Unhex => DataType::Binary,
            NewerFn::Regexp => DataType::Boolean,
            NewerFn::RegexpCount | NewerFn::RegexpInstr => DataType::Int32,
            NewerFn::RegexpExtractAll => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
            NewerFn::MapUnion => {
                let Some(first) = args.first() else {
                    return datafusion::common::plan_err!("MAP_UNION takes one map or more");
                };
                for t in args {
                    if !matches!(t, DataType::Map(..) | DataType::Null) {
                        return datafusion::common::plan_err!(
                            "MAP_UNION takes maps, not {}",
                            crate::sql::types::flink_type_name(t)
                        );
                    }
                }
                let maps: Vec<&DataType> = args
                    .iter()
                    .filter(|t| matches!(t, DataType::Map(..)))
                    .collect();
                let Some(&out) = maps.first() else {
                    return Ok(first.clone());
                };
                // The keys' and the values' common types (Calcite's least restrictive:
                // an INT map and a DOUBLE map make a DOUBLE map), in the first map's layout.
                let parts = |t: &DataType| match t {
                    DataType::Map(e, sorted) => match e.data_type() {
                        DataType::Struct(kv) if kv.len() == 2 => {
                            Some((e.clone(), kv.clone(), *sorted))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let common = |i: usize| {
                    let types: Vec<DataType> = maps
                        .iter()
                        .filter_map(|t| parts(t).map(|(_, kv, _)| kv[i].data_type().clone()))
                        .collect();
                    datafusion::logical_expr::type_coercion::binary::type_union_resolution(&types)
                };
                let out = match (parts(out), common(0), common(1)) {
                    (Some((entries, kv, sorted)), Some(k), Some(v)) => {
                        let kv = datafusion::arrow::datatypes::Fields::from(vec![
                            kv[0].as_ref().clone().with_data_type(k),
                            kv[1].as_ref().clone().with_data_type(v).with_nullable(true),
                        ]);
                        DataType::Map(
                            Arc::new(
                                entries
                                    .as_ref()
                                    .clone()
                                    .with_data_type(DataType::Struct(kv)),
                            ),
                            sorted,
                        )
                    }
                    _ => out.clone(),
                };
                // Maps of one type, or of keys and values of one kind (numbers, strings):
                // a union of MAP<STRING, INT> and MAP<STRING, STRING> has no common type.
                let kinds = |t: &DataType| match t {
                    DataType::Map(e, _) => match e.data_type() {
                        DataType::Struct(kv) if kv.len() == 2 => {
                            Some([kv[0].data_type(), kv[1].data_type()].map(|t| {
                                if t.is_numeric() {
                                    "number".to_string()
                                } else if t.is_string() {
                                    "string".to_string()
                                } else {
                                    t.to_string()
                                }
                            }))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                for t in args {
                    if matches!(t, DataType::Map(..)) && kinds(t) != kinds(&out) {
                        return datafusion::common::plan_err!(
                            "MAP_UNION takes maps of one type, not {} and {}",
                            crate::sql::types::flink_type_name(&out),
                            crate::sql::types::flink_type_name(t)
                        );
                    }
                }
                out
            }
            NewerFn::ArraySlice => match args.first() {
                Some(t @ (DataType::List(_) | DataType::Null)) => t.clone(),
                Some(DataType::LargeList(f) | DataType::FixedSizeList(f, _)) => {
                    DataType::List(f.clone())
                }
                other => {
                    return datafusion::common::plan_err!(
                        "ARRAY_SLICE takes an ARRAY, not {}",
                        other.map_or("nothing".to_string(), crate::sql::types::flink_type_name)
                    );
                }
            },
            NewerFn::Printf if args.is_empty() => {
                return datafusion::common::plan_err!("PRINTF takes a format and its arguments");
            }
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let scalar = all_scalar(&args);
        let n = args.number_rows;
        let out: ArrayRef = match self.f {
            NewerFn::JsonQuote | NewerFn::JsonUnquote | NewerFn::UrlEncode | NewerFn::UrlDecode => {
                let s = arg_as(&args, 0, &DataType::Utf8)?;
                let f = match self.f {
                    NewerFn::JsonQuote => |s: &str| Some(json_quote(s)),
                    NewerFn::JsonUnquote => |s: &str| Some(json_unquote(s)),
                    NewerFn::UrlEncode => |s: &str| Some(url_encode(s)),
                    _ => url_decode,
                };
                Arc::new(
                    s.as_string::<i32>()
                        .iter()
                        .map(|v| v.and_then(f))
                        .collect::<StringArray>(),
                )
            }
            NewerFn::Unhex => {
                let s = arg_as(&args, 0, &DataType::Utf8)?;
                Arc::new(
                    s.as_string::<i32>()
                        .iter()
                        .map(|v| v.and_then(unhex))
                        .collect::<BinaryArray>(),
                )
            }
            NewerFn::RegexpSubstr => {
                let s = arg_as(&args, 0, &DataType::Utf8)?;
                let re = arg_as(&args, 1, &DataType::Utf8)?;
                let (s, re) = (s.as_string::<i32>(), re.as_string::<i32>());
                let mut cache = PatternCache::default();
                Arc::new(
                    (0..n)
                        .map(|i| {
                            if s.is_null(i) || re.is_null(i) {
                                return None;
                            }
                            let r = cache.get(re.value(i)).ok()?;
                            let m = r.on(s.value(i)).find(s.value(i)).ok()??;
                            Some(m.as_str().to_string())
                        })
                        .collect::<StringArray>(),
                )
            }
            NewerFn::RegexpExtractAll => regexp_extract_all(&args)?,
            NewerFn::Regexp | NewerFn::RegexpCount | NewerFn::RegexpInstr => {
                regexp_match(self.f, &args)?
            }
            NewerFn::MapUnion => map_union(&args)?,
            NewerFn::ArraySlice => array_slice(&args)?,
            NewerFn::Printf => printf(&args)?,
        };
        shaped(out, scalar)
    }
}

/// `JSON_QUOTE`: see [`NewerFn::JsonQuote`].
fn json_quote(s: &str) -> String {
    let units: Vec<u16> = s.encode_utf16().collect();
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for i in 0..units.len() {
        let unit = units[i];
        if unit < 128 {
            match unit as u8 {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'/' => out.push_str("\\/"),
                0x08 => out.push_str("\\b"),
                0x0C => out.push_str("\\f"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                b => out.push(b as char),
            }
            continue;
        }
        // Java's `codePointAt(i)`: a high surrogate followed by a low one is their code
        // point; the low one is then visited on its own.
        let code = match (unit, units.get(i + 1)) {
            (0xD800..=0xDBFF, Some(&low @ 0xDC00..=0xDFFF)) => {
                0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
            }
            _ => u32::from(unit),
        };
        out.push_str(&format!("\\u{code:04x}"));
    }
    out.push('"');
    out
}

/// `JSON_UNQUOTE`: see [`NewerFn::JsonUnquote`].
fn json_unquote(s: &str) -> String {
    if s.len() >= 2
        && s.starts_with('"')
        && s.ends_with('"')
        && let Ok(serde_json::Value::String(text)) = serde_json::from_str::<serde_json::Value>(s)
    {
        return text;
    }
    s.to_string()
}

/// `URL_ENCODE`: see [`NewerFn::UrlEncode`].
fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `URL_DECODE`: see [`NewerFn::UrlDecode`]; None for an illegal escape.
fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `UNHEX`: see [`NewerFn::Unhex`]; None for a character that is not a hexadecimal digit.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()?;
    // An odd count: the first digit is dropped and a zero byte stands in front (Flink's
    // `UnhexFunction`, as its documentation says).
    let (first, rest) = digits.split_at(digits.len() % 2);
    Some(
        first
            .iter()
            .map(|_| 0u8)
            .chain(rest.chunks(2).map(|p| (p[0] << 4) | p[1]))
            .collect(),
    )
}

/// `REGEXP_EXTRACT_ALL`: see [`NewerFn::RegexpExtractAll`].
fn regexp_extract_all(args: &ScalarFunctionArgs) -> datafusion::error::Result<ArrayRef> {
    use datafusion::arrow::array::{Int64Array, ListBuilder, StringBuilder};
    use datafusion::arrow::datatypes::Int64Type;
    let n = args.number_rows;
    let s = arg_as(args, 0, &DataType::Utf8)?;
    let re = arg_as(args, 1, &DataType::Utf8)?;
    let idx = match args.args.len() {
        3 => arg_as(args, 2, &DataType::Int64)?,
        _ => Arc::new(Int64Array::from(vec![1; n])),
    };
    let (s, re, idx) = (
        s.as_string::<i32>(),
        re.as_string::<i32>(),
        idx.as_primitive::<Int64Type>(),
    );
    let mut cache = PatternCache::default();
    let mut out = ListBuilder::new(StringBuilder::new());
    for i in 0..n {
        if s.is_null(i) || re.is_null(i) || idx.is_null(i) {
            out.append(false);
            continue;
        }
        // A pattern that is not a regular expression, or a group it does not have: NULL.
        let Ok(r) = cache.get(re.value(i)) else {
            out.append(false);
            continue;
        };
        let groups = r.captures_len() - 1;
        let Some(group) = usize::try_from(idx.value(i)).ok().filter(|&g| g <= groups) else {
            out.append(false);
            continue;
        };
        // A match that runs past the backtracking limit: NULL, as a bad pattern.
        let Ok(all) = r.captures_all(s.value(i)) else {
            out.append(false);
            continue;
        };
        for caps in all {
            out.values()
                .append_option(caps.get(group).map(|m| m.as_str()));
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()) as ArrayRef)
}

/// `REGEXP`, `REGEXP_COUNT` and `REGEXP_INSTR`: see [`NewerFn::Regexp`].
fn regexp_match(f: NewerFn, args: &ScalarFunctionArgs) -> datafusion::error::Result<ArrayRef> {
    use datafusion::arrow::array::{BooleanArray, Int32Array};
    let n = args.number_rows;
    let s = arg_as(args, 0, &DataType::Utf8)?;
    let re = arg_as(args, 1, &DataType::Utf8)?;
    let (s, re) = (s.as_string::<i32>(), re.as_string::<i32>());
    let mut cache = PatternCache::default();
    // Each row's answer; `None` for a pattern that is not a regular expression (or a match
    // that ran past the backtracking limit).
    let mut answer = |i: usize| -> Option<Option<i64>> {
        if s.is_null(i) || re.is_null(i) {
            return None;
        }
        let (text, pattern) = (s.value(i), re.value(i));
        if f == NewerFn::Regexp && pattern.is_empty() {
            return Some(None);
        }
        let r = cache.get(pattern).ok();
        Some(r.and_then(|r| match f {
            NewerFn::RegexpCount => i64::try_from(r.find_all(text).ok()?.len()).ok(),
            // Java's `matcher.start() + 1`: UTF-16 units.
            NewerFn::RegexpInstr => Some(match r.on(text).find(text).ok()? {
                Some(m) => text[..m.start()].encode_utf16().count() as i64 + 1,
                None => 0,
            }),
            _ => Some(i64::from(r.on(text).is_match(text).ok()?)),
        }))
    };
    Ok(match f {
        NewerFn::Regexp => Arc::new(
            (0..n)
                .map(|i| answer(i).map(|a| a == Some(1)))
                .collect::<BooleanArray>(),
        ) as ArrayRef,
        _ => Arc::new(
            (0..n)
                .map(|i| answer(i).flatten().and_then(|v| i32::try_from(v).ok()))
                .collect::<Int32Array>(),
        ),
    })
}

/// `MAP_UNION`: see [`NewerFn::MapUnion`].
fn map_union(args: &ScalarFunctionArgs) -> datafusion::error::Result<ArrayRef> {
    use datafusion::arrow::compute::interleave;
    let n = args.number_rows;
    let out_type = args.return_field.data_type().clone();
    let DataType::Map(entries_field, sorted) = &out_type else {
        // Every argument is a NULL literal: NULL.
        return Ok(datafusion::arrow::array::new_null_array(&out_type, n));
    };
    let maps: Vec<MapArray> =
        args.args
            .iter()
            .map(|a| {
                let a = a.to_array(n)?;
                // Strict: a value that does not fit the union's type is an error, not a NULL.
                let strict = datafusion::arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                };
                let a = datafusion::arrow::compute::cast_with_options(&a, &out_type, &strict)
                    .map_err(|e| {
                        exec_err(format!(
                            "MAP_UNION takes maps of one type ({}): {e}",
                            crate::sql::types::flink_type_name(&out_type)
                        ))
                    })?;
                Ok(a.as_map().clone())
            })
            .collect::<datafusion::error::Result<_>>()?;
    // Each key as a row of comparable bytes, per map.
    let converter =
        datafusion::arrow::row::RowConverter::new(vec![datafusion::arrow::row::SortField::new(
            match entries_field.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => kv[0].data_type().clone(),
                other => {
                    return Err(exec_err(format!("MAP_UNION: a map of {other}")));
                }
            },
        )])?;
    let keys: Vec<datafusion::arrow::row::Rows> = maps
        .iter()
        .map(|m| converter.convert_columns(&[m.keys().clone()]))
        .collect::<Result<_, _>>()?;
    let mut picks: Vec<(usize, usize)> = vec![];
    let mut offsets = vec![0i32];
    let mut valid = Vec::with_capacity(n);
    for row in 0..n {
        if maps.iter().any(|m| m.is_null(row)) {
            valid.push(false);
            offsets.push(picks.len() as i32);
            continue;
        }
        let range = |m: usize| {
            let o = maps[m].value_offsets();
            o[row] as usize..o[row + 1] as usize
        };
        // The union so far, as (map, entry) pairs; a non-empty later map goes first and
        // keeps the earlier entries whose keys it does not hold.
        let mut union: Vec<(usize, usize)> = range(0).map(|e| (0, e)).collect();
        for m in 1..maps.len() {
            let later: Vec<(usize, usize)> = range(m).map(|e| (m, e)).collect();
            if later.is_empty() {
                continue;
            }
            let kept: Vec<(usize, usize)> = union
                .into_iter()
                .filter(|&(a, e)| !later.iter().any(|&(b, f)| keys[a].row(e) == keys[b].row(f)))
                .collect();
            union = later.into_iter().chain(kept).collect();
        }
        picks.extend(union);
        valid.push(true);
        offsets.push(picks.len() as i32);
    }
    let entries: Vec<&StructArray> = maps.iter().map(|m| m.entries()).collect();
    let entry_refs: Vec<&dyn Array> = entries.iter().map(|e| *e as &dyn Array).collect();
    let merged = interleave(&entry_refs, &picks)?;
    Ok(Arc::new(MapArray::try_new(
        entries_field.clone(),
        OffsetBuffer::new(offsets.into()),
        merged.as_struct().clone(),
        Some(NullBuffer::from(valid)),
        *sorted,
    )?))
}

/// `ARRAY_SLICE`: see [`NewerFn::ArraySlice`].
fn array_slice(args: &ScalarFunctionArgs) -> datafusion::error::Result<ArrayRef> {
    use datafusion::arrow::array::{Int64Array, UInt32Array};
    use datafusion::arrow::datatypes::Int64Type;
    let n = args.number_rows;
    let out_type = args.return_field.data_type().clone();
    let DataType::List(field) = &out_type else {
        return Ok(datafusion::arrow::array::new_null_array(&out_type, n));
    };
    let arrays = arg_as(args, 0, &out_type)?;
    let arrays = arrays.as_list::<i32>();
    let start = arg_as(args, 1, &DataType::Int64)?;
    let start = start.as_primitive::<Int64Type>();
    let end: Option<Int64Array> = match args.args.len() {
        3 => Some(
            arg_as(args, 2, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone(),
        ),
        _ => None,
    };
    let mut take: Vec<u32> = vec![];
    let mut offsets = vec![0i32];
    let mut valid = Vec::with_capacity(n);
    for row in 0..n {
        let end_null = end.as_ref().is_some_and(|e| e.is_null(row));
        if arrays.is_null(row) || start.is_null(row) || end_null {
            valid.push(false);
            offsets.push(take.len() as i32);
            continue;
        }
        let o = arrays.value_offsets();
        let (first, size) = (o[row] as i64, i64::from(o[row + 1] - o[row]));
        let adjust = |x: i64| if x < 0 { x + size + 1 } else { x };
        let s = adjust(start.value(row)).max(1);
        let e = end.as_ref().map_or(size, |e| adjust(e.value(row)));
        let e = if e == 0 { 1 } else { e.min(size) };
        if size > 0 && e >= s {
            for i in s..=e {
                take.push(u32::try_from(first + i - 1).map_err(|_| {
                    exec_err("ARRAY_SLICE: an array past 2^32 elements".to_string())
                })?);
            }
        }
        valid.push(true);
        offsets.push(
            i32::try_from(take.len())
                .map_err(|_| exec_err("ARRAY_SLICE: a result past 2^31 elements".to_string()))?,
        );
    }
    let values =
        datafusion::arrow::compute::take(arrays.values().as_ref(), &UInt32Array::from(take), None)?;
    Ok(Arc::new(datafusion::arrow::array::ListArray::try_new(
        field.clone(),
        OffsetBuffer::new(offsets.into()),
        values,
        Some(NullBuffer::from(valid)),
    )?))
}

/// `PRINTF`: see [`NewerFn::Printf`].
fn printf(args: &ScalarFunctionArgs) -> datafusion::error::Result<ArrayRef> {
    let n = args.number_rows;
    let format = arg_as(args, 0, &DataType::Utf8)?;
    let format = format.as_string::<i32>();
    let values: Vec<ArrayRef> = args.args[1..]
        .iter()
        .map(|a| a.to_array(n))
        .collect::<datafusion::error::Result<_>>()?;
    let mut out: Vec<Option<String>> = Vec::with_capacity(n);
    for row in 0..n {
        if format.is_null(row) {
            out.push(None);
            continue;
        }
        let row_args = values
            .iter()
            .map(|v| ScalarValue::try_from_array(v, row))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        // A format Java's formatter refuses gives NULL, as Flink's `PrintfFunction` catches
        // the error.
        out.push(java_format(format.value(row), &row_args).ok());
    }
    Ok(Arc::new(out.into_iter().collect::<StringArray>()))
}

/// One format specifier's flags, width and precision.
#[derive(Default)]
struct Spec {
    left: bool,
    alternate: bool,
    plus: bool,
    space: bool,
    zero: bool,
    group: bool,
    paren: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

impl Spec {
    /// `body` padded to the width: on the right with `-`, else on the left with spaces.
    fn justify(&self, body: String) -> String {
        let len = body.chars().count();
        match self.width {
            Some(w) if w > len && self.left => body + &" ".repeat(w - len),
            Some(w) if w > len => " ".repeat(w - len) + &body,
            _ => body,
        }
    }

    /// A number's digits (no sign) with its sign by the flags, zero-padded when `0` says.
    fn signed(&self, negative: bool, digits: String) -> String {
        let (pre, post) = match (negative, self.paren, self.plus, self.space) {
            (true, true, _, _) => ("(", ")"),
            (true, false, _, _) => ("-", ""),
            (false, _, true, _) => ("+", ""),
            (false, _, _, true) => (" ", ""),
            _ => ("", ""),
        };
        let len = pre.len() + digits.chars().count() + post.len();
        let digits = match self.width {
            Some(w) if self.zero && w > len => "0".repeat(w - len) + &digits,
            _ => digits,
        };
        self.justify(format!("{pre}{digits}{post}"))
    }
}

/// `digits` (ASCII) with a `,` between each group of three, from the right.
fn grouped(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number's decimal digits and the power of ten of the first (`1.25` is `("125", 0)`),
/// for rounding half up as Java's formatter rounds a double's shortest digits
/// (`FormattedFloatingDecimal`) or a `BigDecimal`'s exact ones.
fn decimal_digits(v: &ScalarValue) -> Option<(bool, String, i32)> {
    let (negative, text) = match v {
        ScalarValue::Float64(Some(f)) => (f.is_sign_negative(), format!("{:e}", f.abs())),
        // Java's formatter widens a float to a double first (0.1f is 0.10000000149…).
        ScalarValue::Float32(Some(f)) => {
            (f.is_sign_negative(), format!("{:e}", f64::from(*f).abs()))
        }
        ScalarValue::Decimal128(Some(x), _, scale) => {
            let digits = x.unsigned_abs().to_string();
            let exp = digits.len() as i32 - 1 - i32::from(*scale);
            return Some((*x < 0, digits, exp));
        }
        _ => return None,
    };
    let (mantissa, exp) = text.split_once('e')?;
    Some((negative, mantissa.replace('.', ""), exp.parse().ok()?))
}

/// `digits` (the first at 10^`exp`) rounded half up to keep the digit at 10^-`frac` last:
/// the new digits and the power of the first.
fn round_half_up(digits: &str, exp: i32, keep_to: i32) -> (String, i32) {
    // How many digits stay: those at powers down to `keep_to`.
    let keep = exp - keep_to + 1;
    if keep >= digits.len() as i32 {
        return (digits.to_string(), exp);
    }
    if keep < 0 {
        return ("0".to_string(), keep_to);
    }
    let keep = keep as usize;
    let mut kept: Vec<u8> = digits.as_bytes()[..keep].to_vec();
    let mut exp = exp;
    if digits.as_bytes()[keep] >= b'5' {
        let mut i = keep;
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                exp += 1;
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    if kept.is_empty() {
        return ("0".to_string(), keep_to);
    }
    (String::from_utf8_lossy(&kept).into_owned(), exp)
}

/// Digits (the first at 10^`exp`) as fixed-point text with `frac` digits after the point.
fn fixed(digits: &str, exp: i32, frac: usize, group: bool) -> String {
    let (digits, exp) = round_half_up(digits, exp, -(frac as i32));
    let digit_at = |p: i32| -> char {
        let i = exp - p;
        if i < 0 {
            return '0';
        }
        digits
            .as_bytes()
            .get(i as usize)
            .map_or('0', |&b| b as char)
    };
    let int: String = (0..=exp.max(0)).rev().map(digit_at).collect();
    let int = if group { grouped(&int) } else { int };
    let fraction: String = (1..=frac as i32).map(|p| digit_at(-p)).collect();
    match frac {
        0 => int,
        _ => format!("{int}.{fraction}"),
    }
}

/// Digits as Java's `%e` writes them: one digit, `frac` after the point, `e`, the
/// exponent's sign and at least two digits.
fn scientific(digits: &str, exp: i32, frac: usize) -> String {
    let (digits, exp) = if digits.bytes().all(|b| b == b'0') {
        ("0".to_string(), 0)
    } else {
        round_half_up(digits, exp, exp - frac as i32)
    };
    let mut mantissa: String = digits.chars().take(1).collect();
    if frac > 0 {
        let rest: String = digits
            .chars()
            .skip(1)
            .chain(std::iter::repeat('0'))
            .take(frac)
            .collect();
        mantissa = format!("{mantissa}.{rest}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// A value's text as Java's `String.valueOf` gives it for `%s`: a TIMESTAMP as Flink's
/// `TimestampData.toString` (`LocalDateTime`'s: `2024-01-01T10:00`, seconds and a fraction
/// of 3, 6 or 9 digits only where they are not zero); a TIMESTAMP_LTZ the same, on UTC.
fn java_text(v: &ScalarValue) -> String {
    if let ScalarValue::TimestampSecond(Some(_), _)
    | ScalarValue::TimestampMillisecond(Some(_), _)
    | ScalarValue::TimestampMicrosecond(Some(_), _)
    | ScalarValue::TimestampNanosecond(Some(_), _) = v
        && let Ok(ScalarValue::TimestampNanosecond(Some(ns), _)) = v.cast_to(&DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Nanosecond,
            None,
        ))
    {
        use chrono::Timelike;
        let t = chrono::DateTime::from_timestamp_nanos(ns).naive_utc();
        let mut text = t.format("%Y-%m-%dT%H:%M").to_string();
        let nanos = t.nanosecond();
        if t.second() != 0 || nanos != 0 {
            text.push_str(&format!(":{:02}", t.second()));
        }
        match nanos {
            0 => {}
            n if n % 1_000_000 == 0 => text.push_str(&format!(".{:03}", n / 1_000_000)),
            n if n % 1_000 == 0 => text.push_str(&format!(".{:06}", n / 1_000)),
            n => text.push_str(&format!(".{n:09}")),
        }
        return text;
    }
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s.clone(),
        ScalarValue::Float64(Some(f)) => crate::format::json_out::java_float_text(*f, false),
        ScalarValue::Float32(Some(f)) => {
            crate::format::json_out::java_float_text(f64::from(*f), true)
        }
        other => other.to_string(),
    }
}

/// An integer argument and its width in bits (for `%x` and `%o` of a negative one).
fn integer(v: &ScalarValue) -> Option<(i128, u32)> {
    Some(match v {
        ScalarValue::Int8(Some(x)) => (i128::from(*x), 8),
        ScalarValue::Int16(Some(x)) => (i128::from(*x), 16),
        ScalarValue::Int32(Some(x)) => (i128::from(*x), 32),
        ScalarValue::Int64(Some(x)) => (i128::from(*x), 64),
        ScalarValue::UInt8(Some(x)) => (i128::from(*x), 16),
        ScalarValue::UInt16(Some(x)) => (i128::from(*x), 32),
        ScalarValue::UInt32(Some(x)) => (i128::from(*x), 64),
        ScalarValue::UInt64(Some(x)) => (i128::from(*x), 128),
        _ => return None,
    })
}

/// `format` filled from `args` as Java's `Formatter` (`Locale.US`) fills it, for the
/// conversions `%s %S %b %B %c %C %d %o %x %X %f %e %E %g %G %% %n`, with Java's flags
/// (`-#+ 0,(`), width, precision and argument indexes (`%2$s`, `%<s`). A NULL argument is
/// `null` (`false` for `%b`). `%f`, `%e` and `%g` take a DOUBLE, FLOAT or DECIMAL (Java's
/// formatter takes a `BigDecimal`; Flink passes its own decimal class, which it refuses)
/// and round half up, as Java does. Errors: a missing argument, an argument of a type the
/// conversion does not take, and the conversions not listed (`%t`, `%h`, `%a`).
pub fn java_format(format: &str, args: &[ScalarValue]) -> Result<String, String> {
    // The longest text one call writes (a longer one is an error, NULL in PRINTF).
    const MOST_TEXT: usize = 1 << 24;
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut next_arg = 0usize;
    let mut last_arg: Option<usize> = None;
    while i < chars.len() {
        if out.len() > MOST_TEXT {
            return Err(format!("a result past {MOST_TEXT} bytes"));
        }
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        let number = |i: &mut usize| -> Option<usize> {
            let from = *i;
            while *i < chars.len() && chars[*i].is_ascii_digit() {
                *i += 1;
            }
            chars[from..*i].iter().collect::<String>().parse().ok()
        };
        // An explicit index (`2$`) or the previous argument (`<`).
        let mut index: Option<usize> = None;
        let save = i;
        if chars.get(i) == Some(&'<') {
            index = Some(last_arg.ok_or("'%<' with no argument before it")?);
            i += 1;
        } else if let Some(k) = number(&mut i) {
            if chars.get(i) == Some(&'$') && k > 0 {
                index = Some(k - 1);
                i += 1;
            } else {
                i = save;
            }
        }
        let mut spec = Spec::default();
        while let Some(&c) = chars.get(i) {
            match c {
                '-' => spec.left = true,
                '#' => spec.alternate = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                ',' => spec.group = true,
                '(' => spec.paren = true,
                _ => break,
            }
            i += 1;
        }
        spec.width = number(&mut i);
        if chars.get(i) == Some(&'.') {
            i += 1;
            spec.precision = Some(number(&mut i).ok_or("a precision without digits")?);
        }
        // Past this a result would not fit in memory; Java's formatter fails there too.
        const MOST: usize = 1 << 20;
        if spec.width.is_some_and(|w| w > MOST) || spec.precision.is_some_and(|p| p > MOST) {
            return Err(format!("a width or precision past {MOST}"));
        }
        // Java's `MissingFormatWidthException` and `IllegalFormatFlagsException`.
        if (spec.left || spec.zero) && spec.width.is_none() {
            return Err("'-' or '0' without a width".to_string());
        }
        if (spec.left && spec.zero) || (spec.plus && spec.space) {
            return Err("flags that do not go together".to_string());
        }
        let Some(&conversion) = chars.get(i) else {
            return Err(format!(
                "the format ends in an unfinished specifier '{}'",
                chars[start..].iter().collect::<String>()
            ));
        };
        i += 1;
        let specifier: String = chars[start..i].iter().collect();
        match conversion {
            '%' => {
                out.push_str(&spec.justify("%".to_string()));
                continue;
            }
            'n' => {
                out.push('\n');
                continue;
            }
            _ => {}
        }
        let k = match index {
            Some(k) => k,
            None => {
                next_arg += 1;
                next_arg - 1
            }
        };
        last_arg = Some(k);
        let arg = args
            .get(k)
            .ok_or_else(|| format!("format specifier '{specifier}' has no argument"))?;
        let wrong = || {
            format!(
                "'{specifier}' does not take a {}",
                crate::sql::types::flink_type_name(&arg.data_type())
            )
        };
        let upper = conversion.is_ascii_uppercase();
        // Java's `IllegalFormatPrecisionException`: integers and characters take none.
        if spec.precision.is_some()
            && matches!(conversion.to_ascii_lowercase(), 'd' | 'o' | 'x' | 'c')
        {
            return Err(format!("'{specifier}' takes no precision"));
        }
        let text = match conversion.to_ascii_lowercase() {
            'b' => {
                let b = match arg {
                    ScalarValue::Boolean(Some(b)) => *b,
                    v => !v.is_null(),
                };
                let mut t = b.to_string();
                if let Some(p) = spec.precision {
                    t = t.chars().take(p).collect();
                }
                spec.justify(t)
            }
            's' => {
                let mut t = if arg.is_null() {
                    "null".to_string()
                } else {
                    java_text(arg)
                };
                if let Some(p) = spec.precision {
                    t = t.chars().take(p).collect();
                }
                spec.justify(t)
            }
            _ if arg.is_null() => spec.justify("null".to_string()),
            'c' => {
                // Java's `%c` takes a Byte, Short or Integer (a Long is refused).
                let (code, _) = integer(arg)
                    .filter(|(_, bits)| *bits <= 32)
                    .ok_or_else(wrong)?;
                let c = u32::try_from(code)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("'{specifier}': {code} is not a code point"))?;
                spec.justify(c.to_string())
            }
            'd' => {
                let (v, _) = integer(arg).ok_or_else(wrong)?;
                let digits = v.unsigned_abs().to_string();
                let digits = if spec.group { grouped(&digits) } else { digits };
                spec.signed(v < 0, digits)
            }
            'o' | 'x' => {
                let (v, bits) = integer(arg).ok_or_else(wrong)?;
                // A negative value as the unsigned one of its type's width.
                let v = if v < 0 { v + (1i128 << bits) } else { v };
                let (digits, prefix) = match conversion.to_ascii_lowercase() {
                    'o' => (format!("{v:o}"), "0"),
                    _ => (format!("{v:x}"), "0x"),
                };
                let body = if spec.alternate {
                    format!("{prefix}{digits}")
                } else {
                    digits
                };
                let len = body.len();
                let body = match spec.width {
                    Some(w) if spec.zero && w > len => {
                        let (p, d) = body.split_at(if spec.alternate { prefix.len() } else { 0 });
                        format!("{p}{}{d}", "0".repeat(w - len))
                    }
                    _ => body,
                };
                spec.justify(body)
            }
            'f' | 'e' | 'g' => {
                let special = match arg {
                    ScalarValue::Float64(Some(f)) if !f.is_finite() => Some(*f),
                    ScalarValue::Float32(Some(f)) if !f.is_finite() => Some(f64::from(*f)),
                    _ => None,
                };
                if let Some(f) = special {
                    let t = if f.is_nan() {
                        "NaN"
                    } else if spec.paren && f < 0.0 {
                        "(Infinity)"
                    } else if f < 0.0 {
                        "-Infinity"
                    } else if spec.plus {
                        "+Infinity"
                    } else {
                        "Infinity"
                    };
                    spec.justify(t.to_string())
                } else {
                    let (negative, digits, exp) = decimal_digits(arg).ok_or_else(wrong)?;
                    let p = spec.precision.unwrap_or(6);
                    let body = match conversion.to_ascii_lowercase() {
                        'f' => fixed(&digits, exp, p, spec.group),
                        'e' => scientific(&digits, exp, p),
                        _ => {
                            let p = p.max(1);
                            let zero = digits.bytes().all(|b| b == b'0');
                            let (_, rounded_exp) = round_half_up(&digits, exp, exp - p as i32 + 1);
                            if zero || (-4..p as i32).contains(&rounded_exp) {
                                let frac = if zero {
                                    p - 1
                                } else {
                                    (p as i32 - 1 - rounded_exp).max(0) as usize
                                };
                                fixed(&digits, exp, frac, spec.group)
                            } else {
                                scientific(&digits, exp, p - 1)
                            }
                        }
                    };
                    // Java's sign: of the value (`-0.04` is `-0.0` at one digit; `-0.0`
                    // is negative), not of the rounded digits.
                    spec.signed(negative, body)
                }
            }
            _ => {
                return Err(format!(
                    "conversion '{specifier}' is not supported (PRINTF takes %s %b %c %d %o %x %f %e %g %% %n)"
                ));
            }
        };
        out.push_str(&if upper { text.to_uppercase() } else { text });
    }
    if out.len() > MOST_TEXT {
        return Err(format!("a result past {MOST_TEXT} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(format: &str, args: &[ScalarValue]) -> String {
        java_format(format, args).unwrap_or_else(|e| format!("error: {e}"))
    }

    /// Java's `String.format(Locale.US, …)` answers for each conversion and flag taken.
    #[test]
    fn java_format_matches_javas_formatter() {
        let i = |v: i32| ScalarValue::Int32(Some(v));
        let d = |v: f64| ScalarValue::Float64(Some(v));
        let s = |v: &str| ScalarValue::Utf8(Some(v.to_string()));
        assert_eq!(
            f("Hello, %s! You are %d.", &[s("Bob"), i(30)]),
            "Hello, Bob! You are 30."
        );
        assert_eq!(
            f(
                "%5d|%-5d|%05d|%+d|% d|%,d|%(d",
                &[i(42), i(42), i(-42), i(7), i(7), i(1234567), i(-3)]
            ),
            "   42|42   |-0042|+7| 7|1,234,567|(3)"
        );
        assert_eq!(
            f("%x %X %o %#x %08X", &[i(255), i(-1), i(8), i(255), i(255)]),
            "ff FFFFFFFF 10 0xff 000000FF"
        );
        assert_eq!(
            f(
                "%.2f %f %.0f %.1f %,.2f",
                &[d(3.14259), d(1.5), d(2.5), d(0.05), d(1234567.891)]
            ),
            "3.14 1.500000 3 0.1 1,234,567.89"
        );
        // Half up on the shortest digits: 2.675 and 0.125 round up (C's printf gives 2.67, 0.12).
        assert_eq!(f("%.2f %.2f", &[d(2.675), d(0.125)]), "2.68 0.13");
        assert_eq!(f("%.1f %f", &[d(-0.04), d(-0.0)]), "-0.0 -0.000000");
        assert_eq!(
            f("%.10f", &[ScalarValue::Float32(Some(0.1))]),
            "0.1000000015"
        );
        assert!(f("%c", &[ScalarValue::Int64(Some(65))]).starts_with("error"));
        assert!(f(&"%1048576%".repeat(20), &[]).starts_with("error: a result past"));
        assert_eq!(
            f("%e %.2E %e", &[d(12345.678), d(0.000123), d(0.0)]),
            "1.234568e+04 1.23E-04 0.000000e+00"
        );
        assert_eq!(
            f(
                "%g %g %g %.3g",
                &[d(0.0001), d(123456.0), d(1234567.0), d(0.00001234)]
            ),
            "0.000100000 123456 1.23457e+06 1.23e-05"
        );
        assert_eq!(
            f(
                "%s %S %.3s %b %B %c",
                &[
                    d(1.0E20),
                    s("up"),
                    s("abcdef"),
                    ScalarValue::Int32(None),
                    ScalarValue::Boolean(Some(true)),
                    i(65)
                ]
            ),
            "1.0E20 UP abc false TRUE A"
        );
        assert_eq!(f("%2$s %1$s %<s %% %n", &[s("a"), s("b")]), "b a a % \n");
        assert_eq!(
            f(
                "%s %d",
                &[ScalarValue::Utf8(None), ScalarValue::Int64(None)]
            ),
            "null null"
        );
        assert_eq!(
            f("%.2f", &[ScalarValue::Decimal128(Some(12345), 10, 3)]),
            "12.35"
        );
        assert!(f("%d", &[s("x")]).starts_with("error: '%d' does not take a STRING"));
        assert!(f("%s %s", &[s("x")]).starts_with("error: format specifier '%s' has no argument"));
        assert!(f("%tY", &[i(1)]).contains("not supported"));
        assert!(f("%.2147483647e", &[d(1.0)]).starts_with("error: a width or precision"));
        assert!(f("%4294967297s", &[s("a")]).starts_with("error: a width or precision"));
        assert!(f("%-08d", &[i(5)]).starts_with("error: flags"));
        assert!(f("%-s", &[s("a")]).starts_with("error: '-' or '0' without a width"));
        assert!(f("%.2d", &[i(5)]).starts_with("error: '%.2d' takes no precision"));
    }

    #[test]
    fn quoting_and_url_forms_match_flinks() {
        assert_eq!(
            json_quote("a\"b/c\\\n\u{e9}"),
            "\"a\\\"b\\/c\\\\\\n\\u00e9\""
        );
        assert_eq!(json_unquote("\"a\\\"b\\u00e9\""), "a\"bé");
        assert_eq!(json_unquote("[1,2]"), "[1,2]");
        assert_eq!(json_unquote("\"bad\\x\""), "\"bad\\x\"");
        assert_eq!(url_encode("a b&c=d/é*~"), "a+b%26c%3Dd%2F%C3%A9*%7E");
        assert_eq!(
            url_decode("a+b%26c%3Dd%2F%C3%A9").as_deref(),
            Some("a b&c=d/é")
        );
        assert_eq!(url_decode("100%"), None);
        assert_eq!(url_decode("%G1"), None);
        assert_eq!(unhex("666C696E6B").as_deref(), Some(&b"flink"[..]));
        assert_eq!(unhex("F").as_deref(), Some(&[0x00][..]));
        assert_eq!(unhex("ABC").as_deref(), Some(&[0x00, 0xBC][..]));
        assert_eq!(unhex("zz"), None);
    }
}
