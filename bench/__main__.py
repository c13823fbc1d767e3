"""``python -m bench``: run every benchmark in turn and print its table; non-zero exit if any failed."""

import sys

from bench import imports, load, orders_sync, rss, slicing, tokens

BENCHES = (
    ("orders_sync", orders_sync.main),
    ("slicing", slicing.main),
    ("load", load.main),
    ("rss", rss.main),
    ("tokens", tokens.main),
    ("imports", imports.main),
)


def main() -> int:
    failed = []
    for name, run in BENCHES:
        print(f"\n===== bench.{name} =====", flush=True)
        try:
            code = run() or 0
        except SystemExit as exc:  # a bench that cannot finish says why and stops only itself
            code = exc.code if isinstance(exc.code, int) else 1
            if not isinstance(exc.code, int) and exc.code is not None:
                print(exc.code, file=sys.stderr)
        if code:
            failed.append(name)
        sys.stdout.flush()
    if failed:
        print(f"\nbenchmarks with a broken invariant or error: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
