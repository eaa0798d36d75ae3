//! What this client believes about people, from the trust root it pinned down.
//!
//! Before a command acts on a key or a recording, it reads the vault's trust root and
//! every enrolment from the server and checks them here: the root against the
//! fingerprint given in `VAULT_TRUST_ROOT` (or pinned the first time this machine saw
//! the server, as SSH does), and each enrolment's signatures from the root down. The
//! server's word alone decides nothing.

use anyhow::{Context, bail};
use vault_core::api::{CaseKind, TrustInfo};
use vault_core::ids::{CaseId, UserName};
use vault_core::trust::{CaseKeyStatement, Directory, Enrol, Root, Signed, SigningKey, TrustError, statement};

use crate::client::Client;

/// The people this vault's certificates prove, from the pinned root.
pub fn directory(client: &mut Client) -> anyhow::Result<Directory> {
    Ok(directory_and_enrolments(client)?.0)
}

/// The enrolments the server holds, unchecked (for approving a pending one), with the
/// checked directory.
pub fn directory_and_enrolments(client: &mut Client) -> anyhow::Result<(Directory, TrustInfo)> {
    let info: TrustInfo = client.get_json("/v1/trust")?;
    let root = Root::parse(&info.root).context("the server's trust root is malformed")?;
    check_root(client, &root)?;
    Ok((Directory::build(&root, &info.enrolments, &info.disables), info))
}

/// An enrolment of `name` the server holds whose first signature (an admin's) verifies,
/// whether or not a second admin approved it yet: what `user approve` signs and `user
/// disable` names for an admin still pending. An enrolment the server made up is passed
/// over, not taken. `None` if the server holds no enrolment of `name` at all.
pub fn enrolment_of<'a>(
    dir: &Directory,
    info: &'a TrustInfo,
    name: &UserName,
) -> Result<Option<(&'a Signed, Enrol)>, TrustError> {
    let mut why = None;
    for s in info.enrolments.iter().filter(|s| s.parse::<Enrol>().is_ok_and(|e| e.name == *name)) {
        match dir.check_enrolment(s, true) {
            Ok(e) => return Ok(Some((s, e))),
            Err(e) => why = Some(e),
        }
    }
    why.map_or(Ok(None), Err)
}

/// Checks the server's root against `VAULT_TRUST_ROOT`, else against the pin kept for
/// this server, and pins it the first time.
fn check_root(client: &Client, root: &Root) -> anyhow::Result<()> {
    let seen = root.fingerprint();
    let admins: Vec<String> = root.admins.iter().map(|(n, _)| n.to_string()).collect();
    if client.trust_root.as_deref().is_some_and(|t| t.trim().is_empty()) {
        bail!(
            "VAULT_TRUST_ROOT (--trust-root) is set but empty: set it to the SHA256:... fingerprint `vault-server init` \
             printed (`vault-server trust-root` prints it again), or unset it to pin the root on first use"
        );
    }
    if let Some(expected) = client.trust_root.as_deref() {
        if expected.trim() != seen {
            bail!(
                "the server's trust root is {seen} (admins {}), not {} as VAULT_TRUST_ROOT says: this is not \
                 your vault, or the server is lying; refusing",
                admins.join(", "),
                expected.trim()
            );
        }
        return Ok(());
    }
    match crate::local::pinned_root(&client.base)? {
        Some(pinned) if pinned == seen => Ok(()),
        Some(pinned) => bail!(
            "the server's trust root changed: it is {seen} (admins {}) now, but this machine pinned {pinned}; \
             refusing. If your admins really made a new vault, get its fingerprint from them and set \
             VAULT_TRUST_ROOT to it",
            admins.join(", ")
        ),
        None => {
            crate::local::pin_root(&client.base, &seen)?;
            eprintln!(
                "vault-cli: trusting {} from now on: trust root {seen} (admins {}). Check this fingerprint with \
                 your admins; to check it up front, set VAULT_TRUST_ROOT",
                client.base,
                admins.join(", ")
            );
            Ok(())
        }
    }
}

/// The caller's signing key, derived from their identity file.
pub fn signing_key(client: &Client) -> anyhow::Result<SigningKey> {
    Ok(SigningKey::from_identity(&client.identity()?))
}

/// The caller's signed statement that `recipient` is key `version` of `case`.
pub fn sign_case_key(
    dir: &Directory,
    client: &Client,
    key: &SigningKey,
    case: &CaseId,
    kind: CaseKind,
    version: u32,
    recipient: String,
) -> Signed {
    let stmt = CaseKeyStatement {
        vault: dir.vault().to_owned(),
        case: case.clone(),
        kind,
        version,
        recipient,
        by: client.user.clone(),
        at: statement::now(),
    };
    Signed::sign(&stmt, key)
}

/// [`directory`], asked on its own thread while the command sends its main request.
pub fn directory_in_background(
    client: &mut Client,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<Directory>>> {
    client.in_background(directory)
}

/// Waits for [`directory_in_background`].
pub fn joined(handle: std::thread::JoinHandle<anyhow::Result<Directory>>) -> anyhow::Result<Directory> {
    handle.join().map_err(|_| anyhow::anyhow!("the thread checking the trust root panicked"))?
}
