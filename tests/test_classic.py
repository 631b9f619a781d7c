"Classic augmentation as a tuned baseline: each op at its strength, recipes in the settings, `tune_classic`'s choice."
import json
from dataclasses import asdict, replace
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import mdaug.evaluate as ev
from mdaug.evaluate import (CLASSIC_DEFAULT, CLASSIC_GRID, CLASSIC_MAX, CLASSIC_OPS, ClassicAugCB, ClassifierSettings,
                            Images, classic_augment, classic_recipe, predict, recipe_label, shift_images,
                            train_classifier, tune_classic)
from mdaug.learner import EvalCB


def batch(n=6, k=3, side=16, seed=0):
    "Random images in [-1, 1] and one-hot soft targets."
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, side, side, generator=g) * 2 - 1, F.one_hot(torch.arange(n) % k, k).float()


def lines(subject, n_per_class=6, classes=4, side=32, seed=0):
    "Class c is a bright horizontal line at Doppler row 4 + 8c in faint noise: the class is the Doppler position."
    g = torch.Generator().manual_seed(seed)
    x = -1 + 0.1 * torch.rand(classes * n_per_class, 1, side, side, generator=g)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    for i, c in enumerate(y.tolist()): x[i, :, 4 + 8 * c] = 1
    return Images(x, y, [f'c{c}' for c in range(classes)], [f'{subject}/{i}.png' for i in range(len(y))],
                  [subject] * len(y))


def test_draws_are_reproducible_with_a_generator():
    x, y = batch()
    for recipe in (None, True, CLASSIC_OPS, {'doppler_shift': .2, 'mixup': .4}):
        a = classic_augment(x, torch.Generator().manual_seed(3), recipe, y)
        b = classic_augment(x, torch.Generator().manual_seed(3), recipe, y)
        c = classic_augment(x, torch.Generator().manual_seed(4), recipe, y)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), recipe
        assert not torch.equal(a[0], c[0]), recipe
    assert classic_augment(x, torch.Generator().manual_seed(3)).shape == x.shape   # the old call: the default recipe


def test_each_op_at_strength_0_is_the_identity():
    x, y = batch()
    g = torch.Generator().manual_seed(0)
    for k in CLASSIC_OPS:
        xa, ya = classic_augment(x, g, {k: 0}, y)
        assert torch.equal(xa, x) and torch.equal(ya, y), k
    for off in ({}, False, {k: 0 for k in CLASSIC_OPS}): assert torch.equal(classic_augment(x, g, off), x)
    for k, v in CLASSIC_MAX.items():   # and at full strength each op does something, and stays in range
        xa, ya = classic_augment(x, g, {k: v}, y)
        assert not torch.equal(xa, x) and xa.min() >= -1 and xa.max() <= 1, k
        assert torch.allclose(ya.sum(1), torch.ones(len(y))), k


def test_shifts_do_not_wrap_but_the_roll_does():
    x = torch.full((64, 3, 16, 16), -1.)
    x[:, :, 0], x[:, :, :, -1] = 1, .5                     # a bright top row, a grey last column
    g = torch.Generator().manual_seed(0)
    d = classic_augment(x, g, {'doppler_shift': .5})
    assert d[:, :, -1, :-1].max() == -1                    # the top row never reaches the bottom
    assert (d[:, :, 0] == 1).float().mean() < 1            # though it did move: vacated rows repeat the edge row
    t = classic_augment(x, g, {'time_shift': .5})
    assert t[:, :, 1:, 0].max() == -1                      # the last column never reaches the first
    r = classic_augment(x, g, {'time_roll': .5})
    assert (r[:, :, 1:, 0] == .5).any()                    # a roll brings it round
    assert torch.equal(shift_images(x[:1], torch.tensor([-1]), -2, wrap=True)[0, :, -1], x[0, :, 0])
    assert torch.equal(shift_images(x[:1], torch.tensor([-1]), -2)[0, :, -1], x[0, :, -1])
    rows = torch.arange(64.).view(1, 1, 64, 1).expand(2, 1, 64, 8)   # each row holds its index
    out = shift_images(rows, torch.tensor([5, -5]), -2, generator=g)[:, 0, :, 0]
    assert torch.equal(out[0, 5:], torch.arange(59.)) and set(out[0, :5].tolist()) <= {0, 1, 2, 3}   # top edge band
    assert torch.equal(out[1, :59], torch.arange(5., 64.)) and set(out[1, 59:].tolist()) <= {60, 61, 62, 63}


def test_mixup_needs_labels():
    x, _ = batch()
    with pytest.raises(ValueError, match='mixup blends the labels'): classic_augment(x, None, {'mixup': .3})


