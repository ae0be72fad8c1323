//! Leases in the warehouse: at most one run at a time writes a snapshot of one as-of, or
//! loads a group version's online table. Schedulers retry and overlap runs; a lease makes
//! the later run wait for the earlier one instead of deleting its files or mixing rows.
//!
//! A lease is a folder `<warehouse>/_fengine/leases/<name>/` of numbered records; the
//! highest number is the lease's state (holder, expiry, or released). A run takes, renews or
//! releases the lease by creating the next number with a put-if-absent (S3's
//! `If-None-Match: *`, a hard link on a local disk), so of two runs racing for one number
//! exactly one wins — the way Terraform's S3 lock files and Delta's commits use S3's
//! conditional writes, with an expiry added so that a killed run's lease lapses on its own.
//! A holder that finds its next number taken has lost the lease, and stops before its next
//! commit point. A number must never be created twice, so superseded records are deleted
//! only long after (twice the time to live), and a run creates the number after the one it
//! read only while that reading is fresh (a third of the time to live): a run that stalled
//! between reading and writing cannot take a number that was taken and cleaned up meanwhile. Each record carries the holders whose leases lapsed unreleased (killed
//! runs) since the lease was last released: the next holder to finish cleans up after them,
//! and no one else's work is ever taken for garbage.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::interrupt;
use crate::warehouse::Warehouse;

/// How long a lease lasts unless renewed: a killed run holds up others this long at most.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// A lease's state, as its newest record says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    holder: String,
    /// What the holder does under the lease, for those who wait.
    purpose: String,
    expires_at: DateTime<Utc>,
    released: bool,
    /// Holders whose leases lapsed unreleased since the last release.
    #[serde(default)]
    abandoned: Vec<String>,
}

impl Record {
    fn is_free_for(&self, holder: &str, now: DateTime<Utc>) -> bool {
        self.released || self.expires_at <= now || self.holder == holder
    }
}

/// A held lease. Renewed in the background until released; dropping it stops the renewal,
/// so that the lease lapses.
#[derive(Debug)]
pub(crate) struct Lease {
    shared: Arc<Shared>,
    renewer: JoinHandle<()>,
    /// Stops the renewer between renewals, so that none is cut off half-way.
    stop: Option<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn ObjectStore>,
    folder: ObjectPath,
    name: String,
    holder: String,
    purpose: String,
    ttl: Duration,
    state: Mutex<Held>,
    /// The holders before this one whose leases lapsed unreleased.
    abandoned: Vec<String>,
}

#[derive(Debug, Clone)]
struct Held {
    number: u64,
    expires_at: DateTime<Utc>,
    /// Why the lease was lost, once it was.
    lost: Option<String>,
}

impl Lease {
    /// Takes the lease `name` for `holder`, waiting while another holder has it;
    /// `on_wait` hears of that holder once.
    pub(crate) async fn acquire(
        warehouse: &Warehouse,
        name: &str,
        holder: &str,
        purpose: &str,
        ttl: Duration,
        on_wait: impl FnOnce(&str, &str, DateTime<Utc>),
    ) -> Result<Lease> {
        let folder =
            ObjectPath::from_url_path(warehouse.join(&format!("_fengine/leases/{name}/")).path())
                .map_err(|e| Error::Infrastructure(format!("lease '{name}': {e}")))?;
        let mut shared = Shared {
            store: warehouse.store().clone(),
            folder,
            name: name.to_string(),
            holder: holder.to_string(),
            purpose: purpose.to_string(),
            ttl,
            state: Mutex::new(Held {
                number: 0,
                expires_at: Utc::now(),
                lost: None,
            }),
            abandoned: Vec::new(),
        };
        let mut on_wait = Some(on_wait);
        loop {
            let looked = Instant::now();
            let newest = shared.newest().await?;
            let now = Utc::now();
            let next = match &newest {
                Some((number, record)) if !record.is_free_for(holder, now) => {
                    if let Some(report) = on_wait.take() {
                        report(&record.holder, &record.purpose, record.expires_at);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(poll_interval(ttl)) => {}
                        stop = interrupt::requested() => return Err(stop),
                    }
                    continue;
                }
                Some((number, record)) => {
                    shared.abandoned = match record.released {
                        true => Vec::new(),
                        false => {
                            let mut abandoned = record.abandoned.clone();
                            if record.holder != holder {
                                abandoned.push(record.holder.clone());
                            }
                            abandoned
                        }
                    };
                    number + 1
                }
                None => 1,
            };
            if looked.elapsed() > ttl / 3 {
                continue; // Stale: the lease may have moved on since.
            }
            if let Some(expires_at) = shared.create(next, false).await? {
                *shared.state.get_mut().expect("not poisoned") = Held {
                    number: next,
                    expires_at,
                    lost: None,
                };
                shared.prune().await;
                let shared = Arc::new(shared);
                let (stop, stopped) = oneshot::channel();
                let renewer = tokio::spawn(renew(shared.clone(), stopped));
                return Ok(Lease {
                    shared,
                    renewer,
                    stop: Some(stop),
                });
            }
            // Another run took that number first: look again.
        }
    }

