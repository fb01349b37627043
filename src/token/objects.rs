//! The objects of each token and their attributes.
//!
//! | handle | auth token | | handle | signature token |
//! |---|---|---|---|---|
//! | 1 | certificate (public) | | 11 | certificate (after login) |
//! | 2 | public key (public) | | 12 | public key (after login) |
//! | 3 | private key (after login) | | 13 | private key (after login, always-authenticate) |
//! | 4 | CA certificate | | 14 | CA certificate |
//! | 5 | profile: public-certificates token | | 15 | profile: public-certificates token (authentication token in a signing program) |
//!
//! Both tokens say they are public-certificates tokens, so that NSS (Firefox) lists certificates
//! without asking for a PIN first. For the signature token this means Firefox never sees the
//! signature certificate without the password, and never asks for the 5-try password during TLS
//! client authentication. In the programs of the configuration's `signing_programs` (Thunderbird
//! by default) the signature token is an authentication token instead ([`profile_id`]): NSS then
//! logs in to it to look for certificates, and finds the signature certificate.

use crate::backend::AttrValue;
use crate::error::CkResult;
use cryptoki_sys::*;
use jpki_card::cert::Cert;
use jpki_card::jpki::KeyPair;
use sha1::{Digest, Sha1};

/// An object of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Cert,
    PublicKey,
    PrivateKey,
    CaCert,
    Profile,
}

pub const ALL: [ObjectKind; 5] = [
    ObjectKind::Cert,
    ObjectKind::PublicKey,
    ObjectKind::PrivateKey,
    ObjectKind::CaCert,
    ObjectKind::Profile,
];

impl ObjectKind {
    pub fn handle(self, key: KeyPair) -> CK_OBJECT_HANDLE {
        let base = match key {
            KeyPair::Auth => 0,
            KeyPair::Sign => 10,
        };
        base + match self {
            ObjectKind::Cert => 1,
            ObjectKind::PublicKey => 2,
            ObjectKind::PrivateKey => 3,
            ObjectKind::CaCert => 4,
            ObjectKind::Profile => 5,
        }
    }

    pub fn from_handle(key: KeyPair, h: CK_OBJECT_HANDLE) -> Option<ObjectKind> {
        ALL.into_iter().find(|o| o.handle(key) == h)
    }

    pub fn class(self) -> CK_OBJECT_CLASS {
        match self {
            ObjectKind::Cert | ObjectKind::CaCert => CKO_CERTIFICATE,
            ObjectKind::PublicKey => CKO_PUBLIC_KEY,
            ObjectKind::PrivateKey => CKO_PRIVATE_KEY,
            ObjectKind::Profile => CKO_PROFILE,
        }
    }

    /// Private objects are visible only to a logged-in user.
    pub fn private(self, key: KeyPair) -> bool {
        match self {
            ObjectKind::PrivateKey => true,
            ObjectKind::Cert | ObjectKind::PublicKey => key == KeyPair::Sign,
            ObjectKind::CaCert | ObjectKind::Profile => false,
        }
    }

    pub fn visible(self, key: KeyPair, logged_in: bool) -> bool {
        logged_in || !self.private(key)
    }

    /// Which certificate the object's attributes come from, if any.
    pub fn source(self) -> Option<CertSource> {
        match self {
            ObjectKind::Cert | ObjectKind::PublicKey | ObjectKind::PrivateKey => {
                Some(CertSource::KeyPair)
            }
            ObjectKind::CaCert => Some(CertSource::Ca),
            ObjectKind::Profile => None,
        }
    }
}

/// The certificate an object is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertSource {
    /// The certificate of the token's own key pair.
    KeyPair,
    /// The issuing CA's certificate.
    Ca,
}

