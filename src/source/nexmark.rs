//! The Nexmark event generator (`'connector' = 'nexmark'`).
//!
//! Follows the generator of the public Flink Nexmark suite: one event stream of persons,
//! auctions and bids in the proportions 1 : 3 : 46, ids dense and increasing from 1000,
//! synthetic event time advancing by `1e6 / first-event.rate` µs per event, hot sellers,
//! bidders and auctions, 10 000 cached channel URLs. Differences, on purpose:
//!
//! * seeded (`'seed'`, default 0): the same options give the same events, so a run is
//!   reproducible; `'base-time'` (epoch ms or `'2026-01-01 00:00:00'`) fixes event time,
//!   which otherwise starts at the wall clock when the query starts, as in Flink;
//! * the bidder id offset (1000) is added once, not twice;
//! * `extra` padding has the same length distribution but is cut from a pre-generated pool
//!   of random letters, so generation stays far faster than any query over it.
//!
//! Each event draws from its own random state, seeded by the seed and the event's index (as
//! the reference generator seeds each event by its id), so an event is the same whichever
//! task makes it: a job with `parallelism.default` N splits the stream by event index,
//! subtask `k` making events `k`, `k + N`, `k + 2N`, … (see [`Source::split`]), and the N
//! streams together are exactly the one stream of parallelism 1.
//!
//! Output columns (Flink's names and types): `event_type INT`, `person ROW<...>`,
//! `auction ROW<...>`, `bid ROW<...>`; exactly one ROW is non-null per event.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int32Array, Int64Builder, StringBuilder, StructArray, TimestampMillisecondBuilder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use rand::rngs::Xoshiro256PlusPlus as SmallRng;
use rand::{RngExt, SeedableRng};

use super::{Source, SourceContext};
use crate::error::{Result, WeirError};
use crate::sql::options::Options;

pub const OPTIONS: &[&str] = &[
    "events.num",
    "first-event.rate",
    "next-event.rate",
    "person.proportion",
    "auction.proportion",
    "bid.proportion",
    "seed",
    "base-time",
];

const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_ACTIVE_PEOPLE: i64 = 1000;
const NUM_IN_FLIGHT_AUCTIONS: i64 = 100;
const PERSON_ID_LEAD: i64 = 10;
const AUCTION_ID_LEAD: i64 = 10;
const HOT_AUCTION_RATIO: i64 = 100;
const HOT_SELLER_RATIO: i64 = 100;
const HOT_BIDDER_RATIO: i64 = 100;
const CHANNELS_NUMBER: usize = 10_000;
const AVG_PERSON_BYTES: usize = 200;
const AVG_AUCTION_BYTES: usize = 500;
const AVG_BID_BYTES: usize = 100;

const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// The generator's settings, from the table's options.
#[derive(Debug, Clone)]
pub struct NexmarkConfig {
    /// Events to generate; `None` runs until stopped.
    pub events: Option<u64>,
    pub first_event_rate: f64,
    pub person_proportion: i64,
    pub auction_proportion: i64,
    pub bid_proportion: i64,
    pub seed: u64,
    pub base_time: i64,
}

impl NexmarkConfig {
    pub fn from_options(o: &Options) -> Result<Self> {
        let events: u64 = o.parse_or("events.num", 0)?;
        let rate: f64 = o.parse_or("first-event.rate", 10_000.0)?;
        let _next: f64 = o.parse_or("next-event.rate", rate)?;
        let p: i64 = o.parse_or("person.proportion", 1)?;
        let a: i64 = o.parse_or("auction.proportion", 3)?;
        let b: i64 = o.parse_or("bid.proportion", 46)?;
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(WeirError::sql(
                "option 'first-event.rate' must be a positive number of events per second",
                o.pos("first-event.rate"),
            ));
        }
        if p < 1 || a < 1 || b < 0 {
            return Err(WeirError::sql(
                "person.proportion and auction.proportion must be at least 1, bid.proportion at least 0",
                o.pos("person.proportion")
                    .or(o.pos("auction.proportion"))
                    .or(o.pos("bid.proportion")),
            ));
        }
        let base_time = match o.get("base-time") {
            None => now_millis(),
            Some(v) => parse_base_time(v).ok_or_else(|| {
                WeirError::sql(
                    format!("option 'base-time' = '{v}' is neither epoch milliseconds nor a timestamp like '2026-01-01 00:00:00'"),
                    o.pos("base-time"),
                )
            })?,
        };
        Ok(NexmarkConfig {
            events: (events > 0).then_some(events),
            first_event_rate: rate,
            person_proportion: p,
            auction_proportion: a,
            bid_proportion: b,
            seed: o.parse_or("seed", 0)?,
            base_time,
        })
    }

    fn total(&self) -> i64 {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn parse_base_time(v: &str) -> Option<i64> {
    if let Ok(ms) = v.trim().parse::<i64>() {
        return Some(ms);
    }
    use datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
    string_to_timestamp_nanos(v.trim())
        .ok()
        .map(|ns| ns / 1_000_000)
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

pub fn person_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("emailAddress", DataType::Utf8, true),
        Field::new("creditCard", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("dateTime", ts_type(), true),
        Field::new("extra", DataType::Utf8, true),
    ])
}

