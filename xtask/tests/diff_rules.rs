//! One test per diff rule, each on a small pair of specs: a base and the base changed once.

use serde_json::{Value, json};
use xtask::diff::{Change, Severity, diff_documents, render_json};

use Severity::{Breaking, NonBreaking};

fn base() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": { "title": "fixture", "version": "1" },
        "security": [{ "client_id": [], "client_secret": [], "user_id": [], "user_secret": [] }],
        "components": {
            "securitySchemes": {
                "client_id": { "type": "apiKey", "in": "header", "name": "client-id" },
                "client_secret": { "type": "apiKey", "in": "header", "name": "client-secret" },
                "user_id": { "type": "apiKey", "in": "header", "name": "user-id" },
                "user_secret": { "type": "apiKey", "in": "header", "name": "user-secret" }
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["message"],
                    "properties": { "message": { "type": "string" } }
                },
                "Side": { "type": "string", "enum": ["BUY", "SELL"] },
                "Status": { "type": "string", "enum": ["open", "filled"] },
                "Tif": { "type": "string", "enum": ["DAY", "GTC"] },
                "Order": {
                    "type": "object", "required": ["order_id", "qty"],
                    "properties": {
                        "order_id": { "type": "string" },
                        "qty": { "type": "string", "format": "decimal" },
                        "note": { "type": "string" },
                        "status": { "$ref": "#/components/schemas/Status" },
                        "side": { "$ref": "#/components/schemas/Side" }
                    }
                },
                "PlaceOrder": {
                    "type": "object", "required": ["symbol"],
                    "properties": {
                        "symbol": { "type": "string" },
                        "side": { "$ref": "#/components/schemas/Side" },
                        "tif": { "$ref": "#/components/schemas/Tif" },
                        "limit_price": { "type": "string", "format": "decimal", "nullable": true },
                        "memo": { "type": "string" }
                    }
                }
            }
        },
        "paths": {
            "/orders": {
                "get": {
                    "operationId": "list_orders",
                    "parameters": [
                        { "in": "query", "name": "symbol", "required": false, "schema": { "type": "string" } },
                        { "in": "query", "name": "limit", "required": false, "schema": { "type": "integer", "format": "int32" } }
                    ],
                    "responses": {
                        "200": { "description": "ok", "content": { "application/json": { "schema": {
                            "type": "array", "items": { "$ref": "#/components/schemas/Order" } } } } },
                        "4XX": { "description": "error", "content": { "application/json": { "schema": {
                            "$ref": "#/components/schemas/Error" } } } }
                    }
                },
                "post": {
                    "operationId": "place_order",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": {
                        "$ref": "#/components/schemas/PlaceOrder" } } } },
                    "responses": {
                        "200": { "description": "ok", "content": { "application/json": { "schema": {
                            "$ref": "#/components/schemas/Order" } } } },
                        "4XX": { "description": "error", "content": { "application/json": { "schema": {
                            "$ref": "#/components/schemas/Error" } } } }
                    }
                }
            },
            "/users/{user_id}": {
                "delete": {
                    "operationId": "delete_user",
                    "security": [{ "client_id": [], "client_secret": [] }],
                    "parameters": [
                        { "in": "path", "name": "user_id", "required": true, "schema": { "type": "string" } }
                    ],
                    "responses": { "200": { "description": "deleted" } }
                }
            }
        }
    })
}

fn with(change: impl FnOnce(&mut Value)) -> Value {
    let mut doc = base();
    change(&mut doc);
    doc
}

fn at<'a>(doc: &'a mut Value, pointer: &str) -> &'a mut Value {
    doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("fixture has no {pointer}"))
}

/// The one change between the base and `new`, checked against what is expected.
fn only(new: Value, rule: &str, severity: Severity, location: &str) -> Change {
    let changes = diff_documents(&base(), &new);
    assert_eq!(
        changes.len(),
        1,
        "expected exactly one change, got {changes:#?}"
    );
    let change = changes.into_iter().next().unwrap();
    assert_eq!(
        (change.rule, change.severity, change.location.as_str()),
        (rule, severity, location),
        "{change:#?}"
    );
    change
}

#[test]
fn identical_specs_have_no_changes() {
    assert!(diff_documents(&base(), &base()).is_empty());
}

#[test]
fn operation_removed_is_breaking() {
    let new = with(|d| {
        at(d, "/paths/~1orders")
            .as_object_mut()
            .unwrap()
            .remove("post");
    });
    only(new, "operation-removed", Breaking, "POST /orders");
}

