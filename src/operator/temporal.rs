//! The event-time temporal join: `s JOIN v FOR SYSTEM_TIME AS OF s.t ON s.k = v.k`, each
//! row of the stream `s` joined with the version of the versioned table `v` that was valid
//! at its time `s.t` (Flink's "Event Time Temporal Join", its
//! `TemporalRowTimeJoinOperator`).
//!
//! The versioned table is a stream with a primary key and an event-time attribute: each of
//! its rows is the key's version from its time on, until the next one (a `-D` of a
//! changelog ends it; a `-U` is passed over, the table being read as upserts). A stream row waits until the merged watermark `W` reaches its time
//! (a watermark promises no more rows at or below it, so every version valid at `t <= W`
//! is in), then meets the key's latest version with a time at or before `t` — if that
//! version is an insertion or update and the rest of the ON condition holds; a `LEFT JOIN`
//! pads it with NULLs otherwise, an `INNER JOIN` drops it. Of two versions with one time
//! the later one counts, as Flink's state keyed by the version's time keeps it. The output
//! is append-only, the rows a watermark releases in the order they arrived (as Flink's
//! operator emits them, by their arrival sequence), and keeps the stream's time attribute.
//!
//! State: the stream rows still above the watermark, and per key the versions from the
//! latest one at or before the watermark on (older ones can no longer be chosen). Keys and
//! versions are kept in Arrow's row format.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, Int64Array, UInt32Array,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, WeirError};
use crate::job::Message;
use crate::operator::Operator;
use crate::source::watermark::to_epoch_millis;

/// One version of a key: from `time` (ms) on, `row` (Arrow's row format of the table's
/// columns), or nothing when it is a retraction.
struct Version {
    time: i64,
    live: bool,
    row: Box<[u8]>,
}

/// The operator. Input 0 is the stream, input 1 the versioned table.
pub struct TemporalJoin {
    /// `LEFT JOIN` (pads rows without a version) or `INNER JOIN`.
    left_outer: bool,
    left_keys: Vec<Arc<dyn PhysicalExpr>>,
    right_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The stream's time column and the table's version time column.
    left_time: usize,
    right_time: usize,
    /// The rest of the ON condition, over a joined row (stream columns then table columns).
    filter: Option<Arc<dyn PhysicalExpr>>,
    left_schema: SchemaRef,
    right_schema: SchemaRef,
    pair_schema: SchemaRef,
    schema: SchemaRef,
    /// The output's columns among a joined row's (each side may have read its time column
    /// for the join alone).
    out_cols: Vec<usize>,
    key_conv: RowConverter,
    row_conv: RowConverter,
    /// Stream rows waiting for the watermark to reach their time.
    waiting: Vec<RecordBatch>,
    /// Each key's versions, in time order.
    versions: HashMap<Box<[u8]>, Vec<Version>>,
    /// Keys with versions at these times: their older versions go once the watermark
    /// passes (Flink's clean-up timers).
    cleanup: BTreeMap<i64, Vec<Box<[u8]>>>,
    watermark: i64,
}

