//! `spec/names.toml`: upstream's names mapped to ours, what cannot be placed reported with the
//! line to add, what upstream lacks kept; and the open enums generated for every string enum.

use serde_json::{Value, json};
use xtask::{
    diff::{Change, Severity},
    names::{self, Names},
    normalize::normalize,
    open_enums,
};

fn our_spec() -> Value {
    let path = xtask::workspace_root()
        .expect("the workspace is found")
        .join("spec/openapi.json");
    normalize(&xtask::load::read_spec(&path).expect("spec loads")).document
}

fn our_names() -> Names {
    Names::read(&names::default_path().expect("the workspace is found"))
        .expect("spec/names.toml parses")
}

fn fixture(name: &str) -> Value {
    let path = xtask::workspace_root()
        .expect("the workspace is found")
        .join("xtask/tests/fixtures/upstream")
        .join(name);
    normalize(&xtask::load::read_spec(&path).expect("fixture loads")).document
}

/// Applies the naming file, keeps what is missing and what we keep optional, as `spec refresh`
/// does.
fn named(upstream: &Value) -> (Value, Vec<Change>) {
    let (previous, names) = (our_spec(), our_names());
    let mut doc = upstream.clone();
    let mut changes = names::apply(&mut doc, &names, &previous);
    changes.extend(names::keep_missing(&mut doc, &previous, &names));
    changes.extend(names::keep_optional(&mut doc, &previous, &names));
    (doc, changes)
}

