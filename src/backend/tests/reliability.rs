//! Reliability tests: the module against a misbehaving virtual card (fault modes of
//! [`jpki_vcard::Fault`]), in this process through [`InProcSystem`].
//!
//! Every fault is injected into one operation (`Op`) at a time, on a fresh module and card, and
//! then, whatever the operation returned:
//! - the result is `Ok` (and a signature verifies with the certificate, a certificate is the
//!   card's own) or one of the documented `CKR_*` ([`ALLOWED`]);
//! - at most one VERIFY carrying a PIN was sent by the operation (no PIN is ever resent);
//! - with the fault gone, the token flags show the card's true tries left;
//! - the card is not left unlocked (another process's SELECT + SIGN gets `6982`);
//! - the module recovers without re-initializing: login, both keys sign, signatures verify.
//!
//! `cargo test --lib reliability -- --nocapture` prints the outcome counts per fault class
//! (the figures in `docs/reliability.md`).

use crate::backend::tests::support::*;
use crate::backend::{self, AttrValue, RawMechanism};
use crate::error::{CkError, CkResult};
use cryptoki_sys::*;
use jpki_vcard::{CertDamage, CertFile, Fault, VirtualCard};
use parking_lot::Mutex;
use rsa::{Pkcs1v15Sign, Pss, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const AUTH_SLOT: CK_SLOT_ID = 0;
const SIGN_SLOT: CK_SLOT_ID = 1;
const AUTH_PIN: &[u8] = b"1234";
const SIGN_PIN: &[u8] = b"JPKITEST1";
const MSG: &[u8] = b"reliability test message";

/// Return codes a fault may produce (anything else fails the test).
const ALLOWED: [CkError; 10] = [
    CkError::TokenNotRecognized,
    CkError::DeviceError,
    CkError::DeviceRemoved,
    CkError::FunctionFailed,
    CkError::SessionHandleInvalid,
    CkError::TokenNotPresent,
    CkError::UserNotLoggedIn,
    CkError::PinIncorrect,
    CkError::PinLocked,
    CkError::MechanismInvalid,
];

fn find(h: CK_SESSION_HANDLE, template: backend::Template) -> CkResult<Vec<CK_OBJECT_HANDLE>> {
    backend::find_objects_init(h, template)?;
    let found = backend::find_objects(h, 100)?;
    backend::find_objects_final(h)?;
    Ok(found)
}

pub(crate) fn private_key(h: CK_SESSION_HANDLE) -> CK_OBJECT_HANDLE {
    let found = find(h, vec![(CKA_CLASS, CKO_PRIVATE_KEY.to_ne_bytes().to_vec())]).unwrap();
    assert_eq!(found.len(), 1, "one private key");
    found[0]
}

fn certificates(h: CK_SESSION_HANDLE) -> Vec<CK_OBJECT_HANDLE> {
    find(h, vec![(CKA_CLASS, CKO_CERTIFICATE.to_ne_bytes().to_vec())]).unwrap()
}

fn tries_flags(slot: CK_SLOT_ID) -> CkResult<CK_FLAGS> {
    Ok(backend::get_token_info(slot)?.flags
        & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED))
}

/// The flags PKCS#11 wants for `left` of `max` tries.
fn expected_flags(left: u8, max: u8) -> CK_FLAGS {
    match left {
        0 => CKF_USER_PIN_LOCKED,
        1 => CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY,
        n if n < max => CKF_USER_PIN_COUNT_LOW,
        _ => 0,
    }
}

pub(crate) fn verifies(pubkey: &RsaPublicKey, m: &RawMechanism, msg: &[u8], sig: &[u8]) -> bool {
    let hash = Sha256::digest(msg);
    match m.mechanism {
        CKM_SHA256_RSA_PKCS => pubkey
            .verify(Pkcs1v15Sign::new::<Sha256>(), &hash, sig)
            .is_ok(),
        CKM_SHA256_RSA_PKCS_PSS => pubkey
            .verify(Pss::new_with_salt::<Sha256>(32), &hash, sig)
            .is_ok(),
        other => panic!("mechanism {other:#x} not used here"),
    }
}

