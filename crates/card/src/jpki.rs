//! The JPKI application of the My Number Card: which files and keys exist, and the operations
//! the module performs, each as a short sequence of APDUs inside one transaction
//! ([`Exchange`]). See `shared/reference/jpki-card.md` for the card's interface.

use crate::apdu::{command, Exchange};
use crate::error::Error;
use crate::secret::SecretBuf;
use zeroize::Zeroizing;

/// AID of the JPKI application (公的個人認証AP). Always sent in full.
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];
/// AID of the GlobalPlatform issuer security domain: selecting it clears JPKI security state.
pub const ISD_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00];
/// AID of the 券面事項入力補助AP, the second choice for leaving the JPKI application.
pub const KENMEN_HOJO_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08];

/// Largest certificate the module accepts from a file (a JPKI certificate is about 1.6 kB).
pub const MAX_CERT_LEN: usize = 8192;

/// One of the card's two key pairs, with its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPair {
    /// User authentication (利用者証明用): 4-digit PIN, 3 tries.
    Auth,
    /// Digital signature (署名用): 6–16 character password, 5 tries.
    Sign,
}

impl KeyPair {
    pub fn pin_ef(self) -> u16 {
        match self {
            KeyPair::Auth => 0x0018,
            KeyPair::Sign => 0x001B,
        }
    }
    pub fn key_ef(self) -> u16 {
        match self {
            KeyPair::Auth => 0x0017,
            KeyPair::Sign => 0x001A,
        }
    }
    pub fn cert_ef(self) -> u16 {
        match self {
            KeyPair::Auth => 0x000A,
            KeyPair::Sign => 0x0001,
        }
    }
    pub fn ca_ef(self) -> u16 {
        match self {
            KeyPair::Auth => 0x000B,
            KeyPair::Sign => 0x0002,
        }
    }
    /// Tries of a fresh (or just correctly verified) PIN.
    pub fn max_tries(self) -> u8 {
        match self {
            KeyPair::Auth => 3,
            KeyPair::Sign => 5,
        }
    }
    pub fn min_pin_len(self) -> usize {
        match self {
            KeyPair::Auth => 4,
            KeyPair::Sign => 6,
        }
    }
    pub fn max_pin_len(self) -> usize {
        match self {
            KeyPair::Auth => 4,
            KeyPair::Sign => 16,
        }
    }
    /// What the PIN is called, for messages.
    pub fn pin_name(self) -> &'static str {
        match self {
            KeyPair::Auth => "user authentication PIN",
            KeyPair::Sign => "digital signature password",
        }
    }
}

/// Why a PIN was refused before it reached the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinFormat {
    /// Too short or too long.
    Length,
    /// A character the card cannot hold.
    Characters,
    /// A new signature password of letters only or digits only (it must mix both).
    NotMixed,
}

impl PinFormat {
    /// Why a PIN for `key` was refused, for logs and messages (never the PIN itself).
    pub fn reason(self, key: KeyPair) -> &'static str {
        match (self, key) {
            (PinFormat::Length, KeyPair::Auth) => "wrong length (exactly 4 digits)",
            (PinFormat::Length, KeyPair::Sign) => "wrong length (6 to 16 letters and digits)",
            (PinFormat::Characters, KeyPair::Auth) => "a character other than a digit",
            (PinFormat::Characters, KeyPair::Sign) => "a character other than A-Z and 0-9",
            (PinFormat::NotMixed, _) => "letters only or digits only (it must mix both)",
        }
    }
}

/// Checks a PIN's format and returns the bytes the card expects: authentication PIN exactly 4
/// digits; signature password 6–16 of `A–Z 0–9`, lower case folded to upper case. A PIN that
/// fails here is never sent (a malformed PIN would burn a try for nothing).
pub fn normalize_pin(key: KeyPair, pin: &[u8]) -> Result<Vec<u8>, PinFormat> {
    if pin.len() < key.min_pin_len() || pin.len() > key.max_pin_len() {
        return Err(PinFormat::Length);
    }
    match key {
        KeyPair::Auth if pin.iter().all(u8::is_ascii_digit) => Ok(pin.to_vec()),
        KeyPair::Sign if pin.iter().all(u8::is_ascii_alphanumeric) => Ok(pin.to_ascii_uppercase()),
        _ => Err(PinFormat::Characters),
    }
}

