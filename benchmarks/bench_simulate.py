"""Simulator throughput: spectrograms per second on one core (per class) and for the whole dataset writer
with 1 worker and with N workers (the reference is the 1-worker run in the same process).

    python benchmarks/bench_simulate.py                 # small default: 7 classes x 2 subjects x 2 samples
    python benchmarks/bench_simulate.py --subjects 4 --per-subject 5 --workers 8
"""
import argparse, json, os, platform, tempfile, time
from pathlib import Path

import numpy as np
from mdaug.simulate import CLASSES, sample_params, simulate_dataset, simulate_sample


def per_class(reps, image_size):
    "Median seconds per spectrogram for each class, one core, in this process."
    out = {}
    for c in CLASSES:
        simulate_sample(sample_params(c, 0, 0), image_size)  # warm-up (imports, caches)
        ts = []
        for j in range(reps):
            t0 = time.perf_counter(); simulate_sample(sample_params(c, j, 1), image_size); ts.append(time.perf_counter() - t0)
        out[c] = float(np.median(ts))
    return out


def writer(n_workers, args):
    "Seconds to write a dataset with `n_workers` worker processes."
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        simulate_dataset(Path(d) / 'sim', n_subjects=args.subjects, n_per_subject=args.per_subject,
                         image_size=args.image_size, n_workers=n_workers, progress=False)
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--subjects', type=int, default=2)
    ap.add_argument('--per-subject', type=int, default=2)
    ap.add_argument('--reps', type=int, default=3, help='spectrograms per class for the one-core timing')
    ap.add_argument('--image-size', type=int, default=128)
    ap.add_argument('--workers', type=int, default=os.cpu_count(), help='N for the parallel run')
    args = ap.parse_args()

    pc = per_class(args.reps, args.image_size)
    n = len(CLASSES) * args.subjects * args.per_subject
    t1 = writer(1, args)
    tn = writer(args.workers, args)
    print(f"{'class':<8} {'s/spectrogram':>14} {'spectrograms/s':>15}   (one core, {args.image_size}px, 3 s record)")
    for c, s in pc.items(): print(f"{c:<8} {s:>14.3f} {1/s:>15.1f}")
    print(f"\ndataset writer, {n} spectrograms:")
    print(f"{'workers':<8} {'seconds':>10} {'spectrograms/s':>15} {'per core':>10} {'ratio vs 1':>11}")
    print(f"{1:<8} {t1:>10.2f} {n/t1:>15.1f} {n/t1:>10.1f} {1.0:>11.2f}")
    print(f"{args.workers:<8} {tn:>10.2f} {n/tn:>15.1f} {n/tn/args.workers:>10.1f} {t1/tn:>11.2f}")
    res = dict(machine=platform.processor() or platform.machine(), cpu_count=os.cpu_count(), image_size=args.image_size,
               per_class_seconds=pc, n_spectrograms=n,
               writer={'1': dict(seconds=t1, per_s=n / t1), str(args.workers): dict(seconds=tn, per_s=n / tn)},
               speedup=t1 / tn)
    out = Path(__file__).parent / 'results' / 'simulate.json'
    out.parent.mkdir(exist_ok=True); out.write_text(json.dumps(res, indent=2))
    print(f"\nwrote {out}")


if __name__ == '__main__':
    main()
