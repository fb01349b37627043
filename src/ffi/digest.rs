//! Message digesting (PKCS#11 3.0 §5.12), computed on the host: SHA-1, SHA-224, SHA-256,
//! SHA-384, SHA-512. The termination rule is `C_Sign`'s (§5.12.2): every outcome ends the
//! operation except `CKR_BUFFER_TOO_SMALL` and a successful length query, which are answered
//! here from `backend::digest_len` (known at `C_DigestInit`).

use super::args::{in_slice, mechanism, OutBuf};
use super::sign::sign_two_call;
use crate::backend;
use cryptoki_sys::*;

cryptoki_fn! {
    /// `C_DigestInit` (3.0 §5.12.1): NULL `pMechanism` → `CKR_ARGUMENTS_BAD`; then
    /// `backend::digest_init` (`CKR_MECHANISM_INVALID` for anything but the five hashes).
    pub(crate) fn C_DigestInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pMechanism points to a CK_MECHANISM whose pParameter is NULL or
        // valid for ulParameterLen bytes (spec §5.12.1).
        let mech = unsafe { mechanism(pMechanism) }?;
        backend::digest_init(hSession, &mech)
    }
}

cryptoki_fn! {
    /// `C_Digest` (3.0 §5.12.2): NULL `pulDigestLen`, or NULL `pData` with `ulDataLen > 0` →
    /// `CKR_ARGUMENTS_BAD` (which ends the operation). NULL `pDigest` → the length, operation
    /// kept; too small → the length and `CKR_BUFFER_TOO_SMALL`, operation kept.
    pub(crate) fn C_Digest(
        hSession: CK_SESSION_HANDLE,
        pData: *mut CK_BYTE,
        ulDataLen: CK_ULONG,
        pDigest: *mut CK_BYTE,
        pulDigestLen: *mut CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: pulDigestLen, if non-NULL, is valid for reading and writing a CK_ULONG; a
        // non-NULL pDigest has room for *pulDigestLen bytes; a non-NULL pData is valid for
        // reading ulDataLen bytes (spec §5.12.2, §5.2).
        let args = unsafe {
            OutBuf::new(pDigest, pulDigestLen)
                .and_then(|out| Ok((out, in_slice(pData.cast_const(), ulDataLen)?)))
        };
        let (out, data) = args.inspect_err(|_| {
            let _ = backend::digest_abort(hSession);
        })?;
        sign_two_call(backend::digest_len(hSession)?, out, || backend::digest(hSession, data))
    }
}

cryptoki_fn! {
    /// `C_DigestUpdate` (3.0 §5.12.3): NULL `pPart` with `ulPartLen > 0` →
    /// `CKR_ARGUMENTS_BAD` (which ends the operation); then `backend::digest_update`.
    pub(crate) fn C_DigestUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pPart is valid for reading ulPartLen bytes (spec §5.12.3).
        let part = unsafe { in_slice(pPart.cast_const(), ulPartLen) }.inspect_err(|_| {
            let _ = backend::digest_abort(hSession);
        })?;
        backend::digest_update(hSession, part)
    }
}

cryptoki_fn! {
    /// `C_DigestKey` (3.0 §5.12.4): the tokens hold RSA keys only, whose values are not
    /// digested: `CKR_KEY_INDIGESTIBLE` for them, `CKR_KEY_HANDLE_INVALID` otherwise.
    pub(crate) fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) {
        backend::check_initialized()?;
        backend::digest_key(hSession, hKey)
    }
}

cryptoki_fn! {
    /// `C_DigestFinal` (3.0 §5.12.5): as `C_Digest`, with `backend::digest_final` producing the
    /// digest.
    pub(crate) fn C_DigestFinal(
        hSession: CK_SESSION_HANDLE,
        pDigest: *mut CK_BYTE,
        pulDigestLen: *mut CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: pulDigestLen, if non-NULL, is valid for reading and writing a CK_ULONG, and a
        // non-NULL pDigest has room for *pulDigestLen bytes (spec §5.12.5, §5.2).
        let out = unsafe { OutBuf::new(pDigest, pulDigestLen) }.inspect_err(|_| {
            let _ = backend::digest_abort(hSession);
        })?;
        sign_two_call(backend::digest_len(hSession)?, out, || backend::digest_final(hSession))
    }
}
