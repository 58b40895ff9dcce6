"""What the window BA can be asked to use, importable without GTSAM (the parameter table reads these)."""

ORDERINGS = ("METIS", "COLAMD")
SOLVERS = ("ceres", "gtsam")
# The window BA worker process: the OS's normal scheduling, or idle (SCHED_IDLE: a core only when
# nothing else wants it).
WORKER_PRIORITIES = ("normal", "idle")
