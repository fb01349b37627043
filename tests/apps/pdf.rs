//! Checks of a signed PDF shared by the tests that sign one (LibreOffice, Java, pdfsig): poppler's
//! `pdfsig` with NSS trusting only the card's signature CA, and the CMS signature checked with
//! OpenSSL, outside NSS and outside the module.

use super::run_ok;
use crate::common::VCard;
use std::path::Path;
use std::process::Command;

/// pdfsig's report on `pdf`, with NSS (a database made in `dir`) trusting only the CA `ca_der`.
pub fn pdfsig(dir: &Path, ca_der: &Path, pdf: &Path) -> String {
    let db = dir.join("pdfsig-db");
    std::fs::create_dir_all(&db).unwrap();
    let sql = format!("sql:{}", db.display());
    run_ok(
        Command::new("certutil").args(["-N", "--empty-password", "-d", &sql]),
        b"",
    );
    run_ok(
        Command::new("certutil")
            .args(["-A", "-d", &sql, "-n", "JPKI sign CA", "-t", "CT,C,C", "-i"])
            .arg(ca_der),
        b"",
    );
    run_ok(Command::new("pdfsig").args(["-nssdir", &sql]).arg(pdf), b"")
}

/// Checks that `pdf` carries a valid SHA-256 signature over the whole document by `card`'s
/// signature key, whose certificate has the common name `cn`: pdfsig trusting only the card's
/// signature CA reports each line of the shared list and of `extra`, and OpenSSL verifies the
/// CMS signature ([`openssl_verify_pdf`]). Work files go to `dir`.
pub fn check_signed_by_card(dir: &Path, card: &VCard, pdf: &Path, cn: &str, extra: &[String]) {
    let ca = card.state_dir.join("sign-ca.crt");
    let report = pdfsig(dir, &ca, pdf);
    let shared = [
        "Signature Validation: Signature is Valid.".to_string(),
        "Certificate Validation: Certificate is Trusted.".to_string(),
        format!("Signer Certificate Common Name: {cn}"),
        "Signing Hash Algorithm: SHA-256".to_string(),
        "Total document signed".to_string(),
    ];
    for want in shared.iter().chain(extra) {
        assert!(
            report.contains(want.as_str()),
            "pdfsig: no {want:?}:\n{report}"
        );
    }
    openssl_verify_pdf(dir, pdf, &card.state_dir.join("sign.crt"), &ca);
}

/// Checks the PDF's CMS signature with OpenSSL (not NSS): the signed byte ranges, the chain to
/// the CA `ca_der`, and that the signer is the certificate `cert_der`. Work files go to `dir`.
pub fn openssl_verify_pdf(dir: &Path, pdf: &Path, cert_der: &Path, ca_der: &Path) {
    let bytes = std::fs::read(pdf).unwrap();
    let s = String::from_utf8_lossy(&bytes);
    let at = s.find("/ByteRange").expect("the PDF has a /ByteRange");
    let rest = &s[at..];
    let open = rest.find('[').unwrap();
    let close = rest.find(']').unwrap();
    let r: Vec<usize> = rest[open + 1..close]
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(r.len(), 4, "ByteRange {r:?}");
    assert_eq!(r[0], 0, "the signature covers the start of the file");
    assert_eq!(r[2] + r[3], bytes.len(), "and its end");
    let mut signed = bytes[r[0]..r[0] + r[1]].to_vec();
    signed.extend_from_slice(&bytes[r[2]..r[2] + r[3]]);
    let hex = String::from_utf8_lossy(&bytes[r[0] + r[1]..r[2]]);
    let hex = hex.trim().trim_start_matches('<').trim_end_matches('>');
    let mut der: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    // /Contents is zero-padded after the CMS SEQUENCE; NSS writes it with an indefinite
    // length (BER, ends with an end-of-contents), which OpenSSL reads up to its end.
    assert_eq!(der[0], 0x30, "/Contents is a CMS SEQUENCE");
    match der[1] {
        0x82 => der.truncate(4 + ((der[2] as usize) << 8 | der[3] as usize)),
        0x83 => {
            der.truncate(5 + ((der[2] as usize) << 16 | (der[3] as usize) << 8 | der[4] as usize))
        }
        0x80 => {}
        l => panic!("unexpected CMS length form {l:#x}"),
    }
    let (sig, content) = (dir.join("sig.p7s"), dir.join("signed.bin"));
    std::fs::write(&sig, &der).unwrap();
    std::fs::write(&content, &signed).unwrap();
    let ca_pem = dir.join("sign-ca.pem");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(ca_der)
            .arg("-out")
            .arg(&ca_pem),
        b"",
    );
    let signer = dir.join("signer.pem");
    let out = run_ok(
        Command::new("openssl")
            .args([
                "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
            ])
            .arg("-in")
            .arg(&sig)
            .arg("-content")
            .arg(&content)
            .arg("-CAfile")
            .arg(&ca_pem)
            .arg("-signer")
            .arg(&signer)
            .args(["-out", "/dev/null"]),
        b"",
    );
    assert!(out.contains("Verification successful"), "{out}");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&signer)
            .arg("-out")
            .arg(dir.join("signer.der")),
        b"",
    );
    assert_eq!(
        std::fs::read(dir.join("signer.der")).unwrap(),
        std::fs::read(cert_der).unwrap(),
        "the PDF is signed by the card's signature certificate"
    );
}

/// Writes a one-page PDF (a line of text, Helvetica) with a correct cross-reference table: an
/// unsigned document to sign.
pub fn write_minimal_pdf(path: &Path, text: &str) {
    let content = format!("BT /F1 18 Tf 72 720 Td ({text}) Tj ET\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for o in offsets {
        table.push_str(&format!("{o:010} 00000 n \n"));
    }
    table.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    pdf.extend_from_slice(table.as_bytes());
    std::fs::write(path, pdf).unwrap();
}
