//! RATELIMIT.CHECK/PEEK/INFO/RESET and RATELIMIT.RECORD, the deterministic
//! effect that replicas and the AOF apply instead of re-running a check.

use std::cell::RefCell;

use redis_module::raw;

use crate::args::{given_twice, int_in, is_token, missing_value, syntax_error};
use crate::error::{CmdError, CmdResult};
use crate::keys;
use crate::limiter::{
    self, Decision, Effect, Expiry, Rule, StateError, MAX_COST, MAX_LIMIT, MAX_WINDOW_MS,
    MIN_WINDOW_MS,
};
use crate::redis::acl::open_checked;
use crate::redis::command::Args;
use crate::redis::commands::cache::style;
use crate::redis::config::POLICIES;
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

const CHECK_OPTIONS: &str = "[<limit> <window_seconds>] [ACTION <action>] [COST <n>]";

pub struct CheckArgs<'a> {
    pub identifier: &'a [u8],
    pub action: &'a [u8],
    /// `<limit> <window_seconds>` when given; else the action's policy applies.
    pub explicit: Option<Rule>,
    pub cost: u64,
}

/// Parses `<identifier> [<limit> <window_seconds>] [ACTION a] [COST n]`
/// from `from` on; the table's arity guarantees the identifier is there.
pub fn parse_check_syntax<'a>(args: &Args<'a>, from: usize) -> Result<CheckArgs<'a>, CmdError> {
    let identifier = args.bytes(from);
    let mut i = from + 1;
    let mut explicit = None;
    if i < args.len() && !is_token(args.bytes(i), "ACTION") && !is_token(args.bytes(i), "COST") {
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
        explicit = Some(Rule {
            limit: limit as u64,
            window_ms: window as u64 * 1000,
        });
        i += 2;
    }
    let mut action = None;
    let mut cost = None;
    while i < args.len() {
        let arg = args.bytes(i);
        let is_action = is_token(arg, "ACTION");
        if !is_action && !is_token(arg, "COST") {
            return Err(syntax_error(arg, CHECK_OPTIONS));
        }
        if i + 1 >= args.len() {
            return Err(missing_value(arg, CHECK_OPTIONS));
        }
        let value = args.bytes(i + 1);
        if is_action {
            if action.replace(valid_action(value)?).is_some() {
                return Err(given_twice(arg, CHECK_OPTIONS));
            }
        } else if cost
            .replace(int_in(value, "COST", 1, MAX_COST as i64)? as u64)
            .is_some()
        {
            return Err(given_twice(arg, CHECK_OPTIONS));
        }
        i += 2;
    }
    Ok(CheckArgs {
        identifier,
        action: action.unwrap_or(b"default"),
        explicit,
        cost: cost.unwrap_or(1),
    })
}

fn valid_action(action: &[u8]) -> Result<&[u8], CmdError> {
    if action.is_empty() || action.len() > crate::policy::MAX_ACTION_LEN {
        return Err(CmdError::msg(format!(
            "ERR action must be 1 to {} bytes",
            crate::policy::MAX_ACTION_LEN
        )));
    }
    Ok(action)
}

