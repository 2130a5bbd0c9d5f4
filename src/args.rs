//! Argument parsing shared by the commands: integers, options, errors with
//! the contract's wording.

use crate::error::CmdError;

/// A signed 64-bit integer written as Redis's `string2ll` accepts it: an
/// optional `-` and decimal digits, with no `+`, no leading zero (`0` alone is
/// fine, `-0` is not), no spaces and nothing else around. Exactly the strings
/// `v.to_string()` gives for some `i64` are accepted.
pub fn parse_ll(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits {
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        // Down to i64::MIN, whose magnitude is one more than i64::MAX.
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// An integer argument within `min..=max`, else
/// `ERR <what> is not an integer or out of range (allowed: min to max)`.
pub fn int_in(bytes: &[u8], what: &str, min: i64, max: i64) -> Result<i64, CmdError> {
    parse_ll(bytes)
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            CmdError::msg(format!(
                "ERR {what} is not an integer or out of range (allowed: {min} to {max})"
            ))
        })
}

/// Case-insensitive match of an option name.
pub fn is_token(arg: &[u8], token: &str) -> bool {
    arg.eq_ignore_ascii_case(token.as_bytes())
}

fn shown(arg: &[u8]) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(64)]).into_owned()
}

pub fn syntax_error(arg: &[u8], allowed: &str) -> CmdError {
    CmdError::msg(format!(
        "ERR syntax error near '{}': allowed options are {allowed}",
        shown(arg)
    ))
}

/// An option given last, without its value.
pub fn missing_value(option: &[u8], allowed: &str) -> CmdError {
    CmdError::msg(format!(
        "ERR syntax error: {} needs a value; allowed options are {allowed}",
        shown(option)
    ))
}

/// An option given more than once (Redis's own commands refuse that too).
pub fn given_twice(option: &[u8], allowed: &str) -> CmdError {
    CmdError::msg(format!(
        "ERR syntax error: {} is given twice; allowed options are {allowed}",
        shown(option)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_integers_in_range() {
        assert_eq!(int_in(b"900", "TTL", 1, 1000), Ok(900));
        for bad in [
            &b"0"[..],
            b"-1",
            b"1001",
            b"1.5",
            b"",
            b"abc",
            b"99999999999999999999",
            b" 1",
        ] {
            let e = int_in(bad, "TTL", 1, 1000).unwrap_err().to_string();
            assert!(
                e.starts_with("ERR TTL is not an integer or out of range"),
                "{e}"
            );
        }
    }

    #[test]
    fn integers_are_parsed_like_string2ll() {
        for (text, v) in [
            ("0", 0),
            ("7", 7),
            ("-7", -7),
            ("10", 10),
            ("-100", -100),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(parse_ll(text.as_bytes()), Some(v), "{text:?}");
        }
        for bad in [
            "",
            "-",
            "+",
            "+5",
            "+0",
            "007",
            "05",
            "00",
            "-0",
            "-05",
            "--5",
            " 5",
            "5 ",
            " ",
            "1e3",
            "0x10",
            "1.5",
            "1_000",
            "٣",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_ll(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_ll(b"5\0"), None);
        assert_eq!(parse_ll(b"\xff"), None);
    }

    #[test]
    fn int_in_refuses_what_redis_refuses() {
        for bad in [&b"+5"[..], b"007", b"05", b"-0", b"5 "] {
            let e = int_in(bad, "TTL", -10, 1000).unwrap_err().to_string();
            assert_eq!(
                e,
                "ERR TTL is not an integer or out of range (allowed: -10 to 1000)"
            );
        }
        assert_eq!(int_in(b"0", "TTL", -10, 1000), Ok(0));
        assert_eq!(int_in(b"-10", "TTL", -10, 1000), Ok(-10));
    }

    #[test]
    fn tokens_ignore_case() {
        assert!(is_token(b"ttl", "TTL"));
        assert!(!is_token(b"TTLX", "TTL"));
    }
}

/// Property tests: the argument parsers against arbitrary input.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn int_in_never_panics(bytes in vec(any::<u8>(), 0..48), a in any::<i64>(), b in any::<i64>()) {
            let _ = int_in(&bytes, "n", a, b);
        }

        #[test]
        fn int_in_accepts_exactly_the_range(v in any::<i64>(), a in any::<i64>(), b in any::<i64>()) {
            let (min, max) = (a.min(b), a.max(b));
            let got = int_in(v.to_string().as_bytes(), "n", min, max);
            if (min..=max).contains(&v) {
                prop_assert_eq!(got, Ok(v));
            } else {
                let e = got.unwrap_err().to_string();
                prop_assert!(e.starts_with("ERR n is not an integer or out of range"), "{}", e);
            }
        }

        #[test]
        fn accepted_integers_are_what_they_say(s in "[-+ 0-9a-z.]{0,24}") {
            if let Ok(v) = int_in(s.as_bytes(), "n", i64::MIN, i64::MAX) {
                prop_assert_eq!(s.parse::<i64>().ok(), Some(v));
            }
        }

        #[test]
        fn parse_ll_accepts_exactly_the_canonical_form(s in "[-+ 0-9x]{0,22}") {
            let canonical = s.parse::<i64>().ok().filter(|v| v.to_string() == s);
            prop_assert_eq!(parse_ll(s.as_bytes()), canonical, "{:?}", s);
        }

        #[test]
        fn parse_ll_reads_back_every_i64(v in any::<i64>()) {
            prop_assert_eq!(parse_ll(v.to_string().as_bytes()), Some(v));
        }

        #[test]
        fn parse_ll_never_panics(bytes in vec(any::<u8>(), 0..48)) {
            if let Some(v) = parse_ll(&bytes) {
                prop_assert_eq!(v.to_string().into_bytes(), bytes);
            }
        }

        #[test]
        fn tokens_match_ignoring_ascii_case(t in "[a-zA-Z]{1,8}", other in vec(any::<u8>(), 0..9)) {
            prop_assert!(is_token(t.to_ascii_lowercase().as_bytes(), &t.to_ascii_uppercase()));
            prop_assert_eq!(is_token(&other, &t), other.eq_ignore_ascii_case(t.as_bytes()));
        }

        #[test]
        fn syntax_errors_are_one_protocol_line(arg in vec(any::<u8>(), 0..200)) {
            let e = syntax_error(&arg, "TTL <seconds>").to_string();
            prop_assert!(e.starts_with("ERR syntax error near '"), "{}", e);
            let wire = crate::error::sanitize_error(&e);
            prop_assert!(!wire.as_bytes().iter().any(|&b| b == b'\r' || b == b'\n'));
        }
    }
}
