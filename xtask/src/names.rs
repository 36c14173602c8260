//! Our stable names over upstream's: `spec/names.toml`, applied by `spec refresh`.
//!
//! Upstream names its operations, schemas and enums as it likes; the SDK's public API is named
//! after ours. After normalization, [`apply`] renames:
//! - operations, matched by method and path (path parameter names ignored, then renamed to ours
//!   by position), to the operationIds of `[operations]`;
//! - component schemas, matched by role (`POST /orders request`, `GET /positions response[]`,
//!   `Order.fills[]`, `error`, or upstream's name), then by identity with a schema of the
//!   previous spec, then by shape (field names) against the previous spec, to `[schemas]`;
//! - component string enums, matched by their set of values, to `[enums]` (or the previous
//!   spec's enums);
//! - `apiKey` header security schemes, matched by their header, to the previous spec's names.
//!
//! Upstream's names are kept as metadata where they disturb nothing: `x-upstream-operation-id`
//! on operations, `x-upstream-name` on renamed path parameters and on object and enum schemas
//! (never on a `format` string schema, where an `x-` key would stop progenitor's type conversion
//! from matching).
//!
//! Then [`keep_missing`] keeps what the previous spec had and upstream lacks: a field becomes an
//! optional field listed in its schema's `x-kept-fields` (`build.rs` marks it `#[deprecated]`),
//! a whole schema stays with `x-kept: true`. The Rust API loses nothing until the next major.
//!
//! Every rename absorbed, every name not placed (with the exact line to add to the naming file)
//! and everything kept is reported as a [`Change`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::{
    Error,
    diff::{Change, Severity, path_key},
};

/// The naming file, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// `METHOD /path` (as written) → our operationId.
    pub operations: Vec<(String, String)>,
    /// Role (or upstream name) → our schema name.
    pub schemas: Vec<(String, String)>,
    /// Our enum name → its values.
    pub enums: Vec<(String, Vec<String>)>,
    /// `METHOD /path` → the schema its success response keeps (decoded by a hand-written type
    /// that accepts every shape).
    pub responses: Vec<(String, String)>,
    /// `Schema.field` (our names) → why it stays optional whatever upstream's `required` says
    /// (see [`keep_optional`]).
    pub optional: Vec<(String, String)>,
}

/// The naming file of the repository (found from the current directory up).
pub fn default_path() -> Result<std::path::PathBuf, Error> {
    Ok(crate::workspace_root()?.join("spec/names.toml"))
}

impl Names {
    /// Parses the text of a naming file.
    pub fn parse(text: &str, source_name: &str) -> Result<Names, Error> {
        let invalid = |message: String| Error::Invalid {
            source_name: source_name.to_string(),
            message,
        };
        let doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| invalid(e.to_string()))?;
        let mut names = Names::default();
        for (section, item) in doc.iter() {
            let Some(table) = item.as_table_like() else {
                return Err(invalid(format!("`{section}` is not a table")));
            };
            for (key, value) in table.iter() {
                match section {
                    "operations" | "schemas" | "responses" | "optional" => {
                        let Some(name) = value.as_str() else {
                            return Err(invalid(format!(
                                "[{section}] \"{key}\": the value must be a string ({})",
                                if section == "optional" {
                                    "why it stays optional"
                                } else {
                                    "our name"
                                }
                            )));
                        };
                        if section == "optional"
                            && !key
                                .split_once('.')
                                .is_some_and(|(s, f)| !s.is_empty() && !f.is_empty())
                        {
                            return Err(invalid(format!(
                                "[optional] \"{key}\": the key must be \"Schema.field\" (our names)"
                            )));
                        }
                        let list = match section {
                            "operations" => &mut names.operations,
                            "schemas" => &mut names.schemas,
                            "optional" => &mut names.optional,
                            _ => &mut names.responses,
                        };
                        list.push((key.to_string(), name.to_string()));
                    }
                    "enums" => {
                        let values: Option<Vec<String>> = value
                            .as_array()
                            .map(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect())
                            .unwrap_or(None);
                        let Some(values) = values else {
                            return Err(invalid(format!(
                                "[enums] {key}: the value must be an array of strings (the values)"
                            )));
                        };
                        names.enums.push((key.to_string(), values));
                    }
                    other => {
                        return Err(invalid(format!(
                            "unknown section [{other}] (expected operations, schemas, enums, \
                             responses, optional)"
                        )));
                    }
                }
            }
        }
        Ok(names)
    }

    /// Reads a naming file; a missing file is an empty mapping.
    pub fn read(path: &std::path::Path) -> Result<Names, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Names::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Names::default()),
            Err(source) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn operation(&self, method: &str, path: &str) -> Option<&(String, String)> {
        let key = op_key(method, path);
        self.operations.iter().find(|(k, _)| {
            k.split_once(' ')
                .is_some_and(|(m, p)| op_key(m, p.trim()) == key)
        })
    }

    fn schema_for_role(&self, role: &str) -> Option<&str> {
        let role = canonical_role(role);
        self.schemas
            .iter()
            .find(|(k, _)| canonical_role(k) == role)
            .map(|(_, v)| v.as_str())
    }
}

