"""What the window BA can be asked to use, importable without GTSAM (the parameter table reads these)."""

ORDERINGS = ("METIS", "COLAMD")
SOLVERS = ("ceres", "gtsam")
