//! Attribute templates: reading search templates (`C_FindObjectsInit`) and filling the
//! caller's template in `C_GetAttributeValue` (PKCS#11 3.0 §5.7.5).
//!
//! The fill algorithm ([`RawTemplate::fill`]) works on the answers the backend gave ([`AttrValue`]), so it
//! can be tested without a token.

use super::args::{in_slice, try_copy, try_vec, ulong_to_usize};
use crate::backend::{AttrValue, Template};
use crate::error::{CkError, CkResult};
use cryptoki_sys::*;
use std::ptr;

/// The caller's `(pTemplate, ulCount)` array, checked: NULL with `ulCount > 0` →
/// `CKR_ARGUMENTS_BAD`. Entries are read and written unaligned, one at a time.
#[derive(Debug)]
pub(crate) struct RawTemplate {
    ptr: *mut CK_ATTRIBUTE,
    count: usize,
}

impl RawTemplate {
    /// Checks the array pointer and count.
    ///
    /// # Safety
    ///
    /// If `ptr` is non-NULL it must be valid for reads and writes of `count` `CK_ATTRIBUTE`s
    /// for as long as the `RawTemplate` is used, and each entry's `pValue` must be NULL or valid
    /// for reads and writes of `ulValueLen` bytes.
    pub(crate) unsafe fn new(ptr: *mut CK_ATTRIBUTE, count: CK_ULONG) -> CkResult<Self> {
        let count = ulong_to_usize(count)?;
        if ptr.is_null() && count > 0 {
            return Err(CkError::ArgumentsBad);
        }
        Ok(RawTemplate { ptr, count })
    }

    fn get(&self, i: usize) -> CK_ATTRIBUTE {
        assert!(i < self.count);
        // SAFETY: i < count, so the entry is inside the array the caller vouched for (`new`);
        // the read is unaligned.
        unsafe { ptr::read_unaligned(self.ptr.add(i)) }
    }

    fn set_len(&self, i: usize, len: CK_ULONG) {
        assert!(i < self.count);
        // SAFETY: as in `get`; only the ulValueLen field is written, unaligned.
        unsafe { ptr::write_unaligned(ptr::addr_of_mut!((*self.ptr.add(i)).ulValueLen), len) }
    }

    /// The attribute types, in order.
    pub(crate) fn types(&self) -> CkResult<Vec<CK_ATTRIBUTE_TYPE>> {
        let mut out = try_vec(self.count)?;
        out.extend((0..self.count).map(|i| self.get(i).type_));
        Ok(out)
    }

    /// Reads the template as a search template: each `pValue` NULL with `ulValueLen > 0` →
    /// `CKR_ARGUMENTS_BAD`.
    pub(crate) fn to_template(&self) -> CkResult<Template> {
        let mut out = try_vec(self.count)?;
        for i in 0..self.count {
            let a = self.get(i);
            // SAFETY: `pValue` is NULL or valid for `ulValueLen` bytes (contract of `new`).
            let v = unsafe { in_slice(a.pValue.cast::<u8>().cast_const(), a.ulValueLen) }?;
            out.push((a.type_, try_copy(v)?));
        }
        Ok(out)
    }

