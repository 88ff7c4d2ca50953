"""benchmarks/reproduce.py --slurm on a real SLURM cluster: Debian's slurm-wlm (slurmctld, slurmd) and munge,
one node with this machine's CPUs, started in a temporary directory for this module and stopped after it.

A tiny grid (two scripts x Pendulum-v1 x two seeds) is submitted as the job array that `--slurm` writes, into an
out-dir whose name holds a blank and a quote. While it runs, array task 0 gets the warning signal the way the
cluster sends it before a time limit (`scancel --signal=USR1 --batch`): its run checkpoints, exits 75, the task
requeues itself, the requeued task resumes from the checkpoint and ends with the same evaluations and parameters
as the same run in the local pool (`--workers 2`, on the same grid at the same time). Task 3 is cancelled while
pending; submitting grid.sbatch again runs it alone. The SLURM grid's table and results.csv equal the pool's.

Accounting is off (no slurmdbd, so no sacct): the job states come from `scontrol show job` and the job-completion
log (jobcomp/filetxt), printed with `pytest -s`. Without root, or without the packages (.ci/run installs them with
apt-get), or where the daemons cannot start, the cluster tests skip saying why.
"""

import csv
import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPRODUCE = os.path.join(REPO_ROOT, "benchmarks", "reproduce.py")
spec = importlib.util.spec_from_file_location("reproduce", REPRODUCE)
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd")
CLIENTS = ("sbatch", "scontrol", "squeue", "scancel", "sinfo")
# The grid: two scripts x one task x two seeds, 800 steps (four Pendulum episodes), small networks. Task 0 is
# signalled once its first checkpoint (step 200) is written, so it stops at step 400 or 600, before the end.
TOTAL, CHECKPOINT_FREQ, EPISODE, EVAL_FREQ = 800, 200, 200, 400
GRID = ["--scripts", "td3_baseline", "gamid_continuous_action", "--tasks", "Pendulum-v1", "--seeds", "1", "2"]
GRID += ["--total-timesteps", str(TOTAL), "--learning-starts", "200", "--eval-freq", str(EVAL_FREQ)]
GRID += ["--eval-episodes", "1", "--checkpoint-freq", str(CHECKPOINT_FREQ)]
GRID += ["--script-flags=--net-arch 16 16 --batch-size 16 --buffer-size 1000 --no-cuda"]
PREEMPTED, CANCELLED = 0, 3  # array indices: td3 seed 1 is pre-empted, gamid seed 2 is cancelled while pending
WAIT = 240  # seconds, at most, for any one thing on the cluster (the machine may be busy)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """munged, slurmctld and slurmd as root, every file in `self.dir`; SLURM_CONF in `self.env` for the clients."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="slurm-", dir="/tmp")  # short: munge's socket path is limited in length
        self.pid_files = []
        for sub in ("munge", "state", "spool", "log"):
            os.makedirs(os.path.join(self.dir, sub))
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.jobcomp = os.path.join(self.dir, "log", "jobcomp.txt")
        self.munge_socket = os.path.join(self.dir, "munge", "munge.socket")
        node = socket.gethostname().split(".")[0]  # slurmd finds its node by this name
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        d = self.dir
        settings = f"""
            ClusterName=reproduce
            SlurmctldHost={node}(127.0.0.1)
            SlurmUser=root
            SlurmdUser=root
            AuthType=auth/munge
            CredType=cred/munge
            AuthInfo=socket={self.munge_socket},cred_expire=5
            StateSaveLocation={d}/state
            SlurmdSpoolDir={d}/spool
            SlurmctldPidFile={d}/slurmctld.pid
            SlurmdPidFile={d}/slurmd.pid
            SlurmctldLogFile={d}/log/slurmctld.log
            SlurmdLogFile={d}/log/slurmd.log
            SlurmctldPort={free_port()}
            SlurmdPort={free_port()}
            ProctrackType=proctrack/linuxproc
            TaskPlugin=task/none
            MpiDefault=none
            SchedulerType=sched/backfill
            SchedulerParameters=sched_interval=1,bf_interval=1
            SelectType=select/cons_tres
            SelectTypeParameters=CR_CPU
            ReturnToService=2
            JobRequeue=1
            MinJobAge=3600
            JobCompType=jobcomp/filetxt
            JobCompLoc={self.jobcomp}
            NodeName={node} NodeAddr=127.0.0.1 CPUs={len(os.sched_getaffinity(0))} RealMemory={min(4000, memory // 2)}
            PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
        """
        # cred_expire=5: a requeued job waits cred_expire + 1 s before it may start again (the default: 121 s).
        with open(self.conf, "w") as f:
            f.write(textwrap.dedent(settings).lstrip())
        self.env = os.environ | {"SLURM_CONF": self.conf}

    def start(self) -> None:
        d = self.dir
        key = os.path.join(d, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        munged = [DAEMONS[0], "--force", f"--key-file={key}", f"--socket={self.munge_socket}"]
        munged += [f"--pid-file={d}/munge/munged.pid", f"--log-file={d}/log/munged.log", f"--seed-file={d}/munge/seed"]
        for command, pid_file, log in (
            (munged, f"{d}/munge/munged.pid", f"{d}/log/munged.log"),
            ([DAEMONS[1], "-f", self.conf], f"{d}/slurmctld.pid", f"{d}/log/slurmctld.log"),
            ([DAEMONS[2], "-f", self.conf], f"{d}/slurmd.pid", f"{d}/log/slurmd.log"),
        ):
            started = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
            self.pid_files.append(pid_file)
            if started.returncode != 0:
                raise RuntimeError(f"{os.path.basename(command[0])} did not start: {last_line(started.stderr, log)}")
        deadline = time.time() + 60
        while time.time() < deadline:
            state = self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the node is {state or 'not known'} after 60 s: {last_line('', f'{d}/log/slurmd.log')}")

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def stop(self) -> None:
        """Cancel what still runs, then stop the daemons (slurmd, slurmctld, munged) by their pid files."""
        self.run("scancel", "--user=root", check=False)
        deadline = time.time() + 30
        while self.run("squeue", "-h", check=False).stdout.strip() and time.time() < deadline:
            time.sleep(0.5)
        for pid_file in reversed(self.pid_files):
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip())
                os.kill(pid, signal.SIGTERM)
                deadline = time.time() + 10
                while time.time() < deadline:
                    os.kill(pid, 0)  # raises once it is gone
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def job(self, job_id: str) -> dict:
        """`scontrol show job` of one job (an array task: JOBID_INDEX) as {field: value}."""
        text = self.run("scontrol", "show", "job", job_id, check=False).stdout
        return dict(re.findall(r"(\w+)=(\S*)", text))  # {} once SLURM has no record of it

    def show(self, job_id: str) -> str:
        """The job's identity, state and restarts, as `scontrol show job` prints them."""
        job = self.job(job_id)
        if not job:
            return f"{job_id}: " + self.run("scontrol", "show", "job", job_id, check=False).stdout.strip()
        fields = ("JobId", "ArrayJobId", "ArrayTaskId", "JobState", "Reason", "Restarts", "ExitCode", "RunTime")
        return " ".join(f"{field}={job.get(field)}" for field in fields)

    def wait_until_gone(self, job_id: str) -> None:
        """Until no task of the job is pending or running."""
        deadline = time.time() + WAIT
        while self.run("squeue", "-h", "-j", job_id, check=False).stdout.strip():
            assert time.time() < deadline, self.run("squeue", "-j", job_id, check=False).stdout
            time.sleep(0.5)


