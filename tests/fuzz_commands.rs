//! Tens of thousands of random commands at every module command, over RESP2
//! and RESP3, some inside MULTI/EXEC or a Lua script, with non-UTF-8 bytes,
//! deep JSON and values of megabytes. Every reply is read off the wire with a
//! strict parser: exactly one well-formed reply per command, every error
//! with an error code. Afterwards the server must answer, its log must be
//! clean and data the fuzzer cannot name must be intact. Bounded in count
//! and time.

mod common;
mod resp;

use std::time::{Duration, Instant};

use common::on_each_server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use resp::{encode, RawConn, Resp};

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
    "CACHE.SETUSERROLES",
    "CACHE.GETUSERROLES",
    "CACHE.SETDOCUMENTS",
    "CACHE.GETDOCUMENTS",
    "CACHE.SETEMBEDDING",
    "CACHE.GETEMBEDDING",
    "CACHE.KEY",
    "CACHE.STATS",
    "RATELIMIT.CHECK",
    "RATELIMIT.PEEK",
    "RATELIMIT.INFO",
    "RATELIMIT.RESET",
    "RATELIMIT.RECORD",
    "RATELIMIT.ACQUIRE",
    "RATELIMIT.CHECKALL",
    "RATELIMIT.REFUND",
];

const WORDS: &[&str] = &[
    "42",
    "0",
    "-1",
    "1",
    "2",
    "100",
    "60",
    "1000",
    "60000",
    "1700000000000",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999",
    "1.5",
    "1e3",
    "0x10",
    "+5",
    "NaN",
    "inf",
    "",
    " ",
    "TTL",
    "ttl",
    "FILTERS",
    "filters",
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
    "{\"k\":\"\\ud800\"}",
    "{\"k\":\"\\ud83d\\ude00\",\"\\u0000\":[1e-400,-0,12345678901234567890]}",
    "{\"a\":{\"b\":{\"c\":[true,false,null]}}}",
    "как оформить отпуск",
    "😀",
    "a}b",
    "{42}",
    "user:{42}",
    "rate_limit:default:42",
    "en",
    "ru",
    "\0",
    "\r\n",
    "a:b",
];

fn random_arg(rng: &mut StdRng) -> Vec<u8> {
    let roll = rng.gen_range(0..10_000);
    match roll {
        0..=5999 => WORDS[rng.gen_range(0..WORDS.len())].as_bytes().to_vec(),
        // Arbitrary bytes, mostly not UTF-8.
        6000..=7499 => (0..rng.gen_range(0..24)).map(|_| rng.gen::<u8>()).collect(),
        7500..=8499 => rng.gen_range(-5i64..200).to_string().into_bytes(),
        // Valid UTF-8 mixed with invalid sequences inside JSON-looking text.
        8500..=8999 => {
            let mut v = b"{\"k\":\"".to_vec();
            for _ in 0..rng.gen_range(0..16) {
                match rng.gen_range(0..4) {
                    0 => v.extend_from_slice("é".as_bytes()),
                    1 => v.push(0xC3),
                    2 => v.extend_from_slice(&[0xED, 0xA0, 0x80]),
                    _ => v.push(rng.gen_range(0x80..=0xFF)),
                }
            }
            v.extend_from_slice(b"\"}");
            v
        }
        // Deep nesting, closed or not.
        9000..=9199 => {
            let depth = rng.gen_range(1..3000);
            let open = if rng.gen_bool(0.5) { "[" } else { "{\"a\":" };
            let mut s = open.repeat(depth);
            if open == "[" && rng.gen_bool(0.5) {
                s.push_str(&"]".repeat(depth));
            }
            s.into_bytes()
        }
        // Large: up to 64 KiB.
        9200..=9979 => {
            let len = rng.gen_range(1_000..65_536);
            big(rng, len)
        }
        // Huge: up to 2 MiB.
        9980..=9998 => {
            let len = rng.gen_range(256 << 10..2 << 20);
            big(rng, len)
        }
        // Giant: 8 MiB.
        _ => big(rng, 8 << 20),
    }
}

