use super::*;

const VAULT: &str = "recording-vault/0123456789abcdef";

struct P {
    name: UserName,
    key: SigningKey,
}

fn person(name: &str) -> P {
    P { name: name.parse().unwrap(), key: SigningKey::from_identity(&age::x25519::Identity::generate()) }
}

fn enrol(issuer: &P, who: &P, role: Role) -> Signed {
    let e = Enrol {
        vault: VAULT.into(),
        name: who.name.clone(),
        role,
        id: who.key.public_id(),
        by: issuer.name.clone(),
        at: statement::now(),
    };
    Signed::sign(&e, &issuer.key)
}

struct World {
    alice: P,
    bob: P,
    carol: P,
    ivan: P,
    pbx: P,
    root: Root,
    certs: Vec<Signed>,
}

/// Root admins alice and bob; carol an admin enrolled by alice, approved by bob; ivan an
/// investigator and pbx a recorder, both enrolled by carol.
fn world() -> World {
    let (alice, bob, carol, ivan, pbx) =
        (person("alice"), person("bob"), person("carol"), person("ivan"), person("pbx"));
    let root = Root::new(
        VAULT.into(),
        vec![(alice.name.clone(), alice.key.public_id()), (bob.name.clone(), bob.key.public_id())],
    )
    .unwrap();
    let mut carol_cert = enrol(&alice, &carol, Role::Admin);
    carol_cert.cosign(&bob.name, &bob.key);
    // Out of order on purpose: the directory does not depend on the order it is given.
    let certs = vec![enrol(&carol, &ivan, Role::Investigator), enrol(&carol, &pbx, Role::Recorder), carol_cert];
    World { alice, bob, carol, ivan, pbx, root, certs }
}

fn dir(w: &World) -> Directory {
    Directory::build(&w.root, &w.certs, &[])
}

#[test]
fn root_text_round_trips_and_its_fingerprint_pins_every_byte() {
    let w = world();
    let back = Root::parse(&w.root.text()).unwrap();
    assert_eq!(back, w.root);
    assert!(w.root.fingerprint().starts_with("SHA256:"));
    let mut other = w.root.clone();
    other.admins.pop();
    assert_ne!(other.fingerprint(), w.root.fingerprint());
    let mut elsewhere = w.root.clone();
    elsewhere.vault.push('x');
    assert_ne!(elsewhere.fingerprint(), w.root.fingerprint());
    for bad in ["", "vault-trust-root/v1\nvault: x\n", "vault-trust-root/v1\nvault: x\nadmin: alice age1x\n"] {
        assert!(Root::parse(bad).is_err(), "{bad:?}");
    }
    let twice = format!("{}{}", w.root.text(), w.root.text().lines().nth(2).unwrap());
    assert!(Root::parse(&format!("{twice}\n")).is_err());
}

#[test]
fn certificates_chain_to_the_root_in_any_order() {
    let w = world();
    let d = dir(&w);
    assert_eq!(d.person(&w.ivan.name).unwrap().role, Role::Investigator);
    assert_eq!(d.person(&w.carol.name).unwrap().role, Role::Admin);
    assert_eq!(d.person(&w.pbx.name).unwrap().id, w.pbx.key.public_id());
    assert_eq!(d.person(&w.alice.name).unwrap().role, Role::Admin);
}

#[test]
fn fail_an_admin_enrolled_without_a_second_admin() {
    let mut w = world();
    let mallory = person("mallory");
    // alice alone enrols mallory as admin, then mallory enrols an investigator.
    w.certs.push(enrol(&w.alice, &mallory, Role::Admin));
    let stooge = person("stooge");
    w.certs.push(enrol(&mallory, &stooge, Role::Investigator));
    let d = dir(&w);
    let err = d.person(&mallory.name).unwrap_err().to_string();
    assert!(err.contains("second admin"), "{err}");
    assert!(d.person(&stooge.name).is_err());
    // Approving one's own enrolment, or approving as the issuer, does not count.
    let mut selfie = enrol(&w.alice, &mallory, Role::Admin);
    selfie.cosign(&mallory.name, &mallory.key);
    selfie.cosign(&w.alice.name, &w.alice.key);
    w.certs.push(selfie);
    assert!(dir(&w).person(&mallory.name).is_err());
}

