//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the HTTP API, for clients in other
//! languages. Like the probes it needs no token and writes no access-log entry: it says
//! nothing about the vault's contents, only what any copy of the source says.
//!
//! The document is written by hand (`schema/openapi.json`) and compiled in, rather than
//! derived with `utoipa`: deriving would put an HTTP-documentation dependency and an
//! attribute on every type in `vault-core` (which has no server dependencies) and every
//! handler, while the parts clients most need (the login protocol, the upload and fetch
//! headers, what to check before trusting an answer) are prose either way. What keeps it
//! true is tested instead: below, every schema against the serde type it documents
//! (both ways); in tests/openapi.rs, every route against the real server (both ways).

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;

/// The document, as checked in.
pub const DOCUMENT: &str = include_str!("../../../schema/openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], DOCUMENT)
}

#[cfg(test)]
mod tests {
    //! Each schema of the document against the serde type it documents, both ways: an
    //! example built from the schema (every property filled) must deserialize into the type
    //! and serialize back unchanged. A property the type lacks is dropped on the way back;
    //! one the document lacks is missing on the way in (or comes back as `null`); a wrong
    //! type does not deserialize. Enums are compared value by value.

    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};
    use vault_core::api::{self, Created, Done};
    use vault_core::ids::{CaseId, RecordingId, UserName};

    fn doc() -> Value {
        serde_json::from_str(super::DOCUMENT).expect("schema/openapi.json is JSON")
    }

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        let s = &doc["components"]["schemas"][name];
        assert!(s.is_object(), "schema/openapi.json has no schema {name}");
        s
    }

    /// A value the schema describes, with every property present.
    fn example(doc: &Value, s: &Value) -> Value {
        if let Some(r) = s["$ref"].as_str() {
            return example(doc, schema(doc, r.trim_start_matches("#/components/schemas/")));
        }
        if let Some(e) = s.get("example") {
            return e.clone();
        }
        if let Some(values) = s["enum"].as_array() {
            return values[0].clone();
        }
        if let Some(variants) = s["oneOf"].as_array() {
            // `X or null`: the non-null side.
            return example(doc, variants.iter().find(|v| v["type"] != "null").expect("a non-null variant"));
        }
        let ty = match &s["type"] {
            Value::Array(types) => types.iter().find(|t| *t != "null").cloned().unwrap_or(Value::Null),
            t => t.clone(),
        };
        match ty.as_str() {
            Some("object") => Value::Object(
                s["properties"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), example(doc, v))).collect(),
            ),
            Some("array") => json!([example(doc, &s["items"])]),
            Some("string") => match s["format"].as_str() {
                Some("date") => json!("2026-11-29"),
                Some("date-time") => json!("2026-11-29T12:00:00Z"),
                _ => json!("text"),
            },
            Some("integer") => json!(1),
            Some("boolean") => json!(true),
            other => panic!("no example for type {other:?} in {s}"),
        }
    }

    /// The examples of a schema: one per variant of a tagged union, else one.
    fn examples(doc: &Value, name: &str) -> Vec<Value> {
        let s = schema(doc, name);
        match s["oneOf"].as_array() {
            Some(variants) if s.get("discriminator").is_some() => variants.iter().map(|v| example(doc, v)).collect(),
            _ => vec![example(doc, s)],
        }
    }

    #[track_caller]
    fn round_trip<T: Serialize + DeserializeOwned>(doc: &Value, name: &str) {
        for ex in examples(doc, name) {
            // From text, as clients send it (some fields deserialize borrowed).
            let typed: T = serde_json::from_str(&ex.to_string())
                .unwrap_or_else(|e| panic!("{name}: the document's example does not fit the type: {e}\n{ex:#}"));
            let back = serde_json::to_value(&typed).unwrap();
            assert_eq!(back, ex, "{name}: the type and the document differ (left: the type's JSON)");
        }
    }

    #[test]
    fn every_api_schema_matches_its_type_both_ways() {
        let d = doc();
        round_trip::<api::ErrorBody>(&d, "ErrorBody");
        round_trip::<UserName>(&d, "UserName");
        round_trip::<CaseId>(&d, "CaseId");
        round_trip::<RecordingId>(&d, "RecordingId");
        round_trip::<vault_core::trust::Signed>(&d, "Signed");
        round_trip::<api::ChallengeRequest>(&d, "ChallengeRequest");
        round_trip::<api::ChallengeResponse>(&d, "ChallengeResponse");
        round_trip::<api::LoginRequest>(&d, "LoginRequest");
        round_trip::<api::LoginResponse>(&d, "LoginResponse");
        round_trip::<api::NewUser>(&d, "NewUser");
        round_trip::<api::Cosignature>(&d, "Cosignature");
        round_trip::<api::Disabling>(&d, "Disabling");
        round_trip::<api::TrustInfo>(&d, "TrustInfo");
        round_trip::<api::UserInfo>(&d, "UserInfo");
        round_trip::<api::WorksCouncil>(&d, "WorksCouncil");
        round_trip::<api::CaseBasis>(&d, "CaseBasis");
        round_trip::<api::NewCase>(&d, "NewCase");
        round_trip::<Created<CaseId>>(&d, "CreatedCase");
        round_trip::<Done<CaseId>>(&d, "DoneCase");
        round_trip::<Done<UserName>>(&d, "DoneUser");
        round_trip::<Done<RecordingId>>(&d, "DoneRecording");
        round_trip::<Created<u32>>(&d, "CreatedVersion");
        round_trip::<api::GrantInfo>(&d, "GrantInfo");
        round_trip::<api::NotificationInfo>(&d, "NotificationInfo");
        round_trip::<api::DestroyedRecording>(&d, "DestroyedRecording");
        round_trip::<api::Reopening>(&d, "Reopening");
        round_trip::<api::CaseInfo>(&d, "CaseInfo");
        round_trip::<api::Closing>(&d, "Closing");
        round_trip::<api::Notice>(&d, "Notice");
        round_trip::<api::CaseRef>(&d, "CaseRef");
        round_trip::<api::NotificationDue>(&d, "NotificationDue");
        round_trip::<api::ReopenDue>(&d, "ReopenDue");
        round_trip::<api::PurgeDue>(&d, "PurgeDue");
        round_trip::<api::KindTotals>(&d, "KindTotals");
        round_trip::<api::Report>(&d, "Report");
        round_trip::<api::KeyEnvelope>(&d, "KeyEnvelope");
        round_trip::<api::Holder>(&d, "Holder");
        round_trip::<api::CaseKeyInfo>(&d, "CaseKeyInfo");
        round_trip::<api::WrappedKey>(&d, "WrappedKey");
        round_trip::<api::NewGrant>(&d, "NewGrant");
        round_trip::<api::GrantApproval>(&d, "GrantApproval");
        round_trip::<api::KeyDelivery>(&d, "KeyDelivery");
        round_trip::<api::NewCustodian>(&d, "NewCustodian");
        round_trip::<api::HolderEnvelope>(&d, "HolderEnvelope");
        round_trip::<api::Rotation>(&d, "Rotation");
        round_trip::<api::Reason>(&d, "Reason");
        round_trip::<api::Approval>(&d, "Approval");
        round_trip::<api::RecordingInfo>(&d, "RecordingInfo");
        round_trip::<api::RecordingSignature>(&d, "RecordingSignature");
        round_trip::<api::RecordingPage>(&d, "RecordingPage");
        round_trip::<api::CaseRecipient>(&d, "CaseRecipient");
        round_trip::<api::CallMeta>(&d, "CallMeta");
        round_trip::<vault_core::evidence::ExportRequest>(&d, "ExportRequest");
        round_trip::<vault_core::proof::SliceEntry>(&d, "SliceEntry");
        round_trip::<vault_core::evidence::Custody>(&d, "Custody");
        round_trip::<vault_core::proof::ProvenEntry>(&d, "ProvenEntry");
        round_trip::<vault_core::proof::InclusionProof>(&d, "InclusionProof");
        round_trip::<vault_core::proof::ConsistencyProof>(&d, "ConsistencyProof");
        round_trip::<vault_core::rotation::KeyTransition>(&d, "KeyTransition");
    }

    macro_rules! same_values {
        ($doc:expr, $($ty:ident),+) => {$(
            let listed: Vec<&str> = schema(&$doc, stringify!($ty))["enum"]
                .as_array()
                .expect(concat!(stringify!($ty), " lists its values"))
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let ours: Vec<&str> = api::$ty::ALL.iter().map(|v| v.as_str()).collect();
            assert_eq!(listed, ours, "{}: the document's values differ from the type's", stringify!($ty));
        )+};
    }

    #[test]
    fn every_enum_lists_exactly_the_types_values() {
        let d = doc();
        same_values!(d, Role, CaseKind, Purpose, Announcement, CaseStatus, Outcome, NotificationStatus, GrantStatus);
        // The error codes, as the server's one error type spells them.
        let source = include_str!("../error.rs");
        let mut codes: Vec<&str> = source.split("code: \"").skip(1).map(|s| s.split('"').next().unwrap()).collect();
        let mut listed: Vec<&str> = schema(&d, "ErrorBody")["properties"]["error"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        codes.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, codes, "ErrorBody.error: the document's codes differ from error.rs");
    }

    /// The query parameters of an operation, as the object the server deserializes them
    /// into.
    fn query_object(doc: &Value, path: &str, method: &str) -> Value {
        let op = &doc["paths"][path][method];
        let params = op["parameters"].as_array().unwrap_or_else(|| panic!("{method} {path} has no parameters"));
        Value::Object(
            params
                .iter()
                .filter(|p| p["in"] == "query")
                .map(|p| (p["name"].as_str().unwrap().to_owned(), example(doc, &p["schema"])))
                .collect(),
        )
    }

    #[test]
    fn query_parameters_match_their_types_both_ways() {
        let d = doc();
        for (path, method, check) in [
            ("/v1/cases/{id}/recordings", "post", round_trip_value::<api::UploadParams> as fn(&str, Value)),
            ("/v1/cases/{id}/recordings", "get", round_trip_value::<api::PageParams>),
        ] {
            check(&format!("{method} {path}"), query_object(&d, path, method));
        }
    }

    #[track_caller]
    fn round_trip_value<T: Serialize + DeserializeOwned>(what: &str, ex: Value) {
        let typed: T = serde_json::from_str(&ex.to_string())
            .unwrap_or_else(|e| panic!("{what}: the documented parameters do not fit the type: {e}\n{ex:#}"));
        assert_eq!(serde_json::to_value(&typed).unwrap(), ex, "{what}: the type and the documented parameters differ");
    }

    #[test]
    fn upload_and_fetch_document_every_vault_header() {
        let d = doc();
        let upload = &d["paths"]["/v1/cases/{id}/recordings"]["post"];
        let fetch = &d["paths"]["/v1/recordings/{id}/fetch"]["post"];
        let names = |v: &Value| -> Vec<String> {
            let mut out: Vec<String> = v["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "header")
                .map(|p| p["name"].as_str().unwrap().to_lowercase())
                .collect();
            if let Some(h) = v["responses"]["200"]["headers"].as_object() {
                out.extend(h.keys().map(|k| k.to_lowercase()));
            }
            out
        };
        let (up, fe) = (names(upload), names(fetch));
        for h in [api::HEADER_UPLOAD_LENGTH, api::HEADER_META, api::HEADER_CRC32] {
            assert!(up.contains(&h.to_owned()), "upload does not document {h}: {up:?}");
        }
        for h in [
            api::HEADER_ENVELOPE,
            api::HEADER_CASE_RECIPIENT,
            api::HEADER_KEY_STATEMENT,
            api::HEADER_STATEMENT,
            api::HEADER_SHA256,
            api::HEADER_META,
        ] {
            assert!(fe.contains(&h.to_owned()), "fetch does not document {h}: {fe:?}");
        }
    }

    #[test]
    fn fail_a_schema_that_differs_from_its_type_is_caught() {
        // The check itself can fail: a property the type lacks, and one it has but the
        // document does not.
        let mut d = doc();
        d["components"]["schemas"]["Reason"]["properties"]["extra"] = json!({"type": "string"});
        let extra = std::panic::catch_unwind(|| round_trip::<api::Reason>(&d, "Reason"));
        assert!(extra.is_err(), "an extra property went unnoticed");
        let mut d = doc();
        d["components"]["schemas"]["Approval"]["properties"].as_object_mut().unwrap().remove("date");
        let missing = std::panic::catch_unwind(|| round_trip::<api::Approval>(&d, "Approval"));
        assert!(missing.is_err(), "a missing optional property went unnoticed");
    }
}
