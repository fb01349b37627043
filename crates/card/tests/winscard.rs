//! The PC/SC transport (`src/pcsc.rs`, through the `pcsc` crate) on Windows' WinSCard API, under
//! Wine: the test-only `winscard.dll` (`scripts/windows/winscard/`) is a reader whose card is
//! the project's virtual card (`jpki virtual-card --port PORT`, a Linux process that
//! `scripts/cross.sh` starts before and stops after each run, with the faults a scenario needs).
//!
//! Environment (set by `scripts/cross.sh`; missing variables fail the test):
//! - `JPKI_TEST_WINSCARD_PORT`: where the DLL listens for the card;
//! - `JPKI_TEST_WINSCARD_CARD`: the scenario, i.e. how the card was started: `healthy`,
//!   `no-other-apps` (`--fault no-other-apps`) or `remove-after-verify`;
//! - `JPKI_TEST_WINSCARD_LOG`: the card's APDU log (a Windows path).
#![cfg(windows)]

use jpki_card::jpki::{KeyPair, SignMode};
use jpki_card::pcsc::PcscSystem;
use jpki_card::{BoundCard, CardSystem, Error};
use pcsc::{Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};
use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::time::{Duration, Instant};

const READER: &str = "Virtual PCD 00 00";
const AUTH_PIN: &[u8] = b"1234";
/// DER of SHA-256's `DigestInfo` up to the hash.
const SHA256_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this test runs under Wine with the test-only winscard.dll and a \
             virtual card that scripts/cross.sh starts; run scripts/cross.sh"
        )
    })
}

fn log_lines() -> Vec<String> {
    std::fs::read_to_string(var("JPKI_TEST_WINSCARD_LOG"))
        .expect("read the virtual card's log")
        .lines()
        .map(str::to_string)
        .collect()
}

fn reader() -> CString {
    CString::new(READER).unwrap()
}

/// Waits (in `SCardGetStatusChange`) until the reader has a card and its event counter has
/// reached `min_events`; the counter.
fn wait_present(ctx: &Context, min_events: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut states = [ReaderState::new(reader(), State::UNAWARE)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ctx.get_status_change(left, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => panic!("no card in {READER} after 15 s"),
            Err(e) => panic!("SCardGetStatusChange: {e}"),
        }
        let s = &states[0];
        if s.event_state().contains(State::PRESENT) && s.event_count() >= min_events {
            return s.event_count();
        }
        states[0].sync_current_state();
    }
}

/// Signs `msg` with the authentication key through `card` and checks the signature with the
/// certificate read from the card.
fn sign_and_check(card: &mut BoundCard, msg: &[u8]) -> Result<(), Error> {
    let cert = card.cert(KeyPair::Auth, None)?;
    let mut info = SHA256_PREFIX.to_vec();
    info.extend_from_slice(&Sha256::digest(msg));
    let sig = card.sign(
        KeyPair::Auth,
        AUTH_PIN,
        SignMode::Pkcs1Raw,
        &info,
        cert.sig_len(),
    )?;
    cert.public_key()
        .verify(Pkcs1v15Sign::new_unprefixed(), &info, &sig)
        .expect("the card's signature verifies with its certificate");
    let mut bad = sig.clone();
    bad[10] ^= 1;
    assert!(
        cert.public_key()
            .verify(Pkcs1v15Sign::new_unprefixed(), &info, &bad)
            .is_err(),
        "a damaged signature must not verify"
    );
    Ok(())
}

fn position(lines: &[String], from: usize, f: impl Fn(&str) -> bool) -> Option<usize> {
    lines[from..].iter().position(|l| f(l)).map(|i| i + from)
}

#[test]
fn pcsc_transport_over_winscard() {
    let scenario = var("JPKI_TEST_WINSCARD_CARD");
    var("JPKI_TEST_WINSCARD_PORT");
    match scenario.as_str() {
        "healthy" => healthy(),
        "no-other-apps" => unpowered_at_end_of_transaction(),
        "remove-after-verify" => removal_and_recovery(),
        other => panic!("unknown JPKI_TEST_WINSCARD_CARD {other:?}"),
    }
}

