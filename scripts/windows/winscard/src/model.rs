//! The resource manager behind the exported functions, in safe Rust: contexts, card handles, one
//! reader whose card is a vpcd client (the project's `jpki virtual-card --port PORT`), its
//! transactions, resets and power.
//!
//! The reader listens on `127.0.0.1:$JPKI_TEST_WINSCARD_PORT` (the vpcd side); the card is in
//! the reader while that connection is up. On insertion the card is powered and its ATR read
//! (as a reader does); `SCARD_UNPOWER_CARD` powers it off (vpcd `00`) and the next use of the
//! card powers it on again (`01`, then `04` for the ATR).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub type Long = i32;
pub type Dword = u32;

pub const SCARD_S_SUCCESS: Long = 0;
pub const SCARD_F_INTERNAL_ERROR: Long = 0x8010_0001_u32 as i32;
pub const SCARD_E_CANCELLED: Long = 0x8010_0002_u32 as i32;
pub const SCARD_E_INVALID_HANDLE: Long = 0x8010_0003_u32 as i32;
pub const SCARD_E_INVALID_PARAMETER: Long = 0x8010_0004_u32 as i32;
pub const SCARD_E_INSUFFICIENT_BUFFER: Long = 0x8010_0008_u32 as i32;
pub const SCARD_E_UNKNOWN_READER: Long = 0x8010_0009_u32 as i32;
pub const SCARD_E_TIMEOUT: Long = 0x8010_000A_u32 as i32;
pub const SCARD_E_SHARING_VIOLATION: Long = 0x8010_000B_u32 as i32;
pub const SCARD_E_PROTO_MISMATCH: Long = 0x8010_000F_u32 as i32;
pub const SCARD_E_INVALID_VALUE: Long = 0x8010_0011_u32 as i32;
pub const SCARD_E_NOT_TRANSACTED: Long = 0x8010_0016_u32 as i32;
pub const SCARD_E_NO_SERVICE: Long = 0x8010_001D_u32 as i32;
/// Windows' value (pcsc-lite's is 0x8010001F).
pub const SCARD_E_UNSUPPORTED_FEATURE: Long = 0x8010_0022_u32 as i32;
pub const SCARD_E_NO_READERS_AVAILABLE: Long = 0x8010_002E_u32 as i32;
pub const SCARD_W_UNRESPONSIVE_CARD: Long = 0x8010_0066_u32 as i32;
pub const SCARD_W_RESET_CARD: Long = 0x8010_0068_u32 as i32;
pub const SCARD_W_REMOVED_CARD: Long = 0x8010_0069_u32 as i32;

pub const SCARD_SCOPE_SYSTEM: Dword = 2;
pub const SCARD_SHARE_EXCLUSIVE: Dword = 1;
pub const SCARD_SHARE_SHARED: Dword = 2;
pub const SCARD_SHARE_DIRECT: Dword = 3;
pub const SCARD_LEAVE_CARD: Dword = 0;
pub const SCARD_RESET_CARD: Dword = 1;
pub const SCARD_UNPOWER_CARD: Dword = 2;
pub const SCARD_EJECT_CARD: Dword = 3;
pub const SCARD_PROTOCOL_UNDEFINED: Dword = 0;
pub const SCARD_PROTOCOL_T0: Dword = 1;
pub const SCARD_PROTOCOL_T1: Dword = 2;
pub const SCARD_AUTOALLOCATE: Dword = Dword::MAX;
pub const INFINITE: Dword = Dword::MAX;

