//! The JSON parser: UTF-8 text to [`Value`], with Python's `json.loads` rules
//! (lone surrogates kept, duplicate keys: last wins) and the module's limits.

use std::collections::BTreeMap;

use super::dtoa::push_float_repr;
use super::float::parse_float;
use super::{PyJsonError, Value, MAX_DEPTH, MAX_INT_DIGITS};

pub(super) fn parse(text: &[u8]) -> Result<Value, PyJsonError> {
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

#[cfg(test)]
mod tests {
    use crate::pyjson::testing::*;
    use crate::pyjson::*;

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
    fn large_input() {
        let items: Vec<String> = (0..200_000)
            .map(|i| format!("{{\"k{i}\": \"\u{44f}{i}\"}}"))
            .collect();
        let text = format!("[{}]", items.join(","));
        let out = canon(&text);
        assert!(out.starts_with(r#"[{"k0": "\u044f0"}, {"k1": "\u044f1"}"#));
    }

    #[test]
    fn duplicate_keys_last_wins() {
        assert_eq!(
            canon(r#"{"a": 1, "b": 2, "a": {"x": 1}, "b": 3, "a": [true]}"#),
            r#"{"a": [true], "b": 3}"#
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
