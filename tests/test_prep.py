"Data preparation: bad files, zip input, strict mode, max-samples, structure kept, subject split without leakage."
import csv, json, shutil, sys, types, zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import torch
from PIL import Image

from mdaug.data import (prepare, PrepError, PrepReport, SpectrogramDataset, split_dataset, get_dataloaders, BadImageError,
                        open_image, make_bad_files, is_hub_name, load_hub, crop_white_margins, take_evenly)

BAD = {'empty.png': 'empty file', 'text.png': 'not an image', 'random.jpg': 'not an image', 'truncated.png': 'truncated',
       'corrupt.png': 'corrupt', 'tiny.png': 'too small', 'bomb.png': 'too large', 'big.png': 'too large'}
CONVERTIBLE = {'palette.png': 'palette', 'sixteen.png': '16-bit', 'rgba.png': 'RGBA', 'gray.png': 'grayscale'}


def make_set(root, classes=('drone', 'run', 'walk'), subjects=3, per=2, size=(40, 56), meta=True, seed=0):
    "A synthetic <class>/<subject>_<n>.png set with metadata.csv; subjects are shared across classes (the same people)."
    rng, rows = np.random.default_rng(seed), []
    for c in classes:
        for s in range(subjects):
            for n in range(per):
                p = Path(root)/c/f's{s}_{n}.png'; p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(p)
                rows.append(dict(file=f'{c}/{p.name}', subject=f's{s}', **{'class': c}))
    if meta:
        with open(Path(root)/'metadata.csv', 'w', newline='') as f:
            w = csv.DictWriter(f, ['class', 'subject', 'file']); w.writeheader(); w.writerows(rows)
    return Path(root)


@pytest.fixture
def mess(tmp_path):
    root = make_set(tmp_path/'raw', meta=False)
    kinds = make_bad_files(root/'walk')
    (root/'walk'/'notes.txt').write_text('a note, not an image')
    (root/'.DS_Store').write_bytes(b'\0\1')
    return root, kinds


def test_bad_files_listed_and_converted(mess, tmp_path):
    root, kinds = mess
    assert set(BAD) | set(CONVERTIBLE) <= set(kinds)
    rep = prepare(root, tmp_path/'out', image_size=24, n_workers=2, progress=False)
    assert isinstance(rep, PrepReport)
    reasons = {Path(f).name: r for f, r in rep.skipped}
    assert sorted(reasons) == sorted(BAD), reasons            # every bad file listed exactly once
    for f, why in BAD.items(): assert why in reasons[f], (f, reasons[f])
    conv = {Path(f).name: c for f, c in rep.converted}
    for f, what in CONVERTIBLE.items(): assert what in conv[f], (f, conv.get(f))
    assert rep.n_ok == 3*3*2 + 2 + len(CONVERTIBLE)           # the set, good.png/.jpg and every convertible file
    assert rep.ignored == ['walk/notes.txt']
    for f in CONVERTIBLE:
        im = Image.open(tmp_path/'out'/'walk'/Path(f).with_suffix('.png').name)
        assert (im.mode, im.size) == ('RGB', (24, 24))
    on_disk = json.loads((tmp_path/'out'/'prep_report.json').read_text())
    assert sorted(Path(f).name for f, _ in on_disk['skipped']) == sorted(BAD)
    assert on_disk['n_ok'] == rep.n_ok
    s = repr(rep)
    assert 'skipped 8' in s and 'truncated.png' in s


def test_sixteen_bit_scaled_and_rgba_on_white(tmp_path):
    a = np.array([[0, 257*100, 65535]] * 8, np.uint16).repeat(3, 1)
    Image.fromarray(a).save(tmp_path/'w16.png')
    im, note = open_image(tmp_path/'w16.png')
    assert im.mode == 'L' and '16-bit' in note
    assert sorted(np.unique(np.asarray(im))) == [0, 100, 255]
    rgba = np.zeros((8, 8, 4), np.uint8); rgba[..., 3] = 0           # fully transparent black is white
    Image.fromarray(rgba, 'RGBA').save(tmp_path/'t.png')
    im, _ = open_image(tmp_path/'t.png')
    assert (np.asarray(im) == 255).all()


def test_max_pixels_setting(tmp_path):
    Image.new('RGB', (200, 200)).save(tmp_path/'a.png')
    with pytest.raises(BadImageError, match='too large'): open_image(tmp_path/'a.png', max_pixels=10_000)
    assert open_image(tmp_path/'a.png')[0].size == (200, 200)


