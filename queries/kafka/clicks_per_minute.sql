-- Clicks per user per minute from a Kafka topic, archived to Parquet as the minutes close.
-- Needs a broker on 127.0.0.1:9092 with a topic 'clicks' (README, "Kafka"):
--   weir run queries/kafka/clicks_per_minute.sql
--   weir query "SELECT * FROM 'archive/clicks_per_minute' ORDER BY window_start, user_id"
-- The source joins the group 'weir-clicks': a second `weir run` of this file shares the
-- topic's partitions with the first, and a restart continues from the committed offsets.
CREATE TABLE clicks (
    user_id BIGINT,
    url STRING,
    ts TIMESTAMP(3),
    `partition` INT METADATA VIRTUAL,
    `offset` BIGINT METADATA VIRTUAL,
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'clicks',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.group.id' = 'weir-clicks',
    'properties.auto.offset.reset' = 'earliest',
    'scan.startup.mode' = 'group-offsets',
    'scan.watermark.idle-timeout' = '30 s',
    'format' = 'json'
);

CREATE TABLE clicks_per_minute (
    user_id BIGINT,
    window_start TIMESTAMP(3),
    window_end TIMESTAMP(3),
    clicks BIGINT,
    urls BIGINT,
    dt STRING
) PARTITIONED BY (dt) WITH (
    'connector' = 'filesystem',
    'path' = 'archive/clicks_per_minute',
    'format' = 'parquet',
    'sink.rolling-policy.rollover-interval' = '10 s',
    'sink.rolling-policy.check-interval' = '1 s'
);

INSERT INTO clicks_per_minute
SELECT user_id, window_start, window_end, COUNT(*), COUNT(DISTINCT url),
       DATE_FORMAT(window_start, 'yyyy-MM-dd')
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY user_id, window_start, window_end;
