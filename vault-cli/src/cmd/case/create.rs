//! `vault-cli case create`: checks that the flags give the legal basis the kind of case
//! needs, makes the case key pair here and seals a covert case's suspicion to it; the
//! server gets the public key, and the private key only wrapped to the creating admin, the
//! case's first custodian.

use anyhow::bail;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDate;
use clap::Args;
use vault_core::api::{CaseBasis, CaseKind, Created, NewCase, Purpose, WorksCouncil};
use vault_core::crypto::CaseKey;
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;

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
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut basis = self.basis()?;
        basis.validate().map_err(anyhow::Error::msg)?;
        let mut client = Client::new(g)?;
        let me = client.identity()?.to_public();
        let signer = crate::trust::signing_key(&client)?;
        let dir = crate::trust::directory(&mut client)?;
        let key = CaseKey::generate();
        let id = CaseId::random();
        let key_statement = crate::trust::sign_case_key(&dir, &client, &signer, &id, self.kind, 1, key.recipient());
        // The suspicion names an employee and a crime: the server keeps it sealed
        // to the case key, readable by custodians only.
        if let CaseBasis::Covert { suspicion, .. } = &mut basis {
            *suspicion =
                vault_core::crypto::seal_text(&vault_core::crypto::parse_recipient(&key.recipient())?, suspicion);
        }
        let req = NewCase {
            id,
            title: self.title,
            retention_days: self.retention_days,
            basis,
            recipient: key.recipient(),
            envelope: B64.encode(key.wrap_to(&me)),
            key_statement,
        };
        let created: Created<CaseId> = client.post_json("/v1/cases", &req)?;
        if g.json {
            crate::output::json(&created)?;
        } else {
            println!("{}", created.id);
        }
        eprintln!("created {} case {}; its key is wrapped to you as custodian", self.kind, created.id);
        if self.kind == CaseKind::Covert {
            eprintln!(
                "it takes no recordings until the AP's approval is recorded: vault-cli case approve {} --ap-ref REF",
                created.id
            );
        }
        Ok(())
    }

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