    /// Fails unless the lease is still held, and will be for a while: checked before each
    /// commit point, so that a run that lost its lease publishes nothing more.
    pub(crate) fn check(&self) -> Result<()> {
        let held = self.shared.state.lock().expect("not poisoned").clone();
        let margin = chrono::Duration::from_std(self.shared.ttl / 3).unwrap_or_default();
        let reason = match held.lost {
            Some(reason) => reason,
            None if held.expires_at - margin <= Utc::now() => {
                "it was not renewed in time".to_string()
            }
            None => return Ok(()),
        };
        Err(Error::Infrastructure(format!(
            "run {} lost its lease on {} ({reason}): another run may have taken over, so this \
             one stopped before publishing more; run it again",
            self.shared.holder, self.shared.name
        )))
    }

    /// The holders before this one that were killed (or stalled) holding the lease, since
    /// it was last released: their work is garbage, theirs no longer to clean up.
    pub(crate) fn abandoned(&self) -> &[String] {
        &self.shared.abandoned
    }

    /// Releases the lease, so that a waiting run takes it at once.
    pub(crate) async fn release(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.renewer).await;
        let held = self.shared.state.lock().expect("not poisoned").clone();
        if held.lost.is_some() {
            return Ok(());
        }
        // Taken already (it had lapsed), the lease is another's to release.
        if self.shared.create(held.number + 1, true).await?.is_some() {
            self.shared.prune().await;
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews the lease every third of its time to live, until aborted or lost.
async fn renew(shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.ttl / 3) => {}
            _ = &mut stopped => return,
        }
        let held = shared.state.lock().expect("not poisoned").clone();
        let number = held.number;
        // Lapsed, its successor may have been taken and cleaned up already: creating it
        // again would take the lease from under the next holder.
        if held.expires_at <= Utc::now() {
            let mut held = shared.state.lock().expect("not poisoned");
            held.lost = Some("it lapsed before it could be renewed".to_string());
            return;
        }
        match shared.create(number + 1, false).await {
            Ok(Some(expires_at)) => {
                {
                    let mut held = shared.state.lock().expect("not poisoned");
                    held.number = number + 1;
                    held.expires_at = expires_at;
                }
                shared.prune().await;
            }
            Ok(None) => {
                let mut held = shared.state.lock().expect("not poisoned");
                held.lost = Some("another run took it after it lapsed".to_string());
                return;
            }
            // Tried again at the next tick; `check` fails once the lease has run out.
            Err(_) => {}
        }
    }
}

impl Shared {
    fn record_path(&self, number: u64) -> ObjectPath {
        self.folder.clone().join(format!("{number:020}.json"))
    }

