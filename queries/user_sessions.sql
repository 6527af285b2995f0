-- Bidding sessions: per bidder, bids less than 2 seconds apart form a session; print the
-- sessions with at least 3 bids, when they close.
--   weir run queries/user_sessions.sql --set 'events.num=100000'
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

CREATE TABLE sessions (
    bidder BIGINT, session_start TIMESTAMP(3), session_end TIMESTAMP(3), bids BIGINT, spent BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'session');

INSERT INTO sessions
SELECT bidder, window_start, window_end, COUNT(*), SUM(price)
FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(dateTime), INTERVAL '2' SECOND))
GROUP BY bidder, window_start, window_end
HAVING COUNT(*) >= 3;
