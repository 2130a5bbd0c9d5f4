//! Argument parsing shared by the commands: integers, options, errors with
//! the contract's wording.

use crate::command::CmdError;

/// An integer argument within `min..=max`, else
/// `ERR <what> is not an integer or out of range (allowed: min to max)`.
pub fn int_in(bytes: &[u8], what: &str, min: i64, max: i64) -> Result<i64, CmdError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
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

pub fn syntax_error(arg: &[u8], allowed: &str) -> CmdError {
    let shown = String::from_utf8_lossy(&arg[..arg.len().min(64)]).into_owned();
    CmdError::msg(format!(
        "ERR syntax error near '{shown}': allowed options are {allowed}"
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
        fn tokens_match_ignoring_ascii_case(t in "[a-zA-Z]{1,8}", other in vec(any::<u8>(), 0..9)) {
            prop_assert!(is_token(t.to_ascii_lowercase().as_bytes(), &t.to_ascii_uppercase()));
            prop_assert_eq!(is_token(&other, &t), other.eq_ignore_ascii_case(t.as_bytes()));
        }

        #[test]
        fn syntax_errors_are_one_protocol_line(arg in vec(any::<u8>(), 0..200)) {
            let e = syntax_error(&arg, "TTL <seconds>").to_string();
            prop_assert!(e.starts_with("ERR syntax error near '"), "{}", e);
            let wire = crate::command::sanitize_error(&e);
            prop_assert!(!wire.as_bytes().iter().any(|&b| b == b'\r' || b == b'\n'));
        }
    }
}
