//! APDU counts of this module's user flows (issue #6), through OpenSC's `pkcs11-tool` and the
//! `cryptoki` crate, against the virtual card behind pcscd, each flow from a cold card.
//!
//! Counts are deterministic (the virtual card's log), so they may be asserted; times are not
//! (the benchmark, `bench/run.sh`, measures them). The targets that the module meets
//! are asserted (a regression fails the test); the others are printed, not asserted.
//! `cargo test --test apdu_counts -- --nocapture` shows the table.

mod common;

use common::{module_path, VCard};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const AUTH: &str = "JPKI User Authentication";
const SIGN: &str = "JPKI Digital Signature";
/// Signatures in the one-session flow of this test (the benchmark does 100).
const SIGNATURES: usize = 5;

/// Waits until pcscd has powered the idle card off (the log's last power event), as the
/// benchmark does before each flow: every flow starts from a cold card.
fn cold(card: &VCard) {
    let start = Instant::now();
    loop {
        let last = card.log().into_iter().rfind(|l| l.starts_with("# "));
        if last.as_deref() != Some("# power on") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "pcscd did not power the idle card off within 5 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs pkcs11-tool from a cold card; (success, output, APDUs sent).
fn tool(card: &VCard, args: &[&str]) -> (bool, String, usize) {
    cold(card);
    card.clear_log();
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module_path())
        .args(args)
        .output()
        .expect("run pkcs11-tool (Debian package opensc)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, card.apdu_count())
}

fn tool_ok(card: &VCard, what: &str, args: &[&str]) -> (String, usize) {
    let (ok, text, n) = tool(card, args);
    assert!(ok, "{what}: pkcs11-tool {args:?} failed:\n{text}");
    (text, n)
}

/// Verifies a SHA-256 PKCS#1 v1.5 signature over `msg` with the certificate, by openssl.
fn openssl_verify(card: &VCard, what: &str, cert: &str, msg: &Path, sig: &Path) {
    eprintln!("{what}: verifying the signature with {cert}.crt");
    common::openssl_verify(&card.state_dir.join(format!("{cert}.crt")), msg, sig, false);
}

/// The slot ids of the test card's two tokens (authentication, signature). The flows select
/// their token by slot id (`--slot`), as the benchmark does: `--token-label` would add a
/// `C_GetTokenInfo` (and its APDUs) for every token scanned.
fn slot_ids(card: &VCard) -> (String, String) {
    let p = Pkcs11::new(module_path()).expect("load the module");
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let (auth, sign) = common::token_slots(&p, &card.reader);
    p.finalize().unwrap();
    (auth.id().to_string(), sign.id().to_string())
}

/// `SIGNATURES` signatures in one session with the authentication key, through `cryptoki`:
/// (APDUs of load + C_Initialize + C_Login, APDUs of each signature). Writes the signature.
fn one_session(card: &VCard, msg: &[u8], sig_out: &Path) -> (usize, Vec<usize>) {
    cold(card);
    card.clear_log();
    let p = Pkcs11::new(module_path()).expect("load the module");
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let slot = common::token_slot(&p, &card.reader, AUTH)
        .expect("the authentication token of the test card");
    let s = p.open_ro_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::from("1234")))
        .expect("C_Login");
    let key = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])
        .unwrap()[0];
    let before = card.apdu_count();
    let mut per_sig = vec![];
    let mut first = None;
    for i in 0..SIGNATURES {
        let n = card.apdu_count();
        let sig = s
            .sign(&Mechanism::Sha256RsaPkcs, key, msg)
            .unwrap_or_else(|e| panic!("signature {}: {e}", i + 1));
        per_sig.push(card.apdu_count() - n);
        match &first {
            None => first = Some(sig),
            Some(f) => assert_eq!(f, &sig, "PKCS#1 v1.5 signatures of one message are equal"),
        }
    }
    drop(s);
    p.finalize().unwrap();
    std::fs::write(sig_out, first.unwrap()).unwrap();
    (before, per_sig)
}

struct Row {
    flow: &'static str,
    apdus: usize,
    target: usize,
    /// Whether the target is asserted (met when this test was written; a regression fails).
    asserted: bool,
}

