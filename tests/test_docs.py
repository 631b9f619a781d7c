"The docs site's input: every notebook goes through nbdev's doc processors (show_doc included) without error."
import warnings

from nbdev.serve import proc_nbs

from conftest import ROOT


def test_notebooks_process_for_docs(monkeypatch):
    monkeypatch.chdir(ROOT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proc_nbs(path=str(ROOT / "nbs"), n_workers=0, force=True)  # raises on any cell that fails
    mixed = [str(w.message) for w in caught if "imports and other code" in str(w.message)]
    assert not mixed, "cells mix imports with other code (nbdev runs import cells on their own for the docs):\n" + "\n".join(mixed)
    assert (ROOT / "_proc" / "06_samplers.ipynb").exists()
