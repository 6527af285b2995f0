//! The Parquet archive: a standing query writes a Hive-partitioned archive; Weir's batch
//! `query` and an independent reader (the `parquet` crate's own Arrow reader, file by file)
//! read it back and agree with each other and with the rows the query produced.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::ArrayFormatter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir::Session;
use weir::format::encode::format_options;

const SOURCE: &str = "CREATE TABLE window_source_t (
  ts STRING, a_int INT, b_double DOUBLE, c_float FLOAT, d_bigdec DECIMAL(10, 2),
  `comment` STRING, name STRING,
  `rowtime` AS TO_TIMESTAMP(`ts`),
  WATERMARK FOR `rowtime` AS `rowtime` - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'tests/data/window_source.csv', 'format' = 'csv');";

const WINDOWS: &str = "SELECT name, window_start, window_end, COUNT(*) AS c, SUM(a_int) AS s, \
    date_format(window_start, '%Y-%m-%d') AS dt, date_format(window_start, '%H') AS `hour` \
    FROM TABLE(TUMBLE(TABLE window_source_t, DESCRIPTOR(rowtime), INTERVAL '5' SECOND)) \
    GROUP BY name, window_start, window_end";

fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let opts = format_options();
    let mut out = vec![];
    for b in batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter"))
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                f.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out.sort();
    out
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

async fn write_archive(dir: &Path, extra: &str) -> Vec<String> {
    let mut s = Session::new();
    let script = format!(
        "{SOURCE}\n\
         CREATE TABLE archive (name STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), \
           c BIGINT, s BIGINT, dt STRING, `hour` STRING) PARTITIONED BY (dt, `hour`) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet', \
           'parquet.compression' = 'zstd'{extra});\n\
         INSERT INTO archive {WINDOWS};\n\
         {WINDOWS};",
        dir.display()
    );
    let mut results = s
        .run_collect(&script)
        .await
        .expect("the archive is written");
    rows(&results.pop().expect("the live rows"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_reads_back_the_same_with_weir_and_with_the_parquet_crate() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("hot");
    let live = write_archive(&dir, "").await;
    assert_eq!(live.len(), 9);

    // Weir's batch query: partition folders are columns.
    let mut s = Session::new();
    let mut got = s
        .batch(&format!(
            "SELECT name, window_start, window_end, c, s, dt, `hour` FROM '{}'",
            dir.display()
        ))
        .await
        .expect("weir query");
    assert_eq!(rows(&got.pop().expect("a result")), live);

    // A filter on a partition column.
    let mut got = s
        .batch(&format!(
            "SELECT COUNT(*) FROM '{}' WHERE dt = '2020-10-10' AND `hour` = '00'",
            dir.display()
        ))
        .await
        .expect("weir query");
    assert_eq!(rows(&got.pop().expect("a result")), vec!["9"]);

    // The parquet crate, file by file; the partition values come from the folder names.
    let mut all = vec![];
    files(&dir, &mut all);
    assert!(!all.is_empty());
    let mut independent = vec![];
    for f in &all {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(
            name.starts_with("part-") && name.ends_with(".parquet"),
            "only committed files remain: {}",
            f.display()
        );
        let rel = f.strip_prefix(&dir).expect("under the archive");
        let parts: Vec<String> = rel
            .parent()
            .expect("in a partition folder")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        assert_eq!(parts.len(), 2, "{}", rel.display());
        assert!(parts[0].starts_with("dt=") && parts[1].starts_with("hour="));
        let file = std::fs::File::open(f).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("a parquet file")
            .build()
            .expect("reader");
        for b in reader {
            let b = b.expect("batch");
            // The Arrow schema is stored: timestamps keep their millisecond unit.
            assert_eq!(b.schema().field(1).data_type().to_string(), "Timestamp(ms)");
            for r in rows(&[b]) {
                independent.push(format!(
                    "{r}|{}|{}",
                    &parts[0]["dt=".len()..],
                    &parts[1]["hour=".len()..]
                ));
            }
        }
    }
    independent.sort();
    assert_eq!(independent, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_roll_and_every_row_is_kept_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("rolled");
    // A hidden leftover of a crashed run is removed at start.
    std::fs::create_dir_all(dir.join("dt=2020-10-10/hour=00")).expect("mkdir");
    std::fs::write(
        dir.join("dt=2020-10-10/hour=00/.part-old-0.parquet.inprogress"),
        b"x",
    )
    .expect("leftover");
    let live = write_archive(&dir, ", 'sink.rolling-policy.file-size' = '1'").await;
    let mut all = vec![];
    files(&dir, &mut all);
    let names: BTreeSet<String> = all
        .iter()
        .map(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(names.iter().all(|n| n.starts_with("part-")), "{names:?}");
    // One file per fired window batch: several files in the one partition.
    assert!(all.len() >= 4, "{names:?}");
    let mut s = Session::new();
    let mut got = s
        .batch(&format!(
            "SELECT name, window_start, window_end, c, s, dt, `hour` FROM '{}'",
            dir.display()
        ))
        .await
        .expect("weir query");
    assert_eq!(rows(&got.pop().expect("a result")), live);
}
