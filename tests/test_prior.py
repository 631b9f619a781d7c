"Fine-tuning from a prior (`TrainSettings.init`): class rows, refusals with nothing written, the EMA, resume."
import json, shutil
from pathlib import Path
import pytest, torch
import fastcore.test as fct
from safetensors.torch import load_file, save_file

from test_train_fixtures import make_data, make_vqvae

KW = dict(batch_size=4, sample_steps=2, log_with='none')


@pytest.fixture(scope='module')
def prior(tmp_path_factory):
    "A 2-step `ci` model on the 3-class toy data (drone, run, walk): the prior of every test here."
    from mdaug.train import train_ldm, make_settings
    root = tmp_path_factory.mktemp('prior')
    data, vq = make_data(root/'data'), make_vqvae(root/'vq')
    model = train_ldm(data, vq, root/'run', make_settings('ci', steps=2, **KW), progress=False)
    return dict(data=data, vq=vq, model=model, root=root)


def user_data(prior, root) -> Path:
    "The user's classes: walk and run as in the prior, drone renamed quad (new to the prior)."
    for c, name in [('walk', 'walk'), ('run', 'run'), ('drone', 'quad')]: shutil.copytree(prior['data']/c, root/name)
    return root


def unet_weights(model) -> dict: return {k: v.float() for k, v in load_file(Path(model)/'unet'/'diffusion_pytorch_model.safetensors').items()}


def test_rows_copied_new_null(prior, tmp_path, capsys):
    from mdaug.train import train_ldm, make_settings
    user = user_data(prior, tmp_path/'user')
    seen = {}
    from mdaug.learner import FuncCB
    grab = FuncCB(order=6, before_fit=lambda l: seen.update({k: v.detach().clone() for k, v in l.raw_model.state_dict().items()}))
    train_ldm(user, None, tmp_path/'ft', make_settings('ci', init=str(prior['model']), steps=1, **KW), cbs=[grab], progress=False)
    out = capsys.readouterr().out
    assert '2 copied (run, walk), 1 new' in out and '(quad)' in out, out
    w, rows = unet_weights(prior['model']), seen['class_embedding.weight']
    pri = json.loads((prior['model']/'mdaug.json').read_text())['classes']      # ['drone', 'run', 'walk']
    fct.test_eq(rows.shape[0], 4)                                                 # quad, run, walk + null
    fct.test_eq(rows[1], w['class_embedding.weight'][pri.index('run')])
    fct.test_eq(rows[2], w['class_embedding.weight'][pri.index('walk')])
    fct.test_close(rows[0], w['class_embedding.weight'][:3].mean(0), eps=1e-6)  # new: mean of the prior's class rows
    fct.test_eq(rows[3], w['class_embedding.weight'][3])                          # null row at the run's null index
    for k, v in w.items():                                                        # every other weight is the prior's
        if k != 'class_embedding.weight': fct.test_eq(seen[k], v)
    meta = json.loads((tmp_path/'ft'/'model'/'mdaug.json').read_text())
    fct.test_eq((meta['init']['copied'], meta['init']['new']), (['run', 'walk'], ['quad']))


def _refused(fn, out:Path, *words):
    with pytest.raises(ValueError) as e: fn()
    msg = str(e.value)
    assert '\n' not in msg, msg
    for w in words: assert w in msg, (w, msg)
    assert not out.exists(), f"{out} was written"
    return msg


def test_other_vqvae_refused(prior, tmp_path):
    from mdaug.train import train_ldm, make_settings
    user, s = user_data(prior, tmp_path/'user'), make_settings('ci', init=str(prior['model']), **KW)
    big = make_vqvae(tmp_path/'vq64', image_size=64)                                   # another image size and latent shape
    _refused(lambda: train_ldm(user, big, tmp_path/'a', s, progress=False), tmp_path/'a', str(big), str(prior['model']),
             '32 px', '64 px', 'vqvae=None')
    same = tmp_path/'vq_other'; shutil.copytree(prior['vq'], same)                    # same shapes, other weights
    f = same/'diffusion_pytorch_model.safetensors'; w = load_file(f)
    save_file({k: v + 1e-3 for k, v in w.items()}, f)
    _refused(lambda: train_ldm(user, same, tmp_path/'b', s, progress=False), tmp_path/'b', str(same), 'another one')


def test_prior_vqvae_accepted(prior, tmp_path):
    "The VQ-VAE the prior was trained with, its copy in the model folder, and a float16 export of it are all the prior's."
    from mdaug.train import same_vqvae, prior_vqvae, check_prior_vqvae
    from mdaug.pipeline import export_model
    exp = export_model(prior['model'], tmp_path/'exp')
    check_prior_vqvae(str(prior['model']), prior['vq'])
    check_prior_vqvae(str(exp), prior['vq'])
    assert same_vqvae(prior['vq'], prior_vqvae(str(exp)))


