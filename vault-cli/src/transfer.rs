//! Streaming transfers: the HTTP side runs on a small async runtime, the cryptography
//! on a plain thread, and the two pass chunks of [`CHUNK`] bytes through a bounded
//! channel. Memory stays at a few chunks whatever the recording's size, and the work per
//! chunk (one channel hand-off, one HTTP frame) is small next to encrypting it.
//!
//! A stream that ends because its producer failed ends in an *error*, never in a clean
//! end of stream, so a half-encrypted upload cannot look complete to the server and a
//! half-received download cannot look complete to the decryptor.

use std::io::{self, Read, Write};

/// Bytes per chunk handed between the threads.
pub const CHUNK: usize = 256 * 1024;
/// Chunks in flight between producer and consumer.
const DEPTH: usize = 4;

/// What passes between the threads: a chunk, or the error that ended the stream.
pub type Chunk = io::Result<Vec<u8>>;

/// A writer that sends full chunks to an async stream; [`ChunkWriter::finish`] sends the
/// rest. Dropped without `finish`, it makes the stream end in an error.
pub struct ChunkWriter {
    buf: Vec<u8>,
    tx: Option<tokio::sync::mpsc::Sender<Chunk>>,
    /// Chunks the HTTP layer is done with, to be filled again.
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

/// The async stream of a [`ChunkWriter`], for a request body.
pub type ChunkStream = futures_util::stream::BoxStream<'static, io::Result<bytes::Bytes>>;

/// A chunk on its way through the HTTP layer; when that drops it, the buffer goes back to
/// its [`ChunkWriter`]. Fresh buffers for every chunk cost page faults: a 1 GiB upload
/// faulted in 230-300 MiB of new memory (against 2 MiB for `age -e`), and on a virtual
/// machine that hands freed memory back to its host, each such fault may be a host fault.
struct Recycled {
    buf: Vec<u8>,
    home: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        // Full (enough spares already) or gone (the writer finished): just free it.
        let _ = self.home.try_send(std::mem::take(&mut self.buf));
    }
}

/// What a [`ChunkStream`] delivered, once it has ended cleanly: its CRC-32, SHA-256 and
/// length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub crc32: u32,
    pub sha256: [u8; 32],
    pub len: u64,
}

/// Where [`Sent`] arrives when the stream ends cleanly.
pub struct SentReceipt(std::sync::mpsc::Receiver<Sent>);

impl SentReceipt {
    /// `None` if the stream has not (yet) ended cleanly.
    pub fn get(&self) -> Option<Sent> {
        self.0.try_recv().ok()
    }
}

/// The receiving half of a chunk channel, checksumming what passes on to the body.
struct Checksummed {
    rx: tokio::sync::mpsc::Receiver<Chunk>,
    crc: crc32fast::Hasher,
    sha: ring::digest::Context,
    len: u64,
    done: Option<std::sync::mpsc::SyncSender<Sent>>,
    home: std::sync::mpsc::SyncSender<Vec<u8>>,
}

/// A writer for the encrypting thread and the stream that sends what it writes.
///
/// The stream keeps a CRC-32 of every byte it passes on, so the uploader can check that
/// the server received exactly what it sent, and a SHA-256, which the uploader signs: the
/// hash a fetcher later checks the ciphertext against comes from the recorder, never
/// from the server.
pub fn chunk_channel() -> (ChunkWriter, ChunkStream, SentReceipt) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(DEPTH);
    let (done, receipt) = std::sync::mpsc::sync_channel(1);
    // Enough spares for the chunks queued and the few the HTTP layer holds at once.
    let (home, spare) = std::sync::mpsc::sync_channel(2 * DEPTH);
    let state = Checksummed {
        rx,
        crc: crc32fast::Hasher::new(),
        sha: ring::digest::Context::new(&ring::digest::SHA256),
        len: 0,
        done: Some(done),
        home,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        match s.rx.recv().await {
            Some(Ok(c)) => {
                s.crc.update(&c);
                s.sha.update(&c);
                s.len += c.len() as u64;
                let chunk = bytes::Bytes::from_owner(Recycled { buf: c, home: s.home.clone() });
                Some((Ok(chunk), s))
            }
            Some(Err(e)) => {
                s.done = None; // a failed stream has no receipt
                Some((Err(e), s))
            }
            None => {
                if let Some(done) = s.done.take() {
                    let mut sha256 = [0u8; 32];
                    sha256.copy_from_slice(s.sha.clone().finish().as_ref());
                    let _ = done.send(Sent { crc32: s.crc.clone().finalize(), sha256, len: s.len });
                }
                None
            }
        }
    });
    (ChunkWriter { buf: Vec::with_capacity(CHUNK), tx: Some(tx), spare }, Box::pin(stream), SentReceipt(receipt))
}

