//! `p11bench`: the flows of the benchmark (`bench/run.sh`) that `pkcs11-tool` cannot do, for
//! any PKCS#11 module (this one or OpenSC's), through the `cryptoki` crate as an application
//! would; plus the reader checks the script needs. Output: `key=value` lines on stdout.
//!
//! ```text
//! p11bench init    --module SO [--log FILE]
//!     load (dlopen + C_GetInterface/C_GetFunctionList) and C_Initialize, timed; C_Finalize.
//! p11bench slots   --module SO --reader NAME
//!     the slot ids of the reader's tokens: `slot=<id> <label>` lines.
//! p11bench sign    --module SO --reader NAME --token LABEL --pin PIN --id HEX --count N
//!                  [--always-auth] [--log FILE] [--data FILE] [--out FILE]
//!     one session: C_Login, then N signatures (CKM_SHA256_RSA_PKCS) with the private key of
//!     CKA_ID HEX; with --always-auth each signature is C_SignInit, C_Login(CKU_CONTEXT_SPECIFIC),
//!     C_SignUpdate, C_SignFinal. Timings per phase; with --log, the APDUs of each phase from
//!     the virtual card's log. The signatures must all be equal (PKCS#1 v1.5 is deterministic):
//!     the first is written to --out for openssl to verify. N may be 0 (a login only).
//! p11bench card    --reader NAME
//!     `present=1` or `present=0` (pcscd's view, no card I/O).
//! p11bench wait    --reader NAME --present 0|1 [--timeout-ms MS]
//!     waits until pcscd shows the reader with or without a card; exit 1 on timeout.
//! p11bench others  --reader NAME
//!     the other readers that hold a card, one a line (no card I/O).
//! ```
//!
//! Build: `cargo build --release --example p11bench`.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: p11bench init|slots|sign|card|wait|others [options] (see the source)");
        return ExitCode::from(2);
    };
    let opts = match parse(rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("p11bench: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd.as_str() {
        "init" => init(&opts),
        "slots" => slots(&opts),
        "sign" => sign(&opts),
        "card" => opts
            .get("reader")
            .map(|r| println!("present={}", u8::from(card_present(r)))),
        "wait" => wait(&opts),
        "others" => opts.get("reader").and_then(|r| {
            for name in readers_with_card()? {
                if name != r {
                    println!("{name}");
                }
            }
            Ok(())
        }),
        other => Err(format!("unknown command {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("p11bench {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` options; flags (`--always-auth`) get the value "1".
struct Opts(HashMap<String, String>);

impl Opts {
    fn get(&self, name: &str) -> Res<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required"))
    }
    fn flag(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
    fn path(&self, name: &str) -> Option<PathBuf> {
        self.0.get(name).map(PathBuf::from)
    }
}

fn parse(args: &[String]) -> Res<Opts> {
    const FLAGS: [&str; 1] = ["always-auth"];
    let mut map = HashMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let name = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {a:?}"))?;
        let value = if FLAGS.contains(&name) {
            "1".to_string()
        } else {
            it.next()
                .ok_or_else(|| format!("--{name} needs a value"))?
                .clone()
        };
        map.insert(name.to_string(), value);
    }
    Ok(Opts(map))
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// APDUs in the virtual card's log so far (lines not starting with `#`); 0 without a log.
fn apdus(log: Option<&Path>) -> usize {
    log.map_or(0, |p| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count()
    })
}

fn ck<T>(what: &str, r: cryptoki::error::Result<T>) -> Res<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn load(module: &str) -> Res<(Pkcs11, Duration, Duration)> {
    let t0 = Instant::now();
    let p = ck("load the module", Pkcs11::new(module))?;
    let t1 = Instant::now();
    ck(
        "C_Initialize",
        p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)),
    )?;
    Ok((p, t1 - t0, t1.elapsed()))
}

fn init(o: &Opts) -> Res<()> {
    let log = o.path("log");
    let before = apdus(log.as_deref());
    let (p, load_t, init_t) = load(o.get("module")?)?;
    println!("load_ms={}", ms(load_t));
    println!("init_ms={}", ms(init_t));
    println!("init_apdus={}", apdus(log.as_deref()) - before);
    ck("C_Finalize", p.finalize())
}

/// The reader's slots that hold a token, with their token labels, in slot order.
fn reader_slots(p: &Pkcs11, reader: &str) -> Res<Vec<(Slot, String)>> {
    let mut out = vec![];
    for slot in ck("C_GetSlotList", p.get_slots_with_token())? {
        let info = ck("C_GetSlotInfo", p.get_slot_info(slot))?;
        if info.slot_description().trim_end().starts_with(reader) {
            let token = ck("C_GetTokenInfo", p.get_token_info(slot))?;
            out.push((slot, token.label().trim_end().to_string()));
        }
    }
    Ok(out)
}

fn slots(o: &Opts) -> Res<()> {
    let (p, _, _) = load(o.get("module")?)?;
    for (slot, label) in reader_slots(&p, o.get("reader")?)? {
        println!("slot={} {label}", slot.id());
    }
    ck("C_Finalize", p.finalize())
}

fn median(v: &mut [Duration]) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[v.len() / 2]
}

fn sign(o: &Opts) -> Res<()> {
    let t_start = Instant::now();
    let log = o.path("log");
    let log = log.as_deref();
    let count: usize = o
        .get("count")?
        .parse()
        .map_err(|_| "--count: a number".to_string())?;
    let id = hex(o.get("id")?)?;
    let pin = AuthPin::from(o.get("pin")?);
    let data = match o.path("data") {
        Some(p) => std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => b"p11bench: the message signed".to_vec(),
    };
    let always_auth = o.flag("always-auth");

    let a0 = apdus(log);
    let (p, load_t, init_t) = load(o.get("module")?)?;
    let label = o.get("token")?;
    let slot = reader_slots(&p, o.get("reader")?)?
        .into_iter()
        .find(|(_, l)| l == label)
        .map(|(s, _)| s)
        .ok_or_else(|| format!("no token {label:?} in the reader"))?;
    let session = ck("C_OpenSession", p.open_ro_session(slot))?;
    let a1 = apdus(log);
    let t = Instant::now();
    ck("C_Login", session.login(UserType::User, Some(&pin)))?;
    let login_t = t.elapsed();
    let key = ck(
        "C_FindObjects",
        session.find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id.clone()),
        ]),
    )?;
    let key = *key
        .first()
        .ok_or_else(|| format!("no private key with CKA_ID {id:02x?}"))?;
    let a2 = apdus(log);

    let mut times = Vec::with_capacity(count);
    let mut sig_apdus = Vec::with_capacity(count);
    let mut first: Option<Vec<u8>> = None;
    let mech = Mechanism::Sha256RsaPkcs;
    let t_sigs = Instant::now();
    for i in 0..count {
        let before = apdus(log);
        let t = Instant::now();
        let sig = if always_auth {
            ck("C_SignInit", session.sign_init(&mech, key))?;
            ck(
                "C_Login(CKU_CONTEXT_SPECIFIC)",
                session.login(UserType::ContextSpecific, Some(&pin)),
            )?;
            ck("C_SignUpdate", session.sign_update(&data))?;
            ck("C_SignFinal", session.sign_final())?
        } else {
            ck("C_Sign", session.sign(&mech, key, &data))?
        };
        times.push(t.elapsed());
        sig_apdus.push(apdus(log) - before);
        match &first {
            None => first = Some(sig),
            Some(f) if *f == sig => {}
            Some(_) => return Err(format!("signature {} differs from the first", i + 1)),
        }
    }
    let sigs_t = t_sigs.elapsed();
    drop(session);
    ck("C_Finalize", p.finalize())?;
    if let (Some(out), Some(sig)) = (o.path("out"), &first) {
        std::fs::write(&out, sig).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    println!("load_ms={}", ms(load_t));
    println!("init_ms={}", ms(init_t));
    println!("login_ms={}", ms(login_t));
    println!("signatures={count}");
    println!("signatures_ms={}", ms(sigs_t));
    if let Some(t) = times.first() {
        println!("first_sig_ms={}", ms(*t));
    }
    if count > 1 {
        println!(
            "further_sig_median_ms={}",
            ms(median(&mut times[1..].to_vec()))
        );
    }
    println!("total_ms={}", ms(t_start.elapsed()));
    if log.is_some() {
        println!("open_apdus={}", a1 - a0);
        println!("login_apdus={}", a2 - a1);
        if let Some(n) = sig_apdus.first() {
            println!("first_sig_apdus={n}");
        }
        if count > 1 {
            let further = &sig_apdus[1..];
            println!("further_sig_apdus_min={}", further.iter().min().unwrap());
            println!("further_sig_apdus_max={}", further.iter().max().unwrap());
        }
        println!("total_apdus={}", apdus(log) - a0);
    }
    Ok(())
}

