//! The `datagen` source: Flink's random and sequence generator.
//!
//! Options (Flink's): `rows-per-second` (default 10000; `0` means as fast as possible),
//! `number-of-rows` (default unbounded), and per column `fields.<col>.kind` = `random` |
//! `sequence`, `.min` / `.max` (random numbers), `.length` (random strings, default 100),
//! `.max-past` (random timestamps: up to this far before now, default 0), `.start` / `.end`
//! (sequences; the source ends when a sequence is exhausted), `.null-rate`, plus `seed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, StringBuilder,
    Time32MillisecondArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, UInt32Array,
};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::{Source, SourceContext};
use crate::error::{Result, WeirError};
use crate::sql::options::Options;

pub const OPTIONS: &[&str] = &["rows-per-second", "number-of-rows", "seed", "fields.#"];

enum Kind {
    Random {
        min: f64,
        max: f64,
        /// A string's or byte string's length, or a collection's number of elements.
        length: usize,
        /// `var-len`: a string's length is drawn from 1 to `length - 1`, as Flink's.
        var_len: bool,
        max_past_ms: i64,
    },
    Sequence {
        next: i64,
        end: i64,
    },
}

/// How one column — or a field, element, key or value inside one — is generated.
struct FieldGen {
    data_type: DataType,
    kind: Kind,
    null_rate: f64,
    /// A ROW's fields, an ARRAY's element, a MAP's key and value: each generated as its
    /// own column, named `<col>.<field>`, `<col>.element`, `<col>.key`, `<col>.value` in
    /// the options, as in Flink.
    children: Vec<FieldGen>,
}

pub struct DatagenSource {
    schema: SchemaRef,
    fields: Vec<FieldGen>,
    rows_per_second: u64,
    remaining: Option<u64>,
    batch_size: usize,
    /// The generator of random values; saved whole in a checkpoint, so that a restored job
    /// draws the numbers and strings an uninterrupted one would have (random timestamps
    /// and dates count back from the wall clock, so those differ).
    rng: Xoshiro256PlusPlus,
}

fn type_range(dt: &DataType) -> (f64, f64) {
    match dt {
        DataType::Int8 => (i8::MIN as f64, i8::MAX as f64),
        DataType::Int16 => (i16::MIN as f64, i16::MAX as f64),
        DataType::Int32 => (i32::MIN as f64, i32::MAX as f64),
        DataType::Int64 => (i64::MIN as f64, i64::MAX as f64),
        DataType::Float32 => (f32::MIN as f64, f32::MAX as f64),
        DataType::Decimal128(p, s) => {
            let m = 10f64.powi(*p as i32 - *s as i32) - 1.0;
            (-m, m)
        }
        DataType::Boolean => (0.0, 1.0),
        _ => (-f64::MAX / 2.0, f64::MAX / 2.0),
    }
}

impl DatagenSource {
    /// The generator of `schema`'s rows from the table's options. Errors: a column type
    /// Flink's generator has no rule for, a bad option value (at its position), an option
    /// naming no column or nested field.
    pub fn new(schema: SchemaRef, o: &Options, table: &str, batch_size: usize) -> Result<Self> {
        let mut paths = vec![];
        let fields = schema
            .fields()
            .iter()
            .map(|f| field_gen(f.name(), f.data_type(), o, table, true, &mut paths))
            .collect::<Result<Vec<_>>>()?;
        // Options for columns (or nested fields) the table does not have are mistakes.
        for (k, _) in o.iter() {
            if let Some(rest) = k.strip_prefix("fields.") {
                let col = rest.rsplit_once('.').map(|(c, _)| c).unwrap_or(rest);
                if !paths.iter().any(|p| p == col) {
                    return Err(WeirError::sql(
                        format!("option '{k}' names no column of table '{table}'"),
                        o.pos(k),
                    )
                    .with_hint(format!("columns and fields: {}", paths.join(", "))));
                }
            }
        }
        Ok(DatagenSource {
            schema,
            fields,
            rows_per_second: o.parse_or("rows-per-second", 10_000)?,
            remaining: o.parse_opt("number-of-rows")?,
            batch_size,
            rng: Xoshiro256PlusPlus::seed_from_u64(o.parse_or("seed", 0)?),
        })
    }

