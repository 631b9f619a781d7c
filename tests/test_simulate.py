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


def test_easy_scene_unchanged(tmp_path):
    "The default scene still makes the shipped sample's bytes (data/sample_sha256.json), one image per class."
    import hashlib, json
    from mdaug.simulate import CLASSES, sample_params
    want = json.load(open(Path(__file__).parents[1] / 'data' / 'sample_sha256.json'))
    out = simulate_dataset(tmp_path / 'e', n_subjects=1, n_per_subject=1, seed=0, n_workers=1, progress=False).parent
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(CLASSES)
    for c in CLASSES:
        assert hashlib.sha256((out / c / 's00_000.png').read_bytes()).hexdigest() == want[f'{c}/s00_000.png'], c
    assert sample_params('walk', 1, 2) == sample_params('walk', 1, 2, seed=0, max_aspect=30., scene='easy')


def test_hard_scene(tmp_path):
    "The hard scene: its own classes, same bytes for any worker count, subjects sNN and its clutter in the metadata."
    from mdaug.simulate import HARD_CLASSES, SCENES, sample_params
    assert SCENES['hard']['classes'] == HARD_CLASSES and len(HARD_CLASSES) == 7
    kw = dict(scene='hard', n_subjects=2, n_per_subject=1, image_size=32, seed=4, progress=False)
    a = simulate_dataset(tmp_path / 'a', n_workers=1, **kw).parent
    b = simulate_dataset(tmp_path / 'b', n_workers=2, **kw).parent
    files = _tree(a)
    assert files == _tree(b) and len(files) == 7 * 2 + 2
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    rows = list(csv.DictReader(open(a / 'metadata.csv')))
    assert [r['class'] for r in rows[::2]] == list(HARD_CLASSES)
    assert {r['subject'] for r in rows} == {'s00', 's01'} and {r['scene'] for r in rows} == {'hard'}
    (lo, hi), top = SCENES['hard']['snr_db'], SCENES['hard']['max_aspect']
    assert all(abs(float(r['aspect_deg'])) <= top and lo <= float(r['snr_db']) <= hi for r in rows)
    assert all(r['static_db'] and r['veg_db'] for r in rows) and 'second_db' in rows[0]
    p = sample_params('carry', 1, 0, seed=4, scene='hard')
    assert p == sample_params('carry', 1, 0, seed=4, scene='hard')
    assert p != sample_params('carry', 1, 1, seed=4, scene='hard')
    sub = simulate_dataset(tmp_path / 'c', classes='jog,shuffle', n_workers=1, **kw).parent
    assert sorted(p.name for p in sub.iterdir() if p.is_dir()) == ['jog', 'shuffle']


def test_bad_scene():
    with pytest.raises(ValueError, match=r"unknown scene 'medium': choose one of \['easy', 'hard'\]"):
        simulate_dataset('/nonexistent/x', scene='medium', progress=False)
    with pytest.raises(ValueError, match="unknown class"):
        simulate_dataset('/nonexistent/x', classes='drone', scene='hard', progress=False)
    with pytest.raises(ValueError, match="unknown class"):
        simulate_dataset('/nonexistent/x', classes='carry', progress=False)
