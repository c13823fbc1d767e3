"""``python -m bench`` (``make bench``): run every benchmark of ``make bench`` in turn, each in its own
process, printing its tables, then one summary table of the headline numbers; non-zero exit if any
bench failed a bound it states or could not finish. ``python -m bench.report`` also writes the README."""

import sys

from bench.report import main

if __name__ == "__main__":
    sys.exit(main(["--make-bench", *sys.argv[1:]]))
