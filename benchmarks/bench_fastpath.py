"""The fast path, switch by switch: training images/s of `train_ldm` and sampling images/s of `MDaugPipeline`, each
switch against the plain loop in the same run, with model FLOPs utilisation (MFU) against the card's peak.

    python benchmarks/bench_fastpath.py                                     # CPU: 64 px, cpu pair, batch 8 (about 3 min on 2 cores)
    python benchmarks/bench_fastpath.py --compile                           # also time torch.compile (adds minutes of compiling on a CPU)
    python benchmarks/bench_fastpath.py --device cuda --sizes 128,256 --pair gpu:gpu --batch-size 64 --steps 20 --compile

Training: every arm is a real `train_ldm` run (synthetic spectrograms, an untrained VQ-VAE: timing does not depend on
the weights) and the time of a step is the time between two `on_step` calls, so it holds the data loader, the copy to
the device, the forward, backward, clipping, AdamW and EMA, and the loss read-back. Steps after `--warmup` are timed;
the arms run interleaved for `--rounds` rounds so that they share the machine's load alike; the figure is the median.
- `baseline`: what common LDM training scripts do by default: float32, every batch of images encoded by the VQ-VAE, no
  pinned memory, PyTorch's default (foreach) AdamW, diffusers' default (SDPA) attention, no compile.
- `cached`: `train_ldm`'s defaults (latents encoded once, pinned memory on a GPU).
- one arm per switch on top of `cached`: `amp` (autocast in `mdaug.core.default_dtype`'s dtype, bfloat16 on a CPU),
  `channels_last`, `fused_adamw`, `eager` (the written-out attention instead of SDPA), `no_pin` (GPU only) and, with
  `--compile`, `compile`. The first step of each run (with the run's set-up; with compile, the compiling) is reported apart.
- `fast`: `cached` plus every switch that made its arm at least `--keep` times faster than `cached`: what this
  machine should turn on. Its line of `train_ldm` arguments is printed. It is timed in rounds of its own, interleaved
  with `baseline` and `cached` again, and its two ratios are against those second timings (where nothing is kept,
  `fast` is `cached`). The default 1.05 sits above the noise of a shared 2-core CPU; on a quiet GPU a smaller one works.
An arm that runs at under half the speed of `cached` in the first round is not timed in later rounds.
MFU = (UNet forward + backward FLOPs per image, counted by PyTorch's FLOP counter, x images/s) / the card's dense
bf16/fp16 tensor peak (NVIDIA's datasheets; `--peak-tflops` for another card; none on a CPU unless given).
The VQ-VAE's encoder FLOPs of the encoding arms are not model FLOPs and are not counted.

Sampling: the same UNet and VQ-VAE as an `MDaugPipeline` saved and loaded with `load_pipeline`, DDIM `--sample-steps`
steps with guidance, batch `--sample-batch`, in float32, in the half dtype, with `channels_last`, with `--compile`.

Writes benchmarks/results/fastpath.json (or `--out`).
"""
import argparse, json, os, platform, shutil, statistics, tempfile, time
from pathlib import Path

import torch

from bench_train import synthetic_data   # the same spectrogram-like PNGs as the cached-latent benchmark

PEAK_TFLOPS = {'H200': 989, 'H100': 989, 'A100': 312, 'L40S': 362, 'L4': 121, 'A10': 125, 'V100': 125, 'T4': 65, 'P100': 18.7}


