//! The doctor's report: per operation, OK or each divergence, aggregated.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{capture::Exchange, schema::Finding};

/// What the doctor found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The REST base URL checked.
    pub base_url: String,
    /// Always true unless a probe was asked for: only GET requests were sent.
    pub read_only: bool,
    /// One entry per operation (and per stream probed), in the order they ran.
    pub operations: Vec<OperationReport>,
    /// What was not checked, and why.
    pub notes: Vec<String>,
    /// How many divergences in all.
    pub divergences: usize,
}

/// One operation's (or stream's) outcome.
#[derive(Clone, Debug, Serialize)]
pub struct OperationReport {
    /// `GET /orders`, `brokerage stream`, …
    pub operation: String,
    /// The spec's operationId (or the stream's name).
    pub operation_id: String,
    /// Requests sent (or frames received, for a stream).
    pub requests: u32,
    /// How many responses of each status.
    pub statuses: BTreeMap<u16, u32>,
    /// The headers worth knowing (request id, rate limits, paging), with the first value seen.
    pub headers: BTreeMap<String, String>,
    /// Whether nothing diverged.
    pub ok: bool,
    /// Each divergence, aggregated.
    pub divergences: Vec<Divergence>,
}

/// One divergence, aggregated over every object and response of an operation.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    /// `schema` (the JSON Schema check), `types` (the generated types), `status`, `body`,
    /// `flow` (a stream's message order).
    pub check: String,
    /// Where, named after the spec: `Order.status`, `OrderPage` (the body), ….
    pub path: String,
    /// `missing`, `not-in-spec`, `type`, `enum`, `format`, `shape`, `decode`, ….
    pub kind: String,
    /// What the spec says.
    pub spec: String,
    /// What was seen.
    pub seen: String,
    /// In how many objects (or responses) it was seen…
    pub count: u32,
    /// …of how many.
    pub of: u32,
    /// Values seen (not for ids and secrets), at most a few.
    pub values: Vec<String>,
    /// The line the human report prints.
    pub message: String,
}

#[derive(Default, Clone, Debug)]
struct Tally {
    spec: String,
    seen: BTreeSet<String>,
    count: u32,
    values: BTreeSet<String>,
    at_root: bool,
}

/// An operation's results while the doctor runs.
#[derive(Clone, Debug)]
pub(crate) struct OperationAggregate {
    pub operation: String,
    operation_id: String,
    requests: u32,
    statuses: BTreeMap<u16, u32>,
    headers: BTreeMap<String, String>,
    tallies: BTreeMap<(String, String), Tally>,
    counts: BTreeMap<String, u32>,
    problems: BTreeMap<(String, String), u32>,
}

/// Headers worth knowing: request ids, rate limits, paging, deprecation.
fn worth_knowing(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("request-id")
        || name.contains("requestid")
        || name.contains("correlation")
        || name.contains("trace-id")
        || name.contains("ratelimit")
        || name.contains("rate-limit")
        || name == "retry-after"
        || name == "link"
        || name.contains("cursor")
        || name.contains("page")
        || name.contains("total")
        || name == "content-type"
        || name.contains("api-version")
        || name == "deprecation"
        || name == "sunset"
}

/// Field names whose values are identifiers or secrets: never listed as values seen.
pub(crate) fn is_sensitive_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "id"
        || name.ends_with("_id")
        || name.ends_with("_ids")
        || name.ends_with("number")
        || name.contains("cursor")
        || name.contains("secret")
        || name.contains("token")
        || name.contains("password")
}

impl OperationAggregate {
    pub(crate) fn new(operation: &str, operation_id: &str) -> Self {
        OperationAggregate {
            operation: operation.to_string(),
            operation_id: operation_id.to_string(),
            requests: 0,
            statuses: BTreeMap::new(),
            headers: BTreeMap::new(),
            tallies: BTreeMap::new(),
            counts: BTreeMap::new(),
            problems: BTreeMap::new(),
        }
    }