def test_strict_raises_with_list_and_writes_nothing(mess, tmp_path):
    root, _ = mess
    with pytest.raises(PrepError) as e: prepare(root, tmp_path/'out', image_size=16, strict=True, n_workers=0, progress=False)
    for f in BAD: assert f in str(e.value)
    assert len(e.value.report.skipped) == len(BAD)
    assert not (tmp_path/'out').exists()


def test_structure_kept_and_metadata_follows(tmp_path):
    root = make_set(tmp_path/'raw')
    (root/'run'/'s0_0.png').rename(root/'run'/'s0_0.jpg')          # not a PNG: renamed to .png in the output
    Image.open(root/'run'/'s0_0.jpg').convert('RGB').save(root/'run'/'s0_0.jpg', 'JPEG')
    (root/'walk'/'deeper').mkdir(); shutil.copy(root/'walk'/'s1_0.png', root/'walk'/'deeper'/'s1_9.png')
    rep = prepare(root, tmp_path/'out', image_size=16, channels=1, n_workers=0, progress=False)
    src = sorted(str(p.relative_to(root).with_suffix('')) for p in root.rglob('*') if p.suffix in ('.png', '.jpg'))
    out = sorted(str(p.relative_to(tmp_path/'out').with_suffix('')) for p in (tmp_path/'out').rglob('*.png'))
    assert src == out and rep.n_ok == len(src)
    assert Image.open(tmp_path/'out'/'run'/'s0_0.png').mode == 'L'
    assert json.loads((tmp_path/'out'/'classes.json').read_text()) == {'drone': 0, 'run': 1, 'walk': 2}
    rows = list(csv.DictReader(open(tmp_path/'out'/'metadata.csv')))
    assert {r['file'] for r in rows} >= {'run/s0_0.png', 'walk/s1_0.png'}
    assert all((tmp_path/'out'/r['file']).exists() for r in rows)


def test_zip_input_with_wrapper_folder(tmp_path):
    make_set(tmp_path/'wrap'/'dataset', classes=('a', 'b'), subjects=2, per=1)
    z = shutil.make_archive(str(tmp_path/'data'), 'zip', tmp_path/'wrap')
    rep = prepare(z, tmp_path/'out', image_size=16, n_workers=0, progress=False)
    assert rep.classes == ['a', 'b'] and rep.n_ok == 4 and not rep.skipped
    assert (tmp_path/'out'/'a'/'s1_0.png').exists()


def test_zip_refuses_path_traversal(tmp_path):
    with zipfile.ZipFile(tmp_path/'evil.zip', 'w') as z: z.writestr('../escape.png', b'x')
    with pytest.raises(ValueError, match='outside'): prepare(tmp_path/'evil.zip', tmp_path/'out', progress=False)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path/'empty').mkdir()
    with pytest.raises(ValueError, match='no images found'): prepare(tmp_path/'empty', tmp_path/'o', progress=False)
    (tmp_path/'texts').mkdir(); (tmp_path/'texts'/'a.txt').write_text('x')
    with pytest.raises(ValueError, match='a.txt'): prepare(tmp_path/'texts', tmp_path/'o', progress=False)
    with pytest.raises(FileNotFoundError, match='does not exist'): prepare(tmp_path/'missing', tmp_path/'o', progress=False)
    with pytest.raises(FileNotFoundError): SpectrogramDataset(tmp_path/'missing')
    with pytest.raises(ValueError, match='no images'): SpectrogramDataset(tmp_path/'empty')


def test_out_folder_guards(tmp_path):
    root = make_set(tmp_path/'raw', classes=('a',), subjects=1, per=1)
    with pytest.raises(ValueError, match='inside the source'): prepare(root, root/'prepared', progress=False)
    (tmp_path/'busy').mkdir(); (tmp_path/'busy'/'keep.txt').write_text('mine')
    with pytest.raises(ValueError, match='not a prepared folder'): prepare(root, tmp_path/'busy', progress=False)
    prepare(root, tmp_path/'out', image_size=8, n_workers=0, progress=False)
    prepare(root, tmp_path/'out', image_size=12, n_workers=0, progress=False)   # a prepared folder is replaced
    assert Image.open(tmp_path/'out'/'a'/'s0_0.png').size == (12, 12)


