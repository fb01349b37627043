//! Certificates as the tokens need them: the DER, the encoded names and serial for PKCS#11
//! attributes, and the RSA public key for host-side verification.

use crate::error::Error;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;
use zeroize::Zeroize;

/// A parsed certificate. The signature certificate carries personal data: it lives in memory
/// only and is wiped when dropped.
pub struct Cert {
    pub der: Vec<u8>,
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    /// DER encoding of the serial number INTEGER (what `CKA_SERIAL_NUMBER` holds).
    pub serial: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    pub public_key: RsaPublicKey,
    pub modulus: Vec<u8>,
    pub exponent: Vec<u8>,
}

impl Cert {
    pub fn parse(der: Vec<u8>) -> Result<Cert, Error> {
        let bad = |_| Error::Malformed("certificate does not parse");
        let cert = Certificate::from_der(&der).map_err(bad)?;
        let tbs = &cert.tbs_certificate;
        let spki_bits = tbs
            .subject_public_key_info
            .subject_public_key
            .as_bytes()
            .ok_or(Error::Malformed(
                "certificate public key is not whole bytes",
            ))?;
        let public_key = RsaPublicKey::from_pkcs1_der(spki_bits)
            .map_err(|_| Error::Malformed("certificate key is not RSA"))?;
        Ok(Cert {
            subject: tbs.subject.to_der().map_err(bad)?,
            issuer: tbs.issuer.to_der().map_err(bad)?,
            serial: tbs.serial_number.to_der().map_err(bad)?,
            spki: tbs.subject_public_key_info.to_der().map_err(bad)?,
            modulus: public_key.n().to_bytes_be(),
            exponent: public_key.e().to_bytes_be(),
            public_key,
            der,
        })
    }

    /// Size of signatures made with the certificate's key, in bytes.
    pub fn sig_len(&self) -> usize {
        self.public_key.size()
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        self.der.zeroize();
        self.subject.zeroize();
        self.issuer.zeroize();
        self.serial.zeroize();
    }
}

/// Reads the serial number from the first bytes of a DER certificate (enough of it to reach
/// the serial: `SEQUENCE { SEQUENCE { [0] version, INTEGER serial ...`). Used for the token serial
/// number, so that it costs one READ BINARY rather than the whole certificate.
pub fn serial_from_head(head: &[u8]) -> Option<Vec<u8>> {
    fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *b.first()?;
        let (hl, len) = match *b.get(1)? {
            n @ 0..=0x7F => (2, n as usize),
            0x81 => (3, *b.get(2)? as usize),
            0x82 => (4, u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize),
            _ => return None,
        };
        Some((tag, hl, len))
    }
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
        assert!(Cert::parse(vec![0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        assert!(Cert::parse(vec![]).is_err());
    }
}
