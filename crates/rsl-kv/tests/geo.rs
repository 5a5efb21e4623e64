//! The geo commands against the replies of redis-server 7.0.15, byte for byte, in RESP2 and
//! RESP3: each command below was sent to a real redis-server (`redis-server --port 6390
//! --save ''`, 2026-12-06) and its raw reply recorded. Positions and distances are exact
//! (GEOPOS's 17 decimals, GEODIST's 4, STOREDIST's scores), and so are the error texts and
//! the order in which a command checks its arguments. The differential test
//! (tests/differential/geo.rs) compares random geo commands the same way, live.

mod common;

use common::{start, Client};
use rsl_kv::ServerConfig;

/// RESP2: commands in order, each with redis-server's raw reply.
const RESP2: &[(&str, &[u8])] = &[
    ("FLUSHALL", b"+OK\r\n"),
    ("GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania", b":2\r\n"),
    ("GEOADD Sicily NX CH 13.361389 38.115556 Palermo 2.35 48.85 Paris", b":1\r\n"),
    ("GEOADD Sicily XX CH 13.361389 38.2 Palermo 2.35 48.85 Nowhere", b":1\r\n"),
    ("GEOADD Sicily 13.361389 38.115556 Palermo 181 0 Bad", b"-ERR invalid longitude,latitude pair 181.000000,0.000000\r\n"),
    ("GEOADD Sicily 13.361389 38.115556", b"-ERR wrong number of arguments for 'geoadd' command\r\n"),
    ("GEOADD Sicily CH CH CH", b"-ERR syntax error\r\n"),
    ("GEOADD Sicily 1 x m", b"-ERR value is not a valid float\r\n"),
    ("GEOADD Sicily inf 0 m", b"-ERR invalid longitude,latitude pair inf,0.000000\r\n"),
    ("GEOPOS Sicily Palermo Nope", b"*2\r\n*2\r\n$20\r\n13.36138933897018433\r\n$19\r\n38.2000006309196749\r\n*-1\r\n"),
    ("GEODIST Sicily Palermo Catania", b"$11\r\n170262.6445\r\n"),
    ("GEODIST Sicily Palermo Catania KM", b"$8\r\n170.2626\r\n"),
    ("GEODIST Sicily Palermo Catania mi", b"$8\r\n105.7966\r\n"),
    ("GEODIST Sicily Palermo Catania ft", b"$11\r\n558604.4766\r\n"),
    ("GEODIST Sicily Palermo Nope", b"$-1\r\n"),
    ("GEODIST Sicily Palermo Catania km x", b"-ERR syntax error\r\n"),
    ("GEODIST Nokey a b", b"$-1\r\n"),
    ("GEOHASH Sicily Palermo Catania Nope", b"*3\r\n$11\r\nsqc92417nu0\r\n$11\r\nsqdtr74hyu0\r\n$-1\r\n"),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ASC", b"*2\r\n$7\r\nCatania\r\n$7\r\nPalermo\r\n"),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km DESC WITHCOORD WITHDIST WITHHASH", b"*2\r\n*4\r\n$7\r\nPalermo\r\n$8\r\n196.6301\r\n:3479101030759983\r\n*2\r\n$20\r\n13.36138933897018433\r\n$19\r\n38.2000006309196749\r\n*4\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n:3479447370796909\r\n*2\r\n$20\r\n15.08726745843887329\r\n$20\r\n37.50266842333162032\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 400 400 km ASC COUNT 1", b"*1\r\n$7\r\nPalermo\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Nope BYRADIUS 1 km", b"-ERR could not decode requested zset member\r\n"),
    ("GEOSEARCH Nokey FROMMEMBER Nope BYRADIUS 1 km", b"*0\r\n"),
    ("GEOSEARCH Sicily BYRADIUS 1 km", b"-ERR wrong number of arguments for 'geosearch' command\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 1 km WITHDIST", b"*1\r\n*2\r\n$7\r\nPalermo\r\n$6\r\n0.0000\r\n"),
    ("GEOSEARCH Sicily FROMLONLAT 1 2 BYRADIUS 1 km WITHDIST", b"*0\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 1 1 km WITHDIST", b"*1\r\n*2\r\n$7\r\nPalermo\r\n$6\r\n0.0000\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo FROMLONLAT 1 2 BYRADIUS 1 km", b"-ERR syntax error\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS -1 km", b"-ERR radius cannot be negative\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS x km", b"-ERR need numeric radius\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYBOX x 1 km", b"-ERR need numeric width\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 1 -1 km", b"-ERR height or width cannot be negative\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 1 parsec", b"-ERR unsupported unit provided. please use M, KM, FT, MI\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 1 km ANY", b"-ERR the ANY argument requires COUNT argument\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 1 km COUNT 0", b"-ERR COUNT must be > 0\r\n"),
    ("GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 1 km STOREDIST", b"-ERR syntax error\r\n"),
    ("GEOSEARCHSTORE dst Sicily FROMMEMBER Palermo BYRADIUS 500 km STOREDIST", b":2\r\n"),
    ("ZRANGE dst 0 -1 WITHSCORES", b"*4\r\n$7\r\nPalermo\r\n$1\r\n0\r\n$7\r\nCatania\r\n$17\r\n170.2626444575352\r\n"),
    ("GEOSEARCHSTORE dst Sicily FROMMEMBER Palermo BYRADIUS 500 km WITHDIST", b"-ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options\r\n"),
    ("GEOSEARCHSTORE dst Nokey FROMMEMBER Palermo BYRADIUS 500 km", b":0\r\n"),
    ("EXISTS dst", b":0\r\n"),
    ("GEORADIUS Sicily 15 37 200 km WITHDIST ASC", b"*2\r\n*2\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n*2\r\n$7\r\nPalermo\r\n$8\r\n196.6301\r\n"),
    ("GEORADIUS Sicily 15 37 200 km STORE dst WITHDIST", b"-ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options\r\n"),
    ("GEORADIUS_RO Sicily 15 37 200 km STORE dst", b"-ERR syntax error\r\n"),
    ("GEORADIUSBYMEMBER Sicily Palermo 200 km STOREDIST dst", b":2\r\n"),
    ("ZRANGE dst 0 -1 WITHSCORES", b"*4\r\n$7\r\nPalermo\r\n$1\r\n0\r\n$7\r\nCatania\r\n$17\r\n170.2626444575352\r\n"),
    ("GEORADIUSBYMEMBER Sicily Nope 200 km", b"-ERR could not decode requested zset member\r\n"),
    ("GEORADIUSBYMEMBER Nokey Nope x km", b"*0\r\n"),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 1 ANY WITHHASH", b"*1\r\n*2\r\n$7\r\nPalermo\r\n:3479101030759983\r\n"),
    ("GEOSEARCH Sicily FROMLONLAT 0 0 BYRADIUS 20000 km", b"*3\r\n$7\r\nPalermo\r\n$7\r\nCatania\r\n$5\r\nParis\r\n"),
    ("ZADD Sicily -1 neg 2.5 frac inf pinf -inf ninf 4503599627370496 over", b":5\r\n"),
    ("GEOPOS Sicily neg frac pinf ninf over", b"*5\r\n*2\r\n$3\r\n180\r\n$19\r\n85.0511287799999991\r\n*2\r\n$22\r\n-179.99999195337295532\r\n$21\r\n-85.05112751263942528\r\n*2\r\n$22\r\n-179.99999731779098511\r\n$21\r\n-85.05112751263942528\r\n*2\r\n$3\r\n180\r\n$21\r\n-85.05112751263942528\r\n*2\r\n$22\r\n-179.99999731779098511\r\n$19\r\n85.0511287799999991\r\n"),
    ("GEOHASH Sicily neg frac pinf ninf over", b"*5\r\n$11\r\nbp05b5048p0\r\n$11\r\n00bh0hbj200\r\n$11\r\n00bh0hbj200\r\n$11\r\n00bh0hbj200\r\n$11\r\nbp05b5048p0\r\n"),
    ("SET str x", b"+OK\r\n"),
    ("GEOADD str 1 2 m", b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
    ("GEOPOS str m", b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
    ("GEOSEARCH str FROMMEMBER x BYRADIUS 1 km", b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
];

/// RESP3 (after the RESP2 commands and `HELLO 3`): GEOPOS's coordinates and WITHCOORD are
/// doubles (`,`) in Redis's 17-decimal form, a missing member is `_`.
const RESP3: &[(&str, &[u8])] = &[
    ("GEOPOS Sicily Palermo Nope", b"*2\r\n*2\r\n,13.36138933897018433\r\n,38.2000006309196749\r\n_\r\n"),
    ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km DESC WITHCOORD WITHDIST WITHHASH", b"*2\r\n*4\r\n$7\r\nPalermo\r\n$8\r\n196.6301\r\n:3479101030759983\r\n*2\r\n,13.36138933897018433\r\n,38.2000006309196749\r\n*4\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n:3479447370796909\r\n*2\r\n,15.08726745843887329\r\n,37.50266842333162032\r\n"),
    ("GEODIST Nokey a b", b"_\r\n"),
];

#[tokio::test]
async fn geo_commands_answer_byte_for_byte_as_redis_7_does() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    for (command, want) in RESP2 {
        let args: Vec<&str> = command.split(' ').collect();
        let got = c.raw_cmd(&args).await;
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want), "{command}");
    }
    let hello = c.raw_cmd(&["HELLO", "3"]).await;
    assert!(hello.starts_with(b"%"), "{hello:?}");
    for (command, want) in RESP3 {
        let args: Vec<&str> = command.split(' ').collect();
        let got = c.raw_cmd(&args).await;
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want), "{command}");
    }
}

