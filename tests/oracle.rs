//! Streaming equals batch: each stateless query runs as a standing query over the Nexmark
//! generator, and as a DataFusion batch query over the very same events held in memory;
//! the rows must be equal — for several source batch sizes, so that results cannot depend
//! on where batches are cut.

mod common;
use common::rows;

use datafusion::arrow::record_batch::RecordBatch;
use weir::Session;

const EVENTS: u64 = 5_000;
const BASE: i64 = 1_767_225_600_000; // 2026-01-01

const VIEW: &str = "CREATE VIEW bid AS SELECT bid.auction AS auction, bid.bidder AS bidder, \
    bid.price AS price, bid.channel AS channel, bid.url AS url, bid.dateTime AS dateTime \
    FROM events WHERE event_type = 2";

const QUERIES: &[&str] = &[
    "SELECT auction, bidder, price, dateTime FROM bid",
    "SELECT auction, bidder, 0.908 * price AS price, dateTime FROM bid",
    "SELECT auction, price FROM bid WHERE auction % 123 = 0",
    "SELECT auction, bidder, price, channel, CASE WHEN lower(channel) = 'apple' THEN '0' \
       WHEN lower(channel) = 'google' THEN '1' ELSE regexp_replace(url, '.*channel_id=', '') END AS channel_id \
     FROM bid WHERE price > 10000",
    "SELECT person.id, person.name, person.city FROM events WHERE event_type = 0 AND person.state IN ('OR', 'ID', 'CA')",
    "SELECT auction.id, auction.seller, auction.category, auction.expires - auction.dateTime AS life \
     FROM events WHERE event_type = 1 AND auction.category = 10",
    "SELECT auction FROM bid WHERE price < 1000 UNION ALL SELECT person.id FROM events WHERE event_type = 0",
];

async fn batch_answer(sql: &str) -> Vec<String> {
    let ctx = common::nexmark_batch_context(EVENTS, 10_000.0, 3, BASE);
    common::query(&ctx, VIEW).await;
    common::query(&ctx, sql).await
}

async fn stream_answer(sql: &str, batch_size: usize) -> Vec<String> {
    rows(&stream_result(sql, batch_size).await)
}

/// The result of the standing query `sql` over the events, read in batches of
/// `batch_size` rows.
async fn stream_result(sql: &str, batch_size: usize) -> Vec<RecordBatch> {
    let mut s = Session::new();
    let script = format!(
        "SET 'table.exec.batch-size' = '{batch_size}';\n\
         CREATE TABLE events WITH ('connector' = 'nexmark', 'events.num' = '{EVENTS}', 'seed' = '3', 'base-time' = '{BASE}');\n\
         {VIEW};\n{sql};"
    );
    let mut results = s.run_collect(&script).await.expect("standing query runs");
    results.pop().expect("one result")
}

/// The standing query `stream` gives the rows the batch query `batch` gives, for every
/// source batch size.
async fn assert_stream_equals_batch(stream: &str, batch: &str) {
    let expected = batch_answer(batch).await;
    assert!(!expected.is_empty(), "the oracle gave no rows for {batch}");
    for batch_size in [1, 97, 8192] {
        let got = stream_answer(stream, batch_size).await;
        assert_eq!(
            got.len(),
            expected.len(),
            "row count differs for {stream} (batch size {batch_size})"
        );
        assert_eq!(
            got, expected,
            "rows differ for {stream} (batch size {batch_size})"
        );
    }
}