pub const SCARD_STATE_UNAWARE: Dword = 0x0000;
pub const SCARD_STATE_IGNORE: Dword = 0x0001;
pub const SCARD_STATE_CHANGED: Dword = 0x0002;
pub const SCARD_STATE_UNKNOWN: Dword = 0x0004;
pub const SCARD_STATE_UNAVAILABLE: Dword = 0x0008;
pub const SCARD_STATE_EMPTY: Dword = 0x0010;
pub const SCARD_STATE_PRESENT: Dword = 0x0020;
pub const SCARD_STATE_EXCLUSIVE: Dword = 0x0080;
pub const SCARD_STATE_INUSE: Dword = 0x0100;
pub const SCARD_STATE_MUTE: Dword = 0x0200;
pub const SCARD_STATE_UNPOWERED: Dword = 0x0400;
/// The bits compared with the caller's `dwCurrentState` to decide whether the state changed.
const STATE_BITS: Dword = SCARD_STATE_UNKNOWN
    | SCARD_STATE_UNAVAILABLE
    | SCARD_STATE_EMPTY
    | SCARD_STATE_PRESENT
    | SCARD_STATE_EXCLUSIVE
    | SCARD_STATE_INUSE
    | SCARD_STATE_MUTE
    | SCARD_STATE_UNPOWERED;

/// `SCardStatus` states (Windows: ordinals, not bits).
pub const SCARD_PRESENT: Dword = 2;
pub const SCARD_SPECIFIC: Dword = 6;

/// The one reader.
pub const READER: &str = "Virtual PCD 00 00";
/// Windows' pseudo-reader for reader arrival/removal notifications.
pub const PNP_NOTIFICATION: &str = "\\\\?PnP?\\Notification";
/// Where the port comes from.
pub const PORT_VAR: &str = "JPKI_TEST_WINSCARD_PORT";
/// How long a card may take to answer one message before it counts as unresponsive.
const CARD_TIMEOUT: Duration = Duration::from_secs(30);

pub type Res<T> = Result<T, Long>;

/// One card in the reader: one vpcd connection.
struct Card {
    /// Which insertion this is (1, 2, ...).
    id: u64,
    writer: TcpStream,
    /// Messages from the card, `None` when the connection ended.
    rx: Receiver<Option<Vec<u8>>>,
    atr: Vec<u8>,
    powered: bool,
    /// Bumped by every reset or power-off; a handle that saw an older value gets
    /// `SCARD_W_RESET_CARD` until it reconnects.
    reset_gen: u64,
    /// The handle holding the transaction.
    tx_owner: Option<usize>,
}

struct Handle {
    ctx: usize,
    /// The insertion the handle was connected to (`0`: a direct connection without a card).
    card_id: u64,
    reset_gen: u64,
    share: Dword,
    protocol: Dword,
}

#[derive(Default)]
struct Ctx {
    /// Bumped by `SCardCancel`.
    cancels: u64,
}

#[derive(Default)]
struct State {
    contexts: HashMap<usize, Ctx>,
    handles: HashMap<usize, Handle>,
    card: Option<Card>,
    /// Card insertions so far (the id of the next card is this + 1).
    insertions: u64,
    /// Insertions and removals, reported in the high word of `dwEventState`.
    events: u32,
    next_id: usize,
    /// The listener is up.
    listening: bool,
}

struct Rm {
    state: Mutex<State>,
    cond: Condvar,
}

fn rm() -> &'static Rm {
    static RM: OnceLock<Rm> = OnceLock::new();
    RM.get_or_init(|| Rm {
        state: Mutex::new(State::default()),
        cond: Condvar::new(),
    })
}

