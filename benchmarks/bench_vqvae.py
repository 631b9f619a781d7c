"""VQ-VAE quality benchmark: PSNR / SSIM (on [0, 1]), codebook usage and perplexity on held-out simulated spectrograms.

Targets (DESIGN.md): PSNR >= 30 dB at downsampling factor 4 and codebook usage >= 90%, with the `cpu` profile at 128 px.
The reference measured in the same run is the cheapest codec with the same latent grid: downsample by the factor
(area average) and upsample bicubically; the table reports the VQ-VAE's PSNR against it.

Quick check (< 2 min, shipped sample data):  python benchmarks/bench_vqvae.py
Target run (simulates the cpu-profile set):   python benchmarks/bench_vqvae.py --simulate --steps 3000 --minutes 60
"""
from __future__ import annotations
import argparse, os, platform, shlex, sys, tempfile, time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mdaug.core import get_profile, save_json, load_json
from mdaug.data import sample_data
from mdaug.vqvae import make_config, fit_vqvae, psnr, ssim

ROOT = Path(__file__).resolve().parents[1]


def simulated_set(out: Path, image_size: int, channels: int, seed: int) -> Path:
    "Simulate the cpu-profile-size dataset into `out` (reused when it already exists)."
    from mdaug.simulate import simulate_dataset
    if out.exists() and any(out.rglob('*.png')): return out
    p = get_profile('cpu')
    simulate_dataset(out, n_subjects=p.sim_subjects, n_per_subject=p.sim_per_subject, image_size=image_size,
                     channels=channels, seed=seed)
    return out


@torch.no_grad()
def bicubic_reference(ds, factor: int, batch_size: int = 32) -> dict:
    "PSNR / SSIM of area-downsampling by `factor` then bicubic upsampling (same grid size as the latents)."
    ps, ss = [], []
    for x, *_ in DataLoader(ds, batch_size=batch_size):
        y = F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode='bicubic', align_corners=False).clamp(-1, 1)
        ps.append(psnr(x, y)); ss.append(ssim(x, y))
    return dict(psnr=torch.cat(ps).mean().item(), ssim=torch.cat(ss).mean().item())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=None, help='a folder of spectrograms (default: data/sample, or --simulate)')
    ap.add_argument('--simulate', action='store_true', help='simulate the cpu-profile-size dataset (sim_subjects x sim_per_subject per class)')
    ap.add_argument('--sim-dir', default='/tmp/mdaug_bench_vq_data', help='where --simulate writes (reused if present)')
    ap.add_argument('--profile', default='cpu', help="run profile for sizes and the preset (default 'cpu')")
    ap.add_argument('--steps', type=int, default=30, help='training steps (the cpu preset trains 3000)')
    ap.add_argument('--minutes', type=float, default=None, help='wall-time budget for training (stops early and evaluates)')
    ap.add_argument('--levels', type=int, default=3, help='encoder levels: factor 2**(levels-1) (3 -> 4)')
    ap.add_argument('--eval-every', type=int, default=None, help='steps between validation passes')
    ap.add_argument('--pretrained-lpips', action='store_true', help='use the pretrained LPIPS backbone (needs a download once)')
    ap.add_argument('--out', default=None, help='run folder (default: a temporary folder)')
    ap.add_argument('--results', default=str(ROOT/'benchmarks'/'results'/'vqvae.json'))
    a = ap.parse_args(argv)

    over = dict(steps=a.steps, levels=a.levels, lpips_pretrained_backbone=a.pretrained_lpips, num_workers=0)
    if a.eval_every: over['eval_every'] = a.eval_every
    else: over['eval_every'] = max(min(250, a.steps // 4), 1)
    over['sample_every'] = over['eval_every'] * 2
    cfg = make_config(a.profile, **over)
    if a.data: data = Path(a.data)
    elif a.simulate: data = simulated_set(Path(a.sim_dir), cfg.image_size, cfg.channels, seed=0)
    else: data = sample_data()

    from mdaug.data import get_dataloaders
    dls = get_dataloaders(data, image_size=cfg.image_size, channels=cfg.channels, batch_size=cfg.batch_size,
                          valid_pct=cfg.valid_pct, seed=cfg.seed, num_workers=0)
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix='bench_vq_'))/'run'
    print(f"data {data}: {len(dls.train_ds)} train / {len(dls.valid_ds)} valid images, {len(dls.classes)} classes; "
          f"levels={cfg.levels} -> factor {cfg.factor}, latents {cfg.latent_shape}; torch threads {torch.get_num_threads()}", flush=True)

    t0 = time.time()
    best = fit_vqvae(replace(cfg, log_with='none', max_minutes=a.minutes), dls.train_ds, dls.valid_ds, out, resume=True,
                     progress=False)
    train_s = time.time() - t0
    hist = load_json(out/'history.json')
    m = load_json(best/'metrics.json')
    ref = bicubic_reference(dls.valid_ds, cfg.factor)

    rows = [('PSNR [dB] (>= 30)', m['psnr'], ref['psnr']), ('SSIM', m['ssim'], ref['ssim']),
            ('codebook usage (>= 0.90)', m['usage'], float('nan')), ('perplexity', m['perplexity'], float('nan'))]
    print(f"\n{'metric':28s} {'VQ-VAE':>10s} {'bicubic x' + str(cfg.factor):>12s} {'ratio':>8s}")
    for k, v, r in rows: print(f"{k:28s} {v:10.4f} {r:12.4f} {v / r if r == r else float('nan'):8.3f}")
    steps_done = hist[-1]['step'] if hist else 0
    print(f"steps {steps_done} (best at {m['step']}) in {train_s/60:.1f} min; scaling factor {m['scaling_factor']:.4f}")

    env = ''.join(f'{k}={os.environ[k]} ' for k in ('OMP_NUM_THREADS', 'MDAUG_PROFILE') if k in os.environ)
    res = dict(command=env + 'python ' + ' '.join(shlex.quote(o) for o in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
               date=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()), machine=f"{platform.machine()} CPU, {os.cpu_count()} cores",
               data=str(data), n_train=len(dls.train_ds), n_valid=len(dls.valid_ds), classes=list(dls.classes),
               profile=a.profile, config=cfg.to_dict(), factor=cfg.factor, latent_shape=list(cfg.latent_shape),
               steps_requested=a.steps, steps_done=steps_done, best_step=m['step'], train_minutes=round(train_s / 60, 2),
               psnr=m['psnr'], ssim=m['ssim'], usage=m['usage'], perplexity=m['perplexity'], scaling_factor=m['scaling_factor'],
               reference_bicubic=ref, psnr_ratio_vs_bicubic=m['psnr'] / ref['psnr'],
               targets=dict(psnr=30.0, usage=0.90), met=dict(psnr=m['psnr'] >= 30.0, usage=m['usage'] >= 0.90),
               history=hist, lpips_backbone='pretrained' if a.pretrained_lpips else 'random (offline machine)')
    save_json(res, a.results)
    print(f"wrote {a.results}")
    return res


if __name__ == '__main__': main()
