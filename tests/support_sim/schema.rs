//! A small OpenAPI 3.0 schema checker over `serde_json::Value`: `$ref`, `allOf`, `oneOf`, `type`,
//! `required`, `nullable`, `enum`, `minItems`/`maxItems`, and the formats the spec uses
//! (`decimal`, `date-time`, `date`, `password`, `uri`, `int32`). Enough to hold the
//! simulator's responses to the spec; unknown keywords are ignored.

use serde_json::Value;

/// The spec, loaded from `spec/openapi.json`.
pub struct Spec {
    doc: Value,
}

impl Spec {
    pub fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/openapi.json");
        let text = std::fs::read_to_string(path).expect("read spec/openapi.json");
        Spec {
            doc: serde_json::from_str(&text).expect("spec is JSON"),
        }
    }

    /// The schema of a response (`None`: the spec declares no body), or an error when the
    /// spec does not have the operation or the status class at all.
    pub fn response_schema(
        &self,
        method: &str,
        route: &str,
        status: u16,
    ) -> Result<Option<Value>, String> {
        let op = self.doc["paths"]
            .get(route)
            .and_then(|p| p.get(method.to_ascii_lowercase()))
            .ok_or_else(|| format!("the spec has no operation {method} {route}"))?;
        let responses = &op["responses"];
        let class = format!("{}XX", status / 100);
        let response = responses
            .get(status.to_string())
            .or_else(|| responses.get(&class))
            .ok_or_else(|| {
                format!("{method} {route}: the spec has no response {status} (nor {class})")
            })?;
        Ok(response
            .pointer("/content/application~1json/schema")
            .cloned())
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.trim_start_matches('#');
                self.resolve(self.doc.pointer(pointer).unwrap_or(&Value::Null))
            }
            None => schema,
        }
    }

    /// Every way `value` breaks `schema`, each with its JSON path.
    pub fn validate(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.validate(part, value, path, errors);
            }
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
            let matching = one
                .iter()
                .filter(|part| {
                    let mut found = Vec::new();
                    self.validate(part, value, path, &mut found);
                    found.is_empty()
                })
                .count();
            if matching != 1 {
                errors.push(format!(
                    "{path}: matches {matching} of the {} `oneOf` alternatives, not exactly one",
                    one.len()
                ));
            }
        }
        if value.is_null() {
            if schema.get("nullable") != Some(&Value::Bool(true)) && schema.get("type").is_some() {
                errors.push(format!("{path}: null but not nullable"));
            }
            return;
        }
        if let Some(choices) = schema.get("enum").and_then(Value::as_array)
            && !choices.contains(value)
        {
            errors.push(format!("{path}: {value} is not one of {choices:?}"));
        }
        let Some(kind) = schema.get("type").and_then(Value::as_str) else {
            return;
        };
        match (kind, value) {
            ("object", Value::Object(map)) => {
                for name in schema["required"].as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap_or_default();
                    if !map.contains_key(name) {
                        errors.push(format!("{path}: required property {name:?} missing"));
                    }
                }
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    for (name, sub) in props {
                        if let Some(v) = map.get(name) {
                            self.validate(sub, v, &format!("{path}.{name}"), errors);
                        }
                    }
                }
            }
            ("array", Value::Array(items)) => {
                let len = items.len() as u64;
                if schema
                    .get("minItems")
                    .and_then(Value::as_u64)
                    .is_some_and(|min| len < min)
                {
                    errors.push(format!("{path}: {len} items, fewer than minItems"));
                }
                if schema
                    .get("maxItems")
                    .and_then(Value::as_u64)
                    .is_some_and(|max| len > max)
                {
                    errors.push(format!("{path}: {len} items, more than maxItems"));
                }
                for (i, item) in items.iter().enumerate() {
                    self.validate(&schema["items"], item, &format!("{path}[{i}]"), errors);
                }
            }
            ("string", Value::String(text)) => {
                if let Some(format) = schema.get("format").and_then(Value::as_str)
                    && let Err(why) = check_format(format, text)
                {
                    errors.push(format!("{path}: {text:?} is not {format}: {why}"));
                }
            }
            ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => {}
            (kind, value) => errors.push(format!("{path}: expected {kind}, got {value}")),
        }
    }
}

fn check_format(format: &str, text: &str) -> Result<(), String> {
    match format {
        "decimal" => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
            let ok = !int.is_empty()
                && !frac.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && frac.len() <= 9;
            if ok {
                Ok(())
            } else {
                Err("not a decimal string with at most 9 places".into())
            }
        }
        "date-time" => chrono::DateTime::parse_from_rfc3339(text)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "date" => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "uri" => url::Url::parse(text).map(|_| ()).map_err(|e| e.to_string()),
        "password" => Ok(()),
        other => Err(format!("unknown format {other}")),
    }
}
