//! `vault-cli ingest`: a recorder that takes finished recordings from spool directories,
//! uploads them, and removes the plaintext once the vault holds them.
//!
//! **When a file is finished.** A phone system writes a recording elsewhere and renames
//! it into the spool (the safe way, one `mv` on the same file system), or writes it in
//! the spool and closes it: the ingester takes a file when it is renamed in or closed
//! after writing (inotify). A file it finds without having seen it written (at start-up,
//! or after the kernel dropped events) is taken once unchanged for `--settle-secs`. Names
//! starting with `.` and ending in `.part` or `.tmp` are never taken; `NAME.json` is the
//! sidecar of `NAME` (call metadata), so it must be in place before `NAME` is.
//!
//! **No loss, no duplicate.** Each file is uploaded under an id derived from its name,
//! content and sidecar (see [`vault_core::upload_id`]); the plaintext is removed (or
//! moved to `done/` with `--keep`) only after the server confirmed a checked, durable,
//! signed upload. A crash or restart of either side before that leaves the file in the
//! spool, and uploading it again stores nothing new: the server answers the recording it
//! holds, which counts only with this recorder's own signature for that id.
//!
//! **Failures.** A file the server refuses (a closed case, a refused announcement) goes
//! to `failed/` at once, with the reason in `failed/NAME.reason`: trying again would only
//! fill the access log with refusals. Other failures are tried again with backoff, and
//! after `--max-attempts` go to `failed/` too. While the server cannot be reached at all,
//! files wait without using up their attempts.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use vault_core::api::{Announcement, CallMeta};
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::{Answered, Client, Denied};
use crate::uploader::{KeyChanged, Recording, Source, Stored, Uploader, recorded_at};

#[derive(Args)]
pub struct Ingest {
    /// The spool directory to take recordings from (with --case).
    #[arg(long, value_name = "DIR", requires = "case", required_unless_present = "routes")]
    watch: Option<PathBuf>,
    /// The case the recordings of --watch go to.
    #[arg(long, requires = "watch")]
    case: Option<CaseId>,
    /// Several spool directories: a file with one route per line, `DIR CASE
    /// [ANNOUNCED]` (`#` starts a comment).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["watch", "case"])]
    routes: Option<PathBuf>,
    /// How the calls were announced, unless a route or a sidecar says otherwise.
    #[arg(long, default_value = "spoken-notice")]
    announced: Announcement,
    /// Recordings uploaded at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Move uploaded files to done/ in their spool instead of deleting them.
    #[arg(long)]
    keep: bool,
    /// Attempts at a file before it goes to failed/ (refusals go at once; waiting for an
    /// unreachable server uses none).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: u32,
    /// A file found without being seen written is taken once unchanged this long.
    #[arg(long, default_value_t = 2)]
    settle_secs: u64,
    /// Exit once the spools are empty instead of watching them.
    #[arg(long)]
    once: bool,
    /// Keep the counts (uploaded, repeated, retried, failed, waiting) in this JSON file,
    /// rewritten every second.
    #[arg(long, value_name = "FILE")]
    status_file: Option<PathBuf>,
}

/// A spool directory and where its recordings go.
#[derive(Debug, Clone)]
struct Route {
    dir: PathBuf,
    case: CaseId,
    announced: Announcement,
}

/// Call metadata a phone system writes beside a recording, as `NAME.json`. Every field
/// is optional; unknown fields are refused, so that a misspelt one is noticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    from: Option<String>,
    to: Option<String>,
    agent: Option<String>,
    direction: Option<String>,
    call_id: Option<String>,
    recorded_at: Option<String>,
    announced: Option<Announcement>,
}

/// The counts `ingest` keeps, logged and written to `--status-file`.
#[derive(Debug, Default, Clone, Serialize)]
struct Counts {
    uploaded: u64,
    /// Uploads the vault held already (a retry after a crash or a lost answer).
    repeated: u64,
    retried: u64,
    failed: u64,
    /// Files seen and not yet uploaded (being written, waiting to be tried, or in flight).
    waiting: u64,
    in_flight: u64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} uploaded, {} already held, {} retried, {} failed, {} waiting",
            self.uploaded, self.repeated, self.retried, self.failed, self.waiting
        )
    }
}

