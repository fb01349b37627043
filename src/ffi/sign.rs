//! Signing and verification (PKCS#11 3.0 §5.13, §5.14). `C_SignRecover*`/`C_VerifyRecover*`
//! are in [`super::unsupported`].
//!
//! Termination rule (3.0 §5.13.2): "A call to C_Sign always terminates the active signing
//! operation unless it returns CKR_BUFFER_TOO_SMALL or is a successful call (i.e., one which
//! returns CKR_OK) to determine the length of the buffer needed to hold the signature." The size
//! query and the too-small answer are decided here from `backend::sign_len` (known at `C_SignInit`,
//! no card round trip) and never reach `backend::sign`/`backend::sign_final`, which end the operation on
//! every outcome.

use super::args::{in_slice, mechanism, OutBuf, Space};
use crate::backend;
use crate::error::CkResult;
use cryptoki_sys::*;

/// The shared tail of `C_Sign` and `C_SignFinal`: answer a size query or a short buffer from
/// `needed` (`backend::sign_len`), otherwise run `produce` (which ends the operation) and copy its
/// output. `produce` runs only when the buffer has room.
pub(crate) fn sign_two_call(
    needed: usize,
    out: OutBuf<'_, u8>,
    produce: impl FnOnce() -> CkResult<Vec<u8>>,
) -> CkResult<()> {
    match out.reserve(needed)? {
        Space::LengthOnly => Ok(()),
        Space::Room => out.write(&produce()?),
    }
}

cryptoki_fn! {
    /// `C_SignInit` (3.0 §5.13.1): NULL `pMechanism` → `CKR_ARGUMENTS_BAD`; the mechanism
    /// parameter is decoded (PSS parameters read unaligned after an exact size check), then
    /// `backend::sign_init`.
    pub(crate) fn C_SignInit(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pMechanism points to a CK_MECHANISM whose pParameter is NULL or
        // valid for ulParameterLen bytes (spec §5.13.1).
        let mech = unsafe { mechanism(pMechanism) }?;
        backend::sign_init(hSession, &mech, hKey)
    }
}

cryptoki_fn! {
    /// `C_Sign` (3.0 §5.13.2): NULL `pulSignatureLen`, or NULL `pData` with `ulDataLen > 0` →
    /// `CKR_ARGUMENTS_BAD`. NULL `pSignature` → `*pulSignatureLen = backend::sign_len`, `CKR_OK`,
    /// operation kept. `*pulSignatureLen` too small → the length and `CKR_BUFFER_TOO_SMALL`,
    /// operation kept. Otherwise `backend::sign` (which ends the operation) and the signature is
    /// copied with its exact length.
    pub(crate) fn C_Sign(
        hSession: CK_SESSION_HANDLE,
        pData: *mut CK_BYTE,
        ulDataLen: CK_ULONG,
        pSignature: *mut CK_BYTE,
        pulSignatureLen: *mut CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: pulSignatureLen, if non-NULL, is valid for reading and writing a CK_ULONG; a
        // non-NULL pSignature has room for *pulSignatureLen bytes; a non-NULL pData is valid
        // for reading ulDataLen bytes (spec §5.13.2, §5.2).
        let args = unsafe {
            OutBuf::new(pSignature, pulSignatureLen)
                .and_then(|out| Ok((out, in_slice(pData.cast_const(), ulDataLen)?)))
        };
        // Bad arguments end the operation too (only BUFFER_TOO_SMALL and a size query keep it).
        let (out, data) = args.inspect_err(|_| {
            let _ = backend::sign_abort(hSession);
        })?;
        sign_two_call(backend::sign_len(hSession)?, out, || backend::sign(hSession, data))
    }
}

cryptoki_fn! {
    /// `C_SignUpdate` (3.0 §5.13.3): NULL `pPart` with `ulPartLen > 0` → `CKR_ARGUMENTS_BAD`;
    /// then `backend::sign_update` (a failing update ends the operation, in the backend).
    pub(crate) fn C_SignUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pPart is valid for reading ulPartLen bytes (spec §5.13.3).
        let part = unsafe { in_slice(pPart.cast_const(), ulPartLen) }.inspect_err(|_| {
            let _ = backend::sign_abort(hSession);
        })?;
        backend::sign_update(hSession, part)
    }
}

cryptoki_fn! {
    /// `C_SignFinal` (3.0 §5.13.4): as `C_Sign`, with `backend::sign_final` producing the
    /// signature.
    pub(crate) fn C_SignFinal(
        hSession: CK_SESSION_HANDLE,
        pSignature: *mut CK_BYTE,
        pulSignatureLen: *mut CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: pulSignatureLen, if non-NULL, is valid for reading and writing a CK_ULONG,
        // and a non-NULL pSignature has room for *pulSignatureLen bytes (spec §5.13.4, §5.2).
        let out = unsafe { OutBuf::new(pSignature, pulSignatureLen) }.inspect_err(|_| {
            let _ = backend::sign_abort(hSession);
        })?;
        sign_two_call(backend::sign_len(hSession)?, out, || backend::sign_final(hSession))
    }
}

