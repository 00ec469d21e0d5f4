"""``python -m runtime [HANDLER]``: run the handler against the Runtime API."""

import time

# Init is measured from here, before the runtime's own imports (the interpreter's start-up is
# the only part left out).
_started_ns = time.time_ns()

import os  # noqa: E402
import sys  # noqa: E402

# `-m` puts the working directory (the task root, on Lambda) first on sys.path, so a user file
# such as orjson.py would shadow the runtime's own dependencies while they are imported. Init
# puts the task root back in front once they are loaded. Keep it when the runtime itself was
# found there (runtime bundled into the function folder).
if sys.path and sys.path[0] == os.getcwd() != os.path.dirname(os.path.dirname(__file__)):
    del sys.path[0]

from runtime.deferred import defer_for_cold_start  # noqa: E402 - after the sys.path fix above

defer_for_cold_start()

from runtime.bootstrap import main  # noqa: E402

if __name__ == "__main__":
    main(started_ns=_started_ns)
