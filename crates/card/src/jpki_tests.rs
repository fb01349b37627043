use super::*;

#[test]
fn pin_formats() {
    assert_eq!(normalize_pin(KeyPair::Auth, b"1234"), Ok(b"1234".to_vec()));
    assert_eq!(normalize_pin(KeyPair::Auth, b"123"), Err(PinFormat::Length));
    assert_eq!(
        normalize_pin(KeyPair::Auth, b"12345"),
        Err(PinFormat::Length)
    );
    assert_eq!(
        normalize_pin(KeyPair::Auth, b"12a4"),
        Err(PinFormat::Characters)
    );
    assert_eq!(normalize_pin(KeyPair::Auth, b""), Err(PinFormat::Length));
    assert_eq!(
        normalize_pin(KeyPair::Sign, b"abc123"),
        Ok(b"ABC123".to_vec())
    );
    assert_eq!(
        normalize_pin(KeyPair::Sign, b"ABC12"),
        Err(PinFormat::Length)
    );
    assert_eq!(
        normalize_pin(KeyPair::Sign, &[b'A'; 17]),
        Err(PinFormat::Length)
    );
    assert_eq!(
        normalize_pin(KeyPair::Sign, &[b'A'; 16]),
        Ok(vec![b'A'; 16])
    );
    assert_eq!(
        normalize_pin(KeyPair::Sign, b"ABC 123"),
        Err(PinFormat::Characters)
    );
    assert_eq!(
        normalize_pin(KeyPair::Sign, "ABCÄ12".as_bytes()),
        Err(PinFormat::Characters)
    );
}

#[test]
fn new_signature_passwords_mix_letters_and_digits() {
    assert_eq!(
        normalize_new_pin(KeyPair::Sign, b"abc123"),
        Ok(b"ABC123".to_vec())
    );
    assert_eq!(
        normalize_new_pin(KeyPair::Sign, b"ABCDEFG"),
        Err(PinFormat::NotMixed)
    );
    assert_eq!(
        normalize_new_pin(KeyPair::Sign, b"1234567"),
        Err(PinFormat::NotMixed)
    );
    assert_eq!(
        normalize_new_pin(KeyPair::Sign, b"12345"),
        Err(PinFormat::Length)
    );
    assert_eq!(
        normalize_new_pin(KeyPair::Sign, b"ABC-123"),
        Err(PinFormat::Characters)
    );
    // The authentication PIN is digits only: no mixing rule.
    assert_eq!(
        normalize_new_pin(KeyPair::Auth, b"4321"),
        Ok(b"4321".to_vec())
    );
}

#[test]
fn tries_from_status_words() {
    assert_eq!(PinTries::from_sw(0x63C3), Some(PinTries::Left(3)));
    assert_eq!(PinTries::from_sw(0x63C1), Some(PinTries::Left(1)));
    assert_eq!(PinTries::from_sw(0x63C0), Some(PinTries::Blocked));
    assert_eq!(PinTries::from_sw(0x6984), Some(PinTries::Blocked));
    assert_eq!(PinTries::from_sw(0x6983), Some(PinTries::Blocked));
    assert_eq!(PinTries::from_sw(0x9000), None);
    assert_eq!(PinTries::from_sw(0x6A86), None);
}

#[test]
fn short_forms_fall_back_on_any_answer_but_success_and_security_status() {
    for sw in [0x9000, 0x6982, 0x6983, 0x6984, 0x63C0, 0x63C3] {
        assert!(short_form_taken(sw), "{sw:04X}");
    }
    for sw in [
        0x6A86, 0x6A82, 0x6981, 0x6986, 0x6700, 0x6A87, 0x6A88, 0x6F00, 0x6D00, 0x6985,
    ] {
        assert!(!short_form_taken(sw), "{sw:04X}");
    }
}

#[test]
fn der_lengths() {
    assert_eq!(der_total_len(&[0x30, 0x82, 0x06, 0x21]), Ok(0x0621 + 4));
    assert_eq!(der_total_len(&[0x30, 0x81, 0x80]), Ok(0x83));
    assert_eq!(der_total_len(&[0x30, 0x05]), Ok(7));
    assert!(der_total_len(&[0x31, 0x82, 0, 1]).is_err());
    assert!(der_total_len(&[0x30, 0x82, 0xFF, 0xFF]).is_err());
    assert!(der_total_len(&[0x30, 0x83, 0, 0, 1]).is_err());
    assert!(der_total_len(&[0x30]).is_err());
    assert!(der_total_len(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
}
