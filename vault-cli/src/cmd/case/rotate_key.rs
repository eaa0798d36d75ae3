//! `vault-cli case rotate-key CASE`: a new case key pair made here for future recordings,
//! wrapped to each remaining holder's pinned recipient, so a case secret that someone whose
//! access ended may have kept opens nothing recorded from now on.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use vault_core::api::{Created, HolderEnvelope, Rotation};
use vault_core::crypto::CaseKey;
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct RotateKey {
    case: CaseId,
}

impl RotateKey {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let RotateKey { case } = self;
        let mut client = Client::new(g)?;
        // Only to check that we are a custodian who holds the current key.
        let keys = crate::custody::CustodianKeys::fetch(&mut client, &case)?;
        let new_key = CaseKey::generate();
        let envelopes = keys
            .info
            .holders
            .iter()
            .map(|h| {
                let r = crate::local::pinned_recipient(&client.base, &h.user, &h.recipient)?;
                Ok(HolderEnvelope { user: h.user.clone(), envelope: B64.encode(new_key.wrap_to(&r)) })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let req = Rotation { from_version: keys.info.key_version, recipient: new_key.recipient(), envelopes };
        let done: Created<u32> = client.post_json(&format!("/v1/cases/{case}/rotate"), &req)?;
        if g.json {
            crate::output::json(&done)?;
        } else {
            println!("{}", done.id);
        }
        let names: Vec<&str> = req.envelopes.iter().map(|e| e.user.as_str()).collect();
        eprintln!("case {case} now uses key version {} for new recordings; wrapped to {}", done.id, names.join(", "));
        Ok(())
    }
}
