"""Preprocessing throughput: `mdaug.data.prepare` (process pool) vs a plain single-process PIL loop over the same files.

    python benchmarks/bench_prep.py                       # 300 files of 480x360, all cores
    python benchmarks/bench_prep.py --n 3000 --width 875 --height 656 --workers 8

The reference is what most preprocessing scripts do: for each file open, convert, resize, save. `prepare` does more per
file (size checks, full decode, mode conversion, a report) and spreads the files over `--workers` processes. Both write
the same images; the script checks that and prints images/s and the speed-up measured in this one run. Input files come
from `mdaug.simulate` with `--source sim` (square images, about 0.3 s each to simulate on one core) or, by default,
synthetic jet-coloured spectrogram-like PNGs with noise, which are quick to make and compress like real ones.
Writes benchmarks/results/prep.json.
"""
import argparse, json, os, platform, shutil, sys, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image

from mdaug.data import prepare


def synthetic_spectrograms(root, n, width, height, n_classes=4, seed=0):
    "Write `n` jet-coloured spectrogram-like PNGs as <class>/<subject>_<i>.png (smooth sinusoidal Doppler traces + noise)."
    import matplotlib
    lut = (matplotlib.colormaps['jet'](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    t, f = np.linspace(0, 1, width)[None], np.linspace(-1, 1, height)[:, None]
    for i in range(n):
        c, s = i % n_classes, (i // n_classes) % 8
        fr, amp = 1 + c + rng.random(), 0.3 + 0.4 * rng.random()
        x = np.exp(-((f - amp * np.sin(2*np.pi*fr*t)) / 0.05)**2) + 0.6 * np.exp(-((f - 0.2*amp*np.sin(2*np.pi*fr*t)) / 0.1)**2)
        x = np.clip(x + 0.15 * rng.random((height, width)), 0, 1)
        p = Path(root)/f'class{c}'/f's{s}_{i}.png'; p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(lut[(x * 255).astype(np.uint8)]).save(p, compress_level=1)
    return Path(root)


def simulated(root, n, width, height):
    "Write about `n` spectrograms with the mdaug simulator, if it is available."
    from mdaug.simulate import simulate_dataset
    from mdaug.simulate import CLASSES
    simulate_dataset(root, n_subjects=max(1, n // (10 * len(CLASSES))), n_per_subject=10, image_size=max(width, height), progress=False)
    return Path(root)


def pil_loop(src, out, size, channels):
    "The reference: a plain single-process open/convert/resize/save loop."
    mode = 'RGB' if channels == 3 else 'L'
    for p in sorted(src.rglob('*')):
        if p.suffix.lower() not in ('.png', '.jpg', '.jpeg'): continue
        q = out/p.relative_to(src).with_suffix('.png'); q.parent.mkdir(parents=True, exist_ok=True)
        Image.open(p).convert(mode).resize((size, size), Image.Resampling.BICUBIC).save(q)


def timed(fns, repeat):
    "Best wall time of each of `fns`, run interleaved `repeat` times so that they share the machine's load alike."
    best = [float('inf')] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter(); fn(); best[k] = min(best[k], time.perf_counter() - t0)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=300, help='number of input images')
    ap.add_argument('--width', type=int, default=480); ap.add_argument('--height', type=int, default=360)
    ap.add_argument('--size', type=int, default=128, help='target image size')
    ap.add_argument('--channels', type=int, default=3, choices=(1, 3))
    ap.add_argument('--workers', type=int, default=None, help='prepare worker processes (default: all cores)')
    ap.add_argument('--repeat', type=int, default=2, help='timed repeats (best is kept)')
    ap.add_argument('--source', choices=('auto', 'sim', 'synthetic'), default='synthetic')
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'prep.json'))
    a = ap.parse_args(argv)
    workers = a.workers or os.cpu_count()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); t0 = time.perf_counter(); source = a.source
        if source in ('auto', 'sim'):
            try: src = simulated(d/'src', a.n, a.width, a.height); source = 'sim'
            except ImportError:
                if a.source == 'sim': raise
                source = 'synthetic'
        if source == 'synthetic': src = synthetic_spectrograms(d/'src', a.n, a.width, a.height)
        files = [p for p in src.rglob('*') if p.suffix.lower() in ('.png', '.jpg', '.jpeg')]
        w, h = Image.open(files[0]).size
        print(f"{len(files)} input images ({source}, {w}x{h}, {sum(p.stat().st_size for p in files)/2**20:.1f} MiB) "
              f"made in {time.perf_counter()-t0:.1f}s; target {a.size}px, {a.channels} channel(s); {os.cpu_count()} cores")

        def run_prep(nw): return lambda: prepare(src, d/f'prep{nw}', image_size=a.size, channels=a.channels, n_workers=nw, progress=False)
        def run_ref():
            shutil.rmtree(d/'ref', ignore_errors=True); pil_loop(src, d/'ref', a.size, a.channels)
        pil_loop(src, d/'ref', a.size, a.channels)                     # warm the page cache and check equality
        run_prep(workers)()
        same = all((d/'ref'/p.relative_to(src).with_suffix('.png')).read_bytes() ==
                   (d/f'prep{workers}'/p.relative_to(src).with_suffix('.png')).read_bytes() for p in files)
        t_ref, t_one, t_par = timed([run_ref, run_prep(1), run_prep(workers)], a.repeat)
    n = len(files)
    rows = [('PIL loop (reference, 1 process)', t_ref), ('prepare, n_workers=1', t_one), (f'prepare, n_workers={workers}', t_par)]
    print(f"\n{'method':<34}{'seconds':>9}{'images/s':>10}{'vs PIL loop':>13}")
    for name, t in rows: print(f"{name:<34}{t:>9.2f}{n/t:>10.1f}{t_ref/t:>12.2f}x")
    print(f"\nidentical output files: {same}")
    res = dict(n_images=n, source=source, input_size=[w, h], target_size=a.size, channels=a.channels, workers=workers,
               cpu_count=os.cpu_count(), platform=platform.platform(), python=sys.version.split()[0],
               seconds=dict(pil_loop=t_ref, prepare_1=t_one, prepare_parallel=t_par),
               images_per_s=dict(pil_loop=n/t_ref, prepare_1=n/t_one, prepare_parallel=n/t_par),
               speedup_vs_pil_loop=t_ref/t_par, overhead_1_worker=t_one/t_ref, identical_output=same)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=2))
    return res


if __name__ == '__main__': main()
