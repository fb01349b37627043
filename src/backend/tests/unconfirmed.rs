//! The real card's behaviours that no public source confirms (`jpki-card.md`, **\[uncertain\]**),
//! each as a mode of the virtual card ([`Fault`]), and the module's fail-safe answer to it, in
//! this process through [`jpki_card::inproc::InProcSystem`] (`tests/card_modes.rs` runs the
//! PC/SC side through the real pcscd):
//!
//! 1. short EF identifier forms answered with any status word: the module falls back to
//!    `SELECT` + `P2=80`, never presents a PIN in a form the card has not answered with a try
//!    counter, and never sends a PIN twice;
//! 2. a warm reset that keeps the security state, and `6F00` as the first answer after
//!    power-up: when the card cannot be locked by leaving the JPKI application, the module ends
//!    its transaction with the card unpowered, then confirms it is locked;
//! 3. an empty VERIFY answered `9000` (unlocked, tries unknown): the card is locked again and
//!    the tries shown as unknown.

use crate::backend::tests::reliability::{private_key, verifies};
use crate::backend::tests::support::*;
use crate::backend::{self, AttrValue};
use crate::error::CkError;
use cryptoki_sys::*;
use jpki_vcard::{Fault, VirtualCard};

const AUTH_SLOT: CK_SLOT_ID = 0;
const SIGN_SLOT: CK_SLOT_ID = 1;
const AUTH_PIN: &[u8] = b"1234";
const SIGN_PIN: &[u8] = b"JPKITEST1";
const SELECT_JPKI: [u8; 15] = [
    0, 0xA4, 4, 0x0C, 10, 0xD3, 0x92, 0xF0, 0, 0x26, 1, 0, 0, 0, 1,
];

/// Status words a card that does not know a short form may answer (the reference's list, and
/// two more the module must treat the same way).
const REFUSALS: [u16; 8] = [
    0x6A86, 0x6A82, 0x6981, 0x6986, 0x6700, 0x6A87, 0x6F00, 0x6D00,
];

fn card_with(faults: Vec<Fault>) -> VirtualCard {
    let mut c = VirtualCard::in_memory();
    c.set_faults(faults);
    c
}

fn tries_flags(slot: CK_SLOT_ID) -> CK_FLAGS {
    backend::get_token_info(slot).unwrap().flags
        & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED)
}

/// The log lines of what `f` sent.
fn during(fx: &Fixture, f: impl FnOnce()) -> Vec<String> {
    fx.clear_log();
    f();
    fx.log()
}

fn pin_verifies(log: &[String]) -> Vec<&String> {
    log.iter()
        .filter(|l| l.starts_with("0020") && l.contains('*'))
        .collect()
}

/// As another process would, through its own connection: SELECT JPKI (resent once after a
/// `6F00`, the first answer after power-up on some cards), SELECT the key EF, COMPUTE DIGITAL
/// SIGNATURE. The signature's status word.
fn other_process_sign_sw(fx: &Fixture, key_ef: u8) -> u16 {
    {
        let mut c = fx.card.lock();
        if c.transmit(&SELECT_JPKI) == [0x6F, 0x00] {
            c.transmit(&SELECT_JPKI);
        }
    }
    fx.other_process_sign_sw(key_ef)
}

fn assert_locked(fx: &Fixture, what: &str) {
    assert_eq!(
        other_process_sign_sw(fx, 0x17),
        0x6982,
        "{what}: authentication key left unlocked: {:#?}",
        fx.log()
    );
    assert_eq!(
        other_process_sign_sw(fx, 0x1A),
        0x6982,
        "{what}: signature key left unlocked: {:#?}",
        fx.log()
    );
}