/// Where a file seen in a spool stands.
#[derive(Debug)]
struct Pending {
    route: usize,
    /// Taken when renamed in or closed after writing; else once settled.
    ready: bool,
    /// Seen created: it is finished when closed (or renamed), however long its writer
    /// pauses, and never by settling (unless events were lost).
    watched: bool,
    attempts: u32,
    /// Tries while the server could not be reached (they use no attempt).
    unreachable: u32,
    /// Tries the server denied (see [`Failure::Denied`]).
    denied: u32,
    not_before: Instant,
    in_flight: bool,
}

enum Msg {
    Fs(notify::Result<notify::Event>),
    Done { path: PathBuf, took: Duration, result: Box<anyhow::Result<Stored>> },
}

/// What went wrong with a file, and what to do about it.
enum Failure {
    /// Try again later, using up an attempt.
    Retry,
    /// The server could not be reached: try again later, using up no attempt.
    Unreachable,
    /// Refused: to failed/ at once.
    Refused,
    /// Access denied: perhaps only the session expired, so tried once more after logging
    /// in again; then to failed/.
    Denied,
    /// The file is gone (someone else took it): forget it.
    Gone,
}

impl Ingest {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let routes = self.routes()?;
        let subdirs: &[&str] = if self.keep { &["done", "failed"] } else { &["failed"] };
        for dir in routes.iter().flat_map(|r| subdirs.iter().map(|sub| r.dir.join(sub))) {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
        }
        let mut client = Client::new(g)?;
        client.share_transfers(2);
        let mut uploader = Uploader::new(client)?;
        // Logs in and checks every route's case key before taking any file. A case the
        // server refuses (closed, unknown) is only warned about: its files go to failed/
        // with the reason, and the other routes go on.
        uploader.client.login().context("cannot log in")?;
        for r in &routes {
            match uploader.check_case(&r.case) {
                Ok(_) => {}
                Err(e) if matches!(classify(&e), Failure::Refused | Failure::Denied) => {
                    eprintln!("vault-cli: warning: {} ({}): {e:#}", r.case, r.dir.display())
                }
                Err(e) => return Err(e.context(format!("cannot upload to {} ({})", r.case, r.dir.display()))),
            }
        }
        let (tx, rx) = mpsc::channel::<Msg>();
        let fs_tx = tx.clone();
        let mut watcher = notify::recommended_watcher(move |e| {
            let _ = fs_tx.send(Msg::Fs(e));
        })
        .context("cannot watch the spool directories")?;
        for r in &routes {
            use notify::Watcher;
            watcher
                .watch(&r.dir, notify::RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch {}", r.dir.display()))?;
        }
        let stop = stop_on_signal()?;
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(job_rx));
        let mut workers = Vec::new();
        for _ in 0..self.jobs {
            let (jobs, tx, mut up, keep) = (jobs.clone(), tx.clone(), uploader.copy()?, self.keep);
            workers.push(std::thread::spawn(move || worker(&jobs, &tx, &mut up, keep)));
        }
        drop(tx);
        let mut spool = Spool {
            routes,
            pending: HashMap::new(),
            counts: Counts::default(),
            settle: Duration::from_secs(self.settle_secs),
            max_attempts: self.max_attempts,
            keep: self.keep,
        };
        spool.scan();
        eprintln!(
            "vault-cli: ingesting from {} into {} ({} at once)",
            spool.routes.iter().map(|r| r.dir.display().to_string()).collect::<Vec<_>>().join(", "),
            spool.routes.iter().map(|r| r.case.to_string()).collect::<Vec<_>>().join(", "),
            self.jobs
        );
        let mut last_status = Instant::now() - Duration::from_secs(10);
        let mut last_summary = Instant::now();
        let mut last_scan = Instant::now();
        let mut last_line = String::new();
        let mut in_flight = 0usize;
        let queue = 2 * self.jobs as usize;
        loop {
            // Everything that has come, then the bookkeeping once: per batch, not per
            // message, so that ten thousand files cost no more than they must.
            let mut next = rx.recv_timeout(Duration::from_millis(100));
            let mut disconnected = false;
            loop {
                match next {
                    Ok(Msg::Fs(Ok(event))) => spool.event(&event),
                    Ok(Msg::Fs(Err(e))) => {
                        eprintln!("vault-cli: watching the spool failed ({e}); looking at it afresh");
                        spool.rescan();
                    }
                    Ok(Msg::Done { path, took, result }) => {
                        in_flight -= 1;
                        spool.finished(path, took, *result);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
                next = rx.try_recv().map_err(|e| match e {
                    mpsc::TryRecvError::Empty => mpsc::RecvTimeoutError::Timeout,
                    mpsc::TryRecvError::Disconnected => mpsc::RecvTimeoutError::Disconnected,
                });
            }
            if disconnected {
                break;
            }
            // Every few seconds, a scan catches what events missed.
            if last_scan.elapsed() > Duration::from_secs(5) {
                spool.scan();
                last_scan = Instant::now();
            }
            spool.settle_found();
            // A few jobs queued per worker, no more: a stop waits only for those.
            if !stop.load(Ordering::SeqCst) && in_flight < queue {
                for job in spool.due(queue - in_flight) {
                    in_flight += 1;
                    job_tx.send(job).expect("the workers outlive the loop");
                }
            }
            if last_status.elapsed() >= Duration::from_secs(1) {
                spool.write_status(self.status_file.as_deref());
                last_status = Instant::now();
            }
            // A summary every 10 s, when something changed.
            if last_summary.elapsed() >= Duration::from_secs(10) {
                let line = spool.counts().to_string();
                if line != last_line {
                    eprintln!("vault-cli: ingest: {line}");
                    last_line = line;
                }
                last_summary = Instant::now();
            }
            if stop.load(Ordering::SeqCst) && in_flight == 0 {
                eprintln!("vault-cli: ingest stopping; files not yet uploaded stay in the spool");
                break;
            }
            if self.once && spool.pending.is_empty() {
                break;
            }
        }
        drop(job_tx);
        for w in workers {
            let _ = w.join();
        }
        spool.write_status(self.status_file.as_deref());
        let c = spool.counts();
        eprintln!("vault-cli: ingest: {c}");
        if g.json {
            crate::output::json(&c)?;
        }
        Ok(())
    }

    fn routes(&self) -> anyhow::Result<Vec<Route>> {
        let routes = match (&self.watch, &self.case, &self.routes) {
            (Some(dir), Some(case), None) => {
                vec![Route { dir: dir.clone(), case: case.clone(), announced: self.announced }]
            }
            (None, None, Some(file)) => parse_routes(file, self.announced)?,
            _ => bail!("give --watch DIR --case CASE, or --routes FILE"),
        };
        // Canonical, so that the paths events name compare equal to them.
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(routes.len());
        for r in routes {
            let dir = std::fs::canonicalize(&r.dir)
                .with_context(|| format!("spool directory {} cannot be opened", r.dir.display()))?;
            if !dir.is_dir() {
                bail!("{} is not a directory", r.dir.display());
            }
            if !seen.insert(dir.clone()) {
                bail!("{} is routed twice: a spool directory goes to one case", r.dir.display());
            }
            out.push(Route { dir, ..r });
        }
        Ok(out)
    }
}

/// Reads a routes file: `DIR CASE [ANNOUNCED]` per line; blank lines and `#` comments
/// are skipped. A relative DIR is relative to the routes file.
fn parse_routes(file: &Path, announced: Announcement) -> anyhow::Result<Vec<Route>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read --routes {}", file.display()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut routes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = || format!("{} line {}", file.display(), n + 1);
        let (dir, case, how) = match fields.as_slice() {
            [dir, case] => (dir, case, None),
            [dir, case, how] => (dir, case, Some(how)),
            _ => bail!("{}: expected `DIR CASE [ANNOUNCED]`, got {line:?}", at()),
        };
        let case: CaseId = case.parse().with_context(|| format!("{}: {case:?} is not a case id", at()))?;
        let announced = match how {
            None => announced,
            Some(h) => h.parse().map_err(|e| anyhow::anyhow!("{}: {e}", at()))?,
        };
        routes.push(Route { dir: base.join(dir), case, announced });
    }
    if routes.is_empty() {
        bail!("{} names no route: write one `DIR CASE` per line", file.display());
    }
    Ok(routes)
}

