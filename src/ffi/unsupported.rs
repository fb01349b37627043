//! Entry points this token does not offer: after `backend::check_initialized` they return
//! `CKR_FUNCTION_NOT_SUPPORTED` without reading their arguments. Every slot of both function
//! tables must be filled (`cryptoki` selects the 3.0 table through `C_GetInterface`).
//!
//! Covered: operation state (§5.6.5-6), `C_LoginUser` (§5.6.9), `C_SessionCancel` (§5.6.11),
//! encryption (§5.8), message encryption (§5.9), decryption (§5.10), message decryption (§5.11),
//! digesting (§5.12), sign/verify with recovery (§5.13.5-6, §5.14.5-6), message signing and
//! verification (§5.15, §5.16), dual-function operations (§5.19).

use cryptoki_sys::*;
use std::ffi::c_void;

not_supported! {
    C_GetOperationState(hSession: CK_SESSION_HANDLE, pOperationState: *mut CK_BYTE,
        pulOperationStateLen: *mut CK_ULONG);
    C_SetOperationState(hSession: CK_SESSION_HANDLE, pOperationState: *mut CK_BYTE,
        ulOperationStateLen: CK_ULONG, hEncryptionKey: CK_OBJECT_HANDLE,
        hAuthenticationKey: CK_OBJECT_HANDLE);
    C_LoginUser(hSession: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pPin: *mut CK_UTF8CHAR,
        ulPinLen: CK_ULONG, pUsername: *mut CK_UTF8CHAR, ulUsernameLen: CK_ULONG);
    C_SessionCancel(hSession: CK_SESSION_HANDLE, flags: CK_FLAGS);

    C_EncryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE);
    C_Encrypt(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG,
        pEncryptedData: *mut CK_BYTE, pulEncryptedDataLen: *mut CK_ULONG);
    C_EncryptUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG,
        pEncryptedPart: *mut CK_BYTE, pulEncryptedPartLen: *mut CK_ULONG);
    C_EncryptFinal(hSession: CK_SESSION_HANDLE, pLastEncryptedPart: *mut CK_BYTE,
        pulLastEncryptedPartLen: *mut CK_ULONG);

    C_DecryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE);
    C_Decrypt(hSession: CK_SESSION_HANDLE, pEncryptedData: *mut CK_BYTE,
        ulEncryptedDataLen: CK_ULONG, pData: *mut CK_BYTE, pulDataLen: *mut CK_ULONG);
    C_DecryptUpdate(hSession: CK_SESSION_HANDLE, pEncryptedPart: *mut CK_BYTE,
        ulEncryptedPartLen: CK_ULONG, pPart: *mut CK_BYTE, pulPartLen: *mut CK_ULONG);
    C_DecryptFinal(hSession: CK_SESSION_HANDLE, pLastPart: *mut CK_BYTE,
        pulLastPartLen: *mut CK_ULONG);

    C_SignRecoverInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE);
    C_SignRecover(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG,
        pSignature: *mut CK_BYTE, pulSignatureLen: *mut CK_ULONG);
    C_VerifyRecoverInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE);
    C_VerifyRecover(hSession: CK_SESSION_HANDLE, pSignature: *mut CK_BYTE,
        ulSignatureLen: CK_ULONG, pData: *mut CK_BYTE, pulDataLen: *mut CK_ULONG);

    C_DigestEncryptUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG,
        pEncryptedPart: *mut CK_BYTE, pulEncryptedPartLen: *mut CK_ULONG);
    C_DecryptDigestUpdate(hSession: CK_SESSION_HANDLE, pEncryptedPart: *mut CK_BYTE,
        ulEncryptedPartLen: CK_ULONG, pPart: *mut CK_BYTE, pulPartLen: *mut CK_ULONG);
    C_SignEncryptUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG,
        pEncryptedPart: *mut CK_BYTE, pulEncryptedPartLen: *mut CK_ULONG);
    C_DecryptVerifyUpdate(hSession: CK_SESSION_HANDLE, pEncryptedPart: *mut CK_BYTE,
        ulEncryptedPartLen: CK_ULONG, pPart: *mut CK_BYTE, pulPartLen: *mut CK_ULONG);

    C_MessageEncryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE);
    C_EncryptMessage(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG, pAssociatedData: *mut CK_BYTE, ulAssociatedDataLen: CK_ULONG,
        pPlaintext: *mut CK_BYTE, ulPlaintextLen: CK_ULONG, pCiphertext: *mut CK_BYTE,
        pulCiphertextLen: *mut CK_ULONG);
    C_EncryptMessageBegin(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG, pAssociatedData: *mut CK_BYTE, ulAssociatedDataLen: CK_ULONG);
    C_EncryptMessageNext(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG, pPlaintextPart: *mut CK_BYTE, ulPlaintextPartLen: CK_ULONG,
        pCiphertextPart: *mut CK_BYTE, pulCiphertextPartLen: *mut CK_ULONG, flags: CK_FLAGS);
    C_MessageEncryptFinal(hSession: CK_SESSION_HANDLE);

    C_MessageDecryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE);
    C_DecryptMessage(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG, pAssociatedData: *mut CK_BYTE, ulAssociatedDataLen: CK_ULONG,
        pCiphertext: *mut CK_BYTE, ulCiphertextLen: CK_ULONG, pPlaintext: *mut CK_BYTE,
        pulPlaintextLen: *mut CK_ULONG);
    C_DecryptMessageBegin(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG, pAssociatedData: *mut CK_BYTE, ulAssociatedDataLen: CK_ULONG);
    C_DecryptMessageNext(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG, pCiphertextPart: *mut CK_BYTE, ulCiphertextPartLen: CK_ULONG,
        pPlaintextPart: *mut CK_BYTE, pulPlaintextPartLen: *mut CK_ULONG, flags: CK_FLAGS);
    C_MessageDecryptFinal(hSession: CK_SESSION_HANDLE);

    C_MessageSignInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE);
    C_SignMessage(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void, ulParameterLen: CK_ULONG,
        pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE,
        pulSignatureLen: *mut CK_ULONG);
    C_SignMessageBegin(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG);
    C_SignMessageNext(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG, pData: *mut CK_BYTE, ulDataLen: CK_ULONG,
        pSignature: *mut CK_BYTE, pulSignatureLen: *mut CK_ULONG);
    C_MessageSignFinal(hSession: CK_SESSION_HANDLE);

    C_MessageVerifyInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM,
        hKey: CK_OBJECT_HANDLE);
    C_VerifyMessage(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG, pData: *mut CK_BYTE, ulDataLen: CK_ULONG,
        pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG);
    C_VerifyMessageBegin(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG);
    C_VerifyMessageNext(hSession: CK_SESSION_HANDLE, pParameter: *mut c_void,
        ulParameterLen: CK_ULONG, pData: *mut CK_BYTE, ulDataLen: CK_ULONG,
        pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG);
    C_MessageVerifyFinal(hSession: CK_SESSION_HANDLE);
}
