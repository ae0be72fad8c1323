-- Card spend per customer, and per customer and category, over rolling windows ending at
-- the run's as-of.
--
--   fengine run pipelines/customer_spend.sql --as-of 2024-04-01T00:00:00Z
--   fengine get customer_spend 7
--   fengine get customer_category_spend 7 grocery
INCLUDE '../sql/transactions.sql';

CREATE FEATURE GROUP customer_spend
  VERSION 1
  KEY (customer_id)
  EVENT TIME event_time
  DESCRIPTION 'Card spend per customer over the last 7 and 30 days'
  TAGS (team = 'risk', pii = 'false')
  FEATURES (
    spend_7d COMMENT 'sum of amount, last 7 days',
    spend_30d COMMENT 'sum of amount, last 30 days',
    txn_count_30d COMMENT 'transactions, last 30 days',
    max_amount_30d COMMENT 'largest transaction, last 30 days'
  )
AS
SELECT customer_id,
       as_of()                                                                 AS event_time,
       coalesce(sum(amount) FILTER (WHERE event_time > as_of() - INTERVAL '7 days'), 0) AS spend_7d,
       sum(amount)                                                             AS spend_30d,
       count(*)                                                                AS txn_count_30d,
       max(amount)                                                             AS max_amount_30d
FROM known_transactions
WHERE event_time > as_of() - INTERVAL '30 days'
GROUP BY customer_id;

-- A composite key: one row per customer and category.
CREATE FEATURE GROUP customer_category_spend
  KEY (customer_id, category)
  EVENT TIME event_time
  DESCRIPTION 'Share of a customer''s 30-day spend in each category'
  FEATURES (
    spend_30d COMMENT 'sum of amount in the category, last 30 days',
    share_30d COMMENT 'the category''s share of the customer''s 30-day spend'
  )
AS
SELECT customer_id,
       category,
       as_of()                                                      AS event_time,
       sum(amount)                                                  AS spend_30d,
       sum(amount) / sum(sum(amount)) OVER (PARTITION BY customer_id) AS share_30d
FROM known_transactions
WHERE event_time > as_of() - INTERVAL '30 days'
GROUP BY customer_id, category;