    /// The numbers of the lease's records, and when each was written.
    async fn records(&self) -> Result<Vec<(u64, DateTime<Utc>)>> {
        let listed: Vec<_> = self
            .store
            .list(Some(&self.folder))
            .try_collect()
            .await
            .map_err(|e| self.fault("list", e))?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let number = meta.location.filename().and_then(record_number)?;
                Some((number, meta.last_modified))
            })
            .collect())
    }

    /// The newest record and its number, if any.
    async fn newest(&self) -> Result<Option<(u64, Record)>> {
        loop {
            let numbers = self.records().await?;
            let Some(newest) = numbers.iter().map(|(number, _)| *number).max() else {
                return Ok(None);
            };
            match self.store.get(&self.record_path(newest)).await {
                Ok(object) => {
                    let bytes = object.bytes().await.map_err(|e| self.fault("read", e))?;
                    let record = serde_json::from_slice(&bytes).map_err(|e| {
                        Error::Infrastructure(format!(
                            "lease record {} is malformed ({e}): delete the folder {} if no \
                             run of it is running",
                            self.record_path(newest),
                            self.folder
                        ))
                    })?;
                    return Ok(Some((newest, record)));
                }
                // Superseded and deleted since the listing: list again.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.fault("read", e)),
            }
        }
    }

    /// Creates record `number`, held (until now + ttl) or released; `None` if it exists.
    async fn create(&self, number: u64, released: bool) -> Result<Option<DateTime<Utc>>> {
        let expires_at =
            Utc::now() + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        let record = Record {
            holder: self.holder.clone(),
            purpose: self.purpose.clone(),
            expires_at,
            released,
            // Released, the lease passes the abandoned work on as cleaned up.
            abandoned: if released {
                Vec::new()
            } else {
                self.abandoned.clone()
            },
        };
        let body = serde_json::to_vec(&record).expect("a record serializes");
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&self.record_path(number), body.into(), options)
            .await
        {
            Ok(_) => Ok(Some(expires_at)),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(self.fault("write", e)),
        }
    }

    /// Deletes, best effort, the records superseded more than twice the time to live
    /// before the newest was written (times as the store records them, so clocks need not
    /// agree): no run still holds a reading that old.
    async fn prune(&self) {
        let Ok(records) = self.records().await else {
            return;
        };
        let Some(newest) = records.iter().max_by_key(|(number, _)| *number) else {
            return;
        };
        let cutoff = newest.1 - chrono::Duration::from_std(self.ttl * 2).unwrap_or_default();
        let Some(oldest_kept) = records
            .iter()
            .filter(|(_, written)| *written <= cutoff)
            .map(|(number, _)| *number)
            .max()
        else {
            return;
        };
        for (number, _) in records.iter().filter(|(number, _)| *number < oldest_kept) {
            let _ = self.store.delete(&self.record_path(*number)).await;
        }
    }

    fn fault(&self, action: &str, error: object_store::Error) -> Error {
        let what = format!(
            "cannot {action} the lease records under {} of lease {}",
            self.folder, self.name
        );
        Error::object_store(what, &error)
    }
}

fn record_number(file: &str) -> Option<u64> {
    file.strip_suffix(".json")?.parse().ok()
}

/// How often a waiting run looks at the lease again: soon enough that a released lease is
/// taken within half a second (a listing and a read each time).
fn poll_interval(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(50), Duration::from_millis(500))
}

