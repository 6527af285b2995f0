//! Entry points for coverage-guided fuzzing: each takes arbitrary bytes and drives one of
//! Weir's front ends with them. A panic, a hang or an unbounded allocation is a bug; an
//! error returned for bad input is the expected outcome and is only rendered.
//!
//! The fuzz targets in `fuzz/fuzz_targets/` (built by `cargo fuzz`, libFuzzer on the stable
//! toolchain) are one call each into this module, and `tests/fuzz.rs` replays every file
//! of `fuzz/corpus/` and `fuzz/regressions/` through the same functions under `cargo test`,
//! so each finding stays a regression test.
//!
//! Input layouts (all of them accept every byte string):
//! - [`sql`]: a script (UTF-8, invalid bytes replaced), parsed, then each statement run
//!   against a fresh session, queries and INSERTs as `EXPLAIN` (planned, never started).
//! - [`json`] and [`csv`]: byte 0 picks a table schema from [`SCHEMAS`], byte 1 the format
//!   options (bits), the rest is the records, one per line.
//! - [`kafka_record`]: byte 0 picks a schema, byte 1 the format and options; the rest is
//!   messages separated by `0xFF`, each: a flag byte (bit 0: no value — a tombstone; bit 1:
//!   a key; bit 2: a timestamp, bit 3: log-append time; bit 4: a leader epoch, the top
//!   three bits), then with a key, its length (one byte) and bytes, and the value.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::format::{Decoder, Format};
use crate::job::metrics::JobMetrics;
use crate::session::Session;
use crate::source::SourceContext;
use crate::source::kafka::{KafkaSource, RawMessage};
use crate::source::watermark::SourceStage;
use crate::sql::options::Options;
use crate::sql::parser::{Located, Statement, parse_script};
use crate::sql::types::TypeParser;

/// The table schemas the decoder targets read into, as Flink column lists: every type a
/// format decodes, flat and nested.
pub const SCHEMAS: &[&str] = &[
    "a INT, b BIGINT, c STRING, d DOUBLE, e BOOLEAN",
    "ts TIMESTAMP(3), ltz TIMESTAMP_LTZ(3), dt DATE, t TIME, p DECIMAL(10, 2)",
    "r ROW<x INT, tags ARRAY<STRING>>, m MAP<STRING, BIGINT>, l ARRAY<ROW<v DOUBLE>>",
    "b BYTES, i TINYINT, s SMALLINT, f FLOAT, big DECIMAL(38, 18), n TIMESTAMP(9)",
    "s STRING",
    "a ARRAY<INT>, s ARRAY<STRING>, d ARRAY<DATE>, n BIGINT",
];

/// The schema [`SCHEMAS`]`[i % len]` as Arrow fields.
fn schema(i: u8) -> SchemaRef {
    static PARSED: OnceLock<Vec<SchemaRef>> = OnceLock::new();
    let all = PARSED.get_or_init(|| SCHEMAS.iter().map(|s| parse_columns(s)).collect());
    all[usize::from(i) % all.len()].clone()
}

/// `name TYPE, …` (one of [`SCHEMAS`], a constant of this module) as a schema.
fn parse_columns(columns: &str) -> SchemaRef {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(columns)
        .expect("SCHEMAS tokenize");
    let mut fields = vec![];
    loop {
        let name = parser.parse_identifier().expect("SCHEMAS name columns");
        let ty = TypeParser::new(&mut parser)
            .parse_type()
            .expect("SCHEMAS hold Flink types");
        fields.push(Field::new(name.value, ty, true));
        if !parser.consume_token(&datafusion::sql::sqlparser::tokenizer::Token::Comma) {
            break;
        }
    }
    Arc::new(Schema::new(fields))
}

