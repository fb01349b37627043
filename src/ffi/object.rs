//! Object management (PKCS#11 3.0 §5.7). The token is read-only: the four write functions check
//! the session and their pointers, then answer `CKR_TOKEN_WRITE_PROTECTED`.

use super::args::{out_ref, out_slice, ulong_to_usize};
use super::template::RawTemplate;
use crate::backend;
use crate::error::CkError;
use cryptoki_sys::*;

cryptoki_fn! {
    /// `C_CreateObject` (3.0 §5.7.1): `backend::check_session`, then a NULL template (whatever
    /// `ulCount`: there is no object without attributes) or NULL `phObject` →
    /// `CKR_ARGUMENTS_BAD`, else `CKR_TOKEN_WRITE_PROTECTED`. The template values are not read.
    pub(crate) fn C_CreateObject(
        hSession: CK_SESSION_HANDLE,
        pTemplate: *mut CK_ATTRIBUTE,
        ulCount: CK_ULONG,
        phObject: *mut CK_OBJECT_HANDLE,
    ) {
        backend::check_initialized()?;
        backend::check_session(hSession)?;
        if pTemplate.is_null() {
            return Err(CkError::ArgumentsBad);
        }
        // SAFETY: pointers are only checked for NULL here, never dereferenced.
        unsafe {
            RawTemplate::new(pTemplate, ulCount)?;
            out_ref(phObject)?;
        }
        Err(CkError::TokenWriteProtected)
    }
}

cryptoki_fn! {
    /// `C_CopyObject` (3.0 §5.7.2): as `C_CreateObject`.
    #[allow(unused_variables)]
    pub(crate) fn C_CopyObject(
        hSession: CK_SESSION_HANDLE,
        hObject: CK_OBJECT_HANDLE,
        pTemplate: *mut CK_ATTRIBUTE,
        ulCount: CK_ULONG,
        phNewObject: *mut CK_OBJECT_HANDLE,
    ) {
        backend::check_initialized()?;
        backend::check_session(hSession)?;
        // SAFETY: pointers are only checked for NULL here, never dereferenced.
        unsafe {
            RawTemplate::new(pTemplate, ulCount)?;
            out_ref(phNewObject)?;
        }
        Err(CkError::TokenWriteProtected)
    }
}

cryptoki_fn! {
    /// `C_DestroyObject` (3.0 §5.7.3): `backend::check_session`, then `CKR_TOKEN_WRITE_PROTECTED`.
    #[allow(unused_variables)]
    pub(crate) fn C_DestroyObject(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE) {
        backend::check_initialized()?;
        backend::check_session(hSession)?;
        Err(CkError::TokenWriteProtected)
    }
}

cryptoki_fn! {
    /// `C_GetObjectSize` (3.0 §5.7.4). NULL `pulSize` → `CKR_ARGUMENTS_BAD`.
    pub(crate) fn C_GetObjectSize(
        hSession: CK_SESSION_HANDLE,
        hObject: CK_OBJECT_HANDLE,
        pulSize: *mut CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pulSize is valid for writing a CK_ULONG (spec §5.7.4).
        let out = unsafe { out_ref(pulSize) }?;
        out.write(backend::get_object_size(hSession, hObject)?);
        Ok(())
    }
}

cryptoki_fn! {
    /// `C_GetAttributeValue` (3.0 §5.7.5): NULL template with `ulCount > 0` →
    /// `CKR_ARGUMENTS_BAD`; the types are passed to `backend::get_attribute_value`, and its answers
    /// fill every entry by the spec's five cases ([`RawTemplate::fill`]), with
    /// SENSITIVE > TYPE_INVALID > BUFFER_TOO_SMALL.
    pub(crate) fn C_GetAttributeValue(
        hSession: CK_SESSION_HANDLE,
        hObject: CK_OBJECT_HANDLE,
        pTemplate: *mut CK_ATTRIBUTE,
        ulCount: CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pTemplate is valid for reading and writing ulCount attributes,
        // each with a pValue NULL or valid for ulValueLen bytes (spec §5.7.5).
        let template = unsafe { RawTemplate::new(pTemplate, ulCount) }?;
        let values = backend::get_attribute_value(hSession, hObject, &template.types()?)?;
        template.fill(&values)
    }
}

cryptoki_fn! {
    /// `C_SetAttributeValue` (3.0 §5.7.6): `backend::check_session`, then NULL template with
    /// `ulCount > 0` → `CKR_ARGUMENTS_BAD`, else `CKR_TOKEN_WRITE_PROTECTED`.
    #[allow(unused_variables)]
    pub(crate) fn C_SetAttributeValue(
        hSession: CK_SESSION_HANDLE,
        hObject: CK_OBJECT_HANDLE,
        pTemplate: *mut CK_ATTRIBUTE,
        ulCount: CK_ULONG,
    ) {
        backend::check_initialized()?;
        backend::check_session(hSession)?;
        // SAFETY: the pointer is only checked for NULL here, never dereferenced.
        unsafe { RawTemplate::new(pTemplate, ulCount) }?;
        Err(CkError::TokenWriteProtected)
    }
}

cryptoki_fn! {
    /// `C_FindObjectsInit` (3.0 §5.7.7): the template is copied (NULL template with
    /// `ulCount > 0`, or an entry with NULL `pValue` and `ulValueLen > 0` →
    /// `CKR_ARGUMENTS_BAD`) and passed to `backend::find_objects_init`.
    pub(crate) fn C_FindObjectsInit(
        hSession: CK_SESSION_HANDLE,
        pTemplate: *mut CK_ATTRIBUTE,
        ulCount: CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pTemplate is valid for reading ulCount attributes, each with a
        // pValue NULL or valid for ulValueLen bytes (spec §5.7.7). It is only read.
        let template = unsafe { RawTemplate::new(pTemplate, ulCount) }?.to_template()?;
        backend::find_objects_init(hSession, template)
    }
}

cryptoki_fn! {
    /// `C_FindObjects` (3.0 §5.7.8): NULL `pulObjectCount`, or NULL `phObject` with
    /// `ulMaxObjectCount > 0` → `CKR_ARGUMENTS_BAD`. Then `backend::find_objects` for at most
    /// `ulMaxObjectCount` handles, copied out with their count.
    pub(crate) fn C_FindObjects(
        hSession: CK_SESSION_HANDLE,
        phObject: *mut CK_OBJECT_HANDLE,
        ulMaxObjectCount: CK_ULONG,
        pulObjectCount: *mut CK_ULONG,
    ) {
        backend::check_initialized()?;
        // SAFETY: a non-NULL pulObjectCount is valid for writing a CK_ULONG, and a non-NULL
        // phObject has room for ulMaxObjectCount handles (spec §5.7.8).
        let (count, handles) =
            unsafe { (out_ref(pulObjectCount)?, out_slice(phObject, ulMaxObjectCount)?) };
        let found = backend::find_objects(hSession, ulong_to_usize(ulMaxObjectCount)?)?;
        let n = super::args::usize_to_ulong(found.len())?;
        handles.fill(&found)?;
        count.write(n);
        Ok(())
    }
}

cryptoki_fn! {
    /// `C_FindObjectsFinal` (3.0 §5.7.9).
    pub(crate) fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) {
        backend::check_initialized()?;
        backend::find_objects_final(hSession)
    }
}
