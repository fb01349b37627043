//! Issue 9's findings on the module's promises (return codes, limits, the login lifecycle), each
//! reproduced here first as a failing test, in-process on the virtual card.

use crate::backend::tests::support::*;
use crate::backend::{self, MechanismParams, RawMechanism};
use crate::error::CkError;
use cryptoki_sys::*;
use jpki_vcard::VirtualCard;
use std::time::Duration;

const AUTH_SLOT: CK_SLOT_ID = 0;
const SIGN_SLOT: CK_SLOT_ID = 1;

fn reinitialize() {
    backend::finalize().unwrap();
    backend::initialize().unwrap();
}

/// As [`reinitialize`], then lists the slots as most applications do first (so that this
/// test's findings do not depend on finding 5's).
fn reinitialize_and_list() {
    reinitialize();
    backend::get_slot_list(false).unwrap();
}

/// Finding 2: the PIN the card refused is not sent again after `C_Finalize` + `C_Initialize`
/// (also when the application reads the token's flags first, as NSS does), while a PIN the
/// card has not refused, or the same PIN once the counter moved, still reaches it.
#[test]
fn a_refused_pin_is_not_resent_after_reinitialization() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"0000")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(f.verifies_sent(), 1);
    assert_eq!(f.card.lock().tries_left(), (2, 5));

    // A new initialization, the same wrong PIN: nothing sent, the same answer.
    reinitialize_and_list();
    let a = backend::open_session(AUTH_SLOT, CKF_SERIAL_SESSION).unwrap();
    f.clear_log();
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"0000")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(f.verifies_sent(), 0, "{:?}", f.log());
    assert_eq!(f.card.lock().tries_left(), (2, 5));

    // The same after reading the flags first (the counter is then known, unchanged).
    reinitialize_and_list();
    let flags = backend::get_token_info(AUTH_SLOT).unwrap().flags;
    assert_ne!(flags & CKF_USER_PIN_COUNT_LOW, 0);
    let a = backend::open_session(AUTH_SLOT, CKF_SERIAL_SESSION).unwrap();
    f.clear_log();
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"0000")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(f.verifies_sent(), 0, "{:?}", f.log());

    // Another program's wrong PIN moves the counter: the remembered refusal is stale, and the
    // PIN goes to the card again (which decides).
    {
        let mut c = f.card.lock();
        c.transmit(&[
            0, 0xA4, 4, 0x0C, 10, 0xD3, 0x92, 0xF0, 0, 0x26, 1, 0, 0, 0, 1,
        ]);
        c.transmit(&[0, 0xA4, 2, 0x0C, 2, 0, 0x18]);
        c.transmit(&[0, 0x20, 0, 0x80, 4, b'9', b'9', b'9', b'9']);
    }
    assert_eq!(f.card.lock().tries_left(), (1, 5));
    reinitialize_and_list();
    let a = backend::open_session(AUTH_SLOT, CKF_SERIAL_SESSION).unwrap();
    f.clear_log();
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"1234")),
        Ok(()),
        "the right PIN is never held back"
    );
    assert_eq!(f.verifies_sent(), 1);
    assert_eq!(f.card.lock().tries_left(), (3, 5));
}

/// Finding 3: a huge `C_GenerateRandom` is refused at once with `CKR_ARGUMENTS_BAD` (no card
/// I/O, no allocation), the largest allowed one works.
#[test]
fn huge_random_requests_are_bounded() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    f.clear_log();
    for len in [
        backend::MAX_RANDOM_LEN + 1,
        1 << 30,
        usize::MAX / 2,
        usize::MAX,
    ] {
        assert_eq!(
            backend::generate_random(a, len).map(|v| v.len()),
            Err(CkError::ArgumentsBad),
            "{len}"
        );
    }
    assert!(f.commands().is_empty(), "{:?}", f.log());
    assert_eq!(
        backend::generate_random(0xDEAD, 1 << 30).map(|v| v.len()),
        Err(CkError::SessionHandleInvalid)
    );
    let r = backend::generate_random(a, backend::MAX_RANDOM_LEN).unwrap();
    assert_eq!(r.len(), backend::MAX_RANDOM_LEN);
    assert_eq!(f.commands().len(), 1 + backend::MAX_RANDOM_LEN / 8);
    // Through the C function, with a real buffer one byte too long for the bound.
    let mut buf = vec![0u8; backend::MAX_RANDOM_LEN + 1];
    // SAFETY: `buf` is valid for writing its length.
    let rv =
        unsafe { crate::ffi::random::C_GenerateRandom(a, buf.as_mut_ptr(), buf.len() as CK_ULONG) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
}