/// Another process presents `pin` for the PIN EF `ef` and leaves the card unlocked.
fn other_process_unlocks(fx: &Fixture, ef: u8, pin: &[u8]) {
    let mut c = fx.card.lock();
    if c.transmit(&SELECT_JPKI) == [0x6F, 0x00] {
        c.transmit(&SELECT_JPKI);
    }
    assert_eq!(c.transmit(&[0, 0xA4, 2, 0x0C, 2, 0, ef]), [0x90, 0]);
    let mut v = vec![0, 0x20, 0, 0x80, pin.len() as u8];
    v.extend_from_slice(pin);
    assert_eq!(c.transmit(&v), [0x90, 0]);
}

/// Logs in on both tokens and signs with both keys (context login on the signature key); each
/// signature verified with the card's certificate.
fn full_use(fx: &Fixture, auth_pin: &[u8], what: &str) {
    let m = mech(CKM_SHA256_RSA_PKCS);
    let a = fx.session(AUTH_SLOT);
    match backend::login(a, CKU_USER, Some(auth_pin)) {
        Ok(()) | Err(CkError::UserAlreadyLoggedIn) => {}
        Err(e) => panic!("{what}: login: {e}: {:#?}", fx.log()),
    }
    backend::sign_init(a, &m, private_key(a)).unwrap();
    let sig = backend::sign(a, b"msg").unwrap_or_else(|e| panic!("{what}: sign: {e}"));
    assert!(verifies(
        &public_key(fx.card.lock().auth_cert()),
        &m,
        b"msg",
        &sig
    ));
    let s = fx.session(SIGN_SLOT);
    match backend::login(s, CKU_USER, Some(SIGN_PIN)) {
        Ok(()) | Err(CkError::UserAlreadyLoggedIn) => {}
        Err(e) => panic!("{what}: signature login: {e}: {:#?}", fx.log()),
    }
    backend::sign_init(s, &m, private_key(s)).unwrap();
    backend::login(s, CKU_CONTEXT_SPECIFIC, Some(SIGN_PIN)).unwrap();
    let sig = backend::sign(s, b"msg").unwrap_or_else(|e| panic!("{what}: signature: {e}"));
    assert!(verifies(
        &public_key(fx.card.lock().sign_cert()),
        &m,
        b"msg",
        &sig
    ));
}

// ---------------------------------------------------------------------------------------------
// 1. Short EF identifier forms

