"""Reproduce the paper's Table 1 and Figures 2, 4, 5, 8-9 and 10-15, and test the learned temperature: a grid
of (script, task, seed) training runs, then the table and the figures. `--experiment` picks what (each writes its
PNGs and a CSV of every plotted number):
- `table1` (the default): every script on every task of Table 1; the table and Figure 4's learning curves;
- `fig2`: gamid_continuous_action.py with the temperature static at 0, at 10, and as the task's preset, on Hopper,
  HalfCheetah and Walker2d; `fig2.png`/`.csv`: the sum of D_var over training (charts/sum_d_var), smoothed by a
  moving average over 10% of the budget (the paper: 100k steps at 1M);
- `fig5`: the ablations of §4.4 on Walker2d (Figures 10-15: other --tasks), all else at the task's preset:
  N = 1..5; the temperature static at 0.01, 0.1, 0.5 and decayed 0.1 -> 0.01 over 30% of the budget; epsilon
  static at 0, 1/(10N), 1/(2N), 1/N (N: the preset's); `fig5_<task>.png`/`.csv`: one panel per ablation;
  `--ablations n_actors` (or any subset of n_actors, temperature, epsilon) runs and plots only those;
- `fig8`: the same three temperatures as fig2 on Hopper (Figure 9: --tasks HalfCheetah-v4); the runs record the
  N Gaussian means on fixed probe states (the run's first P observations) at every evaluation (`means.npz`).
  `fig8_<task>.png`/`.csv`: rows temperature 0, 10 and the preset, columns four training steps evenly spaced
  over the evaluations (the last included), each panel the top two principal components of that step's N x P
  means (PCA per panel), coloured by Gaussian, for the first seed (the paper shows one run). The paper's claim,
  "higher spread for temperature 10", as a number: `fig8_spread_<task>.csv`, the mean over probe states of the
  mean pairwise Euclidean distance between the N means (action scale) per variant, seed and evaluation, and
  `fig8_<task>.md`, its final value (mean ± std over seeds) with Welch's test of 10 against 0;
- `auto-temperature`: Gamid with the task's preset against Gamid with `--temperature auto --epsilon auto` (the
  paper's future work, §5) on Hopper, HalfCheetah and Walker2d. `auto_temperature.md`: per task, the final
  greedy return of both (mean ± sample std over seeds, Welch's two-sided p), and the auto runs' final
  temperature and mean D_var beside the target D*; `auto_temperature.csv`: every run's final values;
  `auto_temperature_<task>.png`/`.csv`: the return curves, the learned temperature (the preset's schedule
  dashed), and the mean D_var (moving average over 10% of the budget) with D*.
Every curve is the mean over seeds with the paper's band (Figure 4): a tolerance interval with alpha = 0.05 and
beta = 0.7 (Patterson et al., 2023; see `tolerance_interval`), which for up to 13 runs is their min-max range.

fig2, fig8 and auto-temperature share one grid, in one --out-dir (default `benchmarks/results/gamid-<budget>`):
variants `temperature-0`, `temperature-10`, `preset` and `auto`, every run with `--record-means`, so a run that
two experiments need has one command and runs once (fig2's Hopper runs are fig8's; its preset runs are
auto-temperature's baseline). Runs evaluating more often than every 100 steps record fewer probe states (the
probe states are the first states in the replay buffer, which must be there at the first evaluation). table1 and
fig5 keep their own grids (`table1-<budget>`, `fig5-<budget>`). Run one harness at a time on an out-dir: two at
once would start a shared run twice.

Each run is an ordinary command line (`python td3_baseline.py --env-id Hopper-v4 --seed 2 ...`) with its own
`--runs-dir`, `<out-dir>/runs/<task>__<method>__<seed>/`, so the harness finds the run directory that the
script makes there (`<env_id>__<exp_name>__<seed>__<unix time>/`) without guessing. Next to it the harness keeps
`COMMAND` (the command the run was started with), `train.log` (the run's output, every attempt appended), and
`DONE` once the script exited 0, or `FAILED` (with the exit status) once it failed.

Interrupted runs resume. The scripts write `checkpoint.pt` in their run directory every `--checkpoint-freq`
env steps, and on SIGTERM, SIGUSR1 or SIGINT they finish the current episode, write it and exit with status 75.
Running the same command again skips the finished runs and resumes each unfinished one from its checkpoint
(`python <script> --resume <run dir>`); a run with no checkpoint, or started with another command (say, another
budget), starts again in a clean folder.
- Local pool (`--workers`): Ctrl-C, or SIGTERM to the harness, is passed on to the running runs as SIGTERM; they
  checkpoint and exit, the harness waits for them and exits with status 75. A second Ctrl-C stops everything
  at once (those runs later resume from their last periodic checkpoint).
- SLURM (`--slurm`): `grid.sbatch`, a job array with one index per run (written, not submitted), asks SLURM for
  SIGUSR1 `--slurm-signal-seconds` before the time limit and passes it, or a pre-emption's SIGTERM, to the run;
  when the run exits 75, the task requeues itself (`scontrol requeue`) and the requeued task resumes. Submitting
  `grid.sbatch` again does the same for every unfinished run. docs/slurm.md: time limits, GPUs (`--slurm-gres`),
  accounts (`--slurm-account`), logs, progress, failed nodes, checkpoint sizes; tests/test_slurm.py runs it all on
  a real SLURM cluster.

Every run evaluates often enough for a curve: by default at least 50 times, and every 10,000 steps at the
paper's budget (1M steps, 2M for Humanoid), whichever is more frequent.

The table1 summary (also alone with `--summarize-only`, as every experiment's) reads every finished run's greedy
evaluations (`eval/success_rate` where logged, i.e. Fetch, else `eval/episodic_return`) and writes to `--out-dir`:
- `table.md`: Table 1 laid out as in the paper (columns TD3, SAC, SACM, PMOE, PPO, Gamid; the selected tasks
  of its nine rows). Each cell holds our mean ± sample standard deviation (ddof = 1) over seeds of the final
  evaluation, beside the paper's value; our best mean of each row is in bold. A cell without our number says
  why: `n/a` (the paper has no such cell: PMOE and PPO were not combined with HER), `missing` (the script is
  not in this checkout), `failed`, `unfinished`, or `not run` (not selected). Last column: the p-value of
  Welch's two-sided t-test of Gamid against TD3 (paper §4.3);
- `results.csv`: the final value of every run; `summary.json`: the numbers behind the table;
- `curves_<task>.png` and `.csv`: learning curves of every method, the mean over seeds with the paper's band
  (Figure 4): a tolerance interval with alpha = 0.05 and beta = 0.7 (Patterson et al., 2023; see
  `tolerance_interval`).

With `--partial` (after a run, or with `--summarize-only` to look at a grid while it runs or after its runs were
cut off), every summary also reads the unfinished and failed runs that logged an evaluation, and cuts all the runs
of a task at the last step at which every one of them logged one (`select_runs`): a run's final evaluation, its
last logged temperature, its recorded means and its mean D_var window (the 10% of the budget before the cut) are
taken there, and its curves stop there. Every caption and markdown table says so in a line such as "partial:
Hopper-v4 runs cut at step 22,500 of 50,000 (unfinished or failed runs included), final values at that step;
unfinished: <run ids>", and every CSV has the columns `cut_step`, `partial` and `unfinished_runs`. A grid run
with `--partial` that is interrupted still writes its summaries.

    python benchmarks/reproduce.py --total-timesteps 200000 --workers 2
    python benchmarks/reproduce.py --scripts gamid_continuous_action td3_baseline \\
        --tasks HalfCheetah-v4 Hopper-v4 --seeds 1 2 --total-timesteps 20000 --workers 2
    python benchmarks/reproduce.py --slurm   # the paper's budgets; then: sbatch <out-dir>/grid.sbatch
    python benchmarks/reproduce.py --experiment fig5 --seeds 1 2 3 --total-timesteps 100000 --workers 2
    python benchmarks/reproduce.py --experiment auto-temperature --seeds 1 2 3 --total-timesteps 50000 --workers 2
    python benchmarks/reproduce.py --experiment auto-temperature --summarize-only --partial \\
        --out-dir benchmarks/results/gamid-50000
"""

import ast
import csv
import glob
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, dataclass
from typing import Literal, Optional

import numpy as np
import tyro

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MUJOCO_TASKS = ("Swimmer-v4", "HalfCheetah-v4", "Hopper-v4", "Ant-v4", "Walker2d-v4", "Humanoid-v4")
FETCH_TASKS = ("FetchPush-v4", "FetchSlide-v4", "FetchPickAndPlace-v4")
FETCH_SCRIPTS = ("gamid_her_fetch", "sacm_her_fetch")  # these run the Fetch tasks; all others the MuJoCo tasks
ON_POLICY_SCRIPTS = ("ppo_baseline",)  # no replay buffer: no --learning-starts
# The Table 1 columns each script fills: (method, used in run names; column; extra flags).
VARIANTS = {
    "td3_baseline": [("td3", "TD3", ())],
    "sacm_baseline": [("sac", "SAC", ("--n-components", "1")), ("sacm", "SACM", ("--n-components", "3"))],
    "pmoe_baseline": [("pmoe", "PMOE", ())],
    "ppo_baseline": [("ppo", "PPO", ())],
    "gamid_continuous_action": [("gamid", "Gamid", ())],
    "gamid_her_fetch": [("td3-her", "TD3", ("--n-actors", "1")), ("gamid-her", "Gamid", ())],
    "sacm_her_fetch": [("sac-her", "SAC", ("--n-components", "1")), ("sacm-her", "SACM", ("--n-components", "3"))],
}
COLUMNS = ("TD3", "SAC", "SACM", "PMOE", "PPO", "Gamid")  # Table 1's order
NO_FETCH_COLUMNS = ("PMOE", "PPO")  # the paper: no prior work combined PMOE or PPO with HER

