//! Exact sliding-window rate limiter: the pure decision logic over the
//! stored byte string (see `codec` for the layout).
//!
//! Semantics:
//! - A request admitted at `t` (Unix ms) is counted at `now` under a rule
//!   iff `t + window_ms > now`.
//! - A check of cost `c` under one or more rules is allowed iff, for every
//!   rule, `counted + c <= limit`. An allowed check records `c` units at one
//!   time, once; a denied check records nothing.
//! - Every operation is a deterministic function of (old bytes, arguments),
//!   so a primary and its replicas given the same `now` produce the same
//!   bytes.
//!
//! Retention (mixed rules): the state keeps a *cover*, the longest window
//! and the largest limit among the rules applied to it since it last held
//! nothing counted. A unit is dropped only once it has left the cover's
//! window, or when more than the cover's limit newer units are kept (a rule
//! needs at most its `limit` newest units to decide exactly). So a check
//! under a shorter window never drops what a longer rule still counts, and
//! every check under rules applied during the state's life is exact against
//! the full history. The key's expiry follows the cover's window. A denied
//! check that widens the cover stores it ([`Effect::Rewrite`]). The cover
//! only grows while the key exists; it starts again from the check's rules
//! once the key has expired (its window empty) or was reset.
//!
//! Clock going backwards: when `now` is older than the newest stored entry,
//! the new entry is recorded at the newest stored time instead (the log
//! stays sorted and appends stay O(1)); the decision itself still uses
//! `now`. This never admits more than `limit` in any window of recorded
//! times.
//!
//! Cost: a check reads the header and drops the entries that left the
//! cover's window (each entry is dropped once, so this is amortized O(1)
//! per admitted request); a rule with a shorter window than the cover then
//! skips the entries it no longer counts. A denied check under rules that
//! change nothing scans at most `cost` units more, so a flooded limiter
//! answers in O(cost). A check (or peek) that would write decodes every
//! entry it keeps first, so a damaged value is refused rather than carried
//! into the next state.

use super::codec::{self, Entries};
use super::rule::{validate_cost, Rule, Rules, StateError, MAX_LIMIT};

/// The outcome of a check, with the fields of the command's reply: those
/// of the binding rule (when denied, the one that needs the longest wait;
/// when allowed, the one with the fewest `remaining`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Units counted in the window after this check (includes the cost
    /// when allowed).
    pub current_count: u64,
    pub limit: u64,
    /// `limit - current_count`: negative when more is counted than a
    /// lowered limit allows.
    pub remaining: i64,
    /// 0 when allowed, -1 when `cost > limit` (never allowed), otherwise
    /// the smallest wait after which this same check is allowed (if
    /// nothing else is admitted meanwhile): every rule allows by then.
    pub retry_after_ms: i64,
    /// Time until the oldest counted unit leaves the window, after this
    /// check; 0 when nothing is counted.
    pub reset_after_ms: u64,
}

/// `limit - count`; both are bounded far below `i64::MAX` by the rules.
fn remaining(limit: u64, count: u64) -> i64 {
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    signed(limit).saturating_sub(signed(count))
}

/// What `info` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// Units counted at `now` under the longest stored rule.
    pub count: u64,
    /// The first rule stored by the last check that wrote.
    pub limit: u64,
    pub window_ms: u64,
    /// Every rule stored by the last check that wrote.
    pub rules: Rules,
    /// Counted units' times, oldest first, one per unit of cost.
    pub timestamps: Vec<u64>,
}

/// The first entry still counted, with the decoder positioned after it.
#[derive(Clone)]
struct Kept<'a> {
    t: u64,
    count: u64,
    rest: Entries<'a>,
}

/// The state as seen at `now` under the cover's window, without the
/// entries that left it.
struct Live<'a> {
    /// Units still counted under the cover's window.
    count: u64,
    kept: Option<Kept<'a>>,
    /// Newest stored time (of any entry, dropped or not); `None` for no state.
    last_t: Option<u64>,
    /// The stored rules and cover; `None` for no state.
    stored: Option<(Rules, Rule)>,
    /// The window the view was taken under.
    window_ms: u64,
}

impl Live<'_> {
    /// The expiry the stored state implies (see [`expire_at_ms`]).
    fn old_expiry(&self) -> Option<u64> {
        Some(expiry_of(self.last_t?, self.stored?.1.window_ms))
    }

    /// Where a new entry goes: `now`, clamped so the log stays sorted.
    fn record_time(&self, now_ms: u64) -> u64 {
        self.last_t.map_or(now_ms, |last| last.max(now_ms))
    }

    /// The cover after a check under `rules` that finds this state.
    fn cover_with(&self, rules: &Rules) -> Rule {
        let new = rules.cover();
        match self.stored {
            Some((_, keep)) => Rule {
                limit: keep.limit.max(new.limit),
                window_ms: keep.window_ms.max(new.window_ms),
            },
            None => new,
        }
    }

    /// The units counted under a window no longer than the view's.
    fn under(&self, now_ms: u64, window_ms: u64) -> Result<View<'_>, StateError> {
        let Some(kept) = &self.kept else {
            return Ok(View {
                count: 0,
                kept: None,
            });
        };
        let mut kept = kept.clone();
        let mut count = self.count;
        if window_ms >= self.window_ms {
            return Ok(View {
                count,
                kept: Some(kept),
            });
        }
        loop {
            if counted(kept.t, now_ms, window_ms) {
                return Ok(View {
                    count,
                    kept: Some(kept),
                });
            }
            count = count
                .checked_sub(kept.count)
                .ok_or(StateError::Corrupt("entry counts exceed stored total"))?;
            match kept.rest.next_entry()? {
                Some((t, c)) => {
                    kept.t = t;
                    kept.count = c;
                }
                None => {
                    if count != 0 {
                        return Err(StateError::Corrupt("entry counts do not add up"));
                    }
                    return Ok(View { count, kept: None });
                }
            }
        }
    }
}

