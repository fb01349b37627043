//! Sessions: `C_OpenSession`, `C_CloseSession`, `C_CloseAllSessions`, `C_GetSessionInfo`, and
//! [`with_session`], the one place that decides whether a session handle is valid (a session
//! belongs to the card that was in its reader when it was opened).

use super::digest::DigestOp;
use super::lifecycle::{module, module_mut};
use super::object::FindOp;
use super::sign::SignatureOp;
use super::slot::{bound_card, check_slot, exposed, reader_of_slot, refresh, Reader};
use crate::error::{CkError, CkResult};
use cryptoki_sys::*;
use jpki_card::jpki::KeyPair;
use parking_lot::Mutex;
use std::sync::Arc;

/// A session as the module's table holds it.
#[derive(Clone)]
pub(super) struct SessionEntry {
    pub(super) slot: CK_SLOT_ID,
    pub(super) reader: Arc<Mutex<Reader>>,
    /// Which of the card's tokens the session is on.
    pub(super) key: KeyPair,
    pub(super) rw: bool,
    /// The reader's bind generation when the session was opened: its card.
    generation: u64,
    state: Arc<Mutex<Session>>,
}

/// The operations active in a session (at most one of each kind, as PKCS#11 has it).
#[derive(Default)]
pub(super) struct Session {
    pub(super) find: Option<FindOp>,
    pub(super) sign: Option<SignatureOp>,
    pub(super) verify: Option<SignatureOp>,
    pub(super) digest: Option<DigestOp>,
}

/// Runs `f` with the session `h`, its reader (refreshed, holding the session's card) and key.
pub(super) fn with_session<T>(
    h: CK_SESSION_HANDLE,
    f: impl FnOnce(&SessionEntry, &mut Session, &mut Reader) -> CkResult<T>,
) -> CkResult<T> {
    let (entry, system) = {
        let m = module()?;
        (
            m.sessions
                .get(&h)
                .ok_or(CkError::SessionHandleInvalid)?
                .clone(),
            m.system.clone(),
        )
    };
    let mut session = entry.state.lock();
    let mut reader = entry.reader.lock();
    refresh(&*system, &mut reader);
    if reader.card.is_none() || reader.generation != entry.generation {
        return Err(CkError::SessionHandleInvalid);
    }
    f(&entry, &mut session, &mut reader)
}

pub fn check_session(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, _, _| Ok(()))
}

/// Sessions of `slot` open on the card now in its reader (bind `generation`): all, read-write.
/// Sessions of a card that was removed are dead (every call on them is
/// `CKR_SESSION_HANDLE_INVALID`) and count for nothing. Called with the slot's reader locked
/// (reader, then `MODULE`: the lock order in `backend`).
pub(super) fn live_sessions(slot: CK_SLOT_ID, generation: u64) -> CkResult<(CK_ULONG, CK_ULONG)> {
    let m = module()?;
    let (mut n, mut rw) = (0, 0);
    for entry in m.sessions.values() {
        if entry.slot == slot && entry.generation == generation {
            n += 1;
            if entry.rw {
                rw += 1;
            }
        }
    }
    Ok((n, rw))
}

pub fn open_session(slot: CK_SLOT_ID, flags: CK_FLAGS) -> CkResult<CK_SESSION_HANDLE> {
    if flags & CKF_SERIAL_SESSION == 0 {
        // Checked after the slot, per the spec's order of checks below.
        check_slot(slot)?;
        return Err(CkError::SessionParallelNotSupported);
    }
    let (shared_reader, system, key) = reader_of_slot(slot)?;
    // The session is added with its reader locked, so that it cannot slip between a closing
    // session's count of the token's live sessions and the logout that count decides.
    let mut reader = shared_reader.lock();
    refresh(&*system, &mut reader);
    // [config] A token hidden by `tokens = [...]` is reported as absent.
    if reader.card.is_none() || !exposed(key) {
        return Err(CkError::TokenNotPresent);
    }
    let generation = reader.generation;
    let mut m = module_mut()?;
    let h = m.next_session;
    // Handles are never reused; they must fit a 32-bit CK_ULONG too.
    if h >= u32::MAX as CK_SESSION_HANDLE {
        return Err(CkError::SessionCount);
    }
    m.next_session += 1;
    m.sessions.insert(
        h,
        SessionEntry {
            slot,
            reader: shared_reader.clone(),
            key,
            rw: flags & CKF_RW_SESSION != 0,
            generation,
            state: Arc::new(Mutex::new(Session::default())),
        },
    );
    Ok(h)
}

/// Ends the login of `slot`'s token when the card in the reader has no live session of that
/// token left (a login ends with the last session of its token, PKCS#11 §5.6; sessions of a
/// removed card do not keep it alive).
fn logout_if_last(
    slot: CK_SLOT_ID,
    shared_reader: &Arc<Mutex<Reader>>,
    key: KeyPair,
) -> CkResult<()> {
    let mut reader = shared_reader.lock();
    let (n, _) = live_sessions(slot, reader.generation)?;
    if n == 0 {
        if let Some(card) = reader.card.as_mut() {
            card.logout(key);
        }
    }
    Ok(())
}

pub fn close_session(h: CK_SESSION_HANDLE) -> CkResult<()> {
    let entry = module_mut()?
        .sessions
        .remove(&h)
        .ok_or(CkError::SessionHandleInvalid)?;
    logout_if_last(entry.slot, &entry.reader, entry.key)
}

pub fn close_all_sessions(slot: CK_SLOT_ID) -> CkResult<()> {
    let (shared_reader, _, key) = reader_of_slot(slot)?;
    module_mut()?.sessions.retain(|_, entry| entry.slot != slot);
    logout_if_last(slot, &shared_reader, key)
}

pub fn get_session_info(h: CK_SESSION_HANDLE) -> CkResult<CK_SESSION_INFO> {
    with_session(h, |entry, _, reader| {
        let logged_in = bound_card(reader)?.is_logged_in(entry.key);
        let state = match (entry.rw, logged_in) {
            (false, false) => CKS_RO_PUBLIC_SESSION,
            (false, true) => CKS_RO_USER_FUNCTIONS,
            (true, false) => CKS_RW_PUBLIC_SESSION,
            (true, true) => CKS_RW_USER_FUNCTIONS,
        };
        let mut flags = CKF_SERIAL_SESSION;
        if entry.rw {
            flags |= CKF_RW_SESSION;
        }
        Ok(CK_SESSION_INFO {
            slotID: entry.slot,
            state,
            flags,
            ulDeviceError: 0,
        })
    })
}
