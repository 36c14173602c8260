//! Captures a user can share: what the doctor sent and received, redacted.
//!
//! One JSON file per request (`NNN-<operation_id>.json`) and per stream probe
//! (`NNN-stream-<name>.json`). Before anything is written:
//! - credential headers (`client-id`, `client-secret`, `user-id`, `user-secret`,
//!   `authorization`, cookies) are replaced: secrets by `REDACTED`, ids by placeholders;
//! - every field whose name says secret or token (`user_secret`, `access_token`, …) becomes
//!   `REDACTED`;
//! - every identifier (a field named `id`, `*_id`, `*_number`, a cursor, a path parameter, a
//!   query parameter of those names, the credentials' ids) is replaced by a placeholder of the
//!   same shape (digits stay digits, hex letters stay hex letters, case and punctuation
//!   stay), everywhere it occurs, in every file: the same id is the same placeholder across
//!   the capture, so relations (an order's `account_id` and the account) survive.
//!
//! Placeholders come from a random key of the run, so they cannot be reversed by trying
//! candidate ids. The format is what `cargo xtask spec learn` reads.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
};

use serde_json::{Map, Value, json};

use super::{DoctorOptions, report::is_sensitive_name};

/// One REST request and its response, as sent and received (not yet redacted).
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    pub operation_id: String,
    pub method: String,
    pub route: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One WebSocket frame.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    /// `sent` or `received`.
    pub direction: &'static str,
    pub text: String,
}

/// One stream probe's frames.
#[derive(Clone, Debug)]
pub(crate) struct StreamSession {
    pub name: &'static str,
    pub url: String,
    pub frames: Vec<Frame>,
}

/// The text that replaces a secret.
pub const REDACTED: &str = "REDACTED";

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("secret")
        || name.contains("token")
        || name.contains("password")
        || name == "authorization"
        || name.contains("cookie")
}

fn is_id_name(name: &str) -> bool {
    is_sensitive_name(name) && !is_secret_name(name)
}

/// Replaces ids and secrets consistently across a whole capture.
#[derive(Debug)]
pub struct Redactor {
    ids: HashMap<String, String>,
    used: HashSet<String>,
    secrets: HashSet<String>,
    rng: fastrand::Rng,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

impl Redactor {
    /// A redactor with a random key.
    pub fn new() -> Self {
        Redactor {
            ids: HashMap::new(),
            used: HashSet::new(),
            secrets: HashSet::new(),
            rng: fastrand::Rng::new(),
        }
    }

    /// Marks `value` an identifier: it will be replaced by a same-shape placeholder.
    pub fn id(&mut self, value: &str) {
        if value.is_empty() || self.ids.contains_key(value) || value == REDACTED {
            return;
        }
        for _ in 0..100 {
            let candidate: String = value
                .chars()
                .map(|c| match c {
                    '0'..='9' => self.rng.char('0'..='9'),
                    'a'..='f' => self.rng.char('a'..='f'),
                    'g'..='z' => self.rng.char('g'..='z'),
                    'A'..='F' => self.rng.char('A'..='F'),
                    'G'..='Z' => self.rng.char('G'..='Z'),
                    other => other,
                })
                .collect();
            if candidate != value
                && !self.used.contains(&candidate)
                && !self.ids.contains_key(&candidate)
            {
                self.used.insert(candidate.clone());
                self.ids.insert(value.to_string(), candidate);
                return;
            }
        }
        // No letters or digits to vary (e.g. "-"): too short to matter, keep a marker.
        self.ids
            .insert(value.to_string(), format!("ID{}", self.ids.len()));
    }

    /// Marks `value` a secret: it will be replaced by `REDACTED`.
    pub fn secret(&mut self, value: &str) {
        if !value.is_empty() {
            self.secrets.insert(value.to_string());
        }
    }

    /// Finds the ids and secrets of a JSON document (by field name).
    pub fn learn_json(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    match child {
                        Value::String(s) if is_secret_name(key) => self.secret(s),
                        Value::String(s) if is_id_name(key) => self.id(s),
                        Value::Number(n) if is_id_name(key) => self.id(&n.to_string()),
                        Value::Array(items) if is_id_name(key) => {
                            for item in items {
                                match item {
                                    Value::String(s) => self.id(s),
                                    other => self.learn_json(other),
                                }
                            }
                        }
                        other => self.learn_json(other),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.learn_json(v)),
            _ => {}
        }
    }

    /// Finds the ids of a URL's query (`account_id=…`, `cursor=…`).
    pub fn learn_url(&mut self, url: &str) {
        if let Some((_, query)) = url.split_once('?') {
            for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
                if is_secret_name(&key) {
                    self.secret(&value);
                } else if is_id_name(&key) {
                    self.id(&value);
                }
            }
        }
    }

    /// A string with every secret and every id replaced.
    pub fn redact_str(&self, text: &str) -> String {
        if self.secrets.contains(text) {
            return REDACTED.to_string();
        }
        if let Some(placeholder) = self.ids.get(text) {
            return placeholder.clone();
        }
        let mut text = text.to_string();
        let mut secrets: Vec<&String> = self.secrets.iter().filter(|s| s.len() >= 4).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in secrets {
            text = text.replace(secret.as_str(), REDACTED);
        }
        let mut ids: Vec<(&String, &String)> =
            self.ids.iter().filter(|(k, _)| k.len() >= 3).collect();
        ids.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        replace_bounded(&text, &ids)
    }

    /// A JSON document with every secret and id replaced.
    pub fn redact_json(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, child)| {
                        let redacted = match child {
                            Value::String(_) if is_secret_name(key) => {
                                Value::String(REDACTED.into())
                            }
                            Value::Number(n) if is_id_name(key) => {
                                let text = self.redact_str(&n.to_string());
                                text.parse::<serde_json::Number>()
                                    .map(Value::Number)
                                    .unwrap_or(Value::String(text))
                            }
                            other => self.redact_json(other),
                        };
                        (key.clone(), redacted)
                    })
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::String(s) => Value::String(self.redact_str(s)),
            other => other.clone(),
        }
    }
}

