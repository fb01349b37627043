//! The real card's unconfirmed behaviours (virtual card modes, `jpki virtual-card --fault`)
//! through the real pcscd: the PC/SC side of `src/backend/tests/unconfirmed.rs`.
//!
//! When the card cannot be locked by leaving the JPKI application, the module ends its
//! transaction with `SCARD_UNPOWER_CARD`: pcsc-lite powers the card down and up *before* it
//! releases the lock, so no other process gets a command in between. Shown here with another
//! connection trying to sign with either key all the time: the virtual card's log has
//! `# power off` right after the module's last command, that connection never signs, and the
//! module keeps working.

mod common;

use common::VCard;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkErr, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SELECT_JPKI: [u8; 15] = [
    0, 0xA4, 4, 0x0C, 10, 0xD3, 0x92, 0xF0, 0, 0x26, 1, 0, 0, 0, 1,
];

/// The module's debug log for this test binary (`JPKI_PKCS11_DEBUG`), set before it is loaded.
fn module_log() -> PathBuf {
    let p = std::env::temp_dir().join(format!("jpki-card-modes-{}.log", std::process::id()));
    std::env::set_var("JPKI_PKCS11_DEBUG", &p);
    p
}

fn load() -> Pkcs11 {
    let p = Pkcs11::new(common::module_path()).expect("load the module");
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    p
}

fn private_key(s: &Session) -> ObjectHandle {
    let keys = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    assert_eq!(keys.len(), 1);
    keys[0]
}

fn rv(e: CkErr) -> RvError {
    match e {
        CkErr::Pkcs11(rv, _) => rv,
        other => panic!("expected a CKR, got {other:?}"),
    }
}