    pub(crate) fn record(
        &mut self,
        exchange: &Exchange,
        findings: Vec<Finding>,
        counts: BTreeMap<String, u32>,
        problems: Vec<(&'static str, String)>,
    ) {
        self.requests += 1;
        *self.statuses.entry(exchange.status).or_default() += 1;
        for (name, value) in &exchange.response_headers {
            if worth_knowing(name) {
                self.headers
                    .entry(name.to_ascii_lowercase())
                    .or_insert_with(|| value.clone());
            }
        }
        self.absorb(findings, counts, problems);
    }

    pub(crate) fn record_frame(
        &mut self,
        findings: Vec<Finding>,
        counts: BTreeMap<String, u32>,
        problems: Vec<(&'static str, String)>,
    ) {
        self.requests += 1;
        self.absorb(findings, counts, problems);
    }

    /// A problem that is not about one body: a stream's flow, a probe that could not run.
    pub(crate) fn problem(&mut self, check: &'static str, message: String) {
        *self
            .problems
            .entry((check.to_string(), message))
            .or_default() += 1;
    }

    fn absorb(
        &mut self,
        findings: Vec<Finding>,
        counts: BTreeMap<String, u32>,
        problems: Vec<(&'static str, String)>,
    ) {
        for (label, n) in counts {
            *self.counts.entry(label).or_default() += n;
        }
        // One object counts once per (label, kind), however many errors it has there.
        let mut seen_here: BTreeSet<(String, String)> = BTreeSet::new();
        for finding in findings {
            let key = (finding.label.clone(), finding.kind.to_string());
            let tally = self.tallies.entry(key.clone()).or_default();
            tally.spec = finding.spec.clone();
            tally.seen.insert(finding.seen.clone());
            tally.at_root |= !finding.label.contains('.') && !finding.label.contains('[');
            tally.count += 1;
            seen_here.insert(key);
            let field = finding.label.rsplit('.').next().unwrap_or_default();
            if let Some(value) = &finding.value
                && !is_sensitive_name(field)
                && !matches!(value, Value::Object(_) | Value::Array(_))
            {
                let text = match value {
                    Value::String(s) => format!("{s:?}"),
                    other => other.to_string(),
                };
                if text.len() <= 40 {
                    tally.values.insert(text);
                }
            }
        }
        for (check, message) in problems {
            *self
                .problems
                .entry((check.to_string(), message))
                .or_default() += 1;
        }
    }

    fn finish(&self) -> OperationReport {
        let mut divergences = Vec::new();
        for ((label, kind), tally) in &self.tallies {
            let parent = match kind.as_str() {
                "missing" | "not-in-spec" => label
                    .rsplit_once('.')
                    .map(|(p, _)| p.to_string())
                    .unwrap_or_else(|| label.clone()),
                _ => label.clone(),
            };
            let of = self
                .counts
                .get(&parent)
                .copied()
                .unwrap_or(tally.count)
                .max(tally.count);
            let values: Vec<String> = tally.values.iter().take(6).cloned().collect();
            let more = if tally.values.len() > 6 { ", …" } else { "" };
            let seen = tally.seen.iter().cloned().collect::<Vec<_>>().join(" or ");
            let parent_name = parent.trim_end_matches("[]");
            let message = match kind.as_str() {
                "missing" => format!(
                    "`{label}` missing in {} of {of} {parent_name} objects (the spec requires it)",
                    tally.count
                ),
                "not-in-spec" => format!(
                    "`{label}`: not in the spec; {seen}s{}",
                    if values.is_empty() {
                        String::new()
                    } else {
                        format!("; values seen: {}{more}", values.join(", "))
                    }
                ),
                "type" if tally.at_root => {
                    format!("body is {seen}, the spec says {} ({label})", tally.spec)
                }
                "type" => format!(
                    "`{label}`: {seen}, the spec says {} (in {} of {of})",
                    tally.spec, tally.count
                ),
                "enum" => format!(
                    "`{label}`: values not in the spec ({}): {}{more} (in {} of {of})",
                    tally.spec,
                    values.join(", "),
                    tally.count
                ),
                "format" => format!(
                    "`{label}`: {} of {of} values are {seen}{}",
                    tally.count,
                    if values.is_empty() {
                        String::new()
                    } else {
                        format!(": {}{more}", values.join(", "))
                    }
                ),
                _ => format!("`{label}`: {seen} (in {} of {of})", tally.count),
            };
            divergences.push(Divergence {
                check: "schema".into(),
                path: label.clone(),
                kind: kind.clone(),
                spec: tally.spec.clone(),
                seen,
                count: tally.count,
                of,
                values,
                message,
            });
        }
        for ((check, message), count) in &self.problems {
            let kind = match check.as_str() {
                "types" => "decode",
                "status" => "status",
                "body" => "shape",
                other => other,
            };
            let prefix = match check.as_str() {
                "types" => "generated types: ",
                _ => "",
            };
            divergences.push(Divergence {
                check: check.clone(),
                path: String::new(),
                kind: kind.to_string(),
                spec: String::new(),
                seen: message.clone(),
                count: *count,
                of: self.requests.max(*count),
                values: Vec::new(),
                message: if *count > 1 {
                    format!(
                        "{prefix}{message} (in {count} of {})",
                        self.requests.max(*count)
                    )
                } else {
                    format!("{prefix}{message}")
                },
            });
        }
        OperationReport {
            operation: self.operation.clone(),
            operation_id: self.operation_id.clone(),
            requests: self.requests,
            statuses: self.statuses.clone(),
            headers: self.headers.clone(),
            ok: divergences.is_empty(),
            divergences,
        }
    }
}

impl Report {
    pub(crate) fn build(
        base_url: &str,
        operations: &[OperationAggregate],
        notes: Vec<String>,
        read_only: bool,
    ) -> Report {
        let operations: Vec<OperationReport> = operations.iter().map(|o| o.finish()).collect();
        let divergences = operations.iter().map(|o| o.divergences.len()).sum();
        Report {
            base_url: base_url.to_string(),
            read_only,
            operations,
            notes,
            divergences,
        }
    }

    /// 0 when nothing diverged, 1 when something did (2, could not run, is the caller's).
    pub fn exit_code(&self) -> u8 {
        if self.divergences == 0 { 0 } else { 1 }
    }

    /// Every divergence message, prefixed by its operation (`GET /orders: …`).
    pub fn lines(&self) -> Vec<String> {
        self.operations
            .iter()
            .flat_map(|o| {
                o.divergences
                    .iter()
                    .map(move |d| format!("{}: {}", o.operation, d.message))
            })
            .collect()
    }

    /// The report as JSON (`--json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The report for people.
    pub fn to_human(&self) -> String {
        let mut text = format!("Checked {} against spec/openapi.json", self.base_url);
        text.push_str(if self.read_only {
            " (read-only: GET requests only).\n\n"
        } else {
            " (read-only REST; the probes asked for ran too).\n\n"
        });
        for operation in &self.operations {
            let statuses: Vec<String> = operation
                .statuses
                .iter()
                .map(|(s, n)| {
                    if *n > 1 {
                        format!("{s} ×{n}")
                    } else {
                        s.to_string()
                    }
                })
                .collect();
            let unit = if operation.statuses.is_empty() {
                "frame"
            } else {
                "request"
            };
            let count = format!(
                "{} {unit}{}{}",
                operation.requests,
                if operation.requests == 1 { "" } else { "s" },
                if statuses.is_empty() {
                    String::new()
                } else {
                    format!(": {}", statuses.join(", "))
                }
            );
            if operation.ok {
                text.push_str(&format!("{:<44} OK ({count})\n", operation.operation));
            } else {
                text.push_str(&format!(
                    "{:<44} {} divergence{} ({count})\n",
                    operation.operation,
                    operation.divergences.len(),
                    if operation.divergences.len() == 1 {
                        ""
                    } else {
                        "s"
                    }
                ));
                for divergence in &operation.divergences {
                    text.push_str(&format!("  - {}\n", divergence.message));
                }
            }
            if !operation.headers.is_empty() {
                let headers: Vec<String> = operation
                    .headers
                    .iter()
                    .filter(|(k, _)| k.as_str() != "content-type")
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                if !headers.is_empty() {
                    text.push_str(&format!("  headers: {}\n", headers.join("; ")));
                }
            }
        }
        for note in &self.notes {
            text.push_str(&format!("\nNote: {note}\n"));
        }
        let diverging = self.operations.iter().filter(|o| !o.ok).count();
        if diverging == 0 {
            text.push_str("\nNothing diverges from the spec.\n");
        } else {
            text.push_str(&format!(
                "\n{diverging} of {} operations diverge from the spec ({} divergences). Please \
                 send us the capture (--capture DIR): it is redacted.\n",
                self.operations.len(),
                self.divergences
            ));
        }
        text
    }
}
