//! The PKCS#11 view of the card's two tokens: their objects and attributes (`objects`), and the
//! mechanisms they offer with how each turns the caller's data into what the card signs
//! (`mechanism`). The card itself, its login state and its transactions are `jpki_card::BoundCard`.

pub(crate) mod mechanism;
pub(crate) mod objects;
