"VQ-VAE training on the Learner: runs to a folder, kill and resume, atomic checkpoints, config errors, loading with diffusers."
import json, math, os, signal, subprocess, sys, time
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from mdaug.core import load_json
from mdaug.data import sample_data
from mdaug.learner import list_checkpoints, find_checkpoint
from mdaug import vqvae
from mdaug.vqvae import make_config, fit_vqvae, train_vqvae, psnr, VQConfig, cli_parser, settings_from_args


@pytest.fixture(scope='module')
def dls():
    from mdaug.data import get_dataloaders
    return get_dataloaders(sample_data(), image_size=32, channels=3, batch_size=8, valid_pct=0.2, seed=42, num_workers=0)


def cfg_(**kw):
    return make_config('ci', **({'steps': 6, 'eval_every': 3, 'sample_every': 3, 'restart_every': 2, 'log_with': 'none'} | kw))


def latest(out):
    "The newest complete checkpoint of the run in `out` and its trainer state."
    ck = find_checkpoint(out, 'latest')
    return ck, (load_json(ck/'trainer_state.json') if ck else None)


def losses(out): return [json.loads(l)['loss'] for l in (out/'log.jsonl').read_text().splitlines()]


class Crashing(Dataset):
    "A dataset that raises after `n` items, like a process killed mid-run."
    def __init__(self, ds, n): self.ds, self.n, self.seen = ds, n, 0
    def __len__(self): return len(self.ds)
    def __getitem__(self, i):
        self.seen += 1
        if self.seen > self.n: raise KeyboardInterrupt('simulated crash')
        return self.ds[i]


def test_psnr_known_mse():
    x = torch.rand(3, 1, 16, 16) * 1.5 - 0.75
    for mse in (1e-2, 1e-3, 1e-4):
        d = math.sqrt(mse) * 2                       # an error of sqrt(mse) on [0, 1] is twice that on [-1, 1]
        sign = torch.randint(0, 2, x.shape) * 2 - 1
        assert torch.allclose(psnr(x, x + d * sign), torch.full((3,), 10 * math.log10(1 / mse)), atol=1e-3)


def test_presets_are_settings():
    "Presets are `VQConfig`s; `make_config` puts the profile's sizes over them and the overrides over both."
    assert all(isinstance(p, VQConfig) for p in vqvae.PRESETS.values())
    c = make_config('ci', preset='cpu', lr=1e-3)
    assert (c.width, c.image_size, c.lr, c.steps) == (16, 32, 1e-3, 3000)


def test_command_line_reaches_every_setting():
    "Every `VQConfig` field is an option; options override the preset, and --resume starts from the run's settings."
    ns = cli_parser().parse_args(['d', '--out', 'o', '--profile', 'ci', '--restart-dead-codes', 'false', '--lr', '1e-3'])
    assert {a.dest for a in cli_parser()._actions} >= set(VQConfig.__dataclass_fields__)
    s = settings_from_args(ns)
    assert (s.restart_dead_codes, s.lr, s.width) == (False, 1e-3, vqvae.PRESETS['ci'].width)


