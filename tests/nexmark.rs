//! The Nexmark suite, checked: each query of `queries/nexmark/` that Weir runs is run as a
//! standing query over a small seeded generator run, and its rows must equal those of an
//! independent DataFusion batch query over the very same events held in memory. The batch
//! side is written in plain DataFusion SQL (`date_bin` for windows, `regexp_match` and
//! `split_part` for Flink's functions), so it shares no code with Weir's streaming
//! operators. Each query runs with two source batch sizes, so results cannot depend on where
//! batches are cut.

mod common;

use weir::Session;

/// 50 000 events at 1 000 events per second of event time: 50 s, five 10-second windows.
const EVENTS: u64 = 50_000;
const RATE: u32 = 1_000;
const BASE: i64 = 1_767_225_600_000; // 2026-01-01 00:00:00, the DDL's 'base-time'

/// q15's and q16's figures: bids, bidders and auctions, in all and in three price ranges.
macro_rules! price_range_counts {
    () => {
        "count(*), count(*) FILTER (WHERE price < 10000), \
         count(*) FILTER (WHERE price >= 10000 AND price < 1000000), \
         count(*) FILTER (WHERE price >= 1000000), \
         count(DISTINCT bidder), count(DISTINCT bidder) FILTER (WHERE price < 10000), \
         count(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000), \
         count(DISTINCT bidder) FILTER (WHERE price >= 1000000), \
         count(DISTINCT auction), count(DISTINCT auction) FILTER (WHERE price < 10000), \
         count(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000), \
         count(DISTINCT auction) FILTER (WHERE price >= 1000000)"
    };
}