/// Readers, reader states, the module's channel (SELECT, certificate, VERIFY + sign), sharing,
/// transactions between handles, resets and power-offs by another handle.
fn healthy() {
    let ctx = Context::establish(Scope::User).expect("SCardEstablishContext");
    let events = wait_present(&ctx, 1);

    // Reader lists: the multi-string, its length, a too-small buffer.
    assert_eq!(ctx.list_readers_len().unwrap(), READER.len() + 2);
    let mut small = [0u8; 5];
    assert!(matches!(
        ctx.list_readers(&mut small),
        Err(pcsc::Error::InsufficientBuffer)
    ));
    let sys = PcscSystem::new();
    assert_eq!(sys.list_readers(), vec![READER.to_string()]);
    let st = sys.reader_status(READER);
    assert!(st.present);
    assert_eq!(st.events, events);
    assert!(!sys.reader_status("No Such Reader").present);

    // SCardGetStatusChange: nothing changes → a timeout after the time asked; an unknown reader;
    // SCardCancel ends a wait.
    let mut states = [
        ReaderState::new(reader(), State::UNAWARE),
        ReaderState::new(CString::new("No Such Reader").unwrap(), State::UNAWARE),
    ];
    ctx.get_status_change(Duration::ZERO, &mut states).unwrap();
    assert!(states[0]
        .event_state()
        .contains(State::CHANGED | State::PRESENT));
    assert!(states[1].event_state().contains(State::UNKNOWN));
    let atr = states[0].atr().to_vec();
    assert!(!atr.is_empty());
    let mut states = [ReaderState::new(reader(), State::UNAWARE)];
    ctx.get_status_change(Duration::ZERO, &mut states).unwrap();
    states[0].sync_current_state();
    let t = Instant::now();
    assert!(matches!(
        ctx.get_status_change(Duration::from_millis(300), &mut states),
        Err(pcsc::Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(250));
    let waiter = {
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let mut states = [ReaderState::new(reader(), State::UNAWARE)];
            ctx.get_status_change(Duration::ZERO, &mut states)?;
            states[0].sync_current_state();
            ctx.get_status_change(None, &mut states)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!waiter.is_finished());
    ctx.cancel().unwrap();
    assert!(matches!(
        waiter.join().unwrap(),
        Err(pcsc::Error::Cancelled)
    ));

    // The module's channel: SELECT JPKI, the certificate, VERIFY + sign, checked on the host.
    let before = log_lines().len();
    let mut card = BoundCard::bind(sys.connect(READER).expect("connect")).expect("bind");
    sign_and_check(&mut card, b"signed through WinSCard").expect("sign");
    let lines = log_lines();
    let verify = position(&lines, before, |l| {
        l.starts_with("00200080") && l.ends_with(" 9000")
    })
    .or_else(|| {
        position(&lines, before, |l| {
            l.starts_with("0020") && l.ends_with(" 9000")
        })
    })
    .expect("a VERIFY answered 9000 in the card's log");
    let sign = position(&lines, verify, |l| l.starts_with("802A")).expect("the signature");
    assert!(
        lines[sign + 1].starts_with("00A4040C07A0000001510000 9000"),
        "after signing, the module leaves the JPKI application (SELECT ISD): {:?}",
        &lines[sign..]
    );
    assert!(
        !lines[before..].iter().any(|l| l == "# power off"),
        "a healthy card is never unpowered: {:?}",
        &lines[before..]
    );

    // Sharing: a second shared connection, no exclusive one beside it.
    let ctx2 = Context::establish(Scope::User).unwrap();
    assert!(matches!(
        ctx2.connect(&reader(), ShareMode::Exclusive, Protocols::ANY),
        Err(pcsc::Error::SharingViolation)
    ));
    let mut other = ctx2
        .connect(&reader(), ShareMode::Shared, Protocols::ANY)
        .unwrap();
    let status = other.status2_owned().unwrap();
    assert_eq!(status.reader_names()[0].to_str().unwrap(), READER);
    assert_eq!(status.atr(), atr.as_slice());
    assert_eq!(status.protocol2(), Some(pcsc::Protocol::T1));

    // A transaction of another handle holds the module back until it ends.
    let tx = other.transaction().unwrap();
    let worker = std::thread::spawn(move || {
        let r = card.random(8);
        (card, r)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!worker.is_finished(), "waits for the other transaction");
    tx.end(Disposition::LeaveCard).map_err(|(_, e)| e).unwrap();
    let (mut card, r) = worker.join().unwrap();
    assert_eq!(r.expect("random after the other transaction").len(), 8);

    // A reset by another handle: the module reconnects and goes on; the other handle's own
    // next use is fine, a third handle is told.
    let third = ctx2
        .connect(&reader(), ShareMode::Shared, Protocols::ANY)
        .unwrap();
    let before = log_lines().len();
    other
        .reconnect(ShareMode::Shared, Protocols::ANY, Disposition::ResetCard)
        .unwrap();
    assert!(matches!(third.status2_owned(), Err(pcsc::Error::ResetCard)));
    assert_eq!(card.random(8).expect("random after a reset").len(), 8);
    let lines = log_lines();
    assert_eq!(lines[before], "# reset", "{:?}", &lines[before..]);

    // SCARD_UNPOWER_CARD from another handle: powered off now, on again at the next use.
    let before = log_lines().len();
    other
        .disconnect(Disposition::UnpowerCard)
        .map_err(|(_, e)| e)
        .unwrap();
    let lines = log_lines();
    assert_eq!(lines[before..], ["# power off"]);
    sign_and_check(&mut card, b"after a power-off").expect("sign after a power-off");
    let lines = log_lines();
    assert_eq!(lines[before + 1], "# power on", "{:?}", &lines[before..]);
    assert!(lines[before + 2].starts_with("00A4040C0AD392F000260100000001 "));
    drop(third);
    card.disconnect();
}

/// A card on which no other application can be selected: the module ends the transaction that
/// presented the PIN with `SCardEndTransaction(SCARD_UNPOWER_CARD)`, the card is powered off
/// before anything else reaches it, and the module then confirms it locked.
fn unpowered_at_end_of_transaction() {
    let ctx = Context::establish(Scope::User).expect("SCardEstablishContext");
    wait_present(&ctx, 1);
    let sys = PcscSystem::new();
    let mut card = BoundCard::bind(sys.connect(READER).expect("connect")).expect("bind");
    card.cert(KeyPair::Auth, None).expect("certificate");
    let before = log_lines().len();
    sign_and_check(&mut card, b"unpowered after signing").expect("sign");
    let lines = log_lines();
    let sign = position(&lines, before, |l| {
        l.starts_with("802A") && l.ends_with("9000")
    })
    .expect("the signature in the card's log");
    let off = position(&lines, sign, |l| l == "# power off").unwrap_or_else(|| {
        panic!(
            "the card was not powered off after signing: {:?}",
            &lines[before..]
        )
    });
    // Between the signature and the power-off: only the refused SELECTs of other applications.
    for l in &lines[sign + 1..off] {
        assert!(
            l.starts_with("00A4040C") && l.ends_with(" 6A82"),
            "{l:?} between the signature and the power-off: {:?}",
            &lines[before..]
        );
    }
    assert!(
        off > sign + 1,
        "the module tried to leave the application first"
    );
    assert_eq!(
        lines[off + 1],
        "# power on",
        "powered again at the next use"
    );
    // The module's check that the card is locked: SELECT JPKI, then an empty VERIFY answered
    // with a try counter.
    assert!(lines[off + 2].starts_with("00A4040C0AD392F000260100000001 "));
    assert!(
        lines[off + 3..]
            .iter()
            .any(|l| l.starts_with("002000") && l.contains(" 63C")),
        "{:?}",
        &lines[off..]
    );
    // A transaction without a PIN is not unpowered.
    let before = log_lines().len();
    assert_eq!(card.random(8).unwrap().len(), 8);
    assert!(!log_lines()[before..].iter().any(|l| l.starts_with('#')));
    card.disconnect();
}

/// The card leaves the reader while the module waits for the answer to VERIFY: a clean
/// "removed" error, the reader empty, then the card back (the virtual card reconnects) and
/// usable again through a new connection.
fn removal_and_recovery() {
    let ctx = Context::establish(Scope::User).expect("SCardEstablishContext");
    let events = wait_present(&ctx, 1);
    let sys = PcscSystem::new();
    let mut card = BoundCard::bind(sys.connect(READER).expect("connect")).expect("bind");
    let t = Instant::now();
    let r = sign_and_check(&mut card, b"pulled out");
    assert!(
        matches!(r, Err(Error::CardRemoved)),
        "signing while the card is pulled out: {r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    // The old connection stays dead, even once the card is back.
    let back = wait_present(&ctx, events + 2);
    assert!(back >= events + 2, "a removal and an insertion counted");
    let st = sys.reader_status(READER);
    assert!(st.present);
    assert_eq!(st.events, back);
    assert!(matches!(card.random(8), Err(Error::CardRemoved)));
    card.disconnect();
    let mut card = BoundCard::bind(sys.connect(READER).expect("reconnect")).expect("bind again");
    sign_and_check(&mut card, b"after the card came back").expect("sign after recovery");
    let lines = log_lines();
    // The VERIFY the card processed, the card gone (powered off), then powered on again.
    let verify = position(&lines, 0, |l| l.starts_with("0020") && l.len() > 14)
        .expect("the VERIFY in the card's log");
    let off = position(&lines, verify, |l| l == "# power off").expect("the pull in the log");
    assert!(off <= verify + 1, "{:?}", &lines[verify..]);
    assert!(position(&lines, off, |l| l == "# power on").is_some());
    card.disconnect();
}
