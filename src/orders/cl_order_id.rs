//! Client order ids: the idempotency key of an order.

use std::{
    fmt,
    hash::{BuildHasher, Hash, Hasher},
    str::FromStr,
    sync::{Mutex, OnceLock},
    time::{SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, Utc};

use super::{OrderError, OrderRule};

/// Base-36 digits in ASCII order, so that text order is numeric order.
const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Characters of the time part: milliseconds since 1970 in base 36 (lasts until year 5188).
const TIME_CHARS: usize = 9;
/// Characters of the process part: random per generator (36^6 ≈ 2.2 billion).
const PROCESS_CHARS: usize = 6;
/// Characters of the counter part: per millisecond (36^4 ≈ 1.7 million ids per ms).
const COUNTER_CHARS: usize = 4;
const COUNTER_LIMIT: u64 = 36u64.pow(COUNTER_CHARS as u32);

/// A client order id (`cl_order_id`, `new_cl_order_id`): the client's name for an order,
/// unique per order per day, and the key Connect Trade uses to recognise a repeated
/// placement.
///
/// [`ClOrderId::generate`] makes ids like `0MIE3XJ2K7Q4ZP90003`: 19 upper-case ASCII letters
/// and digits, the creation time in milliseconds (9 base-36 digits) then a random
/// per-process part (6) then a counter (4). So they
/// - sort by creation time as plain text (to the millisecond; within a process strictly, as
///   the clock is made monotonic);
/// - are unique across processes without coordination (two processes clash only if they draw
///   the same one of 2.2 billion process parts *and* generate in the same millisecond with
///   the same counter);
/// - stay clear of every character a broker could object to (no `-`, `_` or lower case).
///
/// Ids you bring are checked by [`ClOrderId::new`]: 1 to [`ClOrderId::MAX_LEN`] (36) ASCII
/// letters, digits or `-`. The API documents no limit; 36 lets a hyphenated UUID through
/// and keeps ids short, because the brokers behind Connect Trade apply limits of their own
/// that the API does not publish. Generated ids (19) leave room below it.
///
/// ```
/// use connect_trade::orders::ClOrderId;
///
/// let a = ClOrderId::generate();
/// let b = ClOrderId::generate();
/// assert!(a < b);
/// assert_eq!(a.as_str().len(), 19);
/// assert!(a.generated_at().is_some());
/// assert!(ClOrderId::new("my-order-0001").is_ok());
/// assert!(ClOrderId::new("has space").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClOrderId(String);

impl ClOrderId {
    /// The longest id accepted.
    pub const MAX_LEN: usize = 36;

    /// Length of generated ids.
    pub const GENERATED_LEN: usize = TIME_CHARS + PROCESS_CHARS + COUNTER_CHARS;

    /// A new id from the process-wide generator.
    pub fn generate() -> Self {
        static GENERATOR: OnceLock<ClOrderIdGenerator> = OnceLock::new();
        GENERATOR.get_or_init(ClOrderIdGenerator::new).next_id()
    }

    /// Checks an id of your own: 1 to 36 ASCII letters, digits or `-`.
    pub fn new(id: impl Into<String>) -> Result<Self, OrderError> {
        let id = id.into();
        if id.is_empty() {
            return Err(OrderError::new(
                OrderRule::ClOrderId,
                "the client order id is empty; use ClOrderId::generate() for a fresh one",
            ));
        }
        if let Some((i, c)) = id
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(OrderError::new(
                OrderRule::ClOrderId,
                format!(
                    "client order id {:?}: {c:?} at character {} is not allowed; use ASCII \
                     letters, digits and '-'",
                    crate::error::clip(&id, crate::error::ECHO_CHARS),
                    i + 1
                ),
            ));
        }
        if id.len() > Self::MAX_LEN {
            return Err(OrderError::new(
                OrderRule::ClOrderId,
                format!(
                    "client order id {:?} has {} characters; at most {}",
                    crate::error::clip(&id, crate::error::ECHO_CHARS),
                    id.len(),
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(ClOrderId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// When a generated id was made (to the millisecond); `None` for ids not shaped like
    /// generated ones.
    pub fn generated_at(&self) -> Option<DateTime<Utc>> {
        let bytes = self.0.as_bytes();
        if bytes.len() != Self::GENERATED_LEN {
            return None;
        }
        let mut millis: i64 = 0;
        for &b in &bytes[..TIME_CHARS] {
            let digit = DIGITS.iter().position(|&d| d == b)?;
            millis = millis.checked_mul(36)?.checked_add(digit as i64)?;
        }
        DateTime::from_timestamp_millis(millis)
    }
}

impl fmt::Display for ClOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ClOrderId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<ClOrderId> for String {
    fn from(id: ClOrderId) -> Self {
        id.0
    }
}

impl FromStr for ClOrderId {
    type Err = OrderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClOrderId::new(s)
    }
}

/// Makes [`ClOrderId`]s; one per process is enough ([`ClOrderId::generate`] uses a shared
/// one). Each generator draws its own random process part, so ids of two generators never
/// collide within a millisecond unless they draw the same part.
#[derive(Debug)]
pub struct ClOrderIdGenerator {
    process: [u8; PROCESS_CHARS],
    /// (last millisecond used, counter within it).
    state: Mutex<(u64, u64)>,
}

impl Default for ClOrderIdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl ClOrderIdGenerator {
    /// A generator with a fresh random process part.
    pub fn new() -> Self {
        // `RandomState` is keyed from the operating system's randomness; mixing in the
        // process id and the time guards against a platform where it is not.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        std::process::id().hash(&mut hasher);
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .hash(&mut hasher);
        let mut rng = fastrand::Rng::with_seed(hasher.finish() ^ fastrand::u64(..));
        let mut process = [b'0'; PROCESS_CHARS];
        for b in &mut process {
            *b = DIGITS[rng.usize(..DIGITS.len())];
        }
        ClOrderIdGenerator {
            process,
            state: Mutex::new((0, 0)),
        }
    }

    /// The next id: later than every id this generator made before.
    pub fn next_id(&self) -> ClOrderId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        let (millis, counter) = {
            // A poisoned lock only means another thread panicked mid-update of two integers;
            // the state is still usable.
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let (last, count) = *state;
            let next = if now > last {
                (now, 0)
            } else if count + 1 < COUNTER_LIMIT {
                // Same millisecond, or the clock stepped back: stay monotonic.
                (last, count + 1)
            } else {
                (last + 1, 0)
            };
            *state = next;
            next
        };
        let mut id = String::with_capacity(ClOrderId::GENERATED_LEN);
        push_base36(&mut id, millis, TIME_CHARS);
        id.extend(self.process.iter().map(|&b| char::from(b)));
        push_base36(&mut id, counter, COUNTER_CHARS);
        ClOrderId(id)
    }
}

/// Appends `value` in base 36 on exactly `width` digits (the low digits if it is wider).
fn push_base36(out: &mut String, mut value: u64, width: usize) {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = DIGITS[(value % 36) as usize];
        value /= 36;
    }
    out.extend(digits.into_iter().map(char::from));
}