impl ChunkWriter {
    fn send(&mut self, chunk: Chunk) -> io::Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| io::Error::other("stream already finished"))?;
        tx.blocking_send(chunk).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Sends what is buffered and ends the stream cleanly.
    pub fn finish(mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.send(Ok(last))?;
        }
        self.tx = None;
        Ok(())
    }
}

/// Appends as much of `data` to `buf` as fits in one chunk. Returns how many bytes it took
/// and, when that filled the chunk, the full chunk, leaving in `buf` the empty buffer
/// `next` gives.
fn gather(buf: &mut Vec<u8>, data: &[u8], next: impl FnOnce() -> Vec<u8>) -> (usize, Option<Vec<u8>>) {
    let n = data.len().min(CHUNK - buf.len());
    buf.extend_from_slice(&data[..n]);
    let full = (buf.len() == CHUNK).then(|| std::mem::replace(buf, next()));
    (n, full)
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let spare = &self.spare;
        let (n, full) = gather(&mut self.buf, data, || match spare.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(CHUNK),
        });
        if let Some(chunk) = full {
            self.send(Ok(chunk))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.blocking_send(Err(io::Error::other("encryption stopped before the end of the file")));
        }
    }
}

/// A reader over chunks received from an async download. The sender sends `Ok(vec![])`
/// as its last message on a clean end; a channel closed without it reads as an error.
pub struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Chunk>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

pub fn reader_channel() -> (std::sync::mpsc::SyncSender<Chunk>, ChunkReader) {
    let (tx, rx) = std::sync::mpsc::sync_channel(DEPTH);
    (tx, ChunkReader { rx, cur: Vec::new(), pos: 0, done: false })
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(c)) if c.is_empty() => self.done = true,
                Ok(Ok(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the download broke off")),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Forwards a download to a [`ChunkReader`] in chunks of at least [`CHUNK`] bytes,
/// hashing it with SHA-256 on the way. Returns the hex digest once the download ended and
/// the reader was sent all of it and the end marker; `None` if the reader stopped first
/// (its own error says why). A broken download is passed on to the reader as an error.
pub async fn forward_hashed<S, B, E>(
    mut body: S,
    chunks: &std::sync::mpsc::SyncSender<Chunk>,
) -> Result<Option<String>, E>
where
    S: futures_util::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    use futures_util::StreamExt;
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = Vec::with_capacity(CHUNK);
    while let Some(next) = body.next().await {
        match next {
            Ok(c) => {
                sha.update(c.as_ref());
                buf.extend_from_slice(c.as_ref());
                if buf.len() >= CHUNK {
                    let full = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK));
                    if chunks.send(Ok(full)).is_err() {
                        return Ok(None);
                    }
                }
            }
            Err(e) => {
                let _ = chunks.send(Err(io::Error::other(format!("the download broke off: {e}"))));
                return Err(e);
            }
        }
    }
    // An empty chunk is the end marker: send the rest only if there is some, or the
    // reader would stop at it and the marker after it would find nobody listening.
    let complete = (buf.is_empty() || chunks.send(Ok(buf)).is_ok()) && chunks.send(Ok(Vec::new())).is_ok();
    Ok(complete.then(|| hex::encode(sha.finish())))
}