pub fn auction_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("itemName", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
        Field::new("initialBid", DataType::Int64, true),
        Field::new("reserve", DataType::Int64, true),
        Field::new("dateTime", ts_type(), true),
        Field::new("expires", ts_type(), true),
        Field::new("seller", DataType::Int64, true),
        Field::new("category", DataType::Int64, true),
        Field::new("extra", DataType::Utf8, true),
    ])
}

pub fn bid_fields() -> Fields {
    Fields::from(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Int64, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new("dateTime", ts_type(), true),
        Field::new("extra", DataType::Utf8, true),
    ])
}

/// The generator's native schema, which a table without a column list gets.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_type", DataType::Int32, true),
        Field::new("person", DataType::Struct(person_fields()), true),
        Field::new("auction", DataType::Struct(auction_fields()), true),
        Field::new("bid", DataType::Struct(bid_fields()), true),
    ]))
}

struct PersonCols {
    valid: Vec<bool>,
    id: Int64Builder,
    name: StringBuilder,
    email: StringBuilder,
    card: StringBuilder,
    city: StringBuilder,
    state: StringBuilder,
    date_time: TimestampMillisecondBuilder,
    extra: StringBuilder,
}

struct AuctionCols {
    valid: Vec<bool>,
    id: Int64Builder,
    item_name: StringBuilder,
    description: StringBuilder,
    initial_bid: Int64Builder,
    reserve: Int64Builder,
    date_time: TimestampMillisecondBuilder,
    expires: TimestampMillisecondBuilder,
    seller: Int64Builder,
    category: Int64Builder,
    extra: StringBuilder,
}

struct BidCols {
    valid: Vec<bool>,
    auction: Int64Builder,
    bidder: Int64Builder,
    price: Int64Builder,
    channel: StringBuilder,
    url: StringBuilder,
    date_time: TimestampMillisecondBuilder,
    extra: StringBuilder,
}

fn nulls(valid: &[bool]) -> Option<NullBuffer> {
    let nb = NullBuffer::from(valid.to_vec());
    (nb.null_count() > 0).then_some(nb)
}

/// Deterministic generator of Nexmark events; `next_batch` builds Arrow columns directly.
/// A generation of subtasks' positions: event `i` was sent by it when
/// `i < next[i % next.len()]` (`next`: each old subtask's next event, by residue).
type Generation = Vec<u64>;

fn generation_sent(g: &Generation, i: u64) -> bool {
    let n = g.len() as u64;
    n > 0 && g.get((i % n) as usize).is_some_and(|at| i < *at)
}

#[derive(Clone)]
pub struct NexmarkGenerator {
    cfg: NexmarkConfig,
    rng: SmallRng,
    inter_event_delay_us: f64,
    /// The next event this generator makes (its index in the whole stream).
    next_event: u64,
    /// Events between two of this generator's: the number of subtasks sharing the stream.
    stride: u64,
    /// After a restore at another parallelism: the earlier generations of subtasks whose
    /// sent events reach past this generator's next one, each an exact account of what it
    /// sent (see [`NexmarkGenerator::resume`]); kept in this generator's checkpoints until
    /// it passes them.
    sent: Vec<Generation>,
    channel_cache: Vec<(String, String)>,
    hot_urls: Vec<String>,
    pool: Vec<u8>,
    schema: SchemaRef,
}

