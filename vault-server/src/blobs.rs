//! The blob store: recording ciphertext as files in the data directory.
//!
//! An upload is streamed to `tmp/`, hashed as it arrives, synced, and only then renamed
//! into `blobs/`. A cut-off or refused upload never reaches `blobs/`, and the database row
//! that makes a recording visible is written only after the rename, so no partial
//! recording is ever served.

use std::path::{Path, PathBuf};

use axum::body::Body;
use futures_util::StreamExt;
use vault_core::durable::{FLUSH_EVERY, SyncingFile};
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
    /// CRC-32 of the bytes received, for the uploader's end-to-end transfer check. (The
    /// SHA-256 of the ciphertext is the recorder's: it signs the hash it computed while
    /// sending, and fetching clients check the ciphertext against that signature. A
    /// second SHA-256 here would cost a 2-core machine 0.3 s per GiB of upload and prove
    /// nothing a client relies on.)
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

    /// Streams `body` into a temporary file, checksumming it, and syncs it to disk.
    ///
    /// The request's task checks and checksums each chunk as it arrives and hands it,
    /// without copying, to a blocking thread that writes it; receiving and writing into
    /// the page cache overlap instead of taking turns.
    pub async fn receive(&self, body: Body, max: u64) -> Result<Staged, UploadError> {
        let path = self.tmp.join(format!("{}.part", vault_core::ids::random_hex16()));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await?.into_std().await;
        let mut staged = Staged { path: Some(path), crc32: 0, size: 0 };
        // Flushed to disk as it arrives, so the final sync does not wait for all of it.
        let file = SyncingFile::new(file, FLUSH_EVERY);
        stream_to(body, max, file, &mut staged).await?;
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

    /// Deletes the ciphertext of `ids` (those already gone are fine) and makes the
    /// deletions durable. Blocking: run it off the async threads and off the database
    /// writer.
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

    /// Removes a blob (used when the database refuses a committed upload).
    pub async fn remove(&self, id: &RecordingId) -> std::io::Result<()> {
        tokio::fs::remove_file(self.path(id)).await?;
        sync_dir(&self.dir).await
    }
}

/// Where a received upload is written: the temporary file (or a stand-in in tests).
trait Sink: std::io::Write + Send + 'static {
    /// Makes everything written durable.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl Sink for SyncingFile {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_all()
    }
}

/// Receives `body` into `sink` on a blocking thread and syncs it, filling in `staged`.
/// Nothing is synced unless the whole body arrived and passed every check.
async fn stream_to<S: Sink>(body: Body, max: u64, sink: S, staged: &mut Staged) -> Result<(), UploadError> {
    let (to_disk, chunks) = tokio::sync::mpsc::channel::<ToDisk>(WRITE_QUEUE);
    let writer = tokio::task::spawn_blocking(move || write_chunks(sink, chunks));
    let received = receive_into(body, max, &to_disk, staged).await;
    let synced = received.is_ok() && to_disk.send(ToDisk::Sync).await.is_ok();
    drop(to_disk);
    let written = writer.await.map_err(std::io::Error::other)?;
    // A writer that failed (a full disk, say) explains why receiving stopped.
    written?;
    received?;
    if !synced {
        return Err(std::io::Error::other("the blob writer stopped before the upload was synced").into());
    }
    Ok(())
}

/// The receiving half of [`BlobStore::receive`]: checks, counts and checksums each chunk
/// and queues it for the writer; fills in `staged`'s size and CRC-32.
async fn receive_into(
    body: Body,
    max: u64,
    to_disk: &tokio::sync::mpsc::Sender<ToDisk>,
    staged: &mut Staged,
) -> Result<(), UploadError> {
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
        crc.update(&chunk);
        if to_disk.send(ToDisk::Data(chunk)).await.is_err() {
            // The writer failed; `receive` reports its error.
            return Err(std::io::Error::other("the blob writer stopped").into());
        }
    }
    if !header_ok {
        return Err(UploadError::NotAge);
    }
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

