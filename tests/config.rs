//! `vault-server serve --config FILE` with the real binary: the documented precedence
//! (flags over environment over file over defaults) and unknown keys refused.
//!
//! The setting observed is `ready-min-free-mib`, which `/readyz` reports: a threshold
//! no disk meets (a petabyte) makes it answer 503, a threshold of 1 MiB 200.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vault_tests::{Vault, bin};

const HUGE: &str = "1000000000000";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `vault-server serve` on `data` with `args` and exactly the environment `env` (no
/// inherited `VAULT_*`), waiting until it listens.
fn serve(dir: &Path, data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let log = dir.join(format!("serve-{}.log", RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let mut cmd = Command::new(bin("vault-server"));
    cmd.env_clear().arg("serve").args(args).arg("--data-dir").arg(data);
    cmd.args(["--listen", "127.0.0.1:0"]).envs(env.iter().copied());
    let child =
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let mut server = Server { child, url: String::new() };
    server.url = vault_tests::wait_listening(&mut server.child, &log);
    server
}

fn readyz(s: &Server) -> u16 {
    get_status(&s.url, "/readyz")
}

/// The status of a plain GET of `path` on the server at `url` (http://ADDR).
fn get_status(url: &str, path: &str) -> u16 {
    use std::io::Write;
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    vault_tests::read_answer(&mut s).0
}

/// A vault, stopped, and a config file in its directory with `text`.
fn setup(text: &str) -> (Vault, std::path::PathBuf) {
    let mut v = Vault::start();
    v.kill();
    let file = v.dir.path().join("vault.toml");
    std::fs::write(&file, text).unwrap();
    (v, file)
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file_which_wins_over_defaults() {
    let (v, file) = setup(&format!("ready-min-free-mib = {HUGE}\n"));
    let (dir, data, cfg) = (v.dir.path(), v.data(), file.to_str().unwrap());
    // Defaults (1024 MiB) are met on a machine that runs tests; the file's petabyte not.
    assert_eq!(readyz(&serve(dir, &data, &[], &[])), 200, "default");
    assert_eq!(readyz(&serve(dir, &data, &["--config", cfg], &[])), 503, "file over default");
    let env = [("VAULT_READY_MIN_FREE_MIB", "1")];
    assert_eq!(readyz(&serve(dir, &data, &["--config", cfg], &env)), 200, "environment over file");
    assert_eq!(
        readyz(&serve(dir, &data, &["--config", cfg, "--ready-min-free-mib", HUGE], &env)),
        503,
        "flag over environment"
    );
    // The file named by the environment, and a required setting from the file.
    std::fs::write(&file, format!("ready_min_free_mib = {HUGE}\ndata-dir = {:?}\n", data.to_str().unwrap())).unwrap();
    let mut cmd = Command::new(bin("vault-server"));
    let out =
        cmd.env_clear().env("VAULT_CONFIG", cfg).args(["serve", "--listen", "127.0.0.1:0", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config <FILE>"));
    let log = dir.join("from-env.log");
    let mut child = Command::new(bin("vault-server"))
        .env_clear()
        .env("VAULT_CONFIG", cfg)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = vault_tests::wait_listening(&mut child, &log);
    let status = get_status(&url, "/readyz");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 503, "VAULT_CONFIG's file, with the data dir it names");
}

#[test]
fn unknown_settings_are_refused_and_nothing_starts() {
    for (text, needle) in [
        ("ready_min_free_gib = 1\n", "unknown setting \"ready_min_free_gib\""),
        ("[serve]\nlisten = \"127.0.0.1:0\"\n", "unknown setting \"serve\""),
        ("listen = \n", "is not valid TOML"),
        ("listen = \"nonsense\"\n", "--listen"),
    ] {
        let (v, file) = setup(text);
        let out = Command::new(bin("vault-server"))
            .env_clear()
            .arg("serve")
            .arg("--data-dir")
            .arg(v.data())
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(needle), "{text}: {stderr}");
        assert!(!stderr.contains("listening on"), "{stderr}");
    }
}

#[test]
fn key_paths_from_the_file_are_not_printed() {
    let v = Vault::start_tls();
    let (cert, key) = (v.dir.path().join("tls-cert.pem"), v.dir.path().join("tls-key.pem"));
    let mut v = v;
    v.kill();
    let file = v.dir.path().join("vault.toml");
    std::fs::write(&file, format!("tls-cert = {:?}\ntls-key = {:?}\n", cert.to_str().unwrap(), key.to_str().unwrap()))
        .unwrap();
    let s = serve(v.dir.path(), &v.data(), &["--config", file.to_str().unwrap()], &[("VAULT_LOG", "debug")]);
    assert!(s.url.starts_with("https://"), "TLS from the file: {}", s.url);
    drop(s);
    for log in vault_tests::files_under(v.dir.path()).into_iter().filter(|p| p.extension().is_some_and(|e| e == "log"))
    {
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains("tls-key.pem"), "{}: {text}", log.display());
    }
}
