//! Byte-exact reproduction of Python 3.11's
//! `json.dumps(json.loads(text), sort_keys=True)` (default separators,
//! `ensure_ascii=True`), so cache keys built here equal those built by the
//! Python services.
//!
//! An own parser is used instead of serde_json because Python accepts lone
//! surrogate escapes and sorts keys by code point, which needs control over
//! the decoded string representation.
//!
//! Decisions where Python and this module could differ:
//! - Duplicate keys: the last value wins, as with Python's dict assignment.
//! - Integers: printed digit for digit at any size up to 4300 digits (sign
//!   not counted); longer ones are refused with
//!   [`PyJsonError::IntegerTooLong`], because Python 3.11's default
//!   `sys.get_int_max_str_digits()` makes `json.loads` raise `ValueError`.
//! - Lone surrogates (`"\ud800"`): supported exactly like Python. A high
//!   surrogate escape directly followed by a low surrogate escape is joined
//!   into one code point; any other surrogate stays a lone code point, sorts
//!   by its code point and is printed back as `\udXXX`.
//! - `NaN`, `Infinity`, `-Infinity`: refused as invalid JSON (Python accepts
//!   these non-standard literals; clients must not send them).
//! - Nesting deeper than [`MAX_DEPTH`] arrays/objects is refused with
//!   [`PyJsonError::TooDeep`] (Python goes up to its recursion limit, ~1000),
//!   which keeps recursion here bounded.
//! - Input must be UTF-8 (Python's `json.loads(bytes)` would also guess
//!   UTF-16/32 and let encoded surrogates through). A leading UTF-8 BOM is
//!   refused, as `json.loads` does for a `str`.
//! - Numbers overflowing a double print as `Infinity`/`-Infinity` and
//!   underflowing ones as `0.0`/`-0.0`, as Python prints them.

mod dtoa;
mod float;
mod parse;
mod render;

#[cfg(test)]
mod props;

use std::collections::BTreeMap;
use std::fmt;

use parse::parse;
use render::render_top;

/// Deepest accepted nesting of arrays and objects.
pub const MAX_DEPTH: usize = 128;

/// Python 3.11's default limit on digits in an int string conversion.
pub const MAX_INT_DIGITS: usize = 4300;

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PyJsonError {
    /// The bytes are not UTF-8; `offset` is the first bad byte.
    InvalidUtf8 { offset: usize },
    /// Not JSON; the message tells what and where.
    InvalidJson(String),
    /// Arrays/objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// An integer with more than [`MAX_INT_DIGITS`] digits.
    IntegerTooLong { digits: usize },
    /// Valid JSON whose top level is not an object.
    NotAnObject,
}

impl fmt::Display for PyJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyJsonError::InvalidUtf8 { offset } => {
                write!(f, "invalid JSON: not UTF-8 at byte {offset}")
            }
            PyJsonError::InvalidJson(msg) => write!(f, "invalid JSON: {msg}"),
            PyJsonError::TooDeep => {
                write!(f, "invalid JSON: nested deeper than {MAX_DEPTH} levels")
            }
            PyJsonError::IntegerTooLong { digits } => write!(
                f,
                "invalid JSON: integer has {digits} digits, limit is {MAX_INT_DIGITS}"
            ),
            PyJsonError::NotAnObject => write!(f, "JSON value is not an object"),
        }
    }
}

impl std::error::Error for PyJsonError {}

/// Python's `json.dumps(json.loads(text), sort_keys=True)` for a JSON object text.
/// Refuses input that is not valid UTF-8, not valid JSON, or whose top level is not an object.
pub fn canonical_object(text: &[u8]) -> Result<String, PyJsonError> {
    let value = parse(text)?;
    if !matches!(value, Value::Object(_)) {
        return Err(PyJsonError::NotAnObject);
    }
    Ok(render_top(&value, text.len()))
}

/// Same for any JSON value (used by tests and possibly other callers).
pub fn canonical_value(text: &[u8]) -> Result<String, PyJsonError> {
    let value = parse(text)?;
    Ok(render_top(&value, text.len()))
}

/// Parsed JSON. Strings are kept as WTF-8 (UTF-8 that may also encode lone
/// surrogates), whose byte order equals code point order, so the BTreeMap
/// sorts keys exactly like Python sorts `str`.
enum Value {
    Null,
    True,
    False,
    /// Already in Python's printed form.
    Number(String),
    Str(Vec<u8>),
    Array(Vec<Value>),
    Object(BTreeMap<Vec<u8>, Value>),
}

/// What the unit tests of each part share: the whole pipeline on a text.
#[cfg(test)]
mod testing {
    use super::*;

    pub(super) fn canon(text: &str) -> String {
        match canonical_value(text.as_bytes()) {
            Ok(s) => s,
            Err(e) => panic!("{text:?} refused: {e}"),
        }
    }

    pub(super) fn refused(text: &[u8]) -> PyJsonError {
        match canonical_value(text) {
            Ok(s) => panic!("{text:?} accepted as {s}"),
            Err(e) => e,
        }
    }
}
