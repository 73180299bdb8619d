# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The REST API login options (module_utils._cluster_options.api_argument_spec).
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of a webapp of the cluster, for example V(https://wa.example.internal:9090).
      - A URL without a scheme gets C(https://). Only C(https://) and C(http://) are accepted, and the URL must not
        hold a user name or password (use O(api_username) and O(api_password)).
      - When something answers there but not as the WhatsApp Business API (another protocol, a closed connection,
        an HTML page, JSON of another shape), the task fails with C(failure_kind=bad_response) and a sentence that
        starts with C(api_url ... did not answer as the WhatsApp Business API).
    type: str
    required: true
  api_username:
    description:
      - User of the REST API that logs in with HTTP Basic auth to get a Bearer token.
    type: str
    default: admin
  api_password:
    description:
      - Password of O(api_username). Never shown in output or messages.
      - On a fresh cluster this is the initial password (C(secret)) and O(api_new_password) must be set,
        because the first login must change it (the webapp answers C(401) with code C(1024), password change
        required).
    type: str
  api_new_password:
    description:
      - The password to set at the first login (8 to 64 characters, with at least one upper-case letter, one
        lower-case letter, one digit and one ASCII punctuation character).
      - When O(api_password) is refused but O(api_new_password) is accepted, the password was already
        changed (by an earlier run) and the module carries on, so the first login is idempotent.
      - In check mode the password is never changed; a cluster that still requires the change makes the task fail.
    type: str
  api_key:
    description:
      - "The webapp's C(WA_API_KEY), sent as C(Authorization: Apikey KEY) to the endpoints that accept it
        (C(/v1/health), stats, metrics). Other calls still need O(api_password) or O(api_token)."
    type: str
  api_token:
    description:
      - A Bearer token obtained earlier. When the API refuses it and a password is set, the module logs in again.
    type: str
  api_token_cache:
    description:
      - File where the Bearer token is kept (mode C(0600)) and reused by later tasks until a day before it
        expires, so that each task does not log in again. Keyed by O(api_url) and O(api_username).
      - Without it the token is reused only within one task.
      - It must name a file (not a directory) that this user may read and write, or that can be created (missing
        folders are created with mode C(0700)).
    type: path
  validate_certs:
    description:
      - Verify the webapp's TLS certificate. Set to V(false) only for a test cluster with a self-signed certificate.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA (or the self-signed certificate) to verify the webapp's certificate with.
      - The file must exist and hold a PEM certificate; otherwise the task fails before anything is contacted.
    type: path
  api_timeout:
    description:
      - Seconds to wait for each API answer; more than V(0) and at most V(3600).
    type: float
    default: 10
  api_retries:
    description:
      - How many times a request is retried (with back-off) after a connection error or an answer worth trying
        again, known by its error code whatever its HTTP status (C(1011) service not ready, C(1017) and C(1018) not
        the primary master or coreapp, answered C(500)), or a C(503). TLS verification failures and answers that
        are not the API's are never retried.
      - V(0) to V(10). A request therefore ends after at most O(api_retries) + 1 tries of O(api_timeout) each,
        with at most 2 seconds between tries.
    type: int
    default: 2
  api_rate_limit_wait:
    description:
      - The most seconds one task waits out the API's rate limit (HTTP C(429), code C(1015); the webapp allows for
        example 10 C(/v1/health) calls a minute). A rate-limited call is tried again after 1, 2, 4, 8 seconds (or
        the C(Retry-After) the answer names) while this budget lasts; the task then warns and reports
        C(rate_limited) in its result. When the budget is spent the task fails with C(failure_kind=rate_limited).
      - V(0) (never wait) to V(600).
    type: float
    default: 30
notes:
  - Every option is checked before anything is contacted. A bad value (a negative or non-finite number, a
    O(ca_path) that does not exist, an O(api_token_cache) that is a directory...) fails the task with
    C(failure_kind=invalid_option) and a message that names the option, says what is wrong and what to set;
    nothing is changed, and no password, key or token is ever shown.
"""
