//! `vault-cli evidence export | verify`: a recording with its proven custody, for the
//! police or a court (`vault_core::evidence`, `schema/EVIDENCE.md`).
//!
//! `export` fetches the recording like `fetch` does (a logged fetch, every signature
//! checked), asks the server to log the export and hand over the custody entries with
//! their proofs, checks all of it exactly as `verify` will, and writes the bundle. `verify`
//! needs no server: only the log's verifier key and the organisation's trust root.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use vault_core::evidence::{self, Custody, ExportRequest, Manifest};
use vault_core::ids::RecordingId;
use vault_core::note::VerifierKey;

use crate::Global;
use crate::client::Client;
use crate::transfer;

#[derive(Subcommand)]
pub enum EvidenceCommand {
    /// Write a recording and its proven custody to one file (needs an active grant; on a
    /// case under legal hold too).
    Export(Export),
    /// Check an evidence bundle offline and print its custody report.
    Verify(Verify),
}

impl EvidenceCommand {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        match self {
            EvidenceCommand::Export(c) => c.run(g),
            EvidenceCommand::Verify(c) => c.run(g),
        }
    }
}

#[derive(Args)]
pub struct Export {
    recording: RecordingId,
    /// Why the recording leaves the vault (kept in the access log and the bundle).
    #[arg(long)]
    reason: String,
    /// Where to write the bundle (must not exist yet).
    #[arg(long)]
    out: PathBuf,
    /// Put the case key in the bundle encrypted to this age recipient (e.g. the public
    /// prosecutor's) instead of the decrypted recording.
    #[arg(long)]
    to: Option<String>,
    /// The log's verifier key (`vault-server log-key`): the custody is checked before the
    /// bundle is written.
    #[arg(long, env = "VAULT_SERVER_KEY")]
    server_key: String,
    #[command(flatten)]
    witnesses: super::audit::Witnesses,
}

impl Export {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let dir = crate::output::new_output(&self.out)?;
        let key = VerifierKey::parse(&self.server_key)?;
        let to = match &self.to {
            Some(r) => Some(vault_core::crypto::parse_recipient(r).context("--to must be an age recipient (age1...)")?),
            None => None,
        };
        let mut client = Client::new(g)?;
        let opened = super::fetch::open(&mut client, &self.recording, &self.reason)?;
        let signed = opened.signed.clone();

        // The ciphertext, kept as it arrives and hashed.
        let mut ciphertext = tempfile::Builder::new().prefix(".vault-evidence-").tempfile_in(&dir)?;
        let (chunks, mut reader) = transfer::reader_channel();
        let file = ciphertext.as_file().try_clone()?;
        let writer = std::thread::spawn(move || -> io::Result<u64> {
            let mut out = io::BufWriter::with_capacity(1 << 20, file);
            let n = io::copy(&mut reader, &mut out)?;
            out.flush()?;
            Ok(n)
        });
        let sha = opened.download.forward_hashed(&chunks);
        drop(chunks);
        let size = writer.join().map_err(|_| anyhow!("the writing thread panicked"))??;
        let sha = sha.map_err(|e| anyhow!("the download broke off: {e}; nothing was written"))?.unwrap_or_default();
        if sha != signed.sha256 || size != signed.size {
            bail!("the ciphertext is not what {} signed; nothing was written", signed.by);
        }

        // The decrypted recording, or the case key for the recipient.
        let mut plaintext = None;
        let mut wrapped = None;
        match &to {
            Some(r) => wrapped = Some(opened.case_key.wrap_to(r)),
            None => {
                let mut plain = tempfile::Builder::new().prefix(".vault-evidence-").tempfile_in(&dir)?;
                let mut input = io::BufReader::with_capacity(1 << 20, std::fs::File::open(ciphertext.path())?);
                let mut out = Hashing::new(io::BufWriter::with_capacity(1 << 20, plain.as_file_mut()));
                vault_core::crypto::decrypt_stream(opened.case_key.identity(), &mut input, &mut out)
                    .context("cannot decrypt the recording; nothing was written")?;
                let (sha, n) = out.finish()?;
                plaintext = Some((plain, sha, n));
            }
        }

