//! Who gets a connection slot and a thread: a pure machine, driven by
//! `gate` (the accept loop of the block server and of the tracker).
//!
//! A connection starts in the *lobby*: it costs a file descriptor and a
//! few bytes, no thread. It leaves the lobby for a handler thread once its
//! first message has arrived whole (`ready`), or is closed when the start
//! deadline passes first. Handler threads are few (`Limits::handlers`);
//! each reports whether its connection is busy (a request in progress, a
//! transfer queued) or idle (waiting for the client).
//!
//! When slots run short, the least useful connection is evicted rather
//! than the newcomer refused: first the lobby's (never sent a whole
//! message), then idle handled ones that hold nothing open, then idle ones
//! that do; within a class, the address holding the most slots first,
//! then the oldest. A busy connection is never evicted. Threads go first
//! to ready connections from the addresses holding the fewest slots. So
//! an attacker holding idle or trickling connections only ever displaces
//! itself, and its crowd of ready ones does not queue ahead of others.
//!
//! No socket, clock or thread inside: `(event, now) -> decisions`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A connection's number at the gate, in order of arrival (smaller is
/// older).
pub type GateId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Handler threads, at most: the bound on threads whatever the load.
    pub handlers: usize,
    /// Connections waiting in the lobby, at most.
    pub lobby: usize,
    /// Connections from one address (lobby and handled), at most.
    pub per_ip: usize,
    /// From accept to the first whole message (a handshake included).
    pub start: Duration,
}

/// What the driver must do, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep the connection just accepted in the lobby under this id.
    Admit(GateId),
    /// Tell the connection just accepted BUSY and close it.
    Refuse,
    /// Close this connection: in the lobby, with BUSY; handled, by shutting
    /// its socket down, which ends its thread (it then reports `closed`).
    Evict(GateId),
    /// Give this lobby connection to a new handler thread.
    Hand(GateId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Accepted, its first message not yet whole.
    Lobby,
    /// First message whole, waiting for a handler thread.
    Ready,
    /// On a handler thread, waiting for the client. `useful`: it holds
    /// something open (a file being downloaded from us).
    Idle { useful: bool },
    /// On a handler thread, working for the client.
    Busy,
    /// Evicted from its handler thread, which has not ended yet.
    Leaving,
}

struct Admitted {
    ip: IpAddr,
    accepted: Instant,
    /// When it last changed state (for "oldest idle first").
    since: Instant,
    state: State,
}

/// The connections held, in order of their ids, side by side: the gate
/// walks them all to dispatch and to pick a victim, and looks one up at
/// every report of a handler (a tree's nodes missed the cache at each).
/// Ids only grow, so a new one is pushed at the end.
#[derive(Default)]
struct ById(Vec<(GateId, Admitted)>);

impl ById {
    fn find(&self, id: GateId) -> Option<usize> {
        self.0.binary_search_by_key(&id, |&(i, _)| i).ok()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, id: GateId) -> Option<&Admitted> {
        self.find(id).map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, id: GateId) -> Option<&mut Admitted> {
        self.find(id).map(|i| &mut self.0[i].1)
    }

    fn push(&mut self, id: GateId, e: Admitted) {
        debug_assert!(self.0.last().is_none_or(|&(last, _)| last < id));
        self.0.push((id, e));
    }

    fn remove(&mut self, id: GateId) -> Option<Admitted> {
        self.find(id).map(|i| self.0.remove(i).1)
    }

    fn iter(&self) -> impl Iterator<Item = (&GateId, &Admitted)> {
        self.0.iter().map(|(id, e)| (id, e))
    }

    fn values(&self) -> impl Iterator<Item = &Admitted> {
        self.0.iter().map(|(_, e)| e)
    }
}

