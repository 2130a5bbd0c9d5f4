//! Thousands of random argument vectors at every command: the server must
//! stay up, its log clean, and unrelated data intact. Bounded in count and time.

mod common;

use std::time::{Duration, Instant};

use common::{cmd, on_each_server};
use rand::{Rng, SeedableRng};
use redis::Value;

pub const COMMANDS: &[&str] = &[
    "CACHE.SETUSER",
    "CACHE.GETUSER",
    "CACHE.SETPERMISSIONS",
    "CACHE.GETPERMISSIONS",
    "CACHE.SETSESSION",
    "CACHE.GETSESSION",
    "CACHE.INVALIDATEUSER",
    "CACHE.SETSEARCH",
    "CACHE.GETSEARCH",
    "CACHE.SETRAG",
    "CACHE.GETRAG",
    "CACHE.SETTRANSLATION",
    "CACHE.GETTRANSLATION",
    "CACHE.KEY",
    "CACHE.STATS",
    "RATELIMIT.CHECK",
    "RATELIMIT.PEEK",
    "RATELIMIT.INFO",
    "RATELIMIT.RESET",
];

fn random_arg(rng: &mut impl Rng) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "42",
        "0",
        "-1",
        "1",
        "2",
        "100",
        "60",
        "9223372036854775807",
        "99999999999999999999",
        "1.5",
        "",
        " ",
        "TTL",
        "ttl",
        "FILTERS",
        "ACTION",
        "COST",
        "RESET",
        "user",
        "permissions",
        "session",
        "user_with_roles",
        "search",
        "rag",
        "translation",
        "ratelimit",
        "default",
        "upload",
        "{}",
        "[]",
        "{\"a\":1}",
        "[1,2]",
        "{",
        "}",
        "{\"a\":",
        "null",
        "true",
        "\"s\"",
        "1e400",
        "-0.0",
        "{\"b\":1,\"a\":\"x\"}",
        "как оформить отпуск",
        "😀",
        "a}b",
        "{42}",
        "en",
        "ru",
        "\0",
    ];
    match rng.gen_range(0..10) {
        0..=5 => WORDS[rng.gen_range(0..WORDS.len())].as_bytes().to_vec(),
        6 => (0..rng.gen_range(0..16)).map(|_| rng.gen::<u8>()).collect(),
        7 => rng.gen_range(-5i64..200).to_string().into_bytes(),
        8 => {
            let depth = rng.gen_range(1..3000);
            let mut s = "[".repeat(depth);
            if rng.gen_bool(0.5) {
                s.push_str(&"]".repeat(depth));
            }
            s.into_bytes()
        }
        _ => {
            let len = rng.gen_range(1000..200_000);
            let byte = if rng.gen_bool(0.5) {
                b'x'
            } else {
                rng.gen::<u8>()
            };
            let mut v = vec![byte; len];
            if rng.gen_bool(0.3) {
                v[0] = b'{';
            }
            v
        }
    }
}

fn fuzz(seed: u64, iterations: usize, budget: Duration) {
    on_each_server(|s| {
        let mut c = s.conn();
        let _: () = cmd("SET")
            .arg("canary")
            .arg("intact")
            .query(&mut c)
            .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // Every listed command must exist: Redis's own unknown-command error
        // echoes raw argument bytes.
        for name in COMMANDS {
            let info: Value = cmd("COMMAND").arg("INFO").arg(*name).query(&mut c).unwrap();
            assert!(
                !matches!(&info, Value::Array(v) if v.iter().all(|x| *x == Value::Nil)),
                "{name} is not registered"
            );
        }
        let started = Instant::now();
        let mut sent = 0usize;
        let mut errors = 0usize;
        while sent < iterations && started.elapsed() < budget {
            let name = COMMANDS[rng.gen_range(0..COMMANDS.len())];
            let mut command = redis::cmd(name);
            for _ in 0..rng.gen_range(0..8) {
                command.arg(random_arg(&mut rng));
            }
            sent += 1;
            match command.query::<Value>(&mut c) {
                Ok(_) => {}
                Err(e) => {
                    assert!(
                        !e.is_io_error() && !e.is_connection_dropped() && !e.is_timeout(),
                        "{} stopped answering after {sent} commands: {e}",
                        s.flavor.binary()
                    );
                    // Every error reply carries an upper-case error code.
                    let code = e.code().unwrap_or("");
                    assert!(
                        !code.is_empty() && code.chars().all(|ch| ch.is_ascii_uppercase()),
                        "error without an error code from {name}: {e}"
                    );
                    errors += 1;
                }
            }
        }
        let pong: String = cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
        let canary: String = cmd("GET").arg("canary").query(&mut c).unwrap();
        assert_eq!(canary, "intact");
        eprintln!(
            "{}: {sent} random commands in {:?}, {errors} errors, server alive",
            s.flavor.binary(),
            started.elapsed()
        );
        assert!(
            sent >= 1000,
            "too few commands sent in the time budget: {sent}"
        );
    });
}

#[test]
fn random_argument_vectors_never_crash_the_server() {
    let seed = std::env::var("CACHEKIT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261126);
    fuzz(seed, 5000, Duration::from_secs(60));
}
