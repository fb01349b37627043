//! OpenJDK 17's SunPKCS11 with the module, against the virtual card behind pcscd, driven as a
//! user would: `keytool -list` and `jarsigner` with the signature key, a Java program using
//! `java.security.Signature` with both keys (PKCS#1 v1.5 and RSA-PSS), a JSSE client
//! authenticating with the user-authentication key to `openssl s_server` over TLS 1.3 and 1.2,
//! and a PDF signed the way JSignPdf signs (PDFBox 2 + Bouncy Castle CMS). The Java programs are
//! `tests/apps/java/*.java`, compiled by `javac` for each test. Every signature is verified
//! outside the module (OpenSSL, and poppler's `pdfsig` for the PDF), and the card's APDU log
//! shows which PIN was presented for what.
//!
//! SunPKCS11 never makes the per-signature login (`CKU_CONTEXT_SPECIFIC`): its login
//! (`CKU_USER`, when a keystore is loaded with the password) allows the next signature with the
//! signature key and no other (docs/security.md, "Which signature a password allows").
//!
//! Panics (never skips) when a program is missing: `scripts/install-deps.sh` installs the
//! packages of `scripts/deps/java.txt`.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod apps;
mod common;
mod nss_common;

use apps::card::{card_ops, common_name, CardOp, Token, AUTH_PIN, LOGIN_AND_SIGN, SIGN_PASSWORD};
use apps::{run, run_ok, text};
use common::VCard;
use nss_common::{check_server_page, check_signature_key_untouched, Pki, TempDir, Tls, TlsServer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The Java programs of these tests.
const SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/java");

/// The Debian jars the PDF signer needs (packages libpdfbox2-java, libbcpkix-java,
/// libbcprov-java; commons-logging comes with PDFBox).
const JARS: [&str; 6] = [
    "pdfbox2.jar",
    "fontbox2.jar",
    "commons-logging.jar",
    "bcprov.jar",
    "bcpkix.jar",
    "bcutil.jar",
];

/// The classpath of the Debian jars, each checked to be there.
fn jars() -> String {
    let paths: Vec<String> = JARS
        .iter()
        .map(|j| {
            let p = Path::new("/usr/share/java").join(j);
            assert!(
                p.exists(),
                "{} is missing: install the packages of scripts/deps/java.txt",
                p.display()
            );
            p.display().to_string()
        })
        .collect();
    paths.join(":")
}

/// A test's work directory with the SunPKCS11 configuration of each token and the compiled Java
/// programs. Java runs with it as its home (PDFBox writes its font cache there).
struct Work {
    dir: TempDir,
}

impl Work {
    fn new(card: &VCard) -> Work {
        let dir = TempDir::new("java");
        let work = Work { dir };
        for token in [Token::Auth, Token::Sign] {
            std::fs::write(work.config(token), sunpkcs11_config(card, token)).unwrap();
        }
        let classes = work.path("classes");
        std::fs::create_dir_all(&classes).unwrap();
        let start = Instant::now();
        run_ok(
            Command::new("javac")
                .args(["-encoding", "UTF-8", "-cp", &jars(), "-d"])
                .arg(&classes)
                .args(
                    ["Sign.java", "TlsClient.java", "SignPdf.java"]
                        .map(|f| Path::new(SOURCES).join(f)),
                ),
            b"",
        );
        eprintln!("javac: {:?}", start.elapsed());
        work
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The SunPKCS11 configuration file of `token`.
    fn config(&self, token: Token) -> PathBuf {
        self.path(match token {
            Token::Auth => "jpki-auth.cfg",
            Token::Sign => "jpki-sign.cfg",
        })
    }

    /// A JDK tool (`java`, `keytool`, `jarsigner`, `jar`) with this directory as its home.
    fn jdk(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env_remove("JAVA_TOOL_OPTIONS")
            .env_remove("_JAVA_OPTIONS");
        cmd
    }

    /// `java` running the class `main` of tests/apps/java with `args`.
    fn java(&self, main: &str, args: &[&str]) -> Command {
        let mut cmd = self.jdk("java");
        cmd.arg(format!("-Duser.home={}", self.dir.path().display()))
            .arg(format!("-Dpdfbox.fontcache={}", self.dir.path().display()))
            .arg("-cp")
            .arg(format!("{}:{}", self.path("classes").display(), jars()))
            .arg(main)
            .args(args);
        cmd
    }

    fn path_str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// The SunPKCS11 configuration of the card's `token`: the module and the token's slot (found by
/// its reader and label: another card may sit in another reader).
fn sunpkcs11_config(card: &VCard, token: Token) -> String {
    let pkcs11 = cryptoki::context::Pkcs11::new(common::module_path()).expect("load the module");
    pkcs11
        .initialize(cryptoki::context::CInitializeArgs::new(
            cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
        ))
        .expect("C_Initialize");
    let slot = common::token_slot(&pkcs11, &card.reader, token.label())
        .unwrap_or_else(|| panic!("no {} token in {}", token.label(), card.reader));
    pkcs11.finalize().expect("C_Finalize");
    let name = match token {
        Token::Auth => "JPKI-Auth",
        Token::Sign => "JPKI-Sign",
    };
    format!(
        "name = {name}\nlibrary = {}\nslot = {}\n",
        common::module_path().display(),
        slot.id()
    )
}

/// The module's log for a run (JPKI_PKCS11_DEBUG), shown when an assertion fails.
fn module_log(work: &Work) -> String {
    std::fs::read_to_string(work.path("module.log")).unwrap_or_default()
}

/// Runs `cmd` (a JDK tool or one of the Java programs) with the module's log on, saying how long
/// it took; panics with its output and the module's log unless it succeeded. Its output.
fn run_logged(work: &Work, what: &str, cmd: &mut Command) -> String {
    let start = Instant::now();
    let out = run(cmd.env("JPKI_PKCS11_DEBUG", work.path("module.log")), b"");
    eprintln!("{what}: {:?}", start.elapsed());
    let t = text(&out);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{t}\nmodule log:\n{}",
        out.status,
        module_log(work)
    );
    t
}

#[test]
fn keytool_lists_each_token_with_its_pin() {
    let _g = common::lock();
    let card = VCard::start();
    let work = Work::new(&card);
    for token in [Token::Sign, Token::Auth] {
        card.clear_log();
        let list = run_logged(
            &work,
            &format!("keytool -list {token:?}"),
            work.jdk("keytool")
                .args(["-list", "-v", "-storetype", "PKCS11"])
                .args(["-providerClass", "sun.security.pkcs11.SunPKCS11"])
                .arg("-providerArg")
                .arg(work.config(token))
                .args(["-storepass", token.pin()]),
        );
        let alias = match token {
            Token::Auth => "User Authentication",
            Token::Sign => "Digital Signature",
        };
        for want in [
            "Keystore type: PKCS11".to_string(),
            "Your keystore contains 1 entry".to_string(),
            format!("Alias name: {alias}\n"),
            "Entry type: PrivateKeyEntry".to_string(),
            format!("Owner: CN={},", common_name(&card, token.cert())),
        ] {
            assert!(list.contains(&want), "keytool: no {want:?}:\n{list}");
        }
        // keytool only logs in (and reads): one VERIFY, accepted; nothing signed.
        assert_eq!(
            card_ops(&card),
            [CardOp::Verify(token, true)],
            "{token:?}: {:?}",
            card.log()
        );
        assert_eq!(card.tries_left(), (3, 5));
    }

    // A wrong password: SunPKCS11's C_Login gets CKR_PIN_INCORRECT (keytool: "load failed",
    // caused by FailedLoginException) and it is not tried again: one VERIFY, one try used. One
    // the card cannot accept (5 characters) never reaches it, and costs nothing.
    for (password, reached_the_card) in [("WRONGPW1", true), ("JPKI1", false)] {
        card.clear_log();
        let out = run(
            work.jdk("keytool")
                .args(["-list", "-debug", "-storetype", "PKCS11"])
                .args(["-providerClass", "sun.security.pkcs11.SunPKCS11"])
                .arg("-providerArg")
                .arg(work.config(Token::Sign))
                .args(["-storepass", password]),
            b"",
        );
        let t = text(&out);
        assert!(!out.status.success(), "{t}");
        for want in [
            "load failed",
            "FailedLoginException",
            "PKCS11Exception: CKR_PIN_INCORRECT",
        ] {
            assert!(t.contains(want), "{password}: no {want:?}:\n{t}");
        }
        let (ops, tries) = if reached_the_card {
            (vec![CardOp::Verify(Token::Sign, false)], (3, 4))
        } else {
            (vec![], (3, 4))
        };
        assert_eq!(card_ops(&card), ops, "{password}: {:?}", card.log());
        assert_eq!(card.tries_left(), tries, "{password}");
    }
}

#[test]
fn jarsigner_signs_a_jar_verified_by_jarsigner_and_openssl() {
    let _g = common::lock();
    let card = VCard::start();
    let work = Work::new(&card);
    std::fs::write(work.path("hello.txt"), "signed from Java\n").unwrap();
    run_ok(work.jdk("jar").args(["cf", "app.jar", "hello.txt"]), b"");
    card.clear_log();
    let t = run_logged(
        &work,
        "jarsigner",
        work.jdk("jarsigner")
            .args(["-keystore", "NONE", "-storetype", "PKCS11"])
            .args(["-providerClass", "sun.security.pkcs11.SunPKCS11"])
            .arg("-providerArg")
            .arg(work.config(Token::Sign))
            .args(["-storepass", SIGN_PASSWORD])
            .args(["-signedjar", "signed.jar", "app.jar", "Digital Signature"]),
    );
    assert!(t.contains("jar signed."), "{t}");
    // One login, one signature.
    assert_eq!(card_ops(&card), LOGIN_AND_SIGN, "{:?}", card.log());
    assert_eq!(card.tries_left(), (3, 5));

    // jarsigner's own verification, trusting the card's signature CA.
    let ca = card.state_dir.join("sign-ca.crt");
    run_ok(
        work.jdk("keytool")
            .args([
                "-importcert",
                "-noprompt",
                "-alias",
                "jpki-sign-ca",
                "-file",
            ])
            .arg(&ca)
            .args(["-keystore", "trust.p12", "-storetype", "PKCS12"])
            .args(["-storepass", "changeit"]),
        b"",
    );
    let verified = run_ok(
        work.jdk("jarsigner")
            .args([
                "-verify",
                "-strict",
                "-verbose",
                "-certs",
                "-keystore",
                "trust.p12",
            ])
            .args(["-storepass", "changeit", "signed.jar"]),
        b"",
    );
    let signed_by = format!("Signed by \"CN={},", common_name(&card, "sign"));
    for want in ["jar verified.", "[trusted certificate]", &signed_by] {
        assert!(
            verified.contains(want),
            "jarsigner -verify: no {want:?}:\n{verified}"
        );
    }
    assert!(
        verified
            .lines()
            .any(|l| l.starts_with("smk") && l.ends_with("hello.txt")),
        "hello.txt signed, in the manifest, its signer known:\n{verified}"
    );
    assert!(!verified.contains("invalid"), "{verified}");

    // The signature block (PKCS#7 over the signature file), checked by OpenSSL.
    run_ok(
        work.jdk("jar").args([
            "xf",
            "signed.jar",
            "META-INF/DIGITAL_.SF",
            "META-INF/DIGITAL_.RSA",
        ]),
        b"",
    );
    let ca_pem = work.path("sign-ca.pem");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&ca)
            .arg("-out")
            .arg(&ca_pem),
        b"",
    );
    let cms = run_ok(
        Command::new("openssl")
            .args([
                "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
            ])
            .arg("-in")
            .arg(work.path("META-INF/DIGITAL_.RSA"))
            .arg("-content")
            .arg(work.path("META-INF/DIGITAL_.SF"))
            .arg("-CAfile")
            .arg(&ca_pem)
            .arg("-signer")
            .arg(work.path("signer.pem"))
            .args(["-out", "/dev/null"]),
        b"",
    );
    assert!(cms.contains("Verification successful"), "{cms}");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(work.path("signer.pem"))
            .arg("-out")
            .arg(work.path("signer.der")),
        b"",
    );
    assert_eq!(
        std::fs::read(work.path("signer.der")).unwrap(),
        card.cert("sign"),
        "the jar is signed by the card's signature certificate"
    );
}

