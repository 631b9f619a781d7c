"""Lesson 10's live sampler as a user meets it: JupyterLab on localhost, the notebook run in headless Chromium, Run clicked.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package (`.ci/run` installs them); skipped with a
message where they are missing. `MDAUG_SCREENSHOT=path.png` also saves a screenshot of the widget mid-run (the one in
the lesson's docs is made this way).
"""
import importlib.util, json, os, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER and importlib.util.find_spec("selenium")) and not os.environ.get("CI"),
                                reason="no Chromium, chromedriver or selenium: `apt-get install chromium chromium-driver` and "
                                       "`pip install selenium` (.ci/run does both; under CI the test runs and fails without them)")

NOTEBOOK = ["from mdaug.widgets import LiveSampler", "w = LiveSampler(steps=300)", "w.n.value = 1", "w"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def write_notebook(path):
    cell = dict(cell_type="code", execution_count=None, id="live", metadata={}, outputs=[], source="\n".join(NOTEBOOK))
    path.write_text(json.dumps(dict(cells=[cell], metadata=dict(kernelspec=dict(name="python3", display_name="Python 3", language="python")),
                                    nbformat=4, nbformat_minor=5)))


def wait_for(what, fn, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = fn()
            if v: return v
        except Exception: pass
        time.sleep(0.25)
    raise TimeoutError(f"waited {timeout} s for {what}")


def test_live_sampler_in_jupyterlab(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    root, port, token = tmp_path / "root", free_port(), secrets.token_hex(16)
    root.mkdir(); write_notebook(root / "live.ipynb")
    env = {**os.environ, "MDAUG_PROFILE": "ci", "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")}
    lab = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0", "--allow-root"],
                           env=env, stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT)
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"
        try: wait_for("JupyterLab to answer", lambda: urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).status == 200, 60)
        except TimeoutError: raise AssertionError("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1100",
                  f"--user-data-dir={tmp_path / 'chrome'}"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
        driver.get(f"{base}/lab/tree/live.ipynb?token={token}")
        xp = lambda q: driver.find_element(By.XPATH, q)
        sessions = lambda: json.loads(urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=2).read())
        wait_for("the notebook's kernel", lambda: any(x["kernel"]["execution_state"] == "idle" for x in sessions()), 120)
        time.sleep(3)  # the page connects to the kernel after the server reports it idle
        wait_for("the cell's editor", lambda: driver.find_element(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell .cm-content").click() or True, 30)
        ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        run = wait_for("the widget's Run button", lambda: xp("//button[contains(@class,'widget-button') and normalize-space(.)='Run']"), 120)
        status = lambda: xp("//div[contains(@class,'widget-html')]").text
        t0 = time.time(); run.click()
        wait_for("the first steps", lambda: "step 2/" in status() or "step 3/" in status(), 60)
        preview = driver.find_elements(By.XPATH, "//img[contains(@class,'widget-image')]")[1]   # the predicted x_0
        first, s1 = preview.screenshot_as_png, status()
        step = lambda s: int(s.split("step ")[1].split("/")[0])
        wait_for("two more steps", lambda: step(status()) >= step(s1) + 2, 60)
        second, s2 = preview.screenshot_as_png, status()
        if os.environ.get("MDAUG_SCREENSHOT"):   # for the docs: halfway through the run, where the predicted x_0 has its traces
            wait_for("the middle of the run", lambda: step(status()) >= 150, 300)
            shot = xp("//div[contains(@class,'jp-OutputArea-output')]").screenshot_as_png
            Path(os.environ["MDAUG_SCREENSHOT"]).write_bytes(shot)
        assert first != second, f"the preview did not change between {s1!r} and {s2!r}"
        outputs = " ".join(e.text for e in driver.find_elements(By.XPATH, "//div[contains(@class,'jp-OutputArea-output')]"))
        assert "Traceback" not in outputs and "Error" not in outputs and "failed" not in status(), outputs
        xp("//button[contains(@class,'widget-button') and normalize-space(.)='Stop']").click()
        wait_for("the run to stop", lambda: "stopped at step" in status(), 30)
        print(f"\n{s1} -> {s2} -> {status()} ({time.time() - t0:.0f} s after Run)")
    except BaseException:
        if driver is not None:
            driver.save_screenshot(str(tmp_path / "failure.png"))
            print(f"\nthe page when the test failed: {tmp_path / 'failure.png'}\n" + driver.find_element(By.TAG_NAME, "body").text[-3000:])
        raise
    finally:
        if driver is not None: driver.quit()
        lab.terminate()
        try: lab.wait(20)
        except subprocess.TimeoutExpired: lab.kill()
