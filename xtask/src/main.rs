//! `cargo xtask spec refresh|surface|diff|normalize`: tracking the upstream OpenAPI document.

use std::{path::PathBuf, process::ExitCode};

use xtask::{
    check, diff, json,
    load::{self, Source},
    markdown, normalize, refresh, surface,
};

const USAGE: &str = "\
usage: cargo xtask spec <command>

  refresh [--from URL|PATH] [--spec PATH] [--record PATH]
      Fetch the upstream document (default https://connecttrade.com/openapi.json), normalize
      it, check that it generates, write spec/openapi.json and spec/SOURCE.md, and print the
      normalization report and the diff against the previous spec. Nothing is written on error.
  surface [--spec PATH]
      Print the API surface of a spec (default spec/openapi.json) as sorted lines.
  diff OLD NEW [--json|--markdown]
      Classify every difference between two specs (paths or URLs, JSON or YAML; both
      normalized first).
      --markdown prints the report as Markdown (the body of the upstream-spec pull request).
      Exit status: 0 nothing breaking, 1 something breaking, 2 could not compare.
  check [--from URL|PATH] [--spec PATH] [--markdown]
      Compare upstream (default https://connecttrade.com/openapi.json), prepared exactly as
      refresh would write it (normalized, named by the names.toml beside the spec, what it
      lacks kept), with the pinned spec (default spec/openapi.json); writes nothing.
      Exit status: 0 equal, 1 differs (the diff report is printed), 2 cannot tell.
  learn [--spec PATH] [--provenance PATH] DIR...
      Turn connect-trade-doctor captures into a spec change (normalized, checked, written
      atomically, recorded in PROVENANCE.md as observed) and print the diff report.
  normalize INPUT
      Print INPUT normalized to our conventions; the report goes to stderr.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["spec", "refresh", rest @ ..] => run_refresh(rest),
        ["spec", "surface", rest @ ..] => run_surface(rest),
        ["spec", "diff", rest @ ..] => run_diff(rest),
        ["spec", "check", rest @ ..] => run_check(rest),
        ["spec", "learn", rest @ ..] => xtask::learn::run(rest),
        ["spec", "normalize", input] => run_normalize(input),
        ["help" | "--help" | "-h"] | ["spec", "help" | "--help" | "-h"] => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage_error("unknown command"),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Named options (`--name value`, or `--flag` with an empty value) and positional arguments.
type Parsed<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>);

/// `--name value` options; everything else positional.
fn options<'a>(args: &[&'a str], names: &[&str], flags: &[&str]) -> Result<Parsed<'a>, String> {
    let mut named = Vec::new();
    let mut positional = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if flags.contains(arg) {
            named.push((*arg, ""));
        } else if names.contains(arg) {
            let value = iter.next().ok_or(format!("{arg} needs a value"))?;
            named.push((*arg, *value));
        } else if arg.starts_with("--") {
            return Err(format!("unknown option {arg}"));
        } else {
            positional.push(*arg);
        }
    }
    Ok((named, positional))
}

