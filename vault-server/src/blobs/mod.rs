//! The blob store: recording ciphertext, in one of two backends.
//!
//! - [`local`]: files in the data directory's `blobs/` (the embedded default);
//! - [`s3`]: an S3-compatible object store (Garage, MinIO, Ceph, AWS S3), for vaults
//!   whose recordings outgrow one disk.
//!
//! Either way an upload is checked and checksummed here as it streams in
//! ([`receive_with`]) and handed, without copying, to the backend's writer; it becomes
//! durable (synced and renamed, or the object store's upload completed) before the
//! database row that makes a recording visible is written. A cut-off or refused upload
//! leaves nothing visible, and what a crash leaves behind (a temporary file, an
//! unfinished multipart upload, a blob no row names) is removed at the next start
//! (`state::open_state`).
//!
//! The server cannot decrypt, but it refuses what no one could: a body that is not as
//! long as its sender announced, or whose length after the age header is not one an age
//! payload can have (the length alone decides the chunk layout, so this costs no work per
//! chunk).

pub mod local;
pub mod s3;
pub mod settings;

use std::pin::Pin;

use axum::body::Body;
use futures_util::StreamExt;
use vault_core::ids::RecordingId;

pub use local::LocalBlobs;
pub use s3::ObjectBlobs;
pub use settings::BlobArgs;

/// Chunks received but not yet written: a few MiB at most, whatever the upload's size.
const WRITE_QUEUE: usize = 16;
/// Bytes of an upload inspected for the age header before anything else is accepted.
const HEADER_WINDOW: usize = 64 * 1024;

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The body does not start with an age header.
    #[error("the upload is not age ciphertext; encrypt it to the case recipient (vault-cli upload does this)")]
    NotAge,
    /// The announced length, or the body, is larger than the server's limit.
    #[error("the upload is larger than this server accepts ({0} bytes)")]
    TooLarge(u64),
    /// The request has no usable `x-vault-upload-length` header.
    #[error("the upload must announce its length in x-vault-upload-length; use vault-cli of the same version")]
    LengthNotAnnounced,
    /// `Content-Length` and `x-vault-upload-length` disagree.
    #[error(
        "the upload's Content-Length ({content_length}) differs from its x-vault-upload-length ({announced}); \
         nothing was stored. Send both as the length of the whole ciphertext"
    )]
    LengthConflict { announced: u64, content_length: u64 },
    /// The body went on past the length it announced.
    #[error(
        "the upload is longer than the {0} bytes it announced in x-vault-upload-length; nothing was stored. \
         If the file was still being written, upload it again once it is complete"
    )]
    LongerThanAnnounced(u64),
    /// The body ended cleanly before the length it announced.
    #[error(
        "the upload ended after {received} of the {announced} bytes it announced in x-vault-upload-length; \
         nothing was stored. Upload it again"
    )]
    ShorterThanAnnounced { announced: u64, received: u64 },
    /// The (announced) length cannot be that of a whole age file with this header.
    #[error(
        "no one could ever decrypt this upload: {0}; nothing was stored. \
         Send the whole ciphertext as it was encrypted (vault-cli upload does this)"
    )]
    Undecryptable(&'static str),
    /// The body broke off (the connection failed) before it ended.
    #[error("the upload was cut off before it was complete: {0}")]
    Incomplete(String),
    /// Writing the upload to disk failed.
    #[error("storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a recording's ciphertext lives.
#[derive(Clone, Debug)]
pub enum BlobStore {
    Local(LocalBlobs),
    Object(ObjectBlobs),
}

/// A recording's ciphertext, as it is read: its stored size and its bytes.
pub struct Blob {
    pub size: u64,
    pub stream: Pin<Box<dyn futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> + Send>>,
}

/// What a listing of the store finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// A recording's blob, and its size.
    Blob(RecordingId, u64),
    /// Anything else (another name, a directory, a symlink), by name: never removed.
    Other(String),
}

