//! The immutable function tables (version 2.40 and 3.0) and the interface list.
//!
//! Only `C_GetFunctionList`, `C_GetInterfaceList` and `C_GetInterface` are exported; every other
//! entry point is reached through these statics. They live in read-only memory: the `*mut`
//! pointers handed to applications are casts demanded by the C signatures, and the spec forbids
//! applications to write through them.

use super::digest::*;
use super::general::*;
use super::keys::*;
use super::object::*;
use super::parallel::*;
use super::random::*;
use super::session::*;
use super::sign::*;
use super::slot_token::*;
use super::unsupported::*;
use cryptoki_sys::*;
use std::ffi::c_void;
use std::ptr;

// The bindings this layout is written against: PKCS#11 3.2 headers of cryptoki-sys 0.5, which
// contain the 2.40 and 3.0 function lists used here.
const _VERSION_ASSERT: () = assert!(CRYPTOKI_VERSION_MAJOR == 3 && CRYPTOKI_VERSION_MINOR == 2);

/// Version of the `CK_FUNCTION_LIST` table.
pub(crate) const VERSION_2_40: CK_VERSION = CK_VERSION {
    major: 2,
    minor: 40,
};
/// Version of the `CK_FUNCTION_LIST_3_0` table.
pub(crate) const VERSION_3_0: CK_VERSION = CK_VERSION { major: 3, minor: 0 };

/// Calls `$m!` with the names of the functions of both lists, each name being a field of the
/// C function-list structure and the entry point of the same name: `[the 2.40 list]` then
/// `[what the 3.0 list adds]`, in the lists' order. The tables below and the hostile-caller tests
/// (`ffi::hostile_tests`) are generated from this one list; a struct literal must name every
/// field, so the compiler checks that the list is complete.
macro_rules! functions {
    ($m:ident) => {
        $m! {
            [
                C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList, C_GetSlotInfo,
                C_GetTokenInfo, C_GetMechanismList, C_GetMechanismInfo, C_InitToken, C_InitPIN, C_SetPIN,
                C_OpenSession, C_CloseSession, C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState,
                C_SetOperationState, C_Login, C_Logout, C_CreateObject, C_CopyObject, C_DestroyObject,
                C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue, C_FindObjectsInit,
                C_FindObjects, C_FindObjectsFinal, C_EncryptInit, C_Encrypt, C_EncryptUpdate,
                C_EncryptFinal, C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal, C_DigestInit,
                C_Digest, C_DigestUpdate, C_DigestKey, C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate,
                C_SignFinal, C_SignRecoverInit, C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate,
                C_VerifyFinal, C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate,
                C_DecryptDigestUpdate, C_SignEncryptUpdate, C_DecryptVerifyUpdate, C_GenerateKey,
                C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey, C_SeedRandom, C_GenerateRandom,
                C_GetFunctionStatus, C_CancelFunction, C_WaitForSlotEvent
            ]
            [
                C_GetInterfaceList, C_GetInterface, C_LoginUser, C_SessionCancel, C_MessageEncryptInit,
                C_EncryptMessage, C_EncryptMessageBegin, C_EncryptMessageNext, C_MessageEncryptFinal,
                C_MessageDecryptInit, C_DecryptMessage, C_DecryptMessageBegin, C_DecryptMessageNext,
                C_MessageDecryptFinal, C_MessageSignInit, C_SignMessage, C_SignMessageBegin,
                C_SignMessageNext, C_MessageSignFinal, C_MessageVerifyInit, C_VerifyMessage,
                C_VerifyMessageBegin, C_VerifyMessageNext, C_MessageVerifyFinal
            ]
        }
    };
}
#[cfg(test)]
pub(crate) use functions;

macro_rules! list_2_40 {
    ([$($f:ident),* $(,)?] [$($added:ident),* $(,)?]) => {
        CK_FUNCTION_LIST {
            version: VERSION_2_40,
            $($f: Some($f),)*
        }
    };
}

macro_rules! list_3_0 {
    ([$($f:ident),* $(,)?] [$($added:ident),* $(,)?]) => {{
        // The 3.0 list's C_GetInfo reports version 3.0.
        use super::general::C_GetInfo_v3 as C_GetInfo;
        CK_FUNCTION_LIST_3_0 {
            version: VERSION_3_0,
            $($f: Some($f),)*
            $($added: Some($added),)*
        }
    }};
}

/// The PKCS#11 2.40 function list, returned by `C_GetFunctionList`.
pub(crate) static FUNCTION_LIST_2_40: CK_FUNCTION_LIST = functions!(list_2_40);

/// The PKCS#11 3.0 function list, returned by `C_GetInterface`/`C_GetInterfaceList`.
pub(crate) static FUNCTION_LIST_3_0: CK_FUNCTION_LIST_3_0 = functions!(list_3_0);

/// The interface list: the `CK_INTERFACE` entries (in preference order: 3.0 is the default) and,
/// alongside, the version of each entry's function list (for `C_GetInterface` matching).
#[derive(Debug)]
pub(crate) struct Interfaces(pub [CK_INTERFACE; 2], pub [CK_VERSION; 2]);

// SAFETY: the raw pointers inside point to immutable statics (the NUL-terminated name and the
// function tables), which are never written, so sharing them between threads is sound.
unsafe impl Sync for Interfaces {}

/// Interface flags: we do **not** claim `CKF_INTERFACE_FORK_SAFE` (a forked child must call
/// `C_Initialize`; it does not inherit sessions).
pub(crate) const INTERFACE_FLAGS: CK_FLAGS = 0;

/// The interfaces `"PKCS 11"` 3.0 and 2.40.
pub(crate) static INTERFACES: Interfaces = Interfaces(
    [
        CK_INTERFACE {
            pInterfaceName: INTERFACE_NAME.as_ptr().cast_mut(),
            pFunctionList: ptr::addr_of!(FUNCTION_LIST_3_0).cast::<c_void>().cast_mut(),
            flags: INTERFACE_FLAGS,
        },
        CK_INTERFACE {
            pInterfaceName: INTERFACE_NAME.as_ptr().cast_mut(),
            pFunctionList: ptr::addr_of!(FUNCTION_LIST_2_40)
                .cast::<c_void>()
                .cast_mut(),
            flags: INTERFACE_FLAGS,
        },
    ],
    [VERSION_3_0, VERSION_2_40],
);
