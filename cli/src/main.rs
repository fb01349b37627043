//! `jpki`: command-line companion of the jpki-pkcs11 module.
//!
//! Commands (declared with clap in [`cli`]; see `jpki --help`, `docs/jpki-command.md` and the
//! man page `jpki.1`, generated from the same declarations): `status`, `cert export`,
//! `pin change`, `register`/`unregister`, `virtual-card`, and the hidden `generate man` /
//! `generate completions SHELL`. Exit codes in [`util::exit`].

mod cardcmd;
mod cli;
mod generate;
mod register;
mod util;

use clap::Parser;
use cli::{CertCommand, Cli, Command, PinCommand, VirtualCardArgs};
use jpki_vcard::VirtualCard;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use util::Fail;

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("jpki-virtual-card");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/jpki-virtual-card")
}

fn virtual_card(args: VirtualCardArgs) -> Result<u8, Fail> {
    let opts = jpki_vcard::vpcd::Options {
        host: args.host,
        port: args.port,
        log: args.log,
    };
    let state = args.state.unwrap_or_else(default_state_dir);
    let mut card = match VirtualCard::open(&state) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jpki virtual-card: {}: {e}", state.display());
            return Ok(util::exit::FAILURE);
        }
    };
    card.set_latency(Duration::from_millis(args.latency_ms));
    if !args.fault.is_empty() {
        card.set_faults(args.fault);
    }
    if let Err(e) = jpki_vcard::vpcd::run(card, &opts) {
        eprintln!("jpki virtual-card: {e}");
        return Ok(util::exit::FAILURE);
    }
    Ok(0)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; every usage error (clap's own code is 2
            // too, but it is ours to keep) goes to stderr with exit::USAGE.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { util::exit::USAGE } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Status(a) => cardcmd::status(a),
        Command::Cert {
            command: CertCommand::Export(a),
        } => cardcmd::cert_export(a),
        Command::Pin {
            command: PinCommand::Change(a),
        } => cardcmd::pin_change(a),
        Command::Register(a) => register::register(a.target, a.module, a.db),
        Command::Unregister(a) => register::unregister(a.target, a.db),
        Command::VirtualCard(a) => virtual_card(a),
        Command::Generate { what } => generate::run(what),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("jpki: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}
