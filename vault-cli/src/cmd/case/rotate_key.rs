//! `vault-cli case rotate-key CASE`: a new case key pair made here for future recordings,
//! wrapped to each remaining holder's enrolled key, so a case secret that someone whose
//! access ended may have kept opens nothing recorded from now on. The new recipient is
//! signed by the caller, so recorders will encrypt to it. Each holder the server lists
//! must be vouched for by a signed custodianship or a valid signed grant: a holder the
//! server added stops the rotation.

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
        let signer = crate::trust::signing_key(&client)?;
        // Also checks that we are a custodian who holds the current key.
        let keys = crate::custody::CustodianKeys::fetch(&mut client, &case)?;
        let today = chrono::Utc::now().date_naive();
        for h in &keys.info.holders {
            keys.check_holder(h, &case, today)?;
        }
        let new_key = CaseKey::generate();
        let envelopes = keys
            .info
            .holders
            .iter()
            .map(|h| {
                let r = keys.recipient_of(&h.user)?;
                Ok(HolderEnvelope { user: h.user.clone(), envelope: B64.encode(new_key.wrap_to(&r)) })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let version = keys.info.key_version + 1;
        let key_statement =
            crate::trust::sign_case_key(&keys.dir, &client, &signer, &case, keys.kind, version, new_key.recipient());
        let req =
            Rotation { from_version: keys.info.key_version, recipient: new_key.recipient(), envelopes, key_statement };
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
