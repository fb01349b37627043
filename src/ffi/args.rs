//! Checked conversions of C arguments: input slices, output references, the two-call output
//! buffer of PKCS#11 3.0 §5.2 and mechanism parameters.
//!
//! Every function that reads or writes through a pointer is an `unsafe fn` whose contract is the
//! one the PKCS#11 specification puts on the application ("NULL or valid for ..."); the NULL and
//! length cases are checked here, so callers only vouch for the validity of non-NULL pointers.

use crate::backend::{MechanismParams, PssParams, RawMechanism};
use crate::error::{CkError, CkResult};
use cryptoki_sys::*;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr;

/// Converts a `CK_ULONG` length to `usize` (`CKR_ARGUMENTS_BAD` if it does not fit).
pub(crate) fn ulong_to_usize(len: CK_ULONG) -> CkResult<usize> {
    usize::try_from(len).map_err(|_| CkError::ArgumentsBad)
}

/// Converts a `usize` length to `CK_ULONG` (`CKR_GENERAL_ERROR` if it does not fit: the module
/// produced something larger than the C side can describe).
pub(crate) fn usize_to_ulong(len: usize) -> CkResult<CK_ULONG> {
    CK_ULONG::try_from(len).map_err(|_| CkError::GeneralError)
}

/// Borrows `len` elements at `ptr` as a slice.
///
/// NULL with `len == 0` gives an empty slice (without calling `from_raw_parts` on NULL); NULL
/// with `len > 0`, a misaligned pointer, or a length whose byte size exceeds `isize::MAX` give
/// `CKR_ARGUMENTS_BAD`.
///
/// # Safety
///
/// If `ptr` is non-NULL it must be valid for reads of `len` elements of `T`, which are not
/// written by anyone else during `'a`.
pub(crate) unsafe fn in_slice<'a, T>(ptr: *const T, len: CK_ULONG) -> CkResult<&'a [T]> {
    let len = ulong_to_usize(len)?;
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(CkError::ArgumentsBad)
        };
    }
    if (ptr as usize) % align_of::<T>() != 0 {
        return Err(CkError::ArgumentsBad);
    }
    byte_len::<T>(len)?;
    // SAFETY: `ptr` is non-NULL and aligned, the byte size fits in isize, and the caller
    // guarantees `len` readable elements that stay unchanged for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The byte size of `len` elements of `T`, if it is a valid slice size (at most `isize::MAX`),
/// else `CKR_ARGUMENTS_BAD`.
///
/// Where `CK_ULONG` is as wide as `usize` (LP64: Linux, macOS) a caller's length can exceed it;
/// on LLP64 (Windows, 32-bit `CK_ULONG`) no `CK_ULONG` count of elements can, and the check
/// never fires: the length must then be vouched for by the caller, as the spec requires.
pub(crate) fn byte_len<T>(len: usize) -> CkResult<usize> {
    match len.checked_mul(size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(bytes),
        _ => Err(CkError::ArgumentsBad),
    }
}

/// Like [`in_slice`], but a NULL pointer means "absent" (`None`) whatever the length: used for
/// `C_Login`/`C_SetPIN`, where a NULL PIN asks for the protected authentication path.
///
/// # Safety
///
/// As for [`in_slice`].
pub(crate) unsafe fn opt_slice<'a, T>(ptr: *const T, len: CK_ULONG) -> CkResult<Option<&'a [T]>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract of this function.
        unsafe { in_slice(ptr, len) }.map(Some)
    }
}

/// A checked non-NULL output location for one `T` (`CK_SLOT_INFO`, a handle, ...). Writes are
/// unaligned, so no alignment is assumed.
#[derive(Debug)]
pub(crate) struct OutRef<'a, T> {
    ptr: *mut T,
    _life: PhantomData<&'a mut T>,
}

/// Checks an output pointer: NULL → `CKR_ARGUMENTS_BAD`.
///
/// # Safety
///
/// If `ptr` is non-NULL it must be valid for a write of one `T` during `'a`.
pub(crate) unsafe fn out_ref<'a, T>(ptr: *mut T) -> CkResult<OutRef<'a, T>> {
    if ptr.is_null() {
        Err(CkError::ArgumentsBad)
    } else {
        Ok(OutRef {
            ptr,
            _life: PhantomData,
        })
    }
}

impl<T> OutRef<'_, T> {
    /// Stores `value`.
    pub(crate) fn write(self, value: T) {
        // SAFETY: `ptr` is non-NULL and valid for a write of one T (contract of `out_ref`);
        // the unaligned write makes no alignment assumption.
        unsafe { ptr::write_unaligned(self.ptr, value) }
    }
}

/// What [`OutBuf::reserve`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    /// The buffer pointer was NULL: the needed length has been written; the call is a size query
    /// and must return `CKR_OK` without producing (or ending) anything.
    LengthOnly,
    /// The buffer is large enough: produce the output and [`OutBuf::write`] it.
    Room,
}