fn sw(r: &[u8]) -> u16 {
    match r {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

/// Another process's attempt, in one transaction of its own connection: SELECT JPKI (resent
/// once after `6F00`), SELECT the key EF, COMPUTE DIGITAL SIGNATURE. The signature's status word.
fn try_to_sign(card: &mut pcsc::Card, key_ef: u8) -> Result<u16, pcsc::Error> {
    let tx = card.transaction()?;
    let mut buf = [0u8; 300];
    if sw(tx.transmit(&SELECT_JPKI, &mut buf)?) == 0x6F00 {
        tx.transmit(&SELECT_JPKI, &mut buf)?;
    }
    tx.transmit(&[0, 0xA4, 2, 0x0C, 2, 0, key_ef], &mut buf)?;
    let mut apdu = vec![0x80, 0x2A, 0, 0x80, 51];
    apdu.extend_from_slice(&common::digest_info(b"x"));
    apdu.push(0);
    Ok(sw(tx.transmit(&apdu, &mut buf)?))
}

fn connect(reader: &str) -> (pcsc::Context, pcsc::Card) {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let card = ctx
        .connect(
            &CString::new(reader).unwrap(),
            pcsc::ShareMode::Shared,
            pcsc::Protocols::ANY,
        )
        .unwrap();
    (ctx, card)
}

/// A new connection's attempt with each key: both must get `6982`.
fn assert_locked(reader: &str, what: &str) {
    let (_ctx, mut card) = connect(reader);
    for ef in [0x17, 0x1A] {
        let r = loop {
            match try_to_sign(&mut card, ef) {
                Err(pcsc::Error::ResetCard) => card
                    .reconnect(
                        pcsc::ShareMode::Shared,
                        pcsc::Protocols::ANY,
                        pcsc::Disposition::LeaveCard,
                    )
                    .unwrap(),
                r => break r,
            }
        };
        assert_eq!(r, Ok(0x6982), "{what}: key EF {ef:02X}");
    }
    let _ = card.disconnect(pcsc::Disposition::LeaveCard);
}

/// Another connection that tries to sign with either key, in a loop, until stopped. Returns
/// the status words its signatures got.
struct Intruder {
    stop: Arc<AtomicBool>,
    /// Attempts made so far.
    attempts: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<Vec<u16>>>,
}

impl Intruder {
    fn start(reader: &str) -> Intruder {
        let stop = Arc::new(AtomicBool::new(false));
        let reader = reader.to_string();
        let flag = stop.clone();
        let attempts = Arc::new(AtomicUsize::new(0));
        let count = attempts.clone();
        let thread = std::thread::spawn(move || {
            let (_ctx, mut card) = connect(&reader);
            let mut sws = vec![];
            let mut ef = 0x17;
            while !flag.load(Ordering::SeqCst) {
                match try_to_sign(&mut card, ef) {
                    Ok(sw) => {
                        sws.push(sw);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // The module unpowered (pcsc-lite tells every handle it was reset).
                    Err(pcsc::Error::ResetCard) => {
                        let _ = card.reconnect(
                            pcsc::ShareMode::Shared,
                            pcsc::Protocols::ANY,
                            pcsc::Disposition::LeaveCard,
                        );
                    }
                    Err(e) => panic!("intruder: {e}"),
                }
                ef ^= 0x17 ^ 0x1A;
                std::thread::sleep(Duration::from_millis(15));
            }
            let _ = card.disconnect(pcsc::Disposition::LeaveCard);
            sws
        });
        Intruder {
            stop,
            attempts,
            thread: Some(thread),
        }
    }

    /// Waits until it has made another attempt (so that it is trying again, waiting for the
    /// card, while the module works next).
    fn wait_for_an_attempt(&self) {
        let before = self.attempts.load(Ordering::SeqCst);
        let start = std::time::Instant::now();
        while self.attempts.load(Ordering::SeqCst) == before {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the other connection is stuck"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(mut self) -> Vec<u16> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().expect("intruder thread")
    }
}

impl Drop for Intruder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Checks the log of one PIN-presenting call on a card whose other applications cannot be
/// selected: the module's VERIFY, then only the module's commands up to its refused SELECTs,
/// then `# power off` and `# power on` at once (pcsc-lite unpowered inside the transaction), and
/// no warm reset.
fn assert_unpowered_inside(log: &[String], what: &str) {
    let verify = log
        .iter()
        .position(|l| l.starts_with("0020") && l.contains('*'))
        .unwrap_or_else(|| panic!("{what}: no VERIFY: {log:#?}"));
    let off = verify
        + log[verify..]
            .iter()
            .position(|l| l == "# power off")
            .unwrap_or_else(|| panic!("{what}: the card was not unpowered: {log:#?}"));
    for l in &log[verify..off] {
        assert!(
            !l.starts_with("00A4020C020017")
                && !l.starts_with("00A4020C02001A")
                && !l.starts_with("802A0080")
                && !l.starts_with('#'),
            "{what}: {l:?} between the module's VERIFY and the power-off: {log:#?}"
        );
    }
    assert!(
        log[off - 1].starts_with("00A4040C0AD3921000310001010408 6A82"),
        "{what}: the power-off does not follow the module's last command: {log:#?}"
    );
    assert_eq!(log[off + 1], "# power on", "{what}: {log:#?}");
    assert!(
        !log.iter().any(|l| l == "# reset"),
        "{what}: a warm reset: {log:#?}"
    );
}

/// A card on which a warm reset keeps the security state, whose first command after power-up
/// answers `6F00`, and on which neither the ISD nor the 券面事項入力補助AP can be selected: after
/// each PIN-presenting call pcsc-lite unpowered the card inside the module's transaction (with
/// another connection trying to sign all along, which never succeeds), another connection gets
/// `6982` with either key, and the module keeps working.
#[test]
fn the_last_resort_unpowers_the_card_inside_the_transaction() {
    let _g = common::lock();
    module_log();
    let card = VCard::start_faulty(&["warm-reset-keeps-state", "power-up-6f00", "no-other-apps"]);
    let intruder = Intruder::start(&card.reader);
    let p = load();
    let (auth, sign) = common::token_slots(&p, &card.reader);
    let a = p.open_rw_session(auth).unwrap();
    let s = p.open_rw_session(sign).unwrap();
    let m = Mechanism::Sha256RsaPkcs;
    let auth_pub = common::rsa_public_key(&card.cert("auth"));
    let sign_pub = common::rsa_public_key(&card.cert("sign"));
    let check = |sig: &[u8], key: &rsa::RsaPublicKey| {
        assert!(key
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"data"), sig)
            .is_ok());
    };
    let step = |what: &str, f: &mut dyn FnMut()| {
        intruder.wait_for_an_attempt();
        card.clear_log();
        f();
        assert_unpowered_inside(&card.log(), what);
        assert_locked(&card.reader, what);
    };
    step("authentication login", &mut || {
        a.login(UserType::User, Some(&AuthPin::from("1234")))
            .unwrap()
    });
    let key = private_key(&a);
    step("authentication signature", &mut || {
        check(&a.sign(&m, key, b"data").unwrap(), &auth_pub)
    });
    step("wrong PIN", &mut || {
        let e = s
            .login(UserType::User, Some(&AuthPin::from("WRONG1")))
            .unwrap_err();
        assert_eq!(rv(e), RvError::PinIncorrect);
    });
    step("signature login", &mut || {
        s.login(UserType::User, Some(&AuthPin::from("JPKITEST1")))
            .unwrap()
    });
    let skey = private_key(&s);
    step("signature", &mut || {
        s.sign_init(&m, skey).unwrap();
        s.login(UserType::ContextSpecific, Some(&AuthPin::from("JPKITEST1")))
            .unwrap();
        s.sign_update(b"data").unwrap();
        check(&s.sign_final().unwrap(), &sign_pub);
    });
    let sws = intruder.finish();
    assert!(!sws.is_empty(), "the other connection ran");
    assert!(
        sws.iter().all(|sw| *sw == 0x6982),
        "the other connection got {sws:04X?}"
    );
    // The module keeps working: a new login on a new session.
    a.logout().unwrap();
    a.login(UserType::User, Some(&AuthPin::from("1234")))
        .unwrap();
    check(&a.sign(&m, key, b"data").unwrap(), &auth_pub);
    assert_locked(&card.reader, "at the end");
    assert_eq!(card.tries_left(), (3, 5), "no try lost");
}

/// Test-only mode: a card that even a power-off leaves unlocked (and whose empty VERIFY answers
/// `9000` then). The module does not assume it locked: `CKR_DEVICE_ERROR`, and the failure is
/// in its log.
#[test]
fn a_card_still_unlocked_after_unpowering_is_an_error_and_logged() {
    let _g = common::lock();
    let log = module_log();
    let card = VCard::start_faulty(&[
        "power-off-keeps-state",
        "no-other-apps",
        "empty-verify-9000",
    ]);
    let p = load();
    let (auth, _) = common::token_slots(&p, &card.reader);
    let a = p.open_rw_session(auth).unwrap();
    card.clear_log();
    let e = a
        .login(UserType::User, Some(&AuthPin::from("1234")))
        .unwrap_err();
    assert_eq!(rv(e), RvError::DeviceError);
    let lines = card.log();
    assert!(lines.iter().any(|l| l == "# power off"), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l == "00200098 9000"),
        "the confirmation's empty VERIFY: {lines:#?}"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("could not be confirmed locked"),
        "the module's log ({}): {text}",
        log.display()
    );
}

/// Another process presents the authentication PIN and leaves the card unlocked.
fn other_process_unlocks(reader: &str) {
    let (_ctx, card) = connect(reader);
    let mut buf = [0u8; 300];
    let mut send = |apdu: &[u8]| sw(card.transmit(apdu, &mut buf).unwrap());
    if send(&SELECT_JPKI) == 0x6F00 {
        send(&SELECT_JPKI);
    }
    assert_eq!(send(&[0, 0xA4, 2, 0x0C, 2, 0, 0x18]), 0x9000);
    assert_eq!(send(&[0, 0x20, 0, 0x80, 4, b'1', b'2', b'3', b'4']), 0x9000);
    let _ = card.disconnect(pcsc::Disposition::LeaveCard);
}

/// A card whose empty VERIFY answers `9000` once the PIN is verified, left unlocked by another
/// process: `jpki status` shows the tries as unknown (JSON: `null`), not an error, and leaves
/// the card locked.
#[test]
fn jpki_status_shows_unknown_tries_and_locks_an_unlocked_card() {
    let _g = common::lock();
    let card = VCard::start_faulty(&["empty-verify-9000"]);
    for json in [false, true] {
        other_process_unlocks(&card.reader);
        let mut args = vec!["status", "--reader", card.reader.as_str()];
        if json {
            args.push("--json");
        }
        let out = std::process::Command::new("timeout")
            .arg("60")
            .arg(common::jpki_bin())
            .args(&args)
            .output()
            .expect("run jpki");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "jpki {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = if json {
            "\"tries_left\":null"
        } else {
            "User authentication PIN: tries left unknown"
        };
        assert!(text.contains(want), "jpki {args:?} shows {want:?}:\n{text}");
        assert_locked(&card.reader, "after jpki status");
    }
    assert_eq!(card.tries_left(), (3, 5));
}
