//! The spec's schemas as JSON Schema (2020-12) for the `jsonschema` validator, and the
//! validator's errors turned into divergences named after the spec (`Order.status`).
//!
//! OpenAPI 3.0 is not JSON Schema: `nullable: true` becomes a `null` alternative, boolean
//! `exclusiveMinimum`/`exclusiveMaximum` become numbers, `$ref`s into `#/components/schemas`
//! point into `$defs`, and objects with declared properties get `additionalProperties: false`
//! so that a field the spec does not know is reported (the SDK itself ignores it).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt::Write as _,
    sync::{Arc, Mutex},
};

use serde_json::{Map, Value, json};

/// One divergence before aggregation: where (a spec-shaped label), what kind, the spec's side,
/// the seen side, and the value seen (for values-seen lists).
#[derive(Clone, Debug)]
pub(crate) struct Finding {
    pub label: String,
    pub kind: &'static str,
    pub spec: String,
    pub seen: String,
    pub value: Option<Value>,
}

/// Converts one OpenAPI 3.0 schema into JSON Schema 2020-12.
pub(crate) fn to_json_schema(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let converted = match key.as_str() {
            "$ref" => Value::String(
                value
                    .as_str()
                    .unwrap_or_default()
                    .replace("#/components/schemas/", "#/$defs/"),
            ),
            "properties" => Value::Object(
                value
                    .as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(k, v)| (k.clone(), to_json_schema(v)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" | "not" => to_json_schema(value),
            "additionalProperties" if value.is_object() => to_json_schema(value),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .map(|all| all.iter().map(to_json_schema).collect())
                    .unwrap_or_default(),
            ),
            // OpenAPI-only keywords.
            "nullable" | "discriminator" | "xml" | "externalDocs" | "example" | "deprecated"
            | "readOnly" | "writeOnly" => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if out.get(flag) == Some(&Value::Bool(true)) {
            if let Some(limit) = out.remove(bound) {
                out.insert(flag.to_string(), limit);
            }
        } else if out.get(flag) == Some(&Value::Bool(false)) {
            out.remove(flag);
        }
    }
    if out.get("type").and_then(Value::as_str) == Some("object")
        && out.contains_key("properties")
        && !out.contains_key("additionalProperties")
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if map.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::String(kind)) = out.get("type").cloned() {
            out.insert("type".into(), json!([kind, "null"]));
            if let Some(Value::Array(values)) = out.get_mut("enum")
                && !values.contains(&Value::Null)
            {
                values.push(Value::Null);
            }
        } else {
            let description = out.remove("description");
            let mut wrapper = Map::new();
            wrapper.insert(
                "anyOf".into(),
                json!([Value::Object(out), {"type": "null"}]),
            );
            if let Some(description) = description {
                wrapper.insert("description".into(), description);
            }
            return Value::Object(wrapper);
        }
    }
    Value::Object(out)
}