/// An upload received whole and made durable, not yet committed; removed on drop.
pub struct Staged {
    pending: Option<Pending>,
    /// CRC-32 of the bytes received, for the uploader's end-to-end transfer check. (The
    /// SHA-256 of the ciphertext is the recorder's: it signs the hash it computed while
    /// sending, and fetching clients check the ciphertext against that signature. A
    /// second SHA-256 here would cost a 2-core machine 0.3 s per GiB of upload and prove
    /// nothing a client relies on.)
    pub crc32: u32,
    pub size: u64,
}

/// What a staged upload left to commit or remove.
enum Pending {
    /// A synced file in `tmp/`, renamed into `blobs/` on commit.
    File { tmp: std::path::PathBuf, blobs: LocalBlobs, id: RecordingId },
    /// An object already in place (an object store has no rename): committing is
    /// keeping it.
    Object { blobs: ObjectBlobs, id: RecordingId },
}

impl Staged {
    fn new(pending: Option<Pending>) -> Self {
        Self { pending, crc32: 0, size: 0 }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        match self.pending.take() {
            None => {}
            Some(Pending::File { tmp, .. }) => {
                let _ = std::fs::remove_file(tmp);
            }
            // Deleted in the background; one a crash keeps is an orphan, which the next
            // start removes.
            Some(Pending::Object { blobs, id }) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        if let Err(e) = blobs.remove(&id).await {
                            tracing::warn!(recording = %id, detail = %e, "cannot remove an uncommitted upload's object");
                        }
                    });
                }
            }
        }
    }
}

/// The name of recording `id`'s blob (a file in `blobs/`, or an object under the
/// prefix). The id type admits only "rec_" and hex digits, so a path made with it stays
/// inside its directory.
pub fn file_name(id: &RecordingId) -> String {
    format!("{id}.age")
}

/// The recording whose blob is named `name` (the inverse of [`file_name`]).
pub fn id_of(name: &str) -> Option<RecordingId> {
    name.strip_suffix(".age")?.parse().ok()
}

impl BlobStore {
    /// The embedded backend: `dir` (the data dir's `blobs/`), staging in `tmp`.
    pub fn local(dir: std::path::PathBuf, tmp: std::path::PathBuf) -> Self {
        Self::Local(LocalBlobs::new(dir, tmp))
    }

    /// Where the ciphertext lives, for messages: `blobs/ in the data dir` or
    /// `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(_) => "blobs/ in the data dir".to_owned(),
            Self::Object(o) => o.url(),
        }
    }

    /// Streams `body`, the ciphertext of new recording `id`, into the store, checking and
    /// checksumming it, and makes it durable. `announced` is the length the sender
    /// announced (`None`: it did not, which is refused once the body is seen to be age,
    /// so that what is not age is told so).
    pub async fn receive(
        &self,
        body: Body,
        max: u64,
        announced: Option<u64>,
        id: &RecordingId,
    ) -> Result<Staged, UploadError> {
        match self {
            Self::Local(l) => local::receive(l, body, max, announced, id).await,
            Self::Object(o) => s3::receive(o, body, max, announced, id).await,
        }
    }

    /// Puts a staged upload in its place for good.
    pub async fn commit(&self, mut staged: Staged) -> std::io::Result<()> {
        match staged.pending.take().expect("staged upload committed twice") {
            Pending::File { tmp, blobs, id } => blobs.commit(&tmp, &id).await,
            Pending::Object { .. } => Ok(()),
        }
    }

    /// Whether the store answers (for `/readyz`): the data dir's is there when the server
    /// is; an object store must answer a read of `vault.json` within 5 s.
    pub async fn reachable(&self) -> bool {
        match self {
            Self::Local(_) => true,
            Self::Object(o) => o.reachable().await,
        }
    }

    /// Opens recording `id`'s ciphertext for reading.
    pub async fn open(&self, id: &RecordingId) -> std::io::Result<Blob> {
        match self {
            Self::Local(l) => l.open(id).await,
            Self::Object(o) => o.open(id).await,
        }
    }

    /// Removes a blob (used when the database refuses a committed upload).
    pub async fn remove(&self, id: &RecordingId) -> std::io::Result<()> {
        match self {
            Self::Local(l) => l.remove(id).await,
            Self::Object(o) => o.remove(id).await,
        }
    }

    /// Deletes the ciphertext of `ids` (those already gone are fine), durably. Blocking:
    /// run it off the async threads and off the database writer.
    pub fn delete_blocking(&self, ids: &[RecordingId]) -> std::io::Result<()> {
        match self {
            Self::Local(l) => l.delete_blocking(ids),
            Self::Object(o) => o.delete_blocking(ids),
        }
    }

    /// Everything the store holds, in no particular order. Blocking.
    pub fn list_blocking(&self) -> std::io::Result<Vec<Listed>> {
        match self {
            Self::Local(l) => l.list_blocking(),
            Self::Object(o) => o.list_blocking(),
        }
    }

    /// Removes what a crash left of uploads in progress (unfinished multipart uploads);
    /// returns how many. Run at start-up, before `tmp/` is cleared. Blocking.
    pub fn recover_blocking(&self) -> anyhow::Result<usize> {
        match self {
            Self::Local(_) => Ok(0),
            Self::Object(o) => o.recover_blocking(),
        }
    }
}