/// A card that answers every short form (READ BINARY `P1=80|SFI`, VERIFY and SIGN
/// `P2=80|SFI`) with one of the status words a card may use for "I do not know that": the
/// module falls back to `SELECT` + `P2=80` for good, and everything works with no extra VERIFY
/// carrying a PIN and no PIN in a short form.
#[test]
fn short_forms_refused_with_any_status_word_fall_back() {
    for sw in REFUSALS {
        let what = format!("short forms answered {sw:04X}");
        let fx = Fixture::with_card(card_with(vec![Fault::ShortForm { ins: None, sw }]));
        let mut all = during(&fx, || {
            assert_eq!(backend::get_slot_list(true).unwrap(), vec![0, 1], "{what}");
            assert_eq!(tries_flags(AUTH_SLOT), 0, "{what}");
            assert_eq!(tries_flags(SIGN_SLOT), 0, "{what}");
        });
        // Public certificates: the card's own.
        let a = fx.session(AUTH_SLOT);
        let certs = {
            backend::find_objects_init(
                a,
                vec![(CKA_CLASS, CKO_CERTIFICATE.to_ne_bytes().to_vec())],
            )
            .unwrap();
            let found = backend::find_objects(a, 10).unwrap();
            backend::find_objects_final(a).unwrap();
            found
        };
        assert_eq!(certs.len(), 2, "{what}");
        for o in certs {
            let v = backend::get_attribute_value(a, o, &[CKA_VALUE])
                .unwrap_or_else(|e| panic!("{what}: certificate value: {e}"));
            let AttrValue::Value(v) = &v[0] else {
                panic!("{what}: {v:?}")
            };
            let c = fx.card.lock();
            assert!(v == c.auth_cert() || v == c.auth_ca_cert(), "{what}");
        }
        let login = during(&fx, || {
            backend::login(a, CKU_USER, Some(AUTH_PIN))
                .unwrap_or_else(|e| panic!("{what}: login: {e}: {:#?}", fx.log()))
        });
        assert_eq!(pin_verifies(&login).len(), 1, "{what}: {login:#?}");
        let m = mech(CKM_SHA256_RSA_PKCS);
        let key = private_key(a);
        let mut calls = vec![];
        for i in 0..2 {
            backend::sign_init(a, &m, key).unwrap();
            calls.push(during(&fx, || {
                let sig = backend::sign(a, b"msg")
                    .unwrap_or_else(|e| panic!("{what}: signature {i}: {e}: {:#?}", fx.log()));
                assert!(verifies(
                    &public_key(fx.card.lock().auth_cert()),
                    &m,
                    b"msg",
                    &sig
                ));
            }));
        }
        let p = pss(CKM_SHA256_RSA_PKCS_PSS);
        backend::sign_init(a, &p, key).unwrap();
        let sig = backend::sign(a, b"msg").unwrap_or_else(|e| panic!("{what}: PSS: {e}"));
        assert!(verifies(
            &public_key(fx.card.lock().auth_cert()),
            &p,
            b"msg",
            &sig
        ));
        // The fallback is for good: the second signature sends no short form any more
        // (SELECT JPKI, SELECT EF, VERIFY, SELECT EF, SIGN, SELECT ISD).
        let sw_hex = format!(" {sw:04X}");
        assert!(
            !calls[1].iter().any(|l| l.ends_with(&sw_hex)),
            "{what}: {:#?}",
            calls[1]
        );
        assert_eq!(calls[1].len(), 6, "{what}: {:#?}", calls[1]);
        for c in &calls {
            assert_eq!(pin_verifies(c).len(), 1, "{what}: {c:#?}");
        }
        // The signature token: login (reads the signature certificate), context login, sign.
        all.extend(login);
        all.extend(calls.concat());
        all.extend(during(&fx, || full_use(&fx, AUTH_PIN, &what)));
        assert!(
            pin_verifies(&all).iter().all(|l| l.starts_with("00200080")),
            "{what}: a PIN was presented in a short form the card never confirmed: {all:#?}"
        );
        assert_eq!(fx.card.lock().tries_left(), (3, 5), "{what}: no try lost");
        assert_locked(&fx, &what);
    }
}

/// One kind of short form refused, the others taken (the reference: signing with `P2=97/9A`
/// is reported working on a real card, READ BINARY with an SFI is not): the module keeps the
/// short forms the card takes.
#[test]
fn a_short_form_refused_alone_keeps_the_others() {
    // READ BINARY refused: signatures keep P2=97 (4 APDUs: SELECT JPKI, VERIFY, SIGN, SELECT ISD).
    let fx = Fixture::with_card(card_with(vec![Fault::ShortForm {
        ins: Some(0xB0),
        sw: 0x6981,
    }]));
    // (The empty VERIFY in the short form, answered 63Cx, is what allows a PIN in that form.)
    backend::get_slot_list(true).unwrap();
    backend::get_token_info(AUTH_SLOT).unwrap();
    backend::get_token_info(SIGN_SLOT).unwrap();
    full_use(&fx, AUTH_PIN, "READ BINARY refused");
    let a = fx.session(AUTH_SLOT);
    let m = mech(CKM_SHA256_RSA_PKCS);
    backend::sign_init(a, &m, private_key(a)).unwrap();
    let log = during(&fx, || {
        backend::sign(a, b"again").unwrap();
    });
    assert_eq!(log.len(), 4, "{log:#?}");
    assert!(log[2].starts_with("802A0097"), "{log:#?}");
    assert_locked(&fx, "READ BINARY refused");
    drop(fx);
    // SIGN refused: certificates and PINs keep their short forms.
    let fx = Fixture::with_card(card_with(vec![Fault::ShortForm {
        ins: Some(0x2A),
        sw: 0x6A87,
    }]));
    backend::get_slot_list(true).unwrap();
    backend::get_token_info(AUTH_SLOT).unwrap();
    backend::get_token_info(SIGN_SLOT).unwrap();
    fx.clear_log();
    full_use(&fx, AUTH_PIN, "SIGN refused");
    let all = fx.log();
    assert!(
        !all.iter().any(|l| l.starts_with("00A4020C02000A")),
        "{all:#?}"
    );
    assert!(all
        .iter()
        .any(|l| l.starts_with("00200098") && l.contains('*')));
    assert_locked(&fx, "SIGN refused");
}

