"""Offline stand-in for get-pip.py, used by ansible-test to seed its virtualenvs.

ansible-test runs this file with pip's usual arguments (options and pinned packages such as
``pip==24.2``). It bootstraps the pip bundled with the standard library (ensurepip), then lets
that pip install the requested packages from the package index this machine can reach.
"""

import subprocess
import sys

# In a child process: ensurepip sets PIP_CONFIG_FILE=/dev/null in its own environment, which
# would hide the machine's pip configuration (index, CA bundle) from the install below.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if any(not a.startswith("-") for a in args):
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
