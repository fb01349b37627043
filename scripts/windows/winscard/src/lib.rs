//! Test-only `winscard.dll` for Wine: the WinSCard functions the `pcsc`/`pcsc-sys` crates import
//! on Windows (the `A` variants of the string functions), over one reader whose card is the
//! project's virtual card speaking the vsmartcard vpcd protocol (see `model.rs`).
//!
//! This file is the C edge only: raw pointers are checked and turned into Rust values here, the
//! work is done in `model`. No panic crosses it (each function catches one and answers
//! `SCARD_F_INTERNAL_ERROR`). Never shipped: real Windows has the genuine DLL.
#![deny(clippy::undocumented_unsafe_blocks)]
#![allow(non_snake_case, non_upper_case_globals)]

mod model;

use model::{Dword, Long, Res};
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `SCARD_IO_REQUEST`.
#[repr(C)]
pub struct ScardIoRequest {
    pub dwProtocol: Dword,
    pub cbPciLength: Dword,
}

/// `SCARD_READERSTATEA` (Windows: a 36-byte ATR buffer).
#[repr(C)]
pub struct ScardReaderStateA {
    pub szReader: *const c_char,
    pub pvUserData: *mut c_void,
    pub dwCurrentState: Dword,
    pub dwEventState: Dword,
    pub cbAtr: Dword,
    pub rgbAtr: [u8; 36],
}

const PCI_LEN: Dword = std::mem::size_of::<ScardIoRequest>() as Dword;

#[no_mangle]
pub static g_rgSCardT0Pci: ScardIoRequest = ScardIoRequest {
    dwProtocol: model::SCARD_PROTOCOL_T0,
    cbPciLength: PCI_LEN,
};
#[no_mangle]
pub static g_rgSCardT1Pci: ScardIoRequest = ScardIoRequest {
    dwProtocol: model::SCARD_PROTOCOL_T1,
    cbPciLength: PCI_LEN,
};
#[no_mangle]
pub static g_rgSCardRawPci: ScardIoRequest = ScardIoRequest {
    dwProtocol: 0x0001_0000,
    cbPciLength: PCI_LEN,
};

/// Runs `f`, turning its result (or a panic) into a WinSCard code.
fn guard(f: impl FnOnce() -> Res<()>) -> Long {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => model::SCARD_S_SUCCESS,
        Ok(Err(e)) => e,
        Err(_) => model::SCARD_F_INTERNAL_ERROR,
    }
}

/// A required out-pointer.
fn out<T>(p: *mut T) -> Res<*mut T> {
    if p.is_null() {
        Err(model::SCARD_E_INVALID_PARAMETER)
    } else {
        Ok(p)
    }
}

