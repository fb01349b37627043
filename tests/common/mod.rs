//! Test harness shared by the integration tests: the virtual My Number Card (`jpki
//! virtual-card`) running behind the real pcscd through the vpcd driver.
//!
//! Needs pcscd running with vsmartcard-vpcd (Debian packages `pcscd`, `vsmartcard-vpcd`):
//! nothing is skipped when it is missing, the tests panic and say how to start it.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod s_server;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// vpcd's first port: reader `Virtual PCD 00 00`; the next port is `Virtual PCD 00 01`.
pub const VPCD_PORT: u16 = 35963;

/// How long to wait for pcscd to see a card come or go.
const PCSCD_TIMEOUT: Duration = Duration::from_secs(10);

static LOCK: Mutex<()> = Mutex::new(());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One virtual card at a time within a test binary (the reader is shared). A test that panicked
/// while holding it does not poison it for the others.
pub fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether pcscd answers (a PC/SC context can be established and readers listed).
pub fn pcscd_running() -> bool {
    match pcsc::Context::establish(pcsc::Scope::User) {
        Ok(ctx) => !matches!(ctx.list_readers_len(), Err(pcsc::Error::NoService)),
        Err(_) => false,
    }
}

/// Panics with instructions unless pcscd runs with the vpcd readers.
pub fn require_pcscd() {
    assert!(
        pcscd_running(),
        "pcscd is not running. These tests drive the virtual card through the real pcscd and \
         the vsmartcard vpcd driver: install the Debian packages `pcscd` and `vsmartcard-vpcd`, \
         then start it with `sudo pcscd` (or `systemctl start pcscd.socket`), or run the tests \
         under scripts/with-virtual-card.sh"
    );
}

/// The pcscd reader name of a vpcd port.
pub fn reader_name(port: u16) -> String {
    format!("Virtual PCD 00 {:02}", port.saturating_sub(VPCD_PORT))
}

/// The virtual card process (`jpki virtual-card`) attached to one vpcd reader.
/// Dropping it removes the card (kills the process) and deletes a state dir made by `start`.
pub struct VCard {
    /// The card's directory (certificates, keys, `state.txt`).
    pub state_dir: PathBuf,
    /// The APDU log the process appends to.
    pub log_path: PathBuf,
    /// The vpcd port, and so the reader.
    pub port: u16,
    /// The pcscd reader name, e.g. `Virtual PCD 00 00`.
    pub reader: String,
    child: Option<Child>,
    port_lock: Option<PortLock>,
    owns_dir: bool,
    /// Extra `jpki virtual-card` arguments (e.g. `--fault SPEC`).
    extra_args: Vec<String>,
}

