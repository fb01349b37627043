//! Puts a [`VirtualCard`] behind pcscd through the vsmartcard `vpcd` driver.
//!
//! vpcd listens on TCP (port 35963 = reader `Virtual PCD 00 00`, 35964 = `Virtual PCD 00 01`);
//! the card connects as a client. Messages both ways are a 2-byte big-endian length and the
//! payload. A 1-byte payload from vpcd is a control code (`00` power off, `01` power on,
//! `02` reset, `04` get ATR, answered with the ATR); a longer one is a command APDU, answered
//! with the response APDU.

use super::VirtualCard;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where the runner connects and what it records.
#[derive(Clone, Debug)]
pub struct Options {
    /// vpcd host, normally `127.0.0.1`.
    pub host: String,
    /// vpcd port, normally 35963.
    pub port: u16,
    /// Append the card's log lines here (flushed per line).
    pub log: Option<PathBuf>,
}

/// Connects to vpcd and serves the card forever, reconnecting every 200 ms when the connection
/// is refused or drops (pcscd restarted). Prints one line to stdout per connection.
pub fn run(mut card: VirtualCard, opts: &Options) -> io::Result<()> {
    let mut log = match &opts.log {
        Some(p) => Some(File::options().create(true).append(true).open(p)?),
        None => None,
    };
    loop {
        let stream = match TcpStream::connect((opts.host.as_str(), opts.port)) {
            Ok(s) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        stream.set_nodelay(true)?;
        println!(
            "virtual card connected to vpcd at {}:{}",
            opts.host, opts.port
        );
        io::stdout().flush()?;
        let result = serve(&mut card, stream, &mut log);
        // The reader lost the card: it is unpowered until vpcd powers it again.
        card.power_off();
        flush_log(&mut card, &mut log)?;
        if let Err(e) = result {
            eprintln!("vpcd connection ended: {e}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn serve(card: &mut VirtualCard, mut stream: TcpStream, log: &mut Option<File>) -> io::Result<()> {
    loop {
        // vpcd writes the length and the APDU separately; without quick ACKs the kernel delays
        // the ACK of the first write by ~40 ms, and every APDU pays for it. Linux clears the
        // quick-ACK mode after a while, so set it before every read.
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(&stream).set_tcp_quickack(true);
        let mut len = [0u8; 2];
        stream.read_exact(&mut len)?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut msg)?;
        let answer = match msg.as_slice() {
            [0x00] => {
                card.power_off();
                None
            }
            [0x01] => {
                card.power_on();
                None
            }
            [0x02] => {
                card.reset();
                None
            }
            [0x04] => Some(card.atr()),
            [_] | [] => None,
            apdu => {
                let resp = card.transmit(apdu);
                if card.take_pulled() {
                    // Fault injection: the card leaves the reader without answering.
                    flush_log(card, log)?;
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "card pulled out (fault injection)",
                    ));
                }
                std::thread::sleep(card.latency());
                Some(resp)
            }
        };
        flush_log(card, log)?;
        if let Some(resp) = answer {
            let mut out = Vec::with_capacity(resp.len() + 2);
            out.extend_from_slice(&(resp.len() as u16).to_be_bytes());
            out.extend_from_slice(&resp);
            stream.write_all(&out)?;
        }
    }
}

fn flush_log(card: &mut VirtualCard, log: &mut Option<File>) -> io::Result<()> {
    if let Some(f) = log {
        for line in card.log() {
            f.write_all(format!("{line}\n").as_bytes())?;
        }
        f.flush()?;
    }
    card.clear_log();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn send(s: &mut TcpStream, payload: &[u8]) {
        let mut msg = (payload.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(payload);
        s.write_all(&msg).unwrap();
    }

    fn recv(s: &mut TcpStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut msg).unwrap();
        msg
    }

    /// A fake vpcd: control codes, APDUs, the log file, and reconnection after a drop.
    #[test]
    fn speaks_the_vpcd_protocol_and_reconnects() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = std::env::temp_dir().join(format!("jpki-vpcd-test-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let opts = Options {
            host: "127.0.0.1".into(),
            port,
            log: Some(log.clone()),
        };
        std::thread::spawn(move || run(VirtualCard::in_memory(), &opts));

        let (mut s, _) = listener.accept().unwrap();
        send(&mut s, &[0x04]);
        assert_eq!(recv(&mut s), VirtualCard::in_memory().atr());
        send(&mut s, &[0x01]);
        send(
            &mut s,
            &[
                0x00, 0xA4, 0x04, 0x0C, 0x07, 0xA0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00,
            ],
        );
        assert_eq!(recv(&mut s), [0x90, 0x00]);
        send(&mut s, &[0x02]);
        send(&mut s, &[0x00, 0x84, 0x00, 0x00, 0x04]);
        assert_eq!(recv(&mut s).len(), 6);
        drop(s);

        // The card comes back on a new connection (pcscd restarted), unpowered until told.
        let (mut s, _) = listener.accept().unwrap();
        send(&mut s, &[0x01]);
        send(&mut s, &[0x00, 0xCA, 0x00, 0x00, 0x00]);
        assert_eq!(recv(&mut s), [0x6D, 0x00]);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# power on");
        assert_eq!(lines[1], "00A4040C07A0000001510000 9000");
        assert_eq!(lines[2], "# reset");
        assert!(lines[3].starts_with("0084000004 ") && lines[3].ends_with("9000"));
        assert_eq!(lines[4..], ["# power off", "# power on", "00CA000000 6D00"]);
        let _ = std::fs::remove_file(&log);
    }
}
