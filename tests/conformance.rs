//! `conformance/c_client.c`, compiled with the system C compiler against
//! `pkcs11-headers/pkcs11.h`, loads the built module as a C application does and checks the
//! C-level contract against the virtual card behind pcscd; its RSA-PSS signature is then
//! verified with openssl against the card's certificate.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn c_client_conformance() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let _g = common::lock();
    let card = common::VCard::start();
    let bin = card.state_dir.join("c_client");
    let cc = Command::new("cc")
        .args(["-std=c99", "-D_GNU_SOURCE", "-Wall", "-Werror", "-I"])
        .arg(root.join("pkcs11-headers"))
        .arg(root.join("conformance/c_client.c"))
        .arg("-o")
        .arg(&bin)
        .arg("-ldl")
        .output()
        .expect("run cc");
    assert!(
        cc.status.success(),
        "compiling c_client.c:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let sig = card.state_dir.join("c_client.sig");
    let out = Command::new(&bin)
        .arg(common::module_path())
        .arg("1234")
        .arg(&sig)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "c_client failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" 0 failed"), "{text}");

    let pem = card.state_dir.join("auth.pub");
    let k = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"])
        .arg(card.state_dir.join("auth.crt"))
        .output()
        .unwrap();
    std::fs::write(&pem, &k.stdout).unwrap();
    let msg = card.state_dir.join("msg");
    std::fs::write(&msg, b"conformance message").unwrap();
    let v = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-verify",
        ])
        .arg(&pem)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}
