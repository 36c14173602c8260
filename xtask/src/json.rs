//! The canonical JSON form of our spec: keys sorted, two-space indentation, trailing newline.

use serde_json::{Map, Value};

/// A copy of `value` with the keys of every object in sorted order.
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                out.insert(key.clone(), sorted(&map[key]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `value` as canonical text: keys sorted, two-space indentation, a trailing newline.
pub fn to_canonical_string(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&sorted(value))
        .unwrap_or_else(|_| unreachable!("a serde_json::Value always serializes"));
    text.push('\n');
    text
}
