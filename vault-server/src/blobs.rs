//! The blob store: recording ciphertext as files in the data directory.
//!
//! An upload is streamed to `tmp/`, hashed as it arrives, synced, and only then renamed
//! into `blobs/`. A cut-off or refused upload never reaches `blobs/`, and the database row
//! that makes a recording visible is written only after the rename, so no partial
//! recording is ever served.

use std::path::{Path, PathBuf};

use axum::body::Body;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use vault_core::ids::RecordingId;

/// Bytes buffered before each write to the temporary file.
const WRITE_BUFFER: usize = 1 << 20;
/// Bytes of an upload inspected for the age header before anything else is accepted.
const HEADER_WINDOW: usize = 64 * 1024;

#[derive(Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is not age ciphertext; encrypt it to the case recipient (vault-cli upload does this)")]
    NotAge,
    #[error("the upload is larger than this server accepts ({0} bytes)")]
    TooLarge(u64),
    #[error("the upload was cut off before it was complete: {0}")]
    Incomplete(String),
    #[error("storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// An upload received completely into `tmp/`; deleted on drop unless committed.
pub struct Staged {
    path: Option<PathBuf>,
    pub sha256: String,
    pub size: u64,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl BlobStore {
    pub fn new(dir: PathBuf, tmp: PathBuf) -> Self {
        Self { dir, tmp }
    }

    pub fn path(&self, id: &RecordingId) -> PathBuf {
        // The id type admits only "rec_" and hex digits, so this stays inside `dir`.
        self.dir.join(format!("{id}.age"))
    }

    /// Streams `body` into a temporary file, hashing it, and syncs it to disk.
    pub async fn receive(&self, body: Body, max: u64) -> Result<Staged, UploadError> {
        let path = self.tmp.join(format!("{}.part", vault_core::ids::random_hex16()));
        let mut staged = Staged { path: Some(path.clone()), sha256: String::new(), size: 0 };
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await?;
        // Large writes: each write to a tokio file is a hand-off to the blocking pool.
        let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        let mut head: Vec<u8> = Vec::new();
        let mut header_ok = false;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit")) {
                    UploadError::TooLarge(max)
                } else {
                    UploadError::Incomplete(e.to_string())
                }
            })?;
            staged.size += chunk.len() as u64;
            if staged.size > max {
                return Err(UploadError::TooLarge(max));
            }
            if !header_ok {
                // Invariant: head.len() <= HEADER_WINDOW here, so room >= 1.
                let room = HEADER_WINDOW + 1 - head.len();
                head.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if !vault_core::crypto::looks_like_age(&head) {
                    return Err(UploadError::NotAge);
                }
                header_ok = vault_core::crypto::has_complete_header(&head);
                if !header_ok && head.len() > HEADER_WINDOW {
                    return Err(UploadError::NotAge);
                }
                if header_ok {
                    head = Vec::new();
                }
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        if !header_ok {
            return Err(UploadError::NotAge);
        }
        file.flush().await?;
        file.into_inner().sync_all().await?;
        staged.sha256 = hex::encode(hasher.finish());
        Ok(staged)
    }

    /// Moves a staged upload into place and makes the rename durable.
    pub async fn commit(&self, mut staged: Staged, id: &RecordingId) -> std::io::Result<()> {
        let from = staged.path.take().expect("staged upload committed twice");
        let to = self.path(id);
        if let Err(e) = tokio::fs::rename(&from, &to).await {
            let _ = tokio::fs::remove_file(&from).await;
            return Err(e);
        }
        sync_dir(&self.dir).await
    }

    /// Makes deletions in the blob directory durable.
    pub fn sync_dir_blocking(&self) -> std::io::Result<()> {
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Removes a blob (used when the database refuses a committed upload).
    pub async fn remove(&self, id: &RecordingId) -> std::io::Result<()> {
        tokio::fs::remove_file(self.path(id)).await?;
        sync_dir(&self.dir).await
    }
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await.map_err(std::io::Error::other)?
}