def test_bad_settings(tmp_path):
    root = make_set(tmp_path/'raw', classes=('a',), subjects=1, per=1)
    with pytest.raises(ValueError, match='channels'): prepare(root, tmp_path/'o', channels=2, progress=False)
    with pytest.raises(ValueError, match='resize'): prepare(root, tmp_path/'o', resize='crop', progress=False)
    with pytest.raises(ValueError, match='image_size'): prepare(root, tmp_path/'o', image_size=0, progress=False)


def test_max_samples_even_across_classes(tmp_path):
    root = make_set(tmp_path/'raw')
    rep = prepare(root, tmp_path/'out', image_size=8, max_samples=7, n_workers=0, progress=False)
    assert rep.n_ok == 7
    counts = sorted(len(list((tmp_path/'out'/c).glob('*.png'))) for c in ('drone', 'run', 'walk'))
    assert counts == [2, 2, 3]
    assert take_evenly(['a/1', 'b/1', 'b/2'], 10) == ['a/1', 'b/1', 'b/2']


def test_parallel_equals_serial(tmp_path):
    root = make_set(tmp_path/'raw')
    prepare(root, tmp_path/'p', image_size=16, n_workers=2, progress=False)
    prepare(root, tmp_path/'s', image_size=16, n_workers=0, progress=False)
    for f in (tmp_path/'s').rglob('*.png'): assert f.read_bytes() == (tmp_path/'p'/f.relative_to(tmp_path/'s')).read_bytes()


def test_resize_policies_and_margins(tmp_path):
    a = np.full((60, 100, 3), 255, np.uint8); a[10:50, 20:80] = (0, 0, 200)
    Image.fromarray(a).save(tmp_path/'fig.png')
    im, _ = open_image(tmp_path/'fig.png')
    assert crop_white_margins(im).size == (60, 40)
    for policy in ('resize', 'pad'):
        out = tmp_path/policy
        (tmp_path/'src').mkdir(exist_ok=True); shutil.copy(tmp_path/'fig.png', tmp_path/'src'/'fig.png')
        prepare(tmp_path/'src', out, image_size=32, resize=policy, crop_margins=True, n_workers=0, progress=False)
        x = np.asarray(Image.open(out/'fig.png'))
        assert x.shape == (32, 32, 3)
        assert (x[16, 16] < 100).all() or x[16, 16, 2] > 150                   # centre is the blue plot, not margin


def test_flat_folder_is_unconditional(tmp_path):
    root = tmp_path/'flat'; root.mkdir()
    for i in range(5): Image.new('RGB', (20, 20), (i*40, 0, 0)).save(root/f'{i}.png')
    rep = prepare(root, tmp_path/'out', image_size=16, n_workers=0, progress=False)
    assert rep.classes == [] and rep.n_ok == 5
    ds = SpectrogramDataset(tmp_path/'out')
    assert ds.classes == [] and set(ds.labels) == {0} and not ds.conditional
    dls = get_dataloaders(tmp_path/'out', image_size=16, batch_size=2, num_workers=0)
    assert len(dls.train_ds) + len(dls.valid_ds) == 5


def test_mixed_layout_is_an_error(tmp_path):
    root = make_set(tmp_path/'raw', classes=('a',), subjects=1, per=1)
    Image.new('RGB', (20, 20)).save(root/'loose.png')
    with pytest.raises(ValueError, match='mixes'): prepare(root, tmp_path/'o', progress=False)


def test_dataset_items_and_stable_classes(mess, tmp_path):
    root, _ = mess
    shutil.rmtree(root/'drone'); (root/'drone').mkdir(); (root/'drone'/'x_0.png').write_bytes(b'')   # a class of only bad files
    prepare(root, tmp_path/'out', image_size=24, n_workers=0, progress=False)
    ds = SpectrogramDataset(tmp_path/'out')
    assert ds.classes == ['drone', 'run', 'walk']                  # indices stay put although drone is empty
    x, y = ds[0]
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    assert isinstance(y, int) and ds.classes[y] in ('run', 'walk')
    assert len(ds.files) == len(ds.labels) == len(ds.subjects) == len(ds)
    ds1 = SpectrogramDataset(tmp_path/'out', image_size=12, channels=1)
    assert ds1[0][0].shape == (1, 12, 12)
    raw = SpectrogramDataset(root, image_size=16)                   # a raw folder loads too, bad files fail with their name
    i = raw.files.index(PurePosixPath('walk/palette.png')); assert raw[i][0].shape == (3, 16, 16)
    j = raw.files.index(PurePosixPath('walk/empty.png'))
    with pytest.raises(BadImageError, match='empty.png.*prepare'): raw[j]


