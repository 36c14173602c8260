//! `cargo xtask spec learn DIR...`: turns the doctor's captures into a spec change.
//!
//! Reads every REST capture (`"kind": "rest"`, a 2xx JSON body) under the directories, walks
//! each body alongside the schema the spec declares for it, and changes the spec where the
//! server was seen to differ:
//! - a field seen but not in the spec is added, its type inferred from every value seen
//!   (decimal-looking strings → `format: decimal`, RFC 3339 → `date-time`, `YYYY-MM-DD` →
//!   `date`, secret-looking names → `password`);
//! - a required field missing from some object seen becomes optional;
//! - a `null` where the spec does not allow it makes the field `nullable`;
//! - an enum value seen is added;
//! - a body (or field) that is an array where the spec says an object, or the reverse,
//!   takes the observed shape.
//!
//! A scalar of another type (a number where the spec says a decimal string) is reported, not
//! learned: money stays a decimal string unless a person decides otherwise.
//!
//! The change goes through the same path as `spec refresh`: normalize, check that it
//! generates, write the spec and `spec/PROVENANCE.md` atomically (each change recorded as
//! observed, with the capture's SHA-256), and print the diff report.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde_json::{Map, Value, json};

use crate::{
    Error,
    diff::{self, Change},
    generate::generate,
    json::to_canonical_string,
    load,
    normalize::normalize,
};

/// What to learn from and what to change.
#[derive(Debug, Clone)]
pub struct LearnOptions {
    /// Capture directories (or single capture files).
    pub captures: Vec<PathBuf>,
    /// The spec to change (default `spec/openapi.json`).
    pub spec_path: PathBuf,
    /// The provenance record (default `PROVENANCE.md` beside the spec).
    pub provenance_path: PathBuf,
}

impl LearnOptions {
    /// Learning from `captures` into the spec at `spec_path` (its `PROVENANCE.md` beside it).
    pub fn new(captures: Vec<PathBuf>, spec_path: PathBuf) -> LearnOptions {
        let provenance_path = spec_path.with_file_name("PROVENANCE.md");
        LearnOptions {
            captures,
            spec_path,
            provenance_path,
        }
    }
}

/// One change made to the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    /// Where, as a JSON pointer into the spec (`#/components/schemas/Order/required`).
    pub location: String,
    /// What changed and why.
    pub message: String,
    /// The capture file that showed it first.
    pub capture: String,
    /// That file's SHA-256.
    pub sha256: String,
}

/// What `learn` did.
#[derive(Debug, Clone)]
pub struct LearnOutcome {
    /// REST captures read.
    pub captures: usize,
    /// The changes made.
    pub learned: Vec<Learned>,
    /// What was seen but needs a person (a scalar of another type).
    pub not_learned: Vec<String>,
    /// The differences from the previous spec.
    pub changes: Vec<Change>,
    /// Whether the spec file's bytes changed.
    pub spec_changed: bool,
}

struct Capture {
    name: String,
    sha256: String,
    method: String,
    route: String,
    status: u16,
    body: Value,
}

fn read_captures(paths: &[PathBuf]) -> Result<Vec<Capture>, Error> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut captures = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?;
        let Ok(document) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if document["kind"] != "rest" {
            continue;
        }
        let status = document["response"]["status"].as_u64().unwrap_or(0) as u16;
        let (Some(method), Some(route), Some(body)) = (
            document["method"].as_str(),
            document["route"].as_str(),
            document["response"].get("body"),
        ) else {
            continue;
        };
        if !(200..300).contains(&status) {
            continue;
        }
        captures.push(Capture {
            name: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: load::sha256_hex(&bytes),
            method: method.to_ascii_lowercase(),
            route: route.to_string(),
            status,
            body: body.clone(),
        });
    }
    Ok(captures)
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// What was seen of one schema (by its pointer in the spec).
#[derive(Default)]
struct Seen {
    instances: u32,
    first: Option<usize>,
    present: BTreeMap<String, u32>,
    new_fields: BTreeMap<String, (Vec<Value>, usize)>,
    new_values: BTreeMap<String, usize>,
    null: Option<usize>,
}

#[derive(Default)]
struct Observations {
    schemas: BTreeMap<String, Seen>,
    shapes: BTreeMap<String, (Vec<Value>, usize)>,
    scalars: BTreeSet<String>,
}

