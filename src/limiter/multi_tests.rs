//! Several rules and rule changes against a brute-force log of the full
//! history: every admitted request, forever. The first check of a run
//! applies every rule of the run (the rules in force over the limiter's
//! life); later checks pick any of them, in any combination, and each must
//! answer exactly as the full history says.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const T0: u64 = 1_700_000_000_000;

fn seed(default: u64) -> u64 {
    std::env::var("CACHEKIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Units of the full history counted under `rule` at `now`.
fn count(history: &[u64], now: u64, rule: Rule) -> u64 {
    history
        .iter()
        .filter(|&&t| t + rule.window_ms > now)
        .count() as u64
}

/// The exact answer for `rules` at `now`: allowed, and else the wait until
/// every rule allows (-1 when the cost exceeds a limit).
fn brute(history: &[u64], now: u64, rules: &[Rule], cost: u64) -> (bool, i64) {
    if rules.iter().any(|r| cost > r.limit) {
        return (false, -1);
    }
    let ok_at = |at: u64| {
        rules
            .iter()
            .all(|r| count(history, at, *r) + cost <= r.limit)
    };
    if ok_at(now) {
        return (true, 0);
    }
    // The smallest wait is when some unit leaves some window.
    let mut waits: Vec<u64> = history
        .iter()
        .flat_map(|&t| {
            rules
                .iter()
                .map(move |r| (t + r.window_ms).saturating_sub(now))
        })
        .filter(|&w| w > 0)
        .collect();
    waits.sort_unstable();
    waits.dedup();
    // Counts only fall while nothing is admitted: the first allowing wait
    // is found by bisection (checked against its predecessor).
    let first = waits.partition_point(|&w| !ok_at(now + w));
    let wait = waits.get(first).copied().unwrap_or(u64::MAX);
    if let Some(&before) = first.checked_sub(1).and_then(|i| waits.get(i)) {
        assert!(!ok_at(now + before));
    }
    (false, wait as i64)
}

fn random_rules(rng: &mut StdRng, pool: &[Rule]) -> Rules {
    let n = rng.gen_range(1..=pool.len().min(3));
    let mut picked: Vec<Rule> = Vec::new();
    while picked.len() < n {
        let r = pool[rng.gen_range(0..pool.len())];
        if !picked.contains(&r) {
            picked.push(r);
        }
    }
    Rules::new(&picked).unwrap()
}

fn run(rng: &mut StdRng, case: u64, checked: &mut u64) {
    let mut pool: Vec<Rule> = (0..rng.gen_range(1..=5))
        .map(|_| Rule::new(rng.gen_range(1..=8), 1_000 * rng.gen_range(1..=30u64)).unwrap())
        .collect();
    pool.sort_by_key(|r| (r.limit, r.window_ms));
    pool.dedup();
    let mut now = T0 + rng.gen_range(0..1_000_000);
    let mut state: Option<Vec<u8>> = None;
    let mut history: Vec<u64> = Vec::new();
    // Rules applied (by a check that wrote, or could have) while the
    // limiter held something counted under them.
    let all = Rules::new(&pool).unwrap();
    let mut last_admitted: Option<u64> = None;
    for step in 0..rng.gen_range(1..=120) {
        let rules = if step == 0 {
            all
        } else {
            random_rules(rng, &pool)
        };
        let cost = if step == 0 { 1 } else { rng.gen_range(1..=3) };
        let mut out = Vec::new();
        let (d, effect) = check_and_store(state.as_deref(), now, &rules, cost, &mut out)
            .unwrap_or_else(|e| panic!("case {case} step {step}: {e}"));
        // Units older than every window of the run never count again: the
        // full history is kept only as far as it can matter.
        let longest = all.cover().window_ms;
        history.retain(|&t| t + longest > now);
        let (ok, wait) = brute(&history, now, rules.as_slice(), cost);
        *checked += 1;
        assert_eq!(
            (d.allowed, d.retry_after_ms),
            (ok, wait),
            "case {case} step {step} now {now} rules {rules:?} cost {cost} pool {pool:?}"
        );
        // The reply's count is the binding rule's, against the full history
        // (of which the newest `largest limit` units are kept: a denied
        // check may see that many when more were admitted under other rules).
        let kept = all.cover().limit;
        let binding = rules.as_slice().iter().find(|r| {
            let c = count(&history, now, **r);
            let c = if d.allowed { c + cost } else { c.min(kept) };
            r.limit == d.limit && c == d.current_count
        });
        assert!(binding.is_some(), "case {case} step {step}: {d:?}");
        // Never more than a limit in any window, whatever the rules.
        if d.allowed {
            for r in rules.as_slice() {
                assert!(
                    count(&history, now, *r) + cost <= r.limit,
                    "case {case} step {step}"
                );
            }
        }
        match effect {
            Effect::Store(_) => {
                history.extend(std::iter::repeat_n(now, cost as usize));
                last_admitted = Some(now);
                state = Some(out);
            }
            Effect::Rewrite(_) => state = Some(out),
            Effect::Nothing => {}
        }
        if let Some(s) = &state {
            validate(s).unwrap();
            // The key lives while any rule of the run still counts a unit,
            // and not a second longer.
            let newest = last_admitted.unwrap_or(0);
            let at = expire_at_ms(s).unwrap();
            assert!(
                at >= newest + longest && at < newest + longest + 1_000,
                "case {case} step {step}: expiry {at} newest {newest} longest {longest}"
            );
        }
        now += match rng.gen_range(0..4) {
            0 => 0,
            1 => rng.gen_range(1..500),
            2 => rng.gen_range(500..5_000),
            _ => rng.gen_range(5_000..40_000),
        };
    }
}

#[test]
fn several_rules_and_rule_changes_are_exact_against_the_full_history() {
    let mut rng = StdRng::seed_from_u64(seed(0x5eed_0003));
    let mut checked = 0;
    for case in 0..1_500 {
        run(&mut rng, case, &mut checked);
    }
    assert!(checked > 30_000, "{checked}");
}

#[test]
fn the_issue_example_admits_no_more_than_the_limit() {
    // 5 per 60 s ×5, then 5 per 1 s after 1.1 s, then 5 per 60 s ×10.
    let long = Rules::one(Rule::new(5, 60_000).unwrap());
    let short = Rules::one(Rule::new(5, 1_000).unwrap());
    let mut state: Option<Vec<u8>> = None;
    let mut admitted = 0;
    let go = |now: u64, rules: &Rules, state: &mut Option<Vec<u8>>| {
        let mut out = Vec::new();
        let (d, e) = check_and_store(state.as_deref(), now, rules, 1, &mut out).unwrap();
        if matches!(e, Effect::Store(_) | Effect::Rewrite(_)) {
            *state = Some(out);
        }
        d.allowed
    };
    for i in 0..5 {
        assert!(go(T0 + i, &long, &mut state));
    }
    assert!(go(T0 + 1_100, &short, &mut state));
    for i in 0..10 {
        admitted += u64::from(go(T0 + 1_200 + i, &long, &mut state));
    }
    assert_eq!(admitted, 0);
    // The key still lives for the 60 s window.
    let s = state.unwrap();
    assert_eq!(expire_at_ms(&s).unwrap(), T0 + 62_000);
}

#[test]
fn two_windows_reply_the_binding_rule() {
    let rules = Rules::new(&[Rule::new(2, 1_000).unwrap(), Rule::new(3, 60_000).unwrap()]).unwrap();
    let mut state: Option<Vec<u8>> = None;
    let hit = |now: u64, state: &mut Option<Vec<u8>>| {
        let mut out = Vec::new();
        let (d, e) = check_and_store(state.as_deref(), now, &rules, 1, &mut out).unwrap();
        if matches!(e, Effect::Store(_)) {
            *state = Some(out);
        }
        d
    };
    // Allowed: the rule with the fewest remaining (2/1s: 1 left vs 2).
    let d = hit(T0, &mut state);
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 2, 1));
    let d = hit(T0 + 10, &mut state);
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 2, 0));
    // Denied by the 1 s rule: wait until T0 + 1000.
    let d = hit(T0 + 20, &mut state);
    assert_eq!((d.allowed, d.limit, d.retry_after_ms), (false, 2, 980));
    // Both rules end with 0 remaining: the first one is reported.
    let d = hit(T0 + 1_000, &mut state);
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 2, 0));
    // Both deny: the 60 s rule needs the longest wait.
    let d = hit(T0 + 1_001, &mut state);
    assert_eq!((d.allowed, d.limit, d.retry_after_ms), (false, 3, 58_999));
    // cost above one limit: -1.
    let mut out = Vec::new();
    let (d, _) = check_and_store(state.as_deref(), T0, &rules, 3, &mut out).unwrap();
    assert_eq!((d.allowed, d.retry_after_ms, d.limit), (false, -1, 2));
    let i = info(state.as_deref().unwrap(), T0 + 1_001).unwrap();
    assert_eq!(i.rules, rules);
    assert_eq!(i.count, 3);
}

