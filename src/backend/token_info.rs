//! What a token says about itself: `C_GetTokenInfo` (with the tries left in its flags) and the
//! mechanism list.

use super::session::live_sessions;
use super::slot::{bound_card, card_error, with_slot_card};
use crate::error::{CkError, CkResult, Context};
use crate::token::mechanism;
use cryptoki_sys::*;
use jpki_card::jpki::{KeyPair, PinTries};
use jpki_card::BoundCard;

/// Copies `s` into a blank-padded fixed field, cutting at a character boundary.
pub(super) fn padded<const N: usize>(s: &str) -> [CK_UTF8CHAR; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

/// The token label of a key pair's token.
fn token_label(key: KeyPair) -> &'static str {
    match key {
        KeyPair::Auth => "JPKI User Authentication",
        KeyPair::Sign => "JPKI Digital Signature",
    }
}

/// The token flags that tell the tries left on `key`'s PIN.
fn pin_flags(key: KeyPair, tries: Option<PinTries>) -> CK_FLAGS {
    match tries {
        Some(PinTries::Blocked) | Some(PinTries::Left(0)) => CKF_USER_PIN_LOCKED,
        Some(PinTries::Left(1)) => CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW,
        Some(PinTries::Left(n)) if n < key.max_tries() => CKF_USER_PIN_COUNT_LOW,
        _ => 0,
    }
}

pub fn get_token_info(slot: CK_SLOT_ID) -> CkResult<CK_TOKEN_INFO> {
    with_slot_card(slot, |reader, key| {
        let (sessions, rw_sessions) = live_sessions(slot, reader.generation)?;
        let card = bound_card(reader)?;
        let tries = card.refresh_tries(key);
        let tries = match tries {
            Ok(t) => t,
            Err(err) => return Err(card_error(reader, err, Context::Read)),
        };
        let card = bound_card(reader)?;
        let flags = CKF_RNG
            | CKF_WRITE_PROTECTED
            | CKF_LOGIN_REQUIRED
            | CKF_USER_PIN_INITIALIZED
            | CKF_TOKEN_INITIALIZED
            | pin_flags(key, Some(tries))
            // [config] With a pinentry configured, C_Login(NULL PIN) asks through it.
            | if crate::config::get().pinentry.is_some() {
                CKF_PROTECTED_AUTHENTICATION_PATH
            } else {
                0
            };
        Ok(CK_TOKEN_INFO {
            label: padded(token_label(key)),
            manufacturerID: padded("J-LIS"),
            model: padded("My Number Card"),
            serialNumber: padded(&card.serial),
            flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: sessions,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: rw_sessions,
            ulMaxPinLen: key.max_pin_len() as CK_ULONG,
            ulMinPinLen: key.min_pin_len() as CK_ULONG,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: CK_VERSION { major: 0, minor: 0 },
            firmwareVersion: CK_VERSION { major: 0, minor: 0 },
            utcTime: [b' '; 16],
        })
    })
}

/// The mechanisms of a card's tokens (PSS only while it works on this card).
fn mechanisms(card: &BoundCard) -> Vec<CK_MECHANISM_TYPE> {
    mechanism::ALL
        .iter()
        .copied()
        .filter(|m| pss_enabled(card) || !mechanism::is_pss(*m))
        .chain(mechanism::DIGESTS)
        .collect()
}

/// Whether RSA-PSS is offered for this card: not refused by the card (`pss_ok`, automatic) and
/// not switched off by the user (`pss = false` in the configuration file).
pub(super) fn pss_enabled(card: &BoundCard) -> bool {
    card.pss_ok && crate::config::get().pss
}

pub fn get_mechanism_list(slot: CK_SLOT_ID) -> CkResult<Vec<CK_MECHANISM_TYPE>> {
    with_slot_card(slot, |reader, _| Ok(mechanisms(bound_card(reader)?)))
}

pub fn get_mechanism_info(slot: CK_SLOT_ID, ty: CK_MECHANISM_TYPE) -> CkResult<CK_MECHANISM_INFO> {
    with_slot_card(slot, |reader, _| {
        if !mechanisms(bound_card(reader)?).contains(&ty) {
            return Err(CkError::MechanismInvalid);
        }
        mechanism::info(ty)
    })
}
