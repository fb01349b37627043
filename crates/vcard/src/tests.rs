use super::apdu::hex;
use super::*;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pss::{Signature as PssSignature, VerifyingKey as PssVerifyingKey};
use rsa::signature::hazmat::PrehashVerifier;
use rsa::RsaPublicKey;
use x509_cert::der::Decode;

const SELECT_JPKI: &str = "00A4040C0AD392F000260100000001";
const SELECT_ISD: &str = "00A4040C07A0000001510000";

fn h(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Sends a hex APDU, returns the response as upper-case hex.
fn t(card: &mut VirtualCard, apdu: &str) -> String {
    hex(&card.transmit(&h(apdu)))
}

/// Sends a hex APDU, asserts it ends with 9000 and returns the data.
fn ok(card: &mut VirtualCard, apdu: &str) -> Vec<u8> {
    let r = card.transmit(&h(apdu));
    assert!(r.ends_with(&[0x90, 0x00]), "{apdu} → {}", hex(&r));
    r[..r.len() - 2].to_vec()
}

fn jpki() -> VirtualCard {
    let mut c = VirtualCard::in_memory();
    ok(&mut c, SELECT_JPKI);
    c
}

fn verify_apdu(p2: &str, pin: &str) -> String {
    format!("002000{p2}{:02X}{}", pin.len(), hex(pin.as_bytes()))
}

fn public_key(cert: &[u8]) -> RsaPublicKey {
    let c = x509_cert::Certificate::from_der(cert).expect("certificate parses");
    let spki = c.tbs_certificate.subject_public_key_info.subject_public_key;
    RsaPublicKey::from_pkcs1_der(spki.raw_bytes()).expect("RSA public key")
}

fn read_ef(card: &mut VirtualCard, fid: &str) -> Vec<u8> {
    ok(card, &format!("00A4020C02{fid}"));
    let mut out = Vec::new();
    loop {
        let r = card.transmit(&h(&format!("00B0{:04X}00", out.len())));
        match &r[r.len() - 2..] {
            [0x90, 0x00] => out.extend_from_slice(&r[..r.len() - 2]),
            [0x6B, 0x00] => return out,
            sw => panic!("read {fid} at {}: {}", out.len(), hex(sw)),
        }
    }
}

#[test]
fn atr_and_power() {
    let mut c = VirtualCard::in_memory();
    assert_eq!(hex(&c.atr()), "3BE000FF8131FE4514");
    c.power_off();
    assert!(c.transmit(&h(SELECT_JPKI)).is_empty());
    c.power_on();
    assert_eq!(t(&mut c, SELECT_JPKI), "9000");
    assert_eq!(
        c.log(),
        ["# power off", "# power on", &format!("{SELECT_JPKI} 9000")]
    );
}

#[test]
fn select_applications() {
    let mut c = VirtualCard::in_memory();
    // ISD is current at power-on: no JPKI files.
    assert_eq!(t(&mut c, "00A4020C02000A"), "6A82");
    assert_eq!(t(&mut c, SELECT_ISD), "9000");
    assert_eq!(t(&mut c, SELECT_JPKI), "9000");
    assert_eq!(t(&mut c, "00A4040C0AD3921000310001010408"), "9000");
    assert_eq!(t(&mut c, "00A4040C0AD3921000310001010402"), "9000");
    // P2=00 is accepted too (no FCI).
    assert_eq!(t(&mut c, "00A404000AD392F000260100000001"), "9000");
    assert_eq!(t(&mut c, "00A404000AD392F00026010000000100"), "9000");
    // Prefix match.
    assert_eq!(t(&mut c, "00A4040C05D392F00026"), "9000");
    assert_eq!(t(&mut c, "00A4020C02000A"), "9000");
    assert_eq!(t(&mut c, "00A4040C05D392100031"), "9000");
    assert_eq!(c.app, App::KenmenHojo);
    // Unknown AID: 6A82, selection unchanged.
    ok(&mut c, SELECT_JPKI);
    ok(&mut c, "00A4020C02000A");
    assert_eq!(t(&mut c, "00A4040C0AD392F000260100000002"), "6A82");
    assert_eq!(t(&mut c, "00A4040C03D392F0"), "6A82");
    assert_eq!(ok(&mut c, "00B0000002"), [0x30, 0x82]);
    // No MF.
    assert_eq!(t(&mut c, "00A40000"), "6A86");
    assert_eq!(t(&mut c, "00A4000C023F00"), "6A82");
    assert_eq!(t(&mut c, "00A4020C023F00"), "6A82");
    assert_eq!(t(&mut c, "00A4080C023F00"), "6A86");
    // Unknown FID keeps the current EF.
    assert_eq!(t(&mut c, "00A4020C02001F"), "6A82");
    assert_eq!(c.ef, Some(0x000A));
    // Lengths and P2.
    assert_eq!(t(&mut c, "00A4020C03000A00"), "6700");
    assert_eq!(t(&mut c, "00A4020C01"), "6700");
    assert_eq!(t(&mut c, "00A4040C"), "6700");
    assert_eq!(t(&mut c, "00A404040AD392F000260100000001"), "6A86");
}

#[test]
fn read_certificates() {
    let mut c = jpki();
    let pki = PKI.clone();
    for (fid, der) in [
        ("000A", &pki.auth_cert),
        ("000B", &pki.auth_ca_cert),
        ("0002", &pki.sign_ca_cert),
    ] {
        let ef = read_ef(&mut c, fid);
        assert!(ef.len() > der.len(), "EF larger than the DER");
        assert_eq!(&ef[..der.len()], &der[..]);
        assert!(ef[der.len()..].iter().all(|b| *b == 0xFF), "0xFF filler");
        // Length from the DER header.
        assert_eq!(
            usize::from(u16::from_be_bytes([ef[2], ef[3]])) + 4,
            der.len()
        );
    }
    // Short reads: Le=00 is 256, Le caps at what is left, offset past the end is 6B00.
    ok(&mut c, "00A4020C02000A");
    assert_eq!(ok(&mut c, "00B0000000").len(), 256);
    assert_eq!(ok(&mut c, "00B0000010").len(), 16);
    let size = c.auth_cert_ef.len();
    assert_eq!(
        ok(&mut c, &format!("00B0{:04X}00", size - 3)),
        vec![0xFF; 3]
    );
    assert_eq!(t(&mut c, &format!("00B0{:04X}01", size)), "6B00");
    assert_eq!(t(&mut c, "00B07FFF01"), "6B00");
    // Extended Le.
    let all = ok(&mut c, "00B00000000000");
    assert_eq!(all, c.auth_cert_ef);
    assert_eq!(ok(&mut c, "00B00000000600").len(), 0x600);
    // SFI form: P1 = 0x80 | SFI, P2 = offset; it also makes the EF current.
    ok(&mut c, "00A4020C020006");
    assert_eq!(ok(&mut c, "00B08B0004"), pki.auth_ca_cert[..4]);
    assert_eq!(ok(&mut c, "00B0000004"), pki.auth_ca_cert[..4]);
    assert_eq!(ok(&mut c, "00B08A0404"), pki.auth_cert[4..8]);
    assert_eq!(t(&mut c, "00B0830001"), "6A82");
    assert_eq!(t(&mut c, "00B0A00001"), "6A86");
    // Token info and presence.
    let info = read_ef(&mut c, "0006");
    assert_eq!(info.len(), 160);
    assert_eq!(&info[..32], b"JPKIAPICCTOKEN2                 ");
    assert!(info[32..].iter().all(|b| *b == 0));
    assert_eq!(read_ef(&mut c, "0008"), [0x8F, 0x8F, 0x00]);
    // Internal EFs.
    for fid in ["0017", "0018", "001A", "001B"] {
        ok(&mut c, &format!("00A4020C02{fid}"));
        assert_eq!(t(&mut c, "00B0000001"), "6981", "{fid}");
    }
    assert_eq!(t(&mut c, "00B0970001"), "6981");
    // Malformed.
    ok(&mut c, "00A4020C02000A");
    assert_eq!(t(&mut c, "00B00000"), "6700");
    assert_eq!(t(&mut c, "00B0000001AA00"), "6700");
    // No current EF.
    ok(&mut c, SELECT_JPKI);
    assert_eq!(t(&mut c, "00B0000001"), "6985");
}

#[test]
fn sign_certificate_needs_password() {
    let mut c = jpki();
    ok(&mut c, "00A4020C020001");
    assert_eq!(t(&mut c, "00B0000004"), "6982");
    assert_eq!(t(&mut c, "00B0810004"), "6982");
    // The auth PIN does not open it.
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    assert_eq!(t(&mut c, "00B0000004"), "6982");
    ok(&mut c, &verify_apdu("9B", DEFAULT_SIGN_PIN));
    let ef = read_ef(&mut c, "0001");
    assert_eq!(&ef[..c.sign_cert().len()], c.sign_cert());
}

#[test]
fn verify_auth_pin_counter_and_block() {
    let mut c = jpki();
    ok(&mut c, "00A4020C020018");
    assert_eq!(t(&mut c, "0020008000"), "63C3"); // Lc=00 form counts as empty too
    assert_eq!(t(&mut c, "00200080"), "63C3");
    assert_eq!(t(&mut c, &verify_apdu("80", "0000")), "63C2");
    assert_eq!(t(&mut c, "00200080"), "63C2");
    assert_eq!(t(&mut c, &verify_apdu("80", DEFAULT_AUTH_PIN)), "9000");
    assert_eq!(c.tries_left(), (3, 5));
    // Empty VERIFY after success still says 63Cx and uses no try.
    assert_eq!(t(&mut c, "00200080"), "63C3");
    assert_eq!(t(&mut c, &verify_apdu("98", "1111")), "63C2");
    assert_eq!(t(&mut c, &verify_apdu("98", "123")), "63C1");
    assert_eq!(t(&mut c, &verify_apdu("98", "12345")), "63C0");
    assert_eq!(c.tries_left(), (0, 5));
    assert_eq!(t(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN)), "6984");
    assert_eq!(t(&mut c, "00200098"), "6984");
    assert_eq!(t(&mut c, &verify_apdu("80", DEFAULT_AUTH_PIN)), "6984");
    // The other PIN is independent.
    assert_eq!(t(&mut c, "0020009B"), "63C5");
    assert_eq!(t(&mut c, &verify_apdu("9B", DEFAULT_SIGN_PIN)), "9000");
    // A blocked key cannot sign.
    ok(&mut c, "00A4020C020017");
    assert_eq!(t(&mut c, &format!("802A0080020102{}", "00")), "6982");
}

