//! Global module state (stub: replaced by the real implementation).
#![allow(unused_variables)]
use crate::api::*;
use crate::error::CkResult;
use cryptoki_sys::*;

pub fn initialize() -> CkResult<()> { todo!() }

pub fn finalize() -> CkResult<()> { todo!() }

pub fn check_initialized() -> CkResult<()> { todo!() }

pub fn get_slot_list(a0: bool) -> CkResult<Vec<CK_SLOT_ID>> { todo!() }

pub fn get_slot_info(a0: CK_SLOT_ID) -> CkResult<CK_SLOT_INFO> { todo!() }

pub fn get_token_info(a0: CK_SLOT_ID) -> CkResult<CK_TOKEN_INFO> { todo!() }

pub fn check_slot(a0: CK_SLOT_ID) -> CkResult<()> { todo!() }

pub fn get_mechanism_list(a0: CK_SLOT_ID) -> CkResult<Vec<CK_MECHANISM_TYPE>> { todo!() }

pub fn get_mechanism_info(a0: CK_SLOT_ID, a1: CK_MECHANISM_TYPE) -> CkResult<CK_MECHANISM_INFO> { todo!() }

pub fn open_session(a0: CK_SLOT_ID, a1: CK_FLAGS) -> CkResult<CK_SESSION_HANDLE> { todo!() }

pub fn close_session(a0: CK_SESSION_HANDLE) -> CkResult<()> { todo!() }

pub fn close_all_sessions(a0: CK_SLOT_ID) -> CkResult<()> { todo!() }

pub fn get_session_info(a0: CK_SESSION_HANDLE) -> CkResult<CK_SESSION_INFO> { todo!() }

pub fn check_session(a0: CK_SESSION_HANDLE) -> CkResult<()> { todo!() }

pub fn login(a0: CK_SESSION_HANDLE, a1: CK_USER_TYPE, a2: Option<&[u8]>) -> CkResult<()> { todo!() }

pub fn logout(a0: CK_SESSION_HANDLE) -> CkResult<()> { todo!() }

pub fn set_pin(a0: CK_SESSION_HANDLE, a1: Option<&[u8]>, a2: Option<&[u8]>) -> CkResult<()> { todo!() }

pub fn find_objects_init(a0: CK_SESSION_HANDLE, a1: Template) -> CkResult<()> { todo!() }

pub fn find_objects(a0: CK_SESSION_HANDLE, a1: usize) -> CkResult<Vec<CK_OBJECT_HANDLE>> { todo!() }

pub fn find_objects_final(a0: CK_SESSION_HANDLE) -> CkResult<()> { todo!() }

pub fn get_attribute_value(a0: CK_SESSION_HANDLE, a1: CK_OBJECT_HANDLE, a2: &[CK_ATTRIBUTE_TYPE]) -> CkResult<Vec<AttrValue>> { todo!() }

pub fn get_object_size(a0: CK_SESSION_HANDLE, a1: CK_OBJECT_HANDLE) -> CkResult<CK_ULONG> { todo!() }

pub fn sign_init(a0: CK_SESSION_HANDLE, a1: &Mechanism, a2: CK_OBJECT_HANDLE) -> CkResult<()> { todo!() }

pub fn sign_len(a0: CK_SESSION_HANDLE) -> CkResult<usize> { todo!() }

pub fn sign(a0: CK_SESSION_HANDLE, a1: &[u8]) -> CkResult<Vec<u8>> { todo!() }

pub fn sign_update(a0: CK_SESSION_HANDLE, a1: &[u8]) -> CkResult<()> { todo!() }

pub fn sign_final(a0: CK_SESSION_HANDLE) -> CkResult<Vec<u8>> { todo!() }

pub fn verify_init(a0: CK_SESSION_HANDLE, a1: &Mechanism, a2: CK_OBJECT_HANDLE) -> CkResult<()> { todo!() }

pub fn verify(a0: CK_SESSION_HANDLE, a1: &[u8], a2: &[u8]) -> CkResult<()> { todo!() }

pub fn verify_update(a0: CK_SESSION_HANDLE, a1: &[u8]) -> CkResult<()> { todo!() }

pub fn verify_final(a0: CK_SESSION_HANDLE, a1: &[u8]) -> CkResult<()> { todo!() }

pub fn generate_random(a0: CK_SESSION_HANDLE, a1: usize) -> CkResult<Vec<u8>> { todo!() }

pub fn seed_random(a0: CK_SESSION_HANDLE) -> CkResult<()> { todo!() }

pub fn poison() {}
