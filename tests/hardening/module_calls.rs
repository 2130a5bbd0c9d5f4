//! Calls from other modules (RM_Call) and keyspace-event callbacks.

use super::*;
use crate::acl::{acl_user, login};

/// `tests/support/caller_module.c` built with the system C compiler (the
/// one that links Rust code) into the target directory, once per run.
fn caller_module() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = root.join("target/test-support");
        std::fs::create_dir_all(&out).unwrap();
        let so = out.join("caller_module.so");
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-O1", "-fPIC", "-shared", "-o"])
            .arg(&so)
            .arg(root.join("tests/support/caller_module.c"))
            .status()
            .expect("run the C compiler for the caller test module");
        assert!(status.success(), "building the caller test module failed");
        so
    })
}

/// A keyspace-event subscriber may write from its callback (Redis 7.0
/// allows it): one that deletes the limiter on its `ratelimit` event must
/// find it fully written, and the check must end well.
#[test]
fn a_keyspace_subscriber_may_delete_a_limiter_from_its_callback() {
    for flavor in Flavor::ALL {
        let module = common::module_path();
        let caller = caller_module();
        let s = server_with_module(
            flavor,
            &module,
            &[
                "--loadmodule",
                caller.to_str().unwrap(),
                "delete-on-ratelimit",
            ],
        );
        let mut c = RawConn::connect(s.port);
        for args in [
            vec!["RATELIMIT.CHECK", "u1", "5", "10"],
            vec!["RATELIMIT.CHECK", "u1", "5", "10"],
            vec![
                "RATELIMIT.RECORD",
                "rate_limit:default:u2",
                "1000",
                "5",
                "10000",
                "1",
            ],
        ] {
            let r = call(&mut c, &args);
            assert!(!matches!(r, Resp::Error(_)), "{flavor:?} {args:?}: {r:?}");
        }
        for key in ["rate_limit:default:u1", "rate_limit:default:u2"] {
            assert_eq!(call(&mut c, &["EXISTS", key]), Resp::Int(0), "{flavor:?}");
        }
        assert_eq!(call(&mut c, &["PING"]), Resp::Simple(b"PONG".to_vec()));
    }
}

/// A load that fails (here: another module owns `cache.key`) must leave
/// nothing of the module behind: Redis 7.0 keeps the server-event listeners
/// of a failed module, and calling one after the library is gone crashes.
#[test]
fn a_failed_load_leaves_no_listener_behind() {
    let module = common::module_path();
    let caller = caller_module();
    for flavor in Flavor::ALL {
        let s = Server::with(
            flavor,
            Options {
                load_module: false,
                server_args: vec![
                    "--enable-module-command".into(),
                    "yes".into(),
                    "--loadmodule".into(),
                    caller.display().to_string(),
                    "take-cache-key".into(),
                ],
                ..Options::default()
            },
        );
        let mut c = RawConn::connect(s.port);
        let r = call(&mut c, &["MODULE", "LOAD", module.to_str().unwrap()]);
        assert!(matches!(r, Resp::Error(_)), "{flavor:?}: {r:?}");
        assert!(
            s.log().contains("could not create command cache.key"),
            "{flavor:?}: {}",
            s.log()
        );
        // A role change fires the replication-role event.
        assert_eq!(call(&mut c, &["REPLICAOF", "127.0.0.1", "1"]), ok());
        assert_eq!(call(&mut c, &["REPLICAOF", "NO", "ONE"]), ok());
        assert_eq!(call(&mut c, &["PING"]), Resp::Simple(b"PONG".to_vec()));
    }
}

