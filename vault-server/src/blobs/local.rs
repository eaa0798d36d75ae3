//! The embedded backend: ciphertext as files in the data directory's `blobs/`.
//!
//! An upload is streamed to `tmp/`, synced, and only then renamed into `blobs/`. A file
//! in `blobs/` is never written again, only deleted (which is what lets a backup
//! hard-link it).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use vault_core::durable::{FLUSH_EVERY, SyncingFile};
use vault_core::ids::RecordingId;

use super::{Blob, Listed, Staged, UploadError};

#[derive(Clone, Debug)]
pub struct LocalBlobs {
    dir: PathBuf,
    tmp: PathBuf,
}

impl LocalBlobs {
    pub fn new(dir: PathBuf, tmp: PathBuf) -> Self {
        Self { dir, tmp }
    }

    pub fn path(&self, id: &RecordingId) -> PathBuf {
        self.dir.join(super::file_name(id))
    }

    /// A new temporary file for an upload, and the sink that syncs it as it is written
    /// (so that the final sync does not wait for all of it).
    pub async fn create_tmp(&self) -> std::io::Result<(PathBuf, SyncingFile)> {
        let path = self.tmp.join(format!("{}.part", vault_core::ids::random_hex16()));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await?.into_std().await;
        Ok((path, SyncingFile::new(file, FLUSH_EVERY)))
    }

    /// Moves a received upload into place and makes the rename durable.
    pub async fn commit(&self, from: &Path, id: &RecordingId) -> std::io::Result<()> {
        if let Err(e) = tokio::fs::rename(from, self.path(id)).await {
            let _ = tokio::fs::remove_file(from).await;
            return Err(e);
        }
        sync_dir(&self.dir).await
    }

    pub async fn open(&self, id: &RecordingId) -> std::io::Result<Blob> {
        let file = tokio::fs::File::open(self.path(id)).await?;
        let size = file.metadata().await?.len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        Ok(Blob { size, stream: Box::pin(stream) })
    }

    pub fn delete_blocking(&self, ids: &[RecordingId]) -> std::io::Result<()> {
        for id in ids {
            match std::fs::remove_file(self.path(id)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if !ids.is_empty() {
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    pub async fn remove(&self, id: &RecordingId) -> std::io::Result<()> {
        tokio::fs::remove_file(self.path(id)).await?;
        sync_dir(&self.dir).await
    }

    /// Every entry of `blobs/`. Not followed: a symlink is not something the server
    /// wrote, nor is a directory.
    pub fn list_blocking(&self) -> std::io::Result<Vec<Listed>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let name = e?.file_name();
            let Some(id) = id_of(&name) else {
                out.push(Listed::Other(name.to_string_lossy().into_owned()));
                continue;
            };
            match std::fs::symlink_metadata(self.path(&id)) {
                Ok(meta) if meta.file_type().is_file() => out.push(Listed::Blob(id, meta.len())),
                Ok(_) => out.push(Listed::Other(name.to_string_lossy().into_owned())),
                // Deleted since it was listed (a destruction, while a server runs).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The recording whose blob a file named `name` would be; `None` for a name no
/// recording's blob has.
fn id_of(name: &OsStr) -> Option<RecordingId> {
    super::id_of(name.to_str()?)
}

/// Receives an upload into a temporary file and syncs it.
pub async fn receive(
    blobs: &LocalBlobs,
    body: axum::body::Body,
    max: u64,
    announced: Option<u64>,
    id: &RecordingId,
) -> Result<Staged, UploadError> {
    let (path, file) = blobs.create_tmp().await?;
    let mut staged = Staged::new(Some(super::Pending::File { tmp: path, blobs: blobs.clone(), id: id.clone() }));
    let (to_disk, chunks) = tokio::sync::mpsc::channel(super::WRITE_QUEUE);
    let writer = tokio::task::spawn_blocking(move || super::write_chunks(file, chunks));
    super::receive_with(body, max, announced, to_disk, writer, &mut staged).await?;
    Ok(staged)
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    let _sync = crate::monitoring::Timer::start(crate::monitoring::BLOB_FSYNC_SECONDS);
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await.map_err(std::io::Error::other)?
}
