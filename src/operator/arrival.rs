//! Aggregates that cannot take a row back, over results that update: the accumulator keeps
//! the rows it holds in the order they arrived, a retraction takes out the earliest held
//! row equal to it, and the result comes from the rows left.
//!
//! This is how Flink's retracting versions of its order-dependent aggregates work:
//! `FirstValueWithRetractAggFunction` and `LastValueWithRetractAggFunction` keep each
//! value with the orders it came at and take back a value's first order;
//! `ListAggWithRetractAggFunction`, `JsonArrayAggFunction` and `JsonObjectAggFunction` keep
//! a list (a map by key) and remove the first equal entry. Flink orders by the processing
//! time of each row; Weir by its arrival, so the same events give the same answer.
//!
//! - `FIRST_VALUE` and `LAST_VALUE` (one argument) read the first or last row held, in
//!   O(log n); with `IGNORE NULLS` (Flink's rule, which Weir's rewrite asks for) rows whose
//!   value is NULL are not held.
//! - Any other aggregate — `LISTAGG`, `JSON_ARRAYAGG`, `JSON_OBJECTAGG`, `ARRAY_AGG`, … — is
//!   evaluated by its own accumulator over the rows held, in order. While rows only come,
//!   that accumulator is fed the new ones when the result is asked for; after a
//!   retraction it is rebuilt from the rows held (O(n), as Flink's list views are scanned
//!   to remove and to give the value).
//!
//! Rows are kept in Arrow's row format. The state — for checkpoints — is a list per
//! argument of the rows held, in arrival order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

/// What an [`ArrivalOrder`] gives from the rows it holds.
#[derive(Debug)]
enum Pick {
    /// The first row's value (`FIRST_VALUE`).
    First,
    /// The last row's value (`LAST_VALUE`).
    Last,
    /// The aggregate over the rows, in order. `cache` is its accumulator, fed the rows
    /// held that arrived before `fed` (None after a retraction, until rebuilt); the rest
    /// are fed when the result is asked for, so a row taken back in between (a `-U`
    /// beside its `+U`, which the group operator hands over after the batch's new rows)
    /// never reaches it — `JSON_OBJECTAGG` would see its key twice.
    Replay {
        inner: Arc<AggregateFunctionExpr>,
        cache: Option<Box<dyn Accumulator>>,
        fed: u64,
    },
}

/// The rows held (a row of the arguments each), in arrival order.
#[derive(Debug)]
struct ArrivalOrder {
    pick: Pick,
    data_types: Vec<DataType>,
    converter: RowConverter,
    /// Rows whose first argument is NULL are not held (`IGNORE NULLS`).
    skip_nulls: bool,
    /// Held rows by arrival number.
    rows: BTreeMap<u64, OwnedRow>,
    /// Per distinct row, the arrival numbers it is held under, earliest first.
    arrivals: HashMap<OwnedRow, VecDeque<u64>>,
    next: u64,
    /// `AGG(DISTINCT …)`: a row is held once, from its first arrival while any of its
    /// arrivals is left (Flink's distinct `MapView` counts it, and the aggregate sees it
    /// when its count leaves 0 and goes back when it returns there); the later arrivals
    /// in `arrivals` only count.
    distinct: bool,
}

/// An accumulator of `expr` — an aggregate whose own accumulator cannot take rows back —
/// that can (see the module's docs); with `distinct`, of `expr` over the distinct rows
/// (`expr` itself without DISTINCT). `arg_types` are the types of its arguments.
///
/// Errors: an aggregate with `ORDER BY` or `DISTINCT` (its plain form is wanted), or an
/// argument type Arrow's row format cannot encode (a `MAP`).
pub fn with_retract(
    arg_types: Vec<DataType>,
    expr: Arc<AggregateFunctionExpr>,
    distinct: bool,
) -> Result<Box<dyn Accumulator>> {
    if !expr.order_bys().is_empty() || expr.is_distinct() {
        return Err(DataFusionError::NotImplemented(format!(
            "{}() with ORDER BY, or DISTINCT, over results that update",
            expr.fun().name()
        )));
    }
    let single = arg_types.len() == 1;
    let (pick, skip_nulls) = match expr.fun().name() {
        "first_value" if single => (Pick::First, expr.ignore_nulls()),
        "last_value" if single => (Pick::Last, expr.ignore_nulls()),
        _ => (
            Pick::Replay {
                inner: expr,
                cache: None,
                fed: 0,
            },
            false,
        ),
    };
    let converter = RowConverter::new(
        arg_types
            .iter()
            .map(|t| SortField::new(t.clone()))
            .collect(),
    )?;
    Ok(Box::new(ArrivalOrder {
        pick,
        data_types: arg_types,
        converter,
        skip_nulls,
        rows: BTreeMap::new(),
        arrivals: HashMap::new(),
        next: 0,
        distinct,
    }))
}