/// A NUL-terminated string argument.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that stays valid for the call.
unsafe fn c_str(p: *const c_char) -> Res<String> {
    if p.is_null() {
        return Err(model::SCARD_E_INVALID_PARAMETER);
    }
    // SAFETY: non-null and NUL-terminated by the caller's contract (WinSCard's `LPCSTR`).
    Ok(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Windows' "length query / fill" convention for an output buffer of `len` units at `buf`
/// with its length at `plen` (in and out): null `buf` → the length; too small →
/// `SCARD_E_INSUFFICIENT_BUFFER` with the length; else a copy. `SCARD_AUTOALLOCATE` is not
/// supported (this DLL exports no `SCardFreeMemory`; the `pcsc` crate does not use it).
///
/// # Safety
/// `plen` is null or valid for reads and writes; `buf`, if not null, is valid for writing
/// `*plen` bytes.
unsafe fn fill(data: &[u8], buf: *mut u8, plen: *mut Dword) -> Res<()> {
    if plen.is_null() {
        return Ok(()); // the caller does not want it
    }
    let need = Dword::try_from(data.len()).map_err(|_| model::SCARD_F_INTERNAL_ERROR)?;
    // SAFETY: `plen` is non-null and valid for reads by the contract.
    let have = unsafe { *plen };
    // SAFETY: as above, valid for writes.
    unsafe { *plen = need };
    if buf.is_null() {
        return Ok(());
    }
    if have == model::SCARD_AUTOALLOCATE {
        return Err(model::SCARD_E_INVALID_PARAMETER);
    }
    if have < need {
        return Err(model::SCARD_E_INSUFFICIENT_BUFFER);
    }
    // SAFETY: `buf` is valid for `have >= need` bytes and does not overlap `data` (ours).
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
    Ok(())
}

/// # Safety
/// `ph` is null or valid for writing one handle.
#[no_mangle]
pub unsafe extern "system" fn SCardEstablishContext(
    dwScope: Dword,
    _pvReserved1: *const c_void,
    _pvReserved2: *const c_void,
    phContext: *mut usize,
) -> Long {
    guard(|| {
        let ph = out(phContext)?;
        let ctx = model::establish_context(dwScope)?;
        // SAFETY: non-null, valid for writes by the contract.
        unsafe { *ph = ctx };
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn SCardReleaseContext(hContext: usize) -> Long {
    guard(|| model::release_context(hContext))
}

#[no_mangle]
pub extern "system" fn SCardIsValidContext(hContext: usize) -> Long {
    guard(|| model::is_valid_context(hContext))
}

#[no_mangle]
pub extern "system" fn SCardCancel(hContext: usize) -> Long {
    guard(|| model::cancel(hContext))
}

/// # Safety
/// WinSCard's contract: `mszGroups` null or a multi-string; `pcchReaders` null or valid;
/// `mszReaders` null or valid for `*pcchReaders` bytes.
#[no_mangle]
pub unsafe extern "system" fn SCardListReadersA(
    hContext: usize,
    mszGroups: *const c_char,
    mszReaders: *mut c_char,
    pcchReaders: *mut Dword,
) -> Long {
    guard(|| {
        let plen = out(pcchReaders)?;
        let groups = if mszGroups.is_null() {
            None
        } else {
            let mut g = Vec::new();
            let mut p = mszGroups;
            loop {
                // SAFETY: `p` points into the caller's multi-string, at the start of an entry
                // (possibly the final empty one).
                let s = unsafe { c_str(p) }?;
                if s.is_empty() {
                    break;
                }
                // SAFETY: the entry is `s.len()` bytes and its NUL; the next entry follows.
                p = unsafe { p.add(s.len() + 1) };
                g.push(s);
            }
            Some(g)
        };
        let names = model::list_readers(hContext, groups)?;
        // SAFETY: the caller's buffer and length, per the contract.
        unsafe { fill(&names, mszReaders.cast(), plen) }
    })
}

/// # Safety
/// `rgReaderStates` is null or valid for `cReaders` entries whose `szReader` are strings.
#[no_mangle]
pub unsafe extern "system" fn SCardGetStatusChangeA(
    hContext: usize,
    dwTimeout: Dword,
    rgReaderStates: *mut ScardReaderStateA,
    cReaders: Dword,
) -> Long {
    guard(|| {
        let n = usize::try_from(cReaders).map_err(|_| model::SCARD_E_INVALID_PARAMETER)?;
        let states: &mut [ScardReaderStateA] = if n == 0 {
            &mut []
        } else {
            let p = out(rgReaderStates)?;
            // SAFETY: non-null, `n` valid entries the caller owns for the call.
            unsafe { std::slice::from_raw_parts_mut(p, n) }
        };
        let mut io = Vec::with_capacity(n);
        for s in states.iter() {
            io.push(model::ReaderStateIo {
                // SAFETY: the entry's reader name, a string per the contract.
                reader: unsafe { c_str(s.szReader) }?,
                current: s.dwCurrentState,
                event: s.dwEventState,
                atr: Vec::new(),
            });
        }
        let r = model::get_status_change(hContext, dwTimeout, &mut io);
        if r.is_ok() || r == Err(model::SCARD_E_TIMEOUT) {
            for (s, o) in states.iter_mut().zip(io) {
                s.dwEventState = o.event;
                if !o.atr.is_empty() && o.atr.len() <= s.rgbAtr.len() {
                    s.rgbAtr[..o.atr.len()].copy_from_slice(&o.atr);
                    s.cbAtr = o.atr.len() as Dword;
                }
            }
        }
        r
    })
}

/// # Safety
/// `szReader` a string; `phCard`, `pdwActiveProtocol` valid for writes.
#[no_mangle]
pub unsafe extern "system" fn SCardConnectA(
    hContext: usize,
    szReader: *const c_char,
    dwShareMode: Dword,
    dwPreferredProtocols: Dword,
    phCard: *mut usize,
    pdwActiveProtocol: *mut Dword,
) -> Long {
    guard(|| {
        // SAFETY: a string per the contract (null is refused).
        let reader = unsafe { c_str(szReader) }?;
        let ph = out(phCard)?;
        let pp = out(pdwActiveProtocol)?;
        let (h, proto) = model::connect(hContext, &reader, dwShareMode, dwPreferredProtocols)?;
        // SAFETY: both non-null and valid for writes by the contract.
        unsafe {
            *ph = h;
            *pp = proto;
        }
        Ok(())
    })
}

/// # Safety
/// `pdwActiveProtocol` null or valid for writes.
#[no_mangle]
pub unsafe extern "system" fn SCardReconnect(
    hCard: usize,
    dwShareMode: Dword,
    dwPreferredProtocols: Dword,
    dwInitialization: Dword,
    pdwActiveProtocol: *mut Dword,
) -> Long {
    guard(|| {
        let proto = model::reconnect(hCard, dwShareMode, dwPreferredProtocols, dwInitialization)?;
        if !pdwActiveProtocol.is_null() {
            // SAFETY: non-null, valid for writes by the contract.
            unsafe { *pdwActiveProtocol = proto };
        }
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn SCardDisconnect(hCard: usize, dwDisposition: Dword) -> Long {
    guard(|| model::disconnect(hCard, dwDisposition))
}

#[no_mangle]
pub extern "system" fn SCardBeginTransaction(hCard: usize) -> Long {
    guard(|| model::begin_transaction(hCard))
}

#[no_mangle]
pub extern "system" fn SCardEndTransaction(hCard: usize, dwDisposition: Dword) -> Long {
    guard(|| model::end_transaction(hCard, dwDisposition))
}

/// # Safety
/// Each pointer null or valid (buffers for `*pcch…` bytes), per WinSCard's contract.
#[no_mangle]
pub unsafe extern "system" fn SCardStatusA(
    hCard: usize,
    szReaderName: *mut c_char,
    pcchReaderLen: *mut Dword,
    pdwState: *mut Dword,
    pdwProtocol: *mut Dword,
    pbAtr: *mut u8,
    pcbAtrLen: *mut Dword,
) -> Long {
    guard(|| {
        let (state, proto, atr) = model::status(hCard)?;
        let names = model::multi_string(model::READER);
        // SAFETY: the caller's buffers and lengths, per the contract.
        let r1 = unsafe { fill(&names, szReaderName.cast(), pcchReaderLen) };
        // SAFETY: as above.
        let r2 = unsafe { fill(&atr, pbAtr, pcbAtrLen) };
        if !pdwState.is_null() {
            // SAFETY: non-null, valid for writes.
            unsafe { *pdwState = state };
        }
        if !pdwProtocol.is_null() {
            // SAFETY: non-null, valid for writes.
            unsafe { *pdwProtocol = proto };
        }
        r1.and(r2)
    })
}

/// # Safety
/// `pcbAttrLen` valid; `pbAttr` null or valid for `*pcbAttrLen` bytes.
#[no_mangle]
pub unsafe extern "system" fn SCardGetAttrib(
    hCard: usize,
    dwAttrId: Dword,
    pbAttr: *mut u8,
    pcbAttrLen: *mut Dword,
) -> Long {
    guard(|| {
        let plen = out(pcbAttrLen)?;
        let value = model::get_attrib(hCard, dwAttrId)?;
        // SAFETY: the caller's buffer and length, per the contract.
        unsafe { fill(&value, pbAttr, plen) }
    })
}

#[no_mangle]
pub extern "system" fn SCardSetAttrib(
    hCard: usize,
    _dwAttrId: Dword,
    _pbAttr: *const u8,
    _cbAttrLen: Dword,
) -> Long {
    guard(|| {
        model::check_handle(hCard)?;
        Err(model::SCARD_E_UNSUPPORTED_FEATURE)
    })
}

#[no_mangle]
pub extern "system" fn SCardControl(
    hCard: usize,
    _dwControlCode: Dword,
    _pbSendBuffer: *const u8,
    _cbSendLength: Dword,
    _pbRecvBuffer: *mut u8,
    _cbRecvLength: Dword,
    _lpBytesReturned: *mut Dword,
) -> Long {
    guard(|| {
        model::check_handle(hCard)?;
        Err(model::SCARD_E_UNSUPPORTED_FEATURE)
    })
}

/// # Safety
/// `pioSendPci` valid; `pbSendBuffer` valid for `cbSendLength` bytes; `pioRecvPci` null or
/// valid; `pcbRecvLength` valid; `pbRecvBuffer` valid for `*pcbRecvLength` bytes.
#[no_mangle]
pub unsafe extern "system" fn SCardTransmit(
    hCard: usize,
    pioSendPci: *const ScardIoRequest,
    pbSendBuffer: *const u8,
    cbSendLength: Dword,
    pioRecvPci: *mut ScardIoRequest,
    pbRecvBuffer: *mut u8,
    pcbRecvLength: *mut Dword,
) -> Long {
    guard(|| {
        if pioSendPci.is_null() || pbSendBuffer.is_null() || pbRecvBuffer.is_null() {
            return Err(model::SCARD_E_INVALID_PARAMETER);
        }
        let plen = out(pcbRecvLength)?;
        // SAFETY: non-null, a valid `SCARD_IO_REQUEST` by the contract.
        let protocol = unsafe { (*pioSendPci).dwProtocol };
        let len = usize::try_from(cbSendLength).map_err(|_| model::SCARD_E_INVALID_PARAMETER)?;
        // SAFETY: non-null, `cbSendLength` readable bytes by the contract.
        let apdu = unsafe { std::slice::from_raw_parts(pbSendBuffer, len) };
        let resp = model::transmit(hCard, protocol, apdu)?;
        if !pioRecvPci.is_null() {
            // SAFETY: non-null, valid for writes by the contract.
            unsafe {
                (*pioRecvPci).dwProtocol = protocol;
                (*pioRecvPci).cbPciLength = PCI_LEN;
            }
        }
        // SAFETY: the caller's buffer and length, per the contract (not null: checked above).
        unsafe { fill(&resp, pbRecvBuffer, plen) }
    })
}
