//! Prometheus metrics with the real server: scraped from their own listener
//! (`--metrics-listen`) and parsed; counters move by what known requests did (an upload
//! adds its bytes, a refusal counts under its reason), routes are templates, and no
//! label names a user, case or recording. Off by default: no listener, and no
//! `/metrics` on the API's.

use std::process::Command;
use std::time::{Duration, Instant};

use vault_tests::{Sample, Vault, bin, http_get, metric, parse_metrics, run};

fn scrape(url: &str) -> Vec<Sample> {
    let (status, body) = http_get(url);
    assert_eq!(status, 200, "{body}");
    parse_metrics(&body)
}

/// Scrapes until `ok` holds (the last bytes of a fetch are counted as the server sends
/// them), for at most 10 s.
fn scrape_until(url: &str, ok: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(url);
        if ok(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_count_requests_refusals_and_bytes_by_route_template() {
    let v = Vault::start_with(&["--metrics-listen", "127.0.0.1:0"]);
    let url = v.log_value("metrics on ").expect("the server says where its metrics are");
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"), "{url}");
    let alice = v.admin.clone();
    let pbx = v.enrol("pbx", "recorder");
    let bob = v.enrol("bob", "investigator");
    let case = v.cli(&alice, &["case", "create", "--kind", "customer", "--title", "M", "--purpose", "sales"]).ok();

    let before = scrape(&url);
    let file = v.dir.path().join("call.wav");
    std::fs::write(&file, b"a call worth measuring".repeat(5000)).unwrap();
    let rec = v.cli(&pbx, &["upload", &case, file.to_str().unwrap(), "--announced", "signal-tone"]).ok();
    let size: i64 = v.count(&format!("SELECT size FROM recordings WHERE id = '{rec}'"));
    // bob has no grant yet: refused, and counted under its reason.
    let out = v.dir.path().join("call.out");
    v.cli(&bob, &["fetch", &rec, "--reason", "complaint 1", "--out", out.to_str().unwrap()]).denied("");
    let after_refusal = scrape(&url);
    let refused = |s: &[Sample]| metric(s, "vault_refusals_total", &[("reason", "access_denied")]);
    assert_eq!(refused(&after_refusal) - refused(&before), 1.0, "one refusal, for want of a grant");
    let uploaded = |s: &[Sample]| metric(s, "vault_upload_bytes_total", &[]);
    assert_eq!(uploaded(&after_refusal) - uploaded(&before), size as f64, "the upload's ciphertext bytes");
    let uploads = [("route", "/v1/cases/{id}/recordings"), ("method", "POST"), ("status", "200")];
    let upload_requests = |s: &[Sample]| metric(s, "vault_http_requests_total", &uploads);
    assert_eq!(upload_requests(&after_refusal) - upload_requests(&before), 1.0);
    let fetches_403 = [("route", "/v1/recordings/{id}/fetch"), ("status", "403")];
    assert_eq!(metric(&after_refusal, "vault_http_requests_total", &fetches_403), 1.0);
    assert_eq!(metric(&after_refusal, "vault_upload_duration_seconds_count", &[]), 1.0);

    // Granted, bob's fetch sends the ciphertext, every byte counted.
    v.cli(&alice, &["grant", &case, "bob", "--reason", "complaint 1"]).ok();
    v.cli(&bob, &["fetch", &rec, "--reason", "complaint 1", "--out", out.to_str().unwrap()]).ok();
    let after = scrape_until(&url, |s| metric(s, "vault_fetch_duration_seconds_count", &[]) == 1.0);
    assert_eq!(metric(&after, "vault_fetch_duration_seconds_count", &[]), 1.0);
    assert_eq!(metric(&after, "vault_fetch_bytes_total", &[]), size as f64);
    // The storage's own latencies were measured, and the gauges read at scrape time.
    assert!(metric(&after, "vault_db_commit_duration_seconds_count", &[]) >= 1.0);
    assert!(metric(&after, "vault_db_commit_group_size_count", &[]) >= 1.0);
    assert!(metric(&after, "vault_blob_fsync_duration_seconds_count", &[]) >= 2.0, "file and directory");
    assert_eq!(metric(&after, "vault_access_log_entries", &[]), v.log_len() as f64);
    assert!(metric(&after, "vault_disk_free_bytes", &[]) > 0.0);
    assert!(metric(&after, "vault_database_bytes", &[]) > 0.0);
    assert_eq!(metric(&after, "vault_uploads_in_progress", &[]), 0.0);

    // Labels are templates and fixed words: no id, name or address anywhere.
    let routes: Vec<&str> = after.iter().filter_map(|s| s.labels.get("route").map(String::as_str)).collect();
    assert!(routes.contains(&"/v1/recordings/{id}/fetch"), "{routes:?}");
    for s in &after {
        for value in s.labels.values() {
            for secret in [rec.as_str(), case.as_str(), "alice", "bob", "pbx", "127.0.0.1"] {
                assert!(!value.contains(secret), "{s:?} names {secret}");
            }
        }
    }
}

#[test]
fn an_unknown_route_counts_as_unrouted_not_by_its_path() {
    let v = Vault::start_with(&["--metrics-listen", "127.0.0.1:0"]);
    let url = v.log_value("metrics on ").unwrap();
    for i in 0..3 {
        assert_eq!(v.raw("GET", &format!("/v1/secret-{i}"), None, &[], b"").0, 404);
    }
    let s = scrape(&url);
    assert_eq!(metric(&s, "vault_http_requests_total", &[("route", "-"), ("status", "404")]), 3.0);
    assert_eq!(metric(&s, "vault_refusals_total", &[("reason", "not_found")]), 3.0);
    assert!(s.iter().all(|x| x.labels.values().all(|v| !v.contains("secret-"))), "{s:?}");
}

/// TCP sockets the process `pid` listens on.
fn listening_sockets(pid: u32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Field 3 is the state (0A: LISTEN), field 9 the inode.
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn fail_metrics_are_off_by_default_and_never_on_the_api_listener() {
    let v = Vault::start();
    let (status, _) = v.raw("GET", "/metrics", None, &[], b"");
    assert_eq!(status, 404, "the API's listener serves no metrics");
    assert_eq!(v.log_value("metrics on "), None);
    assert_eq!(listening_sockets(v.pid()), 1, "nothing but the API listens");

    let v = Vault::start_with(&["--metrics-listen", "127.0.0.1:0"]);
    assert_eq!(listening_sockets(v.pid()), 2, "the API and the metrics");
    assert_eq!(v.raw("GET", "/metrics", None, &[], b"").0, 404, "still not on the API's listener");
}

#[test]
fn fail_a_metrics_address_beyond_loopback_is_refused_without_the_opt_in() {
    let v = Vault::start();
    let out = run(Command::new(bin("vault-server")).args(["serve", "--data-dir"]).arg(v.data()).args([
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "0.0.0.0:0",
    ]));
    out.error("refusing to serve metrics on 0.0.0.0:0, beyond loopback");
    assert!(out.stderr.contains("--metrics-beyond-loopback"), "says what to do: {}", out.stderr);
    // The running server was not disturbed.
    assert_eq!(v.raw("GET", "/healthz", None, &[], b"").0, 200);
}
