//! Tests of the module's behaviour through `api`, against virtual cards in this process.
//! Each signature is verified with the certificate's public key by the `rsa` crate.

use crate::backend::tests::support::*;
use crate::backend::{self, AttrValue, MechanismParams, PssParams, RawMechanism};
use crate::error::CkError;
use cryptoki_sys::*;
use jpki_card::inproc::InProcSystem;
use jpki_vcard::VirtualCard;
use rsa::{Pkcs1v15Sign, Pss};
use sha2::{Digest, Sha256};

const AUTH_SLOT: CK_SLOT_ID = 0;
const SIGN_SLOT: CK_SLOT_ID = 1;

fn find(h: CK_SESSION_HANDLE, template: backend::Template) -> Vec<CK_OBJECT_HANDLE> {
    backend::find_objects_init(h, template).unwrap();
    let found = backend::find_objects(h, 100).unwrap();
    backend::find_objects_final(h).unwrap();
    found
}

fn class_of(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> CK_OBJECT_CLASS {
    match &backend::get_attribute_value(h, o, &[CKA_CLASS]).unwrap()[0] {
        AttrValue::Value(v) => CK_ULONG::from_ne_bytes(v[..].try_into().unwrap()),
        other => panic!("class: {other:?}"),
    }
}

fn classes(h: CK_SESSION_HANDLE) -> Vec<CK_OBJECT_CLASS> {
    let mut c: Vec<_> = find(h, vec![])
        .into_iter()
        .map(|o| class_of(h, o))
        .collect();
    c.sort();
    c
}

fn private_key(h: CK_SESSION_HANDLE) -> CK_OBJECT_HANDLE {
    let found = find(h, vec![(CKA_CLASS, CKO_PRIVATE_KEY.to_ne_bytes().to_vec())]);
    assert_eq!(found.len(), 1, "one private key");
    found[0]
}

fn tries_flags(slot: CK_SLOT_ID) -> CK_FLAGS {
    backend::get_token_info(slot).unwrap().flags
        & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED)
}

#[test]
fn lists_two_tokens_per_reader() {
    let f = Fixture::new();
    assert_eq!(backend::get_slot_list(false).unwrap(), vec![0, 1]);
    let auth = backend::get_token_info(AUTH_SLOT).unwrap();
    let sign = backend::get_token_info(SIGN_SLOT).unwrap();
    assert!(String::from_utf8_lossy(&auth.label).contains("Authentication"));
    assert!(String::from_utf8_lossy(&sign.label).contains("Signature"));
    assert_eq!(auth.serialNumber, sign.serialNumber);
    assert_ne!(auth.serialNumber, [b' '; 16]);
    assert_eq!((auth.ulMinPinLen, auth.ulMaxPinLen), (4, 4));
    assert_eq!((sign.ulMinPinLen, sign.ulMaxPinLen), (6, 16));
    assert!(auth.flags & CKF_LOGIN_REQUIRED != 0 && auth.flags & CKF_TOKEN_INITIALIZED != 0);
    let slot = backend::get_slot_info(AUTH_SLOT).unwrap();
    assert_eq!(
        slot.flags & (CKF_REMOVABLE_DEVICE | CKF_TOKEN_PRESENT),
        CKF_REMOVABLE_DEVICE | CKF_TOKEN_PRESENT
    );
    // Token info never presents a PIN.
    assert_eq!(f.verifies_sent(), 0);
}

#[test]
fn a_different_card_has_a_different_serial() {
    let f = Fixture::new();
    backend::get_slot_list(false).unwrap();
    let first = backend::get_token_info(AUTH_SLOT).unwrap().serialNumber;
    f.sys.remove(0);
    f.sys.insert(0, VirtualCard::in_memory_other());
    let second = backend::get_token_info(AUTH_SLOT)
        .map_err(|e| e.name())
        .unwrap()
        .serialNumber;
    assert_ne!(first, second);
}

#[test]
fn objects_before_and_after_login() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    let s = f.session(SIGN_SLOT);
    assert_eq!(
        classes(a),
        vec![
            CKO_CERTIFICATE,
            CKO_CERTIFICATE,
            CKO_PUBLIC_KEY,
            CKO_PROFILE
        ]
    );
    assert_eq!(
        classes(s),
        vec![CKO_CERTIFICATE, CKO_PROFILE],
        "no signature certificate before login"
    );
    // The one certificate on the signature token is the CA's.
    let certs = find(s, vec![(CKA_CLASS, CKO_CERTIFICATE.to_ne_bytes().to_vec())]);
    let v = backend::get_attribute_value(s, certs[0], &[CKA_VALUE]).unwrap();
    assert_eq!(
        v[0],
        AttrValue::Value(f.card.lock().sign_ca_cert().to_vec())
    );
    // Reading the signature certificate without the password is refused by the card too.
    assert!(f.log().iter().all(|l| !l.starts_with("00A4020C020001")));

    backend::login(a, CKU_USER, Some(b"1234")).unwrap();
    assert_eq!(
        classes(a),
        vec![
            CKO_CERTIFICATE,
            CKO_CERTIFICATE,
            CKO_PUBLIC_KEY,
            CKO_PRIVATE_KEY,
            CKO_PROFILE
        ]
    );
    backend::login(s, CKU_USER, Some(b"jpkitest1")).unwrap();
    assert_eq!(
        classes(s),
        vec![
            CKO_CERTIFICATE,
            CKO_CERTIFICATE,
            CKO_PUBLIC_KEY,
            CKO_PRIVATE_KEY,
            CKO_PROFILE
        ]
    );
    let k = private_key(s);
    let attrs = backend::get_attribute_value(
        s,
        k,
        &[
            CKA_ALWAYS_AUTHENTICATE,
            CKA_EXTRACTABLE,
            CKA_SENSITIVE,
            CKA_MODULUS,
            CKA_PRIVATE_EXPONENT,
            0x7777_0000,
        ],
    )
    .unwrap();
    assert_eq!(attrs[0], AttrValue::Value(vec![1]));
    assert_eq!(attrs[1], AttrValue::Value(vec![0]));
    assert_eq!(attrs[2], AttrValue::Value(vec![1]));
    let AttrValue::Value(modulus) = &attrs[3] else {
        panic!("modulus")
    };
    assert_eq!(modulus.len(), 256);
    assert_eq!(attrs[4], AttrValue::Sensitive);
    assert_eq!(attrs[5], AttrValue::Invalid);
    // Key pair objects share CKA_ID and CKA_LABEL.
    let pair = find(s, vec![(CKA_ID, vec![2])]);
    assert_eq!(pair.len(), 3);
    backend::logout(s).unwrap();
    assert_eq!(classes(s), vec![CKO_CERTIFICATE, CKO_PROFILE]);
    // Searches for classes the token does not have find nothing.
    assert!(find(a, vec![(CKA_CLASS, CKO_DATA.to_ne_bytes().to_vec())]).is_empty());
}

