//! PIN entry through GnuPG's pinentry programs (`pinentry`, `pinentry-curses`,
//! `pinentry-gnome3`, ...), which speak the Assuan protocol on their stdin/stdout:
//!
//! ```text
//! <- OK Pleased to meet you          (greeting)
//! -> SETTITLE / SETDESC / SETPROMPT / SETERROR <percent-escaped text>
//! <- OK
//! -> GETPIN
//! <- D <percent-escaped PIN>          (absent for an empty entry)
//! <- OK                              or  ERR <code> <text> (83886179 = cancelled)
//! -> BYE
//! ```
//!
//! The PIN is read byte by byte straight into zeroized memory (no buffered reader keeps a
//! copy), returned as `Zeroizing`, and never logged. The caller checks its format and presents
//! it to the card once, exactly like a PIN passed to `C_Login`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use zeroize::Zeroizing;

/// What went wrong while asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PinentryError {
    /// The user cancelled (or the pinentry timed out, or has no window/terminal to show).
    Cancelled,
    /// The program could not be run or broke the protocol (message for the log, no PIN in it).
    Failed(String),
}

/// The texts shown to the user.
pub(crate) struct Prompt<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub prompt: &'a str,
    /// An error line shown above the entry (e.g. "last try"), if any.
    pub error: Option<&'a str>,
}

/// gpg-error codes (low 16 bits of an `ERR` code) that mean the user did not give a PIN.
const GPG_ERR_TIMEOUT: u32 = 62;
const GPG_ERR_CANCELED: u32 = 99;
const GPG_ERR_NOT_CONFIRMED: u32 = 114;
const GPG_ERR_NO_PIN_ENTRY: u32 = 85;

