//! Normalization: our conventions, determinism, and fixtures progenitor rejects raw.

use serde_json::{Value, json};
use xtask::{generate::generate, json::to_canonical_string, load, normalize::normalize};

fn spec_path() -> std::path::PathBuf {
    xtask::workspace_root().join("spec/openapi.json")
}

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    load::read_spec(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn our_spec_is_already_normalized() {
    let text = std::fs::read_to_string(spec_path()).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let normalized = normalize(&doc);
    assert_eq!(to_canonical_string(&normalized.document), text);
    assert!(normalized.notes.is_empty(), "{:#?}", normalized.notes);
}

#[test]
fn probe() {
    for name in [
        "openapi-3.1.yaml",
        "default-responses.json",
        "auth-headers.json",
    ] {
        let raw = fixture(name);
        eprintln!("{name} raw: {:?}", generate(&raw).map(|s| s.len()));
        let n = normalize(&raw);
        eprintln!(
            "{name} normalized: {:?}",
            generate(&n.document).map(|s| s.len())
        );
        for note in &n.notes {
            eprintln!("  {note}");
        }
        eprintln!("{}", to_canonical_string(&n.document));
    }
    let _ = json!(1);
}
