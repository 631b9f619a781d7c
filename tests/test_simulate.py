"The dataset writer is deterministic across worker counts, and rejects bad settings with clear errors."
import csv, filecmp
from pathlib import Path

import pytest
from mdaug.simulate import simulate_dataset, RadarConfig


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob('*') if p.is_file())


def test_same_bytes_any_worker_count(tmp_path):
    kw = dict(classes='walk,drone,bird', n_subjects=2, n_per_subject=2, image_size=32, seed=3, progress=False)
    a = simulate_dataset(tmp_path / 'a', n_workers=1, **kw).parent
    b = simulate_dataset(tmp_path / 'b', n_workers=2, **kw).parent
    files = _tree(a)
    assert files == _tree(b) and len(files) == 3 * 4 + 2
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    rows = list(csv.DictReader(open(a / 'metadata.csv')))
    assert [r['file'] for r in rows][:2] == ['walk/s00_000.png', 'walk/s00_001.png']
    assert {r['subject'] for r in rows} == {'s00', 's01'}


def test_rewrite_and_refuse(tmp_path):
    out = tmp_path / 'sim'
    simulate_dataset(out, classes=['walk'], n_subjects=1, n_per_subject=1, image_size=16, n_workers=1, progress=False)
    simulate_dataset(out, classes=['bird'], n_subjects=1, n_per_subject=1, image_size=16, n_workers=1, progress=False)
    assert _tree(out) == ['bird/s00_000.png', 'metadata.csv', 'metadata.json']   # replaced, nothing stale left
    other = tmp_path / 'other'; other.mkdir(); (other / 'keep.txt').write_text('x')
    with pytest.raises(ValueError, match='not a dataset'):
        simulate_dataset(other, classes=['walk'], n_subjects=1, n_per_subject=1, progress=False)
    assert (other / 'keep.txt').exists()


def test_bad_settings():
    with pytest.raises(ValueError, match='unknown class'):
        simulate_dataset('/nonexistent/x', classes='walk,cat', progress=False)
    with pytest.raises(ValueError, match='raise prf'):
        simulate_dataset('/nonexistent/x', classes='drone', prf=5000, progress=False)
    with pytest.raises(ValueError, match='must be > 0'):
        RadarConfig(duration=0)
