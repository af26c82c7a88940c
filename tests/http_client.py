#!/usr/bin/env python3
"""Loads examples/http_server with clients nobody here wrote: Python's
http.client (and curl when installed).  `scons test` runs it as

    python3 tests/http_client.py build/<variant>/examples/http_server

Checks: keep-alive (100 requests on one connection), a 404, a large file
(8 MiB, byte for byte), pipelined requests answered in order, the CPU
route, clients that disconnect early (mid-request and mid-download), and a
clean exit (status 0) on SIGTERM and on SIGINT.  Exits 0 if all pass."""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

FAILS = []


def check(what, ok):
    print('%-58s %s' % (what, 'ok' if ok else 'FAILED'), flush=True)
    if not ok:
        FAILS.append(what)


def start(exe, root, threads=2):
    p = subprocess.Popen([exe, '--port', '0', '--threads', str(threads),
                          '--root', root], stdout=subprocess.PIPE,
                         universal_newlines=True)
    line = p.stdout.readline().strip()
    if not line.startswith('listening on 127.0.0.1:'):
        p.kill()
        sys.exit('http_server said %r' % line)
    return p, int(line.rsplit(':', 1)[1])


def stops_cleanly(p, sig):
    p.send_signal(sig)
    try:
        return p.wait(timeout=20) == 0
    except subprocess.TimeoutExpired:
        p.kill()
        return False


def pipelined(port, data, n):
    """Sends DATA at once; returns the bodies of the first N responses."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(data)
    buf, bodies = b'', []
    while len(bodies) < n:
        end = buf.find(b'\r\n\r\n')
        if end >= 0:
            head = buf[:end].decode()
            length = int(head.split('Content-Length: ')[1].split('\r')[0])
            if len(buf) >= end + 4 + length:
                bodies.append(buf[end + 4:end + 4 + length])
                buf = buf[end + 4 + length:]
                continue
        b = s.recv(65536)
        if not b:
            break
        buf += b
    s.close()
    return bodies


def expected_sum(n):
    return sum(i * i % 7919 for i in range(1, n + 1))


def main():
    exe = sys.argv[1]
    root = tempfile.mkdtemp(prefix='http_root_')
    try:
        big = os.urandom(8 << 20)
        with open(os.path.join(root, 'big.bin'), 'wb') as f:
            f.write(big)
        p, port = start(exe, root)

        c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        ok, sock = True, None
        for i in range(100):
            c.request('GET', '/hello')
            r = c.getresponse()
            body = r.read()
            ok = ok and r.status == 200 and body == b'Hello, world!' and \
                r.getheader('Content-Type') == 'text/plain' and \
                r.getheader('Content-Length') == '13'
            if sock is None:
                sock = c.sock
            ok = ok and c.sock is sock  # the same connection throughout
        check('keep-alive: 100 x GET /hello on one connection', ok)

        c.request('GET', '/no/such/page')
        r = c.getresponse()
        r.read()
        check('GET of a missing page is 404', r.status == 404)

        c.request('GET', '/big.bin')
        r = c.getresponse()
        body = r.read()
        check('GET of an 8 MiB file arrives byte for byte',
              r.status == 200 and body == big)

        c.request('GET', '/sum?n=100000')
        r = c.getresponse()
        body = r.read()
        check('GET /sum?n=100000 (pool) answers on the same connection',
              r.status == 200 and int(body) == expected_sum(100000))
        c.close()

        req = b'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n'
        bodies = pipelined(port, req * 3 + b'GET /sum?n=7 HTTP/1.1\r\n\r\n' +
                           req, 5)
        want = [b'Hello, world!'] * 3 + [b'%d\n' % expected_sum(7),
                                         b'Hello, world!']
        check('5 pipelined requests answered in order', bodies == want)

        # Early disconnects: mid-request, right after the request, mid-file.
        s = socket.create_connection(('127.0.0.1', port))
        s.sendall(b'GET /hel')
        s.close()
        s = socket.create_connection(('127.0.0.1', port))
        s.sendall(b'GET /big.bin HTTP/1.1\r\n\r\n')
        s.close()
        s = socket.create_connection(('127.0.0.1', port))
        s.sendall(b'GET /big.bin HTTP/1.1\r\n\r\n')
        s.recv(1000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b'\x01\x00\x00\x00\x00\x00\x00\x00')  # reset
        s.close()
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        c.request('GET', '/hello')
        r = c.getresponse()
        check('early disconnects leave the server serving',
              r.read() == b'Hello, world!')
        c.close()

        if shutil.which('curl'):
            out = subprocess.run(['curl', '-s', '-o', '-', '-w', ' %{http_code}',
                                  'http://127.0.0.1:%d/hello' % port,
                                  'http://127.0.0.1:%d/hello' % port],
                                 stdout=subprocess.PIPE, timeout=20).stdout
            check('curl: two GETs on one connection',
                  out == b'Hello, world! 200Hello, world! 200')

        check('SIGTERM: exits 0', stops_cleanly(p, signal.SIGTERM))
        p, port = start(exe, root, threads=1)
        check('SIGINT: exits 0', stops_cleanly(p, signal.SIGINT))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print('%d failed' % len(FAILS))
    return 1 if FAILS else 0


if __name__ == '__main__':
    sys.exit(main())
