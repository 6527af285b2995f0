#!/usr/bin/env python3
"""An independent Kafka client for Weir's tests (confluent-kafka), so that what Weir reads
was written by someone else and what Weir writes is read by someone else.

  kafka_client.py produce BOOTSTRAP TOPIC        < lines of {"v": value, "k": key, "p": partition, "ts": ms,
                                                   "h": [[header key, value or null], ...]}
  kafka_client.py produce-seq BOOTSTRAP TOPIC N PARTITIONS PAD [FIRST]
      N messages {"v": i, "user_id": i % 20, "ts": "<time>", "pad": "x" * PAD}, i = FIRST..,
      to partition i % PARTITIONS, keyed by i % 20, each i 10 ms after 2026-01-01 + i * 10 ms
  kafka_client.py produce-paced BOOTSTRAP TOPIC N PARTITIONS RATE
      as produce-seq (no padding, i = 1..N), RATE messages a second, each flushed at once
  kafka_client.py consume BOOTSTRAP TOPIC N      prints N messages as {"p", "o", "k", "v", "t", "h"} lines
                                                 (v null for a tombstone)
"""

import json
import sys
import time

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, Producer, TopicPartition


def producer(bootstrap):
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "queue.buffering.max.messages": 1000000,
        }
    )


def send(p, topic, value, key=None, partition=None, ts=None, headers=None):
    kwargs = {"value": value}
    if headers is not None:
        kwargs["headers"] = headers
    if key is not None:
        kwargs["key"] = key
    if partition is not None:
        kwargs["partition"] = partition
    if ts is not None:
        kwargs["timestamp"] = ts
    while True:
        try:
            p.produce(topic, **kwargs)
            return
        except BufferError:
            p.poll(0.05)


def finish(p):
    left = p.flush(120)
    if left:
        sys.exit(f"{left} message(s) not delivered")


def produce(bootstrap, topic):
    p = producer(bootstrap)
    for line in sys.stdin:
        if not line.strip():
            continue
        m = json.loads(line)
        # "h": headers as [[key, value or null], ...], in order.
        h = m.get("h")
        headers = [(k, None if v is None else v.encode()) for k, v in h] if h is not None else None
        send(p, topic, m["v"], m.get("k"), m.get("p"), m.get("ts"), headers)
    finish(p)


def produce_seq(bootstrap, topic, n, partitions, pad, first=1):
    p = producer(bootstrap)
    base = 1767225600000  # 2026-01-01T00:00:00Z
    padding = "x" * pad
    for i in range(first, first + n):
        ms = base + i * 10
        t = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000)) + ".%03d" % (ms % 1000)
        v = json.dumps({"v": i, "user_id": i % 20, "ts": t, "pad": padding})
        send(p, topic, v, str(i % 20), i % partitions, ms)
        if i % 10000 == 0:
            p.poll(0)
    finish(p)


def produce_mixed(bootstrap, topic, n, partitions, every):
    """n good records v = 1..n as produce-seq writes them, and after every `every`-th one a
    bad record of four kinds (truncated JSON, not an object, a wrong type, invalid UTF-8)
    to the same partition. Prints each bad record's bytes as hex, one per line."""
    p = producer(bootstrap)
    base = 1767225600000  # 2026-01-01T00:00:00Z
    for i in range(1, n + 1):
        ms = base + i * 10
        t = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000)) + ".%03d" % (ms % 1000)
        v = json.dumps({"v": i, "user_id": i % 20, "ts": t})
        send(p, topic, v, None, i % partitions, ms)
        if i % every == 0:
            kind = (i // every) % 4
            if kind == 0:
                bad = ('{"v": %d, "user_id":' % i).encode()
            elif kind == 1:
                bad = ("[%d]" % i).encode()
            elif kind == 2:
                bad = ('{"v": "x%d", "user_id": 1, "ts": "%s"}' % (i, t)).encode()
            else:
                bad = b'{"v": 1, "user_id": "\xff\xfe' + str(i).encode() + b'"}'
            send(p, topic, bad, None, i % partitions, ms)
            print(bad.hex())
        if i % 10000 == 0:
            p.poll(0)
    finish(p)


def produce_paced(bootstrap, topic, n, partitions, rate):
    p = producer(bootstrap)
    base = 1767225600000  # 2026-01-01T00:00:00Z
    start = time.time()
    for i in range(1, n + 1):
        ms = base + i * 10
        t = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000)) + ".%03d" % (ms % 1000)
        v = json.dumps({"v": i, "user_id": i % 20, "ts": t, "pad": ""})
        send(p, topic, v, str(i % 20), i % partitions, ms)
        due = start + i / rate
        while time.time() < due:
            p.poll(max(0.0, min(0.01, due - time.time())))
    finish(p)


def consume(bootstrap, topic, n):
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kafka-client-py",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    md = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
    c.assign(parts)
    got = 0
    deadline = time.time() + 60
    while got < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            sys.exit(str(m.error()))
        key = m.key().decode() if m.key() is not None else None
        # A tombstone (an upsert sink's delete) has no value: null.
        value = m.value().decode() if m.value() is not None else None
        # The message's timestamp in epoch ms (None when it has none).
        kind, ts = m.timestamp()
        t = ts if kind != TIMESTAMP_NOT_AVAILABLE else None
        # Headers as [[key, value or null], ...] in order (values decoded as UTF-8).
        h = [[k, None if v is None else v.decode()] for k, v in (m.headers() or [])]
        print(json.dumps({"p": m.partition(), "o": m.offset(), "k": key, "v": value, "t": t, "h": h}))
        got += 1
    c.close()
    if got < n:
        sys.exit(f"only {got} of {n} messages")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "produce":
        produce(*args)
    elif cmd == "produce-seq":
        first = int(args[5]) if len(args) > 5 else 1
        produce_seq(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), first)
    elif cmd == "produce-mixed":
        produce_mixed(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
    elif cmd == "produce-paced":
        produce_paced(args[0], args[1], int(args[2]), int(args[3]), float(args[4]))
    elif cmd == "consume":
        consume(args[0], args[1], int(args[2]))
    else:
        sys.exit(f"unknown command {cmd}")
