"""The ``lambda-runtime`` command.

``lambda-runtime HANDLER`` runs the runtime (like ``python -m runtime HANDLER``);
``lambda-runtime serve|invoke ...`` runs the local emulator; ``lambda-runtime package ...``
builds deployment zips. Each subcommand lives in its own module, imported only when used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

USAGE = """usage: lambda-runtime HANDLER                 run the runtime ($AWS_LAMBDA_RUNTIME_API)
       lambda-runtime serve HANDLER [options]  run the local emulator (Invoke API + Runtime API)
       lambda-runtime invoke HANDLER [options] invoke a handler once through the emulator
       lambda-runtime package FUNCTION_DIR --output DIR
                                               build runtime-layer.zip and function.zip
Run `lambda-runtime COMMAND --help` for a command's options.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args and os.environ.get("_HANDLER"):
        # As Lambda starts a runtime: no argument, the handler in _HANDLER.
        from runtime.deferred import defer_for_cold_start

        defer_for_cold_start()
        from runtime.bootstrap import main as runtime_main

        runtime_main([])
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    if not args:
        sys.stderr.write(USAGE)
        return 2
    if args[0] == "--version":
        from runtime import __version__

        sys.stdout.write(f"lambda-runtime {__version__}\n")
        return 0
    if args[0] in ("serve", "invoke"):
        from runtime.emulator.cli import main as emulator_main

        status: int = emulator_main(args)
        return status
    if args[0] == "package":
        from runtime.package import main as package_main

        status = package_main(args)
        return status
    if args[0].startswith("-"):
        sys.stderr.write(f"lambda-runtime: unknown option {args[0]}\n{USAGE}")
        return 2
    from runtime.deferred import defer_for_cold_start

    defer_for_cold_start()
    from runtime.bootstrap import main as runtime_main

    runtime_main(args)


if __name__ == "__main__":
    sys.exit(main())