// ---------------------------------------------------------------------------------------------
// 2. Warm reset that keeps the security state; 6F00 after power-up

/// A call that presents a PIN (or finds the card unlocked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PinCall {
    LoginAuth,
    LoginSign,
    WrongPin,
    ContextLoginWrong,
    SignAuth,
    SignSign,
    SetPin,
    /// `C_GetTokenInfo` on a card another process left unlocked (empty VERIFY → `9000`).
    TokenInfoUnlocked,
}

const PIN_CALLS: [PinCall; 8] = [
    PinCall::LoginAuth,
    PinCall::LoginSign,
    PinCall::WrongPin,
    PinCall::ContextLoginWrong,
    PinCall::SignAuth,
    PinCall::SignSign,
    PinCall::SetPin,
    PinCall::TokenInfoUnlocked,
];

/// Runs `call` (after what it needs), returning the log lines of the call itself.
fn run_pin_call(fx: &Fixture, call: PinCall) -> Vec<String> {
    let m = mech(CKM_SHA256_RSA_PKCS);
    let a = fx.session(AUTH_SLOT);
    let s = fx.session(SIGN_SLOT);
    match call {
        PinCall::LoginAuth => during(fx, || backend::login(a, CKU_USER, Some(AUTH_PIN)).unwrap()),
        PinCall::LoginSign => during(fx, || backend::login(s, CKU_USER, Some(SIGN_PIN)).unwrap()),
        PinCall::WrongPin => during(fx, || {
            assert_eq!(
                backend::login(a, CKU_USER, Some(b"0000")),
                Err(CkError::PinIncorrect)
            )
        }),
        PinCall::ContextLoginWrong => {
            backend::login(s, CKU_USER, Some(SIGN_PIN)).unwrap();
            backend::sign_init(s, &m, private_key(s)).unwrap();
            during(fx, || {
                assert_eq!(
                    backend::login(s, CKU_CONTEXT_SPECIFIC, Some(b"WRONG1")),
                    Err(CkError::PinIncorrect)
                )
            })
        }
        PinCall::SignAuth => {
            backend::login(a, CKU_USER, Some(AUTH_PIN)).unwrap();
            backend::sign_init(a, &m, private_key(a)).unwrap();
            during(fx, || {
                let sig = backend::sign(a, b"msg").unwrap();
                assert!(verifies(
                    &public_key(fx.card.lock().auth_cert()),
                    &m,
                    b"msg",
                    &sig
                ));
            })
        }
        PinCall::SignSign => {
            backend::login(s, CKU_USER, Some(SIGN_PIN)).unwrap();
            backend::sign_init(s, &m, private_key(s)).unwrap();
            backend::login(s, CKU_CONTEXT_SPECIFIC, Some(SIGN_PIN)).unwrap();
            during(fx, || {
                let sig = backend::sign(s, b"msg").unwrap();
                assert!(verifies(
                    &public_key(fx.card.lock().sign_cert()),
                    &m,
                    b"msg",
                    &sig
                ));
            })
        }
        PinCall::SetPin => during(fx, || {
            backend::set_pin(a, Some(AUTH_PIN), Some(b"5678")).unwrap();
        }),
        PinCall::TokenInfoUnlocked => {
            backend::get_token_info(AUTH_SLOT).unwrap();
            other_process_unlocks(fx, 0x18, AUTH_PIN);
            during(fx, || assert_eq!(tries_flags(AUTH_SLOT), 0))
        }
    }
}

