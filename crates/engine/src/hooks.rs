//! Named points where the tests stop or hold a run (`FENGINE_FAIL_AT`, `FENGINE_PAUSE_AT`):
//! how they kill a run at the worst moment and change the world under a running one.

use crate::interrupt;

/// Stops the process at a named point when `FENGINE_FAIL_AT` names it: how the tests kill a
/// run at the worst moment.
pub(crate) fn fail_point(name: &str) {
    if std::env::var("FENGINE_FAIL_AT").is_ok_and(|at| at == name) {
        eprintln!("fengine: FENGINE_FAIL_AT={name}: aborting");
        std::process::abort();
    }
}

/// Waits at a named point while `FENGINE_PAUSE_AT` names it, until the file
/// `fengine-paused-<name>` it creates in the working directory is removed: how the tests
/// change the world under a running run (a source file removed mid-run).
pub(crate) async fn pause_point(name: &str) {
    if std::env::var("FENGINE_PAUSE_AT").is_ok_and(|at| at == name) {
        let marker = std::path::PathBuf::from(format!("fengine-paused-{name}"));
        if std::fs::write(&marker, b"").is_ok() {
            while marker.exists() && interrupt::check().is_ok() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}