/// The units one rule counts.
struct View<'a> {
    count: u64,
    kept: Option<Kept<'a>>,
}

/// Whether a unit at `t` is still counted at `now`, i.e. `t + window > now`,
/// written so that nothing overflows.
fn counted(t: u64, now_ms: u64, window_ms: u64) -> bool {
    now_ms
        .checked_sub(window_ms)
        .is_none_or(|cutoff| t > cutoff)
}

/// `t + window - now` (how long a unit at `t` still counts), saturated.
fn ms_left(t: u64, window_ms: u64, now_ms: u64) -> u64 {
    let left = (u128::from(t) + u128::from(window_ms)).saturating_sub(u128::from(now_ms));
    u64::try_from(left).unwrap_or(u64::MAX)
}

/// Decodes the state and skips the entries no longer counted at `now`
/// under the longer of the stored cover's window and `window_ms`.
/// Costs O(skipped entries): the entries after the first counted one are
/// checked only by a check that writes ([`Live::check_kept`]).
fn live_view(state: Option<&[u8]>, now_ms: u64, window_ms: u64) -> Result<Live<'_>, StateError> {
    let Some(bytes) = state else {
        return Ok(Live {
            count: 0,
            kept: None,
            last_t: None,
            stored: None,
            window_ms,
        });
    };
    let d = codec::decode(bytes)?;
    let window_ms = window_ms.max(d.keep.window_ms);
    let stored = Some((d.rules, d.keep));
    let (mut t, mut c) = d.first;
    let mut rest = d.rest;
    let mut dropped: u64 = 0;
    loop {
        if counted(t, now_ms, window_ms) {
            let count = d
                .total
                .checked_sub(dropped)
                .filter(|n| *n >= c)
                .ok_or(StateError::Corrupt("entry counts exceed stored total"))?;
            // Cheap consistency check when the kept entry is the last one.
            if rest.is_done() && (count != c || t != d.last_t) {
                return Err(StateError::Corrupt("last entry does not match header"));
            }
            return Ok(Live {
                count,
                kept: Some(Kept { t, count: c, rest }),
                last_t: Some(d.last_t),
                stored,
                window_ms,
            });
        }
        dropped = dropped
            .checked_add(c)
            .filter(|n| *n <= d.total)
            .ok_or(StateError::Corrupt("entry counts exceed stored total"))?;
        match rest.next_entry()? {
            Some((nt, nc)) => (t, c) = (nt, nc),
            None => {
                // Everything expired: we have seen the whole value, so the
                // full consistency check is free.
                if dropped != d.total || t != d.last_t {
                    return Err(StateError::Corrupt("entries do not match header"));
                }
                return Ok(Live {
                    count: 0,
                    kept: None,
                    last_t: Some(d.last_t),
                    stored,
                    window_ms,
                });
            }
        }
    }
}

impl Live<'_> {
    /// Checks the counted entries after the first one, which a write copies
    /// undecoded: a damaged value is refused rather than carried into the
    /// next state. O(entries), a few instructions each.
    fn check_kept(&self) -> Result<(), StateError> {
        match (&self.kept, self.last_t) {
            (Some(kept), Some(last_t)) => {
                codec::check_rest(&kept.rest, self.count - kept.count, last_t)
            }
            _ => Ok(()),
        }
    }
}

/// The same entries, every one of them, under `rules` and `keep`: what a
/// denied check that widens the cover stores. Nothing is dropped, so no
/// later check, under any rule, counts less than it would have.
fn write_rules(
    out: &mut Vec<u8>,
    bytes: &[u8],
    rules: &Rules,
    keep: Rule,
) -> Result<(), StateError> {
    let d = codec::decode(bytes)?;
    let span = d.last_t - d.first.0;
    out.clear();
    out.reserve(codec::MAX_HEADER_LEN + d.entries.len());
    codec::put_header(out, rules, keep, d.total, span);
    out.extend_from_slice(d.entries);
    Ok(())
}

/// Writes the state after appending `cost` units at `rec_t` to `live`,
/// keeping at most `keep.limit` units (the oldest go first).
fn write_state(
    out: &mut Vec<u8>,
    live: &Live<'_>,
    rules: &Rules,
    keep: Rule,
    rec_t: u64,
    cost: u64,
) -> Result<u64, StateError> {
    out.clear();
    let mut total = live.count.saturating_add(cost);
    let mut kept = live.kept.clone();
    // Drop the oldest units beyond the cover's limit: no rule applied
    // needs them (each needs at most its limit newest units).
    let mut excess = total.saturating_sub(keep.limit);
    while excess > 0 {
        let Some(k) = kept.as_mut() else {
            break;
        };
        if k.count > excess {
            k.count -= excess;
            total -= excess;
            break;
        }
        excess -= k.count;
        total -= k.count;
        match k.rest.next_entry()? {
            Some((t, c)) => {
                k.t = t;
                k.count = c;
            }
            None => kept = None,
        }
    }
    match &kept {
        Some(kept) => {
            let tail = kept.rest.remaining_bytes();
            let last_t = live.last_t.unwrap_or(rec_t);
            let span = rec_t.checked_sub(kept.t).ok_or(StateError::Corrupt(
                "entry newer than the stored newest time",
            ))?;
            let delta = rec_t
                .checked_sub(last_t)
                .ok_or(StateError::Corrupt("newest time after record time"))?;
            out.reserve(codec::MAX_HEADER_LEN + 2 * codec::MAX_ENTRY_LEN + tail.len());
            codec::put_header(out, rules, keep, total, span);
            codec::put_entry(out, kept.t, kept.count);
            out.extend_from_slice(tail);
            codec::put_entry(out, delta, cost);
        }
        None => {
            out.reserve(codec::MAX_HEADER_LEN + codec::MAX_ENTRY_LEN);
            codec::put_header(out, rules, keep, total, 0);
            codec::put_entry(out, rec_t, cost);
        }
    }
    Ok(total)
}

