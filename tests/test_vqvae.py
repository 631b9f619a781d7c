"VQ-VAE training: runs to a folder, kill and resume, atomic checkpoints, config errors, loading with diffusers."
import math, os, signal, subprocess, sys, time

import pytest
import torch
from torch.utils.data import Dataset

from mdaug.core import sample_data, load_json
from mdaug import vqvae
from mdaug.vqvae import make_config, fit_vqvae, train_vqvae, psnr, VQConfig


@pytest.fixture(scope='module')
def dls():
    from mdaug.data import get_dataloaders
    return get_dataloaders(sample_data(), image_size=32, channels=3, batch_size=8, valid_pct=0.2, seed=42, num_workers=0)


def cfg_(**kw):
    return make_config('ci', **({'steps': 6, 'eval_every': 3, 'sample_every': 3, 'restart_every': 2} | kw))


def weights(folder):
    from diffusers import VQModel
    return VQModel.from_pretrained(folder).state_dict()


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


def test_train_vqvae_loads_with_diffusers(tmp_path):
    from diffusers import VQModel
    best = train_vqvae(str(sample_data()), str(tmp_path/'run'), profile='ci', steps=4, progress=False)
    vq = VQModel.from_pretrained(best)
    m = load_json(best/'metrics.json')
    assert abs(vq.config.scaling_factor - m['scaling_factor']) < 1e-6 and vq.config.scaling_factor != 0.18215
    cfg = VQConfig.from_dict(load_json(best/'vq_config.json'))
    z = vq.encode(torch.zeros(1, 3, 32, 32)).latents
    assert tuple(z.shape[1:]) == cfg.latent_shape == (cfg.latent_channels, 32 // cfg.factor, 32 // cfg.factor)
    assert 0 <= m['usage'] <= 1 and m['perplexity'] >= 1
    assert sorted(p.name for p in (tmp_path/'run'/'samples').iterdir())   # reconstruction grids were written


def test_resume_equals_uninterrupted(tmp_path, dls):
    cfg = cfg_()
    fit_vqvae(cfg, dls.train_ds, dls.valid_ds, tmp_path/'a', progress=False, log_with=None)
    with pytest.raises(KeyboardInterrupt):      # crash while fetching step 5's batch: latest holds step 3
        fit_vqvae(cfg, Crashing(dls.train_ds, 4 * cfg.batch_size), dls.valid_ds, tmp_path/'b', progress=False, log_with=None)
    assert load_json(tmp_path/'b'/'latest'/'state.json')['step'] == 3
    fit_vqvae(cfg, dls.train_ds, dls.valid_ds, tmp_path/'b', resume=True, progress=False, log_with=None)
    assert load_json(tmp_path/'b'/'latest'/'state.json')['step'] == 6
    wa, wb = weights(tmp_path/'a'/'latest'), weights(tmp_path/'b'/'latest')
    for k in wa: torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


def test_checkpoint_is_atomic(tmp_path, dls, monkeypatch):
    cfg = cfg_()
    real, calls = torch.save, []
    def flaky_save(obj, f, *a, **k):
        calls.append(f)
        if len(calls) == 2: raise OSError('disk full (simulated)')
        return real(obj, f, *a, **k)
    monkeypatch.setattr(vqvae.torch, 'save', flaky_save)
    with pytest.raises(OSError, match='disk full'):
        fit_vqvae(cfg, dls.train_ds, dls.valid_ds, tmp_path/'r', progress=False, log_with=None)
    latest = tmp_path/'r'/'latest'
    assert load_json(latest/'state.json')['step'] == 3                    # the first checkpoint is intact
    assert set(p.name for p in latest.iterdir()) >= {'config.json', 'diffusion_pytorch_model.safetensors', 'optimizer.pt'}
    assert not [p for p in (tmp_path/'r').iterdir() if p.name.endswith('.tmp') or p.name.endswith('.old')]
    monkeypatch.setattr(vqvae.torch, 'save', real)
    fit_vqvae(cfg, dls.train_ds, dls.valid_ds, tmp_path/'r', resume=True, progress=False, log_with=None)
    assert load_json(latest/'state.json')['step'] == 6


def test_kill_and_resume(tmp_path):
    out = tmp_path/'run'
    code = (f"from mdaug.vqvae import train_vqvae; train_vqvae({str(sample_data())!r}, {str(out)!r}, profile='ci', "
            f"steps=100000, progress=False)")
    env = dict(os.environ, MDAUG_PROFILE='ci')
    p = subprocess.Popen([sys.executable, '-c', code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while not (out/'latest'/'state.json').exists():
            assert p.poll() is None and time.time() - t0 < 300, 'training did not write a checkpoint'
            time.sleep(0.2)
        time.sleep(1.0)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()
    step = load_json(out/'latest'/'state.json')['step']
    assert step >= 2
    best = train_vqvae(str(sample_data()), str(out), steps=step + 2, resume=True, progress=False)
    assert load_json(out/'latest'/'state.json')['step'] == step + 2
    from diffusers import VQModel
    VQModel.from_pretrained(best)


def test_config_errors(tmp_path, dls):
    cfg = cfg_(steps=2, eval_every=2)
    fit_vqvae(cfg, dls.train_ds, dls.valid_ds, tmp_path/'r', progress=False, log_with=None)
    with pytest.raises(FileExistsError, match='resume=True'):
        fit_vqvae(cfg, dls.train_ds, dls.valid_ds, tmp_path/'r', progress=False, log_with=None)
    with pytest.raises(ValueError, match='different model settings.*levels'):
        fit_vqvae(cfg_(levels=2, steps=4), dls.train_ds, dls.valid_ds, tmp_path/'r', resume=True, progress=False, log_with=None)
    with pytest.raises(ValueError, match='channels=1'):
        fit_vqvae(cfg_(channels=1), dls.train_ds, dls.valid_ds, tmp_path/'c', progress=False, log_with=None)
    with pytest.raises(ValueError, match='image_size=64'):
        fit_vqvae(cfg_(image_size=64), dls.train_ds, dls.valid_ds, tmp_path/'s', progress=False, log_with=None)
    with pytest.raises(ValueError, match='not divisible by the downsampling factor 8'):
        make_config('ci', image_size=36, levels=4)
    with pytest.raises(ValueError, match='vq_embed_dim'):
        make_config('ci', latent_channels=2, vq_embed_dim=4)
    with pytest.raises(ValueError, match="needs a CUDA GPU") if not torch.cuda.is_available() else pytest.raises(Exception):
        fit_vqvae(cfg_(mixed_precision='fp16'), dls.train_ds, dls.valid_ds, tmp_path/'f', progress=False, log_with=None)


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
    script.write_text(f"from mdaug.vqvae import train_vqvae\n"
                      f"train_vqvae({str(sample_data())!r}, {str(tmp_path/'run')!r}, profile='ci', steps=4, batch_size=4, progress=False)\n")
    env = dict(os.environ, MDAUG_PROFILE='ci', OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert load_json(tmp_path/'run'/'latest'/'state.json')['step'] == 4
    from diffusers import VQModel
    VQModel.from_pretrained(tmp_path/'run'/'best')
