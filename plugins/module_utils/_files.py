# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small file helpers shared by the host modules: read, write atomically, keep a backup.

Private to the collection (leading underscore): the API may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import tempfile

from ansible.module_utils.common.text.converters import to_bytes, to_text


def read_text(path):
    """Return the text content of ``path``, or None when it does not exist."""
    try:
        with open(to_bytes(path, errors="surrogate_or_strict"), "rb") as f:
            return to_text(f.read(), errors="surrogate_or_strict")
    except (IOError, OSError) as exc:
        if getattr(exc, "errno", None) == 2:
            return None
        raise


def write_atomic(module, path, content, mode=None, follow=True):
    """Write ``content`` to ``path`` through a temporary file in the same directory and
    ``module.atomic_move`` (readers never see a half-written file).

    ``mode`` (an int or an octal string) is applied to the temporary file and to the file it
    replaces before the move (``atomic_move`` keeps the destination's attributes, and gives a
    new file the umask's), so the content never sits in a file with a wider mode than asked for.

    With ``follow=False`` a symbolic link at ``path`` is refused (OSError ELOOP, nothing
    touched) instead of having its target chmodded and the link replaced by a file.
    """
    b_path = to_bytes(path, errors="surrogate_or_strict")
    directory = os.path.dirname(b_path) or b"."
    if not follow and os.path.islink(b_path):
        raise OSError(errno.ELOOP, "is a symbolic link (refusing to follow it)", path)
    if mode is not None:
        mode = int(mode, 8) if isinstance(mode, str) else mode
        if os.path.lexists(b_path):
            os.chmod(b_path, mode)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
            os.close(os.open(b_path, flags, mode))
            os.chmod(b_path, mode)  # the umask may have narrowed it; set exactly what was asked
    fd, tmp = tempfile.mkstemp(prefix=b".wabiz-", dir=directory)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(to_bytes(content, errors="surrogate_or_strict"))
            f.flush()
            os.fsync(f.fileno())
        module.atomic_move(tmp, b_path, unsafe_writes=False)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def restore(module, path, old_content):
    """Put back what ``path`` held before (``None``: it did not exist, so remove it)."""
    if old_content is None:
        if os.path.exists(path):
            os.unlink(path)
    else:
        write_atomic(module, path, old_content)
