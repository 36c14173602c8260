//! Symbology: OCC option symbols and CQS equity symbols.
//!
//! Connect Trade names instruments in two standard ways:
//! - US options by the OCC Options Symbology Initiative (OSI) symbol, which the API writes
//!   without padding: `TSLA251031C00437500` is the TSLA call expiring 2025-10-31 with a strike
//!   of 437.50. See [`OptionSymbol`].
//! - US equities by the NYSE Consolidated Quote System (CQS) symbol: `MSFT`, `IBMp`, `BRK/B`.
//!   See [`EquitySymbol`].
//!
//! Both types parse strictly (nothing is guessed, trimmed or rounded), print back exactly what
//! they parsed, serialize as their string form, and describe themselves as JSON Schema strings
//! so they can sit in typed structs. Every parse error is a [`SymbolError`] that says which
//! part of the symbol is wrong and at which character.
//!
//! ```
//! use connect_trade::symbology::{EquityKind, EquitySymbol, OptionRight, OptionSymbol};
//!
//! let call: OptionSymbol = "TSLA251031C00437500".parse()?;
//! assert_eq!(call.root(), "TSLA");
//! assert_eq!(call.right(), OptionRight::Call);
//! assert_eq!(call.strike().to_string(), "437.5");
//! assert_eq!(call.padded(), "TSLA  251031C00437500");
//!
//! let b: EquitySymbol = "BRK/B".parse()?;
//! assert_eq!(b.kind(), EquityKind::Class('B'));
//! assert_eq!(b.dotted(), "BRK.B");
//! # Ok::<(), connect_trade::symbology::SymbolError>(())
//! ```

use std::fmt;

mod equity;
mod option;

pub use equity::{EquityKind, EquitySymbol};
pub use option::{OptionRight, OptionSymbol};

/// Longest input an error message quotes, in characters.
const QUOTED_INPUT_CHARS: usize = 48;

/// Which kind of symbol failed to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SymbolKind {
    /// An OCC OSI option symbol.
    Option,
    /// A CQS equity symbol.
    Equity,
}

impl fmt::Display for SymbolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SymbolKind::Option => "option",
            SymbolKind::Equity => "equity",
        })
    }
}

/// The part of a symbol an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SymbolPart {
    /// The symbol as a whole (empty, surrounding whitespace, length, non-ASCII text).
    Whole,
    /// The root: the underlying's option root, or the equity ticker.
    Root,
    /// The expiration date (`YYMMDD`).
    Expiry,
    /// The right: `C` for a call, `P` for a put.
    Right,
    /// The strike (8 digits: the price × 1000).
    Strike,
    /// An equity suffix (`p`, `pA`, `/B`, `r`, `/WS`, `w`).
    Suffix,
}

impl fmt::Display for SymbolPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SymbolPart::Whole => "symbol",
            SymbolPart::Root => "root",
            SymbolPart::Expiry => "expiry",
            SymbolPart::Right => "call/put",
            SymbolPart::Strike => "strike",
            SymbolPart::Suffix => "suffix",
        })
    }
}

/// A symbol that is not valid, with the part and character that are wrong.
///
/// The message reads like
/// `invalid option symbol "TSLA251331C00437500": expiry, character 7: month 13 does not exist`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolError {
    kind: SymbolKind,
    input: String,
    part: SymbolPart,
    position: Option<usize>,
    reason: String,
}

impl SymbolError {
    pub(crate) fn new(
        kind: SymbolKind,
        input: &str,
        part: SymbolPart,
        position: Option<usize>,
        reason: impl Into<String>,
    ) -> Self {
        let mut quoted: String = input.chars().take(QUOTED_INPUT_CHARS).collect();
        if input.chars().count() > QUOTED_INPUT_CHARS {
            quoted.push('…');
        }
        SymbolError {
            kind,
            input: quoted,
            part,
            position,
            // A reason may quote the input (a root, a hint): keep it short too.
            reason: crate::error::clip(&reason.into(), 4 * QUOTED_INPUT_CHARS),
        }
    }

    /// Whether an option or an equity symbol was being read.
    pub fn kind(&self) -> SymbolKind {
        self.kind
    }

    /// The part of the symbol that is wrong.
    pub fn part(&self) -> SymbolPart {
        self.part
    }

    /// The position of the offending character, counted from 1 as a person counts
    /// (`None` when the error is not about one character, e.g. a value given to a
    /// constructor).
    pub fn position(&self) -> Option<usize> {
        self.position
    }

    /// The input (at most 48 characters of it).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The same error without a position (for values given to a constructor, which have no
    /// text to point into).
    pub(crate) fn without_position(mut self) -> Self {
        self.position = None;
        self
    }

    /// What is wrong, without the input and position.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for SymbolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} symbol {:?}: {}",
            self.kind, self.input, self.part
        )?;
        if let Some(position) = self.position {
            write!(f, ", character {position}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for SymbolError {}

/// Checks what both kinds of symbols require of the text as a whole: not empty, no
/// surrounding whitespace, ASCII only. Returns the bytes (one per character).
fn check_text(kind: SymbolKind, input: &str) -> Result<(), SymbolError> {
    let err = |position, reason: &str| {
        Err(SymbolError::new(
            kind,
            input,
            SymbolPart::Whole,
            position,
            reason,
        ))
    };
    if input.is_empty() {
        return err(None, "the symbol is empty");
    }
    if input.starts_with(char::is_whitespace) {
        return err(
            Some(1),
            "leading whitespace is not part of a symbol (trim the input first)",
        );
    }
    if input.ends_with(char::is_whitespace) {
        return err(
            Some(input.chars().count()),
            "trailing whitespace is not part of a symbol (trim the input first)",
        );
    }
    if let Some((index, c)) = input.chars().enumerate().find(|(_, c)| !c.is_ascii()) {
        return err(
            Some(index + 1),
            &format!("{c:?} is not an ASCII character; symbols are ASCII letters and digits"),
        );
    }
    Ok(())
}
