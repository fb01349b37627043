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
//! - The reference's **[uncertain]** behaviours of the real card are fault modes, off by default
//!   ([`Fault::ShortForm`], [`Fault::WarmResetKeepsState`], [`Fault::PowerUp6F00`],
//!   [`Fault::EmptyVerify9000`]): by default a warm reset clears the security state, the first
//!   command after power-up is processed, and an empty VERIFY always answers `63Cx`.

mod der;
pub mod fault;
mod pki;
pub mod vpcd;

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

/// Status words.
mod sw {
    pub const OK: u16 = 0x9000;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const INTERNAL_EF: u16 = 0x6981;
    pub const SECURITY: u16 = 0x6982;
    pub const BLOCKED: u16 = 0x6984;
    pub const CONDITIONS: u16 = 0x6985;
    pub const NOT_FOUND: u16 = 0x6A82;
    pub const BAD_P1P2: u16 = 0x6A86;
    pub const OFFSET: u16 = 0x6B00;
    pub const BAD_INS: u16 = 0x6D00;
    pub const BAD_CLA: u16 = 0x6E00;
}

/// A parsed command APDU.
struct Apdu<'a> {
    ins: u8,
    p1: u8,
    p2: u8,
    data: &'a [u8],
    /// Ne: `00` → 256, extended `00 00` → 65536.
    le: Option<usize>,
}

fn parse(b: &[u8]) -> Result<Apdu<'_>, u16> {
    if b.len() < 4 {
        return Err(sw::WRONG_LENGTH);
    }
    let (ins, p1, p2) = (b[1], b[2], b[3]);
    let body = &b[4..];
    let short_ne = |x: u8| if x == 0 { 256 } else { usize::from(x) };
    let ext_ne = |h: u8, l: u8| match u16::from_be_bytes([h, l]) {
        0 => 65536,
        n => usize::from(n),
    };
    let (data, le) = match body.len() {
        0 => (&body[..0], None),
        1 => (&body[..0], Some(short_ne(body[0]))),
        _ if body[0] != 0 => {
            let lc = usize::from(body[0]);
            match body.len() - 1 {
                n if n == lc => (&body[1..], None),
                n if n == lc + 1 => (&body[1..=lc], Some(short_ne(body[lc + 1]))),
                _ => return Err(sw::WRONG_LENGTH),
            }
        }
        3 => (&body[..0], Some(ext_ne(body[1], body[2]))),
        n if n > 3 => {
            let lc = usize::from(u16::from_be_bytes([body[1], body[2]]));
            match n - 3 {
                m if m == lc && lc > 0 => (&body[3..], None),
                m if m == lc + 2 && lc > 0 => {
                    (&body[3..3 + lc], Some(ext_ne(body[3 + lc], body[4 + lc])))
                }
                _ => return Err(sw::WRONG_LENGTH),
            }
        }
        _ => return Err(sw::WRONG_LENGTH),
    };
    Ok(Apdu {
        ins,
        p1,
        p2,
        data,
        le,
    })
}

fn status(sw: u16) -> Vec<u8> {
    sw.to_be_bytes().to_vec()
}

