"""``python -m ekuiper_sdk.testing run DIR ...``: the same command as ``ekuiper-plugin run``."""

import sys

from ..tools.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] != ["run"]:
        sys.stderr.write("usage: python -m ekuiper_sdk.testing run DIR [options] "
                         "(the same as `ekuiper-plugin run`)\n")
        sys.exit(2)
    sys.exit(main(args))
