"The baseline without a generator: a classifier pretrained on other (simulated) classes, fine-tuned on the user's."
import pickle
from dataclasses import replace

import pytest
import torch

import mdaug.evaluate as ev
from mdaug.core import load_json
from mdaug.evaluate import (ClassifierSettings, Images, SpecCNN, load_classifier, predict, pretrain_classifier,
                            save_classifier, train_classifier)
from mdaug.learner import FuncCB

S = ClassifierSettings(steps=12, batch_size=8, input_size=16, width=4, n_features=16)   # tiny and quick


def lines(classes=4, n_per_class=4, offset=0, side=32, seed=0):
    "Class c is a bright horizontal line at Doppler row `offset` + 6c in faint noise."
    g = torch.Generator().manual_seed(seed)
    x = -1 + 0.1 * torch.rand(classes * n_per_class, 3, side, side, generator=g)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    for i, c in enumerate(y.tolist()): x[i, :, offset + 6 * c] = 1
    return Images(x, y, [f'c{c}' for c in range(classes)], [f'c{c}/{i}.png' for i, c in enumerate(y.tolist())],
                  ['s1'] * len(y))


@pytest.fixture(scope='module')
def pre():
    "A classifier of 4 'pool' classes: the body every fine-tune below starts from."
    pool = lines(4, seed=1)
    return train_classifier(pool.x, pool.y, 4, replace(S, seed=5), device='cpu')


def at_start(store:dict):
    "A callback that keeps a copy of the model's state as training begins (after the body was loaded)."
    return FuncCB(before_fit=lambda learn: store.update({k: v.clone() for k, v in learn.model.state_dict().items()}))


def same(a:dict, b:dict, prefix:str) -> bool:
    return all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a if k.startswith(prefix))


def test_body_copied_and_head_new(pre):
    user = lines(3, offset=2)
    start, scratch = {}, {}
    m = train_classifier(user.x, user.y, 3, S, init=pre, device='cpu', cbs=[at_start(start)])
    train_classifier(user.x, user.y, 3, S, device='cpu', cbs=[at_start(scratch)])
    body = {k: v for k, v in pre.state_dict().items() if k.startswith('body.')}
    assert body and same(body, start, 'body.')                                 # every body tensor, BN statistics too
    assert start['head.weight'].shape == (3, S.n_features) and pre.head.weight.shape == (4, S.n_features)
    assert same(scratch, start, 'head.')                  # the head is new, seeded exactly as a scratch classifier's
    assert not same(body, m.state_dict(), 'body.')        # body_lr 1: the body trains too
    assert m.config['n_classes'] == 3 and not m.training


def test_init_is_not_changed_and_every_form_agrees(pre, tmp_path):
    user = lines(3, offset=2)
    before = {k: v.clone() for k, v in pre.state_dict().items()}
    a = train_classifier(user.x, user.y, 3, S, init=pre, device='cpu')
    assert same(before, pre.state_dict(), '')                                   # fine-tuning copies, never shares
    folder = save_classifier(pre, tmp_path/'pre', classes=['a', 'b', 'c', 'd'])
    for init in (pre.state_dict(), folder, str(folder)):
        b = train_classifier(user.x, user.y, 3, S, init=init, device='cpu')
        assert same(a.state_dict(), b.state_dict(), ''), type(init)


def test_deterministic_with_a_seed(pre):
    user = lines(3, offset=2)
    fit = lambda seed, **kw: train_classifier(user.x, user.y, 3, replace(S, seed=seed, **kw), init=pre, device='cpu')
    for kw in ({}, dict(classic=True), dict(body_lr=.1)):
        assert same(fit(3, **kw).state_dict(), fit(3, **kw).state_dict(), ''), kw
        assert not same(fit(3, **kw).state_dict(), fit(4, **kw).state_dict(), 'head.'), kw


