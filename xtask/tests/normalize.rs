//! Normalization: our conventions, determinism, and fixtures progenitor rejects raw.

use serde_json::{Value, json};
use xtask::{
    generate::generate,
    json::to_canonical_string,
    load,
    normalize::{NoteKind, normalize},
};

fn spec_path() -> std::path::PathBuf {
    xtask::workspace_root()
        .expect("tests run inside the workspace")
        .join("spec/openapi.json")
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

fn ops(doc: &Value) -> Vec<(&String, &Value)> {
    let mut out = Vec::new();
    for (_, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method, op));
        }
    }
    out
}

#[test]
fn normalizing_is_deterministic_and_idempotent() {
    let raw = fixture("openapi-3.1.yaml");
    let first = to_canonical_string(&normalize(&raw).document);
    let second = to_canonical_string(&normalize(&raw).document);
    assert_eq!(first, second);
    let again = normalize(&serde_json::from_str(&first).unwrap());
    assert_eq!(to_canonical_string(&again.document), first);
    let changed: Vec<_> = again
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::Changed)
        .collect();
    assert!(changed.is_empty(), "{changed:#?}");
}

#[test]
fn openapi_3_1_generates_only_after_normalization() {
    let raw = fixture("openapi-3.1.yaml");
    assert!(
        generate(&raw).is_err(),
        "progenitor accepted a 3.1 document raw"
    );
    let normalized = normalize(&raw);
    let doc = &normalized.document;
    generate(doc).unwrap_or_else(|e| panic!("{e}"));

    let position = &doc["components"]["schemas"]["Position"];
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc.get("webhooks").is_none() && doc.get("jsonSchemaDialect").is_none());
    assert!(position.get("additionalProperties").is_none());
    assert!(position.get("$schema").is_none());
    let props = &position["properties"];
    // Exactly `{type: string, format: decimal}` (+ nullable): progenitor's conversion matches.
    assert_eq!(
        props["last_price"],
        json!({ "type": "string", "format": "decimal", "nullable": true })
    );
    assert_eq!(
        props["quantity"],
        json!({ "type": "string", "format": "decimal" })
    );
    assert_eq!(
        props["side"],
        json!({ "allOf": [{ "$ref": "#/components/schemas/Side" }], "nullable": true })
    );
    // The inline enum became a component, so build.rs maps it to the open crate::codes::Kind.
    assert_eq!(
        props["kind"],
        json!({ "$ref": "#/components/schemas/Kind" })
    );
    assert_eq!(
        doc["components"]["schemas"]["Kind"],
        json!({ "type": "string", "enum": ["STK"] })
    );
    assert_eq!(props["symbol"]["example"], "AAPL");
    assert_eq!(
        props["legs"],
        json!({ "type": "integer", "minimum": 0, "exclusiveMinimum": true })
    );
    let symbols = &doc["paths"]["/positions"]["get"]["parameters"][0];
    assert_eq!(symbols["schema"], json!({ "type": "string" }));
    assert!(symbols.get("explode").is_none());
    // The hoisting is reported, with what it asks of src/codes.rs.
    assert!(
        normalized
            .notes
            .iter()
            .any(|n| n.location.ends_with("properties.kind") && n.message.contains("src/codes.rs"))
    );
}

#[test]
fn default_responses_generate_only_after_normalization() {
    let raw = fixture("default-responses.json");
    let error = generate(&raw).expect_err("progenitor accepted a 2xx + default operation raw");
    assert!(error.to_string().contains("progenitor"), "{error}");
    let normalized = normalize(&raw);
    generate(&normalized.document).unwrap_or_else(|e| panic!("{e}"));
    for (method, op) in ops(&normalized.document) {
        let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        assert_eq!(codes, ["200", "4XX", "5XX"], "{method}");
        for class in ["4XX", "5XX"] {
            assert_eq!(
                op["responses"][class]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error"
            );
        }
    }
    let post = &normalized.document["paths"]["/users"]["post"];
    assert_eq!(
        post["responses"]["4XX"]["description"],
        "400: Invalid. 409: Exists."
    );
}

#[test]
fn auth_header_parameters_become_security() {
    let raw = fixture("auth-headers.json");
    // Raw, progenitor makes every credential an argument of every call.
    let raw_code = generate(&raw).unwrap();
    assert!(raw_code.contains("\"client-secret\"") || raw_code.contains("\"Client-Secret\""));
    let normalized = normalize(&raw);
    let doc = &normalized.document;
    let code = generate(doc).unwrap_or_else(|e| panic!("{e}"));
    for header in ["client-id", "client-secret", "user-id", "user-secret"] {
        assert!(
            !code.to_lowercase().contains(&format!("\"{header}\"")),
            "{header} still a parameter"
        );
        let scheme = &doc["components"]["securitySchemes"][header.replace('-', "_")];
        assert_eq!(scheme["type"], "apiKey");
        assert_eq!(scheme["in"], "header");
        assert_eq!(scheme["name"], header);
    }
    let op = &doc["paths"]["/balances"]["get"];
    assert_eq!(
        op["security"],
        json!([{ "client_id": [], "client_secret": [], "user_id": [], "user_secret": [] }])
    );
    assert_eq!(
        op["parameters"].as_array().unwrap().len(),
        1,
        "the query parameter stays"
    );
    assert!(
        doc["components"].get("parameters").is_none(),
        "unused auth parameter component kept"
    );
}

