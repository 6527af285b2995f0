-- Nexmark q0-style pass-through: every bid of the generator, printed in Flink's form.
-- Bounded to 100 000 events; override with: weir run queries/nexmark_passthrough.sql --set 'events.num=1000'
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

CREATE TABLE discard_sink (
    auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
    dateTime TIMESTAMP(3), extra VARCHAR
) WITH ('connector' = 'print', 'print-identifier' = 'q0');

INSERT INTO discard_sink SELECT auction, bidder, price, channel, url, dateTime, extra FROM bid;
