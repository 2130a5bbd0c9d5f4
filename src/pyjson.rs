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

use std::collections::BTreeMap;
use std::fmt;

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
#[allow(dead_code)] // the module keys use objects only; tests/pyjson_vectors.rs checks every value
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

fn parse(text: &[u8]) -> Result<Value, PyJsonError> {
    if let Err(e) = std::str::from_utf8(text) {
        return Err(PyJsonError::InvalidUtf8 {
            offset: e.valid_up_to(),
        });
    }
    let mut p = Parser { s: text, pos: 0 };
    if text.starts_with("\u{feff}".as_bytes()) {
        return Err(p.err("unexpected UTF-8 BOM"));
    }
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos < text.len() {
        return Err(p.err("unexpected data after the value"));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.s.get(self.pos.saturating_add(ahead)).copied()
    }

    fn rest(&self) -> &[u8] {
        self.s.get(self.pos..).unwrap_or(&[])
    }

    fn skip_ws(&mut self) {
        // Python's json skips exactly these four, like RFC 8259.
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn err(&self, msg: &str) -> PyJsonError {
        self.err_at(self.pos, msg)
    }

    /// Error with a 1-based line and column (in characters) like Python's.
    fn err_at(&self, pos: usize, msg: &str) -> PyJsonError {
        let before = self.s.get(..pos).unwrap_or(self.s);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let column = 1 + before
            .get(line_start..)
            .unwrap_or(&[])
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count();
        PyJsonError::InvalidJson(format!("{msg} at line {line} column {column}"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, PyJsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.literal("true", Value::True),
            Some(b'f') => self.literal("false", Value::False),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.not_a_value()),
        }
    }

    fn not_a_value(&self) -> PyJsonError {
        let rest = self.rest();
        let nonfinite = [&b"NaN"[..], b"Infinity", b"-Infinity"];
        if nonfinite.iter().any(|lit| rest.starts_with(lit)) {
            self.err("NaN and Infinity are not JSON")
        } else {
            self.err("expected value")
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, PyJsonError> {
        if self.rest().starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.err("expected value"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, PyJsonError> {
        if depth > MAX_DEPTH {
            return Err(PyJsonError::TooDeep);
        }
        self.pos += 1; // '{'
        let mut map = BTreeMap::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth)?;
            // Duplicate key: later value replaces earlier, like dict assignment.
            map.insert(key, value);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, PyJsonError> {
        if depth > MAX_DEPTH {
            return Err(PyJsonError::TooDeep);
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    /// Decodes a string literal into WTF-8.
    fn string(&mut self) -> Result<Vec<u8>, PyJsonError> {
        let open = self.pos;
        self.pos += 1; // '"'
        let mut out = Vec::new();
        loop {
            // Copy a run of plain bytes; the input is valid UTF-8 and the
            // stop bytes are ASCII, so the run is valid UTF-8 too.
            let run = self
                .rest()
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(self.rest().len());
            out.extend_from_slice(self.rest().get(..run).unwrap_or(&[]));
            self.pos += run;
            match self.peek() {
                None => return Err(self.err_at(open, "unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(&mut out)?,
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), PyJsonError> {
        let simple = match self.peek_at(1) {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 0x08,
            Some(b'f') => 0x0C,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                let mut cp = self.hex4(2)?;
                self.pos += 6;
                // Join a surrogate pair only when the next escape is a low
                // surrogate, exactly as Python's scanner does.
                if (0xD800..0xDC00).contains(&cp)
                    && self.peek() == Some(b'\\')
                    && self.peek_at(1) == Some(b'u')
                {
                    if let Ok(low @ 0xDC00..=0xDFFF) = self.hex4(2) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        self.pos += 6;
                    }
                }
                push_wtf8(out, cp);
                return Ok(());
            }
            _ => return Err(self.err("invalid escape")),
        };
        out.push(simple);
        self.pos += 2;
        Ok(())
    }

    /// Reads 4 hex digits starting `ahead` bytes past the current position.
    fn hex4(&self, ahead: usize) -> Result<u32, PyJsonError> {
        let mut cp = 0u32;
        for i in 0..4 {
            let digit = self
                .peek_at(ahead + i)
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.err("invalid \\uXXXX escape"))?;
            cp = (cp << 4) | digit;
        }
        Ok(cp)
    }

    fn number(&mut self) -> Result<Value, PyJsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => {
                self.pos = start;
                return Err(self.not_a_value());
            }
        }
        let int_end = self.pos;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("expected digit after '.'"));
            }
            self.digits();
            is_float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("expected digit in exponent"));
            }
            self.digits();
            is_float = true;
        }
        let text = self.s.get(start..self.pos).unwrap_or(&[]);
        if is_float {
            let mut out = String::new();
            push_float_repr(&mut out, parse_float(text));
            return Ok(Value::Number(out));
        }
        let negative = text.first() == Some(&b'-');
        let digits = int_end - start - usize::from(negative);
        if digits > MAX_INT_DIGITS {
            return Err(PyJsonError::IntegerTooLong { digits });
        }
        // The grammar allows no leading zeros, so only "-0" needs fixing.
        let printed = if text == b"-0" { "0" } else { ascii(text) };
        Ok(Value::Number(printed.to_owned()))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }
}

/// Views ASCII bytes as str (only called on validated number text).
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

fn push_wtf8(out: &mut Vec<u8>, cp: u32) {
    // Plain UTF-8 layout, applied to surrogates too (WTF-8).
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]);
    } else if cp < 0x10000 {
        out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xF0 | ((cp >> 18) & 0x07) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    }
}