impl ArrivalOrder {
    /// The argument columns of `values` (an accumulator may be handed more).
    fn columns<'a>(&self, values: &'a [ArrayRef]) -> Result<&'a [ArrayRef]> {
        values.get(..self.data_types.len()).ok_or_else(|| {
            DataFusionError::Internal(format!(
                "{} argument(s) where {} were expected",
                values.len(),
                self.data_types.len()
            ))
        })
    }

    /// Whether row `i` is left out (`IGNORE NULLS` and a NULL value).
    fn skipped(&self, columns: &[ArrayRef], i: usize) -> bool {
        self.skip_nulls && columns.first().is_some_and(|c| c.is_null(i))
    }

    /// Holds each row of `columns`, in order, `counts[i]` times for row `i` (once
    /// without counts).
    fn push(&mut self, columns: &[ArrayRef], counts: Option<&Int64Array>) -> Result<()> {
        let rows = self.converter.convert_columns(columns)?;
        for i in 0..rows.num_rows() {
            if self.skipped(columns, i) {
                continue;
            }
            let row = rows.row(i).owned();
            for _ in 0..counts.map_or(1, |c| c.value(i)) {
                let n = self.next;
                self.next += 1;
                let arrivals = self.arrivals.entry(row.clone()).or_default();
                arrivals.push_back(n);
                if !self.distinct || arrivals.len() == 1 {
                    self.rows.insert(n, row.clone());
                }
            }
        }
        Ok(())
    }

    /// For [`Pick::Replay`]: its accumulator, fed every row held (a fresh one after a
    /// retraction, else the rows that came since it was last fed).
    fn replay(&mut self) -> Result<&mut Box<dyn Accumulator>> {
        let next = self.next;
        let Pick::Replay { inner, cache, fed } = &mut self.pick else {
            return Err(DataFusionError::Internal(
                "FIRST_VALUE or LAST_VALUE replayed".into(),
            ));
        };
        let from = match cache {
            Some(_) => *fed,
            None => 0,
        };
        let acc = match cache {
            Some(acc) => acc,
            None => cache.insert(inner.create_accumulator()?),
        };
        if from < next {
            let mut new = self.rows.range(from..).map(|(_, r)| r.row()).peekable();
            if new.peek().is_some() {
                acc.update_batch(&self.converter.convert_rows(new)?)?;
            }
        }
        *fed = next;
        Ok(acc)
    }

    /// The value of a row held, as its first argument's type.
    fn value(&self, row: Option<&OwnedRow>) -> Result<ScalarValue> {
        let Some(row) = row else {
            return match self.data_types.first() {
                Some(t) => ScalarValue::try_from(t),
                None => Ok(ScalarValue::Null),
            };
        };
        let arrays = self.converter.convert_rows([row.row()])?;
        match arrays.first() {
            Some(a) => ScalarValue::try_from_array(a, 0),
            None => Ok(ScalarValue::Null),
        }
    }
}

