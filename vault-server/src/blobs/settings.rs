//! Choosing the blob store: the flags (and so the config file's keys and the
//! environment variables) every command that touches ciphertext takes, and opening the
//! store they name for a data directory.
//!
//! A data directory records where its ciphertext lives (`meta.blob_store`: `local` or
//! `s3://bucket/prefix`) the first time a command opens it, and refuses another place
//! afterwards: a server started without its object store settings would otherwise find
//! every recording missing, and one pointed at another bucket would find every object
//! there an orphan. The endpoint, region and credentials may change (a moved endpoint, a
//! rotated key); the bucket and prefix may not.

use anyhow::bail;

use super::BlobStore;
use super::s3::{ObjectBlobs, S3Settings, Versioning};
use crate::datadir::DataDir;
use crate::db::Db;

/// The meta key recording where the ciphertext lives.
const META_KEY: &str = "blob_store";

/// Where recordings' ciphertext is kept.
#[derive(clap::Args, Clone, Default)]
pub struct BlobArgs {
    /// Where recordings' ciphertext is kept: `local` (the data dir's blobs/) or
    /// `s3://BUCKET/PREFIX` (an S3-compatible object store: AWS S3, Garage, MinIO, Ceph).
    /// Fixed at first use: a vault refuses another place afterwards.
    #[arg(long, env = "VAULT_BLOB_STORE", default_value = "local", value_name = "local|s3://BUCKET/PREFIX")]
    pub blob_store: String,
    /// The object store's endpoint, for one that is not AWS (https://garage.example:3900);
    /// requests are then path-style.
    #[arg(long, env = "VAULT_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The object store's region (default: AWS_REGION, else us-east-1).
    #[arg(long, env = "VAULT_S3_REGION")]
    pub s3_region: Option<String>,
    /// Allow an `http://` endpoint (only on a network you trust: the ciphertext is
    /// end-to-end encrypted and requests are signed, but not hidden).
    #[arg(long, env = "VAULT_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,
    /// The access key id (default: AWS_ACCESS_KEY_ID).
    #[arg(long, env = "VAULT_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    /// The secret access key (default: AWS_SECRET_ACCESS_KEY). Prefer the environment
    /// or the config file (0600) to this flag, which other users can see in `ps`.
    #[arg(long, env = "VAULT_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// A file holding the secret access key (a systemd credential, `%d/s3-secret`).
    #[arg(long, env = "VAULT_S3_SECRET_ACCESS_KEY_FILE", value_name = "FILE", conflicts_with = "s3_secret_access_key")]
    pub s3_secret_access_key_file: Option<std::path::PathBuf>,
}

/// Where ciphertext lives, as recorded in the data dir.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    Local,
    S3 { bucket: String, prefix: String },
}

