//! OpenSC's PKCS#11 module (its JPKI driver) against the virtual card behind pcscd, driven with
//! `pkcs11-tool`. This checks the virtual card against an independent, real-world client.
//! Needs pcscd + vsmartcard-vpcd + opensc + openssl; panics (never skips) when they are missing.

mod common;

use common::{lock, VCard};
use jpki_vcard::{DEFAULT_AUTH_PIN, DEFAULT_SIGN_PIN};
use std::path::{Path, PathBuf};
use std::process::Command;

const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
const AUTH_TOKEN: &str = "JPKI (User Authentication PIN)";
const SIGN_TOKEN: &str = "JPKI (Digital Signature PIN)";

/// Runs pkcs11-tool with OpenSC's module; returns (success, stdout + stderr).
fn pkcs11_tool(args: &[&str]) -> (bool, String) {
    assert!(
        Path::new(OPENSC).exists(),
        "{OPENSC} is missing: install the Debian package `opensc`"
    );
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(OPENSC)
        .args(args)
        .output()
        .expect("run pkcs11-tool (Debian package `opensc`)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn pkcs11_tool_ok(args: &[&str]) -> String {
    let (ok, text) = pkcs11_tool(args);
    assert!(ok, "pkcs11-tool {args:?} failed:\n{text}");
    text
}

/// A scratch file next to the card's state.
fn scratch(card: &VCard, name: &str) -> PathBuf {
    card.state_dir.join(name)
}

/// Verifies a SHA-256 PKCS#1 v1.5 signature over `data` with the certificate's key, with openssl.
fn openssl_verify(card: &VCard, cert: &str, data: &Path, sig: &Path) {
    common::openssl_verify(&scratch(card, &format!("{cert}.crt")), data, sig, false);
}

#[test]
fn lists_both_tokens_and_objects() {
    let _l = lock();
    let card = VCard::start();
    card.clear_log();
    let list = pkcs11_tool_ok(&["-L"]);
    let list_apdus = card.apdu_count();
    assert!(list.contains(AUTH_TOKEN), "{list}");
    assert!(list.contains(SIGN_TOKEN), "{list}");
    assert!(list.contains(&card.reader), "{list}");

    card.clear_log();
    let objects = pkcs11_tool_ok(&["--token-label", AUTH_TOKEN, "-O"]);
    let objects_apdus = card.apdu_count();
    for label in [
        "User Authentication Certificate",
        "User Authentication Certificate CA",
        "Digital Signature Certificate CA",
    ] {
        assert!(
            objects.contains(&format!("label:      {label}\n")),
            "{label}: {objects}"
        );
    }
    // The signature certificate needs the password: not public.
    assert!(
        !objects.contains("label:      Digital Signature Certificate\n"),
        "{objects}"
    );
    assert!(
        objects.contains("C=JP, O=JPKI, OU=JPKI for user authentication"),
        "{objects}"
    );
    // No PIN was presented, and no VERIFY with data was sent.
    assert!(
        card.log().iter().all(|l| !l.starts_with("0020008004")),
        "{:?}",
        card.log()
    );
    println!("OpenSC APDUs: -L {list_apdus}, -O {objects_apdus}");
}

#[test]
fn signs_with_the_authentication_key() {
    let _l = lock();
    let card = VCard::start();
    let data = scratch(&card, "data.txt");
    let sig = scratch(&card, "auth.sig");
    std::fs::write(&data, b"signed by the virtual card's authentication key\n").unwrap();
    card.clear_log();
    pkcs11_tool_ok(&[
        "--token-label",
        AUTH_TOKEN,
        "--login",
        "--pin",
        DEFAULT_AUTH_PIN,
        "--sign",
        "-m",
        "SHA256-RSA-PKCS",
        "--id",
        "01",
        "-i",
        data.to_str().unwrap(),
        "-o",
        sig.to_str().unwrap(),
    ]);
    let apdus = card.apdu_count();
    let log = card.log();
    assert!(
        log.contains(&"0020008004******** 9000".to_string()),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.starts_with("802A00803330")),
        "DigestInfo signed: {log:?}"
    );
    assert_eq!(std::fs::metadata(&sig).unwrap().len(), 256);
    openssl_verify(&card, "auth", &data, &sig);
    assert_eq!(card.tries_left(), (3, 5));
    println!("OpenSC APDUs: login + sign (auth) {apdus}");
}

