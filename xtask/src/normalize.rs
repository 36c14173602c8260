//! Normalization: any OpenAPI 3.0/3.1 document into the conventions of `spec/openapi.json`.
//!
//! The result is what progenitor 0.15 compiles with the settings of `build.rs`:
//! - OpenAPI 3.1 constructs converted down to 3.0.3 (`type: [X, "null"]` → `nullable`,
//!   `anyOf` with a `null` branch → `nullable`, `const` → one-value `enum`, `examples` →
//!   `example`, numeric `exclusiveMinimum`/`exclusiveMaximum`, `$ref` with siblings wrapped in
//!   `allOf`, 3.1-only keywords and top-level fields dropped);
//! - one success response and one error shape per operation: `default` next to a 2xx becomes
//!   `4XX` + `5XX`, error statuses collapse into `4XX`/`5XX` with one schema, extra 2xx
//!   responses and non-JSON media types are dropped;
//! - missing `operationId`s derived from the method and path;
//! - credential headers declared as parameters moved to `securitySchemes` and `security`;
//! - array query parameters made one comma-separated string (`symbols=AAPL,MSFT`);
//! - money and quantity strings marked `format: decimal`, secrets `format: password`, by the
//!   field-name rules [`DECIMAL_FIELDS`] and [`SECRET_FIELDS`], with nothing else on the schema
//!   that would stop progenitor's type conversion from matching;
//! - `additionalProperties: false` removed (it would make every new upstream field fatal);
//! - inline string enums replaced by a `$ref` to the component enum with the same values, or to
//!   a new component named after the field: `build.rs` turns every component string enum into
//!   the open enum `crate::codes::<Name>` (generated, see `codegen/open_enums.rs`), so no
//!   closed Rust enum is ever generated.
//!
//! Every change is reported as a [`Note`]. Normalizing is deterministic and idempotent: our
//! own `spec/openapi.json` normalizes to itself, byte for byte.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// Whether a note is a change the normalizer made or something left for a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoteKind {
    /// The document was changed.
    Changed,
    /// Left as is: a human should look (it would be reported again on the next run).
    Check,
}

/// One change the normalizer made, or one thing it wants a human to look at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    /// Where, as a dotted path into the document (`components.schemas.Order.properties.qty`).
    pub location: String,
    /// Changed, or to check.
    pub kind: NoteKind,
    /// What was done or what to check.
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            NoteKind::Changed => write!(f, "{}: {}", self.location, self.message),
            NoteKind::Check => write!(f, "{}: CHECK: {}", self.location, self.message),
        }
    }
}

/// A normalized document and the report of what normalization changed.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The document, in our conventions (serialize with [`crate::json::to_canonical_string`]).
    pub document: Value,
    /// What was changed or needs a look, sorted.
    pub notes: Vec<Note>,
}