/// The rules of the naming changes (see [`crate::diff::RULES`] for the others).
pub const RULES: &[(&str, &str)] = &[
    (
        "name-absorbed",
        "non-breaking: upstream names this differently; spec/names.toml maps it to our name, so the Rust API keeps its name",
    ),
    (
        "name-unplaced",
        "non-breaking by itself, but read it: an upstream name spec/names.toml does not place; if it is one of ours, add the line shown (otherwise it is new and keeps upstream's name)",
    ),
    (
        "field-kept",
        "non-breaking: upstream lacks a field we had; it stays in the Rust type as an optional, #[deprecated] field (always absent): remove at the next major",
    ),
    (
        "parameter-kept",
        "non-breaking: upstream lacks an optional query parameter we had; its builder setter stays, #[deprecated] (the server ignores it): remove at the next major",
    ),
    (
        "response-kept",
        "non-breaking: upstream documents another shape for a response spec/names.toml [responses] pins; the hand-written type it names decodes both",
    ),
    (
        "field-kept-optional",
        "non-breaking: upstream requires a field spec/names.toml [optional] keeps optional (lenient: it still decodes when present, and a response without it still decodes, with its previous default if it had one)",
    ),
    (
        "schema-kept",
        "non-breaking: upstream lacks a schema we had; its Rust type stays, #[deprecated]: remove at the next major",
    ),
];

fn op_key(method: &str, path: &str) -> String {
    format!("{} {}", method.to_uppercase(), path_key(path))
}

