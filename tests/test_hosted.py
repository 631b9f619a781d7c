"""Lessons as a hosted notebook (Colab, Kaggle) meets them: opened alone, after a plain `pip install`, no clone in reach.

`test_wheel_in_fresh_venv` builds the wheel, installs it into a new virtual environment (dependencies resolved by pip
from the package index, as on a user's machine), and there runs `mdaug demo` and lessons 06 and 08 copied alone into
an empty folder. It takes a few minutes; skip it locally with `pytest -m "not wheel"` (CI runs it).
"""
import importlib.util, json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import pytest

from conftest import ROOT

LESSONS = sorted(p for p in (ROOT / "nbs").glob("[0-9][0-9]_*.ipynb"))
REPO = "mdaug/mdaug"
FIND_SPEC = importlib.util.find_spec


def cells(nb):
    return [(c["cell_type"], "".join(c["source"])) for c in json.loads(nb.read_text())["cells"]]


def install_cell(nb):
    return next(s for k, s in cells(nb) if k == "code" and "google.colab" in s)


@pytest.mark.parametrize("nb", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_opens_in_colab_and_kaggle(nb):
    cs = cells(nb)
    (_, title), (kind, badges), (kind2, install) = cs[0], cs[1], cs[2]
    assert title.startswith("# "), f"{nb.name}: the title cell must come first"
    assert kind == "markdown" and kind2 == "code", f"{nb.name}: badges then the install cell must follow the title"
    url = f"github.com/{REPO}/blob/main/nbs/{nb.name}"
    assert f"https://colab.research.google.com/{url.replace('github.com', 'github')}" in badges, f"{nb.name}: no Colab link to itself"
    assert f"https://kaggle.com/kernels/welcome?src=https://{url}" in badges, f"{nb.name}: no Kaggle link to itself"
    assert install.startswith("#| hide\n"), f"{nb.name}: the install cell should be hidden in the docs"
    assert install == install_cell(LESSONS[0]), f"{nb.name}: its install cell differs from 00_core's"


def run_install_cell(monkeypatch, env, mdaug_found):
    "Execute the lessons' install cell with `env` set and `subprocess.run` recorded instead of run."
    calls = []
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    for k, v in env.items(): monkeypatch.setenv(k, v)
    monkeypatch.setattr(subprocess, "run", lambda *a, **kw: calls.append(a[0]))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (FIND_SPEC(name, *a) if mdaug_found or name != "mdaug" else None))
    exec(install_cell(LESSONS[0]), {})
    return calls