/// How a field-name rule matches a property name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// The whole name.
    Exact(&'static str),
    /// The end of the name (`_price` matches `order_limit_price`).
    Suffix(&'static str),
}

impl NameRule {
    /// Whether `name` matches this rule.
    pub fn matches(self, name: &str) -> bool {
        match self {
            NameRule::Exact(exact) => name == exact,
            NameRule::Suffix(suffix) => name.len() > suffix.len() && name.ends_with(suffix),
        }
    }
}

/// String properties whose name matches one of these are money or quantities: they get
/// `format: decimal`, which `build.rs` maps to `rust_decimal::Decimal`. Connect Trade sends
/// every number as a decimal string.
pub const DECIMAL_FIELDS: &[NameRule] = &[
    NameRule::Exact("amount"),
    NameRule::Exact("buying_power"),
    NameRule::Exact("cash"),
    NameRule::Exact("commission"),
    NameRule::Exact("equity"),
    NameRule::Exact("fee"),
    NameRule::Exact("fees"),
    NameRule::Exact("notional"),
    NameRule::Exact("price"),
    NameRule::Exact("qty"),
    NameRule::Exact("quantity"),
    NameRule::Exact("ratio"),
    NameRule::Exact("strike"),
    NameRule::Suffix("_amount"),
    NameRule::Suffix("_balance"),
    NameRule::Suffix("_cash"),
    NameRule::Suffix("_commission"),
    NameRule::Suffix("_cost"),
    NameRule::Suffix("_equity"),
    NameRule::Suffix("_fee"),
    NameRule::Suffix("_margin"),
    NameRule::Suffix("_notional"),
    NameRule::Suffix("_pl"),
    NameRule::Suffix("_power"),
    NameRule::Suffix("_price"),
    NameRule::Suffix("_qty"),
    NameRule::Suffix("_quantity"),
    NameRule::Suffix("_value"),
];

/// String properties whose name matches one of these are secrets: they get
/// `format: password`, which `build.rs` maps to `connect_trade::Secret` (redacted Debug).
pub const SECRET_FIELDS: &[NameRule] = &[
    NameRule::Exact("access_token"),
    NameRule::Exact("password"),
    NameRule::Exact("refresh_token"),
    NameRule::Exact("token"),
    NameRule::Suffix("_secret"),
];

/// Headers that carry credentials: declared as parameters, they would become an argument of
/// every generated method; they belong in `securitySchemes`.
pub const CREDENTIAL_HEADERS: &[&str] = &["client-id", "client-secret", "user-id", "user-secret"];

/// The OpenAPI version we write.
pub const TARGET_VERSION: &str = "3.0.3";

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Keywords of JSON Schema 2020-12 (OpenAPI 3.1) that OpenAPI 3.0 does not have and that
/// have no 3.0 equivalent: dropped, and reported.
const DROPPED_SCHEMA_KEYWORDS: &[&str] = &[
    "$anchor",
    "$comment",
    "$defs",
    "$dynamicAnchor",
    "$dynamicRef",
    "$id",
    "$schema",
    "$vocabulary",
    "contains",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
    "dependentRequired",
    "dependentSchemas",
    "else",
    "if",
    "maxContains",
    "minContains",
    "patternProperties",
    "prefixItems",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
];

/// Keys that stop progenitor's `with_conversion` from matching a `{type: string, format}`
/// schema exactly; removed from the schemas marked decimal or password.
const CONVERSION_BLOCKERS: &[&str] = &["pattern", "minLength", "maxLength"];

struct Ctx {
    notes: BTreeSet<Note>,
}

impl Ctx {
    fn note(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.notes.insert(Note {
            location: location.into(),
            kind: NoteKind::Changed,
            message: message.into(),
        });
    }

    fn check(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.notes.insert(Note {
            location: location.into(),
            kind: NoteKind::Check,
            message: message.into(),
        });
    }
}

/// Normalizes `doc` (an OpenAPI 3.0 or 3.1 document, see [`crate::load::check_openapi`]).
pub fn normalize(doc: &Value) -> Normalized {
    let mut doc = doc.clone();
    let mut ctx = Ctx {
        notes: BTreeSet::new(),
    };
    top_level(&mut doc, &mut ctx);
    for_each_schema_root(&mut doc, &mut |loc, schema| {
        walk_schema(schema, loc, None, &mut ctx)
    });
    operations(&mut doc, &mut ctx);
    hoist_inline_enums(&mut doc, &mut ctx);
    Normalized {
        document: crate::json::sorted(&doc),
        notes: ctx.notes.into_iter().collect(),
    }
}

fn top_level(doc: &mut Value, ctx: &mut Ctx) {
    let Some(map) = doc.as_object_mut() else {
        return;
    };
    let version = map.get("openapi").and_then(Value::as_str).unwrap_or("");
    if version != TARGET_VERSION {
        ctx.note(
            "openapi",
            format!("version {version} written as {TARGET_VERSION}"),
        );
        map.insert("openapi".into(), json!(TARGET_VERSION));
    }
    for key in ["webhooks", "jsonSchemaDialect"] {
        if map.remove(key).is_some() {
            ctx.note(key, "OpenAPI 3.1 only: dropped");
        }
    }
    if let Some(info) = map.get_mut("info").and_then(Value::as_object_mut) {
        if info.remove("summary").is_some() {
            ctx.note("info.summary", "OpenAPI 3.1 only: dropped");
        }
        if let Some(license) = info.get_mut("license").and_then(Value::as_object_mut)
            && license.remove("identifier").is_some()
        {
            ctx.note("info.license.identifier", "OpenAPI 3.1 only: dropped");
        }
    }
    map.entry("paths").or_insert_with(|| json!({}));
    if let Some(components) = map.get_mut("components").and_then(Value::as_object_mut)
        && components.remove("pathItems").is_some()
    {
        ctx.note("components.pathItems", "OpenAPI 3.1 only: dropped");
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas

/// Calls `f` on every schema at the root of a schema tree: component schemas, and the schemas
/// of parameters, request bodies, responses and headers (in components and in operations).
pub(crate) fn for_each_schema_root(doc: &mut Value, f: &mut dyn FnMut(&str, &mut Value)) {
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        for (kind, entries) in components.iter_mut() {
            let Some(entries) = entries.as_object_mut() else {
                continue;
            };
            for (name, entry) in entries.iter_mut() {
                let loc = format!("components.{kind}.{name}");
                match kind.as_str() {
                    "schemas" => f(&loc, entry),
                    "parameters" | "headers" => parameter_schemas(entry, &loc, f),
                    "requestBodies" => content_schemas(entry, &loc, f),
                    "responses" => response_schemas(entry, &loc, f),
                    _ => {}
                }
            }
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (key, value) in item.iter_mut() {
            let loc = format!("paths.{path}.{key}");
            if key == "parameters" {
                parameter_list_schemas(value, &loc, f);
            } else if METHODS.contains(&key.as_str()) {
                if let Some(params) = value.get_mut("parameters") {
                    parameter_list_schemas(params, &format!("{loc}.parameters"), f);
                }
                if let Some(body) = value.get_mut("requestBody") {
                    content_schemas(body, &format!("{loc}.requestBody"), f);
                }
                if let Some(responses) = value.get_mut("responses").and_then(Value::as_object_mut) {
                    for (code, response) in responses.iter_mut() {
                        response_schemas(response, &format!("{loc}.responses.{code}"), f);
                    }
                }
            }
        }
    }
}

fn parameter_list_schemas(list: &mut Value, loc: &str, f: &mut dyn FnMut(&str, &mut Value)) {
    if let Some(list) = list.as_array_mut() {
        for (i, param) in list.iter_mut().enumerate() {
            parameter_schemas(param, &format!("{loc}[{i}]"), f);
        }
    }
}

fn parameter_schemas(param: &mut Value, loc: &str, f: &mut dyn FnMut(&str, &mut Value)) {
    if let Some(schema) = param.get_mut("schema") {
        f(&format!("{loc}.schema"), schema);
    }
    content_schemas(param, loc, f);
}

fn content_schemas(holder: &mut Value, loc: &str, f: &mut dyn FnMut(&str, &mut Value)) {
    if let Some(content) = holder.get_mut("content").and_then(Value::as_object_mut) {
        for (media, entry) in content.iter_mut() {
            if let Some(schema) = entry.get_mut("schema") {
                f(&format!("{loc}.content.{media}.schema"), schema);
            }
        }
    }
}

fn response_schemas(response: &mut Value, loc: &str, f: &mut dyn FnMut(&str, &mut Value)) {
    content_schemas(response, loc, f);
    if let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) {
        for (name, header) in headers.iter_mut() {
            parameter_schemas(header, &format!("{loc}.headers.{name}"), f);
        }
    }
}

fn is_null_schema(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(ts)) => ts.iter().all(|t| t == "null"),
        _ => false,
    }
}

