//! `vault-server`: initialise a data directory, serve it, and check it offline.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use vault_core::ids::UserName;
use vault_server::{BlobArgs, Config, DataDir, Db};

/// mimalloc rather than the system allocator: a logged request allocates a few hundred
/// small buffers across threads, and glibc's malloc was a sixth of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "vault-server", version, about = "Encrypted, access-controlled vault for recorded calls: the server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of `Serve` costs nothing worth boxing it for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Create a new vault in DIR. Its initial admins are the trust root every client
    /// pins: give two or more (`--admin A --recipient ID --admin B --recipient ID`), since
    /// enrolling a further admin needs two admins' signatures. Prints the root's
    /// fingerprint, which clients check.
    Init {
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
        /// Name of an initial admin (repeat for each).
        #[arg(long, required = true)]
        admin: Vec<UserName>,
        /// That admin's public id (`vault1...`, the last line `vault-cli keygen` printed),
        /// in the same order as --admin.
        #[arg(long, required = true)]
        recipient: Vec<String>,
    },
    /// Serve the vault's HTTP API. Every flag can also be set by its environment variable
    /// or in the --config file; flags win over variables, variables over the file.
    Serve {
        /// A TOML file of settings: `flag-name = value` for any flag below (lists for the
        /// repeatable ones), e.g. `listen = "0.0.0.0:8700"`. Unknown names are refused.
        #[arg(long, env = "VAULT_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, env = "VAULT_LISTEN", default_value = "127.0.0.1:8700")]
        listen: SocketAddr,
        /// The URL clients use for this server (default: http://LISTEN). Login challenges
        /// name it, and clients refuse challenges for another server.
        #[arg(long, env = "VAULT_PUBLIC_URL")]
        public_url: Option<String>,
        /// Largest accepted upload in MiB of ciphertext.
        #[arg(long, env = "VAULT_MAX_UPLOAD_MIB", default_value_t = 16 * 1024)]
        max_upload_mib: u64,
        /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, env = "VAULT_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, env = "VAULT_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Seconds between retention purges (0: no background purge; use `purge`).
        #[arg(long, env = "VAULT_PURGE_INTERVAL_SECS", default_value_t = 3600)]
        purge_interval_secs: u64,
        #[command(flatten)]
        limits: LimitArgs,
        /// A witness that cosigns the access log's checkpoints, as KEY@URL: its verifier
        /// key (`vault-cli witness key`) and its URL. Repeat for several; the witnessed
        /// checkpoint carries every one's cosignature.
        #[arg(long = "witness", env = "VAULT_WITNESSES", value_delimiter = ',')]
        witnesses: Vec<vault_server::Witness>,
        /// Seconds between pushes of the log's checkpoint to the witnesses when it has
        /// grown (0: only when a client asks for the witnessed checkpoint).
        #[arg(long, env = "VAULT_WITNESS_EVERY_SECS", default_value_t = 60)]
        witness_every_secs: u64,
        /// Least milliseconds between pushes that clients' requests for the witnessed
        /// checkpoint trigger (each request grows the log, so without it a client could
        /// make the server push at its own request rate).
        #[arg(long, env = "VAULT_WITNESS_ON_DEMAND_MILLIS", default_value_t = 1000)]
        witness_on_demand_millis: u64,
        /// `GET /readyz` answers 503 when the data directory's disk has less than this
        /// many MiB free.
        #[arg(long, env = "VAULT_READY_MIN_FREE_MIB", default_value_t = 1024)]
        ready_min_free_mib: u64,
        /// Serve Prometheus metrics at http://ADDR/metrics, without a token (off unless
        /// given). Metrics show how busy the vault is, so ADDR must be a loopback address
        /// unless --metrics-beyond-loopback is given too.
        #[arg(long, env = "VAULT_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Allow --metrics-listen on an address beyond loopback (plain HTTP, no token:
        /// only where a firewall lets nobody but the scraper reach it).
        #[arg(long, env = "VAULT_METRICS_BEYOND_LOOPBACK")]
        metrics_beyond_loopback: bool,
        /// Log lines as JSON objects, one per line (for log collectors), or as text.
        /// Text is coloured only when stderr is a terminal.
        #[arg(long, env = "VAULT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Seconds that requests in progress (an upload, and its signature) get to finish
        /// after SIGTERM or Ctrl-C; then the server closes what is left and stops.
        #[arg(long, env = "VAULT_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
        shutdown_grace_secs: u64,
        #[command(flatten, next_help_heading = "Where recordings are kept")]
        store: BlobArgs,
    },
    /// Purge recordings past their retention period now (also while `serve` runs).
    Purge {
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten, next_help_heading = "Where recordings are kept")]
        store: BlobArgs,
    },
    /// Print the access log's verifier key, for auditors (`vault-cli audit verify --server-key`).
    LogKey {
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Print the trust root's fingerprint (what clients set as VAULT_TRUST_ROOT), and its
    /// admins on stderr.
    TrustRoot {
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Replace the key that signs session tokens or the access log's checkpoints, with the
    /// server stopped. Tokens signed by the old token key stay valid until they expire; a
    /// new log key is introduced by a checkpoint both keys sign, which auditors' clients
    /// follow.
    RotateKey {
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(value_enum)]
        key: vault_server::KeyKind,
    },
    /// Check the whole access-log chain offline, and report blobs no recording names.
    /// On a backup, check it whole (as `--blobs`, and against its manifest).
    Verify {
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
        /// Also check that every recording's blob is present with the size and SHA-256
        /// the database records (reads every blob).
        #[arg(long)]
        blobs: bool,
        #[command(flatten, next_help_heading = "Where recordings are kept")]
        store: BlobArgs,
    },
    /// Back the vault up into the new directory OUT while it serves: the database as of
    /// one commit, the blobs it names, then the keys (0600); verified before it is
    /// complete. Keep OUT as safe as the data dir: it holds the server's keys.
    Backup {
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
        /// The backup directory to create; it must not exist.
        #[arg(long)]
        out: PathBuf,
        /// Hard-link blobs instead of copying them where OUT is on the same filesystem:
        /// fast and takes no space, but shares the disk with the vault, so only for a
        /// snapshot you then copy elsewhere.
        #[arg(long)]
        link: bool,
        #[command(flatten, next_help_heading = "Where recordings are kept")]
        store: BlobArgs,
    },
    /// Restore a backup into a new (or empty) data directory, verifying it first, and
    /// log the restore for auditors (their pins are past it: see the README's "Backup
    /// and restore").
    Restore {
        /// The backup directory (`vault-server backup --out`).
        #[arg(long)]
        from: PathBuf,
        /// The data directory to create.
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
        /// Why the vault is restored; written to the access log for auditors.
        #[arg(long)]
        reason: String,
        #[command(flatten, next_help_heading = "Where recordings are kept")]
        store: BlobArgs,
    },
}

