//! Fork policy seen from an application: the module does not claim `CKF_INTERFACE_FORK_SAFE`,
//! so a forked child finds it not initialized, must call `C_Initialize` itself, and the parent
//! keeps working. One test per file: the child of a fork must not inherit other test threads'
//! locks.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod common;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};

#[test]
fn forked_child_must_initialize_and_parent_is_unaffected() {
    let pkcs11 = Pkcs11::new(common::module_path()).expect("load module");
    let args = || CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK);
    pkcs11.initialize(args()).expect("C_Initialize");
    pkcs11.get_all_slots().expect("C_GetSlotList in the parent");

    // SAFETY: the child only calls into the module and then `_exit`s, running no destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = match pkcs11.get_library_info() {
            Err(Error::Pkcs11(RvError::CryptokiNotInitialized, _)) => {
                match pkcs11.initialize(args()) {
                    Ok(()) if pkcs11.get_library_info().is_ok() => 0,
                    _ => 2,
                }
            }
            _ => 1,
        };
        // SAFETY: terminates the child immediately, without unwinding or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked; `status` is a valid out pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child crashed");
    match libc::WEXITSTATUS(status) {
        0 => {}
        1 => panic!("child did not see CKR_CRYPTOKI_NOT_INITIALIZED"),
        n => panic!("child could not initialize ({n})"),
    }
    // The parent is still initialized.
    pkcs11.get_library_info().expect("C_GetInfo in the parent");
    pkcs11.get_all_slots().expect("C_GetSlotList in the parent");
    pkcs11.finalize().expect("C_Finalize");
}