/// Replaces each id where it stands as a whole token (not inside a longer word or number).
fn replace_bounded(text: &str, ids: &[(&String, &String)]) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < text.len() {
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let before_ok = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if before_ok {
            for (id, placeholder) in ids {
                if text[i..].starts_with(id.as_str()) {
                    let end = i + id.len();
                    if end == text.len() || !bytes[end].is_ascii_alphanumeric() {
                        out.push_str(placeholder);
                        i = end;
                        continue 'outer;
                    }
                }
            }
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn body_json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

/// The ids of a request path: the segments standing where the route has `{parameters}`.
fn path_ids(route: &str, url: &str) -> Vec<String> {
    let path = url.split('?').next().unwrap_or(url);
    route
        .split('/')
        .zip(path.split('/'))
        .filter(|(r, _)| r.starts_with('{'))
        .map(|(_, p)| {
            url::form_urlencoded::parse(format!("x={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| p.to_string())
        })
        .collect()
}

fn learn_headers(redactor: &mut Redactor, headers: &[(String, String)]) {
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "client-id" | "user-id" => redactor.id(value),
            "link" => {
                for part in value.split(',') {
                    let target = part.split(';').next().unwrap_or_default().trim();
                    redactor.learn_url(target.trim_start_matches('<').trim_end_matches('>'));
                }
            }
            _ if is_secret_name(&name) => redactor.secret(value),
            _ if name.contains("cursor") => redactor.id(value),
            _ => {}
        }
    }
}

fn redact_headers(redactor: &Redactor, headers: &[(String, String)]) -> Value {
    let mut map = BTreeMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let redacted = if is_secret_name(&lower) || lower == "set-cookie" {
            REDACTED.to_string()
        } else {
            redactor.redact_str(value)
        };
        map.insert(lower, Value::String(redacted));
    }
    Value::Object(map.into_iter().collect::<Map<_, _>>())
}

/// Writes the capture of a run into `dir`; returns how many files.
pub(crate) fn write(
    dir: &Path,
    exchanges: &[Exchange],
    streams: &[StreamSession],
    options: &DoctorOptions,
) -> std::io::Result<usize> {
    let mut redactor = Redactor::new();
    redactor.id(&options.platform.client_id);
    redactor.secret(options.platform.client_secret.expose());
    if let Some(user) = &options.user {
        redactor.id(&user.user_id);
        redactor.secret(user.user_secret.expose());
    }
    if let Some(connection) = &options.market_data {
        redactor.id(connection);
    }
    for exchange in exchanges {
        for id in path_ids(&exchange.route, &exchange.url) {
            redactor.id(&id);
        }
        redactor.learn_url(&exchange.url);
        learn_headers(&mut redactor, &exchange.request_headers);
        learn_headers(&mut redactor, &exchange.response_headers);
        if let Some(body) = body_json(&exchange.body) {
            redactor.learn_json(&body);
        }
    }
    for stream in streams {
        for frame in &stream.frames {
            if let Ok(value) = serde_json::from_str::<Value>(&frame.text) {
                redactor.learn_json(&value);
            }
        }
    }
    std::fs::create_dir_all(dir)?;
    let mut written = 0;
    let tool = concat!("connect-trade-doctor ", env!("CARGO_PKG_VERSION"));
    for (i, exchange) in exchanges.iter().enumerate() {
        let body = match body_json(&exchange.body) {
            Some(value) => json!({ "body": redactor.redact_json(&value) }),
            None => {
                json!({ "body_text": redactor.redact_str(&String::from_utf8_lossy(&exchange.body)) })
            }
        };
        let mut response = json!({
            "status": exchange.status,
            "headers": redact_headers(&redactor, &exchange.response_headers),
        });
        if let (Some(r), Some(b)) = (response.as_object_mut(), body.as_object()) {
            r.extend(b.clone());
        }
        let document = json!({
            "capture": tool,
            "kind": "rest",
            "operation_id": exchange.operation_id,
            "method": exchange.method,
            "route": exchange.route,
            "request": {
                "url": redactor.redact_str(&exchange.url),
                "headers": redact_headers(&redactor, &exchange.request_headers),
            },
            "response": response,
        });
        let name = format!("{:03}-{}.json", i + 1, exchange.operation_id);
        std::fs::write(dir.join(name), pretty(&document))?;
        written += 1;
    }
    for (j, stream) in streams.iter().enumerate() {
        let frames: Vec<Value> = stream
            .frames
            .iter()
            .map(|frame| match serde_json::from_str::<Value>(&frame.text) {
                Ok(value) => json!({ "direction": frame.direction, "message": redactor.redact_json(&value) }),
                Err(_) => json!({ "direction": frame.direction, "text": redactor.redact_str(&frame.text) }),
            })
            .collect();
        let document = json!({
            "capture": tool,
            "kind": "stream",
            "stream": stream.name,
            "url": redactor.redact_str(&stream.url),
            "frames": frames,
        });
        let name = format!("{:03}-stream-{}.json", exchanges.len() + j + 1, stream.name);
        std::fs::write(dir.join(name), pretty(&document))?;
        written += 1;
    }
    Ok(written)
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}
