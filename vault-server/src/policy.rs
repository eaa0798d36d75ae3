//! Every authorisation decision on a resource, one function per act (SPEC §6, §2).
//!
//! The role extractors (`http::extract`) have already checked the caller's role when
//! these run; what is decided here depends on data: grants, custodianship, the state of
//! a case. Each function either returns what the act may proceed with or refuses with
//! the error the caller sees, saying why (no grant, pending approval, expired on a date,
//! revoked, ...). To someone without any grant an unknown case and a case that is not
//! theirs look the same; admins, who may know every case, are told when one does not
//! exist. Read top to bottom, this file is the authorisation matrix the tests check
//! (`tests/matrix.rs`, `http::tests`).

use chrono::NaiveDate;
use vault_core::api::{
    Announcement, CaseKind, CaseStatus, GrantStatus, KeyEnvelope, Notice, NotificationStatus, Outcome, Reopening, Role,
};
use vault_core::ids::{CaseId, RecordingId, UserName};

use crate::auth::Caller;
use crate::clock::today;
use crate::error::{ApiError, ApiResult};
use crate::store::{CaseRow, Store, StoredGrant, StoredRecording, UserState};
use vault_core::trust::Signed;

// ------------------------------------------------------------------ users and login

/// A user may log in only while enabled.
pub fn may_log_in(s: &Store<'_>, user: &UserName) -> ApiResult<Role> {
    match s.user_state(user)? {
        Some(UserState { role, enabled: true, .. }) => Ok(role),
        Some(UserState { pending: true, .. }) => Err(ApiError::unauthenticated(
            "login failed: your enrolment as admin waits for a second admin's approval (`vault-cli user approve`)",
        )),
        _ => Err(ApiError::unauthenticated("login failed: your account is disabled")),
    }
}

/// A valid session token is honoured only while its user is enabled: disabling a user
/// stops their sessions at once.
pub fn may_use_token(s: &Store<'_>, user: &UserName) -> ApiResult<Role> {
    match s.user_state(user)? {
        Some(UserState { role, enabled: true, .. }) => Ok(role),
        _ => Err(ApiError::denied("your account is disabled; ask an admin").with_detail("user disabled or removed")),
    }
}

/// An admin's enrolment is approved by a second admin: not the one who enrolled them,
/// and not themselves. Returns the enrolment to add the approving signature to.
pub fn may_approve_enrolment(s: &Store<'_>, caller: &Caller, target: &UserName) -> ApiResult<Signed> {
    let e = s.enrolment(target)?.ok_or_else(|| ApiError::not_found(format!("no user {target}")))?;
    let statement = match (e.approved, e.statement) {
        (false, Some(st)) => st,
        _ => return Err(ApiError::conflict(format!("{target}'s enrolment is not waiting for approval"))),
    };
    if *target == caller.name {
        return Err(ApiError::denied("four eyes: you cannot approve your own enrolment"));
    }
    if statement.signatures.first().is_some_and(|sig| sig.by == caller.name) {
        return Err(ApiError::denied(format!(
            "four eyes: you enrolled {target}; a second admin must approve (`vault-cli user approve {target}`)"
        )));
    }
    Ok(statement)
}

/// An admin may disable another enabled user, unless that leaves a live case without
/// an enabled custodian: nobody could grant on it again.
pub fn may_disable_user(s: &Store<'_>, caller: &Caller, target: &UserName) -> ApiResult<()> {
    if *target == caller.name {
        return Err(ApiError::bad_request("you cannot disable yourself; ask another admin"));
    }
    match s.user_state(target)? {
        None => return Err(ApiError::not_found(format!("no user {target}"))),
        Some(UserState { enabled: false, .. }) => {
            return Err(ApiError::conflict(format!("user {target} is already disabled")));
        }
        Some(_) => {}
    }
    let orphaned = s.cases_in_sole_custody(target)?;
    if !orphaned.is_empty() {
        let list: Vec<&str> = orphaned.iter().map(CaseId::as_str).collect();
        return Err(ApiError::conflict(format!(
            "{target} is the only custodian of {}; make another admin a custodian first (vault-cli case add-custodian CASE ADMIN)",
            list.join(", ")
        )));
    }
    Ok(())
}

// ------------------------------------------------------------------ cases

/// A case an admin acts on: admins may know every case exists.
pub fn case_for_admin(s: &Store<'_>, id: &CaseId) -> ApiResult<CaseRow> {
    s.case(id)?.ok_or_else(|| ApiError::not_found(format!("no case {id}; `vault-cli case list` shows the cases")))
}