def test_recipe_validation_is_one_clear_line():
    for bad, msg in [({'bogus': 1}, "unknown classic augmentation 'bogus': use time_roll"),
                     ({'noise': 2}, "classic augmentation noise must be at least 0 and at most 1"),
                     ({'doppler_shift': -.1}, "classic augmentation doppler_shift must be at least 0"),
                     ({'mixup': 'strong'}, "classic augmentation mixup must be a number"),
                     ('yes', "classic must be a bool or a dict")]:
        with pytest.raises(ValueError, match=msg) as e: ClassifierSettings(classic=bad).validate()
        assert '\n' not in str(e.value)
    x, y = batch()
    with pytest.raises(ValueError, match="unknown classic augmentation 'bogus'"):
        train_classifier(x, y.argmax(1), 3, ClassifierSettings(steps=10, classic={'bogus': 1}))
    assert classic_recipe(True) == CLASSIC_DEFAULT and classic_recipe(False) == {} == classic_recipe(None)
    assert list(classic_recipe({'noise': .1, 'time_roll': .2, 'mixup': 0})) == ['time_roll', 'noise']   # applied order


def test_settings_with_a_recipe_round_trip_through_json():
    s = ClassifierSettings(steps=50, classic={'doppler_shift': .02, 'mixup': .2}).validate()
    back = ClassifierSettings(**json.loads(json.dumps(asdict(s)))).validate()
    assert back == s and back.classic == {'doppler_shift': .02, 'mixup': .2}
    for c in (True, False):
        assert ClassifierSettings(**json.loads(json.dumps(asdict(ClassifierSettings(classic=c))))).classic is c


def test_train_classifier_takes_bools_and_recipes():
    ims = lines('s1', 2)
    s = ClassifierSettings(steps=10, input_size=32)
    fit = lambda classic: predict(train_classifier(ims.x, ims.y, 4, replace(s, classic=classic)), ims.x)
    assert torch.equal(fit({}), fit(False))                          # an empty recipe is no augmentation, bit for bit
    assert not torch.equal(fit(True), fit(False))
    mixed = fit({'mixup': .4, 'noise': .05})                         # soft targets for the mixed batches
    assert mixed.shape == (len(ims), 4) and torch.isfinite(mixed).all()
    with pytest.raises(TypeError): train_classifier(ims.x, ims.y, 4, steps=10)   # settings only through the dataclass


# Computed with the hand-written loop that the `Learner` replaced (`train_classifier` of commit ade0fa8), seed 3: the
# port draws the batch order and then each batch's augmentation from one generator, in the same order: nothing moved.
OLD_LOOP = {  # recipe -> (probabilities of the first 4 images, sum of the state dict's floating-point entries)
    'none': ([0.28977, 0.32126, 0.38897, 0.29227, 0.32129, 0.38643,
              0.29134, 0.32128, 0.38738, 0.29216, 0.32129, 0.38655], 111.22767),
    'default': ([0.32402, 0.25543, 0.42055, 0.32158, 0.26181, 0.41661,
                 0.32412, 0.25201, 0.42386, 0.32298, 0.25889, 0.41812], 130.31931),
    'mixup': ([0.30018, 0.2948, 0.40502, 0.30678, 0.29257, 0.40066,
               0.30588, 0.29585, 0.39827, 0.31069, 0.29067, 0.39865], 98.25063)}


def test_learner_port_repeats_the_old_loop():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(12, 3, 32, 32, generator=g) * 2 - 1, torch.arange(12) % 3
    s = ClassifierSettings(steps=12, batch_size=5, input_size=16, width=4, n_features=16, seed=3, lr=3e-2)   # 5 of 12:
    recipes = dict(none=False, default=True, mixup={'time_shift': .25, 'doppler_shift': .05, 'mixup': .2})  # carry-over
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try:
        for name, r in recipes.items():
            m = train_classifier(x, y, 3, replace(s, classic=r), device='cpu')
            probs, total = OLD_LOOP[name]
            assert torch.allclose(predict(m, x[:4]).flatten(), torch.tensor(probs), atol=2e-5), name
            w = sum(v.double().sum().item() for v in m.state_dict().values() if v.is_floating_point())
            assert abs(w - total) < 1e-3, (name, w, total)
    finally: torch.set_num_threads(n)


def test_callbacks_watch_without_changing_the_classifier():
    ims = lines('s1', 2)
    s = ClassifierSettings(steps=10, input_size=32, classic={'mixup': .3, 'noise': .05})
    curve = EvalCB(3, lambda learn: dict(acc=float((predict(learn.model, ims.x).argmax(1) == ims.y).float().mean())))
    a = train_classifier(ims.x, ims.y, 4, s, device='cpu', cbs=[curve])
    b = train_classifier(ims.x, ims.y, 4, s, device='cpu')
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert [h['step'] for h in curve.history] == [3, 6, 9, 10] and not a.training
    b.train(); predict(b, ims.x); assert b.training                   # predict leaves the mode it found


