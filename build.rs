//! Generates the REST layer from `spec/openapi.json` with progenitor.
//!
//! This is the only thing the build script does: anything that reshapes the spec lives in
//! `xtask` and is committed, so the spec in the repository is exactly what is compiled.

use std::{env, fs, path::PathBuf};

use progenitor::Generator;

/// The generation settings, shared with the xtask.
#[path = "codegen/generation.rs"]
mod generation;

fn main() {
    println!("cargo:rerun-if-changed=spec/openapi.json");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=codegen/generation.rs");

    let text = fs::read_to_string("spec/openapi.json").expect("read spec/openapi.json");
    let spec: openapiv3::OpenAPI =
        serde_json::from_str(&text).expect("spec/openapi.json is not an OpenAPI 3.0 document");
    let raw: serde_json::Value = serde_json::from_str(&text).expect("spec/openapi.json is JSON");

    let json_schema = env::var_os("CARGO_FEATURE_SCHEMARS").is_some();
    let settings = generation::settings_with(&raw, json_schema);
    let mut generator = Generator::new(&settings);
    let tokens = generator
        .generate_tokens(&spec)
        .unwrap_or_else(|e| panic!("progenitor rejected spec/openapi.json: {e}"));
    // The token stream as text, not pretty-printed: rustc does not need it formatted, and
    // dependents do not compile a formatter. `cargo xtask` tooling parses it with syn.
    let mut code = tokens.to_string();
    code.push('\n');
    code.push_str(&security_table(&raw));

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("rest.rs");
    fs::write(&out, code).expect("write generated code");
}

/// The operations whose `security` asks for the platform credentials only, so the request
/// hook knows which requests carry the user headers.
fn security_table(spec: &serde_json::Value) -> String {
    let mut platform_only = Vec::new();
    let mut all = Vec::new();
    let paths = spec["paths"].as_object().expect("paths");
    for item in paths.values() {
        for (method, op) in item.as_object().expect("path item") {
            if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                continue;
            }
            let id = op["operationId"].as_str().expect("operationId").to_string();
            let security = op.get("security").unwrap_or(&spec["security"]);
            let needs_user = security
                .as_array()
                .map(|alternatives| {
                    alternatives
                        .iter()
                        .all(|req| req.as_object().is_some_and(|r| r.contains_key("user_id")))
                })
                .unwrap_or(false);
            if !needs_user {
                platform_only.push(id.clone());
            }
            all.push(id);
        }
    }
    platform_only.sort();
    all.sort();
    format!(
        "\n/// Operations that need only the platform credentials (from the spec's `security`).\n\
         pub const PLATFORM_ONLY_OPERATIONS: &[&str] = &{platform_only:?};\n\
         /// Every operation id of the spec.\n\
         pub const ALL_OPERATIONS: &[&str] = &{all:?};\n"
    )
}