#[test]
fn operation_added_is_not_breaking() {
    let new = with(|d| {
        *at(d, "/paths/~1users~1{user_id}") = json!({
            "delete": base().pointer("/paths/~1users~1{user_id}/delete").unwrap().clone(),
            "get": { "operationId": "get_user", "responses": { "200": { "description": "ok" } } }
        });
    });
    only(new, "operation-added", NonBreaking, "GET /users/{user_id}");
}

#[test]
fn operation_renamed_is_breaking() {
    let new = with(|d| *at(d, "/paths/~1orders/get/operationId") = json!("get_orders"));
    let change = only(new, "operation-renamed", Breaking, "GET /orders");
    assert!(change.detail.contains("`list_orders` is now `get_orders`"));
}

#[test]
fn renamed_path_parameter_is_the_same_operation() {
    let new = with(|d| {
        let paths = at(d, "/paths").as_object_mut().unwrap();
        let mut item = paths.remove("/users/{user_id}").unwrap();
        item["delete"]["parameters"][0]["name"] = json!("id");
        paths.insert("/users/{id}".into(), item);
    });
    assert!(diff_documents(&base(), &new).is_empty());
}

#[test]
fn security_needing_more_credentials_is_breaking() {
    let new = with(|d| {
        at(d, "/paths/~1users~1{user_id}/delete")
            .as_object_mut()
            .unwrap()
            .remove("security");
    });
    only(new, "security-changed", Breaking, "DELETE /users/{user_id}");
}

#[test]
fn security_needing_fewer_credentials_is_not_breaking() {
    let new = with(|d| {
        at(d, "/paths/~1orders/get")["security"] =
            json!([{ "client_id": [], "client_secret": [] }]);
    });
    only(new, "security-changed", NonBreaking, "GET /orders");
}

#[test]
fn optional_parameter_added_is_not_breaking() {
    let new = with(|d| {
        at(d, "/paths/~1orders/get/parameters").as_array_mut().unwrap().push(
            json!({ "in": "query", "name": "cursor", "required": false, "schema": { "type": "string" } }),
        );
    });
    only(
        new,
        "parameter-added",
        NonBreaking,
        "GET /orders parameter query cursor",
    );
}

#[test]
fn required_parameter_added_is_breaking() {
    let new = with(|d| {
        at(d, "/paths/~1orders/get/parameters").as_array_mut().unwrap().push(
            json!({ "in": "query", "name": "account_id", "required": true, "schema": { "type": "string" } }),
        );
    });
    only(
        new,
        "parameter-added",
        Breaking,
        "GET /orders parameter query account_id",
    );
}

#[test]
fn parameter_removed_is_breaking() {
    let new = with(|d| {
        at(d, "/paths/~1orders/get/parameters")
            .as_array_mut()
            .unwrap()
            .remove(1);
    });
    only(
        new,
        "parameter-removed",
        Breaking,
        "GET /orders parameter query limit",
    );
}

#[test]
fn parameter_type_changed_is_breaking() {
    let new = with(|d| {
        *at(d, "/paths/~1orders/get/parameters/1/schema") = json!({ "type": "string" });
    });
    let change = only(
        new,
        "parameter-type-changed",
        Breaking,
        "GET /orders parameter query limit",
    );
    assert!(
        change.detail.contains("integer(int32)"),
        "{}",
        change.detail
    );
}

#[test]
fn parameter_becoming_required_is_breaking() {
    let new = with(|d| *at(d, "/paths/~1orders/get/parameters/0/required") = json!(true));
    only(
        new,
        "parameter-required",
        Breaking,
        "GET /orders parameter query symbol",
    );
}

#[test]
fn parameter_becoming_optional_is_not_breaking() {
    let old = with(|d| *at(d, "/paths/~1orders/get/parameters/0/required") = json!(true));
    let changes = diff_documents(&old, &base());
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(
        (changes[0].rule, changes[0].severity),
        ("parameter-optional", NonBreaking)
    );
}

#[test]
fn request_body_removed_is_breaking() {
    let new = with(|d| {
        at(d, "/paths/~1orders/post")
            .as_object_mut()
            .unwrap()
            .remove("requestBody");
    });
    only(new, "request-body-removed", Breaking, "POST /orders");
}

#[test]
fn required_request_body_added_is_breaking() {
    let new = with(|d| {
        at(d, "/paths/~1users~1{user_id}/delete")["requestBody"] = json!({ "required": true,
            "content": { "application/json": { "schema": { "type": "object" } } } });
    });
    only(
        new,
        "request-body-added",
        Breaking,
        "DELETE /users/{user_id}",
    );
}

