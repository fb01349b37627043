//! The one global module: initialization and fork policy, readers and their slots, sessions, and
//! the operations of `api`.
//!
//! **Lock order.** `MODULE` (a `RwLock<Option<Module>>`) is held only to look things up or change
//! the tables, never while waiting for another lock: a call clones the `Arc`s of its session and
//! reader and drops the `MODULE` guard, then locks the session, then the reader. The reader lock
//! is held for the whole card transaction. A thread that holds a session or reader lock may take
//! `MODULE` briefly (it is never held by anyone waiting for a session or reader), never the
//! reverse.
//!
//! **Slots.** Each PC/SC reader gets two slots, in the order readers were first seen: slot `2i`
//! is the authentication token, `2i+1` the signature token of reader `i`. A reader that goes away
//! keeps its slots (empty), so the slot list never shrinks while the module is initialized.
//!
//! **Fork.** The pid is recorded at `C_Initialize`; in any other process the module counts as not
//! initialized, and `C_Initialize` there forgets (never releases) the parent's state.

use crate::api::{AttrValue, Mechanism, Template};
use crate::card::jpki::{normalize_new_pin, normalize_pin, KeyRef, PinFormat, PinTries};
use crate::card::pcsc::PcscSystem;
use crate::card::CardSystem;
use crate::error::{CkError, CkResult, Context, Error};
use crate::secret::SecretBuf;
use crate::token::cert::Cert;
use crate::token::mechanism::{self, Input, Mech};
use crate::token::objects::{self, Obj, Source};
use crate::token::BoundCard;
use cryptoki_sys::*;
use once_cell::sync::Lazy;
use parking_lot::{Mutex, RwLock};
use rsa::RsaPublicKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use zeroize::Zeroizing;

static MODULE: Lazy<RwLock<Option<Module>>> = Lazy::new(|| RwLock::new(None));
static POISONED: AtomicBool = AtomicBool::new(false);
/// The card system the next `initialize` uses instead of PC/SC (in-process tests).
static TEST_SYSTEM: Lazy<Mutex<Option<Arc<dyn CardSystem>>>> = Lazy::new(|| Mutex::new(None));

/// Makes the next `initialize` use `system` instead of PC/SC (for in-process tests).
pub fn use_card_system(system: Option<Arc<dyn CardSystem>>) {
    *TEST_SYSTEM.lock() = system;
}

struct Module {
    pid: u32,
    system: Arc<dyn CardSystem>,
    readers: Vec<Arc<Mutex<Reader>>>,
    /// `readers[i]`'s name, readable without locking the reader.
    reader_names: Vec<String>,
    sessions: HashMap<CK_SESSION_HANDLE, SessionEntry>,
    next_session: CK_SESSION_HANDLE,
}

struct Reader {
    name: String,
    card: Option<BoundCard>,
    /// PC/SC event counter when the card was bound.
    events: u32,
    /// Bumped at every bind: sessions of an earlier card are invalid.
    generation: u64,
    /// Event counter at which the card in the reader was found not to be a My Number Card.
    unrecognized: Option<u32>,
}

#[derive(Clone)]
struct SessionEntry {
    slot: CK_SLOT_ID,
    reader: Arc<Mutex<Reader>>,
    key: KeyRef,
    rw: bool,
    generation: u64,
    state: Arc<Mutex<Session>>,
}

#[derive(Default)]
struct Session {
    find: Option<FindOp>,
    sign: Option<SignOp>,
    verify: Option<VerifyOp>,
    digest: Option<DigestOp>,
}

/// A digest computed on the host (no card I/O).
struct DigestOp {
    alg: mechanism::HashAlg,
    hasher: mechanism::Hasher,
    multipart: bool,
}

struct FindOp {
    found: Vec<CK_OBJECT_HANDLE>,
    pos: usize,
}

/// The key of a certificate, as an operation keeps it: not the certificate itself (the
/// signature certificate holds personal data, dropped at logout whatever operation is active).
#[derive(Clone)]
struct OpKey {
    public_key: Arc<RsaPublicKey>,
    sig_len: usize,
}

impl OpKey {
    fn of(cert: &Cert) -> OpKey {
        OpKey {
            public_key: cert.public_key().clone(),
            sig_len: cert.sig_len(),
        }
    }
}

struct SignOp {
    mech: Mech,
    input: Input,
    multipart: bool,
    key: OpKey,
    always_authenticate: bool,
    /// PIN given with `C_Login(CKU_CONTEXT_SPECIFIC)` for this one signature.
    context_pin: Option<SecretBuf>,
}

struct VerifyOp {
    mech: Mech,
    input: Input,
    multipart: bool,
    key: OpKey,
}

fn slot_parts(slot: CK_SLOT_ID) -> (usize, KeyRef) {
    let key = if slot % 2 == 0 {
        KeyRef::Auth
    } else {
        KeyRef::Sign
    };
    ((slot / 2) as usize, key)
}

fn slot_id(reader: usize, key: KeyRef) -> CK_SLOT_ID {
    (reader as CK_SLOT_ID) * 2 + if key == KeyRef::Sign { 1 } else { 0 }
}

/// Read access to the initialized module of this process.
fn module() -> CkResult<parking_lot::MappedRwLockReadGuard<'static, Module>> {
    if POISONED.load(Ordering::SeqCst) {
        return Err(CkError::GeneralError);
    }
    let guard = MODULE.read();
    let pid = std::process::id();
    parking_lot::RwLockReadGuard::try_map(guard, |m| m.as_ref().filter(|m| m.pid == pid))
        .map_err(|_| CkError::CryptokiNotInitialized)
}