impl Accumulator for ArrivalOrder {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let columns = self.columns(values)?;
        self.push(columns, None)
    }

    /// Takes out, per row, the earliest held row equal to it (with DISTINCT: one of its
    /// arrivals, and the row itself with the last); a row not held is ignored (as Flink's
    /// retracting aggregates ignore a value they do not hold).
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let columns = self.columns(values)?;
        let rows = self.converter.convert_columns(columns)?;
        let mut taken = false;
        for i in 0..rows.num_rows() {
            if self.skipped(columns, i) {
                continue;
            }
            let row = rows.row(i).owned();
            let Some(arrivals) = self.arrivals.get_mut(&row) else {
                continue;
            };
            let gone = if self.distinct {
                // The held arrival is the first: the later ones go before it.
                arrivals.pop_back().filter(|_| arrivals.is_empty())
            } else {
                arrivals.pop_front()
            };
            if let Some(n) = gone {
                self.rows.remove(&n);
                taken = true;
            }
            if arrivals.is_empty() {
                self.arrivals.remove(&row);
            }
        }
        if taken && let Pick::Replay { cache, .. } = &mut self.pick {
            *cache = None;
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match &self.pick {
            Pick::First => self.value(self.rows.values().next()),
            Pick::Last => self.value(self.rows.values().next_back()),
            Pick::Replay { .. } => self.replay()?.evaluate(),
        }
    }

    fn size(&self) -> usize {
        let cache = match &self.pick {
            Pick::Replay {
                cache: Some(acc), ..
            } => acc.size(),
            _ => 0,
        };
        std::mem::size_of_val(self)
            + self.converter.size()
            + cache
            + self
                .rows
                .values()
                .map(|r| 2 * (r.as_ref().len() + std::mem::size_of::<OwnedRow>()) + 24)
                .sum::<usize>()
    }

    /// A list per argument: the rows held, in arrival order; with DISTINCT, then a list
    /// of how many arrivals each has (BIGINT).
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut columns = self
            .converter
            .convert_rows(self.rows.values().map(|r| r.row()))?;
        if self.distinct {
            let counts = self
                .rows
                .values()
                .map(|r| self.arrivals.get(r).map_or(0, |a| a.len() as i64));
            columns.push(Arc::new(Int64Array::from_iter_values(counts)));
        }
        Ok(columns
            .into_iter()
            .map(|a| {
                ScalarValue::List(Arc::new(
                    datafusion::common::utils::SingleRowListArrayBuilder::new(a)
                        .with_nullable(true)
                        .build_list_array(),
                ))
            })
            .collect())
    }

    /// Holds the rows of each state after those already held, in order.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let malformed = |what: &str| {
            DataFusionError::Internal(format!("the state of an aggregate over held rows: {what}"))
        };
        let width = self.data_types.len();
        if states.len() != width + usize::from(self.distinct) {
            return Err(malformed(
                "a list per argument (and of counts, with DISTINCT)",
            ));
        }
        let lists = states
            .iter()
            .map(|s| s.as_list_opt::<i32>())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("its columns are not lists"))?;
        let n = states.first().map_or(0, |s| s.len());
        for r in 0..n {
            if lists.iter().any(|l| l.is_null(r)) {
                continue;
            }
            let columns: Vec<ArrayRef> = lists.iter().map(|l| l.value(r)).collect();
            if columns.windows(2).any(|w| w[0].len() != w[1].len()) {
                return Err(malformed("its lists differ in length"));
            }
            let counts = match columns.get(width) {
                Some(c) => Some(
                    c.as_primitive_opt::<Int64Type>()
                        .ok_or_else(|| malformed("counts are not BIGINT"))?,
                ),
                None => None,
            };
            self.push(&columns[..width], counts)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::{col, lit};

    fn call(
        udaf: Arc<datafusion::logical_expr::AggregateUDF>,
        with_delimiter: bool,
        ignore_nulls: bool,
    ) -> Arc<AggregateFunctionExpr> {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let mut args = vec![col("s", &schema).expect("column")];
        if with_delimiter {
            args.push(lit(","));
        }
        Arc::new(
            AggregateExprBuilder::new(udaf, args)
                .schema(schema)
                .alias("a")
                .with_ignore_nulls(ignore_nulls)
                .build()
                .expect("aggregate"),
        )
    }

    fn strings(v: &[Option<&str>]) -> Vec<ArrayRef> {
        vec![Arc::new(StringArray::from(v.to_vec())) as ArrayRef]
    }

    fn text(v: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(v.to_string()))
    }

    /// string_agg's result type.
    fn large(v: &str) -> ScalarValue {
        ScalarValue::LargeUtf8(Some(v.to_string()))
    }

    /// FIRST_VALUE and LAST_VALUE: a retraction takes out the earliest equal value, and
    /// the next in arrival order takes its place; NULLs are not held (IGNORE NULLS).
    #[test]
    fn first_and_last_follow_arrival_order() {
        use datafusion::functions_aggregate::first_last::{first_value_udaf, last_value_udaf};
        let mut first = with_retract(
            vec![DataType::Utf8],
            call(first_value_udaf(), false, true),
            false,
        )
        .expect("f");
        let mut last = with_retract(
            vec![DataType::Utf8],
            call(last_value_udaf(), false, true),
            false,
        )
        .expect("l");
        for acc in [&mut first, &mut last] {
            acc.update_batch(&strings(&[
                Some("x"),
                Some("y"),
                None,
                Some("x"),
                Some("z"),
            ]))
            .expect("update");
        }
        assert_eq!(first.evaluate().expect("first"), text("x"));
        assert_eq!(last.evaluate().expect("last"), text("z"));
        for acc in [&mut first, &mut last] {
            acc.retract_batch(&strings(&[Some("x"), Some("z"), None]))
                .expect("retract");
        }
        // The earlier x went: y is first; the later x is last.
        assert_eq!(first.evaluate().expect("first"), text("y"));
        assert_eq!(last.evaluate().expect("last"), text("x"));
        // Through a checkpoint's state, in order.
        let st = last.state().expect("state");
        let arrays: Vec<ArrayRef> = st.iter().map(|v| v.to_array().expect("array")).collect();
        let mut again = with_retract(
            vec![DataType::Utf8],
            call(last_value_udaf(), false, true),
            false,
        )
        .expect("l");
        again.merge_batch(&arrays).expect("merge");
        assert_eq!(again.evaluate().expect("last"), text("x"));
        again
            .retract_batch(&strings(&[Some("x"), Some("y")]))
            .expect("retract");
        assert_eq!(again.evaluate().expect("last"), ScalarValue::Utf8(None));
    }

    /// LISTAGG (DataFusion's string_agg): the list in arrival order, a retracted value's
    /// earliest occurrence removed (Flink's ListAggWithRetractAggFunction), the
    /// accumulator rebuilt after it and fed as rows come before it.
    #[test]
    fn listagg_keeps_arrival_order_through_retractions() {
        use datafusion::functions_aggregate::string_agg::string_agg_udaf;
        let mut acc = with_retract(
            vec![DataType::Utf8, DataType::Utf8],
            call(string_agg_udaf(), true, false),
            false,
        )
        .expect("acc");
        let comma = |n: usize| -> ArrayRef { Arc::new(StringArray::from(vec![","; n])) };
        let rows = |v: &[&str]| -> Vec<ArrayRef> {
            vec![
                Arc::new(StringArray::from(v.to_vec())) as ArrayRef,
                comma(v.len()),
            ]
        };
        acc.update_batch(&rows(&["a", "b", "a"])).expect("update");
        assert_eq!(acc.evaluate().expect("listagg"), large("a,b,a"));
        acc.retract_batch(&rows(&["a"])).expect("retract");
        assert_eq!(acc.evaluate().expect("listagg"), large("b,a"));
        acc.update_batch(&rows(&["c"])).expect("update");
        assert_eq!(acc.evaluate().expect("listagg"), large("b,a,c"));
        // A value not held is ignored.
        acc.retract_batch(&rows(&["q"])).expect("retract");
        assert_eq!(acc.evaluate().expect("listagg"), large("b,a,c"));
        let st = acc.state().expect("state");
        let arrays: Vec<ArrayRef> = st.iter().map(|v| v.to_array().expect("array")).collect();
        let mut again = with_retract(
            vec![DataType::Utf8, DataType::Utf8],
            call(string_agg_udaf(), true, false),
            false,
        )
        .expect("acc");
        again.merge_batch(&arrays).expect("merge");
        again.retract_batch(&rows(&["a"])).expect("retract");
        assert_eq!(again.evaluate().expect("listagg"), large("b,c"));
    }

    /// LISTAGG(DISTINCT): a value is held from its first row until its last is taken
    /// back, at the place it came to; its count goes through a checkpoint's state.
    #[test]
    fn distinct_values_keep_their_place_while_counted() {
        use datafusion::functions_aggregate::string_agg::string_agg_udaf;
        let types = vec![DataType::Utf8, DataType::Utf8];
        let listagg = || call(string_agg_udaf(), true, false);
        let mut acc = with_retract(types.clone(), listagg(), true).expect("acc");
        let rows = |v: &[&str]| -> Vec<ArrayRef> {
            vec![
                Arc::new(StringArray::from(v.to_vec())) as ArrayRef,
                Arc::new(StringArray::from(vec![","; v.len()])) as ArrayRef,
            ]
        };
        acc.update_batch(&rows(&["a", "b", "a"])).expect("update");
        assert_eq!(acc.evaluate().expect("listagg"), large("a,b"));
        // One of a's two rows goes: a stays first.
        acc.retract_batch(&rows(&["a"])).expect("retract");
        assert_eq!(acc.evaluate().expect("listagg"), large("a,b"));
        let st = acc.state().expect("state");
        let arrays: Vec<ArrayRef> = st.iter().map(|v| v.to_array().expect("array")).collect();
        let mut again = with_retract(types, listagg(), true).expect("acc");
        again.merge_batch(&arrays).expect("merge");
        again.update_batch(&rows(&["b"])).expect("update");
        // a's last row goes, and a with it; b's two rows keep it.
        again.retract_batch(&rows(&["a", "b"])).expect("retract");
        assert_eq!(again.evaluate().expect("listagg"), large("b"));
        again.update_batch(&rows(&["a"])).expect("update");
        assert_eq!(again.evaluate().expect("listagg"), large("b,a"));
    }
}
