//! The bounded event queue between the connection task and the consumer.
//!
//! Why not `tokio::sync::mpsc`: a channel wakes the consumer on every message, and when the
//! consumer keeps up (the normal case) every message then costs a cross-thread wake-up,
//! which costs more than decoding the message. Here the producer stages a burst of frames
//! read from the socket and wakes the consumer once per burst, and the consumer takes
//! everything queued in one lock. Overflow is handled in place: when the queue is full, a
//! dropped data event increments a `Lagged` marker at the tail, so the consumer sees exactly
//! where the gap is and how big it was.

use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
};

use futures::task::AtomicWaker;

/// At most this many must-see events (connection changes, errors) may go over the capacity;
/// beyond it they are counted as dropped too.
const CONTROL_HEADROOM: usize = 256;

enum Slot<E> {
    Event(E),
    Lagged(u64),
}

struct State<E> {
    queue: VecDeque<Slot<E>>,
    /// Events (not markers) in `queue`.
    events: usize,
    sender_gone: bool,
    receiver_gone: bool,
}

struct Shared<E> {
    state: Mutex<State<E>>,
    consumer: AtomicWaker,
    producer: AtomicWaker,
    capacity: usize,
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
    /// Something was queued since the consumer was last woken.
    dirty: bool,
}

/// The consuming side (inside the public stream).
pub(crate) struct Receiver<E> {
    shared: Arc<Shared<E>>,
    /// Taken from the shared queue in one go.
    local: VecDeque<Slot<E>>,
    lagged: fn(u64) -> E,
}

/// A queue of `capacity` events (at least 1). `lagged` makes the event reporting drops.
pub(crate) fn channel<E>(capacity: usize, lagged: fn(u64) -> E) -> (Sender<E>, Receiver<E>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            events: 0,
            sender_gone: false,
            receiver_gone: false,
        }),
        consumer: AtomicWaker::new(),
        producer: AtomicWaker::new(),
        capacity: capacity.max(1),
    });
    (
        Sender {
            shared: shared.clone(),
            dirty: false,
        },
        Receiver {
            shared,
            local: VecDeque::new(),
            lagged,
        },
    )
}

fn count_drop<E>(state: &mut State<E>) {
    match state.queue.back_mut() {
        Some(Slot::Lagged(dropped)) => *dropped += 1,
        _ => state.queue.push_back(Slot::Lagged(1)),
    }
}

impl<E> Sender<E> {
    /// Queues a data event, or counts it as dropped if the queue is full. The consumer is
    /// woken by [`Sender::commit`].
    pub(crate) fn push_data(&mut self, event: E) -> Result<(), Gone> {
        self.push_within(event, self.shared.capacity)
    }

    /// Queues a must-see event (over the capacity, within a headroom) and wakes the consumer.
    pub(crate) fn push_control(&mut self, event: E) -> Result<(), Gone> {
        let result = self.push_within(event, self.shared.capacity + CONTROL_HEADROOM);
        self.commit();
        result
    }

    fn push_within(&mut self, event: E, limit: usize) -> Result<(), Gone> {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return Err(Gone);
        }
        if state.events < limit {
            state.queue.push_back(Slot::Event(event));
            state.events += 1;
        } else {
            count_drop(&mut state);
        }
        self.dirty = true;
        Ok(())
    }

    /// Queues an event, waiting for room (back-pressure), and wakes the consumer if it had to
    /// wait.
    pub(crate) async fn push_wait(&mut self, event: E) -> Result<(), Gone> {
        let mut event = Some(event);
        poll_fn(|cx| self.poll_push(cx, &mut event)).await
    }

    fn poll_push(&mut self, cx: &mut Context<'_>, event: &mut Option<E>) -> Poll<Result<(), Gone>> {
        for registered in [false, true] {
            {
                let mut state = self.shared.lock();
                if state.receiver_gone {
                    return Poll::Ready(Err(Gone));
                }
                if state.events < self.shared.capacity {
                    if let Some(event) = event.take() {
                        state.queue.push_back(Slot::Event(event));
                        state.events += 1;
                    }
                    self.dirty = true;
                    return Poll::Ready(Ok(()));
                }
            }
            if registered {
                break;
            }
            // Full: let the consumer drain what is there, then check again after registering
            // (so a drain in between is not missed).
            self.commit();
            self.shared.producer.register(cx.waker());
        }
        Poll::Pending
    }

    /// Queues the last event whatever the capacity, and wakes the consumer.
    pub(crate) fn push_last(&mut self, event: E) {
        let mut state = self.shared.lock();
        state.queue.push_back(Slot::Event(event));
        state.events += 1;
        drop(state);
        self.dirty = true;
        self.commit();
    }

    /// Wakes the consumer if anything was queued since the last wake.
    pub(crate) fn commit(&mut self) {
        if self.dirty {
            self.dirty = false;
            self.shared.consumer.wake();
        }
    }
}

impl<E> Drop for Sender<E> {
    fn drop(&mut self) {
        self.shared.lock().sender_gone = true;
        self.shared.consumer.wake();
    }
}

impl<E> Receiver<E> {
    fn materialize(&self, slot: Slot<E>) -> E {
        match slot {
            Slot::Event(event) => event,
            Slot::Lagged(dropped) => (self.lagged)(dropped),
        }
    }

    /// The next event; `None` once the producer is gone and everything was taken.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<E>> {
        if let Some(slot) = self.local.pop_front() {
            return Poll::Ready(Some(self.materialize(slot)));
        }
        for registered in [false, true] {
            {
                let mut state = self.shared.lock();
                if !state.queue.is_empty() {
                    std::mem::swap(&mut self.local, &mut state.queue);
                    state.events = 0;
                    drop(state);
                    self.shared.producer.wake();
                    if let Some(slot) = self.local.pop_front() {
                        return Poll::Ready(Some(self.materialize(slot)));
                    }
                } else if state.sender_gone {
                    return Poll::Ready(None);
                }
            }
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
