//! A real S3-compatible object store for the tests: `s3s-fs` (`.ci/run` installs it), on
//! a free loopback port, keeping its objects as files in a temporary directory.
//!
//! s3s-fs stores object `KEY` of bucket `B` as the file `ROOT/B/KEY`, so a test can look
//! at (and damage) what the vault put there, as it can with the local backend's files.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every test vault uses, and the prefix in it.
pub const BUCKET: &str = "vault";
pub const PREFIX: &str = "recordings";
pub const ACCESS_KEY: &str = "vault-test-access";
pub const SECRET_KEY: &str = "vault-test-secret-0123456789";

/// A running s3s-fs; stopped (SIGKILL) when dropped.
pub struct S3Server {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    child: Child,
}

/// The s3s-fs binary: `$S3S_FS`, or `s3s-fs` on the PATH.
pub fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("S3S_FS") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("s3s-fs")).find(|p| p.is_file()));
    found.unwrap_or_else(|| {
        panic!(
            "the object-store tests need s3s-fs, a real S3-compatible server: install it with \
             `cargo install s3s-fs --version 0.14.1 --locked --features binary` (as .ci/run does), or set S3S_FS"
        )
    })
}

impl S3Server {
    /// Starts s3s-fs with an empty bucket [`BUCKET`].
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join(BUCKET)).expect("bucket dir");
        // A port that was free a moment ago; s3s-fs takes only a number.
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log = std::fs::File::create(dir.path().join("s3s.log")).expect("s3s log");
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start s3s-fs");
        let mut s = S3Server { dir, endpoint: format!("http://127.0.0.1:{port}"), child };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("s3s-fs exited with {status}: {}", s.log());
            }
            assert!(Instant::now() < deadline, "s3s-fs did not start: {}", s.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s3s.log")).unwrap_or_default()
    }

    /// The directory holding bucket [`BUCKET`]'s objects.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join("root").join(BUCKET)
    }

    /// The file of object `key` in [`BUCKET`].
    pub fn object(&self, key: &str) -> PathBuf {
        self.bucket_dir().join(key)
    }

    /// Every object in the bucket, as keys, sorted (s3s-fs's own bookkeeping excluded).
    pub fn keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect(&self.bucket_dir(), &self.bucket_dir(), &mut out);
        out.sort();
        out
    }

    /// The multipart uploads s3s-fs has open (neither completed nor aborted), by the
    /// names of its records of them. (A part whose request was in flight when its upload
    /// was aborted can still land after the abort, as on AWS; such a part belongs to no
    /// open upload, and a bucket lifecycle rule removes it.)
    pub fn open_uploads(&self) -> Vec<String> {
        let root = self.dir.path().join("root");
        let mut out: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload-") && n.ends_with(".json"))
            .collect();
        out.sort();
        out
    }

    /// The parts s3s-fs holds of multipart upload `upload` (a name from
    /// [`S3Server::open_uploads`]).
    pub fn parts_of(&self, upload: &str) -> Vec<String> {
        let id = upload.trim_start_matches(".upload-").trim_end_matches(".json");
        let prefix = format!(".upload_id-{id}.part-");
        let root = self.dir.path().join("root");
        std::fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// The `vault-server` flags that use this store, under `prefix`.
    pub fn flags(&self, prefix: &str) -> Vec<String> {
        [
            "--blob-store",
            &format!("s3://{BUCKET}/{prefix}"),
            "--s3-endpoint",
            &self.endpoint,
            "--s3-allow-http",
            "--s3-access-key-id",
            ACCESS_KEY,
            "--s3-secret-access-key",
            SECRET_KEY,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        // s3s-fs keeps metadata and multipart uploads in files and directories of its own.
        if name.starts_with(".") {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