#[test]
fn fail_tampered_forged_or_foreign_certificates() {
    let w = world();
    // Tampered: ivan promoted to admin after alice signed.
    let mut tampered = enrol(&w.carol, &person("eve"), Role::Investigator);
    tampered.statement = tampered.statement.replace("role: investigator", "role: auditor");
    // Forged: claims carol as issuer, signed by someone else.
    let eve = person("eve2");
    let mut forged = enrol(&w.carol, &eve, Role::Investigator);
    forged.signatures[0].sig = Signed::sign(&forged.parse::<Enrol>().unwrap(), &eve.key).signatures[0].sig.clone();
    // Foreign: a valid statement for another vault.
    let frank = person("frank");
    let mut e = enrol(&w.alice, &frank, Role::Investigator).parse::<Enrol>().unwrap();
    e.vault = "recording-vault/ffffffffffffffff".into();
    let foreign = Signed::sign(&e, &w.alice.key);
    // Unknown signer.
    let nobody = person("nobody");
    let unknown = enrol(&nobody, &person("gina"), Role::Investigator);
    let mut certs = w.certs.clone();
    certs.extend([tampered, forged, foreign, unknown]);
    let d = Directory::build(&w.root, &certs, &[]);
    assert!(d.person(&"eve".parse().unwrap()).unwrap_err().to_string().contains("does not verify"));
    assert!(d.person(&"eve2".parse().unwrap()).unwrap_err().to_string().contains("does not verify"));
    assert!(d.person(&frank.name).unwrap_err().to_string().contains("another") || d.person(&frank.name).is_err());
    assert!(d.person(&"gina".parse().unwrap()).unwrap_err().to_string().contains("nobody"));
    // The valid ones are unaffected.
    assert!(d.person(&w.ivan.name).is_ok());
}

#[test]
fn fail_a_disabled_signer_is_trusted_only_for_what_they_signed_before() {
    let w = world();
    let disabled_at = "2030-01-01T00:00:00Z";
    let off = Disable {
        vault: VAULT.into(),
        name: w.carol.name.clone(),
        id: w.carol.key.public_id(),
        by: w.alice.name.clone(),
        at: disabled_at.into(),
    };
    // carol enrols eve after she was disabled (her earlier enrolments stand).
    let eve = person("eve");
    let late =
        Enrol { at: "2030-01-02T00:00:00Z".into(), ..enrol(&w.carol, &eve, Role::Investigator).parse().unwrap() };
    let mut certs = w.certs.clone();
    certs.push(Signed::sign(&late, &w.carol.key));
    let d = Directory::build(&w.root, &certs, &[Signed::sign(&off, &w.alice.key)]);
    assert!(d.person(&w.carol.name).unwrap_err().to_string().contains("disabled"));
    assert!(d.person(&w.ivan.name).is_ok(), "ivan was enrolled by carol before she was disabled");
    let err = d.person(&eve.name).unwrap_err().to_string();
    assert!(err.contains("nothing they signed from then on is trusted"), "{err}");
    // A case key carol signed before stays valid; one she signed after does not.
    let c = case();
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let key = |at: &str| {
        let k = CaseKeyStatement {
            vault: VAULT.into(),
            case: c.clone(),
            kind: CaseKind::Customer,
            version: 1,
            recipient: recipient.clone(),
            by: w.carol.name.clone(),
            at: at.into(),
        };
        Signed::sign(&k, &w.carol.key)
    };
    assert!(d.check_case_key(&key("2029-12-31T23:59:59Z"), &c, 1, &recipient).is_ok());
    assert!(d.check_case_key(&key(disabled_at), &c, 1, &recipient).is_err());
    // A disable statement signed by a non-admin changes nothing.
    let by_ivan = Disable { by: w.ivan.name.clone(), ..off };
    let d = Directory::build(&w.root, &w.certs, &[Signed::sign(&by_ivan, &w.ivan.key)]);
    assert!(d.person(&w.carol.name).is_ok());
    assert!(d.person(&w.bob.name).is_ok());
}

