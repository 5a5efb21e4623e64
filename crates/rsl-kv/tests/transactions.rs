//! MULTI/EXEC/DISCARD/WATCH over TCP: a transaction runs whole or not at all, with Redis's
//! rules for errors while queueing (EXECABORT) and at EXEC (one error in the array).

mod common;

use bytes::Bytes;
use common::{bulk, err, int, ok, start, Client};
use rsl_kv::resp::Reply;
use rsl_kv::ServerConfig;

fn queued() -> Reply {
    Reply::Simple(Bytes::from_static(b"QUEUED"))
}

#[tokio::test]
async fn a_pipelined_transaction_never_partly_runs() {
    // What redis-py's pipeline(transaction=True) sends, in one write. A server that did not
    // know MULTI would run the SET and the INCR and then fail the EXEC.
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    c.send(b"MULTI\r\nSET k 1\r\nINCR k\r\nNOSUCHCOMMAND\r\nEXEC\r\n").await;
    assert_eq!(c.reply().await, ok());
    assert_eq!(c.reply().await, queued());
    assert_eq!(c.reply().await, queued());
    assert!(matches!(c.reply().await, Reply::Error(e) if e.starts_with(b"ERR unknown command")));
    assert_eq!(c.reply().await, err("EXECABORT Transaction discarded because of previous errors."));
    assert_eq!(c.cmd(&["EXISTS", "k"]).await, int(0), "nothing of the transaction ran");
    // A wrong arity while queueing dooms it too; DISCARD drops it; a closed connection too.
    c.send(b"MULTI\r\nSET k 1\r\nGET\r\nEXEC\r\n").await;
    assert_eq!(c.reply().await, ok());
    assert_eq!(c.reply().await, queued());
    assert_eq!(c.reply().await, err("ERR wrong number of arguments for 'get' command"));
    assert!(matches!(c.reply().await, Reply::Error(e) if e.starts_with(b"EXECABORT")));
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    assert_eq!(c.cmd(&["SET", "k", "1"]).await, queued());
    assert_eq!(c.cmd(&["DISCARD"]).await, ok());
    assert_eq!(c.cmd(&["EXISTS", "k"]).await, int(0));
    let addr = c.addr();
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    assert_eq!(c.cmd(&["SET", "k", "1"]).await, queued());
    drop(c);
    let mut other = Client::connect(addr).await;
    assert_eq!(other.cmd(&["EXISTS", "k"]).await, int(0), "a transaction cut off runs nothing");
}

#[tokio::test]
async fn errors_at_exec_are_per_command_and_the_rest_runs() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    assert_eq!(c.cmd(&["LPUSH", "list", "x"]).await, int(1));
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    assert_eq!(c.cmd(&["SET", "a", "1"]).await, queued());
    assert_eq!(c.cmd(&["INCR", "list"]).await, queued());
    assert_eq!(c.cmd(&["SET", "b", "2", "BOGUS"]).await, queued());
    assert_eq!(c.cmd(&["PING"]).await, queued());
    assert_eq!(c.cmd(&["INCR", "a"]).await, queued());
    let wrongtype = err("WRONGTYPE Operation against a key holding the wrong kind of value");
    let expected = Reply::Array(vec![
        ok(),
        wrongtype,
        err("ERR syntax error"),
        Reply::Simple(Bytes::from_static(b"PONG")),
        int(2),
    ]);
    assert_eq!(c.cmd(&["EXEC"]).await, expected);
    assert_eq!(c.cmd(&["EXEC"]).await, err("ERR EXEC without MULTI"));
    assert_eq!(c.cmd(&["DISCARD"]).await, err("ERR DISCARD without MULTI"));
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    assert_eq!(c.cmd(&["MULTI"]).await, err("ERR MULTI calls can not be nested"));
    assert_eq!(c.cmd(&["WATCH", "a"]).await, err("ERR WATCH inside MULTI is not allowed"));
    assert_eq!(c.cmd(&["EXEC"]).await, Reply::Array(vec![]), "those errors do not doom it");
}

#[tokio::test]
async fn watch_aborts_exec_when_another_client_changes_a_key() {
    let addr = start(ServerConfig::default()).await;
    let mut c = Client::connect(addr).await;
    let mut other = Client::connect(addr).await;
    assert_eq!(c.cmd(&["SET", "balance", "10"]).await, ok());
    assert_eq!(c.cmd(&["WATCH", "balance", "absent"]).await, ok());
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    assert_eq!(c.cmd(&["INCRBY", "balance", "5"]).await, queued());
    assert_eq!(other.cmd(&["INCRBY", "balance", "100"]).await, int(110));
    assert_eq!(c.cmd(&["EXEC"]).await, Reply::NullArray, "the watched key changed");
    assert_eq!(c.cmd(&["GET", "balance"]).await, bulk("110"));
    // EXEC forgets the watch: the next transaction commits.
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    assert_eq!(c.cmd(&["INCRBY", "balance", "5"]).await, queued());
    assert_eq!(c.cmd(&["EXEC"]).await, Reply::Array(vec![int(115)]));
    // A key created after WATCH aborts too; UNWATCH forgets.
    assert_eq!(c.cmd(&["WATCH", "absent"]).await, ok());
    assert_eq!(other.cmd(&["SET", "absent", "now"]).await, ok());
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    assert_eq!(c.cmd(&["GET", "absent"]).await, queued());
    assert_eq!(c.cmd(&["EXEC"]).await, Reply::NullArray);
    assert_eq!(c.cmd(&["WATCH", "absent"]).await, ok());
    assert_eq!(other.cmd(&["DEL", "absent"]).await, int(1));
    assert_eq!(c.cmd(&["UNWATCH"]).await, ok());
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    assert_eq!(c.cmd(&["GET", "absent"]).await, queued());
    assert_eq!(c.cmd(&["EXEC"]).await, Reply::Array(vec![Reply::Null]));
    // WATCH pipelined with the transaction (as redis-py's pipeline does after a WATCH).
    c.send(b"WATCH balance\r\nGET balance\r\nMULTI\r\nINCR balance\r\nEXEC\r\n").await;
    assert_eq!(c.reply().await, ok());
    assert_eq!(c.reply().await, bulk("115"));
    assert_eq!(c.reply().await, ok());
    assert_eq!(c.reply().await, queued());
    assert_eq!(c.reply().await, Reply::Array(vec![int(116)]));
}

#[tokio::test]
async fn transactions_do_not_interleave_with_other_clients() {
    let addr = start(ServerConfig::default()).await;
    let mut writers = Vec::new();
    for _ in 0..4 {
        writers.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for _ in 0..50 {
                c.send(b"MULTI\r\nINCR n\r\nINCR n\r\nEXEC\r\n").await;
                for _ in 0..3 {
                    c.reply().await;
                }
                let Reply::Array(items) = c.reply().await else { panic!("EXEC answers an array") };
                let (Reply::Integer(first), Reply::Integer(second)) = (&items[0], &items[1]) else {
                    panic!("{items:?}")
                };
                assert_eq!(first % 2, 1, "a transaction starts from an even count");
                assert_eq!(*second, first + 1, "nothing ran between its two commands");
            }
        }));
    }
    let mut reader = Client::connect(addr).await;
    for _ in 0..100 {
        if let Reply::Bulk(n) = reader.cmd(&["GET", "n"]).await {
            let n: i64 = std::str::from_utf8(&n).unwrap().parse().unwrap();
            assert_eq!(n % 2, 0, "a reader never sees half a transaction");
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(reader.cmd(&["GET", "n"]).await, bulk("400"));
}