def test_body_lr(pre):
    user = lines(3, offset=2)
    fit = lambda blr: train_classifier(user.x, user.y, 3, replace(S, body_lr=blr), init=pre, device='cpu')
    frozen, slow, full = fit(0.), fit(.1), fit(1.)
    weights = lambda m: {k: v for k, v in m.state_dict().items() if k.startswith('body.') and 'running' not in k
                         and 'num_batches' not in k}
    assert same(weights(pre), frozen.state_dict(), 'body.')           # 0: the body's weights stay as pretrained
    moved = lambda m: sum((m.state_dict()[k] - v).abs().sum().item() for k, v in weights(pre).items())
    assert 0 < moved(slow) < moved(full)                              # a smaller multiple moves the body less
    for bad in (-.1, float('nan'), 'fast'):
        with pytest.raises(ValueError, match='classifier body_lr must') as e: replace(S, body_lr=bad).validate()
        assert '\n' not in str(e.value)


def test_architecture_mismatch_is_one_line(pre):
    user = lines(3, offset=2)
    for kw, fix in [(dict(width=8), 'train with width=4 in ClassifierSettings'),
                    (dict(n_features=32, input_size=24), 'train with n_features=16, input_size=16 in Classifier'),
                    (dict(input_size=24), 'train with input_size=16')]:
        with pytest.raises(ValueError) as e:
            train_classifier(user.x, user.y, 3, replace(S, **kw), init=pre, device='cpu')
        msg = str(e.value)
        assert '\n' not in msg and fix in msg, msg
        assert 'the pretrained classifier (channels 3, width 4, n_features 16, input_size 16)' in msg, msg  # both named
    gray = user.x[:, :1]
    with pytest.raises(ValueError, match=r'\(channels 1, .*load the images with channels=3$') as e:
        train_classifier(gray, user.y, 3, S, init=pre, device='cpu')
    with pytest.raises(ValueError, match='width 4, n_features 16\\) does not fit .*width 8, n_features 16\\)'):
        train_classifier(user.x, user.y, 3, replace(S, width=8), init=pre.state_dict(), device='cpu')  # no input size
    with pytest.raises(ValueError, match="init is not a SpecCNN's state dict"):
        train_classifier(user.x, user.y, 3, S, init={'w': torch.zeros(3)}, device='cpu')
    with pytest.raises(ValueError, match='init must be a trained SpecCNN.*got int'):
        train_classifier(user.x, user.y, 3, S, init=3, device='cpu')


def test_pretrain_saves_loads_and_never_unpickles(tmp_path, monkeypatch):
    pool = lines(4, seed=1)
    a = pretrain_classifier(pool, tmp_path/'pre', S, device='cpu')
    files = sorted(p.name for p in (tmp_path/'pre').iterdir())
    assert files == ['config.json', 'model.safetensors'], files
    cfg = load_json(tmp_path/'pre'/'config.json')
    assert cfg['classes'] == pool.classes and cfg['settings']['steps'] == S.steps and cfg['width'] == S.width
    def refuse(*a, **k): raise AssertionError('unpickled')
    monkeypatch.setattr(pickle, 'load', refuse); monkeypatch.setattr(pickle, 'loads', refuse)
    monkeypatch.setattr(torch, 'load', refuse)
    monkeypatch.setattr(ev, 'train_classifier', refuse)                # the same pool and settings: loaded, not trained
    b = pretrain_classifier(pool, tmp_path/'pre', S, device='cpu')
    assert isinstance(b, SpecCNN) and same(a.state_dict(), b.state_dict(), '')
    assert torch.equal(predict(a, pool.x), predict(load_classifier(tmp_path/'pre'), pool.x))
    with pytest.raises(AssertionError, match='unpickled'):              # other settings: trained again
        pretrain_classifier(pool, tmp_path/'pre', replace(S, steps=20), device='cpu')


def test_missing_folder_says_so():
    with pytest.raises(FileNotFoundError, match='holds no classifier'):
        train_classifier(torch.zeros(2, 3, 16, 16), torch.tensor([0, 1]), 2, S, init='/nonexistent/pre')