def test_split_by_subject_no_leakage(tmp_path):
    root = make_set(tmp_path/'raw', subjects=5, per=3)
    prepare(root, tmp_path/'out', image_size=8, n_workers=0, progress=False)
    for folder in (root, tmp_path/'out'):
        ds = SpectrogramDataset(folder)
        assert set(ds.subjects) == {f's{i}' for i in range(5)}
        tr, va = split_dataset(ds, valid_pct=0.2, seed=1)
        assert sorted(tr + va) == list(range(len(ds))) and va
        assert not {ds.subjects[i] for i in tr} & {ds.subjects[i] for i in va}   # no subject on both sides
        assert split_dataset(ds, 0.2, 1) == (tr, va)                          # seeded
    dls = get_dataloaders(tmp_path/'out', image_size=8, batch_size=4, num_workers=0, valid_pct=0.2, seed=1)
    assert not set(dls.train_ds.subjects) & set(dls.valid_ds.subjects)
    xb, yb = next(iter(dls.train))
    assert xb.shape == (4, 3, 8, 8) and yb.dtype == torch.int64
    assert dls.classes == ['drone', 'run', 'walk'] and len(dls.valid_ds) > 0


def test_subjects_from_stems_per_class(tmp_path):
    root = make_set(tmp_path/'raw', classes=('a', 'b'), subjects=4, per=2, meta=False)
    ds = SpectrogramDataset(root)
    tr, va = split_dataset(ds, 0.25)
    assert {ds.labels[i] for i in va} == {0, 1}                   # every class is validated
    assert not {ds.subjects[i] for i in tr} & {ds.subjects[i] for i in va}


def test_random_split_without_subjects(tmp_path):
    root = tmp_path/'raw'
    for c in ('a', 'b'):
        (root/c).mkdir(parents=True)
        for i in range(10): Image.new('RGB', (10, 10)).save(root/c/f'img{i}.png')
    ds = SpectrogramDataset(root)
    assert set(ds.subjects) == {None}
    tr, va = split_dataset(ds, 0.2, seed=3)
    assert len(va) == 4 and [ds.labels[i] for i in va].count(0) == 2
    assert split_dataset(ds, 0.2, seed=4) != (tr, va)
    assert split_dataset(ds, 0.0) == (list(range(20)), [])


def test_hub_names_and_messages(tmp_path, monkeypatch):
    assert is_hub_name('someone/radar-set') and is_hub_name('hf://someone/set') and is_hub_name('mnist')
    assert not any(is_hub_name(o) for o in ['/abs/path', './rel', '~/x', 'set.zip', tmp_path, str(tmp_path), 'a/b/c'])
    monkeypatch.setitem(sys.modules, 'datasets', None)                   # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'mdaug\[hub\]'"): prepare('someone/radar-set', tmp_path/'o', progress=False)
    fake = types.ModuleType('datasets')
    def load_dataset(name, split=None): raise OSError("Couldn't reach 'someone/radar-set' on the Hub (LocalEntryNotFoundError)")
    fake.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, 'datasets', fake)
    with pytest.raises(ConnectionError, match='internet connection'): load_hub('someone/radar-set', tmp_path/'h', progress=False)


def test_hub_dataset_written_as_folders(tmp_path, monkeypatch):
    "A stand-in for `datasets` with an Image and a ClassLabel column goes through the whole path."
    class Image_: pass
    class ClassLabel:
        names = ['bird', 'drone']
        def int2str(self, i): return self.names[i]
    rows = [dict(image=Image.new('P', (20, 20), i), label=i % 2) for i in range(6)]
    class DS(list):
        features = dict(image=Image_(), label=ClassLabel())
    Image_.__name__ = 'Image'
    fake = types.ModuleType('datasets'); fake.load_dataset = lambda name, split=None: DS(rows)
    monkeypatch.setitem(sys.modules, 'datasets', fake)
    rep = prepare('someone/birds', tmp_path/'out', image_size=8, n_workers=0, progress=False)
    assert rep.classes == ['bird', 'drone'] and rep.n_ok == 6
