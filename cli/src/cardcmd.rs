//! `jpki status`, `jpki cert export`, `jpki pin change`: the card through the project's card
//! layer (PC/SC, `BoundCard`, which never leaves the card unlocked).

use crate::cli::{CertExportArgs, CertName, PinChangeArgs, PinName, StatusArgs};
use crate::util::{exit, pem, read_secret, Fail, PinReader, PinSource};
use jpki_card::jpki::{self, normalize_pin, KeyPair, PinFormat, PinTries};
use jpki_card::pcsc::PcscSystem;
use jpki_card::BoundCard;
use jpki_card::CardSystem;
use jpki_card::Error;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use x509_cert::der::Decode;
use zeroize::Zeroizing;

const LOCKED_HINT: &str = "only a municipal office (市区町村の窓口) can unlock it";

fn key_name(key: KeyPair) -> &'static str {
    match key {
        KeyPair::Auth => "user authentication PIN",
        KeyPair::Sign => "digital signature password",
    }
}

/// The readers, or why there are none.
fn readers(sys: &PcscSystem) -> Result<Vec<String>, Fail> {
    match pcsc::Context::establish(pcsc::Scope::User) {
        Err(pcsc::Error::NoService) | Err(pcsc::Error::ServiceStopped) => {
            return Err(Fail::new(
                exit::NO_READER,
                "the PC/SC service (pcscd) is not running: start it with \
                 `sudo systemctl start pcscd.socket` (see docs/troubleshooting.md)",
            ))
        }
        Err(e) => {
            return Err(Fail::new(
                exit::NO_READER,
                format!("cannot talk to the PC/SC service: {e}"),
            ))
        }
        Ok(_) => {}
    }
    let names = sys.list_readers();
    if names.is_empty() {
        return Err(Fail::new(
            exit::NO_READER,
            "no smart-card reader found: plug in a reader (USB contact reader, or an NFC reader \
             for the contactless interface)",
        ));
    }
    Ok(names)
}

/// What one reader holds.
enum Slot {
    NoCard,
    NotJpki,
    Card(Box<BoundCard>),
    Error(String),
}

fn open(sys: &PcscSystem, reader: &str) -> Slot {
    if !sys.reader_status(reader).present {
        return Slot::NoCard;
    }
    match sys.connect(reader).and_then(BoundCard::bind) {
        Ok(c) => Slot::Card(Box::new(c)),
        Err(Error::NotJpki) => Slot::NotJpki,
        Err(Error::NoCard | Error::CardRemoved) => Slot::NoCard,
        Err(e) => Slot::Error(e.to_string()),
    }
}

/// The card to work on: the reader named `want`, else the first reader holding a My Number Card.
fn pick_card(sys: &PcscSystem, want: Option<&str>) -> Result<(String, BoundCard), Fail> {
    let names = readers(sys)?;
    if let Some(w) = want {
        if !names.iter().any(|n| n == w) {
            return Err(Fail::new(
                exit::NO_READER,
                format!("no reader named {w:?}; readers: {}", names.join(", ")),
            ));
        }
        return match open(sys, w) {
            Slot::Card(c) => Ok((w.to_string(), *c)),
            Slot::NoCard => Err(Fail::new(exit::NO_CARD, format!("no card in reader {w:?}"))),
            Slot::NotJpki => Err(Fail::new(
                exit::NOT_JPKI,
                format!("the card in reader {w:?} is not a My Number Card (no JPKI application)"),
            )),
            Slot::Error(e) => Err(Fail::new(exit::FAILURE, format!("reader {w:?}: {e}"))),
        };
    }
    let mut worst = Fail::new(
        exit::NO_CARD,
        "no card in any reader: insert your My Number Card",
    );
    for n in &names {
        match open(sys, n) {
            Slot::Card(c) => return Ok((n.clone(), *c)),
            Slot::NotJpki => {
                worst = Fail::new(
                    exit::NOT_JPKI,
                    format!("the card in reader {n:?} is not a My Number Card"),
                )
            }
            Slot::Error(e) if worst.code == exit::NO_CARD => {
                worst = Fail::new(exit::FAILURE, format!("reader {n:?}: {e}"))
            }
            _ => {}
        }
    }
    Err(worst)
}

