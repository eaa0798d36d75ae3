//! In-process benchmarks of the core: envelope wrap and unwrap, streaming encryption
//! and decryption per MiB, entry encoding and hashing, chain verification, and the
//! signed-trust work an upload and a fetch add (deriving the signing key, signing,
//! checking the directory of people and a statement).
//!
//! `cargo bench -p vault-core`; see BENCHMARKS.md for the latest figures.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vault_core::crypto::{CaseKey, decrypt_stream, encrypt_stream};
use vault_core::export::verify;
use vault_core::testlog;

fn envelopes(c: &mut Criterion) {
    let key = CaseKey::generate();
    let person = age::x25519::Identity::generate();
    let env = key.wrap_to(&person.to_public());
    let recipient = key.recipient();
    c.bench_function("envelope/wrap", |b| b.iter(|| key.wrap_to(black_box(&person.to_public()))));
    c.bench_function("envelope/unwrap", |b| b.iter(|| CaseKey::unwrap(black_box(&env), &person, &recipient).unwrap()));
}

fn streaming(c: &mut Criterion) {
    let id = age::x25519::Identity::generate();
    let data = vec![0x5au8; 16 << 20];
    let mut ct = Vec::with_capacity(data.len() + 4096);
    encrypt_stream(&id.to_public(), &mut &data[..], &mut ct).unwrap();
    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("encrypt 16 MiB", |b| {
        b.iter(|| encrypt_stream(&id.to_public(), &mut &data[..], std::io::sink()).unwrap())
    });
    g.bench_function("decrypt 16 MiB", |b| b.iter(|| decrypt_stream(&id, &ct[..], &mut std::io::sink()).unwrap()));
    g.finish();
}

fn log(c: &mut Criterion) {
    let e = testlog::entry(123_456);
    let prev = [1u8; 32];
    let mut scratch = Vec::with_capacity(512);
    c.bench_function("log/encode+hash one entry", |b| b.iter(|| e.chain_hash(black_box(&prev), &mut scratch)));

    let n = 1_000_000u64;
    let mut export = Vec::new();
    testlog::write_export(&mut export, n).unwrap();
    let key = testlog::verifier_key();
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("export of 1M entries", |b| {
        b.iter_batched(|| &export[..], |r| verify(r, &key, None).unwrap(), BatchSize::LargeInput)
    });
    g.finish();
}

/// What signed trust adds to one upload or fetch, with a directory of `PEOPLE` enrolments
/// (every client checks all of them from the root on each command).
fn trust(c: &mut Criterion) {
    use vault_core::api::{Announcement, CaseKind, Role};
    use vault_core::ids::{CaseId, RecordingId};
    use vault_core::trust::{
        CaseKeyStatement, Directory, Enrol, RecordingStatement, Root, Signed, SigningKey, statement,
    };
    const PEOPLE: usize = 100;
    let vault = "recording-vault/0123456789abcdef".to_owned();
    let key = |_: usize| SigningKey::from_identity(&age::x25519::Identity::generate());
    let (alice, bob) = (key(0), key(1));
    let root = Root::new(
        vault.clone(),
        vec![("alice".parse().unwrap(), alice.public_id()), ("bob".parse().unwrap(), bob.public_id())],
    )
    .unwrap();
    let people: Vec<(String, SigningKey)> = (0..PEOPLE).map(|i| (format!("p{i}"), key(i))).collect();
    let certs: Vec<Signed> = people
        .iter()
        .map(|(name, k)| {
            let e = Enrol {
                vault: vault.clone(),
                name: name.parse().unwrap(),
                role: Role::Recorder,
                id: k.public_id(),
                by: "alice".parse().unwrap(),
                at: statement::now(),
            };
            Signed::sign(&e, &alice)
        })
        .collect();
    let case = CaseId::random();
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let key_statement = Signed::sign(
        &CaseKeyStatement {
            vault: vault.clone(),
            case: case.clone(),
            kind: CaseKind::Covert,
            version: 1,
            recipient: recipient.clone(),
            by: "alice".parse().unwrap(),
            at: statement::now(),
        },
        &alice,
    );
    let rid = RecordingId::random();
    let sha = "ab".repeat(32);
    let rec = RecordingStatement {
        vault: vault.clone(),
        case: case.clone(),
        recording: rid.clone(),
        version: 1,
        sha256: sha.clone(),
        size: 1 << 30,
        recorded_at: "2026-11-29T10:00:00.000Z".into(),
        announced: Announcement::None,
        by: "p7".parse().unwrap(),
        at: statement::now(),
    };
    let identity = age::x25519::Identity::generate();
    let recorder = &people[7].1;
    let signed_rec = Signed::sign(&rec, recorder);
    let dir = Directory::build(&root, &certs, &[]);
    let mut g = c.benchmark_group("trust");
    g.bench_function("derive the signing key", |b| b.iter(|| SigningKey::from_identity(black_box(&identity))));
    g.bench_function("sign a recording statement", |b| b.iter(|| Signed::sign(black_box(&rec), recorder)));
    g.bench_function(format!("a fetch's checks, {PEOPLE} people enrolled"), |b| {
        b.iter(|| {
            let dir = Directory::build(black_box(&root), &certs, &[]);
            dir.check_case_key(&key_statement, &case, 1, &recipient).unwrap();
            dir.check_recording(&signed_rec, &rid, &case, 1, &sha, 1 << 30).unwrap();
        })
    });
    g.bench_function("check a case-key statement", |b| {
        b.iter(|| dir.check_case_key(black_box(&key_statement), &case, 1, &recipient).unwrap())
    });
    g.bench_function("check a recording statement", |b| {
        b.iter(|| dir.check_recording(black_box(&signed_rec), &rid, &case, 1, &sha, 1 << 30).unwrap())
    });
    g.finish();
}

/// Checking an inclusion proof (one entry of a log of about a million) and a consistency
/// proof between two sizes of it: what an auditor pays per entry it reads, and per pin.
fn merkle(c: &mut Criterion) {
    use vault_core::merkle;
    let leaves: Vec<merkle::Hash> = (0u64..1_000_003).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
    let (size, index, first) = (leaves.len() as u64, 123_457, 900_001);
    let head = merkle::root(&leaves);
    let first_head = merkle::root(&leaves[..first as usize]);
    let inclusion = merkle::inclusion_proof(&leaves[..], index, size).unwrap();
    let consistency = merkle::consistency_proof(&leaves[..], first, size).unwrap();
    let mut g = c.benchmark_group("merkle");
    g.bench_function("verify inclusion, 1M leaves", |b| {
        b.iter(|| merkle::verify_inclusion(index, size, &leaves[index as usize], &inclusion, &head).unwrap())
    });
    g.bench_function("verify consistency, 900k to 1M leaves", |b| {
        b.iter(|| merkle::verify_consistency(first, size, &first_head, &head, &consistency).unwrap())
    });
    g.finish();
}

criterion_group!(benches, envelopes, streaming, log, trust, merkle);
criterion_main!(benches);