    /// Fills the template with the backend's answers, per PKCS#11 3.0 §5.7.5, for **every**
    /// entry (never stopping at the first problem):
    ///
    /// 1. the attribute is sensitive or unextractable → `ulValueLen = CK_UNAVAILABLE_INFORMATION`
    ///    (`CKR_ATTRIBUTE_SENSITIVE`);
    /// 2. the object has no such attribute → `CK_UNAVAILABLE_INFORMATION`
    ///    (`CKR_ATTRIBUTE_TYPE_INVALID`);
    /// 3. `pValue` is NULL → `ulValueLen` = the exact length;
    /// 4. `ulValueLen` is large enough → the value is copied and `ulValueLen` = its exact length;
    /// 5. otherwise → `CK_UNAVAILABLE_INFORMATION` (`CKR_BUFFER_TOO_SMALL`).
    ///
    /// The spec allows any of the codes when several apply; like OpenSC, the result is
    /// `CKR_ATTRIBUTE_SENSITIVE` over `CKR_ATTRIBUTE_TYPE_INVALID` over `CKR_BUFFER_TOO_SMALL`.
    /// `values` must have one answer per entry (else `CKR_GENERAL_ERROR`, nothing written).
    pub(crate) fn fill(&self, values: &[AttrValue]) -> CkResult<()> {
        if values.len() != self.count {
            return Err(CkError::GeneralError);
        }
        let mut outcome = Outcome::default();
        for (i, value) in values.iter().enumerate() {
            let a = self.get(i);
            match value {
                AttrValue::Sensitive => {
                    self.set_len(i, CK_UNAVAILABLE_INFORMATION);
                    outcome.sensitive = true;
                }
                AttrValue::Invalid => {
                    self.set_len(i, CK_UNAVAILABLE_INFORMATION);
                    outcome.invalid = true;
                }
                AttrValue::Value(v) => {
                    let exact = match CK_ULONG::try_from(v.len()) {
                        Ok(n) if n != CK_UNAVAILABLE_INFORMATION => n,
                        _ => return Err(CkError::GeneralError),
                    };
                    if a.pValue.is_null() {
                        self.set_len(i, exact);
                    } else if a.ulValueLen >= exact {
                        // SAFETY: pValue is non-NULL and valid for writes of ulValueLen ≥
                        // v.len() bytes (contract of `new`); no overlap with the module's `v`.
                        unsafe {
                            ptr::copy_nonoverlapping(v.as_ptr(), a.pValue.cast::<u8>(), v.len())
                        };
                        self.set_len(i, exact);
                    } else {
                        self.set_len(i, CK_UNAVAILABLE_INFORMATION);
                        outcome.too_small = true;
                    }
                }
            }
        }
        outcome.result()
    }
}

/// What happened over the whole template.
#[derive(Debug, Default)]
struct Outcome {
    sensitive: bool,
    invalid: bool,
    too_small: bool,
}

