//! Firefox ESR (Debian package `firefox-esr`, a real browser, headless) with the module, against
//! the virtual card behind pcscd.
//!
//! Set up the way an administrator would, in a fresh profile: the module added with `modutil`,
//! the server's test CA trusted with `certutil`, and `security.default_personal_cert = "Select
//! Automatically"` in `user.js`. Firefox is then driven through Marionette (its own remote
//! protocol, enabled with `--marionette`): the test logs in to the user-authentication token with
//! the PIN, as the user would in Firefox's PIN dialog (headless Firefox cannot show one), loads
//! the page of a local `openssl s_server -www -Verify 1` over TLS 1.3 and over TLS 1.2, and reads
//! the page Firefox got, which the server writes about the connection: the protocol, the
//! peer signature type (RSA-PSS) and the client certificate.
//!
//! Any password dialog Firefox opens (for the signature token, say) makes the test fail: a
//! session whose prompts are dismissed and reported, and the card's APDU log shows that the
//! signature password was never presented and the signature key never used.
//!
//! Nothing is written outside temporary directories. Panics (never skips) when Firefox is
//! missing: `scripts/install-deps.sh` installs it.

mod common;
mod nss_common;

use common::VCard;
use nss_common::TlsServer;
use nss_common::{check_server_page, check_signature_key_untouched, nss_db, Pki, TempDir, Tls};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FIREFOX: &str = "firefox-esr";

/// Prefs of the test profile: automatic certificate choice (what an administrator sets for a
/// smart-card deployment), nothing that connects anywhere on its own, Marionette on a free port.
const USER_JS: &str = r#"
user_pref("security.default_personal_cert", "Select Automatically");
user_pref("security.OCSP.enabled", 0);
user_pref("network.http.speculative-parallel-limit", 0);
user_pref("network.predictor.enabled", false);
user_pref("browser.urlbar.speculativeConnect.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.disabledForTesting", true);
user_pref("marionette.port", 0);
"#;

/// Run in Firefox's chrome context, through Firefox's own NSS (js-ctypes; Firefox 153 has no
/// scriptable login any more): if `arguments[1]` is a PIN, logs in to the token in the PKCS#11
/// slot named `arguments[0]`; then returns the token's state, `present=1 loggedIn=1`. The slot
/// is found by its name, which holds the reader's, so another card in another reader is never
/// the one used.
const SLOT_JS: &str = r#"
const [slotName, pin] = arguments;
const { ctypes } = ChromeUtils.importESModule("resource://gre/modules/ctypes.sys.mjs");
const dir = Services.dirsvc.get("GreD", Ci.nsIFile).path;
const lib = ctypes.open(dir + "/" + ctypes.libraryName("nss3"));
try {
  const vp = ctypes.voidptr_t;
  const abi = ctypes.default_abi;
  const Elem = new ctypes.StructType("PK11SlotListElement",
    [{ next: vp }, { prev: vp }, { slot: vp }, { refCount: ctypes.int }]);
  const findSlots = lib.declare("PK11_FindSlotsByNames", abi, vp,
    ctypes.char.ptr, ctypes.char.ptr, ctypes.char.ptr, ctypes.int);
  const first = lib.declare("PK11_GetFirstSafe", abi, Elem.ptr, vp);
  const freeList = lib.declare("PK11_FreeSlotList", abi, ctypes.void_t, vp);
  const freeElem = lib.declare("PK11_FreeSlotListElement", abi, ctypes.int, vp, Elem.ptr);
  const check = lib.declare("PK11_CheckUserPassword", abi, ctypes.int, vp, ctypes.char.ptr);
  const loggedIn = lib.declare("PK11_IsLoggedIn", abi, ctypes.int, vp, vp);
  const present = lib.declare("PK11_IsPresent", abi, ctypes.int, vp);
  const list = findSlots(null, slotName, null, 1);
  if (list.isNull()) return "no slot named " + slotName;
  const e = first(list);
  if (e.isNull()) { freeList(list); return "no slot named " + slotName; }
  const slot = e.contents.slot;
  let result = "";
  if (pin) {
    const rv = check(slot, pin);
    if (rv != 0) result = "login failed: " + rv + " ";
  }
  result += "present=" + present(slot) + " loggedIn=" + loggedIn(slot, vp(0));
  freeElem(list, e);
  freeList(list);
  return result;
} finally {
  lib.close();
}
"#;

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The JSON string starting at `s[0] == '"'`, unescaped.
fn json_unstr(s: &str) -> Option<String> {
    let mut chars = s.strip_prefix('"')?.chars();
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let mut code = u32::from_str_radix(&hex, 16).ok()?;
                    if (0xD800..0xDC00).contains(&code) {
                        let rest: String = chars.by_ref().take(6).collect();
                        let low = u32::from_str_radix(rest.get(2..)?, 16).ok()?;
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    }
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
}

/// A minimal Marionette client (the protocol geckodriver speaks to Firefox): messages are
/// `LEN:JSON`, a command is `[0, id, name, params]`, its answer `[1, id, error, result]`.
struct Marionette {
    stream: TcpStream,
    next_id: u32,
}

impl Marionette {
    fn connect(port: u16) -> Marionette {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to Marionette");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut m = Marionette { stream, next_id: 0 };
        let hello = m.read_message();
        assert!(hello.contains("marionetteProtocol"), "{hello}");
        m
    }