impl TemporalJoin {
    /// A temporal join of `left` (the stream) with `right` (the versioned table) on equal
    /// `left_keys`/`right_keys` (the table's primary key), rows of `left` at `left_time`
    /// meeting versions from `right_time`; `filter` is the rest of the ON condition over
    /// both sides' columns, `schema` the output's, of the joined row's columns `out_cols`.
    ///
    /// Errors: a key type Arrow's row format cannot encode.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        left_outer: bool,
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        left_time: usize,
        right_time: usize,
        filter: Option<Arc<dyn PhysicalExpr>>,
        left_schema: SchemaRef,
        right_schema: SchemaRef,
        schema: SchemaRef,
        out_cols: Vec<usize>,
    ) -> Result<Self> {
        let key_conv = RowConverter::new(
            right_keys
                .iter()
                .map(|e| Ok(SortField::new(e.data_type(&right_schema)?)))
                .collect::<Result<Vec<_>>>()?,
        )?;
        let row_conv = RowConverter::new(
            right_schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let pair_schema = Arc::new(Schema::new(
            left_schema
                .fields()
                .iter()
                .chain(right_schema.fields().iter())
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<Field>>(),
        ));
        Ok(TemporalJoin {
            left_outer,
            left_keys,
            right_keys,
            left_time,
            right_time,
            filter,
            left_schema,
            right_schema,
            pair_schema,
            schema,
            out_cols,
            key_conv,
            row_conv,
            waiting: vec![],
            versions: HashMap::new(),
            cleanup: BTreeMap::new(),
            watermark: i64::MIN,
        })
    }

    fn keys(&self, exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        exprs
            .iter()
            .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
            .collect()
    }

    /// Keeps the versions of a batch of the table (a changelog's `-U`/`-D` end a version).
    fn add_versions(&mut self, batch: RecordBatch) -> Result<()> {
        let (batch, kinds) = crate::changelog::split(&batch);
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let keys = self
            .key_conv
            .convert_columns(&self.keys(&self.right_keys, &batch)?)?;
        let rows = self.row_conv.convert_columns(batch.columns())?;
        let times = to_epoch_millis(batch.column(self.right_time).as_ref())?;
        for i in 0..n {
            if times.is_null(i) {
                continue;
            }
            let time = times.value(i);
            let kind = kinds
                .as_ref()
                .and_then(|k| crate::changelog::RowKind::from_i8(k.value(i)));
            // The table is read as upserts, as Flink asks of its input (no update-before):
            // a `-U` says nothing the `+U` after it does not — and it carries the old
            // version's time, where it would end that version.
            if kind == Some(crate::changelog::RowKind::UpdateBefore) {
                continue;
            }
            let live = kind.is_none_or(|k| k.adds());
            let key: Box<[u8]> = keys.row(i).data().into();
            let list = self.versions.entry(key.clone()).or_default();
            let version = Version {
                time,
                live,
                row: rows.row(i).data().into(),
            };
            // After every version at or before its time: of two at one time the later
            // one counts.
            let at = list.partition_point(|v| v.time <= time);
            if at > 0 && list[at - 1].time == time {
                list[at - 1] = version;
            } else {
                list.insert(at, version);
            }
            self.cleanup.entry(time).or_default().push(key);
        }
        Ok(())
    }

    /// Joins the waiting stream rows at or below `w` (in the order they arrived) and
    /// forgets the versions no later row can choose.
    fn fire(&mut self, w: i64, out: &mut Vec<Message>) -> Result<()> {
        if !self.waiting.is_empty() {
            let all = concat_batches(&self.left_schema, &self.waiting)?;
            self.waiting.clear();
            let times = to_epoch_millis(all.column(self.left_time).as_ref())?;
            let mut due: Vec<(i64, u32)> = vec![];
            let mut later = vec![];
            for i in 0..all.num_rows() {
                match times.is_valid(i).then(|| times.value(i)) {
                    Some(t) if t > w => later.push(i as u32),
                    // A row without a time meets no version (and waits for nothing).
                    Some(t) => due.push((t, i as u32)),
                    None => due.push((i64::MIN, i as u32)),
                }
            }
            if !later.is_empty() {
                let idx = UInt32Array::from(later);
                self.waiting.push(take_batch(&all, &idx)?);
            }
            if !due.is_empty() {
                self.join_rows(&all, &due, out)?;
            }
        }
        // Versions older than a key's latest at or before `w` are never chosen again; a
        // retraction there ends the key.
        let open = self.cleanup.split_off(&w.saturating_add(1));
        let due = std::mem::replace(&mut self.cleanup, open);
        for key in due.into_values().flatten() {
            let Some(list) = self.versions.get_mut(&key) else {
                continue;
            };
            let at = list.partition_point(|v| v.time <= w);
            if at > 0 {
                list.drain(..at - 1);
                if !list[0].live {
                    list.remove(0);
                }
            }
            if list.is_empty() {
                self.versions.remove(&key);
            }
        }
        Ok(())
    }

    /// The rows `due` of `all` (time, index; in the order they go out) joined with their
    /// versions.
    fn join_rows(
        &self,
        all: &RecordBatch,
        due: &[(i64, u32)],
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let left_idx = UInt32Array::from_iter_values(due.iter().map(|(_, i)| *i));
        let left = take_batch(all, &left_idx)?;
        let key_cols = self.keys(&self.left_keys, &left)?;
        let keys = self.key_conv.convert_columns(&key_cols)?;
        let mut chosen: Vec<&[u8]> = vec![];
        let mut right_idx: Vec<Option<u32>> = Vec::with_capacity(due.len());
        for (j, (t, _)) in due.iter().enumerate() {
            let version = self.versions.get(keys.row(j).data()).and_then(|list| {
                let at = list.partition_point(|v| v.time <= *t);
                (at > 0 && list[at - 1].live && *t != i64::MIN).then(|| &list[at - 1])
            });
            // A NULL key meets nothing.
            let null_key = key_cols.iter().any(|c| c.is_null(j));
            match version {
                Some(v) if !null_key => {
                    right_idx.push(Some(chosen.len() as u32));
                    chosen.push(&v.row);
                }
                _ => right_idx.push(None),
            }
        }
        let parser = self.row_conv.parser();
        let right_rows = self
            .row_conv
            .convert_rows(chosen.iter().map(|r| parser.parse(r)))?;
        let right = RecordBatch::try_new_with_options(
            self.right_schema.clone(),
            right_rows,
            &RecordBatchOptions::new().with_row_count(Some(chosen.len())),
        )?;
        let mut idx = UInt32Array::from(right_idx);
        let pairs = self.pairs(&left, &right, &idx)?;
        if let Some(f) = &self.filter {
            let mask = f.evaluate(&pairs)?.into_array(pairs.num_rows())?;
            let mask = mask
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| WeirError::internal("temporal join condition is not boolean"))?;
            // A version the rest of the condition refuses is no match.
            idx = idx
                .iter()
                .enumerate()
                .map(|(j, v)| v.filter(|_| mask.is_valid(j) && mask.value(j)))
                .collect();
        }
        let pairs = self.pairs(&left, &right, &idx)?;
        let pairs = if self.left_outer {
            pairs
        } else {
            let met: BooleanArray = idx.iter().map(|v| Some(v.is_some())).collect();
            filter_record_batch(&pairs, &met)?
        };
        if pairs.num_rows() > 0 {
            out.push(Message::Batch(RecordBatch::try_new_with_options(
                self.schema.clone(),
                self.out_cols
                    .iter()
                    .map(|i| pairs.column(*i).clone())
                    .collect(),
                &RecordBatchOptions::new().with_row_count(Some(pairs.num_rows())),
            )?));
        }
        Ok(())
    }

    /// The stream rows beside the versions `idx` picks (NULLs where it has none).
    fn pairs(
        &self,
        left: &RecordBatch,
        right: &RecordBatch,
        idx: &UInt32Array,
    ) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = left.columns().to_vec();
        for c in right.columns() {
            cols.push(take(c.as_ref(), idx, None)?);
        }
        Ok(RecordBatch::try_new_with_options(
            self.pair_schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(left.num_rows())),
        )?)
    }

    /// Stream rows waiting and versions kept (for tests and metrics).
    pub fn kept_rows(&self) -> [usize; 2] {
        [
            self.waiting.iter().map(|b| b.num_rows()).sum(),
            self.versions.values().map(Vec::len).sum(),
        ]
    }
}

