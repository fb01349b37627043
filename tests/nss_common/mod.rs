//! What the NSS client tests (`tests/nss_tools.rs`, `tests/firefox.rs`) share: an NSS database
//! with the module, a local `openssl s_server` that requires a client certificate, the checks on
//! what the server saw, and the check that the signature key was never touched (from the virtual
//! card's APDU log).
#![allow(dead_code)] // each test binary uses a different part

use crate::common::s_server::SServer;
use crate::common::VCard;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The built module (`TEST_PKCS11_MODULE` overrides).
pub fn module() -> PathBuf {
    super::common::module_path()
}

/// Runs a command; panics with its output unless it succeeds. Returns stdout + stderr.
pub fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    let text = text(&out);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

pub fn output(cmd: &mut Command) -> Output {
    let name = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot run {name} ({e}): install the packages of scripts/deps/nss.txt")
    })
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "jpki-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test PKI of the TLS server: a test CA (which the clients trust) and the server's
/// certificate for `127.0.0.1` issued by it; plus the card's user-authentication CA in PEM,
/// which the server trusts for client certificates.
pub struct Pki {
    pub dir: TempDir,
}

pub const SERVER_CA_NAME: &str = "jpki-pkcs11 test server CA";

impl Pki {
    pub fn new(card: &VCard) -> Pki {
        let dir = TempDir::new("tls-pki");
        let d = dir.path();
        let ossl = |args: &[&str]| {
            run(Command::new("openssl").current_dir(d).args(args));
        };
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            &format!("/CN={SERVER_CA_NAME}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        ossl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            d.join("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        ossl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        let auth_ca = card.state_dir.join("auth-ca.crt");
        run(Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&auth_ca)
            .arg("-out")
            .arg(d.join("client-ca.pem")));
        Pki { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// Creates an NSS database in `dir` (created if missing; no password on the internal token) and
/// adds the module the way an administrator would (`modutil -add`). Its `sql:` name.
pub fn module_db(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let db = format!("sql:{}", dir.display());
    run(Command::new("certutil").args(["-N", "--empty-password", "-d", &db]));
    run(Command::new("modutil")
        .args(["-dbdir", &db, "-add", "jpki", "-libfile"])
        .arg(module())
        .arg("-force"));
    db
}

/// [`module_db`], and the server's test CA trusted for TLS servers.
pub fn nss_db(dir: &Path, pki: &Pki) {
    let db = module_db(dir);
    run(Command::new("certutil")
        .args(["-A", "-d", &db, "-n", SERVER_CA_NAME, "-t", "CT,C,C", "-i"])
        .arg(pki.ca()));
}

/// TLS versions the server is restricted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    V12,
    V13,
}

impl Tls {
    /// As `openssl s_server -www` prints it (`Protocol  : TLSv1.3`).
    pub fn name(self) -> &'static str {
        match self {
            Tls::V12 => "TLSv1.2",
            Tls::V13 => "TLSv1.3",
        }
    }
}

/// `openssl s_server -www -Verify 1` on 127.0.0.1 (a free port), one TLS version only: it
/// refuses a client without a certificate from the card's CA, and its page shows the protocol,
/// the peer signature type and the client certificate. Killed on drop.
pub struct TlsServer {
    server: SServer,
    pub port: u16,
}

impl TlsServer {
    pub fn start(pki: &Pki, version: Tls) -> TlsServer {
        let d = pki.dir.path();
        let server = SServer::start(
            d,
            d.join(format!("s_server-{}.log", version.name())),
            &[
                "-cert",
                "server.pem",
                "-key",
                "server.key",
                "-Verify",
                "1",
                "-CAfile",
                "client-ca.pem",
                "-www",
                match version {
                    Tls::V12 => "-tls1_2",
                    Tls::V13 => "-tls1_3",
                },
            ],
        );
        TlsServer {
            port: server.port,
            server,
        }
    }