fn card_fail(e: Error) -> Fail {
    match e {
        Error::NoCard | Error::CardRemoved => Fail::new(exit::NO_CARD, "the card was removed"),
        Error::NoService => Fail::new(exit::NO_READER, "the PC/SC service went away"),
        e => Fail::new(exit::FAILURE, format!("card error: {e}")),
    }
}

/// Reads the tries left (the empty VERIFY uses no try), as text ("3 of 5 tries left"); fails if
/// the PIN is locked.
fn tries_or_locked(card: &mut BoundCard, key: KeyPair) -> Result<String, Fail> {
    match card.refresh_tries(key).map_err(card_fail)? {
        PinTries::Left(n) if n > 0 => Ok(format!("{n} of {} tries left", key.max_tries())),
        // [uncertain] The card was found unlocked (the module locked it again) and did not
        // tell the count.
        PinTries::Unknown => Ok("tries left unknown".into()),
        _ => Err(Fail::new(
            exit::PIN_LOCKED,
            format!("the {} is locked: {LOCKED_HINT}", key_name(key)),
        )),
    }
}

/// The result of presenting a PIN, as a failure with the tries left.
fn pin_fail(card: &BoundCard, key: KeyPair, e: Error) -> Fail {
    match (&e, card.tries(key)) {
        (Error::Status(_), Some(PinTries::Blocked | PinTries::Left(0))) => Fail::new(
            exit::PIN_LOCKED,
            format!("wrong {}: it is now locked; {LOCKED_HINT}", key_name(key)),
        ),
        (Error::Status(sw), Some(PinTries::Left(n))) if sw & 0xFFF0 == 0x63C0 => Fail::new(
            exit::WRONG_PIN,
            format!(
                "wrong {}: {n} of {} tries left",
                key_name(key),
                key.max_tries()
            ),
        ),
        _ => card_fail(e),
    }
}

/// Checks a PIN's format (nothing is sent for a malformed one). A `new` PIN must also follow
/// the rules for setting one (a signature password mixes letters and digits).
fn checked(key: KeyPair, pin: &[u8], which: &str) -> Result<Zeroizing<Vec<u8>>, Fail> {
    checked_as(key, pin, which, normalize_pin)
}

fn checked_new(key: KeyPair, pin: &[u8], which: &str) -> Result<Zeroizing<Vec<u8>>, Fail> {
    checked_as(key, pin, which, jpki::normalize_new_pin)
}

fn checked_as(
    key: KeyPair,
    pin: &[u8],
    which: &str,
    rule: fn(KeyPair, &[u8]) -> Result<Vec<u8>, PinFormat>,
) -> Result<Zeroizing<Vec<u8>>, Fail> {
    rule(key, pin).map(Zeroizing::new).map_err(|f| {
        let rule = match key {
            KeyPair::Auth => "exactly 4 digits",
            KeyPair::Sign => "6 to 16 letters A-Z and digits, mixing both when it is set",
        };
        let why = match f {
            PinFormat::Length => "has the wrong length",
            PinFormat::Characters => "has a character the card does not accept",
            PinFormat::NotMixed => "must mix letters and digits",
        };
        Fail::new(
            exit::BAD_PIN,
            format!(
                "the {which} {why} (the {} is {rule}); nothing was sent to the card",
                key_name(key)
            ),
        )
    })
}

fn key_of(pin: PinName) -> KeyPair {
    match pin {
        PinName::Auth => KeyPair::Auth,
        PinName::Sign => KeyPair::Sign,
    }
}

