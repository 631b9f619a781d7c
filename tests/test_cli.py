"The installed `mdaug` command, run as a user would: a separate process on real files."
import csv, json, os, shutil, subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MDAUG = shutil.which("mdaug") or pytest.fail("the `mdaug` command is not installed: pip install -e '.[dev]'")


def run(*args, ok=True):
    r = subprocess.run([MDAUG, *map(str, args)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "MDAUG_PROFILE": "ci"})
    if ok: assert r.returncode == 0, f"mdaug {args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def test_help_lists_stages():
    out = run("--help").stdout
    for cmd in ("simulate", "prep", "demo"): assert cmd in out


def test_simulate_then_prep(tmp_path):
    sim, prep = tmp_path / "sim", tmp_path / "prep"
    run("simulate", "--out", sim, "--n-subjects", 2, "--n-per-subject", 1, "--image-size", 64, "--seed", 3, "--no-progress")
    classes = sorted(p.name for p in sim.iterdir() if p.is_dir())
    assert len(classes) >= 6, classes
    rows = list(csv.DictReader(open(sim / "metadata.csv")))
    assert len(rows) == 2 * len(classes)
    assert {r["class"] for r in rows} == set(classes)
    for r in rows: assert (sim / r["class"] / Path(r["file"]).name).exists()
    run("prep", sim, prep, "--image-size", 32, "--no-progress")
    assert json.loads((prep / "classes.json").read_text()) in (classes, {c: i for i, c in enumerate(classes)})
    ims = sorted(prep.rglob("*.png"))
    assert len(ims) == len(rows)
    assert {Image.open(p).size for p in ims} == {(32, 32)}


def _bad_folder(root):
    "Good images next to one file of every kind of trouble that measured datasets contain."
    good = root / "walk"; good.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3): Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(good / f"s1_{i}.png")
    bad = root / "box"; bad.mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(bad / "s2_0.png")
    (bad / "zero.png").write_bytes(b"")
    (bad / "notes.png").write_text("this is not an image")
    full = (good / "s1_0.png").read_bytes(); (bad / "truncated.png").write_bytes(full[: len(full) // 2])
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 255, 300, dtype=np.uint8)))
    Image.new("RGB", (1, 1)).save(bad / "tiny.png")
    Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).convert("P").save(bad / "palette.png")
    Image.fromarray(rng.integers(0, 255, (40, 40, 4), dtype=np.uint8), "RGBA").save(bad / "rgba.png")
    Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16)).save(bad / "sixteen.png")
    Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8), "L").save(bad / "gray.png")
    return {"zero.png", "notes.png", "truncated.png", "corrupt.png", "tiny.png"}


def test_prep_reports_bad_files(tmp_path):
    skipped = _bad_folder(tmp_path / "raw")
    r = run("prep", tmp_path / "raw", tmp_path / "out", "--image-size", 32, "--no-progress")
    text = r.stdout + r.stderr
    for name in skipped: assert name in text, f"{name} missing from the summary:\n{text}"
    report = json.loads((tmp_path / "out" / "prep_report.json").read_text())
    listed = json.dumps(report)
    for name in skipped: assert name in listed
    for name in ("palette", "rgba", "sixteen", "gray"): assert (tmp_path / "out" / "box" / f"{name}.png").exists()
    strict = run("prep", tmp_path / "raw", tmp_path / "out2", "--strict", "--no-progress", ok=False)
    assert strict.returncode == 2 and "skipped" in strict.stderr.lower(), strict.stderr


def test_missing_input_is_a_clear_error(tmp_path):
    r = run("prep", tmp_path / "nope", tmp_path / "out", ok=False)
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr


def test_train_commands_chain(tmp_path):
    "simulate -> prep -> train-vqvae -> train-ldm at the `ci` profile's size; each output loads with diffusers."
    from diffusers import UNet2DModel, VQModel
    sim, prep = tmp_path / "sim", tmp_path / "prep"
    run("simulate", "--out", sim, "--classes", "walk,drone,bird", "--n-subjects", 2, "--n-per-subject", 2,
        "--image-size", 32, "--no-progress")
    run("prep", sim, prep, "--image-size", 32, "--no-progress")
    r = run("train-vqvae", "--data", prep, "--out", tmp_path / "vq", "--profile", "ci", "--steps", 2, "--batch-size", 4, "--no-progress")
    best = Path(r.stdout.strip().splitlines()[-1])
    vq = VQModel.from_pretrained(best)
    assert vq.config.scaling_factor != 0.18215 and vq.config.scaling_factor > 0
    r = run("train-ldm", "--data", prep, "--vqvae", best, "--out", tmp_path / "ldm", "--profile", "ci", "--steps", 2, "--batch-size", 4,
            "--sample-steps", 2, "--no-progress")
    model = Path(r.stdout.strip().splitlines()[-1])
    unet = UNet2DModel.from_pretrained(model / "unet")
    assert unet.config.num_class_embeds == 3 + 1  # three classes and the null class