cryptoki_fn! {
    /// `C_VerifyInit` (3.0 §5.14.1): NULL `pMechanism` → `CKR_ARGUMENTS_BAD`; then
    /// `backend::verify_init`.
    pub(crate) fn C_VerifyInit(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pMechanism points to a CK_MECHANISM whose pParameter is NULL or
        // valid for ulParameterLen bytes (spec §5.14.1).
        let mech = unsafe { mechanism(pMechanism) }?;
        backend::verify_init(hSession, &mech, hKey)
    }
}

cryptoki_fn! {
    /// `C_Verify` (3.0 §5.14.2): NULL `pData`/`pSignature` with a non-zero length →
    /// `CKR_ARGUMENTS_BAD`; then `backend::verify`.
    pub(crate) fn C_Verify(
        hSession: CK_SESSION_HANDLE,
        pData: *mut CK_BYTE,
        ulDataLen: CK_ULONG,
        pSignature: *mut CK_BYTE,
        ulSignatureLen: CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: non-NULL pData/pSignature are valid for reading their lengths in bytes
        // (spec §5.14.2).
        let (data, signature) = unsafe {
            (in_slice(pData.cast_const(), ulDataLen)?, in_slice(pSignature.cast_const(), ulSignatureLen)?)
        };
        backend::verify(hSession, data, signature)
    }
}

cryptoki_fn! {
    /// `C_VerifyUpdate` (3.0 §5.14.3): NULL `pPart` with `ulPartLen > 0` → `CKR_ARGUMENTS_BAD`;
    /// then `backend::verify_update`.
    pub(crate) fn C_VerifyUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pPart is valid for reading ulPartLen bytes (spec §5.14.3).
        let part = unsafe { in_slice(pPart.cast_const(), ulPartLen) }?;
        backend::verify_update(hSession, part)
    }
}

cryptoki_fn! {
    /// `C_VerifyFinal` (3.0 §5.14.4): NULL `pSignature` with `ulSignatureLen > 0` →
    /// `CKR_ARGUMENTS_BAD`; then `backend::verify_final`.
    pub(crate) fn C_VerifyFinal(
        hSession: CK_SESSION_HANDLE,
        pSignature: *mut CK_BYTE,
        ulSignatureLen: CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pSignature is valid for reading ulSignatureLen bytes
        // (spec §5.14.4).
        let signature = unsafe { in_slice(pSignature.cast_const(), ulSignatureLen) }?;
        backend::verify_final(hSession, signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CkError;
    use std::cell::Cell;
    use std::ptr;

    #[test]
    fn size_query_and_short_buffer_do_not_sign() {
        let signed = Cell::new(0);
        let produce = || {
            signed.set(signed.get() + 1);
            Ok(vec![7u8; 256])
        };
        // Size query: length written, CKR_OK, nothing produced.
        let mut len: CK_ULONG = 0;
        // SAFETY: NULL buffer; `len` is valid.
        let out = unsafe { OutBuf::new(ptr::null_mut(), &mut len) }.unwrap();
        assert_eq!(sign_two_call(256, out, produce), Ok(()));
        assert_eq!((len, signed.get()), (256, 0));
        // One-byte buffer (pkcs11-tool --test): BUFFER_TOO_SMALL with the length, not produced.
        let mut one = [0u8; 1];
        let mut len: CK_ULONG = 1;
        // SAFETY: `one` holds `len` bytes.
        let out = unsafe { OutBuf::new(one.as_mut_ptr(), &mut len) }.unwrap();
        assert_eq!(
            sign_two_call(256, out, produce),
            Err(CkError::BufferTooSmall)
        );
        assert_eq!((len, signed.get(), one[0]), (256, 0, 0));
        // Large enough: produced once, copied, exact length.
        let mut buf = vec![0u8; 300];
        let mut len: CK_ULONG = 300;
        // SAFETY: `buf` holds `len` bytes.
        let out = unsafe { OutBuf::new(buf.as_mut_ptr(), &mut len) }.unwrap();
        assert_eq!(sign_two_call(256, out, produce), Ok(()));
        assert_eq!((len, signed.get()), (256, 1));
        assert!(buf[..256].iter().all(|b| *b == 7) && buf[256] == 0);
    }

    #[test]
    fn producer_error_is_returned() {
        let mut buf = vec![0u8; 256];
        let mut len: CK_ULONG = 256;
        // SAFETY: `buf` holds `len` bytes.
        let out = unsafe { OutBuf::new(buf.as_mut_ptr(), &mut len) }.unwrap();
        let r = sign_two_call(256, out, || Err(CkError::UserNotLoggedIn));
        assert_eq!(r, Err(CkError::UserNotLoggedIn));
        assert_eq!(len, 256);
    }
}
