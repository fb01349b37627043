//! OpenSSL 3 with the libp11 engine (Debian `libengine-pkcs11-openssl`, libp11 0.4.12) using
//! the built module against the virtual card behind pcscd: `dgst`/`pkeyutl -sign` with RFC 7512
//! `pkcs11:` URIs, `cms -sign` with the signature key (CKA_ALWAYS_AUTHENTICATE), and
//! `s_client` authenticating to `s_server` with default settings over TLS 1.3 and TLS 1.2.
//! How to set it up by hand: docs/openssl.md.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod apps;
mod common;

use apps::{run, run_ok, text};
use common::VCard;
use std::path::{Path, PathBuf};
use std::process::Command;

const ENGINE: &str = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";

/// The engine's shared object (Debian's multiarch path, else found with dpkg).
fn engine_path() -> String {
    if Path::new(ENGINE).exists() {
        return ENGINE.into();
    }
    let out = Command::new("dpkg")
        .args(["-L", "libengine-pkcs11-openssl"])
        .output()
        .expect("dpkg -L libengine-pkcs11-openssl (scripts/deps/openssl.txt)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("engines-3/pkcs11.so"))
        .expect("libengine-pkcs11-openssl installed (scripts/deps/openssl.txt)")
        .to_string()
}

/// An OpenSSL config loading the pkcs11 engine with the module (and the PIN, if given), as
/// docs/openssl.md shows; written into `dir`.
fn openssl_cnf(dir: &Path, pin: Option<&str>) -> PathBuf {
    let path = dir.join(format!("openssl-{}.cnf", pin.unwrap_or("nopin")));
    let mut cnf = format!(
        "openssl_conf = openssl_init\n\
         [openssl_init]\n\
         engines = engine_section\n\
         [engine_section]\n\
         pkcs11 = pkcs11_section\n\
         [pkcs11_section]\n\
         engine_id = pkcs11\n\
         dynamic_path = {}\n\
         MODULE_PATH = {}\n\
         init = 0\n",
        engine_path(),
        apps::module().display()
    );
    if let Some(pin) = pin {
        cnf += &format!("PIN = {pin}\n");
    }
    std::fs::write(&path, cnf).unwrap();
    path
}

/// `openssl ARGS` with OPENSSL_CONF set to `cnf`.
fn openssl(cnf: &Path) -> Command {
    let mut cmd = Command::new("openssl");
    cmd.env("OPENSSL_CONF", cnf);
    cmd
}

/// The private key URI of the authentication (`auth`) or signature key on this card.
fn key_uri(card: &VCard, which: &str) -> String {
    let (token, object) = match which {
        "auth" => ("JPKI%20User%20Authentication", "User%20Authentication"),
        "sign" => ("JPKI%20Digital%20Signature", "Digital%20Signature"),
        _ => unreachable!(),
    };
    format!(
        "pkcs11:token={token};serial={};object={object};type=private",
        apps::token_serial(card)
    )
}

fn verify_dgst(pubkey: &Path, msg: &Path, sig: &Path) {
    let out = run_ok(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(pubkey)
            .arg("-signature")
            .arg(sig)
            .arg(msg),
        b"",
    );
    assert!(out.contains("Verified OK"), "{out}");
}

fn verify_pkeyutl(pubkey: &Path, digest: &Path, sig: &Path, opts: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(pubkey)
        .args(["-pkeyopt", "digest:sha256"]);
    for o in opts {
        cmd.args(["-pkeyopt", o]);
    }
    let out = run_ok(cmd.arg("-in").arg(digest).arg("-sigfile").arg(sig), b"");
    assert!(out.contains("Signature Verified Successfully"), "{out}");
}

#[test]
fn dgst_and_pkeyutl_sign_with_a_pkcs11_uri() {
    let _g = common::lock();
    let card = VCard::start();
    let dir = card.state_dir.clone();
    let pubkey = apps::cert_pubkey(&card, "auth");
    let msg = dir.join("msg.txt");
    std::fs::write(&msg, b"signed through the libp11 engine\n").unwrap();
    let key = key_uri(&card, "auth");

    // dgst -sign, the PIN in the engine's configuration (PIN = ...).
    let cnf = openssl_cnf(&dir, Some("1234"));
    let sig = dir.join("dgst.sig");
    run_ok(
        openssl(&cnf)
            .args(["dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine"])
            .args(["-sign", &key, "-out"])
            .arg(&sig)
            .arg(&msg),
        b"",
    );
    verify_dgst(&pubkey, &msg, &sig);

    // pkeyutl -sign over a SHA-256 digest, PKCS#1 v1.5 and PSS, the PIN given with -passin.
    let cnf = openssl_cnf(&dir, None);
    let digest = dir.join("msg.sha256");
    let out = run(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-binary", "-out"])
            .arg(&digest)
            .arg(&msg),
        b"",
    );
    assert!(out.status.success(), "{}", text(&out));
    for (name, opts) in [
        ("pkcs1", &[][..]),
        ("pss", &["rsa_padding_mode:pss", "rsa_pss_saltlen:32"][..]),
    ] {
        let sig = dir.join(format!("pkeyutl-{name}.sig"));
        let mut cmd = openssl(&cnf);
        cmd.args([
            "pkeyutl", "-sign", "-engine", "pkcs11", "-keyform", "engine",
        ])
        .args(["-inkey", &key, "-passin", "pass:1234"])
        .args(["-pkeyopt", "digest:sha256"]);
        for o in opts {
            cmd.args(["-pkeyopt", o]);
        }
        run_ok(cmd.arg("-in").arg(&digest).arg("-out").arg(&sig), b"");
        verify_pkeyutl(&pubkey, &digest, &sig, opts);
    }
    assert_eq!(card.tries_left(), (3, 5), "no try burned");
}

/// The signature key has CKA_ALWAYS_AUTHENTICATE. libp11 0.4.12 logs in (CKU_USER) with the PIN
/// it was given (-passin here) and then does the context-specific login itself before the
/// signature, but asks for that second PIN through OpenSSL's console UI ("Enter PKCS#11 key PIN
/// for Digital Signature:", from the terminal, or stdin when there is none): the openssl
/// commands do not hand it their -passin. So the password is typed twice, the second time at
/// the prompt. The signature verifies against the signature CA.
#[test]
fn cms_sign_with_the_signature_key_verified_against_the_ca() {
    let _g = common::lock();
    let card = VCard::start();
    let dir = card.state_dir.clone();
    let cnf = openssl_cnf(&dir, None);
    let signer = apps::cert_pem(&card, "sign");
    let ca = apps::cert_pem(&card, "sign-ca");
    let msg = dir.join("document.txt");
    std::fs::write(&msg, b"a contract\n").unwrap();
    let p7s = dir.join("document.p7s");
    let out = run_ok(
        openssl(&cnf)
            .args([
                "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
            ])
            .args(["-engine", "pkcs11", "-keyform", "engine"])
            .args([
                "-inkey",
                &key_uri(&card, "sign"),
                "-passin",
                "pass:JPKITEST1",
            ])
            .arg("-signer")
            .arg(&signer)
            .arg("-in")
            .arg(&msg)
            .arg("-out")
            .arg(&p7s),
        b"JPKITEST1\n",
    );
    assert!(
        out.contains("Enter PKCS#11 key PIN for Digital Signature"),
        "the context-specific PIN was asked for:\n{out}"
    );
    let out = run_ok(
        Command::new("openssl")
            .args([
                "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
            ])
            .arg("-in")
            .arg(&p7s)
            .arg("-content")
            .arg(&msg)
            .arg("-CAfile")
            .arg(&ca)
            .args(["-out", "/dev/null"]),
        b"",
    );
    assert!(out.contains("Verification successful"), "{out}");
    assert_eq!(card.tries_left(), (3, 5), "no try burned");
}

/// Pins libp11 0.4.12's behaviour: the PIN from -passin (or the engine's PIN setting) is used
/// for the login only; with no one to answer the context-specific prompt the signature fails
/// cleanly, before any PIN reaches the card (no try is spent).
#[test]
fn cms_sign_without_the_second_pin_fails_without_spending_a_try() {
    let _g = common::lock();
    let card = VCard::start();
    let dir = card.state_dir.clone();
    let signer = apps::cert_pem(&card, "sign");
    let msg = dir.join("document.txt");
    std::fs::write(&msg, b"a contract\n").unwrap();
    for cnf in [
        openssl_cnf(&dir, None),
        openssl_cnf(&dir, Some("JPKITEST1")),
    ] {
        let out = run(
            openssl(&cnf)
                .args(["cms", "-sign", "-binary", "-outform", "DER"])
                .args(["-engine", "pkcs11", "-keyform", "engine"])
                .args([
                    "-inkey",
                    &key_uri(&card, "sign"),
                    "-passin",
                    "pass:JPKITEST1",
                ])
                .arg("-signer")
                .arg(&signer)
                .arg("-in")
                .arg(&msg)
                .arg("-out")
                .arg(dir.join("document.p7s")),
            b"",
        );
        let t = text(&out);
        assert!(!out.status.success(), "signed without the second PIN?\n{t}");
        assert!(
            t.contains("Enter PKCS#11 key PIN for Digital Signature"),
            "fails at the context-specific prompt:\n{t}"
        );
    }
    assert_eq!(card.tries_left(), (3, 5), "no try burned");
}

/// `s_client` with the authentication key (a `pkcs11:` URI through the engine) and certificate
/// against `s_server -Verify 1` trusting the card's authentication CA, default settings apart
/// from the protocol version. Returns the server's status page and its stdout.
fn s_client(card: &VCard, version: &str) -> (String, String) {
    let dir = card.state_dir.clone();
    let cnf = openssl_cnf(&dir, None);
    let (tls_ca, crt, key) = apps::server_pki(&dir);
    let client_ca = apps::cert_pem(card, "auth-ca");
    let client_cert = apps::cert_pem(card, "auth");
    let server = apps::tls_server(&dir, &crt, &key, &client_ca);
    let mut cmd = openssl(&cnf);
    cmd.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{}", server.port),
    ])
    .args(["-verify_return_error", "-ign_eof", "-CAfile"])
    .arg(&tls_ca)
    .args(["-engine", "pkcs11", "-keyform", "engine"])
    .args([
        "-key",
        &key_uri(card, "auth"),
        "-pass",
        "pass:1234",
        "-cert",
    ])
    .arg(&client_cert);
    if !version.is_empty() {
        cmd.arg(version);
    }
    let client = run_ok(&mut cmd, b"GET / HTTP/1.0\r\n\r\n");
    let server_out = server.finish();
    (apps::status_page(&client).to_string(), server_out)
}