/// A writer that hands full chunks to a thread of its own, which writes them to `out`:
/// the copy into the page cache overlaps with producing the next chunk (decrypting it).
/// [`WriteBehind::finish`] writes the rest and returns `out` once everything is written.
pub struct WriteBehind<W> {
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<io::Result<W>>>,
}

pub fn write_behind<W: Write + Send + 'static>(mut out: W) -> WriteBehind<W> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(DEPTH);
    let thread = std::thread::spawn(move || -> io::Result<W> {
        for chunk in rx {
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Ok(out)
    });
    WriteBehind { buf: Vec::with_capacity(CHUNK), tx: Some(tx), thread: Some(thread) }
}

impl<W> WriteBehind<W> {
    fn send(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(chunk).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        Err(self.join().err().unwrap_or_else(|| io::Error::other("the writing thread stopped")))
    }

    fn join(&mut self) -> io::Result<W> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| io::Error::other("the writing thread panicked"))?,
            None => Err(io::Error::other("the writing thread already stopped")),
        }
    }

    /// Writes what is buffered, waits for the thread, and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.send(last)?;
        }
        self.join()
    }
}

impl<W> Write for WriteBehind<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let (n, full) = gather(&mut self.buf, data, || Vec::with_capacity(CHUNK));
        if let Some(chunk) = full {
            self.send(chunk)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A single-threaded runtime for one transfer.
pub fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_a_writer_dropped_without_finish_ends_the_stream_in_an_error() {
        let rt = runtime().unwrap();
        let (mut w, mut s, digest) = chunk_channel();
        let producer = std::thread::spawn(move || {
            w.write_all(&vec![1u8; CHUNK + 10]).unwrap();
            drop(w);
        });
        let items: Vec<io::Result<bytes::Bytes>> = rt.block_on(async {
            use futures_util::StreamExt;
            let mut v = Vec::new();
            while let Some(c) = s.next().await {
                v.push(c);
            }
            v
        });
        producer.join().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().len(), CHUNK);
        assert!(items[1].is_err(), "the unfinished tail must be an error");
        assert!(digest.get().is_none(), "a failed stream must not yield a receipt");
    }

    #[test]
    fn a_finished_stream_yields_the_checksum_of_what_it_sent() {
        let rt = runtime().unwrap();
        let (mut w, mut s, digest) = chunk_channel();
        let data: Vec<u8> = (0..CHUNK * 2 + 77).map(|i| (i % 251) as u8).collect();
        let expected =
            Sent { crc32: crc32fast::hash(&data), sha256: vault_core::sha256(&data), len: data.len() as u64 };
        let producer = std::thread::spawn({
            let data = data.clone();
            move || {
                w.write_all(&data).unwrap();
                w.finish().unwrap();
            }
        });
        let sent: Vec<u8> = rt.block_on(async {
            use futures_util::StreamExt;
            let mut v = Vec::new();
            while let Some(c) = s.next().await {
                v.extend_from_slice(&c.unwrap());
            }
            v
        });
        producer.join().unwrap();
        assert_eq!(sent, data);
        assert_eq!(digest.get(), Some(expected));
    }

    #[test]
    fn fail_a_reader_whose_sender_vanishes_errors() {
        let (tx, mut r) = reader_channel();
        tx.send(Ok(b"abc".to_vec())).unwrap();
        drop(tx);
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, b"abc");
    }

    /// Feeds `pieces` through [`forward_hashed`] and returns what it returned and every
    /// message the reader was sent.
    fn forwarded(pieces: Vec<Result<Vec<u8>, String>>) -> (Result<Option<String>, String>, Vec<Chunk>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(pieces.len() + 2);
        let rt = runtime().unwrap();
        let result = rt.block_on(forward_hashed(futures_util::stream::iter(pieces), &tx));
        drop(tx);
        (result, rx.iter().collect())
    }

    #[test]
    fn a_download_ending_on_a_chunk_boundary_sends_one_end_marker() {
        // Two full chunks: nothing is left over when the download ends.
        let whole: Vec<u8> = (0..2 * CHUNK).map(|i| (i % 253) as u8).collect();
        let pieces = whole.chunks(CHUNK / 2).map(|c| Ok(c.to_vec())).collect();
        let (result, sent) = forwarded(pieces);
        let sizes: Vec<usize> = sent.iter().map(|c| c.as_ref().unwrap().len()).collect();
        assert_eq!(sizes, [CHUNK, CHUNK, 0], "data, then exactly one empty end marker");
        let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &whole));
        assert_eq!(result.unwrap(), Some(sha));
        // And with a short rest.
        let (result, sent) = forwarded(vec![Ok(vec![1; CHUNK + 3])]);
        let sizes: Vec<usize> = sent.iter().map(|c| c.as_ref().unwrap().len()).collect();
        assert_eq!(sizes, [CHUNK + 3, 0]);
        assert!(result.unwrap().is_some());
    }

    #[test]
    fn fail_a_broken_download_reaches_the_reader_as_an_error_and_no_end_marker() {
        let (result, sent) = forwarded(vec![Ok(vec![1; 10]), Err("reset".to_owned())]);
        assert_eq!(result.unwrap_err(), "reset");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].as_ref().unwrap_err().to_string().contains("reset"));
        // A reader that is gone: no digest.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        drop(rx);
        let rt = runtime().unwrap();
        let pieces = futures_util::stream::iter(vec![Ok::<_, String>(vec![0u8; CHUNK])]);
        assert_eq!(rt.block_on(forward_hashed(pieces, &tx)).unwrap(), None);
    }

    #[test]
    fn sent_chunks_come_back_to_the_writer_to_be_filled_again() {
        let rt = runtime().unwrap();
        let (mut w, mut s, _) = chunk_channel();
        w.write_all(&vec![5u8; CHUNK]).unwrap();
        w.write_all(&[6u8]).unwrap(); // the first chunk is full and queued
        let first = rt.block_on(async {
            use futures_util::StreamExt;
            s.next().await.unwrap().unwrap()
        });
        let addr = first.as_ptr();
        assert!(w.spare.try_recv().is_err(), "not back while the HTTP layer holds it");
        drop(first);
        let back = w.spare.try_recv().expect("dropped chunk returned");
        assert_eq!(back.as_ptr(), addr, "the same buffer, not a copy");
        assert_eq!(back.capacity(), CHUNK);
        // The writer fills a returned buffer from empty: what it sends is what it was given.
        let (mut w, mut s, receipt) = chunk_channel();
        let data: Vec<u8> = (0..4 * CHUNK + 3).map(|i| (i % 249) as u8).collect();
        let producer = std::thread::spawn(move || {
            w.write_all(&data).unwrap();
            w.finish().unwrap();
            data
        });
        let got = rt.block_on(async {
            use futures_util::StreamExt;
            let mut v = Vec::new();
            while let Some(c) = s.next().await {
                v.extend_from_slice(&c.unwrap()); // each chunk dropped here, so recycled
            }
            v
        });
        let data = producer.join().unwrap();
        assert_eq!(got, data);
        assert_eq!(receipt.get().unwrap().len, data.len() as u64);
    }

    #[test]
    fn write_behind_writes_everything_in_order() {
        let data: Vec<u8> = (0..CHUNK * 2 + 9).map(|i| (i % 241) as u8).collect();
        let mut w = write_behind(Vec::new());
        for piece in data.chunks(1000) {
            w.write_all(piece).unwrap();
        }
        assert_eq!(w.finish().unwrap(), data);
    }

    #[test]
    fn fail_write_behind_reports_the_writers_error() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = write_behind(Full(CHUNK));
        let mut result = Ok(());
        for _ in 0..(DEPTH + 4) {
            result = w.write_all(&vec![0u8; CHUNK]);
            if result.is_err() {
                break;
            }
        }
        let err = match result {
            Err(e) => e,
            Ok(()) => w.finish().map(|_| ()).unwrap_err(),
        };
        assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{err}");
    }

    #[test]
    fn clean_end() {
        let (tx, mut r) = reader_channel();
        tx.send(Ok(b"abc".to_vec())).unwrap();
        tx.send(Ok(Vec::new())).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
    }
}