/// An output buffer of the two-call convention (PKCS#11 3.0 §5.2): `(pBuf, pulBufLen)`.
///
/// - `pulBufLen` must be non-NULL (`CKR_ARGUMENTS_BAD`);
/// - `pBuf` NULL: the needed length is written to `*pulBufLen`, `CKR_OK`;
/// - `*pulBufLen` smaller than needed: the needed length is written, `CKR_BUFFER_TOO_SMALL`;
/// - otherwise the output is copied and `*pulBufLen` gets its exact length.
///
/// `*pulBufLen` is read before it is written, never the other way round.
#[derive(Debug)]
pub(crate) struct OutBuf<'a, T> {
    buf: *mut T,
    len: *mut CK_ULONG,
    _life: PhantomData<&'a mut T>,
}

impl<'a, T: Copy> OutBuf<'a, T> {
    /// Checks the pair: `pulBufLen` NULL → `CKR_ARGUMENTS_BAD`.
    ///
    /// # Safety
    ///
    /// If `len` is non-NULL it must be valid for reads and writes of one `CK_ULONG` during
    /// `'a`. If `buf` is non-NULL it must be valid for writes of `*len` elements of `T` (the
    /// value `*len` holds on entry) during `'a`.
    pub(crate) unsafe fn new(buf: *mut T, len: *mut CK_ULONG) -> CkResult<Self> {
        if len.is_null() {
            return Err(CkError::ArgumentsBad);
        }
        Ok(OutBuf {
            buf,
            len,
            _life: PhantomData,
        })
    }

    /// Whether the call is a size query (NULL buffer).
    pub(crate) fn is_query(&self) -> bool {
        self.buf.is_null()
    }

    /// The capacity the caller announced in `*pulBufLen`, in elements. A capacity larger than
    /// the address space is reported as `usize::MAX` (it is only compared against).
    fn capacity(&self) -> usize {
        // SAFETY: `len` is non-NULL and valid for reads (contract of `new`).
        let cap = unsafe { ptr::read_unaligned(self.len) };
        usize::try_from(cap).unwrap_or(usize::MAX)
    }

    fn set_len(&self, n: usize) -> CkResult<()> {
        let n = usize_to_ulong(n)?;
        // SAFETY: `len` is non-NULL and valid for writes (contract of `new`).
        unsafe { ptr::write_unaligned(self.len, n) };
        Ok(())
    }

    /// The first half of the convention, for outputs whose length is known before they are
    /// produced (signatures): answers a size query or a too-small buffer, and otherwise tells the
    /// caller to go on. Nothing is written in the `Room` case.
    pub(crate) fn reserve(&self, needed: usize) -> CkResult<Space> {
        if self.is_query() {
            self.set_len(needed)?;
            return Ok(Space::LengthOnly);
        }
        if self.capacity() < needed {
            self.set_len(needed)?;
            return Err(CkError::BufferTooSmall);
        }
        Ok(Space::Room)
    }

    /// The whole convention for an output already produced (lists, values).
    pub(crate) fn write(self, data: &[T]) -> CkResult<()> {
        if self.is_query() {
            return self.set_len(data.len());
        }
        if self.capacity() < data.len() {
            self.set_len(data.len())?;
            return Err(CkError::BufferTooSmall);
        }
        // SAFETY: `buf` is non-NULL and valid for writes of `capacity()` ≥ data.len() elements
        // (contract of `new`); copying as bytes needs no alignment; the regions cannot overlap
        // because `data` is the module's own memory.
        unsafe {
            ptr::copy_nonoverlapping(
                data.as_ptr().cast::<u8>(),
                self.buf.cast::<u8>(),
                std::mem::size_of_val(data),
            )
        };
        self.set_len(data.len())
    }
}

/// A checked output array of fixed capacity without a length-in/length-out pointer
/// (`C_FindObjects`' `phObject`/`ulMaxObjectCount`, `C_GenerateRandom`'s buffer).
#[derive(Debug)]
pub(crate) struct OutSlice<'a, T> {
    ptr: *mut T,
    cap: usize,
    _life: PhantomData<&'a mut T>,
}

/// Checks an output array: NULL with `cap > 0` → `CKR_ARGUMENTS_BAD`.
///
/// # Safety
///
/// If `ptr` is non-NULL it must be valid for writes of `cap` elements of `T` during `'a`.
pub(crate) unsafe fn out_slice<'a, T: Copy>(
    ptr: *mut T,
    cap: CK_ULONG,
) -> CkResult<OutSlice<'a, T>> {
    let cap = ulong_to_usize(cap)?;
    if ptr.is_null() && cap > 0 {
        return Err(CkError::ArgumentsBad);
    }
    Ok(OutSlice {
        ptr,
        cap,
        _life: PhantomData,
    })
}

impl<T: Copy> OutSlice<'_, T> {
    /// The number of elements the caller provided room for.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.cap
    }

    /// Copies `data` to the start of the array. More than `capacity()` elements is a bug of the
    /// module (`CKR_GENERAL_ERROR`, nothing written).
    pub(crate) fn fill(self, data: &[T]) -> CkResult<()> {
        if data.len() > self.cap {
            return Err(CkError::GeneralError);
        }
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: `ptr` is non-NULL (cap ≥ data.len() > 0) and valid for writes of `cap`
        // elements (contract of `out_slice`); a byte copy needs no alignment; no overlap with
        // the module's own `data`.
        unsafe {
            ptr::copy_nonoverlapping(
                data.as_ptr().cast::<u8>(),
                self.ptr.cast::<u8>(),
                std::mem::size_of_val(data),
            )
        };
        Ok(())
    }
}

