//! OpenSC's `pkcs11-tool` driving the built module, against the virtual card behind pcscd.
//! Signatures are verified with `openssl` against the certificate from the card's directory.

mod common;

use common::VCard;
use std::process::{Command, Output};

/// Runs pkcs11-tool with the module; panics with its output on failure.
fn tool(args: &[&str]) -> String {
    let out = tool_raw(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pkcs11-tool {args:?} failed:\n{text}");
    text
}

fn tool_raw(args: &[&str]) -> Output {
    Command::new("pkcs11-tool")
        .arg("--module")
        .arg(common::module_path())
        .args(args)
        .output()
        .expect("run pkcs11-tool (Debian package opensc)")
}

const AUTH: &str = "JPKI User Authentication";
const SIGN: &str = "JPKI Digital Signature";

#[test]
fn lists_tokens_and_objects() {
    let _g = common::lock();
    let _card = VCard::start();
    let list = tool(&["-L"]);
    assert!(list.contains(AUTH) && list.contains(SIGN), "{list}");
    let pin_range = |r: &str| {
        list.lines()
            .any(|l| l.contains("pin min/max") && l.trim_end().ends_with(r))
    };
    assert!(pin_range(": 4/4") && pin_range(": 6/16"), "{list}");
    let objs = tool(&["--token-label", AUTH, "-O"]);
    assert!(
        objs.contains("Certificate Object") && objs.contains("Public Key Object"),
        "{objs}"
    );
    assert!(
        !objs.contains("Private Key Object"),
        "private key hidden before login:\n{objs}"
    );
    let objs = tool(&["--token-label", AUTH, "-O", "--login", "--pin", "1234"]);
    assert!(objs.contains("Private Key Object"), "{objs}");
    let objs = tool(&["--token-label", SIGN, "-O"]);
    assert!(
        !objs.contains("label:      Digital Signature\n"),
        "no signature certificate before login:\n{objs}"
    );
    let objs = tool(&["--token-label", SIGN, "-O", "--login", "--pin", "JPKITEST1"]);
    assert!(
        objs.contains("Private Key Object") && objs.contains("Public Key Object"),
        "{objs}"
    );
    let mechs = tool(&["--token-label", AUTH, "-M"]);
    for m in [
        "RSA-PKCS,",
        "SHA256-RSA-PKCS,",
        "RSA-PKCS-PSS",
        "SHA256-RSA-PKCS-PSS",
    ] {
        assert!(mechs.contains(m), "{m} listed:\n{mechs}");
    }
}

#[test]
fn signs_with_both_keys_verified_by_openssl() {
    let _g = common::lock();
    let card = VCard::start();
    let dir = card.state_dir.clone();
    let msg = dir.join("msg.txt");
    std::fs::write(&msg, b"a document").unwrap();
    for (label, pin, id, cert) in [
        (AUTH, "1234", "01", "auth"),
        (SIGN, "JPKITEST1", "02", "sign"),
    ] {
        let sig = dir.join(format!("{cert}.sig"));
        tool(&[
            "--token-label",
            label,
            "--login",
            "--pin",
            pin,
            "--sign",
            "--id",
            id,
            "-m",
            "SHA256-RSA-PKCS",
            "-i",
            msg.to_str().unwrap(),
            "-o",
            sig.to_str().unwrap(),
        ]);
        common::openssl_verify(&dir.join(format!("{cert}.crt")), &msg, &sig, false);
        let sig = dir.join(format!("{cert}.pss.sig"));
        tool(&[
            "--token-label",
            label,
            "--login",
            "--pin",
            pin,
            "--sign",
            "--id",
            id,
            "-m",
            "SHA256-RSA-PKCS-PSS",
            "--mgf",
            "MGF1-SHA256",
            "--salt-len",
            "32",
            "-i",
            msg.to_str().unwrap(),
            "-o",
            sig.to_str().unwrap(),
        ]);
        common::openssl_verify(&dir.join(format!("{cert}.crt")), &msg, &sig, true);
    }
}

#[test]
fn test_login_passes_on_both_tokens() {
    let _g = common::lock();
    let card = VCard::start();
    for (label, pin) in [(AUTH, "1234"), (SIGN, "JPKITEST1")] {
        let out = tool_raw(&["--token-label", label, "--test", "--login", "--pin", pin]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "pkcs11-tool --test on {label}:\n{text}"
        );
        assert!(text.contains("No errors"), "{label}:\n{text}");
        assert!(
            text.contains("all 4 signature functions seem to work")
                && text.contains("SHA256-RSA-PKCS: OK"),
            "{label}: signatures tested:\n{text}"
        );
    }
    assert_eq!(card.tries_left(), (3, 5), "no try burned");
}

#[test]
fn wrong_pin_costs_one_try_and_is_reported() {
    let _g = common::lock();
    let card = VCard::start();
    let out = tool_raw(&["--token-label", AUTH, "--login", "--pin", "0000", "-O"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("CKR_PIN_INCORRECT"), "{text}");
    assert_eq!(card.tries_left(), (2, 5));
    let list = tool(&["-L"]);
    assert!(list.contains("user PIN count low"), "{list}");
    // A malformed PIN is answered as an incorrect one (C_Login's code, on which NSS asks again),
    // but it never reaches the card.
    card.clear_log();
    let log = card.state_dir.join("module.log");
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(common::module_path())
        .args(["--token-label", AUTH, "--login", "--pin", "12345", "-O"])
        .env("JPKI_PKCS11_DEBUG", &log)
        .output()
        .expect("run pkcs11-tool");
    assert!(String::from_utf8_lossy(&out.stderr).contains("CKR_PIN_INCORRECT"));
    // The precise reason is in the module's log, the PIN is not.
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("refused before the card") && logged.contains("wrong length"),
        "{logged}"
    );
    assert!(!logged.contains("12345"), "{logged}");
    assert_eq!(card.tries_left(), (2, 5), "a malformed PIN costs nothing");
    assert!(
        !card
            .log()
            .iter()
            .any(|l| l.starts_with("0020") && l.contains('*')),
        "no VERIFY with a PIN: {:?}",
        card.log()
    );
}
