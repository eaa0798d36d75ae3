//! systemd readiness with the real server: `vault-server serve` sends `READY=1` to
//! `NOTIFY_SOCKET` once it listens and has opened its state, and `STOPPING=1` when told to
//! stop, so that a `Type=notify` unit (deploy/vault-server.service) starts its dependants
//! only when the vault answers. Without a reachable socket it serves all the same.

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vault_tests::{Vault, bin};

/// Starts `vault-server serve` on the vault's data dir (the harness's own server stopped)
/// with `NOTIFY_SOCKET` set to `socket`; returns the child and its log file.
fn serve_notifying(v: &mut Vault, socket: &std::path::Path) -> (Child, std::path::PathBuf) {
    v.kill();
    let log_path = v.dir.path().join("notify-server.log");
    let child = Command::new(bin("vault-server"))
        .args(["serve", "--data-dir"])
        .arg(v.data())
        .args(["--listen", "127.0.0.1:0", "--ready-min-free-mib", "1"])
        .env("NOTIFY_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start vault-server");
    (child, log_path)
}

/// The address the server said it listens on, waiting for the line (bounded).
fn listening(log: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with("listening on ")) {
            return line["listening on http://".len()..].trim().to_owned();
        }
        assert!(Instant::now() < deadline, "vault-server did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn healthz(addr: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    std::io::Write::write_all(
        &mut s,
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    vault_tests::read_answer(&mut s).0
}

/// Waits (bounded) for the child to exit and returns whether it exited successfully.
fn wait_exit(child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        assert!(Instant::now() < deadline, "vault-server did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_notifies_ready_once_it_answers_and_stopping_on_sigterm() {
    let mut v = Vault::start();
    let socket = v.dir.path().join("notify.sock");
    let sd = UnixDatagram::bind(&socket).expect("bind the notify socket");
    sd.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (mut child, log) = serve_notifying(&mut v, &socket);

    let mut buf = [0u8; 512];
    let n = sd.recv(&mut buf).expect("READY=1 from vault-server");
    assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), "READY=1\n");
    // Ready means answering: the listener was bound and the state opened before the notice.
    let addr = listening(&log);
    assert_eq!(healthz(&addr), 200);

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let n = sd.recv(&mut buf).expect("STOPPING=1 from vault-server");
    assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), "STOPPING=1\n");
    assert!(wait_exit(&mut child), "{}", std::fs::read_to_string(&log).unwrap());
}

#[test]
fn fail_an_unreachable_notify_socket_is_logged_and_the_server_serves() {
    let mut v = Vault::start();
    let nowhere = v.dir.path().join("no-such.sock");
    let (mut child, log) = serve_notifying(&mut v, &nowhere);
    let addr = listening(&log);
    assert_eq!(healthz(&addr), 200);
    // The warning comes right after the listening line; wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap().contains("cannot notify systemd") {
        assert!(Instant::now() < deadline, "no warning: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
}
