//! The PKCS#11 view of one My Number Card in one reader: the card's two tokens (authentication,
//! signature), what is cached about them, and every card operation the tokens need, each run as
//! one PC/SC transaction that begins by selecting the JPKI application and, if a PIN was
//! presented, ends by dropping the card's security state.
//!
//! **The card is never left unlocked.** A VERIFY opens a key for every process on the machine
//! until another application is selected or the card is reset. So [`BoundCard::run`] selects
//! another application before it ends any transaction that presented a PIN, and resets the card
//! if that fails. A login that outlives one call is kept as the PIN itself, in zeroized memory,
//! and presented again inside the transaction that needs it.

pub mod cert;
pub mod mechanism;
pub mod objects;

use crate::card::apdu::{hex, Exchange};
use crate::card::jpki::{self, KeyRef, PinTries, Sfi, SignMode};
use crate::card::CardChannel;
use crate::error::Error;
use crate::secret::SecretBuf;
use cert::Cert;
use std::sync::Arc;

/// What is known about one token (one key pair) of a bound card.
#[derive(Default)]
pub struct TokenState {
    /// The PIN of a logged-in user, held to re-verify inside later transactions (wiped when
    /// dropped, not in core dumps).
    pub pin: Option<SecretBuf>,
    /// Tries left, as last read from the card.
    pub tries: Option<PinTries>,
    /// The key pair's certificate, once read. The signature certificate (personal data) is
    /// kept only while logged in (see [`BoundCard::logout`]).
    pub cert: Option<Arc<Cert>>,
    /// The issuing CA's certificate, once read.
    pub ca: Option<Arc<Cert>>,
    /// A salted hash of the last PIN the card refused for this token (see [`pin_fingerprint`]).
    wrong_pin: Option<[u8; 32]>,
}

/// A salted SHA-256 of a PIN, to recognise a PIN the card has just refused without keeping the
/// PIN itself. The salt is random per process.
fn pin_fingerprint(pin: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    static SALT: once_cell::sync::Lazy<[u8; 32]> = once_cell::sync::Lazy::new(|| {
        use rsa::rand_core::RngCore;
        let mut salt = [0u8; 32];
        rsa::rand_core::OsRng.fill_bytes(&mut salt);
        salt
    });
    let mut h = Sha256::new();
    h.update(*SALT);
    h.update(pin);
    h.finalize().into()
}

/// A My Number Card connected in a reader.
pub struct BoundCard {
    chan: Box<dyn CardChannel>,
    /// Token serial number (from the authentication certificate's serial).
    pub serial: String,
    /// The first bytes of the authentication certificate, read at bind time.
    auth_head: Vec<u8>,
    tokens: [TokenState; 2],
    /// False once the card refused PSS or returned a PSS signature that did not verify.
    pub pss_ok: bool,
    /// APDUs sent to this card (for tests and benchmarks).
    pub apdus: usize,
    /// Whether the card takes short EF identifiers (learnt on the way).
    sfi: Sfi,
}

/// Index of a key's token state.
fn ix(key: KeyRef) -> usize {
    match key {
        KeyRef::Auth => 0,
        KeyRef::Sign => 1,
    }
}

impl BoundCard {
    /// Checks that the card is a My Number Card (selects the JPKI application) and reads what
    /// identifies it (the start of the authentication certificate, for the serial number).
    pub fn bind(chan: Box<dyn CardChannel>) -> Result<BoundCard, Error> {
        let mut card = BoundCard {
            chan,
            serial: String::new(),
            auth_head: Vec::new(),
            tokens: Default::default(),
            pss_ok: true,
            apdus: 0,
            sfi: Sfi::default(),
        };
        let head = card.run_sfi(|x, sfi| jpki::read_head(x, KeyRef::Auth.cert_ef(), sfi))?;
        let serial = cert::serial_from_head(&head).unwrap_or_default();
        // The token serial is 16 characters: keep the low-order end of the certificate serial.
        let hexed = hex(&serial);
        card.serial = hexed[hexed.len().saturating_sub(16)..].to_string();
        card.auth_head = head.to_vec(); // the authentication certificate: no personal data
        Ok(card)
    }

    pub fn token(&self, key: KeyRef) -> &TokenState {
        &self.tokens[ix(key)]
    }

    pub fn token_mut(&mut self, key: KeyRef) -> &mut TokenState {
        &mut self.tokens[ix(key)]
    }