/// Normalizes one schema, then its sub-schemas. `prop` is the property name when the schema
/// is the value of a property.
fn walk_schema(schema: &mut Value, loc: &str, prop: Option<&str>, ctx: &mut Ctx) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    down_convert(map, loc, ctx);
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        map.remove("additionalProperties");
        ctx.note(
            loc,
            "`additionalProperties: false` removed: new upstream fields must not be fatal",
        );
    }
    if let Some(name) = prop {
        field_format(map, name, loc, ctx);
    }
    for key in ["items", "not", "additionalProperties"] {
        if let Some(child) = map.get_mut(key)
            && child.is_object()
        {
            walk_schema(child, &format!("{loc}.{key}"), None, ctx);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            for (i, child) in children.iter_mut().enumerate() {
                walk_schema(child, &format!("{loc}.{key}[{i}]"), None, ctx);
            }
        }
    }
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for (name, child) in props.iter_mut() {
            walk_schema(child, &format!("{loc}.properties.{name}"), Some(name), ctx);
        }
    }
}

/// OpenAPI 3.1 (JSON Schema 2020-12) constructs to their 3.0 form.
fn down_convert(map: &mut Map<String, Value>, loc: &str, ctx: &mut Ctx) {
    // `type: [X, "null"]`, `type: "null"`.
    if let Some(Value::Array(types)) = map.get("type").cloned() {
        let nullable = types.iter().any(|t| t == "null");
        let rest: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
        if nullable {
            map.insert("nullable".into(), Value::Bool(true));
        }
        match rest.len() {
            0 => {
                map.remove("type");
            }
            1 => {
                map.insert("type".into(), rest[0].clone());
            }
            _ => {
                map.remove("type");
                let branches: Vec<Value> = rest.iter().map(|t| json!({ "type": t })).collect();
                map.insert("anyOf".into(), Value::Array(branches));
            }
        }
        ctx.note(loc, "3.1 type array converted to `type` + `nullable`");
    } else if map.get("type").and_then(Value::as_str) == Some("null") {
        map.remove("type");
        map.insert("nullable".into(), Value::Bool(true));
        ctx.note(loc, "3.1 `type: null` converted to `nullable`");
    }
    // `anyOf`/`oneOf` with a `null` branch.
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(branches)) = map.get(key) else {
            continue;
        };
        if !branches.iter().any(is_null_schema) {
            continue;
        }
        let rest: Vec<Value> = branches
            .iter()
            .filter(|b| !is_null_schema(b))
            .cloned()
            .collect();
        map.insert("nullable".into(), Value::Bool(true));
        ctx.note(loc, format!("`{key}` null branch converted to `nullable`"));
        if rest.len() == 1 {
            map.remove(key);
            let only = rest.into_iter().next().unwrap_or(Value::Null);
            if only.get("$ref").is_some() {
                map.insert("allOf".into(), Value::Array(vec![only]));
            } else if let Value::Object(only) = only {
                for (k, v) in only {
                    map.entry(k).or_insert(v);
                }
            }
        } else {
            map.insert(key.into(), Value::Array(rest));
        }
    }
    // `$ref` with siblings: 3.0 ignores siblings of `$ref`, so keep them through `allOf`.
    if map.contains_key("$ref") && map.len() > 1 {
        let reference = map.remove("$ref").unwrap_or(Value::Null);
        map.remove("summary");
        if !map.is_empty() {
            map.insert("allOf".into(), json!([{ "$ref": reference }]));
            ctx.note(loc, "`$ref` with sibling keywords wrapped in `allOf`");
        } else {
            map.insert("$ref".into(), reference);
        }
    }
    // `enum: [a, b, null]`: null is how 3.1 spells a nullable enum.
    if let Some(Value::Array(values)) = map.get_mut("enum")
        && values.iter().any(Value::is_null)
    {
        values.retain(|v| !v.is_null());
        map.insert("nullable".into(), Value::Bool(true));
        ctx.note(loc, "`null` enum value converted to `nullable`");
    }
    if let Some(value) = map.remove("const") {
        map.entry("enum").or_insert_with(|| json!([value]));
        ctx.note(loc, "`const` converted to a one-value `enum`");
    }
    if let Some(examples) = map.remove("examples") {
        if let Some(first) = examples.as_array().and_then(|e| e.first()) {
            map.entry("example").or_insert_with(|| first.clone());
        }
        ctx.note(loc, "`examples` converted to `example`");
    }
    for (exclusive, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(value) = map.get(exclusive).filter(|v| v.is_number()).cloned() {
            map.insert(bound.into(), value);
            map.insert(exclusive.into(), Value::Bool(true));
            ctx.note(
                loc,
                format!("numeric `{exclusive}` converted to `{bound}` + flag"),
            );
        }
    }
    for key in DROPPED_SCHEMA_KEYWORDS {
        if map.remove(*key).is_some() {
            ctx.note(loc, format!("`{key}` has no OpenAPI 3.0 form: dropped"));
        }
    }
}

