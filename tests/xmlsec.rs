//! An XML-DSig signature made through NSS (Debian 12's libxmlsec1-nss 1.2.37) with the card's
//! digital-signature key, against the virtual card behind pcscd, run as a user would run it
//! (docs/xmlsec.md).
//!
//! The signer is what a libxmlsec1-nss application does: `tests/apps/xmlsec/xmldsig-nss-sign.c`,
//! built here with gcc and `pkg-config xmlsec1-nss`, initializes NSS on a database where the
//! module is registered with `modutil`, sets an NSS password callback that reads the password
//! from a file descriptor (never the command line), and signs an enveloped RSA-SHA256 template
//! whose `<KeyName>` is the certificate's NSS nickname, with xmlsec's NSS keys manager
//! (`CERT_FindCertByNickname`, `PK11_FindKeyByAnyCert`). The signature certificate is private
//! (the card lets it be read after the password only), so NSS finds it only if it logs in to
//! look for it, which it does only for a token that is not a public-certificates token: the
//! program must be named in the module's `signing_programs` (a configuration file chosen for
//! the run by `JPKI_PKCS11_CONF`). NSS then asks the callback twice: for the login, and for the
//! per-signature login (`CKU_CONTEXT_SPECIFIC`, the key has `CKA_ALWAYS_AUTHENTICATE`).
//!
//! The `xmlsec1` command-line tool cannot sign with the card, recorded here so that these tests
//! fail when a later xmlsec (or Debian's build of it) can: Debian 12's `xmlsec1` has no NSS at
//! all, and xmlsec's NSS setup (as `xmlsec1 --crypto nss` does it) has no password callback, so
//! NSS never logs in; with `--crypto openssl` and libp11's pkcs11 engine, xmlsec 1.2.37 built
//! with OpenSSL 3 takes the card's key for a public key.
//!
//! Every signed document is verified outside NSS and the module: `xmlsec1 --crypto openssl`
//! trusting only the card's signature CA, the embedded certificate compared with the card's. The
//! card's APDU log shows which password was presented for what.
//!
//! Panics (never skips) when a program is missing: `scripts/install-deps.sh` installs the packages
//! of `scripts/deps/xmlsec.txt`.
#![cfg(unix)]

mod apps;
mod common;
mod nss_common;

use apps::card::{card_ops, CardOp, Token, LOGIN_AND_SIGN, SIGN_PASSWORD};
use apps::{cert_pem, run, run_ok, text};
use common::VCard;
use nss_common::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The signature certificate's NSS nickname: `<token label>:<CKA_LABEL>`.
const NICK: &str = "JPKI Digital Signature:Digital Signature";

/// The signing program, as built from `tests/apps/xmlsec/xmldsig-nss-sign.c`: the name that
/// `signing_programs` lists.
const PROGRAM: &str = "xmldsig-nss-sign";

/// The program's report of one call of its NSS password callback, for the signature token.
fn asked(retry: bool) -> String {
    format!(
        "password callback: token \"{}\", retry={}",
        Token::Sign.label(),
        u8::from(retry)
    )
}

/// The text that is signed (and changed to check that verification can fail).
const DATA: &str = "Signed with the digital-signature key of a My Number Card";

/// An enveloped-signature template: RSA-SHA256 over the whole document, the key named by its
/// NSS nickname, and an empty `X509Data` that receives the signer's certificate.
fn template() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:jpki-pkcs11:test">
  <Data>{DATA}</Data>
  <Signature xmlns="http://www.w3.org/2000/09/xmldsig#">
    <SignedInfo>
      <CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      <SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <Reference URI="">
        <Transforms>
          <Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
        </Transforms>
        <DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <DigestValue/>
      </Reference>
    </SignedInfo>
    <SignatureValue/>
    <KeyInfo>
      <KeyName>{NICK}</KeyName>
      <X509Data/>
    </KeyInfo>
  </Signature>
</Document>
"#
    )
}

