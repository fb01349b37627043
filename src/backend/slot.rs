//! Readers and their slots: the reader list, binding a My Number Card when it appears and
//! unbinding it when it goes, `C_GetSlotList`, `C_GetSlotInfo`.

use super::lifecycle::{module, module_mut, Module};
use super::token_info::padded;
use crate::error::{CkError, CkResult, Context, ToCk};
use cryptoki_sys::*;
use jpki_card::jpki::KeyPair;
use jpki_card::BoundCard;
use jpki_card::CardSystem;
use jpki_card::Error;
use parking_lot::Mutex;
use std::sync::Arc;

/// One PC/SC reader and the My Number Card bound in it.
pub(super) struct Reader {
    name: String,
    pub(super) card: Option<BoundCard>,
    /// PC/SC event counter when the card was bound.
    events: u32,
    /// Bumped at every bind: sessions of an earlier card are invalid.
    pub(super) generation: u64,
    /// Event counter at which the card in the reader was found not to be a My Number Card.
    unrecognized: Option<u32>,
}

/// Which reader (its index) and which of its card's tokens a slot is.
fn slot_parts(slot: CK_SLOT_ID) -> (usize, KeyPair) {
    let key = if slot % 2 == 0 {
        KeyPair::Auth
    } else {
        KeyPair::Sign
    };
    ((slot / 2) as usize, key)
}

/// The slot of `reader`'s token `key`.
fn slot_id(reader: usize, key: KeyPair) -> CK_SLOT_ID {
    (reader as CK_SLOT_ID) * 2 + if key == KeyPair::Sign { 1 } else { 0 }
}

/// Adds the readers not seen before, after those already known (their slots keep their ids).
pub(super) fn add_readers(m: &mut Module, names: Vec<String>) {
    for name in names {
        if !m.reader_names.contains(&name) {
            m.reader_names.push(name.clone());
            m.readers.push(Arc::new(Mutex::new(Reader {
                name,
                card: None,
                events: 0,
                generation: 0,
                unrecognized: None,
            })));
        }
    }
}

/// Brings `reader` up to date with the reader's state: unbinds a card that was removed (or
/// replaced), binds a newly inserted My Number Card.
pub(super) fn refresh(system: &dyn CardSystem, reader: &mut Reader) {
    let status = system.reader_status(&reader.name);
    if reader.card.is_some() && (!status.present || status.events != reader.events) {
        if let Some(card) = reader.card.take() {
            card.disconnect();
        }
    }
    if status.present && reader.card.is_none() && reader.unrecognized != Some(status.events) {
        match system.connect(&reader.name).and_then(BoundCard::bind) {
            Ok(card) => {
                reader.card = Some(card);
                reader.events = status.events;
                reader.generation += 1;
                reader.unrecognized = None;
            }
            Err(Error::NotJpki) => reader.unrecognized = Some(status.events),
            Err(err) => jpki_card::log::debug(format_args!("binding the card failed: {err}")),
        }
    }
}

/// Handles a card error inside a call: a removed card is unbound (its sessions become invalid).
pub(super) fn card_error(reader: &mut Reader, err: Error, ctx: Context) -> CkError {
    if matches!(err, Error::CardRemoved | Error::NoCard | Error::NoService) {
        if let Some(card) = reader.card.take() {
            card.disconnect();
        }
    }
    err.to_ck(ctx)
}

/// A slot's reader, the card system, and which token of the card the slot is.
type SlotParts = (Arc<Mutex<Reader>>, Arc<dyn CardSystem>, KeyPair);

pub(super) fn reader_of_slot(slot: CK_SLOT_ID) -> CkResult<SlotParts> {
    let m = module()?;
    let (i, key) = slot_parts(slot);
    let shared_reader = m.readers.get(i).ok_or(CkError::SlotIdInvalid)?.clone();
    Ok((shared_reader, m.system.clone(), key))
}

/// Runs `f` on the bound card of `slot`'s reader (refreshed first).
pub(super) fn with_slot_card<T>(
    slot: CK_SLOT_ID,
    f: impl FnOnce(&mut Reader, KeyPair) -> CkResult<T>,
) -> CkResult<T> {
    let (shared_reader, system, key) = reader_of_slot(slot)?;
    let mut reader = shared_reader.lock();
    refresh(&*system, &mut reader);
    // [config] A token hidden by `tokens = [...]` is reported as absent.
    if reader.card.is_none() || !exposed(key) {
        return Err(CkError::TokenNotPresent);
    }
    f(&mut reader, key)
}

/// The card bound in the reader (gone: `CKR_DEVICE_REMOVED`).
pub(super) fn bound_card(reader: &mut Reader) -> CkResult<&mut BoundCard> {
    reader.card.as_mut().ok_or(CkError::DeviceRemoved)
}

pub fn check_slot(slot: CK_SLOT_ID) -> CkResult<()> {
    reader_of_slot(slot).map(|_| ())
}

pub fn get_slot_list(token_present: bool) -> CkResult<Vec<CK_SLOT_ID>> {
    let system = module()?.system.clone();
    let names = system.list_readers();
    let readers = {
        // Never lock a reader under MODULE (see the lock order in `backend`).
        let mut m = module_mut()?;
        add_readers(&mut m, names);
        m.readers.clone()
    };
    let mut slots = Vec::with_capacity(readers.len() * 2);
    for (i, shared_reader) in readers.iter().enumerate() {
        let present = if token_present {
            let mut reader = shared_reader.lock();
            refresh(&*system, &mut reader);
            reader.card.is_some()
        } else {
            true
        };
        // [config] With `token_present`, a token hidden by `tokens = [...]` is not listed.
        for key in [KeyPair::Auth, KeyPair::Sign] {
            if present && (!token_present || exposed(key)) {
                slots.push(slot_id(i, key));
            }
        }
    }
    Ok(slots)
}

pub fn get_slot_info(slot: CK_SLOT_ID) -> CkResult<CK_SLOT_INFO> {
    let (shared_reader, system, key) = reader_of_slot(slot)?;
    let mut reader = shared_reader.lock();
    refresh(&*system, &mut reader);
    let what = match key {
        KeyPair::Auth => "Authentication",
        KeyPair::Sign => "Signature",
    };
    let mut flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
    if reader.card.is_some() && exposed(key) {
        flags |= CKF_TOKEN_PRESENT;
    }
    Ok(CK_SLOT_INFO {
        slotDescription: padded(&format!("{} ({what})", reader.name)),
        manufacturerID: padded("PC/SC"),
        flags,
        hardwareVersion: CK_VERSION { major: 0, minor: 0 },
        firmwareVersion: CK_VERSION { major: 0, minor: 0 },
    })
}

/// [config] Whether the configuration shows `key`'s token (`tokens = [...]`).
pub(super) fn exposed(key: KeyPair) -> bool {
    crate::config::get().exposes(key)
}