    fn column(&mut self, i: usize, n: usize, now_ms: i64) -> Result<ArrayRef> {
        generate(&mut self.fields[i], &mut self.rng, n, now_ms)
    }

    /// Rows that may still come before a sequence or `number-of-rows` runs out.
    fn remaining(&self) -> u64 {
        let mut r = self.remaining.unwrap_or(u64::MAX);
        for f in &self.fields {
            if let Kind::Sequence { next, end } = f.kind {
                r = r.min((end - next + 1).max(0) as u64);
            }
        }
        r
    }
}

/// A column — or a nested field, element, key or value, at `path` (`buyer.first_name`,
/// `tags.element`, `m.key`) — of type `dt`, with its `fields.<path>.*` options; `paths`
/// collects every path the options may name. Nested types are generated as Flink's
/// `RandomGeneratorVisitor` does: a ROW field by field, an ARRAY of `length` elements and a
/// MAP of `length` entries (default 3; a key drawn twice is held once). Errors: a type
/// with no rule, a bad option value, a sequence that is nested or not a number or string.
fn field_gen(
    path: &str,
    dt: &DataType,
    o: &Options,
    table: &str,
    top: bool,
    paths: &mut Vec<String>,
) -> Result<FieldGen> {
    paths.push(path.to_string());
    let key = |k: &str| format!("fields.{path}.{k}");
    let mut nested =
        |name: &str, t: &DataType| field_gen(&format!("{path}.{name}"), t, o, table, false, paths);
    let children = match dt {
        DataType::Struct(fs) => fs
            .iter()
            .map(|f| nested(f.name(), f.data_type()))
            .collect::<Result<Vec<_>>>()?,
        DataType::List(f) | DataType::LargeList(f) => vec![nested("element", f.data_type())?],
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => vec![
                nested("key", kv[0].data_type())?,
                nested("value", kv[1].data_type())?,
            ],
            other => return Err(WeirError::internal(format!("map entries of {other}"))),
        },
        _ => vec![],
    };
    let scalar = dt.is_integer()
        || matches!(
            dt,
            DataType::Float32
                | DataType::Float64
                | DataType::Decimal128(..)
                | DataType::Boolean
                | DataType::Utf8
                | DataType::Binary
                | DataType::Timestamp(..)
                | DataType::Date32
                | DataType::Time32(TimeUnit::Millisecond)
                | DataType::Time64(_)
        );
    if children.is_empty() && !scalar {
        return Err(WeirError::user(format!(
            "datagen cannot generate column '{path}' of type {} in table '{table}'",
            crate::sql::types::flink_type_name(dt)
        ))
        .with_hint(
            "datagen generates numbers, BOOLEAN, STRING, BYTES, DATE, TIME, TIMESTAMP, ROW, ARRAY and MAP columns",
        ));
    }
    let kind = match o.get(&key("kind")).unwrap_or("random") {
        "random" => {
            let (tmin, tmax) = type_range(dt);
            let min: f64 = o.parse_or(&key("min"), tmin)?;
            let max: f64 = o.parse_or(&key("max"), tmax)?;
            if min > max {
                return Err(WeirError::sql(
                    format!("'{}' is greater than '{}'", key("min"), key("max")),
                    o.pos(&key("min")),
                ));
            }
            let max_past = o.duration_opt(&key("max-past"))?.unwrap_or_default();
            let collection = matches!(
                dt,
                DataType::List(_) | DataType::LargeList(_) | DataType::Map(..)
            );
            Kind::Random {
                min,
                max,
                length: o.parse_or(&key("length"), if collection { 3 } else { 100 })?,
                var_len: o.parse_or(&key("var-len"), false)?,
                max_past_ms: max_past.as_millis() as i64,
            }
        }
        "sequence" => {
            if !top {
                return Err(WeirError::sql(
                    format!("a sequence is for a top-level column; '{path}' is nested"),
                    o.pos(&key("kind")),
                ));
            }
            if !(dt.is_integer() || matches!(dt, DataType::Utf8)) {
                return Err(WeirError::sql(
                    format!("a sequence needs an integer or STRING column, '{path}' is {dt}"),
                    o.pos(&key("kind")),
                ));
            }
            let start: i64 = o.parse_opt(&key("start"))?.ok_or_else(|| {
                WeirError::sql(
                    format!("a sequence needs '{}'", key("start")),
                    o.pos(&key("kind")),
                )
            })?;
            let end: i64 = o.parse_opt(&key("end"))?.ok_or_else(|| {
                WeirError::sql(
                    format!("a sequence needs '{}'", key("end")),
                    o.pos(&key("kind")),
                )
            })?;
            if start > end {
                return Err(WeirError::sql(
                    format!("'{}' is greater than '{}'", key("start"), key("end")),
                    o.pos(&key("start")),
                ));
            }
            Kind::Sequence { next: start, end }
        }
        other => {
            return Err(WeirError::sql(
                format!(
                    "'{}' = '{other}' must be 'random' or 'sequence'",
                    key("kind")
                ),
                o.pos(&key("kind")),
            ));
        }
    };
    let null_rate: f64 = o.parse_or(&key("null-rate"), 0.0)?;
    Ok(FieldGen {
        data_type: dt.clone(),
        kind,
        null_rate,
        children,
    })
}

