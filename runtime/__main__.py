"""``python -m runtime [HANDLER]``: run the handler against the Runtime API."""

import os
import sys

# `-m` puts the working directory (the task root, on Lambda) first on sys.path, so a user file
# such as orjson.py would shadow the runtime's own dependencies while they are imported. Init
# puts the task root back in front once they are loaded. Keep it when the runtime itself was
# found there (runtime bundled into the function folder).
if sys.path and sys.path[0] == os.getcwd() != os.path.dirname(os.path.dirname(__file__)):
    del sys.path[0]

from runtime.bootstrap import main

if __name__ == "__main__":
    main()
