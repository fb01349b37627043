//! APDU building and response parsing (ISO 7816-4 short APDUs), with `61xx` (GET RESPONSE) and
//! `6Cxx` (resend with the right Le) handled for robustness, although the My Number Card is not
//! known to send them.
//!
//! Every command and response buffer here is wiped when dropped (`Zeroizing`): commands may
//! carry a PIN (VERIFY, CHANGE REFERENCE DATA), responses a piece of the signature
//! certificate, which holds personal data.

use crate::error::Error;
use crate::secret::extend_wiped;
use crate::Transaction;
use zeroize::Zeroizing;

/// A parsed response APDU. Its data is wiped when dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Zeroizing<Vec<u8>>,
    pub sw: u16,
}

impl Response {
    /// Splits a raw response into data and status word.
    pub fn parse(raw: &[u8]) -> Result<Response, Error> {
        if raw.len() < 2 {
            return Err(Error::Malformed("response shorter than a status word"));
        }
        let (data, sw) = raw.split_at(raw.len() - 2);
        Ok(Response {
            data: Zeroizing::new(data.to_vec()),
            sw: u16::from_be_bytes([sw[0], sw[1]]),
        })
    }

    /// `Ok(data)` for `9000`, else the status word as an error.
    pub fn ok(self) -> Result<Zeroizing<Vec<u8>>, Error> {
        if self.sw == 0x9000 {
            Ok(self.data)
        } else {
            Err(Error::Status(self.sw))
        }
    }

    /// `Ok(())` for `9000` with no data, else an error.
    pub fn ok_empty(self) -> Result<(), Error> {
        let data = self.ok()?;
        if data.is_empty() {
            Ok(())
        } else {
            Err(Error::Malformed("unexpected data in response"))
        }
    }
}

/// A command APDU in short form: `CLA INS P1 P2 [Lc data] [Le]`, in a buffer sized once and
/// wiped when dropped (the data may be a PIN).
pub fn command(
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &[u8],
    le: Option<u8>,
) -> Zeroizing<Vec<u8>> {
    debug_assert!(data.len() <= 255, "short APDU data is at most 255 bytes");
    let mut apdu = Zeroizing::new(Vec::with_capacity(6 + data.len()));
    apdu.extend_from_slice(&[cla, ins, p1, p2]);
    if !data.is_empty() {
        apdu.push(data.len() as u8);
        apdu.extend_from_slice(data);
    }
    if let Some(le) = le {
        apdu.push(le);
    }
    apdu
}

/// Upper bound on GET RESPONSE rounds, so a card that keeps answering `61xx` cannot loop us.
const MAX_GET_RESPONSE: usize = 32;

/// A transaction that counts what it sent and remembers whether a PIN was presented, so the
/// caller knows to drop the card's security state before the transaction ends.
pub struct Exchange<'a> {
    tx: &'a mut dyn Transaction,
    /// A VERIFY carrying a PIN was sent in this transaction.
    pub pin_presented: bool,
    /// Command APDUs sent (including GET RESPONSE and resends).
    pub sent: usize,
}

impl<'a> Exchange<'a> {
    pub fn new(tx: &'a mut dyn Transaction) -> Self {
        Exchange {
            tx,
            pin_presented: false,
            sent: 0,
        }
    }

    fn raw(&mut self, apdu: &[u8]) -> Result<Response, Error> {
        self.sent += 1;
        // The transport's buffer is wiped as soon as it is parsed.
        let raw = Zeroizing::new(self.tx.transmit(apdu)?);
        Response::parse(&raw)
    }

    /// Sends `apdu` and follows `61xx` and `6Cxx` to the final response.
    pub fn send(&mut self, apdu: &[u8]) -> Result<Response, Error> {
        if apdu.len() >= 5 && apdu[1] == 0x20 && apdu[4] > 0 {
            self.pin_presented = true;
        }
        let mut resp = self.raw(apdu)?;
        if resp.sw & 0xFF00 == 0x6C00 && apdu.len() >= 4 {
            // Wrong Le: resend with Le = SW2 (case 2 or 4 command; replace or append Le).
            let mut again = Zeroizing::new(Vec::with_capacity(apdu.len() + 1));
            again.extend_from_slice(apdu);
            let has_le = apdu.len() == 5 || (apdu.len() > 5 && apdu.len() == 6 + apdu[4] as usize);
            if has_le {
                *again.last_mut().expect("non-empty") = (resp.sw & 0xFF) as u8;
            } else {
                again.push((resp.sw & 0xFF) as u8);
            }
            resp = self.raw(&again)?;
        }
        let mut data = std::mem::take(&mut resp.data);
        let mut rounds = 0;
        while resp.sw & 0xFF00 == 0x6100 {
            rounds += 1;
            if rounds > MAX_GET_RESPONSE {
                return Err(Error::Malformed("endless GET RESPONSE chain"));
            }
            let le = (resp.sw & 0xFF) as u8;
            resp = self.raw(&command(apdu[0] & 0x03, 0xC0, 0, 0, &[], Some(le)))?;
            extend_wiped(&mut data, &resp.data);
        }
        Ok(Response { data, sw: resp.sw })
    }
}