/// A string's, byte string's or collection's length: `length`, or with `var-len` a draw
/// from 1 to `length - 1` (Flink's `nextInt(1, length)`).
fn random_length(kind: &Kind, rng: &mut Xoshiro256PlusPlus) -> usize {
    match *kind {
        Kind::Random {
            length,
            var_len: true,
            ..
        } => rng.random_range(1..length.max(2)),
        Kind::Random { length, .. } => length,
        Kind::Sequence { .. } => 0,
    }
}

/// `n` values of `g`: NULL at its `null-rate`; a nested type's parts generated as columns
/// of their own (`n` × `length` elements for a collection).
fn generate(
    g: &mut FieldGen,
    rng: &mut Xoshiro256PlusPlus,
    n: usize,
    now_ms: i64,
) -> Result<ArrayRef> {
    use datafusion::arrow::array::{LargeListArray, ListArray, MapArray, StructArray};
    use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
    let valid: Vec<bool> = (0..n)
        .map(|_| g.null_rate <= 0.0 || rng.random::<f64>() >= g.null_rate)
        .collect();
    let nulls = || {
        valid
            .contains(&false)
            .then(|| NullBuffer::from(valid.clone()))
    };
    let len = match g.kind {
        Kind::Random { length, .. } => length,
        Kind::Sequence { .. } => 0,
    };
    match g.data_type.clone() {
        DataType::Struct(fields) => {
            let cols = g
                .children
                .iter_mut()
                .map(|c| generate(c, rng, n, now_ms))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Arc::new(StructArray::try_new(fields, cols, nulls())?));
        }
        DataType::List(f) => {
            let values = generate(&mut g.children[0], rng, n * len, now_ms)?;
            let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(len, n));
            return Ok(Arc::new(ListArray::try_new(f, offsets, values, nulls())?));
        }
        DataType::LargeList(f) => {
            let values = generate(&mut g.children[0], rng, n * len, now_ms)?;
            let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(len, n));
            return Ok(Arc::new(LargeListArray::try_new(
                f,
                offsets,
                values,
                nulls(),
            )?));
        }
        DataType::Map(entries, sorted) => {
            let [k, v] = &mut g.children[..] else {
                return Err(WeirError::internal("a map generates a key and a value"));
            };
            let keys = generate(k, rng, n * len, now_ms)?;
            let values = generate(v, rng, n * len, now_ms)?;
            // A map holds each key once (Flink's is a Java map): a key drawn twice in a
            // row keeps its last value.
            let conv = RowConverter::new(vec![SortField::new(keys.data_type().clone())])?;
            let rows = conv.convert_columns(std::slice::from_ref(&keys))?;
            let mut keep: Vec<u32> = Vec::with_capacity(n * len);
            let mut lengths = Vec::with_capacity(n);
            for r in 0..n {
                let at = keep.len();
                for i in r * len..(r + 1) * len {
                    if !(i + 1..(r + 1) * len).any(|j| rows.row(j) == rows.row(i)) {
                        keep.push(i as u32);
                    }
                }
                lengths.push(keep.len() - at);
            }
            let idx = UInt32Array::from(keep);
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(WeirError::internal("map entries are a struct"));
            };
            let pairs = StructArray::try_new(
                kv.clone(),
                vec![take(&keys, &idx, None)?, take(&values, &idx, None)?],
                None,
            )?;
            return Ok(Arc::new(MapArray::try_new(
                entries,
                OffsetBuffer::from_lengths(lengths),
                pairs,
                nulls(),
                sorted,
            )?));
        }
        _ => {}
    }
    let mut nums: Vec<f64> = Vec::with_capacity(n);
    let mut seq: Vec<i64> = Vec::with_capacity(n);
    match &mut g.kind {
        Kind::Random {
            min,
            max,
            max_past_ms,
            ..
        } => match &g.data_type {
            DataType::Timestamp(..)
            | DataType::Date32
            | DataType::Time32(_)
            | DataType::Time64(_) => {
                for _ in 0..n {
                    let past = if *max_past_ms > 0 {
                        rng.random_range(0..=*max_past_ms)
                    } else {
                        0
                    };
                    seq.push(now_ms - past);
                }
            }
            _ => {
                for _ in 0..n {
                    let u: f64 = rng.random();
                    nums.push(*min + u * (*max - *min));
                }
            }
        },
        Kind::Sequence { next, .. } => {
            for _ in 0..n {
                seq.push(*next);
                *next += 1;
            }
        }
    }
    let is_seq = matches!(g.kind, Kind::Sequence { .. });
    let ints = |nums: &Vec<f64>, seq: &Vec<i64>| -> Vec<i64> {
        if is_seq {
            seq.clone()
        } else {
            nums.iter().map(|f| f.round() as i64).collect()
        }
    };
    let mask = |i: usize| valid[i];
    let arr: ArrayRef = match &g.data_type {
        DataType::Int8 => Arc::new(Int8Array::from_iter(
            ints(&nums, &seq)
                .iter()
                .enumerate()
                .map(|(i, v)| mask(i).then_some(*v as i8)),
        )),
        DataType::Int16 => Arc::new(Int16Array::from_iter(
            ints(&nums, &seq)
                .iter()
                .enumerate()
                .map(|(i, v)| mask(i).then_some(*v as i16)),
        )),
        DataType::Int32 => Arc::new(Int32Array::from_iter(
            ints(&nums, &seq)
                .iter()
                .enumerate()
                .map(|(i, v)| mask(i).then_some(*v as i32)),
        )),
        DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let a: ArrayRef = Arc::new(Int64Array::from_iter(
                ints(&nums, &seq)
                    .iter()
                    .enumerate()
                    .map(|(i, v)| mask(i).then_some(*v)),
            ));
            datafusion::arrow::compute::cast(&a, &g.data_type)?
        }
        DataType::Float32 => Arc::new(Float32Array::from_iter(
            nums.iter()
                .enumerate()
                .map(|(i, v)| mask(i).then_some(*v as f32)),
        )),
        DataType::Float64 => Arc::new(Float64Array::from_iter(
            nums.iter().enumerate().map(|(i, v)| mask(i).then_some(*v)),
        )),
        DataType::Decimal128(p, s) => {
            let scale = 10f64.powi(*s as i32);
            Arc::new(
                Decimal128Array::from_iter(
                    nums.iter()
                        .enumerate()
                        .map(|(i, v)| mask(i).then_some((v * scale).round() as i128)),
                )
                .with_precision_and_scale(*p, *s)?,
            )
        }
        DataType::Boolean => Arc::new(BooleanArray::from_iter(
            nums.iter()
                .enumerate()
                .map(|(i, v)| mask(i).then_some(*v >= 0.5)),
        )),
        DataType::Utf8 => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for i in 0..n {
                if !valid[i] {
                    b.append_null();
                } else if is_seq {
                    b.append_value(seq[i].to_string());
                } else {
                    // Flink's: lower-case hexadecimal digits.
                    let s: String = (0..random_length(&g.kind, rng))
                        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16usize)]))
                        .collect();
                    b.append_value(s);
                }
            }
            Arc::new(b.finish())
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::with_capacity(n, n * 16);
            let mut bytes = vec![];
            for &ok in &valid {
                if ok {
                    bytes.clear();
                    bytes.extend((0..random_length(&g.kind, rng)).map(|_| rng.random::<u8>()));
                    b.append_value(&bytes);
                } else {
                    b.append_null();
                }
            }
            Arc::new(b.finish())
        }
        // The wall clock's time of day (UTC, as DATE's day), as Flink's generator gives.
        DataType::Time32(TimeUnit::Millisecond) => Arc::new(Time32MillisecondArray::from_iter(
            seq.iter()
                .enumerate()
                .map(|(i, v)| mask(i).then_some(v.rem_euclid(86_400_000) as i32)),
        )),
        DataType::Time64(unit) => {
            let per_ms = if *unit == TimeUnit::Nanosecond {
                1_000_000
            } else {
                1_000
            };
            let a: ArrayRef = Arc::new(Time64MicrosecondArray::from_iter(
                seq.iter()
                    .enumerate()
                    .map(|(i, v)| mask(i).then_some(v.rem_euclid(86_400_000) * per_ms)),
            ));
            datafusion::arrow::compute::cast(&a, &g.data_type)?
        }
        DataType::Date32 => Arc::new(Date32Array::from_iter(
            seq.iter()
                .enumerate()
                .map(|(i, v)| mask(i).then_some((v / 86_400_000) as i32)),
        )),
        DataType::Timestamp(unit, tz) => {
            let it = seq.iter().enumerate().map(|(i, v)| mask(i).then_some(*v));
            let a: ArrayRef = match unit {
                TimeUnit::Millisecond => {
                    Arc::new(TimestampMillisecondArray::from_iter(it).with_timezone_opt(tz.clone()))
                }
                TimeUnit::Microsecond => Arc::new(
                    TimestampMicrosecondArray::from_iter(it.map(|v| v.map(|x| x * 1000)))
                        .with_timezone_opt(tz.clone()),
                ),
                _ => Arc::new(
                    TimestampNanosecondArray::from_iter(it.map(|v| v.map(|x| x * 1_000_000)))
                        .with_timezone_opt(tz.clone()),
                ),
            };
            a
        }
        other => return Err(WeirError::internal(format!("datagen type {other}"))),
    };
    Ok(arr)
}