/// `format: decimal` / `format: password` by field name, on inline string schemas.
fn field_format(map: &mut Map<String, Value>, name: &str, loc: &str, ctx: &mut Ctx) {
    if map.contains_key("$ref") || map.contains_key("allOf") {
        return;
    }
    let (format, what) = if SECRET_FIELDS.iter().any(|r| r.matches(name)) {
        ("password", "secret")
    } else if DECIMAL_FIELDS.iter().any(|r| r.matches(name)) {
        ("decimal", "money/quantity")
    } else {
        return;
    };
    let ty = map.get("type").and_then(Value::as_str);
    if ty != Some("string") {
        if format == "decimal" && matches!(ty, Some("number" | "integer")) {
            ctx.check(
                loc,
                "money/quantity field declared as a JSON number: kept, check it (Connect Trade \
                 sends decimal strings)",
            );
        }
        return;
    }
    let current = map.get("format").and_then(Value::as_str);
    if !matches!(
        current,
        None | Some("decimal" | "number" | "double" | "float" | "password")
    ) {
        ctx.check(
            loc,
            format!(
                "{what} field name but `format: {}`: left as is",
                current.unwrap_or("")
            ),
        );
        return;
    }
    if map.contains_key("enum") {
        return;
    }
    if current != Some(format) {
        map.insert("format".into(), json!(format));
        ctx.note(loc, format!("{what} string marked `format: {format}`"));
    }
    let blockers: Vec<String> = map
        .keys()
        .filter(|k| CONVERSION_BLOCKERS.contains(&k.as_str()) || k.starts_with("x-"))
        .cloned()
        .collect();
    for key in blockers {
        map.remove(&key);
        ctx.note(
            loc,
            format!("`{key}` removed so the `format: {format}` conversion matches"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Operations

fn operations(doc: &mut Value, ctx: &mut Ctx) {
    let global_security = doc.get("security").cloned();
    let mut schemes = existing_header_schemes(doc);
    let component_params = doc
        .pointer("/components/parameters")
        .cloned()
        .unwrap_or(Value::Null);
    let mut used_ids: BTreeSet<String> = BTreeSet::new();
    let mut new_schemes: BTreeMap<String, Value> = BTreeMap::new();
    let mut auth_components: BTreeSet<String> = BTreeSet::new();

    // Ids already present are reserved first, so derived ones never collide with them.
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for item in paths.values() {
            for method in METHODS {
                if let Some(id) = item.pointer(&format!("/{method}/operationId"))
                    && let Some(id) = id.as_str()
                {
                    used_ids.insert(id.to_string());
                }
            }
        }
    }

    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        // Path-level parameters.
        let mut item_auth = BTreeSet::new();
        if let Some(params) = item.get_mut("parameters") {
            let loc = format!("paths.{path}.parameters");
            item_auth = take_auth_headers(
                params,
                &loc,
                &component_params,
                &mut schemes,
                &mut new_schemes,
                &mut auth_components,
                ctx,
            );
            query_arrays(params, &component_params, &loc, ctx);
            if params.as_array().is_some_and(Vec::is_empty) {
                item.remove("parameters");
            }
        }
        for method in METHODS {
            let Some(op) = item.get_mut(*method).and_then(Value::as_object_mut) else {
                continue;
            };
            let loc = format!("paths.{path}.{method}");
            if !op.get("operationId").is_some_and(Value::is_string) {
                let id = unique_id(derive_operation_id(method, path), &mut used_ids);
                ctx.note(&loc, format!("no operationId: derived `{id}`"));
                op.insert("operationId".into(), json!(id));
            }
            let mut auth = item_auth.clone();
            if let Some(params) = op.get_mut("parameters") {
                let ploc = format!("{loc}.parameters");
                auth.extend(take_auth_headers(
                    params,
                    &ploc,
                    &component_params,
                    &mut schemes,
                    &mut new_schemes,
                    &mut auth_components,
                    ctx,
                ));
                query_arrays(params, &component_params, &ploc, ctx);
            }
            if op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                op.remove("parameters");
            }
            if !auth.is_empty() && !op.contains_key("security") {
                let requirement: Map<String, Value> =
                    auth.iter().map(|s| (s.clone(), json!([]))).collect();
                let security = json!([requirement]);
                if global_security.as_ref() != Some(&security) {
                    op.insert("security".into(), security);
                    ctx.note(&loc, "credential headers became the operation's `security`");
                }
            }
            if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                normalize_responses(responses, &format!("{loc}.responses"), ctx);
            }
        }
    }

    if !new_schemes.is_empty() || !auth_components.is_empty() {
        let root = doc.as_object_mut();
        if let Some(root) = root {
            let components = root
                .entry("components")
                .or_insert_with(|| json!({}))
                .as_object_mut();
            if let Some(components) = components {
                if let Some(params) = components
                    .get_mut("parameters")
                    .and_then(Value::as_object_mut)
                {
                    for name in &auth_components {
                        params.remove(name);
                    }
                    if params.is_empty() {
                        components.remove("parameters");
                    }
                }
                if let Some(schemes_map) = components
                    .entry("securitySchemes")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                {
                    for (name, scheme) in new_schemes {
                        schemes_map.entry(name).or_insert(scheme);
                    }
                }
            }
        }
    }
}

