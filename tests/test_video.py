"""--capture-video on a headless machine (issue 22): it records, or it refuses before training in one sentence.

The behaviour is tested once, on td3_baseline.py; the other scripts share its `choose_renderer` text (test_drift.py),
and a cheap check runs each of them up to the refusal.
"""

import os
import signal
import subprocess
import sys

import pytest
from conftest import ENV, ROOT, run_script

REFUSAL = "--capture-video cannot render: install libosmesa6 and set MUJOCO_GL=osmesa."
# A backend that cannot render here: GLFW needs a display, and this environment has none.
NO_DISPLAY = {k: v for k, v in ENV.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")} | {"MUJOCO_GL": "glfw"}
HEADLESS = {k: v for k, v in NO_DISPLAY.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}  # the default
SCRIPTS = {"td3_baseline.py": "InvertedPendulum-v4", "gamid_continuous_action.py": "InvertedPendulum-v4",
           "sacm_baseline.py": "InvertedPendulum-v4", "pmoe_baseline.py": "InvertedPendulum-v4",
           "ppo_baseline.py": "InvertedPendulum-v4", "gamid_her_fetch.py": "FetchReach-v4",
           "sacm_her_fetch.py": "FetchReach-v4"}  # fmt: skip
TINY = ["--env-id", "InvertedPendulum-v4", "--learning-starts", "500", "--batch-size", "32", "--net-arch", "32", "32",
        "--eval-freq", "300", "--eval-episodes", "1"]  # fmt: skip


def offscreen_renderer() -> bool:
    """OSMesa or EGL renders here (libosmesa6, or libegl1 with a driver): the probe of choose_renderer()."""
    probe = [sys.executable, "-c", "import mujoco as m; m.Renderer(m.MjModel.from_xml_string('<mujoco/>'), 8, 8)"]
    return any(
        subprocess.run(probe, env=HEADLESS | {"MUJOCO_GL": gl}, capture_output=True, timeout=120).returncode == 0
        for gl in ("osmesa", "egl")
    )


def test_a_backend_that_cannot_render_refuses_in_one_sentence_before_training_and_writes_nothing(tmp_path):
    result = run_script("td3_baseline.py", *TINY, "--total-timesteps", "600", "--runs-dir", tmp_path / "runs",
                        "--capture-video", env=NO_DISPLAY)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == REFUSAL  # no traceback, no GLFW warnings
    assert "eval return" not in result.stdout and not (tmp_path / "runs").exists()

    trained = run_script("td3_baseline.py", *TINY, "--total-timesteps", "600", "--runs-dir", tmp_path, "--save-model")
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = tmp_path.iterdir()
    watched = run_script("td3_baseline.py", "--evaluate", run_dir, "--capture-video", env=NO_DISPLAY, timeout=120)
    assert watched.returncode == 1 and watched.stderr.strip() == REFUSAL
    assert not (run_dir / "videos_evaluate").exists()


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_every_script_refuses_the_backend_before_training(script, tmp_path):
    result = run_script(
        script, "--env-id", SCRIPTS[script], "--runs-dir", tmp_path, "--capture-video", env=NO_DISPLAY, timeout=120
    )
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == REFUSAL, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())  # no run directory


def test_a_headless_run_records_and_a_resumed_run_keeps_the_videos_of_its_first_part(tmp_path):
    if not offscreen_renderer():
        pytest.skip("neither OSMesa nor EGL renders here (apt-get install libosmesa6)")
    flags = [*TINY, "--total-timesteps", "900", "--runs-dir", tmp_path, "--capture-video"]
    command = [sys.executable, os.path.join(ROOT, "td3_baseline.py"), *flags]
    process = subprocess.Popen(command, env=HEADLESS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("step 300, eval return"):
            process.send_signal(signal.SIGTERM)  # interrupted after the first evaluation
            break
    _, errors = process.communicate(timeout=300)
    assert process.returncode == 75, errors
    (run_dir,) = tmp_path.iterdir()
    videos = run_dir / "videos"
    assert [path.name for path in videos.glob("*.mp4")] == ["step300-episode-0.mp4"]  # written at the exit
    first = (videos / "step300-episode-0.mp4").read_bytes()

    resumed = run_script("td3_baseline.py", "--resume", run_dir, env=HEADLESS)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(path.name for path in videos.glob("*.mp4")) == [
        "step300-episode-0.mp4", "step600-episode-0.mp4", "step900-episode-1.mp4"
    ]  # fmt: skip
    assert (videos / "step300-episode-0.mp4").read_bytes() == first  # kept, not overwritten
    watched = run_script(
        "td3_baseline.py", "--evaluate", run_dir, "--capture-video", "--eval-episodes", "2", env=HEADLESS
    )
    assert watched.returncode == 0, watched.stderr
    assert sorted(path.name for path in (run_dir / "videos_evaluate").glob("*.mp4")) == [
        "step900-episode-0.mp4",
        "step900-episode-1.mp4",
    ]  # fmt: skip: named by the checkpoint's step, the last one written at the exit
    for output in (errors, resumed.stderr, watched.stderr):
        assert "Exception ignored" not in output and "Traceback" not in output