/// Whether a string is a decimal as the API writes money and quantities.
pub(crate) fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// Compiles JSON Schemas against one set of definitions, with the spec's formats checked.
pub(crate) struct Checker {
    defs: Value,
    openapi_defs: Map<String, Value>,
    /// Compiled validators by schema (its JSON text): every frame of a stream, and every body
    /// of an operation, is held to the same few schemas.
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Checker {
    /// A checker for an OpenAPI document's `components/schemas`.
    pub(crate) fn for_openapi(doc: &Value) -> Checker {
        let openapi_defs: Map<String, Value> = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .map(|defs| {
                defs.iter()
                    .map(|(k, v)| (k.clone(), to_json_schema(v)))
                    .collect()
            })
            .unwrap_or_default();
        let defs = Value::Object(openapi_defs.clone());
        Checker {
            defs,
            openapi_defs,
            validators: Mutex::default(),
        }
    }

    /// A checker for a schemars document (its `$defs` are already JSON Schema).
    pub(crate) fn for_json_schema(root: &Value) -> (Checker, Value) {
        let mut root = root.clone();
        let defs = root
            .as_object_mut()
            .and_then(|m| m.remove("$defs"))
            .unwrap_or_else(|| json!({}));
        let defs = close_defs(&defs, &root);
        let openapi_defs = defs.as_object().cloned().unwrap_or_default();
        (
            Checker {
                defs,
                openapi_defs,
                validators: Mutex::default(),
            },
            close_objects(&root),
        )
    }

    /// The validator of `document` (which `schema` makes), compiled once.
    fn validator(
        &self,
        schema: &Value,
        document: &Value,
    ) -> Result<Arc<jsonschema::Validator>, String> {
        let key = schema.to_string();
        let mut cache = self
            .validators
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(validator) = cache.get(&key) {
            return Ok(validator.clone());
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(true)
            .with_format("decimal", is_decimal)
            .with_format("password", |_: &str| true)
            .build(document)
            .map_err(|e| format!("the spec's schema does not compile: {e}"))?;
        let validator = Arc::new(validator);
        cache.insert(key, validator.clone());
        Ok(validator)
    }

    /// Validates `value` against `schema` (JSON Schema, refs into `#/$defs`) and names every
    /// error after the spec.
    pub(crate) fn check(
        &self,
        schema: &Value,
        value: &Value,
        root_label: &str,
    ) -> Result<(Vec<Finding>, BTreeMap<String, u32>), String> {
        let mut document = match schema {
            Value::Object(map) => map.clone(),
            other => {
                let mut m = Map::new();
                m.insert("allOf".into(), json!([other]));
                m
            }
        };
        document.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        document.insert("$defs".into(), self.defs.clone());
        let document = Value::Object(document);
        let validator = self.validator(schema, &document)?;
        let labels = Labels::walk(&self.openapi_defs, &document, value, root_label);
        let mut findings = Vec::new();
        for error in validator.iter_errors(value) {
            collect(&error, value, &labels, &mut findings);
        }
        let mut counts = BTreeMap::new();
        for (label, _) in labels.by_pointer.values() {
            *counts.entry(label.clone()).or_default() += 1;
        }
        Ok((findings, counts))
    }
}

/// The `$defs` that are mixed into another object (`{"properties": …, "$ref": …}` or
/// `allOf`): a tagged enum's newtype variants and `#[serde(flatten)]`.
fn mixins(schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties")
                && let Some(reference) = map.get("$ref").and_then(Value::as_str)
            {
                out.insert(reference.rsplit('/').next().unwrap_or_default().to_string());
            }
            for part in map
                .get("allOf")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(reference) = part.get("$ref").and_then(Value::as_str) {
                    out.insert(reference.rsplit('/').next().unwrap_or_default().to_string());
                }
            }
            map.values().for_each(|v| mixins(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| mixins(v, out)),
        _ => {}
    }
}

/// Closes every object schema with properties (schemars leaves them open) with
/// `unevaluatedProperties: false`, which also counts the properties of mixed-in `$ref`s, so
/// an extra field in a stream frame is reported. Mixins themselves stay open: the object
/// they are mixed into is closed.
fn close_objects(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        // Property names and enum values are data, not schemas.
                        "enum" | "const" | "required" | "examples" | "default" => v.clone(),
                        _ => close_objects(v),
                    };
                    (k.clone(), v)
                })
                .collect();
            if out.contains_key("properties")
                && !out.contains_key("additionalProperties")
                && !out.contains_key("unevaluatedProperties")
            {
                out.insert("unevaluatedProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(close_objects).collect()),
        other => other.clone(),
    }
}

