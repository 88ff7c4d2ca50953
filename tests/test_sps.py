"""benchmarks/sps.py --quick on the MuJoCo rows: it times the real train_step and counts its FLOPs."""

import importlib.util
import os

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("sps", os.path.join(REPO_ROOT, "benchmarks", "sps.py"))
sps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sps)


def test_quick_benchmark_table(monkeypatch):
    monkeypatch.setattr(sps, "ROWS", sps.ROWS[:3] + (("not written yet", "no_such_script", sps.MUJOCO),))
    threads = torch.get_num_threads()
    try:
        results, peak, facts = sps.run(sps.Args(quick=True, threads=1, seconds=0.3, learning_starts=300))
    finally:
        torch.set_num_threads(threads)
    by_label = {r.label: r for r in results}
    assert list(by_label) == ["td3_baseline", "gamid N=1", "gamid N=5", "not written yet"]
    for label in ("td3_baseline", "gamid N=1", "gamid N=5"):
        assert by_label[label].sps > 0 and by_label[label].note == ""
    # Gamid with N = 1 does TD3's arithmetic; N = 5 about 3x (SPEC §11).
    assert by_label["gamid N=1"].flops == by_label["td3_baseline"].flops
    assert 2.5 < by_label["gamid N=5"].flops / by_label["td3_baseline"].flops < 3.5
    assert "skipped" in by_label["not written yet"].note and peak > 0
    table = sps.format_table(results, peak, facts)
    assert table.splitlines()[2].startswith("| td3_baseline | ") and "| 1.00 |" in table.splitlines()[2]
