//! The PKCS#11 return codes the module produces ([`CkError`]), and the context-aware conversion
//! of the card layer's errors ([`jpki_card::Error`]) into them ([`ToCk::to_ck`]): the same status
//! word means different things in `C_Login` and `C_Sign`.

use cryptoki_sys::*;
use jpki_card::Error;
use std::fmt;

macro_rules! ck_errors {
    ($($name:ident = $rv:ident,)*) => {
        /// Every `CKR_*` (other than `CKR_OK`) this module returns. Declared once, here.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CkError { $($name,)* }

        impl From<CkError> for CK_RV {
            fn from(e: CkError) -> CK_RV {
                match e { $(CkError::$name => $rv,)* }
            }
        }

        impl CkError {
            /// The spec's name of the code, for logs and test messages.
            pub fn name(self) -> &'static str {
                match self { $(CkError::$name => stringify!($rv),)* }
            }
        }
    };
}

ck_errors! {
    ArgumentsBad = CKR_ARGUMENTS_BAD,
    AttributeSensitive = CKR_ATTRIBUTE_SENSITIVE,
    AttributeTypeInvalid = CKR_ATTRIBUTE_TYPE_INVALID,
    AttributeValueInvalid = CKR_ATTRIBUTE_VALUE_INVALID,
    BufferTooSmall = CKR_BUFFER_TOO_SMALL,
    CantLock = CKR_CANT_LOCK,
    CryptokiAlreadyInitialized = CKR_CRYPTOKI_ALREADY_INITIALIZED,
    CryptokiNotInitialized = CKR_CRYPTOKI_NOT_INITIALIZED,
    DataInvalid = CKR_DATA_INVALID,
    DataLenRange = CKR_DATA_LEN_RANGE,
    DeviceError = CKR_DEVICE_ERROR,
    DeviceMemory = CKR_DEVICE_MEMORY,
    DeviceRemoved = CKR_DEVICE_REMOVED,
    FunctionCanceled = CKR_FUNCTION_CANCELED,
    FunctionFailed = CKR_FUNCTION_FAILED,
    FunctionNotParallel = CKR_FUNCTION_NOT_PARALLEL,
    FunctionNotSupported = CKR_FUNCTION_NOT_SUPPORTED,
    GeneralError = CKR_GENERAL_ERROR,
    HostMemory = CKR_HOST_MEMORY,
    KeyFunctionNotPermitted = CKR_KEY_FUNCTION_NOT_PERMITTED,
    KeyIndigestible = CKR_KEY_INDIGESTIBLE,
    KeyHandleInvalid = CKR_KEY_HANDLE_INVALID,
    KeyTypeInconsistent = CKR_KEY_TYPE_INCONSISTENT,
    MechanismInvalid = CKR_MECHANISM_INVALID,
    MechanismParamInvalid = CKR_MECHANISM_PARAM_INVALID,
    ObjectHandleInvalid = CKR_OBJECT_HANDLE_INVALID,
    OperationActive = CKR_OPERATION_ACTIVE,
    OperationNotInitialized = CKR_OPERATION_NOT_INITIALIZED,
    PinIncorrect = CKR_PIN_INCORRECT,
    PinInvalid = CKR_PIN_INVALID,
    PinLenRange = CKR_PIN_LEN_RANGE,
    PinLocked = CKR_PIN_LOCKED,
    RandomSeedNotSupported = CKR_RANDOM_SEED_NOT_SUPPORTED,
    SessionClosed = CKR_SESSION_CLOSED,
    SessionCount = CKR_SESSION_COUNT,
    SessionHandleInvalid = CKR_SESSION_HANDLE_INVALID,
    SessionParallelNotSupported = CKR_SESSION_PARALLEL_NOT_SUPPORTED,
    SessionReadOnly = CKR_SESSION_READ_ONLY,
    SessionReadOnlyExists = CKR_SESSION_READ_ONLY_EXISTS,
    SignatureInvalid = CKR_SIGNATURE_INVALID,
    SignatureLenRange = CKR_SIGNATURE_LEN_RANGE,
    SlotIdInvalid = CKR_SLOT_ID_INVALID,
    TemplateIncomplete = CKR_TEMPLATE_INCOMPLETE,
    TemplateInconsistent = CKR_TEMPLATE_INCONSISTENT,
    TokenNotPresent = CKR_TOKEN_NOT_PRESENT,
    TokenNotRecognized = CKR_TOKEN_NOT_RECOGNIZED,
    TokenWriteProtected = CKR_TOKEN_WRITE_PROTECTED,
    UserAlreadyLoggedIn = CKR_USER_ALREADY_LOGGED_IN,
    UserAnotherAlreadyLoggedIn = CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
    UserNotLoggedIn = CKR_USER_NOT_LOGGED_IN,
    UserPinNotInitialized = CKR_USER_PIN_NOT_INITIALIZED,
    UserTypeInvalid = CKR_USER_TYPE_INVALID,
    OperationCancelFailed = CKR_OPERATION_CANCEL_FAILED,
    ActionProhibited = CKR_ACTION_PROHIBITED,
}