#[test]
fn verify_sign_pin_five_tries_and_errors() {
    let mut c = jpki();
    ok(&mut c, "00A4020C02001B");
    for left in (0..5).rev() {
        assert_eq!(
            t(&mut c, &verify_apdu("80", "WRONG1")),
            format!("63C{left}")
        );
    }
    assert_eq!(t(&mut c, &verify_apdu("80", DEFAULT_SIGN_PIN)), "6984");
    assert_eq!(
        t(&mut c, &verify_apdu("80", &DEFAULT_SIGN_PIN.to_lowercase())),
        "6984"
    );
    let mut c = jpki();
    // Lower case is a different PIN: the card compares bytes as-is.
    assert_eq!(
        t(&mut c, &verify_apdu("9B", &DEFAULT_SIGN_PIN.to_lowercase())),
        "63C4"
    );
    // P2=80 needs a PIN EF; bad P1/P2; outside JPKI.
    ok(&mut c, "00A4020C02000A");
    assert_eq!(t(&mut c, &verify_apdu("80", "1234")), "6985");
    assert_eq!(t(&mut c, &verify_apdu("99", "1234")), "6A86");
    assert_eq!(t(&mut c, "00200198"), "6A86");
    ok(&mut c, SELECT_ISD);
    assert_eq!(t(&mut c, "00200098"), "6A82");
    assert_eq!(c.tries_left(), (3, 4));
}