/// Mechanisms whose parameter is a `CK_RSA_PKCS_PSS_PARAMS`.
pub(crate) fn is_pss(mechanism: CK_MECHANISM_TYPE) -> bool {
    matches!(
        mechanism,
        CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA224_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS
            | CKM_SHA3_224_RSA_PKCS_PSS
            | CKM_SHA3_256_RSA_PKCS_PSS
            | CKM_SHA3_384_RSA_PKCS_PSS
            | CKM_SHA3_512_RSA_PKCS_PSS
    )
}

/// Decodes a mechanism parameter.
///
/// - length 0 → `MechanismParams::None` (whatever the pointer: there is nothing to read);
/// - NULL with length > 0 → `CKR_ARGUMENTS_BAD`;
/// - a PSS mechanism with exactly `size_of::<CK_RSA_PKCS_PSS_PARAMS>()` bytes → `Pss`, read with
///   `read_unaligned` (the caller's struct need not be aligned; packed layouts work too);
/// - anything else → `Other(bytes)`, for the backend to accept or refuse
///   (`CKR_MECHANISM_PARAM_INVALID`).
///
/// # Safety
///
/// If `param` is non-NULL it must be valid for reads of `len` bytes.
pub(crate) unsafe fn mech_params(
    mechanism: CK_MECHANISM_TYPE,
    param: *const std::ffi::c_void,
    len: CK_ULONG,
) -> CkResult<MechanismParams> {
    let n = ulong_to_usize(len)?;
    if n == 0 {
        return Ok(MechanismParams::None);
    }
    if param.is_null() {
        return Err(CkError::ArgumentsBad);
    }
    if is_pss(mechanism) && n == size_of::<CK_RSA_PKCS_PSS_PARAMS>() {
        // SAFETY: `param` is non-NULL and valid for reads of `len` bytes (caller's contract),
        // which is exactly the size of the struct; every bit pattern is a valid
        // CK_RSA_PKCS_PSS_PARAMS (three CK_ULONGs); the read makes no alignment assumption.
        let p = unsafe { ptr::read_unaligned(param.cast::<CK_RSA_PKCS_PSS_PARAMS>()) };
        return Ok(MechanismParams::Pss(PssParams {
            hash_alg: p.hashAlg,
            mgf: p.mgf,
            s_len: p.sLen,
        }));
    }
    // SAFETY: `param` is non-NULL and valid for reads of `len` bytes (caller's contract).
    let bytes = unsafe { in_slice(param.cast::<u8>(), len) }?;
    Ok(MechanismParams::Other(try_copy(bytes)?))
}

/// An empty vector with room for `n` items, or `CKR_HOST_MEMORY`: a length chosen by the caller
/// never aborts the host process with an allocation failure.
pub(crate) fn try_vec<T>(n: usize) -> CkResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| CkError::HostMemory)?;
    Ok(v)
}

/// A copy of the caller's bytes, or `CKR_HOST_MEMORY` (see [`try_vec`]).
pub(crate) fn try_copy(bytes: &[u8]) -> CkResult<Vec<u8>> {
    let mut v = try_vec(bytes.len())?;
    v.extend_from_slice(bytes);
    Ok(v)
}

/// Reads a `CK_MECHANISM` and its parameter: NULL → `CKR_ARGUMENTS_BAD`.
///
/// # Safety
///
/// If `ptr` is non-NULL it must be valid for reads of one `CK_MECHANISM` whose `pParameter` is
/// NULL or valid for reads of `ulParameterLen` bytes.
pub(crate) unsafe fn mechanism(ptr: *const CK_MECHANISM) -> CkResult<RawMechanism> {
    if ptr.is_null() {
        return Err(CkError::ArgumentsBad);
    }
    // SAFETY: non-NULL and valid for reads of a CK_MECHANISM (caller's contract); unaligned read.
    let m = unsafe { ptr::read_unaligned(ptr) };
    // SAFETY: forwarded contract on pParameter/ulParameterLen.
    let params = unsafe { mech_params(m.mechanism, m.pParameter, m.ulParameterLen) }?;
    Ok(RawMechanism {
        mechanism: m.mechanism,
        params,
    })
}

/// A blank-padded, not NUL-terminated fixed-size string field (`CK_INFO.manufacturerID`, ...).
/// Longer input is truncated at a UTF-8 character boundary.
pub(crate) const fn padded<const N: usize>(s: &str) -> [CK_UTF8CHAR; N] {
    let b = s.as_bytes();
    let mut n = if b.len() < N { b.len() } else { N };
    // Do not cut a multi-byte character: back off over continuation bytes.
    while n > 0 && n < b.len() && (b[n] & 0xC0) == 0x80 {
        n -= 1;
    }
    let mut out = [b' '; N];
    let mut i = 0;
    while i < n {
        out[i] = b[i];
        i += 1;
    }
    out
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
