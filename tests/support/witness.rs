//! A witness (`vault-cli witness serve`) for tests: a real process on a free loopback
//! port, with its identity and state in a temporary directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vault_core::cosign::WitnessKey;
use vault_core::note::VerifierKey;

use crate::{bin, run};

pub struct Witness {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub identity: PathBuf,
    pub log_keys: Vec<String>,
    /// `127.0.0.1:PORT`, where it listens.
    pub addr: String,
    child: Option<Child>,
}

impl Witness {
    /// `KEY@URL`, as `vault-server serve --witness` takes it.
    pub fn server_arg(&self) -> String {
        format!("{}@http://{}", self.key().to_text(), self.addr)
    }

    /// Starts `vault-cli witness serve` named `name`, trusting `log_keys`, with a new
    /// identity and state in a temporary directory.
    pub fn start(name: &str, log_keys: &[&VerifierKey]) -> Witness {
        let dir = tempfile::tempdir().unwrap();
        let identity = dir.path().join("witness.key");
        run(Command::new(bin("vault-cli")).args(["keygen", "--out"]).arg(&identity)).ok();
        let mut w = Witness {
            dir,
            name: name.to_owned(),
            identity,
            log_keys: log_keys.iter().map(|k| k.to_text()).collect(),
            addr: String::new(),
            child: None,
        };
        w.restart();
        w
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("witness.log")
    }

    pub fn serve_command(&self) -> Command {
        let mut c = Command::new(bin("vault-cli"));
        c.args(["witness", "serve", "--name", &self.name, "--listen", "127.0.0.1:0", "--identity"])
            .arg(&self.identity)
            .arg("--state")
            .arg(self.state())
            .env_remove("VAULT_IDENTITY");
        for k in &self.log_keys {
            c.args(["--log-key", k]);
        }
        c
    }

    /// (Re)starts the witness on a free port and waits until it listens.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::File::create(self.stderr_path()).unwrap();
        let child = self.serve_command().stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
            if let Some(line) = text.lines().find_map(|l| l.strip_prefix("listening on http://")) {
                self.addr = line.trim().to_owned();
                assert!(self.addr.starts_with("127.0.0.1:"), "{}", self.addr);
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("the witness exited with {status}: {text}");
            }
            assert!(Instant::now() < deadline, "the witness did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The verifier key `vault-cli witness key` prints.
    pub fn key(&self) -> WitnessKey {
        let out = run(Command::new(bin("vault-cli"))
            .args(["witness", "key", "--name", &self.name, "--identity"])
            .arg(&self.identity)
            .env_remove("VAULT_IDENTITY"));
        WitnessKey::parse(&out.ok()).unwrap()
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.kill();
    }
}
