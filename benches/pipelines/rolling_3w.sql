-- Benchmark: rolling 1-, 7- and 30-day spend and counts per transaction, three RANGE windows
-- over the same partitioning and ordering (issue 5's three-window variant).
CREATE FEATURE GROUP bench_rolling_3w
  KEY (customer_id)
  EVENT TIME event_time
AS
SELECT customer_id,
       event_time,
       sum(amount)   OVER w1  AS amount_sum_1d,
       count(amount) OVER w1  AS txn_count_1d,
       sum(amount)   OVER w7  AS amount_sum_7d,
       count(amount) OVER w7  AS txn_count_7d,
       sum(amount)   OVER w30 AS amount_sum_30d,
       count(amount) OVER w30 AS txn_count_30d
FROM transactions
WHERE event_time <= as_of()
WINDOW w1  AS (PARTITION BY customer_id ORDER BY event_time RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW),
       w7  AS (PARTITION BY customer_id ORDER BY event_time RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW),
       w30 AS (PARTITION BY customer_id ORDER BY event_time RANGE BETWEEN INTERVAL '30 days' PRECEDING AND CURRENT ROW);