/// Checks a PIN about to be set (`C_SetPIN`, `jpki pin change`): as [`normalize_pin`], and a
/// new signature password must mix letters and digits (the official rule; municipal guidance).
/// The card is not known to enforce it: a password it would keep but that breaks the rule is
/// refused here, before anything is sent.
pub fn normalize_new_pin(key: KeyPair, pin: &[u8]) -> Result<Vec<u8>, PinFormat> {
    let p = normalize_pin(key, pin)?;
    if key == KeyPair::Sign
        && !(p.iter().any(u8::is_ascii_digit) && p.iter().any(u8::is_ascii_uppercase))
    {
        return Err(PinFormat::NotMixed);
    }
    Ok(p)
}

/// Tries left on a PIN, as the card tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinTries {
    Left(u8),
    Blocked,
    /// **\[uncertain\]** The empty VERIFY answered `9000`: the PIN is verified on the card (the
    /// card was unlocked, by another program) and the card does not say how many tries are
    /// left. Reported for some cards by one library; the module locks the card again at once.
    Unknown,
}

impl PinTries {
    /// Interprets the status word of a VERIFY; `None` if it says nothing about tries.
    pub fn from_sw(sw: u16) -> Option<PinTries> {
        match sw {
            0x63C0 | 0x6983 | 0x6984 => Some(PinTries::Blocked),
            sw if sw & 0xFFF0 == 0x63C0 => Some(PinTries::Left((sw & 0x0F) as u8)),
            _ => None,
        }
    }
}

/// Whether to use the short-EF-identifier forms (`READ BINARY P1=80|SFI`, `VERIFY P2=80|SFI`,
/// `COMPUTE DIGITAL SIGNATURE P2=80|SFI`), which save the `SELECT EF` before each command.
/// The reference says the card accepts them, but only signing in that form is reported working
/// on a real card **\[uncertain\]**; most clients select first. So the module tries each kind,
/// and falls back to `SELECT` + `P2=80` for good, for that kind, on the first answer to it that
/// is neither success nor a security status (`short_form_taken`): a card that does not know a
/// form may answer `6A86`, `6A82`, `6981`, `6986`, `6700`, `6A87`, or anything else.
///
/// A PIN is presented in the short form for a key only once an empty VERIFY in that form, for
/// that key, has answered with a try counter (`63Cx`, or blocked): so a PIN never goes out in a
/// form the card has not shown it understands for that very PIN. An empty VERIFY answered
/// `9000` does not count: "verified" could be the answer to a reference the card misread, and
/// it says nothing about the PIN's counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sfi {
    /// The card refused READ BINARY with `P1=80|SFI`: select the file first.
    pub read_off: bool,
    /// The card refused VERIFY with `P2=80|SFI`: select the PIN EF first.
    pub verify_off: bool,
    /// The card refused COMPUTE DIGITAL SIGNATURE with `P2=80|SFI`: select the key EF first.
    pub sign_off: bool,
    /// Per key ([`KeyPair::Auth`], [`KeyPair::Sign`]): the card answered an empty VERIFY in the
    /// short form with a try counter.
    pub verify_ok: [bool; 2],
}

impl Sfi {
    fn key_ix(key: KeyPair) -> usize {
        match key {
            KeyPair::Auth => 0,
            KeyPair::Sign => 1,
        }
    }

    /// Whether a PIN for `key` may be presented in the short form.
    pub fn pin_short(&self, key: KeyPair) -> bool {
        !self.verify_off && self.verify_ok[Self::key_ix(key)]
    }
}

/// A security status: about the PIN, not about the command's form (`6982` not verified,
/// `63Cx` tries left, `6983`/`6984` blocked).
fn security_status(sw: u16) -> bool {
    matches!(sw, 0x6982..=0x6984) || sw & 0xFFF0 == 0x63C0
}

