"The non-default paths of `train_ldm`: encoding every batch, v-prediction, gradient accumulation, bf16 autocast."
import json
import fastcore.test as fct
from test_train_fixtures import make_data, make_vqvae


def test_options(tmp_path):
    from mdaug.train import train_ldm, make_settings
    from diffusers import DDIMScheduler
    data, vq = make_data(tmp_path/'data'), make_vqvae(tmp_path/'vq')
    s = make_settings('ci', steps=2, batch_size=4, grad_accum=2, encode_every_batch=True, prediction_type='v_prediction',
                      mixed_precision='bf16', sample_steps=2, log_with='none')
    m = train_ldm(data, vq, tmp_path/'run', s, progress=False)
    logs = [json.loads(l) for l in (tmp_path/'run'/'log.jsonl').read_text().splitlines()]
    fct.test_eq([o['step'] for o in logs], [1, 2])
    assert not (tmp_path/'run'/'latents.safetensors').exists()       # nothing cached when encoding every batch
    fct.test_eq(json.loads((m/'mdaug.json').read_text())['prediction_type'], 'v_prediction')
    fct.test_eq(DDIMScheduler.from_pretrained(m/'scheduler').config.prediction_type, 'v_prediction')
    fct.test_eq(json.loads((m/'mdaug.json').read_text())['classes'], ['drone', 'run', 'walk'])
