//! FFI contract tests: the function tables, the interface functions, `C_Initialize` argument
//! checking, the order of checks (not-initialized before pointers), NULL arguments, and the
//! panic guard. Tests that touch the global module state hold `backend::TEST_LOCK` and install a card system
//! with one empty reader, so they never reach PC/SC.

use super::general::*;
use super::slot_token::C_GetSlotList;
use super::tables::*;
use super::*;
use cryptoki_sys::*;
use jpki_card::Error;
use jpki_card::{CardChannel, CardSystem, ReaderStatus};
use std::ffi::c_void;
use std::mem::size_of;
use std::ptr;
use std::sync::Arc;

macro_rules! null {
    () => {
        std::ptr::null_mut()
    };
}

/// One reader, never a card.
struct EmptyReader;

impl CardSystem for EmptyReader {
    fn list_readers(&self) -> Vec<String> {
        vec!["Test Reader 00".into()]
    }
    fn reader_status(&self, _reader: &str) -> ReaderStatus {
        ReaderStatus {
            present: false,
            events: 0,
        }
    }
    fn connect(&self, _reader: &str) -> Result<Box<dyn CardChannel>, Error> {
        Err(Error::NoCard)
    }
}

/// Takes the lock and leaves the module finalized, with the fake card system for the next
/// `C_Initialize`.
fn fresh() -> parking_lot::MutexGuard<'static, ()> {
    let guard = crate::backend::TEST_LOCK.lock();
    crate::backend::use_card_system(Some(Arc::new(EmptyReader)));
    // SAFETY: NULL pReserved.
    let _ = unsafe { C_Finalize(ptr::null_mut()) };
    guard
}

/// `fresh()` and then `C_Initialize(NULL)`.
fn initialized() -> parking_lot::MutexGuard<'static, ()> {
    let guard = fresh();
    // SAFETY: NULL pInitArgs.
    assert_eq!(unsafe { C_Initialize(ptr::null_mut()) }, CKR_OK);
    guard
}

// ---------------------------------------------------------------------------------------------
// Tables

/// Reads the function-pointer slots of a function list as raw words (an `Option<fn>` is one
/// pointer, NULL for `None`). `first` is the offset of the first slot: after the 2-byte version,
/// padded to pointer alignment on Unix, right after it on Windows (packed structures).
fn slots<T>(table: &T, first: usize) -> Vec<usize> {
    let n = (size_of::<T>() - first) / size_of::<usize>();
    assert_eq!(size_of::<T>(), first + n * size_of::<usize>());
    (0..n)
        .map(|i| {
            // SAFETY: `table` is a repr(C) function list: the i-th Option<fn> slot is at
            // `first + i * size_of::<usize>()`, inside the struct; the read is unaligned.
            unsafe {
                ptr::read_unaligned(
                    (table as *const T)
                        .cast::<u8>()
                        .add(first + i * size_of::<usize>())
                        .cast::<usize>(),
                )
            }
        })
        .collect()
}

#[test]
fn every_slot_of_both_tables_is_filled() {
    let v2 = slots(
        &FUNCTION_LIST_2_40,
        std::mem::offset_of!(CK_FUNCTION_LIST, C_Initialize),
    );
    let v3 = slots(
        &FUNCTION_LIST_3_0,
        std::mem::offset_of!(CK_FUNCTION_LIST_3_0, C_Initialize),
    );
    let padded = if cfg!(windows) { 2 } else { size_of::<usize>() };
    assert_eq!(
        std::mem::offset_of!(CK_FUNCTION_LIST, C_Initialize),
        padded,
        "the slots start right after the version on Windows (packed), aligned elsewhere"
    );
    assert_eq!(v2.len(), 68);
    assert_eq!(v3.len(), 92);
    assert!(v2.iter().all(|p| *p != 0), "a 2.40 slot is None");
    assert!(v3.iter().all(|p| *p != 0), "a 3.0 slot is None");
    // The 3.0 table starts with the 2.40 layout; only C_GetInfo differs (it reports 3.0).
    let diff: Vec<usize> = (0..v2.len()).filter(|i| v2[*i] != v3[*i]).collect();
    assert_eq!(diff, vec![2]);
}