fn path_params(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

/// A role with its path (if any) in `path_key` form and single spaces.
fn canonical_role(role: &str) -> String {
    let parts: Vec<&str> = role.split_whitespace().collect();
    match parts.as_slice() {
        [method, path, rest @ ..] if path.starts_with('/') => {
            let mut out = op_key(method, path);
            for part in rest {
                out.push(' ');
                out.push_str(part);
            }
            out
        }
        _ => parts.join(" "),
    }
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "options", "head", "trace",
];

fn ref_target(schema: &Value) -> Option<&str> {
    let schema = match schema.get("allOf").and_then(Value::as_array) {
        Some(parts) if parts.len() == 1 => &parts[0],
        _ => schema,
    };
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

/// `(role suffix, referenced name)`: `"" → X` for a `$ref`, `"[]" → X` for an array of them.
fn role_target(schema: &Value) -> Option<(&'static str, &str)> {
    if let Some(name) = ref_target(schema) {
        return Some(("", name));
    }
    if schema.get("type").and_then(Value::as_str) == Some("array") {
        return ref_target(&schema["items"]).map(|name| ("[]", name));
    }
    None
}

fn json_body(holder: &Value) -> Option<&Value> {
    let content = holder.get("content")?.as_object()?;
    content
        .get("application/json")
        .or_else(|| content.values().next())?
        .get("schema")
}

fn string_enum(schema: &Value) -> Option<Vec<String>> {
    if schema.get("type").and_then(Value::as_str) != Some("string") {
        return None;
    }
    schema
        .get("enum")?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn property_names(schema: &Value) -> BTreeSet<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

fn change(severity: Severity, rule: &'static str, location: &str, detail: String) -> Change {
    Change {
        severity,
        rule,
        location: location.to_string(),
        detail,
    }
}

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// A method name for an operation upstream names `id` (framework ids such as
/// `place_order_orders_post` lose their path-and-method suffix), or one derived from the path.
fn suggested_operation_id(id: &str, method: &str, path: &str) -> String {
    let mut suffix = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        suffix.push('_');
        suffix.push_str(
            &segment
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect::<String>(),
        );
    }
    suffix.push('_');
    suffix.push_str(method);
    let snake = snake_case(id);
    let suffix = suffix.replace("__", "_");
    let trimmed = snake.strip_suffix(&suffix).unwrap_or(&snake);
    if trimmed.is_empty() {
        snake
    } else {
        trimmed.trim_end_matches('_').to_string()
    }
}

fn snake_case(text: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            previous_lower = true;
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    out.trim_end_matches('_').to_string()
}

/// Applies `names` to the normalized upstream document `doc`; `previous` is the previous
/// (normalized) spec. Returns what was absorbed and what could not be placed.
pub fn apply(doc: &mut Value, names: &Names, previous: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    operations(doc, names, &mut changes);
    security_schemes(doc, previous, &mut changes);
    let renames = schema_renames(doc, names, previous, &mut changes);
    rename_schemas(doc, &renames);
    // A rename the previous refresh absorbed already is not news.
    let mut known = BTreeSet::new();
    recorded_names(previous, &mut known);
    changes.retain(|c| {
        c.rule != "name-absorbed"
            || !known
                .iter()
                .any(|(upstream, ours)| c.detail.contains(&format!("`{upstream}` is our `{ours}`")))
    });
    changes
}

/// `(upstream name, our name)` pairs recorded in a spec by a previous refresh.
fn recorded_names(value: &Value, out: &mut BTreeSet<(String, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(upstream) = map.get("x-upstream-operation-id").and_then(Value::as_str)
                && let Some(ours) = map.get("operationId").and_then(Value::as_str)
            {
                out.insert((upstream.to_string(), ours.to_string()));
            }
            if let Some(upstream) = map.get("x-upstream-name").and_then(Value::as_str)
                && let Some(ours) = map.get("name").and_then(Value::as_str)
            {
                out.insert((upstream.to_string(), ours.to_string()));
            }
            for (key, child) in map {
                if let Some(upstream) = child.get("x-upstream-name").and_then(Value::as_str) {
                    out.insert((upstream.to_string(), key.clone()));
                }
                recorded_names(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| recorded_names(v, out)),
        _ => {}
    }
}

fn operations(doc: &mut Value, names: &Names, changes: &mut Vec<Change>) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    // Path templates renamed to ours, so path parameters keep our names.
    let mut moves: Vec<(String, String)> = Vec::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut unplaced: Vec<(String, String, String)> = Vec::new();
    for (path, item) in paths.iter_mut() {
        let mut our_path: Option<String> = None;
        for method in METHODS {
            let Some(op) = item.get_mut(*method).and_then(Value::as_object_mut) else {
                continue;
            };
            let upstream_id = op
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let location = format!("{} {path}", method.to_uppercase());
            match names.operation(method, path) {
                Some((key, ours)) => {
                    if let Some((_, p)) = key.split_once(' ') {
                        our_path = Some(p.trim().to_string());
                    }
                    taken.insert(ours.clone());
                    if upstream_id != *ours {
                        op.insert("x-upstream-operation-id".into(), json!(upstream_id));
                        op.insert("operationId".into(), json!(ours));
                        changes.push(change(
                            Severity::NonBreaking,
                            "name-absorbed",
                            &location,
                            format!("upstream operation `{upstream_id}` is our `{ours}`"),
                        ));
                    }
                }
                None => unplaced.push((location, method.to_string(), path.clone())),
            }
        }
        let Some(our_path) = our_path else {
            continue;
        };
        let (theirs, ours) = (path_params(path), path_params(&our_path));
        if theirs == ours || theirs.len() != ours.len() {
            continue;
        }
        let renames: BTreeMap<&str, &str> = theirs
            .iter()
            .map(String::as_str)
            .zip(ours.iter().map(String::as_str))
            .collect();
        rename_path_parameters(item, &renames);
        for (t, o) in &renames {
            if t != o {
                changes.push(change(
                    Severity::NonBreaking,
                    "name-absorbed",
                    path,
                    format!("upstream path parameter `{t}` is our `{o}`"),
                ));
            }
        }
        let mut new_path = path.clone();
        for (t, o) in &renames {
            new_path = new_path.replace(&format!("{{{t}}}"), &format!("{{{o}}}"));
        }
        moves.push((path.clone(), new_path));
    }
    // Operations we do not name keep upstream's id, unless it is one of ours.
    for (location, method, path) in unplaced {
        let Some(op) = paths
            .get_mut(&path)
            .and_then(|item| item.get_mut(&method))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let upstream_id = op
            .get("operationId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let suggestion = suggested_operation_id(&upstream_id, &method, &path);
        let mut detail = format!(
            "operation `{upstream_id}` is not in spec/names.toml: it keeps upstream's name. To \
             name it, add under [operations]: \"{} {path}\" = \"{suggestion}\"",
            method.to_uppercase()
        );
        if taken.contains(&upstream_id) {
            let mut n = 2;
            let mut id = format!("{upstream_id}_upstream");
            while taken.contains(&id) {
                id = format!("{upstream_id}_upstream{n}");
                n += 1;
            }
            op.insert("x-upstream-operation-id".into(), json!(upstream_id));
            op.insert("operationId".into(), json!(id));
            detail.push_str(&format!(
                " (renamed `{id}` meanwhile: `{upstream_id}` is one of our names)"
            ));
        }
        changes.push(change(
            Severity::NonBreaking,
            "name-unplaced",
            &location,
            detail,
        ));
    }
    for (from, to) in moves {
        if paths.contains_key(&to) {
            continue;
        }
        if let Some(item) = paths.remove(&from) {
            paths.insert(to, item);
        }
    }
}

/// `apiKey` header schemes: header (lower case) → scheme name.
fn header_schemes(doc: &Value) -> BTreeMap<String, String> {
    doc.pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, scheme)| scheme["type"] == "apiKey" && scheme["in"] == "header")
        .filter_map(|(name, scheme)| {
            scheme["name"]
                .as_str()
                .map(|header| (header.to_ascii_lowercase(), name.clone()))
        })
        .collect()
}

/// Security schemes take the names the previous spec gave the same headers (`UserId` defining
/// `user-id` is our `user_id`), in `securitySchemes` and in every `security` requirement:
/// scheme names are not in the Rust API, but the diff compares requirements by name.
fn security_schemes(doc: &mut Value, previous: &Value, changes: &mut Vec<Change>) {
    let ours = header_schemes(previous);
    let theirs = header_schemes(doc);
    let taken: BTreeSet<String> = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    let renames: BTreeMap<String, String> = theirs
        .iter()
        .filter_map(|(header, upstream)| {
            let our = ours.get(header)?;
            (our != upstream && !taken.contains(our)).then(|| (upstream.clone(), our.clone()))
        })
        .collect();
    if renames.is_empty() {
        return;
    }
    if let Some(schemes) = doc
        .pointer_mut("/components/securitySchemes")
        .and_then(Value::as_object_mut)
    {
        for (upstream, our) in &renames {
            if let Some(mut scheme) = schemes.remove(upstream) {
                scheme["x-upstream-name"] = json!(upstream);
                let header = scheme["name"].as_str().unwrap_or_default().to_string();
                schemes.insert(our.clone(), scheme);
                changes.push(change(
                    Severity::NonBreaking,
                    "name-absorbed",
                    &format!("security {our}"),
                    format!(
                        "upstream security scheme `{upstream}` is our `{our}` (header `{header}`)"
                    ),
                ));
            }
        }
    }
    let rename_requirements = |security: &mut Value| {
        for requirement in security.as_array_mut().into_iter().flatten() {
            if let Some(map) = requirement.as_object_mut() {
                let renamed: serde_json::Map<String, Value> = std::mem::take(map)
                    .into_iter()
                    .map(|(name, scopes)| (renames.get(&name).cloned().unwrap_or(name), scopes))
                    .collect();
                *map = renamed;
            }
        }
    };
    if let Some(security) = doc.get_mut("security") {
        rename_requirements(security);
    }
    for item in doc
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
    {
        for method in METHODS {
            if let Some(security) = item.get_mut(*method).and_then(|op| op.get_mut("security")) {
                rename_requirements(security);
            }
        }
    }
}

fn rename_path_parameters(item: &mut Value, renames: &BTreeMap<&str, &str>) {
    let mut lists: Vec<&mut Value> = Vec::new();
    let Some(map) = item.as_object_mut() else {
        return;
    };
    for (key, value) in map.iter_mut() {
        if key == "parameters" {
            lists.push(value);
        } else if METHODS.contains(&key.as_str())
            && let Some(params) = value.get_mut("parameters")
        {
            lists.push(params);
        }
    }
    for list in lists {
        for param in list.as_array_mut().into_iter().flatten() {
            if param["in"] != "path" {
                continue;
            }
            let Some(name) = param["name"].as_str() else {
                continue;
            };
            if let Some(ours) = renames.get(name).filter(|o| **o != name) {
                param["x-upstream-name"] = json!(name);
                param["name"] = json!(ours);
            }
        }
    }
}

/// Upstream component name → ours.
fn schema_renames(
    doc: &Value,
    names: &Names,
    previous: &Value,
    changes: &mut Vec<Change>,
) -> BTreeMap<String, String> {
    let empty = serde_json::Map::new();
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let previous_schemas = previous
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    // Upstream name → (our name, how it was placed).
    let mut placed: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut targets: BTreeSet<String> = BTreeSet::new();
    let mut place = |upstream: &str,
                     ours: &str,
                     how: String,
                     placed: &mut BTreeMap<String, (String, String)>| {
        if placed.contains_key(upstream)
            || targets.contains(ours)
            || !schemas.contains_key(upstream)
        {
            return false;
        }
        targets.insert(ours.to_string());
        placed.insert(upstream.to_string(), (ours.to_string(), how));
        true
    };

    // 1. Enums, by their values.
    let mut candidates: Vec<(String, BTreeSet<String>)> = names
        .enums
        .iter()
        .map(|(n, v)| (n.clone(), v.iter().cloned().collect()))
        .collect();
    for (name, schema) in previous_schemas {
        if let Some(values) = string_enum(schema)
            && !candidates.iter().any(|(n, _)| n == name)
        {
            candidates.push((name.clone(), values.into_iter().collect()));
        }
    }
    let mut pairs: Vec<(f64, String, String)> = Vec::new();
    for (upstream, schema) in schemas {
        let Some(values) = string_enum(schema) else {
            continue;
        };
        let values: BTreeSet<String> = values.into_iter().collect();
        for (ours, known) in &candidates {
            let shared = values.intersection(known).count();
            if shared * 2 >= values.len() && shared > 0 {
                pairs.push((jaccard(&values, known), upstream.clone(), ours.clone()));
            }
        }
    }
    pairs.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| (a.1 == a.2).cmp(&(b.1 == b.2)).reverse())
            .then_with(|| a.1.cmp(&b.1))
            .then_with(|| a.2.cmp(&b.2))
    });
    for (score, upstream, ours) in pairs {
        let how = if score >= 1.0 {
            "by its values".to_string()
        } else {
            format!("by its values ({:.0}% shared)", score * 100.0)
        };
        place(&upstream, &ours, how, &mut placed);
    }

    // 2. Roles of operations.
    let mut roles: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let key = op_key(method, path);
            if let Some(body) = op.get("requestBody").and_then(json_body)
                && let Some((suffix, name)) = role_target(body)
            {
                roles.push((format!("{key} request{suffix}"), name.to_string()));
            }
            for (code, response) in op["responses"].as_object().into_iter().flatten() {
                let Some(body) = json_body(response) else {
                    continue;
                };
                let Some((suffix, name)) = role_target(body) else {
                    continue;
                };
                if code.starts_with('2') {
                    roles.push((format!("{key} response{suffix}"), name.to_string()));
                } else if suffix.is_empty() {
                    roles.push(("error".to_string(), name.to_string()));
                }
            }
        }
    }
    for (role, upstream) in &roles {
        if let Some(ours) = names.schema_for_role(role) {
            place(upstream, ours, format!("as `{role}`"), &mut placed);
        }
    }
    // 3. Upstream names written in the file.
    for upstream in schemas.keys() {
        if let Some(ours) = names.schema_for_role(upstream) {
            place(upstream, ours, "by upstream's name".into(), &mut placed);
        }
    }
    // 4. Fields of placed schemas, until nothing new is placed.
    loop {
        let mut found: Vec<(String, String, String)> = Vec::new();
        for (upstream, (ours, _)) in &placed {
            for (field, schema) in schemas[upstream.as_str()]["properties"]
                .as_object()
                .into_iter()
                .flatten()
            {
                if let Some((suffix, name)) = role_target(schema) {
                    let role = format!("{ours}.{field}{suffix}");
                    if let Some(target) = names.schema_for_role(&role) {
                        found.push((name.to_string(), target.to_string(), role.clone()));
                    }
                    roles.push((role, name.to_string()));
                }
            }
        }
        let mut progress = false;
        for (upstream, ours, role) in found {
            progress |= place(&upstream, &ours, format!("as `{role}`"), &mut placed);
        }
        if !progress {
            break;
        }
    }
    // 5. Identity, then shape, against the previous spec.
    for upstream in schemas.keys() {
        if previous_schemas.contains_key(upstream) {
            place(upstream, upstream, String::new(), &mut placed);
        }
    }
    let mut shape_pairs: Vec<(f64, String, String)> = Vec::new();
    for (upstream, schema) in schemas {
        if placed.contains_key(upstream) || string_enum(schema).is_some() {
            continue;
        }
        let fields = property_names(schema);
        for (ours, old) in previous_schemas {
            let score = jaccard(&fields, &property_names(old));
            if score >= 0.5 {
                shape_pairs.push((score, upstream.clone(), ours.clone()));
            }
        }
    }
    shape_pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (score, upstream, ours) in shape_pairs {
        let how = format!(
            "by shape ({:.0}% of the field names shared with the previous spec's `{ours}`)",
            score * 100.0
        );
        place(&upstream, &ours, how, &mut placed);
    }

    // Report.
    let mut renames = BTreeMap::new();
    for (upstream, (ours, how)) in &placed {
        if upstream == ours {
            continue;
        }
        let mut detail = format!("upstream schema `{upstream}` is our `{ours}`, placed {how}");
        if how.starts_with("by shape") || how.contains("shared)") {
            let line = if how.starts_with("by shape") {
                roles
                    .iter()
                    .find(|(_, n)| n == upstream)
                    .map(|(role, _)| format!("{role:?} = {ours:?}"))
                    .unwrap_or_else(|| format!("{} = {ours:?}", toml_key(upstream)))
            } else {
                String::new()
            };
            if !line.is_empty() {
                detail.push_str(&format!(
                    "; to make it explicit, add under [schemas]: {line}"
                ));
            }
        }
        changes.push(change(Severity::NonBreaking, "name-absorbed", ours, detail));
        renames.insert(upstream.clone(), ours.clone());
    }
    let new_names: BTreeSet<String> = schemas
        .keys()
        .map(|k| renames.get(k).cloned().unwrap_or_else(|| k.clone()))
        .collect();
    for (upstream, schema) in schemas {
        if placed.contains_key(upstream) {
            continue;
        }
        let role = roles.iter().find(|(_, n)| n == upstream).map(|(r, _)| r);
        let is_enum = string_enum(schema).is_some();
        let orphans: Vec<&String> = previous_schemas
            .iter()
            .filter(|(name, s)| !new_names.contains(*name) && (string_enum(s).is_some() == is_enum))
            .map(|(name, _)| name)
            .collect();
        let ours = match orphans.as_slice() {
            [one] => one.to_string(),
            _ => "OurName".to_string(),
        };
        let line = if is_enum {
            let values = string_enum(schema).unwrap_or_default();
            format!(
                "under [enums]: {} = {}",
                toml_key(&ours),
                serde_json::to_string(&values).unwrap_or_default()
            )
        } else {
            match role {
                Some(role) => format!("under [schemas]: {role:?} = {ours:?}"),
                None => format!("under [schemas]: {} = {ours:?}", toml_key(upstream)),
            }
        };
        let mut detail = format!(
            "upstream {} `{upstream}`{} is not placed by spec/names.toml: it keeps upstream's \
             name. If it is our ",
            if is_enum { "enum" } else { "schema" },
            role.map(|r| format!(" (`{r}`)")).unwrap_or_default(),
        );
        if orphans.is_empty() {
            detail.push_str(&format!("`OurName`, add {line}"));
        } else {
            detail.push_str(&format!(
                "{}, add {line}",
                orphans
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        changes.push(change(
            Severity::NonBreaking,
            "name-unplaced",
            upstream,
            detail,
        ));
    }
    renames
}

/// Renames component schemas and rewrites every `$ref` to them.
fn rename_schemas(doc: &mut Value, renames: &BTreeMap<String, String>) {
    if renames.is_empty() {
        return;
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        // An unplaced upstream schema that already has one of the target names moves aside.
        let targets: BTreeSet<&String> = renames.values().collect();
        let clashing: Vec<String> = schemas
            .keys()
            .filter(|k| targets.contains(k) && !renames.contains_key(*k))
            .cloned()
            .collect();
        let mut extra = BTreeMap::new();
        for name in clashing {
            let mut new_name = format!("{name}Upstream");
            while schemas.contains_key(&new_name) {
                new_name.push('_');
            }
            extra.insert(name, new_name);
        }
        let all: BTreeMap<String, String> = renames
            .iter()
            .chain(extra.iter())
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        let mut moved = Vec::new();
        for (from, to) in &all {
            if let Some(mut schema) = schemas.remove(from) {
                let plain_string = schema.get("format").is_some();
                if !plain_string && let Some(map) = schema.as_object_mut() {
                    map.insert("x-upstream-name".into(), json!(from));
                }
                moved.push((to.clone(), schema));
            }
        }
        for (to, schema) in moved {
            schemas.insert(to, schema);
        }
        rewrite_refs(doc, &all);
    }
}

fn rewrite_refs(value: &mut Value, renames: &BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "$ref"
                    && let Some(target) = child
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    && let Some(ours) = renames.get(target)
                {
                    *child = json!(format!("#/components/schemas/{ours}"));
                } else {
                    rewrite_refs(child, renames);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, renames)),
        _ => {}
    }
}

