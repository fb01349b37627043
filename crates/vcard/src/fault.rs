//! Fault injection in the virtual card: a misbehaving card or reader, for the reliability tests
//! (`src/backend/tests/reliability.rs`) and, from the command line, `jpki virtual-card --fault SPEC`.
//!
//! A fault changes how [`super::VirtualCard::transmit`] answers; the card's own state machine is
//! untouched, so clearing the fault gives the healthy card back (counters and PINs as the faulty
//! exchanges left them).

use super::apdu::{has_le, status, sw};
use super::{VirtualCard, AID_JPKI};
use std::time::Duration;

/// One of the card's certificate files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertFile {
    Auth,
    AuthCa,
    Sign,
    SignCa,
}

/// How a certificate file is damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertDamage {
    /// The DER header is intact but the body is garbage (bytes 4.. inverted).
    BogusDer,
    /// The outer length header says `0x82 len` (shorter or longer than the certificate).
    Length(u16),
    /// The file starts with a length form the module does not take (`30 84 ...`).
    LongLengthForm,
}

/// A fault mode of the virtual card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers `sw` (no data) to the `n`th command APDU after the fault is set (1 = the next),
    /// without processing it; once.
    StatusAt { n: usize, sw: u16 },
    /// Answers `sw` (no data) to every command with INS `ins`, without processing it.
    StatusFor { ins: u8, sw: u16 },
    /// Keeps only the first `keep` bytes of the answer (data + SW) to commands with INS `ins`.
    Truncate { ins: u8, keep: usize },
    /// Adds `extra` bytes before the status word of the answer to commands with INS `ins`.
    Oversize { ins: u8, extra: usize },
    /// Answers that carry data to commands with INS `ins` come as `61xx` and are fetched with
    /// GET RESPONSE (`00 C0 00 00 Le`) in chunks of at most `chunk` bytes.
    GetResponse { ins: u8, chunk: u8 },
    /// Every command with INS `ins` answers `61 01` and so does every GET RESPONSE: a chain that
    /// never ends.
    EndlessGetResponse { ins: u8 },
    /// A command with INS `ins` and an Le is first answered `6Cxx` (xx = the length it has), and
    /// answered normally when resent.
    WrongLe { ins: u8 },
    /// Every signature (all modes) comes back with one bit flipped: it does not verify.
    CorruptSignature,
    /// The answer to commands with INS `ins` comes `delay` late.
    Slow { ins: u8, delay: Duration },
    /// The card is pulled out after it processed a VERIFY that carried a PIN (the PIN is checked,
    /// the counter updated) and before the answer reaches the reader: the answer is lost.
    RemoveAfterVerify,
    /// A certificate file is damaged.
    Cert { file: CertFile, damage: CertDamage },
    /// [uncertain card behaviour] The short-EF-identifier forms (`READ BINARY P1=80|SFI`,
    /// `VERIFY P2=80|SFI`, `COMPUTE DIGITAL SIGNATURE P2=80|SFI`) are answered `sw` without being
    /// processed, as a card that does not know them might (`6A86`, `6A82`, `6981`, `6986`,
    /// `6700`, `6A87`, ...). Only for commands with INS `ins` if given, else for all three.
    ShortForm { ins: Option<u8>, sw: u16 },
    /// [uncertain card behaviour] A warm reset keeps the security state (and the current
    /// application): only a power-off clears it.
    WarmResetKeepsState,
    /// [uncertain card behaviour] The first command after power-up is answered `6F00` (not
    /// processed).
    PowerUp6F00,
    /// [uncertain card behaviour] An empty VERIFY answers `9000` while its PIN is verified
    /// ("unlocked, tries unknown") instead of `63Cx`.
    EmptyVerify9000,
    /// SELECT of any application other than JPKI (the ISD, the 券面事項入力補助AP) answers `6A82`:
    /// the card cannot be locked by leaving the JPKI application.
    NoOtherApps,
    /// Not a reported behaviour (tests the module's last check): neither a reset nor a power-off
    /// clears the security state.
    PowerOffKeepsState,
}

