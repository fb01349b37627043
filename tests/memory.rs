//! Personal data and PINs in memory (issue 9, finding 1), seen from an application that loads
//! the built module and uses the virtual card behind the real pcscd:
//!
//! - after `C_Logout` (a session still open), after the last session closes, and after
//!   `C_Finalize`, this process's memory holds neither the holder's name, date of birth and
//!   address (the signature certificate's subjectAltName) nor the signature password;
//! - a core dump (`gcore`) of a process that is still logged in, with the certificate read,
//!   holds none of them either (the module's long-lived copies are `MADV_DONTDUMP`).
//!
//! The test must not keep copies itself: the needles are stored XORed with [`KEY`] (the plain
//! bytes are never in this binary or its memory), memory is copied into a separate mapping that
//! is excluded from the scan, XORed there and searched for the stored form; the module is
//! called through its raw function list (no wrapper keeps intermediate copies) and every buffer
//! that received a value is zeroized.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod common;

use common::VCard;
use cryptoki_sys::*;
use std::ffi::{c_void, CString};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use zeroize::{Zeroize, Zeroizing};

/// What every needle below is XORed with.
const KEY: u8 = 0xA5;
/// `試験\u{3000}太郎`, the virtual holder's name (`crates/vcard/src/pki.rs`), UTF-8, XORed.
const NAME: [u8; 15] = [
    0x4D, 0x0C, 0x03, 0x4C, 0x0D, 0x36, 0x46, 0x25, 0x25, 0x40, 0x01, 0x0F, 0x4C, 0x26, 0x2B,
];
/// `319800401`, the virtual holder's date of birth (era + YYYYMMDD), XORed.
const BIRTH: [u8; 9] = [0x96, 0x94, 0x9C, 0x9D, 0x95, 0x95, 0x91, 0x95, 0x94];
/// The virtual holder's address, UTF-8, XORed.
const ADDRESS: [u8; 45] = [
    0x43, 0x38, 0x14, 0x41, 0x1F, 0x09, 0x4C, 0x26, 0x18, 0x4D, 0x0C, 0x03, 0x4C, 0x0D, 0x36, 0x40,
    0x29, 0x1F, 0x4D, 0x0C, 0x03, 0x4C, 0x0D, 0x36, 0x42, 0x31, 0x1F, 0x41, 0x1D, 0x25, 0x41, 0x1D,
    0x24, 0x42, 0x3E, 0x0B, 0x41, 0x1D, 0x25, 0x42, 0x30, 0x0F, 0x40, 0x39, 0x15,
];
/// The virtual card's signature password (`JPKITEST1`), XORed.
const PASSWORD: [u8; 9] = [0xEF, 0xF5, 0xEE, 0xEC, 0xF1, 0xE0, 0xF6, 0xF1, 0x94];
/// `jpki-memory-canary:not-a-secret`, XORed: put in the helper's heap to show that the core
/// dump does hold ordinary heap memory.
const CANARY: [u8; 31] = [
    0xCF, 0xD5, 0xCE, 0xCC, 0x88, 0xC8, 0xC0, 0xC8, 0xCA, 0xD7, 0xDC, 0x88, 0xC6, 0xC4, 0xCB, 0xC4,
    0xD7, 0xDC, 0x9F, 0xCB, 0xCA, 0xD1, 0x88, 0xC4, 0x88, 0xD6, 0xC0, 0xC6, 0xD7, 0xC0, 0xD1,
];

/// The personal data of the signature certificate.
const PERSONAL: [(&str, &[u8]); 3] = [
    ("holder's name", &NAME),
    ("date of birth", &BIRTH),
    ("address", &ADDRESS),
];

/// A needle decoded into zeroized memory (for the one place that needs the plain bytes: the
/// password passed to `C_Login`, the canary).
fn decode(xored: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(xored.len()));
    v.extend(xored.iter().map(|b| b ^ KEY));
    v
}

/// Whether `hay` holds the plain form of the XORed `needle`, without decoding it.
fn contains_xored(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.iter().zip(needle).all(|(h, n)| h ^ KEY == *n))
}

// ---------------------------------------------------------------------------------------------
// Scanning memory

/// Bytes copied from memory at a time.
const CHUNK: usize = 1 << 20;
/// Longest needle (consecutive chunks overlap by this much).
const OVERLAP: usize = 64;