/// A current-thread runtime shared by the calls of one fuzzing process.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The SQL front end: parses `data` as a script and runs each statement in a fresh
/// session (queries and INSERTs only planned, as `EXPLAIN`), rendering every error
/// against the script as the shell would.
pub fn sql(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let statements = match parse_script(&text) {
        Ok(s) => s,
        Err(e) => {
            let _ = e.render(Some(&text), Some("fuzz.sql"));
            return;
        }
    };
    runtime().block_on(async {
        let mut session = Session::new();
        for s in statements {
            let s = match s.statement {
                Statement::Query(_) | Statement::Insert { .. } => Located {
                    pos: s.pos,
                    text: s.text.clone(),
                    windows: vec![],
                    lookups: vec![],
                    statement: Statement::Explain {
                        inner: Box::new(s),
                        changelog_mode: false,
                    },
                },
                _ => s,
            };
            if let Err(e) = session.execute(&s).await {
                let _ = e.render(Some(&text), Some("fuzz.sql"));
            }
        }
    });
}

/// The options byte's reading for JSON: bit 0 `json.ignore-parse-errors`, bit 1
/// `json.fail-on-missing-field`, bit 2 `json.timestamp-format.standard` = `ISO-8601`.
fn json_options(bits: u8) -> Options {
    let mut o = Options::new();
    o.insert("format", "json", None);
    if bits & 1 != 0 {
        o.insert("json.ignore-parse-errors", "true", None);
    }
    if bits & 2 != 0 {
        o.insert("json.fail-on-missing-field", "true", None);
    }
    if bits & 4 != 0 {
        o.insert("json.timestamp-format.standard", "ISO-8601", None);
    }
    o
}

/// The options byte's reading for CSV: bit 0 `csv.ignore-parse-errors`, bits 1–2 the
/// field delimiter (`,` `;` `|` tab), bit 3 `'` as the quote, bit 4 no quote character,
/// bit 5 `csv.allow-comments`, bit 6 `csv.null-literal` = `null`, bit 7 `\` as escape.
fn csv_options(bits: u8) -> Options {
    let mut o = Options::new();
    o.insert("format", "csv", None);
    if bits & 1 != 0 {
        o.insert("csv.ignore-parse-errors", "true", None);
    }
    let delimiter = [",", ";", "|", "\t"][usize::from((bits >> 1) & 3)];
    o.insert("csv.field-delimiter", delimiter, None);
    if bits & 8 != 0 {
        o.insert("csv.quote-character", "'", None);
    }
    if bits & 16 != 0 {
        o.insert("csv.disable-quote-character", "true", None);
    }
    if bits & 32 != 0 {
        o.insert("csv.allow-comments", "true", None);
    }
    if bits & 64 != 0 {
        o.insert("csv.null-literal", "null", None);
    }
    if bits & 128 != 0 {
        o.insert("csv.escape-character", "\\", None);
    }
    o
}

/// Decodes `records` (lines) with `format` and `options` into `schema`, and checks what
/// any decoding must give: no more rows and bad records than lines, rows of the schema.
fn decode(format: Format, schema: SchemaRef, options: &Options, records: &[u8]) {
    let Ok(decoder) = Decoder::new(format, schema.clone(), options) else {
        return;
    };
    let lines: Vec<String> = String::from_utf8_lossy(records)
        .split('\n')
        .map(str::to_string)
        .collect();
    match decoder.decode(&lines, "fuzz", 1) {
        Ok(d) => {
            let rows = d.batch.as_ref().map_or(0, |b| b.num_rows());
            assert!(
                rows + d.bad.len() <= lines.len(),
                "{rows} rows and {} bad records from {} lines",
                d.bad.len(),
                lines.len()
            );
            if let Some(b) = &d.batch {
                assert_eq!(b.schema().fields().len(), schema.fields().len());
            }
            if let Some(kept) = &d.kept {
                assert_eq!(kept.len(), rows);
            }
        }
        Err(e) => {
            let _ = e.render(None, None);
        }
    }
}

