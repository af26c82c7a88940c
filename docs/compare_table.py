#!/usr/bin/env python3
"""docs/compare_table.py [FILE] -- README's comparison table and verdicts,
as Markdown, from fut-compare's JSON (default docs/compare.json), so that
every figure in README's "What the comparison shows" is the program's:

    build/release/examples/fut-compare --json docs/compare.json \\
        --svg docs/compare.svg
    docs/compare_table.py        # paste between compare:begin and :end
"""
import json
import sys


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else 'docs/compare.json'
    with open(path) as f:
        j = json.load(f)
    print('| workload | executor | items | wall ms (median) | min–max '
          '| items/s | CPU ms | stalls | checksum |')
    print('|---|---|---:|---:|---:|---:|---:|---:|---|')
    for c in j['results']:
        print('| %s | %s | %d | %.1f | %.1f–%.1f | %.0f | %.1f | %d | `%s` |'
              % (c['workload'], c['executor'], c['items'], c['wall_ms'],
                 c['wall_ms_min'], c['wall_ms_max'], c['items_per_s'],
                 c['cpu_ms'], c['stalls'], c['checksum'][:8]))
    print('\nVerdicts, as printed:\n')
    for v in j['verdicts']:
        title, _, rest = v['text'].partition(':')
        print('- %s:%s' % (title, rest))
    print('\n(%s; load average %.2f at the end; %d rounds)'
          % (j['date'], j['loadavg'][0], j['config']['runs']))


if __name__ == '__main__':
    main()