impl Outcome {
    fn result(&self) -> CkResult<()> {
        if self.sensitive {
            Err(CkError::AttributeSensitive)
        } else if self.invalid {
            Err(CkError::AttributeTypeInvalid)
        } else if self.too_small {
            Err(CkError::BufferTooSmall)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;

    const U: CK_ULONG = CK_UNAVAILABLE_INFORMATION;

    fn attr(t: CK_ATTRIBUTE_TYPE, buf: Option<&mut Vec<u8>>) -> CK_ATTRIBUTE {
        match buf {
            Some(b) => CK_ATTRIBUTE {
                type_: t,
                pValue: b.as_mut_ptr().cast::<c_void>(),
                ulValueLen: b.len() as CK_ULONG,
            },
            None => CK_ATTRIBUTE {
                type_: t,
                pValue: ptr::null_mut(),
                ulValueLen: 0,
            },
        }
    }

    fn fill(t: &mut [CK_ATTRIBUTE], values: &[AttrValue]) -> CkResult<()> {
        // SAFETY: `t` and the buffers its entries point to outlive the call.
        let raw = unsafe { RawTemplate::new(t.as_mut_ptr(), t.len() as CK_ULONG) }.unwrap();
        raw.fill(values)
    }

    #[test]
    fn null_template() {
        // SAFETY: NULL is checked.
        unsafe {
            assert!(RawTemplate::new(ptr::null_mut(), 0).unwrap().count == 0);
            assert_eq!(
                RawTemplate::new(ptr::null_mut(), 1).unwrap_err(),
                CkError::ArgumentsBad
            );
        }
    }

    #[test]
    fn case3_null_pvalue_gives_length() {
        let mut t = [attr(CKA_VALUE, None)];
        assert_eq!(fill(&mut t, &[AttrValue::Value(vec![1, 2, 3])]), Ok(()));
        assert_eq!({ t[0].ulValueLen }, 3);
    }

    #[test]
    fn case4_copy_and_exact_length() {
        let mut b = vec![0xEE; 5];
        let mut t = [attr(CKA_VALUE, Some(&mut b))];
        assert_eq!(fill(&mut t, &[AttrValue::Value(vec![1, 2, 3])]), Ok(()));
        assert_eq!({ t[0].ulValueLen }, 3);
        assert_eq!(b, [1, 2, 3, 0xEE, 0xEE]);
    }

    #[test]
    fn case5_too_small() {
        let mut b = vec![0xEE; 2];
        let mut t = [attr(CKA_VALUE, Some(&mut b))];
        assert_eq!(
            fill(&mut t, &[AttrValue::Value(vec![1, 2, 3])]),
            Err(CkError::BufferTooSmall)
        );
        assert_eq!({ t[0].ulValueLen }, U);
        assert_eq!(b, [0xEE, 0xEE], "nothing copied into a short buffer");
    }

    #[test]
    fn case1_sensitive_and_case2_invalid() {
        let mut b = vec![0xEE; 8];
        let mut t = [attr(CKA_VALUE, Some(&mut b))];
        assert_eq!(
            fill(&mut t, &[AttrValue::Sensitive]),
            Err(CkError::AttributeSensitive)
        );
        assert_eq!({ t[0].ulValueLen }, U);
        let mut t = [attr(CKA_VALUE, None)];
        assert_eq!(
            fill(&mut t, &[AttrValue::Invalid]),
            Err(CkError::AttributeTypeInvalid)
        );
        assert_eq!({ t[0].ulValueLen }, U);
        assert_eq!(b, [0xEE; 8]);
    }

    #[test]
    fn every_entry_is_processed_and_precedence_holds() {
        let mut small = vec![0u8; 1];
        let mut ok = vec![0u8; 4];
        let mut sens = vec![0u8; 4];
        let mut t = [
            attr(CKA_LABEL, Some(&mut small)),
            attr(CKA_ID, Some(&mut ok)),
            attr(CKA_VENDOR_DEFINED, None),
            attr(CKA_PRIVATE_EXPONENT, Some(&mut sens)),
            attr(CKA_MODULUS, None),
        ];
        let values = [
            AttrValue::Value(vec![1, 2]),
            AttrValue::Value(vec![9, 9]),
            AttrValue::Invalid,
            AttrValue::Sensitive,
            AttrValue::Value(vec![0; 256]),
        ];
        assert_eq!(fill(&mut t, &values), Err(CkError::AttributeSensitive));
        let lens: Vec<_> = t.iter().map(|a| a.ulValueLen).collect();
        assert_eq!(lens, [U, 2, U, U, 256]);
        assert_eq!(ok, [9, 9, 0, 0]);

        // Without the sensitive one: TYPE_INVALID beats BUFFER_TOO_SMALL.
        let mut small = vec![0u8; 1];
        let mut t = [
            attr(CKA_LABEL, Some(&mut small)),
            attr(CKA_VENDOR_DEFINED, None),
        ];
        let values = [AttrValue::Value(vec![1, 2]), AttrValue::Invalid];
        assert_eq!(fill(&mut t, &values), Err(CkError::AttributeTypeInvalid));
        assert_eq!((t[0].ulValueLen, t[1].ulValueLen), (U, U));

        // Order does not matter: the later entry still gets processed.
        let mut small = vec![0u8; 1];
        let mut t = [
            attr(CKA_VENDOR_DEFINED, None),
            attr(CKA_LABEL, Some(&mut small)),
        ];
        let values = [AttrValue::Invalid, AttrValue::Value(vec![1, 2])];
        assert_eq!(fill(&mut t, &values), Err(CkError::AttributeTypeInvalid));
        assert_eq!({ t[1].ulValueLen }, U);
    }

    #[test]
    fn empty_value_and_count_mismatch() {
        let mut b = vec![0u8; 0];
        let mut t = [attr(CKA_LABEL, Some(&mut b))];
        assert_eq!(fill(&mut t, &[AttrValue::Value(vec![])]), Ok(()));
        assert_eq!({ t[0].ulValueLen }, 0);
        assert_eq!(fill(&mut t, &[]), Err(CkError::GeneralError));
    }

    #[test]
    fn search_template() {
        let class = CKO_PRIVATE_KEY.to_ne_bytes().to_vec();
        let mut cv = class.clone();
        let mut t = [attr(CKA_CLASS, Some(&mut cv)), attr(CKA_ID, None)];
        // SAFETY: `t` and its buffers are valid.
        let raw = unsafe { RawTemplate::new(t.as_mut_ptr(), 2) }.unwrap();
        assert_eq!(raw.types(), Ok(vec![CKA_CLASS, CKA_ID]));
        assert_eq!(
            raw.to_template(),
            Ok(vec![(CKA_CLASS, class), (CKA_ID, vec![])])
        );
        t[1].ulValueLen = 4;
        // SAFETY: as above (entry 1 has NULL pValue with a length: rejected before reading).
        let raw = unsafe { RawTemplate::new(t.as_mut_ptr(), 2) }.unwrap();
        assert_eq!(raw.to_template(), Err(CkError::ArgumentsBad));
    }
}
