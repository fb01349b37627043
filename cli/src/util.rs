//! Small helpers of the `jpki` command: failures with exit codes, PEM, and reading PINs (from a
//! file, standard input, or the terminal without echo through `rpassword`).

use std::io::{Read, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// Exit codes (documented in `docs/jpki-command.md` and `jpki.1`).
pub mod exit {
    /// Something else failed (card or reader error, file error).
    pub const FAILURE: u8 = 1;
    /// Bad command line.
    pub const USAGE: u8 = 2;
    /// PC/SC service not running, no reader, or no reader of that name.
    pub const NO_READER: u8 = 3;
    /// No card in the reader.
    pub const NO_CARD: u8 = 4;
    /// The card is not a My Number Card.
    pub const NOT_JPKI: u8 = 5;
    /// Wrong PIN or password (one try used).
    pub const WRONG_PIN: u8 = 6;
    /// PIN or password locked.
    pub const PIN_LOCKED: u8 = 7;
    /// A PIN of the wrong format, or the two new PINs differ: nothing was sent to the card.
    pub const BAD_PIN: u8 = 8;
    /// PIN entry cancelled (end of input).
    pub const CANCELLED: u8 = 9;

    /// Every exit code and its meaning, for `jpki --help` and the man page's EXIT STATUS
    /// (`docs/jpki-command.md` has the same table).
    pub const TABLE: [(u8, &str); 10] = [
        (0, "success (status: at least one My Number Card found)"),
        (
            FAILURE,
            "other failure (card or reader error, file error, modutil failed)",
        ),
        (USAGE, "bad command line"),
        (
            NO_READER,
            "PC/SC service (pcscd) not running, no reader, or no reader of that name",
        ),
        (NO_CARD, "no card in the reader (status: in no reader)"),
        (NOT_JPKI, "not a My Number Card"),
        (
            WRONG_PIN,
            "wrong PIN or password; one try used, the message says how many are left",
        ),
        (
            PIN_LOCKED,
            "PIN or password locked (only a municipal office can unlock it)",
        ),
        (
            BAD_PIN,
            "malformed PIN, or the two new PINs differ: nothing was sent to the card",
        ),
        (CANCELLED, "PIN entry cancelled (end of input, no terminal)"),
    ];
}

/// A failed command: exit code and message for stderr.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub msg: String,
}

impl Fail {
    pub fn new(code: u8, msg: impl Into<String>) -> Fail {
        Fail {
            code,
            msg: msg.into(),
        }
    }
}

/// A certificate as PEM (RFC 7468: 64-column base64 lines, `\n` line endings).
pub fn pem(der: &[u8]) -> String {
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, der)
        .expect("a certificate's PEM length fits in memory")
}

/// Strips one trailing `\n` / `\r\n`.
fn chomp(line: &mut Zeroizing<Vec<u8>>) {
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
}

/// Where PINs come from.
pub enum PinSource {
    /// Ask on the terminal (`/dev/tty`), echo off.
    Prompt,
    /// Lines of a file (first line first).
    File(std::path::PathBuf),
    /// Lines of standard input.
    Stdin,
}

/// Reads PINs one after the other from a [`PinSource`].
pub struct PinReader {
    lines: Option<Vec<Zeroizing<Vec<u8>>>>,
    next: usize,
    /// The command's options that give PINs without a terminal, named when there is none.
    no_tty: &'static str,
}

impl PinReader {
    /// `no_tty` names the command's options that give the PIN without a terminal (shown when
    /// there is none), e.g. `"--pin-file or --stdin"`.
    pub fn new(src: &PinSource, no_tty: &'static str) -> Result<PinReader, Fail> {
        let read_all = |r: &mut dyn Read| -> std::io::Result<Vec<Zeroizing<Vec<u8>>>> {
            let mut all = Zeroizing::new(Vec::new());
            r.read_to_end(&mut all)?;
            Ok(all
                .split(|b| *b == b'\n')
                .map(|l| {
                    let mut l = Zeroizing::new(l.to_vec());
                    chomp(&mut l);
                    l
                })
                .collect())
        };
        let lines = match src {
            PinSource::Prompt => None,
            PinSource::File(p) => Some(
                std::fs::File::open(p)
                    .and_then(|mut f| read_all(&mut f))
                    .map_err(|e| Fail::new(exit::FAILURE, format!("{}: {e}", p.display())))?,
            ),
            PinSource::Stdin => Some(
                read_all(&mut std::io::stdin().lock())
                    .map_err(|e| Fail::new(exit::FAILURE, format!("standard input: {e}")))?,
            ),
        };
        Ok(PinReader {
            lines,
            next: 0,
            no_tty,
        })
    }

    /// The next PIN: the next line of the file/stdin, or typed after `prompt` on the terminal.
    pub fn read(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, Fail> {
        match &mut self.lines {
            Some(lines) => {
                let line = lines.get(self.next).cloned().ok_or_else(|| {
                    Fail::new(
                        exit::CANCELLED,
                        format!(
                            "no more lines to read for \"{}\"",
                            prompt.trim_end_matches(": ")
                        ),
                    )
                })?;
                self.next += 1;
                Ok(line)
            }
            None => read_tty(prompt, self.no_tty),
        }
    }
}

/// Asks on `/dev/tty` with echo off (`rpassword`). The answer is moved into a [`Zeroizing`]
/// buffer at once (rpassword wipes its own read buffer).
fn read_tty(prompt: &str, no_tty: &str) -> Result<Zeroizing<Vec<u8>>, Fail> {
    // rpassword opens /dev/tty itself; opening it first tells "no terminal" (a cron job, a
    // desktop launcher) from a failure to read it.
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| {
            Fail::new(
                exit::CANCELLED,
                format!("no terminal to ask for the PIN: use {no_tty}"),
            )
        })?;
    let _ = tty.write_all(prompt.as_bytes());
    let _ = tty.flush();
    // rpassword switches echo off (keeping the newline's echo) and reads one line; it reads
    // nothing if echo cannot be switched off.
    match rpassword::read_password() {
        Ok(line) => {
            let mut line = Zeroizing::new(line);
            Ok(Zeroizing::new(std::mem::take(&mut *line).into_bytes()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            let _ = tty.write_all(b"\n");
            Err(Fail::new(exit::CANCELLED, "PIN entry cancelled"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(Fail::new(
            exit::BAD_PIN,
            "the text typed is not UTF-8, so not a PIN; nothing was sent to the card",
        )),
        Err(e) => Err(Fail::new(
            exit::FAILURE,
            format!("reading the terminal with echo off: {e}"),
        )),
    }
}

/// Reads the one secret in `file` (its first line), or asks on the terminal (the commands that
/// use it take the file as `--password-file`).
pub fn read_secret(file: Option<&Path>, prompt: &str) -> Result<Zeroizing<Vec<u8>>, Fail> {
    let src = match file {
        Some(f) => PinSource::File(f.to_path_buf()),
        None => PinSource::Prompt,
    };
    PinReader::new(&src, "--password-file FILE")?.read(prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_lines() {
        assert_eq!(
            pem(b"foobar"),
            "-----BEGIN CERTIFICATE-----\nZm9vYmFy\n-----END CERTIFICATE-----\n"
        );
        // 48 bytes make one full 64-column line; 49 bytes a second line with padding.
        let p = pem(&[0xFB; 49]);
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines.len(), 4, "{p}");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2], "+w==");
    }
}
