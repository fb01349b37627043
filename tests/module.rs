//! The built module (`libjpki_pkcs11.so`) loaded through the `cryptoki` crate, as an
//! application loads it, against the virtual My Number Card behind the real pcscd. Every
//! signature is verified with the certificate's public key by the `rsa` crate.

mod common;

use common::VCard;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkErr, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rsa::{Pkcs1v15Sign, Pss};
use sha2::{Digest, Sha256};

fn load() -> Pkcs11 {
    let p = Pkcs11::new(common::module_path()).expect("load the module");
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    p
}

fn pin(s: &str) -> AuthPin {
    AuthPin::from(s)
}

fn classes(s: &Session) -> Vec<ObjectClass> {
    let mut out: Vec<ObjectClass> = s
        .find_objects(&[])
        .unwrap()
        .into_iter()
        .map(|o| {
            match s
                .get_attributes(o, &[AttributeType::Class])
                .unwrap()
                .remove(0)
            {
                Attribute::Class(c) => c,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    out.sort_by_key(|c| CkULong::from(*c));
    out
}

type CkULong = cryptoki_sys::CK_ULONG;

fn private_key(s: &Session) -> ObjectHandle {
    let keys = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    assert_eq!(keys.len(), 1);
    keys[0]
}

fn pss_params() -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    }
}

fn rv(e: CkErr) -> RvError {
    match e {
        CkErr::Pkcs11(rv, _) => rv,
        other => panic!("expected a CKR, got {other:?}"),
    }
}

/// As another process would do it, through its own PC/SC connection: SELECT JPKI, SELECT the
/// key EF, COMPUTE DIGITAL SIGNATURE. Returns the status word.
fn other_process_sign_sw(reader: &str, key_ef: u8) -> u16 {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = std::ffi::CString::new(reader).unwrap();
    let card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    let mut buf = [0u8; 300];
    let send = |apdu: &[u8], buf: &mut [u8; 300]| -> Vec<u8> {
        card.transmit(apdu, buf).unwrap().to_vec()
    };
    assert_eq!(
        send(
            &[0, 0xA4, 4, 0x0C, 10, 0xD3, 0x92, 0xF0, 0, 0x26, 1, 0, 0, 0, 1],
            &mut buf
        ),
        [0x90, 0]
    );
    assert_eq!(send(&[0, 0xA4, 2, 0x0C, 2, 0, key_ef], &mut buf), [0x90, 0]);
    let mut apdu = vec![0x80, 0x2A, 0, 0x80, 51];
    apdu.extend_from_slice(&common::digest_info(b"x"));
    apdu.push(0);
    let r = send(&apdu, &mut buf);
    let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
    card.disconnect(pcsc::Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .unwrap();
    sw
}

fn verifies_sent(card: &VCard) -> usize {
    card.log()
        .iter()
        .filter(|l| l.starts_with("0020") && l.contains('*'))
        .count()
}

#[test]
fn lists_both_tokens_and_their_objects() {
    let _g = common::lock();
    let card = VCard::start();
    let p = load();
    let (auth, sign) = common::token_slots(&p, &card.reader);
    let ai = p.get_token_info(auth).unwrap();
    let si = p.get_token_info(sign).unwrap();
    assert_eq!(ai.serial_number(), si.serial_number());
    assert!(!ai.serial_number().is_empty());
    assert!(p.get_slot_info(auth).unwrap().removable_device());
    let a = p.open_ro_session(auth).unwrap();
    let s = p.open_rw_session(sign).unwrap();
    use ObjectClass as C;
    assert_eq!(
        classes(&a),
        vec![C::CERTIFICATE, C::CERTIFICATE, C::PUBLIC_KEY, C::PROFILE]
    );
    assert_eq!(classes(&s), vec![C::CERTIFICATE, C::PROFILE]);
    // The certificate on the signature token before login is the CA's.
    let c = s.find_objects(&[Attribute::Class(C::CERTIFICATE)]).unwrap();
    let v = s.get_attributes(c[0], &[AttributeType::Value]).unwrap();
    assert_eq!(v[0], Attribute::Value(card.cert("sign-ca")));
    assert!(
        card.log().iter().all(|l| !l.starts_with("00A4020C020001")),
        "the signature certificate EF was never selected without the password"
    );
    a.login(UserType::User, Some(&pin("1234"))).unwrap();
    assert_eq!(
        classes(&a),
        vec![
            C::CERTIFICATE,
            C::CERTIFICATE,
            C::PUBLIC_KEY,
            C::PRIVATE_KEY,
            C::PROFILE
        ]
    );
    s.login(UserType::User, Some(&pin("jpkitest1"))).unwrap();
    assert_eq!(
        classes(&s),
        vec![
            C::CERTIFICATE,
            C::CERTIFICATE,
            C::PUBLIC_KEY,
            C::PRIVATE_KEY,
            C::PROFILE
        ]
    );
    let certs = s
        .find_objects(&[Attribute::Class(C::CERTIFICATE), Attribute::Id(vec![2])])
        .unwrap();
    let v = s
        .get_attributes(certs[0], &[AttributeType::Value, AttributeType::Label])
        .unwrap();
    assert_eq!(v[0], Attribute::Value(card.cert("sign")));
    let k = private_key(&s);
    let attrs = s
        .get_attributes(
            k,
            &[
                AttributeType::AlwaysAuthenticate,
                AttributeType::Extractable,
                AttributeType::Label,
            ],
        )
        .unwrap();
    assert_eq!(attrs[0], Attribute::AlwaysAuthenticate(true));
    assert_eq!(attrs[1], Attribute::Extractable(false));
    assert_eq!(
        attrs[2], v[1],
        "certificate and private key share the label"
    );
    s.logout().unwrap();
    assert_eq!(classes(&s), vec![C::CERTIFICATE, C::PROFILE]);
}

#[test]
fn both_keys_sign_with_every_mechanism() {
    let _g = common::lock();
    let card = VCard::start();
    let p = load();
    let (auth, sign) = common::token_slots(&p, &card.reader);
    let msg = b"the quick brown fox";
    for (slot, secret, cert) in [(auth, "1234", "auth"), (sign, "JPKITEST1", "sign")] {
        let pubkey = common::rsa_public_key(&card.cert(cert));
        let s = p.open_rw_session(slot).unwrap();
        s.login(UserType::User, Some(&pin(secret))).unwrap();
        let key = private_key(&s);
        let params = pss_params();
        let cases: Vec<(Mechanism, Vec<u8>)> = vec![
            (Mechanism::RsaPkcs, common::digest_info(msg)),
            (Mechanism::Sha1RsaPkcs, msg.to_vec()),
            (Mechanism::Sha224RsaPkcs, msg.to_vec()),
            (Mechanism::Sha256RsaPkcs, msg.to_vec()),
            (Mechanism::Sha384RsaPkcs, msg.to_vec()),
            (Mechanism::Sha512RsaPkcs, msg.to_vec()),
            (Mechanism::RsaPkcsPss(params), Sha256::digest(msg).to_vec()),
            (Mechanism::Sha256RsaPkcsPss(params), msg.to_vec()),
        ];
        for (m, data) in cases {
            let sig = if cert == "sign" {
                // Always-authenticate: C_SignInit, C_Login(CKU_CONTEXT_SPECIFIC), then sign.
                s.sign_init(&m, key).unwrap();
                s.login(UserType::ContextSpecific, Some(&pin(secret)))
                    .unwrap();
                s.sign_update(&data).unwrap();
                s.sign_final().unwrap()
            } else {
                s.sign(&m, key, &data).unwrap()
            };
            let ok = match m {
                Mechanism::RsaPkcs => pubkey.verify(Pkcs1v15Sign::new_unprefixed(), &data, &sig),
                Mechanism::Sha1RsaPkcs => pubkey.verify(
                    Pkcs1v15Sign::new::<sha1::Sha1>(),
                    &sha1::Sha1::digest(msg),
                    &sig,
                ),
                Mechanism::Sha224RsaPkcs => pubkey.verify(
                    Pkcs1v15Sign::new::<sha2::Sha224>(),
                    &sha2::Sha224::digest(msg),
                    &sig,
                ),
                Mechanism::Sha256RsaPkcs => {
                    pubkey.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), &sig)
                }
                Mechanism::Sha384RsaPkcs => pubkey.verify(
                    Pkcs1v15Sign::new::<sha2::Sha384>(),
                    &sha2::Sha384::digest(msg),
                    &sig,
                ),
                Mechanism::Sha512RsaPkcs => pubkey.verify(
                    Pkcs1v15Sign::new::<sha2::Sha512>(),
                    &sha2::Sha512::digest(msg),
                    &sig,
                ),
                _ => pubkey.verify(Pss::new_with_salt::<Sha256>(32), &Sha256::digest(msg), &sig),
            };
            assert!(
                ok.is_ok(),
                "{cert} key, {m:?}: signature verifies with the certificate"
            );
        }
        // The host-side C_Verify agrees, and rejects a wrong message.
        let pubs = s
            .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])
            .unwrap();
        let m = Mechanism::Sha256RsaPkcsPss(params);
        let sig = if cert == "sign" {
            s.sign_init(&m, key).unwrap();
            s.login(UserType::ContextSpecific, Some(&pin(secret)))
                .unwrap();
            s.sign_update(msg).unwrap();
            s.sign_final().unwrap()
        } else {
            s.sign(&m, key, msg).unwrap()
        };
        s.verify(&m, pubs[0], msg, &sig).unwrap();
        assert_eq!(
            rv(s.verify(&m, pubs[0], b"other", &sig).unwrap_err()),
            RvError::SignatureInvalid
        );
    }
}