def test_classic_aug_callback():
    x, y = batch()
    learn = SimpleNamespace(batch=(x, y.argmax(1)))   # what the Learner holds when `before_batch` runs
    ClassicAugCB({'mixup': .4}, 3, torch.Generator().manual_seed(0)).before_batch(learn)
    xa, ya = learn.batch
    assert ya.shape == (len(x), 3) and torch.allclose(ya.sum(1), torch.ones(len(x))) and not torch.equal(xa, x)
    learn.batch = (x, y.argmax(1)); ClassicAugCB({'noise': .05}, 3).before_batch(learn)
    assert learn.batch[1].dtype == torch.long and not torch.equal(learn.batch[0], x)   # hard labels kept without mixup


def test_tune_classic_keeps_no_augmentation_when_every_op_hurts():
    "The class is the Doppler row of a line: large Doppler shifts move it into the other classes' rows."
    train, val = lines('s1', seed=0), lines('s2', seed=1)
    r = tune_classic(train, val, ClassifierSettings(steps=60, input_size=32), grid={'doppler_shift': (.4, .5)})
    assert r['baseline'] == 1.0, r                                    # the task itself is easy
    assert max(v for k, v in r['scores'].items() if k != 'none') < r['baseline'] - r['margin'], r   # every op hurts
    assert (r['recipe'], r['chosen']) == ({}, 'none'), r
    assert set(r['scores']) == {'none', 'doppler_shift 0.4', 'doppler_shift 0.5'}   # one op: no pair to try


@pytest.fixture
def scripted(monkeypatch):
    "Replace training and scoring by a table label -> accuracy, so the choice itself is tested."
    table, asked = {}, []
    def fake_train(x, y, n, settings, **kw):
        asked.append(recipe_label(settings.classic)); return settings.classic
    monkeypatch.setattr(ev, 'train_classifier', fake_train)
    monkeypatch.setattr(ev, 'accuracy', lambda recipe, ims: (table.get(recipe_label(recipe), .5), None))
    return table, asked


def test_tune_classic_choice(scripted):
    table, asked = scripted
    train, val = lines('s1', 1), lines('s2', 1)                       # 4 validation images: one image is 0.25
    tune = lambda **kw: tune_classic(train, val, **{'margin': .05, **kw})
    table.update({'none': .6, 'noise 0.03': .5, 'noise 0.08': .4})
    r = tune()                                                        # every op hurts (all others score 0.5)
    assert (r['recipe'], r['chosen'], r['baseline']) == ({}, 'none', .6)
    assert len(asked) == len(r['scores']) == 2 + sum(map(len, CLASSIC_GRID.values()))
    table.clear(); asked.clear()
    table.update({'none': .5, 'noise 0.08': .7, 'doppler_shift 0.05': .65, 'doppler_shift 0.05 + noise 0.08': .9})
    r = tune()                                                        # the best strength of the two best ops, together
    assert asked[-1] == 'doppler_shift 0.05 + noise 0.08' and r['recipe'] == {'doppler_shift': .05, 'noise': .08}
    table['doppler_shift 0.05 + noise 0.08'] = .72                    # the pair within the margin of one op: one op
    assert tune()['recipe'] == {'noise': .08}
    table.clear(); table.update({'none': .5, 'noise 0.03': .53, 'mixup 0.2': .7, 'mixup 0.4': .7})
    assert tune()['chosen'] == 'mixup 0.2'                            # a tie between strengths: the milder
    assert tune(grid={'noise': (.03,)})['recipe'] == {}               # 0.03 over none is within the margin: none
    assert tune(grid={'noise': (.03,)}, margin=.01)['recipe'] == {'noise': .03}
    assert tune_classic(train, val, grid={'noise': (.03,)})['margin'] == .25   # default margin: one validation image


def test_tune_classic_refuses_bad_input(scripted):
    train = lines('s1', 1)
    for kw, msg in [(dict(val=train), 'other subjects'), (dict(val=lines('s2', 1), grid={'bogus': (1,)}), 'bogus'),
                    (dict(val=lines('s2', 1), grid={'noise': (0,)}), 'grid strength of noise must be above 0'),
                    (dict(val=lines('s2', 1), grid={'noise': (3,)}), 'at most 1')]:
        with pytest.raises(ValueError, match=msg): tune_classic(train, **kw)
    with pytest.raises(TypeError): tune_classic(train, lines('s2', 1), steps=3)   # settings only through the dataclass
