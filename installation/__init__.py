"""Likeness: the installation's core, which every node process imports first."""

import os

# Each node is a process of its own on a machine of few cores: BLAS threads inside one node only
# fight the others for them (the bot's answer took 10-600 ms with them on two busy cores, 10-40 ms
# without). Set here, before any numpy import; the environment may still say otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
