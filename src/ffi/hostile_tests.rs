//! Hostile callers, through the C entry points of both function lists: every function with NULL
//! and zero arguments before `C_Initialize`, after it and after `C_Finalize`; stale and invented
//! handles; wrong call order; zero and huge lengths; attribute templates mixing valid, invalid,
//! sensitive and short entries. Against a virtual card in this process (no PC/SC).

use super::tables::*;
use crate::card::inproc::InProcSystem;
use crate::vcard::VirtualCard;
use cryptoki_sys::*;
use std::mem::size_of;
use std::ptr;

/// Any entry point, called with ten integer/pointer arguments (x86-64 System V: the extra ones
/// are ignored by the callee, the caller cleans the stack).
type AnyFn = unsafe extern "C" fn(
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
) -> CK_RV;

/// The function pointers of a function list, in order, with their index.
fn entries<T>(table: &T) -> Vec<AnyFn> {
    let first = size_of::<usize>();
    let n = (size_of::<T>() - first) / size_of::<usize>();
    (0..n)
        .map(|i| {
            // SAFETY: `table` is a repr(C) function list: word i+1 is the i-th `Option<fn>`,
            // every slot is filled (tested in `ffi::tests`), and all our entry points take only
            // integer and pointer arguments.
            unsafe {
                let p = ptr::read((table as *const T).cast::<usize>().add(1 + i));
                assert_ne!(p, 0);
                std::mem::transmute::<usize, AnyFn>(p)
            }
        })
        .collect()
}

/// Index of C_Initialize, C_Finalize, C_GetFunctionList in both lists; C_GetInterfaceList and
/// C_GetInterface in the 3.0 list.
const C_INITIALIZE: usize = 0;
const C_FINALIZE: usize = 1;
const C_GET_FUNCTION_LIST: usize = 3;
const C_GET_INTERFACE_LIST: usize = 68;
const C_GET_INTERFACE: usize = 69;

fn skip(i: usize) -> bool {
    matches!(
        i,
        C_INITIALIZE | C_FINALIZE | C_GET_FUNCTION_LIST | C_GET_INTERFACE_LIST | C_GET_INTERFACE
    )
}

type Card = std::sync::Arc<parking_lot::Mutex<VirtualCard>>;

fn with_module<T>(card: bool, f: impl FnOnce(Option<Card>) -> T) -> T {
    let _g = crate::state::TEST_LOCK.lock();
    let _ = crate::api::finalize();
    let sys = InProcSystem::new(&["Hostile Reader 00"]);
    let c = card.then(|| sys.insert(0, VirtualCard::in_memory()));
    crate::state::use_card_system(Some(sys.clone()));
    let r = f(c);
    let _ = crate::api::finalize();
    crate::state::use_card_system(None);
    r
}

fn all_functions() -> Vec<(usize, AnyFn)> {
    let mut v: Vec<(usize, AnyFn)> = entries(&FUNCTION_LIST_2_40)
        .into_iter()
        .enumerate()
        .collect();
    v.extend(entries(&FUNCTION_LIST_3_0).into_iter().enumerate());
    v
}

#[cfg(all(target_arch = "x86_64", unix))]
#[test]
fn every_function_of_both_lists_before_and_after_finalize() {
    with_module(true, |_| {
        for args in [0usize, usize::MAX] {
            // SAFETY: NULL (0) pointers are refused before use; the all-ones pattern is only
            // ever a handle or a length because the not-initialized check comes first.
            for (i, f) in all_functions() {
                if skip(i) || (i == 2 && args != 0) {
                    continue;
                }
                // SAFETY: every pointer is NULL; not-initialized is checked before anything else.
                let rv = unsafe { f(args, 0, 0, 0, 0, 0, 0, 0, 0, 0) };
                assert_eq!(
                    rv, CKR_CRYPTOKI_NOT_INITIALIZED,
                    "function #{i} before C_Initialize"
                );
            }
        }
        // SAFETY: NULL init args; then NULL reserved.
        unsafe {
            assert_eq!(super::general::C_Initialize(ptr::null_mut()), CKR_OK);
            assert_eq!(super::general::C_Finalize(ptr::null_mut()), CKR_OK);
        }
        for (i, f) in all_functions() {
            if skip(i) {
                continue;
            }
            // SAFETY: as above.
            let rv = unsafe { f(1, 0, 0, 0, 0, 0, 0, 0, 0, 0) };
            assert_eq!(
                rv, CKR_CRYPTOKI_NOT_INITIALIZED,
                "function #{i} after C_Finalize"
            );
        }
    });
}