/// The rule a check applies: explicit, or the action's policy.
fn resolve_rule(a: &CheckArgs) -> Result<Rule, CmdError> {
    match a.explicit {
        Some(r) => Ok(r),
        None => POLICIES.current().get(a.action).ok_or_else(|| {
            CmdError::msg(format!(
                "ERR no rate limit policy for action '{}': pass <limit> <window_seconds> or add it to cachekit.ratelimit-policies",
                String::from_utf8_lossy(a.action)
            ))
        }),
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
    key.write_bytes(state)?;
    // The state's expiry moved, or the key's own was changed from outside
    // (PEXPIRE, PERSIST, RESTORE): either way the key gets the state's.
    let at = i64::try_from(expiry.at_ms).unwrap_or(i64::MAX);
    let moved = expiry.changed || key.abs_expire() != at;
    if moved {
        key.set_abs_expire(at);
    }
    drop(key);
    notify(ctx, raw::REDISMODULE_NOTIFY_STRING, c"ratelimit", name);
    if moved {
        notify(ctx, raw::REDISMODULE_NOTIFY_GENERIC, c"expire", name);
    }
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

/// Propagates `RATELIMIT.RECORD <key> <at_ms> <limit> <window_ms> <cost>`.
/// Every argument goes as a string Redis only references: the key name we
/// already hold and the kept numbers.
fn replicate_record(
    ctx: *mut raw::RedisModuleCtx,
    name: &OwnedString,
    at_ms: u64,
    rule: Rule,
    cost: u64,
) {
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
    if kept != Ok(true) {
        // Not reachable on Redis's single command thread; stay correct anyway.
        let numbers = [at_ms, rule.limit, rule.window_ms, cost].map(|v| v.to_string());
        replicate(
            ctx,
            c"RATELIMIT.RECORD",
            &[
                name.bytes(),
                numbers[0].as_bytes(),
                numbers[1].as_bytes(),
                numbers[2].as_bytes(),
                numbers[3].as_bytes(),
            ],
        );
    }
}

pub fn check(reply: &Reply, args: &Args) -> CmdResult {
    let a = parse_check_syntax(args, 1)?;
    let rule = resolve_rule(&a)?;
    let ctx = reply.ctx();
    let name = limiter_key(a.action, a.identifier)?;
    let key = open_checked(ctx, &name, args.access())?;
    let now = now();
    SCRATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        let (d, effect) = limiter::check_and_store(key.read_string()?, now, rule, a.cost, &mut buf)
            .map_err(|e| state_error(&name, e))?;
        // A rule-only rewrite replays as a record of cost 0.
        let written = match effect {
            Effect::Store(expiry) => Some((expiry, a.cost)),
            Effect::Rewrite(expiry) => Some((expiry, 0)),
            Effect::Nothing => None,
        };
        if let Some((expiry, cost)) = written {
            store_state(ctx, &name, key, &buf, expiry)?;
            replicate_record(ctx, &name, now, rule, cost);
        }
        COUNTERS.limiter(d.allowed);
        reply_decision(reply, &d, now);
        Ok(())
    })
}

pub fn peek(reply: &Reply, args: &Args) -> CmdResult {
    let a = parse_check_syntax(args, 1)?;
    let rule = resolve_rule(&a)?;
    let ctx = reply.ctx();
    let name = limiter_key(a.action, a.identifier)?;
    let key = open_checked(ctx, &name, args.access())?;
    let now = now();
    let d =
        limiter::peek(key.read_string()?, now, rule, a.cost).map_err(|e| state_error(&name, e))?;
    reply_decision(reply, &d, now);
    Ok(())
}

pub fn info(reply: &Reply, args: &Args) -> CmdResult {
    let (identifier, action) = parse_target(args)?;
    let ctx = reply.ctx();
    let name = limiter_key(action, identifier)?;
    let key = open_checked(ctx, &name, args.access())?;
    let now = now();
    let info = match key.read_string()? {
        Some(state) => Some(limiter::info(state, now).map_err(|e| state_error(&name, e))?),
        None => None,
    };
    let (count, limit, window_ms, stamps) = match &info {
        Some(i) => (i.count, i.limit, i.window_ms, i.timestamps.as_slice()),
        None => {
            let policy = POLICIES.current().get(action);
            (
                0,
                policy.map_or(0, |r| r.limit),
                policy.map_or(0, |r| r.window_ms),
                &[][..],
            )
        }
    };
    reply.map(5);
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

/// `RATELIMIT.RECORD <key> <at_ms> <limit> <window_ms> <cost>`: appends `cost`
/// requests at `at_ms` whatever the count, as the primary decided. Sent to
/// replicas and the AOF in place of CHECK, so they need no clock of their own.
pub fn record(reply: &Reply, args: &Args) -> CmdResult {
    let at = int_in(args.bytes(2), "at_ms", 0, i64::MAX)? as u64;
    let limit = int_in(args.bytes(3), "limit", 1, MAX_LIMIT as i64)? as u64;
    let window_ms = int_in(
        args.bytes(4),
        "window_ms",
        MIN_WINDOW_MS as i64,
        MAX_WINDOW_MS as i64,
    )? as u64;
    // Cost 0 replays a denied check that stored its rule (Effect::Rewrite).
    let cost = int_in(args.bytes(5), "cost", 0, MAX_COST as i64)? as u64;
    let ctx = reply.ctx();
    let name = OwnedString::new(args.bytes(1));
    // The key is the routing argument itself, checked by Redis from the key spec.
    let key = Key::open(ctx, &name, args.access().mode());
    SCRATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        let rule = Rule { limit, window_ms };
        let expiry = limiter::record(key.read_string()?, at, rule, cost, &mut buf)
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