impl fmt::Display for CkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for CkError {}

/// Result of the PKCS#11 layer.
pub type CkResult<T> = Result<T, CkError>;

/// What the module was doing when a card error happened: it decides the `CKR_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// VERIFY of a PIN given by the user (`C_Login`, `C_SetPIN`).
    Login,
    /// Signing (including the re-verification of a held PIN).
    Sign,
    /// Reading files, token information, random numbers.
    Read,
}

/// The PKCS#11 code of a card-layer error.
pub trait ToCk {
    /// The PKCS#11 code for the context the error happened in.
    fn to_ck(&self, ctx: Context) -> CkError;
}

impl ToCk for Error {
    fn to_ck(&self, ctx: Context) -> CkError {
        let ck = match (self, ctx) {
            (Error::Status(sw), Context::Login) if sw & 0xFFF0 == 0x63C0 => CkError::PinIncorrect,
            (Error::Status(0x6983 | 0x6984), Context::Login | Context::Sign) => CkError::PinLocked,
            (Error::Status(sw), Context::Sign) if sw & 0xFFF0 == 0x63C0 => CkError::UserNotLoggedIn,
            (Error::Status(0x6982), _) => CkError::UserNotLoggedIn,
            (Error::Status(_), _) => CkError::DeviceError,
            (Error::CardRemoved | Error::NoCard, _) => CkError::DeviceRemoved,
            (Error::CardReset, _) => CkError::DeviceError,
            (Error::NoService, _) => CkError::DeviceRemoved,
            (Error::Transport(_), _) => CkError::DeviceError,
            (Error::Malformed(_), _) => CkError::DeviceError,
            (Error::NotJpki, _) => CkError::TokenNotRecognized,
            (Error::NotLocked, _) => CkError::DeviceError,
        };
        jpki_card::log::debug(format_args!("card error '{self}' in {ctx:?} -> {ck}"));
        ck
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_map_by_context() {
        assert_eq!(
            Error::Status(0x63C2).to_ck(Context::Login),
            CkError::PinIncorrect
        );
        assert_eq!(
            Error::Status(0x63C0).to_ck(Context::Login),
            CkError::PinIncorrect
        );
        assert_eq!(
            Error::Status(0x6984).to_ck(Context::Login),
            CkError::PinLocked
        );
        assert_eq!(
            Error::Status(0x6983).to_ck(Context::Login),
            CkError::PinLocked
        );
        assert_eq!(
            Error::Status(0x63C1).to_ck(Context::Sign),
            CkError::UserNotLoggedIn
        );
        assert_eq!(
            Error::Status(0x6982).to_ck(Context::Sign),
            CkError::UserNotLoggedIn
        );
        assert_eq!(
            Error::Status(0x6A86).to_ck(Context::Sign),
            CkError::DeviceError
        );
        assert_eq!(
            Error::CardRemoved.to_ck(Context::Read),
            CkError::DeviceRemoved
        );
        assert_eq!(CK_RV::from(CkError::PinLocked), CKR_PIN_LOCKED);
        assert_eq!(CkError::BufferTooSmall.name(), "CKR_BUFFER_TOO_SMALL");
    }
}
