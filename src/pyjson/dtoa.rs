//! Python's `float.__repr__`: the shortest round-trip digits, with the exact
//! ties that David Gay's dtoa breaks toward an even digit.

/// Splits Rust's `{:e}`-style output into significant digits (no trailing
/// zeros) and decimal exponent of the first digit.
fn split_sci(sci: &str) -> (String, i64) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let mut digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, exp.parse().unwrap_or(0))
}

/// Shortest round-trip digits of a positive finite double, as Python's repr
/// (David Gay's dtoa, mode 0) chooses them.
///
/// Rust's shortest formatting finds the same digit count, but when the exact
/// value lies exactly halfway between the two closest candidates of that
/// length (e.g. 665990852861467.25) Rust rounds up while dtoa picks the even
/// last digit (665990852861467.2). Such ties are detected and redone here.
fn shortest_digits(v: f64) -> (String, i64) {
    let (digits, exp) = split_sci(&format!("{v:e}"));
    let n = digits.len();
    // Cheap filter: a tie needs an exact value of n + 1 <= 18 significant
    // digits ending in 5, which 18-digit rounding shows unchanged.
    let rounded = format!("{v:.17e}");
    let (mantissa, _) = rounded.split_once('e').unwrap_or((&rounded, "0"));
    let rounded_digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if !is_tie_at(&rounded_digits, n) {
        return (digits, exp);
    }
    // Every double's exact decimal expansion has at most 767 significant digits.
    let exact = format!("{v:.780e}");
    let (mantissa, exact_exp) = exact.split_once('e').unwrap_or((&exact, "0"));
    let exact_digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if !is_tie_at(&exact_digits, n) {
        return (digits, exp);
    }
    let exact_exp: i64 = exact_exp.parse().unwrap_or(0);
    let mut candidate: Vec<u8> = exact_digits.get(..n).unwrap_or(&[]).to_vec();
    let mut candidate_exp = exact_exp;
    if candidate.last().is_some_and(|d| (d - b'0') % 2 == 1) {
        // Round up to the even neighbour, carrying through nines.
        let mut i = candidate.len();
        loop {
            if i == 0 {
                candidate.insert(0, b'1');
                candidate.pop();
                candidate_exp += 1;
                break;
            }
            i -= 1;
            match candidate.get_mut(i) {
                Some(d) if *d == b'9' => *d = b'0',
                Some(d) => {
                    *d += 1;
                    break;
                }
                None => break,
            }
        }
    }
    let text: String = candidate.iter().map(|&d| char::from(d)).collect();
    let (candidate, candidate_exp) = split_sci(&format!("{text}e{candidate_exp}"));
    // dtoa only takes the even neighbour if it still reads back as v.
    let reads_back = format!("0.{candidate}e{}", candidate_exp + 1).parse::<f64>() == Ok(v);
    if reads_back {
        (candidate, candidate_exp)
    } else {
        (digits, exp)
    }
}

/// True when `digits` is non-zero at index `n` only, and that digit is 5.
fn is_tie_at(digits: &[u8], n: usize) -> bool {
    digits.get(n) == Some(&b'5')
        && digits
            .get(n + 1..)
            .is_some_and(|rest| rest.iter().all(|&d| d == b'0'))
}

/// Python's `float.__repr__` as used by `json.dumps`.
pub(super) fn push_float_repr(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v < 0.0 { "-Infinity" } else { "Infinity" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    if v < 0.0 {
        out.push('-');
    }
    let (digits, exp) = shortest_digits(v.abs());
    let n = digits.len() as i64;
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push_str(if exp < 0 { "e-" } else { "e+" });
        if exp.abs() < 10 {
            out.push('0');
        }
        out.push_str(&exp.abs().to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if n <= exp + 1 {
        out.push_str(&digits);
        for _ in 0..(exp + 1 - n) {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        let (int_digits, frac_digits) = digits.split_at((exp + 1) as usize);
        out.push_str(int_digits);
        out.push('.');
        out.push_str(frac_digits);
    }
}

#[cfg(test)]
mod tests {
    use crate::pyjson::testing::*;

    #[test]
    fn float_repr_ties_round_to_even() {
        // Verified with python3: dtoa breaks exact ties toward an even digit.
        assert_eq!(
            canon("[665990852861467.25, 665990852861467.75, -790812359411467.3125]"),
            "[665990852861467.2, 665990852861467.8, -790812359411467.2]"
        );
        assert_eq!(
            canon("[1.84524133546453640625E+14, 4503599627370497.5, 8.5e15]"),
            "[184524133546453.62, 4503599627370498.0, 8500000000000000.0]"
        );
    }

    #[test]
    fn floats_fixed() {
        assert_eq!(
            canon(
                r#"[1.0, 1.00, 1E0, 10e-1, 0.1, 0.0001, 1234567890123456.0, 123.456, 100.0, 1e15, 9999999999999998.0]"#
            ),
            r#"[1.0, 1.0, 1.0, 1.0, 0.1, 0.0001, 1234567890123456.0, 123.456, 100.0, 1000000000000000.0, 9999999999999998.0]"#
        );
    }

    #[test]
    fn floats_sci() {
        assert_eq!(
            canon(
                r#"[1e16, 1E+16, 1e-7, 1.5e-7, 1e-5, 0.00001, 12345678901234567.0, 1e22, 1.2e100, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308]"#
            ),
            r#"[1e+16, 1e+16, 1e-07, 1.5e-07, 1e-05, 1e-05, 1.2345678901234568e+16, 1e+22, 1.2e+100, 5e-324, 1.7976931348623157e+308, 2.2250738585072014e-308]"#
        );
    }

    #[test]
    fn floats_zero_inf() {
        assert_eq!(
            canon(
                r#"[0.0, -0.0, 0e0, -0e5, 1e400, -1e400, 1e-400, -1e-400, 0.1e-999999999999999999999, 1e0000000000000000000000000000000001]"#
            ),
            r#"[0.0, -0.0, 0.0, -0.0, Infinity, -Infinity, 0.0, -0.0, 0.0, 10.0]"#
        );
    }
}