/// Smallest wait after which `need` more units have left the window.
fn retry_after(view: &View<'_>, need: u64, window_ms: u64, now_ms: u64) -> Result<i64, StateError> {
    let Some(kept) = &view.kept else {
        return Err(StateError::Corrupt("entry counts do not add up"));
    };
    let mut freed = kept.count;
    let mut t = kept.t;
    let mut rest = kept.rest.clone();
    while freed < need {
        let Some((nt, nc)) = rest.next_entry()? else {
            return Err(StateError::Corrupt("entry counts do not add up"));
        };
        freed = freed.saturating_add(nc);
        t = nt;
    }
    // All units at or before `t` have left at `t + window`; `t` is counted
    // now, so this is at least 1.
    Ok(i64::try_from(ms_left(t, window_ms, now_ms)).unwrap_or(i64::MAX))
}

/// The key expiry that goes with a state just written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// [`expire_at_ms`] of the new state.
    pub at_ms: u64,
    /// False when the old state implied the same expiry: the key's expiry,
    /// set from the old state, is already right and need not be touched.
    pub changed: bool,
}

impl Live<'_> {
    fn expiry_after(&self, rec_t: u64, window_ms: u64) -> Expiry {
        let at_ms = expiry_of(rec_t, window_ms);
        Expiry {
            at_ms,
            changed: self.old_expiry() != Some(at_ms),
        }
    }
}

/// Decides a check of `cost` units at `now_ms` under `rule`.
///
/// `state` is `None` when the key does not exist. When the check is allowed
/// and `out` is `Some`, the new state is written into it (cleared first);
/// `out` is not touched when the check is denied.
pub fn check(
    state: Option<&[u8]>,
    now_ms: u64,
    rule: Rule,
    cost: u64,
    out: Option<&mut Vec<u8>>,
) -> Result<Decision, StateError> {
    match out {
        Some(out) => {
            let mut scratch = Vec::new();
            let (d, effect) = decide(state, now_ms, &Rules::one(rule), cost, Some(&mut scratch))?;
            if matches!(effect, Effect::Store(_)) {
                *out = scratch;
            }
            Ok(d)
        }
        None => decide(state, now_ms, &Rules::one(rule), cost, None).map(|(d, _)| d),
    }
}

/// What the glue must do to the key after a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Allowed: store the new state, and this expiry when it changed.
    Store(Expiry),
    /// Denied under rules that widen the cover or change the stored rules
    /// with a window at least as long: store the same entries under them,
    /// and this expiry when it changed, so that the key keeps what those
    /// rules count. Replayed as a record of cost 0.
    Rewrite(Expiry),
    /// Denied: nothing changes.
    Nothing,
}

/// Decides a check under every rule of `rules`, writes the new state of an
/// allowed check (or a rewrite) into `out` and says what to do with the key.
pub fn check_and_store(
    state: Option<&[u8]>,
    now_ms: u64,
    rules: &Rules,
    cost: u64,
    out: &mut Vec<u8>,
) -> Result<(Decision, Effect), StateError> {
    decide(state, now_ms, rules, cost, Some(out))
}

/// The decision a check under `rules` would make, writing nothing.
pub fn peek_rules(
    state: Option<&[u8]>,
    now_ms: u64,
    rules: &Rules,
    cost: u64,
) -> Result<Decision, StateError> {
    decide(state, now_ms, rules, cost, None).map(|(d, _)| d)
}

