//! The virtual My Number Card: the JPKI application's APDU interface as described in
//! `jpki-card.md`, as a pure state machine (APDU in, response out), plus the vpcd runner that
//! puts it behind pcscd (`jpki virtual-card`).
//!
//! Choices where the reference is silent (documented here, tested in `tests`):
//! - A card returned by [`VirtualCard::open`], [`VirtualCard::in_memory`] or
//!   [`VirtualCard::in_memory_other`] is already powered on (ISD selected). While powered off,
//!   [`VirtualCard::transmit`] answers nothing (an empty response).
//! - A command that needs a current EF when none fits (READ BINARY without a selected EF, VERIFY or
//!   COMPUTE DIGITAL SIGNATURE with `P2 = 80` and no PIN/key EF current) → `6985`. A PIN or key
//!   named by `P2` (`98/9B/97/9A`) or an SFI while the JPKI application is not current → `6A82`.
//! - GET CHALLENGE with `Le = 00` (or any Le above 255) returns 8 bytes.
//! - CHANGE REFERENCE DATA checks the new PIN's format: wrong length → `6700`, a character outside
//!   the PIN's alphabet → `6985`.
//! - A wrong VERIFY also clears that PIN's security state. Blocked PINs answer `6984` to every
//!   VERIFY, including the empty one.
//! - ISO commands take `CLA 00`, COMPUTE DIGITAL SIGNATURE takes `CLA 80`; the other CLA of the
//!   two → `6E00`.
//! - The reference's **\[uncertain\]** behaviours of the real card are fault modes, off by default
//!   ([`Fault::ShortForm`], [`Fault::WarmResetKeepsState`], [`Fault::PowerUp6F00`],
//!   [`Fault::EmptyVerify9000`]): by default a warm reset clears the security state, the first
//!   command after power-up is processed, and an empty VERIFY always answers `63Cx`.

#![forbid(unsafe_code)]

mod apdu;
mod commands;
mod der;
pub mod fault;
mod pki;
mod storage;
pub mod vpcd;

use apdu::{log_line, status, sw, with_status};
pub(crate) use commands::sha256_digest_info;

pub use fault::{CertDamage, CertFile, Fault};

use once_cell::sync::Lazy;
use pki::Pki;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::rand_core::{OsRng, RngCore};
use rsa::signature::hazmat::RandomizedPrehashSigner;
use rsa::signature::SignatureEncoding;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The authentication PIN of a new virtual card.
pub const DEFAULT_AUTH_PIN: &str = "1234";
/// The signature password of a new virtual card.
pub const DEFAULT_SIGN_PIN: &str = "JPKITEST1";
/// Name of the text state file (PINs and retry counters) in a card directory. Lines
/// `auth_pin=`, `sign_pin=`, `auth_tries=`, `sign_tries=`.
pub const STATE_FILE: &str = "state.txt";
/// Tries of the authentication PIN.
pub const AUTH_PIN_MAX_TRIES: u8 = 3;
/// Tries of the signature password.
pub const SIGN_PIN_MAX_TRIES: u8 = 5;

/// The AID of the JPKI application.
pub const AID_JPKI: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];
/// The AID of the 券面事項入力補助AP.
pub const AID_KENMEN_HOJO: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08];
/// The AID of the 券面事項確認AP.
pub const AID_KENMEN_KAKUNIN: [u8; 10] =
    [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02];
/// The AID of the GlobalPlatform issuer security domain.
pub const AID_ISD: [u8; 7] = [0xA0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00];

const ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];
const TOKEN_INFO: &[u8] = b"JPKIAPICCTOKEN2";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum App {
    Isd,
    Jpki,
    KenmenHojo,
    KenmenKakunin,
}

