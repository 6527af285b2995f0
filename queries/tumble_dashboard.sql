-- A dashboard: per 10-second tumbling window and channel (the big four by name, the rest as
-- 'other'), the number of bids, distinct bidders, volume and top price.
--   weir run queries/tumble_dashboard.sql --set 'events.num=200000'
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
    'events.num' = '100000',
    'base-time' = '2026-01-01 00:00:00'
);

CREATE VIEW bid AS
SELECT bid.auction AS auction, bid.bidder AS bidder, bid.price AS price,
       bid.channel AS channel, bid.url AS url, dateTime, bid.extra AS extra
FROM datagen WHERE event_type = 2;

CREATE TABLE dashboard (
    window_start TIMESTAMP(3), channel VARCHAR, bids BIGINT, bidders BIGINT, volume BIGINT, top_price BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'dashboard');

INSERT INTO dashboard
SELECT window_start, ch, COUNT(*), COUNT(DISTINCT bidder), SUM(price), MAX(price)
FROM (
    SELECT CASE WHEN channel IN ('Apple', 'Google', 'Facebook', 'Baidu') THEN channel ELSE 'other' END AS ch,
           bidder, price, window_start, window_end
    FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
)
GROUP BY window_start, window_end, ch;