        let request = ExportRequest {
            reason: self.reason.clone(),
            plaintext_sha256: plaintext.as_ref().map(|(_, sha, _)| sha.clone()),
            to: self.to.clone(),
        };
        // So that a court given an earlier log key can follow it to the one that signs the
        // custody checkpoint. Asked first: the export's own entry stays the log's last.
        let key_transitions: Vec<vault_core::rotation::KeyTransition> = client.get_json("/v1/log/key-transitions")?;
        let custody: Custody = client.post_json(&format!("/v1/recordings/{}/evidence", self.recording), &request)?;
        let manifest = Manifest {
            format: evidence::FORMAT.into(),
            recording: self.recording.to_string(),
            case: signed.case.to_string(),
            exported_by: client.user.to_string(),
            reason: self.reason.clone(),
            ciphertext_sha256: sha,
            ciphertext_size: size,
            plaintext_sha256: request.plaintext_sha256.clone(),
            plaintext_size: plaintext.as_ref().map(|(_, _, n)| *n),
            to: self.to.clone(),
            trust_root: opened.trust.root.clone(),
            enrolments: opened.trust.enrolments.clone(),
            disables: opened.trust.disables.clone(),
            recording_statement: opened.recording_statement.clone(),
            key_statement: opened.key_statement.clone(),
            log: custody,
            key_transitions,
        };
        // Checked here exactly as a court will check it.
        let fingerprint = vault_core::trust::Root::parse(&manifest.trust_root)?.fingerprint();
        let checked =
            evidence::verify_manifest(&manifest, &key, &fingerprint).context("EVIDENCE VERIFICATION FAILED")?;
        self.witnesses.check(&manifest.log.checkpoint)?;
        let report = evidence::report(&manifest, &checked);

        let mut bundle = tempfile::Builder::new().prefix(".vault-evidence-").tempfile_in(&dir)?;
        {
            let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, bundle.as_file_mut()));
            append(&mut tar, evidence::MANIFEST, &serde_json::to_vec_pretty(&manifest)?)?;
            append(&mut tar, evidence::REPORT, report.as_bytes())?;
            append_file(&mut tar, evidence::CIPHERTEXT, ciphertext.as_file_mut())?;
            if let Some(w) = &wrapped {
                append(&mut tar, evidence::WRAPPED_KEY, w)?;
            }
            if let Some((plain, _, _)) = &mut plaintext {
                append_file(&mut tar, evidence::PLAINTEXT, plain.as_file_mut())?;
            }
            tar.into_inner()?.flush()?;
        }
        bundle.as_file().sync_all()?;
        bundle.persist_noclobber(&self.out).map_err(|e| anyhow!("cannot write {}: {}", self.out.display(), e.error))?;
        if g.json {
            crate::output::json(&serde_json::json!({
                "out": self.out,
                "recording": self.recording,
                "custody_entries": checked.custody.len(),
                "checkpoint_size": checked.checkpoint.size,
            }))?;
        } else {
            println!("{}", self.out.display());
        }
        eprintln!(
            "wrote the evidence bundle of {} ({} custody entries); check it with `vault-cli evidence verify {}`",
            self.recording,
            checked.custody.len(),
            self.out.display()
        );
        Ok(())
    }
}

#[derive(Args)]
pub struct Verify {
    /// The bundle.
    file: PathBuf,
    /// The log's verifier key (`vault-server log-key`).
    #[arg(long, env = "VAULT_SERVER_KEY")]
    server_key: String,
    #[command(flatten)]
    witnesses: super::audit::Witnesses,
}

impl Verify {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let key = VerifierKey::parse(&self.server_key)?;
        let fingerprint = g.trust_root.as_deref().ok_or_else(|| {
            anyhow!("give the organisation's trust root (--trust-root or VAULT_TRUST_ROOT, `SHA256:...`)")
        })?;
        let Bundle { manifest, report, cipher, extra } = read_bundle(&self.file)?;
        let checked =
            evidence::verify_manifest(&manifest, &key, fingerprint).context("EVIDENCE VERIFICATION FAILED")?;
        self.witnesses.check(&manifest.log.checkpoint).context("EVIDENCE VERIFICATION FAILED")?;
        let fail = |what: String| anyhow!("EVIDENCE VERIFICATION FAILED: {what}");
        if cipher != (manifest.ciphertext_sha256.clone(), manifest.ciphertext_size) {
            return Err(fail(format!(
                "{} ({} bytes, SHA-256 {}) is not the recording its recorder signed",
                evidence::CIPHERTEXT,
                cipher.1,
                cipher.0
            )));
        }
        match (&extra, &manifest.plaintext_sha256, &manifest.to) {
            (Some((name, _)), None, Some(_)) if name == evidence::WRAPPED_KEY => {}
            (Some((name, (sha, n))), Some(want), None)
                if name == evidence::PLAINTEXT && sha == want && Some(*n) == manifest.plaintext_size => {}
            (Some((name, _)), Some(_), None) if name == evidence::PLAINTEXT => {
                return Err(fail(format!("{} is not the decrypted recording the export logged", evidence::PLAINTEXT)));
            }
            _ => return Err(fail("the bundle's files are not those its manifest names".into())),
        }
        let expected = evidence::report(&manifest, &checked);
        if report != expected {
            return Err(fail(format!("{} differs from what the bundle proves", evidence::REPORT)));
        }
        if g.json {
            crate::output::json(&serde_json::json!({
                "ok": true,
                "recording": manifest.recording,
                "case": manifest.case,
                "custody_entries": checked.custody.len(),
                "checkpoint_size": checked.checkpoint.size,
            }))?;
        } else {
            // Line by line: what others wrote is escaped, the report's own line breaks stay.
            for line in expected.lines() {
                println!("{}", crate::output::printable(line));
            }
        }
        eprintln!("verified: signatures, certificate chain, custody log and contents");
        Ok(())
    }
}

