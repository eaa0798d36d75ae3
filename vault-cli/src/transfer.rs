//! Streaming transfers: the HTTP side runs on a small async runtime, the cryptography
//! on a plain thread, and the two pass chunks of [`CHUNK`] bytes through a bounded
//! channel. Memory stays at a few chunks whatever the recording's size, and the work per
//! chunk (one channel hand-off, one HTTP frame) is small next to encrypting it.
//!
//! A stream that ends because its producer failed ends in an *error*, never in a clean
//! end of stream, so a half-encrypted upload cannot look complete to the server and a
//! half-received download cannot look complete to the decryptor.

use std::io::{self, Read, Write};

use bytes_chunk::Chunk;

/// Bytes per chunk handed between the threads.
pub const CHUNK: usize = 256 * 1024;
/// Chunks in flight between producer and consumer.
const DEPTH: usize = 4;

mod bytes_chunk {
    pub type Chunk = Result<Vec<u8>, std::io::Error>;
}

/// A writer that sends full chunks to an async stream; [`ChunkWriter::finish`] sends the
/// rest. Dropped without `finish`, it makes the stream end in an error.
pub struct ChunkWriter {
    buf: Vec<u8>,
    tx: Option<tokio::sync::mpsc::Sender<Chunk>>,
}

/// The async stream of a [`ChunkWriter`], for a request body.
pub type ChunkStream = futures_util::stream::BoxStream<'static, Chunk>;

/// What a [`ChunkStream`] delivered, once it has ended cleanly: its CRC-32 and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub crc32: u32,
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
    len: u64,
    done: Option<std::sync::mpsc::SyncSender<Sent>>,
}

/// A writer for the encrypting thread and the stream that sends what it writes.
///
/// The stream keeps a CRC-32 of every byte it passes on, so the uploader can check that
/// the server received exactly what it sent. A CRC catches corruption and lost or
/// repeated chunks at a few percent of the cost of SHA-256 (which the server computes for
/// the record); it is not meant to, and cannot, stop a server that lies.
pub fn chunk_channel() -> (ChunkWriter, ChunkStream, SentReceipt) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(DEPTH);
    let (done, receipt) = std::sync::mpsc::sync_channel(1);
    let state = Checksummed { rx, crc: crc32fast::Hasher::new(), len: 0, done: Some(done) };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        match s.rx.recv().await {
            Some(Ok(c)) => {
                s.crc.update(&c);
                s.len += c.len() as u64;
                Some((Ok(c), s))
            }
            Some(Err(e)) => {
                s.done = None; // a failed stream has no receipt
                Some((Err(e), s))
            }
            None => {
                if let Some(done) = s.done.take() {
                    let _ = done.send(Sent { crc32: s.crc.clone().finalize(), len: s.len });
                }
                None
            }
        }
    });
    (ChunkWriter { buf: Vec::with_capacity(CHUNK), tx: Some(tx) }, Box::pin(stream), SentReceipt(receipt))
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

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.send(Ok(full))?;
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

/// Reads `input` on a thread of its own, [`CHUNK`] bytes at a time, so that reading the
/// file (a copy out of the page cache, or a wait for the disk) overlaps with encrypting
/// what was read before. Errors reach the reader; a reader dropped early stops the thread.
pub fn read_ahead<R: Read + Send + 'static>(mut input: R) -> ChunkReader {
    let (tx, reader) = reader_channel();
    std::thread::spawn(move || {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match input.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            buf.truncate(filled);
            let end = filled < CHUNK;
            if filled > 0 && tx.send(Ok(buf)).is_err() {
                return;
            }
            if end {
                let _ = tx.send(Ok(Vec::new()));
                return;
            }
        }
    });
    reader
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
        let items: Vec<Chunk> = rt.block_on(async {
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
        let expected = Sent { crc32: crc32fast::hash(&data), len: data.len() as u64 };
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

    #[test]
    fn read_ahead_delivers_everything_in_order() {
        let data: Vec<u8> = (0..CHUNK * 3 + 5).map(|i| (i % 253) as u8).collect();
        let mut out = Vec::new();
        read_ahead(io::Cursor::new(data.clone())).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn fail_read_ahead_passes_on_a_read_error() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        let mut out = Vec::new();
        let err = read_ahead(Broken(CHUNK + 3)).read_to_end(&mut out).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        assert_eq!(out.len(), CHUNK, "the full chunk before the error arrives, the partial one does not");
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