#[test]
fn table_versions() {
    assert_eq!(
        (
            FUNCTION_LIST_2_40.version.major,
            FUNCTION_LIST_2_40.version.minor
        ),
        (2, 40)
    );
    assert_eq!(
        (
            FUNCTION_LIST_3_0.version.major,
            FUNCTION_LIST_3_0.version.minor
        ),
        (3, 0)
    );
}

#[test]
fn each_table_reports_its_version_in_get_info() {
    let _g = initialized();
    for (get_info, want) in [
        (FUNCTION_LIST_2_40.C_GetInfo.unwrap(), (2, 40)),
        (FUNCTION_LIST_3_0.C_GetInfo.unwrap(), (3, 0)),
    ] {
        let mut info = CK_INFO::default();
        // SAFETY: `info` is a valid CK_INFO.
        assert_eq!(unsafe { get_info(&mut info) }, CKR_OK);
        assert_eq!(
            (info.cryptokiVersion.major, info.cryptokiVersion.minor),
            want
        );
        assert_eq!({ info.flags }, 0);
        assert!(info.manufacturerID.iter().all(|c| *c != 0));
        assert!(info.libraryDescription.iter().all(|c| *c != 0));
    }
    // SAFETY: NULL is checked.
    assert_eq!(unsafe { C_GetInfo(ptr::null_mut()) }, CKR_ARGUMENTS_BAD);
}

// ---------------------------------------------------------------------------------------------
// C_GetFunctionList, C_GetInterfaceList, C_GetInterface (no initialization needed)

