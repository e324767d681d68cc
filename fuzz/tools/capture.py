#!/usr/bin/env python3
"""Records PostgreSQL wire traffic for the fuzz seeds: a TCP relay on loopback.

    fuzz/tools/capture.py LISTEN_PORT SERVER_PORT OUT_DIR

Every connection accepted on 127.0.0.1:LISTEN_PORT is relayed to 127.0.0.1:SERVER_PORT; its bytes
are written to OUT_DIR/NNNN.c (client to server) and OUT_DIR/NNNN.s (server to client). Stops on
SIGTERM or SIGINT. fuzz/tools/split_corpus.py turns the recordings into per-message seeds.
"""
import os
import selectors
import socket
import sys


def main():
    listen_port, server_port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    os.makedirs(out, exist_ok=True)
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", listen_port))
    lsock.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    count = 0
    while True:
        for key, _ in sel.select():
            if key.data is None:
                client, _ = lsock.accept()
                server = socket.create_connection(("127.0.0.1", server_port))
                base = os.path.join(out, "%04d" % count)
                count += 1
                c_log, s_log = open(base + ".c", "wb"), open(base + ".s", "wb")
                sel.register(client, selectors.EVENT_READ, (server, c_log))
                sel.register(server, selectors.EVENT_READ, (client, s_log))
                continue
            src, (dst, log) = key.fileobj, key.data
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        sel.unregister(s)
                    except (KeyError, ValueError):
                        pass
                    s.close()
                log.close()
                continue
            log.write(data)
            log.flush()
            dst.sendall(data)


if __name__ == "__main__":
    main()
