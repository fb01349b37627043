//! Objects: `C_FindObjects*`, `C_GetAttributeValue`, `C_GetObjectSize`, and which key object an
//! operation may use. The objects themselves (handles, attributes) are `token::objects`.

use super::session::{with_session, SessionEntry};
use super::slot::{bound_card, card_error, Reader};
use super::{AttrValue, Template};
use crate::error::{CkError, CkResult, Context};
use crate::token::objects::{self, CertSource, ObjectKind};
use cryptoki_sys::*;
use jpki_card::cert::Cert;
use jpki_card::jpki::KeyPair;
use std::sync::Arc;
use zeroize::Zeroizing;

/// An object search: the handles found at `C_FindObjectsInit`, handed out in order.
pub(super) struct FindOp {
    found: Vec<CK_OBJECT_HANDLE>,
    pos: usize,
}

/// Loads the certificate an object is built from.
pub(super) fn load_cert(reader: &mut Reader, key: KeyPair, src: CertSource) -> CkResult<Arc<Cert>> {
    let card = bound_card(reader)?;
    let res = match src {
        CertSource::KeyPair => card.own_cert(key),
        CertSource::Ca => card.ca_cert(key),
    };
    res.map_err(|err| card_error(reader, err, Context::Read))
}

/// The object behind handle `o` in this session, if the session may see it.
fn visible_object(
    entry: &SessionEntry,
    reader: &mut Reader,
    o: CK_OBJECT_HANDLE,
) -> CkResult<ObjectKind> {
    let logged_in = bound_card(reader)?.is_logged_in(entry.key);
    ObjectKind::from_handle(entry.key, o)
        .filter(|obj| obj.visible(entry.key, logged_in))
        .ok_or(CkError::ObjectHandleInvalid)
}

pub fn find_objects_init(h: CK_SESSION_HANDLE, template: Template) -> CkResult<()> {
    // The values are wiped when dropped, however the search ends.
    let template: Vec<(CK_ATTRIBUTE_TYPE, Zeroizing<Vec<u8>>)> = template
        .into_iter()
        .map(|(ty, v)| (ty, Zeroizing::new(v)))
        .collect();
    with_session(h, |entry, session, reader| {
        if session.find.is_some() {
            return Err(CkError::OperationActive);
        }
        let key = entry.key;
        let logged_in = bound_card(reader)?.is_logged_in(key);
        let mut found = Vec::new();
        'objects: for obj in objects::ALL {
            if !obj.visible(key, logged_in) {
                continue;
            }
            // Attributes known without the card first, so that a search by class or id does
            // not read certificates it does not need.
            let (cheap, costly): (Vec<_>, Vec<_>) = template
                .iter()
                .partition(|(ty, _)| !objects::needs_cert(key, obj, *ty));
            for (ty, want) in cheap.into_iter().chain(costly) {
                let got = objects::attr(key, obj, *ty, &mut |src| load_cert(reader, key, src))?;
                if !matches!(&got, AttrValue::Value(v) if v[..] == want[..]) {
                    continue 'objects;
                }
            }
            found.push(obj.handle(key));
        }
        session.find = Some(FindOp { found, pos: 0 });
        Ok(())
    })
}

pub fn find_objects(h: CK_SESSION_HANDLE, max: usize) -> CkResult<Vec<CK_OBJECT_HANDLE>> {
    with_session(h, |_, session, _| {
        let op = session
            .find
            .as_mut()
            .ok_or(CkError::OperationNotInitialized)?;
        let end = op.found.len().min(op.pos.saturating_add(max));
        let out = op.found[op.pos..end].to_vec();
        op.pos = end;
        Ok(out)
    })
}

pub fn find_objects_final(h: CK_SESSION_HANDLE) -> CkResult<()> {
    with_session(h, |_, session, _| {
        session
            .find
            .take()
            .map(|_| ())
            .ok_or(CkError::OperationNotInitialized)
    })
}

pub fn get_attribute_value(
    h: CK_SESSION_HANDLE,
    o: CK_OBJECT_HANDLE,
    types: &[CK_ATTRIBUTE_TYPE],
) -> CkResult<Vec<AttrValue>> {
    with_session(h, |entry, _, reader| {
        let obj = visible_object(entry, reader, o)?;
        types
            .iter()
            .map(|ty| {
                objects::attr(entry.key, obj, *ty, &mut |src| {
                    load_cert(reader, entry.key, src)
                })
            })
            .collect()
    })
}

pub fn get_object_size(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> CkResult<CK_ULONG> {
    with_session(h, |entry, _, reader| {
        visible_object(entry, reader, o)?;
        Ok(CK_UNAVAILABLE_INFORMATION)
    })
}

/// The key object for an operation: must be `want` (private key to sign, public key to verify).
pub(super) fn op_key(
    entry: &SessionEntry,
    reader: &mut Reader,
    o: CK_OBJECT_HANDLE,
    want: ObjectKind,
) -> CkResult<()> {
    let logged_in = bound_card(reader)?.is_logged_in(entry.key);
    match ObjectKind::from_handle(entry.key, o) {
        Some(obj) if obj == want && obj.visible(entry.key, logged_in) => Ok(()),
        // A private key handle from before a logout.
        Some(ObjectKind::PrivateKey) if want == ObjectKind::PrivateKey => {
            Err(CkError::UserNotLoggedIn)
        }
        Some(ObjectKind::PrivateKey | ObjectKind::PublicKey)
            if obj_visible(entry, o, logged_in) =>
        {
            Err(CkError::KeyFunctionNotPermitted)
        }
        _ => Err(CkError::KeyHandleInvalid),
    }
}

/// Whether the session sees object `o`.
fn obj_visible(entry: &SessionEntry, o: CK_OBJECT_HANDLE, logged_in: bool) -> bool {
    ObjectKind::from_handle(entry.key, o).is_some_and(|obj| obj.visible(entry.key, logged_in))
}
