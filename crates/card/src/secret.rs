//! Memory for what must not outlive its use nor reach a core dump: the PINs the module holds and
//! the certificates it caches (the signature certificate carries the holder's name, address,
//! date of birth and sex).
//!
//! [`SecretBuf`] is a fixed-capacity byte buffer on pages of its own (page-aligned, a whole
//! number of pages, so nothing else shares them), which it
//! - marks `MADV_DONTDUMP` (Linux: left out of core dumps, also of `gcore`'s) and locks with
//!   `mlock` (best effort: kept out of swap while the lock limit allows) when it allocates them,
//! - overwrites with zeros, unlocks and marks `MADV_DODUMP` again before it frees them.
//!
//! Its capacity is fixed when it is made, so it never reallocates: no copy is ever left behind
//! in freed memory. Elsewhere the module wipes short-lived copies (APDU buffers, attribute
//! values) with `zeroize` when they are dropped; [`extend_wiped`] grows such a buffer without
//! leaving its old contents in a freed allocation.
//!
//! This module and `src/ffi/` are the only places with `unsafe` code (here: allocating,
//! freeing, and the two system calls); every block says why it is sound.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use zeroize::{Zeroize, Zeroizing};

/// A byte buffer of fixed capacity on pages of its own, kept out of core dumps (Linux) and,
/// when the system allows, out of swap; wiped when dropped. Its `Debug` shows the length only.
pub struct SecretBuf {
    /// Start of the pages (dangling, never dereferenced, when `size == 0`).
    ptr: NonNull<u8>,
    /// Bytes in use.
    len: usize,
    /// Bytes allocated: a whole number of pages, or 0.
    size: usize,
}

// SAFETY: a SecretBuf owns its allocation exclusively, as a Vec<u8> does; `&SecretBuf` gives
// read-only access only.
unsafe impl Send for SecretBuf {}
// SAFETY: as above: shared references only read.
unsafe impl Sync for SecretBuf {}

/// The system's page size (4096 where it cannot be asked).
fn page_size() -> usize {
    static PAGE: once_cell::sync::OnceCell<usize> = once_cell::sync::OnceCell::new();
    *PAGE.get_or_init(|| {
        #[cfg(unix)]
        {
            // SAFETY: sysconf has no memory-safety preconditions.
            let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            if n >= 4096 && (n as usize).is_power_of_two() {
                return n as usize;
            }
        }
        4096
    })
}

/// Marks `[ptr, ptr + size)` (whole pages of one allocation) as secret, or no longer secret.
/// Failures are ignored: the memory is still wiped when freed, it may then only be dumped or
/// swapped.
#[allow(unused_variables)]
fn protect(ptr: NonNull<u8>, size: usize, secret: bool) {
    #[cfg(target_os = "linux")]
    {
        let advice = if secret {
            libc::MADV_DONTDUMP
        } else {
            libc::MADV_DODUMP
        };
        // SAFETY: `ptr` is page-aligned and `[ptr, ptr + size)` is an allocation of ours made
        // of whole pages that no other object shares; madvise with these advices only changes
        // whether the pages are dumped, never their contents.
        unsafe { libc::madvise(ptr.as_ptr().cast(), size, advice) };
    }
    #[cfg(unix)]
    {
        // SAFETY: as above; mlock/munlock only change whether the pages may be swapped out.
        unsafe {
            if secret {
                libc::mlock(ptr.as_ptr().cast(), size);
            } else {
                libc::munlock(ptr.as_ptr().cast(), size);
            }
        }
    }
}

impl SecretBuf {
    /// An empty buffer that can hold `capacity` bytes (rounded up to whole pages).
    pub fn with_capacity(capacity: usize) -> SecretBuf {
        if capacity == 0 {
            return SecretBuf {
                ptr: NonNull::dangling(),
                len: 0,
                size: 0,
            };
        }
        let page = page_size();
        let size = capacity.div_ceil(page) * page;
        let layout = Layout::from_size_align(size, page).expect("secret buffer size");
        // SAFETY: the layout's size is not zero. Zeroed, so every byte is initialized.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        protect(ptr, size, true);
        SecretBuf { ptr, len: 0, size }
    }

    /// A buffer holding a copy of `data` (and no room for more).
    pub fn from_slice(data: &[u8]) -> SecretBuf {
        let mut b = SecretBuf::with_capacity(data.len());
        b.extend_from_slice(data);
        b
    }

    /// Bytes the buffer can hold.
    pub fn capacity(&self) -> usize {
        self.size
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `data`. Panics if it does not fit: a secret buffer never reallocates, its user
    /// sizes it first.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let end = self
            .len
            .checked_add(data.len())
            .filter(|&e| e <= self.size)
            .expect("SecretBuf capacity exceeded");
        if data.is_empty() {
            return;
        }
        // SAFETY: `[len, end)` is inside the allocation (end ≤ size, checked above), and `data`
        // cannot overlap it (we hold `&mut self`).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.ptr.as_ptr().add(self.len),
                data.len(),
            )
        };
        self.len = end;
    }

    /// Shortens the buffer to `len` bytes, wiping what is cut off.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.all_mut()[len..].zeroize();
            self.len = len;
        }
    }

    /// The whole allocation, in use or not.
    fn all_mut(&mut self) -> &mut [u8] {
        if self.size == 0 {
            return &mut [];
        }
        // SAFETY: the allocation is `size` bytes, all initialized (zeroed when allocated), and
        // `&mut self` makes this the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.size) }
    }

    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the first `len` bytes are inside the allocation and were written by
        // `extend_from_slice`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        if self.size == 0 {
            return;
        }
        self.all_mut().zeroize();
        protect(self.ptr, self.size, false);
        let layout = Layout::from_size_align(self.size, page_size()).expect("as allocated");
        // SAFETY: allocated in `with_capacity` with this very layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), layout) };
    }
}

