"""`python -m keras_mm.cli ...` is the `keras-mm` console script."""

import sys

from keras_mm.cli import main

if __name__ == "__main__":
    sys.exit(main())