#[test]
fn money_and_secret_fields_are_marked_by_name() {
    let raw = fixture("auth-headers.json");
    let doc = normalize(&raw).document;
    let balance = &doc["components"]["schemas"]["Balance"]["properties"];
    assert_eq!(
        balance["buying_power"],
        json!({ "type": "string", "format": "decimal" })
    );
    assert_eq!(
        balance["cash"],
        json!({ "type": "string", "format": "decimal" }),
        "x- kept"
    );
    assert_eq!(balance["account_id"], json!({ "type": "string" }));

    let doc = normalize(&json!({
        "openapi": "3.0.3", "info": { "title": "t", "version": "1" }, "paths": {},
        "components": { "schemas": { "Token": { "type": "object", "properties": {
            "access_token": { "type": "string" },
            "user_secret": { "type": "string", "minLength": 8 },
            "token_type": { "type": "string" },
            "limit_price": { "type": "number" }
        } } } }
    }))
    .document;
    let token = &doc["components"]["schemas"]["Token"]["properties"];
    assert_eq!(
        token["access_token"],
        json!({ "type": "string", "format": "password" })
    );
    assert_eq!(
        token["user_secret"],
        json!({ "type": "string", "format": "password" })
    );
    assert_eq!(token["token_type"], json!({ "type": "string" }));
    // A JSON number is not silently turned into a string: reported instead.
    assert_eq!(token["limit_price"], json!({ "type": "number" }));
}

#[test]
fn missing_operation_ids_are_derived_uniquely() {
    let doc = normalize(&json!({
        "openapi": "3.0.3", "info": { "title": "t", "version": "1" },
        "paths": {
            "/accounts/{account_id}/orders": {
                "get": { "responses": { "200": { "description": "ok" } } }
            },
            "/accounts/{account-id}/orders": {
                "post": { "operationId": "x", "responses": { "200": { "description": "ok" } } },
                "get": { "responses": { "200": { "description": "ok" } } }
            }
        }
    }))
    .document;
    let mut ids: Vec<&str> = ops(&doc)
        .iter()
        .map(|(_, op)| op["operationId"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "get_accounts_account_id_orders",
            "get_accounts_account_id_orders_2",
            "x"
        ]
    );
}

#[test]
fn documents_that_are_not_openapi_3_are_refused() {
    for (text, expected) in [
        ("not: [valid", "neither JSON"),
        (
            "{\"swagger\": \"2.0\", \"info\": {}, \"paths\": {}}",
            "Swagger 2.0",
        ),
        ("openapi: 3.0.3\npaths: {}\n", "no `info`"),
        ("openapi: 4.0.0\ninfo: {}\npaths: {}\n", "not supported"),
        ("[1, 2]", "not an object"),
    ] {
        let error = load::parse_document(text.as_bytes(), "fixture").unwrap_err();
        assert!(error.to_string().contains(expected), "{text}: {error}");
    }
}

#[test]
fn inline_string_enums_become_components() {
    let doc = normalize(&json!({
        "openapi": "3.0.3", "info": { "title": "t", "version": "1" },
        "components": { "schemas": {
            "Side": { "type": "string", "enum": ["BUY", "SELL"] },
            "Order": { "type": "object", "properties": {
                "side": { "type": "string", "enum": ["SELL", "BUY"], "description": "Same values." },
                "status": { "type": "string", "enum": ["open", "filled"], "nullable": true },
                "legs": { "type": "array", "items": { "type": "object", "properties": {
                    "side": { "type": "string", "enum": ["BUY_TO_OPEN"] }
                } } }
            } }
        } },
        "paths": { "/orders": { "get": {
            "operationId": "list_orders",
            "parameters": [{ "in": "query", "name": "status", "schema": {
                "type": "string", "enum": ["open", "filled"] } }],
            "responses": { "200": { "description": "ok", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/Order" } } } } }
        } } }
    }))
    .document;
    let schemas = &doc["components"]["schemas"];
    let order = &schemas["Order"]["properties"];
    // Same values as an existing component: that component.
    assert_eq!(
        order["side"],
        json!({ "allOf": [{ "$ref": "#/components/schemas/Side" }], "description": "Same values." })
    );
    // New values: a new component named after the field, shared by equal enums.
    assert_eq!(
        order["status"],
        json!({ "allOf": [{ "$ref": "#/components/schemas/Status" }], "nullable": true })
    );
    assert_eq!(
        schemas["Status"],
        json!({ "type": "string", "enum": ["open", "filled"] })
    );
    assert_eq!(
        doc["paths"]["/orders"]["get"]["parameters"][0]["schema"],
        json!({ "$ref": "#/components/schemas/Status" })
    );
    // A name already taken is prefixed with the parent's name.
    assert_eq!(
        order["legs"]["items"]["properties"]["side"]["$ref"],
        "#/components/schemas/OrderSide"
    );
    assert_eq!(schemas["OrderSide"]["enum"], json!(["BUY_TO_OPEN"]));
    generate(&doc).unwrap_or_else(|e| panic!("{e}"));
}
