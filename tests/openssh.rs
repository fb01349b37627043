//! OpenSSH with the built module against the virtual card behind pcscd: `ssh-keygen -D` prints
//! the authentication key, and `ssh -I` logs in to a throw-away `sshd` on 127.0.0.1 (own port,
//! config, host key and authorized_keys, run as the current user), the PIN coming from an
//! `SSH_ASKPASS` helper. How to set it up by hand: docs/openssh.md.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod apps;
mod common;

use apps::{run, run_ok, text};
use common::VCard;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The OpenSSH public key line (`ssh-rsa AAAA…`, no comment) of a certificate's key.
fn ssh_pubkey(card: &VCard, name: &str) -> String {
    let pem = apps::cert_pubkey(card, name);
    let out = run_ok(
        Command::new("ssh-keygen")
            .args(["-i", "-m", "PKCS8", "-f"])
            .arg(&pem),
        b"",
    );
    let mut words = out.split_whitespace();
    format!("{} {}", words.next().unwrap(), words.next().unwrap())
}

#[test]
fn ssh_keygen_prints_the_authentication_key() {
    let _g = common::lock();
    let card = VCard::start();
    let out = run_ok(
        Command::new("ssh-keygen").arg("-D").arg(apps::module()),
        b"",
    );
    let auth = ssh_pubkey(&card, "auth");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&auth) && l.ends_with(" User Authentication")),
        "the certificate's key, named after the object:\n{auth}\n{out}"
    );
    // The signature key and its certificate are not visible without the signature password.
    let sign = ssh_pubkey(&card, "sign");
    assert!(!out.contains(&sign), "signature key listed:\n{out}");
}

/// A throw-away sshd on 127.0.0.1, run in the foreground as the current user; killed on drop.
struct Sshd {
    child: Option<Child>,
    log: PathBuf,
    port: u16,
}

impl Sshd {
    fn start(dir: &Path, authorized_keys: &Path) -> Sshd {
        let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("sshd");
        // Run as root, sshd wants its privilege separation directory (which the Debian
        // service creates when it starts; nothing starts it here).
        if unsafe { libc::geteuid() } == 0 {
            std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        }
        let host_key = dir.join("ssh_host_ed25519_key");
        let _ = std::fs::remove_file(&host_key);
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key),
            b"",
        );
        let log = dir.join("sshd.log");
        let start = Instant::now();
        loop {
            let port = apps::free_port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\n\
                     ListenAddress 127.0.0.1\n\
                     HostKey {}\n\
                     AuthorizedKeysFile {}\n\
                     PidFile none\n\
                     UsePAM no\n\
                     StrictModes no\n\
                     PubkeyAuthentication yes\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\n\
                     LogLevel VERBOSE\n",
                    host_key.display(),
                    authorized_keys.display()
                ),
            )
            .unwrap();
            let out = std::fs::File::create(&log).unwrap();
            let child = Command::new(sshd)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("run sshd (Debian package openssh-server, scripts/deps/openssh.txt)");
            let mut sshd = Sshd {
                child: Some(child),
                log: log.clone(),
                port,
            };
            // Up when it says so; the port taken meanwhile by someone else: try another one.
            while !sshd.log().contains("Server listening") {
                if sshd.child.as_mut().unwrap().try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if sshd.log().contains("Server listening") {
                return sshd;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not start:\n{}",
                sshd.log()
            );
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `ssh -I <module> user@127.0.0.1 echo ok` against `sshd`, the PIN from an askpass helper
/// echoing `pin`. `key_pub` (the card's public key) selects the card's key among all the keys
/// the module shows (`IdentitiesOnly` with `-i <public key>`, as for any token).
fn ssh(dir: &Path, sshd: &Sshd, key_pub: &Path, pin: &str) -> std::process::Output {
    let askpass = dir.join("askpass.sh");
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{pin}'\n")).unwrap();
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    let host_pub = std::fs::read_to_string(dir.join("ssh_host_ed25519_key.pub")).unwrap();
    let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    let known_hosts = dir.join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {}\n", sshd.port, host_pub.join(" ")),
    )
    .unwrap();
    let user = run_ok(Command::new("id").arg("-un"), b"")
        .trim()
        .to_string();
    run(
        Command::new("ssh")
            .args(["-F", "/dev/null", "-p", &sshd.port.to_string(), "-I"])
            .arg(apps::module())
            .arg("-i")
            .arg(key_pub)
            .args(["-o", "IdentitiesOnly=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes"])
            .args(["-o", "PasswordAuthentication=no"])
            .args(["-o", "KbdInteractiveAuthentication=no"])
            .args(["-o", "ConnectTimeout=20"])
            .arg(format!("{user}@127.0.0.1"))
            .args(["echo", "ok"])
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("DISPLAY")
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force"),
        b"",
    )
}

#[test]
fn ssh_logs_in_with_the_card() {
    let _g = common::lock();
    let card = VCard::start();
    let dir = card.state_dir.clone();
    let key_pub = dir.join("id_card.pub");
    std::fs::write(&key_pub, ssh_pubkey(&card, "auth") + "\n").unwrap();
    let sshd = Sshd::start(&dir, &key_pub);
    let out = ssh(&dir, &sshd, &key_pub, "1234");
    let t = text(&out);
    assert!(
        out.status.success(),
        "ssh failed:\n{t}\nsshd:\n{}",
        sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{t}");
    assert!(
        sshd.log().contains("Accepted publickey for"),
        "{}",
        sshd.log()
    );
    assert_eq!(card.tries_left(), (3, 5), "no try burned");
}

#[test]
fn ssh_with_a_wrong_pin_fails_and_costs_one_try() {
    let _g = common::lock();
    let card = VCard::start();
    let dir = card.state_dir.clone();
    let key_pub = dir.join("id_card.pub");
    std::fs::write(&key_pub, ssh_pubkey(&card, "auth") + "\n").unwrap();
    let sshd = Sshd::start(&dir, &key_pub);
    let out = ssh(&dir, &sshd, &key_pub, "0000");
    let t = text(&out);
    assert!(!out.status.success(), "logged in with a wrong PIN:\n{t}");
    assert!(
        !sshd.log().contains("Accepted publickey for"),
        "{}",
        sshd.log()
    );
    assert_eq!(card.tries_left(), (2, 5), "exactly one try spent:\n{t}");
}
