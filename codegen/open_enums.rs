//! The open enums of the SDK, generated at build time for every string enum of the spec.
//!
//! `build.rs` includes this file (`#[path]`) and writes [`source`]'s output to
//! `$OUT_DIR/codes.rs`, which `src/codes.rs` includes: one `open_enum!` per component string
//! enum of `spec/openapi.json` (its values plus `Unknown(String)`). Nothing here can fail the
//! build: a new enum upstream gets derived variant names and a generic doc comment. The enums
//! are `#[non_exhaustive]`: a value added upstream adds a variant, and a `match` outside the
//! SDK must already have a `_` arm for it (inside the SDK, hand-written code uses one too).
//!
//! What we add by hand lives beside the generated enums, keyed by the stable name (the name
//! `spec/names.toml` gives the enum):
//! - [`HAND`] (below): the enum's doc comment and, per value, its Rust variant name and doc.
//!   Values listed here are generated even when the spec no longer has them (documented as
//!   such), so hand-written code that names them keeps compiling.
//! - `src/codes.rs`: helper methods (`OrderStatus::is_terminal`, …) in `impl` blocks.

use serde_json::Value;

/// What we write by hand about one open enum.
pub struct Hand {
    /// The stable name (a component schema of `spec/openapi.json`).
    pub name: &'static str,
    /// The enum's doc comment.
    pub doc: &'static str,
    /// `(wire value, Rust variant, doc)`, in the documentation's order.
    pub values: &'static [(&'static str, &'static str, &'static str)],
}

