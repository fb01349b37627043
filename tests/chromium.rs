//! Chromium (Debian package `chromium`) authenticating to a TLS server with the card's
//! user-authentication key, against the virtual card behind pcscd, set up and used as a user
//! would (docs/chromium.md):
//!
//! - the module registered in the NSS shared database `~/.pki/nssdb` by `jpki register nss`
//!   (in a temporary HOME), the server's test CA trusted there with `certutil`;
//! - the enterprise policy `AutoSelectCertificateForUrls` (a file in
//!   `/etc/chromium/policies/managed/`, the only place Chromium on Linux reads managed policies
//!   from; written by the test and removed after it), so the card's certificate is chosen without
//!   the selection dialog;
//! - the PIN typed into Chromium's own "Unlock Security Device" dialog. Headless Chromium cannot
//!   be used: it opens that dialog too (NSS asks Chromium's password callback before any
//!   `C_Login`, even for a token with a protected authentication path, so the module's pinentry
//!   is never reached) and nothing can answer it, so the page never loads. Chromium runs with
//!   its normal user interface on a virtual X display (Xvfb), and the test types the PIN into the
//!   dialog with `xdotool` (through stdin, never on a command line), as a user types it.
//!
//! Against `openssl s_server -Verify 1 -tls1_3` and then `-tls1_2`, which accept only RSA-PSS
//! in the client's CertificateVerify (`-client_sigalgs`) and serve a page whose title the test
//! waits for in Chromium's window name. The server's log shows the card's certificate verified
//! and the CertificateVerify read (OpenSSL checked the card's signature); the card's APDU log
//! shows the authentication key signing and the signature password never presented.
//!
//! Panics (never skips) when a program is missing: `scripts/install-deps.sh` installs the
//! packages of `scripts/deps/chromium.txt`.
#![cfg(unix)]

mod apps;
mod common;
mod nss_common;

use apps::card::{card_ops, common_name, CardOp, Token, AUTH_PIN};
use apps::x11::{Display, Proc};
use common::s_server::SServer;
use common::VCard;
use nss_common::{check_signature_key_untouched, Pki, TempDir, Tls, SERVER_CA_NAME};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The title of the page the servers serve: Chromium's window is named after it once loaded.
const PAGE_TITLE: &str = "JPKI client authentication OK";

/// The title of Chromium's PIN dialog (English UI).
const PIN_DIALOG: &str = "Unlock Security Device";

/// The managed policy file that lets Chromium choose the card's certificate for `urls` without
/// asking. Removed on drop.
struct Policy(PathBuf);

impl Policy {
    fn install(urls: &[String]) -> Policy {
        let dir = Path::new("/etc/chromium/policies/managed");
        std::fs::create_dir_all(dir).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (Chromium reads managed policies only there)",
                dir.display()
            )
        });
        let rules: Vec<String> = urls
            .iter()
            .map(|u| {
                format!(
                    "\"{{\\\"pattern\\\":\\\"{u}\\\",\\\"filter\\\":{{\\\"ISSUER\\\":{{\\\"O\\\":\\\"JPKI\\\"}}}}}}\""
                )
            })
            .collect();
        let path = dir.join(format!("jpki-pkcs11-test-{}.json", std::process::id()));
        std::fs::write(
            &path,
            format!(
                "{{\"AutoSelectCertificateForUrls\": [{}]}}\n",
                rules.join(", ")
            ),
        )
        .unwrap();
        Policy(path)
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `openssl s_server` serving `dir` (`-WWW`), one TLS version, requiring a client certificate
/// from the card's CA signed with RSA-PSS, logging the handshake's states (`-state`).
struct Server(SServer);

impl Server {
    fn start(pki: &Pki, www: &Path, version: Tls) -> Server {
        let ca_dir = pki.dir.path();
        Server(SServer::start(
            www,
            www.join(format!("s_server-{}.log", version.name())),
            &[
                "-WWW".as_ref(),
                "-state".as_ref(),
                "-cert".as_ref(),
                ca_dir.join("server.pem").as_os_str(),
                "-key".as_ref(),
                ca_dir.join("server.key").as_os_str(),
                "-Verify".as_ref(),
                "1".as_ref(),
                "-verify_return_error".as_ref(),
                "-CAfile".as_ref(),
                ca_dir.join("client-ca.pem").as_os_str(),
                "-client_sigalgs".as_ref(),
                "rsa_pss_rsae_sha256".as_ref(),
                match version {
                    Tls::V12 => "-tls1_2",
                    Tls::V13 => "-tls1_3",
                }
                .as_ref(),
            ] as &[&std::ffi::OsStr],
        ))
    }

