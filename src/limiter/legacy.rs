//! The state the original Python `RateLimiter` left at a limiter key: a
//! JSON array of integer Unix-second timestamps (`json.dumps(list)`), read
//! as one counted request per element at `second * 1000` ms.

use super::codec;
use super::rule::{Rules, StateError, MAX_LIMIT};

/// Most elements read from such a list: no limit allows more.
pub const MAX_LEGACY_ELEMENTS: usize = MAX_LIMIT as usize;
/// Largest timestamp accepted (seconds): far beyond any clock, small enough
/// that `* 1000` fits every computation.
const MAX_LEGACY_SECONDS: u64 = 100_000_000_000;

/// Whether a value looks like such a list (it is parsed, and may still be
/// refused, by [`from_legacy`]). The module's own format never starts
/// with `[` or a space.
pub fn is_legacy(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[')
        && bytes
            .first()
            .is_some_and(|&b| b == b'[' || b.is_ascii_whitespace())
}

fn bad(why: &'static str) -> StateError {
    StateError::Corrupt(why)
}

/// Parses the list strictly: integers only (no sign, fraction or
/// exponent), at most [`MAX_LEGACY_ELEMENTS`] of them. O(length).
fn parse(bytes: &[u8]) -> Result<Vec<u64>, StateError> {
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while bytes.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if bytes.get(i) != Some(&b'[') {
        return Err(bad("not a JSON array"));
    }
    i += 1;
    skip_ws(&mut i);
    if bytes.get(i) == Some(&b']') {
        i += 1;
    } else {
        loop {
            skip_ws(&mut i);
            if bytes.get(i) == Some(&b'-') {
                return Err(bad("legacy list holds a negative timestamp"));
            }
            let start = i;
            let mut v: u64 = 0;
            while let Some(&b) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
                v = v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                    .filter(|v| *v <= MAX_LEGACY_SECONDS)
                    .ok_or(bad("legacy list holds a timestamp out of range"))?;
                i += 1;
            }
            if i == start {
                return Err(bad("legacy list holds something other than an integer"));
            }
            // A leading zero is not JSON (and not what json.dumps writes).
            if bytes.get(start) == Some(&b'0') && i - start > 1 {
                return Err(bad("legacy list holds something other than an integer"));
            }
            if out.len() >= MAX_LEGACY_ELEMENTS {
                return Err(bad("legacy list longer than 1000000 elements"));
            }
            out.push(v * 1000);
            skip_ws(&mut i);
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(b']') => {
                    i += 1;
                    break;
                }
                _ => return Err(bad("legacy list holds something other than an integer")),
            }
        }
    }
    skip_ws(&mut i);
    if i != bytes.len() {
        return Err(bad("text after the legacy JSON array"));
    }
    Ok(out)
}

/// The module's state holding the list's requests under `rules`, or `None`
/// for an empty list. Timestamps are sorted; equal ones make one entry.
/// A timestamp in the future counts from that time on, like any other.
pub fn from_legacy(bytes: &[u8], rules: &Rules) -> Result<Option<Vec<u8>>, StateError> {
    rules.validate()?;
    let mut ts = parse(bytes)?;
    ts.sort_unstable();
    let (Some(&first), Some(&last)) = (ts.first(), ts.last()) else {
        return Ok(None);
    };
    let mut cover = rules.cover();
    cover.limit = cover.limit.max(ts.len() as u64);
    let mut out = Vec::with_capacity(codec::MAX_HEADER_LEN + ts.len() * 2);
    codec::put_header(&mut out, rules, cover, ts.len() as u64, last - first);
    let mut prev = 0;
    let mut i = 0;
    while let Some(&t) = ts.get(i) {
        let run = ts
            .get(i..)
            .map_or(1, |r| r.iter().take_while(|&&x| x == t).count());
        codec::put_entry(&mut out, t - prev, run as u64);
        prev = t;
        i += run;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::{info, peek_rules, Rule};

    fn rules() -> Rules {
        Rules::one(Rule::new(5, 60_000).unwrap())
    }

    #[test]
    fn reads_what_json_dumps_writes() {
        let v = b"[1765100000, 1765100003, 1765100003]";
        assert!(is_legacy(v));
        let s = from_legacy(v, &rules()).unwrap().unwrap();
        let i = info(&s, 1_765_100_010_000).unwrap();
        assert_eq!(
            i.timestamps,
            vec![1_765_100_000_000, 1_765_100_003_000, 1_765_100_003_000]
        );
        let d = peek_rules(Some(&s), 1_765_100_010_000, &rules(), 2).unwrap();
        assert!(d.allowed);
        assert_eq!(d.current_count, 5);
        let d = peek_rules(Some(&s), 1_765_100_010_000, &rules(), 3).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 50_000);
        assert_eq!(from_legacy(b"[]", &rules()).unwrap(), None);
        assert!(from_legacy(b" [ 3 ,1 ] ", &rules()).unwrap().is_some());
    }

    #[test]
    fn refuses_what_is_not_a_list_of_integers() {
        for v in [
            &b"[1.5]"[..],
            b"[-1]",
            b"[\"1\"]",
            b"[1,]",
            b"[1",
            b"[1] x",
            b"[01]",
            b"[1e3]",
            b"[null]",
            b"[999999999999999999999]",
        ] {
            assert!(
                matches!(from_legacy(v, &rules()), Err(StateError::Corrupt(_))),
                "{v:?}"
            );
        }
        assert!(!is_legacy(b"\xc1\x01"));
        assert!(!is_legacy(b"x["));
    }

    #[test]
    fn a_million_elements_is_the_most() {
        let mut v = String::from("[");
        for _ in 0..MAX_LEGACY_ELEMENTS {
            v.push_str("1,");
        }
        v.push_str("1]");
        assert!(from_legacy(v.as_bytes(), &rules()).is_err());
    }
}