/// `CKA_PROFILE_ID` of the profile object found by NSS's own search (`pk11_ReadProfileList`:
/// `CKA_TOKEN` true, `CKA_CLASS` `CKO_PROFILE`), before any login.
fn profile_of(session: CK_SESSION_HANDLE) -> CK_ULONG {
    let found = find(
        session,
        vec![
            (CKA_TOKEN, vec![1]),
            (CKA_CLASS, CKO_PROFILE.to_ne_bytes().to_vec()),
        ],
    );
    assert_eq!(found.len(), 1);
    let v = backend::get_attribute_value(session, found[0], &[CKA_PROFILE_ID]).unwrap();
    let AttrValue::Value(bytes) = &v[0] else {
        panic!("CKA_PROFILE_ID: {:?}", v[0])
    };
    CK_ULONG::from_ne_bytes(bytes.as_slice().try_into().unwrap())
}

/// In a program of `signing_programs` (Thunderbird by default) the signature token is an
/// authentication token, so that NSS logs in to look for its certificate; the authentication
/// token stays a public-certificates token, and everywhere else both are (Firefox never asks for
/// the signature password to list certificates).
#[test]
fn signing_programs_make_the_signature_token_an_authentication_token() {
    let this = std::env::current_exe().unwrap();
    let this = crate::config::program_name(&this.to_string_lossy());
    for (programs, sign_profile) in [
        (vec![], CKP_PUBLIC_CERTIFICATES_TOKEN),
        (
            vec!["thunderbird".to_string()],
            CKP_PUBLIC_CERTIFICATES_TOKEN,
        ),
        (vec![this.clone()], CKP_AUTHENTICATION_TOKEN),
    ] {
        let _cfg = ConfigGuard::set(crate::config::Config {
            signing_programs: programs.clone(),
            ..Default::default()
        });
        let f = Fixture::new();
        let a = f.session(AUTH_SLOT);
        let s = f.session(SIGN_SLOT);
        assert_eq!(profile_of(a), CKP_PUBLIC_CERTIFICATES_TOKEN, "{programs:?}");
        assert_eq!(profile_of(s), sign_profile, "{programs:?}");
        // Still no signature certificate without the password.
        assert_eq!(classes(s), vec![CKO_CERTIFICATE, CKO_PROFILE]);
        assert!(f.log().iter().all(|l| !l.starts_with("0020")), "no VERIFY");
    }
}

#[test]
fn every_mechanism_signs_with_both_keys_and_verifies() {
    let f = Fixture::new();
    let auth_pub = public_key(f.card.lock().auth_cert());
    let sign_pub = public_key(f.card.lock().sign_cert());
    for (slot, pin, pubkey) in [
        (AUTH_SLOT, &b"1234"[..], &auth_pub),
        (SIGN_SLOT, &b"JPKITEST1"[..], &sign_pub),
    ] {
        let h = f.session(slot);
        backend::login(h, CKU_USER, Some(pin)).unwrap();
        let key = private_key(h);
        if slot == SIGN_SLOT {
            // The login's consent to one signature (docs/security.md) is spent here, so that
            // every case below needs its own per-signature login.
            backend::sign_init(h, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
            let sig = backend::sign(h, b"consented").unwrap();
            pubkey
                .verify(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(b"consented"),
                    &sig,
                )
                .unwrap();
        }
        let msg = b"message to sign";
        let cases: Vec<(RawMechanism, Vec<u8>)> = vec![
            (mech(CKM_RSA_PKCS), digest_info(msg)),
            (mech(CKM_SHA256_RSA_PKCS), msg.to_vec()),
            (mech(CKM_SHA1_RSA_PKCS), msg.to_vec()),
            (mech(CKM_SHA224_RSA_PKCS), msg.to_vec()),
            (mech(CKM_SHA384_RSA_PKCS), msg.to_vec()),
            (mech(CKM_SHA512_RSA_PKCS), msg.to_vec()),
            (pss(CKM_RSA_PKCS_PSS), Sha256::digest(msg).to_vec()),
            (pss(CKM_SHA256_RSA_PKCS_PSS), msg.to_vec()),
        ];
        for (m, data) in cases {
            backend::sign_init(h, &m, key).unwrap();
            if slot == SIGN_SLOT {
                assert_eq!(
                    backend::sign(h, &data),
                    Err(CkError::UserNotLoggedIn),
                    "always-authenticate"
                );
                backend::sign_init(h, &m, key).unwrap();
                backend::login(h, CKU_CONTEXT_SPECIFIC, Some(pin)).unwrap();
            }
            assert_eq!(backend::sign_len(h).unwrap(), 256);
            assert_eq!(
                backend::sign_len(h).unwrap(),
                256,
                "a length query does not end the operation"
            );
            let sig = backend::sign(h, &data).unwrap();
            let ok = match m.mechanism {
                CKM_RSA_PKCS => pubkey.verify(Pkcs1v15Sign::new_unprefixed(), &data, &sig),
                CKM_SHA256_RSA_PKCS => {
                    pubkey.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), &sig)
                }
                CKM_SHA1_RSA_PKCS => pubkey.verify(
                    Pkcs1v15Sign::new::<sha1::Sha1>(),
                    &sha1::Sha1::digest(msg),
                    &sig,
                ),
                CKM_SHA224_RSA_PKCS => pubkey.verify(
                    Pkcs1v15Sign::new::<sha2::Sha224>(),
                    &sha2::Sha224::digest(msg),
                    &sig,
                ),
                CKM_SHA384_RSA_PKCS => pubkey.verify(
                    Pkcs1v15Sign::new::<sha2::Sha384>(),
                    &sha2::Sha384::digest(msg),
                    &sig,
                ),
                CKM_SHA512_RSA_PKCS => pubkey.verify(
                    Pkcs1v15Sign::new::<sha2::Sha512>(),
                    &sha2::Sha512::digest(msg),
                    &sig,
                ),
                _ => pubkey.verify(Pss::new_with_salt::<Sha256>(32), &Sha256::digest(msg), &sig),
            };
            assert!(
                ok.is_ok(),
                "slot {slot} mechanism {:#x} verifies",
                m.mechanism
            );
            assert_eq!(
                backend::sign_len(h),
                Err(CkError::OperationNotInitialized),
                "C_Sign ended it"
            );
        }
        // Multi-part.
        backend::sign_init(h, &pss(CKM_SHA256_RSA_PKCS_PSS), key).unwrap();
        if slot == SIGN_SLOT {
            backend::login(h, CKU_CONTEXT_SPECIFIC, Some(pin)).unwrap();
        }
        backend::sign_update(h, b"message ").unwrap();
        backend::sign_update(h, b"to sign").unwrap();
        let sig = backend::sign_final(h).unwrap();
        assert!(pubkey
            .verify(Pss::new_with_salt::<Sha256>(32), &Sha256::digest(msg), &sig)
            .is_ok());
        // Host-side verification with the public key object.
        let pubs = find(h, vec![(CKA_CLASS, CKO_PUBLIC_KEY.to_ne_bytes().to_vec())]);
        backend::verify_init(h, &pss(CKM_SHA256_RSA_PKCS_PSS), pubs[0]).unwrap();
        backend::verify(h, msg, &sig).unwrap();
        backend::verify_init(h, &pss(CKM_SHA256_RSA_PKCS_PSS), pubs[0]).unwrap();
        assert_eq!(
            backend::verify(h, b"other", &sig),
            Err(CkError::SignatureInvalid)
        );
    }
}