def test_latent_shape_and_keys_refused(prior, tmp_path):
    from mdaug.train import train_ldm, make_settings, check_prior
    user = user_data(prior, tmp_path/'user')
    s = make_settings('ci', init=str(prior['model']), prediction_type='v_prediction', **KW)
    _refused(lambda: train_ldm(user, None, tmp_path/'a', s, progress=False), tmp_path/'a', "prediction_type='epsilon'",
             "prediction_type='v_prediction'")
    s = make_settings('ci', init=str(prior['model']), **KW)
    from dataclasses import replace
    _refused(lambda: check_prior(str(prior['model']), replace(s, image_size=64), (4, 16, 16), ['walk']), tmp_path/'b',
             '32 px', '64 px', '(3, 8, 8)', '(4, 16, 16)')
    flat = tmp_path/'flat'; flat.mkdir()
    for p in (prior['data']/'walk').glob('*.png'): shutil.copy(p, flat/p.name)
    _refused(lambda: train_ldm(flat, None, tmp_path/'c', s, progress=False), tmp_path/'c', 'class-conditional (3 classes)',
             'unconditional')
    with pytest.raises(FileNotFoundError, match="'shipped'"): make_settings('ci', init=str(tmp_path/'nowhere'))


def test_finetune_settings(prior):
    from mdaug.train import make_settings, FINETUNE, PRIOR_KEYS, prior_settings
    s, scratch = make_settings('ci', init=str(prior['model'])), make_settings('ci')
    for k, v in FINETUNE['ci'].items(): fct.test_eq(getattr(s, k), v)
    assert s.lr < scratch.lr
    fct.test_eq({k: getattr(s, k) for k in PRIOR_KEYS}, prior_settings(str(prior['model'])))
    fct.test_eq(make_settings('ci', init=str(prior['model']), lr=1e-5).lr, 1e-5)      # an override wins


def test_ema_starts_at_prior(prior, tmp_path):
    "A 5-step fine-tune: the EMA is the prior's weights before step 1, then the warmed-up average of the steps' weights."
    from mdaug.train import train_ldm, make_settings
    from mdaug.learner import FuncCB
    user, n = user_data(prior, tmp_path/'user'), 5
    s = make_settings('ci', init=str(prior['model']), steps=n, checkpoint_every=n, sample_every=n, **KW)
    start, steps = {}, []
    def before(l): start.update(ema=[p.clone() for p in l.ema.shadow_params], model=[p.detach().clone() for p in l.raw_model.parameters()])
    rec = FuncCB(order=6, before_fit=before, after_step=lambda l: steps.append([p.detach().clone() for p in l.raw_model.parameters()]))
    model = train_ldm(user, None, tmp_path/'ft', s, cbs=[rec], progress=False)
    for e, m in zip(start['ema'], start['model']): fct.test_eq(e, m)                # the EMA starts at the model = the prior
    w0 = unet_weights(prior['model'])
    ema = start['ema']
    for k, w in enumerate(steps, 1):                                                  # diffusers EMAModel with use_ema_warmup
        d = 0. if k == 1 else min(s.ema_decay, 1 - k ** -s.ema_power)
        ema = [d * e + (1 - d) * p for e, p in zip(ema, w)]
    from diffusers import UNet2DModel
    saved = UNet2DModel.from_pretrained(model.parent/'model'/'unet')
    for a, b in zip(saved.parameters(), ema): fct.test_close(a, b, eps=1e-5)
    sd = saved.state_dict()
    moved = max(float((v - w0[k]).abs().max()) for k, v in sd.items() if k != 'class_embedding.weight')
    assert moved < 0.05, moved                                                        # near the prior, not a random network


def test_resume_finetune(prior, tmp_path):
    "An interrupted fine-tune resumes from its checkpoint (the prior is not read again) and repeats the uninterrupted losses."
    from mdaug.train import train_ldm, make_settings
    from mdaug.learner import FuncCB
    from mdaug.core import SettingsChanged
    user = user_data(prior, tmp_path/'user')
    pcopy = tmp_path/'prior'; shutil.copytree(prior['model'], pcopy)
    s = make_settings('ci', init=str(pcopy), steps=6, checkpoint_every=2, sample_every=100, **KW)
    ref = train_ldm(user, prior['vq'], tmp_path/'ref', s, progress=False)
    def boom(l):
        if l.step == 3: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): train_ldm(user, prior['vq'], tmp_path/'run', s, cbs=[FuncCB(after_step=boom)], progress=False)
    shutil.rmtree(pcopy)                                                              # a resume needs only its checkpoint
    with pytest.raises(SettingsChanged, match='init'):
        train_ldm(user, prior['vq'], tmp_path/'run', make_settings('ci', **{**s.to_dict(), 'init': None}), resume='latest', progress=False)
    model = train_ldm(user, prior['vq'], tmp_path/'run', s, resume='latest', progress=False)
    log = lambda p: [json.loads(l) for l in (p/'log.jsonl').read_text().splitlines()]
    got, exp = log(tmp_path/'run'), log(tmp_path/'ref')
    fct.test_eq([o['step'] for o in got], list(range(1, 7)))
    fct.test_close([o['loss'] for o in got], [o['loss'] for o in exp], eps=1e-5)
    fct.test_eq(json.loads((model/'mdaug.json').read_text())['init']['new'], ['quad'])