/// Uppercase hex, for logs and serial numbers.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    struct Scripted {
        replies: VecDeque<Vec<u8>>,
        seen: Vec<Vec<u8>>,
    }
    impl Transaction for Scripted {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, Error> {
            self.seen.push(apdu.to_vec());
            self.replies
                .pop_front()
                .ok_or(Error::Transport("no reply".into()))
        }
    }

    fn script(replies: &[&[u8]]) -> Scripted {
        Scripted {
            replies: replies.iter().map(|r| r.to_vec()).collect(),
            seen: vec![],
        }
    }

    #[test]
    fn builds_short_apdus() {
        assert_eq!(
            *command(0, 0xA4, 2, 0x0C, &[0, 0x0A], None),
            [0, 0xA4, 2, 0x0C, 2, 0, 0x0A]
        );
        assert_eq!(*command(0, 0xB0, 1, 0, &[], Some(0)), [0, 0xB0, 1, 0, 0]);
        assert_eq!(
            *command(0x80, 0x2A, 0, 0x80, &[1, 2], Some(0)),
            [0x80, 0x2A, 0, 0x80, 2, 1, 2, 0]
        );
        assert_eq!(*command(0, 0x20, 0, 0x80, &[], None), [0, 0x20, 0, 0x80]);
    }

    #[test]
    fn parses_responses() {
        assert_eq!(
            Response::parse(&[0x90, 0]).unwrap(),
            Response {
                data: Zeroizing::new(vec![]),
                sw: 0x9000
            }
        );
        assert_eq!(Response::parse(&[1, 0x63, 0xC2]).unwrap().sw, 0x63C2);
        assert!(Response::parse(&[0x90]).is_err());
        assert!(Response::parse(&[]).is_err());
        assert_eq!(
            *Response::parse(&[5, 0x90, 0]).unwrap().ok().unwrap(),
            vec![5]
        );
        assert_eq!(
            Response::parse(&[0x6A, 0x82]).unwrap().ok(),
            Err(Error::Status(0x6A82))
        );
        assert!(Response::parse(&[5, 0x90, 0]).unwrap().ok_empty().is_err());
    }

    #[test]
    fn follows_get_response() {
        let mut t = script(&[&[1, 2, 0x61, 0x02], &[3, 4, 0x90, 0x00]]);
        let r = Exchange::new(&mut t).send(&[0, 0xB0, 0, 0, 0]).unwrap();
        assert_eq!(
            r,
            Response {
                data: Zeroizing::new(vec![1, 2, 3, 4]),
                sw: 0x9000
            }
        );
        assert_eq!(t.seen[1], vec![0, 0xC0, 0, 0, 2]);
    }

    #[test]
    fn resends_with_corrected_le() {
        let mut t = script(&[&[0x6C, 0x10], &[9; 18]]);
        let mut x = Exchange::new(&mut t);
        let r = x.send(&[0, 0xB0, 0, 0, 0]).unwrap();
        assert_eq!(x.sent, 2);
        assert_eq!(r.data.len(), 16);
        assert_eq!(t.seen[1], vec![0, 0xB0, 0, 0, 0x10]);
    }

    #[test]
    fn endless_get_response_is_an_error() {
        let replies: Vec<&[u8]> = vec![&[0x61, 0x01]; 40];
        let mut t = script(&replies);
        assert_eq!(
            Exchange::new(&mut t).send(&[0, 0xB0, 0, 0, 0]),
            Err(Error::Malformed("endless GET RESPONSE chain"))
        );
    }

    #[test]
    fn notes_pin_presentation() {
        let mut t = script(&[&[0x63, 0xC3], &[0x90, 0]]);
        let mut x = Exchange::new(&mut t);
        x.send(&[0, 0x20, 0, 0x80]).unwrap();
        assert!(!x.pin_presented, "an empty VERIFY presents no PIN");
        x.send(&[0, 0x20, 0, 0x80, 4, b'1', b'2', b'3', b'4'])
            .unwrap();
        assert!(x.pin_presented);
    }
}