/// Header name (lower case) → security scheme name, for the apiKey header schemes declared.
fn existing_header_schemes(doc: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(schemes) = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
    {
        for (name, scheme) in schemes {
            if scheme["type"] == "apiKey"
                && scheme["in"] == "header"
                && let Some(header) = scheme["name"].as_str()
            {
                out.insert(header.to_ascii_lowercase(), name.clone());
            }
        }
    }
    out
}

fn resolve_param<'a>(param: &'a Value, components: &'a Value) -> &'a Value {
    match param.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/components/parameters/")
            .and_then(|name| components.get(name))
            .unwrap_or(param),
        None => param,
    }
}

/// Removes the credential header parameters of `params`; returns their security scheme names.
fn take_auth_headers(
    params: &mut Value,
    loc: &str,
    components: &Value,
    schemes: &mut BTreeMap<String, String>,
    new_schemes: &mut BTreeMap<String, Value>,
    auth_components: &mut BTreeSet<String>,
    ctx: &mut Ctx,
) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let Some(list) = params.as_array_mut() else {
        return found;
    };
    list.retain(|param| {
        let resolved = resolve_param(param, components);
        if resolved["in"] != "header" {
            return true;
        }
        let Some(header) = resolved["name"].as_str() else {
            return true;
        };
        let lower = header.to_ascii_lowercase();
        let scheme = match schemes.get(&lower) {
            Some(scheme) => scheme.clone(),
            None if CREDENTIAL_HEADERS.contains(&lower.as_str()) => {
                let name = lower.replace('-', "_");
                let mut scheme = json!({ "type": "apiKey", "in": "header", "name": lower });
                if let Some(description) = resolved.get("description") {
                    scheme["description"] = description.clone();
                }
                new_schemes.insert(name.clone(), scheme);
                schemes.insert(lower.clone(), name.clone());
                name
            }
            None => {
                ctx.check(
                    loc,
                    format!(
                        "header parameter `{header}` kept: every call of the operation gets a \
                         setter for it; if it is sent on every request (e.g. `api-version`), \
                         send it from the client instead"
                    ),
                );
                return true;
            }
        };
        if let Some(component) = param
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/parameters/"))
        {
            auth_components.insert(component.to_string());
        }
        ctx.note(
            loc,
            format!("credential header `{header}` moved to security scheme `{scheme}`"),
        );
        found.insert(scheme);
        false
    });
    found
}