#[test]
fn pins_are_checked_before_the_card_sees_them_and_blocking_is_reported() {
    let _g = common::lock();
    let card = VCard::start();
    let p = load();
    let (auth, sign) = common::token_slots(&p, &card.reader);
    let a = p.open_ro_session(auth).unwrap();
    let s = p.open_ro_session(sign).unwrap();
    card.clear_log();
    for bad in ["123", "12345", ""] {
        assert_eq!(
            rv(a.login(UserType::User, Some(&pin(bad))).unwrap_err()),
            RvError::PinIncorrect,
            "{bad:?}"
        );
    }
    assert_eq!(
        rv(a.login(UserType::User, Some(&pin("12a4"))).unwrap_err()),
        RvError::PinIncorrect
    );
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin("ABC12"))).unwrap_err()),
        RvError::PinIncorrect
    );
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin("ABCDEFGHIJKLMNOPQ")))
            .unwrap_err()),
        RvError::PinIncorrect
    );
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin("ABC_123"))).unwrap_err()),
        RvError::PinIncorrect
    );
    assert_eq!(
        verifies_sent(&card),
        0,
        "no VERIFY with data for a malformed PIN: {:?}",
        card.log()
    );
    assert_eq!(card.tries_left(), (3, 5));

    assert_eq!(
        rv(a.login(UserType::User, Some(&pin("0000"))).unwrap_err()),
        RvError::PinIncorrect
    );
    assert_eq!(verifies_sent(&card), 1);
    let info = p.get_token_info(auth).unwrap();
    assert!(info.user_pin_count_low() && !info.user_pin_final_try());
    // The PIN the card just refused is not sent again (an application loop would burn tries).
    assert_eq!(
        rv(a.login(UserType::User, Some(&pin("0000"))).unwrap_err()),
        RvError::PinIncorrect
    );
    assert_eq!(
        verifies_sent(&card),
        1,
        "the same wrong PIN is not sent twice"
    );
    assert_eq!(card.tries_left().0, 2);
    assert_eq!(
        rv(a.login(UserType::User, Some(&pin("0001"))).unwrap_err()),
        RvError::PinIncorrect
    );
    assert!(p.get_token_info(auth).unwrap().user_pin_final_try());
    assert_eq!(
        rv(a.login(UserType::User, Some(&pin("0002"))).unwrap_err()),
        RvError::PinIncorrect
    );
    assert!(p.get_token_info(auth).unwrap().user_pin_locked());
    assert_eq!(card.tries_left().0, 0);
    let sent = verifies_sent(&card);
    assert_eq!(
        rv(a.login(UserType::User, Some(&pin("1234"))).unwrap_err()),
        RvError::PinLocked
    );
    assert_eq!(verifies_sent(&card), sent, "nothing sent to a blocked PIN");
    // The signature password was never touched.
    assert_eq!(card.tries_left().1, 5);
    assert!(!p.get_token_info(sign).unwrap().user_pin_count_low());

    // A module loaded afresh learns the blocked state from the card (the empty VERIFY).
    drop((a, s));
    p.finalize().unwrap();
    let p = load();
    let (auth, _) = common::token_slots(&p, &card.reader);
    assert!(p.get_token_info(auth).unwrap().user_pin_locked());
    let a = p.open_ro_session(auth).unwrap();
    assert_eq!(
        rv(a.login(UserType::User, Some(&pin("1234"))).unwrap_err()),
        RvError::PinLocked
    );
}

