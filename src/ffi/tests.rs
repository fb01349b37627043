//! FFI contract tests.
