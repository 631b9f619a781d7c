"Image-to-image variations (issue 20, item 2): k variations of each real image, each row naming its source and its subject."
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mdaug.cli import main
from mdaug.data import SpectrogramDataset, split_dataset
from mdaug.pipeline import load_pipeline
from mdaug.generate import generate, augment, regenerate, read_rows
from test_train_fixtures import make_data, make_model


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp('model')/'model')


@pytest.fixture(scope='module')
def real(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp('real')/'real', n_per_class=2)


@pytest.mark.parametrize('sampler', ['ddim', 'ddpm', 'dpmpp_2m'])
def test_variations_of_each_image_regenerate_bit_for_bit(model, real, tmp_path, sampler):
    out = generate(str(model), str(tmp_path/'var'), source=str(real), per_image=3, strength=0.5, sampler=sampler, steps=4,
                   batch_size=4, progress=False)
    rows = read_rows(out)
    files = sorted(p.resolve() for p in real.rglob('*.png'))
    assert len(rows) == 3 * len(files) and Counter(r['source'] for r in rows) == {str(f): 3 for f in files}
    for r in rows:
        src = Path(r['source'])
        assert r['class'] == src.parent.name and r['subject'] == src.stem.split('_')[0] and r['strength'] == '0.5'
    for r in rows[::5]:
        assert np.array_equal(np.array(regenerate(r, model)), np.array(Image.open(out/r['file']))), r['file']


def test_low_strength_stays_near_its_source():
    "With the shipped model: at strength 0.2 each variation is nearest its own source, and nearer than at strength 1."
    from mdaug.core import image_to_tensor
    from mdaug.data import sample_data
    pipe = load_pipeline(device='cpu')
    files = [sorted((sample_data()/c).glob('*.png'))[0] for c in ('walk', 'drone', 'box', 'jump')]
    x = torch.stack([image_to_tensor(Image.open(f), pipe.channels) for f in files])
    labels = [f.parent.name for f in files]
    run = lambda s: pipe(labels, num_inference_steps=10, image=x, strength=s, generator=torch.Generator().manual_seed(0),
                         output_type='pt', progress=False).images * 2 - 1
    near, far = torch.cdist(run(0.2).flatten(1), x.flatten(1)), torch.cdist(run(1.).flatten(1), x.flatten(1))
    assert (near.argmin(1) == torch.arange(len(x))).all()
    assert (near.diagonal() < far.diagonal()).all()


def test_augment_with_variations_keeps_subjects_apart(model, real, tmp_path):
    out = augment(str(real), str(model), str(tmp_path/'aug'), ratio=2, strength=0.4, steps=3, progress=False)
    rows = read_rows(out)
    gen = [r for r in rows if r['generated'] == '1']
    assert Counter(r['source'] for r in gen) == {r['source']: 2 for r in rows if r['generated'] == '0'}
    assert all(r['subject'] in ('s0', 's1') for r in gen)
    ds = SpectrogramDataset(out)
    tr, va = split_dataset(ds, 0.5, seed=0)
    assert {ds.subjects[i] for i in tr}.isdisjoint({ds.subjects[i] for i in va})   # no variation of a held-out subject in training


@pytest.mark.parametrize('args,msg', [(('--strength', 0), 'strength must be above 0'), (('--strength', 1.5), 'at most 1'),
                                      (('--strength', 'nan'), 'finite'), (('--per-image', 0), 'per_image must be at least 1')])
def test_bad_variation_settings(model, real, tmp_path, capsys, args, msg):
    rc = main(['generate', str(model), '--out', str(tmp_path/'v'), '--source', str(real), *map(str, args), '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path/'v').exists()


def test_sources_of_another_size_say_how_to_prep(model, tmp_path, capsys):
    big = make_data(tmp_path/'big', n_per_class=1, size=48)
    rc = main(['generate', str(model), '--out', str(tmp_path/'v'), '--source', str(big), '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 2 and 'is 48x48' in err and 'mdaug prep' in err and '--image-size 32' in err, err
    assert not (tmp_path/'v').exists()
    rc = main(['augment', str(big), str(model), '--out', str(tmp_path/'a'), '--ratio', '1', '--strength', '0.5', '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 2 and 'mdaug prep' in err and not (tmp_path/'a').exists(), err


def test_strength_needs_a_source(model):
    pipe = load_pipeline(model, device='cpu')
    with pytest.raises(ValueError, match='pass image='): pipe([0], num_inference_steps=2, strength=0.5, progress=False)
