//! The one DER header reader of the module, on the `der` crate (through `x509-cert`): a tag and
//! a definite length in its shortest form, read from the first bytes of an element, so that a
//! certificate file can be sized from its first answer and a certificate's fields found in
//! place (no parsed copies of personal data: see `cert`).

use x509_cert::der::{Decode, Header, Reader, SliceReader};

/// The header of the DER element at the start of `bytes`: its tag byte, the header's length and
/// the contents' length. `None` for an incomplete or non-canonical header, or a multi-byte tag.
/// The contents need not be in `bytes` (partial input is fine).
pub fn header(bytes: &[u8]) -> Option<(u8, usize, usize)> {
    let mut reader = SliceReader::new(bytes).ok()?;
    let h = Header::decode(&mut reader).ok()?;
    let header_len = usize::try_from(u32::from(reader.position())).ok()?;
    let len = usize::try_from(u32::from(h.length)).ok()?;
    Some((bytes[0], header_len, len))
}

#[cfg(test)]
mod tests {
    use super::header;

    #[test]
    fn headers() {
        assert_eq!(header(&[0x30, 0x05]), Some((0x30, 2, 5)));
        assert_eq!(header(&[0x30, 0x81, 0x80]), Some((0x30, 3, 0x80)));
        assert_eq!(header(&[0x02, 0x82, 0x06, 0x21, 1]), Some((0x02, 4, 0x621)));
        assert_eq!(header(&[0xA0, 0x03]), Some((0xA0, 2, 3)));
        // Non-canonical lengths, incomplete headers, indefinite length, multi-byte tags.
        assert_eq!(header(&[0x30, 0x81, 0x05]), None);
        assert_eq!(header(&[0x30, 0x82, 0x00, 0x80]), None);
        assert_eq!(header(&[0x30, 0x82, 0x06]), None);
        assert_eq!(header(&[0x30]), None);
        assert_eq!(header(&[]), None);
        assert_eq!(header(&[0x30, 0x80]), None);
        assert_eq!(header(&[0x1F, 0x81, 0x01, 0x00]), None);
    }
}
