-- Bounded side input join: each bid with the value of its auction's key in a side table
-- (a lookup join, FOR SYSTEM_TIME AS OF, of the stream with a CSV file; Flink's legacy
-- 'connector.type' option names, as the suite writes them). Run from the repository's root,
-- or change the path.
CREATE TABLE side_input (
  key BIGINT,
  `value` VARCHAR
) WITH (
  'connector.type' = 'filesystem',
  'connector.path' = 'queries/nexmark/side_input.txt',
  'format.type' = 'csv'
);

CREATE TABLE nexmark_q13 (auction BIGINT, bidder BIGINT, price BIGINT, dateTime TIMESTAMP(3), `value` VARCHAR)
WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q13
SELECT B.auction, B.bidder, B.price, B.dateTime, S.`value`
FROM (SELECT *, PROCTIME() AS p_time FROM bid) B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
ON mod(B.auction, 10000) = S.key;
