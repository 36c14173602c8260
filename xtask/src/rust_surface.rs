//! The public items of generated Rust code as stable, sorted text, listed with syn on stable
//! Rust (cargo-public-api would need nightly).
//!
//! One line per public type (with its derives), field, enum variant, function, method (which
//! covers `rest::Client`'s operations and every builder setter), constant, type alias,
//! re-export and trait implementation. Doc comments and function bodies are ignored, so only a
//! change callers can see changes the text.

use quote::ToTokens;
use syn::{Fields, ImplItem, Item, Visibility};

/// The public surface of the Rust source `source` (a whole file, e.g. the generated
/// `rest.rs`). Paths are relative to the file (`types::Order`, `builder::ListOrders::status`).
pub fn rust_surface(source: &str) -> Result<String, syn::Error> {
    let file = syn::parse_file(source)?;
    let mut lines = Vec::new();
    items(&mut lines, "", &file.items);
    lines.sort();
    lines.dedup();
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

/// Token text with the spaces `to_string` puts around punctuation removed.
fn tidy(tokens: impl ToTokens) -> String {
    let mut text = tokens.to_token_stream().to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
        (" (", "("),
        ("( ", "("),
        (" )", ")"),
        (" [", "["),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
        (" : ", ": "),
        (" ?", "?"),
    ] {
        while text.contains(from) {
            text = text.replace(from, to);
        }
    }
    // `T: ::std::…` lost its space above; a trailing comma in generics is noise.
    text.replace(":::", ": ::")
        .replace(",>", ">")
        .replace(",(", ", (")
        // Trailing commas depend on who printed the code (prettyplease or quote).
        .replace(",)", ")")
        .replace(", }", " }")
}

fn derives(attrs: &[syn::Attribute]) -> String {
    let mut names: Vec<String> = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let _ = attr.parse_nested_meta(|meta| {
            names.push(tidy(&meta.path));
            Ok(())
        });
    }
    names.sort();
    if names.is_empty() {
        String::new()
    } else {
        format!(" derive({})", names.join(", "))
    }
}

fn fields(lines: &mut Vec<String>, owner: &str, fields: &Fields) {
    match fields {
        Fields::Named(named) => {
            for field in named.named.iter().filter(|f| is_pub(&f.vis)) {
                if let Some(ident) = &field.ident {
                    lines.push(format!("field {owner}.{ident}: {}", tidy(&field.ty)));
                }
            }
        }
        Fields::Unnamed(unnamed) => {
            for (i, field) in unnamed.unnamed.iter().enumerate() {
                if is_pub(&field.vis) {
                    lines.push(format!("field {owner}.{i}: {}", tidy(&field.ty)));
                }
            }
        }
        Fields::Unit => {}
    }
}

fn variant_shape(fields: &Fields) -> String {
    match fields {
        Fields::Named(named) => {
            let parts: Vec<String> = named
                .named
                .iter()
                .map(|f| {
                    format!(
                        "{}: {}",
                        f.ident.as_ref().map(|i| i.to_string()).unwrap_or_default(),
                        tidy(&f.ty)
                    )
                })
                .collect();
            format!(" {{ {} }}", parts.join(", "))
        }
        Fields::Unnamed(unnamed) => {
            let parts: Vec<String> = unnamed.unnamed.iter().map(|f| tidy(&f.ty)).collect();
            format!("({})", parts.join(", "))
        }
        Fields::Unit => String::new(),
    }
}

fn signature(sig: &syn::Signature) -> String {
    // Argument patterns (`mut self`, `value`) are not part of the surface; types are.
    let inputs: Vec<String> = sig
        .inputs
        .iter()
        .map(|input| match input {
            syn::FnArg::Receiver(receiver) => {
                let mut receiver = receiver.clone();
                receiver.mutability = None;
                tidy(&receiver)
            }
            syn::FnArg::Typed(typed) => format!("{}: {}", tidy(&typed.pat), tidy(&typed.ty)),
        })
        .collect();
    let mut text = format!(
        "{}{}{}({})",
        if sig.asyncness.is_some() {
            "async "
        } else {
            ""
        },
        sig.ident,
        tidy(&sig.generics),
        inputs.join(", ")
    );
    if let syn::ReturnType::Type(_, ty) = &sig.output {
        text.push_str(&format!(" -> {}", tidy(ty)));
    }
    if let Some(clause) = &sig.generics.where_clause {
        text.push(' ');
        text.push_str(tidy(clause).trim_end_matches(','));
    }
    text
}

