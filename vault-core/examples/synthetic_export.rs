//! Writes a synthetic access-log export for benchmarks and prints its verifier key:
//! `cargo run --release -p vault-core --example synthetic_export -- N FILE`.

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let path = args.next().unwrap_or_else(|| "synthetic.export".into());
    let f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let cp = vault_core::testlog::write_export(f, n)?;
    eprintln!("wrote {} entries to {path}", cp.size);
    println!("{}", vault_core::testlog::verifier_key().to_text());
    Ok(())
}