/// Array query parameters become one comma-separated string.
fn query_arrays(params: &mut Value, components: &Value, loc: &str, ctx: &mut Ctx) {
    let Some(list) = params.as_array_mut() else {
        return;
    };
    for param in list.iter_mut() {
        if param.get("$ref").is_some() {
            if resolve_param(param, components)["schema"]["type"] == "array" {
                ctx.check(
                    loc,
                    "array query parameter behind a $ref: left as is, inline it to convert",
                );
            }
            continue;
        }
        if param["in"] != "query" || param["schema"]["type"] != "array" {
            continue;
        }
        let name = param["name"].as_str().unwrap_or("").to_string();
        if let Some(map) = param.as_object_mut() {
            map.insert("schema".into(), json!({ "type": "string" }));
            map.remove("style");
            map.remove("explode");
            ctx.note(
                loc,
                format!("array query parameter `{name}` made one comma-separated string"),
            );
        }
    }
}

fn derive_operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let segment = segment.trim_start_matches('{').trim_end_matches('}');
        id.push('_');
        let mut last_underscore = true;
        for c in segment.chars() {
            if c.is_ascii_alphanumeric() {
                id.push(c.to_ascii_lowercase());
                last_underscore = false;
            } else if !last_underscore {
                id.push('_');
                last_underscore = true;
            }
        }
    }
    id.trim_end_matches('_').to_string()
}

fn unique_id(base: String, used: &mut BTreeSet<String>) -> String {
    let mut id = base.clone();
    let mut n = 2;
    while used.contains(&id) {
        id = format!("{base}_{n}");
        n += 1;
    }
    used.insert(id.clone());
    id
}

fn is_success(code: &str) -> bool {
    code.starts_with('2')
}

fn is_error(code: &str) -> bool {
    code.starts_with('4') || code.starts_with('5')
}

fn json_only(response: &mut Value, loc: &str, ctx: &mut Ctx) {
    let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    if content.len() <= 1 {
        return;
    }
    let keep = if content.contains_key("application/json") {
        "application/json".to_string()
    } else {
        content.keys().next().cloned().unwrap_or_default()
    };
    content.retain(|k, _| *k == keep);
    ctx.note(loc, format!("several media types: kept `{keep}` only"));
}

