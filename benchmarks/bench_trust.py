"""Can a user trust the benchmark's intervals? Run `mdaug benchmark` twice on the same data with other seeds (other
subject folds, inner splits and classifier seeds) and count how often one run's mean of an arm lies inside the other
run's 95% interval, for accuracies and for the paired differences against real and against tuned classic.

    python benchmarks/bench_trust.py --data runs/bench_data --out runs/trust_sim             # the simulated set
    python benchmarks/bench_trust.py --data runs/bench_data --figures --out runs/trust_fig   # as jet figure JPEGs

`--figures` first renders every image of `--data` the way measured sets are published: a matplotlib figure with time
and Doppler axes, tick labels, a title (the same for all), a jet colorbar and white margins, saved as JPEG (quality
85), with the subjects in metadata.csv. Writes benchmarks/results/<name of --out>.json (or `--results`).
"""
import argparse, csv, json, math, sys, time
from pathlib import Path


def make_figures(src:Path, dst:Path, dpi:int=60):
    "Every image of `src` as a jet figure JPEG under `dst` (same classes and subjects)."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image
    rows = list(csv.DictReader(open(src/'metadata.csv')))
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for r in rows:
        a = np.asarray(Image.open(src/r['file']).convert('RGB'))
        fig, ax = plt.subplots(figsize=(4, 3), dpi=dpi)
        ax.imshow(a, aspect='auto', extent=(0, 3, -3, 3))
        ax.set(xlabel='time (s)', ylabel='velocity (m/s)', title='micro-Doppler signature')   # never the class
        fig.colorbar(plt.cm.ScalarMappable(cmap='jet', norm=plt.Normalize(-40, 0)), ax=ax, label='dB')
        fig.tight_layout()
        name = Path(r['file']).with_suffix('.jpg')
        (dst/name).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(dst/name, format='jpg', pil_kwargs=dict(quality=85)); plt.close(fig)
        out.append(dict(file=name.as_posix(), **{'class': r['class']}, subject=r['subject']))
    with open(dst/'metadata.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=['file', 'class', 'subject']); w.writeheader(); w.writerows(out)
    return dst


def inside(a:dict, b:dict) -> dict:
    "For each interval of run `a`, whether run `b`'s mean lies in it (None where either is missing)."
    got = {}
    for arm, per in a['accuracy'].items():
        for k, v in per.items():
            w = b['accuracy'][arm][k]
            ok = v and w and math.isfinite(v['half'])
            got[f'accuracy/{arm}/{k}'] = None if not ok else v['lo'] <= w['mean'] <= v['hi']
    for base, arms in a['differences'].items():
        for arm, per in arms.items():
            for k, v in per.items():
                w = b['differences'][base][arm][k]
                ok = v and w and math.isfinite(v['half'])
                got[f'{base}/{arm}/{k}'] = None if not ok else v['lo'] <= w['mean'] <= v['hi']
    return got


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data', required=True, help='a class-folder dataset with subjects in metadata.csv')
    p.add_argument('--out', required=True, help='a folder for the figure set and the two runs')
    p.add_argument('--figures', action='store_true', help='render the data as jet figure JPEGs first')
    p.add_argument('--preset', default='quick'); p.add_argument('--seeds', default='0,1', help='two split seeds')
    p.add_argument('--results', default=None, help='where the JSON goes (default benchmarks/results/<out folder name>.json)')
    a = p.parse_args()
    from mdaug.experiments import benchmark, bench_settings
    out = Path(a.out); data = Path(a.data)
    if a.figures:
        data = out/'figures' if (out/'figures'/'metadata.csv').is_file() else make_figures(data, out/'figures')
    runs, secs = {}, {}
    for seed in map(int, a.seeds.split(',')):
        t = time.time()
        benchmark(str(data), str(out/f'seed{seed}'), bench_settings(a.preset, split_seed=seed), progress=False)
        secs[seed] = round(time.time() - t, 1)
        runs[seed] = json.loads((out/f'seed{seed}'/'results.json').read_text())
        print(f"split seed {seed}: {secs[seed]:.0f} s", flush=True)
    s0, s1 = runs
    both = {**{f'{s0} holds {s1}: {k}': v for k, v in inside(runs[s0], runs[s1]).items()},
            **{f'{s1} holds {s0}: {k}': v for k, v in inside(runs[s1], runs[s0]).items()}}
    judged = [v for v in both.values() if v is not None]
    res = dict(data=str(data), preset=a.preset, seconds=secs, covered=sum(judged), judged=len(judged),
               share=sum(judged) / max(len(judged), 1), misses=[k for k, v in both.items() if v is False],
               accuracy={seed: {arm: {k: v and v['mean'] for k, v in per.items()}
                                for arm, per in r['accuracy'].items()} for seed, r in runs.items()})
    dest = Path(a.results or f"benchmarks/results/{out.name}.json")
    dest.parent.mkdir(parents=True, exist_ok=True); dest.write_text(json.dumps(res, indent=1))
    print(f"{res['covered']} of {res['judged']} means of one run inside the other run's 95% intervals "
          f"({res['share']:.0%}); misses: {res['misses']}; {dest}")


if __name__ == '__main__': sys.exit(main())
