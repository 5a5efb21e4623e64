//! Pub/sub on a connection: SUBSCRIBE, PSUBSCRIBE and their UNSUBSCRIBEs register with the
//! replica's [`crate::hub::Hub`], whose messages (from PUBLISH, executed through the log on
//! every replica) the connection writes as they come: a RESP3 push, or a RESP2 array. PUBSUB
//! answers about this replica's subscribers.

use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::session::Session;
use super::table::is;
use super::Pending;
use crate::commands::keys::unknown_subcommand;
use crate::hub::Message;
use crate::resp::{Proto, Reply};

/// The next message for a subscribed connection (never, for one that is not).
pub(super) async fn next_message(
    messages: &mut Option<mpsc::Receiver<Message>>,
) -> Option<Message> {
    match messages {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A push frame: a RESP3 push, or an array in RESP2.
fn push(items: Vec<Reply>, proto: Proto) -> Reply {
    match proto {
        Proto::Resp3 => Reply::Push(items),
        Proto::Resp2 => Reply::Array(items),
    }
}

impl Session {
    /// A message's bytes as this connection receives it.
    pub(super) fn message_bytes(&self, message: Message) -> Bytes {
        self.shared.stats.pubsub_messages.fetch_add(1, Ordering::Relaxed);
        let items = match message.pattern {
            Some(pattern) => vec![
                Reply::text("pmessage"),
                Reply::Bulk(pattern),
                Reply::Bulk(message.channel),
                Reply::Bulk(message.payload),
            ],
            None => vec![
                Reply::text("message"),
                Reply::Bulk(message.channel),
                Reply::Bulk(message.payload),
            ],
        };
        push(items, self.proto).to_bytes_in(self.proto)
    }

    fn subscriptions(&self) -> i64 {
        (self.channels.len() + self.patterns.len()) as i64
    }

    fn publish_counts(&self) {
        self.info.sub.store(self.channels.len(), Ordering::Relaxed);
        self.info.psub.store(self.patterns.len(), Ordering::Relaxed);
    }
}

/// SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE: one reply frame per channel or pattern.
pub(super) fn cmd_subscribe(session: &mut Session, args: &[Bytes], _: bool) -> Pending {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let pattern = name.starts_with('p');
    let subscribing = !name.contains("unsub");
    let Some(hub) = session.shared.engine.hub() else {
        return super::ready(
            Reply::error("ERR pub/sub is not available on this server"),
            session.proto,
        );
    };
    if subscribing && session.messages.is_none() {
        session.messages = Some(hub.connect(session.id));
    }
    let mut out = BytesMut::new();
    let mut frame = |session: &Session, target: Option<Bytes>| {
        let items = vec![
            Reply::text(name.clone()),
            target.map_or(Reply::Null, Reply::Bulk),
            Reply::Integer(session.subscriptions()),
        ];
        push(items, session.proto).encode_in(session.proto, &mut out);
    };
    if subscribing {
        for target in &args[1..] {
            let set = if pattern { &mut session.patterns } else { &mut session.channels };
            if set.insert(target.clone()) {
                hub.subscribe(session.id, target.clone(), pattern);
            }
            frame(session, Some(target.clone()));
        }
    } else {
        let set = if pattern { &session.patterns } else { &session.channels };
        let targets: Vec<Bytes> =
            if args.len() > 1 { args[1..].to_vec() } else { set.iter().cloned().collect() };
        if targets.is_empty() {
            frame(session, None);
        }
        for target in targets {
            let set = if pattern { &mut session.patterns } else { &mut session.channels };
            if set.remove(&target) {
                hub.unsubscribe(session.id, &target, pattern);
            }
            frame(session, Some(target));
        }
    }
    session.publish_counts();
    Pending::Ready(out.freeze())
}

/// Drops every subscription (RESET).
pub(super) fn unsubscribe_all(session: &mut Session) {
    if let Some(hub) = session.shared.engine.hub() {
        hub.disconnect(session.id);
    }
    session.channels.clear();
    session.patterns.clear();
    session.messages = None;
    session.publish_counts();
}

/// PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT, about this replica.
pub(super) fn cmd_pubsub(session: &mut Session, args: &[Bytes]) -> Reply {
    let hub = session.shared.engine.hub().unwrap_or_default();
    let sub = &args[1];
    match () {
        _ if is(sub, "channels") && args.len() <= 3 => Reply::Array(
            hub.channels(args.get(2).map(|p| &p[..])).into_iter().map(Reply::Bulk).collect(),
        ),
        _ if is(sub, "numsub") => Reply::Map(
            args[2..]
                .iter()
                .map(|c| (Reply::Bulk(c.clone()), Reply::Integer(hub.numsub(c) as i64)))
                .collect(),
        ),
        _ if is(sub, "numpat") && args.len() == 2 => Reply::Integer(hub.numpat() as i64),
        _ => unknown_subcommand(sub, "PUBSUB"),
    }
}
