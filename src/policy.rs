//! `ratelimit-policies`: named rules `action:limit/window_seconds`, space
//! separated; an action may have up to 8 rules, comma separated
//! (`search:20/60,200/3600`), all of which must allow.

use crate::args::parse_ll;
use crate::limiter::{Rule, Rules, MAX_LIMIT, MAX_RULES, MAX_WINDOW_MS, MIN_WINDOW_MS};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policies {
    /// Few entries: a linear scan beats hashing.
    rules: Vec<(String, Rules)>,
}

pub const MAX_ACTION_LEN: usize = 64;

impl Policies {
    pub fn parse(text: &str) -> Result<Policies, String> {
        let mut rules: Vec<(String, Rules)> = Vec::new();
        // A set for the duplicate check: the text may be long (CONFIG SET
        // takes any size), and a scan per item would be quadratic.
        let mut seen = std::collections::HashSet::new();
        for item in text.split_ascii_whitespace() {
            let (action, rule) = parse_item(item)?;
            if !seen.insert(action) {
                return Err(format!("action '{}' is given twice", printable(action)));
            }
            rules.push((action.to_string(), rule));
        }
        Ok(Policies { rules })
    }

    pub fn get(&self, action: &[u8]) -> Option<Rules> {
        self.rules
            .iter()
            .find(|(a, _)| a.as_bytes() == action)
            .map(|(_, r)| *r)
    }

    /// The canonical text, as `CONFIG GET` shows it.
    pub fn render(&self) -> String {
        let parts: Vec<String> = self
            .rules
            .iter()
            .map(|(a, rules)| {
                let parts: Vec<String> = rules
                    .as_slice()
                    .iter()
                    .map(|r| format!("{}/{}", r.limit, r.window_ms / 1000))
                    .collect();
                format!("{a}:{}", parts.join(","))
            })
            .collect();
        parts.join(" ")
    }
}

fn parse_item(item: &str) -> Result<(&str, Rules), String> {
    let result = parse_rules(item);
    // Errors quote the item: escape what could not be shown (or logged) as is.
    result.map_err(|e| e.replace(item, &printable(item)))
}

fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn parse_rules(item: &str) -> Result<(&str, Rules), String> {
    let shape = || {
        format!("'{item}' is not of the form action:limit/window_seconds[,limit/window_seconds...]")
    };
    let (action, rest) = item.split_once(':').ok_or_else(shape)?;
    if rest.contains(':') {
        return Err(format!(
            "'{item}': the action must not contain ':' (plain keys rate_limit:<action>:<identifier> would be ambiguous)"
        ));
    }
    let mut rules: Option<Rules> = None;
    for part in rest.split(',') {
        let rule = parse_rule(item, action, part)?;
        match rules.as_mut() {
            None => rules = Some(Rules::one(rule)),
            Some(all) => all
                .push(rule)
                .map_err(|_| format!("'{item}': at most {MAX_RULES} rules per action"))?,
        }
    }
    rules.map(|r| (action, r)).ok_or_else(shape)
}

