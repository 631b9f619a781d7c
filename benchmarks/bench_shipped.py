"""The shipped model, measured: VQ-VAE PSNR / SSIM / codebook usage on the validation split of its training simulation,
against the noisy images it was trained on *and* against the same spectrograms rendered without noise (the simulator can:
same seed, same motion, `snr_db=None`), beside the cheapest codec with the same latent grid (area-downsample x4, bicubic
up); then the latent diffusion run's figures from its log. Writes results/shipped_model.json.

    python benchmarks/bench_shipped.py                       # re-simulates the training set (seed 1, 6 subjects x 10)
    python benchmarks/bench_shipped.py --ldm-run /work/ship/ldm   # also reads the LDM run's log.jsonl
"""
from __future__ import annotations
import argparse, json, os, platform, shlex, sys, tempfile, time
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F

from mdaug.core import save_json, load_json, image_to_tensor
from mdaug.data import get_dataloaders
from mdaug.pipeline import load_pipeline, model_id
from mdaug.simulate import simulate_dataset, sample_params, simulate_sample, to_image
from mdaug.vqvae import vq_forward, psnr, ssim, code_stats

ROOT = Path(__file__).resolve().parents[1]


def clean_twin(rel: PurePosixPath, seed: int, image_size: int, channels: int) -> torch.Tensor:
    "The simulated spectrogram `<class>/s<j>_<n>.png` of dataset `seed`, rendered again without noise."
    cls, (subj, n) = rel.parts[0], rel.stem.split('_')
    p = sample_params(cls, int(subj[1:]), int(n), seed)
    img, _ = simulate_sample(dict(p, snr_db=None), image_size)
    return image_to_tensor(to_image(img, channels), channels)


@torch.no_grad()
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default=None, help='model folder (default: the shipped one)')
    ap.add_argument('--sim-seed', type=int, default=1, help='seed of the training simulation (data/README.md)')
    ap.add_argument('--subjects', type=int, default=6); ap.add_argument('--per-subject', type=int, default=10)
    ap.add_argument('--data', default=None, help='the simulated training folder, if it is still around (else simulated again)')
    ap.add_argument('--ldm-run', default=None, help='the train-ldm run folder, for its log.jsonl')
    ap.add_argument('--results', default=str(ROOT/'benchmarks'/'results'/'shipped_model.json'))
    a = ap.parse_args(argv)

    pipe = load_pipeline(a.model, device='cpu')
    vq, vqc = pipe.vqvae, load_json(Path(pipe._mdaug_path)/'vqvae'/'vq_config.json')
    data = Path(a.data) if a.data else Path(tempfile.mkdtemp())/'sim'
    if not a.data: simulate_dataset(data, n_subjects=a.subjects, n_per_subject=a.per_subject, image_size=vqc['image_size'],
                                    channels=vqc['channels'], seed=a.sim_seed, progress=False)
    dls = get_dataloaders(data, image_size=vqc['image_size'], channels=vqc['channels'], batch_size=16, valid_pct=vqc['valid_pct'],
                          seed=vqc['seed'], num_workers=0)
    vds = dls.valid_ds
    x = torch.stack([vds[i][0] for i in range(len(vds))])
    clean = torch.stack([clean_twin(vds.files[i], a.sim_seed, vqc['image_size'], vqc['channels']) for i in range(len(vds))])
    recs, idx, nq = [], [], []
    for b in range(0, len(x), 16):
        r, _, i, h = vq_forward(vq, x[b:b + 16]); recs.append(r.clamp(-1, 1)); idx.append(i.flatten())
        nq.append(vq.decode(h, force_not_quantize=True).sample.clamp(-1, 1))   # the same decoder on unquantised latents
    rec, rec_nq = torch.cat(recs), torch.cat(nq)
    f = 2 ** (len(vq.config.block_out_channels) - 1)
    bic = F.interpolate(F.avg_pool2d(x, f), scale_factor=f, mode='bicubic', align_corners=False).clamp(-1, 1)
    counts = torch.bincount(torch.cat(idx), minlength=vq.config.num_vq_embeddings)
    m = lambda fn, u, v: float(fn(u, v).mean())
    res = dict(command='python ' + ' '.join(shlex.quote(o) for o in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
               date=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()), machine=f"{platform.machine()} CPU, {os.cpu_count()} cores",
               model=pipe._mdaug_path, model_sha256=model_id(pipe), n_valid=len(vds), n_train=len(dls.train_ds),
               vqvae=dict(psnr_vs_noisy=m(psnr, x, rec), ssim_vs_noisy=m(ssim, x, rec), psnr_vs_clean=m(psnr, clean, rec),
                          ssim_vs_clean=m(ssim, clean, rec), psnr_noisy_vs_clean=m(psnr, clean, x), **code_stats(counts.float()),
                          psnr_unquantised_vs_noisy=m(psnr, x, rec_nq), bicubic_psnr_vs_noisy=m(psnr, x, bic), bicubic_psnr_vs_clean=m(psnr, clean, bic),
                          params=sum(p.numel() for p in vq.parameters()), config=vqc),
               unet=dict(params=sum(p.numel() for p in pipe.unet.parameters()), classes=pipe.classes))
    if a.ldm_run:
        logs = [json.loads(l) for l in (Path(a.ldm_run)/'log.jsonl').read_text().splitlines()]
        loss = [o['loss'] for o in logs]
        res['ldm'] = dict(steps=logs[-1]['step'], minutes=round(logs[-1]['time'] / 60, 1), loss_first50=float(np.mean(loss[:50])),
                          loss_last50=float(np.mean(loss[-50:])), settings=load_json(Path(a.ldm_run)/'settings.json'))
    save_json(res, a.results)
    v = res['vqvae']
    print(f"VQ-VAE on {len(vds)} validation spectrograms: PSNR {v['psnr_vs_noisy']:.2f} dB vs the noisy input "
          f"({v['bicubic_psnr_vs_noisy']:.2f} bicubic), {v['psnr_vs_clean']:.2f} dB vs the noise-free render "
          f"({v['bicubic_psnr_vs_clean']:.2f} bicubic; the noisy input itself: {v['psnr_noisy_vs_clean']:.2f}); SSIM {v['ssim_vs_noisy']:.3f} / "
          f"{v['ssim_vs_clean']:.3f}; decoding the unquantised latents: {v['psnr_unquantised_vs_noisy']:.2f} dB; codebook usage {v['usage']:.1%}, perplexity {v['perplexity']:.0f}")
    if 'ldm' in res: print(f"LDM: {res['ldm']['steps']} steps in {res['ldm']['minutes']} min, loss {res['ldm']['loss_first50']:.3f} -> {res['ldm']['loss_last50']:.4f}")
    print(f"wrote {a.results}")
    return res


if __name__ == '__main__': main()
