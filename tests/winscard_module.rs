//! The module's PKCS#11 entry points over WinSCard, under Wine: `jpki_pkcs11.dll` loaded as an
//! application loads it (`LoadLibraryW`, `GetProcAddress("C_GetFunctionList")`, then only the
//! function list), with its own card system, PC/SC, on the test-only `winscard.dll`
//! (`scripts/windows/winscard/`) whose reader holds the project's virtual card
//! (`jpki virtual-card --port PORT`, a Linux process that `scripts/cross.sh` starts before and
//! stops after the run). Nothing here installs a card system: the DLL is a separate copy of the
//! module from the one linked into this executable, and its test hook is never called.
//!
//! One run: `C_Initialize`; `C_GetSlotList(CK_TRUE)` lists the reader's two tokens; one wrong PIN
//! (`CKR_PIN_INCORRECT`, the try lost shown by `CKF_USER_PIN_COUNT_LOW`); the right PIN (the
//! flag gone); `C_Sign` with `CKM_SHA256_RSA_PKCS` by the authentication key, verified outside
//! the module with the certificate read through `C_GetAttributeValue(CKA_VALUE)`; `C_Finalize`.
//! Never more than one wrong PIN.
//!
//! Environment (set by `scripts/cross.sh`; missing variables fail the test):
//! - `JPKI_TEST_WINSCARD_PORT`: where the test-only `winscard.dll` listens for the card;
//! - `TEST_PKCS11_MODULE`: the module DLL (a Windows path), the one built by
//!   `cargo build --lib` (without the `test-hooks` feature).
#![cfg(windows)]

use cryptoki_sys::*;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256};
use std::ffi::{c_char, c_void, OsStr};
use std::os::windows::ffi::OsStrExt;
use std::ptr;
use std::time::{Duration, Instant};
use x509_cert::der::Decode;

const READER: &str = "Virtual PCD 00 00";
const AUTH_LABEL: &str = "JPKI User Authentication";
const SIGN_LABEL: &str = "JPKI Digital Signature";

#[link(name = "kernel32")]
extern "system" {
    fn LoadLibraryW(name: *const u16) -> *mut c_void;
    fn GetProcAddress(module: *mut c_void, name: *const c_char) -> *mut c_void;
    fn FreeLibrary(module: *mut c_void) -> i32;
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this test runs under Wine with the test-only winscard.dll and a \
             virtual card that scripts/cross.sh starts; run scripts/cross.sh"
        )
    })
}

/// The module's function list, through its one exported entry point.
struct Module {
    lib: *mut c_void,
    f: *const CK_FUNCTION_LIST,
}

impl Module {
    fn load(path: &str) -> Module {
        let wide: Vec<u16> = OsStr::new(path).encode_wide().chain([0]).collect();
        // SAFETY: a NUL-terminated UTF-16 path.
        let lib = unsafe { LoadLibraryW(wide.as_ptr()) };
        assert!(!lib.is_null(), "LoadLibraryW({path}) failed");
        // SAFETY: a valid module handle and a NUL-terminated name.
        let sym = unsafe { GetProcAddress(lib, c"C_GetFunctionList".as_ptr()) };
        assert!(!sym.is_null(), "{path} does not export C_GetFunctionList");
        // SAFETY: the exported symbol is `CK_C_GetFunctionList` (PKCS#11).
        let get: unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV =
            unsafe { std::mem::transmute(sym) };
        let mut f = ptr::null_mut();
        // SAFETY: a valid out pointer.
        assert_eq!(unsafe { get(&mut f) }, CKR_OK, "C_GetFunctionList");
        assert!(!f.is_null());
        Module { lib, f }
    }

    fn list(&self) -> CK_FUNCTION_LIST {
        // SAFETY: the module's static function list, valid while the DLL is loaded; read by
        // value (packed on Windows).
        unsafe { ptr::read_unaligned(self.f) }
    }

    fn slots(&self, token_present: bool) -> Vec<CK_SLOT_ID> {
        let get = self.list().C_GetSlotList.unwrap();
        let present = if token_present { CK_TRUE } else { CK_FALSE };
        let mut n: CK_ULONG = 0;
        // SAFETY: NULL list asks for the count.
        assert_eq!(unsafe { get(present, ptr::null_mut(), &mut n) }, CKR_OK);
        let mut slots = vec![0; n as usize];
        // SAFETY: `slots` holds `n` entries.
        assert_eq!(
            unsafe { get(present, slots.as_mut_ptr(), &mut n) },
            CKR_OK,
            "C_GetSlotList"
        );
        slots.truncate(n as usize);
        slots
    }

