//! Mechanisms: which the tokens offer, how each turns the caller's data into what the card signs
//! (and in which card mode), and host-side verification.

use crate::backend::{MechanismParams, RawMechanism};
use crate::error::{CkError, CkResult};
use cryptoki_sys::*;
use jpki_card::jpki::SignMode;
use rsa::{Pkcs1v15Sign, Pss, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// Key size of both JPKI keys, in bits.
pub const KEY_BITS: CK_ULONG = 2048;

/// A hash computed on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// The PKCS#1 v1.5 padding scheme for this hash; its `prefix` is the DER DigestInfo prefix
    /// (RFC 8017 §9.2 note 1) to put before the hash, from the hash crate's OID.
    fn pkcs1v15(self) -> Pkcs1v15Sign {
        match self {
            HashAlg::Sha1 => Pkcs1v15Sign::new::<Sha1>(),
            HashAlg::Sha224 => Pkcs1v15Sign::new::<Sha224>(),
            HashAlg::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
            HashAlg::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
            HashAlg::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
        }
    }

    /// The length of the hash, in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// A DER DigestInfo around `hash`.
    pub fn digest_info(self, hash: &[u8]) -> Vec<u8> {
        let mut out = self.pkcs1v15().prefix.into_vec();
        out.extend_from_slice(hash);
        out
    }
}

