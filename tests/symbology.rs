//! OCC option symbols and CQS equity symbols: the documentation's examples, the edge cases
//! other SDKs get wrong (padded roots, digits in roots, index weeklies, big and 3-decimal
//! strikes, every penny strike), errors that point at the wrong character, serde, and
//! property tests.

use chrono::NaiveDate;
use connect_trade::symbology::{
    EquityKind, EquitySymbol, OptionRight, OptionSymbol, SymbolError, SymbolKind, SymbolPart,
};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::str::FromStr;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn option_err(text: &str) -> SymbolError {
    match text.parse::<OptionSymbol>() {
        Ok(symbol) => panic!("{text:?} parsed as {symbol}"),
        Err(e) => e,
    }
}

fn equity_err(text: &str) -> SymbolError {
    match text.parse::<EquitySymbol>() {
        Ok(symbol) => panic!("{text:?} parsed as {symbol}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

#[test]
fn the_documentation_examples_parse_into_their_parts() {
    let cases = [
        (
            "TSLA251031C00437500",
            "TSLA",
            date(2025, 10, 31),
            OptionRight::Call,
            "437.5",
        ),
        (
            "AAPL241018P00190000",
            "AAPL",
            date(2024, 10, 18),
            OptionRight::Put,
            "190",
        ),
        (
            "SPY241018C00430000",
            "SPY",
            date(2024, 10, 18),
            OptionRight::Call,
            "430",
        ),
    ];
    for (text, root, expiry, right, strike) in cases {
        let symbol: OptionSymbol = text.parse().unwrap();
        assert_eq!(symbol.root(), root);
        assert_eq!(symbol.expiry(), expiry);
        assert_eq!(symbol.right(), right);
        assert_eq!(symbol.strike(), dec(strike));
        assert_eq!(symbol.underlying(), root);
        assert_eq!(symbol.to_string(), text);
    }
}

#[test]
fn the_padded_form_parses_and_prints_back() {
    let symbol: OptionSymbol = "SPXW  240420C05040000".parse().unwrap();
    assert_eq!(symbol.root(), "SPXW");
    assert_eq!(symbol.strike(), dec("5040"));
    assert_eq!(symbol.to_string(), "SPXW240420C05040000");
    assert_eq!(symbol.padded(), "SPXW  240420C05040000");
    assert_eq!(symbol, "SPXW240420C05040000".parse().unwrap());

    let one_letter: OptionSymbol = "F     250117P00012500".parse().unwrap();
    assert_eq!(one_letter.root(), "F");
    assert_eq!(one_letter.to_string(), "F250117P00012500");
    assert_eq!(one_letter.padded().len(), 21);
}

#[test]
fn a_six_character_root_is_the_same_in_both_forms() {
    let symbol: OptionSymbol = "GOOGL1250117C00150000".parse().unwrap();
    assert_eq!(symbol.root(), "GOOGL1");
    assert_eq!(symbol.padded(), symbol.to_string());
}

#[test]
fn roots_with_digits_after_corporate_actions_keep_them() {
    let symbol: OptionSymbol = "BABA2250117C00100000".parse().unwrap();
    assert_eq!(symbol.root(), "BABA2");
    assert_eq!(
        symbol.underlying(),
        "BABA2",
        "adjusted roots are not mapped"
    );
    assert_eq!(symbol.padded(), "BABA2 250117C00100000");
}

#[test]
fn index_weekly_roots_map_to_their_underlying() {
    for (root, underlying) in [
        ("SPXW", "SPX"),
        ("SPXPM", "SPX"),
        ("NDXP", "NDX"),
        ("RUTW", "RUT"),
        ("VIXW", "VIX"),
        ("SPX", "SPX"),
        ("XSP", "XSP"),
        ("SPY", "SPY"),
    ] {
        let symbol =
            OptionSymbol::new(root, date(2024, 4, 19), OptionRight::Put, dec("100")).unwrap();
        assert_eq!(symbol.underlying(), underlying, "{root}");
    }
}

#[test]
fn strikes_keep_three_decimals_and_go_up_to_99999_999() {
    let cases = [
        ("12.345", "XYZ250117C00012345"),
        ("0.001", "XYZ250117C00000001"),
        ("10500", "XYZ250117C10500000"),
        ("99999.999", "XYZ250117C99999999"),
        ("437.500", "XYZ250117C00437500"),
    ];
    for (strike, text) in cases {
        let symbol =
            OptionSymbol::new("XYZ", date(2025, 1, 17), OptionRight::Call, dec(strike)).unwrap();
        assert_eq!(symbol.to_string(), text);
        let parsed: OptionSymbol = text.parse().unwrap();
        assert_eq!(parsed, symbol);
        assert_eq!(parsed.strike(), dec(strike));
    }
    assert_eq!(
        "XYZ250117C00437500"
            .parse::<OptionSymbol>()
            .unwrap()
            .strike_thousandths(),
        437_500
    );
}

#[test]
fn every_penny_strike_below_1000_round_trips_exactly() {
    let expiry = date(2025, 10, 31);
    for cents in 1..=99_999i64 {
        let strike = Decimal::new(cents, 2);
        let symbol = OptionSymbol::new("SPY", expiry, OptionRight::Put, strike).unwrap();
        let text = symbol.to_string();
        assert_eq!(
            &text[text.len() - 8..],
            format!("{:08}", cents * 10),
            "{strike}"
        );
        let parsed: OptionSymbol = text.parse().unwrap();
        assert_eq!(parsed, symbol, "{text}");
        assert_eq!(parsed.strike(), strike, "{text}");
        assert_eq!(parsed.padded().parse::<OptionSymbol>().unwrap(), symbol);
    }
}

#[test]
fn new_refuses_strikes_it_would_have_to_round_or_cannot_write() {
    let expiry = date(2025, 10, 31);
    for strike in [
        "437.5001", "0.0005", "100000", "123456.7", "0", "-5", "0.0000",
    ] {
        let err = OptionSymbol::new("TSLA", expiry, OptionRight::Call, dec(strike)).unwrap_err();
        assert_eq!(err.part(), SymbolPart::Strike, "{strike}: {err}");
        assert_eq!(err.position(), None);
        assert_eq!(err.kind(), SymbolKind::Option);
    }
    let err = OptionSymbol::new("TSLA", expiry, OptionRight::Call, dec("437.5001")).unwrap_err();
    assert!(err.to_string().contains("more than 3 decimals"), "{err}");
    assert!(err.to_string().contains("437.5001"), "{err}");
}

#[test]
fn new_refuses_bad_roots_and_unwritable_years() {
    let ok = dec("10");
    let err = OptionSymbol::new("tsla", date(2025, 1, 17), OptionRight::Call, ok).unwrap_err();
    assert_eq!((err.part(), err.position()), (SymbolPart::Root, Some(1)));
    assert!(
        err.to_string().contains("TSLA"),
        "suggests upper case: {err}"
    );
    let err = OptionSymbol::new("", date(2025, 1, 17), OptionRight::Call, ok).unwrap_err();
    assert_eq!(err.part(), SymbolPart::Root);
    let err = OptionSymbol::new("TOOLONG", date(2025, 1, 17), OptionRight::Call, ok).unwrap_err();
    assert_eq!((err.part(), err.position()), (SymbolPart::Root, Some(7)));
    let err = OptionSymbol::new("SP Y", date(2025, 1, 17), OptionRight::Call, ok).unwrap_err();
    assert_eq!((err.part(), err.position()), (SymbolPart::Root, Some(3)));
    for year in [1999, 2100] {
        let err = OptionSymbol::new("SPY", date(year, 1, 17), OptionRight::Call, ok).unwrap_err();
        assert_eq!(err.part(), SymbolPart::Expiry, "{year}");
    }
    assert!(OptionSymbol::new("SPY", date(2099, 12, 31), OptionRight::Call, ok).is_ok());
    assert!(OptionSymbol::new("SPY", date(2000, 1, 1), OptionRight::Call, ok).is_ok());
}

#[test]
fn parse_errors_name_the_part_and_the_character() {
    // (input, part, 1-based position, words the message must contain)
    let cases: &[(&str, SymbolPart, Option<usize>, &str)] = &[
        ("", SymbolPart::Whole, None, "empty"),
        (
            " TSLA251031C00437500",
            SymbolPart::Whole,
            Some(1),
            "whitespace",
        ),
        (
            "TSLA251031C00437500\n",
            SymbolPart::Whole,
            Some(20),
            "whitespace",
        ),
        ("TSLÄ251031C00437500", SymbolPart::Whole, Some(4), "ASCII"),
        ("tsla251031C00437500", SymbolPart::Root, Some(1), "TSLA"),
        (
            "TOOLONG251031C00437500",
            SymbolPart::Root,
            Some(7),
            "1 to 6",
        ),
        ("TS-A251031C00437500", SymbolPart::Root, Some(3), "'-'"),
        (
            "TSLA251331C00437500",
            SymbolPart::Expiry,
            Some(7),
            "month 13",
        ),
        ("TSLA250231C00437500", SymbolPart::Expiry, Some(9), "day 31"),
        ("TSLA250229C00437500", SymbolPart::Expiry, Some(9), "day 29"),
        ("TSLA25X031C00437500", SymbolPart::Expiry, Some(7), "'X'"),
        (
            "TSLA251031X00437500",
            SymbolPart::Right,
            Some(11),
            "C (call) or P (put)",
        ),
        (
            "TSLA251031c00437500",
            SymbolPart::Right,
            Some(11),
            "C (call) or P (put)",
        ),
        (
            "TSLA251031C0043750",
            SymbolPart::Strike,
            Some(12),
            "7 digits",
        ),
        (
            "TSLA251031C004375000",
            SymbolPart::Strike,
            Some(12),
            "9 digits",
        ),
        ("TSLA251031C00000000", SymbolPart::Strike, Some(12), "0"),
        ("TSLA251031C", SymbolPart::Strike, Some(12), "0 digits"),
        ("251031C00437500", SymbolPart::Whole, Some(1), "too short"),
        ("SPXW 240420C05040000", SymbolPart::Root, Some(5), "21"),
        (
            "SP XW 240420C05040000",
            SymbolPart::Root,
            Some(3),
            "inside the root",
        ),
        (
            "      240420C05040000",
            SymbolPart::Whole,
            Some(1),
            "whitespace",
        ),
        ("TSLA", SymbolPart::Whole, Some(4), "8-digit strike"),
    ];
    for (input, part, position, words) in cases {
        let err = option_err(input);
        assert_eq!(err.part(), *part, "{input:?}: {err}");
        assert_eq!(err.position(), *position, "{input:?}: {err}");
        assert!(err.to_string().contains(words), "{input:?}: {err}");
        assert!(
            err.to_string().starts_with("invalid option symbol"),
            "{err}"
        );
    }
    // The message shows the input and the position.
    let err = option_err("TSLA251331C00437500");
    assert_eq!(
        err.to_string(),
        "invalid option symbol \"TSLA251331C00437500\": expiry, character 7: month 13 does not \
         exist (expiry is YYMMDD)"
    );
}

#[test]
fn a_symbol_error_converts_into_the_sdk_error() {
    fn parse(text: &str) -> connect_trade::Result<OptionSymbol> {
        Ok(text.parse::<OptionSymbol>()?)
    }
    let err = parse("TSLA251331C00437500").unwrap_err();
    // The typed error survives `?`, with its own checks.
    match &err {
        connect_trade::Error::Symbol(symbol) => {
            assert_eq!(symbol.part(), SymbolPart::Expiry);
            assert_eq!(symbol.position(), Some(7));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("month 13"), "{err}");
}

#[test]
fn long_inputs_are_quoted_shortened() {
    let long = "A".repeat(500);
    let err = option_err(&long);
    assert!(err.to_string().len() < 300, "{err}");
    assert!(err.input().ends_with('…'));
}

#[test]
fn option_symbols_serialize_as_the_compact_string() {
    #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema, PartialEq, Debug)]
    struct Leg {
        symbol: OptionSymbol,
        right: OptionRight,
    }
    let leg = Leg {
        symbol: "SPXW  240420C05040000".parse().unwrap(),
        right: OptionRight::Put,
    };
    let json = serde_json::to_string(&leg).unwrap();
    assert_eq!(json, r#"{"symbol":"SPXW240420C05040000","right":"P"}"#);
    assert_eq!(serde_json::from_str::<Leg>(&json).unwrap(), leg);
    let padded: Leg =
        serde_json::from_str(r#"{"symbol":"SPXW  240420C05040000","right":"P"}"#).unwrap();
    assert_eq!(padded, leg);
    let err =
        serde_json::from_str::<Leg>(r#"{"symbol":"SPXW240420C0504000","right":"P"}"#).unwrap_err();
    assert!(err.to_string().contains("strike"), "{err}");
    assert!(serde_json::from_str::<Leg>(r#"{"symbol":"SPY241018C00430000","right":"X"}"#).is_err());

    let schema = serde_json::to_value(schemars::schema_for!(Leg)).unwrap();
    let symbol = &schema["properties"]["symbol"];
    let symbol = if let Some(reference) = symbol["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        &schema["$defs"][name]
    } else {
        symbol
    };
    assert_eq!(symbol["type"], "string");
    assert_eq!(symbol["pattern"], "^[A-Z0-9]{1,6}[0-9]{6}[CP][0-9]{8}$");
}

#[test]
fn option_symbols_order_by_root_then_expiry_right_and_strike() {
    let mut symbols: Vec<OptionSymbol> = [
        "SPY241018C00430000",
        "SPXW240420C05040000",
        "SPY241018C00420000",
        "SPY240920P00430000",
        "SP241018C00430000",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    symbols.sort();
    let texts: Vec<String> = symbols.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "SP241018C00430000",
            "SPXW240420C05040000",
            "SPY240920P00430000",
            "SPY241018C00420000",
            "SPY241018C00430000",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Equities
// ---------------------------------------------------------------------------------------------

#[test]
fn every_documented_cqs_suffix_parses_and_prints_back() {
    let cases = [
        ("IBM", EquityKind::Common),
        ("IBMp", EquityKind::Preferred(None)),
        ("IBMpA", EquityKind::Preferred(Some('A'))),
        ("IBM/B", EquityKind::Class('B')),
        ("IBMr", EquityKind::Rights),
        ("IBM/WS", EquityKind::Warrants),
        ("IBMw", EquityKind::WhenIssued),
    ];
    for (text, kind) in cases {
        let symbol: EquitySymbol = text.parse().unwrap();
        assert_eq!(symbol.root(), "IBM", "{text}");
        assert_eq!(symbol.kind(), kind, "{text}");
        assert_eq!(symbol.to_string(), text);
        assert_eq!(EquitySymbol::new("IBM", kind).unwrap(), symbol);
    }
    for common in ["A", "MSFT", "GOOGL", "TSLA"] {
        let symbol: EquitySymbol = common.parse().unwrap();
        assert_eq!((symbol.root(), symbol.kind()), (common, EquityKind::Common));
    }
}

#[test]
fn share_classes_convert_to_and_from_the_dotted_form() {
    let b: EquitySymbol = "BRK/B".parse().unwrap();
    assert_eq!(b.dotted(), "BRK.B");
    assert_eq!(EquitySymbol::from_dotted("BRK.B").unwrap(), b);
    let ws = EquitySymbol::from_dotted("IBM.WS").unwrap();
    assert_eq!(ws.kind(), EquityKind::Warrants);
    assert_eq!(ws.to_string(), "IBM/WS");
    // Kinds without a slash are written the same way in both forms.
    for text in ["MSFT", "IBMpA", "IBMr", "IBMw"] {
        let symbol = EquitySymbol::from_dotted(text).unwrap();
        assert_eq!(symbol.dotted(), text);
        assert_eq!(symbol.to_string(), text);
    }
    let err = EquitySymbol::from_dotted("BRK/B").unwrap_err();
    assert_eq!((err.part(), err.position()), (SymbolPart::Suffix, Some(4)));
    let err = EquitySymbol::from_dotted("BRK.bb").unwrap_err();
    assert_eq!((err.part(), err.position()), (SymbolPart::Suffix, Some(5)));
    assert!(
        err.to_string().contains("BRK.B"),
        "uses the dotted spelling: {err}"
    );
}

#[test]
fn equity_errors_name_the_part_and_the_character() {
    let cases: &[(&str, SymbolPart, Option<usize>, &str)] = &[
        ("", SymbolPart::Whole, None, "empty"),
        ("MSFT ", SymbolPart::Whole, Some(5), "whitespace"),
        ("msft", SymbolPart::Root, Some(1), "MSFT"),
        ("ABCDEFG", SymbolPart::Root, Some(7), "at most 6"),
        ("BRK.B", SymbolPart::Suffix, Some(4), "from_dotted"),
        (
            "IBMx",
            SymbolPart::Suffix,
            Some(4),
            "does not start a CQS suffix",
        ),
        ("IBMpAB", SymbolPart::Suffix, Some(5), "series letter"),
        ("IBMpa", SymbolPart::Suffix, Some(5), "series letter"),
        ("IBM/", SymbolPart::Suffix, Some(5), "class letter"),
        ("IBM/ws", SymbolPart::Suffix, Some(5), "class letter"),
        ("IBM/WSX", SymbolPart::Suffix, Some(5), "class letter"),
        ("IBMrw", SymbolPart::Suffix, Some(5), "nothing may follow"),
        ("1BM", SymbolPart::Root, Some(1), "upper-case"),
        ("IBM€", SymbolPart::Whole, Some(4), "ASCII"),
    ];
    for (input, part, position, words) in cases {
        let err = equity_err(input);
        assert_eq!(err.part(), *part, "{input:?}: {err}");
        assert_eq!(err.position(), *position, "{input:?}: {err}");
        assert!(err.to_string().contains(words), "{input:?}: {err}");
        assert_eq!(err.kind(), SymbolKind::Equity);
    }
}

#[test]
fn equity_new_checks_root_and_letters() {
    assert_eq!(
        EquitySymbol::new("ibm", EquityKind::Common)
            .unwrap_err()
            .part(),
        SymbolPart::Root
    );
    assert_eq!(
        EquitySymbol::new("BRK", EquityKind::Class('b'))
            .unwrap_err()
            .part(),
        SymbolPart::Suffix
    );
    assert_eq!(
        EquitySymbol::new("IBM", EquityKind::Preferred(Some('1')))
            .unwrap_err()
            .part(),
        SymbolPart::Suffix
    );
}

#[test]
fn equity_symbols_serialize_as_cqs() {
    #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema, PartialEq, Debug)]
    struct Holding {
        symbol: EquitySymbol,
    }
    let h = Holding {
        symbol: "BRK/B".parse().unwrap(),
    };
    let json = serde_json::to_string(&h).unwrap();
    assert_eq!(json, r#"{"symbol":"BRK/B"}"#);
    assert_eq!(serde_json::from_str::<Holding>(&json).unwrap(), h);
    assert!(serde_json::from_str::<Holding>(r#"{"symbol":"BRK.B"}"#).is_err());
    let schema = serde_json::to_string(&schemars::schema_for!(Holding)).unwrap();
    assert!(schema.contains("CQS"), "{schema}");
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

fn option_symbol() -> impl Strategy<Value = OptionSymbol> {
    let first = date(2000, 1, 1);
    (
        "[A-Z0-9]{1,6}",
        0i64..36_524, // days from 2000-01-01 to 2099-12-31
        prop::bool::ANY,
        1u32..100_000_000,
    )
        .prop_map(move |(root, days, call, thousandths)| {
            let expiry = first + chrono::Duration::days(days);
            let right = if call {
                OptionRight::Call
            } else {
                OptionRight::Put
            };
            OptionSymbol::new(root, expiry, right, Decimal::new(thousandths.into(), 3)).unwrap()
        })
}

fn equity_symbol() -> impl Strategy<Value = EquitySymbol> {
    let kind = prop_oneof![
        Just(EquityKind::Common),
        Just(EquityKind::Preferred(None)),
        prop::char::range('A', 'Z').prop_map(|c| EquityKind::Preferred(Some(c))),
        prop::char::range('A', 'Z').prop_map(EquityKind::Class),
        Just(EquityKind::Rights),
        Just(EquityKind::Warrants),
        Just(EquityKind::WhenIssued),
    ];
    ("[A-Z]{1,6}", kind).prop_map(|(root, kind)| EquitySymbol::new(root, kind).unwrap())
}

proptest! {
    #[test]
    fn option_parse_of_display_is_identity(symbol in option_symbol()) {
        let compact = symbol.to_string();
        prop_assert_eq!(compact.parse::<OptionSymbol>().unwrap(), symbol);
        prop_assert_eq!(symbol.padded().len(), 21);
        prop_assert_eq!(symbol.padded().parse::<OptionSymbol>().unwrap(), symbol);
        let json = serde_json::to_string(&symbol).unwrap();
        prop_assert_eq!(serde_json::from_str::<OptionSymbol>(&json).unwrap(), symbol);
    }

    #[test]
    fn option_parser_never_panics(text in "\\PC{0,30}") {
        let _ = text.parse::<OptionSymbol>();
    }

    #[test]
    fn option_parser_never_panics_near_the_format(
        text in "[A-Z0-9a-z ]{0,7}[0-9]{0,7}[CPX ]?[0-9 ]{0,9}"
    ) {
        if let Ok(symbol) = text.parse::<OptionSymbol>() {
            // Whatever it accepts prints back to one of the two forms it came from.
            prop_assert!(symbol.to_string() == text || symbol.padded() == text);
        }
    }

    #[test]
    fn equity_parse_of_display_is_identity(symbol in equity_symbol()) {
        prop_assert_eq!(symbol.to_string().parse::<EquitySymbol>().unwrap(), symbol.clone());
        prop_assert_eq!(EquitySymbol::from_dotted(&symbol.dotted()).unwrap(), symbol);
    }

    #[test]
    fn equity_parser_never_panics(text in "\\PC{0,12}") {
        let _ = text.parse::<EquitySymbol>();
        let _ = EquitySymbol::from_dotted(&text);
    }

    #[test]
    fn equity_parser_never_panics_near_the_format(text in "[A-Za-z]{0,7}[pPrw/.]?[A-Za-z/.]{0,3}") {
        if let Ok(symbol) = text.parse::<EquitySymbol>() {
            prop_assert_eq!(symbol.to_string(), text);
        }
    }
}