fn with_status(mut data: Vec<u8>, sw: u16) -> Vec<u8> {
    data.extend_from_slice(&sw.to_be_bytes());
    data
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
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
/// [uncertain] in the reference; these let tests show the module fails safe.
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

    /// Load the card kept in `dir`, or create a new one there (fresh test PKI, counters full).
    /// Retry counters (and PINs after CHANGE REFERENCE DATA) are persisted in `dir` on every
    /// change, so they survive restarts. Files in dir: `auth.crt`, `auth-ca.crt`, `sign.crt`,
    /// `sign-ca.crt` (DER), `auth.key`, `sign.key` (PKCS#1 or PKCS#8 DER), and [`STATE_FILE`].
    pub fn open(dir: &Path) -> io::Result<VirtualCard> {
        const FILES: [&str; 6] = [
            "auth.crt",
            "auth-ca.crt",
            "sign.crt",
            "sign-ca.crt",
            "auth.key",
            "sign.key",
        ];
        std::fs::create_dir_all(dir)?;
        let present = FILES.iter().filter(|f| dir.join(f).exists()).count();
        let pki = if present == 0 {
            let pki = pki::generate();
            let write_key = |name: &str, key: &RsaPrivateKey| -> io::Result<()> {
                let der = key.to_pkcs1_der().map_err(invalid)?;
                write_atomic(&dir.join(name), der.as_bytes())
            };
            write_key("auth.key", &pki.auth_key)?;
            write_key("sign.key", &pki.sign_key)?;
            write_atomic(&dir.join("auth.crt"), &pki.auth_cert)?;
            write_atomic(&dir.join("auth-ca.crt"), &pki.auth_ca_cert)?;
            write_atomic(&dir.join("sign.crt"), &pki.sign_cert)?;
            write_atomic(&dir.join("sign-ca.crt"), &pki.sign_ca_cert)?;
            pki
        } else if present < FILES.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: incomplete virtual card (need {})",
                    dir.display(),
                    FILES.join(", ")
                ),
            ));
        } else {
            let read_key = |name: &str| -> io::Result<RsaPrivateKey> {
                let der = std::fs::read(dir.join(name))?;
                RsaPrivateKey::from_pkcs1_der(&der)
                    .or_else(|_| RsaPrivateKey::from_pkcs8_der(&der))
                    .map_err(|e| invalid(format!("{name}: {e}")))
            };
            Pki {
                auth_key: read_key("auth.key")?,
                sign_key: read_key("sign.key")?,
                auth_cert: std::fs::read(dir.join("auth.crt"))?,
                auth_ca_cert: std::fs::read(dir.join("auth-ca.crt"))?,
                sign_cert: std::fs::read(dir.join("sign.crt"))?,
                sign_ca_cert: std::fs::read(dir.join("sign-ca.crt"))?,
            }
        };
        let mut card = VirtualCard::from_pki(pki, Some(dir.to_path_buf()));
        match std::fs::read_to_string(dir.join(STATE_FILE)) {
            Ok(text) => card.load_state(&text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => card.save_state()?,
            Err(e) => return Err(e),
        }
        Ok(card)
    }

    /// An in-memory card (no persistence) built from a test PKI generated once per process.
    pub fn in_memory() -> VirtualCard {
        VirtualCard::from_pki(PKI.clone(), None)
    }

    /// Another in-memory card with a different PKI (different keys and serials).
    pub fn in_memory_other() -> VirtualCard {
        VirtualCard::from_pki(PKI_OTHER.clone(), None)
    }

    fn load_state(&mut self, text: &str) -> io::Result<()> {
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| invalid(format!("{STATE_FILE}: bad line {line:?}")))?;
            let tries = |max: u8| -> io::Result<u8> {
                v.parse::<u8>()
                    .ok()
                    .filter(|t| *t <= max)
                    .ok_or_else(|| invalid(format!("{STATE_FILE}: bad {k}")))
            };
            match k {
                "auth_pin" => self.auth.value = v.to_string(),
                "sign_pin" => self.sign.value = v.to_string(),
                "auth_tries" => self.auth.tries = tries(self.auth.max)?,
                "sign_tries" => self.sign.tries = tries(self.sign.max)?,
                _ => return Err(invalid(format!("{STATE_FILE}: unknown key {k}"))),
            }
        }
        Ok(())
    }

    fn save_state(&self) -> io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let text = format!(
            "# jpki virtual card: PINs and retry counters\nauth_pin={}\nsign_pin={}\nauth_tries={}\nsign_tries={}\n",
            self.auth.value, self.sign.value, self.auth.tries, self.sign.tries
        );
        write_atomic(&dir.join(STATE_FILE), text.as_bytes())
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

    /// Faults that answer instead of the card.
    fn fault_before(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
        let ins = *apdu.get(1)?;
        if ins == 0xC0 {
            if self
                .faults
                .iter()
                .any(|f| matches!(f, Fault::EndlessGetResponse { .. }))
            {
                return Some(vec![0x61, 0x01]);
            }
            if let Some((mut data, sw, chunk)) = self.pending.take() {
                let le = match apdu.get(4) {
                    Some(0) | None => 256,
                    Some(n) => usize::from(*n),
                };
                let n = le.min(usize::from(chunk).max(1)).min(data.len());
                let mut out: Vec<u8> = data.drain(..n).collect();
                if data.is_empty() {
                    out.extend_from_slice(&sw.to_be_bytes());
                } else {
                    let next = data.len().min(usize::from(chunk).max(1)).min(255) as u8;
                    out.extend_from_slice(&[0x61, next]);
                    self.pending = Some((data, sw, chunk));
                }
                return Some(out);
            }
        }
        let count = self.fault_count;
        let short_form = match (ins, apdu.get(2), apdu.get(3)) {
            (0xB0, Some(p1), _) => p1 & 0x80 != 0,
            (0x20 | 0x2A, _, Some(p2)) => p2 & 0x80 != 0 && *p2 != 0x80,
            _ => false,
        };
        let other_app = ins == 0xA4
            && apdu.get(2) == Some(&0x04)
            && apdu.get(5..).is_some_and(|aid| aid != AID_JPKI);
        self.faults.iter().find_map(|f| match *f {
            Fault::StatusAt { n, sw } if n == count => Some(status(sw)),
            Fault::StatusFor { ins: i, sw } if i == ins => Some(status(sw)),
            Fault::ShortForm { ins: i, sw } if short_form && i.unwrap_or(ins) == ins => {
                Some(status(sw))
            }
            Fault::NoOtherApps if other_app => Some(status(sw::NOT_FOUND)),
            _ => None,
        })
    }

    /// Faults that change the card's answer.
    fn fault_after(&mut self, apdu: &[u8], mut resp: Vec<u8>) -> Vec<u8> {
        let Some(&ins) = apdu.get(1) else {
            return resp;
        };
        for f in self.faults.clone() {
            match f {
                Fault::Truncate { ins: i, keep } if i == ins => resp.truncate(keep),
                Fault::Oversize { ins: i, extra } if i == ins && resp.len() >= 2 => {
                    let at = resp.len() - 2;
                    resp.splice(at..at, std::iter::repeat(0x5A).take(extra));
                }
                Fault::GetResponse { ins: i, chunk } if i == ins && resp.len() > 2 => {
                    let (data, sw) = resp.split_at(resp.len() - 2);
                    let sw = u16::from_be_bytes([sw[0], sw[1]]);
                    let first = data.len().min(usize::from(chunk).max(1)).min(255) as u8;
                    self.pending = Some((data.to_vec(), sw, chunk));
                    resp = vec![0x61, first];
                }
                Fault::EndlessGetResponse { ins: i } if i == ins => resp = vec![0x61, 0x01],
                Fault::WrongLe { ins: i } if i == ins && resp.len() > 2 && has_le(apdu) => {
                    self.le_toggle = !self.le_toggle;
                    if self.le_toggle {
                        resp = vec![0x6C, (resp.len() - 2) as u8];
                    }
                }
                Fault::CorruptSignature if ins == 0x2A && resp.len() > 102 => resp[100] ^= 0x01,
                Fault::Slow { ins: i, delay } if i == ins => std::thread::sleep(delay),
                Fault::RemoveAfterVerify if ins == 0x20 && apdu.len() > 5 => {
                    self.faults.retain(|f| *f != Fault::RemoveAfterVerify);
                    self.pulled = true;
                    self.power_off();
                    return Vec::new();
                }
                _ => {}
            }
        }
        resp
    }

    /// Delay the vpcd runner waits before each answer (simulates a slow card).
    pub fn set_latency(&mut self, d: Duration) {
        self.latency = d;
    }

    /// The delay set with [`VirtualCard::set_latency`].
    pub fn latency(&self) -> Duration {
        self.latency
    }

    fn process(&mut self, b: &[u8]) -> Vec<u8> {
        if b.len() < 4 {
            return status(sw::WRONG_LENGTH);
        }
        let (cla, ins) = (b[0], b[1]);
        if cla != 0x00 && cla != 0x80 {
            return status(sw::BAD_CLA);
        }
        let wanted_cla = match ins {
            0xA4 | 0xB0 | 0x20 | 0x24 | 0x84 => 0x00,
            0x2A => 0x80,
            _ => return status(sw::BAD_INS),
        };
        if cla != wanted_cla {
            return status(sw::BAD_CLA);
        }
        let a = match parse(b) {
            Ok(a) => a,
            Err(e) => return status(e),
        };
        let r = match a.ins {
            0xA4 => self.select(&a).map(|()| Vec::new()),
            0xB0 => self.read_binary(&a),
            0x20 => self.verify(&a).map(|()| Vec::new()),
            0x24 => self.change_pin(&a).map(|()| Vec::new()),
            0x2A => self.sign(&a),
            0x84 => self.challenge(&a),
            _ => Err(sw::BAD_INS),
        };
        match r {
            Ok(data) => with_status(data, sw::OK),
            Err(e) => status(e),
        }
    }

    fn select(&mut self, a: &Apdu<'_>) -> Result<(), u16> {
        if a.p2 != 0x0C && a.p2 != 0x00 && a.p1 != 0x00 {
            return Err(sw::BAD_P1P2);
        }
        match a.p1 {
            0x04 => {
                if a.data.is_empty() || a.data.len() > 16 {
                    return Err(sw::WRONG_LENGTH);
                }
                let found = APPS
                    .iter()
                    .find(|(_, aid)| *aid == a.data)
                    .or_else(|| {
                        APPS.iter()
                            .find(|(_, aid)| a.data.len() >= 5 && aid.starts_with(a.data))
                    })
                    .map(|(app, _)| *app)
                    .ok_or(sw::NOT_FOUND)?;
                if found != self.app {
                    self.clear_security();
                }
                self.app = found;
                self.ef = None;
                Ok(())
            }
            0x02 => {
                if a.data.len() != 2 {
                    return Err(sw::WRONG_LENGTH);
                }
                let fid = u16::from_be_bytes([a.data[0], a.data[1]]);
                if self.app != App::Jpki || ef_by_fid(fid).is_none() {
                    return Err(sw::NOT_FOUND);
                }
                self.ef = Some(fid);
                Ok(())
            }
            // No selectable MF: SELECT 3F00 (or any FID this way) is "not found".
            0x00 if !a.data.is_empty() => Err(sw::NOT_FOUND),
            _ => Err(sw::BAD_P1P2),
        }
    }

    fn read_binary(&mut self, a: &Apdu<'_>) -> Result<Vec<u8>, u16> {
        if !a.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        let le = a.le.ok_or(sw::WRONG_LENGTH)?;
        let (fid, offset) = if a.p1 & 0x80 != 0 {
            if a.p1 & 0x60 != 0 || !self.sfi {
                return Err(sw::BAD_P1P2);
            }
            let fid = u16::from(a.p1 & 0x1F);
            if self.app != App::Jpki || ef_by_fid(fid).is_none() {
                return Err(sw::NOT_FOUND);
            }
            self.ef = Some(fid);
            (fid, usize::from(a.p2))
        } else {
            let fid = self.ef.ok_or(sw::CONDITIONS)?;
            (fid, usize::from(a.p1) << 8 | usize::from(a.p2))
        };
        let content: &[u8] = match ef_by_fid(fid).ok_or(sw::NOT_FOUND)? {
            Ef::AuthCert => &self.auth_cert_ef,
            Ef::AuthCaCert => &self.auth_ca_ef,
            Ef::SignCert if !self.sign.verified => return Err(sw::SECURITY),
            Ef::SignCert => &self.sign_cert_ef,
            Ef::SignCaCert => &self.sign_ca_ef,
            Ef::TokenInfo => &self.token_info_ef,
            Ef::Presence => &[0x8F, 0x8F, 0x00],
            Ef::PrivateKey(_) | Ef::Pin(_) => return Err(sw::INTERNAL_EF),
        };
        if offset >= content.len() {
            return Err(sw::OFFSET);
        }
        let n = le.min(content.len() - offset);
        Ok(content[offset..offset + n].to_vec())
    }

    /// The PIN named by VERIFY's / CHANGE REFERENCE DATA's P2.
    fn pin_ref(&self, p2: u8) -> Result<Key, u16> {
        let key = match p2 {
            0x80 => match self.ef.and_then(ef_by_fid) {
                Some(Ef::Pin(k)) if self.app == App::Jpki => return Ok(k),
                _ => return Err(sw::CONDITIONS),
            },
            0x98 if self.sfi => Key::Auth,
            0x9B if self.sfi => Key::Sign,
            _ => return Err(sw::BAD_P1P2),
        };
        if self.app != App::Jpki {
            return Err(sw::NOT_FOUND);
        }
        Ok(key)
    }

    fn pin_mut(&mut self, key: Key) -> &mut Pin {
        match key {
            Key::Auth => &mut self.auth,
            Key::Sign => &mut self.sign,
        }
    }

    fn verify(&mut self, a: &Apdu<'_>) -> Result<(), u16> {
        if a.p1 != 0x00 {
            return Err(sw::BAD_P1P2);
        }
        let key = self.pin_ref(a.p2)?;
        let empty_9000 = self.has_fault(&Fault::EmptyVerify9000);
        let pin = self.pin_mut(key);
        if pin.tries == 0 {
            return Err(sw::BLOCKED);
        }
        if a.data.is_empty() {
            if pin.verified && empty_9000 {
                return Ok(());
            }
            return Err(0x63C0 | u16::from(pin.tries));
        }
        if a.data == pin.value.as_bytes() {
            pin.tries = pin.max;
            pin.verified = true;
            Ok(())
        } else {
            pin.tries -= 1;
            pin.verified = false;
            Err(0x63C0 | u16::from(pin.tries))
        }
    }

    fn change_pin(&mut self, a: &Apdu<'_>) -> Result<(), u16> {
        if a.p1 != 0x01 {
            return Err(sw::BAD_P1P2);
        }
        let key = self.pin_ref(a.p2)?;
        let pin = self.pin_mut(key);
        if pin.tries == 0 {
            return Err(sw::BLOCKED);
        }
        if a.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        if !pin.verified {
            return Err(sw::SECURITY);
        }
        let (lengths, allowed): (std::ops::RangeInclusive<usize>, fn(&u8) -> bool) = match key {
            Key::Auth => (4..=4, |c| c.is_ascii_digit()),
            Key::Sign => (6..=16, |c| c.is_ascii_digit() || c.is_ascii_uppercase()),
        };
        if !lengths.contains(&a.data.len()) {
            return Err(sw::WRONG_LENGTH);
        }
        if !a.data.iter().all(allowed) {
            return Err(sw::CONDITIONS);
        }
        pin.value = String::from_utf8(a.data.to_vec()).map_err(|_| sw::CONDITIONS)?;
        Ok(())
    }

    fn sign(&mut self, a: &Apdu<'_>) -> Result<Vec<u8>, u16> {
        if a.p1 > 0x05 {
            return Err(sw::BAD_P1P2);
        }
        let key = match a.p2 {
            0x80 => match self.ef.and_then(ef_by_fid) {
                Some(Ef::PrivateKey(k)) if self.app == App::Jpki => k,
                _ => return Err(sw::CONDITIONS),
            },
            0x97 | 0x9A if !self.sfi => return Err(sw::BAD_P1P2),
            0x97 if self.app == App::Jpki => Key::Auth,
            0x9A if self.app == App::Jpki => Key::Sign,
            0x97 | 0x9A => return Err(sw::NOT_FOUND),
            _ => return Err(sw::BAD_P1P2),
        };
        let n = a.data.len();
        let length_ok = match a.p1 {
            0x00 => (1..=245).contains(&n),
            0x02 | 0x04 => n == 32,
            _ => (1..=255).contains(&n),
        };
        if !length_ok {
            return Err(sw::WRONG_LENGTH);
        }
        let (verified, rsa_key) = match key {
            Key::Auth => (self.auth.verified, &self.pki.auth_key),
            Key::Sign => (self.sign.verified, &self.pki.sign_key),
        };
        if !verified {
            return Err(sw::SECURITY);
        }
        let is_pss = matches!(a.p1, 0x04 | 0x05);
        if is_pss && self.pss == PssBehaviour::Refuse {
            return Err(sw::BAD_P1P2);
        }
        let mut sig = sign_mode(rsa_key, a.p1, a.data).ok_or(sw::CONDITIONS)?;
        if is_pss && self.pss == PssBehaviour::Corrupt {
            sig[100] ^= 0x01;
        }
        Ok(sig)
    }

    fn challenge(&mut self, a: &Apdu<'_>) -> Result<Vec<u8>, u16> {
        if a.p1 != 0 || a.p2 != 0 {
            return Err(sw::BAD_P1P2);
        }
        if !a.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        let n = match a.le.ok_or(sw::WRONG_LENGTH)? {
            n if n > 255 => 8,
            n => n,
        };
        let mut out = vec![0u8; n];
        OsRng.fill_bytes(&mut out);
        Ok(out)
    }
}

