//! RATELIMIT.CHECK/PEEK/INFO/RESET and RATELIMIT.RECORD, the deterministic
//! effect that replicas and the AOF apply instead of re-running a check.

use std::cell::RefCell;

use redis_module::raw;

use std::sync::atomic::Ordering;

use crate::args::{given_twice, int_in, is_token, missing_value, syntax_error};
use crate::error::{CmdError, CmdResult};
use crate::keys;
use crate::limiter::{
    self, Decision, Effect, Expiry, Refund, Rule, Rules, StateError, MAX_COST, MAX_LIMIT,
    MAX_RULES, MAX_WINDOW_MS, MIN_WINDOW_MS,
};
use crate::redis::acl::{check_keys, open_checked};
use crate::redis::command::{Args, KeyAccess};
use crate::redis::commands::cache::style;
use crate::redis::config::{CLUSTER_MODE, POLICIES};
use crate::redis::reply::Reply;
use crate::redis::store::{
    key_name, notify, now_ms, replicate, replicate_refs, replicate_verbatim, KeptNumber, Key,
    OwnedString,
};
use crate::stats::COUNTERS;

thread_local! {
    // Commands run on Redis's main thread: one scratch buffer serves every check.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

const CHECK_OPTIONS: &str = "[<limit> <window_seconds> ...] [ACTION <action>] [COST <n>]";

pub struct CheckArgs<'a> {
    pub identifier: &'a [u8],
    pub action: &'a [u8],
    /// The `<limit> <window_seconds>` pairs when given; else the action's
    /// policy applies.
    pub explicit: Option<Rules>,
    pub cost: u64,
}

/// Parses `<identifier> [<limit> <window_seconds> ...] [ACTION a] [COST n]`
/// from `from` on; the table's arity guarantees the identifier is there.
pub fn parse_check_syntax<'a>(args: &Args<'a>, from: usize) -> Result<CheckArgs<'a>, CmdError> {
    let identifier = args.bytes(from);
    let mut i = from + 1;
    let mut explicit: Option<Rules> = None;
    while i < args.len() && !is_token(args.bytes(i), "ACTION") && !is_token(args.bytes(i), "COST") {
        // After the first pair, a word that is not a number is an option.
        if explicit.is_some() && crate::args::parse_ll(args.bytes(i)).is_none() {
            return Err(syntax_error(args.bytes(i), CHECK_OPTIONS));
        }
        if i + 1 >= args.len() {
            if crate::args::parse_ll(args.bytes(i)).is_none() {
                return Err(syntax_error(args.bytes(i), CHECK_OPTIONS));
            }
            return Err(CmdError::msg(format!(
                "ERR syntax error: <limit> needs <window_seconds> after it; allowed options are {CHECK_OPTIONS}"
            )));
        }
        let limit = int_in(args.bytes(i), "limit", 1, MAX_LIMIT as i64)?;
        let window = int_in(
            args.bytes(i + 1),
            "window_seconds",
            (MIN_WINDOW_MS / 1000) as i64,
            (MAX_WINDOW_MS / 1000) as i64,
        )?;
        let rule = Rule {
            limit: limit as u64,
            window_ms: window as u64 * 1000,
        };
        match explicit.as_mut() {
            None => explicit = Some(Rules::one(rule)),
            Some(rules) => rules.push(rule).map_err(|_| {
                CmdError::msg(format!(
                    "ERR at most {MAX_RULES} <limit> <window_seconds> pairs per check"
                ))
            })?,
        }
        i += 2;
    }
    let (action, cost) = action_and_cost(args, i, CHECK_OPTIONS)?;
    Ok(CheckArgs {
        identifier,
        action: action.unwrap_or(b"default"),
        explicit,
        cost: cost.unwrap_or(1),
    })
}

