"""benchmarks/reproduce.py's parts: the grid, running it (local pool, SLURM), reading the runs, the statistics, the
figures, and one summary per experiment (table1, fig2_fig5, fig8, auto_temperature)."""
