//! The Debian package of `scripts/build-deb.sh`, from build to purge on a fresh Debian 12 root:
//!
//! 1. the script builds `target/debian/jpki-pkcs11_<version>_<arch>.deb` (release build);
//!    its control fields, its file list and lintian (no error) are checked;
//! 2. `mmdebstrap --variant=apt bookworm` makes a fresh root (Essential packages and apt only);
//! 3. `apt-get install ./jpki-pkcs11_….deb` in it pulls `pcscd` and `libpcsclite1`; then
//!    `opensc` (pkcs11-tool), `p11-kit` and `vsmartcard-vpcd` are installed;
//! 4. with no pcscd running: `p11-kit list-modules` shows the module with its `C_GetInfo`, and
//!    `pkcs11-tool --module <multiarch>/pkcs11/libjpki_pkcs11.so -I` loads it (no slots);
//! 5. with a pcscd of the root's own and the package's `jpki virtual-card`, in private network,
//!    PID and mount namespaces (the machine's pcscd and vpcd port are not touched; everything
//!    started there dies with the namespace): `pkcs11-tool -L` through the module's path and
//!    through `p11-kit-proxy.so` lists the card's two tokens;
//! 6. `apt-get purge jpki-pkcs11` removes every file and directory of the package that no other
//!    package owns, and nothing else.
//!
//! Needs root (mmdebstrap's root mode, chroot, unshare), the Debian packages mmdebstrap, lintian,
//! dpkg-dev and iproute2 (scripts/deps/deb-package.txt) and Debian's mirror. It fails, never
//! skips, without them. Takes about two minutes after the release build.
#![cfg(unix)] // Linux (Debian package, pcscd, vpcd); Windows and macOS: docs/windows.md, docs/macos.md

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const PACKAGE: &str = "jpki-pkcs11";
/// `C_GetInfo` of the module (src/ffi/general.rs).
const MANUFACTURER: &str = "jpki-pkcs11 project";
const DESCRIPTION: &str = "My Number Card JPKI";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`; returns its output; panics naming `step` when it cannot run or, if `must_succeed`,
/// when it fails.
fn run_cmd(cmd: &mut Command, step: &str, must_succeed: bool) -> Output {
    let started = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("step {step}: cannot run {cmd:?}: {e}"));
    eprintln!("[{:6.1}s] {step}", started.elapsed().as_secs_f64());
    if must_succeed {
        assert!(
            out.status.success(),
            "step {step} failed ({}):\n{}",
            out.status,
            text(&out)
        );
    }
    out
}

fn run(cmd: &mut Command, step: &str) -> String {
    text(&run_cmd(cmd, step, true))
}

fn stdout_of(program: &str, args: &[&str]) -> String {
    let out = run_cmd(Command::new(program).args(args), program, true);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The cargo target directory of this test binary (`<target>/<profile>/deps/deb_package-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// A fresh Debian root in a temporary directory, removed at the end unless something is still
/// mounted under it (then it is left for inspection, and said so).
struct Root(PathBuf);

impl Root {
    fn path(&self, p: &str) -> PathBuf {
        self.0.join(p.trim_start_matches('/'))
    }

    /// A command run in the root by chroot, with a fixed environment (no host PC/SC variables).
    fn chroot(&self, args: &[&str]) -> Command {
        let mut c = Command::new("chroot");
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .arg(&self.0)
            .args(args);
        c
    }

    fn apt_get(&self, args: &[&str], step: &str) -> String {
        let mut all = vec!["apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0"];
        all.extend_from_slice(args);
        run(&mut self.chroot(&all), step)
    }