/// Whether `caller` may see a case's metadata: admins and auditors see every case,
/// investigators the cases they hold a pending or active grant on.
pub fn may_see_case(s: &Store<'_>, caller: &Caller, id: &CaseId) -> ApiResult<bool> {
    Ok(match caller.role {
        Role::Admin | Role::Auditor => true,
        Role::Investigator => s.grant(id, &caller.name)?.is_some_and(|g| g.is_live()),
        Role::Recorder => false,
    })
}

/// Refuses to show a case `caller` may not see. Admins and auditors learn that an
/// unknown case does not exist; to others it looks like a case that is not theirs.
pub fn may_show_case(s: &Store<'_>, caller: &Caller, id: &CaseId) -> ApiResult<()> {
    let hidden = || ApiError::denied("access denied: you have no grant on this case (or it does not exist)");
    if !may_see_case(s, caller, id)? {
        return Err(hidden());
    }
    if s.case(id)?.is_none() {
        return Err(match caller.role {
            Role::Admin | Role::Auditor => {
                ApiError::not_found(format!("no case {id}; `vault-cli case list` shows the cases"))
            }
            _ => hidden(),
        });
    }
    Ok(())
}

/// The AP's approval is recorded once, for a covert case waiting for it, and not
/// before the day it was given (R3).
pub fn may_approve_case(s: &Store<'_>, id: &CaseId, date: NaiveDate) -> ApiResult<()> {
    let case = case_for_admin(s, id)?;
    if case.kind != CaseKind::Covert {
        return Err(ApiError::bad_request("only covert cases need the AP's prior-check approval"));
    }
    if case.status != CaseStatus::PendingApproval {
        return Err(ApiError::conflict(format!("the case is {}, not pending approval", case.status)));
    }
    if date > today() {
        return Err(ApiError::bad_request("the approval date is in the future; record it once the AP has approved"));
    }
    Ok(())
}

/// A case takes recordings only while open: a covert case not before the AP approved
/// it (R3), no case once closed.
pub fn may_take_recordings(case: &CaseRow) -> ApiResult<()> {
    match case.status {
        CaseStatus::Open => Ok(()),
        CaseStatus::PendingApproval => Err(ApiError::denied(
            "this covert case takes no recordings until an admin records the AP's prior-check approval (case approve)",
        )),
        CaseStatus::Closed | CaseStatus::Destroyed => {
            Err(ApiError::denied(format!("this case is closed and takes no new recordings{}", reopen_hint(case))))
        }
    }
}

/// Whether a closed case is on legal hold (R7): a covert case closed with outcome `offence`
/// whose hold no admin has released. Its grantees may still read its recordings (SPEC
/// §6); it takes nothing new unless two admins reopen it. (A reopened case keeps its hold
/// too, against retention purges, but is open: it is read like any open case.)
pub fn under_legal_hold(case: &CaseRow) -> bool {
    case.kind == CaseKind::Covert
        && case.status == CaseStatus::Closed
        && case.outcome == Some(Outcome::Offence)
        && case.legal_hold
}

/// What a refusal on a case on legal hold adds: how to resume the investigation.
fn reopen_hint(case: &CaseRow) -> &'static str {
    if under_legal_hold(case) {
        "; it is on legal hold: to resume the investigation an admin requests reopening \
         (`vault-cli case reopen CASE --reason TEXT`) and a second admin approves it (`vault-cli case reopen approve CASE`)"
    } else {
        ""
    }
}

/// Refuses `refused` (a change of who holds a case, or of its key) on a case that is
/// closed: what a closed case holds stays as it was until two admins reopen it.
fn require_not_closed(case: &CaseRow, refused: &str) -> ApiResult<()> {
    match case.status {
        CaseStatus::Open | CaseStatus::PendingApproval => Ok(()),
        status => Err(ApiError::conflict(format!("the case is {status}; {refused}{}", reopen_hint(case)))),
    }
}

/// A recorder may upload to an open case; only covert recordings may be unannounced
/// (R1, R2).
pub fn check_upload(case: Option<&CaseRow>, id: &CaseId, announced: Announcement) -> ApiResult<CaseRow> {
    let case = *case.ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
    may_take_recordings(&case)?;
    if announced == Announcement::None && case.kind != CaseKind::Covert {
        return Err(ApiError::bad_request(format!(
            "a {} recording must have been announced (--announced spoken-notice or signal-tone); only covert cases take unannounced recordings",
            case.kind
        )));
    }
    Ok(case)
}

