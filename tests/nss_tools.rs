//! The NSS tools (Debian package `libnss3-tools`) with the module, against the virtual card behind
//! pcscd: `modutil` adds the module to an NSS database, `certutil` lists the card's certificates
//! through it, and `tstclnt` authenticates to a local `openssl s_server -Verify 1` with the
//! user-authentication key over TLS 1.3 (RSA-PSS, the only signature TLS 1.3 allows) and TLS 1.2.
//! Panics (never skips) when a tool is missing: `scripts/install-deps.sh` installs them.

mod common;
mod nss_common;

use common::VCard;
use nss_common::{
    auth_token_uri, check_server_page, check_signature_key_untouched, nss_db, run, Pki, TempDir,
    Tls, TlsServer,
};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn db_arg(dir: &Path) -> String {
    format!("sql:{}", dir.display())
}

#[test]
fn certutil_lists_the_certificates_through_the_module() {
    let _g = common::lock();
    let card = VCard::start();
    let pki = Pki::new(&card);
    let db = TempDir::new("nssdb");
    nss_db(db.path(), &pki);

    // `modutil -list jpki` prints every slot but exits 1 with "Unable to get information about
    // token" when a reader is empty (here the second vpcd reader): the module lists empty
    // readers on purpose (NSS disables a slot that is missing at load time for good).
    let out = nss_common::output(
        Command::new("modutil")
            .args(["-list", "jpki", "-dbdir"])
            .arg(db_arg(db.path())),
    );
    let list = nss_common::text(&out);
    for (slot, token) in [
        ("Authentication", "JPKI User Authentication"),
        ("Signature", "JPKI Digital Signature"),
    ] {
        let slot = format!("Slot: {} ({slot})", card.reader);
        let at = list
            .find(&slot)
            .unwrap_or_else(|| panic!("modutil lists {slot:?}:\n{list}"));
        let info = list[at..].split("\n\n").next().unwrap();
        assert!(
            info.contains(&format!("Token Name: {token}"))
                && info.contains("Login Type: Login required"),
            "{info}"
        );
    }

    // Without a PIN: the user-authentication certificate (with its key, `u`) and both CA
    // certificates; the signature certificate is private on this card, so it is not listed.
    let certs = run(Command::new("certutil")
        .args(["-L", "-h", "all", "-d"])
        .arg(db_arg(db.path())));
    // Lines are "<nickname, padded> <trust>".
    let listed = |nick: &str| {
        certs
            .lines()
            .find(|l| l.split("  ").next().unwrap().trim() == nick)
            .map(|l| l[nick.len()..].trim().to_string())
    };
    let has = |nick: &str, trust: &str| listed(nick).as_deref() == Some(trust);
    assert!(
        has("JPKI User Authentication:User Authentication", "u,u,u"),
        "the authentication certificate, with its private key on the token:\n{certs}"
    );
    assert!(
        has("JPKI User Authentication:User Authentication CA", ",,"),
        "{certs}"
    );
    assert!(
        has("JPKI Digital Signature:Digital Signature CA", ",,"),
        "{certs}"
    );
    assert!(
        listed("JPKI Digital Signature:Digital Signature").is_none(),
        "the signature certificate is listed without the password:\n{certs}"
    );

    // The certificate itself, through the module, is the card's.
    let uri = auth_token_uri(db.path(), &card);
    let der = Command::new("certutil")
        .args(["-L", "-r", "-d"])
        .arg(db_arg(db.path()))
        .arg("-n")
        .arg(format!("{uri};object=User%20Authentication;type=cert"))
        .stdin(Stdio::null())
        .output()
        .expect("certutil");
    assert!(der.status.success(), "{}", nss_common::text(&der));
    assert_eq!(
        der.stdout,
        card.cert("auth"),
        "certutil -L -r gives the card's certificate"
    );

    // Listing the keys needs the PIN: certutil logs in with it (from a file, -f).
    let pin = db.path().join("pin.txt");
    std::fs::write(&pin, "1234\n").unwrap();
    let keys = run(Command::new("certutil")
        .args(["-K", "-h", "JPKI User Authentication", "-d"])
        .arg(db_arg(db.path()))
        .arg("-f")
        .arg(&pin));
    assert!(
        keys.contains("rsa") && keys.contains("User Authentication"),
        "{keys}"
    );
    assert_eq!(card.tries_left(), (3, 5), "no try used");
}

