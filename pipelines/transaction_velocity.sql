-- Per-transaction velocity features over time-range windows: how much a customer spent,
-- and how often, in the hour and the week before each transaction. Training data for a
-- fraud model; the online store serves each customer's latest transaction.
--
--   fengine run pipelines/transaction_velocity.sql --as-of 2024-04-01T00:00:00Z --param large_amount=150
--   fengine get transaction_velocity 7
INCLUDE '../sql/transactions.sql';

CREATE FEATURE GROUP transaction_velocity
  KEY (customer_id)
  EVENT TIME event_time
  DESCRIPTION 'Spend and transaction counts in the hour and week before each transaction'
  FEATURES (
    txn_count_1h COMMENT 'transactions in the hour up to and including this one',
    spend_7d COMMENT 'sum of amount in the 7 days up to and including this transaction',
    large_count_7d COMMENT 'transactions of at least param(large_amount) in the 7 days up to this one'
  )
AS
SELECT customer_id,
       event_time,
       amount,
       count(*) OVER last_hour                                                   AS txn_count_1h,
       sum(amount) OVER last_week                                                AS spend_7d,
       sum(CASE WHEN amount >= param('large_amount') THEN 1 ELSE 0 END) OVER last_week AS large_count_7d
FROM known_transactions
WINDOW last_hour AS (PARTITION BY customer_id ORDER BY event_time
                     RANGE BETWEEN INTERVAL '1 hour' PRECEDING AND CURRENT ROW),
       last_week AS (PARTITION BY customer_id ORDER BY event_time
                     RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW);
