//! Rank limits as plan nodes: a filter `rn <= N` (`rn < N`, `rn = N`) over a ranking call
//! (`ROW_NUMBER()`, `RANK()`, `DENSE_RANK()` … `AS rn`) bounds how many rows of each
//! partition can still rank. [`lift`] puts that bound into the plan itself, as a
//! [`RankLimit`] node (DataFusion's `LogicalPlan::Extension`) wrapping the window node it
//! bounds, before the streaming planner reads the plan; the planner then plans a Top-N
//! over a whole stream, a window Top-N that holds only the rows that can still rank, or
//! Flink's window deduplication (`rn = 1`) from that one node.

use std::fmt;
use std::sync::Arc;

use datafusion::common::DFSchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Extension, Filter, LogicalPlan, Operator as Op, UserDefinedLogicalNodeCore,
};

use crate::error::Result;

/// A window node of ranking calls (`input`, a `LogicalPlan::Window`) and the limits filters
/// above it put on them: `(index of the ranking call among the node's calls, N)`, N ≥ 1.
/// Its schema is the window node's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct RankLimit {
    pub input: LogicalPlan,
    pub limits: Vec<(usize, usize)>,
}

impl RankLimit {
    /// The node in `plan`, when `plan` is one.
    pub fn of(plan: &LogicalPlan) -> Option<&RankLimit> {
        match plan {
            LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<RankLimit>(),
            _ => None,
        }
    }

    /// The limit on ranking call `index`, the smallest if several filters bound it.
    pub fn limit(&self, index: usize) -> Option<usize> {
        self.limits
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, n)| *n)
            .min()
    }
}

impl UserDefinedLogicalNodeCore for RankLimit {
    fn name(&self) -> &str {
        "RankLimit"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let limits: Vec<String> = self
            .limits
            .iter()
            .map(|(i, n)| format!("call {i} <= {n}"))
            .collect();
        write!(f, "RankLimit: {}", limits.join(", "))
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> datafusion::error::Result<Self> {
        if inputs.len() != 1 {
            return datafusion::common::internal_err!("RankLimit takes one input");
        }
        Ok(RankLimit {
            input: inputs.swap_remove(0),
            limits: self.limits.clone(),
        })
    }
}

/// The limits a filter's conjuncts put on columns: `c <= N` (N), `c < N` (N − 1), `c = N`
/// (N), either way round; none below 1.
fn limits_of(predicate: &Expr) -> Vec<(datafusion::common::Column, usize)> {
    let number = |e: &Expr| match e {
        Expr::Literal(v, _) => v
            .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
            .ok()
            .and_then(|v| match v {
                datafusion::common::ScalarValue::Int64(Some(n)) => Some(n),
                _ => None,
            }),
        _ => None,
    };
    let mut out = vec![];
    for c in datafusion::logical_expr::utils::split_conjunction(predicate) {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = c else {
            continue;
        };
        let (col, op, n) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), r) => (c, *op, number(r)),
            (l, Expr::Column(c)) => match op.swap() {
                Some(o) => (c, o, number(l)),
                None => continue,
            },
            _ => continue,
        };
        let Some(n) = n else { continue };
        let limit = match op {
            Op::LtEq => n,
            Op::Lt => n - 1,
            // `rn = N`: ranks up to N kept, the filter then keeps the Nth.
            Op::Eq => n,
            _ => continue,
        };
        if limit >= 1 {
            out.push((col.clone(), limit as usize));
        }
    }
    out
}

/// `plan` with a limit `n` on ranking call `index` of the first window node of ranking calls
/// down its chain of projections, aliases and filters (the one `ranking_call` finds); None
/// when there is none.
fn attach(plan: &LogicalPlan, index: usize, n: usize) -> Result<Option<LogicalPlan>> {
    let wrapped = |input: LogicalPlan, limits: Vec<(usize, usize)>| {
        LogicalPlan::Extension(Extension {
            node: Arc::new(RankLimit { input, limits }),
        })
    };
    Ok(match plan {
        LogicalPlan::Window(w) if !crate::plan::is_over_aggregate(w) => {
            Some(wrapped(plan.clone(), vec![(index, n)]))
        }
        LogicalPlan::Extension(_) => match RankLimit::of(plan) {
            Some(r) => {
                let mut limits = r.limits.clone();
                limits.push((index, n));
                Some(wrapped(r.input.clone(), limits))
            }
            None => None,
        },
        LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) | LogicalPlan::Filter(_) => {
            let Some(input) = plan.inputs().first().copied() else {
                return Ok(None);
            };
            match attach(input, index, n)? {
                Some(new) => Some(plan.with_new_exprs(plan.expressions(), vec![new])?),
                None => None,
            }
        }
        _ => None,
    })
}

/// `plan` with every rank limit its filters state lifted into a [`RankLimit`] node over the
/// window node it bounds (filters stay where they are).
pub fn lift(plan: &LogicalPlan) -> Result<LogicalPlan> {
    let lifted = plan.clone().transform_up(|node| {
        let LogicalPlan::Filter(f) = &node else {
            return Ok(Transformed::no(node));
        };
        let mut input = f.input.as_ref().clone();
        let mut changed = false;
        for (col, n) in limits_of(&f.predicate) {
            let Some((_, index)) = crate::plan::ranking_call(&input, &col.name) else {
                continue;
            };
            if let Ok(Some(new)) = attach(&input, index, n) {
                input = new;
                changed = true;
            }
        }
        if !changed {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
            f.predicate.clone(),
            Arc::new(input),
        )?)))
    })?;
    Ok(lifted.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::SessionContext;

    async fn plan(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(Int64Array::from(vec![3, 4])),
            ],
        )
        .expect("batch");
        ctx.register_batch("t", b).expect("table");
        ctx.sql(sql).await.expect("plans").into_unoptimized_plan()
    }

    fn limits(plan: &LogicalPlan) -> Vec<Vec<(usize, usize)>> {
        let mut out = vec![];
        plan.apply(|n| {
            if let Some(r) = RankLimit::of(n) {
                out.push(r.limits.clone());
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .expect("walk");
        out
    }

    /// A filter's bound on a ranking call becomes a node over that window; stacked
    /// filters bound the one node, the smallest bound counting; a bound on another
    /// column, or `rn > N`, is none.
    #[tokio::test]
    async fn filters_on_a_rank_become_one_node_over_its_window() {
        let rank = "SELECT a, ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) AS rn FROM t";
        let p = lift(&plan(&format!("SELECT * FROM ({rank}) WHERE rn <= 3")).await).expect("lift");
        assert_eq!(limits(&p), vec![vec![(0, 3)]]);
        let p = lift(
            &plan(&format!(
                "SELECT * FROM (SELECT * FROM ({rank}) WHERE rn < 5) WHERE 2 >= rn AND a = 1"
            ))
            .await,
        )
        .expect("lift");
        let l = limits(&p);
        assert_eq!(l.len(), 1, "{l:?}");
        let r = RankLimit {
            input: LogicalPlan::default(),
            limits: l[0].clone(),
        };
        assert_eq!(r.limit(0), Some(2));
        let p = lift(&plan(&format!("SELECT * FROM ({rank}) WHERE rn > 3 OR a <= 1")).await)
            .expect("lift");
        assert!(limits(&p).is_empty());
    }
}
