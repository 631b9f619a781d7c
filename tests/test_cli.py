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
    for cmd in ("simulate", "prep", "train-vqvae", "train-ldm", "fit", "generate", "augment", "evaluate", "benchmark", "demo"): assert cmd in out
    assert "turn off" not in run("generate", "--help").stdout


def test_simulate_then_prep(tmp_path):
    sim, prep = tmp_path / "sim", tmp_path / "prep"
    run("simulate", "--out", sim, "--n-subjects", 2, "--n-per-subject", 1, "--image-size", 64, "--seed", 3, "--no-progress")
    classes = sorted(p.name for p in sim.iterdir() if p.is_dir())
    assert len(classes) >= 6, classes
    rows = list(csv.DictReader(open(sim / "metadata.csv")))
    assert len(rows) == 2 * len(classes)
    assert {r["class"] for r in rows} == set(classes)
    for r in rows: assert (sim / r["class"] / Path(r["file"]).name).exists()
    run("prep", sim, "--out", prep, "--image-size", 32, "--no-progress")
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
    r = run("prep", tmp_path / "raw", "--out", tmp_path / "out", "--image-size", 32, "--no-progress")
    text = r.stdout + r.stderr
    for name in skipped: assert name in text, f"{name} missing from the summary:\n{text}"
    report = json.loads((tmp_path / "out" / "prep_report.json").read_text())
    listed = json.dumps(report)
    for name in skipped: assert name in listed
    for name in ("palette", "rgba", "sixteen", "gray"): assert (tmp_path / "out" / "box" / f"{name}.png").exists()
    strict = run("prep", tmp_path / "raw", "--out", tmp_path / "out2", "--strict", "--no-progress", ok=False)
    assert strict.returncode == 2 and "skipped" in strict.stderr.lower(), strict.stderr


def test_missing_input_is_a_clear_error(tmp_path):
    r = run("prep", tmp_path / "nope", "--out", tmp_path / "out", ok=False)
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr


def test_train_commands_chain(tmp_path):
    "simulate -> prep -> train-vqvae -> train-ldm -> generate at the `ci` profile's size; each output loads with diffusers."
    from diffusers import UNet2DModel, VQModel
    from mdaug.pipeline import MDaugPipeline
    sim, prep = tmp_path / "sim", tmp_path / "prep"
    run("simulate", "--out", sim, "--classes", "walk,drone,bird", "--n-subjects", 2, "--n-per-subject", 2,
        "--image-size", 32, "--no-progress")
    run("prep", sim, "--out", prep, "--image-size", 32, "--no-progress")
    r = run("train-vqvae", prep, "--out", tmp_path / "vq", "--profile", "ci", "--steps", 2, "--batch-size", 4, "--no-progress")
    best = Path(r.stdout.strip().splitlines()[-1])
    vq = VQModel.from_pretrained(best)
    assert vq.config.scaling_factor != 0.18215 and vq.config.scaling_factor > 0
    r = run("train-ldm", prep, best, "--out", tmp_path / "ldm", "--profile", "ci", "--steps", 2, "--batch-size", 4,
            "--sample-steps", 2, "--no-progress")
    model = Path(r.stdout.strip().splitlines()[-1])
    unet = UNet2DModel.from_pretrained(model / "unet")
    assert unet.config.num_class_embeds == 3 + 1  # three classes and the null class
    assert json.loads((model / "model_index.json").read_text())["_class_name"] == "MDaugPipeline"
    assert MDaugPipeline.from_pretrained(model).classes == ["bird", "drone", "walk"]
    out = Path(run("generate", model, "--out", tmp_path / "gen", "--per-class", 1, "--classes", "walk", "--steps", 2, "--no-progress").stdout.split()[-1])
    assert [r["class"] for r in csv.DictReader(open(out / "metadata.csv"))] == ["walk"]


def test_demo_runs_the_main_job(tmp_path):
    "The README's main job at `ci` size: sample data, shipped model, augmented set, grid and report; a second run adds nothing."
    from mdaug.data import SpectrogramDataset
    r = run("demo", "--out", tmp_path / "demo", "--no-progress")
    report = Path(r.stdout.strip().splitlines()[-1])
    text = report.read_text()
    for part in ("grid.png", "| walk |", "s per image", "same class"): assert part in text, part
    assert Image.open(tmp_path / "demo" / "grid.png").size[0] > 8 * 32
    ds = SpectrogramDataset(tmp_path / "demo" / "augmented")
    rows = list(csv.DictReader(open(tmp_path / "demo" / "augmented" / "metadata.csv")))
    assert len(ds) == len(rows) and {r["generated"] for r in rows} == {"0", "1"}
    run("demo", "--out", tmp_path / "demo", "--no-progress")
    assert len(list(csv.DictReader(open(tmp_path / "demo" / "augmented" / "metadata.csv")))) == len(rows)


