//! Thunderbird (Debian package `thunderbird`) sending an S/MIME-signed message with the card's
//! digital-signature key, from a logged-out token, asking for the signature password in its own
//! dialog; against the virtual card behind pcscd, set up and used as a user would
//! (docs/thunderbird.md):
//!
//! - a Thunderbird profile (`thunderbird -CreateProfile`, as a first start makes one), the module
//!   added to it by `jpki register thunderbird`, the card's signature CA trusted for e-mail in it
//!   (`certutil`, what Certificate Manager → Authorities → Import does);
//! - an account whose identity signs every message with the card's signature certificate (the
//!   preferences Account Settings → End-to-End Encryption writes: `signing_cert_dbkey`,
//!   `sign_mail`) and sends through a local SMTP server of the test;
//! - Thunderbird's normal user interface on a virtual X display (Xvfb): the test writes a message
//!   (Ctrl+N, typing), sends it (Ctrl+Enter) and types the signature password into Thunderbird's
//!   "Password Required" dialogs with `xdotool` (through stdin, never on a command line), as a
//!   user does. Thunderbird asks twice: once to log in to the token (to find the certificate),
//!   once for the signature itself (the key is `CKA_ALWAYS_AUTHENTICATE`).
//!
//! The message the SMTP server received is verified outside the module by `openssl smime
//! -verify`, trusting only the card's signature CA; its signer is the card's signature
//! certificate. The card's APDU log shows the password presented for the login and right before
//! the one signature, never a wrong one, and the authentication PIN never presented.
//!
//! Thunderbird finds the certificate only because the module's `signing_programs` (default:
//! Thunderbird) makes the signature token an authentication token for it: the second test sends
//! with `signing_programs = []`, where the token claims the public-certificates profile as it
//! does for Firefox, and records that Thunderbird then asks for nothing, sends nothing and the
//! card sees no password.
//!
//! Panics (never skips) when a program is missing: `scripts/install-deps.sh` installs the
//! packages of `scripts/deps/thunderbird.txt`.
#![cfg(unix)]

mod apps;
mod common;
mod nss_common;

use apps::card::{card_ops, CardOp, Token, LOGIN_AND_SIGN, SIGN_PASSWORD};
use apps::x11::{Display, Proc};
use common::VCard;
use nss_common::TempDir;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The title of Thunderbird's password dialog (English UI).
const PASSWORD_DIALOG: &str = "Password Required";
/// The signature certificate's NSS nickname, `<token label>:<CKA_LABEL>`, as the certificate
/// picker stores it.
const NICKNAME: &str = "JPKI Digital Signature:Digital Signature";
/// What the test writes.
const SUBJECT: &str = "Signed with the card";
const BODY: &str = "Hello from the My Number Card";
const SENDER: &str = "taro@example.jp";
const RECIPIENT: &str = "hanako@example.jp";

/// A minimal SMTP server on 127.0.0.1 (no authentication, no TLS) that keeps every message it
/// receives.
struct SmtpSink {
    port: u16,
    messages: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let kept = messages.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let _ = serve_smtp(stream, &kept);
                });
            }
        });
        SmtpSink { port, messages }
    }

    /// Waits (up to `secs`) for a message; the first one.
    fn wait_message(&self, secs: u64) -> Option<String> {
        self.wait_nth(0, secs)
    }

    /// Waits (up to `secs`) for message number `n` (from 0).
    fn wait_nth(&self, n: usize, secs: u64) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if let Some(m) = self.messages.lock().unwrap().get(n) {
                return Some(m.clone());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

/// One SMTP conversation: every command accepted, DATA kept (dot-unstuffed, CRLF line ends).
fn serve_smtp(stream: TcpStream, kept: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    out.write_all(b"220 jpki-test ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.trim_end().to_ascii_uppercase();
        if verb.starts_with("EHLO") {
            out.write_all(b"250-jpki-test\r\n250 8BITMIME\r\n")?;
        } else if verb == "DATA" {
            out.write_all(b"354 go on\r\n")?;
            let mut message = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                message.push_str(l.strip_prefix('.').unwrap_or(l));
                message.push_str("\r\n");
            }
            kept.lock().unwrap().push(message);
            out.write_all(b"250 kept\r\n")?;
        } else if verb == "QUIT" {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"250 ok\r\n")?;
        }
    }
}

