-- Benchmark: rolling 7-day spend and count per transaction (a RANGE window), the feature
-- group that benches/run-training-set.sh joins to a 1M-row spine.
CREATE FEATURE GROUP bench_rolling_7d
  KEY (customer_id)
  EVENT TIME event_time
AS
SELECT customer_id,
       event_time,
       sum(amount)   OVER w AS amount_sum_7d,
       count(amount) OVER w AS txn_count_7d
FROM transactions
WHERE event_time <= as_of()
WINDOW w AS (PARTITION BY customer_id ORDER BY event_time
             RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW);
