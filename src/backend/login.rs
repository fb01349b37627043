//! `C_Login`, `C_Logout`, `C_SetPIN`. A PIN the card cannot hold is refused here, before the
//! card sees it; the login state itself is the token's (`BoundCard::is_logged_in`, `login`,
//! `logout`).

use super::prompt::{ask_pin, pin_prompt};
use super::session::{with_session, Session, SessionEntry};
use super::slot::{bound_card, card_error, Reader};
use crate::error::{CkError, CkResult, Context};
use cryptoki_sys::*;
use jpki_card::jpki::{normalize_new_pin, normalize_pin, KeyPair, PinFormat, PinTries};
use jpki_card::secret::SecretBuf;
use zeroize::Zeroizing;

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a new PIN's format for `key` (`C_SetPIN`): `CKR_PIN_LEN_RANGE` or `CKR_PIN_INVALID`,
/// nothing sent. A new signature password must also mix letters and digits (the card's
/// official rule). Returned in a [`SecretBuf`] (wiped when dropped, not in core dumps).
fn checked_new_pin(key: KeyPair, pin: &[u8]) -> CkResult<SecretBuf> {
    match normalize_new_pin(key, pin) {
        Ok(p) => Ok(SecretBuf::from_slice(&Zeroizing::new(p))),
        Err(f) => {
            jpki_card::log::info(format_args!(
                "new {} refused before the card: {}",
                key.pin_name(),
                f.reason(key)
            ));
            match f {
                PinFormat::Length => Err(CkError::PinLenRange),
                PinFormat::Characters | PinFormat::NotMixed => Err(CkError::PinInvalid),
            }
        }
    }
}

/// Checks a presented PIN's format for `key` (`C_Login`, the old PIN of `C_SetPIN`). A PIN the
/// card cannot hold cannot be right: `CKR_PIN_INCORRECT` (the code of `C_Login`'s list, on which
/// NSS asks again), with the precise reason in the log, and nothing sent to the card.
fn checked_pin(key: KeyPair, pin: &[u8]) -> CkResult<SecretBuf> {
    let p = normalize_pin(key, pin).map(Zeroizing::new).map_err(|f| {
        jpki_card::log::info(format_args!(
            "{} refused before the card (no try used): {}",
            key.pin_name(),
            f.reason(key)
        ));
        CkError::PinIncorrect
    })?;
    Ok(SecretBuf::from_slice(&p))
}

/// What must hold for `C_Login(user_type)` in this session, before any PIN is asked for or sent.
fn login_allowed(
    entry: &SessionEntry,
    session: &Session,
    reader: &mut Reader,
    user_type: CK_USER_TYPE,
) -> CkResult<()> {
    match user_type {
        CKU_USER => {
            if bound_card(reader)?.is_logged_in(entry.key) {
                return Err(CkError::UserAlreadyLoggedIn);
            }
        }
        CKU_CONTEXT_SPECIFIC => {
            if !session
                .sign
                .as_ref()
                .is_some_and(|op| op.wants_context_login())
            {
                return Err(CkError::OperationNotInitialized);
            }
        }
        _ => return Err(CkError::UserTypeInvalid),
    }
    Ok(())
}

pub fn login(h: CK_SESSION_HANDLE, user_type: CK_USER_TYPE, pin: Option<&[u8]>) -> CkResult<()> {
    // [pinentry] A NULL PIN asks through the configured pinentry program, with no lock held
    // while the person types (every other call of every thread goes on meanwhile); the answer
    // then goes through exactly the same checks and single VERIFY as a PIN passed in.
    let asked;
    let pin = match pin {
        Some(p) => p,
        None => {
            let (program, text) = with_session(h, |entry, session, reader| {
                login_allowed(entry, session, reader, user_type)?;
                pin_prompt(reader, entry.key, user_type)
            })?;
            asked = ask_pin(&program, &text)?;
            asked.as_slice()
        }
    };
    with_session(h, |entry, session, reader| {
        let key = entry.key;
        // Again: the state may have changed while the pinentry was shown.
        login_allowed(entry, session, reader, user_type)?;
        let pin = match checked_pin(key, pin) {
            Ok(pin) => pin,
            Err(err) => {
                // A per-signature login refused for its format ends the signing operation too:
                // NSS asks its callback again for as long as the answer is CKR_PIN_INCORRECT, and
                // a callback that always gives the same password (poppler's pdfsig gives an
                // empty one when no -kpw is given) would loop for ever; the next try gets
                // CKR_OPERATION_NOT_INITIALIZED, which NSS does not retry.
                if user_type == CKU_CONTEXT_SPECIFIC {
                    session.sign = None;
                }
                return Err(err);
            }
        };
        let card = bound_card(reader)?;
        if card.tries(key) == Some(PinTries::Blocked) {
            return Err(CkError::PinLocked);
        }
        if user_type == CKU_USER {
            return card
                .login(key, pin)
                .map_err(|err| card_error(reader, err, Context::Login));
        }
        // CKU_CONTEXT_SPECIFIC. The per-signature password is the logged-in user's, which the
        // card accepted at C_Login: when it is the same, it is checked here, and presented to
        // the card inside the signing transaction only (3 APDUs fewer per signature). A
        // different password is verified on the card at once, so a wrong one is reported
        // here, not by C_Sign.
        let same_as_held = card
            .held_pin(key)
            .is_some_and(|held| same_secret(held, &pin));
        if !same_as_held {
            if let Err(err) = card.verify_pin(key, &pin) {
                // A failed per-signature login ends the signing operation: NSS presents the
                // same wrong password again for as long as the operation lives, and each time
                // would cost a try (5 tries: the key blocked by one mistyped export).
                session.sign = None;
                return Err(card_error(reader, err, Context::Login));
            }
        }
        if let Some(op) = session.sign.as_mut() {
            op.set_context_pin(pin);
        }
        Ok(())
    })
}

pub fn logout(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |entry, _, reader| {
        // The PIN and the signature certificate (personal data) are wiped.
        if !bound_card(reader)?.logout(entry.key) {
            return Err(CkError::UserNotLoggedIn);
        }
        Ok(())
    })
}

pub fn set_pin(h: CK_SESSION_HANDLE, old: Option<&[u8]>, new: Option<&[u8]>) -> CkResult<()> {
    with_session(h, |entry, _, reader| {
        if !entry.rw {
            return Err(CkError::SessionReadOnly);
        }
        let (old, new) = (
            old.ok_or(CkError::ArgumentsBad)?,
            new.ok_or(CkError::ArgumentsBad)?,
        );
        // An old PIN of the wrong format cannot be right: refuse it without a try.
        let old = checked_pin(entry.key, old)?;
        let new = checked_new_pin(entry.key, new)?;
        // (A blocked PIN is refused by `change_pin` before the card sees it.)
        // A logged-in token holds the new PIN from now on.
        bound_card(reader)?
            .change_pin(entry.key, &old, &new)
            .map_err(|err| card_error(reader, err, Context::Login))
    })
}
