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
