# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WhatsApp Business API's rules for a user password (the first login's new_password).

The webapp refuses a password that breaks them with 400 / 1009, so the preflight judges
wabiz_admin_password against them before anything is deployed. The sentences name the rule,
never the password.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import string

MIN_LENGTH = 8
MAX_LENGTH = 64
SPECIAL = string.punctuation  # the ASCII punctuation set
ALLOWED = frozenset(string.ascii_letters + string.digits + SPECIAL)
RULES_TEXT = ("%d to %d characters with at least one upper-case letter, one lower-case letter, one digit and one "
              "special character from the ASCII punctuation set (%s), and no other characters"
              % (MIN_LENGTH, MAX_LENGTH, SPECIAL))


def password_problems(password):
    """The rules ``password`` breaks, as short phrases (empty list: it is a valid password)."""
    if not isinstance(password, str):
        return ["it is not a text"]
    problems = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        problems.append("it has %d characters, not %d to %d" % (len(password), MIN_LENGTH, MAX_LENGTH))
    for test, what in ((str.isupper, "upper-case letter"), (str.islower, "lower-case letter"),
                       (str.isdigit, "digit")):
        if not any(c in ALLOWED and test(c) for c in password):
            problems.append("it has no %s" % what)
    if not any(c in SPECIAL for c in password):
        problems.append("it has no special character")
    if any(c not in ALLOWED for c in password):
        problems.append("it holds characters outside ASCII letters, digits and punctuation (such as a space)")
    return problems
