//! Hostile callers, through the C entry points of both function lists: every function with NULL
//! and zero arguments before `C_Initialize`, after it and after `C_Finalize`; stale and invented
//! handles; wrong call order; zero and huge lengths; attribute templates mixing valid, invalid,
//! sensitive and short entries. Against a virtual card in this process (no PC/SC).

use super::tables::{functions, FUNCTION_LIST_2_40, FUNCTION_LIST_3_0};
use cryptoki_sys::*;
use jpki_card::inproc::InProcSystem;
use jpki_vcard::VirtualCard;
use std::mem::size_of;
use std::ptr;

/// A value for a hostile call's argument, made from one machine word: handles, lengths,
/// flags and booleans take (a truncation of) the word, every pointer is NULL.
trait Hostile {
    fn from_word(w: usize) -> Self;
}

impl Hostile for CK_ULONG {
    fn from_word(w: usize) -> Self {
        w as CK_ULONG
    }
}

impl Hostile for CK_BBOOL {
    fn from_word(w: usize) -> Self {
        w as CK_BBOOL
    }
}

impl<T> Hostile for *mut T {
    fn from_word(_: usize) -> Self {
        ptr::null_mut()
    }
}

/// A callback (`C_OpenSession`'s `Notify`): none.
impl<T> Hostile for Option<T> {
    fn from_word(_: usize) -> Self {
        None
    }
}

impl<T> Hostile for *const T {
    fn from_word(_: usize) -> Self {
        ptr::null()
    }
}

/// An entry point called with its own argument types: the first argument from the word, the
/// others from 0 (every pointer NULL). No cast of the function's type: the call is the one the C
/// signature declares.
trait CallHostile: Copy {
    /// # Safety
    ///
    /// The function must accept NULL for every pointer argument (every entry point of this
    /// module checks its pointers).
    unsafe fn call_hostile(self, first: usize) -> CK_RV;
}

macro_rules! call_hostile {
    ($first:ident $(, $rest:ident)*) => {
        impl<$first: Hostile, $($rest: Hostile),*> CallHostile
            for unsafe extern "C" fn($first, $($rest),*) -> CK_RV
        {
            unsafe fn call_hostile(self, first: usize) -> CK_RV {
                // SAFETY: the caller's contract: NULL pointers are refused before use.
                unsafe { self($first::from_word(first), $($rest::from_word(0)),*) }
            }
        }
    };
}

call_hostile!(A);
call_hostile!(A, B);
call_hostile!(A, B, C);
call_hostile!(A, B, C, D);
call_hostile!(A, B, C, D, E);
call_hostile!(A, B, C, D, E, F);
call_hostile!(A, B, C, D, E, F, G);
call_hostile!(A, B, C, D, E, F, G, H);
call_hostile!(A, B, C, D, E, F, G, H, I);

/// One entry of a function list, callable with hostile arguments.
type HostileFn = Box<dyn Fn(usize) -> CK_RV>;

fn hostile<F: CallHostile + 'static>(f: Option<F>) -> HostileFn {
    let f = f.expect("every slot of both lists is filled");
    // SAFETY: every entry point of this module refuses NULL pointers before using them.
    Box::new(move |w| unsafe { f.call_hostile(w) })
}

macro_rules! hostile_calls {
    ([$($f:ident),* $(,)?] [$($added:ident),* $(,)?]) => {
        vec![
            $((concat!("2.40 ", stringify!($f)), hostile(FUNCTION_LIST_2_40.$f)),)*
            $((concat!("3.0 ", stringify!($f)), hostile(FUNCTION_LIST_3_0.$f)),)*
            $((concat!("3.0 ", stringify!($added)), hostile(FUNCTION_LIST_3_0.$added)),)*
        ]
    };
}

/// Every function of both lists, by name (`"2.40 C_Login"`, `"3.0 C_LoginUser"`), generated
/// from the same list as the tables.
fn all_functions() -> Vec<(&'static str, HostileFn)> {
    functions!(hostile_calls)
}

/// The functions the hostile loops leave out: those that change the module's state or hand out
/// the lists themselves.
fn skip(name: &str) -> bool {
    let f = name.split(' ').nth(1).unwrap_or(name);
    matches!(
        f,
        "C_Initialize"
            | "C_Finalize"
            | "C_GetFunctionList"
            | "C_GetInterfaceList"
            | "C_GetInterface"
    )
}

type Card = std::sync::Arc<parking_lot::Mutex<VirtualCard>>;

