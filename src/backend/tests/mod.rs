//! The in-process tests of the whole module below `ffi`: the backend's calls against virtual
//! cards in an in-process reader (no pcscd).
//!
//! - `calls`: every operation, PIN safety, the card never left unlocked, removal, APDU counts.
//! - `reliability`: injected faults of card and reader, and what must hold after each.
//! - `promises`: the findings of the attack review (issue 9), each a test that failed before.
//! - `unconfirmed`: the real card's unconfirmed behaviours as virtual card modes.
//! - `traces`: the benchmark flows' APDU traces, byte for byte against `golden/apdu_traces.txt`.
//! - `support`: the shared fixture (a module on one in-process reader) and signature checks.

mod calls;
mod promises;
mod reliability;
pub(crate) mod support;
mod traces;
mod unconfirmed;
