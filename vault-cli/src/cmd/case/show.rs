//! `vault-cli case show CASE`: one case with its legal basis, custodians, grants, requests
//! to reopen it and, once its recordings are destroyed, the destruction certificate. A covert case's suspicion is
//! sealed to the case key; `--reveal` opens it here with the caller's envelopes.

use clap::Args;
use vault_core::api::{CaseBasis, CaseInfo};
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;
use crate::output::printable;

#[derive(Args)]
pub struct Show {
    case: CaseId,
    /// Decrypt the sealed description of a covert case's suspicion (custodians only;
    /// reading the case key is logged).
    #[arg(long)]
    reveal: bool,
}

impl Show {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let Show { case, reveal } = self;
        let mut client = Client::new(g)?;
        let mut c: CaseInfo = client.get_json(&format!("/v1/cases/{case}"))?;
        if let CaseBasis::Covert { suspicion, .. } = &mut c.basis
            && suspicion.starts_with(vault_core::crypto::SEALED_PREFIX)
        {
            *suspicion = if reveal {
                reveal_sealed(&mut client, &case, suspicion)?
            } else {
                "(sealed to the case key; `case show --reveal` decrypts it for custodians)".into()
            };
        }
        if g.json {
            return crate::output::json(&c);
        }
        println!("case        {}", c.id);
        println!("title       {}", printable(&c.title));
        println!("kind        {}", c.kind);
        println!("status      {}", c.status);
        println!("retention   {} days", c.retention_days);
        println!("basis       {}", printable(&serde_json::to_string(&c.basis)?));
        println!("created     {} by {}", printable(&c.created_at), c.created_by);
        println!("key         version {} ({})", c.key_version, printable(&c.recipient));
        println!("custodians  {}", c.custodians.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", "));
        println!("recordings  {}", c.recordings);
        if let (Some(r), Some(d)) = (&c.ap_ref, &c.ap_date) {
            println!("AP approval {} of {}", printable(r), printable(d));
        }
        if let Some(o) = c.outcome {
            println!(
                "closed      {} by {} with outcome {o}{}",
                printable(c.closed_at.as_deref().unwrap_or("?")),
                printable(c.closed_by.as_deref().unwrap_or("?")),
                if c.legal_hold { ", on legal hold" } else { "" }
            );
        }
        if c.legal_hold && c.outcome.is_none() {
            println!("legal hold  kept since an earlier closing; nothing is purged until `case release-hold`");
        }
        for o in &c.reopenings {
            let approval = match (&o.approved_by, &o.approved_at) {
                (Some(by), Some(at)) => format!(
                    "approved by {by} on {}, undoing the closing of {} by {} with outcome {}",
                    printable(at),
                    printable(o.closed_at.as_deref().unwrap_or("?")),
                    printable(o.closed_by.as_deref().unwrap_or("?")),
                    o.closed_outcome.map_or("?", |x| x.as_str())
                ),
                _ => "waiting for a second admin (vault-cli case reopen approve)".into(),
            };
            println!(
                "reopening   requested by {} on {} ({approval}): {}",
                o.requested_by,
                printable(&o.requested_at),
                printable(&o.reason)
            );
        }
        if let Some(n) = &c.notification {
            let detail = match (&n.told_on, &n.deferred_until) {
                (Some(d), _) => format!("employee told on {d}: {}", printable(n.how.as_deref().unwrap_or(""))),
                (None, Some(u)) => {
                    format!("deferred until {u}: {}", printable(n.defer_reason.as_deref().unwrap_or("")))
                }
                _ => format!("due by {}", n.due),
            };
            println!("notice      {} ({detail})", n.status);
        }
        println!("grants");
        let rows: Vec<Vec<String>> = c
            .grants
            .iter()
            .map(|gr| {
                vec![
                    gr.user.to_string(),
                    gr.status.to_string(),
                    gr.until.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
                    gr.granted_by.to_string(),
                    gr.reason.clone(),
                ]
            })
            .collect();
        crate::output::table(&["  USER", "STATUS", "UNTIL", "BY", "REASON"], &rows);
        if !c.destroyed.is_empty() {
            println!();
            println!("DESTRUCTION CERTIFICATE");
            println!(
                "{} recordings of case {} were destroyed; every key envelope of the case was deleted with them.",
                c.destroyed.len(),
                c.id
            );
            let rows: Vec<Vec<String>> = c
                .destroyed
                .iter()
                .map(|d| {
                    vec![
                        d.id.to_string(),
                        d.size.to_string(),
                        d.sha256.clone(),
                        d.destroyed_at.clone(),
                        d.destroyed_by.clone(),
                        d.cause.clone(),
                    ]
                })
                .collect();
            crate::output::table(&["RECORDING", "BYTES", "CIPHERTEXT SHA-256", "DESTROYED AT", "BY", "CAUSE"], &rows);
        }
        Ok(())
    }
}

/// Opens a text sealed to one of the case's key versions with the caller's envelopes.
fn reveal_sealed(client: &mut Client, case: &CaseId, sealed: &str) -> anyhow::Result<String> {
    let keys = crate::custody::CustodianKeys::fetch(client, case)?;
    for (_, key) in &keys.keys {
        match vault_core::crypto::open_text(key.identity(), sealed) {
            Some(Ok(text)) => return Ok(text.to_string()),
            Some(Err(vault_core::crypto::CryptoError::NotForThisIdentity)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(sealed.to_owned()),
        }
    }
    anyhow::bail!("no key version of this case opens the sealed text")
}
