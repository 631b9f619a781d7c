"""README.md and nbs/index.ipynb (the docs' home page) kept from drifting apart, and the README's code kept true.

The two commands and the lesson table must be the same in both; every lesson notebook must be listed, with its
module; every `from mdaug... import` in the README must resolve and every call of an imported name must fit its
signature; and each ```python block marked `<!-- runnable -->` runs as written (ci profile, offline, empty folder)."""
import ast, importlib, inspect, json, os, re, subprocess, sys

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()
INDEX = json.loads((ROOT / "nbs" / "index.ipynb").read_text())
INDEX_MD = "\n\n".join("".join(c["source"]) for c in INDEX["cells"] if c["cell_type"] == "markdown")
SITE = "https://mdaug.github.io/mdaug/"
LESSONS = sorted(p for p in (ROOT / "nbs").glob("[0-9]*.ipynb"))


def marked(text, name):
    "The command between `<!-- name -->` and `<!-- /name -->` (fences and blank lines dropped), as .ci/run reads it."
    m = re.search(rf"<!-- {name} -->\n(.*?)<!-- /{name} -->", text, re.S)
    assert m, f"README.md has no <!-- {name} --> ... <!-- /{name} --> block"
    lines = [l for l in m.group(1).splitlines() if l.strip() and not l.startswith("```")]
    assert len(lines) == 1, f"the {name} block should hold one command line, found {lines}"
    return lines[0]


def test_the_two_commands_agree():
    for name in ("main-command", "test-command"):
        cmd = marked(README, name)
        assert f"```sh\n{cmd}\n```" in INDEX_MD, f"nbs/index.ipynb does not show the README's {name} as a block: {cmd}"
    assert "pytest" in marked(README, "test-command") and "mdaug demo" in marked(README, "main-command")


def lesson_rows(text, where):
    "{lesson number: (link, modules, what it teaches)} from the markdown table under '## The lessons'."
    sec = re.search(r"^## The lessons\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert sec, f"{where} has no '## The lessons' section"
    rows = {}
    for m in re.finditer(r"^\| \[(\w+) [^\]]+\]\(([^)]+)\) \| ([^|]+) \| (.+) \|$", sec.group(1), re.M):
        num, link, mods, what = m.groups()
        assert num not in rows, f"{where} lists lesson {num} twice"
        rows[num] = (link.removeprefix(SITE), tuple(re.findall(r"`(mdaug\.\w+)`", mods)), what.strip())
    return rows


def test_lesson_lists_agree_and_cover_every_lesson():
    readme, index = lesson_rows(README, "README.md"), lesson_rows(INDEX_MD, "nbs/index.ipynb")
    diff = [f"{k}: README {readme.get(k)} | index {index.get(k)}"
            for k in sorted(set(readme) | set(index)) if readme.get(k) != index.get(k)]
    assert not diff, "README.md and nbs/index.ipynb list different lessons:\n" + "\n".join(diff)
    assert all(link.startswith(SITE) for link in re.findall(r"\]\((https://mdaug\.github\.io[^)]*)\)", README))
    nums = {p.name.split("_")[0]: p for p in LESSONS}
    assert set(readme) == set(nums), (f"lessons in nbs/ but not listed: {sorted(set(nums) - set(readme))}; "
                                      f"listed but not in nbs/: {sorted(set(readme) - set(nums))}")
    for num, p in nums.items():
        link, mods, what = readme[num]
        page = re.sub(r"^\d+[a-zA-Z0-9]*_", "", p.stem.lower()) + ".html"  # nbdev's page name for the notebook
        assert link == page, f"lesson {num} links to {link}, its page is {page}"
        exp = re.search(r"#\| default_exp (\w+)", p.read_text())
        mod = exp and f"mdaug.{exp.group(1)}"
        assert mod in mods, f"{p.name} exports {mod}, the table says {mods}"
        assert what, f"lesson {num} has no description"


def python_blocks(runnable):
    "The README's ```python blocks, those marked `<!-- runnable -->` (True) or the others (False)."
    blocks = re.findall(r"(<!-- runnable -->\n)?```python\n(.*?)```", README, re.S)
    return [code for mark, code in blocks if bool(mark) == runnable]


def pipeline_module():
    "'mdaug.pipeline' once it exists; until then the pipeline still lives in mdaug.generate."
    try: importlib.import_module("mdaug.pipeline"); return "mdaug.pipeline"
    except ModuleNotFoundError: return "mdaug.generate"


def imported(code, missing):
    "{name: object} of the `from mdaug... import` lines of `code`; names that do not resolve go to `missing`."
    names = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("mdaug"):
            try: mod = importlib.import_module(node.module)
            except ModuleNotFoundError: mod = None
            for a in node.names:
                if mod is None or not hasattr(mod, a.name): missing.add(f"{node.module}.{a.name}")
                else: names[a.asname or a.name] = getattr(mod, a.name)
    return names


def test_readme_imports_resolve_and_calls_fit_signatures():
    "Every name the README imports exists, and every call of one binds to its signature (no stale module or keyword)."
    assert python_blocks(True), "README.md has no ```python block marked <!-- runnable -->"
    missing, bad = set(), []
    for code in python_blocks(False) + python_blocks(True):
        names = imported(code, missing)
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
                try: inspect.signature(names[node.func.id]).bind(*node.args, **{k.arg: k.value for k in node.keywords})
                except TypeError as e: bad.append(f"{ast.unparse(node)}: {e}")
    assert not missing, f"README.md imports names that do not exist: {', '.join(sorted(missing))}"
    assert not bad, "README.md calls that do not fit the functions' signatures:\n" + "\n".join(bad)


@pytest.mark.parametrize("i", range(len(python_blocks(True))))
def test_runnable_snippet_runs_as_written(i, tmp_path):
    "The snippet runs in an empty folder, offline, under the ci profile, in a fresh interpreter."
    code = python_blocks(True)[i]
    env = {**os.environ, "MDAUG_PROFILE": "ci", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "MDAUG_CACHE": str(tmp_path / "cache")}
    (tmp_path / "snippet.py").write_text(code)
    r = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"README snippet {i} failed:\n{code}\n{r.stderr[-3000:]}"
