//! Randomized tests: the limiter against a naive reference model, decoding
//! of garbage and mutated values, and the encoded size.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::window::validate;
use super::*;

const T0: u64 = 1_700_000_000_000;

use super::check_and_store_one as check_and_store;

/// Seed from CACHEKIT_SEED when set (to replay a failure), else fixed.
fn seed(default: u64) -> u64 {
    std::env::var("CACHEKIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Reference state: one timestamp per unit, in recording order.
#[derive(Clone, Debug)]
struct Model {
    ts: Vec<u64>,
    limit: u64,
    window_ms: u64,
}

fn counted_at(ts: &[u64], now: u128, window_ms: u64) -> Vec<u64> {
    ts.iter()
        .copied()
        .filter(|&t| u128::from(t) + u128::from(window_ms) > now)
        .collect()
}

fn left(t: u64, window_ms: u64, now: u64) -> u128 {
    (u128::from(t) + u128::from(window_ms)).saturating_sub(u128::from(now))
}

fn sat_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn sat_i64(v: u128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The decision and the new state (when allowed), computed naively.
fn model_check(old: Option<&Model>, now: u64, rule: Rule, cost: u64) -> (Decision, Option<Model>) {
    let all: &[u64] = old.map_or(&[], |m| &m.ts);
    let live = counted_at(all, u128::from(now), rule.window_ms);
    let count = live.len() as u64;
    if count + cost <= rule.limit {
        let rec = all.last().map_or(now, |&newest| newest.max(now));
        let mut ts = live;
        ts.extend(std::iter::repeat_n(rec, cost as usize));
        let d = Decision {
            allowed: true,
            current_count: count + cost,
            limit: rule.limit,
            remaining: rule.limit as i64 - (count + cost) as i64,
            retry_after_ms: 0,
            reset_after_ms: sat_u64(left(ts[0], rule.window_ms, now)),
        };
        let m = Model {
            ts,
            limit: rule.limit,
            window_ms: rule.window_ms,
        };
        return (d, Some(m));
    }
    let retry = if cost > rule.limit {
        -1
    } else {
        // Brute force over the instants at which some unit leaves.
        let mut candidates: Vec<u128> =
            live.iter().map(|&t| left(t, rule.window_ms, now)).collect();
        candidates.sort_unstable();
        let d = candidates
            .into_iter()
            .find(|&d| {
                counted_at(&live, u128::from(now) + d, rule.window_ms).len() as u64 + cost
                    <= rule.limit
            })
            .expect("some wait frees enough");
        assert!(d > 0);
        sat_i64(d)
    };
    let d = Decision {
        allowed: false,
        current_count: count,
        limit: rule.limit,
        remaining: rule.limit as i64 - count as i64,
        retry_after_ms: retry,
        reset_after_ms: live
            .first()
            .map_or(0, |&t| sat_u64(left(t, rule.window_ms, now))),
    };
    (d, None)
}

fn model_expire(m: &Model) -> u64 {
    let newest = *m.ts.last().expect("non-empty");
    let exact = u128::from(newest) + u128::from(m.window_ms);
    sat_u64(exact.div_ceil(1000) * 1000)
}

fn random_rule(rng: &mut StdRng) -> Rule {
    let limit = match rng.gen_range(0..10) {
        0..=2 => rng.gen_range(1..=5),
        3..=7 => rng.gen_range(1..=30),
        _ => rng.gen_range(1..=300),
    };
    let window_ms = match rng.gen_range(0..20) {
        0..=5 => MIN_WINDOW_MS,
        6..=17 => rng.gen_range(MIN_WINDOW_MS..=20_000),
        18 => rng.gen_range(MIN_WINDOW_MS..=MAX_WINDOW_MS),
        _ => MAX_WINDOW_MS,
    };
    Rule { limit, window_ms }
}

fn random_cost(rng: &mut StdRng, limit: u64) -> u64 {
    match rng.gen_range(0..20) {
        0..=11 => 1,
        12..=17 => rng.gen_range(1..=limit),
        18 => limit,
        _ => rng.gen_range(limit + 1..=limit + 3),
    }
}

fn random_step(rng: &mut StdRng, now: u64, window_ms: u64, limit: u64) -> u64 {
    match rng.gen_range(0..20) {
        0..=4 => now,
        5..=9 => now.saturating_add(rng.gen_range(1..=10)),
        10..=14 => now.saturating_add(rng.gen_range(1..=(2 * window_ms / limit).max(1))),
        15..=16 => now.saturating_add(rng.gen_range(0..=window_ms)),
        17 => now.saturating_add(rng.gen_range(window_ms..=3 * window_ms)),
        // The clock goes backwards.
        _ => now.saturating_sub(rng.gen_range(1..=window_ms)),
    }
}

/// What the random runs went through, to show they cover the cases.
#[derive(Debug, Default)]
struct Stats {
    checks: usize,
    allowed: usize,
    denied_retry: usize,
    denied_never: usize,
    clock_back: usize,
    rewrites: usize,
}

/// One random sequence checked step by step against the model.
fn run_sequence(rng: &mut StdRng, policy_changes: bool, case: u64, stats: &mut Stats) {
    let mut rule = random_rule(rng);
    let fixed_rule = rule;
    let mut now = match rng.gen_range(0..20) {
        0 => rng.gen_range(0..5_000),
        1 => u64::MAX - rng.gen_range(0..3 * rule.window_ms),
        _ => T0 + rng.gen_range(0..1_000_000_000),
    };
    let mut state: Option<Vec<u8>> = None;
    let mut model: Option<Model> = None;
    // (recording time, cost) of every admitted check.
    let mut admitted: Vec<(u64, u64)> = Vec::new();
    let steps = rng.gen_range(1..=150);
    for step in 0..steps {
        let ctx = format!("case {case} step {step} now {now} rule {rule:?}");
        if policy_changes && rng.gen_range(0..15) == 0 {
            rule = random_rule(rng);
        }
        let cost = random_cost(rng, rule.limit);
        let old = state.as_deref();
        let mut out = vec![0xAA; 3];
        let d = check(old, now, rule, cost, Some(&mut out)).expect(&ctx);
        assert_eq!(peek(old, now, rule, cost).expect(&ctx), d, "{ctx}: peek");
        let (want, new_model) = model_check(model.as_ref(), now, rule, cost);
        assert_eq!(d, want, "{ctx}: cost {cost}");
        stats.checks += 1;
        match d.retry_after_ms {
            0 => stats.allowed += 1,
            -1 => stats.denied_never += 1,
            _ => stats.denied_retry += 1,
        }
        if model
            .as_ref()
            .and_then(|m| m.ts.last())
            .is_some_and(|&t| t > now)
        {
            stats.clock_back += 1;
        }
        let mut stored = Vec::new();
        let (d2, effect) = check_and_store(old, now, rule, cost, &mut stored).expect(&ctx);
        assert_eq!(d2, d, "{ctx}: check_and_store");
        // A denied check under another rule than the stored one, with a
        // window at least as long, stores the same entries under its rule
        // (Effect::Rewrite).
        let rewrite_model = match (d.allowed, model.as_ref()) {
            (false, Some(o))
                if (o.limit, o.window_ms) != (rule.limit, rule.window_ms)
                    && rule.window_ms >= o.window_ms =>
            {
                Some(Model {
                    ts: o.ts.clone(),
                    limit: rule.limit,
                    window_ms: rule.window_ms,
                })
            }
            _ => None,
        };
        let mut rewritten = None;
        let expiry = match effect {
            Effect::Store(e) => Some(e),
            Effect::Rewrite(e) => {
                let m = rewrite_model.clone().expect("the model rewrites too");
                let o = model.as_ref().expect("a stored state");
                assert_eq!(
                    e,
                    Expiry {
                        at_ms: model_expire(&m),
                        changed: model_expire(&m) != model_expire(o)
                    },
                    "{ctx}: rewrite expiry"
                );
                assert_eq!(stored, out, "{ctx}: check wrote the rewrite");
                let mut replayed = Vec::new();
                let replay = record(old, now, rule, 0, &mut replayed).expect(&ctx);
                assert_eq!(replayed, stored, "{ctx}: record 0 bytes");
                assert_eq!(replay, Some(e), "{ctx}: record 0 expiry");
                stats.rewrites += 1;
                rewritten = Some((stored.clone(), m));
                None
            }
            Effect::Nothing => {
                assert!(rewrite_model.is_none(), "{ctx}: no rewrite");
                None
            }
        };
        assert_eq!(
            expiry.is_some(),
            d.allowed,
            "{ctx}: expiry only when allowed"
        );
        if d.allowed {
            assert_eq!(stored, out, "{ctx}: check_and_store bytes");
            // The returned expiry is the new state's, and "changed" says
            // whether the old state implied another one.
            let at = expire_at_ms(&out).expect(&ctx);
            let old_at = old.map(|o| expire_at_ms(o).expect(&ctx));
            assert_eq!(
                expiry,
                Some(Expiry {
                    at_ms: at,
                    changed: old_at != Some(at)
                }),
                "{ctx}: expiry"
            );
            let mut replayed = Vec::new();
            let replay_expiry = record(old, now, rule, cost, &mut replayed).expect(&ctx);
            assert_eq!(replayed, out, "{ctx}: record bytes");
            assert_eq!(replay_expiry, expiry, "{ctx}: record expiry");
            let m = new_model.expect("model allowed");
            let rec = *m.ts.last().expect("non-empty");
            admitted.push((rec, cost));
            state = Some(out);
            model = Some(m);
        } else {
            if rewritten.is_none() {
                assert_eq!(out, vec![0xAA; 3], "{ctx}: denied check wrote");
            }
            // Waiting exactly retry_after_ms is enough, one ms less is not.
            if let Ok(wait) = u64::try_from(d.retry_after_ms) {
                if let Some(at) = now.checked_add(wait) {
                    assert!(
                        peek(old, at, rule, cost).expect(&ctx).allowed,
                        "{ctx}: retry"
                    );
                    assert!(
                        !peek(old, at - 1, rule, cost).expect(&ctx).allowed,
                        "{ctx}: early"
                    );
                }
            }
            if let Some((bytes, m)) = rewritten {
                state = Some(bytes);
                model = Some(m);
            }
        }
        if let (Some(s), Some(m)) = (&state, &model) {
            validate(s).expect(&ctx);
            for at in [now, now.saturating_add(rng.gen_range(0..=m.window_ms))] {
                let got = info(s, at).expect(&ctx);
                let ts = counted_at(&m.ts, u128::from(at), m.window_ms);
                assert_eq!(got.timestamps, ts, "{ctx}: info at {at}");
                assert_eq!(
                    (got.count, got.limit, got.window_ms),
                    (ts.len() as u64, m.limit, m.window_ms),
                    "{ctx}: info header"
                );
            }
            let exp = expire_at_ms(s).expect(&ctx);
            assert_eq!(exp, model_expire(m), "{ctx}: expire");
            assert!(exp.is_multiple_of(1000) || exp == u64::MAX);
            for &t in &m.ts {
                assert!(
                    u128::from(exp)
                        >= (u128::from(t) + u128::from(m.window_ms)).min(u128::from(u64::MAX))
                );
            }
        }
        now = random_step(rng, now, rule.window_ms, rule.limit);
    }
    if !policy_changes {
        // No window of recorded times ever holds more than `limit`.
        for &(end, _) in &admitted {
            let inside: u64 = admitted
                .iter()
                .filter(|(t, _)| {
                    *t <= end && u128::from(*t) + u128::from(fixed_rule.window_ms) > u128::from(end)
                })
                .map(|(_, c)| c)
                .sum();
            assert!(
                inside <= fixed_rule.limit,
                "case {case}: {inside} admitted in window ending {end}"
            );
        }
    }
}

#[test]
fn random_sequences_match_model() {
    let mut rng = StdRng::seed_from_u64(seed(0x5eed_0001));
    let mut stats = Stats::default();
    for case in 0..3_000 {
        run_sequence(&mut rng, false, case, &mut stats);
    }
    println!("fixed rule, 3000 sequences: {stats:?}");
    assert_eq!(stats.rewrites, 0, "a rewrite needs a rule change");
}

// Rule changes between checks are covered by `multi_tests`, against the
// full history.

/// Runs every entry point on `bytes`; only panics matter here.
fn poke(rng: &mut StdRng, bytes: &[u8]) -> bool {
    let rule = random_rule(rng);
    let now = match rng.gen_range(0..3) {
        0 => rng.gen(),
        1 => T0 + rng.gen_range(0..100_000),
        _ => rng.gen_range(0..100_000),
    };
    let cost = random_cost(rng, rule.limit);
    let mut out = Vec::new();
    let _ = check(Some(bytes), now, rule, cost, Some(&mut out));
    let _ = peek(Some(bytes), now, rule, cost);
    let _ = record(Some(bytes), now, rule, cost, &mut out);
    let _ = info(bytes, now);
    let _ = expire_at_ms(bytes);
    let valid = validate(bytes).is_ok();
    if valid {
        // A value that passes full validation behaves like a real state.
        let i = info(bytes, now).expect("valid info");
        assert_eq!(i.count as usize, i.timestamps.len());
        assert!(expire_at_ms(bytes).is_ok());
        let mut out = Vec::new();
        if check(Some(bytes), now, rule, cost, Some(&mut out))
            .expect("valid check")
            .allowed
        {
            validate(&out).expect("output of a valid state is valid");
        }
    }
    valid
}

/// A valid state built by a short random run.
fn random_valid_state(rng: &mut StdRng) -> Vec<u8> {
    let rule = random_rule(rng);
    let mut now = T0 + rng.gen_range(0..1_000_000);
    let mut state: Option<Vec<u8>> = None;
    for _ in 0..rng.gen_range(1..40) {
        let mut out = Vec::new();
        let cost = random_cost(rng, rule.limit);
        if check(state.as_deref(), now, rule, cost, Some(&mut out))
            .expect("check")
            .allowed
        {
            state = Some(out);
        }
        now = random_step(rng, now, rule.window_ms, rule.limit);
    }
    state.unwrap_or_else(|| {
        let mut out = Vec::new();
        record(None, now, rule, 1, &mut out).expect("record");
        out
    })
}

#[test]
fn garbage_never_panics() {
    let mut rng = StdRng::seed_from_u64(seed(0x5eed_0003));
    let mut accepted = 0;
    for _ in 0..20_000 {
        let len = rng.gen_range(0..48);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if rng.gen_bool(0.5) {
            if let Some(b) = bytes.first_mut() {
                *b = 0xC1;
            }
        }
        accepted += usize::from(poke(&mut rng, &bytes));
    }
    println!("random bytes: {accepted} of 20000 pass full validation");
}

#[test]
fn mutated_states_never_panic() {
    let mut rng = StdRng::seed_from_u64(seed(0x5eed_0004));
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..20_000 {
        let mut bytes = random_valid_state(&mut rng);
        for _ in 0..rng.gen_range(1..=3) {
            let len = bytes.len();
            match rng.gen_range(0..6) {
                0 if len > 0 => {
                    let i = rng.gen_range(0..len);
                    bytes[i] ^= 1 << rng.gen_range(0..8);
                }
                1 if len > 0 => {
                    let i = rng.gen_range(0..len);
                    bytes[i] = rng.gen();
                }
                2 => bytes.truncate(rng.gen_range(0..=len)),
                3 => bytes.insert(rng.gen_range(0..=len), rng.gen()),
                4 if len > 0 => {
                    bytes.remove(rng.gen_range(0..len));
                }
                _ => {
                    let extra: Vec<u8> = (0..rng.gen_range(1..8)).map(|_| rng.gen()).collect();
                    bytes.extend(extra);
                }
            }
        }
        if poke(&mut rng, &bytes) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    println!("mutated states: {rejected} rejected, {accepted} still pass full validation");
}

#[test]
fn text_values_are_never_states() {
    let mut rng = StdRng::seed_from_u64(seed(0x5eed_0005));
    for _ in 0..10_000 {
        let len = rng.gen_range(0..40);
        let s: String = (0..len).map(|_| rng.gen::<char>()).collect();
        assert!(matches!(
            validate(s.as_bytes()),
            Err(StateError::Corrupt(_))
        ));
        assert!(peek(
            Some(s.as_bytes()),
            T0,
            Rule {
                limit: 5,
                window_ms: 1_000
            },
            1
        )
        .is_err());
    }
}

#[test]
fn encoded_size() {
    let rule = Rule {
        limit: 100,
        window_ms: 60_000,
    };
    let mut rng = StdRng::seed_from_u64(seed(0x5eed_0006));
    let fill = |times: &[u64], cost: u64| -> Vec<u8> {
        let mut state: Option<Vec<u8>> = None;
        for &t in times {
            let mut out = Vec::new();
            let r = Rule {
                limit: rule.limit.max(cost * times.len() as u64),
                ..rule
            };
            assert!(
                check(state.as_deref(), t, r, cost, Some(&mut out))
                    .unwrap()
                    .allowed
            );
            state = Some(out);
        }
        state.unwrap()
    };
    let even: Vec<u64> = (0..100).map(|i| T0 + i * 600).collect();
    let mut random: Vec<u64> = (0..100).map(|_| T0 + rng.gen_range(0..60_000)).collect();
    random.sort_unstable();
    let burst = vec![T0; 100];
    let even_len = fill(&even, 1).len();
    let random_len = fill(&random, 1).len();
    let burst_len = fill(&burst, 1).len();
    let costly_len = fill(&even[..10], 10).len();
    let thousand: Vec<u64> = (0..1000).map(|i| T0 + i * 60).collect();
    let thousand_len = fill(&thousand, 1).len();
    println!("100 x cost 1, evenly over 60 s: {even_len} bytes");
    println!("100 x cost 1, random over 60 s: {random_len} bytes");
    println!("100 x cost 1, same ms: {burst_len} bytes");
    println!("10 x cost 10 over 6 s: {costly_len} bytes");
    println!("1000 x cost 1 over 60 s: {thousand_len} bytes");
    assert!(even_len < 400 && random_len < 400 && burst_len < 400);
}
