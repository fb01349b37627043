//! PIN entry by the module through a pinentry program (Assuan), and the configuration file, seen
//! through the built `.so`: `pkcs11-tool --login` without `--pin` makes the module ask a scripted
//! pinentry; the signature is verified with openssl against the card's certificate.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod apps;
mod common;

use apps::scripted_pinentry;
use common::VCard;
use std::path::PathBuf;
use std::process::{Command, Output};

const AUTH: &str = "JPKI User Authentication";
const SIGN: &str = "JPKI Digital Signature";

/// A temp dir with a config file; `HOME` and `XDG_CONFIG_HOME` point inside it so that no user
/// configuration of the machine interferes.
struct Setup {
    dir: PathBuf,
    conf: PathBuf,
}

impl Setup {
    fn new(name: &str, conf: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("jpki-pe-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conf_path = dir.join("jpki.toml");
        std::fs::write(&conf_path, conf).unwrap();
        Setup {
            dir,
            conf: conf_path,
        }
    }

    fn tool(&self, args: &[&str]) -> (Output, String) {
        let out = Command::new("timeout")
            .arg("60")
            .arg("pkcs11-tool")
            .arg("--module")
            .arg(common::module_path())
            .args(args)
            .env("JPKI_PKCS11_CONF", &self.conf)
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env_remove("JPKI_PKCS11_DEBUG")
            .output()
            .expect("run pkcs11-tool (Debian package opensc)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out, text)
    }

    fn pinentry_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pinentry.log")).unwrap_or_default()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sign_args<'a>(label: &'a str, id: &'a str, msg: &'a str, sig: &'a str) -> Vec<&'a str> {
    vec![
        "--token-label",
        label,
        "--login",
        "--sign",
        "--id",
        id,
        "-m",
        "SHA256-RSA-PKCS",
        "-i",
        msg,
        "-o",
        sig,
    ]
}

#[test]
fn pkcs11_tool_logs_in_through_pinentry_and_signs() {
    let _g = common::lock();
    let card = VCard::start();
    for (label, pin, id, cert, want) in [
        (
            AUTH,
            "1234",
            "01",
            "auth",
            "enter the user authentication PIN",
        ),
        (
            SIGN,
            "jpkitest1",
            "02",
            "sign",
            "enter the digital signature password",
        ),
    ] {
        let s = Setup::new(cert, "");
        let prog = scripted_pinentry(&s.dir, &format!("D {pin}\\nOK"));
        let log_file = s.dir.join("module.log");
        std::fs::write(
            &s.conf,
            format!(
                "pinentry = \"{}\"\n[log]\nlevel = \"debug\"\nfile = \"{}\"\n",
                prog.display(),
                log_file.display()
            ),
        )
        .unwrap();
        let (_, list) = s.tool(&["-L"]);
        assert!(
            list.contains("PIN pad present") || list.contains("protected authentication path"),
            "step: token flags show the protected authentication path:\n{list}"
        );
        let msg = s.dir.join("msg.txt");
        std::fs::write(&msg, b"a document").unwrap();
        let sig = s.dir.join("doc.sig");
        let (out, text) = s.tool(&sign_args(
            label,
            id,
            msg.to_str().unwrap(),
            sig.to_str().unwrap(),
        ));
        assert!(
            out.status.success(),
            "step: pkcs11-tool --login --sign without --pin on {label}:\n{text}\npinentry got:\n{}",
            s.pinentry_log()
        );
        common::openssl_verify(
            &card.state_dir.join(format!("{cert}.crt")),
            &msg,
            &sig,
            false,
        );
        let asked = s.pinentry_log();
        assert!(
            asked.contains(want),
            "step: the prompt says which PIN:\n{asked}"
        );
        assert!(
            asked.contains("Tries left: "),
            "step: the prompt shows the tries:\n{asked}"
        );
        let module_log = std::fs::read_to_string(&log_file).unwrap_or_default();
        assert!(
            !module_log.is_empty(),
            "step: debug log written to {}",
            log_file.display()
        );
        assert!(
            !module_log.to_uppercase().contains(&pin.to_uppercase()),
            "step: the PIN is never logged:\n{module_log}"
        );
    }
    assert_eq!(card.tries_left(), (3, 5), "no try burned");
}

#[test]
fn cancelled_pinentry_sends_nothing() {
    let _g = common::lock();
    let card = VCard::start();
    let s = Setup::new("cancel", "");
    let prog = scripted_pinentry(&s.dir, "ERR 83886179 Operation cancelled <Pinentry>");
    std::fs::write(&s.conf, format!("pinentry = \"{}\"\n", prog.display())).unwrap();
    card.clear_log();
    let (out, text) = s.tool(&["--token-label", AUTH, "--login", "-O"]);
    assert!(
        !out.status.success(),
        "step: cancelled login fails:\n{text}"
    );
    assert!(
        text.contains("CKR_FUNCTION_CANCELED"),
        "step: error code:\n{text}"
    );
    assert!(s.pinentry_log().contains("GETPIN"), "step: pinentry asked");
    let verifies: Vec<_> = card
        .log()
        .into_iter()
        .filter(|l| l.starts_with("0020") && l.contains('*'))
        .collect();
    assert!(
        verifies.is_empty(),
        "step: no PIN sent to the card: {verifies:?}"
    );
    assert_eq!(card.tries_left(), (3, 5));
}

#[test]
fn configuration_hides_tokens_switches_pss_off_and_survives_errors() {
    let _g = common::lock();
    let _card = VCard::start();
    let s = Setup::new("cfg", "tokens = [\"auth\"]\npss = false\n");
    let (out, list) = s.tool(&["-L"]);
    assert!(out.status.success(), "{list}");
    assert!(list.contains(AUTH), "step: auth token shown:\n{list}");
    assert!(!list.contains(SIGN), "step: sign token hidden:\n{list}");
    let (_, mechs) = s.tool(&["--token-label", AUTH, "-M"]);
    assert!(mechs.contains("SHA256-RSA-PKCS,"), "{mechs}");
    assert!(!mechs.contains("PSS"), "step: PSS switched off:\n{mechs}");

    // A broken file: a clear message in the log (stderr by default) and the defaults.
    std::fs::write(&s.conf, "tokens = [\"auth\"\npss = maybe\n").unwrap();
    let (out, text) = s.tool(&["-L"]);
    assert!(
        out.status.success(),
        "step: broken config does not stop the module:\n{text}"
    );
    assert!(
        text.contains("jpki.toml: not valid TOML, file ignored"),
        "step: message names the file:\n{text}"
    );
    assert!(
        text.contains(AUTH) && text.contains(SIGN),
        "step: defaults:\n{text}"
    );
}
