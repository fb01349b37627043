//! The fuzz targets' logic, shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/`) and the
//! corpus replay test (`tests/fuzz_replay.rs`), which runs every committed corpus file through
//! the same functions in the normal test suite.
//!
//! - [`apdu_responses`]: a scripted card answers the module's card layer (bind, tries, VERIFY,
//!   certificate reads, signing, random, PIN change) with fuzzed responses, real answers of the
//!   virtual card, `61xx`/`6Cxx`, empty answers and transport errors.
//! - [`cert_parse`]: `Cert::parse`, `serial_from_head`, `der_total_len` on arbitrary bytes.
//! - [`pkcs11_calls`]: sequences of PKCS#11 calls (the backend) against the in-process virtual card,
//!   with removals, resets, other cards and fault modes in between.
//!
//! Properties checked (a panic is a finding): no panic in the module; a VERIFY carrying a PIN is
//! always followed, in the same transaction, by leaving the JPKI application or unpowering (unless
//! the card is gone); certificates, signatures and random data have the lengths promised; every
//! signature the module hands out verifies with the certificate of the card that made it; after
//! every call another process cannot sign with either key (`6982`).
#![allow(dead_code)]

use cryptoki_sys::*;
use jpki_card::cert::{serial_from_head, Cert};
use jpki_card::inproc::InProcSystem;
use jpki_card::jpki::{self, KeyPair, SignMode};
use jpki_card::BoundCard;
use jpki_card::Error;
use jpki_card::{CardChannel, Transaction};
use jpki_pkcs11::backend::{self, MechanismParams, PssParams, RawMechanism};
use jpki_vcard::{Fault, VirtualCard};
use rsa::{Pkcs1v15Sign, Pss, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A SHA-256 DigestInfo of `msg`.
fn digest_info(msg: &[u8]) -> Vec<u8> {
    let prefix = rsa::Pkcs1v15Sign::new::<Sha256>().prefix;
    [&prefix[..], &Sha256::digest(msg)[..]].concat()
}

// ---------------------------------------------------------------------------------------------
// Response parsing through a scripted card

struct ScriptState {
    ops: Vec<u8>,
    answers: Vec<u8>,
    pos: usize,
    /// A healthy card that answers when the script says so.
    card: VirtualCard,
    /// A VERIFY with a PIN was sent and the security state has not been dropped since.
    unlocked: bool,
    /// The script ran out: the card counts as removed.
    removed: bool,
}

impl ScriptState {
    fn byte(&mut self) -> Option<u8> {
        let b = self.answers.get(self.pos).copied();
        self.pos += 1;
        b
    }

    fn answer(&mut self, apdu: &[u8]) -> Result<Vec<u8>, Error> {
        if self.removed {
            return Err(Error::CardRemoved);
        }
        let Some(b) = self.byte() else {
            self.removed = true;
            return Err(Error::CardRemoved);
        };
        Ok(match b {
            0xF0 => vec![0x90, 0x00],
            0xF1 => vec![0x63, 0xC2],
            0xF2..=0xF7 => self.card.transmit(apdu),
            0xF8 => {
                let n = self.byte().unwrap_or(0);
                vec![0x61, n]
            }
            0xF9 => {
                let n = self.byte().unwrap_or(0);
                vec![0x6C, n]
            }
            0xFA => Vec::new(),
            0xFB => return Err(Error::Transport("fuzzed reader error".into())),
            0xFC => return Err(Error::CardReset),
            n => {
                let n = usize::from(n);
                let start = self.pos.min(self.answers.len());
                let end = (start + n).min(self.answers.len());
                self.pos = end;
                self.answers[start..end].to_vec()
            }
        })
    }
}

struct ScriptTx(Arc<Mutex<ScriptState>>);

impl Transaction for ScriptTx {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, Error> {
        let mut s = self.0.lock().unwrap();
        if apdu.len() > 5 && apdu[1] == 0x20 && apdu[4] > 0 {
            s.unlocked = true;
        }
        let r = s.answer(apdu);
        let is_other_app =
            apdu.len() > 5 && apdu[1] == 0xA4 && apdu[2] == 0x04 && apdu[5..] != jpki::JPKI_AID[..];
        if let Ok(resp) = &r {
            if is_other_app && resp.ends_with(&[0x90, 0x00]) {
                s.unlocked = false;
            }
        }
        r
    }

    fn end_unpowered(self: Box<Self>) -> Result<(), Error> {
        let mut s = self.0.lock().unwrap();
        if s.removed {
            return Err(Error::CardRemoved);
        }
        s.unlocked = false;
        s.card.power_off();
        s.card.power_on();
        Ok(())
    }
}

struct ScriptChannel(Arc<Mutex<ScriptState>>);

impl CardChannel for ScriptChannel {
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, Error> {
        let s = self.0.lock().unwrap();
        assert!(
            !s.unlocked || s.removed,
            "a transaction began with the card left unlocked"
        );
        if s.removed {
            return Err(Error::CardRemoved);
        }
        Ok(Box::new(ScriptTx(self.0.clone())))
    }
    fn unpower(&mut self) -> Result<(), Error> {
        let mut s = self.0.lock().unwrap();
        s.unlocked = false;
        s.card.power_off();
        s.card.power_on();
        Ok(())
    }
    fn disconnect(self: Box<Self>) {}
}

/// `data`: `n` (op count, mod 16), `n` op bytes, then the answers script.
pub fn apdu_responses(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (ops, answers) = rest.split_at(n);
    let state = Arc::new(Mutex::new(ScriptState {
        ops: ops.to_vec(),
        answers: answers.to_vec(),
        pos: 0,
        card: VirtualCard::in_memory(),
        unlocked: false,
        removed: false,
    }));
    let check = |what: &str| {
        let s = state.lock().unwrap();
        assert!(
            !s.unlocked || s.removed,
            "{what}: the card was left unlocked"
        );
    };
    let bound = BoundCard::bind(Box::new(ScriptChannel(state.clone())));
    check("bind");
    let Ok(mut card) = bound else { return };
    assert!(card.serial.len() <= 16);
    for &op in ops {
        let key = if op & 1 == 0 {
            KeyPair::Auth
        } else {
            KeyPair::Sign
        };
        let pin: &[u8] = if key == KeyPair::Auth {
            b"1234"
        } else {
            b"JPKITEST1"
        };
        match (op >> 1) % 8 {
            0 => {
                let _ = card.refresh_tries(key);
            }
            1 => {
                let _ = card.verify_pin(key, pin);
            }
            2 => {
                if let Ok(c) = card.cert(key, Some(pin)) {
                    assert!(c.der().len() <= jpki::MAX_CERT_LEN);
                }
            }
            3 => {
                if let Ok(c) = card.ca_cert(key) {
                    assert!(c.der().len() <= jpki::MAX_CERT_LEN);
                }
            }
            4 | 5 => {
                let (mode, input) = if op & 0x10 == 0 {
                    (SignMode::Pkcs1Raw, digest_info(b"x"))
                } else {
                    (SignMode::PssSha256Hash, Sha256::digest(b"x").to_vec())
                };
                if let Ok(sig) = card.sign(key, pin, mode, &input, 256) {
                    assert_eq!(sig.len(), 256, "signature length");
                }
            }
            6 => {
                let len = usize::from(op >> 4) * 3;
                if let Ok(r) = card.random(len) {
                    assert_eq!(r.len(), len, "random length");
                }
            }
            _ => {
                let _ = card.change_pin(key, pin, pin);
            }
        }
        check(&format!("op {op:#04x}"));
    }
    card.disconnect();
}

// ---------------------------------------------------------------------------------------------
// Certificate parsing

pub fn cert_parse(data: &[u8]) {
    let _ = serial_from_head(data);
    if let Ok(total) = jpki::der_total_len(data) {
        assert!(total <= jpki::MAX_CERT_LEN);
    }
    if let Ok(c) = Cert::from_der(data) {
        assert_eq!(c.der(), data);
        assert!(c.sig_len() > 0);
        assert!(!c.modulus().is_empty());
        // The serial read from the head agrees with the parsed one when both exist.
        if let Some(s) = serial_from_head(data) {
            assert!(
                c.serial().ends_with(&s),
                "serial_from_head disagrees with the parser"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PKCS#11 call sequences

static CALLS_LOCK: Mutex<()> = Mutex::new(());

fn pubkey(der: &[u8]) -> RsaPublicKey {
    Cert::from_der(der)
        .expect("virtual card certificate")
        .public_key()
        .as_ref()
        .clone()
}

fn sig_verifies(key: &RsaPublicKey, mech: CK_MECHANISM_TYPE, data: &[u8], sig: &[u8]) -> bool {
    match mech {
        CKM_SHA256_RSA_PKCS => key
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(data), sig)
            .is_ok(),
        CKM_RSA_PKCS => key
            .verify(Pkcs1v15Sign::new_unprefixed(), data, sig)
            .is_ok(),
        CKM_SHA256_RSA_PKCS_PSS => key
            .verify(Pss::new_with_salt::<Sha256>(32), &Sha256::digest(data), sig)
            .is_ok(),
        CKM_RSA_PKCS_PSS => key
            .verify(Pss::new_with_salt::<Sha256>(32), data, sig)
            .is_ok(),
        _ => false,
    }
}

/// As another process would: SELECT JPKI, SELECT the key EF, COMPUTE DIGITAL SIGNATURE.
/// True if the card signed.
fn other_process_signs(card: &parking_lot::Mutex<VirtualCard>, key_ef: u8) -> bool {
    let mut c = card.lock();
    c.transmit(&[
        0, 0xA4, 4, 0x0C, 10, 0xD3, 0x92, 0xF0, 0, 0x26, 1, 0, 0, 0, 1,
    ]);
    c.transmit(&[0, 0xA4, 2, 0x0C, 2, 0, key_ef]);
    let mut apdu = vec![0x80, 0x2A, 0, 0x80, 51];
    apdu.extend_from_slice(&digest_info(b"x"));
    apdu.push(0);
    let r = c.transmit(&apdu);
    r.len() > 2 && r.ends_with(&[0x90, 0x00])
}

const FAULTS: [Fault; 8] = [
    Fault::StatusFor {
        ins: 0x2A,
        sw: 0x6F00,
    },
    Fault::StatusFor {
        ins: 0xB0,
        sw: 0x6B00,
    },
    Fault::Truncate { ins: 0x2A, keep: 2 },
    Fault::Oversize {
        ins: 0xB0,
        extra: 3,
    },
    Fault::GetResponse {
        ins: 0xB0,
        chunk: 100,
    },
    Fault::WrongLe { ins: 0x2A },
    Fault::CorruptSignature,
    Fault::RemoveAfterVerify,
];

/// Tracks a signing operation the harness started, to verify what it returns.
struct Pending {
    mech: CK_MECHANISM_TYPE,
    slot: CK_SLOT_ID,
    data: Vec<u8>,
}

pub fn pkcs11_calls(data: &[u8]) {
    let _g = CALLS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let _ = backend::finalize();
    let sys = InProcSystem::new(&["Fuzz Reader 00"]);
    let cards = [
        Arc::new(parking_lot::Mutex::new(VirtualCard::in_memory())),
        Arc::new(parking_lot::Mutex::new(VirtualCard::in_memory_other())),
    ];
    let mut current = Some(0usize);
    sys.insert_shared(0, cards[0].clone());
    jpki_pkcs11::backend::use_card_system(Some(sys.clone()));
    backend::initialize().expect("initialize");
    let _ = backend::get_slot_list(false);
    let mut sessions: Vec<CK_SESSION_HANDLE> = Vec::new();
    let mut slot_of: HashMap<CK_SESSION_HANDLE, CK_SLOT_ID> = HashMap::new();
    let mut pending: HashMap<CK_SESSION_HANDLE, Pending> = HashMap::new();
    let mut it = data.iter().copied();
    let mut steps = 0;
    while let Some(op) = it.next() {
        steps += 1;
        if steps > 64 {
            break;
        }
        let arg = it.next().unwrap_or(0);
        let h = if sessions.is_empty() || arg & 0x80 != 0 {
            CK_SESSION_HANDLE::from(arg)
        } else {
            sessions[usize::from(arg) % sessions.len()]
        };
        let slot = CK_SLOT_ID::from(arg % 3);
        match op % 24 {
            0 => {
                if let Ok(s) = backend::open_session(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION) {
                    sessions.push(s);
                    slot_of.insert(s, slot);
                }
            }
            1 => {
                let _ = backend::close_session(h);
            }
            2 => {
                let _ = backend::close_all_sessions(slot);
            }
            3 => {
                let pin: &[u8] = match (slot_of.get(&h), arg & 0x40 != 0) {
                    (_, true) => b"0000",
                    (Some(1), _) => b"JPKITEST1",
                    _ => b"1234",
                };
                let _ = backend::login(h, CKU_USER, Some(pin));
            }
            4 => {
                let pin: &[u8] = if arg & 0x40 != 0 {
                    b"WRONG1"
                } else {
                    b"JPKITEST1"
                };
                let _ = backend::login(h, CKU_CONTEXT_SPECIFIC, Some(pin));
            }
            5 => {
                let _ = backend::logout(h);
            }
            6 => {
                let class =
                    [CKO_CERTIFICATE, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY][usize::from(arg) % 3];
                let t = if arg & 0x40 != 0 {
                    vec![]
                } else {
                    vec![(CKA_CLASS, class.to_ne_bytes().to_vec())]
                };
                let _ = backend::find_objects_init(h, t);
                let _ = backend::find_objects(h, usize::from(arg % 7));
                let _ = backend::find_objects_final(h);
            }
            7 => {
                let o = CK_OBJECT_HANDLE::from(arg % 12);
                let _ = backend::get_attribute_value(
                    h,
                    o,
                    &[
                        CKA_CLASS,
                        CKA_VALUE,
                        CKA_ID,
                        CKA_MODULUS,
                        CKA_SUBJECT,
                        0x1234,
                    ],
                );
            }
            8 | 9 => {
                let mech = [
                    CKM_SHA256_RSA_PKCS,
                    CKM_RSA_PKCS,
                    CKM_SHA256_RSA_PKCS_PSS,
                    CKM_RSA_PKCS_PSS,
                ][usize::from(arg) % 4];
                let params = if mechanism_is_pss(mech) {
                    MechanismParams::Pss(PssParams {
                        hash_alg: CKM_SHA256,
                        mgf: CKG_MGF1_SHA256,
                        s_len: 32,
                    })
                } else {
                    MechanismParams::None
                };
                let m = RawMechanism {
                    mechanism: mech,
                    params,
                };
                let key: CK_OBJECT_HANDLE =
                    [3, 13, 3, 13, 2, 12, 1, 0x7777][usize::from(arg >> 4) % 8];
                if backend::sign_init(h, &m, key).is_ok() {
                    pending.insert(
                        h,
                        Pending {
                            mech,
                            slot: *slot_of.get(&h).unwrap_or(&0),
                            data: Vec::new(),
                        },
                    );
                }
            }
            10 | 11 => {
                let input = sign_input(pending.get(&h).map(|p| p.mech), arg);
                let r = backend::sign(h, &input);
                if let Some(mut p) = pending.remove(&h) {
                    if let Ok(sig) = r {
                        p.data = input;
                        check_sig(&cards, current, &p, &sig);
                    }
                } else {
                    assert!(r.is_err(), "a signature without C_SignInit");
                }
            }
            12 => {
                let part = vec![arg; usize::from(arg % 40)];
                match backend::sign_update(h, &part) {
                    Ok(()) => {
                        if let Some(p) = pending.get_mut(&h) {
                            p.data.extend_from_slice(&part);
                        }
                    }
                    Err(_) => {
                        pending.remove(&h);
                    }
                }
            }
            13 => {
                let r = backend::sign_final(h);
                if let Some(p) = pending.remove(&h) {
                    if let Ok(sig) = r {
                        check_sig(&cards, current, &p, &sig);
                    }
                }
            }
            14 => {
                let _ = backend::get_token_info(slot);
                let _ = backend::get_mechanism_list(slot);
            }
            15 => {
                if let Ok(r) = backend::generate_random(h, usize::from(arg)) {
                    assert_eq!(r.len(), usize::from(arg));
                }
            }
            16 => {
                if sys.has_card(0) {
                    sys.remove(0);
                }
                current = None;
            }
            17 => {
                if !sys.has_card(0) {
                    let i = usize::from(arg % 2);
                    sys.insert_shared(0, cards[i].clone());
                    current = Some(i);
                }
            }
            18 => sys.reset(0),
            19 => {
                if let Some(i) = current {
                    cards[i]
                        .lock()
                        .set_fault(FAULTS[usize::from(arg) % FAULTS.len()].clone());
                }
            }
            20 => {
                for c in &cards {
                    c.lock().clear_faults();
                }
            }
            21 => {
                let _ = backend::get_session_info(h);
                let _ = backend::sign_abort(h);
                pending.remove(&h);
            }
            22 => {
                let _ = backend::get_slot_list(arg & 1 == 0);
            }
            _ => {
                let _ = backend::set_pin(h, Some(b"1234"), Some(b"1234"));
            }
        }
        // A pulled card (fault) is out of the reader: note it.
        if !sys.has_card(0) {
            current = None;
        }
        for c in &cards {
            let auth = other_process_signs(c, 0x17);
            let sign = other_process_signs(c, 0x1A);
            assert!(
                !auth && !sign,
                "step {steps} op {op}: card left unlocked (auth {auth}, sign {sign})"
            );
        }
    }
    let _ = backend::finalize();
    jpki_pkcs11::backend::use_card_system(None);
}

fn mechanism_is_pss(m: CK_MECHANISM_TYPE) -> bool {
    m == CKM_RSA_PKCS_PSS || m == CKM_SHA256_RSA_PKCS_PSS
}

fn sign_input(mech: Option<CK_MECHANISM_TYPE>, arg: u8) -> Vec<u8> {
    match mech {
        Some(CKM_RSA_PKCS_PSS) if arg & 0x40 == 0 => Sha256::digest([arg]).to_vec(),
        Some(CKM_RSA_PKCS) if arg & 0x40 == 0 => digest_info(&[arg]),
        _ => vec![arg; usize::from(arg)],
    }
}

fn check_sig(
    cards: &[Arc<parking_lot::Mutex<VirtualCard>>; 2],
    current: Option<usize>,
    p: &Pending,
    sig: &[u8],
) {
    let i = current.expect("a signature while no card is in the reader");
    let der = {
        let c = cards[i].lock();
        if p.slot % 2 == 0 {
            c.auth_cert().to_vec()
        } else {
            c.sign_cert().to_vec()
        }
    };
    assert!(
        sig_verifies(&pubkey(&der), p.mech, &p.data, sig),
        "the module handed out a signature that does not verify (mechanism {:#x})",
        p.mech
    );
}