fn take_batch(batch: &RecordBatch, idx: &UInt32Array) -> Result<RecordBatch> {
    Ok(datafusion::arrow::compute::take_record_batch(batch, idx)?)
}

fn part(batch: RecordBatch, name: &str) -> Result<RecordBatch> {
    let schema = batch.schema().as_ref().clone().with_metadata(
        [("part".to_string(), name.to_string())]
            .into_iter()
            .collect(),
    );
    Ok(batch.with_schema(Arc::new(schema))?)
}

impl Operator for TemporalJoin {
    fn name(&self) -> String {
        format!(
            "temporal join {} (event time)",
            if self.left_outer { "left" } else { "inner" }
        )
    }

    /// Each row of the (append-only) stream once, met with one version: inserts only,
    /// whatever the versioned side's changelog.
    fn changelog_mode(
        &self,
        _inputs: &[crate::changelog::ChangelogMode],
    ) -> crate::changelog::ChangelogMode {
        crate::changelog::ChangelogMode::INSERT_ONLY
    }

    fn process_batch(&mut self, _batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        Err(WeirError::internal("a temporal join reads two inputs"))
    }

    fn process_input_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        _out: &mut Vec<Message>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if input == 0 {
            self.waiting.push(batch);
            Ok(())
        } else {
            self.add_versions(batch)
        }
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        self.fire(watermark, out)?;
        out.push(Message::Watermark(watermark));
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Message>) -> Result<()> {
        self.fire(i64::MAX, out)
    }

    fn distribution(&self) -> super::Distribution {
        super::Distribution::Hash(vec![self.left_keys.clone(), self.right_keys.clone()])
    }

    fn state_size(&self) -> Option<(u64, u64)> {
        let [w, v] = self.kept_rows();
        let bytes = self
            .waiting
            .iter()
            .map(|b| b.get_array_memory_size())
            .sum::<usize>()
            + self
                .versions
                .iter()
                .map(|(k, l)| k.len() + l.iter().map(|v| v.row.len() + 16).sum::<usize>())
                .sum::<usize>();
        Some(((w + v) as u64, bytes as u64))
    }

    /// The waiting stream rows (`part` = `waiting`, the stream's columns) and the versions
    /// (`part` = `versions`: `key`, `time`, `live`, `row`, the last in Arrow's row format of
    /// this Weir version).
    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        let mut out = vec![];
        for b in &self.waiting {
            out.push(part(b.clone(), "waiting")?);
        }
        let (mut key, mut row) = (BinaryBuilder::new(), BinaryBuilder::new());
        let (mut time, mut live) = (vec![], vec![]);
        for (k, list) in &self.versions {
            for v in list {
                key.append_value(k);
                row.append_value(&v.row);
                time.push(v.time);
                live.push(v.live);
            }
        }
        let schema = Schema::new(vec![
            Field::new("key", DataType::Binary, false),
            Field::new("time", DataType::Int64, false),
            Field::new("live", DataType::Boolean, false),
            Field::new("row", DataType::Binary, false),
        ]);
        let versions = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(key.finish()),
                Arc::new(Int64Array::from(time)),
                Arc::new(BooleanArray::from(live)),
                Arc::new(row.finish()),
            ],
        )?;
        out.push(part(versions, "versions")?);
        Ok(Some(out))
    }

    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        let bad = || WeirError::user("the checkpoint's state of a temporal join is malformed");
        for b in state {
            match b.schema().metadata().get("part").map(String::as_str) {
                Some("waiting") => {
                    let b = RecordBatch::try_new(self.left_schema.clone(), b.columns().to_vec())
                        .map_err(|_| bad())?;
                    self.waiting.push(b);
                }
                Some("versions") => {
                    if b.num_columns() != 4 {
                        return Err(bad());
                    }
                    let bin = |i: usize| {
                        b.column(i)
                            .as_any()
                            .downcast_ref::<BinaryArray>()
                            .ok_or_else(bad)
                    };
                    let (key, row) = (bin(0)?, bin(3)?);
                    let time = b
                        .column(1)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .ok_or_else(bad)?;
                    let live = b
                        .column(2)
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .ok_or_else(bad)?;
                    for i in 0..b.num_rows() {
                        let k: Box<[u8]> = key.value(i).into();
                        let list = self.versions.entry(k.clone()).or_default();
                        let t = time.value(i);
                        let at = list.partition_point(|v| v.time <= t);
                        list.insert(
                            at,
                            Version {
                                time: t,
                                live: live.value(i),
                                row: row.value(i).into(),
                            },
                        );
                        self.cleanup.entry(t).or_default().push(k);
                    }
                }
                _ => return Err(bad()),
            }
        }
        Ok(())
    }

    /// Waiting rows by the stream's keys, versions by their encoded key.
    fn state_keys(&self, batch: &RecordBatch) -> Result<Option<Vec<ArrayRef>>> {
        match batch.schema().metadata().get("part").map(String::as_str) {
            Some("waiting") => {
                let b = RecordBatch::try_new(self.left_schema.clone(), batch.columns().to_vec())?;
                Ok(Some(self.keys(&self.left_keys, &b)?))
            }
            Some("versions") => super::keys_of_rows(&self.key_conv, batch, "key").map(Some),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int8Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::physical_expr::expressions::Column;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]))
    }

    fn batch(k: &[i64], v: &[i64], ts: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(k.to_vec())),
                Arc::new(Int64Array::from(v.to_vec())),
                Arc::new(TimestampMillisecondArray::from(ts.to_vec())),
            ],
        )
        .expect("batch")
    }

    fn join(left_outer: bool) -> TemporalJoin {
        let key = || vec![Arc::new(Column::new("k", 0)) as Arc<dyn PhysicalExpr>];
        let out = Arc::new(Schema::new(
            schema()
                .fields()
                .iter()
                .chain(schema().fields().iter())
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        TemporalJoin::new(
            left_outer,
            key(),
            key(),
            2,
            2,
            None,
            schema(),
            schema(),
            out,
            (0..6).collect(),
        )
        .expect("join")
    }

    /// `(left v, right v or None)` of the output, in order.
    fn pairs(out: &[Message]) -> Vec<(i64, Option<i64>)> {
        let mut r = vec![];
        for m in out {
            if let Message::Batch(b) = m {
                let lv = b
                    .column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("v");
                let rv = b
                    .column(4)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("v");
                for i in 0..b.num_rows() {
                    r.push((lv.value(i), rv.is_valid(i).then(|| rv.value(i))));
                }
            }
        }
        r
    }

    #[test]
    fn each_row_meets_the_version_valid_at_its_time_once_the_watermark_passes() {
        let mut j = join(true);
        let mut out = vec![];
        // Key 1: 10 from 100, 20 from 200, 21 also from 200 (the later one counts).
        j.process_input_batch(
            1,
            batch(&[1, 1, 1], &[10, 20, 21], &[100, 200, 200]),
            &mut out,
        )
        .expect("versions");
        j.process_input_batch(
            0,
            batch(&[1, 1, 1, 2], &[1, 2, 3, 4], &[50, 150, 200, 300]),
            &mut out,
        )
        .expect("rows");
        assert!(pairs(&out).is_empty(), "nothing before the watermark");
        j.process_watermark(200, &mut out).expect("watermark");
        // 50: no version yet (padded); 150: 10; 200: 21.
        assert_eq!(pairs(&out), vec![(1, None), (2, Some(10)), (3, Some(21))]);
        // Only the version valid at the watermark is kept for key 1.
        assert_eq!(j.kept_rows(), [1, 1]);
        out.clear();
        // A retraction at 250 ends key 1; key 2 never had a version.
        let (b, _) = crate::changelog::split(&batch(&[1], &[21], &[250]));
        let b = crate::changelog::attach(
            b,
            Int8Array::from(vec![crate::changelog::RowKind::Delete as i8]),
        )
        .expect("changelog");
        j.process_input_batch(1, b, &mut out).expect("retraction");
        // A changelog's -U (the old version, at its own time) ends nothing: the +U after
        // it is the next version.
        let kinds = |k: &[crate::changelog::RowKind]| {
            Int8Array::from(k.iter().map(|k| *k as i8).collect::<Vec<_>>())
        };
        let (b, _) = crate::changelog::split(&batch(&[7, 7, 7], &[70, 70, 71], &[100, 100, 230]));
        let b = crate::changelog::attach(
            b,
            kinds(&[
                crate::changelog::RowKind::Insert,
                crate::changelog::RowKind::UpdateBefore,
                crate::changelog::RowKind::UpdateAfter,
            ]),
        )
        .expect("changelog");
        j.process_input_batch(1, b, &mut out).expect("upserts");
        j.process_input_batch(0, batch(&[7, 7], &[8, 9], &[220, 240]), &mut out)
            .expect("rows");
        j.process_input_batch(0, batch(&[1, 1], &[5, 6], &[240, 260]), &mut out)
            .expect("rows");
        j.finish(&mut out).expect("finish");
        let mut got = pairs(&out);
        got.sort();
        assert_eq!(
            got,
            vec![
                (4, None),
                (5, Some(21)),
                (6, None),
                (8, Some(70)),
                (9, Some(71))
            ]
        );
        assert_eq!(
            j.kept_rows(),
            [0, 1],
            "key 1 forgotten after its retraction; key 7 keeps its last version"
        );
    }

    #[test]
    fn versions_stay_bounded_as_the_watermark_moves() {
        let mut j = join(false);
        let mut out = vec![];
        let mut most = 0;
        for step in 0..2000i64 {
            let t = step * 10;
            let keys: Vec<i64> = (0..5).collect();
            j.process_input_batch(1, batch(&keys, &[step; 5], &[t; 5]), &mut out)
                .expect("versions");
            j.process_input_batch(0, batch(&keys, &[step; 5], &[t + 5; 5]), &mut out)
                .expect("rows");
            j.process_watermark(t, &mut out).expect("watermark");
            let [w, v] = j.kept_rows();
            most = most.max(w + v);
        }
        // 10 000 versions went through: a key keeps its current one and those above.
        assert!(most <= 20, "kept up to {most}");
        // Every row met the version of its own step.
        assert!(pairs(&out).iter().all(|(l, r)| Some(*l) == *r));
        assert_eq!(pairs(&out).len(), 5 * 1999);
    }
}
