//! The command line of `jpki`, declared with clap (derive): every command, its options and its
//! help text. `--help` of each command, the shell completions and the man page `jpki.1` are all
//! generated from these declarations (see `generate.rs`).
//!
//! Help texts are wrapped by hand at 100 columns (clap wraps only with its `wrap_help` feature,
//! left out to keep the dependencies few); the man page refills them anyway.
//!
//! As with the hand-written parser before, a repeated option takes its last value
//! (`args_override_self`), `--der`/`--pem` and `--pin-file`/`--stdin` override each other (the
//! last one wins), and every usage error exits with [`crate::util::exit::USAGE`] (2).

use crate::util::exit;
use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};
use std::path::PathBuf;

/// One line, for `jpki --help` and the man page's NAME.
pub const ABOUT: &str = "My Number Card (JPKI) status, certificates, PINs and PKCS#11 registration";

const LONG_ABOUT: &str = "\
jpki is the command-line companion of the jpki-pkcs11 PKCS#11 module for the two JPKI keys of
the Japanese My Number Card: the user authentication key (4-digit PIN, 3 tries) and the digital
signature key (password of 6 to 16 letters and digits, 5 tries). It talks to the card through
PC/SC (pcscd).

Tries left are read with an empty VERIFY, which uses no try. A PIN is checked for format before
it is sent, and a malformed one is never sent. The card is never left unlocked when the command
ends. PINs and passwords are never taken as command-line arguments: they are read from the
terminal with echo off, or from a file, or from standard input.";

/// The text after `jpki --help` (and `jpki help`): the exit codes.
fn after_help() -> String {
    let mut s = String::from("Exit codes:\n");
    for (code, what) in exit::TABLE {
        s.push_str(&format!("  {code}  {what}\n"));
    }
    s.push_str(
        "\nEach command has its own help: jpki <command> --help, e.g. jpki pin change --help",
    );
    s
}

#[derive(Parser, Debug)]
#[command(
    name = "jpki",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = after_help(),
    arg_required_else_help = true,
    subcommand_required = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Status(StatusArgs),
    #[command(
        about = "Certificates of the card: cert export auth|auth-ca|sign|sign-ca",
        arg_required_else_help = true,
        subcommand_required = true
    )]
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    #[command(
        about = "The PIN and the password: pin change auth|sign",
        arg_required_else_help = true,
        subcommand_required = true
    )]
    Pin {
        #[command(subcommand)]
        command: PinCommand,
    },
    Register(RegisterArgs),
    Unregister(UnregisterArgs),
    VirtualCard(VirtualCardArgs),
    /// Writes the man page or a shell completion script (for packaging and `make install`).
    #[command(hide = true, arg_required_else_help = true, subcommand_required = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertCommand {
    Export(CertExportArgs),
}

#[derive(Subcommand, Debug)]
pub enum PinCommand {
    Change(PinChangeArgs),
}

#[derive(Subcommand, Debug)]
pub enum Generate {
    /// The man page jpki.1 (roff), as committed in man/jpki.1.
    Man,
    /// The completion script of SHELL.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const READER_HELP: &str = "Use this reader (default: the first reader holding a My Number Card)";

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "Readers, cards, token type, tries left for both PINs, the authentication certificate",
    long_about = "\
Shows, for each reader: whether a card is in it, the token type (My Number Card, Juki card,
Android, iPhone, read from the token-info file), the tries left for both PINs (read without using
a try), and the authentication certificate's subject and expiry.

The signature certificate holds personal data (name, address, birth date, sex): it is shown only
with the signature password, asked on the terminal (--password) or read from the first line of a
file (--password-file). A wrong password uses one try.

Exit code 0 when at least one My Number Card was found, 4 when no reader holds a card, 5 when the
only cards are not My Number Cards."
)]
pub struct StatusArgs {
    #[arg(long, value_name = "NAME", help = "Show this reader only")]
    pub reader: Option<String>,
    /// Print one JSON object for scripts
    #[arg(long)]
    pub json: bool,
    /// Also show the signature certificate: ask for the password on the terminal
    #[arg(
        long,
        long_help = "Also show the signature certificate (personal data): ask for the signature \
                     password on the\nterminal. Takes no value: a password is never a \
                     command-line argument."
    )]
    pub password: bool,
    /// Also show the signature certificate: the password is the first line of FILE
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub password_file: Option<PathBuf>,
}

/// Which certificate `jpki cert export` writes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertName {
    /// The user authentication certificate (no personal data)
    Auth,
    /// The CA certificate of the authentication key
    AuthCa,
    /// The digital signature certificate (personal data; needs the signature password)
    Sign,
    /// The CA certificate of the signature key
    SignCa,
}

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "Write a certificate (PEM by default) to standard output or a file",
    long_about = "\
Writes a certificate of the card, PEM by default, to standard output or FILE.

sign (the signature certificate) holds the holder's name, address, date of birth and sex: it
needs the signature password (the tries left are shown on stderr first; asked on the terminal,
or the first line of --password-file FILE), and --out writes it readable by its owner only (mode
0600, also over an existing file with wider permissions). The other certificates are public."
)]
pub struct CertExportArgs {
    #[arg(value_enum, value_name = "CERT")]
    pub which: CertName,
    /// Write DER
    #[arg(long, overrides_with = "pem")]
    pub der: bool,
    /// Write PEM (the default)
    #[arg(long, overrides_with = "der")]
    pub pem: bool,
    /// Write to FILE instead of standard output
    #[arg(short = 'o', long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub out: Option<PathBuf>,
    #[arg(long, value_name = "NAME", help = READER_HELP)]
    pub reader: Option<String>,
    /// For sign: the signature password is the first line of FILE (else asked on the terminal)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub password_file: Option<PathBuf>,
}

