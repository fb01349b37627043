//! jpki-pkcs11: a PKCS#11 module for the two JPKI keys of the Japanese My Number Card.
//!
//! Layers, top to bottom (see `docs/architecture.md`):
//! - `ffi`: the only code that touches C pointers; the function tables and entry points.
//! - `api`: the safe face, one function per PKCS#11 operation.
//! - `state`: the one global module (slots, sessions, fork policy).
//! - `token`: the PKCS#11 view of one card (objects, attributes, mechanisms, login).
//! - `card`: the card protocol (APDUs, JPKI operations) over a transport.
//! - `config`, `log`, `pinentry`: the configuration file, logging, PIN entry by the module.
//! - `secret`: page-aligned, wiped, not-dumped buffers for PINs and cached certificates.
//! - `vcard`: the virtual My Number Card used by the tests and `jpki virtual-card`.

#![deny(clippy::undocumented_unsafe_blocks, clippy::not_unsafe_ptr_arg_deref)]

pub mod api;
#[cfg(test)]
mod backend_tests;
pub mod card;
pub mod config;
pub mod error;
pub mod ffi;
pub mod log;
pub mod pinentry;
#[cfg(test)]
mod promises_tests;
#[cfg(test)]
mod reliability_tests;
pub mod secret;
pub mod state;
#[cfg(test)]
mod test_support;
pub mod token;
#[cfg(test)]
mod trace_tests;
#[cfg(test)]
mod unconfirmed_tests;
pub mod vcard;