/// One module operation a fault is injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// First look at the card: slot list with tokens, token info (binds the card).
    Bind,
    /// `C_GetTokenInfo` of the signature token (empty VERIFY for the tries).
    TokenInfo,
    LoginAuth,
    /// Login on the signature token (also reads the signature certificate).
    LoginSign,
    /// `C_Login(CKU_CONTEXT_SPECIFIC)` after `C_SignInit` with the signature key, then `C_Sign`:
    /// the per-signature password reaches the card inside the signing transaction.
    ContextLogin,
    SignAuth,
    SignAuthPss,
    /// `C_Sign` with the signature key (context login done).
    SignSign,
    /// `C_GetAttributeValue(CKA_VALUE)` of the authentication token's two certificates.
    ReadCerts,
    Random,
}

const OPS: [Op; 10] = [
    Op::Bind,
    Op::TokenInfo,
    Op::LoginAuth,
    Op::LoginSign,
    Op::ContextLogin,
    Op::SignAuth,
    Op::SignAuthPss,
    Op::SignSign,
    Op::ReadCerts,
    Op::Random,
];

impl Op {
    fn slot(self) -> CK_SLOT_ID {
        match self {
            Op::LoginSign | Op::ContextLogin | Op::SignSign | Op::TokenInfo => SIGN_SLOT,
            _ => AUTH_SLOT,
        }
    }
}

/// A session prepared for an operation (everything before the fault).
struct Prepared {
    h: CK_SESSION_HANDLE,
    mech: RawMechanism,
}

fn prepare(f: &Fixture, op: Op) -> Prepared {
    let mut p = Prepared {
        h: 0,
        mech: mech(CKM_SHA256_RSA_PKCS),
    };
    if op == Op::Bind {
        return p;
    }
    p.h = f.session(op.slot());
    match op {
        Op::SignAuth | Op::SignAuthPss => {
            backend::login(p.h, CKU_USER, Some(AUTH_PIN)).unwrap();
            if op == Op::SignAuthPss {
                p.mech = pss(CKM_SHA256_RSA_PKCS_PSS);
            }
            backend::sign_init(p.h, &p.mech, private_key(p.h)).unwrap();
        }
        Op::ContextLogin | Op::SignSign => {
            backend::login(p.h, CKU_USER, Some(SIGN_PIN)).unwrap();
            backend::sign_init(p.h, &p.mech, private_key(p.h)).unwrap();
            if op == Op::SignSign {
                backend::login(p.h, CKU_CONTEXT_SPECIFIC, Some(SIGN_PIN)).unwrap();
            }
        }
        _ => {}
    }
    p
}

/// What an operation produced, checked for correctness.
fn run(f: &Fixture, op: Op, p: &Prepared) -> CkResult<()> {
    match op {
        Op::Bind => {
            backend::get_slot_list(true)?;
            backend::get_token_info(AUTH_SLOT).map(|_| ())
        }
        Op::TokenInfo => backend::get_token_info(SIGN_SLOT).map(|_| ()),
        Op::LoginAuth => backend::login(p.h, CKU_USER, Some(AUTH_PIN)),
        Op::LoginSign => backend::login(p.h, CKU_USER, Some(SIGN_PIN)),
        Op::ContextLogin | Op::SignAuth | Op::SignAuthPss | Op::SignSign => {
            if op == Op::ContextLogin {
                backend::login(p.h, CKU_CONTEXT_SPECIFIC, Some(SIGN_PIN))?;
            }
            let sig = backend::sign(p.h, MSG)?;
            let cert = if matches!(op, Op::SignSign | Op::ContextLogin) {
                f.card.lock().sign_cert().to_vec()
            } else {
                f.card.lock().auth_cert().to_vec()
            };
            assert!(
                verifies(&public_key(&cert), &p.mech, MSG, &sig),
                "{op:?}: the module handed out a signature that does not verify"
            );
            Ok(())
        }
        Op::ReadCerts => {
            let truth = {
                let c = f.card.lock();
                [c.auth_cert().to_vec(), c.auth_ca_cert().to_vec()]
            };
            for o in certificates(p.h) {
                match &backend::get_attribute_value(p.h, o, &[CKA_VALUE])?[0] {
                    AttrValue::Value(v) => assert!(
                        truth.contains(v),
                        "{op:?}: a certificate value that is not the card's"
                    ),
                    other => panic!("{op:?}: CKA_VALUE {other:?}"),
                }
            }
            Ok(())
        }
        Op::Random => {
            let r = backend::generate_random(p.h, 20)?;
            assert_eq!(r.len(), 20);
            Ok(())
        }
    }
}