/// Whether the answer to a short-EF-identifier command shows the card took the form: success,
/// or a security status. Any other answer means "fall back to `SELECT` + `P2=80`".
fn short_form_taken(sw: u16) -> bool {
    sw == 0x9000 || security_status(sw)
}

/// Selects the JPKI application. `6A82`/`6A86` mean this is not a My Number Card.
/// **\[uncertain\]** One report says the first command after power-up answered `6F00`: that
/// answer is tolerated once (the SELECT is sent again), never more.
pub fn select_jpki(x: &mut Exchange<'_>) -> Result<(), Error> {
    let select = command(0, 0xA4, 0x04, 0x0C, &JPKI_AID, None);
    let mut sw = x.send(&select)?.sw;
    if sw == 0x6F00 {
        sw = x.send(&select)?.sw;
    }
    match sw {
        0x9000 => Ok(()),
        0x6A82 | 0x6A86 | 0x6D00 | 0x6E00 => Err(Error::NotJpki),
        sw => Err(Error::Status(sw)),
    }
}

/// Selects an elementary file of the current application.
pub fn select_ef(x: &mut Exchange<'_>, fid: u16) -> Result<(), Error> {
    x.send(&command(0, 0xA4, 0x02, 0x0C, &fid.to_be_bytes(), None))?
        .ok_empty()
}

/// Leaves the JPKI application, which clears its security state: selects the ISD, or if the card
/// refuses, the 券面事項入力補助AP. Returns an error if neither could be selected: the caller must
/// then reset the card.
pub fn drop_security_state(x: &mut Exchange<'_>) -> Result<(), Error> {
    for aid in [&ISD_AID[..], &KENMEN_HOJO_AID[..]] {
        if x.send(&command(0, 0xA4, 0x04, 0x0C, aid, None))?.sw == 0x9000 {
            return Ok(());
        }
    }
    Err(Error::Malformed("no other application could be selected"))
}

/// Length of a DER element from its first bytes (tag + length), if they are complete.
pub fn der_total_len(head: &[u8]) -> Result<usize, Error> {
    let (hdr, len) = match super::der::header(head) {
        Some((0x30, hdr, len)) => (hdr, len),
        Some(_) => {
            return Err(Error::Malformed(
                "certificate file does not start with a SEQUENCE",
            ))
        }
        None => {
            return Err(Error::Malformed(
                "unsupported DER length in certificate file",
            ))
        }
    };
    let total = hdr + len;
    if total > MAX_CERT_LEN {
        return Err(Error::Malformed(
            "certificate longer than the module accepts",
        ));
    }
    Ok(total)
}

/// Reads from the current EF at `offset`, asking for `le` bytes (0 = 256). Checks the answer is
/// not longer than asked for. The answer is wiped when dropped.
pub fn read_binary(
    x: &mut Exchange<'_>,
    offset: usize,
    le: u8,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if offset > 0x7FFF {
        return Err(Error::Malformed("read offset beyond 15 bits"));
    }
    let data = x
        .send(&command(
            0,
            0xB0,
            (offset >> 8) as u8,
            offset as u8,
            &[],
            Some(le),
        ))?
        .ok()?;
    let want = if le == 0 { 256 } else { le as usize };
    if data.len() > want {
        return Err(Error::Malformed("READ BINARY answered more than asked for"));
    }
    if data.is_empty() {
        return Err(Error::Malformed("READ BINARY answered no data"));
    }
    Ok(data)
}