def test_install_cell_only_installs_on_a_hosted_notebook_without_mdaug(monkeypatch):
    assert run_install_cell(monkeypatch, {}, mdaug_found=False) == []          # your own machine: never
    assert run_install_cell(monkeypatch, {"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, mdaug_found=True) == []  # installed already
    calls = run_install_cell(monkeypatch, {"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, mdaug_found=False)
    assert len(calls) == 1 and calls[0][1:4] == ["-m", "pip", "install"] and calls[0][-1] == f"mdaug @ git+https://github.com/{REPO}"
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    assert len(run_install_cell(monkeypatch, {}, mdaug_found=False)) == 1       # Colab


RUNNER = r'''
"Run notebooks top to bottom in an IPython shell, leaving out the cells nbdev's tests leave out (eval: false, slow, notest)."
import os, re, sys, time
from pathlib import Path
from fastcore.nbio import read_nb
from execnb.shell import CaptureShell

def skip(cell):
    if cell.cell_type != 'code': return True
    d = cell.source
    return bool(re.search(r'^#\|\s*eval:\s*false', d, re.M) or re.search(r'^#\|\s*(slow|notest)\s*$', d, re.M))

for fn in map(Path, sys.argv[1:]):
    t = time.time(); os.chdir(fn.parent)
    sh = CaptureShell(fn)
    try: sh.run_all(read_nb(fn), exc_stop=True, preproc=skip)
    except Exception:
        print(f"{fn.name}: a cell failed", file=sys.stderr); raise
    print(f"{fn.name}: ran in {time.time() - t:.0f} s", flush=True)
'''


def run(cmd, cwd, env, timeout=900):
    t = time.time()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd[:3]} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-6000:]}"
    return r.stdout, time.time() - t


def source_tree(dest):
    "The files a clean checkout has (tracked and untracked-but-not-ignored), copied to `dest`: no stale build folders."
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file(): (dest / f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT / f, dest / f)
    return dest


@pytest.mark.wheel
def test_wheel_in_fresh_venv():
    work = Path(tempfile.mkdtemp(prefix="mdaug-wheel-"))
    try:
        src = source_tree(work / "src")
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(src)], work, os.environ)
        (wheel,) = (work / "dist").glob("mdaug-*.whl")
        print(f"\nwheel: {wheel.name}, {wheel.stat().st_size / 2**20:.1f} MiB")
        names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True).stdout
        assert "mdaug/assets/model/unet/diffusion_pytorch_model.safetensors" in names and "mdaug/assets/sample/" not in names

        venv = work / "venv"
        run([sys.executable, "-m", "venv", str(venv)], work, os.environ)
        py = venv / "bin" / "python"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "MDAUG", "PYTEST", "IN_TEST"))}
        env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", MDAUG_CACHE=str(work / "cache"), MPLBACKEND="Agg")
        _, secs = run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel), "execnb"], work, env, timeout=1500)
        print(f"pip install of the wheel (and execnb, the notebook runner): {secs:.0f} s")

        hosted = work / "hosted"; hosted.mkdir()  # an empty folder: no data/, no nbs/, no repository
        check = ("import mdaug, sys; from mdaug.samplers import ddim_sample; from mdaug.pipeline import load_pipeline; "
                 "from mdaug.data import sample_data; p = load_pipeline(); d = sample_data(); "
                 "print(mdaug.__file__, p._mdaug_path, d, sep='\\n'); "
                 f"assert not any(s.startswith({str(ROOT)!r}) for s in sys.path if s)")
        out, secs = run([str(py), "-c", check], hosted, env)
        pkg, model, data = out.strip().splitlines()[-3:]
        assert pkg.startswith(str(venv)) and model.startswith(str(venv)), f"mdaug was not loaded from the fresh venv:\n{out}"
        assert data == str(work / "cache" / "sample"), out
        assert "identical to the published sample set" in out, out
        print(f"import, load_pipeline() and sample_data() (simulated into the cache): {secs:.0f} s")

        ci = {**env, "MDAUG_PROFILE": "ci", "IN_TEST": "1"}
        out, secs = run([str(venv / "bin" / "mdaug"), "demo", "--out", str(hosted / "demo"), "--no-progress"], hosted, ci)
        assert (hosted / "demo" / "report.md").is_file() and (hosted / "demo" / "grid.png").is_file(), out
        print(f"mdaug demo (ci): {secs:.0f} s")

        for name in ("06_samplers.ipynb", "08_generate.ipynb"): shutil.copy(ROOT / "nbs" / name, hosted / name)
        (work / "run_nbs.py").write_text(RUNNER)
        out, secs = run([str(py), str(work / "run_nbs.py"), str(hosted / "06_samplers.ipynb"), str(hosted / "08_generate.ipynb")], hosted, ci)
        print(out.strip())
        assert out.count("ran in") == 2, out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_sample_data_is_simulated_into_the_cache_without_a_clone(tmp_path, monkeypatch, capsys):
    import mdaug.data as data
    real = data.shipped
    def no_clone(name):
        if name == "sample": raise FileNotFoundError("no data/sample (as after a pip install)")
        return real(name)
    monkeypatch.setattr(data, "shipped", no_clone)
    monkeypatch.setenv("MDAUG_CACHE", str(tmp_path / "cache"))
    p = data.sample_data()
    assert p == tmp_path / "cache" / "sample" and "identical to the published sample set" in capsys.readouterr().out
    assert data.folder_digests(p) == data.load_json(real("sample_sha256.json"))
    assert data.sample_data() == p and "simulating" not in capsys.readouterr().out   # once only
    assert not [q for q in (tmp_path / "cache").iterdir() if q.name.startswith(".")]  # no half-written folder left