/// After the fault is gone: true flags, card locked, full recovery.
fn check_after(f: &Fixture, what: &str, not_jpki_at_bind: bool) {
    f.card.lock().clear_faults();
    f.reinsert_if_pulled();
    let slots = backend::get_slot_list(true).unwrap();
    if slots.is_empty() && not_jpki_at_bind {
        // The first SELECT of the JPKI application was refused as a card without it would
        // refuse it: the module takes the card for another kind of card until it is
        // reinserted (documented). Reinsert it, as the user would.
        let c = f.sys.remove(0).unwrap();
        f.sys.insert_shared(0, c);
    }
    let slots = backend::get_slot_list(true).unwrap();
    assert_eq!(slots, vec![0, 1], "{what}: the token is back");
    let (auth_left, sign_left) = f.card.lock().tries_left();
    assert_eq!(
        tries_flags(AUTH_SLOT).map_err(|e| e.name()),
        Ok(expected_flags(auth_left, 3)),
        "{what}: authentication PIN flags ({auth_left} tries left)"
    );
    assert_eq!(
        tries_flags(SIGN_SLOT).map_err(|e| e.name()),
        Ok(expected_flags(sign_left, 5)),
        "{what}: signature password flags ({sign_left} tries left)"
    );
    assert_eq!(
        f.other_process_sign_sw(0x17),
        0x6982,
        "{what}: authentication key left unlocked"
    );
    assert_eq!(
        f.other_process_sign_sw(0x1A),
        0x6982,
        "{what}: signature key left unlocked"
    );
    // Recovery, without C_Finalize.
    let a = f.session(AUTH_SLOT);
    match backend::login(a, CKU_USER, Some(AUTH_PIN)) {
        Ok(()) | Err(CkError::UserAlreadyLoggedIn) => {}
        Err(e) => panic!("{what}: login after the fault: {e}"),
    }
    let m = mech(CKM_SHA256_RSA_PKCS);
    backend::sign_init(a, &m, private_key(a))
        .unwrap_or_else(|e| panic!("{what}: sign init after the fault: {e}"));
    let sig = backend::sign(a, MSG).unwrap_or_else(|e| panic!("{what}: sign after the fault: {e}"));
    assert!(verifies(
        &public_key(f.card.lock().auth_cert()),
        &m,
        MSG,
        &sig
    ));
    let s = f.session(SIGN_SLOT);
    match backend::login(s, CKU_USER, Some(SIGN_PIN)) {
        Ok(()) | Err(CkError::UserAlreadyLoggedIn) => {}
        Err(e) => panic!("{what}: signature login after the fault: {e}"),
    }
    backend::sign_init(s, &m, private_key(s))
        .unwrap_or_else(|e| panic!("{what}: signature init after the fault: {e}"));
    backend::login(s, CKU_CONTEXT_SPECIFIC, Some(SIGN_PIN))
        .unwrap_or_else(|e| panic!("{what}: context login after the fault: {e}"));
    let sig =
        backend::sign(s, MSG).unwrap_or_else(|e| panic!("{what}: signature after the fault: {e}"));
    assert!(verifies(
        &public_key(f.card.lock().sign_cert()),
        &m,
        MSG,
        &sig
    ));
    for o in certificates(s) {
        let AttrValue::Value(v) = &backend::get_attribute_value(s, o, &[CKA_VALUE]).unwrap()[0]
        else {
            panic!("{what}: certificate value")
        };
        let c = f.card.lock();
        assert!(
            v == c.sign_cert() || v == c.sign_ca_cert(),
            "{what}: a cached certificate is not the card's"
        );
    }
    assert_eq!(
        f.other_process_sign_sw(0x1A),
        0x6982,
        "{what}: unlocked after recovery"
    );
}

