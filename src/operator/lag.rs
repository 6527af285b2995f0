//! `LAG(value [, offset [, default]]) OVER (…)` over a stream, as Flink's `LagAggFunction`:
//! an aggregate over the rows so far (the OVER's unbounded frame) that keeps the last
//! `offset + 1` values it was given and answers the oldest of them, or `default` (NULL
//! without one) while it holds fewer. Rows of one time (peers of the default `RANGE`
//! frame) are all added before any of them is answered, so peers share the value of the
//! last peer's lag — Flink's `OverAggregateITCase.testLagFunction` gives that.
//!
//! `offset` (default 1) is a non-negative integer constant; `default` is taken from the
//! latest row, as Flink's accumulator does. The result has `value`'s type. Flink refuses
//! `LEAD` in stream mode (its rows have not come yet), and so does the planner.
//!
//! The state — for checkpoints — is the kept values (a list of the value's type) and the
//! latest default.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;

/// The aggregate function behind `LAG` in an OVER aggregate over a stream.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Lag {
    signature: Signature,
}

impl Default for Lag {
    fn default() -> Self {
        Lag {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// `LAG`'s offset: the second argument, a non-negative integer constant (1 without it).
///
/// Errors: a non-constant, non-integer or negative offset.
fn offset(args: &AccumulatorArgs) -> Result<usize> {
    let Some(e) = args.exprs.get(1) else {
        return Ok(1);
    };
    let bad = || {
        DataFusionError::Plan(format!(
            "LAG's offset must be a non-negative integer constant, not {e}"
        ))
    };
    let v = e
        .downcast_ref::<Literal>()
        .ok_or_else(bad)?
        .value()
        .cast_to(&DataType::Int64)
        .map_err(|_| bad())?;
    match v {
        ScalarValue::Int64(Some(n)) if n >= 0 => usize::try_from(n).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// `LAG`'s default (the third argument) must be a value of the value's type: a constant
/// that a cast to it would change (`1.5` for a BIGINT, `'x'`) or an expression of a type
/// that does not cast to it is refused when the query is planned, not at its first row.
fn check_default(args: &AccumulatorArgs, value_type: &DataType) -> Result<()> {
    let Some(e) = args.exprs.get(2) else {
        return Ok(());
    };
    let bad = |what: String| {
        DataFusionError::Plan(format!(
            "LAG's default must be a value of its first argument's type ({}), not {what}",
            crate::sql::types::flink_type_name(value_type)
        ))
    };
    match e.downcast_ref::<Literal>() {
        Some(l) if !l.value().is_null() => {
            let v = l.value();
            let same = v
                .cast_to(value_type)
                .and_then(|c| c.cast_to(&v.data_type()))
                .is_ok_and(|back| back == *v);
            if !same {
                return Err(bad(v.to_string()));
            }
        }
        Some(_) => {}
        None => {
            let t = e.data_type(args.schema)?;
            if !datafusion::arrow::compute::can_cast_types(&t, value_type) {
                return Err(bad(format!("{e} ({t})")));
            }
        }
    }
    Ok(())
}

impl AggregateUDFImpl for Lag {
    fn name(&self) -> &str {
        "lag"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] | [t, _] | [t, _, _] => Ok(t.clone()),
            _ => Err(DataFusionError::Plan(
                "LAG takes a value, an optional offset and an optional default".into(),
            )),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let value_type = args.return_field.data_type().clone();
        check_default(&args, &value_type)?;
        Ok(Box::new(LagAccumulator {
            offset: offset(&args)?,
            default: ScalarValue::try_from(&value_type)?,
            values: VecDeque::new(),
            value_type,
        }))
    }

    /// The kept values (a list of the value's type, oldest first) and the latest default.
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = args.return_field.data_type().clone();
        Ok(vec![
            Arc::new(Field::new_list(
                format!("{}[values]", args.name),
                Field::new_list_field(t.clone(), true),
                true,
            )),
            Arc::new(Field::new(format!("{}[default]", args.name), t, true)),
        ])
    }
}

/// The last `offset + 1` values, oldest first.
#[derive(Debug)]
struct LagAccumulator {
    offset: usize,
    values: VecDeque<ScalarValue>,
    default: ScalarValue,
    value_type: DataType,
}

impl LagAccumulator {
    fn push(&mut self, v: ScalarValue) {
        self.values.push_back(v);
        while self.values.len() > self.offset.saturating_add(1) {
            self.values.pop_front();
        }
    }
}

impl Accumulator for LagAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(v) = values.first() else {
            return Ok(());
        };
        for i in 0..v.len() {
            self.push(ScalarValue::try_from_array(v, i)?);
            if let Some(d) = values.get(2) {
                self.default = ScalarValue::try_from_array(d, i)?.cast_to(&self.value_type)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self.values.front() {
            Some(v) if self.values.len() == self.offset.saturating_add(1) => Ok(v.clone()),
            _ => Ok(self.default.clone()),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.values.iter().map(ScalarValue::size).sum::<usize>()
            + self.default.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self.values.iter().cloned().collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &self.value_type)),
            self.default.clone(),
        ])
    }

    /// Restores a state written by [`Accumulator::state`]: its values come after the ones
    /// held (at a restore there are none), and its default replaces the held one.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (Some(lists), Some(defaults)) = (states.first(), states.get(1)) else {
            return Err(DataFusionError::Internal(
                "LAG's state has two columns".into(),
            ));
        };
        let lists = lists
            .as_list_opt::<i32>()
            .ok_or_else(|| DataFusionError::Internal("LAG's kept values are not a list".into()))?;
        for r in 0..lists.len() {
            if lists.is_null(r) {
                continue;
            }
            let values = lists.value(r);
            for i in 0..values.len() {
                self.push(ScalarValue::try_from_array(&values, i)?);
            }
            self.default = ScalarValue::try_from_array(defaults, r)?;
        }
        Ok(())
    }
}
