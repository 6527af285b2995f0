#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from Weir's tests.

sql: each file of queries/ (the Nexmark queries after their DDL), and from each .slt file
of tests/slt/ its statements up to each query, one script per query (at most 40 a file).
json, csv: the lines of tests/data's files, behind the two bytes weir::fuzz reads first
(the schema and the option bits). kafka_record: the same records as messages.
Run from the repository's root: python3 fuzz/seed_corpus.py
"""
import hashlib
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
out = root / "fuzz" / "seeds"


def put(target, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


# sql
ddl = (root / "queries/nexmark/ddl.sql").read_text()
for f in sorted((root / "queries").rglob("*.sql")):
    text = f.read_text()
    put("sql", ((ddl + "\n") if f.parent.name == "nexmark" and f.name != "ddl.sql" else "").encode() + text.encode())
for f in sorted((root / "tests/slt").glob("*.slt")):
    records = re.split(r"\n\s*\n", f.read_text())
    setup, n = [], 0
    for r in records:
        lines = [l for l in r.splitlines() if not l.startswith("#")]
        if not lines:
            continue
        head, body = lines[0], lines[1:]
        sql = "\n".join(body).split("\n----")[0].strip()
        if head.startswith("statement ok"):
            setup.append(sql)
        elif head.startswith("query") or head.startswith("statement error"):
            if n < 40:
                put("sql", (";\n".join(setup + [sql]) + ";\n").encode())
                n += 1

# json, csv, kafka_record
schema_of = {"clicks.json": 4, "functions_nested.json": 2, "json_lenient.json": 0,
             "json_missing_field.json": 0, "bad_clicks.json": 4, "orders_tags.json": 2}
for f in sorted((root / "tests/data").glob("*")):
    if not f.is_file():
        continue
    lines = f.read_bytes().splitlines()[:20]
    body = b"\n".join(lines)
    s = schema_of.get(f.name, 0)
    if f.suffix == ".json":
        for bits in (0, 1, 4):
            put("json", bytes([s, bits]) + body)
        put("kafka_record", bytes([s, 2 | (1 << 2)]) + b"\xff".join(b"\x06\x01k" + l for l in lines) + b"\xff\x01")
    elif f.suffix == ".csv":
        for bits in (0, 1, 2 | 1, 32 | 64 | 128):
            put("csv", bytes([s, bits]) + body)
        put("kafka_record", bytes([s, 3]) + b"\xff".join(b"\x04" + l for l in lines))

# CSV ARRAY columns (schema 5: ARRAY<INT>, ARRAY<STRING>, ARRAY<DATE>, BIGINT).
arrays = b"1;2,a;b,2026-01-01;2026-01-02,5\n,,,\n1;;3,x,,7\n 4 ;5,;,2026-02-03,8"
for bits in (0, 1, 64):
    put("csv", bytes([5, bits]) + arrays)
