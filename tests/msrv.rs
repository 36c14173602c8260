//! The stated `rust-version` holds for what the published crates build with: every package the
//! library, its binaries and the simulator depend on (normal and build dependencies, every
//! feature, the versions in the committed `Cargo.lock`) declares a `rust-version` no newer than
//! ours. A newer dependency would break every user on our MSRV; this catches it on any
//! toolchain (the CI's MSRV job then compiles on 1.88 itself).

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use serde_json::Value;

/// `1.88` or `1.88.0` as (1, 88, 0).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[test]
fn no_dependency_of_the_published_crates_needs_a_newer_rust_than_ours() {
    // This machine's platform only: offline, the packages of other platforms are not here.
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let rustc = String::from_utf8_lossy(&rustc.stdout).into_owned();
    let host = rustc
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc names its host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--filter-platform",
            host,
            "--format-version",
            "1",
            "--locked",
            "--offline",
            "--all-features",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let packages: BTreeMap<&str, &Value> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap_or_default(), p))
        .collect();
    let ours = packages
        .values()
        .find(|p| p["name"] == "connect-trade")
        .expect("connect-trade in the metadata");
    let msrv = version(
        ours["rust_version"]
            .as_str()
            .expect("rust-version is stated"),
    );

    // Walk the resolved graph from the published crates along normal and build edges only.
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve")
        .iter()
        .map(|n| (n["id"].as_str().unwrap_or_default(), n))
        .collect();
    let mut todo: Vec<&str> = packages
        .iter()
        .filter(|(_, p)| p["name"] == "connect-trade" || p["name"] == "connect-trade-sim")
        .map(|(id, _)| *id)
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().into_iter().flatten() {
            let shipped = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if shipped {
                todo.push(dep["pkg"].as_str().unwrap_or_default());
            }
        }
    }
    assert!(
        seen.len() > 50,
        "the graph was walked: {} packages",
        seen.len()
    );
    let too_new: Vec<String> = seen
        .iter()
        .filter_map(|id| {
            let package = packages[id];
            let needs = package["rust_version"].as_str()?;
            (version(needs) > msrv).then(|| {
                format!(
                    "{} {} needs rust {needs}",
                    package["name"].as_str().unwrap_or_default(),
                    package["version"].as_str().unwrap_or_default()
                )
            })
        })
        .collect();
    assert!(
        too_new.is_empty(),
        "dependencies newer than our rust-version {}.{}: {too_new:?}; pin an older release \
         (`cargo update -p NAME --precise VERSION`) or raise rust-version with a CHANGELOG entry",
        msrv.0,
        msrv.1
    );
}
