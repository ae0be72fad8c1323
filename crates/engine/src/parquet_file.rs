//! A Parquet file streamed to an object store, zstd-compressed: how snapshots and training
//! sets are written. The object appears only when the file is complete (an object store
//! publishes a multipart upload at its end, a local folder renames a finished temporary).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::context::SessionContext;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

/// The bytes a file buffers before it starts an upload in parts, as the session says.
pub(crate) fn buffer_size(context: &SessionContext) -> usize {
    context
        .copied_config()
        .options()
        .execution
        .objectstore_writer_buffer_size
}

pub(crate) struct ParquetFile {
    writer: AsyncArrowWriter<BufWriter>,
    /// For messages: the file's URL.
    name: String,
}

impl ParquetFile {
    /// `buffer_size`: the bytes buffered before an upload in parts starts
    /// (`datafusion.execution.objectstore_writer_buffer_size`).
    pub(crate) fn create(
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
        name: String,
        schema: SchemaRef,
        buffer_size: usize,
    ) -> Result<Self> {
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("a valid level"),
            ))
            .build();
        match AsyncArrowWriter::try_new(
            BufWriter::with_capacity(store, path, buffer_size),
            schema,
            Some(properties),
        ) {
            Ok(writer) => Ok(ParquetFile { writer, name }),
            Err(e) => Err(Error::Infrastructure(format!("cannot write '{name}': {e}"))),
        }
    }

    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let written = self.writer.write(batch).await;
        written.map_err(|e| self.failed(e))
    }

    pub(crate) async fn close(mut self) -> Result<()> {
        let closed = self.writer.finish().await;
        closed.map(|_| ()).map_err(|e| self.failed(e))
    }

    fn failed(&self, error: parquet::errors::ParquetError) -> Error {
        let what = format!("cannot write '{}'", self.name);
        match &error {
            parquet::errors::ParquetError::External(source) => {
                match source.downcast_ref::<object_store::Error>() {
                    Some(store) => Error::object_store(what, store),
                    None => Error::Infrastructure(format!("{what}: {error}")),
                }
            }
            _ => Error::Infrastructure(format!("{what}: {error}")),
        }
    }
}
