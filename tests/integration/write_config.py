"""Write the ansible-test integration_config.yml for the module targets (make integration-modules).

The values come from tests.support.dbservers (the loopback MariaDB and PostgreSQL servers), so the
credentials live in one place and the generated file stays out of git: it is written into the
staged collection under .build/. Usage: python -m tests.integration.write_config OUTPUT
"""

from __future__ import annotations

import json
import os
import sys

from tests.support import dbservers


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTPUT", file=sys.stderr)
        return 2
    values = {}
    for ep in (dbservers.MARIADB, dbservers.POSTGRES):
        for key, value in ep.as_env().items():
            values[key.lower()] = int(value) if key.endswith("_PORT") else value
    # JSON is YAML: no quoting surprises in passwords.
    fd = os.open(argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f, indent=2, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