/// One success response and one error shape (`4XX`/`5XX`) per operation.
fn normalize_responses(responses: &mut Map<String, Value>, loc: &str, ctx: &mut Ctx) {
    for (code, response) in responses.iter_mut() {
        json_only(response, &format!("{loc}.{code}"), ctx);
    }
    // Success: keep one 2xx, preferring one with a body, then the lowest code.
    let successes: Vec<String> = responses
        .keys()
        .filter(|c| is_success(c))
        .cloned()
        .collect();
    if successes.len() > 1 {
        let keep = successes
            .iter()
            .find(|c| responses[c.as_str()].get("content").is_some())
            .unwrap_or(&successes[0])
            .clone();
        for code in successes.iter().filter(|c| **c != keep) {
            responses.remove(code);
            ctx.note(
                loc,
                format!("extra success response {code} dropped (one success shape, kept {keep})"),
            );
        }
    }
    let has_success = responses.keys().any(|c| is_success(c));
    if has_success && let Some(default) = responses.remove("default") {
        for class in ["4XX", "5XX"] {
            if !responses.contains_key(class) {
                responses.insert(class.into(), default.clone());
            }
        }
        ctx.note(
            loc,
            "`default` response next to a success became `4XX` and `5XX`",
        );
    }
    // Errors: one schema, under 4XX and 5XX only.
    let errors: Vec<String> = responses.keys().filter(|c| is_error(c)).cloned().collect();
    let is_canonical = errors.iter().all(|c| c == "4XX" || c == "5XX");
    let error_content = |code: &String| responses[code.as_str()].get("content").cloned();
    let contents: BTreeSet<String> = errors
        .iter()
        .filter_map(error_content)
        .map(|c| c.to_string())
        .collect();
    if is_canonical && contents.len() <= 1 {
        return;
    }
    // The content of the lowest error status with a body is the operation's error shape.
    let chosen = errors.iter().find_map(error_content);
    if contents.len() > 1 {
        ctx.note(
            loc,
            "different error bodies per status: all use the first one (progenitor allows one)",
        );
    }
    for class in ['4', '5'] {
        let codes: Vec<&String> = errors.iter().filter(|c| c.starts_with(class)).collect();
        if codes.is_empty() {
            continue;
        }
        let descriptions: Vec<String> = codes
            .iter()
            .filter_map(|c| {
                responses[c.as_str()]["description"].as_str().map(|d| {
                    if c.ends_with("XX") {
                        d.to_string()
                    } else {
                        format!("{c}: {d}")
                    }
                })
            })
            .collect();
        let mut merged = json!({ "description": descriptions.join(" ") });
        if let Some(content) = &chosen {
            merged["content"] = content.clone();
        }
        for code in &codes {
            responses.remove(code.as_str());
        }
        let class_code = format!("{class}XX");
        ctx.note(loc, format!("error responses collapsed into {class_code}"));
        responses.insert(class_code, merged);
    }
}

// ---------------------------------------------------------------------------------------------
// Inline string enums

struct Hoist {
    /// Sorted values of each component string enum → its name.
    known: BTreeMap<Vec<String>, String>,
    /// Every component schema name, existing or new.
    taken: BTreeSet<String>,
    /// The component enums created.
    created: BTreeMap<String, Value>,
}

fn pascal(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            first.into_iter().chain(chars).collect::<String>()
        })
        .collect()
}

