//! Signing (on the card) and verifying (on the host, with the certificate's key): one operation
//! type, [`SignatureOp`], and one set of steps (init, one-part call, update, final) for both;
//! only how an operation ends differs ([`finish_sign`], [`finish_verify`]).

use super::object::{load_cert, op_key};
use super::session::{with_session, Session, SessionEntry};
use super::slot::{bound_card, card_error, Reader};
use super::token_info::pss_enabled;
use super::RawMechanism;
use crate::error::{CkError, CkResult, Context, ToCk};
use crate::token::mechanism::{self, Input, SignMechanism};
use crate::token::objects::{CertSource, ObjectKind};
use cryptoki_sys::*;
use jpki_card::cert::Cert;
use jpki_card::jpki::{KeyPair, PinTries};
use jpki_card::secret::SecretBuf;
use jpki_card::Error;
use rsa::RsaPublicKey;
use std::sync::Arc;

/// The key of a certificate, as an operation keeps it: not the certificate itself (the
/// signature certificate holds personal data, dropped at logout whatever operation is active).
#[derive(Clone)]
struct OpKey {
    public_key: Arc<RsaPublicKey>,
    sig_len: usize,
}

impl OpKey {
    fn of(cert: &Cert) -> OpKey {
        OpKey {
            public_key: cert.public_key().clone(),
            sig_len: cert.sig_len(),
        }
    }
}

/// Which of a session's two signature operations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sign,
    Verify,
}

/// What only a signing operation carries.
enum Purpose {
    Sign {
        /// The signature key (`CKA_ALWAYS_AUTHENTICATE`): a `C_Login(CKU_CONTEXT_SPECIFIC)`
        /// must come before this one signature.
        always_authenticate: bool,
        /// The PIN given with that login, for this one signature.
        context_pin: Option<SecretBuf>,
        /// This signature took the consent of the token's `C_Login(CKU_USER)`
        /// (`BoundCard::take_login_consent`): without a per-signature login it may use the
        /// login's PIN. The rule: `docs/security.md`, "Which signature a password allows".
        login_consent: bool,
    },
    Verify,
}

/// An active `C_SignInit` or `C_VerifyInit`.
pub(super) struct SignatureOp {
    purpose: Purpose,
    mech: SignMechanism,
    input: Input,
    /// Set by the first `*Update`: the one-part call is then refused.
    multipart: bool,
    key: OpKey,
}

impl SignatureOp {
    /// Whether this signature waits for (or accepts) a `C_Login(CKU_CONTEXT_SPECIFIC)`.
    pub(super) fn wants_context_login(&self) -> bool {
        matches!(
            self.purpose,
            Purpose::Sign {
                always_authenticate: true,
                ..
            }
        )
    }

    /// Keeps the PIN of a `C_Login(CKU_CONTEXT_SPECIFIC)` for this signature.
    pub(super) fn set_context_pin(&mut self, pin: SecretBuf) {
        if let Purpose::Sign { context_pin, .. } = &mut self.purpose {
            *context_pin = Some(pin);
        }
    }
}

/// The session's operation of `kind`.
fn active(session: &mut Session, kind: Kind) -> &mut Option<SignatureOp> {
    match kind {
        Kind::Sign => &mut session.sign,
        Kind::Verify => &mut session.verify,
    }
}

fn init(h: CK_SESSION_HANDLE, kind: Kind, m: &RawMechanism, o: CK_OBJECT_HANDLE) -> CkResult<()> {
    with_session(h, |entry, session, reader| {
        if active(session, kind).is_some() {
            return Err(CkError::OperationActive);
        }
        let mech = mechanism::parse(m)?;
        let (want, mut purpose) = match kind {
            Kind::Sign => (
                ObjectKind::PrivateKey,
                Purpose::Sign {
                    always_authenticate: entry.key == KeyPair::Sign,
                    context_pin: None,
                    login_consent: false,
                },
            ),
            Kind::Verify => (ObjectKind::PublicKey, Purpose::Verify),
        };
        op_key(entry, reader, o, want)?;
        // Verifying is on the host: PSS is verified whatever the card does.
        if kind == Kind::Sign && mech.is_pss() && !pss_enabled(bound_card(reader)?) {
            return Err(CkError::MechanismInvalid);
        }
        let key = OpKey::of(&*load_cert(reader, entry.key, CertSource::KeyPair)?);
        if let Purpose::Sign {
            always_authenticate: true,
            login_consent,
            ..
        } = &mut purpose
        {
            // Taken by the first signing operation after the login, whether or not it ends up
            // using it (a per-signature login replaces it): one login, at most one signature
            // without a per-signature login.
            *login_consent = bound_card(reader)?.take_login_consent(entry.key);
        }
        *active(session, kind) = Some(SignatureOp {
            purpose,
            mech,
            input: Input::new(mech),
            multipart: false,
            key,
        });
        Ok(())
    })
}

/// `C_Sign`/`C_Verify`: the whole input at once, then `finish`. The operation ends whatever
/// happens.
fn one_part<T>(
    h: CK_SESSION_HANDLE,
    kind: Kind,
    data: &[u8],
    finish: impl FnOnce(&SessionEntry, &mut Reader, SignatureOp) -> CkResult<T>,
) -> CkResult<T> {
    with_session(h, |entry, session, reader| {
        let mut op = active(session, kind)
            .take()
            .ok_or(CkError::OperationNotInitialized)?;
        if op.multipart {
            return Err(CkError::OperationActive);
        }
        op.input.update(data)?;
        finish(entry, reader, op)
    })
}

