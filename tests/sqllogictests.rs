//! Runs the SQL behaviour tests in `tests/slt/*.slt` (sqllogictest format) against Weir.
//!
//! Each file gets a fresh session. `statement ok` / `statement error <regex>` run DDL and
//! check errors (the regex matches the rendered message, including `line:col` and the
//! help line); `query` runs a standing query over bounded sources to its end and compares
//! the rows it emitted (a changelog with its row kinds, `+I`/`-U`/`+U`/`-D`, in a first
//! column). Run one file with `cargo test --test sqllogictests -- NAME`.

use std::path::PathBuf;

use datafusion::arrow::array::Array;
use datafusion::arrow::util::display::ArrayFormatter;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use weir::format::encode::format_options;
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
        let opts = format_options().with_null("NULL");
        let mut rows = vec![];
        let mut width = 0;
        for b in &batches {
            // A changelog shows its row kinds first, as the terminal does.
            let b = &weir::changelog::for_display(b).map_err(err)?;
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
            Ok(Weir {
                session: Session::new(),
            })
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
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
