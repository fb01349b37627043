//! The backend: one function per PKCS#11 operation, taking validated Rust values. `ffi/` turns
//! C arguments into these calls and results back into C; the tokens and the card are reached
//! only through here. One file per concern:
//!
//! | file | what |
//! |---|---|
//! | `lifecycle.rs` | the one global module: `initialize`, `finalize`, the fork policy, poisoning |
//! | `slot.rs` | readers and their slots: binding the card in a reader, card errors |
//! | `token_info.rs` | `C_GetTokenInfo`, the mechanism list |
//! | `session.rs` | sessions: open, close, the session's operations, which card it belongs to |
//! | `login.rs` | `C_Login`, `C_Logout`, `C_SetPIN` (PIN format checks before the card) |
//! | `prompt.rs` | the PIN asked through a pinentry program (no lock held while shown) |
//! | `object.rs` | object search and attributes |
//! | `sign.rs` | signing (on the card) and verifying (on the host): one operation type |
//! | `digest.rs`, `random.rs` | host digests; the card's random numbers |
//!
//! Every function returns `CkError::CryptokiNotInitialized` before `initialize`, after
//! `finalize`, and in a forked child that has not called `initialize` itself
//! ([`lifecycle::module`] is the one check), and `CkError::GeneralError` once the module is
//! poisoned by a panic.
//!
//! **Lock order.** `MODULE` (a `RwLock<Option<Module>>`) is held only to look things up or change
//! the tables, never while waiting for another lock: a call clones the `Arc`s of its session and
//! reader and drops the `MODULE` guard, then locks the session, then the reader. The reader lock
//! is held for the whole card transaction. A thread that holds a session or reader lock may take
//! `MODULE` briefly (it is never held by anyone waiting for a session or reader), never the
//! reverse. No lock is held while a pinentry is shown.
//!
//! **Slots.** Each PC/SC reader gets two slots, in the order readers were first seen: slot `2i`
//! is the authentication token, `2i+1` the signature token of reader `i`. A reader that goes away
//! keeps its slots (empty), so the slot list never shrinks while the module is initialized.
//!
//! **Fork.** The pid is recorded at `C_Initialize`; in any other process the module counts as not
//! initialized, and `C_Initialize` there forgets (never releases) the parent's state.

mod digest;
mod lifecycle;
mod login;
mod object;
mod prompt;
mod random;
mod session;
mod sign;
mod slot;
mod token_info;

#[cfg(test)]
mod tests;

pub use digest::{
    digest, digest_abort, digest_final, digest_init, digest_key, digest_len, digest_update,
};
#[cfg(any(test, feature = "test-hooks"))]
pub use lifecycle::use_card_system;
pub use lifecycle::{check_initialized, finalize, initialize, poison};
pub use login::{login, logout, set_pin};
pub use object::{
    find_objects, find_objects_final, find_objects_init, get_attribute_value, get_object_size,
};
#[cfg(test)]
pub use random::MAX_RANDOM_LEN;
pub use random::{generate_random, seed_random};
pub use session::{
    check_session, close_all_sessions, close_session, get_session_info, open_session,
};
pub use sign::{
    sign, sign_abort, sign_final, sign_init, sign_len, sign_update, verify, verify_final,
    verify_init, verify_update,
};
pub use slot::{check_slot, get_slot_info, get_slot_list};
pub use token_info::{get_mechanism_info, get_mechanism_list, get_token_info};

use cryptoki_sys::*;
use zeroize::Zeroize;

/// A mechanism as the caller passed it to `C_SignInit`/`C_VerifyInit`/`C_DigestInit`, its
/// parameter decoded by `ffi/` but not yet checked against the mechanism (that is
/// [`crate::token::mechanism::parse`], which gives a [`crate::token::mechanism::SignMechanism`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMechanism {
    pub mechanism: CK_MECHANISM_TYPE,
    pub params: MechanismParams,
}

/// A mechanism parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MechanismParams {
    /// `pParameter` NULL and `ulParameterLen` 0.
    None,
    /// A `CK_RSA_PKCS_PSS_PARAMS` (given for a PSS mechanism with the exact struct size).
    Pss(PssParams),
    /// Anything else: the raw bytes (the backend rejects them where they do not belong).
    Other(Vec<u8>),
}

/// The fields of `CK_RSA_PKCS_PSS_PARAMS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PssParams {
    pub hash_alg: CK_MECHANISM_TYPE,
    pub mgf: CK_RSA_PKCS_MGF_TYPE,
    pub s_len: CK_ULONG,
}

/// One attribute's answer to `C_GetAttributeValue`. A value is wiped when dropped: it may be
/// (part of) the signature certificate, which holds personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// The value, encoded as PKCS#11 lays it out in memory (CK_BBOOL = 1 byte, CK_ULONG native).
    Value(Vec<u8>),
    /// The attribute exists but may not be revealed (`CKR_ATTRIBUTE_SENSITIVE`).
    Sensitive,
    /// The object has no such attribute (`CKR_ATTRIBUTE_TYPE_INVALID`).
    Invalid,
}

impl Drop for AttrValue {
    fn drop(&mut self) {
        if let AttrValue::Value(v) = self {
            v.zeroize();
        }
    }
}

/// A search template: attribute types with their encoded values (`find_objects_init` wipes
/// them: an application may search by the certificate's value).
pub type Template = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

/// Serializes in-crate tests that use the global module.
#[cfg(test)]
pub(crate) static TEST_LOCK: parking_lot::Mutex<()> = parking_lot::const_mutex(());