/// Runs tests/apps/java/Sign.java with `token`'s configuration and PIN over `msg.txt`, writing
/// into `out`; its output.
fn sign_program(work: &Work, token: Token, out: &str, steps: &[&str]) -> String {
    let dir = work.path(out);
    std::fs::create_dir_all(&dir).unwrap();
    let config = work.config(token).display().to_string();
    let msg = work.path_str("msg.txt");
    let dir_s = dir.display().to_string();
    let mut args = vec![config.as_str(), token.pin(), msg.as_str(), dir_s.as_str()];
    args.extend_from_slice(steps);
    run_logged(
        work,
        &format!("Sign {token:?} {steps:?}"),
        &mut work.java("Sign", &args),
    )
}

#[test]
fn java_signature_with_both_keys_verified_by_openssl() {
    let _g = common::lock();
    let card = VCard::start();
    let work = Work::new(&card);
    let msg = work.path("msg.txt");
    std::fs::write(&msg, "a document signed with java.security.Signature\n").unwrap();

    // The signature key: each keystore load is one login, and allows one signature. A second
    // signature without a new login is refused; after a logout and a new login, one more.
    card.clear_log();
    let out = sign_program(
        &work,
        Token::Sign,
        "sign",
        &[
            "algorithms",
            "login",
            "first=SHA256withRSA",
            "second=SHA256withRSA",
            "logout",
            "login",
            "third=SHA256withRSA",
            "logout",
            "login",
            "pss=SHA256withRSASSA-PSS",
        ],
    );
    for want in [
        "has SHA256withRSA",
        "has RSASSA-PSS",
        "has SHA256withRSASSA-PSS",
        "key Digital Signature",
        "signed first",
        "signed third",
        "signed pss",
    ] {
        assert!(
            out.lines().any(|l| l == want),
            "no {want:?}:\n{out}\nmodule log:\n{}",
            module_log(&work)
        );
    }
    let refused = out
        .lines()
        .find(|l| l.starts_with("refused second: "))
        .unwrap_or_else(|| panic!("the second signature of one login was made:\n{out}"));
    assert!(refused.contains("CKR_USER_NOT_LOGGED_IN"), "{refused}");
    assert!(!work.path("sign/second.sig").exists());
    // Three logins, three signatures: each signature's password was presented at its login and
    // again right before it; the refused one sent nothing to the card.
    assert_eq!(
        card_ops(&card),
        LOGIN_AND_SIGN.repeat(3),
        "{:?}",
        card.log()
    );
    let cert = work.path("sign/cert.der");
    assert_eq!(std::fs::read(&cert).unwrap(), card.cert("sign"));
    for (name, pss) in [("first", false), ("third", false), ("pss", true)] {
        common::openssl_verify(&cert, &msg, &work.path(&format!("sign/{name}.sig")), pss);
    }

    // A new process is a new login: one more signature.
    card.clear_log();
    let out = sign_program(
        &work,
        Token::Sign,
        "sign2",
        &["login", "again=SHA256withRSA"],
    );
    assert!(out.lines().any(|l| l == "signed again"), "{out}");
    assert_eq!(card_ops(&card), LOGIN_AND_SIGN, "{:?}", card.log());
    common::openssl_verify(&cert, &msg, &work.path("sign2/again.sig"), false);

    // The authentication key (not always-authenticate): any number of signatures per login,
    // PKCS#1 v1.5 and RSA-PSS (SHA-256, MGF1-SHA-256, salt 32), never the signature password.
    card.clear_log();
    let out = sign_program(
        &work,
        Token::Auth,
        "auth",
        &[
            "login",
            "rsa=SHA256withRSA",
            "pss=RSASSA-PSS",
            "sha256pss=SHA256withRSASSA-PSS",
            "rsa2=SHA256withRSA",
        ],
    );
    let cert = work.path("auth/cert.der");
    assert_eq!(std::fs::read(&cert).unwrap(), card.cert("auth"));
    for (name, pss) in [
        ("rsa", false),
        ("pss", true),
        ("sha256pss", true),
        ("rsa2", false),
    ] {
        assert!(
            out.lines().any(|l| l == format!("signed {name}")),
            "{name}:\n{out}\nmodule log:\n{}",
            module_log(&work)
        );
        common::openssl_verify(&cert, &msg, &work.path(&format!("auth/{name}.sig")), pss);
    }
    let ops = card_ops(&card);
    assert_eq!(
        ops.iter()
            .filter(|o| **o == CardOp::Sign(Token::Auth, true))
            .count(),
        4,
        "{ops:?}"
    );
    assert!(
        ops.iter().all(|o| matches!(
            o,
            CardOp::Verify(Token::Auth, true) | CardOp::Sign(Token::Auth, true)
        )),
        "only the authentication PIN and key: {ops:?}"
    );
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn jsse_tls_client_authentication_with_the_auth_key() {
    let _g = common::lock();
    let card = VCard::start();
    let work = Work::new(&card);
    let pki = Pki::new(&card);
    for version in [Tls::V13, Tls::V12] {
        card.clear_log();
        let server = TlsServer::start(&pki, version);
        let start = Instant::now();
        let out = run(
            work.java(
                "TlsClient",
                &[
                    &work.config(Token::Auth).display().to_string(),
                    AUTH_PIN,
                    &pki.ca().display().to_string(),
                    &server.port.to_string(),
                    version.name(),
                ],
            )
            .env("JPKI_PKCS11_DEBUG", work.path("module.log")),
            b"",
        );
        eprintln!("JSSE {}: {:?}", version.name(), start.elapsed());
        let t = text(&out);
        assert!(
            out.status.success(),
            "TlsClient {}:\n{t}\ns_server:\n{}\nmodule log:\n{}",
            version.name(),
            server.log_text(),
            module_log(&work)
        );
        assert!(t.contains(&format!("handshake {} ", version.name())), "{t}");
        let page = apps::status_page(&t);
        check_server_page(page, version, &card, &format!("JSSE {}", version.name()));
        let server_log = server.log_text();
        assert!(
            server_log.contains(&format!("CN = {}", common_name(&card, "auth")))
                && server_log.contains("verify return:1"),
            "s_server verified the client certificate:\n{server_log}"
        );
        // The authentication key signed (once per handshake); the signature password was never
        // presented, the signature key never used.
        check_signature_key_untouched(&card, &format!("JSSE {}", version.name()));
        assert_eq!(
            card_ops(&card)
                .iter()
                .filter(|o| **o == CardOp::Sign(Token::Auth, true))
                .count(),
            1,
            "{:?}",
            card.log()
        );
    }
}

#[test]
fn pdf_signed_like_jsignpdf_is_valid_for_pdfsig_and_openssl() {
    let _g = common::lock();
    let card = VCard::start();
    let work = Work::new(&card);
    card.clear_log();
    let t = run_logged(
        &work,
        "SignPdf",
        &mut work.java(
            "SignPdf",
            &[
                &work.config(Token::Sign).display().to_string(),
                SIGN_PASSWORD,
                &work.path_str("unsigned.pdf"),
                &work.path_str("signed.pdf"),
            ],
        ),
    );
    assert!(t.contains("signed "), "{t}");
    assert_eq!(
        card_ops(&card),
        LOGIN_AND_SIGN,
        "one login, one signature: {:?}",
        card.log()
    );
    let pdf = work.path("signed.pdf");
    let cn = common_name(&card, "sign");
    let detached = ["Signature Type: adbe.pkcs7.detached".to_string()];
    apps::pdf::check_signed_by_card(work.dir.path(), &card, &pdf, &cn, &detached);
    assert_eq!(card.tries_left(), (3, 5));
}