    pub fn log_text(&self) -> String {
        self.server.log_text()
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }
}

/// The subject of the card's user-authentication certificate as `s_server -www` prints the
/// client certificate's (`C=JP, CN=…`).
pub fn auth_subject(card: &VCard) -> String {
    let text = run(Command::new("openssl")
        .args([
            "x509", "-inform", "DER", "-noout", "-subject", "-nameopt", "compat", "-in",
        ])
        .arg(card.state_dir.join("auth.crt")));
    let rdns: Vec<&str> = text
        .trim()
        .strip_prefix("subject=/")
        .unwrap_or_else(|| panic!("openssl x509 -subject: {text}"))
        .split('/')
        .collect();
    rdns.join(", ")
}

/// Checks the page `s_server -www` served: the protocol, an RSA-PSS signature from the client,
/// and the card's user-authentication certificate as the client certificate.
pub fn check_server_page(page: &str, version: Tls, card: &VCard, who: &str) {
    let protocol = format!("Protocol  : {}", version.name());
    assert!(page.contains(&protocol), "{who}: no {protocol:?}:\n{page}");
    assert!(
        page.contains("Peer signature type: RSA-PSS"),
        "{who}: the client did not sign with RSA-PSS:\n{page}"
    );
    let at = page
        .find("Client certificate")
        .unwrap_or_else(|| panic!("{who}: the server saw no client certificate:\n{page}"));
    let subject = format!("Subject: {}", auth_subject(card));
    assert!(
        page[at..].contains(&subject),
        "{who}: the client certificate is not the card's ({subject}):\n{page}"
    );
}

/// The `pkcs11:` URI of the user-authentication token in the card's reader, from `modutil -list`
/// (unique even when another card sits in another reader).
pub fn auth_token_uri(db: &Path, card: &VCard) -> String {
    let list = run(Command::new("modutil")
        .args(["-list", "-dbdir"])
        .arg(format!("sql:{}", db.display())));
    let slot = format!("slot: {} (Authentication)", card.reader);
    let mut lines = list.lines().map(str::trim);
    lines
        .by_ref()
        .find(|l| *l == slot)
        .unwrap_or_else(|| panic!("modutil does not list {slot:?}:\n{list}"));
    lines
        .take(3)
        .find_map(|l| l.strip_prefix("uri: "))
        .unwrap_or_else(|| panic!("no token URI after {slot:?}:\n{list}"))
        .to_string()
}

/// Evidence from the card itself that the client used the user-authentication key and never
/// touched the signature key (see [`signature_key_untouched`]); and the signature password's
/// counter is still 5 and the authentication PIN's 3.
pub fn check_signature_key_untouched(card: &VCard, who: &str) {
    let log = card.log();
    match signature_key_untouched(&log) {
        Ok(0) => panic!(
            "{who}: the authentication key never signed (APDU log of {} lines)",
            log.len()
        ),
        Ok(_) => {}
        Err(e) => panic!("{who}: {e}"),
    }
    let (auth, sign) = card.tries_left();
    assert_eq!(sign, 5, "{who}: the signature password's counter changed");
    assert_eq!(auth, 3, "{who}: a wrong authentication PIN was tried");
}

/// Over the virtual card's APDU log (`<command> <response>` lines, `#` comments): no VERIFY
/// carrying a password for the signature PIN (EF `001B` selected and `P2 = 80`, or `P2 = 9B`; a
/// VERIFY without data only reads the tries left, which is allowed), no SELECT of the signature
/// key EF `001A`, no COMPUTE DIGITAL SIGNATURE with that key (`P2 = 9A`). Returns how many
/// signatures the user-authentication key (EF `0017`, `P2 = 97`) made.
pub fn signature_key_untouched(log: &[String]) -> Result<usize, String> {
    let mut current_ef = String::new();
    let mut auth_signatures = 0;
    for line in log {
        if line.starts_with('#') {
            continue;
        }
        let apdu = line.split_whitespace().next().unwrap_or("").to_uppercase();
        let ins = apdu.get(2..4).unwrap_or("");
        let p2 = apdu.get(6..8).unwrap_or("");
        let has_data = apdu.len() > 10;
        if let Some(ef) = apdu.strip_prefix("00A4020C02") {
            current_ef = ef.chars().take(4).collect();
            if current_ef == "001A" {
                return Err(format!("the signature key EF was selected: {line}"));
            }
        } else if apdu.starts_with("00A404") {
            current_ef.clear();
        } else if ins == "20" && has_data {
            let target = if p2 == "80" { current_ef.as_str() } else { p2 };
            if target == "001B" || target == "9B" {
                return Err(format!(
                    "the signature password was presented to the card: {line}"
                ));
            }
        } else if apdu.starts_with("802A") {
            let key = if p2 == "80" { current_ef.as_str() } else { p2 };
            if key == "001A" || key == "9A" {
                return Err(format!("the signature key signed: {line}"));
            }
            if key == "0017" || key == "97" {
                auth_signatures += 1;
            }
        }
    }
    Ok(auth_signatures)
}
