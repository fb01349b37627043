//! Signing and verification (PKCS#11 3.0 §5.13, §5.14). `C_SignRecover*`/`C_VerifyRecover*`
//! are in [`super::unsupported`].
//!
//! Termination rule (3.0 §5.13.2): "A call to C_Sign always terminates the active signing
//! operation unless it returns CKR_BUFFER_TOO_SMALL or is a successful call (i.e., one which
//! returns CKR_OK) to determine the length of the buffer needed to hold the signature." The size
//! query and the too-small answer are decided here from `api::sign_len` (known at `C_SignInit`,
//! no card round trip) and never reach `api::sign`/`api::sign_final`, which end the operation on
//! every outcome.

use super::args::{in_slice, mechanism, OutBuf, Space};
use crate::api;
use crate::error::CkResult;
use cryptoki_sys::*;

/// The shared tail of `C_Sign` and `C_SignFinal`: answer a size query or a short buffer from
/// `api::sign_len`, otherwise run `produce` (which ends the operation) and copy its output.
fn sign_two_call(
    hSession: CK_SESSION_HANDLE,
    out: OutBuf<'_, u8>,
    produce: impl FnOnce() -> CkResult<Vec<u8>>,
) -> CkResult<()> {
    let needed = api::sign_len(hSession)?;
    match out.reserve(needed)? {
        Space::LengthOnly => Ok(()),
        Space::Room => out.write(&produce()?),
    }
}

cryptoki_fn! {
    /// `C_SignInit` (3.0 §5.13.1): NULL `pMechanism` → `CKR_ARGUMENTS_BAD`; the mechanism
    /// parameter is decoded (PSS parameters read unaligned after an exact size check), then
    /// `api::sign_init`.
    pub(crate) fn C_SignInit(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE,
    ) {
        api::check_initialized()?;
        // SAFETY: a non-NULL pMechanism points to a CK_MECHANISM whose pParameter is NULL or
        // valid for ulParameterLen bytes (spec §5.13.1).
        let mech = unsafe { mechanism(pMechanism) }?;
        api::sign_init(hSession, &mech, hKey)
    }
}

cryptoki_fn! {
    /// `C_Sign` (3.0 §5.13.2): NULL `pulSignatureLen`, or NULL `pData` with `ulDataLen > 0` →
    /// `CKR_ARGUMENTS_BAD`. NULL `pSignature` → `*pulSignatureLen = api::sign_len`, `CKR_OK`,
    /// operation kept. `*pulSignatureLen` too small → the length and `CKR_BUFFER_TOO_SMALL`,
    /// operation kept. Otherwise `api::sign` (which ends the operation) and the signature is
    /// copied with its exact length.
    pub(crate) fn C_Sign(
        hSession: CK_SESSION_HANDLE,
        pData: *mut CK_BYTE,
        ulDataLen: CK_ULONG,
        pSignature: *mut CK_BYTE,
        pulSignatureLen: *mut CK_ULONG,
    ) {
        api::check_initialized()?;
        // SAFETY: pulSignatureLen, if non-NULL, is valid for reading and writing a CK_ULONG; a
        // non-NULL pSignature has room for *pulSignatureLen bytes; a non-NULL pData is valid
        // for reading ulDataLen bytes (spec §5.13.2, §5.2).
        let (out, data) = unsafe {
            (OutBuf::new(pSignature, pulSignatureLen)?, in_slice(pData.cast_const(), ulDataLen)?)
        };
        sign_two_call(hSession, out, || api::sign(hSession, data))
    }
}

cryptoki_fn! {
    /// `C_SignUpdate` (3.0 §5.13.3): NULL `pPart` with `ulPartLen > 0` → `CKR_ARGUMENTS_BAD`;
    /// then `api::sign_update` (a failing update ends the operation, in the backend).
    pub(crate) fn C_SignUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        api::check_initialized()?;
        // SAFETY: a non-NULL pPart is valid for reading ulPartLen bytes (spec §5.13.3).
        let part = unsafe { in_slice(pPart.cast_const(), ulPartLen) }?;
        api::sign_update(hSession, part)
    }
}

cryptoki_fn! {
    /// `C_SignFinal` (3.0 §5.13.4): as `C_Sign`, with `api::sign_final` producing the
    /// signature.
    pub(crate) fn C_SignFinal(
        hSession: CK_SESSION_HANDLE,
        pSignature: *mut CK_BYTE,
        pulSignatureLen: *mut CK_ULONG,
    ) {
        api::check_initialized()?;
        // SAFETY: pulSignatureLen, if non-NULL, is valid for reading and writing a CK_ULONG,
        // and a non-NULL pSignature has room for *pulSignatureLen bytes (spec §5.13.4, §5.2).
        let out = unsafe { OutBuf::new(pSignature, pulSignatureLen) }?;
        sign_two_call(hSession, out, || api::sign_final(hSession))
    }
}

cryptoki_fn! {
    /// `C_VerifyInit` (3.0 §5.14.1): NULL `pMechanism` → `CKR_ARGUMENTS_BAD`; then
    /// `api::verify_init`.
    pub(crate) fn C_VerifyInit(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE,
    ) {
        api::check_initialized()?;
        // SAFETY: a non-NULL pMechanism points to a CK_MECHANISM whose pParameter is NULL or
        // valid for ulParameterLen bytes (spec §5.14.1).
        let mech = unsafe { mechanism(pMechanism) }?;
        api::verify_init(hSession, &mech, hKey)
    }
}

cryptoki_fn! {
    /// `C_Verify` (3.0 §5.14.2): NULL `pData`/`pSignature` with a non-zero length →
    /// `CKR_ARGUMENTS_BAD`; then `api::verify`.
    pub(crate) fn C_Verify(
        hSession: CK_SESSION_HANDLE,
        pData: *mut CK_BYTE,
        ulDataLen: CK_ULONG,
        pSignature: *mut CK_BYTE,
        ulSignatureLen: CK_ULONG,
    ) {
        api::check_initialized()?;
        // SAFETY: non-NULL pData/pSignature are valid for reading their lengths in bytes
        // (spec §5.14.2).
        let (data, signature) = unsafe {
            (in_slice(pData.cast_const(), ulDataLen)?, in_slice(pSignature.cast_const(), ulSignatureLen)?)
        };
        api::verify(hSession, data, signature)
    }
}

cryptoki_fn! {
    /// `C_VerifyUpdate` (3.0 §5.14.3): NULL `pPart` with `ulPartLen > 0` → `CKR_ARGUMENTS_BAD`;
    /// then `api::verify_update`.
    pub(crate) fn C_VerifyUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        api::check_initialized()?;
        // SAFETY: a non-NULL pPart is valid for reading ulPartLen bytes (spec §5.14.3).
        let part = unsafe { in_slice(pPart.cast_const(), ulPartLen) }?;
        api::verify_update(hSession, part)
    }
}

cryptoki_fn! {
    /// `C_VerifyFinal` (3.0 §5.14.4): NULL `pSignature` with `ulSignatureLen > 0` →
    /// `CKR_ARGUMENTS_BAD`; then `api::verify_final`.
    pub(crate) fn C_VerifyFinal(
        hSession: CK_SESSION_HANDLE,
        pSignature: *mut CK_BYTE,
        ulSignatureLen: CK_ULONG,
    ) {
        api::check_initialized()?;
        // SAFETY: a non-NULL pSignature is valid for reading ulSignatureLen bytes
        // (spec §5.14.4).
        let signature = unsafe { in_slice(pSignature.cast_const(), ulSignatureLen) }?;
        api::verify_final(hSession, signature)
    }
}
