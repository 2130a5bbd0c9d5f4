//! Printing a [`Value`] as `json.dumps(..., sort_keys=True)` does, with
//! `ensure_ascii` escaping.

use super::Value;

pub(super) fn render_top(value: &Value, input_len: usize) -> String {
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
    use crate::pyjson::testing::*;

    #[test]
    fn raw_del_and_c1_are_escaped() {
        assert_eq!(canon("\"\u{7f}\u{80}\""), r#""\u007f\u0080""#);
    }

    #[test]
    fn sort_by_code_point() {
        assert_eq!(
            canon("{\"b\": 1, \"a\": 2, \"B\": 3, \"\u{e9}\": 4, \"\\u00e9x\": 5, \"\u{ffff}\": 6, \"😀\": 7, \"\\ud800\": 8, \"\u{e000}\": 9, \"\": 10}"),
            r#"{"": 10, "B": 3, "a": 2, "b": 1, "\u00e9": 4, "\u00e9x": 5, "\ud800": 8, "\ue000": 9, "\uffff": 6, "\ud83d\ude00": 7}"#
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
    fn ints() {
        assert_eq!(
            canon(
                r#"[0, -0, 1, -1, 123456789012345678901234567890123456789, -98765432109876543210987654321098765]"#
            ),
            r#"[0, 0, 1, -1, 123456789012345678901234567890123456789, -98765432109876543210987654321098765]"#
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
}