/// Reads the DER object (a certificate) in EF `fid`, in 256-byte chunks up to the length in the
/// DER header (the file is padded with filler after it). `head` may hold bytes already read from
/// the start of the file. The first read names the file by its short identifier (which also
/// makes it the current EF), at most 255 bytes back from where reading resumes, so no
/// `SELECT EF` is needed; without short identifiers the file is selected first.
///
/// The object goes into a [`SecretBuf`] sized from the DER header, so no copy is left behind
/// by a growing buffer (the signature certificate holds personal data); the bytes read before
/// the length is known sit in a wiped buffer sized for them once.
pub fn read_der_file(
    x: &mut Exchange<'_>,
    fid: u16,
    head: &[u8],
    sfi: &mut Sfi,
) -> Result<SecretBuf, Error> {
    // At most `head` (≤ 256 bytes) and one 256-byte answer before the length is known.
    let mut first = Zeroizing::new(Vec::with_capacity(head.len().max(256) + 256));
    first.extend_from_slice(head);
    let mut selected = false;
    if !sfi.read_off {
        let at = first.len().min(255);
        let r = x.send(&command(0, 0xB0, 0x80 | fid as u8, at as u8, &[], Some(0)))?;
        if !short_form_taken(r.sw) {
            sfi.read_off = true;
        } else {
            let data = r.ok()?;
            if data.len() + at <= first.len() || data.len() > 256 {
                return Err(Error::Malformed(
                    "READ BINARY answered too little or too much",
                ));
            }
            first.truncate(at);
            first.extend_from_slice(&data);
            selected = true;
        }
    }
    if !selected {
        select_ef(x, fid)?;
        if first.len() < 4 {
            first = read_binary(x, 0, 0)?;
        }
    }
    let total = der_total_len(&first)?;
    let mut out = SecretBuf::with_capacity(total);
    out.extend_from_slice(&first[..first.len().min(total)]);
    drop(first);
    while out.len() < total {
        let left = total - out.len();
        let le = if left >= 256 { 0 } else { left as u8 };
        let chunk = read_binary(x, out.len(), le)?;
        out.extend_from_slice(&chunk[..chunk.len().min(left)]);
    }
    Ok(out)
}

/// Reads the first chunk (up to 256 bytes) of EF `fid`.
pub fn read_head(
    x: &mut Exchange<'_>,
    fid: u16,
    sfi: &mut Sfi,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if !sfi.read_off {
        let r = x.send(&command(0, 0xB0, 0x80 | fid as u8, 0, &[], Some(0)))?;
        if short_form_taken(r.sw) {
            let data = r.ok()?;
            if data.is_empty() || data.len() > 256 {
                return Err(Error::Malformed(
                    "READ BINARY answered too little or too much",
                ));
            }
            return Ok(data);
        }
        sfi.read_off = true;
    }
    select_ef(x, fid)?;
    read_binary(x, 0, 0)
}

/// Asks the card how many tries the PIN of `key` has left. The empty VERIFY costs no try.
///
/// **\[uncertain\]** An empty VERIFY answered `9000` (some cards, once the PIN is verified) means
/// "unlocked, tries unknown": [`PinTries::Unknown`], and the exchange is marked as having
/// unlocked the card (`pin_presented`), so that the transaction ends by locking it again.
pub fn pin_tries(x: &mut Exchange<'_>, key: KeyPair, sfi: &mut Sfi) -> Result<PinTries, Error> {
    let sw = 'sw: {
        if !sfi.verify_off {
            let resp = x.send(&command(
                0,
                0x20,
                0x00,
                0x80 | key.pin_ef() as u8,
                &[],
                None,
            ))?;
            if PinTries::from_sw(resp.sw).is_some() {
                // A try counter for this very PIN: the card understood the short form for it.
                sfi.verify_ok[Sfi::key_ix(key)] = true;
            }
            if short_form_taken(resp.sw) {
                break 'sw resp.sw;
            }
            sfi.verify_off = true;
        }
        select_ef(x, key.pin_ef())?;
        x.send(&command(0, 0x20, 0x00, 0x80, &[], None))?.sw
    };
    match (sw, PinTries::from_sw(sw)) {
        (_, Some(t)) => Ok(t),
        (0x9000, None) => {
            crate::log::debug(format_args!(
                "empty VERIFY answered 9000: the card is unlocked, tries unknown; locking it"
            ));
            x.pin_presented = true;
            Ok(PinTries::Unknown)
        }
        (sw, None) => Err(Error::Status(sw)),
    }
}

