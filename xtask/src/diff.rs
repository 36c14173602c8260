//! Every difference between two specs, classified for a client built with this SDK.
//!
//! Both documents are normalized first ([`crate::normalize`]), so a raw upstream document and
//! our committed spec compare as the code generated from them would. `$ref`s are resolved:
//! renaming a schema is one `schema-renamed` change, not a change of every field using it.
//!
//! A change is `breaking` when code written against the old SDK may stop compiling or stop
//! working against the server: an operation, parameter, field or enum value a caller uses
//! disappears or changes type, or a caller must now send something new. The rules and their
//! severities are listed in [`RULES`].

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Value, json};

use crate::surface::{ref_name, security_text};

/// How a change affects callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Callers may break: a major version.
    Breaking,
    /// Existing callers keep working: a minor version.
    NonBreaking,
}

impl Severity {
    /// `breaking` or `non-breaking`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Breaking => "breaking",
            Severity::NonBreaking => "non-breaking",
        }
    }
}

/// One classified difference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// Breaking or not.
    pub severity: Severity,
    /// The rule id (see [`RULES`]).
    pub rule: &'static str,
    /// Where: `GET /orders`, `GET /orders parameter query status`, `Order.order_qty`, …
    pub location: String,
    /// What changed, and what to do about it where there is something to do.
    pub detail: String,
}

/// The rules: id, and when it applies with its severity.
pub const RULES: &[(&str, &str)] = &[
    (
        "operation-added",
        "non-breaking: a new method on rest::Client",
    ),
    ("operation-removed", "breaking: the method disappears"),
    (
        "operation-renamed",
        "breaking: the operationId, so the Rust method name, changed",
    ),
    (
        "security-changed",
        "breaking when the operation needs credentials it did not need (e.g. user credentials), otherwise non-breaking",
    ),
    (
        "parameter-added",
        "breaking when required (callers must now pass it), otherwise non-breaking",
    ),
    (
        "parameter-removed",
        "breaking: its builder setter disappears",
    ),
    (
        "parameter-required",
        "breaking: an optional parameter became required",
    ),
    (
        "parameter-optional",
        "non-breaking: a required parameter became optional",
    ),
    (
        "parameter-type-changed",
        "breaking: the parameter's type or format changed",
    ),
    (
        "request-body-added",
        "breaking when required, otherwise non-breaking",
    ),
    (
        "request-body-removed",
        "breaking: the body argument disappears",
    ),
    (
        "request-field-added",
        "breaking when required (callers must now send it), otherwise non-breaking",
    ),
    (
        "request-field-removed",
        "breaking: the struct field disappears",
    ),
    (
        "request-field-required",
        "breaking: a request field became required or stopped being nullable",
    ),
    (
        "request-field-optional",
        "non-breaking: a request field became optional or nullable",
    ),
    (
        "request-enum-value-added",
        "non-breaking: a new value callers may send",
    ),
    (
        "request-enum-value-removed",
        "breaking: the server no longer accepts a value callers may send",
    ),
    (
        "response-field-added",
        "non-breaking: unknown fields were already ignored; a new struct field",
    ),
    (
        "response-field-removed",
        "breaking: the struct field disappears (for a required field, code relying on its presence breaks too)",
    ),
    (
        "response-field-nullable",
        "breaking for a required field (its Rust type becomes Option<T>); non-breaking for an optional one",
    ),
    (
        "response-field-required",
        "non-breaking: an optional or nullable response field is now always present",
    ),
    (
        "response-enum-value-added",
        "non-breaking for this SDK: build.rs replaces every string enum with the open enum crate::codes::<Name>, which decodes an unknown value into its Unknown(String) fallback; add a named variant in src/codes.rs when callers need to match it",
    ),
    (
        "response-enum-value-removed",
        "non-breaking: the server no longer sends a value",
    ),
    (
        "type-changed",
        "breaking: a schema's type changed (e.g. string to integer, object to array)",
    ),
    (
        "format-changed",
        "breaking: a schema's format changed, so its Rust type may change (decimal, password, date-time, …)",
    ),
    ("schema-added", "non-breaking: a new type in rest::types"),
    (
        "enum-schema-added",
        "non-breaking for callers, but action needed: build.rs replaces every string enum with crate::codes::<Name>, so add a hand-written open enum of that name in src/codes.rs (crate::codes::open_enum!) or the build fails",
    ),
    (
        "schema-removed",
        "breaking: the type disappears from rest::types",
    ),
    (
        "schema-renamed",
        "breaking: the same schema under a new name, so the Rust type is renamed; its fields are compared through the $refs, not reported again",
    ),
];

