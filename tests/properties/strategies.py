"""Bad and borderline values, by the option's declared type.

Each strategy draws either a fixed nasty value (sampled, so the ci profile's few examples still
reach the classic ones) or a generated one. Values must survive JSON (the module's argument file).
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.properties.harness import MARKER

NASTY_STR = ["", " ", "\t", "\n", "a\nb", "x\x00y", "\x1b[31m", "$HOME", "${X}", "$$", "'", '"', "`id`", "\\",
             "#", "a=b", "ünïcødé", "\u202egnp.exe", "../../../etc/passwd", "-rf", "--help", "%s%n%x", "{{ x }}",
             " lead", "trail ", "a" * 300, "x" * 5000, "null", "None", "0", "-1", "true", ";rm -rf /", "a b",
             "\ufeff", "\U0001f600"]
NON_STR = [0, 1, -1, 1.5, True, False, [], ["a"], {}, {"a": 1}]

NASTY_INT = [0, -1, 1, 65535, 65536, 2**31 - 1, 2**31, 2**63, -2**63, 10**30, "12", " 7 ", "0x10", "017", "1e3",
             "abc", "", 1.5, "1.5", True, False, [], {}, "nan", "∞"]
NASTY_FLOAT = [0, 0.0, -0.0, -1, -1e-9, 1e-9, 1e308, "1e400", "-1e400", "nan", "inf", "-inf", "NaN", "abc", "",
               True, [], {}, 2**70, "0x10", " 3 "]
NASTY_BOOL = ["maybe", 2, -1, "", "yes please", [], {}, 1.5, "nan", "TRUE ", "on", "0"]


def bad_str(extra: list = ()) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(NASTY_STR + list(extra)), st.sampled_from(NON_STR),
                     st.text(min_size=0, max_size=40))


def bad_int(extra: list = ()) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(NASTY_INT + list(extra)), st.integers(min_value=-2**64, max_value=2**64))


def bad_float(extra: list = ()) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(NASTY_FLOAT + list(extra)),
                     st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))


def bad_bool() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(NASTY_BOOL), st.text(max_size=6))


def bad_list() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(["", "a,b", "x" * 300, 5, {}, [None], [1, 2], [[]], [{}], ["", " "],
                                      ["a\nb"], [True]]), st.lists(st.text(max_size=10), max_size=4))


def bad_dict() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(["", "a=b", "not a dict", 5, [], [1], {"": ""}, {"a": None}, {"a": [1]},
                                      {"a": {"b": 1}}, {"a\nb": 1}, {"x" * 300: 1}, {"$X": "$Y"}]),
                     st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=8), st.integers()),
                                     max_size=3))


def bad_secret(extra: list = ()) -> st.SearchStrategy:
    """A bad or borderline secret that still holds the session marker (so a leak shows)."""
    edge = st.sampled_from(["", " ", "\n", "'", '"', "$", "${", "\\", "#", "%", "=", "é", "\x00", "`", ":", "@",
                            "/", "?", "&", "+", "\t", "%40", "\r\n", "*" * 8] + list(extra))
    return st.builds(lambda a, b, c: f"{a}{MARKER}{b}{c}", edge, edge, st.text(max_size=6))


def for_type(spec: dict) -> st.SearchStrategy:
    """The default bad-value strategy for an argument_spec entry."""
    t = spec.get("type", "str")
    if spec.get("no_log"):
        return bad_secret()
    if t == "int":
        return bad_int()
    if t == "float":
        return bad_float()
    if t == "bool":
        return bad_bool()
    if t == "list":
        return bad_list()
    if t == "dict":
        return bad_dict()
    if t == "raw":
        return st.one_of(bad_str(), bad_int())
    return bad_str(list(spec.get("choices") or []))
