//! What a custodian does on their own machine: fetch their envelopes, unwrap every
//! version of a case key with their identity, and wrap keys to other people.
//!
//! Every key version is checked against a custodian's signed statement of its recipient,
//! and keys are wrapped only to people whose enrolment verifies from the pinned trust
//! root: never to a recipient the server merely names.

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDate;
use vault_core::api::{CaseKeyInfo, CaseKind, Holder, KeyEnvelope, WrappedKey};
use vault_core::crypto::CaseKey;
use vault_core::ids::{CaseId, UserName};
use vault_core::trust::Directory;

use crate::client::Client;

/// The caller's case keys, every version, checked against the signed case recipients.
pub struct CustodianKeys {
    pub info: CaseKeyInfo,
    pub keys: Vec<(u32, CaseKey)>,
    /// The case's kind, as its custodian signed it.
    pub kind: CaseKind,
    /// Who signed key version 1: the case's creator and first custodian.
    pub creator: Option<UserName>,
    pub dir: Directory,
}

impl CustodianKeys {
    pub fn fetch(client: &mut Client, case: &CaseId) -> anyhow::Result<Self> {
        let identity = client.identity()?;
        let dir = crate::trust::directory(client)?;
        let info: CaseKeyInfo = client.get_json(&format!("/v1/cases/{case}/key"))?;
        let (keys, kind) = unwrap_envelopes(&dir, case, &info.keys, &identity)?;
        let creator = info
            .keys
            .iter()
            .find(|k| k.version == 1)
            .and_then(|k| k.statement.parse::<vault_core::trust::CaseKeyStatement>().ok())
            .map(|k| k.by);
        Ok(Self { info, keys, kind, creator, dir })
    }

    /// The age recipient of `user`'s enrolled key, if their enrolment verifies.
    pub fn recipient_of(&self, user: &UserName) -> anyhow::Result<age::x25519::Recipient> {
        let p = self.dir.person(user).with_context(|| format!("refusing to wrap a case key to {user}"))?;
        Ok(p.id.recipient().clone())
    }

    /// Checks that `holder` may receive a new key version, on the word of people rather
    /// than the server's list: the case's creator (who signed key version 1), an admin a
    /// custodian made custodian, or a grantee whose signed grant is valid today (approved
    /// by a second admin on a covert case, not expired).
    pub fn check_holder(&self, holder: &Holder, case: &CaseId, today: NaiveDate) -> anyhow::Result<()> {
        let refuse = |why: String| {
            anyhow!(
                "refusing to wrap the new key to {}: {why}; the server may be lying about who holds it",
                holder.user
            )
        };
        if let Some(c) = &holder.custodian {
            let c = self.dir.check_custodian(c, case).map_err(|e| refuse(e.to_string()))?;
            return if c.name == holder.user {
                Ok(())
            } else {
                Err(refuse("the custodianship names someone else".into()))
            };
        }
        if let Some(g) = &holder.grant {
            let g = self.dir.check_grant(g, case, self.kind, today).map_err(|e| refuse(e.to_string()))?;
            return if g.name == holder.user { Ok(()) } else { Err(refuse("the grant names someone else".into())) };
        }
        if self.creator.as_ref() == Some(&holder.user) {
            return Ok(());
        }
        Err(refuse("no signed custodianship or grant says they hold it".into()))
    }

    /// Every key version wrapped to `user`'s enrolled key.
    pub fn wrap_all_to(&self, user: &UserName) -> anyhow::Result<Vec<WrappedKey>> {
        let recipient = self.recipient_of(user)?;
        Ok(self
            .keys
            .iter()
            .map(|(version, key)| WrappedKey { version: *version, envelope: B64.encode(key.wrap_to(&recipient)) })
            .collect())
    }
}

/// Opens the caller's envelopes of `case`, each checked against its key version's
/// recipient as a custodian signed it. Returns the keys and the case's signed kind.
pub fn unwrap_envelopes(
    dir: &Directory,
    case: &CaseId,
    envelopes: &[KeyEnvelope],
    identity: &age::x25519::Identity,
) -> anyhow::Result<(Vec<(u32, CaseKey)>, CaseKind)> {
    let mut kind = None;
    let keys = envelopes
        .iter()
        .map(|k| {
            let signed = dir
                .check_case_key(&k.statement, case, k.version, &k.recipient)
                .with_context(|| format!("key version {} of {case} is not vouched for by a custodian", k.version))?;
            if kind.is_some_and(|seen| seen != signed.kind) {
                bail!("the key versions of {case} were signed for different kinds of case");
            }
            kind = Some(signed.kind);
            let env = B64.decode(k.envelope.as_bytes()).context("the server sent a malformed envelope")?;
            let key = CaseKey::unwrap(&env, identity, &k.recipient)
                .with_context(|| format!("cannot open your envelope of key version {}", k.version))?;
            Ok((k.version, key))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let kind = kind.with_context(|| format!("you hold no key of {case}"))?;
    Ok((keys, kind))
}