/// The note `build.rs` puts in the `#[deprecated]` of a kept field or schema.
pub const KEPT_NOTE: &str = "not in Connect Trade's published document: always absent; kept so code using it compiles, removed at the next major version";

/// Keeps what the previous spec had and `doc` (renamed to our names) lacks: fields of schemas
/// present in both become optional fields listed in the schema's `x-kept-fields`; schemas
/// become `x-kept: true`, with the schemas they reference. Operations are not kept (a method
/// whose endpoint is gone cannot work).
pub fn keep_missing(doc: &mut Value, previous: &Value, names: &Names) -> Vec<Change> {
    let mut changes = Vec::new();
    keep_operation_parts(doc, previous, names, &mut changes);
    let empty = serde_json::Map::new();
    let old = previous
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or(&empty)
        .clone();
    if old.is_empty() {
        return changes;
    }
    let root = doc.as_object_mut().map(|root| {
        root.entry("components")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|c| c.entry("schemas").or_insert_with(|| json!({})))
    });
    let Some(Some(schemas)) = root else {
        return changes;
    };
    let Some(schemas) = schemas.as_object_mut() else {
        return changes;
    };
    let mut needed: Vec<String> = Vec::new();
    for (name, old_schema) in &old {
        let Some(new_schema) = schemas.get_mut(name).and_then(Value::as_object_mut) else {
            continue;
        };
        let (Some(old_props), true) = (
            old_schema.get("properties").and_then(Value::as_object),
            new_schema.get("type").and_then(Value::as_str) == Some("object")
                || new_schema.contains_key("properties"),
        ) else {
            continue;
        };
        let mut kept: BTreeSet<String> = new_schema
            .get("x-kept-fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let props = new_schema.entry("properties").or_insert_with(|| json!({}));
        let Some(props) = props.as_object_mut() else {
            continue;
        };
        let was_kept: BTreeSet<String> = old_schema
            .get("x-kept-fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for (field, field_schema) in old_props {
            if props.contains_key(field) {
                continue;
            }
            props.insert(field.clone(), field_schema.clone());
            collect_refs(field_schema, &mut needed);
            kept.insert(field.clone());
            if !was_kept.contains(field) {
                changes.push(change(
                    Severity::NonBreaking,
                    "field-kept",
                    &format!("{name}.{field}"),
                    format!(
                        "upstream's `{name}` has no `{field}`: kept as an optional, deprecated \
                         field (always absent), remove at the next major"
                    ),
                ));
            }
        }
        if !kept.is_empty() {
            new_schema.insert("x-kept-fields".into(), json!(kept));
        }
    }
    // Whole schemas: those gone upstream, and those the kept fields reference.
    let mut queue: Vec<String> = old
        .keys()
        .filter(|name| !schemas.contains_key(*name))
        .cloned()
        .collect();
    queue.extend(needed);
    while let Some(name) = queue.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let Some(old_schema) = old.get(&name) else {
            continue;
        };
        let mut schema = old_schema.clone();
        collect_refs(&schema, &mut queue);
        if names.responses.iter().any(|(_, pinned)| *pinned == name) {
            // Still the answer of the operation that pins it: not deprecated.
            schemas.insert(name, schema);
            continue;
        }
        let plain_string = schema.get("format").is_some();
        if !plain_string && let Some(map) = schema.as_object_mut() {
            map.insert("x-kept".into(), json!(true));
        }
        if old_schema.get("x-kept") != Some(&json!(true)) {
            changes.push(change(
                Severity::NonBreaking,
                "schema-kept",
                &name,
                format!(
                    "upstream has no `{name}`: the Rust type stays (deprecated), remove at the \
                     next major"
                ),
            ));
        }
        schemas.insert(name, schema);
    }
    changes
}