#[test]
fn optional_request_field_added_is_not_breaking() {
    let new = with(|d| {
        at(d, "/components/schemas/PlaceOrder/properties")["account_id"] =
            json!({ "type": "string" });
    });
    only(
        new,
        "request-field-added",
        NonBreaking,
        "PlaceOrder.account_id",
    );
}

#[test]
fn required_request_field_added_is_breaking() {
    let new = with(|d| {
        at(d, "/components/schemas/PlaceOrder/properties")["account_id"] =
            json!({ "type": "string" });
        at(d, "/components/schemas/PlaceOrder/required")
            .as_array_mut()
            .unwrap()
            .push(json!("account_id"));
    });
    only(
        new,
        "request-field-added",
        Breaking,
        "PlaceOrder.account_id",
    );
}

#[test]
fn request_field_removed_is_breaking() {
    let new = with(|d| {
        at(d, "/components/schemas/PlaceOrder/properties")
            .as_object_mut()
            .unwrap()
            .remove("memo");
    });
    only(new, "request-field-removed", Breaking, "PlaceOrder.memo");
}

#[test]
fn request_field_becoming_required_is_breaking() {
    let new = with(|d| {
        at(d, "/components/schemas/PlaceOrder/required")
            .as_array_mut()
            .unwrap()
            .push(json!("memo"));
    });
    only(new, "request-field-required", Breaking, "PlaceOrder.memo");
}

#[test]
fn request_field_becoming_optional_is_not_breaking() {
    let new = with(|d| *at(d, "/components/schemas/PlaceOrder/required") = json!([]));
    only(
        new,
        "request-field-optional",
        NonBreaking,
        "PlaceOrder.symbol",
    );
}

#[test]
fn request_enum_value_removed_is_breaking() {
    let new = with(|d| *at(d, "/components/schemas/Tif/enum") = json!(["DAY"]));
    let change = only(new, "request-enum-value-removed", Breaking, "Tif");
    assert!(change.detail.contains("`GTC`"));
}

#[test]
fn request_enum_value_added_is_not_breaking() {
    let new = with(|d| *at(d, "/components/schemas/Tif/enum") = json!(["DAY", "GTC", "IOC"]));
    only(new, "request-enum-value-added", NonBreaking, "Tif");
}

#[test]
fn response_enum_value_added_is_not_breaking_thanks_to_the_fallback() {
    let new =
        with(|d| *at(d, "/components/schemas/Status/enum") = json!(["open", "filled", "expired"]));
    let change = only(new, "response-enum-value-added", NonBreaking, "Status");
    assert!(
        change.detail.contains("Unknown(String)"),
        "{}",
        change.detail
    );
    let rule = xtask::diff::RULES
        .iter()
        .find(|(id, _)| *id == "response-enum-value-added")
        .unwrap();
    assert!(rule.1.contains("Unknown(String)"));
}

#[test]
fn response_enum_value_removed_is_not_breaking() {
    let new = with(|d| *at(d, "/components/schemas/Status/enum") = json!(["open"]));
    only(new, "response-enum-value-removed", NonBreaking, "Status");
}

#[test]
fn enum_used_both_ways_reports_both_directions() {
    let new = with(|d| *at(d, "/components/schemas/Side/enum") = json!(["BUY"]));
    let changes = diff_documents(&base(), &new);
    let rules: Vec<(&str, Severity)> = changes.iter().map(|c| (c.rule, c.severity)).collect();
    assert_eq!(
        rules,
        [
            ("request-enum-value-removed", Breaking),
            ("response-enum-value-removed", NonBreaking)
        ]
    );
}

#[test]
fn response_field_added_is_not_breaking() {
    let new = with(|d| {
        at(d, "/components/schemas/Order/properties")["filled_qty"] =
            json!({ "type": "string", "format": "decimal" });
    });
    only(new, "response-field-added", NonBreaking, "Order.filled_qty");
}

#[test]
fn response_field_removed_is_breaking() {
    let new = with(|d| {
        at(d, "/components/schemas/Order/properties")
            .as_object_mut()
            .unwrap()
            .remove("note");
    });
    let change = only(new, "response-field-removed", Breaking, "Order.note");
    assert!(change.detail.starts_with("optional"));
}

#[test]
fn required_response_field_made_nullable_is_breaking() {
    let new = with(|d| at(d, "/components/schemas/Order/properties/qty")["nullable"] = json!(true));
    only(new, "response-field-nullable", Breaking, "Order.qty");
}

#[test]
fn required_response_field_made_optional_is_breaking() {
    let new = with(|d| *at(d, "/components/schemas/Order/required") = json!(["order_id"]));
    only(new, "response-field-nullable", Breaking, "Order.qty");
}