#[test]
fn wrong_parameters_are_refused() {
    let f = Fixture::new();
    let h = f.session(AUTH_SLOT);
    backend::login(h, CKU_USER, Some(b"1234")).unwrap();
    let key = private_key(h);
    let bad = RawMechanism {
        mechanism: CKM_RSA_PKCS_PSS,
        params: MechanismParams::Pss(PssParams {
            hash_alg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            s_len: 20,
        }),
    };
    assert_eq!(
        backend::sign_init(h, &bad, key),
        Err(CkError::MechanismParamInvalid)
    );
    assert_eq!(
        backend::sign_init(h, &mech(CKM_RSA_X_509), key),
        Err(CkError::MechanismInvalid)
    );
    backend::sign_init(h, &mech(CKM_RSA_PKCS), key).unwrap();
    assert_eq!(backend::sign(h, &[0; 246]), Err(CkError::DataLenRange));
    let pubs = find(h, vec![(CKA_CLASS, CKO_PUBLIC_KEY.to_ne_bytes().to_vec())]);
    assert_eq!(
        backend::sign_init(h, &mech(CKM_RSA_PKCS), pubs[0]),
        Err(CkError::KeyFunctionNotPermitted)
    );
    assert_eq!(
        backend::sign_init(h, &mech(CKM_RSA_PKCS), 999),
        Err(CkError::KeyHandleInvalid)
    );
}

#[test]
fn pin_safety() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    let s = f.session(SIGN_SLOT);
    f.clear_log();
    // Malformed PINs never reach the card.
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"123")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"12345")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"12a4")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(
        backend::login(s, CKU_USER, Some(b"ABC12")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(
        backend::login(s, CKU_USER, Some(b"ABC-123")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(
        f.verifies_sent(),
        0,
        "no VERIFY for a malformed PIN: {:?}",
        f.log()
    );
    assert_eq!(tries_flags(AUTH_SLOT), 0);
    // Wrong PIN: one try each, reported in the flags.
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"0000")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(f.verifies_sent(), 1);
    assert_eq!(tries_flags(AUTH_SLOT), CKF_USER_PIN_COUNT_LOW);
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"0001")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(
        tries_flags(AUTH_SLOT),
        CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY
    );
    // The right PIN resets the counter.
    backend::login(a, CKU_USER, Some(b"1234")).unwrap();
    assert_eq!(tries_flags(AUTH_SLOT), 0);
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"1234")),
        Err(CkError::UserAlreadyLoggedIn)
    );
    backend::logout(a).unwrap();
    // Block it (three different wrong PINs: the same one twice is not sent twice).
    for wrong in [b"9997", b"9998", b"9999"] {
        assert_eq!(
            backend::login(a, CKU_USER, Some(wrong)),
            Err(CkError::PinIncorrect)
        );
    }
    assert_eq!(tries_flags(AUTH_SLOT), CKF_USER_PIN_LOCKED);
    let before = f.verifies_sent();
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"1234")),
        Err(CkError::PinLocked)
    );
    assert_eq!(f.verifies_sent(), before, "no VERIFY sent to a blocked PIN");
    assert_eq!(f.card.lock().tries_left().0, 0);
    // The signature password is untouched.
    assert_eq!(f.card.lock().tries_left().1, 5);
}

