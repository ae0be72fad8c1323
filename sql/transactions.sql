-- Card transactions: the source shared by the example pipelines.
-- A LOCATION without a scheme is relative to this file.
CREATE EXTERNAL TABLE transactions
STORED AS PARQUET
LOCATION '../pipelines/data/transactions/';

-- What was known at the run's as-of: nothing after it.
CREATE VIEW known_transactions AS
SELECT customer_id, merchant_id, amount, category, event_time
FROM transactions
WHERE event_time <= as_of();
