//! JSON-lines and CSV decoding with line-accurate errors.
//!
//! Lines are decoded a chunk at a time with arrow-json / arrow-csv. When a chunk fails, it
//! is decoded again line by line to find the bad record, which then fails the query or is
//! skipped, per the policy. Good chunks cost nothing extra.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, StringArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Result, WeirError};
use crate::sql::options::Options;

/// A text format a source can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Parquet,
}

impl Format {
    pub fn parse(options: &Options, table: &str) -> Result<Format> {
        match options.get("format") {
            Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some("parquet") => Ok(Format::Parquet),
            Some(other) => Err(WeirError::sql(
                format!("unknown format '{other}' in table '{table}'"),
                options.pos("format"),
            )
            .with_hint("valid formats: json, csv, parquet")),
            None => {
                let msg = format!(
                    "table '{table}' needs the option 'format' ('json', 'csv' or 'parquet')"
                );
                Err(match options.pos("connector") {
                    Some(p) => WeirError::sql(msg, Some(p)),
                    None => WeirError::user(msg),
                })
            }
        }
    }

    /// The options this format accepts, for validation.
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Format::Json => &[
                "json.ignore-parse-errors",
                "json.timestamp-format.standard",
                "json.fail-on-missing-field",
                "json.encode.decimal-as-plain-number",
                "json.map-null-key.mode",
                "json.map-null-key.literal",
            ],
            Format::Csv => &[
                "csv.ignore-parse-errors",
                "csv.field-delimiter",
                "csv.quote-character",
                "csv.header",
                "csv.allow-comments",
                "csv.null-literal",
                "csv.escape-character",
                "csv.disable-quote-character",
                "csv.array-element-delimiter",
            ],
            Format::Parquet => &["parquet.compression", "parquet.block.size"],
        }
    }

    pub fn prefix(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// Decodes lines of one format into batches of a fixed schema.
pub struct Decoder {
    format: Format,
    schema: SchemaRef,
    /// Malformed records are skipped (and counted, or sent to the dead-letter table)
    /// rather than failing the query: `*.ignore-parse-errors`, or `'dead-letter.sink'`.
    ignore_errors: bool,
    delimiter: u8,
    quote: u8,
    /// For CSV: the first line of every file is a header to skip.
    pub header: bool,
    allow_comments: bool,
    /// For CSV: matches the field text that reads as NULL (`csv.null-literal`); without
    /// that option it matches nothing — an empty STRING field is the empty string and an
    /// empty number a parse error, as in Flink (its `CsvToRowDataConverters`).
    null: regex::Regex,
    /// For CSV: `csv.null-literal` is not set, so no field is NULL — the case
    /// [`Decoder::read_csv`] reads without matching `null` against every field.
    no_null_literal: bool,
    /// For CSV: the character that escapes the next one (`csv.escape-character`).
    escape: Option<u8>,
    /// The schema read, with each top-level BOOLEAN column read as a string (see
    /// [`Decoder::booleans`]), and those columns' indexes.
    json_schema: SchemaRef,
    /// The columns read as text first and converted after (BOOLEANs and BYTES, nested too).
    json_booleans: Vec<usize>,
    /// For CSV: `json_schema` with each ARRAY column read as text, split at
    /// `array_delimiter` (`csv.array-element-delimiter`, default `;`) afterwards.
    csv_schema: SchemaRef,
    csv_arrays: Vec<usize>,
    array_delimiter: String,
    /// For CSV: `csv_schema` with the integer and floating-point columns read as text too,
    /// and those columns' indexes — the second try of a chunk that failed, whose numbers
    /// are then trimmed (Flink's CSV format reads `" 5"` as 5: `Integer.parseInt(text.trim())`
    /// in its `CsvToRowDataConverters`) and parsed. Clean input never pays for it.
    csv_text_schema: SchemaRef,
    csv_numbers: Vec<usize>,
    /// For JSON: a record without one of the table's fields is malformed
    /// (`json.fail-on-missing-field`; otherwise the field is NULL).
    fail_on_missing: bool,
}

/// What [`Decoder::split`] found: decoded parts, the lines they hold and the bad lines
/// with their reasons (indexes among the non-blank lines).
#[derive(Default)]
struct Found {
    good: Vec<RecordBatch>,
    kept: Vec<usize>,
    bad: Vec<(usize, String)>,
}

/// How deep a JSON record may nest objects and arrays: Jackson's default
/// (`StreamReadConstraints.DEFAULT_MAX_DEPTH`), which Flink's JSON format reads with.
/// Deeper records are malformed (they would exhaust the decoder's stack).
pub const MAX_JSON_DEPTH: usize = 1000;

/// True when `json` nests objects and arrays deeper than [`MAX_JSON_DEPTH`] (brackets in
/// strings do not count).
fn too_deep(json: &[u8]) -> bool {
    // Deeper than the limit takes more opening brackets than that: short records are
    // never scanned.
    if json.len() <= MAX_JSON_DEPTH {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// `b` (read by arrow-csv with an empty field as NULL) with each NULL of a text column made
/// the empty string it was read from; None when a column of another type has a NULL (an
/// empty field that is not text, which the caller reads again to decide).
fn empty_text_fields(b: RecordBatch) -> Option<RecordBatch> {
    use datafusion::arrow::array::AsArray;
    if b.columns().iter().all(|c| c.null_count() == 0) {
        return Some(b);
    }
    let mut cols = b.columns().to_vec();
    for c in &mut cols {
        if c.null_count() == 0 {
            continue;
        }
        if c.data_type() != &DataType::Utf8 {
            return None;
        }
        let text = c.as_string::<i32>();
        // A NULL arrow-csv made holds no bytes; the same offsets without the NULLs are the
        // empty strings.
        if (0..text.len()).any(|i| text.is_null(i) && text.value_length(i) != 0) {
            return None;
        }
        *c = Arc::new(StringArray::new(
            text.offsets().clone(),
            text.values().clone(),
            None,
        ));
    }
    RecordBatch::try_new(b.schema(), cols).ok()
}

/// True when CSV record `line` ends inside a quoted field. As csv-core and Jackson read
/// it, a quote opens a quoted field only at the field's start (`5,12" screen` holds a
/// literal quote), and a doubled quote inside one is a quote character.
fn quote_left_open(line: &[u8], delimiter: u8, quote: u8) -> bool {
    // Most records hold no quote at all.
    if memchr::memchr(quote, line).is_none() {
        return false;
    }
    let (mut at_start, mut quoted) = (true, false);
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if quoted {
            if b == quote {
                if line.get(i + 1) == Some(&quote) {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else if b == delimiter {
            at_start = true;
            i += 1;
            continue;
        } else if at_start && b == quote {
            quoted = true;
        }
        at_start = false;
        i += 1;
    }
    quoted
}

/// The longest reason kept for a bad record (its raw text is kept whole elsewhere).
const MAX_REASON: usize = 300;

/// arrow-csv's message for one record, as a reason: the column named instead of numbered,
/// without its line within the decoded chunk (not the file's) or the row's data, which
/// the record itself shows.
fn csv_error(message: &str, schema: &Schema) -> String {
    let mut m = message
        .split(". Row data:")
        .next()
        .unwrap_or(message)
        .to_string();
    if let Some(i) = m.find(" for column ") {
        let rest = &m[i + " for column ".len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Some(f) = digits
            .parse::<usize>()
            .ok()
            .and_then(|c| schema.fields().get(c))
        {
            let tail = rest[digits.len()..].to_string();
            let tail = match tail.find(" at line ") {
                Some(j) => tail[..j].to_string(),
                None => tail,
            };
            m = format!("{} for column '{}'{tail}", &m[..i], f.name());
        }
    }
    m
}

/// `m` cut to at most [`MAX_REASON`] bytes (a value quoted in a message may be huge).
fn short(mut m: String) -> String {
    if m.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
        m.push('…');
    }
    m
}

/// A CSV quote byte that valid UTF-8 text never holds: `csv.disable-quote-character`
/// quotes with it, so no field is ever quoted.
const NO_QUOTE: u8 = 0xFF;

/// A decoded chunk and the lines of it skipped as bad.
pub struct Decoded {
    pub batch: Option<RecordBatch>,
    /// The input lines skipped as malformed (`*.ignore-parse-errors`,
    /// `'dead-letter.sink'`), by index, each with the reason.
    pub bad: Vec<(usize, String)>,
    /// The input lines the batch's rows came from, in order; None when every line gave a
    /// row (no blank, comment or skipped lines).
    pub kept: Option<Vec<usize>>,
}

impl Decoder {
    pub fn new(format: Format, schema: SchemaRef, options: &Options) -> Result<Self> {
        let p = format.prefix();
        let json_booleans: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| booleans_as_text(f.data_type()) != *f.data_type())
            .map(|(i, _)| i)
            .collect();
        let json_schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| {
                    f.as_ref()
                        .clone()
                        .with_data_type(booleans_as_text(f.data_type()))
                })
                .collect::<Vec<_>>(),
        ));
        // CSV reads ARRAYs of scalar values (Flink's CSV format: elements joined by
        // `csv.array-element-delimiter`); no ROW or MAP.
        let mut csv_arrays = vec![];
        if format == Format::Csv {
            for (i, f) in schema.fields().iter().enumerate() {
                let nested = |dt: &DataType| {
                    matches!(
                        dt,
                        DataType::List(_) | DataType::Struct(_) | DataType::Map(..)
                    )
                };
                match f.data_type() {
                    DataType::List(e) if !nested(e.data_type()) => csv_arrays.push(i),
                    dt if nested(dt) => {
                        return Err(WeirError::sql(
                            format!(
                                "the CSV format cannot read column '{}' of type {}: it reads scalar values and ARRAYs of them",
                                f.name(),
                                crate::sql::types::flink_type_name(dt)
                            ),
                            options.pos("format"),
                        )
                        .with_hint("use 'format' = 'json' for nested values"));
                    }
                    _ => {}
                }
            }
        }
        let csv_schema = Arc::new(Schema::new(
            json_schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if csv_arrays.contains(&i) {
                        f.as_ref().clone().with_data_type(DataType::Utf8)
                    } else {
                        f.as_ref().clone()
                    }
                })
                .collect::<Vec<_>>(),
        ));
        let csv_numbers: Vec<usize> = csv_schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.data_type().is_integer() || f.data_type().is_floating())
            .map(|(i, _)| i)
            .collect();
        let csv_text_schema = Arc::new(Schema::new(
            csv_schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if csv_numbers.contains(&i) {
                        f.as_ref().clone().with_data_type(DataType::Utf8)
                    } else {
                        f.as_ref().clone()
                    }
                })
                .collect::<Vec<_>>(),
        ));
        let array_delimiter = options
            .get("csv.array-element-delimiter")
            .unwrap_or(crate::format::encode::CSV_ARRAY_DELIMITER)
            .to_string();
        if array_delimiter.is_empty() {
            return Err(WeirError::sql(
                "'csv.array-element-delimiter' must not be empty",
                options.pos("csv.array-element-delimiter"),
            ));
        }
        let ignore_parse_errors = options.bool_or(&format!("{p}.ignore-parse-errors"), false)?;
        let ignore_errors = ignore_parse_errors || options.get("dead-letter.sink").is_some();
        let fail_on_missing =
            format == Format::Json && options.bool_or("json.fail-on-missing-field", false)?;
        // Flink's JsonFormatFactory refuses the pair too: a missing field would be both an
        // error and skipped.
        if fail_on_missing && ignore_parse_errors {
            return Err(WeirError::sql(
                "'json.fail-on-missing-field' and 'json.ignore-parse-errors' cannot both be 'true'",
                options.pos("json.fail-on-missing-field"),
            ));
        }
        Ok(Decoder {
            json_schema,
            json_booleans,
            csv_schema,
            csv_arrays,
            csv_text_schema,
            csv_numbers,
            array_delimiter,
            fail_on_missing,
            format,
            schema,
            ignore_errors,
            delimiter: options.char_or("csv.field-delimiter", b',')?,
            quote: if options.bool_or("csv.disable-quote-character", false)? {
                if options.get("csv.quote-character").is_some() {
                    return Err(WeirError::sql(
                        "'csv.quote-character' and 'csv.disable-quote-character' = 'true' contradict each other",
                        options.pos("csv.quote-character"),
                    ));
                }
                NO_QUOTE
            } else {
                options.char_or("csv.quote-character", b'"')?
            },
            header: options.bool_or("csv.header", false)?,
            allow_comments: options.bool_or("csv.allow-comments", false)?,
            no_null_literal: options.get("csv.null-literal").is_none(),
            null: regex::Regex::new(&match options.get("csv.null-literal") {
                Some(l) => format!("^{}$", regex::escape(l)),
                None => r"[^\s\S]".to_string(),
            })
            .map_err(|e| WeirError::internal(format!("csv.null-literal: {e}")))?,
            escape: match options.get("csv.escape-character") {
                Some(_) => Some(options.char_or("csv.escape-character", b'\\')?),
                None => None,
            },
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// True when a malformed record is skipped rather than an error.
    pub fn skips_bad_records(&self) -> bool {
        self.ignore_errors
    }

    /// The error for a malformed record at `place` (why: `reason`; invalid UTF-8 too),
    /// when malformed records fail the query; the hint says how to skip or keep them.
    pub fn malformed(&self, reason: &str, place: &str) -> WeirError {
        let p = self.format.prefix();
        WeirError::user(format!(
            "malformed {} record at {place}: {reason}",
            p.to_uppercase()
        ))
        .with_hint(if self.fail_on_missing && reason.contains("is missing") {
            "add the field to the record, or set 'json.fail-on-missing-field' = 'false' to read it as NULL".to_string()
        } else {
            format!(
                "fix the record, or set '{p}.ignore-parse-errors' = 'true' to skip and count bad records, or 'dead-letter.sink' to keep them in a table"
            )
        })
    }

    /// Decodes `lines` (without newlines); `origin` and `first_line` place errors.
    pub fn decode(&self, lines: &[String], origin: &str, first_line: usize) -> Result<Decoded> {
        self.decode_at(lines, &|i| format!("{origin}:{}", first_line + i))
    }

    /// Decodes `lines`; `place(i)` names line `i` in an error (a file and line, a Kafka
    /// topic, partition and offset).
    pub fn decode_at(&self, lines: &[String], place: &dyn Fn(usize) -> String) -> Result<Decoded> {
        let lines_in = lines.len();
        let numbered: Vec<(usize, &String)> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                let t = l.trim();
                !(t.is_empty() || self.allow_comments && t.starts_with('#'))
            })
            .collect();
        let lines: Vec<&String> = numbered.iter().map(|(_, l)| *l).collect();
        if lines.is_empty() {
            return Ok(Decoded {
                batch: None,
                bad: vec![],
                kept: Some(vec![]),
            });
        }
        let all = numbered.len() == lines_in;
        let first_error = match self.decode_chunk(&lines) {
            Ok(b) => {
                return Ok(Decoded {
                    batch: Some(b),
                    bad: vec![],
                    kept: (!all).then(|| numbered.iter().map(|(i, _)| *i).collect()),
                });
            }
            Err(e) => Some(e),
        };
        // Find the bad lines by halves: good halves are kept whole, so a few bad lines
        // among thousands cost a few dozen decodes, not one per line.
        let mut found = Found::default();
        self.split(&lines, 0, first_error, &mut found, &|i| {
            place(numbered[i].0)
        })?;
        let batch = if found.good.is_empty() {
            None
        } else {
            Some(concat_batches(&self.schema, &found.good)?)
        };
        Ok(Decoded {
            batch,
            bad: found
                .bad
                .into_iter()
                .map(|(i, r)| (numbered[i].0, r))
                .collect(),
            kept: Some(found.kept.into_iter().map(|i| numbered[i].0).collect()),
        })
    }

    /// Decodes `lines` (the non-blank lines from index `from` on), which failed as a whole
    /// with `failed` when that is known, into `found`: a part that decodes is kept whole,
    /// one that does not is split in two, down to single bad lines — in order, so the
    /// first bad line is the first one reported. Errors: a bad line when bad records are
    /// not skipped (`place(i)` names line `i`).
    fn split(
        &self,
        lines: &[&String],
        from: usize,
        failed: Option<String>,
        found: &mut Found,
        place: &dyn Fn(usize) -> String,
    ) -> Result<()> {
        let failed = match failed {
            Some(reason) => reason,
            None => match self.decode_chunk(lines) {
                Ok(b) => {
                    found.good.push(b);
                    found.kept.extend(from..from + lines.len());
                    return Ok(());
                }
                Err(reason) => reason,
            },
        };
        if lines.len() > 1 {
            let mid = lines.len() / 2;
            self.split(&lines[..mid], from, None, found, place)?;
            return self.split(&lines[mid..], from + mid, None, found, place);
        }
        let failed = short(failed);
        if self.ignore_errors {
            found.bad.push((from, failed));
            return Ok(());
        }
        Err(self.malformed(&failed, &place(from)))
    }

    fn decode_chunk(&self, lines: &[&String]) -> std::result::Result<RecordBatch, String> {
        let b = match self.format {
            Format::Json => whole_seconds(self.decode_json_raw(lines)?)?,
            Format::Csv => self.decode_csv(lines)?,
            Format::Parquet => return Err("parquet is not a line format".to_string()),
        };
        self.booleans(b)
    }

    /// BOOLEAN columns and fields (nested in ROWs, ARRAYs and MAPs too) as Flink's JSON and
    /// CSV formats read them (their
    /// `JsonToRowDataConverters` and `CsvToRowDataConverters`): `true`/`false`, or a string
    /// that is TRUE when it is `true` in any case once trimmed (Java's
    /// `Boolean.parseBoolean`) and FALSE otherwise. In JSON, a number or boolean into a
    /// STRING column is its text and a numeric string into a number column is parsed.
    fn booleans(&self, b: RecordBatch) -> std::result::Result<RecordBatch, String> {
        if self.json_booleans.is_empty() {
            return Ok(b);
        }
        let mut cols = b.columns().to_vec();
        for &i in &self.json_booleans {
            cols[i] = text_to_booleans(&cols[i], self.schema.field(i).data_type())?;
        }
        RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| e.to_string())
    }

    /// Decodes JSON lines. A JSON object or array where the schema has a STRING (a column,
    /// a ROW's field, an element or a map's value) is read as its JSON text, as Flink's
    /// `JsonToRowDataConverters.convertToString` reads it (`jsonNode.toString()`:
    /// compact, keys in their order): Arrow's decoder refuses it, so only then are the lines
    /// parsed once more and such values turned into strings.
    fn decode_json_raw(&self, lines: &[&String]) -> std::result::Result<RecordBatch, String> {
        let plain: Vec<&str> = lines.iter().map(|l| l.as_str()).collect();
        match self.decode_json_lines(&plain) {
            Err(e) if e.contains("expected string got") => {
                let texts: Vec<String> = plain.iter().map(|l| self.containers_as_text(l)).collect();
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                self.decode_json_lines(&texts).map_err(|_| e)
            }
            r => r,
        }
    }

    /// `line` with each JSON object or array that the schema reads as a STRING written as
    /// a JSON string of its text (see [`Decoder::decode_json_raw`]); unchanged when it is
    /// not a JSON object.
    fn containers_as_text(&self, line: &str) -> String {
        use datafusion::arrow::datatypes::DataType;
        use serde_json::Value;
        fn walk(v: &mut Value, t: &DataType) {
            match (t, &mut *v) {
                (
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View,
                    Value::Object(_) | Value::Array(_),
                ) => *v = Value::String(v.to_string()),
                (DataType::Struct(fs), Value::Object(o)) => {
                    for f in fs {
                        if let Some(x) = o.get_mut(f.name()) {
                            walk(x, f.data_type());
                        }
                    }
                }
                (DataType::List(f) | DataType::LargeList(f), Value::Array(a)) => {
                    for x in a {
                        walk(x, f.data_type());
                    }
                }
                (DataType::Map(entries, _), Value::Object(o)) => {
                    if let DataType::Struct(kv) = entries.data_type()
                        && kv.len() == 2
                    {
                        for x in o.values_mut() {
                            walk(x, kv[1].data_type());
                        }
                    }
                }
                _ => {}
            }
        }
        let Ok(mut v) = serde_json::from_str::<Value>(line.trim()) else {
            return line.to_string();
        };
        if !v.is_object() || too_deep(line.as_bytes()) {
            return line.to_string();
        }
        walk(&mut v, &DataType::Struct(self.json_schema.fields().clone()));
        v.to_string()
    }

    fn decode_json_lines(&self, lines: &[&str]) -> std::result::Result<RecordBatch, String> {
        use datafusion::arrow::json::ReaderBuilder;
        let mut d = ReaderBuilder::new(self.json_schema.clone())
            .with_batch_size(lines.len().max(1))
            .with_strict_mode(false)
            .with_coerce_primitive(true)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        for l in lines {
            // Each line must be exactly one JSON object.
            let t = l.trim();
            if !t.starts_with('{') {
                return Err("a JSON-lines record must be an object".into());
            }
            if too_deep(t.as_bytes()) {
                return Err(format!(
                    "the record nests deeper than {MAX_JSON_DEPTH} levels"
                ));
            }
            if self.fail_on_missing {
                let v: serde_json::Value = serde_json::from_str(t).map_err(|e| e.to_string())?;
                if let Some(f) = self
                    .json_schema
                    .fields()
                    .iter()
                    .find(|f| v.get(f.name()).is_none())
                {
                    return Err(format!(
                        "the field '{}' is missing ('json.fail-on-missing-field' is 'true')",
                        f.name()
                    ));
                }
            }
            let buf = format!("{t}\n");
            let used = d.decode(buf.as_bytes()).map_err(|e| e.to_string())?;
            if used != buf.len() {
                return Err("trailing data after the JSON object".into());
            }
        }
        match d.flush().map_err(|e| e.to_string())? {
            Some(b) if b.num_rows() == lines.len() => Ok(b),
            Some(_) | None => Err("incomplete JSON record".into()),
        }
    }

    fn decode_csv(&self, lines: &[&String]) -> std::result::Result<RecordBatch, String> {
        if self.csv_schema.fields().is_empty() {
            // A table of only metadata and partition columns: each line is a row with no
            // fields read, as Flink's CSV format takes a line longer than the schema.
            return RecordBatch::try_new_with_options(
                self.schema.clone(),
                vec![],
                &datafusion::arrow::record_batch::RecordBatchOptions::new()
                    .with_row_count(Some(lines.len())),
            )
            .map_err(|e| e.to_string());
        }
        let text = self.joined(lines)?;
        self.decode_csv_joined(&text, lines.len())
    }

    /// Decodes `text`, `count` CSV records each ending with a line feed (see
    /// [`Decoder::joined`]).
    fn decode_csv_joined(
        &self,
        text: &str,
        count: usize,
    ) -> std::result::Result<RecordBatch, String> {
        let b = match self.read_csv(text, count, &self.csv_schema) {
            Ok(b) => b,
            Err(e) if self.csv_numbers.is_empty() => return Err(e),
            // Perhaps numbers with spaces around them: read them as text and trim.
            Err(e) => {
                // A record malformed either way keeps the first try's reason.
                let Ok(b) = self.read_csv(text, count, &self.csv_text_schema) else {
                    return Err(e);
                };
                self.trimmed_numbers(b).map_err(|_| e)?
            }
        };
        self.csv_arrays(b)
    }

    /// Decodes `text` — `count` CSV lines, each ending with a line feed, as the
    /// `filesystem` source collects them — at once, without splitting it into lines first,
    /// when nothing in it needs a line of its own: no blank or comment lines, no carriage
    /// return, no quote left open at a line's end, no escape character, and at least two
    /// columns (a blank line then cannot pass for a record). None when it is not so, or
    /// when the chunk fails: the caller then decodes it line by line with
    /// [`Decoder::decode`], which skips, finds and reports what it must.
    pub fn decode_csv_text(&self, text: &str, count: usize) -> Option<RecordBatch> {
        if self.format != Format::Csv
            || self.escape.is_some()
            || self.allow_comments
            || count == 0
            || self.csv_schema.fields().len() < 2
        {
            return None;
        }
        let bytes = text.as_bytes();
        if bytes.first() == Some(&b'\n')
            || memchr::memchr(b'\r', bytes).is_some()
            || memchr::memmem::find(bytes, b"\n\n").is_some()
            || memchr::memchr_iter(b'\n', bytes).count() != count
            || bytes.last() != Some(&b'\n')
        {
            return None;
        }
        if self.quote != NO_QUOTE
            && memchr::memchr(self.quote, bytes).is_some()
            && bytes
                .split(|b| *b == b'\n')
                .any(|l| quote_left_open(l, self.delimiter, self.quote))
        {
            return None;
        }
        let b = self.decode_csv_joined(text, count).ok()?;
        self.booleans(b).ok()
    }

    /// `lines` as one text, each followed by a line feed, escaped lines rewritten (see
    /// [`unescape_line`]). Errors: a quote left open at a line's end — a record is one line.
    fn joined(&self, lines: &[&String]) -> std::result::Result<String, String> {
        // One allocation for the chunk's text (not one per doubling as it grows).
        let mut buf = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            // A record is one line: a quote left open would take in the line end (and,
            // in a batch, the next record).
            if self.escape.is_none()
                && self.quote != NO_QUOTE
                && quote_left_open(l.as_bytes(), self.delimiter, self.quote)
            {
                return Err(format!(
                    "a field quoted with {} is not closed on its line (a record cannot span lines)",
                    self.quote as char
                ));
            }
            match self.escape {
                Some(e) => unescape_line(l, self.delimiter, self.quote, e, &mut buf),
                None => buf.push_str(l),
            }
            buf.push('\n');
        }
        Ok(buf)
    }

    /// The number columns of `b` (read by `csv_text_schema` as text), trimmed of what
    /// Java's `String.trim` removes (characters up to U+0020) and parsed as their types.
    fn trimmed_numbers(&self, b: RecordBatch) -> std::result::Result<RecordBatch, String> {
        let mut cols = b.columns().to_vec();
        for &i in &self.csv_numbers {
            let text = cols[i]
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or("a number column was not read as text")?;
            let trimmed: StringArray = text
                .iter()
                .map(|v| v.map(|t| t.trim_matches(|c: char| c <= ' ')))
                .collect();
            let want = self.csv_schema.field(i).data_type();
            cols[i] = datafusion::arrow::compute::cast_with_options(
                &trimmed,
                want,
                &datafusion::arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .map_err(|e| {
                format!(
                    "column '{}': not a number of type {}: {e}",
                    self.schema.field(i).name(),
                    crate::sql::types::flink_type_name(want)
                )
            })?;
        }
        RecordBatch::try_new(self.csv_schema.clone(), cols).map_err(|e| e.to_string())
    }

    /// Reads `text` (see [`Decoder::joined`]) as `count` CSV records of `schema`.
    ///
    /// Without `csv.null-literal` no field is NULL, which arrow-csv can only be told by a
    /// regex that matches nothing — tried on every field, a quarter of the time of reading
    /// a file. So the records are first read with arrow-csv's own rule (an empty field is
    /// NULL): an empty text field becomes the empty string again, and only a chunk where a
    /// field of another type was empty (or that failed) is read again with the regex,
    /// to give the same value or error as before.
    fn read_csv(
        &self,
        text: &str,
        count: usize,
        schema: &SchemaRef,
    ) -> std::result::Result<RecordBatch, String> {
        if self.no_null_literal
            && let Ok(b) = self.read_csv_with(text, count, schema, None)
            && let Some(b) = empty_text_fields(b)
        {
            return Ok(b);
        }
        self.read_csv_with(text, count, schema, Some(self.null.clone()))
    }

    /// Reads `text` as `count` CSV records of `schema`, a field NULL where `null` matches it
    /// (where it is empty when `null` is None).
    fn read_csv_with(
        &self,
        text: &str,
        count: usize,
        schema: &SchemaRef,
        null: Option<regex::Regex>,
    ) -> std::result::Result<RecordBatch, String> {
        use datafusion::arrow::csv::ReaderBuilder;
        // arrow-csv escapes only inside quotes; Flink's escape character works anywhere
        // (`a\;b` is `a;b`), so escaped lines are first rewritten in plain quoted form.
        let quote = if self.escape.is_some() {
            b'"'
        } else {
            self.quote
        };
        let d = ReaderBuilder::new(schema.clone())
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_quote(quote)
            .with_batch_size(count.max(1));
        let mut d = match null {
            Some(n) => d.with_null_regex(n),
            None => d,
        }
        .build_decoder();
        let bytes = text.as_bytes();
        let mut off = 0;
        let error =
            |e: datafusion::arrow::error::ArrowError| csv_error(&e.to_string(), &self.schema);
        while off < bytes.len() {
            let used = d.decode(&bytes[off..]).map_err(error)?;
            if used == 0 {
                break;
            }
            off += used;
        }
        // Records left over: a line held more than one (a carriage return inside it ends a
        // record too), which would otherwise be dropped.
        if bytes[off..].iter().any(|b| !b.is_ascii_whitespace()) {
            return Err("a line holds more than one record (a carriage return inside it)".into());
        }
        let _ = d.decode(&[]).map_err(error)?;
        match d.flush().map_err(error)? {
            Some(b) if b.num_rows() == count => Ok(b),
            Some(_) | None => Err("wrong number of fields".into()),
        }
    }

    /// The ARRAY columns of a CSV batch, read as text, split into their elements at
    /// `csv.array-element-delimiter`, each element trimmed (but strings) and read as the
    /// element type (an empty field is an empty array; the field or an element equal to
    /// the null literal, and an empty element that is not a string, NULL).
    fn csv_arrays(&self, b: RecordBatch) -> std::result::Result<RecordBatch, String> {
        use datafusion::arrow::array::ListArray;
        use datafusion::arrow::buffer::OffsetBuffer;
        if self.csv_arrays.is_empty() {
            return Ok(b);
        }
        let mut cols = b.columns().to_vec();
        for &i in &self.csv_arrays {
            let DataType::List(element) = self.json_schema.field(i).data_type() else {
                return Err("an ARRAY column lost its type".into());
            };
            let text = cols[i]
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or("an ARRAY column was not read as text")?;
            let mut pieces: Vec<&str> = vec![];
            let mut lengths = Vec::with_capacity(text.len());
            for v in text.iter() {
                let before = pieces.len();
                if let Some(v) = v
                    && !v.is_empty()
                {
                    pieces.extend(v.split(self.array_delimiter.as_str()));
                }
                lengths.push(pieces.len() - before);
            }
            // An element that is the null literal, or an empty one that is not a string,
            // is NULL (as `csv_ready` writes a NULL element).
            let is_text = element.data_type() == &DataType::Utf8;
            let strings: StringArray = pieces
                .iter()
                .map(|p| {
                    let v = if is_text { *p } else { p.trim() };
                    if self.null.is_match(v) || (!is_text && v.is_empty()) {
                        None
                    } else {
                        Some(v)
                    }
                })
                .collect();
            let values = datafusion::arrow::compute::cast_with_options(
                &strings,
                element.data_type(),
                &datafusion::arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .map_err(|e| {
                format!(
                    "column '{}': an element is not of type {}: {e}",
                    self.schema.field(i).name(),
                    crate::sql::types::flink_type_name(element.data_type())
                )
            })?;
            let nulls = text.nulls().cloned();
            cols[i] = Arc::new(
                ListArray::try_new(
                    element.clone(),
                    OffsetBuffer::from_lengths(lengths),
                    values,
                    nulls,
                )
                .map_err(|e| e.to_string())?,
            );
        }
        let schema = Arc::new(Schema::new(
            b.schema()
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    f.as_ref()
                        .clone()
                        .with_data_type(self.json_schema.field(i).data_type().clone())
                })
                .collect::<Vec<_>>(),
        ));
        RecordBatch::try_new(schema, cols).map_err(|e| e.to_string())
    }
}