fn lock() -> MutexGuard<'static, State> {
    rm().state.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait(guard: MutexGuard<'static, State>, until: Option<Instant>) -> MutexGuard<'static, State> {
    let cond = &rm().cond;
    match until {
        None => cond.wait(guard).unwrap_or_else(|e| e.into_inner()),
        Some(t) => {
            let left = t.saturating_duration_since(Instant::now());
            cond.wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0
        }
    }
}

fn notify() {
    rm().cond.notify_all();
}

// ---- vpcd framing ----

fn write_frame(w: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long"))?;
    let mut msg = Vec::with_capacity(payload.len() + 2);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(payload);
    w.write_all(&msg)
}

fn read_frame(r: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    r.read_exact(&mut msg)?;
    Ok(msg)
}

impl Card {
    /// Sends one message; waits for the answer if `answered`.
    fn exchange(&mut self, msg: &[u8], answered: bool) -> Res<Vec<u8>> {
        // Answers to messages whose sender gave up (timeouts) are stale: drop them.
        while let Ok(Some(_)) = self.rx.try_recv() {}
        if write_frame(&mut self.writer, msg).is_err() {
            return Err(SCARD_W_REMOVED_CARD);
        }
        if !answered {
            return Ok(Vec::new());
        }
        match self.rx.recv_timeout(CARD_TIMEOUT) {
            Ok(Some(resp)) => Ok(resp),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => Err(SCARD_W_REMOVED_CARD),
            Err(RecvTimeoutError::Timeout) => Err(SCARD_W_UNRESPONSIVE_CARD),
        }
    }

    fn power_on(&mut self) -> Res<()> {
        self.exchange(&[0x01], false)?;
        self.atr = self.exchange(&[0x04], true)?;
        self.powered = true;
        Ok(())
    }

    fn ensure_powered(&mut self) -> Res<()> {
        if self.powered {
            Ok(())
        } else {
            self.power_on()
        }
    }

    fn power_off(&mut self) -> Res<()> {
        self.powered = false;
        self.reset_gen += 1;
        self.exchange(&[0x00], false).map(drop)
    }

    fn reset(&mut self) -> Res<()> {
        self.reset_gen += 1;
        if self.powered {
            self.exchange(&[0x02], false).map(drop)
        } else {
            self.power_on()
        }
    }
}

impl State {
    fn new_id(&mut self) -> usize {
        self.next_id += 1;
        // Never 0, and far from small integers another DLL's handles might be.
        0x5C00_0000 + self.next_id
    }

    fn ctx(&self, ctx: usize) -> Res<&Ctx> {
        self.contexts.get(&ctx).ok_or(SCARD_E_INVALID_HANDLE)
    }

    /// An I/O error on the card: it left the reader.
    fn card_gone(&mut self, id: u64) {
        if self.card.as_ref().is_some_and(|c| c.id == id) {
            self.card = None;
            self.events = self.events.wrapping_add(1);
            notify();
        }
    }

    /// Runs `f` on the card of handle `h`, which must be the card it is connected to, not reset
    /// since; an I/O failure removes the card.
    fn with_card<T>(&mut self, h: usize, f: impl FnOnce(&mut Card, usize) -> Res<T>) -> Res<T> {
        let handle = self.handles.get(&h).ok_or(SCARD_E_INVALID_HANDLE)?;
        let (card_id, gen) = (handle.card_id, handle.reset_gen);
        let card = match &mut self.card {
            Some(c) if c.id == card_id => c,
            _ => return Err(SCARD_W_REMOVED_CARD),
        };
        if card.reset_gen != gen {
            return Err(SCARD_W_RESET_CARD);
        }
        let id = card.id;
        let res = f(card, h);
        if matches!(res, Err(SCARD_W_REMOVED_CARD)) {
            self.card_gone(id);
        }
        res
    }

    /// The card's state bits and ATR as `SCardGetStatusChange` reports them.
    fn reader_state(&self) -> (Dword, Vec<u8>) {
        match &self.card {
            None => (SCARD_STATE_EMPTY, Vec::new()),
            Some(c) => {
                let mut s = SCARD_STATE_PRESENT;
                let users: Vec<&Handle> = self
                    .handles
                    .values()
                    .filter(|h| h.card_id == c.id)
                    .collect();
                if !users.is_empty() {
                    s |= SCARD_STATE_INUSE;
                }
                if users.iter().any(|h| h.share == SCARD_SHARE_EXCLUSIVE) {
                    s |= SCARD_STATE_EXCLUSIVE;
                }
                if !c.powered {
                    s |= SCARD_STATE_UNPOWERED;
                }
                (s, c.atr.clone())
            }
        }
    }

    /// Whether `share` may connect to the present card, `me` (reconnecting) aside.
    fn sharing_allows(&self, card_id: u64, share: Dword, me: Option<usize>) -> bool {
        let others = self
            .handles
            .iter()
            .filter(|(k, h)| {
                Some(**k) != me && h.card_id == card_id && h.share != SCARD_SHARE_DIRECT
            })
            .map(|(_, h)| h.share)
            .collect::<Vec<_>>();
        match share {
            SCARD_SHARE_EXCLUSIVE => others.is_empty(),
            _ => !others.contains(&SCARD_SHARE_EXCLUSIVE),
        }
    }
}

// ---- the reader: a vpcd listener ----

/// Starts listening once (on the first context); `SCARD_E_NO_SERVICE` without the variable or
/// when the port cannot be bound.
fn ensure_listening(st: &mut State) -> Res<()> {
    if st.listening {
        return Ok(());
    }
    let port: u16 = std::env::var(PORT_VAR)
        .ok()
        .and_then(|p| p.parse().ok())
        .ok_or(SCARD_E_NO_SERVICE)?;
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|_| SCARD_E_NO_SERVICE)?;
    std::thread::Builder::new()
        .name("winscard-vpcd".into())
        .spawn(move || accept_loop(listener))
        .map_err(|_| SCARD_E_NO_SERVICE)?;
    st.listening = true;
    Ok(())
}

