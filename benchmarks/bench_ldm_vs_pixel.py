"""Latent diffusion (50 DDIM steps + the VQ-VAE decoder) vs pixel-space DDPM (1000 steps) at the same image size.

Both use a class-conditional UNet of the same preset (same widths, depth and attention levels): the latent one on the
shipped model's 4 x 32 x 32 latents, the pixel one on 3 x 128 x 128 images, the approach of pixel-space diffusion tools.
Weights are random: the cost of a step does not depend on them. A DDPM step costs the same at every t, so the pixel
model is timed over `--pixel-steps` steps and scaled to 1000; the latent model runs its whole 50-step DDIM loop and the
decoder. Same batch, same guidance (two UNet passes per step), median of `--repeats`. Target: >= 50x images/s.

    python benchmarks/bench_ldm_vs_pixel.py                    # cpu preset, batch 2, 128 px (about 3 min on 2 cores)
    python benchmarks/bench_ldm_vs_pixel.py --device cuda --preset gpu --batch 16
"""
import argparse, platform, statistics, time
from pathlib import Path

import torch

from mdaug.core import save_json, shipped
from mdaug.samplers import ddim_sample, ddpm_sample
from mdaug.schedules import make_alphas_cumprod
from mdaug.unet import build_unet


def sync(d):
    if d.type == 'cuda': torch.cuda.synchronize()


def timed(fn, d):
    sync(d); t = time.perf_counter(); fn(); sync(d)
    return time.perf_counter() - t


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='cpu', help='UNet preset of both models')
    ap.add_argument('--image-size', type=int, default=128)
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--latent-steps', type=int, default=50)
    ap.add_argument('--pixel-steps', type=int, default=10, help='DDPM steps timed (scaled to 1000)')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'ldm_vs_pixel.json'))
    a = ap.parse_args()
    d, B, n = torch.device(a.device), a.batch, 7
    from diffusers import VQModel
    vq = VQModel.from_pretrained(shipped('model') / 'vqvae', torch_dtype=torch.float32).to(d).eval()
    f = 2 ** (len(vq.config.block_out_channels) - 1)
    lat = build_unet(a.image_size // f, vq.config.latent_channels, n, preset=a.preset).to(d).eval()
    pix = build_unet(a.image_size, 3, n, preset=a.preset).to(d).eval()
    ac = make_alphas_cumprod('scaled_linear', 1000, 0.0015, 0.0195).to(d)
    labels = torch.arange(B, device=d) % n
    zs = torch.randn(B, vq.config.latent_channels, a.image_size // f, a.image_size // f, device=d)
    xs = torch.randn(B, 3, a.image_size, a.image_size, device=d)

    def latent():
        z = ddim_sample(lat, zs, ac, steps=a.latent_steps, class_labels=labels, guidance_scale=2., disable=True)
        vq.decode(z / vq.config.scaling_factor)

    def pixel():  # the first `pixel_steps` of a 1000-step DDPM loop; every step costs the same
        stop = {'n': 0}
        class Done(Exception): pass
        def cb(_):
            stop['n'] += 1
            if stop['n'] >= a.pixel_steps: raise Done
        try: ddpm_sample(pix, xs, ac, steps=1000, class_labels=labels, guidance_scale=2., callback=cb, disable=True)
        except Done: pass

    latent(); pixel()  # warm-up
    tl, tp = [], []
    for _ in range(a.repeats):
        tl.append(timed(latent, d)); tp.append(timed(pixel, d) * 1000 / a.pixel_steps)
    ml, mp = statistics.median(tl), statistics.median(tp)
    res = dict(device=str(d), machine=f"{platform.machine()}, {torch.get_num_threads()} threads", preset=a.preset, image_size=a.image_size,
               batch=B, latent=dict(steps=a.latent_steps, seconds=ml, images_per_s=B / ml, params_M=sum(p.numel() for p in lat.parameters()) / 1e6),
               pixel=dict(steps=1000, timed_steps=a.pixel_steps, seconds=mp, images_per_s=B / mp), ratio=mp / ml, repeats=a.repeats,
               date=time.strftime('%Y-%m-%d'))
    print(f"latent diffusion: {a.latent_steps} DDIM steps + decoder, {ml:.2f} s per batch of {B} = {B / ml:.3f} images/s")
    print(f"pixel DDPM:       1000 steps ({a.pixel_steps} timed), {mp:.1f} s per batch of {B} = {B / mp:.5f} images/s")
    print(f"ratio (images/s, latent / pixel): {mp / ml:.0f}x   (target >= 50x)")
    save_json(res, a.out)


if __name__ == '__main__':
    main()
