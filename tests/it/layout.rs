//! The deployable layout agrees with the library: the route table, the `api/` function
//! files, the `[[bin]]` entries of `Cargo.toml`, `vercel.json`, the `migrations/` folder,
//! and the documented configuration. Each test lists every disagreement it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use atlas_hub::db::migrate::MIGRATIONS;
use atlas_hub::routes::FUNCTIONS as ROUTES;
use atlas_hub::routes::Function as Route;
// The Vercel functions: one per route of the router (`atlas_hub::routes::FUNCTIONS`).

use crate::support::root;

/// Fails with every problem at once, so one run shows the whole drift.
fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Every `.rs` file under `api/`, as a project-relative path with `/` separators.
fn api_files() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root()).unwrap();
                out.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&root().join("api"), &mut out);
    out
}

/// `(name, path)` of every `[[bin]]` in `Cargo.toml`.
fn cargo_bins() -> Vec<(String, String)> {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml parses");
    let Some(bins) = manifest.get("bin").and_then(|b| b.as_array()) else {
        return Vec::new();
    };
    bins.iter()
        .map(|bin| {
            let field = |key: &str| {
                bin.get(key)
                    .and_then(|v| v.as_str())
                    .unwrap_or_else(|| panic!("a [[bin]] without `{key}`: {bin:?}"))
                    .trim_start_matches("./")
                    .to_owned()
            };
            (field("name"), field("path"))
        })
        .collect()
}

fn vercel_json() -> serde_json::Value {
    serde_json::from_str(&read("vercel.json")).expect("vercel.json is valid JSON")
}

/// `{name}` segments as Vercel file-system routing spells them: `[name]`.
fn bracketed(pattern: &str) -> String {
    pattern.replace('{', "[").replace('}', "]")
}