fn sign_apdu(p1: u8, p2: &str, data: &[u8]) -> String {
    format!("802A{p1:02X}{p2}{:02X}{}00", data.len(), hex(data))
}

#[test]
fn security_state_rules() {
    let mut c = jpki();
    let digest_info = {
        let mut d = h("3031300d060960864801650304020105000420");
        d.extend_from_slice(&Sha256::digest(b"x"));
        d
    };
    ok(&mut c, "00A4020C020017");
    assert_eq!(t(&mut c, &sign_apdu(0, "80", &digest_info)), "6982");
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    assert_eq!(ok(&mut c, &sign_apdu(0, "80", &digest_info)).len(), 256);
    // One VERIFY, many signatures; the sign key is still closed.
    assert_eq!(ok(&mut c, &sign_apdu(0, "97", &digest_info)).len(), 256);
    assert_eq!(t(&mut c, &sign_apdu(0, "9A", &digest_info)), "6982");
    // Re-selecting JPKI keeps the state; so does a failed SELECT.
    ok(&mut c, SELECT_JPKI);
    assert_eq!(t(&mut c, "00A4040C07A0000001510001"), "6A82");
    assert_eq!(ok(&mut c, &sign_apdu(0, "97", &digest_info)).len(), 256);
    // Selecting another application clears it.
    ok(&mut c, SELECT_ISD);
    ok(&mut c, SELECT_JPKI);
    assert_eq!(t(&mut c, &sign_apdu(0, "97", &digest_info)), "6982");
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    ok(&mut c, "00A4040C0AD3921000310001010408");
    ok(&mut c, SELECT_JPKI);
    assert_eq!(t(&mut c, &sign_apdu(0, "97", &digest_info)), "6982");
    // Reset and power-off clear it.
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    c.reset();
    ok(&mut c, SELECT_JPKI);
    assert_eq!(t(&mut c, &sign_apdu(0, "97", &digest_info)), "6982");
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    c.power_off();
    c.power_on();
    ok(&mut c, SELECT_JPKI);
    assert_eq!(t(&mut c, &sign_apdu(0, "97", &digest_info)), "6982");
    // A wrong VERIFY clears it too.
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    assert_eq!(t(&mut c, &verify_apdu("98", "9999")), "63C2");
    assert_eq!(t(&mut c, &sign_apdu(0, "97", &digest_info)), "6982");
}

