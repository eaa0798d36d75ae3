//! `vault-cli case notify CASE`: records that the employee was told about covert recording
//! (`--date`, `--how`), or that telling them is deferred (`--defer-until`, `--reason`).

use chrono::NaiveDate;
use clap::Args;
use vault_core::api::{Notice, NotificationInfo};
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("notice").required(true).args(["date", "defer_until"]))]
pub struct Notify {
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
}

impl Notify {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let Notify { case, date, how, defer_until, reason } = self;
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
        Ok(())
    }
}
