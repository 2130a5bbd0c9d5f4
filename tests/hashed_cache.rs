//! Search, RAG and translation caches: keys equal to the ones Python's own
//! `json` and `hashlib` compute, for inputs drawn fresh on every run.

mod common;

use std::process::Command;

use common::{cmd, err_of, on_each_server};
use md5::{Digest, Md5};
use redis::{Commands, Value};

struct Case {
    query: String,
    user_id: String,
    filters: Option<String>,
    search: String,
    context_hash: String,
    rag: String,
    text: String,
    source: String,
    target: String,
    translation: String,
}

/// Runs tests/pyjson/py_keys.py; the seed changes every run unless
/// CACHEKIT_KEYS_SEED pins it (printed so a failure can be replayed).
fn python_cases(count: usize) -> Vec<Case> {
    let seed: u64 = std::env::var("CACHEKIT_KEYS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 % 1_000_000_007)
                .unwrap_or(1)
        });
    eprintln!("python key cases: CACHEKIT_KEYS_SEED={seed}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pyjson/py_keys.py");
    let out = Command::new("python3")
        .args([
            script,
            "--seed",
            &seed.to_string(),
            "--count",
            &count.to_string(),
        ])
        .output()
        .expect("python3 is needed to compute the reference keys (scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            Case {
                query: s("query"),
                user_id: s("user_id"),
                filters: v["filters"].as_str().map(str::to_string),
                search: s("search"),
                context_hash: s("context_hash"),
                rag: s("rag"),
                text: s("text"),
                source: s("source"),
                target: s("target"),
                translation: s("translation"),
            }
        })
        .collect()
}

fn with_filters(mut c: redis::Cmd, filters: &Option<String>) -> redis::Cmd {
    if let Some(f) = filters {
        c.arg("FILTERS").arg(f);
    }
    c
}

