//! jpki-card: the My Number Card's JPKI application, below PKCS#11. A transport seam
//! ([`CardSystem`], [`CardChannel`], [`Transaction`]) with a PC/SC implementation ([`pcsc`]) and
//! an in-process one (`inproc`, feature `inproc`) for tests; APDU framing ([`apdu`]); the JPKI
//! application's operations ([`jpki`]); a bound card ([`BoundCard`]) that runs each operation in
//! one transaction and never leaves the card unlocked; certificates ([`cert`]), read with the
//! `der` crate ([`der`]); the errors ([`Error`]); the log ([`log`]), which reads no settings (the
//! module's configuration hands it level and place); buffers for secrets ([`secret`]).
//!
//! Used by the PKCS#11 module (`jpki-pkcs11`) and the `jpki` command (`jpki-cli`).

// Unsafe code only in `secret` (page-aligned, locked, not-dumped buffers), each block explained.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod apdu;
mod bound;
pub mod cert;
pub mod der;
pub mod error;
#[cfg(any(test, feature = "inproc"))]
pub mod inproc;
pub mod jpki;
pub mod log;
pub mod pcsc;
pub mod secret;

#[cfg(any(test, feature = "inproc"))]
pub use bound::forget_refused_pins;
pub use bound::BoundCard;
pub use error::Error;

/// Presence of a card in a reader, as the reader reports it (no card I/O).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderStatus {
    /// A card is in the reader.
    pub present: bool,
    /// Changes whenever a card is inserted or removed (PC/SC event counter).
    pub events: u32,
}

/// The readers of the machine.
pub trait CardSystem: Send + Sync {
    /// Names of the readers now attached. An unavailable service gives an empty list.
    fn list_readers(&self) -> Vec<String>;
    /// Whether a card is present in `reader`, without talking to the card.
    fn reader_status(&self, reader: &str) -> ReaderStatus;
    /// Connects to the card in `reader` (shared mode).
    fn connect(&self, reader: &str) -> Result<Box<dyn CardChannel>, Error>;
}

/// A connection to one card.
pub trait CardChannel: Send {
    /// Starts an exclusive transaction: no other process can talk to the card until it ends
    /// (when the returned value is dropped). Reconnects transparently if another process reset
    /// the card since the last transaction.
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, Error>;
    /// Powers the card down and up again (PC/SC: reconnecting with `SCARD_UNPOWER_CARD`), which
    /// clears every security state. Only when [`Transaction::end_unpowered`] failed: unlike it,
    /// this happens after the transaction ended, when another process may reach the card first.
    fn unpower(&mut self) -> Result<(), Error>;
    /// Disconnects, leaving the card as it is (never an implicit reset).
    fn disconnect(self: Box<Self>);
}

/// Sends APDUs inside a transaction. Dropping it ends the transaction leaving the card as it is.
pub trait Transaction {
    /// Sends one command APDU and returns the raw response (data followed by SW1 SW2). The
    /// transport keeps no copy of either (the caller, `apdu::Exchange`, wipes the returned
    /// buffer): they may hold a PIN or personal data.
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, Error>;

    /// Ends the transaction with the card unpowered: the card is powered down (and up again)
    /// *before* the lock is released (PC/SC: `SCardEndTransaction(SCARD_UNPOWER_CARD)`), so no
    /// other process can talk to it between the last command and the power-off. A power-off
    /// clears every security state of the card; a warm reset may not (**\[uncertain\]**, one
    /// report). Last resort, when the card cannot be locked by leaving the JPKI application.
    ///
    /// A transport that cannot do this answers an error (the default); the caller then unpowers
    /// the card through [`CardChannel::unpower`] and checks that it is locked.
    fn end_unpowered(self: Box<Self>) -> Result<(), Error> {
        Err(Error::Transport(
            "this transport cannot unpower the card inside a transaction".into(),
        ))
    }
}
