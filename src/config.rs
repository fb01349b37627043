//! The module's configuration file (TOML), loaded once, lazily, the first time the module needs
//! it (at `C_Initialize`). See `docs/configuration.md` for the format.
//!
//! Files, each overriding the ones before it key by key (a key missing from a later file keeps
//! the earlier value), by platform ([`paths_for`]):
//!
//! | | system-wide | the user's |
//! |---|---|---|
//! | Linux and other Unix | `/etc/jpki-pkcs11.toml` | `$XDG_CONFIG_HOME/jpki-pkcs11/config.toml` (default `~/.config/…`) |
//! | macOS | `/Library/Application Support/jpki-pkcs11/config.toml` | `~/Library/Application Support/jpki-pkcs11/config.toml` |
//! | Windows | `%PROGRAMDATA%\jpki-pkcs11\config.toml` | `%APPDATA%\jpki-pkcs11\config.toml` |
//!
//! and last the file named in `JPKI_PKCS11_CONF`.
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
    /// `signing_programs`: the programs (executable names, see [`program_name`]) for which the
    /// signature token does not claim the public-certificates profile, so that NSS logs in (asks
    /// for the signature password) to look for the signature certificate. Default: Thunderbird.
    pub signing_programs: Vec<String>,
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
            signing_programs: DEFAULT_SIGNING_PROGRAMS
                .iter()
                .map(|p| p.to_string())
                .collect(),
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

    /// Whether the program `exe` (a path or a file name) is one of `signing_programs`: then the
    /// signature token is not a public-certificates token for it (docs/configuration.md).
    pub(crate) fn is_signing_program(&self, exe: &str) -> bool {
        let name = program_name(exe);
        !name.is_empty() && self.signing_programs.contains(&name)
    }

    /// Whether the program this module runs in is one of `signing_programs`.
    pub(crate) fn in_signing_program(&self) -> bool {
        CURRENT_PROGRAM
            .as_deref()
            .is_some_and(|exe| self.is_signing_program(exe))
    }

    /// The configuration files of this platform, in the order they are applied.
    pub(crate) fn default_paths() -> Vec<PathBuf> {
        paths_for(Platform::current(), &|k| std::env::var_os(k))
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
                        if cfg!(windows) {
                            "an absolute path, e.g. 'C:\\Program Files (x86)\\GnuPG\\bin\\pinentry.exe'"
                        } else {
                            "an absolute path, e.g. \"/usr/bin/pinentry\""
                        },
                    ),
                },
                "signing_programs" => match value.as_array().and_then(|a| {
                    a.iter()
                        .map(|v| v.as_str().map(program_name))
                        .collect::<Option<Vec<String>>>()
                }) {
                    Some(names) => {
                        self.signing_programs = Vec::new();
                        for name in names {
                            if BROWSERS.contains(&name.as_str()) {
                                self.problems.push(format!(
                                    "{src}: `signing_programs`: \"{name}\" is a web browser, ignored \
                                     (it would ask for the signature password to list certificates \
                                     for TLS client authentication)"
                                ));
                            } else if !name.is_empty() && !self.signing_programs.contains(&name) {
                                self.signing_programs.push(name);
                            }
                        }
                    }
                    None => self.bad(
                        &src,
                        "signing_programs",
                        "a list of program names, e.g. [\"thunderbird\"]",
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

/// The platform conventions for configuration files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Linux and other Unix: `/etc` and the XDG base directories.
    Unix,
    /// macOS: `/Library/Application Support` and `~/Library/Application Support` (where
    /// macOS programs keep their settings; docs/macos.md says why not XDG).
    MacOs,
    /// Windows: `%PROGRAMDATA%` (all users) and `%APPDATA%` (the user's roaming profile).
    Windows,
}

impl Platform {
    /// The platform this module was built for.
    pub fn current() -> Platform {
        if cfg!(windows) {
            Platform::Windows
        } else if cfg!(target_os = "macos") {
            Platform::MacOs
        } else {
            Platform::Unix
        }
    }
}

/// The configuration files of `platform`, in the order they are applied, with environment
/// variables read through `env` (an unset or empty variable drops the file that needs it).
pub fn paths_for(
    platform: Platform,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Vec<PathBuf> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let app = |dir: PathBuf| dir.join("jpki-pkcs11").join("config.toml");
    let mut paths = Vec::new();
    match platform {
        Platform::Unix => {
            paths.push(PathBuf::from("/etc/jpki-pkcs11.toml"));
            let xdg = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|h| h.join(".config")));
            paths.extend(xdg.map(app));
        }
        Platform::MacOs => {
            paths.push(app(PathBuf::from("/Library/Application Support")));
            paths.extend(var("HOME").map(|h| app(h.join("Library").join("Application Support"))));
        }
        Platform::Windows => {
            paths.extend(var("PROGRAMDATA").map(app));
            paths.extend(var("APPDATA").map(app));
        }
    }
    paths.extend(var("JPKI_PKCS11_CONF"));
    paths
}

