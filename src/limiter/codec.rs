//! Byte encoding of the sliding-window state, format 1.
//!
//! ```text
//! byte 0        magic/version 0xC1 (never valid in UTF-8, so no text value
//!               written with SET can start with it)
//! varint        limit      (1..=MAX_LIMIT; the limit of the last check)
//! varint        window_ms  (MIN_WINDOW_MS..=MAX_WINDOW_MS; same)
//! varint        total      (1..=MAX_LIMIT; sum of all entry counts)
//! varint        span       (newest entry time - oldest entry time)
//! entry+        oldest first, at least one:
//!                 varint tag = delta << 1 | single
//!                 varint count            only when single == 0 (2..=MAX_COST)
//!               delta is the time since the previous entry; for the first
//!               entry it is the absolute Unix time in ms.
//! ```
//!
//! Format 2 (`0xC2`) is written only when format 1 cannot say it: several
//! rules, or a retention cover wider than the one rule (mixed rules over the
//! limiter's life). Its header is
//!
//! ```text
//! byte 0        0xC2
//! varint        n          (1..=MAX_RULES; rules of the last check that wrote)
//! varint pair   limit, window_ms   n times
//! varint        keep_limit  (>= every limit: the newest units kept at most)
//! varint        keep_window (>= every window: how long a unit is kept)
//! varint        total, span, then the entries, as in format 1
//! ```
//!
//! In format 1 the cover is the one rule. Format 1 values written by earlier
//! releases stay valid and are still written when one rule covers all.
//!
//! Varints are LEB128 (7 bits per byte, low group first), canonical (no
//! trailing zero group) and at most 10 bytes. The tag holds a u64 delta plus
//! one flag bit, so it is decoded as a u128 and range-checked.
//!
//! Each allowed check appends one entry (entries at the same ms are not
//! merged, a cost-1 entry at the same ms is the single byte 0x01), so there
//! are at most `total` <= MAX_LIMIT entries.
//!
//! The oldest entry is absolute so that dropping a prefix only means
//! re-encoding one entry and copying the rest; `span` gives the newest time
//! without a scan so that appending is O(1).

use super::rule::{
    Rule, Rules, StateError, MAX_COST, MAX_LIMIT, MAX_RULES, MAX_WINDOW_MS, MIN_WINDOW_MS,
};

pub(crate) const MAGIC_V1: u8 = 0xC1;
/// Format 2: several rules and a retention cover (see the module docs).
pub(crate) const MAGIC_V2: u8 = 0xC2;

/// 10 groups of 7 bits = 70 bits, enough for a tag (65 bits).
const MAX_VARINT_LEN: usize = 10;

/// Largest encoded header: magic, count, the rules, the cover, total, span.
pub(crate) const MAX_HEADER_LEN: usize = 2 + (2 * MAX_RULES + 4) * MAX_VARINT_LEN;
/// Largest encoded entry: tag + count.
pub(crate) const MAX_ENTRY_LEN: usize = 2 * MAX_VARINT_LEN;

fn corrupt(what: &'static str) -> StateError {
    StateError::Corrupt(what)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        // Truncation is intended: the value is masked to 7 bits.
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// Appends one entry; `count` must be 1..=MAX_COST (checked by callers).
pub(crate) fn put_entry(out: &mut Vec<u8>, delta: u64, count: u64) {
    let single = count == 1;
    put_varint(out, (u128::from(delta) << 1) | u128::from(single));
    if !single {
        put_varint(out, u128::from(count));
    }
}

/// Writes the header: format 1 when the one rule is the cover, else 2.
pub(crate) fn put_header(out: &mut Vec<u8>, rules: &Rules, keep: Rule, total: u64, span: u64) {
    match rules.as_slice() {
        [one] if *one == keep => {
            out.push(MAGIC_V1);
            put_varint(out, u128::from(one.limit));
            put_varint(out, u128::from(one.window_ms));
        }
        all => {
            out.push(MAGIC_V2);
            put_varint(out, all.len() as u128);
            for r in all {
                put_varint(out, u128::from(r.limit));
                put_varint(out, u128::from(r.window_ms));
            }
            put_varint(out, u128::from(keep.limit));
            put_varint(out, u128::from(keep.window_ms));
        }
    }
    put_varint(out, u128::from(total));
    put_varint(out, u128::from(span));
}

fn read_rule(reader: &mut Reader<'_>) -> Result<Rule, StateError> {
    let limit = reader.u64()?;
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(corrupt("stored limit out of range"));
    }
    let window_ms = reader.u64()?;
    if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&window_ms) {
        return Err(corrupt("stored window out of range"));
    }
    Ok(Rule { limit, window_ms })
}