/// `[ACTION <action>] [COST <n>]` from argument `i` on, each at most once;
/// `options` names what the command allows, for the error texts.
fn action_and_cost<'a>(
    args: &Args<'a>,
    mut i: usize,
    options: &str,
) -> Result<(Option<&'a [u8]>, Option<u64>), CmdError> {
    let mut action = None;
    let mut cost = None;
    while i < args.len() {
        let arg = args.bytes(i);
        let is_action = is_token(arg, "ACTION");
        if !is_action && !is_token(arg, "COST") {
            return Err(syntax_error(arg, options));
        }
        if i + 1 >= args.len() {
            return Err(missing_value(arg, options));
        }
        let value = args.bytes(i + 1);
        if is_action {
            if action.replace(valid_action(value)?).is_some() {
                return Err(given_twice(arg, options));
            }
        } else if cost
            .replace(int_in(value, "COST", 1, MAX_COST as i64)? as u64)
            .is_some()
        {
            return Err(given_twice(arg, options));
        }
        i += 2;
    }
    Ok((action, cost))
}

fn valid_action(action: &[u8]) -> Result<&[u8], CmdError> {
    if action.is_empty() || action.len() > crate::policy::MAX_ACTION_LEN {
        return Err(CmdError::msg(format!(
            "ERR action must be 1 to {} bytes",
            crate::policy::MAX_ACTION_LEN
        )));
    }
    if action.contains(&b':') {
        return Err(CmdError::msg(
            "ERR action must not contain ':' (plain keys rate_limit:<action>:<identifier> would be ambiguous)",
        ));
    }
    Ok(action)
}

fn no_policy(action: &[u8]) -> CmdError {
    CmdError::msg(format!(
        "ERR no rate limit policy for action '{}': pass <limit> <window_seconds> or add it to cachekit.ratelimit-policies",
        String::from_utf8_lossy(action)
    ))
}

/// The rules a check applies: explicit, or the action's policy.
fn resolve_rules(a: &CheckArgs) -> Result<Rules, CmdError> {
    match a.explicit {
        Some(r) => Ok(r),
        None => POLICIES
            .current()
            .get(a.action)
            .ok_or_else(|| no_policy(a.action)),
    }
}

/// The rules under which INFO and REFUND read a legacy list: the action's
/// policy, else `default`'s, else 100 per 60 s.
fn legacy_rules(action: &[u8]) -> Rules {
    let policies = POLICIES.current();
    policies
        .get(action)
        .or_else(|| policies.get(b"default"))
        .unwrap_or(Rules::one(Rule {
            limit: 100,
            window_ms: 60_000,
        }))
}

/// The limiter state at a key: the module's own bytes, or a legacy JSON
/// list of Unix seconds converted (into `conv`) under `rules`.
fn read_state<'a>(
    key: &'a Key,
    name: &OwnedString,
    rules: &Rules,
    conv: &'a mut Option<Vec<u8>>,
) -> Result<Option<&'a [u8]>, CmdError> {
    let Some(bytes) = key.read_string()? else {
        return Ok(None);
    };
    if !limiter::is_legacy(bytes) {
        return Ok(Some(bytes));
    }
    *conv = limiter::from_legacy(bytes, rules).map_err(|e| state_error(name, e))?;
    match conv {
        Some(v) => Ok(Some(v.as_slice())),
        // An empty list counts nothing.
        None => Ok(None),
    }
}

/// `<identifier> [ACTION a]` of INFO and RESET (the table's arity
/// guarantees the identifier is there).
fn parse_target<'a>(args: &Args<'a>) -> Result<(&'a [u8], &'a [u8]), CmdError> {
    const OPTIONS: &str = "[ACTION <action>]";
    let option = args.bytes(2);
    match args.len() {
        ..=2 => Ok((args.bytes(1), b"default")),
        _ if !is_token(option, "ACTION") => Err(syntax_error(option, OPTIONS)),
        3 => Err(missing_value(option, OPTIONS)),
        4 => Ok((args.bytes(1), valid_action(args.bytes(3))?)),
        _ if is_token(args.bytes(4), "ACTION") => Err(given_twice(args.bytes(4), OPTIONS)),
        _ => Err(syntax_error(args.bytes(4), OPTIONS)),
    }
}

pub fn limiter_key(action: &[u8], identifier: &[u8]) -> Result<OwnedString, CmdError> {
    Ok(key_name(|buf| {
        keys::ratelimit_key_into(buf, style(), action, identifier)
    })?)
}

