//! Random number generation (PKCS#11 3.0 §5.17).

use super::args::{in_slice, out_slice, ulong_to_usize};
use crate::backend;
use cryptoki_sys::*;

cryptoki_fn! {
    /// `C_SeedRandom` (3.0 §5.17.1): NULL `pSeed` with `ulSeedLen > 0` → `CKR_ARGUMENTS_BAD`;
    /// then `backend::seed_random`, which answers for the token (the card's generator cannot be
    /// seeded: `CKR_RANDOM_SEED_NOT_SUPPORTED`). The seed itself is not used.
    pub(crate) fn C_SeedRandom(hSession: CK_SESSION_HANDLE, pSeed: *mut CK_BYTE, ulSeedLen: CK_ULONG) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pSeed is valid for reading ulSeedLen bytes (spec §5.17.1).
        unsafe { in_slice(pSeed.cast_const(), ulSeedLen) }?;
        backend::seed_random(hSession)
    }
}

cryptoki_fn! {
    /// `C_GenerateRandom` (3.0 §5.17.2): NULL `pRandomData` with `ulRandomLen > 0` →
    /// `CKR_ARGUMENTS_BAD`; then `backend::generate_random` for exactly `ulRandomLen` bytes, copied
    /// out (a shorter or longer answer is a backend bug: `CKR_GENERAL_ERROR`).
    pub(crate) fn C_GenerateRandom(
        hSession: CK_SESSION_HANDLE,
        pRandomData: *mut CK_BYTE,
        ulRandomLen: CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pRandomData is valid for writing ulRandomLen bytes (spec §5.17.2).
        let out = unsafe { out_slice(pRandomData, ulRandomLen) }?;
        let len = ulong_to_usize(ulRandomLen)?;
        let bytes = backend::generate_random(hSession, len)?;
        if bytes.len() != len {
            return Err(crate::error::CkError::GeneralError);
        }
        out.fill(&bytes)
    }
}
