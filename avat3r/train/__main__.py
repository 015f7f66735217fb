"""``python -m avat3r.train ...`` and ``torchrun --nproc_per_node=N -m avat3r.train ...``."""

import sys

from .trainer import train_main

if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:]))
