"""Cost of widening the VQ-VAE: seconds per training step (forward + backward + AdamW, batch 16, 128 px) of the shipped
VQ-VAE's settings (`data/model/vqvae/vq_config.json`: the `cpu` preset, MSE, no LPIPS) at several base widths, in one run.
The ratio to width 16 is the figure `data/README.md` quotes.

    OMP_NUM_THREADS=1 python benchmarks/bench_vqvae_step.py --widths 16,32
"""
from __future__ import annotations
import argparse, os, platform, statistics, time
from pathlib import Path

import torch

from mdaug.core import save_json, load_json, shipped
from mdaug.vqvae import VQConfig, build_vqvae, vq_forward, pixel_loss

ROOT = Path(__file__).resolve().parents[1]


def step_seconds(cfg: VQConfig, steps: int, batch_size: int) -> float:
    "Median wall time of `steps` training steps after one warm-up step."
    torch.manual_seed(0)
    m = build_vqvae(cfg); opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr)
    x = torch.rand(batch_size, cfg.channels, cfg.image_size, cfg.image_size) * 2 - 1
    ts = []
    for i in range(steps + 1):
        t = time.perf_counter()
        rec, ql, _, _ = vq_forward(m, x)
        (pixel_loss(x, rec, cfg.pixel_loss) + cfg.commit_weight * ql).backward(); opt.step(); opt.zero_grad()
        if i: ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--widths', default='16,32', help='comma-separated base widths')
    ap.add_argument('--steps', type=int, default=4); ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--results', default=str(ROOT/'benchmarks'/'results'/'vqvae_step.json'))
    a = ap.parse_args(argv)
    base = load_json(shipped('model')/'vqvae'/'vq_config.json')
    rows = []
    for w in [int(v) for v in a.widths.split(',')]:
        cfg = VQConfig.from_dict(base | dict(width=w, norm_num_groups=min(base['norm_num_groups'], w) if w % base['norm_num_groups'] == 0 else 8))
        params = sum(p.numel() for p in build_vqvae(cfg).parameters())
        rows.append(dict(width=w, params=params, seconds_per_step=step_seconds(cfg, a.steps, a.batch_size)))
    ref = rows[0]['seconds_per_step']
    for r in rows: r['ratio'] = r['seconds_per_step'] / ref
    print(f"{'width':>6} {'params':>10} {'s/step':>8} {'ratio':>6}")
    for r in rows: print(f"{r['width']:>6} {r['params']:>10,} {r['seconds_per_step']:>8.2f} {r['ratio']:>6.2f}")
    save_json(dict(command=f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python benchmarks/bench_vqvae_step.py --widths {a.widths}",
                   date=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()), machine=f"{platform.machine()} CPU, {os.cpu_count()} cores",
                   torch_threads=torch.get_num_threads(), batch_size=a.batch_size, rows=rows), a.results)


if __name__ == '__main__': main()