/// Where a received upload is written: the temporary file (or a stand-in in tests).
trait Sink: std::io::Write + Send + 'static {
    /// Makes everything written durable.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl Sink for vault_core::durable::SyncingFile {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_all()
    }
}

/// Receives `body` into `to_disk`, whose consumer is `writer` (a backend's), and waits
/// for the writer, filling in `staged`. The writer makes the upload durable only when it
/// is handed [`ToDisk::Sync`], which it is only once the whole body arrived and passed
/// every check; it reports its own failure (a full disk, an object store that refused),
/// which then explains why receiving stopped.
async fn receive_with(
    body: Body,
    max: u64,
    announced: Option<u64>,
    to_disk: tokio::sync::mpsc::Sender<ToDisk>,
    writer: tokio::task::JoinHandle<std::io::Result<()>>,
    staged: &mut Staged,
) -> Result<(), UploadError> {
    let received = receive_into(body, max, announced, &to_disk, staged).await;
    let synced = received.is_ok() && to_disk.send(ToDisk::Sync).await.is_ok();
    drop(to_disk);
    let written = writer.await.map_err(std::io::Error::other)?;
    written?;
    received?;
    if !synced {
        return Err(std::io::Error::other("the blob writer stopped before the upload was synced").into());
    }
    Ok(())
}

