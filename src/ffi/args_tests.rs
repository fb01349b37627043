use super::*;
use std::ffi::c_void;

#[test]
fn in_slice_cases() {
    let data = [1u8, 2, 3];
    // SAFETY: NULL pointers are checked by in_slice; `data` is valid for 3 reads.
    unsafe {
        assert_eq!(in_slice::<u8>(ptr::null(), 0), Ok(&[][..]));
        assert_eq!(in_slice::<u8>(ptr::null(), 1), Err(CkError::ArgumentsBad));
        assert_eq!(in_slice(data.as_ptr(), 3), Ok(&data[..]));
        assert_eq!(in_slice(data.as_ptr(), 0), Ok(&[][..]));
    }
    let words = [7 as CK_ULONG; 2];
    // SAFETY: the pointer is deliberately misaligned; in_slice rejects it before any read.
    let misaligned = unsafe { in_slice(words.as_ptr().cast::<u8>().add(1).cast::<CK_ULONG>(), 1) };
    assert_eq!(misaligned, Err(CkError::ArgumentsBad));
    // A huge length is refused before any read where CK_ULONG is as wide as usize (LP64).
    // On LLP64 (Windows) CK_ULONG::MAX elements fit in isize: there is nothing to refuse,
    // and calling in_slice with it would read past `words`, so only the size check runs.
    if size_of::<CK_ULONG>() == size_of::<usize>() {
        // SAFETY: the length is rejected (byte size > isize::MAX) before any read.
        let huge = unsafe { in_slice(words.as_ptr(), CK_ULONG::MAX) };
        assert_eq!(huge, Err(CkError::ArgumentsBad));
    } else {
        let max = ulong_to_usize(CK_ULONG::MAX).unwrap();
        assert_eq!(byte_len::<CK_ULONG>(max), Ok(max * size_of::<CK_ULONG>()));
    }
}

#[test]
fn byte_len_limits() {
    let max = isize::MAX as usize;
    assert_eq!(byte_len::<u8>(max), Ok(max));
    assert_eq!(byte_len::<u8>(max + 1), Err(CkError::ArgumentsBad));
    assert_eq!(byte_len::<u32>(max / 4), Ok(max / 4 * 4));
    assert_eq!(byte_len::<u32>(max / 4 + 1), Err(CkError::ArgumentsBad));
    assert_eq!(byte_len::<u64>(usize::MAX), Err(CkError::ArgumentsBad));
    assert_eq!(byte_len::<CK_ATTRIBUTE>(0), Ok(0));
}

#[test]
fn opt_slice_cases() {
    let pin = *b"1234";
    // SAFETY: NULL is checked; `pin` is valid for 4 reads.
    unsafe {
        assert_eq!(opt_slice::<u8>(ptr::null(), 4), Ok(None));
        assert_eq!(opt_slice(pin.as_ptr(), 4), Ok(Some(&pin[..])));
    }
}

#[test]
fn out_ref_cases() {
    // SAFETY: NULL is checked by out_ref.
    let null = unsafe { out_ref::<CK_ULONG>(ptr::null_mut()) };
    assert_eq!(null.unwrap_err(), CkError::ArgumentsBad);
    let mut v: CK_ULONG = 0;
    // SAFETY: `v` is valid for a write.
    unsafe { out_ref(&mut v) }.unwrap().write(42);
    assert_eq!(v, 42);
}

#[test]
fn out_buf_requires_length_pointer() {
    let mut buf = [0u8; 4];
    // SAFETY: NULL length pointer is checked by new.
    let r = unsafe { OutBuf::new(buf.as_mut_ptr(), ptr::null_mut()) };
    assert_eq!(r.unwrap_err(), CkError::ArgumentsBad);
}

