"""Memory of one latent diffusion training step per UNet preset: measured on the CPU, estimated for every preset.

Estimate (what a GPU would hold, fp32, no allocator slack): the weights, their gradients, AdamW's two moments and the EMA
copy (5 x 4 bytes per parameter), plus the activations autograd saves for the backward pass, summed by PyTorch's
saved-tensor hooks during one forward pass on the meta device (nothing is allocated). Measured: the growth of the peak
resident memory of a fresh process over one real training step on the CPU, for the presets small enough here. The ratio
measured / estimate checks the estimate where both exist; the GPU presets get the estimate only, labelled as such.

    python benchmarks/bench_memory.py                              # batch 16, 32 x 32 x 4 latents; measures ci and cpu
    python benchmarks/bench_memory.py --measure ci,cpu,gpu --batch 64
    python benchmarks/bench_memory.py --device cuda --measure all --batch 64          # torch.cuda.max_memory_allocated
    python benchmarks/bench_memory.py --device cuda --measure all --batch 64 --amp    # the same under bf16/fp16 autocast

On a GPU the measure is `torch.cuda.max_memory_allocated` over two training steps in a fresh process (weights, AdamW
state and an EMA copy included; the CUDA context and the allocator's cached but unused blocks are not in it).
"""
import argparse, subprocess, sys, time
from pathlib import Path

import torch

from mdaug.core import save_json
from mdaug.unet import UNET_PRESETS, build_unet

STEP = r'''
import resource, sys, torch
from mdaug.unet import build_unet
from mdaug.core import default_dtype
preset, B, dev, amp = sys.argv[1], int(sys.argv[2]), torch.device(sys.argv[3]), sys.argv[4] == '1'
torch.manual_seed(0)
cuda = dev.type == 'cuda'
if cuda: torch.zeros(1, device=dev); torch.cuda.reset_peak_memory_stats()
u = build_unet(32, 4, 7, preset=preset).to(dev)
opt = torch.optim.AdamW(u.parameters(), lr=1e-4)
ema = [p.detach().clone() for p in u.parameters()]
x, t, y = torch.randn(B, 4, 32, 32, device=dev), torch.randint(0, 1000, (B,), device=dev), torch.randint(0, 7, (B,), device=dev)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(2):
    with torch.autocast(dev.type, default_dtype(dev) if cuda else torch.bfloat16, enabled=amp):
        loss = u(x, t, y).sample.float().pow(2).mean()
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=False)
if cuda: torch.cuda.synchronize(); print(torch.cuda.max_memory_allocated() / 1024)   # KiB, like ru_maxrss
else: print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
'''


def estimate(preset:str, batch:int) -> dict:
    "Bytes of training state (20 per parameter) and of the activations saved for backward, counted on the meta device."
    saved = {}
    def pack(t):
        saved[id(t)] = t.numel() * t.element_size(); return t
    with torch.device('meta'):
        u = build_unet(32, 4, 7, preset=preset)
        x, t, y = torch.randn(batch, 4, 32, 32), torch.zeros(batch, dtype=torch.long), torch.zeros(batch, dtype=torch.long)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t): u(x, t, y).sample.pow(2).mean()
    n = sum(p.numel() for p in u.parameters())
    return dict(params_M=n / 1e6, state_MB=20 * n / 2**20, activations_MB=sum(saved.values()) / 2**20)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--measure', default='ci,cpu', help="presets to also measure (comma-separated, or 'all')")
    ap.add_argument('--device', default='cpu', help="'cpu' (peak RSS growth) or 'cuda' (max memory allocated)")
    ap.add_argument('--amp', action='store_true', help='measure under autocast (bf16 or fp16 on a GPU, bf16 on a CPU)')
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'memory.json'))
    a = ap.parse_args()
    rows = []
    print(f"{'preset':<7}{'params':>9}{'estimate MB':>13}{'(state + activations)':>24}{'measured MB':>13}{'ratio':>7}")
    for p in UNET_PRESETS:
        e = estimate(p, a.batch); est = e['state_MB'] + e['activations_MB']
        meas = None
        if a.measure == 'all' or p in a.measure.split(','):
            r = subprocess.run([sys.executable, '-c', STEP, p, str(a.batch), a.device, '1' if a.amp else '0'], capture_output=True, text=True, check=True)
            meas = int(r.stdout.strip()) / 1024  # ru_maxrss is in KiB on Linux
        rows.append(dict(preset=p, batch=a.batch, **e, estimate_MB=est, measured_MB=meas, ratio=meas / est if meas else None))
        print(f"{p:<7}{e['params_M']:>8.1f}M{est:>13.0f}{e['state_MB']:>12.0f} + {e['activations_MB']:<9.0f}"
              f"{'' if meas is None else f'{meas:.0f}':>13}{'' if meas is None else f'{meas / est:.2f}':>7}")
    kind = 'torch.cuda.max_memory_allocated' if a.device.startswith('cuda') else 'peak RSS growth on the CPU'
    dev = torch.cuda.get_device_name(a.device) if a.device.startswith('cuda') else 'cpu'
    save_json(dict(batch=a.batch, latent=[4, 32, 32], date=time.strftime('%Y-%m-%d'), device=dev, amp=a.amp, rows=rows,
                   note=f'estimate: fp32 weights, grads, AdamW moments, EMA and saved activations; measured: {kind}'), a.out)


if __name__ == '__main__':
    main()
