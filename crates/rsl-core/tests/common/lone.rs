//! Helpers for driving a lone replica (id 1 of 1, 2, 3) by hand, shared by the acceptor and
//! planted-bug tests.

use bytes::Bytes;
use rsl_core::message::Body;
use rsl_core::{Action, Ballot, Input, Message, Replica, ReplicaId, Request, RequestId, Value};

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
    Value::Batch(vec![Request { id, payload: Bytes::from(vec![n as u8]) }])
}
