"Hostile data (issue 22): nothing lost, nothing poisoned. Each test reproduces one finding the way a user meets it."
import csv, hashlib, json, os, signal, struct, subprocess, sys, time, zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mdaug.core import folder_lock
from mdaug.data import prepare, PrepError, SpectrogramDataset, find_images, read_metadata, resolve_layout

ENV = {**os.environ, 'MDAUG_PROFILE': 'ci'}


def mdaug(*args, timeout=120):
    "Run the `mdaug` command as a user would."
    return subprocess.run(['mdaug', *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)


def refused(r, *words) -> str:
    "Assert exit status 2 with exactly one stderr line, no traceback, naming each of `words`; returns the line."
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and 'Traceback' not in r.stderr, (r.returncode, r.stderr[-2000:])
    for w in words: assert w in lines[0], (w, lines[0])
    return lines[0]


def img(p, size=20, seed=0) -> Path:
    p = Path(p); p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
    return p


def tree(root, paths, size=20) -> Path:
    for i, p in enumerate(paths): img(Path(root)/p, size, seed=i)
    return Path(root)


def snapshot(folder) -> dict:
    "Every file under `folder` (hidden ones too) with a digest of its bytes."
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def prep_args(src, out, *more):
    return ['prep', src, '--out', out, '--image-size', 16, '--n-workers', 0, '--no-progress', *more]


# 1. layouts ------------------------------------------------------------------------------------------------------

def test_user_class_tree_is_labelled_by_class_not_by_user(tmp_path):
    "`<user>/<class>/image.png` was read as classes 's01, s02'; the classes are the activities, the users subjects."
    src = tree(tmp_path/'raw', [f'{u}/{c}/{n}.png' for u in ('s01', 's02') for c in ('walk', 'run') for n in range(2)])
    out = tmp_path/'out'
    prepare(src, out, image_size=16, n_workers=0, progress=False)
    assert json.loads((out/'classes.json').read_text()) == {'run': 0, 'walk': 1}
    assert (out/'walk'/'s01'/'0.png').is_file()                         # canonical <class>/<user>/<file>
    rows = list(csv.DictReader(open(out/'metadata.csv')))
    pairs = {(r['file'].split('/')[0], r['subject']) for r in rows}
    assert pairs == {(c, u) for c in ('run', 'walk') for u in ('s01', 's02')}
    for folder in (src, out):                                            # the raw tree and the prepared one agree
        ds = SpectrogramDataset(folder)
        assert ds.classes == ['run', 'walk'] and set(ds.subjects) == {'s01', 's02'}, (folder, ds.classes)


def test_ambiguous_layout_is_reported_and_the_option_changes_it(tmp_path, capsys):
    "Named people by activities could be either way round: one line says what was chosen and how to change it."
    people = ('alice', 'bob', 'carol')
    src = tree(tmp_path/'raw', [f'{u}/{c}/{n}.png' for u in people for c in ('walk', 'run') for n in range(2)])
    rep = prepare(src, tmp_path/'a', image_size=16, n_workers=0, progress=False)
    notes = [l for l in capsys.readouterr().out.splitlines() if 'layout=' in l]
    assert len(notes) == 1 and "layout='user/class'" in notes[0] and "layout='class/user'" in notes[0], notes
    assert rep.classes == ['run', 'walk']
    rep = prepare(src, tmp_path/'b', image_size=16, n_workers=0, progress=False, layout='class/user')
    assert rep.classes == ['alice', 'bob', 'carol'] and 'layout=' not in capsys.readouterr().out
    with pytest.raises(ValueError, match='layout must be one of'): resolve_layout(['a/b.png'], 'users')


# 2. metadata.csv re-saved by a spreadsheet ------------------------------------------------------------------------

def test_metadata_saved_by_a_spreadsheet_keeps_its_subjects(tmp_path):
    "A BOM hid the `file` column (it read '\\ufefffile'), and with it every subject; CRLF and extra columns too."
    src = tree(tmp_path/'raw', ['walk/a.png', 'walk/b.png', 'run/c.png', 'run/d.png'])
    text = ('file,subject,notes,\r\nwalk/a.png,alice,ok,\r\nwalk/b.png,bob,,\r\n'
            'run/c.png,alice,"two\r\nlines",,stray cell\r\nrun/d.png,bob,,\r\n')
    (src/'metadata.csv').write_bytes(b'\xef\xbb\xbf' + text.encode())
    assert read_metadata(src)['run/c']['subject'] == 'alice'
    assert SpectrogramDataset(src).subjects == ['alice', 'bob', 'alice', 'bob']   # run/c, run/d, walk/a, walk/b
    prepare(src, tmp_path/'out', image_size=16, n_workers=0, progress=False)
    rows = list(csv.DictReader(open(tmp_path/'out'/'metadata.csv')))
    assert {r['file']: r['subject'] for r in rows} == {'walk/a.png': 'alice', 'walk/b.png': 'bob', 'run/c.png': 'alice',
                                                       'run/d.png': 'bob'}
    assert {r['file']: r['notes'] for r in rows}['walk/a.png'] == 'ok'             # its own columns are kept


# 3. a good prepared folder is never replaced by an empty or mostly-skipped one -----------------------------------

@pytest.fixture
def prepared(tmp_path):
    src = tree(tmp_path/'raw', [f'{c}/s{u}_{n}.png' for c in ('walk', 'run') for u in range(2) for n in range(1)])
    prepare(src, tmp_path/'out', image_size=16, n_workers=0, progress=False)
    return src, tmp_path/'out'


def test_max_pixels_zero_does_not_empty_a_prepared_folder(prepared):
    "`prep --max-pixels 0` replaced a good prepared folder with an empty one and exited 0."
    src, out = prepared
    before = snapshot(out.parent)
    refused(mdaug(*prep_args(src, out, '--max-pixels', 0)), 'max_pixels')
    assert snapshot(out.parent) == before


def test_numeric_options_are_checked_before_anything_is_written(prepared, tmp_path):
    src, _ = prepared
    before = snapshot(tmp_path)
    for kw, name in [(dict(n_workers=-1), 'n_workers'), (dict(max_samples=0), 'max_samples'),
                     (dict(min_size=0), 'min_size'), (dict(image_size=2.5), 'image_size'),
                     (dict(image_size=float('nan')), 'image_size'), (dict(max_pixels=-5), 'max_pixels'),
                     (dict(max_zip_ratio=0.5), 'max_zip_ratio'), (dict(max_unzipped_mb=0), 'max_unzipped_mb'),
                     (dict(layout='users'), 'layout')]:
        with pytest.raises(ValueError, match=name) as e: prepare(src, tmp_path/'new', **{'n_workers': 0, **kw})
        assert '\n' not in str(e.value), str(e.value)
    assert snapshot(tmp_path) == before


def test_mostly_skipped_run_keeps_the_good_folder_unless_replace(prepared):
    src, out = prepared
    good = snapshot(out)
    for p in sorted(src.rglob('*.png'))[:3]: p.write_text('broken by a half-synced disk')
    line = refused(mdaug(*prep_args(src, out)), '3 of 4', '--replace')
    assert snapshot(out) == good, line
    assert prepare(src, out, image_size=16, n_workers=0, progress=False, replace=True).n_ok == 1
    assert json.loads((out/'prep_report.json').read_text())['n_ok'] == 1


def test_no_surviving_image_is_an_error_and_writes_nothing(prepared, tmp_path):
    src, out = prepared
    good = snapshot(out)
    with pytest.raises(PrepError, match='none of the 4 images'):
        prepare(src, out, image_size=16, min_size=1000, replace=True, n_workers=0, progress=False)
    assert snapshot(out) == good
    with pytest.raises(PrepError, match='nothing was written'):
        prepare(src, tmp_path/'fresh', image_size=16, min_size=1000, n_workers=0, progress=False)
    assert not (tmp_path/'fresh').exists()


# 4. image_size far beyond memory ----------------------------------------------------------------------------------

def test_huge_image_size_is_one_line_not_a_memory_error(prepared, tmp_path):
    "`--image-size 100000` ended in a MemoryError traceback, in prep and in simulate."
    src, _ = prepared
    before = snapshot(tmp_path)
    refused(mdaug('prep', src, '--out', tmp_path/'big', '--image-size', 100_000, '--no-progress'),
            'image_size=100000', 'GB')
    refused(mdaug('simulate', '--out', tmp_path/'sim', '--image-size', 100_000, '--n-subjects', 1, '--n-per-subject', 1,
                  '--no-progress'), 'image_size=100000', 'at most')
    assert snapshot(tmp_path) == before


# 5. zip bombs -----------------------------------------------------------------------------------------------------

def _zip_with(path, extra:dict) -> Path:
    "A zip of a small class-folder set plus `extra` {name: bytes}."
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        for i, c in enumerate(('walk', 'run')):
            p = img(path.parent/'parts'/f'{c}.png', seed=i)
            z.write(p, f'set/{c}/s0_0.png')
        for k, v in extra.items(): z.writestr(k, v)
    return path


def test_zip_bomb_refused_from_its_directory(tmp_path):
    "A zip of a few KB expanded to hundreds of MB with no limit."
    z = _zip_with(tmp_path/'bomb.zip', {'set/padding.bin': bytes(8_000_000)})   # 8 MB of zeros: about 1000x
    line = refused(mdaug(*prep_args(z, tmp_path/'out')), 'max_zip_ratio=100', 'zip bomb')
    assert 'x (' in line and not (tmp_path/'out').exists()
    assert prepare(z, tmp_path/'trusted', image_size=16, max_zip_ratio=10_000, n_workers=0, progress=False).n_ok == 2


def test_zip_total_size_is_limited(tmp_path):
    z = _zip_with(tmp_path/'big.zip', {'set/noise.bin': np.random.default_rng(0).bytes(2_000_000)})   # ratio 1, 2 MB
    with pytest.raises(ValueError, match='max_unzipped_mb=1'):
        prepare(z, tmp_path/'out', image_size=16, max_unzipped_mb=1, n_workers=0, progress=False)
    assert not (tmp_path/'out').exists()


def test_zip_whose_directory_lies_is_one_line(tmp_path):
    "A zip whose headers claim 1000 bytes for a 3 MB entry: counted while streaming, reported without a traceback."
    b = bytearray(_zip_with(tmp_path/'lie.zip', {'set/pad.bin': bytes(3_000_000)}).read_bytes())
    for sig, size_at, name_len_at, name_at in ((b'PK\x03\x04', 22, 26, 30), (b'PK\x01\x02', 24, 28, 46)):
        i = 0
        while (i := b.find(sig, i)) >= 0:
            n = struct.unpack('<H', b[i + name_len_at:i + name_len_at + 2])[0]
            if b[i + name_at:i + name_at + n] == b'set/pad.bin':
                b[i + size_at:i + size_at + 4] = struct.pack('<I', 1000)
            i += 4
    (tmp_path/'lie.zip').write_bytes(bytes(b))
    with pytest.raises(ValueError, match="'set/pad.bin' cannot be extracted"):
        prepare(tmp_path/'lie.zip', tmp_path/'out', image_size=16, n_workers=0, progress=False)


# 6. links out of the data folder ----------------------------------------------------------------------------------

def test_links_leading_outside_are_skipped_and_reported(tmp_path):
    "A file symlinked from outside the data folder was used silently."
    secret = tree(tmp_path/'elsewhere', ['secret.png', 'pool/x.png', 'pool/y.png'])
    src = tree(tmp_path/'raw', ['walk/a.png'])
    (src/'walk'/'inside.png').symlink_to(src/'walk'/'a.png')            # inside the folder: fine
    (src/'walk'/'outside.png').symlink_to(secret/'secret.png')
    (src/'run').symlink_to(secret/'pool', target_is_directory=True)     # a folder link out of it
    rep = prepare(src, tmp_path/'out', image_size=16, n_workers=0, progress=False)
    assert sorted(snapshot(tmp_path/'out')) == ['classes.json', 'metadata.csv', 'prep_report.json',
                                                'walk/a.png', 'walk/inside.png']
    why = dict(rep.skipped)
    assert set(why) == {'walk/outside.png', 'run'} and all('outside the data folder' in r for r in why.values()), why
    assert 'follow_links=True' in why['run'] and rep.n_found == 4
    rep = prepare(src, tmp_path/'all', image_size=16, n_workers=0, progress=False, follow_links=True)
    assert rep.classes == ['run', 'walk'] and rep.n_ok == 5 and not rep.skipped


# 7. a killed prep leaves nothing behind that later runs keep --------------------------------------------------------

def test_killed_prep_leftovers_are_removed_by_the_next_run(tmp_path):
    src = tree(tmp_path/'raw', [f'walk/s{i}_0.png' for i in range(150)], size=96)
    out = tmp_path/'out'
    p = subprocess.Popen(['mdaug', *map(str, prep_args(src, out))], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=ENV)
    deadline, tmp = time.time() + 60, []
    while time.time() < deadline and not tmp and p.poll() is None:   # wait until it is halfway through writing
        tmp = [d for d in tmp_path.glob('.out.*.tmp') if any(d.rglob('*.png'))]
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL); p.wait()
    assert tmp and p.returncode == -signal.SIGKILL, (p.returncode, p.stderr.read()[-500:])
    assert tmp[0].is_dir() and not out.exists()                      # what the kill left: a hidden temporary folder
    r = mdaug(*prep_args(src, out))
    assert r.returncode == 0, r.stderr
    assert sorted(o.name for o in tmp_path.iterdir()) == ['out', 'raw'], list(tmp_path.iterdir())
    assert len(list((out/'walk').glob('*.png'))) == 150


def test_a_second_prep_into_a_folder_in_use_is_refused(prepared):
    src, out = prepared
    good = snapshot(out)
    with folder_lock(out, 'a test holding it'):
        refused(mdaug(*prep_args(src, out)), 'in use', 'a test holding it')
    assert snapshot(out) == good