/// Write access to the initialized module of this process (briefly: never held while waiting
/// for a session or reader lock).
fn module_mut() -> CkResult<parking_lot::MappedRwLockWriteGuard<'static, Module>> {
    if POISONED.load(Ordering::SeqCst) {
        return Err(CkError::GeneralError);
    }
    let guard = MODULE.write();
    let pid = std::process::id();
    parking_lot::RwLockWriteGuard::try_map(guard, |m| m.as_mut().filter(|m| m.pid == pid))
        .map_err(|_| CkError::CryptokiNotInitialized)
}

/// Adds the readers not seen before, after those already known (their slots keep their ids).
fn add_readers(m: &mut Module, names: Vec<String>) {
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

/// Marks the module unusable after a panic, until `finalize` and `initialize`.
pub fn poison() {
    POISONED.store(true, Ordering::SeqCst);
}

pub fn initialize() -> CkResult<()> {
    // [config] Loads the configuration file (once) and reports its problems in the log.
    crate::config::start_logging();
    let mut guard = MODULE.write();
    if let Some(m) = guard.as_ref() {
        if m.pid == std::process::id() {
            return Err(CkError::CryptokiAlreadyInitialized);
        }
        // A forked child: the parent's PC/SC context and card handles belong to the parent.
        // Forget them without releasing anything.
        if let Some(stale) = guard.take() {
            std::mem::forget(stale);
        }
    }
    let system: Arc<dyn CardSystem> = TEST_SYSTEM
        .lock()
        .clone()
        .unwrap_or_else(|| Arc::new(PcscSystem::new()));
    let mut m = Module {
        pid: std::process::id(),
        system: system.clone(),
        readers: Vec::new(),
        reader_names: Vec::new(),
        sessions: HashMap::new(),
        next_session: 1,
    };
    // The readers are known from the start (no card I/O: names only), so the slot ids of a
    // previous initialization are valid before any C_GetSlotList.
    add_readers(&mut m, system.list_readers());
    *guard = Some(m);
    POISONED.store(false, Ordering::SeqCst);
    Ok(())
}

pub fn finalize() -> CkResult<()> {
    let taken = {
        let mut guard = MODULE.write();
        match guard.as_ref() {
            Some(m) if m.pid == std::process::id() => guard.take(),
            _ => return Err(CkError::CryptokiNotInitialized),
        }
    };
    POISONED.store(false, Ordering::SeqCst);
    if let Some(m) = taken {
        for reader in &m.readers {
            if let Some(card) = reader.lock().card.take() {
                card.disconnect();
            }
        }
    }
    Ok(())
}

pub fn check_initialized() -> CkResult<()> {
    module().map(|_| ())
}

/// Brings `reader` up to date with the reader's state: unbinds a card that was removed (or
/// replaced), binds a newly inserted My Number Card.
fn refresh(system: &dyn CardSystem, r: &mut Reader) {
    let status = system.reader_status(&r.name);
    if r.card.is_some() && (!status.present || status.events != r.events) {
        if let Some(card) = r.card.take() {
            card.disconnect();
        }
    }
    if status.present && r.card.is_none() && r.unrecognized != Some(status.events) {
        match system.connect(&r.name).and_then(BoundCard::bind) {
            Ok(card) => {
                r.card = Some(card);
                r.events = status.events;
                r.generation += 1;
                r.unrecognized = None;
            }
            Err(Error::NotJpki) => r.unrecognized = Some(status.events),
            Err(e) => crate::log::debug(format_args!("binding the card failed: {e}")),
        }
    }
}

/// Handles a card error inside a call: a removed card is unbound (its sessions become invalid).
fn card_error(r: &mut Reader, e: Error, ctx: Context) -> CkError {
    if matches!(e, Error::CardRemoved | Error::NoCard | Error::NoService) {
        if let Some(card) = r.card.take() {
            card.disconnect();
        }
    }
    e.to_ck(ctx)
}

/// A slot's reader, the card system, and which token of the card the slot is.
type SlotParts = (Arc<Mutex<Reader>>, Arc<dyn CardSystem>, KeyRef);

fn reader_of_slot(slot: CK_SLOT_ID) -> CkResult<SlotParts> {
    let m = module()?;
    let (i, key) = slot_parts(slot);
    let reader = m.readers.get(i).ok_or(CkError::SlotIdInvalid)?.clone();
    Ok((reader, m.system.clone(), key))
}

/// Runs `f` on the bound card of `slot`'s reader (refreshed first).
fn with_slot_card<T>(
    slot: CK_SLOT_ID,
    f: impl FnOnce(&mut Reader, KeyRef) -> CkResult<T>,
) -> CkResult<T> {
    let (reader, system, key) = reader_of_slot(slot)?;
    let mut r = reader.lock();
    refresh(&*system, &mut r);
    // [config] A token hidden by `tokens = [...]` is reported as absent.
    if r.card.is_none() || !exposed(key) {
        return Err(CkError::TokenNotPresent);
    }
    f(&mut r, key)
}

/// Runs `f` with the session `h`, its reader (refreshed, holding the session's card) and key.
fn with_session<T>(
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
    let mut s = entry.state.lock();
    let mut r = entry.reader.lock();
    refresh(&*system, &mut r);
    if r.card.is_none() || r.generation != entry.generation {
        return Err(CkError::SessionHandleInvalid);
    }
    f(&entry, &mut s, &mut r)
}

fn card(r: &mut Reader) -> CkResult<&mut BoundCard> {
    r.card.as_mut().ok_or(CkError::DeviceRemoved)
}

pub fn check_session(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, _, _| Ok(()))
}

