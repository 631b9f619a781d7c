"""FLOPs of a full training run per run profile, and the least time it can take on a given accelerator.

Counted with PyTorch's FLOP counter on the meta device (nothing is allocated or run): one VQ-VAE training step is the
forward and backward pass of the `VQModel` (LPIPS not counted), one latent diffusion step the UNet's forward and backward
pass on cached latents (`mdaug.unet.unet_cost`). The least time is FLOPs / peak; real runs take several times longer.

    python benchmarks/bench_run_cost.py                       # a T4's 65 TFLOP/s fp16 peak (Colab, Kaggle)
    python benchmarks/bench_run_cost.py --peak-tflops 989      # an H100 SXM's dense bf16 peak
"""
import argparse, json
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from mdaug.core import get_profile, save_json
from mdaug.vqvae import build_vqvae, make_config
from mdaug.unet import unet_cost
from mdaug.train import PRESETS as LDM_PRESETS


def run_cost(profile:str, image_size:int=128, channels:int=3, num_classes:int=7) -> dict:
    "PFLOPs of the profile's VQ-VAE and latent diffusion training runs."
    p, cfg = get_profile(profile), make_config(profile, image_size=image_size, channels=channels)
    with torch.device('meta'):
        vq = build_vqvae(cfg)
        with FlopCounterMode(display=False) as fc: vq(torch.randn(1, channels, image_size, image_size)).sample.float().pow(2).mean().backward()
    vq_step = fc.get_total_flops() * cfg.batch_size
    side = image_size // cfg.factor
    ldm_step = unet_cost(LDM_PRESETS[profile].unet_preset, side, cfg.latent_channels, num_classes)['train_gflops'] * 1e9 * p.batch_size
    return dict(profile=profile, vq_steps=cfg.steps, vq_batch=cfg.batch_size, vq_pflop=vq_step * cfg.steps / 1e15,
                ldm_steps=p.ldm_steps, ldm_batch=p.batch_size, ldm_pflop=ldm_step * p.ldm_steps / 1e15)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--peak-tflops', type=float, default=65., help="the accelerator's peak (default: a T4 in fp16)")
    ap.add_argument('--profiles', default='cpu,gpu', help='comma-separated run profiles')
    a = ap.parse_args()
    rows = [run_cost(p) for p in a.profiles.split(',')]
    print(f"{'profile':<8}{'VQ-VAE run':>26}{'LDM run':>26}   least hours at {a.peak_tflops:g} TFLOP/s (VQ-VAE, LDM)")
    for r in rows:
        h = lambda pf: pf * 1e15 / (a.peak_tflops * 1e12) / 3600
        print(f"{r['profile']:<8}{r['vq_steps']:>7} x {r['vq_batch']:<3}{r['vq_pflop']:>9.1f} PFLOP{r['ldm_steps']:>8} x {r['ldm_batch']:<3}{r['ldm_pflop']:>8.1f} PFLOP"
              f"   {h(r['vq_pflop']):.2f}, {h(r['ldm_pflop']):.2f}")
    save_json(dict(peak_tflops=a.peak_tflops, runs=rows), Path(__file__).parent/'results'/'run_cost.json')
