# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The attribute every wabiz.cluster host module documents besides ansible.builtin's
    # check_mode / diff_mode / platform (action_common_attributes).
    DOCUMENTATION = r"""
options: {}
attributes:
  idempotent:
    description:
      - When run twice with the same arguments, the second run reports no change and changes
        nothing (the module compares the observed state with the wanted one).
"""