/// A user's setup: an NSS database with the module (`modutil -add`), the signing program built
/// from its source, the template, the module's configuration files, and a home directory of its
/// own (no configuration of the machine's user interferes).
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let setup = Setup {
            dir: TempDir::new("xmlsec"),
        };
        nss_common::module_db(&setup.path("nssdb"));
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/xmlsec/xmldsig-nss-sign.c");
        let flags = run_ok(
            Command::new("pkg-config").args(["--cflags", "--libs", "xmlsec1-nss"]),
            b"",
        );
        run_ok(
            Command::new("gcc")
                .args(["-Wall", "-Wextra", "-Werror", "-o"])
                .arg(setup.program())
                .arg(&source)
                .args(flags.split_whitespace()),
            b"",
        );
        std::fs::write(setup.path("template.xml"), template()).unwrap();
        std::fs::write(
            setup.path("signing.toml"),
            format!("signing_programs = [\"{PROGRAM}\"]\n"),
        )
        .unwrap();
        std::fs::write(
            setup.path("xmlsec1.toml"),
            format!("signing_programs = [\"xmlsec1\", \"{PROGRAM}\"]\n"),
        )
        .unwrap();
        // The default signing_programs; a file only so that the module's log says it was read.
        std::fs::write(setup.path("default.toml"), "pss = true\n").unwrap();
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db(&self) -> String {
        format!("sql:{}", self.path("nssdb").display())
    }

    fn program(&self) -> PathBuf {
        self.path(PROGRAM)
    }

    /// `program ARGS` in the setup's directory and home, with the module's configuration file
    /// `conf` (`JPKI_PKCS11_CONF`; none: the defaults) and its debug log on, fed `stdin`. Under
    /// `timeout`, so a program that loops on a refused password fails the test instead of
    /// stopping it.
    fn run(&self, program: &Path, args: &[&str], conf: Option<&Path>, stdin: &[u8]) -> Output {
        let _ = std::fs::remove_file(self.path("module.log"));
        let mut cmd = Command::new("timeout");
        cmd.arg("120")
            .arg(program)
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("JPKI_PKCS11_DEBUG", self.path("module.log"))
            .env_remove("JPKI_PKCS11_CONF");
        if let Some(conf) = conf {
            cmd.env("JPKI_PKCS11_CONF", conf);
        }
        let start = Instant::now();
        let out = run(&mut cmd, stdin);
        eprintln!("{} {args:?}: {:?}", program.display(), start.elapsed());
        assert_ne!(
            out.status.code(),
            Some(124),
            "{} {args:?} did not end within 120 s:\n{}\nmodule log:\n{}",
            program.display(),
            text(&out),
            self.module_log()
        );
        out
    }

    /// The signing program, the password on its stdin (`--passphrase-fd 0`), signing the
    /// template into `out`.
    fn sign(&self, conf: Option<&Path>, password: &str, out: &str) -> Output {
        self.run(
            &self.program(),
            &[
                "--db",
                &self.db(),
                "--passphrase-fd",
                "0",
                "--output",
                out,
                "template.xml",
            ],
            conf,
            format!("{password}\n").as_bytes(),
        )
    }

    fn module_log(&self) -> String {
        std::fs::read_to_string(self.path("module.log")).unwrap_or_default()
    }

    /// The password callback's calls the program reported (its stderr lines).
    fn callback_calls(out: &Output) -> Vec<String> {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("password callback:"))
            .map(str::to_string)
            .collect()
    }

    /// Asserts that the module was loaded by the last run and read the configuration file
    /// `conf` (its debug log), and whether it took the program for a signing program (`name`).
    fn check_module_loaded(&self, conf: &Path, signing_program: Option<&str>) {
        let log = self.module_log();
        let read = format!("configuration read from [\"{}\"]", conf.display());
        assert!(log.contains(&read), "no {read:?} in the module log:\n{log}");
        let said = "a signing program (signing_programs)";
        match signing_program {
            Some(name) => assert!(
                log.contains(&format!("{name}: {said}")),
                "the module did not take {name} for a signing program:\n{log}"
            ),
            None => assert!(!log.contains(said), "module log:\n{log}"),
        }
    }
}

/// Checks the signed document `name` outside NSS and the module: `xmlsec1 --crypto openssl`
/// verifies it trusting only the card's signature CA; the certificate it carries is the card's
/// signature certificate; the algorithms are RSA-SHA256 and SHA-256; and the same check fails
/// once the signed data is changed.
fn check_signed_xml(setup: &Setup, card: &VCard, name: &str) {
    let signed = std::fs::read_to_string(setup.path(name)).unwrap();
    for want in [
        "<SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>",
        "<DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>",
        &format!("<KeyName>{NICK}</KeyName>"),
        "<X509Certificate>",
    ] {
        assert!(signed.contains(want), "no {want:?} in:\n{signed}");
    }
    let ca = cert_pem(card, "sign-ca");
    let verify = |file: &Path| {
        let mut cmd = Command::new("xmlsec1");
        cmd.args(["verify", "--crypto", "openssl", "--trusted-pem"])
            .arg(&ca)
            .arg(file);
        run(&mut cmd, b"")
    };
    let out = verify(&setup.path(name));
    let t = text(&out);
    assert!(
        out.status.success() && t.lines().any(|l| l.trim() == "OK"),
        "xmlsec1 --crypto openssl did not verify {name}:\n{t}\n{signed}"
    );

    // The embedded certificate is the card's signature certificate.
    let b64: String = signed
        .split("<X509Certificate>")
        .nth(1)
        .and_then(|s| s.split("</X509Certificate>").next())
        .expect("an X509Certificate")
        .split_whitespace()
        .collect();
    let pem = setup.path("embedded.pem");
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    std::fs::write(
        &pem,
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    let der = setup.path("embedded.der");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&pem)
            .arg("-out")
            .arg(&der),
        b"",
    );
    assert_eq!(
        std::fs::read(&der).unwrap(),
        card.cert("sign"),
        "the signature carries the card's signature certificate"
    );

    // The same check refuses the document once the signed data is changed.
    assert!(signed.contains(DATA));
    let tampered = setup.path("tampered.xml");
    std::fs::write(&tampered, signed.replace(DATA, "Something else")).unwrap();
    let out = verify(&tampered);
    assert!(
        !out.status.success(),
        "a changed document verified:\n{}",
        text(&out)
    );
}