/// The JSON decoder; see the module's input layout.
pub fn json(data: &[u8]) {
    let [s, bits, records @ ..] = data else {
        return;
    };
    decode(Format::Json, schema(*s), &json_options(*bits), records);
}

/// The CSV decoder; see the module's input layout.
pub fn csv(data: &[u8]) {
    let [s, bits, records @ ..] = data else {
        return;
    };
    decode(Format::Csv, schema(*s), &csv_options(*bits), records);
}

/// The Kafka record path (buffering, tombstones, decoding, the `key`, `offset`,
/// `timestamp`, `timestamp-type` and `leader-epoch` metadata columns, bad records), without a broker; see
/// the module's input layout. Format byte: bit 0 CSV (else JSON), bit 1 metadata columns,
/// the other bits the format's options.
pub fn kafka_record(data: &[u8]) {
    let [s, bits, rest @ ..] = data else {
        return;
    };
    let value_schema = schema(*s);
    let mut options = if bits & 1 != 0 {
        csv_options(bits >> 2)
    } else {
        json_options(bits >> 2)
    };
    options.insert("connector", "kafka", None);
    options.insert("topic", "fuzz", None);
    options.insert("properties.bootstrap.servers", "127.0.0.1:9", None);
    let mut fields: Vec<Field> = value_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut metadata = vec![];
    if bits & 2 != 0 {
        use datafusion::arrow::datatypes::{DataType, TimeUnit};
        for (name, key, ty) in [
            ("k", "key", DataType::Utf8),
            ("o", "offset", DataType::Int64),
            (
                "ts",
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ),
            ("tt", "timestamp-type", DataType::Utf8),
            ("le", "leader-epoch", DataType::Int32),
        ] {
            if value_schema.field_with_name(name).is_err() {
                fields.push(Field::new(name, ty, true));
                metadata.push((name.to_string(), key.to_string()));
            }
        }
    }
    let Ok(source) = KafkaSource::new(
        "fuzz",
        &options,
        Arc::new(Schema::new(fields)),
        &metadata,
        64,
    ) else {
        return;
    };
    let messages: Vec<RawMessage> = rest
        .split(|b| *b == 0xFF)
        .enumerate()
        .map(|(i, m)| message(i as i64, m))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel(messages.len() * 2 + 8);
    let job = Arc::new(JobMetrics::default());
    let mut ctx = SourceContext::new(
        tx,
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
        SourceStage::new(None, None),
        job.register("source"),
        job.clone(),
    );
    ctx.with_dead_letters(0);
    if let Err(e) = source.replay("fuzz", &messages, &mut ctx) {
        let _ = e.render(None, None);
    }
    let mut rows = 0;
    let mut letters = 0;
    while let Ok(m) = rx.try_recv() {
        match m {
            crate::job::message::Message::Batch(b) => rows += b.num_rows(),
            crate::job::message::Message::DeadLetters(_, b) => letters += b.num_rows(),
            _ => {}
        }
    }
    let tombstones = job.tombstones.load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert!(
        rows + letters + tombstones <= messages.len(),
        "{rows} rows, {letters} dead letters and {tombstones} tombstones from {} messages",
        messages.len()
    );
}

/// One message of [`kafka_record`]'s input: flags, an optional key, the value.
fn message(offset: i64, m: &[u8]) -> RawMessage {
    let (flags, rest) = m.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
    let (key, value) = if flags & 2 != 0 {
        let (len, r) = rest.split_first().map_or((0, &[][..]), |(l, r)| (*l, r));
        let len = usize::from(len).min(r.len());
        (Some(r[..len].to_vec()), &r[len..])
    } else {
        (None, rest)
    };
    RawMessage {
        value: (flags & 1 == 0).then(|| value.to_vec()),
        key,
        timestamp: (flags & 4 != 0).then_some((offset * 1000, flags & 8 != 0)),
        headers: vec![],
        offset,
        leader_epoch: (flags & 16 != 0).then_some(i32::from(flags >> 5)),
    }
}
