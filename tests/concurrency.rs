//! Concurrency through the real pcscd and the built module: two processes signing alternately
//! with the authentication key while both keep their sessions open (each signature verified
//! with openssl; neither process sees the other's login), and OpenSC's
//! `pkcs11-tool --test-threads`.
//!
//! The child processes are this test binary again, run with `JPKI_CONCURRENCY_CHILD` set
//! (see `child_signer`).

mod common;

use common::VCard;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::{SessionState, UserType};
use cryptoki::types::AuthPin;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const ROUNDS: usize = 6;

/// Child mode: open a session on the authentication token of `reader`, check nobody else's
/// login shows, log in, then sign ROUNDS messages, one each time the turn file says it is our
/// turn, keeping the session open throughout. Writes `<out>/<id>-<n>.sig` and `.msg`.
#[test]
fn child_signer() {
    let Ok(spec) = std::env::var("JPKI_CONCURRENCY_CHILD") else {
        return; // Not a child: nothing to do.
    };
    let mut parts = spec.splitn(3, '|');
    let (id, out, reader) = (
        parts.next().unwrap().parse::<usize>().unwrap(),
        PathBuf::from(parts.next().unwrap()),
        parts.next().unwrap().to_string(),
    );
    let p = Pkcs11::new(common::module_path()).unwrap();
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = common::token_slot(&p, &reader, "JPKI User Authentication")
        .expect("the authentication token of the virtual reader");
    let s = p.open_ro_session(slot).unwrap();
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RoPublic,
        "child {id}: another process's login is visible"
    );
    s.login(UserType::User, Some(&AuthPin::from("1234")))
        .unwrap();
    let key = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()[0];
    let turn = out.join("turn");
    for n in 0..ROUNDS {
        // Alternate: child 0 signs on even turns, child 1 on odd ones.
        let want = 2 * n + id;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let t: usize = std::fs::read_to_string(&turn)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            if t == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "child {id}: turn {want} never came"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let msg = format!("process {id} message {n}");
        let sig = s
            .sign(&Mechanism::Sha256RsaPkcs, key, msg.as_bytes())
            .unwrap_or_else(|e| panic!("child {id} signature {n}: {e}"));
        std::fs::write(out.join(format!("{id}-{n}.msg")), &msg).unwrap();
        std::fs::write(out.join(format!("{id}-{n}.sig")), &sig).unwrap();
        std::fs::write(out.join("turn.tmp"), format!("{}", want + 1)).unwrap();
        std::fs::rename(out.join("turn.tmp"), &turn).unwrap();
    }
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RoUser
    );
}

/// Kills the children if the test panics.
struct Children(Vec<std::process::Child>);
impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn two_processes_sign_alternately_with_sessions_open() {
    if std::env::var("JPKI_CONCURRENCY_CHILD").is_ok() {
        return;
    }
    let _g = common::lock();
    let card = VCard::start();
    let out = card.state_dir.join("concurrency");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("turn"), "0").unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut children = Children(Vec::new());
    for id in 0..2 {
        children.0.push(
            Command::new("timeout")
                .arg("120")
                .arg(&exe)
                .args(["--exact", "child_signer", "--nocapture", "--test-threads=1"])
                .env(
                    "JPKI_CONCURRENCY_CHILD",
                    format!("{id}|{}|{}", out.display(), card.reader),
                )
                .env("TEST_PKCS11_MODULE", common::module_path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for (id, c) in children.0.drain(..).enumerate() {
        let o = c.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success() && text.contains("1 passed"),
            "child {id} failed:\n{text}"
        );
    }
    for id in 0..2 {
        for n in 0..ROUNDS {
            common::openssl_verify(
                &card.state_dir.join("auth.crt"),
                &out.join(format!("{id}-{n}.msg")),
                &out.join(format!("{id}-{n}.sig")),
                false,
            );
        }
    }
    assert_eq!(card.tries_left(), (3, 5), "no try burnt");
}

#[test]
fn pkcs11_tool_test_threads() {
    if std::env::var("JPKI_CONCURRENCY_CHILD").is_ok() {
        return;
    }
    let _g = common::lock();
    let _card = VCard::start();
    // OpenSC's own thread test: each --test-threads starts a thread running the two-letter
    // commands (IN C_Initialize, IL C_GetInfo, GI C_GetInfo, SL C_GetSlotList, T0 token info of
    // slot 0), while the main thread lists the slots.
    for args in [
        vec!["--test-threads", "IN", "-L"],
        vec![
            "--test-threads",
            "ILGISLT0",
            "--test-threads",
            "ILGISLT0",
            "--test-threads",
            "ILGISLT0",
            "-L",
        ],
    ] {
        let o = Command::new("timeout")
            .arg("60")
            .arg("pkcs11-tool")
            .arg("--module")
            .arg(common::module_path())
            .args(&args)
            .output()
            .expect("pkcs11-tool (Debian package opensc)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "pkcs11-tool {args:?}:\n{text}");
        assert!(
            text.contains("JPKI User Authentication") && text.contains("JPKI Digital Signature"),
            "pkcs11-tool {args:?}:\n{text}"
        );
        // The thread's C_Initialize races the main thread's: one of them gets
        // CKR_CRYPTOKI_ALREADY_INITIALIZED, which is the spec's answer. Nothing else.
        let codes: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("CKR_"))
            .collect();
        assert!(
            codes
                .iter()
                .all(|c| *c == "CKR_OK" || *c == "CKR_CRYPTOKI_ALREADY_INITIALIZED"),
            "an error code in {args:?}: {codes:?}\n{text}"
        );
    }
}
