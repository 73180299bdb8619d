# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The errors of the NFS media share helpers (``_nfs`` and the ``_nfs_*`` files it uses).

Private to the collection (leading underscore): the API may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.wabiz.cluster.plugins.module_utils._detailed_error import DetailedError


class NfsError(DetailedError):
    """What went wrong with the share, with the details the module reports."""


class NfsTimeout(NfsError):
    """A command or libnfs call that did not finish within the module's timeout (it was killed)."""
