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