#[test]
fn libxmlsec1_nss_program_signs_with_the_signature_key() {
    let _g = common::lock();
    let card = VCard::start();
    let setup = Setup::new();
    let conf = setup.path("signing.toml");
    card.clear_log();
    let out = setup.sign(Some(&conf), SIGN_PASSWORD, "signed.xml");
    let t = text(&out);
    assert!(
        out.status.success(),
        "{PROGRAM} failed ({}):\n{t}\nmodule log:\n{}",
        out.status,
        setup.module_log()
    );
    setup.check_module_loaded(&conf, Some(PROGRAM));
    // NSS asked the program's callback for the signature password twice: the login to find the
    // private certificate (CKU_USER), then the per-signature login (CKU_CONTEXT_SPECIFIC).
    assert_eq!(
        Setup::callback_calls(&out),
        [asked(false), asked(false)],
        "{t}"
    );
    // The card: the password at the login, again right before the one signature; never the
    // authentication PIN, never a wrong password.
    assert_eq!(card_ops(&card), LOGIN_AND_SIGN, "{:?}", card.log());
    check_signed_xml(&setup, &card, "signed.xml");
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn libxmlsec1_nss_program_not_in_signing_programs_finds_no_key() {
    let _g = common::lock();
    let card = VCard::start();
    let setup = Setup::new();
    let conf = setup.path("default.toml");
    card.clear_log();
    // The default signing_programs: the signature token is a public-certificates token, so NSS
    // looks for the nickname without logging in, and the certificate (private) is not there.
    let out = setup.sign(Some(&conf), SIGN_PASSWORD, "signed.xml");
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("key is not found"), "{t}");
    assert!(!setup.path("signed.xml").exists());
    setup.check_module_loaded(&conf, None);
    assert_eq!(Setup::callback_calls(&out), Vec::<String>::new(), "{t}");
    assert_eq!(card_ops(&card), [], "{:?}", card.log());
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn xmlsec1_command_cannot_log_in_with_nss() {
    let _g = common::lock();
    let card = VCard::start();
    let setup = Setup::new();
    let conf = setup.path("xmlsec1.toml");
    card.clear_log();

    // Debian 12's xmlsec1 is built without dynamic loading of its crypto libraries: it has
    // OpenSSL only, `--crypto nss` is refused before anything is loaded.
    let out = setup.run(
        Path::new("xmlsec1"),
        &[
            "sign",
            "--crypto",
            "nss",
            "--crypto-config",
            &setup.db(),
            "--output",
            "signed.xml",
            "template.xml",
        ],
        Some(&conf),
        b"",
    );
    let t = text(&out);
    assert!(
        !out.status.success(),
        "xmlsec1 --crypto nss signed: update docs/xmlsec.md and this test:\n{t}"
    );
    assert!(
        t.contains(
            "dynamic xmlsec-crypto library loading is disabled and the only available crypto \
             library is 'openssl'"
        ),
        "xmlsec1 --crypto nss failed otherwise than Debian 12's: update docs/xmlsec.md:\n{t}"
    );
    assert!(!setup.path("signed.xml").exists());
    assert_eq!(setup.module_log(), "", "the module was loaded");

    // What xmlsec1 does with NSS where it has it (xmlsec 1.2.37 apps/crypto.c): NSS initialized
    // on the database by xmlSecNssAppInit, no password callback but xmlsec's default one, which
    // is none. Even with the program in signing_programs (NSS wants a login to look for the
    // certificate), NSS never calls C_Login: the certificate stays hidden, the key is not found.
    let out = setup.run(
        &setup.program(),
        &[
            "--db",
            &setup.db(),
            "--xmlsec1-defaults",
            "--output",
            "signed.xml",
            "template.xml",
        ],
        Some(&conf),
        format!("{SIGN_PASSWORD}\n").as_bytes(),
    );
    let t = text(&out);
    assert!(
        t.contains("xmlsec default NSS password callback: none"),
        "libxmlsec1-nss now has a default NSS password callback: xmlsec1 may log in, update \
         docs/xmlsec.md and this test:\n{t}"
    );
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("key is not found"), "{t}");
    assert!(!setup.path("signed.xml").exists());
    setup.check_module_loaded(&conf, Some(PROGRAM));
    assert_eq!(Setup::callback_calls(&out), Vec::<String>::new(), "{t}");
    let log = setup.module_log();
    assert!(!log.contains("C_Login"), "module log:\n{log}");
    assert_eq!(card_ops(&card), [], "{:?}", card.log());
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn libxmlsec1_nss_program_with_a_wrong_password_uses_one_try() {
    let _g = common::lock();
    let card = VCard::start();
    let setup = Setup::new();
    let conf = setup.path("signing.toml");
    card.clear_log();
    let out = setup.sign(Some(&conf), "WRONGPW1", "wrong.xml");
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("key is not found"), "{t}");
    assert!(!setup.path("wrong.xml").exists());
    setup.check_module_loaded(&conf, Some(PROGRAM));
    // The wrong password was given once; NSS asked again (retry) and the callback gave up.
    assert_eq!(
        Setup::callback_calls(&out),
        [asked(false), asked(true)],
        "{t}"
    );
    assert_eq!(
        card_ops(&card),
        [CardOp::Verify(Token::Sign, false)],
        "{:?}",
        card.log()
    );
    assert_eq!(card.tries_left(), (3, 4));

    // The right password still signs (and the counter is back to 5).
    card.clear_log();
    let out = setup.sign(Some(&conf), SIGN_PASSWORD, "signed.xml");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(card_ops(&card), LOGIN_AND_SIGN, "{:?}", card.log());
    check_signed_xml(&setup, &card, "signed.xml");
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn xmlsec1_with_the_openssl_engine_takes_the_card_key_for_a_public_key() {
    let _g = common::lock();
    let card = VCard::start();
    let setup = Setup::new();
    // The password through the module's pinentry (the token then has a protected authentication
    // path, and libp11 logs in with no PIN): xmlsec1 gives the engine no way to ask (UI_null).
    let script = apps::pinentry_giving(setup.dir.path(), SIGN_PASSWORD);
    let conf = setup.path("pinentry.toml");
    std::fs::write(&conf, format!("pinentry = '{}'\n", script.display())).unwrap();
    let key = format!(
        "pkcs11;pkcs11:token=JPKI%20Digital%20Signature;serial={};object=Digital%20Signature;\
         type=private,{}",
        apps::token_serial(&card),
        cert_pem(&card, "sign").display()
    );
    std::fs::write(
        setup.path("engine-template.xml"),
        template().replace(NICK, "jpki-sign"),
    )
    .unwrap();
    card.clear_log();
    let mut cmd = Command::new("xmlsec1");
    cmd.args([
        "sign",
        "--crypto",
        "openssl",
        "--privkey-openssl-engine:jpki-sign",
    ])
    .arg(&key)
    .args(["--output", "signed.xml", "engine-template.xml"])
    .current_dir(setup.dir.path())
    .env("HOME", setup.dir.path())
    .env("XDG_CONFIG_HOME", setup.path("config"))
    .env("PKCS11_MODULE_PATH", common::module_path())
    .env("JPKI_PKCS11_CONF", &conf)
    .env("JPKI_PKCS11_DEBUG", setup.path("module.log"))
    .env_remove("OPENSSL_CONF");
    let out = run(&mut cmd, b"");
    let t = text(&out);
    // libp11 found the key and logged in (the password asked once, accepted by the card), but
    // xmlsec 1.2.37 built with OpenSSL 3 takes a key of an engine for a public key: no key to
    // sign with, nothing signed.
    assert!(
        !out.status.success(),
        "xmlsec1 --privkey-openssl-engine signed: update docs/xmlsec.md and this test:\n{t}"
    );
    assert!(t.contains("key is not found"), "{t}");
    assert!(!setup.path("signed.xml").exists());
    let asked = std::fs::read_to_string(setup.path("pinentry.log")).unwrap_or_default();
    assert_eq!(
        asked.lines().filter(|l| *l == "GETPIN").count(),
        1,
        "{asked}\n{t}"
    );
    assert!(asked.contains("digital signature password"), "{asked}");
    assert_eq!(
        card_ops(&card),
        [CardOp::Verify(Token::Sign, true)],
        "{:?}",
        card.log()
    );
    assert_eq!(card.tries_left(), (3, 5));
}
