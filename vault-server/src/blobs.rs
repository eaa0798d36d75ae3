//! The blob store: recording ciphertext as files in the data directory.
//!
//! An upload is streamed to `tmp/`, hashed as it arrives, synced, and only then renamed
//! into `blobs/`. A cut-off or refused upload never reaches `blobs/`, and the database row
//! that makes a recording visible is written only after the rename, so no partial
//! recording is ever served.

use std::path::{Path, PathBuf};

use axum::body::Body;
use futures_util::StreamExt;
use vault_core::ids::RecordingId;

/// Chunks received but not yet written: a few MiB at most, whatever the upload's size.
const WRITE_QUEUE: usize = 4;
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
    /// CRC-32 of the bytes received, for the uploader's end-to-end transfer check.
    pub crc32: u32,
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
    ///
    /// The request's task checks and hashes each chunk as it arrives and hands it, without
    /// copying, to a blocking thread that writes it; receiving, hashing and writing into
    /// the page cache overlap instead of taking turns.
    pub async fn receive(&self, body: Body, max: u64) -> Result<Staged, UploadError> {
        let path = self.tmp.join(format!("{}.part", vault_core::ids::random_hex16()));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await?.into_std().await;
        let mut staged = Staged { path: Some(path), sha256: String::new(), crc32: 0, size: 0 };
        let (to_disk, chunks) = tokio::sync::mpsc::channel::<ToDisk>(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || write_chunks(file, chunks));
        let received = receive_into(body, max, &to_disk, &mut staged).await;
        let synced = received.is_ok() && to_disk.send(ToDisk::Sync).await.is_ok();
        drop(to_disk);
        let written = writer.await.map_err(std::io::Error::other)?;
        // A writer that failed (a full disk, say) explains why receiving stopped.
        written?;
        received?;
        if !synced {
            return Err(std::io::Error::other("the blob writer stopped before the upload was synced").into());
        }
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

/// The receiving half of [`BlobStore::receive`]: checks, counts and hashes each chunk and
/// queues it for the writer; fills in `staged`'s size and digests.
async fn receive_into(
    body: Body,
    max: u64,
    to_disk: &tokio::sync::mpsc::Sender<ToDisk>,
    staged: &mut Staged,
) -> Result<(), UploadError> {
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut crc = crc32fast::Hasher::new();
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
        sha.update(&chunk);
        crc.update(&chunk);
        if to_disk.send(ToDisk::Data(chunk)).await.is_err() {
            // The writer failed; `receive` reports its error.
            return Err(std::io::Error::other("the blob writer stopped").into());
        }
    }
    if !header_ok {
        return Err(UploadError::NotAge);
    }
    staged.sha256 = hex::encode(sha.finish());
    staged.crc32 = crc.finalize();
    Ok(())
}

/// What the receiving task hands to the blob writer.
enum ToDisk {
    Data(axum::body::Bytes),
    /// Everything was received: make it durable. A queue closed without it means the
    /// upload failed, and the writer stops without syncing.
    Sync,
}

fn write_chunks(mut file: std::fs::File, mut chunks: tokio::sync::mpsc::Receiver<ToDisk>) -> std::io::Result<()> {
    use std::io::Write;
    while let Some(next) = chunks.blocking_recv() {
        match next {
            ToDisk::Data(bytes) => file.write_all(&bytes)?,
            ToDisk::Sync => return file.sync_all(),
        }
    }
    Ok(())
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await.map_err(std::io::Error::other)?
}
