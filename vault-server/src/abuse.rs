//! Limits on what callers without a session can cost the vault: rate limits per client
//! source, and a bound on the access-log entries their requests leave.
//!
//! A caller without a valid session token (a login in progress, an attacker, a client
//! whose token expired) is known only by where it connects from. Its requests are rate
//! limited per [`Source`] (429 with `Retry-After`), and challenges per source and user
//! name, so that one source cannot cycle through a name while others are unaffected.
//!
//! Every such request still leaves a trace in the access log, but not always its own
//! entry: [`LogGate`] lets the first few per source and window ([`PER_SOURCE_ENTRIES`] by
//! default), and a global number per window ([`GLOBAL_ENTRIES`]), be written one by one; beyond that they are counted, and when the window ends
//! one `aggregated` entry per source (the busiest [`MAX_AGGREGATE_ENTRIES`] of them, the
//! rest together) records how many there were and of what kind. That bounds the log's
//! growth under any unauthenticated load to
//! `GLOBAL_ENTRIES + MAX_AGGREGATE_ENTRIES + 1` entries per window, each of at most a
//! few KiB (every field is capped: `accesslog::cap`) (a minute by default). Requests with a valid session token are not limited here: their callers
//! are accountable, and each of their refusals keeps its own entry.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use vault_core::ids::UserName;
use vault_core::log::{Action, Outcome};

use crate::accesslog::{LogRecord, append};
use crate::db::Db;
use crate::store::Store;

/// Entries written one by one per source and window, before counting starts (default).
pub const PER_SOURCE_ENTRIES: u32 = 10;
/// Entries written one by one per window from all sources together (default).
pub const GLOBAL_ENTRIES: u32 = 60;
/// Sources that get an aggregated entry of their own per window; the rest share one.
pub const MAX_AGGREGATE_ENTRIES: usize = 32;
/// Sources counted separately per window (memory bound); further ones count as "others".
const MAX_TRACKED_SOURCES: usize = 10_000;

/// Where a request comes from, as far as limits are concerned: an IPv4 address, or an
/// IPv6 /64 (one subscriber usually holds a whole /64). `Local` is a request that did not
/// arrive over a socket (the in-process tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
    Local,
}

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Source::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&a.octets()[..8]);
                    Source::V6Prefix(p)
                }
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(*a)),
            Source::V6Prefix(p) => {
                let mut full = [0u8; 16];
                full[..8].copy_from_slice(p);
                write!(f, "{}/64", Ipv6Addr::from(full))
            }
            Source::Local => f.write_str("local"),
        }
    }
}

/// The rate limits, as configured.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Requests without a valid session per source: sustained per second, and burst.
    pub unauthenticated_per_sec: u32,
    pub unauthenticated_burst: u32,
    /// Login challenges per source and user name: one per this many seconds, and burst.
    pub challenge_every_secs: u32,
    pub challenge_burst: u32,
    /// How long one window of the log gate lasts, and how many entries it writes one by
    /// one per source and in all.
    pub log_window: Duration,
    pub log_entries_per_source: u32,
    pub log_entries_per_window: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            unauthenticated_per_sec: 5,
            unauthenticated_burst: 50,
            challenge_every_secs: 3,
            challenge_burst: 10,
            log_window: Duration::from_secs(60),
            log_entries_per_source: PER_SOURCE_ENTRIES,
            log_entries_per_window: GLOBAL_ENTRIES,
        }
    }
}

/// A request refused for its rate: wait this long.
#[derive(Debug, Clone, Copy)]
pub struct TooFast(pub Duration);

impl TooFast {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0).max(u64::from(self.0.is_zero()))
    }
}

/// The rate limiters.
pub struct Limits {
    window: Duration,
    clock: DefaultClock,
    unauthenticated: DefaultKeyedRateLimiter<Source>,
    challenges: DefaultKeyedRateLimiter<(Source, UserName)>,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least 1")
}

impl Limits {
    pub fn new(s: &LimitSettings) -> Self {
        let unauth = Quota::per_second(nz(s.unauthenticated_per_sec)).allow_burst(nz(s.unauthenticated_burst));
        let every = Duration::from_secs(u64::from(s.challenge_every_secs.max(1)));
        let challenge = Quota::with_period(every).expect("non-zero period").allow_burst(nz(s.challenge_burst));
        Self {
            window: s.log_window.max(Duration::from_secs(1)),
            clock: DefaultClock::default(),
            unauthenticated: RateLimiter::keyed(unauth),
            challenges: RateLimiter::keyed(challenge),
        }
    }

    /// How long one window of the log gate lasts.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Counts one request without a valid session from `source`.
    pub fn unauthenticated(&self, source: Source) -> Result<(), TooFast> {
        if source == Source::Local {
            return Ok(());
        }
        self.unauthenticated.check_key(&source).map_err(|n| TooFast(n.wait_time_from(self.clock.now())))
    }