#[test]
fn out_buf_size_query() {
    let mut len: CK_ULONG = 0;
    // SAFETY: NULL buffer, `len` valid.
    let out = unsafe { OutBuf::<u8>::new(ptr::null_mut(), &mut len) }.unwrap();
    assert_eq!(out.write(&[1, 2, 3]), Ok(()));
    assert_eq!(len, 3);
    // SAFETY: as above.
    let out = unsafe { OutBuf::<u8>::new(ptr::null_mut(), &mut len) }.unwrap();
    assert_eq!(out.reserve(256), Ok(Space::LengthOnly));
    assert_eq!(len, 256);
}

#[test]
fn out_buf_too_small_writes_needed_length_and_nothing_else() {
    let mut buf = [0xAAu8; 2];
    let mut len: CK_ULONG = 2;
    // SAFETY: `buf` holds `len` bytes.
    let out = unsafe { OutBuf::new(buf.as_mut_ptr(), &mut len) }.unwrap();
    assert_eq!(out.write(&[1, 2, 3]), Err(CkError::BufferTooSmall));
    assert_eq!(len, 3);
    assert_eq!(buf, [0xAA, 0xAA]);
    let mut len: CK_ULONG = 2;
    // SAFETY: as above.
    let out = unsafe { OutBuf::new(buf.as_mut_ptr(), &mut len) }.unwrap();
    assert_eq!(out.reserve(256), Err(CkError::BufferTooSmall));
    assert_eq!(len, 256);
}

#[test]
fn out_buf_copies_and_sets_exact_length() {
    let mut buf = [0xAAu8; 8];
    let mut len: CK_ULONG = 8;
    // SAFETY: `buf` holds `len` bytes.
    let out = unsafe { OutBuf::new(buf.as_mut_ptr(), &mut len) }.unwrap();
    assert_eq!(out.reserve(3), Ok(Space::Room));
    assert_eq!(
        len, 8,
        "reserve must not touch the length when there is room"
    );
    assert_eq!(out.write(&[1, 2, 3]), Ok(()));
    assert_eq!(len, 3);
    assert_eq!(buf, [1, 2, 3, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA]);
    // Exact fit and empty output.
    let mut len: CK_ULONG = 3;
    // SAFETY: as above.
    let out = unsafe { OutBuf::new(buf.as_mut_ptr(), &mut len) }.unwrap();
    assert_eq!(out.write(&[4, 5, 6]), Ok(()));
    assert_eq!(len, 3);
    // SAFETY: as above.
    let out = unsafe { OutBuf::new(buf.as_mut_ptr(), &mut len) }.unwrap();
    assert_eq!(out.write(&[]), Ok(()));
    assert_eq!(len, 0);
}

#[test]
fn out_buf_of_ulongs() {
    let mut slots = [0 as CK_SLOT_ID; 4];
    let mut n: CK_ULONG = 4;
    // SAFETY: `slots` holds `n` elements.
    let out = unsafe { OutBuf::new(slots.as_mut_ptr(), &mut n) }.unwrap();
    assert_eq!(out.write(&[5, 6]), Ok(()));
    assert_eq!((n, slots), (2, [5, 6, 0, 0]));
}

#[test]
fn out_slice_cases() {
    // SAFETY: NULL is checked.
    unsafe {
        assert!(out_slice::<u8>(ptr::null_mut(), 0).is_ok());
        assert_eq!(
            out_slice::<u8>(ptr::null_mut(), 1).unwrap_err(),
            CkError::ArgumentsBad
        );
    }
    let mut h = [0 as CK_OBJECT_HANDLE; 3];
    // SAFETY: `h` holds 3 elements.
    let out = unsafe { out_slice(h.as_mut_ptr(), 3) }.unwrap();
    assert_eq!(out.capacity(), 3);
    assert_eq!(out.fill(&[9, 8]), Ok(()));
    assert_eq!(h, [9, 8, 0]);
    // SAFETY: as above.
    let out = unsafe { out_slice(h.as_mut_ptr(), 1) }.unwrap();
    assert_eq!(out.fill(&[1, 2]), Err(CkError::GeneralError));
}