impl Place {
    fn parse(text: &str) -> anyhow::Result<Self> {
        if text == "local" {
            return Ok(Self::Local);
        }
        let Some(rest) = text.strip_prefix("s3://") else {
            bail!("--blob-store {text:?}: give `local` or `s3://BUCKET/PREFIX`");
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            bail!("--blob-store {text:?}: {bucket:?} is not a bucket name (3 to 63 of a-z, 0-9, '-', '.')");
        }
        if prefix.split('/').any(|p| p == "." || p == ".." || (p.is_empty() && !prefix.is_empty())) {
            bail!("--blob-store {text:?}: the prefix must be plain names separated by single slashes");
        }
        Ok(Self::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
    }

    fn text(&self) -> String {
        match self {
            Self::Local => "local".to_owned(),
            Self::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

impl BlobArgs {
    /// The local store, for a data dir that has never been given another (tests and
    /// commands that never touch ciphertext).
    pub fn local() -> Self {
        Self { blob_store: "local".to_owned(), ..Self::default() }
    }

    fn s3(&self, bucket: &str, prefix: &str) -> anyhow::Result<S3Settings> {
        let secret = match (&self.s3_secret_access_key, &self.s3_secret_access_key_file) {
            (Some(k), _) => Some(zeroize::Zeroizing::new(k.clone())),
            (None, Some(f)) => {
                let text = zeroize::Zeroizing::new(
                    std::fs::read_to_string(f)
                        .map_err(|e| anyhow::anyhow!("cannot read the secret access key from {}: {e}", f.display()))?,
                );
                Some(zeroize::Zeroizing::new(text.trim().to_owned()))
            }
            (None, None) => None,
        };
        Ok(S3Settings {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            allow_http: self.s3_allow_http,
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: secret,
        })
    }
}

/// What a command does with the blob store it opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Serves or purges: records and binds the store on first use, and probes an object
    /// store for versioning.
    Serve,
    /// Only reads (`verify`, `backup`): checks that the store is the data dir's and bound
    /// to it, writing nothing anywhere.
    Inspect,
}

/// Opens the blob store `args` name for the data dir `dir` (database `db`), after
/// checking it is the one the data dir uses and, for an object store, that its prefix is
/// this vault's; to serve, recording and binding it on first use and warning when the
/// bucket keeps versions. Blocking; an object store needs a tokio runtime to be running.
pub fn open(dir: &DataDir, db: &Db, args: &BlobArgs, how: Use) -> anyhow::Result<BlobStore> {
    let wanted = Place::parse(&args.blob_store)?;
    let (recorded, used) = db.transaction(|s| Ok((s.meta(META_KEY)?, s.any_recording_ever()?)))?;
    // Vaults from before the choice existed kept everything in blobs/; one that has kept
    // nothing yet may still choose.
    let recorded = recorded.or_else(|| used.then(|| "local".to_owned())).filter(|r| used || r != "local");
    match &recorded {
        Some(r) if *r == wanted.text() => {}
        Some(r) if r == "local" => bail!(
            "this vault already keeps recordings in its data dir's blobs/; it cannot switch to {} (moving recordings \
             between stores is not supported). Give no --blob-store",
            wanted.text()
        ),
        Some(r) => bail!(
            "this vault keeps its recordings in {}, not {}: give --blob-store {r} (and that store's endpoint and \
             credentials). Moving recordings between stores is not supported",
            describe(r),
            describe(&wanted.text())
        ),
        None => {}
    }
    let store = match &wanted {
        Place::Local => BlobStore::local(dir.blobs(), dir.tmp()),
        Place::S3 { bucket, prefix } => {
            let store = ObjectBlobs::new(&args.s3(bucket, prefix)?, dir.tmp())?;
            let origin = crate::datadir::log_origin(db)?;
            if how == Use::Inspect {
                store.check_bound_blocking(&origin)?;
            } else if store.bind_blocking(&origin)? == Versioning::On {
                tracing::warn!(
                    store = %store.url(),
                    "the bucket keeps versions of objects: a destroyed recording's ciphertext stays in an older \
                     version until a lifecycle rule expires it, and object lock in compliance mode would keep it \
                     past R5 altogether. Configure the bucket as the README's \"Object storage\" says"
                );
                eprintln!("warning: {} keeps versions of objects; see the README's \"Object storage\"", store.url());
            }
            BlobStore::Object(store)
        }
    };
    // Recorded once the store is known to be usable (and, an object store, bound).
    if recorded.is_none() && how == Use::Serve {
        let text = wanted.text();
        db.transaction(move |s| Ok(s.set_meta(META_KEY, &text)?))?;
    }
    Ok(store)
}

impl BlobStore {
    /// The store `args` name, to check a backup's recordings in: the backup's own
    /// `blobs/` for `local`, else the object store (read only: nothing is recorded or
    /// bound).
    pub fn for_backup(backup: &DataDir, args: &BlobArgs) -> anyhow::Result<Self> {
        match Place::parse(&args.blob_store)? {
            Place::Local => Ok(Self::local(backup.blobs(), backup.tmp())),
            Place::S3 { bucket, prefix } => {
                Ok(Self::Object(ObjectBlobs::new(&args.s3(&bucket, &prefix)?, backup.tmp())?))
            }
        }
    }
}

fn describe(place: &str) -> String {
    if place == "local" { "the data dir's blobs/".to_owned() } else { place.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::Place;

    #[test]
    fn places_parse_and_print_back() {
        for text in ["local", "s3://vault", "s3://vault-1/recordings", "s3://a.b.c/x/y/z"] {
            assert_eq!(Place::parse(text).unwrap().text(), text);
        }
        assert_eq!(Place::parse("s3://vault/rec/").unwrap().text(), "s3://vault/rec");
    }

    #[test]
    fn fail_bad_places_are_refused_with_what_to_give() {
        for (text, why) in [
            ("file:///tmp", "give `local` or `s3://"),
            ("s3://", "not a bucket name"),
            ("s3://Vault/x", "not a bucket name"),
            ("s3://ab", "not a bucket name"),
            ("s3://vault/a//b", "plain names"),
            ("s3://vault/a/../b", "plain names"),
        ] {
            let e = Place::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
