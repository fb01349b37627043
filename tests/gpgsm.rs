//! GnuPG's `gpgsm` (Debian 12: 2.2.40) signing with the card's signature key through
//! `gnupg-pkcs11-scd` (0.10.0, pkcs11-helper 1.29) and the module, against the virtual card behind
//! pcscd, run as a user would run it (docs/gpgsm.md), in a GnuPG home of its own.
//!
//! The card lets its signature certificate be read only after the signature password, and
//! gpg-agent's card learning (`gpgsm --learn-card`, Assuan `LEARN`) cannot ask for a PIN: it has
//! no answer to gnupg-pkcs11-scd's `NEEDPIN` inquiry. The recipe:
//!
//! - `provider-jpki-cert-private` in gnupg-pkcs11-scd.conf (log in before looking for
//!   certificates), and the module showing the signature token alone (`tokens = ["sign"]`, by a
//!   wrapper named as gpg-agent's `scdaemon-program` that sets `JPKI_PKCS11_CONF`);
//! - `gpg-connect-agent 'SCD LEARN --force' /bye` first: gpg-agent passes that command through
//!   and does answer `NEEDPIN` (pinentry), so gnupg-pkcs11-scd logs in and finds the signature
//!   certificate; then `gpgsm --learn-card` gets it from gnupg-pkcs11-scd's cache and records the
//!   key as a card key;
//! - the CA imported and trusted (`trustlist.txt`), CRL checks off (the card's test CA has none);
//! - then `gpgsm --detach-sign` / `--sign`: one password prompt per signature (pkcs11-helper makes
//!   the per-signature login, `CKU_CONTEXT_SPECIFIC`), plus one for the login when
//!   gnupg-pkcs11-scd has just started; through pinentry, or gpg-agent's loopback pinentry
//!   (`--pinentry-mode loopback --passphrase-fd`).
//!
//! What happens without it is recorded too (`gpgsm_without_the_recipe`): without
//! `cert-private` the signature certificate is never learned; with it, `gpgsm --learn-card` alone
//! fails ("No inquire callback in IPC") and leaves gnupg-pkcs11-scd unable to log in until it is
//! restarted; with both tokens shown, SCD LEARN also asks for the authentication PIN, and
//! cancelling that prompt ends the learning.
//!
//! Every signature is checked outside the module by `openssl cms -verify` trusting only the
//! card's signature CA, and by `gpgsm --verify`. gpg-agent 2.2 puts a zero byte in front of a card
//! RSA signature whose first byte is 0x80 or more (agent/pksign.c; gone in GnuPG 2.3), so some of
//! gpgsm's signatures (up to half, depending on the key) carry a 257-byte signature value, which
//! OpenSSL refuses ("wrong signature length"): the test asserts exactly that for those, then
//! checks the same CMS with that byte removed. The card's APDU log shows which password was presented for what.
//!
//! Panics (never skips) when a program is missing: `scripts/install-deps.sh` installs the packages
//! of `scripts/deps/gpgsm.txt`.
#![cfg(unix)]

mod apps;
mod common;
mod nss_common;

use apps::card::{card_ops, common_name, CardOp, Token, AUTH_PIN, SIGN_PASSWORD};
use apps::{cert_pem, run, run_ok, text};
use common::VCard;
use nss_common::TempDir;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const LOGIN: CardOp = CardOp::Verify(Token::Sign, true);
const SIGN: CardOp = CardOp::Sign(Token::Sign, true);

/// How gpg-agent's pinentry prompt names a token (gnupg-pkcs11-scd's token id, Assuan-escaped).
const SIGN_TOKEN_PROMPT: &str = "JPKI\\x20Digital\\x20Signature";
const AUTH_TOKEN_PROMPT: &str = "JPKI\\x20User\\x20Authentication";

/// The module's configuration and gnupg-pkcs11-scd's, as a user sets them up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    /// The recipe: the signature token alone, `cert-private`.
    Recipe,
    /// The module's defaults (both tokens), and gnupg-pkcs11-scd.conf as its manual shows it
    /// (no `cert-private`).
    Defaults,
    /// The module's defaults (both tokens), gnupg-pkcs11-scd.conf with `cert-private`.
    BothTokensCertPrivate,
}