fn decide(
    state: Option<&[u8]>,
    now_ms: u64,
    rules: &Rules,
    cost: u64,
    out: Option<&mut Vec<u8>>,
) -> Result<(Decision, Effect), StateError> {
    rules.validate()?;
    validate_cost(cost)?;
    let live = live_view(state, now_ms, rules.cover().window_ms)?;
    // Per rule: (rule, its view, count after this check if it allows).
    let mut allowed = true;
    let mut binding: Option<(Rule, u64, i64, u64)> = None;
    let mut denied: Option<(Rule, u64, i64, u64)> = None;
    for rule in rules.as_slice() {
        let view = live.under(now_ms, rule.window_ms)?;
        let after = view.count.checked_add(cost).filter(|n| *n <= rule.limit);
        let oldest = view.kept.as_ref().map(|k| k.t);
        match after {
            Some(current) => {
                let rem = remaining(rule.limit, current);
                if binding.is_none_or(|(r, c, _, _)| rem < remaining(r.limit, c)) {
                    let rec_t = live.record_time(now_ms);
                    let reset = ms_left(oldest.unwrap_or(rec_t), rule.window_ms, now_ms);
                    binding = Some((*rule, current, 0, reset));
                }
            }
            None => {
                allowed = false;
                let wait = if cost > rule.limit {
                    -1
                } else {
                    // Denied with cost <= limit: count + cost > limit.
                    let need = view.count.saturating_add(cost).saturating_sub(rule.limit);
                    retry_after(&view, need, rule.window_ms, now_ms)?
                };
                let reset = oldest.map_or(0, |t| ms_left(t, rule.window_ms, now_ms));
                let wins = match denied {
                    None => true,
                    Some((_, _, w, _)) => w >= 0 && (wait < 0 || wait > w),
                };
                if wins {
                    denied = Some((*rule, view.count, wait, reset));
                }
            }
        }
    }
    if allowed {
        let Some((rule, current, _, reset)) = binding else {
            return Err(StateError::InvalidArgument("at least one rule is needed"));
        };
        let rec_t = live.record_time(now_ms);
        // Checked whether or not it writes, so that PEEK answers as CHECK.
        live.check_kept()?;
        let keep = live.cover_with(rules);
        if let Some(out) = out {
            write_state(out, &live, rules, keep, rec_t, cost)?;
        }
        let d = Decision {
            allowed: true,
            current_count: current,
            limit: rule.limit,
            remaining: remaining(rule.limit, current),
            retry_after_ms: 0,
            reset_after_ms: reset,
        };
        return Ok((d, Effect::Store(live.expiry_after(rec_t, keep.window_ms))));
    }
    let Some((rule, count, wait, reset)) = denied else {
        return Err(StateError::InvalidArgument("at least one rule is needed"));
    };
    let d = Decision {
        allowed: false,
        current_count: count,
        limit: rule.limit,
        remaining: remaining(rule.limit, count),
        retry_after_ms: wait,
        reset_after_ms: reset,
    };
    let Some((bytes, last_t, keep)) = rewrite_of(state, &live, rules) else {
        return Ok((d, Effect::Nothing));
    };
    // Checked by PEEK too, so that it answers as CHECK would.
    live.check_kept()?;
    let effect = match out {
        Some(out) => {
            write_rules(out, bytes, rules, keep)?;
            Effect::Rewrite(live.expiry_after(last_t, keep.window_ms))
        }
        None => Effect::Nothing,
    };
    Ok((d, effect))
}

/// Whether a denied check under `rules` stores them: when they widen the
/// cover (so that what they count is kept), or differ from the stored
/// rules with a window at least as long as the cover's. Never under a
/// shorter window alone: that would change nothing that is kept.
fn rewrite_of<'a>(
    state: Option<&'a [u8]>,
    live: &Live<'_>,
    rules: &Rules,
) -> Option<(&'a [u8], u64, Rule)> {
    let (bytes, last_t, (stored, keep)) = (state?, live.last_t?, live.stored?);
    let new = rules.cover();
    let widened = Rule {
        limit: keep.limit.max(new.limit),
        window_ms: keep.window_ms.max(new.window_ms),
    };
    let changes = widened != keep || (stored != *rules && new.window_ms >= keep.window_ms);
    changes.then_some((bytes, last_t, widened))
}

/// The decision `check` would make, without building a new state.
pub fn peek(
    state: Option<&[u8]>,
    now_ms: u64,
    rule: Rule,
    cost: u64,
) -> Result<Decision, StateError> {
    check(state, now_ms, rule, cost, None)
}

/// [`record_rules`] under one rule.
pub fn record(
    state: Option<&[u8]>,
    now_ms: u64,
    rule: Rule,
    cost: u64,
    out: &mut Vec<u8>,
) -> Result<Option<Expiry>, StateError> {
    record_rules(state, now_ms, &Rules::one(rule), cost, out)
}

/// Unconditionally records `cost` units at `now_ms` (replica / AOF replay).
///
/// Given the same old bytes and arguments as an allowed check, writes
/// exactly the bytes that check wrote; with cost 0, the bytes of a denied
/// check's [`Effect::Rewrite`]. Returns the expiry to go with the new
/// state, or `None` when there is nothing to write.
pub fn record_rules(
    state: Option<&[u8]>,
    now_ms: u64,
    rules: &Rules,
    cost: u64,
    out: &mut Vec<u8>,
) -> Result<Option<Expiry>, StateError> {
    rules.validate()?;
    if cost != 0 {
        validate_cost(cost)?;
    }
    let live = live_view(state, now_ms, rules.cover().window_ms)?;
    live.check_kept()?;
    if cost == 0 {
        let Some((bytes, last_t, keep)) = rewrite_of(state, &live, rules) else {
            return Ok(None);
        };
        write_rules(out, bytes, rules, keep)?;
        return Ok(Some(live.expiry_after(last_t, keep.window_ms)));
    }
    let keep = live.cover_with(rules);
    if cost > keep.limit.min(MAX_LIMIT) {
        return Err(StateError::InvalidArgument(
            "recorded cost above every limit",
        ));
    }
    let rec_t = live.record_time(now_ms);
    write_state(out, &live, rules, keep, rec_t, cost)?;
    Ok(Some(live.expiry_after(rec_t, keep.window_ms)))
}

/// What a refund did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refund {
    /// Nothing counted: nothing changes.
    Nothing,
    /// `removed` units taken back; store the new state and this expiry.
    Store { removed: u64, expiry: Expiry },
    /// Every counted unit taken back: delete the key.
    Delete { removed: u64 },
}