/// Another module may call the commands through RM_Call: its client has no
/// connection, and once Redis recycles it, no user either (it runs as
/// root). Such calls run with the calling module's authority, as Redis runs
/// them; they must work, repeatedly, also inside a script.
#[test]
fn other_modules_may_call_the_commands() {
    for flavor in Flavor::ALL {
        let module = common::module_path();
        let caller = caller_module();
        let s = server_with_module(flavor, &module, &["--loadmodule", caller.to_str().unwrap()]);
        let mut admin = RawConn::connect(s.port);
        acl_user(&mut admin, "sess", &["~session:*", "+caller.call"]);
        let value = r#"{"from":"module"}"#;
        assert_eq!(
            call(
                &mut admin,
                &["CALLER.CALL", "-", "CACHE.SETUSER", "1", value]
            ),
            ok()
        );
        for _ in 0..3 {
            assert_eq!(
                call(&mut admin, &["CALLER.CALL", "-", "CACHE.GETUSER", "1"]),
                bulk(value)
            );
            let Resp::Array(fields) = call(
                &mut admin,
                &["CALLER.CALL", "-", "RATELIMIT.CHECK", "m", "5", "60"],
            ) else {
                panic!("{flavor:?}: RATELIMIT.CHECK through RM_Call is not a map");
            };
            assert_eq!(fields.first(), Some(&bulk("allowed")));
        }
        // From a script, through a module called by a script, and from a
        // script a module runs (its client, and so the script's, has no user).
        let script = "return redis.call('CALLER.CALL', '-', 'CACHE.GETUSER', '1')";
        let direct = "return redis.call('CACHE.GETUSER', '1')";
        for _ in 0..2 {
            assert_eq!(call(&mut admin, &["EVAL", script, "0"]), bulk(value));
            assert_eq!(
                call(&mut admin, &["CALLER.CALL", "-", "EVAL", direct, "0"]),
                bulk(value)
            );
        }
        // With the C flag a module call runs as the calling user, and
        // without it as root, as Redis runs any command it calls.
        let mut c = login(&s, "sess");
        expect_error(
            &call(&mut c, &["CALLER.CALL", "C", "CACHE.GETUSER", "1"]),
            "NOPERM",
        );
        assert_eq!(
            call(&mut c, &["CALLER.CALL", "C", "CACHE.GETSESSION", "1"]),
            Resp::Nil
        );
        assert_eq!(
            call(&mut c, &["CALLER.CALL", "-", "CACHE.GETUSER", "1"]),
            bulk(value)
        );
        // A restricted user calling the module directly is still checked,
        // before and after module calls recycled their clients; its
        // scripts are checked as it, and what tells a script's client from
        // a module's adds nothing to ACL LOG.
        expect_error(&call(&mut c, &["CACHE.GETUSER", "1"]), "NOPERM");
        assert_eq!(call(&mut admin, &["ACL", "LOG", "RESET"]), ok());
        let own = "return redis.call('CACHE.GETSESSION', '1')";
        assert_eq!(call(&mut c, &["EVAL", own, "0"]), Resp::Nil);
        let theirs = "return redis.call('CACHE.GETUSER', '1')";
        expect_error(&call(&mut c, &["EVAL", theirs, "0"]), "NOPERM");
        let Resp::Array(log) = call(&mut admin, &["ACL", "LOG"]) else {
            panic!("ACL LOG");
        };
        assert_eq!(log.len(), 1, "{flavor:?}: one denial logged: {log:?}");
        // The probe that tells a script's client from a module's never runs
        // a command.
        let Resp::Bulk(stats) = call(&mut admin, &["INFO", "commandstats"]) else {
            panic!("INFO commandstats");
        };
        assert!(
            !String::from_utf8_lossy(&stats).contains("cmdstat_hello"),
            "{flavor:?}: HELLO ran"
        );
        // A connection that changes user is checked as the new one at once.
        let mut switching = RawConn::connect(s.port);
        assert_eq!(call(&mut switching, &["CACHE.GETUSER", "1"]), bulk(value));
        assert_eq!(call(&mut switching, &["AUTH", "sess", "pw"]), ok());
        expect_error(&call(&mut switching, &["CACHE.GETUSER", "1"]), "NOPERM");
        assert_eq!(call(&mut switching, &["AUTH", "default", ""]), ok());
        assert_eq!(call(&mut switching, &["CACHE.GETUSER", "1"]), bulk(value));
        assert_eq!(call(&mut admin, &["PING"]), Resp::Simple(b"PONG".to_vec()));
        s.assert_log_clean();
    }
}