/// Tells the person watching why the run pauses.
pub(crate) fn waiting(holder: &str, purpose: &str, until: chrono::DateTime<chrono::Utc>) {
    tracing::warn!(
        holder,
        "waiting for run {holder}, which is {purpose} (its lease lapses at {} unless renewed)",
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn warehouse() -> (Warehouse, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Warehouse::local(dir.path()).unwrap(), dir)
    }

    async fn take(warehouse: &Warehouse, holder: &str, ttl: Duration) -> Lease {
        Lease::acquire(warehouse, "g/v1/x", holder, "testing", ttl, |_, _, _| {})
            .await
            .unwrap()
    }

    /// Many holders racing: never two inside at once, and every one gets its turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn holders_racing_for_a_lease_take_it_one_at_a_time() {
        let (warehouse, _dir) = warehouse();
        let inside = Arc::new(AtomicUsize::new(0));
        let turns = Arc::new(AtomicUsize::new(0));
        let mut holders = tokio::task::JoinSet::new();
        for holder in 0..6 {
            let (warehouse, inside, turns) = (warehouse.clone(), inside.clone(), turns.clone());
            holders.spawn(async move {
                for _ in 0..3 {
                    // Long enough not to lapse while a loaded machine stalls a holder.
                    let lease =
                        take(&warehouse, &format!("run{holder}"), Duration::from_secs(5)).await;
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders at once"
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    lease.check().unwrap();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    turns.fetch_add(1, Ordering::SeqCst);
                    lease.release().await.unwrap();
                }
            });
        }
        while let Some(done) = holders.join_next().await {
            done.unwrap();
        }
        assert_eq!(turns.load(Ordering::SeqCst), 18);
    }

    /// A holder that stops renewing (killed) holds others up until its lease lapses, and no
    /// longer; it then knows it lost the lease, and its release frees nothing of the next's.
    #[tokio::test]
    async fn a_lease_that_is_not_renewed_lapses_and_its_holder_knows() {
        let (warehouse, _dir) = warehouse();
        let ttl = Duration::from_millis(600);
        let stalled = take(&warehouse, "stalled", ttl).await;
        stalled.renewer.abort();
        let started = std::time::Instant::now();
        let mut waited_for = None;
        let next = Lease::acquire(
            &warehouse,
            "g/v1/x",
            "next",
            "testing",
            ttl,
            |holder, purpose, _| {
                waited_for = Some((holder.to_string(), purpose.to_string()));
            },
        )
        .await
        .unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400),
            "taken after {waited:?}"
        );
        assert!(waited < Duration::from_secs(3), "taken after {waited:?}");
        assert_eq!(
            waited_for,
            Some(("stalled".to_string(), "testing".to_string()))
        );
        let error = stalled.check().unwrap_err().to_string();
        assert!(
            error.starts_with("run stalled lost its lease on g/v1/x"),
            "{error}"
        );
        stalled.release().await.unwrap();

        // The next holder keeps it through renewals, past its first expiry.
        tokio::time::sleep(ttl * 2).await;
        next.check().unwrap();
        let third = tokio::time::timeout(ttl, take(&warehouse, "third", ttl)).await;
        assert!(third.is_err(), "a third holder took a held lease");
        next.release().await.unwrap();
        take(&warehouse, "third", ttl)
            .await
            .release()
            .await
            .unwrap();
    }

    /// Superseded records stay for twice the time to live, so that a run which read an
    /// old one and stalled cannot create a number again; then they go.
    #[tokio::test]
    async fn superseded_records_are_kept_until_no_reading_of_them_is_fresh() {
        let (warehouse, _dir) = warehouse();
        let ttl = Duration::from_millis(400);
        for holder in ["a", "b", "c"] {
            take(&warehouse, holder, ttl).await.release().await.unwrap();
        }
        let probe = take(&warehouse, "probe", ttl).await;
        for number in 1..=6 {
            let created = probe.shared.create(number, false).await.unwrap();
            assert!(
                created.is_none(),
                "record {number} was created a second time"
            );
        }
        probe.release().await.unwrap();

        tokio::time::sleep(ttl * 3).await;
        take(&warehouse, "d", ttl).await.release().await.unwrap();
        let left: Vec<u64> = {
            let lease = take(&warehouse, "e", ttl).await;
            let left = lease.shared.records().await.unwrap();
            lease.release().await.unwrap();
            left.into_iter().map(|(number, _)| number).collect()
        };
        assert!(
            left.iter().all(|&number| number >= 8),
            "records older than twice the ttl were kept: {left:?}"
        );
    }

    /// A renewal that finds its record taken marks the lease lost.
    #[tokio::test]
    async fn a_holder_whose_next_record_is_taken_has_lost_the_lease() {
        let (warehouse, _dir) = warehouse();
        let ttl = Duration::from_millis(300);
        let lease = take(&warehouse, "first", ttl).await;
        let number = lease.shared.state.lock().unwrap().number;
        // Another run takes the next number, as it would once the lease lapsed.
        assert!(
            lease
                .shared
                .create(number + 1, false)
                .await
                .unwrap()
                .is_some()
        );
        tokio::time::sleep(ttl).await;
        let error = lease.check().unwrap_err().to_string();
        assert!(
            error.contains("another run took it after it lapsed"),
            "{error}"
        );
    }
}
