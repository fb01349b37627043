//! `jpki`: command-line companion of the jpki-pkcs11 module.
//!
//! Subcommands:
//! - `jpki virtual-card [--state DIR] [--log FILE] [--host HOST] [--port PORT] [--latency-ms N]
//!   [--fault SPEC]...`: run the virtual My Number Card behind pcscd's vpcd reader.

use jpki_pkcs11::vcard::{self, VirtualCard};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: jpki <command> [options]

commands:
  virtual-card [--state DIR] [--log FILE] [--host HOST] [--port PORT] [--latency-ms N]
               [--fault SPEC]...
      Run the virtual My Number Card (test PKI, fictional holder) as the card in pcscd's
      vpcd reader (port 35963 = \"Virtual PCD 00 00\", 35964 = \"Virtual PCD 00 01\").
      The card lives in DIR (default $XDG_STATE_HOME/jpki-virtual-card or
      ~/.local/state/jpki-virtual-card); it is created there on first use.
      --fault makes the card misbehave (tests only; INS and SW in hex): status-at:N:SW,
      status:INS:SW, truncate:INS:KEEP, oversize:INS:EXTRA, get-response:INS:CHUNK,
      endless-get-response:INS, wrong-le:INS, corrupt-signature, slow:INS:MS,
      remove-after-verify, cert-bogus:FILE, cert-length:FILE:LEN, cert-long-form:FILE
      (FILE = auth, auth-ca, sign, sign-ca).
  help
      Show this text.";

/// A command-line error: message for stderr, exit code 2.
struct UsageError(String);

/// Hand-written argument reader: `--name value` and `--name=value` options.
struct Args {
    rest: std::vec::IntoIter<OsString>,
}

impl Args {
    /// The next option name and its inline value, if any.
    fn next_option(&mut self) -> Result<Option<(String, Option<OsString>)>, UsageError> {
        let Some(arg) = self.rest.next() else {
            return Ok(None);
        };
        let s = arg
            .to_str()
            .ok_or_else(|| UsageError(format!("bad argument {arg:?}")))?
            .to_string();
        if !s.starts_with("--") {
            return Err(UsageError(format!("unexpected argument {s:?}")));
        }
        Ok(Some(match s.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.into())),
            None => (s, None),
        }))
    }

    fn value(&mut self, name: &str, inline: Option<OsString>) -> Result<OsString, UsageError> {
        inline
            .or_else(|| self.rest.next())
            .ok_or_else(|| UsageError(format!("{name} needs a value")))
    }

    fn parsed<T: std::str::FromStr>(
        &mut self,
        name: &str,
        inline: Option<OsString>,
    ) -> Result<T, UsageError> {
        let v = self.value(name, inline)?;
        v.to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| UsageError(format!("{name}: bad value {v:?}")))
    }
}

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("jpki-virtual-card");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/jpki-virtual-card")
}

fn virtual_card(mut args: Args) -> Result<ExitCode, UsageError> {
    let mut state = None;
    let mut opts = vcard::vpcd::Options {
        host: "127.0.0.1".into(),
        port: 35963,
        log: None,
    };
    let mut latency_ms = 0u64;
    let mut faults = Vec::new();
    while let Some((name, inline)) = args.next_option()? {
        match name.as_str() {
            "--state" => state = Some(PathBuf::from(args.value(&name, inline)?)),
            "--log" => opts.log = Some(PathBuf::from(args.value(&name, inline)?)),
            "--host" => opts.host = args.parsed(&name, inline)?,
            "--port" => opts.port = args.parsed(&name, inline)?,
            "--latency-ms" => latency_ms = args.parsed(&name, inline)?,
            "--fault" => {
                let spec = args.value(&name, inline)?;
                let spec = spec.to_str().unwrap_or_default();
                faults.push(vcard::Fault::parse(spec).map_err(UsageError)?);
            }
            _ => return Err(UsageError(format!("virtual-card: unknown option {name}"))),
        }
    }
    let state = state.unwrap_or_else(default_state_dir);
    let mut card = match VirtualCard::open(&state) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jpki virtual-card: {}: {e}", state.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    card.set_latency(Duration::from_millis(latency_ms));
    if !faults.is_empty() {
        card.set_faults(faults);
    }
    if let Err(e) = vcard::vpcd::run(card, &opts) {
        eprintln!("jpki virtual-card: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let mut argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    if argv.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let command = argv.remove(0);
    let args = Args {
        rest: argv.into_iter(),
    };
    let result = match command.to_str() {
        Some("virtual-card") => virtual_card(args),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(UsageError(format!("unknown command {command:?}"))),
    };
    result.unwrap_or_else(|UsageError(msg)| {
        eprintln!("jpki: {msg}\n\n{USAGE}");
        ExitCode::from(2)
    })
}
