#!/usr/bin/env python3
"""wrk against examples/http_server (libfut) and bench/http/uv_http_server
(libuv, the same shape), GET /hello, interleaved run by run.

    bench/http/wrk.py [--variant release] [--threads 1] [--conns 100,1000,10000]
                      [--secs 10] [--runs 3] [--wrk-threads 1]

Raises its soft fd limit to the hard one (children inherit it) for the
large connection counts.  Prints one line per connection count:

    bench=http case=cN impl=libfut baseline=libuv rps=.. rps_min=..
        rps_max=.. baseline_rps=.. rps_ratio=.. p99_ms=.. baseline_p99_ms=..
        p99_ratio=.. ns_per_op=.. baseline_ns_per_op=.. ratio=..

(medians over the runs; ratio = libfut's time per request over libuv's,
so < 1 is faster; rps_ratio = libfut's requests/s over libuv's, p99_ratio
= libfut's p99 over libuv's), and the load average before and after."""
import argparse
import os
import resource
import re
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def start(argv):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    m = re.match(r'listening on 127\.0\.0\.1:(\d+)$', line)
    if not m:
        p.kill()
        sys.exit('wrk.py: %s said %r' % (argv[0], line))
    return p, int(m.group(1))


def to_ms(s):
    m = re.match(r'([\d.]+)(us|ms|s)$', s)
    v = float(m.group(1))
    return v / 1000 if m.group(2) == 'us' else v * 1000 if m.group(2) == 's' \
        else v


def wrk(port, conns, secs, threads):
    out = subprocess.run(['wrk', '-t%d' % threads, '-c%d' % conns,
                          '-d%ds' % secs, '--latency',
                          'http://127.0.0.1:%d/hello' % port],
                         stdout=subprocess.PIPE, text=True,
                         timeout=secs + 60).stdout
    rps = float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1))
    p99 = to_ms(re.search(r'\s99%\s+(\S+)', out).group(1))
    errs = re.search(r'Socket errors: (.*)', out)
    return rps, p99, errs.group(1) if errs else ''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--variant', default='release')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--wrk-threads', type=int, default=1)
    ap.add_argument('--conns', default='100,1000,10000')
    ap.add_argument('--secs', type=int, default=10)
    ap.add_argument('--runs', type=int, default=3)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = os.path.join(ROOT, 'build', a.variant)
    servers = {
        'libfut': [os.path.join(b, 'examples/http_server')],
        'libuv': [os.path.join(b, 'bench/http/uv_http_server')],
    }
    print('load_before=%.2f,%.2f,%.2f' % os.getloadavg(), flush=True)
    for conns in [int(c) for c in a.conns.split(',')]:
        if conns + 100 > hard:
            print('# c%d skipped: fd limit %d' % (conns, hard))
            continue
        got = {k: [] for k in servers}
        for run in range(a.runs):
            for name, argv in servers.items():
                p, port = start(argv + ['--port', '0', '--threads',
                                        str(a.threads)])
                try:
                    rps, p99, errs = wrk(port, conns, a.secs, a.wrk_threads)
                finally:
                    p.send_signal(signal.SIGTERM)
                    p.wait(timeout=30)
                got[name].append((rps, p99))
                print('# c%d run %d %s: %.0f req/s, p99 %.2f ms %s'
                      % (conns, run, name, rps, p99, errs), flush=True)
                time.sleep(0.5)
        med = {k: (statistics.median(r for r, _ in v),
                   statistics.median(p for _, p in v),
                   min(r for r, _ in v), max(r for r, _ in v))
               for k, v in got.items()}
        f, u = med['libfut'], med['libuv']
        print('bench=http case=c%d impl=libfut baseline=libuv threads=%d '
              'runs=%d secs=%d rps=%.0f rps_min=%.0f rps_max=%.0f '
              'baseline_rps=%.0f baseline_rps_min=%.0f baseline_rps_max=%.0f '
              'rps_ratio=%.3f p99_ms=%.2f baseline_p99_ms=%.2f '
              'p99_ratio=%.2f ns_per_op=%.0f baseline_ns_per_op=%.0f '
              'ratio=%.3f'
              % (conns, a.threads, a.runs, a.secs, f[0], f[2], f[3], u[0],
                 u[2], u[3], f[0] / u[0], f[1], u[1], f[1] / u[1],
                 1e9 / f[0], 1e9 / u[0], u[0] / f[0]), flush=True)
    print('load_after=%.2f,%.2f,%.2f' % os.getloadavg(), flush=True)


if __name__ == '__main__':
    main()
