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
/// of the background flushes too. A file shorter than `every` bytes never starts the
/// helper thread.
pub struct SyncingFile {
    file: File,
    every: u64,
    unsynced: u64,
    flusher: Flusher,
}

/// The background flusher of a [`SyncingFile`].
enum Flusher {
    /// Fewer than `every` bytes written so far.
    NotStarted,
    Running {
        nudge: SyncSender<()>,
        thread: JoinHandle<io::Result<()>>,
    },
    /// Joined by `sync_all`; later writes are synced only by the next `sync_all`.
    Stopped,
}

impl SyncingFile {
    /// Wraps `file`; a background flush starts after each `every` bytes written.
    pub fn new(file: File, every: u64) -> Self {
        Self { file, every: every.max(1), unsynced: 0, flusher: Flusher::NotStarted }
    }

    /// Waits for the background flusher, then makes the whole file durable. Returns the
    /// first error of either.
    pub fn sync_all(&mut self) -> io::Result<()> {
        self.stop_flusher()?;
        self.file.sync_all()
    }

    fn stop_flusher(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.flusher, Flusher::Stopped) {
            Flusher::Running { nudge, thread } => {
                drop(nudge);
                thread.join().map_err(|_| io::Error::other("the flush thread panicked"))?
            }
            Flusher::NotStarted | Flusher::Stopped => Ok(()),
        }
    }

    /// Asks for a flush of everything written so far, starting the thread the first time.
    fn nudge(&mut self) -> io::Result<()> {
        match &self.flusher {
            Flusher::NotStarted => {
                // The clone shares the open file: a write-back error is reported to
                // whichever handle syncs first, so the flusher's errors are passed on by
                // `sync_all`.
                let clone = self.file.try_clone()?;
                let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
                let thread = std::thread::Builder::new().name("flush".into()).spawn(move || {
                    clone.sync_data()?;
                    for () in nudged {
                        clone.sync_data()?;
                    }
                    Ok(())
                })?;
                self.flusher = Flusher::Running { nudge, thread };
                Ok(())
            }
            Flusher::Running { nudge, .. } => match nudge.try_send(()) {
                // Full: a flush is already due and will cover this data too.
                Ok(()) | Err(TrySendError::Full(())) => Ok(()),
                // The flusher stopped on an error: report it now.
                Err(TrySendError::Disconnected(())) => {
                    self.stop_flusher()?;
                    Err(io::Error::other("the flush thread stopped"))
                }
            },
            Flusher::Stopped => Ok(()),
        }
    }
}

impl Write for SyncingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= self.every {
            self.unsynced = 0;
            self.nudge()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

// Dropped without `sync_all` (a failed transfer), the nudge sender goes with it: the
// thread ends after its current flush, and nobody needs its result.

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn writes_everything_and_syncs() {
        let dir = std::env::temp_dir().join(format!("vault-durable-{}", crate::ids::random_hex16()));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("f");
        let mut f = SyncingFile::new(File::create(&path).unwrap(), 1000);
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
    fn the_flush_thread_starts_only_once_a_file_is_large() {
        let dir = std::env::temp_dir().join(format!("vault-durable-{}", crate::ids::random_hex16()));
        std::fs::create_dir(&dir).unwrap();
        let mut small = SyncingFile::new(File::create(dir.join("small")).unwrap(), 1 << 20);
        small.write_all(&[1; 4096]).unwrap();
        assert!(matches!(small.flusher, Flusher::NotStarted), "a small file needs no thread");
        small.sync_all().unwrap();
        let mut large = SyncingFile::new(File::create(dir.join("large")).unwrap(), 4096);
        large.write_all(&[2; 3 * 4096]).unwrap();
        assert!(matches!(large.flusher, Flusher::Running { .. }));
        large.sync_all().unwrap();
        assert!(matches!(large.flusher, Flusher::Stopped));
        large.write_all(&[3; 8192]).unwrap(); // no new thread after the end
        assert!(matches!(large.flusher, Flusher::Stopped));
        large.sync_all().unwrap();
        assert_eq!(std::fs::metadata(dir.join("large")).unwrap().len(), 5 * 4096);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fail_write_to_a_read_only_file_is_reported() {
        let dir = std::env::temp_dir().join(format!("vault-durable-{}", crate::ids::random_hex16()));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"x").unwrap();
        let mut f = SyncingFile::new(File::open(&path).unwrap(), 10);
        assert!(f.write_all(b"0123456789abcdef").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