fn accept_loop(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        insert(stream);
    }
}

/// A card connected: it is in the reader, powered, its ATR read.
fn insert(stream: TcpStream) {
    let mut st = lock();
    if st.card.is_some() {
        return; // one card per reader: the newcomer is refused (dropped)
    }
    let _ = stream.set_nodelay(true);
    let Ok(mut reader) = stream.try_clone() else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    let id = st.insertions + 1;
    let spawned = std::thread::Builder::new()
        .name("winscard-card".into())
        .spawn(move || {
            while let Ok(msg) = read_frame(&mut reader) {
                if tx.send(Some(msg)).is_err() {
                    return;
                }
            }
            let _ = tx.send(None);
            lock().card_gone(id);
        });
    if spawned.is_err() {
        return;
    }
    let mut card = Card {
        id,
        writer: stream,
        rx,
        atr: Vec::new(),
        powered: false,
        reset_gen: 0,
        tx_owner: None,
    };
    if card.power_on().is_err() {
        return;
    }
    st.insertions = id;
    st.card = Some(card);
    st.events = st.events.wrapping_add(1);
    drop(st);
    notify();
}

// ---- the API, on checked Rust values ----

pub fn establish_context(scope: Dword) -> Res<usize> {
    if scope > SCARD_SCOPE_SYSTEM {
        return Err(SCARD_E_INVALID_VALUE);
    }
    let mut st = lock();
    ensure_listening(&mut st)?;
    let id = st.new_id();
    st.contexts.insert(id, Ctx::default());
    Ok(id)
}

pub fn release_context(ctx: usize) -> Res<()> {
    let mut st = lock();
    st.contexts.remove(&ctx).ok_or(SCARD_E_INVALID_HANDLE)?;
    let mine: Vec<usize> = st
        .handles
        .iter()
        .filter(|(_, h)| h.ctx == ctx)
        .map(|(k, _)| *k)
        .collect();
    for h in mine {
        let _ = disconnect_locked(&mut st, h, SCARD_LEAVE_CARD);
    }
    drop(st);
    notify();
    Ok(())
}

pub fn is_valid_context(ctx: usize) -> Res<()> {
    lock().ctx(ctx).map(drop)
}

pub fn cancel(ctx: usize) -> Res<()> {
    let mut st = lock();
    let c = st.contexts.get_mut(&ctx).ok_or(SCARD_E_INVALID_HANDLE)?;
    c.cancels += 1;
    drop(st);
    notify();
    Ok(())
}

/// The reader groups `SCardListReaders` knows (all of them hold the one reader).
const GROUPS: [&str; 3] = [
    "SCard$AllReaders",
    "SCard$DefaultReaders",
    "SCard$LocalReaders",
];