/// Card type from the token-info EF `0006` (free to read).
fn token_type(card: &mut BoundCard) -> (String, &'static str) {
    let raw = card
        .run(|x| {
            jpki::select_ef(x, 0x0006)?;
            jpki::read_binary(x, 0, 32)
        })
        .unwrap_or_default();
    let id = String::from_utf8_lossy(&raw)
        .trim_end_matches([' ', '\0'])
        .to_string();
    let kind = match id.as_str() {
        "JPKIAPICCTOKEN2" => "My Number Card",
        "JPKIAPICCTOKEN" => "Juki card (住基カード)",
        "JPKIAPGPSETOKEN" => "Android smartphone",
        "JPKIAPIOSTOKEN" => "iPhone",
        _ => "unknown JPKI token",
    };
    (id, kind)
}

/// Subject (RFC 4514) and expiry (UTC) of a certificate.
fn describe(der: &[u8]) -> (String, String) {
    match x509_cert::Certificate::from_der(der) {
        Ok(c) => {
            let t = c.tbs_certificate.validity.not_after.to_date_time();
            (
                c.tbs_certificate.subject.to_string(),
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                    t.year(),
                    t.month(),
                    t.day(),
                    t.hour(),
                    t.minutes(),
                    t.seconds()
                ),
            )
        }
        Err(_) => ("(unparsable certificate)".into(), String::new()),
    }
}

/// A PIN's tries in `jpki status --json`.
#[derive(Serialize)]
struct TriesJson {
    /// `null` when the card did not tell (found unlocked).
    tries_left: Option<u8>,
    max_tries: u8,
    locked: bool,
}

/// A certificate in `jpki status --json`.
#[derive(Serialize)]
struct CertJson {
    subject: String,
    not_after: String,
}

/// One reader in `jpki status --json` (fields in this order; absent ones are left out).
#[derive(Serialize)]
struct ReaderJson {
    name: String,
    /// `jpki`, `none`, `not-jpki` or `error`.
    card: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    /// `Some(None)` (JSON `null`): the tries could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_pin: Option<Option<TriesJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_pin: Option<Option<TriesJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_cert: Option<CertJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_cert: Option<CertJson>,
}

impl ReaderJson {
    fn new(name: &str, card: &'static str) -> ReaderJson {
        ReaderJson {
            name: name.to_string(),
            card,
            error: None,
            token: None,
            token_type: None,
            auth_pin: None,
            sign_pin: None,
            auth_cert: None,
            sign_cert: None,
        }
    }
}

/// `jpki status --json`.
#[derive(Serialize)]
struct StatusJson {
    readers: Vec<ReaderJson>,
}

/// `jpki status --json` when there is no reader to list.
#[derive(Serialize)]
struct StatusErrorJson<'a> {
    error: &'a str,
    exit_code: u8,
    readers: [ReaderJson; 0],
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain structs serialize")
}

fn tries_text(t: Result<PinTries, Error>, key: KeyPair) -> (String, Option<TriesJson>) {
    let max_tries = key.max_tries();
    match t {
        Ok(PinTries::Left(n)) if n > 0 => (
            format!("{n} of {max_tries} tries left"),
            Some(TriesJson {
                tries_left: Some(n),
                max_tries,
                locked: false,
            }),
        ),
        // [uncertain] An empty VERIFY answered 9000: the card was unlocked (by another program;
        // the module locked it again) and did not tell the count.
        Ok(PinTries::Unknown) => (
            "tries left unknown (the card was found unlocked, and locked again)".into(),
            Some(TriesJson {
                tries_left: None,
                max_tries,
                locked: false,
            }),
        ),
        Ok(_) => (
            format!("LOCKED ({LOCKED_HINT})"),
            Some(TriesJson {
                tries_left: Some(0),
                max_tries,
                locked: true,
            }),
        ),
        Err(e) => (format!("unknown ({e})"), None),
    }
}