/// The hand-written docs and variant names, keyed by stable name.
pub const HAND: &[Hand] = &[
    Hand {
        name: "BrokerCode",
        doc: "A broker's code, e.g. `ALPACA`. Connect Trade speaks of 21 brokers but publishes codes for 16: the others arrive as `Unknown`.",
        values: &[
            ("ALPACA", "Alpaca", "Alpaca."),
            ("BANKOFAMERICA", "BankOfAmerica", "Bank of America."),
            ("CAPITALONE", "CapitalOne", "Capital One."),
            ("CHASE", "Chase", "Chase."),
            ("CITI", "Citi", "Citi."),
            ("FIDELITY", "Fidelity", "Fidelity."),
            ("LIGHTSPEED", "Lightspeed", "Lightspeed."),
            ("PNC", "Pnc", "PNC."),
            ("PUBLIC", "Public", "Public."),
            ("TASTYTRADE", "Tastytrade", "tastytrade."),
            ("TD", "Td", "TD."),
            ("TRADESTATION", "TradeStation", "TradeStation."),
            ("TRADEZERO", "TradeZero", "TradeZero."),
            ("USBANK", "UsBank", "U.S. Bank."),
            ("WEBULL", "Webull", "Webull."),
            ("WELLSFARGO", "WellsFargo", "Wells Fargo."),
        ],
    },
    Hand {
        name: "ConnectionType",
        doc: "What a brokerage connection may be used for.",
        values: &[
            ("trade", "Trade", "Orders and account data."),
            ("readonly", "Readonly", "Account data only."),
            ("market_data", "MarketData", "The market data stream."),
        ],
    },
    Hand {
        name: "Instrument",
        doc: "The kind of instrument an order or position is in.",
        values: &[
            ("STK", "Equity", "An equity."),
            ("OPT", "Option", "A single-leg option."),
            (
                "MLEG_OPT",
                "MultiLegOption",
                "A multi-leg option order (2 to 4 legs).",
            ),
            (
                "FUT",
                "Future",
                "A future (the code is inferred: the documentation names futures but no code).",
            ),
        ],
    },
    Hand {
        name: "OrderSide",
        doc: "The side of an order, or the action of a leg.",
        values: &[
            ("BUY", "Buy", "Buy equity."),
            ("SELL", "Sell", "Sell equity."),
            ("SELL_SHORT", "SellShort", "Sell equity short."),
            (
                "BUY_TO_COVER",
                "BuyToCover",
                "Buy equity to close a short position (TradeStation).",
            ),
            (
                "BUY_TO_OPEN",
                "BuyToOpen",
                "Buy an option to open a position.",
            ),
            (
                "BUY_TO_CLOSE",
                "BuyToClose",
                "Buy an option to close a short position.",
            ),
            (
                "SELL_TO_OPEN",
                "SellToOpen",
                "Sell an option to open a short position.",
            ),
            (
                "SELL_TO_CLOSE",
                "SellToClose",
                "Sell an option to close a long position.",
            ),
        ],
    },
    Hand {
        name: "OrderStatus",
        doc: "The normalized status of an order.",
        values: &[
            (
                "pending",
                "Pending",
                "Submitted but not yet acknowledged by the broker.",
            ),
            ("working", "Working", "Active and waiting to be filled."),
            (
                "partially_filled",
                "PartiallyFilled",
                "Part filled; the remainder is still working.",
            ),
            ("filled", "Filled", "Completely filled."),
            ("cancelled", "Cancelled", "Cancelled."),
            ("rejected", "Rejected", "Rejected by the broker."),
            ("expired", "Expired", "Expired without being filled."),
            ("replaced", "Replaced", "Replaced by a modified order."),
            (
                "pending_cancel",
                "PendingCancel",
                "Cancel requested, not yet confirmed.",
            ),
            (
                "pending_replace",
                "PendingReplace",
                "Modify requested, not yet confirmed.",
            ),
        ],
    },
    Hand {
        name: "OrderStatusFilter",
        doc: "Which orders `GET /orders` returns.",
        values: &[
            ("all", "All", "Every order."),
            (
                "open",
                "Open",
                "Orders that can still change (the default).",
            ),
            ("closed", "Closed", "Finished orders."),
            ("pending", "Pending", "Only `pending` orders."),
            ("working", "Working", "Only `working` orders."),
            (
                "partially_filled",
                "PartiallyFilled",
                "Only `partially_filled` orders.",
            ),
            ("filled", "Filled", "Only `filled` orders."),
            ("cancelled", "Cancelled", "Only `cancelled` orders."),
            ("rejected", "Rejected", "Only `rejected` orders."),
            ("expired", "Expired", "Only `expired` orders."),
            ("replaced", "Replaced", "Only `replaced` orders."),
            (
                "pending_cancel",
                "PendingCancel",
                "Only `pending_cancel` orders.",
            ),
            (
                "pending_replace",
                "PendingReplace",
                "Only `pending_replace` orders.",
            ),
        ],
    },
    Hand {
        name: "SortOrder",
        doc: "Sort order of order history.",
        values: &[
            ("asc", "Asc", "Oldest first."),
            ("desc", "Desc", "Newest first."),
        ],
    },
    Hand {
        name: "TokenScope",
        doc: "A scope of a short-lived user token.",
        values: &[
            ("read", "Read", "Read account data."),
            (
                "trade",
                "Trade",
                "Place and manage orders (sent together with `read`).",
            ),
        ],
    },
    Hand {
        name: "TransactionType",
        doc: "The kind of a transaction (the set is inferred and open).",
        values: &[
            ("BUY", "Buy", "A purchase."),
            ("SELL", "Sell", "A sale."),
            ("DIVIDEND", "Dividend", "A dividend."),
            ("INTEREST", "Interest", "Interest."),
            ("DEPOSIT", "Deposit", "A deposit."),
            ("WITHDRAWAL", "Withdrawal", "A withdrawal."),
            ("FEE", "Fee", "A fee."),
            ("TRANSFER", "Transfer", "A transfer."),
            ("OTHER", "Other", "Anything else the broker reports."),
        ],
    },
    Hand {
        name: "OrderType",
        doc: "How an order executes.",
        values: &[
            (
                "MKT",
                "Market",
                "Market: executes immediately at the current market price.",
            ),
            (
                "LMT",
                "Limit",
                "Limit: executes only at the limit price or better.",
            ),
            (
                "STP",
                "Stop",
                "Stop: becomes a market order when the stop price is reached.",
            ),
            (
                "STPLMT",
                "StopLimit",
                "Stop-limit: becomes a limit order when the stop price is reached.",
            ),
        ],
    },
    Hand {
        name: "TimeInForce",
        doc: "How long an order stays active.",
        values: &[
            ("DAY", "Day", "Until the end of the regular trading day."),
            ("GTC", "Gtc", "Good till cancelled."),
            (
                "IOC",
                "Ioc",
                "Immediate or cancel: any unfilled part is cancelled.",
            ),
            (
                "FOK",
                "Fok",
                "Fill or kill: fills entirely at once or is cancelled.",
            ),
            ("OPEN", "Open", "Market on open."),
            ("CLOSE", "Close", "Market on close."),
            ("DAY+", "DayPlus", "Day, with extended hours."),
            (
                "GTC+",
                "GtcPlus",
                "Good till cancelled, with extended hours.",
            ),
        ],
    },
];

/// One generated enum: its name, doc, and `(wire, variant, doc)` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenEnum {
    /// The Rust type name (the component schema's name).
    pub name: String,
    /// The doc comment.
    pub doc: String,
    /// `(wire value, Rust variant, doc)`.
    pub values: Vec<(String, String, String)>,
}

/// The string values of a component schema that is a string enum.
fn string_enum_values(schema: &Value) -> Option<Vec<String>> {
    if schema.get("type").and_then(Value::as_str) != Some("string") {
        return None;
    }
    let values = schema.get("enum")?.as_array()?;
    Some(
        values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
    )
}