def last_line(text: str, log: str) -> str:
    lines = text.strip().splitlines()
    if not lines and os.path.exists(log):
        with open(log) as f:
            lines = f.read().strip().splitlines()
    return lines[-1] if lines else "no message"


def why_no_cluster() -> str:
    """One sentence where no cluster can be started here, else ''."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "the SLURM tests start slurmd, which must run as root, and this is not root"
    missing = [path for path in DAEMONS if not os.access(path, os.X_OK)]
    missing += [name for name in CLIENTS if shutil.which(name) is None]
    if missing:
        return f"slurm-wlm and munge are not installed (no {', '.join(missing)}); .ci/run installs them as root"
    return ""


@pytest.fixture(scope="module")
def cluster():
    reason = why_no_cluster()
    if reason:
        pytest.skip(reason)
    cluster = Cluster()
    try:
        try:
            cluster.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            pytest.skip(f"the SLURM daemons could not start here: {error}")
        print(f"\nSLURM cluster up in {cluster.dir}: " + cluster.run("sinfo", "-h").stdout.strip())
        yield cluster
    finally:
        cluster.stop()


def reproduce_command(*flags: str) -> list[str]:
    return [sys.executable, REPRODUCE, *GRID, *flags]


def slurm_out(out: str, job: str, index: int = PREEMPTED) -> str:
    path = os.path.join(out, "slurm", f"{job}_{index}.out")
    if not os.path.exists(path):
        return f"no {path}"
    with open(path) as f:
        return f.read()


def train_log(out: str, index: int) -> str:
    runs = reproduce.read_manifest(out)["runs"]
    with open(os.path.join(runs[index].dir(out), "train.log")) as f:
        return f.read()


def checkpoint_of(out: str, index: int) -> dict:
    import torch

    run = reproduce.read_manifest(out)["runs"][index]
    (run_dir,) = [entry.path for entry in os.scandir(run.dir(out)) if entry.is_dir()]
    return torch.load(os.path.join(run_dir, "checkpoint.pt"), map_location="cpu", weights_only=False)


def assert_same(a, b, where: str = "checkpoint") -> None:
    """Equal, tensor by tensor and number by number (nested dicts, lists, tuples, arrays, tensors)."""
    import numpy as np
    import torch

    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def grids(cluster, tmp_path_factory):
    """The same grid in the local pool and on the cluster (task 0 pre-empted, task 3 cancelled, then the array
    submitted again); returns both out-dirs and what the cluster said along the way."""
    base = tmp_path_factory.mktemp("grids")
    local, slurm = str(base / "local"), str(base / "slurm grid's out")  # sbatch reads quotes in #SBATCH lines
    started = time.time()
    env = cluster.env | {"OMP_NUM_THREADS": "1"}
    pool = subprocess.Popen(
        reproduce_command("--workers", "2", "--threads-per-run", "1", "--out-dir", local),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        written = subprocess.run(
            reproduce_command("--slurm", "--slurm-cpus", "1", "--slurm-mem", "300M", "--slurm-time", "20:00")
            + ["--out-dir", slurm],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert written.returncode == 0, written.stdout + written.stderr
        sbatch = os.path.join(slurm, "grid.sbatch")
        # Held at submission, so that task 3 is surely pending when it is cancelled, then released.
        job = cluster.run("sbatch", "--parsable", "--hold", sbatch).stdout.strip().split(";")[0]
        said = {"job": job}
        pending = cluster.run("squeue", "-h", "-j", job, "-o", "%i %T %r").stdout.strip()
        cluster.run("scancel", f"{job}_{CANCELLED}")
        said["cancelled"] = cluster.run("squeue", "-h", "-j", job, "-o", "%i %T %r").stdout.strip()
        cluster.run("scontrol", "release", job)
        print(f"submitted array job {job} held: squeue: {pending}")
        print(f"scancel {job}_{CANCELLED} (pending): squeue: {said['cancelled']}; {cluster.show(f'{job}_3')}")

        # Pre-empt task 0 once its run is training (past its first checkpoint), as SLURM does before a time limit.
        preempted = f"{job}_{PREEMPTED}"
        run_dir = reproduce.read_manifest(slurm)["runs"][PREEMPTED].dir(slurm)
        deadline = time.time() + WAIT
        while not [path for path, _, files in os.walk(run_dir) if "checkpoint.pt" in files]:
            assert time.time() < deadline and cluster.job(preempted).get("JobState") in ("PENDING", "RUNNING"), (
                cluster.show(preempted)
            )
            time.sleep(0.1)
        said["log_at_signal"] = train_log(slurm, PREEMPTED)
        cluster.run("scancel", "--signal=USR1", "--batch", preempted)
        said["signalled"] = (
            f"{time.time() - started:.0f} s: scancel --signal=USR1 --batch {preempted}: " + cluster.show(preempted)
        )
        print(said["signalled"])
        deadline = time.time() + WAIT
        while (state := cluster.job(preempted)).get("Restarts") == "0":  # one reading: the requeue may land between
            ended = state.get("JobState") not in ("RUNNING", "COMPLETING")
            assert time.time() < deadline and not ended, cluster.show(preempted) + "\n" + slurm_out(slurm, job)
            time.sleep(0.2)
        said["requeued"] = cluster.show(preempted)
        print(f"{time.time() - started:.0f} s: requeued: {said['requeued']}")
        cluster.wait_until_gone(job)
        said["first"] = {i: cluster.show(f"{job}_{i}") for i in range(4)}
        print(f"{time.time() - started:.0f} s: array {job} done:\n  " + "\n  ".join(said["first"].values()))

        # Submit the array again: only the cancelled task's run is unfinished, so it alone trains.
        again = cluster.run("sbatch", "--parsable", sbatch).stdout.strip().split(";")[0]
        cluster.wait_until_gone(again)
        said["again"] = {i: cluster.show(f"{again}_{i}") for i in range(4)}
        said["again_job"] = again
        print(
            f"{time.time() - started:.0f} s: array {again} (resubmitted) done:\n  "
            + "\n  ".join(said["again"].values())
        )
        with open(cluster.jobcomp) as f:
            said["jobcomp"] = f.read()
        print("job completion log (jobcomp/filetxt):\n" + said["jobcomp"])

        output, _ = pool.communicate(timeout=WAIT)
        assert pool.returncode == 0, output
        print(f"{time.time() - started:.0f} s: local pool and SLURM grid both done")
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()
    yield local, slurm, said


def test_preempted_task_checkpoints_requeues_itself_and_resumes_to_the_same_run(cluster, grids):
    local, slurm, said = grids
    job = said["job"]
    assert "Restarts=1" in said["requeued"]
    assert said["first"][PREEMPTED].count("JobState=COMPLETED") == 1 and "Restarts=1" in said["first"][PREEMPTED]
    log = train_log(slurm, PREEMPTED)
    print(log)
    stopped = re.search(r"interrupted at step (\d+)", log)
    assert "SIGUSR1 received" in log and stopped, log  # the batch shell passed the signal on to the run
    step = int(stopped.group(1))
    # While it trained, its output was already in train.log (Python writing to a file buffers it otherwise).
    assert "is not one of the paper's tasks" in said["log_at_signal"], said["log_at_signal"]  # the script's first line
    assert CHECKPOINT_FREQ <= step < TOTAL and step % EPISODE == 0  # at an episode's end, before the budget
    attempts = re.findall(r"^--- .*: python (.*) \(task (\S+), restart (\d+);", log, flags=re.M)
    run = reproduce.read_manifest(slurm)["runs"][PREEMPTED]
    (run_dir,) = [entry.path for entry in os.scandir(run.dir(slurm)) if entry.is_dir()]
    assert [restart for _, _, restart in attempts] == ["0", "1"], log
    assert attempts[1][0].endswith(f"--resume {run_dir}")  # from its checkpoint, not from step 0
    assert {task for _, task, _ in attempts} == {cluster.job(f"{job}_{PREEMPTED}")["JobId"]}  # the task itself
    output = slurm_out(slurm, job)
    assert "requeueing task" in output and output.count("--- ") == 2 and "requeue failed" not in output, output
    # The resumed run ends as the uninterrupted one: the same evaluations, and the same parameters, optimizer
    # state, replay buffer and random streams in the final checkpoint.
    resumed, uninterrupted = checkpoint_of(slurm, PREEMPTED), checkpoint_of(local, PREEMPTED)
    assert resumed["step"] == uninterrupted["step"] == TOTAL
    assert resumed["args"].pop("runs_dir").startswith(slurm) and uninterrupted["args"].pop("runs_dir").startswith(local)
    assert_same(resumed, uninterrupted)  # all else: networks, optimizers, buffer, counters, arguments, random states
    _, steps, values = reproduce.read_curve(run.dir(slurm))
    _, local_steps, local_values = reproduce.read_curve(run.dir(local))
    assert steps.tolist() == local_steps.tolist() == [EVAL_FREQ, TOTAL] and values.tolist() == local_values.tolist()
    print(
        f"pre-empted at step {step} of {TOTAL}; resumed to step {resumed['step']}: final checkpoint equal to the "
        f"local pool's, evaluations {values.tolist()} == {local_values.tolist()}"
    )


def test_cancelled_pending_task_is_the_only_run_a_second_submission_trains(cluster, grids):
    local, slurm, said = grids
    job, again = said["job"], said["again_job"]
    # SLURM drops a pending array task that is cancelled from the array's record: no state, no log, no run.
    assert said["cancelled"] == f"{job}_[0-{CANCELLED - 1}] PENDING JobHeldUser"
    assert "not found" in said["first"][CANCELLED]
    assert all("JobState=COMPLETED" in said["again"][i] for i in range(4)), said["again"]
    runs = reproduce.read_manifest(slurm)["runs"]
    for i, run in enumerate(runs):
        with open(os.path.join(slurm, "slurm", f"{again}_{i}.out")) as f:
            out = f.read()
        if i == CANCELLED:
            task_id = cluster.job(f"{again}_{i}")["JobId"]
            assert "already finished" not in out and f"(task {task_id}, restart 0" in out
            assert train_log(slurm, i).count("--- ") == 1  # it never started in the first array
            assert not os.path.exists(os.path.join(slurm, "slurm", f"{job}_{i}.out"))
        else:
            assert out.strip() == f"already finished: {run.dir(slurm)}", out
        assert reproduce.is_finished(run, slurm)


def test_slurm_grid_summarizes_to_the_same_table_and_values_as_the_local_pool(grids):
    local, slurm, _ = grids
    summarized = subprocess.run(
        [sys.executable, REPRODUCE, "--summarize-only", "--out-dir", slurm], capture_output=True, text=True, timeout=300
    )
    assert summarized.returncode == 0, summarized.stdout + summarized.stderr
    tables = []
    for out in (local, slurm):
        with open(os.path.join(out, "table.md")) as f:
            tables.append(f.read())
    print("SLURM table:\n" + tables[1] + "\nlocal pool table:\n" + tables[0])
    assert tables[0] == tables[1]
    rows = []
    for out in (local, slurm):
        with open(os.path.join(out, "results.csv")) as f:
            rows.append(list(csv.DictReader(f)))
    assert rows[0] == rows[1] and len(rows[0]) == 4
    print("results.csv (both):\n" + "\n".join(str(row) for row in rows[1]))


# --- without a cluster: the batch script's signal handling, run by bash as slurmstepd runs it -----------------


def test_a_signal_before_the_run_has_started_still_requeues_and_never_marks_it_failed(tmp_path):
    """SLURM can signal the batch shell at any moment, also while it activates the venv or before Python has
    installed its handlers: the task must still end as interrupted (exit 75, requeued), never FAILED or DONE."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "td3_baseline.py").write_text("import time\nopen('calls', 'w').close()\ntime.sleep(60)\n")
    (tmp_path / "bin").mkdir()
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(tmp_path / "scontrol.txt"))}\n')
    scontrol.chmod(0o755)
    marker = tmp_path / "setting-up"
    setup = f"export PATH={shlex.quote(str(tmp_path / 'bin'))}:{shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
    setup += f"touch {shlex.quote(str(marker))}; sleep 2"  # a slow venv activation
    out = tmp_path / "out dir's"  # a blank and a quote: in #SBATCH lines, in the shell's words and in its messages
    args = dict(scripts=("td3_baseline",), tasks=("Hopper-v4",), seeds=(1,), total_timesteps=100, slurm=True)
    args |= dict(out_dir=str(out), repo_root=str(repo), slurm_setup=setup, slurm_gres="gpu:1", slurm_account="my lab")
    assert reproduce.main(reproduce.Args(**args)) == 0
    script = (out / "grid.sbatch").read_text()
    assert {"#SBATCH --gres=gpu:1", '#SBATCH --account="my lab"'} <= set(script.splitlines())
    assert f'#SBATCH --output="{out}/slurm/%A_%a.out"' in script.splitlines()
    subprocess.run(["bash", "-n", str(out / "grid.sbatch")], check=True)  # every line parses, even the last ones
    env = os.environ | {"SLURM_ARRAY_TASK_ID": "0", "SLURM_JOB_ID": "77"}
    task = subprocess.Popen(["bash", str(out / "grid.sbatch")], env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not marker.exists():
        assert time.time() < deadline and task.poll() is None
        time.sleep(0.05)
    task.send_signal(signal.SIGUSR1)  # during the setup, before the run exists
    output, _ = task.communicate(timeout=60)
    assert task.returncode == reproduce.INTERRUPTED_EXIT_CODE, output
    assert "SIGUSR1 before the run started" in output and not (repo / "calls").exists()
    assert (tmp_path / "scontrol.txt").read_text() == "requeue 77\n"
    cell = out / "runs" / "Hopper-v4__td3__1"
    assert not (cell / reproduce.FAILED).exists() and not (cell / reproduce.DONE).exists()


def test_a_time_limit_within_the_warning_is_refused_before_anything_is_written(tmp_path):
    """SLURM sends the warning up to 60 s before the requested moment (here, --time=2 with @60 came after 58 s):
    a limit inside warning + 60 s would stop every attempt at once and requeue it forever."""
    assert [reproduce.slurm_seconds(t) for t in ("20", "5:30", "1:00:00", "1-2", "1-2:30:15", "UNLIMITED")] == [
        1200,
        330,
        3600,
        93600,
        95415,
        None,
    ]
    args = reproduce.Args(tasks=("Hopper-v4",), seeds=(1,), slurm=True, slurm_time="6:00", out_dir=str(tmp_path / "o"))
    with pytest.raises(SystemExit) as error:
        reproduce.main(args)
    assert str(error.value).startswith("--slurm-time 6:00 leaves no time to train") and not (tmp_path / "o").exists()