fn string_values(schema: &Value) -> Option<Vec<String>> {
    if schema.get("type").and_then(Value::as_str) != Some("string") {
        return None;
    }
    schema["enum"]
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Inline string enums would generate closed Rust enums (`build.rs` replaces only component
/// enums with the open enums of `crate::codes`): each becomes a `$ref` to the component enum
/// with the same values, or to a new component named after the field.
fn hoist_inline_enums(doc: &mut Value, ctx: &mut Ctx) {
    let mut state = Hoist {
        known: BTreeMap::new(),
        taken: BTreeSet::new(),
        created: BTreeMap::new(),
    };
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, schema) in schemas {
            state.taken.insert(name.clone());
            if let Some(mut values) = string_values(schema) {
                values.sort();
                state.known.entry(values).or_insert_with(|| name.clone());
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in schemas.iter_mut() {
            hoist_children(
                schema,
                name,
                &format!("components.schemas.{name}"),
                &mut state,
                ctx,
            );
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (key, value) in item.iter_mut() {
                let loc = format!("paths.{path}.{key}");
                if key == "parameters" {
                    hoist_params(value, "", &loc, &mut state, ctx);
                    continue;
                }
                if !METHODS.contains(&key.as_str()) {
                    continue;
                }
                let id = value["operationId"].as_str().unwrap_or(key).to_string();
                if let Some(params) = value.get_mut("parameters") {
                    hoist_params(params, &id, &format!("{loc}.parameters"), &mut state, ctx);
                }
                let mut bodies: Vec<(String, &mut Value)> = Vec::new();
                for (part, entry) in value.as_object_mut().into_iter().flatten() {
                    if part == "requestBody" {
                        bodies.push((format!("{loc}.requestBody"), entry));
                    } else if part == "responses" {
                        for (code, response) in entry.as_object_mut().into_iter().flatten() {
                            bodies.push((format!("{loc}.responses.{code}"), response));
                        }
                    }
                }
                for (bloc, holder) in bodies {
                    for (media, entry) in holder
                        .get_mut("content")
                        .and_then(Value::as_object_mut)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(schema) = entry.get_mut("schema") {
                            let sloc = format!("{bloc}.content.{media}.schema");
                            hoist_children(schema, &id, &sloc, &mut state, ctx);
                        }
                    }
                }
            }
        }
    }
    if state.created.is_empty() {
        return;
    }
    if let Some(root) = doc.as_object_mut() {
        let components = root.entry("components").or_insert_with(|| json!({}));
        if let Some(components) = components.as_object_mut() {
            let schemas = components.entry("schemas").or_insert_with(|| json!({}));
            if let Some(schemas) = schemas.as_object_mut() {
                schemas.extend(state.created);
            }
        }
    }
}

fn hoist_params(params: &mut Value, op: &str, loc: &str, state: &mut Hoist, ctx: &mut Ctx) {
    for (i, param) in params.as_array_mut().into_iter().flatten().enumerate() {
        let name = param["name"].as_str().unwrap_or("").to_string();
        if let Some(schema) = param.get_mut("schema") {
            let sloc = format!("{loc}[{i}].schema");
            hoist_one(schema, &name, op, &sloc, state, ctx);
        }
    }
}

/// Hoists the inline enums below `schema` (not `schema` itself).
fn hoist_children(schema: &mut Value, parent: &str, loc: &str, state: &mut Hoist, ctx: &mut Ctx) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for (name, child) in props.iter_mut() {
            let cloc = format!("{loc}.properties.{name}");
            hoist_one(child, name, parent, &cloc, state, ctx);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = map.get_mut(key).filter(|c| c.is_object()) {
            let cloc = format!("{loc}.{key}");
            hoist_one(child, parent, "", &cloc, state, ctx);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, child) in map
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .enumerate()
        {
            hoist_children(child, parent, &format!("{loc}.{key}[{i}]"), state, ctx);
        }
    }
}

/// `schema` is the value of field (or parameter) `field` of `parent`.
fn hoist_one(
    schema: &mut Value,
    field: &str,
    parent: &str,
    loc: &str,
    state: &mut Hoist,
    ctx: &mut Ctx,
) {
    // An enum inside a wrapper (`allOf: [{enum}]`, what a nullable or described inline enum
    // becomes) is the field's enum all the same.
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, part) in schema
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if string_values(part).is_some() {
                hoist_one(
                    part,
                    field,
                    parent,
                    &format!("{loc}.{key}[{i}]"),
                    state,
                    ctx,
                );
            }
        }
    }
    let Some(values) = string_values(schema) else {
        hoist_children(schema, &pascal_or(parent, field), loc, state, ctx);
        return;
    };
    let mut key = values.clone();
    key.sort();
    let name = match state.known.get(&key) {
        Some(name) => name.clone(),
        None => {
            let mut name = pascal(field);
            if name.is_empty() || state.taken.contains(&name) {
                name = format!("{}{}", pascal(parent), pascal(field));
            }
            let base = name.clone();
            let mut n = 2;
            while name.is_empty() || state.taken.contains(&name) {
                name = format!("{base}{n}");
                n += 1;
            }
            state.taken.insert(name.clone());
            state.known.insert(key, name.clone());
            state
                .created
                .insert(name.clone(), json!({ "type": "string", "enum": values }));
            name
        }
    };
    let reference = json!({ "$ref": format!("#/components/schemas/{name}") });
    let mut kept = serde_json::Map::new();
    for keyword in ["description", "nullable"] {
        if let Some(value) = schema.get(keyword) {
            kept.insert(keyword.into(), value.clone());
        }
    }
    *schema = if kept.is_empty() {
        reference
    } else {
        kept.insert("allOf".into(), json!([reference]));
        Value::Object(kept)
    };
    ctx.note(
        loc,
        format!(
            "inline string enum replaced by component `{name}` (generated as the open enum \
             crate::codes::{name})"
        ),
    );
}

fn pascal_or(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        pascal(field)
    } else {
        parent.to_string()
    }
}
