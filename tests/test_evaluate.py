"`mdaug evaluate` and `mdaug benchmark` as a user runs them: separate processes, real folders, a benchmark killed and resumed."
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest

from mdaug.experiments import ARMS

MDAUG = shutil.which("mdaug") or pytest.fail("the `mdaug` command is not installed: pip install -e '.[dev]'")
ENV = {**os.environ, "MDAUG_PROFILE": "ci"}


def run(*args, ok=True):
    r = subprocess.run([MDAUG, *map(str, args)], capture_output=True, text=True, timeout=600, env=ENV)
    if ok: assert r.returncode == 0, f"mdaug {args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    "A tiny simulated dataset: 4 classes (the benchmark's prior is pretrained on the others), 4 subjects, 2 each, 32 px."
    d = tmp_path_factory.mktemp("bench") / "data"
    run("simulate", "--out", d, "--classes", "walk,run,box,jump", "--n-subjects", 4, "--n-per-subject", 2,
        "--image-size", 32, "--seed", 5, "--no-progress")
    return d


def test_bad_arguments_exit_2(data, tmp_path):
    for args, msg in [(("benchmark", data, "--out", tmp_path / "a", "--sizes", "3,2"), "must increase"),
                      (("benchmark", data, "--out", tmp_path / "b", "--sizes", "two"), "comma-separated integers"),
                      (("benchmark", data, "--out", tmp_path / "c", "--preset", "huge"), "unknown benchmark preset"),
                      (("benchmark", data, "--out", tmp_path / "d", "--sizes", "2,50"), "choose sizes up to"),
                      (("benchmark", tmp_path / "nothing"), "is not a folder"),
                      (("evaluate", data, tmp_path / "nothing"), "is not a folder"),
                      (("evaluate", data, data, "--out", tmp_path / "e", "--classifier-steps", 3), "at least 10")]:
        r = run(*args, "--no-progress", ok=False)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "d").exists()   # refused before any work: the folder is not claimed, a corrected run can use it


def test_evaluate_two_folders(data, tmp_path):
    held, gen, out = tmp_path / "held", tmp_path / "gen", tmp_path / "eval"
    run("simulate", "--out", held, "--n-subjects", 2, "--n-per-subject", 2, "--image-size", 32, "--seed", 6, "--no-progress")
    shutil.copytree(data, gen)   # a "generator" that copies its training data: memorisation must say so
    r = run("evaluate", held, gen, "--out", out, "--train", data, "--classifier-steps", 10, "--kid-subsets", 3, "--no-progress")
    assert str(out / "report.md") in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["memorisation"]["share_closer"] == 1.0                 # every copy sits at distance 0 from its original
    assert {"fid", "kid", "precision", "recall", "density", "coverage"} <= set(m["generated"])
    for f in ("report.md", "memorisation.png", "closest.png", "classifier/model.safetensors"): assert (out / f).is_file(), f
    run("evaluate", held, gen, "--out", out, "--train", data, "--classifier-steps", 10, "--kid-subsets", 3, "--no-progress")
    assert json.loads((out / "metrics.json").read_text()) == m       # the saved classifier is reused: the same numbers
    r = run("evaluate", held, gen, "--out", gen, ok=False)          # never writes into a folder it did not make
    assert r.returncode == 2 and "holds other files" in r.stderr


def test_benchmark_killed_and_resumed(data, tmp_path):
    out = tmp_path / "run"
    args = [MDAUG, "benchmark", str(data), "--out", str(out), "--preset", "ci", "--seeds", "3", "--no-progress"]
    p = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state = out / "benchmark.json"
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:   # kill it once some arms are done but not all
        try: arms = json.loads(state.read_text())["done"].get("arms", {})
        except (FileNotFoundError, json.JSONDecodeError, KeyError): arms = {}
        if len(arms) >= 3: break
        time.sleep(0.2)
    assert p.poll() is None, f"the benchmark ended before it could be killed:\n{p.stdout.read()}"
    p.send_signal(signal.SIGKILL); p.wait()
    done = json.loads(state.read_text())["done"]["arms"]
    n_arms = len(ARMS) * 2 * 2 * 3   # arms x folds x sizes x seeds
    assert 3 <= len(done) < n_arms
    r = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    final = json.loads(state.read_text())["done"]["arms"]
    assert len(final) == n_arms
    for k, v in done.items(): assert final[k] == v, k     # finished arms were kept, not trained again
    res = json.loads((out / "results.json").read_text())
    assert set(res["accuracy"]) == set(ARMS)
    assert all(res["accuracy"][a]["2"] for a in ARMS)   # every arm ran: gen, variations, the held-out prior, sim-pretrained
    assert res["prior_pool"]["classes"] and not set(res["prior_pool"]["classes"]) & {"walk", "run", "box", "jump"}
    assert res["folds"] == 2 and all(len(v) == 2 for per in res["fold_accuracy"].values() for v in per.values())
    for f in ("report.md", "accuracy.png", "confusion.png", "memorisation.png", "samples.png"): assert (out / f).is_file(), f