/// A private anonymous mapping that receives copies of memory; it is excluded from the scans
/// and zeroed after each use, so it neither finds nor keeps what it copies.
struct ScanBuf {
    ptr: *mut u8,
    len: usize,
}

impl ScanBuf {
    fn new() -> ScanBuf {
        let len = CHUNK + OVERLAP;
        // SAFETY: an anonymous private mapping, no address hint; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap");
        ScanBuf {
            ptr: ptr.cast(),
            len,
        }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    fn range(&self) -> (u64, u64) {
        (self.ptr as u64, self.ptr as u64 + self.len as u64)
    }
}

impl Drop for ScanBuf {
    fn drop(&mut self) {
        self.as_mut().zeroize();
        // SAFETY: unmaps the mapping made in `new`, no longer referenced.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Searches `data` for each XORed needle, XORing `data` in place first (so the plain bytes do
/// not stay in the buffer). Returns the names found, with the offset.
fn search(data: &mut [u8], needles: &[(&str, &[u8])]) -> Vec<(String, usize)> {
    for b in data.iter_mut() {
        *b ^= KEY;
    }
    let mut found = Vec::new();
    for (name, needle) in needles {
        let mut at = 0;
        while at + needle.len() <= data.len() {
            // SAFETY: both pointers and lengths describe live slices.
            let p = unsafe {
                libc::memmem(
                    data[at..].as_ptr().cast(),
                    data.len() - at,
                    needle.as_ptr().cast(),
                    needle.len(),
                )
            };
            if p.is_null() {
                break;
            }
            let off = p as usize - data.as_ptr() as usize;
            found.push((name.to_string(), off));
            at = off + 1;
        }
    }
    found
}

/// Scans every writable mapping of this process (heap, stacks, anonymous mappings, the
/// writable data of every library) for the needles; returns where each was found. Read-only
/// mappings are file contents (code, constants: the module's own virtual card carries the test
/// PKI's literals) and cannot hold what the process received at run time.
fn scan_self(needles: &[(&str, &[u8])]) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let mem = std::fs::File::open("/proc/self/mem").expect("/proc/self/mem");
    let mut buf = ScanBuf::new();
    let (skip_lo, skip_hi) = buf.range();
    let mut hits = Vec::new();
    let mut scanned = 0u64;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        let path = parts.nth(3).unwrap_or("");
        if !perms.starts_with("rw") {
            continue;
        }
        let (lo, hi) = range.split_once('-').expect("range");
        let lo = u64::from_str_radix(lo, 16).expect("start");
        let hi = u64::from_str_radix(hi, 16).expect("end");
        // The scan buffer's own mapping may have merged with a neighbour: cut it out.
        let pieces = [(lo, hi.min(skip_lo).max(lo)), (lo.max(skip_hi).min(hi), hi)];
        for (start, end) in pieces {
            let mut at = start;
            while at < end {
                let n = ((end - at) as usize).min(CHUNK + OVERLAP);
                let data = &mut buf.as_mut()[..n];
                if mem.read_exact_at(data, at).is_ok() {
                    scanned += n as u64;
                    for (name, off) in search(data, needles) {
                        hits.push(format!(
                            "{name} at {:#x} in {lo:#x}-{hi:#x} {perms} {path}",
                            at + off as u64
                        ));
                    }
                }
                data.zeroize();
                if at + n as u64 >= end {
                    break;
                }
                at += CHUNK as u64;
            }
        }
    }
    assert!(scanned > 1 << 20, "scanned only {scanned} bytes");
    hits.sort();
    hits.dedup();
    hits
}

// ---------------------------------------------------------------------------------------------
// The module through its raw function list

struct Module {
    f: &'static CK_FUNCTION_LIST,
}

macro_rules! call {
    ($m:expr, $name:ident ( $($arg:expr),* )) => {{
        let f = $m.f.$name.expect(stringify!($name));
        // SAFETY: a function of the module's list, called with arguments valid for the call.
        unsafe { f($($arg),*) }
    }};
}

fn ok(rv: CK_RV, what: &str) {
    assert_eq!(rv, CKR_OK, "{what}: CKR {rv:#x}");
}

impl Module {
    /// `dlopen`s the built module (kept loaded: it is loaded once per process anyway) and
    /// initializes it.
    fn load() -> Module {
        let path = CString::new(common::module_path().to_string_lossy().into_owned()).unwrap();
        // SAFETY: a valid NUL-terminated path; the handle is never closed.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!handle.is_null(), "cannot load {}", path.to_string_lossy());
        // SAFETY: valid handle and symbol name.
        let sym = unsafe { libc::dlsym(handle, c"C_GetFunctionList".as_ptr()) };
        assert!(!sym.is_null(), "C_GetFunctionList");
        // SAFETY: the exported symbol has the type CK_C_GetFunctionList.
        let get: unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV =
            unsafe { std::mem::transmute(sym) };
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: `list` is a valid out pointer.
        ok(unsafe { get(&mut list) }, "C_GetFunctionList");
        // SAFETY: the module's static function list lives as long as the library stays loaded.
        let m = Module {
            f: unsafe { &*list },
        };
        ok(call!(m, C_Initialize(std::ptr::null_mut())), "C_Initialize");
        m
    }

