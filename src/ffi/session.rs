//! Session management (PKCS#11 3.0 §5.6).
//!
//! `C_GetOperationState`, `C_SetOperationState`, `C_LoginUser` and `C_SessionCancel` are in
//! [`super::unsupported`].

use super::args::{opt_slice, out_ref};
use crate::backend;
use cryptoki_sys::*;
use std::ffi::c_void;

cryptoki_fn! {
    /// `C_OpenSession` (3.0 §5.6.1): NULL `phSession` → `CKR_ARGUMENTS_BAD`; `pApplication` and
    /// `Notify` are ignored (the module makes no callbacks). Then `backend::open_session`, which
    /// checks the flags (`CKF_SERIAL_SESSION`) and accepts read-write sessions.
    #[allow(unused_variables)]
    pub(crate) fn C_OpenSession(
        slotID: CK_SLOT_ID,
        flags: CK_FLAGS,
        pApplication: *mut c_void,
        Notify: CK_NOTIFY,
        phSession: *mut CK_SESSION_HANDLE,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL phSession is valid for writing a handle (spec §5.6.1).
        let out = unsafe { out_ref(phSession) }?;
        out.write(backend::open_session(slotID, flags)?);
        Ok(())
    }
}

cryptoki_fn! {
    /// `C_CloseSession` (3.0 §5.6.2).
    pub(crate) fn C_CloseSession(hSession: CK_SESSION_HANDLE) {
        backend::check_initialized()?;
        backend::close_session(hSession)
    }
}

cryptoki_fn! {
    /// `C_CloseAllSessions` (3.0 §5.6.3).
    pub(crate) fn C_CloseAllSessions(slotID: CK_SLOT_ID) {
        backend::check_initialized()?;
        backend::close_all_sessions(slotID)
    }
}

cryptoki_fn! {
    /// `C_GetSessionInfo` (3.0 §5.6.4). NULL `pInfo` → `CKR_ARGUMENTS_BAD`.
    pub(crate) fn C_GetSessionInfo(hSession: CK_SESSION_HANDLE, pInfo: *mut CK_SESSION_INFO) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pInfo is valid for writing a CK_SESSION_INFO (spec §5.6.4).
        let out = unsafe { out_ref(pInfo) }?;
        out.write(backend::get_session_info(hSession)?);
        Ok(())
    }
}

cryptoki_fn! {
    /// `C_Login` (3.0 §5.6.8): a NULL `pPin` asks for the protected authentication path
    /// (`None`, whatever `ulPinLen`); otherwise the PIN bytes are passed on. The PIN is never
    /// logged or copied here.
    pub(crate) fn C_Login(
        hSession: CK_SESSION_HANDLE,
        userType: CK_USER_TYPE,
        pPin: *mut CK_UTF8CHAR,
        ulPinLen: CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pPin is valid for reading ulPinLen bytes (spec §5.6.8).
        let pin = unsafe { opt_slice(pPin, ulPinLen) }?;
        backend::login(hSession, userType, pin)
    }
}

cryptoki_fn! {
    /// `C_Logout` (3.0 §5.6.10).
    pub(crate) fn C_Logout(hSession: CK_SESSION_HANDLE) {
        backend::check_initialized()?;
        backend::logout(hSession)
    }
}
