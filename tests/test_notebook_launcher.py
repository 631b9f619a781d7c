"Lesson 07's `notebook_launcher` cell (Kaggle's two GPUs) runs as written, here with two CPU processes over gloo."
import json, os, subprocess, sys

from conftest import ROOT


def launch_cell():
    nb = json.loads((ROOT / "nbs" / "07_train.ipynb").read_text())
    return next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and "notebook_launcher(" in "".join(c["source"]))


def test_launch_cell_trains_with_two_processes(tmp_path):
    src = launch_cell()
    first = src.splitlines()[1]
    assert first.startswith("profile, precision, processes, out = 'gpu', 'fp16', 2,"), first
    out = tmp_path / "ldm"
    code = src.replace(first, f"profile, precision, processes, out = 'ci', 'no', 2, {str(out)!r}")
    env = {**os.environ, "MDAUG_PROFILE": "ci", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert "Launching training on 2 " in r.stdout, r.stdout  # accelerate names the device type it guessed
    state = json.loads(max((out / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["num_processes"] == 2, state
    assert (out / "model" / "model_index.json").is_file()
