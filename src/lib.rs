//! jpki-pkcs11: a PKCS#11 module for the two JPKI keys of the Japanese My Number Card.
//!
//! Layers, top to bottom (see `docs/architecture.md`):
//! - `ffi`: the only code that touches C pointers; the function tables and entry points.
//! - `backend`: one function per PKCS#11 operation, one file per concern (module lifecycle,
//!   slots, sessions, login, objects, signing, digests, random); the global state.
//! - `token`: the PKCS#11 view of one card (objects, attributes, mechanisms, login state).
//! - `card`: the card protocol (APDUs, JPKI operations) over a transport.
//! - `config`, `log`, `pinentry`: the configuration file, logging, PIN entry by the module.
//! - `secret`: page-aligned, wiped, not-dumped buffers for PINs and cached certificates.
//! - `vcard`: the virtual My Number Card used by the tests and `jpki virtual-card`.

#![deny(clippy::undocumented_unsafe_blocks, clippy::not_unsafe_ptr_arg_deref)]

// The backend is the module's inside; the fuzz targets (and their corpus replay in the test
// suite) drive it directly with the `test-hooks` feature, never enabled in a release build.
#[cfg(feature = "test-hooks")]
pub mod backend;
#[cfg(not(feature = "test-hooks"))]
mod backend;
pub mod card;
pub mod config;
pub mod error;
pub mod ffi;
pub mod log;
pub mod pinentry;
pub mod secret;
pub mod token;
pub mod vcard;