/// Bounds-checked cursor: every read goes through `get`, so no input panics.
#[derive(Clone, Debug)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn varint(&mut self) -> Result<u128, StateError> {
        // Most entries are one byte (a request within 64 ms of the last).
        if let Some(&b) = self.buf.get(self.pos) {
            if b & 0x80 == 0 {
                self.pos += 1;
                return Ok(u128::from(b));
            }
        }
        let mut v: u128 = 0;
        for i in 0..MAX_VARINT_LEN {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(corrupt("truncated varint"));
            };
            self.pos += 1;
            v |= u128::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // A zero last group means a shorter encoding existed: we
                // never write that, so it is a sign of foreign data.
                if b == 0 && i > 0 {
                    return Err(corrupt("non-canonical varint"));
                }
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn u64(&mut self) -> Result<u64, StateError> {
        u64::try_from(self.varint()?).map_err(|_| corrupt("varint out of range"))
    }
}

/// Forward iterator over the entries after a given one.
#[derive(Clone, Debug)]
pub(crate) struct Entries<'a> {
    reader: Reader<'a>,
    prev_t: u64,
    last_t: u64,
}

impl<'a> Entries<'a> {
    /// Next `(time, count)`, `None` at the end of the value.
    pub(crate) fn next_entry(&mut self) -> Result<Option<(u64, u64)>, StateError> {
        if self.reader.at_end() {
            return Ok(None);
        }
        let (t, count) = read_entry(&mut self.reader, self.prev_t)?;
        if t > self.last_t {
            return Err(corrupt("entry newer than the stored newest time"));
        }
        self.prev_t = t;
        Ok(Some((t, count)))
    }

    /// The undecoded bytes of the remaining entries (copied verbatim when
    /// a prefix is dropped).
    pub(crate) fn remaining_bytes(&self) -> &'a [u8] {
        self.reader.rest()
    }

    pub(crate) fn is_done(&self) -> bool {
        self.reader.at_end()
    }
}

fn read_entry(reader: &mut Reader<'_>, prev_t: u64) -> Result<(u64, u64), StateError> {
    let tag = reader.varint()?;
    let delta = u64::try_from(tag >> 1).map_err(|_| corrupt("entry delta out of range"))?;
    let count = if tag & 1 == 1 {
        1
    } else {
        let c = reader.u64()?;
        // count 1 always uses the flag, so 0 and 1 here are foreign data.
        if !(2..=MAX_COST).contains(&c) {
            return Err(corrupt("entry count out of range"));
        }
        c
    };
    let t = prev_t
        .checked_add(delta)
        .ok_or(corrupt("entry time overflows"))?;
    Ok((t, count))
}

/// A decoded header plus the first entry; the others are decoded lazily.
#[derive(Clone, Debug)]
pub(crate) struct Decoded<'a> {
    /// The rules of the last check that wrote.
    pub rules: Rules,
    /// What is kept: units younger than `keep.window_ms`, at most
    /// `keep.limit` of them.
    pub keep: Rule,
    pub total: u64,
    pub last_t: u64,
    /// Oldest entry `(time, count)`.
    pub first: (u64, u64),
    /// The entries after the first.
    pub rest: Entries<'a>,
    /// The encoded entries, all of them (what follows the header).
    pub entries: &'a [u8],
}

