//! The layers ARCHITECTURE.md draws, held: which workspace crates each crate may depend
//! on (read from `cargo metadata`), the operators crate reaching no catalog, online store,
//! AWS SDK or command line however indirectly, and no two modules of a crate importing each
//! other, directly or around a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace crates each crate's normal and build dependencies may name.
const LAYERS: &[(&str, &[&str])] = &[
    ("fengine-sqlite", &[]),
    ("fengine-dialect", &[]),
    ("fengine-operators", &[]),
    ("fengine-testing", &[]),
    ("fengine-catalog", &["fengine-sqlite"]),
    ("fengine-online", &["fengine-sqlite"]),
    (
        "fengine-engine",
        &[
            "fengine-catalog",
            "fengine-dialect",
            "fengine-online",
            "fengine-operators",
        ],
    ),
    ("fengine-aws", &["fengine-catalog", "fengine-online"]),
    (
        "fengine",
        &[
            "fengine-aws",
            "fengine-catalog",
            "fengine-dialect",
            "fengine-engine",
            "fengine-online",
        ],
    ),
    (
        "fengine-benches",
        &[
            "fengine-aws",
            "fengine-catalog",
            "fengine-online",
            "fengine-testing",
        ],
    ),
];

/// What `cargo <args>` prints, run on this workspace.
fn cargo(args: &[&str]) -> Vec<u8> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The workspace's packages by id (name), and the resolved dependency edges by package id:
/// (dependency id, whether only as a dev-dependency).
struct Metadata {
    names: BTreeMap<String, String>,
    members: BTreeSet<String>,
    edges: BTreeMap<String, Vec<(String, bool)>>,
}

impl Metadata {
    fn read() -> Metadata {
        let output = cargo(&["metadata", "--format-version", "1", "--all-features"]);
        let metadata: Value = serde_json::from_slice(&output).expect("JSON");
        let text = |v: &Value| v.as_str().expect("a string").to_string();
        let names = metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| (text(&p["id"]), text(&p["name"])))
            .collect();
        let members = metadata["workspace_members"]
            .as_array()
            .expect("members")
            .iter()
            .map(text)
            .collect();
        let edges = metadata["resolve"]["nodes"]
            .as_array()
            .expect("a resolved graph")
            .iter()
            .map(|node| {
                let deps = node["deps"]
                    .as_array()
                    .expect("deps")
                    .iter()
                    .map(|dep| {
                        let kinds = dep["dep_kinds"].as_array().expect("dep_kinds");
                        let dev_only = kinds.iter().all(|k| k["kind"] == "dev");
                        (text(&dep["pkg"]), dev_only)
                    })
                    .collect();
                (text(&node["id"]), deps)
            })
            .collect();
        Metadata {
            names,
            members,
            edges,
        }
    }

    fn id(&self, name: &str) -> &str {
        self.members
            .iter()
            .find(|id| self.names[*id] == name)
            .unwrap_or_else(|| panic!("{name} is not a workspace member"))
    }
}

