"""The API's password rules (400 / 1009 for a password that breaks them), as the preflight applies them."""

from __future__ import annotations

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils._password_rules import password_problems


@pytest.mark.parametrize("password", ["Passw0rd!", "Aa1-" + "x" * 60, "Z9y" + "~" * 5, "abcD3f_h"])
def test_a_password_that_follows_every_rule_has_no_problem(password):
    assert password_problems(password) == []


@pytest.mark.parametrize("password, problem", [
    ("Aa1!", "it has 4 characters, not 8 to 64"),
    ("Aa1!" + "b" * 61, "it has 65 characters, not 8 to 64"),
    ("password1!", "it has no upper-case letter"),
    ("PASSWORD1!", "it has no lower-case letter"),
    ("Password!!", "it has no digit"),
    ("Password11", "it has no special character"),
    ("Pass word1!", "it holds characters outside ASCII letters, digits and punctuation (such as a space)"),
    ("Pässword1!", "it holds characters outside ASCII letters, digits and punctuation (such as a space)"),
    # a non-ASCII digit or capital does not count for its class
    ("passwörd١!", "it has no digit"),
    ("ÄÖÜpassword1!", "it holds characters outside ASCII letters, digits and punctuation (such as a space)"),
])
def test_each_broken_rule_is_named(password, problem):
    assert problem in password_problems(password)


def test_the_problems_never_hold_the_password():
    password = "lowercaseonly"
    assert all(password not in p for p in password_problems(password))


def test_a_value_that_is_not_text_is_a_problem():
    assert password_problems(None) == ["it is not a text"]
