//! The panic guard, with a test build that panics on purpose.

use super::*;

/// The module built with `--features panic-test` (CACHEKIT.DEBUGPANIC), in
/// its own target directory so that it never replaces the release library
/// the other tests load; `CACHEKIT_PANIC_MODULE` may name a prebuilt one.
/// The dev profile compiles the same code in about half the time of a fresh
/// release build with fat LTO; the panic guard works the same (panic=unwind).
fn panic_module() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("CACHEKIT_PANIC_MODULE") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target/panic-test");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let started = Instant::now();
        let status = Command::new(cargo)
            .current_dir(root)
            .args(["build", "--lib", "--features", "panic-test"])
            .arg("--target-dir")
            .arg(&target)
            .env("CARGO_PROFILE_DEV_DEBUG", "0")
            .status()
            .expect("run cargo build for the panic-test module");
        assert!(status.success(), "building the panic-test module failed");
        eprintln!("panic-test module built in {:?}", started.elapsed());
        target.join("debug/libcachekit.so")
    })
}

#[test]
fn the_normal_build_has_no_debug_command() {
    let so = std::fs::read(common::module_path()).unwrap();
    let needle = b"debugpanic";
    assert!(
        !so.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle)),
        "the release library contains the test-only command"
    );
    let s = Server::start(Flavor::Redis);
    let mut c = RawConn::connect(s.port);
    assert_eq!(
        call(&mut c, &["COMMAND", "INFO", "cachekit.debugpanic"]),
        Resp::Array(vec![Resp::Nil])
    );
    s.assert_log_clean();
}

#[test]
fn panics_become_error_replies_and_never_break_the_protocol() {
    let module = panic_module();
    for flavor in Flavor::ALL {
        let s = server_with_module(flavor, module, &[]);
        for resp3 in [false, true] {
            let mut c = RawConn::connect(s.port);
            if resp3 {
                assert!(!call(&mut c, &["HELLO", "3"]).is_error());
            }
            let internal = Resp::Error(b"ERR internal error".to_vec());
            // mode -> the one reply the client must get
            let cases: Vec<(&str, Resp)> = vec![
                ("before", internal.clone()),
                ("mid-map", internal.clone()),
                ("nested", internal.clone()),
                ("after", ok()),
                (
                    "error-mid",
                    Resp::Error(b"ERR deliberate error after a partial reply".to_vec()),
                ),
                ("short", internal.clone()),
                ("twice", ok()),
                ("none", internal.clone()),
            ];
            for (mode, want) in &cases {
                assert_eq!(
                    &call(&mut c, &["CACHEKIT.DEBUGPANIC", mode]),
                    want,
                    "{flavor:?} resp3={resp3} mode {mode}"
                );
                // Exactly one reply: the next command gets its own answer.
                assert_eq!(call(&mut c, &["PING"]), Resp::Simple(b"PONG".to_vec()));
                assert!(c.nothing_pending(), "stray bytes after mode {mode}");
            }
            let good = call(&mut c, &["CACHEKIT.DEBUGPANIC", "ok"]);
            assert!(matches!(good, Resp::Map(_) | Resp::Array(_)), "{good:?}");

            // Inside MULTI/EXEC: the panic is one error in the EXEC array.
            assert_eq!(call(&mut c, &["MULTI"]), ok());
            for mode in ["mid-map", "ok", "before"] {
                assert_eq!(
                    call(&mut c, &["CACHEKIT.DEBUGPANIC", mode]),
                    Resp::Simple(b"QUEUED".to_vec())
                );
            }
            let Resp::Array(results) = call(&mut c, &["EXEC"]) else {
                panic!("EXEC");
            };
            assert_eq!(results.len(), 3);
            assert_eq!(results[0], internal);
            assert!(matches!(results[1], Resp::Map(_) | Resp::Array(_)));
            assert_eq!(results[2], internal);

            // From Lua: redis.pcall sees the error, the script goes on.
            let r = call(
                &mut c,
                &[
                    "EVAL",
                    "local e = redis.pcall('CACHEKIT.DEBUGPANIC', 'mid-map') return {e['err'], redis.call('PING')}",
                    "0",
                ],
            );
            assert_eq!(
                r,
                Resp::Array(vec![
                    bulk("ERR internal error"),
                    Resp::Simple(b"PONG".to_vec())
                ])
            );
        }
        // The server lives on; each panic left its reason in the log, and
        // nothing crashed.
        let mut c = RawConn::connect(s.port);
        assert_eq!(call(&mut c, &["SET", "k", "v"]), ok());
        assert_eq!(call(&mut c, &["GET", "k"]), bulk("v"));
        let log = s.log();
        assert!(log.contains("cachekit: panic:"), "{log}");
        assert!(
            log.contains("deliberate panic in the middle of a map"),
            "{log}"
        );
        assert!(
            log.contains("internal error (panic) in CACHEKIT.DEBUGPANIC"),
            "{log}"
        );
        assert!(!log.contains("crashed by signal"), "{log}");
        assert!(!log.contains("Guru Meditation"), "{log}");
    }
}