fn state_error(key: &OwnedString, e: StateError) -> CmdError {
    match e {
        StateError::Corrupt(why) => CmdError::msg(format!(
            "ERR corrupted rate limiter value at '{}': {why}; RATELIMIT.RESET deletes it",
            String::from_utf8_lossy(&key.bytes()[..key.bytes().len().min(128)])
        )),
        StateError::InvalidArgument(why) => CmdError::msg(format!("ERR {why}")),
    }
}

fn now() -> u64 {
    now_ms().max(0) as u64
}

/// Seconds, rounded up, for a ms duration (negative stays -1).
fn ceil_s(ms: i64) -> i64 {
    if ms < 0 {
        -1
    } else {
        ms / 1000 + i64::from(ms % 1000 != 0)
    }
}

fn reply_decision(reply: &Reply, d: &Decision, now_ms: u64) {
    let reset_at_ms = now_ms.saturating_add(d.reset_after_ms);
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    reply.int_map(&[
        ("allowed", i64::from(d.allowed)),
        ("current_count", int(d.current_count)),
        ("limit", int(d.limit)),
        ("remaining", d.remaining),
        ("retry_after", ceil_s(d.retry_after_ms)),
        ("reset_time", ceil_s(int(reset_at_ms))),
        ("retry_after_ms", d.retry_after_ms),
        ("reset_after_ms", int(d.reset_after_ms)),
    ]);
}

/// Writes a new limiter state and, when it moved, its expiry, without
/// closing the key or sending events; says whether the expiry moved.
fn write_key(key: &mut Key, state: &[u8], expiry: Expiry) -> Result<bool, CmdError> {
    key.write_bytes(state)?;
    // The state's expiry moved, or the key's own was changed from outside
    // (PEXPIRE, PERSIST, RESTORE): either way the key gets the state's.
    let at = i64::try_from(expiry.at_ms).unwrap_or(i64::MAX);
    let moved = expiry.changed || key.abs_expire() != at;
    if moved {
        key.set_abs_expire(at);
    }
    Ok(moved)
}

fn notify_written(ctx: *mut raw::RedisModuleCtx, name: &OwnedString, moved: bool) {
    notify(ctx, raw::REDISMODULE_NOTIFY_STRING, c"ratelimit", name);
    if moved {
        notify(ctx, raw::REDISMODULE_NOTIFY_GENERIC, c"expire", name);
    }
}

/// Writes a new limiter state and, when it moved, its expiry, then closes
/// the key and sends the matching keyspace events: a subscriber may change
/// or delete the key from its callback, so nothing of it may be used after.
/// The expiry is a function of the state (newest entry + window, rounded up
/// to a second), so most checks only read it and leave it alone.
fn store_state(
    ctx: *mut raw::RedisModuleCtx,
    name: &OwnedString,
    mut key: Key,
    state: &[u8],
    expiry: Expiry,
) -> CmdResult {
    let moved = write_key(&mut key, state, expiry)?;
    drop(key);
    notify_written(ctx, name, moved);
    Ok(())
}

thread_local! {
    // No destructor: the strings belong to Redis's allocator and are freed
    // at unload (`release_record_strings`), not at thread exit.
    static RECORD_NUMBERS: RefCell<[KeptNumber; 4]> = const {
        RefCell::new([KeptNumber::NONE, KeptNumber::NONE, KeptNumber::NONE, KeptNumber::NONE])
    };
}

/// Frees the kept `RATELIMIT.RECORD` numbers (MODULE UNLOAD).
pub fn release_record_strings() {
    let _ = RECORD_NUMBERS.try_with(|numbers| {
        if let Ok(mut numbers) = numbers.try_borrow_mut() {
            numbers.iter_mut().for_each(KeptNumber::release);
        }
    });
}

