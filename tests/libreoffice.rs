//! LibreOffice (Debian 12's 7.4, headless) exports a document to PDF signed with the card's
//! digital-signature key through the module, against the virtual card behind pcscd.
//!
//! LibreOffice cannot log in to a token without its dialog, so the signing goes through
//! `scripts/lo_sign_pdf.py` (a UNO client plus a Python macro that logs in inside soffice; see
//! docs/libreoffice.md). The PDF is checked with `pdfsig` (poppler, NSS with only the CA
//! trusted) and its CMS signature again with `openssl cms` against the card's certificate; the
//! card's APDU log shows the password presented for the signature itself
//! (CKA_ALWAYS_AUTHENTICATE) and the authentication key never used.
//!
//! Debian packages: scripts/deps/libreoffice.txt.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod apps;
mod common;

use common::VCard;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SIGN_PIN: &str = "JPKITEST1";
/// soffice's first start with a fresh profile on 2 busy cores.
const SOFFICE_TIMEOUT: Duration = Duration::from_secs(120);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lo_sign_pdf.py")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command to completion; panics with its output unless it succeeds.
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let t = text(&out);
    assert!(out.status.success(), "{what} failed ({}):\n{t}", out.status);
    t
}

/// A throw-away directory: NSS databases, the soffice profile, the document, the PDF.
struct Work {
    dir: PathBuf,
}