fn operation_ids(doc: &Value) -> Vec<String> {
    let mut ids: Vec<String> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, item)| item.as_object().into_iter().flatten())
        .filter_map(|(_, op)| op["operationId"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

fn schema_names(doc: &Value) -> Vec<String> {
    doc["components"]["schemas"]
        .as_object()
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_naming_file_names_every_operation_and_enum_of_our_spec() {
    let (spec, names) = (our_spec(), our_names());
    let ids = operation_ids(&spec);
    let listed: Vec<&String> = names.operations.iter().map(|(_, id)| id).collect();
    for id in &ids {
        assert!(
            listed.contains(&id),
            "operation {id} missing from names.toml"
        );
    }
    for name in xtask::generate::string_enums(&spec) {
        assert!(
            names.enums.iter().any(|(n, _)| *n == name),
            "enum {name} missing from names.toml"
        );
    }
    // Our own spec goes through unchanged: nothing absorbed, nothing kept, nothing unplaced.
    let (doc, changes) = named(&spec);
    assert!(changes.is_empty(), "{changes:#?}");
    assert_eq!(doc, spec);
}

#[test]
fn a_framework_document_gets_our_operation_schema_and_enum_names() {
    let upstream = fixture("framework-3.1.json");
    assert!(operation_ids(&upstream).contains(&"place_order_orders_post".to_string()));
    let (doc, changes) = named(&upstream);
    assert_eq!(operation_ids(&doc), operation_ids(&our_spec()));
    let schemas = schema_names(&doc);
    for ours in schema_names(&our_spec()) {
        assert!(schemas.contains(&ours), "{ours} missing after naming");
    }
    // Upstream's names are kept as metadata.
    let place = &doc["paths"]["/orders"]["post"];
    assert_eq!(place["x-upstream-operation-id"], "place_order_orders_post");
    assert_eq!(
        doc["components"]["schemas"]["PlaceOrderRequest"]["x-upstream-name"],
        "PlaceOrder"
    );
    // Absorbed renames are reported, non-breaking.
    let absorbed = changes
        .iter()
        .find(|c| c.rule == "name-absorbed" && c.location == "PlaceOrderRequest")
        .expect("PlaceOrder absorbed");
    assert_eq!(absorbed.severity, Severity::NonBreaking);
    assert!(
        absorbed.detail.contains("`POST /orders request`"),
        "{absorbed:?}"
    );
    // Decimal fields carry no `x-` key (it would stop the Decimal conversion from matching).
    let qty = &doc["components"]["schemas"]["PlaceOrderRequest"]["properties"]["order_qty"];
    assert_eq!(qty["format"], "decimal");
    assert!(
        qty.as_object()
            .is_some_and(|m| m.keys().all(|k| !k.starts_with("x-"))),
        "{qty}"
    );
}

#[test]
fn path_parameters_keep_our_names_and_upstreams_are_recorded() {
    let (doc, _) = named(&fixture("handwritten-3.0.yaml"));
    let item = &doc["paths"]["/accounts/{account_id}/orders/{order_id}"];
    assert!(item.is_object(), "path renamed to ours");
    let params = item["get"]["parameters"].as_array().expect("parameters");
    let order_id = params
        .iter()
        .find(|p| p["name"] == "order_id")
        .expect("order_id");
    assert_eq!(order_id["x-upstream-name"], "orderId");
}

/// Upstream's `UserId` scheme defines the `user-id` header our `user_id` defines: it takes our
/// name in `securitySchemes` and in every requirement, so no operation's security "changes".
#[test]
fn security_schemes_take_our_names_by_their_header() {
    let raw = xtask::load::read_spec(
        &xtask::workspace_root()
            .expect("the workspace is found")
            .join("xtask/tests/fixtures/upstream/handwritten-3.0.yaml"),
    )
    .expect("fixture loads");
    assert!(raw["components"]["securitySchemes"]["UserId"].is_object());
    let (doc, changes) = named(&fixture("handwritten-3.0.yaml"));
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("schemes");
    let names: Vec<&String> = schemes.keys().collect();
    assert_eq!(
        names,
        ["client_id", "client_secret", "user_id", "user_secret"]
    );
    assert_eq!(schemes["user_id"]["x-upstream-name"], "UserId");
    assert_eq!(schemes["user_id"]["name"], "user-id");
    assert_eq!(doc["security"][0]["user_secret"], json!([]));
    assert_eq!(
        doc["paths"]["/users"]["post"]["security"],
        json!([{ "client_id": [], "client_secret": [] }])
    );
    let absorbed = changes
        .iter()
        .find(|c| c.rule == "name-absorbed" && c.location == "security user_id")
        .expect("reported");
    assert!(absorbed.detail.contains("`UserId`"), "{}", absorbed.detail);
    // So the refresh reports no security change.
    let prepared = xtask::refresh::prepare(&raw, &our_names(), &our_spec());
    assert!(
        !prepared
            .changes
            .iter()
            .any(|c| c.rule == "security-changed"),
        "{:#?}",
        prepared.changes
    );
}

#[test]
fn an_unplaced_operation_or_schema_is_reported_with_the_line_to_add() {
    let (doc, changes) = named(&fixture("extra-operations.json"));
    assert!(operation_ids(&doc).contains(&"getQuotes".to_string()));
    let quotes = changes
        .iter()
        .find(|c| c.rule == "name-unplaced" && c.location == "GET /quotes")
        .expect("GET /quotes reported");
    assert!(
        quotes
            .detail
            .contains(r#"add under [operations]: "GET /quotes" = "get_quotes""#),
        "{}",
        quotes.detail
    );
    let quote = changes
        .iter()
        .find(|c| c.rule == "name-unplaced" && c.location == "Quote")
        .expect("Quote reported");
    assert!(
        quote
            .detail
            .contains(r#"add under [schemas]: "GET /quotes response[]" = "#),
        "{}",
        quote.detail
    );
    // Once the line is added, the operation is ours.
    let mut names = our_names();
    names
        .operations
        .push(("GET /quotes".into(), "get_quotes".into()));
    let mut doc = fixture("extra-operations.json");
    let changes = names::apply(&mut doc, &names, &our_spec());
    assert!(operation_ids(&doc).contains(&"get_quotes".to_string()));
    assert!(
        changes
            .iter()
            .any(|c| c.rule == "name-absorbed" && c.location == "GET /quotes")
    );
}

#[test]
fn enums_are_placed_by_their_values_even_with_a_value_more_or_less() {
    let mut upstream = our_spec();
    let schemas = upstream["components"]["schemas"]
        .as_object_mut()
        .expect("schemas");
    let mut status = schemas.remove("OrderStatus").expect("OrderStatus");
    status["enum"]
        .as_array_mut()
        .expect("values")
        .push(json!("suspended"));
    schemas.insert("State".into(), status);
    let text = serde_json::to_string(&upstream)
        .expect("serializes")
        .replace("schemas/OrderStatus\"", "schemas/State\"");
    let upstream: Value = serde_json::from_str(&text).expect("parses");
    let (doc, changes) = named(&upstream);
    assert!(doc["components"]["schemas"]["OrderStatus"].is_object());
    assert!(doc["components"]["schemas"]["State"].is_null());
    // `Order.status` refers to it (through `allOf`, since it has a default).
    assert_eq!(
        doc["components"]["schemas"]["Order"]["properties"]["status"]["allOf"][0]["$ref"],
        "#/components/schemas/OrderStatus"
    );
    assert!(changes.iter().any(|c| c.rule == "name-absorbed"
        && c.location == "OrderStatus"
        && c.detail.contains("shared")));
}

#[test]
fn a_field_upstream_lacks_is_kept_optional_and_reported() {
    let mut upstream = our_spec();
    let order = &mut upstream["components"]["schemas"]["Order"];
    order["properties"]
        .as_object_mut()
        .expect("properties")
        .remove("updated_at");
    let (doc, changes) = named(&upstream);
    let order = &doc["components"]["schemas"]["Order"];
    assert!(order["properties"]["updated_at"].is_object());
    assert_eq!(order["x-kept-fields"], json!(["updated_at"]));
    assert!(
        !order["required"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r == "updated_at")
    );
    let kept = changes
        .iter()
        .find(|c| c.rule == "field-kept")
        .expect("reported");
    assert_eq!(kept.location, "Order.updated_at");
    assert_eq!(kept.severity, Severity::NonBreaking);
    assert!(kept.detail.contains("remove at the next major"));
    // The next refresh keeps it again without reporting it again.
    let mut again = upstream.clone();
    let changes = names::keep_missing(&mut again, &doc, &our_names());
    assert!(changes.is_empty(), "{changes:#?}");
    assert_eq!(
        again["components"]["schemas"]["Order"]["x-kept-fields"],
        json!(["updated_at"])
    );
}

#[test]
fn a_bare_order_list_keeps_the_pinned_page_type_and_the_cursor_setter() {
    let (doc, changes) = named(&fixture("handwritten-3.0.yaml"));
    let list = &doc["paths"]["/orders"]["get"];
    assert_eq!(
        list["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/OrderPage"
    );
    assert_eq!(list["x-kept-parameters"], json!(["cursor"]));
    for rule in ["response-kept", "parameter-kept"] {
        assert!(changes.iter().any(|c| c.rule == rule), "{rule}");
    }
    // The page type is still the answer of GET /orders: not reported as kept, not deprecated.
    assert!(!changes.iter().any(|c| c.rule == "schema-kept"));
    assert!(doc["components"]["schemas"]["OrderPage"]["x-kept"].is_null());
}

/// The public items of the code generated from `doc`, as `build.rs` generates it.
fn rust_surface(doc: &Value) -> String {
    let code = xtask::generate::generate(doc).expect("generates");
    xtask::rust_surface::rust_surface(&code).expect("generated code parses")
}

fn required(doc: &Value, schema: &str) -> Vec<String> {
    doc["components"]["schemas"][schema]["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

/// `[optional]` names fields of our spec that are optional there: a stale or misspelt line
/// would protect nothing.
#[test]
fn the_fields_kept_optional_are_optional_fields_of_our_spec() {
    let (spec, names) = (our_spec(), our_names());
    assert!(names.optional.len() >= 5, "{:?}", names.optional);
    for (key, reason) in &names.optional {
        let (schema, field) = key.split_once('.').expect("Schema.field");
        assert!(
            spec["components"]["schemas"][schema]["properties"][field].is_object(),
            "[optional] {key}: no such field in spec/openapi.json"
        );
        assert!(
            !required(&spec, schema).contains(&field.to_string()),
            "[optional] {key} is required in spec/openapi.json"
        );
        assert!(reason.len() > 20, "[optional] {key}: say why");
    }
}

/// Upstream requiring a field we keep optional on purpose (issue 10) does not tighten it: the
/// refreshed spec leaves it optional (and keeps `Order.status`'s default), records upstream's
/// word, reports it non-breaking, and generates exactly the Rust API of our spec. The next
/// refresh of the same document is quiet and writes the same spec (so `spec check` says equal).
#[test]
fn a_refresh_never_tightens_a_field_we_keep_optional() {
    let (ours, names) = (our_spec(), our_names());
    let mut upstream = ours.clone();
    for (key, _) in &names.optional {
        let (schema, field) = key.split_once('.').expect("Schema.field");
        let schema = &mut upstream["components"]["schemas"][schema];
        let mut list = schema["required"].as_array().cloned().unwrap_or_default();
        list.push(json!(field));
        schema["required"] = json!(list);
    }
    // Upstream's status: a bare reference, no default.
    upstream["components"]["schemas"]["Order"]["properties"]["status"] =
        json!({ "$ref": "#/components/schemas/OrderStatus" });

    let prepared = xtask::refresh::prepare(&upstream, &names, &ours);
    let doc = &prepared.document;
    for (key, _) in &names.optional {
        let (schema, field) = key.split_once('.').expect("Schema.field");
        assert!(
            !required(doc, schema).contains(&field.to_string()),
            "{key} was tightened"
        );
        assert!(
            doc["components"]["schemas"][schema]["x-upstream-required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!(field))),
            "{key}: upstream's required not recorded"
        );
        let change = prepared
            .changes
            .iter()
            .find(|c| c.rule == "field-kept-optional" && c.location == *key)
            .unwrap_or_else(|| panic!("{key} not reported: {:#?}", prepared.changes));
        assert_eq!(change.severity, Severity::NonBreaking);
        assert!(
            change.detail.starts_with(&format!(
                "upstream requires `{key}`; kept optional (lenient)"
            )),
            "{}",
            change.detail
        );
    }
    let status = &doc["components"]["schemas"]["Order"]["properties"]["status"];
    assert_eq!(status["default"], "unknown", "{status}");
    assert_eq!(
        status["allOf"][0]["$ref"],
        "#/components/schemas/OrderStatus"
    );
    assert!(
        !prepared
            .changes
            .iter()
            .any(|c| c.severity == Severity::Breaking || c.rule == "response-field-required"),
        "{:#?}",
        prepared.changes
    );
    assert_eq!(rust_surface(doc), rust_surface(&ours));

    // Again, from the refreshed spec: nothing new to say, the same spec.
    let again = xtask::refresh::prepare(&upstream, &names, doc);
    assert_eq!(&again.document, doc);
    assert!(
        !again
            .changes
            .iter()
            .any(|c| c.rule == "field-kept-optional"),
        "{:#?}",
        again.changes
    );

    // Without the [optional] section, the same document does tighten them (the test can fail).
    let strict = Names {
        optional: Vec::new(),
        ..names.clone()
    };
    let tightened = xtask::refresh::prepare(&upstream, &strict, &ours);
    assert!(required(&tightened.document, "CreatedUser").contains(&"user_id".to_string()));
    assert_ne!(rust_surface(&tightened.document), rust_surface(&ours));
}

#[test]
fn a_naming_file_with_a_mistake_says_where() {
    let error = Names::parse("[operations]\n\"GET /x\" = 3\n", "names.toml")
        .expect_err("a number is not a name");
    assert!(error.to_string().contains("GET /x"), "{error}");
    let error = Names::parse("[aliases]\nx = \"y\"\n", "names.toml").expect_err("unknown");
    assert!(error.to_string().contains("[aliases]"), "{error}");
    let error = Names::parse("[optional]\nuser_id = \"why\"\n", "names.toml")
        .expect_err("not Schema.field");
    assert!(error.to_string().contains("Schema.field"), "{error}");
}

#[test]
fn every_string_enum_gets_an_open_enum_with_stable_variant_names() {
    let mut spec = our_spec();
    let schemas = spec["components"]["schemas"]
        .as_object_mut()
        .expect("schemas");
    schemas.remove("SortOrder");
    schemas.insert(
        "QuoteSession".into(),
        json!({"type": "string", "enum": ["pre", "regular-hours", "DAY+", "1st", "unknown", "Pre"]}),
    );
    schemas["OrderStatus"]["enum"] = json!(["pending", "filled", "suspended"]);
    let enums = open_enums::open_enums(&spec);
    let get = |name: &str| enums.iter().find(|e| e.name == name).expect(name);
    // A new enum: derived names, unique, never `Unknown`.
    let variants: Vec<&str> = get("QuoteSession")
        .values
        .iter()
        .map(|(_, v, _)| v.as_str())
        .collect();
    assert_eq!(
        variants,
        [
            "Pre",
            "RegularHours",
            "DayPlus",
            "V1st",
            "UnknownValue",
            "Pre2"
        ]
    );
    // An enum the spec lost is still generated: hand-written code naming it compiles.
    assert!(get("SortOrder").doc.contains("Not in the current"));
    // Values the spec lost stay (after the spec's own), hand-written names are kept.
    let status: Vec<(&str, &str)> = get("OrderStatus")
        .values
        .iter()
        .map(|(w, v, _)| (w.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        &status[..3],
        [
            ("pending", "Pending"),
            ("filled", "Filled"),
            ("suspended", "Suspended")
        ]
    );
    assert!(status.contains(&("pending_cancel", "PendingCancel")));
    assert_eq!(get("BrokerCode").values[1].1, "BankOfAmerica");
    // The source is one `open_enum!` per enum.
    let source = open_enums::source(&spec);
    assert!(source.contains("    QuoteSession {\n"));
    assert!(source.contains("        DayPlus = \"DAY+\",\n"));
}
