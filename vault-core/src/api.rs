//! The JSON types of the HTTP API, shared by the server and the CLI.
//!
//! Binary data (envelopes, challenges, encrypted call metadata) travels as standard
//! base64. Recording ciphertext never travels as JSON: it is the raw body of the upload
//! request and of the fetch response.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::ids::{CaseId, RecordingId, UserName};
use crate::trust::Signed;

/// Exit status of `vault-cli` when the server refused access (SPEC §7).
pub const EXIT_ACCESS_DENIED: i32 = 3;

/// Response header carrying the caller's envelope (base64) with a fetched recording.
pub const HEADER_ENVELOPE: &str = "x-vault-envelope";
/// Response header carrying the case recipient the envelope must open.
pub const HEADER_CASE_RECIPIENT: &str = "x-vault-case-recipient";
/// Header carrying the encrypted call metadata (base64): on an upload request, and on
/// the fetch response that returns the recording.
pub const HEADER_META: &str = "x-vault-meta";
/// Response header to an upload: the CRC-32 (8 hex digits) of the bytes the server
/// received, which the uploader compares with what it sent.
pub const HEADER_CRC32: &str = "x-vault-crc32";
/// On an upload's answer: `true` when the server held the recording already (an upload of
/// an id its recorder had signed) and stored nothing.
pub const HEADER_REPEATED: &str = "x-vault-repeated";
/// Request header of an upload: the length in bytes (decimal) of the whole ciphertext
/// the uploader is about to send. The server requires it, and stores nothing unless the
/// body is exactly that long and that long can be an age file anyone could decrypt.
pub const HEADER_UPLOAD_LENGTH: &str = "x-vault-upload-length";
/// Response header to a fetch: base64 of the recorder's signed statement (JSON of
/// [`Signed`]) of the recording.
pub const HEADER_STATEMENT: &str = "x-vault-statement";
/// Response header to a fetch: base64 of the custodian's signed statement of the case
/// recipient the envelope opens.
pub const HEADER_KEY_STATEMENT: &str = "x-vault-key-statement";
/// Response header to a fetch: the SHA-256 (hex) recorded for the ciphertext at upload,
/// which the fetching CLI checks what it received against.
pub const HEADER_SHA256: &str = "x-vault-sha256";

string_enum!(
    /// What a user may do (SPEC §6).
    Role { Admin = "admin", Investigator = "investigator", Auditor = "auditor", Recorder = "recorder" }
);
string_enum!(
    /// The legal basis a case is recorded under (SPEC §2).
    CaseKind { Customer = "customer", Employee = "employee", Covert = "covert" }
);
string_enum!(
    /// The legitimate interest of a customer-call case (R1).
    Purpose { Sales = "sales", ComplaintHandling = "complaint-handling", Training = "training", Quality = "quality" }
);
string_enum!(
    /// How the parties were told the call was recorded (R1, R2).
    Announcement { SpokenNotice = "spoken-notice", SignalTone = "signal-tone", None = "none" }
);
string_enum!(
    /// Where a case is in its life.
    CaseStatus { PendingApproval = "pending-approval", Open = "open", Closed = "closed", Destroyed = "destroyed" }
);
string_enum!(
    /// How a case ended (R5, R7).
    Outcome { Offence = "offence", NoOffence = "no-offence", Completed = "completed" }
);
string_enum!(
    /// Where the duty to tell an employee about covert recording stands (R6).
    NotificationStatus {
        Outstanding = "outstanding",
        Overdue = "overdue",
        Deferred = "deferred",
        DeferralDue = "deferral-due",
        Told = "told",
    }
);
string_enum!(
    /// The state of one person's access to a case.
    GrantStatus { Pending = "pending", Active = "active", Expired = "expired", Revoked = "revoked" }
);

/// Default retention per kind, in days (R7), used when `--retention-days` is not given.
pub fn default_retention_days(kind: CaseKind) -> u32 {
    match kind {
        CaseKind::Customer => 180,
        CaseKind::Employee => 90,
        CaseKind::Covert => 365,
    }
}

/// An error answer from the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable, machine-readable code such as `access_denied` or `bad_request`.
    pub error: String,
    /// What went wrong and what to do, for people.
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeRequest {
    pub user: UserName,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeResponse {
    pub challenge_id: String,
    /// base64 of the age ciphertext of the challenge text.
    pub ciphertext: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub challenge_id: String,
    /// [`crate::challenge::response`] of the decrypted challenge.
    pub response: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub role: Role,
}

/// Enrols a person: the enrolling admin's signed [`crate::trust::Enrol`] statement,
/// which names them, their role and their public id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewUser {
    pub enrolment: Signed,
}