/// Which PIN `jpki pin change` changes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinName {
    /// The user authentication PIN (4 digits)
    Auth,
    /// The digital signature password (6 to 16 letters A-Z and digits, mixing both)
    Sign,
}

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "Change the user authentication PIN or the digital signature password",
    long_about = "\
Changes the user authentication PIN (4 digits) or the digital signature password (6 to 16 letters
A-Z and digits, mixing both; lower case is sent as upper case). Shows the tries left before
sending anything, then asks for the current one and the new one twice on the terminal, or reads
these three lines from FILE (--pin-file) or standard input (--stdin).

The new PIN is checked before anything is sent, and the two new entries must match. A PIN locked
after too many wrong tries can only be reset at a municipal office; nothing is sent to a locked
PIN."
)]
pub struct PinChangeArgs {
    #[arg(value_enum, value_name = "PIN")]
    pub which: PinName,
    #[arg(long, value_name = "NAME", help = READER_HELP)]
    pub reader: Option<String>,
    /// Read the current PIN, the new one and the new one again from the lines of FILE
    #[arg(
        long,
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
        overrides_with = "stdin"
    )]
    pub pin_file: Option<PathBuf>,
    /// Read the current PIN, the new one and the new one again from standard input
    #[arg(long, overrides_with = "pin_file")]
    pub stdin: bool,
}

/// Where `jpki register` adds the module.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every Firefox profile of the user (also Snap and Flatpak), with modutil
    Firefox,
    /// Every Thunderbird profile of the user (also Snap and Flatpak), with modutil
    Thunderbird,
    /// ~/.pki/nssdb, shared by Chromium, Chrome and LibreOffice, with modutil
    Nss,
    /// The user's p11-kit configuration ~/.config/pkcs11/modules/jpki.module
    #[value(name = "p11-kit")]
    P11Kit,
}

const REGISTER_LONG: &str = "\
Adds the PKCS#11 module to every Firefox profile of the user (firefox), to every Thunderbird
profile (thunderbird), to ~/.pki/nssdb used by Chromium and LibreOffice (nss; all three with
modutil, module name \"JPKI My Number Card\"; close Firefox or Thunderbird first), or to the
user's p11-kit configuration
~/.config/pkcs11/modules/jpki.module (p11-kit). With --db DIR, nss means the NSS database in DIR
(a signing program's own). Doing it twice changes nothing. An NSS database
that does not exist yet is created (empty password).";

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "Add the PKCS#11 module to Firefox, Thunderbird, the shared NSS database or p11-kit",
    long_about = REGISTER_LONG
)]
pub struct RegisterArgs {
    #[arg(value_enum, value_name = "TARGET")]
    pub target: Target,
    /// The module to register (default: the installed one next to this program)
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub module: Option<PathBuf>,
    /// With nss: this NSS database directory instead of ~/.pki/nssdb (e.g. one for a signing
    /// program of your own; created if missing)
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub db: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "Remove the PKCS#11 module from Firefox, Thunderbird, an NSS database or p11-kit",
    long_about = "\
Removes the module added by jpki register from every Firefox or Thunderbird profile, ~/.pki/nssdb
(or the NSS database of --db) or the user's p11-kit configuration. Removing what is not there is
fine."
)]
pub struct UnregisterArgs {
    #[arg(value_enum, value_name = "TARGET")]
    pub target: Target,
    /// With nss: this NSS database directory instead of ~/.pki/nssdb
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub db: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "Run the virtual My Number Card (test PKI, fictional holder) in pcscd's vpcd reader",
    long_about = "\
Runs the project's virtual My Number Card (a test PKI with a fictional holder, authentication PIN
1234, signature password JPKITEST1) as the card in the reader of pcscd's vpcd driver (Debian
vsmartcard-vpcd), for trying the module without hardware: port 35963 is the reader \"Virtual PCD
00 00\", 35964 \"Virtual PCD 00 01\". The card lives in DIR and is created there on first use.
It runs until it is killed (removing the card)."
)]
pub struct VirtualCardArgs {
    /// The card's directory [default: $XDG_STATE_HOME/jpki-virtual-card or
    /// ~/.local/state/jpki-virtual-card]
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub state: Option<PathBuf>,
    /// Append the APDUs and the card's events to FILE
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub log: Option<PathBuf>,
    /// vpcd's host
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// vpcd's port (35963 = "Virtual PCD 00 00", 35964 = "Virtual PCD 00 01")
    #[arg(long, value_name = "PORT", default_value_t = 35963)]
    pub port: u16,
    /// Wait N milliseconds before each answer
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,
    /// Make the card misbehave (tests only); may be given more than once
    #[arg(
        long,
        value_name = "SPEC",
        value_parser = parse_fault,
        action = clap::ArgAction::Append,
        long_help = "\
Make the card misbehave (tests only; INS and SW in hex); may be given more than once:
status-at:N:SW, status:INS:SW, truncate:INS:KEEP, oversize:INS:EXTRA,
get-response:INS:CHUNK, endless-get-response:INS, wrong-le:INS, corrupt-signature,
slow:INS:MS, remove-after-verify, cert-bogus:FILE, cert-length:FILE:LEN,
cert-long-form:FILE (FILE = auth, auth-ca, sign, sign-ca); the real card's unconfirmed
behaviours: short-form:SW, short-form:INS:SW, warm-reset-keeps-state, power-up-6f00,
empty-verify-9000; and no-other-apps, power-off-keeps-state."
    )]
    pub fault: Vec<jpki_vcard::Fault>,
}

fn parse_fault(spec: &str) -> Result<jpki_vcard::Fault, String> {
    jpki_vcard::Fault::parse(spec)
}