#[test]
fn apdu_counts_of_the_user_flows() {
    let _g = common::lock();
    let card = VCard::start();
    let msg = card.state_dir.join("msg.txt");
    std::fs::write(&msg, b"a document\n").unwrap();
    let msg_s = msg.to_str().unwrap();
    let sig = card.state_dir.join("sig.bin");
    let sig_s = sig.to_str().unwrap();
    let mut rows = vec![];
    let (auth_slot, sign_slot) = slot_ids(&card);
    let (auth_slot, sign_slot) = (auth_slot.as_str(), sign_slot.as_str());

    let (list, n) = tool_ok(&card, "token listing", &["-L"]);
    assert!(list.contains(AUTH) && list.contains(SIGN), "{list}");
    rows.push(Row {
        flow: "token listing (-L)",
        apdus: n,
        target: 6,
        asserted: true,
    });

    let (objs, n) = tool_ok(&card, "objects, auth", &["--slot", auth_slot, "-O"]);
    assert!(
        objs.contains("Certificate Object") && !objs.contains("Private Key Object"),
        "{objs}"
    );
    rows.push(Row {
        flow: "object listing, authentication token",
        apdus: n,
        target: 18,
        asserted: true,
    });

    let (objs, n_objs_sign) = tool_ok(&card, "objects, sign", &["--slot", sign_slot, "-O"]);
    assert!(objs.contains("Certificate Object"), "{objs}");

    for (flow, slot, pin, id, cert, target) in [
        (
            "login + 1 signature, authentication key",
            auth_slot,
            "1234",
            "01",
            "auth",
            12,
        ),
        (
            "login + 1 signature, signature key",
            sign_slot,
            "JPKITEST1",
            "02",
            "sign",
            14,
        ),
    ] {
        let _ = std::fs::remove_file(&sig);
        let (_, n) = tool_ok(
            &card,
            flow,
            &[
                "--slot",
                slot,
                "--login",
                "--pin",
                pin,
                "--sign",
                "--id",
                id,
                "-m",
                "SHA256-RSA-PKCS",
                "-i",
                msg_s,
                "-o",
                sig_s,
            ],
        );
        openssl_verify(&card, flow, cert, &msg, &sig);
        rows.push(Row {
            flow,
            apdus: n,
            target,
            asserted: false,
        });
    }

    let (login_apdus, per_sig) = one_session(&card, b"a document\n", &sig);
    openssl_verify(&card, "one session", "auth", &msg, &sig);
    let further = &per_sig[1..];
    assert!(
        further.iter().all(|n| *n == further[0]),
        "every further signature sends the same APDUs: {per_sig:?}"
    );
    rows.push(Row {
        flow: "each further signature in one session",
        apdus: further[0],
        target: 4,
        asserted: true,
    });

    let (ok, text, n_wrong) = tool(
        &card,
        &[
            "--slot",
            auth_slot,
            "--login",
            "--pin",
            "9999",
            "--sign",
            "--id",
            "01",
            "-m",
            "SHA256-RSA-PKCS",
            "-i",
            msg_s,
            "-o",
            sig_s,
        ],
    );
    assert!(
        !ok && text.contains("CKR_PIN_INCORRECT"),
        "wrong PIN: {text}"
    );
    assert_eq!(
        card.tries_left(),
        (2, 5),
        "a wrong PIN costs exactly one try"
    );
    let (_, _) = tool_ok(
        &card,
        "correct login after a wrong PIN",
        &["--slot", auth_slot, "--login", "--pin", "1234", "-O"],
    );
    assert_eq!(
        card.tries_left(),
        (3, 5),
        "a correct PIN restores the tries"
    );

    println!("APDUs of this module's flows (cold card each):");
    println!("  {:<45} {:>6} {:>8}", "flow", "APDUs", "target");
    for r in &rows {
        let state = match (r.apdus <= r.target, r.asserted) {
            (true, true) => "met (asserted)",
            (true, false) => "met",
            (false, _) => "NOT met",
        };
        println!(
            "  {:<45} {:>6} {:>8}  {state}",
            r.flow,
            r.apdus,
            format!("≤ {}", r.target)
        );
    }
    println!(
        "  {:<45} {:>6}",
        "object listing, signature token", n_objs_sign
    );
    println!(
        "  {:<45} {:>6}",
        "load + C_Initialize + C_Login (cryptoki)", login_apdus
    );
    println!("  {:<45} {:>6}", "wrong PIN (login + sign)", n_wrong);
    println!("  signatures in one session: {per_sig:?}");

    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.asserted && r.apdus > r.target)
        .map(|r| format!("{}: {} APDUs, target ≤ {}", r.flow, r.apdus, r.target))
        .collect();
    assert!(
        failed.is_empty(),
        "APDU targets met before are missed now:\n{}\n(log of the last flow: {:?})",
        failed.join("\n"),
        card.log()
    );
}