/// Injects `faults` into `op` and checks everything. Returns the outcome's name.
fn inject(op: Op, faults: Vec<Fault>, must_succeed: bool) -> &'static str {
    let what = format!("{op:?} with {faults:?}");
    let f = Fixture::new();
    let p = prepare(&f, op);
    f.card.lock().set_faults(faults.clone());
    f.clear_log();
    let res = run(&f, op, &p);
    let sent = f.verifies_sent();
    let log = f.log();
    assert!(
        sent <= 1,
        "{what}: {sent} VERIFYs with a PIN in one call: {log:#?}"
    );
    if must_succeed {
        assert_eq!(res.map_err(|e| e.name()), Ok(()), "{what}: {log:#?}");
    }
    if let Err(e) = res {
        assert!(ALLOWED.contains(&e), "{what}: unexpected {e}: {log:#?}");
    }
    // SELECT JPKI possibly refused with a "no such application" status word while the module
    // binds the card (a fault at a later step fails the bind, the next call binds again and
    // may meet the next fault at its SELECT).
    let not_jpki_at_bind = op == Op::Bind
        && faults.iter().any(|x| match x {
            Fault::StatusAt { sw, .. } => matches!(sw, 0x6A82 | 0x6A86 | 0x6D00 | 0x6E00),
            Fault::StatusFor { ins: 0xA4, sw } => matches!(sw, 0x6A82 | 0x6A86 | 0x6D00 | 0x6E00),
            _ => false,
        });
    check_after(&f, &what, not_jpki_at_bind);
    match res {
        Ok(()) => "CKR_OK",
        Err(e) => e.name(),
    }
}

/// The command APDUs an operation sends on a healthy card.
fn healthy_commands(op: Op) -> Vec<Vec<u8>> {
    let f = Fixture::new();
    let p = prepare(&f, op);
    f.clear_log();
    run(&f, op, &p).unwrap_or_else(|e| panic!("{op:?} on a healthy card: {e}"));
    f.commands()
}