fn hex(s: &str) -> Res<Vec<u8>> {
    if s.len() % 2 != 0 {
        return Err(format!("bad hex {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("bad hex {s:?}")))
        .collect()
}

// Reader state through pcsc-lite, no card I/O (as in tests/common).

fn readers_with_card() -> Res<Vec<String>> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| format!("pcscd: {e}"))?;
    let names = ctx
        .list_readers_owned()
        .map_err(|e| format!("list readers: {e}"))?;
    let mut out = vec![];
    for name in names {
        let mut states = [pcsc::ReaderState::new(name.clone(), pcsc::State::UNAWARE)];
        if ctx.get_status_change(Duration::ZERO, &mut states).is_ok()
            && states[0].event_state().contains(pcsc::State::PRESENT)
        {
            out.push(name.to_string_lossy().into_owned());
        }
    }
    Ok(out)
}

fn card_present(reader: &str) -> bool {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let Ok(name) = CString::new(reader) else {
        return false;
    };
    let mut states = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    ctx.get_status_change(Duration::ZERO, &mut states).is_ok()
        && states[0].event_state().contains(pcsc::State::PRESENT)
}

fn wait(o: &Opts) -> Res<()> {
    let reader = o.get("reader")?;
    let want = o.get("present")? == "1";
    let timeout = Duration::from_millis(
        o.0.get("timeout-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
    );
    let start = Instant::now();
    while card_present(reader) != want {
        if start.elapsed() >= timeout {
            return Err(format!(
                "reader {reader:?}: card {} after {timeout:?}",
                if want {
                    "still absent"
                } else {
                    "still present"
                }
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
