//! The sliding window with real waits, costs and rule changes.

use super::*;

#[test]
fn window_edges_with_real_waits() {
    on_each_server(|s| {
        let mut c = s.conn();
        let args = ["edge", "2", "1"];
        assert!(check(&mut c, &args).allowed);
        sleep_ms(400);
        let d = check(&mut c, &args);
        assert_eq!((d.allowed, d.count, d.remaining), (true, 2, 0));
        let stamps = info(&mut c, &["edge"]).timestamps;
        assert_eq!(stamps.len(), 2);

        let (d, before, after) = timed(&mut c, "RATELIMIT.CHECK", &args);
        assert!(!d.allowed);
        assert_eq!((d.count, d.remaining, d.retry_after), (2, 0, 1));
        // Exactly until the oldest leaves: oldest + window - now.
        let (lo, hi) = (stamps[0] + 1_000 - after, stamps[0] + 1_000 - before);
        assert!(
            (lo..=hi).contains(&d.retry_after_ms),
            "{lo} <= {} <= {hi}",
            d.retry_after_ms
        );
        assert_eq!(d.reset_after_ms, d.retry_after_ms);

        // Waiting exactly retry_after_ms is enough.
        sleep_ms(d.retry_after_ms);
        let (d, before, after) = timed(&mut c, "RATELIMIT.CHECK", &args);
        assert!(d.allowed, "after waiting retry_after_ms: {d:?}");
        let i = info(&mut c, &["edge"]);
        assert_ne!(i.timestamps[0], stamps[0], "the oldest left");
        // The second request counts until exactly stamps[1] + 1 s.
        if after < stamps[1] + 1_000 {
            assert_eq!(d.count, 2);
            assert_eq!(i.timestamps[0], stamps[1]);
        } else if before >= stamps[1] + 1_000 {
            assert_eq!(d.count, 1);
        }
        if after < stamps[1] + 1_000 {
            // The second request is provably still counted: denied again,
            // and told to wait until it leaves.
            let (d, before, _) = timed(&mut c, "RATELIMIT.PEEK", &args);
            if before < stamps[1] + 1_000 {
                assert!(!d.allowed);
                assert!(d.retry_after_ms <= stamps[1] + 1_000 - before);
            }
        }

        // Everything leaves the window: the key expires by itself.
        let at = pexpiretime(&mut c, "rate_limit:default:edge");
        let newest = *i.timestamps.last().unwrap();
        assert!(
            (newest + 1_000..=newest + 2_000).contains(&at),
            "expiry {at}, newest {newest}"
        );
        sleep_ms(at - now_ms() + 50);
        let exists: i64 = cmd("EXISTS")
            .arg("rate_limit:default:edge")
            .query(&mut c)
            .unwrap();
        assert_eq!(exists, 0, "expired once its window is empty");
        let d = check(&mut c, &args);
        assert_eq!((d.allowed, d.count), (true, 1));
    });
}

#[test]
fn retry_after_is_exact_with_costs() {
    on_each_server(|s| {
        let mut c = s.conn();
        let args = |cost: &'static str| ["exact", "3", "1", "COST", cost];
        assert!(check(&mut c, &args("1")).allowed);
        sleep_ms(400);
        assert!(check(&mut c, &args("2")).allowed);
        let t = info(&mut c, &["exact"]).timestamps;
        assert_eq!(t.len(), 3);
        assert_eq!(t[1], t[2], "one time per unit of cost");

        // Cost 1 needs one unit to leave (the first request), cost 2 and 3
        // need the units of the second request to leave too.
        for (cost, oldest_needed) in [("1", t[0]), ("2", t[1]), ("3", t[1])] {
            let (d, before, after) = timed(&mut c, "RATELIMIT.PEEK", &args(cost));
            assert!(!d.allowed, "cost {cost}");
            let (lo, hi) = (
                oldest_needed + 1_000 - after,
                oldest_needed + 1_000 - before,
            );
            assert!(
                (lo..=hi).contains(&d.retry_after_ms),
                "cost {cost}: {lo} <= {} <= {hi}",
                d.retry_after_ms
            );
            let (lo, hi) = (t[0] + 1_000 - after, t[0] + 1_000 - before);
            assert!((lo..=hi).contains(&d.reset_after_ms), "{d:?}");
        }
        let d = peek(&mut c, &args("1"));
        sleep_ms(d.retry_after_ms);
        let (d1, _, after) = timed(&mut c, "RATELIMIT.PEEK", &args("1"));
        assert!(d1.allowed, "cost 1 after its retry_after_ms: {d1:?}");
        if after < t[1] + 1_000 {
            let d2 = peek(&mut c, &args("2"));
            assert!(
                !d2.allowed,
                "never early: the cost-2 request is still counted"
            );
        }
        let d = check(&mut c, &args("1"));
        assert!(d.allowed);
    });
}