#[test]
fn six_signing_modes_verify() {
    let mut c = jpki();
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    ok(&mut c, &verify_apdu("9B", DEFAULT_SIGN_PIN));
    let msg = b"The quick brown fox jumps over the lazy dog";
    let hash = Sha256::digest(msg);
    let mut digest_info = h("3031300d060960864801650304020105000420");
    digest_info.extend_from_slice(&hash);
    for (fid, p2, cert) in [
        ("0017", "97", c.auth_cert().to_vec()),
        ("001A", "9A", c.sign_cert().to_vec()),
    ] {
        let pk = public_key(&cert);
        ok(&mut c, &format!("00A4020C02{fid}"));
        let sigs: Vec<Vec<u8>> = (0u8..6)
            .map(|p1| {
                let data: &[u8] = match p1 {
                    0 => &digest_info,
                    2 | 4 => &hash,
                    _ => msg,
                };
                // Both the current-EF form and the named-key form.
                let a = ok(&mut c, &sign_apdu(p1, "80", data));
                let b = ok(&mut c, &sign_apdu(p1, p2, data));
                assert_eq!(a.len(), 256);
                assert_eq!(b.len(), 256);
                if p1 < 4 {
                    assert_eq!(a, b, "PKCS#1 v1.5 is deterministic");
                }
                a
            })
            .collect();
        let raw = Pkcs1v15Sign::new_unprefixed;
        pk.verify(raw(), &digest_info, &sigs[0]).expect("P1=00");
        pk.verify(raw(), &hash, &sigs[1]).expect("P1=01 bare hash");
        pk.verify(raw(), &digest_info, &sigs[2]).expect("P1=02");
        pk.verify(raw(), &digest_info, &sigs[3]).expect("P1=03");
        assert_eq!(sigs[2], sigs[0]);
        assert_eq!(sigs[3], sigs[0]);
        let vk = PssVerifyingKey::<Sha256>::new(pk.clone());
        for s in &sigs[4..] {
            let sig = PssSignature::try_from(s.as_slice()).unwrap();
            vk.verify_prehash(&hash, &sig).expect("PSS");
            // Salt length 32: the generic PSS verifier with an explicit salt length agrees.
            pk.verify(rsa::Pss::new_with_salt::<Sha256>(32), &hash, s)
                .expect("PSS salt 32");
        }
    }
}