fn parse_rule(item: &str, action: &str, part: &str) -> Result<Rule, String> {
    let shape = || {
        format!("'{item}' is not of the form action:limit/window_seconds[,limit/window_seconds...]")
    };
    let (limit, window) = part.split_once('/').ok_or_else(shape)?;
    if action.is_empty() || action.len() > MAX_ACTION_LEN {
        return Err(format!(
            "'{item}': the action must be 1 to {MAX_ACTION_LEN} bytes"
        ));
    }
    if action.contains(['{', '}']) {
        return Err(format!(
            "'{item}': the action must not contain '{{' or '}}'"
        ));
    }
    // Control characters (NUL above all) cannot go into a config value
    // that Redis shows and rewrites as text.
    if action.chars().any(char::is_control) {
        return Err(format!(
            "'{item}': the action must not contain control characters"
        ));
    }
    let limit: u64 = parse_ll(limit.as_bytes())
        .and_then(|l| u64::try_from(l).ok())
        .filter(|l| (1..=MAX_LIMIT).contains(l))
        .ok_or_else(|| format!("'{item}': the limit must be an integer from 1 to {MAX_LIMIT}"))?;
    let max_window_s = MAX_WINDOW_MS / 1000;
    let min_window_s = MIN_WINDOW_MS / 1000;
    let window_s: u64 = parse_ll(window.as_bytes())
        .and_then(|w| u64::try_from(w).ok())
        .filter(|w| (min_window_s..=max_window_s).contains(w))
        .ok_or_else(|| {
            format!("'{item}': the window must be an integer from {min_window_s} to {max_window_s} seconds")
        })?;
    Ok(Rule {
        limit,
        window_ms: window_s * 1000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default() {
        let p = Policies::parse("default:100/60 search:20/60 upload:5/60").unwrap();
        assert_eq!(
            p.get(b"search"),
            Some(Rules::one(Rule {
                limit: 20,
                window_ms: 60_000
            }))
        );
        assert_eq!(
            p.get(b"default"),
            Some(Rules::one(Rule {
                limit: 100,
                window_ms: 60_000
            }))
        );
        assert_eq!(p.get(b"nope"), None);
        assert_eq!(p.render(), "default:100/60 search:20/60 upload:5/60");
        assert_eq!(Policies::parse("").unwrap(), Policies::default());
        assert_eq!(
            Policies::parse("  a:1/1\t b:2/3 ").unwrap().render(),
            "a:1/1 b:2/3"
        );
    }

    #[test]
    fn parses_several_rules() {
        let p = Policies::parse("search:20/60,200/3600 x:1/1").unwrap();
        let r = p.get(b"search").unwrap();
        assert_eq!(r.as_slice().len(), 2);
        assert_eq!(r.as_slice()[1], Rule::new(200, 3_600_000).unwrap());
        assert_eq!(p.render(), "search:20/60,200/3600 x:1/1");
    }

    #[test]
    fn refuses_malformed_items() {
        for bad in [
            "default",
            "default:100",
            "default:/60",
            ":1/1",
            "a:0/60",
            "a:-1/60",
            "a:1/0",
            "a:x/60",
            "a:1/99999999999",
            "a:1/1 a:2/2",
            "a{b:1/1",
            "a:1/1/1",
            "a:1.5/60",
            // Integers as Redis's string2ll reads them: no sign, no leading zero.
            "a:+5/60",
            "a:5/+60",
            "a:+5/+60",
            "a:05/60",
            "a:5/060",
            "a:05/060",
            "a:-0/60",
            "a: 5/60",
            "a:1e3/60",
            "a:0x10/60",
            "a\0b:1/1",
            "a\u{7f}:1/1",
            "a\u{85}:1/1",
            "a:b:5/60",
            "a:1/1,",
            "a:1/1,,2/2",
            "a:1/1,2/2,3/3,4/4,5/5,6/6,7/7,8/8,9/9",
        ] {
            assert!(Policies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_show_control_characters_escaped() {
        for (bad, shown) in [
            ("a\0b:1/1", "a\\u{0}b:1/1"),
            ("a\0b", "a\\u{0}b"),
            ("a\u{1}:0/1", "a\\u{1}:0/1"),
        ] {
            let err = Policies::parse(bad).unwrap_err();
            assert!(err.contains(shown), "{err}");
            assert!(!err.chars().any(char::is_control), "{err:?}");
        }
    }

    #[test]
    fn many_policies_parse() {
        let text: Vec<String> = (0..100_000).map(|i| format!("a{i}:1/1")).collect();
        let p = Policies::parse(&text.join(" ")).unwrap();
        assert_eq!(p.get(b"a99999").map(|r| r.cover().limit), Some(1));
        let dup = format!("{} a5:1/1", text.join(" "));
        assert_eq!(
            Policies::parse(&dup),
            Err("action 'a5' is given twice".into())
        );
    }
}

/// Property tests: parsing never panics, and what parses renders back the same.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn rule() -> impl Strategy<Value = Rule> {
        (1..=MAX_LIMIT, MIN_WINDOW_MS / 1000..=MAX_WINDOW_MS / 1000).prop_map(|(limit, w)| Rule {
            limit,
            window_ms: w * 1000,
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,80}") {
            let _ = Policies::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_policy_like_text(text in "[a-z:/0-9{} \t.-]{0,60}") {
            if let Ok(p) = Policies::parse(&text) {
                // Whatever is accepted is within the documented bounds.
                for (action, r) in &p.rules {
                    prop_assert!(!action.is_empty() && action.len() <= MAX_ACTION_LEN);
                    let braces = action.contains(['{', '}', ':']);
                    prop_assert!(!braces, "{}", action);
                    prop_assert!(r.validate().is_ok());
                }
                prop_assert_eq!(Policies::parse(&p.render()), Ok(p));
            }
        }

        #[test]
        fn valid_policies_round_trip(
            items in vec(("[a-z_][a-z0-9_.-]{0,40}", rule()), 0..6),
            gaps in vec("[ \t\n]{1,3}", 7),
        ) {
            let mut seen = Vec::new();
            let mut text = String::new();
            for (i, (action, r)) in items.iter().enumerate() {
                if seen.contains(action) {
                    continue;
                }
                seen.push(action.clone());
                text.push_str(&gaps[i]);
                text.push_str(&format!("{action}:{}/{}", r.limit, r.window_ms / 1000));
            }
            let p = Policies::parse(&text).map_err(TestCaseError::fail)?;
            for (action, r) in &items {
                if let Some(got) = p.get(action.as_bytes()) {
                    // The first occurrence of a name was kept.
                    let first = items
                        .iter()
                        .find(|(a, _)| a == action)
                        .map(|(_, r)| Rules::one(*r));
                    prop_assert_eq!(Some(got), first);
                } else {
                    prop_assert!(false, "{} missing (rule {:?})", action, r);
                }
            }
            prop_assert_eq!(Policies::parse(&p.render()), Ok(p));
        }
    }
}
