//! Embedding vectors: a JSON array of numbers or raw little-endian float32
//! bytes in, packed float32 (4 bytes a dimension) stored, and out as the
//! same bytes or as JSON whose numbers read back as exactly the stored
//! float32 values.

use std::fmt::Write as _;

pub const MAX_DIMS: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorError {
    /// Not a JSON array of numbers; the reason.
    Json(String),
    Dims(usize),
    NotFinite(usize),
    Fp32Length(usize),
}

impl std::fmt::Display for VectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VectorError::Json(why) => write!(f, "ERR invalid JSON in vector: {why}"),
            VectorError::Dims(n) => write!(
                f,
                "ERR vector has {n} dimensions; it must have 1 to {MAX_DIMS}"
            ),
            VectorError::NotFinite(i) => write!(
                f,
                "ERR vector element {i} is not a finite float32 (NaN, infinite or out of range)"
            ),
            VectorError::Fp32Length(n) => write!(
                f,
                "ERR FP32 vector is {n} bytes, not a multiple of 4 (little-endian float32 values)"
            ),
        }
    }
}

fn check_dims(n: usize) -> Result<(), VectorError> {
    if n == 0 || n > MAX_DIMS {
        return Err(VectorError::Dims(n));
    }
    Ok(())
}

/// Checks raw little-endian float32 bytes: a whole number of 1 to
/// [`MAX_DIMS`] values, all finite. The bytes are stored as they are.
pub fn check_fp32(bytes: &[u8]) -> Result<(), VectorError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(VectorError::Fp32Length(bytes.len()));
    }
    check_dims(bytes.len() / 4)?;
    for (i, chunk) in bytes.chunks_exact(4).enumerate() {
        let v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        if !v.is_finite() {
            return Err(VectorError::NotFinite(i));
        }
    }
    Ok(())
}

/// Packs a JSON array of numbers as little-endian float32, each number
/// rounded once to the nearest float32.
pub fn pack_json(text: &[u8]) -> Result<Vec<u8>, VectorError> {
    let json = |why: &str| VectorError::Json(why.to_string());
    let mut p = Cursor { text, at: 0 };
    p.skip_ws();
    if !p.eat(b'[') {
        return Err(json("expected an array of numbers"));
    }
    let mut out = Vec::new();
    p.skip_ws();
    if p.eat(b']') {
        return Err(VectorError::Dims(0));
    }
    loop {
        p.skip_ws();
        let number = p.number().ok_or_else(|| {
            json(&format!(
                "expected a number at byte {} (elements must be numbers)",
                p.at
            ))
        })?;
        let dims = out.len() / 4;
        if dims >= MAX_DIMS {
            return Err(VectorError::Dims(dims + 1));
        }
        // The grammar was checked: the text is ASCII and a valid number.
        let v: f32 = std::str::from_utf8(number)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| json("bad number"))?;
        if !v.is_finite() {
            return Err(VectorError::NotFinite(dims));
        }
        out.extend_from_slice(&v.to_le_bytes());
        p.skip_ws();
        if p.eat(b',') {
            continue;
        }
        if p.eat(b']') {
            break;
        }
        return Err(json(&format!("expected ',' or ']' at byte {}", p.at)));
    }
    p.skip_ws();
    if p.at != text.len() {
        return Err(json(&format!("trailing characters at byte {}", p.at)));
    }
    Ok(out)
}

struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    /// One JSON number (RFC 8259 grammar), or `None` with the cursor anywhere.
    fn number(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        self.eat(b'-');
        if self.eat(b'0') {
            if matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
        } else if self.digits() == 0 {
            return None;
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(&self.text[start..self.at])
    }
}

/// The stored bytes as float32 values; `None` when their length is not a
/// whole number of values (a value not written by the module).
pub fn unpack(bytes: &[u8]) -> Option<impl Iterator<Item = f32> + '_> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    )
}

