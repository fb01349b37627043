//! `jpki register firefox|thunderbird|nss|p11-kit` and `jpki unregister ...`: adds the PKCS#11
//! module to the user's Firefox or Thunderbird profiles, to the shared NSS database
//! `~/.pki/nssdb` (Chromium, LibreOffice), or to the user's p11-kit configuration. Idempotent, like OpenSC's
//! `pkcs11-register`: registering twice leaves one entry; unregistering what is not there is
//! fine.
//!
//! NSS databases are changed with `modutil` (Debian `libnss3-tools`, Fedora `nss-tools`),
//! which NSS documents as the way to add a module; Firefox or Thunderbird should be closed
//! meanwhile.

use crate::cli::Target;
use crate::util::{exit, Fail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The name of the module in NSS databases.
pub const NSS_NAME: &str = "JPKI My Number Card";
const SO: &str = "libjpki_pkcs11.so";

fn home() -> Result<PathBuf, Fail> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Fail::new(exit::FAILURE, "HOME is not set"))
}

/// The installed module: next to this program's installation (`<prefix>/bin/jpki` →
/// `<prefix>/lib/<multiarch>/pkcs11/`), then the usual system places, then next to the program
/// (a `cargo build` tree).
fn find_module() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?;
    let mut candidates = Vec::new();
    if let Some(prefix) = bin.parent() {
        let lib = prefix.join("lib");
        if let Ok(dirs) = std::fs::read_dir(&lib) {
            let mut subdirs: Vec<PathBuf> = dirs.flatten().map(|d| d.path()).collect();
            subdirs.sort();
            for d in subdirs {
                candidates.push(d.join("pkcs11").join(SO));
            }
        }
        candidates.push(lib.join("pkcs11").join(SO));
        candidates.push(prefix.join("lib64/pkcs11").join(SO));
    }
    for dir in [
        "/usr/lib/x86_64-linux-gnu/pkcs11",
        "/usr/lib/aarch64-linux-gnu/pkcs11",
        "/usr/lib64/pkcs11",
        "/usr/lib/pkcs11",
        "/usr/local/lib/pkcs11",
    ] {
        candidates.push(Path::new(dir).join(SO));
    }
    candidates.push(bin.join(SO));
    candidates.push(bin.join(format!("../{SO}")));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}

/// Firefox profile directories of the user (every `Path=` of every `profiles.ini`, including
/// the Snap and Flatpak installs).
pub fn firefox_profiles(home: &Path) -> Vec<PathBuf> {
    mozilla_profiles(
        home,
        &[
            ".mozilla/firefox",
            "snap/firefox/common/.mozilla/firefox",
            ".var/app/org.mozilla.firefox/.mozilla/firefox",
        ],
    )
}

/// Thunderbird profile directories of the user, likewise (Thunderbird keeps its own NSS
/// database in each profile; it does not read ~/.pki/nssdb).
pub fn thunderbird_profiles(home: &Path) -> Vec<PathBuf> {
    mozilla_profiles(
        home,
        &[
            ".thunderbird",
            "snap/thunderbird/common/.thunderbird",
            ".var/app/org.mozilla.Thunderbird/.thunderbird",
        ],
    )
}

/// The profiles of every `profiles.ini` in `bases` (relative to `home`).
fn mozilla_profiles(home: &Path, bases: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in bases {
        let base = home.join(base);
        let Ok(ini) = std::fs::read_to_string(base.join("profiles.ini")) else {
            continue;
        };
        // Each [ProfileN] section: Path= and IsRelative= (default relative).
        let mut sections: Vec<(Option<String>, bool)> = Vec::new();
        let mut in_profile = false;
        for line in ini.lines().map(str::trim) {
            if line.starts_with('[') {
                in_profile = line.starts_with("[Profile");
                if in_profile {
                    sections.push((None, true));
                }
                continue;
            }
            let Some(cur) = sections.last_mut().filter(|_| in_profile) else {
                continue;
            };
            if let Some(p) = line.strip_prefix("Path=") {
                cur.0 = Some(p.to_string());
            } else if let Some(v) = line.strip_prefix("IsRelative=") {
                cur.1 = v != "0";
            }
        }
        for (path, relative) in sections {
            let Some(p) = path else { continue };
            let dir = if relative {
                base.join(&p)
            } else {
                PathBuf::from(&p)
            };
            if dir.is_dir() && !out.contains(&dir) {
                out.push(dir);
            }
        }
    }
    out
}

