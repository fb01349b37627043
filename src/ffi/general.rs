//! General-purpose functions (PKCS#11 3.0 §5.4): `C_Initialize`, `C_Finalize`, `C_GetInfo`,
//! and the three exported symbols `C_GetFunctionList`, `C_GetInterfaceList`, `C_GetInterface`.
//!
//! Spec: <https://docs.oasis-open.org/pkcs11/pkcs11-base/v3.0/os/pkcs11-base-v3.0-os.html>

use super::args::{out_ref, padded, OutBuf};
use super::tables::{Interfaces, FUNCTION_LIST_2_40, INTERFACES, VERSION_2_40, VERSION_3_0};
use crate::backend;
use crate::error::{CkError, CkResult};
use cryptoki_sys::*;
use std::ffi::{c_char, c_void, CStr};
use std::ptr;

/// The name of the standard interfaces (3.0 §3.6), NUL-terminated for `CK_INTERFACE`.
pub(crate) const INTERFACE_NAME: &[u8; 8] = b"PKCS 11\0";

const MANUFACTURER: &str = "jpki-pkcs11 project";
const DESCRIPTION: &str = "My Number Card JPKI";

const fn parse_u8(s: &str) -> u8 {
    let b = s.as_bytes();
    let mut v: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    if v > 255 {
        255
    } else {
        v as u8
    }
}

/// This library's version, from Cargo.toml.
pub(crate) const LIBRARY_VERSION: CK_VERSION = CK_VERSION {
    major: parse_u8(env!("CARGO_PKG_VERSION_MAJOR")),
    minor: parse_u8(env!("CARGO_PKG_VERSION_MINOR")),
};

/// The `CK_INFO` reported through the table of version `version`.
pub(crate) fn info(version: CK_VERSION) -> CK_INFO {
    CK_INFO {
        cryptokiVersion: version,
        manufacturerID: padded(MANUFACTURER),
        flags: 0,
        libraryDescription: padded(DESCRIPTION),
        libraryVersion: LIBRARY_VERSION,
    }
}

/// Checks the `CK_C_INITIALIZE_ARGS` rules of 3.0 §5.4.1 (without reaching the module state).
///
/// - `pReserved` non-NULL → `CKR_ARGUMENTS_BAD`;
/// - the four mutex callbacks must be all NULL or all non-NULL → else `CKR_ARGUMENTS_BAD`;
/// - callbacks without `CKF_OS_LOCKING_OK` mean "use these callbacks and nothing else", which
///   this module cannot do (it locks with its own primitives) → `CKR_CANT_LOCK`;
/// - no callbacks (with or without the flag), or callbacks with the flag → fine: our own locks
///   satisfy `CKF_OS_LOCKING_OK`. `CKF_LIBRARY_CANT_CREATE_OS_THREADS` is fine too: the module
///   creates no threads.
///
/// The fields are copied out before they are looked at: on Windows the PKCS#11 structures are
/// packed (`#pragma pack(1)`), and a method call on a field would take a reference to an
/// unaligned field.
pub(crate) fn check_init_args(args: &CK_C_INITIALIZE_ARGS) -> CkResult<()> {
    let CK_C_INITIALIZE_ARGS {
        CreateMutex,
        DestroyMutex,
        LockMutex,
        UnlockMutex,
        flags,
        pReserved,
    } = *args;
    if !pReserved.is_null() {
        return Err(CkError::ArgumentsBad);
    }
    let given = [
        CreateMutex.is_some(),
        DestroyMutex.is_some(),
        LockMutex.is_some(),
        UnlockMutex.is_some(),
    ];
    let callbacks = given.iter().filter(|g| **g).count();
    if callbacks != 0 && callbacks != given.len() {
        return Err(CkError::ArgumentsBad);
    }
    if callbacks != 0 && flags & CKF_OS_LOCKING_OK == 0 {
        return Err(CkError::CantLock);
    }
    Ok(())
}

cryptoki_fn! {
    /// `C_Initialize` (3.0 §5.4.1): NULL `pInitArgs` is fine; otherwise the arguments are checked
    /// by [`check_init_args`]. Then `backend::initialize` (which reports
    /// `CKR_CRYPTOKI_ALREADY_INITIALIZED` itself, and starts afresh in a forked child).
    pub(crate) fn C_Initialize(pInitArgs: *mut c_void) {
        if !pInitArgs.is_null() {
            // SAFETY: a non-NULL pInitArgs points to a CK_C_INITIALIZE_ARGS (spec §5.4.1); every
            // bit pattern is valid for it (nullable fn pointers, flags, a pointer); the read is
            // unaligned.
            let args = unsafe { ptr::read_unaligned(pInitArgs.cast::<CK_C_INITIALIZE_ARGS>()) };
            check_init_args(&args)?;
        }
        backend::initialize()
    }
}

cryptoki_fn! {
    /// `C_Finalize` (3.0 §5.4.2): `pReserved` must be NULL (`CKR_ARGUMENTS_BAD`); then
    /// `backend::finalize` (which reports `CKR_CRYPTOKI_NOT_INITIALIZED` itself).
    pub(crate) fn C_Finalize(pReserved: *mut c_void) {
        if !pReserved.is_null() {
            return Err(CkError::ArgumentsBad);
        }
        backend::finalize()
    }
}

