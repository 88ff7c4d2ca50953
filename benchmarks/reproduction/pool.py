"""The local process pool (`--workers`): runs the unfinished runs of the grid, resuming each from its checkpoint.

Ctrl-C, or SIGTERM to the harness, is passed on to the running runs as SIGTERM: they finish their episode, write
`checkpoint.pt` and exit 75; the harness waits for them and exits 75, and the same command again resumes them. A
second Ctrl-C stops everything at once (those runs later resume from their last periodic checkpoint).
"""

import os
import shlex
import signal
import subprocess
import sys
import time

from .grid import INTERRUPTED_EXIT_CODE, Args, Run, is_finished, next_attempt, record_exit, resume_point


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