/// The reader names as a multi-string (`None`: no reader in these groups).
pub fn list_readers(ctx: usize, groups: Option<Vec<String>>) -> Res<Vec<u8>> {
    lock().ctx(ctx)?;
    if let Some(g) = groups {
        if !g.iter().any(|g| GROUPS.contains(&g.as_str())) {
            return Err(SCARD_E_NO_READERS_AVAILABLE);
        }
    }
    Ok(multi_string(READER))
}

pub fn multi_string(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    v
}

/// One entry of `SCardGetStatusChange`'s array, as Rust values.
pub struct ReaderStateIo {
    pub reader: String,
    pub current: Dword,
    pub event: Dword,
    pub atr: Vec<u8>,
}

pub fn get_status_change(ctx: usize, timeout_ms: Dword, states: &mut [ReaderStateIo]) -> Res<()> {
    let until = (timeout_ms != INFINITE)
        .then(|| Instant::now() + Duration::from_millis(u64::from(timeout_ms)));
    let mut st = lock();
    let cancels = st.ctx(ctx)?.cancels;
    loop {
        let mut changed = false;
        let (card_bits, atr) = st.reader_state();
        let count = st.events & 0xFFFF;
        for rs in states.iter_mut() {
            if rs.current & SCARD_STATE_IGNORE != 0 {
                rs.event = SCARD_STATE_IGNORE;
                continue;
            }
            let (bits, count, atr) = if rs.reader == READER {
                (card_bits, count, atr.clone())
            } else if rs.reader == PNP_NOTIFICATION {
                // One reader, never added or removed: the count of readers, never changing.
                (0, 1, Vec::new())
            } else {
                (SCARD_STATE_UNKNOWN, 0, Vec::new())
            };
            let differs = rs.current == SCARD_STATE_UNAWARE
                || rs.current & STATE_BITS != bits
                || rs.current >> 16 != count;
            rs.event = bits | (count << 16) | if differs { SCARD_STATE_CHANGED } else { 0 };
            rs.atr = atr;
            changed |= differs;
        }
        if changed {
            return Ok(());
        }
        match st.contexts.get(&ctx) {
            None => return Err(SCARD_E_INVALID_HANDLE),
            Some(c) if c.cancels != cancels => return Err(SCARD_E_CANCELLED),
            Some(_) => {}
        }
        if until.is_some_and(|t| Instant::now() >= t) {
            return Err(SCARD_E_TIMEOUT);
        }
        st = wait(st, until);
    }
}

fn check_share(share: Dword) -> Res<()> {
    match share {
        SCARD_SHARE_EXCLUSIVE | SCARD_SHARE_SHARED | SCARD_SHARE_DIRECT => Ok(()),
        _ => Err(SCARD_E_INVALID_VALUE),
    }
}

/// The protocol a connection gets: the card speaks T=1 only.
fn negotiate(share: Dword, protocols: Dword) -> Res<Dword> {
    if share == SCARD_SHARE_DIRECT {
        return Ok(SCARD_PROTOCOL_UNDEFINED);
    }
    if protocols & (SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1) == 0 {
        return Err(SCARD_E_INVALID_VALUE);
    }
    if protocols & SCARD_PROTOCOL_T1 == 0 {
        return Err(SCARD_E_PROTO_MISMATCH);
    }
    Ok(SCARD_PROTOCOL_T1)
}

/// A new handle and its protocol.
pub fn connect(ctx: usize, reader: &str, share: Dword, protocols: Dword) -> Res<(usize, Dword)> {
    let mut st = lock();
    st.ctx(ctx)?;
    if reader != READER {
        return Err(SCARD_E_UNKNOWN_READER);
    }
    check_share(share)?;
    let protocol = negotiate(share, protocols)?;
    let Some(card_id) = st.card.as_ref().map(|c| c.id) else {
        if share == SCARD_SHARE_DIRECT {
            let h = st.new_id();
            st.handles.insert(h, handle(ctx, 0, 0, share, protocol));
            return Ok((h, protocol));
        }
        // What Windows answers when the reader is empty (pcsc-lite: SCARD_E_NO_SMARTCARD).
        return Err(SCARD_W_REMOVED_CARD);
    };
    if !st.sharing_allows(card_id, share, None) {
        return Err(SCARD_E_SHARING_VIOLATION);
    }
    let mut gen = 0;
    if share != SCARD_SHARE_DIRECT {
        let card = st.card.as_mut().ok_or(SCARD_W_REMOVED_CARD)?;
        if let Err(e) = card.ensure_powered() {
            st.card_gone(card_id);
            return Err(e);
        }
    }
    if let Some(c) = &st.card {
        gen = c.reset_gen;
    }
    let h = st.new_id();
    st.handles
        .insert(h, handle(ctx, card_id, gen, share, protocol));
    drop(st);
    notify(); // INUSE changed
    Ok((h, protocol))
}

