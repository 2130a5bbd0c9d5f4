//! Property tests of the state decoding: arbitrary and near-valid bytes never
//! panic, a valid state stays valid through every operation, and `record`
//! reproduces an allowed check's bytes exactly.

use proptest::collection::vec;
use proptest::prelude::*;

use super::codec;
use super::window::validate;
use super::*;

const T0: u64 = 1_700_000_000_000;

fn rule() -> impl Strategy<Value = Rule> {
    prop_oneof![
        (1u64..=20, 1u64..=5).prop_map(|(l, w)| Rule {
            limit: l,
            window_ms: w * 1000
        }),
        (1..=MAX_LIMIT, MIN_WINDOW_MS..=MAX_WINDOW_MS)
            .prop_map(|(limit, window_ms)| Rule { limit, window_ms }),
    ]
}

/// Bytes that look like a state: the magic byte, varints, entries; sometimes
/// consistent, often not.
fn state_like() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        vec((any::<u64>(), 1u64..=4), 1..6),
        vec(any::<u8>(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(limit, window, total, span, entries, tail, small)| {
            let mut out = Vec::new();
            let (limit, window, total, span) = if small {
                (limit % 50, window % 10_000, total % 50, span % 10_000)
            } else {
                (limit, window, total, span)
            };
            let r = Rule {
                limit,
                window_ms: window,
            };
            codec::put_header(&mut out, &crate::limiter::Rules::one(r), r, total, span);
            for (i, (delta, count)) in entries.iter().enumerate() {
                let delta = if i == 0 {
                    T0 + delta % 10_000
                } else {
                    delta % 5_000
                };
                codec::put_entry(&mut out, delta, *count);
            }
            out.extend_from_slice(&tail);
            out
        })
}

/// Runs every operation on `bytes`; none may panic, and a state that
/// validates must come out of an allowed check still valid.
fn exercise(bytes: &[u8], now: u64, rule: Rule, cost: u64) -> Result<(), TestCaseError> {
    let valid = validate(bytes).is_ok();
    let _ = info(bytes, now);
    let _ = expire_at_ms(bytes);
    let _ = peek(Some(bytes), now, rule, cost);
    let mut out = Vec::new();
    match check(Some(bytes), now, rule, cost, Some(&mut out)) {
        Ok(d) if d.allowed && valid => {
            prop_assert!(validate(&out).is_ok(), "valid in, invalid out");
            let mut again = Vec::new();
            prop_assert!(record(Some(bytes), now, rule, cost, &mut again).is_ok());
            prop_assert_eq!(again, out);
        }
        // A check writes only what it decoded in full.
        Ok(d) if d.allowed => prop_assert!(false, "a damaged value was written"),
        Ok(_) => {}
        Err(e) => {
            prop_assert!(
                !valid || matches!(e, StateError::InvalidArgument(_)),
                "{:?}",
                e
            )
        }
    }
    let mut out = Vec::new();
    if let Ok(Some(_)) = record(Some(bytes), now, rule, cost, &mut out) {
        prop_assert!(valid, "record wrote a damaged value");
    }
    Ok(())
}

/// The state after checks at `T0` + the running sum of the steps' times,
/// with the last time; every state written validates.
fn build(steps: &[(u64, u64)], rule: Rule) -> Result<(Option<Vec<u8>>, u64), TestCaseError> {
    let mut state: Option<Vec<u8>> = None;
    let mut t = T0;
    for &(dt, cost) in steps {
        t += dt;
        let mut out = Vec::new();
        if let Ok(d) = check(state.as_deref(), t, rule, cost, Some(&mut out)) {
            if d.allowed {
                prop_assert!(validate(&out).is_ok());
                state = Some(out);
            }
        }
    }
    Ok((state, t))
}

/// Exercises `s`, then `s` with flipped bytes, then that cut short.
fn damage_and_exercise(
    mut s: Vec<u8>,
    now: u64,
    rule: Rule,
    flips: &[(usize, u8)],
    cut: usize,
) -> Result<(), TestCaseError> {
    exercise(&s, now, rule, 1)?;
    for &(at, byte) in flips {
        let i = at % s.len();
        s[i] ^= byte | 1;
    }
    exercise(&s, now, rule, 1)?;
    s.truncate(cut % (s.len() + 1));
    exercise(&s, now, rule, 1)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        mut bytes in vec(any::<u8>(), 0..64),
        magic in any::<bool>(),
        now in any::<u64>(),
        rule in rule(),
        cost in 1u64..=10,
    ) {
        if magic && !bytes.is_empty() {
            bytes[0] = codec::MAGIC_V1;
        }
        exercise(&bytes, now, rule, cost)?;
    }

    #[test]
    fn state_like_bytes_never_panic(
        bytes in state_like(),
        now_offset in 0u64..20_000,
        rule in rule(),
        cost in 1u64..=10,
    ) {
        exercise(&bytes, T0 + now_offset, rule, cost)?;
    }

    #[test]
    fn mutated_states_never_panic(
        steps in vec((0u64..3_000, 1u64..=3), 1..30),
        rule in rule(),
        flips in vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
        now in any::<u64>(),
    ) {
        let (state, _) = build(&steps, rule)?;
        if let Some(s) = state {
            damage_and_exercise(s, now, rule, &flips, cut)?;
        }
    }

    #[test]
    fn busy_states_with_damage_are_never_written(
        steps in vec((0u64..40, 1u64..=2), 8..80),
        flips in vec((any::<usize>(), any::<u8>()), 1..3),
        cut in any::<usize>(),
        later in 0u64..200,
    ) {
        // Requests under 64 ms apart: runs of one-byte entries.
        let rule = Rule { limit: 500, window_ms: 60_000 };
        let (state, t) = build(&steps, rule)?;
        if let Some(s) = state {
            damage_and_exercise(s, t + later, rule, &flips, cut)?;
        }
    }

    #[test]
    fn checks_never_count_more_than_the_limit(
        steps in vec((0u64..2_500, 1u64..=4), 1..60),
        limit in 1u64..=12,
        window_s in 1u64..=3,
    ) {
        let rule = Rule { limit, window_ms: window_s * 1000 };
        let mut state: Option<Vec<u8>> = None;
        let mut t = T0;
        for (dt, cost) in steps {
            t += dt;
            let mut out = Vec::new();
            let d = check(state.as_deref(), t, rule, cost, Some(&mut out))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(d.current_count <= limit);
            prop_assert_eq!(d.remaining, limit as i64 - d.current_count as i64);
            if d.allowed {
                let i = info(&out, t).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(i.count, d.current_count);
                prop_assert!(expire_at_ms(&out).is_ok_and(|at| at >= t));
                state = Some(out);
            }
        }
    }
}
