"Shared pytest setup: tests run the `ci` profile on whatever cores the machine has."
import os
from pathlib import Path

os.environ.setdefault("MDAUG_PROFILE", "ci")
os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