/// The packages `cargo build -p <name>` and its tests build, however indirectly, with the
/// features `name` itself asks for (the workspace's resolve unifies every crate's).
fn built_with(name: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            name,
            "-e",
            "normal,build,dev",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_operators_crate_reaches_no_catalog_online_store_aws_or_command_line() {
    let built = built_with("fengine-operators");
    let forbidden: Vec<&String> = built
        .iter()
        .filter(|name| {
            (name.starts_with("fengine")
                && !["fengine-operators", "fengine-testing"].contains(&name.as_str()))
                || ["aws-sdk", "aws-config", "aws-smithy"]
                    .iter()
                    .any(|sdk| name.starts_with(sdk))
                || ["rusqlite", "clap", "parquet"].contains(&name.as_str())
        })
        .collect();
    assert!(
        forbidden.is_empty(),
        "fengine-operators depends, directly or not, on {forbidden:?}: it holds DataFusion \
         extensions only (ARCHITECTURE.md); move what needs these to the engine"
    );
    assert!(built.contains("datafusion") && built.contains("arrow"));
}

#[test]
fn each_crate_depends_only_on_the_layers_below_it() {
    let metadata = Metadata::read();
    let layers: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut members: Vec<&String> = metadata
        .members
        .iter()
        .map(|id| &metadata.names[id])
        .collect();
    members.sort();
    for name in members {
        let allowed = layers.get(name.as_str()).unwrap_or_else(|| {
            panic!("{name} is not in LAYERS: place it in ARCHITECTURE.md and here")
        });
        let workspace: Vec<&String> = metadata.edges[metadata.id(name)]
            .iter()
            .filter(|(dep, dev_only)| !dev_only && metadata.members.contains(dep))
            .map(|(dep, _)| &metadata.names[dep])
            .filter(|dep| !allowed.contains(&dep.as_str()))
            .collect();
        assert!(
            workspace.is_empty(),
            "{name} depends on {workspace:?}, which ARCHITECTURE.md does not let it"
        );
    }
}

/// A crate's top-level modules and the modules each one names through `crate::`, a name
/// re-exported at the crate root counting as the module that defines it.
fn module_imports(source: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let root = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| source.join(f))
        .find(|p| p.exists())
        .expect("a crate root");
    let root_text = code_of(&root);
    let modules: BTreeSet<String> = root_text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').to_string())
        })
        .collect();
    let mut defined_in: BTreeMap<String, String> = BTreeMap::new();
    for statement in root_text.split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = path.split_once("::") else {
            continue;
        };
        if modules.contains(module) {
            for name in top_level_items(names) {
                defined_in.insert(name, module.to_string());
            }
        }
    }
    let mut imports = BTreeMap::new();
    for module in &modules {
        let mut named = BTreeSet::new();
        for file in module_files(source, module) {
            let text = code_of(&file);
            for (at, _) in text.match_indices("crate::") {
                for name in top_level_items(&text[at + "crate::".len()..]) {
                    let target = if modules.contains(&name) {
                        Some(name)
                    } else {
                        defined_in.get(&name).cloned()
                    };
                    named.extend(target.filter(|t| t != module));
                }
            }
        }
        imports.insert(module.clone(), named);
    }
    imports
}

/// The first path segments of `crate::`'s continuation: `a::b` gives `a`, `{a, b::c}`
/// gives `a` and `b`.
fn top_level_items(text: &str) -> Vec<String> {
    let identifier = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let text = text.trim_start();
    let Some(group) = text.strip_prefix('{') else {
        return vec![identifier(text)];
    };
    let (mut depth, mut items, mut start) = (0, Vec::new(), 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(identifier(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(identifier(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    items.retain(|item| !item.is_empty() && item != "self");
    items
}

/// A file's text without its comments (whose `crate::` links are not imports).
fn code_of(file: &Path) -> String {
    std::fs::read_to_string(file)
        .expect("readable source")
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn module_files(source: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = source.join(format!("{module}.rs"));
    if file.exists() {
        files.push(file);
    }
    let mut folders = vec![source.join(module)];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// A circle of modules importing each other, if there is one.
fn circle(imports: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        imports: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut circle = path[start..].to_vec();
            circle.push(module.to_string());
            return Some(circle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for next in imports.get(module).into_iter().flatten() {
            if let Some(circle) = visit(next, imports, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    imports
        .keys()
        .find_map(|module| visit(module, imports, &mut Vec::new(), &mut done))
}

#[test]
fn no_modules_of_a_crate_import_each_other_around_a_circle() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![workspace.join("src")];
    for entry in std::fs::read_dir(workspace.join("crates")).expect("crates/") {
        sources.push(entry.expect("an entry").path().join("src"));
    }
    for source in sources {
        let imports = module_imports(&source);
        if let Some(circle) = circle(&imports) {
            panic!(
                "{}: modules import each other around a circle: {}. Move what both need into \
                 a module of its own that both import",
                source.display(),
                circle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_circle_finder_finds_circles() {
    let imports = |edges: &[(&str, &str)]| {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            map.entry(from.to_string())
                .or_default()
                .insert(to.to_string());
            map.entry(to.to_string()).or_default();
        }
        map
    };
    assert_eq!(
        circle(&imports(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        circle(&imports(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(
            vec!["a", "b", "c", "a"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
    assert_eq!(
        top_level_items("{backends::Backends, error::{Error, Result}, plan, self};"),
        vec!["backends", "error", "plan"]
    );
    assert_eq!(top_level_items("run::publish_group(x)"), vec!["run"]);
}
