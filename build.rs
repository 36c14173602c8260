//! Generates the REST layer from `spec/openapi.json` with progenitor.
//!
//! It also writes the open enums of `src/codes.rs` (one per string enum of the spec, see
//! `codegen/open_enums.rs`). Anything that reshapes the spec lives in
//! `xtask` and is committed, so the spec in the repository is exactly what is compiled.

use std::{env, fs, path::PathBuf};

use progenitor::Generator;

/// The generation settings, shared with the xtask.
#[path = "codegen/generation.rs"]
mod generation;

/// The open enums generated for the spec's string enums, with our hand-written names and docs.
#[path = "codegen/open_enums.rs"]
mod open_enums;

fn main() {
    println!("cargo:rerun-if-changed=spec/openapi.json");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=codegen/generation.rs");
    println!("cargo:rerun-if-changed=codegen/open_enums.rs");

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
    // Kept fields are marked on the syntax tree, then the tree is written as plain text: rustc
    // does not need it formatted, and dependents do not compile a formatter (syn itself is
    // already built for progenitor). `cargo xtask` tooling parses it with syn.
    let mut ast: syn::File = syn::parse2(tokens).expect("generated code parses");
    deprecate_kept(&mut ast, &raw);
    let mut code = quote::ToTokens::into_token_stream(ast).to_string();
    code.push('\n');
    code.push_str(&security_table(&raw));

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    fs::write(out_dir.join("rest.rs"), code).expect("write generated code");
    fs::write(out_dir.join("codes.rs"), open_enums::source(&raw)).expect("write open enums");
}

/// What the spec keeps only so code using it compiles (`x-kept` schemas, `x-kept-fields`
/// fields: `cargo xtask spec refresh` keeps what the previous spec had and upstream lacks) is
/// marked `#[deprecated]` in the generated types.
fn deprecate_kept(ast: &mut syn::File, spec: &serde_json::Value) {
    use quote::ToTokens;
    const NOTE: &str = "not in Connect Trade's published document: always absent; kept so code \
                        using it compiles, removed at the next major version";
    let Some(schemas) = spec
        .pointer("/components/schemas")
        .and_then(serde_json::Value::as_object)
    else {
        return;
    };
    let kept: Vec<(&str, bool, Vec<&str>)> = schemas
        .iter()
        .map(|(name, schema)| {
            let fields = schema["x-kept-fields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .collect();
            (name.as_str(), schema["x-kept"] == true, fields)
        })
        .filter(|(_, whole, fields): &(&str, bool, Vec<&str>)| *whole || !fields.is_empty())
        .collect();
    // Builders (`builder::ListOrders`) whose setters of kept query parameters are deprecated.
    let mut kept_setters: Vec<(String, String)> = Vec::new();
    for item in spec["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, i)| i)
    {
        for op in item.as_object().into_iter().flatten().map(|(_, o)| o) {
            let Some(id) = op["operationId"].as_str() else {
                continue;
            };
            let builder: String = id
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            for param in op["x-kept-parameters"].as_array().into_iter().flatten() {
                if let Some(param) = param.as_str() {
                    kept_setters.push((builder.clone(), param.to_string()));
                }
            }
        }
    }
    if kept.is_empty() && kept_setters.is_empty() {
        return;
    }
    let deprecated: syn::Attribute = syn::parse_quote!(#[deprecated(note = #NOTE)]);
    for item in &mut ast.items {
        let syn::Item::Mod(module) = item else {
            continue;
        };
        if module.ident == "builder" {
            for item in module
                .content
                .iter_mut()
                .flat_map(|(_, items)| items.iter_mut())
            {
                let syn::Item::Impl(block) = item else {
                    continue;
                };
                let syn::Type::Path(ty) = &*block.self_ty else {
                    continue;
                };
                let Some(name) = ty.path.segments.last().map(|s| s.ident.to_string()) else {
                    continue;
                };
                for member in &mut block.items {
                    if let syn::ImplItem::Fn(f) = member
                        && kept_setters
                            .iter()
                            .any(|(b, p)| *b == name && f.sig.ident == p)
                    {
                        f.attrs.push(deprecated.clone());
                    }
                }
            }
            continue;
        }
        if module.ident != "types" {
            continue;
        }
        for item in module
            .content
            .iter_mut()
            .flat_map(|(_, items)| items.iter_mut())
        {
            let syn::Item::Struct(item) = item else {
                continue;
            };
            let Some((_, whole, fields)) = kept.iter().find(|(name, _, _)| item.ident == name)
            else {
                continue;
            };
            if *whole {
                item.attrs.push(deprecated.clone());
            }
            for field in item.fields.iter_mut() {
                let Some(ident) = &field.ident else {
                    continue;
                };
                let wire = field
                    .attrs
                    .iter()
                    .map(|a| a.to_token_stream().to_string())
                    .find_map(|a| {
                        let rest = a.split("rename = \"").nth(1)?;
                        rest.split('"').next().map(str::to_string)
                    })
                    .unwrap_or_else(|| ident.to_string().trim_start_matches("r#").to_string());
                if fields.contains(&wire.as_str()) {
                    field.attrs.push(deprecated.clone());
                }
            }
        }
    }
}

/// The operations whose `security` asks for the platform credentials only, so the request
/// hook knows which requests carry the user headers (decided by the headers the schemes
/// define, not by their names: `codegen/generation.rs`); and each operation's path template,
/// so it can check the ids that went into the path.
fn security_table(spec: &serde_json::Value) -> String {
    let platform_only = generation::platform_only_operations(spec);
    let mut all = Vec::new();
    let mut templates = Vec::new();
    let paths = spec["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                continue;
            }
            let id = op["operationId"].as_str().expect("operationId").to_string();
            templates.push((id.clone(), path.clone()));
            all.push(id);
        }
    }
    all.sort();
    templates.sort();
    format!(
        "\n/// Operations that need only the platform credentials (from the spec's `security`).\n\
         pub const PLATFORM_ONLY_OPERATIONS: &[&str] = &{platform_only:?};\n\
         /// Every operation id of the spec.\n\
         pub const ALL_OPERATIONS: &[&str] = &{all:?};\n\
         /// The path template of every operation, by operation id (sorted), for the path-id\n\
         /// check of the request hook.\n\
         pub(crate) const OPERATION_PATHS: &[(&str, &str)] = &{templates:?};\n"
    )
}
