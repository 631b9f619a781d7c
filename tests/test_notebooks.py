"Run every lesson notebook through nbdev's own test runner (honours `#| eval: false` and the `slow` flag)."
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

from conftest import ROOT

NBS = sorted(p for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_"))


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(nb.parent)
    skip = get_config(ROOT).tst_flags.split()
    ok, secs = run_notebook(nb, skip_flags=skip, basepath=str(ROOT), cell_timeout=900)
    assert ok, f"{nb.name} failed under nbdev's test runner (see the traceback above)"
