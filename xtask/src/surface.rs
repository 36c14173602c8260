//! The API surface of a spec as stable, sorted text, one fact per line.
//!
//! ```text
//! operation list_orders: GET /orders security=client_id+client_secret+user_id+user_secret
//! operation list_orders parameter query status: OrderStatusFilter optional
//! operation list_orders response 200 application/json: OrderPage
//! schema Order.order_qty: string(decimal) optional nullable
//! schema OrderSide: string enum
//! schema OrderSide enum BUY
//! ```

use serde_json::Value;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Lines of one operation or schema: its header line first, then its members, sorted.
type Lines = Vec<(String, u8, String)>;

/// The surface of `doc`: one line per fact, each ending in a newline. Operations sorted by
/// operationId, then schemas and security schemes by name; each header line is followed by
/// its members, sorted.
pub fn spec_surface(doc: &Value) -> String {
    let mut lines: Lines = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for method in METHODS {
                let Some(op) = item.get(*method) else {
                    continue;
                };
                operation(&mut lines, doc, path, method, item, op);
            }
        }
    }
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, schema) in schemas {
            let prefix = format!("schema {name}");
            lines.push((prefix.clone(), 0, format!("{prefix}: {}", describe(schema))));
            members(
                &mut lines,
                &prefix,
                &prefix,
                &format!("schema {name}."),
                schema,
            );
        }
    }
    if let Some(schemes) = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
    {
        for (name, scheme) in schemes {
            let line = format!(
                "security {name}: {} in {} {}",
                scheme["type"].as_str().unwrap_or("?"),
                scheme["in"].as_str().unwrap_or("-"),
                scheme["name"].as_str().unwrap_or("-"),
            );
            lines.push((format!("security {name}"), 0, line));
        }
    }
    lines.sort();
    lines.dedup();
    let lines: Vec<String> = lines.into_iter().map(|(_, _, line)| line).collect();
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn operation(lines: &mut Lines, doc: &Value, path: &str, method: &str, item: &Value, op: &Value) {
    let id = op["operationId"].as_str().unwrap_or("<no operationId>");
    let security = op.get("security").or_else(|| doc.get("security"));
    let group = format!("operation {id}");
    let header = format!(
        "operation {id}: {} {path} security={}",
        method.to_uppercase(),
        security_text(security)
    );
    lines.push((group.clone(), 0, header));
    let push = |lines: &mut Lines, line: String| lines.push((group.clone(), 1, line));
    let mut params: Vec<&Value> = Vec::new();
    for list in [item.get("parameters"), op.get("parameters")]
        .into_iter()
        .flatten()
    {
        params.extend(list.as_array().into_iter().flatten());
    }
    for param in params {
        let param = resolve(doc, param, "#/components/parameters/");
        let location = param["in"].as_str().unwrap_or("?");
        let name = param["name"].as_str().unwrap_or("?");
        let schema = param.get("schema").unwrap_or(&Value::Null);
        let prefix = format!("operation {id} parameter {location} {name}");
        push(
            lines,
            format!(
                "{prefix}: {}{}",
                describe(schema),
                required_text(param["required"] == true, schema)
            ),
        );
        members(lines, &group, &prefix, &format!("{prefix}."), schema);
    }
    if let Some(body) = op.get("requestBody") {
        let body = resolve(doc, body, "#/components/requestBodies/");
        for (media, entry) in body["content"].as_object().into_iter().flatten() {
            let schema = entry.get("schema").unwrap_or(&Value::Null);
            let prefix = format!("operation {id} request {media}");
            let required = if body["required"] == true {
                " required"
            } else {
                " optional"
            };
            push(lines, format!("{prefix}: {}{required}", describe(schema)));
            members(lines, &group, &prefix, &format!("{prefix}."), schema);
        }
    }
    for (code, response) in op["responses"].as_object().into_iter().flatten() {
        let response = resolve(doc, response, "#/components/responses/");
        let content = response["content"].as_object();
        if content.is_none_or(|c| c.is_empty()) {
            push(lines, format!("operation {id} response {code}: no body"));
        }
        for (media, entry) in content.into_iter().flatten() {
            let schema = entry.get("schema").unwrap_or(&Value::Null);
            let prefix = format!("operation {id} response {code} {media}");
            push(lines, format!("{prefix}: {}", describe(schema)));
            members(lines, &group, &prefix, &format!("{prefix}."), schema);
        }
    }
}

