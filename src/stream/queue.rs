//! The bounded event queue between the connection task and the consumer.
//!
//! Why not `tokio::sync::mpsc`: a channel wakes the consumer on every message, and when the
//! consumer keeps up (the normal case) every message then costs a cross-thread wake-up,
//! which costs more than decoding the message. Here the producer stages a burst of frames
//! read from the socket and wakes the consumer once per burst, and the consumer takes
//! everything queued in one lock. Overflow is handled in place: when the queue is full, a
//! dropped data event increments a `Lagged` marker at the tail, so the consumer sees exactly
//! where the gap is and how big it was.
//!
//! The capacity counts every event the consumer has not been handed yet: those in the
//! shared queue and those the consumer already took into its local batch (published by the
//! consumer in an atomic, so handing out an event costs no lock).
//!
//! The queue holds the events themselves, with no wrapper: whether an event may be dropped,
//! and the drop marker, are the event's own ([`Event`]). An event moves from the decoder to
//! the consumer several times, and a wrapper would make every quote larger than what the
//! compiler moves inline.

use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use futures::task::AtomicWaker;

/// At most this many must-see events (connection changes, errors) may go over the capacity;
/// beyond it they are counted as dropped too.
const CONTROL_HEADROOM: usize = 256;

/// An event of a stream, as the queue sees it.
pub(crate) trait Event: Send + 'static {
    /// A data event may be dropped when the queue is full (in `Lag` mode); any other event
    /// is one the consumer must see (it may go over the capacity, within a headroom).
    fn is_data(&self) -> bool;
    /// The marker of `dropped` data events dropped here.
    fn lagged(dropped: u64) -> Self;
    /// The count of a marker (to add to), or `None` if this is not a marker.
    fn dropped(&mut self) -> Option<&mut u64>;
}

struct State<E> {
    queue: VecDeque<E>,
    /// Events (not markers) in `queue`.
    events: usize,
    sender_gone: bool,
    receiver_gone: bool,
}

struct Shared<E> {
    state: Mutex<State<E>>,
    consumer: AtomicWaker,
    producer: Arc<Closing>,
    capacity: usize,
    /// Events in the consumer's local batch, not yet handed out. Written by the consumer
    /// (under the lock when it takes a batch); read by the producer under the lock. A stale
    /// read is only ever too high, so the capacity is never exceeded.
    taken: AtomicUsize,
}

/// Wakes a producer waiting for room; set, it stops waiting altogether (the stream is being
/// closed: a producer blocked on a consumer that will not read must not block the close).
#[derive(Default)]
pub(crate) struct Closing {
    waker: AtomicWaker,
    closing: AtomicBool,
}

impl Closing {
    /// From now on the producer does not wait for room.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    fn wake(&self) {
        self.waker.wake();
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

impl<E> Shared<E> {
    fn lock(&self) -> MutexGuard<'_, State<E>> {
        // A panic while holding this lock cannot leave the queue inconsistent (every change
        // is a single push or swap), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The consumer is gone.
pub(crate) struct Gone;

/// The producing side (owned by the connection task).
pub(crate) struct Sender<E> {
    shared: Arc<Shared<E>>,
    /// Events of the current burst, moved into the queue under one lock by `commit`.
    staged: VecDeque<E>,
}

/// The consuming side (inside the public stream).
pub(crate) struct Receiver<E> {
    shared: Arc<Shared<E>>,
    /// Taken from the shared queue in one go.
    local: VecDeque<E>,
    /// Events (not markers) in `local`.
    local_events: usize,
}

/// A queue of `capacity` events (at least 1). The [`Closing`] lets a handle release a
/// producer waiting for room.
pub(crate) fn channel<E: Event>(capacity: usize) -> (Sender<E>, Receiver<E>, Arc<Closing>) {
    let closing = Arc::new(Closing::default());
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            events: 0,
            sender_gone: false,
            receiver_gone: false,
        }),
        consumer: AtomicWaker::new(),
        producer: closing.clone(),
        capacity: capacity.max(1),
        taken: AtomicUsize::new(0),
    });
    (
        Sender {
            shared: shared.clone(),
            staged: VecDeque::new(),
        },
        Receiver {
            shared,
            local: VecDeque::new(),
            local_events: 0,
        },
        closing,
    )
}

/// Moves everything staged at once if it all fits (the usual case: no copy at all when the
/// consumer has taken everything before). False if it does not fit.
fn move_all<E>(staged: &mut VecDeque<E>, state: &mut State<E>, room: usize) -> bool {
    if state.events + staged.len() > room {
        return false;
    }
    state.events += staged.len();
    if state.queue.is_empty() {
        std::mem::swap(&mut state.queue, staged);
    } else {
        state.queue.append(staged);
    }
    true
}

