//! `jpki`: command-line companion of the jpki-pkcs11 module.
//!
//! Subcommands (see `USAGE`, `docs/jpki-command.md` and the man page `jpki.1`): `status`,
//! `cert export`, `pin change`, `register`/`unregister`, `virtual-card`. Hand-written argument
//! parsing; exit codes in [`util::exit`].

mod cardcmd;
mod register;
mod util;

use jpki_pkcs11::vcard::{self, VirtualCard};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use util::Fail;

const USAGE: &str = "usage: jpki <command> [options]

commands:
  status [--reader NAME] [--json] [--password | --password-file FILE]
      Readers, cards, token type, tries left for both PINs (read without using a try), and the
      authentication certificate. With the signature password (asked on the terminal, or the
      first line of FILE) also the signature certificate, which holds personal data.
  cert export auth|auth-ca|sign|sign-ca [--der|--pem] [--out FILE] [--reader NAME]
              [--password-file FILE]
      Write a certificate (PEM by default) to standard output or FILE. `sign` needs the
      signature password.
  pin change auth|sign [--reader NAME] [--pin-file FILE | --stdin]
      Change the user authentication PIN (4 digits) or the digital signature password (6-16
      letters and digits). Asks for the current one and the new one twice (or reads these three
      lines from FILE or standard input). Shows the tries left before sending anything.
  register firefox|nss|p11-kit [--module PATH]
  unregister firefox|nss|p11-kit
      Add (remove) the PKCS#11 module to every Firefox profile of the user, to ~/.pki/nssdb
      (Chromium, LibreOffice, Thunderbird), or to the user's p11-kit configuration.
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
      (FILE = auth, auth-ca, sign, sign-ca); the real card's unconfirmed behaviours:
      short-form:SW, short-form:INS:SW, warm-reset-keeps-state, power-up-6f00,
      empty-verify-9000; and no-other-apps, power-off-keeps-state.
  help
      Show this text.

exit codes: 0 ok, 1 failure, 2 usage, 3 no PC/SC service or no reader, 4 no card,
  5 not a My Number Card, 6 wrong PIN, 7 PIN locked, 8 malformed PIN (nothing sent),
  9 PIN entry cancelled.";

/// Hand-written argument reader: `--name value` and `--name=value` options.
pub struct Args {
    rest: std::vec::IntoIter<OsString>,
}

impl Args {
    /// The next option name and its inline value, if any.
    pub fn next_option(&mut self) -> Result<Option<(String, Option<OsString>)>, Fail> {
        let Some(arg) = self.rest.next() else {
            return Ok(None);
        };
        let s = arg
            .to_str()
            .ok_or_else(|| Fail::usage(format!("bad argument {arg:?}")))?
            .to_string();
        if !s.starts_with('-') || s == "-" {
            return Err(Fail::usage(format!("unexpected argument {s:?}")));
        }
        Ok(Some(match s.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.into())),
            None => (s, None),
        }))
    }

    pub fn value(&mut self, name: &str, inline: Option<OsString>) -> Result<OsString, Fail> {
        inline
            .or_else(|| self.rest.next())
            .ok_or_else(|| Fail::usage(format!("{name} needs a value")))
    }

    pub fn string(&mut self, name: &str, inline: Option<OsString>) -> Result<String, Fail> {
        let v = self.value(name, inline)?;
        v.into_string()
            .map_err(|v| Fail::usage(format!("{name}: bad value {v:?}")))
    }

    fn parsed<T: std::str::FromStr>(
        &mut self,
        name: &str,
        inline: Option<OsString>,
    ) -> Result<T, Fail> {
        let v = self.value(name, inline)?;
        v.to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Fail::usage(format!("{name}: bad value {v:?}")))
    }

    /// The next argument, which must be a word (not an option); `what` names it for the error.
    pub fn positional(&mut self, what: &str) -> Result<String, Fail> {
        match self.rest.next().map(OsString::into_string) {
            Some(Ok(s)) if !s.starts_with('-') => Ok(s),
            _ => Err(Fail::usage(format!("missing {what}"))),
        }
    }
}

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("jpki-virtual-card");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/jpki-virtual-card")
}

fn virtual_card(mut args: Args) -> Result<u8, Fail> {
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
                faults.push(vcard::Fault::parse(spec).map_err(Fail::usage)?);
            }
            _ => return Err(Fail::usage(format!("virtual-card: unknown option {name}"))),
        }
    }
    let state = state.unwrap_or_else(default_state_dir);
    let mut card = match VirtualCard::open(&state) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jpki virtual-card: {}: {e}", state.display());
            return Ok(util::exit::FAILURE);
        }
    };
    card.set_latency(Duration::from_millis(latency_ms));
    if !faults.is_empty() {
        card.set_faults(faults);
    }
    if let Err(e) = vcard::vpcd::run(card, &opts) {
        eprintln!("jpki virtual-card: {e}");
        return Ok(util::exit::FAILURE);
    }
    Ok(0)
}

fn main() -> ExitCode {
    let mut argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    if argv.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(util::exit::USAGE);
    }
    let command = argv.remove(0);
    let mut args = Args {
        rest: argv.into_iter(),
    };
    let result = match command.to_str() {
        Some("virtual-card") => virtual_card(args),
        Some("status") => cardcmd::status(args),
        Some("cert") => match args.positional("cert subcommand (export)").as_deref() {
            Ok("export") => cardcmd::cert_export(args),
            Ok(other) => Err(Fail::usage(format!("unknown command cert {other:?}"))),
            Err(_) => Err(Fail::usage("missing cert subcommand (export)")),
        },
        Some("pin") => match args.positional("pin subcommand (change)").as_deref() {
            Ok("change") => cardcmd::pin_change(args),
            Ok(other) => Err(Fail::usage(format!("unknown command pin {other:?}"))),
            Err(_) => Err(Fail::usage("missing pin subcommand (change)")),
        },
        Some("register") => register::run(args, true),
        Some("unregister") => register::run(args, false),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(0)
        }
        _ => Err(Fail::usage(format!("unknown command {command:?}"))),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) if f.code == util::exit::USAGE => {
            eprintln!("jpki: {}\n\n{USAGE}", f.msg);
            ExitCode::from(f.code)
        }
        Err(f) => {
            eprintln!("jpki: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}
