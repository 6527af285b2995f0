//! Flink's seeded random functions, `RAND(seed)` and `RAND_INTEGER(seed, bound)`, with
//! the sequences Flink gives: each call site of a query draws from its own
//! `java.util.Random(seed)` (Flink's code generator gives every such call a `Random`
//! field), row after row, so two calls with the same seed give the same sequence.
//!
//! [`super::rewrite`] turns `RAND(seed)` into `weir_rand(seed, site)` and
//! `RAND_INTEGER(seed, bound)` into `weir_rand_integer(seed, bound, site)`, `site` a number
//! unique to the call. The sequence starts afresh each time a query is planned (a restored
//! job too, as Flink's restarts from `open()`): planning simplifies each call into one of
//! its own, with a new generator ([`ScalarUDFImpl::simplify`]), so two queries over one
//! view, or one statement planned twice, do not share a sequence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, AsArray, Float64Array, Int32Array};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `java.util.Random`: a 48-bit linear congruential generator (Knuth, TAOCP vol. 2,
/// 3.2.1), with Java's scrambling of the seed and its ways of drawing doubles and bounded
/// integers (the `java.util.Random` documentation gives the algorithms).
#[derive(Debug, Clone)]
pub struct JavaRandom(u64);

const MULTIPLIER: u64 = 0x5DEECE66D;
const MASK: u64 = (1 << 48) - 1;

impl JavaRandom {
    /// A generator seeded as `new java.util.Random(seed)`.
    pub fn new(seed: i64) -> Self {
        JavaRandom((seed as u64 ^ MULTIPLIER) & MASK)
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.0 = (self.0.wrapping_mul(MULTIPLIER).wrapping_add(0xB)) & MASK;
        (self.0 >> (48 - bits)) as u32 as i32
    }

    /// A double in [0, 1): Java's `nextDouble`.
    pub fn next_double(&mut self) -> f64 {
        let hi = (self.next(26) as i64) << 27;
        let lo = self.next(27) as i64;
        (hi + lo) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An int in [0, bound) for `bound` > 0: Java's `nextInt(bound)`.
    pub fn next_int(&mut self, bound: i32) -> i32 {
        let mut r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            return ((bound as i64 * r as i64) >> 31) as i32;
        }
        let mut u = r;
        loop {
            r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next(31);
        }
    }
}

/// `weir_rand(seed, site)` and `weir_rand_integer(seed, bound, site)`.
#[derive(Debug)]
pub struct SeededRand {
    integer: bool,
    /// True for the instance planning made for one call (see the module's docs).
    planned: bool,
    signature: Signature,
    /// Each call site's generator, made from the seed of the first row it sees.
    sites: Mutex<HashMap<i64, JavaRandom>>,
}

impl PartialEq for SeededRand {
    /// Instances planning made are each their own (their generators differ).
    fn eq(&self, other: &Self) -> bool {
        self.integer == other.integer && !self.planned && !other.planned
            || std::ptr::eq(self, other)
    }
}
impl Eq for SeededRand {}
impl std::hash::Hash for SeededRand {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.integer.hash(state);
    }
}

impl SeededRand {
    /// The two functions, to register with a DataFusion context.
    pub fn udfs() -> Vec<ScalarUDF> {
        [false, true]
            .into_iter()
            .map(|integer| {
                ScalarUDF::from(SeededRand {
                    integer,
                    planned: false,
                    signature: Signature::any(if integer { 3 } else { 2 }, Volatility::Volatile),
                    sites: Mutex::new(HashMap::new()),
                })
            })
            .collect()
    }
}

impl ScalarUDFImpl for SeededRand {
    fn name(&self) -> &str {
        if self.integer {
            "weir_rand_integer"
        } else {
            "weir_rand"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Gives the call a generator of its own, each time a plan holding it is simplified
    /// (a view's stored plan too: every query over it starts the sequence afresh).
    /// DataFusion's simplifier stops after its fixed number of cycles.
    fn simplify(
        &self,
        args: Vec<datafusion::logical_expr::Expr>,
        _info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> datafusion::error::Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        use datafusion::logical_expr::simplify::ExprSimplifyResult;
        let own = ScalarUDF::from(SeededRand {
            integer: self.integer,
            planned: true,
            signature: self.signature.clone(),
            sites: Mutex::new(HashMap::new()),
        });
        Ok(ExprSimplifyResult::Simplified(
            datafusion::logical_expr::Expr::ScalarFunction(
                datafusion::logical_expr::expr::ScalarFunction::new_udf(Arc::new(own), args),
            ),
        ))
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(if self.integer {
            DataType::Int32
        } else {
            DataType::Float64
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let n = args.number_rows;
        if n == 0 {
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&self.return_type(&[])?),
            ));
        }
        let int64 = |i: usize| super::functions::arg_as(&args, i, &DataType::Int64);
        let seed = int64(0)?;
        let seed = seed.as_primitive::<Int64Type>();
        let site_arg = int64(args.args.len() - 1)?;
        let site = site_arg.as_primitive::<Int64Type>().value(0);
        let bound = if self.integer { Some(int64(1)?) } else { None };
        let mut sites = self
            .sites
            .lock()
            .map_err(|_| datafusion::error::DataFusionError::Execution("RAND: poisoned".into()))?;
        let out: Arc<dyn Array> = match &bound {
            None => Arc::new(
                (0..n)
                    .map(|i| {
                        if seed.is_null(i) {
                            return None;
                        }
                        let r = sites
                            .entry(site)
                            .or_insert_with(|| JavaRandom::new(seed.value(i)));
                        Some(r.next_double())
                    })
                    .collect::<Float64Array>(),
            ),
            Some(bound) => {
                let bound = bound.as_primitive::<Int64Type>();
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    if seed.is_null(i) || bound.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    let b = i32::try_from(bound.value(i))
                        .ok()
                        .filter(|b| *b > 0)
                        .ok_or_else(|| {
                            datafusion::error::DataFusionError::Execution(format!(
                                "RAND_INTEGER: the bound must be a positive INT, not {}",
                                bound.value(i)
                            ))
                        })?;
                    let r = sites
                        .entry(site)
                        .or_insert_with(|| JavaRandom::new(seed.value(i)));
                    out.push(Some(r.next_int(b)));
                }
                Arc::new(Int32Array::from(out))
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values Java's own `java.util.Random` gave (OpenJDK's jshell).
    #[test]
    fn java_sequences() {
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_double(), 0.7275636800328681);
        let mut r = JavaRandom::new(42);
        assert_eq!([r.next_int(10), r.next_int(10), r.next_int(7)], [0, 3, 6]);
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_int(16), 11);
        let mut r = JavaRandom::new(-7);
        assert_eq!(r.next_double(), 0.2691218093260761);
        assert_eq!(r.next_int(1_000_000_007), 445645583);
    }
}