/// Whether a command APDU (short form) ends with an Le.
fn has_le(apdu: &[u8]) -> bool {
    match apdu.len() {
        0..=4 => false,
        5 => true,
        n => n == 6 + usize::from(apdu[4]),
    }
}

/// The DER DigestInfo prefix of a SHA-256 hash.
pub(crate) const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// A SHA-256 DigestInfo around `hash`.
pub(crate) fn sha256_digest_info(hash: &[u8]) -> Vec<u8> {
    [&SHA256_DIGEST_INFO_PREFIX[..], hash].concat()
}

/// The six COMPUTE DIGITAL SIGNATURE modes (P1 00..05).
fn sign_mode(key: &RsaPrivateKey, p1: u8, data: &[u8]) -> Option<Vec<u8>> {
    let pkcs1 = |padding: Pkcs1v15Sign, m: &[u8]| key.sign_with_rng(&mut OsRng, padding, m).ok();
    let pss = |hash: &[u8]| -> Option<Vec<u8>> {
        let signer = rsa::pss::SigningKey::<Sha256>::new_with_salt_len(key.clone(), 32);
        signer
            .sign_prehash_with_rng(&mut OsRng, hash)
            .ok()
            .map(|s| s.to_vec())
    };
    match p1 {
        0x00 => pkcs1(Pkcs1v15Sign::new_unprefixed(), data),
        0x01 => pkcs1(Pkcs1v15Sign::new_unprefixed(), &Sha256::digest(data)),
        0x02 => pkcs1(Pkcs1v15Sign::new_unprefixed(), &sha256_digest_info(data)),
        0x03 => pkcs1(
            Pkcs1v15Sign::new_unprefixed(),
            &sha256_digest_info(&Sha256::digest(data)),
        ),
        0x04 => pss(data),
        0x05 => pss(&Sha256::digest(data)),
        _ => None,
    }
}

/// The log line of one exchange; PIN bytes of VERIFY and CHANGE REFERENCE DATA are masked.
fn log_line(cmd: &[u8], resp: &[u8]) -> String {
    let masked = matches!(cmd.get(1), Some(0x20 | 0x24)) && cmd.len() > 5;
    let cmd_hex = if masked {
        format!("{}{}", hex(&cmd[..5]), "*".repeat(2 * (cmd.len() - 5)))
    } else {
        hex(cmd)
    };
    format!("{cmd_hex} {}", hex(resp))
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Write a file through a temporary name and a rename, so a crash never leaves half a file.
fn write_atomic(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests;