/// Keeps the fields of `[optional]` optional whatever upstream's `required` says: our spec
/// requires a field only where a source says the server always sends it (`spec/PROVENANCE.md`),
/// and these are the fields the SDK decodes leniently on purpose. `doc` is upstream renamed to
/// our names; `previous` the previous spec.
///
/// Each such field upstream requires leaves the schema's `required` and is recorded in its
/// `x-upstream-required` (upstream's word is kept as metadata); a `default` the previous spec
/// gave it stays when upstream gives none, so an object without the field still decodes as
/// before. The Rust type keeps its `Option` (or its default): the public API does not change.
/// Reported as `field-kept-optional` unless the previous spec recorded it already.
pub fn keep_optional(doc: &mut Value, previous: &Value, names: &Names) -> Vec<Change> {
    let mut changes = Vec::new();
    for (key, reason) in &names.optional {
        let Some((schema_name, field)) = key.split_once('.') else {
            continue;
        };
        let old = previous.pointer(&format!("/components/schemas/{schema_name}"));
        let old_field = old
            .and_then(|s| s.get("properties"))
            .and_then(|p| p.get(field));
        let was_recorded = old
            .and_then(|s| s.get("x-upstream-required"))
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|f| f == field));
        let Some(schema) = doc
            .pointer_mut(&format!("/components/schemas/{schema_name}"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let mut required: Vec<Value> = schema
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let upstream_requires = required.iter().any(|f| f == field);
        let mut kept_default = None;
        if let Some(default) = old_field.and_then(|f| f.get("default"))
            && let Some(new_field) = schema
                .get_mut("properties")
                .and_then(|p| p.get_mut(field))
                .and_then(Value::as_object_mut)
            && !new_field.contains_key("default")
        {
            // 3.0 ignores the siblings of a `$ref`: the reference goes into `allOf`.
            if let Some(reference) = new_field.remove("$ref") {
                new_field.insert("allOf".into(), json!([{ "$ref": reference }]));
            }
            new_field.insert("default".into(), default.clone());
            kept_default = Some(default.clone());
        }
        if upstream_requires {
            required.retain(|f| f != field);
            if required.is_empty() {
                schema.remove("required");
            } else {
                schema.insert("required".into(), Value::Array(required));
            }
            let mut recorded: BTreeSet<String> = schema
                .get("x-upstream-required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            recorded.insert(field.to_string());
            schema.insert("x-upstream-required".into(), json!(recorded));
        }
        if (upstream_requires && was_recorded) || (!upstream_requires && kept_default.is_none()) {
            continue;
        }
        let what = if upstream_requires {
            format!("upstream requires `{key}`; kept optional (lenient)")
        } else {
            format!("upstream gives `{key}` no default; kept lenient")
        };
        let default = kept_default
            .map(|d| format!(", with its default {d}"))
            .unwrap_or_default();
        changes.push(change(
            Severity::NonBreaking,
            "field-kept-optional",
            key,
            format!(
                "{what}{default}: it still decodes when present, and a response without it \
                 still decodes (spec/names.toml [optional]: {reason})"
            ),
        ));
    }
    changes
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref"
                    && let Some(target) = child
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    out.push(target.to_string());
                } else {
                    collect_refs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The success response schemas `[responses]` pins, and the optional query parameters of the
/// previous spec that upstream lacks (listed in the operation's `x-kept-parameters`).
fn keep_operation_parts(
    doc: &mut Value,
    previous: &Value,
    names: &Names,
    changes: &mut Vec<Change>,
) {
    let mut old_ops: BTreeMap<String, &Value> = BTreeMap::new();
    for (path, item) in previous["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                old_ops.insert(op_key(method, path), op);
            }
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(*method).and_then(Value::as_object_mut) else {
                continue;
            };
            let key = op_key(method, path);
            let location = format!("{} {path}", method.to_uppercase());
            if let Some((_, pinned)) = names.responses.iter().find(|(k, _)| {
                k.split_once(' ')
                    .is_some_and(|(m, p)| op_key(m, p.trim()) == key)
            }) {
                let recorded = old_ops
                    .get(&key)
                    .and_then(|old| old["responses"].as_object())
                    .and_then(|r| r.iter().find(|(code, _)| code.starts_with('2')))
                    .and_then(|(_, response)| response.get("x-upstream-schema"));
                pin_response(op, pinned, &location, recorded, changes);
            }
            let Some(old) = old_ops.get(&key) else {
                continue;
            };
            let present: BTreeSet<(String, String)> = op
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["in"].as_str().unwrap_or("").to_string(),
                        p["name"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let was_kept: BTreeSet<&str> = old["x-kept-parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut kept: Vec<Value> = Vec::new();
            let mut names_kept: Vec<String> = Vec::new();
            for param in old["parameters"].as_array().into_iter().flatten() {
                let name = param["name"].as_str().unwrap_or("");
                if param["in"] != "query"
                    || param["required"] == true
                    || present.contains(&("query".to_string(), name.to_string()))
                {
                    continue;
                }
                kept.push(param.clone());
                names_kept.push(name.to_string());
                if !was_kept.contains(name) {
                    changes.push(change(
                        Severity::NonBreaking,
                        "parameter-kept",
                        &format!("{location} parameter query {name}"),
                        format!(
                            "upstream has no query parameter `{name}`: its setter stays \
                             (deprecated), remove at the next major"
                        ),
                    ));
                }
            }
            if kept.is_empty() {
                continue;
            }
            let params = op.entry("parameters").or_insert_with(|| json!([]));
            if let Some(params) = params.as_array_mut() {
                params.extend(kept);
            }
            op.insert("x-kept-parameters".into(), json!(names_kept));
        }
    }
}

/// Pins the success response of `op` to `pinned`, keeping upstream's schema as
/// `x-upstream-schema`; reported unless the previous spec `recorded` the same upstream schema.
fn pin_response(
    op: &mut serde_json::Map<String, Value>,
    pinned: &str,
    location: &str,
    recorded: Option<&Value>,
    changes: &mut Vec<Change>,
) {
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    let Some((_, response)) = responses.iter_mut().find(|(code, _)| code.starts_with('2')) else {
        return;
    };
    let reference = format!("#/components/schemas/{pinned}");
    let current = json_body(response).cloned();
    if current
        .as_ref()
        .and_then(|s| s.get("$ref"))
        .and_then(Value::as_str)
        == Some(reference.as_str())
    {
        return;
    }
    let shape = current
        .as_ref()
        .map(crate::surface::describe)
        .unwrap_or_else(|| "no body".into());
    if let Some(map) = response.as_object_mut() {
        map.insert(
            "content".into(),
            json!({ "application/json": { "schema": { "$ref": reference } } }),
        );
        if let Some(schema) = &current {
            map.insert("x-upstream-schema".into(), schema.clone());
        }
    }
    if current.is_some() && current.as_ref() == recorded {
        return;
    }
    changes.push(change(
        Severity::NonBreaking,
        "response-kept",
        location,
        format!(
            "upstream documents the response as {shape}; it stays `{pinned}` (spec/names.toml \
             [responses]), whose hand-written type decodes that shape too"
        ),
    ));
}
