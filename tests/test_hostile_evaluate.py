"Hostile `mdaug evaluate`: big images must not fill memory (it streams); bad numbers are refused before any write."
import os, shutil, subprocess, sys, threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MDAUG = shutil.which("mdaug") or pytest.fail("the `mdaug` command is not installed: pip install -e '.[dev]'")
ENV = {**os.environ, "MDAUG_PROFILE": "ci"}


def make_folder(root:Path, n:int, side:int, seed:int, classes=("walk", "run", "drone"), subjects:int=6):
    "`n` smooth random RGB images under `root/<class>/<subject>_<i>.png` (realistic sizes; content does not matter)."
    rng = np.random.default_rng(seed)
    for i in range(n):
        c, s = classes[i % len(classes)], (i // len(classes)) % subjects
        low = (rng.random((side // 16, side // 16, 3)) * 255).astype(np.uint8)
        (root / c).mkdir(parents=True, exist_ok=True)
        Image.fromarray(low).resize((side, side), Image.BILINEAR).save(root / c / f"s{s}_{i:04d}.png")
    return root


def peak_rss_mb(args, timeout=240) -> float:
    "Run `mdaug *args` as a user would and return the child's peak resident memory in MiB (from wait4's rusage)."
    with open(os.devnull, "w") as null:
        p = subprocess.Popen([MDAUG, *map(str, args)], env=ENV, stdout=null, stderr=subprocess.PIPE, text=True)
        killer = threading.Timer(timeout, p.kill); killer.start()
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        killer.cancel(); p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0, f"mdaug {args} failed ({p.returncode}):\n{err[-3000:]}"
    return ru.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)   # bytes on macOS, KiB elsewhere


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs os.wait4 (POSIX) to read a child's peak memory")
def test_evaluate_peak_memory_does_not_grow_with_images(tmp_path):
    # 256 px RGB is 786 KB per image as float32. The in-memory evaluate held every image several times over
    # (about 4 MB per image, measured), so 135 more images put ~500 MB on its peak; streaming keeps small copies
    runs = {}
    for n_real, n_gen in ((90, 45), (180, 90)):
        d = tmp_path / f"n{n_real}"
        real, gen = make_folder(d / "real", n_real, 256, 1), make_folder(d / "gen", n_gen, 256, 2)
        runs[n_real + n_gen] = peak_rss_mb(["evaluate", real, gen, "--out", d / "eval", "--classifier-steps", 10,
                                            "--kid-subsets", 5, "--no-progress"])
        assert (d / "eval" / "report.md").is_file()
    (small, a), (big, b) = sorted(runs.items())
    assert b - a < 150, f"peak memory grew from {a:.0f} MiB ({small} images) to {b:.0f} MiB ({big}): it holds images"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    return make_folder(d / "real", 24, 32, 3), make_folder(d / "gen", 12, 32, 4)


@pytest.mark.parametrize("cmd,opts,msg", [
    ("evaluate", ["--k", "0"], "k must be at least 1"),
    ("evaluate", ["--kid-subsets", "0"], "kid_subsets must be at least 1"),
    ("evaluate", ["--image-size", "0"], "image_size must be at least 16"),
    ("evaluate", ["--seed", "-1"], "seed must be at least 0"),
    ("evaluate", ["--k", "50"], "k=50 neighbours need more than 50 images"),   # known once the folders are read
    ("benchmark", ["--sift-thresholds", "nan"], "sift_thresholds must be in [0, 1)"),
    ("benchmark", ["--image-size", "0"], "image_size must be at least 16"),
])
def test_bad_number_exits_2_and_writes_nothing(tiny, tmp_path, cmd, opts, msg):
    real, gen = tiny
    out = tmp_path / "out"
    args = ["evaluate", real, gen] if cmd == "evaluate" else ["benchmark", real]
    r = subprocess.run([MDAUG, *map(str, args), "--out", str(out), *opts, "--no-progress"],
                       capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode == 2, (opts, r.returncode, r.stderr[-2000:])
    assert msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())   # no folder, no lock


def test_second_writer_is_refused(tiny, tmp_path):
    from mdaug.core import folder_lock
    real, gen = tiny
    out = tmp_path / "eval"
    with folder_lock(out, what="mdaug evaluate"):   # a live run owns the folder
        r = subprocess.run([MDAUG, "evaluate", str(real), str(gen), "--out", str(out), "--classifier-steps", "10",
                            "--no-progress"], capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode == 2 and "is in use by mdaug evaluate" in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists(), r.stderr