/// Correctly rounded value of a JSON number with fraction or exponent.
///
/// The text is rewritten as `0.<significant digits>e<small exponent>`
/// before `f64` parsing, so huge exponents or millions of digits can
/// neither overflow exponent arithmetic nor hit parser shortcuts.
fn parse_float(text: &[u8]) -> f64 {
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exp_text) = match body.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => (
            body.get(..i).unwrap_or(&[]),
            body.get(i + 1..).unwrap_or(&[]),
        ),
        None => (body, &[][..]),
    };
    let (int_part, frac_part) = match mantissa.iter().position(|&b| b == b'.') {
        Some(i) => (
            mantissa.get(..i).unwrap_or(&[]),
            mantissa.get(i + 1..).unwrap_or(&[]),
        ),
        None => (mantissa, &[][..]),
    };
    // Saturate far beyond any exponent that can still matter.
    const EXP_CAP: i64 = 1 << 50;
    let (exp_negative, exp_digits) = match exp_text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, exp_text),
    };
    let exp_abs = exp_digits.iter().fold(0i64, |acc, &d| {
        (acc * 10 + i64::from(d.wrapping_sub(b'0'))).min(EXP_CAP)
    });
    let exp = if exp_negative { -exp_abs } else { exp_abs };

    let leading_zeros = int_part
        .iter()
        .chain(frac_part)
        .take_while(|&&d| d == b'0')
        .count();
    let total = int_part.len() + frac_part.len();
    let magnitude = if leading_zeros == total {
        0.0
    } else {
        // value = 0.<digits from first nonzero> * 10^point
        let point = int_part.len() as i64 - leading_zeros as i64 + exp;
        if point > 400 {
            f64::INFINITY
        } else if point < -400 {
            0.0
        } else {
            let mut normalized = String::with_capacity(total - leading_zeros + 8);
            normalized.push_str("0.");
            for &d in int_part.iter().chain(frac_part).skip(leading_zeros) {
                normalized.push(char::from(d));
            }
            normalized.push('e');
            normalized.push_str(&point.to_string());
            normalized.parse::<f64>().unwrap_or(f64::NAN)
        }
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Splits Rust's `{:e}`-style output into significant digits (no trailing
/// zeros) and decimal exponent of the first digit.
fn split_sci(sci: &str) -> (String, i64) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let mut digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, exp.parse().unwrap_or(0))
}

