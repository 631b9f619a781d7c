"""Fine-tuning from a simulator-pretrained prior vs training from scratch, on the same small dataset (issue 20, item 3).

Claim measured: a UNet fine-tuned from the prior (`TrainSettings.init`) reaches the quality of a UNet trained from
scratch for N steps in at most N/5 steps. Quality is `mdaug.evaluate.quality` (lesson 09): KID and FID in the features
of a reference classifier trained on the user's training images, against held-out real images of other subjects, with
the real-vs-real floor of the same size.

Stages (each kept in --out, so a rerun skips what is done):
  1. the simulator pool the prior learns from (--pool-seed, default 1) and the user's set (--data-seed, default 7:
     other random subjects); the user's set is split by subject: --train-subjects per class train, the rest held out;
  2. a VQ-VAE trained on the pool (frozen afterwards: both arms encode with it, so only the UNet's start differs);
  3. the prior: a UNet trained on the pool for --prior-steps;
     (--prior-classes: a pool without some of the user's classes, so the prior never saw them);
  4. arms on the user's training split: scratch for N (--steps) and N/5 steps (make_settings('cpu', ...)), the prior
     itself (0 steps), fine-tunes of N/10 and N/5 steps (make_settings('cpu', init=prior): FINETUNE['cpu'] lr/warm-up);
  5. --per-class images per class from each model (DDIM --sample-steps, guidance 2), scored with `quality`.

The default is a smaller setting than the shipped model (64 px, the 'ci' UNet, a VQ-VAE of the shipped recipe at
64 px): at 128 px with the 'cpu' UNet a training step takes 3-5 s on one shared core of the 2-core machine, so a
scratch run long enough to mean anything does not fit in 40 minutes. `--shipped` uses the shipped model as the prior
(128 px, the 'cpu' UNet; stages 1-3 skipped) for a machine with time or a GPU.

    OMP_NUM_THREADS=1 python benchmarks/bench_prior.py                       # ~30-40 min on one shared core
    OMP_NUM_THREADS=1 python benchmarks/bench_prior.py --quick               # a smoke run of a few minutes
"""
from __future__ import annotations
import argparse, json, os, platform, shlex, shutil, sys, time
from pathlib import Path

import torch

from mdaug.core import save_json, load_json, shipped
from mdaug.evaluate import load_images, train_classifier, ClassifierSettings, quality
from mdaug.generate import generate
from mdaug.simulate import simulate_dataset
from mdaug.train import train_ldm, make_settings, prior_vqvae, prior_unet, prior_meta, save_ldm, FINETUNE
from mdaug.vqvae import make_config, train_vqvae

ROOT = Path(__file__).resolve().parents[1]


def split_user(src: Path, dst: Path, n_train: int) -> tuple[Path, Path]:
    "Copy `src/<class>/<subject>_<n>.png` into dst/train (the first `n_train` subjects of each class) and dst/held."
    if (dst/'done').exists(): return dst/'train', dst/'held'
    shutil.rmtree(dst, ignore_errors=True)
    for c in sorted(p for p in src.iterdir() if p.is_dir()):
        subjects = sorted({f.stem.split('_')[0] for f in c.glob('*.png')})
        for f in c.glob('*.png'):
            part = 'train' if f.stem.split('_')[0] in subjects[:n_train] else 'held'
            (dst/part/c.name).mkdir(parents=True, exist_ok=True); shutil.copy(f, dst/part/c.name/f.name)
    (dst/'done').write_text('')
    return dst/'train', dst/'held'


def simulate(out: Path, subjects: int, per_subject: int, size: int, seed: int, classes) -> Path:
    if not (out/'metadata.csv').exists():
        simulate_dataset(out, classes=classes, n_subjects=subjects, n_per_subject=per_subject, image_size=size, seed=seed,
                         n_workers=1, progress=False)
    return out


def timed(times: dict, name: str, fn):
    "Run `fn`, keep its seconds in `times` (and in times.json beside the runs, so a rerun still reports every stage)."
    t0 = time.time(); r = fn(); times[name] = round(time.time() - t0, 1)
    print(f"{name}: {times[name]} s", flush=True)
    if '_file' in times: save_json({k: v for k, v in times.items() if k != '_file'}, times['_file'])
    return r


def train(data, vq, out: Path, s) -> Path:
    "A finished run's model, or train it (a half-finished run resumes)."
    if (out/'model'/'mdaug.json').exists(): return out/'model'
    return train_ldm(data, vq, out, s, resume='latest', progress=False)


