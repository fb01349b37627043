//! GnuTLS (`gnutls-bin`: p11tool, gnutls-cli) with the built module against the virtual card
//! behind pcscd: listing tokens and objects, and TLS 1.3 client authentication against
//! `openssl s_server -Verify 1` with key and certificate given as `pkcs11:` URIs and the PIN in
//! `GNUTLS_PIN`. How to set it up by hand: docs/gnutls.md.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod apps;
mod common;

use apps::run_ok;
use common::VCard;
use std::process::Command;

const AUTH: &str = "JPKI%20User%20Authentication";
const SIGN: &str = "JPKI%20Digital%20Signature";

fn p11tool(args: &[&str], pin: Option<&str>) -> String {
    let mut cmd = Command::new("p11tool");
    cmd.arg("--provider").arg(apps::module()).args(args);
    match pin {
        Some(pin) => cmd.env("GNUTLS_PIN", pin),
        None => cmd.env_remove("GNUTLS_PIN"),
    };
    run_ok(&mut cmd, b"")
}

#[test]
fn p11tool_lists_tokens_and_objects() {
    let _g = common::lock();
    let card = VCard::start();
    let serial = apps::token_serial(&card);
    let tokens = p11tool(&["--list-tokens"], None);
    for label in [AUTH, SIGN] {
        let url = format!("serial={serial};token={label}");
        assert!(tokens.contains(&url), "{url} listed:\n{tokens}");
    }
    let auth = format!("pkcs11:token={AUTH};serial={serial}");
    let objects = p11tool(&["--list-all", &auth], None);
    for url in [
        "object=User%20Authentication;type=cert",
        "object=User%20Authentication;type=public",
        "object=User%20Authentication%20CA;type=cert",
    ] {
        assert!(objects.contains(url), "{url}:\n{objects}");
    }
    assert!(
        !objects.contains("type=private"),
        "before login:\n{objects}"
    );
    let objects = p11tool(&["--login", "--list-all", &auth], Some("1234"));
    assert!(
        objects.contains("object=User%20Authentication;type=private"),
        "{objects}"
    );
    // The signature certificate (personal data) only after the signature password.
    let sign = format!("pkcs11:token={SIGN};serial={serial}");
    let objects = p11tool(&["--list-all", &sign], None);
    assert!(
        !objects.contains("object=Digital%20Signature;"),
        "{objects}"
    );
    let objects = p11tool(&["--login", "--list-all", &sign], Some("JPKITEST1"));
    for t in ["cert", "public", "private"] {
        let url = format!("object=Digital%20Signature;type={t}");
        assert!(objects.contains(&url), "{url}:\n{objects}");
    }
    assert_eq!(card.tries_left(), (3, 5), "no try burned");
}

#[test]
fn gnutls_cli_authenticates_over_tls13() {
    let _g = common::lock();
    let card = VCard::start();
    let dir = card.state_dir.clone();
    let (tls_ca, crt, key) = apps::server_pki(&dir);
    let client_ca = apps::cert_pem(&card, "auth-ca");
    let server = apps::tls_server(&dir, &crt, &key, &client_ca);
    let obj = format!(
        "pkcs11:token={AUTH};serial={};object=User%20Authentication",
        apps::token_serial(&card)
    );
    let client = run_ok(
        Command::new("gnutls-cli")
            .arg("--provider")
            .arg(apps::module())
            .args(["--x509keyfile", &format!("{obj};type=private")])
            .args(["--x509certfile", &format!("{obj};type=cert")])
            .arg("--x509cafile")
            .arg(&tls_ca)
            .args([
                "--verify-hostname",
                "localhost",
                "--sni-hostname",
                "localhost",
            ])
            .args(["-p", &server.port.to_string(), "127.0.0.1"])
            .env("GNUTLS_PIN", "1234"),
        b"GET / HTTP/1.0\r\n\r\n",
    );
    let server_out = server.finish();
    assert!(
        client.contains("(TLS1.3-X.509)") && client.contains("(RSA-PSS-RSAE-SHA256)"),
        "{client}"
    );
    let page = apps::status_page(&client);
    assert_eq!(apps::protocol(page), Some("TLSv1.3"), "{page}");
    assert_eq!(apps::peer_signature_type(page), Some("RSA-PSS"), "{page}");
    let subject = apps::subject(&card, "auth");
    assert!(
        server_out.contains(&format!("depth=0 {subject}")),
        "the server verified the card's certificate:\n{server_out}"
    );
    assert_eq!(card.tries_left(), (3, 5), "no try burned");
}
