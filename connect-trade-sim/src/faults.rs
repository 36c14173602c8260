//! Fault injection: make the simulator misbehave on purpose, deterministically.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{broadcast, watch};

use crate::state::{ApiError, Control};

/// A REST failure to inject: a status, and for 429 how long to ask the client to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestFault {
    /// The HTTP status answered (429, 500, 502, 503, 504, …).
    pub status: u16,
    /// The `Retry-After` header, in whole seconds, if any.
    pub retry_after: Option<Duration>,
}

impl RestFault {
    /// A failure with this status and no `Retry-After`.
    pub fn status(status: u16) -> Self {
        RestFault {
            status,
            retry_after: None,
        }
    }

    /// 429 Too Many Requests with `Retry-After: <seconds>`.
    pub fn rate_limited(retry_after: Duration) -> Self {
        RestFault {
            status: 429,
            retry_after: Some(retry_after),
        }
    }

    pub(crate) fn to_error(self) -> ApiError {
        let message = match self.status {
            429 => "rate limited: too many requests (injected by the simulator)".to_string(),
            status => format!("simulated failure {status} (injected by the simulator)"),
        };
        ApiError {
            status: self.status,
            message,
            retry_after: self.retry_after.map(|d| d.as_secs()),
        }
    }
}

#[derive(Default)]
struct RestPlan {
    next: VecDeque<RestFault>,
    /// (k, fault, the call count when it was set).
    every: Option<(u64, RestFault, u64)>,
    share: Option<(f64, RestFault, fastrand::Rng)>,
}

pub(crate) struct FaultsInner {
    rest: Mutex<RestPlan>,
    rest_calls: AtomicU64,
    drop_every: AtomicU64,
    silent: watch::Sender<bool>,
    control: broadcast::Sender<Control>,
}

/// The simulator's fault switches, usable while it runs (`Simulator::faults()`); cheap to clone.
///
/// REST faults apply to API calls (not the OAuth page), in this order: queued failures
/// ([`fail_next`](Faults::fail_next)), then every k-th call, then a seeded share. Stream faults
/// apply to both WebSockets.
///
/// ```no_run
/// # async fn demo() -> connect_trade::Result<()> {
/// use std::time::Duration;
/// use connect_trade_sim::{RestFault, Simulator};
///
/// let sim = Simulator::start().await?;
/// sim.faults().fail_next(2, RestFault::status(503)); // the next two calls fail
/// sim.faults().fail_next(1, RestFault::rate_limited(Duration::from_secs(1)));
/// sim.faults().drop_streams_every(10); // every stream connection dies after 10 messages
/// sim.faults().drop_streams(); // and every open one dies now
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Faults {
    pub(crate) inner: Arc<FaultsInner>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("rest_calls", &self.rest_calls())
            .field("drop_every", &self.inner.drop_every.load(Ordering::Relaxed))
            .field("silent", &*self.inner.silent.borrow())
            .finish_non_exhaustive()
    }
}

impl Faults {
    pub(crate) fn new(control: broadcast::Sender<Control>) -> Self {
        Faults {
            inner: Arc::new(FaultsInner {
                rest: Mutex::new(RestPlan::default()),
                rest_calls: AtomicU64::new(0),
                drop_every: AtomicU64::new(0),
                silent: watch::Sender::new(false),
                control,
            }),
        }
    }

    fn rest(&self) -> MutexGuard<'_, RestPlan> {
        self.inner.rest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `count` REST calls fail with `fault`.
    pub fn fail_next(&self, count: usize, fault: RestFault) -> &Self {
        self.rest().next.extend(std::iter::repeat_n(fault, count));
        self
    }

    /// Every `k`-th REST call (counting from now) fails with `fault`; `k = 0` stops it.
    pub fn fail_every(&self, k: u64, fault: RestFault) -> &Self {
        let now = self.rest_calls();
        self.rest().every = (k > 0).then_some((k, fault, now));
        self
    }

    /// A share (0.0 to 1.0) of REST calls fails with `fault`, chosen by a random generator
    /// seeded with `seed`: the same seed fails the same calls.
    pub fn fail_share(&self, share: f64, fault: RestFault, seed: u64) -> &Self {
        self.rest().share =
            (share > 0.0).then(|| (share.min(1.0), fault, fastrand::Rng::with_seed(seed)));
        self
    }

    /// Stops every REST fault.
    pub fn clear_rest(&self) -> &Self {
        *self.rest() = RestPlan::default();
        self
    }

    /// REST API calls seen since the start (the OAuth page is not counted).
    pub fn rest_calls(&self) -> u64 {
        self.inner.rest_calls.load(Ordering::Relaxed)
    }

    /// Every stream connection is dropped (no close frame) once it has sent `n` messages;
    /// `0` stops it. Applies to new and open connections.
    pub fn drop_streams_every(&self, n: u64) -> &Self {
        self.inner.drop_every.store(n, Ordering::Relaxed);
        self
    }

    /// Drops every open stream connection now, without a close frame.
    pub fn drop_streams(&self) -> &Self {
        let _ = self.inner.control.send(Control::DropAll);
        self
    }

    /// While `true`, stream connections stay open but send nothing and read nothing (not even
    /// pings): a dead link as a heartbeat must detect it.
    pub fn set_silent(&self, silent: bool) -> &Self {
        self.inner.silent.send_replace(silent);
        self
    }

    /// Every open stream connection sends one text frame that is not valid JSON.
    pub fn send_malformed_frame(&self) -> &Self {
        let _ = self.inner.control.send(Control::Malformed);
        self
    }

    /// The fault for the REST call being made now, if any.
    pub(crate) fn next_rest_fault(&self) -> Option<RestFault> {
        let call = self.inner.rest_calls.fetch_add(1, Ordering::Relaxed) + 1;
        let mut plan = self.rest();
        if let Some(fault) = plan.next.pop_front() {
            return Some(fault);
        }
        if let Some((k, fault, since)) = plan.every
            && call > since
            && (call - since).is_multiple_of(k)
        {
            return Some(fault);
        }
        if let Some((share, fault, rng)) = plan.share.as_mut()
            && rng.f64() < *share
        {
            return Some(*fault);
        }
        None
    }

    pub(crate) fn drop_every(&self) -> u64 {
        self.inner.drop_every.load(Ordering::Relaxed)
    }

    pub(crate) fn silent(&self) -> watch::Receiver<bool> {
        self.inner.silent.subscribe()
    }
}
