//! The PKCS#11 view of one My Number Card in one reader: the card's two tokens (authentication,
//! signature), what is cached about them, and every card operation the tokens need, each run as
//! one PC/SC transaction that begins by selecting the JPKI application and, if a PIN was
//! presented, ends by dropping the card's security state.
//!
//! **The card is never left unlocked.** A VERIFY opens a key for every process on the machine
//! until another application is selected or the card is unpowered (a warm reset may not be
//! enough, **\[uncertain\]**). So [`BoundCard::run`] selects another application before it ends any
//! transaction that presented a PIN (or found the card unlocked); if that fails, it ends the
//! transaction with the card unpowered (before any other process can reach it), then checks in
//! a new transaction that the card is locked, and fails the call if it cannot. A login that
//! outlives one call is kept as the PIN itself, in zeroized memory, and presented again inside
//! the transaction that needs it.

use crate::apdu::{hex, Exchange};
use crate::cert::Cert;
use crate::error::Error;
use crate::jpki::{self, KeyPair, PinTries, Sfi, SignMode};
use crate::secret::SecretBuf;
use crate::CardChannel;
use std::collections::HashMap;
use std::sync::Arc;

/// What is known about one token (one key pair) of a bound card. Private: the login state is
/// read and changed only through [`BoundCard`]'s methods (`is_logged_in`, `login`, `logout`).
#[derive(Default)]
struct TokenState {
    /// The PIN of a logged-in user, held to re-verify inside later transactions (wiped when
    /// dropped, not in core dumps).
    pin: Option<SecretBuf>,
    /// Tries left, as last read from the card.
    tries: Option<PinTries>,
    /// The key pair's certificate, once read. The signature certificate (personal data) is
    /// kept only while logged in (see [`BoundCard::logout`]).
    cert: Option<Arc<Cert>>,
    /// The issuing CA's certificate, once read.
    ca: Option<Arc<Cert>>,
    /// The consent a login gives to one signature: set by [`BoundCard::login`], taken by the
    /// next signing operation with the key ([`BoundCard::take_login_consent`]), cleared at
    /// logout. See `docs/security.md`, "Which signature a password allows".
    login_consent: bool,
}

/// The PIN a card last refused for one of its keys: a salted hash of it (see
/// [`pin_fingerprint`]) and the card's counter right after the refusal.
#[derive(Clone, Copy)]
struct Refused {
    fingerprint: [u8; 32],
    tries: PinTries,
}

/// The last refused PIN of every card and key this process has seen, keyed by the card's
/// identity. It lives as long as the process: a `C_Finalize` + `C_Initialize`, or the card taken
/// out and put back, does not make the module send the same wrong PIN again. It is valid while
/// the card's counter stays where the refusal left it (a different counter means the card was
/// used elsewhere since, and the entry is dropped).
static REFUSED: once_cell::sync::Lazy<parking_lot::Mutex<HashMap<RefusedKey, Refused>>> =
    once_cell::sync::Lazy::new(Default::default);

/// A card's identity (see [`BoundCard::identity`]) and one of its keys.
type RefusedKey = ([u8; 32], KeyPair);

/// Forgets every refused PIN (in-process tests, which reuse one virtual card's identity).
#[cfg(any(test, feature = "inproc"))]
pub fn forget_refused_pins() {
    REFUSED.lock().clear();
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
    /// Who the card is, for the process-wide memory of refused PINs: a hash of the start of its
    /// authentication certificate (serial number, issuer), read at bind time.
    identity: [u8; 32],
}