fn kind_of(value: &Value) -> &'static str {
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

/// Follows `$ref`s and single-element `allOf`s from `pointer`; returns the target's pointer.
fn resolve(doc: &Value, pointer: &str) -> String {
    let mut current = pointer.to_string();
    for _ in 0..16 {
        let Some(schema) = doc.pointer(&current) else {
            return current;
        };
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            current = reference.trim_start_matches('#').to_string();
        } else if let Some([single]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            if single.get("$ref").is_some() {
                current = format!("{current}/allOf/0");
            } else {
                return current;
            }
        } else {
            return current;
        }
    }
    current
}

fn observe(doc: &Value, site: &str, value: &Value, capture: usize, obs: &mut Observations) {
    let target = resolve(doc, site);
    let Some(schema) = doc.pointer(&target) else {
        return;
    };
    let declared = schema.get("type").and_then(Value::as_str);
    // A union of shapes (`oneOf: [array, envelope]`): learn in the branch of the value's type.
    for union in ["oneOf", "anyOf"] {
        if let Some(branches) = schema.get(union).and_then(Value::as_array) {
            let kind = kind_of(value);
            let matching = (0..branches.len()).find(|i| {
                let branch = resolve(doc, &format!("{target}/{union}/{i}"));
                doc.pointer(&branch)
                    .and_then(|b| b.get("type"))
                    .and_then(Value::as_str)
                    .is_some_and(|t| t == kind || (t == "number" && kind == "integer"))
            });
            if let Some(i) = matching {
                observe(doc, &format!("{target}/{union}/{i}"), value, capture, obs);
            } else if !value.is_null() {
                obs.scalars.insert(format!(
                    "#{target}: {kind} seen, no branch of its {union} is one (not learned)"
                ));
            }
            return;
        }
    }
    let seen = obs.schemas.entry(target.clone()).or_default();
    seen.first.get_or_insert(capture);
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) && declared.is_some() {
            seen.null.get_or_insert(capture);
        }
        return;
    }
    let kind = kind_of(value);
    match (declared, kind) {
        (Some("object"), "array") | (Some("array"), "object") => {
            let entry = obs
                .shapes
                .entry(site.to_string())
                .or_insert((Vec::new(), capture));
            entry.0.push(value.clone());
            return;
        }
        (Some("number"), "integer") | (None, _) => {}
        (Some(d), k) if d != k => {
            obs.scalars.insert(format!(
                "#{target}: {k} seen, the spec says {d}{} (not learned: decide by hand)",
                schema
                    .get("format")
                    .and_then(Value::as_str)
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            ));
            return;
        }
        _ => {}
    }
    match value {
        Value::Object(map) => {
            seen.instances += 1;
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, child) in map {
                *seen.present.entry(name.clone()).or_default() += 1;
                if properties.is_some_and(|p| p.contains_key(name)) {
                    continue;
                }
                let entry = seen
                    .new_fields
                    .entry(name.clone())
                    .or_insert((Vec::new(), capture));
                entry.0.push(child.clone());
            }
            for (name, child) in map {
                if properties.is_some_and(|p| p.contains_key(name)) {
                    observe(
                        doc,
                        &format!("{target}/properties/{}", escape(name)),
                        child,
                        capture,
                        obs,
                    );
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                observe(doc, &format!("{target}/items"), item, capture, obs);
            }
        }
        Value::String(text) => {
            if let Some(values) = schema.get("enum").and_then(Value::as_array)
                && !values.contains(value)
            {
                seen.new_values.entry(text.clone()).or_insert(capture);
            }
        }
        _ => {}
    }
}

fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn is_id_like(name: &str) -> bool {
    name == "id" || name.ends_with("_id") || name.ends_with("number") || name.contains("cursor")
}

fn is_secret_like(name: &str) -> bool {
    name.contains("secret") || name.contains("token") || name.contains("password")
}