    /// Counts one login challenge for `user` from `source`.
    pub fn challenge(&self, source: Source, user: &UserName) -> Result<(), TooFast> {
        if source == Source::Local {
            return Ok(());
        }
        self.challenges.check_key(&(source, user.clone())).map_err(|n| TooFast(n.wait_time_from(self.clock.now())))
    }

    /// Forgets sources whose limits have refilled, so memory follows recent traffic only.
    pub fn forget_idle(&self) {
        self.unauthenticated.retain_recent();
        self.challenges.retain_recent();
        self.unauthenticated.shrink_to_fit();
        self.challenges.shrink_to_fit();
    }
}

/// What the gate decided for one entry of a caller without a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write it now, as its own entry.
    Write,
    /// Counted; the window's aggregated entry will record it.
    Counted,
}

#[derive(Default)]
struct Tally {
    written: u32,
    counted: u64,
    /// `action/outcome` → count.
    by: BTreeMap<String, u64>,
    /// The last thing a counted request was told (capped), for whoever reads the log.
    last: String,
}

impl Tally {
    fn count(&mut self, rec: &LogRecord, outcome: Outcome, told: &str) {
        self.counted += 1;
        *self.by.entry(format!("{}/{outcome}", rec.action)).or_default() += 1;
        self.last = crate::accesslog::cap(told, 200).into_owned();
    }
}

struct Window {
    opened_ms: i64,
    written: u32,
    sources: HashMap<Source, Tally>,
    others: Tally,
}

impl Window {
    fn new() -> Self {
        Self {
            opened_ms: chrono::Utc::now().timestamp_millis(),
            written: 0,
            sources: HashMap::new(),
            others: Tally::default(),
        }
    }
}

/// Decides which entries of callers without a session are written one by one and which
/// are counted; see the module's documentation.
pub struct LogGate {
    window: Mutex<Window>,
    per_source: u32,
    global: u32,
}

impl Default for LogGate {
    fn default() -> Self {
        Self::new(&LimitSettings::default())
    }
}

impl LogGate {
    pub fn new(s: &LimitSettings) -> Self {
        Self {
            window: Mutex::new(Window::new()),
            per_source: s.log_entries_per_source,
            global: s.log_entries_per_window,
        }
    }

    /// Admits one entry from `source`: to be written now, or counted (`told` is what the
    /// caller was told).
    pub fn admit(&self, source: Source, rec: &LogRecord, outcome: Outcome, told: &str) -> Admit {
        if source == Source::Local {
            return Admit::Write;
        }
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let tracked = w.sources.len() < MAX_TRACKED_SOURCES || w.sources.contains_key(&source);
        let global_room = w.written < self.global;
        let tally = if tracked { w.sources.entry(source).or_default() } else { &mut w.others };
        if tracked && global_room && tally.written < self.per_source {
            tally.written += 1;
            w.written += 1;
            return Admit::Write;
        }
        tally.count(rec, outcome, told);
        Admit::Counted
    }