/// How a case may close: once; a covert case with `offence` or `no-offence` (the law
/// requires destroying the recordings at once if nothing criminal was found, R5), every
/// other case with `completed`.
pub fn close_rule(s: &Store<'_>, id: &CaseId, outcome: Outcome) -> ApiResult<CaseRow> {
    let case = case_for_admin(s, id)?;
    if matches!(case.status, CaseStatus::Closed | CaseStatus::Destroyed) {
        return Err(ApiError::conflict(format!("the case is already {}", case.status)));
    }
    match (case.kind, outcome) {
        // A reopened case keeps the hold of its first closing: that evidence is not
        // destroyed behind the hold's back.
        (CaseKind::Covert, Outcome::NoOffence) if case.legal_hold => Err(ApiError::conflict(
            "the case is on legal hold since it first closed with outcome offence, so its recordings are evidence and \
             are not destroyed: close it with --outcome offence, or release the hold first \
             (`vault-cli case release-hold CASE --reason TEXT`) if that evidence is no longer needed",
        )),
        (CaseKind::Covert, Outcome::Offence | Outcome::NoOffence) => Ok(case),
        (CaseKind::Covert, Outcome::Completed) => Err(ApiError::bad_request(
            "a covert case closes with --outcome offence or no-offence: the law requires destroying the recordings at once if nothing criminal was found",
        )),
        (_, Outcome::Completed) => Ok(case),
        (kind, _) => Err(ApiError::bad_request(format!(
            "a {kind} case closes with --outcome completed; offence and no-offence are for covert cases"
        ))),
    }
}

/// The employee's notification may be recorded, or deferred, while it is owed (R6). A
/// reopened case owes it still, but its telling is recorded only once the case is closed
/// again, so that it covers every recording; meanwhile it may be deferred.
pub fn may_notify(s: &Store<'_>, id: &CaseId, notice: &Notice) -> ApiResult<()> {
    let case = case_for_admin(s, id)?;
    let Some(current) = s.notification(id, today())? else {
        return Err(ApiError::conflict("this case has no notification duty: it arises when a covert case is closed"));
    };
    if current.status == NotificationStatus::Told {
        return Err(ApiError::conflict("the employee's notification is already recorded"));
    }
    if matches!(notice, Notice::Told { .. }) && case.status != CaseStatus::Closed {
        return Err(ApiError::conflict(format!(
            "the case was reopened and is {}: record the employee's notification once it is closed again \
             (meanwhile you may defer it: --defer-until YYYY-MM-DD --reason TEXT)",
            case.status
        )));
    }
    Ok(())
}

/// A legal hold can be released only from a case on hold (R7).
pub fn may_release_hold(s: &Store<'_>, id: &CaseId) -> ApiResult<()> {
    if !case_for_admin(s, id)?.legal_hold {
        return Err(ApiError::conflict("the case is not on legal hold"));
    }
    Ok(())
}

/// Which closed cases may be reopened: only a covert case closed with outcome `offence`
/// and still on legal hold, whose closing kept everything. A `no-offence` case was
/// destroyed (R5); a `completed` case ended its purpose, and its recordings go with
/// retention; a released hold let retention purge the evidence. Nor once the employee was
/// told (R6): a covert investigation cannot resume after that. And only while an enabled
/// admin still holds the case key, or nobody could grant on it again.
pub fn reopen_rule(s: &Store<'_>, id: &CaseId) -> ApiResult<CaseRow> {
    let case = case_for_admin(s, id)?;
    const NEW_CASE: &str = "open a new case instead (`vault-cli case create`); a covert one needs its own AP approval";
    match (case.status, case.outcome) {
        (CaseStatus::Open | CaseStatus::PendingApproval, _) => {
            return Err(ApiError::conflict(format!("the case is {}; only a closed case can be reopened", case.status)));
        }
        (CaseStatus::Destroyed, _) => {
            return Err(ApiError::conflict(format!(
                "the case closed with outcome no-offence and its recordings and keys were destroyed (R5); it cannot be reopened: {NEW_CASE}"
            )));
        }
        (CaseStatus::Closed, Some(Outcome::Offence)) if case.kind == CaseKind::Covert => {}
        (CaseStatus::Closed, outcome) => {
            let outcome = outcome.map_or("unknown", Outcome::as_str);
            return Err(ApiError::conflict(format!(
                "the case closed with outcome {outcome}, which ends its purpose; it cannot be reopened (only a covert case closed with outcome offence, on legal hold, can): {NEW_CASE}"
            )));
        }
    }
    if !under_legal_hold(&case) {
        return Err(ApiError::conflict(format!(
            "the case's legal hold was released, so retention purges its recordings; it cannot be reopened: {NEW_CASE}"
        )));
    }
    if let Some(n) = s.notification(id, today())?
        && let Some(told) = n.told_on
    {
        return Err(ApiError::conflict(format!(
            "the employee was told about the covert recording on {told} (R6), so the covert investigation cannot resume; it cannot be reopened: {NEW_CASE}"
        )));
    }
    let mut custodian_left = false;
    for admin in s.custodians(id)? {
        custodian_left |= matches!(s.user_state(&admin)?, Some(UserState { role: Role::Admin, enabled: true, .. }));
    }
    if !custodian_left {
        return Err(ApiError::conflict(format!(
            "no enabled admin is a custodian of the case any more, so nobody could grant on it once reopened; it cannot be reopened: {NEW_CASE}"
        )));
    }
    Ok(case)
}

