//! The commands of the JPKI application and the other applications the virtual card answers:
//! SELECT, READ BINARY, VERIFY, CHANGE REFERENCE DATA, COMPUTE DIGITAL SIGNATURE, GET CHALLENGE.

use super::apdu::{parse, Apdu};
use super::*;

impl VirtualCard {
    pub(super) fn process(&mut self, b: &[u8]) -> Vec<u8> {
        if b.len() < 4 {
            return status(sw::WRONG_LENGTH);
        }
        let (cla, ins) = (b[0], b[1]);
        if cla != 0x00 && cla != 0x80 {
            return status(sw::BAD_CLA);
        }
        let wanted_cla = match ins {
            0xA4 | 0xB0 | 0x20 | 0x24 | 0x84 => 0x00,
            0x2A => 0x80,
            _ => return status(sw::BAD_INS),
        };
        if cla != wanted_cla {
            return status(sw::BAD_CLA);
        }
        let a = match parse(b) {
            Ok(a) => a,
            Err(e) => return status(e),
        };
        let r = match a.ins {
            0xA4 => self.select(&a).map(|()| Vec::new()),
            0xB0 => self.read_binary(&a),
            0x20 => self.verify(&a).map(|()| Vec::new()),
            0x24 => self.change_pin(&a).map(|()| Vec::new()),
            0x2A => self.sign(&a),
            0x84 => self.challenge(&a),
            _ => Err(sw::BAD_INS),
        };
        match r {
            Ok(data) => with_status(data, sw::OK),
            Err(e) => status(e),
        }
    }

    fn select(&mut self, a: &Apdu<'_>) -> Result<(), u16> {
        if a.p2 != 0x0C && a.p2 != 0x00 && a.p1 != 0x00 {
            return Err(sw::BAD_P1P2);
        }
        match a.p1 {
            0x04 => {
                if a.data.is_empty() || a.data.len() > 16 {
                    return Err(sw::WRONG_LENGTH);
                }
                let found = APPS
                    .iter()
                    .find(|(_, aid)| *aid == a.data)
                    .or_else(|| {
                        APPS.iter()
                            .find(|(_, aid)| a.data.len() >= 5 && aid.starts_with(a.data))
                    })
                    .map(|(app, _)| *app)
                    .ok_or(sw::NOT_FOUND)?;
                if found != self.app {
                    self.clear_security();
                }
                self.app = found;
                self.ef = None;
                Ok(())
            }
            0x02 => {
                if a.data.len() != 2 {
                    return Err(sw::WRONG_LENGTH);
                }
                let fid = u16::from_be_bytes([a.data[0], a.data[1]]);
                if self.app != App::Jpki || ef_by_fid(fid).is_none() {
                    return Err(sw::NOT_FOUND);
                }
                self.ef = Some(fid);
                Ok(())
            }
            // No selectable MF: SELECT 3F00 (or any FID this way) is "not found".
            0x00 if !a.data.is_empty() => Err(sw::NOT_FOUND),
            _ => Err(sw::BAD_P1P2),
        }
    }

    fn read_binary(&mut self, a: &Apdu<'_>) -> Result<Vec<u8>, u16> {
        if !a.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        let le = a.le.ok_or(sw::WRONG_LENGTH)?;
        let (fid, offset) = if a.p1 & 0x80 != 0 {
            if a.p1 & 0x60 != 0 || !self.sfi {
                return Err(sw::BAD_P1P2);
            }
            let fid = u16::from(a.p1 & 0x1F);
            if self.app != App::Jpki || ef_by_fid(fid).is_none() {
                return Err(sw::NOT_FOUND);
            }
            self.ef = Some(fid);
            (fid, usize::from(a.p2))
        } else {
            let fid = self.ef.ok_or(sw::CONDITIONS)?;
            (fid, usize::from(a.p1) << 8 | usize::from(a.p2))
        };
        let content: &[u8] = match ef_by_fid(fid).ok_or(sw::NOT_FOUND)? {
            Ef::AuthCert => &self.auth_cert_ef,
            Ef::AuthCaCert => &self.auth_ca_ef,
            Ef::SignCert if !self.sign.verified => return Err(sw::SECURITY),
            Ef::SignCert => &self.sign_cert_ef,
            Ef::SignCaCert => &self.sign_ca_ef,
            Ef::TokenInfo => &self.token_info_ef,
            Ef::Presence => &[0x8F, 0x8F, 0x00],
            Ef::PrivateKey(_) | Ef::Pin(_) => return Err(sw::INTERNAL_EF),
        };
        if offset >= content.len() {
            return Err(sw::OFFSET);
        }
        let n = le.min(content.len() - offset);
        Ok(content[offset..offset + n].to_vec())
    }

    /// The PIN named by VERIFY's / CHANGE REFERENCE DATA's P2.
    fn pin_ref(&self, p2: u8) -> Result<Key, u16> {
        let key = match p2 {
            0x80 => match self.ef.and_then(ef_by_fid) {
                Some(Ef::Pin(k)) if self.app == App::Jpki => return Ok(k),
                _ => return Err(sw::CONDITIONS),
            },
            0x98 if self.sfi => Key::Auth,
            0x9B if self.sfi => Key::Sign,
            _ => return Err(sw::BAD_P1P2),
        };
        if self.app != App::Jpki {
            return Err(sw::NOT_FOUND);
        }
        Ok(key)
    }

    fn pin_mut(&mut self, key: Key) -> &mut Pin {
        match key {
            Key::Auth => &mut self.auth,
            Key::Sign => &mut self.sign,
        }
    }

