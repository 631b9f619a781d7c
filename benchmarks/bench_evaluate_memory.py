"""Peak memory of `mdaug evaluate` against the number of images: it streams, so the peak must not grow with N.

Makes two folders of PNG spectrogram-sized images (real: `<class>/<subject>_<n>.png`, 3 classes x 6 subjects; generated:
the same layout), half the images in each, at `--side` px, for each total in `--totals`; runs
`/usr/bin/time -v mdaug evaluate REAL GENERATED --classifier-steps 10` on them (MDAUG_PROFILE=ci) and prints the
"Maximum resident set size". The images are smooth random fields (low-resolution noise upscaled, then a colormap-like
RGB mapping): the sizes are realistic, the content need not be. `--pythonpath DIR` runs another copy of the package
(e.g. the in-memory evaluate kept before streaming) for comparison.

    python benchmarks/bench_evaluate_memory.py                          # 100 and 300 images at 384 px
    python benchmarks/bench_evaluate_memory.py --totals 100,300,600 --pythonpath /tmp/mdaug_old_pkg
"""
import argparse, json, os, re, shutil, subprocess, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image


def make_folder(root:Path, n:int, side:int, seed:int, classes=('walk', 'run', 'drone'), subjects:int=6):
    "`n` images under `root/<class>/<subject>_<i>.png`, spread over the classes and subjects."
    rng = np.random.default_rng(seed)
    for i in range(n):
        c, s = classes[i % len(classes)], (i // len(classes)) % subjects
        low = rng.random((side // 16, side // 16, 3)).astype(np.float32)
        low[..., 0] += 0.3 * (i % len(classes))                      # a little class signal
        im = Image.fromarray((np.clip(low, 0, 1) * 255).astype(np.uint8)).resize((side, side), Image.BILINEAR)
        (root/c).mkdir(parents=True, exist_ok=True)
        im.save(root/c/f's{s}_{i:04d}.png')


def peak_rss(real:Path, gen:Path, out:Path, steps:int, pythonpath:str|None) -> tuple[int, float]:
    "Maximum resident set size (bytes) and seconds of one `mdaug evaluate` run."
    env = {**os.environ, 'MDAUG_PROFILE': 'ci'}
    if pythonpath: env['PYTHONPATH'] = pythonpath + os.pathsep + env.get('PYTHONPATH', '')
    cmd = ['/usr/bin/time', '-v', shutil.which('mdaug'), 'evaluate', str(real), str(gen), '--out', str(out),
           '--classifier-steps', str(steps), '--no-progress']
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode: raise SystemExit(f"mdaug evaluate failed ({r.returncode}):\n{r.stdout}\n{r.stderr[-3000:]}")
    kb = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', r.stderr)[1])
    return kb * 1024, time.time() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--side', type=int, default=384, help='image side in pixels')
    p.add_argument('--totals', default='100,300', help='comma-separated total images (half real, half generated)')
    p.add_argument('--steps', type=int, default=10, help='reference classifier steps')
    p.add_argument('--pythonpath', default=None, help='prepend this to PYTHONPATH (another copy of mdaug)')
    p.add_argument('--out', default='benchmarks/results/evaluate_memory.json', help='where to write the results')
    a = p.parse_args()
    if not shutil.which('/usr/bin/time'): raise SystemExit('needs /usr/bin/time: apt-get install -y time')
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, a.totals.split(',')):
            d = Path(tmp)/f'n{n}'
            make_folder(d/'real', n // 2, a.side, seed=n); make_folder(d/'generated', n - n // 2, a.side, seed=n + 1)
            rss, sec = peak_rss(d/'real', d/'generated', d/'eval', a.steps, a.pythonpath)
            rows.append(dict(images=n, side=a.side, peak_rss_mb=round(rss / 2**20), seconds=round(sec, 1)))
            print(f"{n:5d} images at {a.side} px: peak RSS {rss / 2**20:7.0f} MiB, {sec:5.1f} s", flush=True)
            shutil.rmtree(d)
    res = dict(command='mdaug evaluate REAL GENERATED --classifier-steps 10 (MDAUG_PROFILE=ci)',
               pythonpath=a.pythonpath, rows=rows)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1))
    return res


if __name__ == '__main__': main()
