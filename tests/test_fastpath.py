"""`compile=True` (torch.compile) in training and generation gives what the plain path gives, and a compiled run
checkpoints, resumes and saves ordinary weights. Slow on a CPU (the compile itself), so one run covers each path."""
import json
import fastcore.test as fct
import torch
from test_train_fixtures import make_data, make_vqvae, make_model

KW = dict(steps=2, batch_size=4, checkpoint_every=1, sample_every=100, sample_steps=2, log_with='none')

def losses(run): return [json.loads(l)['loss'] for l in (run/'log.jsonl').read_text().splitlines()]


def test_compiled_training_matches_plain(tmp_path):
    from mdaug.train import train_ldm, make_settings
    from mdaug.learner import list_checkpoints
    from diffusers import UNet2DModel
    data, vq = make_data(tmp_path/'data', n_per_class=4), make_vqvae(tmp_path/'vq')
    plain = train_ldm(data, vq, tmp_path/'plain', make_settings('ci', **KW), progress=False)
    fast = train_ldm(data, vq, tmp_path/'fast', make_settings('ci', compile=True, channels_last=True, fused_adamw=True, **KW),
                     progress=False)
    fct.test_close(torch.tensor(losses(tmp_path/'fast')), torch.tensor(losses(tmp_path/'plain')), eps=1e-3)
    sd_plain, sd_fast = (UNet2DModel.from_pretrained(m/'unet').state_dict() for m in (plain, fast))
    fct.test_eq(sorted(sd_fast), sorted(sd_plain))                     # no '_orig_mod.' prefixes from the compile
    for k in sd_plain: fct.test_close(sd_fast[k], sd_plain[k], eps=1e-3)
    # the compiled run resumes, without compile, from its own checkpoint
    fct.test_eq(list_checkpoints(tmp_path/'fast')[-1].name, 'checkpoint-000002')
    train_ldm(data, vq, tmp_path/'fast', make_settings('ci', **(KW | dict(steps=3))), resume='latest', progress=False)
    fct.test_eq(len(losses(tmp_path/'fast')), 3)


def test_compiled_generation_matches_plain(tmp_path):
    from mdaug.pipeline import load_pipeline
    m = make_model(tmp_path/'model')
    one = lambda p: p([0, 2], num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type='pt', progress=False).images
    fct.test_close(one(load_pipeline(m, device='cpu', compile=True, channels_last=True)), one(load_pipeline(m, device='cpu')), eps=1e-4)