fn exec(cmd: &mut Command, what: &str) -> Result<String, Fail> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        Fail::new(
            exit::FAILURE,
            format!(
                "cannot run {what}: {e} (install `libnss3-tools` on Debian/Ubuntu, \
                     `nss-tools` on Fedora, `nss` with Homebrew)"
            ),
        )
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(Fail::new(exit::FAILURE, format!("{what} failed:\n{text}")));
    }
    Ok(text)
}

/// The library registered under our name in an NSS database, if any.
fn nss_registered(db: &Path) -> Result<Option<String>, Fail> {
    let text = exec(
        Command::new("modutil")
            .arg("-dbdir")
            .arg(format!("sql:{}", db.display()))
            .arg("-list"),
        "modutil -list",
    )?;
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim_start()
            .split_once(". ")
            .is_some_and(|(_, name)| name.trim() == NSS_NAME)
        {
            for l in lines.by_ref() {
                if let Some(lib) = l.trim().strip_prefix("library name:") {
                    return Ok(Some(lib.trim().to_string()));
                }
                if l.trim().is_empty() {
                    break;
                }
            }
            return Ok(Some(String::new()));
        }
    }
    Ok(None)
}

/// Adds (or removes) the module in the NSS database `db`, creating an empty database first if
/// there is none. Returns what was done, for the user.
fn nss_db(db: &Path, module: Option<&Path>) -> Result<String, Fail> {
    let sql = format!("sql:{}", db.display());
    if !db.join("cert9.db").exists() {
        if module.is_none() {
            return Ok(format!(
                "{}: no NSS database, nothing to remove",
                db.display()
            ));
        }
        std::fs::create_dir_all(db)
            .map_err(|e| Fail::new(exit::FAILURE, format!("{}: {e}", db.display())))?;
        exec(
            Command::new("certutil")
                .args(["-N", "--empty-password", "-d"])
                .arg(&sql),
            "certutil -N",
        )?;
    }
    let current = nss_registered(db)?;
    let remove = |why: &str| -> Result<String, Fail> {
        exec(
            Command::new("modutil").args(["-dbdir", &sql, "-delete", NSS_NAME, "-force"]),
            "modutil -delete",
        )?;
        Ok(format!("{}: {why}", db.display()))
    };
    match (module, current) {
        (None, None) => Ok(format!("{}: not registered", db.display())),
        (None, Some(_)) => remove("removed"),
        (Some(m), Some(lib)) if Path::new(&lib) == m => {
            Ok(format!("{}: already registered", db.display()))
        }
        (Some(m), cur) => {
            if cur.is_some() {
                remove("old entry removed")?;
            }
            exec(
                Command::new("modutil")
                    .args(["-dbdir", &sql, "-add", NSS_NAME, "-libfile"])
                    .arg(m)
                    .arg("-force"),
                "modutil -add",
            )?;
            Ok(format!("{}: registered {}", db.display(), m.display()))
        }
    }
}

/// The user's p11-kit module file.
fn p11kit_file(home: &Path) -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    config.join("pkcs11/modules/jpki.module")
}

