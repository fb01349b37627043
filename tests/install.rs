//! `make install` / `make uninstall` into a temporary DESTDIR, p11-kit reading a user
//! configuration in a temporary HOME, and `jpki register|unregister firefox|thunderbird|nss|p11-kit`.
//! Installs the debug build (`PROFILE=debug`) that `cargo test` just made: nothing is rebuilt.
#![cfg(unix)] // Linux (pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jpki-install-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Removes a temp dir when the test ends, even on panic.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The cargo target dir and profile dir of this test binary (`<target>/debug/deps/install-…`).
fn build_dirs() -> (PathBuf, String) {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let target = profile_dir.parent().unwrap().to_path_buf();
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        profile_dir.join("libjpki_pkcs11.so").exists(),
        "{} not built",
        profile_dir.display()
    );
    // The command (package cli/) is there and up to date.
    common::jpki_bin();
    (target, profile)
}

fn run(cmd: &mut Command, step: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{step}: cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "step {step} failed ({}):\n{text}",
        out.status
    );
    text
}

fn make(target: &str, destdir: &Path, extra: &[&str]) -> String {
    let (target_dir, profile) = build_dirs();
    run(
        Command::new("timeout")
            .args([
                "120",
                "make",
                "--no-print-directory",
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                target,
            ])
            .arg(format!("DESTDIR={}", destdir.display()))
            .arg(format!("CARGO_TARGET_DIR={}", target_dir.display()))
            .arg(format!("PROFILE={profile}"))
            .args(extra),
        &format!("make {target} {extra:?}"),
    )
}

/// Every file (not directory) under `root`, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(format!("/{}", p.strip_prefix(root).unwrap().display()));
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

fn multiarch() -> String {
    let out = Command::new("dpkg-architecture")
        .arg("-qDEB_HOST_MULTIARCH")
        .output()
        .or_else(|_| Command::new("gcc").arg("-print-multiarch").output())
        .expect("dpkg-architecture or gcc");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn make_install_and_uninstall_into_destdir() {
    let dir = TempDir(tmp("destdir"));
    let dest = dir.0.join("root");
    let ma = multiarch();
    let lib = if ma.is_empty() {
        "/usr/lib".to_string()
    } else {
        format!("/usr/lib/{ma}")
    };
    let module = format!("{lib}/pkcs11/libjpki_pkcs11.so");
    make("install", &dest, &["PREFIX=/usr"]);
    let want = vec![
        "/usr/bin/jpki".to_string(),
        module.clone(),
        "/usr/share/man/man1/jpki.1".into(),
        "/usr/share/p11-kit/modules/jpki.module".into(),
        "/usr/share/bash-completion/completions/jpki".into(),
        "/usr/share/zsh/site-functions/_jpki".into(),
        "/usr/share/fish/vendor_completions.d/jpki.fish".into(),
    ];
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(files(&dest), sorted, "step: the installed files");
    let listed = make("installed-files", &dest, &["PREFIX=/usr"]);
    let mut listed: Vec<String> = listed.lines().map(str::to_string).collect();
    listed.sort();
    assert_eq!(listed, sorted, "step: make installed-files");
    let p11 = std::fs::read_to_string(dest.join("usr/share/p11-kit/modules/jpki.module")).unwrap();
    assert!(
        p11.lines().any(|l| l == format!("module: {module}")),
        "step: p11-kit module file names the module without DESTDIR:\n{p11}"
    );
    let help = run(
        Command::new(dest.join("usr/bin/jpki")).arg("help"),
        "installed jpki help",
    );
    assert!(help.contains("pin change"), "{help}");
    let man = run(
        Command::new("man")
            .arg("-l")
            .arg(dest.join("usr/share/man/man1/jpki.1"))
            .env("MANWIDTH", "80"),
        "man -l jpki.1",
    );
    assert!(
        man.contains("EXIT STATUS"),
        "step: man page renders:\n{man}"
    );
    // The completion scripts: the commands, their options and values; bash parses its own.
    let bash = dest.join("usr/share/bash-completion/completions/jpki");
    for (file, want) in [
        (&bash, "virtual-card"),
        (
            &dest.join("usr/share/zsh/site-functions/_jpki"),
            "#compdef jpki",
        ),
        (
            &dest.join("usr/share/fish/vendor_completions.d/jpki.fish"),
            "password-file",
        ),
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains(want), "step: {} has {want:?}", file.display());
        assert!(
            !text.contains("generate"),
            "step: no hidden command in {}",
            file.display()
        );
    }
    run(
        Command::new("bash").arg("-n").arg(&bash),
        "bash -n on the bash completion",
    );

    // Default PREFIX and an explicit LIBDIR.
    let dest2 = dir.0.join("root2");
    make("install", &dest2, &["LIBDIR=/opt/lib"]);
    assert_eq!(
        files(&dest2),
        vec![
            "/opt/lib/pkcs11/libjpki_pkcs11.so",
            "/usr/local/bin/jpki",
            "/usr/local/share/bash-completion/completions/jpki",
            "/usr/local/share/fish/vendor_completions.d/jpki.fish",
            "/usr/local/share/man/man1/jpki.1",
            "/usr/local/share/p11-kit/modules/jpki.module",
            "/usr/local/share/zsh/site-functions/_jpki",
        ],
        "step: PREFIX=/usr/local default, LIBDIR honoured"
    );
    // Something else in the same directories survives uninstall.
    std::fs::write(dest.join("usr/bin/other"), "x").unwrap();
    make("uninstall", &dest, &["PREFIX=/usr"]);
    assert_eq!(
        files(&dest),
        vec!["/usr/bin/other"],
        "step: uninstall removes exactly those"
    );
    make("uninstall", &dest2, &["LIBDIR=/opt/lib"]);
    assert!(files(&dest2).is_empty(), "{:?}", files(&dest2));
}