def peak_tflops(device, given):
    "The card's dense tensor-core peak (bf16, or fp16 where it has no bf16) from the table, `given` if set."
    if given: return given
    if device.type != 'cuda': return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def make_vqvae(path, preset, size):
    from mdaug.vqvae import make_config, build_vqvae
    from mdaug.core import save_json
    cfg = make_config('ci', preset=preset, image_size=size)
    torch.manual_seed(0)
    build_vqvae(cfg).save_pretrained(path, safe_serialization=True)
    save_json(cfg.to_dict(), Path(path)/'vq_config.json')
    return Path(path)


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def train_arm(a, device, data, vq, work, name, kw):
    "Step times (s) of one `train_ldm` run with the arm's settings; its first step apart; CUDA peak memory."
    from mdaug.train import train_ldm, make_settings
    from mdaug.learner import FuncCB
    out = work/f'{name}-{time.monotonic_ns()}'
    out.mkdir(parents=True)
    if (work/'latents.safetensors').exists() and not kw.get('encode_every_batch'):   # the cache is keyed by content: encode once
        shutil.copy(work/'latents.safetensors', out/'latents.safetensors')
    stamps = []
    def stamp(learn): sync(device); stamps.append(time.perf_counter())
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    n = a.warmup + a.steps
    t0 = time.perf_counter()
    s = make_settings('ci', unet_preset=a.unet, steps=n, batch_size=a.batch_size, warmup_steps=1, checkpoint_every=10**6,
                      sample_every=10**6, sample_steps=1, log_with='none', seed=0, **kw)
    train_ldm(data, vq, out, s, cbs=[FuncCB(after_step=stamp)], progress=False)
    if not (work/'latents.safetensors').exists() and (out/'latents.safetensors').exists():
        shutil.copy(out/'latents.safetensors', work/'latents.safetensors')
    steps = [b - a_ for a_, b in zip(stamps, stamps[1:])]
    mem = torch.cuda.max_memory_allocated() / 2**20 if device.type == 'cuda' else None
    shutil.rmtree(out, ignore_errors=True)
    return dict(times=steps[a.warmup - 1:] if a.warmup else steps, first=stamps[0] - t0, peak_MB=mem)


def training(a, device, size, work):
    "Every training arm at `size` px, interleaved over rounds; returns the table rows."
    from mdaug.train import cache_speedup_bound
    from mdaug.core import default_dtype
    vqp, a.unet = a.pair.split(':')
    data = synthetic_data(work/'data', n_classes=4, per_class=max(a.batch_size, 8), size=size)
    vq = make_vqvae(work/'vq', vqp, size)
    half = default_dtype(device)
    amp = {torch.bfloat16: 'bf16', torch.float16: 'fp16'}.get(half, 'bf16')   # on a CPU: bf16, to measure what it costs
    cuda = device.type == 'cuda'
    arms = {'baseline': dict(encode_every_batch=True, pin_memory=False), 'cached': {},
            'amp': dict(mixed_precision=amp), 'channels_last': dict(channels_last=True), 'fused_adamw': dict(fused_adamw=True),
            'eager': dict(attention='eager')}
    if cuda: arms['no_pin'] = dict(pin_memory=False)
    if a.compile: arms['compile'] = dict(compile=True)
    if a.arms: arms = {k: v for k, v in arms.items() if k in ('baseline', 'cached') or k in a.arms.split(',')}
    res = {k: dict(times=[], first=[], peak_MB=None) for k in arms}
    def run(name, kw, into):
        r = train_arm(a, device, data, vq, work, name, dict(mixed_precision='no') | kw)
        into[name]['times'] += r['times']; into[name]['first'].append(r['first']); into[name]['peak_MB'] = r['peak_MB']
    slow = set()
    for rnd in range(a.rounds):
        for name, kw in arms.items():
            if name in slow or (name == 'compile' and rnd > 0 and a.compile_once): continue
            print(f"  {size} px, round {rnd + 1}/{a.rounds}: {name}", flush=True); run(name, kw, res)
        if rnd == 0:   # an arm at half the speed of `cached` is not kept whatever the noise: one round of it is enough
            c = statistics.median(res['cached']['times'])
            slow = {k for k, v in res.items() if statistics.median(v['times']) > 2 * c}
    med = {k: statistics.median(v['times']) for k, v in res.items()}
    keep = [k for k in arms if k not in ('baseline', 'cached') and med['cached'] / med[k] >= a.keep]
    fast = {kk: v for k in keep for kk, v in arms[k].items()}
    # `fast` against `baseline` and `cached` again, interleaved in rounds of their own: its ratios come from these
    arms['fast'] = fast
    if fast:
        again = {k: dict(times=[], first=[], peak_MB=None) for k in ('baseline', 'cached', 'fast')}
        for rnd in range(a.rounds):
            for name in again:
                print(f"  {size} px, round {rnd + 1}/{a.rounds}: {name} {arms[name]}", flush=True); run(name, arms[name], again)
        res['fast'] = again['fast']
        med2 = {k: statistics.median(v['times']) for k, v in again.items()}
    else:   # nothing kept: `fast` is `cached`
        res['fast'], med2 = res['cached'], dict(med, fast=med['cached'])
    med.update(fast=med2['fast'])
    b = cache_speedup_bound(vqp, a.unet, size, 3, 4)
    peak = peak_tflops(device, a.peak_tflops)
    rows = []
    for k, r in res.items():
        ips = a.batch_size / med[k]
        ref = med2 if k == 'fast' else med
        rows.append(dict(arm=k, settings=arms[k], step_s=med[k], steps_timed=len(r['times']),
                         images_per_s=ips, vs_baseline=ref['baseline'] / med[k], vs_cached=ref['cached'] / med[k],
                         first_step_s=statistics.median(r['first']), model_tflops=ips * b['unet_step_gflops'] / 1e3,
                         mfu=ips * b['unet_step_gflops'] / 1e3 / peak if peak else None, peak_MB=r['peak_MB']))
    return dict(image_size=size, pair=a.pair, latent=list(b['latent']), unet_step_gflops=b['unet_step_gflops'],
                encoder_gflops=b['encoder_gflops'], cache_flop_bound=b['bound'], peak_tflops=peak, kept=keep, fast_settings=fast,
                rows=rows)