# Paper Table 1: (mean, 1 std) over five runs after 2M steps (Humanoid) or 1M (the others), columns in the
# paper's order. The paper ran the MuJoCo tasks as -v3 and the Fetch tasks as -v1 (rows Push, Slide and
# PickAndPlace); we run -v4, the same tasks on the maintained mujoco bindings. None: "—" in the paper.
# fmt: off
PAPER_TABLE1 = {  #         TD3            SAC            SACM         PMOE           PPO           Gamid
    "Swimmer-v4":           ((263, 139),   (318, 43),     (336, 1.4),  (50, 3.82),    (318, 22.1),  (344, 4.1)),
    "HalfCheetah-v4":       ((9578, 648),  (10427, 206),  (9599, 357), (7934, 1072),  (5251, 907),  (11063, 300)),
    "Hopper-v4":            ((3392, 125),  (3027, 664),   (2848, 677), (2900, 461),   (918, 156),   (3301, 209)),
    "Ant-v4":               ((4264, 1671), (3613, 1365),  (4159, 512), (1874, 491),   (2204, 781),  (4998, 828)),
    "Walker2d-v4":          ((4153, 429),  (4237, 429),   (4187, 245), (4046, 530),   (3023, 1543), (4835, 187)),
    "Humanoid-v4":          ((5727, 411),  (5949, 560),   (5498, 770), (5039, 394),   (812, 136),   (6141, 629)),
    "FetchPush-v4":         ((0.34, 0.43), (0.99, 0.02),  (0.99, 0.02), None,         None,         (0.95, 0.05)),
    "FetchSlide-v4":        ((0.13, 0.18), (0.76, 0.26),  (0.75, 0.27), None,         None,         (0.45, 0.31)),
    "FetchPickAndPlace-v4": ((0.03, 0.04), (0.99, 0.01),  (0.99, 0.01), None,         None,         (0.66, 0.24)),
}
# fmt: on
PAPER_BUDGET = {"Humanoid-v4": 2_000_000}  # paper §4.3; every other task 1M steps
EVALUATIONS_PER_RUN = 50  # at least this many evaluations per run ...
EVAL_FREQ_AT_FULL_BUDGET = 10_000  # ... and at least one every this many steps
INTERRUPTED_EXIT_CODE = 75  # the scripts' exit status after a checkpoint on SIGTERM, SIGUSR1 or SIGINT
DONE, FAILED, COMMAND = "DONE", "FAILED", "COMMAND"
# The other figures' runs are Gamid's (gamid_continuous_action.py); their tasks by default, as in the paper.
EXPERIMENT_SCRIPT = "gamid_continuous_action"
EXPERIMENT_TASKS = {
    "table1": MUJOCO_TASKS + FETCH_TASKS,
    "fig2": ("Hopper-v4", "HalfCheetah-v4", "Walker2d-v4"),  # paper Figure 2
    "fig5": ("Walker2d-v4",),  # paper Figure 5; Figures 10-15 are the other tasks
    "fig8": ("Hopper-v4",),  # paper Figure 8; Figure 9 is HalfCheetah
    "auto-temperature": ("Hopper-v4", "HalfCheetah-v4", "Walker2d-v4"),
}
# fig2, fig8 and auto-temperature share one grid (one --out-dir and grid.json), so a run two of them need runs
# once: fig2's Hopper runs are fig8's, its preset runs auto-temperature's baseline. Each other experiment has its own.
SHARED_GRID = "gamid"
GRIDS = {"table1": "table1", "fig5": "fig5", "fig2": SHARED_GRID, "fig8": SHARED_GRID, "auto-temperature": SHARED_GRID}
# The shared grid's variants: method (in run names) -> (curve label, flags). Every run of the shared grid also
# records the means on the probe states (--record-means), which fig8 plots.
SHARED_VARIANTS = {
    "temperature-0": ("temperature 0", ("--temperature-initial", "0", "--temperature-final", "0")),
    "temperature-10": ("temperature 10", ("--temperature-initial", "10", "--temperature-final", "10")),
    "preset": ("temperature as preset (Table 5)", ()),
    "auto": ("temperature auto, epsilon 1/(10N)", ("--temperature", "auto", "--epsilon", "auto")),
}
EXPERIMENT_METHODS = {
    "fig2": ("temperature-0", "temperature-10", "preset"),  # paper §4.2: the two extreme temperatures, the tuned one
    "fig8": ("temperature-0", "temperature-10", "preset"),  # paper Figures 8-9: the same three
    "auto-temperature": ("preset", "auto"),  # the paper's future work (§5): the learned temperature and epsilon
}
ABLATIONS = ("n_actors", "temperature", "epsilon")  # fig5's panels (paper §4.4)
# The Gamid script's default --probe-states. Its probe states are the first states of the replay buffer, which must
# be there at the first evaluation and before training starts, so shorter runs get fewer.
PROBE_STATES = 100
PANEL_TITLES = {"n_actors": "number of Gaussians N", "temperature": "temperature", "epsilon": "epsilon (Line 3)"}
SMOOTHING_AT_FULL_BUDGET = 100_000  # Figure 2's moving window at 1M steps
TOLERANCE_ALPHA, TOLERANCE_BETA = 0.05, 0.7  # the paper's Figure 4 caption
BAND_TEXT = "band: tolerance interval, alpha = 0.05, beta = 0.7 (Patterson et al., 2023; min-max of the runs up to 13)"


@dataclass
class Args:
    experiment: Literal["table1", "fig2", "fig5", "fig8", "auto-temperature"] = "table1"
    """what to reproduce: table1 (Table 1 and Figure 4's curves), fig2 (sum of D_var for temperatures 0, 10 and
    the preset), fig5 (the N, temperature and epsilon ablations; Figures 10-15 with --tasks), fig8 (PCA of the
    Gaussian means for temperatures 0, 10 and the preset; Figure 9 with --tasks HalfCheetah-v4), auto-temperature
    (the learned temperature and epsilon against the preset)"""
    scripts: tuple[str, ...] = tuple(VARIANTS)
    """table1's training scripts (file names without .py); sacm_baseline and sacm_her_fetch run as SAC (K = 1) and
    SACM (K = 3), gamid_her_fetch as Gamid+HER and TD3+HER (N = 1)"""
    tasks: Optional[tuple[str, ...]] = None
    """tasks; Fetch* tasks go to the HER scripts, the others to the MuJoCo scripts (default: table1 every row
    of Table 1, fig2 and auto-temperature Hopper, HalfCheetah and Walker2d, fig5 Walker2d, fig8 Hopper)"""
    ablations: tuple[Literal["n_actors", "temperature", "epsilon"], ...] = ABLATIONS
    """fig5's ablations to run (and plot), e.g. --ablations n_actors for the N ablation alone"""
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    """seeds of every (script, task) pair (the paper: five runs)"""
    total_timesteps: Optional[int] = None
    """budget of every run (default: each script's paper preset, 1e6 steps, 2e6 for Humanoid)"""
    learning_starts: Optional[int] = None
    """random steps before training, passed to every off-policy run (default: the scripts' own)"""
    eval_freq: Optional[int] = None
    """greedy evaluation every this many steps (default: the budget / 50, at most 10000)"""
    eval_episodes: int = 10
    """episodes per evaluation"""
    checkpoint_freq: Optional[int] = None
    """passed to every run as --checkpoint-freq (default: the scripts' own)"""
    script_flags: str = ""
    """more flags for every run, as one string after '=', e.g. --script-flags='--buffer-size 300000 --no-cuda'"""
    workers: int = 1
    """runs at once in the local process pool"""
    threads_per_run: Optional[int] = None
    """torch threads of each run (OMP_NUM_THREADS; default: CPU cores // workers, at least 1)"""
    out_dir: Optional[str] = None
    """where runs, logs, table and plots go (default: benchmarks/results/<grid>-<budget>, the grid: table1, fig5,
    or gamid, which fig2, fig8 and auto-temperature share)"""
    slurm: bool = False
    """write <out-dir>/grid.sbatch and commands.txt for `sbatch` instead of running"""
    slurm_time: str = "48:00:00"
    """SLURM --time of one run (a run that reaches it checkpoints and requeues itself)"""
    slurm_signal_seconds: int = 300
    """SIGUSR1 this many seconds before the time limit: time to finish the episode and write the checkpoint"""
    slurm_cpus: int = 2
    """SLURM --cpus-per-task (also the run's OMP_NUM_THREADS)"""
    slurm_mem: str = "8G"
    """SLURM --mem of one run"""
    slurm_partition: Optional[str] = None
    """SLURM --partition (default: the cluster's)"""
    slurm_gres: Optional[str] = None
    """SLURM --gres of one run, e.g. gpu:1 (default: none; the scripts use a GPU when they see one)"""
    slurm_account: Optional[str] = None
    """SLURM --account charged for the runs (default: the user's default account)"""
    slurm_setup: Optional[str] = None
    """shell line run before each job, e.g. 'source .venv/bin/activate' (default: activate this Python's venv)"""
    summarize_only: bool = False
    """do not run anything; summarize the finished runs in --out-dir (with --partial, the unfinished ones too)"""
    partial: bool = False
    """summarize the unfinished and failed runs that logged an evaluation too, every run of a task cut at the
    last step at which all of them logged one (say, to look at a grid while it runs); the outputs say so"""
    repo_root: str = REPO_ROOT
    """where the training scripts are"""


@dataclass
class Run:
    run_id: str  # <task>__<method>__<seed>, also the name of its folder under <out-dir>/runs
    task: str
    method: str
    column: str
    script: str
    seed: int
    argv: list  # the command after the Python interpreter, run in the repository root
    panel: str = ""  # fig5: the ablation (n_actors, temperature or epsilon); column is then the curve's label

    def dir(self, out_dir: str) -> str:
        return os.path.join(out_dir, "runs", self.run_id)