/// The `signing_cert_dbkey` Thunderbird stores for a certificate (PSM's `nsNSSCertificate::
/// GetDbKey`): Base64 of 8 zero bytes, the serial number's and the issuer's lengths (32-bit big
/// endian), the serial number's content octets and the issuer's DER.
fn db_key(cert_der: &[u8]) -> String {
    // (tag, start of content, content length) of the DER element at `i`.
    fn tlv(b: &[u8], i: usize) -> (u8, usize, usize) {
        let (tag, first) = (b[i], b[i + 1] as usize);
        if first < 0x80 {
            return (tag, i + 2, first);
        }
        let n = first & 0x7f;
        let len = b[i + 2..i + 2 + n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | x as usize);
        (tag, i + 2 + n, len)
    }
    let (_, tbs, _) = tlv(cert_der, 0);
    let (_, mut i, _) = tlv(cert_der, tbs);
    let (tag, start, len) = tlv(cert_der, i);
    if tag == 0xa0 {
        i = start + len; // [0] version
    }
    let (_, serial_at, serial_len) = tlv(cert_der, i);
    let serial = &cert_der[serial_at..serial_at + serial_len];
    let (_, alg_at, alg_len) = tlv(cert_der, serial_at + serial_len);
    let issuer_tag_at = alg_at + alg_len;
    let (_, issuer_at, issuer_len) = tlv(cert_der, issuer_tag_at);
    let issuer = &cert_der[issuer_tag_at..issuer_at + issuer_len];
    let mut key = vec![0u8; 8];
    key.extend((serial.len() as u32).to_be_bytes());
    key.extend((issuer.len() as u32).to_be_bytes());
    key.extend(serial);
    key.extend(issuer);
    let out = apps::run(
        Command::new("openssl").args(["base64", "-A"]),
        key.as_slice(),
    );
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A user's Thunderbird: a HOME of its own with one profile, the module registered in it, the
/// card's signature CA trusted for e-mail, and an identity that signs with the card.
struct Setup {
    home: TempDir,
    profile: PathBuf,
}

impl Setup {
    fn new(card: &VCard, smtp_port: u16) -> Setup {
        let home = TempDir::new("thunderbird");
        let h = home.path();
        // The profile a first start makes.
        let out = apps::run(
            Command::new("thunderbird")
                .args(["--headless", "-CreateProfile", "jpki"])
                .env("HOME", h)
                .env_remove("DISPLAY"),
            b"",
        );
        assert!(out.status.success(), "{}", apps::text(&out));
        let profiles =
            std::fs::read_to_string(h.join(".thunderbird/profiles.ini")).unwrap_or_default();
        let rel = profiles
            .lines()
            .find_map(|l| l.strip_prefix("Path="))
            .unwrap_or_else(|| panic!("no profile in profiles.ini:\n{profiles}"));
        let profile = h.join(".thunderbird").join(rel);
        // The module, as the user adds it.
        let out = apps::run_ok(
            Command::new(common::jpki_bin())
                .args(["register", "thunderbird", "--module"])
                .arg(common::module_path())
                .env("HOME", h),
            b"",
        );
        assert!(out.contains(&profile.display().to_string()), "{out}");
        // The card's signature CA, trusted to issue e-mail certificates.
        apps::run_ok(
            Command::new("certutil")
                .arg("-A")
                .arg("-d")
                .arg(format!("sql:{}", profile.display()))
                .args(["-n", "JPKI test signature CA", "-t", ",C,", "-i"])
                .arg(apps::cert_pem(card, "sign-ca")),
            b"",
        );
        let dbkey = db_key(&std::fs::read(card.state_dir.join("sign.crt")).unwrap());
        let prefs = [
            ("mail.accountmanager.accounts", "\"account1\"".to_string()),
            ("mail.accountmanager.defaultaccount", "\"account1\"".into()),
            ("mail.account.account1.identities", "\"id1\"".into()),
            ("mail.account.account1.server", "\"server1\"".into()),
            ("mail.server.server1.type", "\"none\"".into()),
            ("mail.server.server1.hostname", "\"Local Folders\"".into()),
            ("mail.server.server1.userName", "\"nobody\"".into()),
            ("mail.server.server1.name", "\"Local Folders\"".into()),
            ("mail.identity.id1.fullName", "\"Taro Test\"".into()),
            ("mail.identity.id1.useremail", format!("\"{SENDER}\"")),
            ("mail.identity.id1.valid", "true".into()),
            ("mail.identity.id1.smtpServer", "\"smtp1\"".into()),
            ("mail.identity.id1.fcc", "false".into()),
            // Account Settings → End-to-End Encryption → S/MIME: the card's signature
            // certificate, "sign unencrypted messages".
            (
                "mail.identity.id1.signing_cert_dbkey",
                format!("\"{dbkey}\""),
            ),
            (
                "mail.identity.id1.signing_cert_name",
                format!("\"{NICKNAME}\""),
            ),
            ("mail.identity.id1.sign_mail", "true".into()),
            ("mail.smtpservers", "\"smtp1\"".into()),
            ("mail.smtp.defaultserver", "\"smtp1\"".into()),
            ("mail.smtpserver.smtp1.hostname", "\"127.0.0.1\"".into()),
            ("mail.smtpserver.smtp1.port", smtp_port.to_string()),
            ("mail.smtpserver.smtp1.authMethod", "1".into()),
            ("mail.smtpserver.smtp1.try_ssl", "0".into()),
            // Ctrl+Enter sends without "Are you sure you are ready to send this message?".
            ("mail.warn_on_send_accel_key", "false".into()),
            // No first-run pages or questions.
            ("mail.shell.checkDefaultClient", "false".into()),
            ("mail.provider.suppress_dialog_on_startup", "true".into()),
            ("mailnews.start_page.enabled", "false".into()),
            ("mail.rights.version", "1".into()),
            ("mail.spotlight.firstRunDone", "true".into()),
            ("app.update.enabled", "false".into()),
            ("datareporting.policy.dataSubmissionEnabled", "false".into()),
            ("toolkit.telemetry.reportingpolicy.firstRun", "false".into()),
            ("intl.locale.requested", "\"en-US\"".into()),
        ];
        let user_js: String = prefs
            .iter()
            .map(|(k, v)| format!("user_pref(\"{k}\", {v});\n"))
            .collect();
        std::fs::write(profile.join("user.js"), user_js).unwrap();
        Setup { home, profile }
    }

    /// Thunderbird on `display` with this profile; the module's log goes to `module.log`, its
    /// configuration file is `conf` (none: the defaults).
    fn start(&self, display: &Display, conf: Option<&Path>) -> Proc {
        let h = self.home.path();
        let log = std::fs::File::create(h.join("thunderbird.log")).unwrap();
        let mut cmd = Command::new("thunderbird");
        cmd.arg("--profile")
            .arg(&self.profile)
            .arg("--no-remote")
            .env("DISPLAY", &display.name)
            .env("HOME", h)
            .env("XDG_CONFIG_HOME", h.join(".config"))
            .env("LANGUAGE", "en")
            .env("JPKI_PKCS11_DEBUG", h.join("module.log"))
            .env_remove("JPKI_PKCS11_CONF")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(c) = conf {
            cmd.env("JPKI_PKCS11_CONF", c);
        }
        Proc(cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run thunderbird ({e}): install scripts/deps/thunderbird.txt")
        }))
    }

    fn why(&self) -> String {
        let h = self.home.path();
        format!(
            "thunderbird:\n{}\nmodule log:\n{}",
            std::fs::read_to_string(h.join("thunderbird.log")).unwrap_or_default(),
            std::fs::read_to_string(h.join("module.log")).unwrap_or_default()
        )
    }
}