fn case() -> CaseId {
    CaseId::random()
}

#[test]
fn case_keys_verify_only_for_their_case_version_and_recipient() {
    let w = world();
    let d = dir(&w);
    let c = case();
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let stmt = CaseKeyStatement {
        vault: VAULT.into(),
        case: c.clone(),
        kind: CaseKind::Covert,
        version: 1,
        recipient: recipient.clone(),
        by: w.carol.name.clone(),
        at: statement::now(),
    };
    let signed = Signed::sign(&stmt, &w.carol.key);
    assert_eq!(d.check_case_key(&signed, &c, 1, &recipient).unwrap().kind, CaseKind::Covert);
    let other_recipient = age::x25519::Identity::generate().to_public().to_string();
    assert!(d.check_case_key(&signed, &c, 1, &other_recipient).unwrap_err().to_string().contains("not the one"));
    assert!(d.check_case_key(&signed, &c, 2, &recipient).is_err());
    assert!(d.check_case_key(&signed, &case(), 1, &recipient).is_err());
    // Signed by an investigator: not a custodian's word.
    let by_ivan = Signed::sign(&CaseKeyStatement { by: w.ivan.name.clone(), ..stmt.clone() }, &w.ivan.key);
    assert!(d.check_case_key(&by_ivan, &c, 1, &recipient).unwrap_err().to_string().contains("not admin"));
    // A statement whose signature list names one signer but holds another's signature.
    let mut swapped = signed.clone();
    swapped.signatures[0].by = w.alice.name.clone();
    assert!(d.check_case_key(&swapped, &c, 1, &recipient).is_err());
}

#[test]
fn grants_need_the_grantees_key_an_unexpired_date_and_on_covert_cases_a_second_admin() {
    let w = world();
    let d = dir(&w);
    let c = case();
    let today: NaiveDate = "2026-11-29".parse().unwrap();
    let g = GrantStatement {
        vault: VAULT.into(),
        case: c.clone(),
        name: w.ivan.name.clone(),
        id: w.ivan.key.public_id(),
        until: Some("2026-12-31".parse().unwrap()),
        by: w.carol.name.clone(),
        at: statement::now(),
    };
    let mut signed = Signed::sign(&g, &w.carol.key);
    assert!(d.check_grant(&signed, &c, CaseKind::Customer, today).is_ok());
    let err = d.check_grant(&signed, &c, CaseKind::Covert, today).unwrap_err().to_string();
    assert!(err.contains("approval"), "{err}");
    // The grantee approving their own grant does not count; another admin does.
    signed.cosign(&w.ivan.name, &w.ivan.key);
    assert!(d.check_grant(&signed, &c, CaseKind::Covert, today).is_err());
    signed.cosign(&w.carol.name, &w.carol.key);
    assert!(d.check_grant(&signed, &c, CaseKind::Covert, today).is_err());
    signed.cosign(&w.bob.name, &w.bob.key);
    assert!(d.check_grant(&signed, &c, CaseKind::Covert, today).is_ok());
    // Expired.
    let late: NaiveDate = "2027-01-01".parse().unwrap();
    assert!(d.check_grant(&signed, &c, CaseKind::Covert, late).unwrap_err().to_string().contains("expired"));
    // For a key that is not ivan's.
    let other = Signed::sign(&GrantStatement { id: w.pbx.key.public_id(), ..g.clone() }, &w.carol.key);
    assert!(d.check_grant(&other, &c, CaseKind::Customer, today).unwrap_err().to_string().contains("another key"));
    // To oneself.
    let selfish =
        Signed::sign(&GrantStatement { name: w.carol.name.clone(), by: w.carol.name.clone(), ..g }, &w.carol.key);
    assert!(d.check_grant(&selfish, &c, CaseKind::Customer, today).is_err());
}