#[test]
fn the_card_is_never_left_unlocked() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    let s = f.session(SIGN_SLOT);
    backend::login(a, CKU_USER, Some(b"1234")).unwrap();
    assert_eq!(f.other_process_sign_sw(0x17), 0x6982, "after login");
    let key = private_key(a);
    backend::sign_init(a, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    backend::sign(a, b"data").unwrap();
    assert_eq!(f.other_process_sign_sw(0x17), 0x6982, "after signing");
    backend::login(s, CKU_USER, Some(b"JPKITEST1")).unwrap();
    assert_eq!(
        f.other_process_sign_sw(0x1A),
        0x6982,
        "after signature login"
    );
    let skey = private_key(s);
    backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), skey).unwrap();
    backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"JPKITEST1")).unwrap();
    assert_eq!(f.other_process_sign_sw(0x1A), 0x6982, "after context login");
    backend::sign(s, b"data").unwrap();
    assert_eq!(f.other_process_sign_sw(0x1A), 0x6982, "after signing");
    // A failed signature (data too long for the card) also leaves it locked.
    backend::sign_init(a, &mech(CKM_RSA_PKCS), key).unwrap();
    assert!(backend::sign(a, &[1; 246]).is_err());
    assert_eq!(
        f.other_process_sign_sw(0x17),
        0x6982,
        "after a failed signature"
    );
    backend::logout(a).unwrap();
    assert_eq!(f.other_process_sign_sw(0x17), 0x6982, "after logout");
}

#[test]
fn a_failed_reverification_logs_out_without_retrying() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    backend::login(a, CKU_USER, Some(b"1234")).unwrap();
    let key = private_key(a);
    // Another process changes the PIN behind the module's back.
    {
        let mut c = f.card.lock();
        c.transmit(&[
            0, 0xA4, 4, 0x0C, 10, 0xD3, 0x92, 0xF0, 0, 0x26, 1, 0, 0, 0, 1,
        ]);
        c.transmit(&[0, 0xA4, 2, 0x0C, 2, 0, 0x18]);
        assert_eq!(
            c.transmit(&[0, 0x20, 0, 0x80, 4, b'1', b'2', b'3', b'4']),
            [0x90, 0]
        );
        assert_eq!(
            c.transmit(&[0, 0x24, 1, 0x80, 4, b'5', b'6', b'7', b'8']),
            [0x90, 0]
        );
        c.reset();
    }
    f.clear_log();
    backend::sign_init(a, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    assert_eq!(backend::sign(a, b"data"), Err(CkError::UserNotLoggedIn));
    assert_eq!(f.verifies_sent(), 1, "the held PIN was tried once");
    assert_eq!(
        { backend::get_session_info(a).unwrap().state },
        CKS_RW_PUBLIC_SESSION
    );
    assert_eq!(
        backend::sign_init(a, &mech(CKM_SHA256_RSA_PKCS), key),
        Err(CkError::UserNotLoggedIn)
    );
    assert_eq!(f.verifies_sent(), 1);
    assert_eq!(f.card.lock().tries_left().0, 2);
}

#[test]
fn removal_and_reinsertion() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    backend::login(a, CKU_USER, Some(b"1234")).unwrap();
    f.sys.remove(0).unwrap();
    assert_eq!(
        backend::get_session_info(a).err(),
        Some(CkError::SessionHandleInvalid)
    );
    assert_eq!(
        backend::get_slot_list(true).unwrap(),
        Vec::<CK_SLOT_ID>::new()
    );
    assert_eq!(
        backend::get_slot_list(false).unwrap(),
        vec![0, 1],
        "the slot list never shrinks"
    );
    assert_eq!(
        backend::get_token_info(AUTH_SLOT).map(|_| ()),
        Err(CkError::TokenNotPresent)
    );
    // The same card again (same keys and certificates).
    f.sys.insert(0, VirtualCard::in_memory());
    let b = backend::open_session(AUTH_SLOT, CKF_SERIAL_SESSION).unwrap();
    assert_ne!(a, b, "session handles are never reused");
    assert_eq!(
        { backend::get_session_info(b).unwrap().state },
        CKS_RO_PUBLIC_SESSION,
        "login not inherited"
    );
    assert_eq!(
        backend::get_session_info(a).err(),
        Some(CkError::SessionHandleInvalid)
    );
}

#[test]
fn removal_in_the_middle_of_a_signature() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    backend::login(a, CKU_USER, Some(b"1234")).unwrap();
    let key = private_key(a);
    backend::sign_init(a, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    backend::sign_update(a, b"part").unwrap();
    f.sys.remove(0);
    assert_eq!(backend::sign_final(a), Err(CkError::SessionHandleInvalid));
}

#[test]
fn random_comes_from_the_card() {
    let f = Fixture::new();
    let h = f.session(AUTH_SLOT);
    f.clear_log();
    let r = backend::generate_random(h, 20).unwrap();
    assert_eq!(r.len(), 20);
    assert_eq!(
        f.log().iter().filter(|l| l.starts_with("00840000")).count(),
        3
    );
    assert_eq!(
        backend::seed_random(h),
        Err(CkError::RandomSeedNotSupported)
    );
}

#[test]
fn not_initialized_and_fork_rules() {
    let _guard = crate::backend::TEST_LOCK.lock();
    let _ = backend::finalize();
    assert_eq!(
        backend::get_slot_list(false),
        Err(CkError::CryptokiNotInitialized)
    );
    assert_eq!(backend::finalize(), Err(CkError::CryptokiNotInitialized));
    crate::backend::use_card_system(Some(InProcSystem::new(&[])));
    backend::initialize().unwrap();
    assert_eq!(
        backend::initialize(),
        Err(CkError::CryptokiAlreadyInitialized)
    );
    assert_eq!(
        backend::get_slot_list(false).unwrap(),
        Vec::<CK_SLOT_ID>::new()
    );
    assert_eq!(
        backend::open_session(0, CKF_SERIAL_SESSION),
        Err(CkError::SlotIdInvalid)
    );
    assert_eq!(
        backend::close_session(77),
        Err(CkError::SessionHandleInvalid)
    );
    backend::poison();
    assert_eq!(backend::get_slot_list(false), Err(CkError::GeneralError));
    backend::finalize().unwrap();
    backend::initialize().unwrap();
    assert!(
        backend::get_slot_list(false).is_ok(),
        "initialize clears the poison"
    );
    backend::finalize().unwrap();
    crate::backend::use_card_system(None);
}