    fn read_message(&mut self) -> String {
        let mut len = Vec::new();
        let mut b = [0u8];
        loop {
            self.stream
                .read_exact(&mut b)
                .expect("read from Marionette");
            if b[0] == b':' {
                break;
            }
            len.push(b[0]);
        }
        let len: usize = String::from_utf8(len).unwrap().parse().unwrap();
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).unwrap();
        String::from_utf8(body).unwrap()
    }

    /// Sends a command; returns the raw answer, or Err(error JSON).
    fn command(&mut self, name: &str, params: &str) -> Result<String, String> {
        self.next_id += 1;
        let msg = format!("[0,{},{},{params}]", self.next_id, json_str(name));
        write!(self.stream, "{}:{msg}", msg.len()).unwrap();
        let answer = self.read_message();
        let prefix = format!("[1,{},", self.next_id);
        let rest = answer
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{name}: unexpected answer {answer}"));
        if rest.starts_with("null,") {
            Ok(answer)
        } else {
            Err(answer)
        }
    }

    fn ok(&mut self, name: &str, params: &str) -> String {
        self.command(name, params)
            .unwrap_or_else(|e| panic!("Marionette {name} failed: {e}"))
    }

    /// Runs a script in the current context; returns its string result.
    fn script(&mut self, script: &str, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|a| json_str(a)).collect();
        let answer = self.ok(
            "WebDriver:ExecuteScript",
            &format!(
                "{{\"script\":{},\"args\":[{}]}}",
                json_str(script),
                args.join(",")
            ),
        );
        let at = answer
            .find("{\"value\":")
            .unwrap_or_else(|| panic!("no value: {answer}"));
        json_unstr(&answer[at + 9..]).unwrap_or_else(|| panic!("not a string: {answer}"))
    }
}

/// Headless Firefox on a profile, with Marionette. Quits (or is killed) on drop.
struct Firefox {
    child: Child,
    log: std::path::PathBuf,
}

impl Firefox {
    fn start(profile: &Path, home: &Path) -> (Firefox, Marionette) {
        let log = home.join("firefox.log");
        let child = Command::new(FIREFOX)
            .args(["--headless", "--no-remote", "--marionette"])
            .arg("--remote-allow-system-access")
            .arg("-profile")
            .arg(profile)
            .env("HOME", home)
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {FIREFOX} ({e}): install the Debian package firefox-esr")
            });
        let mut ff = Firefox { child, log };
        // Marionette writes its port here once it listens.
        let port_file = profile.join("MarionetteActivePort");
        let start = Instant::now();
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                break port;
            }
            if let Ok(Some(status)) = ff.child.try_wait() {
                panic!("{FIREFOX} exited ({status}):\n{}", ff.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{FIREFOX}: Marionette did not start:\n{}",
                ff.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut m = Marionette::connect(port);
        // Prompts are dismissed and reported as errors: a password dialog fails the test.
        m.ok(
            "WebDriver:NewSession",
            r#"{"capabilities":{"unhandledPromptBehavior":"dismiss and notify",
                "timeouts":{"pageLoad":60000,"script":60000}}}"#,
        );
        (ff, m)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn quit(mut self, m: &mut Marionette) {
        let _ = m.command("Marionette:Quit", "{}");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Loads `url` in the tab and returns the page text; fails on any error or dialog.
fn load(m: &mut Marionette, url: &str, server: &TlsServer) -> String {
    if let Err(e) = m.command(
        "WebDriver:Navigate",
        &format!("{{\"url\":{}}}", json_str(url)),
    ) {
        panic!(
            "Firefox could not load {url}: {e}\ns_server:\n{}",
            server.log_text()
        );
    }
    match m.command(
        "WebDriver:ExecuteScript",
        r#"{"script":"return document.body ? document.body.innerText : ''","args":[]}"#,
    ) {
        Ok(answer) => {
            let at = answer.find("{\"value\":").expect("value");
            json_unstr(&answer[at + 9..]).expect("page text")
        }
        Err(e) => panic!(
            "Firefox, reading {url}: {e}\ns_server:\n{}",
            server.log_text()
        ),
    }
}

#[test]
fn firefox_authenticates_with_the_card_over_tls13_and_tls12() {
    let _g = common::lock();
    let card = VCard::start();
    let pki = Pki::new(&card);
    let home = TempDir::new("firefox");
    let profile = home.path().join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    nss_db(&profile, &pki);
    std::fs::write(profile.join("user.js"), USER_JS).unwrap();
    let server13 = TlsServer::start(&pki, Tls::V13);
    let server12 = TlsServer::start(&pki, Tls::V12);
    card.clear_log();

    let (ff, mut m) = Firefox::start(&profile, home.path());
    // The module and the trusted test CA are in the profile, as modutil/certutil put them.
    m.ok("Marionette:SetContext", r#"{"value":"chrome"}"#);
    let auth_slot = format!("{} (Authentication)", card.reader);
    let sign_slot = format!("{} (Signature)", card.reader);
    let state = m.script(SLOT_JS, &[&auth_slot, "1234"]);
    assert_eq!(state, "present=1 loggedIn=1", "login, slot {auth_slot:?}");
    // The signature token is loaded too, and stays logged out.
    let state = m.script(SLOT_JS, &[&sign_slot, ""]);
    assert_eq!(state, "present=1 loggedIn=0", "slot {sign_slot:?}");
    m.ok("Marionette:SetContext", r#"{"value":"content"}"#);

    for (server, v) in [(&server13, Tls::V13), (&server12, Tls::V12)] {
        let page = load(&mut m, &server.url(), server);
        check_server_page(&page, v, &card, &format!("Firefox {}", v.name()));
    }
    // No dialog was left open (a pending one fails any command with "unexpected alert open"),
    // and the signature token is still logged out.
    m.ok("Marionette:SetContext", r#"{"value":"chrome"}"#);
    let state = m.script(SLOT_JS, &[&sign_slot, ""]);
    assert_eq!(
        state, "present=1 loggedIn=0",
        "slot {sign_slot:?} after the pages"
    );
    ff.quit(&mut m);

    check_signature_key_untouched(&card, "Firefox");
}