/// A schema for every value seen of a field named `name`.
pub fn infer(name: &str, values: &[Value]) -> Value {
    let nullable = values.iter().any(Value::is_null);
    let values: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
    let kinds: BTreeSet<&str> = values
        .iter()
        .map(|v| match kind_of(v) {
            "integer" if values.iter().any(|v| kind_of(v) == "number") => "number",
            other => other,
        })
        .collect();
    let mut schema = match kinds.iter().next().copied() {
        None => json!({ "type": "string" }),
        Some(_) if kinds.len() > 1 => json!({}),
        Some("string") => {
            let texts: Vec<&str> = values.iter().filter_map(|v| v.as_str()).collect();
            if is_secret_like(name) {
                json!({ "type": "string", "format": "password" })
            } else if is_id_like(name) {
                json!({ "type": "string" })
            } else if texts
                .iter()
                .all(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
            {
                json!({ "type": "string", "format": "date-time" })
            } else if texts
                .iter()
                .all(|t| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok())
            {
                json!({ "type": "string", "format": "date" })
            } else if texts.iter().all(|t| is_decimal(t)) {
                json!({ "type": "string", "format": "decimal" })
            } else {
                json!({ "type": "string" })
            }
        }
        Some("object") => {
            let mut fields: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for value in &values {
                if let Value::Object(map) = value {
                    for (k, v) in map {
                        fields.entry(k.clone()).or_default().push(v.clone());
                    }
                }
            }
            let properties: Map<String, Value> = fields
                .iter()
                .map(|(k, vs)| (k.clone(), infer(k, vs)))
                .collect();
            json!({ "type": "object", "properties": properties })
        }
        Some("array") => {
            let items: Vec<Value> = values
                .iter()
                .filter_map(|v| v.as_array())
                .flatten()
                .cloned()
                .collect();
            json!({ "type": "array", "items": infer(name, &items) })
        }
        Some("integer") => json!({ "type": "integer" }),
        Some(other) => json!({ "type": other }),
    };
    if nullable && let Some(map) = schema.as_object_mut() {
        map.insert("nullable".into(), Value::Bool(true));
    }
    schema
}

/// One round of learning: observe every capture under `previous`, apply what was seen.
fn learn_round(previous: &Value, captures: &[Capture]) -> (Value, Vec<Learned>, Vec<String>) {
    let mut obs = Observations::default();
    let mut unknown = BTreeSet::new();
    for (i, capture) in captures.iter().enumerate() {
        let responses = format!(
            "/paths/{}/{}/responses",
            escape(&capture.route),
            capture.method
        );
        let Some(responses_value) = previous.pointer(&responses) else {
            unknown.insert(format!(
                "{} {}: not an operation of the spec (not learned)",
                capture.method.to_ascii_uppercase(),
                capture.route
            ));
            continue;
        };
        let status = capture.status.to_string();
        let class = format!("{}XX", capture.status / 100);
        let key = if responses_value.get(&status).is_some() {
            status
        } else {
            class
        };
        let site = format!("{responses}/{key}/content/application~1json/schema");
        if previous.pointer(&site).is_none() {
            continue;
        }
        observe(previous, &site, &capture.body, i, &mut obs);
    }

    let mut next = previous.clone();
    let mut learned = Vec::new();
    let record = |learned: &mut Vec<Learned>, location: String, message: String, capture: usize| {
        let capture = &captures[capture];
        learned.push(Learned {
            location: format!("#{location}"),
            message,
            capture: capture.name.clone(),
            sha256: capture.sha256.clone(),
        });
    };
    for (target, seen) in &obs.schemas {
        let Some(schema) = next.pointer_mut(target).and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(capture) = seen.null {
            schema.insert("nullable".into(), Value::Bool(true));
            record(
                &mut learned,
                format!("{target}/nullable"),
                "null seen: nullable".into(),
                capture,
            );
        }
        if seen.instances > 0
            && let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut)
        {
            let before = required.clone();
            required.retain(|name| {
                let name = name.as_str().unwrap_or_default();
                seen.present.get(name).copied().unwrap_or(0) >= seen.instances
            });
            for name in before.iter().filter(|n| !required.contains(n)) {
                let name = name.as_str().unwrap_or_default();
                let present = seen.present.get(name).copied().unwrap_or(0);
                record(
                    &mut learned,
                    format!("{target}/required"),
                    format!(
                        "`{name}` made optional: missing in {} of {} objects seen",
                        seen.instances - present,
                        seen.instances
                    ),
                    seen.first.unwrap_or(0),
                );
            }
            if required.is_empty() {
                schema.remove("required");
            }
        }
        for (name, (values, capture)) in &seen.new_fields {
            let mut inferred = infer(name, values);
            if let Some(map) = inferred.as_object_mut() {
                map.insert(
                    "description".into(),
                    json!(format!(
                        "Seen in captures of the live API; not documented (observed)."
                    )),
                );
            }
            let text = crate::surface::describe(&inferred);
            schema
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|p| p.insert(name.clone(), inferred));
            record(
                &mut learned,
                format!("{target}/properties/{}", escape(name)),
                format!(
                    "`{name}` added ({text}): seen in {} of {} objects",
                    values.len(),
                    seen.instances.max(values.len() as u32)
                ),
                *capture,
            );
        }
        if !seen.new_values.is_empty()
            && let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut)
        {
            for (value, capture) in &seen.new_values {
                values.push(Value::String(value.clone()));
                record(
                    &mut learned,
                    format!("{target}/enum"),
                    format!("value `{value}` added"),
                    *capture,
                );
            }
        }
    }
    for (site, (values, capture)) in &obs.shapes {
        let target = resolve(previous, site);
        let Some(old) = previous.pointer(&target) else {
            continue;
        };
        let observed_array = values.iter().any(Value::is_array);
        let replacement = if observed_array {
            // An object wrapping one array (an envelope) seen as the bare array: its items.
            let arrays: Vec<&Value> = old
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.values()
                        .filter(|s| s.get("type").and_then(Value::as_str) == Some("array"))
                        .collect()
                })
                .unwrap_or_default();
            match arrays.as_slice() {
                [array] => {
                    let mut array = (*array).clone();
                    if let Some(map) = array.as_object_mut() {
                        map.insert(
                            "description".into(),
                            json!(
                                "A bare JSON array, as seen in captures of the live API (observed)."
                            ),
                        );
                    }
                    array
                }
                _ => infer("", values),
            }
        } else {
            let mut inferred = infer("", values);
            if let (Some(props), Some(items)) = (
                inferred
                    .get_mut("properties")
                    .and_then(Value::as_object_mut),
                old.get("items"),
            ) {
                for schema in props.values_mut() {
                    if schema.get("type").and_then(Value::as_str) == Some("array") {
                        schema["items"] = items.clone();
                    }
                }
            }
            inferred
        };
        let what = if observed_array {
            "an array"
        } else {
            "an object"
        };
        if let Some(slot) = next.pointer_mut(site) {
            *slot = replacement;
            record(
                &mut learned,
                site.clone(),
                format!(
                    "{what} seen where the spec says {}: the observed shape is taken",
                    if observed_array {
                        "an object"
                    } else {
                        "an array"
                    }
                ),
                *capture,
            );
        }
    }

    let mut not_learned: Vec<String> = obs.scalars.into_iter().collect();
    not_learned.extend(unknown);
    (next, learned, not_learned)
}

