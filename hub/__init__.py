"""Drone and sensor feed hub: MQTT in, fused per-partner operating picture out."""

import os

# The tracker's matrices are 2x2 to 8x8: a multithreaded BLAS only adds thread
# wake-ups and competes with the broker for cores. Set before numpy loads.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

__version__ = "0.1.0"