/// A running hash for multi-part operations.
#[derive(Clone)]
pub enum Hasher {
    Sha1(Sha1),
    Sha224(Sha224),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(alg: HashAlg) -> Hasher {
        match alg {
            HashAlg::Sha1 => Hasher::Sha1(Sha1::new()),
            HashAlg::Sha224 => Hasher::Sha224(Sha224::new()),
            HashAlg::Sha256 => Hasher::Sha256(Sha256::new()),
            HashAlg::Sha384 => Hasher::Sha384(Sha384::new()),
            HashAlg::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// A signing/verification mechanism the tokens support, with its parameters checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMechanism {
    /// `CKM_RSA_PKCS`: the caller's data (a DigestInfo) is padded as is.
    RsaPkcs,
    /// `CKM_SHAx_RSA_PKCS`: hashed on the host, DigestInfo built on the host.
    HashRsaPkcs(HashAlg),
    /// `CKM_RSA_PKCS_PSS`: the caller gives a SHA-256 hash.
    RsaPss,
    /// `CKM_SHA256_RSA_PKCS_PSS`: hashed on the host, PSS on the card.
    Sha256RsaPss,
}

/// Every mechanism of the tokens, PSS last.
pub const ALL: [CK_MECHANISM_TYPE; 8] = [
    CKM_RSA_PKCS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
];

/// The digest mechanisms, computed on the host (`C_Digest*`). Smart-card modules list them (as
/// OpenSC's does): generic test suites and `pkcs11-tool --test` exercise them, and Java's
/// SunPKCS11 offers RSA-PSS only for a token that lists the PSS hash as a digest mechanism.
pub const DIGESTS: [CK_MECHANISM_TYPE; 5] =
    [CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512];

/// The hash of a digest mechanism (`CKM_SHA_1` … `CKM_SHA512`), which take no parameter.
pub fn parse_digest(m: &RawMechanism) -> CkResult<HashAlg> {
    let alg = match m.mechanism {
        CKM_SHA_1 => HashAlg::Sha1,
        CKM_SHA224 => HashAlg::Sha224,
        CKM_SHA256 => HashAlg::Sha256,
        CKM_SHA384 => HashAlg::Sha384,
        CKM_SHA512 => HashAlg::Sha512,
        _ => return Err(CkError::MechanismInvalid),
    };
    match m.params {
        MechanismParams::None => Ok(alg),
        _ => Err(CkError::MechanismParamInvalid),
    }
}

/// Whether `m` is one of the PSS mechanisms (offered only while the card's PSS works).
pub fn is_pss(m: CK_MECHANISM_TYPE) -> bool {
    m == CKM_RSA_PKCS_PSS || m == CKM_SHA256_RSA_PKCS_PSS
}

/// `C_GetMechanismInfo` for a supported mechanism.
pub fn info(m: CK_MECHANISM_TYPE) -> CkResult<CK_MECHANISM_INFO> {
    if DIGESTS.contains(&m) {
        // Key sizes mean nothing for a digest (PKCS#11 3.0 §4.x: 0 when not applicable).
        return Ok(CK_MECHANISM_INFO {
            ulMinKeySize: 0,
            ulMaxKeySize: 0,
            flags: CKF_DIGEST,
        });
    }
    if !ALL.contains(&m) {
        return Err(CkError::MechanismInvalid);
    }
    Ok(CK_MECHANISM_INFO {
        ulMinKeySize: KEY_BITS,
        ulMaxKeySize: KEY_BITS,
        flags: CKF_HW | CKF_SIGN | CKF_VERIFY,
    })
}

/// Checks a mechanism and its parameters. PSS only with SHA-256, MGF1-SHA-256 and a 32-byte salt
/// (what the card does); anything else is `CKR_MECHANISM_PARAM_INVALID`.
pub fn parse(m: &RawMechanism) -> CkResult<SignMechanism> {
    let no_params = || match m.params {
        MechanismParams::None => Ok(()),
        _ => Err(CkError::MechanismParamInvalid),
    };
    let mech = match m.mechanism {
        CKM_RSA_PKCS => SignMechanism::RsaPkcs,
        CKM_SHA1_RSA_PKCS => SignMechanism::HashRsaPkcs(HashAlg::Sha1),
        CKM_SHA224_RSA_PKCS => SignMechanism::HashRsaPkcs(HashAlg::Sha224),
        CKM_SHA256_RSA_PKCS => SignMechanism::HashRsaPkcs(HashAlg::Sha256),
        CKM_SHA384_RSA_PKCS => SignMechanism::HashRsaPkcs(HashAlg::Sha384),
        CKM_SHA512_RSA_PKCS => SignMechanism::HashRsaPkcs(HashAlg::Sha512),
        CKM_RSA_PKCS_PSS | CKM_SHA256_RSA_PKCS_PSS => {
            match m.params {
                MechanismParams::Pss(p)
                    if p.hash_alg == CKM_SHA256 && p.mgf == CKG_MGF1_SHA256 && p.s_len == 32 => {}
                _ => return Err(CkError::MechanismParamInvalid),
            }
            return Ok(if m.mechanism == CKM_RSA_PKCS_PSS {
                SignMechanism::RsaPss
            } else {
                SignMechanism::Sha256RsaPss
            });
        }
        _ => return Err(CkError::MechanismInvalid),
    };
    no_params()?;
    Ok(mech)
}

impl SignMechanism {
    pub fn is_pss(self) -> bool {
        matches!(self, SignMechanism::RsaPss | SignMechanism::Sha256RsaPss)
    }

    /// The host-side hash of a hash-and-sign mechanism.
    pub fn hash(self) -> Option<HashAlg> {
        match self {
            SignMechanism::HashRsaPkcs(h) => Some(h),
            SignMechanism::Sha256RsaPss => Some(HashAlg::Sha256),
            SignMechanism::RsaPkcs | SignMechanism::RsaPss => None,
        }
    }

    /// Turns the caller's data (for hash mechanisms: the finished hash) into the card's input
    /// and mode. Checks lengths: `CKM_RSA_PKCS` takes 1 to k−11 bytes, `CKM_RSA_PKCS_PSS` a
    /// 32-byte hash.
    pub fn card_input(self, data_or_hash: &[u8], sig_len: usize) -> CkResult<(SignMode, Vec<u8>)> {
        match self {
            SignMechanism::RsaPkcs => {
                if data_or_hash.is_empty() || data_or_hash.len() + 11 > sig_len {
                    return Err(CkError::DataLenRange);
                }
                Ok((SignMode::Pkcs1Raw, data_or_hash.to_vec()))
            }
            SignMechanism::HashRsaPkcs(h) => Ok((SignMode::Pkcs1Raw, h.digest_info(data_or_hash))),
            SignMechanism::RsaPss | SignMechanism::Sha256RsaPss => {
                if data_or_hash.len() != 32 {
                    return Err(CkError::DataLenRange);
                }
                Ok((SignMode::PssSha256Hash, data_or_hash.to_vec()))
            }
        }
    }

    /// Verifies `sig` over the card input `input` (as returned by [`SignMechanism::card_input`]).
    pub fn verify(self, key: &RsaPublicKey, input: &[u8], sig: &[u8]) -> bool {
        match self {
            SignMechanism::RsaPkcs | SignMechanism::HashRsaPkcs(_) => key
                .verify(Pkcs1v15Sign::new_unprefixed(), input, sig)
                .is_ok(),
            SignMechanism::RsaPss | SignMechanism::Sha256RsaPss => key
                .verify(Pss::new_with_salt::<Sha256>(32), input, sig)
                .is_ok(),
        }
    }
}

/// A single- or multi-part operation's accumulated input.
pub enum Input {
    /// Raw data collected for a mechanism without host-side hashing.
    Raw(Vec<u8>),
    /// A running hash.
    Hash(Box<Hasher>),
}

impl Input {
    pub fn new(mech: SignMechanism) -> Input {
        match mech.hash() {
            Some(h) => Input::Hash(Box::new(Hasher::new(h))),
            None => Input::Raw(Vec::new()),
        }
    }

    /// Adds data. Raw input is bounded by what a signature can cover (4 kB is far above it).
    pub fn update(&mut self, data: &[u8]) -> CkResult<()> {
        match self {
            Input::Raw(buf) => {
                if buf.len() + data.len() > 4096 {
                    return Err(CkError::DataLenRange);
                }
                buf.extend_from_slice(data);
            }
            Input::Hash(h) => h.update(data),
        }
        Ok(())
    }

    /// The data (or hash) to give to [`SignMechanism::card_input`].
    pub fn finish(self) -> Vec<u8> {
        match self {
            Input::Raw(buf) => buf,
            Input::Hash(h) => (*h).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::PssParams;

    fn mech(m: CK_MECHANISM_TYPE, params: MechanismParams) -> RawMechanism {
        RawMechanism {
            mechanism: m,
            params,
        }
    }

    #[test]
    fn pss_parameters_are_checked() {
        let good = PssParams {
            hash_alg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            s_len: 32,
        };
        assert_eq!(
            parse(&mech(CKM_RSA_PKCS_PSS, MechanismParams::Pss(good))),
            Ok(SignMechanism::RsaPss)
        );
        assert_eq!(
            parse(&mech(CKM_SHA256_RSA_PKCS_PSS, MechanismParams::Pss(good))),
            Ok(SignMechanism::Sha256RsaPss)
        );
        for bad in [
            PssParams { s_len: 20, ..good },
            PssParams {
                hash_alg: CKM_SHA384,
                ..good
            },
            PssParams {
                mgf: CKG_MGF1_SHA1,
                ..good
            },
        ] {
            assert_eq!(
                parse(&mech(CKM_RSA_PKCS_PSS, MechanismParams::Pss(bad))),
                Err(CkError::MechanismParamInvalid)
            );
        }
        assert_eq!(
            parse(&mech(CKM_RSA_PKCS_PSS, MechanismParams::None)),
            Err(CkError::MechanismParamInvalid)
        );
        assert_eq!(
            parse(&mech(CKM_RSA_PKCS, MechanismParams::Other(vec![1]))),
            Err(CkError::MechanismParamInvalid)
        );
        assert_eq!(
            parse(&mech(CKM_RSA_X_509, MechanismParams::None)),
            Err(CkError::MechanismInvalid)
        );
        assert_eq!(
            parse(&mech(CKM_SHA384_RSA_PKCS, MechanismParams::None)),
            Ok(SignMechanism::HashRsaPkcs(HashAlg::Sha384))
        );
    }

    #[test]
    fn card_inputs() {
        let (mode, input) = SignMechanism::HashRsaPkcs(HashAlg::Sha256)
            .card_input(&[7; 32], 256)
            .unwrap();
        assert_eq!(mode, SignMode::Pkcs1Raw);
        assert_eq!(input.len(), 19 + 32);
        assert_eq!(&input[19..], &[7; 32]);
        assert_eq!(
            SignMechanism::RsaPkcs.card_input(&[1; 246], 256),
            Err(CkError::DataLenRange)
        );
        assert!(SignMechanism::RsaPkcs.card_input(&[1; 245], 256).is_ok());
        assert_eq!(
            SignMechanism::RsaPkcs.card_input(&[], 256),
            Err(CkError::DataLenRange)
        );
        assert_eq!(
            SignMechanism::RsaPss.card_input(&[1; 31], 256),
            Err(CkError::DataLenRange)
        );
        assert_eq!(
            SignMechanism::RsaPss.card_input(&[1; 32], 256).unwrap().0,
            SignMode::PssSha256Hash
        );
    }

    #[test]
    fn digest_info_matches_known_encoding() {
        // SHA-256 of "abc" in a DigestInfo, as openssl builds it.
        let mut h = Hasher::new(HashAlg::Sha256);
        h.update(b"abc");
        let di = HashAlg::Sha256.digest_info(&h.finish());
        assert_eq!(di.len(), 51);
        assert_eq!(&di[..2], &[0x30, 0x31]);
        assert_eq!(&di[19..23], &[0xba, 0x78, 0x16, 0xbf]);
        for alg in [
            HashAlg::Sha1,
            HashAlg::Sha224,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            let hash = Hasher::new(alg).finish();
            let di = alg.digest_info(&hash);
            assert_eq!(
                di[1] as usize + 2,
                di.len(),
                "{alg:?} DigestInfo length byte"
            );
        }
    }
}
