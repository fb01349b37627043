//! [pinentry] A PIN asked through the configured pinentry program, for `C_Login` with a NULL
//! PIN: the texts are made under the reader lock (the tries left are read then), the program
//! runs with no lock held.

use super::slot::{bound_card, card_error, Reader};
use crate::error::{CkError, CkResult, Context};
use cryptoki_sys::*;
use jpki_card::jpki::{KeyPair, PinTries};
use zeroize::Zeroizing;

/// The texts of a pinentry prompt (owned, to be shown with no lock held).
pub(super) struct PromptText {
    description: String,
    prompt: &'static str,
    error: Option<&'static str>,
}

/// [pinentry] The configured pinentry program and what it shows for `key`'s PIN: the tries left
/// (read with the empty VERIFY, which costs no try). Without a pinentry, a NULL PIN is
/// `CKR_ARGUMENTS_BAD`; a locked PIN is refused before anything is shown.
pub(super) fn pin_prompt(
    reader: &mut Reader,
    key: KeyPair,
    user_type: CK_USER_TYPE,
) -> CkResult<(std::path::PathBuf, PromptText)> {
    let program = crate::config::get()
        .pinentry
        .clone()
        .ok_or(CkError::ArgumentsBad)?;
    let tries = match bound_card(reader)?.refresh_tries(key) {
        Ok(PinTries::Left(n)) if n > 0 => Some(n),
        // [uncertain] The card was found unlocked (and locked again): it did not tell the count.
        Ok(PinTries::Unknown) => None,
        Ok(_) => return Err(CkError::PinLocked),
        Err(err) => return Err(card_error(reader, err, Context::Read)),
    };
    let (what, prompt) = match key {
        KeyPair::Auth => (
            "the user authentication PIN (利用者証明用電子証明書, 4 digits)",
            "PIN:",
        ),
        KeyPair::Sign => (
            "the digital signature password (署名用電子証明書, 6 to 16 letters and digits)",
            "Password:",
        ),
    };
    let purpose = if user_type == CKU_CONTEXT_SPECIFIC {
        "\nIt is asked again for each signature."
    } else {
        ""
    };
    let tries_text = tries.map_or("unknown".into(), |n| format!("{n} of {}", key.max_tries()));
    let description = format!("My Number Card: enter {what}.{purpose}\nTries left: {tries_text}.");
    let error = (tries == Some(1)).then_some(
        "Last try: a wrong entry locks the key (only a municipal office can unlock it).",
    );
    Ok((
        program,
        PromptText {
            description,
            prompt,
            error,
        },
    ))
}

/// [pinentry] Runs the pinentry (no lock held). A cancelled entry is `CKR_FUNCTION_CANCELED` (as
/// OpenSC returns for a cancelled PIN pad); a pinentry that cannot run is `CKR_FUNCTION_FAILED`
/// (and logged).
pub(super) fn ask_pin(
    program: &std::path::Path,
    text: &PromptText,
) -> CkResult<Zeroizing<Vec<u8>>> {
    use crate::pinentry::{get_pin, PinentryError, Prompt};
    let p = Prompt {
        title: "JPKI My Number Card",
        description: &text.description,
        prompt: text.prompt,
        error: text.error,
    };
    match get_pin(program, &p) {
        Ok(pin) => Ok(pin),
        Err(PinentryError::Cancelled) => {
            jpki_card::log::info(format_args!("PIN entry cancelled"));
            Err(CkError::FunctionCanceled)
        }
        Err(PinentryError::Failed(msg)) => {
            jpki_card::log::warn(format_args!("pinentry {}: {msg}", program.display()));
            Err(CkError::FunctionFailed)
        }
    }
}