impl Source for DatagenSource {
    fn kind(&self) -> &'static str {
        "datagen"
    }

    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let start = Instant::now();
        let mut produced: u64 = 0;
        let chunk = if self.rows_per_second == 0 {
            self.batch_size
        } else {
            // About ten batches a second, so a slow rate still flows smoothly.
            (self.rows_per_second as usize / 10).clamp(1, self.batch_size)
        };
        loop {
            let n = (self.remaining().min(chunk as u64)) as usize;
            if n == 0 {
                ctx.finish(self, true)?;
                return Ok(());
            }
            if self.rows_per_second > 0 {
                let due = Duration::from_secs_f64(produced as f64 / self.rows_per_second as f64);
                let elapsed = start.elapsed();
                if due > elapsed {
                    std::thread::sleep(due - elapsed);
                }
            }
            // A stop comes before a batch is generated, never between generating and
            // sending it: the position a savepoint saves is after the last batch sent.
            if ctx.should_stop() {
                ctx.finish(self, false)?;
                return Ok(());
            }
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let cols = (0..self.fields.len())
                .map(|i| self.column(i, n, now_ms))
                .collect::<Result<Vec<_>>>()?;
            let opts =
                datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n));
            let batch = RecordBatch::try_new_with_options(self.schema.clone(), cols, &opts)?;
            produced += n as u64;
            if let Some(r) = self.remaining.as_mut() {
                *r -= n as u64;
            }
            if !ctx.emit(batch)? {
                ctx.finish(self, false)?;
                return Ok(());
            }
            ctx.checkpoint(self)?;
        }
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// Two batches: one row with `remaining` (rows `number-of-rows` still allows, NULL when
    /// unbounded) and `rng` (the random generator's state, as JSON); then one row per
    /// column, `field` and `next` (the next value of a sequence column, NULL for a random
    /// one).
    fn snapshot(&self) -> Result<Vec<RecordBatch>> {
        use datafusion::arrow::array::{StringArray, UInt64Array};
        use datafusion::arrow::datatypes::{Field, Schema};
        let rng = serde_json::to_string(&self.rng)
            .map_err(|e| WeirError::internal(format!("datagen state: {e}")))?;
        let head = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("remaining", DataType::UInt64, true),
                Field::new("rng", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(UInt64Array::from(vec![self.remaining])),
                Arc::new(StringArray::from(vec![rng])),
            ],
        )?;
        let names: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let next: Vec<Option<i64>> = self
            .fields
            .iter()
            .map(|f| match f.kind {
                Kind::Sequence { next, .. } => Some(next),
                Kind::Random { .. } => None,
            })
            .collect();
        let fields = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("field", DataType::Utf8, false),
                Field::new("next", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from(next)),
            ],
        )?;
        Ok(vec![head, fields])
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
        let bad = |what: &str| {
            WeirError::user(format!(
                "the checkpoint's datagen state is malformed: {what}"
            ))
        };
        let [head, fields] = state.as_slice() else {
            return Err(bad("two batches expected"));
        };
        let remaining = head
            .column_by_name("remaining")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .filter(|c| c.len() == 1)
            .ok_or_else(|| bad("remaining"))?;
        let rng = head
            .column_by_name("rng")
            .and_then(|c| c.as_string_opt::<i32>())
            .filter(|c| c.len() == 1)
            .ok_or_else(|| bad("rng"))?;
        self.rng = serde_json::from_str(rng.value(0)).map_err(|e| bad(&e.to_string()))?;
        self.remaining = remaining.is_valid(0).then(|| remaining.value(0));
        let names = fields
            .column_by_name("field")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| bad("field"))?;
        let next = fields
            .column_by_name("next")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| bad("next"))?;
        for (i, f) in self.fields.iter_mut().enumerate() {
            let name = self.schema.field(i).name();
            let saved = (0..names.len()).find(|&j| names.value(j) == name);
            match (&mut f.kind, saved) {
                (Kind::Sequence { next: n, .. }, Some(j)) if next.is_valid(j) => {
                    *n = next.value(j);
                }
                (Kind::Random { .. }, Some(j)) if next.is_null(j) => {}
                _ => {
                    return Err(WeirError::user(format!(
                        "the checkpoint's datagen state does not fit column '{name}': the table's columns or their 'kind' changed"
                    ))
                    .with_hint("start over with --from-scratch"));
                }
            }
        }
        Ok(())
    }
}