fn handle(ctx: usize, card_id: u64, reset_gen: u64, share: Dword, protocol: Dword) -> Handle {
    Handle {
        ctx,
        card_id,
        reset_gen,
        share,
        protocol,
    }
}

pub fn reconnect(h: usize, share: Dword, protocols: Dword, init: Dword) -> Res<Dword> {
    let mut st = lock();
    let ctx = st.handles.get(&h).ok_or(SCARD_E_INVALID_HANDLE)?.ctx;
    check_share(share)?;
    if !matches!(
        init,
        SCARD_LEAVE_CARD | SCARD_RESET_CARD | SCARD_UNPOWER_CARD
    ) {
        return Err(SCARD_E_INVALID_VALUE);
    }
    let protocol = negotiate(share, protocols)?;
    let card_id = st.card.as_ref().map(|c| c.id).ok_or(SCARD_W_REMOVED_CARD)?;
    if !st.sharing_allows(card_id, share, Some(h)) {
        return Err(SCARD_E_SHARING_VIOLATION);
    }
    let old_card = st.handles.get(&h).map_or(0, |x| x.card_id);
    let card = st.card.as_mut().ok_or(SCARD_W_REMOVED_CARD)?;
    if card.tx_owner.is_some_and(|o| o != h) {
        // Another handle's transaction: the card cannot be touched now.
        if init != SCARD_LEAVE_CARD {
            return Err(SCARD_E_SHARING_VIOLATION);
        }
    }
    let io = match init {
        SCARD_RESET_CARD => card.reset(),
        SCARD_UNPOWER_CARD => card.power_off().and_then(|()| card.power_on()),
        _ => card.ensure_powered(),
    };
    if let Err(e) = io {
        st.card_gone(card_id);
        return Err(e);
    }
    let gen = card.reset_gen;
    if old_card != card_id && card.tx_owner == Some(h) {
        card.tx_owner = None;
    }
    st.handles
        .insert(h, handle(ctx, card_id, gen, share, protocol));
    drop(st);
    notify();
    Ok(protocol)
}

fn disconnect_locked(st: &mut State, h: usize, disposition: Dword) -> Res<()> {
    if disposition > SCARD_EJECT_CARD {
        return Err(SCARD_E_INVALID_VALUE);
    }
    let handle = st.handles.remove(&h).ok_or(SCARD_E_INVALID_HANDLE)?;
    let Some(card) = st.card.as_mut().filter(|c| c.id == handle.card_id) else {
        return Ok(());
    };
    if card.tx_owner == Some(h) {
        card.tx_owner = None;
    }
    let io = match disposition {
        SCARD_RESET_CARD => card.reset(),
        SCARD_UNPOWER_CARD | SCARD_EJECT_CARD => card.power_off(),
        _ => Ok(()),
    };
    if io.is_err() {
        st.card_gone(handle.card_id);
    }
    Ok(())
}

pub fn disconnect(h: usize, disposition: Dword) -> Res<()> {
    let mut st = lock();
    let r = disconnect_locked(&mut st, h, disposition);
    drop(st);
    notify();
    r
}

pub fn begin_transaction(h: usize) -> Res<()> {
    let mut st = lock();
    loop {
        let free = st.with_card(h, |card, h| Ok(card.tx_owner.is_none_or(|o| o == h)))?;
        if free {
            st.with_card(h, |card, h| {
                card.tx_owner = Some(h);
                Ok(())
            })?;
            return Ok(());
        }
        // Held by another handle: wait until it ends (or the card goes).
        st = wait(st, None);
    }
}