fn write_chunks<S: Sink>(mut sink: S, mut chunks: tokio::sync::mpsc::Receiver<ToDisk>) -> std::io::Result<()> {
    while let Some(next) = chunks.blocking_recv() {
        match next {
            ToDisk::Data(bytes) => sink.write_all(&bytes)?,
            ToDisk::Sync => return sink.sync(),
        }
    }
    Ok(())
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await.map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A sink that keeps what it is given, can fail after `room` bytes, and counts syncs.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Recorded>>);

    #[derive(Default)]
    struct Recorded {
        bytes: Vec<u8>,
        room: Option<usize>,
        syncs: usize,
    }

    impl io::Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut r = self.0.lock().unwrap();
            if r.room.is_some_and(|room| r.bytes.len() + buf.len() > room) {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device"));
            }
            r.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink for Recorder {
        fn sync(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().syncs += 1;
            Ok(())
        }
    }

    /// An age ciphertext of `n` bytes of plaintext, as a body of 64 KiB chunks; with
    /// `cut`, the body breaks off with an error after that many chunks.
    fn body(n: usize, cut: Option<usize>) -> (Vec<u8>, Body) {
        let key = vault_core::crypto::CaseKey::generate();
        let recipient = key.identity().to_public();
        let mut ct = Vec::new();
        vault_core::crypto::encrypt_stream(&recipient, &mut &vec![7u8; n][..], &mut ct).unwrap();
        let mut items: Vec<io::Result<Vec<u8>>> = ct.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        if let Some(k) = cut {
            items.truncate(k);
            items.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset")));
        }
        (ct, Body::from_stream(futures_util::stream::iter(items)))
    }

    fn staged() -> Staged {
        Staged { path: None, crc32: 0, size: 0 }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn a_whole_upload_is_written_checksummed_and_synced_once() {
        let sink = Recorder::default();
        let (ct, body) = body(1_000_000, None);
        let mut st = staged();
        run(stream_to(body, u64::MAX, sink.clone(), &mut st)).unwrap();
        let r = sink.0.lock().unwrap();
        assert!(r.bytes == ct, "the stored bytes differ from the upload");
        assert_eq!(r.syncs, 1);
        assert_eq!(st.size, ct.len() as u64);
        assert_eq!(st.crc32, crc32fast::hash(&ct));
    }

    #[test]
    fn fail_a_full_disk_fails_the_upload_with_its_own_error_and_syncs_nothing() {
        let sink = Recorder::default();
        sink.0.lock().unwrap().room = Some(300_000);
        let (_, body) = body(1_000_000, None);
        let err = run(stream_to(body, u64::MAX, sink.clone(), &mut staged())).unwrap_err();
        match err {
            UploadError::Io(e) => assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}"),
            other => panic!("expected the disk's error, got {other:?}"),
        }
        assert_eq!(sink.0.lock().unwrap().syncs, 0);
    }

    #[test]
    fn fail_a_cut_off_or_oversized_upload_syncs_nothing() {
        let sink = Recorder::default();
        let (_, cut) = body(1_000_000, Some(5));
        let err = run(stream_to(cut, u64::MAX, sink.clone(), &mut staged())).unwrap_err();
        assert!(matches!(err, UploadError::Incomplete(_)), "{err:?}");
        let (_, big) = body(1_000_000, None);
        let err = run(stream_to(big, 500_000, sink.clone(), &mut staged())).unwrap_err();
        assert!(matches!(err, UploadError::TooLarge(500_000)), "{err:?}");
        let garbage = Body::from(vec![0u8; 100_000]);
        let err = run(stream_to(garbage, u64::MAX, sink.clone(), &mut staged())).unwrap_err();
        assert!(matches!(err, UploadError::NotAge), "{err:?}");
        assert_eq!(sink.0.lock().unwrap().syncs, 0);
    }
}
