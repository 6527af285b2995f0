//! Runs the SQL behaviour tests in `tests/slt/*.slt` (sqllogictest format) against Weir.
//!
//! Each file gets a fresh session. `statement ok` / `statement error <regex>` run DDL and
//! check errors (the regex matches the rendered message, including `line:col` and the
//! help line); `query` runs a standing query over bounded sources to its end and compares
//! the rows it emitted (a changelog with its row kinds, `+I`/`-U`/`+U`/`-D`, in a first
//! column). Run one file with `cargo test --test sqllogictests -- NAME`.
//!
//! Every `query` over a stream also runs in the **three-run form**, with one row per batch:
//! straight through; with checkpoints, stopped with a savepoint after each source's
//! second row; restored from it and run to the end. The rows of the stopped and the
//! restored run together must equal the straight run's (as a multiset of changes).
//! `WEIR_SLT_THREE_RUN=0` turns it off.
//!
//! Every file runs at `parallelism.default` 2: keyed operators as two subtasks behind hash
//! exchanges, whatever the machine's cores.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::Array;
use datafusion::arrow::util::display::ArrayFormatter;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use weir::format::encode::format_options;
use weir::sql::parser::Statement;
use weir::{Session, WeirError};

struct Weir {
    session: Session,
}

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

/// Errors as one line (`line:col: message (help: ...)`), so that `statement error`
/// patterns can check the position, the message and the hint.
fn err(e: WeirError) -> SltError {
    SltError(e.to_string())
}

#[async_trait::async_trait]
impl AsyncDB for Weir {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let results = self.session.run_collect(sql).await.map_err(err)?;
        let Some(batches) = results.into_iter().last() else {
            return Ok(DBOutput::StatementComplete(0));
        };
        if std::env::var("WEIR_SLT_THREE_RUN").as_deref() != Ok("0") {
            self.three_run(sql).await?;
        }
        let (width, rows) = format_rows(&batches)?;
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; width],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "weir"
    }
}

/// Queries stopped part-way and restored by the three-run form.
static RESUMED: AtomicUsize = AtomicUsize::new(0);

/// Settings the three-run form changes, put back after it.
const THREE_RUN_KEYS: &[&str] = &[
    "table.exec.batch-size",
    "execution.checkpointing.interval",
    "state.checkpoints.dir",
    "pipeline.name",
];

impl Weir {
    /// The three-run form of `sql` (see the module docs), when it is one query over a
    /// stream; an error says how the runs differ.
    async fn three_run(&mut self, sql: &str) -> Result<(), SltError> {
        let Ok(mut stmts) = weir::sql::parser::parse_script(sql) else {
            return Ok(());
        };
        if stmts.len() != 1 || !matches!(stmts[0].statement, Statement::Query(_)) {
            return Ok(());
        }
        // A watermark is not part of a checkpoint (in Flink neither): a restored query sees
        // CURRENT_WATERMARK NULL until its sources send the first one, so its rows differ
        // from a straight run's by design.
        if sql.to_ascii_uppercase().contains("CURRENT_WATERMARK") {
            return Ok(());
        }
        let stmt = stmts.remove(0);
        let saved: Vec<(&str, Option<String>)> = THREE_RUN_KEYS
            .iter()
            .map(|k| (*k, self.session.setting(k).map(str::to_string)))
            .collect();
        let dir = tempfile::tempdir().map_err(|e| SltError(e.to_string()))?;
        let outcome = self.three_runs(&stmt, dir.path()).await;
        self.session.pause_sources_after = None;
        for (k, v) in saved {
            match v {
                Some(v) => self
                    .session
                    .set(k, &v)
                    .map_err(|e| SltError(e.to_string()))?,
                None => self.session.unset(k),
            }
        }
        outcome
    }

