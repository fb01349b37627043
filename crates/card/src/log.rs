//! Minimal logging. The logger reads no settings of its own: the configuration hands it the level
//! and the place ([`configure`], called by `config::start_logging` at `C_Initialize` with the
//! `[log]` table of the configuration file or `JPKI_PKCS11_DEBUG`); until then, and without a
//! configuration, warnings go to stderr. Nothing that reaches here may contain a PIN or personal
//! data: callers log codes, lengths and status words only.

use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use std::fmt::Arguments;
use std::io::Write;
use std::path::PathBuf;

/// Log verbosity, from quietest to noisiest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    /// A level by name (`off`, `error`, `warn`, `info`, `debug`; any case).
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "off" | "none" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            _ => return None,
        })
    }
}

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFile {
    Stderr,
    Path(PathBuf),
}

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

static SINK: OnceCell<Option<Sink>> = OnceCell::new();

/// Sets how much the module logs, and where; the first call wins (the sink is set once per
/// process). A log file that cannot be opened: said on stderr (warnings only), and stderr used.
pub fn configure(level: LogLevel, file: &LogFile) {
    let _ = SINK.set(make_sink(level, file));
}

fn make_sink(level: LogLevel, file: &LogFile) -> Option<Sink> {
    if level == LogLevel::Off {
        return None;
    }
    let out = open(file).or_else(|| {
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
}

/// The sink: as configured, or warnings to stderr if nothing configured it first.
fn sink() -> Option<&'static Sink> {
    SINK.get_or_init(|| make_sink(LogLevel::Warn, &LogFile::Stderr))
        .as_ref()
}

fn write(level: LogLevel, tag: &str, args: Arguments<'_>) {
    if let Some(sink) = sink().filter(|s| s.level >= level) {
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
    sink().is_some_and(|s| s.level >= LogLevel::Debug)
}
