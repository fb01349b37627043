//! Shared fixtures of the in-process tests (`backend_tests`, `reliability_tests`): a module
//! initialized on one in-process reader holding a virtual card, and helpers to verify what the
//! module signs outside it.

use crate::backend::{self, MechanismParams, PssParams, RawMechanism};
use cryptoki_sys::*;
use jpki_card::inproc::InProcSystem;
use jpki_vcard::VirtualCard;
use parking_lot::Mutex;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use x509_cert::der::Decode;

/// A module initialized (and finalized on drop) on one in-process reader with a virtual card.
/// Holds `backend::TEST_LOCK`: one such module at a time.
pub(crate) struct Fixture {
    pub sys: Arc<InProcSystem>,
    pub card: Arc<Mutex<VirtualCard>>,
    _guard: parking_lot::MutexGuard<'static, ()>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Self::with_card(VirtualCard::in_memory())
    }

    pub fn with_card(card: VirtualCard) -> Fixture {
        let guard = crate::backend::TEST_LOCK.lock();
        let _ = backend::finalize();
        // Every in-process test's card has the same identity: start with no refused PIN.
        jpki_card::forget_refused_pins();
        let sys = InProcSystem::new(&["Test Reader 00"]);
        let card = sys.insert(0, card);
        crate::backend::use_card_system(Some(sys.clone()));
        backend::initialize().unwrap();
        Fixture {
            sys,
            card,
            _guard: guard,
        }
    }

    pub fn session(&self, slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
        backend::get_slot_list(false).unwrap();
        backend::open_session(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
            .unwrap_or_else(|e| panic!("open session on slot {slot}: {e}"))
    }

    /// The card's APDU log (`<command> <response>`, VERIFY data masked with `*`).
    pub fn log(&self) -> Vec<String> {
        self.card.lock().log().to_vec()
    }

    pub fn clear_log(&self) {
        self.card.lock().clear_log();
    }

    /// Command APDUs in the log.
    pub fn commands(&self) -> Vec<Vec<u8>> {
        self.log()
            .iter()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let cmd = l.split(' ').next().unwrap_or_default();
                (0..cmd.len() / 2)
                    .map(|i| u8::from_str_radix(&cmd[2 * i..2 * i + 2], 16).unwrap_or(0))
                    .collect()
            })
            .collect()
    }

    /// VERIFYs that carried a PIN (the log masks their data with `*`).
    pub fn verifies_sent(&self) -> usize {
        self.log()
            .iter()
            .filter(|l| l.starts_with("0020") && l.contains('*'))
            .count()
    }

    /// As another process would: SELECT JPKI, SELECT the key EF, COMPUTE DIGITAL SIGNATURE.
    /// Returns the signature's status word (0 if the card gave no status word).
    pub fn other_process_sign_sw(&self, key_ef: u8) -> u16 {
        let mut c = self.card.lock();
        c.transmit(&[
            0, 0xA4, 4, 0x0C, 10, 0xD3, 0x92, 0xF0, 0, 0x26, 1, 0, 0, 0, 1,
        ]);
        c.transmit(&[0, 0xA4, 2, 0x0C, 2, 0, key_ef]);
        let mut apdu = vec![0x80, 0x2A, 0, 0x80, 51];
        apdu.extend_from_slice(&digest_info(b"x"));
        apdu.push(0);
        let r = c.transmit(&apdu);
        if r.len() < 2 {
            return 0;
        }
        u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]])
    }

    /// Puts the card back if a fault pulled it out.
    pub fn reinsert_if_pulled(&self) {
        if !self.sys.has_card(0) {
            self.sys.insert_shared(0, self.card.clone());
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = backend::finalize();
        crate::backend::use_card_system(None);
    }
}

/// The DER DigestInfo prefix of a SHA-256 hash (RFC 8017 §9.2 note 1), written out here so the
/// tests do not take it from the code they test.
const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// A SHA-256 DigestInfo of `msg`, built independently of the module.
pub(crate) fn digest_info(msg: &[u8]) -> Vec<u8> {
    let mut di = SHA256_DIGEST_INFO_PREFIX.to_vec();
    di.extend_from_slice(&Sha256::digest(msg));
    di
}

/// The RSA public key of a DER certificate.
pub(crate) fn public_key(cert_der: &[u8]) -> RsaPublicKey {
    let cert = x509_cert::Certificate::from_der(cert_der).unwrap();
    let bits = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    RsaPublicKey::from_pkcs1_der(bits).unwrap()
}

pub(crate) fn mech(m: CK_MECHANISM_TYPE) -> RawMechanism {
    RawMechanism {
        mechanism: m,
        params: MechanismParams::None,
    }
}

/// A PSS mechanism with the only parameters the card supports.
pub(crate) fn pss(m: CK_MECHANISM_TYPE) -> RawMechanism {
    RawMechanism {
        mechanism: m,
        params: MechanismParams::Pss(PssParams {
            hash_alg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            s_len: 32,
        }),
    }
}

/// Sets the module's configuration for one test; back to the files when dropped.
pub(crate) struct ConfigGuard;

impl ConfigGuard {
    pub fn set(cfg: crate::config::Config) -> ConfigGuard {
        crate::config::set_override(Some(cfg));
        ConfigGuard
    }
}

impl Drop for ConfigGuard {
    fn drop(&mut self) {
        crate::config::set_override(None);
    }
}

pub(crate) fn with_pinentry(name: &str, answer: &str) -> (ConfigGuard, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("jpki-bt-pe-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let prog = crate::pinentry::tests::scripted(&dir, answer);
    let guard = ConfigGuard::set(crate::config::Config {
        pinentry: Some(prog),
        ..Default::default()
    });
    (guard, dir)
}
