"""LDM training step time on cached latents vs encoding every batch through the VQ-VAE, and peak memory per UNet preset.

    python benchmarks/bench_train.py                                         # 64 px, batch 8, the cpu pair, memory of ci,cpu
    python benchmarks/bench_train.py --image-size 128 --batch-size 16 --pairs cpu:cpu,gpu:gpu --presets ci,cpu,gpu
    python benchmarks/bench_train.py --threads 1                            # stable timings on a machine shared with other jobs
    python benchmarks/bench_train.py --device cuda --image-size 128 --batch-size 64 --pairs gpu:gpu,80gb:80gb

Both modes run the same pieces `train_ldm` runs, with the same UNet, batch and optimizer:
- cached:  the next batch of scaled latents from a `TensorDataset` (what `train_ldm` does by default), then the step;
- encoded: the next batch of images read from disk (`SpectrogramDataset`), encoded by the VQ-VAE under no_grad
           (`encode_every_batch=True`, what common LDM training scripts do), then the step.
A step is `diffusion_loss` + backward + gradient clipping + AdamW. Times are the median over `--steps` steps after
`--warmup` steps, the two modes interleaved so that they share the machine's load alike. The VQ-VAE and UNet are
untrained (timing does not depend on the weights). `--pairs` names (VQ-VAE preset, UNet preset) pairs from
mdaug.vqvae.PRESETS and mdaug.unet.UNET_PRESETS; each pair is timed, and its FLOP bound `1 + encoder / UNet step`
(`mdaug.train.cache_speedup_bound`, what the ratio would be if time followed FLOPs) is printed beside the measured ratio,
also for the pairs of `--bound-pairs`, which are counted but not timed.

Peak memory per UNet preset runs each preset in a fresh process (one training step at the given batch) and reports the
peak resident set size on CPU (sampled every 2 ms, minus the RSS before the model was built) or `torch.cuda.max_memory_allocated`
on a GPU. Writes benchmarks/results/train.json.
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset


def synthetic_data(root, n_classes=4, per_class=8, size=64):
    "A few spectrogram-like PNGs (sinusoidal Doppler traces + noise) as <class>/<subject>_<i>.png."
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0); t = np.linspace(0, 1, size)[None]; f = np.linspace(-1, 1, size)[:, None]
    for c in range(n_classes):
        for i in range(per_class):
            x = np.exp(-((f - 0.5 * np.sin(2 * np.pi * (1 + c) * t + rng.random())) / 0.08)**2) + 0.2 * rng.random((size, size))
            p = Path(root)/f'class{c}'/f's{i % 2}_{i}.png'; p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((np.clip(x, 0, 1) * 255).astype(np.uint8)).convert('RGB').save(p)
    return Path(root)


def setup(args, device, vq_preset, unet_preset):
    from mdaug.vqvae import make_config, build_vqvae
    from mdaug.unet import build_unet
    from mdaug.data import SpectrogramDataset
    from mdaug.train import make_settings, training_alphas_cumprod, encode_latents
    tmp = Path(tempfile.mkdtemp())
    data = Path(args.data) if args.data else synthetic_data(tmp/'data', size=args.image_size)
    torch.manual_seed(0)
    vq = build_vqvae(make_config('cpu', preset=vq_preset, image_size=args.image_size)).to(device).eval().requires_grad_(False)
    ds = SpectrogramDataset(data, image_size=args.image_size, channels=3)
    z, y = encode_latents(vq, ds, batch_size=args.batch_size, device=device, progress=False)
    unet = build_unet(z.shape[-1], z.shape[1], num_classes=len(ds.classes), preset=unet_preset).to(device)
    s = make_settings('ci', unet_preset=unet_preset)
    return vq, ds, TensorDataset(z, y), unet, training_alphas_cumprod(s).to(device), len(ds.classes)


def make_step(unet, ac, ncls, device):
    from mdaug.train import diffusion_loss
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    gen = torch.Generator(device).manual_seed(0)
    def step(z, y):
        loss = diffusion_loss(unet, z, ac, y, ncls, 0.1, 'epsilon', gen)
        loss.backward(); torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
        return loss
    return step


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def bench_ratio(args, device, vq_preset, unet_preset):
    from mdaug.data import infinite_batches
    vq, ds, lat_ds, unet, ac, ncls = setup(args, device, vq_preset, unet_preset)
    step = make_step(unet, ac, ncls, device)
    sf = vq.config.scaling_factor
    cached = infinite_batches(lat_ds, args.batch_size, 0)
    images = infinite_batches(ds, args.batch_size, 0, num_workers=args.num_workers)
    def run_cached():
        z, y = next(cached); step(z.to(device), y.to(device))
    def run_encoded():
        x, y = next(images)
        with torch.no_grad(): z = vq.encode(x.to(device)).latents.float() * sf
        step(z, y.to(device))
    times = {'cached': [], 'encoded': []}
    for i in range(args.warmup + args.steps):
        for name, fn in (('cached', run_cached), ('encoded', run_encoded)):
            sync(device); t0 = time.perf_counter(); fn(); sync(device)
            if i >= args.warmup: times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, tuple(lat_ds.tensors[0].shape[1:])


def rss_mb():
    "Current resident set size in MB (Linux /proc; falls back to ru_maxrss)."
    try: return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
    except Exception: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_preset(args, device):
    "Peak memory of one training step of `args.unet_preset` (run in a fresh process)."
    from mdaug.unet import build_unet
    from mdaug.train import make_settings, training_alphas_cumprod
    side = args.image_size // 4
    warm = build_unet(8, 4, num_classes=2, preset='ci').to(device)   # load the kernels' libraries before measuring
    make_step(warm, training_alphas_cumprod(make_settings('ci')).to(device), 2, device)(torch.randn(1, 4, 8, 8, device=device), torch.zeros(1, dtype=torch.long, device=device))
    del warm
    before = rss_mb()
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    unet = build_unet(side, 4, num_classes=8, preset=args.unet_preset).to(device)
    step = make_step(unet, training_alphas_cumprod(make_settings('ci')).to(device), 8, device)
    z, y = torch.randn(args.batch_size, 4, side, side, device=device), torch.randint(0, 8, (args.batch_size,), device=device)
    import threading
    peak_rss, done = [before], threading.Event()
    def poll():
        while not done.is_set(): peak_rss[0] = max(peak_rss[0], rss_mb()); time.sleep(0.002)
    th = threading.Thread(target=poll, daemon=True); th.start()
    for _ in range(2): step(z, y)
    sync(device); done.set(); th.join()
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    if device.type == 'cuda': peak, kind = torch.cuda.max_memory_allocated() / 2**20, 'cuda max allocated'
    else: peak, kind = peak_rss[0] - before, 'peak RSS (sampled every 2 ms) - RSS before the model'
    print(json.dumps(dict(preset=args.unet_preset, params_M=round(params, 2), peak_MB=round(peak, 1), measure=kind)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--image-size', type=int, default=64); p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--steps', type=int, default=3); p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--pairs', default='cpu:cpu', help='VQ-VAE:UNet preset pairs to time (comma separated)')
    p.add_argument('--bound-pairs', default='ci:ci,cpu:cpu,6gb:6gb,gpu:gpu,16gb:16gb,80gb:80gb', help='pairs whose FLOP bound is printed')
    p.add_argument('--presets', default='ci,cpu', help='UNet presets for the memory table (comma separated)')
    p.add_argument('--data', default=None, help='an image folder (default: synthetic spectrograms)')
    p.add_argument('--num-workers', type=int, default=0); p.add_argument('--device', default=None)
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s); 1 gives stable timings on a busy machine')
    p.add_argument('--unet-preset', default='cpu', help=argparse.SUPPRESS)
    p.add_argument('--one', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    from mdaug.core import default_device
    device = default_device(args.device)
    if args.one: return one_preset(args, device)
    from mdaug.train import cache_speedup_bound
    split = lambda spec: [tuple(x.split(':')) for x in spec.split(',') if x]

    timed = []
    for vqp, up in split(args.pairs):
        t, lat = bench_ratio(args, device, vqp, up)
        b = cache_speedup_bound(vqp, up, args.image_size)
        timed.append(dict(vq=vqp, unet=up, latent_shape=list(lat), step_s=t, ratio=t['encoded'] / t['cached'],
                          encoder_gflops=b['encoder_gflops'], unet_step_gflops=b['unet_step_gflops'], flop_bound=b['bound']))
    print(f"device {device}, images {args.image_size}px, batch {args.batch_size}, median of {args.steps} steps after {args.warmup}")
    print(f"{'VQ:UNet':<12}{'latent':>12}{'cached s':>10}{'encoded s':>11}{'ratio':>8}{'FLOP bound':>12}")
    for r in timed:
        print(f"{r['vq'] + ':' + r['unet']:<12}{'x'.join(map(str, r['latent_shape'])):>12}{r['step_s']['cached']:>10.4f}"
              f"{r['step_s']['encoded']:>11.4f}{r['ratio']:>7.2f}x{r['flop_bound']:>11.2f}x")
    print("ratio: a cached-latent step is this many times faster than encoding every batch (target >= 2x)")
    bounds = [cache_speedup_bound(v, u, args.image_size) for v, u in split(args.bound_pairs)]
    print(f"\nFLOP bound at {args.image_size} px (counted, not timed): encoder forward / UNet forward+backward per image")
    print(f"{'VQ:UNet':<12}{'enc GFLOPs':>12}{'step GFLOPs':>13}{'bound':>8}")
    for b in bounds: print(f"{b['vq'] + ':' + b['unet']:<12}{b['encoder_gflops']:>12}{b['unet_step_gflops']:>13}{b['bound']:>7.2f}x")

    mem = []
    for preset in args.presets.split(','):
        cmd = [sys.executable, __file__, '--one', '--unet-preset', preset, '--image-size', str(args.image_size),
               '--batch-size', str(args.batch_size)] + (['--device', args.device] if args.device else []) + \
              (['--threads', str(args.threads)] if args.threads else [])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode: print(f"preset {preset}: failed\n{r.stderr[-2000:]}"); continue
        mem.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"\n{'preset':<8}{'params (M)':>12}{'peak (MB)':>12}  measure (one step, batch {args.batch_size}, latents 4x{args.image_size//4}x{args.image_size//4})")
    for m in mem: print(f"{m['preset']:<8}{m['params_M']:>12}{m['peak_MB']:>12}  {m['measure']}")

    res = dict(device=str(device), platform=platform.platform(), torch=torch.__version__, threads=torch.get_num_threads(),
               args={k: v for k, v in vars(args).items() if k not in ('one', 'unet_preset')}, timed=timed, target_ratio=2.0,
               flop_bounds=bounds, memory=mem)
    out = Path(__file__).resolve().parent/'results'/'train.json'; out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"\nwrote {out}")


if __name__ == '__main__':
    main()
