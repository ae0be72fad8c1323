//! Stopping a run at its next safe point when the process is told to stop (SIGTERM from ECS
//! or a scheduler, SIGINT from a terminal): the run stops computing, discards the files of
//! the snapshot it was writing, registers nothing more, leaves an online load recorded as
//! unfinished for the next run to complete, releases its leases, and says what it had
//! published.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::error::{Error, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SIGNAL: Mutex<String> = Mutex::new(String::new());
static NOTIFY: Notify = Notify::const_new();

/// Asks the run to stop at its next safe point; `signal` names why (`SIGTERM`).
pub fn interrupt(signal: &str) {
    *SIGNAL.lock().expect("not poisoned") = signal.to_string();
    INTERRUPTED.store(true, Ordering::SeqCst);
    NOTIFY.notify_waiters();
}

/// Fails once the run was asked to stop: checked at each safe point.
pub(crate) fn check() -> Result<()> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        true => Err(stopped()),
        false => Ok(()),
    }
}

/// Completes once the run is asked to stop: raced against waits that may be long (a
/// query's next batch, a lease).
pub(crate) async fn requested() -> Error {
    loop {
        let notified = NOTIFY.notified();
        if INTERRUPTED.load(Ordering::SeqCst) {
            return stopped();
        }
        notified.await;
    }
}

fn stopped() -> Error {
    Error::Interrupted(format!(
        "stopped by {}: nothing more was published",
        SIGNAL.lock().expect("not poisoned")
    ))
}