/// A JSON array of the values, each in the shortest decimal form that reads
/// back as the same float32 (Rust's `Debug` form: `0.1`, `1e-7`, `1.0`).
pub fn render_json(values: impl Iterator<Item = f32>) -> String {
    let mut out = String::from("[");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{v:?}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packs_and_renders() {
        let b = pack_json(b" [0.1, -2, 3e2 ,1E-7, 0 ] ").unwrap();
        assert_eq!(b.len(), 20);
        assert_eq!(&b[..4], &0.1f32.to_le_bytes());
        let json = render_json(unpack(&b).unwrap());
        assert_eq!(json, "[0.1, -2.0, 300.0, 1e-7, 0.0]");
        assert_eq!(pack_json(json.as_bytes()).unwrap(), b);
    }

    #[test]
    fn refuses_bad_vectors() {
        for bad in [
            &b"[]"[..],
            b"{}",
            b"1",
            b"[1,]",
            b"[1 2]",
            b"[NaN]",
            b"[Infinity]",
            b"[-Infinity]",
            b"[1e39]",
            b"[\"1\"]",
            b"[01]",
            b"[1.]",
            b"[.5]",
            b"[+1]",
            b"[1e]",
            b"[[1]]",
            b"[1] x",
            b"[1",
            b"",
            b"[null]",
        ] {
            assert!(
                pack_json(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let too_many = format!("[{}]", vec!["1"; MAX_DIMS + 1].join(","));
        assert_eq!(
            pack_json(too_many.as_bytes()),
            Err(VectorError::Dims(MAX_DIMS + 1))
        );
        let most = format!("[{}]", vec!["1"; MAX_DIMS].join(","));
        assert_eq!(pack_json(most.as_bytes()).unwrap().len(), MAX_DIMS * 4);

        assert_eq!(check_fp32(b"abc"), Err(VectorError::Fp32Length(3)));
        assert_eq!(check_fp32(b""), Err(VectorError::Dims(0)));
        assert_eq!(
            check_fp32(&f32::NAN.to_le_bytes()),
            Err(VectorError::NotFinite(0))
        );
        let mut v = 1.5f32.to_le_bytes().to_vec();
        v.extend_from_slice(&f32::INFINITY.to_le_bytes());
        assert_eq!(check_fp32(&v), Err(VectorError::NotFinite(1)));
        assert!(check_fp32(&vec![0u8; MAX_DIMS * 4]).is_ok());
        assert!(check_fp32(&vec![0u8; MAX_DIMS * 4 + 4]).is_err());
        assert!(unpack(b"abcde").is_none());
    }

    proptest! {
        /// Every finite float32 renders to text that parses back to the same
        /// float32, read directly as float32 and read as a double and then
        /// rounded to float32 (Python's json.loads, then numpy.float32).
        #[test]
        fn prop_rendering_round_trips(bits in any::<u32>()) {
            let v = f32::from_bits(bits);
            prop_assume!(v.is_finite());
            let text = render_json(std::iter::once(v));
            let inner = &text[1..text.len() - 1];
            let direct: f32 = inner.parse().unwrap();
            prop_assert_eq!(direct.to_bits(), v.to_bits());
            let via_double = inner.parse::<f64>().unwrap() as f32;
            prop_assert_eq!(via_double.to_bits(), v.to_bits());
            let packed = pack_json(text.as_bytes()).unwrap();
            prop_assert_eq!(packed, v.to_le_bytes().to_vec());
            // Serde reads it as JSON too.
            let parsed: Vec<f64> = serde_json::from_str(&text).unwrap();
            prop_assert_eq!((parsed[0] as f32).to_bits(), v.to_bits());
        }

        /// Any text the parser accepts is valid JSON (serde agrees).
        #[test]
        fn prop_accepted_texts_are_json(s in "[ \\[\\]0-9eE.+,-]{0,24}") {
            if pack_json(s.as_bytes()).is_ok() {
                prop_assert!(serde_json::from_str::<serde_json::Value>(&s).is_ok(), "{}", s);
            }
        }
    }
}