impl NexmarkGenerator {
    pub fn new(cfg: NexmarkConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let hot_urls = (0..HOT_CHANNELS.len())
            .map(|_| base_url(&mut rng))
            .collect();
        let channel_cache = (0..CHANNELS_NUMBER)
            .map(|n| {
                let mut url = base_url(&mut rng);
                if rng.random_range(0..10) > 0 {
                    url.push_str(&format!(
                        "&channel_id={}",
                        (n as i32).reverse_bits().unsigned_abs()
                    ));
                }
                (format!("channel-{n}"), url)
            })
            .collect();
        let pool = (0..1 << 16)
            .map(|_| b'a' + rng.random_range(0..26u8))
            .collect();
        NexmarkGenerator {
            inter_event_delay_us: 1e6 / cfg.first_event_rate,
            cfg,
            rng,
            next_event: 0,
            stride: 1,
            sent: vec![],
            channel_cache,
            hot_urls,
            pool,
            schema: schema(),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// This generator as subtask `k` of `n` sharing the stream: it makes events `k`,
    /// `k + n`, `k + 2n`, …
    pub fn subtask(mut self, k: u64, n: u64) -> Self {
        self.next_event = k;
        self.stride = n.max(1);
        self
    }

    /// Events still to generate (`u64::MAX` when unbounded).
    pub fn remaining(&self) -> u64 {
        match self.cfg.events {
            Some(n) => n.saturating_sub(self.next_event).div_ceil(self.stride),
            None => u64::MAX,
        }
    }

    /// The random state of event `n`: one per event, from the seed and the index.
    fn rng_for_event(&self, n: u64) -> SmallRng {
        SmallRng::seed_from_u64(n ^ self.cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Moves to the next event not sent yet; false when the configured count is reached.
    fn advance_to_unsent(&mut self) -> bool {
        if !self.sent.is_empty() {
            while self
                .sent
                .iter()
                .any(|g| generation_sent(g, self.next_event))
            {
                self.next_event += self.stride;
            }
            // A generation none of whose sent events lie ahead no longer matters.
            let at = self.next_event;
            self.sent
                .retain(|g| g.iter().copied().max().is_some_and(|m| m > at));
        }
        self.cfg.events.is_none_or(|n| self.next_event < n)
    }

    /// Positions subtask `k` of `n` after a restore. `own` holds the saved positions
    /// (`(next event, stride)`, stride = that run's number of subtasks) — only its own when
    /// the split is the same, else one per old subtask, which must cover every residue
    /// once — and `inherited` the earlier generations the old subtasks still carried. It
    /// resumes at the first of its events some old subtask had not sent, and skips every
    /// event any generation sent. Errors: positions that leave a residue out or name one
    /// twice.
    pub fn resume(
        &mut self,
        k: u64,
        n: u64,
        own: &[(u64, u64)],
        inherited: Vec<Generation>,
    ) -> Result<()> {
        let bad = || {
            WeirError::user(
                "the nexmark generator's positions in the checkpoint do not cover the stream once",
            )
        };
        let Some(&(_, old_stride)) = own.first() else {
            return Err(bad());
        };
        self.stride = n.max(1);
        self.sent = inherited;
        // The same split as before: this subtask's own position.
        if old_stride == self.stride
            && let Some(&(at, _)) = own
                .iter()
                .find(|(at, s)| *s == self.stride && at % self.stride == k)
        {
            self.next_event = at;
            return Ok(());
        }
        // Position `r` is the old subtask making events ≡ r (mod old stride).
        let mut next = vec![None; old_stride as usize];
        for &(at, stride) in own {
            if stride != old_stride || stride == 0 {
                return Err(bad());
            }
            let slot = next.get_mut((at % stride) as usize).ok_or_else(bad)?;
            if slot.replace(at).is_some() {
                return Err(bad());
            }
        }
        let next: Generation = next.into_iter().collect::<Option<_>>().ok_or_else(bad)?;
        let low = next.iter().copied().min().unwrap_or(0);
        // The first of this subtask's events at or after `low` (every event below `low` was
        // sent); those after it the old subtasks sent are skipped.
        self.next_event = low + (k + self.stride - low % self.stride) % self.stride;
        self.sent.push(next);
        Ok(())
    }

    fn timestamp_for_event(&self, n: u64) -> i64 {
        self.cfg.base_time + ((n as f64 * self.inter_event_delay_us) as i64) / 1000
    }

    fn last_base0_person_id(&self, event_id: i64) -> i64 {
        let total = self.cfg.total();
        let epoch = event_id / total;
        let offset = (event_id % total).min(self.cfg.person_proportion - 1);
        epoch * self.cfg.person_proportion + offset
    }

    fn last_base0_auction_id(&self, event_id: i64) -> i64 {
        let (p, a) = (self.cfg.person_proportion, self.cfg.auction_proportion);
        let total = self.cfg.total();
        let mut epoch = event_id / total;
        let mut offset = event_id % total;
        if offset < p {
            epoch -= 1;
            offset = a - 1;
        } else if offset >= p + a {
            offset = a - 1;
        } else {
            offset -= p;
        }
        epoch * a + offset
    }

    fn next_base0_person_id(&mut self, event_id: i64) -> i64 {
        let num_people = self.last_base0_person_id(event_id) + 1;
        let active = num_people.min(NUM_ACTIVE_PEOPLE);
        let n = self.rng.random_range(0..active + PERSON_ID_LEAD);
        num_people - active + n
    }

    fn next_base0_auction_id(&mut self, event_id: i64) -> i64 {
        let max_auction = self.last_base0_auction_id(event_id);
        let min_auction = (max_auction - NUM_IN_FLIGHT_AUCTIONS).max(0);
        min_auction
            + self
                .rng
                .random_range(0..max_auction - min_auction + 1 + AUCTION_ID_LEAD)
    }

    fn next_price(&mut self) -> i64 {
        (10f64.powf(self.rng.random::<f64>() * 6.0) * 100.0).round() as i64
    }

    fn next_extra(&mut self, current: usize, desired_avg: usize, out: &mut StringBuilder) {
        if current > desired_avg {
            out.append_value("");
            return;
        }
        let avg = desired_avg - current;
        let delta = (avg as f64 * 0.2).round() as usize;
        let min = avg - delta;
        let size = if delta == 0 {
            min
        } else {
            min + self.rng.random_range(0..2 * delta)
        };
        let size = size.min(self.pool.len());
        let start = self.rng.random_range(0..=self.pool.len() - size);
        // The pool holds only ASCII letters, so any slice of it is valid UTF-8.
        let s = std::str::from_utf8(&self.pool[start..start + size]).unwrap_or("");
        out.append_value(s);
    }

    /// Generates up to `max_rows` events; `None` when the configured count is reached.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        if !self.advance_to_unsent() {
            return Ok(None);
        }
        let n = (self.remaining().min(max_rows as u64)) as usize;
        if n == 0 {
            return Ok(None);
        }
        let mut event_type = Vec::with_capacity(n);
        let mut person = PersonCols {
            valid: Vec::with_capacity(n),
            id: Int64Builder::with_capacity(n),
            name: StringBuilder::with_capacity(n, n),
            email: StringBuilder::with_capacity(n, n),
            card: StringBuilder::with_capacity(n, n),
            city: StringBuilder::with_capacity(n, n),
            state: StringBuilder::with_capacity(n, n),
            date_time: TimestampMillisecondBuilder::with_capacity(n),
            extra: StringBuilder::with_capacity(n, n),
        };
        let mut auction = AuctionCols {
            valid: Vec::with_capacity(n),
            id: Int64Builder::with_capacity(n),
            item_name: StringBuilder::with_capacity(n, n),
            description: StringBuilder::with_capacity(n, n),
            initial_bid: Int64Builder::with_capacity(n),
            reserve: Int64Builder::with_capacity(n),
            date_time: TimestampMillisecondBuilder::with_capacity(n),
            expires: TimestampMillisecondBuilder::with_capacity(n),
            seller: Int64Builder::with_capacity(n),
            category: Int64Builder::with_capacity(n),
            extra: StringBuilder::with_capacity(n, n),
        };
        let mut bid = BidCols {
            valid: Vec::with_capacity(n),
            auction: Int64Builder::with_capacity(n),
            bidder: Int64Builder::with_capacity(n),
            price: Int64Builder::with_capacity(n),
            channel: StringBuilder::with_capacity(n, n * 8),
            url: StringBuilder::with_capacity(n, n * 80),
            date_time: TimestampMillisecondBuilder::with_capacity(n),
            extra: StringBuilder::with_capacity(n, n * AVG_BID_BYTES),
        };
        let total = self.cfg.total();
        let mut scratch = String::new();
        for _ in 0..n {
            if !self.advance_to_unsent() {
                break;
            }
            let event_number = self.next_event;
            self.next_event += self.stride;
            self.rng = self.rng_for_event(event_number);
            let event_id = event_number as i64;
            let ts = self.timestamp_for_event(event_number);
            let rem = event_id % total;
            let kind = if rem < self.cfg.person_proportion {
                0
            } else if rem < self.cfg.person_proportion + self.cfg.auction_proportion {
                1
            } else {
                2
            };
            event_type.push(kind);
            person.valid.push(kind == 0);
            auction.valid.push(kind == 1);
            bid.valid.push(kind == 2);
            if kind == 0 {
                self.person(event_id, ts, &mut person, &mut scratch);
            } else {
                person_placeholder(&mut person);
            }
            if kind == 1 {
                self.auction(event_id, event_number, ts, &mut auction, &mut scratch);
            } else {
                auction_placeholder(&mut auction);
            }
            if kind == 2 {
                self.bid(event_id, ts, &mut bid);
            } else {
                bid_placeholder(&mut bid);
            }
        }
        let person_arr = StructArray::try_new(
            person_fields(),
            vec![
                Arc::new(person.id.finish()) as ArrayRef,
                Arc::new(person.name.finish()),
                Arc::new(person.email.finish()),
                Arc::new(person.card.finish()),
                Arc::new(person.city.finish()),
                Arc::new(person.state.finish()),
                Arc::new(person.date_time.finish()),
                Arc::new(person.extra.finish()),
            ],
            nulls(&person.valid),
        )?;
        let auction_arr = StructArray::try_new(
            auction_fields(),
            vec![
                Arc::new(auction.id.finish()) as ArrayRef,
                Arc::new(auction.item_name.finish()),
                Arc::new(auction.description.finish()),
                Arc::new(auction.initial_bid.finish()),
                Arc::new(auction.reserve.finish()),
                Arc::new(auction.date_time.finish()),
                Arc::new(auction.expires.finish()),
                Arc::new(auction.seller.finish()),
                Arc::new(auction.category.finish()),
                Arc::new(auction.extra.finish()),
            ],
            nulls(&auction.valid),
        )?;
        let bid_arr = StructArray::try_new(
            bid_fields(),
            vec![
                Arc::new(bid.auction.finish()) as ArrayRef,
                Arc::new(bid.bidder.finish()),
                Arc::new(bid.price.finish()),
                Arc::new(bid.channel.finish()),
                Arc::new(bid.url.finish()),
                Arc::new(bid.date_time.finish()),
                Arc::new(bid.extra.finish()),
            ],
            nulls(&bid.valid),
        )?;
        Ok(Some(RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(Int32Array::from(event_type)),
                Arc::new(person_arr),
                Arc::new(auction_arr),
                Arc::new(bid_arr),
            ],
        )?))
    }

