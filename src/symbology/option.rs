//! OCC OSI option symbols.

use std::{fmt, str::FromStr};

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::{SymbolError, SymbolKind, SymbolPart, check_text};

/// Length of the fixed tail of an OSI symbol: `YYMMDD` + `C|P` + 8 strike digits.
const TAIL: usize = 15;
/// Longest root.
const MAX_ROOT: usize = 6;
/// Length of the padded form.
const PADDED_LEN: usize = MAX_ROOT + TAIL;
/// Strikes are below this many thousandths (100,000.000: 8 digits = 5 + 3).
const STRIKE_LIMIT_THOUSANDTHS: u32 = 100_000_000;

/// Roots whose series belong to an underlying of another name, as `(root, underlying)`;
/// documented, with sources, on [`OptionSymbol::underlying`].
const UNDERLYING_OF_ROOT: &[(&str, &str)] = &[
    ("SPXW", "SPX"),
    ("SPXPM", "SPX"),
    ("NDXP", "NDX"),
    ("RUTW", "RUT"),
    ("VIXW", "VIX"),
];

/// A call or a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OptionRight {
    /// A call: the right to buy.
    Call,
    /// A put: the right to sell.
    Put,
}

impl OptionRight {
    /// The OSI letter: `C` or `P`.
    pub fn as_char(self) -> char {
        match self {
            OptionRight::Call => 'C',
            OptionRight::Put => 'P',
        }
    }

    /// The right written as the OSI letter `c` (`C` or `P`), if it is one.
    pub fn from_char(c: char) -> Option<Self> {
        match c {
            'C' => Some(OptionRight::Call),
            'P' => Some(OptionRight::Put),
            _ => None,
        }
    }
}

impl fmt::Display for OptionRight {
    /// `C` or `P`, as in the symbol.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// An OCC OSI option symbol: root, expiration date, call or put, strike.
///
/// Parses both the compact form the API uses (`TSLA251031C00437500`) and the standard
/// 21-character form whose root is padded with spaces to 6 characters
/// (`SPXW  240420C05040000`); [`Display`](fmt::Display) writes the compact form and
/// [`padded`](Self::padded) the padded one. Parsing is strict: no trimming, no lower case,
/// no rounding.
///
/// - Root: 1 to 6 upper-case letters or digits (digits appear after corporate actions:
///   `BABA2`).
/// - Expiry: `YYMMDD`, a real date in 2000 to 2099.
/// - Right: `C` or `P`.
/// - Strike: 8 digits holding the price × 1000, so strikes are exact to 3 decimals and
///   below 100,000. A strike with more decimals or out of range is an error.
///
/// Serializes (serde) as the compact string and deserializes from either form.
///
/// ```
/// use chrono::NaiveDate;
/// use connect_trade::symbology::{OptionRight, OptionSymbol};
/// use rust_decimal::Decimal;
///
/// let spxw: OptionSymbol = "SPXW  240420C05040000".parse()?;
/// assert_eq!(spxw.to_string(), "SPXW240420C05040000");
/// assert_eq!(spxw.underlying(), "SPX");
///
/// let built = OptionSymbol::new(
///     "TSLA",
///     NaiveDate::from_ymd_opt(2025, 10, 31).unwrap(),
///     OptionRight::Call,
///     Decimal::new(43750, 2), // 437.50
/// )?;
/// assert_eq!(built.to_string(), "TSLA251031C00437500");
///
/// // Strikes are never rounded:
/// assert!(OptionSymbol::new("TSLA", built.expiry(), OptionRight::Call, Decimal::new(43750001, 5)).is_err());
/// # Ok::<(), connect_trade::symbology::SymbolError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OptionSymbol {
    /// The root padded with spaces to 6 bytes (ASCII; spaces sort first, so the derived
    /// order is the order of the roots).
    root: [u8; MAX_ROOT],
    expiry: NaiveDate,
    right: OptionRight,
    /// The strike in thousandths, below [`STRIKE_LIMIT_THOUSANDTHS`], above 0.
    strike_thousandths: u32,
}