/// Propagates `RATELIMIT.RECORD <key> <at_ms> <limit> <window_ms> <cost>
/// [<limit> <window_ms> ...]`. With one rule (the form every release
/// applies) every argument goes as a string Redis only references: the key
/// name we already hold and the kept numbers.
fn replicate_record(
    ctx: *mut raw::RedisModuleCtx,
    name: &OwnedString,
    at_ms: u64,
    rules: &Rules,
    cost: u64,
) {
    if let [rule] = rules.as_slice() {
        let rule = *rule;
        let mut argv = [name.ptr(); 5];
        let kept = RECORD_NUMBERS.try_with(|numbers| {
            let Ok(mut numbers) = numbers.try_borrow_mut() else {
                return false;
            };
            let [at, limit, window, c] = &mut *numbers;
            argv[1] = at.get(at_ms);
            argv[2] = limit.get(rule.limit);
            argv[3] = window.get(rule.window_ms);
            argv[4] = c.get(cost);
            replicate_refs(ctx, c"RATELIMIT.RECORD", argv);
            true
        });
        if kept == Ok(true) {
            return;
        }
    }
    let mut numbers = vec![at_ms.to_string()];
    for (i, rule) in rules.as_slice().iter().enumerate() {
        numbers.push(rule.limit.to_string());
        numbers.push(rule.window_ms.to_string());
        if i == 0 {
            numbers.push(cost.to_string());
        }
    }
    let mut argv: Vec<&[u8]> = vec![name.bytes()];
    argv.extend(numbers.iter().map(String::as_bytes));
    replicate(ctx, c"RATELIMIT.RECORD", &argv);
}

/// A check's decision, with the key written and the effect replicated.
fn run_check(reply: &Reply, args: &Args) -> Result<(Decision, u64), CmdError> {
    let a = parse_check_syntax(args, 1)?;
    let rules = resolve_rules(&a)?;
    let ctx = reply.ctx();
    let name = limiter_key(a.action, a.identifier)?;
    let key = open_checked(ctx, &name, args.access())?;
    let now = now();
    SCRATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut conv = None;
        let state = read_state(&key, &name, &rules, &mut conv)?;
        let (d, effect) = limiter::check_and_store(state, now, &rules, a.cost, &mut buf)
            .map_err(|e| state_error(&name, e))?;
        // A rule-only rewrite replays as a record of cost 0.
        let written = match effect {
            Effect::Store(expiry) => Some((expiry, a.cost)),
            Effect::Rewrite(expiry) => Some((expiry, 0)),
            Effect::Nothing => None,
        };
        if let Some((expiry, cost)) = written {
            store_state(ctx, &name, key, &buf, expiry)?;
            replicate_record(ctx, &name, now, &rules, cost);
        }
        COUNTERS.limiter(d.allowed);
        Ok((d, now))
    })
}

pub fn check(reply: &Reply, args: &Args) -> CmdResult {
    let (d, now) = run_check(reply, args)?;
    reply_decision(reply, &d, now);
    Ok(())
}

/// `RATELIMIT.ACQUIRE`: CHECK with a one-integer reply: 0 admitted, else
/// the ms to wait (>= 1), -1 when the cost exceeds a limit.
pub fn acquire(reply: &Reply, args: &Args) -> CmdResult {
    let (d, _) = run_check(reply, args)?;
    reply.int(if d.allowed { 0 } else { d.retry_after_ms });
    Ok(())
}

pub fn peek(reply: &Reply, args: &Args) -> CmdResult {
    let a = parse_check_syntax(args, 1)?;
    let rules = resolve_rules(&a)?;
    let ctx = reply.ctx();
    let name = limiter_key(a.action, a.identifier)?;
    let key = open_checked(ctx, &name, args.access())?;
    let now = now();
    let mut conv = None;
    let state = read_state(&key, &name, &rules, &mut conv)?;
    let d = limiter::peek_rules(state, now, &rules, a.cost).map_err(|e| state_error(&name, e))?;
    reply_decision(reply, &d, now);
    Ok(())
}

/// Most limiters one `RATELIMIT.CHECKALL` takes.
pub const MAX_LIMITERS: usize = 16;

const CHECKALL_SYNTAX: &str =
    "RATELIMIT.CHECKALL <numlimiters> <action> <identifier> [<action> <identifier> ...] [COST <n>]";