    fn log_text(&self) -> String {
        self.0.log_text()
    }

    fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.0.port)
    }
}

/// Chromium on `display` with the user's HOME (its NSS database) and a fresh profile, opening
/// `url`; the module's log goes to `log`.
fn chromium(display: &Display, home: &Path, profile: &Path, url: &str, log: &Path) -> Proc {
    let mut cmd = Command::new("chromium");
    // As root (the CI), Chromium refuses to start with its sandbox.
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg("--no-sandbox");
    }
    let child = cmd
        .args([
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--password-store=basic",
            "--lang=en-US",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .env("DISPLAY", &display.name)
        .env("HOME", home)
        .env("LANGUAGE", "en")
        .env("JPKI_PKCS11_DEBUG", log)
        .env_remove("JPKI_PKCS11_CONF")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(home.join("chromium.log")).unwrap())
        .stderr(Stdio::from(
            std::fs::File::options()
                .append(true)
                .open(home.join("chromium.log"))
                .unwrap(),
        ))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chromium ({e}): install scripts/deps/chromium.txt"));
    Proc(child)
}

/// The user's NSS shared database in `home` (`~/.pki/nssdb`), as `jpki register nss` makes it,
/// with the server's test CA trusted.
fn user_nssdb(home: &Path, pki: &Pki) {
    let out = apps::run_ok(
        Command::new(common::jpki_bin())
            .args(["register", "nss", "--module"])
            .arg(common::module_path())
            .env("HOME", home),
        b"",
    );
    assert!(out.contains("registered"), "{out}");
    let db = format!("sql:{}", home.join(".pki/nssdb").display());
    apps::run_ok(
        Command::new("certutil")
            .args(["-A", "-d", &db, "-n", SERVER_CA_NAME, "-t", "CT,C,C", "-i"])
            .arg(pki.ca()),
        b"",
    );
}

#[test]
fn chromium_authenticates_with_the_card_over_tls13_and_tls12() {
    let _g = common::lock();
    let card = VCard::start();
    let pki = Pki::new(&card);
    let home = TempDir::new("chromium");
    let h = home.path();

    user_nssdb(h, &pki);

    let www = h.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(
        www.join("index.html"),
        format!(
            "<!DOCTYPE html><html><head><title>{PAGE_TITLE}</title></head><body>OK</body></html>\n"
        ),
    )
    .unwrap();
    let servers = [
        (Server::start(&pki, &www, Tls::V13), Tls::V13),
        (Server::start(&pki, &www, Tls::V12), Tls::V12),
    ];
    let origins: Vec<String> = servers.iter().map(|(s, _)| s.origin()).collect();
    let _policy = Policy::install(&origins);
    let display = Display::start();
    let cn = common_name(&card, "auth");
    let module_log = h.join("module.log");

    for (server, version) in &servers {
        card.clear_log();
        let start = Instant::now();
        let profile = h.join(format!("profile-{}", version.name()));
        let _chromium = chromium(
            &display,
            h,
            &profile,
            &format!("{}/index.html", server.origin()),
            &module_log,
        );
        let why = || {
            format!(
                "s_server:\n{}\nchromium:\n{}\nmodule log:\n{}",
                server.log_text(),
                std::fs::read_to_string(h.join("chromium.log")).unwrap_or_default(),
                std::fs::read_to_string(&module_log).unwrap_or_default()
            )
        };
        // Chromium chose the certificate (the policy) and asks for the token's PIN.
        let dialog = display.wait_window(PIN_DIALOG, why);
        let focus = display.xdotool(&["windowfocus", "--sync", &dialog], b"");
        assert!(focus.status.success(), "{}", apps::text(&focus));
        let typed = display.xdotool(
            &["type", "--delay", "30", "--file", "-"],
            AUTH_PIN.as_bytes(),
        );
        assert!(typed.status.success(), "{}", apps::text(&typed));
        display.xdotool(&["key", "Return"], b"");
        display.wait_window(PAGE_TITLE, why);
        eprintln!("Chromium {}: {:?}", version.name(), start.elapsed());
        // One PIN dialog only: none is left open (the signature token never asks).
        assert_eq!(display.window(PIN_DIALOG), None, "{}", why());

        let log = server.log_text();
        for want in [
            format!("depth=0 C = JP, CN = {cn}"),
            "verify return:1".to_string(),
            "SSL_accept:SSLv3/TLS read client certificate".to_string(),
            "SSL_accept:SSLv3/TLS read certificate verify".to_string(),
            "SSL_accept:SSLv3/TLS read finished".to_string(),
        ] {
            assert!(log.contains(&want), "s_server: no {want:?}:\n{}", why());
        }
        // The PIN was accepted once; the authentication key signed; the signature password was
        // never presented and the signature key never used; the counters are 3 and 5.
        let ops = card_ops(&card);
        assert_eq!(
            ops.iter()
                .filter(|o| **o == CardOp::Verify(Token::Auth, false))
                .count(),
            0,
            "{ops:?}"
        );
        check_signature_key_untouched(&card, &format!("Chromium {}", version.name()));
    }
}

