-- Hot items: every 2 seconds of event time, the three auctions with the most bids in the
-- last 10 seconds (a HOP window aggregate, then a windowed Top-N), printed and archived to
-- Parquet under archive/hot_items/dt=.../hour=.../.
--   weir run queries/hot_items.sql                       # 1 M events, about 100 s of event time
--   weir run queries/hot_items.sql --set 'events.num=1000'
CREATE TABLE datagen (
    event_type INT,
    person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    dateTime AS
        CASE
            WHEN event_type = 0 THEN person.dateTime
            WHEN event_type = 1 THEN auction.dateTime
            ELSE bid.dateTime
        END,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH (
    'connector' = 'nexmark',
    'first-event.rate' = '10000',
    'events.num' = '1000000',
    'base-time' = '2026-01-01 00:00:00'
);

CREATE VIEW bid AS
SELECT bid.auction AS auction, bid.bidder AS bidder, bid.price AS price,
       bid.channel AS channel, bid.url AS url, dateTime, bid.extra AS extra
FROM datagen WHERE event_type = 2;

-- The hot items, as a view: printed below, and archived to Parquet.
CREATE VIEW hot_items_v AS
SELECT window_start, window_end, auction, num, rn FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY num DESC, auction) AS rn
    FROM (
        SELECT window_start, window_end, auction, COUNT(*) AS num
        FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
        GROUP BY window_start, window_end, auction
    )
)
WHERE rn <= 3;

CREATE TABLE hot_items (
    window_start TIMESTAMP(3), window_end TIMESTAMP(3), auction BIGINT, num BIGINT, rn BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'hot');

-- Read it back with: weir query "SELECT * FROM 'archive/hot_items' ORDER BY window_start, rn"
CREATE TABLE hot_items_archive (
    window_start TIMESTAMP(3), window_end TIMESTAMP(3), auction BIGINT, num BIGINT, rn BIGINT,
    dt STRING, `hour` STRING
) PARTITIONED BY (dt, `hour`) WITH (
    'connector' = 'filesystem', 'path' = 'archive/hot_items', 'format' = 'parquet',
    'sink.rolling-policy.file-size' = '128MB', 'sink.rolling-policy.rollover-interval' = '1 min',
    'parquet.compression' = 'zstd'
);

INSERT INTO hot_items SELECT * FROM hot_items_v;

INSERT INTO hot_items_archive
SELECT window_start, window_end, auction, num, rn,
       DATE_FORMAT(window_start, 'yyyy-MM-dd'), DATE_FORMAT(window_start, 'HH')
FROM hot_items_v;
