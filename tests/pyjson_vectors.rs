//! Checks `cachekit::pyjson` against vectors that python3 computes at run
//! time with `tests/pyjson/gen_vectors.py` (nothing is committed), including
//! the md5 cache keys the Python services build from the canonical form.

use std::path::Path;
use std::process::Command;

use cachekit::pyjson::{canonical_object, canonical_value, PyJsonError};
use md5::{Digest, Md5};
use serde_json::Value;

fn python3_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false)
}

/// Runs the generator for `seed`; `None` when python3 is missing.
fn generate(seed: u64) -> Option<String> {
    if !python3_available() {
        println!("skipping pyjson vectors for seed {seed}: python3 not found");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyjson/gen_vectors.py");
    let out = std::env::temp_dir().join(format!(
        "cachekit-pyjson-vectors-{}-{seed}.jsonl",
        std::process::id()
    ));
    let status = Command::new("python3")
        .arg(&script)
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(&out)
        .status()
        .expect("start python3");
    assert!(status.success(), "generator failed for seed {seed}");
    let text = std::fs::read_to_string(&out).expect("read vectors");
    let _ = std::fs::remove_file(&out);
    Some(text)
}

fn field<'a>(record: &'a Value, name: &str, line: usize) -> &'a str {
    record[name]
        .as_str()
        .unwrap_or_else(|| panic!("line {line}: no string field {name:?}"))
}

fn cache_key(query: &str, user_id: &str, canonical: &str) -> String {
    let digest = Md5::digest(format!("{query}:{user_id}:{canonical}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("search:{hex}")
}

fn check_seed(seed: u64) {
    let Some(vectors) = generate(seed) else {
        return;
    };
    let (mut matched, mut refused) = (0, 0);
    for (index, line) in vectors.lines().enumerate() {
        let n = index + 1;
        let record: Value = serde_json::from_str(line).expect("vector line is JSON");
        let input = field(&record, "input", n);
        if let Some(error) = record.get("error") {
            let ours = canonical_value(input.as_bytes());
            assert!(
                ours.is_err(),
                "seed {seed} line {n}: python refused {input:?} ({error}), we gave {ours:?}"
            );
            refused += 1;
            continue;
        }
        let expected = field(&record, "output", n);
        let got = canonical_value(input.as_bytes())
            .unwrap_or_else(|e| panic!("seed {seed} line {n}: refused {input:?}: {e}"));
        assert_eq!(got, expected, "seed {seed} line {n}: input {input:?}");

        let as_object = canonical_object(input.as_bytes());
        if expected.starts_with('{') {
            assert_eq!(as_object.as_deref(), Ok(expected), "seed {seed} line {n}");
        } else {
            assert_eq!(
                as_object,
                Err(PyJsonError::NotAnObject),
                "seed {seed} line {n}"
            );
        }

        let key = cache_key(
            field(&record, "query", n),
            field(&record, "user_id", n),
            &got,
        );
        assert_eq!(
            key,
            field(&record, "key", n),
            "seed {seed} line {n}: md5 key"
        );
        matched += 1;
    }
    assert!(matched >= 400, "seed {seed}: only {matched} vectors");
    assert!(refused >= 40, "seed {seed}: only {refused} refusals");
    println!("seed {seed}: {matched} canonical forms and keys, {refused} refusals match python3");
}

#[test]
fn vectors_default_seed() {
    check_seed(20240601);
}

#[test]
fn vectors_seed_1() {
    check_seed(1);
}

#[test]
fn vectors_seed_987654321() {
    check_seed(987654321);
}