    /// `dpkg-query`'s status of `pkg` in the root ("" when dpkg knows nothing of it).
    fn status(&self, pkg: &str) -> String {
        let out = run_cmd(
            &mut self.chroot(&["dpkg-query", "-W", "-f=${Status}", pkg]),
            &format!("dpkg-query {pkg}"),
            false,
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn mounted(&self) -> Vec<String> {
        let prefix = self.0.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(str::to_string)
            .collect()
    }

    /// Every path under the root except the pseudo file systems, the scratch and the package
    /// manager's own state, logs and caches.
    fn snapshot(&self) -> BTreeSet<String> {
        const SKIP: &[&str] = &[
            "/proc",
            "/sys",
            "/dev",
            "/tmp",
            "/var/lib/dpkg",
            "/var/lib/apt",
            "/var/cache",
            "/var/log",
        ];
        fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
                if SKIP.contains(&rel.as_str()) {
                    continue;
                }
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                out.insert(rel);
                if is_dir {
                    walk(&p, root, out);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.0, &self.0, &mut out);
        out
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let mounted = self.mounted();
        if mounted.is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            eprintln!(
                "{} left in place: still mounted: {mounted:?}",
                self.0.display()
            );
        }
    }
}

/// The sections of the in-root script's output: `== name` headers, `rc=N` lines.
fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let header = format!("== {name}\n");
    let start = out
        .find(&header)
        .unwrap_or_else(|| panic!("no section {name} in:\n{out}"))
        + header.len();
    let rest = &out[start..];
    &rest[..rest.find("\n== ").map_or(rest.len(), |i| i + 1)]
}

/// A `pkcs11-tool -L` listing shows the card's two tokens as this module names them.
fn assert_lists_both_tokens(listing: &str, what: &str) {
    for label in ["JPKI User Authentication", "JPKI Digital Signature"] {
        assert!(
            listing.contains(&format!("token label        : {label}\n")),
            "{what}: no token {label}:\n{listing}"
        );
    }
    assert!(
        listing.contains("token manufacturer : J-LIS\n"),
        "{what}: not this module's tokens:\n{listing}"
    );
    assert!(listing.contains("rc=0\n"), "{what} failed:\n{listing}");
}