/// [`close_objects`] over a schemars document's `$defs`, mixins left open.
fn close_defs(defs: &Value, root: &Value) -> Value {
    let mut mixed = BTreeSet::new();
    mixins(root, &mut mixed);
    mixins(defs, &mut mixed);
    let Some(map) = defs.as_object() else {
        return defs.clone();
    };
    Value::Object(
        map.iter()
            .map(|(name, def)| {
                let closed = if mixed.contains(name) {
                    // Its nested objects are still closed; only its own level stays open.
                    match close_objects(def) {
                        Value::Object(mut m) => {
                            m.remove("unevaluatedProperties");
                            Value::Object(m)
                        }
                        other => other,
                    }
                } else {
                    close_objects(def)
                };
                (name.clone(), closed)
            })
            .collect(),
    )
}

fn collect(
    error: &jsonschema::ValidationError<'_>,
    root: &Value,
    labels: &Labels,
    out: &mut Vec<Finding>,
) {
    use jsonschema::error::ValidationErrorKind as K;
    let pointer = error.instance_path().as_str().to_string();
    let here = root.pointer(&pointer).unwrap_or(&Value::Null);
    let label = labels.label(&pointer);
    match error.kind() {
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push(Finding {
                label: format!("{label}.{name}"),
                kind: "missing",
                spec: "required".into(),
                seen: "missing".into(),
                value: None,
            });
        }
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                let value = here.get(name).cloned().unwrap_or(Value::Null);
                out.push(Finding {
                    label: format!("{label}.{name}"),
                    kind: "not-in-spec",
                    spec: "not in the spec".into(),
                    seen: kind_of(&value).into(),
                    value: Some(value),
                });
            }
        }
        K::Type { .. } => {
            let spec = labels.spec_text(&pointer);
            // `"7"` where the spec says an integer is a string of digits, not money.
            let seen = match here {
                Value::String(s)
                    if spec == "an integer"
                        && !s.is_empty()
                        && s.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    "a string of digits".into()
                }
                other => describe_value(other),
            };
            out.push(Finding {
                label,
                kind: "type",
                spec,
                seen,
                value: Some(here.clone()),
            })
        }
        K::Enum { .. } | K::Constant { .. } => out.push(Finding {
            label,
            kind: "enum",
            spec: labels.spec_text(&pointer),
            seen: "a value the spec does not list".into(),
            value: Some(here.clone()),
        }),
        K::Format { format } => out.push(Finding {
            label,
            kind: "format",
            spec: format!("format {format}"),
            seen: format!("not {format}"),
            value: Some(here.clone()),
        }),
        K::AnyOf { context } | K::OneOfNotValid { context } => {
            // A nullable `$ref` is `anyOf: [X, null]`: the non-null branch's errors say
            // what is wrong. Otherwise the branch with the fewest errors is the best guess.
            let only_null = |branch: &&Vec<jsonschema::ValidationError<'_>>| {
                branch.iter().all(|e| {
                    matches!(e.kind(), K::Type { kind: jsonschema::error::TypeKind::Single(t) } if *t == jsonschema::JsonType::Null)
                })
            };
            // A tagged union (`type`/`action`): the branch whose tag matched.
            let tag_mismatch = |branch: &&Vec<jsonschema::ValidationError<'_>>| {
                branch.iter().any(|e| {
                    let at = e.instance_path().as_str();
                    matches!(e.kind(), K::Constant { .. } | K::Enum { .. })
                        && (at.ends_with("/type") || at.ends_with("/action"))
                        && at.matches('/').count() == pointer.matches('/').count() + 1
                })
            };
            // A union of shapes (array or envelope): the branch of the value's own type.
            let type_mismatch = |branch: &&Vec<jsonschema::ValidationError<'_>>| {
                branch.iter().any(|e| {
                    matches!(e.kind(), K::Type { .. }) && e.instance_path().as_str() == pointer
                })
            };
            let best = context
                .iter()
                .filter(|b| !only_null(b))
                .filter(|b| !tag_mismatch(b))
                .filter(|b| !type_mismatch(b))
                .min_by_key(|branch| branch.len())
                .or_else(|| {
                    context
                        .iter()
                        .filter(|b| !only_null(b))
                        .min_by_key(|b| b.len())
                });
            match best {
                Some(branch) if !branch.is_empty() => {
                    for e in branch {
                        collect(e, root, labels, out);
                    }
                }
                _ => out.push(generic(error, label, here)),
            }
        }
        _ => out.push(generic(error, label, here)),
    }
}