impl OptionSymbol {
    /// Builds a symbol from its parts, checking each.
    ///
    /// `root`: 1 to 6 upper-case ASCII letters or digits. `expiry`: a date in 2000 to 2099
    /// (OSI has two year digits). `strike`: above 0, below 100,000, at most 3 decimals
    /// (`437.5`, `437.50` and `437.500` are the same strike; `437.5001` is an error).
    pub fn new(
        root: impl AsRef<str>,
        expiry: NaiveDate,
        right: OptionRight,
        strike: Decimal,
    ) -> Result<Self, SymbolError> {
        let root = root.as_ref();
        let err = |part, reason: String| {
            let input = format!("{root} {expiry} {right} {strike}");
            SymbolError::new(SymbolKind::Option, &input, part, None, reason)
        };
        let root = parse_root(root).map_err(|(position, reason)| {
            SymbolError::new(SymbolKind::Option, root, SymbolPart::Root, position, reason)
        })?;
        if !(2000..=2099).contains(&expiry.year()) {
            return Err(err(
                SymbolPart::Expiry,
                format!(
                    "{expiry} cannot be written in OSI, whose years have two digits (2000 to 2099)"
                ),
            ));
        }
        let strike_thousandths = strike_thousandths(strike)
            .map_err(|reason| err(SymbolPart::Strike, reason.to_string()))?;
        Ok(OptionSymbol {
            root,
            expiry,
            right,
            strike_thousandths,
        })
    }

    /// The root, e.g. `TSLA`, `SPXW`, `BABA2`.
    pub fn root(&self) -> &str {
        let len = self
            .root
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(MAX_ROOT);
        // The root is ASCII by construction; an empty string cannot occur.
        std::str::from_utf8(&self.root[..len]).unwrap_or_default()
    }

    /// The expiration date.
    pub fn expiry(&self) -> NaiveDate {
        self.expiry
    }

    /// Call or put.
    pub fn right(&self) -> OptionRight {
        self.right
    }

    /// Whether this is a call.
    pub fn is_call(&self) -> bool {
        self.right == OptionRight::Call
    }

    /// Whether this is a put.
    pub fn is_put(&self) -> bool {
        self.right == OptionRight::Put
    }

    /// The strike, exactly, without trailing zeros (`437.5` for `00437500`, `190` for
    /// `00190000`).
    pub fn strike(&self) -> Decimal {
        Decimal::new(i64::from(self.strike_thousandths), 3).normalize()
    }

    /// The strike in thousandths, as the 8 digits of the symbol hold it (`437500` for 437.50).
    pub fn strike_thousandths(&self) -> u32 {
        self.strike_thousandths
    }

    /// The underlying's symbol: the root, except for index roots whose weekly or PM-settled
    /// series carry a root of their own:
    ///
    /// | root | underlying | series | source |
    /// |---|---|---|---|
    /// | `SPXW` | `SPX` | S&P 500 Weeklys, PM-settled | Cboe SPXW specifications; tastytrade's cash-settled index table (symbol SPX, root SPXW) |
    /// | `SPXPM` | `SPX` | earlier PM-settled S&P 500 series, folded into `SPXW` | Cboe; kept for historical data |
    /// | `NDXP` | `NDX` | Nasdaq-100 PM-settled | Nasdaq NDX options specifications |
    /// | `RUTW` | `RUT` | Russell 2000 Weeklys | Cboe RUT specifications |
    /// | `VIXW` | `VIX` | VIX Weeklys | Cboe VIX specifications |
    ///
    /// Roots that are indexes in their own right (`XSP`, `XEO`, `OEX`, `DJX`, `MRUT`, `XND`)
    /// are their own underlying. Roots changed by corporate actions (`BABA2`) are *not*
    /// mapped: they deliver an adjusted basket, not the plain underlying.
    pub fn underlying(&self) -> &str {
        let root = self.root();
        UNDERLYING_OF_ROOT
            .iter()
            .find(|(r, _)| *r == root)
            .map_or(root, |(_, underlying)| underlying)
    }

    /// The standard 21-character form: the root padded with spaces to 6 characters
    /// (`SPXW  240420C05040000`).
    pub fn padded(&self) -> String {
        let mut out = String::with_capacity(PADDED_LEN);
        out.extend(self.root.iter().map(|&b| char::from(b)));
        self.write_tail(&mut out);
        out
    }

