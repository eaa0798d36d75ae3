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
        let recipient = crate::local::pinned_recipient(&client.base, user, &person.recipient)?;
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
