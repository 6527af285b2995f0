//! Window aggregates over Nexmark bids held in memory (the bids of 1 M generated events,
//! 100 s of event time), streamed through Weir's window operators into a blackhole sink,
//! beside DataFusion's batch `GROUP BY` of the very same batches.
//!
//! `cargo bench --bench windows`; criterion reports bids/s as "elem/s".

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use weir::Session;
use weir::source::nexmark::{NexmarkConfig, NexmarkGenerator, schema};

const EVENTS: u64 = 1_000_000;

fn config() -> SessionConfig {
    let mut config = SessionConfig::new().with_target_partitions(1);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    config
}

/// The bids of the generator's first `EVENTS` events, flattened, in batches of 8192.
fn bids(rt: &tokio::runtime::Runtime) -> Vec<RecordBatch> {
    let mut generator = NexmarkGenerator::new(NexmarkConfig {
        events: Some(EVENTS),
        first_event_rate: 10_000.0,
        person_proportion: 1,
        auction_proportion: 3,
        bid_proportion: 46,
        seed: 0,
        base_time: 0,
    });
    let mut events = vec![];
    while let Ok(Some(b)) = generator.next_batch(8192) {
        events.push(b);
    }
    let ctx = SessionContext::new_with_config(config());
    let table = MemTable::try_new(schema(), vec![events]).expect("mem table");
    ctx.register_table("events", Arc::new(table))
        .expect("register");
    rt.block_on(async {
        ctx.sql(
            "SELECT bid.auction AS auction, bid.bidder AS bidder, bid.price AS price, \
             bid.channel AS channel, bid.dateTime AS dateTime FROM events WHERE event_type = 2",
        )
        .await
        .expect("plan")
        .collect()
        .await
        .expect("flatten bids")
    })
}

fn windows(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bids = bids(&rt);
    let rows: usize = bids.iter().map(|b| b.num_rows()).sum();
    let bid_schema = bids[0].schema();
    let mut g = c.benchmark_group("window_aggregate");
    g.throughput(Throughput::Elements(rows as u64));
    g.sample_size(10);
    let cases = [
        (
            "tumble_10s",
            "TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)",
        ),
        (
            "hop_60s_slide_10s",
            "HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND, INTERVAL '60' SECOND)",
        ),
        (
            "hop_60s_slide_1s",
            "HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '1' SECOND, INTERVAL '60' SECOND)",
        ),
    ];
    let mut queries: Vec<(&str, String)> = vec![(
        "no_window_passthrough",
        "CREATE TABLE sink WITH ('connector' = 'blackhole');\n\
         INSERT INTO sink SELECT auction, price, dateTime FROM bid;"
            .to_string(),
    )];
    for (name, tvf) in cases {
        queries.push((
            name,
            format!(
                "CREATE TABLE sink WITH ('connector' = 'blackhole');\n\
                 INSERT INTO sink SELECT auction, window_start, window_end, COUNT(*), MAX(price), SUM(price) \
                 FROM TABLE({tvf}) GROUP BY auction, window_start, window_end;"
            ),
        ));
    }
    g.bench_function("startup_one_batch", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut s = Session::new();
                s.register_batches(
                    "bid",
                    bid_schema.clone(),
                    bids[..1].to_vec(),
                    Some(("dateTime", "dateTime - INTERVAL '4' SECOND")),
                )
                .expect("register bids");
                s.run_collect(&queries[0].1).await.expect("query runs");
            })
        })
    });
    for (name, slide) in [
        ("hop_60s_slide_10s_100_keys", 10),
        ("hop_60s_slide_1s_100_keys", 1),
    ] {
        queries.push((
            name,
            format!(
                "CREATE TABLE sink WITH ('connector' = 'blackhole');\n\
                 INSERT INTO sink SELECT auction % 100, window_start, window_end, COUNT(*), MAX(price), SUM(price) \
                 FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '{slide}' SECOND, INTERVAL '60' SECOND)) \
                 GROUP BY auction % 100, window_start, window_end;"
            ),
        ));
    }
    for (name, q) in queries {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut s = Session::new();
                    s.register_batches(
                        "bid",
                        bid_schema.clone(),
                        bids.clone(),
                        Some(("dateTime", "dateTime - INTERVAL '4' SECOND")),
                    )
                    .expect("register bids");
                    s.run_collect(&q).await.expect("query runs");
                })
            })
        });
    }

    let ctx = SessionContext::new_with_config(config());
    let table = MemTable::try_new(bid_schema.clone(), vec![bids.clone()]).expect("mem table");
    ctx.register_table("bid", Arc::new(table))
        .expect("register");
    let q = "SELECT auction, date_bin(INTERVAL '10 seconds', dateTime) AS ws, COUNT(*), \
             MAX(price), SUM(price) FROM bid GROUP BY auction, ws";
    g.bench_function("datafusion_batch_tumble_10s", |b| {
        b.iter(|| {
            rt.block_on(async {
                ctx.sql(q)
                    .await
                    .expect("plan")
                    .collect()
                    .await
                    .expect("run")
            })
        })
    });
    g.finish();
}

criterion_group!(benches, windows);
criterion_main!(benches);
