#!/usr/bin/env python3
"""fixed_client.py PORT CONNS TOTAL [GAP_US]: sends TOTAL keep-alive GET
/hello requests over CONNS connections, one in flight on each (as wrk
does), each GAP_US microseconds (default 2000) after the answer to the one
before, and prints how many answers came back.  For counting what a fixed
number of requests costs a server (bench/http/per_request.sh).

The gap keeps the regime of a server at full speed under wrk: the next
request on a connection is not there yet when the server has just answered
(a server slowed down 50x by callgrind would otherwise find it there, and
take paths that it does not take at full speed)."""
import collections
import selectors
import socket
import sys
import time

REQ = b'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n'
RESP = len(b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n'
           b'Content-Length: 13\r\n\r\nHello, world!')


def main():
    port, conns, total = (int(a) for a in sys.argv[1:4])
    gap = (int(sys.argv[4]) if len(sys.argv) > 4 else 2000) / 1e6
    sel = selectors.DefaultSelector()
    due = collections.deque()  # (time, socket): answers come in order
    sent = done = 0
    socks = []
    for _ in range(conns):
        s = socket.create_connection(('127.0.0.1', port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, [0])
        socks.append(s)
    for s in socks:
        if sent < total:
            s.send(REQ)
            sent += 1
    while done < total:
        now = time.monotonic()
        while due and due[0][0] <= now:
            due.popleft()[1].send(REQ)
        for key, _ in sel.select(due[0][0] - now if due else None):
            d = key.fileobj.recv(65536)
            if not d:
                sys.exit('fixed_client.py: the server closed a connection')
            key.data[0] += len(d)
            while key.data[0] >= RESP:
                key.data[0] -= RESP
                done += 1
                if sent < total:
                    due.append((time.monotonic() + gap, key.fileobj))
                    sent += 1
    for s in socks:
        s.close()
    print(done)


if __name__ == '__main__':
    main()
