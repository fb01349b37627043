//! The one global module of this process: `C_Initialize`, `C_Finalize`, the fork policy and
//! poisoning after a panic. [`module`] and [`module_mut`] are the one check that the module is
//! initialized in this process; every other call goes through them.

use super::session::SessionEntry;
use super::slot::{add_readers, Reader};
use crate::error::{CkError, CkResult};
use cryptoki_sys::CK_SESSION_HANDLE;
use jpki_card::pcsc::PcscSystem;
use jpki_card::CardSystem;
use once_cell::sync::Lazy;
use parking_lot::{MappedRwLockReadGuard, MappedRwLockWriteGuard, Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

static MODULE: Lazy<RwLock<Option<Module>>> = Lazy::new(|| RwLock::new(None));
static POISONED: AtomicBool = AtomicBool::new(false);
/// The card system the next `initialize` uses instead of PC/SC (in-process tests, fuzzing).
#[cfg(any(test, feature = "test-hooks"))]
static TEST_SYSTEM: Lazy<Mutex<Option<Arc<dyn CardSystem>>>> = Lazy::new(|| Mutex::new(None));

/// Makes the next `initialize` use `system` instead of PC/SC (in-process tests, fuzzing).
#[cfg(any(test, feature = "test-hooks"))]
pub fn use_card_system(system: Option<Arc<dyn CardSystem>>) {
    *TEST_SYSTEM.lock() = system;
}

fn card_system() -> Arc<dyn CardSystem> {
    #[cfg(any(test, feature = "test-hooks"))]
    if let Some(system) = TEST_SYSTEM.lock().clone() {
        return system;
    }
    Arc::new(PcscSystem::new())
}

pub(super) struct Module {
    /// The process that initialized the module (see [`ours`]).
    pid: u32,
    pub(super) system: Arc<dyn CardSystem>,
    pub(super) readers: Vec<Arc<Mutex<Reader>>>,
    /// `readers[i]`'s name, readable without locking the reader.
    pub(super) reader_names: Vec<String>,
    pub(super) sessions: HashMap<CK_SESSION_HANDLE, SessionEntry>,
    pub(super) next_session: CK_SESSION_HANDLE,
}

/// Whether `m` was initialized by this process (a forked child inherits its parent's, which
/// counts as not initialized there): the one place this is decided.
fn ours(m: &Module) -> bool {
    m.pid == std::process::id()
}

/// Read access to the initialized module of this process.
pub(super) fn module() -> CkResult<MappedRwLockReadGuard<'static, Module>> {
    if POISONED.load(Ordering::SeqCst) {
        return Err(CkError::GeneralError);
    }
    let guard = MODULE.read();
    parking_lot::RwLockReadGuard::try_map(guard, |m| m.as_ref().filter(|m| ours(m)))
        .map_err(|_| CkError::CryptokiNotInitialized)
}

/// Write access to the initialized module of this process (briefly: never held while waiting
/// for a session or reader lock).
pub(super) fn module_mut() -> CkResult<MappedRwLockWriteGuard<'static, Module>> {
    if POISONED.load(Ordering::SeqCst) {
        return Err(CkError::GeneralError);
    }
    let guard = MODULE.write();
    parking_lot::RwLockWriteGuard::try_map(guard, |m| m.as_mut().filter(|m| ours(m)))
        .map_err(|_| CkError::CryptokiNotInitialized)
}

/// Marks the module unusable after a panic, until `finalize` and `initialize`.
pub fn poison() {
    POISONED.store(true, Ordering::SeqCst);
}

pub fn initialize() -> CkResult<()> {
    // [config] Loads the configuration file (once) and reports its problems in the log.
    crate::config::start_logging();
    let mut guard = MODULE.write();
    if guard.as_ref().is_some_and(ours) {
        return Err(CkError::CryptokiAlreadyInitialized);
    }
    // A forked child: the parent's PC/SC context and card handles belong to the parent.
    // Forget them without releasing anything.
    if let Some(stale) = guard.take() {
        std::mem::forget(stale);
    }
    let system = card_system();
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
        if !guard.as_ref().is_some_and(ours) {
            return Err(CkError::CryptokiNotInitialized);
        }
        guard.take()
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