fn count_drop<E: Event>(state: &mut State<E>) {
    match state.queue.back_mut().and_then(E::dropped) {
        Some(dropped) => *dropped += 1,
        None => state.queue.push_back(E::lagged(1)),
    }
}

impl<E> Shared<E> {
    /// The capacity left for the shared queue: the capacity less what the consumer holds.
    fn room(&self) -> usize {
        self.capacity
            .saturating_sub(self.taken.load(Ordering::Relaxed))
    }
}

impl<E: Event> Sender<E> {
    /// Stages an event; [`Sender::commit`] (or [`Sender::commit_wait`]) queues the burst in
    /// order and wakes the consumer once. A must-see event (connection change, error) may go
    /// over the capacity, within a headroom; a data event may be dropped in `Lag` mode.
    pub(crate) fn stage(&mut self, event: E) {
        self.staged.push_back(event);
    }

    /// `Lag` mode: queues the staged events, counting the data events that do not fit as
    /// dropped, and wakes the consumer.
    pub(crate) fn commit(&mut self) -> Result<(), Gone> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let mut state = self.shared.lock();
        if state.receiver_gone {
            self.staged.clear();
            return Err(Gone);
        }
        let room = self.shared.room();
        if !move_all(&mut self.staged, &mut state, room) {
            for event in self.staged.drain(..) {
                let limit = if event.is_data() {
                    room
                } else {
                    room + CONTROL_HEADROOM
                };
                if state.events < limit {
                    state.queue.push_back(event);
                    state.events += 1;
                } else {
                    count_drop(&mut state);
                }
            }
        }
        drop(state);
        self.shared.consumer.wake();
        Ok(())
    }

    /// `Backpressure` mode: queues the staged events, waiting for room as needed, and wakes
    /// the consumer.
    pub(crate) async fn commit_wait(&mut self) -> Result<(), Gone> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let result = poll_fn(|cx| self.poll_commit(cx)).await;
        if result.is_err() {
            self.staged.clear();
        }
        result
    }

    fn poll_commit(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Gone>> {
        for registered in [false, true] {
            {
                let mut state = self.shared.lock();
                if state.receiver_gone {
                    return Poll::Ready(Err(Gone));
                }
                let unbounded = self.shared.producer.is_closing();
                let room = self.shared.room();
                if !move_all(&mut self.staged, &mut state, room) {
                    while state.events < room || unbounded {
                        let Some(event) = self.staged.pop_front() else {
                            break;
                        };
                        state.queue.push_back(event);
                        state.events += 1;
                    }
                }
            }
            // The consumer must drain what is queued before there is room.
            self.shared.consumer.wake();
            if self.staged.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if registered {
                break;
            }
            // Register, then look again, so a drain in between is not missed.
            self.shared.producer.waker.register(cx.waker());
        }
        Poll::Pending
    }

    /// Queues the staged events and the last event whatever the capacity, and wakes the
    /// consumer.
    pub(crate) fn push_last(&mut self, event: E) {
        let mut state = self.shared.lock();
        state.events += self.staged.len() + 1;
        state.queue.append(&mut self.staged);
        state.queue.push_back(event);
        drop(state);
        self.shared.consumer.wake();
    }
}

impl<E> Drop for Sender<E> {
    fn drop(&mut self) {
        self.shared.lock().sender_gone = true;
        self.shared.consumer.wake();
    }
}

impl<E: Event> Receiver<E> {
    /// Hands out the next event of the local batch, publishing how many events it still
    /// holds. When that falls to half the capacity, a producer waiting for room may go on.
    ///
    /// Not sooner: right after taking a full queue there is no room (the taken events still
    /// count), so waking the producer then only makes it look and wait again, and on a
    /// multi-threaded runtime the wake-up costs a hand-off between the tasks (measured: 2–3%
    /// of the market data benchmark's throughput).
    fn pop_local(&mut self) -> Option<E> {
        let mut event = self.local.pop_front()?;
        if event.dropped().is_none() {
            self.local_events = self.local_events.saturating_sub(1);
            self.shared
                .taken
                .store(self.local_events, Ordering::Relaxed);
            if self.local_events == self.shared.capacity / 2 {
                self.shared.producer.wake();
            }
        }
        Some(event)
    }