/// Appends `line`, a CSV record with escape character `escape` (which makes the next
/// character literal, in or out of quotes), to `out` as the same record without escapes:
/// every field `"`-quoted with inner quotes doubled. `quote` is the line's quote character
/// ([`NO_QUOTE`] for none).
fn unescape_line(line: &str, delimiter: u8, quote: u8, escape: u8, out: &mut String) {
    let (delimiter, quote, escape) = (delimiter as char, quote as char, escape as char);
    let quoting = quote != NO_QUOTE as char;
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    out.push('"');
    while let Some(c) = chars.next() {
        let literal = if c == escape {
            // As Jackson's CSV decoder: `\n`, `\r`, `\t` and `\0` are the control
            // characters, anything else stands for itself.
            match chars.next() {
                Some('n') => '\n',
                Some('r') => '\r',
                Some('t') => '\t',
                Some('0') => '\0',
                Some(n) => n,
                None => break,
            }
        } else if quoting && c == quote {
            if in_quotes && chars.peek() == Some(&quote) {
                chars.next();
                quote
            } else {
                in_quotes = !in_quotes;
                continue;
            }
        } else if c == delimiter && !in_quotes {
            out.push('"');
            out.push(delimiter);
            out.push('"');
            continue;
        } else {
            c
        };
        if literal == '"' {
            out.push('"');
        }
        out.push(literal);
    }
    out.push('"');
}

