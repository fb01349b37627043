//! Helpers for the end-to-end tests of client applications (OpenSSL with the libp11 engine,
//! OpenSSH, GnuTLS) driving the built module against the virtual card: running commands,
//! certificates as PEM, a throw-away TLS server (`openssl s_server`), free ports.
#![allow(dead_code)] // each test binary uses a different part

pub mod card;
pub mod pdf;
pub mod x11;

use crate::common::s_server::SServer;
use crate::common::VCard;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scripted pinentry (Assuan) for the module's `pinentry` setting: logs every command it gets to
/// `<dir>/pinentry.log` and answers every GETPIN with `answer`, raw Assuan lines with `\n`
/// escapes (`D 1234\nOK`, or an `ERR` line for Cancel). Its path, `<dir>/pinentry.sh`.
pub fn scripted_pinentry(dir: &Path, answer: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("pinentry.sh");
    let text = format!(
        "#!/bin/sh\necho 'OK Pleased to meet you'\n\
         while IFS= read -r line; do\n  printf '%s\\n' \"$line\" >> '{log}'\n  \
         case \"$line\" in\n    GETPIN) printf '%b\\n' '{answer}' ;;\n    \
         BYE) echo 'OK closing connection'; exit 0 ;;\n    *) echo OK ;;\n  esac\ndone\n",
        log = dir.join("pinentry.log").display(),
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// A scripted pinentry (see [`scripted_pinentry`]) that gives `pin` at every GETPIN.
pub fn pinentry_giving(dir: &Path, pin: &str) -> PathBuf {
    scripted_pinentry(dir, &format!("D {pin}\\nOK"))
}

/// The module under test: `$TEST_PKCS11_MODULE`, or the cdylib next to the test binary.
pub fn module() -> PathBuf {
    super::common::module_path()
}

/// stdout and stderr of a finished command, as one text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` in a new session (no controlling terminal, so nothing can prompt on the terminal
/// of whoever runs the tests: a program that asks for a PIN reads stdin or its askpass helper),
/// feeding it `stdin`. Panics only if it cannot be started.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (see scripts/deps/)"));
    let mut pipe = child.stdin.take().unwrap();
    // A program that never reads its stdin may close it first: ignore EPIPE.
    let _ = pipe.write_all(stdin);
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// Like [`run`], and panics with the output unless the command succeeded. Returns the output.
pub fn run_ok(cmd: &mut Command, stdin: &[u8]) -> String {
    let out = run(cmd, stdin);
    let t = text(&out);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{t}",
        out.status
    );
    t
}

/// Writes the card's certificate `name` (`auth`, `auth-ca`, `sign`, `sign-ca`) as PEM into the
/// card's directory and returns the path.
pub fn cert_pem(card: &VCard, name: &str) -> PathBuf {
    let der = card.state_dir.join(format!("{name}.crt"));
    let pem = card.state_dir.join(format!("{name}.pem"));
    run_ok(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&der)
            .arg("-out")
            .arg(&pem),
        b"",
    );
    pem
}

/// The public key of the card's certificate `name` as a PEM SubjectPublicKeyInfo file.
pub fn cert_pubkey(card: &VCard, name: &str) -> PathBuf {
    let der = card.state_dir.join(format!("{name}.crt"));
    let path = card.state_dir.join(format!("{name}.pub.pem"));
    let out = run_ok(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"])
            .arg(&der),
        b"",
    );
    std::fs::write(&path, out).unwrap();
    path
}

/// The certificate's subject as `openssl x509 -subject` prints it, e.g. `C = JP, CN = ABC`.
pub fn subject(card: &VCard, name: &str) -> String {
    let der = card.state_dir.join(format!("{name}.crt"));
    let out = run_ok(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-subject", "-in"])
            .arg(&der),
        b"",
    );
    out.trim()
        .strip_prefix("subject=")
        .expect("subject=")
        .trim()
        .to_string()
}

/// The card's token serial (CK_TOKEN_INFO.serialNumber; the same on both tokens): the last 16
/// hex digits of the authentication certificate's serial number. Used in `pkcs11:` URIs so a
/// test finds its own card even when another card is in another reader.
pub fn token_serial(card: &VCard) -> String {
    let der = card.state_dir.join("auth.crt");
    let out = run_ok(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-serial", "-in"])
            .arg(&der),
        b"",
    );
    let hex = out.trim().strip_prefix("serial=").expect("serial=").trim();
    hex[hex.len().saturating_sub(16)..].to_uppercase()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throw-away CA and a server certificate (CN=localhost) it signed, made with openssl in
/// `dir`. Returns (ca.pem, server.pem, server.key).
pub fn server_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (dir.join("tls-ca.pem"), dir.join("tls-ca.key"));
    let (crt, key, csr) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("server.csr"),
    );
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=jpki-pkcs11 test TLS CA", "-keyout"])
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
        b"",
    );
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
        b"",
    );
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-set_serial", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-out")
            .arg(&crt),
        b"",
    );
    (ca, crt, key)
}

/// `openssl s_server` on 127.0.0.1 (a port it picks), for one connection, with default
/// protocol settings, requiring a client certificate issued by `client_ca` (`-Verify 1
/// -verify_return_error`), answering `GET /` with its status page (`-www`: the server's view
/// of the connection, including `Peer signature type`); its output in `dir/s_server.out`.
/// `finish()` waits for it to end after its one connection. Killed on drop if still running.
pub fn tls_server(dir: &Path, cert: &Path, key: &Path, client_ca: &Path) -> SServer {
    SServer::start(
        dir,
        dir.join("s_server.out"),
        &[
            "-naccept".as_ref(),
            "1".as_ref(),
            "-www".as_ref(),
            "-Verify".as_ref(),
            "1".as_ref(),
            "-verify_return_error".as_ref(),
            "-cert".as_ref(),
            cert.as_os_str(),
            "-key".as_ref(),
            key.as_os_str(),
            "-CAfile".as_ref(),
            client_ca.as_os_str(),
        ] as &[&std::ffi::OsStr],
    )
}

/// The status page `s_server -www` sent (the part of the client's output from the HTTP
/// status line on): the server's view of the connection.
pub fn status_page(client_output: &str) -> &str {
    let at = client_output
        .find("HTTP/1.0 200 ok")
        .unwrap_or_else(|| panic!("no s_server status page in:\n{client_output}"));
    &client_output[at..]
}

/// The value of the status page line `Peer signature type: …` (the client's signature in
/// CertificateVerify, as the server saw it).
pub fn peer_signature_type(page: &str) -> Option<&str> {
    page.lines()
        .find_map(|l| l.strip_prefix("Peer signature type:"))
        .map(str::trim)
}

/// The status page line `Protocol  : …`.
pub fn protocol(page: &str) -> Option<&str> {
    page.lines()
        .find_map(|l| l.trim().strip_prefix("Protocol  :"))
        .map(str::trim)
}
