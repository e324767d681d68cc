#!/usr/bin/env python3
"""Seeds for fuzz/scram_server: whole SCRAM-SHA-256 exchanges that the target's fixed secret
(password "pencil", salt "fuzz-salt", 16 iterations, server nonce "srvnonce") accepts, with and
without channel binding, so the fuzzer starts from the far end of the exchange.

    fuzz/tools/scram_seeds.py CORPUS_DIR/scram_server
"""
import base64
import hashlib
import hmac
import os
import sys

PASSWORD, SALT, ITERATIONS, SERVER_NONCE = b"pencil", b"fuzz-salt", 16, "srvnonce"
CHANNEL_BINDING = b"0123456789abcdef0123456789abcdef"


def exchange(flags, gs2, client_nonce="fyko+d2lbbFgONRv9qkxdawL"):
    first_bare = "n=,r=" + client_nonce
    nonce = client_nonce + SERVER_NONCE
    server_first = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(SALT).decode(), ITERATIONS)
    cbind = gs2.encode() + (CHANNEL_BINDING if gs2.startswith("p=") else b"")
    final_bare = "c=%s,r=%s" % (base64.b64encode(cbind).decode(), nonce)
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD, SALT, ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    auth = ",".join((first_bare, server_first, final_bare)).encode()
    signature = hmac.new(stored_key, auth, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = final_bare + ",p=" + base64.b64encode(proof).decode()
    return bytes([flags]) + (gs2 + first_bare).encode() + b"\0" + final.encode()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {
        "valid-no-binding": exchange(0, "n,,"),
        "valid-could-bind": exchange(0, "y,,"),
        "valid-plus": exchange(3, "p=tls-server-end-point,,"),
        "valid-no-plus-offered-binding": exchange(1, "n,,"),
        "downgrade-y-when-offered": exchange(1, "y,,"),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