#[test]
fn the_card_is_left_locked_for_other_processes() {
    let _g = common::lock();
    let card = VCard::start();
    let p = load();
    let (auth, sign) = common::token_slots(&p, &card.reader);
    let a = p.open_rw_session(auth).unwrap();
    a.login(UserType::User, Some(&pin("1234"))).unwrap();
    assert_eq!(
        other_process_sign_sw(&card.reader, 0x17),
        0x6982,
        "after login"
    );
    let key = private_key(&a);
    a.sign(&Mechanism::Sha256RsaPkcs, key, b"data").unwrap();
    assert_eq!(
        other_process_sign_sw(&card.reader, 0x17),
        0x6982,
        "after a signature"
    );
    let s = p.open_rw_session(sign).unwrap();
    s.login(UserType::User, Some(&pin("JPKITEST1"))).unwrap();
    assert_eq!(
        other_process_sign_sw(&card.reader, 0x1A),
        0x6982,
        "after the signature login"
    );
    let skey = private_key(&s);
    s.sign_init(&Mechanism::Sha256RsaPkcs, skey).unwrap();
    s.login(UserType::ContextSpecific, Some(&pin("JPKITEST1")))
        .unwrap();
    assert_eq!(
        other_process_sign_sw(&card.reader, 0x1A),
        0x6982,
        "after the context-specific login"
    );
    s.sign_update(b"data").unwrap();
    s.sign_final().unwrap();
    assert_eq!(
        other_process_sign_sw(&card.reader, 0x1A),
        0x6982,
        "after a signature"
    );
    // A signature that fails on the card side still leaves it locked.
    assert!(a.sign(&Mechanism::RsaPkcs, key, &[1; 246]).is_err());
    assert_eq!(
        other_process_sign_sw(&card.reader, 0x17),
        0x6982,
        "after a failed signature"
    );
    a.logout().unwrap();
    assert_eq!(
        other_process_sign_sw(&card.reader, 0x17),
        0x6982,
        "after logout"
    );
    // Our own sessions still work after the other process's attempts.
    a.login(UserType::User, Some(&pin("1234"))).unwrap();
    let sig = a.sign(&Mechanism::Sha256RsaPkcs, key, b"data").unwrap();
    let pubkey = common::rsa_public_key(&card.cert("auth"));
    assert!(pubkey
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(b"data"),
            &sig
        )
        .is_ok());
}

#[test]
fn random_and_write_protection() {
    let _g = common::lock();
    let card = VCard::start();
    let p = load();
    let (auth, _) = common::token_slots(&p, &card.reader);
    let a = p.open_rw_session(auth).unwrap();
    card.clear_log();
    let r = a.generate_random_vec(16).unwrap();
    assert_eq!(r.len(), 16);
    assert_eq!(
        card.log()
            .iter()
            .filter(|l| l.starts_with("00840000"))
            .count(),
        2
    );
    let err = a
        .create_object(&[Attribute::Class(ObjectClass::DATA), Attribute::Token(true)])
        .unwrap_err();
    assert_eq!(rv(err), RvError::TokenWriteProtected);
}