/// Learns from the captures, changes the spec; nothing is written on error or when there is
/// nothing to learn.
pub fn learn(options: &LearnOptions) -> Result<LearnOutcome, Error> {
    let previous_text =
        std::fs::read_to_string(&options.spec_path).map_err(|source| Error::Io {
            path: options.spec_path.clone(),
            source,
        })?;
    let raw = load::parse_document(
        previous_text.as_bytes(),
        &options.spec_path.display().to_string(),
    )?;
    let previous = normalize(&raw).document;
    let captures = read_captures(&options.captures)?;

    // A shape taken (an envelope for an array) exposes new contents: learn again, a few
    // rounds at most, until nothing more is learned.
    let mut next = previous.clone();
    let mut learned = Vec::new();
    let mut not_learned = Vec::new();
    for _ in 0..4 {
        let (doc, round, notes) = learn_round(&next, &captures);
        not_learned = notes;
        if round.is_empty() {
            break;
        }
        next = doc;
        learned.extend(round);
    }
    if learned.is_empty() {
        return Ok(LearnOutcome {
            captures: captures.len(),
            learned,
            not_learned,
            changes: Vec::new(),
            spec_changed: false,
        });
    }
    let normalized = normalize(&next);
    generate(&normalized.document)?;
    let text = to_canonical_string(&normalized.document);
    let changes = diff::diff(&previous, &normalized.document);
    let provenance = std::fs::read_to_string(&options.provenance_path)
        .unwrap_or_else(|_| "# Where `spec/openapi.json` comes from\n".to_string());
    let provenance = record_observed(&provenance, &learned);
    crate::refresh::write_atomically(&[
        (&options.spec_path, text.as_bytes()),
        (&options.provenance_path, provenance.as_bytes()),
    ])?;
    Ok(LearnOutcome {
        captures: captures.len(),
        learned,
        not_learned,
        changes,
        spec_changed: text != previous_text,
    })
}