def eval_freq(args: Args, task: str) -> int:
    """Evaluate at least 50 times per run, and at least every 10k steps (the paper's budget: 100 or 200 times)."""
    if args.eval_freq is not None:
        return args.eval_freq
    budget = args.total_timesteps or PAPER_BUDGET.get(task, 1_000_000)
    return max(1, min(EVAL_FREQ_AT_FULL_BUDGET, budget // EVALUATIONS_PER_RUN))


def selected_tasks(args: Args) -> tuple[str, ...]:
    return args.tasks if args.tasks is not None else EXPERIMENT_TASKS[args.experiment]


def preset_n_actors(repo_root: str, task: str) -> int:
    """N of the task's preset, read from gamid_continuous_action.py's PRESETS (Table 5) without importing it: a row
    is a tuple whose columns PRESET_FIELDS names (or a dict(...) of them)."""
    with open(os.path.join(repo_root, EXPERIMENT_SCRIPT + ".py")) as f:
        tree = ast.parse(f.read())
    assigned = {
        getattr(t, "id", None): node.value for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
    }
    if "PRESETS" not in assigned:
        raise SystemExit(f"No PRESETS in {EXPERIMENT_SCRIPT}.py, so the task's N is unknown.")
    presets = {ast.literal_eval(key): row for key, row in zip(assigned["PRESETS"].keys, assigned["PRESETS"].values)}
    row = presets.get(task.split("-")[0], presets["Hopper"])  # Box envs outside the paper take Hopper's column
    if isinstance(row, ast.Call):  # dict(n_actors=..., ...)
        return next(ast.literal_eval(keyword.value) for keyword in row.keywords if keyword.arg == "n_actors")
    return ast.literal_eval(row)[ast.literal_eval(assigned["PRESET_FIELDS"]).index("n_actors")]


def static(name: str, value: float) -> tuple[str, ...]:
    """Flags holding a schedule (temperature or epsilon) at one value."""
    return (f"--{name}-initial", str(value), f"--{name}-final", str(value))


def experiment_variants(
    experiment: str, task: str, repo_root: str, ablations: tuple[str, ...] = ABLATIONS
) -> list[tuple[str, str, tuple, str]]:
    """The runs of a figure on one task: (method, used in run names; curve label; extra flags; panel)."""
    if experiment in EXPERIMENT_METHODS:  # the shared grid: one text per variant, whichever experiment asks
        variants = []
        for method in EXPERIMENT_METHODS[experiment]:
            label, flags = SHARED_VARIANTS[method]
            variants.append((method, label, ("--record-means", *flags), ""))
        return variants
    n = preset_n_actors(repo_root, task)  # paper §4.4: everything else at the task's preset
    variants = [(f"n-actors-{k}", f"N = {k}", ("--n-actors", str(k)), "n_actors") for k in range(1, 6)]
    for temperature in (0.01, 0.1, 0.5):
        flags = static("temperature", temperature)
        variants.append((f"temperature-{temperature}", f"temperature {temperature}", flags, "temperature"))
    decay = ("--temperature-initial", "0.1", "--temperature-final", "0.01", "--temperature-fraction", "0.3")
    variants.append(("temperature-0.1-to-0.01", "temperature 0.1 -> 0.01 over 30%", decay, "temperature"))
    for name, fraction in (("0", 0), ("1/(10N)", 1 / 10), ("1/(2N)", 1 / 2), ("1/N", 1)):
        epsilon = fraction / n
        label = f"epsilon = {name}" + (f" = {epsilon:.3g}" if epsilon else "")
        method = "epsilon-" + name.replace("/", "_").replace("(", "").replace(")", "")
        variants.append((method, label, static("epsilon", epsilon), "epsilon"))
    return [variant for variant in variants if variant[3] in ablations]


def run_argv(args: Args, script: str, task: str, seed: int, runs_dir: str, flags: tuple) -> list[str]:
    """The run's command line: the grid's budget, evaluations and checkpoints, then its own flags."""
    argv = [f"{script}.py", "--env-id", task, "--seed", str(seed), "--runs-dir", runs_dir, *flags]
    if args.total_timesteps is not None:
        argv += ["--total-timesteps", str(args.total_timesteps)]
    if args.learning_starts is not None and script not in ON_POLICY_SCRIPTS:
        argv += ["--learning-starts", str(args.learning_starts)]
    argv += ["--eval-freq", str(eval_freq(args, task)), "--eval-episodes", str(args.eval_episodes)]
    if args.checkpoint_freq is not None:
        argv += ["--checkpoint-freq", str(args.checkpoint_freq)]
    return argv + shlex.split(args.script_flags)


def build_grid(args: Args, out_dir: str) -> tuple[list[Run], list[str]]:
    """Every (script variant, task, seed) of the selection whose script exists, and the selected scripts that
    do not exist (reported, and marked in the table)."""
    runs, missing = [], []
    if args.experiment != "table1":
        if not os.path.exists(os.path.join(args.repo_root, EXPERIMENT_SCRIPT + ".py")):
            raise SystemExit(f"{EXPERIMENT_SCRIPT}.py is not in {args.repo_root}; {args.experiment} needs it.")
        for task in selected_tasks(args):
            if task.startswith("Fetch"):
                raise SystemExit(f"{args.experiment} runs the MuJoCo tasks only, not {task}.")
            variants = experiment_variants(args.experiment, task, args.repo_root, args.ablations)
            probes = min(PROBE_STATES, eval_freq(args, task), args.learning_starts or PROBE_STATES)
            for method, label, flags, panel in variants:
                if GRIDS[args.experiment] == SHARED_GRID and probes < PROBE_STATES:  # a short run: fewer probes
                    flags = (*flags, "--probe-states", str(probes))
                for seed in args.seeds:
                    run_id = f"{task}__{method}__{seed}"
                    runs_dir = os.path.join(out_dir, "runs", run_id)
                    argv = run_argv(args, EXPERIMENT_SCRIPT, task, seed, runs_dir, flags)
                    runs.append(Run(run_id, task, method, label, EXPERIMENT_SCRIPT, seed, argv, panel))
        return runs, missing
    for script in args.scripts:
        if script not in VARIANTS:
            raise SystemExit(f"Unknown script '{script}'; choose from {', '.join(VARIANTS)}.")
        if not os.path.exists(os.path.join(args.repo_root, script + ".py")):
            print(f"note: {script}.py is not in {args.repo_root}; its columns are marked missing.")
            missing.append(script)
            continue
        tasks = [task for task in selected_tasks(args) if task.startswith("Fetch") == (script in FETCH_SCRIPTS)]
        for task in tasks:
            for method, column, flags in VARIANTS[script]:
                for seed in args.seeds:
                    run_id = f"{task}__{method}__{seed}"
                    runs_dir = os.path.join(out_dir, "runs", run_id)
                    argv = run_argv(args, script, task, seed, runs_dir, flags)
                    runs.append(Run(run_id, task, method, column, script, seed, argv))
    return runs, missing


def manifest_grid(manifest: dict) -> str:
    """The grid a grid.json holds (written before the shared grid existed: under the key "experiment")."""
    return manifest.get("grid") or GRIDS[manifest.get("experiment", "table1")]


def write_manifest(
    runs: list[Run], missing: list[str], tasks: tuple[str, ...], out_dir: str, experiment: str = "table1"
) -> None:
    """Add the runs to <out-dir>/grid.json (kept across invocations, so the summary sees every grid run here)."""
    path = os.path.join(out_dir, "grid.json")
    manifest = {"runs": {}, "missing_scripts": [], "tasks": [], "grid": GRIDS[experiment]}
    if os.path.exists(path):
        with open(path) as f:
            manifest = json.load(f)
    if manifest_grid(manifest) != GRIDS[experiment]:
        raise SystemExit(f"{out_dir} holds the {manifest_grid(manifest)} grid; give {experiment} another --out-dir.")
    manifest["grid"] = manifest_grid(manifest)
    manifest.pop("experiment", None)
    manifest["runs"] |= {run.run_id: asdict(run) for run in runs}
    present = {run.script for run in runs}
    manifest["missing_scripts"] = sorted(set(manifest["missing_scripts"]) - present | set(missing))
    manifest["tasks"] += [task for task in tasks if task not in manifest["tasks"]]
    experiment_tasks = manifest.setdefault("experiment_tasks", {}).setdefault(experiment, [])
    experiment_tasks += [task for task in tasks if task not in experiment_tasks]  # each experiment's panels
    os.makedirs(out_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)


def read_manifest(out_dir: str) -> dict:
    path = os.path.join(out_dir, "grid.json")
    if not os.path.exists(path):
        raise SystemExit(f"No grid in {out_dir} (grid.json is missing); run the grid first.")
    with open(path) as f:
        manifest = json.load(f)
    manifest["runs"] = [Run(**entry) for entry in manifest["runs"].values()]
    return manifest


def command_text(run: Run) -> str:
    return " ".join(run.argv)


def read_marker(run: Run, out_dir: str, name: str) -> Optional[str]:
    path = os.path.join(run.dir(out_dir), name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def is_finished(run: Run, out_dir: str) -> bool:
    done = read_marker(run, out_dir, DONE)
    if done is not None and done != command_text(run):
        print(f"note: {run.run_id} finished with another command; it runs again.")
    return done == command_text(run)


def resume_point(run: Run, out_dir: str) -> Optional[str]:
    """The run directory holding the run's checkpoint.pt, if the run was started with this same command."""
    if read_marker(run, out_dir, COMMAND) != command_text(run):
        return None
    checkpoints = glob.glob(os.path.join(glob.escape(run.dir(out_dir)), "*", "checkpoint.pt"))
    return os.path.dirname(checkpoints[0]) if len(checkpoints) == 1 else None


def next_attempt(run: Run, out_dir: str) -> list[str]:
    """The command of the run's next attempt: resume from its checkpoint, or start afresh in a clean folder."""
    run_dir = resume_point(run, out_dir)
    if run_dir is not None:
        if os.path.exists(os.path.join(run.dir(out_dir), FAILED)):
            os.remove(os.path.join(run.dir(out_dir), FAILED))
        return [run.argv[0], "--resume", run_dir]
    shutil.rmtree(run.dir(out_dir), ignore_errors=True)  # an attempt without a checkpoint must not mix in
    os.makedirs(run.dir(out_dir))
    with open(os.path.join(run.dir(out_dir), COMMAND), "w") as f:
        f.write(command_text(run) + "\n")
    return run.argv


def record_exit(run: Run, out_dir: str, code: int) -> None:
    """DONE after exit 0, FAILED after any other status but the interruption's (that run resumes)."""
    if code == 0:
        with open(os.path.join(run.dir(out_dir), DONE), "w") as f:
            f.write(command_text(run) + "\n")
    elif code != INTERRUPTED_EXIT_CODE:
        with open(os.path.join(run.dir(out_dir), FAILED), "w") as f:
            f.write(f"exit {code}\n")


# --- local process pool --------------------------------------------------------------------------------------


class PoolStop:
    """Ctrl-C or SIGTERM to the harness: no new run starts, and the running ones are asked to checkpoint.

    A second one stops everything at once (SIGINT to the runs, which then stop without a checkpoint)."""

    def __init__(self, running: dict):
        self.running = running
        self.received = False
        self.previous_handlers = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous_handlers[signum] = signal.signal(signum, self.handle)
        return self

    def handle(self, signum, frame):
        if self.received:
            for process, _, _ in self.running.values():
                process.send_signal(signal.SIGINT)
            raise KeyboardInterrupt
        self.received = True
        name = signal.Signals(signum).name
        print(f"{name}: the running runs finish their episode and checkpoint; Ctrl-C again stops at once.", flush=True)

    def __exit__(self, *exception):
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)


def start_run(run: Run, out_dir: str, repo_root: str, threads: int) -> tuple[subprocess.Popen, object, float]:
    """Start the run's next attempt (resumed or fresh), its output appended to its train.log."""
    argv = next_attempt(run, out_dir)
    log = open(os.path.join(run.dir(out_dir), "train.log"), "a")
    log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}: python {shlex.join(argv)}\n")
    log.flush()
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    process = subprocess.Popen([sys.executable, *argv], cwd=repo_root, stdout=log, stderr=subprocess.STDOUT, env=env)
    return process, log, time.time()


def run_grid(runs: list[Run], out_dir: str, args: Args) -> tuple[int, int]:
    """Run the unfinished runs, `workers` at a time. Returns the numbers of failed and interrupted runs."""
    queue = [run for run in runs if not is_finished(run, out_dir)]
    total = len(queue)
    threads = args.threads_per_run or max(1, (os.cpu_count() or 1) // args.workers)
    resumable = sum(resume_point(run, out_dir) is not None for run in queue)
    logs = os.path.join(out_dir, "runs", "<run>", "train.log")
    print(
        f"{len(runs)} runs in the grid, {len(runs) - total} already finished; running {total} "
        f"({resumable} resumed from their checkpoint) with {args.workers} worker(s), {threads} thread(s) each. "
        f"Logs: {logs}",
        flush=True,
    )
    running = {}  # run_id -> (process, log file, start time)
    asked_to_stop = set()  # run_ids that got the SIGTERM
    by_id = {run.run_id: run for run in queue}
    failed, interrupted, ended, start = 0, 0, 0, time.time()
    with PoolStop(running) as stop:
        while (queue and not stop.received) or running:
            while queue and not stop.received and len(running) < args.workers:
                run = queue.pop(0)
                running[run.run_id] = start_run(run, out_dir, args.repo_root, threads)
            if stop.received:  # each running run gets the signal once
                for run_id, (process, _, _) in running.items():
                    if run_id not in asked_to_stop:
                        process.send_signal(signal.SIGTERM)
                        asked_to_stop.add(run_id)
            time.sleep(0.2)
            for run_id, (process, log, started) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                del running[run_id]
                log.close()
                run = by_id[run_id]
                if stop.received and code != 0:
                    code = INTERRUPTED_EXIT_CODE  # stopped by us, maybe before it could checkpoint: it resumes
                record_exit(run, out_dir, code)
                ended += 1
                failed += code not in (0, INTERRUPTED_EXIT_CODE)
                interrupted += code == INTERRUPTED_EXIT_CODE
                log_path = os.path.join(run.dir(out_dir), "train.log")
                status = {0: "finished", INTERRUPTED_EXIT_CODE: "interrupted (resumes on the next run)"}
                status = status.get(code, f"FAILED (exit {code}, see {log_path})")
                seconds, grid_seconds = time.time() - started, time.time() - start
                print(f"[{ended}/{total}] {run_id} {status} in {seconds:.0f} s (grid {grid_seconds:.0f} s)", flush=True)
    not_started = len(queue)
    seconds = time.time() - start
    print(f"grid wall time {seconds:.0f} s: {failed} failed, {interrupted} interrupted, {not_started} not started")
    return failed, interrupted + not_started


# --- SLURM ---------------------------------------------------------------------------------------------------


def slurm_seconds(time_limit: str) -> Optional[int]:
    """Seconds of a SLURM --time (minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes,
    days-hours:minutes:seconds); None for no limit or a value SLURM would reject (sbatch then says why)."""
    days, _, clock = time_limit.rpartition("-") if "-" in time_limit else ("0", "", time_limit)
    parts = clock.split(":")
    if not (days + "".join(parts)).isdigit() or len(parts) > 3:
        return None
    numbers = [int(part) for part in parts]
    if "-" in time_limit:  # days-hours[:minutes[:seconds]]
        numbers += [0] * (3 - len(numbers))
        return ((int(days) * 24 + numbers[0]) * 60 + numbers[1]) * 60 + numbers[2]
    if len(numbers) == 3:
        return (numbers[0] * 60 + numbers[1]) * 60 + numbers[2]
    return numbers[0] * 60 + (numbers[1] if len(numbers) == 2 else 0)


def slurm_value(value: str) -> str:
    """A value for an #SBATCH line: sbatch splits those lines at blanks and reads double and single quotes, so a
    value with either is written in double quotes (one holding a double quote or a line break cannot be)."""
    if '"' in value or "\n" in value:
        raise SystemExit(f"{value!r} cannot go on an #SBATCH line: it holds a double quote or a line break.")
    return f'"{value}"' if any(c.isspace() or c in "'\\" for c in value) else value


def write_slurm(runs: list[Run], out_dir: str, args: Args) -> str:
    """Write grid.sbatch (array index i runs line i + 1 of commands.txt) and commands.txt; returns the sbatch path."""
    os.makedirs(os.path.join(out_dir, "slurm"), exist_ok=True)
    setup = args.slurm_setup
    if setup is None and sys.prefix != sys.base_prefix:  # this Python is a venv's
        setup = f"source {shlex.quote(os.path.join(sys.prefix, 'bin', 'activate'))}"
    with open(os.path.join(out_dir, "commands.txt"), "w") as f:
        f.writelines(f"python {shlex.join(run.argv)}\n" for run in runs)
    sbatch_path = os.path.join(out_dir, "grid.sbatch")
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=reproduce-{GRIDS[args.experiment]}",
        f"#SBATCH --array=0-{len(runs) - 1}",
        f"#SBATCH --cpus-per-task={args.slurm_cpus}",
        f"#SBATCH --mem={args.slurm_mem}",
        f"#SBATCH --time={args.slurm_time}",
        f"#SBATCH --output={slurm_value(os.path.join(out_dir, 'slurm', '%A_%a.out'))}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --signal=B:USR1@{args.slurm_signal_seconds}",
        "#SBATCH --requeue",
        *([f"#SBATCH --partition={slurm_value(args.slurm_partition)}"] if args.slurm_partition else []),
        *([f"#SBATCH --gres={slurm_value(args.slurm_gres)}"] if args.slurm_gres else []),
        *([f"#SBATCH --account={slurm_value(args.slurm_account)}"] if args.slurm_account else []),
        f"# Written by benchmarks/reproduce.py: {len(runs)} run(s); array index i = line i + 1 of commands.txt.",
        f"# Submit with: sbatch {shlex.quote(sbatch_path)}",
        "# A task skips a finished run (DONE holds its command) and resumes an interrupted one from its checkpoint.",
        f"# SIGUSR1 {args.slurm_signal_seconds} s before the time limit, or a pre-emption's SIGTERM, goes to the run:",
        f"# it finishes its episode, writes checkpoint.pt and exits {INTERRUPTED_EXIT_CODE}; the task then requeues "
        "itself.",
        "# Summarize with: python benchmarks/reproduce.py --summarize-only --out-dir <this folder>",
        "set -euo pipefail",
        "# SLURM signals the batch shell only (B:), so the shell passes them on to the run (or, before the run has",
        "# started, skips it and requeues).",
        f'STOP="" RUN_PID="" GRID_SBATCH={shlex.quote(sbatch_path)}',
        'stop() { STOP=$1; if [ -n "$RUN_PID" ]; then kill -"$1" "$RUN_PID" 2>/dev/null || true; fi; }',
        "trap 'stop USR1' USR1  # SLURM's warning before the time limit",
        "trap 'stop TERM' TERM  # pre-emption or scancel",
        *([setup] if setup else []),
        f"cd {shlex.quote(os.path.abspath(args.repo_root))}",
        f"export OMP_NUM_THREADS={args.slurm_cpus} MKL_NUM_THREADS={args.slurm_cpus}",
        "export PYTHONUNBUFFERED=1  # the run's progress lines reach its train.log as they are printed",
        'case "${SLURM_ARRAY_TASK_ID:?submit with sbatch, or set SLURM_ARRAY_TASK_ID}" in',
    ]
    for i, run in enumerate(runs):
        lines.append(f"  {i}) RUN_DIR={shlex.quote(run.dir(out_dir))}; set -- {shlex.join(run.argv)} ;;")
    lines += [
        '  *) echo "no run for array index $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;',
        "esac",
        'COMMAND="$*"',
        'if [ "$(cat "$RUN_DIR/DONE" 2>/dev/null)" = "$COMMAND" ]; then echo "already finished: $RUN_DIR"; exit 0; fi',
        'CHECKPOINTS=("$RUN_DIR"/*/checkpoint.pt)',
        'if [ "$(cat "$RUN_DIR/COMMAND" 2>/dev/null)" = "$COMMAND" ] && [ ${#CHECKPOINTS[@]} -eq 1 ] '
        '&& [ -f "${CHECKPOINTS[0]}" ]; then',
        '  set -- "$1" --resume "$(dirname "${CHECKPOINTS[0]}")"',
        "else  # never started, or started with another command, or stopped before its first checkpoint",
        '  rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR" && printf \'%s\\n\' "$COMMAND" > "$RUN_DIR/COMMAND"',
        "fi",
        'rm -f "$RUN_DIR/FAILED"',
        "# A signal before the run has started: no run (the next attempt starts it, or resumes its checkpoint).",
        f'if [ -n "$STOP" ]; then echo "SIG$STOP before the run started"; CODE={INTERRUPTED_EXIT_CODE}; else',
        "  echo \"--- $(date '+%Y-%m-%d %H:%M:%S'): python $* (task ${SLURM_JOB_ID:-?}, restart "
        '${SLURM_RESTART_COUNT:-0}; progress: $RUN_DIR/train.log)" | tee -a "$RUN_DIR/train.log"',
        '  python "$@" >> "$RUN_DIR/train.log" 2>&1 &',
        "  RUN_PID=$!",
        "  # A signal while it was starting may have reached the forked shell, not Python: pass it on again.",
        '  if [ -n "$STOP" ]; then sleep 1; kill -"$STOP" "$RUN_PID" 2>/dev/null || true; fi',
        '  while kill -0 "$RUN_PID" 2>/dev/null; do wait "$RUN_PID" || true; done  # a trapped signal ends a wait',
        '  set +e; wait "$RUN_PID"; CODE=$?; set -e',
        "  # Stopped by SLURM, maybe before the run could catch the signal: it resumes from its last checkpoint (or",
        "  # starts again), as a run that checkpointed on the signal does.",
        f'  if [ "$CODE" -ne 0 ] && [ "$CODE" -ne {INTERRUPTED_EXIT_CODE} ] && [ -n "$STOP" ]; then'
        f' echo "SIG$STOP; run exit $CODE"; CODE={INTERRUPTED_EXIT_CODE}; fi',
        "fi",
        'if [ "$CODE" -eq 0 ]; then printf \'%s\\n\' "$COMMAND" > "$RUN_DIR/DONE"; exit 0; fi',
        f'if [ "$CODE" -eq {INTERRUPTED_EXIT_CODE} ]; then',
        '  echo "interrupted; requeueing task ${SLURM_JOB_ID:-?} to resume from its checkpoint"',
        '  scontrol requeue "${SLURM_JOB_ID:?}" || echo "requeue failed; sbatch \\"$GRID_SBATCH\\" again resumes" >&2',
        f"  exit {INTERRUPTED_EXIT_CODE}",
        "fi",
        'echo "exit $CODE" > "$RUN_DIR/FAILED"',
        'echo "failed with exit $CODE; see $RUN_DIR/train.log" >&2',
        'exit "$CODE"',
    ]
    with open(sbatch_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return sbatch_path


# --- summary -------------------------------------------------------------------------------------------------


def logged_scalars(run_dir: str):
    """TensorBoard's reader over every event file of a run directory (resumed attempts append their own files)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pattern = os.path.join(glob.escape(run_dir), "**", "events.out.tfevents.*")
    files = sorted(glob.glob(pattern, recursive=True), key=os.path.getmtime)
    if not files:
        raise FileNotFoundError(f"no TensorBoard log under {run_dir}")
    # The accumulator reads the files in order and drops the steps that a resumed attempt logged again
    # (its purge_step).
    events = EventAccumulator(os.path.dirname(files[-1]), size_guidance={"scalars": 0})
    events.Reload()
    return events


def steps_and_values(events, tag: str, until: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one logged scalar, up to step `until` (--partial's cut) if given."""
    scalars = sorted(events.Scalars(tag), key=lambda e: e.step)
    if until is not None:
        scalars = [e for e in scalars if e.step <= until]
    return np.array([e.step for e in scalars]), np.array([e.value for e in scalars], dtype=float)


def read_curve(run_dir: str, until: Optional[int] = None) -> tuple[str, np.ndarray, np.ndarray]:
    """(tag, steps, values) of the run's greedy evaluations: eval/success_rate if logged, else eval/episodic_return."""
    events = logged_scalars(run_dir)
    tags = events.Tags()["scalars"]
    tag = next((t for t in ("eval/success_rate", "eval/episodic_return") if t in tags), None)
    if tag is None:
        raise KeyError(f"no eval/success_rate or eval/episodic_return logged under {run_dir}")
    return (tag, *steps_and_values(events, tag, until))


def read_scalar(run_dir: str, tag: str, until: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one logged scalar of the run."""
    events = logged_scalars(run_dir)
    if tag not in events.Tags()["scalars"]:
        raise KeyError(f"no {tag} logged under {run_dir}")
    return steps_and_values(events, tag, until)


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by its continued fraction (modified Lentz; Numerical Recipes §6.4)."""
    if x <= 0 or x >= 1:
        return float(x >= 1)
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1 - regularized_incomplete_beta(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        even_term = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd_term = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for term in (even_term, odd_term):
            d = 1 + term * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + term / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    return math.exp(log_front) * h / a


def welch_t_test(a, b) -> tuple[float, float, float]:
    """Welch's unequal-variance t-test: (t, degrees of freedom, two-sided p).

    NaN when a group has fewer than 2 values or both have no variance."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return (math.nan,) * 3
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return (math.nan,) * 3
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df, regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t))  # P(|T_df| >= |t|)


def binomial_quantile(q: float, n: int, p: float) -> int:
    """The smallest k with P(Binomial(n, p) <= k) >= q (scipy's binom.ppf), from the probability mass function."""
    cdf = 0.0
    for k in range(n + 1):
        cdf += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if cdf >= q:
            return k
    return n


def tolerance_interval(values: np.ndarray, alpha: float = TOLERANCE_ALPHA, beta: float = TOLERANCE_BETA):
    """Nonparametric tolerance interval of each column of `values` (runs x steps): (lower, upper) rows.

    The construction of Patterson et al. (2023), "Empirical Design in Reinforcement Learning", in their library
    (github.com/rlai-lab/rl-evaluation, rlevaluation/statistics.py, tolerance_interval_curve): of the n sorted
    runs, n - k are left outside the interval, k the (1 - alpha) quantile of Binomial(n, beta); half of them
    (rounded down) below it and as many above. With the paper's alpha = 0.05 and beta = 0.7 and five runs,
    k = 5 (P(Binomial(5, 0.7) <= 4) = 1 - 0.7^5 = 0.83 < 0.95): the interval is the runs' minimum and maximum.
    Beware: its confidence of covering beta is P(Binomial(n, beta) <= k - 1), not 1 - alpha (the coverage of
    the r-th to the s-th order statistic is Beta(s - r, n - s + r + 1)): 0.47 for five runs, 0.89 for 20.
    """
    values = np.sort(np.asarray(values, dtype=float), axis=0)
    n = len(values)
    outside = n - binomial_quantile(1 - alpha, n, beta)
    return values[outside // 2], values[n - 1 - outside // 2]


def fmt(x: float, metric: str) -> str:
    """Numbers as in Table 1: success rates with two decimals; returns whole, with a decimal below 10 (344 ± 4.1)."""
    if math.isnan(x):
        return "–"
    if metric == "eval/success_rate":
        return f"{x:.2f}"
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.1f}"


def paper_cell(task: str, column: str) -> str:
    """The paper's Table 1 entry as printed there ("9,578 ± 648", "344 ± 4.1"), or "—" where it has none."""
    value = PAPER_TABLE1.get(task, (None,) * len(COLUMNS))[COLUMNS.index(column)]
    return "—" if value is None else f"{value[0]:,g} ± {value[1]:,g}"


def column_scripts(column: str, task: str) -> list[str]:
    """The scripts that fill a column on a task."""
    fetch = task.startswith("Fetch")
    return [
        script
        for script, variants in VARIANTS.items()
        if (script in FETCH_SCRIPTS) == fetch and any(variant[1] == column for variant in variants)
    ]


def cell_without_values(task: str, column: str, runs: list[Run], statuses: dict, missing: list[str]) -> str:
    """Why a cell has no number of ours: n/a, missing, failed, unfinished or not run."""
    if task.startswith("Fetch") and column in NO_FETCH_COLUMNS:
        return "n/a"
    if runs:
        failed = [run for run in runs if statuses[run.run_id] == "failed"]
        if failed:
            return f"failed ({len(failed)} of {len(runs)} runs; see runs/{failed[0].run_id}/train.log)"
        return f"unfinished (0 of {len(runs)} runs)"
    absent = [script + ".py" for script in column_scripts(column, task) if script in missing]
    return f"missing: {', '.join(absent)} not found" if absent else "not run"


def run_status(run: Run, out_dir: str) -> str:
    if is_finished(run, out_dir):
        return "finished"
    return "failed" if read_marker(run, out_dir, FAILED) is not None else "unfinished"


@dataclass
class Cut:
    """--partial: the step at which a summary cuts every run of one task, so that unfinished runs compare."""

    step: int  # the last step at which every included run of the task logged an evaluation
    budget: int  # their --total-timesteps (the largest, if they differ)
    unfinished: list  # run ids of the included runs that did not finish (unfinished or failed)

    def sentence(self) -> str:
        return f"runs cut at step {self.step:,} of {self.budget:,} (unfinished or failed runs included)"

    def note(self, task: str) -> str:
        unfinished = ", ".join(self.unfinished) or "none"
        return f"partial: {task} {self.sentence()}, final values at that step; unfinished: {unfinished}."


@dataclass
class Selection:
    """The runs a summary reads: by default the finished ones; with --partial also the others that logged an
    evaluation, each read up to its task's cut, so every final value (the last evaluation, the last logged
    temperature, the mean D_var over the 10% of the budget before the cut) is taken at one step."""

    run_ids: set  # the runs to read
    statuses: dict  # run id -> finished, unfinished or failed
    cuts: dict  # task -> Cut (with --partial only)

    def until(self, run: Run) -> Optional[int]:
        """The last step to read of the run: its task's cut, or None (all of it)."""
        cut = self.cuts.get(run.task)
        return cut.step if cut else None

    def notes(self, tasks) -> str:
        """The captions' sentences on the cut ("" without --partial)."""
        return " ".join(self.cuts[task].note(task) for task in tasks if task in self.cuts)

    def heading(self, tasks) -> list[str]:
        """A markdown table's first lines: one note per cut task and a blank line (none without --partial)."""
        notes = [self.cuts[task].note(task) for task in tasks if task in self.cuts]
        return [*notes, ""] if notes else []

    def columns(self, task: str, run_ids: list) -> dict:
        """The CSV columns of a row from these runs of the task: the cut and the unfinished runs among them."""
        cut = self.cuts.get(task)
        if cut is None:
            return {}
        unfinished = " ".join(run_id for run_id in run_ids if run_id in cut.unfinished)
        return {"cut_step": cut.step, "partial": cut.sentence(), "unfinished_runs": unfinished}


def select_runs(runs: list[Run], out_dir: str, partial: bool) -> Selection:
    """The runs to summarize (see Selection). The cut of a task is the last step that all its included runs
    logged an evaluation at (if they share none: the earliest last evaluation, a run's final its last before)."""
    statuses = {run.run_id: run_status(run, out_dir) for run in runs}
    if not partial:
        finished = {run_id for run_id, status in statuses.items() if status == "finished"}
        return Selection(run_ids=finished, statuses=statuses, cuts={})
    evaluated = {}  # run id -> its evaluation steps
    for run in runs:
        try:
            evaluated[run.run_id] = set(read_curve(run.dir(out_dir))[1].tolist())
        except (FileNotFoundError, KeyError) as error:
            if statuses[run.run_id] == "finished":  # the others may not have logged an evaluation yet
                print(f"note: {run.run_id} is left out: {error}")
    cuts = {}
    for task in dict.fromkeys(run.task for run in runs if run.run_id in evaluated):
        task_runs = [run for run in runs if run.task == task and run.run_id in evaluated]
        common = set.intersection(*(evaluated[run.run_id] for run in task_runs))
        step = max(common) if common else min(max(evaluated[run.run_id]) for run in task_runs)
        unfinished = [run.run_id for run in task_runs if statuses[run.run_id] != "finished"]
        budget = max(run_budget(run) for run in task_runs)
        cuts[task] = Cut(step=int(step), budget=budget, unfinished=unfinished)
    return Selection(run_ids=set(evaluated), statuses=statuses, cuts=cuts)


def align(series: list) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values: runs x steps) of (run id, steps, values) runs: their common steps, else the union of steps
    with each run interpolated there."""
    steps = sorted(set.intersection(*(set(s.tolist()) for _, s, _ in series)))
    if not steps:  # evaluations at different steps: put every run on the union of steps
        steps = sorted(set.union(*(set(s.tolist()) for _, s, _ in series)))
    values = np.array([np.interp(steps, s, v) for _, s, v in series])
    return np.array(steps), values


def plot_band(ax, steps: np.ndarray, values: np.ndarray, label: str, color: Optional[str] = None) -> None:
    """The mean over runs, and the tolerance interval as a band."""
    lower, upper = tolerance_interval(values)
    (line,) = ax.plot(steps, values.mean(0), label=f"{label} (n={len(values)})", color=color)
    ax.fill_between(steps, lower, upper, alpha=0.25, color=line.get_color())


def band_rows(task: str, panel: str, curve: str, steps: np.ndarray, values: np.ndarray) -> list[dict]:
    """The plotted numbers of one curve: one row per step with its mean and tolerance interval."""
    lower, upper = tolerance_interval(values)
    mean = values.mean(0)
    return [
        {
            "task": task,
            "panel": panel,
            "curve": curve,
            "n_runs": len(values),
            "step": int(step),
            "mean": float(mean[i]),
            "lower": float(lower[i]),
            "upper": float(upper[i]),
        }
        for i, step in enumerate(steps)
    ]


def caption_figure(fig, caption: str, fontsize: float, least_room: float) -> None:
    """Write the caption under the axes, wrapped to the figure's width, and lay the axes out above it: at least
    `least_room` of the height below them, more if the caption needs it (a character about 0.53 of the font
    size wide, a line 1.3 of it high)."""
    fig.text(0.01, 0.01, caption, fontsize=fontsize, wrap=True)
    characters_per_line = int(0.98 * fig.get_figwidth() * 72 / (0.53 * fontsize))
    lines = len(textwrap.wrap(caption, characters_per_line))
    room = (lines * 1.3 * fontsize + 0.01 * fig.get_figheight() * 72 + 4) / 72 / fig.get_figheight()
    fig.tight_layout(rect=(0, max(least_room, room), 1, 1))


def write_rows(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["task"])
        writer.writeheader()
        writer.writerows(rows)


def summarize(out_dir: str, partial: bool = False) -> dict:
    """Write table.md, results.csv, summary.json and curves_<task>.png for the finished runs in out_dir (with
    partial, for the runs that logged an evaluation, cut at a common step per task)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    manifest = read_manifest(out_dir)
    runs, missing = manifest["runs"], manifest["missing_scripts"]
    selection = select_runs(runs, out_dir, partial)
    curves, rows, statuses, left_out = {}, [], dict(selection.statuses), []
    for run in runs:
        if run.run_id not in selection.run_ids:
            left_out.append(run.run_id)
            continue
        try:
            tag, steps, values = read_curve(run.dir(out_dir), selection.until(run))
        except (FileNotFoundError, KeyError) as error:
            print(f"note: {run.run_id} is left out: {error}")
            statuses[run.run_id] = "failed"
            left_out.append(run.run_id)
            continue
        curves.setdefault((run.task, run.column), []).append((run.run_id, steps, values))
        row = {
            "run_id": run.run_id,
            "task": run.task,
            "method": run.method,
            "column": run.column,
            "script": run.script,
            "seed": run.seed,
            "metric": tag,
            "final_step": int(steps[-1]),
            "final_value": float(values[-1]),
        }
        rows.append(row | selection.columns(run.task, [run.run_id]))
    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["run_id"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["task"], r["column"], r["seed"])))

    tasks = [task for task in MUJOCO_TASKS + FETCH_TASKS if task in manifest["tasks"]]
    tasks += [task for task in manifest["tasks"] if task not in tasks]
    summary = {"tasks": {}, "left_out": left_out}
    if partial:
        summary["partial"] = {task: asdict(cut) for task, cut in selection.cuts.items()}
    lines = [
        *selection.heading(tasks),
        "| task | " + " | ".join(COLUMNS) + " | p (Gamid vs TD3) |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for task in tasks:
        cells, finals, texts = {}, {}, {}
        for column in COLUMNS:
            column_runs = [run for run in runs if run.task == task and run.column == column]
            done = [row for row in rows if row["task"] == task and row["column"] == column]
            paper = paper_cell(task, column)
            if not done:
                texts[column] = cell_without_values(task, column, column_runs, statuses, missing)
                cells[column] = {"n": 0, "status": texts[column], "paper": paper}
                continue
            values = np.array([row["final_value"] for row in done])
            finals[column] = values
            std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            cells[column] = {"n": len(values), "mean": float(values.mean()), "std": std, "values": values.tolist()}
            cells[column] |= {"expected_n": len(column_runs), "paper": paper, "metric": done[0]["metric"]}
        means = [cell["mean"] for cell in cells.values() if cell["n"]]
        for column, cell in cells.items():
            if not cell["n"]:
                continue
            text = f"{fmt(cell['mean'], cell['metric'])} ± {fmt(cell['std'], cell['metric'])}"
            text = f"**{text}**" if cell["mean"] == max(means) else text
            if cell["n"] < cell["expected_n"]:
                n_failed = sum(
                    statuses[run.run_id] == "failed" and run.run_id in left_out
                    for run in runs
                    if (run.task, run.column) == (task, column)
                )
                text += f" (n={cell['n']} of {cell['expected_n']}" + (f", {n_failed} failed)" if n_failed else ")")
            texts[column] = f"{text} (paper {cell['paper']})"
        for column in COLUMNS:  # cells without our value show the paper's, where it has one
            if not cells[column]["n"] and cells[column]["paper"] != "—":
                texts[column] += f" (paper {cells[column]['paper']})"
        t, df, p = (math.nan,) * 3
        if {"Gamid", "TD3"} <= set(finals):
            t, df, p = welch_t_test(finals["Gamid"], finals["TD3"])
        summary["tasks"][task] = {"cells": cells, "welch_t": t, "welch_df": df, "p_gamid_vs_td3": p}
        p_text = "–" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")
        lines.append(f"| {task} | " + " | ".join(texts[column] for column in COLUMNS) + f" | {p_text} |")
    n_seeds = sorted({cell["n"] for task in summary["tasks"].values() for cell in task["cells"].values() if cell["n"]})
    metrics = sorted({row["metric"] for row in rows})
    lines += [
        "",
        f"Final greedy evaluation ({', '.join(metrics) or 'none yet'}), ours: mean ± sample std (ddof = 1) over "
        f"{'/'.join(map(str, n_seeds)) or 'no'} seeds, our best mean per task in bold; beside it the paper's "
        "Table 1 (MuJoCo -v3, Fetch -v1; 2M steps for Humanoid, 1M for the others). p: Welch's two-sided t-test "
        "of our Gamid against our TD3. Fetch: TD3 = gamid_her_fetch.py --n-actors 1 (TD3+HER), Gamid = "
        "gamid_her_fetch.py, SAC = sacm_her_fetch.py --n-components 1, SACM = sacm_her_fetch.py; n/a: the paper "
        "has no PMOE or PPO with HER.",
    ]
    if left_out:
        names = ", ".join(sorted(left_out))
        lines.append(f"{len(left_out)} run(s) left out (unfinished, failed or without evaluations): {names}.")
    table = "\n".join(lines)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)

    for task in tasks:
        if not any((task, column) in curves for column in COLUMNS):
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        plotted = []
        for column in COLUMNS:
            series = curves.get((task, column))
            if not series:
                continue
            steps, values = align(series)
            plot_band(ax, steps, values, label=column)
            partial_columns = selection.columns(task, [run_id for run_id, _, _ in series])
            plotted += [row | partial_columns for row in band_rows(task, "", column, steps, values)]
        cells = summary["tasks"][task]["cells"]
        without = [f"{column}: {cells[column]['status']}" for column in COLUMNS if (task, column) not in curves]
        caption = [selection.notes([task])] if task in selection.cuts else []
        if without:  # every method is in the figure, as a curve or as the reason it has none
            caption.append("no curve: " + "; ".join(without) + ".")
        task_metrics = ", ".join(sorted({row["metric"] for row in rows if row["task"] == task}))
        ax.set(title=f"{task}: mean over seeds", xlabel="environment steps", ylabel=task_metrics)
        ax.legend()
        caption_figure(fig, " ".join([*caption, BAND_TEXT]), fontsize=6, least_room=0.03)
        fig.savefig(os.path.join(out_dir, f"curves_{task}.png"), dpi=100)
        plt.close(fig)
        write_rows(os.path.join(out_dir, f"curves_{task}.csv"), plotted)
    summary["table"] = table
    return summary


def run_budget(run: Run) -> int:
    """The run's --total-timesteps, or the paper's budget where the grid left it to the preset."""
    if "--total-timesteps" in run.argv:
        return int(run.argv[run.argv.index("--total-timesteps") + 1])
    return PAPER_BUDGET.get(run.task, 1_000_000)


def trailing_mean(steps: np.ndarray, values: np.ndarray, window: int, end: int) -> float:
    """The mean of the values logged in the window (end - window, end]."""
    return float(values[(steps > end - window) & (steps <= end)].mean())


def moving_average(steps: np.ndarray, values: np.ndarray, window: int) -> np.ndarray:
    """At each logged step, the mean of the values logged in the trailing window (step - window, step]."""
    return np.array([trailing_mean(steps, values, window, step) for step in steps])


def smoothing_window(budget: int) -> int:
    """Figure 2's 100k-step window at 1M steps, scaled with the budget (10% of it)."""
    return max(1, round(SMOOTHING_AT_FULL_BUDGET * budget / 1_000_000))


def experiment_runs(manifest: dict, out_dir: str, experiment: str) -> tuple[list[Run], list[str]]:
    """The runs and tasks of one experiment in its grid: in the shared grid, the runs of its variants on its tasks.
    A task without finished runs keeps its (empty) panel, the caption says why."""
    if manifest_grid(manifest) != GRIDS[experiment]:
        raise SystemExit(f"{out_dir} holds the {manifest_grid(manifest)} grid, not {experiment}'s.")
    tasks = manifest.get("experiment_tasks", {}).get(experiment)
    if experiment not in EXPERIMENT_METHODS:
        return manifest["runs"], tasks or manifest["tasks"]
    methods = EXPERIMENT_METHODS[experiment]
    if tasks is None:  # not run under this experiment's name: the grid's tasks with runs of its variants
        with_runs = {run.task for run in manifest["runs"] if run.method in methods}
        tasks = [task for task in manifest["tasks"] if task in with_runs]
    runs = [run for run in manifest["runs"] if run.method in methods and run.task in tasks]
    return runs, tasks


def summarize_figure(out_dir: str, experiment: str, partial: bool = False) -> list[str]:
    """fig2: fig2.png and fig2.csv, the sum of D_var over training, one panel per task. fig5: fig5_<task>.png and
    .csv, three panels (N, temperature, epsilon) of learning curves. Partial: see select_runs. Returns the paths
    written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, tasks = experiment_runs(read_manifest(out_dir), out_dir, experiment)
    tag = "charts/sum_d_var" if experiment == "fig2" else "eval/episodic_return"
    selection = select_runs(runs, out_dir, partial)
    series, left_out, windows = {}, [], set()  # series: (task, panel, curve) -> [(run id, steps, values)]
    for run in runs:
        if run.run_id not in selection.run_ids:
            left_out.append(run.run_id)
            continue
        try:
            steps, values = read_scalar(run.dir(out_dir), tag, selection.until(run))
        except (FileNotFoundError, KeyError) as error:
            print(f"note: {run.run_id} is left out: {error}")
            left_out.append(run.run_id)
            continue
        if experiment == "fig2":
            windows.add(smoothing_window(run_budget(run)))
            values = moving_average(steps, values, smoothing_window(run_budget(run)))
        series.setdefault((run.task, run.panel, run.column), []).append((run.run_id, steps, values))
    budgets = "/".join(f"{b:,}" for b in sorted({run_budget(run) for run in runs}))
    note = f"Runs of {budgets} steps (the paper: 1M, 2M for Humanoid). "
    note += f"{len(left_out)} run(s) left out (unfinished or failed): {', '.join(left_out)}. " if left_out else ""
    figures = []  # (file name, tasks in it, panels, caption)
    if experiment == "fig2":
        window = "/".join(f"{w:,}" for w in sorted(windows))
        caption = (
            f"Sum of D_var over the N Gaussians (charts/sum_d_var), mean over seeds; moving average over the last "
            f"{window} steps (the paper's 100,000-step window at 1M steps, scaled with the budget). {BAND_TEXT}."
        )
        figures.append(("fig2", tasks, [""], caption))
    else:
        caption = f"Greedy evaluation return, mean over seeds; the rest of each run at the task's preset. {BAND_TEXT}."
        panels = [panel for panel in ABLATIONS if any(run.panel == panel for run in runs)]
        figures += [(f"fig5_{task}", [task], panels, caption) for task in tasks]
    written = []
    for name, figure_tasks, panels, caption in figures:
        cells = [(task, panel) for task in figure_tasks for panel in panels]
        fig, axes = plt.subplots(1, len(cells), figsize=(5 * len(cells), 4), squeeze=False)
        rows = []
        for ax, (task, panel) in zip(axes[0], cells):
            for (curve_task, curve_panel, curve), runs in series.items():
                if (curve_task, curve_panel) != (task, panel):
                    continue
                steps, values = align(runs)
                plot_band(ax, steps, values, label=curve)
                partial_columns = selection.columns(task, [run_id for run_id, _, _ in runs])
                rows += [row | partial_columns for row in band_rows(task, panel, curve, steps, values)]
            ax.set(title=f"{task} {PANEL_TITLES.get(panel, '')}".strip(), xlabel="environment steps", ylabel=tag)
            ax.legend(fontsize=7)
        cut_note = selection.notes(figure_tasks)
        caption_figure(fig, note + (cut_note + " " if cut_note else "") + caption, fontsize=7, least_room=0.1)
        png, table = (os.path.join(out_dir, f"{name}.{extension}") for extension in ("png", "csv"))
        fig.savefig(png, dpi=100)
        write_rows(table, rows)
        written += [png, table]
        plt.close(fig)
    return written


FIG8_COLUMNS = 4  # training steps per row of the PCA figure


def read_means(run: Run, out_dir: str, until: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(steps (E,), means (E, N, P, act_dim)) that the run recorded with --record-means (its means.npz), up to step
    `until` (--partial's cut) if given."""
    paths = glob.glob(os.path.join(glob.escape(run.dir(out_dir)), "*", "means.npz"))
    if not paths:
        raise FileNotFoundError(f"no means.npz under {run.dir(out_dir)}")
    with np.load(max(paths, key=os.path.getmtime)) as saved:
        steps, means = saved["steps"], saved["means"]
    kept = steps <= until if until is not None else np.ones(len(steps), dtype=bool)
    return steps[kept], means[kept]


def plotted_evaluations(n_recorded: int, columns: int = FIG8_COLUMNS) -> list[int]:
    """Indices of `columns` evaluations evenly spaced over the recorded ones, the last included: at 1/4, 2/4, 3/4
    and 4/4 of them (E = 50: the 12th, 25th, 37th and 50th)."""
    return sorted({max(0, round(n_recorded * k / columns) - 1) for k in range(1, columns + 1)})


def top_two_components(points: np.ndarray) -> np.ndarray:
    """(K, 2): the points (K, d) projected on their top two principal components (numpy SVD of the centred points).

    Each component's sign is fixed so that its largest loading is positive; with d = 1 the second is 0."""
    centred = points - points.mean(0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    components = components[:2]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(1)])
    projected = centred @ (components * signs[:, None]).T
    return np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))