fn big(rng: &mut StdRng, len: usize) -> Vec<u8> {
    match rng.gen_range(0..4) {
        0 => vec![b'x'; len],
        1 => vec![rng.gen::<u8>(); len],
        // A valid JSON array of that size.
        2 => {
            let mut v = b"[".to_vec();
            while v.len() + 3 < len {
                v.extend_from_slice(b"1,");
            }
            v.extend_from_slice(b"1]");
            v
        }
        _ => {
            let mut v = vec![b' '; len];
            v[0] = b'{';
            v
        }
    }
}

fn random_name(rng: &mut StdRng) -> Vec<u8> {
    let name = COMMANDS[rng.gen_range(0..COMMANDS.len())];
    if rng.gen_bool(0.1) {
        name.to_ascii_lowercase().into_bytes()
    } else {
        name.as_bytes().to_vec()
    }
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.gen_range(0..from.len())]
}

fn id(rng: &mut StdRng) -> Vec<u8> {
    if rng.gen_bool(0.1) {
        return random_arg(rng);
    }
    pick(rng, &["1", "2", "42", "7", "{42}", "😀", "user:1", "a b"])
        .as_bytes()
        .to_vec()
}

fn json(rng: &mut StdRng, object: bool) -> Vec<u8> {
    let objects = [
        "{}",
        r#"{"a":1}"#,
        r#"{"name":"Иван","roles":["admin"],"n":1.5e3}"#,
        r#"{ "b" : [1, {"c": null}], "a": "x" }"#,
    ];
    let arrays = ["[]", r#"["read","write"]"#, "[1,2,3]", r#"[{"a":[]}]"#];
    let v = if object {
        pick(rng, &objects)
    } else {
        pick(rng, &arrays)
    };
    v.as_bytes().to_vec()
}

fn number(rng: &mut StdRng) -> Vec<u8> {
    pick(rng, &["1", "2", "5", "10", "60", "100", "3600"])
        .as_bytes()
        .to_vec()
}

/// A mostly valid argument vector for `name`, so that the fuzzer also
/// reaches the code behind the argument checks.
fn structured(rng: &mut StdRng, name: &str) -> Vec<Vec<u8>> {
    let text = |rng: &mut StdRng| -> Vec<u8> {
        pick(rng, &["как оформить отпуск", "q", "hello", ""])
            .as_bytes()
            .to_vec()
    };
    let mut a: Vec<Vec<u8>> = vec![name.as_bytes().to_vec()];
    let ttl = |rng: &mut StdRng, a: &mut Vec<Vec<u8>>| {
        if rng.gen_bool(0.3) {
            a.push(b"TTL".to_vec());
            a.push(number(rng));
        }
    };
    match name {
        "CACHE.SETUSERROLES" => {
            a.push(id(rng));
            a.push(json(rng, true));
            ttl(rng, &mut a);
        }
        "CACHE.GETUSERROLES" => a.push(id(rng)),
        "CACHE.SETDOCUMENTS" | "CACHE.GETDOCUMENTS" => {
            a.push(pick(rng, &["10", "0", "-1", "x", "5"]).as_bytes().to_vec());
            a.push(
                pick(rng, &["all", "news", "", "a}b", "{c}"])
                    .as_bytes()
                    .to_vec(),
            );
            if name == "CACHE.SETDOCUMENTS" {
                let object = rng.gen_bool(0.2);
                a.push(json(rng, object));
                ttl(rng, &mut a);
            }
        }
        "CACHE.SETEMBEDDING" | "CACHE.GETEMBEDDING" => {
            a.push(text(rng));
            a.push(
                pick(rng, &["m", "text-embedding-3-small", "m\u{ff}"])
                    .as_bytes()
                    .to_vec(),
            );
            let fp32 = rng.gen_bool(0.4);
            if name == "CACHE.SETEMBEDDING" {
                let v = if fp32 {
                    let n = rng.gen_range(0..12);
                    (0..n).map(|_| rng.gen()).collect()
                } else {
                    pick(
                        rng,
                        &["[1,2,3]", "[0.1]", "[]", "[1e39]", "[NaN]", "{}", "[1,"],
                    )
                    .as_bytes()
                    .to_vec()
                };
                a.push(v);
            }
            if rng.gen_bool(0.6) {
                a.push(b"FORMAT".to_vec());
                a.push(pick(rng, &["FP32", "json", "xml"]).as_bytes().to_vec());
            }
            if name == "CACHE.SETEMBEDDING" {
                ttl(rng, &mut a);
            }
        }
        "CACHE.SETUSER" | "CACHE.SETSESSION" => {
            a.push(id(rng));
            a.push(json(rng, true));
            ttl(rng, &mut a);
        }
        "CACHE.SETPERMISSIONS" => {
            a.push(id(rng));
            a.push(json(rng, false));
            ttl(rng, &mut a);
        }
        "CACHE.GETUSER" | "CACHE.GETPERMISSIONS" | "CACHE.GETSESSION" | "CACHE.INVALIDATEUSER" => {
            a.push(id(rng))
        }
        "CACHE.SETSEARCH" | "CACHE.GETSEARCH" => {
            a.push(text(rng));
            a.push(id(rng));
            if name == "CACHE.SETSEARCH" {
                let object = rng.gen_bool(0.5);
                a.push(json(rng, object));
            }
            if rng.gen_bool(0.5) {
                a.push(b"FILTERS".to_vec());
                a.push(json(rng, true));
            }
            if name == "CACHE.SETSEARCH" {
                ttl(rng, &mut a);
            }
        }
        "CACHE.SETRAG" | "CACHE.GETRAG" | "CACHE.SETTRANSLATION" | "CACHE.GETTRANSLATION" => {
            a.push(text(rng));
            if name.contains("RAG") {
                a.push(id(rng));
                a.push(b"ctxhash".to_vec());
            } else {
                a.push(b"en".to_vec());
                a.push(b"ru".to_vec());
            }
            if name.starts_with("CACHE.SET") {
                a.push(json(rng, true));
                ttl(rng, &mut a);
            }
        }
        "CACHE.KEY" => {
            let kind = pick(
                rng,
                &[
                    "user",
                    "session",
                    "search",
                    "ratelimit",
                    "rag",
                    "documents",
                    "embedding",
                ],
            );
            a.push(kind.as_bytes().to_vec());
            match kind {
                "search" => {
                    a.push(text(rng));
                    a.push(id(rng));
                }
                "rag" => {
                    a.push(text(rng));
                    a.push(id(rng));
                    a.push(b"h".to_vec());
                }
                "documents" => {
                    a.push(number(rng));
                    a.push(b"all".to_vec());
                }
                "embedding" => {
                    a.push(text(rng));
                    a.push(b"m".to_vec());
                }
                _ => a.push(id(rng)),
            }
        }
        "CACHE.STATS" => {
            if rng.gen_bool(0.05) {
                a.push(b"RESET".to_vec());
            }
        }
        "RATELIMIT.RECORD" => {
            a.push([b"rate_limit:default:".as_slice(), &id(rng)].concat());
            a.push(
                pick(rng, &["1700000000000", "0", "99999999999999"])
                    .as_bytes()
                    .to_vec(),
            );
            if rng.gen_bool(0.2) {
                a.push(b"REFUND".to_vec());
                a.push(number(rng));
            } else {
                a.push(number(rng));
                a.push(pick(rng, &["1000", "60000"]).as_bytes().to_vec());
                a.push(number(rng));
                for _ in 0..rng.gen_range(0..3) {
                    a.push(number(rng));
                    a.push(pick(rng, &["1000", "60000", "3600000"]).as_bytes().to_vec());
                }
            }
        }
        "RATELIMIT.CHECKALL" => {
            let n = rng.gen_range(0..5);
            // Now and then a count that does not match.
            let said = if rng.gen_bool(0.8) {
                n
            } else {
                rng.gen_range(0..20)
            };
            a.push(said.to_string().into_bytes());
            for _ in 0..n {
                a.push(
                    pick(rng, &["default", "search", "upload", "nope", "a:b"])
                        .as_bytes()
                        .to_vec(),
                );
                a.push(id(rng));
            }
            if rng.gen_bool(0.3) {
                a.push(b"COST".to_vec());
                a.push(number(rng));
            }
        }
        _ => {
            // RATELIMIT.CHECK/ACQUIRE/PEEK/INFO/RESET/REFUND
            a.push(id(rng));
            let full = matches!(
                name,
                "RATELIMIT.CHECK" | "RATELIMIT.PEEK" | "RATELIMIT.ACQUIRE"
            );
            if full && rng.gen_bool(0.5) {
                // 1 to 9 pairs (9 is one too many), now and then odd.
                for _ in 0..rng.gen_range(1..=9) {
                    a.push(number(rng));
                    a.push(number(rng));
                }
                if rng.gen_bool(0.1) {
                    a.push(number(rng));
                }
            }
            if rng.gen_bool(0.4) {
                a.push(b"ACTION".to_vec());
                a.push(
                    pick(rng, &["default", "search", "upload", "nope"])
                        .as_bytes()
                        .to_vec(),
                );
            }
            if (full || name == "RATELIMIT.REFUND") && rng.gen_bool(0.3) {
                a.push(b"COST".to_vec());
                a.push(number(rng));
            }
        }
    }
    // Now and then one argument goes bad.
    if a.len() > 1 && rng.gen_bool(0.3) {
        let i = rng.gen_range(1..a.len());
        a[i] = random_arg(rng);
    }
    a
}

/// What one random step sends and how many replies it must get back.
fn random_step(rng: &mut StdRng, out: &mut Vec<u8>) -> usize {
    let name = random_name(rng);
    let args: Vec<Vec<u8>> = if rng.gen_bool(0.5) {
        let upper = String::from_utf8_lossy(&name).to_ascii_uppercase();
        let mut a = structured(rng, &upper);
        a[0] = name;
        a
    } else {
        let mut a = vec![name];
        for _ in 0..rng.gen_range(0..8) {
            a.push(random_arg(rng));
        }
        a
    };
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    match rng.gen_range(0..100) {
        0..=4 => {
            out.extend(encode(&[b"MULTI"]));
            out.extend(encode(&refs));
            out.extend(encode(&[b"EXEC"]));
            3
        }
        5..=9 => {
            let mut eval: Vec<&[u8]> = vec![b"EVAL", b"return redis.pcall(unpack(ARGV))", b"0"];
            eval.extend(refs);
            out.extend(encode(&eval));
            1
        }
        _ => {
            out.extend(encode(&refs));
            1
        }
    }
}

/// An error reply must start with an upper-case error code.
fn check_error_codes(r: &Resp, context: &str) {
    for e in r.errors() {
        let code = e.split(' ').next().unwrap_or("");
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase()),
            "error without an error code after {context}: {e:?}"
        );
    }
}

