//! In-process benchmarks of the core: envelope wrap and unwrap, streaming encryption
//! and decryption per MiB, entry encoding and hashing, and chain verification.
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
        b.iter_batched(|| &export[..], |r| verify(r, &key, None, true).unwrap(), BatchSize::LargeInput)
    });
    g.finish();
}

criterion_group!(benches, envelopes, streaming, log);
criterion_main!(benches);