#[test]
fn cost_counts_units_and_cost_above_limit_is_never_allowed() {
    on_each_server(|s| {
        let mut c = s.conn();
        let key = "rate_limit:default:cost";
        let d = check(&mut c, &["cost", "5", "60", "COST", "6"]);
        assert_eq!(
            (
                d.allowed,
                d.count,
                d.retry_after,
                d.retry_after_ms,
                d.reset_after_ms
            ),
            (false, 0, -1, -1, 0)
        );
        assert_eq!(
            get_bytes(&mut c, key),
            None,
            "a denied check records nothing"
        );

        let d = check(&mut c, &["cost", "5", "60", "COST", "3"]);
        assert_eq!((d.allowed, d.count, d.remaining), (true, 3, 2));
        let before = snapshot(&mut c, key);
        let d = check(&mut c, &["cost", "5", "60", "COST", "3"]);
        assert_eq!((d.allowed, d.count, d.remaining), (false, 3, 2));
        assert!(
            d.retry_after_ms > 58_000 && d.retry_after_ms <= 60_000,
            "{d:?}"
        );
        let d = check(&mut c, &["cost", "5", "60", "COST", "6"]);
        assert_eq!((d.allowed, d.count, d.retry_after_ms), (false, 3, -1));
        assert_eq!(
            snapshot(&mut c, key),
            before,
            "denied checks change nothing"
        );
        let d = check(&mut c, &["cost", "5", "60", "cost", "2"]);
        assert_eq!((d.allowed, d.count, d.remaining), (true, 5, 0));
        let i = info(&mut c, &["cost"]);
        assert_eq!(i.count, 5);
        assert_eq!(i.timestamps[0], i.timestamps[2]);
        assert_eq!(i.timestamps[3], i.timestamps[4]);

        // cost == limit on an empty limiter is allowed.
        let d = check(&mut c, &["whole", "4", "60", "COST", "4"]);
        assert_eq!((d.allowed, d.count, d.remaining), (true, 4, 0));

        // A lower limit than what is counted: remaining is limit - count.
        let d = check(&mut c, &["whole", "2", "60"]);
        assert_eq!((d.allowed, d.count, d.remaining), (false, 4, -2));
        let d = peek(&mut c, &["whole", "1", "60"]);
        assert_eq!((d.allowed, d.count, d.remaining), (false, 4, -3));
    });
}

/// A refused request must not erase admitted ones: a denied check under a
/// shorter window than the stored one writes nothing, since its earlier
/// expiry would drop requests that still count under the stored window.
#[test]
fn a_denied_check_under_a_shorter_window_keeps_the_counted_requests() {
    on_each_server(|s| {
        let mut c = s.conn();
        for _ in 0..4 {
            assert!(check(&mut c, &["sw", "4", "60"]).allowed);
        }
        let key = "rate_limit:default:sw";
        let before = snapshot(&mut c, key);
        // Denied whatever the timing: cost 3 is above limits 1 and 2, and
        // 4 counted + 3 is above 6.
        let stamps = info(&mut c, &["sw"]).timestamps;
        for rule in [["1", "1"], ["2", "1"], ["6", "59"]] {
            let d = check(&mut c, &["sw", rule[0], rule[1], "COST", "3"]);
            assert!(!d.allowed, "{rule:?}: {d:?}");
            if rule[0] == "6" {
                // A larger limit widens what the limiter keeps (it stores
                // that rule), but no request and no expiry changes.
                assert_eq!(info(&mut c, &["sw"]).timestamps, stamps);
                assert_eq!(snapshot(&mut c, key).1, before.1);
            } else {
                assert_eq!(
                    snapshot(&mut c, key),
                    before,
                    "{rule:?} changed the limiter"
                );
            }
        }
        let i = info(&mut c, &["sw"]);
        assert_eq!((i.count, i.limit, i.window_ms), (4, 6, 59_000));
        assert!(pttl(&mut c, "sw") > 55_000);
        // After the short window has passed, the 60 s rule still counts 4.
        std::thread::sleep(std::time::Duration::from_millis(2_100));
        let d = check(&mut c, &["sw", "4", "60"]);
        assert_eq!((d.allowed, d.count), (false, 4), "{d:?}");
    });
}

#[test]
fn a_longer_window_keeps_a_denied_limiter_alive() {
    on_each_server(|s| {
        let mut c = s.conn();
        assert!(check(&mut c, &["pu", "1", "1"]).allowed);
        // The policy grows to 100 s: the request counts for 100 s, and the
        // key must not expire after the 1 s it was stored with.
        let d = check(&mut c, &["pu", "1", "100"]);
        assert!(!d.allowed);
        assert!(d.retry_after >= 99, "{d:?}");
        let ttl = pttl(&mut c, "pu");
        assert!(ttl > 98_000, "PTTL {ttl}");
        std::thread::sleep(std::time::Duration::from_millis(2_200));
        let d = check(&mut c, &["pu", "1", "100"]);
        assert!(
            !d.allowed,
            "admitted after 2 s although told to wait 100: {d:?}"
        );
        assert!(d.retry_after >= 97, "{d:?}");
        assert!(!peek(&mut c, &["pu", "1", "100"]).allowed);
        // Back to the 1 s rule: the old request has left that window, so the
        // check is admitted; the 100 s rule was applied to this limiter, so
        // its requests are kept (and the key lives) for 100 s.
        assert!(check(&mut c, &["pu", "1", "1"]).allowed);
        let ttl = pttl(&mut c, "pu");
        assert!((98_000..=101_000).contains(&ttl), "PTTL {ttl}");
        assert!(!check(&mut c, &["pu", "1", "100"]).allowed);

        // The denied check stored the longer rule; an admitted check under
        // the shorter one right after keeps the longer window's expiry.
        assert!(check(&mut c, &["pv", "2", "1"]).allowed);
        assert!(!check(&mut c, &["pv", "1", "100"]).allowed);
        let i = info(&mut c, &["pv"]);
        assert_eq!((i.count, i.limit, i.window_ms), (1, 1, 100_000));
        assert!(check(&mut c, &["pv", "2", "1"]).allowed);
        let ttl = pttl(&mut c, "pv");
        assert!((98_000..=101_000).contains(&ttl), "PTTL {ttl}");
    });
}