/// (query file, the same query in DataFusion batch SQL over the views of `ddl.sql`; empty
/// when the file's own SELECT is plain SQL that DataFusion runs as it is).
const CASES: &[(&str, &str)] = &[
    (
        "q0",
        "SELECT auction, bidder, price, dateTime, extra FROM bid",
    ),
    (
        "q1",
        "SELECT auction, bidder, 0.908 * price AS price, dateTime, extra FROM bid",
    ),
    (
        "q2",
        "SELECT auction, price FROM bid WHERE auction % 123 = 0",
    ),
    (
        "q3",
        "SELECT P.name, P.city, P.state, A.id FROM auction A JOIN person P ON A.seller = P.id \
         WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA')",
    ),
    (
        "q5",
        "WITH hops AS ( \
           SELECT auction, date_bin(INTERVAL '2 seconds', dateTime) - back AS starttime \
           FROM bid CROSS JOIN (VALUES (INTERVAL '0 seconds'), (INTERVAL '2 seconds'), \
             (INTERVAL '4 seconds'), (INTERVAL '6 seconds'), (INTERVAL '8 seconds')) AS o(back)), \
         counts AS (SELECT auction, starttime, count(*) AS num FROM hops GROUP BY auction, starttime) \
         SELECT c.auction, c.num FROM counts c \
         JOIN (SELECT starttime, max(num) AS maxn FROM counts GROUP BY starttime) m \
         ON c.starttime = m.starttime AND c.num >= m.maxn",
    ),
    // The same text: a regular join and two aggregates over the whole stream.
    // Flink's AVG of a BIGINT is a BIGINT: the sum divided by the count, truncated
    // (DataFusion's is a DOUBLE).
    (
        "q4",
        "SELECT Q.category, CAST(trunc(AVG(Q.final)) AS BIGINT) \
         FROM ( \
           SELECT MAX(B.price) AS final, A.category \
           FROM auction A, bid B \
           WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires \
           GROUP BY A.id, A.category \
         ) Q \
         GROUP BY Q.category",
    ),
    (
        "q7",
        "SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra FROM bid B JOIN ( \
           SELECT max(price) AS maxprice, \
             date_bin(INTERVAL '10 seconds', dateTime) + INTERVAL '10 seconds' AS wend \
           FROM bid GROUP BY 2) B1 \
         ON B.price = B1.maxprice \
         WHERE B.dateTime >= B1.wend - INTERVAL '10 seconds' AND B.dateTime <= B1.wend",
    ),
    (
        "q8",
        "SELECT P.id, P.name, P.starttime FROM ( \
           SELECT DISTINCT id, name, date_bin(INTERVAL '10 seconds', dateTime) AS starttime FROM person) P \
         JOIN ( \
           SELECT DISTINCT seller, date_bin(INTERVAL '10 seconds', dateTime) AS starttime FROM auction) A \
         ON P.id = A.seller AND P.starttime = A.starttime",
    ),
    // The same text: a regular join and Top-1 by ROW_NUMBER().
    ("q9", ""),
    // Sessions by gaps and islands: a bid 10 s or more after the bidder's previous one
    // starts a new session, which ends 10 s after its last bid.
    (
        "q11",
        "WITH o AS (SELECT bidder, dateTime, CASE WHEN CAST(dateTime AS BIGINT) \
             - LAG(CAST(dateTime AS BIGINT)) OVER (PARTITION BY bidder ORDER BY dateTime) < 10000 \
             THEN 0 ELSE 1 END AS brk FROM bid), \
         g AS (SELECT *, SUM(brk) OVER (PARTITION BY bidder ORDER BY dateTime, brk DESC \
             ROWS UNBOUNDED PRECEDING) AS sid FROM o) \
         SELECT bidder, count(*), MIN(dateTime), MAX(dateTime) + INTERVAL '10 seconds' \
         FROM g GROUP BY bidder, sid",
    ),
    (
        "q13",
        "SELECT B.auction, B.bidder, B.price, B.dateTime, S.value \
         FROM bid B JOIN side_input S ON B.auction % 10000 = S.key",
    ),
    (
        "q14",
        "SELECT auction, bidder, 0.908 * price AS price, CASE \
           WHEN date_part('hour', dateTime) >= 8 AND date_part('hour', dateTime) <= 18 THEN 'dayTime' \
           WHEN date_part('hour', dateTime) <= 6 OR date_part('hour', dateTime) >= 20 THEN 'nightTime' \
           ELSE 'otherTime' END AS bidTimeType, dateTime, extra, \
           CAST(character_length(extra) - character_length(replace(extra, 'c', '')) AS BIGINT) AS c_counts \
         FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000",
    ),
    (
        "q15",
        concat!(
            "SELECT to_char(dateTime, '%Y-%m-%d') AS day, ",
            price_range_counts!(),
            " FROM bid GROUP BY 1"
        ),
    ),
    (
        "q16",
        concat!(
            "SELECT channel, to_char(dateTime, '%Y-%m-%d') AS day, max(to_char(dateTime, '%H:%M')), ",
            price_range_counts!(),
            " FROM bid GROUP BY 1, 2"
        ),
    ),
    (
        "q17",
        "SELECT auction, to_char(dateTime, '%Y-%m-%d') AS day, count(*), \
           count(*) FILTER (WHERE price < 10000), \
           count(*) FILTER (WHERE price >= 10000 AND price < 1000000), \
           count(*) FILTER (WHERE price >= 1000000), \
           min(price), max(price), CAST(trunc(avg(price)) AS BIGINT), sum(price) \
         FROM bid GROUP BY 1, 2",
    ),
    // The same text: deduplication by ROW_NUMBER().
    ("q18", ""),
    // Equal prices rank in arrival order, which is event-time order here.
    (
        "q19",
        "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC, dateTime ASC) AS rank_number FROM bid) \
         WHERE rank_number <= 10",
    ),
    (
        "q20",
        "SELECT B.auction, B.bidder, B.price, B.channel, B.url, B.dateTime, B.extra, \
           A.itemName, A.description, A.initialBid, A.reserve, A.dateTime, A.expires, A.seller, \
           A.category, A.extra \
         FROM bid B JOIN auction A ON B.auction = A.id WHERE A.category = 10",
    ),
    (
        "q21",
        "SELECT auction, bidder, price, channel, CASE \
           WHEN lower(channel) = 'apple' THEN '0' WHEN lower(channel) = 'google' THEN '1' \
           WHEN lower(channel) = 'facebook' THEN '2' WHEN lower(channel) = 'baidu' THEN '3' \
           ELSE regexp_match(url, '(&|^)channel_id=([^&]*)')[2] END AS channel_id \
         FROM bid \
         WHERE regexp_match(url, '(&|^)channel_id=([^&]*)')[2] IS NOT NULL \
            OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu')",
    ),
    (
        "q22",
        "SELECT auction, bidder, price, channel, split_part(url, '/', 4) AS dir1, \
           split_part(url, '/', 5) AS dir2, split_part(url, '/', 6) AS dir3 FROM bid",
    ),
];