/// Every function with NULL pointers and zero/invented handles once initialized, with a card
/// and open sessions: an error code (never a crash, never CKR_OK with NULL outputs) and the
/// module still works afterwards.
#[cfg(all(target_arch = "x86_64", unix))]
#[test]
fn every_function_with_null_arguments_and_invented_handles() {
    with_module(true, |_| {
        // SAFETY: NULL init args.
        let rv = unsafe { super::general::C_Initialize(ptr::null_mut()) };
        assert_eq!(rv, CKR_OK);
        crate::api::get_slot_list(false).unwrap();
        let h = crate::api::open_session(0, CKF_SERIAL_SESSION).unwrap();
        let allowed = [
            CKR_ARGUMENTS_BAD,
            CKR_SESSION_HANDLE_INVALID,
            CKR_SLOT_ID_INVALID,
            CKR_FUNCTION_NOT_SUPPORTED,
            CKR_OPERATION_NOT_INITIALIZED,
            CKR_USER_TYPE_INVALID,
            CKR_CRYPTOKI_ALREADY_INITIALIZED,
            CKR_TOKEN_WRITE_PROTECTED,
            CKR_FUNCTION_NOT_PARALLEL,
            CKR_OK,
        ];
        let mut unexpected = Vec::new();
        let mut ok_with = Vec::new();
        for first in [0usize, h as usize, 0xDEAD, usize::MAX, 0xFFFF_FFFF] {
            for (i, f) in all_functions() {
                // C_GetInfo's first argument is its output pointer.
                if skip(i) || (i == 2 && first != 0) {
                    continue;
                }
                // SAFETY: every pointer argument is NULL (0), which each entry point refuses
                // before use or does not read.
                let rv = unsafe { f(first, 0, 0, 0, 0, 0, 0, 0, 0, 0) };
                if !allowed.contains(&rv) {
                    unexpected.push(format!("#{i}({first:#x}) -> {rv:#x}"));
                }
                if rv == CKR_OK {
                    ok_with.push((i, first));
                }
            }
        }
        assert!(unexpected.is_empty(), "{unexpected:#?}");
        // Only functions that need no pointer may succeed with NULLs: C_CloseSession,
        // C_CloseAllSessions (index 13/14), C_Logout (20) is refused, C_FindObjectsFinal is
        // refused (not initialized), ...
        for (i, first) in &ok_with {
            assert!(
                matches!(i, 13 | 14),
                "function #{i} returned CKR_OK with NULL arguments (first {first:#x})"
            );
        }
        // The module still works.
        let s = crate::api::open_session(1, CKF_SERIAL_SESSION).unwrap();
        crate::api::get_session_info(s).unwrap();
    });
}

fn attr(ty: CK_ATTRIBUTE_TYPE, buf: &mut [u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: ty,
        pValue: if buf.is_empty() {
            ptr::null_mut()
        } else {
            buf.as_mut_ptr().cast()
        },
        ulValueLen: buf.len() as CK_ULONG,
    }
}

