//! `vault-cli case create | list | show | approve`.

use anyhow::bail;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use vault_core::api::{
    Approval, CaseBasis, CaseInfo, CaseKind, Closing, Created, HolderEnvelope, NewCase, NewCustodian, Notice,
    NotificationInfo, Outcome, Purpose, Reason, Rotation, WorksCouncil,
};
use vault_core::crypto::CaseKey;
use vault_core::ids::{CaseId, UserName};

use crate::Global;
use crate::client::Client;

#[derive(Subcommand)]
pub enum CaseCommand {
    /// Create a case; its key pair is generated here and wrapped to you. Prints the id.
    Create(Create),
    /// List the cases you may see.
    List,
    /// Show one case with its legal basis, custodians and grants.
    Show {
        case: CaseId,
        /// Decrypt the sealed description of a covert case's suspicion (custodians only;
        /// reading the case key is logged).
        #[arg(long)]
        reveal: bool,
    },
    /// Make another admin a custodian: wrap every key version of the case to them.
    AddCustodian {
        case: CaseId,
        #[arg(value_name = "ADMIN")]
        admin: UserName,
    },
    /// Make a new case key for future recordings, wrapped to the remaining holders.
    RotateKey { case: CaseId },
    /// Close a case. A covert case closed with `no-offence` has all its recordings and
    /// keys destroyed at once (R5); with `offence` it goes on legal hold (R7).
    Close {
        case: CaseId,
        #[arg(long)]
        outcome: Outcome,
    },
    /// Record that the employee was told about covert recording, or defer telling (R6).
    #[command(group = clap::ArgGroup::new("notice").required(true).args(["date", "defer_until"]))]
    Notify {
        case: CaseId,
        /// The day the employee was told.
        #[arg(long, requires = "how")]
        date: Option<NaiveDate>,
        /// How they were told (letter, meeting, ...).
        #[arg(long, requires = "date")]
        how: Option<String>,
        /// Defer telling until this review date.
        #[arg(long, requires = "reason", conflicts_with = "date")]
        defer_until: Option<NaiveDate>,
        /// Why telling must wait (e.g. the investigation would be harmed).
        #[arg(long, requires = "defer_until")]
        reason: Option<String>,
    },
    /// Release a case from legal hold, so retention applies again.
    ReleaseHold {
        case: CaseId,
        #[arg(long)]
        reason: String,
    },
    /// Record the AP's prior-check approval of a covert case (R3).
    Approve {
        case: CaseId,
        /// The AP's reference for its approval.
        #[arg(long)]
        ap_ref: String,
        /// Date of the approval (default: today).
        #[arg(long)]
        date: Option<NaiveDate>,
    },
}

#[derive(Args)]
pub struct Create {
    #[arg(long)]
    kind: CaseKind,
    #[arg(long)]
    title: String,
    /// How long recordings are kept (default per kind: customer 180, employee 90, covert 365).
    #[arg(long)]
    retention_days: Option<u32>,
    /// customer: the legitimate interest.
    #[arg(long)]
    purpose: Option<Purpose>,
    /// employee: the legitimate reason for recording.
    #[arg(long)]
    reason: Option<String>,
    /// employee: reference of the works council's consent.
    #[arg(long, conflicts_with = "no_works_council")]
    works_council_ref: Option<String>,
    /// employee: the organisation has no works council.
    #[arg(long)]
    no_works_council: bool,
    /// employee: date the AP was informed (YYYY-MM-DD).
    #[arg(long)]
    ap_informed: Option<NaiveDate>,
    /// employee, covert (optional for customer): reference of the DPIA.
    #[arg(long)]
    dpia_ref: Option<String>,
    /// covert: description of the suspected criminal offence.
    #[arg(long)]
    suspicion: Option<String>,
}

fn need<T>(v: Option<T>, flag: &str, kind: CaseKind, why: &str) -> anyhow::Result<T> {
    match v {
        Some(v) => Ok(v),
        None => bail!("a {kind} case needs {flag}: {why}"),
    }
}