/// `p11-kit list-modules` with `home` as HOME. p11-kit skips the user configuration in a
/// program running as root, so as root (CI) it runs as `nobody` (setpriv, util-linux).
fn p11_kit_list(home: &Path) -> Command {
    let mut c = Command::new("timeout");
    c.arg("60");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        c.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    }
    c.args(["p11-kit", "list-modules"])
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME");
    c
}

#[test]
fn p11_kit_reads_the_user_registration() {
    let dir = TempDir(tmp("p11kit"));
    let dest = dir.0.join("root");
    let home = dir.0.join("home");
    std::fs::create_dir_all(&home).unwrap();
    make("install", &dest, &["PREFIX=/usr"]);
    let jpki = dest.join("usr/bin/jpki");
    let reg = |verb: &str| {
        run(
            Command::new(&jpki)
                .args([verb, "p11-kit"])
                .env("HOME", &home)
                .env_remove("XDG_CONFIG_HOME"),
            &format!("jpki {verb} p11-kit"),
        )
    };
    let out = reg("register");
    let file = home.join(".config/pkcs11/modules/jpki.module");
    let text = std::fs::read_to_string(&file).expect("step: user module file written");
    let installed = std::fs::canonicalize(
        dest.join(format!("usr/lib/{}/pkcs11/libjpki_pkcs11.so", multiarch())),
    )
    .unwrap();
    assert!(
        text.contains(&format!("module: {}", installed.display())),
        "step: registers the installed module next to the program:\n{text}\n{out}"
    );
    assert!(
        reg("register").contains("already registered"),
        "step: idempotent"
    );
    let list = run(&mut p11_kit_list(&home), "p11-kit list-modules");
    assert!(
        list.contains(&format!("jpki: {}", installed.display())),
        "step: p11-kit list-modules shows the module:\n{list}"
    );
    assert!(reg("unregister").contains("removed"));
    assert!(!file.exists());
    assert!(
        reg("unregister").contains("not registered"),
        "step: idempotent"
    );
    let list = run(
        &mut p11_kit_list(&home),
        "p11-kit list-modules after unregister",
    );
    assert!(!list.contains("jpki: "), "{list}");
}

fn module_so() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libjpki_pkcs11.so")
}

/// How many times the module is in an NSS database's `pkcs11.txt`.
fn nss_entries(db: &Path) -> usize {
    std::fs::read_to_string(db.join("pkcs11.txt"))
        .unwrap_or_default()
        .matches("libjpki_pkcs11.so")
        .count()
}

