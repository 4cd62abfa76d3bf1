"""Before the suite: say clearly what the tests need and whether this machine has it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import pg  # noqa: E402


def main() -> int:
    ok = True
    if pg.reachable(pg.DEFAULT_URL) or pg.local_bindir():
        print("preflight: PostgreSQL available")
    else:
        print("preflight: FAIL no PostgreSQL server at 127.0.0.1:5432 and no local binaries; "
              "run deploy/ensure-services.sh or set GLASPLADE_TEST_PG")
        ok = False
    print("preflight: chromium", "found" if shutil.which("chromium") else
          "MISSING (browser tests will fail; deploy/ensure-services.sh installs it)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
