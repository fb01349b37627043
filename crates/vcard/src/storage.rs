//! A virtual card kept in a directory (`jpki virtual-card --state DIR`): its PKI files and its
//! PINs and retry counters (`state.txt`), written atomically on every change.

use super::*;

impl VirtualCard {
    /// Load the card kept in `dir`, or create a new one there (fresh test PKI, counters full).
    /// Retry counters (and PINs after CHANGE REFERENCE DATA) are persisted in `dir` on every
    /// change, so they survive restarts. Files in dir: `auth.crt`, `auth-ca.crt`, `sign.crt`,
    /// `sign-ca.crt` (DER), `auth.key`, `sign.key` (PKCS#1 or PKCS#8 DER), and [`STATE_FILE`].
    pub fn open(dir: &Path) -> io::Result<VirtualCard> {
        const FILES: [&str; 6] = [
            "auth.crt",
            "auth-ca.crt",
            "sign.crt",
            "sign-ca.crt",
            "auth.key",
            "sign.key",
        ];
        std::fs::create_dir_all(dir)?;
        let present = FILES.iter().filter(|f| dir.join(f).exists()).count();
        let pki = if present == 0 {
            let pki = pki::generate();
            let write_key = |name: &str, key: &RsaPrivateKey| -> io::Result<()> {
                let der = key.to_pkcs1_der().map_err(invalid)?;
                write_atomic(&dir.join(name), der.as_bytes())
            };
            write_key("auth.key", &pki.auth_key)?;
            write_key("sign.key", &pki.sign_key)?;
            write_atomic(&dir.join("auth.crt"), &pki.auth_cert)?;
            write_atomic(&dir.join("auth-ca.crt"), &pki.auth_ca_cert)?;
            write_atomic(&dir.join("sign.crt"), &pki.sign_cert)?;
            write_atomic(&dir.join("sign-ca.crt"), &pki.sign_ca_cert)?;
            pki
        } else if present < FILES.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: incomplete virtual card (need {})",
                    dir.display(),
                    FILES.join(", ")
                ),
            ));
        } else {
            let read_key = |name: &str| -> io::Result<RsaPrivateKey> {
                let der = std::fs::read(dir.join(name))?;
                RsaPrivateKey::from_pkcs1_der(&der)
                    .or_else(|_| RsaPrivateKey::from_pkcs8_der(&der))
                    .map_err(|e| invalid(format!("{name}: {e}")))
            };
            Pki {
                auth_key: read_key("auth.key")?,
                sign_key: read_key("sign.key")?,
                auth_cert: std::fs::read(dir.join("auth.crt"))?,
                auth_ca_cert: std::fs::read(dir.join("auth-ca.crt"))?,
                sign_cert: std::fs::read(dir.join("sign.crt"))?,
                sign_ca_cert: std::fs::read(dir.join("sign-ca.crt"))?,
            }
        };
        let mut card = VirtualCard::from_pki(pki, Some(dir.to_path_buf()));
        match std::fs::read_to_string(dir.join(STATE_FILE)) {
            Ok(text) => card.load_state(&text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => card.save_state()?,
            Err(e) => return Err(e),
        }
        Ok(card)
    }

    fn load_state(&mut self, text: &str) -> io::Result<()> {
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| invalid(format!("{STATE_FILE}: bad line {line:?}")))?;
            let tries = |max: u8| -> io::Result<u8> {
                v.parse::<u8>()
                    .ok()
                    .filter(|t| *t <= max)
                    .ok_or_else(|| invalid(format!("{STATE_FILE}: bad {k}")))
            };
            match k {
                "auth_pin" => self.auth.value = v.to_string(),
                "sign_pin" => self.sign.value = v.to_string(),
                "auth_tries" => self.auth.tries = tries(self.auth.max)?,
                "sign_tries" => self.sign.tries = tries(self.sign.max)?,
                _ => return Err(invalid(format!("{STATE_FILE}: unknown key {k}"))),
            }
        }
        Ok(())
    }

    pub(super) fn save_state(&self) -> io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let text = format!(
            "# jpki virtual card: PINs and retry counters\nauth_pin={}\nsign_pin={}\nauth_tries={}\nsign_tries={}\n",
            self.auth.value, self.sign.value, self.auth.tries, self.sign.tries
        );
        write_atomic(&dir.join(STATE_FILE), text.as_bytes())
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Write a file through a temporary name and a rename, so a crash never leaves half a file.
fn write_atomic(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}
