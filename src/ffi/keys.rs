//! Key management (PKCS#11 3.0 §5.18). The card's keys are fixed: every function checks the
//! session and the mechanism pointer, then refuses with `CKR_MECHANISM_INVALID` (LibreOffice
//! probes a DES3 key generation on every slot and must get a clean refusal).

use crate::backend;
use crate::error::{CkError, CkResult};
use cryptoki_sys::*;

/// The common refusal: session first, then a NULL mechanism is `CKR_ARGUMENTS_BAD`, else
/// `CKR_MECHANISM_INVALID`.
fn refuse(hSession: CK_SESSION_HANDLE, pMechanism: *const CK_MECHANISM) -> CkResult<()> {
    backend::check_initialized()?;
    backend::check_session(hSession)?;
    if pMechanism.is_null() {
        return Err(CkError::ArgumentsBad);
    }
    Err(CkError::MechanismInvalid)
}

cryptoki_fn! {
    /// `C_GenerateKey` (3.0 §5.18.1): refused, see the module header.
    #[allow(unused_variables)]
    pub(crate) fn C_GenerateKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        pTemplate: *mut CK_ATTRIBUTE,
        ulCount: CK_ULONG,
        phKey: *mut CK_OBJECT_HANDLE,
    ) {
        refuse(hSession, pMechanism)
    }
}

cryptoki_fn! {
    /// `C_GenerateKeyPair` (3.0 §5.18.2): refused, see the module header.
    #[allow(unused_variables)]
    pub(crate) fn C_GenerateKeyPair(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        pPublicKeyTemplate: *mut CK_ATTRIBUTE,
        ulPublicKeyAttributeCount: CK_ULONG,
        pPrivateKeyTemplate: *mut CK_ATTRIBUTE,
        ulPrivateKeyAttributeCount: CK_ULONG,
        phPublicKey: *mut CK_OBJECT_HANDLE,
        phPrivateKey: *mut CK_OBJECT_HANDLE,
    ) {
        refuse(hSession, pMechanism)
    }
}

cryptoki_fn! {
    /// `C_WrapKey` (3.0 §5.18.3): refused, see the module header.
    #[allow(unused_variables)]
    pub(crate) fn C_WrapKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        hWrappingKey: CK_OBJECT_HANDLE,
        hKey: CK_OBJECT_HANDLE,
        pWrappedKey: *mut CK_BYTE,
        pulWrappedKeyLen: *mut CK_ULONG,
    ) {
        refuse(hSession, pMechanism)
    }
}

cryptoki_fn! {
    /// `C_UnwrapKey` (3.0 §5.18.4): refused, see the module header.
    #[allow(unused_variables)]
    pub(crate) fn C_UnwrapKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        hUnwrappingKey: CK_OBJECT_HANDLE,
        pWrappedKey: *mut CK_BYTE,
        ulWrappedKeyLen: CK_ULONG,
        pTemplate: *mut CK_ATTRIBUTE,
        ulAttributeCount: CK_ULONG,
        phKey: *mut CK_OBJECT_HANDLE,
    ) {
        refuse(hSession, pMechanism)
    }
}

cryptoki_fn! {
    /// `C_DeriveKey` (3.0 §5.18.5): refused, see the module header.
    #[allow(unused_variables)]
    pub(crate) fn C_DeriveKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        hBaseKey: CK_OBJECT_HANDLE,
        pTemplate: *mut CK_ATTRIBUTE,
        ulAttributeCount: CK_ULONG,
        phKey: *mut CK_OBJECT_HANDLE,
    ) {
        refuse(hSession, pMechanism)
    }
}
