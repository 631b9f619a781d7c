"A run killed with SIGKILL after a checkpoint resumes from it and repeats the losses of an uninterrupted run."
import os, sys, json, time, signal, subprocess, threading
from pathlib import Path
import fastcore.test as fct
from safetensors.torch import load_file

from conftest import ROOT
from test_train_fixtures import make_data, make_vqvae

KW = dict(steps=8, batch_size=4, checkpoint_every=3, sample_every=100, sample_steps=2, log_with='none')

SCRIPT = """
import sys, time
from mdaug.train import train_ldm, make_settings
from mdaug.learner import FuncCB
data, vq, out, kw = sys.argv[1], sys.argv[2], sys.argv[3], eval(sys.argv[4])
train_ldm(data, vq, out, make_settings('ci', **kw), cbs=[FuncCB(after_step=lambda learn: time.sleep(0.5))], progress=False)
"""

def losses(run): return [json.loads(l) for l in (Path(run)/'log.jsonl').read_text().splitlines()]

def test_kill_and_resume(tmp_path):
    from mdaug.train import train_ldm, make_settings
    from mdaug.learner import list_checkpoints
    data, vq, run = make_data(tmp_path/'data'), make_vqvae(tmp_path/'vq'), tmp_path/'run'
    env = os.environ | {'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    err = open(tmp_path/'stderr.txt', 'w')
    p = subprocess.Popen([sys.executable, '-c', SCRIPT, str(data), str(vq), str(run), repr(KW)], env=env, stdout=subprocess.DEVNULL, stderr=err)
    def killer():  # SIGKILL as soon as the first checkpoint is complete (its folder appears by an atomic rename)
        first, t0 = run/'checkpoints'/'checkpoint-000003', time.time()
        while not first.exists() and p.poll() is None and time.time() - t0 < 120: time.sleep(0.01)
        if p.poll() is None: os.kill(p.pid, signal.SIGKILL)
    th = threading.Thread(target=killer); th.start()
    ref = train_ldm(data, vq, tmp_path/'ref', make_settings('ci', **KW), progress=False)    # the uninterrupted run, meanwhile, in this process
    th.join(); p.wait(); err.close()
    assert p.returncode == -signal.SIGKILL, (tmp_path/'stderr.txt').read_text()
    assert not (run/'model').exists(), "the run finished before it was killed"
    fct.test_eq(list_checkpoints(run)[-1].name, 'checkpoint-000003')

    train_ldm(data, vq, run, make_settings('ci', **KW), resume='latest', progress=False)
    got, exp = losses(run), losses(tmp_path/'ref')
    fct.test_eq([o['step'] for o in got], list(range(1, 9)))
    fct.test_close([o['loss'] for o in got], [o['loss'] for o in exp], eps=1e-5)
    a, b = load_file(run/'model'/'unet'/'diffusion_pytorch_model.safetensors'), load_file(ref/'unet'/'diffusion_pytorch_model.safetensors')
    for k in a: fct.test_close(a[k], b[k], eps=1e-4)  # thread counts differ between the runs: float noise only
