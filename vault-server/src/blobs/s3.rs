//! The object-store backend: ciphertext as objects in an S3-compatible bucket, through
//! the `object_store` crate.
//!
//! Under the configured prefix (`s3://BUCKET/PREFIX`):
//! - `blobs/<recording id>.age`: a recording's ciphertext, written once, only deleted;
//! - `vault.json`: which vault (log origin) the prefix belongs to. A vault refuses a
//!   prefix that holds another vault's objects, or objects of no vault: at start-up it
//!   removes blobs no recording names, and must never remove someone else's.
//!
//! An object store has no rename, so an upload goes straight to its final name: in one
//! request when it fits in a part, else as a multipart upload of [`PART`]-byte parts,
//! [`IN_FLIGHT`] at a time while the next one fills (memory per upload stays at 2 parts,
//! whatever its size, and under [`BUFFERED_AT_MOST`] over all uploads). Each request's payload is
//! signed with its SHA-256 (SigV4), which the store checks. A multipart upload starts
//! only once its first part is full (the body's header and announced length have been
//! checked by then), is invisible until it is completed, and is completed only once the
//! whole body arrived and passed every check; one that fails is aborted. While it runs
//! it is named in a `tmp/<random>.multipart` file, and the next start aborts one a crash
//! interrupted ([`ObjectBlobs::recover_blocking`]). A completed object whose row never
//! committed is an orphan, which the next start removes and logs like a local one.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, PutPayloadMut};
use serde::{Deserialize, Serialize};
use vault_core::ids::RecordingId;

use super::{Blob, Listed, Pending, Staged, ToDisk, UploadError};

/// Bytes per part of a multipart upload (S3 wants at least 5 MiB for all but the last;
/// equal parts also suit stores that want them equal, such as R2). An upload no larger
/// goes in one request.
pub const PART: usize = 8 << 20;
/// Parts of one upload sent at once while the next one fills. With two, a 1 GiB upload
/// to s3s-fs on a 2-core machine took 8.4 s instead of 9.0 s, and the server's peak RSS
/// was 68-70 MiB instead of 42-50 MiB (BENCHMARKS.md, "Object storage").
const IN_FLIGHT: usize = 1;
/// Bytes of uploads held in memory at once, over all uploads (the local backend writes
/// to the page cache instead): an upload waits for room before it buffers a part, and
/// its sender meanwhile (TCP's flow control).
const BUFFERED_AT_MOST: usize = 128 << 20;
/// Objects deleted at once.
const DELETE_AT_ONCE: usize = 16;
/// The file naming an unfinished multipart upload in `tmp/`.
const PENDING_SUFFIX: &str = ".multipart";

/// How to reach the bucket; the secret is never printed.
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// Without leading or trailing slashes; may be empty.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<zeroize::Zeroizing<String>>,
}

impl S3Settings {
    /// `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[derive(Clone)]
pub struct ObjectBlobs {
    store: Arc<AmazonS3>,
    url: String,
    /// The configured prefix, and its `blobs/` under it.
    root: ObjectPath,
    blobs: ObjectPath,
    /// The data dir's `tmp/`, where unfinished multipart uploads are named.
    tmp: PathBuf,
    /// Room for buffered upload bytes, in KiB ([`BUFFERED_AT_MOST`]).
    room: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for ObjectBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBlobs").field("url", &self.url).finish_non_exhaustive()
    }
}

/// What `vault.json` says.
#[derive(Serialize, Deserialize)]
struct Marker {
    log_origin: String,
}

/// A multipart upload in progress, as named in `tmp/`.
#[derive(Serialize, Deserialize)]
struct Unfinished {
    path: String,
    upload_id: String,
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// An object store error as an I/O error; a missing object is `NotFound`.
fn io(e: object_store::Error) -> std::io::Error {
    match e {
        object_store::Error::NotFound { .. } => std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()),
        e => other(e),
    }
}

