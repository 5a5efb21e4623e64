"""redis-py, on its defaults (RESP3 with redis-py 8), against an rsl-kv cluster through every
replica: strings, hashes, lists, sets, sorted sets, pipelines, transactions with WATCH, Lock,
scripts, pub/sub (one global order), blocking pops, streams (XADD, XREAD with BLOCK woken
through another replica, consumer groups) and geo commands (through a follower). Run by tests/redis_py.rs with the replicas' client
addresses as arguments; exits non-zero on the first failure. With RSL_KV_TLS_CA set (and
RSL_KV_TLS_CERT, RSL_KV_TLS_KEY for a client certificate), it connects with TLS, verifying the
server's certificate and host name (tests/tls.rs)."""

import os
import sys
import threading
import time

import redis

ADDRS = [a.split(":") for a in sys.argv[1:]]
TLS = {}
if os.environ.get("RSL_KV_TLS_CA"):
    TLS = {
        "ssl": True,
        "ssl_ca_certs": os.environ["RSL_KV_TLS_CA"],
        "ssl_certfile": os.environ.get("RSL_KV_TLS_CERT"),
        "ssl_keyfile": os.environ.get("RSL_KV_TLS_KEY"),
    }
CLIENTS = [redis.Redis(host=h, port=int(p), decode_responses=True, **TLS) for h, p in ADDRS]


