//! Runs fengine pipelines on DataFusion: checks, computes, publishes snapshots and online values
