# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""compose_stack's hash memo: compose v2 labels containers with a hash that `config --hash` does
not print for services with an env_file; the memo translates an unchanged CLI hash to the label."""

from __future__ import annotations

from ansible_collections.wabiz.cluster.plugins.module_utils._compose import (
    memo_after_apply,
    plan,
    read_memo,
    translate_hashes,
)

CLI, LABEL, NEW_CLI = "a" * 64, "b" * 64, "c" * 64


def snapshot(label):
    return {"containers": {"id1": {"name": "p-web-1", "service": "web", "state": "running", "config_hash": label,
                                   "image_id": "sha256:1", "image": "img"}},
            "networks": [], "volumes": []}


def test_unchanged_cli_hash_is_translated_to_the_label_compose_used():
    memo = {"web": {"cli": CLI, "label": LABEL}}
    hashes = translate_hashes({"web": CLI}, memo)
    assert hashes == {"web": LABEL}
    actions = plan("present", snapshot(LABEL), {"web": {"image": "img"}}, hashes, {"web": "sha256:1"}, ["web"])
    assert actions == []


def test_a_changed_configuration_still_predicts_a_recreate():
    memo = {"web": {"cli": CLI, "label": LABEL}}
    hashes = translate_hashes({"web": NEW_CLI}, memo)
    assert hashes == {"web": NEW_CLI}
    actions = plan("present", snapshot(LABEL), {"web": {"image": "img"}}, hashes, {"web": "sha256:1"}, ["web"])
    assert [a["action"] for a in actions] == ["recreate"]


def test_memo_notes_the_label_after_an_apply_and_forgets_services_without_one():
    memo = memo_after_apply({"web": CLI, "gone": NEW_CLI}, snapshot(LABEL), {"gone": {"cli": "x", "label": "y"}})
    assert memo == {"web": {"cli": CLI, "label": LABEL}}


def test_unreadable_memo_is_empty(tmp_path):
    bad = tmp_path / "memo.json"
    bad.write_text("not json")
    assert read_memo(str(bad)) == {}
    assert read_memo(str(tmp_path / "missing.json")) == {}