    fn finalize(&self) {
        ok(call!(self, C_Finalize(std::ptr::null_mut())), "C_Finalize");
    }

    /// The signature token's slot of the virtual card's reader.
    fn sign_slot(&self, reader: &str) -> CK_SLOT_ID {
        let mut n: CK_ULONG = 0;
        ok(
            call!(self, C_GetSlotList(CK_TRUE, std::ptr::null_mut(), &mut n)),
            "C_GetSlotList",
        );
        let mut slots = vec![0; n as usize];
        ok(
            call!(self, C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n)),
            "C_GetSlotList",
        );
        slots.truncate(n as usize);
        for slot in slots {
            // SAFETY: CK_TOKEN_INFO is plain data; all-zero is a valid value.
            let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
            let mut sinfo: CK_SLOT_INFO =
                // SAFETY: as above.
                unsafe { std::mem::zeroed() };
            ok(
                call!(self, C_GetSlotInfo(slot, &mut sinfo)),
                "C_GetSlotInfo",
            );
            if !sinfo.slotDescription.starts_with(reader.as_bytes()) {
                continue;
            }
            ok(
                call!(self, C_GetTokenInfo(slot, &mut info)),
                "C_GetTokenInfo",
            );
            if info.label.starts_with(b"JPKI Digital Signature") {
                return slot;
            }
        }
        panic!("no signature token in {reader}");
    }

    fn open_session(&self, slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
        let mut h = 0;
        ok(
            call!(
                self,
                C_OpenSession(slot, CKF_SERIAL_SESSION, std::ptr::null_mut(), None, &mut h)
            ),
            "C_OpenSession",
        );
        h
    }

    /// Logs in with the virtual card's signature password, decoded into zeroized memory.
    fn login(&self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE) {
        let mut pin = decode(&PASSWORD);
        let rv = call!(
            self,
            C_Login(h, user, pin.as_mut_ptr(), pin.len() as CK_ULONG)
        );
        ok(rv, "C_Login");
    }

    /// The objects of class `class` with `CKA_ID` 02 (the signature key pair).
    fn find(&self, h: CK_SESSION_HANDLE, template: &mut [CK_ATTRIBUTE]) -> Vec<CK_OBJECT_HANDLE> {
        ok(
            call!(
                self,
                C_FindObjectsInit(h, template.as_mut_ptr(), template.len() as CK_ULONG)
            ),
            "C_FindObjectsInit",
        );
        let mut found = [0; 16];
        let mut n = 0;
        ok(
            call!(self, C_FindObjects(h, found.as_mut_ptr(), 16, &mut n)),
            "C_FindObjects",
        );
        ok(call!(self, C_FindObjectsFinal(h)), "C_FindObjectsFinal");
        found[..n as usize].to_vec()
    }

    fn object(&self, h: CK_SESSION_HANDLE, class: CK_OBJECT_CLASS) -> CK_OBJECT_HANDLE {
        let mut class = class;
        let mut id = [2u8];
        let mut t = [
            attr(
                CKA_CLASS,
                std::ptr::addr_of_mut!(class).cast(),
                size_of_ulong(),
            ),
            attr(CKA_ID, id.as_mut_ptr().cast(), 1),
        ];
        let found = self.find(h, &mut t);
        assert_eq!(found.len(), 1, "one object of class {class}");
        found[0]
    }

