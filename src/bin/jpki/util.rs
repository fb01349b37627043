//! Small helpers of the `jpki` command: failures with exit codes, JSON strings, PEM, and reading
//! PINs without echo.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
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
    pub fn usage(msg: impl Into<String>) -> Fail {
        Fail::new(exit::USAGE, msg)
    }
}

/// A JSON string literal (quotes included), escaped per RFC 8259.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Base64 (standard alphabet, padded).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A certificate as PEM.
pub fn pem(der: &[u8]) -> String {
    let b = base64(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
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

/// Runs `stty <arg>` on the terminal.
fn stty(arg: &str) -> bool {
    std::fs::File::open("/dev/tty")
        .ok()
        .and_then(|tty| {
            Command::new("stty")
                .arg(arg)
                .stdin(tty)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()
        })
        .is_some_and(|s| s.success())
}

/// Asks on `/dev/tty` with echo off.
fn read_tty(prompt: &str, no_tty: &str) -> Result<Zeroizing<Vec<u8>>, Fail> {
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
    if !stty("-echo") {
        return Err(Fail::new(
            exit::FAILURE,
            "cannot switch the terminal's echo off (stty): refusing to read the PIN",
        ));
    }
    let mut line = Zeroizing::new(Vec::new());
    let res = std::io::BufReader::new(&mut tty).read_until(b'\n', &mut line);
    stty("echo");
    let _ = tty.write_all(b"\n");
    match res {
        Ok(0) => Err(Fail::new(exit::CANCELLED, "PIN entry cancelled")),
        Ok(_) => {
            chomp(&mut line);
            Ok(line)
        }
        Err(e) => Err(Fail::new(
            exit::FAILURE,
            format!("reading the terminal: {e}"),
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
    fn json_escaping() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