def step0(prior: str, vq, classes: list, out: Path) -> Path:
    "The prior as a model of the user's classes before any step: its weights with the class rows of `class_rows`."
    if (out/'model'/'mdaug.json').exists(): return out/'model'
    s = make_settings('cpu', init=prior, image_size=prior_meta(prior)['image_size'],
                      channels=prior_meta(prior).get('channels'))
    unet, rec = prior_unet(prior, classes, s, tuple(prior_meta(prior)['latent_shape']))
    return save_ldm(out/'model', unet.eval(), vq, s, classes, dict(steps_trained=0, init=rec))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='runs/bench_prior')
    ap.add_argument('--image-size', type=int, default=64)
    ap.add_argument('--classes', default=None, help="comma-separated simulator classes of the user's set (default: all 7)")
    ap.add_argument('--prior-classes', default=None,
                    help='classes of the pool the VQ-VAE and the prior learn from (default: --classes); leave some out '
                         'to measure a prior that never saw the user\'s activities (their rows start as new ones)')
    ap.add_argument('--pool-seed', type=int, default=1); ap.add_argument('--pool-subjects', type=int, default=8)
    ap.add_argument('--pool-per-subject', type=int, default=10)
    ap.add_argument('--data-seed', type=int, default=7); ap.add_argument('--data-subjects', type=int, default=5)
    ap.add_argument('--data-per-subject', type=int, default=5)
    ap.add_argument('--train-subjects', type=int, default=2, help='subjects per class in the training split')
    ap.add_argument('--vq-steps', type=int, default=600)
    ap.add_argument('--unet-preset', default='ci')
    ap.add_argument('--prior-steps', type=int, default=3000)
    ap.add_argument('--steps', type=int, default=1500, help='N: steps of the scratch run')
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--finetune-lr', type=float, default=None, help="fine-tuning lr (default: FINETUNE['cpu']'s)")
    ap.add_argument('--per-class', type=int, default=24, help='generated images per class and model')
    ap.add_argument('--sample-steps', type=int, default=25)
    ap.add_argument('--classifier-steps', type=int, default=1000)
    ap.add_argument('--shipped', action='store_true', help='the shipped model as the prior (128 px, cpu UNet)')
    ap.add_argument('--quick', action='store_true', help='a smoke run: tiny steps everywhere')
    ap.add_argument('--results', default=str(ROOT/'benchmarks'/'results'/'prior.json'))
    a = ap.parse_args(argv)
    if a.quick:
        a.vq_steps, a.prior_steps, a.steps, a.per_class, a.sample_steps, a.classifier_steps = 40, 60, 50, 6, 5, 50
        a.pool_subjects, a.pool_per_subject, a.results = 3, 3, str(Path(a.out)/'prior_quick.json')
    out, t_all = Path(a.out), time.time()
    out.mkdir(parents=True, exist_ok=True)
    times = (load_json(out/'times.json') if (out/'times.json').exists() else {}) | {'_file': str(out/'times.json')}
    size = 128 if a.shipped else a.image_size
    user = timed(times, 'simulate_user', lambda: simulate(out/'user_all', a.data_subjects, a.data_per_subject, size,
                                                          a.data_seed, a.classes))
    tr, held = split_user(user, out/'user', a.train_subjects)
    common = dict(batch_size=a.batch_size, log_with='none', num_workers=0, sample_steps=a.sample_steps)
    if a.shipped: prior, vq = 'shipped', prior_vqvae('shipped')
    else:
        pool = timed(times, 'simulate_pool', lambda: simulate(out/'pool', a.pool_subjects, a.pool_per_subject, size,
                                                              a.pool_seed, a.prior_classes or a.classes))
        vq_cfg = load_json(shipped('model')/'vqvae'/'vq_config.json') | dict(image_size=size, steps=a.vq_steps,
                                                                              eval_every=max(1, a.vq_steps // 4))
        vq_cfg = make_config('cpu', **{k: v for k, v in vq_cfg.items() if k not in ('sample_every',)})
        vq = out/'vq'/'best'
        if not (vq/'config.json').exists(): timed(times, 'vqvae', lambda: train_vqvae(pool, out/'vq', vq_cfg, progress=False))
        ps = make_settings('cpu', unet_preset=a.unet_preset, steps=a.prior_steps, checkpoint_every=500,
                           sample_every=a.prior_steps, warmup_steps=min(200, a.prior_steps // 10), **common)
        prior = str(timed(times, 'prior', lambda: train(pool, vq, out/'prior', ps)))
    N = a.steps
    every = lambda n: dict(steps=n, checkpoint_every=max(1, n // 2), sample_every=n)
    scratch = lambda n: make_settings('cpu', unet_preset='cpu' if a.shipped else a.unet_preset,
                                      warmup_steps=min(200, n // 10), **every(n), **common)
    fine = lambda n: make_settings('cpu', init=prior, lr=a.finetune_lr, **every(n), **common)
    lr = f'_lr{a.finetune_lr:g}' if a.finetune_lr else ''
    arms = {f'scratch_{N}': (scratch, N), f'scratch_{N // 5}': (scratch, N // 5), 'finetune_0': (None, 0),
            f'finetune_{N // 10}{lr}': (fine, N // 10), f'finetune_{N // 5}{lr}': (fine, N // 5)}
    models = {}
    for name, (mk, n) in arms.items():
        models[name] = (step0(prior, vq, sorted(p.name for p in tr.iterdir() if p.is_dir()), out/name) if mk is None
                        else timed(times, f'train_{name}', lambda: train(tr, vq, out/name, mk(n))))
    # the reference classifier and the real sets, as `mdaug evaluate` builds them (lesson 09)
    cs = ClassifierSettings(steps=a.classifier_steps, input_size=min(48, size), seed=0)
    T = load_images(tr, size, 3, progress=False, small=cs.input_size)
    H = load_images(held, size, 3, T.classes, progress=False, small=cs.input_size)
    clf = timed(times, 'classifier', lambda: train_classifier(T.x, T.y, len(T.classes), cs, device='cpu'))
    rows = {}
    for name, model in models.items():
        g = out/'gen'/name
        if not (g/'metadata.csv').exists():
            shutil.rmtree(g, ignore_errors=True)
            timed(times, f'generate_{name}', lambda: generate(model, g, per_class=a.per_class, classes=','.join(T.classes),
                                                              steps=a.sample_steps, seed=0, batch_size=48, device='cpu',
                                                              progress=False))
        G = load_images(g, size, 3, T.classes, progress=False, small=cs.input_size)
        num, _ = quality(clf, T, H, G, seed=0)
        gen, fl = num['generated'], num['floor']
        rows[name] = dict(steps=arms[name][1], kid_x1000=round(gen['kid'] * 1e3, 3),
                          kid_ci_x1000=[round(v * 1e3, 3) for v in gen['kid_ci']], fid=round(gen['fid'], 3),
                          fid_ci=[round(v, 3) for v in gen['fid_ci']], fid_ratio=round(num['fid_ratio'], 3),
                          floor_fid=round(fl['fid'], 3), floor_kid_x1000=round(fl['kid'] * 1e3, 3),
                          precision=round(gen['precision'], 3), recall=round(gen['recall'], 3),
                          accuracy_generated=round(num['classifier']['accuracy_generated'], 3))
        print(name, rows[name], flush=True)
    ref = rows[f'scratch_{N}']
    reached = {k: r['fid'] <= ref['fid'] and r['kid_x1000'] <= ref['kid_x1000'] for k, r in rows.items()
               if k.startswith('finetune') and r['steps'] > 0}
    first = min((rows[k]['steps'] for k, ok in reached.items() if ok), default=None)
    res = dict(command='OMP_NUM_THREADS=%s python benchmarks/bench_prior.py %s' % (os.environ.get('OMP_NUM_THREADS', ''),
                                                                                 shlex.join(sys.argv[1:] if argv is None else argv)),
               machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}",
               setting=dict(image_size=size, prior=str(prior), unet_preset='cpu' if a.shipped else a.unet_preset,
                            finetune=FINETUNE['cpu'] | ({'lr': a.finetune_lr} if a.finetune_lr else {}), classes=T.classes, train_images=len(T), held_images=len(H),
                            pool=None if a.shipped else dict(seed=a.pool_seed, subjects=a.pool_subjects,
                                                             per_subject=a.pool_per_subject,
                                                             classes=load_json(Path(prior)/'mdaug.json')['classes']),
                            rows={k: {r: load_json(Path(m)/'mdaug.json')['init'][r] for r in ('copied', 'new')}
                                  for k, m in models.items() if k.startswith('finetune')},
                            data_seed=a.data_seed, N=N, per_class=a.per_class, sample_steps=a.sample_steps),
               arms=rows, reached_scratch=reached, fewest_finetune_steps_reaching_scratch=first,
               claim_met=first is not None and first <= N // 5, seconds={k: v for k, v in times.items() if k != '_file'},
               seconds_this_call=round(time.time() - t_all, 1))
    Path(a.results).parent.mkdir(parents=True, exist_ok=True); save_json(res, a.results)
    print(json.dumps({k: res[k] for k in ('reached_scratch', 'fewest_finetune_steps_reaching_scratch', 'claim_met',
                                          'seconds_this_call')}))
    print(f"| arm | steps | KID x 1000 [95%] | FID [95%] | FID ratio | precision | recall | class acc |")
    for k, r in rows.items():
        print(f"| {k} | {r['steps']} | {r['kid_x1000']} {r['kid_ci_x1000']} | {r['fid']} {r['fid_ci']} | {r['fid_ratio']} "
              f"| {r['precision']} | {r['recall']} | {r['accuracy_generated']} |")
    return res


if __name__ == '__main__': main()
