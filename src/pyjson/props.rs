//! Property tests: no input panics, and generated JSON canonicalizes exactly
//! as an independent reference of Python's `json.dumps(sort_keys=True)`.

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
