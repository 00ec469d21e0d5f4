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
       lambda-runtime package FUNCTION_DIR --output DIR [--with otel,structlog]
                                               build runtime-layer.zip and function.zip
The emulator (serve, invoke) needs the extra: pip install 'lambda-runtime[emulator]'
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
        missing = _missing_modules("h11", "httpx")
        if missing:
            # A plain `pip install lambda-runtime` has the runtime only; the emulator is an extra.
            sys.stderr.write(
                f"lambda-runtime {args[0]}: the emulator needs {' and '.join(missing)}, which "
                "are not installed: pip install 'lambda-runtime[emulator]'\n"
            )
            return 2
        from runtime.emulator.cli import main as emulator_main

        status: int = emulator_main(args)
        return status
    if args[0] == "package":
        from runtime.packaging.package import main as package_main

        status = package_main(args)
        return status
    if args[0].startswith("-"):
        sys.stderr.write(f"lambda-runtime: unknown option {args[0]}\n{USAGE}")
        return 2
    from runtime.deferred import defer_for_cold_start

    defer_for_cold_start()
    from runtime.bootstrap import main as runtime_main

    runtime_main(args)


def _missing_modules(*names: str) -> list[str]:
    from importlib.util import find_spec

    missing = []
    for name in names:
        try:
            found = find_spec(name) is not None
        except ImportError:  # a broken install, or an import hook that refuses the module
            found = False
        if not found:
            missing.append(name)
    return missing


if __name__ == "__main__":
    sys.exit(main())
