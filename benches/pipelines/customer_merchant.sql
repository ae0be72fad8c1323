-- Benchmark of the online load: one row per customer and merchant over the whole history,
-- about as many keys as transactions (1M rows: ~0.95M keys; 10M rows: ~9.5M keys).
CREATE FEATURE GROUP bench_customer_merchant
  KEY (customer_id, merchant_id)
  EVENT TIME event_time
AS
SELECT customer_id,
       merchant_id,
       max(event_time)  AS event_time,
       count(*)         AS txn_count,
       sum(amount)      AS spend,
       min(event_time)  AS first_seen
FROM transactions
WHERE event_time <= as_of()
GROUP BY customer_id, merchant_id;