/// `jpki status [--reader NAME] [--json] [--password | --password-file FILE]`
pub fn status(args: StatusArgs) -> Result<u8, Fail> {
    let StatusArgs {
        reader,
        json: as_json,
        password,
        password_file: pw_file,
    } = args;
    let want_sign = password || pw_file.is_some();
    let sys = PcscSystem::new();
    let names = match readers(&sys) {
        Ok(n) => n,
        Err(f) if as_json => {
            let out = StatusErrorJson {
                error: &f.msg,
                exit_code: f.code,
                readers: [],
            };
            println!("{}", json(&out));
            return Ok(f.code);
        }
        Err(f) => return Err(f),
    };
    let names: Vec<String> = match &reader {
        Some(r) if !names.contains(r) => {
            return Err(Fail::new(
                exit::NO_READER,
                format!("no reader named {r:?}; readers: {}", names.join(", ")),
            ))
        }
        Some(r) => vec![r.clone()],
        None => names,
    };
    let mut human = String::new();
    let mut items = Vec::new();
    let mut code = exit::NO_CARD;
    let mut sign_done = false;
    for n in &names {
        human.push_str(&format!("Reader: {n}\n"));
        let obj = match open(&sys, n) {
            Slot::NoCard => {
                human.push_str("  No card\n");
                ReaderJson::new(n, "none")
            }
            Slot::NotJpki => {
                human.push_str("  Card: not a My Number Card\n");
                if code == exit::NO_CARD {
                    code = exit::NOT_JPKI;
                }
                ReaderJson::new(n, "not-jpki")
            }
            Slot::Error(e) => {
                human.push_str(&format!("  Error: {e}\n"));
                ReaderJson {
                    error: Some(e),
                    ..ReaderJson::new(n, "error")
                }
            }
            Slot::Card(mut card) => {
                code = 0;
                let mut obj = ReaderJson::new(n, "jpki");
                let (id, kind) = token_type(&mut card);
                human.push_str(&format!("  Card: {kind} ({id})\n"));
                obj.token = Some(id);
                obj.token_type = Some(kind);
                for key in [KeyPair::Auth, KeyPair::Sign] {
                    let (h, j) = tries_text(card.refresh_tries(key), key);
                    let (label, field) = match key {
                        KeyPair::Auth => ("User authentication PIN", &mut obj.auth_pin),
                        KeyPair::Sign => ("Digital signature password", &mut obj.sign_pin),
                    };
                    human.push_str(&format!("  {label}: {h}\n"));
                    *field = Some(j);
                }
                match card.cert(KeyPair::Auth, None) {
                    Ok(c) => {
                        let (subject, until) = describe(c.der());
                        human.push_str(&format!(
                            "  Authentication certificate: {subject}\n    valid until {until}\n"
                        ));
                        obj.auth_cert = Some(CertJson {
                            subject,
                            not_after: until,
                        });
                    }
                    Err(e) => human.push_str(&format!("  Authentication certificate: {e}\n")),
                }
                if want_sign && !sign_done {
                    // Personal data: only with the signature password, for the first card only.
                    sign_done = true;
                    let tries = tries_or_locked(&mut card, KeyPair::Sign)?;
                    eprintln!("Digital signature password: {tries}");
                    let pw = read_secret(pw_file.as_deref(), "Digital signature password: ")?;
                    let pw = checked(KeyPair::Sign, &pw, "password")?;
                    let c = card
                        .cert(KeyPair::Sign, Some(&pw))
                        .map_err(|e| pin_fail(&card, KeyPair::Sign, e))?;
                    let (subject, until) = describe(c.der());
                    human.push_str(&format!(
                        "  Signature certificate: {subject}\n    valid until {until}\n"
                    ));
                    obj.sign_cert = Some(CertJson {
                        subject,
                        not_after: until,
                    });
                }
                card.disconnect();
                obj
            }
        };
        items.push(obj);
    }
    if as_json {
        println!("{}", json(&StatusJson { readers: items }));
    } else {
        print!("{human}");
    }
    Ok(code)
}