/// `b` with each TIME cut to the whole second — a column's, or one inside a ROW, ARRAY or
/// MAP — as Flink's JSON format reads a TIME (`JsonToRowDataConverters.convertToTime`:
/// `localTime.toSecondOfDay() * 1000`, so `"10:00:00.5"` is 10:00:00); it writes whole
/// seconds too. Its CSV format keeps the fraction.
fn whole_seconds(b: RecordBatch) -> std::result::Result<RecordBatch, String> {
    use datafusion::arrow::array::{ArrayRef, AsArray};
    use datafusion::arrow::datatypes::{
        Time32MillisecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    };
    use datafusion::arrow::error::ArrowError;
    let is_time = |t: &DataType| matches!(t, DataType::Time32(_) | DataType::Time64(_));
    if !b
        .schema()
        .fields()
        .iter()
        .any(|f| crate::format::nested::holds(f.data_type(), &is_time))
    {
        return Ok(b);
    }
    let mut cut = |c: &ArrayRef| -> std::result::Result<Option<ArrayRef>, ArrowError> {
        Ok(Some(match c.data_type() {
            DataType::Time32(TimeUnit::Millisecond) => Arc::new(
                c.as_primitive::<Time32MillisecondType>()
                    .unary::<_, Time32MillisecondType>(|v| v - v.rem_euclid(1_000)),
            ),
            DataType::Time64(TimeUnit::Microsecond) => Arc::new(
                c.as_primitive::<Time64MicrosecondType>()
                    .unary::<_, Time64MicrosecondType>(|v| v - v.rem_euclid(1_000_000)),
            ),
            DataType::Time64(TimeUnit::Nanosecond) => Arc::new(
                c.as_primitive::<Time64NanosecondType>()
                    .unary::<_, Time64NanosecondType>(|v| v - v.rem_euclid(1_000_000_000)),
            ),
            // Seconds are whole already; nested arrays without a TIME stay as they are.
            t if !crate::format::nested::holds(t, &is_time) || is_time(t) => c.clone(),
            _ => return Ok(None),
        }))
    };
    let cols = b
        .columns()
        .iter()
        .map(|c| crate::format::nested::rewrite(c, &mut cut))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    RecordBatch::try_new(b.schema(), cols).map_err(|e| e.to_string())
}