#[test]
fn a_limiter_under_two_windows_holding_200_requests_is_compact() {
    let rules = Rules::new(&[
        Rule::new(20, 60_000).unwrap(),
        Rule::new(200, 3_600_000).unwrap(),
    ])
    .unwrap();
    let mut state: Option<Vec<u8>> = None;
    // 200 requests spread over the hour, 20 per minute at most.
    for i in 0..200u64 {
        let mut out = Vec::new();
        let (d, _) =
            check_and_store(state.as_deref(), T0 + i * 17_000, &rules, 1, &mut out).unwrap();
        assert!(d.allowed, "{i}");
        state = Some(out);
    }
    let s = state.unwrap();
    assert_eq!(super::codec::decode(&s).unwrap().total, 200);
    // 3 bytes per request 17 s apart: the value is 627 bytes.
    assert!(s.len() <= 700, "{}", s.len());
}

#[test]
fn refund_takes_back_the_newest() {
    let r = Rule::new(5, 10_000).unwrap();
    let mut s = Vec::new();
    record(None, T0, r, 2, &mut s).unwrap();
    let mut s2 = Vec::new();
    record(Some(&s), T0 + 5, r, 1, &mut s2).unwrap();
    let mut out = Vec::new();
    match refund(&s2, T0 + 6, 2, &mut out).unwrap() {
        Refund::Store { removed, expiry } => {
            assert_eq!(removed, 2);
            assert_eq!(expiry.at_ms, T0 + 10_000);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(info(&out, T0 + 6).unwrap().timestamps, vec![T0]);
    // More than counted: everything, and the key goes.
    assert_eq!(
        refund(&out, T0 + 6, 5, &mut Vec::new()).unwrap(),
        Refund::Delete { removed: 1 }
    );
    // Nothing counted any more: nothing to take back.
    assert_eq!(
        refund(&out, T0 + 20_000, 1, &mut Vec::new()).unwrap(),
        Refund::Nothing
    );
    assert!(refund(&out, T0, 0, &mut Vec::new()).is_err());
}