    /// The next event; `None` once the producer is gone and everything was taken.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<E>> {
        if let Some(event) = self.pop_local() {
            return Poll::Ready(Some(event));
        }
        for registered in [false, true] {
            {
                let mut state = self.shared.lock();
                if !state.queue.is_empty() {
                    std::mem::swap(&mut self.local, &mut state.queue);
                    self.local_events = state.events;
                    self.shared.taken.store(state.events, Ordering::Relaxed);
                    state.events = 0;
                    drop(state);
                    if let Some(event) = self.pop_local() {
                        return Poll::Ready(Some(event));
                    }
                } else if state.sender_gone {
                    return Poll::Ready(None);
                }
            }
            // Everything handed out: a producer waiting for room may go on.
            self.shared.producer.wake();
            if registered {
                break;
            }
            self.shared.consumer.register(cx.waker());
        }
        Poll::Pending
    }

    /// The next event (see [`Receiver::poll_recv`]).
    pub(crate) async fn recv(&mut self) -> Option<E> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Events waiting (taken or not).
    pub(crate) fn len(&self) -> usize {
        self.local.len() + self.shared.lock().queue.len()
    }
}

impl<E> Drop for Receiver<E> {
    fn drop(&mut self) {
        self.shared.lock().receiver_gone = true;
        self.shared.producer.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Ev {
        Data(u32),
        Control(&'static str),
        Lagged(u64),
    }

    impl Event for Ev {
        fn is_data(&self) -> bool {
            matches!(self, Ev::Data(_))
        }
        fn lagged(dropped: u64) -> Ev {
            Ev::Lagged(dropped)
        }
        fn dropped(&mut self) -> Option<&mut u64> {
            match self {
                Ev::Lagged(dropped) => Some(dropped),
                _ => None,
            }
        }
    }

    async fn drain(rx: &mut Receiver<Ev>) -> Vec<Ev> {
        let mut out = Vec::new();
        while let Some(event) = rx.recv().await {
            out.push(event);
        }
        out
    }

    #[tokio::test]
    async fn a_full_queue_drops_data_and_marks_the_gap_in_order() {
        let (mut tx, mut rx, _) = channel(2);
        for i in 0..3 {
            tx.stage(Ev::Data(i));
        }
        tx.stage(Ev::Control("reconnecting"));
        tx.stage(Ev::Data(3));
        tx.stage(Ev::Data(4));
        assert!(tx.commit().is_ok());
        drop(tx);
        assert_eq!(
            drain(&mut rx).await,
            vec![
                Ev::Data(0),
                Ev::Data(1),
                Ev::Lagged(1),
                Ev::Control("reconnecting"),
                Ev::Lagged(2),
            ]
        );
    }

    #[tokio::test]
    async fn room_comes_back_once_the_consumer_has_taken_events() {
        let (mut tx, mut rx, _) = channel(1);
        tx.stage(Ev::Data(0));
        tx.stage(Ev::Data(1));
        assert!(tx.commit().is_ok());
        assert_eq!(rx.recv().await, Some(Ev::Data(0)));
        assert_eq!(rx.recv().await, Some(Ev::Lagged(1)));
        tx.stage(Ev::Data(2));
        assert!(tx.commit().is_ok());
        assert_eq!(rx.recv().await, Some(Ev::Data(2)));
    }

    #[tokio::test]
    async fn backpressure_waits_for_the_consumer_and_loses_nothing() {
        let (mut tx, mut rx, _) = channel(2);
        let producer = tokio::spawn(async move {
            for i in 0..100 {
                tx.stage(Ev::Data(i));
                if i % 7 == 0 {
                    assert!(tx.commit_wait().await.is_ok());
                }
            }
            assert!(tx.commit_wait().await.is_ok());
        });
        let events = drain(&mut rx).await;
        producer.await.unwrap();
        assert_eq!(events, (0..100).map(Ev::Data).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn closing_releases_a_producer_waiting_for_room() {
        let (mut tx, mut rx, closing) = channel(1);
        tx.stage(Ev::Data(0));
        tx.stage(Ev::Data(1));
        let producer = tokio::spawn(async move { tx.commit_wait().await.is_ok() });
        tokio::task::yield_now().await;
        closing.close();
        assert!(producer.await.unwrap());
        assert_eq!(drain(&mut rx).await, vec![Ev::Data(0), Ev::Data(1)]);
    }

    #[tokio::test]
    async fn a_gone_consumer_is_reported() {
        let (mut tx, rx, _) = channel(1);
        drop(rx);
        tx.stage(Ev::Data(0));
        assert!(tx.commit().is_err());
        tx.stage(Ev::Data(0));
        assert!(tx.commit_wait().await.is_err());
    }
}