/// Shortest round-trip digits of a positive finite double, as Python's repr
/// (David Gay's dtoa, mode 0) chooses them.
///
/// Rust's shortest formatting finds the same digit count, but when the exact
/// value lies exactly halfway between the two closest candidates of that
/// length (e.g. 665990852861467.25) Rust rounds up while dtoa picks the even
/// last digit (665990852861467.2). Such ties are detected and redone here.
fn shortest_digits(v: f64) -> (String, i64) {
    let (digits, exp) = split_sci(&format!("{v:e}"));
    let n = digits.len();
    // Cheap filter: a tie needs an exact value of n + 1 <= 18 significant
    // digits ending in 5, which 18-digit rounding shows unchanged.
    let rounded = format!("{v:.17e}");
    let (mantissa, _) = rounded.split_once('e').unwrap_or((&rounded, "0"));
    let rounded_digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if !is_tie_at(&rounded_digits, n) {
        return (digits, exp);
    }
    // Every double's exact decimal expansion has at most 767 significant digits.
    let exact = format!("{v:.780e}");
    let (mantissa, exact_exp) = exact.split_once('e').unwrap_or((&exact, "0"));
    let exact_digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if !is_tie_at(&exact_digits, n) {
        return (digits, exp);
    }
    let exact_exp: i64 = exact_exp.parse().unwrap_or(0);
    let mut candidate: Vec<u8> = exact_digits.get(..n).unwrap_or(&[]).to_vec();
    let mut candidate_exp = exact_exp;
    if candidate.last().is_some_and(|d| (d - b'0') % 2 == 1) {
        // Round up to the even neighbour, carrying through nines.
        let mut i = candidate.len();
        loop {
            if i == 0 {
                candidate.insert(0, b'1');
                candidate.pop();
                candidate_exp += 1;
                break;
            }
            i -= 1;
            match candidate.get_mut(i) {
                Some(d) if *d == b'9' => *d = b'0',
                Some(d) => {
                    *d += 1;
                    break;
                }
                None => break,
            }
        }
    }
    let text: String = candidate.iter().map(|&d| char::from(d)).collect();
    let (candidate, candidate_exp) = split_sci(&format!("{text}e{candidate_exp}"));
    // dtoa only takes the even neighbour if it still reads back as v.
    let reads_back = format!("0.{candidate}e{}", candidate_exp + 1).parse::<f64>() == Ok(v);
    if reads_back {
        (candidate, candidate_exp)
    } else {
        (digits, exp)
    }
}

/// True when `digits` is non-zero at index `n` only, and that digit is 5.
fn is_tie_at(digits: &[u8], n: usize) -> bool {
    digits.get(n) == Some(&b'5')
        && digits
            .get(n + 1..)
            .is_some_and(|rest| rest.iter().all(|&d| d == b'0'))
}

/// Python's `float.__repr__` as used by `json.dumps`.
fn push_float_repr(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v < 0.0 { "-Infinity" } else { "Infinity" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    if v < 0.0 {
        out.push('-');
    }
    let (digits, exp) = shortest_digits(v.abs());
    let n = digits.len() as i64;
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push_str(if exp < 0 { "e-" } else { "e+" });
        if exp.abs() < 10 {
            out.push('0');
        }
        out.push_str(&exp.abs().to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if n <= exp + 1 {
        out.push_str(&digits);
        for _ in 0..(exp + 1 - n) {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        let (int_digits, frac_digits) = digits.split_at((exp + 1) as usize);
        out.push_str(int_digits);
        out.push('.');
        out.push_str(frac_digits);
    }
}

fn render_top(value: &Value, input_len: usize) -> String {
    let mut out = String::with_capacity(input_len.saturating_add(16));
    render(value, &mut out);
    out
}

fn render(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::True => out.push_str("true"),
        Value::False => out.push_str("false"),
        Value::Number(n) => out.push_str(n),
        Value::Str(s) => push_escaped(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_escaped(out, key);
                out.push_str(": ");
                render(item, out);
            }
            out.push('}');
        }
    }
}

/// Writes a WTF-8 string as a JSON string with Python's `ensure_ascii` escaping.
fn push_escaped(out: &mut String, s: &[u8]) {
    out.push('"');
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b < 0x80 {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x08 => out.push_str("\\b"),
                0x0C => out.push_str("\\f"),
                0x20..=0x7E => out.push(char::from(b)),
                _ => push_u_escape(out, u32::from(b)),
            }
            i += 1;
            continue;
        }
        let (len, lead) = if b >= 0xF0 {
            (4, b & 0x07)
        } else if b >= 0xE0 {
            (3, b & 0x0F)
        } else {
            (2, b & 0x1F)
        };
        let mut cp = u32::from(lead);
        for k in 1..len {
            cp = (cp << 6) | u32::from(s.get(i + k).copied().unwrap_or(0x80) & 0x3F);
        }
        i += len;
        if cp >= 0x10000 {
            let v = cp - 0x10000;
            push_u_escape(out, 0xD800 + ((v >> 10) & 0x3FF));
            push_u_escape(out, 0xDC00 + (v & 0x3FF));
        } else {
            push_u_escape(out, cp);
        }
    }
    out.push('"');
}