impl Clone for SecretBuf {
    fn clone(&self) -> SecretBuf {
        SecretBuf::from_slice(self)
    }
}

impl std::ops::Deref for SecretBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for SecretBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for SecretBuf {
    fn eq(&self, other: &SecretBuf) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SecretBuf {}

impl std::fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBuf({} bytes)", self.len)
    }
}

/// Appends `more` to `v`; if `v` must grow, its contents move to a new allocation and the old
/// one is wiped before it is freed (a plain `Vec` growth would leave a copy in freed memory).
pub fn extend_wiped(v: &mut Zeroizing<Vec<u8>>, more: &[u8]) {
    if v.capacity() - v.len() < more.len() {
        let need = v.len() + more.len();
        let mut grown = Zeroizing::new(Vec::with_capacity(need.max(2 * v.capacity())));
        grown.extend_from_slice(v);
        std::mem::swap(v, &mut grown);
        // `grown` (the old allocation) is wiped here.
    }
    v.extend_from_slice(more);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_is_put_in_up_to_its_capacity() {
        let mut b = SecretBuf::with_capacity(10);
        assert!(b.is_empty());
        assert!(b.capacity() >= 10);
        assert_eq!(b.capacity() % page_size(), 0, "whole pages");
        b.extend_from_slice(b"abc");
        assert_eq!(b.as_ptr() as usize % page_size(), 0, "page-aligned");
        b.extend_from_slice(b"");
        b.extend_from_slice(b"def");
        assert_eq!(&b[..], b"abcdef");
        assert_eq!(b.len(), 6);
        b.truncate(2);
        assert_eq!(&b[..], b"ab");
        b.truncate(5);
        assert_eq!(&b[..], b"ab");
        let c = b.clone();
        assert_eq!(c, b);
        assert_ne!(c.as_ptr(), b.as_ptr());
        assert_eq!(
            format!("{c:?}"),
            "SecretBuf(2 bytes)",
            "Debug shows no content"
        );
    }

    #[test]
    fn empty_buffers_allocate_nothing() {
        let b = SecretBuf::with_capacity(0);
        assert_eq!(b.capacity(), 0);
        assert_eq!(&b[..], b"");
        let c = SecretBuf::from_slice(&[]);
        assert_eq!(c, b);
        drop(c.clone());
    }

    #[test]
    fn never_grows() {
        let mut b = SecretBuf::from_slice(b"12");
        let room = b.capacity() - b.len();
        b.extend_from_slice(&vec![7u8; room]);
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.extend_from_slice(b"x")));
        assert!(r.is_err(), "a full buffer refuses more");
        assert_eq!(b.len(), b.capacity());
    }

    #[test]
    fn truncation_wipes_the_tail() {
        let mut b = SecretBuf::from_slice(b"secret!");
        b.truncate(3);
        // Look past `len` inside the allocation: the tail is zero.
        let tail = &b.all_mut()[3..7];
        assert_eq!(tail, &[0, 0, 0, 0]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn its_pages_are_left_out_of_core_dumps_while_it_lives() {
        // /proc/self/smaps shows VM_DONTDUMP as the "dd" flag of the mapping holding the pages.
        fn flags_at(addr: usize) -> String {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            let mut inside = false;
            for line in smaps.lines() {
                if let Some((range, _)) = line.split_once(' ') {
                    if let Some((lo, hi)) = range.split_once('-') {
                        if let (Ok(lo), Ok(hi)) =
                            (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                        {
                            inside = lo <= addr && addr < hi;
                            continue;
                        }
                    }
                }
                if inside {
                    if let Some(flags) = line.strip_prefix("VmFlags:") {
                        return flags.to_string();
                    }
                }
            }
            panic!("no mapping holds {addr:#x}");
        }
        let b = SecretBuf::from_slice(b"PIN");
        let addr = b.as_ptr() as usize;
        assert!(
            flags_at(addr).split_whitespace().any(|f| f == "dd"),
            "MADV_DONTDUMP not set: {}",
            flags_at(addr)
        );
    }

    #[test]
    fn extend_wiped_grows_and_keeps_the_contents() {
        let mut v = Zeroizing::new(Vec::with_capacity(2));
        extend_wiped(&mut v, b"ab");
        let before = v.as_ptr();
        extend_wiped(&mut v, b"cdef");
        assert_eq!(&v[..], b"abcdef");
        assert_ne!(v.as_ptr(), before, "moved to a larger allocation");
        extend_wiped(&mut v, b"");
        assert_eq!(&v[..], b"abcdef");
    }
}
