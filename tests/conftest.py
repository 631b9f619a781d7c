"Shared pytest setup: tests run the `ci` profile on whatever cores the machine has."
import os
from pathlib import Path

os.environ.setdefault("MDAUG_PROFILE", "ci")
os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one BLAS/OpenMP thread per worker: `pytest -n 2` on 2 cores otherwise runs 4 spinning threads and slows every test
    os.environ.setdefault("OMP_NUM_THREADS", "1")
