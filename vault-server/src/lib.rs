//! The recording vault's HTTP server, as a library; `main.rs` is a thin command line
//! over it.
//!
//! Each concern has one home:
//!
//! - `http`: the routes, their extractors (role, typed ids, body) and one file of
//!   handlers per resource; no SQL, and no refusal logged by hand.
//! - `policy`: every authorisation decision on a resource, one named function each.
//! - `store`: every SQL statement, behind [`Store`]; `db`: the writer thread, group
//!   commit, readers and migrations that run them.
//! - `accesslog`: the hash chain, checkpoints, and how requests write to the log.
//! - `auth`: session tokens and login challenges; `server_keys`: the server's own keys;
//!   `rotate`: replacing them.
//! - `blobs`: recording ciphertext on disk; `retention`: destruction and purges;
//!   `orphans`: ciphertext no recording names, found and removed at start-up.
//! - `backup`: online backups, their verification, and restoring one.
//! - `datadir`: the data directory; `state`: opening it; `server`: serving it, and
//!   `drain`: what it lets finish at shutdown.
//! - `monitoring`: the Prometheus metrics and their own listener.
//!
//! [`open_state`] checks and opens a data directory, [`app`] builds the router (the
//! in-process tests in `http` drive it without a socket), and [`serve`] runs it on a
//! listener until a shutdown signal.

mod abuse;
mod accesslog;
mod auth;
mod backup;
mod blobs;
mod claims;
mod clock;
pub mod config;
mod datadir;
mod db;
mod drain;
mod error;
mod http;
mod monitoring;
mod orphans;
mod policy;
mod retention;
mod rotate;
mod server;
mod server_keys;
mod state;
mod store;
mod tls_check;
mod trust;
mod witnessing;

// The library's public face: what `main.rs`, the benchmarks and the examples use.
pub use abuse::LimitSettings;
pub use accesslog::{LogRecord, append as append_to_log, verify as verify_log};
pub use backup::{Checked, Manifest, backup, own_blobs, restore, verify_backup, verify_dir};
pub use blobs::settings::{Use as BlobUse, open as open_blobs};
pub use blobs::{BlobArgs, BlobStore};
pub use datadir::{DataDir, log_key, log_verifier_key, trust_root};
pub use db::Db;
pub use monitoring::{install as install_metrics, serve as serve_metrics};
pub use orphans::{Orphan, Orphans, find as find_orphans, sweep as sweep_orphans};
pub use retention::purge_due;
pub use rotate::{Which as KeyKind, check_transitions, rotate as rotate_key};
pub use server::{ConnLimits, app, serve, tls_acceptor};
pub use state::{AppState, Config, open_state};
pub use store::Store;
pub use witnessing::Witness;
