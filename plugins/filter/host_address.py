# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The address by which the other cluster hosts reach a host: one rule for every role and playbook."""

from __future__ import annotations

DOCUMENTATION = r"""
name: host_address
author: wabiz.cluster maintainers
version_added: 0.1.0
short_description: The address by which the other cluster hosts reach an inventory host
description:
  - Returns the host's C(wabiz_external_hostname) when its inventory sets one, else its C(ansible_host),
    else its inventory name.
  - Reads C(hostvars), so it gives the same answer for every host of the inventory, also for hosts
    outside the current C(--limit). Role defaults are not part of C(hostvars), so set
    C(wabiz_external_hostname) in the inventory where the SSH address is not the cluster address.
positional: _input, hostvars
options:
  _input:
    description: An inventory host name.
    type: str
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Addresses of every node host
  ansible.builtin.debug:
    msg: "{{ groups['wabiz_nodes'] | map('wabiz.cluster.host_address', hostvars) | unique | list }}"
"""

RETURN = r"""
_value:
  description: The host's address (or name) as the other cluster hosts reach it.
  type: str
"""

# In this order: the inventory's cluster address, the SSH address, the inventory name.
ADDRESS_VARIABLES = ("wabiz_external_hostname", "ansible_host")


def address_of(host: str, host_vars) -> str:
    """The first of ADDRESS_VARIABLES that ``host_vars`` (one host's hostvars) sets, else ``host``."""
    for key in ADDRESS_VARIABLES:
        try:
            value = host_vars[key]
        except (KeyError, TypeError):
            continue
        if value is not None and str(value).strip():
            return str(value).strip()
    return host


def host_address(host: str, hostvars) -> str:
    # A name that is no inventory host (an address given on the command line) stands for itself.
    if host not in hostvars:
        return host
    return address_of(host, hostvars[host])


class FilterModule:
    def filters(self):
        return {"host_address": host_address}