impl VCard {
    /// A fresh card (new temp state dir, new test PKI) in reader `Virtual PCD 00 00`.
    pub fn start() -> VCard {
        let dir = std::env::temp_dir().join(format!(
            "jpki-vcard-it-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut card = VCard::new(&dir, VPCD_PORT);
        card.owns_dir = true;
        card.insert();
        card
    }

    /// A fresh card that misbehaves as `jpki virtual-card --fault SPEC` says, for each spec.
    pub fn start_faulty(faults: &[&str]) -> VCard {
        let dir = std::env::temp_dir().join(format!(
            "jpki-vcard-it-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut card = VCard::new(&dir, VPCD_PORT);
        card.owns_dir = true;
        card.extra_args = faults
            .iter()
            .flat_map(|f| ["--fault".to_string(), f.to_string()])
            .collect();
        card.insert();
        card
    }

    /// The card kept in `state_dir` (created if empty), in the reader of vpcd port `port`.
    pub fn start_with(state_dir: &Path, port: u16) -> VCard {
        let mut card = VCard::new(state_dir, port);
        card.insert();
        card
    }

    fn new(state_dir: &Path, port: u16) -> VCard {
        require_pcscd();
        std::fs::create_dir_all(state_dir).expect("create the card's state dir");
        let log_path = state_dir.join("apdu.log");
        VCard {
            state_dir: state_dir.to_path_buf(),
            log_path,
            port,
            reader: reader_name(port),
            child: None,
            port_lock: None,
            owns_dir: false,
            extra_args: Vec::new(),
        }
    }

    /// Insert the card: start the process (same state dir) and wait until pcscd sees the card.
    pub fn insert(&mut self) {
        if self.child.is_some() {
            return;
        }
        if self.port_lock.is_none() {
            self.port_lock = Some(PortLock::acquire(self.port));
        }
        assert!(
            wait_for_card(&self.reader, false),
            "reader {:?} still has a card after {PCSCD_TIMEOUT:?}: another virtual card is \
             running on it (`pgrep -a jpki`)",
            self.reader
        );
        let child = Command::new(jpki_bin())
            .arg("virtual-card")
            .arg("--state")
            .arg(&self.state_dir)
            .arg("--log")
            .arg(&self.log_path)
            .arg("--port")
            .arg(self.port.to_string())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn jpki virtual-card");
        self.child = Some(child);
        let start = Instant::now();
        while !card_present(&self.reader) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("jpki virtual-card exited early ({status}); see its stderr above");
            }
            assert!(
                start.elapsed() < PCSCD_TIMEOUT,
                "pcscd did not see the virtual card in reader {:?} within {:?}: is vpcd \
                 (vsmartcard-vpcd) installed and pcscd restarted since?",
                self.reader,
                PCSCD_TIMEOUT
            );
            wait_status_change(&self.reader, Duration::from_millis(200));
        }
    }

    /// Remove the card: kill the process and wait until pcscd sees the reader empty.
    pub fn remove(&mut self) {
        assert!(
            self.kill(),
            "pcscd still shows a card in {:?} {PCSCD_TIMEOUT:?} after the virtual card exited",
            self.reader
        );
    }

    /// Kills the process; whether pcscd then saw the reader empty. Never panics (used by Drop).
    fn kill(&mut self) -> bool {
        match self.child.take() {
            Some(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
                wait_for_card(&self.reader, false)
            }
            None => true,
        }
    }

    /// The log lines so far (`<cmd> <resp>` and `# power …`).
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log_path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Empty the log (the process appends, so it keeps writing at the new end).
    pub fn clear_log(&self) {
        if self.log_path.exists() {
            std::fs::File::create(&self.log_path).expect("truncate the APDU log");
        }
    }

    /// The number of APDUs in the log (lines not starting with `#`).
    pub fn apdu_count(&self) -> usize {
        self.log().iter().filter(|l| !l.starts_with('#')).count()
    }

    /// A certificate (DER) from the state dir: `auth`, `auth-ca`, `sign` or `sign-ca`.
    pub fn cert(&self, name: &str) -> Vec<u8> {
        let path = self.state_dir.join(format!("{name}.crt"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The retry counters (auth, sign) as persisted in the state dir.
    pub fn tries_left(&self) -> (u8, u8) {
        let text = std::fs::read_to_string(self.state_dir.join("state.txt")).expect("state.txt");
        let get = |key: &str| -> u8 {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.trim().parse().ok())
                .unwrap_or_else(|| panic!("state.txt has no {key}"))
        };
        (get("auth_tries"), get("sign_tries"))
    }
}

impl Drop for VCard {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}

fn card_present(reader: &str) -> bool {
    reader_state(reader).is_some_and(|s| s.contains(pcsc::State::PRESENT))
}

/// The reader's state, or None if pcscd does not list it.
fn reader_state(reader: &str) -> Option<pcsc::State> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).ok()?;
    let name = CString::new(reader).ok()?;
    let mut states = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    ctx.get_status_change(Duration::from_millis(0), &mut states)
        .ok()?;
    let state = states[0].event_state();
    if state.contains(pcsc::State::UNKNOWN) {
        return None;
    }
    Some(state)
}

/// Waits (up to `timeout`) for any change of the reader's state.
fn wait_status_change(reader: &str, timeout: Duration) {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        std::thread::sleep(timeout);
        return;
    };
    let name = CString::new(reader).expect("reader name");
    let mut states = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    if ctx
        .get_status_change(Duration::from_millis(0), &mut states)
        .is_err()
    {
        std::thread::sleep(timeout);
        return;
    }
    states[0].sync_current_state();
    let _ = ctx.get_status_change(timeout, &mut states);
}

/// Waits until the reader shows a card (`present`) or no card; false on timeout.
fn wait_for_card(reader: &str, present: bool) -> bool {
    let start = Instant::now();
    while card_present(reader) != present {
        if start.elapsed() >= PCSCD_TIMEOUT {
            return false;
        }
        wait_status_change(reader, Duration::from_millis(200));
    }
    true
}

/// A cross-process lock on one vpcd port (a directory in the temp dir holding the owner's pid),
/// so test binaries running in parallel do not put two cards in one reader. A lock whose owner
/// is gone is taken over.
struct PortLock {
    dir: PathBuf,
}

impl PortLock {
    fn acquire(port: u16) -> PortLock {
        let dir = std::env::temp_dir().join(format!("jpki-vcard-port-{port}.lock"));
        let pid_file = dir.join("pid");
        let start = Instant::now();
        loop {
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    std::fs::write(&pid_file, std::process::id().to_string())
                        .expect("write the port lock");
                    return PortLock { dir };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&pid_file).ok();
                    let alive = owner
                        .as_deref()
                        .map(str::trim)
                        .is_some_and(|pid| Path::new("/proc").join(pid).exists());
                    // No pid yet: the owner may be between create_dir and write; give it a moment.
                    let stale = owner.is_some() && !alive
                        || owner.is_none() && dir_age(&dir) > Duration::from_secs(5);
                    if stale {
                        let _ = std::fs::remove_dir_all(&dir);
                        continue;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(600),
                        "vpcd port {port} stayed locked by pid {owner:?} ({})",
                        dir.display()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{}: {e}", dir.display()),
            }
        }
    }
}

