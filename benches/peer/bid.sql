-- The peer benchmark's input (../shared/peer-bench/gen_bids.py): headerless CSV bids in
-- event-time order, read from ./bids.csv (run from the folder that holds it). Same table,
-- same watermark as the peers' Flink program.
CREATE TABLE bid (
    auction BIGINT,
    bidder BIGINT,
    price BIGINT,
    channel VARCHAR,
    url VARCHAR,
    date_time TIMESTAMP(3),
    extra VARCHAR,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'bids.csv', 'format' = 'csv');