/// The ISD and the 券面事項入力補助AP cannot be selected, a warm reset keeps the security state
/// (only a power-off clears it), and the first command after power-up answers `6F00`: after
/// every kind of PIN-presenting call, the module ended its transaction with the card unpowered
/// (no reset: it would leave the card unlocked), confirmed in a new transaction that the card
/// is locked (SELECT JPKI resent once after `6F00`, an empty VERIFY answering `63Cx`), another
/// process gets `6982` with either key, and the module keeps working.
#[test]
fn when_the_card_cannot_be_left_it_is_unpowered_and_confirmed_locked() {
    for call in PIN_CALLS {
        let what = format!("{call:?}");
        let mut faults = vec![
            Fault::WarmResetKeepsState,
            Fault::PowerUp6F00,
            Fault::NoOtherApps,
        ];
        if call == PinCall::TokenInfoUnlocked {
            faults.push(Fault::EmptyVerify9000);
        }
        let fx = Fixture::with_card(card_with(faults));
        let log = run_pin_call(&fx, call);
        assert!(pin_verifies(&log).len() <= 1, "{what}: {log:#?}");
        let off = log
            .iter()
            .position(|l| l == "# power off")
            .unwrap_or_else(|| panic!("{what}: the card was not unpowered: {log:#?}"));
        assert!(
            !log.iter().any(|l| l == "# reset"),
            "{what}: a warm reset: {log:#?}"
        );
        // Unpowered right after the refused SELECTs of the other applications, and powered up
        // again before anything else.
        assert!(
            log[off - 1].starts_with("00A4040C0AD3921000310001010408")
                && log[off - 1].ends_with(" 6A82"),
            "{what}: {log:#?}"
        );
        assert_eq!(log[off + 1], "# power on", "{what}: {log:#?}");
        // The confirmation: SELECT JPKI (6F00, then 9000), an empty VERIFY answering 63Cx.
        let select = "00A4040C0AD392F000260100000001";
        assert_eq!(log[off + 2], format!("{select} 6F00"), "{what}: {log:#?}");
        assert_eq!(log[off + 3], format!("{select} 9000"), "{what}: {log:#?}");
        assert!(
            log[off + 4..]
                .iter()
                .any(|l| l.starts_with("0020") && !l.contains('*') && l.contains(" 63C")),
            "{what}: {log:#?}"
        );
        assert_locked(&fx, &what);
        let pin: &[u8] = if call == PinCall::SetPin {
            b"5678"
        } else {
            AUTH_PIN
        };
        full_use(&fx, pin, &what);
        assert_locked(&fx, &format!("{what}, then full use"));
    }
}