/// `prefix` + `ty`, with `super::` and `self::` at the start of `ty` resolved against `prefix`.
fn qualify(prefix: &str, ty: &str) -> String {
    let mut modules: Vec<&str> = prefix.split("::").filter(|m| !m.is_empty()).collect();
    let mut rest = ty;
    loop {
        if let Some(tail) = rest.strip_prefix("super::") {
            modules.pop();
            rest = tail;
        } else if let Some(tail) = rest.strip_prefix("self::") {
            rest = tail;
        } else {
            break;
        }
    }
    modules.push(rest);
    modules.join("::")
}

fn items(lines: &mut Vec<String>, prefix: &str, list: &[Item]) {
    for item in list {
        match item {
            Item::Mod(m) if is_pub(&m.vis) => {
                lines.push(format!("mod {prefix}{}", m.ident));
                if let Some((_, content)) = &m.content {
                    items(lines, &format!("{prefix}{}::", m.ident), content);
                }
            }
            Item::Struct(s) if is_pub(&s.vis) => {
                let name = format!("{prefix}{}", s.ident);
                lines.push(format!(
                    "struct {name}{}{}",
                    tidy(&s.generics),
                    derives(&s.attrs)
                ));
                fields(lines, &name, &s.fields);
            }
            Item::Enum(e) if is_pub(&e.vis) => {
                let name = format!("{prefix}{}", e.ident);
                lines.push(format!(
                    "enum {name}{}{}",
                    tidy(&e.generics),
                    derives(&e.attrs)
                ));
                for variant in &e.variants {
                    lines.push(format!(
                        "variant {name}::{}{}",
                        variant.ident,
                        variant_shape(&variant.fields)
                    ));
                }
            }
            Item::Fn(f) if is_pub(&f.vis) => {
                lines.push(format!("fn {prefix}{}", signature(&f.sig)));
            }
            Item::Const(c) if is_pub(&c.vis) => {
                lines.push(format!("const {prefix}{}: {}", c.ident, tidy(&c.ty)));
            }
            Item::Static(s) if is_pub(&s.vis) => {
                lines.push(format!("static {prefix}{}: {}", s.ident, tidy(&s.ty)));
            }
            Item::Type(t) if is_pub(&t.vis) => {
                lines.push(format!(
                    "type {prefix}{}{} = {}",
                    t.ident,
                    tidy(&t.generics),
                    tidy(&t.ty)
                ));
            }
            Item::Use(u) if is_pub(&u.vis) => {
                let module = prefix.trim_end_matches("::");
                let module = if module.is_empty() { "root" } else { module };
                lines.push(format!("use in {module}: {}", tidy(&u.tree)));
            }
            Item::Trait(t) if is_pub(&t.vis) => {
                let name = format!("{prefix}{}", t.ident);
                lines.push(format!("trait {name}{}", tidy(&t.generics)));
                for member in &t.items {
                    if let syn::TraitItem::Fn(f) = member {
                        lines.push(format!("method {name}::{}", signature(&f.sig)));
                    }
                }
            }
            Item::Impl(i) => {
                let self_ty = qualify(prefix, &tidy(&i.self_ty));
                if let Some((negative, path, _)) = &i.trait_ {
                    lines.push(format!(
                        "impl{} {}{} for {self_ty}",
                        tidy(&i.generics),
                        if negative.is_some() { "!" } else { "" },
                        tidy(path)
                    ));
                    continue;
                }
                for member in &i.items {
                    match member {
                        ImplItem::Fn(f) if is_pub(&f.vis) => {
                            lines.push(format!("method {self_ty}::{}", signature(&f.sig)))
                        }
                        ImplItem::Const(c) if is_pub(&c.vis) => {
                            lines.push(format!("const {self_ty}::{}: {}", c.ident, tidy(&c.ty)))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}
