-- Average price per category: the average of the winning (highest) bids of the closed
-- auctions of each category. A regular join, then an aggregate of an aggregate: the inner
-- one updates as bids arrive, and the outer one takes back what it had counted (a
-- changelog).
CREATE TABLE nexmark_q4 (id BIGINT, final BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q4
SELECT Q.category, AVG(Q.final)
FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
    GROUP BY A.id, A.category
) Q
GROUP BY Q.category;
