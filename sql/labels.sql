-- A spine for `fengine training-set`: one labelled row per large transaction, labelled at
-- the transaction's time (a stand-in for "was this payment disputed later").
--
--   fengine training-set --spine sql/labels.sql --timestamp label_time \
--     --features customer_spend --features customer_category_spend.spend_30d \
--     --out training.parquet
CREATE EXTERNAL TABLE transactions STORED AS PARQUET LOCATION '../pipelines/data/transactions/';

SELECT customer_id,
       category,
       event_time             AS label_time,
       amount > 150           AS label
FROM transactions
WHERE amount > 100
ORDER BY event_time;