/// Whether the admin who requested a reopening still counts: one disabled since (or no
/// longer an admin) does not, so that four eyes cannot rest on an account that is gone.
fn requester_counts(s: &Store<'_>, request: &Reopening) -> ApiResult<bool> {
    Ok(matches!(s.user_state(&request.requested_by)?, Some(UserState { role: Role::Admin, enabled: true, .. })))
}

/// An admin requests reopening a case [`reopen_rule`] allows, unless a request that still
/// counts waits already. Returns the waiting request a new one replaces: one whose
/// requester has been disabled since.
pub fn may_request_reopen(s: &Store<'_>, caller: &Caller, id: &CaseId) -> ApiResult<Option<Reopening>> {
    reopen_rule(s, id)?;
    let Some(waiting) = s.pending_reopening(id)? else { return Ok(None) };
    if !requester_counts(s, &waiting)? {
        return Ok(Some(waiting));
    }
    Err(ApiError::conflict(if waiting.requested_by == caller.name {
        format!(
            "you requested reopening this case on {}; a second admin must approve it (`vault-cli case reopen approve CASE`)",
            waiting.requested_at
        )
    } else {
        format!(
            "{} requested reopening this case on {}; it waits for a second admin: approve it with `vault-cli case reopen approve CASE`",
            waiting.requested_by, waiting.requested_at
        )
    }))
}

/// Four eyes: a waiting request to reopen is approved by an admin other than the one who
/// requested it, while that admin is still enabled and the case may still be reopened.
/// Returns the request.
pub fn may_approve_reopen(s: &Store<'_>, caller: &Caller, id: &CaseId) -> ApiResult<Reopening> {
    reopen_rule(s, id)?;
    let request = s.pending_reopening(id)?.ok_or_else(|| {
        ApiError::conflict(
            "no request to reopen this case waits for approval; an admin requests it first (`vault-cli case reopen CASE --reason TEXT`)",
        )
    })?;
    if request.requested_by == caller.name {
        return Err(ApiError::denied(
            "four eyes: you requested reopening this case, so you cannot approve it; ask a second admin (`vault-cli case reopen approve CASE`)",
        ));
    }
    if !requester_counts(s, &request)? {
        return Err(ApiError::conflict(format!(
            "the request to reopen was made by {}, who has been disabled since, so it no longer counts; an enabled admin must request it again (`vault-cli case reopen CASE --reason TEXT`)",
            request.requested_by
        )));
    }
    Ok(request)
}

// ------------------------------------------------------------------ custody of case keys

/// Refuses unless `caller` is a custodian of `case`.
pub fn require_custodian(s: &Store<'_>, case: &CaseId, caller: &Caller) -> ApiResult<()> {
    if s.is_custodian(case, &caller.name)? {
        Ok(())
    } else {
        Err(ApiError::denied(
            "you are not a custodian of this case, so you hold no key for it; ask a custodian (see `case show`)",
        ))
    }
}

