"Filters of generated images: classifier sifting, the feature filter (near copies, outliers, other class), combined."
import math, subprocess, sys

import pytest
import torch

from mdaug.core import save_json
from mdaug.data import sample_data
from mdaug.evaluate import (FEATURE_REASONS, ClassifierSettings, combine, confidence_filter, feature_filter,
                            feature_folds, load_images, merge_folds, real_band, sift_generated, split_by_subject,
                            train_classifier)
from mdaug.experiments import BenchSettings


@pytest.fixture(scope="module")
def trained():
    "The sample data at 32 px split by subject, a small classifier of the training part, and one of each of its halves."
    real = load_images(sample_data(), 32, progress=False)
    tr, _ = split_by_subject(real, 1 / 3)
    train = real.subset(tr)
    fit = lambda r: train_classifier(r.x, r.y, len(train.classes), ClassifierSettings(steps=30, input_size=32))
    return train, fit(train), [(i, fit(train.subset(i))) for i in feature_folds(train)]


def line(points, c, dim=4):
    "Feature vectors on the first axis at `points`, class `c` (the other axes put each class far from the others)."
    f = torch.zeros(len(points), dim, dtype=torch.float64)
    f[:, 0], f[:, 1 + c] = torch.tensor(points, dtype=torch.float64), 100.
    return f, torch.full((len(points),), c)


def test_copy_is_a_near_copy_and_noise_an_outlier(trained):
    train, clf, folds = trained
    first = [int((train.y == c).nonzero()[0]) for c in range(len(train.classes))]
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(len(first), *train.x.shape[1:], generator=g) * 2 - 1
    gen = train.subset(first + first)                     # labels and names of two images per class
    gen.x = torch.cat([train.x[first], noise])            # an exact copy of a real image, and pure noise
    v = sift_generated(clf, gen, train, 0.8, folds=folds)
    n, fv = len(first), v['counts']['features']
    assert fv['near copy'] == [1] * n and fv['outlier'] == [1] * n, fv   # each class's copy and noise image
    assert v['reason'] == ['dropped'] * 2 * n and v['kept'] == []
    for counts in v['counts'].values(): assert [sum(x) for x in zip(*counts.values())] == [2] * n   # they add up


def test_in_band_is_kept_and_counts_add_up():
    real0, y0 = line([0, 1, 3, 6, 10], 0)               # nearest-other distances 1, 1, 2, 3, 4
    real1, y1 = line([0, 2, 4, 6], 1)                    # 2, 2, 2, 2
    rf, rl = torch.cat([real0, real1]), torch.cat([y0, y1])
    band = real_band(rf, rl, 2, 0.05, 0.95)
    assert torch.allclose(band, torch.tensor([[1., 3.8], [2., 2.]], dtype=torch.float64))
    gf, gl = line([12.5, 10.2, 30., 6.], 0)              # in the band (2.5), near copy (.2), outlier (20), a real one
    g1, _ = line([8.], 1)                                # class 1 at distance 2: on the cut, kept
    gen, lab = torch.cat([gf, g1]), torch.cat([gl, torch.tensor([1])])
    v = feature_filter(gen, lab, rf, rl)
    assert v['reason'] == ['kept', 'near copy', 'outlier', 'near copy', 'kept']
    assert v['kept'] == [0, 4]
    assert v['counts'] == {'kept': [1, 1], 'near copy': [2, 0], 'outlier': [1, 0], 'other class': [0, 0]}
    assert set(v['counts']) == set(FEATURE_REASONS)
    assert torch.allclose(v['dist'], torch.tensor([2.5, .2, 20., 0., 2.], dtype=torch.float64))
    off = feature_filter(gen, lab, rf, rl, low=0., high=1.)   # both cuts off: everything nearest its own class is kept
    assert off['kept'] == [0, 1, 2, 3, 4]


def test_other_class_and_a_class_without_band():
    real0, y0 = line([0, 1, 3], 0)
    real1, y1 = line([5], 1)                             # one real image: no band, nothing is cut for this class
    rf, rl = torch.cat([real0, real1]), torch.cat([y0, y1])
    wrong = rf[3:4].clone()                              # labelled class 0, but it is class 1's real image
    far1, _ = line([500.], 1)
    gen, lab = torch.cat([wrong, far1]), torch.tensor([0, 1])
    v = feature_filter(gen, lab, rf, rl, low=0., high=1.)
    assert v['reason'] == ['other class', 'kept']
    assert math.isnan(v['band'][1, 0])
    assert feature_filter(gen, lab, rf, rl, low=0., high=1., other_class=False)['reason'] == ['kept', 'kept']


def test_band_of_held_images_and_merged_folds():
    real0, y0 = line([0, 10], 0)                         # the references
    held0, h0 = line([1, 2, 3, 4, 5], 0)                 # new subjects, 1 to 5 from the nearest reference
    band = real_band(real0, y0, 1, 0.05, 0.95, held0, h0)
    assert torch.allclose(band, torch.tensor([[1.2, 4.8]], dtype=torch.float64))
    gen, lab = line([10.5, 13., 25.], 0)                 # near copy (.5), in the band (3), outlier (15)
    v = feature_filter(gen, lab, real0, y0, held_feats=held0, held_labels=h0)
    assert v['reason'] == ['near copy', 'kept', 'outlier']
    w = dict(v, reason=['kept', 'outlier', 'other class'])   # a second fold's verdict
    m = merge_folds(v, w)                                # near copy in any fold, dropped otherwise only by all
    assert m['reason'] == ['near copy', 'kept', 'outlier'] and m['kept'] == [1]
    assert m['counts'] == {'kept': [1], 'near copy': [1], 'outlier': [1], 'other class': [0]}


def test_confidence_and_combine():
    probs = torch.tensor([[.9, .1], [.6, .4], [.2, .8]])
    labels = torch.tensor([0, 0, 1])
    c = confidence_filter(probs, labels, 0.8)
    assert c['reason'] == ['kept', 'unsure', 'kept'] and c['counts'] == {'kept': [1, 1], 'unsure': [1, 0]}
    f = dict(reason=['near copy', 'kept', 'kept'], labels=[0, 0, 1], counts={'kept': [1, 1], 'near copy': [1, 0]})
    both = combine(classifier=c, features=f)
    assert both['kept'] == [2]
    assert both['counts']['combined'] == {'kept': [0, 1], 'dropped': [2, 0]}
    assert both['counts']['classifier'] == c['counts'] and both['counts']['features'] == f['counts']
    with pytest.raises(ValueError, match='same images'): combine(a=c, b=dict(f, reason=['kept']))


@pytest.mark.parametrize("kw,msg", [(dict(filter_low=-0.1), "filter_low must be at least 0"),
                                    (dict(filter_high=float('nan')), "filter_high must be a finite number"),
                                    (dict(filter_low=0.5, filter_high=0.4), "filter_low must be below filter_high"),
                                    (dict(filter_other_class='yes'), "filter_other_class must be true or false")])
def test_settings_are_checked(kw, msg):
    with pytest.raises(ValueError, match=msg) as e: BenchSettings(**kw).validate()
    assert len(str(e.value).splitlines()) == 1


def test_filter_options_on_the_command_line():
    r = subprocess.run([sys.executable, '-m', 'mdaug.cli', 'benchmark', '--help'], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    for o in ('--filter-low', '--filter-high', '--filter-other-class', '--sift-thresholds', '--ratios', '--folds'): assert o in r.stdout, o