#[test]
fn signing_errors() {
    let mut c = jpki();
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    ok(&mut c, "00A4020C020017");
    assert_eq!(t(&mut c, &sign_apdu(6, "80", &[1; 32])), "6A86");
    assert_eq!(t(&mut c, &sign_apdu(0xFF, "80", &[1; 32])), "6A86");
    assert_eq!(t(&mut c, &sign_apdu(0, "81", &[1; 32])), "6A86");
    assert_eq!(t(&mut c, &sign_apdu(0, "80", &[1; 246])), "6700");
    assert_eq!(ok(&mut c, &sign_apdu(0, "80", &[1; 245])).len(), 256);
    assert_eq!(ok(&mut c, &sign_apdu(0, "80", &[1; 1])).len(), 256);
    assert_eq!(t(&mut c, &sign_apdu(2, "80", &[1; 31])), "6700");
    assert_eq!(t(&mut c, &sign_apdu(4, "80", &[1; 33])), "6700");
    assert_eq!(ok(&mut c, &sign_apdu(5, "80", &[1; 255])).len(), 256);
    assert_eq!(t(&mut c, "802A00800000"), "6700");
    assert_eq!(t(&mut c, "802A0080"), "6700");
    // CLA 00 is not this card's signing command.
    assert_eq!(t(&mut c, "002A0080020102"), "6E00");
    // P2=80 needs a key EF.
    ok(&mut c, "00A4020C020018");
    assert_eq!(t(&mut c, &sign_apdu(2, "80", &[1; 32])), "6985");
    ok(&mut c, SELECT_ISD);
    assert_eq!(t(&mut c, &sign_apdu(2, "97", &[1; 32])), "6A82");
}

#[test]
fn change_reference_data() {
    let mut c = jpki();
    ok(&mut c, "00A4020C020018");
    assert_eq!(t(&mut c, "002401800435363738"), "6982");
    ok(&mut c, &verify_apdu("80", DEFAULT_AUTH_PIN));
    assert_eq!(t(&mut c, "00240180033536"), "6700");
    assert_eq!(t(&mut c, "0024018004353637FF"), "6985");
    assert_eq!(t(&mut c, "002400800435363738"), "6A86");
    assert_eq!(t(&mut c, "002401800435363738"), "9000");
    assert_eq!(c.auth_pin(), "5678");
    assert_eq!(t(&mut c, &verify_apdu("80", DEFAULT_AUTH_PIN)), "63C2");
    assert_eq!(t(&mut c, &verify_apdu("80", "5678")), "9000");
    // Signature password by reference.
    ok(&mut c, &verify_apdu("9B", DEFAULT_SIGN_PIN));
    assert_eq!(t(&mut c, &format!("0024019B05{}", hex(b"ABCDE"))), "6700");
    assert_eq!(t(&mut c, &format!("0024019B06{}", hex(b"abcdef"))), "6985");
    assert_eq!(t(&mut c, &format!("0024019B06{}", hex(b"NEWPW1"))), "9000");
    assert_eq!(c.sign_pin(), "NEWPW1");
    assert_eq!(t(&mut c, &verify_apdu("9B", "NEWPW1")), "9000");
    // The log masks the PIN bytes.
    assert!(
        c.log().contains(&"0024019B06************ 9000".to_string()),
        "{:?}",
        c.log()
    );
    assert!(c.log().contains(&"0020009B06************ 9000".to_string()));
    assert!(c.log().iter().all(|l| !l.contains(&hex(b"NEWPW1"))));
}

