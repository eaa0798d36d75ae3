//! Getting the access log's checkpoints cosigned by witnesses (C2SP tlog-witness).
//!
//! The server pushes its current checkpoint, with a consistency proof from the size each
//! witness cosigned last, to every configured witness; a witness cosigns only if the new
//! checkpoint extends what it cosigned before. The note carrying every configured
//! witness's cosignature is kept (in `meta`, so it survives a restart) and served as the
//! log's witnessed checkpoint. Clients told to require those witnesses trust no other
//! checkpoint, so the server cannot show them a history the witnesses were not shown.
//!
//! A round runs in the background every `--witness-every-secs`, and on demand when a
//! client asks for the witnessed checkpoint and the log has grown since the last one.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use vault_core::cosign::{self, WitnessKey};
use vault_core::note::{self, Checkpoint};
use vault_core::witness::{ADD_CHECKPOINT_PATH, AddCheckpoint, SIZE_CONTENT_TYPE, parse_size_body};

use crate::accesslog;
use crate::db::Db;
use crate::state::AppState;

/// How long one witness has to answer.
const WITNESS_TIMEOUT: Duration = Duration::from_secs(10);
/// The `meta` key of the last witnessed checkpoint.
const META_KEY: &str = "witnessed_checkpoint";

/// A witness: its verifier key and where it listens.
#[derive(Debug, Clone)]
pub struct Witness {
    pub key: WitnessKey,
    pub url: String,
}

impl std::str::FromStr for Witness {
    type Err = anyhow::Error;

    /// `KEY@URL`: the witness's verifier key (`vault-cli witness key` prints it) and its
    /// base URL, e.g. `dpo-witness+1a2b3c4d+BE...@https://witness.example:8443`.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (key, url) =
            s.split_once('@').ok_or_else(|| anyhow!("a witness is KEY@URL (its verifier key, then its URL)"))?;
        let key = WitnessKey::parse(key).map_err(|e| anyhow!("the witness key before '@': {e}"))?;
        let parsed = reqwest::Url::parse(url).with_context(|| format!("the witness URL {url:?}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("the witness URL must be http:// or https://");
        }
        Ok(Self { key, url: url.trim_end_matches('/').to_owned() })
    }
}

/// The configured witnesses and what the server knows of each.
pub struct Witnessing {
    witnesses: Vec<Witness>,
    client: reqwest::Client,
    /// The size each witness cosigned last, as far as this process knows (a witness that
    /// knows better answers 409 with its size).
    sizes: tokio::sync::Mutex<HashMap<String, u64>>,
    /// One round at a time.
    round: tokio::sync::Mutex<()>,
    /// When the last round a client's request asked for began: such rounds run at most
    /// once per `on_demand_every` (`--witness-on-demand-millis`), so that nobody can make the server push to the
    /// witnesses at the rate they send requests (each request grows the log).
    last_on_demand: std::sync::Mutex<Option<std::time::Instant>>,
    on_demand_every: Duration,
}