    fn write_tail(&self, out: &mut String) {
        use fmt::Write;
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{:02}{:02}{:02}{}{:08}",
            self.expiry.year() % 100,
            self.expiry.month(),
            self.expiry.day(),
            self.right.as_char(),
            self.strike_thousandths
        );
    }

    /// Parses either form; see [`FromStr`].
    fn parse(input: &str) -> Result<Self, SymbolError> {
        check_text(SymbolKind::Option, input)?;
        let err = |part, position: usize, reason: String| {
            SymbolError::new(SymbolKind::Option, input, part, Some(position), reason)
        };
        let bytes = input.as_bytes();
        let n = bytes.len();

        // Find the right letter: the last `C` or `P` followed by digits only. Its position
        // tells a short or long strike apart from the rest, for a precise message.
        let right_index = bytes
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .filter(|&i| matches!(bytes[i], b'C' | b'P'));
        match right_index {
            Some(i) if n - i - 1 != 8 => {
                return Err(err(
                    SymbolPart::Strike,
                    i + 2,
                    format!(
                        "the strike has {} digits; OSI strikes have exactly 8 (the price × 1000, \
                         zero-padded: 00437500 is 437.50)",
                        n - i - 1
                    ),
                ));
            }
            None if n >= 9 && bytes[n - 8..].iter().all(u8::is_ascii_digit) => {
                let c = char::from(bytes[n - 9]);
                return Err(err(
                    SymbolPart::Right,
                    n - 8,
                    format!("expected C (call) or P (put) before the strike, found {c:?}"),
                ));
            }
            None => {
                return Err(err(
                    SymbolPart::Whole,
                    n,
                    "expected {root}{YYMMDD}{C|P}{8-digit strike}, e.g. TSLA251031C00437500; \
                     the symbol does not end with C or P and 8 digits"
                        .to_string(),
                ));
            }
            Some(_) => {}
        }
        if n < TAIL + 1 {
            return Err(err(
                SymbolPart::Whole,
                1,
                format!(
                    "too short ({n} characters): expected a root of 1 to 6 characters, then \
                     YYMMDD, C or P and an 8-digit strike"
                ),
            ));
        }
        let root_end = n - TAIL;

        // Root: compact (no spaces), or padded with spaces to 6 (21 characters in all).
        let root_field = &input[..root_end];
        let root = match root_field.find(' ') {
            Some(first_space) => {
                if n != PADDED_LEN {
                    return Err(err(
                        SymbolPart::Root,
                        first_space + 1,
                        format!(
                            "a space in a symbol of {n} characters: the padded form pads the \
                             root with spaces to 6 characters, 21 in all"
                        ),
                    ));
                }
                let trimmed = root_field.trim_end_matches(' ');
                if let Some(i) = trimmed.find(' ') {
                    return Err(err(
                        SymbolPart::Root,
                        i + 1,
                        "a space inside the root: padding spaces go after it".to_string(),
                    ));
                }
                trimmed
            }
            None => root_field,
        };
        let root = parse_root(root).map_err(|(position, reason)| {
            SymbolError::new(
                SymbolKind::Option,
                input,
                SymbolPart::Root,
                position,
                reason,
            )
        })?;

        // Expiry: YYMMDD.
        let date = &bytes[root_end..root_end + 6];
        if let Some(i) = date.iter().position(|b| !b.is_ascii_digit()) {
            return Err(err(
                SymbolPart::Expiry,
                root_end + i + 1,
                format!(
                    "expected a digit of the expiry date (YYMMDD), found {:?}",
                    char::from(date[i])
                ),
            ));
        }
        let two = |i: usize| u32::from(date[i] - b'0') * 10 + u32::from(date[i + 1] - b'0');
        let (year, month, day) = (2000 + two(0) as i32, two(2), two(4));
        if !(1..=12).contains(&month) {
            return Err(err(
                SymbolPart::Expiry,
                root_end + 3,
                format!("month {month:02} does not exist (expiry is YYMMDD)"),
            ));
        }
        let expiry = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| {
            err(
                SymbolPart::Expiry,
                root_end + 5,
                format!("day {day:02} does not exist in {year}-{month:02} (expiry is YYMMDD)"),
            )
        })?;

        // Right (its position was checked above).
        let right = OptionRight::from_char(char::from(bytes[root_end + 6])).ok_or_else(|| {
            err(
                SymbolPart::Right,
                root_end + 7,
                "expected C or P".to_string(),
            )
        })?;

        // Strike: 8 digits (checked above), price × 1000.
        let strike_thousandths = input[root_end + 7..]
            .parse::<u32>()
            .map_err(|e| err(SymbolPart::Strike, root_end + 8, e.to_string()))?;
        if strike_thousandths == 0 {
            return Err(err(
                SymbolPart::Strike,
                root_end + 8,
                "the strike is 0; strikes are positive".to_string(),
            ));
        }
        Ok(OptionSymbol {
            root,
            expiry,
            right,
            strike_thousandths,
        })
    }
}