    /// Closes the current window and returns its aggregated entries: one per source that
    /// had requests counted (the busiest [`MAX_AGGREGATE_ENTRIES`]), and one for the rest.
    pub fn close_window(&self) -> Vec<(LogRecord, Outcome)> {
        let old = std::mem::replace(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()), Window::new());
        let to_ms = chrono::Utc::now().timestamp_millis();
        let mut busy: Vec<(Source, Tally)> = old.sources.into_iter().filter(|(_, t)| t.counted > 0).collect();
        busy.sort_by(|a, b| b.1.counted.cmp(&a.1.counted).then(a.0.cmp(&b.0)));
        let mut rest = old.others;
        let mut rest_sources = u64::from(rest.counted > 0);
        let mut out = Vec::new();
        for (i, (source, tally)) in busy.into_iter().enumerate() {
            if i < MAX_AGGREGATE_ENTRIES {
                out.push(aggregate(&source.to_string(), 1, &tally, old.opened_ms, to_ms));
            } else {
                rest_sources += 1;
                rest.counted += tally.counted;
                for (k, n) in tally.by {
                    *rest.by.entry(k).or_default() += n;
                }
                rest.last = tally.last;
            }
        }
        if rest.counted > 0 {
            out.push(aggregate("others", rest_sources, &rest, old.opened_ms, to_ms));
        }
        out
    }

    /// Closes the window and writes its aggregated entries.
    pub async fn flush(&self, db: &Db) -> anyhow::Result<usize> {
        let entries = self.close_window();
        let n = entries.len();
        if n > 0 {
            db.call(move |c| {
                let sp = c.savepoint()?;
                let s = Store::new(&sp);
                for (rec, outcome) in &entries {
                    append(&s, rec, *outcome)?;
                }
                sp.commit()?;
                Ok(())
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot write aggregated entries: {}", e.detail.unwrap_or(e.message)))?;
        }
        Ok(n)
    }
}

fn aggregate(source: &str, sources: u64, t: &Tally, from_ms: i64, to_ms: i64) -> (LogRecord, Outcome) {
    let any_refused = t.by.keys().any(|k| k.ends_with("/refused"));
    let outcome = if any_refused { Outcome::Refused } else { Outcome::Allowed };
    let details = serde_json::json!({
        "source": source,
        "sources": sources,
        "requests": t.counted,
        "from_ms": from_ms,
        "to_ms": to_ms,
        "by": t.by,
        "last": t.last,
    });
    (LogRecord::new("-", Action::Aggregated).details(details), outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> LogRecord {
        LogRecord::new("-", Action::Login)
    }

    #[test]
    fn sources_are_addresses_and_ipv6_prefixes() {
        assert_eq!(Source::of("192.0.2.7".parse().unwrap()).to_string(), "192.0.2.7");
        assert_eq!(Source::of("::ffff:192.0.2.7".parse().unwrap()), Source::of("192.0.2.7".parse().unwrap()));
        let a = Source::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        assert_eq!(a, Source::of("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_ne!(a, Source::of("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_flood_from_one_source_is_written_ten_times_then_counted_into_one_entry() {
        let gate = LogGate::default();
        let s = Source::of("192.0.2.7".parse().unwrap());
        let admitted: Vec<Admit> = (0..1000).map(|_| gate.admit(s, &rec(), Outcome::Refused, "no")).collect();
        assert_eq!(admitted.iter().filter(|a| **a == Admit::Write).count(), PER_SOURCE_ENTRIES as usize);
        // Another source still gets its own entries.
        let t = Source::of("192.0.2.8".parse().unwrap());
        assert_eq!(gate.admit(t, &rec(), Outcome::Refused, "no"), Admit::Write);
        let entries = gate.close_window();
        assert_eq!(entries.len(), 1);
        let d: serde_json::Value = serde_json::from_str(&entries[0].0.details).unwrap();
        assert_eq!(d["source"], "192.0.2.7");
        assert_eq!(d["requests"], 1000 - u64::from(PER_SOURCE_ENTRIES));
        assert_eq!(d["by"]["login/refused"], 1000 - u64::from(PER_SOURCE_ENTRIES));
        assert_eq!(entries[0].1, Outcome::Refused);
        // The next window starts afresh.
        assert_eq!(gate.admit(s, &rec(), Outcome::Refused, "no"), Admit::Write);
    }

    #[test]
    fn many_sources_are_bounded_globally_and_in_aggregated_entries() {
        let gate = LogGate::default();
        let mut written = 0;
        for i in 0..20_000u32 {
            let s = Source::V4(i.to_be_bytes());
            for _ in 0..3 {
                if gate.admit(s, &rec(), Outcome::Refused, &"x".repeat(10_000)) == Admit::Write {
                    written += 1;
                }
            }
        }
        assert_eq!(written, GLOBAL_ENTRIES);
        let entries = gate.close_window();
        assert_eq!(entries.len(), MAX_AGGREGATE_ENTRIES + 1);
        let total: u64 = entries
            .iter()
            .map(|(r, _)| serde_json::from_str::<serde_json::Value>(&r.details).unwrap()["requests"].as_u64().unwrap())
            .sum();
        assert_eq!(total, 60_000 - u64::from(GLOBAL_ENTRIES), "every request is counted somewhere");
        assert!(entries.iter().all(|(r, _)| r.details.len() < 1024), "aggregated entries are small");
    }

    #[test]
    fn limits_refuse_with_a_wait_and_keep_sources_apart() {
        let l = Limits::new(&LimitSettings {
            unauthenticated_per_sec: 1,
            unauthenticated_burst: 3,
            challenge_every_secs: 60,
            challenge_burst: 2,
            ..LimitSettings::default()
        });
        let a = Source::of("192.0.2.7".parse().unwrap());
        let b = Source::of("192.0.2.8".parse().unwrap());
        for _ in 0..3 {
            l.unauthenticated(a).unwrap();
        }
        let wait = l.unauthenticated(a).unwrap_err();
        assert!((1..=2).contains(&wait.retry_after_secs()), "{wait:?}");
        l.unauthenticated(b).unwrap();
        let alice: UserName = "alice".parse().unwrap();
        l.challenge(a, &alice).unwrap();
        l.challenge(a, &alice).unwrap();
        assert!(l.challenge(a, &alice).unwrap_err().retry_after_secs() >= 29);
        // Another source's challenges for the same name are not affected: no lock-out.
        l.challenge(b, &alice).unwrap();
        l.challenge(a, &"bob".parse().unwrap()).unwrap();
        assert!(l.unauthenticated(Source::Local).is_ok());
    }
}