/// A template mixing a valid entry, an unknown type, a sensitive one, one too short and a
/// length query: every entry gets the spec's answer and the call the most serious code.
#[test]
fn attribute_templates_mixing_entries() {
    use super::object::C_GetAttributeValue;
    with_module(true, |_| {
        crate::api::initialize().unwrap();
        crate::api::get_slot_list(false).unwrap();
        let h = crate::api::open_session(0, CKF_SERIAL_SESSION).unwrap();
        crate::api::login(h, CKU_USER, Some(b"1234")).unwrap();
        let key = crate::token::objects::Obj::PrivateKey.handle(crate::card::jpki::KeyRef::Auth);
        let mut class = [0u8; size_of::<CK_ULONG>()];
        let mut bogus = [0u8; 8];
        let mut private_exp = [0u8; 512];
        let mut short_modulus = [0u8; 10];
        let mut label = [0u8; 64];
        let mut t = [
            attr(CKA_CLASS, &mut class),
            attr(0x7777_7777, &mut bogus),
            attr(CKA_PRIVATE_EXPONENT, &mut private_exp),
            attr(CKA_MODULUS, &mut short_modulus),
            attr(CKA_LABEL, &mut []),
            attr(CKA_LABEL, &mut label),
        ];
        // SAFETY: every entry points into a live buffer of its length (or NULL).
        let rv = unsafe { C_GetAttributeValue(h, key, t.as_mut_ptr(), t.len() as CK_ULONG) };
        assert!(
            [
                CKR_ATTRIBUTE_SENSITIVE,
                CKR_ATTRIBUTE_TYPE_INVALID,
                CKR_BUFFER_TOO_SMALL
            ]
            .contains(&rv),
            "{rv:#x}"
        );
        assert_eq!(t[0].ulValueLen as usize, size_of::<CK_ULONG>());
        assert_eq!(CK_ULONG::from_ne_bytes(class), CKO_PRIVATE_KEY);
        assert_eq!(t[1].ulValueLen, CK_UNAVAILABLE_INFORMATION, "unknown type");
        assert_eq!(t[2].ulValueLen, CK_UNAVAILABLE_INFORMATION, "sensitive");
        assert!(private_exp.iter().all(|b| *b == 0), "nothing leaked");
        assert_eq!(t[3].ulValueLen, CK_UNAVAILABLE_INFORMATION, "too short");
        assert_eq!(t[4].ulValueLen, "User Authentication".len() as CK_ULONG);
        assert_eq!(t[5].ulValueLen, "User Authentication".len() as CK_ULONG);
        assert_eq!(&label[..19], b"User Authentication");
        // Zero entries: fine. NULL with a count: refused. A huge count with NULL: refused.
        // SAFETY: NULL template, checked.
        unsafe {
            assert_eq!(C_GetAttributeValue(h, key, ptr::null_mut(), 0), CKR_OK);
            assert_eq!(
                C_GetAttributeValue(h, key, ptr::null_mut(), 1),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(
                C_GetAttributeValue(h, key, ptr::null_mut(), CK_ULONG::MAX),
                CKR_ARGUMENTS_BAD
            );
        }
        // Invented, stale and other-token object handles.
        let mut one = [attr(CKA_CLASS, &mut class)];
        for o in [0, 99, CK_ULONG::MAX, 13] {
            // SAFETY: `one` is a valid one-entry template.
            let rv = unsafe { C_GetAttributeValue(h, o, one.as_mut_ptr(), 1) };
            assert_eq!(rv, CKR_OBJECT_HANDLE_INVALID, "object {o}");
        }
        crate::api::logout(h).unwrap();
        // SAFETY: as above.
        let rv = unsafe { C_GetAttributeValue(h, key, one.as_mut_ptr(), 1) };
        assert_eq!(rv, CKR_OBJECT_HANDLE_INVALID, "private key after logout");
    });
}

/// Stale and invented session handles, wrong call order, zero and huge lengths.
#[test]
fn handles_order_and_lengths() {
    use super::object::{C_FindObjects, C_FindObjectsFinal, C_FindObjectsInit};
    use super::random::C_GenerateRandom;
    use super::session::*;
    use super::sign::*;
    with_module(true, |card| {
        crate::api::initialize().unwrap();
        crate::api::get_slot_list(false).unwrap();
        let mut h: CK_SESSION_HANDLE = 0;
        // SAFETY: valid pointers to locals throughout; NULLs where the test says so.
        unsafe {
            assert_eq!(
                C_OpenSession(0, CKF_RW_SESSION, ptr::null_mut(), None, &mut h),
                CKR_SESSION_PARALLEL_NOT_SUPPORTED
            );
            assert_eq!(
                C_OpenSession(7, CKF_SERIAL_SESSION, ptr::null_mut(), None, &mut h),
                CKR_SLOT_ID_INVALID
            );
            assert_eq!(
                C_OpenSession(0, CKF_SERIAL_SESSION, ptr::null_mut(), None, &mut h),
                CKR_OK
            );
            // Wrong order.
            let mut sig = [0u8; 256];
            let mut len = sig.len() as CK_ULONG;
            let mut data = *b"data";
            assert_eq!(
                C_Sign(h, data.as_mut_ptr(), 4, sig.as_mut_ptr(), &mut len),
                CKR_OPERATION_NOT_INITIALIZED
            );
            assert_eq!(
                C_SignUpdate(h, data.as_mut_ptr(), 4),
                CKR_OPERATION_NOT_INITIALIZED
            );
            assert_eq!(
                C_SignFinal(h, sig.as_mut_ptr(), &mut len),
                CKR_OPERATION_NOT_INITIALIZED
            );
            let mut found = [0 as CK_OBJECT_HANDLE; 4];
            let mut n: CK_ULONG = 0;
            assert_eq!(
                C_FindObjects(h, found.as_mut_ptr(), 4, &mut n),
                CKR_OPERATION_NOT_INITIALIZED
            );
            assert_eq!(C_FindObjectsFinal(h), CKR_OPERATION_NOT_INITIALIZED);
            assert_eq!(C_FindObjectsInit(h, ptr::null_mut(), 0), CKR_OK);
            assert_eq!(
                C_FindObjectsInit(h, ptr::null_mut(), 0),
                CKR_OPERATION_ACTIVE
            );
            // Zero and huge maximum counts.
            assert_eq!(C_FindObjects(h, found.as_mut_ptr(), 0, &mut n), CKR_OK);
            assert_eq!(n, 0);
            assert_eq!(
                C_FindObjects(h, ptr::null_mut(), 4, &mut n),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(C_FindObjectsFinal(h), CKR_OK);
            assert_eq!(C_Logout(h), CKR_USER_NOT_LOGGED_IN);
            assert_eq!(
                C_Login(h, CKU_CONTEXT_SPECIFIC, b"1234".as_ptr().cast_mut(), 4),
                CKR_OPERATION_NOT_INITIALIZED
            );
            // PIN lengths: zero, huge with NULL, too long.
            assert_eq!(C_Login(h, CKU_USER, ptr::null_mut(), 0), CKR_ARGUMENTS_BAD);
            assert_eq!(
                C_Login(h, CKU_USER, ptr::null_mut(), CK_ULONG::MAX),
                CKR_ARGUMENTS_BAD
            );
            let mut long_pin = [b'1'; 1000];
            assert_eq!(
                C_Login(h, CKU_USER, long_pin.as_mut_ptr(), 1000),
                CKR_PIN_INCORRECT
            );
            assert_eq!(
                C_Login(h, CKU_USER, long_pin.as_mut_ptr(), 0),
                CKR_PIN_INCORRECT
            );
            assert_eq!(
                C_Login(h, 77, long_pin.as_mut_ptr(), 4),
                CKR_USER_TYPE_INVALID
            );
            assert_eq!(
                card.as_ref().unwrap().lock().tries_left(),
                (3, 5),
                "no PIN reached the card"
            );
            // Random: zero and huge lengths.
            assert_eq!(C_GenerateRandom(h, ptr::null_mut(), 0), CKR_OK);
            assert_eq!(
                C_GenerateRandom(h, ptr::null_mut(), CK_ULONG::MAX),
                CKR_ARGUMENTS_BAD
            );
            // Sign: zero-length data, then a stale session.
            assert_eq!(C_Login(h, CKU_USER, b"1234".as_ptr().cast_mut(), 4), CKR_OK);
            let key =
                crate::token::objects::Obj::PrivateKey.handle(crate::card::jpki::KeyRef::Auth);
            let mut m = CK_MECHANISM {
                mechanism: CKM_RSA_PKCS,
                pParameter: ptr::null_mut(),
                ulParameterLen: 0,
            };
            assert_eq!(C_SignInit(h, &mut m, key), CKR_OK);
            assert_eq!(C_SignInit(h, &mut m, key), CKR_OPERATION_ACTIVE);
            assert_eq!(
                C_Sign(h, data.as_mut_ptr(), 0, sig.as_mut_ptr(), &mut len),
                CKR_DATA_LEN_RANGE
            );
            // A mechanism parameter where none belongs, a huge parameter length with NULL.
            m.ulParameterLen = CK_ULONG::MAX;
            assert_eq!(C_SignInit(h, &mut m, key), CKR_ARGUMENTS_BAD);
            assert_eq!(C_CloseSession(h), CKR_OK);
            assert_eq!(C_CloseSession(h), CKR_SESSION_HANDLE_INVALID);
            assert_eq!(
                C_Sign(h, data.as_mut_ptr(), 4, sig.as_mut_ptr(), &mut len),
                CKR_SESSION_HANDLE_INVALID
            );
            let mut info = CK_SESSION_INFO::default();
            for bad in [0, h, h + 1000, CK_ULONG::MAX] {
                assert_eq!(
                    C_GetSessionInfo(bad, &mut info),
                    CKR_SESSION_HANDLE_INVALID,
                    "session {bad}"
                );
            }
        }
    });
}