    /// An attribute's value (two-call convention), in zeroized memory.
    fn value(
        &self,
        h: CK_SESSION_HANDLE,
        o: CK_OBJECT_HANDLE,
        ty: CK_ATTRIBUTE_TYPE,
    ) -> Zeroizing<Vec<u8>> {
        let mut t = [attr(ty, std::ptr::null_mut(), 0)];
        ok(
            call!(self, C_GetAttributeValue(h, o, t.as_mut_ptr(), 1)),
            "C_GetAttributeValue (length)",
        );
        let mut v = Zeroizing::new(vec![0u8; t[0].ulValueLen as usize]);
        t[0].pValue = v.as_mut_ptr().cast();
        ok(
            call!(self, C_GetAttributeValue(h, o, t.as_mut_ptr(), 1)),
            "C_GetAttributeValue",
        );
        v
    }

    /// What an application does with the signature token: log in, read the certificate and its
    /// name-bearing attributes (also those of the keys), find the certificate by its value, and
    /// sign once (with the per-signature login). Checks that the certificate read does hold the
    /// personal data searched for later.
    fn use_signature_token(&self, h: CK_SESSION_HANDLE) {
        self.login(h, CKU_USER);
        let cert = self.object(h, CKO_CERTIFICATE);
        let mut der = self.value(h, cert, CKA_VALUE);
        for (what, needle) in PERSONAL {
            assert!(
                contains_xored(&der, needle),
                "the virtual card's signature certificate should hold the {what}"
            );
        }
        // An application looking the certificate up by its value (the template is copied).
        let mut t = [attr(
            CKA_VALUE,
            der.as_mut_ptr().cast(),
            der.len() as CK_ULONG,
        )];
        assert_eq!(self.find(h, &mut t), vec![cert]);
        drop(der);
        for ty in [
            CKA_SUBJECT,
            CKA_ISSUER,
            CKA_SERIAL_NUMBER,
            CKA_CHECK_VALUE,
            CKA_PUBLIC_KEY_INFO,
        ] {
            drop(self.value(h, cert, ty));
        }
        let public = self.object(h, CKO_PUBLIC_KEY);
        let private = self.object(h, CKO_PRIVATE_KEY);
        for o in [public, private] {
            drop(self.value(h, o, CKA_SUBJECT));
            drop(self.value(h, o, CKA_MODULUS));
        }
        // One signature: C_SignInit, the per-signature login, C_Sign.
        let mut mech = CK_MECHANISM {
            mechanism: CKM_SHA256_RSA_PKCS,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        ok(call!(self, C_SignInit(h, &mut mech, private)), "C_SignInit");
        self.login(h, CKU_CONTEXT_SPECIFIC);
        let mut msg = *b"a document";
        let mut sig = [0u8; 256];
        let mut sig_len = sig.len() as CK_ULONG;
        ok(
            call!(
                self,
                C_Sign(
                    h,
                    msg.as_mut_ptr(),
                    msg.len() as CK_ULONG,
                    sig.as_mut_ptr(),
                    &mut sig_len
                )
            ),
            "C_Sign",
        );
        assert_eq!(sig_len, 256);
        // The certificate once more, last: its copies must be wiped however the allocator
        // reuses memory afterwards.
        drop(self.value(h, cert, CKA_VALUE));
    }
}

impl Drop for Module {
    /// A test that failed half-way leaves the module finalized for the next one.
    fn drop(&mut self) {
        call!(self, C_Finalize(std::ptr::null_mut()));
    }
}

fn attr(ty: CK_ATTRIBUTE_TYPE, p: *mut c_void, len: CK_ULONG) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: ty,
        pValue: p,
        ulValueLen: len,
    }
}

fn size_of_ulong() -> CK_ULONG {
    std::mem::size_of::<CK_ULONG>() as CK_ULONG
}

/// Every needle: the personal data and the signature password.
fn all_needles() -> Vec<(&'static str, &'static [u8])> {
    let mut v = PERSONAL.to_vec();
    v.push(("signature password", &PASSWORD));
    v
}

