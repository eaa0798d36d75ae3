//! `vault-server`: initialise a data directory, serve it, and check it offline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vault_core::ids::UserName;
use vault_server::{BlobStore, Config, DataDir, Db};

#[derive(Parser)]
#[command(name = "vault-server", version, about = "Encrypted, access-controlled vault for recorded calls: the server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
    /// Serve the vault's HTTP API.
    Serve {
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
    },
    /// Purge recordings past their retention period now (also while `serve` runs).
    Purge {
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
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
    /// Check the whole access-log chain offline.
    Verify {
        #[arg(long, env = "VAULT_DATA_DIR")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VAULT_LOG").unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vault-server: error: {e:#}");
            ExitCode::FAILURE
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
        Command::Verify { data_dir } => {
            let dir = DataDir::new(&data_dir);
            dir.check()?;
            let db = Db::open(&dir.db_path())?;
            let (n, head) = db.snapshot(vault_server::verify_log)??;
            println!("ok: {n} entries, head {}", hex::encode(head));
            Ok(())
        }
        Command::Purge { data_dir } => {
            let dir = DataDir::new(&data_dir);
            dir.check()?;
            let db = Db::open(&dir.db_path())?;
            let n = vault_server::purge_due(&db, &BlobStore::new(dir.blobs(), dir.tmp()), "vault-server purge")?;
            println!("{n}");
            eprintln!("purged {n} recordings past their retention period");
            Ok(())
        }
        Command::Serve { data_dir, listen, public_url, max_upload_mib, tls_cert, tls_key, purge_interval_secs } => {
            DataDir::new(&data_dir).check()?;
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
                    Some((cert, key)) => {
                        rustls::crypto::ring::default_provider()
                            .install_default()
                            .map_err(|_| anyhow::anyhow!("cannot install the TLS crypto provider"))?;
                        Some(axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key).await.map_err(|e| {
                            anyhow::anyhow!(
                                "cannot load --tls-cert {} / --tls-key {}: {e}",
                                cert.display(),
                                key.display()
                            )
                        })?)
                    }
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
                };
                let state = vault_server::open_state(&cfg)?;
                tracing::info!(%addr, origin = %cfg.origin, tls = tls.is_some(), "serving");
                // Tests and scripts read this line to learn the port when --listen has port 0.
                eprintln!("listening on {scheme}://{addr}");
                match tls {
                    Some(tls) => vault_server::serve_tls(listener, tls, state, shutdown_signal()).await?,
                    None => vault_server::serve(listener, state, shutdown_signal()).await?,
                }
                Ok(())
            })
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