/// `jpki cert export auth|auth-ca|sign|sign-ca [--der|--pem] [--out FILE] [--reader NAME]
/// [--password-file FILE]`
pub fn cert_export(args: CertExportArgs) -> Result<u8, Fail> {
    let CertExportArgs {
        which,
        der,
        pem: _,
        out,
        reader,
        password_file: pw_file,
    } = args;
    let sys = PcscSystem::new();
    let (_, mut card) = pick_card(&sys, reader.as_deref())?;
    let cert = match which {
        CertName::Auth => card.cert(KeyPair::Auth, None).map_err(card_fail),
        CertName::AuthCa => card.ca_cert(KeyPair::Auth).map_err(card_fail),
        CertName::SignCa => card.ca_cert(KeyPair::Sign).map_err(card_fail),
        CertName::Sign => (|| {
            let tries = tries_or_locked(&mut card, KeyPair::Sign)?;
            eprintln!("Digital signature password: {tries}");
            let pw = read_secret(pw_file.as_deref(), "Digital signature password: ")?;
            let pw = checked(KeyPair::Sign, &pw, "password")?;
            card.cert(KeyPair::Sign, Some(&pw))
                .map_err(|e| pin_fail(&card, KeyPair::Sign, e))
        })(),
    };
    let cert = match cert {
        Ok(c) => c,
        Err(f) => {
            card.disconnect();
            return Err(f);
        }
    };
    let bytes = if der {
        cert.der().to_vec()
    } else {
        pem(cert.der()).into_bytes()
    };
    drop(cert);
    card.disconnect();
    let res = match &out {
        Some(p) => write_private(p, &bytes, which == CertName::Sign)
            .map_err(|e| format!("{}: {e}", p.display())),
        None => std::io::stdout()
            .write_all(&bytes)
            .and_then(|()| std::io::stdout().flush())
            .map_err(|e| format!("standard output: {e}")),
    };
    res.map_err(|m| Fail::new(exit::FAILURE, m))?;
    Ok(0)
}

/// Writes `bytes` to `path`. A file with personal data (`private`: the signature certificate)
/// is readable by its owner only (0600), also when it existed before with wider permissions:
/// they are narrowed before anything is written.
fn write_private(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let file = opts.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        return write_all_to(file, bytes);
    }
    let _ = private;
    write_all_to(opts.open(path)?, bytes)
}

fn write_all_to(mut file: std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

/// `jpki pin change auth|sign [--reader NAME] [--pin-file FILE | --stdin]`
pub fn pin_change(args: PinChangeArgs) -> Result<u8, Fail> {
    let key = key_of(args.which);
    let reader = args.reader;
    // --pin-file and --stdin override each other: at most one is set.
    let src = match (args.pin_file, args.stdin) {
        (Some(f), _) => PinSource::File(f),
        (None, true) => PinSource::Stdin,
        (None, false) => PinSource::Prompt,
    };
    let sys = PcscSystem::new();
    let (rname, mut card) = pick_card(&sys, reader.as_deref())?;
    let res = (|| {
        let tries = tries_or_locked(&mut card, key)?;
        let what = match key {
            KeyPair::Auth => "PIN",
            KeyPair::Sign => "password",
        };
        eprintln!("Reader {rname}: {}: {tries}", key_name(key));
        let mut pins = PinReader::new(&src, "--pin-file FILE or --stdin")?;
        let old = pins.read(&format!("Current {what}: "))?;
        let old = checked(key, &old, &format!("current {what}"))?;
        let new = pins.read(&format!("New {what}: "))?;
        let new = checked_new(key, &new, &format!("new {what}"))?;
        let again = pins.read(&format!("New {what} again: "))?;
        let again = normalize_pin(key, &again).map(Zeroizing::new).ok();
        if again.as_deref() != Some(&new) {
            return Err(Fail::new(
                exit::BAD_PIN,
                format!("the two new {what}s differ; nothing was sent to the card"),
            ));
        }
        card.change_pin(key, &old, &new)
            .map_err(|e| pin_fail(&card, key, e))?;
        eprintln!("The {} was changed.", key_name(key));
        Ok(0)
    })();
    card.disconnect();
    res
}