#[test]
fn get_challenge_and_bad_commands() {
    let mut c = VirtualCard::in_memory();
    assert_eq!(ok(&mut c, "0084000008").len(), 8);
    assert_eq!(ok(&mut c, "0084000010").len(), 16);
    assert_eq!(ok(&mut c, "0084000000").len(), 8);
    assert_ne!(ok(&mut c, "0084000010"), ok(&mut c, "0084000010"));
    assert_eq!(t(&mut c, "00840000"), "6700");
    assert_eq!(t(&mut c, "0084010008"), "6A86");
    assert_eq!(t(&mut c, "00CA000000"), "6D00");
    assert_eq!(t(&mut c, "80CA000000"), "6D00");
    assert_eq!(t(&mut c, "A0A4040C07A0000001510000"), "6E00");
    assert_eq!(t(&mut c, "0CA4040C07A0000001510000"), "6E00");
    assert_eq!(t(&mut c, "80A4040C07A0000001510000"), "6E00");
    assert_eq!(t(&mut c, "00A4"), "6700");
    assert_eq!(t(&mut c, "00A4040C05A0000001"), "6700");
}

#[test]
fn log_format() {
    let mut c = VirtualCard::in_memory();
    ok(&mut c, SELECT_JPKI);
    ok(&mut c, "00A4020C020018");
    t(&mut c, &verify_apdu("80", DEFAULT_AUTH_PIN));
    t(&mut c, "00200080");
    c.reset();
    assert_eq!(
        c.log(),
        [
            format!("{SELECT_JPKI} 9000"),
            "00A4020C020018 9000".into(),
            "0020008004******** 9000".into(),
            "00200080 63C3".into(),
            "# reset".into(),
        ]
    );
    c.clear_log();
    assert!(c.log().is_empty());
}