/// Finding 5: the slot ids of the readers are valid right after `C_Initialize`.
#[test]
fn slot_ids_are_valid_right_after_initialize() {
    let f = Fixture::new();
    let _ = f.session(AUTH_SLOT);
    reinitialize();
    // No C_GetSlotList in this initialization.
    assert_ne!(
        backend::get_slot_info(SIGN_SLOT).unwrap().flags & CKF_TOKEN_PRESENT,
        0
    );
    assert_eq!(
        &backend::get_token_info(AUTH_SLOT).unwrap().label[..24],
        b"JPKI User Authentication"
    );
    let s = backend::open_session(SIGN_SLOT, CKF_SERIAL_SESSION).unwrap();
    assert_eq!({ backend::get_session_info(s).unwrap().slotID }, SIGN_SLOT);
    assert_eq!(
        backend::get_slot_info(2).err(),
        Some(CkError::SlotIdInvalid)
    );
}

/// Finding 6: a login ends with the last live session of its token; sessions of a removed card
/// are not counted.
#[test]
fn a_login_does_not_outlive_the_sessions_of_its_card() {
    let f = Fixture::new();
    let _stale = f.session(AUTH_SLOT);
    f.sys.remove(0).unwrap();
    f.sys.insert(0, VirtualCard::in_memory_other());
    let b = backend::open_session(AUTH_SLOT, CKF_SERIAL_SESSION).unwrap();
    assert_eq!(
        { backend::get_token_info(AUTH_SLOT).unwrap().ulSessionCount },
        1,
        "the dead session is not counted"
    );
    backend::login(b, CKU_USER, Some(b"1234")).unwrap();
    backend::close_session(b).unwrap();
    assert_eq!(
        { backend::get_token_info(AUTH_SLOT).unwrap().ulSessionCount },
        0
    );
    let c = backend::open_session(AUTH_SLOT, CKF_SERIAL_SESSION).unwrap();
    assert_eq!(
        { backend::get_session_info(c).unwrap().state },
        CKS_RO_PUBLIC_SESSION,
        "the login ended with its token's last live session"
    );
    // With a live session left, the login stays (PKCS#11: login is per token).
    let d = backend::open_session(AUTH_SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION).unwrap();
    backend::login(d, CKU_USER, Some(b"1234")).unwrap();
    backend::close_session(d).unwrap();
    assert_eq!(
        { backend::get_session_info(c).unwrap().state },
        CKS_RO_USER_FUNCTIONS
    );
    let info = backend::get_token_info(AUTH_SLOT).unwrap();
    assert_eq!((info.ulSessionCount, info.ulRwSessionCount), (1, 0));
}

/// A pinentry that announces it is asking (`<dir>/asking`) and answers `pin` only once
/// `<dir>/go` exists.
fn waiting_pinentry(dir: &std::path::Path, pin: &str) -> ConfigGuard {
    let _ = std::fs::remove_dir_all(dir);
    let script = crate::pinentry::tests::scripted_waiting(dir, &format!("D {pin}\\nOK"));
    ConfigGuard::set(crate::config::Config {
        pinentry: Some(script),
        ..Default::default()
    })
}

