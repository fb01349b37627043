//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/*`) through the same target
//! functions cargo-fuzz runs (`fuzz/targets/mod.rs`), on stable Rust, as part of the normal
//! test suite: `cargo test --test fuzz_replay`. Fuzzing itself (nightly features):
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> fuzz/corpus/<target> -- -max_total_time=600`.

#[path = "../fuzz/targets/mod.rs"]
mod targets;

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    for p in &files {
        let data = std::fs::read(p).unwrap();
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{target}: corpus file {} fails", p.display());
    }
    eprintln!("{target}: {} corpus files replayed", files.len());
}

#[test]
fn replay_cert_parse() {
    replay("cert_parse", targets::cert_parse);
}

#[test]
fn replay_apdu_responses() {
    replay("apdu_responses", targets::apdu_responses);
}

#[test]
fn replay_pkcs11_calls() {
    replay("pkcs11_calls", targets::pkcs11_calls);
}