#[test]
fn keys_match_python_for_fresh_inputs() {
    let cases = python_cases(300);
    on_each_server(|s| {
        let mut c = s.conn();
        for (i, case) in cases.iter().enumerate() {
            let key: String = with_filters(
                cmd("CACHE.KEY")
                    .arg("search")
                    .arg(&case.query)
                    .arg(&case.user_id)
                    .clone(),
                &case.filters,
            )
            .query(&mut c)
            .unwrap();
            assert_eq!(key, case.search, "search key, case {i}: {:?}", case.filters);
            let key: String = cmd("CACHE.KEY")
                .arg("rag")
                .arg(&case.query)
                .arg(&case.user_id)
                .arg(&case.context_hash)
                .query(&mut c)
                .unwrap();
            assert_eq!(key, case.rag, "rag key, case {i}");
            let key: String = cmd("CACHE.KEY")
                .arg("translation")
                .arg(&case.text)
                .arg(&case.source)
                .arg(&case.target)
                .query(&mut c)
                .unwrap();
            assert_eq!(key, case.translation, "translation key, case {i}");

            // What the module stores, Python reads at its own key ...
            let value = format!(r#"{{"case":{i}}}"#);
            let _: () = with_filters(
                cmd("CACHE.SETSEARCH")
                    .arg(&case.query)
                    .arg(&case.user_id)
                    .arg(&value)
                    .clone(),
                &case.filters,
            )
            .query(&mut c)
            .unwrap();
            let raw: String = c.get(&case.search).unwrap();
            assert_eq!(raw, value);
            // ... and what Python stored, the module reads.
            let _: () = c.set(&case.rag, &value).unwrap();
            let got: String = cmd("CACHE.GETRAG")
                .arg(&case.query)
                .arg(&case.user_id)
                .arg(&case.context_hash)
                .query(&mut c)
                .unwrap();
            assert_eq!(got, value);
            let _: () = cmd("CACHE.SETTRANSLATION")
                .arg(&case.text)
                .arg(&case.source)
                .arg(&case.target)
                .arg(&value)
                .query(&mut c)
                .unwrap();
            let raw: String = c.get(&case.translation).unwrap();
            assert_eq!(raw, value);
        }
    });
}

#[test]
fn equal_filters_give_one_key() {
    on_each_server(|s| {
        let mut c = s.conn();
        let _: () = cmd("CACHE.SETSEARCH")
            .arg("как оформить отпуск")
            .arg(42)
            .arg(r#"{"results":[1,2]}"#)
            .arg("FILTERS")
            .arg(r#"{"b":1,"a":"x","n":1.0}"#)
            .query(&mut c)
            .unwrap();
        for spelling in [
            r#"{"a":"x","b":1,"n":1.0}"#,
            r#"{ "n" : 1.00, "b" : 1, "a" : "\u0078" }"#,
            r#"{"n":10e-1,"a":"x","b":1}"#,
            r#"{"b":0,"a":"x","n":1.0,"b":1}"#,
        ] {
            let got: Option<String> = cmd("CACHE.GETSEARCH")
                .arg("как оформить отпуск")
                .arg(42)
                .arg("FILTERS")
                .arg(spelling)
                .query(&mut c)
                .unwrap();
            assert_eq!(got.as_deref(), Some(r#"{"results":[1,2]}"#), "{spelling}");
        }
        // No FILTERS is `filters or {}`: the same key as FILTERS {}.
        let a: String = cmd("CACHE.KEY")
            .arg("search")
            .arg("q")
            .arg(1)
            .query(&mut c)
            .unwrap();
        let b: String = cmd("CACHE.KEY")
            .arg("search")
            .arg("q")
            .arg(1)
            .arg("FILTERS")
            .arg("{}")
            .query(&mut c)
            .unwrap();
        assert_eq!(a, b);
        // Integer and float spellings are different values in Python.
        let a: String = cmd("CACHE.KEY")
            .arg("search")
            .arg("q")
            .arg(1)
            .arg("FILTERS")
            .arg(r#"{"n":1}"#)
            .query(&mut c)
            .unwrap();
        let b: String = cmd("CACHE.KEY")
            .arg("search")
            .arg("q")
            .arg(1)
            .arg("FILTERS")
            .arg(r#"{"n":1.0}"#)
            .query(&mut c)
            .unwrap();
        assert_ne!(a, b);
    });
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// FILTERS up to 1 MiB are canonicalized; a longer one is refused before
/// it is parsed, by every command that takes it, and changes nothing.
#[test]
fn filters_have_a_size_bound() {
    const MAX: usize = 1024 * 1024;
    // `{"a": "xx...x"}` of exactly `len` bytes, already in Python's form.
    let filters = |len: usize| format!("{{\"a\": \"{}\"}}", "x".repeat(len - 9));
    on_each_server(|s| {
        let mut c = s.conn();
        let largest = filters(MAX);
        assert_eq!(largest.len(), MAX);
        let key: String = cmd("CACHE.KEY")
            .arg(&["search", "q", "1", "FILTERS", &largest])
            .query(&mut c)
            .unwrap();
        let mut text = b"q:1:".to_vec();
        text.extend_from_slice(largest.as_bytes());
        assert_eq!(key, format!("search:{}", md5_hex(&text)));
        let _: () = cmd("CACHE.SETSEARCH")
            .arg(&["q", "1", "[1]", "FILTERS", &largest])
            .query(&mut c)
            .unwrap();
        assert_eq!(c.get::<_, String>(&key).unwrap(), "[1]");

        let too_long = filters(MAX + 1);
        let want = format!(
            "ERR FILTERS is too long: {} bytes, allowed up to {MAX}",
            MAX + 1
        );
        for command in [
            cmd("CACHE.KEY")
                .arg(&["search", "q", "1", "FILTERS", &too_long])
                .clone(),
            cmd("CACHE.GETSEARCH")
                .arg(&["q", "1", "FILTERS", &too_long])
                .clone(),
            cmd("CACHE.SETSEARCH")
                .arg(&["q", "2", "[2]", "FILTERS", &too_long])
                .clone(),
        ] {
            assert_eq!(err_of(&mut c, &command), want, "{:?}", s.flavor);
        }
        let n: i64 = cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(n, 1, "the refused SETSEARCH wrote nothing");
    });
}

#[test]
fn ttls_stats_and_bad_input() {
    on_each_server(|s| {
        let mut c = s.conn();
        let _: () = cmd("CACHE.SETSEARCH")
            .arg("q")
            .arg(1)
            .arg("[]")
            .query(&mut c)
            .unwrap();
        let key: String = cmd("CACHE.KEY")
            .arg("search")
            .arg("q")
            .arg(1)
            .query(&mut c)
            .unwrap();
        let ttl: i64 = c.ttl(&key).unwrap();
        assert!((1799..=1800).contains(&ttl), "search ttl {ttl}");
        let _: () = cmd("CACHE.SETRAG")
            .arg("q")
            .arg(1)
            .arg("h")
            .arg("{}")
            .query(&mut c)
            .unwrap();
        let key: String = cmd("CACHE.KEY")
            .arg("rag")
            .arg("q")
            .arg(1)
            .arg("h")
            .query(&mut c)
            .unwrap();
        let ttl: i64 = c.ttl(&key).unwrap();
        assert!((3599..=3600).contains(&ttl), "rag ttl {ttl}");
        let _: () = cmd("CACHE.SETTRANSLATION")
            .arg("hi")
            .arg("en")
            .arg("ru")
            .arg(r#""привет""#)
            .query(&mut c)
            .unwrap();
        let ttl: i64 = c
            .ttl("translation:49f68a5c8493ec2c0bf489821c21fc3b:en:ru")
            .unwrap();
        assert!((86399..=86400).contains(&ttl), "translation ttl {ttl}");
        let _: () = cmd("CACHE.SETSEARCH")
            .arg("q")
            .arg(2)
            .arg("{}")
            .arg("TTL")
            .arg(30)
            .arg("FILTERS")
            .arg(r#"{"a":1}"#)
            .query(&mut c)
            .unwrap();
        let key: String = cmd("CACHE.KEY")
            .arg("search")
            .arg("q")
            .arg(2)
            .arg("FILTERS")
            .arg(r#"{"a": 1}"#)
            .query(&mut c)
            .unwrap();
        let ttl: i64 = c.ttl(&key).unwrap();
        assert!((29..=30).contains(&ttl), "override ttl {ttl}");

        // Per-namespace hits and misses.
        let _: () = cmd("CACHE.STATS").arg("RESET").query(&mut c).unwrap();
        let _: Value = cmd("CACHE.GETSEARCH")
            .arg("q")
            .arg(1)
            .query(&mut c)
            .unwrap();
        let _: Value = cmd("CACHE.GETSEARCH")
            .arg("q")
            .arg(99)
            .query(&mut c)
            .unwrap();
        let _: Value = cmd("CACHE.GETRAG")
            .arg("q")
            .arg(1)
            .arg("h")
            .query(&mut c)
            .unwrap();
        let _: Value = cmd("CACHE.GETTRANSLATION")
            .arg("nope")
            .arg("en")
            .arg("ru")
            .query(&mut c)
            .unwrap();
        let info: String = cmd("INFO").arg("cachekit").query(&mut c).unwrap();
        for line in [
            "cachekit_search_hits:1",
            "cachekit_search_misses:1",
            "cachekit_rag_hits:1",
            "cachekit_rag_misses:0",
            "cachekit_translation_hits:0",
            "cachekit_translation_misses:1",
        ] {
            assert!(
                info.lines().any(|l| l.trim() == line),
                "missing {line}:\n{info}"
            );
        }

        // A megabyte-long query still gets the right key.
        let long = "ж".repeat(600_000);
        let key: String = cmd("CACHE.KEY")
            .arg("search")
            .arg(&long)
            .arg(7)
            .query(&mut c)
            .unwrap();
        assert_eq!(
            key,
            format!("search:{}", md5_hex(format!("{long}:7:{{}}").as_bytes()))
        );
        // An empty query is a valid Python key too.
        let key: String = cmd("CACHE.KEY")
            .arg("search")
            .arg("")
            .arg(7)
            .query(&mut c)
            .unwrap();
        assert_eq!(key, format!("search:{}", md5_hex(b":7:{}")));

        let before: i64 = cmd("DBSIZE").query(&mut c).unwrap();
        let bad: Vec<(redis::Cmd, &str)> = vec![
            (
                cmd("CACHE.SETSEARCH").arg("q").arg(1).arg("{").clone(),
                "ERR invalid JSON",
            ),
            (
                cmd("CACHE.SETSEARCH")
                    .arg("q")
                    .arg(1)
                    .arg("{}")
                    .arg("FILTERS")
                    .arg("[1]")
                    .clone(),
                "ERR FILTERS must be a JSON object",
            ),
            (
                cmd("CACHE.SETSEARCH")
                    .arg("q")
                    .arg(1)
                    .arg("{}")
                    .arg("FILTERS")
                    .arg("{")
                    .clone(),
                "ERR invalid JSON in FILTERS",
            ),
            (
                cmd("CACHE.SETSEARCH")
                    .arg("q")
                    .arg(1)
                    .arg("{}")
                    .arg("FILTERS")
                    .clone(),
                "ERR syntax error",
            ),
            (
                cmd("CACHE.GETSEARCH")
                    .arg("q")
                    .arg(1)
                    .arg("FILTERS")
                    .arg("NaN")
                    .clone(),
                "ERR invalid JSON in FILTERS",
            ),
            (
                cmd("CACHE.GETSEARCH").arg(&b"\xff\xfe"[..]).arg(1).clone(),
                "ERR query must be valid UTF-8",
            ),
            (
                cmd("CACHE.SETTRANSLATION")
                    .arg(&b"\xc3"[..])
                    .arg("en")
                    .arg("ru")
                    .arg("{}")
                    .clone(),
                "ERR text must be valid UTF-8",
            ),
            (
                cmd("CACHE.SETRAG")
                    .arg("q")
                    .arg("")
                    .arg("h")
                    .arg("{}")
                    .clone(),
                "ERR user_id must not be empty",
            ),
            (
                cmd("CACHE.SETRAG")
                    .arg("q")
                    .arg(1)
                    .arg("h")
                    .arg("{}")
                    .arg("TTL")
                    .arg(0)
                    .clone(),
                "ERR TTL is not an integer",
            ),
            (
                cmd("CACHE.GETRAG").arg("q").arg(1).clone(),
                "ERR wrong number of arguments",
            ),
            (
                cmd("CACHE.GETTRANSLATION").arg("q").arg("en").clone(),
                "ERR wrong number of arguments",
            ),
            (
                cmd("CACHE.KEY").arg("search").arg("q").clone(),
                "ERR wrong number of arguments",
            ),
            (
                cmd("CACHE.KEY").arg("nope").arg("q").clone(),
                "ERR unknown key kind",
            ),
            // Options: what was wrong, and every option the command takes.
            (
                cmd("CACHE.SETSEARCH").arg(&["q", "42", "{}", "BOGUS", "1"]).clone(),
                "ERR syntax error near 'BOGUS': allowed options are [FILTERS <json-object>] [TTL <seconds>]",
            ),
            (
                cmd("CACHE.SETSEARCH").arg(&["q", "42", "{}", "TTL", "5", "FILTERS"]).clone(),
                "ERR syntax error: FILTERS needs a value; allowed options are [FILTERS <json-object>] [TTL <seconds>]",
            ),
            (
                cmd("CACHE.SETSEARCH")
                    .arg(&["q", "42", "{}", "FILTERS", "{}", "TTL", "5", "filters", "{}"])
                    .clone(),
                "ERR syntax error: filters is given twice; allowed options are [FILTERS <json-object>] [TTL <seconds>]",
            ),
            (
                cmd("CACHE.SETSEARCH").arg(&["q", "42", "{}", "TTL", "5", "TTL", "6"]).clone(),
                "ERR syntax error: TTL is given twice",
            ),
            (
                cmd("CACHE.SETRAG").arg(&["q", "1", "2", "{}", "TTL"]).clone(),
                "ERR syntax error: TTL needs a value; allowed options are [TTL <seconds>]",
            ),
            (
                cmd("CACHE.GETSEARCH").arg(&["q", "42", "FILTERS", "{}", "extra"]).clone(),
                "ERR syntax error near 'extra': allowed options are [FILTERS <json-object>]",
            ),
            (
                cmd("CACHE.GETSEARCH").arg(&["q", "42", "FILTERS", "{}", "FILTERS", "{}"]).clone(),
                "ERR syntax error: FILTERS is given twice",
            ),
            (
                cmd("CACHE.GETSEARCH").arg(&["q", "42", "FILTERS"]).clone(),
                "ERR syntax error: FILTERS needs a value",
            ),
        ];
        for (c2, want) in bad {
            let e = err_of(&mut c, &c2);
            assert!(e.starts_with(want), "want {want}, got {e}");
        }
        let e = err_of(
            &mut c,
            cmd("CACHE.GETSEARCH").arg(&["q", "1", "FILTERS", "{"]),
        );
        assert_eq!(e.matches("invalid JSON").count(), 1, "{e}");
        let after: i64 = cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(before, after, "a failed command wrote a key");
        let _: () = c
            .hset("translation:49f68a5c8493ec2c0bf489821c21fc3b:en:de", "f", 1)
            .unwrap();
        let e = err_of(
            &mut c,
            cmd("CACHE.GETTRANSLATION").arg("hi").arg("en").arg("de"),
        );
        assert!(e.starts_with("WRONGTYPE"), "{e}");
    });
}