pub fn check_slot(slot: CK_SLOT_ID) -> CkResult<()> {
    reader_of_slot(slot).map(|_| ())
}

pub fn get_slot_list(token_present: bool) -> CkResult<Vec<CK_SLOT_ID>> {
    let system = module()?.system.clone();
    let names = system.list_readers();
    let readers = {
        // Never lock a reader under MODULE (see the lock order above).
        let mut m = module_mut()?;
        add_readers(&mut m, names);
        m.readers.clone()
    };
    let mut slots = Vec::with_capacity(readers.len() * 2);
    for (i, reader) in readers.iter().enumerate() {
        let present = if token_present {
            let mut r = reader.lock();
            refresh(&*system, &mut r);
            r.card.is_some()
        } else {
            true
        };
        // [config] With `token_present`, a token hidden by `tokens = [...]` is not listed.
        for key in [KeyRef::Auth, KeyRef::Sign] {
            if present && (!token_present || exposed(key)) {
                slots.push(slot_id(i, key));
            }
        }
    }
    Ok(slots)
}

/// Copies `s` into a blank-padded fixed field, cutting at a character boundary.
pub fn padded<const N: usize>(s: &str) -> [CK_UTF8CHAR; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

fn token_label(key: KeyRef) -> &'static str {
    match key {
        KeyRef::Auth => "JPKI User Authentication",
        KeyRef::Sign => "JPKI Digital Signature",
    }
}

pub fn get_slot_info(slot: CK_SLOT_ID) -> CkResult<CK_SLOT_INFO> {
    let (reader, system, key) = reader_of_slot(slot)?;
    let mut r = reader.lock();
    refresh(&*system, &mut r);
    let what = match key {
        KeyRef::Auth => "Authentication",
        KeyRef::Sign => "Signature",
    };
    let mut flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
    if r.card.is_some() && exposed(key) {
        flags |= CKF_TOKEN_PRESENT;
    }
    Ok(CK_SLOT_INFO {
        slotDescription: padded(&format!("{} ({what})", r.name)),
        manufacturerID: padded("PC/SC"),
        flags,
        hardwareVersion: CK_VERSION { major: 0, minor: 0 },
        firmwareVersion: CK_VERSION { major: 0, minor: 0 },
    })
}

fn pin_flags(key: KeyRef, tries: Option<PinTries>) -> CK_FLAGS {
    match tries {
        Some(PinTries::Blocked) | Some(PinTries::Left(0)) => CKF_USER_PIN_LOCKED,
        Some(PinTries::Left(1)) => CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW,
        Some(PinTries::Left(n)) if n < key.max_tries() => CKF_USER_PIN_COUNT_LOW,
        _ => 0,
    }
}

/// Sessions of `slot` open on the card now in its reader (bind `generation`): all, read-write.
/// Sessions of a card that was removed are dead (every call on them is
/// `CKR_SESSION_HANDLE_INVALID`) and count for nothing. Called with the slot's reader locked
/// (reader, then `MODULE`: the lock order above).
fn live_sessions(slot: CK_SLOT_ID, generation: u64) -> CkResult<(CK_ULONG, CK_ULONG)> {
    let m = module()?;
    let (mut n, mut rw) = (0, 0);
    for e in m.sessions.values() {
        if e.slot == slot && e.generation == generation {
            n += 1;
            if e.rw {
                rw += 1;
            }
        }
    }
    Ok((n, rw))
}

pub fn get_token_info(slot: CK_SLOT_ID) -> CkResult<CK_TOKEN_INFO> {
    with_slot_card(slot, |r, key| {
        let (sessions, rw_sessions) = live_sessions(slot, r.generation)?;
        let c = card(r)?;
        let tries = c.refresh_tries(key);
        let tries = match tries {
            Ok(t) => t,
            Err(e) => return Err(card_error(r, e, Context::Read)),
        };
        let c = card(r)?;
        let flags = CKF_RNG
            | CKF_WRITE_PROTECTED
            | CKF_LOGIN_REQUIRED
            | CKF_USER_PIN_INITIALIZED
            | CKF_TOKEN_INITIALIZED
            | pin_flags(key, Some(tries))
            // [config] With a pinentry configured, C_Login(NULL PIN) asks through it.
            | if crate::config::get().pinentry.is_some() {
                CKF_PROTECTED_AUTHENTICATION_PATH
            } else {
                0
            };
        Ok(CK_TOKEN_INFO {
            label: padded(token_label(key)),
            manufacturerID: padded("J-LIS"),
            model: padded("My Number Card"),
            serialNumber: padded(&c.serial),
            flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: sessions,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: rw_sessions,
            ulMaxPinLen: key.max_pin_len() as CK_ULONG,
            ulMinPinLen: key.min_pin_len() as CK_ULONG,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: CK_VERSION { major: 0, minor: 0 },
            firmwareVersion: CK_VERSION { major: 0, minor: 0 },
            utcTime: [b' '; 16],
        })
    })
}

fn mechanisms(c: &BoundCard) -> Vec<CK_MECHANISM_TYPE> {
    mechanism::ALL
        .iter()
        .copied()
        .filter(|m| pss_enabled(c) || !mechanism::is_pss(*m))
        .chain(mechanism::DIGESTS)
        .collect()
}

