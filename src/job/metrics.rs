//! Per-job and per-operator counters. Plain atomics: updated on the hot path with relaxed
//! ordering, read by whoever reports (the end-of-run summary, the shell's job list).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug)]
pub struct OperatorMetrics {
    pub name: String,
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
}

impl OperatorMetrics {
    pub fn add_in(&self, n: usize) {
        self.rows_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_out(&self, n: usize) {
        self.rows_out.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn rows_in(&self) -> u64 {
        self.rows_in.load(Ordering::Relaxed)
    }
    pub fn rows_out(&self) -> u64 {
        self.rows_out.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct JobMetrics {
    pub started: Instant,
    operators: Mutex<Vec<Arc<OperatorMetrics>>>,
    /// Records a decoder skipped under `*.ignore-parse-errors`.
    pub bad_records: AtomicU64,
    /// Rows that arrived after their window had fired.
    pub late_rows: AtomicU64,
    /// The highest watermark a source has emitted (ms), `i64::MIN` before the first.
    pub watermark: AtomicI64,
}

impl Default for JobMetrics {
    fn default() -> Self {
        JobMetrics {
            started: Instant::now(),
            operators: Mutex::new(vec![]),
            bad_records: AtomicU64::new(0),
            late_rows: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
        }
    }
}

impl JobMetrics {
    pub fn register(&self, name: impl Into<String>) -> Arc<OperatorMetrics> {
        let m = Arc::new(OperatorMetrics {
            name: name.into(),
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
        });
        if let Ok(mut ops) = self.operators.lock() {
            ops.push(m.clone());
        }
        m
    }

    pub fn operators(&self) -> Vec<Arc<OperatorMetrics>> {
        self.operators.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The operator registered under `name` first (e.g. a source or the sink).
    pub fn operator(&self, prefix: &str) -> Option<Arc<OperatorMetrics>> {
        self.operators()
            .into_iter()
            .find(|o| o.name.starts_with(prefix))
    }

    pub fn observe_watermark(&self, wm: i64) {
        self.watermark.fetch_max(wm, Ordering::Relaxed);
    }

    /// A multi-line table of the operators' counters.
    pub fn report(&self) -> String {
        let ops = self.operators();
        let width = ops.iter().map(|o| o.name.len()).max().unwrap_or(8).max(8);
        let mut s = format!(
            "  {:<width$}  {:>12}  {:>12}\n",
            "operator", "rows in", "rows out"
        );
        for o in ops {
            s.push_str(&format!(
                "  {:<width$}  {:>12}  {:>12}\n",
                o.name,
                o.rows_in(),
                o.rows_out()
            ));
        }
        let bad = self.bad_records.load(Ordering::Relaxed);
        let late = self.late_rows.load(Ordering::Relaxed);
        if bad > 0 {
            s.push_str(&format!("  bad records skipped: {bad}\n"));
        }
        if late > 0 {
            s.push_str(&format!("  late rows dropped: {late}\n"));
        }
        s
    }
}