fn pss_bytes() -> (CK_RSA_PKCS_PSS_PARAMS, CK_ULONG) {
    let p = CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        sLen: 32,
    };
    (p, size_of::<CK_RSA_PKCS_PSS_PARAMS>() as CK_ULONG)
}

#[test]
fn mech_params_exact_pss() {
    let (p, n) = pss_bytes();
    let want = MechanismParams::Pss(PssParams {
        hash_alg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        s_len: 32,
    });
    for m in [
        CKM_RSA_PKCS_PSS,
        CKM_SHA256_RSA_PKCS_PSS,
        CKM_SHA512_RSA_PKCS_PSS,
    ] {
        // SAFETY: `p` is valid for `n` bytes.
        let got = unsafe { mech_params(m, ptr::addr_of!(p).cast(), n) };
        assert_eq!(got, Ok(want.clone()));
    }
    // Unaligned copy of the same bytes.
    let mut raw = vec![0u8; n as usize + 1];
    // SAFETY: `raw` has room for n bytes at offset 1; `p` is n bytes.
    unsafe {
        ptr::copy_nonoverlapping(
            ptr::addr_of!(p).cast::<u8>(),
            raw.as_mut_ptr().add(1),
            n as usize,
        )
    };
    // SAFETY: `raw[1..]` is valid for n bytes.
    let got = unsafe { mech_params(CKM_RSA_PKCS_PSS, raw.as_ptr().add(1).cast(), n) };
    assert_eq!(got, Ok(want));
}

#[test]
fn mech_params_wrong_size_or_other_mechanism_is_raw() {
    let (p, n) = pss_bytes();
    // SAFETY: `p` is valid for n (and n - 1) bytes.
    unsafe {
        let short = mech_params(CKM_RSA_PKCS_PSS, ptr::addr_of!(p).cast(), n - 1);
        assert!(matches!(short, Ok(MechanismParams::Other(ref b)) if b.len() == n as usize - 1));
        let other = mech_params(CKM_RSA_PKCS, ptr::addr_of!(p).cast(), n);
        assert!(matches!(other, Ok(MechanismParams::Other(ref b)) if b.len() == n as usize));
    }
}

#[test]
fn mech_params_null_and_empty() {
    // SAFETY: NULL pointers are checked by mech_params.
    unsafe {
        assert_eq!(
            mech_params(CKM_RSA_PKCS, ptr::null(), 0),
            Ok(MechanismParams::None)
        );
        assert_eq!(
            mech_params(CKM_RSA_PKCS_PSS, ptr::null(), 0),
            Ok(MechanismParams::None)
        );
        assert_eq!(
            mech_params(CKM_RSA_PKCS_PSS, ptr::null::<c_void>(), 24),
            Err(CkError::ArgumentsBad)
        );
    }
}

#[test]
fn mechanism_struct() {
    // SAFETY: NULL is checked.
    let rv = unsafe { mechanism(ptr::null()) };
    assert_eq!(rv, Err(CkError::ArgumentsBad));
    let (mut p, n) = pss_bytes();
    let m = CK_MECHANISM {
        mechanism: CKM_SHA256_RSA_PKCS_PSS,
        pParameter: ptr::addr_of_mut!(p).cast(),
        ulParameterLen: n,
    };
    // SAFETY: `m` and its parameter are valid.
    let got = unsafe { mechanism(&m) }.unwrap();
    assert_eq!(got.mechanism, CKM_SHA256_RSA_PKCS_PSS);
    assert!(matches!(
        got.params,
        MechanismParams::Pss(PssParams { s_len: 32, .. })
    ));
}

#[test]
fn padded_strings() {
    assert_eq!(padded::<4>("ab"), *b"ab  ");
    assert_eq!(padded::<2>("abc"), *b"ab");
    // "é" is two bytes: never cut in the middle.
    assert_eq!(padded::<2>("aé"), *b"a ");
}
