//! Loads the built cdylib as an application would (through the `cryptoki` crate and `dlopen`)
//! and checks what the FFI layer decides: the exported symbols, the interface `cryptoki`
//! selects, `C_GetInfo`, and the initialize/finalize cycle. No card is needed; slot listing may
//! talk to pcscd but never to a card.
//!
//! The module is found from `TEST_PKCS11_MODULE`, else next to the test binary
//! (`target/<profile>/deps/`, else `target/<profile>/`).
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod common;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use std::ffi::CString;

#[test]
fn only_the_three_entry_symbols_are_exported() {
    let path = CString::new(common::module_path().to_string_lossy().into_owned()).unwrap();
    // SAFETY: dlopen with a valid NUL-terminated path; the handle is closed below.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "cannot load {:?}", common::module_path());
    let has = |sym: &str| {
        let s = CString::new(sym).unwrap();
        // SAFETY: valid handle and NUL-terminated symbol name.
        !unsafe { libc::dlsym(handle, s.as_ptr()) }.is_null()
    };
    for sym in ["C_GetFunctionList", "C_GetInterfaceList", "C_GetInterface"] {
        assert!(has(sym), "{sym} must be exported");
    }
    for sym in [
        "C_Initialize",
        "C_Finalize",
        "C_GetInfo",
        "C_Sign",
        "C_Login",
        "C_OpenSession",
    ] {
        assert!(!has(sym), "{sym} must not be exported");
    }
    // SAFETY: the handle came from dlopen and no symbol from it is used afterwards.
    unsafe { libc::dlclose(handle) };
}

#[test]
fn cryptoki_selects_the_3_0_interface_and_cycles_initialization() {
    let pkcs11 = Pkcs11::new(common::module_path()).expect("load module");
    let args = || CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK);
    pkcs11.initialize(args()).expect("C_Initialize");
    match pkcs11.initialize(args()) {
        Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        other => panic!("second C_Initialize: {other:?}"),
    }
    let info = pkcs11.get_library_info().expect("C_GetInfo");
    let v = info.cryptoki_version();
    assert_eq!(
        (v.major(), v.minor()),
        (3, 0),
        "C_GetInterface default is the 3.0 table"
    );
    assert_eq!(info.manufacturer_id(), "jpki-pkcs11 project");
    // Listing slots without asking for tokens does no card I/O.
    pkcs11.get_all_slots().expect("C_GetSlotList");
    pkcs11.finalize().expect("C_Finalize");
}