impl Fault {
    /// Parses the command-line form (`jpki virtual-card --fault SPEC`); numbers are hex for
    /// INS and SW, decimal otherwise:
    /// `status-at:N:SW`, `status:INS:SW`, `truncate:INS:KEEP`, `oversize:INS:EXTRA`,
    /// `get-response:INS:CHUNK`, `endless-get-response:INS`, `wrong-le:INS`,
    /// `corrupt-signature`, `slow:INS:MS`, `remove-after-verify`,
    /// `cert-bogus:auth|auth-ca|sign|sign-ca`, `cert-length:FILE:LEN`, `cert-long-form:FILE`,
    /// `short-form:SW`, `short-form:INS:SW`, `warm-reset-keeps-state`, `power-up-6f00`,
    /// `empty-verify-9000`, `no-other-apps`, `power-off-keeps-state`.
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let bad = || format!("bad fault spec {spec:?}");
        let hex8 = |s: &str| u8::from_str_radix(s, 16).map_err(|_| bad());
        let hex16 = |s: &str| u16::from_str_radix(s, 16).map_err(|_| bad());
        let dec = |s: &str| s.parse::<usize>().map_err(|_| bad());
        let file = |s: &str| match s {
            "auth" => Ok(CertFile::Auth),
            "auth-ca" => Ok(CertFile::AuthCa),
            "sign" => Ok(CertFile::Sign),
            "sign-ca" => Ok(CertFile::SignCa),
            _ => Err(bad()),
        };
        Ok(match parts.as_slice() {
            ["status-at", n, sw] => Fault::StatusAt {
                n: dec(n)?,
                sw: hex16(sw)?,
            },
            ["status", ins, sw] => Fault::StatusFor {
                ins: hex8(ins)?,
                sw: hex16(sw)?,
            },
            ["truncate", ins, keep] => Fault::Truncate {
                ins: hex8(ins)?,
                keep: dec(keep)?,
            },
            ["oversize", ins, extra] => Fault::Oversize {
                ins: hex8(ins)?,
                extra: dec(extra)?,
            },
            ["get-response", ins, chunk] => Fault::GetResponse {
                ins: hex8(ins)?,
                chunk: u8::try_from(dec(chunk)?).map_err(|_| bad())?,
            },
            ["endless-get-response", ins] => Fault::EndlessGetResponse { ins: hex8(ins)? },
            ["wrong-le", ins] => Fault::WrongLe { ins: hex8(ins)? },
            ["corrupt-signature"] => Fault::CorruptSignature,
            ["slow", ins, ms] => Fault::Slow {
                ins: hex8(ins)?,
                delay: Duration::from_millis(dec(ms)? as u64),
            },
            ["remove-after-verify"] => Fault::RemoveAfterVerify,
            ["cert-bogus", f] => Fault::Cert {
                file: file(f)?,
                damage: CertDamage::BogusDer,
            },
            ["cert-length", f, len] => Fault::Cert {
                file: file(f)?,
                damage: CertDamage::Length(u16::try_from(dec(len)?).map_err(|_| bad())?),
            },
            ["cert-long-form", f] => Fault::Cert {
                file: file(f)?,
                damage: CertDamage::LongLengthForm,
            },
            ["short-form", sw] => Fault::ShortForm {
                ins: None,
                sw: hex16(sw)?,
            },
            ["short-form", ins @ ("B0" | "b0" | "20" | "2A" | "2a"), sw] => Fault::ShortForm {
                ins: Some(hex8(ins)?),
                sw: hex16(sw)?,
            },
            ["warm-reset-keeps-state"] => Fault::WarmResetKeepsState,
            ["power-up-6f00"] => Fault::PowerUp6F00,
            ["empty-verify-9000"] => Fault::EmptyVerify9000,
            ["no-other-apps"] => Fault::NoOtherApps,
            ["power-off-keeps-state"] => Fault::PowerOffKeepsState,
            _ => return Err(bad()),
        })
    }
}

/// Damages a certificate EF's content (DER followed by filler).
pub(super) fn damage_cert(ef: &mut [u8], damage: CertDamage) {
    match damage {
        CertDamage::BogusDer => {
            for b in ef.iter_mut().skip(4) {
                *b = !*b;
            }
        }
        CertDamage::Length(len) => {
            ef[1] = 0x82;
            ef[2..4].copy_from_slice(&len.to_be_bytes());
        }
        CertDamage::LongLengthForm => {
            ef[1] = 0x84;
        }
    }
}

/// How the faults change the card's answers (see [`VirtualCard::transmit`]).
impl VirtualCard {
    /// Faults that answer instead of the card.
    pub(super) fn fault_before(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
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
    pub(super) fn fault_after(&mut self, apdu: &[u8], mut resp: Vec<u8>) -> Vec<u8> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_command_line_faults() {
        assert_eq!(
            Fault::parse("status-at:3:6F00"),
            Ok(Fault::StatusAt { n: 3, sw: 0x6F00 })
        );
        assert_eq!(
            Fault::parse("status:2A:6400"),
            Ok(Fault::StatusFor {
                ins: 0x2A,
                sw: 0x6400
            })
        );
        assert_eq!(
            Fault::parse("slow:20:1500"),
            Ok(Fault::Slow {
                ins: 0x20,
                delay: Duration::from_millis(1500)
            })
        );
        assert_eq!(
            Fault::parse("cert-length:sign:100"),
            Ok(Fault::Cert {
                file: CertFile::Sign,
                damage: CertDamage::Length(100)
            })
        );
        assert_eq!(
            Fault::parse("remove-after-verify"),
            Ok(Fault::RemoveAfterVerify)
        );
        assert_eq!(
            Fault::parse("short-form:6A87"),
            Ok(Fault::ShortForm {
                ins: None,
                sw: 0x6A87
            })
        );
        assert_eq!(
            Fault::parse("short-form:B0:6981"),
            Ok(Fault::ShortForm {
                ins: Some(0xB0),
                sw: 0x6981
            })
        );
        assert!(Fault::parse("short-form:A4:6981").is_err());
        assert_eq!(
            Fault::parse("warm-reset-keeps-state"),
            Ok(Fault::WarmResetKeepsState)
        );
        assert_eq!(Fault::parse("power-up-6f00"), Ok(Fault::PowerUp6F00));
        assert_eq!(
            Fault::parse("empty-verify-9000"),
            Ok(Fault::EmptyVerify9000)
        );
        assert_eq!(Fault::parse("no-other-apps"), Ok(Fault::NoOtherApps));
        assert_eq!(
            Fault::parse("power-off-keeps-state"),
            Ok(Fault::PowerOffKeepsState)
        );
        assert!(Fault::parse("status:2A").is_err());
        assert!(Fault::parse("cert-bogus:other").is_err());
        assert!(Fault::parse("get-response:B0:300").is_err());
    }
}