/// `{name}` (or `[name]`) segments as `vercel.json` rewrites spell them: `:name`.
fn colon(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let name = segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .or_else(|| segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')));
            match name {
                Some(name) => format!(":{name}"),
                None => segment.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a route is public under `/api` (served at its file's path) or elsewhere
/// (served through a `vercel.json` rewrite).
fn under_api(route: &Route) -> bool {
    route.pattern == "/api" || route.pattern.starts_with("/api/")
}

/// The URL path Vercel serves a function file at: `api/a/[b].rs` → `/api/a/[b]`,
/// `api/a/index.rs` → `/api/a`.
fn function_path(api_file: &str) -> String {
    let stem = api_file.strip_suffix(".rs").unwrap_or(api_file);
    let stem = stem.strip_suffix("/index").unwrap_or(stem);
    format!("/{stem}")
}

/// The function path a route must have: its own pattern under `/api`, else `/api` + pattern
/// (e.g. `/download/{product}/…` lives in `api/download/[product]/….rs`).
fn expected_function_path(route: &Route) -> String {
    if under_api(route) {
        bracketed(route.pattern)
    } else {
        format!("/api{}", bracketed(route.pattern))
    }
}

#[test]
fn route_table_api_files_bins_and_vercel_json_agree() {
    let mut problems = Vec::new();
    let files = api_files();
    let bins = cargo_bins();
    let bins_by_path: BTreeMap<&str, Vec<&str>> =
        bins.iter().fold(BTreeMap::new(), |mut map, (name, path)| {
            map.entry(path.as_str()).or_default().push(name.as_str());
            map
        });

    // The route table itself: no duplicates.
    let mut seen = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for route in ROUTES {
        if !seen.0.insert(route.pattern) {
            problems.push(format!("pattern {} appears twice in ROUTES", route.pattern));
        }
        if !seen.1.insert(route.api_file) {
            problems.push(format!("api_file {} hosts two routes", route.api_file));
        }
        if !seen.2.insert(route.bin) {
            problems.push(format!("bin name {} is used by two routes", route.bin));
        }
    }
    // Every function's route is a route of the router (its OpenAPI paths are the router's).
    let doc = atlas_hub::routes::openapi::generate();
    for route in ROUTES {
        if doc["paths"].get(route.pattern).is_none() {
            problems.push(format!(
                "function {}: the router has no route {}",
                route.bin, route.pattern
            ));
        }
    }

    // Route → file, [[bin]], file content, file-system path.
    for route in ROUTES {
        let p = route.pattern;
        if !files.contains(route.api_file) {
            problems.push(format!("route {p}: {} does not exist", route.api_file));
        } else {
            let source = read(route.api_file);
            let call = format!("serve_function(\"{p}\")");
            if !source.contains(&call) {
                problems.push(format!(
                    "{} must call atlas_hub::hosts::serve_function(\"{p}\")",
                    route.api_file
                ));
            }
            if source.matches("serve_function(").count() != 1 {
                problems.push(format!(
                    "{} must call serve_function exactly once",
                    route.api_file
                ));
            }
        }
        match bins.iter().find(|(name, _)| name == route.bin) {
            None => problems.push(format!(
                "route {p}: Cargo.toml has no [[bin]] named {:?} (path = {:?})",
                route.bin, route.api_file
            )),
            Some((_, path)) if path != route.api_file => problems.push(format!(
                "[[bin]] {:?} has path {path:?}, but route {p} is hosted by {:?}",
                route.bin, route.api_file
            )),
            Some(_) => {}
        }
        let expected = expected_function_path(route);
        let actual = function_path(route.api_file);
        if actual != expected {
            let stem = expected.trim_start_matches('/');
            problems.push(format!(
                "route {p} is in {} (served at {actual}); Vercel serves it at {expected} \
                 only from {stem}.rs or {stem}/index.rs",
                route.api_file
            ));
        }
    }

    // File → route.
    for file in &files {
        if !ROUTES.iter().any(|r| r.api_file == file) {
            problems.push(format!("{file} is not the api_file of any route in ROUTES"));
        }
    }

    // [[bin]] under api/ → route; and no file built twice.
    for (name, path) in &bins {
        if path.starts_with("api/") && !ROUTES.iter().any(|r| r.bin == name) {
            problems.push(format!(
                "[[bin]] {name:?} (path {path:?}) is under api/ but belongs to no route"
            ));
        }
    }
    for (path, names) in &bins_by_path {
        if names.len() > 1 {
            problems.push(format!("{path} is the path of several [[bin]]s: {names:?}"));
        }
    }

    // vercel.json: manual deployments, function settings, rewrites for routes outside /api.
    let vercel = vercel_json();
    if vercel["git"]["deploymentEnabled"] != serde_json::json!(false) {
        problems.push("vercel.json must set git.deploymentEnabled to false".into());
    }
    match vercel["functions"].as_object() {
        Some(functions) if functions.contains_key("api/**/*.rs") => {
            for (glob, settings) in functions {
                if settings.get("runtime").is_some() {
                    problems.push(format!(
                        "vercel.json functions.{glob:?} sets `runtime`; the official Rust \
                         runtime is chosen from the .rs files and must not be pinned"
                    ));
                }
            }
        }
        _ => problems.push("vercel.json must configure functions \"api/**/*.rs\"".into()),
    }
    let expected_rewrites: BTreeMap<String, String> = ROUTES
        .iter()
        .filter(|r| !under_api(r))
        .map(|r| (colon(r.pattern), colon(&function_path(r.api_file))))
        .collect();
    let mut actual_rewrites = BTreeMap::new();
    for rewrite in vercel["rewrites"].as_array().into_iter().flatten() {
        let (Some(source), Some(destination)) =
            (rewrite["source"].as_str(), rewrite["destination"].as_str())
        else {
            problems.push(format!(
                "vercel.json rewrite without source/destination: {rewrite}"
            ));
            continue;
        };
        // The console's shell: static output, not a function (checked in `console_*`).
        if destination == CONSOLE_SHELL {
            continue;
        }
        if actual_rewrites
            .insert(source.to_owned(), destination.to_owned())
            .is_some()
        {
            problems.push(format!("vercel.json rewrites {source} twice"));
        }
    }
    for (source, destination) in &expected_rewrites {
        match actual_rewrites.get(source) {
            None => problems.push(format!(
                "route {source} is outside /api: vercel.json needs \
                 {{\"source\": \"{source}\", \"destination\": \"{destination}\"}}"
            )),
            Some(actual) if actual != destination => problems.push(format!(
                "vercel.json rewrites {source} to {actual}; its function is at {destination}"
            )),
            Some(_) => {}
        }
    }
    for (source, destination) in &actual_rewrites {
        if !expected_rewrites.contains_key(source) {
            let target = ROUTES
                .iter()
                .find(|r| colon(&function_path(r.api_file)) == *destination);
            problems.push(match target {
                None => format!(
                    "vercel.json rewrites {source} to {destination}, which is no route's function"
                ),
                Some(r) => format!(
                    "vercel.json rewrites {source} to {destination}, but that function serves \
                     {}; a rewrite's source must be its route's pattern",
                    r.pattern
                ),
            });
        }
    }
    // Each rewrite is undone by the Vercel host: its destination prefix maps back to the
    // source's (`atlas_hub::hosts::vercel::REWRITES`).
    for (source, destination) in &actual_rewrites {
        let undone = atlas_hub::hosts::vercel::REWRITES.iter().any(|(from, to)| {
            destination.strip_prefix(from) == source.strip_prefix(to)
                && destination.starts_with(from)
        });
        if !undone {
            problems.push(format!(
                "vercel.json rewrites {source} to {destination}, and hosts::vercel::REWRITES \
                 does not map it back"
            ));
        }
    }

    assert_no_problems("layout", &problems);
}

/// Where Vercel sends every console path: the app's shell, which routes in the browser.
const CONSOLE_SHELL: &str = "/console/index.html";

/// The console is static output on Vercel and compiled into the local server: the same files
/// (`public/console/` and `routes::console::ASSETS`), the same headers (`vercel.json` and
/// `routes::console::HEADERS`), and every console path rewritten to the shell.
#[test]
fn the_console_is_the_same_on_vercel_and_locally() {
    use atlas_hub::routes::console::{ASSETS, HEADERS};
    let mut problems = Vec::new();
    let folder = root().join("public/console");
    let mut on_disk = BTreeSet::new();
    let mut stack = vec![folder.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                on_disk.insert(
                    path.strip_prefix(&folder)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let compiled: BTreeSet<String> = ASSETS.iter().map(|(p, _, _)| (*p).to_owned()).collect();
    for missing in on_disk.difference(&compiled) {
        problems.push(format!(
            "public/console/{missing} is not in routes::console::ASSETS (the local server would not serve it)"
        ));
    }
    for extra in compiled.difference(&on_disk) {
        problems.push(format!(
            "routes::console::ASSETS lists {extra}, which public/console lacks"
        ));
    }
    let vercel: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("vercel.json")).unwrap())
            .unwrap();
    let rewrites: BTreeSet<(String, String)> = vercel["rewrites"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["destination"] == CONSOLE_SHELL)
        .map(|r| {
            (
                r["source"].as_str().unwrap_or("").to_owned(),
                CONSOLE_SHELL.to_owned(),
            )
        })
        .collect();
    for source in ["/console", "/console/:path*"] {
        if !rewrites.contains(&(source.to_owned(), CONSOLE_SHELL.to_owned())) {
            problems.push(format!(
                "vercel.json must rewrite {source} to {CONSOLE_SHELL}"
            ));
        }
    }
    let headers: BTreeMap<String, String> = vercel["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["source"] == "/console(.*)")
        .flat_map(|h| h["headers"].as_array().cloned().unwrap_or_default())
        .map(|h| {
            (
                h["key"].as_str().unwrap_or("").to_ascii_lowercase(),
                h["value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let local: BTreeMap<String, String> = HEADERS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if headers != local {
        problems.push(format!(
            "vercel.json's headers for /console(.*) differ from routes::console::HEADERS:\n  \
             vercel.json: {headers:?}\n  local:       {local:?}"
        ));
    }
    assert_no_problems("console", &problems);
}

/// Vercel publishes the output directory as static files; without `public/` that would be
/// the project root, sources and lock file included.
#[test]
fn static_output_is_only_the_public_folder() {
    let mut problems = Vec::new();
    if !root().join("public/index.html").is_file() {
        problems.push("public/index.html is missing".to_owned());
    }
    for entry in std::fs::read_dir(root().join("public"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let source_like = [".rs", ".toml", ".lock", ".sql", ".env"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if source_like || name.starts_with(".env") {
            problems.push(format!("public/{name} would be published as a static file"));
        }
    }
    assert_no_problems("public/", &problems);
}

#[test]
fn migrations_folder_and_migration_list_agree() {
    let mut problems = Vec::new();
    let mut files: Vec<String> = std::fs::read_dir(root().join("migrations"))
        .expect("migrations/ exists")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();

    for (index, name) in files.iter().enumerate() {
        let well_formed = name.len() > 9
            && name.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && name.as_bytes()[4] == b'_'
            && name[5..name.len() - 4]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !well_formed {
            problems.push(format!(
                "migrations/{name}: expected NNNN_lower_snake_case.sql"
            ));
            continue;
        }
        let version: i32 = name[..4].parse().unwrap();
        if version != index as i32 + 1 {
            problems.push(format!(
                "migrations/{name}: versions must run 1, 2, 3… without gaps; expected {:04}",
                index + 1
            ));
        }
        match MIGRATIONS.iter().find(|m| m.name == name) {
            None => problems.push(format!(
                "migrations/{name} is not in atlas_hub::db::migrate::MIGRATIONS"
            )),
            Some(m) => {
                if m.version != version {
                    problems.push(format!(
                        "MIGRATIONS lists {name} as version {}, its file name says {version}",
                        m.version
                    ));
                }
                if m.sql != read(&format!("migrations/{name}")) {
                    problems.push(format!(
                        "MIGRATIONS entry {name} does not include_str! migrations/{name}"
                    ));
                }
            }
        }
    }
    for m in MIGRATIONS {
        if !files.iter().any(|f| f == m.name) {
            problems.push(format!("MIGRATIONS lists {}, not in migrations/", m.name));
        }
    }
    let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    if listed != files {
        problems.push(format!(
            "MIGRATIONS must list migrations/ in order: {listed:?} vs {files:?}"
        ));
    }
    if !MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version) {
        problems.push("MIGRATIONS versions must increase".into());
    }
    assert_no_problems("migrations", &problems);
}

/// Every environment variable the configuration code, the command line and the dev services
/// read (`"ATLAS_…"`, `"…_URL"`, `"PORT"` string literals) is documented in `.env.example` and in the README's configuration table.
#[test]
fn every_configuration_variable_is_documented() {
    let mut sources = Vec::new();
    for dir in ["lib/config", "cli", "lib/dev"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".rs") {
                sources.push(format!("{dir}/{name}"));
            }
        }
    }
    let mut variables = BTreeSet::new();
    for file in &sources {
        let text = read(file);
        // `"NAME"` where NAME is upper-case: a variable name passed to the reader or clap.
        for (start, _) in text.match_indices('"') {
            let rest = &text[start + 1..];
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
                .count();
            let literal = &rest[..len];
            let is_variable = len >= 4
                && rest[len..].starts_with('"')
                && (literal.starts_with("ATLAS_")
                    || literal.ends_with("_URL")
                    || literal == "PORT");
            if is_variable {
                variables.insert(literal.to_owned());
            }
        }
    }
    assert!(
        variables.contains("DATABASE_URL") && variables.contains("ATLAS_TOKEN_PEPPER"),
        "the scan found too little: {variables:?}"
    );
    let env_example = read(".env.example");
    let readme = read("README.md");
    let mut problems = Vec::new();
    for var in &variables {
        let in_example = env_example.lines().any(|line| {
            let line = line.trim_start_matches('#').trim_start();
            line.strip_prefix(var.as_str())
                .is_some_and(|rest| rest.starts_with('='))
        });
        if !in_example {
            problems.push(format!(".env.example has no `{var}=` line"));
        }
        if !readme.contains(&format!("`{var}`")) {
            problems.push(format!("README.md's configuration table lacks `{var}`"));
        }
    }
    assert_no_problems("configuration docs", &problems);
}

/// The README's two commands are the ones that work: `cargo run -- serve` needs the CLI as
/// the package's `default-run` (there are many binaries), and CI runs the README's test
/// command.
#[test]
fn the_readme_commands_match_the_manifest_and_ci() {
    let mut problems = Vec::new();
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml parses");
    let default_run = manifest
        .get("package")
        .and_then(|p| p.get("default-run"))
        .and_then(|d| d.as_str());
    if default_run != Some("atlas-hub") {
        problems.push(format!(
            "Cargo.toml [package] needs default-run = \"atlas-hub\" for `cargo run -- serve` \
             (found {default_run:?})"
        ));
    }
    let readme = read("README.md");
    let ci = read(".ci/run");
    if !readme.contains("```sh\ncargo run -- serve\n```") {
        problems.push("README.md does not show `cargo run -- serve` as its run command".into());
    }
    // The one command under "Run the tests" is the one CI runs, as it is written.
    let tests = readme
        .split_once("## Run the tests\n")
        .and_then(|(_, rest)| rest.split_once("```sh\n"))
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(command, _)| command.trim().to_owned());
    match tests {
        Some(command) if !command.contains('\n') => {
            // Followed by nothing but a redirection or a pipe: no extra arguments.
            let runs = ci.lines().any(|l| {
                l.trim()
                    .strip_prefix(command.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(" 2>&1") || rest.starts_with(" |"))
            });
            if !runs {
                problems.push(format!(".ci/run does not run the README's `{command}` as written"));
            }
        }
        other => problems.push(format!(
            "README.md's \"Run the tests\" section needs exactly one command in a sh block (found {other:?})"
        )),
    }
    assert_no_problems("README commands", &problems);
}
