//! poppler's `pdfsig -add-signature` (Debian poppler-utils 22.12) signing a PDF with the card's
//! signature key through an NSS database where the module is registered with `modutil`, against
//! the virtual card behind pcscd, run as a user would run it (docs/pdfsig.md).
//!
//! pdfsig logs in to every token of the database that needs a login with the one password of
//! `-nss-pwd`, and refuses to go on when a second token asks: the module must show the signature
//! token alone, with a configuration file (`tokens = ["sign"]`) chosen for pdfsig's run by
//! `JPKI_PKCS11_CONF`. NSS then makes the per-signature login (`CKU_CONTEXT_SPECIFIC`) itself,
//! with the password of `-kpw`; or, with a `pinentry` configured (the token then has a protected
//! authentication path), the module asks for the password at each login (one, then one per
//! signature: pdfsig signs twice) and no
//! password is on pdfsig's command line.
//!
//! Every signed PDF is checked outside the module: by `pdfsig` trusting only the card's signature
//! CA, and by OpenSSL over the `/ByteRange` (tests/apps/pdf.rs). The card's APDU log shows which
//! password was presented for what.
//!
//! Panics (never skips) when a program is missing: `scripts/install-deps.sh` installs the packages
//! of `scripts/deps/pdfsig.txt`.
#![cfg(unix)]

mod apps;
mod common;
mod nss_common;

use apps::card::{card_ops, common_name, CardOp, Token, SIGN_PASSWORD};
use apps::{run, text};
use common::VCard;
use nss_common::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The signature certificate's NSS nickname: `<token label>:<CKA_LABEL>`.
const NICK: &str = "JPKI Digital Signature:Digital Signature";

/// What the card does for one `pdfsig -add-signature`: the password at the login, then two
/// signatures, each after its per-signature login (the module presents the password again right
/// before each). poppler 22.12 signs twice: first a throw-away CMS over the 4 bytes `PDF\0`, to
/// learn the signature's size, then the document (`FormWidgetSignature::signDocument`).
const PDFSIG_SIGNS: [CardOp; 5] = [
    CardOp::Verify(Token::Sign, true),
    CardOp::Verify(Token::Sign, true),
    CardOp::Sign(Token::Sign, true),
    CardOp::Verify(Token::Sign, true),
    CardOp::Sign(Token::Sign, true),
];

/// pdfsig's answer when a second token asks for a password (its callback serves one).
const SECOND_TOKEN: &str = "Password was not accepted to open the NSS database.";

/// A user's setup for pdfsig: an NSS database with the module (`modutil -add`), the module's
/// configuration files, an unsigned PDF, and a home directory of its own (no configuration of
/// the machine's user interferes).
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = TempDir::new("pdfsig");
        let setup = Setup { dir };
        nss_common::module_db(&setup.path("nssdb"));
        std::fs::write(setup.path("sign-only.toml"), "tokens = [\"sign\"]\n").unwrap();
        apps::pdf::write_minimal_pdf(&setup.path("unsigned.pdf"), "Signed with pdfsig");
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db(&self) -> String {
        format!("sql:{}", self.path("nssdb").display())
    }

    /// A configuration showing the signature token alone, with a scripted pinentry (Assuan)
    /// that answers every GETPIN with `answer` and logs what it was asked to `pinentry.log`.
    fn pinentry_config(&self, answer: &str) -> PathBuf {
        let script = apps::pinentry_giving(self.dir.path(), answer);
        let conf = self.path("sign-pinentry.toml");
        std::fs::write(
            &conf,
            format!("tokens = [\"sign\"]\npinentry = '{}'\n", script.display()),
        )
        .unwrap();
        conf
    }

    /// `pdfsig ARGS` with the module's configuration file `conf` (`JPKI_PKCS11_CONF`; none: the
    /// defaults, both tokens) and its debug log on. Under `timeout`: NSS repeats a refused login
    /// for as long as the password callback answers, so a hang fails the test instead of
    /// stopping it.
    fn pdfsig(&self, conf: Option<&Path>, args: &[&str]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args(["120", "pdfsig", "-nssdir", &self.db()])
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
        let out = run(&mut cmd, b"");
        eprintln!("pdfsig {args:?}: {:?}", start.elapsed());
        assert_ne!(
            out.status.code(),
            Some(124),
            "pdfsig {args:?} did not end within 120 s:\n{}\nmodule log:\n{}",
            text(&out),
            self.module_log()
        );
        out
    }

    /// `pdfsig -add-signature` of unsigned.pdf into `out` with the signature certificate.
    fn sign(&self, conf: Option<&Path>, passwords: &[&str], out: &str) -> Output {
        let mut args = passwords.to_vec();
        args.extend_from_slice(&[
            "-nick",
            NICK,
            "-reason",
            "Approved",
            "-add-signature",
            "unsigned.pdf",
            out,
        ]);
        self.pdfsig(conf, &args)
    }

    fn module_log(&self) -> String {
        std::fs::read_to_string(self.path("module.log")).unwrap_or_default()
    }

    /// Asserts that `out` succeeded; its output.
    fn ok(&self, what: &str, out: &Output) -> String {
        let t = text(out);
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{t}\nmodule log:\n{}",
            out.status,
            self.module_log()
        );
        t
    }
}

