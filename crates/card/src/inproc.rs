//! The in-process transport: readers holding [`VirtualCard`]s in this process, for tests that
//! need no pcscd. Cards can be inserted, removed and reset while the module runs, and a test can
//! reach a card directly, as another process would through its own PC/SC connection.

use crate::error::Error;
use crate::{CardChannel, CardSystem, ReaderStatus, Transaction};
use jpki_vcard::VirtualCard;
use parking_lot::Mutex;
use std::sync::Arc;

struct InProcReader {
    name: String,
    card: Option<Arc<Mutex<VirtualCard>>>,
    /// Counts insertions and removals, as PC/SC's event counter does.
    events: u32,
    /// Counts resets done by "other processes".
    resets: u64,
}

/// Readers in this process.
pub struct InProcSystem {
    readers: Arc<Mutex<Vec<InProcReader>>>,
}

impl InProcSystem {
    /// A system with the given empty readers.
    pub fn new(names: &[&str]) -> Arc<InProcSystem> {
        let readers = names
            .iter()
            .map(|n| InProcReader {
                name: n.to_string(),
                card: None,
                events: 0,
                resets: 0,
            })
            .collect();
        Arc::new(InProcSystem {
            readers: Arc::new(Mutex::new(readers)),
        })
    }

    /// Inserts `card` (powered on) into reader `i` and returns a handle to reach it directly.
    pub fn insert(&self, i: usize, mut card: VirtualCard) -> Arc<Mutex<VirtualCard>> {
        card.power_on();
        let card = Arc::new(Mutex::new(card));
        let mut readers = self.readers.lock();
        readers[i].card = Some(card.clone());
        readers[i].events += 1;
        card
    }

    /// Inserts (again) a card the test already holds, e.g. the one a fault pulled out, with its
    /// counters as they are.
    pub fn insert_shared(&self, i: usize, card: Arc<Mutex<VirtualCard>>) {
        card.lock().power_on();
        let mut readers = self.readers.lock();
        readers[i].card = Some(card);
        readers[i].events += 1;
    }

    /// Whether reader `i` holds a card.
    pub fn has_card(&self, i: usize) -> bool {
        self.readers.lock().get(i).is_some_and(|r| r.card.is_some())
    }

    /// Removes the card from reader `i` (powered off).
    pub fn remove(&self, i: usize) -> Option<Arc<Mutex<VirtualCard>>> {
        let mut readers = self.readers.lock();
        let card = readers[i].card.take();
        if let Some(c) = &card {
            c.lock().power_off();
            readers[i].events += 1;
        }
        card
    }

    /// Resets the card in reader `i`, as another process would.
    pub fn reset(&self, i: usize) {
        let mut readers = self.readers.lock();
        if let Some(c) = &readers[i].card {
            c.lock().reset();
            readers[i].resets += 1;
        }
    }

    /// Adds a reader (a reader plugged in while the module runs).
    pub fn add_reader(&self, name: &str) {
        self.readers.lock().push(InProcReader {
            name: name.into(),
            card: None,
            events: 0,
            resets: 0,
        });
    }

    /// Unplugs reader `i` entirely.
    pub fn unplug(&self, i: usize) {
        let mut readers = self.readers.lock();
        if i < readers.len() {
            readers.remove(i);
        }
    }
}

impl CardSystem for InProcSystem {
    fn list_readers(&self) -> Vec<String> {
        self.readers.lock().iter().map(|r| r.name.clone()).collect()
    }

    fn reader_status(&self, reader: &str) -> ReaderStatus {
        let readers = self.readers.lock();
        match readers.iter().find(|r| r.name == reader) {
            Some(r) => ReaderStatus {
                present: r.card.is_some(),
                events: r.events,
            },
            None => ReaderStatus {
                present: false,
                events: 0,
            },
        }
    }

    fn connect(&self, reader: &str) -> Result<Box<dyn CardChannel>, Error> {
        let readers = self.readers.lock();
        let r = readers
            .iter()
            .find(|r| r.name == reader)
            .ok_or(Error::CardRemoved)?;
        if r.card.is_none() {
            return Err(Error::NoCard);
        }
        Ok(Box::new(InProcChannel {
            readers: self.readers.clone(),
            name: reader.to_string(),
            events: r.events,
            resets: r.resets,
        }))
    }
}

struct InProcChannel {
    readers: Arc<Mutex<Vec<InProcReader>>>,
    name: String,
    /// Event counter when connected: another value means the card was removed.
    events: u32,
    resets: u64,
}

impl InProcChannel {
    /// The card this channel is connected to, if it is still in the reader.
    fn card(&self) -> Result<(Arc<Mutex<VirtualCard>>, u64), Error> {
        let readers = self.readers.lock();
        let r = readers
            .iter()
            .find(|r| r.name == self.name)
            .ok_or(Error::CardRemoved)?;
        match &r.card {
            Some(c) if r.events == self.events => Ok((c.clone(), r.resets)),
            _ => Err(Error::CardRemoved),
        }
    }
}

struct InProcTransaction<'a> {
    chan: &'a InProcChannel,
}

impl Transaction for InProcTransaction<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, Error> {
        let (card, _) = self.chan.card()?;
        let (resp, pulled) = {
            let mut c = card.lock();
            let resp = c.transmit(apdu);
            (resp, c.take_pulled())
        };
        if pulled {
            // Fault injection: the card was pulled before its answer reached the reader.
            let mut readers = self.chan.readers.lock();
            if let Some(r) = readers.iter_mut().find(|r| r.name == self.chan.name) {
                r.card = None;
                r.events += 1;
            }
            return Err(Error::CardRemoved);
        }
        Ok(resp)
    }

    fn end_unpowered(self: Box<Self>) -> Result<(), Error> {
        let (card, _) = self.chan.card()?;
        let mut c = card.lock();
        c.power_off();
        c.power_on();
        Ok(())
    }
}

impl CardChannel for InProcChannel {
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, Error> {
        let (_, resets) = self.card()?;
        // A reset by another process: "reconnect" (note it) and go on.
        self.resets = resets;
        Ok(Box::new(InProcTransaction { chan: self }))
    }

    fn unpower(&mut self) -> Result<(), Error> {
        let (card, _) = self.card()?;
        let mut c = card.lock();
        c.power_off();
        c.power_on();
        Ok(())
    }

    fn disconnect(self: Box<Self>) {}
}