pub struct Admission {
    limits: Limits,
    next: GateId,
    /// Ordered by id, so by age.
    conns: ById,
    /// Slots per address (a leaving connection no longer counts).
    per_ip: HashMap<IpAddr, usize>,
    /// Connections in the lobby (`Lobby` and `Ready`).
    lobby: usize,
    /// Handler threads running (`Idle`, `Busy` and `Leaving`).
    threads: usize,
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            next: 0,
            conns: ById::default(),
            per_ip: HashMap::new(),
            lobby: 0,
            threads: 0,
        }
    }

    /// Handler threads running (for tests and the logs).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Connections held, lobby and handled.
    pub fn held(&self) -> usize {
        self.conns.len()
    }

    /// A connection from `ip` was accepted.
    pub fn accept(&mut self, ip: IpAddr, now: Instant) -> Vec<Decision> {
        // Its own least useful slot makes room, or it waits its turn.
        let mine = if self.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip {
            match self.victim(|e| e.ip == ip) {
                Some(v) => Some(v),
                None => return vec![Decision::Refuse],
            }
        } else {
            None
        };
        let frees_lobby =
            mine.is_some_and(|v| self.conns.get(v).is_some_and(|e| e.state == State::Lobby));
        let other = if self.lobby >= self.limits.lobby && !frees_lobby {
            match self.victim(|e| e.state == State::Lobby) {
                Some(v) => Some(v),
                None => return vec![Decision::Refuse],
            }
        } else {
            None
        };
        let mut out: Vec<Decision> = [mine, other]
            .into_iter()
            .flatten()
            .map(|v| self.evict(v, now))
            .collect();
        let id = self.next;
        self.next += 1;
        self.conns.push(
            id,
            Admitted {
                ip,
                accepted: now,
                since: now,
                state: State::Lobby,
            },
        );
        *self.per_ip.entry(ip).or_insert(0) += 1;
        self.lobby += 1;
        out.push(Decision::Admit(id));
        out
    }

    /// Its first message has arrived whole: it wants a handler thread.
    pub fn ready(&mut self, id: GateId, now: Instant) -> Vec<Decision> {
        if let Some(e) = self.conns.get_mut(id) {
            if e.state == State::Lobby {
                e.state = State::Ready;
                e.since = now;
            }
        }
        self.dispatch(now)
    }

    /// Its handler waits for the client.
    pub fn idle(&mut self, id: GateId, useful: bool, now: Instant) {
        self.set_handled(id, State::Idle { useful }, now);
    }

    /// Its handler works for the client.
    pub fn busy(&mut self, id: GateId, now: Instant) {
        self.set_handled(id, State::Busy, now);
    }

    fn set_handled(&mut self, id: GateId, state: State, now: Instant) {
        if let Some(e) = self.conns.get_mut(id) {
            if matches!(e.state, State::Idle { .. } | State::Busy) && e.state != state {
                e.state = state;
                e.since = now;
            }
        }
    }

    /// It is closed (by its handler, or the client hung up in the lobby).
    pub fn closed(&mut self, id: GateId) {
        let Some(e) = self.conns.remove(id) else {
            return;
        };
        match e.state {
            State::Lobby | State::Ready => self.lobby -= 1,
            State::Idle { .. } | State::Busy => self.threads -= 1,
            State::Leaving => {
                self.threads -= 1;
                return; // its address slot went at eviction
            }
        }
        self.release_ip(e.ip);
    }

    /// Closes lobby connections past the start deadline and hands waiting
    /// ones to threads that came free.
    pub fn tick(&mut self, now: Instant) -> Vec<Decision> {
        let late: Vec<GateId> = self
            .conns
            .iter()
            .filter(|(_, e)| {
                matches!(e.state, State::Lobby | State::Ready)
                    && now.saturating_duration_since(e.accepted) >= self.limits.start
            })
            .map(|(id, _)| *id)
            .collect();
        let mut out: Vec<Decision> = late.into_iter().map(|id| self.evict(id, now)).collect();
        out.extend(self.dispatch(now));
        out
    }

    /// Hands ready connections to free threads, those from the addresses
    /// holding the fewest slots first (then the oldest): a crowd's many
    /// ready connections do not queue ahead of a newcomer's one. For those
    /// left waiting, evicts idle handled connections to free threads soon.
    fn dispatch(&mut self, now: Instant) -> Vec<Decision> {
        let mut out = Vec::new();
        let mut ready: Vec<(usize, GateId)> = self
            .conns
            .iter()
            .filter(|(_, e)| e.state == State::Ready)
            .map(|(id, e)| (self.per_ip.get(&e.ip).copied().unwrap_or(0), *id))
            .collect();
        ready.sort_unstable();
        let ready = ready.into_iter().map(|(_, id)| id);
        let mut waiting = 0;
        for id in ready {
            if self.threads < self.limits.handlers {
                let e = self.conns.get_mut(id).expect("listed above");
                // It has a whole message to be served: busy until its
                // handler says it waits.
                e.state = State::Busy;
                e.since = now;
                self.lobby -= 1;
                self.threads += 1;
                out.push(Decision::Hand(id));
            } else {
                waiting += 1;
            }
        }
        let leaving = self
            .conns
            .values()
            .filter(|e| e.state == State::Leaving)
            .count();
        for _ in leaving..waiting {
            match self.victim(|e| matches!(e.state, State::Idle { .. })) {
                Some(v) => out.push(self.evict(v, now)),
                None => break,
            }
        }
        out
    }

    /// The least useful connection among those `allowed` (see the module
    /// doc), never a busy, ready or leaving one.
    fn victim(&self, allowed: impl Fn(&Admitted) -> bool) -> Option<GateId> {
        let class = |s: State| match s {
            State::Lobby => Some(0),
            State::Idle { useful: false } => Some(1),
            State::Idle { useful: true } => Some(2),
            State::Ready | State::Busy | State::Leaving => None,
        };
        self.conns
            .iter()
            .filter(|(_, e)| allowed(e))
            .filter_map(|(id, e)| class(e.state).map(|c| (c, e, *id)))
            .min_by_key(|(c, e, id)| {
                let share = self.per_ip.get(&e.ip).copied().unwrap_or(0);
                (*c, std::cmp::Reverse(share), e.since, *id)
            })
            .map(|(_, _, id)| id)
    }

    fn evict(&mut self, id: GateId, now: Instant) -> Decision {
        let e = self.conns.get_mut(id).expect("evicting a known connection");
        let ip = e.ip;
        match e.state {
            State::Lobby | State::Ready => {
                self.conns.remove(id);
                self.lobby -= 1;
            }
            _ => {
                e.state = State::Leaving;
                e.since = now;
            }
        }
        self.release_ip(ip);
        Decision::Evict(id)
    }

    fn release_ip(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests;
