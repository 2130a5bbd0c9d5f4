//! maxmemory: writes refused, reads served.

use super::*;

#[test]
fn maxmemory_noeviction_refuses_writes_and_serves_reads() {
    for flavor in Flavor::ALL {
        let s = Server::start(flavor);
        let mut c = RawConn::connect(s.port);
        assert_eq!(call(&mut c, &["CACHE.SETUSER", "1", r#"{"a":1}"#]), ok());
        assert_eq!(call(&mut c, &["CACHE.SETSESSION", "1", "{}"]), ok());
        assert_eq!(call(&mut c, &["CACHE.SETSEARCH", "q", "1", "[1]"]), ok());
        assert!(!call(&mut c, &["RATELIMIT.CHECK", "1", "5", "60"]).is_error());
        let before = keyspace(&mut c);
        let ratelimit = |c: &mut RawConn| {
            let stats = call(c, &["CACHE.STATS"]).flat();
            let at = stats.iter().position(|f| f == "ratelimit").unwrap();
            stats[at..at + 5].to_vec()
        };
        let counted_before = ratelimit(&mut c);
        assert_eq!(
            call(&mut c, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
            ok()
        );
        assert_eq!(call(&mut c, &["CONFIG", "SET", "maxmemory", "1"]), ok());

        let writes: Vec<Vec<&str>> = vec![
            vec!["CACHE.SETUSER", "1", "{}"],
            vec!["CACHE.SETUSER", "2", "{}"],
            vec!["CACHE.SETPERMISSIONS", "1", "[]"],
            vec!["CACHE.SETSESSION", "1", r#"{"new":1}"#],
            vec!["CACHE.SETSEARCH", "q", "1", "[2]"],
            vec!["CACHE.SETRAG", "q", "1", "h", "{}"],
            vec!["CACHE.SETTRANSLATION", "t", "en", "ru", "{}"],
            vec!["RATELIMIT.CHECK", "1", "5", "60"],
            vec!["RATELIMIT.CHECK", "2", "5", "60"],
        ];
        for w in &writes {
            expect_error(&call(&mut c, w), "OOM");
            // From a script too.
            let mut args = vec!["EVAL", "return redis.pcall(unpack(ARGV))", "0"];
            args.extend(w.iter());
            expect_error(&call(&mut c, &args), "OOM");
            // And in a transaction: refused when queued, so EXEC aborts.
            assert_eq!(call(&mut c, &["MULTI"]), ok());
            expect_error(&call(&mut c, w), "OOM");
            expect_error(&call(&mut c, &["EXEC"]), "EXECABORT");
        }
        assert_eq!(
            keyspace(&mut c),
            before,
            "{flavor:?}: a refused write changed data"
        );
        assert_eq!(
            ratelimit(&mut c),
            counted_before,
            "refused checks were counted"
        );

        // Reads still work, directly and from scripts.
        assert_eq!(call(&mut c, &["CACHE.GETUSER", "1"]), bulk(r#"{"a":1}"#));
        assert_eq!(call(&mut c, &["CACHE.GETSEARCH", "q", "1"]), bulk("[1]"));
        assert!(!call(&mut c, &["RATELIMIT.PEEK", "1", "5", "60"]).is_error());
        assert!(!call(&mut c, &["RATELIMIT.INFO", "1"]).is_error());
        assert!(!call(&mut c, &["CACHE.STATS"]).is_error());
        assert!(!call(&mut c, &["CACHE.KEY", "user", "1"]).is_error());
        assert_eq!(
            call(
                &mut c,
                &["EVAL", "return redis.call('CACHE.GETUSER', '1')", "0"]
            ),
            bulk(r#"{"a":1}"#)
        );
        // Deleting frees memory, so it is allowed, as DEL is.
        assert_eq!(call(&mut c, &["RATELIMIT.RESET", "1"]), Resp::Int(1));
        assert_eq!(call(&mut c, &["CACHE.INVALIDATEUSER", "1"]), Resp::Int(2));

        assert_eq!(call(&mut c, &["CONFIG", "SET", "maxmemory", "0"]), ok());
        assert_eq!(call(&mut c, &["CACHE.SETUSER", "1", "{}"]), ok());
        s.assert_log_clean();
    }
}
