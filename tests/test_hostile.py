"""Issue 22, the generation side: each finding of the hostile probe reproduced as a user meets it, and the fixed behaviour.

Reruns never delete what they cannot prove they wrote, one writer per folder, no non-finite image written, settings checked
before anything is written, one line and exit status 2 for every mistake. (The data side: test_hostile_data.py; evaluate:
test_hostile_evaluate.py.)"""
import csv, json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch

from mdaug.cli import main
from mdaug.core import lock_path, load_json
from mdaug.pipeline import load_pipeline, NonFiniteError
from mdaug.generate import read_rows, append_rows, MARKER, JOURNAL, augment_summary
from test_train_fixtures import make_data, make_model

MDAUG = shutil.which("mdaug") or pytest.fail("the `mdaug` command is not installed: pip install -e '.[dev]'")
ENV = {**os.environ, "MDAUG_PROFILE": "ci"}


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp('model')/'model')


def cli(capsys, *args) -> tuple[int, str]:
    "Run `mdaug ARGS` in this process; its exit status and its stderr."
    capsys.readouterr()
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def one_line_error(rc, err, contains):
    assert rc == 2, (rc, err)
    assert contains in err and 'Traceback' not in err, err
    assert len(err.strip().splitlines()) == 1, err


def pngs(folder): return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob('*.png'))


def test_rerun_without_metadata_keeps_every_image(model, tmp_path, capsys):
    "Finding 1: metadata.csv deleted, run again with --per-class 1: today the folder keeps one image; now nothing is deleted."
    g = tmp_path/'G'
    assert cli(capsys, 'generate', model, '--out', g, '--classes', 'walk', '--steps', 1, '--per-class', 4, '--no-progress')[0] == 0
    before = pngs(g); assert len(before) == 4
    (g/'metadata.csv').unlink()
    one_line_error(*cli(capsys, 'generate', model, '--out', g, '--classes', 'walk', '--steps', 1, '--per-class', 1, '--no-progress'),
                   'does not list')
    assert pngs(g) == before


def test_spreadsheet_saved_metadata(model, tmp_path, capsys):
    "Finding 1: a metadata.csv re-saved by a spreadsheet (BOM, CRLF, an extra column) crashed with KeyError: 'file'."
    g = tmp_path/'G'
    assert cli(capsys, 'generate', model, '--out', g, '--classes', 'walk', '--steps', 1, '--per-class', 2, '--no-progress')[0] == 0
    rows = read_rows(g)
    with open(g/'metadata.csv', 'w', newline='', encoding='utf-8-sig') as f:
        w = csv.DictWriter(f, fieldnames=['note', *rows[0]], lineterminator='\r\n')
        w.writeheader(); w.writerows([{'note': 'checked by hand', **r} for r in rows])
    rc, err = cli(capsys, 'generate', model, '--out', g, '--classes', 'walk', '--steps', 1, '--per-class', 1, '--no-progress')
    assert rc == 0, err
    rows = read_rows(g)
    assert len(rows) == 3 and [r['note'] for r in rows] == ['checked by hand'] * 2 + ['']
    raw = (g/'metadata.csv').read_bytes()
    assert len(pngs(g)) == 3 and raw.startswith(b'file,class,') and raw.endswith(b'\r\n')   # our format again, appendable


@pytest.mark.parametrize('cmd', ['generate', 'augment'])
@pytest.mark.parametrize('value', ['nan', 'inf', '-1'])
def test_non_finite_guidance_is_refused(model, tmp_path, capsys, cmd, value):
    "Finding 2: --guidance-scale nan exited 0 and wrote all-black images recorded as valid rows, in generate and in augment."
    out = tmp_path/'out'
    args = (['generate', model] if cmd == 'generate' else ['augment', make_data(tmp_path/'real', 2), model, '--per-class', 3])
    one_line_error(*cli(capsys, *args, '--out', out, '--steps', 1, '--guidance-scale', value, '--no-progress'), 'guidance_scale must be')
    assert not out.exists()


def test_a_non_finite_batch_is_never_handed_on(model):
    "Every sampler output is checked: NaN latents (a diverged model, an fp16 overflow) raise instead of becoming black images."
    pipe = load_pipeline(model, device='cpu')
    z = torch.full((2, pipe.unet.config.in_channels, *pipe.latent_size()), float('nan'))
    with pytest.raises(NonFiniteError, match='nothing was written'):
        pipe([0, 1], num_inference_steps=1, latents=z, progress=False)


