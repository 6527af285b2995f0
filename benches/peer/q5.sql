-- q5-like: bids per auction per 10-second window sliding by 2 seconds.
--   weir run benches/peer/bid.sql benches/peer/q5.sql   (from the folder with bids.csv)
CREATE TABLE sink (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), num BIGINT)
WITH ('connector' = 'filesystem', 'path' = 'out/weir_q5', 'format' = 'csv');

INSERT INTO sink
SELECT auction, window_start, window_end, COUNT(*) AS num
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