pub fn end_transaction(h: usize, disposition: Dword) -> Res<()> {
    let mut st = lock();
    if disposition > SCARD_EJECT_CARD {
        return Err(SCARD_E_INVALID_VALUE);
    }
    let r = st.with_card(h, |card, h| {
        if card.tx_owner != Some(h) {
            return Err(SCARD_E_NOT_TRANSACTED);
        }
        // The disposition happens before the lock is released: nobody reaches the card between.
        let io = match disposition {
            SCARD_RESET_CARD => card.reset(),
            SCARD_UNPOWER_CARD | SCARD_EJECT_CARD => card.power_off(),
            _ => Ok(()),
        };
        card.tx_owner = None;
        io
    });
    drop(st);
    notify();
    r
}

/// Reader name, `SCardStatus` state, protocol, ATR.
pub fn status(h: usize) -> Res<(Dword, Dword, Vec<u8>)> {
    let mut st = lock();
    st.with_card(h, |card, _| {
        let state = if card.powered {
            SCARD_SPECIFIC
        } else {
            SCARD_PRESENT
        };
        Ok((state, SCARD_PROTOCOL_T1, card.atr.clone()))
    })
}

pub const SCARD_ATTR_VENDOR_NAME: Dword = 0x0001_0100;
pub const SCARD_ATTR_CURRENT_PROTOCOL_TYPE: Dword = 0x0008_0201;
pub const SCARD_ATTR_ATR_STRING: Dword = 0x0009_0303;
pub const SCARD_ATTR_DEVICE_FRIENDLY_NAME_A: Dword = 0x7FFF_0003;
pub const SCARD_ATTR_DEVICE_SYSTEM_NAME_A: Dword = 0x7FFF_0004;

pub fn get_attrib(h: usize, attr: Dword) -> Res<Vec<u8>> {
    let mut st = lock();
    st.with_card(h, |card, _| {
        Ok(match attr {
            SCARD_ATTR_ATR_STRING => card.atr.clone(),
            SCARD_ATTR_CURRENT_PROTOCOL_TYPE => SCARD_PROTOCOL_T1.to_le_bytes().to_vec(),
            SCARD_ATTR_VENDOR_NAME => b"jpki-pkcs11 test WinSCard\0".to_vec(),
            SCARD_ATTR_DEVICE_FRIENDLY_NAME_A | SCARD_ATTR_DEVICE_SYSTEM_NAME_A => {
                let mut v = READER.as_bytes().to_vec();
                v.push(0);
                v
            }
            _ => return Err(SCARD_E_UNSUPPORTED_FEATURE),
        })
    })
}

/// A handle that may talk to the card (for `SCardSetAttrib`/`SCardControl`, which this reader
/// does not support).
pub fn check_handle(h: usize) -> Res<()> {
    lock().with_card(h, |_, _| Ok(()))
}

/// One APDU; the answer.
pub fn transmit(h: usize, pci_protocol: Dword, apdu: &[u8]) -> Res<Vec<u8>> {
    if apdu.len() < 4 || apdu.len() > usize::from(u16::MAX) {
        return Err(SCARD_E_INVALID_PARAMETER);
    }
    let mut st = lock();
    let protocol = st.handles.get(&h).ok_or(SCARD_E_INVALID_HANDLE)?.protocol;
    if protocol == SCARD_PROTOCOL_UNDEFINED || pci_protocol != protocol {
        return Err(SCARD_E_PROTO_MISMATCH);
    }
    loop {
        // Outside a transaction of its own, a handle waits for another's to end.
        let free = st.with_card(h, |card, h| Ok(card.tx_owner.is_none_or(|o| o == h)))?;
        if free {
            break;
        }
        st = wait(st, None);
    }
    st.with_card(h, |card, _| {
        card.ensure_powered()?;
        card.exchange(apdu, true)
    })
}