fn push_u_escape(out: &mut String, unit: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[((unit >> shift) & 0xF) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        match canonical_value(text.as_bytes()) {
            Ok(s) => s,
            Err(e) => panic!("{text:?} refused: {e}"),
        }
    }

    fn refused(text: &[u8]) -> PyJsonError {
        match canonical_value(text) {
            Ok(s) => panic!("{text:?} accepted as {s}"),
            Err(e) => e,
        }
    }

    #[test]
    fn python_refuses_these_too() {
        // Each one verified to raise in python3.11 json.loads.
        let bad: &[&str] = &[
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "{'a':1}",
            "[1 2]",
            "01",
            "-01",
            "1.",
            ".5",
            "+1",
            "1e",
            "1e+",
            "-",
            "--1",
            "0x10",
            "tru",
            "nul",
            "True",
            "\"abc",
            "\"a\\x\"",
            "\"\\u12\"",
            "\"\\u12G4\"",
            "\"a\nb\"",
            "\"a\tb\"",
            "\"\u{0}\"",
            "[1] 2",
            "{} {}",
            "\"\\ud800\\u12\"",
            "1 .0",
            "[1,,2]",
            "\u{feff}{}",
            "\u{a0}{}",
            "{\"a\":1}\u{0}",
            "\"\\U0041\"",
            "\u{b}1",
            "\u{c}1",
        ];
        for text in bad {
            assert!(
                matches!(refused(text.as_bytes()), PyJsonError::InvalidJson(_)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn raw_del_and_c1_are_escaped() {
        assert_eq!(canon("\"\u{7f}\u{80}\""), r#""\u007f\u0080""#);
    }

    #[test]
    fn nan_and_infinity_refused() {
        for text in [
            "NaN",
            "Infinity",
            "-Infinity",
            "[1, NaN]",
            "{\"a\": -Infinity}",
        ] {
            let err = refused(text.as_bytes());
            assert!(
                err.to_string().contains("NaN and Infinity"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            refused(b"[1, ]").to_string(),
            "invalid JSON: expected value at line 1 column 5"
        );
        assert_eq!(
            refused("{\"\u{44f}\":\n  1 x}".as_bytes()).to_string(),
            "invalid JSON: expected ',' or '}' at line 2 column 5"
        );
        assert_eq!(
            refused(b"{\"a\": 1 \xff}"),
            PyJsonError::InvalidUtf8 { offset: 8 }
        );
        assert_eq!(
            canonical_object(b"[1]").unwrap_err().to_string(),
            "JSON value is not an object"
        );
    }

    #[test]
    fn invalid_utf8_refused() {
        // Overlong, encoded surrogate, truncated sequence, stray continuation.
        for text in [
            &b"\"\xc0\xaf\""[..],
            b"\"\xed\xa0\x80\"",
            b"\"\xe2\x82\"",
            b"\x80",
        ] {
            assert!(matches!(refused(text), PyJsonError::InvalidUtf8 { .. }));
        }
    }

    #[test]
    fn object_only() {
        assert_eq!(
            canonical_object(b" {\"b\":1,\"a\":[]} ").as_deref(),
            Ok(r#"{"a": [], "b": 1}"#)
        );
        for text in [&b"[]"[..], b"1", b"\"s\"", b"null", b"true"] {
            assert_eq!(canonical_object(text), Err(PyJsonError::NotAnObject));
        }
        // Invalid JSON is reported as such even when it is not an object.
        assert!(matches!(
            canonical_object(b"[1"),
            Err(PyJsonError::InvalidJson(_))
        ));
    }

    #[test]
    fn nesting_limit() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(canon(&ok), ok);
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(refused(deep.as_bytes()), PyJsonError::TooDeep);
        let deep_obj = "{\"a\":".repeat(MAX_DEPTH + 1);
        assert_eq!(refused(deep_obj.as_bytes()), PyJsonError::TooDeep);
        // Far deeper unterminated input must not overflow the stack.
        assert_eq!(
            refused("[".repeat(1_000_000).as_bytes()),
            PyJsonError::TooDeep
        );
    }

    #[test]
    fn integer_digit_limit() {
        let max = "7".repeat(MAX_INT_DIGITS);
        assert_eq!(canon(&max), max);
        assert_eq!(canon(&format!("-{max}")), format!("-{max}"));
        assert_eq!(
            refused(format!("{max}7").as_bytes()),
            PyJsonError::IntegerTooLong { digits: 4301 }
        );
        // Floats have no digit limit in Python.
        // Verified: python3 prints 7.777777777777778.
        assert_eq!(canon(&format!("{max}7e-4300")), "7.777777777777778");
    }

    #[test]
    fn long_float_mantissas() {
        // Verified: python3 prints 0.1111111111111111 and 1.0.
        assert_eq!(
            canon(&format!("{}e-70000", "1".repeat(70000))),
            "0.1111111111111111"
        );
        assert_eq!(canon(&format!("0.{}1e70001", "0".repeat(70000))), "1.0");
    }

    #[test]
    fn float_repr_ties_round_to_even() {
        // Verified with python3: dtoa breaks exact ties toward an even digit.
        assert_eq!(
            canon("[665990852861467.25, 665990852861467.75, -790812359411467.3125]"),
            "[665990852861467.2, 665990852861467.8, -790812359411467.2]"
        );
        assert_eq!(
            canon("[1.84524133546453640625E+14, 4503599627370497.5, 8.5e15]"),
            "[184524133546453.62, 4503599627370498.0, 8500000000000000.0]"
        );
    }

    #[test]
    fn large_input() {
        let items: Vec<String> = (0..200_000)
            .map(|i| format!("{{\"k{i}\": \"\u{44f}{i}\"}}"))
            .collect();
        let text = format!("[{}]", items.join(","));
        let out = canon(&text);
        assert!(out.starts_with(r#"[{"k0": "\u044f0"}, {"k1": "\u044f1"}"#));
    }

    #[test]
    fn sort_by_code_point() {
        assert_eq!(
            canon("{\"b\": 1, \"a\": 2, \"B\": 3, \"\u{e9}\": 4, \"\\u00e9x\": 5, \"\u{ffff}\": 6, \"😀\": 7, \"\\ud800\": 8, \"\u{e000}\": 9, \"\": 10}"),
            r#"{"": 10, "B": 3, "a": 2, "b": 1, "\u00e9": 4, "\u00e9x": 5, "\ud800": 8, "\ue000": 9, "\uffff": 6, "\ud83d\ude00": 7}"#
        );
    }

    #[test]
    fn duplicate_keys_last_wins() {
        assert_eq!(
            canon(r#"{"a": 1, "b": 2, "a": {"x": 1}, "b": 3, "a": [true]}"#),
            r#"{"a": [true], "b": 3}"#
        );
    }

    #[test]
    fn escapes_out() {
        assert_eq!(
            canon(r#""\" \\ \n \r \t \b \f \u0000 \u001f \u007f / \/ ~ \u0080 \u00ff""#),
            r#""\" \\ \n \r \t \b \f \u0000 \u001f \u007f / / ~ \u0080 \u00ff""#
        );
    }

    #[test]
    fn cyrillic_and_emoji() {
        assert_eq!(
            canon("{\"ключ\": \"значение\", \"emoji\": \"😀\\ud83d\\ude01\", \"bmp\": \"\u{2028}\u{feff}\u{ffff}\"}"),
            r#"{"bmp": "\u2028\ufeff\uffff", "emoji": "\ud83d\ude00\ud83d\ude01", "\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435"}"#
        );
    }

    #[test]
    fn lone_surrogates() {
        assert_eq!(
            canon(
                r#"["\ud800", "\udc00", "\ud800\u0041", "\ud83d\ud83d\ude00", "\udbff\udfff", "\uDBFF\uDFFF"]"#
            ),
            r#"["\ud800", "\udc00", "\ud800A", "\ud83d\ud83d\ude00", "\udbff\udfff", "\udbff\udfff"]"#
        );
    }

    #[test]
    fn ints() {
        assert_eq!(
            canon(
                r#"[0, -0, 1, -1, 123456789012345678901234567890123456789, -98765432109876543210987654321098765]"#
            ),
            r#"[0, 0, 1, -1, 123456789012345678901234567890123456789, -98765432109876543210987654321098765]"#
        );
    }

    #[test]
    fn floats_fixed() {
        assert_eq!(
            canon(
                r#"[1.0, 1.00, 1E0, 10e-1, 0.1, 0.0001, 1234567890123456.0, 123.456, 100.0, 1e15, 9999999999999998.0]"#
            ),
            r#"[1.0, 1.0, 1.0, 1.0, 0.1, 0.0001, 1234567890123456.0, 123.456, 100.0, 1000000000000000.0, 9999999999999998.0]"#
        );
    }

    #[test]
    fn floats_sci() {
        assert_eq!(
            canon(
                r#"[1e16, 1E+16, 1e-7, 1.5e-7, 1e-5, 0.00001, 12345678901234567.0, 1e22, 1.2e100, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308]"#
            ),
            r#"[1e+16, 1e+16, 1e-07, 1.5e-07, 1e-05, 1e-05, 1.2345678901234568e+16, 1e+22, 1.2e+100, 5e-324, 1.7976931348623157e+308, 2.2250738585072014e-308]"#
        );
    }

    #[test]
    fn floats_zero_inf() {
        assert_eq!(
            canon(
                r#"[0.0, -0.0, 0e0, -0e5, 1e400, -1e400, 1e-400, -1e-400, 0.1e-999999999999999999999, 1e0000000000000000000000000000000001]"#
            ),
            r#"[0.0, -0.0, 0.0, -0.0, Infinity, -Infinity, 0.0, -0.0, 0.0, 10.0]"#
        );
    }

    #[test]
    fn floats_rounding() {
        assert_eq!(
            canon(
                r#"[0.1000000000000000055511151231257827, 9007199254740993.0, 9007199254740993.0000000001, 2.4703282292062327e-324, 2.4703282292062328e-324, 0.30000000000000004, 1.7976931348623158e308, 1.7976931348623159e308]"#
            ),
            r#"[0.1, 9007199254740992.0, 9007199254740994.0, 0.0, 5e-324, 0.30000000000000004, 1.7976931348623157e+308, Infinity]"#
        );
    }

    #[test]
    fn literals_nested() {
        assert_eq!(
            canon(
                r#" { "t" : true , "f" : false , "n" : null , "e" : { } , "l" : [ ] , "d" : [ { "z" : [ [ ] , { } ] , "a" : null } ] } "#
            ),
            r#"{"d": [{"a": null, "z": [[], {}]}], "e": {}, "f": false, "l": [], "n": null, "t": true}"#
        );
    }

    #[test]
    fn whitespace() {
        assert_eq!(canon("\t\r\n [\n1\t,\r2 ]\n\t"), r#"[1, 2]"#);
    }

    #[test]
    fn scalar_string() {
        assert_eq!(canon(r#""abc""#), r#""abc""#);
    }

    #[test]
    fn scalar_number() {
        assert_eq!(canon(r#"-12.5e3"#), r#"-12500.0"#);
    }
}

/// Property tests: no input panics, and generated JSON canonicalizes exactly
/// as an independent reference of Python's `json.dumps(sort_keys=True)`.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum J {
        Null,
        Bool(bool),
        Int(i64),
        Str(String),
        Arr(Vec<J>),
        /// Keys in text order; duplicates allowed (the last one wins).
        Obj(Vec<(String, J)>),
    }

    fn json() -> impl Strategy<Value = J> {
        let leaf = prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::Bool),
            any::<i64>().prop_map(J::Int),
            any::<String>().prop_map(J::Str),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(J::Arr),
                vec(("[a-c]{0,2}|\\PC{0,4}", inner), 0..6).prop_map(J::Obj),
            ]
        })
    }

    /// Python's `json.dumps(value, sort_keys=True)` (ensure_ascii, default separators).
    fn reference(v: &J, out: &mut String) {
        match v {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => out.push_str(&i.to_string()),
            J::Str(s) => reference_str(s, out),
            J::Arr(items) => {
                out.push('[');
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    reference(it, out);
                }
                out.push(']');
            }
            J::Obj(pairs) => {
                let map: BTreeMap<&String, &J> = pairs.iter().map(|(k, v)| (k, v)).collect();
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    reference_str(k, out);
                    out.push_str(": ");
                    reference(v, out);
                }
                out.push('}');
            }
        }
    }

    fn reference_str(s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                ' '..='~' => out.push(c),
                _ => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{:04x}", u));
                    }
                }
            }
        }
        out.push('"');
    }

    /// Some JSON text for `v`: random whitespace, and each character of a
    /// string either raw or escaped, as a client might send it.
    fn write(v: &J, noise: &mut impl Iterator<Item = u8>, out: &mut String) {
        let ws = |out: &mut String, noise: &mut dyn Iterator<Item = u8>| {
            let n = noise.next().unwrap_or(0);
            out.push_str([" ", "", "\n", "\t ", "", "\r\n", "", ""][usize::from(n % 8)]);
        };
        ws(out, noise);
        match v {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => out.push_str(&i.to_string()),
            J::Str(s) => write_str(s, noise, out),
            J::Arr(items) => {
                out.push('[');
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(it, noise, out);
                }
                ws(out, noise);
                out.push(']');
            }
            J::Obj(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    ws(out, noise);
                    write_str(k, noise, out);
                    ws(out, noise);
                    out.push(':');
                    write(v, noise, out);
                }
                ws(out, noise);
                out.push('}');
            }
        }
        ws(out, noise);
    }

    fn write_str(s: &str, noise: &mut impl Iterator<Item = u8>, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            let escape = noise.next().unwrap_or(0).is_multiple_of(3);
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str(if escape { "\\u005C" } else { "\\\\" }),
                '/' if escape => out.push_str("\\/"),
                c if (c as u32) < 0x20 || escape => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{:04X}", u));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
            let _ = canonical_value(&bytes);
            let _ = canonical_object(&bytes);
        }

        #[test]
        fn json_like_text_never_panics(text in "[\\[\\]{}\":,0-9eE+.\\\\u tfnrlasdD8 -]{0,96}") {
            if let Ok(c) = canonical_value(text.as_bytes()) {
                prop_assert!(c.is_ascii());
                prop_assert_eq!(canonical_value(c.as_bytes()), Ok(c.clone()));
            }
        }

        #[test]
        fn generated_json_matches_the_python_reference(v in json(), noise in vec(any::<u8>(), 0..512)) {
            let mut text = String::new();
            write(&v, &mut noise.into_iter().cycle(), &mut text);
            let mut want = String::new();
            reference(&v, &mut want);
            let got = canonical_value(text.as_bytes());
            prop_assert_eq!(got.as_deref(), Ok(want.as_str()), "input {:?}", text);
            let canon = want.clone();
            // Canonical text is a fixed point.
            prop_assert_eq!(canonical_value(canon.as_bytes()), Ok(canon));
            match v {
                J::Obj(_) => prop_assert_eq!(canonical_object(text.as_bytes()), Ok(want)),
                _ => prop_assert_eq!(canonical_object(text.as_bytes()), Err(PyJsonError::NotAnObject)),
            }
        }

        #[test]
        fn floats_keep_their_value(v in any::<f64>().prop_filter("finite", |v| v.is_finite()), sci in any::<bool>()) {
            let text = if sci { format!("{v:e}") } else { format!("{v:?}") };
            let text = if text.contains(['.', 'e', 'E']) { text } else { format!("{text}.0") };
            let c = canonical_value(text.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(c.parse::<f64>().ok(), Some(v), "{} -> {}", text, c);
            prop_assert_eq!(canonical_value(c.as_bytes()), Ok(c.clone()));
        }
    }
}
