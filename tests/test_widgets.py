"The widgets of lesson 10 driven headless through the widget API: values set, buttons clicked, as a browser would."
import time

import pytest
import torch
from PIL import Image

from mdaug.core import image_to_tensor
from mdaug.data import sample_data
from mdaug.pipeline import load_pipeline
from mdaug.widgets import LiveSampler, ScheduleExplorer, LatentExplorer


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline()


def wait(cond, timeout=120):
    end = time.time() + timeout
    while not cond():
        assert time.time() < end, "timed out"
        time.sleep(0.02)


def test_run_click_updates_previews_counter_and_result(pipe):
    w = LiveSampler(pipe, steps=3)
    blank = (w.x_t.value, w.x0.value, w.grid.value)
    seen = []
    w.x0.observe(lambda ch: seen.append(w.step), names="value")
    w.klass.value, w.n.value = "bird", 1
    w.run_button.click()
    assert w.run_button.disabled and not w.stop_button.disabled
    w._thread.join()
    assert w.status.value.startswith("done: 1 image(s), 3 ddim steps")
    assert len(seen) == 3 and w.step == 3 and len(w.frames) == 3        # one preview per step
    assert all(a != b for a, b in zip(blank, (w.x_t.value, w.x0.value, w.grid.value)))
    assert not w.run_button.disabled and w.stop_button.disabled and not w.save_button.disabled


def test_preview_every_k_steps(pipe):
    w = LiveSampler(pipe, steps=5, every=2)
    w.n.value = 1
    w.start(wait=True)
    assert len(w.frames) == 3                                         # steps 2, 4 and the last


def test_stop_click_stops_within_one_step(pipe):
    w = LiveSampler(pipe, steps=500)
    w.n.value = 1
    w.run_button.click()
    wait(lambda: w.step >= 2)
    at = w.step
    w.stop_button.click()
    w._thread.join(30)
    assert not w.running and w.step <= at + 1, (at, w.step)
    assert w.status.value.startswith(f"stopped at step {w.step}/500")
    assert not w.run_button.disabled and w.save_button.disabled       # usable again; nothing finished to save
    w.steps.value = 2
    assert w.start(wait=True) and w.status.value.startswith("done")


def test_second_run_and_bad_values_are_refused_with_a_message(pipe, tmp_path):
    w = LiveSampler(pipe, steps=500)
    w.n.value = 1
    w.run_button.click(); wait(lambda: w.step >= 1)
    w.run_button.click()                                              # disabled in a browser; the API refuses too
    assert "already sampling" in w.status.value and w.running
    w.stop(); w._thread.join(30)
    w.sampler.value, w.eta.value = "dpmpp_2m", 0.3
    w.run_button.click()
    assert not w.running and "not started" in w.status.value and "eta" in w.status.value
    w.steps.value = 0                                                 # clamped by the bounded box
    assert w.steps.value == 1
    assert w.save(tmp_path / "x") is None and "nothing to save" in w.status.value
    (tmp_path / "mine").mkdir(); (tmp_path / "mine" / "notes.txt").write_text("mine")
    w.sampler.value, w.eta.value, w.steps.value = "ddim", 0., 2
    w.start(wait=True)
    assert w.save(tmp_path / "mine") is None and "not saved" in w.status.value
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_schedule_explorer_redraws_on_slider_and_picker(pipe):
    x = image_to_tensor(Image.open(sorted((sample_data() / "walk").glob("*.png"))[0]))
    se = ScheduleExplorer(x, pipe)
    before = (se.pixel.value, se.latent.value, se.plot.value)
    se.t.value = 900
    after = (se.pixel.value, se.latent.value, se.plot.value)
    assert all(a != b for a, b in zip(before, after))
    plot = se.plot.value
    se.schedule.value = "cosine"
    assert se.plot.value != plot
    r0, r1 = se.render(0), se.render(999)
    assert r0["pixel"].tobytes() != r1["pixel"].tobytes()


def test_latent_explorer_edits_one_channel(pipe):
    le = LatentExplorer(pipe, label="drone", steps=2)
    z = le.edit(1, 0., 0.5)
    assert torch.equal(z[:, [0, 2, 3]], le.z[:, [0, 2, 3]]) and torch.allclose(z[:, 1], torch.full_like(z[:, 1], 0.5))
    edited = le.edited.value
    le.channel.value, le.gain.value = 1, 0.
    assert le.edited.value != edited and le.edited.value != le.original.value