def test_train_vqvae_loads_with_diffusers(tmp_path):
    from diffusers import VQModel
    best = train_vqvae(str(sample_data()), str(tmp_path/'run'), make_config('ci', steps=4), progress=False)
    vq = VQModel.from_pretrained(best)
    m = load_json(best/'metrics.json')
    assert abs(vq.config.scaling_factor - m['scaling_factor']) < 1e-6 and vq.config.scaling_factor != 0.18215
    cfg = VQConfig.from_dict(load_json(best/'vq_config.json'))
    z = vq.encode(torch.zeros(1, 3, 32, 32)).latents
    assert tuple(z.shape[1:]) == cfg.latent_shape == (cfg.latent_channels, 32 // cfg.factor, 32 // cfg.factor)
    assert 0 <= m['usage'] <= 1 and m['perplexity'] >= 1
    assert sorted(p.name for p in (tmp_path/'run'/'samples').iterdir())   # reconstruction grids were written
    logs = [json.loads(l) for l in (tmp_path/'run'/'log.jsonl').read_text().splitlines()]
    assert [l['step'] for l in logs] == [1, 2, 3, 4] and {'pixel', 'quant', 'lpips', 'lr'} <= set(logs[-1])
    assert 'valid/psnr' in logs[-1] and any('restarted' in l for l in logs)


def test_resume_equals_uninterrupted(tmp_path, dls):
    cfg = cfg_()
    fit_vqvae(cfg, dls.train_ds, dls.valid_ds, tmp_path/'a', progress=False)
    with pytest.raises(KeyboardInterrupt):      # crash while fetching step 4's batch: the newest checkpoint is step 3
        fit_vqvae(cfg, Crashing(dls.train_ds, 4 * cfg.batch_size), dls.valid_ds, tmp_path/'b', progress=False)
    assert latest(tmp_path/'b')[1]['step'] == 3
    fit_vqvae(cfg, dls.train_ds, dls.valid_ds, tmp_path/'b', resume=True, progress=False)
    (ca, sa), (cb, sb) = latest(tmp_path/'a'), latest(tmp_path/'b')
    assert sb['step'] == 6 and cb.name == 'checkpoint-000006'
    wa, wb = load_file(ca/'model.safetensors'), load_file(cb/'model.safetensors')
    for k in wa: torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)
    ra, rb = load_file(ca/'callbacks_rank0.safetensors'), load_file(cb/'callbacks_rank0.safetensors')
    for k in ra: torch.testing.assert_close(ra[k], rb[k])                 # the code counts went through the checkpoint
    assert sa['callbacks']['EvalCB']['history'] == sb['callbacks']['EvalCB']['history']
    torch.testing.assert_close(losses(tmp_path/'a'), losses(tmp_path/'b'), rtol=1e-5, atol=1e-6)


def test_checkpoint_is_atomic(tmp_path, dls, monkeypatch):
    "A save that fails half-way (model and optimizer written, the rest not) leaves the previous checkpoint whole."
    cfg, out = cfg_(), tmp_path/'r'
    real, calls = torch.save, []
    def flaky_save(obj, f, *a, **k):
        if list_checkpoints(out): calls.append(f)             # torch.save calls of the second checkpoint
        if len(calls) == 2: raise OSError('disk full (simulated)')
        return real(obj, f, *a, **k)
    monkeypatch.setattr(vqvae.torch, 'save', flaky_save)
    with pytest.raises(OSError, match='disk full'):
        fit_vqvae(cfg, dls.train_ds, dls.valid_ds, out, progress=False)
    assert len(calls) == 2 and '.checkpoint-000006' in str(calls[0])    # it failed inside the second checkpoint's folder
    ck, st = latest(out)
    assert st['step'] == 3 and [p.name for p in list_checkpoints(out)] == ['checkpoint-000003']   # the first is intact
    assert {'model.safetensors', 'optimizer.bin', 'scheduler.bin', 'callbacks.safetensors'} <= {p.name for p in ck.iterdir()}
    assert not [p for p in out.rglob('*') if p.name.endswith('.tmp') or p.name.endswith('.old')]
    assert not [p for p in (out/'checkpoints').iterdir() if p.name.startswith('.')]
    monkeypatch.setattr(vqvae.torch, 'save', real)
    fit_vqvae(cfg, dls.train_ds, dls.valid_ds, out, resume=True, progress=False)
    assert latest(out)[1]['step'] == 6