/// A custodian may read its envelopes of a case's key, if it holds every version.
pub fn may_read_case_key(s: &Store<'_>, caller: &Caller, id: &CaseId) -> ApiResult<(CaseRow, Vec<KeyEnvelope>)> {
    let case = case_for_admin(s, id)?;
    require_custodian(s, id, caller)?;
    let keys = s.envelopes_of(id, &caller.name)?;
    if keys.len() as u32 != case.key_version {
        return Err(ApiError::denied("you do not hold every key version of this case; ask another custodian"));
    }
    Ok((case, keys))
}

/// A custodian may make another enabled admin a custodian of a case whose keys still
/// exist.
pub fn may_add_custodian(s: &Store<'_>, caller: &Caller, id: &CaseId, admin: &UserName) -> ApiResult<CaseRow> {
    let case = case_for_admin(s, id)?;
    if case.status == CaseStatus::Destroyed {
        return Err(ApiError::conflict("the case's keys were destroyed"));
    }
    require_not_closed(&case, "no custodian is added to a closed case")?;
    require_custodian(s, id, caller)?;
    match s.user_state(admin)? {
        Some(UserState { role: Role::Admin, enabled: true, .. }) => {}
        Some(UserState { enabled: false, .. }) => return Err(ApiError::conflict(format!("{admin} is disabled"))),
        Some(UserState { role, .. }) => {
            return Err(ApiError::denied(format!("{admin} is {role}; only admins can be custodians")));
        }
        None => return Err(ApiError::not_found(format!("no user {admin}"))),
    }
    if s.is_custodian(id, admin)? {
        return Err(ApiError::conflict(format!("{admin} is already a custodian of this case")));
    }
    Ok(case)
}

/// A custodian may rotate the key of a live case, from the version it saw.
pub fn may_rotate(s: &Store<'_>, caller: &Caller, id: &CaseId, from_version: u32) -> ApiResult<CaseRow> {
    let case = case_for_admin(s, id)?;
    require_not_closed(&case, "its key is no longer rotated")?;
    require_custodian(s, id, caller)?;
    if from_version != case.key_version {
        return Err(ApiError::conflict("the case key changed meanwhile; run rotate-key again"));
    }
    Ok(case)
}

// ------------------------------------------------------------------ grants

/// A custodian may grant a live case to another enabled admin or investigator who has
/// no live grant on it yet; never to itself (SPEC §6).
pub fn may_grant(
    s: &Store<'_>,
    caller: &Caller,
    id: &CaseId,
    grantee: &UserName,
    until: Option<NaiveDate>,
) -> ApiResult<CaseRow> {
    if *grantee == caller.name {
        return Err(ApiError::denied("you cannot grant yourself access; another admin must grant it"));
    }
    let case = case_for_admin(s, id)?;
    require_not_closed(&case, "no new grants")?;
    match s.user_state(grantee)? {
        None => return Err(ApiError::not_found(format!("no user {grantee}"))),
        Some(UserState { enabled: false, .. }) => {
            return Err(ApiError::conflict(format!("user {grantee} is disabled")));
        }
        Some(UserState { role, .. }) if !matches!(role, Role::Admin | Role::Investigator) => {
            return Err(ApiError::denied(format!(
                "user {grantee} is {role}; only investigators and admins can be granted access to recordings"
            )));
        }
        Some(_) => {}
    }
    if !s.is_custodian(id, &caller.name)? {
        return Err(ApiError::denied("only a custodian of the case can grant: you hold no key for it"));
    }
    if until.is_some_and(|u| u < today()) {
        return Err(ApiError::bad_request("--until is in the past; a grant must end today or later"));
    }
    if let Some(g) = s.grant(id, grantee)?
        && g.is_live()
    {
        return Err(ApiError::conflict(format!(
            "{grantee} already has a {} grant on this case; revoke it first to change it",
            g.status
        )));
    }
    Ok(case)
}

/// The status a new grant starts in: on a covert case it waits for a second admin.
pub fn new_grant_status(case: &CaseRow) -> GrantStatus {
    if case.kind == CaseKind::Covert { GrantStatus::Pending } else { GrantStatus::Active }
}

