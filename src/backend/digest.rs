//! `C_Digest*`: SHA-1 and SHA-2 digests computed on the host (no card I/O), offered because
//! generic suites and Java's SunPKCS11 (which offers RSA-PSS only for a token that lists the
//! hash) expect them.

use super::session::with_session;
use super::slot::bound_card;
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
    with_session(h, |_, session, _| {
        if session.digest.is_some() {
            return Err(CkError::OperationActive);
        }
        let alg = mechanism::parse_digest(m)?;
        session.digest = Some(DigestOp {
            alg,
            hasher: mechanism::Hasher::new(alg),
            multipart: false,
        });
        Ok(())
    })
}

/// The length of the active digest (known at `C_DigestInit`).
pub fn digest_len(h: CK_SESSION_HANDLE) -> CkResult<usize> {
    with_session(h, |_, session, _| {
        session
            .digest
            .as_ref()
            .map(|op| op.alg.output_len())
            .ok_or(CkError::OperationNotInitialized)
    })
}

/// Ends the digest operation (the termination rule, as [`sign_abort`]).
pub fn digest_abort(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, session, _| {
        session.digest = None;
        Ok(())
    })
}

pub fn digest(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<Vec<u8>> {
    with_session(h, |_, session, _| {
        let mut op = session
            .digest
            .take()
            .ok_or(CkError::OperationNotInitialized)?;
        if op.multipart {
            return Err(CkError::OperationActive);
        }
        op.hasher.update(data);
        Ok(op.hasher.finish())
    })
}

pub fn digest_update(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    with_session(h, |_, session, _| {
        let op = session
            .digest
            .as_mut()
            .ok_or(CkError::OperationNotInitialized)?;
        op.multipart = true;
        op.hasher.update(data);
        Ok(())
    })
}

/// `C_DigestKey`: the tokens have no secret key, and the value of an RSA key is not digested
/// (`CKR_KEY_INDIGESTIBLE` for the key objects; the operation ends, as after a failed update).
pub fn digest_key(h: CK_SESSION_HANDLE, key_handle: CK_OBJECT_HANDLE) -> CkResult<()> {
    with_session(h, |entry, session, reader| {
        if session.digest.is_none() {
            return Err(CkError::OperationNotInitialized);
        }
        session.digest = None;
        let logged_in = bound_card(reader)?.is_logged_in(entry.key);
        match ObjectKind::from_handle(entry.key, key_handle) {
            Some(obj @ (ObjectKind::PrivateKey | ObjectKind::PublicKey))
                if obj.visible(entry.key, logged_in) =>
            {
                Err(CkError::KeyIndigestible)
            }
            _ => Err(CkError::KeyHandleInvalid),
        }
    })
}

pub fn digest_final(h: CK_SESSION_HANDLE) -> CkResult<Vec<u8>> {
    with_session(h, |_, session, _| {
        let op = session
            .digest
            .take()
            .ok_or(CkError::OperationNotInitialized)?;
        Ok(op.hasher.finish())
    })
}