/// The signed PDF `name` is valid for pdfsig (trusting only the card's signature CA), signed by
/// the card's signature certificate, and its CMS verifies with OpenSSL over the /ByteRange.
fn check_signed_pdf(setup: &Setup, card: &VCard, name: &str) {
    let pdf = setup.path(name);
    let check = TempDir::new("pdfsig-check");
    let cn = common_name(card, "sign");
    let detached = ["Signature Type: adbe.pkcs7.detached".to_string()];
    apps::pdf::check_signed_by_card(check.path(), card, &pdf, &cn, &detached);
}

#[test]
fn pdfsig_signs_with_the_signature_token_shown_alone() {
    let _g = common::lock();
    let card = VCard::start();
    let setup = Setup::new();
    let conf = setup.path("sign-only.toml");

    // The nickname, as a user finds it: one login (the password once), nothing signed.
    card.clear_log();
    let out = setup.pdfsig(Some(&conf), &["-nss-pwd", SIGN_PASSWORD, "-list-nicks"]);
    let list = setup.ok("pdfsig -list-nicks", &out);
    assert!(
        list.lines().any(|l| l.trim() == NICK),
        "pdfsig -list-nicks:\n{list}"
    );
    assert_eq!(
        card_ops(&card),
        [CardOp::Verify(Token::Sign, true)],
        "{:?}",
        card.log()
    );

    // Sign: the login of -nss-pwd, then NSS's per-signature login with -kpw.
    card.clear_log();
    let out = setup.sign(
        Some(&conf),
        &["-nss-pwd", SIGN_PASSWORD, "-kpw", SIGN_PASSWORD],
        "signed.pdf",
    );
    setup.ok("pdfsig -add-signature", &out);
    assert_eq!(
        card_ops(&card),
        PDFSIG_SIGNS,
        "one login, two signatures: {:?}",
        card.log()
    );
    check_signed_pdf(&setup, &card, "signed.pdf");
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn pdfsig_with_pinentry_asks_the_password_at_each_login() {
    let _g = common::lock();
    let card = VCard::start();
    let setup = Setup::new();
    let conf = setup.pinentry_config(SIGN_PASSWORD);
    card.clear_log();
    // No password on the command line: -nss-pwd only has to be there (pdfsig calls NSS's login
    // only when its callback answers something); the token's protected authentication path makes
    // NSS ignore it, and the module asks through pinentry instead, at the login and again for
    // the signature (-kpw absent).
    let out = setup.sign(Some(&conf), &["-nss-pwd", "pinentry"], "signed.pdf");
    setup.ok("pdfsig -add-signature with pinentry", &out);
    let asked = std::fs::read_to_string(setup.path("pinentry.log")).unwrap_or_default();
    assert_eq!(
        asked.lines().filter(|l| *l == "GETPIN").count(),
        3,
        "three prompts (the login, each of the two signatures):\n{asked}"
    );
    assert!(
        asked.contains("digital signature password"),
        "the prompt names the signature password:\n{asked}"
    );
    assert_eq!(card_ops(&card), PDFSIG_SIGNS, "{:?}", card.log());
    check_signed_pdf(&setup, &card, "signed.pdf");
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn pdfsig_refuses_both_tokens_and_wrong_key_passwords_safely() {
    let _g = common::lock();
    let card = VCard::start();
    let setup = Setup::new();

    // Both tokens shown (no configuration): pdfsig's one password goes to the first token that
    // asks, and it gives up at the second. Nothing is signed and no wrong password reaches the
    // card (the signature password has the wrong format for the authentication PIN: refused
    // before the card).
    card.clear_log();
    let out = setup.sign(
        None,
        &["-nss-pwd", SIGN_PASSWORD, "-kpw", SIGN_PASSWORD],
        "both.pdf",
    );
    let t = text(&out);
    assert!(!out.status.success() && t.contains(SECOND_TOKEN), "{t}");
    assert!(!setup.path("both.pdf").exists());
    let ops = card_ops(&card);
    assert!(
        ops.iter().all(|o| *o == CardOp::Verify(Token::Sign, true)),
        "no wrong PIN, no signature: {ops:?}"
    );
    assert_eq!(card.tries_left(), (3, 5));

    let conf = setup.path("sign-only.toml");
    // No -kpw: NSS's per-signature login gets an empty password, refused before the card; the
    // signing operation ends there (NSS would otherwise repeat it forever) and nothing is signed.
    card.clear_log();
    let _ = std::fs::remove_file(setup.path("module.log"));
    let out = setup.sign(Some(&conf), &["-nss-pwd", SIGN_PASSWORD], "nokpw.pdf");
    assert!(!out.status.success(), "{}", text(&out));
    // The module's log (JPKI_PKCS11_DEBUG, which NSS's early C_GetInterface calls once kept from
    // taking effect) tells why: the empty password refused, then the operation gone.
    let log = setup.module_log();
    for want in [
        "digital signature password refused before the card (no try used)",
        "C_Login -> CKR_PIN_INCORRECT",
        "C_Login -> CKR_OPERATION_NOT_INITIALIZED",
        "C_Sign -> CKR_OPERATION_NOT_INITIALIZED",
    ] {
        assert!(log.contains(want), "module log: no {want:?}:\n{log}");
    }
    assert!(!setup.path("nokpw.pdf").exists());
    assert_eq!(
        card_ops(&card),
        [CardOp::Verify(Token::Sign, true)],
        "only the login's password: {:?}",
        card.log()
    );
    assert_eq!(card.tries_left(), (3, 5));

    // A wrong -kpw: presented once (one try used), never again, nothing signed.
    card.clear_log();
    let out = setup.sign(
        Some(&conf),
        &["-nss-pwd", SIGN_PASSWORD, "-kpw", "WRONGPW1"],
        "wrong.pdf",
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!setup.path("wrong.pdf").exists());
    assert_eq!(
        card_ops(&card),
        [
            CardOp::Verify(Token::Sign, true),
            CardOp::Verify(Token::Sign, false)
        ],
        "{:?}",
        card.log()
    );
    assert_eq!(card.tries_left(), (3, 4));

    // After all this, the right passwords still sign.
    card.clear_log();
    let out = setup.sign(
        Some(&conf),
        &["-nss-pwd", SIGN_PASSWORD, "-kpw", SIGN_PASSWORD],
        "signed.pdf",
    );
    setup.ok("pdfsig -add-signature", &out);
    assert_eq!(card_ops(&card), PDFSIG_SIGNS, "{:?}", card.log());
    check_signed_pdf(&setup, &card, "signed.pdf");
    assert_eq!(card.tries_left(), (3, 5));
}