/// Whether RSA-PSS is offered for this card: not refused by the card (`pss_ok`, automatic) and
/// not switched off by the user (`pss = false` in the configuration file).
fn pss_enabled(c: &BoundCard) -> bool {
    c.pss_ok && crate::config::get().pss
}

/// [config] Whether the configuration shows `key`'s token (`tokens = [...]`).
fn exposed(key: KeyRef) -> bool {
    crate::config::get().exposes(key)
}

pub fn get_mechanism_list(slot: CK_SLOT_ID) -> CkResult<Vec<CK_MECHANISM_TYPE>> {
    with_slot_card(slot, |r, _| Ok(mechanisms(card(r)?)))
}

pub fn get_mechanism_info(slot: CK_SLOT_ID, ty: CK_MECHANISM_TYPE) -> CkResult<CK_MECHANISM_INFO> {
    with_slot_card(slot, |r, _| {
        if !mechanisms(card(r)?).contains(&ty) {
            return Err(CkError::MechanismInvalid);
        }
        mechanism::info(ty)
    })
}

pub fn open_session(slot: CK_SLOT_ID, flags: CK_FLAGS) -> CkResult<CK_SESSION_HANDLE> {
    if flags & CKF_SERIAL_SESSION == 0 {
        // Checked after the slot, per the spec's order of checks below.
        check_slot(slot)?;
        return Err(CkError::SessionParallelNotSupported);
    }
    let (reader, system, key) = reader_of_slot(slot)?;
    // The session is added with its reader locked, so that it cannot slip between a closing
    // session's count of the token's live sessions and the logout that count decides.
    let mut r = reader.lock();
    refresh(&*system, &mut r);
    // [config] A token hidden by `tokens = [...]` is reported as absent.
    if r.card.is_none() || !exposed(key) {
        return Err(CkError::TokenNotPresent);
    }
    let generation = r.generation;
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
            reader: reader.clone(),
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
fn logout_if_last(slot: CK_SLOT_ID, reader: &Arc<Mutex<Reader>>, key: KeyRef) -> CkResult<()> {
    let mut r = reader.lock();
    let (n, _) = live_sessions(slot, r.generation)?;
    if n == 0 {
        if let Some(c) = r.card.as_mut() {
            c.logout(key);
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
    let (reader, _, key) = reader_of_slot(slot)?;
    module_mut()?.sessions.retain(|_, e| e.slot != slot);
    logout_if_last(slot, &reader, key)
}

pub fn get_session_info(h: CK_SESSION_HANDLE) -> CkResult<CK_SESSION_INFO> {
    with_session(h, |e, _, r| {
        let logged_in = card(r)?.token(e.key).pin.is_some();
        let state = match (e.rw, logged_in) {
            (false, false) => CKS_RO_PUBLIC_SESSION,
            (false, true) => CKS_RO_USER_FUNCTIONS,
            (true, false) => CKS_RW_PUBLIC_SESSION,
            (true, true) => CKS_RW_USER_FUNCTIONS,
        };
        let mut flags = CKF_SERIAL_SESSION;
        if e.rw {
            flags |= CKF_RW_SESSION;
        }
        Ok(CK_SESSION_INFO {
            slotID: e.slot,
            state,
            flags,
            ulDeviceError: 0,
        })
    })
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a new PIN's format for `key` (`C_SetPIN`): `CKR_PIN_LEN_RANGE` or `CKR_PIN_INVALID`,
/// nothing sent. A new signature password must also mix letters and digits (the card's
/// official rule). Returned in a [`SecretBuf`] (wiped when dropped, not in core dumps).
fn checked_new_pin(key: KeyRef, pin: &[u8]) -> CkResult<SecretBuf> {
    match normalize_new_pin(key, pin) {
        Ok(p) => Ok(SecretBuf::from_slice(&Zeroizing::new(p))),
        Err(f) => {
            crate::log::info(format_args!(
                "new {} refused before the card: {}",
                key.pin_name(),
                f.reason(key)
            ));
            match f {
                PinFormat::Length => Err(CkError::PinLenRange),
                PinFormat::Characters | PinFormat::NotMixed => Err(CkError::PinInvalid),
            }
        }
    }
}

/// Checks a presented PIN's format for `key` (`C_Login`, the old PIN of `C_SetPIN`). A PIN the
/// card cannot hold cannot be right: `CKR_PIN_INCORRECT` (the code of `C_Login`'s list, on which
/// NSS asks again), with the precise reason in the log, and nothing sent to the card.
fn checked_pin(key: KeyRef, pin: &[u8]) -> CkResult<SecretBuf> {
    let p = normalize_pin(key, pin).map(Zeroizing::new).map_err(|f| {
        crate::log::info(format_args!(
            "{} refused before the card (no try used): {}",
            key.pin_name(),
            f.reason(key)
        ));
        CkError::PinIncorrect
    })?;
    Ok(SecretBuf::from_slice(&p))
}

/// What must hold for `C_Login(user_type)` in this session, before any PIN is asked for or sent.
fn login_allowed(
    e: &SessionEntry,
    s: &Session,
    r: &mut Reader,
    user_type: CK_USER_TYPE,
) -> CkResult<()> {
    match user_type {
        CKU_USER => {
            if card(r)?.token(e.key).pin.is_some() {
                return Err(CkError::UserAlreadyLoggedIn);
            }
        }
        CKU_CONTEXT_SPECIFIC => {
            if !s.sign.as_ref().is_some_and(|op| op.always_authenticate) {
                return Err(CkError::OperationNotInitialized);
            }
        }
        _ => return Err(CkError::UserTypeInvalid),
    }
    Ok(())
}

pub fn login(h: CK_SESSION_HANDLE, user_type: CK_USER_TYPE, pin: Option<&[u8]>) -> CkResult<()> {
    // [pinentry] A NULL PIN asks through the configured pinentry program, with no lock held
    // while the person types (every other call of every thread goes on meanwhile); the answer
    // then goes through exactly the same checks and single VERIFY as a PIN passed in.
    let asked;
    let pin = match pin {
        Some(p) => p,
        None => {
            let (program, text) = with_session(h, |e, s, r| {
                login_allowed(e, s, r, user_type)?;
                pin_prompt(r, e.key, user_type)
            })?;
            asked = ask_pin(&program, &text)?;
            asked.as_slice()
        }
    };
    with_session(h, |e, s, r| {
        let key = e.key;
        // Again: the state may have changed while the pinentry was shown.
        login_allowed(e, s, r, user_type)?;
        let pin = checked_pin(key, pin)?;
        let c = card(r)?;
        if c.token(key).tries == Some(PinTries::Blocked) {
            return Err(CkError::PinLocked);
        }
        // The per-signature password is the logged-in user's, which the card accepted at
        // C_Login: when it is the same, it is checked here, and presented to the card inside the
        // signing transaction only (3 APDUs fewer per signature). A different password is
        // verified on the card at once, so a wrong one is reported here, not by C_Sign.
        if user_type == CKU_CONTEXT_SPECIFIC {
            if let (Some(held), Some(op)) = (c.token(key).pin.as_deref(), s.sign.as_mut()) {
                if same_secret(held, &pin) {
                    op.context_pin = Some(pin);
                    return Ok(());
                }
            }
        }
        if let Err(err) = c.verify_pin(key, &pin) {
            if user_type == CKU_CONTEXT_SPECIFIC {
                // A failed per-signature login ends the signing operation: NSS presents the
                // same wrong password again for as long as the operation lives, and each time
                // would cost a try (5 tries: the key blocked by one mistyped export).
                s.sign = None;
            }
            return Err(card_error(r, err, Context::Login));
        }
        if user_type == CKU_USER {
            card(r)?.token_mut(key).pin = Some(pin);
        } else if let Some(op) = s.sign.as_mut() {
            op.context_pin = Some(pin);
        }
        Ok(())
    })
}

/// The texts of a pinentry prompt (owned, to be shown with no lock held).
struct PromptText {
    description: String,
    prompt: &'static str,
    error: Option<&'static str>,
}

/// [pinentry] The configured pinentry program and what it shows for `key`'s PIN: the tries left
/// (read with the empty VERIFY, which costs no try). Without a pinentry, a NULL PIN is
/// `CKR_ARGUMENTS_BAD`; a locked PIN is refused before anything is shown.
fn pin_prompt(
    r: &mut Reader,
    key: KeyRef,
    user_type: CK_USER_TYPE,
) -> CkResult<(std::path::PathBuf, PromptText)> {
    let program = crate::config::get()
        .pinentry
        .clone()
        .ok_or(CkError::ArgumentsBad)?;
    let tries = match card(r)?.refresh_tries(key) {
        Ok(PinTries::Left(n)) if n > 0 => Some(n),
        // [uncertain] The card was found unlocked (and locked again): it did not tell the count.
        Ok(PinTries::Unknown) => None,
        Ok(_) => return Err(CkError::PinLocked),
        Err(e) => return Err(card_error(r, e, Context::Read)),
    };
    let (what, prompt) = match key {
        KeyRef::Auth => (
            "the user authentication PIN (利用者証明用電子証明書, 4 digits)",
            "PIN:",
        ),
        KeyRef::Sign => (
            "the digital signature password (署名用電子証明書, 6 to 16 letters and digits)",
            "Password:",
        ),
    };
    let purpose = if user_type == CKU_CONTEXT_SPECIFIC {
        "\nIt is asked again for each signature."
    } else {
        ""
    };
    let tries_text = tries.map_or("unknown".into(), |n| format!("{n} of {}", key.max_tries()));
    let description = format!("My Number Card: enter {what}.{purpose}\nTries left: {tries_text}.");
    let error = (tries == Some(1)).then_some(
        "Last try: a wrong entry locks the key (only a municipal office can unlock it).",
    );
    Ok((
        program,
        PromptText {
            description,
            prompt,
            error,
        },
    ))
}

/// [pinentry] Runs the pinentry (no lock held). A cancelled entry is `CKR_FUNCTION_CANCELED` (as
/// OpenSC returns for a cancelled PIN pad); a pinentry that cannot run is `CKR_FUNCTION_FAILED`
/// (and logged).
fn ask_pin(program: &std::path::Path, text: &PromptText) -> CkResult<Zeroizing<Vec<u8>>> {
    use crate::pinentry::{get_pin, PinentryError, Prompt};
    let p = Prompt {
        title: "JPKI My Number Card",
        description: &text.description,
        prompt: text.prompt,
        error: text.error,
    };
    match get_pin(program, &p) {
        Ok(pin) => Ok(pin),
        Err(PinentryError::Cancelled) => {
            crate::log::info(format_args!("PIN entry cancelled"));
            Err(CkError::FunctionCanceled)
        }
        Err(PinentryError::Failed(msg)) => {
            crate::log::warn(format_args!("pinentry {}: {msg}", program.display()));
            Err(CkError::FunctionFailed)
        }
    }
}

pub fn logout(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |e, _, r| {
        // The PIN and the signature certificate (personal data) are wiped.
        if !card(r)?.logout(e.key) {
            return Err(CkError::UserNotLoggedIn);
        }
        Ok(())
    })
}

pub fn set_pin(h: CK_SESSION_HANDLE, old: Option<&[u8]>, new: Option<&[u8]>) -> CkResult<()> {
    with_session(h, |e, _, r| {
        if !e.rw {
            return Err(CkError::SessionReadOnly);
        }
        let (old, new) = (
            old.ok_or(CkError::ArgumentsBad)?,
            new.ok_or(CkError::ArgumentsBad)?,
        );
        // An old PIN of the wrong format cannot be right: refuse it without a try.
        let old = checked_pin(e.key, old)?;
        let new = checked_new_pin(e.key, new)?;
        // (A blocked PIN is refused by `change_pin` before the card sees it.)
        if let Err(err) = card(r)?.change_pin(e.key, &old, &new) {
            return Err(card_error(r, err, Context::Login));
        }
        let t = card(r)?.token_mut(e.key);
        if t.pin.is_some() {
            t.pin = Some(new);
        }
        Ok(())
    })
}

/// Loads the certificate an object is built from.
fn load_cert(r: &mut Reader, key: KeyRef, src: Source) -> CkResult<Arc<Cert>> {
    let c = card(r)?;
    let res = match src {
        Source::Own => match c.token(key).cert.clone() {
            Some(cert) => Ok(cert),
            None => {
                let pin = c.token(key).pin.clone();
                c.cert(key, pin.as_deref())
            }
        },
        Source::Ca => c.ca_cert(key),
    };
    res.map_err(|e| card_error(r, e, Context::Read))
}

/// The object behind handle `o` in this session, if the session may see it.
fn visible_object(e: &SessionEntry, r: &mut Reader, o: CK_OBJECT_HANDLE) -> CkResult<Obj> {
    let logged_in = card(r)?.token(e.key).pin.is_some();
    Obj::from_handle(e.key, o)
        .filter(|obj| obj.visible(e.key, logged_in))
        .ok_or(CkError::ObjectHandleInvalid)
}

pub fn find_objects_init(h: CK_SESSION_HANDLE, template: Template) -> CkResult<()> {
    // The values are wiped when dropped, however the search ends.
    let template: Vec<(CK_ATTRIBUTE_TYPE, Zeroizing<Vec<u8>>)> = template
        .into_iter()
        .map(|(ty, v)| (ty, Zeroizing::new(v)))
        .collect();
    with_session(h, |e, s, r| {
        if s.find.is_some() {
            return Err(CkError::OperationActive);
        }
        let key = e.key;
        let logged_in = card(r)?.token(key).pin.is_some();
        let mut found = Vec::new();
        'objects: for obj in objects::ALL {
            if !obj.visible(key, logged_in) {
                continue;
            }
            // Attributes known without the card first, so that a search by class or id does
            // not read certificates it does not need.
            let (cheap, costly): (Vec<_>, Vec<_>) = template
                .iter()
                .partition(|(ty, _)| !objects::needs_cert(key, obj, *ty));
            for (ty, want) in cheap.into_iter().chain(costly) {
                let got = objects::attr(key, obj, *ty, &mut |src| load_cert(r, key, src))?;
                if !matches!(&got, AttrValue::Value(v) if v[..] == want[..]) {
                    continue 'objects;
                }
            }
            found.push(obj.handle(key));
        }
        s.find = Some(FindOp { found, pos: 0 });
        Ok(())
    })
}

pub fn find_objects(h: CK_SESSION_HANDLE, max: usize) -> CkResult<Vec<CK_OBJECT_HANDLE>> {
    with_session(h, |_, s, _| {
        let op = s.find.as_mut().ok_or(CkError::OperationNotInitialized)?;
        let end = op.found.len().min(op.pos.saturating_add(max));
        let out = op.found[op.pos..end].to_vec();
        op.pos = end;
        Ok(out)
    })
}

pub fn find_objects_final(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, s, _| {
        s.find
            .take()
            .map(|_| ())
            .ok_or(CkError::OperationNotInitialized)
    })
}

pub fn get_attribute_value(
    h: CK_SESSION_HANDLE,
    o: CK_OBJECT_HANDLE,
    types: &[CK_ATTRIBUTE_TYPE],
) -> CkResult<Vec<AttrValue>> {
    with_session(h, |e, _, r| {
        let obj = visible_object(e, r, o)?;
        types
            .iter()
            .map(|ty| objects::attr(e.key, obj, *ty, &mut |src| load_cert(r, e.key, src)))
            .collect()
    })
}

pub fn get_object_size(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> CkResult<CK_ULONG> {
    with_session(h, |e, _, r| {
        visible_object(e, r, o)?;
        Ok(CK_UNAVAILABLE_INFORMATION)
    })
}

/// The key object for an operation: must be `want` (private key to sign, public key to verify).
fn op_key(e: &SessionEntry, r: &mut Reader, o: CK_OBJECT_HANDLE, want: Obj) -> CkResult<()> {
    let logged_in = card(r)?.token(e.key).pin.is_some();
    match Obj::from_handle(e.key, o) {
        Some(obj) if obj == want && obj.visible(e.key, logged_in) => Ok(()),
        // A private key handle from before a logout.
        Some(Obj::PrivateKey) if want == Obj::PrivateKey => Err(CkError::UserNotLoggedIn),
        Some(Obj::PrivateKey | Obj::PublicKey) if obj_visible(e, o, logged_in) => {
            Err(CkError::KeyFunctionNotPermitted)
        }
        _ => Err(CkError::KeyHandleInvalid),
    }
}

fn obj_visible(e: &SessionEntry, o: CK_OBJECT_HANDLE, logged_in: bool) -> bool {
    Obj::from_handle(e.key, o).is_some_and(|obj| obj.visible(e.key, logged_in))
}

pub fn sign_init(
    h: CK_SESSION_HANDLE,
    m: &Mechanism,
    key_handle: CK_OBJECT_HANDLE,
) -> CkResult<()> {
    with_session(h, |e, s, r| {
        if s.sign.is_some() {
            return Err(CkError::OperationActive);
        }
        let mech = mechanism::parse(m)?;
        op_key(e, r, key_handle, Obj::PrivateKey)?;
        if mech.is_pss() && !pss_enabled(card(r)?) {
            return Err(CkError::MechanismInvalid);
        }
        let key = OpKey::of(&*load_cert(r, e.key, Source::Own)?);
        s.sign = Some(SignOp {
            mech,
            input: Input::new(mech),
            multipart: false,
            key,
            always_authenticate: e.key == KeyRef::Sign,
            context_pin: None,
        });
        Ok(())
    })
}

/// Ends the signing operation without signing (the spec's termination rule for `C_Sign`,
/// `C_SignUpdate` and `C_SignFinal` failing on their arguments).
pub fn sign_abort(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, s, _| {
        s.sign = None;
        Ok(())
    })
}

pub fn sign_len(h: CK_SESSION_HANDLE) -> CkResult<usize> {
    with_session(h, |_, s, _| {
        s.sign
            .as_ref()
            .map(|op| op.key.sig_len)
            .ok_or(CkError::OperationNotInitialized)
    })
}

/// Signs on the card, then verifies the signature with the certificate's key before returning
/// it. A failed re-verification of the held PIN logs the token out: the PIN is never tried twice.
fn finish_sign(e: &SessionEntry, r: &mut Reader, mut op: SignOp) -> CkResult<Vec<u8>> {
    let key = e.key;
    let sig_len = op.key.sig_len;
    let (mode, input) = op.mech.card_input(&op.input.finish(), sig_len)?;
    let c = card(r)?;
    let held = c.token(key).pin.clone().ok_or(CkError::UserNotLoggedIn)?;
    let pin = if op.always_authenticate {
        op.context_pin.take().ok_or(CkError::UserNotLoggedIn)?
    } else {
        held
    };
    match c.sign(key, &pin, mode, &input, sig_len) {
        Ok(sig) => {
            if op.mech.verify(&op.key.public_key, &input, &sig) {
                return Ok(sig);
            }
            crate::log::debug(format_args!(
                "card signature did not verify ({:?})",
                op.mech
            ));
            if op.mech.is_pss() {
                // [uncertain] PSS parameters of a real card: stop offering PSS for this card.
                c.pss_ok = false;
            }
            Err(CkError::FunctionFailed)
        }
        Err(Error::Status(sw)) if PinTries::from_sw(sw).is_some() => {
            // The held PIN no longer works (changed or blocked elsewhere): forget it (a
            // logout).
            c.logout(key);
            Err(Error::Status(sw).to_ck(Context::Sign))
        }
        Err(Error::Status(0x6A86)) if op.mech.is_pss() => {
            c.pss_ok = false;
            Err(CkError::MechanismInvalid)
        }
        Err(err) => Err(card_error(r, err, Context::Sign)),
    }
}

pub fn sign(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<Vec<u8>> {
    with_session(h, |e, s, r| {
        let mut op = s.sign.take().ok_or(CkError::OperationNotInitialized)?;
        if op.multipart {
            return Err(CkError::OperationActive);
        }
        op.input.update(data)?;
        finish_sign(e, r, op)
    })
}

pub fn sign_update(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    with_session(h, |_, s, _| {
        let op = s.sign.as_mut().ok_or(CkError::OperationNotInitialized)?;
        op.multipart = true;
        if let Err(err) = op.input.update(data) {
            s.sign = None;
            return Err(err);
        }
        Ok(())
    })
}

pub fn sign_final(h: CK_SESSION_HANDLE) -> CkResult<Vec<u8>> {
    with_session(h, |e, s, r| {
        let op = s.sign.take().ok_or(CkError::OperationNotInitialized)?;
        finish_sign(e, r, op)
    })
}

pub fn verify_init(
    h: CK_SESSION_HANDLE,
    m: &Mechanism,
    key_handle: CK_OBJECT_HANDLE,
) -> CkResult<()> {
    with_session(h, |e, s, r| {
        if s.verify.is_some() {
            return Err(CkError::OperationActive);
        }
        let mech = mechanism::parse(m)?;
        op_key(e, r, key_handle, Obj::PublicKey)?;
        let key = OpKey::of(&*load_cert(r, e.key, Source::Own)?);
        s.verify = Some(VerifyOp {
            mech,
            input: Input::new(mech),
            multipart: false,
            key,
        });
        Ok(())
    })
}

fn finish_verify(op: VerifyOp, sig: &[u8]) -> CkResult<()> {
    let sig_len = op.key.sig_len;
    if sig.len() != sig_len {
        return Err(CkError::SignatureLenRange);
    }
    let (_, input) = op.mech.card_input(&op.input.finish(), sig_len)?;
    if op.mech.verify(&op.key.public_key, &input, sig) {
        Ok(())
    } else {
        Err(CkError::SignatureInvalid)
    }
}

pub fn verify(h: CK_SESSION_HANDLE, data: &[u8], sig: &[u8]) -> CkResult<()> {
    with_session(h, |_, s, _| {
        let mut op = s.verify.take().ok_or(CkError::OperationNotInitialized)?;
        if op.multipart {
            return Err(CkError::OperationActive);
        }
        op.input.update(data)?;
        finish_verify(op, sig)
    })
}

pub fn verify_update(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    with_session(h, |_, s, _| {
        let op = s.verify.as_mut().ok_or(CkError::OperationNotInitialized)?;
        op.multipart = true;
        if let Err(err) = op.input.update(data) {
            s.verify = None;
            return Err(err);
        }
        Ok(())
    })
}

pub fn verify_final(h: CK_SESSION_HANDLE, sig: &[u8]) -> CkResult<()> {
    with_session(h, |_, s, _| {
        let op = s.verify.take().ok_or(CkError::OperationNotInitialized)?;
        finish_verify(op, sig)
    })
}

/// The most `C_GenerateRandom` gives in one call. The card's GET CHALLENGE gives 8 bytes per
/// APDU inside one transaction that holds the card for every other program: 4096 bytes is 512
/// APDUs (a few seconds over a contactless reader). More is `CKR_ARGUMENTS_BAD`; a program that
/// needs more asks several times (or seeds a generator of its own).
pub const MAX_RANDOM_LEN: usize = 4096;

pub fn digest_init(h: CK_SESSION_HANDLE, m: &Mechanism) -> CkResult<()> {
    with_session(h, |_, s, _| {
        if s.digest.is_some() {
            return Err(CkError::OperationActive);
        }
        let alg = mechanism::parse_digest(m)?;
        s.digest = Some(DigestOp {
            alg,
            hasher: mechanism::Hasher::new(alg),
            multipart: false,
        });
        Ok(())
    })
}

/// The length of the active digest (known at `C_DigestInit`).
pub fn digest_len(h: CK_SESSION_HANDLE) -> CkResult<usize> {
    with_session(h, |_, s, _| {
        s.digest
            .as_ref()
            .map(|op| op.alg.output_len())
            .ok_or(CkError::OperationNotInitialized)
    })
}

/// Ends the digest operation (the termination rule, as [`sign_abort`]).
pub fn digest_abort(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, s, _| {
        s.digest = None;
        Ok(())
    })
}

pub fn digest(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<Vec<u8>> {
    with_session(h, |_, s, _| {
        let mut op = s.digest.take().ok_or(CkError::OperationNotInitialized)?;
        if op.multipart {
            return Err(CkError::OperationActive);
        }
        op.hasher.update(data);
        Ok(op.hasher.finish())
    })
}

pub fn digest_update(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    with_session(h, |_, s, _| {
        let op = s.digest.as_mut().ok_or(CkError::OperationNotInitialized)?;
        op.multipart = true;
        op.hasher.update(data);
        Ok(())
    })
}

/// `C_DigestKey`: the tokens have no secret key, and the value of an RSA key is not digested
/// (`CKR_KEY_INDIGESTIBLE` for the key objects; the operation ends, as after a failed update).
pub fn digest_key(h: CK_SESSION_HANDLE, key_handle: CK_OBJECT_HANDLE) -> CkResult<()> {
    with_session(h, |e, s, r| {
        if s.digest.is_none() {
            return Err(CkError::OperationNotInitialized);
        }
        s.digest = None;
        let logged_in = card(r)?.token(e.key).pin.is_some();
        match Obj::from_handle(e.key, key_handle) {
            Some(obj @ (Obj::PrivateKey | Obj::PublicKey)) if obj.visible(e.key, logged_in) => {
                Err(CkError::KeyIndigestible)
            }
            _ => Err(CkError::KeyHandleInvalid),
        }
    })
}

pub fn digest_final(h: CK_SESSION_HANDLE) -> CkResult<Vec<u8>> {
    with_session(h, |_, s, _| {
        let op = s.digest.take().ok_or(CkError::OperationNotInitialized)?;
        Ok(op.hasher.finish())
    })
}

pub fn generate_random(h: CK_SESSION_HANDLE, len: usize) -> CkResult<Vec<u8>> {
    if len > MAX_RANDOM_LEN {
        crate::log::info(format_args!(
            "C_GenerateRandom: {len} bytes asked, at most {MAX_RANDOM_LEN} in one call"
        ));
        // The session is checked first: its code comes before this one.
        check_session(h)?;
        return Err(CkError::ArgumentsBad);
    }
    with_session(h, |_, _, r| match card(r)?.random(len) {
        Ok(v) => Ok(v),
        Err(err) => Err(card_error(r, err, Context::Read)),
    })
}

pub fn seed_random(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, _, _| Err(CkError::RandomSeedNotSupported))
}

/// APDUs this module has sent to the card in `slot`'s reader since it was bound (for tests).
pub fn apdus_sent(slot: CK_SLOT_ID) -> CkResult<usize> {
    let (reader, _, _) = reader_of_slot(slot)?;
    let r = reader.lock();
    Ok(r.card.as_ref().map_or(0, |c| c.apdus))
}

/// Serializes in-crate tests that use the global module.
#[cfg(test)]
pub(crate) static TEST_LOCK: Mutex<()> = parking_lot::const_mutex(());
