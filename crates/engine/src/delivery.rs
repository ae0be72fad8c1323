//! Delivering a run's manifest where the scheduler that started it reads it (`--manifest`).

use object_store::ObjectStoreExt;
use url::Url;

use crate::backends::Backends;
use crate::error::{Error, Result};

/// Writes a manifest where `--manifest` says: a local file, replaced whole so that a reader
/// never sees half of one, or an object URL the profile reaches (`s3://bucket/key`).
pub async fn deliver_manifest(backends: &Backends, target: &str, bytes: Vec<u8>) -> Result<()> {
    match Url::parse(target) {
        Ok(url) if url.scheme() != "file" && url.scheme().len() > 1 => {
            let registry = backends.object_stores.as_ref().ok_or_else(|| {
                Error::Config(format!(
                    "--manifest {target}: this profile reaches no object store at {}://; \
                     give a local path, or use a profile that does (an AWS profile reaches s3://)",
                    url.scheme()
                ))
            })?;
            let store = registry
                .get_store(&url)
                .map_err(|e| Error::Config(format!("--manifest {target}: {e}")))?;
            let path = object_store::path::Path::from_url_path(url.path())
                .map_err(|e| Error::Config(format!("--manifest {target}: {e}")))?;
            store.put(&path, bytes.into()).await.map_err(|e| {
                Error::object_store(format!("writing the manifest to {target}"), &e)
            })?;
            Ok(())
        }
        _ => write_local_file(
            std::path::Path::new(target.trim_start_matches("file://")),
            &bytes,
        ),
    }
}

fn write_local_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let failed = |e: std::io::Error| {
        let what = format!("writing the manifest to {}: {e}", path.display());
        match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                Error::PermanentFault(what)
            }
            _ => Error::Infrastructure(what),
        }
    };
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(failed)?;
    }
    let partial = path.with_file_name(format!(
        ".{}.{}.partial",
        path.file_name()
            .map_or("manifest".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    std::fs::write(&partial, bytes).map_err(failed)?;
    std::fs::rename(&partial, path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        failed(e)
    })
}
