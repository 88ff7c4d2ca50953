"""The grid: the (script, task, seed) runs of an experiment, their command lines and run folders, and grid.json.

Each run is an ordinary command line (`python td3_baseline.py --env-id Hopper-v4 --seed 2 ...`) with its own
`--runs-dir`, `<out-dir>/runs/<task>__<method>__<seed>/`, so the harness finds the run directory that the script
makes there without guessing. Next to it: `COMMAND` (the command the run was started with), `train.log` (every
attempt's output), and `DONE` once the script exited 0, or `FAILED` (with the exit status) once it failed. A run
with a checkpoint and the same command resumes (`--resume <run dir>`); any other starts again in a clean folder.

fig2, fig8 and auto-temperature share one grid and --out-dir (`gamid-<budget>`), so a run two of them need runs
once (fig2's Hopper runs are fig8's, its preset runs auto-temperature's baseline); table1 and fig5 keep their own.
Every run evaluates at least 50 times, and every 10,000 steps at the paper's budget (1M steps, 2M for Humanoid).
"""

import ast
import glob
import json
import os
import shlex
import shutil
from dataclasses import asdict, dataclass
from typing import Literal, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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
