//! CQS equity symbols.

use std::{fmt, str::FromStr};

use super::{SymbolError, SymbolKind, SymbolPart, check_text};

/// Longest root accepted (`GOOGL` has 5; 6 leaves room without accepting nonsense).
const MAX_ROOT: usize = 6;

/// What kind of security a CQS symbol names, from its suffix.
///
/// The suffixes are those of Connect Trade's documentation (CQS symbology).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EquityKind {
    /// Common stock: no suffix (`IBM`).
    Common,
    /// Preferred stock: `p`, optionally followed by the series letter (`IBMp`, `IBMpA`).
    Preferred(Option<char>),
    /// A share class: `/` and the class letter (`BRK/B`; `BRK.B` in dotted form).
    Class(char),
    /// Rights: `r` (`IBMr`).
    Rights,
    /// Warrants: `/WS` (`IBM/WS`; `IBM.WS` in dotted form).
    Warrants,
    /// When issued: `w` (`IBMw`).
    WhenIssued,
}

impl EquityKind {
    /// The CQS suffix of this kind (`""`, `"p"`, `"pA"`, `"/B"`, `"r"`, `"/WS"`, `"w"`).
    pub fn cqs_suffix(self) -> String {
        match self {
            EquityKind::Common => String::new(),
            EquityKind::Preferred(None) => "p".to_string(),
            EquityKind::Preferred(Some(series)) => format!("p{series}"),
            EquityKind::Class(class) => format!("/{class}"),
            EquityKind::Rights => "r".to_string(),
            EquityKind::Warrants => "/WS".to_string(),
            EquityKind::WhenIssued => "w".to_string(),
        }
    }
}

/// A US equity symbol in CQS form (`MSFT`, `IBMp`, `IBMpA`, `BRK/B`, `IBMr`, `IBM/WS`,
/// `IBMw`), the form Connect Trade uses.
///
/// - Root: 1 to 6 upper-case ASCII letters.
/// - Suffix, at most one: `p` preferred (optionally with a series letter `A`-`Z`), `/X` share
///   class `X`, `r` rights, `/WS` warrants, `w` when issued.
///
/// Many brokers and data vendors write share classes and warrants with a dot (`BRK.B`,
/// `IBM.WS`): [`from_dotted`](Self::from_dotted) reads that form and [`dotted`](Self::dotted)
/// writes it. [`FromStr`] reads CQS only, and tells you about `from_dotted` if it meets a dot.
///
/// Serializes (serde) as the CQS string.
///
/// ```
/// use connect_trade::symbology::{EquityKind, EquitySymbol};
///
/// let pref: EquitySymbol = "IBMpA".parse()?;
/// assert_eq!(pref.root(), "IBM");
/// assert_eq!(pref.kind(), EquityKind::Preferred(Some('A')));
///
/// let b = EquitySymbol::from_dotted("BRK.B")?;
/// assert_eq!(b.to_string(), "BRK/B");
/// assert_eq!(b.dotted(), "BRK.B");
///
/// let err = "BRK.B".parse::<EquitySymbol>().unwrap_err();
/// assert!(err.to_string().contains("from_dotted"));
/// # Ok::<(), connect_trade::symbology::SymbolError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EquitySymbol {
    root: String,
    kind: EquityKind,
}

impl EquitySymbol {
    /// Builds a symbol from its root and kind, checking both (a class or series is one
    /// upper-case letter `A`-`Z`).
    pub fn new(root: impl AsRef<str>, kind: EquityKind) -> Result<Self, SymbolError> {
        let root = root.as_ref();
        check_root(root, root).map_err(SymbolError::without_position)?;
        let letter_ok = |c: char| c.is_ascii_uppercase();
        let bad_letter = match kind {
            EquityKind::Preferred(Some(c)) | EquityKind::Class(c) if !letter_ok(c) => Some(c),
            _ => None,
        };
        if let Some(c) = bad_letter {
            return Err(SymbolError::new(
                SymbolKind::Equity,
                root,
                SymbolPart::Suffix,
                None,
                format!("{c:?} is not a series or class letter: use one upper-case letter A-Z"),
            ));
        }
        Ok(EquitySymbol {
            root: root.to_string(),
            kind,
        })
    }

    /// The root: the ticker without its suffix (`IBM` for `IBMpA`).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// What the suffix says the security is.
    pub fn kind(&self) -> EquityKind {
        self.kind
    }

    /// The dotted form many brokers and data vendors use: `/` becomes `.` (`BRK.B`,
    /// `IBM.WS`). Symbols without `/` (common, preferred, rights, when issued) have no
    /// widely shared dotted spelling and are written as in CQS.
    pub fn dotted(&self) -> String {
        self.to_string().replace('/', ".")
    }

    /// Reads the dotted form (`BRK.B`, `IBM.WS`); plain CQS symbols without a dot are read
    /// as they are (`MSFT`, `IBMp`). A `/` is an error here, as a `.` is in CQS.
    pub fn from_dotted(text: &str) -> Result<Self, SymbolError> {
        if let Some(i) = text.find('/') {
            check_text(SymbolKind::Equity, text)?;
            return Err(SymbolError::new(
                SymbolKind::Equity,
                text,
                SymbolPart::Suffix,
                Some(i + 1),
                "'/' in a dotted symbol: the dotted form writes classes as BRK.B (use \
                 `parse` for the CQS form BRK/B)",
            ));
        }
        // Same length, same positions: errors point at the right character of `text`.
        Self::parse(&text.replace('.', "/"), text, true)
    }