type Summary = BTreeMap<(String, &'static str), usize>;

fn note(summary: &mut Summary, class: &str, outcome: &'static str) {
    *summary.entry((class.to_string(), outcome)).or_default() += 1;
}

fn print(summary: &Summary, title: &str) {
    eprintln!("== {title}");
    for ((class, outcome), n) in summary {
        eprintln!("{class:32} {outcome:32} {n}");
    }
}

/// Error status words, each instead of every command of every operation (not processed by the
/// card), and two in a row (so that leaving the JPKI application fails and the module must
/// reset the card).
#[test]
fn reliability_wrong_status_word_at_every_step() {
    let mut summary = Summary::new();
    let sws = [
        0x6F00, 0x6982, 0x63C1, 0x63C0, 0x6984, 0x6A82, 0x6700, 0x6581,
    ];
    for op in OPS {
        let steps = healthy_commands(op).len();
        assert!(steps > 0, "{op:?} sends something");
        for n in 1..=steps {
            for sw in sws {
                let r = inject(op, vec![Fault::StatusAt { n, sw }], false);
                note(&mut summary, &format!("SW {sw:04X} at one step"), r);
            }
            let two = vec![
                Fault::StatusAt { n, sw: 0x6A82 },
                Fault::StatusAt {
                    n: n + 1,
                    sw: 0x6A82,
                },
            ];
            let r = inject(op, two, false);
            note(&mut summary, "SW 6A82 at two steps", r);
        }
    }
    print(&summary, "wrong status words");
}

/// Malformed answers to each command kind of each operation.
#[test]
fn reliability_malformed_answers() {
    let mut summary = Summary::new();
    for op in OPS {
        let mut inss: Vec<u8> = healthy_commands(op).iter().map(|c| c[1]).collect();
        inss.sort();
        inss.dedup();
        for ins in inss {
            for keep in [0, 1, 2, 3, 255] {
                let r = inject(op, vec![Fault::Truncate { ins, keep }], false);
                note(&mut summary, &format!("truncated to {keep} bytes"), r);
            }
            for extra in [1, 300] {
                let r = inject(op, vec![Fault::Oversize { ins, extra }], false);
                note(&mut summary, &format!("{extra} extra bytes"), r);
            }
            let r = inject(op, vec![Fault::StatusFor { ins, sw: 0x6F00 }], false);
            note(&mut summary, "6F00 to every command", r);
            let r = inject(op, vec![Fault::EndlessGetResponse { ins }], false);
            note(&mut summary, "endless 61xx", r);
        }
    }
    print(&summary, "malformed answers");
}

/// `61xx` and `6Cxx` are legal ISO 7816 answers: the module follows them and succeeds.
#[test]
fn reliability_get_response_and_wrong_le_are_followed() {
    let mut summary = Summary::new();
    for op in OPS {
        let mut inss: Vec<u8> = healthy_commands(op).iter().map(|c| c[1]).collect();
        inss.sort();
        inss.dedup();
        for ins in inss {
            for chunk in [16, 100, 255] {
                let r = inject(op, vec![Fault::GetResponse { ins, chunk }], true);
                note(&mut summary, &format!("61xx, chunks of {chunk}"), r);
            }
            let r = inject(op, vec![Fault::WrongLe { ins }], true);
            note(&mut summary, "6Cxx", r);
        }
    }
    print(&summary, "61xx / 6Cxx");
}

/// A card that sends its answer in 1-byte GET RESPONSE chunks needs more than the module's
/// 32 rounds for a 256-byte answer: refused as an endless chain (protection against a card that
/// never stops), with the documented error.
#[test]
fn reliability_get_response_round_limit() {
    let r = inject(
        Op::ReadCerts,
        vec![Fault::GetResponse {
            ins: 0xB0,
            chunk: 1,
        }],
        false,
    );
    assert_eq!(r, "CKR_DEVICE_ERROR");
    let r = inject(
        Op::SignAuth,
        vec![Fault::GetResponse {
            ins: 0x2A,
            chunk: 8,
        }],
        true,
    );
    assert_eq!(
        r, "CKR_OK",
        "32 rounds of 8 bytes are enough for a signature"
    );
}

/// A slow card: the module waits (it has no timeout of its own in-process; over PC/SC the
/// reader driver's timeout applies).
#[test]
fn reliability_slow_answers() {
    for op in [Op::LoginAuth, Op::SignAuth, Op::SignSign] {
        for ins in [0x20, 0x2A] {
            let delay = Duration::from_millis(200);
            inject(op, vec![Fault::Slow { ins, delay }], true);
        }
    }
}

/// Signatures that do not verify are never handed out, for every mechanism family.
#[test]
fn reliability_corrupt_signatures_are_refused() {
    for op in [Op::SignAuth, Op::SignAuthPss, Op::SignSign] {
        let r = inject(op, vec![Fault::CorruptSignature], false);
        assert_eq!(r, "CKR_FUNCTION_FAILED", "{op:?}");
    }
}

/// The card pulled out between VERIFY and its answer, in each operation that presents a PIN.
#[test]
fn reliability_removal_between_verify_and_its_answer() {
    for op in [
        Op::LoginAuth,
        Op::LoginSign,
        Op::ContextLogin,
        Op::SignAuth,
        Op::SignSign,
    ] {
        let f = Fixture::new();
        let p = prepare(&f, op);
        f.card.lock().set_fault(Fault::RemoveAfterVerify);
        f.clear_log();
        let res = run(&f, op, &p);
        assert_eq!(f.verifies_sent(), 1, "{op:?}: {:#?}", f.log());
        assert!(
            matches!(
                res,
                Err(CkError::DeviceRemoved | CkError::SessionHandleInvalid)
            ),
            "{op:?}: {res:?}"
        );
        assert!(!f.sys.has_card(0));
        assert_eq!(
            backend::get_slot_list(true).unwrap(),
            Vec::<CK_SLOT_ID>::new()
        );
        assert_eq!(
            backend::get_session_info(p.h).err(),
            Some(CkError::SessionHandleInvalid),
            "{op:?}: the session died with the card"
        );
        // The same card comes back: nothing inherited, everything works.
        f.sys.insert_shared(0, f.card.clone());
        let h = f.session(op.slot());
        assert_eq!(
            { backend::get_session_info(h).unwrap().state },
            CKS_RW_PUBLIC_SESSION,
            "{op:?}: login not inherited by the reinserted card"
        );
        check_after(&f, &format!("{op:?} removal after VERIFY"), false);
    }
}

/// Damaged certificate files: the read fails cleanly, nothing wrong is cached, and the module
/// reads the good certificate once the card is healthy again.
#[test]
fn reliability_damaged_certificates() {
    let mut summary = Summary::new();
    let damages = [
        CertDamage::BogusDer,
        CertDamage::LongLengthForm,
        CertDamage::Length(0),
        CertDamage::Length(100),
        CertDamage::Length(1500),
        CertDamage::Length(8000),
        CertDamage::Length(0xFFFF),
    ];
    let cases = [
        (Op::Bind, CertFile::Auth),
        (Op::ReadCerts, CertFile::Auth),
        (Op::ReadCerts, CertFile::AuthCa),
        (Op::LoginSign, CertFile::Sign),
        (Op::ContextLogin, CertFile::Sign),
    ];
    for (op, file) in cases {
        for damage in damages {
            let r = inject(op, vec![Fault::Cert { file, damage }], false);
            note(&mut summary, &format!("{file:?} {damage:?}"), r);
        }
    }
    // The signature CA certificate, read on the signature token before login.
    for damage in damages {
        let f = Fixture::new();
        let s = f.session(SIGN_SLOT);
        f.card.lock().set_fault(Fault::Cert {
            file: CertFile::SignCa,
            damage,
        });
        let certs = certificates(s);
        let r = backend::get_attribute_value(s, certs[0], &[CKA_VALUE]);
        assert!(
            r.is_err()
                || r == Ok(vec![AttrValue::Value(
                    f.card.lock().sign_ca_cert().to_vec()
                )]),
            "{damage:?}: {r:?}"
        );
        note(
            &mut summary,
            &format!("SignCa {damage:?}"),
            r.err().map_or("CKR_OK", |e| e.name()),
        );
        check_after(&f, &format!("sign CA {damage:?}"), false);
    }
    print(&summary, "damaged certificates");
}

/// A different card never inherits the previous card's login or cached certificates.
#[test]
fn reliability_a_different_card_inherits_nothing() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    let s = f.session(SIGN_SLOT);
    backend::login(a, CKU_USER, Some(AUTH_PIN)).unwrap();
    backend::login(s, CKU_USER, Some(SIGN_PIN)).unwrap();
    let first_sign_cert = f.card.lock().sign_cert().to_vec();
    f.sys.remove(0).unwrap();
    let other = f.sys.insert(0, VirtualCard::in_memory_other());
    assert_eq!(
        backend::get_session_info(a).err(),
        Some(CkError::SessionHandleInvalid)
    );
    assert_eq!(
        backend::get_session_info(s).err(),
        Some(CkError::SessionHandleInvalid)
    );
    let a2 = f.session(AUTH_SLOT);
    let s2 = f.session(SIGN_SLOT);
    assert_eq!(
        { backend::get_session_info(a2).unwrap().state },
        CKS_RW_PUBLIC_SESSION
    );
    assert_eq!(
        { backend::get_session_info(s2).unwrap().state },
        CKS_RW_PUBLIC_SESSION
    );
    // No private key and no signature certificate without login.
    let classes: Vec<_> = find(s2, vec![]).unwrap();
    assert_eq!(classes.len(), 2, "CA certificate and profile only");
    for o in certificates(a2) {
        let AttrValue::Value(v) = &backend::get_attribute_value(a2, o, &[CKA_VALUE]).unwrap()[0]
        else {
            panic!("value")
        };
        let c = other.lock();
        assert!(
            v == c.auth_cert() || v == c.auth_ca_cert(),
            "the new card's certificates"
        );
    }
    backend::login(s2, CKU_USER, Some(SIGN_PIN)).unwrap();
    for o in certificates(s2) {
        let AttrValue::Value(v) = &backend::get_attribute_value(s2, o, &[CKA_VALUE]).unwrap()[0]
        else {
            panic!("value")
        };
        assert_ne!(v, &first_sign_cert, "the old card's signature certificate");
    }
    let m = mech(CKM_SHA256_RSA_PKCS);
    backend::sign_init(s2, &m, private_key(s2)).unwrap();
    backend::login(s2, CKU_CONTEXT_SPECIFIC, Some(SIGN_PIN)).unwrap();
    let sig = backend::sign(s2, MSG).unwrap();
    assert!(verifies(
        &public_key(other.lock().sign_cert()),
        &m,
        MSG,
        &sig
    ));
}

