//! Slot and token management (PKCS#11 3.0 §5.5).

use super::args::{opt_slice, out_ref, OutBuf};
use crate::backend;
use crate::error::CkError;
use cryptoki_sys::*;
use std::ffi::c_void;

cryptoki_fn! {
    /// `C_GetSlotList` (3.0 §5.5.1): two-call convention over `backend::get_slot_list`, called once
    /// per C call (a size query rescans the readers; the following call reports the same list
    /// unless a reader appeared, in which case it answers `CKR_BUFFER_TOO_SMALL`).
    /// NULL `pulCount` → `CKR_ARGUMENTS_BAD`.
    pub(crate) fn C_GetSlotList(
        tokenPresent: CK_BBOOL,
        pSlotList: *mut CK_SLOT_ID,
        pulCount: *mut CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: pulCount, if non-NULL, is valid for reading and writing a CK_ULONG, and a
        // non-NULL pSlotList has room for *pulCount slot ids (spec §5.5.1, §5.2).
        let out = unsafe { OutBuf::new(pSlotList, pulCount) }?;
        let slots = backend::get_slot_list(tokenPresent != CK_FALSE)?;
        out.write(&slots)
    }
}

cryptoki_fn! {
    /// `C_GetSlotInfo` (3.0 §5.5.2). NULL `pInfo` → `CKR_ARGUMENTS_BAD`.
    pub(crate) fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_SLOT_INFO) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pInfo is valid for writing a CK_SLOT_INFO (spec §5.5.2).
        let out = unsafe { out_ref(pInfo) }?;
        out.write(backend::get_slot_info(slotID)?);
        Ok(())
    }
}

cryptoki_fn! {
    /// `C_GetTokenInfo` (3.0 §5.5.3). NULL `pInfo` → `CKR_ARGUMENTS_BAD`.
    pub(crate) fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pInfo is valid for writing a CK_TOKEN_INFO (spec §5.5.3).
        let out = unsafe { out_ref(pInfo) }?;
        out.write(backend::get_token_info(slotID)?);
        Ok(())
    }
}

cryptoki_fn! {
    /// `C_WaitForSlotEvent` (3.0 §5.5.4): not supported (`CKR_FUNCTION_NOT_SUPPORTED`, which
    /// the spec allows; Firefox then polls).
    #[allow(unused_variables)]
    pub(crate) fn C_WaitForSlotEvent(flags: CK_FLAGS, pSlot: *mut CK_SLOT_ID, pReserved: *mut c_void) {
        backend::check_initialized()?;
        Err(CkError::FunctionNotSupported)
    }
}

cryptoki_fn! {
    /// `C_GetMechanismList` (3.0 §5.5.5): two-call convention over `backend::get_mechanism_list`.
    /// NULL `pulCount` → `CKR_ARGUMENTS_BAD`.
    pub(crate) fn C_GetMechanismList(
        slotID: CK_SLOT_ID,
        pMechanismList: *mut CK_MECHANISM_TYPE,
        pulCount: *mut CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: pulCount, if non-NULL, is valid for reading and writing a CK_ULONG, and a
        // non-NULL pMechanismList has room for *pulCount entries (spec §5.5.5, §5.2).
        let out = unsafe { OutBuf::new(pMechanismList, pulCount) }?;
        let mechanisms = backend::get_mechanism_list(slotID)?;
        out.write(&mechanisms)
    }
}

cryptoki_fn! {
    /// `C_GetMechanismInfo` (3.0 §5.5.6). NULL `pInfo` → `CKR_ARGUMENTS_BAD`.
    pub(crate) fn C_GetMechanismInfo(
        slotID: CK_SLOT_ID,
        type_: CK_MECHANISM_TYPE,
        pInfo: *mut CK_MECHANISM_INFO,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pInfo is valid for writing a CK_MECHANISM_INFO (spec §5.5.6).
        let out = unsafe { out_ref(pInfo) }?;
        out.write(backend::get_mechanism_info(slotID, type_)?);
        Ok(())
    }
}

cryptoki_fn! {
    /// `C_InitToken` (3.0 §5.5.7): the card cannot be re-initialized. After `backend::check_slot`
    /// (so a bad slot or an absent token is reported as such) → `CKR_TOKEN_WRITE_PROTECTED`.
    /// The SO PIN is never read.
    #[allow(unused_variables)]
    pub(crate) fn C_InitToken(
        slotID: CK_SLOT_ID,
        pPin: *mut CK_UTF8CHAR,
        ulPinLen: CK_ULONG,
        pLabel: *mut CK_UTF8CHAR,
    ) {
        backend::check_initialized()?;
        backend::check_slot(slotID)?;
        Err(CkError::TokenWriteProtected)
    }
}

cryptoki_fn! {
    /// `C_InitPIN` (3.0 §5.5.8): the PINs are set by the municipality, not through PKCS#11.
    /// After `backend::check_session` → `CKR_TOKEN_WRITE_PROTECTED`. The PIN is never read.
    #[allow(unused_variables)]
    pub(crate) fn C_InitPIN(hSession: CK_SESSION_HANDLE, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG) {
        backend::check_initialized()?;
        backend::check_session(hSession)?;
        Err(CkError::TokenWriteProtected)
    }
}

cryptoki_fn! {
    /// `C_SetPIN` (3.0 §5.5.9): a NULL PIN pointer means "protected authentication path"
    /// (`None`); otherwise the `(pointer, length)` pair is checked. Then `backend::set_pin`.
    pub(crate) fn C_SetPIN(
        hSession: CK_SESSION_HANDLE,
        pOldPin: *mut CK_UTF8CHAR,
        ulOldLen: CK_ULONG,
        pNewPin: *mut CK_UTF8CHAR,
        ulNewLen: CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: each non-NULL PIN pointer is valid for reading its length in bytes
        // (spec §5.5.9).
        let (old, new) = unsafe {
            (opt_slice(pOldPin, ulOldLen)?, opt_slice(pNewPin, ulNewLen)?)
        };
        backend::set_pin(hSession, old, new)
    }
}