fn p11kit(home: &Path, module: Option<&Path>) -> Result<String, Fail> {
    let file = p11kit_file(home);
    let io = |e: std::io::Error| Fail::new(exit::FAILURE, format!("{}: {e}", file.display()));
    match module {
        Some(m) => {
            let text = format!(
                "# Added by `jpki register p11-kit`: the JPKI My Number Card PKCS#11 module.\n\
                 module: {}\n",
                m.display()
            );
            if std::fs::read_to_string(&file).ok().as_deref() == Some(text.as_str()) {
                return Ok(format!("{}: already registered", file.display()));
            }
            std::fs::create_dir_all(file.parent().expect("has a parent")).map_err(io)?;
            std::fs::write(&file, text).map_err(io)?;
            Ok(format!("{}: registered {}", file.display(), m.display()))
        }
        None => match std::fs::remove_file(&file) {
            Ok(()) => Ok(format!("{}: removed", file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(format!("{}: not registered", file.display()))
            }
            Err(e) => Err(io(e)),
        },
    }
}

/// `jpki register firefox|thunderbird|nss|p11-kit [--module PATH]`
pub fn register(target: Target, module: Option<PathBuf>, db: Option<PathBuf>) -> Result<u8, Fail> {
    check_db(target, db.as_deref())?;
    let m = match module {
        Some(m) => m,
        None => find_module().ok_or_else(|| {
            Fail::new(
                exit::FAILURE,
                format!("cannot find {SO}: install it (`make install`) or give --module PATH"),
            )
        })?,
    };
    let m = m
        .canonicalize()
        .map_err(|e| Fail::new(exit::FAILURE, format!("module {}: {e}", m.display())))?;
    run(target, Some(m), db)
}

/// `--db` goes with `nss` only.
fn check_db(target: Target, db: Option<&Path>) -> Result<(), Fail> {
    if db.is_some() && target != Target::Nss {
        return Err(Fail::new(
            exit::USAGE,
            "--db goes with nss only (an NSS database directory)".to_string(),
        ));
    }
    Ok(())
}

/// `jpki unregister firefox|thunderbird|nss|p11-kit`
pub fn unregister(target: Target, db: Option<PathBuf>) -> Result<u8, Fail> {
    check_db(target, db.as_deref())?;
    run(target, None, db)
}

/// `profiles`, or a failure saying that `program` has no profile yet (no `<home>/<dir>/profiles.ini`).
fn some_profiles(
    profiles: Vec<PathBuf>,
    program: &str,
    home: &Path,
    dir: &str,
) -> Result<Vec<PathBuf>, Fail> {
    if profiles.is_empty() {
        return Err(Fail::new(
            exit::FAILURE,
            format!(
                "no {program} profile found (no {}): start {program} once first",
                home.join(dir).join("profiles.ini").display()
            ),
        ));
    }
    Ok(profiles)
}

/// Adds `module` to `target`, or removes it (`None`).
fn run(target: Target, module: Option<PathBuf>, db: Option<PathBuf>) -> Result<u8, Fail> {
    let home = home()?;
    let mut done = Vec::new();
    match target {
        Target::Firefox => {
            let profiles = some_profiles(
                firefox_profiles(&home),
                "Firefox",
                &home,
                ".mozilla/firefox",
            )?;
            for p in profiles {
                done.push(nss_db(&p, module.as_deref())?);
            }
        }
        Target::Thunderbird => {
            let profiles = some_profiles(
                thunderbird_profiles(&home),
                "Thunderbird",
                &home,
                ".thunderbird",
            )?;
            for p in profiles {
                done.push(nss_db(&p, module.as_deref())?);
            }
        }
        Target::Nss => {
            let db = match db {
                Some(d) if d.is_absolute() => d,
                Some(d) => std::env::current_dir()
                    .map_err(|e| Fail::new(exit::FAILURE, format!("{}: {e}", d.display())))?
                    .join(d),
                None => home.join(".pki/nssdb"),
            };
            done.push(nss_db(&db, module.as_deref())?)
        }
        Target::P11Kit => done.push(p11kit(&home, module.as_deref())?),
    }
    for d in done {
        println!("{d}");
    }
    Ok(0)
}
