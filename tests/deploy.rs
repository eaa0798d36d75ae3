//! The files in deploy/ against the real binary: every `VAULT_*` setting they name is one
//! `vault-server serve` reads, and systemd accepts the unit (with its hardening rated
//! "OK") where `systemd-analyze` is installed. The container recipe is not built here
//! (no container runtime); its settings are checked like the unit's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use vault_tests::{bin, run};

fn deploy(file: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

/// Every `VAULT_*` name in `text` (assignments, commented-out or not).
fn settings(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
        .filter(|w| w.starts_with("VAULT_") && w.len() > "VAULT_".len())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_setting_deploy_names_is_one_the_server_reads() {
    let help = run(Command::new(bin("vault-server")).args(["serve", "--help"]).env_clear()).ok();
    // VAULT_LOG is the log filter, read by main() rather than a flag.
    let mut known = settings(&help);
    known.insert("VAULT_LOG".to_owned());
    for file in ["vault-server.service", "vault-server.env", "Containerfile"] {
        let named = settings(&deploy(file).1);
        assert!(!named.is_empty(), "{file} names no settings");
        let unknown: Vec<_> = named.difference(&known).collect();
        assert!(unknown.is_empty(), "deploy/{file} names settings vault-server does not read: {unknown:?}");
    }
}

#[test]
fn fail_a_misspelt_setting_would_be_caught() {
    let help = run(Command::new(bin("vault-server")).args(["serve", "--help"]).env_clear()).ok();
    assert!(!settings(&help).contains("VAULT_TLS_CERTIFICATE"));
    assert!(settings("Environment=VAULT_TLS_CERTIFICATE=x").contains("VAULT_TLS_CERTIFICATE"));
}

#[test]
fn systemd_accepts_the_unit_and_rates_its_hardening_ok() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze is not installed; the unit was not checked");
        return;
    }
    let (_, unit) = deploy("vault-server.service");
    assert!(unit.contains("\nType=notify\n"), "the server notifies readiness; the unit must wait for it");
    // The unit as installed, with ExecStart naming the binary that exists here.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault-server.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/vault-server", bin("vault-server").to_str().unwrap())).unwrap();

    let verify = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");

    assert_exposure_ok(&path);
}

/// `systemd-analyze security` rates the unit at `path` OK (an exposure of 2.0 or less).
#[track_caller]
fn assert_exposure_ok(path: &Path) {
    let unit = path.file_name().unwrap().to_str().unwrap();
    let security = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(path).output().unwrap();
    let out = String::from_utf8_lossy(&security.stdout);
    let level: f64 = out
        .lines()
        .find_map(|l| l.split(&format!("Overall exposure level for {unit}: ")).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {out}"));
    assert!(level <= 2.0, "{unit}'s exposure is {level} (systemd calls up to 2.0 OK): {out}");
}

#[test]
fn systemd_accepts_the_backup_service_and_its_timer() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze is not installed; the units were not checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for name in ["vault-backup.service", "vault-backup.timer"] {
        let (_, text) = deploy(name);
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace("/usr/local/bin/vault-server", bin("vault-server").to_str().unwrap()))
            .unwrap();
        paths.push(path);
    }
    let (_, service) = deploy("vault-backup.service");
    assert!(service.contains("vault-server backup --data-dir /var/lib/vault-server/data"), "{service}");
    let verify = Command::new("systemd-analyze").arg("verify").args(&paths).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}

#[test]
fn systemd_accepts_the_ingester_unit_and_rates_its_hardening_ok() {
    // Every vault-cli setting the ingester's files name is one vault-cli reads.
    let help = run(Command::new(bin("vault-cli")).args(["ingest", "--help"]).env_clear()).ok();
    let mut known = settings(&help);
    known.insert("VAULT_CONFIG_DIR".into()); // read by the token cache, not a flag
    for file in ["vault-ingest.service", "vault-ingest.env"] {
        let (_, text) = deploy(file);
        let unknown: Vec<_> = settings(&text).difference(&known).cloned().collect();
        assert!(unknown.is_empty(), "{file} names settings vault-cli does not read: {unknown:?}");
    }
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze is not installed; the unit was not checked");
        return;
    }
    let (_, unit) = deploy("vault-ingest.service");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault-ingest.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/vault-cli", bin("vault-cli").to_str().unwrap())).unwrap();
    let verify = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    // The EnvironmentFile does not exist on this machine; nothing else may be said.
    let said: Vec<&str> = said.lines().filter(|l| !l.contains("/etc/vault-ingest/env")).collect();
    assert!(verify.status.success() && said.is_empty(), "systemd-analyze verify: {said:?}");
    assert_exposure_ok(&path);
}
