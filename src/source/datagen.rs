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
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, StringBuilder, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
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
        length: usize,
        max_past_ms: i64,
    },
    Sequence {
        next: i64,
        end: i64,
    },
}

struct FieldGen {
    data_type: DataType,
    kind: Kind,
    null_rate: f64,
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
    pub fn new(schema: SchemaRef, o: &Options, table: &str, batch_size: usize) -> Result<Self> {
        let mut fields = vec![];
        for f in schema.fields() {
            let key = |k: &str| format!("fields.{}.{k}", f.name());
            let dt = f.data_type().clone();
            let supported = dt.is_integer()
                || matches!(
                    dt,
                    DataType::Float32
                        | DataType::Float64
                        | DataType::Decimal128(..)
                        | DataType::Boolean
                        | DataType::Utf8
                        | DataType::Timestamp(..)
                        | DataType::Date32
                );
            if !supported {
                return Err(WeirError::user(format!(
                    "datagen cannot generate column '{}' of type {dt} in table '{table}'",
                    f.name()
                ))
                .with_hint(
                    "datagen generates numbers, BOOLEAN, STRING, DATE and TIMESTAMP columns",
                ));
            }
            let kind = match o.get(&key("kind")).unwrap_or("random") {
                "random" => {
                    let (tmin, tmax) = type_range(&dt);
                    let min: f64 = o.parse_or(&key("min"), tmin)?;
                    let max: f64 = o.parse_or(&key("max"), tmax)?;
                    if min > max {
                        return Err(WeirError::sql(
                            format!("'{}' is greater than '{}'", key("min"), key("max")),
                            o.pos(&key("min")),
                        ));
                    }
                    let max_past = o.duration_opt(&key("max-past"))?.unwrap_or_default();
                    Kind::Random {
                        min,
                        max,
                        length: o.parse_or(&key("length"), 100)?,
                        max_past_ms: max_past.as_millis() as i64,
                    }
                }
                "sequence" => {
                    if !(dt.is_integer() || matches!(dt, DataType::Utf8)) {
                        return Err(WeirError::sql(
                            format!(
                                "a sequence needs an integer or STRING column, '{}' is {dt}",
                                f.name()
                            ),
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
            fields.push(FieldGen {
                data_type: dt,
                kind,
                null_rate,
            });
        }
        // Options for columns the table does not have are mistakes.
        for (k, _) in o.iter() {
            if let Some(rest) = k.strip_prefix("fields.") {
                let col = rest.rsplit_once('.').map(|(c, _)| c).unwrap_or(rest);
                if schema.column_with_name(col).is_none() {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(WeirError::sql(
                        format!("option '{k}' names no column of table '{table}'"),
                        o.pos(k),
                    )
                    .with_hint(format!("columns: {}", names.join(", "))));
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
        let rng = &mut self.rng;
        let g = &mut self.fields[i];
        let valid: Vec<bool> = (0..n)
            .map(|_| g.null_rate <= 0.0 || rng.random::<f64>() >= g.null_rate)
            .collect();
        let mut nums: Vec<f64> = Vec::with_capacity(n);
        let mut seq: Vec<i64> = Vec::with_capacity(n);
        match &mut g.kind {
            Kind::Random {
                min,
                max,
                max_past_ms,
                ..
            } => match &g.data_type {
                DataType::Timestamp(..) | DataType::Date32 => {
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
                        let len = match g.kind {
                            Kind::Random { length, .. } => length,
                            Kind::Sequence { .. } => 0,
                        };
                        let s: String = (0..len)
                            .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
                            .collect();
                        b.append_value(s);
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Date32 => Arc::new(Date32Array::from_iter(
                seq.iter()
                    .enumerate()
                    .map(|(i, v)| mask(i).then_some((v / 86_400_000) as i32)),
            )),
            DataType::Timestamp(unit, tz) => {
                let it = seq.iter().enumerate().map(|(i, v)| mask(i).then_some(*v));
                let a: ArrayRef = match unit {
                    TimeUnit::Millisecond => Arc::new(
                        TimestampMillisecondArray::from_iter(it).with_timezone_opt(tz.clone()),
                    ),
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
