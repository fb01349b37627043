//! The `jpki` command against the virtual My Number Card behind pcscd: `status`, `cert export`,
//! `pin change`, and its messages and exit codes for the usual problems.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod common;

use common::VCard;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use x509_cert::der::Decode;

const AUTH: &str = "JPKI User Authentication";

/// Runs `jpki` (with `stdin` as its standard input); returns (exit code, stdout, stderr).
fn jpki_in(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> (i32, Vec<u8>, String) {
    let mut cmd = Command::new("timeout");
    cmd.arg("60")
        .arg(common::jpki_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run jpki");
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out: Output = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn jpki(args: &[&str]) -> (i32, String, String) {
    let (code, out, err) = jpki_in(args, b"", &[]);
    (code, String::from_utf8_lossy(&out).into_owned(), err)
}

/// Whether the module accepts `pin` for the token `label` (pkcs11-tool --login).
fn module_login_ok(label: &str, pin: &str) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["60", "pkcs11-tool", "--module"])
        .arg(common::module_path())
        .args(["--token-label", label, "--login", "--pin", pin, "-O"])
        .output()
        .expect("pkcs11-tool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn subject(der: &[u8]) -> String {
    x509_cert::Certificate::from_der(der)
        .unwrap()
        .tbs_certificate
        .subject
        .to_string()
}

/// VERIFY commands that carried a PIN, and CHANGE REFERENCE DATA commands, in the APDU log.
fn pin_apdus(card: &VCard) -> Vec<String> {
    card.log()
        .into_iter()
        .filter(|l| (l.starts_with("0020") && l.contains('*')) || l.starts_with("0024"))
        .collect()
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn status_shows_tries_without_personal_data() {
    let _g = common::lock();
    let card = VCard::start();
    let r = card.reader.as_str();
    card.clear_log();
    let (code, out, err) = jpki(&["status", "--reader", r]);
    assert_eq!(code, 0, "step: jpki status\n{out}{err}");
    for want in [
        format!("Reader: {r}"),
        "Card: My Number Card (JPKIAPICCTOKEN2)".into(),
        "User authentication PIN: 3 of 3 tries left".into(),
        "Digital signature password: 5 of 5 tries left".into(),
        format!(
            "Authentication certificate: {}",
            subject(&card.cert("auth"))
        ),
        "valid until 20".into(),
    ] {
        assert!(out.contains(&want), "step: status shows {want:?}:\n{out}");
    }
    let sign_subject = subject(&card.cert("sign"));
    assert!(
        !out.contains(&sign_subject),
        "step: no personal data:\n{out}"
    );
    assert!(
        pin_apdus(&card).is_empty(),
        "step: no PIN sent: {:?}",
        card.log()
    );
    assert_eq!(
        card.tries_left(),
        (3, 5),
        "step: reading the tries used none"
    );

    let (code, out, err) = jpki(&["status", "--reader", r, "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "\"card\":\"jpki\"",
        "\"token\":\"JPKIAPICCTOKEN2\"",
        "\"auth_pin\":{\"tries_left\":3,\"max_tries\":3,\"locked\":false}",
        "\"sign_pin\":{\"tries_left\":5,\"max_tries\":5,\"locked\":false}",
        "\"auth_cert\":{\"subject\":",
    ] {
        assert!(out.contains(want), "step: --json has {want}:\n{out}");
    }
    assert!(!out.contains("sign_cert"), "{out}");

    // With the signature password: the signature certificate's subject too.
    let pw = write_file(&card.state_dir, "pw.txt", "jpkitest1\n");
    let (code, out, err) = jpki(&["status", "--reader", r, "--password-file", &pw]);
    assert_eq!(code, 0, "step: status --password-file\n{out}{err}");
    assert!(
        out.contains(&format!("Signature certificate: {sign_subject}")),
        "step: signature certificate shown with the password:\n{out}"
    );
    assert_eq!(card.tries_left(), (3, 5));
    // The password is never accepted as a plain argument.
    let (code, _, err) = jpki(&["status", "--password=JPKITEST1"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn cert_export_gives_the_cards_files() {
    let _g = common::lock();
    let card = VCard::start();
    let r = card.reader.as_str();
    let dir = card.state_dir.clone();
    for name in ["auth", "auth-ca", "sign-ca"] {
        let (code, out, err) = jpki_in(&["cert", "export", name, "--der", "--reader", r], b"", &[]);
        assert_eq!(code, 0, "step: cert export {name} --der: {err}");
        assert_eq!(
            out,
            card.cert(name),
            "step: {name} DER equals the card's file"
        );
        let pem = dir.join(format!("{name}.pem"));
        let (code, _, err) = jpki(&[
            "cert",
            "export",
            name,
            "--pem",
            "--reader",
            r,
            "--out",
            pem.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "step: cert export {name} --pem: {err}");
        let conv = Command::new("openssl")
            .args(["x509", "-inform", "PEM", "-outform", "DER", "-in"])
            .arg(&pem)
            .output()
            .unwrap();
        assert!(
            conv.status.success(),
            "step: openssl reads the PEM of {name}: {}",
            String::from_utf8_lossy(&conv.stderr)
        );
        assert_eq!(
            conv.stdout,
            card.cert(name),
            "step: {name} PEM equals the card's file"
        );
    }
    // `sign` needs the password.
    let pw = write_file(&dir, "pw.txt", "JPKITEST1\n");
    let (code, out, err) = jpki_in(
        &[
            "cert",
            "export",
            "sign",
            "--der",
            "--reader",
            r,
            "--password-file",
            &pw,
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "step: cert export sign: {err}");
    assert_eq!(
        out,
        card.cert("sign"),
        "step: sign DER equals the card's file"
    );
    assert!(
        err.contains("5 of 5 tries left"),
        "step: tries shown first: {err}"
    );
    // A wrong password costs one try and says how many are left.
    let bad = write_file(&dir, "bad.txt", "WRONG1\n");
    let (code, out, err) = jpki_in(
        &[
            "cert",
            "export",
            "sign",
            "--reader",
            r,
            "--password-file",
            &bad,
        ],
        b"",
        &[],
    );
    assert_eq!(code, 6, "step: wrong password exit code: {err}");
    assert!(out.is_empty());
    assert!(
        err.contains("wrong digital signature password: 4 of 5 tries left"),
        "{err}"
    );
    assert_eq!(card.tries_left(), (3, 4));
    // A malformed one costs nothing.
    let short = write_file(&dir, "short.txt", "ABC\n");
    let (code, _, err) = jpki_in(
        &[
            "cert",
            "export",
            "sign",
            "--reader",
            r,
            "--password-file",
            &short,
        ],
        b"",
        &[],
    );
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert_eq!(card.tries_left(), (3, 4));
}

#[test]
fn pin_change_changes_the_pin_on_the_card() {
    let _g = common::lock();
    let card = VCard::start();
    let r = card.reader.as_str();
    // Malformed new PIN, differing new PINs, malformed old PIN: refused, nothing sent.
    card.clear_log();
    for (input, why) in [
        (&b"1234\n12a4\n12a4\n"[..], "has a character"),
        (b"1234\n123\n123\n", "has the wrong length"),
        (b"1234\n5678\n5679\n", "the two new PINs differ"),
        (b"12\n5678\n5678\n", "the current PIN has the wrong length"),
    ] {
        let (code, _, err) = jpki_in(
            &["pin", "change", "auth", "--reader", r, "--stdin"],
            input,
            &[],
        );
        assert_eq!(code, 8, "step: refused ({why}): {err}");
        assert!(
            err.contains(why) && err.contains("nothing was sent"),
            "{err}"
        );
        assert!(
            err.contains("3 of 3 tries left"),
            "step: tries shown first: {err}"
        );
    }
    assert!(
        pin_apdus(&card).is_empty(),
        "step: nothing sent: {:?}",
        pin_apdus(&card)
    );
    // Wrong current PIN: one try.
    let (code, _, err) = jpki_in(
        &["pin", "change", "auth", "--reader", r, "--stdin"],
        b"0000\n5678\n5678\n",
        &[],
    );
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("2 of 3 tries left"), "{err}");
    // Right one: changed.
    let (code, _, err) = jpki_in(
        &["pin", "change", "auth", "--reader", r, "--stdin"],
        b"1234\n5678\n5678\n",
        &[],
    );
    assert_eq!(code, 0, "step: pin change auth: {err}");
    assert!(err.contains("2 of 3 tries left"), "{err}");
    assert_eq!(card.tries_left(), (3, 5));
    let (ok, text) = module_login_ok(AUTH, "5678");
    assert!(ok, "step: the module logs in with the new PIN:\n{text}");
    // The signature password, from a file (lower case is folded to upper case).
    let f = write_file(
        &card.state_dir,
        "pins.txt",
        "JPKITEST1\nnewpass22\nNEWPASS22\n",
    );
    let (code, _, err) = jpki(&["pin", "change", "sign", "--reader", r, "--pin-file", &f]);
    assert_eq!(code, 0, "step: pin change sign: {err}");
    let pw = write_file(&card.state_dir, "pw.txt", "NEWPASS22\n");
    let (code, out, err) = jpki_in(
        &[
            "cert",
            "export",
            "sign",
            "--der",
            "--reader",
            r,
            "--password-file",
            &pw,
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "step: the new password works: {err}");
    assert_eq!(out, card.cert("sign"));
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn clear_messages_for_no_reader_no_card_and_locked_pin() {
    let _g = common::lock();
    // No PC/SC service (the client library pointed at a socket nobody listens on).
    let (code, _, err) = jpki_in(
        &["status"],
        b"",
        &[("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm")],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("pcscd) is not running"), "{err}");
    let (code, _, err) = jpki(&["status", "--reader", "No Such Reader 99"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("no reader named \"No Such Reader 99\""),
        "{err}"
    );

    let mut card = VCard::start();
    let r = card.reader.clone();
    // Lock the authentication PIN with three wrong tries.
    for (left, want_code) in [(2, 6), (1, 6), (0, 7)] {
        let (code, _, err) = jpki_in(
            &["pin", "change", "auth", "--reader", &r, "--stdin"],
            b"0000\n5678\n5678\n",
            &[],
        );
        assert_eq!(code, want_code, "step: wrong PIN, {left} left: {err}");
        if left > 0 {
            assert!(err.contains(&format!("{left} of 3 tries left")), "{err}");
        } else {
            assert!(
                err.contains("it is now locked; only a municipal office"),
                "{err}"
            );
        }
    }
    assert_eq!(card.tries_left(), (0, 5));
    let (code, out, _) = jpki(&["status", "--reader", &r]);
    assert_eq!(code, 0);
    assert!(
        out.contains("User authentication PIN: LOCKED (only a municipal office"),
        "{out}"
    );
    card.clear_log();
    let (code, _, err) = jpki_in(
        &["pin", "change", "auth", "--reader", &r, "--stdin"],
        b"1234\n5678\n5678\n",
        &[],
    );
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("the user authentication PIN is locked: only a municipal office"),
        "{err}"
    );
    assert!(
        pin_apdus(&card).is_empty(),
        "step: nothing sent to a locked PIN"
    );

    // No card in the reader.
    card.remove();
    let (code, out, err) = jpki(&["status", "--reader", &r]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("No card"), "{out}");
    let (code, _, err) = jpki(&["cert", "export", "auth", "--reader", &r]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("no card in reader \"{r}\"")), "{err}");
}

#[test]
fn a_card_without_the_jpki_application_is_named_as_such() {
    let _g = common::lock();
    // Every SELECT answered 6A82: a smart card, but not a My Number Card.
    let card = common::VCard::start_faulty(&["status:A4:6A82"]);
    let r = card.reader.clone();
    let (code, out, err) = jpki(&["status", "--reader", &r]);
    assert_eq!(code, 5, "{out}{err}");
    assert!(out.contains("not a My Number Card"), "{out}{err}");
    let (code, _, err) = jpki(&["cert", "export", "auth", "--reader", &r]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("is not a My Number Card"), "{err}");
    // The module shows no token for it either.
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(common::module_path())
        .arg("-L")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // (Other readers, of other tests or programs on the same pcscd, may show tokens.)
    let ours: Vec<&str> = text
        .split("\nSlot ")
        .filter(|slot| slot.lines().next().is_some_and(|l| l.contains(&r)))
        .collect();
    assert_eq!(ours.len(), 2, "two slots for {r}: {text}");
    assert!(
        ours.iter().all(|slot| !slot.contains("token label")),
        "{text}"
    );
    assert!(
        card.log().iter().all(|l| !l.starts_with("0020")),
        "no VERIFY sent: {:?}",
        card.log()
    );
}

/// Runs `jpki` in a new session, without a controlling terminal (as from a cron job or a
/// desktop launcher); returns (exit code, stderr).
fn jpki_without_terminal(args: &[&str]) -> (i32, String) {
    let out = Command::new("setsid")
        .arg("--wait")
        .arg("timeout")
        .arg("60")
        .arg(common::jpki_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run setsid (util-linux)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cert_export_of_the_signature_certificate_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let _g = common::lock();
    let card = VCard::start();
    let r = card.reader.as_str();
    let dir = card.state_dir.clone();
    let pw = write_file(&dir, "pw.txt", "JPKITEST1\n");
    // Over an existing world-readable file: narrowed to 0600 before the personal data goes in.
    let out = dir.join("sign.der");
    std::fs::write(&out, b"old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = out.to_str().unwrap();
    let args = [
        "cert",
        "export",
        "sign",
        "--der",
        "--reader",
        r,
        "--password-file",
        &pw,
    ];
    let (code, _, err) = jpki_in(&[&args[..], &["--out", o]].concat(), b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), card.cert("sign"));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    // A new file too.
    let fresh = dir.join("sign.pem");
    let f = fresh.to_str().unwrap();
    let (code, _, err) = jpki_in(
        &[
            &args[..2],
            &["sign", "--reader", r, "--password-file", &pw, "--out", f],
        ]
        .concat(),
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    // Public certificates keep the usual permissions (umask).
    let ca = dir.join("sign-ca.der");
    let c = ca.to_str().unwrap();
    let (code, _, err) = jpki_in(
        &[
            "cert", "export", "sign-ca", "--der", "--reader", r, "--out", c,
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&ca).unwrap(), card.cert("sign-ca"));

    // No terminal: each command names its own options, nothing is sent.
    card.clear_log();
    let (code, err) = jpki_without_terminal(&["cert", "export", "sign", "--reader", r]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("no terminal") && err.contains("--password-file"),
        "{err}"
    );
    assert!(
        !err.contains("--stdin") && !err.contains("--pin-file"),
        "{err}"
    );
    let (code, err) = jpki_without_terminal(&["pin", "change", "auth", "--reader", r]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("--pin-file") && err.contains("--stdin"),
        "{err}"
    );
    assert!(!err.contains("--password-file"), "{err}");
    assert!(pin_apdus(&card).is_empty(), "{:?}", pin_apdus(&card));
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn a_new_signature_password_must_mix_letters_and_digits() {
    let _g = common::lock();
    let card = VCard::start();
    let r = card.reader.as_str();
    card.clear_log();
    for new in ["ABCDEFGH", "12345678"] {
        let input = format!("JPKITEST1\n{new}\n{new}\n");
        let (code, _, err) = jpki_in(
            &["pin", "change", "sign", "--reader", r, "--stdin"],
            input.as_bytes(),
            &[],
        );
        assert_eq!(code, 8, "{err}");
        assert!(
            err.contains("must mix letters and digits") && err.contains("nothing was sent"),
            "{err}"
        );
    }
    assert!(pin_apdus(&card).is_empty(), "{:?}", pin_apdus(&card));
    let (code, _, err) = jpki_in(
        &["pin", "change", "sign", "--reader", r, "--stdin"],
        b"JPKITEST1\nnewpass22\nNEWPASS22\n",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (ok, msg) = module_login_ok("JPKI Digital Signature", "NEWPASS22");
    assert!(ok, "{msg}");
}
