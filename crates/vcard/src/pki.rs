//! The virtual card's test PKI: two self-signed CAs and the two end-entity certificates, all
//! generated here with fresh RSA-2048 keys. Every name in it is fictional.

use super::der::{
    bits, boolean, ctx_cons, ctx_prim, null, octets, oid, printable, seq, set, small_uint, time,
    uint, utf8,
};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::rand_core::{OsRng, RngCore};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};

const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;

/// The keys and certificates (DER) of one virtual card.
#[derive(Clone)]
pub struct Pki {
    pub auth_key: RsaPrivateKey,
    pub sign_key: RsaPrivateKey,
    pub auth_cert: Vec<u8>,
    pub auth_ca_cert: Vec<u8>,
    pub sign_cert: Vec<u8>,
    pub sign_ca_cert: Vec<u8>,
}

/// Generates a new test PKI: four RSA-2048 keys (generated in parallel), two CAs, two leaves.
pub fn generate() -> Pki {
    let mut keys: Vec<RsaPrivateKey> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| RsaPrivateKey::new(&mut OsRng, 2048).expect("RSA key generation")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("key thread"))
            .collect()
    });
    let sign_ca_key = keys.pop().expect("4 keys");
    let auth_ca_key = keys.pop().expect("4 keys");
    let sign_key = keys.pop().expect("4 keys");
    let auth_key = keys.pop().expect("4 keys");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let not_before = now - DAY;

    let auth_ca_name = ca_name("JPKI for user authentication");
    let sign_ca_name = ca_name("JPKI for digital signature");
    let auth_ca_cert = ca_cert(&auth_ca_key, &auth_ca_name, not_before);
    let sign_ca_cert = ca_cert(&sign_ca_key, &sign_ca_name, not_before);

    // Authentication certificate: no personal data, an opaque CN.
    let auth_subject = name(&[
        ("2.5.4.6", printable("JP")),
        ("2.5.4.3", printable(&opaque_id())),
    ]);
    let auth_ext = vec![
        extension("2.5.29.15", true, bits(7, &[0x80])),
        extension("2.5.29.37", false, seq(&[oid("1.3.6.1.5.5.7.3.2")])),
        extension(
            "1.3.6.1.5.5.7.1.1",
            false,
            seq(&[seq(&[
                oid("1.3.6.1.5.5.7.48.1"),
                ctx_prim(6, b"http://ocspauthnorm.jpki.go.jp"),
            ])]),
        ),
    ];
    let auth_cert = leaf_cert(
        &auth_key,
        &auth_subject,
        &auth_ca_key,
        &auth_ca_name,
        not_before,
        auth_ext,
    );

    // Signature certificate: fictional holder data in subjectAltName otherNames.
    let sign_subject = name(&[
        ("2.5.4.6", printable("JP")),
        ("2.5.4.7", utf8("Tokyo-to")),
        ("2.5.4.7", utf8("Shiken-ku")),
        ("2.5.4.3", printable(&opaque_id())),
    ]);
    let other_name = |suffix: &str, value: Vec<u8>| {
        ctx_cons(
            0,
            &[
                oid(&format!("1.2.392.200149.8.5.5.{suffix}")),
                ctx_cons(0, &value),
            ]
            .concat(),
        )
    };
    let san = seq(&[
        other_name("1", utf8("試験\u{3000}太郎")),
        other_name("4", printable("319800401")),
        other_name("3", printable("1")),
        other_name("5", utf8("東京都試験区試験町一丁目一番地")),
        other_name("2", printable("0")),
        other_name("6", printable("0")),
    ]);
    let sign_ext = vec![
        extension("2.5.29.15", true, bits(6, &[0xC0])),
        extension("2.5.29.17", false, san),
    ];
    let sign_cert = leaf_cert(
        &sign_key,
        &sign_subject,
        &sign_ca_key,
        &sign_ca_name,
        not_before,
        sign_ext,
    );

    Pki {
        auth_key,
        sign_key,
        auth_cert,
        auth_ca_cert,
        sign_cert,
        sign_ca_cert,
    }
}