fn with_module<T>(card: bool, f: impl FnOnce(Option<Card>) -> T) -> T {
    let _g = crate::backend::TEST_LOCK.lock();
    let _ = crate::backend::finalize();
    let sys = InProcSystem::new(&["Hostile Reader 00"]);
    let c = card.then(|| sys.insert(0, VirtualCard::in_memory()));
    crate::backend::use_card_system(Some(sys.clone()));
    let r = f(c);
    let _ = crate::backend::finalize();
    crate::backend::use_card_system(None);
    r
}

#[test]
fn every_function_of_both_lists_before_and_after_finalize() {
    with_module(true, |_| {
        let all = all_functions();
        assert_eq!(all.len(), 68 + 92, "both lists, every function");
        for args in [0usize, usize::MAX] {
            for (name, f) in &all {
                if skip(name) {
                    continue;
                }
                let rv = f(args);
                assert_eq!(
                    rv, CKR_CRYPTOKI_NOT_INITIALIZED,
                    "{name} before C_Initialize"
                );
            }
        }
        // SAFETY: NULL init args; then NULL reserved.
        unsafe {
            assert_eq!(super::general::C_Initialize(ptr::null_mut()), CKR_OK);
            assert_eq!(super::general::C_Finalize(ptr::null_mut()), CKR_OK);
        }
        for (name, f) in &all {
            if skip(name) {
                continue;
            }
            let rv = f(1);
            assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED, "{name} after C_Finalize");
        }
    });
}

/// Every function with NULL pointers and zero/invented handles once initialized, with a card
/// and open sessions: an error code (never a crash, never CKR_OK with NULL outputs) and the
/// module still works afterwards.
#[test]
fn every_function_with_null_arguments_and_invented_handles() {
    with_module(true, |_| {
        // SAFETY: NULL init args.
        let rv = unsafe { super::general::C_Initialize(ptr::null_mut()) };
        assert_eq!(rv, CKR_OK);
        crate::backend::get_slot_list(false).unwrap();
        let h = crate::backend::open_session(0, CKF_SERIAL_SESSION).unwrap();
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
        let all = all_functions();
        for first in [0usize, h as usize, 0xDEAD, usize::MAX, 0xFFFF_FFFF] {
            for (name, f) in &all {
                if skip(name) {
                    continue;
                }
                let rv = f(first);
                if !allowed.contains(&rv) {
                    unexpected.push(format!("{name}({first:#x}) -> {rv:#x}"));
                }
                if rv == CKR_OK {
                    ok_with.push((*name, first));
                }
            }
        }
        assert!(unexpected.is_empty(), "{unexpected:#?}");
        // Only functions that need no pointer may succeed with NULLs: C_CloseSession and
        // C_CloseAllSessions (C_Logout is refused: not logged in; C_FindObjectsFinal: not
        // initialized; ...).
        for (name, first) in &ok_with {
            assert!(
                name.ends_with(" C_CloseSession") || name.ends_with(" C_CloseAllSessions"),
                "{name} returned CKR_OK with NULL arguments (first {first:#x})"
            );
        }
        // The module still works.
        let s = crate::backend::open_session(1, CKF_SERIAL_SESSION).unwrap();
        crate::backend::get_session_info(s).unwrap();
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
        crate::backend::initialize().unwrap();
        crate::backend::get_slot_list(false).unwrap();
        let h = crate::backend::open_session(0, CKF_SERIAL_SESSION).unwrap();
        crate::backend::login(h, CKU_USER, Some(b"1234")).unwrap();
        let key =
            crate::token::objects::ObjectKind::PrivateKey.handle(jpki_card::jpki::KeyPair::Auth);
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
        assert_eq!(
            { t[1].ulValueLen },
            CK_UNAVAILABLE_INFORMATION,
            "unknown type"
        );
        assert_eq!({ t[2].ulValueLen }, CK_UNAVAILABLE_INFORMATION, "sensitive");
        assert!(private_exp.iter().all(|b| *b == 0), "nothing leaked");
        assert_eq!({ t[3].ulValueLen }, CK_UNAVAILABLE_INFORMATION, "too short");
        assert_eq!({ t[4].ulValueLen }, "User Authentication".len() as CK_ULONG);
        assert_eq!({ t[5].ulValueLen }, "User Authentication".len() as CK_ULONG);
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
        crate::backend::logout(h).unwrap();
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
        crate::backend::initialize().unwrap();
        crate::backend::get_slot_list(false).unwrap();
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
            let key = crate::token::objects::ObjectKind::PrivateKey
                .handle(jpki_card::jpki::KeyPair::Auth);
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
