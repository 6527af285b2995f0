-- q7-like: the highest price and the number of bids per 10-second tumbling window.
--   weir run benches/peer/bid.sql benches/peer/q7.sql   (from the folder with bids.csv)
CREATE TABLE sink (window_start TIMESTAMP(3), window_end TIMESTAMP(3), max_price BIGINT, cnt BIGINT)
WITH ('connector' = 'filesystem', 'path' = 'out/weir_q7', 'format' = 'csv');

INSERT INTO sink
SELECT window_start, window_end, MAX(price) AS max_price, COUNT(*) AS cnt
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
