//! Writing items with BatchWriteItem: 25 items a request, many requests in flight, and every
//! unprocessed item or throttled request retried with backoff until written or a deadline
//! passes — then an error that says how many items were not written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use fengine_online::{Error, Result};
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::items::Item;
use crate::error::classify;

/// DynamoDB's limit on the items of one BatchWriteItem.
const ITEMS_PER_REQUEST: usize = 25;
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a load writes: requests in flight, and how long it keeps retrying.
#[derive(Debug, Clone, Copy)]
pub struct WriteSettings {
    /// A new on-demand table takes about 4,000 writes a second; 32 requests of 25 items in
    /// flight at ~10-50 ms each reach that without a wall of throttling.
    pub requests_in_flight: usize,
    /// How long unprocessed or throttled items are retried before the load fails.
    pub deadline: Duration,
}

impl Default for WriteSettings {
    fn default() -> Self {
        WriteSettings {
            requests_in_flight: 32,
            deadline: Duration::from_secs(15 * 60),
        }
    }
}

/// What the requests of a load came to.
#[derive(Debug, Default)]
struct Outcome {
    written: u64,
    /// Items still unwritten when the deadline passed, and the last error met.
    unwritten: u64,
    last_error: Option<String>,
    /// An error no retry can fix (a malformed item, a missing table).
    fatal: Option<Error>,
}

/// Sends items to one table, at most `requests_in_flight` requests at a time.
pub(crate) struct BatchWriter {
    client: Client,
    table: String,
    settings: WriteSettings,
    permits: Arc<Semaphore>,
    requests: JoinSet<Outcome>,
    started: Instant,
    outcome: Outcome,
}

impl BatchWriter {
    pub(crate) fn new(client: Client, table: String, settings: WriteSettings) -> Self {
        BatchWriter {
            client,
            table,
            permits: Arc::new(Semaphore::new(settings.requests_in_flight.max(1))),
            settings,
            requests: JoinSet::new(),
            started: Instant::now(),
            outcome: Outcome::default(),
        }
    }

    /// Queues puts of the items (see [`BatchWriter::send`]).
    pub(crate) async fn write(&mut self, items: Vec<Item>) -> Result<()> {
        self.send(items.into_iter().map(|item| {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("an item is set");
            WriteRequest::builder().put_request(put).build()
        }))
        .await
    }

    /// Queues deletes of the items of these keys (see [`BatchWriter::send`]).
    pub(crate) async fn delete(&mut self, keys: Vec<Item>) -> Result<()> {
        self.send(keys.into_iter().map(|key| {
            let delete = DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .expect("a key is set");
            WriteRequest::builder().delete_request(delete).build()
        }))
        .await
    }

    /// Queues the requests, waiting while the requests in flight are at their limit, so
    /// that memory stays bounded however many items the load has.
    async fn send(&mut self, requests: impl Iterator<Item = WriteRequest>) -> Result<()> {
        let mut requests = requests.peekable();
        while requests.peek().is_some() {
            let chunk: Vec<WriteRequest> = requests.by_ref().take(ITEMS_PER_REQUEST).collect();
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let (client, table) = (self.client.clone(), self.table.clone());
            let deadline = self.started + self.settings.deadline;
            self.requests.spawn(async move {
                let outcome = send_until_written(&client, &table, chunk, deadline).await;
                drop(permit);
                outcome
            });
            self.collect_finished()?;
        }
        Ok(())
    }

    /// Waits for every request; the number of items written, or why some were not.
    pub(crate) async fn finish(mut self) -> Result<u64> {
        while let Some(outcome) = self.requests.join_next().await {
            self.add(outcome)?;
        }
        let outcome = self.outcome;
        if let Some(fatal) = outcome.fatal {
            return Err(fatal);
        }
        if outcome.unwritten > 0 {
            return Err(Error::Storage(format!(
                "{} of {} items were not written to DynamoDB table '{}' within {:.1} s of retries ({}); \
                 the load is not recorded, run it again",
                outcome.unwritten,
                outcome.unwritten + outcome.written,
                self.table,
                self.settings.deadline.as_secs_f64(),
                outcome
                    .last_error
                    .unwrap_or_else(|| "unprocessed items".to_string())
            )));
        }
        Ok(outcome.written)
    }

    fn collect_finished(&mut self) -> Result<()> {
        while let Some(outcome) = self.requests.try_join_next() {
            self.add(outcome)?;
        }
        match self.outcome.fatal.take() {
            Some(fatal) => Err(fatal),
            None => Ok(()),
        }
    }

    fn add(&mut self, outcome: std::result::Result<Outcome, tokio::task::JoinError>) -> Result<()> {
        let outcome =
            outcome.map_err(|e| Error::Storage(format!("a DynamoDB request failed: {e}")))?;
        self.outcome.written += outcome.written;
        self.outcome.unwritten += outcome.unwritten;
        if outcome.last_error.is_some() {
            self.outcome.last_error = outcome.last_error;
        }
        if self.outcome.fatal.is_none() {
            self.outcome.fatal = outcome.fatal;
        }
        Ok(())
    }
}

/// Sends one request's items, then its unprocessed items, backing off between tries.
async fn send_until_written(
    client: &Client,
    table: &str,
    mut pending: Vec<WriteRequest>,
    deadline: Instant,
) -> Outcome {
    let total = pending.len() as u64;
    let mut outcome = Outcome::default();
    let mut attempt = 0u32;
    while !pending.is_empty() {
        if attempt > 0 {
            let pause = backoff(attempt);
            if Instant::now() + pause > deadline {
                outcome.unwritten = pending.len() as u64;
                break;
            }
            tokio::time::sleep(pause).await;
        }
        attempt += 1;
        let result = client
            .batch_write_item()
            .request_items(table, pending.clone())
            .send()
            .await;
        match result {
            Ok(output) => {
                pending = output
                    .unprocessed_items()
                    .and_then(|unprocessed| unprocessed.get(table))
                    .cloned()
                    .unwrap_or_default();
            }
            Err(error) => {
                let fault = classify("DynamoDB", "BatchWriteItem", &error);
                if fault.transient {
                    outcome.last_error = Some(fault.message);
                    continue;
                }
                outcome.fatal = Some(Error::Refused(fault.message));
                outcome.unwritten = pending.len() as u64;
                break;
            }
        }
    }
    outcome.written = total - outcome.unwritten;
    outcome
}

/// Exponential backoff with full jitter.
fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_BACKOFF);
    ceiling.mul_f64(rand::rng().random_range(0.0..1.0))
}
