"""Sampler overhead: `mdaug.samplers.ddim_sample` vs the plain diffusers DDIMScheduler loop around the same UNet.

Same model, same starting noise, same number of steps, same device and dtype. Warm-up first, then several
repeats of each (interleaved), median time. Prints a table, the ratio ours/diffusers (target <= 1.0) and the max
abs difference of the results (target <= 1e-5), and writes benchmarks/results/samplers.json.

    python benchmarks/bench_samplers.py                      # small defaults, < 2 min on a laptop CPU
    python benchmarks/bench_samplers.py --preset cpu --size 32 --batch 8 --steps 50 --repeats 7
    python benchmarks/bench_samplers.py --device cuda --preset gpu --size 32 --batch 64 --guidance 3
"""
import argparse, platform, statistics, time
from pathlib import Path

import torch
from diffusers import DDIMScheduler

from mdaug.samplers import ddim_sample
from mdaug.unet import build_unet
from mdaug.core import save_json


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


@torch.no_grad()
def diffusers_ddim(unet, sched, x, steps, labels, guidance):
    "The loop of diffusers' DDIMPipeline / the fastai lesson, with classifier-free guidance done the usual way."
    sched.set_timesteps(steps, device=x.device)
    null = torch.full_like(labels, unet.config.num_class_embeds - 1)
    for t in sched.timesteps:
        if guidance == 1:
            eps = unet(x, t, labels).sample
        else:
            cond, uncond = unet(torch.cat([x, x]), t, torch.cat([labels, null])).sample.chunk(2)
            eps = uncond + guidance * (cond - uncond)
        x = sched.step(eps, t, x).prev_sample
    return x


def timeit(fn, device):
    sync(device); t0 = time.perf_counter(); out = fn(); sync(device)
    return time.perf_counter() - t0, out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--preset', default='ci', help="UNet preset of mdaug.unet.UNET_PRESETS")
    p.add_argument('--size', type=int, default=8, help="latent side")
    p.add_argument('--channels', type=int, default=4, help="latent channels")
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--guidance', type=float, default=1.0, help="classifier-free guidance scale (1: none)")
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--dtype', default='float32', choices=['float32', 'bfloat16', 'float16'])
    p.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'samplers.json'))
    a = p.parse_args()

    device, dtype = torch.device(a.device), getattr(torch, a.dtype)
    torch.manual_seed(0)
    unet = build_unet(a.size, a.channels, num_classes=7, preset=a.preset).to(device, dtype).eval()
    sched = DDIMScheduler(beta_schedule='scaled_linear', beta_start=0.0015, beta_end=0.0195, clip_sample=False)
    ac = sched.alphas_cumprod.to(device)
    g = torch.Generator(device).manual_seed(0)
    x = torch.randn(a.batch, a.channels, a.size, a.size, generator=g, device=device, dtype=dtype)
    labels = torch.arange(a.batch, device=device) % 7

    ours = lambda: ddim_sample(unet, x, ac, a.steps, class_labels=labels, guidance_scale=a.guidance, disable=True)
    ref = lambda: diffusers_ddim(unet, sched, x, a.steps, labels, a.guidance)
    for fn in (ours, ref): fn()  # warm-up
    t_ours, t_ref = [], []
    for _ in range(a.repeats):  # interleaved, so drifting machine load hits both alike
        dt, out_ours = timeit(ours, device); t_ours.append(dt)
        dt, out_ref = timeit(ref, device); t_ref.append(dt)
    m_ours, m_ref = statistics.median(t_ours), statistics.median(t_ref)
    diff = (out_ours.float() - out_ref.float()).abs().max().item()
    scale = out_ref.float().abs().max().item()
    ratio = m_ours / m_ref

    # Accuracy in float64: the same UNet and noise, the scheduler's alpha-bars upcast too, so only the samplers differ.
    # (In float32 a random UNet's x0 = (x - sqrt(1-abar) eps) / sqrt(abar) is large and amplifies rounding differences.)
    unet64, x64 = unet.double(), x.double()
    sched.alphas_cumprod, sched.final_alpha_cumprod = sched.alphas_cumprod.double(), sched.final_alpha_cumprod.double()
    diff64 = (ddim_sample(unet64, x64, ac.double(), a.steps, class_labels=labels, guidance_scale=a.guidance, disable=True)
              - diffusers_ddim(unet64, sched, x64, a.steps, labels, a.guidance)).abs().max().item()

    print(f"UNet preset {a.preset}, latents {a.batch}x{a.channels}x{a.size}x{a.size}, {a.steps} DDIM steps, "
          f"guidance {a.guidance}, {device} {a.dtype}, {a.repeats} repeats (median)")
    print(f"{'sampler':<28}{'median s':>10}{'ms/step':>10}")
    print(f"{'mdaug ddim_sample':<28}{m_ours:>10.3f}{m_ours / a.steps * 1e3:>10.2f}")
    print(f"{'diffusers DDIMScheduler loop':<28}{m_ref:>10.3f}{m_ref / a.steps * 1e3:>10.2f}")
    print(f"time ratio ours/diffusers: {ratio:.3f} (target <= 1.0)")
    print(f"max abs difference, float64 run: {diff64:.2e} (target <= 1e-5)")
    print(f"max abs difference, timed {a.dtype} runs: {diff:.2e} on outputs up to {scale:.1f} (relative {diff / scale:.1e})")
    save_json(dict(benchmark='samplers', args=vars(a), median_s=dict(ours=m_ours, diffusers=m_ref), times_s=dict(ours=t_ours, diffusers=t_ref),
                   ratio=ratio, max_abs_diff_float64=diff64, max_abs_diff_timed=diff, max_abs_output=scale, torch=torch.__version__, machine=platform.platform(),
                   device_name=torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor()), a.out)


if __name__ == '__main__':
    main()