#[test]
fn a_card_without_pss_stops_offering_it_and_pkcs1_goes_on() {
    use jpki_vcard::PssBehaviour;
    for behaviour in [PssBehaviour::Refuse, PssBehaviour::Corrupt] {
        let f = Fixture::new();
        let h = f.session(AUTH_SLOT);
        assert!(backend::get_mechanism_list(AUTH_SLOT)
            .unwrap()
            .contains(&CKM_RSA_PKCS_PSS));
        backend::login(h, CKU_USER, Some(b"1234")).unwrap();
        let key = private_key(h);
        f.card.lock().set_pss(behaviour);
        backend::sign_init(h, &pss(CKM_SHA256_RSA_PKCS_PSS), key).unwrap();
        let expected = match behaviour {
            PssBehaviour::Refuse => CkError::MechanismInvalid,
            _ => CkError::FunctionFailed,
        };
        assert_eq!(
            backend::sign(h, b"data"),
            Err(expected),
            "{behaviour:?}: no signature handed out"
        );
        let mechs = backend::get_mechanism_list(AUTH_SLOT).unwrap();
        assert!(!mechs.contains(&CKM_RSA_PKCS_PSS) && !mechs.contains(&CKM_SHA256_RSA_PKCS_PSS));
        assert_eq!(
            backend::get_mechanism_info(AUTH_SLOT, CKM_RSA_PKCS_PSS).err(),
            Some(CkError::MechanismInvalid)
        );
        assert_eq!(
            backend::sign_init(h, &pss(CKM_RSA_PKCS_PSS), key),
            Err(CkError::MechanismInvalid)
        );
        backend::sign_init(h, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
        let sig = backend::sign(h, b"data").unwrap();
        let pubkey = public_key(f.card.lock().auth_cert());
        assert!(pubkey
            .verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(b"data"),
                &sig
            )
            .is_ok());
        assert_eq!(
            f.other_process_sign_sw(0x17),
            0x6982,
            "locked after the failed PSS signature"
        );
    }
}