def _start(args, out):
    "Start a `mdaug` process and wait until it owns `out`."
    p = subprocess.Popen([MDAUG, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    t0 = time.time()
    while not lock_path(out).exists():
        assert p.poll() is None, p.communicate()
        assert time.time() - t0 < 120; time.sleep(0.05)
    return p


def test_two_writers_and_a_killed_one(model, tmp_path):
    "Finding 3: two generate runs into one folder both exited 0 and kept 18 of 24 images. Now the second is refused while the "
    "first lives; a run killed with kill -9 leaves a stale lock that the next run takes over, with nothing lost."
    g = tmp_path/'G'
    args = ['generate', model, '--out', g, '--steps', 20, '--per-class', 400, '--batch-size', 4, '--no-progress']  # more than it can finish
    first = _start(args, g)
    r = subprocess.run([MDAUG, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 2 and 'is in use by mdaug generate' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    while len(read_rows(g)) < 8: assert first.poll() is None; time.sleep(0.05)
    first.send_signal(signal.SIGKILL); first.wait()
    assert lock_path(g).exists() and load_json(g/MARKER)['status'] == 'partial'
    assert 'partial' in augment_summary(g)
    kept = {r['file']: (g/r['file']).read_bytes() for r in read_rows(g)}
    r = subprocess.run([MDAUG, *map(str, ['generate', model, '--out', g, '--steps', 1, '--per-class', 1, '--no-progress'])],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0 and 'taking it over' in r.stdout, (r.stdout, r.stderr)
    rows = read_rows(g)
    assert all((g/f).read_bytes() == b for f, b in kept.items())                 # every finished image is kept as it was
    assert sorted(r['file'] for r in rows) == pngs(g)                             # and every file has exactly one row
    assert len(rows) == len(kept) + 3 and len({r['seed'] for r in rows}) == len({r['seed'] for r in rows if r['file'] in kept}) + 1
    assert load_json(g/MARKER)['status'] == 'complete' and not lock_path(g).exists() and not (g/JOURNAL).exists()


def test_metadata_is_appended_not_rewritten(tmp_path):
    "Further finding: metadata.csv was rewritten whole after every batch (quadratic). Now a batch appends to the same file."
    append_rows(tmp_path, [{'file': 'a.png', 'class': 'walk'}])
    ino = (tmp_path/'metadata.csv').stat().st_ino
    append_rows(tmp_path, [{'file': 'b.png', 'class': 'walk'}])
    assert (tmp_path/'metadata.csv').stat().st_ino == ino and [r['file'] for r in read_rows(tmp_path)] == ['a.png', 'b.png']


def test_files_follow_the_umask(model, tmp_path, capsys):
    "Further finding: every file was written 0600 and every folder 0700, so a shared dataset was unreadable by colleagues."
    old = os.umask(0o022)
    try: assert cli(capsys, 'generate', model, '--out', tmp_path/'G', '--steps', 1, '--per-class', 1, '--no-progress')[0] == 0
    finally: os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in (tmp_path/'G').rglob('*')}
    assert set(modes.values()) == {'0o644', '0o755'}, modes
    assert oct((tmp_path/'G').stat().st_mode & 0o777) == '0o755'


def test_fit_checks_its_settings_before_writing(tmp_path, capsys):
    "Finding 5: fit wrote fit.json before validating its settings, so a typo stuck; with --out inside the data it wrote there first."
    data = make_data(tmp_path/'real', 4)
    before = sorted(p.relative_to(data) for p in data.rglob('*'))
    for args, msg in [(('--image-size', 0), 'image_size must be at least 8'), (('--ldm-steps', 0), 'ldm_steps must be at least 1'),
                      (('--channels', 2), 'channels=2'), (('--batch-size', 0), 'batch_size must be at least 1'),
                      (('--image-size', 100000), 'of memory')]:
        one_line_error(*cli(capsys, 'fit', data, '--out', tmp_path/'F', *args, '--no-progress'), msg)
        assert not (tmp_path/'F').exists()
    one_line_error(*cli(capsys, 'fit', data, '--out', data/'runs', '--no-progress'), 'inside the data folder')
    assert sorted(p.relative_to(data) for p in data.rglob('*')) == before


def test_fit_with_one_image_per_class(tmp_path, capsys):
    "Further finding: fit with one image per class ended in a RuntimeError traceback; its advice named an option fit lacks."
    data = make_data(tmp_path/'real', 1)
    one_line_error(*cli(capsys, 'fit', data, '--out', tmp_path/'F', '--no-progress'), 'at least 2 per class')
    assert 'prepare' not in load_json(tmp_path/'F'/'fit.json')['done']   # the next run prepares the data again


def test_a_typo_in_a_fresh_fit_does_not_stick(tmp_path, capsys):
    "A fit.json whose run finished nothing (a typo, a refused start) no longer blocks the folder: new settings start over."
    data = make_data(tmp_path/'real', 1)
    cli(capsys, 'fit', data, '--out', tmp_path/'F', '--ldm-steps', 3, '--no-progress')
    rc, err = cli(capsys, 'fit', data, '--out', tmp_path/'F', '--ldm-steps', 4, '--no-progress')
    one_line_error(rc, err, 'at least 2 per class')   # refused for the data, not for "started with other settings"
    assert load_json(tmp_path/'F'/'fit.json')['settings']['ldm_steps'] == 4


def test_device_that_is_not_there(model, tmp_path, capsys):
    "Further finding: --device cuda on a machine without one ended in a traceback."
    if torch.cuda.is_available(): pytest.skip('this machine has CUDA')
    one_line_error(*cli(capsys, 'generate', model, '--out', tmp_path/'G', '--device', 'cuda', '--no-progress'), "pass 'cpu'")
    assert not (tmp_path/'G').exists()


def test_refused_pickle_says_why(model, tmp_path, capsys):
    "Further finding: a model whose weights file holds a pickle payload was refused with a traceback; now with one line."
    from safetensors.torch import load_file
    evil = tmp_path/'evil'; shutil.copytree(model, evil)
    f = evil/'unet'/'diffusion_pytorch_model.safetensors'
    sd = load_file(f); f.unlink()
    class Payload:
        def __reduce__(self): return (os.system, ('touch ' + str(tmp_path/'PWNED'),))
    torch.save({**sd, 'x': Payload()}, evil/'unet'/'diffusion_pytorch_model.bin')
    one_line_error(*cli(capsys, 'generate', evil, '--out', tmp_path/'G', '--steps', 1, '--per-class', 1, '--no-progress'),
                   'this folder holds code, not only weights; refusing to load it')
    assert not (tmp_path/'PWNED').exists() and not (tmp_path/'G').exists()


def test_huge_sizes_name_their_memory(model, tmp_path, capsys):
    "Further finding: sizes whose memory no machine has ended in a MemoryError traceback; now one line names the estimate."
    one_line_error(*cli(capsys, 'generate', model, '--out', tmp_path/'G', '--width', 32 * 100000, '--steps', 1, '--per-class', 1,
                        '--no-progress'), 'of memory')
    assert not (tmp_path/'G').exists()


def test_augment_keeps_one_layout_for_per_user_folders(model, tmp_path, capsys):
    "Finding 4, generation side: a `<user>/<class>/image.png` tree is labelled by class, and the augmented folder holds one "
    "layout (`<class>/...`) for real and generated images alike, with each real image's subject kept."
    src = make_data(tmp_path/'flat', 2)
    users = tmp_path/'users'
    for p in sorted(src.rglob('*.png')):
        d = users/f"s0{p.stem[1]}"/p.parent.name; d.mkdir(parents=True, exist_ok=True); shutil.copy(p, d/p.name)
    rc, err = cli(capsys, 'augment', users, model, '--out', tmp_path/'aug', '--per-class', 3, '--steps', 1, '--no-progress')
    assert rc == 0, err
    rows = read_rows(tmp_path/'aug')
    assert sorted({r['class'] for r in rows}) == ['drone', 'run', 'walk']
    assert all(r['file'].split('/')[0] == r['class'] for r in rows)
    assert {r['subject'] for r in rows if r['generated'] == '0'} == {'s00', 's01'}


@pytest.mark.parametrize('args,msg', [
    (('simulate', '--snr-db', 'nan'), 'snr_db must be a finite number'),
    (('simulate', '--duration', 2000), 'of memory'),
    (('simulate', '--max-aspect', 100), 'max_aspect must be'),
    (('train-vqvae', 'DATA', '--lpips-weight', 'inf'), 'lpips_weight=inf'),
    (('train-vqvae', 'DATA', '--lr', 'nan'), 'lr=nan'),
    (('train-ldm', 'DATA', 'VQ', '--lr', 'nan'), 'lr=nan'),
    (('train-ldm', 'DATA', 'VQ', '--guidance-scale', 'inf'), 'guidance_scale=inf'),
    (('generate', 'MODEL', '--eta', 2, '--sampler', 'ddim'), 'eta must be at least 0 and at most 1'),
    (('generate', 'MODEL', '--per-class', 0), 'must be above 0'),
    (('augment', 'DATA', 'MODEL', '--ratio', 'nan'), 'must be a finite number'),
    (('demo', '--guidance-scale', 'nan'), 'guidance_scale must be a finite number')])
def test_numbers_are_checked_before_anything_is_written(model, tmp_path, capsys, args, msg):
    "Every numeric option: NaN, inf and out-of-range values are one line and exit 2, and no output folder appears."
    from test_train_fixtures import make_vqvae
    subs = dict(DATA=make_data(tmp_path/'real', 2), MODEL=model, VQ=make_vqvae(tmp_path/'vq') if 'VQ' in args else None)
    args = [subs.get(a, a) if isinstance(a, str) else a for a in args]
    one_line_error(*cli(capsys, *args, '--out', tmp_path/'out', '--no-progress'), msg)
    assert not (tmp_path/'out').exists()


def test_argument_type_mistakes_are_one_line(tmp_path):
    "An int option given `nan` was refused by argparse with a whole usage block; now with one line that says where to look."
    r = subprocess.run([MDAUG, 'simulate', '--out', str(tmp_path/'s'), '--n-subjects', 'nan'], capture_output=True, text=True, env=ENV)
    one_line_error(r.returncode, r.stderr, "invalid int value: 'nan'")
    assert r.stderr.startswith('mdaug simulate: error:') and not (tmp_path/'s').exists()