impl Create {
    fn basis(&self) -> anyhow::Result<CaseBasis> {
        let kind = self.kind;
        let unexpected = |flag: &str, present: bool| -> anyhow::Result<()> {
            if present {
                bail!("{flag} does not apply to a {kind} case");
            }
            Ok(())
        };
        Ok(match kind {
            CaseKind::Customer => {
                unexpected("--reason", self.reason.is_some())?;
                unexpected("--suspicion", self.suspicion.is_some())?;
                unexpected(
                    "--works-council-ref/--no-works-council",
                    self.works_council_ref.is_some() || self.no_works_council,
                )?;
                CaseBasis::Customer {
                    purpose: need(
                        self.purpose,
                        "--purpose",
                        kind,
                        "customer calls may be recorded only for sales, complaint-handling, training or quality",
                    )?,
                    dpia_ref: self.dpia_ref.clone(),
                }
            }
            CaseKind::Employee => {
                unexpected("--purpose", self.purpose.is_some())?;
                unexpected("--suspicion", self.suspicion.is_some())?;
                let works_council = match (&self.works_council_ref, self.no_works_council) {
                    (Some(r), false) => WorksCouncil::Consent(r.clone()),
                    (None, true) => WorksCouncil::NoWorksCouncil,
                    _ => bail!(
                        "an employee case needs --works-council-ref REF or --no-works-council: the works council must consent first where there is one"
                    ),
                };
                CaseBasis::Employee {
                    reason: need(
                        self.reason.clone(),
                        "--reason",
                        kind,
                        "employee calls may be recorded only for a legitimate reason",
                    )?,
                    works_council,
                    ap_informed: need(
                        self.ap_informed,
                        "--ap-informed YYYY-MM-DD",
                        kind,
                        "the AP must be informed before employee calls are recorded",
                    )?,
                    dpia_ref: need(self.dpia_ref.clone(), "--dpia-ref", kind, "monitoring employees requires a DPIA")?,
                }
            }
            CaseKind::Covert => {
                unexpected("--purpose", self.purpose.is_some())?;
                unexpected("--reason", self.reason.is_some())?;
                unexpected(
                    "--works-council-ref/--no-works-council",
                    self.works_council_ref.is_some() || self.no_works_council,
                )?;
                unexpected("--ap-informed", self.ap_informed.is_some())?;
                CaseBasis::Covert {
                    suspicion: need(
                        self.suspicion.clone(),
                        "--suspicion",
                        kind,
                        "covert recording is lawful only on suspicion of a criminal offence",
                    )?,
                    dpia_ref: need(self.dpia_ref.clone(), "--dpia-ref", kind, "covert investigation requires a DPIA")?,
                }
            }
        })
    }
}

