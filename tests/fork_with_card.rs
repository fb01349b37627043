//! fork() with a card and a logged-in session in the parent: the child sees the module as not
//! initialized (not the parent's sessions or login), initializes it, logs in and signs on its
//! own; the parent's session is unaffected and still signs. Every signature is verified.
//! One test per file: a forked child must not inherit other test threads' locks.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod common;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::{SessionState, UserType};
use cryptoki::types::AuthPin;
use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256};

#[test]
fn child_and_parent_each_keep_their_own_state() {
    let _g = common::lock();
    let card = common::VCard::start();
    let der = card.cert("auth");
    let pubkey = common::rsa_public_key(&der);
    let verifies = |sig: &[u8], msg: &[u8]| {
        pubkey
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), sig)
            .is_ok()
    };

    let p = Pkcs11::new(common::module_path()).unwrap();
    let args = || CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK);
    p.initialize(args()).unwrap();
    let slot = common::token_slot(&p, &card.reader, "JPKI User Authentication").unwrap();
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::from("1234")))
        .unwrap();
    let key = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()[0];
    assert!(verifies(
        &s.sign(&Mechanism::Sha256RsaPkcs, key, b"parent 1").unwrap(),
        b"parent 1"
    ));

    // SAFETY: the child only calls into the module and then `_exit`s, running no destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = (|| {
            // The parent's session is not the child's.
            match s.get_session_info() {
                Err(Error::Pkcs11(RvError::CryptokiNotInitialized, _)) => {}
                _ => return 1,
            }
            if p.initialize(args()).is_err() {
                return 2;
            }
            let Some(slot) = common::token_slot(&p, &card.reader, "JPKI User Authentication")
            else {
                return 3;
            };
            let Ok(cs) = p.open_rw_session(slot) else {
                return 4;
            };
            // Not logged in: the parent's login is not inherited.
            if !cs
                .get_session_info()
                .is_ok_and(|i| i.session_state() == SessionState::RwPublic)
            {
                return 5;
            }
            if cs
                .login(UserType::User, Some(&AuthPin::from("1234")))
                .is_err()
            {
                return 6;
            }
            let Ok(k) = cs.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)]) else {
                return 7;
            };
            match cs.sign(&Mechanism::Sha256RsaPkcs, k[0], b"child") {
                Ok(sig) if verifies(&sig, b"child") => 0,
                _ => 8,
            }
        })();
        // SAFETY: terminates the child immediately, without unwinding or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked; `status` is a valid out pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child crashed");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "child step failed (see the codes in the test)"
    );

    // The parent: same session, still logged in, still signs.
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RwUser
    );
    assert!(verifies(
        &s.sign(&Mechanism::Sha256RsaPkcs, key, b"parent 2").unwrap(),
        b"parent 2"
    ));
    assert_eq!(card.tries_left(), (3, 5));
}
