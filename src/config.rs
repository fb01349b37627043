//! The module's configuration file (TOML), loaded once, lazily, the first time the module needs
//! it (at `C_Initialize`). See `docs/configuration.md` for the format.
//!
//! Files, each overriding the ones before it key by key (a key missing from a later file keeps
//! the earlier value):
//! 1. `/etc/jpki-pkcs11.toml`
//! 2. `$XDG_CONFIG_HOME/jpki-pkcs11/config.toml` (default `~/.config/jpki-pkcs11/config.toml`)
//! 3. the file named in `JPKI_PKCS11_CONF`
//!
//! A missing file is skipped silently. A file that does not parse, an unknown key or a value of
//! the wrong type never stops the module: the problem is recorded in [`Config::problems`] (logged
//! at warning level when logging starts) and the key keeps its earlier (or default) value.

use jpki_card::jpki::KeyPair;
pub(crate) use jpki_card::log::{LogFile, LogLevel};
use once_cell::sync::Lazy;
#[cfg(test)]
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The module's settings, after every file was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// `[log] level`: default `warn`.
    pub log_level: LogLevel,
    /// `[log] file`: default `stderr`.
    pub log_file: LogFile,
    /// `tokens`: which of the card's two tokens the module shows (default both).
    pub expose_auth: bool,
    pub expose_sign: bool,
    /// `pss`: offer the RSA-PSS mechanisms (default true).
    pub pss: bool,
    /// `pinentry`: a GnuPG pinentry program; when set, the tokens advertise
    /// `CKF_PROTECTED_AUTHENTICATION_PATH` and `C_Login` with a NULL PIN asks through it.
    pub pinentry: Option<PathBuf>,
    /// Files that were read (for the log).
    pub sources: Vec<PathBuf>,
    /// What was wrong with them, one message each (never contains a PIN: the file has none).
    pub problems: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            log_level: LogLevel::Warn,
            log_file: LogFile::Stderr,
            expose_auth: true,
            expose_sign: true,
            pss: true,
            pinentry: None,
            sources: Vec::new(),
            problems: Vec::new(),
        }
    }
}

impl Config {
    /// Whether the module shows `key`'s token.
    pub(crate) fn exposes(&self, key: KeyPair) -> bool {
        match key {
            KeyPair::Auth => self.expose_auth,
            KeyPair::Sign => self.expose_sign,
        }
    }

    /// The configuration files, in the order they are applied.
    pub(crate) fn default_paths() -> Vec<PathBuf> {
        let mut paths = vec![PathBuf::from("/etc/jpki-pkcs11.toml")];
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            });
        if let Some(dir) = xdg {
            paths.push(dir.join("jpki-pkcs11/config.toml"));
        }
        if let Some(f) = std::env::var_os("JPKI_PKCS11_CONF").filter(|f| !f.is_empty()) {
            paths.push(PathBuf::from(f));
        }
        paths
    }

    /// Applies `paths` in order onto the defaults. A missing file is skipped, except the one
    /// named in `JPKI_PKCS11_CONF`, which is reported.
    pub(crate) fn load(paths: &[PathBuf]) -> Config {
        let mut cfg = Config::default();
        let explicit = std::env::var_os("JPKI_PKCS11_CONF").map(PathBuf::from);
        for path in paths {
            match std::fs::read_to_string(path) {
                Ok(text) => cfg.apply(&text, path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if explicit.as_deref() == Some(path.as_path()) {
                        cfg.problems.push(format!(
                            "{}: not found (named in JPKI_PKCS11_CONF)",
                            path.display()
                        ));
                    }
                }
                Err(e) => cfg
                    .problems
                    .push(format!("{}: cannot be read: {e}", path.display())),
            }
        }
        cfg
    }

    /// Applies one file's text: every key it sets that is valid overrides the current value.
    pub(crate) fn apply(&mut self, text: &str, source: &Path) {
        self.sources.push(source.to_path_buf());
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                let msg = e.to_string().replace('\n', " ");
                self.problems.push(format!(
                    "{}: not valid TOML, file ignored: {}",
                    source.display(),
                    msg.trim()
                ));
                return;
            }
        };
        let src = source.display().to_string();
        for (key, value) in &table {
            match key.as_str() {
                "log" => match value.as_table() {
                    Some(log) => self.apply_log(log, &src),
                    None => self.bad(&src, "log", "a table ([log])"),
                },
                "tokens" => match token_list(value) {
                    Some((auth, sign)) => {
                        self.expose_auth = auth;
                        self.expose_sign = sign;
                    }
                    None => self.bad(
                        &src,
                        "tokens",
                        "a list of \"auth\" and/or \"sign\", e.g. [\"auth\", \"sign\"]",
                    ),
                },
                "pss" => match value.as_bool() {
                    Some(b) => self.pss = b,
                    None => self.bad(&src, "pss", "true or false"),
                },
                "pinentry" => match value.as_str() {
                    Some("") => self.pinentry = None,
                    Some(p) if Path::new(p).is_absolute() => self.pinentry = Some(p.into()),
                    _ => self.bad(
                        &src,
                        "pinentry",
                        "an absolute path, e.g. \"/usr/bin/pinentry\"",
                    ),
                },
                other => self
                    .problems
                    .push(format!("{src}: unknown key `{other}` ignored")),
            }
        }
    }

    fn apply_log(&mut self, log: &toml::Table, src: &str) {
        for (key, value) in log {
            match key.as_str() {
                "level" => match value.as_str().and_then(LogLevel::parse) {
                    Some(l) => self.log_level = l,
                    None => self.bad(src, "log.level", "one of off, error, warn, info, debug"),
                },
                "file" => match value.as_str() {
                    Some("stderr") => self.log_file = LogFile::Stderr,
                    Some(p) if Path::new(p).is_absolute() => {
                        self.log_file = LogFile::Path(p.into())
                    }
                    _ => self.bad(src, "log.file", "\"stderr\" or an absolute path"),
                },
                other => self
                    .problems
                    .push(format!("{src}: unknown key `log.{other}` ignored")),
            }
        }
    }

    fn bad(&mut self, src: &str, key: &str, want: &str) {
        self.problems.push(format!(
            "{src}: `{key}` must be {want}; keeping the default"
        ));
    }
}