#[test]
fn two_distinct_cards() {
    let a = VirtualCard::in_memory();
    let b = VirtualCard::in_memory_other();
    assert_ne!(a.auth_cert(), b.auth_cert());
    assert_ne!(a.sign_cert(), b.sign_cert());
    assert_ne!(public_key(a.auth_cert()), public_key(b.auth_cert()));
    assert_eq!(VirtualCard::in_memory().auth_cert(), a.auth_cert());
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jpki-vcard-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn persistence_across_open() {
    let dir = temp_dir("persist");
    let mut c = VirtualCard::open(&dir).unwrap();
    let auth_cert = c.auth_cert().to_vec();
    ok(&mut c, SELECT_JPKI);
    assert_eq!(t(&mut c, &verify_apdu("98", "0000")), "63C2");
    assert_eq!(t(&mut c, &verify_apdu("9B", "WRONG1")), "63C4");
    ok(&mut c, &verify_apdu("9B", DEFAULT_SIGN_PIN));
    ok(&mut c, &format!("0024019B08{}", hex(b"CHANGED1")));
    drop(c);
    let state = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
    assert!(
        state.contains("auth_tries=2\n") && state.contains("sign_tries=5\n"),
        "{state}"
    );

    let mut c = VirtualCard::open(&dir).unwrap();
    assert_eq!(c.tries_left(), (2, 5));
    assert_eq!(c.sign_pin(), "CHANGED1");
    assert_eq!(c.auth_cert(), &auth_cert[..]);
    assert_eq!(std::fs::read(dir.join("auth.crt")).unwrap(), auth_cert);
    ok(&mut c, SELECT_JPKI);
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    assert_eq!(VirtualCard::open(&dir).unwrap().tries_left(), (3, 5));
    // The stored key is the certificate's key: a signature verifies.
    ok(&mut c, "00A4020C020017");
    let hash = Sha256::digest(b"persist");
    let sig = ok(&mut c, &sign_apdu(2, "80", &hash));
    public_key(&auth_cert)
        .verify(
            Pkcs1v15Sign::new_unprefixed(),
            &sha256_digest_info(&hash),
            &sig,
        )
        .unwrap();
    // PKCS#8 keys load too.
    let pkcs8 = rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&c.pki.auth_key).unwrap();
    std::fs::write(dir.join("auth.key"), pkcs8.as_bytes()).unwrap();
    let mut c = VirtualCard::open(&dir).unwrap();
    ok(&mut c, SELECT_JPKI);
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    let sig = ok(&mut c, &sign_apdu(2, "97", &hash));
    public_key(&auth_cert)
        .verify(
            Pkcs1v15Sign::new_unprefixed(),
            &sha256_digest_info(&hash),
            &sig,
        )
        .unwrap();
    // An incomplete directory is refused.
    std::fs::remove_file(dir.join("sign.key")).unwrap();
    assert!(VirtualCard::open(&dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?} failed: {text}");
    text
}

#[test]
#[cfg_attr(
    windows,
    ignore = "runs the openssl command, which the Windows test run has not; the same \
              certificates are checked on Linux"
)]
fn certificates_pass_openssl() {
    let dir = temp_dir("openssl");
    let c = VirtualCard::open(&dir).unwrap();
    let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
    for name in ["auth", "auth-ca", "sign", "sign-ca"] {
        openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            &d(&format!("{name}.crt")),
            "-out",
            &d(&format!("{name}.pem")),
        ]);
    }
    let auth = openssl(&["x509", "-in", &d("auth.pem"), "-noout", "-text"]);
    assert!(auth.contains("Issuer: C = JP, O = JPKI, OU = JPKI for user authentication, OU = Japan Agency for Local Authority Information Systems"), "{auth}");
    assert!(auth.contains("TLS Web Client Authentication"), "{auth}");
    assert!(
        auth.contains("OCSP - URI:http://ocspauthnorm.jpki.go.jp"),
        "{auth}"
    );
    assert!(auth.contains("Digital Signature"), "{auth}");
    assert!(auth.contains("sha256WithRSAEncryption"), "{auth}");
    assert!(auth.contains("Public-Key: (2048 bit)"), "{auth}");
    assert!(auth.contains("Exponent: 65537"), "{auth}");
    let sign = openssl(&["x509", "-in", &d("sign.pem"), "-noout", "-text"]);
    assert!(
        sign.contains("Digital Signature, Non Repudiation"),
        "{sign}"
    );
    assert!(sign.contains("1.2.392.200149.8.5.5.1"), "{sign}");
    assert!(
        sign.contains("Subject: C = JP, L = Tokyo-to, L = Shiken-ku, CN = "),
        "{sign}"
    );
    let ca = openssl(&["x509", "-in", &d("sign-ca.pem"), "-noout", "-text"]);
    assert!(
        ca.contains("CA:TRUE") && ca.contains("Certificate Sign, CRL Sign"),
        "{ca}"
    );
    assert!(
        ca.contains("X509v3 Subject Key Identifier")
            && ca.contains("X509v3 Authority Key Identifier")
    );
    for leaf in ["auth", "sign"] {
        let out = openssl(&[
            "verify",
            "-CAfile",
            &d(&format!("{leaf}-ca.pem")),
            &d(&format!("{leaf}.pem")),
        ]);
        assert!(out.contains(": OK"), "{out}");
    }
    // A leaf does not verify against the other CA.
    let bad = std::process::Command::new("openssl")
        .args(["verify", "-CAfile", &d("sign-ca.pem"), &d("auth.pem")])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    // x509-cert parses them, and the UTF-8 name is inside the signature certificate.
    for der in [
        c.auth_cert(),
        c.auth_ca_cert(),
        c.sign_cert(),
        c.sign_ca_cert(),
    ] {
        x509_cert::Certificate::from_der(der).expect("x509-cert parses");
    }
    let name = "試験\u{3000}太郎".as_bytes();
    assert!(c.sign_cert().windows(name.len()).any(|w| w == name));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The modes for the real card's unconfirmed behaviours (and the two test-only ones).
