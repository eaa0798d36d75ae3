//! `vault-cli grant CASE USER --reason`, `vault-cli grant approve CASE USER` and
//! `vault-cli grant deliver CASE USER`.
//!
//! Granting happens on the custodian's machine: the custodian signs the grant (case,
//! grantee and their enrolled key, last day), and on a case that is not covert unwraps
//! the case secret with their identity and wraps it to the grantee's enrolled key; the
//! server only ever sees the statement and the envelopes. On a covert case no envelope is
//! made before a second admin approves by signing the grant too: an approver who is a
//! custodian delivers the key with the approval, otherwise a custodian delivers it after
//! (`grant deliver`).

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use vault_core::api::{CaseInfo, CaseKind, GrantApproval, GrantInfo, GrantStatus, KeyDelivery, NewGrant};
use vault_core::ids::{CaseId, UserName};
use vault_core::trust::{GrantStatement, Signed, statement};

use crate::Global;
use crate::client::Client;
use crate::custody::CustodianKeys;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Grant {
    #[command(subcommand)]
    sub: Option<GrantSub>,
    #[arg(required = true)]
    case: Option<CaseId>,
    #[arg(required = true, value_name = "USER")]
    grantee: Option<UserName>,
    /// Why this person needs access (kept in the access log).
    #[arg(long, required = true)]
    reason: Option<String>,
    /// Last day the grant is valid (YYYY-MM-DD).
    #[arg(long)]
    until: Option<NaiveDate>,
}

#[derive(Subcommand)]
enum GrantSub {
    /// Approve a pending grant on a covert case (a second admin; four eyes). A custodian
    /// delivers the key with the approval.
    Approve {
        case: CaseId,
        #[arg(value_name = "USER")]
        grantee: UserName,
    },
    /// Deliver the key of an approved covert grant (a custodian).
    Deliver {
        case: CaseId,
        #[arg(value_name = "USER")]
        grantee: UserName,
    },
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

impl Grant {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        match self.sub {
            Some(GrantSub::Approve { case, grantee }) => return approve(g, &mut client, &case, &grantee),
            Some(GrantSub::Deliver { case, grantee }) => return deliver(g, &mut client, &case, &grantee),
            None => {}
        }
        let (case, user, reason) = (
            self.case.context("CASE is required")?,
            self.grantee.context("USER is required")?,
            self.reason.context("--reason is required")?,
        );
        let signer = crate::trust::signing_key(&client)?;
        let keys = CustodianKeys::fetch(&mut client, &case)?;
        let grantee = keys.dir.person(&user).with_context(|| format!("refusing to grant {user}"))?;
        let stmt = GrantStatement {
            vault: keys.dir.vault().to_owned(),
            case: case.clone(),
            name: user.clone(),
            id: grantee.id.clone(),
            until: self.until,
            by: client.user.clone(),
            at: statement::now(),
        };
        // On a covert case the key waits for the second admin's approval.
        let envelopes = if keys.kind == CaseKind::Covert { Vec::new() } else { keys.wrap_all_to(&user)? };
        let req = NewGrant {
            user: user.clone(),
            reason,
            until: self.until,
            envelopes,
            statement: Signed::sign(&stmt, &signer),
        };
        let info: GrantInfo = client.post_json(&format!("/v1/cases/{case}/grants"), &req)?;
        if g.json {
            crate::output::json(&info)?;
        }
        match info.status {
            GrantStatus::Pending => eprintln!(
                "granted {user} access to covert case {case}, pending: a second admin must run `vault-cli grant approve {case} {user}`; no key is wrapped to {user} before that"
            ),
            _ => eprintln!("granted {user} access to case {case}"),
        }
        Ok(())
    }
}

/// The signed grant of `user` on `case`, as the server holds it (checked by the caller).
fn grant_of(client: &mut Client, case: &CaseId, user: &UserName) -> anyhow::Result<(CaseInfo, Signed)> {
    let info: CaseInfo = client.get_json(&format!("/v1/cases/{case}"))?;
    let grant =
        info.grants.iter().find(|g| g.user == *user).with_context(|| format!("{user} has no grant on {case}"))?;
    let statement = grant.statement.clone().with_context(|| format!("{user}'s grant on {case} is not signed"))?;
    Ok((info, statement))
}

fn approve(g: &Global, client: &mut Client, case: &CaseId, user: &UserName) -> anyhow::Result<()> {
    let signer = crate::trust::signing_key(client)?;
    let (info, mut statement) = grant_of(client, case, user)?;
    let dir = crate::trust::directory(client)?;
    let stmt = dir.check_grant_request(&statement, case).context("the grant does not verify; do not approve it")?;
    if stmt.name != *user {
        bail!("the grant the server shows names {}, not {user}; do not approve it", stmt.name);
    }
    let signature = B64.encode(signer.sign(statement.statement.as_bytes()));
    // A custodian delivers the key with the approval, after checking the grant as it will
    // stand with their signature on it.
    // (Four eyes are the server's to refuse, with its message: the requester or the
    // grantee approving delivers nothing.)
    let four_eyes = stmt.by != client.user && stmt.name != client.user;
    let envelopes = if four_eyes && info.custodians.contains(&client.user) {
        let keys = CustodianKeys::fetch(client, case)?;
        statement.cosign(&client.user, &signer);
        keys.dir.check_grant(&statement, case, keys.kind, today())?;
        keys.wrap_all_to(user)?
    } else {
        Vec::new()
    };
    let delivered = !envelopes.is_empty();
    let body = GrantApproval { signature, envelopes };
    let done: GrantInfo = client.post_json(&format!("/v1/cases/{case}/grants/{user}/approve"), &body)?;
    if g.json {
        crate::output::json(&done)?;
    }
    if delivered {
        eprintln!("approved the grant of {user} on {case} and delivered the key; it is active now");
    } else {
        eprintln!(
            "approved the grant of {user} on {case}; a custodian ({}) must now deliver the key: `vault-cli grant deliver {case} {user}`",
            info.custodians.iter().map(UserName::as_str).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

fn deliver(g: &Global, client: &mut Client, case: &CaseId, user: &UserName) -> anyhow::Result<()> {
    let (_, statement) = grant_of(client, case, user)?;
    let keys = CustodianKeys::fetch(client, case)?;
    let stmt = keys
        .dir
        .check_grant(&statement, case, keys.kind, today())
        .with_context(|| format!("refusing to deliver the key of {case} to {user}"))?;
    if stmt.name != *user {
        bail!("the grant the server shows names {}, not {user}; refusing to deliver", stmt.name);
    }
    let body = KeyDelivery { envelopes: keys.wrap_all_to(user)? };
    let done: GrantInfo = client.post_json(&format!("/v1/cases/{case}/grants/{user}/deliver"), &body)?;
    if g.json {
        crate::output::json(&done)?;
    }
    eprintln!("delivered the key of {case} to {user}; the grant is active now");
    Ok(())
}
