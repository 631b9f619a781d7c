"The public sampler API: a fresh import works, samplers keep device and dtype, and bad arguments fail clearly."
import subprocess, sys
import pytest
import torch

from conftest import ROOT


def test_fresh_import():
    code = "from mdaug.samplers import ddim_sample, ddpm_sample, plms_sample, dpmpp_2m_sample; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def _setup(dtype=torch.float32):
    from mdaug.schedules import make_alphas_cumprod
    ac = make_alphas_cumprod('scaled_linear', beta_start=0.0015, beta_end=0.0195)
    model = lambda x, t, c=None: 0.1 * x + 0.01 * t.to(x.dtype)[:, None, None, None] / 1000
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=dtype)
    return model, x, ac


@pytest.mark.parametrize("name", ["ddpm_sample", "ddim_sample", "plms_sample", "dpmpp_2m_sample"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_shape_and_callback(name, dtype):
    import mdaug.samplers as S
    model, x, ac = _setup(dtype)
    seen = []
    out = getattr(S, name)(model, x, ac, steps=5, callback=seen.append, disable=True)
    assert out.dtype == dtype and out.shape == x.shape and out.device == x.device
    assert [d['i'] for d in seen] == list(range(5))
    assert all(set(d) == {'i', 't', 'x', 'denoised'} for d in seen)
    assert all(d['x'].dtype == dtype and d['denoised'].shape == x.shape for d in seen)


def test_schedule_on_other_dtype_and_x_untouched():
    from mdaug.samplers import ddim_sample
    model, x, ac = _setup()
    x0 = x.clone()
    a = ddim_sample(model, x, ac, steps=4, disable=True)
    b = ddim_sample(model, x, ac.double(), steps=4, disable=True)  # a float64 schedule does not change x's dtype
    assert torch.equal(x, x0) and b.dtype == torch.float32
    torch.testing.assert_close(a, b)


def test_bad_arguments():
    from mdaug.samplers import ddim_sample, dpmpp_2m_sample
    model, x, ac = _setup()
    with pytest.raises(ValueError, match="prediction_type"): ddim_sample(model, x, ac, 3, prediction_type='sample', disable=True)
    with pytest.raises(ValueError, match="timestep_spacing"): ddim_sample(model, x, ac, 3, timestep_spacing='even', disable=True)
    with pytest.raises(ValueError, match="steps must be"): dpmpp_2m_sample(model, x, ac, 0, disable=True)
    with pytest.raises(ValueError, match="needs class_labels"): ddim_sample(model, x, ac, 3, guidance_scale=2., disable=True)
    with pytest.raises(ValueError, match="null class"): ddim_sample(model, x, ac, 3, class_labels=[0, 1], guidance_scale=2., disable=True)
    with pytest.raises(ValueError, match="1-D"): ddim_sample(model, x, ac[None], 3, disable=True)


def test_registry_states_the_signatures():
    "Four shared arguments by position, everything else by keyword; each registry entry lists exactly its own options."
    import inspect
    from mdaug.samplers import SAMPLERS, ddim_sample
    shared = set()
    for s in SAMPLERS.values():
        ps = inspect.signature(s.fn).parameters
        assert [k for k, p in ps.items() if p.kind == p.POSITIONAL_OR_KEYWORD] == ['model', 'x', 'alphas_cumprod', 'steps']
        own = {k for k, p in ps.items() if p.kind == p.KEYWORD_ONLY} - set(s.options)
        shared = shared or own
        assert own == shared, s.name
        assert s.steps == ps['steps'].default
    model, x, ac = _setup()
    with pytest.raises(TypeError, match="positional"): ddim_sample(model, x, ac, 3, 0.5, disable=True)
    assert torch.equal(SAMPLERS['ddim'](model, x, ac, 3, disable=True), ddim_sample(model, x, ac, 3, disable=True))
    cfg = dict(prediction_type='v_prediction', timestep_spacing='trailing', steps_offset=1, set_alpha_to_one=False)
    assert SAMPLERS['ddim'].kwargs(cfg, eta=.5) == cfg | dict(eta=.5)
    assert SAMPLERS['plms'].kwargs(cfg) == cfg
    assert SAMPLERS['ddpm'].kwargs(cfg) == dict(prediction_type='v_prediction', timestep_spacing='trailing', steps_offset=1)
    assert SAMPLERS['dpmpp_2m'].kwargs(cfg) == dict(prediction_type='v_prediction')
    with pytest.raises(ValueError, match="has no option eta"): SAMPLERS['plms'].kwargs(cfg, eta=.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_with_cpu_schedule_and_generator():
    from mdaug.samplers import ddim_sample
    model, x, ac = _setup()
    out_cpu = ddim_sample(model, x, ac, 5, eta=1., generator=torch.Generator().manual_seed(1), disable=True)
    out_gpu = ddim_sample(model, x.cuda(), ac, 5, eta=1., generator=torch.Generator().manual_seed(1), disable=True)
    assert out_gpu.device.type == 'cuda'
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=1e-5, rtol=1e-5)