#[test]
fn get_function_list() {
    // SAFETY: NULL is checked.
    let rv = unsafe { C_GetFunctionList(ptr::null_mut()) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
    let mut p: *mut CK_FUNCTION_LIST = ptr::null_mut();
    // SAFETY: `p` is valid for writing a pointer.
    assert_eq!(unsafe { C_GetFunctionList(&mut p) }, CKR_OK);
    assert_eq!(p.cast_const(), ptr::addr_of!(FUNCTION_LIST_2_40));
}

fn name_of(iface: &CK_INTERFACE) -> &[u8] {
    // SAFETY: our interface names are NUL-terminated statics.
    unsafe { std::ffi::CStr::from_ptr(iface.pInterfaceName.cast()) }.to_bytes()
}

fn version_of(iface: &CK_INTERFACE) -> (u8, u8) {
    // SAFETY: pFunctionList points to one of our tables, which start with a CK_VERSION.
    let v = unsafe { *iface.pFunctionList.cast::<CK_VERSION>() };
    (v.major, v.minor)
}

#[test]
fn get_interface_list_two_call() {
    // SAFETY: NULL pulCount is checked.
    let rv = unsafe { C_GetInterfaceList(ptr::null_mut(), ptr::null_mut()) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);

    let mut n: CK_ULONG = 0;
    // SAFETY: NULL list, `n` valid.
    let rv = unsafe { C_GetInterfaceList(ptr::null_mut(), &mut n) };
    assert_eq!(rv, CKR_OK);
    assert_eq!(n, 2);

    let empty = CK_INTERFACE {
        pInterfaceName: ptr::null_mut(),
        pFunctionList: ptr::null_mut(),
        flags: 0,
    };
    let mut list = [empty; 2];
    let mut n: CK_ULONG = 1;
    // SAFETY: `list` has room for `n` entries.
    let rv = unsafe { C_GetInterfaceList(list.as_mut_ptr(), &mut n) };
    assert_eq!(rv, CKR_BUFFER_TOO_SMALL);
    assert_eq!(n, 2);
    assert!(
        list[0].pFunctionList.is_null(),
        "nothing written into a short buffer"
    );

    let mut n: CK_ULONG = 2;
    // SAFETY: `list` has room for `n` entries.
    let rv = unsafe { C_GetInterfaceList(list.as_mut_ptr(), &mut n) };
    assert_eq!(rv, CKR_OK);
    assert_eq!(n, 2);
    for (iface, want) in list.iter().zip([(3, 0), (2, 40)]) {
        assert_eq!(name_of(iface), b"PKCS 11");
        assert_eq!({ iface.flags }, 0);
        assert_eq!(version_of(iface), want);
    }
}

/// Calls C_GetInterface and returns (rv, version of the interface found).
fn get_interface(
    name: Option<&[u8]>,
    version: Option<(u8, u8)>,
    flags: CK_FLAGS,
) -> (CK_RV, Option<(u8, u8)>) {
    let mut name_buf = name.map(|n| {
        let mut v = n.to_vec();
        v.push(0);
        v
    });
    let name_ptr = name_buf
        .as_mut()
        .map_or(ptr::null_mut(), |v| v.as_mut_ptr());
    let mut ver = version.map(|(major, minor)| CK_VERSION { major, minor });
    let ver_ptr = ver
        .as_mut()
        .map_or(ptr::null_mut(), |v| v as *mut CK_VERSION);
    let mut out: *mut CK_INTERFACE = ptr::null_mut();
    // SAFETY: every pointer is NULL or valid.
    let rv = unsafe { C_GetInterface(name_ptr, ver_ptr, &mut out, flags) };
    // SAFETY: a non-NULL result points into our static interface list.
    let found = (!out.is_null()).then(|| version_of(unsafe { &*out }));
    (rv, found)
}

#[test]
fn get_interface_cases() {
    // NULL ppInterface.
    // SAFETY: NULL is checked.
    let rv = unsafe { C_GetInterface(ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), 0) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
    // Defaults: NULL name and NULL version give the default interface, 3.0.
    assert_eq!(get_interface(None, None, 0), (CKR_OK, Some((3, 0))));
    assert_eq!(
        get_interface(Some(b"PKCS 11"), None, 0),
        (CKR_OK, Some((3, 0)))
    );
    // By version.
    assert_eq!(
        get_interface(Some(b"PKCS 11"), Some((3, 0)), 0),
        (CKR_OK, Some((3, 0)))
    );
    assert_eq!(
        get_interface(Some(b"PKCS 11"), Some((2, 40)), 0),
        (CKR_OK, Some((2, 40)))
    );
    assert_eq!(
        get_interface(None, Some((2, 40)), 0),
        (CKR_OK, Some((2, 40)))
    );
    assert_eq!(
        get_interface(Some(b"PKCS 11"), Some((3, 1)), 0),
        (CKR_ARGUMENTS_BAD, None)
    );
    assert_eq!(
        get_interface(Some(b"PKCS 11"), Some((2, 20)), 0),
        (CKR_ARGUMENTS_BAD, None)
    );
    // Unknown names (exact match only).
    assert_eq!(
        get_interface(Some(b"Vendor XYZ"), None, 0),
        (CKR_ARGUMENTS_BAD, None)
    );
    assert_eq!(
        get_interface(Some(b"PKCS 11 "), None, 0),
        (CKR_ARGUMENTS_BAD, None)
    );
    assert_eq!(get_interface(Some(b""), None, 0), (CKR_ARGUMENTS_BAD, None));
    // Flags: we do not claim fork safety, so NSS's first request finds nothing and its retry
    // with flags 0 succeeds.
    let fork = CKF_INTERFACE_FORK_SAFE;
    assert_eq!(
        get_interface(Some(b"PKCS 11"), None, fork),
        (CKR_ARGUMENTS_BAD, None)
    );
    assert_eq!(
        get_interface(None, Some((3, 0)), fork),
        (CKR_ARGUMENTS_BAD, None)
    );
}

#[test]
fn interface_found_is_the_listed_one() {
    let (rv, _) = get_interface(None, None, 0);
    assert_eq!(rv, CKR_OK);
    let mut out: *mut CK_INTERFACE = ptr::null_mut();
    // SAFETY: valid out pointer.
    unsafe { C_GetInterface(ptr::null_mut(), ptr::null_mut(), &mut out, 0) };
    assert_eq!(out.cast_const(), ptr::addr_of!(INTERFACES.0[0]));
    assert_eq!(
        INTERFACES.0[0].pFunctionList.cast_const(),
        ptr::addr_of!(FUNCTION_LIST_3_0).cast()
    );
    // The version array used for matching agrees with the tables.
    for (iface, v) in INTERFACES.0.iter().zip(INTERFACES.1.iter()) {
        assert_eq!(version_of(iface), (v.major, v.minor));
    }
}

// ---------------------------------------------------------------------------------------------
// C_Initialize / C_Finalize

type CreateMutex = unsafe extern "C" fn(*mut *mut c_void) -> CK_RV;
type MutexOp = unsafe extern "C" fn(*mut c_void) -> CK_RV;

unsafe extern "C" fn create_mutex(_: *mut *mut c_void) -> CK_RV {
    CKR_OK
}
unsafe extern "C" fn mutex_op(_: *mut c_void) -> CK_RV {
    CKR_OK
}

fn init_args(callbacks: [bool; 4], flags: CK_FLAGS) -> CK_C_INITIALIZE_ARGS {
    CK_C_INITIALIZE_ARGS {
        CreateMutex: callbacks[0].then_some(create_mutex as CreateMutex),
        DestroyMutex: callbacks[1].then_some(mutex_op as MutexOp),
        LockMutex: callbacks[2].then_some(mutex_op as MutexOp),
        UnlockMutex: callbacks[3].then_some(mutex_op as MutexOp),
        flags,
        pReserved: ptr::null_mut(),
    }
}

fn initialize_with(mut args: CK_C_INITIALIZE_ARGS) -> CK_RV {
    // SAFETY: `args` is a valid CK_C_INITIALIZE_ARGS.
    unsafe { C_Initialize(ptr::addr_of_mut!(args).cast()) }
}

fn finalize() -> CK_RV {
    // SAFETY: NULL pReserved.
    unsafe { C_Finalize(ptr::null_mut()) }
}

#[test]
fn init_args_checks_without_state() {
    let none = [false; 4];
    let all = [true; 4];
    let ok = |a: &CK_C_INITIALIZE_ARGS| check_init_args(a);
    // Case 1: no callbacks, no flag.
    assert_eq!(ok(&init_args(none, 0)), Ok(()));
    // Case 2: no callbacks, OS locking.
    assert_eq!(ok(&init_args(none, CKF_OS_LOCKING_OK)), Ok(()));
    // Case 3: callbacks only: we cannot use them.
    assert_eq!(ok(&init_args(all, 0)), Err(CkError::CantLock));
    // Case 4: callbacks and OS locking: we use our own locks.
    assert_eq!(ok(&init_args(all, CKF_OS_LOCKING_OK)), Ok(()));
    // No OS threads wanted: fine, we create none.
    assert_eq!(
        ok(&init_args(none, CKF_LIBRARY_CANT_CREATE_OS_THREADS)),
        Ok(())
    );
    // Partial callbacks, with or without the flag.
    for i in 0..4 {
        let mut some = [false; 4];
        some[i] = true;
        assert_eq!(ok(&init_args(some, 0)), Err(CkError::ArgumentsBad));
        assert_eq!(
            ok(&init_args(some, CKF_OS_LOCKING_OK)),
            Err(CkError::ArgumentsBad)
        );
        let mut all_but = [true; 4];
        all_but[i] = false;
        assert_eq!(
            ok(&init_args(all_but, CKF_OS_LOCKING_OK)),
            Err(CkError::ArgumentsBad)
        );
    }
    // pReserved.
    let mut reserved = 0u8;
    let mut a = init_args(none, CKF_OS_LOCKING_OK);
    a.pReserved = ptr::addr_of_mut!(reserved).cast();
    assert_eq!(ok(&a), Err(CkError::ArgumentsBad));
}

#[test]
fn initialize_locking_cases() {
    let _g = fresh();
    let none = [false; 4];
    let all = [true; 4];
    // Refusals happen before the module is touched: it stays uninitialized.
    assert_eq!(initialize_with(init_args(all, 0)), CKR_CANT_LOCK);
    assert_eq!(
        initialize_with(init_args([true, true, false, true], CKF_OS_LOCKING_OK)),
        CKR_ARGUMENTS_BAD
    );
    let mut reserved = 0u8;
    let mut a = init_args(none, 0);
    a.pReserved = ptr::addr_of_mut!(reserved).cast();
    assert_eq!(initialize_with(a), CKR_ARGUMENTS_BAD);
    assert_eq!(finalize(), CKR_CRYPTOKI_NOT_INITIALIZED);
    // The three accepted cases, and NULL.
    for flags_and_callbacks in [
        (0, none),
        (CKF_OS_LOCKING_OK, none),
        (CKF_OS_LOCKING_OK, all),
    ] {
        let (flags, callbacks) = flags_and_callbacks;
        assert_eq!(initialize_with(init_args(callbacks, flags)), CKR_OK);
        assert_eq!(
            initialize_with(init_args(callbacks, flags)),
            CKR_CRYPTOKI_ALREADY_INITIALIZED
        );
        assert_eq!(finalize(), CKR_OK);
    }
    // SAFETY: NULL pInitArgs.
    assert_eq!(unsafe { C_Initialize(ptr::null_mut()) }, CKR_OK);
    // SAFETY: NULL pInitArgs.
    let rv = unsafe { C_Initialize(ptr::null_mut()) };
    assert_eq!(rv, CKR_CRYPTOKI_ALREADY_INITIALIZED);
    assert_eq!(finalize(), CKR_OK);
}

#[test]
fn finalize_cases() {
    let _g = initialized();
    let mut reserved = 0u8;
    // SAFETY: a non-NULL pReserved is refused without being read.
    let rv = unsafe { C_Finalize(ptr::addr_of_mut!(reserved).cast()) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
    assert_eq!(finalize(), CKR_OK);
    assert_eq!(finalize(), CKR_CRYPTOKI_NOT_INITIALIZED);
}

// ---------------------------------------------------------------------------------------------
// Order of checks and NULL arguments

#[test]
fn not_initialized_comes_before_pointer_checks() {
    let _g = fresh();
    let f = &FUNCTION_LIST_3_0;
    let nu = CKR_CRYPTOKI_NOT_INITIALIZED;
    // SAFETY: every pointer is NULL; each function checks initialization before any pointer.
    unsafe {
        assert_eq!(f.C_GetInfo.unwrap()(null!()), nu);
        assert_eq!(f.C_GetSlotList.unwrap()(0, null!(), null!()), nu);
        assert_eq!(f.C_GetSlotInfo.unwrap()(0, null!()), nu);
        assert_eq!(f.C_GetTokenInfo.unwrap()(0, null!()), nu);
        assert_eq!(f.C_GetMechanismList.unwrap()(0, null!(), null!()), nu);
        assert_eq!(f.C_GetMechanismInfo.unwrap()(0, 0, null!()), nu);
        assert_eq!(f.C_InitToken.unwrap()(0, null!(), 0, null!()), nu);
        assert_eq!(f.C_InitPIN.unwrap()(1, null!(), 0), nu);
        assert_eq!(f.C_SetPIN.unwrap()(1, null!(), 0, null!(), 0), nu);
        assert_eq!(
            f.C_OpenSession.unwrap()(0, CKF_SERIAL_SESSION, null!(), None, null!()),
            nu
        );
        assert_eq!(f.C_CloseSession.unwrap()(1), nu);
        assert_eq!(f.C_CloseAllSessions.unwrap()(0), nu);
        assert_eq!(f.C_GetSessionInfo.unwrap()(1, null!()), nu);
        assert_eq!(f.C_Login.unwrap()(1, CKU_USER, null!(), 0), nu);
        assert_eq!(f.C_Logout.unwrap()(1), nu);
        assert_eq!(f.C_CreateObject.unwrap()(1, null!(), 1, null!()), nu);
        assert_eq!(f.C_DestroyObject.unwrap()(1, 1), nu);
        assert_eq!(f.C_GetObjectSize.unwrap()(1, 1, null!()), nu);
        assert_eq!(f.C_GetAttributeValue.unwrap()(1, 1, null!(), 1), nu);
        assert_eq!(f.C_SetAttributeValue.unwrap()(1, 1, null!(), 1), nu);
        assert_eq!(f.C_FindObjectsInit.unwrap()(1, null!(), 1), nu);
        assert_eq!(f.C_FindObjects.unwrap()(1, null!(), 1, null!()), nu);
        assert_eq!(f.C_FindObjectsFinal.unwrap()(1), nu);
        assert_eq!(f.C_SignInit.unwrap()(1, null!(), 1), nu);
        assert_eq!(f.C_Sign.unwrap()(1, null!(), 1, null!(), null!()), nu);
        assert_eq!(f.C_SignUpdate.unwrap()(1, null!(), 1), nu);
        assert_eq!(f.C_SignFinal.unwrap()(1, null!(), null!()), nu);
        assert_eq!(f.C_VerifyInit.unwrap()(1, null!(), 1), nu);
        assert_eq!(f.C_Verify.unwrap()(1, null!(), 1, null!(), 1), nu);
        assert_eq!(f.C_VerifyFinal.unwrap()(1, null!(), 1), nu);
        assert_eq!(
            f.C_GenerateKey.unwrap()(1, null!(), null!(), 0, null!()),
            nu
        );
        assert_eq!(f.C_SeedRandom.unwrap()(1, null!(), 1), nu);
        assert_eq!(f.C_GenerateRandom.unwrap()(1, null!(), 1), nu);
        assert_eq!(f.C_GetFunctionStatus.unwrap()(1), nu);
        assert_eq!(f.C_CancelFunction.unwrap()(1), nu);
        assert_eq!(f.C_WaitForSlotEvent.unwrap()(0, null!(), null!()), nu);
        assert_eq!(f.C_Encrypt.unwrap()(1, null!(), 1, null!(), null!()), nu);
        assert_eq!(f.C_DigestInit.unwrap()(1, null!()), nu);
        assert_eq!(
            f.C_LoginUser.unwrap()(1, CKU_USER, null!(), 0, null!(), 0),
            nu
        );
        assert_eq!(f.C_MessageVerifyFinal.unwrap()(1), nu);
    }
}

#[test]
fn null_arguments_after_initialize() {
    let _g = initialized();
    let f = &FUNCTION_LIST_3_0;
    let bad = CKR_ARGUMENTS_BAD;
    // SAFETY: every pointer is NULL and is rejected before use.
    unsafe {
        assert_eq!(f.C_GetSlotList.unwrap()(CK_FALSE, null!(), null!()), bad);
        assert_eq!(f.C_GetSlotInfo.unwrap()(0, null!()), bad);
        assert_eq!(f.C_GetTokenInfo.unwrap()(0, null!()), bad);
        assert_eq!(f.C_GetMechanismList.unwrap()(0, null!(), null!()), bad);
        assert_eq!(f.C_GetMechanismInfo.unwrap()(0, CKM_RSA_PKCS, null!()), bad);
        assert_eq!(
            f.C_OpenSession.unwrap()(0, CKF_SERIAL_SESSION, null!(), None, null!()),
            bad
        );
        assert_eq!(f.C_GetSessionInfo.unwrap()(1, null!()), bad);
        assert_eq!(f.C_GetObjectSize.unwrap()(1, 1, null!()), bad);
        assert_eq!(f.C_GetAttributeValue.unwrap()(1, 1, null!(), 1), bad);
        assert_eq!(f.C_FindObjectsInit.unwrap()(1, null!(), 1), bad);
        assert_eq!(f.C_FindObjects.unwrap()(1, null!(), 1, null!()), bad);
        assert_eq!(f.C_SignInit.unwrap()(1, null!(), 1), bad);
        assert_eq!(f.C_Sign.unwrap()(1, null!(), 0, null!(), null!()), bad);
        assert_eq!(f.C_SignFinal.unwrap()(1, null!(), null!()), bad);
        assert_eq!(f.C_SignUpdate.unwrap()(1, null!(), 1), bad);
        assert_eq!(f.C_VerifyInit.unwrap()(1, null!(), 1), bad);
        assert_eq!(f.C_Verify.unwrap()(1, null!(), 1, null!(), 0), bad);
        assert_eq!(f.C_VerifyUpdate.unwrap()(1, null!(), 1), bad);
        assert_eq!(f.C_VerifyFinal.unwrap()(1, null!(), 1), bad);
        assert_eq!(f.C_SeedRandom.unwrap()(1, null!(), 1), bad);
        assert_eq!(f.C_GenerateRandom.unwrap()(1, null!(), 1), bad);
    }
    assert_eq!(finalize(), CKR_OK);
}

#[test]
fn slot_list_two_call_with_an_empty_reader() {
    let _g = initialized();
    let mut n: CK_ULONG = 99;
    // SAFETY: NULL list, `n` valid.
    let rv = unsafe { C_GetSlotList(CK_FALSE, ptr::null_mut(), &mut n) };
    assert_eq!(rv, CKR_OK);
    assert_eq!(n, 2, "one reader, two slots");
    let mut slots = [CK_SLOT_ID::MAX; 2];
    let mut small: CK_ULONG = 1;
    // SAFETY: `slots` has room for `small` entries.
    let rv = unsafe { C_GetSlotList(CK_FALSE, slots.as_mut_ptr(), &mut small) };
    assert_eq!((rv, small), (CKR_BUFFER_TOO_SMALL, 2));
    // SAFETY: `slots` has room for `n` entries.
    let rv = unsafe { C_GetSlotList(CK_FALSE, slots.as_mut_ptr(), &mut n) };
    assert_eq!(rv, CKR_OK);
    assert_eq!((n, slots), (2, [0, 1]));
    // No card: no slot with a token.
    // SAFETY: NULL list, `n` valid.
    let rv = unsafe { C_GetSlotList(CK_TRUE, ptr::null_mut(), &mut n) };
    assert_eq!(rv, CKR_OK);
    assert_eq!(n, 0);
    assert_eq!(finalize(), CKR_OK);
}

#[test]
fn refusals_after_the_session_check() {
    let _g = initialized();
    let f = &FUNCTION_LIST_3_0;
    let bad_session = 0xDEAD;
    // SAFETY: pointers are NULL; the session check comes first.
    unsafe {
        assert_eq!(
            f.C_GenerateKey.unwrap()(bad_session, null!(), null!(), 0, null!()),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            f.C_CreateObject.unwrap()(bad_session, null!(), 0, null!()),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            f.C_DestroyObject.unwrap()(bad_session, 1),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            f.C_InitPIN.unwrap()(bad_session, null!(), 0),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            f.C_GetFunctionStatus.unwrap()(bad_session),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            f.C_CancelFunction.unwrap()(bad_session),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            f.C_InitToken.unwrap()(77, null!(), 0, null!()),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(
            f.C_WaitForSlotEvent.unwrap()(0, null!(), null!()),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            f.C_EncryptInit.unwrap()(bad_session, null!(), 0),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            f.C_SessionCancel.unwrap()(bad_session, 0),
            CKR_FUNCTION_NOT_SUPPORTED
        );
    }
    assert_eq!(finalize(), CKR_OK);
}

// ---------------------------------------------------------------------------------------------
// Panic guard

#[test]
fn guard_maps_results() {
    assert_eq!(guard("t", || Ok(())), CKR_OK);
    assert_eq!(guard("t", || Err(CkError::PinIncorrect)), CKR_PIN_INCORRECT);
}

#[test]
fn panic_is_caught_and_poisons_until_reinitialized() {
    let _g = initialized();
    // SAFETY: NULL pInfo is refused after the initialization check.
    assert_eq!(unsafe { C_GetInfo(ptr::null_mut()) }, CKR_ARGUMENTS_BAD);
    let rv = guard("C_Test", || panic!("backend bug"));
    assert_eq!(rv, CKR_GENERAL_ERROR);
    // Poisoned: every call now fails with CKR_GENERAL_ERROR.
    let mut info = CK_INFO::default();
    // SAFETY: `info` is valid.
    assert_eq!(unsafe { C_GetInfo(&mut info) }, CKR_GENERAL_ERROR);
    let mut n: CK_ULONG = 0;
    // SAFETY: NULL list, `n` valid.
    let rv = unsafe { C_GetSlotList(CK_FALSE, ptr::null_mut(), &mut n) };
    assert_eq!(rv, CKR_GENERAL_ERROR);
    // C_Finalize + C_Initialize recover.
    assert_eq!(finalize(), CKR_OK);
    // SAFETY: NULL pInitArgs.
    assert_eq!(unsafe { C_Initialize(ptr::null_mut()) }, CKR_OK);
    // SAFETY: `info` is valid.
    assert_eq!(unsafe { C_GetInfo(&mut info) }, CKR_OK);
    assert_eq!(finalize(), CKR_OK);
}

/// The ABI the suite runs on: LP64 (Linux, macOS: 64-bit `CK_ULONG`, natural alignment) or the
/// Windows one (32-bit `CK_ULONG`, structures packed to 1 byte). Pins down that the Windows run
/// under Wine really exercises the LLP64 layouts, which every other test then goes through.
#[test]
fn abi_layouts() {
    use std::mem::offset_of;
    if cfg!(windows) {
        assert_eq!(size_of::<CK_ULONG>(), 4);
        assert_eq!(size_of::<CK_ATTRIBUTE>(), 4 + 8 + 4);
        assert_eq!(size_of::<CK_MECHANISM>(), 4 + 8 + 4);
        assert_eq!(size_of::<CK_RSA_PKCS_PSS_PARAMS>(), 12);
        assert_eq!(size_of::<CK_MECHANISM_INFO>(), 12);
        assert_eq!(size_of::<CK_SESSION_INFO>(), 16);
        assert_eq!(
            offset_of!(CK_ATTRIBUTE, pValue),
            4,
            "no padding before pValue"
        );
        assert_eq!(offset_of!(CK_INFO, flags), 2 + 32);
    } else {
        assert_eq!(size_of::<CK_ULONG>(), size_of::<usize>());
        assert_eq!(size_of::<CK_ATTRIBUTE>(), 3 * size_of::<usize>());
        assert_eq!(size_of::<CK_RSA_PKCS_PSS_PARAMS>(), 3 * size_of::<usize>());
        assert_eq!(offset_of!(CK_INFO, flags) % size_of::<usize>(), 0);
    }
    // Whatever the ABI, an attribute's CK_ULONG value is exactly one CK_ULONG wide.
    let class = CKO_PRIVATE_KEY.to_ne_bytes();
    assert_eq!(class.len(), size_of::<CK_ULONG>());
}