/// The reader unplugged and plugged again; all readers gone (pcscd restarted).
#[test]
fn reliability_reader_gone_and_back() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    backend::login(a, CKU_USER, Some(AUTH_PIN)).unwrap();
    let key = private_key(a);
    backend::sign_init(a, &mech(CKM_SHA256_RSA_PKCS), key).unwrap();
    f.sys.unplug(0);
    assert_eq!(backend::sign(a, MSG), Err(CkError::SessionHandleInvalid));
    assert_eq!(
        backend::get_slot_list(false).unwrap(),
        vec![0, 1],
        "slots stay"
    );
    assert_eq!(
        backend::get_slot_list(true).unwrap(),
        Vec::<CK_SLOT_ID>::new()
    );
    assert_eq!(
        backend::open_session(AUTH_SLOT, CKF_SERIAL_SESSION),
        Err(CkError::TokenNotPresent)
    );
    assert_eq!(
        backend::get_token_info(SIGN_SLOT).map(|_| ()),
        Err(CkError::TokenNotPresent)
    );
    f.sys.add_reader("Test Reader 00");
    f.sys.insert_shared(0, f.card.clone());
    assert_eq!(backend::get_slot_list(true).unwrap(), vec![0, 1]);
    let before = f.verifies_sent();
    check_after(&f, "reader back", false);
    assert!(f.verifies_sent() > before);
}