fn generic(error: &jsonschema::ValidationError<'_>, label: String, here: &Value) -> Finding {
    Finding {
        label,
        kind: "other",
        spec: error.kind().keyword().to_string(),
        seen: error.to_string(),
        value: Some(here.clone()),
    }
}

/// `string`, `number`, … of a JSON value.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::String(s) if is_decimal(s) => "a decimal string".into(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
        Value::Null => "null".into(),
        other => kind_of(other).to_string(),
    }
}

/// Labels instance locations with spec names (`Order`, `Order.fills[]`, `Position.quantity`),
/// counts the instances of each label, and remembers what the spec says at each.
struct Labels {
    by_pointer: HashMap<String, (String, String)>,
}

impl Labels {
    fn walk(defs: &Map<String, Value>, schema: &Value, value: &Value, root_label: &str) -> Labels {
        let mut labels = Labels {
            by_pointer: HashMap::new(),
        };
        labels.visit(
            defs,
            schema,
            value,
            String::new(),
            root_label.to_string(),
            0,
        );
        labels
    }

    fn visit(
        &mut self,
        defs: &Map<String, Value>,
        schema: &Value,
        value: &Value,
        pointer: String,
        mut label: String,
        depth: usize,
    ) {
        if depth > 64 {
            return;
        }
        let mut schema = resolve(defs, schema, &mut label);
        if let Some(branches) = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array)
        {
            // A tagged union: the branch whose `type`/`action` constant is the value's.
            let tagged = ["type", "action"].iter().find_map(|key| {
                let wanted = value.get(key)?;
                let branch = branches.iter().find(|branch| {
                    branch.pointer(&format!("/properties/{key}/const")) == Some(wanted)
                })?;
                Some((wanted.as_str().unwrap_or_default().to_string(), branch))
            });
            if let Some((tag, branch)) = tagged {
                let _ = write!(label, "[{tag}]");
                self.by_pointer.insert(
                    pointer.clone(),
                    (label.clone(), spec_description(defs, branch)),
                );
                // The branch's own properties (the tag), and those of what it mixes in.
                if let Some(reference) = branch.get("$ref") {
                    let wrapper = json!({ "$ref": reference });
                    let mut scratch = label.clone();
                    let mixed = resolve(defs, &wrapper, &mut scratch).clone();
                    self.children(defs, &mixed, value, &pointer, &label, depth);
                }
                self.children(defs, branch, value, &pointer, &label, depth);
                return;
            }
            // A union of shapes: walk on in the branch of the value's own type.
            let kind = kind_of(value);
            let matching = branches.iter().find(|branch| {
                let mut scratch = label.clone();
                let resolved = resolve(defs, branch, &mut scratch);
                match resolved.get("type") {
                    Some(Value::String(t)) => t == kind || (t == "number" && kind == "integer"),
                    Some(Value::Array(ts)) => ts.iter().any(|t| t == kind),
                    _ => false,
                }
            });
            if let Some(branch) = matching {
                schema = resolve(defs, branch, &mut label);
            }
        }
        self.by_pointer.insert(
            pointer.clone(),
            (label.clone(), spec_description(defs, schema)),
        );
        self.children(defs, schema, value, &pointer, &label, depth);
    }

    fn children(
        &mut self,
        defs: &Map<String, Value>,
        schema: &Value,
        value: &Value,
        pointer: &str,
        label: &str,
        depth: usize,
    ) {
        match value {
            Value::Object(map) => {
                let props = schema.get("properties").and_then(Value::as_object);
                for (name, child) in map {
                    if let Some(sub) = props.and_then(|p| p.get(name)) {
                        self.visit(
                            defs,
                            sub,
                            child,
                            format!("{pointer}/{}", escape(name)),
                            format!("{label}.{name}"),
                            depth + 1,
                        );
                    }
                }
            }
            Value::Array(items) => {
                if let Some(sub) = schema.get("items") {
                    for (i, child) in items.iter().enumerate() {
                        self.visit(
                            defs,
                            sub,
                            child,
                            format!("{pointer}/{i}"),
                            format!("{label}[]"),
                            depth + 1,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn label(&self, pointer: &str) -> String {
        // The nearest labelled ancestor, plus the rest of the path.
        let mut current = pointer.to_string();
        let mut rest: Vec<String> = Vec::new();
        loop {
            if let Some((label, _)) = self.by_pointer.get(&current) {
                let mut label = label.clone();
                for segment in rest.iter().rev() {
                    if segment.parse::<usize>().is_ok() {
                        label.push_str("[]");
                    } else {
                        label.push('.');
                        label.push_str(segment);
                    }
                }
                return label;
            }
            match current.rfind('/') {
                Some(at) => {
                    rest.push(current[at + 1..].replace("~1", "/").replace("~0", "~"));
                    current.truncate(at);
                }
                None => return "body".into(),
            }
        }
    }

    fn spec_text(&self, pointer: &str) -> String {
        self.by_pointer
            .get(pointer)
            .map(|(_, text)| text.clone())
            .unwrap_or_else(|| "something else".into())
    }
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Follows `$ref`s (and single-element `allOf`s, and nullable `anyOf` wrappers); a `$ref` to a
/// named schema makes that name the label.
fn resolve<'a>(defs: &'a Map<String, Value>, schema: &'a Value, label: &mut String) -> &'a Value {
    let mut current = schema;
    for _ in 0..16 {
        if let Some(reference) = current.get("$ref").and_then(Value::as_str) {
            let name = reference.rsplit('/').next().unwrap_or_default();
            match defs.get(name) {
                Some(target) => {
                    // A body or an array item takes the schema's name (`Order`); a field
                    // keeps its own (`Position.instrument`).
                    if label.is_empty() || label == "body" || label.ends_with("[]") {
                        *label = name.to_string();
                    }
                    current = target;
                    continue;
                }
                None => return current,
            }
        }
        let single = current
            .get("allOf")
            .or_else(|| current.get("anyOf"))
            .and_then(Value::as_array)
            .and_then(|all| {
                let non_null: Vec<&Value> = all
                    .iter()
                    .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
                    .collect();
                (non_null.len() == 1).then(|| non_null[0])
            });
        match single {
            Some(inner) => current = inner,
            None => return current,
        }
    }
    current
}

/// What the spec says a location is: `a decimal string`, `an object (Order)`, `one of [..]`.
fn spec_description(defs: &Map<String, Value>, schema: &Value) -> String {
    let kinds: BTreeSet<String> = match schema.get("type") {
        Some(Value::String(t)) => [t.clone()].into(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .map(str::to_string)
            .collect(),
        _ => BTreeSet::new(),
    };
    let _ = defs;
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let listed: Vec<String> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect();
        return format!("one of {}", listed.join(", "));
    }
    let format = schema.get("format").and_then(Value::as_str);
    match (kinds.iter().next().map(String::as_str), format) {
        (Some("string"), Some("decimal")) => "a decimal string".into(),
        (Some("string"), Some(format)) => format!("a {format} string"),
        (Some("string"), None) => "a string".into(),
        (Some("object"), _) => "an object".into(),
        (Some("array"), _) => "an array".into(),
        (Some("integer"), _) => "an integer".into(),
        (Some(other), _) => format!("a {other}"),
        (None, _) => "something else".into(),
    }
}