impl CaseCommand {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        match self {
            CaseCommand::Create(c) => {
                let mut basis = c.basis()?;
                basis.validate().map_err(anyhow::Error::msg)?;
                let mut client = Client::new(g)?;
                let me = client.identity()?.to_public();
                let key = CaseKey::generate();
                // The suspicion names an employee and a crime: the server keeps it sealed
                // to the case key, readable by custodians only.
                if let CaseBasis::Covert { suspicion, .. } = &mut basis {
                    *suspicion = vault_core::crypto::seal_text(
                        &vault_core::crypto::parse_recipient(&key.recipient())?,
                        suspicion,
                    );
                }
                let req = NewCase {
                    title: c.title,
                    retention_days: c.retention_days,
                    basis,
                    recipient: key.recipient(),
                    envelope: B64.encode(key.wrap_to(&me)),
                };
                let created: Created<CaseId> = client.post_json("/v1/cases", &req)?;
                if g.json {
                    crate::output::json(&created)?;
                } else {
                    println!("{}", created.id);
                }
                eprintln!("created {} case {}; its key is wrapped to you as custodian", c.kind, created.id);
                if c.kind == CaseKind::Covert {
                    eprintln!(
                        "it takes no recordings until the AP's approval is recorded: vault-cli case approve {} --ap-ref REF",
                        created.id
                    );
                }
            }
            CaseCommand::List => {
                let cases: Vec<CaseInfo> = Client::new(g)?.get_json("/v1/cases")?;
                if g.json {
                    return crate::output::json(&cases);
                }
                let rows: Vec<Vec<String>> = cases
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.to_string(),
                            c.kind.to_string(),
                            c.status.to_string(),
                            c.recordings.to_string(),
                            c.title.clone(),
                        ]
                    })
                    .collect();
                crate::output::table(&["CASE", "KIND", "STATUS", "RECORDINGS", "TITLE"], &rows);
            }
            CaseCommand::Show { case, reveal } => {
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
                println!("title       {}", c.title);
                println!("kind        {}", c.kind);
                println!("status      {}", c.status);
                println!("retention   {} days", c.retention_days);
                println!("basis       {}", serde_json::to_string(&c.basis)?);
                println!("created     {} by {}", c.created_at, c.created_by);
                println!("key         version {} ({})", c.key_version, c.recipient);
                println!("custodians  {}", c.custodians.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", "));
                println!("recordings  {}", c.recordings);
                if let (Some(r), Some(d)) = (&c.ap_ref, &c.ap_date) {
                    println!("AP approval {r} of {d}");
                }
                if let Some(o) = c.outcome {
                    println!(
                        "closed      {} by {} with outcome {o}{}",
                        c.closed_at.as_deref().unwrap_or("?"),
                        c.closed_by.as_deref().unwrap_or("?"),
                        if c.legal_hold { ", on legal hold" } else { "" }
                    );
                }
                if let Some(n) = &c.notification {
                    let detail = match (&n.told_on, &n.deferred_until) {
                        (Some(d), _) => format!("employee told on {d}: {}", n.how.as_deref().unwrap_or("")),
                        (None, Some(u)) => format!("deferred until {u}: {}", n.defer_reason.as_deref().unwrap_or("")),
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
                    crate::output::table(
                        &["RECORDING", "BYTES", "CIPHERTEXT SHA-256", "DESTROYED AT", "BY", "CAUSE"],
                        &rows,
                    );
                }
            }
            CaseCommand::Close { case, outcome } => {
                let mut client = Client::new(g)?;
                let done: Created<CaseId> =
                    client.post_json(&format!("/v1/cases/{case}/close"), &Closing { outcome })?;
                let info: CaseInfo = client.get_json(&format!("/v1/cases/{case}"))?;
                if g.json {
                    crate::output::json(&info)?;
                }
                match outcome {
                    Outcome::NoOffence => eprintln!(
                        "closed {}: {} recordings and every key envelope destroyed; `vault-cli case show {}` prints the certificate",
                        done.id,
                        info.destroyed.len(),
                        done.id
                    ),
                    Outcome::Offence => eprintln!("closed {}: on legal hold until `case release-hold`", done.id),
                    Outcome::Completed => {
                        eprintln!("closed {}; recordings are purged when their retention period ends", done.id)
                    }
                }
                if let Some(n) = &info.notification {
                    eprintln!("the employee must be told about the recording by {} (vault-cli case notify)", n.due);
                }
            }
            CaseCommand::Notify { case, date, how, defer_until, reason } => {
                let notice = match (date, how, defer_until, reason) {
                    (Some(date), Some(how), None, None) => Notice::Told { date, how },
                    (None, None, Some(until), Some(reason)) => Notice::Deferred { until, reason },
                    _ => anyhow::bail!("give either --date and --how, or --defer-until and --reason"),
                };
                let info: NotificationInfo = Client::new(g)?.post_json(&format!("/v1/cases/{case}/notify"), &notice)?;
                if g.json {
                    crate::output::json(&info)?;
                }
                eprintln!("notification of {case}: {}", info.status);
            }
            CaseCommand::ReleaseHold { case, reason } => {
                let done: Created<CaseId> =
                    Client::new(g)?.post_json(&format!("/v1/cases/{case}/release-hold"), &Reason { reason })?;
                if g.json {
                    crate::output::json(&done)?;
                }
                eprintln!("released {} from legal hold; its retention period applies again", done.id);
            }
            CaseCommand::AddCustodian { case, admin } => {
                let mut client = Client::new(g)?;
                let keys = crate::custody::CustodianKeys::fetch(&mut client, &case)?;
                let req = NewCustodian { admin: admin.clone(), envelopes: keys.wrap_all_to(&mut client, &admin)? };
                let done: Created<UserName> = client.post_json(&format!("/v1/cases/{case}/custodians"), &req)?;
                if g.json {
                    crate::output::json(&done)?;
                }
                eprintln!("{} is now a custodian of {case} ({} key versions wrapped)", done.id, req.envelopes.len());
            }
            CaseCommand::RotateKey { case } => {
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
                eprintln!(
                    "case {case} now uses key version {} for new recordings; wrapped to {}",
                    done.id,
                    names.join(", ")
                );
            }
            CaseCommand::Approve { case, ap_ref, date } => {
                let done: Created<CaseId> =
                    Client::new(g)?.post_json(&format!("/v1/cases/{case}/approve"), &Approval { ap_ref, date })?;
                if g.json {
                    crate::output::json(&done)?;
                }
                eprintln!("recorded the AP's approval; case {} is open for recordings", done.id);
            }
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