impl ObjectBlobs {
    /// A client for the bucket (no request is made yet).
    pub fn new(s: &S3Settings, tmp: PathBuf) -> anyhow::Result<Self> {
        if let Some(e) = &s.endpoint
            && e.starts_with("http://")
            && !s.allow_http
        {
            anyhow::bail!(
                "the object store endpoint {e} is plain HTTP; use https://, or add --s3-allow-http if the network to it \
                 is trusted (the ciphertext is end-to-end encrypted and requests are signed, but their metadata is not \
                 hidden)"
            );
        }
        // The client's TLS uses ring, the vault's crypto library (no second provider).
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Endpoints, regions and credentials the AWS tools use are taken from the
        // environment (AWS_REGION, AWS_SESSION_TOKEN, ...); the settings given win.
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&s.bucket);
        if let Some(e) = &s.endpoint {
            // An endpoint of one's own (Garage, MinIO, Ceph): path-style requests.
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        if let Some(r) = &s.region {
            b = b.with_region(r);
        }
        if let Some(k) = &s.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s.secret_access_key {
            b = b.with_secret_access_key(k.as_str());
        }
        let client = object_store::ClientOptions::new()
            .with_allow_http(s.allow_http)
            .with_connect_timeout(std::time::Duration::from_secs(10))
            // A fetch streams a whole recording in one request: allow a slow reader.
            .with_timeout(std::time::Duration::from_secs(3600));
        let store = b.with_client_options(client).build().with_context(|| format!("cannot use {}", s.url()))?;
        let root = ObjectPath::parse(&s.prefix).with_context(|| format!("{:?} is not a usable prefix", s.prefix))?;
        let blobs = root.clone().join("blobs");
        let room = Arc::new(tokio::sync::Semaphore::new(BUFFERED_AT_MOST >> 10));
        Ok(Self { store: Arc::new(store), url: s.url(), root, blobs, tmp, room })
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    fn path(&self, id: &RecordingId) -> ObjectPath {
        self.blobs.clone().join(super::file_name(id))
    }

    /// Where the prefix names the vault it belongs to.
    fn marker(&self) -> ObjectPath {
        self.root.clone().join("vault.json")
    }

    /// Binds the prefix to the vault whose log origin is `origin`, or checks that it is
    /// bound to it; says whether the bucket keeps versions of objects (then a deleted
    /// recording is not gone: see the README's "Object storage"). Also proves the
    /// credentials can write, read and delete. Blocking.
    pub fn bind_blocking(&self, origin: &str) -> anyhow::Result<Versioning> {
        let this = self.clone();
        let origin = origin.to_owned();
        block_on(async move {
            this.check_marker(&origin, true).await?;
            this.versioning().await
        })
    }

    /// Checks that the prefix is bound to the vault whose log origin is `origin`,
    /// writing nothing (for `verify` and `backup`). Blocking.
    pub fn check_bound_blocking(&self, origin: &str) -> anyhow::Result<()> {
        let this = self.clone();
        let origin = origin.to_owned();
        block_on(async move { this.check_marker(&origin, false).await })
    }

    /// Checks that `vault.json` names the vault `origin`; with `bind`, writes it into a
    /// prefix that holds nothing yet.
    async fn check_marker(&self, origin: &str, bind: bool) -> anyhow::Result<()> {
        let marker = self.marker();
        match self.store.get(&marker).await {
            Ok(found) => {
                let bytes = found.bytes().await.with_context(|| format!("cannot read {}/vault.json", self.url))?;
                let m: Marker = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{}/vault.json is not a vault's marker", self.url))?;
                if m.log_origin != origin {
                    anyhow::bail!(
                        "{} belongs to another vault ({}), not this one ({origin}); give this vault a prefix of its own",
                        self.url,
                        m.log_origin
                    );
                }
                Ok(())
            }
            Err(object_store::Error::NotFound { .. }) if !bind => anyhow::bail!(
                "{} has no vault.json: this vault has never kept recordings there; give the --blob-store it serves with",
                self.url
            ),
            Err(object_store::Error::NotFound { .. }) => {
                let mut listing = self.store.list(Some(&self.blobs));
                if let Some(first) = listing.next().await {
                    let first = first.with_context(|| format!("cannot list {}", self.url))?;
                    anyhow::bail!(
                        "{} holds objects ({}) but no vault.json naming this vault; refusing to use it, since this \
                         vault removes blobs no recording names. Give this vault an empty prefix",
                        self.url,
                        first.location
                    );
                }
                let m = serde_json::to_vec(&Marker { log_origin: origin.to_owned() })?;
                self.store
                    .put(&marker, PutPayload::from(m))
                    .await
                    .with_context(|| format!("cannot write {}/vault.json", self.url))?;
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("cannot reach {}", self.url)),
        }
    }

    /// Whether the bucket keeps versions: the version id of an object that is written
    /// and deleted again says so.
    async fn versioning(&self) -> anyhow::Result<Versioning> {
        let probe = self.root.clone().join(format!(".probe-{}", vault_core::ids::random_hex16()));
        let put = self
            .store
            .put(&probe, PutPayload::from_static(b"probe"))
            .await
            .with_context(|| format!("cannot write to {}", self.url))?;
        self.store.delete(&probe).await.with_context(|| format!("cannot delete from {}", self.url))?;
        Ok(match put.version.as_deref() {
            None | Some("null") => Versioning::Off,
            Some(_) => Versioning::On,
        })
    }

    pub async fn reachable(&self) -> bool {
        let marker = self.marker();
        matches!(tokio::time::timeout(std::time::Duration::from_secs(5), self.store.head(&marker)).await, Ok(Ok(_)))
    }

    pub async fn open(&self, id: &RecordingId) -> std::io::Result<Blob> {
        let got = self.store.get(&self.path(id)).await.map_err(io)?;
        let size = got.meta.size;
        let stream = got.into_stream().map_err(io);
        Ok(Blob { size, stream: Box::pin(stream) })
    }

    pub async fn remove(&self, id: &RecordingId) -> std::io::Result<()> {
        match self.store.delete(&self.path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    pub fn delete_blocking(&self, ids: &[RecordingId]) -> std::io::Result<()> {
        let this = self.clone();
        let ids = ids.to_vec();
        block_on(async move {
            futures_util::stream::iter(ids)
                .map(|id| {
                    let this = this.clone();
                    async move { this.remove(&id).await }
                })
                .buffer_unordered(DELETE_AT_ONCE)
                .try_collect::<Vec<()>>()
                .await
                .map(drop)
        })
    }

    pub fn list_blocking(&self) -> std::io::Result<Vec<Listed>> {
        let this = self.clone();
        block_on(async move {
            let mut out = Vec::new();
            let mut listing = this.store.list(Some(&this.blobs));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(io)?;
                // Named as under blobs/; only objects directly there can be a recording's.
                let rest: Vec<String> = match meta.location.prefix_match(&this.blobs) {
                    Some(parts) => parts.map(|p| p.as_ref().to_owned()).collect(),
                    None => vec![meta.location.to_string()],
                };
                let id = match &rest[..] {
                    [name] => super::id_of(name),
                    _ => None,
                };
                out.push(match id {
                    Some(id) => Listed::Blob(id, meta.size),
                    None => Listed::Other(rest.join("/")),
                });
            }
            Ok(out)
        })
    }

    /// The SHA-256 (hex) of recording `id`'s object, read whole.
    pub fn sha256_blocking(&self, id: &RecordingId) -> std::io::Result<String> {
        let this = self.clone();
        let id = id.clone();
        block_on(async move {
            let mut blob = this.open(&id).await?;
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            while let Some(chunk) = blob.stream.next().await {
                ctx.update(&chunk?);
            }
            Ok(hex::encode(ctx.finish()))
        })
    }

    /// Aborts the multipart uploads named in `tmp/` (a crash interrupted them) and
    /// removes their names; returns how many.
    pub fn recover_blocking(&self) -> anyhow::Result<usize> {
        let mut found = Vec::new();
        for e in std::fs::read_dir(&self.tmp).context("cannot list tmp/")? {
            let path = e?.path();
            if path.file_name().is_some_and(is_unfinished_name) {
                found.push(path);
            }
        }
        let this = self.clone();
        block_on(async move {
            let mut aborted = 0;
            for file in &found {
                // A name half-written by the crash names nothing that was started.
                if let Ok(u) = serde_json::from_slice::<Unfinished>(&std::fs::read(file)?) {
                    let path = ObjectPath::parse(&u.path)?;
                    match this.store.abort_multipart(&path, &u.upload_id).await {
                        Ok(()) => {
                            tracing::warn!(object = %path, "aborted an upload a crash interrupted");
                            aborted += 1;
                        }
                        // Completed just before the crash (its object is then an orphan,
                        // which the sweep removes), or aborted already. Stores say so with
                        // 404 (NoSuchUpload) or, some, 403.
                        Err(object_store::Error::NotFound { .. } | object_store::Error::PermissionDenied { .. }) => {}
                        // Not a reason to stay down: the upload is invisible, and the name
                        // stays for the next start (a bucket lifecycle rule that aborts
                        // incomplete multipart uploads is the backstop; README).
                        Err(e) => {
                            tracing::warn!(object = %path, detail = %e, "cannot abort an upload a crash interrupted");
                            continue;
                        }
                    }
                }
                std::fs::remove_file(file)?;
            }
            Ok(aborted)
        })
    }

    /// Waits for room to buffer `bytes` of an upload.
    async fn room_for(&self, bytes: usize) -> std::io::Result<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024)).map_err(other)?;
        self.room.clone().acquire_many_owned(kib).await.map_err(other)
    }

    /// Names an unfinished multipart upload in `tmp/` until it is completed or aborted.
    fn name_unfinished(&self, path: &ObjectPath, upload_id: &str) -> std::io::Result<UnfinishedFile> {
        let file = self.tmp.join(format!("{}{PENDING_SUFFIX}", vault_core::ids::random_hex16()));
        let text = serde_json::to_vec(&Unfinished { path: path.to_string(), upload_id: upload_id.to_owned() })?;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&file)?;
        std::io::Write::write_all(&mut f, &text)?;
        f.sync_all()?;
        Ok(UnfinishedFile(file))
    }
}