def _bad(tmp_path):
    "One wrong call per subcommand, each a mistake a user makes: (arguments, words the one-line error must contain)."
    mine = tmp_path / "mine"; mine.mkdir(); (mine / "notes.txt").write_text("mine")
    swim = tmp_path / "swim" / "swim"; swim.mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(swim / "a_0.png")
    nope = tmp_path / "nope"
    return [
        (["simulate", "--out", tmp_path / "s", "--classes", "swim"], "unknown class"),
        (["prep", nope, "--out", tmp_path / "p"], "does not exist"),
        (["train-vqvae", nope, "--out", tmp_path / "v"], "does not exist"),
        (["train-ldm", swim.parent, nope, "--out", tmp_path / "l"], "no VQ-VAE"),
        (["train-ldm", swim.parent, nope, "--out", tmp_path / "l", "--attention", "flash"], "use one of ('sdpa', 'eager')"),
        (["train-ldm", swim.parent, nope, "--out", tmp_path / "l", "--mixed-precision", "fp8"], "'bf16' or 'auto'"),
        (["fit", nope, "--out", tmp_path / "f"], "does not exist"),
        (["generate", nope], "no model at"),
        (["generate", swim.parent], "not an mdaug model"),
        (["generate", "--sampler", "euler"], "unknown sampler"),
        (["generate", "--steps", 0], "at least 1"),
        (["generate", "--classes", "swim", "--out", tmp_path / "g"], "unknown class 'swim'"),
        (["generate", "--out", mine], "holds other files"),
        (["augment", swim.parent, "--out", tmp_path / "a"], "exactly one of"),
        (["augment", swim.parent, "--per-class", 3, "--out", tmp_path / "a"], "does not know"),
        (["demo", "--out", mine], "holds other files"),
        (["evaluate", swim.parent, nope], "is not a folder"),
        (["evaluate", swim.parent, swim.parent, "--out", mine], "holds other files"),
        (["benchmark", swim.parent, "--out", tmp_path / "b"], "two or more classes"),
        (["benchmark", swim.parent, "--sizes", "5,x"], "comma-separated integers"),
    ]


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    "Every subcommand turns a user's mistake into exit status 2 and one line on stderr, never a traceback."
    seen = set()
    for args, words in _bad(tmp_path):
        r = run(*args, ok=False)
        err = r.stderr.strip()
        assert r.returncode == 2, (args, r.returncode, err[-2000:])
        assert "Traceback" not in err and len(err.splitlines()) == 1, (args, err[-2000:])
        assert words in err and err.startswith(f"mdaug {args[0]}: error:"), (args, err)
        seen.add(args[0])
    from mdaug.cli import COMMANDS
    assert seen == set(COMMANDS)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_every_command_has_help():
    "Every subcommand's --help renders (a '%' in an option's comment once broke argparse's formatting)."
    from mdaug.cli import build_parser, COMMANDS
    for cmd in COMMANDS:
        sub = build_parser(only=cmd)._subparsers._group_actions[0].choices[cmd]
        assert sub.format_help().startswith('usage: mdaug ' + cmd), cmd


def test_fit_from_the_shipped_prior(tmp_path):
    "`mdaug fit --init shipped`: the shipped VQ-VAE is kept (none trained), the UNet fine-tuned from the shipped one."
    out, sample = tmp_path / "fit", Path(__file__).parents[1] / "data" / "sample"
    r = run("fit", sample, "--out", out, "--init", "shipped", "--no-progress")
    assert "7 copied" in r.stdout and "0 new" in r.stdout, r.stdout
    rec = json.loads((out / "fit.json").read_text())
    assert rec["settings"]["image_size"] == 128 and "vqvae" not in rec["done"] and not (out / "vq").exists()
    meta = json.loads((out / "model" / "mdaug.json").read_text())
    assert meta["init"]["copied"] == meta["classes"] and meta["image_size"] == 128
    for args, msg in [(("--init", "shipped", "--image-size", 64), "trained at image_size=128"),
                      (("--init", tmp_path / "no_such_model"), "no_such_model")]:
        bad = run("fit", sample, "--out", tmp_path / "never", *args, "--no-progress", ok=False)
        assert bad.returncode == 2 and msg in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "never").exists()