    fn slot_info(&self, slot: CK_SLOT_ID) -> CK_SLOT_INFO {
        // SAFETY: a zeroed C structure is a valid out buffer.
        let mut info: CK_SLOT_INFO = unsafe { std::mem::zeroed() };
        // SAFETY: valid out pointer.
        let rv = unsafe { self.list().C_GetSlotInfo.unwrap()(slot, &mut info) };
        assert_eq!(rv, CKR_OK, "C_GetSlotInfo");
        info
    }

    fn token_info(&self, slot: CK_SLOT_ID) -> CK_TOKEN_INFO {
        // SAFETY: a zeroed C structure is a valid out buffer.
        let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
        // SAFETY: valid out pointer.
        let rv = unsafe { self.list().C_GetTokenInfo.unwrap()(slot, &mut info) };
        assert_eq!(rv, CKR_OK, "C_GetTokenInfo");
        info
    }

    fn login(&self, session: CK_SESSION_HANDLE, pin: &[u8]) -> CK_RV {
        let mut pin = pin.to_vec();
        // SAFETY: `pin` holds `pin.len()` bytes.
        unsafe {
            self.list().C_Login.unwrap()(session, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG)
        }
    }

    /// The one object of `class` (with `id`, if given) on the session's token.
    fn find(
        &self,
        session: CK_SESSION_HANDLE,
        class: CK_OBJECT_CLASS,
        id: Option<&[u8]>,
    ) -> CK_OBJECT_HANDLE {
        let l = self.list();
        let mut class = class;
        let mut id = id.map(<[u8]>::to_vec);
        let mut template = vec![CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: (&mut class as *mut CK_OBJECT_CLASS).cast(),
            ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
        }];
        if let Some(id) = id.as_mut() {
            template.push(CK_ATTRIBUTE {
                type_: CKA_ID,
                pValue: id.as_mut_ptr().cast(),
                ulValueLen: id.len() as CK_ULONG,
            });
        }
        let mut found = [0 as CK_OBJECT_HANDLE; 4];
        let mut n: CK_ULONG = 0;
        // SAFETY: the template's pointers are live for these calls; `found` holds 4 handles.
        unsafe {
            let rv = l.C_FindObjectsInit.unwrap()(
                session,
                template.as_mut_ptr(),
                template.len() as CK_ULONG,
            );
            assert_eq!(rv, CKR_OK, "C_FindObjectsInit");
            let rv = l.C_FindObjects.unwrap()(session, found.as_mut_ptr(), 4, &mut n);
            assert_eq!(rv, CKR_OK, "C_FindObjects");
            assert_eq!(l.C_FindObjectsFinal.unwrap()(session), CKR_OK);
        }
        assert_eq!(n, 1, "one object of class {class:#x} (id {id:02x?})");
        found[0]
    }

    /// An attribute's value: its length, then the value.
    fn attribute(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        ty: CK_ATTRIBUTE_TYPE,
    ) -> Vec<u8> {
        let get = self.list().C_GetAttributeValue.unwrap();
        let mut attr = CK_ATTRIBUTE {
            type_: ty,
            pValue: ptr::null_mut(),
            ulValueLen: 0,
        };
        // SAFETY: one attribute, NULL value asks for the length.
        assert_eq!(unsafe { get(session, object, &mut attr, 1) }, CKR_OK);
        let mut value = vec![0u8; attr.ulValueLen as usize];
        attr.pValue = value.as_mut_ptr().cast();
        // SAFETY: `value` holds `ulValueLen` bytes.
        assert_eq!(unsafe { get(session, object, &mut attr, 1) }, CKR_OK);
        value.truncate(attr.ulValueLen as usize);
        value
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: the handle came from LoadLibraryW; no pointer into the DLL is used afterwards.
        unsafe { FreeLibrary(self.lib) };
    }
}

fn trimmed(field: &[u8]) -> String {
    String::from_utf8_lossy(field).trim_end().to_string()
}