#[test]
fn recordings_verify_only_with_their_hash_size_and_a_recorders_signature() {
    let w = world();
    let d = dir(&w);
    let c = case();
    let sha = hex::encode(crate::sha256(b"ciphertext"));
    let rid = crate::ids::RecordingId::random();
    let r = RecordingStatement {
        vault: VAULT.into(),
        case: c.clone(),
        recording: rid.clone(),
        version: 2,
        sha256: sha.clone(),
        size: 10,
        recorded_at: "2026-11-29T04:00:00Z".into(),
        announced: crate::api::Announcement::SignalTone,
        by: w.pbx.name.clone(),
        at: statement::now(),
    };
    let signed = Signed::sign(&r, &w.pbx.key);
    assert_eq!(d.check_recording(&signed, &rid, &c, 2, &sha, 10).unwrap().by, w.pbx.name);
    let other_sha = hex::encode(crate::sha256(b"fabricated"));
    assert!(
        d.check_recording(&signed, &rid, &c, 2, &other_sha, 10)
            .unwrap_err()
            .to_string()
            .contains("not what pbx signed")
    );
    assert!(d.check_recording(&signed, &rid, &c, 2, &sha, 11).is_err());
    assert!(d.check_recording(&signed, &rid, &c, 1, &sha, 10).is_err());
    // The same signed recording passed off under another id.
    let other_id = crate::ids::RecordingId::random();
    assert!(d.check_recording(&signed, &other_id, &c, 2, &sha, 10).unwrap_err().to_string().contains("not rec_"));
    // Signed by an admin instead of a recorder.
    let by_admin = Signed::sign(&RecordingStatement { by: w.alice.name.clone(), ..r }, &w.alice.key);
    assert!(d.check_recording(&by_admin, &rid, &c, 2, &sha, 10).unwrap_err().to_string().contains("not recorder"));
}

#[test]
fn statements_refuse_extra_missing_reordered_or_padded_lines() {
    let w = world();
    let good = enrol(&w.alice, &w.ivan, Role::Investigator).statement;
    assert!(Enrol::parse(&good).is_ok());
    let cases = [
        good.replace("role: investigator\n", ""),
        format!("{good}extra: 1\n"),
        good.replace("role: investigator", "role:  investigator"),
        good.replace("\n", "\r\n"),
        good.trim_end().to_owned(),
        good.replace("type: enrol", "type: disable"),
    ];
    for bad in cases {
        assert!(Enrol::parse(&bad).is_err(), "{bad:?}");
    }
    assert!(Disable::parse(&good).is_err());
}

#[test]
fn fail_enrolments_that_vouch_for_each_other_in_a_loop_prove_nothing() {
    let mut w = world();
    let (m1, m2) = (person("m1"), person("m2"));
    // Each "enrols" the other as admin, each approved by the other: no path to the root.
    let mut a = enrol(&m1, &m2, Role::Admin);
    a.cosign(&m1.name, &m1.key);
    let mut b = enrol(&m2, &m1, Role::Admin);
    b.cosign(&m2.name, &m2.key);
    w.certs.extend([a, b, enrol(&m1, &person("m3"), Role::Investigator)]);
    let d = dir(&w);
    assert!(d.person(&m1.name).is_err());
    assert!(d.person(&m2.name).is_err());
    assert!(d.person(&"m3".parse().unwrap()).is_err());
    assert!(d.person(&w.ivan.name).is_ok());
}

#[test]
fn fail_two_valid_enrolments_of_one_name_with_different_keys_make_it_doubtful() {
    let mut w = world();
    // carol (a real admin) enrols a second "ivan" with another key.
    let other = P { name: w.ivan.name.clone(), key: SigningKey::from_identity(&age::x25519::Identity::generate()) };
    w.certs.push(enrol(&w.carol, &other, Role::Investigator));
    let err = dir(&w).person(&w.ivan.name).unwrap_err().to_string();
    assert!(err.contains("two enrolments with different keys"), "{err}");
    // A root admin keeps the root's key whatever enrolment names them.
    let fake_alice = P { name: w.alice.name.clone(), key: other.key };
    w.certs.push(enrol(&w.carol, &fake_alice, Role::Admin));
    assert_eq!(dir(&w).person(&w.alice.name).unwrap().id, w.alice.key.public_id());
}