/// Focuses window `w` and types `text` into it (through xdotool's stdin).
fn type_into(display: &Display, w: &str, text: &str) {
    let focus = display.xdotool(&["windowfocus", "--sync", w], b"");
    assert!(focus.status.success(), "{}", apps::text(&focus));
    let typed = display.xdotool(&["type", "--delay", "30", "--file", "-"], text.as_bytes());
    assert!(typed.status.success(), "{}", apps::text(&typed));
}

fn key(display: &Display, keys: &str) {
    let out = display.xdotool(&["key", keys], b"");
    assert!(out.status.success(), "{}", apps::text(&out));
}

/// Opens the composer from the main window, writes the test's message and sends it (Ctrl+Enter).
fn write_and_send(display: &Display, setup: &Setup) {
    let main = display.wait_window("Mozilla Thunderbird", || setup.why());
    // The main window takes keys only once it has finished starting (longer on a first start):
    // Ctrl+N again every 5 s until the composer opens.
    let start = Instant::now();
    let compose = loop {
        // Focusing fails (BadMatch) until the window is shown.
        if display
            .xdotool(&["windowfocus", "--sync", &main], b"")
            .status
            .success()
        {
            key(display, "ctrl+n");
        }
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(5) {
            if display.window(r"Write: \(no subject\)").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Some(w) = display.window(r"Write: \(no subject\)") {
            break w;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no composer after 60 s; windows {:?}\n{}",
            window_names(display),
            setup.why()
        );
    };
    std::thread::sleep(Duration::from_secs(2));
    type_into(display, &compose, RECIPIENT);
    key(display, "Return");
    key(display, "Tab");
    type_into(display, &compose, SUBJECT);
    key(display, "Tab");
    type_into(display, &compose, BODY);
    display.wait_window(&format!("Write: {SUBJECT}"), || setup.why());
    std::thread::sleep(Duration::from_secs(1));
    let focus = display.xdotool(&["windowfocus", "--sync", &compose], b"");
    assert!(focus.status.success(), "{}", apps::text(&focus));
    key(display, "ctrl+Return");
}

/// The names of the display's windows (for messages).
fn window_names(display: &Display) -> Vec<String> {
    let out = display.xdotool(&["search", "--name", "."], b"");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|w| {
            let n = display.xdotool(&["getwindowname", w], b"");
            let n = String::from_utf8_lossy(&n.stdout).trim().to_string();
            (!n.is_empty()).then_some(n)
        })
        .collect()
}