#[test]
fn pkcs11_entry_points_over_winscard() {
    var("JPKI_TEST_WINSCARD_PORT");
    let m = Module::load(&var("TEST_PKCS11_MODULE"));
    let l = m.list();
    assert_eq!(
        (l.version.major, l.version.minor),
        (2, 40),
        "C_GetFunctionList gives the 2.40 list"
    );
    // SAFETY: NULL pInitArgs (no threads of the application's own).
    assert_eq!(unsafe { l.C_Initialize.unwrap()(ptr::null_mut()) }, CKR_OK);

    // The reader is there at once; its card once the virtual card has connected to it (the
    // test-only WinSCard listens from the first context on).
    let all = m.slots(false);
    assert_eq!(all.len(), 2, "one reader, two slots: {all:?}");
    let mut descriptions: Vec<String> = all
        .iter()
        .map(|s| trimmed(&{ m.slot_info(*s).slotDescription }))
        .collect();
    descriptions.sort();
    assert_eq!(
        descriptions,
        [
            format!("{READER} (Authentication)"),
            format!("{READER} (Signature)")
        ]
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let slots = loop {
        let slots = m.slots(true);
        if slots.len() == 2 || Instant::now() > deadline {
            break slots;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(slots, all, "both tokens of {READER} present within 15 s");
    let labels: Vec<String> = slots
        .iter()
        .map(|s| trimmed(&{ m.token_info(*s).label }))
        .collect();
    let mut sorted = labels.clone();
    sorted.sort();
    assert_eq!(sorted, [SIGN_LABEL, AUTH_LABEL]);
    let auth = slots[labels.iter().position(|x| x == AUTH_LABEL).unwrap()];
    let auth_flags = || m.token_info(auth).flags;
    assert_eq!(
        auth_flags() & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED),
        0,
        "all tries left at the start"
    );

    let mut session: CK_SESSION_HANDLE = 0;
    // SAFETY: valid out pointer; no callback.
    let rv = unsafe {
        l.C_OpenSession.unwrap()(
            auth,
            CKF_SERIAL_SESSION,
            ptr::null_mut(),
            None,
            &mut session,
        )
    };
    assert_eq!(rv, CKR_OK, "C_OpenSession");

    // The certificate is public: found (by its public key's CKA_ID) and read before login.
    let public = m.find(session, CKO_PUBLIC_KEY, None);
    let id = m.attribute(session, public, CKA_ID);
    let cert = m.find(session, CKO_CERTIFICATE, Some(&id));
    let cert_der = m.attribute(session, cert, CKA_VALUE);
    let cert = x509_cert::Certificate::from_der(&cert_der).expect("CKA_VALUE is a certificate");
    let public_key = rsa::RsaPublicKey::from_pkcs1_der(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .expect("an RSA key");

    // One wrong PIN, never more: the card counts it, the token's flags show it.
    assert_eq!(m.login(session, b"0000"), CKR_PIN_INCORRECT, "wrong PIN");
    let flags = auth_flags();
    assert_ne!(flags & CKF_USER_PIN_COUNT_LOW, 0, "a try lost: {flags:#x}");
    assert_eq!(flags & (CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED), 0);

    // The right PIN restores the tries.
    assert_eq!(m.login(session, b"1234"), CKR_OK, "C_Login");
    assert_eq!(
        auth_flags() & CKF_USER_PIN_COUNT_LOW,
        0,
        "the right PIN restores the tries"
    );

    let key = m.find(session, CKO_PRIVATE_KEY, Some(&id));
    let msg = b"jpki-pkcs11 over WinSCard".to_vec();
    let mut mech = CK_MECHANISM {
        mechanism: CKM_SHA256_RSA_PKCS,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut sig = vec![0u8; 512];
    let mut sig_len = sig.len() as CK_ULONG;
    let mut data = msg.clone();
    // SAFETY: valid mechanism, data and output buffers.
    unsafe {
        assert_eq!(
            l.C_SignInit.unwrap()(session, &mut mech, key),
            CKR_OK,
            "C_SignInit"
        );
        let rv = l.C_Sign.unwrap()(
            session,
            data.as_mut_ptr(),
            data.len() as CK_ULONG,
            sig.as_mut_ptr(),
            &mut sig_len,
        );
        assert_eq!(rv, CKR_OK, "C_Sign");
    }
    sig.truncate(sig_len as usize);
    assert_eq!(
        sig.len(),
        public_key.size(),
        "a signature of the key's size"
    );
    let digest = Sha256::digest(&msg);
    public_key
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .expect("the signature verifies with the certificate's key");
    let mut bad = sig.clone();
    bad[10] ^= 1;
    assert!(
        public_key
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &bad)
            .is_err(),
        "a damaged signature must not verify"
    );

    // SAFETY: a live session; NULL pReserved.
    unsafe {
        assert_eq!(l.C_Logout.unwrap()(session), CKR_OK, "C_Logout");
        assert_eq!(l.C_CloseSession.unwrap()(session), CKR_OK);
        assert_eq!(l.C_Finalize.unwrap()(ptr::null_mut()), CKR_OK, "C_Finalize");
    }
}