/// `dt` with every BOOLEAN and BYTES in it, nested ones too, read as text first (see
/// [`Decoder::booleans`]).
fn booleans_as_text(dt: &DataType) -> DataType {
    let field = |f: &datafusion::arrow::datatypes::FieldRef| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(booleans_as_text(f.data_type())),
        )
    };
    match dt {
        DataType::Boolean | DataType::Binary => DataType::Utf8,
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect()),
        DataType::List(f) => DataType::List(field(f)),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

/// An array read with [`booleans_as_text`]'s type, as `target`: each BOOLEAN text TRUE when
/// it is `true` in any case once trimmed (Java's `Boolean.parseBoolean`), else FALSE; each
/// BYTES text decoded from Base64, as Flink's JSON and CSV formats read binary values
/// (Jackson's `binaryValue()`), an invalid one failing the record.
fn text_to_booleans(
    a: &datafusion::arrow::array::ArrayRef,
    target: &DataType,
) -> std::result::Result<datafusion::arrow::array::ArrayRef, String> {
    use datafusion::arrow::array::{AsArray, ListArray, MapArray, StructArray};
    let e = |e: datafusion::arrow::error::ArrowError| e.to_string();
    Ok(match (a.data_type(), target) {
        (DataType::Utf8, DataType::Boolean) => {
            let s = a
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or("a BOOLEAN was not read as text")?;
            Arc::new(
                s.iter()
                    .map(|v| v.map(|t| t.trim().eq_ignore_ascii_case("true")))
                    .collect::<BooleanArray>(),
            )
        }
        (DataType::Utf8, DataType::Binary) => {
            use base64::Engine;
            let s = a
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or("a BYTES value was not read as text")?;
            let bytes = s
                .iter()
                .map(|v| {
                    v.map(|t| base64::engine::general_purpose::STANDARD.decode(t.trim()))
                        .transpose()
                        .map_err(|e| format!("a BYTES value is not Base64: {e}"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Arc::new(datafusion::arrow::array::BinaryArray::from_iter(bytes))
        }
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = a.as_struct();
            let children = s
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(c, f)| text_to_booleans(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Arc::new(StructArray::try_new(fields.clone(), children, s.nulls().cloned()).map_err(e)?)
        }
        (DataType::List(_), DataType::List(f)) => {
            let l = a.as_list::<i32>();
            let values = text_to_booleans(l.values(), f.data_type())?;
            Arc::new(
                ListArray::try_new(f.clone(), l.offsets().clone(), values, l.nulls().cloned())
                    .map_err(e)?,
            )
        }
        (DataType::Map(_, _), DataType::Map(f, sorted)) => {
            let m = a.as_map();
            let entries: datafusion::arrow::array::ArrayRef = Arc::new(m.entries().clone());
            let entries = text_to_booleans(&entries, f.data_type())?;
            Arc::new(
                MapArray::try_new(
                    f.clone(),
                    m.offsets().clone(),
                    entries.as_struct().clone(),
                    m.nulls().cloned(),
                    *sorted,
                )
                .map_err(e)?,
            )
        }
        _ => a.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_csv_lines_become_plain_quoted_ones() {
        let mut out = String::new();
        unescape_line(r#"1;"quoted";a\;b"#, b';', NO_QUOTE, b'\\', &mut out);
        assert_eq!(out, r#""1";"""quoted""";"a;b""#);
        out.clear();
        unescape_line(r#"x,"a,""b",c\,d,"#, b',', b'"', b'\\', &mut out);
        assert_eq!(out, r#""x","a,""b","c,d","""#);
        out.clear();
        unescape_line(r"a\tb,c\nd", b',', b'"', b'\\', &mut out);
        assert_eq!(out, "\"a\tb\",\"c\nd\"");
    }

    fn decoder(format: Format, options: &[(&str, &str)]) -> Decoder {
        use datafusion::arrow::datatypes::Field;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
        ]));
        let mut o = Options::default();
        for (k, v) in options {
            o.insert(k.to_string(), v.to_string(), None);
        }
        Decoder::new(format, schema, &o).expect("decoder")
    }

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    /// A TIME from JSON is the whole second (Flink's JSON format); from CSV it keeps its
    /// fraction (Flink's CSV format).
    #[test]
    fn a_json_time_is_read_to_the_whole_second() {
        use datafusion::arrow::datatypes::{Field, TimeUnit};
        let schema = Arc::new(Schema::new(vec![Field::new(
            "t",
            DataType::Time32(TimeUnit::Millisecond),
            true,
        )]));
        let read = |format: Format, line: &str| {
            let d = Decoder::new(format, schema.clone(), &Options::default()).expect("decoder");
            let got = d.decode(&lines(&[line]), "f", 1).expect("decodes");
            crate::format::encode::row_texts(&[got.batch.expect("a batch")], ",").expect("text")
        };
        assert_eq!(read(Format::Json, r#"{"t": "10:00:01.500"}"#), ["10:00:01"]);
        assert_eq!(read(Format::Csv, "10:00:01.500"), ["10:00:01.500"]);
        // Inside a ROW and an ARRAY too.
        let time = Field::new("t", DataType::Time32(TimeUnit::Millisecond), true);
        let nested = Arc::new(Schema::new(vec![
            Field::new("r", DataType::Struct(vec![time.clone()].into()), true),
            Field::new("a", DataType::List(Arc::new(time.with_name("item"))), true),
        ]));
        let d = Decoder::new(Format::Json, nested, &Options::default()).expect("decoder");
        let got = d
            .decode(
                &lines(&[r#"{"r": {"t": "10:00:01.5"}, "a": ["11:00:00.25"]}"#]),
                "f",
                1,
            )
            .expect("decodes");
        let text =
            crate::format::encode::row_texts(&[got.batch.expect("a batch")], ";").expect("text");
        assert_eq!(text, ["{t: 10:00:01};[11:00:00]"]);
    }

    /// Bad lines are found by halves, in order, with their indexes and reasons; the good
    /// ones around them are kept.
    #[test]
    fn bad_lines_among_good_ones_are_found_in_order() {
        let d = decoder(Format::Json, &[("json.ignore-parse-errors", "true")]);
        let mut input: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"id":{i},"v":"s"}}"#))
            .collect();
        input[7] = "[7]".into();
        input[50] = r#"{"id":"x"}"#.into();
        input[99] = "{".into();
        let got = d.decode(&input, "f", 1).expect("decodes");
        let bad: Vec<usize> = got.bad.iter().map(|(i, _)| *i).collect();
        assert_eq!(bad, vec![7, 50, 99]);
        assert!(got.bad[1].1.contains("Int64"), "{}", got.bad[1].1);
        let kept = got.kept.expect("kept");
        assert_eq!(kept.len(), 97);
        assert!(!kept.contains(&7) && !kept.contains(&50) && kept.contains(&51));
        assert_eq!(got.batch.expect("rows").num_rows(), 97);
    }

    /// A JSON object or array read into a STRING column (or a ROW's STRING field) is its
    /// compact JSON text, keys in their order, as Flink's `convertToString` gives
    /// (`jsonNode.toString()`); a line that is bad for another reason stays bad.
    #[test]
    fn a_json_object_into_a_string_column_is_its_text() {
        use datafusion::arrow::array::AsArray;
        let d = decoder(Format::Json, &[("json.ignore-parse-errors", "true")]);
        let got = d
            .decode(
                &lines(&[
                    r#"{"id": 1, "v": {"z": 1, "a": [true, "x", 2.5]}}"#,
                    r#"{"id": 2, "v": [1, {"b": null}]}"#,
                    r#"{"id": 3, "v": "plain"}"#,
                    r#"{"id": "x", "v": {"a": 1}}"#,
                ]),
                "f",
                1,
            )
            .expect("decodes");
        assert_eq!(got.bad.len(), 1, "{:?}", got.bad);
        assert_eq!(got.bad[0].0, 3);
        let b = got.batch.expect("rows");
        let v = b.column(1).as_string::<i32>();
        assert_eq!(
            v.iter().flatten().collect::<Vec<_>>(),
            [
                r#"{"z":1,"a":[true,"x",2.5]}"#,
                r#"[1,{"b":null}]"#,
                "plain"
            ]
        );
    }

    /// Without `csv.null-literal` no field is NULL (read first by arrow-csv's empty-is-NULL
    /// rule, then put right): an empty or quoted empty text field is the empty string, and
    /// an empty number is a parse error, found among good lines as before; with the option,
    /// only its literal is NULL.
    #[test]
    fn without_a_null_literal_no_csv_field_is_null() {
        use datafusion::arrow::array::AsArray;
        let d = decoder(Format::Csv, &[("csv.ignore-parse-errors", "true")]);
        let got = d
            .decode(&lines(&["1,", "2,\"\"", ",x", "4,y"]), "f", 1)
            .expect("decodes");
        assert_eq!(got.bad.len(), 1, "{:?}", got.bad);
        assert_eq!(got.bad[0].0, 2, "the empty number");
        let b = got.batch.expect("rows");
        let v = b.column(1).as_string::<i32>();
        assert_eq!(v.null_count(), 0);
        assert_eq!(v.iter().flatten().collect::<Vec<_>>(), ["", "", "y"]);
        // Clean lines with empty text fields: one read, the same values.
        let got = decoder(Format::Csv, &[])
            .decode(&lines(&["1,", "2,\"\""]), "f", 1)
            .expect("decodes");
        let b = got.batch.expect("rows");
        assert_eq!(b.column(1).null_count(), 0);
        // With a null literal, it alone is NULL.
        let got = decoder(Format::Csv, &[("csv.null-literal", "N")])
            .decode(&lines(&["1,", "2,N", "N,z"]), "f", 1)
            .expect("decodes");
        let b = got.batch.expect("rows");
        assert_eq!(b.column(0).null_count(), 1);
        let v = b.column(1).as_string::<i32>();
        assert_eq!(v.iter().collect::<Vec<_>>(), [Some(""), None, Some("z")]);
    }

    /// A CSV chunk is decoded at once when nothing in it needs a line of its own, to the
    /// same rows as line by line; a blank line, a carriage return inside a line, a quote
    /// left open or a bad record leaves it to the line-by-line decoding (None).
    #[test]
    fn a_clean_csv_chunk_is_decoded_at_once() {
        use datafusion::arrow::array::AsArray;
        let d = decoder(Format::Csv, &[]);
        let text = "1,a\n2,\"b,c\"\n3,\n";
        let at_once = d.decode_csv_text(text, 3).expect("decoded at once");
        let by_line = d
            .decode(&lines(&["1,a", "2,\"b,c\"", "3,"]), "f", 1)
            .expect("decodes")
            .batch
            .expect("rows");
        assert_eq!(at_once, by_line);
        let v = at_once.column(1).as_string::<i32>();
        assert_eq!(v.iter().flatten().collect::<Vec<_>>(), ["a", "b,c", ""]);
        for (text, count) in [
            ("1,a\n\n3,c\n", 3),
            ("\n1,a\n", 2),
            ("1,a\r2,b\n", 1),
            ("1,\"a\n2,b\"\n", 2),
            ("x,a\n", 1),
            ("1,a\n2,b\n", 3),
        ] {
            assert!(d.decode_csv_text(text, count).is_none(), "{text:?}");
        }
        // Line by line, a carriage return inside a line is a bad record, not a row lost.
        let got = decoder(Format::Csv, &[("csv.ignore-parse-errors", "true")])
            .decode(&lines(&["1,a\r2,b", "3,c"]), "f", 1)
            .expect("decodes");
        assert_eq!(got.bad.len(), 1, "{:?}", got.bad);
        assert_eq!(got.batch.expect("rows").num_rows(), 1);
    }

    /// A record nesting deeper than Jackson's limit is malformed, not a stack overflow
    /// (100 000 levels crashed the process before).
    #[test]
    fn a_record_nested_too_deep_is_malformed() {
        let d = decoder(Format::Json, &[("json.ignore-parse-errors", "true")]);
        let deep = format!(
            r#"{{"id":1,"v":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let ok = format!(r#"{{"id":2,"v":"{}"}}"#, "[".repeat(5000));
        let got = d.decode(&lines(&[&deep, &ok]), "f", 1).expect("decodes");
        assert_eq!(got.bad.len(), 1);
        assert!(
            got.bad[0].1.contains("deeper than 1000"),
            "{}",
            got.bad[0].1
        );
        assert_eq!(
            got.batch.expect("rows").num_rows(),
            1,
            "brackets in a string do not nest"
        );
    }

    /// A CSV quote left open is a bad record (it took in the line end before), and arrow's
    /// message names the column, not its place in the chunk or the whole row.
    #[test]
    fn an_unclosed_csv_quote_is_malformed_and_reasons_name_the_column() {
        let d = decoder(Format::Csv, &[("csv.ignore-parse-errors", "true")]);
        let got = d
            .decode(
                &lines(&["5,\"open", "6,12\" screen", "x,g", r#"7,"a ""q"" b""#]),
                "f",
                1,
            )
            .expect("decodes");
        let bad: Vec<usize> = got.bad.iter().map(|(i, _)| *i).collect();
        assert_eq!(bad, vec![0, 2]);
        assert!(got.bad[0].1.contains("not closed"), "{}", got.bad[0].1);
        assert!(got.bad[1].1.contains("column 'id'"), "{}", got.bad[1].1);
        assert!(!got.bad[1].1.contains("Row data"), "{}", got.bad[1].1);
        let rows = got.batch.expect("rows");
        assert_eq!(rows.num_rows(), 2);
        let v = rows
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("v");
        assert_eq!(
            v.value(0),
            r#"12" screen"#,
            "a quote inside an unquoted field"
        );
        assert_eq!(v.value(1), r#"a "q" b"#);
    }
}