    async fn three_runs(
        &mut self,
        stmt: &weir::sql::parser::Located,
        dir: &std::path::Path,
    ) -> Result<(), SltError> {
        use weir::sink::collect::CollectSink;
        let s = &mut self.session;
        for (k, v) in [
            ("table.exec.batch-size", "1".to_string()),
            ("execution.checkpointing.interval", "10ms".to_string()),
            ("state.checkpoints.dir", dir.display().to_string()),
            ("pipeline.name", "three-run".to_string()),
        ] {
            s.set(k, &v).map_err(|e| SltError(e.to_string()))?;
        }
        // Stopped part-way: each source waits after its second row for the stop.
        s.pause_sources_after = Some(2);
        let resumed = CollectSink::new();
        let job = match s.start_into(stmt, Box::new(resumed.clone())).await {
            Ok(job) => job,
            // A source that cannot replay (stdin) has no three-run form.
            Err(e) if e.to_string().contains("cannot take part in checkpoints") => return Ok(()),
            Err(e) => return Err(SltError(format!("three-run, first run: {e}"))),
        };
        if job.metrics.operator("source ").is_none() {
            // Reads no stream: nothing to stop part-way.
            job.wait().await.map_err(err)?;
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        job.stop();
        job.wait()
            .await
            .map_err(|e| SltError(format!("three-run, stopped run: {e}")))?;
        s.pause_sources_after = None;
        match s.start_into(stmt, Box::new(resumed.clone())).await {
            Ok(job) => {
                job.wait()
                    .await
                    .map_err(|e| SltError(format!("three-run, restored run: {e}")))?;
                RESUMED.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.to_string().contains("already ran to the end") => {}
            Err(e) => return Err(SltError(format!("three-run, restored run: {e}"))),
        }
        // Straight through, with the same batches, for comparison.
        s.unset("execution.checkpointing.interval");
        let straight = CollectSink::new();
        s.start_into(stmt, Box::new(straight.clone()))
            .await
            .map_err(err)?
            .wait()
            .await
            .map_err(err)?;
        let (_, mut want) = format_rows(&straight.batches())?;
        let (_, mut got) = format_rows(&resumed.batches())?;
        want.sort();
        got.sort();
        if got != want {
            return Err(SltError(format!(
                "three-run: stopped part-way and restored, the query gave\n{}\ninstead of\n{}",
                got.iter()
                    .map(|r| r.join(" "))
                    .collect::<Vec<_>>()
                    .join("\n"),
                want.iter()
                    .map(|r| r.join(" "))
                    .collect::<Vec<_>>()
                    .join("\n")
            )));
        }
        Ok(())
    }
}

/// Rows as text cells (a changelog's row kinds first), and the number of columns.
fn format_rows(
    batches: &[datafusion::arrow::record_batch::RecordBatch],
) -> Result<(usize, Vec<Vec<String>>), SltError> {
    let opts = format_options().with_null("NULL");
    let mut rows = vec![];
    let mut width = 0;
    for b in batches {
        // A changelog shows its row kinds first, as the terminal does.
        // DOUBLE and FLOAT as the shell shows them (Java's Double.toString).
        let b = &weir::changelog::for_display(b).map_err(err)?;
        let b = &weir::format::encode::java_floats(b).map_err(err)?;
        width = b.num_columns();
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SltError(e.to_string()))?;
        for r in 0..b.num_rows() {
            rows.push(
                fmts.iter()
                    .zip(b.columns())
                    .map(|(f, c)| {
                        let s = f.value(r).to_string();
                        if c.is_valid(r) && s.is_empty() {
                            "(empty)".to_string()
                        } else {
                            s
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok((width, rows))
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (mut passed, mut failed) = (0, 0);
    // Tests read files relative to the crate root.
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).expect("cd");
    for f in files {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        if filter.as_ref().is_some_and(|x| !name.contains(x.as_str())) {
            continue;
        }
        let mut runner = sqllogictest::Runner::new(|| async {
            // Every file runs in parallel (keyed operators as two subtasks, behind hash
            // exchanges), whatever the machine's cores: the answers must not change.
            let mut session = Session::new();
            session
                .set("parallelism.default", "2")
                .map_err(|e| SltError(e.to_string()))?;
            Ok(Weir { session })
        });
        match rt.block_on(runner.run_file_async(&f)) {
            Ok(()) => {
                println!("slt {name} ... ok");
                passed += 1;
            }
            Err(e) => {
                println!("slt {name} ... FAILED\n{e}");
                failed += 1;
            }
        }
    }
    let resumed = RESUMED.load(Ordering::Relaxed);
    println!("\n{passed} passed, {failed} failed; {resumed} queries stopped part-way and restored");
    let three_run = std::env::var("WEIR_SLT_THREE_RUN").as_deref() != Ok("0");
    if three_run && filter.is_none() && resumed < 20 {
        println!(
            "the three-run form restored only {resumed} queries: it is not exercising restores"
        );
        failed += 1;
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