/// Takes back the `n` most recently recorded units still counted (under
/// the cover's window), or all of them when fewer are counted. The rules
/// and cover stay. O(units kept).
pub fn refund(state: &[u8], now_ms: u64, n: u64, out: &mut Vec<u8>) -> Result<Refund, StateError> {
    validate_cost(n)?;
    let live = live_view(Some(state), now_ms, 0)?;
    live.check_kept()?;
    let (Some(kept), Some((rules, keep))) = (&live.kept, live.stored) else {
        return Ok(Refund::Nothing);
    };
    let removed = n.min(live.count);
    let mut left = live.count - removed;
    if left == 0 {
        return Ok(Refund::Delete { removed });
    }
    // Keep the oldest `left` units.
    let mut entries: Vec<(u64, u64)> = Vec::new();
    let mut entry = Some((kept.t, kept.count));
    let mut rest = kept.rest.clone();
    while let Some((t, c)) = entry {
        if left == 0 {
            break;
        }
        let take = c.min(left);
        entries.push((t, take));
        left -= take;
        entry = rest.next_entry()?;
    }
    let (Some(&(first_t, _)), Some(&(last_t, _))) = (entries.first(), entries.last()) else {
        return Ok(Refund::Delete { removed });
    };
    out.clear();
    codec::put_header(out, &rules, keep, live.count - removed, last_t - first_t);
    let mut prev = 0;
    for (t, c) in entries {
        codec::put_entry(out, t - prev, c);
        prev = t;
    }
    Ok(Refund::Store {
        removed,
        expiry: live.expiry_after(last_t, keep.window_ms),
    })
}

/// Full O(n) validation of a stored value.
pub fn validate(state: &[u8]) -> Result<(), StateError> {
    codec::validate_all(&codec::decode(state)?)
}

/// The units still counted at `now_ms` under the longest stored rule.
/// Validates the whole value first.
pub fn info(state: &[u8], now_ms: u64) -> Result<Info, StateError> {
    let d = codec::decode(state)?;
    codec::validate_all(&d)?;
    let window_ms = d.rules.cover().window_ms;
    let first = d.rules.as_slice().first().copied().unwrap_or(d.keep);
    let mut timestamps = Vec::new();
    let mut entry = Some(d.first);
    let mut rest = d.rest.clone();
    while let Some((t, c)) = entry {
        if counted(t, now_ms, window_ms) {
            // Bounded: validation capped the total at MAX_LIMIT.
            timestamps.extend(std::iter::repeat_n(t, usize::try_from(c).unwrap_or(0)));
        }
        entry = rest.next_entry()?;
    }
    Ok(Info {
        count: timestamps.len() as u64,
        limit: first.limit,
        window_ms: first.window_ms,
        rules: d.rules,
        timestamps,
    })
}

/// When the key may expire (Unix ms): the newest entry's time plus the
/// cover's window, rounded up to a whole second so the glue only updates
/// the expiry when it moves to another second. Saturates at `u64::MAX`.
pub fn expire_at_ms(state: &[u8]) -> Result<u64, StateError> {
    let d = codec::decode(state)?;
    Ok(expiry_of(d.last_t, d.keep.window_ms))
}