/// Checks a root and pads it; errors are (1-based position, reason).
fn parse_root(root: &str) -> Result<[u8; MAX_ROOT], (Option<usize>, String)> {
    if root.is_empty() {
        return Err((
            Some(1),
            "the root is missing: it has 1 to 6 characters".to_string(),
        ));
    }
    if let Some((i, c)) = root
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_uppercase() || c.is_ascii_digit()))
    {
        let hint = if c.is_ascii_lowercase() {
            format!(" (did you mean {}?)", root.to_ascii_uppercase())
        } else {
            String::new()
        };
        return Err((
            Some(i + 1),
            format!("{c:?} cannot be in a root: roots are upper-case letters and digits{hint}"),
        ));
    }
    if root.len() > MAX_ROOT {
        return Err((
            Some(MAX_ROOT + 1),
            format!(
                "the root {root:?} has {} characters; roots have 1 to 6",
                root.len()
            ),
        ));
    }
    let mut padded = [b' '; MAX_ROOT];
    padded[..root.len()].copy_from_slice(root.as_bytes());
    Ok(padded)
}

/// The strike in thousandths, if it is positive, below 100,000 and exact to 3 decimals.
fn strike_thousandths(strike: Decimal) -> Result<u32, String> {
    if strike <= Decimal::ZERO {
        return Err(format!("the strike {strike} is not positive"));
    }
    if strike >= Decimal::from(STRIKE_LIMIT_THOUSANDTHS / 1000) {
        return Err(format!(
            "the strike {strike} is too large: OSI strikes are below 100000 (5 digits before \
             the decimal point)"
        ));
    }
    let normalized = strike.normalize();
    if normalized.scale() > 3 {
        return Err(format!(
            "the strike {strike} has more than 3 decimals; OSI strikes are exact to 3 decimals \
             and this SDK never rounds one"
        ));
    }
    // normalized = mantissa × 10^-scale with scale ≤ 3 and value < 100000: fits easily.
    let thousandths = normalized.mantissa() * 10i128.pow(3 - normalized.scale());
    u32::try_from(thousandths).map_err(|_| format!("the strike {strike} is out of range"))
}

impl FromStr for OptionSymbol {
    type Err = SymbolError;

    /// Parses the compact (`TSLA251031C00437500`) or the padded 21-character
    /// (`SPXW  240420C05040000`) form. Surrounding whitespace is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for OptionSymbol {
    type Error = SymbolError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<String> for OptionSymbol {
    type Error = SymbolError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl TryFrom<&String> for OptionSymbol {
    type Error = SymbolError;
    fn try_from(s: &String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl fmt::Display for OptionSymbol {
    /// The compact form: `TSLA251031C00437500`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(PADDED_LEN);
        out.push_str(self.root());
        self.write_tail(&mut out);
        f.write_str(&out)
    }
}

impl fmt::Debug for OptionSymbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OptionSymbol({self})")
    }
}

impl serde::Serialize for OptionSymbol {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for OptionSymbol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = crate::codes::CowStr::deserialize(deserializer)?.0;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schemars")]
#[cfg_attr(docsrs, doc(cfg(feature = "schemars")))]
impl schemars::JsonSchema for OptionSymbol {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("OptionSymbol")
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "OCC OSI option symbol, compact: root (1-6 upper-case letters or digits), expiry YYMMDD, C or P, strike × 1000 on 8 digits. The 21-character form with the root padded by spaces is also accepted on input.",
            "pattern": "^[A-Z0-9]{1,6}[0-9]{6}[CP][0-9]{8}$",
            "examples": ["TSLA251031C00437500", "SPXW240420C05040000"]
        })
    }
}

impl serde::Serialize for OptionRight {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            OptionRight::Call => "C",
            OptionRight::Put => "P",
        })
    }
}

impl<'de> serde::Deserialize<'de> for OptionRight {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = crate::codes::CowStr::deserialize(deserializer)?.0;
        match &*text {
            "C" => Ok(OptionRight::Call),
            "P" => Ok(OptionRight::Put),
            other => Err(serde::de::Error::custom(format!(
                "expected \"C\" (call) or \"P\" (put), found {other:?}"
            ))),
        }
    }
}

#[cfg(feature = "schemars")]
#[cfg_attr(docsrs, doc(cfg(feature = "schemars")))]
impl schemars::JsonSchema for OptionRight {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("OptionRight")
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "C for a call, P for a put.",
            "enum": ["C", "P"]
        })
    }
}