/// A user's GnuPG home for gpgsm with gnupg-pkcs11-scd, in a directory of its own (also `HOME`,
/// so no configuration of the machine's user interferes). Kills its gpg-agent (and with it
/// gnupg-pkcs11-scd) when dropped, also when the test panicked.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new(config: Config) -> Setup {
        let setup = Setup {
            dir: TempDir::new("gpgsm"),
        };
        let home = setup.gnupghome();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();

        // The module's configuration for gnupg-pkcs11-scd, set by a wrapper script named as
        // gpg-agent's scdaemon-program (gpg-agent may have been started without the user's
        // environment, e.g. by systemd).
        let scd = if config == Config::Recipe {
            let conf = setup.path("gpgsm.toml");
            std::fs::write(&conf, "tokens = [\"sign\"]\n").unwrap();
            let wrapper = setup.path("jpki-gnupg-pkcs11-scd");
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\nJPKI_PKCS11_CONF='{}' exec /usr/bin/gnupg-pkcs11-scd \"$@\"\n",
                    conf.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
            wrapper
        } else {
            PathBuf::from("/usr/bin/gnupg-pkcs11-scd")
        };
        std::fs::write(
            home.join("gpg-agent.conf"),
            format!(
                "scdaemon-program {}\npinentry-program {}\nallow-loopback-pinentry\n",
                scd.display(),
                setup.pinentry().display()
            ),
        )
        .unwrap();
        let cert_private = if config == Config::Defaults {
            ""
        } else {
            "provider-jpki-cert-private\n"
        };
        std::fs::write(
            home.join("gnupg-pkcs11-scd.conf"),
            format!(
                "providers jpki\nprovider-jpki-library {}\n{cert_private}",
                common::module_path().display()
            ),
        )
        .unwrap();
        std::fs::write(home.join("gpgsm.conf"), "disable-crl-checks\n").unwrap();
        std::fs::write(setup.path("message.txt"), "Signed with gpgsm\n").unwrap();
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn gnupghome(&self) -> PathBuf {
        self.path("gnupg")
    }

    /// A scripted pinentry (Assuan) standing in for the user: it logs what it was asked to
    /// `pinentry.log`, answers the signature password, and cancels a prompt for the
    /// authentication token's PIN (as a user who only means to sign would), or, once the file
    /// `answer-auth` exists, answers it.
    fn pinentry(&self) -> PathBuf {
        let script = self.path("pinentry.sh");
        if !script.exists() {
            std::fs::write(
                &script,
                format!(
                    "#!/bin/sh\necho 'OK Pleased to meet you'\ndesc=\n\
                     while IFS= read -r line; do\n  printf '%s\\n' \"$line\" >> '{log}'\n  \
                     case \"$line\" in\n    SETDESC*) desc=\"$line\"; echo OK ;;\n    \
                     GETPIN) case \"$desc\" in\n      *User*Authentication*) \
                     if [ -e '{auth}' ]; then printf 'D %s\\nOK\\n' '{AUTH_PIN}'; \
                     else echo 'ERR 83886179 Operation cancelled <Pinentry>'; fi ;;\n      \
                     *) printf 'D %s\\nOK\\n' '{SIGN_PASSWORD}' ;;\n    esac ;;\n    \
                     BYE) echo 'OK closing connection'; exit 0 ;;\n    *) echo OK ;;\n  esac\n\
                     done\n",
                    log = self.path("pinentry.log").display(),
                    auth = self.path("answer-auth").display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        script
    }

    /// The prompts (`SETDESC` lines) the pinentry answered since the last call.
    fn prompts(&self) -> Vec<String> {
        let log = self.path("pinentry.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        let mut prompts = Vec::new();
        let mut desc = String::new();
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("SETDESC ") {
                desc = d.to_string();
            } else if line == "GETPIN" {
                prompts.push(std::mem::take(&mut desc));
            }
        }
        prompts
    }

    /// `program ARGS` with this GnuPG home, under `timeout` (a hang fails the test).
    fn gnupg(&self, program: &str, args: &[&str]) -> Output {
        self.gnupg_stdin(program, args, b"")
    }

    /// Like [`Setup::gnupg`], with `stdin`.
    fn gnupg_stdin(&self, program: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args(["120", program])
            .args(args)
            .current_dir(self.dir.path())
            .env("GNUPGHOME", self.gnupghome())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("JPKI_PKCS11_DEBUG", self.path("module.log"))
            // GnuPG's messages in English, whatever the machine's locale.
            .env("LC_ALL", "C")
            .env_remove("LANGUAGE")
            .env_remove("JPKI_PKCS11_CONF")
            .env_remove("GPG_AGENT_INFO")
            .env_remove("GPG_TTY");
        let start = Instant::now();
        let out = run(&mut cmd, stdin);
        eprintln!("{program} {args:?}: {:?}", start.elapsed());
        assert_ne!(
            out.status.code(),
            Some(124),
            "{program} {args:?} did not end within 120 s:\n{}",
            text(&out)
        );
        out
    }

    /// Asserts that `out` succeeded; its output.
    fn ok(&self, what: &str, out: &Output) -> String {
        let t = text(out);
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{t}\nmodule log:\n{}",
            out.status,
            std::fs::read_to_string(self.path("module.log")).unwrap_or_default()
        );
        t
    }

    /// `gpg-connect-agent 'SCD LEARN --force' /bye`: gnupg-pkcs11-scd's LEARN through gpg-agent's
    /// pass-through, which answers its PIN inquiries with pinentry. Its Assuan answer lines.
    fn scd_learn(&self) -> String {
        let out = self.gnupg("gpg-connect-agent", &["SCD LEARN --force", "/bye"]);
        self.ok("gpg-connect-agent SCD LEARN", &out)
    }

    /// `gpgsm --learn-card`.
    fn learn_card(&self) -> Output {
        self.gnupg("gpgsm", &["--batch", "--learn-card"])
    }

    /// The certificates for which gpgsm has a (card) key: `gpgsm -K`.
    fn secret_keys(&self) -> String {
        let out = self.gnupg("gpgsm", &["--batch", "-K"]);
        self.ok("gpgsm -K", &out)
    }

    /// Imports the card's signature CA and trusts it as a root (`trustlist.txt`). Its PEM.
    fn trust_ca(&self, card: &VCard) -> PathBuf {
        let ca = cert_pem(card, "sign-ca");
        let ca_path = ca.to_str().unwrap();
        let out = self.gnupg("gpgsm", &["--batch", "--import", ca_path]);
        self.ok("gpgsm --import", &out);
        let fpr = run_ok(
            Command::new("openssl").args([
                "x509",
                "-noout",
                "-fingerprint",
                "-sha1",
                "-in",
                ca_path,
            ]),
            b"",
        );
        let fpr = fpr.trim().rsplit('=').next().unwrap().to_string();
        std::fs::write(self.gnupghome().join("trustlist.txt"), format!("{fpr} S\n")).unwrap();
        ca
    }

    /// `gpgconf --kill all`: gpg-agent and gnupg-pkcs11-scd end (as at a logout or reboot).
    fn kill_agent(&self) {
        let _ = self.gnupg("gpgconf", &["--kill", "all"]);
    }

    /// `gpgsm -u <the signature certificate> ARGS -o <out> message.txt`; with `loopback`, the
    /// password comes from `--passphrase-fd 0` (gpg-agent's loopback pinentry) instead of
    /// pinentry.
    fn sign(&self, card: &VCard, args: &[&str], out: &str, loopback: bool) -> Output {
        let fpr = run_ok(
            Command::new("openssl")
                .args([
                    "x509",
                    "-inform",
                    "DER",
                    "-noout",
                    "-fingerprint",
                    "-sha1",
                    "-in",
                ])
                .arg(card.state_dir.join("sign.crt")),
            b"",
        );
        let fpr = fpr.trim().rsplit('=').next().unwrap().replace(':', "");
        let mut all = vec!["--batch", "-u", &fpr];
        all.extend_from_slice(args);
        let mut stdin = Vec::new();
        if loopback {
            all.extend_from_slice(&["--pinentry-mode", "loopback", "--passphrase-fd", "0"]);
            stdin = format!("{SIGN_PASSWORD}\n").into_bytes();
        }
        all.extend_from_slice(&["-o", out, "message.txt"]);
        self.gnupg_stdin("gpgsm", &all, &stdin)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "all"])
            .env("GNUPGHOME", self.gnupghome())
            .env("HOME", self.dir.path())
            .output();
    }
}

