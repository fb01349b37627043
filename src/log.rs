//! Minimal logging. Off unless `JPKI_PKCS11_DEBUG` names a file (or `stderr`).
//! Nothing that reaches here may contain a PIN or personal data: callers log codes, lengths and
//! status words only.

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::fmt::Arguments;
use std::io::Write;

static SINK: Lazy<Option<Mutex<Box<dyn Write + Send>>>> = Lazy::new(|| {
    let target = std::env::var_os("JPKI_PKCS11_DEBUG")?;
    if target == "stderr" || target == "1" {
        return Some(Mutex::new(Box::new(std::io::stderr())));
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(target).ok()?;
    Some(Mutex::new(Box::new(file)))
});

/// Writes one debug line, if logging is on.
pub fn debug(args: Arguments<'_>) {
    if let Some(sink) = SINK.as_ref() {
        let mut w = sink.lock();
        let _ = writeln!(w, "jpki-pkcs11[{}]: {}", std::process::id(), args);
    }
}

/// Whether logging is on (to skip building expensive messages).
pub fn enabled() -> bool {
    SINK.is_some()
}