const START: &str = "<!-- observed:start -->";
const END: &str = "<!-- observed:end -->";

/// `PROVENANCE.md` with the learned changes added to its "Observed" section.
fn record_observed(provenance: &str, learned: &[Learned]) -> String {
    let lines: String = learned
        .iter()
        .map(|l| {
            format!(
                "- `{}`: {} (observed in capture `{}`, SHA-256 `{}`)\n",
                l.location, l.message, l.capture, l.sha256
            )
        })
        .collect();
    match provenance.find(END) {
        Some(at) => format!("{}{lines}{}", &provenance[..at], &provenance[at..]),
        None => format!(
            "{}\n## Observed elements\nEach element below was changed by `cargo xtask spec learn` \
             from a capture of the live API (`connect-trade-doctor --capture`).\n\n{START}\n{lines}{END}\n",
            provenance.trim_end()
        ),
    }
}

/// `cargo xtask spec learn [--spec PATH] [--provenance PATH] DIR...`
pub fn run(args: &[&str]) -> ExitCode {
    let mut spec = None;
    let mut provenance = None;
    let mut dirs = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match *arg {
            "--spec" | "--provenance" => {
                let Some(value) = iter.next() else {
                    eprintln!("error: {arg} needs a value");
                    return ExitCode::from(2);
                };
                if *arg == "--spec" {
                    spec = Some(PathBuf::from(value));
                } else {
                    provenance = Some(PathBuf::from(value));
                }
            }
            other if other.starts_with("--") => {
                eprintln!(
                    "error: unknown option {other}\nusage: cargo xtask spec learn [--spec PATH] [--provenance PATH] DIR..."
                );
                return ExitCode::from(2);
            }
            other => dirs.push(PathBuf::from(other)),
        }
    }
    if dirs.is_empty() {
        eprintln!(
            "error: learn takes capture directories: cargo xtask spec learn [--spec PATH] DIR..."
        );
        return ExitCode::from(2);
    }
    let spec = match spec {
        Some(spec) => spec,
        None => match crate::workspace_root() {
            Ok(root) => root.join("spec/openapi.json"),
            Err(error) => {
                eprintln!(
                    "error: {error}
(pass --spec PATH to name the spec to change)"
                );
                return ExitCode::from(2);
            }
        },
    };
    let mut options = LearnOptions::new(dirs, spec);
    if let Some(path) = provenance {
        options.provenance_path = path;
    }
    match learn(&options) {
        Ok(outcome) => {
            print!("{}", render(&outcome, &options.spec_path));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "error: {error}\nspec left untouched: {}",
                options.spec_path.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// The report `learn` prints: what was learned, what was not, and the diff.
pub fn render(outcome: &LearnOutcome, spec: &Path) -> String {
    let mut text = format!("Read {} REST captures.\n", outcome.captures);
    if outcome.learned.is_empty() {
        text.push_str(&format!(
            "Nothing to learn: the captures agree with {}.\n",
            spec.display()
        ));
    } else {
        text.push_str(&format!(
            "\nLearned ({}), written to {}:\n",
            outcome.learned.len(),
            spec.display()
        ));
        for l in &outcome.learned {
            text.push_str(&format!(
                "  {}: {} ({})\n",
                l.location, l.message, l.capture
            ));
        }
    }
    if !outcome.not_learned.is_empty() {
        text.push_str("\nSeen but not learned:\n");
        for n in &outcome.not_learned {
            text.push_str(&format!("  {n}\n"));
        }
    }
    if !outcome.learned.is_empty() {
        text.push_str("\nDifferences from the previous spec:\n");
        text.push_str(&diff::render_human(&outcome.changes));
    }
    text
}
