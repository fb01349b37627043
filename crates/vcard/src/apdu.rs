//! Command APDUs as the virtual card reads them (short and extended forms), its status words,
//! and the lines of its APDU log.

/// Status words.
pub(super) mod sw {
    pub const OK: u16 = 0x9000;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const INTERNAL_EF: u16 = 0x6981;
    pub const SECURITY: u16 = 0x6982;
    pub const BLOCKED: u16 = 0x6984;
    pub const CONDITIONS: u16 = 0x6985;
    pub const NOT_FOUND: u16 = 0x6A82;
    pub const BAD_P1P2: u16 = 0x6A86;
    pub const OFFSET: u16 = 0x6B00;
    pub const BAD_INS: u16 = 0x6D00;
    pub const BAD_CLA: u16 = 0x6E00;
}

/// A parsed command APDU.
pub(super) struct Apdu<'a> {
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: &'a [u8],
    /// Ne: `00` → 256, extended `00 00` → 65536.
    pub le: Option<usize>,
}

pub(super) fn parse(b: &[u8]) -> Result<Apdu<'_>, u16> {
    if b.len() < 4 {
        return Err(sw::WRONG_LENGTH);
    }
    let (ins, p1, p2) = (b[1], b[2], b[3]);
    let body = &b[4..];
    let short_ne = |x: u8| if x == 0 { 256 } else { usize::from(x) };
    let ext_ne = |h: u8, l: u8| match u16::from_be_bytes([h, l]) {
        0 => 65536,
        n => usize::from(n),
    };
    let (data, le) = match body.len() {
        0 => (&body[..0], None),
        1 => (&body[..0], Some(short_ne(body[0]))),
        _ if body[0] != 0 => {
            let lc = usize::from(body[0]);
            match body.len() - 1 {
                n if n == lc => (&body[1..], None),
                n if n == lc + 1 => (&body[1..=lc], Some(short_ne(body[lc + 1]))),
                _ => return Err(sw::WRONG_LENGTH),
            }
        }
        3 => (&body[..0], Some(ext_ne(body[1], body[2]))),
        n if n > 3 => {
            let lc = usize::from(u16::from_be_bytes([body[1], body[2]]));
            match n - 3 {
                m if m == lc && lc > 0 => (&body[3..], None),
                m if m == lc + 2 && lc > 0 => {
                    (&body[3..3 + lc], Some(ext_ne(body[3 + lc], body[4 + lc])))
                }
                _ => return Err(sw::WRONG_LENGTH),
            }
        }
        _ => return Err(sw::WRONG_LENGTH),
    };
    Ok(Apdu {
        ins,
        p1,
        p2,
        data,
        le,
    })
}

pub(super) fn status(sw: u16) -> Vec<u8> {
    sw.to_be_bytes().to_vec()
}

pub(super) fn with_status(mut data: Vec<u8>, sw: u16) -> Vec<u8> {
    data.extend_from_slice(&sw.to_be_bytes());
    data
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Whether a command APDU (short form) ends with an Le.
pub(super) fn has_le(apdu: &[u8]) -> bool {
    match apdu.len() {
        0..=4 => false,
        5 => true,
        n => n == 6 + usize::from(apdu[4]),
    }
}

/// The log line of one exchange; PIN bytes of VERIFY and CHANGE REFERENCE DATA are masked.
pub(super) fn log_line(cmd: &[u8], resp: &[u8]) -> String {
    let masked = matches!(cmd.get(1), Some(0x20 | 0x24)) && cmd.len() > 5;
    let cmd_hex = if masked {
        format!("{}{}", hex(&cmd[..5]), "*".repeat(2 * (cmd.len() - 5)))
    } else {
        hex(cmd)
    };
    format!("{cmd_hex} {}", hex(resp))
}
