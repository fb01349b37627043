//! jpki-pkcs11: a PKCS#11 module for the two JPKI keys of the Japanese My Number Card.
//!
//! Layers, top to bottom (see `docs/architecture.md`):
//! - `ffi`: the only code that touches C pointers; the function tables and entry points.
//! - `backend`: one function per PKCS#11 operation, one file per concern (module lifecycle,
//!   slots, sessions, login, objects, signing, digests, random); the global state.
//! - `token`: the PKCS#11 view of the card's tokens (objects, attributes, mechanisms).
//! - `config`, `pinentry`: the configuration file, PIN entry by the module.
//!
//! Below them, in their own crates: `jpki-card` (the card protocol, transports, the bound card
//! with its login state, logging, wiped secret buffers) and `jpki-vcard` (the virtual card used by
//! the tests and `jpki virtual-card`). Only the three PKCS#11 entry points leave this crate.

#![deny(clippy::undocumented_unsafe_blocks, clippy::not_unsafe_ptr_arg_deref)]

// The backend is the module's inside; the fuzz targets (and their corpus replay in the test
// suite) drive it directly with the `test-hooks` feature, never enabled in a release build.
#[cfg(feature = "test-hooks")]
pub mod backend;
#[cfg(not(feature = "test-hooks"))]
mod backend;
mod config;
mod error;
mod ffi;
mod pinentry;
mod token;