cryptoki_fn! {
    /// `C_GetInfo` (3.0 §5.4.3) of the version 2.40 table: reports `cryptokiVersion` 2.40.
    pub(crate) fn C_GetInfo(pInfo: *mut CK_INFO) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pInfo is valid for writing a CK_INFO (spec §5.4.3).
        let out = unsafe { out_ref(pInfo) }?;
        out.write(info(VERSION_2_40));
        Ok(())
    }
}

cryptoki_fn! {
    /// `C_GetInfo` (3.0 §5.4.3) of the version 3.0 table: reports `cryptokiVersion` 3.0.
    pub(crate) fn C_GetInfo_v3(pInfo: *mut CK_INFO) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pInfo is valid for writing a CK_INFO (spec §5.4.3).
        let out = unsafe { out_ref(pInfo) }?;
        out.write(info(VERSION_3_0));
        Ok(())
    }
}

cryptoki_fn! {
    /// `C_GetFunctionList` (3.0 §5.4.4), exported: hands out the version 2.40 table. Legal
    /// before `C_Initialize`. NULL `ppFunctionList` → `CKR_ARGUMENTS_BAD`.
    ///
    /// The table is an immutable static; the `*mut` is only what the C signature demands.
    #[no_mangle]
    pub(crate) fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) {
        // SAFETY: a non-NULL ppFunctionList is valid for writing one pointer (spec §5.4.4).
        let out = unsafe { out_ref(ppFunctionList) }?;
        out.write(ptr::addr_of!(FUNCTION_LIST_2_40).cast_mut());
        Ok(())
    }
}

cryptoki_fn! {
    /// `C_GetInterfaceList` (3.0 §5.4.5), exported: the interfaces `"PKCS 11"` 3.0 and 2.40,
    /// with the two-call convention (NULL `pInterfacesList` → count; short → count and
    /// `CKR_BUFFER_TOO_SMALL`). Legal before `C_Initialize`. NULL `pulCount` →
    /// `CKR_ARGUMENTS_BAD`.
    #[no_mangle]
    pub(crate) fn C_GetInterfaceList(pInterfacesList: *mut CK_INTERFACE, pulCount: *mut CK_ULONG) {
        // SAFETY: pulCount, if non-NULL, is valid for reading and writing a CK_ULONG, and a
        // non-NULL pInterfacesList has room for *pulCount entries (spec §5.4.5, §5.2).
        let out = unsafe { OutBuf::new(pInterfacesList, pulCount) }?;
        out.write(&INTERFACES.0)
    }
}

/// Finds the interface for `C_GetInterface` (3.0 §5.4.6): every criterion given must match.
///
/// - `name`: `None` (NULL) → any name, i.e. the default interface; else the exact name;
/// - `version`: `None` (NULL) → the default version, the first match in list order (3.0);
///   else exactly that major.minor;
/// - `flags`: the interface must have every requested flag. Ours have none: we do not claim
///   `CKF_INTERFACE_FORK_SAFE` (a forked child must call `C_Initialize`), so a request for it
///   finds nothing.
///
/// Nothing found → `CKR_ARGUMENTS_BAD` (the spec lists no more specific code).
pub(crate) fn find_interface<'a>(
    set: &'a Interfaces,
    name: Option<&[u8]>,
    version: Option<CK_VERSION>,
    flags: CK_FLAGS,
) -> CkResult<&'a CK_INTERFACE> {
    set.0
        .iter()
        .zip(set.1.iter())
        .find(|(iface, v)| {
            // SAFETY: our own interface names are NUL-terminated statics.
            let own = unsafe { CStr::from_ptr(iface.pInterfaceName.cast::<c_char>()) };
            name.map_or(true, |n| n == own.to_bytes())
                && version.map_or(true, |w| w.major == v.major && w.minor == v.minor)
                && iface.flags & flags == flags
        })
        .map(|(iface, _)| iface)
        .ok_or(CkError::ArgumentsBad)
}

cryptoki_fn! {
    /// `C_GetInterface` (3.0 §5.4.6), exported: see [`find_interface`] for the matching rules.
    /// Legal before `C_Initialize`. NULL `ppInterface` → `CKR_ARGUMENTS_BAD`.
    #[no_mangle]
    pub(crate) fn C_GetInterface(
        pInterfaceName: *mut CK_UTF8CHAR,
        pVersion: *mut CK_VERSION,
        ppInterface: *mut *mut CK_INTERFACE,
        flags: CK_FLAGS,
    ) {
        // SAFETY: a non-NULL ppInterface is valid for writing one pointer (spec §5.4.6).
        let out = unsafe { out_ref(ppInterface) }?;
        let name = if pInterfaceName.is_null() {
            None
        } else {
            // SAFETY: a non-NULL pInterfaceName is a NUL-terminated string (spec §5.4.6).
            Some(unsafe { CStr::from_ptr(pInterfaceName.cast::<c_char>()) }.to_bytes())
        };
        let version = if pVersion.is_null() {
            None
        } else {
            // SAFETY: a non-NULL pVersion points to a CK_VERSION (spec §5.4.6); unaligned read.
            Some(unsafe { ptr::read_unaligned(pVersion) })
        };
        let iface = find_interface(&INTERFACES, name, version, flags)?;
        out.write(ptr::from_ref(iface).cast_mut());
        Ok(())
    }
}