def sampling(a, device, size, work):
    "Images/s of DDIM sampling + decoding through `load_pipeline`, per switch."
    from mdaug.pipeline import MDaugPipeline, load_pipeline
    from mdaug.train import make_settings, make_scheduler
    from mdaug.unet import build_unet
    from mdaug.core import default_dtype
    from diffusers import VQModel
    vqp, unet_preset = a.pair.split(':')
    vq = VQModel.from_pretrained(make_vqvae(work/'svq', vqp, size))
    lat = size // (2 ** (len(vq.config.block_out_channels) - 1))
    torch.manual_seed(0)
    unet = build_unet(lat, vq.config.latent_channels, num_classes=4, preset=unet_preset)
    folder = work/'pipe'
    MDaugPipeline(unet, vq, make_scheduler(make_settings('ci')), [f'class{i}' for i in range(4)]).save_pretrained(folder)
    half = {torch.bfloat16: 'bfloat16', torch.float16: 'float16'}.get(default_dtype(device), 'bfloat16')
    arms = {'float32': {}, half: dict(dtype=half), 'channels_last': dict(channels_last=True)}
    if a.compile: arms['compile'] = dict(compile=True)
    labels = [i % 4 for i in range(a.sample_batch)]
    times, first = {k: [] for k in arms}, {}
    pipes = {}
    for k, kw in arms.items():
        pipes[k] = load_pipeline(folder, device=str(device), **kw)
        t0 = time.perf_counter()
        pipes[k](labels, num_inference_steps=a.sample_steps, guidance_scale=2., generator=torch.Generator().manual_seed(0),
                 output_type='pt', progress=False); sync(device)
        first[k] = time.perf_counter() - t0
    for _ in range(a.sample_repeats):
        for k in arms:
            sync(device); t0 = time.perf_counter()
            pipes[k](labels, num_inference_steps=a.sample_steps, guidance_scale=2., generator=torch.Generator().manual_seed(0),
                     output_type='pt', progress=False)
            sync(device); times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(image_size=size, steps=a.sample_steps, batch=a.sample_batch, rows=[
        dict(arm=k, settings=arms[k], batch_s=med[k], images_per_s=a.sample_batch / med[k], vs_float32=med['float32'] / med[k],
             first_call_s=first[k]) for k in arms])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', default='64', help='image sizes in pixels (comma separated)')
    p.add_argument('--pair', default='cpu:cpu', help='VQ-VAE preset:UNet preset')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--steps', type=int, default=3, help='timed steps per arm and round')
    p.add_argument('--warmup', type=int, default=1, help='untimed steps first (the first one compiles, with --compile)')
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--keep', type=float, default=1.05, help='a switch goes into `fast` if its arm is at least this many times faster than cached')
    p.add_argument('--compile', action='store_true', help='also time torch.compile')
    p.add_argument('--compile-once', action='store_true', help='time the compile arm in the first round only')
    p.add_argument('--sample-steps', type=int, default=10); p.add_argument('--sample-batch', type=int, default=4)
    p.add_argument('--sample-repeats', type=int, default=3)
    p.add_argument('--no-sampling', action='store_true')
    p.add_argument('--arms', default=None, help='time only these switch arms (comma separated, e.g. fused_adamw,compile) beside baseline and cached')
    p.add_argument('--peak-tflops', type=float, default=None, help="the device's peak, for MFU (default: from the card's name)")
    p.add_argument('--device', default=None); p.add_argument('--threads', type=int, default=None)
    p.add_argument('--out', default=str(Path(__file__).resolve().parent/'results'/'fastpath.json'))
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    from mdaug.core import default_device
    device = default_device(a.device)
    if device.type == 'cpu': os.environ['ACCELERATE_USE_CPU'] = 'true'   # train_ldm's accelerator follows --device
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()
    work = Path(tempfile.mkdtemp(prefix='mdaug-fastpath-'))
    res = dict(device=str(device), device_name=name, platform=platform.platform(), torch=torch.__version__,
               threads=torch.get_num_threads(), date=time.strftime('%Y-%m-%d'), args=vars(a), training=[], sampling=[])
    try:
        for size in map(int, a.sizes.split(',')):
            w = work/f'train{size}'; w.mkdir()
            t = training(a, device, size, w); res['training'].append(t)
            print(f"\ntraining, {name}, {size} px ({a.pair}, latents {'x'.join(map(str, t['latent']))}), batch {a.batch_size}, "
                  f"median of {a.steps} x {a.rounds} steps; UNet step {t['unet_step_gflops']} GFLOPs/image; peak {t['peak_tflops']} TFLOP/s")
            print(f"{'arm':<15}{'s/step':>9}{'img/s':>9}{'vs base':>9}{'vs cached':>10}{'1st step s':>11}{'TFLOP/s':>9}{'MFU':>7}{'peak MB':>9}")
            for r in t['rows']:
                mfu = '' if r['mfu'] is None else f"{100 * r['mfu']:.1f}%"
                mem = '' if r['peak_MB'] is None else f"{r['peak_MB']:.0f}"
                print(f"{r['arm']:<15}{r['step_s']:>9.4f}{r['images_per_s']:>9.2f}{r['vs_baseline']:>8.2f}x{r['vs_cached']:>9.2f}x"
                      f"{r['first_step_s']:>11.2f}{r['model_tflops']:>9.3f}{mfu:>7}{mem:>9}")
            flags = ' '.join(f"{k}={v!r}" for k, v in t['fast_settings'].items()) or '(none: the defaults are fastest here)'
            print(f"kept (>= {a.keep}x vs cached): {t['kept'] or 'none'}; train_ldm(..., {flags})")
            if not a.no_sampling:
                w = work/f'sample{size}'; w.mkdir()
                s = sampling(a, device, size, w); res['sampling'].append(s)
                print(f"\nsampling, {size} px, DDIM {s['steps']} steps + decoder, guidance 2, batch {s['batch']}")
                print(f"{'arm':<15}{'s/batch':>9}{'img/s':>9}{'vs fp32':>9}{'1st call s':>11}")
                for r in s['rows']:
                    print(f"{r['arm']:<15}{r['batch_s']:>9.3f}{r['images_per_s']:>9.2f}{r['vs_float32']:>8.2f}x{r['first_call_s']:>11.2f}")
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(res, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nwrote {a.out}")


if __name__ == '__main__':
    main()
