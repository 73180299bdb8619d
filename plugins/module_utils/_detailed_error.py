# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of the errors that carry what the module reports with its failure.

Private to the collection (leading underscore): the API may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class DetailedError(Exception):
    """``msg`` is the one sentence the module fails with; ``details`` go into its result (rc,
    stderr, ...)."""

    def __init__(self, msg, **details):
        super(DetailedError, self).__init__(msg)
        self.msg = msg
        self.details = details