/// `CKA_ID` of a token's key pair, and of its CA certificate.
pub fn id(key: KeyPair, obj: ObjectKind) -> Vec<u8> {
    match (key, obj) {
        (KeyPair::Auth, ObjectKind::CaCert) => vec![0x03],
        (KeyPair::Sign, ObjectKind::CaCert) => vec![0x04],
        (KeyPair::Auth, _) => vec![0x01],
        (KeyPair::Sign, _) => vec![0x02],
    }
}

/// `CKA_LABEL`: the same for a key pair's certificate, public and private key.
pub fn label(key: KeyPair, obj: ObjectKind) -> &'static str {
    match (key, obj) {
        (KeyPair::Auth, ObjectKind::CaCert) => "User Authentication CA",
        (KeyPair::Sign, ObjectKind::CaCert) => "Digital Signature CA",
        (KeyPair::Auth, ObjectKind::Profile) => "User Authentication Profile",
        (KeyPair::Sign, ObjectKind::Profile) => "Digital Signature Profile",
        (KeyPair::Auth, _) => "User Authentication",
        (KeyPair::Sign, _) => "Digital Signature",
    }
}

/// The token's profile (`CKA_PROFILE_ID`): a public-certificates token, so that NSS lists
/// certificates without logging in — except the signature token in a signing program
/// (`signing_programs`), where it is an authentication token, so that NSS logs in (asks for the
/// signature password) to find the signature certificate, which is private.
pub fn profile_id(key: KeyPair, signing_program: bool) -> CK_ULONG {
    if key == KeyPair::Sign && signing_program {
        CKP_AUTHENTICATION_TOKEN
    } else {
        CKP_PUBLIC_CERTIFICATES_TOKEN
    }
}

fn b(v: bool) -> AttrValue {
    AttrValue::Value(vec![v as CK_BBOOL])
}

fn ul(v: CK_ULONG) -> AttrValue {
    AttrValue::Value(v.to_ne_bytes().to_vec())
}

fn bytes(v: &[u8]) -> AttrValue {
    AttrValue::Value(v.to_vec())
}

/// Attributes that need no certificate, or `None` if `ty` needs one (or does not exist).
pub fn static_attr(key: KeyPair, obj: ObjectKind, ty: CK_ATTRIBUTE_TYPE) -> Option<AttrValue> {
    let is_key = matches!(obj, ObjectKind::PublicKey | ObjectKind::PrivateKey);
    let is_cert = matches!(obj, ObjectKind::Cert | ObjectKind::CaCert);
    let v = match ty {
        CKA_CLASS => ul(obj.class()),
        CKA_TOKEN => b(true),
        CKA_PRIVATE => b(obj.private(key)),
        CKA_MODIFIABLE | CKA_COPYABLE | CKA_DESTROYABLE => b(false),
        CKA_LABEL => bytes(label(key, obj).as_bytes()),
        CKA_UNIQUE_ID => bytes(format!("{}", obj.handle(key)).as_bytes()),
        CKA_PROFILE_ID if obj == ObjectKind::Profile => {
            ul(profile_id(key, crate::config::get().in_signing_program()))
        }
        CKA_ID if obj != ObjectKind::Profile => bytes(&id(key, obj)),
        // Certificates.
        CKA_CERTIFICATE_TYPE if is_cert => ul(CKC_X_509),
        CKA_TRUSTED if is_cert => b(false),
        CKA_CERTIFICATE_CATEGORY if is_cert => ul(if obj == ObjectKind::CaCert {
            CK_CERTIFICATE_CATEGORY_AUTHORITY
        } else {
            CK_CERTIFICATE_CATEGORY_TOKEN_USER
        }),
        CKA_START_DATE | CKA_END_DATE if is_cert || is_key => bytes(&[]),
        CKA_URL | CKA_HASH_OF_SUBJECT_PUBLIC_KEY | CKA_HASH_OF_ISSUER_PUBLIC_KEY if is_cert => {
            bytes(&[])
        }
        CKA_JAVA_MIDP_SECURITY_DOMAIN if is_cert => ul(CK_SECURITY_DOMAIN_UNSPECIFIED),
        CKA_NAME_HASH_ALGORITHM if is_cert => ul(CKM_SHA_1),
        // Keys.
        CKA_KEY_TYPE if is_key => ul(CKK_RSA),
        CKA_DERIVE | CKA_LOCAL if is_key => b(false),
        CKA_KEY_GEN_MECHANISM if is_key => ul(CK_UNAVAILABLE_INFORMATION),
        CKA_ALLOWED_MECHANISMS if is_key => AttrValue::Value(
            super::mechanism::ALL
                .iter()
                .flat_map(|m| m.to_ne_bytes())
                .collect(),
        ),
        CKA_MODULUS_BITS if is_key => ul(super::mechanism::KEY_BITS),
        CKA_ENCRYPT | CKA_WRAP | CKA_VERIFY_RECOVER if obj == ObjectKind::PublicKey => b(false),
        CKA_VERIFY if obj == ObjectKind::PublicKey => b(true),
        CKA_TRUSTED if obj == ObjectKind::PublicKey => b(false),
        CKA_SIGN if obj == ObjectKind::PrivateKey => b(true),
        CKA_DECRYPT | CKA_UNWRAP | CKA_SIGN_RECOVER | CKA_EXTRACTABLE | CKA_WRAP_WITH_TRUSTED
            if obj == ObjectKind::PrivateKey =>
        {
            b(false)
        }
        CKA_SENSITIVE | CKA_ALWAYS_SENSITIVE | CKA_NEVER_EXTRACTABLE
            if obj == ObjectKind::PrivateKey =>
        {
            b(true)
        }
        CKA_ALWAYS_AUTHENTICATE if obj == ObjectKind::PrivateKey => b(key == KeyPair::Sign),
        CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2 | CKA_EXPONENT_1 | CKA_EXPONENT_2
        | CKA_COEFFICIENT
            if obj == ObjectKind::PrivateKey =>
        {
            AttrValue::Sensitive
        }
        _ => return None,
    };
    Some(v)
}