/// Escapes text for an Assuan command argument (`%`, CR, LF and other controls as `%XX`).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '%' || (c as u32) < 0x20 {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes `%XX` escapes of Assuan data into `out`. A `%` not followed by two hex digits is
/// kept as is.
pub(crate) fn unescape_into(data: &[u8], out: &mut Vec<u8>) {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'%' && i + 2 < data.len() {
            if let (Some(h), Some(l)) = (hex(data[i + 1]), hex(data[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
}

/// A running pinentry. Killed (if still running) when dropped.
struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"BYE\n");
        let _ = self.stdin.flush();
        // Give it a moment to exit on its own, then make sure it is gone.
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Longest answer line accepted (Assuan's limit is 1000 bytes).
const MAX_LINE: usize = 4096;

/// One answer line of the server, without its newline (zeroized: it may carry the PIN; sized
/// for the longest line at once, so it never reallocates and leaves no copy behind).
fn read_line(r: &mut ChildStdout) -> Result<Zeroizing<Vec<u8>>, PinentryError> {
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE));
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) => {
                return Err(PinentryError::Failed(
                    "pinentry closed its output (exited?)".into(),
                ))
            }
            Ok(_) if byte[0] == b'\n' => return Ok(line),
            Ok(_) => {
                // Assuan lines are at most 1000 bytes; refuse a runaway answer.
                if line.len() >= MAX_LINE {
                    return Err(PinentryError::Failed("pinentry line too long".into()));
                }
                line.push(byte[0]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(PinentryError::Failed(format!("reading pinentry: {e}"))),
        }
    }
}

impl Session {
    fn start(program: &Path) -> Result<Session, PinentryError> {
        let mut child = Command::new(program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| PinentryError::Failed(format!("cannot run {}: {e}", program.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PinentryError::Failed("no pipes to pinentry".into()));
        };
        let mut s = Session {
            child,
            stdin,
            stdout,
        };
        s.finish(None)?; // the greeting
        Ok(s)
    }

    /// Reads answer lines up to `OK`/`ERR`; `D` data (decoded) goes into `data`.
    fn finish(&mut self, mut data: Option<&mut Zeroizing<Vec<u8>>>) -> Result<(), PinentryError> {
        loop {
            let line = read_line(&mut self.stdout)?;
            if line.as_slice() == b"OK" || line.starts_with(b"OK ") {
                return Ok(());
            }
            if line.starts_with(b"ERR") {
                let text = String::from_utf8_lossy(&line[3..]).trim().to_string();
                let code: u32 = text
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                return Err(match code & 0xFFFF {
                    GPG_ERR_CANCELED
                    | GPG_ERR_TIMEOUT
                    | GPG_ERR_NOT_CONFIRMED
                    | GPG_ERR_NO_PIN_ENTRY => PinentryError::Cancelled,
                    _ => PinentryError::Failed(format!("pinentry answered ERR {text}")),
                });
            }
            if let Some(rest) = line.strip_prefix(b"D ") {
                match data.as_deref_mut() {
                    Some(d) => {
                        // Decoded into a wiped buffer, then appended without leaving a copy.
                        let mut decoded = Zeroizing::new(Vec::with_capacity(rest.len()));
                        unescape_into(rest, &mut decoded);
                        jpki_card::secret::extend_wiped(d, &decoded);
                    }
                    None => return Err(PinentryError::Failed("unexpected D line".into())),
                }
                continue;
            }
            if line.starts_with(b"INQUIRE") {
                // Nothing to give: cancel the inquiry; the command then ends with ERR.
                self.send_raw(b"CAN")?;
                continue;
            }
            // `S` status lines, `#` comments, empty lines: ignored.
        }
    }

    fn send_raw(&mut self, line: &[u8]) -> Result<(), PinentryError> {
        let mut buf = line.to_vec();
        buf.push(b'\n');
        self.stdin
            .write_all(&buf)
            .and_then(|()| self.stdin.flush())
            .map_err(|e| PinentryError::Failed(format!("writing to pinentry: {e}")))
    }

    /// Sends a command and waits for its `OK`.
    fn command(&mut self, line: &str) -> Result<(), PinentryError> {
        // Assuan lines are limited to 1000 bytes including the newline.
        let line = if line.len() > 990 {
            let mut end = 990;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            &line[..end]
        } else {
            line
        };
        self.send_raw(line.as_bytes())?;
        self.finish(None)
    }

    /// Sends an `OPTION`; a pinentry that does not know it answers ERR, which is fine.
    fn option(&mut self, opt: &str) -> Result<(), PinentryError> {
        match self.command(&format!("OPTION {opt}")) {
            Err(PinentryError::Failed(_)) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Where a terminal pinentry (pinentry-curses) should draw: `$GPG_TTY`, else the controlling
/// terminal if this process has one.
fn tty_name() -> Option<String> {
    if let Some(t) = std::env::var("GPG_TTY").ok().filter(|t| !t.is_empty()) {
        return Some(t);
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()
        .map(|_| "/dev/tty".to_string())
}

/// Runs `program` and asks for a PIN with `p`. The answer is not checked here.
pub(crate) fn get_pin(program: &Path, p: &Prompt<'_>) -> Result<Zeroizing<Vec<u8>>, PinentryError> {
    let mut s = Session::start(program)?;
    if let Some(tty) = tty_name() {
        s.option(&format!("ttyname={tty}"))?;
        if let Ok(term) = std::env::var("TERM") {
            s.option(&format!("ttytype={term}"))?;
        }
    }
    if let Ok(lang) = std::env::var("LC_ALL").or_else(|_| std::env::var("LANG")) {
        s.option(&format!("lc-ctype={lang}"))?;
    }
    s.command(&format!("SETTITLE {}", escape(p.title)))?;
    s.command(&format!("SETDESC {}", escape(p.description)))?;
    s.command(&format!("SETPROMPT {}", escape(p.prompt)))?;
    if let Some(e) = p.error {
        s.command(&format!("SETERROR {}", escape(e)))?;
    }
    s.send_raw(b"GETPIN")?;
    let mut pin = Zeroizing::new(Vec::with_capacity(32));
    s.finish(Some(&mut pin))?;
    Ok(pin)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Writes a scripted pinentry into `dir` that logs every command it gets to `<dir>/log`
    /// and answers GETPIN with `answer` (raw Assuan lines, `\n` between them, e.g.
    /// `D 1234\nOK`). Returns the program's path.
    ///
    /// On Unix it is a POSIX shell script; on Windows a copy of `fake-pinentry.exe` (built
    /// beside the test executable by `scripts/wine-run.sh` from `scripts/windows/`), which reads
    /// its answer from `<dir>/answer`.
    pub(crate) fn scripted(dir: &Path, answer: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        program(dir, answer, false)
    }

    /// Like [`scripted`], but GETPIN first creates `<dir>/asking` and waits until `<dir>/go`
    /// exists (a person still typing).
    pub(crate) fn scripted_waiting(dir: &Path, answer: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        program(dir, answer, true)
    }

    #[cfg(unix)]
    fn program(dir: &Path, answer: &str, wait: bool) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let log = dir.join("log");
        let script = dir.join("pinentry.sh");
        let before = if wait {
            format!(
                "touch '{d}/asking'; while [ ! -e '{d}/go' ]; do sleep 0.05; done; ",
                d = dir.display()
            )
        } else {
            String::new()
        };
        let text = format!(
            "#!/bin/sh\necho 'OK Pleased to meet you'\n\
             while IFS= read -r line; do\n  printf '%s\\n' \"$line\" >> '{log}'\n  \
             case \"$line\" in\n    GETPIN) {before}printf '%b\\n' '{answer}' ;;\n    \
             BYE) echo 'OK closing connection'; exit 0 ;;\n    \
             OPTION\\ bogus*) echo 'ERR 83886254 Unknown option' ;;\n    \
             *) echo OK ;;\n  esac\ndone\n",
            log = log.display(),
        );
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[cfg(windows)]
    fn program(dir: &Path, answer: &str, wait: bool) -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let fake = exe.with_file_name("fake-pinentry.exe");
        assert!(
            fake.exists(),
            "{} is missing: run the tests through scripts/wine-run.sh",
            fake.display()
        );
        let prog = dir.join("pinentry.exe");
        std::fs::copy(&fake, &prog).unwrap();
        std::fs::write(dir.join("answer"), answer.replace("\\n", "\n")).unwrap();
        if wait {
            std::fs::write(dir.join("wait"), b"").unwrap();
        }
        prog
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jpki-pinentry-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn prompt() -> Prompt<'static> {
        Prompt {
            title: "T",
            description: "100% sure?\nTries left: 3",
            prompt: "PIN:",
            error: None,
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a%b\nc\rd"), "a%25b%0Ac%0Dd");
        let mut out = Vec::new();
        unescape_into(b"ab%25c%0A%zz%4", &mut out);
        assert_eq!(out, b"ab%c\n%zz%4");
    }

    #[test]
    fn reads_the_pin_and_sends_the_texts() {
        let dir = tmp("ok");
        let prog = scripted(&dir, "S PROGRESS x\\n# comment\\nD 12%334\\nOK");
        let pin = get_pin(&prog, &prompt()).unwrap();
        assert_eq!(pin.as_slice(), b"12\x334".as_slice());
        let log = std::fs::read_to_string(dir.join("log")).unwrap();
        assert!(log.contains("SETTITLE T\n"), "{log}");
        assert!(
            log.contains("SETDESC 100%25 sure?%0ATries left: 3\n"),
            "{log}"
        );
        assert!(log.contains("SETPROMPT PIN:\n"), "{log}");
        assert!(log.contains("GETPIN\nBYE\n"), "{log}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn empty_entry_cancel_and_failures() {
        let dir = tmp("cancel");
        let prog = scripted(&dir, "ERR 83886179 Operation cancelled <Pinentry>");
        assert_eq!(get_pin(&prog, &prompt()), Err(PinentryError::Cancelled));
        let dir2 = tmp("empty");
        let prog = scripted(&dir2, "OK");
        assert_eq!(get_pin(&prog, &prompt()).unwrap().as_slice(), b"");
        let dir3 = tmp("err");
        let prog = scripted(&dir3, "ERR 83886180 Something else");
        assert!(matches!(
            get_pin(&prog, &prompt()),
            Err(PinentryError::Failed(m)) if m.contains("83886180")
        ));
        assert!(matches!(
            get_pin(Path::new("/nonexistent/pinentry"), &prompt()),
            Err(PinentryError::Failed(m)) if m.contains("cannot run")
        ));
        for d in [dir, dir2, dir3] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