/// COMMAND INFO's rows as redis-server 7.0.15 reports them: arity, read or write, movable keys
/// (GEORADIUS's STORE) and the first, last and step key positions.
#[tokio::test]
async fn command_info_rows_are_redis_7s() {
    use rsl_kv::resp::Reply;
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    for (name, arity, kind, movable, keys) in [
        ("geoadd", -5, "write", false, (1, 1, 1)),
        ("geopos", -2, "readonly", false, (1, 1, 1)),
        ("geodist", -4, "readonly", false, (1, 1, 1)),
        ("geohash", -2, "readonly", false, (1, 1, 1)),
        ("geosearch", -7, "readonly", false, (1, 1, 1)),
        ("geosearchstore", -8, "write", false, (1, 2, 1)),
        ("georadius", -6, "write", true, (1, 1, 1)),
        ("georadius_ro", -6, "readonly", false, (1, 1, 1)),
        ("georadiusbymember", -5, "write", true, (1, 1, 1)),
        ("georadiusbymember_ro", -5, "readonly", false, (1, 1, 1)),
    ] {
        let Reply::Array(rows) = c.cmd(&["COMMAND", "INFO", name]).await else { panic!() };
        let Reply::Array(row) = &rows[0] else { panic!("{name}: {rows:?}") };
        assert_eq!(row[0], Reply::bulk(name.as_bytes()));
        assert_eq!(row[1], Reply::Integer(arity), "{name}");
        let Reply::Array(flags) = &row[2] else { panic!("{row:?}") };
        let has =
            |f: &str| flags.contains(&Reply::Simple(bytes::Bytes::copy_from_slice(f.as_bytes())));
        assert!(has(kind), "{name}: {flags:?}");
        assert_eq!(has("movablekeys"), movable, "{name}: {flags:?}");
        let (first, last, step) = keys;
        assert_eq!(row[3..6], [Reply::Integer(first), Reply::Integer(last), Reply::Integer(step)]);
    }
}