/// `signing_programs`' default: the NSS programs that sign with the signature key and look for
/// its certificate before they log in (docs/design/nss-friendly-tokens.md).
pub(crate) const DEFAULT_SIGNING_PROGRAMS: [&str; 2] = ["thunderbird", "betterbird"];

/// Web browsers (as [`program_name`]s) that `signing_programs` never takes: for a browser, the
/// signature token must stay a public-certificates token, or NSS asks for the signature password
/// whenever a site asks for a client certificate.
const BROWSERS: [&str; 12] = [
    "firefox",
    "firefox-esr",
    "librewolf",
    "floorp",
    "waterfox",
    "iceweasel",
    "chromium",
    "chromium-browser",
    "chrome",
    "google-chrome",
    "msedge",
    "brave",
];

/// A program's name as `signing_programs` compares it: the file name of `exe` (a path or a
/// name), lower case, without a Windows `.exe` and without the `-bin` of Mozilla's Linux
/// binaries (`/usr/lib/thunderbird/thunderbird-bin`, `thunderbird.exe`, `Thunderbird` →
/// `thunderbird`).
pub(crate) fn program_name(exe: &str) -> String {
    // Linux names an executable replaced on disk since it started (a package upgrade while the
    // program runs) `<path> (deleted)`.
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
    let file = exe.rsplit(['/', '\\']).next().unwrap_or(exe).to_lowercase();
    let file = file.strip_suffix(".exe").unwrap_or(&file);
    file.strip_suffix("-bin").unwrap_or(file).to_string()
}