/// The children of the DER element `elem` (whole TLVs) and its tag and content.
fn der_split(elem: &[u8]) -> (u8, &[u8], usize) {
    let (len, hdr) = match elem[1] {
        l if l < 0x80 => (l as usize, 2),
        l => {
            let k = (l & 0x7f) as usize;
            let len = elem[2..2 + k]
                .iter()
                .fold(0usize, |a, b| a << 8 | *b as usize);
            (len, 2 + k)
        }
    };
    (elem[0], &elem[hdr..hdr + len], hdr + len)
}

fn der_children(content: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (_, _, total) = der_split(rest);
        out.push(&rest[..total]);
        rest = &rest[total..];
    }
    out
}

fn der_encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// How to find the next element on a path down a DER tree.
#[derive(Clone, Copy)]
enum Pick {
    First,
    Last,
    Tag(u8),
}

/// `elem` with the element at `path` replaced by `leaf(its content)` (same tag), every length on
/// the way re-encoded.
fn der_rewrite(elem: &[u8], path: &[Pick], leaf: &dyn Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let (tag, content, _) = der_split(elem);
    let Some((pick, rest)) = path.split_first() else {
        return der_encode(tag, &leaf(content));
    };
    let kids = der_children(content);
    let at = match pick {
        Pick::First => 0,
        Pick::Last => kids.len() - 1,
        Pick::Tag(t) => kids
            .iter()
            .position(|k| k[0] == *t)
            .unwrap_or_else(|| panic!("no element with tag {t:#x}")),
    };
    let mut out = Vec::new();
    for (i, kid) in kids.iter().enumerate() {
        if i == at {
            out.extend(der_rewrite(kid, rest, leaf));
        } else {
            out.extend_from_slice(kid);
        }
    }
    der_encode(tag, &out)
}

