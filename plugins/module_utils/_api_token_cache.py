# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API client's token cache (``api_token_cache``): Bearer tokens kept across runs in one JSON
file, written atomically and kept 0600 as it holds secrets.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import tempfile
import time

from ansible_collections.wabiz.cluster.plugins.module_utils._api_errors import ApiError

TOKEN_REFRESH_MARGIN = 300  # seconds: a cached token this close to expiry is renewed


class TokenCache(object):
    """One entry of the file at ``path``: the token of user ``username`` at API ``base``. Without
    a ``path`` nothing is read or written."""

    def __init__(self, path, base, username):
        self.path = path
        self.key = hashlib.sha256(("%s\n%s" % (base, username)).encode("utf-8")).hexdigest()

    def _read(self):
        if not self.path or not os.path.exists(self.path):
            return {}
        try:
            with open(self.path) as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except (IOError, OSError, ValueError):
            return {}

    def token(self):
        """The cached token while it has more than TOKEN_REFRESH_MARGIN to live, else None."""
        entry = self._read().get(self.key)
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str) or not entry["token"]:
            return None
        try:
            expires = float(entry.get("expires", 0))
        except (TypeError, ValueError):  # a damaged entry: log in again and rewrite it
            return None
        return entry["token"] if expires > time.time() + TOKEN_REFRESH_MARGIN else None

    def store(self, token, expires):
        if not self.path:
            return
        data = self._read()
        data[self.key] = {"token": token, "expires": expires}
        self._write(data)

    def drop(self):
        data = self._read()
        if data.pop(self.key, None) is not None:
            self._write(data)

    def _write(self, data):
        """Atomic 0600 write of the whole file; an ApiError when it cannot be written."""
        folder = os.path.dirname(os.path.abspath(self.path))
        tmp = None
        try:
            if not os.path.isdir(folder):
                os.makedirs(folder, 0o700)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".wabiz-token-")
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.rename(tmp, self.path)
        except (IOError, OSError) as exc:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
            raise ApiError("token_cache", "cannot write api_token_cache %s (%s): name a file in a directory this "
                           "user may write, or leave api_token_cache unset." % (
                               self.path, exc.strerror or type(exc).__name__)) from None