/// Runs `tstclnt` against the server: it sends one HTTP request and prints the page, which
/// `s_server -www` writes about the connection. Returns the page.
fn tstclnt(db: &Path, nickname: &str, pin_file: &Path, server: &TlsServer, v: Tls) -> String {
    let dir = pin_file.parent().unwrap();
    let request = dir.join("request.txt");
    std::fs::write(&request, "GET / HTTP/1.0\r\n\r\n").unwrap();
    let out_path = dir.join(format!("tstclnt-{}.out", v.name()));
    let version = match v {
        Tls::V12 => "tls1.2:tls1.2",
        Tls::V13 => "tls1.3:tls1.3",
    };
    let mut child = Command::new("tstclnt")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string(), "-d"])
        .arg(db_arg(db))
        .arg("-n")
        .arg(nickname)
        .arg("-W")
        .arg(pin_file)
        .args(["-V", version])
        .stdin(std::fs::File::open(&request).unwrap())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tstclnt (Debian package libnss3-tools)");
    // tstclnt does not always exit when s_server closes: stop it once the page is complete.
    let start = Instant::now();
    let page = loop {
        let page = std::fs::read_to_string(&out_path).unwrap_or_default();
        if page.contains("</HTML>") {
            break page;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap_or_default();
            panic!(
                "tstclnt {version} exited ({status}) without the page:\n{page}\n{err}\n\
                 s_server:\n{}",
                server.log_text()
            );
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("tstclnt {version}: no page after 60 s:\n{page}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    page
}

#[test]
fn tstclnt_authenticates_over_tls13_and_tls12() {
    let _g = common::lock();
    let card = VCard::start();
    let pki = Pki::new(&card);
    let db = TempDir::new("nssdb");
    nss_db(db.path(), &pki);
    // The certificate by its pkcs11: URI (the token of this reader), the PIN from a file.
    let nickname = format!(
        "{};object=User%20Authentication;type=cert",
        auth_token_uri(db.path(), &card)
    );
    let pin = db.path().join("pin.txt");
    std::fs::write(&pin, "1234\n").unwrap();
    card.clear_log();

    for v in [Tls::V13, Tls::V12] {
        let server = TlsServer::start(&pki, v);
        let page = tstclnt(db.path(), &nickname, &pin, &server, v);
        check_server_page(&page, v, &card, &format!("tstclnt {}", v.name()));
    }
    check_signature_key_untouched(&card, "tstclnt");
}

/// The same with the plain nickname `token:label`, as a user would type it.
#[test]
fn tstclnt_takes_the_nickname() {
    let _g = common::lock();
    let card = VCard::start();
    let pki = Pki::new(&card);
    let db = TempDir::new("nssdb");
    nss_db(db.path(), &pki);
    let pin = db.path().join("pin.txt");
    std::fs::write(&pin, "1234\n").unwrap();
    let server = TlsServer::start(&pki, Tls::V13);
    let page = tstclnt(
        db.path(),
        "JPKI User Authentication:User Authentication",
        &pin,
        &server,
        Tls::V13,
    );
    check_server_page(&page, Tls::V13, &card, "tstclnt by nickname");
    assert_eq!(card.tries_left(), (3, 5));
}

/// The APDU-log check of the tests above tells the two keys apart (logs as the virtual card
/// writes them; PINs are masked there).
#[test]
fn the_apdu_log_check_sees_the_signature_key() {
    let log = |lines: &[&str]| -> Vec<String> { lines.iter().map(|l| l.to_string()).collect() };
    let select_ap = "00A4040C0AD392F000260100000001 9000";
    // Reading the signature password's tries (VERIFY without data) and signing with the
    // authentication key: fine.
    let ok = log(&[
        "# power on",
        select_ap,
        "00A4020C02001B 9000",
        "00200080 63C5",
        "00A4020C020018 9000",
        "0020008004******** 9000",
        "00A4020C020017 9000",
        "802A00803330 9000",
    ]);
    assert_eq!(nss_common::signature_key_untouched(&ok), Ok(1));
    for bad in [
        &["00A4020C02001B 9000", "0020008009********* 9000"][..],
        &["0020009B09********* 9000"],
        &["00A4020C02001A 9000"],
        &["802A009A3330 9000"],
    ] {
        let mut l = vec![select_ap];
        l.extend_from_slice(bad);
        assert!(
            nss_common::signature_key_untouched(&log(&l)).is_err(),
            "{bad:?}"
        );
    }
}