/// `last_t + window_ms` rounded up to a whole second, saturated.
fn expiry_of(last_t: u64, window_ms: u64) -> u64 {
    last_t
        .checked_add(window_ms)
        .and_then(|exact| exact.div_ceil(1000).checked_mul(1000))
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::rule::{MAX_COST, MAX_WINDOW_MS, MIN_WINDOW_MS};

    const W: u64 = 10_000;

    use crate::limiter::check_and_store_one as check_and_store;
    const T0: u64 = 1_700_000_000_000;

    fn rule(limit: u64) -> Rule {
        Rule {
            limit,
            window_ms: W,
        }
    }

    /// Runs a check and returns the decision, updating `state` if allowed.
    fn hit(state: &mut Option<Vec<u8>>, now: u64, rule: Rule, cost: u64) -> Decision {
        let mut out = Vec::new();
        let d = check(state.as_deref(), now, rule, cost, Some(&mut out)).unwrap();
        if d.allowed {
            *state = Some(out);
        }
        d
    }

    #[test]
    fn window_edges() {
        let mut s = None;
        assert!(hit(&mut s, T0, rule(1), 1).allowed);
        let d = hit(&mut s, T0 + W - 1, rule(1), 1);
        assert!(!d.allowed);
        assert_eq!(
            (
                d.current_count,
                d.remaining,
                d.retry_after_ms,
                d.reset_after_ms
            ),
            (1, 0, 1, 1)
        );
        let d = hit(&mut s, T0 + W, rule(1), 1);
        assert!(d.allowed);
        assert_eq!((d.current_count, d.remaining, d.reset_after_ms), (1, 0, W));
        let info = info(s.as_deref().unwrap(), T0 + W).unwrap();
        assert_eq!(info.timestamps, vec![T0 + W]);
    }

    #[test]
    fn first_check_fields() {
        let mut s = None;
        let d = hit(&mut s, T0, rule(5), 2);
        assert_eq!(
            d,
            Decision {
                allowed: true,
                current_count: 2,
                limit: 5,
                remaining: 3,
                retry_after_ms: 0,
                reset_after_ms: W,
            }
        );
    }

    #[test]
    fn cost_above_limit_is_never_allowed() {
        let mut s = None;
        let d = hit(&mut s, T0, rule(3), 4);
        assert_eq!(
            (
                d.allowed,
                d.current_count,
                d.remaining,
                d.retry_after_ms,
                d.reset_after_ms
            ),
            (false, 0, 3, -1, 0)
        );
        assert!(s.is_none());
        assert!(hit(&mut s, T0, rule(3), 1).allowed);
        let d = hit(&mut s, T0 + 5, rule(3), 4);
        assert_eq!(
            (d.retry_after_ms, d.current_count, d.reset_after_ms),
            (-1, 1, W - 5)
        );
    }

    #[test]
    fn cost_exactly_limit() {
        let mut s = None;
        let d = hit(&mut s, T0, rule(3), 3);
        assert_eq!((d.allowed, d.current_count, d.remaining), (true, 3, 0));
        let d = hit(&mut s, T0 + 1, rule(3), 3);
        assert_eq!((d.allowed, d.retry_after_ms), (false, (W - 1) as i64));
        assert!(hit(&mut s, T0 + W, rule(3), 3).allowed);
        assert_eq!(
            info(s.as_deref().unwrap(), T0 + W).unwrap().timestamps,
            vec![T0 + W; 3]
        );
    }

    #[test]
    fn retry_after_is_exact() {
        let mut s = None;
        // 1 at T0, 2 at T0+100, 1 at T0+300; limit 4.
        for (dt, cost) in [(0, 1), (100, 2), (300, 1)] {
            assert!(hit(&mut s, T0 + dt, rule(4), cost).allowed);
        }
        let now = T0 + 1_000;
        let state = s.clone().unwrap();
        for (cost, want) in [
            (1u64, W - 1_000),
            (2, W + 100 - 1_000),
            (3, W + 100 - 1_000),
            (4, W + 300 - 1_000),
        ] {
            let d = peek(Some(&state), now, rule(4), cost).unwrap();
            assert!(!d.allowed);
            assert_eq!(d.retry_after_ms, want as i64, "cost {cost}");
            assert_eq!(d.reset_after_ms, W - 1_000);
            let at = now + d.retry_after_ms as u64;
            assert!(peek(Some(&state), at, rule(4), cost).unwrap().allowed);
            assert!(!peek(Some(&state), at - 1, rule(4), cost).unwrap().allowed);
        }
    }

    #[test]
    fn reset_after_tracks_oldest() {
        let mut s = None;
        hit(&mut s, T0, rule(10), 1);
        let d = hit(&mut s, T0 + 4_000, rule(10), 1);
        assert_eq!(d.reset_after_ms, W - 4_000);
        // Oldest leaves at T0+W; now the one at T0+4000 is oldest.
        let d = hit(&mut s, T0 + W, rule(10), 1);
        assert_eq!((d.current_count, d.reset_after_ms), (2, 4_000));
        // Everything gone, nothing counted, denied cost>limit check.
        let d = hit(&mut s, T0 + 3 * W, rule(10), 11);
        assert_eq!((d.current_count, d.reset_after_ms), (0, 0));
    }

    #[test]
    fn clock_going_backwards_clamps_record_time() {
        let mut s = None;
        assert!(hit(&mut s, T0 + 5_000, rule(3), 1).allowed);
        // 2 s earlier: decided at T0+3000 but recorded at T0+5000.
        let d = hit(&mut s, T0 + 3_000, rule(3), 1);
        assert!(d.allowed);
        // Oldest counted is at T0+5000, seen from T0+3000.
        assert_eq!(d.reset_after_ms, W + 2_000);
        let st = s.clone().unwrap();
        assert_eq!(
            info(&st, T0 + 5_000).unwrap().timestamps,
            vec![T0 + 5_000; 2]
        );
        assert_eq!(expire_at_ms(&st).unwrap(), T0 + 5_000 + W);
        assert_eq!(validate(&st), Ok(()));
        // Full now; retry computed from the clamped times.
        assert!(hit(&mut s, T0 + 3_000, rule(3), 1).allowed);
        let d = hit(&mut s, T0 + 3_000, rule(3), 1);
        assert_eq!(d.retry_after_ms, (W + 2_000) as i64);
    }

    #[test]
    fn policy_change_applies_from_the_check_on() {
        let mut s = None;
        for i in 0..5 {
            assert!(hit(&mut s, T0 + i * 1_000, rule(10), 1).allowed);
        }
        // Lower limit: 5 counted > 3, so remaining = limit - count = -2.
        let d = hit(&mut s, T0 + 5_000, rule(3), 1);
        assert_eq!(
            (d.allowed, d.current_count, d.remaining, d.retry_after_ms),
            (false, 5, -2, 7_000)
        );
        // Shorter window: only T0+3000 and T0+4000 are within 3 s of T0+5500.
        let short = Rule {
            limit: 10,
            window_ms: 3_000,
        };
        let d = hit(&mut s, T0 + 5_500, short, 1);
        assert_eq!(
            (d.allowed, d.current_count, d.reset_after_ms),
            (true, 3, 500)
        );
        let st = s.clone().unwrap();
        let info = info(&st, T0 + 5_500).unwrap();
        assert_eq!((info.limit, info.window_ms, info.count), (10, 3_000, 3));
        // Longer window again: the shorter one dropped nothing that the
        // longer one counts (5 earlier + 1 + this one).
        let d = peek(Some(&st), T0 + 5_500, rule(10), 1).unwrap();
        assert_eq!(d.current_count, 7);
        assert_eq!(expire_at_ms(&st).unwrap(), T0 + 16_000);
    }

    #[test]
    fn info_lists_one_timestamp_per_unit() {
        let mut s = None;
        hit(&mut s, T0, rule(10), 3);
        hit(&mut s, T0 + 7, rule(10), 1);
        hit(&mut s, T0 + 7, rule(10), 2);
        let st = s.unwrap();
        let i = info(&st, T0 + 8).unwrap();
        assert_eq!(i.timestamps, vec![T0, T0, T0, T0 + 7, T0 + 7, T0 + 7]);
        assert_eq!((i.count, i.limit, i.window_ms), (6, 10, W));
        let i = info(&st, T0 + W).unwrap();
        assert_eq!(i.timestamps, vec![T0 + 7; 3]);
        let i = info(&st, T0 + W + 7).unwrap();
        assert_eq!((i.count, i.timestamps.len()), (0, 0));
    }

    #[test]
    fn expire_is_rounded_up_to_a_second() {
        let mut s = None;
        hit(&mut s, 1_234_567, rule(10), 1);
        assert_eq!(expire_at_ms(s.as_deref().unwrap()).unwrap(), 1_245_000);
        hit(&mut s, 1_240_000 - W, rule(10), 1); // clamped to 1_234_567
        hit(&mut s, 1_240_000, rule(10), 1);
        assert_eq!(expire_at_ms(s.as_deref().unwrap()).unwrap(), 1_250_000);
    }

    #[test]
    fn denied_check_leaves_out_untouched() {
        let mut s = None;
        hit(&mut s, T0, rule(1), 1);
        let mut out = vec![9, 9];
        let d = check(s.as_deref(), T0 + 1, rule(1), 1, Some(&mut out)).unwrap();
        assert!(!d.allowed);
        assert_eq!(out, vec![9, 9]);
    }

    #[test]
    fn record_matches_allowed_check() {
        let mut s: Option<Vec<u8>> = None;
        for (dt, cost) in [(0, 1), (3, 2), (3, 1), (W + 1, 4), (W + 2, 1)] {
            let mut a = Vec::new();
            let mut b = Vec::new();
            let d = check(s.as_deref(), T0 + dt, rule(100), cost, Some(&mut a)).unwrap();
            assert!(d.allowed);
            record(s.as_deref(), T0 + dt, rule(100), cost, &mut b).unwrap();
            assert_eq!(a, b);
            s = Some(a);
        }
    }

    #[test]
    fn arguments_are_checked() {
        let bad = [
            (
                Rule {
                    limit: 0,
                    window_ms: W,
                },
                1,
            ),
            (
                Rule {
                    limit: MAX_LIMIT + 1,
                    window_ms: W,
                },
                1,
            ),
            (
                Rule {
                    limit: 1,
                    window_ms: MIN_WINDOW_MS - 1,
                },
                1,
            ),
            (
                Rule {
                    limit: 1,
                    window_ms: MAX_WINDOW_MS + 1,
                },
                1,
            ),
            (rule(1), 0),
            (rule(1), MAX_COST + 1),
        ];
        for (r, cost) in bad {
            assert!(matches!(
                peek(None, T0, r, cost),
                Err(StateError::InvalidArgument(_))
            ));
            // Cost 0 is a replayed rewrite, valid for record only.
            let mut out = Vec::new();
            let r = record(None, T0, r, cost, &mut out);
            if cost == 0 {
                assert_eq!(r, Ok(None));
            } else {
                assert!(matches!(r, Err(StateError::InvalidArgument(_))), "{r:?}");
            }
        }
        assert!(Rule::new(MAX_LIMIT, MAX_WINDOW_MS).is_ok());
        assert!(Rule::new(1, MIN_WINDOW_MS).is_ok());
    }

    #[test]
    fn record_keeps_at_most_the_largest_limit() {
        let big = Rule {
            limit: MAX_LIMIT,
            window_ms: W,
        };
        let mut s = Vec::new();
        record(None, T0, big, MAX_COST, &mut s).unwrap();
        let mut out = Vec::new();
        // The oldest unit goes: no rule needs more than MAX_LIMIT.
        record(Some(&s), T0 + 1, big, 1, &mut out).unwrap();
        assert_eq!(super::codec::decode(&out).unwrap().total, MAX_LIMIT);
        assert_eq!(peek(Some(&s), T0, big, 1).unwrap().retry_after_ms, W as i64);
        // A cost above every limit is never recorded.
        let small = Rule::new(2, W).unwrap();
        assert!(matches!(
            record(None, T0, small, 3, &mut out),
            Err(StateError::InvalidArgument(_))
        ));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let r = Rule {
            limit: 2,
            window_ms: MAX_WINDOW_MS,
        };
        let mut s = None;
        assert!(hit(&mut s, u64::MAX - 1, r, 1).allowed);
        assert!(hit(&mut s, u64::MAX, r, 1).allowed);
        let d = hit(&mut s, u64::MAX, r, 1);
        assert_eq!(d.retry_after_ms, (MAX_WINDOW_MS - 1) as i64);
        assert_eq!(d.reset_after_ms, MAX_WINDOW_MS - 1);
        assert_eq!(expire_at_ms(s.as_deref().unwrap()).unwrap(), u64::MAX);
        // Clock far back: waits saturate instead of overflowing.
        let d = hit(&mut s, 0, r, 1);
        assert_eq!(d.retry_after_ms, i64::MAX);
        assert_eq!(d.reset_after_ms, u64::MAX);
        // Time 0 and small times (now < window).
        let mut s = None;
        assert!(hit(&mut s, 0, rule(1), 1).allowed);
        let d = hit(&mut s, 5, rule(1), 1);
        assert_eq!(d.retry_after_ms, (W - 5) as i64);
    }

    #[test]
    fn a_denied_check_under_a_longer_window_keeps_the_key() {
        let short = Rule::new(1, 1_000).unwrap();
        let long = Rule::new(1, 100_000).unwrap();
        let mut s = None;
        assert!(hit(&mut s, T0, short, 1).allowed);
        let stored = s.clone().unwrap();
        let mut out = Vec::new();
        // Under the longer window the entry still counts after the stored
        // expiry (T0 + 1 s): the key must live until T0 + 100 s.
        let (d, effect) = check_and_store(Some(&stored), T0 + 500, long, 1, &mut out).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 99_500);
        let at = expiry_of(T0, 100_000);
        assert!(at > expire_at_ms(&stored).unwrap());
        assert_eq!(
            effect,
            Effect::Rewrite(Expiry {
                at_ms: at,
                changed: true
            })
        );
        // The new state: the same request under the new rule.
        let i = info(&out, T0 + 500).unwrap();
        assert_eq!((i.limit, i.window_ms, i.timestamps), (1, 100_000, vec![T0]));
        assert_eq!(expire_at_ms(&out).unwrap(), at);
        let mut replayed = Vec::new();
        let e = record(Some(&stored), T0 + 500, long, 0, &mut replayed).unwrap();
        assert_eq!(
            (replayed, e),
            (
                out.clone(),
                Some(Expiry {
                    at_ms: at,
                    changed: true
                })
            )
        );
        // A second denied check under the stored (now long) window: nothing.
        let (_, effect) = check_and_store(Some(&out), T0 + 600, long, 1, &mut Vec::new()).unwrap();
        assert_eq!(effect, Effect::Nothing);
        // Cost 0 on nothing counted writes nothing.
        assert_eq!(record(None, T0, long, 0, &mut Vec::new()), Ok(None));
        // Under the stored window, or once nothing counts, nothing to do.
        let (d, effect) = check_and_store(Some(&stored), T0 + 500, short, 1, &mut out).unwrap();
        assert!(!d.allowed);
        assert_eq!(effect, Effect::Nothing);
        let (d, effect) = check_and_store(Some(&stored), T0 + 500, short, 2, &mut out).unwrap();
        assert_eq!(
            (d.allowed, d.retry_after_ms, effect),
            (false, -1, Effect::Nothing)
        );
    }

    #[test]
    fn a_rewrite_drops_nothing_later_checks_count() {
        let r = |limit, window_s: u64| Rule::new(limit, window_s * 1000).unwrap();
        let mut s = None;
        assert!(hit(&mut s, T0, r(5, 10), 1).allowed);
        assert!(hit(&mut s, T0 + 9_000, r(5, 10), 1).allowed);
        // Denied under 1 per 15 s (T0 + 9 s still counts): a rewrite.
        let mut out = Vec::new();
        let (d, effect) =
            check_and_store(s.as_deref(), T0 + 15_500, r(1, 15), 1, &mut out).unwrap();
        assert!(!d.allowed);
        assert!(matches!(effect, Effect::Rewrite(_)), "{effect:?}");
        // Both requests are still there for a check under a longer window.
        let i = info(&out, T0 + 16_000).unwrap();
        assert_eq!(i.timestamps, [T0 + 9_000]);
        assert_eq!(super::codec::decode(&out).unwrap().total, 2);
        let d = check(Some(&out), T0 + 16_000, r(2, 100), 1, None).unwrap();
        assert!(!d.allowed, "{d:?}");
        assert_eq!(d.current_count, 2);
    }

    #[test]
    fn damage_after_the_first_counted_entry_is_refused_before_a_write() {
        let mut s = None;
        for t in [T0, T0 + 1, T0 + 2, T0 + 3] {
            assert!(hit(&mut s, t, rule(10), 1).allowed);
        }
        let good = s.unwrap();
        // Drop the newest entry (one byte: delta 1, cost 1), keep the header.
        let short = &good[..good.len() - 1];
        // A middle entry's delta changed: the times no longer reach the newest.
        let mut bent = good.clone();
        let middle = bent.len() - 2;
        bent[middle] = 0x05;
        for v in [short, &bent[..]] {
            assert!(info(v, T0 + 4).is_err(), "{v:?}");
            // A check that would write refuses it, and so does a replay.
            let mut out = Vec::new();
            let r = check_and_store(Some(v), T0 + 4, rule(10), 1, &mut out);
            assert!(matches!(r, Err(StateError::Corrupt(_))), "{v:?}: {r:?}");
            let r = record(Some(v), T0 + 4, rule(10), 1, &mut out);
            assert!(matches!(r, Err(StateError::Corrupt(_))), "{v:?}: {r:?}");
            // So does a PEEK that would be allowed: it answers as CHECK.
            let r = peek(Some(v), T0 + 4, rule(10), 1);
            assert!(matches!(r, Err(StateError::Corrupt(_))), "{v:?}: {r:?}");
            // A denied check under the stored rule reads only up to what it
            // needs.
            assert!(!check(Some(v), T0 + 4, rule(10), 8, None).unwrap().allowed);
            // Under another rule a denied check stores it, so it reads the
            // whole value, and a PEEK answers as that CHECK does.
            let r = check_and_store(Some(v), T0 + 4, rule(3), 1, &mut out);
            assert!(matches!(r, Err(StateError::Corrupt(_))), "{v:?}: {r:?}");
            let r = peek(Some(v), T0 + 4, rule(3), 1);
            assert!(matches!(r, Err(StateError::Corrupt(_))), "{v:?}: {r:?}");
        }
        // Entry times that overflow u64 on the way to a newest time of
        // u64::MAX: refused, not clamped into a match.
        let v = [
            0xc1, 0x0a, 0xe0, 0xd4, 0x03, 0x03, 0x03, 0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0x03, 0x05, 0x05,
        ];
        assert!(validate(&v).is_err());
        for now in [T0, u64::MAX - 5_000, u64::MAX] {
            let r = check_and_store(Some(&v), now, rule(10), 1, &mut Vec::new());
            assert!(!matches!(r, Ok((_, Effect::Store(_)))), "{now}: {r:?}");
            assert!(record(Some(&v), now, rule(10), 1, &mut Vec::new()).is_err());
        }
    }

    #[test]
    fn foreign_values_are_rejected() {
        for v in [
            &b""[..],
            b"hello",
            b"0",
            b"{\"a\":1}",
            &[0xC1],
            &[0xC1, 0x01],
        ] {
            assert!(
                matches!(peek(Some(v), T0, rule(1), 1), Err(StateError::Corrupt(_))),
                "{v:?}"
            );
            assert!(info(v, T0).is_err());
            assert!(expire_at_ms(v).is_err());
        }
        assert_eq!(
            StateError::Corrupt("x").to_string(),
            "corrupt rate limiter state: x"
        );
    }
}