/// Attributes that come from the certificate. The values are copies, wiped when the
/// [`AttrValue`] is dropped.
pub fn cert_attr(obj: ObjectKind, ty: CK_ATTRIBUTE_TYPE, cert: &Cert) -> AttrValue {
    let is_key = matches!(obj, ObjectKind::PublicKey | ObjectKind::PrivateKey);
    let is_cert = matches!(obj, ObjectKind::Cert | ObjectKind::CaCert);
    match ty {
        CKA_SUBJECT if is_cert || is_key => bytes(cert.subject()),
        CKA_ISSUER if is_cert => bytes(cert.issuer()),
        CKA_SERIAL_NUMBER if is_cert => bytes(cert.serial()),
        CKA_VALUE if is_cert => bytes(cert.der()),
        CKA_CHECK_VALUE if is_cert => bytes(&Sha1::digest(cert.der())[..3]),
        CKA_PUBLIC_KEY_INFO if is_cert || is_key => bytes(cert.spki()),
        CKA_MODULUS if is_key => bytes(cert.modulus()),
        CKA_PUBLIC_EXPONENT if is_key => bytes(cert.exponent()),
        _ => AttrValue::Invalid,
    }
}

/// Whether `ty` can only be answered from a certificate.
pub fn needs_cert(key: KeyPair, obj: ObjectKind, ty: CK_ATTRIBUTE_TYPE) -> bool {
    static_attr(key, obj, ty).is_none() && obj.source().is_some()
}

