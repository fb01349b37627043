//! Certificates as the tokens need them: the DER, the encoded names and serial for PKCS#11
//! attributes, and the RSA public key for host-side verification.
//!
//! The signature certificate carries personal data (name, address, date of birth, sex in its
//! subjectAltName). So a [`Cert`] keeps one copy of the DER, in a [`SecretBuf`] (wiped when
//! dropped, left out of core dumps), and finds the fields it needs by walking the DER in place:
//! the parsed structures of a full X.509 parser would hold copies of the names and extensions
//! in ordinary allocations that nothing wipes. What it keeps besides is public: the RSA key.

use crate::error::Error;
use crate::secret::SecretBuf;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use std::ops::Range;
use std::sync::Arc;

/// A certificate: its DER (wiped when dropped) and where its fields are in it.
pub struct Cert {
    der: SecretBuf,
    subject: Range<usize>,
    issuer: Range<usize>,
    /// The serial number INTEGER, tag and length included (what `CKA_SERIAL_NUMBER` holds).
    serial: Range<usize>,
    /// The SubjectPublicKeyInfo.
    spki: Range<usize>,
    public_key: Arc<RsaPublicKey>,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

/// One DER element inside a buffer: its tag, and where the whole element and its contents are.
#[derive(Debug, Clone)]
struct Tlv {
    tag: u8,
    whole: Range<usize>,
    contents: Range<usize>,
}

/// Reads the DER element at `at` that must end by `end` (its header read by the `der` crate:
/// single-byte tag, definite length in its shortest form).
fn tlv(der: &[u8], at: usize, end: usize) -> Result<Tlv, Error> {
    let bad = Error::Malformed("certificate does not parse");
    let within = der.get(at..end).ok_or(bad.clone())?;
    let (tag, hl, len) = crate::der::header(within).ok_or(bad.clone())?;
    let contents = at + hl..at + hl + len;
    if contents.end > end {
        return Err(bad);
    }
    Ok(Tlv {
        tag,
        whole: at..contents.end,
        contents,
    })
}

/// Reads the element at `*at` (within `end`), which must have tag `tag`, and moves past it.
fn expect(der: &[u8], at: &mut usize, end: usize, tag: u8) -> Result<Tlv, Error> {
    let t = tlv(der, *at, end)?;
    if t.tag != tag {
        return Err(Error::Malformed("certificate does not parse"));
    }
    *at = t.whole.end;
    Ok(t)
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const VERSION: u8 = 0xA0;

impl Cert {
    /// Finds the fields of an X.509 certificate in `der`, which it keeps:
    /// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }` and
    /// `TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
    /// validity, subject, subjectPublicKeyInfo, ... }`, in DER, with nothing after it; the key
    /// must be RSA.
    pub fn parse(der: SecretBuf) -> Result<Cert, Error> {
        let bad = || Error::Malformed("certificate does not parse");
        let d = &der[..];
        let mut at = 0;
        let cert = expect(d, &mut at, d.len(), SEQUENCE)?;
        if at != d.len() {
            return Err(bad());
        }
        let end = cert.contents.end;
        let mut at = cert.contents.start;
        let tbs = expect(d, &mut at, end, SEQUENCE)?;
        expect(d, &mut at, end, SEQUENCE)?; // signatureAlgorithm
        expect(d, &mut at, end, BIT_STRING)?; // signatureValue
        if at != end {
            return Err(bad());
        }
        let end = tbs.contents.end;
        let mut at = tbs.contents.start;
        if tlv(d, at, end)?.tag == VERSION {
            expect(d, &mut at, end, VERSION)?;
        }
        let serial = expect(d, &mut at, end, INTEGER)?;
        if serial.contents.is_empty() || serial.contents.len() > 21 {
            return Err(bad());
        }
        expect(d, &mut at, end, SEQUENCE)?; // signature
        let issuer = expect(d, &mut at, end, SEQUENCE)?;
        expect(d, &mut at, end, SEQUENCE)?; // validity
        let subject = expect(d, &mut at, end, SEQUENCE)?;
        let spki = expect(d, &mut at, end, SEQUENCE)?;
        // What follows (unique identifiers, extensions) must at least be well-formed elements.
        while at < end {
            at = tlv(d, at, end)?.whole.end;
        }
        // SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }
        let mut at = spki.contents.start;
        expect(d, &mut at, spki.contents.end, SEQUENCE)?;
        let key = expect(d, &mut at, spki.contents.end, BIT_STRING)?;
        if at != spki.contents.end {
            return Err(bad());
        }
        let key_bits = &d[key.contents.clone()];
        if key_bits.first() != Some(&0) {
            return Err(Error::Malformed(
                "certificate public key is not whole bytes",
            ));
        }
        let public_key = RsaPublicKey::from_pkcs1_der(&key_bits[1..])
            .map_err(|_| Error::Malformed("certificate key is not RSA"))?;
        Ok(Cert {
            subject: subject.whole,
            issuer: issuer.whole,
            serial: serial.whole,
            spki: spki.whole,
            modulus: public_key.n().to_bytes_be(),
            exponent: public_key.e().to_bytes_be(),
            public_key: Arc::new(public_key),
            der,
        })
    }

    /// [`Cert::parse`] of a copy of `der`.
    pub fn from_der(der: &[u8]) -> Result<Cert, Error> {
        Cert::parse(SecretBuf::from_slice(der))
    }

    /// The whole certificate (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject Name (DER).
    pub fn subject(&self) -> &[u8] {
        &self.der[self.subject.clone()]
    }

    /// The issuer Name (DER).
    pub fn issuer(&self) -> &[u8] {
        &self.der[self.issuer.clone()]
    }

    /// The serial number INTEGER (DER, tag and length included).
    pub fn serial(&self) -> &[u8] {
        &self.der[self.serial.clone()]
    }

    /// The SubjectPublicKeyInfo (DER).
    pub fn spki(&self) -> &[u8] {
        &self.der[self.spki.clone()]
    }

    /// The RSA public key (shared: a signing operation keeps it, not the certificate).
    pub fn public_key(&self) -> &Arc<RsaPublicKey> {
        &self.public_key
    }

    /// The key's modulus, big-endian.
    pub fn modulus(&self) -> &[u8] {
        &self.modulus
    }

    /// The key's public exponent, big-endian.
    pub fn exponent(&self) -> &[u8] {
        &self.exponent
    }

    /// Size of signatures made with the certificate's key, in bytes.
    pub fn sig_len(&self) -> usize {
        self.public_key.size()
    }
}

/// Reads the serial number from the first bytes of a DER certificate (enough of it to reach
/// the serial: `SEQUENCE { SEQUENCE { [0] version, INTEGER serial ...`). Used for the token serial
/// number, so that it costs one READ BINARY rather than the whole certificate.
pub fn serial_from_head(head: &[u8]) -> Option<Vec<u8>> {
    use crate::der::header;
    let (t, hl, _) = header(head)?;
    if t != 0x30 {
        return None;
    }
    let tbs = head.get(hl..)?;
    let (t, hl, _) = header(tbs)?;
    if t != 0x30 {
        return None;
    }
    let mut rest = tbs.get(hl..)?;
    let (t, hl, len) = header(rest)?;
    if t == 0xA0 {
        rest = rest.get(hl + len..)?;
    }
    let (t, hl, len) = header(rest)?;
    if t != 0x02 || len == 0 || len > 20 {
        return None;
    }
    rest.get(hl..hl + len).map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_from_partial_der() {
        // SEQ(len 0x0621) SEQ(len 0x0509) [0]{INTEGER 2} INTEGER 0x01ABCD ...
        let head = [
            0x30, 0x82, 0x06, 0x21, 0x30, 0x82, 0x05, 0x09, 0xA0, 0x03, 0x02, 0x01, 0x02, 0x02,
            0x03, 0x01, 0xAB, 0xCD, 0x30,
        ];
        assert_eq!(serial_from_head(&head), Some(vec![0x01, 0xAB, 0xCD]));
        assert_eq!(serial_from_head(&head[..15]), None, "cut inside the serial");
        assert_eq!(serial_from_head(&[0x31, 0x00]), None);
        assert_eq!(serial_from_head(&[]), None);
        // Without the version field.
        let v1 = [0x30, 0x81, 0x90, 0x30, 0x81, 0x80, 0x02, 0x01, 0x07];
        assert_eq!(serial_from_head(&v1), Some(vec![7]));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(Cert::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        assert!(Cert::from_der(&[]).is_err());
    }

    /// The fields found in place are those a full X.509 parser finds.
    #[test]
    fn fields_agree_with_x509_cert() {
        use x509_cert::der::{Decode, Encode};
        let card = jpki_vcard::VirtualCard::in_memory();
        for der in [
            card.auth_cert(),
            card.sign_cert(),
            card.auth_ca_cert(),
            card.sign_ca_cert(),
        ] {
            let c = Cert::from_der(der).unwrap();
            let x = x509_cert::Certificate::from_der(der).unwrap();
            let tbs = &x.tbs_certificate;
            assert_eq!(c.der(), der);
            assert_eq!(c.subject(), tbs.subject.to_der().unwrap());
            assert_eq!(c.issuer(), tbs.issuer.to_der().unwrap());
            assert_eq!(c.serial(), tbs.serial_number.to_der().unwrap());
            assert_eq!(c.spki(), tbs.subject_public_key_info.to_der().unwrap());
            assert_eq!(c.sig_len(), 256);
            assert_eq!(c.exponent(), [1, 0, 1]);
            // Trailing bytes, a cut, a wrong tag, a long-form length that could be short.
            let mut longer = der.to_vec();
            longer.push(0);
            assert!(Cert::from_der(&longer).is_err());
            assert!(Cert::from_der(&der[..der.len() - 1]).is_err());
            let mut tag = der.to_vec();
            tag[4] = 0x31;
            assert!(Cert::from_der(&tag).is_err());
        }
        let short_in_long_form = [0x30, 0x81, 0x03, 0x02, 0x01, 0x01];
        assert!(tlv(&short_in_long_form, 0, 6).is_err());
    }
}
