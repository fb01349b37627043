//! The card's side of a test: its PINs, its two tokens, and what it was asked to do with a PIN or
//! a key, read from the virtual card's APDU log (shared by the tests of programs that log in and
//! sign: Java, pdfsig).

use crate::common::VCard;

pub const AUTH_PIN: &str = "1234";
pub const SIGN_PASSWORD: &str = "JPKITEST1";

/// The two tokens of the card.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Token {
    Auth,
    Sign,
}

impl Token {
    pub fn label(self) -> &'static str {
        match self {
            Token::Auth => "JPKI User Authentication",
            Token::Sign => "JPKI Digital Signature",
        }
    }

    pub fn pin(self) -> &'static str {
        match self {
            Token::Auth => AUTH_PIN,
            Token::Sign => SIGN_PASSWORD,
        }
    }

    /// The card's certificate of the token's key (`auth`, `sign` in the card's directory).
    pub fn cert(self) -> &'static str {
        match self {
            Token::Auth => "auth",
            Token::Sign => "sign",
        }
    }
}

/// What the card was asked to do with a PIN or a key, from its APDU log.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CardOp {
    /// A VERIFY carrying the token's PIN; whether the card accepted it.
    Verify(Token, bool),
    /// A COMPUTE DIGITAL SIGNATURE with the token's key; whether the card signed.
    Sign(Token, bool),
}

/// One login and one signature with the signature key, as the card sees them: the password at
/// the login, and again right before the signature (the module never leaves the card unlocked
/// between calls).
pub const LOGIN_AND_SIGN: [CardOp; 3] = [
    CardOp::Verify(Token::Sign, true),
    CardOp::Verify(Token::Sign, true),
    CardOp::Sign(Token::Sign, true),
];

/// The VERIFYs carrying a PIN and the signatures in the card's log, in order. The EF is named by
/// P2 = 80|SFI or, with P2 = 80, by the `SELECT EF` before (PIN EFs 0018 and 001B, key EFs 0017
/// and 001A). A VERIFY without data (reading the tries left) is not one.
pub fn card_ops(card: &VCard) -> Vec<CardOp> {
    let mut ops = Vec::new();
    let mut current_ef = String::new();
    for line in card.log() {
        if line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let apdu = parts.next().unwrap_or("").to_uppercase();
        let ok = parts.last().is_some_and(|r| r.ends_with("9000"));
        let p2 = apdu.get(6..8).unwrap_or("");
        let ef = if p2 == "80" {
            current_ef.clone()
        } else {
            u8::from_str_radix(p2, 16)
                .map(|p| format!("00{:02X}", p & 0x1F))
                .unwrap_or_default()
        };
        if let Some(selected) = apdu.strip_prefix("00A4020C02") {
            current_ef = selected.chars().take(4).collect();
        } else if apdu.starts_with("00A404") {
            current_ef.clear();
        } else if apdu.starts_with("0020") && apdu.len() > 10 {
            match ef.as_str() {
                "0018" => ops.push(CardOp::Verify(Token::Auth, ok)),
                "001B" => ops.push(CardOp::Verify(Token::Sign, ok)),
                _ => panic!("a VERIFY of an unknown PIN EF {ef:?}: {line}"),
            }
        } else if apdu.starts_with("802A") {
            match ef.as_str() {
                "0017" => ops.push(CardOp::Sign(Token::Auth, ok)),
                "001A" => ops.push(CardOp::Sign(Token::Sign, ok)),
                _ => panic!("a signature with an unknown key EF {ef:?}: {line}"),
            }
        }
    }
    ops
}

/// The subject's CN of a card certificate.
pub fn common_name(card: &VCard, cert: &str) -> String {
    super::subject(card, cert)
        .split(", ")
        .find_map(|rdn| rdn.strip_prefix("CN = "))
        .unwrap_or_else(|| panic!("no CN in {}", super::subject(card, cert)))
        .to_string()
}