fn ca_name(ou: &str) -> Vec<u8> {
    name(&[
        ("2.5.4.6", printable("JP")),
        ("2.5.4.10", printable("JPKI")),
        ("2.5.4.11", printable(ou)),
        (
            "2.5.4.11",
            printable("Japan Agency for Local Authority Information Systems"),
        ),
    ])
}

/// A Name: one attribute per RDN, in order.
fn name(attrs: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let rdns: Vec<Vec<u8>> = attrs
        .iter()
        .map(|(t, v)| set(&[seq(&[oid(t), v.clone()])]))
        .collect();
    seq(&rdns)
}

/// A random opaque identifier like the ones in real JPKI subjects (upper-case alphanumerics).
fn opaque_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut raw = [0u8; 24];
    OsRng.fill_bytes(&mut raw);
    raw.iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn extension(id: &str, critical: bool, value: Vec<u8>) -> Vec<u8> {
    if critical {
        seq(&[oid(id), boolean(true), octets(&value)])
    } else {
        seq(&[oid(id), octets(&value)])
    }
}

fn algorithm(id: &str) -> Vec<u8> {
    seq(&[oid(id), null()])
}

fn spki_and_key_id(key: &RsaPrivateKey) -> (Vec<u8>, Vec<u8>) {
    let pk = key
        .to_public_key()
        .to_pkcs1_der()
        .expect("encode RSA public key")
        .as_bytes()
        .to_vec();
    let key_id = Sha1::digest(&pk).to_vec();
    (seq(&[algorithm(RSA_ENCRYPTION), bits(0, &pk)]), key_id)
}

fn random_serial() -> Vec<u8> {
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7F;
    serial[0] |= 0x10;
    uint(&serial)
}

fn ca_cert(key: &RsaPrivateKey, ca_name: &[u8], not_before: i64) -> Vec<u8> {
    let (spki, key_id) = spki_and_key_id(key);
    let ext = vec![
        extension("2.5.29.19", true, seq(&[boolean(true)])),
        extension("2.5.29.15", true, bits(1, &[0x06])),
        extension("2.5.29.14", false, octets(&key_id)),
        extension("2.5.29.35", false, seq(&[ctx_prim(0, &key_id)])),
    ];
    let validity = seq(&[time(not_before), time(not_before + 20 * YEAR)]);
    let tbs = tbs(ca_name, validity, ca_name, spki, ext);
    sign_tbs(&tbs, key)
}

fn leaf_cert(
    key: &RsaPrivateKey,
    subject: &[u8],
    ca_key: &RsaPrivateKey,
    ca_name: &[u8],
    not_before: i64,
    mut ext: Vec<Vec<u8>>,
) -> Vec<u8> {
    let (spki, key_id) = spki_and_key_id(key);
    let (_, ca_key_id) = spki_and_key_id(ca_key);
    ext.push(extension("2.5.29.14", false, octets(&key_id)));
    ext.push(extension(
        "2.5.29.35",
        false,
        seq(&[ctx_prim(0, &ca_key_id)]),
    ));
    let validity = seq(&[time(not_before), time(not_before + 5 * YEAR)]);
    let tbs = tbs(ca_name, validity, subject, spki, ext);
    sign_tbs(&tbs, ca_key)
}

fn tbs(
    issuer: &[u8],
    validity: Vec<u8>,
    subject: &[u8],
    spki: Vec<u8>,
    ext: Vec<Vec<u8>>,
) -> Vec<u8> {
    seq(&[
        ctx_cons(0, &small_uint(2)),
        random_serial(),
        algorithm(SHA256_WITH_RSA),
        issuer.to_vec(),
        validity,
        subject.to_vec(),
        spki,
        ctx_cons(3, &seq(&ext)),
    ])
}

fn sign_tbs(tbs: &[u8], key: &RsaPrivateKey) -> Vec<u8> {
    let digest_info = super::sha256_digest_info(&Sha256::digest(tbs));
    let sig = key
        .sign(Pkcs1v15Sign::new_unprefixed(), &digest_info)
        .expect("sign certificate");
    debug_assert_eq!(sig.len(), key.size());
    seq(&[tbs.to_vec(), algorithm(SHA256_WITH_RSA), bits(0, &sig)])
}
