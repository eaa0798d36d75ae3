//! `vault-cli report`: the compliance view of a data-protection officer (admins).

use clap::Args;
use vault_core::api::Report as ReportData;

use crate::Global;
use crate::client::Client;
use crate::output::printable;

#[derive(Args)]
pub struct Report {}

impl Report {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let r: ReportData = Client::new(g)?.get_json("/v1/report")?;
        if g.json {
            return crate::output::json(&r);
        }
        println!("Compliance report, {}", printable(&r.generated_at));
        println!();
        println!("Covert cases waiting for the AP's prior-check approval (R3): {}", r.pending_approvals.len());
        for c in &r.pending_approvals {
            println!("  {}  {}  since {}", c.id, printable(&c.title), printable(&c.since));
        }
        println!("Employees still to be told about covert recording (R6): {}", r.notifications.len());
        for n in &r.notifications {
            let when = match n.notification.deferred_until {
                Some(u) => format!("deferred until {u}"),
                None => format!("due by {}", n.notification.due),
            };
            println!("  {}  {}  {}  {when}", n.case.id, n.notification.status, printable(&n.case.title));
        }
        println!(
            "Recordings past their retention period, awaiting purge (R7): {}",
            r.purges_due.iter().map(|p| p.recordings).sum::<u64>()
        );
        for p in &r.purges_due {
            println!("  {}  {} recordings  oldest recorded {}", p.case.id, p.recordings, printable(&p.case.since));
        }
        println!("Cases on legal hold (R7): {}", r.holds.len());
        for c in &r.holds {
            println!("  {}  {}  closed {}", c.id, printable(&c.title), printable(&c.since));
        }
        println!("Requests to reopen a case on legal hold, waiting for a second admin: {}", r.reopen_requests.len());
        for o in &r.reopen_requests {
            println!(
                "  {}  {}  requested by {} on {}: {}",
                o.case.id,
                printable(&o.case.title),
                o.reopening.requested_by,
                printable(&o.reopening.requested_at),
                printable(&o.reopening.reason)
            );
        }
        println!();
        let rows: Vec<Vec<String>> = r
            .totals
            .iter()
            .map(|t| vec![t.kind.to_string(), t.cases.to_string(), t.open_cases.to_string(), t.recordings.to_string()])
            .collect();
        crate::output::table(&["KIND", "CASES", "OPEN", "RECORDINGS"], &rows);
        Ok(())
    }
}
