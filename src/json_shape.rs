//! Validation of the JSON texts clients store: valid UTF-8, valid JSON, and
//! the top-level shape the command expects. The text itself is kept as sent.

use serde::de::IgnoredAny;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Object,
    Array,
    Any,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Object => "an object",
            Shape::Array => "an array",
            Shape::Any => "a value",
        }
    }
}

/// `Ok` when `text` is one JSON value of the given shape; else the error reply text.
pub fn validate(text: &[u8], shape: Shape, what: &str) -> Result<(), String> {
    if std::str::from_utf8(text).is_err() {
        return Err(format!("ERR invalid JSON in {what}: not valid UTF-8"));
    }
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(text) {
        return Err(format!("ERR invalid JSON in {what}: {e}"));
    }
    let first = text.iter().find(|b| !b" \t\r\n".contains(b));
    let ok = match shape {
        Shape::Object => first == Some(&b'{'),
        Shape::Array => first == Some(&b'['),
        Shape::Any => true,
    };
    if !ok {
        return Err(format!(
            "ERR invalid JSON in {what}: expected {}",
            shape.name()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_right_shapes() {
        assert!(validate(br#"{"a":[1,2]}"#, Shape::Object, "v").is_ok());
        assert!(validate(b" [\"admin\"] ", Shape::Array, "v").is_ok());
        assert!(validate("{\"имя\":\"😀\"}".as_bytes(), Shape::Object, "v").is_ok());
        assert!(validate(b"3", Shape::Any, "v").is_ok());
    }

    #[test]
    fn refuses_bad_json_and_wrong_shapes() {
        for (text, shape) in [
            (&b"{"[..], Shape::Object),
            (b"[1,]", Shape::Array),
            (b"{} {}", Shape::Object),
            (b"[]", Shape::Object),
            (b"{}", Shape::Array),
            (b"\"x\"", Shape::Object),
            (b"", Shape::Any),
            (b"{\"a\":\"\xff\"}", Shape::Object),
            (b"NaN", Shape::Any),
        ] {
            let e = validate(text, shape, "value").unwrap_err();
            assert!(e.starts_with("ERR invalid JSON"), "{e}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(validate(deep.as_bytes(), Shape::Array, "v").is_err());
    }
}