/// A Rust variant name for a wire value: `partially_filled` → `PartiallyFilled`,
/// `DAY+` → `DayPlus`, `MLEG_OPT` → `MlegOpt`, `marketData` → `MarketData`.
pub fn variant_name(wire: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in wire.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && previous_lower && !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            current.push(c);
        } else {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            match c {
                '+' => words.push("Plus".into()),
                '-' if words.is_empty() => words.push("Minus".into()),
                '.' => words.push("Dot".into()),
                _ => {}
            }
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    let mut name: String = words
        .iter()
        .map(|word| {
            let mut chars = word.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            first
                .into_iter()
                .chain(chars.map(|c| c.to_ascii_lowercase()))
                .collect::<String>()
        })
        .collect();
    if name.is_empty() {
        name = "Empty".into();
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, 'V');
    }
    if name == "Unknown" || name == "Self" {
        name.push_str("Value");
    }
    name
}

/// Every open enum to generate for the document `doc`: each component string enum, with the
/// hand-written names and docs of [`HAND`] where there are some, plus every enum of [`HAND`]
/// the spec lacks (so hand-written code naming it still compiles). Sorted by name.
pub fn open_enums(doc: &Value) -> Vec<OpenEnum> {
    let mut out: Vec<OpenEnum> = Vec::new();
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object);
    for (name, schema) in schemas.into_iter().flatten() {
        let Some(values) = string_enum_values(schema) else {
            continue;
        };
        let hand = HAND.iter().find(|h| h.name == name);
        let spec_doc = schema.get("description").and_then(Value::as_str);
        let mut text = match (hand, spec_doc) {
            (Some(hand), _) => hand.doc.to_string(),
            (None, Some(description)) => description.to_string(),
            (None, None) => format!("The API's `{name}` codes."),
        };
        if let Some(upstream) = schema.get("x-upstream-name").and_then(Value::as_str)
            && upstream != name
        {
            text.push_str(&format!("\n\nUpstream calls it `{upstream}`."));
        }
        out.push(build(name, text, &values, hand));
    }
    for hand in HAND {
        if out.iter().any(|e| e.name == hand.name) {
            continue;
        }
        let text = format!(
            "{}\n\nNot in the current `spec/openapi.json`: kept so code naming it still compiles; \
             it may be removed at the next major version.",
            hand.doc
        );
        out.push(build(hand.name, text, &[], Some(hand)));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn build(name: &str, doc: String, values: &[String], hand: Option<&Hand>) -> OpenEnum {
    let mut out = OpenEnum {
        name: name.to_string(),
        doc,
        values: Vec::new(),
    };
    let mut taken: Vec<String> = Vec::new();
    let mut push = |wire: &str, variant: String, doc: String| {
        let mut unique = variant.clone();
        let mut n = 2;
        while taken.contains(&unique) {
            unique = format!("{variant}{n}");
            n += 1;
        }
        taken.push(unique.clone());
        out.values.push((wire.to_string(), unique, doc));
    };
    let hand_values = hand.map(|h| h.values).unwrap_or(&[]);
    // Hand-named variants first claim their names, so a derived name never takes one.
    let mut ordered: Vec<(&str, Option<&(&str, &str, &str)>)> = Vec::new();
    for wire in values {
        if ordered.iter().any(|(w, _)| w == wire) {
            continue;
        }
        ordered.push((wire, hand_values.iter().find(|(w, _, _)| w == wire)));
    }
    let kept: Vec<&(&str, &str, &str)> = hand_values
        .iter()
        .filter(|(w, _, _)| !values.iter().any(|v| v == w))
        .collect();
    let reserved: Vec<&str> = hand_values.iter().map(|(_, v, _)| *v).collect();
    for (wire, hand) in &ordered {
        match hand {
            Some((_, variant, doc)) => push(wire, variant.to_string(), doc.to_string()),
            None => {
                let mut variant = variant_name(wire);
                if reserved.contains(&variant.as_str()) {
                    variant.push_str("Value");
                }
                push(wire, variant, String::new())
            }
        }
    }
    for (wire, variant, doc) in kept {
        let note = "Not in the current spec: kept so code naming it still compiles.";
        let doc = if doc.is_empty() {
            note.to_string()
        } else {
            format!("{doc} {note}")
        };
        push(wire, variant.to_string(), doc);
    }
    out
}

/// The Rust source of the open enums of `doc`: one `open_enum!` invocation each (the macro of
/// `src/codes.rs`, which includes this output).
pub fn source(doc: &Value) -> String {
    let mut text = String::from(
        "// Generated by build.rs from spec/openapi.json and codegen/open_enums.rs: do not edit.\n",
    );
    for e in open_enums(doc) {
        text.push_str("\nopen_enum! {\n");
        for line in e.doc.lines() {
            text.push_str(&format!(
                "    #[doc = {:?}]\n",
                format!(" {line}").trim_end()
            ));
        }
        text.push_str(&format!("    {} {{\n", e.name));
        for (wire, variant, doc) in &e.values {
            if !doc.is_empty() {
                text.push_str(&format!("        #[doc = {:?}]\n", format!(" {doc}")));
            }
            text.push_str(&format!("        {variant} = {wire:?},\n"));
        }
        text.push_str("    }\n}\n");
    }
    text
}
