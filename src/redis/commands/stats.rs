//! CACHE.STATS [RESET] and the INFO section.

use std::sync::atomic::Ordering;

use redis_module::raw;

use crate::args::is_token;
use crate::error::{CmdError, CmdResult};
use crate::redis::command::Args;
use crate::redis::reply::Reply;
use crate::redis::{purge, server};
use crate::stats::{hit_rate, recommendations, Namespace, COUNTERS};

pub fn stats(reply: &Reply, args: &Args) -> CmdResult {
    match args.len() {
        1 => {}
        2 if is_token(args.bytes(1), "RESET") => {
            // Zeroing counters others monitor is what CONFIG RESETSTAT does
            // to Redis's own: it takes the same permission, so that a user
            // granted CACHE.STATS to read them cannot reset them.
            if !crate::redis::acl::may_run(
                reply.ctx(),
                &["CONFIG", "RESETSTAT"],
                "cache.stats|reset",
            )? {
                return Err(CmdError::Static(
                    "NOPERM CACHE.STATS RESET needs the permission to run CONFIG RESETSTAT (e.g. +config|resetstat), which this user lacks",
                ));
            }
            COUNTERS.reset();
            reply.ok();
            return Ok(());
        }
        2 => return Err(crate::args::syntax_error(args.bytes(1), "RESET")),
        // Redis's arity can only say "at least one" (-1): at most one
        // argument is checked here.
        _ => return Err(CmdError::WrongArity),
    }
    let s = COUNTERS.snapshot();
    let ctx = reply.ctx();
    let mem = server::memory(ctx);
    let clients = server::connected_clients(ctx);
    let (keyspace_hits, keyspace_misses) = server::keyspace_hits_misses(ctx);
    let (hits, misses) = (s.total_hits(), s.total_misses());

    reply.map(12);
    reply.field("hits");
    reply.int(hits as i64);
    reply.field("misses");
    reply.int(misses as i64);
    reply.field("total_requests");
    reply.int((hits + misses) as i64);
    reply.field("hit_rate");
    reply.double(hit_rate(hits, misses));
    reply.field("namespaces");
    reply.map(Namespace::ALL.len());
    for ns in Namespace::ALL {
        let (h, m) = (s.hits[ns as usize], s.misses[ns as usize]);
        reply.field(ns.namespace());
        reply.map(3);
        reply.field("hits");
        reply.int(h as i64);
        reply.field("misses");
        reply.int(m as i64);
        reply.field("hit_rate");
        reply.double(hit_rate(h, m));
    }
    reply.field("ratelimit");
    reply.map(2);
    reply.field("allowed");
    reply.int(s.allowed as i64);
    reply.field("denied");
    reply.int(s.denied as i64);
    reply.field("used_memory_human");
    reply.bulk(mem.used_human.as_bytes());
    reply.field("used_memory_peak_human");
    reply.bulk(mem.peak_human.as_bytes());
    reply.field("connected_clients");
    reply.int(i64::try_from(clients).unwrap_or(i64::MAX));
    reply.field("keyspace_hit_rate");
    reply.double(hit_rate(keyspace_hits, keyspace_misses));
    reply.field("purges");
    reply.map(2);
    reply.field("runs");
    reply.int(i64::try_from(purge::RUNS.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
    reply.field("last_run");
    reply.int(purge::LAST_RUN.load(Ordering::Relaxed));
    reply.field("recommendations");
    let recs = recommendations(&s, mem.used, mem.max, clients);
    reply.array(recs.len());
    for r in &recs {
        reply.bulk(r.as_bytes());
    }
    Ok(())
}

/// `INFO cachekit`: section `cachekit_stats`, fields prefixed `cachekit_` by Redis.
pub extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: std::ffi::c_int) {
    let s = COUNTERS.snapshot();
    let mut fields: Vec<(String, u64)> = vec![
        ("hits".into(), s.total_hits()),
        ("misses".into(), s.total_misses()),
    ];
    for ns in Namespace::ALL {
        fields.push((format!("{}_hits", ns.namespace()), s.hits[ns as usize]));
        fields.push((format!("{}_misses", ns.namespace()), s.misses[ns as usize]));
    }
    fields.push(("ratelimit_allowed".into(), s.allowed));
    fields.push(("ratelimit_denied".into(), s.denied));
    fields.push(("purges".into(), purge::RUNS.load(Ordering::Relaxed)));
    fields.push((
        "purge_last_run".into(),
        u64::try_from(purge::LAST_RUN.load(Ordering::Relaxed)).unwrap_or(0),
    ));
    server::add_info_section(ctx, c"stats", &fields);
}
