//! Window aggregates over the Nexmark generator's bids (1 M events, 100 s of event time),
//! into a blackhole sink, beside DataFusion's batch `GROUP BY` of the same events held in
//! memory.
//!
//! `cargo bench --bench windows`; criterion reports events/s as "elem/s". The streaming
//! figures include generating the events (on the source's own thread); the batch figure
//! does not (the events are generated once, before timing).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use weir::Session;
use weir::source::nexmark::{NexmarkConfig, NexmarkGenerator, schema};

const EVENTS: u64 = 1_000_000;

const DDL: &str = "
CREATE TABLE datagen WITH ('connector' = 'nexmark', 'events.num' = '1000000',
    'first-event.rate' = '10000', 'base-time' = '0');
CREATE VIEW bid AS SELECT bid.auction AS auction, bid.bidder AS bidder, bid.price AS price,
    bid.channel AS channel, dateTime FROM datagen WHERE event_type = 2;
CREATE TABLE sink WITH ('connector' = 'blackhole');
";

fn window_query(tvf: &str) -> String {
    format!(
        "INSERT INTO sink SELECT auction, window_start, window_end, COUNT(*), MAX(price), SUM(price) \
         FROM TABLE({tvf}) GROUP BY auction, window_start, window_end"
    )
}

fn streaming(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut g = c.benchmark_group("window_aggregate");
    g.throughput(Throughput::Elements(EVENTS));
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
    for (name, tvf) in cases {
        let q = window_query(tvf);
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut s = Session::new();
                    s.run_collect(&format!("{DDL}{q};"))
                        .await
                        .expect("query runs");
                })
            })
        });
    }
    g.finish();
}

fn batch(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut generator = NexmarkGenerator::new(NexmarkConfig {
        events: Some(EVENTS),
        first_event_rate: 10_000.0,
        person_proportion: 1,
        auction_proportion: 3,
        bid_proportion: 46,
        seed: 0,
        base_time: 0,
    });
    let mut batches = vec![];
    while let Ok(Some(b)) = generator.next_batch(8192) {
        batches.push(b);
    }
    let mut config = SessionConfig::new().with_target_partitions(1);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let ctx = SessionContext::new_with_config(config);
    let table = MemTable::try_new(schema(), vec![batches]).expect("mem table");
    ctx.register_table("events", Arc::new(table))
        .expect("register");
    let q = "SELECT bid.auction, date_bin(INTERVAL '10 seconds', bid.dateTime) AS ws, COUNT(*), \
             MAX(bid.price), SUM(bid.price) FROM events WHERE event_type = 2 GROUP BY bid.auction, ws";
    let mut g = c.benchmark_group("window_aggregate");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(10);
    g.bench_function("datafusion_batch_group_by_10s", |b| {
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

criterion_group!(benches, streaming, batch);
criterion_main!(benches);