fn resolve<'a>(doc: &'a Value, value: &'a Value, prefix: &str) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer))
            .filter(|_| r.starts_with(prefix))
            .unwrap_or(value),
        None => value,
    }
}

/// `a+b | c` for the alternatives of a security requirement; `none` when empty.
pub(crate) fn security_text(security: Option<&Value>) -> String {
    let alternatives: Vec<String> = security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|req| {
            let names: Vec<&str> = req
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.as_str())
                .collect();
            if names.is_empty() {
                "anonymous".to_string()
            } else {
                names.join("+")
            }
        })
        .collect();
    if alternatives.is_empty() {
        "none".into()
    } else {
        alternatives.join(" | ")
    }
}

fn required_text(required: bool, schema: &Value) -> String {
    let mut text = if required { " required" } else { " optional" }.to_string();
    if schema["nullable"] == true {
        text.push_str(" nullable");
    }
    text
}

/// The name of a `$ref`'s target.
pub(crate) fn ref_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

/// A schema's type in one word or so: `Order`, `[Order]`, `string(decimal)`, `object`.
pub fn describe(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return ref_name(r).to_string();
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            if key == "allOf" && parts.len() == 1 {
                return describe(&parts[0]);
            }
            let inner: Vec<String> = parts.iter().map(describe).collect();
            return format!("{key}({})", inner.join(", "));
        }
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let mut text = match ty {
        "array" => format!("[{}]", describe(&schema["items"])),
        "object" | ""
            if schema
                .get("additionalProperties")
                .is_some_and(Value::is_object) =>
        {
            format!("map<{}>", describe(&schema["additionalProperties"]))
        }
        "" if schema.get("properties").is_some() => "object".into(),
        "" => "any".into(),
        other => other.to_string(),
    };
    if let Some(format) = schema["format"].as_str() {
        text.push_str(&format!("({format})"));
    }
    if schema.get("enum").is_some() {
        text.push_str(" enum");
    }
    text
}

/// Lines for the fields and enum values of an inline schema (not behind a `$ref`).
fn members(lines: &mut Lines, group: &str, prefix: &str, field_prefix: &str, schema: &Value) {
    let push = |lines: &mut Lines, line: String| lines.push((group.to_string(), 1, line));
    if schema.get("$ref").is_some() {
        return;
    }
    if let Some(values) = schema["enum"].as_array() {
        for value in values {
            let value = value
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            push(lines, format!("{prefix} enum {value}"));
        }
    }
    if schema["type"] == "array" {
        members(
            lines,
            group,
            &format!("{prefix}[]"),
            &format!("{}[].", field_prefix.trim_end_matches('.')),
            &schema["items"],
        );
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        members(
            lines,
            group,
            &format!("{prefix}{{}}"),
            &format!("{}{{}}.", field_prefix.trim_end_matches('.')),
            extra,
        );
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let kept: Vec<&str> = schema["x-kept-fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (name, field) in schema["properties"].as_object().into_iter().flatten() {
        let field_name = format!("{field_prefix}{name}");
        push(
            lines,
            format!(
                "{field_name}: {}{}{}",
                describe(field),
                required_text(required.contains(&name.as_str()), field),
                if kept.contains(&name.as_str()) {
                    " (kept: not upstream, remove at the next major)"
                } else {
                    ""
                }
            ),
        );
        members(lines, group, &field_name, &format!("{field_name}."), field);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, part) in schema[key].as_array().into_iter().flatten().enumerate() {
            if schema[key].as_array().is_some_and(|p| p.len() == 1) {
                members(lines, group, prefix, field_prefix, part);
            } else {
                members(
                    lines,
                    group,
                    &format!("{prefix} {key}[{i}]"),
                    field_prefix,
                    part,
                );
            }
        }
    }
}