fn dir_age(dir: &Path) -> Duration {
    std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

impl Drop for PortLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `jpki` command (the virtual card's process, and the command under test), built by its own
/// package `cli/` (so that its crates stay out of the module): `target/<profile>/jpki`, next to
/// this test binary's `deps/` directory. `cargo build` and `cargo test` at the workspace root
/// build it; `cargo test --test NAME` or `-p jpki-pkcs11` alone do not, so this panics, saying
/// what to run, when the binary is missing or older than one of its sources (listed in cargo's
/// dep-info `jpki.d` beside it), rather than test an old command or an old virtual card.
pub fn jpki_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        let bin = dir.join(format!("jpki{}", std::env::consts::EXE_SUFFIX));
        let build = "build it first with `cargo build` at the workspace root (`cargo test` \
                     there builds it too; `cargo test --test NAME` alone does not)";
        let built = std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{}: {e}: {build}", bin.display()));
        let deps = std::fs::read_to_string(dir.join("jpki.d")).unwrap_or_default();
        for src in dep_info_files(&deps) {
            let newer = std::fs::metadata(&src)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built);
            assert!(
                !newer,
                "{} is older than its source {}: {build}",
                bin.display(),
                src.display()
            );
        }
        bin
    })
}

/// The prerequisites in a makefile-style dep-info file (`target: a.rs b\ c.rs ...`).
fn dep_info_files(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut cur = String::new();
        let mut chars = deps.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ' ' => {
                    if !cur.is_empty() {
                        out.push(PathBuf::from(std::mem::take(&mut cur)));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(PathBuf::from(cur));
        }
    }
    out
}

/// The module under test: `$TEST_PKCS11_MODULE`, or the cdylib cargo built for this test run
/// (`target/<profile>/deps/`, falling back to `target/<profile>/`).
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TEST_PKCS11_MODULE") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let name = format!(
        "{}jpki_pkcs11{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let deps = exe.parent().expect("deps dir");
    let candidates = [
        deps.join(&name),
        deps.parent().expect("target dir").join(&name),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| candidates[1].clone())
}

/// The RSA public key of a DER certificate (to verify the module's signatures outside it).
pub fn rsa_public_key(cert_der: &[u8]) -> rsa::RsaPublicKey {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der).expect("a DER certificate");
    let bits = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    rsa::RsaPublicKey::from_pkcs1_der(bits).expect("an RSA public key")
}

/// Verifies with `openssl`, outside the module, that `sig` is a SHA-256 signature of the file
/// `msg` by the key of the DER certificate `cert_der` (PKCS#1 v1.5, or PSS with a 32-byte salt).
/// Panics with openssl's own output otherwise.
pub fn openssl_verify(cert_der: &Path, msg: &Path, sig: &Path, pss: bool) {
    let out = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"])
        .arg(cert_der)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl x509 -in {}: {}",
        cert_der.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let pubkey = sig.with_extension("pub.pem");
    std::fs::write(&pubkey, &out.stdout).expect("write the public key");
    let mut cmd = Command::new("openssl");
    cmd.args(["dgst", "-sha256", "-verify"]).arg(&pubkey);
    if pss {
        cmd.args([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
        ]);
    }
    let out = cmd
        .arg("-signature")
        .arg(sig)
        .arg(msg)
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Verified OK"),
        "openssl: {} is not a signature of {} by {}: {text}{}",
        sig.display(),
        msg.display(),
        cert_der.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The slot of the token labelled `label` (`JPKI User Authentication`, `JPKI Digital
/// Signature`) in the reader named `reader`, if the module shows it. Never panics (usable in a
/// forked child).
pub fn token_slot(
    p: &cryptoki::context::Pkcs11,
    reader: &str,
    label: &str,
) -> Option<cryptoki::slot::Slot> {
    p.get_slots_with_token().ok()?.into_iter().find(|s| {
        p.get_slot_info(*s)
            .is_ok_and(|i| i.slot_description().starts_with(reader))
            && p.get_token_info(*s)
                .is_ok_and(|t| t.label().trim_end() == label)
    })
}

/// The (authentication, signature) slots of `reader`; panics if either is missing.
pub fn token_slots(
    p: &cryptoki::context::Pkcs11,
    reader: &str,
) -> (cryptoki::slot::Slot, cryptoki::slot::Slot) {
    let get = |label: &str| {
        token_slot(p, reader, label).unwrap_or_else(|| panic!("no {label} token in {reader}"))
    };
    (
        get("JPKI User Authentication"),
        get("JPKI Digital Signature"),
    )
}

/// A SHA-256 DigestInfo of `msg` (RFC 8017 §9.2 note 1), built independently of the module.
pub fn digest_info(msg: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let mut di = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    di.extend_from_slice(&sha2::Sha256::digest(msg));
    di
}
