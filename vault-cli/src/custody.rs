//! What a custodian does on their own machine: fetch their envelopes, unwrap every
//! version of a case key with their identity, and wrap keys to other people.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vault_core::api::{CaseKeyInfo, KeyEnvelope, UserInfo, WrappedKey};
use vault_core::crypto::CaseKey;
use vault_core::ids::{CaseId, UserName};

use crate::client::Client;

/// The caller's case keys, every version, checked against the case recipients.
pub struct CustodianKeys {
    pub info: CaseKeyInfo,
    pub keys: Vec<(u32, CaseKey)>,
}

impl CustodianKeys {
    pub fn fetch(client: &mut Client, case: &CaseId) -> anyhow::Result<Self> {
        let identity = client.identity()?;
        let info: CaseKeyInfo = client.get_json(&format!("/v1/cases/{case}/key"))?;
        let keys = unwrap_envelopes(&info.keys, &identity)?;
        Ok(Self { info, keys })
    }

    /// Every key version wrapped to `user`, whose recipient comes from the server's
    /// user list (which only admins read), checked against this machine's pins.
    pub fn wrap_all_to(&self, client: &mut Client, user: &UserName) -> anyhow::Result<Vec<WrappedKey>> {
        let person: UserInfo = client.get_json(&format!("/v1/users/{user}"))?;
        let recipient = pinned_recipient(&client.base, user, &person.recipient)?;
        Ok(self
            .keys
            .iter()
            .map(|(version, key)| WrappedKey { version: *version, envelope: B64.encode(key.wrap_to(&recipient)) })
            .collect())
    }
}

/// Opens the caller's envelopes of a case, each checked against its key version's
/// recipient.
pub fn unwrap_envelopes(
    envelopes: &[KeyEnvelope],
    identity: &age::x25519::Identity,
) -> anyhow::Result<Vec<(u32, CaseKey)>> {
    envelopes
        .iter()
        .map(|k| {
            let env = B64.decode(k.envelope.as_bytes()).context("the server sent a malformed envelope")?;
            let key = CaseKey::unwrap(&env, identity, &k.recipient)
                .with_context(|| format!("cannot open your envelope of key version {}", k.version))?;
            Ok((k.version, key))
        })
        .collect()
}

/// Checks the recipient the server reports for `user` against the one this machine saw
/// the first time it wrapped a key to them (trust on first use), and pins it if new.
///
/// Custodians wrap case secrets to whatever recipient the server names; a compromised
/// server could name its own and so read covert recordings. Pinning turns a silent
/// substitution into a refusal on every admin's machine that wrapped to that user before.
pub fn pinned_recipient(server: &str, user: &UserName, reported: &str) -> anyhow::Result<age::x25519::Recipient> {
    let recipient = vault_core::crypto::parse_recipient(reported)?;
    let id = vault_core::sha256(format!("{server}\n{user}").as_bytes());
    let dir = crate::local::config_dir()?.join("recipients");
    let path = dir.join(hex::encode(&id[..12]));
    match std::fs::read_to_string(&path) {
        Ok(pinned) if pinned.trim() == recipient.to_string() => Ok(recipient),
        Ok(pinned) => anyhow::bail!(
            "the server reports a different recipient for {user} than when you last wrapped a key to them \
             ({} now, {} before); refusing to wrap a case key to it. If {user} really has a new identity, \
             confirm the new recipient with them, then delete {}",
            recipient,
            pinned.trim(),
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
            std::fs::write(&path, format!("{recipient}\n"))?;
            Ok(recipient)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read the recipient pin {}: {e}", path.display())),
    }
}
