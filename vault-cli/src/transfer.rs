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

pub fn chunk_channel() -> (ChunkWriter, ChunkStream) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(DEPTH);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (ChunkWriter { buf: Vec::with_capacity(CHUNK), tx: Some(tx) }, Box::pin(stream))
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
        let (mut w, mut s) = chunk_channel();
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
    fn clean_end() {
        let (tx, mut r) = reader_channel();
        tx.send(Ok(b"abc".to_vec())).unwrap();
        tx.send(Ok(Vec::new())).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
    }
}
