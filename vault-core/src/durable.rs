//! Writing large files that must be durable at the end.
//!
//! A file written with plain `write` calls sits in the page cache until the final
//! `fsync`, which then waits for the whole file to reach the disk: for a 1 GiB recording
//! that wait came after the transfer, about 0.3 s here. [`SyncingFile`] starts the disk
//! writing while the transfer still runs: every [`SyncingFile::new`]'s `every` bytes it
//! asks a helper thread to `fdatasync` what has been written so far, so by the end only
//! the last stretch is left to sync. The writer itself never waits for the disk.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::thread::JoinHandle;

/// How many bytes are written between background flushes: large enough that a flush is
/// one sizeable disk write, small enough that the final sync is short.
pub const FLUSH_EVERY: u64 = 32 * 1024 * 1024;

/// A file whose written data is flushed to disk in the background as it grows; see the
/// module documentation. Call [`SyncingFile::sync_all`] at the end: it reports any error
/// of the background flushes too.
pub struct SyncingFile {
    file: File,
    every: u64,
    unsynced: u64,
    nudge: Option<SyncSender<()>>,
    flusher: Option<JoinHandle<io::Result<()>>>,
}

impl SyncingFile {
    /// Wraps `file`; a background flush starts after each `every` bytes written.
    pub fn new(file: File, every: u64) -> io::Result<Self> {
        // The clone shares the open file: a write-back error is reported to whichever
        // handle syncs first, so the flusher's errors are passed on by `sync_all`.
        let clone = file.try_clone()?;
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let flusher = std::thread::Builder::new().name("flush".into()).spawn(move || {
            for () in nudged {
                clone.sync_data()?;
            }
            Ok(())
        })?;
        Ok(Self { file, every: every.max(1), unsynced: 0, nudge: Some(nudge), flusher: Some(flusher) })
    }

    /// Waits for the background flusher, then makes the whole file durable. Returns the
    /// first error of either.
    pub fn sync_all(&mut self) -> io::Result<()> {
        self.stop_flusher()?;
        self.file.sync_all()
    }

    fn stop_flusher(&mut self) -> io::Result<()> {
        self.nudge = None;
        match self.flusher.take() {
            Some(flusher) => flusher.join().map_err(|_| io::Error::other("the flush thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Write for SyncingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= self.every {
            self.unsynced = 0;
            if let Some(nudge) = &self.nudge {
                match nudge.try_send(()) {
                    // Full: a flush is already due and will cover this data too.
                    Ok(()) | Err(TrySendError::Full(())) => {}
                    // The flusher stopped on an error: report it now.
                    Err(TrySendError::Disconnected(())) => {
                        self.stop_flusher()?;
                        return Err(io::Error::other("the flush thread stopped"));
                    }
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for SyncingFile {
    fn drop(&mut self) {
        // Without sync_all (a failed transfer): stop nudging; the thread ends after its
        // current flush, and nobody needs its result.
        self.nudge = None;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn writes_everything_and_syncs() {
        let dir = std::env::temp_dir().join(format!("vault-durable-{}", crate::ids::random_hex16()));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("f");
        let mut f = SyncingFile::new(File::create(&path).unwrap(), 1000).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(777) {
            f.write_all(piece).unwrap();
        }
        f.sync_all().unwrap();
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fail_write_to_a_read_only_file_is_reported() {
        let dir = std::env::temp_dir().join(format!("vault-durable-{}", crate::ids::random_hex16()));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"x").unwrap();
        let mut f = SyncingFile::new(File::open(&path).unwrap(), 10).unwrap();
        assert!(f.write_all(b"0123456789abcdef").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
