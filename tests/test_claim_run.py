"The run-folder helper of mdaug.core: claim a folder, resume it only with its settings, refuse anything else in one line."
import pytest
from mdaug.core import claim_run, check_settings, settings_diff, SettingsChanged, load_json, save_json

S = dict(image_size=32, batch_size=8, widths=(32, 64), steps=100)


def test_new_folder_is_claimed_and_resumed(tmp_path):
    out = tmp_path / "run"
    assert claim_run(out, S, "benchmark", marker="bench.json", start=dict(done={})) == dict(settings=S, done={})
    assert load_json(out / "bench.json") == dict(settings=dict(S, widths=[32, 64]), done={})
    again = claim_run(out, S, "benchmark", marker="bench.json")      # tuples come back as lists: no change
    assert again["done"] == {} and again["settings"] == S


def test_every_differing_setting_is_named_with_both_values(tmp_path):
    claim_run(tmp_path, S, "benchmark")
    with pytest.raises(SettingsChanged) as e:
        claim_run(tmp_path, S | dict(batch_size=16, widths=(32, 32)), "benchmark")
    msg = str(e.value)
    assert "batch_size: 8 then, 16 now" in msg and "widths: [32, 64] then, [32, 32] now" in msg
    assert "steps" not in msg and "choose a new folder" in msg and "\n" not in msg
    assert e.value.diff == dict(batch_size=(8, 16), widths=([32, 64], [32, 32]))
    assert e.value.old == dict(settings=dict(S, widths=[32, 64]))    # the marker: a caller may start over from it
    assert isinstance(e.value, ValueError)


def test_keys_limit_what_must_match(tmp_path):
    claim_run(tmp_path, S, "VQ-VAE run", keys=("image_size", "batch_size"))
    assert claim_run(tmp_path, S | dict(steps=500), "VQ-VAE run", keys=("image_size", "batch_size"))
    with pytest.raises(SettingsChanged, match="image_size: 32 then, 64 now"):
        claim_run(tmp_path, S | dict(image_size=64), "VQ-VAE run", keys=("image_size", "batch_size"))


def test_folders_it_does_not_own_are_refused(tmp_path):
    (tmp_path / "mine").mkdir(); (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="holds other files: choose a new folder for the evaluation"):
        claim_run(tmp_path / "mine", S, "evaluation")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        claim_run(tmp_path / "file", S)
    (tmp_path / "empty").mkdir()
    assert claim_run(tmp_path / "empty", S)["settings"] == S               # an empty folder is new


def test_resume_false_and_dry(tmp_path):
    assert claim_run(tmp_path / "d", S, dry=True) is None and not (tmp_path / "d").exists()
    claim_run(tmp_path / "r", S, "training run")
    with pytest.raises(FileExistsError, match="already holds a training run"):
        claim_run(tmp_path / "r", S, "training run", resume=False)
    assert claim_run(tmp_path / "r", S, dry=True)["settings"] == S         # dry on a run: checked, nothing written


def test_flat_markers_and_settings_added_since(tmp_path):
    save_json(dict(kind="generated", model_sha256="abc", classes=["walk"]), tmp_path / "mdaug.json")
    m = claim_run(tmp_path, dict(kind="generated", model_sha256="abc"), "generated set", marker="mdaug.json", field=None)
    assert m["classes"] == ["walk"]
    with pytest.raises(SettingsChanged, match="model_sha256: 'abc' then, 'def' now"):
        claim_run(tmp_path, dict(kind="generated", model_sha256="def"), "generated set", marker="mdaug.json", field=None)
    save_json(dict(settings=dict(a=1)), tmp_path / "old.json")              # a run from before setting `b` existed
    with pytest.raises(SettingsChanged, match="b: None then, 2 now"):
        claim_run(tmp_path, dict(a=1, b=2), marker="old.json")


def test_check_settings_for_a_checkpoint():
    assert settings_diff(dict(lr=1e-3), dict(lr=1e-3, steps=5), keys=("lr",)) == {}
    with pytest.raises(SettingsChanged, match=r"ckpt/step_100 holds a checkpoint made with other settings \(seed: 0 then, 1 now\): "
                                              r"train into a new folder"):
        check_settings(dict(seed=0), dict(seed=1), "ckpt/step_100", "checkpoint", hint="train into a new folder")