/// O(1) decode: checks everything that can be checked without a scan.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded<'_>, StateError> {
    let v2 = match bytes.first() {
        None => return Err(corrupt("empty value")),
        Some(&MAGIC_V1) => false,
        Some(&MAGIC_V2) => true,
        Some(_) => return Err(corrupt("not a rate limiter value (bad magic byte)")),
    };
    // Every valid value ends with the last byte of a varint.
    if bytes.last().is_some_and(|b| b & 0x80 != 0) {
        return Err(corrupt("truncated value"));
    }
    let mut reader = Reader { buf: bytes, pos: 1 };
    let (rules, keep) = if v2 {
        let n = reader.u64()?;
        if !(1..=MAX_RULES as u64).contains(&n) {
            return Err(corrupt("stored rule count out of range"));
        }
        let mut rules = Rules::one(read_rule(&mut reader)?);
        for _ in 1..n {
            rules
                .push(read_rule(&mut reader)?)
                .map_err(|_| corrupt("stored rule count out of range"))?;
        }
        let keep = read_rule(&mut reader)?;
        let cover = rules.cover();
        if keep.limit < cover.limit || keep.window_ms < cover.window_ms {
            return Err(corrupt("stored cover narrower than a stored rule"));
        }
        (rules, keep)
    } else {
        let rule = read_rule(&mut reader)?;
        (Rules::one(rule), rule)
    };
    let total = reader.u64()?;
    if !(1..=MAX_LIMIT).contains(&total) {
        return Err(corrupt("stored total out of range"));
    }
    let span = reader.u64()?;
    if reader.at_end() {
        return Err(corrupt("no entries"));
    }
    let entries = reader.rest();
    let first = read_entry(&mut reader, 0)?;
    let last_t = first
        .0
        .checked_add(span)
        .ok_or(corrupt("newest time overflows"))?;
    if first.1 > total {
        return Err(corrupt("entry count exceeds stored total"));
    }
    if reader.at_end() && (span != 0 || first.1 != total) {
        return Err(corrupt("single entry does not match header"));
    }
    Ok(Decoded {
        rules,
        keep,
        total,
        last_t,
        first,
        rest: Entries {
            reader,
            prev_t: first.0,
            last_t,
        },
        entries,
    })
}

/// Checks the entries after a kept one: their counts add up to `count` and
/// the newest is at `last_t` (the kept entry's own time when there are none).
/// Sums and times only grow, so comparing them at the end is enough.
pub(crate) fn check_rest(rest: &Entries<'_>, count: u64, last_t: u64) -> Result<(), StateError> {
    let overflow = corrupt("entry time overflows");
    let buf = rest.reader.rest();
    let mut i = 0;
    let mut t = rest.prev_t;
    let mut sum: u64 = 0;
    while i < buf.len() {
        // Eight one-byte entries at once (a busy limiter is mostly these).
        if let Some(word) = buf.get(i..i + 8) {
            let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            if w & 0x8181_8181_8181_8181 == 0x0101_0101_0101_0101 {
                t = t.checked_add(sum_of_deltas(w)).ok_or(overflow)?;
                sum += 8;
                i += 8;
                continue;
            }
        }
        // Most entries have cost 1 and come under 64 ms (one byte) or 8 s
        // (two bytes) after the previous one: these take a few instructions.
        let b = buf[i];
        if b & 0x81 == 0x01 {
            t = t.checked_add(u64::from(b >> 1)).ok_or(overflow)?;
            sum += 1;
            i += 1;
            continue;
        }
        if b & 0x81 == 0x81 && i + 1 < buf.len() {
            let high = buf[i + 1];
            if high & 0x80 == 0 && high != 0 {
                t = t
                    .checked_add(u64::from((b & 0x7f) >> 1) | u64::from(high) << 6)
                    .ok_or(overflow)?;
                sum += 1;
                i += 2;
                continue;
            }
        }
        let mut reader = Reader { buf, pos: i };
        let (next_t, c) = read_entry(&mut reader, t)?;
        t = next_t;
        sum = sum.saturating_add(c);
        i = reader.pos;
    }
    if sum != count {
        return Err(corrupt("entry counts do not add up to stored total"));
    }
    if t != last_t {
        return Err(corrupt("newest entry does not match stored newest time"));
    }
    Ok(())
}

/// The sum of the deltas of eight one-byte entries (`delta << 1 | 1`, each
/// delta under 64) packed in `w`, added lane-wise without a loop.
fn sum_of_deltas(w: u64) -> u64 {
    let d = (w >> 1) & 0x3f3f_3f3f_3f3f_3f3f;
    let pairs = (d & 0x00ff_00ff_00ff_00ff) + ((d >> 8) & 0x00ff_00ff_00ff_00ff);
    pairs.wrapping_mul(0x0001_0001_0001_0001) >> 48
}

