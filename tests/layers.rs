//! The dependency rules of ARCHITECTURE.md's "Layers", checked on the
//! source: which modules a module may name through `crate::`. A rule that
//! is broken fails here with the file and the module it named, before it
//! becomes an import circle again.
//!
//! - `error`, `time` and `id` (the foundations) name nothing but each other;
//! - `model` (the domain's data) names only the foundations;
//! - `store` (the storage API and its backends) names only itself, `model`
//!   and the foundations: never a domain module;
//! - only `store` names a database crate (`rusqlite`, `postgres`), so a
//!   domain module cannot reach past the storage API to a backend.
//!
//! `#[cfg(test)]` modules are left out: a store test may set up data with
//! the domain's helpers without the store depending on them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without its `#[cfg(test)]` modules (they end the files).
fn non_test(text: &str) -> String {
    let mut kept = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        // Comments may name modules freely.
        let code = line.split("//").next().unwrap_or("");
        kept.push_str(code);
        kept.push('\n');
    }
    kept
}

/// The first path segment after every `crate::`, through `crate::{a, b::c}`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of a (possibly nested) group.
            let mut depth = 0;
            let mut name = String::new();
            let mut expecting = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expecting = true;
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 && expecting {
                    if c.is_alphanumeric() || c == '_' {
                        name.push(c);
                    } else if !name.is_empty() {
                        found.insert(std::mem::take(&mut name));
                        expecting = false;
                    }
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn names_database_crate(code: &str) -> Option<&'static str> {
    [
        "rusqlite::",
        "postgres::",
        "tokio_postgres",
        "postgres_types",
    ]
    .into_iter()
    .find(|c| {
        code.match_indices(c).any(|(i, _)| {
            // `store::postgres::` or `crate::postgres` are module paths, not the crate.
            let before = code[..i].chars().next_back();
            !matches!(before, Some(':') | Some('_')) || c.starts_with("tokio")
        })
    })
}

#[test]
fn modules_depend_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let top = rel.split(['/', '.']).next().unwrap().to_string();
        let code = non_test(&std::fs::read_to_string(file).unwrap());
        let allowed: Option<&[&str]> = match top.as_str() {
            "error" | "time" | "id" => Some(&["error", "time", "id"]),
            "model" => Some(&["model", "error", "time", "id"]),
            "store" => Some(&["store", "model", "error", "time", "id"]),
            _ => None,
        };
        if let Some(allowed) = allowed {
            checked += 1;
            for m in crate_modules(&code) {
                if !allowed.contains(&m.as_str()) {
                    broken.push(format!("{rel} names crate::{m} (allowed: {allowed:?})"));
                }
            }
        }
        if top != "store" {
            if let Some(c) = names_database_crate(&code) {
                broken.push(format!(
                    "{rel} names the database crate `{c}`: only store/ may (go through the storage API)"
                ));
            }
        }
    }
    assert!(
        checked >= 20,
        "found only {checked} layered files under {root:?}"
    );
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_grouped_and_plain_paths() {
    let found = crate_modules(
        "use crate::{error::Result, model::{a, b}, time};\nlet x = crate::runtimes::f();",
    );
    let want: BTreeSet<String> = ["error", "model", "time", "runtimes"]
        .map(String::from)
        .into();
    assert_eq!(found, want);
    assert_eq!(
        names_database_crate("let c: rusqlite::Connection;"),
        Some("rusqlite::")
    );
    assert_eq!(
        names_database_crate("use crate::store::postgres::Pool;"),
        None
    );
    assert_eq!(
        non_test("use crate::a;\n#[cfg(test)]\nmod tests {\nuse crate::b;\n}\n").trim(),
        "use crate::a;"
    );
}