#[test]
fn two_call_convention_through_the_c_functions() {
    use crate::ffi::sign::{C_Sign, C_SignInit};
    use std::ptr;
    let f = Fixture::new();
    let h = f.session(AUTH_SLOT);
    backend::login(h, CKU_USER, Some(b"1234")).unwrap();
    let key = private_key(h);
    let mut m = CK_MECHANISM {
        mechanism: CKM_SHA256_RSA_PKCS,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut data = *b"two-call";
    // SAFETY: valid pointers to live locals for the duration of each call.
    unsafe {
        assert_eq!(C_SignInit(h, &mut m, key), CKR_OK);
        f.clear_log();
        let mut len: CK_ULONG = 0;
        assert_eq!(
            C_Sign(h, data.as_mut_ptr(), 8, ptr::null_mut(), &mut len),
            CKR_OK
        );
        assert_eq!(len, 256);
        let mut small = [0u8; 1];
        len = 1;
        assert_eq!(
            C_Sign(h, data.as_mut_ptr(), 8, small.as_mut_ptr(), &mut len),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 256);
        assert!(
            f.log().is_empty(),
            "length queries never touch the card: {:?}",
            f.log()
        );
        let mut sig = [0u8; 300];
        len = 300;
        assert_eq!(
            C_Sign(h, data.as_mut_ptr(), 8, sig.as_mut_ptr(), &mut len),
            CKR_OK
        );
        assert_eq!(len, 256);
        let pubkey = public_key(f.card.lock().auth_cert());
        assert!(pubkey
            .verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(b"two-call"),
                &sig[..256]
            )
            .is_ok());
        // The operation ended with the signature.
        assert_eq!(
            C_Sign(h, data.as_mut_ptr(), 8, ptr::null_mut(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        // Bad arguments end it too.
        assert_eq!(C_SignInit(h, &mut m, key), CKR_OK);
        assert_eq!(
            C_Sign(h, data.as_mut_ptr(), 8, sig.as_mut_ptr(), ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_Sign(h, data.as_mut_ptr(), 8, ptr::null_mut(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
    }
}

/// Counts the APDUs of `f` in the card's log.
fn apdus(fx: &Fixture, f: impl FnOnce()) -> Vec<String> {
    fx.clear_log();
    f();
    fx.log()
        .into_iter()
        .filter(|l| !l.starts_with('#'))
        .collect()
}

#[test]
fn short_ef_identifiers_save_selects_and_a_card_without_them_still_works() {
    for sfi in [true, false] {
        let f = Fixture::new();
        f.card.lock().set_sfi(sfi);
        let list = apdus(&f, || {
            backend::get_slot_list(true).unwrap();
            backend::get_token_info(AUTH_SLOT).unwrap();
            backend::get_token_info(SIGN_SLOT).unwrap();
        });
        let h = f.session(AUTH_SLOT);
        let login = apdus(&f, || backend::login(h, CKU_USER, Some(b"1234")).unwrap());
        let key = private_key(h);
        backend::sign_init(h, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
        let first = apdus(&f, || {
            backend::sign(h, b"one").unwrap();
        });
        backend::sign_init(h, &pss(CKM_SHA256_RSA_PKCS_PSS), key).unwrap();
        let second = apdus(&f, || {
            let sig = backend::sign(h, b"two").unwrap();
            let pubkey = public_key(f.card.lock().auth_cert());
            assert!(pubkey
                .verify(
                    Pss::new_with_salt::<Sha256>(32),
                    &Sha256::digest(b"two"),
                    &sig
                )
                .is_ok());
        });
        if sfi {
            assert_eq!(list.len(), 6, "token listing: {list:?}");
            assert_eq!(
                second.len(),
                4,
                "a further signature: select, verify, sign, drop: {second:?}"
            );
            assert!(
                login.iter().all(|l| !l.starts_with("00A4020C")),
                "no SELECT EF: {login:?}"
            );
        } else {
            // Each short form was refused once, then the long forms: more APDUs, same results.
            assert!(list.len() > 6, "{list:?}");
            assert_eq!(second.len(), 6, "{second:?}");
            assert!(
                login.iter().any(|l| l.starts_with("00A4020C020018")),
                "{login:?}"
            );
        }
        for seq in [&login, &first, &second] {
            let verifies = seq
                .iter()
                .filter(|l| l.starts_with("0020") && l.contains('*'))
                .count();
            assert_eq!(verifies, 1, "one PIN presentation per call: {seq:?}");
            assert!(
                seq.last().unwrap().starts_with("00A4040C07A0000001510000"),
                "ends locked: {seq:?}"
            );
        }
        assert_eq!(
            f.card.lock().tries_left(),
            (3, 5),
            "no try lost to the fallback"
        );
    }
}

#[test]
fn apdu_counts_of_the_main_flows() {
    let f = Fixture::new();
    let list = apdus(&f, || {
        backend::get_slot_list(true).unwrap();
        backend::get_token_info(AUTH_SLOT).unwrap();
        backend::get_token_info(SIGN_SLOT).unwrap();
    });
    // Object listing (as pkcs11-tool -O does): every object, its class, label, id and value.
    let h = f.session(AUTH_SLOT);
    let objects = apdus(&f, || {
        for o in find(h, vec![]) {
            let _ = backend::get_attribute_value(
                h,
                o,
                &[CKA_CLASS, CKA_LABEL, CKA_ID, CKA_VALUE, CKA_MODULUS],
            );
        }
    });
    println!(
        "token listing {}, object listing (after binding) {}",
        list.len(),
        objects.len()
    );
    assert_eq!(list.len(), 6, "{list:?}");
    // Two certificates: the bound head is reused, every other chunk read once, one SELECT each.
    let auth_len = f.card.lock().auth_cert().len();
    let ca_len = f.card.lock().auth_ca_cert().len();
    let reads = (auth_len - 255).div_ceil(256) + ca_len.div_ceil(256);
    assert_eq!(objects.len(), 2 + reads, "{objects:?}");
}

#[test]
fn null_pin_without_pinentry_is_refused() {
    let f = Fixture::new();
    let _c = ConfigGuard::set(Default::default());
    let a = f.session(AUTH_SLOT);
    assert_eq!(
        backend::get_token_info(AUTH_SLOT).unwrap().flags & CKF_PROTECTED_AUTHENTICATION_PATH,
        0
    );
    assert_eq!(
        backend::login(a, CKU_USER, None),
        Err(CkError::ArgumentsBad)
    );
    assert_eq!(f.verifies_sent(), 0);
}

#[test]
fn pinentry_login_shows_tries_and_verifies_once() {
    let f = Fixture::new();
    let (_c, dir) = with_pinentry("ok", "D 1234\\nOK");
    let a = f.session(AUTH_SLOT);
    for slot in [AUTH_SLOT, SIGN_SLOT] {
        let flags = backend::get_token_info(slot).unwrap().flags;
        assert_ne!(flags & CKF_PROTECTED_AUTHENTICATION_PATH, 0, "slot {slot}");
    }
    // One wrong typed PIN first: the prompt must then say 2 tries left.
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"0000")),
        Err(CkError::PinIncorrect)
    );
    f.clear_log();
    backend::login(a, CKU_USER, None).unwrap();
    assert_eq!(f.verifies_sent(), 1, "exactly one VERIFY: {:?}", f.log());
    assert_eq!(f.card.lock().tries_left().0, 3);
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    assert!(
        log.contains("SETDESC My Number Card: enter the user authentication PIN"),
        "{log}"
    );
    assert!(log.contains("Tries left: 2 of 3."), "{log}");
    assert!(log.contains("SETPROMPT PIN:"), "{log}");
    assert!(
        !log.contains("1234"),
        "the PIN is not in what the module sent: {log}"
    );
    // Logged in: the private key is visible.
    private_key(a);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pinentry_answers_are_checked_like_typed_pins() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    f.clear_log();
    {
        let (_c, _) = with_pinentry("cancel", "ERR 83886179 Operation cancelled");
        assert_eq!(
            backend::login(a, CKU_USER, None),
            Err(CkError::FunctionCanceled)
        );
    }
    {
        let (_c, _) = with_pinentry("short", "D 123\\nOK");
        assert_eq!(
            backend::login(a, CKU_USER, None),
            Err(CkError::PinIncorrect)
        );
    }
    {
        let (_c, _) = with_pinentry("empty", "OK");
        assert_eq!(
            backend::login(a, CKU_USER, None),
            Err(CkError::PinIncorrect)
        );
    }
    {
        let _c = ConfigGuard::set(crate::config::Config {
            pinentry: Some("/nonexistent/pinentry".into()),
            ..Default::default()
        });
        assert_eq!(
            backend::login(a, CKU_USER, None),
            Err(CkError::FunctionFailed)
        );
    }
    assert_eq!(f.verifies_sent(), 0, "nothing sent: {:?}", f.log());
    {
        let (_c, _) = with_pinentry("wrong", "D 9999\\nOK");
        assert_eq!(
            backend::login(a, CKU_USER, None),
            Err(CkError::PinIncorrect)
        );
        assert_eq!(f.verifies_sent(), 1, "one VERIFY, never retried");
        // The same wrong PIN from pinentry again is not sent again.
        assert_eq!(
            backend::login(a, CKU_USER, None),
            Err(CkError::PinIncorrect)
        );
        assert_eq!(
            f.verifies_sent(),
            1,
            "a PIN the card refused is not sent again"
        );
    }
    for (i, wrong) in ["9998", "9997"].iter().enumerate() {
        let (_c, _) = with_pinentry(&format!("wrong{i}"), &format!("D {wrong}\\nOK"));
        backend::login(a, CKU_USER, None).unwrap_err();
    }
    {
        let (_c, _) = with_pinentry("locked", "D 1234\\nOK");
        assert_eq!(f.card.lock().tries_left().0, 0);
        let before = f.verifies_sent();
        // Locked: refused before the pinentry is even started.
        assert_eq!(backend::login(a, CKU_USER, None), Err(CkError::PinLocked));
        assert_eq!(f.verifies_sent(), before);
    }
}

#[test]
fn pinentry_for_each_signature() {
    let f = Fixture::new();
    let (_c, dir) = with_pinentry("sign", "D jpkitest1\\nOK");
    let sign_pub = public_key(f.card.lock().sign_cert());
    let s = f.session(SIGN_SLOT);
    backend::login(s, CKU_USER, None).unwrap();
    let key = private_key(s);
    backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    backend::login(s, CKU_CONTEXT_SPECIFIC, None).unwrap();
    let sig = backend::sign(s, b"doc").unwrap();
    sign_pub
        .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"doc"), &sig)
        .expect("signature verifies");
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    assert_eq!(log.matches("GETPIN").count(), 2, "{log}");
    assert!(
        log.contains("It is asked again for each signature."),
        "{log}"
    );
    assert!(log.contains("Tries left: 5 of 5."), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn hidden_tokens_and_pss_switched_off() {
    let f = Fixture::new();
    let _c = ConfigGuard::set(crate::config::Config {
        expose_sign: false,
        pss: false,
        ..Default::default()
    });
    assert_eq!(backend::get_slot_list(true).unwrap(), vec![AUTH_SLOT]);
    assert_eq!(
        backend::get_slot_list(false).unwrap(),
        vec![AUTH_SLOT, SIGN_SLOT]
    );
    assert_eq!(
        backend::get_slot_info(SIGN_SLOT).unwrap().flags & CKF_TOKEN_PRESENT,
        0
    );
    assert_eq!(
        backend::get_token_info(SIGN_SLOT).map(|_| ()),
        Err(CkError::TokenNotPresent)
    );
    assert_eq!(
        backend::open_session(SIGN_SLOT, CKF_SERIAL_SESSION).map(|_| ()),
        Err(CkError::TokenNotPresent)
    );
    let mechs = backend::get_mechanism_list(AUTH_SLOT).unwrap();
    assert!(mechs.contains(&CKM_SHA256_RSA_PKCS));
    assert!(!mechs.contains(&CKM_RSA_PKCS_PSS) && !mechs.contains(&CKM_SHA256_RSA_PKCS_PSS));
    assert_eq!(
        backend::get_mechanism_info(AUTH_SLOT, CKM_RSA_PKCS_PSS).map(|_| ()),
        Err(CkError::MechanismInvalid)
    );
    let a = f.session(AUTH_SLOT);
    backend::login(a, CKU_USER, Some(b"1234")).unwrap();
    let key = private_key(a);
    assert_eq!(
        backend::sign_init(a, &pss(CKM_SHA256_RSA_PKCS_PSS), key),
        Err(CkError::MechanismInvalid)
    );
    backend::sign_init(a, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    backend::sign(a, b"x").unwrap();
}

#[test]
fn a_refused_pin_is_not_sent_again_and_a_failed_context_login_ends_the_signature() {
    let f = Fixture::new();
    let s = f.session(SIGN_SLOT);
    f.clear_log();
    assert_eq!(
        backend::login(s, CKU_USER, Some(b"WRONG1")),
        Err(CkError::PinIncorrect)
    );
    // The same wrong password again (as an application loop would send it): not sent.
    assert_eq!(
        backend::login(s, CKU_USER, Some(b"wrong1")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(f.verifies_sent(), 1, "{:?}", f.log());
    assert_eq!(f.card.lock().tries_left().1, 4);
    // Another wrong one is a new guess: it is sent (and costs a try).
    assert_eq!(
        backend::login(s, CKU_USER, Some(b"WRONG2")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(f.card.lock().tries_left().1, 3);
    backend::login(s, CKU_USER, Some(b"JPKITEST1")).unwrap();
    assert_eq!(f.card.lock().tries_left().1, 5);
    let key = private_key(s);
    backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    f.clear_log();
    assert_eq!(
        backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"WRONG3")),
        Err(CkError::PinIncorrect)
    );
    // NSS retries the per-signature login with the same password: the operation is gone.
    for _ in 0..5 {
        assert_eq!(
            backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"WRONG3")),
            Err(CkError::OperationNotInitialized)
        );
    }
    assert_eq!(
        backend::sign(s, b"x"),
        Err(CkError::OperationNotInitialized)
    );
    assert_eq!(f.verifies_sent(), 1, "{:?}", f.log());
    assert_eq!(f.card.lock().tries_left().1, 4);
    // The user is still logged in and can sign with the right password.
    backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"JPKITEST1")).unwrap();
    let sig = backend::sign(s, b"x").unwrap();
    let pubkey = public_key(f.card.lock().sign_cert());
    assert!(pubkey
        .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"x"), &sig)
        .is_ok());
}

#[test]
fn a_malformed_context_login_ends_the_signature_without_reaching_the_card() {
    let f = Fixture::new();
    let s = f.session(SIGN_SLOT);
    backend::login(s, CKU_USER, Some(b"JPKITEST1")).unwrap();
    let key = private_key(s);
    backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    f.clear_log();
    // An empty password (what NSS passes from a callback that has none, e.g. pdfsig without
    // -kpw), then one too short: refused for their format, nothing sent, and the signing
    // operation ends, so an application repeating the login gets an answer it does not retry.
    assert_eq!(
        backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"")),
        Err(CkError::PinIncorrect)
    );
    for _ in 0..3 {
        assert_eq!(
            backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"")),
            Err(CkError::OperationNotInitialized)
        );
    }
    assert_eq!(
        backend::sign(s, b"x"),
        Err(CkError::OperationNotInitialized)
    );
    backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    assert_eq!(
        backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"JPK1")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(
        backend::sign(s, b"x"),
        Err(CkError::OperationNotInitialized)
    );
    assert_eq!(f.verifies_sent(), 0, "{:?}", f.log());
    assert_eq!(f.card.lock().tries_left().1, 5);
    // The login's consent went to the first of these operations: a signature now needs its own
    // per-signature login, which still works.
    backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    assert_eq!(backend::sign(s, b"x"), Err(CkError::UserNotLoggedIn));
    backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"JPKITEST1")).unwrap();
    let sig = backend::sign(s, b"x").unwrap();
    let pubkey = public_key(f.card.lock().sign_cert());
    assert!(pubkey
        .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"x"), &sig)
        .is_ok());
}