/// `RATELIMIT.CHECKALL`: admits only if every limiter allows under its
/// action's policy, then records COST in each; a denied call writes nothing.
pub fn checkall(reply: &Reply, args: &Args) -> CmdResult {
    let n = int_in(args.bytes(1), "numlimiters", 1, MAX_LIMITERS as i64)? as usize;
    let after = 2 + 2 * n;
    let cost = match args.len().checked_sub(after) {
        Some(0) => 1,
        Some(2) if is_token(args.bytes(after), "COST") => {
            int_in(args.bytes(after + 1), "COST", 1, MAX_COST as i64)? as u64
        }
        _ => {
            return Err(CmdError::msg(format!(
                "ERR numlimiters is {n} but {} arguments follow it; syntax: {CHECKALL_SYNTAX}",
                args.len() - 2
            )))
        }
    };
    let ctx = reply.ctx();
    let policies = POLICIES.current();
    let mut limiters: Vec<(OwnedString, Rules)> = Vec::with_capacity(n);
    for i in 0..n {
        let action = valid_action(args.bytes(2 + 2 * i))?;
        let identifier = args.bytes(3 + 2 * i);
        let rules = policies.get(action).ok_or_else(|| no_policy(action))?;
        let name = limiter_key(action, identifier)?;
        if limiters
            .iter()
            .any(|(other, _)| other.bytes() == name.bytes())
        {
            return Err(CmdError::msg(format!(
                "ERR limiter {} ('{}') is given twice",
                i + 1,
                String::from_utf8_lossy(&name.bytes()[..name.bytes().len().min(128)])
            )));
        }
        limiters.push((name, rules));
    }
    if CLUSTER_MODE.load(Ordering::Relaxed) {
        let slot = limiters.first().map(|(k, _)| keys::key_slot(k.bytes()));
        if limiters
            .iter()
            .any(|(k, _)| Some(keys::key_slot(k.bytes())) != slot)
        {
            return Err(CmdError::msg(
                "CROSSSLOT Keys in request don't hash to the same slot (give every identifier the same {tag})",
            ));
        }
    }
    let checks: Vec<(&OwnedString, KeyAccess)> =
        limiters.iter().map(|(k, _)| (k, args.access())).collect();
    check_keys(ctx, &checks)?;
    let mut keys: Vec<Key> = limiters
        .iter()
        .map(|(name, _)| Key::open(ctx, name, args.access().mode()))
        .collect();
    let now = now();
    // Decide every limiter first; write only when all allow.
    let mut outcomes: Vec<(Decision, Option<Expiry>, Vec<u8>)> = Vec::with_capacity(n);
    for ((name, rules), key) in limiters.iter().zip(&keys) {
        let mut conv = None;
        let state = read_state(key, name, rules, &mut conv)?;
        let mut out = Vec::new();
        let (d, effect) = limiter::check_and_store(state, now, rules, cost, &mut out)
            .map_err(|e| state_error(name, e))?;
        let expiry = match effect {
            Effect::Store(e) => Some(e),
            Effect::Rewrite(_) | Effect::Nothing => None,
        };
        outcomes.push((d, expiry, out));
    }
    let allowed = outcomes.iter().all(|(d, _, _)| d.allowed);
    let mut moved = Vec::new();
    if allowed {
        for (key, (_, expiry, out)) in keys.iter_mut().zip(&outcomes) {
            if let Some(expiry) = expiry {
                moved.push(write_key(key, out, *expiry)?);
            }
        }
    }
    drop(keys);
    if allowed {
        for ((name, rules), m) in limiters.iter().zip(moved) {
            notify_written(ctx, name, m);
            replicate_record(ctx, name, now, rules, cost);
        }
    }
    COUNTERS.limiter(allowed);
    // The wait until all allow: the longest; -1 (never) wins.
    let mut blocking: i64 = -1;
    let mut wait: i64 = 0;
    for (i, (d, _, _)) in outcomes.iter().enumerate() {
        if d.allowed || (wait < 0) {
            continue;
        }
        if d.retry_after_ms < 0 || blocking < 0 || d.retry_after_ms > wait {
            blocking = i as i64;
            wait = d.retry_after_ms;
        }
    }
    reply.map(4);
    reply.field("allowed");
    reply.int(i64::from(allowed));
    reply.field("retry_after_ms");
    reply.int(wait);
    reply.field("blocking");
    reply.int(blocking);
    reply.field("remaining");
    reply.array(outcomes.len());
    for (d, _, _) in &outcomes {
        // An allowing limiter of a denied call records nothing: its cost
        // is not taken.
        let unspent = if d.allowed && !allowed {
            i64::try_from(cost).unwrap_or(i64::MAX)
        } else {
            0
        };
        reply.int(d.remaining.saturating_add(unspent));
    }
    Ok(())
}