    fn parse(cqs: &str, original: &str, dotted: bool) -> Result<Self, SymbolError> {
        check_text(SymbolKind::Equity, original)?;
        let err = |part, position: usize, reason: String| {
            SymbolError::new(SymbolKind::Equity, original, part, Some(position), reason)
        };
        let root_len = cqs
            .find(|c: char| !c.is_ascii_uppercase())
            .unwrap_or(cqs.len());
        let root = &cqs[..root_len];
        if root.is_empty() {
            let c = cqs.chars().next().unwrap_or(' ');
            let hint = if cqs.chars().any(|c| c.is_ascii_lowercase()) {
                format!(" (did you mean {}?)", original.to_ascii_uppercase())
            } else {
                String::new()
            };
            return Err(err(
                SymbolPart::Root,
                1,
                format!("{c:?} cannot start a symbol: roots are upper-case letters{hint}"),
            ));
        }
        check_root(root, original)?;
        let separator = if dotted { '.' } else { '/' };
        let suffix = &cqs[root_len..];
        let at = root_len + 1; // 1-based position of the suffix
        let kind = match suffix.as_bytes() {
            [] => EquityKind::Common,
            [b'p'] => EquityKind::Preferred(None),
            [b'p', series] if series.is_ascii_uppercase() => {
                EquityKind::Preferred(Some(char::from(*series)))
            }
            [b'r'] => EquityKind::Rights,
            [b'w'] => EquityKind::WhenIssued,
            [b'/', b'W', b'S'] => EquityKind::Warrants,
            [b'/', class] if class.is_ascii_uppercase() => EquityKind::Class(char::from(*class)),
            [b'/', ..] => {
                return Err(err(
                    SymbolPart::Suffix,
                    at + 1,
                    format!(
                        "after '{separator}' comes a class letter A-Z (BRK{separator}B) or WS \
                         for warrants"
                    ),
                ));
            }
            [b'.', ..] => {
                return Err(err(
                    SymbolPart::Suffix,
                    at,
                    "'.' is not CQS: CQS writes share classes with '/' (BRK/B); read the \
                     dotted form with `EquitySymbol::from_dotted`"
                        .to_string(),
                ));
            }
            [b'p', ..] => {
                return Err(err(
                    SymbolPart::Suffix,
                    at + 1,
                    "a preferred suffix is `p` or `p` and one series letter A-Z (IBMp, IBMpA)"
                        .to_string(),
                ));
            }
            [b'r' | b'w', ..] => {
                return Err(err(
                    SymbolPart::Suffix,
                    at + 1,
                    "nothing may follow the rights (`r`) or when-issued (`w`) suffix".to_string(),
                ));
            }
            _ => {
                let c = suffix.chars().next().unwrap_or(' ');
                let hint = if c.is_ascii_lowercase() && cqs.len() <= MAX_ROOT {
                    format!(
                        "; if this is a ticker, roots are upper case: {}",
                        original.to_ascii_uppercase()
                    )
                } else {
                    String::new()
                };
                return Err(err(
                    SymbolPart::Suffix,
                    at,
                    format!(
                        "{c:?} does not start a CQS suffix: p (preferred), pA (series), \
                         {separator}B (class), r (rights), {separator}WS (warrants), \
                         w (when issued){hint}"
                    ),
                ));
            }
        };
        Ok(EquitySymbol {
            root: root.to_string(),
            kind,
        })
    }
}

/// Checks a root of upper-case letters for its length and characters.
fn check_root(root: &str, input: &str) -> Result<(), SymbolError> {
    let err = |position, reason: String| {
        SymbolError::new(
            SymbolKind::Equity,
            input,
            SymbolPart::Root,
            Some(position),
            reason,
        )
    };
    if root.is_empty() {
        return Err(err(1, "the root is empty".to_string()));
    }
    if let Some((i, c)) = root
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_uppercase())
    {
        return Err(err(
            i + 1,
            format!("{c:?} cannot be in a root: roots are upper-case letters A-Z"),
        ));
    }
    if root.len() > MAX_ROOT {
        return Err(err(
            MAX_ROOT + 1,
            format!("the root has {} letters; at most 6", root.len()),
        ));
    }
    Ok(())
}

impl FromStr for EquitySymbol {
    type Err = SymbolError;

    /// Parses the CQS form (`BRK/B`); see [`EquitySymbol::from_dotted`] for `BRK.B`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, s, false)
    }
}

impl TryFrom<&str> for EquitySymbol {
    type Error = SymbolError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for EquitySymbol {
    type Error = SymbolError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<&String> for EquitySymbol {
    type Error = SymbolError;
    fn try_from(s: &String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for EquitySymbol {
    /// The CQS form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)?;
        f.write_str(&self.kind.cqs_suffix())
    }
}

impl fmt::Debug for EquitySymbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EquitySymbol({self})")
    }
}

impl serde::Serialize for EquitySymbol {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EquitySymbol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = crate::codes::CowStr::deserialize(deserializer)?.0;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schemars")]
#[cfg_attr(docsrs, doc(cfg(feature = "schemars")))]
impl schemars::JsonSchema for EquitySymbol {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("EquitySymbol")
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "US equity symbol in CQS form: root of 1-6 upper-case letters, then optionally p (preferred), p and a series letter, /X (class X), r (rights), /WS (warrants) or w (when issued).",
            "pattern": "^[A-Z]{1,6}(p[A-Z]?|/[A-Z]|/WS|r|w)?$",
            "examples": ["MSFT", "BRK/B", "IBMpA", "IBM/WS"]
        })
    }
}
