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
