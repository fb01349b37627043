//! Fault injection in the virtual card: a misbehaving card or reader, for the reliability tests
//! (`src/reliability_tests.rs`) and, from the command line, `jpki virtual-card --fault SPEC`.
//!
//! A fault changes how [`super::VirtualCard::transmit`] answers; the card's own state machine is
//! untouched, so clearing the fault gives the healthy card back (counters and PINs as the faulty
//! exchanges left them).

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
}

impl Fault {
    /// Parses the command-line form (`jpki virtual-card --fault SPEC`); numbers are hex for
    /// INS and SW, decimal otherwise:
    /// `status-at:N:SW`, `status:INS:SW`, `truncate:INS:KEEP`, `oversize:INS:EXTRA`,
    /// `get-response:INS:CHUNK`, `endless-get-response:INS`, `wrong-le:INS`,
    /// `corrupt-signature`, `slow:INS:MS`, `remove-after-verify`,
    /// `cert-bogus:auth|auth-ca|sign|sign-ca`, `cert-length:FILE:LEN`, `cert-long-form:FILE`.
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
        assert!(Fault::parse("status:2A").is_err());
        assert!(Fault::parse("cert-bogus:other").is_err());
        assert!(Fault::parse("get-response:B0:300").is_err());
    }
}