/// Headless Chromium (`--headless`, the new headless mode) with the same setup, and with a
/// pinentry configured for the module (the tokens then advertise a protected authentication
/// path): it chooses the certificate but then waits for its own PIN dialog, which nothing can
/// answer. NSS asks Chromium's password callback before any `C_Login`, so the module's pinentry
/// is never run, no PIN reaches the card, and the page does not load. If a Chromium ever gets
/// past this, this test fails and docs/chromium.md must be updated.
#[test]
fn headless_chromium_stops_at_its_own_pin_dialog() {
    let _g = common::lock();
    let card = VCard::start();
    let pki = Pki::new(&card);
    let home = TempDir::new("chromium-headless");
    let h = home.path();
    user_nssdb(h, &pki);
    let www = h.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "<title>x</title>OK\n").unwrap();
    let server = Server::start(&pki, &www, Tls::V13);
    let _policy = Policy::install(&[server.origin()]);
    // A pinentry that would answer the PIN, and log that it was asked.
    let script = apps::pinentry_giving(h, AUTH_PIN);
    let asked = h.join("pinentry.log");
    let conf = h.join("jpki.toml");
    std::fs::write(&conf, format!("pinentry = '{}'\n", script.display())).unwrap();
    card.clear_log();

    let mut cmd = Command::new("timeout");
    cmd.args([
        "20",
        "chromium",
        "--headless",
        "--disable-gpu",
        "--dump-dom",
    ]);
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg("--no-sandbox");
    }
    let out = apps::run(
        cmd.arg(format!("--user-data-dir={}", h.join("profile").display()))
            .arg(format!("{}/index.html", server.origin()))
            .env("HOME", h)
            .env("JPKI_PKCS11_CONF", &conf)
            .env("JPKI_PKCS11_DEBUG", h.join("module.log"))
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY"),
        b"",
    );
    let module_log = std::fs::read_to_string(h.join("module.log")).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(124),
        "headless Chromium ended by itself: {}\n{}\nmodule log:\n{module_log}",
        out.status,
        apps::text(&out)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("OK"),
        "{}",
        apps::text(&out)
    );
    // Chromium loaded the module and connected (the server read its hello and asked for a
    // certificate), but no login was made: the pinentry never ran, no PIN reached the card.
    assert!(
        module_log.contains("pinentry=true"),
        "the module read the configuration:\n{module_log}"
    );
    assert!(!module_log.contains("C_Login"), "{module_log}");
    assert!(!asked.exists(), "the pinentry was asked");
    assert!(
        server
            .log_text()
            .contains("SSL_accept:SSLv3/TLS write certificate request"),
        "{}",
        server.log_text()
    );
    assert_eq!(card_ops(&card), [], "{:?}", card.log());
    assert_eq!(card.tries_left(), (3, 5));
}
