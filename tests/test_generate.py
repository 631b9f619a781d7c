"Generation to files: the pipeline is the sampler, rows regenerate bit for bit, augmented folders only grow and survive a crash."
import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from mdaug.core import save_json
from mdaug.data import sample_data
from mdaug.data import SpectrogramDataset
from mdaug.pipeline import MDaugPipeline, load_pipeline, model_id
from mdaug.generate import generate, regenerate, augment, read_rows, MARKER, JOURNAL
from mdaug.samplers import ddim_sample, dpmpp_2m_sample
from test_train_fixtures import make_data, make_model


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp('model')/'model')


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*.png'))}


@pytest.mark.parametrize('sampler,fn,kw', [('ddim', ddim_sample, dict(set_alpha_to_one=False)), ('dpmpp_2m', dpmpp_2m_sample, {})])
def test_pipeline_equals_sampler(model, sampler, fn, kw):
    "Same seed, same images: the pipeline's output is our sampler's latents decoded by the VQ-VAE, to the bit."
    pipe = load_pipeline(model, device='cpu')
    labels = torch.tensor([0, 2, 1])
    x = torch.randn(3, pipe.unet.config.in_channels, *pipe.latent_size(), generator=torch.Generator().manual_seed(7))
    z = fn(pipe.unet, x, pipe.scheduler.alphas_cumprod, steps=5, class_labels=labels, guidance_scale=3., disable=True, **kw)
    with torch.no_grad(): ref = (pipe.vqvae.decode(z / pipe.vqvae.config.scaling_factor).sample.clamp(-1, 1) / 2 + 0.5).clamp(0, 1)
    out = pipe(['drone', 'walk', 'run'], num_inference_steps=5, guidance_scale=3., sampler=sampler,
               generator=torch.Generator().manual_seed(7), output_type='pt', progress=False).images
    assert torch.equal(out, ref)


def test_pipeline_round_trip(model, tmp_path):
    pipe = MDaugPipeline.from_pretrained(model)
    assert pipe.classes == ['drone', 'run', 'walk']
    pipe.save_pretrained(tmp_path/'again')
    again = load_pipeline(tmp_path/'again', device='cpu')
    assert model_id(again) == model_id(pipe)
    kw = dict(num_inference_steps=2, output_type='np', progress=False)
    a = pipe([0, 1], generator=torch.Generator().manual_seed(0), **kw).images
    b = again([0, 1], generator=torch.Generator().manual_seed(0), **kw).images
    assert a.shape == (2, 32, 32, 3) and np.array_equal(a, b)


@pytest.mark.parametrize('sampler,eta', [('ddim', 0.), ('ddim', 1.), ('ddpm', 0.), ('plms', 0.)])
def test_regenerate_bit_for_bit(model, tmp_path, sampler, eta):
    "Every row of metadata.csv makes its PNG again, pixel for pixel, also with samplers that draw noise at every step."
    out = generate(str(model), str(tmp_path/'gen'), per_class=2, sampler=sampler, eta=eta, steps=3, batch_size=4, progress=False)
    rows = read_rows(out)
    assert len(rows) == 6 and len({r['file'] for r in rows}) == 6
    assert {r['seed'] for r in rows} == {'0', '1'}
    for r in rows:
        assert np.array_equal(np.array(regenerate(r, model)), np.array(Image.open(out/r['file']))), r['file']