const REFUND_OPTIONS: &str = "[ACTION <action>] [COST <n>]";

/// `RATELIMIT.REFUND <identifier> [ACTION a] [COST n]`: takes back the `n`
/// most recent requests still counted; replies how many.
pub fn refund(reply: &Reply, args: &Args) -> CmdResult {
    let identifier = args.bytes(1);
    let (action, cost) = action_and_cost(args, 2, REFUND_OPTIONS)?;
    let action = action.unwrap_or(b"default");
    let cost = cost.unwrap_or(1);
    let ctx = reply.ctx();
    let name = limiter_key(action, identifier)?;
    let key = open_checked(ctx, &name, args.access())?;
    let now = now();
    let raw = key.read_string()?;
    let legacy = raw.is_some_and(limiter::is_legacy);
    let mut conv = None;
    let state = read_state(&key, &name, &legacy_rules(action), &mut conv)?;
    let Some(state) = state else {
        reply.int(0);
        return Ok(());
    };
    let mut out = Vec::new();
    let done = limiter::refund(state, now, cost, &mut out).map_err(|e| state_error(&name, e))?;
    let removed = apply_refund(ctx, &name, key, done, &out)?;
    if removed > 0 {
        if legacy {
            // A converted legacy list: the replica converts under its own
            // policies, so it gets the result itself.
            replicate_result(ctx, &name)?;
        } else {
            let (at, n) = (now.to_string(), removed.to_string());
            replicate(
                ctx,
                c"RATELIMIT.RECORD",
                &[name.bytes(), at.as_bytes(), b"REFUND", n.as_bytes()],
            );
        }
    }
    reply.int(i64::try_from(removed).unwrap_or(i64::MAX));
    Ok(())
}

/// Applies a refund to `key`: writes or deletes it, sends events; returns
/// how many were taken back.
fn apply_refund(
    ctx: *mut raw::RedisModuleCtx,
    name: &OwnedString,
    mut key: Key,
    done: Refund,
    out: &[u8],
) -> Result<u64, CmdError> {
    match done {
        Refund::Nothing => Ok(0),
        Refund::Store { removed, expiry } => {
            store_state(ctx, name, key, out, expiry)?;
            Ok(removed)
        }
        Refund::Delete { removed } => {
            key.delete();
            drop(key);
            notify(ctx, raw::REDISMODULE_NOTIFY_GENERIC, c"del", name);
            Ok(removed)
        }
    }
}

/// Replicates a key as it now is: `SET key value PXAT at`, or `DEL`.
fn replicate_result(ctx: *mut raw::RedisModuleCtx, name: &OwnedString) -> CmdResult {
    let key = Key::open(ctx, name, crate::redis::store::Mode::Read);
    match key.read_string()? {
        Some(bytes) => {
            let at = key.abs_expire().to_string();
            replicate(ctx, c"SET", &[name.bytes(), bytes, b"PXAT", at.as_bytes()]);
        }
        None => replicate(ctx, c"DEL", &[name.bytes()]),
    }
    Ok(())
}

pub fn info(reply: &Reply, args: &Args) -> CmdResult {
    let (identifier, action) = parse_target(args)?;
    let ctx = reply.ctx();
    let name = limiter_key(action, identifier)?;
    let key = open_checked(ctx, &name, args.access())?;
    let now = now();
    let mut conv = None;
    let info = match read_state(&key, &name, &legacy_rules(action), &mut conv)? {
        Some(state) => Some(limiter::info(state, now).map_err(|e| state_error(&name, e))?),
        None => None,
    };
    let policy = POLICIES.current().get(action);
    let (count, limit, window_ms, stamps, rules) = match &info {
        Some(i) => (
            i.count,
            i.limit,
            i.window_ms,
            i.timestamps.as_slice(),
            Some(i.rules),
        ),
        None => {
            let first = policy.and_then(|r| r.as_slice().first().copied());
            (
                0,
                first.map_or(0, |r| r.limit),
                first.map_or(0, |r| r.window_ms),
                &[][..],
                policy,
            )
        }
    };
    let rules: &[Rule] = rules.as_ref().map_or(&[], |r| r.as_slice());
    reply.map(6);
    reply.field("current_requests");
    reply.int(count as i64);
    reply.field("limit");
    reply.int(limit as i64);
    reply.field("window_ms");
    reply.int(window_ms as i64);
    reply.field("timestamps");
    reply.array(stamps.len());
    for t in stamps {
        reply.int(*t as i64);
    }
    reply.field("ttl_ms");
    reply.int(key.ttl_ms());
    reply.field("rules");
    reply.array(rules.len());
    for r in rules {
        reply.array(2);
        reply.int(r.limit as i64);
        reply.int(r.window_ms as i64);
    }
    Ok(())
}

