//! `spec/PROVENANCE.md` lists every element the spec marks "(inferred)", and nothing else, so
//! the first real refresh shows exactly which guesses were wrong.

use std::collections::BTreeSet;

fn inferred_paths(node: &serde_json::Value, path: String, out: &mut BTreeSet<String>) {
    match node {
        serde_json::Value::Object(map) => {
            if map
                .get("description")
                .and_then(|d| d.as_str())
                .is_some_and(|d| d.contains("(inferred)"))
            {
                out.insert(path.clone());
            }
            for (key, value) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                inferred_paths(value, format!("{path}/{key}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                inferred_paths(value, format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn provenance_lists_exactly_the_inferred_elements() {
    let root = env!("CARGO_MANIFEST_DIR");
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/spec/openapi.json")).unwrap(),
    )
    .unwrap();
    let provenance = std::fs::read_to_string(format!("{root}/spec/PROVENANCE.md")).unwrap();
    let mut in_spec = BTreeSet::new();
    inferred_paths(&spec, "#".to_string(), &mut in_spec);
    let section = provenance
        .split("<!-- inferred:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- inferred:end -->").next())
        .expect("PROVENANCE.md has the inferred section markers");
    let listed: BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("- `"))
        .filter_map(|line| line.split('`').next())
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = in_spec.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&in_spec).collect();
    assert!(
        missing.is_empty(),
        "inferred in the spec but not in PROVENANCE.md: {missing:#?}"
    );
    assert!(
        stale.is_empty(),
        "listed in PROVENANCE.md but not inferred in the spec: {stale:#?}"
    );
    assert!(in_spec.len() > 10);
}

/// The JSON pointer of every property a `required` list of the spec names.
fn required_fields(node: &serde_json::Value, path: String, out: &mut BTreeSet<String>) {
    match node {
        serde_json::Value::Object(map) => {
            if let Some(required) = map.get("required").and_then(|r| r.as_array()) {
                for field in required.iter().filter_map(|f| f.as_str()) {
                    out.insert(format!("{path}/properties/{field}"));
                }
            }
            for (key, value) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                required_fields(value, format!("{path}/{key}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                required_fields(value, format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn spec_and_provenance() -> (serde_json::Value, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let spec = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/spec/openapi.json")).unwrap(),
    )
    .unwrap();
    let provenance = std::fs::read_to_string(format!("{root}/spec/PROVENANCE.md")).unwrap();
    (spec, provenance)
}

/// Required only where a source says so: every required field of the spec has a row in
/// PROVENANCE.md's table naming its source ([S] documentation, [R] reference/cookbook, [C]
/// production integration), and every row is a required field.
#[test]
fn every_required_field_has_a_source() {
    let (spec, provenance) = spec_and_provenance();
    let mut in_spec = BTreeSet::new();
    required_fields(&spec, "#".to_string(), &mut in_spec);
    let section = provenance
        .split("<!-- required:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- required:end -->").next())
        .expect("PROVENANCE.md has the required section markers");
    let mut listed = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let mut cells = line.trim_matches('|').split('|').map(str::trim);
        let field = cells.next().unwrap().trim_matches('`').to_string();
        let source = cells.next().unwrap_or_default();
        assert!(
            ["[S]", "[R]", "[C]"]
                .iter()
                .any(|tag| source.starts_with(tag)),
            "{field}: the source must start with [S], [R] or [C], not {source:?}"
        );
        assert!(source.len() > 4, "{field}: say what the source shows");
        listed.insert(field);
    }
    let missing: Vec<_> = in_spec.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&in_spec).collect();
    assert!(
        missing.is_empty(),
        "required in the spec without a source in PROVENANCE.md (make them optional, or \
         name the source): {missing:#?}"
    );
    assert!(
        stale.is_empty(),
        "listed in PROVENANCE.md but not required in the spec: {stale:#?}"
    );
}

/// Success is any 2XX: no operation declares a single success code, which would make the
/// generated client refuse a 201 or a 204.
#[test]
fn every_operation_succeeds_on_any_2xx() {
    let (spec, _) = spec_and_provenance();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op.get("responses").and_then(|r| r.as_object()) else {
                continue;
            };
            let successes: Vec<_> = responses.keys().filter(|c| c.starts_with('2')).collect();
            assert_eq!(successes, ["2XX"], "{method} {path}");
        }
    }
}

/// The operations whose answers can hold a secret (a `format: password` field in their
/// success schema) are exactly those whose bodies the client never quotes.
#[test]
fn the_secret_bearing_operations_are_those_the_spec_marks() {
    let (spec, _) = spec_and_provenance();
    fn holds_password(spec: &serde_json::Value, node: &serde_json::Value, depth: usize) -> bool {
        if depth > 20 {
            return false;
        }
        match node {
            serde_json::Value::Object(map) => {
                if map.get("format").and_then(|f| f.as_str()) == Some("password") {
                    return true;
                }
                if let Some(target) = map.get("$ref").and_then(|r| r.as_str()) {
                    let pointer = target.trim_start_matches('#');
                    if let Some(resolved) = spec.pointer(pointer) {
                        return holds_password(spec, resolved, depth + 1);
                    }
                }
                map.values().any(|v| holds_password(spec, v, depth + 1))
            }
            serde_json::Value::Array(items) => {
                items.iter().any(|v| holds_password(spec, v, depth + 1))
            }
            _ => false,
        }
    }
    let mut marked = BTreeSet::new();
    for item in spec["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(success) = op.pointer("/responses/2XX")
                && holds_password(&spec, success, 0)
            {
                marked.insert(op["operationId"].as_str().unwrap().to_string());
            }
        }
    }
    let listed: BTreeSet<String> = connect_trade::client::SECRET_BEARING_OPERATIONS
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(marked, listed);
}
