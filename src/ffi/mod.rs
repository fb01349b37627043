//! The C ABI of the module: the only code that touches C pointers.
//!
//! - Exactly three symbols are exported: [`general::C_GetFunctionList`],
//!   [`general::C_GetInterfaceList`] and [`general::C_GetInterface`]. Every other `C_*` is
//!   reachable only through the immutable function tables in [`tables`].
//! - Every entry point is written with the `cryptoki_fn!` macro: its body is a block returning
//!   `CkResult<()>`, run under `catch_unwind` by `guard`, which turns the result into a `CK_RV`
//!   and poisons the module on a panic.
//! - Pointer work goes through [`args`] (checked slices, output references, the two-call output
//!   buffer, mechanism parameters) and [`template`] (attribute templates).
//! - Order of checks in every entry point: `backend::check_initialized()` first (except the four
//!   functions that are legal before `C_Initialize`), then the pointer arguments, then the `api`
//!   call.

#![allow(non_snake_case)]
#![deny(unsafe_op_in_unsafe_fn)]

use crate::error::{CkError, CkResult};
use cryptoki_sys::{CKR_GENERAL_ERROR, CKR_OK, CK_RV};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Defines one PKCS#11 entry point.
///
/// ```ignore
/// cryptoki_fn! {
///     /// doc
///     fn C_Logout(hSession: CK_SESSION_HANDLE) {
///         backend::check_initialized()?;
///         backend::logout(hSession)
///     }
/// }
/// ```
///
/// expands to `pub(crate) unsafe extern "C" fn C_Logout(hSession: CK_SESSION_HANDLE) -> CK_RV`
/// whose body runs the block (a `CkResult<()>`) through `guard`. Attributes (such as
/// `#[no_mangle]`) and a visibility may be given before `fn`.
macro_rules! cryptoki_fn {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block
    ) => {
        $(#[$attr])*
        ///
        /// # Safety
        ///
        /// Called by a PKCS#11 application: each pointer argument must be NULL or valid as the
        /// PKCS#11 specification describes for this function.
        $vis unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            $crate::ffi::guard(stringify!($name), move || -> $crate::error::CkResult<()> {
                $body
            })
        }
    };
}

/// Defines entry points this module does not implement: after `check_initialized`, they return
/// `CKR_FUNCTION_NOT_SUPPORTED` without looking at their arguments.
macro_rules! not_supported {
    ($($name:ident($($arg:ident: $ty:ty),* $(,)?);)*) => {
        $(
            cryptoki_fn! {
                #[doc = concat!("`", stringify!($name), "`: not supported by this token ",
                    "(returns `CKR_FUNCTION_NOT_SUPPORTED` once initialized).")]
                #[allow(unused_variables)]
                pub(crate) fn $name($($arg: $ty),*) {
                    $crate::backend::check_initialized()?;
                    Err($crate::error::CkError::FunctionNotSupported)
                }
            }
        )*
    };
}

pub(crate) mod args;
pub(crate) mod digest;
pub(crate) mod general;
#[cfg(test)]
mod hostile_tests;
pub(crate) mod keys;
pub(crate) mod object;
pub(crate) mod parallel;
pub(crate) mod random;
pub(crate) mod session;
pub(crate) mod sign;
pub(crate) mod slot_token;
pub(crate) mod tables;
pub(crate) mod template;
pub(crate) mod unsupported;

#[cfg(test)]
mod tests;

/// The body of every entry point: runs `f` under `catch_unwind` and turns its outcome into a
/// `CK_RV`.
///
/// - `Ok(())` → `CKR_OK`, and `Err(e)` → `CK_RV::from(e)`: both logged at debug level with the
///   function name and the code only (arguments such as PINs never reach the log), so the debug
///   log is a trace of the calls;
/// - a panic → the module is poisoned (`backend::poison`, so every later call fails until
///   `C_Finalize` + `C_Initialize`) and `CKR_GENERAL_ERROR` is returned. The panic never crosses
///   the C boundary.
pub(crate) fn guard(name: &'static str, f: impl FnOnce() -> CkResult<()>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            jpki_card::log::debug(format_args!("{name} -> CKR_OK"));
            CKR_OK
        }
        Ok(Err(e)) => {
            log_error(name, e);
            CK_RV::from(e)
        }
        Err(payload) => {
            // Neither poisoning nor dropping the payload may unwind into C.
            let poisoned = catch_unwind(crate::backend::poison).is_ok();
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            jpki_card::log::debug(format_args!(
                "{name}: panic caught, module poisoned{} -> CKR_GENERAL_ERROR",
                if poisoned {
                    ""
                } else {
                    " (poison itself panicked)"
                }
            ));
            CKR_GENERAL_ERROR
        }
    }
}

fn log_error(name: &'static str, e: CkError) {
    // Routine codes of the two-call convention and attribute probing are expected traffic; the
    // log has a single level, so they are only marked as such.
    let routine = matches!(
        e,
        CkError::BufferTooSmall
            | CkError::AttributeSensitive
            | CkError::AttributeTypeInvalid
            | CkError::FunctionNotSupported
    );
    jpki_card::log::debug(format_args!(
        "{name} -> {}{}",
        e.name(),
        if routine { " (routine)" } else { "" }
    ));
}
