//! `C_GenerateRandom` (the card's GET CHALLENGE) and `C_SeedRandom` (not supported).

use super::session::{check_session, with_session};
use super::slot::{bound_card, card_error};
use crate::error::{CkError, CkResult, Context};
use cryptoki_sys::*;

/// The most `C_GenerateRandom` gives in one call. The card's GET CHALLENGE gives 8 bytes per
/// APDU inside one transaction that holds the card for every other program: 4096 bytes is 512
/// APDUs (a few seconds over a contactless reader). More is `CKR_ARGUMENTS_BAD`; a program that
/// needs more asks several times (or seeds a generator of its own).
pub const MAX_RANDOM_LEN: usize = 4096;

pub fn generate_random(h: CK_SESSION_HANDLE, len: usize) -> CkResult<Vec<u8>> {
    if len > MAX_RANDOM_LEN {
        jpki_card::log::info(format_args!(
            "C_GenerateRandom: {len} bytes asked, at most {MAX_RANDOM_LEN} in one call"
        ));
        // The session is checked first: its code comes before this one.
        check_session(h)?;
        return Err(CkError::ArgumentsBad);
    }
    with_session(h, |_, _, reader| match bound_card(reader)?.random(len) {
        Ok(v) => Ok(v),
        Err(err) => Err(card_error(reader, err, Context::Read)),
    })
}

pub fn seed_random(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, _, _| Err(CkError::RandomSeedNotSupported))
}