/// The receiving half of [`BlobStore::receive`]: checks, counts and checksums each chunk
/// and queues it for the writer; fills in `staged`'s size and CRC-32.
///
/// Once the header is complete, the announced length is checked to be one a whole age
/// file with that header can have; at the end, the body must have been exactly that long.
/// Together they check the payload's length without keeping anything but counts.
async fn receive_into(
    body: Body,
    max: u64,
    announced: Option<u64>,
    to_disk: &tokio::sync::mpsc::Sender<ToDisk>,
    staged: &mut Staged,
) -> Result<(), UploadError> {
    if announced.is_some_and(|n| n > max) {
        return Err(UploadError::TooLarge(max));
    }
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
        if let Some(n) = announced
            && staged.size > n
        {
            return Err(UploadError::LongerThanAnnounced(n));
        }
        if !header_ok {
            // Invariant: head.len() <= HEADER_WINDOW here, so room >= 1.
            let room = HEADER_WINDOW + 1 - head.len();
            head.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if !vault_core::crypto::looks_like_age(&head) {
                return Err(UploadError::NotAge);
            }
            let announced = announced.ok_or(UploadError::LengthNotAnnounced)?;
            match vault_core::crypto::header_len(&head) {
                Some(header) => {
                    // The header was received, so it is no longer than the announced length.
                    let payload = announced.saturating_sub(header as u64);
                    vault_core::crypto::payload_len_is_possible(payload).map_err(UploadError::Undecryptable)?;
                    header_ok = true;
                    head = Vec::new();
                }
                None if head.len() > HEADER_WINDOW => return Err(UploadError::NotAge),
                None => {}
            }
        }
        crc.update(&chunk);
        if to_disk.send(ToDisk::Data(chunk)).await.is_err() {
            // The writer failed (a full disk, say); `receive` reports its error. Read on
            // (discarding, a bounded amount) so that the client, still sending, gets to
            // read that answer: a connection closed under a client that is writing is
            // reset, and the reset throws away the answer it had not read yet.
            drain(&mut stream, announced.map_or(0, |n| n.saturating_sub(staged.size))).await;
            return Err(std::io::Error::other("the blob writer stopped").into());
        }
    }
    if !header_ok {
        return Err(UploadError::NotAge);
    }
    // `header_ok` means an announced length was checked; the body must be all of it.
    if let Some(n) = announced
        && staged.size != n
    {
        return Err(UploadError::ShorterThanAnnounced { announced: n, received: staged.size });
    }
    staged.crc32 = crc.finalize();
    Ok(())
}

/// Most bytes of a failed upload read and discarded before its answer, and for how long.
const DRAIN_MAX: u64 = 64 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and discards up to `left` more bytes of a failed upload (at most [`DRAIN_MAX`],
/// for at most [`DRAIN_TIME`]).
async fn drain<S>(stream: &mut S, left: u64)
where
    S: futures_util::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin,
{
    let mut left = left.min(DRAIN_MAX);
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while left > 0 {
            match stream.next().await {
                Some(Ok(chunk)) => left = left.saturating_sub(chunk.len() as u64),
                _ => break,
            }
        }
    })
    .await;
}

/// Reads and discards a whole upload body that is not stored (an upload of a recording
/// the server has already), at most `max` bytes, so that the client, still sending, gets
/// to read the answer. Returns how many bytes it read.
pub async fn discard(body: Body, max: u64) -> u64 {
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    while read <= max {
        match stream.next().await {
            Some(Ok(chunk)) => read += chunk.len() as u64,
            _ => break,
        }
    }
    read
}

/// What the receiving task hands to the blob writer.
enum ToDisk {
    Data(axum::body::Bytes),
    /// Everything was received: make it durable. A queue closed without it means the
    /// upload failed, and the writer stops without syncing.
    Sync,
}