/// `C_SignUpdate`/`C_VerifyUpdate`. A failed update ends the operation.
fn update(h: CK_SESSION_HANDLE, kind: Kind, data: &[u8]) -> CkResult<()> {
    with_session(h, |_, session, _| {
        let slot = active(session, kind);
        let op = slot.as_mut().ok_or(CkError::OperationNotInitialized)?;
        op.multipart = true;
        if let Err(err) = op.input.update(data) {
            *slot = None;
            return Err(err);
        }
        Ok(())
    })
}

/// `C_SignFinal`/`C_VerifyFinal`. The operation ends whatever happens.
fn last_part<T>(
    h: CK_SESSION_HANDLE,
    kind: Kind,
    finish: impl FnOnce(&SessionEntry, &mut Reader, SignatureOp) -> CkResult<T>,
) -> CkResult<T> {
    with_session(h, |entry, session, reader| {
        let op = active(session, kind)
            .take()
            .ok_or(CkError::OperationNotInitialized)?;
        finish(entry, reader, op)
    })
}

/// Signs on the card, then verifies the signature with the certificate's key before returning
/// it. A failed re-verification of the held PIN logs the token out: the PIN is never tried twice.
fn finish_sign(entry: &SessionEntry, reader: &mut Reader, op: SignatureOp) -> CkResult<Vec<u8>> {
    let key = entry.key;
    let sig_len = op.key.sig_len;
    let (mode, input) = op.mech.card_input(&op.input.finish(), sig_len)?;
    let card = bound_card(reader)?;
    let held = card.held_pin(key).ok_or(CkError::UserNotLoggedIn)?;
    let pin = match op.purpose {
        Purpose::Sign {
            always_authenticate: true,
            context_pin,
            login_consent,
        } => match context_pin {
            Some(pin) => pin,
            None if login_consent => held.clone(),
            None => return Err(CkError::UserNotLoggedIn),
        },
        _ => held.clone(),
    };
    match card.sign(key, &pin, mode, &input, sig_len) {
        Ok(sig) => {
            if op.mech.verify(&op.key.public_key, &input, &sig) {
                return Ok(sig);
            }
            jpki_card::log::debug(format_args!(
                "card signature did not verify ({:?})",
                op.mech
            ));
            if op.mech.is_pss() {
                // [uncertain] PSS parameters of a real card: stop offering PSS for this card.
                card.pss_ok = false;
            }
            Err(CkError::FunctionFailed)
        }
        Err(Error::Status(sw)) if PinTries::from_sw(sw).is_some() => {
            // The held PIN no longer works (changed or blocked elsewhere): forget it (a
            // logout).
            card.logout(key);
            Err(Error::Status(sw).to_ck(Context::Sign))
        }
        Err(Error::Status(0x6A86)) if op.mech.is_pss() => {
            card.pss_ok = false;
            Err(CkError::MechanismInvalid)
        }
        Err(err) => Err(card_error(reader, err, Context::Sign)),
    }
}

/// Verifies `sig` on the host with the certificate's key.
fn finish_verify(op: SignatureOp, sig: &[u8]) -> CkResult<()> {
    let sig_len = op.key.sig_len;
    if sig.len() != sig_len {
        return Err(CkError::SignatureLenRange);
    }
    let (_, input) = op.mech.card_input(&op.input.finish(), sig_len)?;
    if op.mech.verify(&op.key.public_key, &input, sig) {
        Ok(())
    } else {
        Err(CkError::SignatureInvalid)
    }
}

pub fn sign_init(h: CK_SESSION_HANDLE, m: &RawMechanism, o: CK_OBJECT_HANDLE) -> CkResult<()> {
    init(h, Kind::Sign, m, o)
}

/// Ends the signing operation without signing (the spec's termination rule for `C_Sign`,
/// `C_SignUpdate` and `C_SignFinal` failing on their arguments).
pub fn sign_abort(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, session, _| {
        session.sign = None;
        Ok(())
    })
}

/// The length of the signature the active signing operation makes.
pub fn sign_len(h: CK_SESSION_HANDLE) -> CkResult<usize> {
    with_session(h, |_, session, _| {
        session
            .sign
            .as_ref()
            .map(|op| op.key.sig_len)
            .ok_or(CkError::OperationNotInitialized)
    })
}

pub fn sign(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<Vec<u8>> {
    one_part(h, Kind::Sign, data, finish_sign)
}

pub fn sign_update(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    update(h, Kind::Sign, data)
}

pub fn sign_final(h: CK_SESSION_HANDLE) -> CkResult<Vec<u8>> {
    last_part(h, Kind::Sign, finish_sign)
}

pub fn verify_init(h: CK_SESSION_HANDLE, m: &RawMechanism, o: CK_OBJECT_HANDLE) -> CkResult<()> {
    init(h, Kind::Verify, m, o)
}

pub fn verify(h: CK_SESSION_HANDLE, data: &[u8], sig: &[u8]) -> CkResult<()> {
    one_part(h, Kind::Verify, data, |_, _, op| finish_verify(op, sig))
}

pub fn verify_update(h: CK_SESSION_HANDLE, data: &[u8]) -> CkResult<()> {
    update(h, Kind::Verify, data)
}

pub fn verify_final(h: CK_SESSION_HANDLE, sig: &[u8]) -> CkResult<()> {
    last_part(h, Kind::Verify, |_, _, op| finish_verify(op, sig))
}
