//! Minimal logging, configured by the `[log]` table of the configuration file (`level`, `file`;
//! default: warnings to stderr). `JPKI_PKCS11_DEBUG=<file>|stderr` overrides it with debug level.
//! Nothing that reaches here may contain a PIN or personal data: callers log codes, lengths and
//! status words only.

use crate::config::{LogFile, LogLevel};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::fmt::Arguments;
use std::io::Write;

struct Sink {
    level: LogLevel,
    out: Mutex<Box<dyn Write + Send>>,
}

fn open(file: &LogFile) -> Option<Box<dyn Write + Send>> {
    match file {
        LogFile::Stderr => Some(Box::new(std::io::stderr())),
        LogFile::Path(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
            .map(|f| Box::new(f) as Box<dyn Write + Send>),
    }
}

static SINK: Lazy<Option<Sink>> = Lazy::new(|| {
    let cfg = crate::config::get();
    let (level, file) = match std::env::var_os("JPKI_PKCS11_DEBUG") {
        Some(t) if t == "stderr" || t == "1" => (LogLevel::Debug, LogFile::Stderr),
        Some(t) if !t.is_empty() => (LogLevel::Debug, LogFile::Path(t.into())),
        _ => (cfg.log_level, cfg.log_file.clone()),
    };
    if level == LogLevel::Off {
        return None;
    }
    // A log file that cannot be opened: say so on stderr (warnings only), rather than nothing.
    let out = open(&file).or_else(|| {
        if level >= LogLevel::Warn {
            let _ = writeln!(
                std::io::stderr(),
                "jpki-pkcs11[{}]: warning: cannot open the log file {file:?}; logging to stderr",
                std::process::id()
            );
        }
        open(&LogFile::Stderr)
    })?;
    Some(Sink {
        level,
        out: Mutex::new(out),
    })
});

/// Starts logging (opens the sink) and reports the configuration's problems, once.
pub fn init() {
    static DONE: Lazy<()> = Lazy::new(|| {
        let cfg = crate::config::get();
        for p in &cfg.problems {
            warn(format_args!("configuration: {p}"));
        }
        if !cfg.sources.is_empty() {
            debug(format_args!(
                "configuration read from {:?}: tokens auth={} sign={}, pss={}, pinentry={}",
                cfg.sources,
                cfg.expose_auth,
                cfg.expose_sign,
                cfg.pss,
                cfg.pinentry.is_some()
            ));
        }
    });
    Lazy::force(&DONE);
}

fn write(level: LogLevel, tag: &str, args: Arguments<'_>) {
    if let Some(sink) = SINK.as_ref().filter(|s| s.level >= level) {
        let mut w = sink.out.lock();
        let _ = writeln!(w, "jpki-pkcs11[{}]: {tag}{}", std::process::id(), args);
    }
}

/// Logs a debug line (details of card traffic and errors).
pub fn debug(args: Arguments<'_>) {
    write(LogLevel::Debug, "", args)
}

/// Logs an informational line.
pub fn info(args: Arguments<'_>) {
    write(LogLevel::Info, "", args)
}

/// Logs a warning (something the user should fix, e.g. the configuration).
pub fn warn(args: Arguments<'_>) {
    write(LogLevel::Warn, "warning: ", args)
}

/// Logs an error.
pub fn error(args: Arguments<'_>) {
    write(LogLevel::Error, "error: ", args)
}

/// Whether debug logging is on (to skip building expensive messages).
pub fn enabled() -> bool {
    SINK.as_ref().is_some_and(|s| s.level >= LogLevel::Debug)
}
