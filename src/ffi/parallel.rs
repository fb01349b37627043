//! Parallel function management (PKCS#11 3.0 §5.20): legacy functions; after a session check
//! they answer `CKR_FUNCTION_NOT_PARALLEL`, as the spec prescribes.

use crate::backend;
use crate::error::CkError;
use cryptoki_sys::*;

cryptoki_fn! {
    /// `C_GetFunctionStatus` (3.0 §5.20.1): `backend::check_session`, then
    /// `CKR_FUNCTION_NOT_PARALLEL`.
    pub(crate) fn C_GetFunctionStatus(hSession: CK_SESSION_HANDLE) {
        backend::check_initialized()?;
        backend::check_session(hSession)?;
        Err(CkError::FunctionNotParallel)
    }
}

cryptoki_fn! {
    /// `C_CancelFunction` (3.0 §5.20.2): `backend::check_session`, then
    /// `CKR_FUNCTION_NOT_PARALLEL`.
    pub(crate) fn C_CancelFunction(hSession: CK_SESSION_HANDLE) {
        backend::check_initialized()?;
        backend::check_session(hSession)?;
        Err(CkError::FunctionNotParallel)
    }
}