impl Work {
    fn new() -> Work {
        let dir = std::env::temp_dir().join(format!(
            "jpki-lo-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Work { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The NSS database LibreOffice uses, with the module registered (`modutil -add`).
    fn lo_nss_db(&self) -> PathBuf {
        let db = self.path("nssdb");
        std::fs::create_dir_all(&db).unwrap();
        let sql = format!("sql:{}", db.display());
        run(
            "certutil -N",
            Command::new("certutil").args(["-N", "--empty-password", "-d", &sql]),
        );
        run(
            "modutil -add",
            Command::new("modutil")
                .args(["-dbdir", &sql, "-add", "jpki", "-libfile"])
                .arg(common::module_path())
                .arg("-force"),
        );
        db
    }

    /// A flat ODF text document (what Writer saves as .fodt).
    fn document(&self) -> PathBuf {
        let doc = self.path("contract.fodt");
        std::fs::write(
            &doc,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3"
 office:mimetype="application/vnd.oasis.opendocument.text">
 <office:body><office:text>
  <text:p>I agree. Signed with my My Number Card.</text:p>
 </office:text></office:body>
</office:document>
"#,
        )
        .unwrap();
        doc
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A soffice process in its own process group (`soffice` is a script that runs oosplash, which
/// runs soffice.bin): dropping it kills the whole group.
struct Soffice {
    child: Child,
    log: PathBuf,
}

impl Soffice {
    fn spawn(nss_db: &Path, profile: &Path, log: PathBuf, args: &[&str]) -> Soffice {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("soffice")
            .arg("--headless")
            .arg("--invisible")
            .arg("--norestore")
            .arg("--nologo")
            .arg("--nodefault")
            .arg(format!(
                "-env:UserInstallation=file://{}",
                profile.display()
            ))
            .args(args)
            .env(
                "MOZILLA_CERTIFICATE_FOLDER",
                format!("sql:{}", nss_db.display()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("run soffice (Debian package libreoffice-writer-nogui)");
        Soffice { child, log }
    }

    /// Waits for soffice to exit by itself (e.g. `--convert-to`); panics after the timeout.
    fn wait(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < SOFFICE_TIMEOUT,
                "soffice still running after {SOFFICE_TIMEOUT:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Soffice {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this child leads (process_group(0)).
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// soffice listening on a pipe for `scripts/lo_sign_pdf.py`.
fn soffice_listening(work: &Work, nss_db: &Path) -> (Soffice, String) {
    let pipe = format!(
        "jpki-lo-{}",
        work.dir.file_name().unwrap().to_string_lossy()
    );
    let accept = format!("--accept=pipe,name={pipe};urp;");
    let soffice = Soffice::spawn(
        nss_db,
        &work.path("profile"),
        work.path("soffice.log"),
        &[&accept],
    );
    (soffice, pipe)
}

/// `scripts/lo_sign_pdf.py` with the password in JPKI_SIGN_PIN; `extra` goes before the files.
fn sign_pdf(
    work: &Work,
    pipe: &str,
    doc: &Path,
    pdf: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(SOFFICE_TIMEOUT.as_secs().to_string())
        .arg("/usr/bin/python3")
        .arg(script())
        .args(["--pipe", pipe, "--profile"])
        .arg(work.path("profile"))
        .args(extra)
        .arg(doc)
        .arg(pdf)
        .env("JPKI_SIGN_PIN", SIGN_PIN);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .expect("run /usr/bin/python3 (Debian package python3-uno)")
}

/// The subject in the order NSS (and so LibreOffice) prints it, and the CN, of a DER cert.
fn subject_and_cn(cert_der: &Path) -> (String, String) {
    let out = run(
        "openssl x509 -subject",
        Command::new("openssl")
            .args([
                "x509", "-inform", "DER", "-noout", "-subject", "-nameopt", "RFC2253", "-in",
            ])
            .arg(cert_der),
    );
    let subject = out.trim().strip_prefix("subject=").unwrap().to_string();
    let cn = subject
        .split(',')
        .find_map(|rdn| rdn.strip_prefix("CN="))
        .unwrap()
        .to_string();
    (subject, cn)
}

fn is_verify_with_data(l: &str) -> bool {
    l.starts_with("0020") && l.contains('*')
}

/// The EF an APDU names: by P2 = 80|SFI (VERIFY, COMPUTE DIGITAL SIGNATURE), or by P2 = 80 with
/// the EF selected just before (`00A4020C02 00xx`). The module uses the short form when the card
/// takes it, the long form otherwise.
fn named_ef(apdus: &[&str], j: usize) -> Option<String> {
    let p2 = apdus[j].get(6..8)?;
    if p2 != "80" {
        return Some(format!("00{:02X}", u8::from_str_radix(p2, 16).ok()? & 0x1F));
    }
    let prev = apdus.get(j.checked_sub(1)?)?;
    prev.strip_prefix("00A4020C02")
        .and_then(|rest| rest.get(..4))
        .map(str::to_string)
}

/// Asserts, on the card's APDU log, how the signature was made.
fn assert_password_presented_for_the_signature(card: &VCard) {
    let log = card.log();
    let shown = log.join("\n");
    let apdus: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let signs: Vec<usize> = (0..apdus.len())
        .filter(|&i| apdus[i].starts_with("802A"))
        .collect();
    assert_eq!(signs.len(), 1, "one COMPUTE DIGITAL SIGNATURE:\n{shown}");
    let i = signs[0];
    assert!(apdus[i].ends_with("9000"), "the card signed:\n{shown}");
    assert_eq!(
        named_ef(&apdus, i).as_deref(),
        Some("001A"),
        "signed with the signature key:\n{shown}"
    );
    // The VERIFY right before the signature (in the same transaction): the signature password.
    let v = (0..i)
        .rev()
        .find(|&j| apdus[j].starts_with("0020"))
        .unwrap_or_else(|| panic!("a VERIFY before the signature:\n{shown}"));
    assert!(
        is_verify_with_data(apdus[v]) && apdus[v].ends_with(" 9000"),
        "the signature password presented right before the signature:\n{shown}"
    );
    assert_eq!(&apdus[v][8..10], "09", "9 bytes:\n{shown}");
    assert_eq!(
        named_ef(&apdus, v).as_deref(),
        Some("001B"),
        "that VERIFY was on the signature password:\n{shown}"
    );
    assert!(
        apdus[v + 1..i]
            .iter()
            .all(|l| l.starts_with("00A4020C02001A")),
        "nothing between the VERIFY and the signature but selecting the key:\n{shown}"
    );
    // The card was locked again (another application selected) after the previous VERIFY: the
    // password was presented again for this signature, not left open from the login.
    let prev = (0..v)
        .rev()
        .find(|&j| is_verify_with_data(apdus[j]))
        .unwrap_or_else(|| panic!("a login VERIFY before the signature:\n{shown}"));
    assert!(
        apdus[prev + 1..v]
            .iter()
            .any(|l| l.starts_with("00A4040C07A0000001510000")),
        "the card's security state was cleared between the login and the signature:\n{shown}"
    );
    // The authentication key and PIN were never used.
    assert!(
        !apdus.iter().any(|l| l.starts_with("00A4020C020017")),
        "the authentication key was never used:\n{shown}"
    );
    for (j, l) in apdus.iter().enumerate() {
        if is_verify_with_data(l) {
            assert_eq!(
                named_ef(&apdus, j).as_deref(),
                Some("001B"),
                "every VERIFY with a PIN was on the signature password:\n{shown}"
            );
        }
    }
    assert_eq!(card.tries_left(), (3, 5), "no try used up");
}

#[test]
fn exports_a_pdf_signed_with_the_signature_key() {
    let _g = common::lock();
    let card = VCard::start();
    let work = Work::new();
    let nss_db = work.lo_nss_db();
    let doc = work.document();
    let pdf = work.path("contract.pdf");
    let (subject, cn) = subject_and_cn(&card.state_dir.join("sign.crt"));
    card.clear_log();

    let start = Instant::now();
    let (soffice, pipe) = soffice_listening(&work, &nss_db);
    let out = sign_pdf(&work, &pipe, &doc, &pdf, &["--subject", &subject], &[]);
    let t = text(&out);
    assert!(
        out.status.success(),
        "lo_sign_pdf.py failed ({}):\n{t}\nsoffice:\n{}",
        out.status,
        soffice.output()
    );
    eprintln!("LibreOffice signed in {:?}: {t}", start.elapsed());
    drop(soffice);
    assert!(t.contains(&format!("with {subject}")), "{t}");
    assert!(pdf.exists(), "{t}");

    let full_dn = [format!("Signer full Distinguished Name: {subject}")];
    apps::pdf::check_signed_by_card(&work.dir, &card, &pdf, &cn, &full_dn);
    assert_password_presented_for_the_signature(&card);
}

/// The plain command line (`--convert-to` with SignPDF) cannot log in to the token: the
/// signature certificate stays hidden, and soffice exits 0 without writing the PDF. Nothing is
/// presented to the card.
#[test]
fn convert_to_cannot_log_in_and_writes_no_pdf() {
    let _g = common::lock();
    let card = VCard::start();
    let work = Work::new();
    let nss_db = work.lo_nss_db();
    let doc = work.document();
    let (subject, _) = subject_and_cn(&card.state_dir.join("sign.crt"));
    card.clear_log();
    let filter = format!(
        r#"pdf:writer_pdf_Export:{{"SignPDF":{{"type":"boolean","value":"true"}},"SignCertificateSubjectName":{{"type":"string","value":"{subject}"}},"SignaturePassword":{{"type":"string","value":"{SIGN_PIN}"}}}}"#
    );
    let outdir = work.path("out");
    let mut soffice = Soffice::spawn(
        &nss_db,
        &work.path("profile"),
        work.path("soffice.log"),
        &[
            "--convert-to",
            &filter,
            "--outdir",
            outdir.to_str().unwrap(),
            doc.to_str().unwrap(),
        ],
    );
    let status = soffice.wait();
    let output = soffice.output();
    assert!(status.success(), "soffice --convert-to: {status}\n{output}");
    assert!(
        !outdir.join("contract.pdf").exists(),
        "--convert-to wrote a PDF although it cannot log in: pdfsig says\n{}",
        apps::pdf::pdfsig(
            &work.dir,
            &card.state_dir.join("sign-ca.crt"),
            &outdir.join("contract.pdf")
        )
    );
    let log = card.log();
    assert!(
        !log.iter()
            .any(|l| is_verify_with_data(l) || l.starts_with("802A")),
        "no PIN presented, nothing signed: {log:#?}"
    );
    assert_eq!(card.tries_left(), (3, 5));
}

/// A wrong *signature* password (after a correct login): LibreOffice's password callback
/// returns the same password whenever NSS asks again, and NSS retries the CKU_CONTEXT_SPECIFIC
/// login while the token answers CKR_PIN_INCORRECT — which, with a module that let it, blocked
/// the signature key (5 tries) in one export. The module ends the signing operation at the first
/// refusal, so the export fails having cost one try.
#[test]
fn a_wrong_signature_password_costs_one_try_not_five() {
    let _g = common::lock();
    let card = VCard::start();
    let work = Work::new();
    let nss_db = work.lo_nss_db();
    let doc = work.document();
    let pdf = work.path("contract.pdf");
    card.clear_log();
    let (soffice, pipe) = soffice_listening(&work, &nss_db);
    let out = sign_pdf(
        &work,
        &pipe,
        &doc,
        &pdf,
        &["--signature-password-env", "WRONG_PIN"],
        &[("WRONG_PIN", "WRONG1")],
    );
    let soffice_output = soffice.output();
    drop(soffice);
    assert!(
        !out.status.success(),
        "lo_sign_pdf.py succeeded with a wrong signature password:\n{}",
        text(&out)
    );
    assert!(!pdf.exists());
    let log = card.log();
    let wrong = log
        .iter()
        .filter(|l| is_verify_with_data(l) && l.get(8..10) == Some("06"))
        .count();
    assert!(
        !log.iter().any(|l| l.starts_with("802A")),
        "nothing signed: {log:#?}"
    );
    // NSS presents the wrong per-signature password again and again while the signing
    // operation lives; the module ends the operation at the first refusal, so one try is lost,
    // not all five.
    assert_eq!(
        (card.tries_left(), wrong),
        ((3, 4), 1),
        "one wrong per-signature password must cost exactly one try:\n{}\nsoffice:\n\
         {soffice_output}\n{log:#?}",
        text(&out)
    );
}

/// A wrong password at the script's login costs one try and nothing else: no second attempt,
/// no signature, no PDF, and the script says why.
#[test]
fn a_wrong_password_costs_one_try() {
    let _g = common::lock();
    let card = VCard::start();
    let work = Work::new();
    let nss_db = work.lo_nss_db();
    let doc = work.document();
    let pdf = work.path("contract.pdf");
    card.clear_log();
    let (soffice, pipe) = soffice_listening(&work, &nss_db);
    let out = sign_pdf(
        &work,
        &pipe,
        &doc,
        &pdf,
        &[],
        &[("JPKI_SIGN_PIN", "WRONG1")],
    );
    drop(soffice);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("ERROR login to 'JPKI Digital Signature' failed (NSS error -8177)"),
        "{t}"
    );
    assert!(!pdf.exists());
    let log = card.log();
    assert_eq!(
        log.iter().filter(|l| is_verify_with_data(l)).count(),
        1,
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("802A")), "{log:#?}");
    assert_eq!(card.tries_left(), (3, 4));
}

/// Without the password, `lo_sign_pdf.py` refuses before starting anything.
#[test]
fn the_script_needs_the_password() {
    let work = Work::new();
    let out = Command::new("/usr/bin/python3")
        .arg(script())
        .args(["--pipe", "none", "--profile"])
        .arg(work.path("profile"))
        .args(["in.odt", "out.pdf"])
        .env_remove("JPKI_SIGN_PIN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("JPKI_SIGN_PIN"), "{}", text(&out));
}