/// `["auth", "sign"]` → which tokens are shown.
fn token_list(value: &toml::Value) -> Option<(bool, bool)> {
    let list = value.as_array()?;
    let (mut auth, mut sign) = (false, false);
    for v in list {
        match v.as_str()? {
            "auth" => auth = true,
            "sign" => sign = true,
            _ => return None,
        }
    }
    Some((auth, sign))
}

static LOADED: Lazy<Arc<Config>> = Lazy::new(|| Arc::new(Config::load(&Config::default_paths())));
/// The in-process tests' configuration, in place of the files (never in a build of the module).
#[cfg(test)]
static OVERRIDE: Lazy<Mutex<Option<Arc<Config>>>> = Lazy::new(|| Mutex::new(None));

/// The module's configuration (loaded on first use).
pub(crate) fn get() -> Arc<Config> {
    #[cfg(test)]
    if let Some(c) = OVERRIDE.lock().as_ref() {
        return c.clone();
    }
    LOADED.clone()
}

/// Starts logging as the configuration says (`JPKI_PKCS11_DEBUG=<file>|stderr` overrides it with
/// debug level), and reports the configuration's problems in the log, once per process.
pub(crate) fn start_logging() {
    static DONE: Lazy<()> = Lazy::new(|| {
        let cfg = get();
        let (level, file) = match std::env::var_os("JPKI_PKCS11_DEBUG") {
            Some(t) if t == "stderr" || t == "1" => (LogLevel::Debug, LogFile::Stderr),
            Some(t) if !t.is_empty() => (LogLevel::Debug, LogFile::Path(t.into())),
            _ => (cfg.log_level, cfg.log_file.clone()),
        };
        jpki_card::log::configure(level, &file);
        for p in &cfg.problems {
            jpki_card::log::warn(format_args!("configuration: {p}"));
        }
        if !cfg.sources.is_empty() {
            jpki_card::log::debug(format_args!(
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

/// Replaces the configuration files by `cfg` (in-process tests); `None` goes back to the files.
#[cfg(test)]
pub(crate) fn set_override(cfg: Option<Config>) {
    *OVERRIDE.lock() = cfg.map(Arc::new);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(texts: &[&str]) -> Config {
        let mut c = Config::default();
        for (i, t) in texts.iter().enumerate() {
            c.apply(t, Path::new(&format!("/f{i}.toml")));
        }
        c
    }

    #[test]
    fn defaults() {
        let c = applied(&[""]);
        assert_eq!(c.log_level, LogLevel::Warn);
        assert_eq!(c.log_file, LogFile::Stderr);
        assert!(c.expose_auth && c.expose_sign && c.pss);
        assert_eq!(c.pinentry, None);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn every_option() {
        let c = applied(&[r#"
            tokens = ["sign"]
            pss = false
            pinentry = "/usr/bin/pinentry-curses"
            [log]
            level = "debug"
            file = "/tmp/jpki.log"
        "#]);
        assert!(!c.expose_auth && c.expose_sign && !c.pss);
        assert_eq!(
            c.pinentry.as_deref(),
            Some(Path::new("/usr/bin/pinentry-curses"))
        );
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.log_file, LogFile::Path("/tmp/jpki.log".into()));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn later_files_override_key_by_key() {
        let c = applied(&[
            "pss = false\npinentry = \"/usr/bin/pinentry\"\n[log]\nlevel = \"info\"\n",
            "pss = true\n[log]\nfile = \"/tmp/x.log\"\n",
            "tokens = [\"auth\"]\n",
        ]);
        assert!(c.pss, "second file sets pss back");
        assert_eq!(c.pinentry.as_deref(), Some(Path::new("/usr/bin/pinentry")));
        assert_eq!(c.log_level, LogLevel::Info, "kept from the first file");
        assert_eq!(c.log_file, LogFile::Path("/tmp/x.log".into()));
        assert!(c.expose_auth && !c.expose_sign);
        assert_eq!(c.sources.len(), 3);
    }

    #[test]
    fn bad_files_give_messages_and_safe_defaults() {
        let c = applied(&["pss = [", "pss = \"no\"\ntokens = [\"x\"]\npinentry = \"pinentry\"\nfoo = 1\n[log]\nlevel = \"loud\"\nfile = \"rel.log\"\n"]);
        assert_eq!(
            c,
            Config {
                sources: c.sources.clone(),
                problems: c.problems.clone(),
                ..Config::default()
            }
        );
        let all = c.problems.join("\n");
        for want in [
            "/f0.toml: not valid TOML",
            "`pss` must be true or false",
            "`tokens` must be",
            "`pinentry` must be an absolute path",
            "unknown key `foo`",
            "`log.level` must be",
            "`log.file` must be",
        ] {
            assert!(all.contains(want), "no {want:?} in:\n{all}");
        }
    }

    #[test]
    fn missing_files_are_skipped() {
        let c = Config::load(&[PathBuf::from("/nonexistent/jpki-pkcs11.toml")]);
        assert!(c.problems.is_empty());
        assert!(c.sources.is_empty());
    }
}