def check(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def data_types(r, n):
    k = f"r{n}:"
    check("ping", r.ping(), True)
    check("set", r.set(k + "s", "v", ex=100), True)
    check("get", r.get(k + "s"), "v")
    check("incrbyfloat", r.incrbyfloat(k + "f", 1.5), 1.5)
    check("hset", r.hset(k + "h", mapping={"a": "1", "b": "2"}), 2)
    check("hgetall", r.hgetall(k + "h"), {"a": "1", "b": "2"})
    check("rpush", r.rpush(k + "l", "x", "y", "z"), 3)
    check("lrange", r.lrange(k + "l", 0, -1), ["x", "y", "z"])
    check("sadd", r.sadd(k + "t", "a", "b"), 2)
    check("smembers", r.smembers(k + "t"), {"a", "b"})
    check("zadd", r.zadd(k + "z", {"a": 1.5, "b": 3}), 2)
    check("zrange", r.zrange(k + "z", 0, -1, withscores=True), [("a", 1.5), ("b", 3.0)])
    check("zrangebyscore", r.zrange(k + "z", 2, "+inf", byscore=True), ["b"])
    check("type", r.type(k + "z"), "zset")
    check("scan", sorted(r.scan_iter(match=k + "*")), sorted(k + s for s in "sfhltz"))
    check("ttl", 0 < r.ttl(k + "s") <= 100, True)


def transactions(r, n):
    k = f"r{n}:tx"
    r.delete(k)
    pipe = r.pipeline(transaction=True)
    pipe.set(k, 1).incr(k).incrby(k, 10).get(k)
    check("pipeline(transaction=True)", pipe.execute(), [True, 2, 12, "12"])
    # WATCH: a change by another client between WATCH and EXEC aborts; the retry commits.
    other = CLIENTS[(n + 1) % len(CLIENTS)]
    with r.pipeline() as pipe:
        pipe.watch(k)
        value = int(pipe.get(k))
        other.incr(k)
        pipe.multi()
        pipe.set(k, value + 100)
        try:
            pipe.execute()
            raise AssertionError("EXEC should have aborted")
        except redis.WatchError:
            pass
    check("after abort", r.get(k), "13")
    check("transaction helper", r.transaction(lambda p: p.multi() or p.incr(k), k), [14])
    # A non-transactional pipeline keeps its order.
    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.rpush(k + "p", i)
    pipe.lrange(k + "p", 0, -1)
    check("pipeline", pipe.execute()[-1], [str(i) for i in range(50)])


def locks(r, n):
    name = "lock:shared"
    lock = r.lock(name, timeout=10)
    check("acquire", lock.acquire(blocking=False), True)
    check("held elsewhere", CLIENTS[(n + 1) % len(CLIENTS)].lock(name, timeout=10).acquire(blocking=False), False)
    check("extend", lock.extend(5), True)
    check("owned", lock.owned(), True)
    lock.release()
    check("released", r.exists(name), 0)
    check("eval", r.eval("return redis.call('incrby', KEYS[1], ARGV[1])", 1, f"r{n}:e", 5), 5)


def pubsub():
    # A subscriber on every replica; messages published through every replica arrive at
    # each of them once, in the same order.
    subs = [c.pubsub() for c in CLIENTS]
    for s in subs:
        s.subscribe("news")
        check("subscribed", s.get_message(timeout=5)["type"], "subscribe")
    sent = []
    for i in range(30):
        message = f"m{i}"
        CLIENTS[i % len(CLIENTS)].publish("news", message)
        sent.append(message)
    orders = []
    for s in subs:
        got = []
        deadline = time.time() + 20
        while len(got) < len(sent) and time.time() < deadline:
            m = s.get_message(timeout=1)
            if m and m["type"] == "message":
                got.append(m["data"])
        orders.append(got)
        s.close()
    for got in orders:
        check("every message once", sorted(got), sorted(sent))
        check("one global order", got, orders[0])


def blocking_pops():
    # A pop blocked on one replica is woken by a push through another, at once (not by a
    # client's retry after a socket timeout).
    results = {}

    def pop(i):
        results[i] = (CLIENTS[i].blpop([f"queue{i}"], timeout=20), time.time())

    threads = [threading.Thread(target=pop, args=(i,)) for i in range(len(CLIENTS))]
    for t in threads:
        t.start()
    # Push only once every pop is blocked (its replica shows the client with flag b).
    deadline = time.time() + 20
    for c in CLIENTS:
        while not any("b" in x["flags"] for x in c.client_list()) and time.time() < deadline:
            time.sleep(0.01)
    pushed = time.time()
    for i in range(len(CLIENTS)):
        CLIENTS[(i + 1) % len(CLIENTS)].rpush(f"queue{i}", f"job{i}")
    for t in threads:
        t.join()
    for i in range(len(CLIENTS)):
        popped, at = results[i]
        check(f"blpop {i}", popped, (f"queue{i}", f"job{i}"))
        check(f"blpop {i} woken by the push", at - pushed < 3, True)
    check("timeout", CLIENTS[0].brpop(["empty"], timeout=0.2), None)


def streams():
    # Entries added through every replica, read back through every other, in one order.
    n = len(CLIENTS)
    key = "events"
    ids = [CLIENTS[i % n].xadd(key, {"n": str(i)}) for i in range(6)]
    as_pair = lambda i: tuple(int(p) for p in i.split("-"))
    check("xadd ids increase", [as_pair(i) for i in ids], sorted(as_pair(i) for i in ids))
    for c in CLIENTS:
        check("xlen", c.xlen(key), 6)
        got = c.xread({key: "0"})
        check("xread", [e[0] for e in got[0][1]], ids)
        check("xread fields", got[0][1][2][1], {"n": "2"})
    # XREAD BLOCK with $ through one replica, woken by an XADD through another.
    results = {}

    def read(i):
        results[i] = (CLIENTS[i].xread({key: "$"}, block=20000), time.time())

    threads = [threading.Thread(target=read, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.time() + 20
    for c in CLIENTS:
        while not any("b" in x["flags"] for x in c.client_list()) and time.time() < deadline:
            time.sleep(0.01)
    pushed = time.time()
    new_id = CLIENTS[1 % n].xadd(key, {"n": "new"})
    for t in threads:
        t.join()
    for i in range(n):
        got, at = results[i]
        check(f"xread block {i}", got, [[key, [(new_id, {"n": "new"})]]])
        check(f"xread block {i} woken by the xadd", at - pushed < 3, True)
    check("xread block timeout", CLIENTS[0].xread({key: "$"}, block=200), [])
    # A consumer group read through every replica: each entry goes to one consumer once.
    check("xgroup create", CLIENTS[0].xgroup_create(key, "workers", id="0"), True)
    seen = []
    for i, c in enumerate(CLIENTS):
        got = c.xreadgroup("workers", f"w{i}", {key: ">"}, count=3)
        seen += [e[0] for e in got[0][1]] if got else []
    check("xreadgroup after all", CLIENTS[0].xreadgroup("workers", "w0", {key: ">"}), [])
    check("xreadgroup delivers each entry once", seen, ids + [new_id])
    check("xpending", CLIENTS[1 % n].xpending(key, "workers")["pending"], 7)
    check("xack", CLIENTS[2 % n].xack(key, "workers", *seen), 7)
    check("xpending after xack", CLIENTS[0].xpending(key, "workers")["pending"], 0)
    # XREADGROUP BLOCK through a replica, woken by an XADD through another.
    done = {}

    def consume():
        done["got"] = CLIENTS[2 % n].xreadgroup("workers", "late", {key: ">"}, block=20000)

    t = threading.Thread(target=consume)
    t.start()
    while not any("b" in x["flags"] for x in CLIENTS[2 % n].client_list()) and time.time() < deadline + 20:
        time.sleep(0.01)
    last = CLIENTS[0].xadd(key, {"n": "last"})
    t.join()
    check("xreadgroup block", done["got"], [[key, [(last, {"n": "last"})]]])
    check("type", CLIENTS[0].type(key), "stream")


def geo():
    # Through a follower (the primary is usually the first replica; any follower forwards).
    r = CLIENTS[-1]
    key = "geo:sicily"
    check("geoadd", r.geoadd(key, [13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"]), 2)
    check("geoadd ch", r.geoadd(key, [13.361389, 38.2, "Palermo", 2.35, 48.85, "Paris"], xx=True, ch=True), 1)
    check("geopos", r.geopos(key, "Catania", "Nope"), [(15.08726745843887329, 37.50266842333162032), None])
    check("geodist", r.geodist(key, "Palermo", "Catania", unit="km"), 170.2626)
    check("geohash", r.geohash(key, "Catania"), ["sqdtr74hyu0"])
    check(
        "geosearch",
        r.geosearch(key, longitude=15, latitude=37, radius=200, unit="km", sort="ASC", withdist=True),
        [["Catania", 56.4413], ["Palermo", 196.6301]],
    )
    check("geosearch box", r.geosearch(key, member="Palermo", width=400, height=400, unit="km", count=1), ["Palermo"])
    check("geosearchstore", r.geosearchstore("geo:near", key, member="Palermo", radius=500, unit="km", storedist=True), 2)
    stored = [tuple(x) for x in CLIENTS[0].zrange("geo:near", 0, -1, withscores=True)]
    check("stored distances", stored, [("Palermo", 0.0), ("Catania", 170.2626444575352)])
    check("georadius", r.georadius(key, 15, 37, 200, unit="km"), ["Palermo", "Catania"])


for n, r in enumerate(CLIENTS):
    data_types(r, n)
    transactions(r, n)
    locks(r, n)
pubsub()
blocking_pops()
streams()
geo()
print("redis-py", redis.__version__, "ok through", len(CLIENTS), "replicas")