    /// Runs `f` inside one transaction, after selecting the JPKI application. If `f` presented a
    /// PIN, the card's security state is dropped before the transaction ends (by selecting another
    /// application, or by resetting the card if no other application can be selected), whatever
    /// `f` returned.
    pub fn run<T>(
        &mut self,
        f: impl FnOnce(&mut Exchange<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.run_sfi(|x, _| f(x))
    }

    /// [`BoundCard::run`], with what is known of the card's short EF identifiers handed to `f`
    /// and kept for the next transaction.
    fn run_sfi<T>(
        &mut self,
        f: impl FnOnce(&mut Exchange<'_>, &mut Sfi) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut sfi = self.sfi;
        let (result, must_reset) = {
            let mut tx = self.chan.transaction()?;
            let mut x = Exchange::new(&mut *tx);
            let result = jpki::select_jpki(&mut x).and_then(|()| f(&mut x, &mut sfi));
            let mut must_reset = false;
            if x.pin_presented {
                match jpki::drop_security_state(&mut x) {
                    Ok(()) => {}
                    // The card is gone: nothing is left unlocked.
                    Err(Error::CardRemoved) => {}
                    Err(_) => must_reset = true,
                }
            }
            self.apdus += x.sent;
            (result, must_reset)
        };
        self.sfi = sfi;
        if must_reset {
            crate::log::debug(format_args!(
                "could not leave the JPKI application: resetting the card"
            ));
            self.chan.reset()?;
        }
        result
    }

    /// Reads the tries left on `key`'s PIN (costs no try) and remembers them.
    pub fn refresh_tries(&mut self, key: KeyRef) -> Result<PinTries, Error> {
        let tries = self.run_sfi(|x, sfi| jpki::pin_tries(x, key, sfi))?;
        let t = self.token_mut(key);
        if t.tries != Some(tries) {
            // The counter moved without us (another program, or our last answer was not what
            // the card did): what we knew about a refused PIN may be stale.
            t.wrong_pin = None;
        }
        t.tries = Some(tries);
        Ok(tries)
    }

    /// Remembers what a VERIFY of `pin` says: the tries left, and whether the card refused
    /// that PIN.
    fn note_verify_result(&mut self, key: KeyRef, pin: &[u8], res: &Result<(), Error>) {
        let t = self.token_mut(key);
        match res {
            Ok(()) => {
                t.tries = Some(PinTries::Left(key.max_tries()));
                t.wrong_pin = None;
            }
            Err(Error::Status(sw)) => {
                if let Some(tries) = PinTries::from_sw(*sw) {
                    t.tries = Some(tries);
                    t.wrong_pin = Some(pin_fingerprint(pin));
                }
            }
            Err(_) => {}
        }
    }

    /// Refuses, without asking the card, a PIN it cannot accept: any PIN for a blocked key, and
    /// the very PIN the card refused last for this key. Applications (NSS, for one) may present
    /// the same wrong PIN again and again; each time would cost a try.
    fn precheck(&self, key: KeyRef, pin: &[u8]) -> Result<(), Error> {
        let t = self.token(key);
        match t.tries {
            Some(PinTries::Blocked) => return Err(Error::Status(0x6984)),
            Some(PinTries::Left(n)) if t.wrong_pin == Some(pin_fingerprint(pin)) => {
                crate::log::debug(format_args!(
                    "the PIN the card refused last: not sent again"
                ));
                return Err(Error::Status(0x63C0 | u16::from(n.min(15))));
            }
            _ => {}
        }
        Ok(())
    }

    /// Presents `pin` (normalized) for `key`, then runs `f`, in one transaction (which ends with
    /// the card's security state dropped). A PIN the card cannot accept is refused before the
    /// transaction; what the VERIFY said is remembered (tries left, a refused PIN).
    fn with_pin<T>(
        &mut self,
        key: KeyRef,
        pin: &[u8],
        f: impl FnOnce(&mut Exchange<'_>, &mut Sfi) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.precheck(key, pin)?;
        let mut verified = Ok(());
        let res = self.run_sfi(|x, sfi| {
            verified = jpki::verify(x, key, pin, sfi);
            verified.clone()?;
            f(x, sfi)
        });
        self.note_verify_result(key, pin, &verified);
        res
    }

    /// Presents `pin` (normalized) for `key` once. On success, also reads the key's certificate
    /// if it is not cached yet, in the same transaction (the signature certificate can only be
    /// read while the password is verified). Does not keep the PIN: the caller does.
    pub fn verify_pin(&mut self, key: KeyRef, pin: &[u8]) -> Result<(), Error> {
        let need_cert = self.token(key).cert.is_none();
        let head = if key == KeyRef::Auth {
            self.auth_head.clone()
        } else {
            Vec::new()
        };
        let cert_der = self.with_pin(key, pin, |x, sfi| {
            // A failure to read is not a failed login: the certificate is read again later.
            Ok(need_cert
                .then(|| jpki::read_der_file(x, key.cert_ef(), &head, sfi).ok())
                .flatten())
        })?;
        match cert_der.map(Cert::parse) {
            Some(Ok(cert)) => self.token_mut(key).cert = Some(Arc::new(cert)),
            // Not a failed login. The head read at bind time may be what was wrong: the
            // certificate is read again, whole, when it is needed.
            _ if need_cert && key == KeyRef::Auth => self.auth_head.clear(),
            _ => {}
        }
        Ok(())
    }

    /// The certificate of `key`, read from the card on first use. The signature certificate can
    /// only be read with the PIN, so `pin` must be given for it.
    pub fn cert(&mut self, key: KeyRef, pin: Option<&[u8]>) -> Result<Arc<Cert>, Error> {
        if let Some(c) = &self.token(key).cert {
            return Ok(c.clone());
        }
        let head = if key == KeyRef::Auth {
            self.auth_head.clone()
        } else {
            Vec::new()
        };
        let der = match (key, pin) {
            (KeyRef::Auth, _) => {
                let read = self.run_sfi(|x, sfi| jpki::read_der_file(x, key.cert_ef(), &head, sfi));
                match read.and_then(Cert::parse) {
                    Ok(cert) => {
                        let cert = Arc::new(cert);
                        self.token_mut(key).cert = Some(cert.clone());
                        return Ok(cert);
                    }
                    // The head read at bind time may be what was wrong (a bad answer then):
                    // read the whole file again rather than reuse it forever.
                    Err(Error::Malformed(_) | Error::Status(_)) if !head.is_empty() => {
                        self.auth_head.clear();
                        self.run_sfi(|x, sfi| jpki::read_der_file(x, key.cert_ef(), &[], sfi))
                    }
                    Err(e) => return Err(e),
                }
            }
            (KeyRef::Sign, Some(pin)) => self.with_pin(key, pin, |x, sfi| {
                jpki::read_der_file(x, key.cert_ef(), &[], sfi)
            }),
            (KeyRef::Sign, None) => return Err(Error::Status(0x6982)),
        };
        let cert = Arc::new(Cert::parse(der?)?);
        self.token_mut(key).cert = Some(cert.clone());
        Ok(cert)
    }

    /// The issuing CA certificate of `key`, read from the card on first use.
    pub fn ca_cert(&mut self, key: KeyRef) -> Result<Arc<Cert>, Error> {
        if let Some(c) = &self.token(key).ca {
            return Ok(c.clone());
        }
        let der = self.run_sfi(|x, sfi| jpki::read_der_file(x, key.ca_ef(), &[], sfi))?;
        let cert = Arc::new(Cert::parse(der)?);
        self.token_mut(key).ca = Some(cert.clone());
        Ok(cert)
    }

    /// Presents `pin` and signs `data` with `key` in one transaction. The caller verifies the
    /// signature before handing it out.
    pub fn sign(
        &mut self,
        key: KeyRef,
        pin: &[u8],
        mode: SignMode,
        data: &[u8],
        sig_len: usize,
    ) -> Result<Vec<u8>, Error> {
        self.with_pin(key, pin, |x, sfi| {
            jpki::sign(x, key, mode, data, sig_len, sfi)
        })
    }

    /// Random bytes from the card.
    pub fn random(&mut self, len: usize) -> Result<Vec<u8>, Error> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.run(|x| jpki::random(x, len))
    }

    /// Changes `key`'s PIN: presents `old`, then sets `new` (both normalized).
    pub fn change_pin(&mut self, key: KeyRef, old: &[u8], new: &[u8]) -> Result<(), Error> {
        self.with_pin(key, old, |x, _| jpki::change_pin(x, key, new))
    }

    /// Ends the login of `key`'s token: forgets the PIN and, for the signature token, the
    /// certificate (personal data), both wiped. Whether a PIN was held.
    pub fn logout(&mut self, key: KeyRef) -> bool {
        let t = self.token_mut(key);
        if key == KeyRef::Sign {
            t.cert = None;
        }
        t.pin.take().is_some()
    }

    /// Forgets every PIN and the personal data (signature certificate) of this card.
    pub fn forget_secrets(&mut self) {
        for key in [KeyRef::Auth, KeyRef::Sign] {
            self.logout(key);
        }
    }

    /// Disconnects, leaving the card as it is.
    pub fn disconnect(mut self) {
        self.forget_secrets();
        self.chan.disconnect();
    }
}
