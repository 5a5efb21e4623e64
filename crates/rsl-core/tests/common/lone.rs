//! Helpers for driving a lone replica (id 1 of 1, 2, 3) by hand, shared by the acceptor and
//! planted-bug tests.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use bytes::Bytes;
use rsl_core::message::Body;
use rsl_core::{
    Action, Ballot, Input, Message, Replica, ReplicaId, Request, RequestId, Slot, Value, Write,
};

/// Steps `r` once and checks its invariants.
pub fn step(r: &mut Replica, input: Input) -> Vec<Action> {
    let mut out = Vec::new();
    r.step(input, &mut out);
    r.invariants();
    out
}

/// A message from replica `id` to replica 1.
pub fn from(id: u32, body: Body) -> Input {
    Input::Receive(Message { from: ReplicaId(id), to: ReplicaId(1), body })
}

pub fn b(round: u64, id: u32) -> Ballot {
    Ballot::new(round, ReplicaId(id))
}

/// A one-request batch, distinct for each `n`.
pub fn batch(n: u64) -> Value {
    let id = RequestId { proposer: ReplicaId(9), incarnation: 0, seq: n };
    Value::Batch(vec![Request { id, payload: Bytes::from(vec![n as u8]) }].into())
}

/// The bodies of the messages in `out`.
pub fn sent(out: &[Action]) -> Vec<Body> {
    sent_to(out).into_iter().map(|(_, body)| body).collect()
}

/// The messages in `out`, with their destination.
pub fn sent_to(out: &[Action]) -> Vec<(u32, Body)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send { to, msg } => Some((to.0, msg.body.clone())),
            _ => None,
        })
        .collect()
}

/// The writes in `out`, with their seq.
pub fn writes(out: &[Action]) -> Vec<(u64, Write)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Persist { seq, write } => Some((*seq, write.clone())),
            _ => None,
        })
        .collect()
}

/// The slots executed in `out`, with their values.
pub fn executed(out: &[Action]) -> Vec<(Slot, Value)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Execute { slot, value } => Some((*slot, value.clone())),
            _ => None,
        })
        .collect()
}
