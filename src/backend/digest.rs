//! `C_Digest*`: SHA-1 and SHA-2 digests computed on the host (no card I/O), offered because
//! generic suites and Java's SunPKCS11 (which offers RSA-PSS only for a token that lists the
//! hash) expect them.

use super::session::with_session;
use super::slot::card;
use super::RawMechanism;
use crate::error::{CkError, CkResult};
use crate::token::mechanism;
use crate::token::objects::ObjectKind;
use cryptoki_sys::*;

/// A digest computed on the host (no card I/O).
pub(super) struct DigestOp {
    alg: mechanism::HashAlg,
    hasher: mechanism::Hasher,
    multipart: bool,
}

pub fn digest_init(h: CK_SESSION_HANDLE, m: &RawMechanism) -> CkResult<()> {
    with_session(h, |_, s, _| {
        if s.digest.is_some() {
            return Err(CkError::OperationActive);
        }
        let alg = mechanism::parse_digest(m)?;
        s.digest = Some(DigestOp {
            alg,
            hasher: mechanism::Hasher::new(alg),
            multipart: false,
        });
        Ok(())
    })
}

/// The length of the active digest (known at `C_DigestInit`).
pub fn digest_len(h: CK_SESSION_HANDLE) -> CkResult<usize> {
    with_session(h, |_, s, _| {
        s.digest
            .as_ref()
            .map(|op| op.alg.output_len())
            .ok_or(CkError::OperationNotInitialized)
    })
}

/// Ends the digest operation (the termination rule, as [`sign_abort`]).
pub fn digest_abort(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, s, _| {
        s.digest = None;
        Ok(())
    })
}

pub fn digest(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<Vec<u8>> {
    with_session(h, |_, s, _| {
        let mut op = s.digest.take().ok_or(CkError::OperationNotInitialized)?;
        if op.multipart {
            return Err(CkError::OperationActive);
        }
        op.hasher.update(data);
        Ok(op.hasher.finish())
    })
}

pub fn digest_update(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    with_session(h, |_, s, _| {
        let op = s.digest.as_mut().ok_or(CkError::OperationNotInitialized)?;
        op.multipart = true;
        op.hasher.update(data);
        Ok(())
    })
}

/// `C_DigestKey`: the tokens have no secret key, and the value of an RSA key is not digested
/// (`CKR_KEY_INDIGESTIBLE` for the key objects; the operation ends, as after a failed update).
pub fn digest_key(h: CK_SESSION_HANDLE, key_handle: CK_OBJECT_HANDLE) -> CkResult<()> {
    with_session(h, |e, s, r| {
        if s.digest.is_none() {
            return Err(CkError::OperationNotInitialized);
        }
        s.digest = None;
        let logged_in = card(r)?.is_logged_in(e.key);
        match ObjectKind::from_handle(e.key, key_handle) {
            Some(obj @ (ObjectKind::PrivateKey | ObjectKind::PublicKey))
                if obj.visible(e.key, logged_in) =>
            {
                Err(CkError::KeyIndigestible)
            }
            _ => Err(CkError::KeyHandleInvalid),
        }
    })
}

pub fn digest_final(h: CK_SESSION_HANDLE) -> CkResult<Vec<u8>> {
    with_session(h, |_, s, _| {
        let op = s.digest.take().ok_or(CkError::OperationNotInitialized)?;
        Ok(op.hasher.finish())
    })
}