/// O(n) check of the whole value: counts add up to the total and the last
/// entry is at the stored newest time. Times are sorted by construction
/// (deltas are unsigned).
pub(crate) fn validate_all(d: &Decoded<'_>) -> Result<(), StateError> {
    let mut sum = d.first.1;
    let mut newest = d.first.0;
    let mut it = d.rest.clone();
    while let Some((t, c)) = it.next_entry()? {
        sum = sum
            .checked_add(c)
            .filter(|s| *s <= d.total)
            .ok_or(corrupt("entry counts exceed stored total"))?;
        newest = t;
    }
    if sum != d.total {
        return Err(corrupt("entry counts do not add up to stored total"));
    }
    if newest != d.last_t {
        return Err(corrupt("newest entry does not match stored newest time"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_header(out: &mut Vec<u8>, limit: u64, window_ms: u64, total: u64, span: u64) {
        let r = Rule { limit, window_ms };
        super::put_header(out, &Rules::one(r), r, total, span);
    }

    fn varint_bytes(v: u128) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn eight_one_byte_entries_sum_like_one_at_a_time() {
        for deltas in [
            [0u8; 8],
            [63; 8],
            [1, 2, 3, 4, 5, 6, 7, 8],
            [63, 0, 63, 0, 1, 62, 31, 32],
        ] {
            let bytes: Vec<u8> = deltas.iter().map(|d| d << 1 | 1).collect();
            let w = u64::from_le_bytes(bytes.try_into().unwrap());
            let want: u64 = deltas.iter().map(|&d| u64::from(d)).sum();
            assert_eq!(sum_of_deltas(w), want, "{deltas:?}");
        }
    }

    #[test]
    fn varint_round_trip() {
        for v in [
            0u128,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u128::from(u64::MAX),
            (u128::from(u64::MAX) << 1) | 1,
        ] {
            let bytes = varint_bytes(v);
            assert!(bytes.len() <= MAX_VARINT_LEN);
            let mut r = Reader {
                buf: &bytes,
                pos: 0,
            };
            assert_eq!(r.varint(), Ok(v));
            assert!(r.at_end());
        }
    }

    #[test]
    fn varint_rejects_bad_encodings() {
        let cases: [&[u8]; 4] = [
            &[],           // truncated
            &[0x80],       // truncated
            &[0x80, 0x00], // non-canonical
            &[0xff; 11],   // too long
        ];
        for bytes in cases {
            let mut r = Reader { buf: bytes, pos: 0 };
            assert!(r.varint().is_err(), "{bytes:?}");
        }
        let too_big = varint_bytes(u128::from(u64::MAX) + 1);
        let mut r = Reader {
            buf: &too_big,
            pos: 0,
        };
        assert!(r.u64().is_err());
    }

    #[test]
    fn entry_round_trip() {
        let mut out = Vec::new();
        put_entry(&mut out, 0, 1);
        put_entry(&mut out, 5, 1);
        put_entry(&mut out, u64::MAX - 5, 7);
        assert_eq!(&out[..2], &[0x01, 0x0b]);
        let mut r = Reader { buf: &out, pos: 0 };
        assert_eq!(read_entry(&mut r, 100), Ok((100, 1)));
        assert_eq!(read_entry(&mut r, 100), Ok((105, 1)));
        assert_eq!(read_entry(&mut r, 5), Ok((u64::MAX, 7)));
        assert!(r.at_end());
        let mut r = Reader {
            buf: &out[2..],
            pos: 0,
        };
        assert!(read_entry(&mut r, 6).is_err(), "time overflow");
    }

    #[test]
    fn decode_checks_header() {
        let mut good = Vec::new();
        put_header(&mut good, 10, 60_000, 3, 5);
        put_entry(&mut good, 1_000, 2);
        put_entry(&mut good, 5, 1);
        let d = decode(&good).unwrap();
        assert_eq!(
            (d.keep.limit, d.keep.window_ms, d.total, d.last_t),
            (10, 60_000, 3, 1_005)
        );
        assert_eq!(d.first, (1_000, 2));
        assert_eq!(validate_all(&d), Ok(()));

        let mut bad_total = Vec::new();
        put_header(&mut bad_total, 10, 60_000, 4, 5);
        put_entry(&mut bad_total, 1_000, 2);
        put_entry(&mut bad_total, 5, 1);
        let d = decode(&bad_total).unwrap();
        assert!(validate_all(&d).is_err());

        let mut bad_span = Vec::new();
        put_header(&mut bad_span, 10, 60_000, 3, 6);
        put_entry(&mut bad_span, 1_000, 2);
        put_entry(&mut bad_span, 5, 1);
        assert!(validate_all(&decode(&bad_span).unwrap()).is_err());

        let mut small_window = Vec::new();
        put_header(&mut small_window, 10, 999, 1, 0);
        put_entry(&mut small_window, 1_000, 1);
        assert!(decode(&small_window).is_err());

        for text in [&b""[..], b"hello", b"12", b"\xc1", b"\xc1\x0a\x80"] {
            assert!(decode(text).is_err(), "{text:?}");
        }
    }
}