    fn person(&mut self, event_id: i64, ts: i64, c: &mut PersonCols, scratch: &mut String) {
        c.id.append_value(self.last_base0_person_id(event_id) + FIRST_PERSON_ID);
        let first = FIRST_NAMES[self.rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())];
        scratch.clear();
        scratch.push_str(first);
        scratch.push(' ');
        scratch.push_str(last);
        let mut size = 8 + scratch.len();
        c.name.append_value(&*scratch);
        scratch.clear();
        next_string(&mut self.rng, 7, scratch);
        scratch.push('@');
        next_string(&mut self.rng, 5, scratch);
        scratch.push_str(".com");
        size += scratch.len();
        c.email.append_value(&*scratch);
        scratch.clear();
        for i in 0..4 {
            if i > 0 {
                scratch.push(' ');
            }
            scratch.push_str(&format!("{:04}", self.rng.random_range(0..10_000)));
        }
        size += scratch.len();
        c.card.append_value(&*scratch);
        let city = US_CITIES[self.rng.random_range(0..US_CITIES.len())];
        let state = US_STATES[self.rng.random_range(0..US_STATES.len())];
        size += city.len() + state.len();
        c.city.append_value(city);
        c.state.append_value(state);
        c.date_time.append_value(ts);
        self.next_extra(size, AVG_PERSON_BYTES, &mut c.extra);
    }

    fn auction(
        &mut self,
        event_id: i64,
        event_number: u64,
        ts: i64,
        c: &mut AuctionCols,
        scratch: &mut String,
    ) {
        let id = self.last_base0_auction_id(event_id) + FIRST_AUCTION_ID;
        let seller = if self.rng.random_range(0..4) > 0 {
            (self.last_base0_person_id(event_id) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
        } else {
            self.next_base0_person_id(event_id)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + self.rng.random_range(0..5);
        let initial_bid = self.next_price();
        scratch.clear();
        next_string(&mut self.rng, 20, scratch);
        let mut size = scratch.len();
        c.item_name.append_value(&*scratch);
        scratch.clear();
        next_string(&mut self.rng, 100, scratch);
        size += scratch.len();
        c.description.append_value(&*scratch);
        let reserve = initial_bid + self.next_price();
        // Auction length: uniform with a mean of the time the next in-flight auctions take.
        let num_events_for_auctions =
            NUM_IN_FLIGHT_AUCTIONS * self.cfg.total() / self.cfg.auction_proportion;
        let horizon = self.timestamp_for_event(event_number + num_events_for_auctions as u64) - ts;
        let length = 1 + self.rng.random_range(0..(horizon * 2).max(1));
        c.id.append_value(id);
        c.initial_bid.append_value(initial_bid);
        c.reserve.append_value(reserve);
        c.date_time.append_value(ts);
        c.expires.append_value(ts + length);
        c.seller.append_value(seller);
        c.category.append_value(category);
        size += 8 * 5;
        self.next_extra(size, AVG_AUCTION_BYTES, &mut c.extra);
    }

    fn bid(&mut self, event_id: i64, ts: i64, c: &mut BidCols) {
        let auction = if self.rng.random_range(0..2) > 0 {
            (self.last_base0_auction_id(event_id) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
        } else {
            self.next_base0_auction_id(event_id)
        } + FIRST_AUCTION_ID;
        let bidder = if self.rng.random_range(0..4) > 0 {
            (self.last_base0_person_id(event_id) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
        } else {
            self.next_base0_person_id(event_id)
        } + FIRST_PERSON_ID;
        let price = self.next_price();
        if self.rng.random_range(0..2) > 0 {
            let i = self.rng.random_range(0..HOT_CHANNELS.len());
            c.channel.append_value(HOT_CHANNELS[i]);
            c.url.append_value(&self.hot_urls[i]);
        } else {
            let (ch, url) = &self.channel_cache[self.rng.random_range(0..CHANNELS_NUMBER)];
            c.channel.append_value(ch);
            c.url.append_value(url);
        }
        c.auction.append_value(auction);
        c.bidder.append_value(bidder);
        c.price.append_value(price);
        c.date_time.append_value(ts);
        self.next_extra(32, AVG_BID_BYTES, &mut c.extra);
    }
}

fn person_placeholder(c: &mut PersonCols) {
    c.id.append_null();
    c.name.append_null();
    c.email.append_null();
    c.card.append_null();
    c.city.append_null();
    c.state.append_null();
    c.date_time.append_null();
    c.extra.append_null();
}

fn auction_placeholder(c: &mut AuctionCols) {
    c.id.append_null();
    c.item_name.append_null();
    c.description.append_null();
    c.initial_bid.append_null();
    c.reserve.append_null();
    c.date_time.append_null();
    c.expires.append_null();
    c.seller.append_null();
    c.category.append_null();
    c.extra.append_null();
}

fn bid_placeholder(c: &mut BidCols) {
    c.auction.append_null();
    c.bidder.append_null();
    c.price.append_null();
    c.channel.append_null();
    c.url.append_null();
    c.date_time.append_null();
    c.extra.append_null();
}

/// Nexmark's `nextString`: 3..max letters, about 1 in 13 a space, trimmed.
fn next_string(rng: &mut SmallRng, max: usize, out: &mut String) {
    let len = 3 + rng.random_range(0..max - 3);
    let start = out.len();
    for _ in 0..len {
        if rng.random_range(0..13) == 0 {
            out.push(' ');
        } else {
            out.push((b'a' + rng.random_range(0..26u8)) as char);
        }
    }
    let trimmed = out[start..].trim().to_string();
    out.truncate(start);
    out.push_str(&trimmed);
}

fn base_url(rng: &mut SmallRng) -> String {
    let mut s = String::from("https://www.nexmark.com/");
    for i in 0..3 {
        if i > 0 {
            s.push('/');
        }
        let mut part = String::new();
        next_string(rng, 5, &mut part);
        s.push_str(&part.replace(' ', "_"));
    }
    s.push_str("/item.htm?query=1");
    s
}

/// The `nexmark` source: runs the generator, `batch_size` events at a time.
pub struct NexmarkSource {
    generator: NexmarkGenerator,
    batch_size: usize,
    /// Selects and casts the generator's columns to the table's declared physical columns.
    adapt: super::filesystem::SchemaAdapter,
    /// This source as subtask `.0` of `.1` sharing the stream.
    subtask: (u64, u64),
}

impl NexmarkSource {
    pub fn new(cfg: NexmarkConfig, physical: SchemaRef, batch_size: usize) -> Result<Self> {
        let generator = NexmarkGenerator::new(cfg);
        let adapt =
            super::filesystem::SchemaAdapter::new(&generator.schema(), physical, "nexmark")?;
        Ok(NexmarkSource {
            generator,
            batch_size,
            adapt,
            subtask: (0, 1),
        })
    }
}

impl Source for NexmarkSource {
    fn kind(&self) -> &'static str {
        "nexmark"
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// Subtask `k` makes events `k`, `k + n`, `k + 2n`, … of the one stream, each the same
    /// event as at parallelism 1 (one random state per event): the event-time order within
    /// each subtask is the stream's.
    fn split(&self, n: usize) -> Option<Vec<Box<dyn Source>>> {
        let n = n.max(1) as u64;
        let parts = (0..n)
            .map(|k| {
                Box::new(NexmarkSource {
                    generator: self.generator.clone().subtask(k, n),
                    batch_size: self.batch_size,
                    adapt: self.adapt.clone(),
                    subtask: (k, n),
                }) as Box<dyn Source>
            })
            .collect();
        Some(parts)
    }

    /// Its events' times grow with their index, in every subtask's stride as in the stream.
    fn split_keeps_time_order(&self) -> bool {
        true
    }

    /// Rows of `next_event`, `stride` (UInt64 both) and `generation` (UInt32): first this
    /// subtask's position (generation 0: the next event it makes, and the number of
    /// subtasks sharing the stream), then, after a restore at another parallelism, each
    /// earlier generation it still skips for (generation `j` ≥ 1: one row per old subtask,
    /// by residue, `stride` their number).
    fn snapshot(&self) -> Result<Vec<RecordBatch>> {
        use datafusion::arrow::array::{UInt32Array, UInt64Array};
        let g = &self.generator;
        let mut next = vec![g.next_event];
        let mut stride = vec![g.stride];
        let mut generation = vec![0u32];
        for (j, gen_) in g.sent.iter().enumerate() {
            next.extend(gen_.iter().copied());
            stride.extend(std::iter::repeat_n(gen_.len() as u64, gen_.len()));
            generation.extend(std::iter::repeat_n(j as u32 + 1, gen_.len()));
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("next_event", DataType::UInt64, false),
            Field::new("stride", DataType::UInt64, false),
            Field::new("generation", DataType::UInt32, false),
        ]));
        Ok(vec![RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from(next)),
                Arc::new(UInt64Array::from(stride)),
                Arc::new(UInt32Array::from(generation)),
            ],
        )?])
    }

    /// Takes the states of the old subtasks — its own, or every one's after a restore at
    /// another parallelism (see [`NexmarkGenerator::resume`]). A state of the generator of
    /// earlier versions (one random sequence for the whole stream, `rng`) is refused: the
    /// events after its position would not be the ones it promised.
    fn restore(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{UInt32Type, UInt64Type};
        let bad =
            || WeirError::user("the nexmark generator's state in the checkpoint is malformed");
        let mut own = vec![];
        let mut inherited: Vec<Generation> = vec![];
        for b in &state {
            if b.column_by_name("rng").is_some() {
                return Err(WeirError::user(
                    "the checkpoint holds the position of an earlier version's nexmark generator, whose events differ from this one's",
                )
                .with_hint("start over with --from-scratch, or SET 'pipeline.name' to a new name"));
            }
            let column = |name: &str| {
                b.column_by_name(name)
                    .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                    .ok_or_else(bad)
            };
            let (next, stride) = (column("next_event")?, column("stride")?);
            let generation = b
                .column_by_name("generation")
                .and_then(|c| c.as_primitive_opt::<UInt32Type>())
                .ok_or_else(bad)?;
            let mut gens: std::collections::BTreeMap<u32, Generation> = Default::default();
            for r in 0..b.num_rows() {
                match generation.value(r) {
                    0 => own.push((next.value(r), stride.value(r))),
                    j => gens.entry(j).or_default().push(next.value(r)),
                }
            }
            for g in gens.into_values() {
                if !inherited.contains(&g) {
                    inherited.push(g);
                }
            }
        }
        let (k, n) = self.subtask;
        self.generator.resume(k, n, &own, inherited)
    }

    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        loop {
            // Asked before generating: a batch generated is a batch sent, so the position
            // a checkpoint saves never skips rows.
            if ctx.should_stop() {
                ctx.finish(self, false)?;
                return Ok(());
            }
            let Some(batch) = self.generator.next_batch(self.batch_size)? else {
                break;
            };
            if !ctx.emit(self.adapt.adapt(batch)?)? {
                ctx.finish(self, false)?;
                return Ok(());
            }
            ctx.checkpoint(self)?;
        }
        ctx.finish(self, true)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;

    fn cfg(events: u64, seed: u64) -> NexmarkConfig {
        NexmarkConfig {
            events: Some(events),
            first_event_rate: 10_000.0,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            seed,
            base_time: 1_700_000_000_000,
        }
    }

    #[test]
    fn mix_ids_and_time_follow_the_spec() {
        let mut g = NexmarkGenerator::new(cfg(100, 1));
        let b = g.next_batch(1000).expect("gen").expect("some");
        assert_eq!(b.num_rows(), 100);
        assert!(g.next_batch(10).expect("gen").is_none());
        let et = b
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        // Each epoch of 50 events: P, A, A, A, then 46 bids.
        assert_eq!(&et.values()[..5], &[0, 1, 1, 1, 2]);
        assert_eq!(et.values().iter().filter(|v| **v == 2).count(), 92);
        let person = b.column(1).as_struct();
        assert!(person.is_valid(0) && person.is_null(1));
        let pid = person.column(0).as_primitive::<Int64Type>();
        assert_eq!(pid.value(0), 1000);
        assert_eq!(pid.value(50), 1001);
        let auction = b.column(2).as_struct();
        let aid = auction.column(0).as_primitive::<Int64Type>();
        assert_eq!(
            (aid.value(1), aid.value(2), aid.value(3)),
            (1000, 1001, 1002)
        );
        let bid = b.column(3).as_struct();
        let bts = bid
            .column(5)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
        // 10 000 events/s: event 99 is at 9.9 ms.
        assert_eq!(bts.value(99), 1_700_000_000_000 + 9);
        let price = bid.column(2).as_primitive::<Int64Type>();
        for i in 4..50 {
            assert!((100..=100_000_000).contains(&price.value(i)));
        }
    }

    #[test]
    fn seeded_runs_repeat_and_batching_does_not_matter() {
        let mut a = NexmarkGenerator::new(cfg(1000, 7));
        let mut b = NexmarkGenerator::new(cfg(1000, 7));
        let whole = a.next_batch(1000).expect("gen").expect("some");
        let mut parts = vec![];
        while let Some(p) = b.next_batch(77).expect("gen") {
            parts.push(p);
        }
        let joined =
            datafusion::arrow::compute::concat_batches(&whole.schema(), &parts).expect("concat");
        assert_eq!(whole, joined);
    }

    /// All of a generator's events, in one batch.
    fn drain(mut g: NexmarkGenerator, batch: usize) -> RecordBatch {
        let mut parts = vec![];
        while let Some(p) = g.next_batch(batch).expect("gen") {
            parts.push(p);
        }
        datafusion::arrow::compute::concat_batches(&schema(), &parts).expect("concat")
    }

    #[test]
    fn subtasks_make_the_one_stream_between_them() {
        let whole = drain(NexmarkGenerator::new(cfg(1000, 3)), 1000);
        for n in [2u64, 3, 7] {
            let parts: Vec<RecordBatch> = (0..n)
                .map(|k| drain(NexmarkGenerator::new(cfg(1000, 3)).subtask(k, n), 64))
                .collect();
            assert_eq!(parts.iter().map(|p| p.num_rows()).sum::<usize>(), 1000);
            for i in 0..1000usize {
                let part = &parts[i % n as usize];
                assert_eq!(
                    whole.slice(i, 1),
                    part.slice(i / n as usize, 1),
                    "event {i} of {n} subtasks"
                );
            }
        }
    }

    /// Three subtasks stopped at different events, resumed as two: each event the three
    /// had not sent comes once, and none they had sent.
    #[test]
    fn a_restore_at_another_parallelism_sends_each_event_once() {
        let whole = drain(NexmarkGenerator::new(cfg(500, 9)), 500);
        // Old subtask r of 3 had sent its events below old[r].
        let old = [(15u64, 3u64), (28, 3), (8, 3)];
        let sent = |i: u64| i < old[(i % 3) as usize].0;
        for n in [1u64, 2, 4] {
            for k in 0..n {
                let mut g = NexmarkGenerator::new(cfg(500, 9));
                g.resume(k, n, &old, vec![]).expect("resume");
                let got = drain(g, 5);
                let want: Vec<usize> = (0..500u64)
                    .filter(|i| i % n == k && !sent(*i))
                    .map(|i| i as usize)
                    .collect();
                assert_eq!(got.num_rows(), want.len(), "subtask {k} of {n}");
                for (row, i) in want.iter().enumerate() {
                    assert_eq!(got.slice(row, 1), whole.slice(*i, 1), "subtask {k} of {n}");
                }
            }
        }
        // Positions that leave a residue out are refused, not guessed.
        let mut g = NexmarkGenerator::new(cfg(500, 9));
        assert!(g.resume(0, 2, &[(15, 3), (28, 3)], vec![]).is_err());
        assert!(
            g.resume(0, 2, &[(15, 3), (28, 3), (8, 3), (18, 3)], vec![])
                .is_err()
        );
    }

    /// Each row as text, to compare events across batches.
    fn rows(b: &RecordBatch) -> Vec<String> {
        use datafusion::arrow::util::display::array_value_to_string;
        (0..b.num_rows())
            .map(|r| {
                b.columns()
                    .iter()
                    .map(|c| array_value_to_string(c, r).expect("text"))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    fn source(k: u64, n: u64) -> NexmarkSource {
        let mut s = NexmarkSource::new(cfg(500, 9), schema(), 3).expect("source");
        s.generator = s.generator.clone().subtask(k, n);
        s.subtask = (k, n);
        s
    }

    /// Restored from three subtasks into two, checkpointed while still skipping what the
    /// three sent, and restored again into three: every event comes exactly once over the
    /// runs (regression: the second checkpoint forgot the first restore's skips).
    #[test]
    fn a_second_restore_remembers_what_the_first_skipped() {
        let whole = rows(&drain(NexmarkGenerator::new(cfg(500, 9)), 500));
        let mut seen: Vec<String> = vec![];
        // Run A: three subtasks, stopped at different events.
        let mut a_states = vec![];
        for (r, stop) in [(0u64, 15u64), (1, 28), (2, 8)] {
            let mut s = source(r, 3);
            while s.generator.next_event < stop {
                let b = s.generator.next_batch(1).expect("gen").expect("some");
                seen.extend(rows(&b));
            }
            a_states.extend(s.snapshot().expect("snapshot"));
        }
        // Run B: two subtasks, a few batches each.
        let mut b_states = vec![];
        for (k, batches) in [(0u64, 2), (1, 5)] {
            let mut s = source(k, 2);
            s.restore(a_states.clone()).expect("restore");
            for _ in 0..batches {
                let b = s.generator.next_batch(3).expect("gen").expect("some");
                seen.extend(rows(&b));
            }
            b_states.extend(s.snapshot().expect("snapshot"));
        }
        // Run C: three subtasks, to the end.
        for k in 0..3 {
            let mut s = source(k, 3);
            s.restore(b_states.clone()).expect("restore");
            while let Some(b) = s.generator.next_batch(7).expect("gen") {
                seen.extend(rows(&b));
            }
        }
        let mut want = whole.clone();
        want.sort();
        seen.sort();
        assert_eq!(seen.len(), want.len());
        assert!(seen == want, "some event came twice or never");
    }

    /// A checkpoint of the earlier generator (one random sequence, `rng`) is refused.
    #[test]
    fn an_earlier_versions_position_is_refused() {
        use datafusion::arrow::array::{StringArray, UInt64Array};
        let old = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("next_event", DataType::UInt64, false),
                Field::new("rng", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(UInt64Array::from(vec![10u64])),
                Arc::new(StringArray::from(vec!["{}"])),
            ],
        )
        .expect("batch");
        let err = source(0, 1).restore(vec![old]).expect_err("refused");
        assert!(err.to_string().contains("earlier version"), "{err}");
    }
}