fn option<'a>(named: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    named.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn run_refresh(args: &[&str]) -> ExitCode {
    let (named, positional) = match options(args, &["--from", "--spec", "--record"], &[]) {
        Ok(parsed) => parsed,
        Err(message) => return usage_error(&message),
    };
    if !positional.is_empty() {
        return usage_error("refresh takes no positional arguments");
    }
    let source = Source::parse(option(&named, "--from").unwrap_or(load::DEFAULT_URL));
    let (spec, record) = (option(&named, "--spec"), option(&named, "--record"));
    let mut opts = match (spec, record) {
        // Both paths given: no workspace needed.
        (Some(spec), Some(record)) => refresh::RefreshOptions {
            source,
            spec_path: PathBuf::from(spec),
            record_path: PathBuf::from(record),
            // The naming file beside the spec, as in the repository's `spec/`.
            names_path: PathBuf::from(spec).with_file_name("names.toml"),
        },
        _ => match xtask::workspace_root() {
            Ok(root) => refresh::RefreshOptions::new(source, &root),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    if let Some(spec) = spec {
        opts.spec_path = PathBuf::from(spec);
    }
    if let Some(record) = record {
        opts.record_path = PathBuf::from(record);
    }
    match refresh::refresh(&opts) {
        Ok(outcome) => {
            println!(
                "Refreshed {} from {} (raw SHA-256 {}).",
                opts.spec_path.display(),
                opts.source,
                outcome.sha256
            );
            if !outcome.notes.is_empty() {
                println!("\nNormalization report ({}):", outcome.notes.len());
                for note in &outcome.notes {
                    println!("  {note}");
                }
            }
            println!("\nDifferences from the previous spec:");
            print!("{}", diff::render_human(&outcome.changes));
            if outcome.spec_changed {
                println!(
                    "\nNext: `cargo test` shows the API surface snapshots that changed; review them \
                     with `cargo insta review`, then bump the version (breaking → major)."
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "error: {error}\nspec left untouched: {}",
                opts.spec_path.display()
            );
            ExitCode::FAILURE
        }
    }
}

fn run_surface(args: &[&str]) -> ExitCode {
    let (named, positional) = match options(args, &["--spec"], &[]) {
        Ok(parsed) => parsed,
        Err(message) => return usage_error(&message),
    };
    if !positional.is_empty() {
        return usage_error("surface takes no positional arguments");
    }
    let path = match pinned_spec(option(&named, "--spec")) {
        Ok(path) => path,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    match load::read_spec(&path) {
        Ok(doc) => {
            print!(
                "{}",
                surface::spec_surface(&normalize::normalize(&doc).document)
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_diff(args: &[&str]) -> ExitCode {
    let (named, positional) = match options(args, &[], &["--json", "--markdown"]) {
        Ok(parsed) => parsed,
        Err(message) => return usage_error(&message),
    };
    let [old, new] = positional.as_slice() else {
        return usage_error("diff takes two specs: OLD NEW");
    };
    let (old, new) = match (read_source(old), read_source(new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("error: cannot compare: {error}");
            return ExitCode::from(2);
        }
    };
    let changes = diff::diff_documents(&old, &new);
    if option(&named, "--json").is_some() && option(&named, "--markdown").is_some() {
        return usage_error("--json and --markdown exclude each other");
    }
    if option(&named, "--json").is_some() {
        print!("{}", diff::render_json(&changes));
    } else if option(&named, "--markdown").is_some() {
        print!("{}", markdown::render(&changes));
    } else {
        print!("{}", diff::render_human(&changes));
    }
    if diff::has_breaking(&changes) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A spec from a path or an `http(s)://` URL (JSON or YAML).
fn read_source(text: &str) -> Result<serde_json::Value, xtask::Error> {
    let source = Source::parse(text);
    load::parse_document(&load::fetch(&source)?, &source.to_string())
}

/// `--spec PATH`, or `spec/openapi.json` of the workspace holding the current directory.
fn pinned_spec(given: Option<&str>) -> Result<PathBuf, xtask::Error> {
    match given {
        Some(path) => Ok(PathBuf::from(path)),
        None => Ok(xtask::workspace_root()?.join("spec/openapi.json")),
    }
}

fn run_check(args: &[&str]) -> ExitCode {
    let (named, positional) = match options(args, &["--from", "--spec"], &["--markdown"]) {
        Ok(parsed) => parsed,
        Err(message) => return usage_error(&message),
    };
    if !positional.is_empty() {
        return usage_error("check takes no positional arguments");
    }
    let source = Source::parse(option(&named, "--from").unwrap_or(load::DEFAULT_URL));
    let outcome = pinned_spec(option(&named, "--spec"))
        .and_then(|pinned| check::check(&source, &pinned).map(|outcome| (pinned, outcome)));
    let (pinned, outcome) = match outcome {
        Ok(found) => found,
        Err(error) => {
            eprintln!("error: cannot tell whether upstream changed: {error}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        check::Outcome::Equal => {
            println!("{} is up to date with {source}.", pinned.display());
            ExitCode::SUCCESS
        }
        check::Outcome::Differs(changes) => {
            if option(&named, "--markdown").is_some() {
                print!("{}", markdown::render(&changes));
            } else {
                println!(
                    "{} differs from {source} (run `cargo xtask spec refresh`):\n",
                    pinned.display()
                );
                print!("{}", diff::render_human(&changes));
            }
            ExitCode::from(1)
        }
    }
}

fn run_normalize(input: &str) -> ExitCode {
    match load::read_spec(input.as_ref()) {
        Ok(doc) => {
            let normalized = normalize::normalize(&doc);
            for note in &normalized.notes {
                eprintln!("{note}");
            }
            print!("{}", json::to_canonical_string(&normalized.document));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
