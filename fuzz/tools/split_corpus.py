#!/usr/bin/env python3
"""Turns recorded PostgreSQL sessions (fuzz/tools/capture.py) into seeds for the fuzz targets.

    fuzz/tools/split_corpus.py CAPTURE_DIR CORPUS_DIR

Seeds are named by the SHA-1 of their content (as libFuzzer names inputs), so splitting the same
traffic twice adds nothing. Each kind of seed is capped in number and size to keep the corpus small.
"""
import hashlib
import os
import struct
import sys

SSL, GSS, CANCEL = 80877103, 80877104, 80877102
MAX_SEED = 4096          # bytes; larger messages are cut (framer) or skipped
PER_TYPE = 12            # seeds per message type and direction
STREAM_SEEDS = 40        # framer seeds


def write(corpus, target, data, counts, key=None):
    key = key or target
    if counts.get(key, 0) >= counts.get("limit:" + key, 10**9):
        return
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, hashlib.sha1(data).hexdigest())
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
        counts[key] = counts.get(key, 0) + 1


def untyped(stream):
    """Startup-phase packets at the start of a client stream, and the offset after them."""
    packets, pos = [], 0
    while pos + 8 <= len(stream):
        length, code = struct.unpack(">ii", stream[pos:pos + 8])
        if length < 8 or pos + length > len(stream):
            break
        packets.append(stream[pos:pos + length])
        pos += length
        if code not in (SSL, GSS):   # a StartupMessage or CancelRequest ends the untyped phase
            break
    return packets, pos


def typed(stream, pos=0):
    while pos + 5 <= len(stream):
        t = stream[pos:pos + 1]
        (length,) = struct.unpack(">i", stream[pos + 1:pos + 5])
        if length < 4 or pos + 1 + length > len(stream):
            return
        yield t, stream[pos + 5:pos + 1 + length]
        pos += 1 + length


def sql_of(t, body):
    if t == b"Q":
        return body.split(b"\0")[0]
    if t == b"P":
        parts = body.split(b"\0")
        return parts[1] if len(parts) > 1 else None
    return None


def main():
    capture, corpus = sys.argv[1], sys.argv[2]
    counts = {"limit:framer": STREAM_SEEDS, "limit:request_reader": STREAM_SEEDS}
    for name in sorted(os.listdir(capture)):
        if not name.endswith(".c"):
            continue
        client = open(os.path.join(capture, name), "rb").read()
        server = open(os.path.join(capture, name[:-2] + ".s"), "rb").read()
        packets, pos = untyped(client)
        for p in packets:
            write(corpus, "startup_packet", p, counts)
        # The server answers SSLRequest/GSSENCRequest with one byte before its messages.
        skip = sum(1 for p in packets if struct.unpack(">i", p[4:8])[0] in (SSL, GSS))
        for target, stream, start in (("frontend_messages", client, pos), ("backend_messages", server, skip)):
            for t, body in typed(stream, start):
                if len(body) + 1 > MAX_SEED:
                    continue
                key = "%s:%s" % (target, t.decode("latin-1"))
                counts.setdefault("limit:" + key, PER_TYPE)
                write(corpus, target, t + body, counts, key)
                sql = sql_of(t, body) if target == "frontend_messages" else None
                if sql:
                    for opt, tgt in ((b"\0", "sql_lexer"), (b"\0", "session_effects"), (b"\x80", "fingerprint")):
                        write(corpus, tgt, opt + sql, counts)
                    write(corpus, "access_analysis", sql, counts)
                    if b"/*" in sql or b"--" in sql:
                        write(corpus, "cache_hint", sql, counts)
            # The stream itself, in 4 KiB pieces starting at message boundaries, for the framer.
            chunk, size = [], 0
            for t, body in typed(stream, start):
                msg = t + struct.pack(">i", len(body) + 4) + body
                if size + len(msg) > MAX_SEED and chunk:
                    flush_stream(corpus, target, chunk, counts)
                    chunk, size = [], 0
                chunk.append(msg[:MAX_SEED])
                size += len(chunk[-1])
            if chunk:
                flush_stream(corpus, target, chunk, counts)
    for k in sorted(k for k in counts if not k.startswith("limit:")):
        print("%-28s %d" % (k, counts[k]))


def flush_stream(corpus, target, chunk, counts):
    write(corpus, "framer", bytes([chunk_opt(counts)]) + b"".join(chunk), counts)
    if target == "frontend_messages":
        # A logged-in client's stream: transaction pooling's names and fingerprints, or neither.
        opt = (0x19, 0x00, 0x08, 0x01)[counts.get("request_reader", 0) % 4]
        write(corpus, "request_reader", bytes([opt]) + b"".join(chunk), counts)


def chunk_opt(counts):
    # Vary the framer's options across seeds: inspect all, some, peek.
    return (2, 4, 8, 6, 0)[counts.get("framer", 0) % 5]


if __name__ == "__main__":
    main()
