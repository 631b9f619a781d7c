"""metadata.csv writes per batch: appending (what `write_rows` does now) against rewriting the whole table (what it did).

A generated folder of 50k images has 50k rows; rewriting them after every batch of 16 makes a run quadratic. This times
one batch's write at a small and a large table, in the same process, and prints the ratios: appending should cost the
same at 50k rows as at 1k (O(batch)), rewriting 50x more.

    python benchmarks/bench_metadata.py --rows 1000,50000 --batch 16 --repeats 20
"""
import argparse, json, tempfile, time
from pathlib import Path

from mdaug.generate import COLUMNS, append_rows, save_rows


def row(i):
    return {'file': f'walk/gen_{i // 16:06d}_{i % 16:03d}.png', 'class': 'walk', 'subject': 'generated', 'generated': 1, 'label': 6,
            'sampler': 'ddim', 'steps': 50, 'eta': 0., 'guidance_scale': 2., 'seed': i // 16, 'index': i % 16,
            'batch_labels': ' '.join(['6'] * 16), 'batch_size': 16, 'height': 128, 'width': 128, 'dtype': 'float32',
            'device': 'cpu', 'model_sha256': 'e90c70d369e63afc'}


def time_write(fn, n:int, batch:int, repeats:int) -> float:
    "Median seconds of writing one batch into a table of `n` rows."
    ts = []
    with tempfile.TemporaryDirectory() as d:
        rows = [row(i) for i in range(n)]
        save_rows(d, rows)
        for r in range(repeats):
            new = [row(n + r * batch + k) for k in range(batch)]
            t = time.perf_counter()
            if fn == 'append': append_rows(d, new)
            else: rows += new; save_rows(d, rows)  # the old way: the whole table, every batch
            ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rows', default='1000,50000'); ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--repeats', type=int, default=20); ap.add_argument('--out', default='benchmarks/results/metadata.json')
    a = ap.parse_args()
    sizes = [int(s) for s in a.rows.split(',')]
    res = {fn: {n: time_write(fn, n, a.batch, a.repeats) for n in sizes} for fn in ('append', 'rewrite')}
    lo, hi = sizes[0], sizes[-1]
    print(f"| write of one batch of {a.batch} rows | {lo} rows | {hi} rows | {hi} / {lo} |\n|---|---:|---:|---:|")
    for fn, v in res.items(): print(f"| {fn} | {v[lo] * 1e3:.2f} ms | {v[hi] * 1e3:.2f} ms | {v[hi] / v[lo]:.2f}x |")
    print(f"at {hi} rows appending is {res['rewrite'][hi] / res['append'][hi]:.0f}x faster than rewriting")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(dict(batch=a.batch, repeats=a.repeats, seconds=res), indent=2))


if __name__ == '__main__': main()
