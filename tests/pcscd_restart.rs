//! pcscd restarted under a running application: the module answers with clean errors while the
//! service is gone, recovers without `C_Finalize` once it is back, never resends a PIN by itself,
//! and hands out only verified signatures.
//!
//! The test restarts pcscd, so it runs its own pcscd and virtual card inside private mount, net
//! and pid namespaces (`unshare`, as root; CI runs as root): the machine's pcscd is not touched.

mod common;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD: &str = "JPKI_PCSCD_RESTART_CHILD";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn pcscd_restart_is_survived() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    if !is_root() {
        eprintln!("SKIPPED pcscd_restart_is_survived: needs root for its own pcscd namespace");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--net", "--pid", "--fork", "--mount-proc"])
        .arg(&exe)
        .args([
            "--exact",
            "pcscd_restart_is_survived",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run unshare (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the namespaced run failed:\n{text}");
    assert!(
        text.contains("CHILD DONE"),
        "the namespaced run did not complete:\n{text}"
    );
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
}

fn start_pcscd() -> Kill {
    let child = Command::new("pcscd")
        .arg("-f")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pcscd");
    Kill(child)
}

fn card_present() -> bool {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let name = std::ffi::CString::new("Virtual PCD 00 00").unwrap();
    let mut rs = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    ctx.get_status_change(Duration::ZERO, &mut rs).is_ok()
        && rs[0].event_state().contains(pcsc::State::PRESENT)
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn verifies(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("0020") && l.contains('*'))
        .count()
}

fn child() {
    sh("mkdir -p /run/pcscd && mount -t tmpfs tmpfs /run/pcscd && ip link set lo up");
    let dir = std::env::temp_dir().join(format!("jpki-pcscd-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = dir.join("apdu.log");
    let mut pcscd = start_pcscd();
    wait_for("pcscd", || {
        pcsc::Context::establish(pcsc::Scope::User).is_ok_and(|c| c.list_readers_len().is_ok())
    });
    let vcard = Kill(
        Command::new(common::jpki_bin())
            .arg("virtual-card")
            .arg("--state")
            .arg(&dir)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the card", card_present);
    let der = std::fs::read(dir.join("auth.crt")).unwrap();
    let pubkey = common::rsa_public_key(&der);
    let verify = |sig: &[u8], msg: &[u8]| {
        pubkey
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), sig)
            .is_ok()
    };

    let p = Pkcs11::new(common::module_path()).unwrap();
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = p.get_slots_with_token().unwrap()[0];
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::from("1234")))
        .unwrap();
    let key = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()[0];
    let sig = s.sign(&Mechanism::Sha256RsaPkcs, key, b"before").unwrap();
    assert!(
        verify(&sig, b"before"),
        "signature before the restart verifies"
    );
    let verifies_before = verifies(&log);

    // pcscd goes away.
    drop(pcscd);
    wait_for("pcscd gone", || {
        !Path::new("/run/pcscd/pcscd.comm").exists()
            || pcsc::Context::establish(pcsc::Scope::User).is_err()
    });
    let err = s
        .sign(&Mechanism::Sha256RsaPkcs, key, b"during")
        .expect_err("no signature without pcscd");
    println!("signing without pcscd: {err}");
    assert!(
        p.get_slots_with_token().unwrap().is_empty(),
        "no token without pcscd"
    );
    assert_eq!(
        p.get_all_slots().unwrap().len(),
        4,
        "the slot list never shrinks"
    );

    // pcscd comes back; the virtual card reconnects to it by itself.
    pcscd = start_pcscd();
    wait_for("the card again", card_present);
    // The old session belonged to the old connection.
    let err = s
        .sign(&Mechanism::Sha256RsaPkcs, key, b"after")
        .expect_err("the old session is gone");
    println!("old session after the restart: {err}");
    assert_eq!(
        verifies(&log),
        verifies_before,
        "no PIN was sent by the module on its own"
    );
    // A new session works without C_Finalize, after a new login.
    let slot = p.get_slots_with_token().unwrap()[0];
    let s2 = p.open_rw_session(slot).unwrap();
    assert_eq!(
        s2.get_session_info().unwrap().session_state(),
        cryptoki::session::SessionState::RwPublic,
        "login not kept"
    );
    s2.login(UserType::User, Some(&AuthPin::from("1234")))
        .unwrap();
    let key = s2
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()[0];
    let sig = s2.sign(&Mechanism::Sha256RsaPkcs, key, b"after").unwrap();
    assert!(
        verify(&sig, b"after"),
        "signature after the restart verifies"
    );
    assert_eq!(
        verifies(&log),
        verifies_before + 2,
        "one VERIFY for the login, one for the signature"
    );
    drop(s2);
    drop(s);
    p.finalize().unwrap();
    drop(pcscd);
    drop(vcard);
    let _ = std::fs::remove_dir_all(&dir);
    println!("CHILD DONE");
}