/// Answers one attribute, reading the certificate through `load` only if needed.
pub fn attr(
    key: KeyPair,
    obj: ObjectKind,
    ty: CK_ATTRIBUTE_TYPE,
    load: &mut dyn FnMut(CertSource) -> CkResult<std::sync::Arc<Cert>>,
) -> CkResult<AttrValue> {
    if let Some(v) = static_attr(key, obj, ty) {
        return Ok(v);
    }
    match obj.source() {
        Some(src) => {
            // Only known certificate attributes justify reading the card.
            let cert_types = [
                CKA_SUBJECT,
                CKA_ISSUER,
                CKA_SERIAL_NUMBER,
                CKA_VALUE,
                CKA_CHECK_VALUE,
                CKA_PUBLIC_KEY_INFO,
                CKA_MODULUS,
                CKA_PUBLIC_EXPONENT,
            ];
            if !cert_types.contains(&ty) {
                return Ok(AttrValue::Invalid);
            }
            let cert = load(src)?;
            Ok(cert_attr(obj, ty, &cert))
        }
        None => Ok(AttrValue::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_do_not_collide() {
        for key in [KeyPair::Auth, KeyPair::Sign] {
            for o in ALL {
                assert_eq!(ObjectKind::from_handle(key, o.handle(key)), Some(o));
            }
        }
        assert_eq!(ObjectKind::from_handle(KeyPair::Sign, 1), None);
        assert_eq!(ObjectKind::from_handle(KeyPair::Auth, 11), None);
        assert_eq!(ObjectKind::from_handle(KeyPair::Auth, 0), None);
    }

    #[test]
    fn visibility() {
        assert!(ObjectKind::Cert.visible(KeyPair::Auth, false));
        assert!(!ObjectKind::PrivateKey.visible(KeyPair::Auth, false));
        assert!(!ObjectKind::Cert.visible(KeyPair::Sign, false));
        assert!(!ObjectKind::PublicKey.visible(KeyPair::Sign, false));
        assert!(ObjectKind::CaCert.visible(KeyPair::Sign, false));
        assert!(ObjectKind::Profile.visible(KeyPair::Sign, false));
        assert!(ObjectKind::Cert.visible(KeyPair::Sign, true));
    }

    #[test]
    fn static_attributes() {
        assert_eq!(
            static_attr(
                KeyPair::Sign,
                ObjectKind::PrivateKey,
                CKA_ALWAYS_AUTHENTICATE
            ),
            Some(b(true))
        );
        assert_eq!(
            static_attr(
                KeyPair::Auth,
                ObjectKind::PrivateKey,
                CKA_ALWAYS_AUTHENTICATE
            ),
            Some(b(false))
        );
        assert_eq!(
            static_attr(KeyPair::Auth, ObjectKind::PrivateKey, CKA_EXTRACTABLE),
            Some(b(false))
        );
        assert_eq!(
            static_attr(KeyPair::Auth, ObjectKind::PrivateKey, CKA_PRIVATE_EXPONENT),
            Some(AttrValue::Sensitive)
        );
        assert_eq!(
            static_attr(KeyPair::Auth, ObjectKind::Profile, CKA_PROFILE_ID),
            Some(ul(CKP_PUBLIC_CERTIFICATES_TOKEN))
        );
        assert_eq!(
            static_attr(KeyPair::Auth, ObjectKind::Profile, CKA_ID),
            None
        );
        assert_eq!(
            static_attr(KeyPair::Auth, ObjectKind::CaCert, CKA_CERTIFICATE_CATEGORY),
            Some(ul(CK_CERTIFICATE_CATEGORY_AUTHORITY))
        );
        assert_eq!(
            static_attr(KeyPair::Auth, ObjectKind::Cert, CKA_ID),
            static_attr(KeyPair::Auth, ObjectKind::PrivateKey, CKA_ID)
        );
        assert_eq!(
            static_attr(KeyPair::Auth, ObjectKind::Cert, CKA_LABEL),
            static_attr(KeyPair::Auth, ObjectKind::PublicKey, CKA_LABEL)
        );
        assert!(needs_cert(
            KeyPair::Auth,
            ObjectKind::PrivateKey,
            CKA_MODULUS
        ));
        assert!(!needs_cert(KeyPair::Auth, ObjectKind::Profile, CKA_MODULUS));
    }
}