/// A second admin's approval of an admin's enrolment: their signature (base64) of the
/// enrolment statement's text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cosignature {
    pub signature: String,
}

/// Disables a person: an admin's signed [`crate::trust::Disable`] statement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Disabling {
    pub statement: Signed,
}

/// What clients check people against: the trust root's text, every enrolment and every
/// disabling. Clients trust none of it until it verifies from the root they pinned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustInfo {
    pub root: String,
    pub enrolments: Vec<Signed>,
    pub disables: Vec<Signed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: UserName,
    pub role: Role,
    pub recipient: String,
    /// The public id (`vault1...`): age recipient and signing key.
    pub id: String,
    pub enabled: bool,
    /// An admin whose enrolment waits for a second admin's approval.
    pub pending_approval: bool,
    pub created_at: String,
    pub created_by: Option<String>,
}

/// Whether a works council consented to employee-call recording (R2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "reference")]
pub enum WorksCouncil {
    /// Reference of the works council's consent.
    Consent(String),
    /// The organisation has no works council.
    NoWorksCouncil,
}

/// The legal basis of a case, with the fields each kind requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum CaseBasis {
    Customer {
        purpose: Purpose,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dpia_ref: Option<String>,
    },
    Employee {
        reason: String,
        works_council: WorksCouncil,
        ap_informed: NaiveDate,
        dpia_ref: String,
    },
    Covert {
        suspicion: String,
        dpia_ref: String,
    },
}

impl CaseBasis {
    pub fn kind(&self) -> CaseKind {
        match self {
            CaseBasis::Customer { .. } => CaseKind::Customer,
            CaseBasis::Employee { .. } => CaseKind::Employee,
            CaseBasis::Covert { .. } => CaseKind::Covert,
        }
    }

