"""Generation throughput per sampler: images/s of the shipped model through `MDaugPipeline` (sampler, UNet, decoder).

Same model, batch, guidance and starting noise for every sampler; warm-up first, then `--repeats` runs each, median.
The reference is DDIM at the same number of steps (the sampler the diffusers `LDMPipeline` uses): the ratio says what
a sampler's own arithmetic costs beside the UNet, and DPM-Solver++ at 20 steps says what its fewer steps buy.

    python benchmarks/bench_generate.py                          # CPU, batch 4, 50 steps (about 6 min on 2 cores)
    python benchmarks/bench_generate.py --device cuda --batch 64 --dtype bfloat16
"""
import argparse, platform, statistics, time
from pathlib import Path

import torch

from mdaug.core import save_json
from mdaug.pipeline import load_pipeline


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--steps', type=int, default=50)
    ap.add_argument('--fast-steps', type=int, default=20, help='DPM-Solver++ steps of the extra row')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--device', default=None)
    ap.add_argument('--dtype', default=None, help="'float32' (default), 'bfloat16' or 'float16' (GPU only)")
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'generate.json'))
    a = ap.parse_args()
    pipe = load_pipeline(device=a.device, dtype=a.dtype)
    labels = [i % len(pipe.classes) for i in range(a.batch)]
    sync = (lambda: torch.cuda.synchronize()) if pipe.device.type == 'cuda' else (lambda: None)
    def run(sampler, steps):
        sync(); t = time.perf_counter()
        pipe(labels, num_inference_steps=steps, sampler=sampler, guidance_scale=2., generator=torch.Generator().manual_seed(0), progress=False)
        sync(); return time.perf_counter() - t
    jobs = [('ddpm', a.steps), ('ddim', a.steps), ('plms', a.steps), ('dpmpp_2m', a.steps), ('dpmpp_2m', a.fast_steps)]
    for s, n in jobs: run(s, 2)  # warm-up
    times = {j: [] for j in jobs}
    for _ in range(a.repeats):
        for j in jobs: times[j].append(run(*j))  # interleaved, so drift hits every sampler alike
    ref = statistics.median(times[('ddim', a.steps)])
    rows = []
    print(f"{'sampler':<10}{'steps':>6}{'s/batch':>9}{'images/s':>10}{'vs ddim':>9}")
    for (s, n), ts in times.items():
        m = statistics.median(ts)
        rows.append(dict(sampler=s, steps=n, seconds=m, images_per_s=a.batch / m, vs_ddim=ref / m))
        print(f"{s:<10}{n:>6}{m:>9.2f}{a.batch / m:>10.2f}{ref / m:>8.2f}x")
    save_json(dict(device=pipe.device.type, dtype=str(pipe.unet.dtype), machine=f"{platform.machine()}, {torch.get_num_threads()} threads",
                   batch=a.batch, guidance_scale=2., repeats=a.repeats, date=time.strftime('%Y-%m-%d'), rows=rows), a.out)


if __name__ == '__main__':
    main()
