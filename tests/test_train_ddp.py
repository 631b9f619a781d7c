"Two processes over gloo (torchrun on CPU) train a few steps: identical weights on both ranks, one checkpoint, one log."
import os, sys, json, subprocess
import fastcore.test as fct

from conftest import ROOT
from test_train_fixtures import make_data, make_vqvae


def test_two_processes(tmp_path):
    data, vq, out = make_data(tmp_path/'data'), make_vqvae(tmp_path/'vq'), tmp_path/'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'mdaug.train',
           str(data), str(vq), '--out', str(out), '--profile', 'ci', '--steps', '3', '--batch-size', '4',
           '--checkpoint-every', '100', '--sample-steps', '2', '--no-progress']
    env = os.environ | {'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]

    cks = sorted((out/'checkpoints').iterdir())
    fct.test_eq([p.name for p in cks], ['checkpoint-000003'])          # exactly one checkpoint, no leftovers
    st = json.loads((cks[0]/'trainer_state.json').read_text())
    fct.test_eq(st['num_processes'], 2)
    fct.test_eq(len(st['param_sha256']), 2)
    fct.test_eq(st['param_sha256'][0], st['param_sha256'][1])          # both ranks hold the same weights
    names = {p.name for p in cks[0].iterdir()}
    assert {'model.safetensors', 'callbacks.safetensors', 'random_states_0.pkl', 'random_states_1.pkl',
            'callbacks_rank0.safetensors', 'callbacks_rank1.safetensors'} <= names, names

    logs = [json.loads(l) for l in (out/'log.jsonl').read_text().splitlines()]
    fct.test_eq([o['step'] for o in logs], [1, 2, 3])                    # one log, written once per step
    events = list((out/'logs').rglob('events.out.tfevents.*'))
    fct.test_eq(len({p.name.split('.')[-2] for p in events}), 1)          # TensorBoard files from one process only
    fct.test_eq(len(list((out/'samples').glob('*.png'))), 1)
    assert (out/'model'/'unet'/'diffusion_pytorch_model.safetensors').exists()