pub fn reset(reply: &Reply, args: &Args) -> CmdResult {
    let (identifier, action) = parse_target(args)?;
    let ctx = reply.ctx();
    let name = limiter_key(action, identifier)?;
    let mut key = open_checked(ctx, &name, args.access())?;
    // A limiter is a string (a corrupted one too: RESET is how to clear
    // it); another type at this name is not ours to delete.
    key.expect_string_or_empty()?;
    let existed = key.exists() && key.delete();
    drop(key);
    if existed {
        notify(ctx, raw::REDISMODULE_NOTIFY_GENERIC, c"del", &name);
        replicate(ctx, c"DEL", &[name.bytes()]);
    }
    reply.int(i64::from(existed));
    Ok(())
}

/// `RATELIMIT.RECORD <key> <at_ms> <limit> <window_ms> <cost> [<limit>
/// <window_ms> ...]`: appends `cost` requests at `at_ms` whatever the
/// count, as the primary decided; `RATELIMIT.RECORD <key> <at_ms> REFUND
/// <n>` takes back `n` as the primary did. Sent to replicas and the AOF in
/// place of CHECK and REFUND, so they need no clock of their own.
pub fn record(reply: &Reply, args: &Args) -> CmdResult {
    let at = int_in(args.bytes(2), "at_ms", 0, i64::MAX)? as u64;
    let ctx = reply.ctx();
    let name = OwnedString::new(args.bytes(1));
    if is_token(args.bytes(3), "REFUND") {
        if args.len() != 5 {
            return Err(CmdError::WrongArity);
        }
        let n = int_in(args.bytes(4), "n", 1, MAX_COST as i64)? as u64;
        let key = Key::open(ctx, &name, args.access().mode());
        let mut out = Vec::new();
        let done = match key.read_string()? {
            Some(state) => {
                limiter::refund(state, at, n, &mut out).map_err(|e| state_error(&name, e))?
            }
            None => Refund::Nothing,
        };
        apply_refund(ctx, &name, key, done, &out)?;
        replicate_verbatim(ctx);
        reply.ok();
        return Ok(());
    }
    if args.len() < 6 || !args.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity);
    }
    let rule_at = |i: usize| -> Result<Rule, CmdError> {
        let limit = int_in(args.bytes(i), "limit", 1, MAX_LIMIT as i64)? as u64;
        let window_ms = int_in(
            args.bytes(i + 1),
            "window_ms",
            MIN_WINDOW_MS as i64,
            MAX_WINDOW_MS as i64,
        )? as u64;
        Ok(Rule { limit, window_ms })
    };
    let mut rules = Rules::one(rule_at(3)?);
    // Cost 0 replays a denied check that stored its rules (Effect::Rewrite).
    let cost = int_in(args.bytes(5), "cost", 0, MAX_COST as i64)? as u64;
    let mut i = 6;
    while i + 1 < args.len() {
        rules
            .push(rule_at(i)?)
            .map_err(|_| CmdError::msg(format!("ERR at most {MAX_RULES} rules")))?;
        i += 2;
    }
    // The key is the routing argument itself, checked by Redis from the key spec.
    let key = Key::open(ctx, &name, args.access().mode());
    SCRATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut conv = None;
        let state = read_state(&key, &name, &rules, &mut conv)?;
        let expiry = limiter::record_rules(state, at, &rules, cost, &mut buf)
            .map_err(|e| state_error(&name, e))?;
        if let Some(expiry) = expiry {
            store_state(ctx, &name, key, &buf, expiry)?;
        }
        // RECORD is deterministic, so it replicates as sent.
        replicate_verbatim(ctx);
        reply.ok();
        Ok(())
    })
}