/// One test's Thunderbird, its card, display and SMTP server (dropped in this order: Thunderbird
/// first, the reader's lock last).
struct Run {
    _thunderbird: Proc,
    display: Display,
    setup: Setup,
    smtp: SmtpSink,
    card: VCard,
    _reader: std::sync::MutexGuard<'static, ()>,
}

impl Run {
    /// A fresh card and user setup, Thunderbird started (with the module configuration `conf`,
    /// none: the defaults) and the test's message written and sent; the card's log starts
    /// empty before Thunderbird starts.
    fn send(conf: Option<&str>) -> Run {
        let reader = common::lock();
        let card = VCard::start();
        let smtp = SmtpSink::start();
        let setup = Setup::new(&card, smtp.port);
        let conf = conf.map(|text| {
            let path = setup.home.path().join("module.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let display = Display::start();
        card.clear_log();
        let thunderbird = setup.start(&display, conf.as_deref());
        write_and_send(&display, &setup);
        Run {
            _thunderbird: thunderbird,
            display,
            setup,
            smtp,
            card,
            _reader: reader,
        }
    }
}

/// Thunderbird's password dialogs, answered one after the other (each is a new window).
#[derive(Default)]
struct Dialogs {
    seen: Vec<String>,
}

impl Dialogs {
    /// Waits (up to 60 s) for a password dialog not answered yet, and types `answer` and Return
    /// into it, or presses Escape (Cancel) for `None`.
    fn answer(&mut self, display: &Display, setup: &Setup, answer: Option<&str>) {
        let start = Instant::now();
        let dialog = loop {
            if let Some(w) = self.new_dialog(display) {
                break w;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no password dialog {} after 60 s; windows {:?}\n{}",
                self.seen.len() + 1,
                window_names(display),
                setup.why()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        match answer {
            Some(text) => {
                type_into(display, &dialog, text);
                key(display, "Return");
            }
            None => {
                let focus = display.xdotool(&["windowfocus", "--sync", &dialog], b"");
                assert!(focus.status.success(), "{}", apps::text(&focus));
                key(display, "Escape");
            }
        }
        self.seen.push(dialog);
    }

    fn new_dialog(&self, display: &Display) -> Option<String> {
        let out = display.xdotool(&["search", "--name", PASSWORD_DIALOG], b"");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|w| !self.seen.iter().any(|s| s == w))
            .map(str::to_string)
    }

    /// No password dialog other than those answered (checked for `secs`).
    fn assert_none_new(&self, display: &Display, setup: &Setup, secs: u64) {
        let start = Instant::now();
        loop {
            assert_eq!(
                self.new_dialog(display),
                None,
                "another password dialog; windows {:?}\n{}",
                window_names(display),
                setup.why()
            );
            if start.elapsed() >= Duration::from_secs(secs) {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// Checks the message the SMTP server received: S/MIME-signed, verified by OpenSSL trusting only
/// the card's signature CA, signed by the card's signature certificate, over the text written.
fn check_signed_message(card: &VCard, setup: &Setup, message: &str) {
    assert!(
        message
            .contains("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\""),
        "{message}"
    );
    assert!(
        message.contains(&format!("Subject: {SUBJECT}")),
        "{message}"
    );
    let dir = setup.home.path();
    std::fs::write(dir.join("message.eml"), message).unwrap();
    let out = apps::run(
        Command::new("openssl")
            .args(["smime", "-verify", "-purpose", "any", "-in"])
            .arg(dir.join("message.eml"))
            .arg("-CAfile")
            .arg(apps::cert_pem(card, "sign-ca"))
            .arg("-signer")
            .arg(dir.join("signer.pem"))
            .arg("-out")
            .arg(dir.join("content.txt")),
        b"",
    );
    assert!(
        out.status.success(),
        "openssl smime -verify: {}",
        apps::text(&out)
    );
    assert!(apps::text(&out).contains("Verification successful"));
    apps::run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(dir.join("signer.pem"))
            .arg("-out")
            .arg(dir.join("signer.der")),
        b"",
    );
    assert_eq!(
        std::fs::read(dir.join("signer.der")).unwrap(),
        std::fs::read(card.state_dir.join("sign.crt")).unwrap(),
        "the signer is the card's signature certificate"
    );
    // The signed part: a text/plain body, Base64 (Thunderbird's choice) or as is.
    let content = std::fs::read_to_string(dir.join("content.txt")).unwrap();
    assert!(content.contains("Content-Type: text/plain"), "{content}");
    let body = content.split("\r\n\r\n").nth(1).unwrap_or_default();
    let decoded = apps::run(
        Command::new("openssl").args(["base64", "-d"]),
        body.as_bytes(),
    );
    let decoded = String::from_utf8_lossy(&decoded.stdout);
    assert!(
        decoded.contains(BODY) || body.contains(BODY),
        "signed text: {content}"
    );
}

/// The module's log of the run (debug level; never a password).
fn module_log(setup: &Setup) -> String {
    let log = std::fs::read_to_string(setup.home.path().join("module.log")).unwrap_or_default();
    assert!(
        !log.contains(SIGN_PASSWORD),
        "the module logged the password"
    );
    log
}

#[test]
fn thunderbird_signs_smime_from_a_logged_out_token_asking_for_the_password() {
    let start = Instant::now();
    let run = Run::send(None);
    let (card, smtp, setup, display) = (&run.card, &run.smtp, &run.setup, &run.display);
    // Nothing reached the card before the first dialog: Thunderbird started and began sending
    // with the token logged out.
    let mut dialogs = Dialogs::default();
    let first = Instant::now();
    while dialogs.new_dialog(display).is_none() && first.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(card_ops(card), [], "nothing before the first password");
    // The password to log in (to find the certificate), then for the signature.
    dialogs.answer(display, setup, Some(SIGN_PASSWORD));
    dialogs.answer(display, setup, Some(SIGN_PASSWORD));
    let message = smtp
        .wait_message(60)
        .unwrap_or_else(|| panic!("no message sent\n{}", setup.why()));
    eprintln!("Thunderbird: signed and sent in {:?}", start.elapsed());
    dialogs.assert_none_new(display, setup, 1);
    check_signed_message(card, setup, &message);
    // The card: the password at the login and right before the one signature; no wrong one;
    // the authentication PIN never presented, its key never used.
    assert_eq!(card_ops(card), LOGIN_AND_SIGN, "{}", setup.why());
    // The module's debug log is a trace of the calls: the logins and the signature are in it.
    let log = module_log(setup);
    for line in [
        "thunderbird: a signing program",
        "C_Login -> CKR_OK",
        "C_Sign -> CKR_OK",
    ] {
        assert!(log.contains(line), "no {line:?} in the module log:\n{log}");
    }

    // A second message in the same session: the token is still logged in, so Thunderbird finds
    // the certificate without asking; the signature asks once, and the card sees the password
    // once, right before the signature.
    card.clear_log();
    write_and_send(display, setup);
    dialogs.answer(display, setup, Some(SIGN_PASSWORD));
    let message = smtp
        .wait_nth(1, 60)
        .unwrap_or_else(|| panic!("no second message sent\n{}", setup.why()));
    dialogs.assert_none_new(display, setup, 1);
    check_signed_message(card, setup, &message);
    assert_eq!(card_ops(card), LOGIN_AND_SIGN[1..], "{}", setup.why());
}

/// A mistyped password (of the right format) costs one try, once: Thunderbird asks again, the
/// module sends nothing by itself, and the right password then signs.
#[test]
fn a_wrong_password_costs_one_try_and_thunderbird_asks_again() {
    let run = Run::send(None);
    let (card, smtp, setup, display) = (&run.card, &run.smtp, &run.setup, &run.display);
    let mut dialogs = Dialogs::default();
    dialogs.answer(display, setup, Some("WRONG2024"));
    dialogs.answer(display, setup, Some(SIGN_PASSWORD));
    dialogs.answer(display, setup, Some(SIGN_PASSWORD));
    let message = smtp
        .wait_message(60)
        .unwrap_or_else(|| panic!("no message sent\n{}", setup.why()));
    dialogs.assert_none_new(display, setup, 1);
    check_signed_message(card, setup, &message);
    let mut expected = vec![CardOp::Verify(Token::Sign, false)];
    expected.extend(LOGIN_AND_SIGN);
    assert_eq!(card_ops(card), expected, "{}", setup.why());
    module_log(setup);
}

/// Cancel at the first password dialog: nothing is signed, nothing is sent, no password reaches
/// the card, and Thunderbird asks no more.
#[test]
fn cancelling_the_password_dialog_sends_nothing() {
    let run = Run::send(None);
    let (card, smtp, setup, display) = (&run.card, &run.smtp, &run.setup, &run.display);
    let mut dialogs = Dialogs::default();
    dialogs.answer(display, setup, None);
    dialogs.assert_none_new(display, setup, 10);
    assert_eq!(smtp.wait_message(1), None, "a message was sent");
    assert_eq!(card_ops(card), [], "{}", setup.why());
    assert!(
        window_names(display)
            .iter()
            .any(|n| n == "Send Message Error"),
        "no error dialog: {:?}",
        window_names(display)
    );
    module_log(setup);
}

/// With `signing_programs = []` the signature token claims the public-certificates profile in
/// Thunderbird too (as in Firefox): NSS never logs in to it to look for certificates, the
/// private signature certificate is not found, and Thunderbird asks for nothing and sends
/// nothing (it reports that the signing certificate is missing); the card sees no password.
#[test]
fn without_signing_programs_thunderbird_never_finds_the_signature_certificate() {
    let run = Run::send(Some("signing_programs = []\n"));
    let (card, smtp, setup, display) = (&run.card, &run.smtp, &run.setup, &run.display);
    // Give it the time the first test needs to reach its first dialog, and more.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        assert_eq!(
            display.window(PASSWORD_DIALOG),
            None,
            "Thunderbird asked for a password: {:?}\n{}",
            window_names(display),
            setup.why()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Thunderbird's "Send Message Error" dialog (the signing certificate is missing).
    let names = window_names(display);
    assert!(
        names.iter().any(|n| n == "Send Message Error"),
        "no error dialog: {names:?}\n{}",
        setup.why()
    );
    assert_eq!(smtp.wait_message(1), None, "a message was sent");
    assert_eq!(card_ops(card), [], "{}", setup.why());
    let module_log =
        std::fs::read_to_string(setup.home.path().join("module.log")).unwrap_or_default();
    assert!(!module_log.contains("a signing program"), "{module_log}");
}
