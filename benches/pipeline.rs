//! Throughput of the Nexmark generator alone, and of stateless standing queries over it
//! (Nexmark q0 pass-through, q1 projection, q2 filter) into a blackhole sink.
//!
//! `cargo bench --bench pipeline`; each iteration processes `EVENTS` events, and criterion
//! reports events/s as "elem/s".

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weir::Session;
use weir::source::nexmark::{NexmarkConfig, NexmarkGenerator};

const EVENTS: u64 = 1_000_000;

const DDL: &str = "
CREATE TABLE datagen (
    event_type INT,
    person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    dateTime AS CASE WHEN event_type = 0 THEN person.dateTime WHEN event_type = 1 THEN auction.dateTime ELSE bid.dateTime END,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events.num' = '1000000', 'first-event.rate' = '10000000', 'base-time' = '0');
CREATE VIEW bid AS SELECT bid.auction AS auction, bid.bidder AS bidder, bid.price AS price,
    bid.channel AS channel, bid.url AS url, dateTime, bid.extra AS extra FROM datagen WHERE event_type = 2;
CREATE TABLE sink WITH ('connector' = 'blackhole');
";

fn generator(c: &mut Criterion) {
    let mut g = c.benchmark_group("nexmark_generator");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(10);
    g.bench_function("generate_1M_events", |b| {
        b.iter(|| {
            let mut gen_ = NexmarkGenerator::new(NexmarkConfig {
                events: Some(EVENTS),
                first_event_rate: 10_000_000.0,
                person_proportion: 1,
                auction_proportion: 3,
                bid_proportion: 46,
                seed: 1,
                base_time: 0,
            });
            let mut rows = 0;
            while let Ok(Some(batch)) = gen_.next_batch(8192) {
                rows += batch.num_rows();
            }
            assert_eq!(rows as u64, EVENTS);
        })
    });
    g.finish();
}

fn queries(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut g = c.benchmark_group("stateless_query");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(10);
    let cases = [
        (
            "q0_passthrough",
            "INSERT INTO sink SELECT auction, bidder, price, dateTime, extra FROM bid",
        ),
        (
            "q1_currency",
            "INSERT INTO sink SELECT auction, bidder, 0.908 * price AS price, dateTime, extra FROM bid",
        ),
        (
            "q2_selection",
            "INSERT INTO sink SELECT auction, price FROM bid WHERE auction % 123 = 0",
        ),
    ];
    for (name, q) in cases {
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

criterion_group!(benches, generator, queries);
criterion_main!(benches);