    fn verify(&mut self, a: &Apdu<'_>) -> Result<(), u16> {
        if a.p1 != 0x00 {
            return Err(sw::BAD_P1P2);
        }
        let key = self.pin_ref(a.p2)?;
        let empty_9000 = self.has_fault(&Fault::EmptyVerify9000);
        let pin = self.pin_mut(key);
        if pin.tries == 0 {
            return Err(sw::BLOCKED);
        }
        if a.data.is_empty() {
            if pin.verified && empty_9000 {
                return Ok(());
            }
            return Err(0x63C0 | u16::from(pin.tries));
        }
        if a.data == pin.value.as_bytes() {
            pin.tries = pin.max;
            pin.verified = true;
            Ok(())
        } else {
            pin.tries -= 1;
            pin.verified = false;
            Err(0x63C0 | u16::from(pin.tries))
        }
    }

    fn change_pin(&mut self, a: &Apdu<'_>) -> Result<(), u16> {
        if a.p1 != 0x01 {
            return Err(sw::BAD_P1P2);
        }
        let key = self.pin_ref(a.p2)?;
        let pin = self.pin_mut(key);
        if pin.tries == 0 {
            return Err(sw::BLOCKED);
        }
        if a.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        if !pin.verified {
            return Err(sw::SECURITY);
        }
        let (lengths, allowed): (std::ops::RangeInclusive<usize>, fn(&u8) -> bool) = match key {
            Key::Auth => (4..=4, |c| c.is_ascii_digit()),
            Key::Sign => (6..=16, |c| c.is_ascii_digit() || c.is_ascii_uppercase()),
        };
        if !lengths.contains(&a.data.len()) {
            return Err(sw::WRONG_LENGTH);
        }
        if !a.data.iter().all(allowed) {
            return Err(sw::CONDITIONS);
        }
        pin.value = String::from_utf8(a.data.to_vec()).map_err(|_| sw::CONDITIONS)?;
        Ok(())
    }

    fn sign(&mut self, a: &Apdu<'_>) -> Result<Vec<u8>, u16> {
        if a.p1 > 0x05 {
            return Err(sw::BAD_P1P2);
        }
        let key = match a.p2 {
            0x80 => match self.ef.and_then(ef_by_fid) {
                Some(Ef::PrivateKey(k)) if self.app == App::Jpki => k,
                _ => return Err(sw::CONDITIONS),
            },
            0x97 | 0x9A if !self.sfi => return Err(sw::BAD_P1P2),
            0x97 if self.app == App::Jpki => Key::Auth,
            0x9A if self.app == App::Jpki => Key::Sign,
            0x97 | 0x9A => return Err(sw::NOT_FOUND),
            _ => return Err(sw::BAD_P1P2),
        };
        let n = a.data.len();
        let length_ok = match a.p1 {
            0x00 => (1..=245).contains(&n),
            0x02 | 0x04 => n == 32,
            _ => (1..=255).contains(&n),
        };
        if !length_ok {
            return Err(sw::WRONG_LENGTH);
        }
        let (verified, rsa_key) = match key {
            Key::Auth => (self.auth.verified, &self.pki.auth_key),
            Key::Sign => (self.sign.verified, &self.pki.sign_key),
        };
        if !verified {
            return Err(sw::SECURITY);
        }
        let is_pss = matches!(a.p1, 0x04 | 0x05);
        if is_pss && self.pss == PssBehaviour::Refuse {
            return Err(sw::BAD_P1P2);
        }
        let mut sig = sign_mode(rsa_key, a.p1, a.data).ok_or(sw::CONDITIONS)?;
        if is_pss && self.pss == PssBehaviour::Corrupt {
            sig[100] ^= 0x01;
        }
        Ok(sig)
    }

    fn challenge(&mut self, a: &Apdu<'_>) -> Result<Vec<u8>, u16> {
        if a.p1 != 0 || a.p2 != 0 {
            return Err(sw::BAD_P1P2);
        }
        if !a.data.is_empty() {
            return Err(sw::WRONG_LENGTH);
        }
        let n = match a.le.ok_or(sw::WRONG_LENGTH)? {
            n if n > 255 => 8,
            n => n,
        };
        let mut out = vec![0u8; n];
        OsRng.fill_bytes(&mut out);
        Ok(out)
    }
}

/// A SHA-256 DigestInfo around `hash` (the prefix from `rsa`, through `sha2`'s OID).
pub(crate) fn sha256_digest_info(hash: &[u8]) -> Vec<u8> {
    [&Pkcs1v15Sign::new::<Sha256>().prefix[..], hash].concat()
}

/// The six COMPUTE DIGITAL SIGNATURE modes (P1 00..05).
fn sign_mode(key: &RsaPrivateKey, p1: u8, data: &[u8]) -> Option<Vec<u8>> {
    let pkcs1 = |padding: Pkcs1v15Sign, m: &[u8]| key.sign_with_rng(&mut OsRng, padding, m).ok();
    let pss = |hash: &[u8]| -> Option<Vec<u8>> {
        let signer = rsa::pss::SigningKey::<Sha256>::new_with_salt_len(key.clone(), 32);
        signer
            .sign_prehash_with_rng(&mut OsRng, hash)
            .ok()
            .map(|s| s.to_vec())
    };
    match p1 {
        0x00 => pkcs1(Pkcs1v15Sign::new_unprefixed(), data),
        0x01 => pkcs1(Pkcs1v15Sign::new_unprefixed(), &Sha256::digest(data)),
        0x02 => pkcs1(Pkcs1v15Sign::new_unprefixed(), &sha256_digest_info(data)),
        0x03 => pkcs1(
            Pkcs1v15Sign::new_unprefixed(),
            &sha256_digest_info(&Sha256::digest(data)),
        ),
        0x04 => pss(data),
        0x05 => pss(&Sha256::digest(data)),
        _ => None,
    }
}