/// Applications in the order a prefix SELECT tries them.
const APPS: [(App, &[u8]); 4] = [
    (App::Jpki, &AID_JPKI),
    (App::KenmenHojo, &AID_KENMEN_HOJO),
    (App::KenmenKakunin, &AID_KENMEN_KAKUNIN),
    (App::Isd, &AID_ISD),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Key {
    Auth,
    Sign,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ef {
    AuthCert,
    AuthCaCert,
    SignCert,
    SignCaCert,
    TokenInfo,
    Presence,
    PrivateKey(Key),
    Pin(Key),
}

fn ef_by_fid(fid: u16) -> Option<Ef> {
    Some(match fid {
        0x000A => Ef::AuthCert,
        0x000B => Ef::AuthCaCert,
        0x0001 => Ef::SignCert,
        0x0002 => Ef::SignCaCert,
        0x0006 => Ef::TokenInfo,
        0x0008 => Ef::Presence,
        0x0017 => Ef::PrivateKey(Key::Auth),
        0x0018 => Ef::Pin(Key::Auth),
        0x001A => Ef::PrivateKey(Key::Sign),
        0x001B => Ef::Pin(Key::Sign),
        _ => return None,
    })
}

struct Pin {
    value: String,
    tries: u8,
    max: u8,
    verified: bool,
}

/// A certificate EF: the DER, then 0xFF filler (the EF is always larger than the certificate).
fn cert_ef(der: &[u8]) -> Vec<u8> {
    let size = (der.len() / 256 + 2) * 256;
    let mut ef = der.to_vec();
    ef.resize(size.max(2048), 0xFF);
    ef
}

static PKI: Lazy<Pki> = Lazy::new(pki::generate);
static PKI_OTHER: Lazy<Pki> = Lazy::new(pki::generate);

/// The virtual My Number Card (JPKI application, RSA-2048 keys, test PKI).
pub struct VirtualCard {
    pki: Pki,
    auth_cert_ef: Vec<u8>,
    auth_ca_ef: Vec<u8>,
    sign_cert_ef: Vec<u8>,
    sign_ca_ef: Vec<u8>,
    token_info_ef: Vec<u8>,
    auth: Pin,
    sign: Pin,
    powered: bool,
    app: App,
    ef: Option<u16>,
    log: Vec<String>,
    dir: Option<PathBuf>,
    latency: Duration,
    pss: PssBehaviour,
    /// Accepts short EF identifiers (READ BINARY P1=80|SFI, VERIFY/SIGN P2=80|SFI).
    sfi: bool,
    faults: Vec<Fault>,
    /// Command APDUs since the faults were set (for [`Fault::StatusAt`]).
    fault_count: usize,
    /// Data and status word still to be fetched with GET RESPONSE ([`Fault::GetResponse`]).
    pending: Option<(Vec<u8>, u16, u8)>,
    /// [`Fault::WrongLe`]: the last matching command was answered `6Cxx`.
    le_toggle: bool,
    /// [`Fault::RemoveAfterVerify`] fired: the card left the reader.
    pulled: bool,
    /// Powered up and no command since (for [`Fault::PowerUp6F00`]).
    fresh: bool,
}

/// How the card answers the PSS signing modes (P1 04 and 05). A real card's PSS support is
/// \[uncertain\] in the reference; these let tests show the module fails safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PssBehaviour {
    /// RSASSA-PSS, MGF1-SHA-256, salt 32.
    Normal,
    /// `6A86`, as a card without PSS would answer.
    Refuse,
    /// A signature that does not verify (one byte flipped).
    Corrupt,
}

impl VirtualCard {
    fn from_pki(pki: Pki, dir: Option<PathBuf>) -> VirtualCard {
        let mut token_info_ef = TOKEN_INFO.to_vec();
        token_info_ef.resize(32, b' ');
        token_info_ef.resize(160, 0);
        VirtualCard {
            auth_cert_ef: cert_ef(&pki.auth_cert),
            auth_ca_ef: cert_ef(&pki.auth_ca_cert),
            sign_cert_ef: cert_ef(&pki.sign_cert),
            sign_ca_ef: cert_ef(&pki.sign_ca_cert),
            token_info_ef,
            pki,
            auth: Pin {
                value: DEFAULT_AUTH_PIN.into(),
                tries: AUTH_PIN_MAX_TRIES,
                max: AUTH_PIN_MAX_TRIES,
                verified: false,
            },
            sign: Pin {
                value: DEFAULT_SIGN_PIN.into(),
                tries: SIGN_PIN_MAX_TRIES,
                max: SIGN_PIN_MAX_TRIES,
                verified: false,
            },
            powered: true,
            app: App::Isd,
            ef: None,
            log: Vec::new(),
            dir,
            latency: Duration::ZERO,
            pss: PssBehaviour::Normal,
            sfi: true,
            faults: Vec::new(),
            fault_count: 0,
            pending: None,
            le_toggle: false,
            pulled: false,
            fresh: false,
        }
    }

    /// An in-memory card (no persistence) built from a test PKI generated once per process.
    pub fn in_memory() -> VirtualCard {
        VirtualCard::from_pki(PKI.clone(), None)
    }

    /// Another in-memory card with a different PKI (different keys and serials).
    pub fn in_memory_other() -> VirtualCard {
        VirtualCard::from_pki(PKI_OTHER.clone(), None)
    }

    /// The answer to reset: `3B E0 00 FF 81 31 FE 45 14`, a contact ATR OpenSC knows.
    pub fn atr(&self) -> Vec<u8> {
        ATR.to_vec()
    }

    fn clear_security(&mut self) {
        self.auth.verified = false;
        self.sign.verified = false;
    }

    fn cold_state(&mut self) {
        self.clear_security();
        self.app = App::Isd;
        self.ef = None;
    }

    fn has_fault(&self, fault: &Fault) -> bool {
        self.faults.contains(fault)
    }

    /// Power on: the ISD is current, no PIN verified (unless [`Fault::PowerOffKeepsState`]).
    pub fn power_on(&mut self) {
        if self.has_fault(&Fault::PowerOffKeepsState) {
            self.ef = None;
        } else {
            self.cold_state();
        }
        self.powered = true;
        self.fresh = true;
        self.log.push("# power on".into());
    }

    /// Power off: all security state is lost (unless [`Fault::PowerOffKeepsState`]).
    pub fn power_off(&mut self) {
        if self.has_fault(&Fault::PowerOffKeepsState) {
            self.ef = None;
        } else {
            self.cold_state();
        }
        self.powered = false;
        self.log.push("# power off".into());
    }

    /// Warm reset: like power off + on, unless [`Fault::WarmResetKeepsState`] (or
    /// [`Fault::PowerOffKeepsState`]): then the security state and the current application stay.
    pub fn reset(&mut self) {
        if self.has_fault(&Fault::WarmResetKeepsState) || self.has_fault(&Fault::PowerOffKeepsState)
        {
            self.ef = None;
        } else {
            self.cold_state();
        }
        self.powered = true;
        self.log.push("# reset".into());
    }

    /// Process one command APDU; returns response data + SW1 SW2 (nothing while powered off).
    /// Retry counters and PINs are written to the card directory when they change.
    pub fn transmit(&mut self, apdu: &[u8]) -> Vec<u8> {
        if !self.powered {
            return Vec::new();
        }
        let before = (
            self.auth.tries,
            self.sign.tries,
            self.auth.value.clone(),
            self.sign.value.clone(),
        );
        self.fault_count += 1;
        let first_after_power_up = std::mem::take(&mut self.fresh);
        let resp = match self.fault_before(apdu) {
            _ if first_after_power_up && self.has_fault(&Fault::PowerUp6F00) => status(0x6F00),
            Some(r) => r,
            None => {
                let r = self.process(apdu);
                self.fault_after(apdu, r)
            }
        };
        let after = (
            self.auth.tries,
            self.sign.tries,
            self.auth.value.clone(),
            self.sign.value.clone(),
        );
        if before != after {
            if let Err(e) = self.save_state() {
                eprintln!("jpki virtual card: cannot save {STATE_FILE}: {e}");
            }
        }
        self.log.push(log_line(apdu, &resp));
        resp
    }

    /// One line per exchange: `<command hex> <response hex>` (VERIFY/CHANGE REFERENCE DATA data
    /// masked with `*`), and `# power on`, `# power off`, `# reset`.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Forget the log lines so far.
    pub fn clear_log(&mut self) {
        self.log.clear();
    }

    /// The authentication certificate (DER).
    pub fn auth_cert(&self) -> &[u8] {
        &self.pki.auth_cert
    }

    /// The signature certificate (DER).
    pub fn sign_cert(&self) -> &[u8] {
        &self.pki.sign_cert
    }

    /// The authentication CA certificate (DER).
    pub fn auth_ca_cert(&self) -> &[u8] {
        &self.pki.auth_ca_cert
    }

    /// The signature CA certificate (DER).
    pub fn sign_ca_cert(&self) -> &[u8] {
        &self.pki.sign_ca_cert
    }

    /// The current authentication PIN.
    pub fn auth_pin(&self) -> &str {
        &self.auth.value
    }

    /// The current signature password.
    pub fn sign_pin(&self) -> &str {
        &self.sign.value
    }

    /// Tries left: (authentication PIN, signature password).
    pub fn tries_left(&self) -> (u8, u8) {
        (self.auth.tries, self.sign.tries)
    }

    /// Makes the card refuse short EF identifiers with `6A86`, as a card that only knows
    /// `SELECT` + `P2=80` would (for tests of the module's fallback).
    pub fn set_sfi(&mut self, accept: bool) {
        self.sfi = accept;
    }

    /// Changes how the card answers the PSS modes (fault injection for tests).
    pub fn set_pss(&mut self, behaviour: PssBehaviour) {
        self.pss = behaviour;
    }

    /// Sets one fault mode (replacing any others); see [`Fault`].
    pub fn set_fault(&mut self, fault: Fault) {
        self.set_faults(vec![fault]);
    }

    /// Sets several fault modes at once (replacing any others).
    pub fn set_faults(&mut self, faults: Vec<Fault>) {
        self.faults = faults;
        self.fault_count = 0;
        self.pending = None;
        self.le_toggle = false;
        self.rebuild_cert_efs();
    }

    /// Back to a healthy card (PSS behaviour and latency untouched).
    pub fn clear_faults(&mut self) {
        self.set_faults(Vec::new());
    }

    /// Whether a [`Fault::RemoveAfterVerify`] pulled the card since the last call (the
    /// in-process reader and the vpcd runner then take the card out of the reader).
    pub fn take_pulled(&mut self) -> bool {
        std::mem::take(&mut self.pulled)
    }

    fn rebuild_cert_efs(&mut self) {
        self.auth_cert_ef = cert_ef(&self.pki.auth_cert);
        self.auth_ca_ef = cert_ef(&self.pki.auth_ca_cert);
        self.sign_cert_ef = cert_ef(&self.pki.sign_cert);
        self.sign_ca_ef = cert_ef(&self.pki.sign_ca_cert);
        for f in &self.faults {
            if let Fault::Cert { file, damage } = f {
                let ef = match file {
                    CertFile::Auth => &mut self.auth_cert_ef,
                    CertFile::AuthCa => &mut self.auth_ca_ef,
                    CertFile::Sign => &mut self.sign_cert_ef,
                    CertFile::SignCa => &mut self.sign_ca_ef,
                };
                fault::damage_cert(ef, *damage);
            }
        }
    }

    /// Delay the vpcd runner waits before each answer (simulates a slow card).
    pub fn set_latency(&mut self, d: Duration) {
        self.latency = d;
    }

    /// The delay set with [`VirtualCard::set_latency`].
    pub fn latency(&self) -> Duration {
        self.latency
    }
}

#[cfg(test)]
mod tests;
