//! Number text to a correctly rounded `f64`, whatever the number of digits
//! or the size of the exponent.

/// Correctly rounded value of a JSON number with fraction or exponent.
///
/// The text is rewritten as `0.<significant digits>e<small exponent>`
/// before `f64` parsing, so huge exponents or millions of digits can
/// neither overflow exponent arithmetic nor hit parser shortcuts.
pub(super) fn parse_float(text: &[u8]) -> f64 {
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exp_text) = match body.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => (
            body.get(..i).unwrap_or(&[]),
            body.get(i + 1..).unwrap_or(&[]),
        ),
        None => (body, &[][..]),
    };
    let (int_part, frac_part) = match mantissa.iter().position(|&b| b == b'.') {
        Some(i) => (
            mantissa.get(..i).unwrap_or(&[]),
            mantissa.get(i + 1..).unwrap_or(&[]),
        ),
        None => (mantissa, &[][..]),
    };
    // Saturate far beyond any exponent that can still matter.
    const EXP_CAP: i64 = 1 << 50;
    let (exp_negative, exp_digits) = match exp_text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, exp_text),
    };
    let exp_abs = exp_digits.iter().fold(0i64, |acc, &d| {
        (acc * 10 + i64::from(d.wrapping_sub(b'0'))).min(EXP_CAP)
    });
    let exp = if exp_negative { -exp_abs } else { exp_abs };

    let leading_zeros = int_part
        .iter()
        .chain(frac_part)
        .take_while(|&&d| d == b'0')
        .count();
    let total = int_part.len() + frac_part.len();
    let magnitude = if leading_zeros == total {
        0.0
    } else {
        // value = 0.<digits from first nonzero> * 10^point
        let point = int_part.len() as i64 - leading_zeros as i64 + exp;
        if point > 400 {
            f64::INFINITY
        } else if point < -400 {
            0.0
        } else {
            let mut normalized = String::with_capacity(total - leading_zeros + 8);
            normalized.push_str("0.");
            for &d in int_part.iter().chain(frac_part).skip(leading_zeros) {
                normalized.push(char::from(d));
            }
            normalized.push('e');
            normalized.push_str(&point.to_string());
            normalized.parse::<f64>().unwrap_or(f64::NAN)
        }
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use crate::pyjson::testing::*;

    #[test]
    fn long_float_mantissas() {
        // Verified: python3 prints 0.1111111111111111 and 1.0.
        assert_eq!(
            canon(&format!("{}e-70000", "1".repeat(70000))),
            "0.1111111111111111"
        );
        assert_eq!(canon(&format!("0.{}1e70001", "0".repeat(70000))), "1.0");
    }

    #[test]
    fn floats_rounding() {
        assert_eq!(
            canon(
                r#"[0.1000000000000000055511151231257827, 9007199254740993.0, 9007199254740993.0000000001, 2.4703282292062327e-324, 2.4703282292062328e-324, 0.30000000000000004, 1.7976931348623158e308, 1.7976931348623159e308]"#
            ),
            r#"[0.1, 9007199254740992.0, 9007199254740994.0, 0.0, 5e-324, 0.30000000000000004, 1.7976931348623157e+308, Infinity]"#
        );
    }
}
