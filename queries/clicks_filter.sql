-- Clicks on the hot channels, from the Nexmark generator's bids, with the URL split up.
-- weir run queries/clicks_filter.sql --set 'events.num=1000'
CREATE TABLE events WITH ('connector' = 'nexmark', 'events.num' = '20000', 'seed' = '7',
                          'base-time' = '2026-01-01 00:00:00');

CREATE VIEW clicks AS
SELECT bid.bidder AS user_id, bid.channel AS channel, bid.url AS url, bid.dateTime AS ts
FROM events
WHERE event_type = 2;

CREATE TABLE hot_clicks (user_id BIGINT, channel STRING, page STRING, ts TIMESTAMP(3))
WITH ('connector' = 'print');

INSERT INTO hot_clicks
SELECT user_id, upper(channel), split_part(url, '/', 4), ts
FROM clicks
WHERE channel IN ('Google', 'Apple') AND user_id % 10 = 1;
