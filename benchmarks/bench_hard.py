"""How hard is a simulated scene? Real-only test accuracy of the benchmark's classifier at 5 and 10 images per class,
on subject-wise folds, for the easy and the hard scene of the simulator (issue 20, item 6: the hard scene's target
is at most about 80% at 10 per class).

    OMP_NUM_THREADS=1 python benchmarks/bench_hard.py                      # both scenes, 8 subjects x 10, 64 px, seed 2
    OMP_NUM_THREADS=1 python benchmarks/bench_hard.py --scenes hard --clf-seeds 1

Each scene: `simulate_dataset(scene=...)`, then the benchmark's own machinery: `fold_plan` (subject-wise test folds,
an inner validation split, nested subsets of the inner training subjects), `train_classifier` with the 'quick'
preset's classifier (`ClassifierSettings(steps=300, input_size=48, seed=1000 * split_seed + i)`) on each subset,
`accuracy` on the fold's test subjects. Prints mean, standard deviation and 95% interval over folds (each fold the
mean over classifier seeds), and the per-class accuracy; writes OUT/results.json.
"""
import argparse, json, os, platform, time
from pathlib import Path

import numpy as np
import torch
from mdaug.simulate import simulate_dataset, SCENES
from mdaug.evaluate import load_images, train_classifier, accuracy, ClassifierSettings
from mdaug.experiments import fold_plan, fold_interval


def run_scene(scene, a, out):
    "Simulate `scene` into `out/scene` (once), then every fold, size and classifier seed; returns the scene's results."
    data = out / f'{scene}_s{a.seed}_{a.subjects}x{a.per_subject}_{a.image_size}px'
    t0 = time.time()
    if not (data / 'metadata.csv').is_file():
        simulate_dataset(data, scene=scene, n_subjects=a.subjects, n_per_subject=a.per_subject,
                         image_size=a.image_size, seed=a.seed, n_workers=a.workers, progress=False)
    t_sim = time.time() - t0
    ims = load_images(data, progress=False)
    plan = fold_plan(ims, a.folds, a.sizes, a.val_pct, a.split_seed)['folds']
    C = len(ims.classes)
    acc = {k: [] for k in a.sizes}                      # per size: per fold, the mean over classifier seeds
    conf = {k: torch.zeros(C, C, dtype=torch.long) for k in a.sizes}
    t1 = time.time()
    for f, fp in enumerate(plan):
        test = ims.subset(fp['test'])
        for k in a.sizes:
            S = ims.subset(fp['subsets'][str(k)])
            per_seed = []
            for i in range(a.clf_seeds):
                cs = ClassifierSettings(steps=a.steps, input_size=min(48, a.image_size), seed=1000 * a.split_seed + i)
                clf = train_classifier(S.x, S.y, C, cs, device='cpu')
                v, cm = accuracy(clf, test)
                per_seed.append(v); conf[k] += cm
            acc[k].append(float(np.mean(per_seed)))
            print(f"  {scene} fold {f}: {k}/class, test {len(test)} images of "
                  f"{len(set(test.subjects))} subjects: {100 * acc[k][-1]:.1f}%", flush=True)
    res = dict(classes=list(ims.classes), images=len(ims), folds=len(plan), simulate_s=round(t_sim, 1),
               classifiers_s=round(time.time() - t1, 1), sizes={})
    for k in a.sizes:
        iv = fold_interval(acc[k]); cm = conf[k].double()
        res['sizes'][str(k)] = dict(per_fold=acc[k], mean=iv['mean'], std=float(np.std(acc[k], ddof=1)),
                                    lo=iv['lo'], hi=iv['hi'],
                                    per_class=dict(zip(ims.classes, (cm.diag() / cm.sum(1)).tolist())),
                                    confusion=conf[k].tolist())
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--scenes', default='easy,hard', help='comma-separated scenes of mdaug.simulate.SCENES')
    ap.add_argument('--subjects', type=int, default=8, help='subjects per class')
    ap.add_argument('--per-subject', type=int, default=10, help='spectrograms per subject and class')
    ap.add_argument('--image-size', type=int, default=64)
    ap.add_argument('--seed', type=int, default=2, help='simulation seed')
    ap.add_argument('--folds', type=int, default=3, help='subject-wise test folds')
    ap.add_argument('--sizes', default='5,10', help='real training images per class (nested subsets)')
    ap.add_argument('--val-pct', type=float, default=0.25, help="share of a fold's training subjects held out")
    ap.add_argument('--split-seed', type=int, default=0, help='seed of the folds, subsets and classifiers')
    ap.add_argument('--clf-seeds', type=int, default=2, help='classifier seeds per fold and size')
    ap.add_argument('--steps', type=int, default=300, help="classifier steps (the 'quick' preset's)")
    ap.add_argument('--workers', type=int, default=1, help='simulator worker processes')
    ap.add_argument('--out', default='runs/bench_hard', help='where the datasets and results.json go')
    a = ap.parse_args()
    a.sizes = tuple(int(s) for s in a.sizes.split(','))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, int(os.environ.get('OMP_NUM_THREADS', '1'))))
    results = {}
    for scene in a.scenes.split(','):
        if scene not in SCENES: raise SystemExit(f"unknown scene {scene!r}: choose from {sorted(SCENES)}")
        results[scene] = run_scene(scene, a, out)
    print(f"\nreal-only test accuracy (%), {a.folds} subject-wise folds x {a.clf_seeds} classifier seeds, "
          f"{a.subjects} subjects x {a.per_subject} per class, {a.image_size} px, simulation seed {a.seed}:")
    print(f"{'scene':<6} {'classes':>7} {'per class':>9} {'mean':>6} {'std':>5} {'95% interval':>14}   per fold")
    for scene, r in results.items():
        for k, v in r['sizes'].items():
            print(f"{scene:<6} {len(r['classes']):>7} {k:>9} {100 * v['mean']:>6.1f} {100 * v['std']:>5.1f} "
                  f"[{100 * v['lo']:5.1f}, {100 * v['hi']:5.1f}]   "
                  + ' '.join(f'{100 * x:.1f}' for x in v['per_fold']))
        big = r['sizes'][str(max(a.sizes))]['per_class']
        print(f"       per class at {max(a.sizes)}/class: " + ', '.join(f'{c} {100 * x:.0f}' for c, x in big.items()))
        print(f"       simulate {r['simulate_s']:.0f} s, classifiers {r['classifiers_s']:.0f} s")
    res = dict(args=vars(a), machine=f"{platform.machine()}, {os.cpu_count()} cores",
               torch_threads=torch.get_num_threads(), results=results)
    (out / 'results.json').write_text(json.dumps(res, indent=1))
    print(f"wrote {out / 'results.json'}")


if __name__ == '__main__':
    main()