    /// Checks the fields the law asks for; the message names the field and why.
    pub fn validate(&self) -> Result<(), String> {
        let need = |v: &str, field: &str, why: &str| {
            if v.trim().is_empty() { Err(format!("{field} is required: {why}")) } else { Ok(()) }
        };
        match self {
            CaseBasis::Customer { .. } => Ok(()),
            CaseBasis::Employee { reason, works_council, dpia_ref, .. } => {
                need(reason, "--reason", "employee calls may be recorded only for a stated legitimate reason")?;
                if let WorksCouncil::Consent(r) = works_council {
                    need(
                        r,
                        "--works-council-ref",
                        "the works council must consent before employee calls are recorded",
                    )?;
                }
                need(dpia_ref, "--dpia-ref", "monitoring employees requires a data-protection impact assessment")
            }
            CaseBasis::Covert { suspicion, dpia_ref } => {
                need(suspicion, "--suspicion", "covert recording is lawful only on suspicion of a criminal offence")?;
                need(dpia_ref, "--dpia-ref", "covert investigation requires a data-protection impact assessment")
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewCase {
    /// Chosen by the creating admin's CLI (random), since its signed key statement names
    /// the case.
    pub id: CaseId,
    pub title: String,
    pub retention_days: Option<u32>,
    pub basis: CaseBasis,
    /// The case recipient (`age1...`), generated on the admin's machine.
    pub recipient: String,
    /// base64 of the case secret age-encrypted to the creating admin.
    pub envelope: String,
    /// The creating admin's signed [`crate::trust::CaseKeyStatement`] of version 1.
    pub key_statement: Signed,
}

/// The answer to a request that created something: its id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created<I> {
    pub id: I,
}

/// The answer to a request that changed something it did not create (approving,
/// closing, revoking, disabling): the id of what it acted on. The same JSON as
/// [`Created`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done<I> {
    pub id: I,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantInfo {
    pub user: UserName,
    pub status: GrantStatus,
    pub reason: String,
    pub until: Option<NaiveDate>,
    pub granted_by: UserName,
    pub created_at: String,
    /// The second admin who approved a covert grant. A covert grant stays pending after
    /// its approval until a custodian has delivered the key (`grant deliver`).
    pub approved_by: Option<UserName>,
    /// The granting admin's signed [`crate::trust::GrantStatement`], with the approving
    /// admin's signature once approved.
    pub statement: Option<Signed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseInfo {
    pub id: CaseId,
    pub kind: CaseKind,
    pub title: String,
    pub status: CaseStatus,
    pub retention_days: u32,
    pub basis: CaseBasis,
    pub recipient: String,
    pub key_version: u32,
    pub created_by: UserName,
    pub created_at: String,
    pub custodians: Vec<UserName>,
    pub grants: Vec<GrantInfo>,
    pub recordings: u64,
    /// Covert cases: the AP's prior-check approval.
    pub ap_ref: Option<String>,
    pub ap_date: Option<String>,
    pub outcome: Option<Outcome>,
    pub closed_at: Option<String>,
    pub closed_by: Option<String>,
    /// Nothing is purged while a case is on legal hold.
    pub legal_hold: bool,
    pub notification: Option<NotificationInfo>,
    /// The destruction certificate: what was destroyed, when and by whom.
    pub destroyed: Vec<DestroyedRecording>,
    /// Requests to reopen the case, oldest first: the one waiting for a second admin's
    /// approval, if any, and every one approved.
    #[serde(default)]
    pub reopenings: Vec<Reopening>,
}

/// A request to reopen a covert case closed with outcome `offence` while on legal hold,
/// and its approval by a second admin (four eyes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reopening {
    pub requested_by: UserName,
    pub requested_at: String,
    /// Why the requesting admin wants the case open again.
    pub reason: String,
    /// The second admin who approved it; `None` while it waits.
    pub approved_by: Option<UserName>,
    pub approved_at: Option<String>,
    /// The closing the approval undid (outcome, when, by whom), which the case itself
    /// forgets when it opens again.
    #[serde(default)]
    pub closed_outcome: Option<Outcome>,
    #[serde(default)]
    pub closed_at: Option<String>,
    #[serde(default)]
    pub closed_by: Option<String>,
}

/// Days after closing a covert case within which the employee should be told (R6).
pub const NOTIFY_WITHIN_DAYS: i64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationInfo {
    pub status: NotificationStatus,
    /// The employee should be told by this date.
    pub due: NaiveDate,
    pub told_on: Option<NaiveDate>,
    pub how: Option<String>,
    pub deferred_until: Option<NaiveDate>,
    pub defer_reason: Option<String>,
    pub recorded_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestroyedRecording {
    pub id: RecordingId,
    /// Hex SHA-256 of the destroyed ciphertext.
    pub sha256: String,
    pub size: u64,
    pub recorded_at: String,
    pub destroyed_at: String,
    pub destroyed_by: String,
    /// `no-offence` (R5) or `retention` (R7).
    pub cause: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Closing {
    pub outcome: Outcome,
}

/// Recording that the employee was told, or why and until when telling is deferred.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Notice {
    Told { date: NaiveDate, how: String },
    Deferred { until: NaiveDate, reason: String },
}

/// A case as it appears in the compliance report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseRef {
    pub id: CaseId,
    pub kind: CaseKind,
    pub title: String,
    /// The date that matters for the list it is in (created, closed, due, ...).
    pub since: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationDue {
    pub case: CaseRef,
    pub notification: NotificationInfo,
}

/// A request to reopen a case, waiting for a second admin (`case reopen approve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReopenDue {
    /// The case; `since` is when reopening was requested.
    pub case: CaseRef,
    pub reopening: Reopening,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurgeDue {
    pub case: CaseRef,
    pub recordings: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindTotals {
    pub kind: CaseKind,
    pub cases: u64,
    pub open_cases: u64,
    pub recordings: u64,
}

/// The compliance report (`vault-cli report`): what a data-protection officer needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub generated_at: String,
    /// Covert cases waiting for the AP's prior-check approval (R3).
    pub pending_approvals: Vec<CaseRef>,
    /// Employees not yet told about covert recording: outstanding, overdue, or whose
    /// deferral has reached its review date (R6). Deferrals still running are listed too.
    pub notifications: Vec<NotificationDue>,
    /// Recordings past their retention period, not yet purged (R7).
    pub purges_due: Vec<PurgeDue>,
    /// Cases on legal hold (R7).
    pub holds: Vec<CaseRef>,
    /// Requests to reopen a case on legal hold that wait for a second admin.
    #[serde(default)]
    pub reopen_requests: Vec<ReopenDue>,
    pub totals: Vec<KindTotals>,
}

/// The case key envelopes of the caller (custodians use it to grant).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseKeyInfo {
    /// The current key version.
    pub key_version: u32,
    /// The caller's envelope for every key version of the case, oldest first.
    pub keys: Vec<KeyEnvelope>,
    /// Who must hold the current key: custodians and non-revoked grantees (for rotation).
    pub holders: Vec<Holder>,
}

/// One key version of a case with one person's envelope of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEnvelope {
    pub version: u32,
    /// The case recipient of this version; the envelope must open to its secret.
    pub recipient: String,
    /// base64 of the age-encrypted case secret.
    pub envelope: String,
    /// The custodian's signed statement of this version's recipient.
    pub statement: Signed,
}

/// A person a case key must be wrapped to, with what says so: a signed custodianship
/// (none for the case's creator, who signed key version 1) or a signed grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub user: UserName,
    pub recipient: String,
    pub custodian: Option<Signed>,
    pub grant: Option<Signed>,
}

/// A case secret of one version wrapped to someone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrappedKey {
    pub version: u32,
    /// base64 of the age-encrypted case secret.
    pub envelope: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewGrant {
    pub user: UserName,
    pub reason: String,
    pub until: Option<NaiveDate>,
    /// The case secret of every key version, wrapped to the grantee; none on a covert
    /// case, where no envelope may exist before a second admin approved the grant.
    pub envelopes: Vec<WrappedKey>,
    /// The granting custodian's signed [`crate::trust::GrantStatement`].
    pub statement: Signed,
}

/// A second admin's approval of a covert grant: their signature (base64) of the grant
/// statement's text, and, if they are a custodian, the key delivered with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantApproval {
    pub signature: String,
    /// Every key version wrapped to the grantee, or none (a custodian delivers later).
    pub envelopes: Vec<WrappedKey>,
}