/// How the server writes its log lines (to stderr).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Limits on callers without a session and on connections (see the README's "Limits").
#[derive(clap::Args)]
struct LimitArgs {
    /// Requests without a valid session token allowed per second from one address
    /// (an IPv4 address or an IPv6 /64); more get 429 with Retry-After.
    #[arg(long, env = "VAULT_UNAUTH_PER_SEC", default_value_t = 5)]
    unauth_per_sec: u32,
    /// How many such requests one address may send at once before the rate applies.
    #[arg(long, env = "VAULT_UNAUTH_BURST", default_value_t = 50)]
    unauth_burst: u32,
    /// Login challenges for one user name from one address: one per this many seconds...
    #[arg(long, env = "VAULT_CHALLENGE_EVERY_SECS", default_value_t = 3)]
    challenge_every_secs: u32,
    /// ...after a burst of this many.
    #[arg(long, env = "VAULT_CHALLENGE_BURST", default_value_t = 10)]
    challenge_burst: u32,
    /// Seconds per access-log window: past the first entries per address and window,
    /// unauthenticated requests are counted into one entry per address and window.
    #[arg(long, env = "VAULT_LOG_WINDOW_SECS", default_value_t = 60)]
    log_window_secs: u64,
    /// Entries of their own per address and window for requests without a session.
    #[arg(long, env = "VAULT_LOG_ENTRIES_PER_ADDRESS", default_value_t = 10)]
    log_entries_per_address: u32,
    /// Entries of their own per window for requests without a session, in all.
    #[arg(long, env = "VAULT_LOG_ENTRIES_PER_WINDOW", default_value_t = 60)]
    log_entries_per_window: u32,
    /// Connections open at once, in all; when all are taken, the one that has waited
    /// longest without a request in progress is closed to make room.
    #[arg(long, env = "VAULT_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Connections open at once from one address (an IPv4 address or an IPv6 /64).
    #[arg(long, env = "VAULT_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 64)]
    max_connections_per_address: usize,
    /// Seconds a client has for a TLS handshake and for a request's headers.
    #[arg(long, env = "VAULT_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a connection may sit with nothing moving either way before it is closed.
    #[arg(long, env = "VAULT_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    idle_timeout_secs: u64,
}