/// Another process resets the card between calls and between login and signature: the module
/// presents the held PIN inside its own transaction, once, and signs.
#[test]
fn reliability_reset_by_another_process() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    backend::login(a, CKU_USER, Some(AUTH_PIN)).unwrap();
    let m = mech(CKM_SHA256_RSA_PKCS);
    let key = private_key(a);
    for _ in 0..3 {
        f.sys.reset(0);
        backend::sign_init(a, &m, key).unwrap();
        f.sys.reset(0);
        f.clear_log();
        let sig = backend::sign(a, MSG).unwrap();
        assert!(verifies(
            &public_key(f.card.lock().auth_cert()),
            &m,
            MSG,
            &sig
        ));
        assert_eq!(f.verifies_sent(), 1, "{:#?}", f.log());
    }
    assert_eq!(f.other_process_sign_sw(0x17), 0x6982);
    assert_eq!(tries_flags(AUTH_SLOT), Ok(0));
}

/// A wrong PIN and a fault together: the counter the flags show is the card's, and the module
/// does not try the PIN again by itself.
#[test]
fn reliability_wrong_pin_then_faults_keep_true_counters() {
    let f = Fixture::new();
    let a = f.session(AUTH_SLOT);
    f.clear_log();
    assert_eq!(
        backend::login(a, CKU_USER, Some(b"0000")),
        Err(CkError::PinIncorrect)
    );
    assert_eq!(f.verifies_sent(), 1);
    f.card.lock().set_fault(Fault::RemoveAfterVerify);
    assert!(backend::login(a, CKU_USER, Some(b"0001")).is_err());
    assert_eq!(f.verifies_sent(), 2, "one VERIFY per C_Login");
    assert_eq!(f.card.lock().tries_left().0, 1);
    f.sys.insert_shared(0, f.card.clone());
    backend::get_slot_list(true).unwrap();
    assert_eq!(
        tries_flags(AUTH_SLOT),
        Ok(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY),
        "the try burnt by the VERIFY whose answer was lost is shown"
    );
    let a = f.session(AUTH_SLOT);
    backend::login(a, CKU_USER, Some(AUTH_PIN)).unwrap();
    assert_eq!(tries_flags(AUTH_SLOT), Ok(0));
}