/// The path from a CMS ContentInfo to its (first) signer's signature value: content [0],
/// SignedData, signerInfos (its last field), the SignerInfo, the OCTET STRING.
const SIGNATURE_VALUE: [Pick; 5] = [
    Pick::Tag(0xA0),
    Pick::First,
    Pick::Last,
    Pick::First,
    Pick::Tag(0x04),
];

/// Checks the CMS signature `sig` (DER or BER, as gpgsm writes it) outside the module: `openssl
/// cms -verify` trusting only the card's signature CA (`ca`), signed by the card's signature
/// certificate, over message.txt (detached) or containing it (opaque); and `gpgsm --verify`.
/// Returns whether the signature value carries gpg-agent 2.2's extra leading zero byte.
fn check_signature(setup: &Setup, card: &VCard, ca: &Path, sig: &str, detached: bool) -> bool {
    let message = std::fs::read(setup.path("message.txt")).unwrap();
    // OpenSSL re-encodes gpgsm's BER (indefinite lengths) as DER.
    let der = setup.path(&format!("{sig}.der"));
    run_ok(
        Command::new("openssl")
            .args(["cms", "-cmsout", "-inform", "DER", "-outform", "DER", "-in"])
            .arg(setup.path(sig))
            .arg("-out")
            .arg(&der),
        b"",
    );
    let bytes = std::fs::read(&der).unwrap();
    let value = std::cell::RefCell::new(Vec::new());
    der_rewrite(&bytes, &SIGNATURE_VALUE, &|v| {
        *value.borrow_mut() = v.to_vec();
        v.to_vec()
    });
    let value = value.into_inner();
    let padded = value.len() == 257 && value[0] == 0 && value[1] >= 0x80;
    assert!(
        value.len() == 256 || padded,
        "{sig}: a signature value of {} bytes (2048-bit key)",
        value.len()
    );

    let verify = |file: &Path| {
        let signer = setup.path(&format!("{sig}.signer.pem"));
        let content = setup.path(&format!("{sig}.content"));
        let mut cmd = Command::new("openssl");
        cmd.args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in",
        ])
        .arg(file)
        .arg("-CAfile")
        .arg(ca)
        .arg("-signer")
        .arg(&signer)
        .arg("-out")
        .arg(&content);
        if detached {
            cmd.arg("-content").arg(setup.path("message.txt"));
        }
        let out = run(&mut cmd, b"");
        (out, signer, content)
    };
    let (out, signer, content) = verify(&der);
    if padded {
        // gpg-agent 2.2's zero byte: OpenSSL refuses the signature as it is...
        let t = text(&out);
        assert!(
            !out.status.success() && t.contains("wrong signature length"),
            "{sig}: OpenSSL on a 257-byte signature value:\n{t}"
        );
        // ...and accepts the same CMS with that byte removed.
        let fixed = setup.path(&format!("{sig}.fixed.der"));
        std::fs::write(
            &fixed,
            der_rewrite(&bytes, &SIGNATURE_VALUE, &|v| v[1..].to_vec()),
        )
        .unwrap();
        let (out, _, _) = verify(&fixed);
        setup.ok("openssl cms -verify (leading zero removed)", &out);
    } else {
        setup.ok("openssl cms -verify", &out);
    }
    let signer = std::fs::read_to_string(signer).unwrap();
    let card_cert = std::fs::read_to_string(cert_pem(card, "sign")).unwrap();
    assert_eq!(signer.trim(), card_cert.trim(), "{sig}: the signer");
    assert_eq!(std::fs::read(content).unwrap(), message, "{sig}: content");

    let sig_path = setup.path(sig);
    let mut args = vec!["--batch", "--verify", sig_path.to_str().unwrap()];
    if detached {
        args.push("message.txt");
    }
    let out = setup.gnupg("gpgsm", &args);
    let t = setup.ok("gpgsm --verify", &out);
    let cn = common_name(card, "sign");
    assert!(
        t.contains("Good signature from") && t.contains(&cn),
        "gpgsm --verify {sig}:\n{t}"
    );
    padded
}

