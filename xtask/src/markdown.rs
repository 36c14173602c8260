//! The diff report as Markdown: the body of the pull request the upstream-spec workflow opens.

use std::collections::BTreeSet;

use crate::diff::{Change, RULES, Severity, has_breaking};

/// The first line says whether anything breaks (and so which version to bump); then one table
/// per severity, then what each rule that fired means.
pub fn render(changes: &[Change]) -> String {
    let breaking = changes
        .iter()
        .filter(|c| c.severity == Severity::Breaking)
        .count();
    let mut text = String::from("## Upstream API changes\n\n");
    if changes.is_empty() {
        text.push_str("No differences in the API surface.\n");
        return text;
    }
    let non_breaking = changes.len() - breaking;
    text.push_str(&if has_breaking(changes) {
        format!(
            "**Breaking**: {breaking} breaking and {non_breaking} non-breaking change(s). \
             Release as a new major version.\n"
        )
    } else {
        format!("**Not breaking**: {non_breaking} change(s). Release as a new minor version.\n")
    });
    for (severity, title) in [
        (Severity::Breaking, "Breaking changes"),
        (Severity::NonBreaking, "Non-breaking changes"),
    ] {
        let group: Vec<&Change> = changes.iter().filter(|c| c.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        text.push_str(&format!(
            "\n### {title} ({})\n\n| rule | where | what |\n|---|---|---|\n",
            group.len()
        ));
        for change in group {
            text.push_str(&format!(
                "| `{}` | {} | {} |\n",
                change.rule,
                code(&change.location),
                cell(&change.detail)
            ));
        }
    }
    let fired: BTreeSet<&str> = changes.iter().map(|c| c.rule).collect();
    text.push_str("\n### Rules\n\n");
    for (rule, meaning) in RULES
        .iter()
        .chain(crate::names::RULES)
        .filter(|(rule, _)| fired.contains(rule))
    {
        text.push_str(&format!("- `{rule}`: {}\n", cell(meaning)));
    }
    text
}

/// Text safe inside a table cell: no line breaks, `|` escaped, HTML-ish characters inert.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\r', '\n'], " ")
}

/// A location as inline code (backticks inside become a longer fence).
fn code(text: &str) -> String {
    let text = cell(text).replace("&lt;", "<").replace("&gt;", ">");
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(severity: Severity, rule: &'static str, location: &str, detail: &str) -> Change {
        Change {
            severity,
            rule,
            location: location.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn says_breaking_first_and_tables_every_change() {
        let text = render(&[
            change(
                Severity::Breaking,
                "operation-removed",
                "POST /orders",
                "gone",
            ),
            change(
                Severity::NonBreaking,
                "operation-added",
                "GET /x",
                "a | b\nc",
            ),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("**Breaking**"), "{text}");
        assert!(text.contains("| `operation-removed` | `POST /orders` | gone |"));
        assert!(text.contains("| `operation-added` | `GET /x` | a \\| b c |"));
        assert!(text.contains("- `operation-removed`: breaking"));
    }

    #[test]
    fn non_breaking_and_empty_reports() {
        let text = render(&[change(
            Severity::NonBreaking,
            "operation-added",
            "GET /x",
            "new",
        )]);
        assert!(text.contains("**Not breaking**"), "{text}");
        assert!(!text.contains("### Breaking"));
        assert!(render(&[]).contains("No differences"));
    }
}
