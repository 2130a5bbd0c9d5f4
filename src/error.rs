//! Errors of the commands: the error reply a command fails with, and the
//! conversions from the errors of the pure modules.

use std::ffi::CString;
use std::fmt;

use crate::keys::KeyError;

/// An error reply. The text always starts with an error code (`ERR`, `WRONGTYPE`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    /// Redis's own wrong-number-of-arguments error.
    WrongArity,
    Static(&'static str),
    Owned(String),
}

impl CmdError {
    pub fn msg(text: impl Into<String>) -> Self {
        CmdError::Owned(text.into())
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::WrongArity => f.write_str("ERR wrong number of arguments"),
            CmdError::Static(s) => f.write_str(s),
            CmdError::Owned(s) => f.write_str(s),
        }
    }
}

pub const WRONGTYPE: CmdError =
    CmdError::Static("WRONGTYPE Operation against a key holding the wrong kind of value");

pub type CmdResult = Result<(), CmdError>;

/// The reply when a handler panicked or failed to reply.
pub const INTERNAL_ERROR: CmdError = CmdError::Static("ERR internal error");

/// Makes an error text safe for the protocol: one line, no NUL.
pub fn sanitize_error(text: &str) -> CString {
    let clean: Vec<u8> = text
        .bytes()
        .map(|b| {
            if b == b'\r' || b == b'\n' || b == 0 {
                b' '
            } else {
                b
            }
        })
        .collect();
    // No NUL is left, so this cannot fail; fall back to a fixed text anyway.
    CString::new(clean).unwrap_or_else(|_| CString::from(c"ERR internal error"))
}

impl From<KeyError> for CmdError {
    fn from(e: KeyError) -> Self {
        CmdError::msg(e.to_string())
    }
}