/// Test-only mode: a card that even a power-off leaves unlocked. The module must not assume
/// the card locked: the call fails with `CKR_DEVICE_ERROR` (and the failure is logged), for the
/// authentication key when the card's empty VERIFY tells (`9000`), for the signature key in any
/// case (its certificate is readable only while unlocked).
#[test]
fn a_card_still_unlocked_after_power_off_is_an_error_not_an_assumption() {
    let fx = Fixture::with_card(card_with(vec![
        Fault::PowerOffKeepsState,
        Fault::NoOtherApps,
        Fault::EmptyVerify9000,
    ]));
    let a = fx.session(AUTH_SLOT);
    let log = during(&fx, || {
        assert_eq!(
            backend::login(a, CKU_USER, Some(AUTH_PIN)),
            Err(CkError::DeviceError)
        )
    });
    assert!(log.iter().any(|l| l == "# power off"), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("00200098 ") && l.ends_with(" 9000")),
        "{log:#?}"
    );
    assert_eq!(pin_verifies(&log).len(), 1, "{log:#?}");
    assert_eq!(
        { backend::get_session_info(a).unwrap().state },
        CKS_RW_PUBLIC_SESSION,
        "not logged in"
    );
    drop(fx);

    let fx = Fixture::with_card(card_with(vec![
        Fault::PowerOffKeepsState,
        Fault::NoOtherApps,
    ]));
    let s = fx.session(SIGN_SLOT);
    let log = during(&fx, || {
        assert_eq!(
            backend::login(s, CKU_USER, Some(SIGN_PIN)),
            Err(CkError::DeviceError)
        )
    });
    assert_eq!(pin_verifies(&log).len(), 1, "{log:#?}");
    assert!(
        log.last().is_some_and(|l| l == "00B0000001 309000"),
        "the signature certificate was readable after the power-off: {log:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Empty VERIFY answered 9000

/// Another process verified a PIN and left the card unlocked; this card answers the empty
/// VERIFY with `9000` then. `C_GetTokenInfo` succeeds with no tries flags (tries unknown), and
/// the module locks the card again in the same transaction; login and signing work after.
#[test]
fn an_empty_verify_answered_9000_means_unlocked_tries_unknown() {
    for (slot, ef, pin) in [(AUTH_SLOT, 0x18, AUTH_PIN), (SIGN_SLOT, 0x1B, SIGN_PIN)] {
        let what = format!("slot {slot}");
        let fx = Fixture::with_card(card_with(vec![Fault::EmptyVerify9000]));
        backend::get_slot_list(true).unwrap();
        // A wrong PIN first: the counter the card then shows is not full.
        let h = fx.session(slot);
        assert_eq!(
            backend::login(
                h,
                CKU_USER,
                Some(if slot == AUTH_SLOT {
                    &b"0000"[..]
                } else {
                    b"WRONG1"
                })
            ),
            Err(CkError::PinIncorrect)
        );
        assert_ne!(tries_flags(slot), 0, "{what}");
        other_process_unlocks(&fx, ef, pin);
        let log = during(&fx, || {
            let info = backend::get_token_info(slot)
                .unwrap_or_else(|e| panic!("{what}: C_GetTokenInfo: {e}: {:#?}", fx.log()));
            assert_eq!(
                info.flags
                    & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED),
                0,
                "{what}: no tries flags when the card does not tell them"
            );
        });
        assert_eq!(pin_verifies(&log).len(), 0, "{what}: {log:#?}");
        assert!(
            log.last().unwrap().starts_with("00A4040C07A0000001510000"),
            "{what}: the card is locked again in the same transaction: {log:#?}"
        );
        assert_locked(&fx, &what);
        // Locked again: the card tells the (full) count again.
        assert_eq!(tries_flags(slot), 0, "{what}");
        full_use(&fx, AUTH_PIN, &what);
        assert_eq!(fx.card.lock().tries_left(), (3, 5), "{what}");
    }
}

/// Sets the module's configuration for one test; back to the files when dropped.
struct ConfigGuard;

impl Drop for ConfigGuard {
    fn drop(&mut self) {
        crate::config::set_override(None);
    }
}

/// With tries unknown (empty VERIFY `9000`), a pinentry is still asked, and says so.
#[test]
fn pinentry_with_tries_unknown_still_asks() {
    let fx = Fixture::with_card(card_with(vec![Fault::EmptyVerify9000]));
    let dir = std::env::temp_dir().join(format!("jpki-ut-pe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let prog = crate::pinentry::tests::scripted(&dir, "D 1234\\nOK");
    crate::config::set_override(Some(crate::config::Config {
        pinentry: Some(prog),
        ..Default::default()
    }));
    let _guard = ConfigGuard;
    let a = fx.session(AUTH_SLOT);
    other_process_unlocks(&fx, 0x18, AUTH_PIN);
    let log = during(&fx, || backend::login(a, CKU_USER, None).unwrap());
    assert_eq!(pin_verifies(&log).len(), 1, "{log:#?}");
    let asked = std::fs::read_to_string(dir.join("log")).unwrap();
    assert!(asked.contains("Tries left: unknown"), "{asked}");
    assert!(!asked.contains("Last try"), "{asked}");
    assert_locked(&fx, "pinentry");
    let _ = std::fs::remove_dir_all(dir);
}
