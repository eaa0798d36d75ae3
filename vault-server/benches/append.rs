//! The cost of appending access-log entries, without the fsync (which one group commit
//! shares among many requests; `bench/logged.sh` measures that end to end).
//!
//! `cargo bench -p vault-server`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vault_core::log::{Action, Outcome};
use vault_server::{Db, LogRecord, Store, append_to_log};

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(&dir.path().join("bench.db")).unwrap();
    const N: u64 = 1000;
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Elements(N));
    g.bench_function("append 1000 entries in one transaction", |b| {
        b.iter(|| {
            db.with(|conn| {
                let tx = conn.transaction().unwrap();
                let s = Store::new(&tx);
                for i in 0..N {
                    let rec = LogRecord::new("investigator07", Action::Fetch)
                        .case("case_0123456789abcdef0123456789abcdef")
                        .recording(format!("rec_{i:032x}"))
                        .reason("complaint 2026-117 follow-up");
                    append_to_log(&s, &rec, Outcome::Allowed).unwrap();
                }
                tx.commit().unwrap();
            })
        })
    });
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
