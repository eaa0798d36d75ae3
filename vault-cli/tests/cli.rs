//! The command line's texts, pinned as snapshot files under `tests/cmd/`: help for the
//! commands and the error messages that need no server, with their exit statuses. Each
//! case runs in an empty environment and, where it may touch files, a sandbox directory.
//!
//! After an intended change of a text, `TRYCMD=overwrite cargo test -p vault-cli --test cli`
//! rewrites the snapshots; review the diff.

#[test]
fn cli_snapshots() {
    trycmd::TestCases::new().case("tests/cmd/*.toml");
}