#[test]
fn unconfirmed_behaviour_modes() {
    let digest_info = {
        let mut d = h("3031300d060960864801650304020105000420");
        d.extend_from_slice(&Sha256::digest(b"x"));
        d
    };
    // Short forms answered with a status word, unprocessed; long forms work.
    let mut c = jpki();
    c.set_fault(Fault::ShortForm {
        ins: None,
        sw: 0x6A87,
    });
    assert_eq!(t(&mut c, "00B08A0000"), "6A87");
    assert_eq!(t(&mut c, "00200098"), "6A87");
    assert_eq!(t(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN)), "6A87");
    assert_eq!(
        c.tries_left(),
        (3, 5),
        "no try used by a refused short form"
    );
    assert_eq!(t(&mut c, &sign_apdu(0, "97", &digest_info)), "6A87");
    ok(&mut c, "00A4020C020018");
    assert_eq!(t(&mut c, "00200080"), "63C3");
    ok(&mut c, &verify_apdu("80", DEFAULT_AUTH_PIN));
    ok(&mut c, "00A4020C020017");
    assert_eq!(ok(&mut c, &sign_apdu(0, "80", &digest_info)).len(), 256);
    // Only one kind.
    c.set_fault(Fault::ShortForm {
        ins: Some(0x2A),
        sw: 0x6986,
    });
    assert_eq!(t(&mut c, &sign_apdu(0, "97", &digest_info)), "6986");
    assert!(t(&mut c, "00B08A0000").ends_with("9000"));

    // Warm reset keeps the security state; power-off clears it.
    let mut c = jpki();
    c.set_fault(Fault::WarmResetKeepsState);
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    c.reset();
    ok(&mut c, SELECT_JPKI);
    assert_eq!(ok(&mut c, &sign_apdu(0, "97", &digest_info)).len(), 256);
    c.power_off();
    c.power_on();
    ok(&mut c, SELECT_JPKI);
    assert_eq!(t(&mut c, &sign_apdu(0, "97", &digest_info)), "6982");

    // The first command after power-up answers 6F00, unprocessed; not after a reset.
    let mut c = jpki();
    c.set_fault(Fault::PowerUp6F00);
    c.power_off();
    c.power_on();
    assert_eq!(t(&mut c, SELECT_JPKI), "6F00");
    ok(&mut c, SELECT_JPKI);
    c.reset();
    ok(&mut c, SELECT_JPKI);

    // Empty VERIFY: 9000 once verified, 63Cx otherwise.
    let mut c = jpki();
    c.set_fault(Fault::EmptyVerify9000);
    assert_eq!(t(&mut c, "00200098"), "63C3");
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    assert_eq!(t(&mut c, "00200098"), "9000");
    assert_eq!(t(&mut c, "0020009B"), "63C5");
    ok(&mut c, SELECT_ISD);
    ok(&mut c, SELECT_JPKI);
    assert_eq!(t(&mut c, "00200098"), "63C3");

    // No other application; JPKI still selectable.
    let mut c = jpki();
    c.set_fault(Fault::NoOtherApps);
    assert_eq!(t(&mut c, SELECT_ISD), "6A82");
    assert_eq!(t(&mut c, "00A4040C0AD3921000310001010408"), "6A82");
    ok(&mut c, SELECT_JPKI);

    // Test-only: nothing but leaving the application clears the state.
    let mut c = jpki();
    c.set_fault(Fault::PowerOffKeepsState);
    ok(&mut c, &verify_apdu("98", DEFAULT_AUTH_PIN));
    c.power_off();
    c.power_on();
    ok(&mut c, SELECT_JPKI);
    assert_eq!(ok(&mut c, &sign_apdu(0, "97", &digest_info)).len(), 256);
}