impl LimitArgs {
    fn settings(&self) -> vault_server::LimitSettings {
        vault_server::LimitSettings {
            unauthenticated_per_sec: self.unauth_per_sec,
            unauthenticated_burst: self.unauth_burst,
            challenge_every_secs: self.challenge_every_secs,
            challenge_burst: self.challenge_burst,
            log_window: std::time::Duration::from_secs(self.log_window_secs.max(1)),
            log_entries_per_source: self.log_entries_per_address,
            log_entries_per_window: self.log_entries_per_window,
        }
    }

    fn connections(&self, shutdown_grace_secs: u64) -> vault_server::ConnLimits {
        vault_server::ConnLimits {
            shutdown_grace: std::time::Duration::from_secs(shutdown_grace_secs),
            max_connections: self.max_connections.max(1),
            per_source: self.max_connections_per_address.max(1),
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs.max(1)),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs.max(1)),
        }
    }
}

fn main() -> ExitCode {
    // The config file's settings become flags, below real flags and variables.
    let args = match vault_server::config::apply(Cli::command(), std::env::args_os().collect(), "serve") {
        Ok(args) => args,
        Err(e) => {
            eprintln!("vault-server: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let format = match &cli.command {
        Command::Serve { log_format, .. } => *log_format,
        _ => LogFormat::Text,
    };
    init_logging(format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vault-server: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines to stderr, filtered by `VAULT_LOG` (default `info`). JSON lines carry the
/// event's fields at the top level and the request's span (its `request_id`) in `span`.
fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("VAULT_LOG").unwrap_or_else(|_| "info,tower_http=warn".into());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        // Escape codes only for a person at a terminal, never into a file or a journal.
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => {
            fmt.json().with_ansi(false).flatten_event(true).with_current_span(true).with_span_list(false).init()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { data_dir, admin, recipient } => {
            if admin.len() != recipient.len() {
                anyhow::bail!(
                    "give one --recipient for each --admin, in the same order ({} admins, {} recipients)",
                    admin.len(),
                    recipient.len()
                );
            }
            let admins = admin
                .into_iter()
                .zip(&recipient)
                .map(|(name, id)| Ok((name, id.parse::<vault_core::trust::PublicId>()?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let root = DataDir::new(&data_dir).init(admins)?;
            let names: Vec<String> = root.admins.iter().map(|(n, _)| n.to_string()).collect();
            eprintln!("initialised vault in {} with admins {}", data_dir.display(), names.join(", "));
            if names.len() == 1 {
                eprintln!(
                    "warning: with one initial admin no further admin can ever be enrolled (that needs two admins' \
                     signatures) and covert grants cannot be approved; init with two or more admins"
                );
            }
            eprintln!(
                "the trust root's fingerprint follows; give it to every user (VAULT_TRUST_ROOT) so their client \
                 can check it is talking to this vault"
            );
            println!("{}", root.fingerprint());
            Ok(())
        }
        Command::LogKey { data_dir } => {
            println!("{}", vault_server::log_verifier_key(&DataDir::new(&data_dir))?.to_text());
            Ok(())
        }
        Command::TrustRoot { data_dir } => {
            let root = vault_server::trust_root(&DataDir::new(&data_dir))?;
            eprint!("{}", root.text());
            println!("{}", root.fingerprint());
            Ok(())
        }
        Command::RotateKey { data_dir, key } => {
            eprintln!("{}", vault_server::rotate_key(&DataDir::new(&data_dir), key)?);
            Ok(())
        }
        Command::Verify { data_dir, blobs, store } => with_runtime(|| {
            let dir = DataDir::new(&data_dir);
            dir.check()?;
            if dir.is_backup() {
                let (m, c) = vault_server::verify_backup(&dir, &vault_server::BlobStore::for_backup(&dir, &store)?)?;
                println!(
                    "ok: backup of {} entries, {} recordings ({} bytes), taken {}",
                    m.log_size, m.recordings, m.blob_bytes, m.taken_at
                );
                warn_gone(&c);
                return Ok(());
            }
            let db = Db::open(&dir.db_path())?;
            let store = vault_server::open_blobs(&dir, &db, &store, vault_server::BlobUse::Inspect)?;
            if blobs {
                let c = vault_server::verify_dir(&dir, Some(&dir), &store, true)?;
                eprintln!(
                    "every blob of the {} recordings is present in {} with its size and SHA-256 ({} bytes)",
                    c.recordings,
                    store.describe(),
                    c.blob_bytes
                );
            }
            let (n, head) = db.snapshot(vault_server::verify_log)??;
            let origin = db.transaction(|s| Ok(s.log_origin()?))?.unwrap_or_default();
            let transitions = vault_server::check_transitions(&db, &origin, &vault_server::log_key(&dir)?)?;
            println!("ok: {n} entries, head {}", hex::encode(head));
            if transitions > 0 {
                eprintln!("the log key changed {transitions} times; each transition is signed by both keys");
            }
            // Reported, not failed: the chain is sound, and `serve` removes orphan blobs
            // (logging each) when it starts.
            for line in vault_server::find_orphans(&db, &store)?.report() {
                eprintln!("warning: {line}");
            }
            Ok(())
        }),
        Command::Backup { data_dir, out, link, store } => with_runtime(|| {
            let dir = DataDir::new(&data_dir);
            dir.check_servable()?;
            let db = Db::open(&dir.db_path())?;
            let store = vault_server::open_blobs(&dir, &db, &store, vault_server::BlobUse::Inspect)?;
            let m = vault_server::backup(&dir, &out, link, &store)?;
            println!("{}", out.display());
            eprintln!(
                "backed up and verified: a log of {} entries, {} recordings ({} bytes), keys {}, as of {}",
                m.log_size,
                m.recordings,
                m.blob_bytes,
                m.keys.join(", "),
                m.taken_at
            );
            if let Some(objects) = &m.blob_store {
                eprintln!(
                    "the recordings' ciphertext is not in the backup: it stays in {objects}, whose replication keeps it \
                     (README, \"Object storage\"); every object the backup names was there with its size"
                );
            }
            Ok(())
        }),
        Command::Restore { from, data_dir, reason, store } => with_runtime(|| {
            let from = DataDir::new(&from);
            let (m, seq, checked) =
                vault_server::restore(&from, &data_dir, &reason, &vault_server::BlobStore::for_backup(&from, &store)?)?;
            println!("{seq}");
            eprintln!(
                "restored the backup taken {} into {}; log entry {seq} states the restore. Auditors who verified \
                 more than {} entries will see a rollback and accept it with `vault-cli audit verify --accept-restore`",
                m.taken_at,
                data_dir.display(),
                m.log_size
            );
            eprintln!(
                "warning: everything the vault did after {} is undone. Recordings destroyed (R5) or purged since are \
                 back, with their key envelopes: re-close those cases with `no-offence` (the destroy entries of an \
                 audit export taken before the restore name them); purges past retention run again by themselves. \
                 Revocations, disabled users and closed cases since are undone too: apply them again now. Recordings \
                 uploaded since are lost: upload them again",
                m.taken_at
            );
            warn_gone(&checked);
            Ok(())
        }),
        Command::Purge { data_dir, store } => with_runtime(|| {
            let dir = DataDir::new(&data_dir);
            dir.check_servable()?;
            let db = Db::open(&dir.db_path())?;
            let store = vault_server::open_blobs(&dir, &db, &store, vault_server::BlobUse::Serve)?;
            let n = vault_server::purge_due(&db, &store, "vault-server purge")?;
            println!("{n}");
            eprintln!("purged {n} recordings past their retention period");
            Ok(())
        }),
        Command::Serve {
            config: _,
            data_dir,
            listen,
            public_url,
            max_upload_mib,
            tls_cert,
            tls_key,
            purge_interval_secs,
            limits,
            witnesses,
            witness_every_secs,
            witness_on_demand_millis,
            ready_min_free_mib,
            metrics_listen,
            metrics_beyond_loopback,
            log_format: _,
            shutdown_grace_secs,
            store,
        } => {
            DataDir::new(&data_dir).check_servable()?;
            if let Some(m) = metrics_listen
                && !m.ip().is_loopback()
                && !metrics_beyond_loopback
            {
                anyhow::bail!(
                    "refusing to serve metrics on {m}, beyond loopback: they have no token and show how busy the vault is. \
                     Use a loopback address (--metrics-listen 127.0.0.1:9700), or add --metrics-beyond-loopback if only \
                     your scraper can reach {m}"
                );
            }
            let tls = tls_cert.zip(tls_key);
            // Session tokens and login answers must not cross a network in clear.
            let behind_tls_proxy = public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
            if tls.is_none() && !listen.ip().is_loopback() && !behind_tls_proxy {
                anyhow::bail!(
                    "refusing to serve plain HTTP on {listen}, beyond loopback: session tokens would cross the network in clear. \
                     Serve HTTPS (--tls-cert and --tls-key), or put a TLS-terminating proxy in front and pass --public-url https://..."
                );
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let tls = match tls {
                    None => None,
                    Some((cert, key)) => Some(vault_server::tls_acceptor(&cert, &key)?),
                };
                let listener = std::net::TcpListener::bind(listen)
                    .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
                let addr = listener.local_addr()?;
                let scheme = if tls.is_some() { "https" } else { "http" };
                let cfg = Config {
                    data_dir,
                    // The bound address, so that `--listen 127.0.0.1:0` names the real port.
                    origin: public_url.unwrap_or_else(|| format!("{scheme}://{addr}")),
                    max_upload: max_upload_mib.saturating_mul(1024 * 1024),
                    purge_interval: (purge_interval_secs > 0)
                        .then(|| std::time::Duration::from_secs(purge_interval_secs)),
                    limits: limits.settings(),
                    witnesses,
                    witness_every: (witness_every_secs > 0).then(|| std::time::Duration::from_secs(witness_every_secs)),
                    witness_on_demand: std::time::Duration::from_millis(witness_on_demand_millis),
                    ready_min_free: ready_min_free_mib.saturating_mul(1024 * 1024),
                    blobs: store,
                };
                let state = vault_server::open_state(&cfg)?;
                if let Some(m) = metrics_listen {
                    let handle = vault_server::install_metrics()?;
                    let listener = tokio::net::TcpListener::bind(m)
                        .await
                        .map_err(|e| anyhow::anyhow!("cannot listen on {m} for metrics: {e}"))?;
                    let bound = listener.local_addr()?;
                    tokio::spawn(vault_server::serve_metrics(listener, handle, state.clone()));
                    tracing::info!(addr = %bound, "serving metrics");
                    // Tests and scripts read this line to learn the port when it is 0.
                    eprintln!("metrics on http://{bound}/metrics");
                }
                tracing::info!(%addr, origin = %cfg.origin, tls = tls.is_some(), "serving");
                // Tests and scripts read this line to learn the port when --listen has port 0.
                eprintln!("listening on {scheme}://{addr}");
                // systemd (Type=notify) starts dependants only now: the listener is bound and
                // the state opened (log verified). Without NOTIFY_SOCKET this does nothing.
                notify(sd_notify::NotifyState::Ready);
                let conns = limits.connections(shutdown_grace_secs);
                vault_server::serve(listener, tls, conns, state, shutdown_signal()).await?;
                Ok(())
            })
        }
    }
}

/// Runs `f` (blocking) with a tokio runtime entered: an object store's client needs one.
fn with_runtime<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let rt = tokio::runtime::Runtime::new()?;
    let _entered = rt.enter();
    f()
}

/// Warns about recordings a backup names whose objects are gone.
fn warn_gone(c: &vault_server::Checked) {
    if !c.gone.is_empty() {
        let ids: Vec<String> = c.gone.iter().take(20).map(ToString::to_string).collect();
        eprintln!(
            "warning: {} recordings the backup names are no longer in the object store (destroyed or purged after \
             the backup; they stay destroyed): {}{}. Close their cases again with `no-offence`, or let the purge \
             run, to remove their rows",
            c.gone.len(),
            ids.join(", "),
            if c.gone.len() > ids.len() { ", ..." } else { "" }
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    notify(sd_notify::NotifyState::Stopping);
}

/// Tells systemd the server's state. A socket that cannot be reached is logged, not
/// fatal: systemd then times the start out, which says more than a server that refused.
fn notify(state: sd_notify::NotifyState) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
    }
}