/// A custodian delivers the key of an approved covert grant: every key version wrapped to
/// the grantee.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyDelivery {
    pub envelopes: Vec<WrappedKey>,
}

/// Makes another admin a custodian: every key version wrapped to them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewCustodian {
    pub admin: UserName,
    pub envelopes: Vec<WrappedKey>,
    /// The caller's signed [`crate::trust::CustodianStatement`].
    pub statement: Signed,
}

/// A new case key version, wrapped to every holder the server listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rotation {
    /// The version this rotation replaces; refused if the case moved on meanwhile.
    pub from_version: u32,
    pub recipient: String,
    pub envelopes: Vec<HolderEnvelope>,
    /// The rotating custodian's signed statement of the new version's recipient.
    pub key_statement: Signed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HolderEnvelope {
    pub user: UserName,
    /// base64 of the new case secret wrapped to `user`.
    pub envelope: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reason {
    pub reason: String,
}

/// Query of an upload request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadParams {
    pub announced: Announcement,
    /// RFC 3339; defaults to the time of upload.
    pub recorded_at: Option<String>,
    /// The recording's id, chosen by the recorder to make the upload idempotent: an
    /// upload of an id this recorder already signed on this case stores nothing and
    /// answers that recording, with its statement. Without it the server picks a random
    /// id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<crate::ids::RecordingId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingInfo {
    pub id: RecordingId,
    pub case_id: CaseId,
    pub key_version: u32,
    pub size: u64,
    /// Hex SHA-256 of the ciphertext.
    pub sha256: String,
    pub announced: Announcement,
    pub recorded_at: String,
    pub uploaded_by: UserName,
    pub uploaded_at: String,
    /// base64 of the age-encrypted call metadata, if any.
    pub meta: Option<String>,
    /// The recorder's signed statement of the recording; absent until the recorder has
    /// signed it, and then it is not released.
    pub statement: Option<Signed>,
}

/// The recorder's signature on a recording it uploaded, which makes it visible.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingSignature {
    pub statement: Signed,
}

/// Query of a page of a case's recordings, in upload order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PageParams {
    /// Start after this recording (the `next` of the previous page).
    pub after: Option<RecordingId>,
    /// At most this many (default and maximum 1000).
    pub limit: Option<u32>,
}

/// One page of recordings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingPage {
    pub recordings: Vec<RecordingInfo>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<RecordingId>,
}

/// Most recordings one page holds.
pub const PAGE_MAX: u32 = 1000;

/// Call metadata that is personal data; it travels and rests encrypted to the case.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallMeta {
    pub file_name: Option<String>,
    pub plaintext_size: Option<u64>,
    /// From a phone system's sidecar file (`vault-cli ingest`): the calling and called
    /// numbers, the agent, `inbound` or `outbound`, and the phone system's own call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

/// What a recorder needs to encrypt to a case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseRecipient {
    pub recipient: String,
    pub key_version: u32,
    /// The custodian's signed statement of this recipient; recorders check it against
    /// the trust root before they encrypt.
    pub statement: Signed,
}

/// Approval of a covert case by the data-protection authority (R3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub ap_ref: String,
    pub date: Option<NaiveDate>,
}
