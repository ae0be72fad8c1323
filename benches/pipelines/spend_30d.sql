-- Benchmark: 30-day-window snapshot aggregates per customer, with FILTER clauses.
-- benches/run.sh includes this after defining `transactions` over the generated data.
CREATE FEATURE GROUP bench_spend_30d
  KEY (customer_id)
  EVENT TIME event_time
AS
SELECT customer_id,
       as_of()                                                                  AS event_time,
       sum(amount) FILTER (WHERE event_time > as_of() - INTERVAL '1 day')       AS spend_1d,
       sum(amount) FILTER (WHERE event_time > as_of() - INTERVAL '7 days')      AS spend_7d,
       sum(amount)                                                              AS spend_30d,
       count(*) FILTER (WHERE event_time > as_of() - INTERVAL '7 days')         AS txn_count_7d,
       count(*)                                                                 AS txn_count_30d,
       avg(amount)                                                              AS avg_amount_30d,
       max(amount)                                                              AS max_amount_30d,
       count(DISTINCT merchant_id)                                              AS merchants_30d,
       count(*) FILTER (WHERE category = 'travel')                              AS travel_count_30d
FROM transactions
WHERE event_time > as_of() - INTERVAL '30 days' AND event_time <= as_of()
GROUP BY customer_id;