#[test]
fn gpgsm_signs_with_the_signature_token_shown_alone() {
    let _g = common::lock();
    let card = VCard::start();
    let setup = Setup::new(Config::Recipe);
    let cn = common_name(&card, "sign");

    // SCD LEARN through gpg-agent, first: one prompt, for the signature token; the password once.
    card.clear_log();
    let learned = setup.scd_learn();
    assert!(
        learned.contains("KEYPAIRINFO") && !learned.contains("ERR"),
        "{learned}"
    );
    let prompts = setup.prompts();
    assert_eq!(prompts.len(), 1, "{prompts:?}");
    assert!(prompts[0].contains(SIGN_TOKEN_PROMPT), "{prompts:?}");
    assert_eq!(card_ops(&card), [LOGIN], "{:?}", card.log());

    // gpgsm --learn-card: the signature certificate, as a card key; nothing asked, nothing sent.
    card.clear_log();
    let out = setup.learn_card();
    setup.ok("gpgsm --learn-card", &out);
    assert!(setup.prompts().is_empty());
    assert_eq!(card_ops(&card), [], "{:?}", card.log());
    let keys = setup.secret_keys();
    assert!(keys.contains(&cn), "gpgsm -K:\n{keys}");
    let ca = setup.trust_ca(&card);

    let mut padded = 0;
    // A detached signature, gnupg-pkcs11-scd still logged in from the learning: one prompt (the
    // per-signature login).
    card.clear_log();
    let out = setup.sign(&card, &["--detach-sign"], "1.sig", false);
    setup.ok("gpgsm --detach-sign", &out);
    let prompts = setup.prompts();
    assert_eq!(prompts.len(), 1, "{prompts:?}");
    assert_eq!(card_ops(&card), [LOGIN, SIGN], "{:?}", card.log());
    padded += check_signature(&setup, &card, &ca, "1.sig", true) as usize;

    // A new gpg-agent and gnupg-pkcs11-scd (as after a logout): two prompts, the login (to
    // find the certificate) and the per-signature login.
    setup.kill_agent();
    card.clear_log();
    let out = setup.sign(&card, &["--detach-sign"], "2.sig", false);
    setup.ok("gpgsm --detach-sign after a restart", &out);
    let prompts = setup.prompts();
    assert_eq!(prompts.len(), 2, "{prompts:?}");
    assert!(
        prompts.iter().all(|p| p.contains(SIGN_TOKEN_PROMPT)),
        "{prompts:?}"
    );
    assert_eq!(card_ops(&card), [LOGIN, LOGIN, SIGN], "{:?}", card.log());
    padded += check_signature(&setup, &card, &ca, "2.sig", true) as usize;

    // An opaque signature with gpg-agent's loopback pinentry: no pinentry, the password from
    // --passphrase-fd; one per-signature login.
    card.clear_log();
    let out = setup.sign(&card, &["--sign"], "3.sig", true);
    setup.ok("gpgsm --sign (loopback)", &out);
    assert!(setup.prompts().is_empty());
    assert_eq!(card_ops(&card), [LOGIN, SIGN], "{:?}", card.log());
    padded += check_signature(&setup, &card, &ca, "3.sig", false) as usize;

    // Loopback after a restart: the one password serves both logins.
    setup.kill_agent();
    card.clear_log();
    let out = setup.sign(&card, &["--detach-sign"], "4.sig", true);
    setup.ok("gpgsm --detach-sign (loopback) after a restart", &out);
    assert!(setup.prompts().is_empty());
    assert_eq!(card_ops(&card), [LOGIN, LOGIN, SIGN], "{:?}", card.log());
    padded += check_signature(&setup, &card, &ca, "4.sig", true) as usize;

    eprintln!("signatures with gpg-agent 2.2's leading zero byte: {padded} of 4");
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn gpgsm_without_the_recipe() {
    let _g = common::lock();
    let card = VCard::start();
    let sign_cn = common_name(&card, "sign");
    let auth_cn = common_name(&card, "auth");

    // Both tokens, gnupg-pkcs11-scd.conf as its manual shows it: the learning asks nothing and
    // sends no PIN; it finds the authentication certificate, never the signature certificate
    // (the card shows it only after the password).
    let setup = Setup::new(Config::Defaults);
    card.clear_log();
    let out = setup.learn_card();
    setup.ok("gpgsm --learn-card", &out);
    assert!(setup.prompts().is_empty());
    assert_eq!(card_ops(&card), [], "{:?}", card.log());
    let keys = setup.secret_keys();
    assert!(
        keys.contains(&auth_cn) && !keys.contains(&sign_cn),
        "gpgsm -K:\n{keys}"
    );
    drop(setup);

    // With cert-private, gpgsm --learn-card alone fails: gnupg-pkcs11-scd must log in, and
    // gpg-agent's LEARN has no answer to its PIN inquiry. Nothing asked, nothing sent.
    let setup = Setup::new(Config::BothTokensCertPrivate);
    card.clear_log();
    let out = setup.learn_card();
    let t = text(&out);
    assert!(
        !out.status.success() && t.contains("No inquire callback in IPC"),
        "{t}"
    );
    assert!(setup.prompts().is_empty());
    assert_eq!(card_ops(&card), [], "{:?}", card.log());
    // And the gnupg-pkcs11-scd it started stays without a login: SCD LEARN now asks nothing
    // either, and still finds no signature certificate, until gnupg-pkcs11-scd is restarted.
    let learned = setup.scd_learn();
    assert!(setup.prompts().is_empty(), "{learned}");
    assert_eq!(card_ops(&card), [], "{:?}", card.log());
    setup.kill_agent();

    // SCD LEARN in a new gnupg-pkcs11-scd, both tokens shown: the authentication token's PIN is
    // asked first; cancelling it ends the learning (nothing reaches the card, no signature
    // certificate)...
    card.clear_log();
    let learned = setup.scd_learn();
    assert!(
        learned.contains("ERR 83886179 Operation cancelled") && !learned.contains("KEYPAIRINFO"),
        "{learned}"
    );
    let prompts = setup.prompts();
    assert_eq!(prompts.len(), 1, "{prompts:?}");
    assert!(prompts[0].contains(AUTH_TOKEN_PROMPT), "{prompts:?}");
    assert_eq!(card_ops(&card), [], "{:?}", card.log());
    setup.kill_agent();

    // ...so the user must type both: the authentication PIN, then the signature password.
    std::fs::write(setup.path("answer-auth"), "").unwrap();
    card.clear_log();
    let learned = setup.scd_learn();
    assert!(learned.contains("KEYPAIRINFO"), "{learned}");
    let prompts = setup.prompts();
    assert_eq!(prompts.len(), 2, "{prompts:?}");
    assert!(prompts[0].contains(AUTH_TOKEN_PROMPT), "{prompts:?}");
    assert!(prompts[1].contains(SIGN_TOKEN_PROMPT), "{prompts:?}");
    assert_eq!(
        card_ops(&card),
        [CardOp::Verify(Token::Auth, true), LOGIN],
        "{:?}",
        card.log()
    );
    let out = setup.learn_card();
    setup.ok("gpgsm --learn-card", &out);
    assert!(setup.prompts().is_empty());
    let keys = setup.secret_keys();
    assert!(keys.contains(&sign_cn), "gpgsm -K:\n{keys}");

    // Signing itself is the same with both tokens shown: one prompt, the signature password.
    let ca = setup.trust_ca(&card);
    card.clear_log();
    let out = setup.sign(&card, &["--detach-sign"], "both.sig", false);
    setup.ok("gpgsm --detach-sign", &out);
    let prompts = setup.prompts();
    assert_eq!(prompts.len(), 1, "{prompts:?}");
    assert!(prompts[0].contains(SIGN_TOKEN_PROMPT), "{prompts:?}");
    assert_eq!(card_ops(&card), [LOGIN, SIGN], "{:?}", card.log());
    check_signature(&setup, &card, &ca, "both.sig", true);
    assert_eq!(card.tries_left(), (3, 5));
}