/// One process, 8 threads signing with both tokens over many sessions, plus threads opening
/// and closing sessions and logging in and out. Every signature verifies, nothing deadlocks
/// (watchdog), and the only errors are the documented consequences of another thread's logout
/// or closing the token's last session.
#[test]
fn reliability_concurrency_eight_signers_and_churn() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let f = Fixture::new();
    backend::get_slot_list(false).unwrap();
    let auth_pub = public_key(f.card.lock().auth_cert());
    let sign_pub = public_key(f.card.lock().sign_cert());
    let stop = Arc::new(AtomicBool::new(false));
    let signed = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(Mutex::new(BTreeMap::<&'static str, usize>::new()));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut threads = Vec::new();
    const ROUNDS: usize = 40;
    for t in 0..8 {
        let (auth_pub, sign_pub) = (auth_pub.clone(), sign_pub.clone());
        let (signed, refused, done_tx) = (signed.clone(), refused.clone(), done_tx.clone());
        threads.push(std::thread::spawn(move || {
            let note = |e: CkError| *refused.lock().entry(e.name()).or_default() += 1;
            for round in 0..ROUNDS {
                let slot = ((t + round) % 2) as CK_SLOT_ID;
                let (pin, pubkey) = if slot == AUTH_SLOT {
                    (AUTH_PIN, &auth_pub)
                } else {
                    (SIGN_PIN, &sign_pub)
                };
                let h = backend::open_session(slot, CKF_SERIAL_SESSION).unwrap();
                let m = if round % 3 == 0 {
                    pss(CKM_SHA256_RSA_PKCS_PSS)
                } else {
                    mech(CKM_SHA256_RSA_PKCS)
                };
                let msg = format!("thread {t} round {round}");
                let attempt = || -> CkResult<Vec<u8>> {
                    match backend::login(h, CKU_USER, Some(pin)) {
                        Ok(()) | Err(CkError::UserAlreadyLoggedIn) => {}
                        Err(e) => return Err(e),
                    }
                    let keys = find(h, vec![(CKA_CLASS, CKO_PRIVATE_KEY.to_ne_bytes().to_vec())])?;
                    let key = *keys.first().ok_or(CkError::UserNotLoggedIn)?;
                    backend::sign_init(h, &m, key)?;
                    if slot == SIGN_SLOT {
                        backend::login(h, CKU_CONTEXT_SPECIFIC, Some(pin))?;
                    }
                    backend::sign(h, msg.as_bytes())
                };
                match attempt() {
                    Ok(sig) => {
                        assert!(
                            verifies(pubkey, &m, msg.as_bytes(), &sig),
                            "thread {t} round {round}: signature does not verify"
                        );
                        signed.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e @ (CkError::UserNotLoggedIn | CkError::OperationNotInitialized)) => {
                        note(e)
                    }
                    Err(e) => panic!("thread {t} round {round}: undocumented {e}"),
                }
                let _ = backend::sign_abort(h);
                backend::close_session(h).unwrap();
            }
            done_tx.send(()).unwrap();
        }));
    }
    for t in 0..2 {
        let (stop, done_tx) = (stop.clone(), done_tx.clone());
        threads.push(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let slot = ((t + i) % 2) as CK_SLOT_ID;
                let pin = if slot == AUTH_SLOT {
                    AUTH_PIN
                } else {
                    SIGN_PIN
                };
                let h = backend::open_session(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION).unwrap();
                match backend::login(h, CKU_USER, Some(pin)) {
                    Ok(()) | Err(CkError::UserAlreadyLoggedIn) => {}
                    Err(e) => panic!("churn login: {e}"),
                }
                backend::get_session_info(h).unwrap();
                backend::get_token_info(slot).unwrap();
                if i % 3 == 0 {
                    match backend::logout(h) {
                        Ok(()) | Err(CkError::UserNotLoggedIn) => {}
                        Err(e) => panic!("churn logout: {e}"),
                    }
                }
                backend::close_session(h).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            done_tx.send(()).unwrap();
        }));
    }
    drop(done_tx);
    for _ in 0..8 {
        done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("a signing thread is stuck (deadlock?)");
    }
    stop.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a churn thread is stuck (deadlock?)");
    }
    for t in threads {
        t.join().expect("a thread panicked");
    }
    let n = signed.load(Ordering::SeqCst);
    eprintln!(
        "concurrency: {n} of {} signatures made and verified; refused: {:?}",
        8 * ROUNDS,
        refused.lock()
    );
    assert!(n >= 8 * ROUNDS / 4, "too few signatures succeeded: {n}");
    assert_eq!(f.card.lock().tries_left(), (3, 5), "no try burnt");
    assert_eq!(f.other_process_sign_sw(0x17), 0x6982);
    assert_eq!(f.other_process_sign_sw(0x1A), 0x6982);
}
