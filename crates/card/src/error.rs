//! What the card layer can fail with ([`Error`]). The PKCS#11 module turns it into a `CKR_*`
//! code according to what it was doing (the same status word means different things in
//! `C_Login` and `C_Sign`).

use std::fmt;

/// What the card layer can fail with. Never carries a PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The card answered with a status word other than the one expected.
    Status(u16),
    /// The card was removed (or the reader disappeared) during or before the call.
    CardRemoved,
    /// No card in the reader.
    NoCard,
    /// The card was reset by another process; the operation did not run.
    CardReset,
    /// The PC/SC service is not running or went away.
    NoService,
    /// Any other transport failure (reader timeout, protocol error, ...).
    Transport(String),
    /// The card's answer did not parse (short, oversized, bad DER, ...).
    Malformed(&'static str),
    /// The card is not a My Number Card (the JPKI application cannot be selected).
    NotJpki,
    /// The card could not be confirmed locked after the module unpowered it (it may still be
    /// unlocked: the module does not assume otherwise).
    NotLocked,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status(sw) => write!(f, "card answered status word {sw:04X}"),
            Error::CardRemoved => f.write_str("card removed"),
            Error::NoCard => f.write_str("no card in the reader"),
            Error::CardReset => f.write_str("card reset by another process"),
            Error::NoService => f.write_str("PC/SC service not available"),
            Error::Transport(s) => write!(f, "reader error: {s}"),
            Error::Malformed(s) => write!(f, "malformed card answer: {s}"),
            Error::NotJpki => f.write_str("not a My Number Card (no JPKI application)"),
            Error::NotLocked => f.write_str("the card could not be confirmed locked"),
        }
    }
}

impl std::error::Error for Error {}