impl Witnessing {
    pub fn new(witnesses: Vec<Witness>, on_demand_every: Duration) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS provider (as vault-cli's is): ring, the
        // one the server's own TLS uses. Someone may have installed it already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(WITNESS_TIMEOUT)
            .build()
            .context("cannot make the HTTP client for witnesses")?;
        Ok(Self {
            witnesses,
            client,
            sizes: Default::default(),
            round: Default::default(),
            last_on_demand: Default::default(),
            on_demand_every,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.witnesses.is_empty()
    }

    /// The witnessed checkpoint, after a round if the log grew since it was cosigned
    /// (unless one was asked for less than `on_demand_every` ago and `fresh` is false).
    /// Without witnesses: `None`.
    pub async fn latest(&self, st: &AppState, fresh: bool) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let due = {
            let mut last = self.last_on_demand.lock().unwrap_or_else(|p| p.into_inner());
            let due = fresh || last.is_none_or(|t| t.elapsed() >= self.on_demand_every);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        if !due {
            return stored(&st.db).await.unwrap_or_default();
        }
        if let Err(e) = self.round(st).await {
            tracing::warn!(detail = %format!("{e:#}"), "witness round failed; serving the last witnessed checkpoint");
        }
        stored(&st.db).await.unwrap_or_else(|e| {
            tracing::error!(detail = %format!("{e:#}"), "cannot read the witnessed checkpoint");
            None
        })
    }

    /// Sends the log's current checkpoint to every witness and keeps the note with all
    /// their cosignatures. Does nothing if the last witnessed checkpoint is current.
    pub async fn round(&self, st: &AppState) -> anyhow::Result<()> {
        let _one = self.round.lock().await;
        let st2 = st.clone();
        let (cp, note) = st
            .db
            .read(move |s| Ok(accesslog::checkpoint(s, &st2.log_origin, &st2.log_key)?))
            .await
            .map_err(|e| anyhow!("reading the checkpoint: {}", e.message))?;
        if let Some(last) = stored(&st.db).await?
            && note::split(&last).and_then(|(text, _)| Checkpoint::parse(text)).is_ok_and(|c| c.size >= cp.size)
        {
            return Ok(());
        }
        let mut lines = String::new();
        let mut failed = Vec::new();
        for w in &self.witnesses {
            match self.cosign(&st.db, w, &cp, &note).await {
                Ok(line) => lines.push_str(&line),
                Err(e) => failed.push(format!("{}: {e:#}", w.key.name)),
            }
        }
        if !failed.is_empty() {
            bail!("not every witness cosigned the checkpoint of {} entries: {}", cp.size, failed.join("; "));
        }
        let witnessed = cosign::add_signatures(&note, &lines).map_err(|e| anyhow!("{e}"))?;
        store(&st.db, witnessed).await?;
        tracing::info!(size = cp.size, witnesses = self.witnesses.len(), "checkpoint cosigned by every witness");
        Ok(())
    }

    /// One witness's cosignature line(s) for `note`, checked.
    async fn cosign(&self, db: &Db, w: &Witness, cp: &Checkpoint, note: &str) -> anyhow::Result<String> {
        let known = self.sizes.lock().await.get(&w.key.name).copied().unwrap_or(0);
        let answer = match self.add_checkpoint(db, w, cp, note, known).await? {
            Answer::Conflict(theirs) if theirs != known && theirs <= cp.size => {
                // The witness cosigned another size of this log last (a restart here, or a
                // round that failed halfway): prove consistency from that one.
                self.add_checkpoint(db, w, cp, note, theirs).await?
            }
            other => other,
        };
        let lines = match answer {
            Answer::Cosigned(lines) => lines,
            Answer::Conflict(theirs) => bail!(
                "it has cosigned a checkpoint of {theirs} entries that this log's checkpoint of {} does not extend",
                cp.size
            ),
        };
        let with = cosign::add_signatures(note, &lines).map_err(|e| anyhow!("its answer: {e}"))?;
        cosign::verify(&with, std::slice::from_ref(&w.key)).map_err(|e| anyhow!("its answer: {e}"))?;
        self.sizes.lock().await.insert(w.key.name.clone(), cp.size);
        Ok(lines)
    }

    async fn add_checkpoint(
        &self,
        db: &Db,
        w: &Witness,
        cp: &Checkpoint,
        note: &str,
        old: u64,
    ) -> anyhow::Result<Answer> {
        let size = cp.size;
        let proof = if old > 0 && old < size {
            db.read(move |s| s.consistency_proof(old, size).map_err(crate::error::ApiError::internal))
                .await
                .map_err(|e| anyhow!("a consistency proof: {}", e.message))?
        } else {
            Vec::new()
        };
        let body = AddCheckpoint { old_size: old, proof, checkpoint: note.to_owned() }.to_body();
        let resp = self
            .client
            .post(format!("{}{ADD_CHECKPOINT_PATH}", w.url))
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", w.url))?;
        let status = resp.status();
        let is_size = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(SIZE_CONTENT_TYPE.as_bytes()));
        let text = read_small(resp).await?;
        match status.as_u16() {
            200 => Ok(Answer::Cosigned(text)),
            409 if is_size => {
                Ok(Answer::Conflict(parse_size_body(&text).ok_or_else(|| anyhow!("a 409 without a size"))?))
            }
            code => bail!("it refused with {code}: {}", text.chars().take(200).collect::<String>()),
        }
    }
}

enum Answer {
    Cosigned(String),
    Conflict(u64),
}

/// A witness's answer, at most 16 KiB.
async fn read_small(mut resp: reqwest::Response) -> anyhow::Result<String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        out.extend_from_slice(&chunk);
        if out.len() > 16 * 1024 {
            bail!("its answer is over 16 KiB");
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("its answer is not UTF-8"))
}

/// The checkpoint the server vouches for to clients: with witnesses, the newest one every
/// witness cosigned (after a round, if the log grew and a round is due, or always with
/// `fresh`: an evidence export needs its own entry covered); without, the current one.
pub async fn served_checkpoint(st: &AppState, fresh: bool) -> crate::error::ApiResult<String> {
    if st.witnesses.is_empty() {
        let st2 = st.clone();
        return st.db.read(move |s| Ok(accesslog::checkpoint(s, &st2.log_origin, &st2.log_key)?.1)).await;
    }
    st.witnesses.latest(st, fresh).await.ok_or_else(|| {
        crate::error::ApiError::unavailable(
            "no checkpoint has been cosigned by every witness yet; try again later (the server's log names why)",
        )
    })
}

/// The last checkpoint every witness cosigned, with their cosignatures.
async fn stored(db: &Db) -> anyhow::Result<Option<String>> {
    db.read(|s| Ok(s.meta(META_KEY)?)).await.map_err(|e| anyhow!("{}", e.message))
}

async fn store(db: &Db, note: String) -> anyhow::Result<()> {
    db.call(move |c| Ok(crate::store::Store::new(c).set_meta(META_KEY, &note)?))
        .await
        .map_err(|e| anyhow!("keeping the witnessed checkpoint: {}", e.message))
}

/// Runs a witness round every `every`, so that witnesses keep up with the log even when
/// no client asks.
pub async fn witness_loop(st: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = st.witnesses.round(&st).await {
            tracing::warn!(detail = %format!("{e:#}"), "witness round failed");
        }
    }
}