fn rule_text(rule: &str) -> &'static str {
    RULES
        .iter()
        .chain(crate::names::RULES)
        .find(|(id, _)| *id == rule)
        .map(|(_, text)| *text)
        .unwrap_or("")
}

/// Compares two documents after normalizing both.
pub fn diff_documents(old: &Value, new: &Value) -> Vec<Change> {
    let old = crate::normalize::normalize(old).document;
    let new = crate::normalize::normalize(new).document;
    diff(&old, &new)
}

/// Compares two normalized documents. Sorted: breaking first, then by location.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut walker = Walker {
        old,
        new,
        changes: BTreeSet::new(),
        seen: HashSet::new(),
    };
    walker.operations();
    walker.components();
    walker.changes.into_iter().collect()
}

/// Whether any change is breaking.
pub fn has_breaking(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.severity == Severity::Breaking)
}

/// Human output, grouped by severity.
pub fn render_human(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "No differences in the API surface.\n".into();
    }
    let mut text = String::new();
    for (severity, title) in [
        (Severity::Breaking, "Breaking changes"),
        (Severity::NonBreaking, "Non-breaking changes"),
    ] {
        let group: Vec<&Change> = changes.iter().filter(|c| c.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        text.push_str(&format!("{title} ({}):\n", group.len()));
        for change in group {
            text.push_str(&format!(
                "  [{}] {}: {}\n",
                change.rule, change.location, change.detail
            ));
        }
    }
    let rules: BTreeSet<&str> = changes.iter().map(|c| c.rule).collect();
    text.push_str("\nRules:\n");
    for rule in rules {
        text.push_str(&format!("  {rule}: {}\n", rule_text(rule)));
    }
    text
}