#[test]
fn deb_builds_passes_lintian_installs_loads_and_purges_clean() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "tests/deb_package.rs needs root (mmdebstrap --mode=root, chroot, unshare): run it as \
         root, as CI does"
    );
    for tool in [
        "mmdebstrap",
        "lintian",
        "dpkg-shlibdeps",
        "unshare",
        "ip",
        "make",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "{tool} not found: run scripts/install-deps.sh (scripts/deps/deb-package.txt)"
        );
    }
    let started = Instant::now();
    let version = env!("CARGO_PKG_VERSION");
    let arch = stdout_of("dpkg-architecture", &["-qDEB_HOST_ARCH"]);
    let multiarch = stdout_of("dpkg-architecture", &["-qDEB_HOST_MULTIARCH"]);
    let module = format!("/usr/lib/{multiarch}/pkcs11/libjpki_pkcs11.so");
    let proxy = format!("/usr/lib/{multiarch}/p11-kit-proxy.so");

    // 1. The package.
    let target = target_dir();
    let built = run_cmd(
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-deb.sh"))
            .env("CARGO_TARGET_DIR", &target),
        "scripts/build-deb.sh",
        true,
    );
    let built = String::from_utf8_lossy(&built.stdout).into_owned();
    let deb_name = format!("{PACKAGE}_{version}_{arch}.deb");
    let deb = target.join("debian").join(&deb_name);
    assert_eq!(
        built.lines().last().map(PathBuf::from),
        Some(deb.clone()),
        "build-deb.sh's last line of output names the package:\n{built}"
    );
    assert!(deb.is_file(), "{} not built", deb.display());
    let deb_s = deb.to_str().unwrap();

    let field = |f: &str| stdout_of("dpkg-deb", &["-f", deb_s, f]);
    assert_eq!(field("Package"), PACKAGE);
    assert_eq!(field("Version"), version);
    assert_eq!(field("Architecture"), arch);
    let depends = field("Depends");
    let depends: Vec<&str> = depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .collect();
    for dep in ["pcscd", "libpcsclite1", "libc6"] {
        assert!(depends.contains(&dep), "Depends lacks {dep}: {depends:?}");
    }
    let installed_size: u64 = field("Installed-Size").parse().expect("Installed-Size");
    assert!(installed_size > 100, "Installed-Size {installed_size} KiB");

    let listing = stdout_of("dpkg-deb", &["-c", deb_s]);
    let files: BTreeSet<String> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .collect();
    let want: BTreeSet<String> = [
        module.as_str(),
        "/usr/bin/jpki",
        "/usr/share/p11-kit/modules/jpki.module",
        "/usr/share/man/man1/jpki.1.gz",
        "/usr/share/bash-completion/completions/jpki",
        "/usr/share/zsh/vendor-completions/_jpki",
        "/usr/share/fish/vendor_completions.d/jpki.fish",
        "/usr/share/doc/jpki-pkcs11/copyright",
        "/usr/share/doc/jpki-pkcs11/changelog.gz",
        "/usr/share/doc/jpki-pkcs11/README.Debian",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(files, want, "the package's files:\n{listing}");
    for l in listing.lines() {
        assert!(l.contains(" root/root "), "not owned by root: {l}");
    }

    let lintian = run_cmd(
        Command::new("lintian").args(["--fail-on", "error", "--display-info", deb_s]),
        "lintian",
        false,
    );
    let lintian_out = text(&lintian);
    eprintln!("lintian:\n{lintian_out}");
    let errors: Vec<&str> = lintian_out
        .lines()
        .filter(|l| l.starts_with("E: "))
        .collect();
    assert!(
        lintian.status.success() && errors.is_empty(),
        "lintian reports errors ({}):\n{lintian_out}",
        lintian.status
    );

    // 2. A fresh Debian 12 root.
    let root = Root(std::env::temp_dir().join(format!("jpki-deb-root-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&root.0);
    let t = Instant::now();
    run(
        Command::new("mmdebstrap")
            .args(["--variant=apt", "--mode=root", "--quiet", "bookworm"])
            .arg(&root.0),
        "mmdebstrap --variant=apt bookworm",
    );
    eprintln!("root made in {:.0} s", t.elapsed().as_secs_f64());
    // No service is started in the root (pcscd's postinst asks invoke-rc.d).
    let policy = root.path("/usr/sbin/policy-rc.d");
    std::fs::write(&policy, "#!/bin/sh\nexit 101\n").unwrap();
    run(
        Command::new("chmod").arg("0755").arg(&policy),
        "chmod policy-rc.d",
    );
    std::fs::copy(&deb, root.path(&format!("/tmp/{deb_name}"))).unwrap();

    // 3. Install: the package pulls pcscd and libpcsclite1.
    for dep in ["pcscd", "libpcsclite1", PACKAGE] {
        let status = root.status(dep);
        assert_ne!(
            status, "install ok installed",
            "{dep} already in the fresh root"
        );
    }
    root.apt_get(&["update"], "apt-get update");
    let installed = root.apt_get(
        &[
            "install",
            "--no-install-recommends",
            &format!("/tmp/{deb_name}"),
        ],
        "apt-get install ./jpki-pkcs11.deb",
    );
    for dep in ["pcscd", "libpcsclite1", PACKAGE] {
        assert_eq!(
            root.status(dep),
            "install ok installed",
            "{dep} after installing the package:\n{installed}"
        );
    }
    root.apt_get(
        &[
            "install",
            "--no-install-recommends",
            "opensc",
            "p11-kit",
            "vsmartcard-vpcd",
        ],
        "apt-get install opensc p11-kit vsmartcard-vpcd",
    );
    assert!(root.path(&module).is_file() && root.path(&proxy).is_file());

    // 4. No pcscd: the module loads and reports itself; it has no slots.
    let modules = run(
        &mut root.chroot(&["p11-kit", "list-modules"]),
        "p11-kit list-modules",
    );
    let (major, minor) = {
        let mut v = version.split('.');
        (v.next().unwrap(), v.next().unwrap())
    };
    for line in [
        format!("jpki: {module}\n"),
        format!("    library-description: {DESCRIPTION}\n"),
        format!("    library-manufacturer: {MANUFACTURER}\n"),
        format!("    library-version: {major}.{minor}\n"),
    ] {
        assert!(
            modules.contains(&line),
            "p11-kit list-modules lacks {line:?}:\n{modules}"
        );
    }
    let info = text(&run_cmd(
        &mut root.chroot(&["pkcs11-tool", "--module", &module, "-I"]),
        "pkcs11-tool --module <module> -I (no pcscd)",
        false,
    ));
    for line in [
        format!("Manufacturer     {MANUFACTURER}\n"),
        format!("Library          {DESCRIPTION} (ver {major}.{minor})\n"),
        "No slots.\n".to_string(),
    ] {
        assert!(
            info.contains(&line),
            "pkcs11-tool -I lacks {line:?}:\n{info}"
        );
    }

    // 5. pcscd and the virtual card in the root, in namespaces of their own.
    let script = format!(
        "set -u
pcscd -f >/tmp/pcscd.log 2>&1 &
jpki virtual-card --state /tmp/vcard >/tmp/vcard.out 2>&1 &
i=0
until grep -q connected /tmp/vcard.out; do
  i=$((i + 1)); [ $i -lt 100 ] || {{ echo 'the virtual card did not connect'; cat /tmp/vcard.out; exit 1; }}
  sleep 0.1
done
i=0
until pkcs11-tool --module {module} -L 2>/dev/null | grep -q 'JPKI Digital Signature'; do
  i=$((i + 1)); [ $i -lt 100 ] || break
  sleep 0.1
done
echo '== module -L'; pkcs11-tool --module {module} -L 2>&1; echo rc=$?
echo '== module -I'; pkcs11-tool --module {module} -I 2>&1; echo rc=$?
echo '== proxy -L'; pkcs11-tool --module {proxy} -L 2>&1; echo rc=$?
echo '== end'
"
    );
    std::fs::write(root.path("/tmp/jpki-slots.sh"), script).unwrap();
    let slots = run(
        Command::new("unshare")
            .args([
                "--net",
                "--pid",
                "--mount",
                "--fork",
                "--propagation",
                "private",
            ])
            .arg(format!("--mount-proc={}", root.path("/proc").display()))
            .args([
                "sh",
                "-c",
                "ip link set lo up && exec \"$@\"",
                "sh",
                "chroot",
            ])
            .arg(&root.0)
            .args(["sh", "/tmp/jpki-slots.sh"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8"),
        "pkcs11-tool -L in the root with pcscd and the virtual card",
    );
    eprintln!("{slots}");
    assert!(
        root.mounted().is_empty(),
        "the namespace's /proc is visible outside it: {:?}",
        root.mounted()
    );
    assert_lists_both_tokens(
        section(&slots, "module -L"),
        "pkcs11-tool --module <module> -L",
    );
    let module_info = section(&slots, "module -I");
    assert!(
        module_info.contains(&format!("Manufacturer     {MANUFACTURER}\n"))
            && module_info.contains("rc=0\n"),
        "pkcs11-tool --module <module> -I:\n{module_info}"
    );
    assert_lists_both_tokens(section(&slots, "proxy -L"), "p11-kit-proxy.so -L");

    // 6. Purge: nothing of the package is left.
    for scratch in [
        "/tmp/vcard",
        "/tmp/vcard.out",
        "/tmp/pcscd.log",
        "/tmp/jpki-slots.sh",
    ] {
        let p = root.path(scratch);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }
    let owned: BTreeSet<String> = run(&mut root.chroot(&["dpkg", "-L", PACKAGE]), "dpkg -L")
        .lines()
        .filter(|l| l.starts_with('/') && *l != "/.")
        .map(str::to_string)
        .collect();
    for f in &want {
        assert!(owned.contains(f), "dpkg -L lacks {f}");
    }
    let before = root.snapshot();
    root.apt_get(&["purge", PACKAGE], "apt-get purge jpki-pkcs11");
    let after = root.snapshot();
    let created: Vec<&String> = after.difference(&before).collect();
    assert!(created.is_empty(), "purge created {created:?}");
    let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
    let foreign: Vec<&String> = removed.difference(&owned).collect();
    assert!(
        foreign.is_empty(),
        "purge removed files not of the package: {foreign:?}"
    );
    for f in &want {
        assert!(removed.contains(f), "{f} not removed");
    }
    assert!(removed.contains("/usr/share/doc/jpki-pkcs11"));
    // What is left of the package's list is directories that other packages own too.
    for kept in owned.intersection(&after) {
        assert!(root.path(kept).is_dir(), "{kept} left behind");
        let by = run(&mut root.chroot(&["dpkg", "-S", kept]), "dpkg -S");
        assert!(
            !by.contains(PACKAGE),
            "{kept} still owned by the package: {by}"
        );
    }
    let status = root.status(PACKAGE);
    assert!(
        status.is_empty() || status.contains("not-installed"),
        "dpkg still knows the package: {status}"
    );
    let info_dir = std::fs::read_dir(root.path("/var/lib/dpkg/info")).unwrap();
    let left: Vec<String> = info_dir
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{PACKAGE}.")))
        .collect();
    assert!(left.is_empty(), "dpkg's files of the package: {left:?}");
    let modules = run(
        &mut root.chroot(&["p11-kit", "list-modules"]),
        "p11-kit list-modules after purge",
    );
    assert!(
        !modules.contains("jpki:"),
        "p11-kit still lists the module:\n{modules}"
    );
    eprintln!(
        "deb package test: {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
}