#[test]
fn optional_response_field_made_nullable_is_not_breaking() {
    let new =
        with(|d| at(d, "/components/schemas/Order/properties/note")["nullable"] = json!(true));
    only(new, "response-field-nullable", NonBreaking, "Order.note");
}

#[test]
fn response_field_made_required_is_not_breaking() {
    let new = with(|d| {
        at(d, "/components/schemas/Order/required")
            .as_array_mut()
            .unwrap()
            .push(json!("note"));
    });
    only(new, "response-field-required", NonBreaking, "Order.note");
}

#[test]
fn type_changed_is_breaking() {
    let new = with(|d| {
        *at(d, "/components/schemas/Order/properties/note") = json!({ "type": "integer" })
    });
    only(new, "type-changed", Breaking, "Order.note");
}

#[test]
fn format_changed_is_breaking() {
    let new =
        with(|d| at(d, "/components/schemas/Order/properties/order_id")["format"] = json!("uuid"));
    let change = only(new, "format-changed", Breaking, "Order.order_id");
    assert!(
        change.detail.contains("(none) is now uuid"),
        "{}",
        change.detail
    );
}

#[test]
fn schema_renamed_is_one_change_not_a_field_change() {
    let new = with(|d| {
        let text = serde_json::to_string(d)
            .unwrap()
            .replace("schemas/Order\"", "schemas/Ord\"");
        *d = serde_json::from_str(&text).unwrap();
        let schemas = at(d, "/components/schemas").as_object_mut().unwrap();
        let order = schemas.remove("Order").unwrap();
        schemas.insert("Ord".into(), order);
    });
    let change = only(new, "schema-renamed", Breaking, "Ord");
    assert!(
        change
            .detail
            .contains("rest::types::Order is now rest::types::Ord")
    );
}

#[test]
fn schema_added_is_not_breaking() {
    let new = with(|d| {
        at(d, "/components/schemas")["Fill"] = json!({ "type": "object", "properties": {} });
    });
    only(new, "schema-added", NonBreaking, "Fill");
}

#[test]
fn new_enum_schema_is_generated_as_an_open_enum() {
    let new = with(|d| {
        at(d, "/components/schemas")["Venue"] = json!({ "type": "string", "enum": ["NYSE"] });
    });
    let change = only(new, "enum-schema-added", NonBreaking, "Venue");
    assert!(
        change.detail.contains("crate::codes::Venue"),
        "{}",
        change.detail
    );
}

#[test]
fn schema_removed_is_breaking() {
    let old = with(|d| {
        at(d, "/components/schemas")["Fill"] = json!({ "type": "object", "properties": {} });
    });
    let changes = diff_documents(&old, &base());
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(
        (changes[0].rule, changes[0].severity),
        ("schema-removed", Breaking)
    );
}

#[test]
fn raw_upstream_shapes_compare_as_generated() {
    // A 3.1 rewrite of the same field (type array instead of nullable) is no change at all.
    let new = with(|d| {
        *at(d, "/components/schemas/PlaceOrder/properties/limit_price") =
            json!({ "type": ["string", "null"] });
        *at(d, "/openapi") = json!("3.1.0");
    });
    assert!(diff_documents(&base(), &new).is_empty());
}

#[test]
fn json_output_has_the_documented_shape() {
    let new = with(|d| *at(d, "/components/schemas/Tif/enum") = json!(["DAY"]));
    let text = render_json(&diff_documents(&base(), &new));
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        json!({ "changes": [{
            "severity": "breaking",
            "rule": "request-enum-value-removed",
            "location": "Tif",
            "detail": "value `GTC` removed: the server refuses it now"
        }] })
    );
}

#[test]
fn removed_enum_schema_is_breaking_unless_its_open_enum_is_hand_listed() {
    let old = with(|d| {
        at(d, "/components/schemas")["Venue"] = json!({ "type": "string", "enum": ["NYSE"] });
    });
    let changes = diff_documents(&old, &base());
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(
        (changes[0].rule, changes[0].severity),
        ("schema-removed", Breaking)
    );
    // codegen/open_enums.rs lists SortOrder: it is generated whatever the spec says.
    let old = with(|d| {
        at(d, "/components/schemas")["SortOrder"] =
            json!({ "type": "string", "enum": ["asc", "desc"] });
    });
    let changes = diff_documents(&old, &base());
    assert_eq!(
        (changes[0].rule, changes[0].severity),
        ("schema-removed", NonBreaking)
    );
    assert!(changes[0].detail.contains("crate::codes::SortOrder stays"));
}
