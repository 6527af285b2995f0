//! Replays every seed (`fuzz/seeds/<target>/`) and every fuzzer finding kept as a
//! regression (`fuzz/regressions/<target>/`) through the function its fuzz target calls:
//! none may panic. The fuzzers themselves run with `cargo fuzz` (README, "Fuzzing").

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let data = std::fs::read(&p).expect("a corpus file reads");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{} panicked", p.display());
            count += 1;
        }
    }
    assert!(count > 0, "no inputs for the fuzz target {target}");
}

#[test]
fn sql_inputs() {
    replay("sql", weir::fuzz::sql);
}

#[test]
fn json_inputs() {
    replay("json", weir::fuzz::json);
}

#[test]
fn csv_inputs() {
    replay("csv", weir::fuzz::csv);
}

#[test]
fn kafka_record_inputs() {
    replay("kafka_record", weir::fuzz::kafka_record);
}
