"Quality metrics that cannot pass garbage: noise, blobs, mislabelled images fail every target; unseen real ones pass."
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from mdaug.data import sample_data
from mdaug.evaluate import ClassifierSettings, _check_sets, load_images, quality, quality_lines, train_classifier

FID_RATIO = 'FID(generated) <= 2x the real-vs-real floor'


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    "Tiny tensors: one thread is fastest, and on a shared machine more threads only contend."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def sets(one_thread):
    """The sample data at 32 px: the last subject held out; of the other two subjects, half the images of each subject
    and class train the classifier (the "generator's training set") and the other half, seen by no model, stand in for
    a perfect generator. Garbage: noise, smooth random blobs, and the stand-in's images labelled as the next class."""
    real = load_images(sample_data(), 32, progress=False)
    last = sorted(set(real.subjects))[-1]
    seen, tr, st = {}, [], []
    for i, s in enumerate(real.subjects):
        if s == last: continue
        key = (s, int(real.y[i])); seen[key] = seen.get(key, 0) + 1
        (tr if seen[key] % 2 else st).append(i)
    train, standin = real.subset(tr), real.subset(st)
    held = real.subset([i for i, s in enumerate(real.subjects) if s == last])
    clf = train_classifier(train.x, train.y, len(real.classes), ClassifierSettings(steps=60, input_size=32))
    g = torch.Generator().manual_seed(0)
    blob = torch.randn(len(standin), 3, 4, 4, generator=g)
    blob = F.interpolate(blob, size=(32, 32), mode='bicubic', align_corners=False)
    gens = dict(noise=replace(standin, x=torch.rand(standin.x.shape, generator=g) * 2 - 1),
                blobs=replace(standin, x=(blob / blob.abs().amax((1, 2, 3), keepdim=True)).clamp(-1, 1)),
                shuffled=replace(standin, y=(standin.y + 1) % len(real.classes)), real=standin)
    return clf, train, held, gens


@pytest.fixture(scope="module")
def scored(sets):
    clf, train, held, gens = sets
    return {k: quality(clf, train, held, v, seed=0, bootstrap=100)[0] for k, v in gens.items()}


@pytest.mark.parametrize("name", ["noise", "blobs", "shuffled"])
def test_garbage_fails_every_target(scored, name):
    num = scored[name]
    assert {FID_RATIO, "KID(generated)'s interval reaches the floor's"} <= set(num['targets'])
    assert not any(t['met'] for t in num['targets'].values()), {k: v['why'] for k, v in num['targets'].items()}
    assert num['warnings'] and any('no target can be met' in w for w in num['warnings'])


def test_unseen_real_images_pass(scored):
    num = scored['real']
    assert all(t['met'] for t in num['targets'].values()), {k: v['why'] for k, v in num['targets'].items()}


def test_numbers_and_lines(scored):
    num = scored['real']
    n = num['n']
    assert n['floor'] == n['generated_scored'] and n['dim'] == min(n['features'], n['floor'] // 2)   # equal sizes
    assert any('feature dimensions' in w for w in num['warnings'])                                   # n < D is said
    for s in ('floor', 'generated'):
        v = num[s]
        assert {'fid', 'kid', 'kid_std', 'fid_ci', 'kid_ci', 'precision', 'recall', 'density', 'coverage'} <= set(v)
        assert v['kid_ci'][0] <= v['kid'] <= v['kid_ci'][1]   # KID's bootstrap is unbiased: it holds the value
    assert {'fid_ratio', 'classifier', 'memorisation'} <= set(num)
    text = '\n'.join(quality_lines(num))
    assert text.index('KID') < text.index('FID on') and 'not met' not in text and 'Warnings' in text
    assert 'not met' in '\n'.join(quality_lines(scored['noise']))


def test_too_small_fails_first(sets):
    _, train, held, gens = sets
    r = gens['real']
    tiny = r.subset([int((r.y == c).nonzero()[0]) for c in range(len(r.classes))])   # one per class: draws of 7
    with pytest.raises(ValueError, match='k=7 neighbours need more than 7'): _check_sets(train, held, tiny, 7, 0)
