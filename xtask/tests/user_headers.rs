//! Which operations carry the end user's headers (`user-id`, `user-secret`): decided by the
//! headers the security schemes define, never by what the schemes are called, so upstream's
//! own scheme names cannot silently drop the user credentials from a request.

use serde_json::{Value, json};
use xtask::generation::{needs_user_headers, platform_only_operations};

fn our_spec() -> Value {
    let path = xtask::workspace_root()
        .expect("the workspace is found")
        .join("spec/openapi.json");
    xtask::load::read_spec(&path).expect("spec loads")
}

/// `doc` with its security schemes renamed (in `securitySchemes` and every requirement).
fn with_scheme_names(doc: &Value, renames: &[(&str, &str)]) -> Value {
    let rename = |map: &serde_json::Map<String, Value>| -> Value {
        map.iter()
            .map(|(name, value)| {
                let name = renames
                    .iter()
                    .find(|(from, _)| from == name)
                    .map_or(name.as_str(), |(_, to)| to);
                (name.to_string(), value.clone())
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let requirements = |security: &Value| -> Value {
        security
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .map(rename)
            .collect::<Vec<_>>()
            .into()
    };
    let mut doc = doc.clone();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .map(rename)
        .expect("schemes");
    doc["components"]["securitySchemes"] = schemes;
    doc["security"] = requirements(&doc["security"]);
    for item in doc["paths"].as_object_mut().expect("paths").values_mut() {
        for op in item.as_object_mut().expect("path item").values_mut() {
            if op.get("security").is_some() {
                op["security"] = requirements(&op["security"]);
            }
        }
    }
    doc
}

const PLATFORM_ONLY: &[&str] = &["create_user", "delete_user", "list_users"];

#[test]
fn our_spec_sends_the_user_headers_on_every_operation_but_the_user_administration() {
    assert_eq!(platform_only_operations(&our_spec()), PLATFORM_ONLY);
}

/// Upstream calls its schemes `UserAuth`, `UserKey`, …: the same operations carry the user
/// headers (a rule by scheme name would have sent them on none).
#[test]
fn schemes_named_differently_still_carry_the_user_headers() {
    let spec = with_scheme_names(
        &our_spec(),
        &[
            ("client_id", "PlatformClient"),
            ("client_secret", "PlatformSecret"),
            ("user_id", "UserAuth"),
            ("user_secret", "UserKey"),
        ],
    );
    let schemes = spec["components"]["securitySchemes"]
        .as_object()
        .expect("schemes");
    assert!(schemes.contains_key("UserAuth") && !schemes.contains_key("user_id"));
    assert_eq!(spec["security"][0]["UserAuth"], json!([]));
    assert_eq!(
        spec["paths"]["/users"]["post"]["security"],
        json!([{ "PlatformClient": [], "PlatformSecret": [] }])
    );
    assert_eq!(platform_only_operations(&spec), PLATFORM_ONLY);
    // It still generates.
    xtask::generate::generate(&spec).expect("generates");
}

/// A scheme *named* `user_id` that defines another header is not the user's credentials.
#[test]
fn a_scheme_is_the_users_by_its_header_not_its_name() {
    let mut spec = our_spec();
    spec["components"]["securitySchemes"]["user_id"]["name"] = json!("x-api-key");
    spec["components"]["securitySchemes"]["user_secret"]["name"] = json!("x-api-secret");
    let all: Vec<String> = {
        let mut ids: Vec<String> = spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(_, item)| item.as_object().into_iter().flatten())
            .filter_map(|(_, op)| op["operationId"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(platform_only_operations(&spec), all);
    // The header's case does not matter.
    spec["components"]["securitySchemes"]["user_id"]["name"] = json!("User-Id");
    assert_eq!(platform_only_operations(&our_spec()), PLATFORM_ONLY);
    assert_eq!(platform_only_operations(&spec), PLATFORM_ONLY);
}

#[test]
fn every_alternative_must_ask_for_the_user_and_no_security_asks_for_nothing() {
    let doc = json!({
        "components": { "securitySchemes": {
            "Key": { "type": "apiKey", "in": "header", "name": "client-id" },
            "Who": { "type": "apiKey", "in": "header", "name": "user-id" },
            "Cookie": { "type": "apiKey", "in": "cookie", "name": "user-id" }
        }},
        "security": [{ "Key": [], "Who": [] }]
    });
    let op = |security: Value| json!({ "operationId": "x", "security": security });
    assert!(needs_user_headers(
        &doc,
        &json!({ "operationId": "inherits" })
    ));
    assert!(needs_user_headers(&doc, &op(json!([{ "Who": [] }]))));
    assert!(!needs_user_headers(&doc, &op(json!([{ "Key": [] }]))));
    assert!(!needs_user_headers(
        &doc,
        &op(json!([{ "Key": [], "Who": [] }, { "Key": [] }]))
    ));
    assert!(!needs_user_headers(&doc, &op(json!([]))));
    assert!(!needs_user_headers(&doc, &op(json!([{ "Cookie": [] }]))));
    assert!(!needs_user_headers(&json!({}), &json!({})));
}
