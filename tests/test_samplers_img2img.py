"Image-to-image in every sampler: strength 1 is plain sampling, the cut follows diffusers, bad input fails in one line."
import math, re
import pytest
import torch

from mdaug.samplers import SAMPLERS, img2img_timesteps, img2img_start, sampling_timesteps, dpm_timesteps
from mdaug.schedules import make_alphas_cumprod, add_noise

NAMES = list(SAMPLERS)


class Counting:
    "A small eps-model that records how often it is called."
    def __init__(self): self.calls = 0
    def __call__(self, x, t, c=None):
        self.calls += 1
        return 0.1 * x + 0.01 * t.to(x.dtype)[:, None, None, None] / 1000


def _setup(dtype=torch.float32):
    ac = make_alphas_cumprod('scaled_linear', beta_start=0.0015, beta_end=0.0195)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=dtype)
    init = torch.randn(2, 3, 4, 4, generator=g, dtype=dtype).clamp(-2, 2)
    return Counting(), x, init, ac


def _timesteps(name, steps, n_train=1000):
    return dpm_timesteps(steps, n_train) if name == 'dpmpp_2m' else sampling_timesteps(steps, n_train)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_strength_one_without_init_is_plain_sampling(name, dtype):
    model, x, _, ac = _setup(dtype)
    fn = SAMPLERS[name]
    a = fn(model, x, ac, 5, generator=torch.Generator().manual_seed(1), disable=True)
    b = fn(model, x, ac, 5, generator=torch.Generator().manual_seed(1), init=None, strength=1., disable=True)
    assert torch.equal(a, b)


def test_cut_is_diffusers_get_timesteps():
    "As StableDiffusionImg2ImgPipeline.get_timesteps: init_timestep = min(int(n * s), n), t_start = n - init_timestep."
    for n in list(range(1, 60)) + [100, 333, 999, 1000]:
        ts = list(range(n))[::-1]
        for s in [0.01, 0.1, 0.2, 0.25, 0.3, 1 / 3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.75, 0.8, 0.9, 0.99, 1.]:
            t_start = max(n - min(int(n * s), n), 0)
            if t_start == n:
                with pytest.raises(ValueError, match="leaves none"): img2img_timesteps(ts, s)
            else: assert img2img_timesteps(ts, s) == ts[t_start:]


@pytest.mark.parametrize("name", NAMES)
def test_start_callback_and_steps(name):
    model, x, init, ac = _setup(torch.float64)
    x0, init0 = x.clone(), init.clone()
    seen = []
    out = SAMPLERS[name](model, x, ac, 6, init=init, strength=0.5, callback=seen.append, disable=True)
    kept = _timesteps(name, 6)[3:]
    assert [d['i'] for d in seen] == [0, 1, 2] and [d['t'] for d in seen] == kept
    assert torch.equal(seen[0]['x'], add_noise(init, x, kept[0], ac))
    assert model.calls == 3 + (name == 'plms')  # PLMS: one extra call in its first step
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(x, x0) and torch.equal(init, init0)


@pytest.mark.parametrize("name", NAMES)
def test_init_in_another_dtype_follows_x(name):
    model, x, init, ac = _setup(torch.float32)
    g = lambda: torch.Generator().manual_seed(1)  # DDPM's step noise
    out = SAMPLERS[name](model, x, ac, 4, init=init.double(), strength=0.5, generator=g(), disable=True)
    ref = SAMPLERS[name](model, x, ac, 4, init=init, strength=0.5, generator=g(), disable=True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)


BAD = [
    (dict(strength=0.), "strength must be in (0, 1]"),
    (dict(strength=-0.5), "strength must be in (0, 1]"),
    (dict(strength=1.5), "strength must be in (0, 1]"),
    (dict(strength=float('nan')), "strength must be in (0, 1]"),
    (dict(strength=float('inf')), "strength must be in (0, 1]"),
    (dict(strength=0.5, init=None), "needs `init`"),
    (dict(strength=0.5, init='shape'), "init has shape (1, 3, 4, 4) but x has (2, 3, 4, 4)"),
    (dict(strength=0.5, init='list'), "init must be a tensor"),
    (dict(strength=0.1), "leaves none of the 4 steps to run"),
]


IDS = ['zero', 'negative', 'above_one', 'nan', 'inf', 'no_init', 'shape', 'not_tensor', 'no_step']


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kw,msg", BAD, ids=IDS)
def test_bad_input_fails_in_one_line_before_the_model(name, kw, msg):
    model, x, init, ac = _setup()
    kw = dict(kw)
    if 'init' not in kw: kw['init'] = init
    elif kw['init'] == 'shape': kw['init'] = init[:1]
    elif kw['init'] == 'list': kw['init'] = init.tolist()
    with pytest.raises(ValueError) as e: SAMPLERS[name](model, x, ac, 4, disable=True, **kw)
    assert msg in str(e.value) and '\n' not in str(e.value)
    assert model.calls == 0


def test_no_step_message_suggests_values_that_work():
    for n in range(1, 1001):
        ts = list(range(n))[::-1]
        s = 0.5 / n
        with pytest.raises(ValueError) as e: img2img_timesteps(ts, s)
        m = re.search(r"use strength >= ([0-9.]+) or steps >= (\d+)", str(e.value))
        assert m, str(e.value)
        assert len(img2img_timesteps(ts, float(m[1]))) >= 1
        assert len(img2img_timesteps(list(range(int(m[2]))), s)) >= 1
    with pytest.raises(ValueError, match="leaves none"): img2img_timesteps([999, 0], 5e-324)  # no overflow in the hint


def test_start_helper_direct():
    _, x, init, ac = _setup()
    ts = sampling_timesteps(10)
    assert img2img_start(x, ts, ac)[1] is x
    kept, start = img2img_start(x, ts, ac, init, 0.3)
    assert kept == [200, 100, 0] and torch.equal(start, add_noise(init, x, 200, ac))
    kept, start = img2img_start(x, ts, ac, init, 1.)  # strength 1 with init: noised at t0, as diffusers does
    assert kept == ts and torch.equal(start, add_noise(init, x, 900, ac))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_init_on_another_device_fails_clearly():
    model, x, init, ac = _setup()
    with pytest.raises(ValueError, match="put both on one device"):
        SAMPLERS['ddim'](model, x.cuda(), ac, 4, init=init, strength=0.5, disable=True)
    out = SAMPLERS['ddim'](model, x.cuda(), ac, 4, init=init.cuda(), strength=0.5, disable=True)
    ref = SAMPLERS['ddim'](model, x, ac, 4, init=init, strength=0.5, disable=True)
    assert out.device.type == 'cuda'
    torch.testing.assert_close(out.cpu(), ref, atol=1e-5, rtol=1e-5)
