#![no_main]
//! cargo-fuzz target; the logic is in `fuzz/targets/` (shared with the replay test
//! `tests/fuzz_replay.rs`).

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::pkcs11_calls(data));
