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

/// The sink `configure` set (once per process).
static SINK: OnceCell<Option<Sink>> = OnceCell::new();
/// Warnings to stderr, for lines logged before `configure` (e.g. NSS's first `C_GetInterface`,
/// before `C_Initialize`, asks for a fork-safe "PKCS 11" interface, which the module does not
/// have: `CKR_ARGUMENTS_BAD`, logged; NSS then asks without the flag). It must not take the
/// configured sink's place: that made `JPKI_PKCS11_DEBUG` and `[log]` do nothing under NSS.
static EARLY: OnceCell<Option<Sink>> = OnceCell::new();

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

/// The sink: as configured, or warnings to stderr until then.
fn sink() -> Option<&'static Sink> {
    match SINK.get() {
        Some(configured) => configured.as_ref(),
        None => EARLY
            .get_or_init(|| make_sink(LogLevel::Warn, &LogFile::Stderr))
            .as_ref(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A line logged before `configure` (NSS calls `C_GetInterface` first, and an interface the
    /// module does not have is logged as an error) does not keep the configured log from
    /// taking effect.
    #[test]
    fn a_line_logged_before_configure_does_not_block_the_configured_log() {
        let path = std::env::temp_dir().join(format!("jpki-log-test-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        debug(format_args!("before configure"));
        configure(LogLevel::Debug, &LogFile::Path(path.clone()));
        debug(format_args!("after configure"));
        assert!(enabled());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        assert!(text.contains("after configure"), "{text:?}");
        assert!(!text.contains("before configure"), "{text:?}");
    }
}
