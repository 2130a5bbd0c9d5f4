//! The documentation holds together: every relative link in README.md and
//! docs/*.md reaches an existing file (and heading, for `#anchor` links into
//! Markdown), prose lines stay readable, and docs/commands.md has a heading
//! for every command the module registers on Redis 7.0 and Valkey 8.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use common::{cmd, Flavor, Server};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file in docs/.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("read docs/").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let marker = if t.starts_with("```") {
            Some("```")
        } else if t.starts_with("~~~") {
            Some("~~~")
        } else {
            None
        };
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(f), Some(m)) if f == m => fence = None,
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// A line with its inline code spans removed (links inside them are text).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of inline links `[text](target)` and `![alt](target)`, and
/// of reference definitions `[name]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut out = Vec::new();
    let t = line.trim_start();
    if t.starts_with('[') {
        if let Some(pos) = t.find("]:") {
            if let Some(target) = t[pos + 2..].split_whitespace().next() {
                out.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
            }
        }
    }
    let mut rest = line.as_str();
    while let Some(pos) = rest.find("](") {
        let after = &rest[pos + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or("");
        out.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
        rest = &after[end..];
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-` and
/// `_` removed, spaces turned into `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The text of each ATX heading (`## Text`) outside code blocks.
fn headings(text: &str) -> Vec<String> {
    prose_lines(text)
        .into_iter()
        .filter_map(|(_, line)| {
            let hashes = line.chars().take_while(|&c| c == '#').count();
            if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
                return None;
            }
            Some(
                line[hashes..]
                    .trim()
                    .trim_end_matches('#')
                    .trim()
                    .to_string(),
            )
        })
        .collect()
}

/// Every anchor of a Markdown file; repeated headings get `-1`, `-2`, ... as
/// on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for h in headings(text) {
        let base = anchor(&h);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

#[test]
fn anchors_follow_github_rules() {
    assert_eq!(anchor("CACHE.GETUSER"), "cachegetuser");
    assert_eq!(
        anchor("The search key and Python's `json.dumps`"),
        "the-search-key-and-pythons-jsondumps"
    );
    assert_eq!(
        anchor("Memory limits and eviction"),
        "memory-limits-and-eviction"
    );
    assert_eq!(
        anchor("key_style: plain or tagged"),
        "key_style-plain-or-tagged"
    );
    let text = "# A\n## Same\n```\n# not a heading\n```\n## Same\n";
    let got: Vec<String> = anchors(text).into_iter().collect();
    assert_eq!(got, ["a", "same", "same-1"]);
    assert_eq!(
        link_targets("see [a](x.md#b), `[c](not-a-link)` and [d](<y z.md>)"),
        ["x.md#b", "y"]
    );
}

#[test]
fn relative_links_reach_files_and_headings() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        let name = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        for (line_no, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if target.is_empty() {
                    problems.push(format!("{name}:{line_no}: empty link target"));
                    continue;
                }
                if is_external(&target) {
                    continue;
                }
                checked += 1;
                let (path, fragment) = match target.split_once('#') {
                    Some((p, f)) => (p, Some(f)),
                    None => (target.as_str(), None),
                };
                let dest = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap_or(&root()).join(path)
                };
                if !dest.exists() {
                    problems.push(format!("{name}:{line_no}: {target}: no file {path}"));
                    continue;
                }
                let Some(fragment) = fragment else { continue };
                if dest.extension().is_none_or(|x| x != "md") {
                    continue;
                }
                if !anchors(&read(&dest)).contains(fragment) {
                    problems.push(format!(
                        "{name}:{line_no}: {target}: no heading #{fragment}"
                    ));
                }
            }
        }
    }
    assert!(checked > 0, "no relative links found");
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// Prose, headings and tables stay readable in a terminal: at most 100
/// characters, except lines that are a table row or hold one long link.
#[test]
fn prose_lines_are_at_most_100_characters() {
    let mut problems = Vec::new();
    for file in markdown_files() {
        let text = read(&file);
        let name = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        for (line_no, line) in prose_lines(&text) {
            let t = line.trim_start();
            if t.starts_with('|') || line.chars().count() <= 100 {
                continue;
            }
            // A line may run long for one code span or link that it holds alone.
            let outside = without_code_spans(t);
            if !line.contains(' ')
                || outside
                    .trim_matches(|c: char| !c.is_alphanumeric())
                    .is_empty()
            {
                continue;
            }
            problems.push(format!(
                "{name}:{line_no}: {} characters",
                line.chars().count()
            ));
        }
    }
    assert!(problems.is_empty(), "long lines:\n{}", problems.join("\n"));
}

/// The module's commands on a running server, upper case, without the
/// test-only debug command of the `panic-test` feature.
fn registered_commands(server: &Server) -> BTreeSet<String> {
    let mut c = server.conn();
    let names: Vec<String> = cmd("COMMAND")
        .arg("LIST")
        .arg("FILTERBY")
        .arg("MODULE")
        .arg("cachekit")
        .query(&mut c)
        .expect("COMMAND LIST FILTERBY MODULE cachekit");
    names
        .into_iter()
        .map(|n| n.to_uppercase())
        .filter(|n| !n.starts_with("CACHEKIT.DEBUG"))
        .collect()
}

#[test]
fn every_registered_command_has_a_heading_in_commands_md() {
    let path = root().join("docs/commands.md");
    let text = read(&path);
    let heads: BTreeSet<String> = headings(&text).into_iter().collect();
    let page_anchors = anchors(&text);
    // The index at the top links each command's heading.
    let linked: BTreeSet<String> = prose_lines(&text)
        .into_iter()
        .flat_map(|(_, l)| link_targets(l))
        .filter_map(|t| t.strip_prefix('#').map(str::to_string))
        .collect();
    let documented: BTreeSet<String> = heads
        .iter()
        .filter(|h| h.starts_with("CACHE.") || h.starts_with("RATELIMIT."))
        .cloned()
        .collect();
    for flavor in Flavor::ALL {
        let server = Server::start(flavor);
        let registered = registered_commands(&server);
        assert!(
            registered.len() >= 20,
            "{}: only {registered:?} registered",
            flavor.binary()
        );
        for name in &registered {
            assert!(
                heads.contains(name),
                "{}: docs/commands.md has no heading `## {name}`",
                flavor.binary()
            );
            let a = anchor(name);
            assert!(page_anchors.contains(&a));
            assert!(
                linked.contains(&a),
                "docs/commands.md: the index does not link #{a}"
            );
        }
        for name in &documented {
            assert!(
                registered.contains(name),
                "{}: docs/commands.md documents {name}, which the module does not register",
                flavor.binary()
            );
        }
        server.assert_log_clean();
    }
}
