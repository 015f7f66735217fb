"""``python -m avat3r.eval ...``"""

import sys

from .evaluation import eval_main

if __name__ == "__main__":
    sys.exit(eval_main(sys.argv[1:]))