/// `{"changes": [{"severity", "rule", "location", "detail"}]}`, pretty-printed.
pub fn render_json(changes: &[Change]) -> String {
    let list: Vec<Value> = changes
        .iter()
        .map(|c| {
            json!({
                "severity": c.severity.as_str(),
                "rule": c.rule,
                "location": c.location,
                "detail": c.detail,
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&json!({ "changes": list }))
        .unwrap_or_else(|_| unreachable!("a serde_json::Value always serializes"));
    text.push('\n');
    text
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Dir {
    Request,
    Response,
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

struct Op<'a> {
    path: &'a str,
    method: &'a str,
    item: &'a Value,
    op: &'a Value,
}

struct Walker<'a> {
    old: &'a Value,
    new: &'a Value,
    changes: BTreeSet<Change>,
    seen: HashSet<(String, String, Dir)>,
}

/// `/accounts/{account_id}` → `/accounts/{}`: a renamed path parameter is the same operation.
fn path_key(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

fn operations_of(doc: &Value) -> BTreeMap<String, Op<'_>> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                let key = format!("{} {}", method.to_uppercase(), path_key(path));
                out.insert(
                    key,
                    Op {
                        path,
                        method,
                        item,
                        op,
                    },
                );
            }
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> (&'a Value, Option<String>) {
    let mut current = value;
    let mut name = None;
    for _ in 0..16 {
        let Some(r) = current.get("$ref").and_then(Value::as_str) else {
            break;
        };
        match r.strip_prefix('#').and_then(|p| doc.pointer(p)) {
            Some(target) => {
                name = Some(ref_name(r).to_string());
                current = target;
            }
            None => break,
        }
    }
    (current, name)
}

/// A schema through a single-element `allOf` wrapper (how a described or nullable `$ref` is
/// written in OpenAPI 3.0).
fn unwrap_all_of(schema: &Value) -> &Value {
    match schema.get("allOf").and_then(Value::as_array) {
        Some(parts) if parts.len() == 1 => &parts[0],
        _ => schema,
    }
}

fn type_of(schema: &Value) -> String {
    if let Some(ty) = schema["type"].as_str() {
        return ty.to_string();
    }
    if schema.get("properties").is_some() {
        return "object".into();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if schema.get(key).is_some() {
            return key.into();
        }
    }
    String::new()
}

fn nullable(schema: &Value) -> bool {
    schema["nullable"] == true
}

fn required_set(schema: &Value) -> BTreeSet<String> {
    schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn enum_values(schema: &Value) -> Option<Vec<String>> {
    schema["enum"].as_array().map(|values| {
        values
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect()
    })
}

fn security_names(security: Option<&Value>) -> BTreeSet<String> {
    security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|req| {
            req.as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
        })
        .collect()
}

/// A schema with its documentation removed, to recognize a renamed schema.
fn without_docs(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "description" | "example" | "title"))
                .map(|(k, v)| (k.clone(), without_docs(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_docs).collect()),
        other => other.clone(),
    }
}

fn object_map(value: &Value) -> BTreeMap<&str, &Value> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

fn success_response(op: &Value) -> Option<(&String, &Value)> {
    op["responses"]
        .as_object()
        .and_then(|r| r.iter().find(|(code, _)| code.starts_with('2')))
}

fn json_schema(holder: &Value) -> Option<&Value> {
    let content = holder["content"].as_object()?;
    content
        .get("application/json")
        .or_else(|| content.values().next())
        .and_then(|media| media.get("schema"))
}

impl<'a> Walker<'a> {
    fn push(&mut self, severity: Severity, rule: &'static str, location: &str, detail: String) {
        self.changes.insert(Change {
            severity,
            rule,
            location: location.to_string(),
            detail,
        });
    }

    fn operations(&mut self) {
        let old_ops = operations_of(self.old);
        let new_ops = operations_of(self.new);
        for (key, old) in &old_ops {
            let loc = format!("{} {}", old.method.to_uppercase(), old.path);
            let Some(new) = new_ops.get(key) else {
                self.push(
                    Severity::Breaking,
                    "operation-removed",
                    &loc,
                    format!(
                        "operation `{}` removed",
                        old.op["operationId"].as_str().unwrap_or("?")
                    ),
                );
                continue;
            };
            let loc = format!("{} {}", new.method.to_uppercase(), new.path);
            self.operation(old, new, &loc);
        }
        for (key, new) in &new_ops {
            if !old_ops.contains_key(key) {
                let loc = format!("{} {}", new.method.to_uppercase(), new.path);
                self.push(
                    Severity::NonBreaking,
                    "operation-added",
                    &loc,
                    format!(
                        "operation `{}` added",
                        new.op["operationId"].as_str().unwrap_or("?")
                    ),
                );
            }
        }
    }

    fn operation(&mut self, old: &Op<'a>, new: &Op<'a>, loc: &str) {
        let (old_id, new_id) = (&old.op["operationId"], &new.op["operationId"]);
        if old_id != new_id {
            self.push(
                Severity::Breaking,
                "operation-renamed",
                loc,
                format!(
                    "operationId `{}` is now `{}`: the Rust method is renamed",
                    old_id.as_str().unwrap_or("?"),
                    new_id.as_str().unwrap_or("?")
                ),
            );
        }
        let old_security = old.op.get("security").or_else(|| self.old.get("security"));
        let new_security = new.op.get("security").or_else(|| self.new.get("security"));
        let (old_names, new_names) = (security_names(old_security), security_names(new_security));
        if security_text(old_security) != security_text(new_security) {
            let severity = if new_names.is_subset(&old_names) {
                Severity::NonBreaking
            } else {
                Severity::Breaking
            };
            self.push(
                severity,
                "security-changed",
                loc,
                format!(
                    "security {} is now {}",
                    security_text(old_security),
                    security_text(new_security)
                ),
            );
        }
        self.parameters(old, new, loc);
        // Request body.
        let old_body = old.op.get("requestBody").map(|b| resolve(self.old, b).0);
        let new_body = new.op.get("requestBody").map(|b| resolve(self.new, b).0);
        match (old_body, new_body) {
            (Some(_), None) => self.push(
                Severity::Breaking,
                "request-body-removed",
                loc,
                "the request body is gone".into(),
            ),
            (None, Some(body)) => {
                let required = body["required"] == true;
                self.push(
                    if required {
                        Severity::Breaking
                    } else {
                        Severity::NonBreaking
                    },
                    "request-body-added",
                    loc,
                    format!(
                        "{} request body added",
                        if required {
                            "a required"
                        } else {
                            "an optional"
                        }
                    ),
                );
            }
            (Some(o), Some(n)) => {
                if let (Some(os), Some(ns)) = (json_schema(o), json_schema(n)) {
                    self.schema(os, ns, Dir::Request, &format!("{loc} request"));
                }
            }
            (None, None) => {}
        }
        // Success response.
        let old_ok = success_response(old.op).map(|(_, r)| json_schema(resolve(self.old, r).0));
        let new_ok = success_response(new.op).map(|(_, r)| json_schema(resolve(self.new, r).0));
        match (old_ok.flatten(), new_ok.flatten()) {
            (Some(o), Some(n)) => self.schema(o, n, Dir::Response, &format!("{loc} response")),
            (None, Some(_)) => self.push(
                Severity::NonBreaking,
                "response-field-added",
                &format!("{loc} response"),
                "the success response now has a body".into(),
            ),
            (Some(_), None) => self.push(
                Severity::Breaking,
                "type-changed",
                &format!("{loc} response"),
                "the success response no longer has a body".into(),
            ),
            (None, None) => {}
        }
        // Error body.
        let error = |doc: &'a Value, op: &'a Value| {
            op["responses"]
                .as_object()
                .and_then(|r| {
                    r.iter()
                        .find(|(code, _)| code.starts_with('4') || code.starts_with('5'))
                })
                .and_then(|(_, r)| json_schema(resolve(doc, r).0))
        };
        if let (Some(o), Some(n)) = (error(self.old, old.op), error(self.new, new.op)) {
            self.schema(o, n, Dir::Response, &format!("{loc} error"));
        }
    }

    fn params_of(doc: &'a Value, op: &Op<'a>) -> BTreeMap<(String, String), &'a Value> {
        let mut out = BTreeMap::new();
        for list in [op.item.get("parameters"), op.op.get("parameters")]
            .into_iter()
            .flatten()
        {
            for param in list.as_array().into_iter().flatten() {
                let param = resolve(doc, param).0;
                let key = (
                    param["in"].as_str().unwrap_or("?").to_string(),
                    param["name"].as_str().unwrap_or("?").to_string(),
                );
                out.insert(key, param);
            }
        }
        out
    }

    fn parameters(&mut self, old: &Op<'a>, new: &Op<'a>, loc: &str) {
        let old_params = Self::params_of(self.old, old);
        let mut new_params = Self::params_of(self.new, new);
        for ((location, name), old_param) in &old_params {
            let ploc = format!("{loc} parameter {location} {name}");
            let Some(new_param) = new_params.remove(&(location.clone(), name.clone())) else {
                if location == "path" {
                    // Path parameters are positional: a rename changes only an argument name.
                    continue;
                }
                self.push(
                    Severity::Breaking,
                    "parameter-removed",
                    &ploc,
                    format!("{location} parameter `{name}` removed"),
                );
                continue;
            };
            let (old_req, new_req) = (old_param["required"] == true, new_param["required"] == true);
            if !old_req && new_req {
                self.push(
                    Severity::Breaking,
                    "parameter-required",
                    &ploc,
                    format!("`{name}` became required"),
                );
            } else if old_req && !new_req {
                self.push(
                    Severity::NonBreaking,
                    "parameter-optional",
                    &ploc,
                    format!("`{name}` became optional"),
                );
            }
            let (os, ns) = (&old_param["schema"], &new_param["schema"]);
            let (or, nr) = (
                resolve(self.old, unwrap_all_of(os)).0,
                resolve(self.new, unwrap_all_of(ns)).0,
            );
            let (ot, nt) = (
                format!("{}({})", type_of(or), or["format"].as_str().unwrap_or("")),
                format!("{}({})", type_of(nr), nr["format"].as_str().unwrap_or("")),
            );
            if ot != nt {
                self.push(
                    Severity::Breaking,
                    "parameter-type-changed",
                    &ploc,
                    format!(
                        "`{name}` was {}, is now {}",
                        ot.trim_end_matches("()"),
                        nt.trim_end_matches("()")
                    ),
                );
            } else {
                self.schema(os, ns, Dir::Request, &ploc);
            }
        }
        for ((location, name), new_param) in new_params {
            if location == "path" {
                continue;
            }
            let ploc = format!("{loc} parameter {location} {name}");
            let required = new_param["required"] == true;
            self.push(
                if required {
                    Severity::Breaking
                } else {
                    Severity::NonBreaking
                },
                "parameter-added",
                &ploc,
                format!(
                    "{} {location} parameter `{name}` added",
                    if required { "required" } else { "optional" }
                ),
            );
        }
    }

    fn schema(&mut self, old: &'a Value, new: &'a Value, dir: Dir, loc: &str) {
        let (o, old_name) = resolve(self.old, unwrap_all_of(old));
        let (n, new_name) = resolve(self.new, unwrap_all_of(new));
        let mut loc = loc.to_string();
        if let (Some(a), Some(b)) = (&old_name, &new_name) {
            if !self.seen.insert((a.clone(), b.clone(), dir)) {
                return;
            }
            loc = b.clone();
        }
        let (ot, nt) = (type_of(o), type_of(n));
        if ot != nt && !ot.is_empty() && !nt.is_empty() {
            self.push(
                Severity::Breaking,
                "type-changed",
                &loc,
                format!("type {ot} is now {nt}"),
            );
            return;
        }
        let (of, nf) = (o["format"].as_str(), n["format"].as_str());
        if of != nf {
            self.push(
                Severity::Breaking,
                "format-changed",
                &loc,
                format!(
                    "format {} is now {}",
                    of.unwrap_or("(none)"),
                    nf.unwrap_or("(none)")
                ),
            );
        }
        self.enums(o, n, dir, &loc);
        if ot == "array" {
            self.schema(&o["items"], &n["items"], dir, &format!("{loc}[]"));
        }
        if let (Some(oa), Some(na)) = (
            o.get("additionalProperties").filter(|v| v.is_object()),
            n.get("additionalProperties").filter(|v| v.is_object()),
        ) {
            self.schema(oa, na, dir, &format!("{loc}{{}}"));
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let (Some(oa), Some(na)) = (o[key].as_array(), n[key].as_array()) {
                if oa.len() != na.len() {
                    self.push(
                        Severity::Breaking,
                        "type-changed",
                        &loc,
                        format!("{key} had {} alternatives, now {}", oa.len(), na.len()),
                    );
                }
                for (i, (a, b)) in oa.iter().zip(na).enumerate() {
                    self.schema(a, b, dir, &format!("{loc} {key}[{i}]"));
                }
            }
        }
        self.properties(o, n, dir, &loc);
    }

    fn enums(&mut self, o: &Value, n: &Value, dir: Dir, loc: &str) {
        let (Some(old_values), Some(new_values)) = (enum_values(o), enum_values(n)) else {
            return;
        };
        for value in old_values.iter().filter(|v| !new_values.contains(v)) {
            match dir {
                Dir::Request => self.push(
                    Severity::Breaking,
                    "request-enum-value-removed",
                    loc,
                    format!("value `{value}` removed: the server refuses it now"),
                ),
                Dir::Response => self.push(
                    Severity::NonBreaking,
                    "response-enum-value-removed",
                    loc,
                    format!("value `{value}` removed: the server no longer sends it"),
                ),
            }
        }
        for value in new_values.iter().filter(|v| !old_values.contains(v)) {
            match dir {
                Dir::Request => self.push(
                    Severity::NonBreaking,
                    "request-enum-value-added",
                    loc,
                    format!("value `{value}` added"),
                ),
                Dir::Response => self.push(
                    Severity::NonBreaking,
                    "response-enum-value-added",
                    loc,
                    format!(
                        "value `{value}` added: decodes into the open enum's Unknown(String) \
                         fallback until src/codes.rs names it"
                    ),
                ),
            }
        }
    }

    fn properties(&mut self, o: &'a Value, n: &'a Value, dir: Dir, loc: &str) {
        let old_props = object_map(&o["properties"]);
        let new_props = object_map(&n["properties"]);
        let (old_req, new_req) = (required_set(o), required_set(n));
        for (&name, &old_field) in &old_props {
            let floc = format!("{loc}.{name}");
            let was_required = old_req.contains(name);
            let Some(new_field) = new_props.get(name) else {
                let (rule, detail) = match dir {
                    Dir::Request => ("request-field-removed", "request field removed".to_string()),
                    Dir::Response => (
                        "response-field-removed",
                        format!(
                            "{} response field removed",
                            if was_required { "required" } else { "optional" }
                        ),
                    ),
                };
                self.push(Severity::Breaking, rule, &floc, detail);
                continue;
            };
            let is_required = new_req.contains(name);
            let (was_nullable, is_nullable) = (nullable(old_field), nullable(new_field));
            let was_option = !was_required || was_nullable;
            let is_option = !is_required || is_nullable;
            match dir {
                Dir::Request => {
                    if !was_required && is_required {
                        self.push(
                            Severity::Breaking,
                            "request-field-required",
                            &floc,
                            "became required: callers must now send it".into(),
                        );
                    } else if was_nullable && !is_nullable {
                        self.push(
                            Severity::Breaking,
                            "request-field-required",
                            &floc,
                            "no longer nullable".into(),
                        );
                    }
                    if (was_required && !is_required) || (!was_nullable && is_nullable) {
                        self.push(
                            Severity::NonBreaking,
                            "request-field-optional",
                            &floc,
                            if was_required && !is_required {
                                "became optional".into()
                            } else {
                                "became nullable".into()
                            },
                        );
                    }
                }
                Dir::Response => {
                    if !was_option && is_option {
                        self.push(
                            Severity::Breaking,
                            "response-field-nullable",
                            &floc,
                            "a required field may now be absent or null: its Rust type becomes \
                             Option<T>"
                                .into(),
                        );
                    } else if was_option && !is_option {
                        self.push(
                            Severity::NonBreaking,
                            "response-field-required",
                            &floc,
                            "now always present".into(),
                        );
                    } else if !was_nullable && is_nullable {
                        self.push(
                            Severity::NonBreaking,
                            "response-field-nullable",
                            &floc,
                            "an optional field may now be null (already an Option)".into(),
                        );
                    }
                }
            }
            self.schema(old_field, new_field, dir, &floc);
        }
        for (&name, &new_field) in &new_props {
            if old_props.contains_key(name) {
                continue;
            }
            let floc = format!("{loc}.{name}");
            let required = new_req.contains(name) && !nullable(new_field);
            match dir {
                Dir::Request => self.push(
                    if new_req.contains(name) {
                        Severity::Breaking
                    } else {
                        Severity::NonBreaking
                    },
                    "request-field-added",
                    &floc,
                    if new_req.contains(name) {
                        "required request field added: callers must now send it".into()
                    } else {
                        "optional request field added".into()
                    },
                ),
                Dir::Response => self.push(
                    Severity::NonBreaking,
                    "response-field-added",
                    &floc,
                    format!(
                        "{} response field added",
                        if required { "required" } else { "optional" }
                    ),
                ),
            }
        }
    }

    fn components(&mut self) {
        let old_schemas = object_map(&self.old["components"]["schemas"]);
        let new_schemas = object_map(&self.new["components"]["schemas"]);
        let mut removed: Vec<&str> = old_schemas
            .keys()
            .copied()
            .filter(|k| !new_schemas.contains_key(k))
            .collect();
        let mut added: Vec<&str> = new_schemas
            .keys()
            .copied()
            .filter(|k| !old_schemas.contains_key(k))
            .collect();
        // Renames: a removed and an added schema with the same content.
        let mut renamed = Vec::new();
        for old_name in &removed {
            let content = without_docs(old_schemas[old_name]);
            if let Some(pos) = added
                .iter()
                .position(|a| without_docs(new_schemas[a]) == content)
            {
                renamed.push((old_name.to_string(), added.remove(pos).to_string()));
            }
        }
        removed.retain(|r| !renamed.iter().any(|(o, _)| o == *r));
        for (old_name, new_name) in renamed {
            let module = if new_schemas[new_name.as_str()].get("enum").is_some() {
                "crate::codes"
            } else {
                "rest::types"
            };
            let (old_path, new_path) = (
                format!("{module}::{old_name}"),
                format!("{module}::{new_name}"),
            );
            self.push(
                Severity::Breaking,
                "schema-renamed",
                &new_name,
                format!("schema `{old_name}` renamed `{new_name}`: the Rust type {old_path} is now {new_path}"),
            );
        }
        for name in removed {
            let schema = old_schemas[name];
            if schema.get("enum").is_some() && schema["type"] == "string" {
                self.push(
                    Severity::NonBreaking,
                    "schema-removed",
                    name,
                    format!(
                        "string enum `{name}` removed: the open enum crate::codes::{name} stays in \
                         src/codes.rs (fields that used it are reported on their own)"
                    ),
                );
            } else {
                self.push(
                    Severity::Breaking,
                    "schema-removed",
                    name,
                    format!("schema `{name}` removed: rest::types::{name} disappears"),
                );
            }
        }
        for name in added {
            let schema = new_schemas[name];
            if schema.get("enum").is_some() && schema["type"] == "string" {
                self.push(
                    Severity::NonBreaking,
                    "enum-schema-added",
                    name,
                    format!(
                        "new string enum `{name}`: add a hand-written open enum `{name}` in \
                         src/codes.rs (build.rs maps it to crate::codes::{name}; the build fails \
                         until it exists)"
                    ),
                );
            } else {
                self.push(
                    Severity::NonBreaking,
                    "schema-added",
                    name,
                    format!("schema `{name}` added"),
                );
            }
        }
        // Schemas kept under the same name but not reached from any operation.
        for (name, old_schema) in old_schemas {
            if let Some(new_schema) = new_schemas.get(name) {
                let reached = self.seen.iter().any(|(_, b, _)| b == name);
                if !reached {
                    self.schema(old_schema, new_schema, Dir::Response, name);
                }
            }
        }
    }
}
