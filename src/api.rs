//! The safe face of the module: one function per PKCS#11 operation, taking validated Rust
//! values. `ffi/` turns C arguments into these calls and results back into C; everything below
//! (global state, tokens, card) is reached only through here.
//!
//! Every function returns `CkError::CryptokiNotInitialized` before `initialize`, after
//! `finalize`, and in a forked child that has not called `initialize` itself, and
//! `CkError::GeneralError` once the module is poisoned by a panic.

use crate::error::CkResult;
use cryptoki_sys::*;
use zeroize::Zeroize;

/// A mechanism as passed to `C_SignInit`/`C_VerifyInit`, with its parameter decoded by `ffi/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    pub mechanism: CK_MECHANISM_TYPE,
    pub params: MechParams,
}

/// A mechanism parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MechParams {
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

pub use crate::state::MAX_RANDOM_LEN;
pub use crate::state::{
    check_initialized, check_session, check_slot, close_all_sessions, close_session, digest,
    digest_abort, digest_final, digest_init, digest_key, digest_len, digest_update, finalize,
    find_objects, find_objects_final, find_objects_init, generate_random, get_attribute_value,
    get_mechanism_info, get_mechanism_list, get_object_size, get_session_info, get_slot_info,
    get_slot_list, get_token_info, initialize, login, logout, open_session, poison, seed_random,
    set_pin, sign, sign_abort, sign_final, sign_init, sign_len, sign_update, verify, verify_final,
    verify_init, verify_update,
};

#[allow(unused, clippy::type_complexity)]
fn _signatures_are_stable() {
    // Compile-time reminder of the contract ffi/ relies on.
    let _: fn() -> CkResult<()> = initialize;
    let _: fn() -> CkResult<()> = finalize;
    let _: fn() -> CkResult<()> = check_initialized;
    let _: fn() = poison;
    let _: fn(bool) -> CkResult<Vec<CK_SLOT_ID>> = get_slot_list;
    let _: fn(CK_SLOT_ID) -> CkResult<CK_SLOT_INFO> = get_slot_info;
    let _: fn(CK_SLOT_ID) -> CkResult<CK_TOKEN_INFO> = get_token_info;
    let _: fn(CK_SLOT_ID) -> CkResult<()> = check_slot;
    let _: fn(CK_SLOT_ID) -> CkResult<Vec<CK_MECHANISM_TYPE>> = get_mechanism_list;
    let _: fn(CK_SLOT_ID, CK_MECHANISM_TYPE) -> CkResult<CK_MECHANISM_INFO> = get_mechanism_info;
    let _: fn(CK_SLOT_ID, CK_FLAGS) -> CkResult<CK_SESSION_HANDLE> = open_session;
    let _: fn(CK_SESSION_HANDLE) -> CkResult<()> = close_session;
    let _: fn(CK_SLOT_ID) -> CkResult<()> = close_all_sessions;
    let _: fn(CK_SESSION_HANDLE) -> CkResult<CK_SESSION_INFO> = get_session_info;
    let _: fn(CK_SESSION_HANDLE) -> CkResult<()> = check_session;
    let _: fn(CK_SESSION_HANDLE, CK_USER_TYPE, Option<&[u8]>) -> CkResult<()> = login;
    let _: fn(CK_SESSION_HANDLE) -> CkResult<()> = logout;
    let _: fn(CK_SESSION_HANDLE, Option<&[u8]>, Option<&[u8]>) -> CkResult<()> = set_pin;
    let _: fn(CK_SESSION_HANDLE, Template) -> CkResult<()> = find_objects_init;
    let _: fn(CK_SESSION_HANDLE, usize) -> CkResult<Vec<CK_OBJECT_HANDLE>> = find_objects;
    let _: fn(CK_SESSION_HANDLE) -> CkResult<()> = find_objects_final;
    let _: fn(
        CK_SESSION_HANDLE,
        CK_OBJECT_HANDLE,
        &[CK_ATTRIBUTE_TYPE],
    ) -> CkResult<Vec<AttrValue>> = get_attribute_value;
    let _: fn(CK_SESSION_HANDLE, CK_OBJECT_HANDLE) -> CkResult<CK_ULONG> = get_object_size;
    let _: fn(CK_SESSION_HANDLE, &Mechanism, CK_OBJECT_HANDLE) -> CkResult<()> = sign_init;
    let _: fn(CK_SESSION_HANDLE) -> CkResult<usize> = sign_len;
    let _: fn(CK_SESSION_HANDLE) -> CkResult<()> = sign_abort;
    let _: fn(CK_SESSION_HANDLE, &[u8]) -> CkResult<Vec<u8>> = sign;
    let _: fn(CK_SESSION_HANDLE, &[u8]) -> CkResult<()> = sign_update;
    let _: fn(CK_SESSION_HANDLE) -> CkResult<Vec<u8>> = sign_final;
    let _: fn(CK_SESSION_HANDLE, &Mechanism, CK_OBJECT_HANDLE) -> CkResult<()> = verify_init;
    let _: fn(CK_SESSION_HANDLE, &[u8], &[u8]) -> CkResult<()> = verify;
    let _: fn(CK_SESSION_HANDLE, &[u8]) -> CkResult<()> = verify_update;
    let _: fn(CK_SESSION_HANDLE, &[u8]) -> CkResult<()> = verify_final;
    let _: fn(CK_SESSION_HANDLE, usize) -> CkResult<Vec<u8>> = generate_random;
    let _: fn(CK_SESSION_HANDLE) -> CkResult<()> = seed_random;
}