/// A file for a worker to upload.
struct Job {
    path: PathBuf,
    route: Route,
}

fn worker(jobs: &Mutex<mpsc::Receiver<Job>>, done: &mpsc::Sender<Msg>, up: &mut Uploader, keep: bool) {
    loop {
        let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let started = Instant::now();
        let result = ingest_one(up, &job, keep);
        let _ = done.send(Msg::Done { path: job.path, took: started.elapsed(), result: Box::new(result) });
    }
}

/// Uploads one file under its derived id and, once the vault holds it, removes it (or
/// moves it to done/), with its sidecar.
fn ingest_one(up: &mut Uploader, job: &Job, keep: bool) -> anyhow::Result<Stored> {
    let path = &job.path;
    let name = file_name(path)?;
    let sidecar_path = sidecar_of(path);
    let (sidecar, sidecar_sha) = match std::fs::read(&sidecar_path) {
        Ok(bytes) => {
            let s: Sidecar = serde_json::from_slice(&bytes)
                .map_err(|e| Refusal(format!("its sidecar {}.json is not valid call metadata: {e}", name)))?;
            (s, hex::encode(vault_core::sha256(&bytes)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Sidecar::default(), "-".to_owned()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", sidecar_path.display())),
    };
    let (sha, mtime) = hash_file(path)?;
    let id = up.upload_id(&job.route.case, &format!("file\n{name}\n{sha}\n{sidecar_sha}"))?;
    let recorded = match &sidecar.recorded_at {
        Some(t) => {
            recorded_at(Some(t)).map_err(|_| Refusal(format!("its sidecar's recorded_at {t:?} is not RFC 3339")))?
        }
        None => chrono::DateTime::<chrono::Utc>::from(mtime).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let call = CallMeta {
        file_name: Some(name.clone()),
        plaintext_size: None,
        from: sidecar.from,
        to: sidecar.to,
        agent: sidecar.agent,
        direction: sidecar.direction,
        call_id: sidecar.call_id,
    };
    let rec = Recording {
        case: &job.route.case,
        source: Source::File(path),
        announced: sidecar.announced.unwrap_or(job.route.announced),
        recorded_at: recorded,
        call,
        id: Some(id),
    };
    let stored = match up.upload(rec, false) {
        Err(e) if e.downcast_ref::<Denied>().is_some() => {
            // Perhaps only the session expired: log in again, once.
            up.client.forget_token();
            return Err(e);
        }
        other => other?,
    };
    // The vault holds it, signed: now the plaintext may go.
    let dir = path.parent().unwrap_or(Path::new("."));
    if keep {
        let to = free_name(&dir.join("done"), &name);
        std::fs::rename(path, &to).with_context(|| format!("cannot move {} to {}", path.display(), to.display()))?;
        if sidecar_path.exists() {
            let _ = std::fs::rename(&sidecar_path, to.with_file_name(format!("{}.json", file_name(&to)?)));
        }
    } else {
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
        let _ = std::fs::remove_file(&sidecar_path);
    }
    Ok(stored)
}

/// A file whose upload cannot succeed as it is (a bad sidecar): to failed/ at once.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refusal(String);

fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no file name that is text", path.display()))
}

fn sidecar_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// The file's SHA-256 (hex) and modification time.
fn hash_file(path: &Path) -> anyhow::Result<(String, SystemTime)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mtime = f.metadata()?.modified()?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok((hex::encode(ctx.finish()), mtime))
}

/// `dir/name`, or `dir/name.1`, `.2`, ... if taken.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let mut to = dir.join(name);
    let mut n = 1;
    while to.exists() || sidecar_of(&to).exists() {
        to = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    to
}

/// Whether `name` is a recording to take (not hidden, partial, or a sidecar).
fn takes(name: &str) -> bool {
    !(name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") || name.ends_with(".json"))
}

struct Spool {
    routes: Vec<Route>,
    pending: HashMap<PathBuf, Pending>,
    counts: Counts,
    settle: Duration,
    max_attempts: u32,
    keep: bool,
}

impl Spool {
    /// The route whose spool holds `path` directly, if it is a file to take.
    fn route_of(&self, path: &Path) -> Option<usize> {
        let name = path.file_name()?.to_str()?;
        if !takes(name) {
            return None;
        }
        let parent = path.parent()?;
        self.routes.iter().position(|r| r.dir == parent || std::fs::canonicalize(&r.dir).is_ok_and(|d| d == parent))
    }

    fn see(&mut self, path: &Path, ready: bool, watched: bool) {
        let Some(route) = self.route_of(path) else { return };
        let p = self.pending.entry(path.to_owned()).or_insert(Pending {
            route,
            ready: false,
            watched,
            attempts: 0,
            unreachable: 0,
            denied: 0,
            not_before: Instant::now(),
            in_flight: false,
        });
        p.ready |= ready;
    }

    fn event(&mut self, event: &notify::Event) {
        use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};
        if event.need_rescan() {
            self.rescan();
            return;
        }
        match event.kind {
            EventKind::Create(CreateKind::File | CreateKind::Any) => {
                for p in &event.paths {
                    self.see(p, false, true);
                }
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in &event.paths {
                    self.see(p, true, false);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                for p in &event.paths {
                    self.see(p, true, false);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let [from, to] = event.paths.as_slice() {
                    self.forget_unless_busy(from);
                    self.see(to, true, false);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
                for p in &event.paths {
                    self.forget_unless_busy(p);
                }
            }
            _ => {}
        }
    }

    fn forget_unless_busy(&mut self, path: &Path) {
        if self.pending.get(path).is_some_and(|p| !p.in_flight) {
            self.pending.remove(path);
        }
    }

    /// Every file in the spools not yet known, to be taken once settled.
    fn scan(&mut self) {
        for i in 0..self.routes.len() {
            let Ok(entries) = std::fs::read_dir(&self.routes[i].dir) else { continue };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) && !self.pending.contains_key(&e.path()) {
                    self.see(&e.path(), false, false);
                }
            }
        }
    }

    /// After lost events: every file not yet ready is judged by settling instead.
    fn rescan(&mut self) {
        for p in self.pending.values_mut() {
            p.watched = false;
        }
        self.scan();
    }

    /// Files not seen finished are taken once unchanged for the settle time.
    fn settle_found(&mut self) {
        let settle = self.settle;
        for (path, p) in self.pending.iter_mut().filter(|(_, p)| !p.ready && !p.watched) {
            let settled = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= settle));
            p.ready = settled;
        }
        // A file that vanished before it was taken is forgotten.
        self.pending.retain(|path, p| p.in_flight || p.ready || path.exists());
    }

    /// Up to `limit` files ready and due, the longest waiting first, marked in flight.
    fn due(&mut self, limit: usize) -> Vec<Job> {
        let now = Instant::now();
        let mut ready: Vec<(Instant, &PathBuf)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.ready && !p.in_flight && p.not_before <= now)
            .map(|(path, p)| (p.not_before, path))
            .collect();
        if ready.len() > limit {
            ready.select_nth_unstable(limit);
            ready.truncate(limit);
        }
        let paths: Vec<PathBuf> = ready.into_iter().map(|(_, p)| p.clone()).collect();
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            let p = self.pending.get_mut(&path).expect("listed above");
            p.in_flight = true;
            out.push(Job { path, route: self.routes[p.route].clone() });
        }
        out
    }

    fn finished(&mut self, path: PathBuf, took: Duration, result: anyhow::Result<Stored>) {
        let name = path.display().to_string();
        let Some(mut p) = self.pending.remove(&path) else { return };
        p.in_flight = false;
        let e = match result {
            Ok(Stored::New(info)) => {
                self.counts.uploaded += 1;
                eprintln!("vault-cli: uploaded {name} as {} ({} bytes, {} ms)", info.id, info.size, took.as_millis());
                return;
            }
            Ok(Stored::Repeated(info)) => {
                self.counts.repeated += 1;
                eprintln!("vault-cli: {name} was already in the vault as {}; removed here", info.id);
                return;
            }
            Err(e) => e,
        };
        let failure = classify(&e);
        match failure {
            Failure::Gone => return,
            Failure::Refused => {}
            Failure::Denied => p.denied += 1,
            Failure::Unreachable => p.unreachable += 1,
            Failure::Retry => p.attempts += 1,
        }
        let give_up = matches!(failure, Failure::Refused)
            || (matches!(failure, Failure::Denied) && p.denied > 1)
            || p.attempts >= self.max_attempts;
        if give_up {
            let reason = format!("{e:#}");
            match self.to_failed(&path, &reason, p.attempts) {
                Ok(to) => eprintln!("vault-cli: {name} failed ({reason}); moved to {}", to.display()),
                Err(m) => eprintln!("vault-cli: {name} failed ({reason}), and {m:#}; it stays in the spool"),
            }
            self.counts.failed += 1;
            return;
        }
        let tries = p.attempts + p.unreachable;
        let wait = Duration::from_millis(500u64 << tries.min(7)).min(Duration::from_secs(60));
        self.counts.retried += 1;
        eprintln!(
            "vault-cli: {name}: {e:#}; trying again in {} s{}",
            wait.as_secs_f32(),
            if matches!(failure, Failure::Unreachable) {
                String::new()
            } else {
                format!(" (attempt {} of {})", p.attempts + 1, self.max_attempts)
            }
        );
        p.not_before = Instant::now() + wait;
        self.pending.insert(path, p);
    }

    /// Moves a file that failed (and its sidecar) to failed/, with the reason beside it.
    fn to_failed(&self, path: &Path, reason: &str, attempts: u32) -> anyhow::Result<PathBuf> {
        let dir = path.parent().unwrap_or(Path::new(".")).join("failed");
        let name = file_name(path)?;
        let to = free_name(&dir, &name);
        std::fs::rename(path, &to).with_context(|| format!("cannot move it to {}", to.display()))?;
        let sidecar = sidecar_of(path);
        if sidecar.exists() {
            let _ = std::fs::rename(&sidecar, sidecar_of(&to));
        }
        let note = format!(
            "{reason}\n\nfailed at {} after {attempts} attempt(s); move the file back into the spool to try again\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let mut reason_path = to.as_os_str().to_owned();
        reason_path.push(".reason");
        std::fs::write(PathBuf::from(reason_path), note).context("cannot write the reason")?;
        Ok(to)
    }

    fn counts(&self) -> Counts {
        let mut c = self.counts.clone();
        c.waiting = self.pending.len() as u64;
        c.in_flight = self.pending.values().filter(|p| p.in_flight).count() as u64;
        c
    }

    fn write_status(&self, file: Option<&Path>) {
        let Some(file) = file else { return };
        #[derive(Serialize)]
        struct Status {
            #[serde(flatten)]
            counts: Counts,
            keep: bool,
            at: String,
        }
        let text = serde_json::to_string(&Status {
            counts: self.counts(),
            keep: self.keep,
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
        .expect("counts serialise");
        let tmp = file.with_extension("tmp");
        if std::fs::write(&tmp, format!("{text}\n")).and_then(|()| std::fs::rename(&tmp, file)).is_err() {
            eprintln!("vault-cli: cannot write --status-file {}", file.display());
        }
    }
}

/// Sorts an upload's error: the server refused it, could not be reached, failed on its
/// side, or the file is gone.
fn classify(e: &anyhow::Error) -> Failure {
    if e.downcast_ref::<Refusal>().is_some() {
        return Failure::Refused;
    }
    if e.downcast_ref::<KeyChanged>().is_some() {
        return Failure::Unreachable;
    }
    for cause in e.chain() {
        if let Some(a) = cause.downcast_ref::<Answered>() {
            return match a.status {
                408 | 429 | 500..=599 => Failure::Retry,
                _ => Failure::Refused,
            };
        }
        if cause.downcast_ref::<Denied>().is_some() {
            return Failure::Denied;
        }
        if let Some(r) = cause.downcast_ref::<reqwest::Error>()
            && (r.is_connect() || r.is_timeout())
        {
            return Failure::Unreachable;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::NotFound
        {
            return Failure::Gone;
        }
    }
    Failure::Retry
}

/// Set on SIGINT or SIGTERM: take no new file, finish those in flight, exit.
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            flag.store(true, Ordering::SeqCst);
        })
    });
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_hidden_partial_and_sidecar_names_are_not_taken() {
        for name in [".call.wav", "call.wav.part", "call.wav.tmp", "call.wav.json"] {
            assert!(!takes(name), "{name}");
        }
        for name in ["call.wav", "20261207-1000-uid.opus", "x"] {
            assert!(takes(name), "{name}");
        }
    }

    #[test]
    fn fail_bad_routes_files_are_refused_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("routes");
        let case = CaseId::random();
        std::fs::write(&f, format!("# spools\nsales {case}\n\ncovert {case} none # hidden\n")).unwrap();
        let r = parse_routes(&f, Announcement::SpokenNotice).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].dir, dir.path().join("sales"));
        assert_eq!(r[1].announced, Announcement::None);
        for (bad, says) in [
            ("sales\n".to_owned(), "line 1"),
            ("sales not-a-case\n".to_owned(), "not a case id"),
            (format!("sales {case} loudly\n"), "line 1"),
            ("# nothing\n".to_owned(), "names no route"),
        ] {
            std::fs::write(&f, bad).unwrap();
            let e = format!("{:#}", parse_routes(&f, Announcement::SpokenNotice).unwrap_err());
            assert!(e.contains(says), "{e}");
        }
    }
}
