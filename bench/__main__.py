"""Entry point: `python -m bench [--quick] [--json FILE]`."""

from bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
