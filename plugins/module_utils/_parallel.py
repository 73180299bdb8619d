# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Calls in parallel threads with one deadline for them all (the health probes of failover_check).

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def parallel(calls, timeout):
    """Run ``{key: zero-argument callable}`` in parallel threads; ``{key: result}``. Each callable
    must bound its own time (probes pass ``timeout`` to the socket); ``timeout`` bounds the whole."""
    from concurrent.futures import ThreadPoolExecutor, wait

    if not calls:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(32, len(calls)))
    try:
        futures = dict((pool.submit(fn), key) for key, fn in calls.items())
        done = wait(list(futures), timeout=timeout)[0]
        out = {}
        for fut, key in futures.items():
            if fut in done:
                try:
                    out[key] = fut.result()
                except Exception as exc:  # reported, never raised
                    out[key] = exc
            else:
                out[key] = None
        return out
    finally:
        pool.shutdown(wait=False)