/// Four eyes: a pending grant is approved by an admin who neither requested it nor
/// receives it.
pub fn may_approve_grant(
    s: &Store<'_>,
    caller: &Caller,
    id: &CaseId,
    grantee: &UserName,
) -> ApiResult<(CaseRow, Signed)> {
    let case = case_for_admin(s, id)?;
    // A grant requested before the case closed must not become usable after it: under
    // legal hold an active grant reads the evidence.
    require_not_closed(&case, "no grant is approved on a closed case")?;
    let g = s.grant(id, grantee)?.ok_or_else(|| ApiError::not_found(format!("{grantee} has no grant on this case")))?;
    if g.status != GrantStatus::Pending || g.approved_by.is_some() {
        return Err(ApiError::conflict(format!(
            "the grant is {}{}, not pending approval",
            g.status,
            if g.approved_by.is_some() { " and approved" } else { "" }
        )));
    }
    if g.granted_by == caller.name {
        return Err(ApiError::denied(
            "four eyes: the admin who requested a grant cannot approve it; ask a second admin",
        ));
    }
    if *grantee == caller.name {
        return Err(ApiError::denied("you cannot approve a grant to yourself"));
    }
    let statement = g.statement.ok_or_else(|| ApiError::conflict("the grant carries no signed statement"))?;
    Ok((case, statement))
}

/// On a covert case no envelope may exist before a second admin approved the grant.
pub fn no_envelope_before_approval(envelopes: &[vault_core::api::WrappedKey]) -> ApiResult<()> {
    if envelopes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request("a covert grant takes no envelope before a second admin approves it; send none"))
    }
}

/// A custodian delivers the key of a covert grant a second admin approved.
pub fn may_deliver_key(s: &Store<'_>, caller: &Caller, id: &CaseId, grantee: &UserName) -> ApiResult<CaseRow> {
    let case = case_for_admin(s, id)?;
    require_not_closed(&case, "no key is delivered on a closed case")?;
    let g = s.grant(id, grantee)?.ok_or_else(|| ApiError::not_found(format!("{grantee} has no grant on this case")))?;
    if g.status != GrantStatus::Pending {
        return Err(ApiError::conflict(format!("the grant is {}; there is no key to deliver", g.status)));
    }
    if g.approved_by.is_none() {
        return Err(ApiError::denied(
            "four eyes: the grant is not approved yet; a second admin must run `vault-cli grant approve` first",
        ));
    }
    if g.until.is_some_and(|u| u < today()) {
        return Err(ApiError::conflict("the grant has expired; grant again"));
    }
    require_custodian(s, id, caller)?;
    Ok(case)
}

/// Any admin may revoke a grant that is not revoked yet.
pub fn may_revoke(s: &Store<'_>, id: &CaseId, grantee: &UserName) -> ApiResult<()> {
    case_for_admin(s, id)?;
    let g = s.grant(id, grantee)?.ok_or_else(|| ApiError::not_found(format!("{grantee} has no grant on this case")))?;
    if !g.is_live() {
        return Err(ApiError::conflict(format!("the grant of {grantee} is already revoked")));
    }
    Ok(())
}

// ------------------------------------------------------------------ reading recordings

/// Refuses unless `user` has an active grant on an open case, or on a case on legal hold
/// (SPEC §6: its grantees may still fetch the evidence): the gate in front of recording
/// metadata, ciphertext and envelopes for admins and investigators alike. Any other closed
/// case refuses, as does a case whose hold was released.
pub fn require_active_grant(s: &Store<'_>, case: &CaseId, user: &UserName) -> ApiResult<CaseRow> {
    let vague = || {
        ApiError::denied("access denied: you have no grant on this case (or it does not exist)")
            .with_detail("no grant or no such case")
    };
    let Some(grant) = s.grant(case, user)? else {
        return Err(vague());
    };
    let Some(row) = s.case(case)? else {
        return Err(vague());
    };
    refuse_unless_active(&grant)?;
    match row.status {
        CaseStatus::Destroyed => Err(ApiError::denied("access denied: the recordings of this case were destroyed")),
        CaseStatus::Closed if under_legal_hold(&row) => Ok(row),
        CaseStatus::Closed if row.outcome == Some(Outcome::Offence) => Err(ApiError::denied(
            "access denied: the case is closed and its legal hold was released, so its recordings are no longer released; \
             they are purged when their retention ends",
        )),
        CaseStatus::Closed => Err(ApiError::denied(
            "access denied: the case is closed, so its recordings are no longer released; \
             only a covert case closed with outcome offence keeps them reachable for its grantees, while on legal hold",
        )),
        CaseStatus::Open | CaseStatus::PendingApproval => Ok(row),
    }
}

