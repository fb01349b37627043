//! The virtual card's command traces of the benchmark's flows, compared byte for byte with
//! `src/backend/tests/golden/apdu_traces.txt`: a restructuring of the module that changes what reaches the
//! card (an APDU more, another order, another form) fails here. After a deliberate change,
//! regenerate the file with `JPKI_UPDATE_GOLDEN=1 cargo test --lib backend::tests::traces` and review its
//! diff. Commands only (the card's answers hold random bytes: PSS salts, GET CHALLENGE); the PIN
//! bytes of VERIFY are masked by the card's log.

use crate::backend::tests::support::*;
use crate::backend::{self, Template};
use cryptoki_sys::*;
use std::fmt::Write;

const AUTH_SLOT: CK_SLOT_ID = 0;
const SIGN_SLOT: CK_SLOT_ID = 1;
const GOLDEN: &str = "src/backend/tests/golden/apdu_traces.txt";

/// The commands the card saw while `f` ran, one hex line each (power events kept).
fn trace(fx: &Fixture, f: impl FnOnce()) -> Vec<String> {
    fx.clear_log();
    f();
    fx.log()
        .into_iter()
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect()
}

fn find(h: CK_SESSION_HANDLE, t: Template) -> Vec<CK_OBJECT_HANDLE> {
    backend::find_objects_init(h, t).unwrap();
    let found = backend::find_objects(h, 100).unwrap();
    backend::find_objects_final(h).unwrap();
    found
}

fn private_key(h: CK_SESSION_HANDLE) -> CK_OBJECT_HANDLE {
    let class = CKO_PRIVATE_KEY.to_ne_bytes().to_vec();
    find(h, vec![(CKA_CLASS, class)])[0]
}

#[test]
fn apdu_traces_of_the_benchmark_flows_are_unchanged() {
    let fx = Fixture::new();
    let mut flows: Vec<(&str, Vec<String>)> = Vec::new();
    flows.push((
        "token listing",
        trace(&fx, || {
            backend::get_slot_list(true).unwrap();
            backend::get_token_info(AUTH_SLOT).unwrap();
            backend::get_token_info(SIGN_SLOT).unwrap();
        }),
    ));
    let a = fx.session(AUTH_SLOT);
    flows.push((
        "objects of the authentication token",
        trace(&fx, || {
            for o in find(a, vec![]) {
                let _ = backend::get_attribute_value(
                    a,
                    o,
                    &[CKA_CLASS, CKA_LABEL, CKA_ID, CKA_VALUE, CKA_MODULUS],
                );
            }
        }),
    ));
    flows.push((
        "wrong PIN",
        trace(&fx, || {
            assert!(backend::login(a, CKU_USER, Some(b"0000")).is_err());
        }),
    ));
    flows.push((
        "login and 2 signatures with the authentication key (PKCS#1, PSS)",
        trace(&fx, || {
            backend::login(a, CKU_USER, Some(b"1234")).unwrap();
            let key = private_key(a);
            backend::sign_init(a, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
            backend::sign(a, b"message").unwrap();
            backend::sign_init(a, &pss(CKM_SHA256_RSA_PKCS_PSS), key).unwrap();
            backend::sign(a, b"message").unwrap();
        }),
    ));
    let s = fx.session(SIGN_SLOT);
    flows.push((
        "login, certificate and 2 signatures with the signature key (context login each)",
        trace(&fx, || {
            backend::login(s, CKU_USER, Some(b"JPKITEST1")).unwrap();
            let cert = find(s, vec![(CKA_CLASS, CKO_CERTIFICATE.to_ne_bytes().to_vec())]);
            backend::get_attribute_value(s, cert[0], &[CKA_VALUE]).unwrap();
            let key = private_key(s);
            for _ in 0..2 {
                backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
                backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"JPKITEST1")).unwrap();
                backend::sign(s, b"message").unwrap();
            }
        }),
    ));
    flows.push((
        "random (32 bytes), logout, close",
        trace(&fx, || {
            backend::generate_random(a, 32).unwrap();
            backend::logout(a).unwrap();
            backend::logout(s).unwrap();
            backend::close_session(a).unwrap();
            backend::close_session(s).unwrap();
        }),
    ));
    let mut text = String::from(
        "# APDU commands per flow (src/backend/tests/traces.rs); VERIFY data masked\n",
    );
    for (name, cmds) in &flows {
        let _ = writeln!(text, "\n## {name} ({} APDUs)", cmds.len());
        for c in cmds {
            let _ = writeln!(text, "{c}");
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("JPKI_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        golden == text,
        "the APDU traces changed (regenerate {GOLDEN} with JPKI_UPDATE_GOLDEN=1 if that was \
         meant):\n{}",
        first_difference(&golden, &text)
    );
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: was {x:?}, now {y:?}", i + 1);
        }
    }
    format!(
        "{} lines before, {} now",
        a.lines().count(),
        b.lines().count()
    )
}
