"""SLURM (`--slurm`): `grid.sbatch`, a job array with one index per run (written, not submitted), and commands.txt.

The job asks SLURM for SIGUSR1 `--slurm-signal-seconds` before the time limit and passes it, or a pre-emption's
SIGTERM, to the run; when the run exits 75 (checkpoint written), the task requeues itself (`scontrol requeue`) and
the requeued task resumes. docs/slurm.md has the details; tests/test_slurm.py runs it on a real SLURM cluster.
"""

import os
import shlex
import sys
from typing import Optional

from .grid import GRIDS, INTERRUPTED_EXIT_CODE, Args, Run


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
        "  # A requeue that works ends this task with SIGTERM, maybe before scontrol returns: no failure then.",
        '  STOP=""; scontrol requeue "${SLURM_JOB_ID:?}" || [ -n "$STOP" ] ||',
        '    echo "requeue failed; sbatch \\"$GRID_SBATCH\\" again resumes" >&2',
        f"  exit {INTERRUPTED_EXIT_CODE}",
        "fi",
        'echo "exit $CODE" > "$RUN_DIR/FAILED"',
        'echo "failed with exit $CODE; see $RUN_DIR/train.log" >&2',
        'exit "$CODE"',
    ]
    with open(sbatch_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return sbatch_path