fn call(c: &mut RawConn, args: &[&[u8]]) -> Resp {
    c.call(args).expect("reply")
}

struct Canary {
    user: Resp,
    limiter: Resp,
}

const CANARY_ID: &[u8] = b"canary-7f3e9d";

fn plant(c: &mut RawConn) -> Canary {
    assert_eq!(
        call(c, &[b"SET", b"canary", b"intact"]),
        Resp::Simple(b"OK".to_vec())
    );
    assert_eq!(
        call(c, &[b"CACHE.SETUSER", CANARY_ID, br#"{"canary":true}"#]),
        Resp::Simple(b"OK".to_vec())
    );
    for _ in 0..3 {
        assert!(!call(c, &[b"RATELIMIT.CHECK", CANARY_ID, b"10", b"600"]).is_error());
    }
    let limiter_key = [b"rate_limit:default:".as_slice(), CANARY_ID].concat();
    Canary {
        user: call(c, &[b"CACHE.GETUSER", CANARY_ID]),
        limiter: call(c, &[b"DUMP", &limiter_key]),
    }
}

fn fuzz(seed: u64, commands: usize, budget: Duration) {
    on_each_server(|s| {
        let mut setup = RawConn::connect(s.port);
        // Every listed command must exist: Redis's own unknown-command error
        // would hide what the module does.
        for name in COMMANDS {
            let info = call(&mut setup, &[b"COMMAND", b"INFO", name.as_bytes()]);
            assert_ne!(
                info,
                Resp::Array(vec![Resp::Nil]),
                "{name} is not registered"
            );
        }
        let canary = plant(&mut setup);

        let mut resp2 = RawConn::connect(s.port);
        let mut resp3 = RawConn::connect(s.port);
        assert!(!call(&mut resp3, &[b"HELLO", b"3"]).is_error());
        let mut rng = StdRng::seed_from_u64(seed);
        let started = Instant::now();
        let (mut sent, mut errors, mut batches) = (0usize, 0usize, 0usize);
        while sent < commands && started.elapsed() < budget {
            let conn = if rng.gen_bool(0.5) {
                &mut resp2
            } else {
                &mut resp3
            };
            let mut wire = Vec::new();
            let mut expected = 0;
            let batch = rng.gen_range(1..=32).min(commands - sent);
            for _ in 0..batch {
                expected += random_step(&mut rng, &mut wire);
            }
            sent += batch;
            batches += 1;
            conn.send_raw(&wire).unwrap_or_else(|e| {
                panic!(
                    "{}: the server stopped reading after {sent} commands: {e}",
                    s.flavor.binary()
                )
            });
            for _ in 0..expected {
                let r = conn.read().unwrap_or_else(|e| {
                    panic!(
                        "{}: no well-formed reply after {sent} commands (seed {seed}, batch {batches}): {e}",
                        s.flavor.binary()
                    )
                });
                check_error_codes(&r, &format!("{sent} commands (seed {seed})"));
                errors += usize::from(r.is_error());
            }
        }
        let elapsed = started.elapsed();
        for conn in [&mut resp2, &mut resp3] {
            assert_eq!(call(conn, &[b"PING"]), Resp::Simple(b"PONG".to_vec()));
            assert!(
                conn.nothing_pending(),
                "a stray reply is left on the connection"
            );
        }
        assert_eq!(
            call(&mut setup, &[b"GET", b"canary"]),
            Resp::Bulk(b"intact".to_vec())
        );
        assert_eq!(
            call(&mut setup, &[b"CACHE.GETUSER", CANARY_ID]),
            canary.user
        );
        let limiter_key = [b"rate_limit:default:".as_slice(), CANARY_ID].concat();
        assert_eq!(call(&mut setup, &[b"DUMP", &limiter_key]), canary.limiter);
        eprintln!(
            "{}: {sent} random commands in {elapsed:?} ({batches} pipelined batches, {errors} error replies), server alive",
            s.flavor.binary()
        );
        assert!(
            sent >= commands.min(10_000),
            "too few commands sent in the time budget: {sent}"
        );
    });
}

/// Every cache kind's SET and GET command is fuzzed.
#[test]
fn the_fuzzer_covers_every_kind() {
    for kind in &cachekit::kinds::KINDS {
        for name in [kind.set_command, kind.get_command] {
            assert!(
                COMMANDS.contains(&name.to_uppercase().as_str()),
                "{name} is not fuzzed"
            );
        }
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_commands_never_crash_or_desync_the_server() {
    let seed = env_or("CACHEKIT_FUZZ_SEED", 20261126);
    let commands = env_or("CACHEKIT_FUZZ_COMMANDS", 50_000) as usize;
    let seconds = env_or("CACHEKIT_FUZZ_SECONDS", 60);
    eprintln!("seed {seed}: replay with CACHEKIT_FUZZ_SEED={seed}");
    fuzz(seed, commands, Duration::from_secs(seconds));
}
