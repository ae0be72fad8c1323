//! The warehouse: where snapshots are written, a local folder or an object store prefix.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use url::Url;

use crate::error::{Error, Result};
use crate::parquet_file::ParquetFile;

#[derive(Debug, Clone)]
pub struct Warehouse {
    /// Ends with '/'.
    root: Url,
    /// The store serving `root`'s scheme and authority; paths are the URL's path.
    store: Arc<dyn ObjectStore>,
}

impl Warehouse {
    /// A warehouse in a local folder, created if missing.
    pub fn local(folder: &Path) -> Result<Self> {
        std::fs::create_dir_all(folder).map_err(|e| {
            Error::Config(format!(
                "cannot create warehouse folder '{}': {e}",
                folder.display()
            ))
        })?;
        let absolute = folder.canonicalize().map_err(|e| {
            Error::Config(format!(
                "cannot open warehouse folder '{}': {e}",
                folder.display()
            ))
        })?;
        let root = Url::from_directory_path(&absolute).map_err(|_| {
            Error::Config(format!("'{}' is not a usable folder", absolute.display()))
        })?;
        let store = LocalFileSystem::new().with_automatic_cleanup(true);
        Ok(Warehouse::new(root, Arc::new(store)))
    }

    /// A warehouse at `root` in `store`, which serves the URL's scheme and authority.
    pub fn new(mut root: Url, store: Arc<dyn ObjectStore>) -> Self {
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Warehouse { root, store }
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// `<root>/<group>/v<version>/`: the root of a feature group version's table.
    pub fn table_location(&self, group: &str, version: u32) -> Url {
        self.join(&format!("{group}/v{version}/"))
    }

    /// `<table>/snapshot_ts=<snapshot>/`: where every run of one as-of writes.
    pub fn snapshot_location(&self, group: &str, version: u32, snapshot: &str) -> Url {
        self.join(&format!("{group}/v{version}/snapshot_ts={snapshot}/"))
    }

    pub(crate) fn join(&self, relative: &str) -> Url {
        self.root
            .join(relative)
            .expect("group names are valid URL path segments")
    }

    /// A Parquet file to stream a snapshot into at `location` (see [`ParquetFile::create`]).
    pub(crate) fn parquet_file(
        &self,
        location: &Url,
        schema: SchemaRef,
        buffer_size: usize,
    ) -> Result<ParquetFile> {
        let path = object_path(location)?;
        let name = location.to_string();
        ParquetFile::create(self.store.clone(), path, name, schema, buffer_size)
    }

    /// Deletes every object under `prefix`.
    pub async fn delete_prefix(&self, prefix: &Url) -> Result<()> {
        let doomed = self.objects_under(prefix).await?;
        self.delete_objects(&doomed).await
    }

    /// The bytes of the objects under `prefix`.
    pub(crate) async fn bytes_under(&self, prefix: &Url) -> Result<u64> {
        let prefix_path = object_path(prefix)?;
        self.store
            .list(Some(&prefix_path))
            .try_fold(0, |total, meta| async move { Ok(total + meta.size) })
            .await
            .map_err(|e| Error::object_store(format!("cannot list '{prefix}'"), &e))
    }

    /// The objects under these folders.
    pub(crate) async fn objects_in(&self, folders: &[Url]) -> Result<Vec<ObjectPath>> {
        let mut objects = Vec::new();
        for folder in folders {
            objects.extend(self.objects_under(folder).await?);
        }
        Ok(objects)
    }

    async fn objects_under(&self, prefix: &Url) -> Result<Vec<ObjectPath>> {
        let prefix_path = object_path(prefix)?;
        self.store
            .list(Some(&prefix_path))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| Error::object_store(format!("cannot list '{prefix}'"), &e))
    }

    /// Deletes these objects; one deleted already is no failure.
    pub(crate) async fn delete_objects(&self, objects: &[ObjectPath]) -> Result<()> {
        for location in objects {
            match self.store.delete(location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(Error::object_store(
                        format!("cannot delete '{location}'"),
                        &e,
                    ));
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn object_path(url: &Url) -> Result<ObjectPath> {
    ObjectPath::from_url_path(url.path())
        .map_err(|e| Error::Infrastructure(format!("'{url}' is not an object store path: {e}")))
}