fn refuse_unless_active(grant: &StoredGrant) -> ApiResult<()> {
    match grant.status_on(today()) {
        GrantStatus::Active => Ok(()),
        GrantStatus::Pending if grant.approved_by.is_some() => Err(ApiError::denied(
            "access denied: your grant on this covert case is approved and waiting for a custodian to deliver the key",
        )),
        GrantStatus::Pending => Err(ApiError::denied(
            "access denied: your grant on this covert case is waiting for a second admin's approval",
        )),
        GrantStatus::Revoked => Err(ApiError::denied("access denied: your grant on this case was revoked")),
        GrantStatus::Expired => {
            let until = grant.until.map(|d| d.to_string()).unwrap_or_default();
            Err(ApiError::denied(format!("access denied: your grant on this case expired after {until}")))
        }
    }
}

/// What a caller may see of a case's recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing {
    /// The encrypted call metadata too (grantees), or not (auditors).
    pub with_meta: bool,
    /// A grantee reads a case on legal hold (marked in the log entry).
    pub legal_hold: bool,
}

/// Who may list a case's recordings, and what they see: auditors see the metadata of
/// every case but never the encrypted call metadata; everyone else needs an active grant
/// ([`require_active_grant`]) and sees it all.
pub fn may_list_recordings(s: &Store<'_>, caller: &Caller, id: &CaseId) -> ApiResult<Listing> {
    if caller.role == Role::Auditor {
        if s.case(id)?.is_none() {
            return Err(ApiError::not_found(format!("no case {id}")));
        }
        return Ok(Listing { with_meta: false, legal_hold: false });
    }
    let case = require_active_grant(s, id, &caller.name)?;
    Ok(Listing { with_meta: true, legal_hold: under_legal_hold(&case) })
}

/// The recording a fetch asks for. One that does not exist is refused like one the
/// caller has no grant for.
/// A recording its recorder has not signed is not released: to its fetcher it does not
/// exist yet.
pub fn recording_to_fetch(s: &Store<'_>, id: &RecordingId) -> ApiResult<StoredRecording> {
    s.recording(id)?.filter(|r| r.statement.is_some()).ok_or_else(|| {
        ApiError::denied("access denied: you have no grant for this recording (or it does not exist)")
            .with_detail("no such signed recording")
    })
}

/// Only the recorder that uploaded a recording signs it, once.
pub fn may_sign_recording(s: &Store<'_>, caller: &Caller, id: &RecordingId) -> ApiResult<StoredRecording> {
    let rec = s.recording(id)?.ok_or_else(|| ApiError::not_found(format!("no recording {id}")))?;
    if rec.uploaded_by != caller.name {
        return Err(ApiError::denied(format!("{id} was uploaded by another recorder; only it can sign it")));
    }
    if rec.statement.is_some() {
        return Err(ApiError::conflict(format!("{id} is signed already")));
    }
    Ok(rec)
}

/// What a fetch releases: the caller's own envelope of the recording's key version, and
/// whether it is released under legal hold (marked in the log entry).
pub struct Release {
    pub envelope: Vec<u8>,
    pub legal_hold: bool,
}

/// A fetch releases a recording's ciphertext with the caller's own envelope of its key
/// version, only on an active grant ([`require_active_grant`]).
pub fn may_fetch(s: &Store<'_>, caller: &Caller, rec: &StoredRecording) -> ApiResult<Release> {
    let case = require_active_grant(s, &rec.case_id, &caller.name)?;
    let version = rec.key_version;
    let envelope = s.envelope(&rec.case_id, version, &caller.name)?.ok_or_else(|| {
        ApiError::denied(format!(
            "you hold no key for version {version} of this case's key; ask a custodian to grant you again"
        ))
    })?;
    Ok(Release { envelope, legal_hold: under_legal_hold(&case) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_status_today() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let today = d("2026-06-10");
        let g = |status, until: Option<&str>| StoredGrant {
            status,
            until: until.map(d),
            granted_by: "a".parse().unwrap(),
            approved_by: None,
            statement: None,
        };
        assert_eq!(g(GrantStatus::Active, None).status_on(today), GrantStatus::Active);
        assert_eq!(g(GrantStatus::Active, Some("2026-06-10")).status_on(today), GrantStatus::Active);
        assert_eq!(g(GrantStatus::Active, Some("2026-06-09")).status_on(today), GrantStatus::Expired);
        assert_eq!(g(GrantStatus::Pending, None).status_on(today), GrantStatus::Pending);
        assert_eq!(g(GrantStatus::Revoked, None).status_on(today), GrantStatus::Revoked);
    }
}