def test_kill_and_resume(tmp_path):
    out = tmp_path/'run'
    code = (f"from mdaug.vqvae import train_vqvae, make_config; train_vqvae({str(sample_data())!r}, {str(out)!r}, "
            f"make_config('ci', steps=100000), progress=False)")
    env = dict(os.environ, MDAUG_PROFILE='ci')
    p = subprocess.Popen([sys.executable, '-c', code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while not list_checkpoints(out):
            assert p.poll() is None and time.time() - t0 < 300, 'training did not write a checkpoint'
            time.sleep(0.2)
        time.sleep(1.0)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()
    step = latest(out)[1]['step']
    assert step >= 2
    with pytest.raises(FileExistsError, match='already holds a VQ-VAE run'):
        train_vqvae(str(sample_data()), str(out), make_config('ci', steps=step + 2), progress=False)
    cfg = replace(VQConfig.from_dict(load_json(out/'vq_config.json')), steps=step + 2)
    best = train_vqvae(str(sample_data()), str(out), cfg, resume=True, progress=False)
    assert latest(out)[1]['step'] == step + 2
    from diffusers import VQModel
    VQModel.from_pretrained(best)


def test_config_errors(tmp_path, dls):
    cfg = cfg_(steps=2, eval_every=2)
    fit_vqvae(cfg, dls.train_ds, dls.valid_ds, tmp_path/'r', progress=False)
    with pytest.raises(FileExistsError, match='already holds a VQ-VAE run'):
        fit_vqvae(cfg, dls.train_ds, dls.valid_ds, tmp_path/'r', progress=False)
    with pytest.raises(ValueError, match=r'other settings \(levels: 3 then, 2 now\)') as e:
        fit_vqvae(cfg_(levels=2, steps=4), dls.train_ds, dls.valid_ds, tmp_path/'r', resume=True, progress=False)
    assert len(str(e.value).splitlines()) == 1
    with pytest.raises(ValueError, match='channels=1'):
        fit_vqvae(cfg_(channels=1), dls.train_ds, dls.valid_ds, tmp_path/'c', progress=False)
    with pytest.raises(ValueError, match='image_size=64'):
        fit_vqvae(cfg_(image_size=64), dls.train_ds, dls.valid_ds, tmp_path/'s', progress=False)
    with pytest.raises(ValueError, match='not divisible by the downsampling factor 8'):
        make_config('ci', image_size=36, levels=4)
    with pytest.raises(ValueError, match='vq_embed_dim'):
        make_config('ci', latent_channels=2, vq_embed_dim=4)
    with pytest.raises(ValueError, match="log_with='mlflow'"):
        make_config('ci', log_with='mlflow')
    with pytest.raises(ValueError, match="needs a CUDA GPU") if not torch.cuda.is_available() else pytest.raises(Exception):
        fit_vqvae(cfg_(mixed_precision='fp16'), dls.train_ds, dls.valid_ds, tmp_path/'f', progress=False)


def test_time_budget_stops_gracefully(tmp_path, dls):
    "`max_minutes` ends the run after the step that spent it, with a final evaluation, checkpoint and scaling factor."
    best = fit_vqvae(cfg_(max_minutes=1e-9), dls.train_ds, dls.valid_ds, tmp_path/'t', progress=False)
    assert latest(tmp_path/'t')[1]['step'] == 1 and load_json(best/'metrics.json')['step'] == 1
    assert 'scaling_factor' in load_json(best/'metrics.json')


def test_lpips_backbone_failure_is_loud(monkeypatch):
    import lpips
    def no_net(*a, pnet_rand=False, **k):
        if not pnet_rand: raise OSError('urlopen error [Errno -3] Temporary failure in name resolution')
        return real(*a, pnet_rand=pnet_rand, **k)
    real = lpips.LPIPS
    monkeypatch.setattr(lpips, 'LPIPS', no_net)
    with pytest.raises(ConnectionError, match="lpips_pretrained_backbone=False"):
        vqvae.build_lpips('alex', pretrained_backbone=True)
    assert vqvae.build_lpips('alex', pretrained_backbone=False) is not None


def test_two_processes_over_gloo(tmp_path):
    "Two CPU processes under torchrun train one model (DDP through `VQTrainer`); only rank 0 writes."
    script = tmp_path/'run.py'
    script.write_text(f"from mdaug.vqvae import train_vqvae, make_config\n"
                      f"train_vqvae({str(sample_data())!r}, {str(tmp_path/'run')!r}, make_config('ci', steps=4, batch_size=4), "
                      f"progress=False)\n")
    env = dict(os.environ, MDAUG_PROFILE='ci', OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ck, st = latest(tmp_path/'run')
    assert st['step'] == 4 and st['num_processes'] == 2 and len(set(st['param_sha256'])) == 1
    assert {'callbacks_rank0.safetensors', 'callbacks_rank1.safetensors'} <= {p.name for p in ck.iterdir()}
    from diffusers import VQModel
    VQModel.from_pretrained(tmp_path/'run'/'best')
    assert 'scaling_factor' in load_json(tmp_path/'run'/'best'/'metrics.json')