#[test]
fn signs_with_the_signature_key() {
    let _l = lock();
    let card = VCard::start();
    let data = scratch(&card, "data.txt");
    let sig = scratch(&card, "sign.sig");
    std::fs::write(&data, b"signed by the virtual card's signature key\n").unwrap();
    card.clear_log();
    // RSA-PKCS over a SHA-256 DigestInfo made by openssl.
    let digest_info = scratch(&card, "digest-info.bin");
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .arg(&data)
        .output()
        .expect("run openssl");
    assert!(out.status.success());
    let mut di = hex_bytes("3031300d060960864801650304020105000420");
    di.extend_from_slice(&out.stdout);
    std::fs::write(&digest_info, &di).unwrap();
    pkcs11_tool_ok(&[
        "--token-label",
        SIGN_TOKEN,
        "--login",
        "--pin",
        DEFAULT_SIGN_PIN,
        "--sign",
        "-m",
        "RSA-PKCS",
        "--id",
        "02",
        "-i",
        digest_info.to_str().unwrap(),
        "-o",
        sig.to_str().unwrap(),
    ]);
    let apdus = card.apdu_count();
    let log = card.log();
    let verify = format!(
        "00200080{:02X}{} 9000",
        DEFAULT_SIGN_PIN.len(),
        "*".repeat(2 * DEFAULT_SIGN_PIN.len())
    );
    assert!(log.contains(&verify), "{log:?}");
    assert!(
        log.iter().any(|l| l.starts_with("00A4020C02001A 9000")),
        "{log:?}"
    );
    openssl_verify(&card, "sign", &data, &sig);
    println!("OpenSC APDUs: login + sign (sign key, RSA-PKCS) {apdus}");

    // With the password verified the signature certificate becomes readable.
    card.clear_log();
    let objects = pkcs11_tool_ok(&[
        "--token-label",
        SIGN_TOKEN,
        "--login",
        "--pin",
        DEFAULT_SIGN_PIN,
        "-O",
    ]);
    assert!(
        objects.contains("label:      Digital Signature Certificate\n"),
        "{objects}"
    );
    assert!(card
        .log()
        .iter()
        .any(|l| l.starts_with("00B0") && !l.ends_with("6982")));
}

#[test]
fn wrong_pin_uses_a_try() {
    let _l = lock();
    let card = VCard::start();
    let data = scratch(&card, "data.txt");
    std::fs::write(&data, b"x").unwrap();
    let sign_args = |token: &'static str, pin: &'static str, id: &'static str| {
        vec![
            "--token-label".to_string(),
            token.into(),
            "--login".into(),
            "--pin".into(),
            pin.into(),
            "--sign".into(),
            "-m".into(),
            "SHA256-RSA-PKCS".into(),
            "--id".into(),
            id.into(),
            "-i".into(),
            data.to_str().unwrap().into(),
            "-o".into(),
            scratch(&card, "x.sig").to_str().unwrap().into(),
        ]
    };
    let run = |args: Vec<String>| pkcs11_tool(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let (ok, text) = run(sign_args(AUTH_TOKEN, "9999", "01"));
    assert!(!ok, "a wrong PIN must fail: {text}");
    assert!(text.contains("CKR_PIN_INCORRECT"), "{text}");
    assert_eq!(card.tries_left(), (2, 5));
    let (ok, text) = run(sign_args(SIGN_TOKEN, "WRONGPW1", "02"));
    assert!(!ok, "{text}");
    assert_eq!(card.tries_left(), (2, 4));
    // The right PIN resets the counter.
    let (ok, text) = run(sign_args(AUTH_TOKEN, DEFAULT_AUTH_PIN, "01"));
    assert!(ok, "{text}");
    assert_eq!(card.tries_left(), (3, 4));
}

#[test]
fn card_survives_removal_and_reinsertion() {
    let _l = lock();
    let mut card = VCard::start();
    let cert = card.cert("auth");
    let (ok, _) = pkcs11_tool(&[
        "--token-label",
        AUTH_TOKEN,
        "--login",
        "--pin",
        "0000",
        "--sign",
        "-m",
        "SHA256-RSA-PKCS",
        "--id",
        "01",
        "-i",
        "/dev/null",
        "-o",
        "/dev/null",
    ]);
    assert!(!ok);
    card.remove();
    let (_, list) = pkcs11_tool(&["-L"]);
    assert!(!list.contains(AUTH_TOKEN), "card removed: {list}");
    card.insert();
    assert_eq!(card.cert("auth"), cert);
    assert_eq!(card.tries_left(), (2, 5), "the counter survives a restart");
    let list = pkcs11_tool_ok(&["-L"]);
    assert!(list.contains(AUTH_TOKEN), "{list}");
    assert!(card.log().iter().filter(|l| *l == "# power on").count() >= 2);
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn two_cards_in_two_readers() {
    let _l = lock();
    let first = VCard::start();
    let dir = first.state_dir.with_extension("second");
    let _ = std::fs::remove_dir_all(&dir);
    let second = VCard::start_with(&dir, common::VPCD_PORT + 1);
    assert_eq!(second.reader, "Virtual PCD 00 01");
    assert_ne!(first.cert("auth"), second.cert("auth"));
    let list = pkcs11_tool_ok(&["-L"]);
    assert_eq!(list.matches(AUTH_TOKEN).count(), 2, "{list}");
    assert!(list.contains("Virtual PCD 00 01"), "{list}");
    assert!(second.apdu_count() > 0 && first.apdu_count() > 0);
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
