//! `vault-cli upload CASE FILE|-`: encrypt to the case recipient, stream to the server,
//! then sign what was sent (see [`crate::uploader`]).
//!
//! With `--upload-key`, the upload is idempotent: the recording's id is derived from the
//! key (and the case, under the recorder's own secret), so sending it again after a lost
//! answer stores nothing and prints the recording the vault already holds.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use vault_core::api::{Announcement, CallMeta};
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;
use crate::uploader::{Recording, Source, Stored, Uploader, recorded_at};

#[derive(Args)]
pub struct Upload {
    case: CaseId,
    /// The recording; `-` reads it from standard input.
    file: PathBuf,
    /// How the parties were told the call was recorded; `none` only in covert cases.
    #[arg(long, default_value = "spoken-notice")]
    announced: Announcement,
    /// When the call was recorded (RFC 3339; default: now).
    #[arg(long)]
    recorded_at: Option<String>,
    /// Makes the upload idempotent: a name for this recording that stays the same when
    /// the upload is tried again (the phone system's call id, say). An upload with a key
    /// already stored in the case stores nothing and prints that recording's id.
    #[arg(long, value_name = "KEY")]
    upload_key: Option<String>,
}

impl Upload {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let stdin = self.file.as_os_str() == "-";
        let recorded_at = recorded_at(self.recorded_at.as_deref())?;
        if self.upload_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            anyhow::bail!("--upload-key must not be empty");
        }
        let mut uploader = Uploader::new(Client::new(g)?)?;
        let id = match &self.upload_key {
            Some(key) => Some(uploader.upload_id(&self.case, &format!("key\n{key}"))?),
            None => None,
        };
        let call = CallMeta {
            file_name: if stdin { None } else { self.file.file_name().map(|n| n.to_string_lossy().into_owned()) },
            plaintext_size: None,
            ..CallMeta::default()
        };
        let source = if stdin { Source::Stdin } else { Source::File(&self.file) };
        let rec = Recording { case: &self.case, source, announced: self.announced, recorded_at, call, id };
        let stored = uploader.upload(rec, true).with_context(|| {
            if stdin { "uploading standard input".to_owned() } else { format!("uploading {}", self.file.display()) }
        })?;
        let info = stored.info();
        if g.json {
            crate::output::json(info)?;
        } else {
            println!("{}", info.id);
        }
        match &stored {
            Stored::New(info) => eprintln!(
                "uploaded and signed {} ({} bytes of ciphertext, key version {})",
                info.id, info.size, info.key_version
            ),
            Stored::Repeated(info) => eprintln!(
                "the vault already holds this upload as {} (signed by you on {}); nothing new was stored",
                info.id, info.uploaded_at
            ),
        }
        Ok(())
    }
}