#[test]
fn a_card_without_the_jpki_application_shows_no_token() {
    use jpki_vcard::Fault;
    let f = Fixture::new();
    f.sys.remove(0);
    let mut other = VirtualCard::in_memory();
    // Every SELECT refused, as a card without the JPKI application (a bank card, say) answers.
    other.set_fault(Fault::StatusFor {
        ins: 0xA4,
        sw: 0x6A82,
    });
    let other = f.sys.insert(0, other);
    assert_eq!(
        backend::get_slot_list(true).unwrap(),
        Vec::<CK_SLOT_ID>::new()
    );
    assert_eq!(backend::get_slot_list(false).unwrap(), vec![0, 1]);
    assert_eq!(
        backend::get_slot_info(AUTH_SLOT).unwrap().flags & CKF_TOKEN_PRESENT,
        0
    );
    assert_eq!(
        backend::get_token_info(AUTH_SLOT).err(),
        Some(CkError::TokenNotPresent)
    );
    assert_eq!(
        backend::open_session(AUTH_SLOT, CKF_SERIAL_SESSION).err(),
        Some(CkError::TokenNotPresent)
    );
    // It was asked once (SELECT JPKI), not again on every call.
    let selects = other
        .lock()
        .log()
        .iter()
        .filter(|l| l.starts_with("00A4"))
        .count();
    assert_eq!(selects, 1, "{:?}", other.lock().log());
    // A My Number Card in its place is found.
    f.sys.remove(0);
    f.sys.insert(0, VirtualCard::in_memory());
    assert_eq!(backend::get_slot_list(true).unwrap(), vec![0, 1]);
}

