"""The ``refquant`` command (minimal placeholder; owned by the lead)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="refquant", description="bit-exact reference for quantized arithmetic")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("info", help="print build and CPU configuration (show_config)")
    args = parser.parse_args(argv)
    if args.command in (None, "info"):
        from ._config import show_config
        show_config()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