/// The local backend's writer: writes the chunks into `sink` on a blocking thread and
/// syncs it when told to.
fn write_chunks<S: Sink>(mut sink: S, mut chunks: tokio::sync::mpsc::Receiver<ToDisk>) -> std::io::Result<()> {
    while let Some(next) = chunks.blocking_recv() {
        match next {
            ToDisk::Data(bytes) => sink.write_all(&bytes)?,
            ToDisk::Sync => {
                let _sync = crate::monitoring::Timer::start(crate::monitoring::BLOB_FSYNC_SECONDS);
                return sink.sync();
            }
        }
    }
    Ok(())
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
        Staged { pending: None, crc32: 0, size: 0 }
    }

    /// Receives `body` into `sink` as the local backend does.
    async fn stream_to<S: Sink>(
        body: Body,
        max: u64,
        announced: Option<u64>,
        sink: S,
        staged: &mut Staged,
    ) -> Result<(), UploadError> {
        let (to_disk, chunks) = tokio::sync::mpsc::channel(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || write_chunks(sink, chunks));
        receive_with(body, max, announced, to_disk, writer, staged).await
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn a_whole_upload_is_written_checksummed_and_synced_once() {
        let sink = Recorder::default();
        let (ct, body) = body(1_000_000, None);
        let mut st = staged();
        run(stream_to(body, u64::MAX, Some(ct.len() as u64), sink.clone(), &mut st)).unwrap();
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
        let (ct, body) = body(1_000_000, None);
        let err = run(stream_to(body, u64::MAX, Some(ct.len() as u64), sink.clone(), &mut staged())).unwrap_err();
        match err {
            UploadError::Io(e) => assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}"),
            other => panic!("expected the disk's error, got {other:?}"),
        }
        assert_eq!(sink.0.lock().unwrap().syncs, 0);
    }

    #[test]
    fn fail_a_cut_off_or_oversized_upload_syncs_nothing() {
        let sink = Recorder::default();
        let (ct, cut) = body(1_000_000, Some(5));
        let err = run(stream_to(cut, u64::MAX, Some(ct.len() as u64), sink.clone(), &mut staged())).unwrap_err();
        assert!(matches!(err, UploadError::Incomplete(_)), "{err:?}");
        let (ct, big) = body(1_000_000, None);
        let err = run(stream_to(big, 500_000, Some(ct.len() as u64), sink.clone(), &mut staged())).unwrap_err();
        assert!(matches!(err, UploadError::TooLarge(500_000)), "{err:?}");
        let garbage = Body::from(vec![0u8; 100_000]);
        let err = run(stream_to(garbage, u64::MAX, Some(100_000), sink.clone(), &mut staged())).unwrap_err();
        assert!(matches!(err, UploadError::NotAge), "{err:?}");
        assert_eq!(sink.0.lock().unwrap().syncs, 0);
    }

    /// Plaintext bytes per chunk of an age payload, and the tag each chunk ends with.
    const CHUNK: usize = 64 * 1024;
    const TAG: usize = 16;
    const NONCE: usize = 16;

    /// An age ciphertext of `n` bytes of plaintext, and the length of its header.
    fn ciphertext(n: usize) -> (Vec<u8>, usize) {
        let (ct, _) = body(n, None);
        let header = vault_core::crypto::header_len(&ct).expect("a complete header");
        (ct, header)
    }

    /// The outcome of receiving an upload, what the sink was given, and how often it was
    /// synced.
    type Received = (Result<Staged, UploadError>, Vec<u8>, usize);

    /// Receives `bytes`, in pieces of `piece` bytes, announced as `announced`.
    fn receive_bytes(bytes: &[u8], piece: usize, max: u64, announced: Option<u64>) -> Received {
        let items: Vec<io::Result<Vec<u8>>> = bytes.chunks(piece).map(|c| Ok(c.to_vec())).collect();
        let body = Body::from_stream(futures_util::stream::iter(items));
        let sink = Recorder::default();
        let mut st = staged();
        let result = run(stream_to(body, max, announced, sink.clone(), &mut st)).map(|()| st);
        let r = sink.0.lock().unwrap();
        (result, r.bytes.clone(), r.syncs)
    }

    #[test]
    fn uploads_of_every_edge_size_are_accepted_whole() {
        for n in [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let (ct, _) = ciphertext(n);
            // Small pieces split the header across chunks of the body; large ones do not.
            for piece in [7, CHUNK] {
                let (result, stored, syncs) = receive_bytes(&ct, piece, u64::MAX, Some(ct.len() as u64));
                let st = result.unwrap_or_else(|e| panic!("{n} bytes in pieces of {piece}: {e}"));
                assert_eq!((st.size, st.crc32, syncs), (ct.len() as u64, crc32fast::hash(&ct), 1), "{n} bytes");
                assert!(stored == ct, "{n} bytes: the stored bytes differ from the upload");
            }
        }
    }

    #[test]
    fn fail_bodies_no_one_could_decrypt_are_refused_and_nothing_is_synced() {
        // Two chunks: a full one and one of 5 bytes of plaintext.
        let (ct, header) = ciphertext(CHUNK + 5);
        let full_chunk = header + NONCE + CHUNK + TAG;
        assert_eq!(ct.len(), full_chunk + 5 + TAG);
        // Each cut short and announced as sent.
        let cases = [
            ("the header alone", header, "payload nonce"),
            ("the header and the nonce", header + NONCE, "without the chunk"),
            ("15 bytes after the nonce", header + NONCE + 15, "shorter than the 16-byte tag"),
            ("a tag alone after a full chunk", full_chunk + TAG, "an empty last chunk"),
            ("15 bytes after a full chunk", full_chunk + 15, "shorter than the 16-byte tag"),
        ];
        for (what, len, why) in cases {
            for piece in [7, CHUNK] {
                let (result, _, syncs) = receive_bytes(&ct[..len], piece, u64::MAX, Some(len as u64));
                match result {
                    Err(e @ UploadError::Undecryptable(_)) => {
                        let msg = e.to_string();
                        assert!(msg.contains(why) && msg.contains("nothing was stored"), "{what}: {msg}");
                    }
                    other => panic!("{what}: expected a refusal, got {:?}", other.map(|s| s.size)),
                }
                assert_eq!(syncs, 0, "{what}");
            }
        }
    }

    #[test]
    fn fail_a_body_of_another_length_than_announced_is_refused() {
        let (ct, header) = ciphertext(2 * CHUNK + 5);
        let whole = Some(ct.len() as u64);
        // Cut at a chunk boundary: a possible length, but not the one announced.
        let boundary = header + NONCE + CHUNK + TAG;
        let (result, _, syncs) = receive_bytes(&ct[..boundary], CHUNK, u64::MAX, whole);
        match result {
            Err(UploadError::ShorterThanAnnounced { announced, received }) => {
                assert_eq!((announced, received), (ct.len() as u64, boundary as u64));
            }
            other => panic!("expected a refusal, got {:?}", other.map(|s| s.size)),
        }
        assert_eq!(syncs, 0);
        // More than announced: refused as soon as it is, not at the end.
        let (result, stored, syncs) = receive_bytes(&ct, CHUNK, u64::MAX, Some(boundary as u64));
        assert!(matches!(result, Err(UploadError::LongerThanAnnounced(n)) if n == boundary as u64));
        assert!(stored.len() < ct.len() && syncs == 0);
        // Nothing announced: refused once the body is seen to be age; garbage is told it
        // is not age.
        let (result, stored, _) = receive_bytes(&ct, CHUNK, u64::MAX, None);
        let err = result.err().expect("refused");
        assert!(matches!(err, UploadError::LengthNotAnnounced), "{err:?}");
        assert!(err.to_string().contains("x-vault-upload-length"), "{err}");
        assert!(stored.is_empty());
        let (result, _, _) = receive_bytes(b"RIFF....WAVEfmt ", 4, u64::MAX, None);
        assert!(matches!(result, Err(UploadError::NotAge)));
        // Announced larger than the server takes: refused before a byte is read.
        let (result, stored, _) = receive_bytes(&ct, CHUNK, 1000, Some(1001));
        assert!(matches!(result, Err(UploadError::TooLarge(1000))));
        assert!(stored.is_empty());
    }

    #[test]
    fn fail_an_impossible_announced_length_is_refused_before_the_rest_arrives() {
        // A body that would break off after its first piece: the refusal comes first.
        let (ct, header) = ciphertext(100);
        let first = ct[..header + NONCE + 15].to_vec();
        let items = vec![Ok(first.clone()), Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset"))];
        let body = Body::from_stream(futures_util::stream::iter(items));
        let sink = Recorder::default();
        let err = run(stream_to(body, u64::MAX, Some(first.len() as u64), sink.clone(), &mut staged())).unwrap_err();
        assert!(matches!(err, UploadError::Undecryptable(_)), "{err:?}");
        assert!(sink.0.lock().unwrap().bytes.is_empty());
    }
}
