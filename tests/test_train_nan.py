"A NaN loss stops training with a clear message, and the last good checkpoint stays the newest."
import pytest
import fastcore.test as fct
from test_train_fixtures import make_data, make_vqvae


def test_nan_stops(tmp_path, monkeypatch):
    import mdaug.train as T
    data, vq = make_data(tmp_path/'data'), make_vqvae(tmp_path/'vq')
    calls, orig = [], T.diffusion_loss
    def poisoned(*a, **k):
        calls.append(1); l = orig(*a, **k)
        return l * float('nan') if len(calls) == 3 else l
    monkeypatch.setattr(T, 'diffusion_loss', poisoned)
    with pytest.raises(FloatingPointError, match='checkpoint-000002'):
        T.train_ldm(data, vq, tmp_path/'run', T.make_settings('ci', steps=6, batch_size=4, checkpoint_every=2, sample_every=100, log_with='none'),
                    progress=False)
    fct.test_eq([p.name for p in T.list_checkpoints(tmp_path/'run')], ['checkpoint-000002'])
    assert not (tmp_path/'run'/'model').exists()