/// Index of a key's token state.
fn ix(key: KeyPair) -> usize {
    match key {
        KeyPair::Auth => 0,
        KeyPair::Sign => 1,
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
            identity: [0; 32],
        };
        let head = card.run_sfi(|x, sfi| jpki::read_head(x, KeyPair::Auth.cert_ef(), sfi))?;
        card.identity = {
            use sha2::{Digest, Sha256};
            Sha256::digest(&head).into()
        };
        let serial = crate::cert::serial_from_head(&head).unwrap_or_default();
        // The token serial is 16 characters: keep the low-order end of the certificate serial.
        let hexed = hex(&serial);
        card.serial = hexed[hexed.len().saturating_sub(16)..].to_string();
        card.auth_head = head.to_vec(); // the authentication certificate: no personal data
        Ok(card)
    }

    fn token(&self, key: KeyPair) -> &TokenState {
        &self.tokens[ix(key)]
    }

    fn token_mut(&mut self, key: KeyPair) -> &mut TokenState {
        &mut self.tokens[ix(key)]
    }

    /// Whether `key`'s token is logged in (its PIN is held).
    pub fn is_logged_in(&self, key: KeyPair) -> bool {
        self.token(key).pin.is_some()
    }

    /// The PIN held for `key`'s logged-in user, to present inside a later transaction.
    pub fn held_pin(&self, key: KeyPair) -> Option<&SecretBuf> {
        self.token(key).pin.as_ref()
    }

    /// Tries left on `key`'s PIN, as last read from the card (`None`: not read yet).
    pub fn tries(&self, key: KeyPair) -> Option<PinTries> {
        self.token(key).tries
    }

    /// Logs `key`'s token in: presents `pin` (normalized) once, as [`BoundCard::verify_pin`],
    /// and on success holds it for later transactions.
    pub fn login(&mut self, key: KeyPair, pin: SecretBuf) -> Result<(), Error> {
        self.verify_pin(key, &pin)?;
        let t = self.token_mut(key);
        t.pin = Some(pin);
        t.login_consent = true;
        Ok(())
    }

    /// Takes the consent of `key`'s login to one signature: true once after each successful
    /// [`BoundCard::login`] (until [`BoundCard::logout`]), then false until the next login. The
    /// signing operation that takes it may use the login's PIN without a per-signature login;
    /// programs that never make one (Java's SunPKCS11) sign once per password typed.
    pub fn take_login_consent(&mut self, key: KeyPair) -> bool {
        let t = self.token_mut(key);
        t.pin.is_some() && std::mem::take(&mut t.login_consent)
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
        self.run_keyed(None, f)
    }

    /// [`BoundCard::run_sfi`] for a transaction that may unlock `key` (only that one), which is
    /// what the last resort then checks is locked again (both keys when `None`).
    ///
    /// Last resort, when neither the ISD nor the 券面事項入力補助AP can be selected: the
    /// transaction ends with the card unpowered, inside it (issue 9, finding 9: "lock before
    /// releasing"; a warm reset after the transaction would leave a gap in which another process
    /// could use the unlocked card, and may not even clear the security state, **\[uncertain\]**).
    /// Then a new transaction confirms the card is locked ([`BoundCard::confirm_locked`]); if it
    /// cannot, the call fails with [`Error::NotLocked`] and the failure is logged.
    fn run_keyed<T>(
        &mut self,
        key: Option<KeyPair>,
        f: impl FnOnce(&mut Exchange<'_>, &mut Sfi) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut sfi = self.sfi;
        let (result, unpowered) = {
            let mut tx = self.chan.transaction()?;
            let mut x = Exchange::new(&mut *tx);
            let result = jpki::select_jpki(&mut x).and_then(|()| f(&mut x, &mut sfi));
            let must_unpower = x.pin_presented
                && match jpki::drop_security_state(&mut x) {
                    // Left, or the card is gone: nothing is left unlocked.
                    Ok(()) | Err(Error::CardRemoved) => false,
                    Err(_) => true,
                };
            self.apdus += x.sent;
            let unpowered = must_unpower.then(|| {
                crate::log::warn(format_args!(
                    "could not leave the JPKI application: unpowering the card before the \
                     transaction ends"
                ));
                tx.end_unpowered()
            });
            (result, unpowered)
        };
        self.sfi = sfi;
        match unpowered {
            None => result,
            // The card is gone: nothing is left unlocked.
            Some(Err(Error::CardRemoved)) => result,
            Some(ended) => {
                if let Err(e) = ended {
                    crate::log::error(format_args!(
                        "could not end the transaction with the card unpowered ({e}): \
                         unpowering it after the transaction"
                    ));
                    if let Err(e) = self.chan.unpower() {
                        crate::log::error(format_args!("could not unpower the card: {e}"));
                    }
                }
                self.confirm_locked(key)?;
                result
            }
        }
    }

    /// After the card was unpowered: checks, in a new transaction, that it is locked. SELECT JPKI
    /// (one `6F00` tolerated: **\[uncertain\]** the first command after power-up may get it), then
    /// for the key whose PIN was presented (both if unknown) an empty VERIFY (costs no try) that
    /// must answer with a try counter, not `9000` ("verified"); for the signature key, also a
    /// READ BINARY of its certificate, which the card answers `6982` while that key is locked.
    /// (For the authentication key nothing harmless tells: on a card whose empty VERIFY answers
    /// `63Cx` even when verified, the power-off itself is what locked it.) Any other outcome is
    /// an error, logged: the module never assumes the card locked.
    fn confirm_locked(&mut self, key: Option<KeyPair>) -> Result<(), Error> {
        let keys = match key {
            Some(k) => vec![k],
            None => vec![KeyPair::Auth, KeyPair::Sign],
        };
        let mut sfi = self.sfi;
        let checked = match self.chan.transaction() {
            Err(e) => Err(e),
            Ok(mut tx) => {
                let mut x = Exchange::new(&mut *tx);
                let mut check = || -> Result<(), Error> {
                    jpki::select_jpki(&mut x)?;
                    for &k in &keys {
                        if jpki::pin_tries(&mut x, k, &mut sfi)? == PinTries::Unknown {
                            return Err(Error::NotLocked);
                        }
                        if k == KeyPair::Sign {
                            jpki::select_ef(&mut x, k.cert_ef())?;
                            match jpki::read_binary(&mut x, 0, 1) {
                                Err(Error::Status(0x6982)) => {}
                                Ok(_) => return Err(Error::NotLocked),
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    Ok(())
                };
                let checked = check();
                self.apdus += x.sent;
                checked
            }
        };
        self.sfi = sfi;
        checked.map_err(|e| {
            if matches!(e, Error::CardRemoved | Error::NoCard) {
                // Gone from the reader: unpowered, so locked.
                return e;
            }
            let why = match e {
                Error::NotLocked => "it still answers as unlocked".to_string(),
                e => e.to_string(),
            };
            crate::log::error(format_args!(
                "the card could not be confirmed locked after it was unpowered ({why}); it may \
                 still be unlocked: remove it from the reader"
            ));
            Error::NotLocked
        })
    }

    /// Reads the tries left on `key`'s PIN (costs no try) and remembers them.
    /// [`PinTries::Unknown`] when the card was found unlocked (it is locked again before this
    /// returns).
    pub fn refresh_tries(&mut self, key: KeyPair) -> Result<PinTries, Error> {
        let tries = self.run_keyed(Some(key), |x, sfi| jpki::pin_tries(x, key, sfi))?;
        let mut refused = REFUSED.lock();
        if refused
            .get(&(self.identity, key))
            .is_some_and(|r| r.tries != tries)
        {
            // The counter moved without us (another program, or our last answer was not what
            // the card did): what we knew about a refused PIN may be stale.
            refused.remove(&(self.identity, key));
        }
        drop(refused);
        self.token_mut(key).tries = Some(tries);
        Ok(tries)
    }

    /// Remembers what a VERIFY of `pin` says: the tries left, and whether the card refused
    /// that PIN.
    fn note_verify_result(&mut self, key: KeyPair, pin: &[u8], res: &Result<(), Error>) {
        let id = (self.identity, key);
        match res {
            Ok(()) => {
                self.token_mut(key).tries = Some(PinTries::Left(key.max_tries()));
                REFUSED.lock().remove(&id);
            }
            Err(Error::Status(sw)) => {
                if let Some(tries) = PinTries::from_sw(*sw) {
                    self.token_mut(key).tries = Some(tries);
                    let fingerprint = pin_fingerprint(pin);
                    REFUSED.lock().insert(id, Refused { fingerprint, tries });
                }
            }
            Err(_) => {}
        }
    }

    /// Refuses, without asking the card, a PIN it cannot accept: any PIN for a blocked key, and
    /// the very PIN the card refused last for this key while its counter has not moved since
    /// (also in an earlier initialization of the module in this process). Applications (NSS,
    /// for one) may present the same wrong PIN again and again; each time would cost a try.
    fn precheck(&mut self, key: KeyPair, pin: &[u8]) -> Result<(), Error> {
        if self.token(key).tries == Some(PinTries::Blocked) {
            return Err(Error::Status(0x6984));
        }
        let id = (self.identity, key);
        let Some(refused) = REFUSED.lock().get(&id).copied() else {
            return Ok(());
        };
        if refused.fingerprint != pin_fingerprint(pin) {
            return Ok(());
        }
        // The same PIN: is the card's counter still where that refusal left it? Unknown after a
        // new initialization: the empty VERIFY tells, without using a try.
        let now = match self.token(key).tries {
            Some(t) => t,
            None => self.refresh_tries(key)?,
        };
        match now {
            PinTries::Left(n) if now == refused.tries => {
                crate::log::info(format_args!(
                    "the {} the card refused last: not sent again",
                    key.pin_name()
                ));
                Err(Error::Status(0x63C0 | u16::from(n.min(15))))
            }
            PinTries::Blocked => Err(Error::Status(0x6984)),
            _ => {
                REFUSED.lock().remove(&id);
                Ok(())
            }
        }
    }

    /// Presents `pin` (normalized) for `key`, then runs `f`, in one transaction (which ends with
    /// the card's security state dropped). A PIN the card cannot accept is refused before the
    /// transaction; what the VERIFY said is remembered (tries left, a refused PIN).
    fn with_pin<T>(
        &mut self,
        key: KeyPair,
        pin: &[u8],
        f: impl FnOnce(&mut Exchange<'_>, &mut Sfi) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.precheck(key, pin)?;
        let mut verified = Ok(());
        let res = self.run_keyed(Some(key), |x, sfi| {
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
    pub fn verify_pin(&mut self, key: KeyPair, pin: &[u8]) -> Result<(), Error> {
        let need_cert = self.token(key).cert.is_none();
        let head = if key == KeyPair::Auth {
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
            _ if need_cert && key == KeyPair::Auth => self.auth_head.clear(),
            _ => {}
        }
        Ok(())
    }

    /// The certificate of `key`, read from the card on first use. The signature certificate can
    /// only be read with the PIN, so `pin` must be given for it.
    pub fn cert(&mut self, key: KeyPair, pin: Option<&[u8]>) -> Result<Arc<Cert>, Error> {
        if let Some(c) = &self.token(key).cert {
            return Ok(c.clone());
        }
        let head = if key == KeyPair::Auth {
            self.auth_head.clone()
        } else {
            Vec::new()
        };
        let der = match (key, pin) {
            (KeyPair::Auth, _) => {
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
            (KeyPair::Sign, Some(pin)) => self.with_pin(key, pin, |x, sfi| {
                jpki::read_der_file(x, key.cert_ef(), &[], sfi)
            }),
            (KeyPair::Sign, None) => return Err(Error::Status(0x6982)),
        };
        let cert = Arc::new(Cert::parse(der?)?);
        self.token_mut(key).cert = Some(cert.clone());
        Ok(cert)
    }

    /// The certificate of `key`'s own key pair: cached, or read with the held PIN (the
    /// signature certificate can be read only while logged in).
    pub fn own_cert(&mut self, key: KeyPair) -> Result<Arc<Cert>, Error> {
        if let Some(c) = &self.token(key).cert {
            return Ok(c.clone());
        }
        let pin = self.token(key).pin.clone();
        self.cert(key, pin.as_deref())
    }

    /// The issuing CA certificate of `key`, read from the card on first use.
    pub fn ca_cert(&mut self, key: KeyPair) -> Result<Arc<Cert>, Error> {
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
        key: KeyPair,
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

    /// Changes `key`'s PIN: presents `old`, then sets `new` (both normalized). A logged-in
    /// token then holds the new PIN.
    pub fn change_pin(&mut self, key: KeyPair, old: &[u8], new: &[u8]) -> Result<(), Error> {
        self.with_pin(key, old, |x, _| jpki::change_pin(x, key, new))?;
        let t = self.token_mut(key);
        if t.pin.is_some() {
            t.pin = Some(SecretBuf::from_slice(new));
        }
        Ok(())
    }

    /// Ends the login of `key`'s token: forgets the PIN and, for the signature token, the
    /// certificate (personal data), both wiped. Whether a PIN was held.
    pub fn logout(&mut self, key: KeyPair) -> bool {
        let t = self.token_mut(key);
        if key == KeyPair::Sign {
            t.cert = None;
        }
        t.login_consent = false;
        t.pin.take().is_some()
    }

    /// Forgets every PIN and the personal data (signature certificate) of this card.
    pub fn forget_secrets(&mut self) {
        for key in [KeyPair::Auth, KeyPair::Sign] {
            self.logout(key);
        }
    }

    /// Disconnects, leaving the card as it is.
    pub fn disconnect(mut self) {
        self.forget_secrets();
        self.chan.disconnect();
    }
}