def test_generate_never_overwrites(model, tmp_path):
    out = generate(str(model), str(tmp_path/'gen'), per_class=1, steps=2, progress=False)
    before = _digest(out)
    generate(str(model), str(out), per_class=1, classes='walk', steps=2, progress=False)
    after = _digest(out)
    assert all(after[k] == v for k, v in before.items()) and len(after) == len(before) + 1
    with pytest.raises(ValueError, match='seed 0 was used'): generate(str(model), str(out), per_class=1, seed=0, steps=2, progress=False)
    (tmp_path/'mine').mkdir(); (tmp_path/'mine'/'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='holds other files'): generate(str(model), str(tmp_path/'mine'), steps=2, progress=False)
    assert (tmp_path/'mine'/'notes.txt').read_text() == 'mine'


def test_augment_rerun_adds_and_never_clobbers(model, tmp_path):
    data = make_data(tmp_path/'real', n_per_class=4)
    real_before = _digest(data)
    out = augment(str(data), str(model), str(tmp_path/'aug'), per_class=6, steps=2, batch_size=4, progress=False)
    rows = read_rows(out)
    for c in ('drone', 'run', 'walk'):
        assert sum(r['class'] == c and r['generated'] == '0' for r in rows) == 4
        assert sum(r['class'] == c and r['generated'] == '1' for r in rows) == 2
    first = _digest(out)
    augment(str(data), str(model), str(out), per_class=6, steps=2, progress=False)          # same target: nothing to do
    assert _digest(out) == first and len(read_rows(out)) == 18
    augment(str(data), str(model), str(out), ratio=1.0, steps=2, progress=False)            # 4 generated per 4 real: 2 more per class
    rows = read_rows(out); now = _digest(out)
    assert len(rows) == 24 and len(now) == 24 and all(now[k] == v for k, v in first.items())
    seeds = [int(r['seed']) for r in rows if r['generated'] == '1']
    assert len({(r['seed'], r['index']) for r in rows if r['generated'] == '1'}) == 12 and min(seeds) == 0
    assert _digest(data) == real_before                                                     # the real data is untouched
    ds = SpectrogramDataset(out)
    assert len(ds) == 24 and ds.classes == ['drone', 'run', 'walk']
    with pytest.raises(ValueError, match='exactly one of'): augment(str(data), str(model), str(out), progress=False)
    with pytest.raises(ValueError, match='does not know'): augment(str(sample_data()), str(model), str(tmp_path/'x'), per_class=20, progress=False)


def test_augment_resumes_after_a_crash(model, tmp_path, monkeypatch):
    "A run killed after some batches keeps them; the next run removes half-written leftovers and finishes the job."
    data = make_data(tmp_path/'real', n_per_class=2)
    calls = {'n': 0}
    real_call = MDaugPipeline.__call__
    def dies_on_second_batch(self, *a, **k):
        calls['n'] += 1
        if calls['n'] == 2: raise KeyboardInterrupt
        return real_call(self, *a, **k)
    monkeypatch.setattr(MDaugPipeline, '__call__', dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        augment(str(data), str(model), str(tmp_path/'aug'), per_class=5, steps=2, batch_size=3, progress=False)
    out = tmp_path/'aug'
    kept = read_rows(out)
    assert sum(r['generated'] == '1' for r in kept) == 3                                    # the first batch made it
    # as if killed while writing batch 9: its journal names its files, one is on disk, one half-written under its temporary name
    save_json(dict(seed=9, files=['walk/gen_000009_000.png', 'walk/gen_000009_001.png']), out/JOURNAL)
    (out/'walk'/'gen_000009_000.png').write_bytes(b'a png of the killed batch')
    (out/'walk'/'.gen_000009_001.png.k2j3h4.tmp').write_bytes(b'half a png')
    monkeypatch.setattr(MDaugPipeline, '__call__', real_call)
    augment(str(data), str(model), str(out), per_class=5, steps=2, batch_size=3, progress=False)
    rows = read_rows(out)
    assert len(rows) == 15 and not (out/'walk'/'gen_000009_000.png').exists()
    assert not list(out.rglob('*.tmp')) and not (out/JOURNAL).exists()
    assert all(r in rows for r in kept)
    assert (out/MARKER).is_file()


def test_unconditional_model(tmp_path):
    "A model trained without labels: images in the root folder, no classes to choose, rows still regenerate, a flat folder augments."
    model = make_model(tmp_path/'uncond', classes=None)
    out = generate(str(model), str(tmp_path/'gen'), per_class=3, steps=2, batch_size=2, guidance_scale=3., progress=False)
    rows = read_rows(out)
    assert [r['file'] for r in rows] == ['gen_000000_000.png', 'gen_000000_001.png', 'gen_000001_000.png']
    assert {r['guidance_scale'] for r in rows} == {'1.0'}
    assert np.array_equal(np.array(regenerate(rows[2], model)), np.array(Image.open(out/rows[2]['file'])))
    with pytest.raises(ValueError, match='without classes'): generate(str(model), str(tmp_path/'g2'), classes='walk', progress=False)
    flat = tmp_path/'flat'; flat.mkdir()
    for i in range(2): Image.new('RGB', (32, 32), (i * 80, 0, 0)).save(flat/f'x_{i}.png')
    aug = augment(str(flat), str(model), str(tmp_path/'aug'), ratio=2, steps=2, progress=False)
    assert len(SpectrogramDataset(aug)) == 6 and sum(r['generated'] == '1' for r in read_rows(aug)) == 4


def test_fit_killed_in_the_ldm_stage_resumes(tmp_path):
    "`mdaug fit` SIGKILLed after the diffusion stage's first checkpoint: the rerun redoes no finished stage and completes the model."
    import os, signal, subprocess, sys, time, json
    from conftest import ROOT
    data, out = make_data(tmp_path/'data'), tmp_path/'run'
    cmd = [sys.executable, '-m', 'mdaug.cli', 'fit', str(data), '--out', str(out), '--profile', 'ci', '--ldm-steps', '40', '--no-progress']
    env = os.environ | {'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while p.poll() is None and not list((out/'ldm'/'checkpoints').glob('checkpoint-*')) and time.time() - t0 < 300: time.sleep(0.02)
    assert p.poll() is None, p.stderr.read().decode()[-3000:]
    os.kill(p.pid, signal.SIGKILL); p.wait()
    state = json.loads((out/'fit.json').read_text())
    assert set(state['done']) == {'prepare', 'vqvae'} and not (out/'model').exists(), state
    vq_mtime = (out/'vq'/'best'/'config.json').stat().st_mtime_ns
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert set(json.loads((out/'fit.json').read_text())['done']) == {'prepare', 'vqvae', 'ldm'}
    assert (out/'vq'/'best'/'config.json').stat().st_mtime_ns == vq_mtime                   # the VQ-VAE was not trained again
    logs = [json.loads(l) for l in (out/'ldm'/'log.jsonl').read_text().splitlines()]
    assert [o['step'] for o in logs] == list(range(1, 41))
    assert load_pipeline(out, device='cpu').classes == ['drone', 'run', 'walk']


def test_augment_links_real_images(model, tmp_path):
    "With link=True the real images are links to the originals (nothing copied, nothing changed); generated ones are files."
    data = make_data(tmp_path/'real', n_per_class=4)
    before = _digest(data)
    out = augment(str(data), str(model), str(tmp_path/'aug'), per_class=5, link=True, steps=2, progress=False)
    rows = read_rows(out)
    real = [out/r['file'] for r in rows if r['generated'] == '0']
    assert len(real) == 12 and all(p.is_symlink() and p.resolve() == (data/p.relative_to(out)).resolve() for p in real)
    assert all(not (out/r['file']).is_symlink() for r in rows if r['generated'] == '1')
    assert _digest(data) == before and len(SpectrogramDataset(out)) == 15


def test_folders_from_before_the_pipeline_class_still_load(model, tmp_path):
    "Model folders written by the earlier save_ldm named diffusers' LDMPipeline even when class-conditional; they load with their classes."
    import json, shutil
    old = tmp_path/'old'; shutil.copytree(model, old)
    index = json.loads((old/'model_index.json').read_text())
    index['_class_name'] = 'LDMPipeline'; index.pop('classes')
    (old/'model_index.json').write_text(json.dumps(index))
    (old/'mdaug.json').write_text(json.dumps({'classes': ['drone', 'run', 'walk']}))
    pipe = load_pipeline(old, device='cpu')
    assert pipe.classes == ['drone', 'run', 'walk'] and model_id(pipe) == model_id(load_pipeline(model, device='cpu'))
    with pytest.raises(ValueError, match='not an mdaug model'):
        index['_class_name'] = 'StableDiffusionPipeline'; (old/'model_index.json').write_text(json.dumps(index)); load_pipeline(old)


def test_augment_skips_unreadable_real_images(model, tmp_path, capsys):
    "A broken real file is reported and left out of the augmented set; the class is filled from the readable ones."
    data = make_data(tmp_path/'real', n_per_class=4)
    (data/'walk'/'s0_99.png').write_bytes(b'')
    (data/'run'/'s1_98.png').write_bytes((data/'run'/'s1_1.png').read_bytes()[:100])
    out = augment(str(data), str(model), str(tmp_path/'aug'), per_class=5, steps=2, progress=False)
    err = capsys.readouterr().out
    assert 'skipped 2 unreadable' in err and 's0_99.png' in err and 's1_98.png' in err
    rows = read_rows(out)
    assert not (out/'walk'/'s0_99.png').exists() and len(rows) == 15
    assert sum(r['class'] == 'walk' and r['generated'] == '1' for r in rows) == 1
    assert len(SpectrogramDataset(out)) == 15
