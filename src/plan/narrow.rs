//! Narrowing an expression to the columns and struct fields it reads.
//!
//! DataFusion evaluates `CASE WHEN … THEN a.x …` by filtering the input batch for each
//! branch — every column of it, whole structs included. The Nexmark table's computed
//! `dateTime AS CASE WHEN event_type = 0 THEN person.dateTime … END` thus copied every
//! event's person, auction and bid strings three times per batch, 40 % of a source's time.
//! [`narrow`] compiles such an expression over a narrow batch instead: the columns and
//! struct fields it reads (`event_type`, `person.dateTime`, …), which are picked without a
//! copy, and nothing else.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{ColumnarValue, Expr, ExprSchemable};
use datafusion::physical_expr::PhysicalExpr;

use super::compile;
use crate::error::Result;

/// True for an expression that only picks a column or a struct field (aliased or not):
/// evaluating it shares an array, computing and copying nothing.
pub fn picks_only(e: &Expr) -> bool {
    match e {
        Expr::Column(_) => true,
        Expr::Alias(a) => picks_only(&a.expr),
        Expr::ScalarFunction(f) if f.name() == "get_field" => {
            f.args.first().is_some_and(picks_only)
                && f.args[1..].iter().all(|a| matches!(a, Expr::Literal(..)))
        }
        _ => false,
    }
}

/// `e` compiled to run over only what it reads of `schema`'s batches (see the module).
pub fn narrow(state: &SessionState, e: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
    if picks_only(e) {
        return compile(state, e, schema);
    }
    let mut picks: Vec<Expr> = vec![];
    let rewritten = e
        .clone()
        .transform_down(|node| {
            if !picks_only(&node) {
                return Ok(Transformed::no(node));
            }
            let i = match picks.iter().position(|p| *p == node) {
                Some(i) => i,
                None => {
                    picks.push(node);
                    picks.len() - 1
                }
            };
            Ok(Transformed::new(
                Expr::Column(Column::from_name(format!("__weir_pick_{i}"))),
                true,
                TreeNodeRecursion::Jump,
            ))
        })?
        .data;
    let mut fields = vec![];
    for (i, p) in picks.iter().enumerate() {
        let (_, field) = p.to_field(schema)?;
        fields.push(Field::new(
            format!("__weir_pick_{i}"),
            field.data_type().clone(),
            field.is_nullable(),
        ));
    }
    let narrow_schema = Arc::new(Schema::new(fields));
    let narrow_df = DFSchema::try_from(narrow_schema.as_ref().clone())?;
    Ok(Arc::new(NarrowExpr {
        picks: picks
            .iter()
            .map(|p| compile(state, p, schema))
            .collect::<Result<Vec<_>>>()?,
        inner: compile(state, &rewritten, &narrow_df)?,
        schema: narrow_schema,
    }))
}

/// An expression evaluated over the batch of its picks.
#[derive(Debug)]
struct NarrowExpr {
    picks: Vec<Arc<dyn PhysicalExpr>>,
    /// The picks' schema, which `inner` reads.
    schema: SchemaRef,
    inner: Arc<dyn PhysicalExpr>,
}

impl PartialEq for NarrowExpr {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema
            && self.picks.len() == other.picks.len()
            && self
                .picks
                .iter()
                .zip(&other.picks)
                .all(|(a, b)| a.as_ref() == b.as_ref())
            && self.inner.as_ref() == other.inner.as_ref()
    }
}

impl Eq for NarrowExpr {}

impl std::hash::Hash for NarrowExpr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.schema.hash(state);
        for p in &self.picks {
            p.as_ref().hash(state);
        }
        self.inner.as_ref().hash(state);
    }
}

impl fmt::Display for NarrowExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

impl PhysicalExpr for NarrowExpr {
    fn data_type(&self, _input: &Schema) -> datafusion::common::Result<DataType> {
        self.inner.data_type(&self.schema)
    }

    fn nullable(&self, _input: &Schema) -> datafusion::common::Result<bool> {
        self.inner.nullable(&self.schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> datafusion::common::Result<ColumnarValue> {
        let n = batch.num_rows();
        let cols = self
            .picks
            .iter()
            .map(|p| p.evaluate(batch)?.into_array(n))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let narrow = RecordBatch::try_new_with_options(
            self.schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        self.inner.evaluate(&narrow)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.picks.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> datafusion::common::Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(NarrowExpr {
            picks: children,
            schema: self.schema.clone(),
            inner: self.inner.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int32Array, Int64Array, StructArray};
    use datafusion::functions::core::expr_ext::FieldAccessor;
    use datafusion::prelude::{SessionContext, col, lit, when};

    #[test]
    fn a_narrowed_case_gives_what_the_whole_batch_gives() {
        let a = Arc::new(Int64Array::from(vec![10, 11, 12])) as _;
        let b = Arc::new(Int64Array::from(vec![20, 21, 22])) as _;
        let s = StructArray::from(vec![
            (Arc::new(Field::new("a", DataType::Int64, false)), a),
            (Arc::new(Field::new("b", DataType::Int64, false)), b),
        ]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Int32, false),
            Field::new("s", s.data_type().clone(), false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(vec![0, 1, 0])), Arc::new(s)],
        )
        .expect("batch");
        let df = DFSchema::try_from(schema.as_ref().clone()).expect("schema");
        let e = when(col("kind").eq(lit(0)), col("s").field("a"))
            .otherwise(col("s").field("b"))
            .expect("case");
        let state = SessionContext::new().state();
        let narrowed = narrow(&state, &e, &df).expect("narrow");
        let whole = compile(&state, &e, &df).expect("compile");
        let got = narrowed
            .evaluate(&batch)
            .expect("eval")
            .into_array(3)
            .expect("array");
        let want = whole
            .evaluate(&batch)
            .expect("eval")
            .into_array(3)
            .expect("array");
        assert_eq!(got.as_ref(), want.as_ref());
        assert_eq!(narrowed.children().len(), 3, "kind, s.a and s.b are picked");
    }
}
