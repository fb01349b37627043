//! The PC/SC transport (pcsc-lite through the `pcsc` crate): the production [`CardSystem`].
//!
//! - The context is established lazily and re-established when pcscd goes away and comes back.
//! - Cards are opened in shared mode; every multi-APDU sequence runs in a transaction.
//! - A card reset by another process is noticed when a transaction begins: the module reconnects
//!   (leaving the card as it is) and begins again.
//! - Disconnection always uses `SCARD_LEAVE_CARD`: `pcsc::Card`'s `Drop` would reset the card.

use crate::error::Error;
use crate::{CardChannel, CardSystem, ReaderStatus, Transaction};
use parking_lot::Mutex;
use pcsc::{Card, Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};
use std::ffi::CString;
use std::time::Duration;
use zeroize::Zeroize;

fn map_err(e: pcsc::Error) -> Error {
    use pcsc::Error as E;
    match e {
        E::RemovedCard | E::NoSmartcard | E::ReaderUnavailable | E::UnknownReader => {
            Error::CardRemoved
        }
        E::ResetCard => Error::CardReset,
        E::NoService | E::ServiceStopped | E::InvalidHandle | E::NoReadersAvailable => {
            Error::NoService
        }
        other => Error::Transport(other.to_string()),
    }
}

/// The PC/SC readers of this machine.
#[derive(Default)]
pub struct PcscSystem {
    ctx: Mutex<Option<Context>>,
}

impl PcscSystem {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` with a valid context, establishing (or re-establishing once, after pcscd
    /// restarted) as needed.
    fn with_ctx<T>(&self, f: impl Fn(&Context) -> Result<T, pcsc::Error>) -> Result<T, Error> {
        let mut guard = self.ctx.lock();
        for _ in 0..2 {
            if guard.is_none() {
                *guard = Some(Context::establish(Scope::User).map_err(map_err)?);
            }
            let ctx = guard.as_ref().expect("just established");
            match f(ctx) {
                Err(
                    pcsc::Error::NoService
                    | pcsc::Error::ServiceStopped
                    | pcsc::Error::InvalidHandle,
                ) => {
                    // pcscd restarted: the old context is dead. Release it and try once more.
                    *guard = None;
                }
                other => return other.map_err(map_err),
            }
        }
        Err(Error::NoService)
    }
}

impl CardSystem for PcscSystem {
    fn list_readers(&self) -> Vec<String> {
        match self.with_ctx(|ctx| ctx.list_readers_owned()) {
            Ok(names) => names
                .into_iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn reader_status(&self, reader: &str) -> ReaderStatus {
        let Ok(name) = CString::new(reader) else {
            return ReaderStatus {
                present: false,
                events: 0,
            };
        };
        let res = self.with_ctx(|ctx| {
            let mut states = [ReaderState::new(name.clone(), State::UNAWARE)];
            ctx.get_status_change(Duration::ZERO, &mut states)?;
            let s = &states[0];
            Ok((s.event_state(), s.event_count()))
        });
        match res {
            Ok((state, events)) => ReaderStatus {
                present: state.contains(State::PRESENT) && !state.contains(State::MUTE),
                events,
            },
            Err(_) => ReaderStatus {
                present: false,
                events: 0,
            },
        }
    }

    fn connect(&self, reader: &str) -> Result<Box<dyn CardChannel>, Error> {
        let name = CString::new(reader).map_err(|_| Error::CardRemoved)?;
        let card = self.with_ctx(|ctx| ctx.connect(&name, ShareMode::Shared, Protocols::ANY))?;
        Ok(Box::new(PcscChannel { card: Some(card) }))
    }
}

/// A shared connection to one card.
pub struct PcscChannel {
    /// Always `Some` until `disconnect`.
    card: Option<Card>,
}

struct PcscTransaction<'a> {
    tx: pcsc::Transaction<'a>,
}

impl Transaction for PcscTransaction<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, Error> {
        // The answer may be a piece of the signature certificate: what pcsc-lite wrote into the
        // stack buffer is wiped before returning (the returned copy is wiped by `Exchange`).
        let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
        let res = self.tx.transmit(apdu, &mut buf).map(<[u8]>::to_vec);
        match &res {
            Ok(resp) => buf[..resp.len()].zeroize(),
            Err(_) => buf.zeroize(),
        }
        res.map_err(map_err)
    }

    fn end_unpowered(self: Box<Self>) -> Result<(), Error> {
        // pcsc-lite's SCardEndTransaction powers the card down and up (IFD_POWER_DOWN,
        // IFD_POWER_UP) and only then releases the lock; every other handle (and ours) is then
        // told the card was reset. On failure the returned transaction is dropped, which ends it
        // with SCARD_LEAVE_CARD.
        self.tx
            .end(Disposition::UnpowerCard)
            .map_err(|(_, e)| map_err(e))
    }
}

impl CardChannel for PcscChannel {
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, Error> {
        let card = self.card.as_mut().ok_or(Error::CardRemoved)?;
        match card.transaction2() {
            Ok(tx) => Ok(Box::new(PcscTransaction { tx })),
            Err((card, pcsc::Error::ResetCard)) => {
                // Another process reset the card: its security state is gone, ours was never
                // kept there. Reconnect without touching the card and begin again.
                card.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::LeaveCard)
                    .map_err(map_err)?;
                let tx = card.transaction().map_err(map_err)?;
                Ok(Box::new(PcscTransaction { tx }))
            }
            Err((_, e)) => Err(map_err(e)),
        }
    }

    fn unpower(&mut self) -> Result<(), Error> {
        let card = self.card.as_mut().ok_or(Error::CardRemoved)?;
        card.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::UnpowerCard)
            .map_err(map_err)
    }

    fn disconnect(self: Box<Self>) {
        // Drop disconnects with SCARD_LEAVE_CARD.
    }
}

impl Drop for PcscChannel {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            if let Err((card, _)) = card.disconnect(Disposition::LeaveCard) {
                std::mem::forget(card);
            }
        }
    }
}