/// Finding 7: while a person types a PIN into the pinentry, every other call goes on (no lock
/// is held during the prompt); the login then completes with one VERIFY.
#[test]
fn the_pinentry_prompt_holds_no_lock() {
    let f = Fixture::new();
    let dir = std::env::temp_dir().join(format!("jpki-pt-pe-{}", std::process::id()));
    let _c = waiting_pinentry(&dir, "1234");
    let a = f.session(AUTH_SLOT);
    let s = f.session(SIGN_SLOT);
    f.clear_log();
    let login = std::thread::spawn(move || backend::login(a, CKU_USER, None));
    let asking = dir.join("asking");
    for _ in 0..400 {
        if asking.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(asking.exists(), "the pinentry was started");
    // Meanwhile, from another thread: the slot list, the same token's info, the other token.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = (|| {
            backend::get_slot_list(true)?;
            let flags = backend::get_token_info(AUTH_SLOT)?.flags;
            backend::login(s, CKU_USER, Some(b"JPKITEST1"))?;
            backend::logout(s)?;
            Ok::<_, CkError>(flags)
        })();
        let _ = tx.send(r);
    });
    let other = rx.recv_timeout(Duration::from_secs(20));
    std::fs::write(dir.join("go"), b"").unwrap();
    let other = other.expect("other calls went on while the pinentry was shown");
    assert_eq!(other.map(|fl| fl & CKF_USER_PIN_LOCKED), Ok(0));
    assert_eq!(login.join().unwrap(), Ok(()));
    assert_eq!(f.verifies_sent(), 2, "{:?}", f.log());
    assert_eq!(
        { backend::get_session_info(a).unwrap().state },
        CKS_RW_USER_FUNCTIONS
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 7, the state changing during the prompt: the login checks again afterwards.
#[test]
fn a_login_after_the_prompt_checks_the_state_again() {
    let f = Fixture::new();
    let dir = std::env::temp_dir().join(format!("jpki-pt-pe2-{}", std::process::id()));
    let _c = waiting_pinentry(&dir, "1234");
    let a = f.session(AUTH_SLOT);
    let b = f.session(AUTH_SLOT);
    let login = std::thread::spawn(move || backend::login(a, CKU_USER, None));
    while !dir.join("asking").exists() {
        std::thread::sleep(Duration::from_millis(25));
    }
    // Another session of the token logs in meanwhile (in a thread: with the bug, it waits
    // for the prompt to end).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(backend::login(b, CKU_USER, Some(b"1234")));
    });
    let other = rx.recv_timeout(Duration::from_secs(20));
    f.clear_log();
    std::fs::write(dir.join("go"), b"").unwrap();
    assert_eq!(
        other,
        Ok(Ok(())),
        "the other login went on during the prompt"
    );
    assert_eq!(login.join().unwrap(), Err(CkError::UserAlreadyLoggedIn));
    assert_eq!(f.verifies_sent(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 10: `C_CreateObject` checks its arguments before answering that the token is
/// read-only.
#[test]
fn create_object_checks_arguments_first() {
    use crate::ffi::object::C_CreateObject;
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    let mut h: CK_OBJECT_HANDLE = 0;
    let mut class = CKO_DATA;
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: std::ptr::addr_of_mut!(class).cast(),
        ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
    }];
    // SAFETY: NULL pointers and valid local buffers, as the cases say.
    unsafe {
        assert_eq!(
            C_CreateObject(a, std::ptr::null_mut(), 0, &mut h),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_CreateObject(a, std::ptr::null_mut(), 1, &mut h),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_CreateObject(a, t.as_mut_ptr(), 1, std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_CreateObject(a, t.as_mut_ptr(), 1, &mut h),
            CKR_TOKEN_WRITE_PROTECTED
        );
    }
}

fn digest_mech(m: CK_MECHANISM_TYPE) -> RawMechanism {
    RawMechanism {
        mechanism: m,
        params: MechanismParams::None,
    }
}

/// Finding 10: software digests, listed for both tokens, single- and multi-part, through the C
/// functions with the two-call convention, each checked against an independent hash.
#[test]
fn digests_are_offered_and_correct() {
    use crate::ffi::digest::{C_Digest, C_DigestFinal, C_DigestInit, C_DigestKey, C_DigestUpdate};
    use sha1::Sha1;
    use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
    let f = Fixture::new();
    let msg = b"The quick brown fox jumps over the lazy dog";
    let expected: [(CK_MECHANISM_TYPE, Vec<u8>); 5] = [
        (CKM_SHA_1, Sha1::digest(msg).to_vec()),
        (CKM_SHA224, Sha224::digest(msg).to_vec()),
        (CKM_SHA256, Sha256::digest(msg).to_vec()),
        (CKM_SHA384, Sha384::digest(msg).to_vec()),
        (CKM_SHA512, Sha512::digest(msg).to_vec()),
    ];
    // A value known from FIPS 180 examples, independent of any crate: SHA-1 of this sentence.
    assert_eq!(
        jpki_card::apdu::hex(&expected[0].1),
        "2FD4E1C67A2D28FCED849EE1BB76E7391B93EB12"
    );
    for slot in [AUTH_SLOT, SIGN_SLOT] {
        let mechs = backend::get_mechanism_list(slot).unwrap();
        for (m, _) in &expected {
            assert!(mechs.contains(m), "slot {slot} lists {m:#x}");
            let info = backend::get_mechanism_info(slot, *m).unwrap();
            assert_eq!({ info.flags }, CKF_DIGEST);
        }
    }
    let h = f.session(AUTH_SLOT);
    f.clear_log();
    for (m, want) in &expected {
        let mut mech = CK_MECHANISM {
            mechanism: *m,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        let mut data = msg.to_vec();
        let mut out = vec![0u8; 64];
        let mut len: CK_ULONG = 0;
        // SAFETY: every pointer is NULL or a valid local buffer of the length given.
        unsafe {
            assert_eq!(C_DigestInit(h, &mut mech), CKR_OK);
            assert_eq!(C_DigestInit(h, &mut mech), CKR_OPERATION_ACTIVE);
            // Length query, then too small: the operation stays.
            assert_eq!(
                C_Digest(
                    h,
                    data.as_mut_ptr(),
                    data.len() as CK_ULONG,
                    std::ptr::null_mut(),
                    &mut len
                ),
                CKR_OK
            );
            assert_eq!(len as usize, want.len());
            len = 4;
            assert_eq!(
                C_Digest(
                    h,
                    data.as_mut_ptr(),
                    data.len() as CK_ULONG,
                    out.as_mut_ptr(),
                    &mut len
                ),
                CKR_BUFFER_TOO_SMALL
            );
            len = out.len() as CK_ULONG;
            assert_eq!(
                C_Digest(
                    h,
                    data.as_mut_ptr(),
                    data.len() as CK_ULONG,
                    out.as_mut_ptr(),
                    &mut len
                ),
                CKR_OK
            );
            assert_eq!(&out[..len as usize], &want[..], "{m:#x} single-part");
            // The operation ended.
            assert_eq!(
                C_DigestUpdate(h, data.as_mut_ptr(), 1),
                CKR_OPERATION_NOT_INITIALIZED
            );
            // Multi-part, in uneven pieces.
            assert_eq!(C_DigestInit(h, &mut mech), CKR_OK);
            for piece in data.chunks_mut(7) {
                assert_eq!(
                    C_DigestUpdate(h, piece.as_mut_ptr(), piece.len() as CK_ULONG),
                    CKR_OK
                );
            }
            len = out.len() as CK_ULONG;
            assert_eq!(C_DigestFinal(h, out.as_mut_ptr(), &mut len), CKR_OK);
            assert_eq!(&out[..len as usize], &want[..], "{m:#x} multi-part");
            // C_Digest after an update is refused; the key objects are not digestible.
            assert_eq!(C_DigestInit(h, &mut mech), CKR_OK);
            assert_eq!(C_DigestUpdate(h, data.as_mut_ptr(), 1), CKR_OK);
            len = out.len() as CK_ULONG;
            assert_eq!(
                C_Digest(h, data.as_mut_ptr(), 1, out.as_mut_ptr(), &mut len),
                CKR_OPERATION_ACTIVE
            );
            assert_eq!(C_DigestInit(h, &mut mech), CKR_OK);
            assert_eq!(C_DigestKey(h, 0xDEAD), CKR_KEY_HANDLE_INVALID);
            assert_eq!(
                C_DigestUpdate(h, data.as_mut_ptr(), 1),
                CKR_OPERATION_NOT_INITIALIZED
            );
        }
    }
    assert!(
        f.commands().is_empty(),
        "digests need no card: {:?}",
        f.log()
    );
    // Parameters and other mechanisms are refused.
    assert_eq!(
        backend::digest_init(h, &digest_mech(CKM_MD5)),
        Err(CkError::MechanismInvalid)
    );
    assert_eq!(
        backend::digest_init(
            h,
            &RawMechanism {
                mechanism: CKM_SHA256,
                params: MechanismParams::Other(vec![1])
            }
        ),
        Err(CkError::MechanismParamInvalid)
    );
    assert_eq!(
        backend::digest_init(h, &digest_mech(CKM_SHA256_RSA_PKCS)),
        Err(CkError::MechanismInvalid)
    );
}

/// The signature password set by `C_SetPIN` must mix letters and digits: refused before the
/// card sees anything (neither the old nor the new one).
#[test]
fn a_new_signature_password_must_mix_letters_and_digits() {
    let f = Fixture::new();
    let s = f.session(SIGN_SLOT);
    f.clear_log();
    for bad in [&b"ABCDEFGH"[..], b"12345678", b"abcdefgh"] {
        assert_eq!(
            backend::set_pin(s, Some(b"JPKITEST1"), Some(bad)),
            Err(CkError::PinInvalid),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        backend::set_pin(s, Some(b"JPKITEST1"), Some(b"AB12")),
        Err(CkError::PinLenRange)
    );
    assert!(f.commands().is_empty(), "{:?}", f.log());
    // A mixed one is set (lower case folded), and then works.
    backend::set_pin(s, Some(b"JPKITEST1"), Some(b"newpass22")).unwrap();
    assert_eq!(backend::login(s, CKU_USER, Some(b"NEWPASS22")), Ok(()));
}
