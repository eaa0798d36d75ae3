//! `vault-cli upload CASE FILE`: encrypt to the case recipient and stream to the server.
//!
//! Encryption runs on its own thread and hands chunks to the HTTP request body (see
//! [`crate::transfer`]), so neither side holds more than a few chunks of the recording.
//! If encryption fails half way, the body ends in an error rather than a clean end, so
//! the server never mistakes a truncated ciphertext for a complete one.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use vault_core::api::{Announcement, CallMeta, CaseRecipient, HEADER_META, RecordingInfo};
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;
use crate::transfer;

#[derive(Args)]
pub struct Upload {
    case: CaseId,
    file: PathBuf,
    /// How the parties were told the call was recorded; `none` only in covert cases.
    #[arg(long, default_value = "spoken-notice")]
    announced: Announcement,
    /// When the call was recorded (RFC 3339; default: now).
    #[arg(long)]
    recorded_at: Option<String>,
}

/// Counts and hashes what passes through, so the client can check what the server stored.
struct HashingWriter<W> {
    inner: W,
    ctx: ring::digest::Context,
    n: u64,
}

impl<W: Write> Write for HashingWriter<W> {
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

impl Upload {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let file = std::fs::File::open(&self.file).with_context(|| format!("cannot open {}", self.file.display()))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            bail!("{} is not a regular file", self.file.display());
        }
        let len = meta.len();
        let mut client = Client::new(g)?;
        let target: CaseRecipient = client.get_json(&format!("/v1/cases/{}/recipient", self.case))?;
        let recipient = vault_core::crypto::parse_recipient(&target.recipient)?;
        let call = CallMeta {
            file_name: self.file.file_name().map(|n| n.to_string_lossy().into_owned()),
            plaintext_size: Some(len),
        };
        let meta_ct =
            B64.encode(vault_core::crypto::encrypt_small(&recipient, serde_json::to_string(&call)?.as_bytes()));

        // The token must outlive the upload: a streamed body cannot be sent twice.
        let token = client.token()?;
        let rt = transfer::runtime()?;
        let http = client.async_http()?;
        let (writer, body) = transfer::chunk_channel();
        let pb = crate::output::progress(Some(len), "encrypting and uploading");
        let mut input = pb.wrap_read(io::BufReader::with_capacity(transfer::CHUNK, file));
        let encryptor = std::thread::spawn(move || -> io::Result<(String, u64)> {
            let mut out = HashingWriter { inner: writer, ctx: ring::digest::Context::new(&ring::digest::SHA256), n: 0 };
            vault_core::crypto::encrypt_stream(&recipient, &mut input, &mut out)?;
            let HashingWriter { inner, ctx, n } = out;
            inner.finish()?;
            Ok((hex::encode(ctx.finish()), n))
        });

        let mut query = vec![("announced", self.announced.as_str().to_owned())];
        if let Some(t) = &self.recorded_at {
            query.push(("recorded_at", t.clone()));
        }
        let url = client.url(&format!("/v1/cases/{}/recordings", self.case));
        let answer = rt.block_on(async {
            let resp = http
                .post(&url)
                .query(&query)
                .header(HEADER_META, meta_ct)
                .bearer_auth(token.as_str())
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await?;
            let status = resp.status();
            Ok::<_, reqwest::Error>((status, resp.bytes().await?))
        });
        let encrypted = encryptor.join().map_err(|_| anyhow!("the encryption thread panicked"))?;
        pb.finish_and_clear();
        let (status, bytes) = answer.map_err(|e| anyhow!("upload failed: {e}"))?;
        if !status.is_success() {
            return Err(crate::client::error_from(status, &bytes));
        }
        let info: RecordingInfo = serde_json::from_slice(&bytes).context("unexpected answer from the server")?;
        let (sha, n) = encrypted.context("reading or encrypting the file failed")?;
        if info.sha256 != sha || info.size != n {
            bail!(
                "the server stored {} bytes with SHA-256 {}, but this client sent {n} bytes with SHA-256 {sha}; report this to an admin",
                info.size,
                info.sha256
            );
        }
        if g.json {
            crate::output::json(&info)?;
        } else {
            println!("{}", info.id);
        }
        eprintln!("uploaded {} ({} bytes of ciphertext, key version {})", info.id, info.size, info.key_version);
        Ok(())
    }
}