/// The path of the executable this module was loaded into, if the system says.
static CURRENT_PROGRAM: Lazy<Option<String>> = Lazy::new(|| {
    std::env::current_exe()
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
});

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
                "configuration read from {:?}: tokens auth={} sign={}, pss={}, pinentry={}, \
                 signing_programs={:?}",
                cfg.sources,
                cfg.expose_auth,
                cfg.expose_sign,
                cfg.pss,
                cfg.pinentry.is_some(),
                cfg.signing_programs
            ));
        }
        if cfg.in_signing_program() {
            jpki_card::log::info(format_args!(
                "{}: a signing program (signing_programs): the signature token is not a \
                 public-certificates token here, its certificate is found after login",
                program_name(CURRENT_PROGRAM.as_deref().unwrap_or(""))
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
    use std::ffi::OsString;

    /// An absolute path on this platform, as a TOML literal string's content.
    fn abs(unix: &str) -> String {
        if cfg!(windows) {
            format!("C:{}", unix.replace('/', "\\"))
        } else {
            unix.to_string()
        }
    }

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
        let (pe, log) = (abs("/usr/bin/pinentry-curses"), abs("/tmp/jpki.log"));
        let c = applied(&[&format!(
            "tokens = [\"sign\"]\npss = false\npinentry = '{pe}'\n[log]\nlevel = \"debug\"\n\
             file = '{log}'\n"
        )]);
        assert!(!c.expose_auth && c.expose_sign && !c.pss);
        assert_eq!(c.pinentry.as_deref(), Some(Path::new(&pe)));
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.log_file, LogFile::Path(log.into()));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn later_files_override_key_by_key() {
        let (pe, log) = (abs("/usr/bin/pinentry"), abs("/tmp/x.log"));
        let c = applied(&[
            &format!("pss = false\npinentry = '{pe}'\n[log]\nlevel = \"info\"\n"),
            &format!("pss = true\n[log]\nfile = '{log}'\n"),
            "tokens = [\"auth\"]\n",
        ]);
        assert!(c.pss, "second file sets pss back");
        assert_eq!(c.pinentry.as_deref(), Some(Path::new(&pe)));
        assert_eq!(c.log_level, LogLevel::Info, "kept from the first file");
        assert_eq!(c.log_file, LogFile::Path(log.into()));
        assert!(c.expose_auth && !c.expose_sign);
        assert_eq!(c.sources.len(), 3);
    }

    fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn app(dir: &str) -> PathBuf {
        PathBuf::from(dir).join("jpki-pkcs11").join("config.toml")
    }

    #[test]
    fn paths_per_platform() {
        let unix = paths_for(Platform::Unix, &env_of(&[("HOME", "/home/u")]));
        assert_eq!(
            unix,
            vec![
                PathBuf::from("/etc/jpki-pkcs11.toml"),
                app("/home/u/.config")
            ]
        );
        let xdg = [
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "/x"),
            ("JPKI_PKCS11_CONF", "/c"),
        ];
        let unix = paths_for(Platform::Unix, &env_of(&xdg));
        assert_eq!(unix[1..], [app("/x"), PathBuf::from("/c")]);
        let mac = paths_for(Platform::MacOs, &env_of(&xdg));
        assert_eq!(
            mac,
            vec![
                app("/Library/Application Support"),
                PathBuf::from("/home/u")
                    .join("Library")
                    .join("Application Support")
                    .join("jpki-pkcs11")
                    .join("config.toml"),
                PathBuf::from("/c"),
            ],
            "macOS ignores XDG_CONFIG_HOME"
        );
        let win = [
            ("APPDATA", r"C:\Users\u\AppData\Roaming"),
            ("PROGRAMDATA", r"C:\ProgramData"),
            ("HOME", "/home/u"),
        ];
        let w = paths_for(Platform::Windows, &env_of(&win));
        assert_eq!(
            w,
            vec![app(r"C:\ProgramData"), app(r"C:\Users\u\AppData\Roaming")]
        );
        // Unset or empty variables drop their file, never give a relative path.
        let none = paths_for(Platform::Windows, &env_of(&[("APPDATA", "")]));
        assert!(none.is_empty(), "{none:?}");
        assert_eq!(
            paths_for(Platform::MacOs, &env_of(&[])),
            vec![app("/Library/Application Support")]
        );
        let explicit = std::env::var_os("JPKI_PKCS11_CONF");
        let here = Config::default_paths();
        assert!(!here.is_empty());
        for p in here
            .iter()
            .filter(|p| Some(p.as_os_str()) != explicit.as_deref())
        {
            assert!(p.is_absolute(), "{p:?} on {:?}", Platform::current());
        }
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
    fn signing_programs_by_executable_name() {
        let cfg = Config::default();
        assert_eq!(cfg.signing_programs, ["thunderbird", "betterbird"]);
        for exe in [
            "/usr/lib/thunderbird/thunderbird",
            "/usr/lib/thunderbird/thunderbird-bin",
            "/usr/lib/thunderbird/thunderbird (deleted)",
            "/Applications/Thunderbird.app/Contents/MacOS/thunderbird",
            "C:\\Program Files\\Mozilla Thunderbird\\thunderbird.exe",
            "Betterbird.EXE",
        ] {
            assert!(cfg.is_signing_program(exe), "{exe}");
        }
        for exe in [
            "/usr/lib/firefox-esr/firefox-esr",
            "/usr/lib/chromium/chromium",
            "/usr/bin/thunderbird-helper",
            "/opt/thunderbird/",
            "",
        ] {
            assert!(!cfg.is_signing_program(exe), "{exe}");
        }
        // A list replaces the default; browsers are refused with a message, duplicates and
        // case do not matter.
        let cfg = applied(&[
            "signing_programs = [\"xmlsec-sign\", \"Firefox\", \"chromium\", \"XMLSEC-SIGN.exe\"]",
        ]);
        assert_eq!(cfg.signing_programs, ["xmlsec-sign"]);
        assert_eq!(cfg.problems.len(), 2, "{:?}", cfg.problems);
        assert!(cfg.problems[0].contains("\"firefox\" is a web browser, ignored"));
        assert!(cfg.is_signing_program("/home/me/bin/xmlsec-sign"));
        assert!(!cfg.is_signing_program("/usr/bin/thunderbird"));
        assert!(!cfg.is_signing_program("/usr/bin/firefox"));
        // An empty list: no signing program at all. A bad value keeps the default.
        assert!(applied(&["signing_programs = []"])
            .signing_programs
            .is_empty());
        let cfg = applied(&["signing_programs = \"thunderbird\""]);
        assert_eq!(cfg.signing_programs, ["thunderbird", "betterbird"]);
        assert_eq!(cfg.problems.len(), 1);
        let cfg = applied(&["signing_programs = [\"a\", 1]"]);
        assert_eq!(cfg.signing_programs, ["thunderbird", "betterbird"]);
        assert_eq!(cfg.problems.len(), 1);
    }

    #[test]
    fn missing_files_are_skipped() {
        let c = Config::load(&[PathBuf::from("/nonexistent/jpki-pkcs11.toml")]);
        assert!(c.problems.is_empty());
        assert!(c.sources.is_empty());
    }
}
