-- Benchmark: five transforms fitted on every transaction (benches/run-encoders.sh), as
-- scikit-learn fits the same ones in the same script.
CREATE ENCODER bench_inputs
  FIT ON (SELECT amount, merchant_id, amount AS amount_log, category,
                 amount AS amount_bucket
          FROM transactions)
  (standard_scale(amount), min_max(merchant_id), log1p(amount_log),
   one_hot(category), bucketize(amount_bucket, quantiles => 10));