#[test]
fn register_firefox_thunderbird_and_nss_idempotently() {
    let dir = TempDir(tmp("register"));
    let home = dir.0.join("home");
    let ff = home.join(".mozilla/firefox");
    let p1 = ff.join("abcd1234.default-esr");
    let p2 = dir.0.join("elsewhere/profile2");
    let tb = home.join(".thunderbird");
    let p3 = tb.join("wxyz5678.default-esr");
    std::fs::create_dir_all(&p3).unwrap();
    std::fs::write(
        tb.join("profiles.ini"),
        "[Profile0]\nName=default-esr\nIsRelative=1\nPath=wxyz5678.default-esr\nDefault=1\n",
    )
    .unwrap();
    std::fs::create_dir_all(&p1).unwrap();
    std::fs::create_dir_all(&p2).unwrap();
    std::fs::write(
        ff.join("profiles.ini"),
        format!(
            "[Install4F96D1932A9F858E]\nDefault=abcd1234.default-esr\n\n\
             [Profile0]\nName=default-esr\nIsRelative=1\nPath=abcd1234.default-esr\nDefault=1\n\n\
             [Profile1]\nName=other\nIsRelative=0\nPath={}\n\n[General]\nVersion=2\n",
            p2.display()
        ),
    )
    .unwrap();
    let so = module_so();
    let jpki = |args: &[&str]| {
        let mut c = Command::new("timeout");
        c.arg("120")
            .arg(common::jpki_bin())
            .args(args)
            .env("HOME", &home);
        run(&mut c, &format!("jpki {args:?}"))
    };
    let so_s = so.to_str().unwrap();
    for _ in 0..2 {
        jpki(&["register", "firefox", "--module", so_s]);
        jpki(&["register", "thunderbird", "--module", so_s]);
        jpki(&["register", "nss", "--module", so_s]);
    }
    let nssdb = home.join(".pki/nssdb");
    for db in [&p1, &p2, &p3, &nssdb] {
        assert_eq!(nss_entries(db), 1, "step: one entry in {}", db.display());
        let list = run(
            Command::new("modutil")
                .arg("-dbdir")
                .arg(format!("sql:{}", db.display()))
                .arg("-list"),
            "modutil -list",
        );
        assert!(
            list.contains("JPKI My Number Card")
                && list.contains(&so.canonicalize().unwrap().display().to_string()),
            "step: modutil lists the module in {}:\n{list}",
            db.display()
        );
    }
    for _ in 0..2 {
        jpki(&["unregister", "firefox"]);
        jpki(&["unregister", "thunderbird"]);
        jpki(&["unregister", "nss"]);
    }
    for db in [&p1, &p2, &p3, &nssdb] {
        assert_eq!(nss_entries(db), 0, "step: removed from {}", db.display());
    }
    // An NSS database of the user's choice (`--db`, created if missing); only with nss.
    let own = dir.0.join("signing-db");
    let own_s = own.to_str().unwrap();
    for _ in 0..2 {
        jpki(&["register", "nss", "--db", own_s, "--module", so_s]);
    }
    assert_eq!(nss_entries(&own), 1, "step: one entry in --db");
    assert_eq!(
        nss_entries(&nssdb),
        0,
        "step: --db leaves ~/.pki/nssdb alone"
    );
    jpki(&["unregister", "nss", "--db", own_s]);
    assert_eq!(nss_entries(&own), 0, "step: removed from --db");
    let out = Command::new(common::jpki_bin())
        .args(["register", "firefox", "--db", own_s, "--module", so_s])
        .env("HOME", &home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--db with firefox");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--db goes with nss only"));
    // No Firefox profile: a clear message.
    let empty = dir.0.join("empty-home");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(common::jpki_bin())
        .args(["register", "firefox", "--module", so_s])
        .env("HOME", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Firefox profile found"));
    let out = Command::new(common::jpki_bin())
        .args(["register", "thunderbird", "--module", so_s])
        .env("HOME", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Thunderbird profile found"));
}