def mean_pairwise_distance(means: np.ndarray) -> float:
    """Spread of the N means (N, P, act_dim): the Euclidean distance between two of them in the action scale,
    averaged over the N (N - 1) / 2 pairs and then over the P probe states (NaN for N = 1)."""
    n = len(means)
    if n < 2:
        return math.nan
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)  # (N, N, P)
    first, second = np.triu_indices(n, k=1)
    return float(distances[first, second].mean())


def mean_and_std(values: list, number: str) -> str:
    """ "mean ± sample std (ddof = 1)" of the values in the given format; the value alone if one; "–" if none."""
    if len(values) < 2:
        return number.format(values[0]) if values else "–"
    return f"{number.format(np.mean(values))} ± {number.format(np.std(values, ddof=1))}"


def summarize_fig8(out_dir: str, partial: bool = False) -> list[str]:
    """fig8_<task>.png and .csv: the top two principal components of the N means on the probe states at four
    training steps (columns) for temperatures 0, 10 and the preset (rows), for the first seed (the paper shows one
    run); fig8_spread_<task>.csv and .md: the spread of the means (mean_pairwise_distance) over every recorded
    step of every seed, and at the final step. Partial: see select_runs. Returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, tasks = experiment_runs(read_manifest(out_dir), out_dir, "fig8")
    selection = select_runs(runs, out_dir, partial)
    recorded, left_out = {}, []  # (task, method, seed) -> (steps, means)
    run_ids = {(run.task, run.method, run.seed): run.run_id for run in runs}
    for run in runs:
        if run.run_id not in selection.run_ids:
            left_out.append(run.run_id)
            continue
        try:
            recorded[(run.task, run.method, run.seed)] = read_means(run, out_dir, selection.until(run))
        except FileNotFoundError as error:
            print(f"note: {run.run_id} is left out: {error}")
            left_out.append(run.run_id)
    methods = EXPERIMENT_METHODS["fig8"]
    written = []
    for task in tasks:
        task_runs = [run for run in runs if run.task == task]
        seeds = sorted({seed for (t, _, seed) in recorded if t == task})
        budgets = "/".join(f"{b:,}" for b in sorted({run_budget(run) for run in task_runs}))
        spread_rows, points = [], []
        for method in methods:
            for seed in seeds:
                if (task, method, seed) not in recorded:
                    continue
                steps, means = recorded[(task, method, seed)]
                partial_columns = selection.columns(task, [run_ids[(task, method, seed)]])
                for step, step_means in zip(steps, means):
                    spread = mean_pairwise_distance(step_means)
                    row = {"variant": method, "seed": seed, "step": int(step), "spread": spread}
                    spread_rows.append(row | partial_columns)

        shape = (len(methods), FIG8_COLUMNS)  # common axes: the spreads of the panels compare at a glance
        fig, axes = plt.subplots(*shape, figsize=(3.2 * FIG8_COLUMNS, 3 * len(methods)), sharex=True, sharey=True)
        axes = np.asarray(axes).reshape(shape)
        seed = seeds[0] if seeds else None
        for row, method in enumerate(methods):
            label = SHARED_VARIANTS[method][0]
            if (task, method, seed) not in recorded:
                axes[row, 0].set_title(f"{label}: no {'' if partial else 'finished '}run", fontsize=8)
                continue
            steps, means = recorded[(task, method, seed)]
            for column, evaluation in enumerate(plotted_evaluations(len(steps))):
                n_actors, n_probes, act_dim = means[evaluation].shape
                projected = top_two_components(means[evaluation].reshape(-1, act_dim)).reshape(n_actors, n_probes, 2)
                step = int(steps[evaluation])
                ax = axes[row, column]
                for gaussian in range(n_actors):
                    ax.scatter(*projected[gaussian].T, s=6, label=f"Gaussian {gaussian}")
                points += [
                    dict(variant=method, seed=seed, step=step, gaussian=gaussian, probe=probe, pc1=pc1, pc2=pc2)
                    | selection.columns(task, [run_ids[(task, method, seed)]])
                    for gaussian in range(n_actors)
                    for probe, (pc1, pc2) in enumerate(projected[gaussian].tolist())
                ]
                ax.set_title(f"{label}, step {step:,}", fontsize=8)
                ax.set(xlabel="PC 1", ylabel="PC 2")
            axes[row, 0].legend(fontsize=6, markerscale=2)
        caption = (
            f"{task}: the top two principal components of the N Gaussian means (action scale) on {task}'s fixed "
            "probe states (the run's first observations, uniform random actions); PCA fitted per panel, common axes "
            f"in action units. Seed {seed} of runs of {budgets} steps (the paper: one run of 1M steps, Figures 8-9)."
        )
        if task in selection.cuts:
            caption += " " + selection.notes([task])
        if left_out:
            caption += f" {len(left_out)} run(s) left out (unfinished, failed or without means.npz)."
        caption_figure(fig, caption, fontsize=7, least_room=0.05)
        png = os.path.join(out_dir, f"fig8_{task}.png")
        fig.savefig(png, dpi=100)
        plt.close(fig)
        write_rows(os.path.join(out_dir, f"fig8_{task}.csv"), points)
        write_rows(os.path.join(out_dir, f"fig8_spread_{task}.csv"), spread_rows)

        lines = [
            f"Spread of the Gaussian means on {task} at the final step (runs of {budgets} steps): the Euclidean "
            "distance between two of the N means in the [-1, 1] action scale, averaged over pairs and probe states; "
            "mean ± sample std (ddof = 1) over seeds.",
            "",
            *selection.heading([task]),
            "| variant | n seeds | final step | spread |",
            "|---|---|---|---|",
        ]
        finals = {}
        for method in methods:
            # Each seed's last recorded step (the rows of a seed are in the order of its steps).
            last = {row["seed"]: row for row in spread_rows if row["variant"] == method}
            finals[method] = [row["spread"] for row in last.values()]
            final_steps = "/".join(f"{s:,}" for s in sorted({row["step"] for row in last.values()})) or "–"
            text = mean_and_std(finals[method], "{:.3f}")
            lines.append(f"| {SHARED_VARIANTS[method][0]} | {len(last)} | {final_steps} | {text} |")
        _, _, p = welch_t_test(finals["temperature-10"], finals["temperature-0"])
        p_text = "–" if math.isnan(p) else f"{p:.3g}"
        lines += [
            "",
            f"Temperature 10 against temperature 0 (the paper: higher spread at 10): Welch two-sided p = {p_text}.",
        ]
        md = os.path.join(out_dir, f"fig8_{task}.md")
        with open(md, "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
        written += [
            png,
            os.path.join(out_dir, f"fig8_{task}.csv"),
            os.path.join(out_dir, f"fig8_spread_{task}.csv"),
            md,
        ]
    return written


def summarize_auto_temperature(out_dir: str, partial: bool = False) -> list[str]:
    """auto_temperature.md and .csv: per task, the final greedy return of the preset and of --temperature auto
    --epsilon auto (Welch's test), the auto runs' final temperature and mean D_var beside the target D*;
    auto_temperature_<task>.png and .csv: return curves, the temperature, and the mean D_var over training.
    Partial: see select_runs. Returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, tasks = experiment_runs(read_manifest(out_dir), out_dir, "auto-temperature")
    tags = {"return": "eval/episodic_return", "temperature": "charts/temperature", "mean_d_var": "charts/mean_d_var"}
    selection = select_runs(runs, out_dir, partial)
    series, rows, left_out, windows = {}, [], [], set()  # series: (task, panel, method) -> [(run id, steps, values)]
    for run in runs:
        if run.run_id not in selection.run_ids:
            left_out.append(run.run_id)
            continue
        window = smoothing_window(run_budget(run))
        until = selection.until(run)
        try:
            events = logged_scalars(run.dir(out_dir))
            logged = {panel: steps_and_values(events, tag, until) for panel, tag in tags.items()}
        except (FileNotFoundError, KeyError) as error:
            print(f"note: {run.run_id} is left out: {error}")
            left_out.append(run.run_id)
            continue
        windows.add(window)
        target = math.nan
        if "charts/temperature_target" in events.Tags()["scalars"]:
            target = float(steps_and_values(events, "charts/temperature_target", until)[1][-1])
        steps, d_var = logged["mean_d_var"]
        logged["mean_d_var"] = (steps, moving_average(steps, d_var, window))
        final_d_var = trailing_mean(steps, d_var, window, end=steps[-1] if until is None else until)
        for panel, (steps, values) in logged.items():
            series.setdefault((run.task, panel, run.method), []).append((run.run_id, steps, values))
        row = {
            "task": run.task,
            "method": run.method,
            "seed": run.seed,
            "final_step": int(logged["return"][0][-1]),
            "final_return": float(logged["return"][1][-1]),
            "final_temperature": float(logged["temperature"][1][-1]),
            "final_mean_d_var": final_d_var,
            "temperature_target": target,
        }
        rows.append(row | selection.columns(run.task, [run.run_id]))
    rows.sort(key=lambda row: (tasks.index(row["task"]), row["method"], row["seed"]))
    write_rows(os.path.join(out_dir, "auto_temperature.csv"), rows)

    budgets = "/".join(f"{b:,}" for b in sorted({run_budget(run) for run in runs}))
    window = "/".join(f"{w:,}" for w in sorted(windows)) or "–"
    last = "the" if partial else "the last"  # with --partial, the window before the cut
    lines = [
        *selection.heading(tasks),
        "| task | preset: return | auto: return | n (preset, auto) | p | auto: final temperature | "
        "auto: final mean D_var | D* | preset: final mean D_var |",
        "|---" * 9 + "|",
    ]
    for task in tasks:
        preset = [row for row in rows if (row["task"], row["method"]) == (task, "preset")]
        auto = [row for row in rows if (row["task"], row["method"]) == (task, "auto")]
        returns = {
            method: [row["final_return"] for row in group] for method, group in (("preset", preset), ("auto", auto))
        }
        _, _, p = welch_t_test(returns["preset"], returns["auto"])
        targets = sorted({row["temperature_target"] for row in auto})
        cells = [
            task,
            mean_and_std(returns["preset"], "{:,.0f}"),
            mean_and_std(returns["auto"], "{:,.0f}"),
            f"{len(preset)}, {len(auto)}",
            "–" if math.isnan(p) else f"{p:.3g}",
            mean_and_std([row["final_temperature"] for row in auto], "{:.3g}"),
            mean_and_std([row["final_mean_d_var"] for row in auto], "{:.3g}"),
            "/".join(f"{target:.3g}" for target in targets) or "–",
            mean_and_std([row["final_mean_d_var"] for row in preset], "{:.3g}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Runs of {budgets} steps (the paper: 1M). preset: Gamid with the task's preset (Table 5); auto: the same N "
        "with --temperature auto --epsilon auto (the temperature learned to hold the mean D_var at D*, epsilon = "
        "1/(10N)). Return: the final greedy evaluation (eval/episodic_return), mean ± sample std (ddof = 1) over "
        "seeds; p: Welch's two-sided t-test of the two. Final temperature: the last logged; final mean D_var: the "
        f"mean of charts/mean_d_var over {last} {window} steps (10% of the budget){' before the cut' * partial}.",
    ]
    if left_out:
        lines.append(f"{len(left_out)} run(s) left out (unfinished, failed or without logs): {', '.join(left_out)}.")
    table = "\n".join(lines)
    written = [os.path.join(out_dir, "auto_temperature.md"), os.path.join(out_dir, "auto_temperature.csv")]
    with open(written[0], "w") as f:
        f.write(table + "\n")
    print(table)

    titles = {"return": "greedy evaluation return", "temperature": "temperature", "mean_d_var": "mean D_var"}
    for task in tasks:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        plotted = []
        for ax, panel in zip(axes, titles):
            for method, color in (("preset", "C0"), ("auto", "C1")):
                runs_here = series.get((task, panel, method))
                if not runs_here:
                    continue
                steps, values = align(runs_here)
                label = SHARED_VARIANTS[method][0]
                partial_columns = selection.columns(task, [run_id for run_id, _, _ in runs_here])
                plotted += [row | partial_columns for row in band_rows(task, panel, method, steps, values)]
                if panel == "temperature" and method == "preset":  # a schedule, the same for every seed
                    ax.plot(steps, values.mean(0), "--", color=color, label=f"{label}: its schedule")
                else:
                    plot_band(ax, steps, values, label=label, color=color)
            if panel == "mean_d_var":
                targets = sorted({row["temperature_target"] for row in rows if row["task"] == task})
                for target in (target for target in targets if not math.isnan(target)):
                    ax.axhline(target, linestyle="--", color="black", label=f"D* = {target:.3g}")
            ax.set(title=f"{task}: {titles[panel]}", xlabel="environment steps", ylabel=tags[panel])
            ax.legend(fontsize=7)
        caption = (
            f"Runs of {budgets} steps (the paper: 1M); mean over seeds, {BAND_TEXT}. Mean D_var: moving average over "
            f"the last {window} steps (10% of the budget)."
        )
        if task in selection.cuts:
            caption += " " + selection.notes([task])
        caption_figure(fig, caption, fontsize=7, least_room=0.06)
        png, curves = (os.path.join(out_dir, f"auto_temperature_{task}.{extension}") for extension in ("png", "csv"))
        fig.savefig(png, dpi=100)
        plt.close(fig)
        write_rows(curves, plotted)
        written += [png, curves]
    return written


def main(args: Args) -> int:
    budget = args.total_timesteps or "paper"
    default_dir = os.path.join(REPO_ROOT, "benchmarks", "results", f"{GRIDS[args.experiment]}-{budget}")
    out_dir = os.path.abspath(args.out_dir or default_dir)
    failed, interrupted = 0, 0
    if not args.summarize_only:
        problems = [
            (args.workers < 1, f"--workers must be at least 1, got {args.workers}."),
            (not args.seeds or not selected_tasks(args), "--seeds and --tasks each need at least one value."),
            (
                args.total_timesteps is not None and args.total_timesteps < 1,
                f"--total-timesteps must be positive, got {args.total_timesteps}.",
            ),
            (args.eval_freq is not None and args.eval_freq < 1, f"--eval-freq must be positive, got {args.eval_freq}."),
            (args.slurm_signal_seconds < 0, "--slurm-signal-seconds cannot be negative."),
            (
                args.slurm and (slurm_seconds(args.slurm_time) or math.inf) <= args.slurm_signal_seconds + 60,
                f"--slurm-time {args.slurm_time} leaves no time to train: SLURM sends the warning "
                f"--slurm-signal-seconds ({args.slurm_signal_seconds}) before the limit, or up to 60 s earlier still, "
                "and every attempt would stop and requeue at once; make the time longer or the warning shorter.",
            ),
            (not args.ablations, "--ablations needs at least one of n_actors, temperature, epsilon."),
        ]
        for wrong, sentence in problems:
            if wrong:
                raise SystemExit(sentence)
        runs, missing = build_grid(args, out_dir)
        write_manifest(runs, missing, selected_tasks(args), out_dir, args.experiment)
        if not runs:
            raise SystemExit("The grid is empty: no selected script exists or takes the selected tasks.")
        if args.slurm:
            path = write_slurm(runs, out_dir, args)
            commands = os.path.join(out_dir, "commands.txt")
            print(f"wrote {path} ({len(runs)} array tasks) and {commands}; submit with: sbatch {path}")
            return 0
        try:
            failed, interrupted = run_grid(runs, out_dir, args)
        except KeyboardInterrupt:  # a second Ctrl-C
            print("stopped at once: running the same command again resumes each run from its last checkpoint.")
            return 130
        if interrupted:
            print(f"interrupted: run the same command again to resume ({interrupted} run(s) left).")
            if not args.partial:  # with --partial, summarize what the runs logged so far
                return INTERRUPTED_EXIT_CODE
    if args.experiment == "table1":
        print(summarize(out_dir, args.partial)["table"])
        print(f"wrote {os.path.join(out_dir, 'table.md')}, results.csv, summary.json and curves_<task>.png/.csv")
    elif args.experiment in ("fig2", "fig5"):
        for path in summarize_figure(out_dir, args.experiment, args.partial):
            print(f"wrote {path}")
    elif args.experiment == "fig8":
        for path in summarize_fig8(out_dir, args.partial):
            print(f"wrote {path}")
    else:
        for path in summarize_auto_temperature(out_dir, args.partial):
            print(f"wrote {path}")
    if interrupted:
        return INTERRUPTED_EXIT_CODE
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(Args)))