/// Java's SunPKCS11 (JSignPdf, jarsigner) logs in with `CKU_USER` and signs with
/// `C_SignInit`/`C_SignUpdate`/`C_SignFinal`, never with a per-signature login. The password typed
/// for that login consents to one signature, the next one: no more (docs/security.md, "Which
/// signature a password allows").
#[test]
fn a_login_consents_to_its_next_signature_and_no_other() {
    let f = Fixture::new();
    let sign_pub = public_key(f.card.lock().sign_cert());
    let verify = |msg: &[u8], sig: &[u8]| {
        sign_pub
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), sig)
            .expect("the signature verifies with the signature certificate")
    };
    let s = f.session(SIGN_SLOT);
    let m = mech(CKM_SHA256_RSA_PKCS);
    backend::login(s, CKU_USER, Some(b"JPKITEST1")).unwrap();
    let key = private_key(s);

    // The next signature, multi-part as SunPKCS11 makes it: one VERIFY, with the login's PIN.
    f.clear_log();
    backend::sign_init(s, &m, key).unwrap();
    backend::sign_update(s, b"META-INF/").unwrap();
    backend::sign_update(s, b"MANIFEST.MF").unwrap();
    verify(b"META-INF/MANIFEST.MF", &backend::sign_final(s).unwrap());
    assert_eq!(f.verifies_sent(), 1);

    // The one after it, in this or any other session, needs its own password.
    let other = f.session(SIGN_SLOT);
    for h in [s, other] {
        backend::sign_init(h, &m, key).unwrap();
        backend::sign_update(h, b"more").unwrap();
        assert_eq!(backend::sign_final(h), Err(CkError::UserNotLoggedIn));
        backend::sign_init(h, &m, key).unwrap();
        assert_eq!(backend::sign(h, b"more"), Err(CkError::UserNotLoggedIn));
    }
    assert_eq!(f.verifies_sent(), 1, "nothing sent for a refused signature");
    // Still logged in: a per-signature login signs.
    backend::sign_init(s, &m, key).unwrap();
    backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"JPKITEST1")).unwrap();
    verify(b"more", &backend::sign(s, b"more").unwrap());

    // A new login, a new consent; a signing operation started and abandoned spends it.
    backend::logout(s).unwrap();
    backend::login(s, CKU_USER, Some(b"JPKITEST1")).unwrap();
    backend::sign_init(s, &m, key).unwrap();
    backend::sign_abort(s).unwrap();
    backend::sign_init(s, &m, key).unwrap();
    assert_eq!(backend::sign(s, b"x"), Err(CkError::UserNotLoggedIn));

    // A program that makes the per-signature login (NSS, pkcs11-tool) spends it too: its next
    // signature without one is refused.
    backend::logout(s).unwrap();
    backend::login(s, CKU_USER, Some(b"JPKITEST1")).unwrap();
    backend::sign_init(s, &m, key).unwrap();
    backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"JPKITEST1")).unwrap();
    verify(b"y", &backend::sign(s, b"y").unwrap());
    backend::sign_init(s, &m, key).unwrap();
    assert_eq!(backend::sign(s, b"y"), Err(CkError::UserNotLoggedIn));

    // A logout takes back a consent not yet used.
    backend::logout(s).unwrap();
    backend::login(s, CKU_USER, Some(b"JPKITEST1")).unwrap();
    backend::logout(s).unwrap();
    assert_eq!(
        backend::sign_init(s, &m, key),
        Err(CkError::UserNotLoggedIn)
    );
    assert_eq!(f.card.lock().tries_left(), (3, 5), "no try lost");
}

#[test]
fn the_per_signature_password_of_the_logged_in_user_costs_no_extra_apdus() {
    let f = Fixture::new();
    let s = f.session(SIGN_SLOT);
    // (As applications do first; it also shows the module the card takes short EF identifiers.)
    backend::get_token_info(SIGN_SLOT).unwrap();
    backend::login(s, CKU_USER, Some(b"JPKITEST1")).unwrap();
    let key = private_key(s);
    backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    // The same password (case folded): checked against the held one, nothing sent yet.
    let login = apdus(&f, || {
        backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"jpkitest1")).unwrap()
    });
    assert!(login.is_empty(), "{login:?}");
    // It reaches the card inside the signing transaction: select, verify, sign, drop.
    let sign = apdus(&f, || {
        let sig = backend::sign(s, b"x").unwrap();
        let pubkey = public_key(f.card.lock().sign_cert());
        assert!(pubkey
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"x"), &sig)
            .is_ok());
    });
    assert_eq!(sign.len(), 4, "{sign:?}");
    assert_eq!(
        sign.iter()
            .filter(|l| l.starts_with("0020") && l.contains('*'))
            .count(),
        1
    );
    // Without the per-signature login there is still no signature.
    backend::sign_init(s, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    assert_eq!(backend::sign(s, b"x"), Err(CkError::UserNotLoggedIn));
}
