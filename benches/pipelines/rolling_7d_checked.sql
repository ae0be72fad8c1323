-- Benchmark: pipelines/rolling_7d.sql with five expectations, for what checking costs the
-- pass that writes the snapshot (benches/run-expectations.sh). A version's first snapshot
-- passes DRIFT (nothing to compare with); later ones measure it.
CREATE FEATURE GROUP bench_rolling_7d
  KEY (customer_id)
  EVENT TIME event_time
  EXPECT NOT NULL (amount_sum_7d, txn_count_7d)
  EXPECT RANGE txn_count_7d BETWEEN 1 AND 1000000
  EXPECT bounded AS (abs(amount_sum_7d) < 1e12) MOSTLY 0.999
  EXPECT DRIFT amount_sum_7d PSI < 0.2
  EXPECT FRESHNESS event_time WITHIN '30 days'
AS
SELECT customer_id,
       event_time,
       sum(amount)   OVER w AS amount_sum_7d,
       count(amount) OVER w AS txn_count_7d
FROM transactions
WHERE event_time <= as_of()
WINDOW w AS (PARTITION BY customer_id ORDER BY event_time
             RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW);
