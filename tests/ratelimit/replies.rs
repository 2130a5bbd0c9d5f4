//! The reply maps of CHECK, PEEK and INFO, and RESET.

use super::*;

#[test]
fn reply_maps_keep_the_contract_order() {
    on_each_server(|s| {
        for resp3 in [false, true] {
            let mut c = if resp3 { s.conn_resp3() } else { s.conn() };
            let id = if resp3 { "order3" } else { "order2" };
            let raw: Value = cmd("RATELIMIT.CHECK")
                .arg(&[id, "5", "10"])
                .query(&mut c)
                .unwrap();
            match (&raw, resp3) {
                (Value::Map(_), true) | (Value::Array(_), false) => {}
                (other, _) => panic!("resp3={resp3}: unexpected reply shape {other:?}"),
            }
            let d = decision(raw);
            assert!(d.allowed);
            assert_eq!((d.count, d.limit, d.remaining), (1, 5, 4));
            let p = peek(&mut c, &[id, "5", "10"]);
            assert_eq!((p.allowed, p.count, p.remaining), (true, 2, 3));
            let i = info(&mut c, &[id]);
            assert_eq!((i.count, i.limit, i.window_ms), (1, 5, 10_000));
        }
    });
}

#[test]
fn first_check_reports_exact_figures() {
    on_each_server(|s| {
        let mut c = s.conn();
        let (d, before, after) = timed(&mut c, "RATELIMIT.CHECK", &["fresh", "3", "7"]);
        assert_eq!(
            (d.allowed, d.count, d.limit, d.remaining, d.retry_after_ms),
            (true, 1, 3, 2, 0)
        );
        // The request just admitted is the oldest: it leaves in a full window.
        assert_eq!(d.reset_after_ms, 7_000);
        let i = info(&mut c, &["fresh"]);
        let t = i.timestamps[0];
        assert!((before..=after).contains(&t), "{before} <= {t} <= {after}");
        assert_eq!(d.reset_time, ceil_s(t + 7_000), "reset_time rounds up");

        // Nothing counted: reset_time is now (rounded up), reset_after_ms 0.
        let (d, before, after) = timed(&mut c, "RATELIMIT.PEEK", &["none", "3", "7", "COST", "4"]);
        assert_eq!(
            (d.allowed, d.count, d.retry_after_ms, d.reset_after_ms),
            (false, 0, -1, 0)
        );
        assert!((ceil_s(before)..=ceil_s(after)).contains(&d.reset_time));
    });
}

#[test]
fn peek_records_nothing() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:peeker";
        let d = peek(&mut c, &["peeker", "3", "60", "COST", "2"]);
        assert_eq!((d.allowed, d.count, d.remaining), (true, 2, 1));
        assert_eq!(get_bytes(&mut c, key), None);
        assert!(check(&mut c, &["peeker", "3", "60"]).allowed);
        let before = snapshot(&mut c, key);
        let dirty = info_int(&mut c, "persistence", "rdb_changes_since_last_save");
        for cost in ["1", "2", "3", "4"] {
            let d = peek(&mut c, &["peeker", "3", "60", "COST", cost]);
            let n: i64 = cost.parse().unwrap();
            assert_eq!(d.allowed, n < 3, "cost {cost}: 1 counted + {n} within 3");
            assert_eq!(d.count, if d.allowed { 1 + n } else { 1 });
        }
        assert_eq!(snapshot(&mut c, key), before);
        assert_eq!(
            info_int(&mut c, "persistence", "rdb_changes_since_last_save"),
            dirty
        );
        assert_eq!(info(&mut c, &["peeker"]).count, 1);
    });
}

#[test]
fn info_lists_one_timestamp_per_unit_and_the_ttl() {
    on_each_server(|s| {
        let mut c = s.conn();
        let (_, b0, a0) = timed(&mut c, "RATELIMIT.CHECK", &["inf", "10", "20", "COST", "2"]);
        sleep_ms(5);
        let (_, b1, a1) = timed(&mut c, "RATELIMIT.CHECK", &["inf", "10", "20"]);
        let (_, b2, a2) = timed(&mut c, "RATELIMIT.CHECK", &["inf", "10", "20", "COST", "3"]);
        let before = now_ms();
        let i = info(&mut c, &["inf"]);
        let after = now_ms();
        assert_eq!((i.count, i.limit, i.window_ms), (6, 10, 20_000));
        let t = &i.timestamps;
        assert!((b0..=a0).contains(&t[0]) && t[0] == t[1]);
        assert!((b1..=a1).contains(&t[2]));
        assert!((b2..=a2).contains(&t[3]) && t[3] == t[4] && t[4] == t[5]);
        // ttl_ms: until the newest leaves, rounded up to a whole second.
        let until = t[5] + 20_000;
        assert!(
            i.ttl_ms >= until - after && i.ttl_ms <= until - before + 1_000,
            "ttl {} for newest leaving at {until}",
            i.ttl_ms
        );
        let i = info(&mut c, &["inf", "ACTION", "default"]);
        assert_eq!(i.count, 6);
        // Unknown limiter.
        let i = info(&mut c, &["nobody"]);
        assert_eq!(
            (i.count, i.limit, i.window_ms, i.ttl_ms),
            (0, 100, 60_000, -2)
        );
        assert!(i.timestamps.is_empty());
    });
}

#[test]
fn reset_deletes_the_limiter() {
    on_each_server(|s| {
        let mut c = s.conn();
        for _ in 0..2 {
            check(&mut c, &["r", "2", "60"]);
            check(&mut c, &["r", "2", "60", "ACTION", "search"]);
        }
        assert!(!check(&mut c, &["r", "2", "60"]).allowed);
        let n: i64 = cmd("RATELIMIT.RESET").arg("r").query(&mut c).unwrap();
        assert_eq!(n, 1);
        let n: i64 = cmd("RATELIMIT.RESET").arg("r").query(&mut c).unwrap();
        assert_eq!(n, 0);
        assert_eq!(get_bytes(&mut c, "rate_limit:default:r"), None);
        assert!(
            get_bytes(&mut c, "rate_limit:search:r").is_some(),
            "other actions stay"
        );
        let d = check(&mut c, &["r", "2", "60"]);
        assert_eq!((d.allowed, d.count), (true, 1));
        let n: i64 = cmd("RATELIMIT.RESET")
            .arg(&["r", "ACTION", "search"])
            .query(&mut c)
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(get_bytes(&mut c, "rate_limit:search:r"), None);
    });
}

#[test]
fn info_reports_the_rule_of_the_last_check() {
    on_each_server(|s| {
        let mut c = s.conn();
        assert!(check(&mut c, &["lr", "5", "10"]).allowed);
        // Denied under another rule with a window at least as long: that
        // rule is stored, nothing dropped.
        assert!(!check(&mut c, &["lr", "1", "60"]).allowed);
        let i = info(&mut c, &["lr"]);
        assert_eq!((i.count, i.limit, i.window_ms), (1, 1, 60_000));
        assert!(
            i.ttl_ms > 50_000,
            "TTL follows the stored window: {}",
            i.ttl_ms
        );
        // A PEEK under yet another rule only reads.
        assert!(!peek(&mut c, &["lr", "1", "120"]).allowed);
        let i = info(&mut c, &["lr"]);
        assert_eq!((i.limit, i.window_ms), (1, 60_000));
        assert!(check(&mut c, &["lr", "5", "60"]).allowed);
        let i = info(&mut c, &["lr"]);
        assert_eq!((i.count, i.limit, i.window_ms), (2, 5, 60_000));
    });
}