/// Hex SHA-256 and length of a file in a bundle.
type Hashed = (String, u64);

/// A bundle as read: the manifest, the report, the ciphertext's hash, and the name and
/// hash of the file after it (the wrapped key or the plaintext).
struct Bundle {
    manifest: Manifest,
    report: String,
    cipher: Hashed,
    extra: Option<(String, Hashed)>,
}

/// Reads a bundle in its order: the manifest, the report, the ciphertext (hashed as it
/// streams), then the wrapped key or the plaintext (hashed).
fn read_bundle(path: &Path) -> anyhow::Result<Bundle> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut tar = tar::Archive::new(io::BufReader::with_capacity(1 << 20, f));
    let mut entries = tar.entries().context("not a tar file")?;
    let mut next = |want: Option<&str>| -> anyhow::Result<Option<(String, tar::Entry<'_, _>)>> {
        let Some(e) = entries.next() else {
            return match want {
                Some(w) => Err(anyhow!("EVIDENCE VERIFICATION FAILED: the bundle ends before {w}")),
                None => Ok(None),
            };
        };
        let e = e.context("a damaged tar entry")?;
        let name = e.path()?.to_string_lossy().into_owned();
        if let Some(w) = want
            && name != w
        {
            bail!("EVIDENCE VERIFICATION FAILED: the bundle holds {name:?} where {w} belongs");
        }
        Ok(Some((name, e)))
    };
    let (_, e) = next(Some(evidence::MANIFEST))?.expect("required");
    let mut json = Vec::new();
    e.take(evidence::MAX_MANIFEST).read_to_end(&mut json)?;
    let manifest: Manifest = serde_json::from_slice(&json).context("EVIDENCE VERIFICATION FAILED: the manifest")?;
    let (_, e) = next(Some(evidence::REPORT))?.expect("required");
    let mut report = String::new();
    e.take(evidence::MAX_MANIFEST).read_to_string(&mut report)?;
    let (_, e) = next(Some(evidence::CIPHERTEXT))?.expect("required");
    let cipher = hash(e)?;
    let extra = match next(None)? {
        Some((name, e)) => Some((name, hash(e)?)),
        None => None,
    };
    if next(None)?.is_some() {
        bail!("EVIDENCE VERIFICATION FAILED: the bundle holds files its manifest does not name");
    }
    Ok(Bundle { manifest, report, cipher, extra })
}

fn hash(mut r: impl Read) -> io::Result<Hashed> {
    let mut h = Hashing::new(io::sink());
    io::copy(&mut r, &mut h)?;
    h.finish()
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    ctx: ring::digest::Context,
    n: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self { inner, ctx: ring::digest::Context::new(&ring::digest::SHA256), n: 0 }
    }

    fn finish(mut self) -> io::Result<Hashed> {
        self.inner.flush()?;
        Ok((hex::encode(self.ctx.finish().as_ref()), self.n))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    tar.append_data(&mut header(data.len() as u64), name, data)
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, name: &str, file: &mut std::fs::File) -> io::Result<()> {
    use std::io::Seek;
    let len = file.metadata()?.len();
    file.seek(io::SeekFrom::Start(0))?;
    tar.append_data(&mut header(len), name, io::BufReader::with_capacity(1 << 20, file))
}