/// The standing query `stream`, a changelog, once applied (each `-U`/`-D` taking its row
/// back) holds the rows `expected`, for every source batch size.
async fn assert_applied_changelog_equals(stream: &str, expected: &[String]) {
    for batch_size in [1, 97, 8192] {
        let got = common::applied_rows(&stream_result(stream, batch_size).await);
        assert_eq!(got, expected, "batch size {batch_size}: {stream}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_queries_equal_datafusion_batch() {
    for q in QUERIES {
        assert_stream_equals_batch(q, q).await;
    }
}

/// Flink's array expansion, `CROSS JOIN UNNEST(…) AS t(x)`, against DataFusion's own
/// select-list `unnest` (a different path through DataFusion: no lateral join).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_join_unnest_equals_datafusion_unnest() {
    assert_stream_equals_batch(
        "SELECT auction, x FROM bid CROSS JOIN UNNEST(ARRAY[price, bidder, auction]) AS t (x) \
         WHERE x % 7 <> 0",
        "SELECT auction, x FROM (SELECT auction, unnest(make_array(price, bidder, auction)) AS x \
         FROM bid) WHERE x % 7 <> 0",
    )
    .await;
}

/// `AGG(DISTINCT …)` over results that update (each auction's bid count grows, so its old
/// count is taken back from its old group): the applied changelog equals DataFusion's
/// batch answer, for every source batch size. Each distinct value leaves its set when its
/// last row is taken back, as Flink's distinct aggregates over a changelog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_aggregates_over_a_changelog_equal_batch() {
    let inner = "SELECT auction, COUNT(*) AS c, MAX(bidder) % 3 AS b FROM bid GROUP BY auction";
    // DataFusion's batch COUNT(DISTINCT) takes one argument: b is 0, 1 or 2, so the pairs
    // (c, b) are the values c * 10 + b. Its AVG of a BIGINT is a DOUBLE; Flink's (and
    // Weir's) is a BIGINT, the quotient truncated.
    let outer = |pairs: &str, avg: &str| {
        format!(
            "SELECT c % 4 AS g, SUM(DISTINCT c), COUNT(DISTINCT c), {avg}, \
             MAX(DISTINCT c), COUNT(DISTINCT {pairs}), COUNT(*) FROM ({inner}) GROUP BY c % 4"
        )
    };
    let expected = batch_answer(&outer("c * 10 + b", "CAST(AVG(DISTINCT c) AS BIGINT)")).await;
    assert!(expected.len() == 4, "{expected:?}");
    assert_applied_changelog_equals(&outer("c, b", "AVG(DISTINCT c)"), &expected).await;
}

/// Aggregates of arrival order over results that update (`ARRAY_AGG`, with and without
/// DISTINCT, and `LISTAGG`): the rows they hold once the changelog is applied equal
/// DataFusion's batch answer, for every source batch size — sorted, since their order is
/// the arrival order a batch engine has no notion of (`tests/slt/changelog.slt` checks the
/// order by Flink's rules). Each auction's old count leaves its old group's array as the
/// new one comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrival_order_aggregates_over_a_changelog_hold_the_batch_rows() {
    let inner = "SELECT auction, COUNT(*) AS c, MAX(bidder) % 3 AS b FROM bid GROUP BY auction";
    let outer = |listagg: &str| {
        format!(
            "SELECT c % 4 AS g, ARRAY_SORT(ARRAY_AGG(auction)), ARRAY_SORT(ARRAY_AGG(DISTINCT b)), \
             LENGTH({listagg}), COUNT(*) FROM ({inner}) GROUP BY c % 4"
        )
    };
    let expected = batch_answer(&outer("string_agg(CAST(c AS STRING), ',')")).await;
    assert!(expected.len() == 4, "{expected:?}");
    assert_applied_changelog_equals(&outer("LISTAGG(CAST(c AS STRING))"), &expected).await;
}

/// GROUP BY over an append-only input, whose aggregates keep their state in columns
/// indexed by group (`src/operator/group_columns.rs`): COUNT, COUNT(DISTINCT), SUM, MIN
/// and MAX of integers, timestamps and strings, with and without FILTER, over thousands
/// of small groups (the shape of Nexmark q16). The applied changelog equals DataFusion's
/// batch answer for every source batch size, with one aggregate the columns do not cover
/// (`COUNT(DISTINCT)` of a string) and without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_aggregates_in_columns_equal_batch() {
    let aggregates = "COUNT(*), COUNT(*) FILTER (WHERE price < 10000), \
         COUNT(DISTINCT bidder), COUNT(DISTINCT bidder) FILTER (WHERE price >= 10000), \
         COUNT(DISTINCT auction) FILTER (WHERE price >= 1000000), SUM(price), \
         SUM(auction) FILTER (WHERE price < 10000), MIN(price), MAX(bidder), \
         MIN(url), MAX(url) FILTER (WHERE price > 5000), MIN(dateTime), MAX(dateTime)";
    for (keys, extra) in [
        ("channel, bidder % 3", ""),
        ("auction % 10", ""),
        (
            "auction % 10",
            ", CAST(AVG(price) AS BIGINT) AS a, AVG(CAST(bidder + price AS DOUBLE)) AS d",
        ),
        ("auction % 10", ", COUNT(DISTINCT url)"),
    ] {
        let sql = format!("SELECT {keys}, {aggregates}{extra} FROM bid GROUP BY {keys}");
        let expected = batch_answer(&sql).await;
        assert!(expected.len() > 9, "{expected:?}");
        let stream = sql.replace("CAST(AVG(price) AS BIGINT)", "AVG(price)");
        assert_applied_changelog_equals(&stream, &expected).await;
    }
}