#[test]
fn s_client_authenticates_over_tls13_with_rsa_pss() {
    let _g = common::lock();
    let card = VCard::start();
    let (page, server) = s_client(&card, "");
    assert_eq!(apps::protocol(&page), Some("TLSv1.3"), "{page}");
    assert_eq!(apps::peer_signature_type(&page), Some("RSA-PSS"), "{page}");
    let subject = apps::subject(&card, "auth");
    assert!(
        server.contains(&format!("depth=0 {subject}")),
        "the server verified the card's certificate ({subject}):\n{server}"
    );
    assert_eq!(card.tries_left(), (3, 5));
}

/// TLS 1.2 with default settings works too, and OpenSSL signs with RSA-PSS there as well (its
/// default preference when the key can do PSS), so the card's PSS serves both versions.
#[test]
fn s_client_authenticates_over_tls12_with_default_settings() {
    let _g = common::lock();
    let card = VCard::start();
    let (page, server) = s_client(&card, "-tls1_2");
    assert_eq!(apps::protocol(&page), Some("TLSv1.2"), "{page}");
    assert_eq!(apps::peer_signature_type(&page), Some("RSA-PSS"), "{page}");
    let subject = apps::subject(&card, "auth");
    assert!(server.contains(&format!("depth=0 {subject}")), "{server}");
    assert_eq!(card.tries_left(), (3, 5));
}