fn read(path: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(format!("{root}/queries/nexmark/{path}"))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The SELECT of a suite file's `INSERT INTO nexmark_qN SELECT ...`.
fn select_of(query: &str) -> String {
    let text = read(&format!("{query}.sql"));
    let at = text
        .find("INSERT INTO")
        .unwrap_or_else(|| panic!("{query}.sql has no INSERT INTO"));
    let rest = &text[at + "INSERT INTO".len()..];
    let name = rest.split_whitespace().next().expect("sink name");
    let from = rest.find(name).expect("name") + name.len();
    rest[from..].trim().trim_end_matches(';').to_string()
}

/// A suite file's tables other than its sink (q13's side input) and functions (q14's), as
/// DDL.
fn tables_of(query: &str) -> String {
    statements(&read(&format!("{query}.sql")))
        .into_iter()
        .filter(|s| {
            (s.starts_with("CREATE TABLE") && !s.contains("nexmark_q"))
                || s.starts_with("CREATE FUNCTION")
        })
        .map(|s| format!("{s};\n"))
        .collect()
}

/// A script's statements, without comment lines.
fn statements(script: &str) -> Vec<String> {
    script
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The `CREATE VIEW` statements of `ddl.sql`, for DataFusion. They project nested fields
/// unaliased, one per line (`    bid.auction,`), as the suite's Flink DDL does: Flink names
/// such a column `auction`, DataFusion `datagen.bid[auction]`, so each such line gets the
/// alias Flink's rule gives it (`bid.auction AS auction`).
fn views() -> Vec<String> {
    statements(&read("ddl.sql"))
        .into_iter()
        .filter(|s| s.starts_with("CREATE VIEW"))
        .map(|view| {
            view.lines()
                .map(|line| {
                    let item = line.trim().trim_end_matches(',');
                    match item.split_once('.') {
                        Some((_, field))
                            if !item.contains(' ')
                                && field.chars().all(|c| c.is_ascii_alphanumeric()) =>
                        {
                            line.replacen(item, &format!("{item} AS {field}"), 1)
                        }
                        _ => line.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

async fn batch_answer(sql: &str) -> Vec<String> {
    let ctx = common::nexmark_batch_context(EVENTS, RATE as f64, 0, BASE);
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let side_schema = Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("value", DataType::Utf8, false),
    ]);
    let side = datafusion::prelude::CsvReadOptions::new()
        .has_header(false)
        .schema(&side_schema)
        .file_extension(".txt");
    ctx.register_csv(
        "side_input",
        &format!(
            "{}/queries/nexmark/side_input.txt",
            env!("CARGO_MANIFEST_DIR")
        ),
        side,
    )
    .await
    .expect("side input");
    let datagen = "CREATE VIEW datagen AS SELECT event_type, person, auction, bid, \
        CASE WHEN event_type = 0 THEN person.dateTime WHEN event_type = 1 THEN auction.dateTime \
        ELSE bid.dateTime END AS dateTime FROM events";
    for v in std::iter::once(datagen.to_string()).chain(views()) {
        common::query(&ctx, &v).await;
    }
    common::query(&ctx, sql).await
}

/// Rows equal as text, or as numbers within a relative 1e-9 where both cells are
/// fractional numbers (an average kept by adding and taking back values need not round as
/// a batch average does).
fn same_rows(got: &[String], expected: &[String]) -> bool {
    got.len() == expected.len()
        && got.iter().zip(expected).all(|(g, e)| {
            let (g, e): (Vec<&str>, Vec<&str>) = (g.split('|').collect(), e.split('|').collect());
            g.len() == e.len()
                && g.iter().zip(&e).all(|(a, b)| {
                    a == b
                        || (a.contains('.') && b.contains('.'))
                            && match (a.parse::<f64>(), b.parse::<f64>()) {
                                (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
                                _ => false,
                            }
                })
        })
}

/// The suite runs at parallelism 1 with whole batches, at 2 with odd ones.
fn parallelism(batch_size: usize) -> usize {
    if batch_size == 8192 { 1 } else { 2 }
}

/// The streaming result, its changelog (if it is one) applied: the rows it stands for.
async fn stream_answer(query: &str, batch_size: usize) -> Vec<String> {
    let select = select_of(query);
    let mut s = Session::new();
    let script = format!(
        "SET 'table.exec.batch-size' = '{batch_size}';\n\
         SET 'parallelism.default' = '{}';\n\
         SET 'events.num' = '{EVENTS}';\n\
         SET 'first-event.rate' = '{RATE}';\n\
         {}\n{}\n{select};",
        parallelism(batch_size),
        read("ddl.sql"),
        tables_of(query)
    );
    let mut results = s
        .run_collect(&script)
        .await
        .unwrap_or_else(|e| panic!("{select}: {e}"));
    common::applied_rows(&results.pop().expect("one result"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_queries_equal_datafusion_batch() {
    for (query, oracle) in CASES {
        let select = select_of(query);
        let oracle: &str = if oracle.is_empty() { &select } else { oracle };
        let expected = batch_answer(oracle).await;
        assert!(!expected.is_empty(), "the oracle gave no rows for {query}");
        for batch_size in [8192, 333] {
            let got = stream_answer(query, batch_size).await;
            assert_eq!(
                got.len(),
                expected.len(),
                "row count differs for {query} (batch size {batch_size})"
            );
            if !same_rows(&got, &expected) {
                assert_eq!(
                    got,
                    expected,
                    "rows differ for {query} (batch size {batch_size}, parallelism {})",
                    parallelism(batch_size)
                );
            }
        }
        eprintln!("{query}: {} rows equal", expected.len());
    }
}

/// q12 counts in windows of processing time, which no batch query can reproduce; but every
/// bid is counted in exactly one window, so the counts per bidder over all windows must be
/// DataFusion's count per bidder, and every window is 10 seconds of wall-clock time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q12_counts_every_bid_once_in_processing_time_windows() {
    let expected = batch_answer("SELECT bidder, count(*) FROM bid GROUP BY bidder").await;
    let got = stream_answer("q12", 333).await;
    let mut per_bidder = std::collections::BTreeMap::<String, u64>::new();
    for row in &got {
        let cells: Vec<&str> = row.split('|').collect();
        let [bidder, count, start, end] = cells[..] else {
            panic!("q12 gives 4 columns: {row}");
        };
        *per_bidder.entry(bidder.to_string()).or_default() += count.parse::<u64>().expect("count");
        let ms = |t: &str| {
            let t = t.trim_end_matches('Z');
            let secs: f64 = t[17..].parse().expect("seconds");
            (t[11..13].parse::<i64>().expect("h") * 3600
                + t[14..16].parse::<i64>().expect("m") * 60)
                * 1000
                + (secs * 1000.0) as i64
        };
        assert_eq!(
            (ms(end) - ms(start)).rem_euclid(86_400_000),
            10_000,
            "{row}"
        );
        assert_eq!(ms(start) % 10_000, 0, "windows are aligned: {row}");
    }
    let mut totals: Vec<String> = per_bidder
        .into_iter()
        .map(|(b, n)| format!("{b}|{n}"))
        .collect();
    totals.sort();
    assert_eq!(totals, expected);
}

/// q10 writes every bid as CSV into a folder per day and minute: read back by DataFusion's
/// own CSV reader (partition values from the folder names), the rows are the bids, once,
/// and every folder has been committed with its `_SUCCESS` file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q10_writes_every_bid_once_into_committed_partition_folders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bid");
    let text = read("q10.sql").replace(
        "file:///tmp/weir-nexmark/q10/bid/",
        &format!("file://{}/", out.display()),
    );
    assert!(
        text.contains(&out.display().to_string()),
        "the path was replaced"
    );
    let script = format!(
        "SET 'events.num' = '{EVENTS}';\nSET 'first-event.rate' = '{RATE}';\n{}\n{text}",
        read("ddl.sql")
    );
    Session::new().run_collect(&script).await.expect("q10 runs");
    let mut folders = 0;
    for day in std::fs::read_dir(&out).expect("day folders").flatten() {
        for minute in std::fs::read_dir(day.path())
            .expect("minute folders")
            .flatten()
        {
            folders += 1;
            assert!(
                minute.path().join("_SUCCESS").exists(),
                "{} is committed",
                minute.path().display()
            );
        }
    }
    // 50 s of event time from 00:00:00: the minute folders 00:00.
    assert!(folders >= 1);
    let ctx = common::batch_context();
    common::query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE written (auction BIGINT, bidder BIGINT, price BIGINT, \
               dateTime TIMESTAMP, extra VARCHAR, dt VARCHAR, hm VARCHAR) \
             STORED AS CSV PARTITIONED BY (dt, hm) LOCATION '{}/' \
             OPTIONS ('format.has_header' 'false')",
            out.display()
        ),
    )
    .await;
    let got = common::query(
        &ctx,
        "SELECT auction, bidder, price, dateTime, extra, dt, hm FROM written",
    )
    .await;
    let expected = batch_answer(
        "SELECT auction, bidder, price, dateTime, extra, to_char(dateTime, '%Y-%m-%d'), \
         to_char(dateTime, '%H:%M') FROM bid",
    )
    .await;
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
}