/// Presents `pin` (already normalized) for `key`. `Ok` means the key is now usable; a wrong PIN
/// gives `Err(Status(63Cx))`, a blocked one `Err(Status(6983|6984))`.
///
/// The short form is used only when the card has answered an empty VERIFY in it for this key
/// ([`Sfi::pin_short`]). If the card still refuses the short form with the PIN, the PIN is not
/// sent again in the long form in the same call (one VERIFY carrying a PIN per call, whatever
/// the card did with it): the call fails, and the next one uses the long form.
pub fn verify(x: &mut Exchange<'_>, key: KeyPair, pin: &[u8], sfi: &mut Sfi) -> Result<(), Error> {
    if sfi.pin_short(key) {
        let r = x.send(&command(
            0,
            0x20,
            0x00,
            0x80 | key.pin_ef() as u8,
            pin,
            None,
        ))?;
        if !short_form_taken(r.sw) {
            sfi.verify_off = true;
        }
        return r.ok_empty();
    }
    select_ef(x, key.pin_ef())?;
    x.send(&command(0, 0x20, 0x00, 0x80, pin, None))?.ok_empty()
}

/// Card signing modes (P1 of COMPUTE DIGITAL SIGNATURE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMode {
    /// P1=00: PKCS#1 v1.5 type-1 padding over the data as sent (a DigestInfo).
    Pkcs1Raw = 0x00,
    /// P1=04: RSASSA-PSS over a 32-byte SHA-256 hash (MGF1-SHA-256, salt 32).
    PssSha256Hash = 0x04,
}

/// Signs `data` with `key` (its PIN must have been verified in this transaction). Returns the
/// signature, which must be `sig_len` bytes.
pub fn sign(
    x: &mut Exchange<'_>,
    key: KeyPair,
    mode: SignMode,
    data: &[u8],
    sig_len: usize,
    sfi: &mut Sfi,
) -> Result<Vec<u8>, Error> {
    if data.is_empty() || data.len() > 245 {
        return Err(Error::Malformed("signing input length out of range"));
    }
    let mut short_refused = None;
    if !sfi.sign_off {
        let r = x.send(&command(
            0x80,
            0x2A,
            mode as u8,
            0x80 | key.key_ef() as u8,
            data,
            Some(0),
        ))?;
        if short_form_taken(r.sw) {
            return check_signature(r.ok()?, sig_len);
        }
        // The short form, or the mode (e.g. PSS) or the data is what the card refused: the long
        // form tells.
        short_refused = Some(r.sw);
    }
    select_ef(x, key.key_ef())?;
    let resp = x.send(&command(0x80, 0x2A, mode as u8, 0x80, data, Some(0)))?;
    match short_refused {
        // The long form was refused the same way: it was the mode, the short form is fine.
        Some(sw) if sw == resp.sw => {}
        Some(_) => sfi.sign_off = true,
        None => {}
    }
    check_signature(resp.ok()?, sig_len)
}

fn check_signature(mut sig: Zeroizing<Vec<u8>>, sig_len: usize) -> Result<Vec<u8>, Error> {
    if sig.len() != sig_len {
        return Err(Error::Malformed("signature of the wrong length"));
    }
    // A signature is no secret: handed out as it is.
    Ok(std::mem::take(&mut *sig))
}

/// Card random bytes from GET CHALLENGE, 8 at a time.
pub fn random(x: &mut Exchange<'_>, len: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let chunk = x.send(&command(0, 0x84, 0, 0, &[], Some(8)))?.ok()?;
        if chunk.len() != 8 {
            return Err(Error::Malformed("GET CHALLENGE answered the wrong length"));
        }
        out.extend_from_slice(&chunk);
    }
    out.truncate(len);
    Ok(out)
}

/// Changes the PIN of `key` (already verified in this transaction) to `new` (normalized).
pub fn change_pin(x: &mut Exchange<'_>, key: KeyPair, new: &[u8]) -> Result<(), Error> {
    select_ef(x, key.pin_ef())?;
    x.send(&command(0, 0x24, 0x01, 0x80, new, None))?.ok_empty()
}

#[cfg(test)]
#[path = "jpki_tests.rs"]
mod tests;