fn assert_clean(when: &str) {
    let hits = scan_self(&all_needles());
    assert!(
        hits.is_empty(),
        "{when}: this process's memory still holds:\n  {}",
        hits.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The tests

/// Logged in, certificate and attributes read, one signature; then `C_Logout` with the session
/// still open; then `C_CloseSession` and `C_Finalize`: no personal data and no password left.
#[test]
fn logout_and_finalize_wipe_personal_data_and_the_password() {
    let _lock = common::lock();
    let card = VCard::start();
    let m = Module::load();
    let slot = m.sign_slot(&card.reader);
    let h = m.open_session(slot);
    m.use_signature_token(h);
    ok(call!(m, C_Logout(h)), "C_Logout");
    assert_clean("after C_Logout (session still open)");
    ok(call!(m, C_CloseSession(h)), "C_CloseSession");
    m.finalize();
    assert_clean("after C_Finalize");
}

/// Closing the token's last session (without `C_Logout`) ends the login: the module is still
/// initialized, and holds neither the password nor the certificate.
#[test]
fn closing_the_last_session_wipes_personal_data_and_the_password() {
    let _lock = common::lock();
    let card = VCard::start();
    let m = Module::load();
    let slot = m.sign_slot(&card.reader);
    let h = m.open_session(slot);
    m.use_signature_token(h);
    ok(call!(m, C_CloseSession(h)), "C_CloseSession");
    assert_clean("after the last C_CloseSession (module still initialized)");
    m.finalize();
}

/// Environment variable that makes [`core_dump_holds_no_password_or_personal_data`] the helper
/// process: it logs in and waits, holding what a logged-in module holds.
const HELPER_ENV: &str = "JPKI_MEMORY_TEST_HELPER_READER";

/// What the helper says when it is ready to be dumped.
const READY: &str = "jpki-memory-helper-ready";

/// The helper: logged in to the signature token, certificate and attributes read, one
/// signature made, a canary in its heap; says [`READY`] and waits for its stdin to close.
fn helper(reader: &str) {
    let m = Module::load();
    let slot = m.sign_slot(reader);
    let h = m.open_session(slot);
    m.use_signature_token(h);
    let canary = decode(&CANARY);
    // The test harness may have written the test's name on the same line.
    println!("\n{READY}");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(canary);
    ok(call!(m, C_Logout(h)), "C_Logout");
    m.finalize();
}

/// A core dump (`gcore`, which honours `MADV_DONTDUMP` like the kernel's own dumps) of a
/// process that is logged in to the signature token and has read the certificate holds
/// neither the password nor the personal data, while it does hold ordinary heap memory.
#[test]
fn core_dump_holds_no_password_or_personal_data() {
    if let Ok(reader) = std::env::var(HELPER_ENV) {
        helper(&reader);
        return;
    }
    let _lock = common::lock();
    let card = VCard::start();
    let dir = std::env::temp_dir().join(format!("jpki-memory-core-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "core_dump_holds_no_password_or_personal_data",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, &card.reader)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-run this test binary as the helper");
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("the helper exited before it was ready: {status}");
        }
        if line.trim() == READY {
            break;
        }
    }
    let prefix = dir.join("core");
    let gcore = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(pid.to_string())
        .output()
        .expect("run gcore (Debian package gdb)");
    drop(child.stdin.take()); // the helper logs out and exits
    let status = child.wait().unwrap();
    let core_path = dir.join(format!("core.{pid}"));
    assert!(
        core_path.exists(),
        "gcore made no core: {}{}",
        String::from_utf8_lossy(&gcore.stdout),
        String::from_utf8_lossy(&gcore.stderr)
    );
    assert!(status.success(), "the helper failed: {status}");
    let mut core = Zeroizing::new(std::fs::read(&core_path).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    let mut needles = all_needles();
    needles.push(("canary", &CANARY));
    let found = search(&mut core, &needles);
    drop(core);
    assert!(
        found.iter().any(|(name, _)| name == "canary"),
        "the core does not hold the helper's heap canary: the dump is not a full one"
    );
    let leaks: Vec<String> = found
        .iter()
        .filter(|(name, _)| name != "canary")
        .map(|(name, off)| format!("{name} at file offset {off:#x}"))
        .collect();
    assert!(
        leaks.is_empty(),
        "the core dump of a logged-in process holds:\n  {}",
        leaks.join("\n  ")
    );
}