/// Whether the bucket keeps versions of objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    Off,
    On,
}

/// The name of an unfinished upload in `tmp/`; removed when dropped (the upload was
/// completed or aborted).
struct UnfinishedFile(PathBuf);

impl UnfinishedFile {
    /// Leaves the name in place, for the next start.
    fn keep(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for UnfinishedFile {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Receives an upload straight into its object.
pub async fn receive(
    blobs: &ObjectBlobs,
    body: axum::body::Body,
    max: u64,
    announced: Option<u64>,
    id: &RecordingId,
) -> Result<Staged, UploadError> {
    let mut staged = Staged::new(None);
    let (to_disk, chunks) = tokio::sync::mpsc::channel(super::WRITE_QUEUE);
    // Without an announced length the body is refused before anything is written.
    let writer = tokio::spawn(write(blobs.clone(), blobs.path(id), announced.unwrap_or(0), chunks));
    super::receive_with(body, max, announced, to_disk, writer, &mut staged).await?;
    // Only now is there an object, to remove if the upload is not committed.
    staged.pending = Some(Pending::Object { blobs: blobs.clone(), id: id.clone() });
    Ok(staged)
}

/// The object store's writer: one request for an upload that fits in a part, else a
/// multipart upload, completed on [`ToDisk::Sync`] and aborted if the queue closes first
/// or a part fails. Nothing is sent before a whole part arrived, by when the body has
/// passed the checks on its header and announced length.
async fn write(
    blobs: ObjectBlobs,
    path: ObjectPath,
    announced: u64,
    mut chunks: tokio::sync::mpsc::Receiver<ToDisk>,
) -> std::io::Result<()> {
    if announced <= PART as u64 {
        let _room = blobs.room_for(announced as usize).await?;
        let mut payload = PutPayloadMut::new();
        while let Some(next) = chunks.recv().await {
            match next {
                ToDisk::Data(bytes) => payload.push(bytes),
                ToDisk::Sync => {
                    let _put = crate::monitoring::Timer::start(crate::monitoring::BLOB_FSYNC_SECONDS);
                    blobs.store.put(&path, payload.freeze()).await.map_err(io)?;
                    return Ok(());
                }
            }
        }
        return Ok(());
    }
    let mut upload = Multipart { blobs, path, started: None };
    match write_parts(&mut upload, chunks).await {
        Ok(true) => Ok(()),
        // Cut off, refused or failed: nothing becomes visible.
        outcome => {
            upload.abort().await;
            outcome.map(drop)
        }
    }
}

/// A multipart upload, started when its first part is ready.
struct Multipart {
    blobs: ObjectBlobs,
    path: ObjectPath,
    /// The upload's id, and its name in `tmp/`.
    started: Option<(String, UnfinishedFile)>,
}

impl Multipart {
    /// The upload's id, starting it (and naming it in `tmp/`) the first time.
    async fn id(&mut self) -> std::io::Result<String> {
        if let Some((id, _)) = &self.started {
            return Ok(id.clone());
        }
        let id = self.blobs.store.create_multipart(&self.path).await.map_err(io)?;
        match self.blobs.name_unfinished(&self.path, &id) {
            Ok(named) => {
                self.started = Some((id.clone(), named));
                Ok(id)
            }
            Err(e) => {
                let _ = self.blobs.store.abort_multipart(&self.path, &id).await;
                Err(e)
            }
        }
    }

    /// Aborts the upload, if it was started; one the store does not abort stays named in
    /// `tmp/`, for the next start.
    async fn abort(&mut self) {
        if let Some((id, named)) = self.started.take()
            && let Err(e) = self.blobs.store.abort_multipart(&self.path, &id).await
        {
            tracing::warn!(object = %self.path, detail = %e, "cannot abort a failed upload");
            named.keep();
        }
    }
}

/// Sends the parts; `Ok(true)` once the upload is completed, `Ok(false)` if the queue
/// closed before [`ToDisk::Sync`].
async fn write_parts(upload: &mut Multipart, mut chunks: tokio::sync::mpsc::Receiver<ToDisk>) -> std::io::Result<bool> {
    let mut sending = tokio::task::JoinSet::new();
    let mut sent: Vec<(usize, PartId)> = Vec::new();
    // The request's chunks, not copied: a part is the list of them.
    let mut part = PutPayloadMut::new();
    // The room the part being filled takes; it goes with the part when it is sent.
    let mut room = None;
    let mut next_index = 0;
    let (store, path) = (upload.blobs.store.clone(), upload.path.clone());
    let send = |sending: &mut tokio::task::JoinSet<_>, id: String, index: usize, payload: PutPayload, room| {
        let (store, path) = (store.clone(), path.clone());
        sending.spawn(async move {
            let _room = room;
            store.put_part(&path, &id, index, payload).await.map(|p| (index, p))
        });
    };
    while let Some(next) = chunks.recv().await {
        match next {
            ToDisk::Data(mut bytes) => {
                while !bytes.is_empty() {
                    if room.is_none() {
                        room = Some(upload.blobs.room_for(PART).await?);
                    }
                    let take = (PART - part.content_length()).min(bytes.len());
                    part.push(bytes.split_to(take));
                    if part.content_length() == PART {
                        let id = upload.id().await?;
                        send(&mut sending, id, next_index, std::mem::take(&mut part).freeze(), room.take());
                        next_index += 1;
                        // At most IN_FLIGHT parts at once: the body waits meanwhile.
                        while sending.len() >= IN_FLIGHT {
                            sent.push(joined(sending.join_next().await)?);
                        }
                    }
                }
            }
            ToDisk::Sync => {
                let id = upload.id().await?;
                if !part.is_empty() || next_index == 0 {
                    send(&mut sending, id.clone(), next_index, std::mem::take(&mut part).freeze(), room.take());
                }
                while let Some(done) = sending.join_next().await {
                    sent.push(joined(Some(done))?);
                }
                sent.sort_by_key(|(i, _)| *i);
                let parts = sent.into_iter().map(|(_, p)| p).collect();
                let _complete = crate::monitoring::Timer::start(crate::monitoring::BLOB_FSYNC_SECONDS);
                upload.blobs.store.complete_multipart(&upload.path, &id, parts).await.map_err(io)?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}

type PartResult = Result<(usize, PartId), object_store::Error>;

fn joined(done: Option<Result<PartResult, tokio::task::JoinError>>) -> std::io::Result<(usize, PartId)> {
    match done {
        Some(Ok(Ok(part))) => Ok(part),
        Some(Ok(Err(e))) => Err(io(e)),
        Some(Err(e)) => Err(other(e)),
        None => Err(other("no part was being sent")),
    }
}

/// Runs `f` to completion from synchronous code, on the runtime the caller is in (the
/// object store's client belongs to it), from a thread of its own so that this works
/// from any thread, including one driving async code at start-up.
fn block_on<F>(f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let rt = tokio::runtime::Handle::try_current()
        .expect("the object store backend is used from within the server's tokio runtime");
    std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join().expect("an object store task panicked"))
}

/// Whether a file in `tmp/` named `name` names an unfinished multipart upload.
pub fn is_unfinished_name(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().ends_with(PENDING_SUFFIX)
}
